//! cargo xtask: every build, test and image step of amber, as one small program.
//!
//! It changes to the workspace root first, so it works from any directory. Each
//! subcommand is one module; subprocesses go through [`cmd::Cmd`], which prints what it runs.

mod args;
mod bench;
mod board;
mod build;
mod cmd;
mod cpio;
mod debian;
mod debsrc;
mod deps;
mod dns;
mod e2e;
mod e2e_field;
mod e2e_net;
mod flash;
mod flash_test;
mod gpt;
mod image;
mod initramfs;
mod kbuild;
mod kernel;
mod keys;
mod mbr;
mod memory;
mod modules;
mod packages;
mod proxy;
mod qemu;
mod recipe;
mod recipes;
mod recipes_test;
mod run;
mod size;
mod test;
mod testlan;
mod uki;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test                      every test: fmt, clippy, host tests, no_std check, qemu end to end
  e2e [--board B]...        only the qemu end-to-end test (every board, or those named)
  bench <name>              run a benchmark: solver, squashfs, install, store, memory
  fuzz <target> [--seconds N]   run a fuzz target (cargo-fuzz on the pinned toolchain)
  fuzz --ci [--seconds N]   every fuzz target, 15 s each, as cargo xtask test does
  deps                      install what the project needs on this host
  build --board B           cross-build the device binary, report size
  recipes --board B [--secret-key F] [NAME...]
                            build packages from recipes/ (all, or NAME and what it
                            needs to build) into the signed repo target/repo/<arch>/
  recipes-test              the recipe builder's tests: reproducible, sandboxed, hashed
  flash-test                flash's tests on loop devices (root): verified writes,
                            refusals, Ctrl-C midway
  image --board B           bootable disk image in target/images/B/
  run --board B [--repo-port P] [--snapshot] [--expect TEXT [--timeout S]] [-- QEMU-ARGS]
                            boot it in qemu (TCG) on this terminal, or wait for TEXT
  size --board B            size report of the base, per part, against the budgets
  flash --board B --device DEV [--yes] [--force]
                            write the disk image to a removable disk, skipping its
                            holes, first MiB last, verified by reading back
  flash --image FILE --device DEV [--yes] [--force]
                            the same for an image of your own
  proxy HOST:PORT           (run by qemu) carry one guest connection to HOST:PORT
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // qemu runs the proxy with every standard stream on the guest's connection: it must
    // print nothing, not even a progress line.
    if args.first().map(String::as_str) == Some("proxy") {
        return proxy::main(&args[1..]);
    }
    if let Err(error) = cmd::enter_workspace_root() {
        eprintln!("xtask: {error}");
        return ExitCode::FAILURE;
    }
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("e2e") => e2e::main(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => bench::fuzz(&args[1..]),
        Some("deps") => deps::ensure(),
        Some("build") => build::run(&args[1..]),
        Some("image") => image::run(&args[1..]),
        Some("run") => run::run(&args[1..]),
        Some("size") => size::run(&args[1..]),
        Some("flash") => flash::run(&args[1..]),
        Some("recipes") => recipes::run(&args[1..]),
        Some("recipes-test") => match args.get(1) {
            None => recipes_test::run(),
            Some(extra) => Err(format!("recipes-test takes no arguments, got `{extra}`")),
        },
        Some("flash-test") => match args.get(1) {
            None => flash_test::run(),
            Some(extra) => Err(format!("flash-test takes no arguments, got `{extra}`")),
        },
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            return if args.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}
