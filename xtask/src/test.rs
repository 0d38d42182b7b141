//! `cargo xtask test`: the README's test command. Everything CI checks, in order.

use crate::cmd::Cmd;

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("test takes no arguments, got `{extra}`"));
    }
    crate::deps::ensure()?;
    Cmd::new("cargo")
        .args(["fmt", "--all", "--", "--check"])
        .run()?;
    Cmd::new("cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    // The no_std core must build for a bare-metal target: it does no I/O.
    Cmd::new("cargo")
        .args([
            "check",
            "-p",
            "amber-core",
            "--no-default-features",
            "--target",
            "aarch64-unknown-none",
        ])
        .run()?;
    // Integration tests drive the real pkg binary, so build it first.
    Cmd::new("cargo").args(["build", "-p", "amber-pkg"]).run()?;
    Cmd::new("cargo").args(["test", "--workspace"]).run()?;
    // The size budgets (DESIGN §8) of both qemu boards: `size` fails when one is exceeded.
    for board in ["qemu-x86_64", "qemu-aarch64"] {
        crate::size::run(&["--board".to_owned(), board.to_owned()])?;
    }
    // Every fuzz target for 15 s (SECURITY-TESTS 21); skipped with a notice without nightly.
    crate::bench::fuzz_ci()?;
    // The recipe builder: reproducible images, refused tampered sources, no network in
    // the sandbox, identities that follow every input.
    crate::recipes_test::run()?;
    // Both qemu boards end to end: images, boots, pkg over HTTP, reboots, power cuts.
    crate::e2e::run()
}
