//! `cargo xtask image --board B [--trust KEY.pub]...`: the bootable disk image in
//! `target/images/B/`, the bytes `cargo xtask flash` writes and every test boots.
//!
//! ```text
//! target/images/B/initramfs.img      the gzip'd cpio initramfs
//! target/images/B/amber-<v>.efi      UEFI boards: the system, one unified kernel image
//! target/images/B/disk.img           the disk (DESIGN §10)
//! ```
//!
//! UEFI boards (GPT):
//!
//! ```text
//! EFI system partition (FAT32)
//!   EFI/BOOT/BOOTX64.EFI | BOOTAA64.EFI   systemd-boot, the removable-media loader
//!   loader/loader.conf                    boot the newest good system at once
//!   EFI/Linux/amber-<v>+3.efi             the system, three tries left
//! amber-data (ext4)                       pkg/images/, pkg/state/
//! ```
//!
//! The ESP is sized for two systems and a third being written (the running one, the
//! previous good one, and an update: DESIGN §11); systemd-boot counts the tries in the
//! file name and renames it on every boot.
//!
//! Raspberry Pi boards (MBR, DESIGN §10):
//!
//! ```text
//! partition 1, FAT32 (type 0x0c)   the Pi firmware, config.txt, cmdline.txt,
//!                                  vmlinuz (Debian's arm64 Image), initramfs.img, DTBs
//! partition 2, ext4 amber-data
//! ```
//!
//! A Pi image is a power of two bytes long, as qemu's SD card must be; it is all
//! holes past the data partition, which `flash` skips.
//!
//! Nothing here needs root or a loop mount: the FAT file system is made on a file with
//! mkfs.vfat and filled with mtools, the ext4 one with `mke2fs -d` from a staging
//! directory, and the partitions are copied into the disk file at their offsets. The
//! same inputs give the same bytes.
//!
//! The data partition's store is prepared with the host pkg (`pkg --root`, with
//! `AMBER_ARCH` set to the board's architecture): it trusts the image's keys, installs
//! the board's `packages.preinstall` from `target/repo/` (see [`crate::packages`]), and
//! then lists the board's `repos` as its repositories.
//!
//! The image trusts the development key (`target/keys/`, made on first use) unless
//! `--trust KEY.pub` names the deployment keys; the build then warns on one line.

use crate::args::Args;
use crate::board::{Arch, Board, Firmware};
use crate::build::file_size;
use crate::cmd::Cmd;
use crate::gpt;
use crate::initramfs;
use crate::kernel::Kernel;
use crate::mbr;
use crate::modules::Modules;
use crate::util::{create_dir, path_str, read, size, step, write};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// 1980-01-01, the earliest time FAT can store: the partitions' times are
/// SOURCE_DATE_EPOCH, or this when it is earlier (or unset).
const FAT_EPOCH: u32 = 315_532_800;

/// The tries systemd-boot gives a new system before it falls back (`+3` in its name).
pub const BOOT_TRIES: u32 = 3;

/// What an image build produced.
pub struct Images {
    pub binary: PathBuf,
    pub kernel: Kernel,
    pub modules: Modules,
    pub initramfs: PathBuf,
    /// UEFI boards: the unified kernel image; Pi boards: the kernel the firmware loads.
    pub system: System,
    /// The board's disk image; missing when it was never made and the build was asked
    /// to [`Disk::Skip`] it.
    pub disk: PathBuf,
    pub base_initramfs_bytes: u64,
    pub initramfs_bytes: u64,
    /// The public keys the image trusts: (file name in /etc/amber/keys, bytes).
    pub keys: Vec<(String, Vec<u8>)>,
}

/// The system one release boots: what A/B updates replace (DESIGN §11).
pub enum System {
    /// A unified kernel image, and the systemd-boot loader that starts it.
    Uki {
        uki: PathBuf,
        version: String,
        loader: PathBuf,
    },
    /// The boot partition's files, by their names there, and the release: a SquashFS
    /// image of them, which `pkg system upgrade` writes into the other boot partition.
    RaspberryPi {
        files: Vec<(String, PathBuf)>,
        release: PathBuf,
    },
}

/// Whether to remake the disk image when one exists (it holds the device's data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    Remake,
    /// Keep an existing disk's data partition and write this build's boot partition
    /// onto it ([`refresh_boot`]), so `cargo xtask run` boots what was just built.
    KeepExisting,
    /// Leave the disk image alone, made or not: the caller makes its own disk with
    /// [`make_disk`] (the end-to-end test).
    Skip,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse("image", args, &["--board", "--trust"], &[])?;
    let board = args.board()?;
    crate::deps::ensure()?;
    let trust: Vec<PathBuf> = args
        .values("--trust")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let images = build_trusting(&board, Disk::Remake, &trust)?;
    print_summary(&board, &images)?;
    Ok(())
}

pub fn directory(board: &Board) -> PathBuf {
    Path::new("target/images").join(&board.name)
}

/// The release of the system an image holds: `AMBER_VERSION`, or the workspace's
/// version. A/B updates only ever move to a greater one (DESIGN §11).
pub fn system_version() -> String {
    std::env::var("AMBER_VERSION").unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_owned())
}

/// A file added to a release's initramfs: (path in it, mode, contents).
pub type ExtraFile = (String, u32, Vec<u8>);

/// What makes one release of a system: its version, and for tests, files added to its
/// initramfs and whether its kernel is to panic at once (an initramfs with no /init).
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub extra: Vec<ExtraFile>,
    pub broken: bool,
}

