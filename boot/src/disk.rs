//! The data partition: find the ext4 filesystem labelled `amber-data`, mount it at /data,
//! and seed the package store's keys and repositories from the initramfs.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys;

/// The filesystem label of the data partition.
pub const LABEL: &str = "amber-data";

/// The ext2/3/4 superblock starts 1024 bytes into the device.
const SUPERBLOCK: u64 = 1024;
const MAGIC_OFFSET: usize = 56;
const MAGIC: u16 = 0xEF53;
const LABEL_OFFSET: usize = 120;
const LABEL_SIZE: usize = 16;

/// The volume label of an ext2/3/4 superblock (its first bytes), or None when the bytes are
/// not one. The label is NUL-padded to 16 bytes.
pub fn superblock_label(superblock: &[u8]) -> Option<&[u8]> {
    let magic = superblock.get(MAGIC_OFFSET..MAGIC_OFFSET + 2)?;
    if u16::from_le_bytes([magic[0], magic[1]]) != MAGIC {
        return None;
    }
    let label = superblock.get(LABEL_OFFSET..LABEL_OFFSET + LABEL_SIZE)?;
    let end = label.iter().position(|&b| b == 0).unwrap_or(LABEL_SIZE);
    Some(&label[..end])
}

/// The ext label of a device or image file, None when it holds no ext filesystem.
pub fn label_of(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = File::open(path)?;
    let mut superblock = [0u8; LABEL_OFFSET + LABEL_SIZE];
    match file.read_exact_at(&mut superblock, SUPERBLOCK) {
        Ok(()) => Ok(superblock_label(&superblock).map(<[u8]>::to_vec)),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
    }
}

