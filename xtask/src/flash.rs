//! `cargo xtask flash --board B --device DEV [--yes] [--force]`: write a disk image to a
//! whole block device, such as an SD card or USB stick, as safely as bmaptool,
//! rpi-imager and Etcher do (DESIGN §10).
//!
//! `--image FILE` writes that image instead of the board's `target/images/B/disk.img`
//! (which is built when missing). Paths are relative to the workspace root, as with
//! every xtask option.
//!
//! Before anything is written it refuses, in one line each: a path that is not a block
//! device, or is a partition rather than the whole disk; the disk holding the host's
//! `/`, `/usr`, `/boot` or ESP (through device-mapper and RAID to the disks beneath);
//! the image itself (the same file, a loop device over it, or the disk the image is
//! stored on); a disk with a partition that is mounted (`/proc/self/mountinfo`), held
//! by device-mapper or RAID (`holders/`) or used as swap (`/proc/swaps`); a disk
//! smaller than the image, or read-only. A disk the kernel does not call removable
//! (`removable` in sysfs: internal disks, but also loop devices) needs `--force`. It
//! asks before writing unless `--yes`, then opens the disk exclusively (`O_EXCL`: the
//! kernel refuses while anything, in any mount namespace, holds the disk or one of its
//! partitions, and nothing can mount them while we hold it) and checks again.
//!
//! The write, with `O_DIRECT` so the progress bar shows what reached the device:
//!
//! 1. the device's first MiB (the partition tables) is zeroed and synced, so an old
//!    table cannot survive an interrupted flash;
//! 2. the rest of the image is written, skipping its holes as bmaptool does: the
//!    image's holes (`SEEK_DATA`/`SEEK_HOLE`) and all-zero runs of at least 64 KiB are
//!    not written but zeroed with `BLKZEROOUT`, which the device does itself when it
//!    has a write-zeroes command (`queue/write_zeroes_max_bytes`; a loop device turns
//!    it into `fallocate(FALLOC_FL_ZERO_RANGE)`) and the kernel does by writing zeros
//!    when it has not. Either way the device reads zeros there; the summary says how
//!    many bytes were skipped and which of the two happened. (`BLKDISCARD` is not
//!    used: modern kernels no longer say whether a discarded block reads zeros.);
//! 3. synced, and only then the image's first MiB is written and synced: a flash cut
//!    short leaves a card with no partition table, which boots nothing, rather than one
//!    that half-boots;
//! 4. everything is read back through a second `O_DIRECT` descriptor (past the page
//!    cache) and the SHA-256 of the device's first image-size bytes must equal the
//!    image's.
//!
//! Ctrl-C (SIGINT or SIGTERM) or a failed write stops it: the first MiB is zeroed
//! again, the device synced, one line says the device is not bootable, and the exit is
//! non-zero.
//!
//! For tests only, `AMBER_FLASH_THROTTLE_BYTES_PER_SEC` slows the write to that rate,
//! so `cargo xtask flash-test` can interrupt a flash midway.

use crate::args::Args;
use crate::image::{self, Disk};
use crate::util::size;
use amber_core::hash::to_hex;
use amber_core::hash::Sha256Hasher;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The first MiB holds the partition tables: zeroed first, written last.
const HEAD: u64 = 1 << 20;
/// Bytes per read and write.
const CHUNK: usize = 4 << 20;
/// The unit of zero detection, a multiple of every logical block size.
const GRANULE: u64 = 4096;
/// Zero runs inside data shorter than this are written: one write is cheaper than an
/// extra ioctl.
const MIN_SKIP: u64 = 64 << 10;
/// The most one `BLKZEROOUT` is asked to do, so progress and Ctrl-C are never far off.
const ZERO_PIECE: u64 = 64 << 20;
/// Tests only: the write's rate limit in bytes per second.
pub const THROTTLE_ENV: &str = "AMBER_FLASH_THROTTLE_BYTES_PER_SEC";
/// Mount points whose disk is the one the host runs from.
const HOST_MOUNTS: &[&str] = &["/", "/usr", "/boot", "/boot/efi", "/efi"];

/// `BLKZEROOUT`, `_IO(0x12, 127)`: zero a byte range `[start, length]`.
const BLKZEROOUT: libc::Ioctl = 0x127f;

pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse(
        "flash",
        args,
        &["--board", "--device", "--image"],
        &["--yes", "--force"],
    )?;
    let device = args
        .value("--device")
        .ok_or("flash: --device is required (a whole disk, e.g. /dev/sdb)")?;
    let image = match (args.value("--image"), args.value("--board")) {
        (Some(_), Some(_)) => {
            return Err("flash: --board and --image both name the image; give one".into())
        }
        (Some(image), None) => PathBuf::from(image),
        (None, _) => {
            let board = args
                .board()
                .map_err(|e| format!("flash: {e} (or --image FILE)"))?;
            let disk = image::directory(&board).join("disk.img");
            if !disk.is_file() {
                image::build(&board, Disk::Remake)?;
            }
            disk
        }
    };
    flash(&Request {
        image: &image,
        device: Path::new(device),
        force: args.flag("--force"),
        yes: args.flag("--yes"),
    })
}

/// What to flash where.
pub struct Request<'a> {
    pub image: &'a Path,
    pub device: &'a Path,
    /// Write to a disk the kernel does not call removable.
    pub force: bool,
    /// Do not ask.
    pub yes: bool,
}

