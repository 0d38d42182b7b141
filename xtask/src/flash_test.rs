//! `cargo xtask flash-test`: `cargo xtask flash` against loop devices over files in
//! `target/flash-test/` (root only: losetup, partx, mount):
//!
//! 1. a 64 MiB test image (a real GPT; a FAT ESP and an ext4 partition with a file in
//!    each; data and explicit zeros in a third; holes elsewhere) is flashed over a stick
//!    full of old bytes with `--force --yes`: the read-back is verified, the bytes
//!    skipped are reported, and the stick's bytes equal the image's by a hash taken
//!    here, from the loop device's backing file;
//! 2. every refusal leaves the stick's bytes as they were: a mounted partition, a
//!    partition given instead of the disk, a stick too small, a non-removable disk
//!    without `--force`, the image itself (its path, and a loop device over it), a
//!    file that is not a block device, a disk another program holds exclusively, no
//!    confirmation, and the disk the host runs from (only checked, never written: the
//!    kernel's exclusive open would refuse it too);
//! 3. a slow flash (`AMBER_FLASH_THROTTLE_BYTES_PER_SEC`) interrupted with SIGINT
//!    midway exits non-zero, says the device is not bootable, and leaves its first MiB
//!    zero;
//! 4. [`flash_to_loop`], which the end-to-end test uses to boot a flashed stick, gives
//!    a loop device holding the image.

use crate::cmd::Cmd;
use crate::flash;
use crate::gpt::{self, Layout};
use crate::util::{create_dir, path_str, step};
use amber_core::hash::to_hex;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const DIR: &str = "target/flash-test";
const MIB: u64 = 1 << 20;
/// What an old stick holds before it is flashed: not zeros, so skipped ranges show.
const OLD_BYTE: u8 = 0x5a;

/// A loop device, detached (and its partitions dropped) when this is dropped.
pub struct LoopDevice {
    pub path: PathBuf,
    /// The file behind it, removed on drop when we made it.
    backing: Option<PathBuf>,
}

impl LoopDevice {
    /// `losetup --find --show FILE`.
    fn attach(file: &Path, owned: bool) -> Result<LoopDevice, String> {
        let path = Cmd::new("losetup")
            .args(["--find", "--show", path_str(file)?])
            .output()?;
        Ok(LoopDevice {
            path: PathBuf::from(path.trim()),
            backing: owned.then(|| file.to_path_buf()),
        })
    }