/// Block devices never worth reading: empty loop and RAM disks, and floppy and optical
/// drives, which can take seconds to answer when empty.
fn skipped(name: &str) -> bool {
    ["loop", "ram", "zram", "fd", "sr"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The first device (in name order) of `class_dir` (/sys/class/block) whose node in
/// `dev_dir` (/dev) carries the ext label `label`.
pub fn find(class_dir: &Path, dev_dir: &Path, label: &str) -> Option<PathBuf> {
    let mut names = crate::dir_names(class_dir).ok()?;
    names.retain(|name| !skipped(name));
    names
        .into_iter()
        .map(|name| dev_dir.join(name))
        .find(|path| matches!(label_of(path), Ok(Some(found)) if found == label.as_bytes()))
}

/// Mount the data partition at `/data`, waiting up to `wait` for it to appear and calling
/// `between` every 50 ms while it does not (init loads the drivers new devices ask for);
/// without one, a tmpfs keeps the system usable (nothing persists). Then make sure
/// /data/pkg exists and holds keys and repositories, and that root's home (/root →
/// /data/root) exists.
pub fn mount_data(wait: Duration, between: &mut dyn FnMut()) -> Option<PathBuf> {
    let data = Path::new("/data");
    let _ = std::fs::create_dir_all(data);
    let started = Instant::now();
    let mut polls = 0u32;
    let device = loop {
        if let Some(device) = find(Path::new("/sys/class/block"), Path::new("/dev"), LABEL) {
            break Some(device);
        }
        if started.elapsed() >= wait {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
        polls += 1;
        if polls.is_multiple_of(5) {
            between();
        }
    };
    let mounted = match &device {
        Some(device) => {
            match sys::mount(&device.to_string_lossy(), data, "ext4", sys::MS_NOATIME, "") {
                Ok(()) => {
                    say!(
                        "data: {} mounted at /data ({} ms)",
                        device.display(),
                        crate::millis(started.elapsed())
                    );
                    true
                }
                Err(error) => {
                    say!("data: mount {} at /data: {error}", device.display());
                    false
                }
            }
        }
        None => {
            say!(
                "data: no ext4 partition labelled {LABEL} after {} ms",
                crate::millis(started.elapsed())
            );
            false
        }
    };
    if !mounted {
        say!("data: using a tmpfs on /data: packages and settings will not survive a reboot");
        if let Err(error) = sys::mount("tmpfs", data, "tmpfs", sys::MS_NOATIME, "mode=0755") {
            say!("data: tmpfs on /data: {error}");
        }
    }
    seed(Path::new("/etc/amber"), &data.join("pkg"));
    let home = data.join("root");
    if !home.exists() {
        use std::os::unix::fs::DirBuilderExt;
        if let Err(error) = std::fs::DirBuilder::new().mode(0o700).create(&home) {
            say!("data: create {}: {error}", home.display());
        }
    }
    device.filter(|_| mounted)
}

/// The FAT volume label of the boot partition of UEFI boards (the EFI system partition).
pub const ESP_LABEL: &str = "AMBER-ESP";
/// The label of a Raspberry Pi's partition 1 (autoboot.txt); its boot partitions are
/// `AMBER-A` and `AMBER-B`.
#[cfg(feature = "raspberry-pi")]
pub const PI_BOOT_LABEL: &str = "AMBER-BOOT";

/// The volume label of a FAT12/16/32 boot sector, None when it is not FAT.
pub fn fat_label(sector: &[u8]) -> Option<&[u8]> {
    if sector.get(510..512)? != [0x55, 0xaa] {
        return None;
    }
    // FAT32 names its type at 0x52 and keeps the label at 0x47; FAT12/16 at 0x36, 0x2B.
    let at = if sector.get(0x52..0x57)? == b"FAT32" {
        0x47
    } else if sector.get(0x36..0x39)? == b"FAT" {
        0x2b
    } else {
        return None;
    };
    let label = sector.get(at..at + 11)?;
    let end = label
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |last| last + 1);
    Some(&label[..end])
}

/// Mount the FAT partition labelled `label` that is on the same disk as `data` at `at`
/// (`/boot`), read-write: the EFI system partition, where the systems are.
pub fn mount_boot(data: &Path, label: &str, at: &Path) -> Option<PathBuf> {
    let name = data.file_name()?.to_str()?;
    // /sys/class/block/vda2 is a link to ../../devices/.../block/vda/vda2: the disk is
    // its parent. Followed from /sys/class/block rather than canonicalized, which would
    // link musl's realpath for this alone.
    let class = Path::new("/sys/class/block");
    let partition = class.join(std::fs::read_link(class.join(name)).ok()?);
    let disk = partition.parent()?;
    let disk_name = disk.file_name()?.to_str()?.to_owned();
    let mut partitions = crate::dir_names(disk).ok()?;
    partitions.retain(|entry| entry.starts_with(&disk_name) && *entry != disk_name);
    let device = partitions
        .into_iter()
        .map(|part| PathBuf::from("/dev").join(part))
        .find(|path| {
            let mut sector = [0u8; 512];
            File::open(path)
                .and_then(|file| file.read_exact_at(&mut sector, 0))
                .is_ok_and(|()| fat_label(&sector) == Some(label.as_bytes()))
        })?;
    let _ = std::fs::create_dir_all(at);
    match sys::mount(
        &device.to_string_lossy(),
        at,
        "vfat",
        sys::MS_NOATIME | sys::MS_NODEV | sys::MS_NOEXEC | sys::MS_NOSUID,
        "",
    ) {
        Ok(()) => {
            say!("boot: {} mounted at {}", device.display(), at.display());
            Some(device)
        }
        Err(error) => {
            say!(
                "boot: mount {} at {}: {error}",
                device.display(),
                at.display()
            );
            None
        }
    }
}

/// Create the package store directory and, where missing, give it the initramfs's trusted
/// keys (`keys/*.pub`) and repository list (`repos`). Never overwrites what is there: the
/// administrator may have changed both with `pkg key` and `pkg repo`.
pub fn seed(etc: &Path, root: &Path) {
    if let Err(error) = std::fs::create_dir_all(root) {
        say!("data: create {}: {error}", root.display());
        return;
    }
    let keys = root.join("keys");
    if !keys.exists() {
        if let Err(error) = copy_keys(&etc.join("keys"), &keys) {
            say!("data: seed {}: {error}", keys.display());
        }
    }
    let repos = root.join("repos");
    let etc_repos = etc.join("repos");
    if !repos.exists() && etc_repos.exists() {
        if let Err(error) = copy_file(&etc_repos, &repos) {
            say!("data: seed {}: {error}", repos.display());
        }
    }
}

fn copy_keys(from: &Path, to: &Path) -> io::Result<()> {
    // A partial directory left by a power cut is reused: its files are overwritten.
    let partial = to.with_extension("partial");
    std::fs::create_dir_all(&partial)?;
    if let Ok(entries) = std::fs::read_dir(from) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "pub") && path.is_file() {
                copy_file(&path, &partial.join(entry.file_name()))?;
            }
        }
    }
    File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, to)?;
    sync_parent(to)
}

