//! The end-to-end test of `cargo xtask test`: every qemu board booted under TCG from a
//! disk of its own, driven through the console shell (busybox's sh, preinstalled)
//! against xtask's repository server.
//!
//! For each board, on a freshly made disk (not qemu's snapshot mode: what the guest
//! writes must survive the test's reboots):
//!
//! 1. boot to `amber: ready` (the line is printed: boot time from the kernel's
//!    hand-over) and busybox's shell on the console; `/bin/hello`, from a preinstalled
//!    package, runs;
//! 2. `pkg update` and `pkg add greet` over HTTP through the guestfwd; `/bin/greet`
//!    runs; `pkg del greet`, and it is gone; `pkg add greet` again; `pkg add dropbear`
//!    (built from its recipe, with a service file): init starts its service, the
//!    host, through a qemu `hostfwd`, reads dropbear's SSH banner, and root logs in with
//!    dropbear's client and a key made in the guest; `pkg del dropbear` stops it;
//!    `reboot`;
//! 3. after the reboot `/bin/greet` still runs; init's idle RSS is printed; `poweroff`,
//!    and qemu exits by itself, successfully;
//! 4. the power cut (SECURITY-TESTS item 23): boot, `pkg add big` while the server sends
//!    `big` (4 MiB) at 512 KiB/s, and SIGKILL qemu once the server's request log shows
//!    1 MiB of it sent; boot from the same disk: `pkg verify` passes and `pkg list` shows
//!    the old or the new generation whole (and, read on the host at the end, no
//!    temporary file is left in the store);
//! 5. a second cut, later in an install: `pkg add blob-a` at full speed, SIGKILL as soon
//!    as the server has sent the whole image (the guest is then checking it, renaming
//!    it into the store or switching generations); the same checks after the boot;
//! 6. `pkg add big blob-a blob-b blob-c` fetches several images at once through the
//!    guestfwd (the server must see at least two in flight together, and every hash
//!    must match); `pkg verify`, `pkg list`, `/bin/hello`; `poweroff`.
//!
//! The network steps (`e2e_net.rs`) run in the first two boots: DHCP from qemu, DNS over
//! TCP, an unknown name, SLAAC; on the qemu boards, which also join the test LAN with
//! their RTC in 2001, the clock by SNTP, a lease renewed, a DHCP server that never
//! answers, settings kept across the reboot and broken ones. Once, on qemu-x86_64, the
//! router test: a router and a client on its LAN. `--network` runs only the network
//! steps of each board's first two boots, `--router` only the router test.
//!
//! Every wait has a timeout, and a failure shows the console's last lines. When not run
//! as root or when qemu is missing, the test fails under CI and is skipped with a notice
//! elsewhere.
//! `XTASK_E2E_ECHO=1` copies the consoles to stderr as they run.

mod system;

use crate::board::Board;
use crate::cmd::Cmd;
use crate::image::{self, Disk};
use crate::packages;
use crate::qemu::{self, Boot, Console, Guest, Options};
use crate::util::{create_dir, path_str, step};
use amber_testkit::http::{Request, Server, Trickle};
use std::path::Path;
use std::time::{Duration, Instant};

/// The prompt the test gives the console shell (busybox's sh) once it is up.
pub(crate) const PROMPT: &str = "e2e# ";
/// Sets [`PROMPT`]; written so that its echo does not contain the prompt.
const SET_PROMPT: &str = "PS1='e2e''# '";
/// Lines services print on the console, which are not a command's output.
const SERVICE_LINES: &[&str] = &[
    "dropbear: ",
    "network: ",
    "clock: ",
    "firewall: ",
    "dnsmasq: ",
    "store: ",
    "hog: ",
    "glut: ",
    "fork: ",
];
/// How long dropbear may take from `pkg add` to answering on port 22.
const SSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits (up to 120 s) until the network daemon says the network is up, then shows it.
pub(crate) const NETWORK_UP: &str = "n=0; until svc status network | grep -q ': up: '; do sleep 1; n=$((n+1)); [ $n -lt 120 ] || break; done; svc status network | grep ': up: '";

/// From qemu's start to the shell's prompt; TCG on a busy CI machine is slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// One shell command, a pkg command over the guestfwd included.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// From `reboot` or `poweroff` to qemu's exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// How fast the server sends `big` during the power cut, and how much of it has gone
/// out when the power is cut: well inside the download (4 MiB), and late enough that
/// the guest has written part of it to its temporary file.
const CUT_RATE: u64 = 512 << 10;
const CUT_AFTER: u64 = 1 << 20;
/// How fast the blobs go out in the parallel download, so the downloads overlap.
const PARALLEL_RATE: u64 = 1 << 20;

/// The packages the image preinstalls, and the one the test installs.
const OLD_GENERATION: [&str; 3] = ["busybox", "greet", "hello"];

