//! `cargo xtask bench memory [--board B]...`: the smallest memory each board boots in
//! through its firmware and installs a package in (issue 14, DESIGN §10).
//!
//! For each UEFI board with a qemu machine, a disk is made once (in `target/bench-memory/B/`)
//! and booted in qemu's snapshot mode, so every attempt starts from the same bytes.
//! An attempt passes when the firmware, the loader and the kernel reach `amber: ready`
//! and the console shell's `pkg update && pkg add greet && /bin/greet` succeeds over
//! the guestfwd, all within the timeouts; it fails when qemu dies, the kernel panics
//! (it reboots, and `-no-reboot` ends qemu) or a timeout passes. The memory is bisected
//! in steps of 8 MiB between 32 MiB and the board's `qemu.memory-mib`.
//!
//! Each UEFI board's firmware is also bisected alone, with no disk and no network card
//! (it passes when its boot manager runs), so the output shows how much of a board's
//! memory is the firmware's own and how much the loader and the kernel add. Where the
//! loader and the kernel add more than a step, the kernel is also booted alone (the
//! firmware loads it from qemu's `-kernel`, no loader, no UKI) at the two sizes around
//! the limit and at the board's own memory: that tells memory used up from a boot that
//! faults.
//!
//! The output says where the memory goes: the size of the UKI the firmware loads, the
//! kernel's own footprint once decompressed (its `init_size` on x86_64, `image_size` on
//! arm64, from the image header), and the initramfs, unpacked and compressed. The Pi
//! boards are not searched: qemu's raspi3b runs only with the Pi 3's 1 GiB.

use crate::board::{Arch, Board, Firmware};
use crate::e2e::{Report, Shell};
use crate::image::{self, Disk, System};
use crate::qemu::{Boot, Console, Guest, Options};
use crate::util::{copy, create_dir, read, size, step};
use std::path::Path;
use std::time::{Duration, Instant};

/// The granularity of the search.
const STEP_MIB: u32 = 8;
/// Below this nothing is tried: the firmware alone needs more.
const FLOOR_MIB: u32 = 32;

pub fn run(args: &[String]) -> Result<(), String> {
    let args = crate::args::Args::parse("bench memory", args, &["--board"], &[])?;
    let names: Vec<String> = match args.values("--board").as_slice() {
        [] => crate::board::names()?,
        named => named.iter().map(|name| name.to_string()).collect(),
    };
    let boards: Vec<Board> = names
        .iter()
        .map(|name| crate::board::load(name))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|board| board.qemu.is_some())
        .collect();
    crate::deps::ensure()?;
    let server = amber_testkit::http::Server::bind(Path::new(crate::recipes::REPO_DIR), 0)?
        .ok_or("cannot start the repository server")?;
    let mut lines = Vec::new();
    for board in &boards {
        let qemu = board.qemu()?;
        let most = qemu.memory_mib;
        if board.firmware != Firmware::Uefi {
            // qemu's raspi3b has the Pi 3's memory and no other: nothing to search.
            lines.push(format!(
                "{}: not measured: qemu's {} machine runs only with {most} MiB, and qemu cannot run the Pi firmware",
                board.name, qemu.machine
            ));
            continue;
        }
        crate::packages::repository(board.arch)?;
        let images = image::build(board, Disk::Skip)?;
        let directory = Path::new("target/bench-memory").join(&board.name);
        create_dir(&directory)?;
        let disk = directory.join("disk.img");
        let _ = std::fs::remove_file(directory.join("disk.img.efivars"));
        image::make_disk(board, &images, &disk)?;
        let boot = Boot { disk };
        let started = Instant::now();
        let passes = |memory: u32| attempt(board, &boot, server.port(), memory);
        if !passes(most) {
            return Err(format!(
                "{}: fails at its own qemu.memory-mib of {most} MiB",
                board.name
            ));
        }
        let (low, high) = bisect(most, passes);
        lines.push(format!(
            "{}: boots by firmware and installs a package in {high} MiB; not in {low} MiB (goal 64 MiB: {}); searched in {:.0} s",
            board.name,
            if high <= 64 { "met" } else { "missed" },
            started.elapsed().as_secs_f64()
        ));
        let (firmware_low, firmware_high) =
            bisect(high, |memory| firmware_alone(board, &directory, memory));
        lines.push(format!(
            "  the firmware alone (no disk, no network card) reaches its boot manager in {firmware_high} MiB, not in {firmware_low} MiB: the loader, the UKI and the kernel need the other {} MiB",
            high - firmware_high
        ));
        if high > firmware_high + STEP_MIB {
            // Is the rest used up, or does the boot fault? The kernel alone, with no
            // loader and no UKI, at the sizes around the limit answers it; at the
            // board's own memory it shows that the probe itself boots.
            let mut sizes = vec![low, high, most];
            sizes.dedup();
            let outcomes: Vec<String> = sizes
                .iter()
                .map(|&memory| {
                    let outcome = kernel_alone(board, &images, &directory, memory);
                    format!("{memory} MiB: {outcome}")
                })
                .collect();
            lines.push(format!(
                "  the kernel alone, loaded by the firmware from qemu's -kernel (no loader, no UKI): {}",
                outcomes.join("; ")
            ));
        }
        lines.extend(breakdown(board, &images)?);
    }
    println!();
    for line in &lines {
        println!("{line}");
    }
    Ok(())
}

