//! `cargo xtask flash --board B --device DEV [--yes] [--force]`: write the board's
//! disk image to a whole block device, such as an SD card or USB stick.
//!
//! It refuses anything but a whole-disk block device, any device with a mounted
//! partition, and a device too small for the image; a device that the kernel does
//! not report removable needs `--force`. It asks before writing unless `--yes`, and
//! syncs the device before it reports success.

use crate::args::Args;
use crate::image::{self, Disk};
use crate::util::size;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(
        "flash",
        args,
        &["--board", "--device"],
        &["--yes", "--force"],
    )?;
    let board = args.board()?;
    let device = args
        .value("--device")
        .ok_or("flash: --device is required (a whole disk, e.g. /dev/sdb)")?;
    let device = PathBuf::from(device);
    let disk_image = image::directory(&board).join("disk.img");
    if !disk_image.is_file() {
        image::build(&board, Disk::Remake)?;
    }
    let image_bytes = crate::build::file_size(&disk_image)?;
    let target = check_device(&device, image_bytes, args.flag("--force"))?;
    println!(
        "write {} ({}) to {} ({}, {})?",
        disk_image.display(),
        size(image_bytes),
        target.path.display(),
        target.model,
        size(target.bytes)
    );
    println!("everything on {} will be lost.", target.path.display());
    if !args.flag("--yes") {
        print!("type `yes` to go on: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| format!("flash: cannot read the answer: {e}"))?;
        if answer.trim() != "yes" {
            return Err("flash: not confirmed; nothing written".into());
        }
    }
    write_image(&disk_image, &target.path, image_bytes)?;
    println!("{} written and synced", target.path.display());
    Ok(())
}

struct Target {
    path: PathBuf,
    model: String,
    bytes: u64,
}

fn check_device(device: &Path, image_bytes: u64, force: bool) -> Result<Target, String> {
    let path =
        std::fs::canonicalize(device).map_err(|e| format!("flash: {}: {e}", device.display()))?;
    let metadata =
        std::fs::metadata(&path).map_err(|e| format!("flash: {}: {e}", path.display()))?;
    if !metadata.file_type().is_block_device() {
        return Err(format!("flash: {} is not a block device", path.display()));
    }
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("flash: {}: odd device name", path.display()))?
        .to_owned();
    let sys = Path::new("/sys/block").join(&name);
    if !sys.is_dir() {
        return Err(format!(
            "flash: {} is not a whole disk (a partition?); give the disk itself",
            path.display()
        ));
    }
    let read_sys = |file: &str| {
        std::fs::read_to_string(sys.join(file))
            .map(|text| text.trim().to_owned())
            .unwrap_or_default()
    };
    if read_sys("removable") != "1" && !force {
        return Err(format!(
            "flash: {} is not removable; if it really is the card or stick to overwrite, add --force",
            path.display()
        ));
    }
    let mounts = std::fs::read_to_string("/proc/mounts")
        .map_err(|e| format!("flash: cannot read /proc/mounts: {e}"))?;
    let partitions = partitions_of(&sys, &name);
    for line in mounts.lines() {
        let source = line.split_whitespace().next().unwrap_or("");
        let source_name = source.strip_prefix("/dev/").unwrap_or("");
        if source_name == name || partitions.iter().any(|part| part == source_name) {
            return Err(format!(
                "flash: {source} is mounted ({}); unmount it first",
                line.split_whitespace().nth(1).unwrap_or("?")
            ));
        }
    }
    let sectors: u64 = read_sys("size").parse().unwrap_or(0);
    let bytes = sectors * 512;
    if bytes < image_bytes {
        return Err(format!(
            "flash: {} holds {} bytes, less than the image's {image_bytes}",
            path.display(),
            bytes
        ));
    }
    let model = read_sys("device/model");
    Ok(Target {
        path,
        model: if model.is_empty() {
            "unknown model".into()
        } else {
            model
        },
        bytes,
    })
}

/// The partitions of a disk, from `/sys/block/<disk>/<disk>*`.
fn partitions_of(sys: &Path, name: &str) -> Vec<String> {
    std::fs::read_dir(sys)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|entry| entry.starts_with(name) && entry != name)
                .collect()
        })
        .unwrap_or_default()
}

fn write_image(image: &Path, device: &Path, total: u64) -> Result<(), String> {
    let mut input = File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut output = OpenOptions::new()
        .write(true)
        .open(device)
        .map_err(|e| format!("flash: cannot open {}: {e}", device.display()))?;
    let mut buffer = vec![0u8; 4 << 20];
    let mut written = 0u64;
    let mut reported = 0u64;
    loop {
        let read = input
            .read(&mut buffer)
            .map_err(|e| format!("{}: {e}", image.display()))?;
        if read == 0 {
            break;
        }
        output
            .write_all(&buffer[..read])
            .map_err(|e| format!("flash: writing {}: {e}", device.display()))?;
        written += read as u64;
        if written - reported >= 64 << 20 || written == total {
            eprintln!("  {} of {} MiB", written >> 20, total >> 20);
            reported = written;
        }
    }
    output
        .sync_all()
        .map_err(|e| format!("flash: syncing {}: {e}", device.display()))
}