/// What one board's run measured.
pub struct Report {
    board: String,
    ready_lines: Vec<String>,
    /// init's RSS once idle, when the run measured it (the router test does not).
    rss_kib: Option<u64>,
    timings: Vec<(String, Duration)>,
    power_cuts: Vec<String>,
    /// The most downloads in flight at once, when the run had a parallel download.
    parallel: Option<usize>,
    /// Per boot, from qemu's start (the firmware's): to the kernel's hand-over to /init,
    /// and to `amber: ready`.
    firmware_times: Vec<(Duration, Duration)>,
    /// The loop device the disk was flashed to and booted from, if it was.
    flashed: Option<String>,
    /// What the A/B system-update steps showed (`system.rs`).
    system: Vec<String>,
    /// What the network steps showed (`e2e_net.rs`), one line each.
    pub(crate) network: Vec<String>,
    /// What the steps of a device in the field showed (`e2e_field.rs`).
    pub(crate) field: Vec<String>,
}

/// Which steps run: all of them, or (for work on the network) only the network steps
/// of each board's first two boots (`--network`) or only the router test (`--router`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Steps {
    All,
    Network,
    Router,
}

/// `cargo xtask e2e [--board B]... [--network | --router]`: every board, or the ones
/// named.
pub fn main(args: &[String]) -> Result<(), String> {
    let args = crate::args::Args::parse(
        "e2e",
        args,
        &["--board"],
        &["--system-only", "--network", "--router"],
    )?;
    if args.flag("--system-only") {
        // Only the A/B steps, for working on them: each board named must be UEFI.
        for name in args.values("--board") {
            let board = crate::board::load(name)?;
            packages::repository(board.arch)?;
            let mut report = Report::new(name);
            let measured = system::test(&board, &mut report)?;
            for line in measured.lines {
                println!("{name}: {line}");
            }
        }
        return Ok(());
    }
    let named: Vec<String> = args
        .values("--board")
        .into_iter()
        .map(str::to_owned)
        .collect();
    let steps = match (args.flag("--network"), args.flag("--router")) {
        (true, true) => return Err("e2e: --network or --router, not both".into()),
        (true, false) => Steps::Network,
        (false, true) => Steps::Router,
        (false, false) => Steps::All,
    };
    run_boards(&named, steps).map(|_| ())
}

/// Runs every board; returns how many ran (0 when the test could not run here and was
/// skipped with a notice, which CI refuses).
pub fn run() -> Result<usize, String> {
    run_boards(&[], Steps::All)
}

/// Runs the boards named, or every board when none is; returns how many booted.
fn run_boards(named: &[String], steps: Steps) -> Result<usize, String> {
    if !amber_testkit::check_step(
        "e2e",
        crate::deps::is_root(),
        "not root (the qemu end-to-end test runs as root, as CI does)",
    )? {
        return Ok(0);
    }
    let names = if named.is_empty() {
        crate::board::names()?
    } else {
        named.to_vec()
    };
    let boards: Vec<Board> = names
        .iter()
        .map(|name| crate::board::load(name))
        .collect::<Result<_, _>>()?;
    let missing: Vec<&str> = boards
        .iter()
        .filter(|board| board.qemu.is_some())
        .map(|board| board.arch.qemu_system())
        .filter(|program| !crate::cmd::have(program))
        .collect();
    if !amber_testkit::check_step(
        "e2e",
        missing.is_empty(),
        &format!(
            "{} not installed (`cargo xtask deps` as root installs it)",
            missing.join(", ")
        ),
    )? {
        return Ok(0);
    }
    let started = Instant::now();
    for arch in [crate::board::Arch::X86_64, crate::board::Arch::Aarch64] {
        if boards.iter().any(|board| board.arch == arch) {
            packages::repository(arch)?;
        }
    }
    let server = Server::bind(Path::new(crate::recipes::REPO_DIR), 0)?
        .ok_or("cannot start the repository server")?;
    let net = crate::e2e_net::Net::start(&boards)?;
    // The A/B updates on the qemu UEFI boards, each from a disk of its own: built
    // first, then run beside the other steps (a guest waits most of the time, for its
    // reboots and its firmware), which is most of the end-to-end test's time.
    let mut system_runs = Vec::new();
    for board in boards
        .iter()
        .filter(|board| has_system_steps(board) && steps == Steps::All)
    {
        system_runs.push((board, system::prepare(board)?));
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = system_runs
            .into_iter()
            .map(|(board, prepared)| {
                scope.spawn(move || {
                    let started = Instant::now();
                    let mut report = Report::new(&format!("{} (A/B system updates)", board.name));
                    let measured = system::run(board, prepared, &mut report)
                        .map_err(|e| format!("e2e: {}: system updates: {e}", board.name))?;
                    report.system = measured.lines;
                    report
                        .timings
                        .push(("whole test".to_owned(), started.elapsed()));
                    Ok::<Report, String>(report)
                })
            })
            .collect();
        let boards_result = board_steps(&boards, &server, &net, steps).and_then(|mut done| {
            router_step(&mut done.0, &boards, &server, steps)?;
            Ok(done)
        });
        // Every failure is told, not only the first.
        let mut errors = Vec::new();
        let mut system_reports = Vec::new();
        for handle in running {
            match handle.join() {
                Ok(Ok(report)) => system_reports.push(report),
                Ok(Err(error)) => errors.push(error),
                Err(_) => errors.push("e2e: a system-update thread panicked".to_owned()),
            }
        }
        match boards_result {
            Ok((mut reports, checked)) if errors.is_empty() => {
                reports.extend(system_reports);
                finish(reports, checked, started)
            }
            Ok(_) => Err(errors.join("\n")),
            Err(error) => {
                errors.insert(0, error);
                Err(errors.join("\n"))
            }
        }
    })
}