/// The smallest memory in steps of [`STEP_MIB`] between [`FLOOR_MIB`] and `most` (which
/// passes) at which `passes`: (the largest that failed, the smallest that passed).
fn bisect(most: u32, mut passes: impl FnMut(u32) -> bool) -> (u32, u32) {
    // Invariant: `high` passes, `low` fails (or is the floor, untried).
    let (mut low, mut high) = (FLOOR_MIB, most);
    while high - low > STEP_MIB {
        let middle = (low + (high - low) / 2) / STEP_MIB * STEP_MIB;
        let middle = middle.max(low + STEP_MIB);
        if passes(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    (low, high)
}

/// qemu with the board's machine and UEFI firmware at `memory_mib`, a fresh copy of the
/// firmware's variable store (`NAME.efivars` in `directory`), and no disk or network card.
fn bare_firmware(
    board: &Board,
    directory: &Path,
    name: &str,
    memory_mib: u32,
) -> Result<crate::cmd::Cmd, String> {
    let (_, template) = crate::qemu::uefi_firmware(board.arch);
    let variables = directory.join(format!("{name}.efivars"));
    copy(Path::new(template), &variables)?;
    let command = crate::qemu::machine(board, memory_mib, false, "stdio")?;
    crate::qemu::uefi_pflash(command, board.arch, &variables)
}

/// The board's UEFI firmware alone at `memory_mib`, with a fresh variable store and no
/// disk or network card: passes when its boot manager runs (BdsDxe), fails on a CPU
/// exception or when qemu ends or a minute passes first.
fn firmware_alone(board: &Board, directory: &Path, memory_mib: u32) -> bool {
    step(&format!(
        "{}: the firmware alone in {memory_mib} MiB",
        board.name
    ));
    let result = (|| -> Result<bool, String> {
        let command = bare_firmware(board, directory, "firmware-alone", memory_mib)?;
        let mut guest = Guest::spawn(command, false)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if guest.seen("BdsDxe") {
                return Ok(true);
            }
            if guest.seen("Exception") {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(false)
    })();
    match result {
        Ok(passed) => {
            eprintln!(
                "    {memory_mib} MiB: {}",
                if passed { "passed" } else { "failed" }
            );
            passed
        }
        Err(error) => {
            eprintln!("    {memory_mib} MiB: failed: {error}");
            false
        }
    }
}

/// The board's kernel and initramfs given to its UEFI firmware by qemu's `-kernel` and
/// `-initrd` at `memory_mib` (no disk, no network card): whether it reaches the
/// initramfs's /init, or the CPU exception the firmware reported, or nothing in 90 s.
fn kernel_alone(
    board: &Board,
    images: &image::Images,
    directory: &Path,
    memory_mib: u32,
) -> String {
    step(&format!(
        "{}: the kernel alone in {memory_mib} MiB",
        board.name
    ));
    let result = (|| -> Result<String, String> {
        let command = bare_firmware(board, directory, "kernel-alone", memory_mib)?
            .args(["-kernel", crate::util::path_str(&images.kernel.vmlinuz)?])
            .args(["-initrd", crate::util::path_str(&images.initramfs)?])
            .args(["-append", &board.cmdline]);
        let mut guest = Guest::spawn(command, false)?;
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if guest.seen("Run /init as init process") {
                return Ok("reaches /init".to_owned());
            }
            if guest.seen("Exception Type") {
                std::thread::sleep(Duration::from_secs(1));
                let tail = guest.last_lines(40);
                let line = |key: &str| {
                    tail.lines()
                        .find_map(|l| l.split_once(key).map(|(_, rest)| rest.trim().to_owned()))
                        .unwrap_or_default()
                };
                let kind = line("Exception Type - ");
                let kind = kind.split("  ").next().unwrap_or_default().to_owned();
                let rip = line("RIP  - ");
                let rip = rip.split(',').next().unwrap_or_default().to_owned();
                return Ok(format!("CPU exception {kind} at RIP {rip}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok("nothing on the console in 90 s".to_owned())
    })();
    let outcome = result.unwrap_or_else(|error| format!("cannot start: {error}"));
    eprintln!("    {memory_mib} MiB: {outcome}");
    outcome
}

/// One boot at `memory_mib`: ready, then a package installed and run.
fn attempt(board: &Board, boot: &Boot, port: u16, memory_mib: u32) -> bool {
    step(&format!("{}: {memory_mib} MiB", board.name));
    let options = Options {
        repo_port: port,
        snapshot: true,
        console: Console::Piped,
        host_forward: None,
        extra: Vec::new(),
        memory_mib: Some(memory_mib),
        reboot: false,
        netdev: None,
    };
    let mut report = Report::new(&board.name);
    let result = Shell::boot(board, boot, &options, &mut report)
        .and_then(|mut shell| shell.ok("pkg update && pkg add greet && /bin/greet memory"));
    match result {
        Ok(output) if output.contains("Greetings, memory!") => {
            eprintln!("    {memory_mib} MiB: passed");
            true
        }
        Ok(output) => {
            eprintln!("    {memory_mib} MiB: greet printed {output:?}");
            false
        }
        Err(error) => {
            let last = error.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            eprintln!("    {memory_mib} MiB: failed: {last}");
            false
        }
    }
}

/// Where the memory goes: what the firmware loads, the kernel decompressed, the
/// initramfs.
fn breakdown(board: &Board, images: &image::Images) -> Result<Vec<String>, String> {
    let kernel = read(&images.kernel.vmlinuz)?;
    let footprint = match board.arch {
        // The x86 boot protocol's init_size (offset 0x260): what the kernel needs from
        // its load address once decompressed, bss and page tables included.
        Arch::X86_64 => kernel
            .get(0x260..0x264)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64),
        // The arm64 Image header's image_size (offset 16): the same, for arm64.
        Arch::Aarch64 => kernel
            .get(16..24)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
    };
    let System::Uki { uki, .. } = &images.system else {
        return Err(format!("{}: not a UEFI image", board.name));
    };
    let loaded = format!(
        "the firmware loads the UKI, {} (systemd-boot reads the file into a buffer, then LoadImage copies it)",
        size(crate::build::file_size(uki)?)
    );
    let mut lines = vec![
        format!("  {loaded}"),
        format!(
            "  kernel {}: {} compressed, {} once decompressed (its own figure)",
            images.kernel.release,
            size(kernel.len() as u64),
            footprint.map_or("?".to_owned(), size)
        ),
        format!(
            "  initramfs {} compressed ({} of it the base, the rest {} modules)",
            size(images.initramfs_bytes),
            size(images.base_initramfs_bytes),
            images.modules.all().count()
        ),
    ];
    lines.push(
        "  the UEFI firmware itself keeps its own reservations (runtime services, ACPI, its pool) below all of this"
            .to_owned(),
    );
    Ok(lines)
}
