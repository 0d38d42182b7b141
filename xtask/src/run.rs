//! `cargo xtask run --board B`: build what is missing and boot it in qemu (TCG).
//!
//! ```text
//! cargo xtask run --board B [--repo-port PORT] [--snapshot] [-- QEMU-ARGS...]
//! cargo xtask run --board B --expect TEXT [--timeout SECONDS]
//! ```
//!
//! The device binary and initramfs are rebuilt every time (cargo and the cpio writer
//! make that quick); the disk image is made only when missing, because its data
//! partition is the device's persistent storage.
//!
//! The guest reaches `http://10.0.2.100:8080/` through qemu's guestfwd, which runs
//! `xtask proxy 127.0.0.1:PORT` (default 8080) for each connection. The test packages'
//! repository (`target/repo/`, see [`crate::packages`]) is built first; when nothing
//! listens on PORT, xtask serves it there for as long as qemu runs; when something does
//! (a server you started), the guest talks to that.
//!
//! With `--expect`, the console is captured instead of shown on the terminal: the run
//! succeeds once TEXT appears after the kernel hands over to /init, and fails when
//! qemu ends or the timeout passes first. The disk is used in snapshot mode then.

use crate::args::Args;
use crate::board::Board;
use crate::image::{self, Disk};
use crate::qemu::{self, Boot, Console, Guest, Options};
use crate::util::step;
use amber_testkit::http::Server;
use std::path::PathBuf;
use std::time::Duration;

/// The default timeout of `--expect`: TCG boots take seconds, slow CI machines more.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(
        "run",
        args,
        &["--board", "--repo-port", "--expect", "--timeout"],
        &["--snapshot"],
    )?;
    let board = args.board()?;
    crate::deps::ensure()?;
    let repo_port = match args.value("--repo-port") {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("run: --repo-port `{port}` is not a port number"))?,
        None => 8080,
    };
    let timeout = match args.value("--timeout") {
        Some(seconds) => Duration::from_secs(
            seconds
                .parse()
                .map_err(|_| format!("run: --timeout `{seconds}` is not a number of seconds"))?,
        ),
        None => EXPECT_TIMEOUT,
    };
    match args.value("--expect") {
        Some(text) => {
            // As the end-to-end tests boot, but on the port asked for.
            let options = Options {
                repo_port,
                extra: args.rest.clone(),
                memory_mib: None,
                reboot: false,
                ..test_options()
            };
            let report = boot_and_expect(&board, &options, text, timeout)?;
            println!(
                "{}: the kernel ran /init after {:.1}s; `{text}` after {:.1}s",
                board.name,
                report.handover.as_secs_f64(),
                report.expected.as_secs_f64()
            );
            Ok(())
        }
        None => {
            let options = Options {
                repo_port,
                snapshot: args.flag("--snapshot"),
                console: Console::Terminal,
                host_forward: None,
                extra: args.rest.clone(),
                memory_mib: None,
                reboot: false,
                netdev: None,
            };
            let images = image::build(&board, Disk::KeepExisting)?;
            let options = with_repo_server(&board, options)?;
            step(
                "booting; the console is this terminal (Ctrl-A X quits qemu, Ctrl-A C its monitor)",
            );
            qemu::command(&board, &Boot::from_images(&images), &options)?.run()
        }
    }
}

/// Options for an end-to-end test: the console on pipes, the disk's writes discarded,
/// and a repository server of xtask's own on a free port.
pub fn test_options() -> Options {
    Options {
        repo_port: 0,
        snapshot: true,
        console: Console::Piped,
        host_forward: None,
        extra: Vec::new(),
        memory_mib: None,
        reboot: false,
        netdev: None,
    }
}

/// Timings of a boot, from qemu's start.
#[derive(Debug, Clone, Copy)]
pub struct BootReport {
    /// When the kernel printed that it runs /init.
    pub handover: Duration,
    /// When the expected text appeared.
    pub expected: Duration,
}

/// Build the board's image, boot it with the console captured (echoed to stderr), and
/// wait for the kernel to run /init and then for `text`. For end-to-end tests.
pub fn boot_and_expect(
    board: &Board,
    options: &Options,
    text: &str,
    timeout: Duration,
) -> Result<BootReport, String> {
    let images = image::build(board, Disk::KeepExisting)?;
    let options = with_repo_server(board, options.clone())?;
    step(&format!("booting {} with the console captured", board.name));
    let mut guest = Guest::start(board, &Boot::from_images(&images), &options, true)?;
    let handover = guest
        .expect(qemu::HANDOVER, timeout)
        .map_err(|e| format!("{}: {e}", board.name))?;
    let expected = guest
        .expect(text, timeout.saturating_sub(handover))
        .map_err(|e| format!("{}: {e}", board.name))?;
    guest.stop();
    eprintln!();
    Ok(BootReport { handover, expected })
}

/// Make sure something listens on the repository port, where the guestfwd's proxy
/// connects for each guest connection: a server already there, or xtask's own, serving
/// target/repo/. A repo_port of 0 picks a free port.
fn with_repo_server(board: &Board, mut options: Options) -> Result<Options, String> {
    // The test packages until `cargo xtask recipes` builds real ones; the server offers
    // whatever target/repo/ holds when the guest asks.
    crate::packages::repository(board.arch)?;
    let root = PathBuf::from(crate::recipes::REPO_DIR);
    match Server::bind(&root, options.repo_port)? {
        Some(server) => {
            options.repo_port = server.port();
            step(&format!(
                "serving {}/ on 127.0.0.1:{} for the guest's http://{}/",
                crate::recipes::REPO_DIR,
                server.port(),
                qemu::REPO_GUEST_ADDRESS
            ));
            // It serves the guest until xtask exits.
            server.detach();
        }
        None => step(&format!(
            "127.0.0.1:{} is already served; the guest's http://{}/ goes there",
            options.repo_port,
            qemu::REPO_GUEST_ADDRESS
        )),
    }
    Ok(options)
}