/// Copy a file durably: write beside the target, fsync, rename, fsync the directory.
fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    let partial = to.with_extension("partial");
    std::fs::write(&partial, std::fs::read(from)?)?;
    File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, to)?;
    sync_parent(to)
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_labels_are_read_from_boot_sectors() {
        let mut fat32 = [0u8; 512];
        fat32[510..].copy_from_slice(&[0x55, 0xaa]);
        fat32[0x52..0x5a].copy_from_slice(b"FAT32   ");
        fat32[0x47..0x52].copy_from_slice(b"AMBER-ESP  ");
        assert_eq!(fat_label(&fat32), Some(&b"AMBER-ESP"[..]));
        let mut fat16 = [0u8; 512];
        fat16[510..].copy_from_slice(&[0x55, 0xaa]);
        fat16[0x36..0x3e].copy_from_slice(b"FAT16   ");
        fat16[0x2b..0x36].copy_from_slice(b"AMBER-BOOT ");
        assert_eq!(fat_label(&fat16), Some(&b"AMBER-BOOT"[..]));
        assert_eq!(fat_label(&[0u8; 512]), None);
        assert_eq!(fat_label(&[0u8; 10]), None);
    }
    use std::process::Command;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("amber-boot-disk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn synthetic_superblocks() {
        let mut block = vec![0u8; 1024];
        assert_eq!(superblock_label(&block), None);
        block[56..58].copy_from_slice(&0xEF53u16.to_le_bytes());
        assert_eq!(superblock_label(&block), Some(&b""[..]));
        block[120..130].copy_from_slice(b"amber-data");
        assert_eq!(superblock_label(&block), Some(&b"amber-data"[..]));
        block[120..136].copy_from_slice(b"sixteen-bytes-xx");
        assert_eq!(superblock_label(&block), Some(&b"sixteen-bytes-xx"[..]));
        assert_eq!(superblock_label(&block[..100]), None);
        block[57] = 0x53;
        assert_eq!(superblock_label(&block), None);
    }

    /// The label of a real ext4 image made by mke2fs (e2fsprogs, which CI installs).
    #[test]
    fn ext4_images_made_by_mke2fs() {
        let dir = temp_dir("mke2fs");
        let image = dir.join("data.img");
        let status = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", LABEL])
            .arg(&image)
            .arg("4M")
            .status()
            .or_else(|_| {
                Command::new("/sbin/mke2fs")
                    .args(["-q", "-F", "-t", "ext4", "-L", LABEL])
                    .arg(&image)
                    .arg("4M")
                    .status()
            })
            .expect("mke2fs (e2fsprogs) must be installed for this test");
        assert!(status.success());
        assert_eq!(label_of(&image).unwrap().as_deref(), Some(LABEL.as_bytes()));

        // find() in a fake /sys/class/block and /dev: one unlabelled, one empty, one right.
        let (class, dev) = (dir.join("class"), dir.join("dev"));
        std::fs::create_dir_all(&class).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        for name in ["loop0", "vda", "vda1", "vda2"] {
            std::fs::create_dir(class.join(name)).unwrap();
        }
        std::fs::write(dev.join("vda"), vec![0u8; 4096]).unwrap();
        std::fs::write(dev.join("vda1"), b"short").unwrap();
        std::fs::rename(&image, dev.join("vda2")).unwrap();
        std::fs::copy(dev.join("vda2"), dev.join("loop0")).unwrap();
        assert_eq!(find(&class, &dev, LABEL), Some(dev.join("vda2")));
        assert_eq!(find(&class, &dev, "other"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seeding_keeps_what_is_there() {
        let dir = temp_dir("seed");
        let etc = dir.join("etc");
        std::fs::create_dir_all(etc.join("keys")).unwrap();
        std::fs::write(etc.join("keys/release.pub"), "key").unwrap();
        std::fs::write(etc.join("keys/notes.txt"), "not a key").unwrap();
        std::fs::write(etc.join("repos"), "http://10.0.2.100:8080/\n").unwrap();
        let root = dir.join("data/pkg");
        seed(&etc, &root);
        assert_eq!(
            std::fs::read_to_string(root.join("keys/release.pub")).unwrap(),
            "key"
        );
        assert!(!root.join("keys/notes.txt").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("repos")).unwrap(),
            "http://10.0.2.100:8080/\n"
        );

        std::fs::write(root.join("repos"), "changed\n").unwrap();
        std::fs::remove_file(root.join("keys/release.pub")).unwrap();
        seed(&etc, &root);
        assert_eq!(
            std::fs::read_to_string(root.join("repos")).unwrap(),
            "changed\n"
        );
        assert!(
            !root.join("keys/release.pub").exists(),
            "a present keys dir is left alone"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