/// Check, ask, write, verify: the whole flash, or a one-line error.
pub fn flash(request: &Request) -> Result<(), String> {
    let image = ImageFile::open(request.image)?;
    let host = Host::real();
    let node = Node::stat(request.device)?;
    let target = check(&host, &node, &image.identity, request.force)?;
    eprintln!(
        "flash: write {} ({}) to {} ({}, {}, {})?",
        image.identity.path.display(),
        size(image.identity.bytes),
        target.path.display(),
        target.model,
        size(target.bytes),
        if target.removable {
            "removable"
        } else {
            "not removable"
        }
    );
    eprintln!(
        "flash: everything on {} will be lost.",
        target.path.display()
    );
    if !request.yes {
        eprint!("type `yes` to go on: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| format!("flash: cannot read the answer: {e}"))?;
        if answer.trim() != "yes" {
            return Err("flash: not confirmed; nothing written".into());
        }
    }
    let device = open_exclusive(&target.path)?;
    // Checked again now that we hold the disk: nothing can mount it from here on, and a
    // path that changed since the first look is caught.
    let held = device
        .metadata()
        .map_err(|e| format!("flash: {}: {e}", target.path.display()))?;
    if Some(split_device(held.rdev())) != node.block {
        return Err(format!(
            "flash: {} changed while we asked; nothing written",
            target.path.display()
        ));
    }
    let target = check(&host, &node, &image.identity, request.force)?;
    let _signals = Interrupts::catch()?;
    write_and_verify(&device, &image, &target)?;
    eprintln!(
        "flash: {} is ready: written, synced and read back",
        target.path.display()
    );
    Ok(())
}

/// The image file, open for reading.
struct ImageFile {
    file: File,
    identity: Identity,
}

/// The image as the checks compare it with the device.
#[derive(Debug, Clone)]
struct Identity {
    path: PathBuf,
    /// The device its file system is on, and its inode there.
    dev: u64,
    ino: u64,
    bytes: u64,
}

impl ImageFile {
    fn open(path: &Path) -> Result<ImageFile, String> {
        let file = File::open(path).map_err(|e| format!("flash: {}: {e}", path.display()))?;
        let metadata = file
            .metadata()
            .map_err(|e| format!("flash: {}: {e}", path.display()))?;
        if !metadata.is_file() {
            return Err(format!(
                "flash: the image {} is not a regular file",
                path.display()
            ));
        }
        if metadata.len() == 0 {
            return Err(format!("flash: the image {} is empty", path.display()));
        }
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(ImageFile {
            file,
            identity: Identity {
                path,
                dev: metadata.dev(),
                ino: metadata.ino(),
                bytes: metadata.len(),
            },
        })
    }
}

/// What `stat` says of the path given as the device.
#[derive(Debug, Clone)]
struct Node {
    /// The path with symbolic links resolved (`/dev/disk/by-id/...` → `/dev/sdb`).
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Major and minor number, when it is a block device.
    block: Option<(u32, u32)>,
}

impl Node {
    fn stat(path: &Path) -> Result<Node, String> {
        let path =
            std::fs::canonicalize(path).map_err(|e| format!("flash: {}: {e}", path.display()))?;
        let metadata =
            std::fs::metadata(&path).map_err(|e| format!("flash: {}: {e}", path.display()))?;
        Ok(Node {
            block: metadata
                .file_type()
                .is_block_device()
                .then(|| split_device(metadata.rdev())),
            path,
            dev: metadata.dev(),
            ino: metadata.ino(),
        })
    }
}

/// glibc's encoding of a device number: the major in bits 8–19 and 32–43, the minor
/// in bits 0–7 and 20–31.
fn split_device(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Where the checks read the kernel's view: `/sys` and `/proc` on a real host, a
/// directory tree in the tests.
struct Host {
    sys: PathBuf,
    mountinfo: PathBuf,
    swaps: PathBuf,
}

impl Host {
    fn real() -> Host {
        Host {
            sys: PathBuf::from("/sys"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            swaps: PathBuf::from("/proc/swaps"),
        }
    }

    /// The sysfs directory of a block device by number.
    fn block(&self, (major, minor): (u32, u32)) -> Option<Block> {
        let link = self.sys.join(format!("dev/block/{major}:{minor}"));
        let dir = std::fs::canonicalize(link).ok()?;
        Block::at(dir)
    }

    /// The whole disks beneath a device: the disk of a partition, and through the
    /// `slaves/` of device-mapper and RAID devices the disks they are made of.
    fn disks_beneath(&self, dev: (u32, u32)) -> Vec<PathBuf> {
        let mut disks = Vec::new();
        let mut queue: Vec<PathBuf> = self.block(dev).map(|b| b.dir).into_iter().collect();
        // Stacks are shallow; the bound only guards against a loop in a strange tree.
        let mut steps = 0;
        while let Some(dir) = queue.pop() {
            steps += 1;
            if steps > 64 {
                break;
            }
            let disk = if dir.join("partition").exists() {
                dir.parent().map(Path::to_path_buf).unwrap_or(dir)
            } else {
                dir
            };
            for slave in entries(&disk.join("slaves")) {
                if let Ok(slave) = std::fs::canonicalize(disk.join("slaves").join(slave)) {
                    queue.push(slave);
                }
            }
            if !disks.contains(&disk) {
                disks.push(disk);
            }
        }
        disks
    }
}

/// A block device's sysfs directory.
#[derive(Debug, Clone)]
struct Block {
    /// The kernel's name: `sdb`, `sdb1`, `loop3p1`.
    name: String,
    dir: PathBuf,
    dev: (u32, u32),
}

impl Block {
    fn at(dir: PathBuf) -> Option<Block> {
        let name = dir.file_name()?.to_str()?.to_owned();
        let dev = read_trimmed(&dir.join("dev"))?;
        let (major, minor) = dev.split_once(':')?;
        Some(Block {
            name,
            dev: (major.parse().ok()?, minor.parse().ok()?),
            dir,
        })
    }

    fn read(&self, file: &str) -> Option<String> {
        read_trimmed(&self.dir.join(file))
    }

    fn partitions(&self) -> Vec<Block> {
        entries(&self.dir)
            .into_iter()
            .map(|name| self.dir.join(name))
            .filter(|dir| dir.join("partition").is_file())
            .filter_map(Block::at)
            .collect()
    }
}

/// The disk to write, checked.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    model: String,
    bytes: u64,
    removable: bool,
    /// The device zeroes ranges itself (write-zeroes or unmap), rather than the kernel
    /// writing zeros for `BLKZEROOUT`.
    zeroes_itself: bool,
}

/// Every refusal, one line each; `Ok` only for a whole disk that may be written.
fn check(host: &Host, node: &Node, image: &Identity, force: bool) -> Result<Target, String> {
    let path = node.path.display();
    if node.dev == image.dev && node.ino == image.ino {
        return Err(format!(
            "flash: {path} is the image itself; give the card or stick to write it to"
        ));
    }
    let Some(number) = node.block else {
        return Err(format!(
            "flash: {path} is not a block device; give a whole disk such as /dev/sdb"
        ));
    };
    let disk = host.block(number).ok_or_else(|| {
        format!("flash: {path}: the kernel lists no block device {number:?} in sysfs")
    })?;
    if disk.dir.join("partition").exists() {
        let whole = disk
            .dir
            .parent()
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "?".into());
        return Err(format!(
            "flash: {path} is a partition of /dev/{whole}; give the whole disk, /dev/{whole}"
        ));
    }
    let partitions = disk.partitions();
    let all: Vec<&Block> = std::iter::once(&disk).chain(&partitions).collect();
    let ours = |dev: (u32, u32)| all.iter().find(|block| block.dev == dev).copied();

    // The disk this machine runs from, before anything else is said of it.
    let mounts = read_mounts(&host.mountinfo)?;
    for mount in mounts
        .iter()
        .filter(|m| HOST_MOUNTS.contains(&m.point.as_str()))
    {
        if mount
            .devices()
            .into_iter()
            .any(|dev| host.disks_beneath(dev).contains(&disk.dir))
        {
            return Err(format!(
                "flash: {path} holds the host's {} file system; refusing to overwrite the disk this machine runs from",
                mount.point
            ));
        }
    }

    // The image itself, seen through a loop device or stored on this disk.
    if let Some(backing) = disk.read("loop/backing_file") {
        let backing = backing.strip_suffix(" (deleted)").unwrap_or(&backing);
        if same_file(Path::new(backing), image) {
            return Err(format!(
                "flash: {path} is a loop device over the image {} itself",
                image.path.display()
            ));
        }
    }
    if let Some(block) = ours(split_device(image.dev)) {
        let place = if block.name == disk.name {
            String::new()
        } else {
            format!("/dev/{}, a partition of ", block.name)
        };
        return Err(format!(
            "flash: the image {} is stored on {place}{path}",
            image.path.display()
        ));
    }

    for mount in &mounts {
        if let Some(block) = mount.devices().into_iter().find_map(ours) {
            return Err(format!(
                "flash: /dev/{} is mounted on {}; unmount it first",
                block.name, mount.point
            ));
        }
    }
    for block in &all {
        let holders = entries(&block.dir.join("holders"));
        if !holders.is_empty() {
            return Err(format!(
                "flash: /dev/{} is in use by {} (device-mapper, RAID or the like); stop that first",
                block.name,
                holders.join(", ")
            ));
        }
    }
    for swap in read_swaps(&host.swaps) {
        let name = Path::new(&swap)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        let by_number = std::fs::metadata(&swap)
            .ok()
            .filter(|m| m.file_type().is_block_device())
            .and_then(|m| ours(split_device(m.rdev())));
        let by_name = all.iter().find(|b| Some(&b.name) == name.as_ref()).copied();
        if let Some(block) = by_number.or(by_name) {
            return Err(format!(
                "flash: /dev/{} is in use as swap; swapoff it first",
                block.name
            ));
        }
    }

    // Sysfs counts 512-byte sectors whatever the device's own sector size.
    let bytes = disk
        .read("size")
        .and_then(|sectors| sectors.parse::<u64>().ok())
        .unwrap_or(0)
        * 512;
    if bytes < image.bytes {
        return Err(format!(
            "flash: {path} is too small: it holds {}, the image {}",
            size(bytes),
            size(image.bytes)
        ));
    }
    let sector = disk
        .read("queue/logical_block_size")
        .and_then(|bytes| bytes.parse::<u64>().ok())
        .unwrap_or(512)
        .max(512);
    if !image.bytes.is_multiple_of(sector) {
        return Err(format!(
            "flash: the image is {} bytes, not a whole number of {path}'s {sector}-byte sectors",
            image.bytes
        ));
    }
    if disk.read("ro").as_deref() == Some("1") {
        return Err(format!(
            "flash: {path} is read-only (an SD card's lock switch?)"
        ));
    }
    let removable = disk.read("removable").as_deref() == Some("1");
    if !removable && !force {
        return Err(format!(
            "flash: {path} is not removable (the kernel says so of internal disks); if it really is the card or stick to overwrite, add --force"
        ));
    }
    let model = match disk.read("loop/backing_file") {
        Some(backing) => format!("loop device over {backing}"),
        None => {
            let words: Vec<String> = ["device/vendor", "device/model"]
                .iter()
                .filter_map(|file| disk.read(file))
                .filter(|word| !word.is_empty())
                .collect();
            if words.is_empty() {
                "unknown model".into()
            } else {
                words.join(" ")
            }
        }
    };
    let zeroes_itself = disk
        .read("queue/write_zeroes_max_bytes")
        .is_some_and(|bytes| bytes != "0");
    Ok(Target {
        path: node.path.clone(),
        model,
        bytes,
        removable,
        zeroes_itself,
    })
}

fn same_file(path: &Path, image: &Identity) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.dev() == image.dev && m.ino() == image.ino)
        || std::fs::canonicalize(path).is_ok_and(|path| path == image.path)
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