/// The boards whose A/B updates the test goes through: the qemu UEFI boards with a
/// virtio disk of their own.
fn has_system_steps(board: &Board) -> bool {
    board.firmware == crate::board::Firmware::Uefi
        && board
            .qemu
            .as_ref()
            .is_some_and(|qemu| qemu.disk == crate::board::QemuDisk::Virtio)
}

/// Every board's own steps, one board after the other: the reports of those booted,
/// and what was found of those checked structurally.
fn board_steps(
    boards: &[Board],
    server: &Server,
    net: &crate::e2e_net::Net,
    steps: Steps,
) -> Result<(Vec<Report>, Vec<String>), String> {
    let mut reports = Vec::new();
    let mut checked = Vec::new();
    for board in boards.iter().filter(|_| steps != Steps::Router) {
        if board.qemu.is_none() {
            // qemu cannot boot it (no emulated machine): the image is checked as its
            // firmware would read it.
            step(&format!("e2e {}: image, checked structurally", board.name));
            let images = image::build(board, Disk::Remake)?;
            let found = crate::image::check_boot_partition(board, &images.disk)
                .map_err(|e| format!("e2e: {}: {e}", board.name))?;
            checked.push(format!("{}: {found}", board.name));
            continue;
        }
        let board_started = Instant::now();
        let mut report = test_board(board, server, net, steps).map_err(|e| format!("e2e: {e}"))?;
        report
            .timings
            .push(("whole board".to_owned(), board_started.elapsed()));
        reports.push(report);
    }
    Ok((reports, checked))
}

/// The router and a client on its LAN, once: two x86_64 guests.
fn router_step(
    reports: &mut Vec<Report>,
    boards: &[Board],
    server: &Server,
    steps: Steps,
) -> Result<(), String> {
    let router_board = boards.iter().find(|board| board.name == "qemu-x86_64");
    if let Some(board) = router_board.filter(|_| steps != Steps::Network) {
        let started = Instant::now();
        let mut report = Report::new("router (two qemu-x86_64 guests)");
        crate::e2e_net::router(board, server.port(), &mut report)
            .map_err(|e| format!("e2e: router: {e}"))?;
        report
            .timings
            .push(("whole test".to_owned(), started.elapsed()));
        reports.push(report);
    }
    Ok(())
}

/// The report of everything.
fn finish(reports: Vec<Report>, checked: Vec<String>, started: Instant) -> Result<usize, String> {
    println!(
        "\ne2e: passed on {} boards booted by their firmware, {} checked structurally",
        reports.len(),
        checked.len()
    );
    for report in &reports {
        print_report(report);
    }
    for line in &checked {
        println!("{line}");
    }
    println!(
        "e2e: total {:.1}s (image builds included)",
        started.elapsed().as_secs_f64()
    );
    Ok(reports.len())
}

fn print_report(report: &Report) {
    println!("{}:", report.board);
    for (handover, ready) in &report.firmware_times {
        println!(
            "  from firmware start: kernel hands over at {:.1}s, amber: ready at {:.1}s",
            handover.as_secs_f64(),
            ready.as_secs_f64()
        );
    }
    for line in &report.ready_lines {
        let verdict = ready_ms(line).map_or("", |ms| {
            if ms <= 1000 {
                " (goal ≤ 1000 ms: met)"
            } else {
                " (goal ≤ 1000 ms: missed)"
            }
        });
        println!("  {line}{verdict}");
    }
    if let Some(rss_kib) = report.rss_kib {
        let verdict = if rss_kib <= 512 { "met" } else { "missed" };
        println!("  init idle RSS {rss_kib} KiB (goal ≤ 512 KiB: {verdict})");
    }
    for line in &report.system {
        println!("  system update: {line}");
    }
    if let Some(stick) = &report.flashed {
        println!(
            "  flashed to {stick} (read back, SHA-256 equal) and booted from it as a USB stick"
        );
    }
    for line in &report.network {
        println!("  {line}");
    }
    for cut in &report.power_cuts {
        println!("  power cut: {cut}");
    }
    for line in &report.field {
        println!("  {line}");
    }
    if let Some(parallel) = report.parallel {
        println!(
            "  parallel download: up to {parallel} images in flight at once through the guestfwd"
        );
    }
    for (what, duration) in &report.timings {
        println!("  {what:<24} {:>6.1}s", duration.as_secs_f64());
    }
}

