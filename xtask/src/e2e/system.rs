//! The A/B system updates of the end-to-end test (DESIGN §11), on a UEFI board booted
//! by its firmware from a disk of its own, against a repository of this test's own
//! (the board's packages, and the system releases each step offers, signed again for
//! every step with a growing serial):
//!
//! 1. the image's system is 1.0; `pkg add dropbear`, so a service runs before the
//!    updates;
//! 2. rollout waves: 1.1 offered with its only wave a month away: `pkg system upgrade`
//!    leaves it, and `status` says when the wave comes;
//! 3. a good update: 1.1 offered now, `pkg system upgrade --reboot`, 1.1 boots, passes
//!    its health check and is blessed; `status` shows 1.0 as the previous system;
//! 4. a broken kernel: 1.2, whose kernel panics at once (no /init), uses up its three
//!    tries and the loader starts 1.1 by itself; `status` calls 1.2 bad;
//! 5. a failed health check: 1.3, in which dropbear dies at start, marks itself bad and
//!    reboots into 1.1;
//! 6. power cuts while 1.4 is written: qemu is SIGKILLed at three points of the
//!    download; each time 1.1 boots, and no 1.4 nor temporary file is left on the ESP;
//! 7. refusals that change nothing on the ESP: a downgrade (0.9), a tampered release,
//!    an index signed by a key the device does not trust, an index with a lower serial;
//! 8. `pkg list` and `pkg verify`: the packages are intact.

use super::{Report, Shell, COMMAND_TIMEOUT, PROMPT, SET_PROMPT};
use crate::board::Board;
use crate::cmd::Cmd;
use crate::image::{self, Disk, Release, System};
use crate::qemu::{Boot, Console, Options};
use crate::util::{create_dir, path_str, step};
use amber_testkit::http::{Server, Trickle};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Waits (up to 60 s) until dropbear runs.
const DROPBEAR_UP: &str = "n=0; until svc status dropbear | grep -qw running; do sleep 1; n=$((n+1)); [ $n -lt 60 ] || break; done; svc status dropbear | grep -w running";

/// From `upgrade --reboot` to the next boot's prompt; a broken kernel's three tries and
/// the fallback boot included.
const REBOOTS_TIMEOUT: Duration = Duration::from_secs(600);

/// What the test measured, for the report.
pub struct Measured {
    pub lines: Vec<String>,
}

/// A release built for the test: its version and UKI.
struct Built {
    version: &'static str,
    uki: PathBuf,
}

/// The whole test: [`prepare`], then [`run`].
pub fn test(board: &Board, report: &mut Report) -> Result<Measured, String> {
    let prepared = prepare(board)?;
    run(board, prepared, report)
}

/// What [`run`] needs, built beforehand: the releases, the disk and the repository.
/// Building uses shared scratch space; running uses only what is here, so runs of
/// several boards can go at once, beside other boards' steps.
pub struct Prepared {
    built: Vec<Built>,
    disk: PathBuf,
    repo: Repo,
}

