//! `cargo xtask size --board B`: the base's size per part against the board's budgets.
//!
//! Budgets (DESIGN §8, in the board file): the device binary, and the compressed
//! initramfs without kernel modules. The compressed size of each part is what it adds
//! to the archive (skeleton alone, then with the keys, then with the binary), so the
//! parts add up to the total. Exits non-zero when a budget is exceeded.

use crate::args::Args;
use crate::build::file_size;
use crate::initramfs::{self, Part};
use crate::util::read;
use std::path::Path;

pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse("size", args, &["--board"], &[])?;
    let board = args.board()?;
    let kernel = crate::kernel::prepare(&board)?;
    let modules = crate::modules::resolve(&board, &kernel)?;
    let binary = crate::build::device_binary(&board)?;
    let keys = crate::image::trusted_keys()?;
    let archive = initramfs::archive(&board, read(&binary)?, &keys, &modules);
    let base = initramfs::base(&archive);
    let scratch = Path::new("target/tmp");
    let parts = initramfs::part_sizes(&base, scratch)?;
    let base_total: u64 = parts.iter().map(|(_, _, compressed)| compressed).sum();
    let full = initramfs::gzip(&archive.to_bytes(initramfs::mtime()), scratch)?.len() as u64;
    let binary_bytes = file_size(&binary)?;
    let modules_raw: u64 = modules.iter().map(|module| module.bytes.len() as u64).sum();

    println!("size report for {} ({})", board.name, board.rust_target);
    println!();
    println!("{:<40} {:>12} {:>12}", "part", "bytes", "gzip -9");
    for (part, raw, compressed) in &parts {
        let name = match part {
            Part::Skeleton => "skeleton: dirs, links, /etc/amber, /dev",
            Part::Keys => "trusted keys (/etc/amber/keys)",
            Part::Binary => "device binary (/init)",
            Part::Modules => unreachable!("the base has no modules"),
        };
        println!("{name:<40} {raw:>12} {compressed:>12}");
    }
    println!("{:<40} {:>12} {:>12}", "base initramfs", "", base_total);
    println!(
        "{:<40} {:>12} {:>12}",
        format!("kernel modules ({}, not budgeted)", modules.len()),
        modules_raw,
        full.saturating_sub(base_total)
    );
    println!("{:<40} {:>12} {:>12}", "full initramfs", "", full);
    println!();
    let checks = [
        ("device binary", binary_bytes, board.budget.binary_bytes),
        (
            "base initramfs, compressed",
            base_total,
            board.budget.base_initramfs_bytes,
        ),
    ];
    let mut over = Vec::new();
    for (name, bytes, budget) in checks {
        let percent = bytes as f64 * 100.0 / budget as f64;
        let verdict = if bytes <= budget { "ok" } else { "OVER" };
        println!("budget {name:<28} {bytes:>9} of {budget:>9} ({percent:5.1}%) {verdict}");
        if bytes > budget {
            over.push(format!(
                "{name} is {bytes} bytes, over its budget of {budget}"
            ));
        }
    }
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", board.name, over.join("; ")))
    }
}