/// What each command line ends with, so its status is printed after its output.
const STATUS_ECHO: &str = "echo \"exit $?\"";
/// A line printed before each command's output, and the command that prints it,
/// quoted so that its echo is not the line.
const OUTPUT_MARK: &str = "@@output";
const OUTPUT_MARK_ECHO: &str = "echo '@@''output'";
/// How [`STATUS_ECHO`] ends.
const STATUS_END: &str = "$?\"";

/// Where the echo of `line` ends in `text` when the terminal broke it across lines:
/// the characters of `line` in order, whitespace aside. None when they are not all
/// there in order (a console line came in between).
fn echo_end(text: &str, line: &str) -> Option<usize> {
    let mut wanted = line.chars().filter(|c| !c.is_whitespace()).peekable();
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        if wanted.next() != Some(c) {
            return None;
        }
        if wanted.peek().is_none() {
            return Some(at + c.len_utf8());
        }
    }
    None
}

/// The N of `amber: ready in N ms (...)`.
fn ready_ms(line: &str) -> Option<u64> {
    line.strip_prefix("amber: ready in ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

fn test_board(
    board: &Board,
    server: &Server,
    net: &crate::e2e_net::Net,
    steps: Steps,
) -> Result<Report, String> {
    let joins = crate::e2e_net::Net::joins(board);
    let name = board.name.as_str();
    step(&format!("e2e {name}: images"));
    // The test makes a disk of its own below; the board's own one is left as it is.
    let images = image::build(board, Disk::Skip)?;
    let directory = Path::new("target/e2e").join(name);
    create_dir(&directory)?;
    let disk = directory.join("disk.img");
    // A fresh disk, and a fresh firmware variable store beside it.
    let _ = std::fs::remove_file(directory.join("disk.img.efivars"));
    image::make_disk(board, &images, &disk)?;
    let found = image::check_boot_partition(board, &disk)?;
    eprintln!("    boot partition: {found}");
    let boot = Boot { disk };
    let ssh_port = free_port()?;
    let options = Options {
        repo_port: server.port(),
        snapshot: false,
        console: Console::Piped,
        host_forward: Some((ssh_port, 22)),
        // The qemu boards also join the test LAN, with their RTC in 2001 (e2e_net.rs).
        extra: if joins {
            net.qemu_args(board)
        } else {
            Vec::new()
        },
        memory_mib: None,
        reboot: false,
        netdev: None,
    };
    let mut report = Report::new(name);
    let arch = board.arch.name();

    // 1 and 2: the preinstalled package, then one installed over HTTP.
    let mut guest = Shell::boot(board, &boot, &options, &mut report)?;
    // A network adapter on a slow bus (the raspi3b's USB) may come after `ready`.
    guest.ok(NETWORK_UP)?;
    crate::e2e_net::first_boot(&mut guest, &mut report)?;
    if joins {
        crate::e2e_net::test_lan(&mut guest, net, &mut report)?;
    }
    let hello = guest.ok("/bin/hello")?;
    guest.expect_output("/bin/hello", &hello, "Hello from amber!")?;
    guest.timed("pkg update", &mut report)?;
    guest.timed("pkg add greet", &mut report)?;
    let greeting = guest.ok("/bin/greet e2e")?;
    guest.expect_output("/bin/greet", &greeting, "Greetings, e2e!")?;
    guest.timed("pkg del greet", &mut report)?;
    let (status, output) = guest.command("/bin/greet e2e", COMMAND_TIMEOUT)?;
    if status != 127 {
        return Err(guest.failure(&format!(
            "/bin/greet still ran after `pkg del greet` (exit {status}):\n{output}"
        )));
    }
    guest.ok("pkg add greet")?;
    // A package with a service: init starts it when pkg add returns.
    let timer = Instant::now();
    guest.ok("pkg add dropbear")?;
    report
        .timings
        .push(("pkg add dropbear".to_owned(), timer.elapsed()));
    let banner = ssh_banner(ssh_port).map_err(|e| {
        let status = guest.ok("svc status").unwrap_or_default();
        guest.failure(&format!("dropbear: {e}\nsvc status:\n{status}"))
    })?;
    report
        .timings
        .push(("dropbear answers".to_owned(), timer.elapsed()));
    eprintln!("    the host read dropbear's banner: {banner}");
    let status = guest.ok("svc status dropbear")?;
    guest.expect_output("svc status dropbear", &status, "running")?;
    crate::e2e_field::dropbear_confined(&mut guest, &mut report)?;
    // A login with a key made in the guest and authorized for root (lines kept short:
    // busybox's line editing wraps at 80 columns on a serial console).
    guest.ok("dropbearkey -t ed25519 -f /tmp/id")?;
    guest.ok("mkdir -p -m 700 /root/.ssh && cd /root/.ssh")?;
    guest.ok("dropbearkey -y -f /tmp/id | grep ^ssh- > authorized_keys")?;
    let timer = Instant::now();
    let login = guest.ok("cd / && dbclient -y -i /tmp/id root@127.0.0.1 'echo ssh:$((6*7))'")?;
    guest.expect_output("the ssh login", &login, "ssh:42")?;
    crate::e2e_field::dropbear_state(&mut guest)?;
    report
        .timings
        .push(("ssh login (in the guest)".to_owned(), timer.elapsed()));
    guest.ok("pkg del dropbear")?;
    let (status, output) = guest.command("svc status dropbear", COMMAND_TIMEOUT)?;
    if status == 0 && output.contains("running") {
        return Err(guest.failure(&format!(
            "dropbear still runs after `pkg del dropbear`:\n{output}"
        )));
    }
    let mark = format!("e2e-mark-{}", std::process::id());
    crate::e2e_field::mark_kernel_log(&mut guest, &mark)?;
    let timer = Instant::now();
    guest.shut_down("reboot")?;
    report
        .timings
        .push(("reboot (shutdown)".to_owned(), timer.elapsed()));

    // 3: the state persisted; init's memory once idle.
    let mut guest = Shell::boot(board, &boot, &options, &mut report)?;
    let greeting = guest.ok("/bin/greet again")?;
    guest.expect_output("/bin/greet", &greeting, "Greetings, again!")?;
    let status = guest.ok("grep VmRSS /proc/1/status")?;
    let rss_kib = status
        .lines()
        .find_map(|line| {
            line.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| guest.failure(&format!("no VmRSS in /proc/1/status:\n{status}")))?;
    report.rss_kib = Some(rss_kib);
    if joins {
        crate::e2e_net::second_boot(&mut guest, &mut report)?;
    }
    crate::e2e_field::logs_survived(&mut guest, &mark, &mut report)?;
    crate::e2e_field::store_heals(&mut guest, &mut report)?;
    crate::e2e_field::memory_max_restarts(&mut guest, &mut report)?;
    crate::e2e_field::tasks_max_holds(&mut guest, &mut report)?;
    let timer = Instant::now();
    guest.shut_down("poweroff")?;
    report
        .timings
        .push(("poweroff".to_owned(), timer.elapsed()));
    if steps == Steps::Network {
        return Ok(report);
    }
    if matches!(board.firmware, crate::board::Firmware::RaspberryPi(_)) {
        // qemu's raspi3b is slow and not the real firmware: the package steps are what
        // it shows; power cuts and parallel downloads are the UEFI boards'.
        return Ok(report);
    }

    // 4 and 5: power cuts, then the old generation or the new one, whole.
    let before: Vec<String> = OLD_GENERATION.iter().map(|n| id(n)).collect();
    let big = format!("/{arch}/{}", packages::file_name("big"));
    let guest = Shell::boot(board, &boot, &options, &mut report)?;
    let cut = power_cut(guest, server, "big", &big, Some(CUT_RATE), |request| {
        request.sent >= CUT_AFTER
    })?;
    // What the guest had written when the power went, for the record: its page cache
    // is lost with it, so a partial download may or may not be on the disk.
    let left = temp_files(board, &boot.disk, &directory)?;
    eprintln!(
        "    on the disk after the cut: {} temporary file(s) in the store, {} bytes",
        left.len(),
        left.iter().map(|(_, size)| size).sum::<u64>()
    );
    let mut guest = Shell::boot(board, &boot, &options, &mut report)?;
    guest.timed("pkg verify", &mut report)?;
    let (which, after) = guest.old_or_new(&before, "big")?;
    report
        .power_cuts
        .push(format!("{cut}; after it, {which}, whole"));
    // The second cut comes once the image is all sent: while the guest checks it,
    // renames it into the store and switches to the new generation.
    let blob = format!("/{arch}/{}", packages::file_name("blob-a"));
    let cut = power_cut(guest, server, "blob-a", &blob, None, |request| {
        request.finished
    })?;
    let mut guest = Shell::boot(board, &boot, &options, &mut report)?;
    guest.ok("pkg verify")?;
    let (which, _) = guest.old_or_new(&after, "blob-a")?;
    report
        .power_cuts
        .push(format!("{cut}; after it, {which}, whole"));

    // 6: several downloads at once, each its own connection through the guestfwd.
    let blobs = ["blob-a", "blob-b", "blob-c"];
    server.set_trickle(Some(Trickle {
        paths: blobs
            .iter()
            .map(|blob| format!("/{arch}/{}", packages::file_name(blob)))
            .collect(),
        bytes_per_second: PARALLEL_RATE,
    }));
    server.take_most_at_once();
    let timer = Instant::now();
    let added = guest.ok("pkg add big blob-a blob-b blob-c");
    server.set_trickle(None);
    added?;
    report
        .timings
        .push(("pkg add big + 3 blobs".to_owned(), timer.elapsed()));
    let parallel = server.take_most_at_once();
    report.parallel = Some(parallel);
    if parallel < 2 {
        return Err(guest.failure(&format!(
            "`pkg add` of four packages had at most {parallel} download in flight at once"
        )));
    }
    guest.ok("pkg verify")?;
    let listed = guest.installed()?;
    let mut all = before.clone();
    all.push(id("big"));
    all.extend(blobs.iter().map(|blob| id(blob)));
    all.sort();
    if listed != all {
        return Err(guest.failure(&format!("`pkg list` shows {listed:?}, not {all:?}")));
    }
    let hello = guest.ok("/bin/hello")?;
    guest.expect_output("/bin/hello", &hello, "Hello from amber!")?;
    crate::e2e_field::disk_full(&mut guest, &mut report)?;
    guest.shut_down("poweroff")?;
    // The commands after the power cuts removed what the killed ones left.
    let left = temp_files(board, &boot.disk, &directory)?;
    if !left.is_empty() {
        return Err(format!(
            "{name}: temporary files left in the store after the power cuts: {left:?}"
        ));
    }
    crate::e2e_field::watchdog_resets_a_hang(board, &boot, &options, &mut report)?;
    if board.qemu()?.disk == crate::board::QemuDisk::Usb {
        // What `cargo xtask flash` writes is what boots: the disk, flashed to a loop
        // device (read back and compared), boots from it as a USB stick.
        step(&format!(
            "e2e {name}: the disk flashed to a loop device and booted from it"
        ));
        let stick = crate::flash_test::flash_to_loop(&boot.disk)?;
        let flashed = Boot {
            disk: stick.path.clone(),
        };
        let mut guest = Shell::boot(board, &flashed, &options, &mut report)?;
        guest.ok("pkg verify")?;
        let hello = guest.ok("/bin/hello")?;
        guest.expect_output("/bin/hello", &hello, "Hello from amber!")?;
        guest.shut_down("poweroff")?;
        report.flashed = Some(stick.path.display().to_string());
    }
    Ok(report)
}

/// Start `pkg add NAME` and cut the power (SIGKILL qemu) as soon as the server's log
/// shows `when` true of the request for `path`, sent at `rate` bytes a second (None: at
/// full speed). Returns what the log showed then.
fn power_cut(
    mut shell: Shell,
    server: &Server,
    name: &str,
    path: &str,
    rate: Option<u64>,
    when: impl Fn(&Request) -> bool,
) -> Result<String, String> {
    server.set_trickle(rate.map(|bytes_per_second| Trickle {
        paths: vec![path.to_owned()],
        bytes_per_second,
    }));
    let seen = server.requests().len();
    eprintln!("    {PROMPT}pkg add {name}");
    shell.guest.send(&format!("pkg add {name}\n"))?;
    let timer = Instant::now();
    let cut = loop {
        let requests = server.requests();
        if let Some(request) = requests[seen..]
            .iter()
            .find(|request| request.path == path && request.status == 200 && when(request))
        {
            break request.clone();
        }
        if shell.guest.seen(PROMPT) {
            server.set_trickle(None);
            return Err(shell.failure(&format!("`pkg add {name}` ended before the power cut")));
        }
        if timer.elapsed() > COMMAND_TIMEOUT {
            server.set_trickle(None);
            return Err(shell.failure(&format!(
                "the download of {path} did not come to the point of the power cut within {}s",
                COMMAND_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let board = shell.board.clone();
    shell.guest.stop();
    server.set_trickle(None);
    let cut = format!(
        "SIGKILL {:.2}s after `pkg add {name}`, the server having sent {} of {} bytes{}",
        timer.elapsed().as_secs_f64(),
        cut.sent,
        cut.length,
        match rate {
            Some(rate) => format!(" at {} KiB/s", rate >> 10),
            None => String::new(),
        }
    );
    step(&format!("e2e {board}: power cut: {cut}"));
    Ok(cut)
}

/// The temporary files (pkg's `.tmp-*`) in the store on a guest's disk, with their sizes,
/// read with debugfs while qemu is not running.
fn temp_files(board: &Board, disk: &Path, directory: &Path) -> Result<Vec<(String, u64)>, String> {
    let offset = image::places(board)?.data.offset;
    let dump = directory.join("store-dump");
    if dump.exists() {
        std::fs::remove_dir_all(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    }
    create_dir(&dump)?;
    Cmd::new("debugfs")
        .args(["-R", &format!("rdump /pkg {}", path_str(&dump)?)])
        .arg(format!("{}?offset={offset}", path_str(disk)?))
        .output()?;
    let mut paths = Vec::new();
    image::walk(&dump, "", &mut paths)?;
    let mut found = Vec::new();
    for relative in paths {
        let name = relative.rsplit('/').next().unwrap_or_default();
        if !name.starts_with(".tmp-") {
            continue;
        }
        let path = dump.join(&relative);
        let metadata = path
            .symlink_metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !metadata.is_dir() {
            found.push((relative, metadata.len()));
        }
    }
    std::fs::remove_dir_all(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    Ok(found)
}

/// A package's id, as `pkg list` shows it: test packages are all [`packages::VERSION`],
/// the others have the version of their recipe.
fn id(name: &str) -> String {
    let path = format!("recipes/{name}/recipe.toml");
    match std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| crate::recipe::parse(name, &text).ok())
    {
        Some(recipe) => format!("{name}-{}", recipe.full_version()),
        None => format!("{name}-{}", packages::VERSION),
    }
}

/// A booted guest at its shell prompt.
/// A guest driven through its console shell.
pub struct Shell {
    pub(crate) guest: Guest,
    board: String,
}

impl Report {
    pub fn new(board: &str) -> Report {
        Report {
            board: board.to_owned(),
            ready_lines: Vec::new(),
            rss_kib: None,
            timings: Vec::new(),
            power_cuts: Vec::new(),
            parallel: None,
            firmware_times: Vec::new(),
            flashed: None,
            system: Vec::new(),
            network: Vec::new(),
            field: Vec::new(),
        }
    }
}

impl Shell {
    /// Boot, wait for the ready line (kept in the report) and the first prompt.
    pub fn boot(
        board: &Board,
        boot: &Boot,
        options: &Options,
        report: &mut Report,
    ) -> Result<Shell, String> {
        step(&format!(
            "e2e {}: boot {}",
            board.name,
            report.ready_lines.len() + 1
        ));
        let echo = std::env::var_os("XTASK_E2E_ECHO").is_some_and(|v| v == "1");
        let started = Instant::now();
        let guest = Guest::start(board, boot, options, echo)?;
        let mut shell = Shell {
            guest,
            board: board.name.clone(),
        };
        let fail = |error: String| format!("{}: {error}", board.name);
        let handover = shell
            .guest
            .expect(qemu::HANDOVER, BOOT_TIMEOUT)
            .map_err(fail)?;
        let ready = shell
            .guest
            .expect("amber: ready", BOOT_TIMEOUT)
            .map_err(fail)?;
        report.firmware_times.push((handover, ready));
        let rest = shell
            .guest
            .until("\n", Duration::from_secs(10))
            .map_err(fail)?;
        let line = format!("amber: ready{}", rest.trim_end());
        // The shell starts with the store, so it may be up before the ready line, or a
        // little after; the terminal keeps the line until it reads it.
        shell.guest.send(&format!("{SET_PROMPT}\n"))?;
        shell.guest.until(PROMPT, BOOT_TIMEOUT).map_err(fail)?;
        eprintln!(
            "    {line}; prompt after {:.1}s",
            started.elapsed().as_secs_f64()
        );
        report.ready_lines.push(line);
        report.timings.push((
            format!("boot {} to prompt", report.ready_lines.len()),
            started.elapsed(),
        ));
        Ok(shell)
    }

    /// After the board reset by itself in the same qemu (its watchdog): wait for the
    /// ready line and a prompt again.
    pub(crate) fn resync(mut self, report: &mut Report) -> Result<Shell, String> {
        let board = self.board.clone();
        let fail = |error: String| format!("{board}: {error}");
        self.guest
            .expect("amber: ready", BOOT_TIMEOUT)
            .map_err(fail)?;
        let rest = self
            .guest
            .until("\n", Duration::from_secs(10))
            .map_err(fail)?;
        report
            .ready_lines
            .push(format!("amber: ready{}", rest.trim_end()));
        self.guest.send(&format!("{SET_PROMPT}\n"))?;
        self.guest.until(PROMPT, BOOT_TIMEOUT).map_err(fail)?;
        Ok(self)
    }

    /// Run one command line; returns its status (printed after it as `exit N`) and
    /// what it printed, without the echo of the line and without init's, the
    /// services' and the kernel's console lines.
    pub(crate) fn command(
        &mut self,
        line: &str,
        timeout: Duration,
    ) -> Result<(i32, String), String> {
        eprintln!("    {PROMPT}{line}");
        let line = format!("{OUTPUT_MARK_ECHO}; {line}; {STATUS_ECHO}");
        let line = line.as_str();
        self.guest.send(&format!("{line}\n"))?;
        let text = self
            .guest
            .until(PROMPT, timeout)
            .map_err(|e| format!("{}: `{line}`: {e}", self.board))?
            .replace('\r', "");
        // The terminal echoes the line first; should a kernel message have split the
        // echo, its first line is dropped all the same.
        // The output starts after the marker's own line; the echo of the command line
        // has the marker quoted, so it is not that line. Only if no such line came (a
        // console line in it) is the echo looked for.
        let marked = text
            .match_indices(OUTPUT_MARK)
            .find(|(at, _)| {
                text[..*at].ends_with('\n') && text[at + OUTPUT_MARK.len()..].starts_with('\n')
            })
            .map(|(at, _)| at + OUTPUT_MARK.len());
        let after_echo = match marked {
            Some(at) => &text[at..],
            None => match text.find(line) {
                Some(at) => &text[at + line.len()..],
                None => match echo_end(&text, line) {
                    // The terminal wrapped a long line as it echoed it.
                    Some(at) => &text[at..],
                    // A console line came into the echo: the echo still ends with the
                    // status's `$?"`, which the output has not.
                    None => match text.find(STATUS_END) {
                        Some(at) => &text[at + STATUS_END.len()..],
                        None => text.split_once('\n').map_or("", |(_, rest)| rest),
                    },
                },
            },
        };
        let mut status = 0;
        let mut output = String::new();
        for printed in after_echo.lines() {
            if let Some(code) = printed.strip_prefix("exit ") {
                if let Ok(code) = code.trim().parse() {
                    status = code;
                    continue;
                }
            }
            if printed.starts_with("amber: ")
                || SERVICE_LINES
                    .iter()
                    .any(|prefix| printed.starts_with(prefix))
                || is_kernel_line(printed)
            {
                continue;
            }
            output.push_str(printed);
            output.push('\n');
        }
        Ok((status, output))
    }

    /// [`Shell::ok`], with the time the command took kept in the report under its line.
    fn timed(&mut self, line: &str, report: &mut Report) -> Result<String, String> {
        let timer = Instant::now();
        let output = self.ok(line)?;
        report.timings.push((line.to_owned(), timer.elapsed()));
        Ok(output)
    }

    /// Run a command that must succeed; returns its output.
    pub fn ok(&mut self, line: &str) -> Result<String, String> {
        let (status, output) = self.command(line, COMMAND_TIMEOUT)?;
        if status != 0 {
            return Err(self.failure(&format!("`{line}` failed (exit {status}):\n{output}")));
        }
        Ok(output)
    }

    pub(crate) fn expect_output(
        &mut self,
        what: &str,
        output: &str,
        wanted: &str,
    ) -> Result<(), String> {
        if output.contains(wanted) {
            Ok(())
        } else {
            Err(self.failure(&format!("{what} printed no `{wanted}`:\n{output}")))
        }
    }

    /// The installed packages' ids, sorted.
    fn installed(&mut self) -> Result<Vec<String>, String> {
        let output = self.ok("pkg list")?;
        let mut ids: Vec<String> = output
            .lines()
            .map(|line| line.trim().trim_end_matches(" (dependency)").to_owned())
            .filter(|line| !line.is_empty())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// After a power cut during `pkg add NAME`: `pkg list` must show the packages from
    /// `before`, or those and NAME. Returns which, and the list.
    fn old_or_new(
        &mut self,
        before: &[String],
        name: &str,
    ) -> Result<(&'static str, Vec<String>), String> {
        let listed = self.installed()?;
        let mut new = before.to_vec();
        new.push(id(name));
        new.sort();
        if listed == before {
            Ok(("the old generation", listed))
        } else if listed == new {
            Ok(("the new generation", listed))
        } else {
            Err(self.failure(&format!(
                "after the power cut `pkg list` shows {listed:?}, neither {before:?} nor {new:?}"
            )))
        }
    }

    /// `reboot` or `poweroff`: qemu (run with -no-reboot) must exit by itself, cleanly.
    pub(crate) fn shut_down(mut self, command: &str) -> Result<(), String> {
        eprintln!("    {PROMPT}{command}");
        self.guest.send(&format!("{command}\n"))?;
        self.guest
            .wait_exit(SHUTDOWN_TIMEOUT)
            .map_err(|e| format!("{}: after `{command}`: {e}", self.board))?;
        Ok(())
    }

    /// A failure message with the board's name and the console's last lines.
    pub(crate) fn failure(&mut self, what: &str) -> String {
        format!(
            "{}: {what}\nlast console lines:\n{}",
            self.board,
            self.guest.last_lines(30)
        )
    }
}

/// A free TCP port on 127.0.0.1 (for qemu's hostfwd).
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("bind: {e}"))
}

/// The first line an SSH server sends (`SSH-2.0-...`), read through the hostfwd on
/// `port`; retried until [`SSH_TIMEOUT`] (qemu accepts the connection even while
/// nothing listens in the guest, and then closes it).
pub(crate) fn ssh_banner(port: u16) -> Result<String, String> {
    use std::io::Read;
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < SSH_TIMEOUT {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while line.len() < 255 && stream.read(&mut byte)? == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
        })();
        match attempt {
            Ok(line) if line.starts_with("SSH-2.0-") => return Ok(line),
            Ok(line) if line.is_empty() => last = "connection closed without a banner".into(),
            Ok(line) => last = format!("not an SSH banner: {line:?}"),
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!(
        "no SSH banner on the forwarded port within {}s: {last}",
        SSH_TIMEOUT.as_secs()
    ))
}

/// A kernel message on the console: `[    2.279261] ...`.
fn is_kernel_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with('[')
        && line
            .find(']')
            .is_some_and(|end| line[1..end].trim().parse::<f64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_echo_ends_where_its_last_character_is() {
        let line = "cat /a /b; echo \"exit $?\"";
        let text = "cat /a /b; echo \"exit \n$?\"\n4\nexit 0\n";
        let at = echo_end(text, line).unwrap();
        assert_eq!(&text[at..], "\n4\nexit 0\n");
        assert_eq!(echo_end("amber: x\ncat /a", line), None);
    }

    #[test]
    fn reads_the_ready_line() {
        assert_eq!(
            ready_ms("amber: ready in 412 ms (kernel handed over at 2363 ms)"),
            Some(412)
        );
        assert_eq!(ready_ms("amber: ready soon"), None);
    }

    #[test]
    fn tells_kernel_lines() {
        assert!(is_kernel_line("[    2.279737] Run /init as init process"));
        assert!(!is_kernel_line("[x] not the kernel"));
        assert!(!is_kernel_line("hello-1.0-r0"));
    }
}