/// Build the releases, the disk with 1.0 and the test's repository.
pub fn prepare(board: &Board) -> Result<Prepared, String> {
    let name = board.name.as_str();
    let directory = Path::new("target/e2e").join(name).join("ab");
    create_dir(&directory)?;
    step(&format!("e2e {name}: system releases"));
    let dropbear_dead = (
        "etc/amber/svc/dropbear".to_owned(),
        0o644,
        b"# This release's dropbear dies at start (the health-check step).\ncommand /bin/sh -c 'exit 1'\nrestart on-failure\n".to_vec(),
    );
    let releases: [(&'static str, Vec<image::ExtraFile>, bool); 7] = [
        ("1.0", Vec::new(), false),
        ("1.1", Vec::new(), false),
        ("1.2", Vec::new(), true),
        ("1.3", vec![dropbear_dead], false),
        ("1.4", Vec::new(), false),
        ("1.5", Vec::new(), false),
        ("0.9", Vec::new(), false),
    ];
    let mut built = Vec::new();
    let mut base = None;
    for (version, extra, broken) in releases {
        let release = Release {
            version: version.to_owned(),
            extra,
            broken,
        };
        let into = directory.join(version);
        create_dir(&into)?;
        let images = image::build_release(board, Disk::Skip, &[], &release, &into)?;
        let System::Uki { uki, .. } = &images.system else {
            return Err(format!("{name}: not a UEFI board"));
        };
        built.push(Built {
            version,
            uki: uki.clone(),
        });
        if version == "1.0" {
            base = Some(images);
        }
    }
    let base = base.expect("1.0 was built");
    let disk = directory.join("disk.img");
    let _ = std::fs::remove_file(directory.join("disk.img.efivars"));
    image::make_disk(board, &base, &disk)?;
    let repo = Repo::new(&directory.join("repo"), board)?;
    Ok(Prepared { built, disk, repo })
}

/// Boot the disk of [`prepare`] and go through the steps.
pub fn run(board: &Board, prepared: Prepared, report: &mut Report) -> Result<Measured, String> {
    let name = board.name.as_str();
    let arch = board.arch.name();
    let Prepared {
        built,
        disk,
        mut repo,
    } = prepared;
    let uki = |version: &str| -> PathBuf {
        built
            .iter()
            .find(|b| b.version == version)
            .expect("a built release")
            .uki
            .clone()
    };

    let server = Server::bind(&repo.root, 0)?.ok_or("cannot start the A/B repository server")?;
    let options = Options {
        repo_port: server.port(),
        snapshot: false,
        console: Console::Piped,
        host_forward: None,
        extra: Vec::new(),
        memory_mib: None,
        // The loader's boot counting needs the reboots a panicking kernel makes.
        reboot: true,
        netdev: None,
    };
    let boot = Boot { disk: disk.clone() };
    let mut lines = Vec::new();

    // 1.
    repo.offer(&[])?;
    let mut shell = Shell::boot(board, &boot, &options, report)?;
    // The image's system is being tried at its first boot, like any new one.
    shell
        .guest
        .until("1.0 passed its health check", Duration::from_secs(120))
        .map_err(|e| shell.failure(&format!("1.0 was not blessed at its first boot: {e}")))?;
    shell.ok(super::NETWORK_UP)?;
    expect_version(&mut shell, "1.0")?;
    shell.ok("pkg update && pkg add dropbear")?;
    shell.ok(DROPBEAR_UP)?;
    let esp_before = esp_listing(&mut shell)?;

    // 2.
    let month = now() + 30 * 24 * 3600;
    repo.offer(&[("1.1", uki("1.1"), Some(format!("100@{month}")))])?;
    let output = shell.ok("pkg system upgrade")?;
    shell.expect_output("upgrade before the wave", &output, "wave comes at")?;
    let status = shell.ok("pkg system status")?;
    shell.expect_output(
        "status before the wave",
        &status,
        &format!("comes at {month}"),
    )?;
    same_esp(&mut shell, &esp_before, "an upgrade before its wave")?;
    lines.push(format!(
        "rollout: 1.1's wave at {month}: `upgrade` left it (\"{}\")",
        output
            .lines()
            .find(|line| line.contains("wave comes at"))
            .unwrap_or_default()
            .trim()
    ));

    // 3.
    repo.offer(&[("1.1", uki("1.1"), None)])?;
    let upgraded = upgrade_and_reboot(&mut shell, "the good update")?;
    let ready = Instant::now();
    shell
        .guest
        .until("passed its health check; blessed", Duration::from_secs(120))
        .map_err(|e| shell.failure(&format!("1.1 was not blessed: {e}")))?;
    expect_version(&mut shell, "1.1")?;
    let status = shell.ok("pkg system status")?;
    shell.expect_output(
        "status after the good update",
        &status,
        "1.1 good (running)",
    )?;
    shell.expect_output("status after the good update", &status, "1.0 good")?;
    lines.push(format!(
        "good update: 1.1 written in {} ms, booted ({:.1} s from the reboot to the prompt; {}), blessed {:.1} s after its prompt; 1.0 kept as the previous system",
        upgraded.write_ms,
        upgraded.reboot.as_secs_f64(),
        upgraded.ready,
        ready.elapsed().as_secs_f64()
    ));

    // 4.
    repo.offer(&[("1.1", uki("1.1"), None), ("1.2", uki("1.2"), None)])?;
    let upgraded = upgrade_and_reboot(&mut shell, "the broken kernel")?;
    let panics = shell.guest.transcript().matches("Kernel panic").count();
    expect_version(&mut shell, "1.1")?;
    let status = shell.ok("pkg system status")?;
    shell.expect_output("status after the broken kernel", &status, "1.2 bad")?;
    lines.push(format!(
        "broken kernel: 1.2 panicked (console shows {panics} panics so far), used up its tries; the loader started 1.1 by itself {:.1} s after `upgrade --reboot`; status: 1.2 bad",
        upgraded.reboot.as_secs_f64()
    ));

    // 5.
    repo.offer(&[("1.1", uki("1.1"), None), ("1.3", uki("1.3"), None)])?;
    upgrade_and_reboot(&mut shell, "the release with a dead service")?;
    shell
        .guest
        .until("failed its health check", Duration::from_secs(120))
        .map_err(|e| shell.failure(&format!("1.3 did not fail its health check: {e}")))?;
    wait_for_prompt(&mut shell, "the boot after 1.3 failed")?;
    expect_version(&mut shell, "1.1")?;
    let status = shell.ok("pkg system status")?;
    shell.expect_output("status after the failed health check", &status, "1.3 bad")?;
    lines.push("failed health check: 1.3 found dropbear dead, marked itself bad and rebooted; 1.1 runs; status: 1.3 bad".to_owned());

    // 6.
    repo.offer(&[("1.1", uki("1.1"), None), ("1.4", uki("1.4"), None)])?;
    // An upgrade first frees the room bad systems take (1.3, marked `+0-N`): they go
    // before the download starts. Everything else must be there as it was.
    let esp_before: String = esp_listing(&mut shell)?
        .lines()
        .filter(|name| !name.contains("+0-"))
        .map(|name| format!("{name}\n"))
        .collect();
    let path = format!("/{arch}/system/{name}-1.4");
    let size = crate::build::file_size(&uki("1.4"))?;
    let mut cuts = Vec::new();
    for percent in [20u64, 50, 85] {
        server.set_trickle(Some(Trickle {
            paths: vec![path.clone()],
            bytes_per_second: 2 << 20,
        }));
        let seen = server.requests().len();
        shell.guest.send("pkg system upgrade\n")?;
        let started = Instant::now();
        loop {
            let requests = server.requests();
            if requests[seen..]
                .iter()
                .any(|r| r.path == path && r.sent * 100 >= size * percent)
            {
                break;
            }
            if started.elapsed() > COMMAND_TIMEOUT {
                server.set_trickle(None);
                return Err(shell.failure(&format!("1.4's download never came to {percent}%")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let cut = started.elapsed();
        // The power cut: SIGKILL of qemu.
        shell.guest.stop();
        server.set_trickle(None);
        shell = Shell::boot(board, &boot, &options, report)?;
        expect_version(&mut shell, "1.1")?;
        same_esp(
            &mut shell,
            &esp_before,
            &format!("a power cut at {percent}% of 1.4"),
        )?;
        shell.ok("pkg system status")?;
        cuts.push(format!("{percent}% ({:.1} s in)", cut.as_secs_f64()));
    }
    lines.push(format!(
        "power cuts while 1.4 was written, at {}: each time 1.1 booted, the ESP as before but for the bad 1.3 (no 1.4, no temporary file)",
        cuts.join(", ")
    ));

    // 7.
    let esp_before = esp_listing(&mut shell)?;
    repo.offer(&[("0.9", uki("0.9"), None)])?;
    refused(&mut shell, "a downgrade", "older than the running")?;
    same_esp(&mut shell, &esp_before, "the downgrade")?;
    repo.offer(&[("1.1", uki("1.1"), None), ("1.5", uki("1.5"), None)])?;
    repo.tamper("1.5")?;
    refused(&mut shell, "a tampered release", "sha256")?;
    same_esp(&mut shell, &esp_before, "the tampered release")?;
    repo.offer_signed_by_stranger(&[("1.1", uki("1.1"), None), ("1.5", uki("1.5"), None)])?;
    refused(&mut shell, "an index signed by an unknown key", "signature")?;
    same_esp(&mut shell, &esp_before, "the unknown key")?;
    repo.offer_with_serial(&[("1.1", uki("1.1"), None), ("1.5", uki("1.5"), None)], 1)?;
    refused(&mut shell, "an index with a lower serial", "serial")?;
    same_esp(&mut shell, &esp_before, "the lower serial")?;
    lines.push("refused, the ESP unchanged: a downgrade to 0.9, a tampered 1.5, an index signed by an unknown key, an index with a lower serial".to_owned());

    // 8.
    shell.ok("pkg verify")?;
    let listed = shell.installed()?;
    for wanted in ["busybox", "dropbear", "hello"] {
        if !listed
            .iter()
            .any(|id| id.starts_with(&format!("{wanted}-")))
        {
            return Err(shell.failure(&format!("`pkg list` lost {wanted}: {listed:?}")));
        }
    }
    lines.push(format!(
        "after all of it: pkg verify passes, pkg list shows {}",
        listed.join(" ")
    ));
    shell.shut_down("poweroff")?;
    Ok(Measured { lines })
}

/// What an upgrade with `--reboot` took: its write, and the time to the next prompt.
struct Upgraded {
    write_ms: u64,
    reboot: Duration,
    /// The new boot's `amber: ready in N ms (kernel handed over at M ms)`.
    ready: String,
}

/// `pkg system upgrade --reboot`, then the prompt of whatever boots next.
fn upgrade_and_reboot(shell: &mut Shell, what: &str) -> Result<Upgraded, String> {
    eprintln!("    {PROMPT}pkg system upgrade --reboot");
    shell.guest.send("pkg system upgrade --reboot\n")?;
    // The line pkg prints once the system is written; the echo of the command line
    // itself says `--reboot`, not this.
    let written = shell
        .guest
        .until("; rebooting", COMMAND_TIMEOUT)
        .map_err(|e| shell.failure(&format!("{what}: `pkg system upgrade --reboot`: {e}")))?;
    let write_ms = written
        .split(" in ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.trim().parse().ok())
        .unwrap_or(0);
    let started = Instant::now();
    let ready = wait_for_prompt(shell, what)?;
    Ok(Upgraded {
        write_ms,
        reboot: started.elapsed(),
        ready,
    })
}

/// Wait for the next boot's `amber: ready` and give its shell the test's prompt;
/// returns the ready line.
fn wait_for_prompt(shell: &mut Shell, what: &str) -> Result<String, String> {
    shell
        .guest
        .until("amber: ready", REBOOTS_TIMEOUT)
        .map_err(|e| shell.failure(&format!("{what}: no boot came up: {e}")))?;
    let rest = shell.guest.until("\n", Duration::from_secs(10))?;
    let ready = format!("amber: ready{}", rest.trim_end());
    shell.guest.send(&format!("{SET_PROMPT}\n"))?;
    shell
        .guest
        .until(PROMPT, Duration::from_secs(60))
        .map_err(|e| shell.failure(&format!("{what}: no prompt: {e}")))?;
    Ok(ready)
}

fn expect_version(shell: &mut Shell, version: &str) -> Result<(), String> {
    let running = shell.ok("cat /etc/amber/version")?;
    if running.trim() == version {
        Ok(())
    } else {
        Err(shell.failure(&format!("system {} runs, not {version}", running.trim())))
    }
}

/// The ESP's systems and any other files there, one per line. Each name is marked, so a
/// service's console line that lands in the output is not taken for a file.
fn esp_listing(shell: &mut Shell) -> Result<String, String> {
    let output = shell.ok("ls -1a /boot/EFI/Linux | sed 's/^/esp: /'")?;
    Ok(output
        .lines()
        .filter_map(|line| line.strip_prefix("esp: "))
        .filter(|name| *name != "." && *name != "..")
        .map(|name| format!("{name}\n"))
        .collect())
}

fn same_esp(shell: &mut Shell, before: &str, after: &str) -> Result<(), String> {
    let now = esp_listing(shell)?;
    if now == before {
        Ok(())
    } else {
        Err(shell.failure(&format!(
            "after {after} the ESP holds\n{now}\nnot\n{before}"
        )))
    }
}

/// `pkg system upgrade` must fail with one line containing `wanted`.
fn refused(shell: &mut Shell, what: &str, wanted: &str) -> Result<(), String> {
    let (status, output) = shell.command("pkg system upgrade 2>&1", COMMAND_TIMEOUT)?;
    if status == 0 || !output.contains(wanted) {
        return Err(shell.failure(&format!("{what}: `pkg system upgrade` gave exit {status}, not a refusal naming {wanted:?}:\n{output}")));
    }
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The test's repository: the board's packages, and the releases a step offers.
struct Repo {
    root: PathBuf,
    arch_dir: PathBuf,
    serial: u64,
    /// The board whose releases it offers (`system/BOARD-VERSION`).
    board: String,
}

impl Repo {
    /// `root/<arch>/` with links to every package image of target/repo/<arch>/.
    fn new(root: &Path, board: &Board) -> Result<Repo, String> {
        if root.exists() {
            std::fs::remove_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
        }
        let arch_dir = root.join(board.arch.name());
        create_dir(&arch_dir)?;
        let packages = Path::new(crate::recipes::REPO_DIR).join(board.arch.name());
        for entry in
            std::fs::read_dir(&packages).map_err(|e| format!("{}: {e}", packages.display()))?
        {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|ext| ext == "squashfs") {
                let target = arch_dir.join(path.file_name().expect("a file"));
                std::fs::hard_link(&path, &target)
                    .or_else(|_| std::fs::copy(&path, &target).map(|_| ()))
                    .map_err(|e| format!("{}: {e}", target.display()))?;
            }
        }
        Ok(Repo {
            root: root.to_path_buf(),
            arch_dir,
            serial: now(),
            board: board.name.clone(),
        })
    }

    /// Offer exactly `releases` (version, UKI, rollout), in an index signed with the
    /// development key and the next serial.
    fn offer(&mut self, releases: &[(&str, PathBuf, Option<String>)]) -> Result<(), String> {
        self.serial += 1;
        let serial = self.serial;
        self.write(releases, &crate::keys::development()?.secret, serial)
    }

    /// As [`Repo::offer`], signed by a key no device trusts.
    fn offer_signed_by_stranger(
        &mut self,
        releases: &[(&str, PathBuf, Option<String>)],
    ) -> Result<(), String> {
        let dir = self
            .root
            .parent()
            .expect("in the test directory")
            .join("stranger");
        let secret = dir.join("stranger.key");
        if !secret.is_file() {
            create_dir(&dir)?;
            Cmd::new("minisign")
                .args([
                    "-G",
                    "-W",
                    "-p",
                    path_str(&dir.join("stranger.pub"))?,
                    "-s",
                    path_str(&secret)?,
                ])
                .output()?;
        }
        self.serial += 1;
        let serial = self.serial;
        self.write(releases, &secret, serial)
    }

    /// As [`Repo::offer`], with the serial given (lower than the device accepted).
    fn offer_with_serial(
        &mut self,
        releases: &[(&str, PathBuf, Option<String>)],
        serial: u64,
    ) -> Result<(), String> {
        self.write(releases, &crate::keys::development()?.secret, serial)
    }

    fn write(
        &self,
        releases: &[(&str, PathBuf, Option<String>)],
        secret: &Path,
        serial: u64,
    ) -> Result<(), String> {
        let dir = self.arch_dir.join("system");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        create_dir(&dir)?;
        let board = &self.board;
        for (version, uki, rollout) in releases {
            let target = dir.join(format!("{board}-{version}"));
            crate::util::copy(uki, &target)?;
            if let Some(rollout) = rollout {
                crate::util::write(
                    &dir.join(format!("{board}-{version}.rollout")),
                    format!("{rollout}\n").as_bytes(),
                )?;
            }
        }
        let pkg = crate::build::host_pkg()?;
        Cmd::new(path_str(&pkg)?)
            .args(["repo", "index", path_str(&self.arch_dir)?])
            .args(["--secret-key", path_str(secret)?])
            .args(["--serial", &serial.to_string()])
            .output()?;
        Ok(())
    }

    /// Flip a byte of an offered release after the index was signed.
    fn tamper(&self, version: &str) -> Result<(), String> {
        let board = &self.board;
        let path = self
            .arch_dir
            .join("system")
            .join(format!("{board}-{version}"));
        let mut bytes = crate::util::read(&path)?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        crate::util::write(&path, &bytes)
    }
}