impl Release {
    /// The release `cargo xtask image` builds: [`system_version`], nothing added.
    pub fn standard() -> Release {
        Release {
            version: system_version(),
            extra: Vec::new(),
            broken: false,
        }
    }

    /// The initramfs files every release has besides the board's: its version.
    fn files(&self) -> Vec<ExtraFile> {
        let mut files = vec![(
            "etc/amber/version".to_owned(),
            0o644,
            format!("{}\n", self.version).into_bytes(),
        )];
        files.extend(self.extra.iter().cloned());
        files
    }
}

/// Build everything the board boots from, trusting the development key.
pub fn build(board: &Board, disk: Disk) -> Result<Images, String> {
    build_trusting(board, disk, &[])
}

/// Build everything the board boots from; the image trusts `trust` (public key files),
/// or the development key when that is empty.
pub fn build_trusting(board: &Board, disk: Disk, trust: &[PathBuf]) -> Result<Images, String> {
    build_release(board, disk, trust, &Release::standard(), &directory(board))
}

/// Build a release of the board's system in `directory` (the board's images directory,
/// or a test's), and its disk as `disk` says.
pub fn build_release(
    board: &Board,
    disk: Disk,
    trust: &[PathBuf],
    release: &Release,
    directory: &Path,
) -> Result<Images, String> {
    let directory = directory.to_path_buf();
    create_dir(&directory)?;
    let kernel = crate::kernel::prepare(board)?;
    step(&format!("kernel {} ({})", kernel.release, kernel.origin));
    let modules = crate::modules::resolve(board, &kernel)?;
    let binary = crate::build::device_binary(board)?;
    let keys = trusted_keys(trust)?;
    if trust.is_empty() {
        eprintln!(
            "warning: the image trusts the development key target/keys/dev.pub, whose secret \
             key is unencrypted on this machine; for a deployment, build with --trust KEY.pub"
        );
    }

    step("initramfs");
    let archive = initramfs::archive(board, read(&binary)?, &keys, &modules, &release.files());
    let scratch = Path::new("target/tmp");
    let full = initramfs::gzip(&archive.to_bytes(initramfs::mtime()), scratch)?;
    // A release whose kernel is to panic at once gets an initramfs without /init.
    let booted = if release.broken {
        initramfs::gzip(
            &crate::cpio::Archive::new().to_bytes(initramfs::mtime()),
            scratch,
        )?
    } else {
        full.clone()
    };
    let base = initramfs::gzip(
        &initramfs::base(&archive).to_bytes(initramfs::mtime()),
        scratch,
    )?;
    let initramfs = directory.join("initramfs.img");
    write(&initramfs, &full)?;
    let system = match &board.firmware {
        Firmware::Uefi => uefi_system(board, &kernel, &booted, &release.version, &directory)?,
        Firmware::RaspberryPi(pi) => {
            pi_system(board, pi, &kernel, &initramfs, &release.version, &directory)?
        }
    };

    let mut images = Images {
        binary,
        kernel,
        modules,
        initramfs,
        system,
        disk: directory.join("disk.img"),
        base_initramfs_bytes: base.len() as u64,
        initramfs_bytes: full.len() as u64,
        keys,
    };
    let disk_path = images.disk.clone();
    match disk {
        Disk::Skip => {}
        Disk::KeepExisting if disk_path.is_file() => {
            step(&format!(
                "{}: this build's system on the boot partition; the data partition is the device's and stays (`cargo xtask image` remakes it)",
                disk_path.display()
            ));
            refresh_boot(board, &images, &disk_path)?;
        }
        Disk::Remake | Disk::KeepExisting => make_disk(board, &images, &disk_path)?,
    }
    images.disk = disk_path;
    Ok(images)
}

/// The UKI of this release: Debian's systemd stub with the kernel, the initramfs, the
/// board's command line and an os-release (`uki.rs`).
fn uefi_system(
    board: &Board,
    kernel: &Kernel,
    initramfs: &[u8],
    version: &str,
    directory: &Path,
) -> Result<System, String> {
    let boot = crate::debian::unpacked(board.arch.debian(), "systemd-boot-efi", "main")?;
    let efi = boot.tree.join("usr/lib/systemd/boot/efi");
    let (stub, loader) = match board.arch {
        Arch::X86_64 => ("linuxx64.efi.stub", "systemd-bootx64.efi"),
        Arch::Aarch64 => ("linuxaa64.efi.stub", "systemd-bootaa64.efi"),
    };
    let version = version.to_owned();
    step(&format!(
        "unified kernel image amber {version} ({}, {})",
        boot.origin, kernel.release
    ));
    let osrel = os_release(board, &version);
    let linux = read(&kernel.vmlinuz)?;
    let uki = crate::uki::build(
        &read(&efi.join(stub))?,
        &[
            crate::uki::Section {
                name: ".osrel",
                data: osrel.as_bytes(),
            },
            crate::uki::Section {
                name: ".cmdline",
                data: board.cmdline.as_bytes(),
            },
            crate::uki::Section {
                name: ".linux",
                data: &linux,
            },
            crate::uki::Section {
                name: ".initrd",
                data: initramfs,
            },
        ],
    )
    .map_err(|e| format!("{}: {e}", efi.join(stub).display()))?;
    let path = directory.join(format!("amber-{version}.efi"));
    write(&path, &uki)?;
    // The release is published beside the packages, so devices can update to it.
    if directory == self::directory(board) {
        let pkg = crate::packages::repository(board.arch)?;
        let settings = crate::recipes::Settings::standard(None)?;
        crate::recipes::publish_system(
            &settings,
            &pkg,
            board.arch,
            (&board.name, &version),
            &path,
            None,
        )?;
    }
    Ok(System::Uki {
        uki: path,
        version,
        loader: efi.join(loader),
    })
}

