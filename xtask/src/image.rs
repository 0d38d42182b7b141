//! `cargo xtask image --board B`: the bootable disk image in `target/images/B/`.
//!
//! ```text
//! target/images/B/vmlinuz         the kernel, for qemu's -kernel
//! target/images/B/initramfs.img   the gzip'd cpio initramfs, for qemu's -initrd
//! target/images/B/disk.img        GPT: EFI system partition (/vmlinuz, /initramfs.img)
//!                                 and amber-data (ext4: pkg/images/, pkg/state/)
//! ```
//!
//! Nothing here needs root or a loop mount: the FAT file system is made on a file with
//! mkfs.vfat and filled with mcopy, the ext4 one with `mke2fs -d` from a staging
//! directory, and the partitions are copied into the disk file at their offsets.
//!
//! The data partition's store is prepared with the host pkg (`pkg --root`, with
//! `AMBER_ARCH` set to the board's architecture): it trusts the development key,
//! installs the board's `packages.preinstall` from `target/repo/` (see
//! [`crate::packages`]), and then lists the board's `repos` as its repositories.
//!
//! The ESP holds no boot loader yet: qemu boots the kernel directly with -kernel and
//! -initrd, and real hardware will need one (systemd-boot or the kernel's EFI stub
//! with a startup.nsh) when its board arrives.

use crate::args::Args;
use crate::board::Board;
use crate::build::file_size;
use crate::cmd::Cmd;
use crate::gpt::{self, Layout};
use crate::initramfs;
use crate::kernel::Kernel;
use crate::modules::Module;
use crate::util::{copy, create_dir, path_str, read, size, step, write};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// 1980-01-01, the earliest time FAT can store: the partitions' times are
/// SOURCE_DATE_EPOCH, or this when it is earlier (or unset).
const FAT_EPOCH: u32 = 315_532_800;

/// What an image build produced.
pub struct Images {
    pub binary: PathBuf,
    pub kernel: Kernel,
    pub modules: Vec<Module>,
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    /// The board's disk image; missing when it was never made and the build was asked
    /// to [`Disk::Skip`] it.
    pub disk: PathBuf,
    pub base_initramfs_bytes: u64,
    pub initramfs_bytes: u64,
}

/// Whether to remake the disk image when one exists (it holds the device's data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    Remake,
    KeepExisting,
    /// Leave the disk image alone, made or not: the caller makes its own disk with
    /// [`make_disk`] (the end-to-end test).
    Skip,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse("image", args, &["--board"], &[])?;
    let board = args.board()?;
    crate::deps::ensure()?;
    let images = build(&board, Disk::Remake)?;
    print_summary(&board, &images)?;
    Ok(())
}

pub fn directory(board: &Board) -> PathBuf {
    Path::new("target/images").join(&board.name)
}

/// Build everything the board boots from.
pub fn build(board: &Board, disk: Disk) -> Result<Images, String> {
    let directory = directory(board);
    create_dir(&directory)?;
    let kernel = crate::kernel::prepare(board)?;
    step(&format!("kernel {} ({})", kernel.release, kernel.origin));
    let modules = crate::modules::resolve(board, &kernel)?;
    let binary = crate::build::device_binary(board)?;
    let keys = trusted_keys()?;

    step("initramfs");
    let archive = initramfs::archive(board, read(&binary)?, &keys, &modules);
    let scratch = Path::new("target/tmp");
    let full = initramfs::gzip(&archive.to_bytes(initramfs::mtime()), scratch)?;
    let base = initramfs::gzip(
        &initramfs::base(&archive).to_bytes(initramfs::mtime()),
        scratch,
    )?;
    let initramfs = directory.join("initramfs.img");
    write(&initramfs, &full)?;
    let vmlinuz = directory.join("vmlinuz");
    copy(&kernel.vmlinuz, &vmlinuz)?;

    let disk_path = directory.join("disk.img");
    match disk {
        Disk::Skip => {}
        Disk::KeepExisting if disk_path.is_file() => step(&format!(
            "keeping {} (its data partition is the device's; `cargo xtask image` remakes it)",
            disk_path.display()
        )),
        Disk::Remake | Disk::KeepExisting => {
            make_disk(board, &directory, &vmlinuz, &initramfs, &disk_path)?
        }
    }
    Ok(Images {
        binary,
        kernel,
        modules,
        vmlinuz,
        initramfs,
        disk: disk_path,
        base_initramfs_bytes: base.len() as u64,
        initramfs_bytes: full.len() as u64,
    })
}

/// The public keys the image trusts: for now the development key.
pub fn trusted_keys() -> Result<Vec<(String, Vec<u8>)>, String> {
    let key = crate::keys::development()?;
    Ok(vec![("dev.pub".to_owned(), read(&key.public)?)])
}