/// The names in a directory, sorted; none when it is missing.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, PartialEq)]
struct Mount {
    dev: (u32, u32),
    point: String,
    source: String,
}

impl Mount {
    /// The device numbers behind a mount: its own, and its source's when that is a
    /// block device (btrfs reports an anonymous number of its own).
    fn devices(&self) -> Vec<(u32, u32)> {
        let mut devices = vec![self.dev];
        if self.source.starts_with("/dev/") {
            if let Ok(metadata) = std::fs::metadata(&self.source) {
                if metadata.file_type().is_block_device() {
                    devices.push(split_device(metadata.rdev()));
                }
            }
        }
        devices
    }
}

fn read_mounts(path: &Path) -> Result<Vec<Mount>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("flash: cannot read {}: {e}", path.display()))?;
    Ok(parse_mountinfo(&text))
}

/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw`: the third
/// field is major:minor, the fifth the mount point, the second after `-` the source.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (major, minor) = fields.get(2)?.split_once(':')?;
            let separator = fields.iter().position(|field| *field == "-")?;
            Some(Mount {
                dev: (major.parse().ok()?, minor.parse().ok()?),
                point: unescape(fields.get(4)?),
                source: unescape(fields.get(separator + 2).unwrap_or(&"")),
            })
        })
        .collect()
}

/// The paths in `/proc/swaps`, after its header line.
fn read_swaps(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(unescape)
        .collect()
}

/// The kernel writes space, tab, newline and backslash in paths as `\040` and so on.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn open_exclusive(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL | libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                format!(
                    "flash: {} is busy: the kernel refused to open it exclusively (mounted, or held by another program); nothing written",
                    path.display()
                )
            } else {
                format!("flash: cannot open {}: {e}; nothing written", path.display())
            }
        })
}

/// Set by SIGINT and SIGTERM while a flash runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM set [`INTERRUPTED`] while this lives; the handlers before it come
/// back when it is dropped.
struct Interrupts {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl Interrupts {
    fn catch() -> Result<Interrupts, String> {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let mut interrupts = Interrupts {
            previous: Vec::new(),
        };
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: an all-zero sigaction is a valid value of the C struct; the handler
            // only stores to an atomic, which is async-signal-safe; both pointers are to
            // live locals for the duration of the calls.
            let previous = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut previous) != 0 {
                    return Err(format!(
                        "flash: cannot catch signal {signal}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                previous
            };
            interrupts.previous.push((signal, previous));
        }
        Ok(interrupts)
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        for (signal, previous) in &self.previous {
            // SAFETY: `previous` is what sigaction returned for this signal.
            unsafe {
                libc::sigaction(*signal, previous, std::ptr::null_mut());
            }
        }
    }
}

/// Why a write stopped before it was done.
enum Stop {
    Interrupted,
    Failed(String),
}

/// The four steps of the module doc; on any stop the device's first MiB ends zero.
fn write_and_verify(device: &File, image: &ImageFile, target: &Target) -> Result<(), String> {
    let total = image.identity.bytes;
    let head = HEAD.min(total);
    let mut writer = Writer::new(device, image, target, total)?;
    let started = Instant::now();
    let result = writer
        .zero_head(head)
        .map_err(Stop::Failed)
        .and_then(|()| writer.write(head));
    writer.progress.end(writer.written + writer.skipped);
    if let Err(stop) = result {
        let state = match writer.zero_head(head) {
            Ok(()) => "its first MiB is zero: the device is not bootable".to_owned(),
            Err(e) => format!(
                "and its first MiB could not be zeroed ({e}): the device may half-boot; flash it again"
            ),
        };
        return Err(match stop {
            Stop::Interrupted => format!(
                "flash: interrupted after {} of {}; {state}",
                mib(writer.written + writer.skipped),
                mib(total)
            ),
            Stop::Failed(error) => format!("flash: {error}; {state}"),
        });
    }
    let seconds = started.elapsed();
    let how = if target.zeroes_itself {
        "the device zeroed them itself (write-zeroes)"
    } else {
        "the device has no write-zeroes command, so the kernel wrote those zeros for us"
    };
    eprintln!(
        "flash: wrote {} in {}; skipped {} of zeros: {how}",
        size(writer.written),
        seconds_text(seconds),
        size(writer.skipped)
    );
    let expected = to_hex(&std::mem::take(&mut writer.hasher).finish());
    let started = Instant::now();
    let read = verify(&target.path, total, &mut writer.buffer);
    let fail = |what: String| match writer.zero_head(head) {
        Ok(()) => format!("flash: {what}; its first MiB is zero: the device is not bootable"),
        Err(e) => format!("flash: {what}; and its first MiB could not be zeroed ({e})"),
    };
    let found = match read {
        Ok(found) => found,
        Err(Stop::Interrupted) => {
            return Err(fail(
                "interrupted while reading back: written but not verified".into(),
            ))
        }
        Err(Stop::Failed(e)) => return Err(fail(e)),
    };
    if found != expected {
        return Err(fail(format!(
            "{} read back wrong: its first {} bytes hash to sha256 {found}, the image to {expected} (a failing or fake card?)",
            target.path.display(),
            total
        )));
    }
    eprintln!(
        "flash: read back {} in {}: sha256 {found} matches the image",
        mib(total),
        seconds_text(started.elapsed())
    );
    Ok(())
}

/// The write: counters, buffers and the image's hash, taken in image order.
struct Writer<'a> {
    device: &'a File,
    path: &'a Path,
    image: &'a ImageFile,
    total: u64,
    buffer: Aligned,
    zeros: Aligned,
    hasher: Sha256Hasher,
    written: u64,
    skipped: u64,
    /// Zeros not yet asked of the device, merged across holes and chunks.
    pending: Option<(u64, u64)>,
    /// Cleared when the device refuses `BLKZEROOUT`: zeros are then written.
    zero_out: bool,
    throttle: Option<u64>,
    started: Instant,
    progress: Progress,
}

impl<'a> Writer<'a> {
    fn new(
        device: &'a File,
        image: &'a ImageFile,
        target: &'a Target,
        total: u64,
    ) -> Result<Writer<'a>, String> {
        let throttle = match std::env::var(THROTTLE_ENV) {
            Ok(rate) => Some(
                rate.parse::<u64>()
                    .ok()
                    .filter(|rate| *rate > 0)
                    .ok_or_else(|| format!("flash: {THROTTLE_ENV}={rate} is not a rate"))?,
            ),
            Err(_) => None,
        };
        Ok(Writer {
            device,
            path: &target.path,
            image,
            total,
            buffer: Aligned::new(CHUNK),
            zeros: Aligned::new(CHUNK),
            hasher: Sha256Hasher::new(),
            written: 0,
            skipped: 0,
            pending: None,
            zero_out: true,
            throttle,
            started: Instant::now(),
            progress: Progress::new("writing", total),
        })
    }

    fn failed(&self, what: &str, error: std::io::Error) -> Stop {
        Stop::Failed(self.io_error(what, error))
    }

    fn io_error(&self, what: &str, error: std::io::Error) -> String {
        format!("{what} {}: {error}", self.path.display())
    }

    fn sync(&self) -> Result<(), Stop> {
        self.device
            .sync_data()
            .map_err(|e| self.failed("syncing", e))
    }

    /// Zeros over the device's first `head` bytes, synced: no old partition table
    /// survives from here on.
    fn zero_head(&self, head: u64) -> Result<(), String> {
        self.device
            .write_all_at(self.zeros.get(head as usize), 0)
            .map_err(|e| self.io_error("zeroing the first MiB of", e))?;
        self.device
            .sync_data()
            .map_err(|e| self.io_error("syncing", e))
    }

    /// Everything after the head, synced, then the head, synced.
    fn write(&mut self, head: u64) -> Result<(), Stop> {
        let mut first = vec![0u8; head as usize];
        self.image
            .file
            .read_exact_at(&mut first, 0)
            .map_err(|e| self.image_failed(e))?;
        self.hasher.update(&first);
        let mut position = head;
        for (start, end) in
            data_extents(&self.image.file, head, self.total).map_err(|e| self.image_failed(e))?
        {
            self.zeros_at(position, start)?;
            self.data(start, end)?;
            position = end;
        }
        self.zeros_at(position, self.total)?;
        self.flush_zeros()?;
        self.sync()?;
        self.tick()?;
        let buffer = self.buffer.get_mut(first.len());
        buffer.copy_from_slice(&first);
        self.device
            .write_all_at(buffer, 0)
            .map_err(|e| self.failed("writing the first MiB of", e))?;
        self.written += head;
        self.sync()?;
        self.progress.show(self.written + self.skipped);
        Ok(())
    }

    fn image_failed(&self, error: std::io::Error) -> Stop {
        Stop::Failed(format!(
            "reading the image {}: {error}",
            self.image.identity.path.display()
        ))
    }

    /// A hole of the image: zeros to hash, and to ask of the device.
    fn zeros_at(&mut self, start: u64, end: u64) -> Result<(), Stop> {
        let mut position = start;
        while position < end {
            let length = (end - position).min(CHUNK as u64);
            self.hasher.update(self.zeros.get(length as usize));
            self.add_zeros(position, position + length)?;
            position += length;
        }
        Ok(())
    }

    /// Data of the image: read, hashed, and written but for its long zero runs.
    fn data(&mut self, start: u64, end: u64) -> Result<(), Stop> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = (|| {
            let mut position = start;
            while position < end {
                let length = (end - position).min(CHUNK as u64) as usize;
                let chunk = buffer.get_mut(length);
                self.image
                    .file
                    .read_exact_at(chunk, position)
                    .map_err(|e| self.image_failed(e))?;
                self.hasher.update(&*chunk);
                for run in runs(chunk, GRANULE as usize, MIN_SKIP as usize) {
                    let at = position + run.start as u64;
                    if run.zero {
                        self.add_zeros(at, position + run.end as u64)?;
                    } else {
                        self.flush_zeros()?;
                        self.device
                            .write_all_at(&chunk[run.start..run.end], at)
                            .map_err(|e| self.failed(&format!("writing at byte {at} of"), e))?;
                        self.written += (run.end - run.start) as u64;
                    }
                }
                position += length as u64;
                self.tick()?;
            }
            Ok(())
        })();
        self.buffer = buffer;
        result
    }

    fn add_zeros(&mut self, start: u64, end: u64) -> Result<(), Stop> {
        match self.pending {
            Some((from, to)) if to == start => self.pending = Some((from, end)),
            _ => {
                self.flush_zeros()?;
                self.pending = Some((start, end));
            }
        }
        if self
            .pending
            .is_some_and(|(from, to)| to - from >= ZERO_PIECE)
        {
            self.flush_zeros()?;
        }
        Ok(())
    }

    /// Ask the device for the pending zeros, a piece at a time.
    fn flush_zeros(&mut self) -> Result<(), Stop> {
        let Some((mut start, end)) = self.pending.take() else {
            return Ok(());
        };
        while start < end {
            let length = (end - start).min(ZERO_PIECE);
            match self.zero_out.then(|| zero_out(self.device, start, length)) {
                Some(Ok(())) => self.skipped += length,
                Some(Err(error))
                    if [libc::EOPNOTSUPP, libc::ENOTTY, libc::EINVAL]
                        .contains(&error.raw_os_error().unwrap_or(0)) =>
                {
                    self.zero_out = false;
                    continue;
                }
                Some(Err(error)) => {
                    return Err(self.failed(&format!("zeroing at byte {start} of"), error))
                }
                None => {
                    let mut at = start;
                    while at < start + length {
                        let piece = (start + length - at).min(CHUNK as u64);
                        self.device
                            .write_all_at(self.zeros.get(piece as usize), at)
                            .map_err(|e| self.failed(&format!("writing at byte {at} of"), e))?;
                        at += piece;
                    }
                    self.written += length;
                }
            }
            start += length;
            self.tick()?;
        }
        Ok(())
    }

    /// After each piece of work: show progress, keep to the throttle, stop on Ctrl-C.
    fn tick(&mut self) -> Result<(), Stop> {
        let done = self.written + self.skipped;
        self.progress.show(done);
        if let Some(rate) = self.throttle {
            let due = Duration::from_millis(done.saturating_mul(1000) / rate);
            loop {
                let elapsed = self.started.elapsed();
                if elapsed >= due || INTERRUPTED.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep((due - elapsed).min(Duration::from_millis(50)));
            }
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(Stop::Interrupted);
        }
        Ok(())
    }
}

/// Read the device's first `total` bytes through its own `O_DIRECT` descriptor (past
/// the page cache, which would answer with what we wrote) and hash them.
fn verify(path: &Path, total: u64, buffer: &mut Aligned) -> Result<String, Stop> {
    let device = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Stop::Failed(format!("cannot open {} to read back: {e}", path.display())))?;
    let mut hasher = Sha256Hasher::new();
    let mut progress = Progress::new("verifying", total);
    let mut position = 0;
    let result = (|| {
        while position < total {
            let length = (total - position).min(CHUNK as u64) as usize;
            let chunk = buffer.get_mut(length);
            device.read_exact_at(chunk, position).map_err(|e| {
                Stop::Failed(format!(
                    "reading back {} at byte {position}: {e}",
                    path.display()
                ))
            })?;
            hasher.update(&*chunk);
            position += length as u64;
            progress.show(position);
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Err(Stop::Interrupted);
            }
        }
        Ok(())
    })();
    progress.end(position);
    result.map(|()| to_hex(&hasher.finish()))
}

fn zero_out(device: &File, start: u64, length: u64) -> std::io::Result<()> {
    let range: [u64; 2] = [start, length];
    // SAFETY: BLKZEROOUT reads two u64 (start, length) from the pointer, which points at
    // `range` for the duration of the call; the descriptor is open.
    let result = unsafe { libc::ioctl(device.as_raw_fd(), BLKZEROOUT, range.as_ptr()) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The image's data between `from` and `to`, as `SEEK_DATA`/`SEEK_HOLE` report it,
/// widened to [`GRANULE`]s. A file system that cannot tell gives one extent.
fn data_extents(file: &File, from: u64, to: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let seek = |offset: u64, whence: libc::c_int| -> std::io::Result<Option<u64>> {
        // SAFETY: lseek on an open descriptor; it only moves the file offset, which
        // nothing else here uses (reads are positioned).
        let result = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
        if result >= 0 {
            return Ok(Some(result as u64));
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            // No data past `offset`.
            Some(libc::ENXIO) => Ok(None),
            _ => Err(error),
        }
    };
    let mut extents = Vec::new();
    let mut position = from;
    while position < to {
        let start = match seek(position, libc::SEEK_DATA) {
            Ok(Some(start)) => start,
            Ok(None) => break,
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                return Ok(vec![(from, to)]);
            }
            Err(error) => return Err(error),
        };
        if start >= to {
            break;
        }
        let end = seek(start, libc::SEEK_HOLE)?.unwrap_or(to).min(to);
        extents.push((start, end));
        position = end.max(start + 1);
    }
    Ok(widen(&extents, GRANULE, from, to))
}

/// Extents rounded out to `granule` boundaries (within `from..to`), overlaps merged.
fn widen(extents: &[(u64, u64)], granule: u64, from: u64, to: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(start, end) in extents {
        let start = (start / granule * granule).max(from);
        let end = end.div_ceil(granule).saturating_mul(granule).min(to);
        if start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 >= start => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// A piece of a chunk: data to write, or zeros to skip.
#[derive(Debug, PartialEq)]
struct Run {
    start: usize,
    end: usize,
    zero: bool,
}

/// Split `bytes` into data and zero runs at `granule` boundaries. A zero run inside
/// the chunk shorter than `min_skip` is written with the data around it; one at either
/// edge is kept, as it may go on past the chunk.
fn runs(bytes: &[u8], granule: usize, min_skip: usize) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + granule).min(bytes.len());
        let zero = bytes[start..end].iter().all(|byte| *byte == 0);
        match out.last_mut() {
            Some(last) if last.zero == zero => last.end = end,
            _ => out.push(Run { start, end, zero }),
        }
        start = end;
    }
    // Short zero runs between data become data, and the data around them one run.
    let mut merged: Vec<Run> = Vec::new();
    let count = out.len();
    for (index, run) in out.into_iter().enumerate() {
        let inside = index > 0 && index + 1 < count;
        let zero = run.zero && !(inside && run.end - run.start < min_skip);
        match merged.last_mut() {
            Some(last) if !last.zero && !zero => last.end = run.end,
            _ => merged.push(Run { zero, ..run }),
        }
    }
    merged
}

/// A buffer whose start is aligned for `O_DIRECT` (4096 bytes, the largest logical
/// block size in use).
#[derive(Default)]
struct Aligned {
    bytes: Vec<u8>,
    offset: usize,
}

impl Aligned {
    fn new(length: usize) -> Aligned {
        let bytes = vec![0u8; length + GRANULE as usize];
        let offset = bytes.as_ptr().align_offset(GRANULE as usize);
        Aligned { bytes, offset }
    }

    fn get(&self, length: usize) -> &[u8] {
        &self.bytes[self.offset..self.offset + length]
    }

    fn get_mut(&mut self, length: usize) -> &mut [u8] {
        &mut self.bytes[self.offset..self.offset + length]
    }
}

/// A progress bar on a terminal (one line redrawn with `\r`), or a line every few
/// seconds and every quarter when stderr is a log.
struct Progress {
    what: &'static str,
    total: u64,
    started: Instant,
    terminal: bool,
    shown_at: Option<Instant>,
    shown_done: u64,
}

/// Width of the bar, in characters.
const BAR: usize = 30;

impl Progress {
    fn new(what: &'static str, total: u64) -> Progress {
        Progress {
            what,
            total,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            shown_at: None,
            shown_done: 0,
        }
    }

    fn show(&mut self, done: u64) {
        let now = Instant::now();
        let since = self.shown_at.map(|at| now - at);
        let due = if self.terminal {
            since.is_none_or(|since| since >= Duration::from_millis(200))
        } else {
            since.is_none_or(|since| since >= Duration::from_secs(5))
                || done - self.shown_done >= self.total / 4
        };
        if due && done != self.shown_done || self.shown_at.is_none() {
            self.draw(done);
        }
    }

    /// The final state, and the line ended.
    fn end(&mut self, done: u64) {
        if self.shown_done != done || self.shown_at.is_none() {
            self.draw(done);
        }
        if self.terminal {
            eprintln!();
        }
    }

    fn draw(&mut self, done: u64) {
        let elapsed = self.started.elapsed().as_millis() as u64;
        let bar = self.terminal.then_some(BAR);
        let line = progress_line(self.what, done, self.total, elapsed, bar);
        if self.terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        self.shown_at = Some(Instant::now());
        self.shown_done = done;
    }
}

/// `flash: writing  [#######-------]  52%  33.3 of 64.0 MiB  12.1 MiB/s  0:02 left`.
fn progress_line(what: &str, done: u64, total: u64, elapsed_ms: u64, bar: Option<usize>) -> String {
    let done = done.min(total);
    let fraction = |scale: u64| {
        if total == 0 {
            scale
        } else {
            (u128::from(done) * u128::from(scale) / u128::from(total)) as u64
        }
    };
    let mut line = format!("flash: {what:<9} ");
    if let Some(width) = bar {
        let filled = fraction(width as u64) as usize;
        line.push('[');
        line.push_str(&"#".repeat(filled));
        line.push_str(&"-".repeat(width - filled));
        line.push_str("] ");
    }
    line.push_str(&format!(
        "{:>3}%  {} of {}",
        fraction(100),
        mib_number(done),
        mib(total)
    ));
    if elapsed_ms > 0 && done > 0 {
        let rate = done.saturating_mul(1000) / elapsed_ms;
        line.push_str(&format!("  {}/s", mib(rate)));
        if done < total {
            // Rounded up: "0:00 left" only once it is done.
            let left = (u128::from(total - done) * u128::from(elapsed_ms))
                .div_ceil(u128::from(done) * 1000) as u64;
            line.push_str(&format!("  {} left", clock(left)));
        }
    }
    line
}

/// Whole and tenths of a MiB: `33.3`.
fn mib_number(bytes: u64) -> String {
    format!("{}.{}", bytes >> 20, ((bytes & ((1 << 20) - 1)) * 10) >> 20)
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", mib_number(bytes))
}

/// `0:07`, `12:30`, `1:02:03`.
fn clock(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

fn seconds_text(duration: Duration) -> String {
    let tenths = duration.as_millis() / 100;
    format!("{}.{} s", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(start: usize, end: usize, zero: bool) -> Run {
        Run { start, end, zero }
    }

    #[test]
    fn runs_split_data_and_zeros() {
        let granule = 4;
        // (blocks, as d = data and z = zero; expected runs in blocks)
        type Case<'a> = (&'a str, &'a [(usize, usize, bool)]);
        let cases: &[Case] = &[
            ("dddd", &[(0, 4, false)]),
            ("zzzz", &[(0, 4, true)]),
            ("zzdd", &[(0, 2, true), (2, 4, false)]),
            ("ddzz", &[(0, 2, false), (2, 4, true)]),
            // A short zero run inside is written with the data around it...
            ("dzdd", &[(0, 4, false)]),
            // ...a long one is skipped.
            ("dzzzd", &[(0, 1, false), (1, 4, true), (4, 5, false)]),
            // Short zero runs at the edges are kept: they may go on past the chunk.
            ("zdz", &[(0, 1, true), (1, 2, false), (2, 3, true)]),
        ];
        for (blocks, expected) in cases {
            let bytes: Vec<u8> = blocks
                .bytes()
                .flat_map(|b| [u8::from(b == b'd'); 4])
                .collect();
            let expected: Vec<Run> = expected
                .iter()
                .map(|&(s, e, z)| run(s * granule, e * granule, z))
                .collect();
            assert_eq!(runs(&bytes, granule, 3 * granule), expected, "{blocks}");
        }
        // A last block shorter than the granule.
        assert_eq!(
            runs(&[1, 0, 0, 0, 0, 0], 4, 4),
            [run(0, 4, false), run(4, 6, true)]
        );
        assert_eq!(runs(&[], 4, 4), []);
    }

    #[test]
    fn extents_widen_to_granules_and_merge() {
        assert_eq!(
            widen(&[(5, 7), (9, 10), (30, 31)], 8, 0, 36),
            [(0, 16), (24, 32)]
        );
        // Clamped to the range asked for.
        assert_eq!(widen(&[(2, 40)], 8, 4, 36), [(4, 36)]);
        assert_eq!(widen(&[], 8, 0, 36), []);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-flash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn holes_are_found_in_a_sparse_file() {
        let dir = temp_dir("sparse");
        let path = dir.join("sparse.img");
        let file = File::create(&path).unwrap();
        file.set_len(8 << 20).unwrap();
        file.write_all_at(&[7u8; 100], (3 << 20) + 10).unwrap();
        file.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        let extents = data_extents(&file, 1 << 20, 8 << 20).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // The data is covered whatever the file system's block size...
        assert!(
            extents
                .iter()
                .any(|&(s, e)| s <= (3 << 20) + 10 && e >= (3 << 20) + 110),
            "{extents:?}"
        );
        assert!(extents
            .iter()
            .all(|&(s, e)| s >= 1 << 20 && e <= 8 << 20 && s % GRANULE == 0));
        // ...and, where the file system reports holes, most of the file is one.
        let data: u64 = extents.iter().map(|(s, e)| e - s).sum();
        assert!(data <= 1 << 20 || data == 7 << 20, "{extents:?}");
    }

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress_line("writing", 0, 64 << 20, 0, Some(10)),
            "flash: writing   [----------]   0%  0.0 of 64.0 MiB"
        );
        assert_eq!(
            progress_line("writing", 16 << 20, 64 << 20, 2000, Some(10)),
            "flash: writing   [##--------]  25%  16.0 of 64.0 MiB  8.0 MiB/s  0:06 left"
        );
        assert_eq!(
            progress_line("verifying", 64 << 20, 64 << 20, 4000, None),
            "flash: verifying 100%  64.0 of 64.0 MiB  16.0 MiB/s"
        );
        assert_eq!(mib_number((1 << 20) * 3 / 2), "1.5");
        assert_eq!(clock(7), "0:07");
        assert_eq!(clock(750), "12:30");
        assert_eq!(clock(3723), "1:02:03");
        assert_eq!(seconds_text(Duration::from_millis(1234)), "1.2 s");
    }

    #[test]
    fn device_numbers_and_mountinfo() {
        assert_eq!(split_device(0x0811), (8, 17));
        // 259:65536 (an NVMe partition far along): both halves spill into the high bits.
        let dev = (259u64 << 8) | (65536u64 << 12);
        assert_eq!(split_device(dev), (259, 65536));
        let mounts = parse_mountinfo(
            "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
             40 27 8:17 / /media/my\\040card rw shared:1 - vfat /dev/sdb1 rw\n\
             junk\n",
        );
        assert_eq!(
            mounts,
            [
                Mount {
                    dev: (254, 0),
                    point: "/".into(),
                    source: "/dev/vda".into()
                },
                Mount {
                    dev: (8, 17),
                    point: "/media/my card".into(),
                    source: "/dev/sdb1".into()
                }
            ]
        );
    }

    /// A fake /sys and /proc: a removable disk `sdb` (8:16) with two partitions, an
    /// internal disk `sda` (8:0) with the root file system on device-mapper `dm-0`
    /// (253:0) over `sda2`, and a loop device `loop0` (7:0).
    struct Fake {
        root: PathBuf,
        host: Host,
        image: Identity,
    }

    impl Fake {
        fn new(name: &str) -> Fake {
            let root = temp_dir(name);
            let devices = root.join("sys/devices");
            let disk = |path: &str, dev: &str, extra: &[(&str, &str)]| {
                let dir = devices.join(path);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("dev"), format!("{dev}\n")).unwrap();
                for (file, text) in extra {
                    let file = dir.join(file);
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(file, text).unwrap();
                }
                let link = root.join("sys/dev/block").join(dev);
                std::fs::create_dir_all(link.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(&dir, link).unwrap();
                std::fs::create_dir_all(dir.join("holders")).unwrap();
                dir
            };
            disk(
                "usb/block/sdb",
                "8:16",
                &[("size", "1000000"), ("removable", "1\n")],
            );
            disk("usb/block/sdb/sdb1", "8:17", &[("partition", "1")]);
            disk("usb/block/sdb/sdb2", "8:18", &[("partition", "2")]);
            disk(
                "pci/block/sda",
                "8:0",
                &[("size", "100000000"), ("removable", "0")],
            );
            disk("pci/block/sda/sda1", "8:1", &[("partition", "1")]);
            let sda2 = disk("pci/block/sda/sda2", "8:2", &[("partition", "2")]);
            let dm = disk("virtual/block/dm-0", "253:0", &[("size", "99000000")]);
            std::fs::create_dir_all(dm.join("slaves")).unwrap();
            std::os::unix::fs::symlink(&sda2, dm.join("slaves/sda2")).unwrap();
            std::os::unix::fs::symlink(&dm, sda2.join("holders/dm-0")).unwrap();
            let image_path = root.join("disk.img");
            std::fs::write(&image_path, vec![1u8; 4096]).unwrap();
            disk(
                "virtual/block/loop0",
                "7:0",
                &[
                    ("size", "8"),
                    ("removable", "0"),
                    ("loop/backing_file", &format!("{}\n", image_path.display())),
                ],
            );
            std::fs::write(
                root.join("mountinfo"),
                "27 1 253:0 / / rw - ext4 /dev/mapper/root rw\n\
                 28 27 8:1 / /boot rw - ext4 /dev/sda1 rw\n",
            )
            .unwrap();
            std::fs::write(root.join("swaps"), "Filename\tType\tSize\tUsed\tPriority\n").unwrap();
            let metadata = std::fs::metadata(&image_path).unwrap();
            let image = Identity {
                path: image_path,
                dev: metadata.dev(),
                ino: metadata.ino(),
                bytes: 4096,
            };
            Fake {
                host: Host {
                    sys: root.join("sys"),
                    mountinfo: root.join("mountinfo"),
                    swaps: root.join("swaps"),
                },
                root,
                image,
            }
        }

        fn node(&self, path: &str, block: (u32, u32)) -> Node {
            Node {
                path: PathBuf::from(path),
                dev: 1,
                ino: 1,
                block: Some(block),
            }
        }

        fn check(&self, node: &Node, force: bool) -> Result<Target, String> {
            check(&self.host, node, &self.image, force)
        }

        fn refused(&self, node: &Node, force: bool, expected: &str) {
            let error = self.check(node, force).err().unwrap_or_default();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn refusals_over_a_fake_sys() {
        let fake = Fake::new("refusals");
        let sdb = fake.node("/dev/sdb", (8, 16));
        let target = fake.check(&sdb, false).unwrap();
        assert_eq!(target.bytes, 512_000_000);
        assert!(target.removable);
        fake.refused(
            &fake.node("/dev/sdb1", (8, 17)),
            true,
            "/dev/sdb1 is a partition of /dev/sdb; give the whole disk",
        );
        fake.refused(
            &fake.node("/dev/sda", (8, 0)),
            true,
            "holds the host's / file system",
        );
        fake.refused(
            &fake.node("/dev/loop0", (7, 0)),
            true,
            "is a loop device over the image",
        );
        fake.refused(&fake.node("/dev/zzz", (9, 9)), true, "no block device");
        let not_block = Node {
            block: None,
            ..fake.node("/tmp/x", (0, 0))
        };
        fake.refused(&not_block, true, "/tmp/x is not a block device");
        let image_itself = Node {
            dev: fake.image.dev,
            ino: fake.image.ino,
            block: None,
            ..fake.node("/tmp/disk.img", (0, 0))
        };
        fake.refused(&image_itself, true, "is the image itself");
        // Too small, and not removable: only --force lets the second by.
        let big = Identity {
            bytes: 600_000_000,
            ..fake.image.clone()
        };
        let error = check(&fake.host, &sdb, &big, true).err().unwrap();
        assert!(error.contains("/dev/sdb is too small"), "{error}");
        let on_sdb2 = Identity {
            dev: (8 << 8) | 18,
            ..fake.image.clone()
        };
        let error = check(&fake.host, &sdb, &on_sdb2, true).err().unwrap();
        assert!(
            error.contains("is stored on /dev/sdb2, a partition of /dev/sdb"),
            "{error}"
        );
        let sector = Identity {
            bytes: 4097,
            ..fake.image.clone()
        };
        let error = check(&fake.host, &sdb, &sector, true).err().unwrap();
        assert!(error.contains("512-byte sectors"), "{error}");
        let sdb_dir = fake.root.join("sys/devices/usb/block/sdb");
        std::fs::write(sdb_dir.join("ro"), "1\n").unwrap();
        fake.refused(&sdb, true, "/dev/sdb is read-only");
        std::fs::write(sdb_dir.join("ro"), "0\n").unwrap();
        std::fs::write(sdb_dir.join("removable"), "0\n").unwrap();
        fake.refused(&sdb, false, "not removable");
        assert!(fake.check(&sdb, true).is_ok());
    }

    #[test]
    fn disks_in_use_are_refused() {
        let fake = Fake::new("in-use");
        let sdb = fake.node("/dev/sdb", (8, 16));
        let sdb_dir = fake.root.join("sys/devices/usb/block/sdb");
        let mountinfo = std::fs::read_to_string(&fake.host.mountinfo).unwrap();

        std::fs::write(
            &fake.host.mountinfo,
            format!("{mountinfo}40 27 8:18 / /media/my\\040card rw - vfat /dev/sdb2 rw\n"),
        )
        .unwrap();
        fake.refused(
            &sdb,
            true,
            "/dev/sdb2 is mounted on /media/my card; unmount it first",
        );
        std::fs::write(&fake.host.mountinfo, &mountinfo).unwrap();

        std::os::unix::fs::symlink("../../dm-1", sdb_dir.join("sdb1/holders/dm-1")).unwrap();
        fake.refused(&sdb, true, "/dev/sdb1 is in use by dm-1");
        std::fs::remove_file(sdb_dir.join("sdb1/holders/dm-1")).unwrap();

        let swaps = std::fs::read_to_string(&fake.host.swaps).unwrap();
        std::fs::write(
            &fake.host.swaps,
            format!("{swaps}/dev/sdb2  partition\t1048572\t0\t-2\n"),
        )
        .unwrap();
        fake.refused(&sdb, true, "/dev/sdb2 is in use as swap");
        std::fs::write(&fake.host.swaps, &swaps).unwrap();

        assert!(fake.check(&sdb, false).is_ok());
    }
}