/// The os-release the UKI carries: systemd-boot shows PRETTY_NAME and orders systems
/// by VERSION_ID.
fn os_release(board: &Board, version: &str) -> String {
    format!(
        "NAME=amber\nID=amber\nVERSION_ID={version}\nPRETTY_NAME=\"amber {version} ({})\"\n",
        board.name
    )
}

/// The Pi boot partition's files: the firmware, config.txt, cmdline.txt, the kernel,
/// the initramfs and the DTBs the board's models use.
fn pi_system(
    board: &Board,
    pi: &crate::board::RaspberryPi,
    kernel: &Kernel,
    initramfs: &Path,
    version: &str,
    directory: &Path,
) -> Result<System, String> {
    let firmware =
        crate::debian::unpacked(board.arch.debian(), "raspi-firmware", "non-free-firmware")?;
    step(&format!("Raspberry Pi boot files ({})", firmware.origin));
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for name in &pi.files {
        let path = firmware.tree.join("usr/lib/raspi-firmware").join(name);
        if !path.is_file() {
            return Err(format!("{} has no {name}", firmware.origin));
        }
        files.push((name.clone(), path));
    }
    let dtb_dir = kernel
        .modules_dir
        .ancestors()
        .nth(3)
        .expect("modules_dir is <tree>/lib/modules/<release>")
        .join(format!("usr/lib/linux-image-{}/broadcom", kernel.release));
    for (_, dtb) in &pi.dtbs {
        let path = dtb_dir.join(dtb);
        if !path.is_file() {
            return Err(format!(
                "kernel {} has no {}",
                kernel.release,
                path.display()
            ));
        }
        if !files.iter().any(|(name, _)| name == dtb) {
            files.push((dtb.clone(), path));
        }
    }
    let config = directory.join("config.txt");
    write(&config, pi_config(board, pi).as_bytes())?;
    let cmdline = directory.join("cmdline.txt");
    write(&cmdline, format!("{}\n", board.cmdline).as_bytes())?;
    files.push(("config.txt".into(), config));
    files.push(("cmdline.txt".into(), cmdline));
    files.push((PI_KERNEL.into(), kernel.vmlinuz.clone()));
    files.push((PI_INITRAMFS.into(), initramfs.to_path_buf()));
    let version_file = directory.join(PI_VERSION_FILE);
    write(&version_file, format!("{version}\n").as_bytes())?;
    files.push((PI_VERSION_FILE.into(), version_file));
    // The release: the same files as one SquashFS image, made reproducibly.
    let staging = directory.join("release-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    }
    create_dir(&staging)?;
    for (name, path) in &files {
        crate::util::copy(path, &staging.join(name))?;
    }
    let release = directory.join(format!("amber-{version}.squashfs"));
    let _ = std::fs::remove_file(&release);
    Cmd::new("mksquashfs")
        .arg(path_str(&staging)?)
        .arg(path_str(&release)?)
        .args([
            "-comp",
            "gzip",
            "-noappend",
            "-all-root",
            "-no-xattrs",
            "-quiet",
        ])
        .args(["-mkfs-time", "0", "-all-time", "0", "-no-progress"])
        .output()?;
    std::fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    if directory == self::directory(board) {
        let pkg = crate::packages::repository(board.arch)?;
        let settings = crate::recipes::Settings::standard(None)?;
        crate::recipes::publish_system(
            &settings,
            &pkg,
            board.arch,
            (&board.name, version),
            &release,
            None,
        )?;
    }
    Ok(System::RaspberryPi { files, release })
}

/// The kernel's and the initramfs's names in a Pi boot partition.
pub const PI_KERNEL: &str = "vmlinuz";
pub const PI_INITRAMFS: &str = "initramfs.img";

/// config.txt, as Debian's raspi-firmware writes it for arm64 (64-bit mode, the mini
/// UART enabled at a fixed core clock, upstream DTB names), with the kernel, the
/// initramfs and, per model, the DTB named.
fn pi_config(board: &Board, pi: &crate::board::RaspberryPi) -> String {
    let mut text = format!(
        "# Written by cargo xtask image for board {}.\n\
         # Start the CPU in 64-bit mode.\n\
         arm_64bit=1\n\
         # The console is the mini UART (ttyS1); this fixes the core clock it runs from.\n\
         enable_uart=1\n\
         # Device trees with the mainline kernel's names (bcm2837-rpi-3-b.dtb, ...).\n\
         upstream_kernel=1\n\
         kernel={PI_KERNEL}\n\
         initramfs {PI_INITRAMFS} followkernel\n",
        board.name
    );
    for (filter, dtb) in &pi.dtbs {
        text.push_str(&format!("[{filter}]\ndevice_tree={dtb}\n"));
    }
    text.push_str("[all]\n");
    text
}

/// The public keys the image trusts: the files given, or else the development key (with
/// a warning: its secret key sits unencrypted in target/keys/).
pub fn trusted_keys(trust: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if trust.is_empty() {
        let key = crate::keys::development()?;
        return Ok(vec![("dev.pub".to_owned(), read(&key.public)?)]);
    }
    let mut keys = Vec::new();
    for path in trust {
        let bytes = read(path)?;
        let key = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| amber_core::minisign::PublicKey::parse_file(text).ok())
            .ok_or_else(|| format!("{}: not a minisign public key file", path.display()))?;
        // Named after the key id, so two files of one key are one key.
        let name = format!("{}.pub", key.key_id_hex());
        if !keys.iter().any(|(known, _)| *known == name) {
            keys.push((name, bytes));
        }
    }
    Ok(keys)
}