pub fn print_summary(board: &Board, images: &Images) -> Result<(), String> {
    println!("board {} ({})", board.name, board.rust_target);
    println!(
        "  kernel      {} ({})",
        images.kernel.release, images.kernel.origin
    );
    println!(
        "  modules     {}",
        images
            .modules
            .iter()
            .map(|module| module.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("  binary      {}", size(file_size(&images.binary)?));
    println!(
        "  initramfs   {} compressed; {} without modules (budget {})",
        size(images.initramfs_bytes),
        size(images.base_initramfs_bytes),
        size(board.budget.base_initramfs_bytes)
    );
    println!("  vmlinuz     {}", images.vmlinuz.display());
    println!("  initramfs   {}", images.initramfs.display());
    println!(
        "  disk        {} ({})",
        images.disk.display(),
        size(file_size(&images.disk)?)
    );
    Ok(())
}

/// The board's disk layout: the EFI system partition, then the data partition.
pub fn layout(board: &Board) -> Result<Layout, String> {
    Layout::new(
        &board.name,
        &[
            ("EFI system", gpt::TYPE_ESP, board.esp_bytes),
            ("amber-data", gpt::TYPE_LINUX, board.data_bytes),
        ],
    )
}

/// Make a disk image at `disk` holding the given kernel and initramfs and a fresh data
/// partition, using `directory` for the partitions while they are made.
pub fn make_disk(
    board: &Board,
    directory: &Path,
    vmlinuz: &Path,
    initramfs: &Path,
    disk: &Path,
) -> Result<(), String> {
    let layout = layout(board)?;
    let esp = directory.join("esp.img");
    let data = directory.join("data.img");
    step("EFI system partition (FAT)");
    make_esp(board, &layout.partitions[0], &esp, vmlinuz, initramfs)?;
    step("data partition amber-data (ext4)");
    make_data(board, &layout.partitions[1], directory, &data)?;
    step(&format!("disk {}", disk.display()));
    let file = File::create(disk).map_err(|e| format!("cannot create {}: {e}", disk.display()))?;
    file.set_len(layout.disk_size)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let write_at = |bytes: &[u8], offset: u64| {
        file.write_all_at(bytes, offset)
            .map_err(|e| format!("cannot write {}: {e}", disk.display()))
    };
    write_at(&layout.head(), 0)?;
    write_at(&layout.tail(), layout.tail_offset())?;
    for (partition, image) in layout.partitions.iter().zip([&esp, &data]) {
        copy_sparse(image, &file, partition.offset, partition.size)?;
        std::fs::remove_file(image).map_err(|e| format!("{}: {e}", image.display()))?;
    }
    file.sync_all()
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    Ok(())
}

fn make_esp(
    board: &Board,
    partition: &gpt::Partition,
    esp: &Path,
    vmlinuz: &Path,
    initramfs: &Path,
) -> Result<(), String> {
    let _ = std::fs::remove_file(esp);
    // The volume id comes from the partition's GUID, so rebuilds give the same bytes.
    let volume_id: String = partition.unique_guid[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Cmd::new("mkfs.vfat")
        .args([
            "--invariant",
            "-i",
            &volume_id,
            "-n",
            "AMBER-ESP",
            "-C",
            path_str(esp)?,
            &(partition.size / 1024).to_string(),
        ])
        .run()?;
    // mcopy stamps files with SOURCE_DATE_EPOCH when set; FAT times start in 1980.
    let fat_epoch = initramfs::mtime().max(FAT_EPOCH).to_string();
    for (from, to) in [(vmlinuz, "::/vmlinuz"), (initramfs, "::/initramfs.img")] {
        Cmd::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("SOURCE_DATE_EPOCH", &fat_epoch)
            .env("TZ", "UTC")
            .args(["-o", "-i", path_str(esp)?, path_str(from)?, to])
            .run()
            .map_err(|e| format!("board {}: {e} (is image.esp-mib too small?)", board.name))?;
    }
    Ok(())
}

fn make_data(
    board: &Board,
    partition: &gpt::Partition,
    directory: &Path,
    data: &Path,
) -> Result<(), String> {
    let staging = directory.join("data-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(|e| format!("cannot clear {}: {e}", staging.display()))?;
    }
    // The preinstalled store (DESIGN §5): verified images and generations.
    for relative in ["pkg", "pkg/images", "pkg/state"] {
        create_dir(&staging.join(relative))?;
    }
    preinstall(board, &staging.join("pkg"))?;
    let _ = std::fs::remove_file(data);
    let file = File::create(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    file.set_len(partition.size)
        .map_err(|e| format!("{}: {e}", data.display()))?;
    drop(file);
    let uuid = gpt::guid_text(&gpt::derived_guid(&format!("{}/data/ext4", board.name)));
    // E2FSPROGS_FAKE_TIME fixes every time mke2fs and debugfs write (0 would mean
    // "not set"); the same 1980 floor as the ESP keeps the two alike.
    let epoch = initramfs::mtime().max(FAT_EPOCH).to_string();
    Cmd::new("mke2fs")
        .env("E2FSPROGS_FAKE_TIME", &epoch)
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "amber-data",
            "-U",
            &uuid,
            "-E",
            &format!("root_owner=0:0,hash_seed={uuid}"),
            "-d",
            path_str(&staging)?,
            path_str(data)?,
        ])
        .run()?;
    // mke2fs -d copies owners and times from the staging files, which belong to whoever
    // runs the build: set them to root and the same fixed time.
    let mut commands = String::new();
    let mut paths = vec![String::new(), "lost+found".to_owned()];
    walk(&staging, "", &mut paths)?;
    for relative in &paths {
        for field in ["uid", "gid"] {
            commands.push_str(&format!("sif /{relative} {field} 0\n"));
        }
        for field in ["mtime", "atime", "ctime", "crtime"] {
            commands.push_str(&format!("sif /{relative} {field} {epoch}\n"));
        }
    }
    let script = directory.join("data-owners.debugfs");
    write(&script, commands.as_bytes())?;
    Cmd::new("debugfs")
        .env("E2FSPROGS_FAKE_TIME", &epoch)
        .args(["-w", "-f", path_str(&script)?, path_str(data)?])
        .output()?;
    let _ = std::fs::remove_file(&script);
    std::fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    Ok(())
}

/// Install the board's preinstalled packages into the store at `store` from the local
/// repository, then point the store at the board's repositories.
fn preinstall(board: &Board, store: &Path) -> Result<(), String> {
    if board.preinstall.is_empty() {
        return Ok(());
    }
    let pkg = crate::packages::repository(board.arch)?;
    step(&format!(
        "preinstalling {} for {}",
        board.preinstall.join(" "),
        board.arch.name()
    ));
    let repo = std::fs::canonicalize(crate::run::REPO_DIR)
        .map_err(|e| format!("{}: {e}", crate::run::REPO_DIR))?;
    let local = format!("file://{}", path_str(&repo)?);
    let key = crate::keys::development()?;
    let run = |args: &[&str]| {
        Cmd::new(path_str(&pkg)?)
            .args(["--root", path_str(store)?])
            .args(args)
            .env("AMBER_ARCH", board.arch.name())
            .run()
    };
    run(&["key", "add", path_str(&key.public)?])?;
    run(&["repo", "add", &local])?;
    run(&["update"])?;
    let mut add = vec!["add"];
    add.extend(board.preinstall.iter().map(String::as_str));
    run(&add)?;
    run(&["repo", "del", &local])?;
    for url in &board.repos {
        run(&["repo", "add", url])?;
    }
    Ok(())
}

/// Every path under `directory`, relative to it, parents first.
pub fn walk(directory: &Path, prefix: &str, paths: &mut Vec<String>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(directory).map_err(|e| format!("{}: {e}", directory.display()))?;
    let mut names: Vec<_> = entries
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", directory.display()))?;
    names.sort();
    for name in names {
        let name = name
            .to_str()
            .ok_or_else(|| format!("{}: a name that is not UTF-8", directory.display()))?;
        let relative = format!("{prefix}/{name}");
        paths.push(relative.trim_start_matches('/').to_owned());
        let path = directory.join(name);
        if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            walk(&path, &relative, paths)?;
        }
    }
    Ok(())
}

/// Copy a partition image into the disk at `offset`, skipping all-zero blocks so the
/// disk file stays sparse (it was sized with set_len, so skipped blocks read as zero).
fn copy_sparse(image: &Path, disk: &File, offset: u64, limit: u64) -> Result<(), String> {
    let length = file_size(image)?;
    if length > limit {
        return Err(format!(
            "{} is {length} bytes, more than its partition's {limit}",
            image.display()
        ));
    }
    let mut input = File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut block = vec![0u8; 1 << 16];
    let mut at = 0u64;
    loop {
        let mut filled = 0;
        while filled < block.len() {
            let read = input
                .read(&mut block[filled..])
                .map_err(|e| format!("{}: {e}", image.display()))?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            break;
        }
        if block[..filled].iter().any(|&b| b != 0) {
            disk.write_all_at(&block[..filled], offset + at)
                .map_err(|e| format!("cannot write the disk image: {e}"))?;
        }
        at += filled as u64;
    }
    Ok(())
}