    fn str(&self) -> &str {
        self.path.to_str().expect("loop device paths are ASCII")
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // Partitions added with partx outlive the loop device unless dropped first.
        let _ = Cmd::new("partx").args(["-d", self.str()]).output();
        if let Err(error) = Cmd::new("losetup").args(["-d", self.str()]).output() {
            eprintln!("warning: {error}");
        }
        if let Some(file) = &self.backing {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A loop device over a new file the image's size, flashed with `image` by
/// `cargo xtask flash` (forced: loop devices are not removable): a USB stick to boot.
pub fn flash_to_loop(image: &Path) -> Result<LoopDevice, String> {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    create_dir(Path::new(DIR))?;
    let bytes = crate::build::file_size(image)?;
    let file = Path::new(DIR).join(format!(
        "stick-{}-{}.img",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    ));
    sparse_file(&file, bytes)?;
    let device = LoopDevice::attach(&file, true)?;
    flash::flash(&flash::Request {
        image,
        device: &device.path,
        force: true,
        yes: true,
    })?;
    Ok(device)
}

pub fn run() -> Result<(), String> {
    let root = amber_testkit::is_root();
    let tools = ["losetup", "partx", "mount", "mkfs.vfat", "mcopy", "mke2fs"];
    let missing: Vec<&str> = tools
        .into_iter()
        .filter(|tool| !crate::cmd::have(tool))
        .collect();
    let why = if root {
        format!("{} not installed", missing.join(", "))
    } else {
        "needs root (losetup, partx, mount)".to_owned()
    };
    if !amber_testkit::check_step("flash-test", root && missing.is_empty(), &why)? {
        return Ok(());
    }
    let dir = PathBuf::from(DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    create_dir(&dir)?;
    let image = dir.join("test.img");
    let image_bytes = test_image(&dir, &image)?;
    let image_hash = hash_file(&image, image_bytes)?;

    step("flash-test 1: flash a 64 MiB image with holes over a stick of old bytes");
    let stick_file = dir.join("stick.img");
    let stick_bytes = 96 * MIB;
    std::fs::write(&stick_file, vec![OLD_BYTE; stick_bytes as usize])
        .map_err(|e| format!("{}: {e}", stick_file.display()))?;
    let stick = LoopDevice::attach(&stick_file, false)?;
    let started = Instant::now();
    let (ok, output) = xtask_flash(&image, stick.str(), &["--force", "--yes"])?;
    let seconds = started.elapsed();
    expect(ok, &format!("flashing {} failed: {output}", stick.str()))?;
    expect(
        output.contains("matches the image"),
        "flash did not report a verified read-back",
    )?;
    let skipped =
        number_after(&output, "skipped ").ok_or("flash did not say how many bytes it skipped")?;
    // Holes: 64 MiB less the GPT, the FAT's metadata and file, and 3 MiB of data; the
    // 2 MiB of explicit zeros are skipped too.
    expect(
        skipped >= 40 * MIB,
        &format!("flash skipped only {skipped} bytes of a mostly empty image"),
    )?;
    expect(
        hash_file(&stick_file, image_bytes)? == image_hash,
        "the stick's first 64 MiB differ from the image",
    )?;
    expect(
        read_at(&stick_file, image_bytes, stick_bytes - image_bytes)?
            .iter()
            .all(|byte| *byte == OLD_BYTE),
        "flash wrote past the image's end",
    )?;
    eprintln!(
        "flash-test: flashed {} MiB in {:.1} s, {skipped} bytes skipped (zeroed by BLKZEROOUT); \
         the stick's first {} MiB hash as the image does ({}), its last {} MiB are untouched",
        image_bytes / MIB,
        seconds.as_secs_f64(),
        image_bytes / MIB,
        &image_hash[..16],
        (stick_bytes - image_bytes) / MIB,
    );

    step("flash-test 2: refusals leave the device unchanged");
    let before = hash_file(&stick_file, stick_bytes)?;
    let unchanged = |what: &str| -> Result<(), String> {
        expect(
            hash_file(&stick_file, stick_bytes)? == before,
            &format!("refusing {what} changed the stick"),
        )
    };
    let mut refusals: Vec<String> = Vec::new();
    let mut refused = |what: &str,
                       device: &str,
                       flags: &[&str],
                       expected: &str,
                       image_path: &Path|
     -> Result<(), String> {
        let (ok, output) = xtask_flash(image_path, device, flags)?;
        // The refusal itself, without xtask's prefix or the prompt before it.
        let line = output
            .lines()
            .find(|line| line.contains(expected))
            .map(|line| line[line.find("flash: ").unwrap_or(0)..].to_owned());
        expect(
            !ok && line.is_some(),
            &format!("{what}: expected a refusal saying `{expected}`, got: {output}"),
        )?;
        expect(
            !output.contains("flash: writing"),
            &format!("{what}: refused only after it began writing: {output}"),
        )?;
        refusals.push(format!("{what}: {}", line.unwrap_or_default()));
        Ok(())
    };

    Cmd::new("partx").args(["-a", stick.str()]).run()?;
    let partition = format!("{}p2", stick.str());
    wait_for(Path::new(&partition))?;
    let mount_point = dir.join("mnt");
    create_dir(&mount_point)?;
    // Read-only and without the journal: the device's bytes must stay as they are.
    Cmd::new("mount")
        .args([
            "-t",
            "ext4",
            "-o",
            "ro,noload",
            &partition,
            path_str(&mount_point)?,
        ])
        .run()?;
    let mounted = refused(
        "a mounted partition",
        stick.str(),
        &["--force", "--yes"],
        "is mounted on",
        &image,
    );
    Cmd::new("umount").arg(path_str(&mount_point)?).run()?;
    mounted?;
    unchanged("a mounted partition")?;
    refused(
        "a partition instead of the disk",
        &partition,
        &["--force", "--yes"],
        "is a partition of",
        &image,
    )?;
    unchanged("a partition")?;
    Cmd::new("partx").args(["-d", stick.str()]).run()?;

    refused(
        "not removable, no --force",
        stick.str(),
        &["--yes"],
        "is not removable",
        &image,
    )?;
    unchanged("a non-removable disk")?;
    refused(
        "not confirmed",
        stick.str(),
        &["--force"],
        "not confirmed; nothing written",
        &image,
    )?;
    unchanged("an unconfirmed flash")?;
    {
        // Another program holding the disk exclusively, as a mount or a flasher would.
        let _held = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(&stick.path)
            .map_err(|e| format!("{}: {e}", stick.str()))?;
        refused(
            "held exclusively by another program",
            stick.str(),
            &["--force", "--yes"],
            "is busy",
            &image,
        )?;
    }
    unchanged("a busy disk")?;

    let small_file = dir.join("small.img");
    std::fs::write(&small_file, vec![OLD_BYTE; (32 * MIB) as usize])
        .map_err(|e| format!("{}: {e}", small_file.display()))?;
    let small = LoopDevice::attach(&small_file, false)?;
    let small_before = hash_file(&small_file, 32 * MIB)?;
    refused(
        "too small",
        small.str(),
        &["--force", "--yes"],
        "is too small",
        &image,
    )?;
    expect(
        hash_file(&small_file, 32 * MIB)? == small_before,
        "refusing a small stick changed it",
    )?;
    drop(small);

    {
        let over_image = LoopDevice::attach(&image, false)?;
        refused(
            "a loop device over the image",
            over_image.str(),
            &["--force", "--yes"],
            "is a loop device over the image",
            &image,
        )?;
    }
    refused(
        "the image's own path",
        path_str(&image)?,
        &["--force", "--yes"],
        "is the image itself",
        &image,
    )?;
    expect(
        hash_file(&image, image_bytes)? == image_hash,
        "refusing the image as its own target changed it",
    )?;
    refused(
        "a regular file",
        path_str(&stick_file)?,
        &["--force", "--yes"],
        "is not a block device",
        &image,
    )?;
    unchanged("a regular file")?;
    if let Some(host_disk) = host_root_disk() {
        refused(
            "the disk the host runs from",
            &host_disk,
            &["--force", "--yes"],
            "holds the host's / file system",
            &image,
        )?;
    } else {
        eprintln!(
            "flash-test: / is not on a block device here; its refusal is left to the unit tests"
        );
    }
    for refusal in &refusals {
        eprintln!("flash-test: refused {refusal}");
    }

    step("flash-test 3: Ctrl-C midway leaves a device that does not boot");
    let slow = dir.join("slow.img");
    let slow_bytes = slow_image(&slow)?;
    let rate = 8 * MIB;
    let log_path = dir.join("interrupted.log");
    let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let clone = |file: &File| {
        file.try_clone()
            .map(std::process::Stdio::from)
            .map_err(|e| format!("{}: {e}", log_path.display()))
    };
    eprintln!("flash-test: {}={rate}", flash::THROTTLE_ENV);
    let started = Instant::now();
    let mut child = xtask()?
        .args([
            "flash",
            "--image",
            path_str(&slow)?,
            "--device",
            stick.str(),
        ])
        .args(["--force", "--yes"])
        .env(flash::THROTTLE_ENV, rate.to_string())
        .stderr(clone(&log)?)
        .spawn(std::process::Stdio::null(), clone(&log)?)?;
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    while !log_text().contains("flash: writing") {
        if started.elapsed() > Duration::from_secs(60) || child.try_wait().ok().flatten().is_some()
        {
            let _ = child.kill();
            return Err(format!(
                "flash-test: the slow flash never began writing: {}",
                log_text()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    expect(
        child.try_wait().ok().flatten().is_none(),
        "the throttled flash ended before it could be interrupted",
    )?;
    // SAFETY: kill on the child's pid, which is ours until we wait for it.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let interrupted_at = started.elapsed();
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the flash: {e}"))?;
    let output = log_text();
    eprint!("{output}");
    expect(
        !status.success(),
        "an interrupted flash exited with success",
    )?;
    expect(
        output.contains("the device is not bootable"),
        "an interrupted flash did not say the device is not bootable",
    )?;
    let head = read_at(&stick_file, 0, MIB)?;
    expect(
        head.iter().all(|byte| *byte == 0),
        "an interrupted flash left a non-zero first MiB",
    )?;
    expect(
        read_at(&stick_file, MIB, MIB)? == read_at(&slow, MIB, MIB)?,
        "the interrupted flash had not written the start of the image's body",
    )?;
    expect(
        read_at(&stick_file, slow_bytes - MIB, MIB)? != read_at(&slow, slow_bytes - MIB, MIB)?,
        "the interrupted flash had written the whole image: not midway",
    )?;
    eprintln!(
        "flash-test: SIGINT {:.1} s into a {} MiB flash at {} MiB/s: it ended with {status}, its first MiB zero",
        interrupted_at.as_secs_f64(),
        slow_bytes / MIB,
        rate / MIB
    );
    drop(stick);

    step("flash-test 4: flash_to_loop, the stick the end-to-end test boots");
    let flashed = flash_to_loop(&image)?;
    let backing = flashed
        .backing
        .clone()
        .expect("flash_to_loop owns its file");
    expect(
        hash_file(&backing, image_bytes)? == image_hash,
        "flash_to_loop's stick differs from the image",
    )?;
    eprintln!("flash-test: {} holds the image", flashed.str());
    drop(flashed);
    eprintln!(
        "flash-test: ok: a verified flash; {} refusals, each leaving what it was given as it was \
         (the host's disk only refused, not hashed); a clean stop on SIGINT",
        refusals.len()
    );
    Ok(())
}

/// This very xtask binary, to run `flash` as a user would.
fn xtask() -> Result<Cmd, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask itself: {e}"))?;
    Ok(Cmd::new(path_str(&exe)?))
}

/// `xtask flash --image IMAGE --device DEVICE FLAGS...`: success, and everything it printed.
fn xtask_flash(image: &Path, device: &str, flags: &[&str]) -> Result<(bool, String), String> {
    let (status, output) = xtask()?
        .args(["flash", "--image", path_str(image)?, "--device", device])
        .args(flags)
        .capture()?;
    eprint!("{output}");
    Ok((status.success(), output))
}

/// The test image, shaped like a board's: a GPT, a FAT32 ESP holding a file, an ext4
/// `amber-data` made with `mke2fs -d` (this is the one mounted: the kernel here may
/// lack vfat), and a raw partition with 3 MiB of data and 2 MiB of written zeros; the
/// rest are holes. Returns its size.
fn test_image(dir: &Path, image: &Path) -> Result<u64, String> {
    let layout = Layout::new(
        "flash-test",
        &[
            ("EFI system", gpt::TYPE_ESP, 36 * MIB),
            ("amber-data", gpt::TYPE_LINUX, 16 * MIB),
            ("raw", gpt::TYPE_LINUX, 10 * MIB),
        ],
    )?;
    sparse_file(image, layout.disk_size)?;
    write_at(image, 0, &layout.head())?;
    write_at(image, layout.tail_offset(), &layout.tail())?;
    let file = dir.join("hello.bin");
    crate::util::write(&file, &pseudo_random(1, 512 << 10))?;

    let esp = &layout.partitions[0];
    let fat = dir.join("esp.img");
    Cmd::new("mkfs.vfat")
        .args(["--invariant", "-F", "32", "-n", "FLASHTEST", "-C"])
        .args([path_str(&fat)?, &(esp.size / 1024).to_string()])
        .output()?;
    Cmd::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", path_str(&fat)?, path_str(&file)?, "::/hello.bin"])
        .run()?;
    copy_sparse(&fat, image, esp.offset)?;

    let data = &layout.partitions[1];
    let staging = dir.join("data-staging");
    create_dir(&staging)?;
    crate::util::copy(&file, &staging.join("hello.bin"))?;
    let ext4 = dir.join("data.img");
    sparse_file(&ext4, data.size)?;
    Cmd::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "amber-data", "-d"])
        .args([path_str(&staging)?, path_str(&ext4)?])
        .run()?;
    copy_sparse(&ext4, image, data.offset)?;

    let raw = &layout.partitions[2];
    write_at(image, raw.offset + MIB, &pseudo_random(2, 3 << 20))?;
    write_at(image, raw.offset + 5 * MIB, &vec![0u8; 2 << 20])?;
    Ok(layout.disk_size)
}

/// A 48 MiB image of data, to flash slowly: a GPT and one partition of pseudo-random bytes.
fn slow_image(image: &Path) -> Result<u64, String> {
    let layout = Layout::new(
        "flash-test-slow",
        &[("amber-data", gpt::TYPE_LINUX, 46 * MIB)],
    )?;
    sparse_file(image, layout.disk_size)?;
    write_at(image, 0, &layout.head())?;
    let data = &layout.partitions[0];
    write_at(image, data.offset, &pseudo_random(3, data.size as usize))?;
    write_at(image, layout.tail_offset(), &layout.tail())?;
    Ok(layout.disk_size)
}

/// Copy `from` into `to` at `offset`, leaving its all-zero 64 KiB blocks as holes.
fn copy_sparse(from: &Path, to: &Path, offset: u64) -> Result<(), String> {
    let bytes = crate::util::read(from)?;
    for (index, block) in bytes.chunks(64 << 10).enumerate() {
        if block.iter().any(|byte| *byte != 0) {
            write_at(to, offset + (index as u64) * (64 << 10), block)?;
        }
    }
    Ok(())
}

fn sparse_file(path: &Path, bytes: u64) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.set_len(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.write_all_at(bytes, offset))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read_at(path: &Path, offset: u64, length: u64) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; length as usize];
    File::open(path)
        .and_then(|file| file.read_exact_at(&mut bytes, offset))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(bytes)
}

/// SHA-256 of a file's first `length` bytes, read here rather than by `flash`.
fn hash_file(path: &Path, length: u64) -> Result<String, String> {
    use std::io::Read;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let hash = amber_base::hash::sha256_read(file.take(length))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(to_hex(&hash))
}

/// Incompressible bytes, without long runs of zeros.
fn pseudo_random(seed: u64, length: usize) -> Vec<u8> {
    amber_core::random::Random::new(seed).bytes(length)
}

/// The number after `prefix` in `text`: `skipped 123 B` → 123.
fn number_after(text: &str, prefix: &str) -> Option<u64> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The `/dev` path of the block device `/` is mounted from, when there is one.
fn host_root_disk() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let line = mountinfo
        .lines()
        .find(|line| line.split(' ').nth(4) == Some("/"))?;
    let dev = line.split(' ').nth(2)?;
    let dir = std::fs::canonicalize(format!("/sys/dev/block/{dev}")).ok()?;
    let disk = if dir.join("partition").exists() {
        dir.parent()?.to_path_buf()
    } else {
        dir
    };
    let path = format!("/dev/{}", disk.file_name()?.to_str()?);
    Path::new(&path).exists().then_some(path)
}

/// Wait for a device node that partx just asked for.
fn wait_for(path: &Path) -> Result<(), String> {
    let started = Instant::now();
    while !path.exists() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("{} did not appear", path.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn expect(condition: bool, message: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("flash-test: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_flash_output() {
        let line = "flash: wrote 9437184 B (9.0 MiB) in 0.3 s; skipped 57671680 B (55.0 MiB)";
        assert_eq!(number_after(line, "skipped "), Some(57_671_680));
        assert_eq!(number_after(line, "absent "), None);
    }

    #[test]
    fn pseudo_random_bytes_have_no_zero_runs() {
        let bytes = pseudo_random(1, 1 << 16);
        assert_eq!(bytes.len(), 1 << 16);
        assert!(bytes
            .windows(8)
            .all(|window| window.iter().any(|b| *b != 0)));
        assert_eq!(bytes, pseudo_random(1, 1 << 16));
    }
}