pub fn print_summary(board: &Board, images: &Images) -> Result<(), String> {
    println!("board {} ({})", board.name, board.rust_target);
    println!(
        "  kernel      {} ({})",
        images.kernel.release, images.kernel.origin
    );
    let names = |modules: &[crate::modules::Module]| {
        modules
            .iter()
            .map(|module| module.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  modules     {}", names(&images.modules.always));
    println!("  for devices {}", names(&images.modules.hardware));
    println!("  binary      {}", size(file_size(&images.binary)?));
    println!(
        "  initramfs   {}: {} compressed; {} without modules (budget {})",
        images.initramfs.display(),
        size(images.initramfs_bytes),
        size(images.base_initramfs_bytes),
        size(board.budget.base_initramfs_bytes)
    );
    match &images.system {
        System::Uki { uki, .. } => {
            println!(
                "  system      {} ({})",
                uki.display(),
                size(file_size(uki)?)
            )
        }
        System::RaspberryPi { files, release } => {
            println!(
                "  boot files  {}",
                files
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            println!(
                "  release     {} ({})",
                release.display(),
                size(file_size(release)?)
            );
        }
    }
    println!(
        "  disk        {} ({})",
        images.disk.display(),
        size(file_size(&images.disk)?)
    );
    Ok(())
}

/// Check the boot partition of a disk image as the board's firmware will read it, with
/// mtools: every file the firmware and the loader need is there, and what the
/// configuration names exists. Returns a one-line summary.
pub fn check_boot_partition(board: &Board, disk: &Path) -> Result<String, String> {
    let mut summary = String::new();
    let boot = match &board.firmware {
        Firmware::Uefi => places(board)?.boot[0],
        Firmware::RaspberryPi(pi) => {
            // Partition 1: autoboot.txt naming a boot partition, the config.txt the Pi 3
            // wants beside it, bootcode.bin when the model boots from one.
            let first = partition_files(disk, places(board)?.boot[0])?;
            let mut needed = vec!["autoboot.txt", "config.txt"];
            if pi.files.iter().any(|file| file == "bootcode.bin") {
                needed.push("bootcode.bin");
            }
            for name in &needed {
                if !first.iter().any(|file| file.eq_ignore_ascii_case(name)) {
                    return Err(format!("partition 1 has no {name}"));
                }
            }
            let slot = pi_active_slot(board, disk)?;
            summary = format!(
                "partition 1: {}; autoboot.txt boots partition {slot}: ",
                needed.join(" ")
            );
            places(board)?.boot[slot - 1]
        }
    };
    let image = format!("{}@@{}", path_str(disk)?, boot.offset);
    let mtools = |program: &str| Cmd::new(program).env("MTOOLS_SKIP_CHECK", "1");
    // `mdir -b -/` lists every file, one full path a line (`::/EFI/BOOT/BOOTX64.EFI`).
    let listing = mtools("mdir")
        .args(["-b", "-/", "-i", &image, "::/"])
        .output()?;
    let files: Vec<String> = listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("::/"))
        .filter(|path| !path.ends_with('/'))
        .map(str::to_owned)
        .collect();
    // FAT is case-insensitive; mtools prints the stored names.
    let has = |name: &str| files.iter().any(|file| file.eq_ignore_ascii_case(name));
    let read = |name: &str| -> Result<String, String> {
        mtools("mtype")
            .args(["-i", &image, &format!("::/{name}")])
            .output()
    };
    match &board.firmware {
        Firmware::Uefi => {
            let loader = match board.arch {
                Arch::X86_64 => "EFI/BOOT/BOOTX64.EFI",
                Arch::Aarch64 => "EFI/BOOT/BOOTAA64.EFI",
            };
            for needed in [loader, "loader/loader.conf"] {
                if !has(needed) {
                    return Err(format!("the ESP has no {needed}"));
                }
            }
            let systems: Vec<&String> = files
                .iter()
                .filter(|file| file.starts_with("EFI/Linux/") && file.ends_with(".efi"))
                .collect();
            let Some(system) = systems.first() else {
                return Err("the ESP has no system in EFI/Linux/".into());
            };
            let scratch = Path::new("target/tmp");
            create_dir(scratch)?;
            let copy = scratch.join(format!("{}-check.efi", board.name));
            mtools("mcopy")
                .args([
                    "-o",
                    "-n",
                    "-i",
                    &image,
                    &format!("::/{system}"),
                    path_str(&copy)?,
                ])
                .output()?;
            let sections = crate::uki::sections(&crate::util::read(&copy)?)?;
            let _ = std::fs::remove_file(&copy);
            for needed in [".osrel", ".cmdline", ".linux", ".initrd"] {
                if !sections.iter().any(|(name, _, _)| name == needed) {
                    return Err(format!("{system} has no {needed} section"));
                }
            }
            Ok(format!(
                "{loader}, loader/loader.conf, {} (sections {})",
                systems
                    .iter()
                    .map(|system| system.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                sections
                    .iter()
                    .map(|(name, _, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        }
        Firmware::RaspberryPi(pi) => {
            for needed in pi
                .files
                .iter()
                .map(String::as_str)
                .chain(["config.txt", "cmdline.txt"])
            {
                if !has(needed) {
                    return Err(format!("the boot partition has no {needed}"));
                }
            }
            let config = read("config.txt")?;
            let mut named = Vec::new();
            for line in config.lines().map(str::trim) {
                let value = line
                    .strip_prefix("kernel=")
                    .or_else(|| line.strip_prefix("device_tree="))
                    .or_else(|| {
                        line.strip_prefix("initramfs ")
                            .and_then(|rest| rest.split_whitespace().next())
                    });
                if let Some(value) = value {
                    if !has(value) {
                        return Err(format!(
                            "config.txt names {value}, which the boot partition has not"
                        ));
                    }
                    named.push(value.to_owned());
                }
            }
            if !named.iter().any(|name| name == PI_KERNEL) {
                return Err("config.txt names no kernel".into());
            }
            if read("cmdline.txt")?.trim().is_empty() {
                return Err("cmdline.txt is empty".into());
            }
            Ok(format!(
                "{summary}firmware {}; config.txt names {}",
                pi.files.join(" "),
                named.join(" ")
            ))
        }
    }
}

/// A partition of the disk: where it is and how big.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub offset: u64,
    pub size: u64,
}

/// Where the partitions of the board's disk are, and the disk's size.
pub struct Places {
    /// The partitions before the data partition. UEFI boards: the ESP. Pi boards: the
    /// autoboot partition (autoboot.txt), then the boot partitions A and B.
    pub boot: Vec<Place>,
    pub data: Place,
    pub disk_size: u64,
}

/// The Pi boards' partitions, 1-based as autoboot.txt numbers them.
pub const PI_SLOT_A: usize = 2;
pub const PI_SLOT_B: usize = 3;

pub fn places(board: &Board) -> Result<Places, String> {
    match &board.firmware {
        Firmware::Uefi => {
            let layout = gpt_layout(board)?;
            let place = |index: usize| Place {
                offset: layout.partitions[index].offset,
                size: layout.partitions[index].size,
            };
            Ok(Places {
                boot: vec![place(0)],
                data: place(1),
                disk_size: layout.disk_size,
            })
        }
        Firmware::RaspberryPi(_) => {
            let layout = mbr_layout(board)?;
            let place = |index: usize| Place {
                offset: layout.partitions[index].offset,
                size: layout.partitions[index].size,
            };
            Ok(Places {
                boot: vec![place(0), place(1), place(2)],
                data: place(3),
                disk_size: layout.disk_size,
            })
        }
    }
}

/// The UEFI disk: the EFI system partition, then the data partition.
fn gpt_layout(board: &Board) -> Result<gpt::Layout, String> {
    gpt::Layout::new(
        &board.name,
        &[
            ("EFI system", gpt::TYPE_ESP, board.boot_bytes),
            ("amber-data", gpt::TYPE_LINUX, board.data_bytes),
        ],
    )
}

/// The size of the Pi's autoboot partition: FAT16, which the Pi 3's boot ROM reads
/// (a tiny FAT12 one it does not).
const PI_AUTOBOOT_BYTES: u64 = 8 << 20;

/// The Pi disk (DESIGN §10, §11): the autoboot partition (autoboot.txt, and the Pi 3's
/// bootcode.bin, which its boot ROM takes only from partition 1), the boot partitions A
/// and B, then the data partition: four primary partitions, as the Pi's A/B needs, on a
/// card image of a power of two bytes (qemu's SD card needs that).
fn mbr_layout(board: &Board) -> Result<mbr::Layout, String> {
    let parts = [
        (mbr::TYPE_FAT16_LBA, PI_AUTOBOOT_BYTES),
        (mbr::TYPE_FAT32_LBA, board.boot_bytes),
        (mbr::TYPE_FAT32_LBA, board.boot_bytes),
        (mbr::TYPE_LINUX, board.data_bytes),
    ];
    let needed = mbr::Layout::new(&board.name, &parts, None)?.disk_size;
    mbr::Layout::new(&board.name, &parts, Some(needed.next_power_of_two()))
}

/// Make a disk image at `disk` holding the build's system and a fresh data partition,
/// using the disk's directory for the partitions while they are made.
pub fn make_disk(board: &Board, images: &Images, disk: &Path) -> Result<(), String> {
    let directory = disk.parent().unwrap_or(Path::new("."));
    let places = places(board)?;
    let boots = make_boot_partitions(board, images, &places, directory)?;
    let data = directory.join("data.img");
    step("data partition amber-data (ext4)");
    make_data(board, places.data, directory, &data, &images.keys)?;
    let disk_size = places.disk_size;
    step(&format!("disk {}", disk.display()));
    let _ = std::fs::remove_file(disk);
    let file = File::create(disk).map_err(|e| format!("cannot create {}: {e}", disk.display()))?;
    file.set_len(disk_size)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let write_at = |bytes: &[u8], offset: u64| {
        file.write_all_at(bytes, offset)
            .map_err(|e| format!("cannot write {}: {e}", disk.display()))
    };
    match &board.firmware {
        Firmware::Uefi => {
            let layout = gpt_layout(board)?;
            write_at(&layout.head(), 0)?;
            write_at(&layout.tail(), layout.tail_offset())?;
        }
        Firmware::RaspberryPi(_) => write_at(&mbr_layout(board)?.sector(), 0)?,
    }
    for (place, image) in boots.iter().chain([&(places.data, data)]) {
        copy_sparse(image, &file, place.offset, place.size)?;
        std::fs::remove_file(image).map_err(|e| format!("{}: {e}", image.display()))?;
    }
    file.sync_all()
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    Ok(())
}

/// Put this build's system on an existing disk: its boot partition is made again and
/// written in place, and the data partition (the device's packages and settings) is
/// left as it is. A disk whose size does not fit the board's layout is refused.
pub fn refresh_boot(board: &Board, images: &Images, disk: &Path) -> Result<(), String> {
    let directory = disk.parent().unwrap_or(Path::new("."));
    let places = places(board)?;
    let disk_size = places.disk_size;
    let found = file_size(disk)?;
    if found != disk_size {
        return Err(format!(
            "{} is {found} bytes, not the {disk_size} of board {}'s layout; `cargo xtask image --board {}` makes a new one",
            disk.display(),
            board.name,
            board.name
        ));
    }
    let boots = make_boot_partitions(board, images, &places, directory)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(|e| format!("cannot open {}: {e}", disk.display()))?;
    for (place, boot) in boots {
        // Every block of the partition is written, zeros included: the old file
        // system's blocks must not show through.
        let bytes = read(&boot)?;
        file.write_all_at(&bytes, place.offset)
            .map_err(|e| format!("cannot write {}: {e}", disk.display()))?;
        std::fs::remove_file(&boot).map_err(|e| format!("{}: {e}", boot.display()))?;
    }
    file.sync_all()
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    Ok(())
}

/// The partitions before the data partition, each as a file in `directory` with the
/// place it goes: the ESP with systemd-boot and the UKI; or the Pi's autoboot
/// partition, boot partition A with the system, and an empty B.
fn make_boot_partitions(
    board: &Board,
    images: &Images,
    places: &Places,
    directory: &Path,
) -> Result<Vec<(Place, PathBuf)>, String> {
    match &images.system {
        System::Uki {
            uki,
            version,
            loader,
        } => {
            step("EFI system partition (FAT32): systemd-boot and the system");
            let boot = directory.join("boot.img");
            let loader_name = match board.arch {
                Arch::X86_64 => "BOOTX64.EFI",
                Arch::Aarch64 => "BOOTAA64.EFI",
            };
            let loader_conf = directory.join("loader.conf");
            write(&loader_conf, LOADER_CONF.as_bytes())?;
            let system_name = format!("amber-{version}+{BOOT_TRIES}.efi");
            make_fat(
                board,
                places.boot[0],
                &boot,
                "AMBER-ESP",
                &["EFI", "EFI/BOOT", "EFI/Linux", "loader"],
                &[
                    (loader.as_path(), format!("EFI/BOOT/{loader_name}")),
                    (loader_conf.as_path(), "loader/loader.conf".to_owned()),
                    (uki.as_path(), format!("EFI/Linux/{system_name}")),
                ],
            )?;
            let _ = std::fs::remove_file(&loader_conf);
            Ok(vec![(places.boot[0], boot)])
        }
        System::RaspberryPi { files, .. } => {
            step("Pi partitions (FAT): autoboot.txt; A: firmware, config.txt, kernel, initramfs, DTBs; B: empty");
            let autoboot = directory.join("autoboot.img");
            let text = directory.join("autoboot.txt");
            write(&text, pi_autoboot(PI_SLOT_A, PI_SLOT_B).as_bytes())?;
            // The Pi 3's firmware wants a config.txt beside autoboot.txt, if empty.
            let config = directory.join("autoboot-config.txt");
            write(
                &config,
                b"# The firmware boots the partition autoboot.txt names.\n",
            )?;
            // What each boot partition holds: A the image's system, good.
            let version = files
                .iter()
                .find(|(name, _)| name == PI_VERSION_FILE)
                .map(|(_, path)| std::fs::read_to_string(path).unwrap_or_default())
                .unwrap_or_default();
            let slots = directory.join("amber-slots");
            write(
                &slots,
                format!("{PI_SLOT_A} good {}\n", version.trim()).as_bytes(),
            )?;
            let mut first: Vec<(&Path, String)> = vec![
                (text.as_path(), "autoboot.txt".to_owned()),
                (config.as_path(), "config.txt".to_owned()),
                (slots.as_path(), "amber-slots".to_owned()),
            ];
            // bootcode.bin (Pi 3 and earlier) is read from partition 1 only.
            if let Some((_, path)) = files.iter().find(|(name, _)| name == "bootcode.bin") {
                first.push((path.as_path(), "bootcode.bin".to_owned()));
            }
            make_fat16(board, places.boot[0], &autoboot, "AMBER-BOOT", &first)?;
            let slot_a = directory.join("slot-a.img");
            let files: Vec<(&Path, String)> = files
                .iter()
                .map(|(name, path)| (path.as_path(), name.clone()))
                .collect();
            make_fat(board, places.boot[1], &slot_a, "AMBER-A", &[], &files)?;
            let slot_b = directory.join("slot-b.img");
            make_fat(board, places.boot[2], &slot_b, "AMBER-B", &[], &[])?;
            let _ = std::fs::remove_file(&text);
            let _ = std::fs::remove_file(&config);
            let _ = std::fs::remove_file(&slots);
            Ok(vec![
                (places.boot[0], autoboot),
                (places.boot[1], slot_a),
                (places.boot[2], slot_b),
            ])
        }
    }
}

/// Every file of the FAT partition at `place` of `disk`, by its path inside.
fn partition_files(disk: &Path, place: Place) -> Result<Vec<String>, String> {
    let image = format!("{}@@{}", path_str(disk)?, place.offset);
    let listing = Cmd::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-b", "-/", "-i", &image, "::/"])
        .output()?;
    Ok(listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("::/"))
        .filter(|path| !path.ends_with('/'))
        .map(str::to_owned)
        .collect())
}

/// The boot partition (2 or 3) a Pi image's autoboot.txt boots without the tryboot flag.
pub fn pi_active_slot(board: &Board, disk: &Path) -> Result<usize, String> {
    let first = places(board)?.boot[0];
    let image = format!("{}@@{}", path_str(disk)?, first.offset);
    let text = Cmd::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &image, "::/autoboot.txt"])
        .output()
        .map_err(|e| format!("reading autoboot.txt out of partition 1: {e}"))?;
    // The first `boot_partition=` is the one under `[all]`.
    text.lines()
        .find_map(|line| line.trim().strip_prefix("boot_partition="))
        .and_then(|number| number.trim().parse().ok())
        .filter(|slot| *slot == PI_SLOT_A || *slot == PI_SLOT_B)
        .ok_or_else(|| "autoboot.txt names no boot partition 2 or 3".to_owned())
}

/// The place of the Pi boot partition the image boots now.
pub fn pi_active_place(board: &Board, disk: &Path) -> Result<Place, String> {
    let slot = pi_active_slot(board, disk)?;
    Ok(places(board)?.boot[slot - 1])
}

/// autoboot.txt: boot `committed`, or `trying` when the firmware's one-shot tryboot flag
/// is set (DESIGN §11). The commit of an update rewrites it.
pub fn pi_autoboot(committed: usize, trying: usize) -> String {
    amber_core::system::pi::autoboot(committed as u8, trying as u8)
}

/// The file in a Pi boot partition that says which system it holds.
pub const PI_VERSION_FILE: &str = "amber-version";

/// systemd-boot's settings: no menu unless a key is held, no editing of the kernel
/// command line (it would bypass what the image says), no entries of its own making.
/// The newest system whose tries are not used up boots first.
pub const LOADER_CONF: &str = "\
# Written by cargo xtask image. Hold a key at power-on for the menu.
timeout 0
editor no
auto-entries no
auto-firmware no
";

/// A FAT16 file system (for the Pi's small autoboot partition), as [`make_fat`].
fn make_fat16(
    board: &Board,
    place: Place,
    image: &Path,
    label: &str,
    files: &[(&Path, String)],
) -> Result<(), String> {
    make_fat_of(board, place, image, label, "16", &[], files)
}

/// A FAT32 file system of the partition's size at `image`, with `directories` made and
/// `files` (host path, path inside) copied in, all stamped with the same time.
fn make_fat(
    board: &Board,
    place: Place,
    image: &Path,
    label: &str,
    directories: &[&str],
    files: &[(&Path, String)],
) -> Result<(), String> {
    make_fat_of(board, place, image, label, "32", directories, files)
}

fn make_fat_of(
    board: &Board,
    place: Place,
    image: &Path,
    label: &str,
    bits: &str,
    directories: &[&str],
    files: &[(&Path, String)],
) -> Result<(), String> {
    let _ = std::fs::remove_file(image);
    // The volume id comes from the board and label, so rebuilds give the same bytes.
    let guid = gpt::derived_guid(&format!("{}/fat/{label}", board.name));
    let volume_id: String = guid[..4].iter().map(|b| format!("{b:02x}")).collect();
    // FAT16 is the Pi's small first partition (a few MiB): one sector a cluster keeps
    // it above FAT16's least number of clusters, which larger clusters fall under.
    let cluster: &[&str] = if bits == "16" { &["-s", "1"] } else { &[] };
    Cmd::new("mkfs.vfat")
        .args(cluster)
        .args([
            "--invariant",
            "-F",
            bits,
            "-i",
            &volume_id,
            "-n",
            label,
            "-C",
            path_str(image)?,
            &(place.size / 1024).to_string(),
        ])
        .output()?;
    // mtools stamps files with SOURCE_DATE_EPOCH when set; FAT times start in 1980.
    let fat_epoch = initramfs::mtime().max(FAT_EPOCH).to_string();
    let mtools = |program: &str| {
        Cmd::new(program)
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("SOURCE_DATE_EPOCH", &fat_epoch)
            .env("TZ", "UTC")
    };
    for directory in directories {
        mtools("mmd")
            .args(["-i", path_str(image)?, &format!("::/{directory}")])
            .run()?;
    }
    for (from, to) in files {
        mtools("mcopy")
            .args([
                "-o",
                "-i",
                path_str(image)?,
                path_str(from)?,
                &format!("::/{to}"),
            ])
            .run()
            .map_err(|e| format!("board {}: {e} (is image.boot-mib too small?)", board.name))?;
    }
    Ok(())
}

fn make_data(
    board: &Board,
    place: Place,
    directory: &Path,
    data: &Path,
    keys: &[(String, Vec<u8>)],
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
    preinstall(board, &staging.join("pkg"), directory, keys)?;
    let _ = std::fs::remove_file(data);
    let file = File::create(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    file.set_len(place.size)
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
/// repository (signed with the development key), then point the store at the board's
/// repositories and make it trust exactly the image's `keys`.
fn preinstall(
    board: &Board,
    store: &Path,
    directory: &Path,
    keys: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let pkg = crate::packages::repository(board.arch)?;
    let run = |args: &[&str]| {
        Cmd::new(path_str(&pkg)?)
            .args(["--root", path_str(store)?])
            .args(args)
            .env("AMBER_ARCH", board.arch.name())
            .run()
    };
    let development = crate::keys::development()?;
    let development_id = key_id(&read(&development.public)?)?;
    if !board.preinstall.is_empty() {
        step(&format!(
            "preinstalling {} for {}",
            board.preinstall.join(" "),
            board.arch.name()
        ));
        let repo = std::fs::canonicalize(crate::recipes::REPO_DIR)
            .map_err(|e| format!("{}: {e}", crate::recipes::REPO_DIR))?;
        let local = format!("file://{}", path_str(&repo)?);
        run(&["key", "add", path_str(&development.public)?])?;
        run(&["repo", "add", &local])?;
        run(&["update"])?;
        let mut add = vec!["add"];
        add.extend(board.preinstall.iter().map(String::as_str));
        run(&add)?;
        run(&["repo", "del", &local])?;
    }
    for url in &board.repos {
        run(&["repo", "add", url])?;
    }
    let mut trusted = Vec::new();
    for (name, bytes) in keys {
        let id = key_id(bytes)?;
        if id != development_id {
            let file = directory.join(name);
            write(&file, bytes)?;
            run(&["key", "add", path_str(&file)?])?;
            let _ = std::fs::remove_file(&file);
        }
        trusted.push(id);
    }
    if !trusted.contains(&development_id) && !board.preinstall.is_empty() {
        // Only the deployment keys stay: the development key vouched for the
        // preinstalled images at build time, and nothing it signs is trusted after.
        run(&["key", "del", &development_id])?;
    }
    Ok(())
}

/// The key id of a minisign public key file, as `pkg key list` shows it.
fn key_id(file: &[u8]) -> Result<String, String> {
    std::str::from_utf8(file)
        .ok()
        .and_then(|text| amber_core::minisign::PublicKey::parse_file(text).ok())
        .map(|key| key.key_id_hex())
        .ok_or_else(|| "not a minisign public key file".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn board(name: &str) -> Board {
        let path = crate::cmd::workspace_root()
            .join(crate::board::BOARDS_DIR)
            .join(format!("{name}.toml"));
        crate::board::parse(name, &std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// A key made by `minisign -G -W` (core's known-answer key).
    const DEPLOY_KEY: &str = "untrusted comment: minisign public key B547D128DAB6A5F1\n\
        RWTxpbbaKNFHtYiVjnreRIAmwQBEy7qmESnn4wkJOv4/rOVt1rLIz9yi\n";

    #[test]
    fn trusted_keys_are_named_by_their_id_and_checked() {
        let dir = std::env::temp_dir().join(format!("amber-trust-{}", std::process::id()));
        create_dir(&dir).unwrap();
        let key = dir.join("deploy.pub");
        write(&key, DEPLOY_KEY.as_bytes()).unwrap();
        let same = dir.join("same.pub");
        write(&same, DEPLOY_KEY.as_bytes()).unwrap();
        let keys = trusted_keys(&[key.clone(), same]).unwrap();
        assert_eq!(keys.len(), 1, "one key given twice is one key");
        assert_eq!(keys[0].0, "B547D128DAB6A5F1.pub");
        assert_eq!(keys[0].1, DEPLOY_KEY.as_bytes());
        assert_eq!(key_id(DEPLOY_KEY.as_bytes()).unwrap(), "B547D128DAB6A5F1");
        let bad = dir.join("bad.pub");
        write(&bad, b"untrusted comment: not a key\nAAAA\n").unwrap();
        let error = trusted_keys(&[bad]).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("not a minisign public key file"), "{error}");
    }

    #[test]
    fn pi_config_names_kernel_initramfs_and_a_dtb_per_model() {
        let board = board("rpi3");
        let Firmware::RaspberryPi(pi) = &board.firmware else {
            panic!("rpi3 is a Pi board")
        };
        let config = pi_config(&board, pi);
        for line in [
            "arm_64bit=1",
            "kernel=vmlinuz",
            "initramfs initramfs.img followkernel",
            "[pi3]",
            "device_tree=bcm2837-rpi-3-b.dtb",
            "[all]",
        ] {
            assert!(config.lines().any(|l| l == line), "{line} in\n{config}");
        }
    }

    #[test]
    fn a_pi_card_is_a_power_of_two_and_partitions_fit() {
        for name in ["rpi3", "rpi4"] {
            let board = board(name);
            let places = places(&board).unwrap();
            assert!(
                places.disk_size.is_power_of_two(),
                "{name}: {}",
                places.disk_size
            );
            assert_eq!(places.boot.len(), 3, "autoboot, A, B");
            for pair in places.boot.windows(2) {
                assert!(pair[0].offset + pair[0].size <= pair[1].offset);
            }
            let last = places.boot[2];
            assert!(last.offset + last.size <= places.data.offset);
            assert!(places.data.offset + places.data.size <= places.disk_size);
        }
    }
}
