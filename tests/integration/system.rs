//! `pkg system` on the host, against a directory standing for the device's root
//! (`AMBER_SYSTEM_ROOT`: `etc/amber/{board,version}` and the ESP at `boot/`) and a
//! repository served over HTTP whose index lists system releases (DESIGN §11).

use std::path::{Path, PathBuf};

use amber_testkit::http::Server;
use amber_tests::fixture::{future, Device, Repo};
use amber_tests::TempDir;

const BOARD: &str = "test-board";

/// A device root with system `running` on its ESP as `entries` (file names).
fn system_root(temp: &TempDir, running: &str, entries: &[&str]) -> PathBuf {
    let root = temp.join("sysroot");
    std::fs::create_dir_all(root.join("etc/amber")).unwrap();
    std::fs::create_dir_all(root.join("boot/EFI/Linux")).unwrap();
    std::fs::write(root.join("etc/amber/board"), format!("{BOARD}\n")).unwrap();
    std::fs::write(root.join("etc/amber/version"), format!("{running}\n")).unwrap();
    for entry in entries {
        std::fs::write(root.join("boot/EFI/Linux").join(entry), b"an old system").unwrap();
    }
    root
}

fn esp(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("boot/EFI/Linux"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Publish `releases` (version, bytes, rollout) and index them at `serial`.
fn offer(repo: &Repo, releases: &[(&str, &[u8], Option<&str>)], serial: u64) {
    let dir = repo.arch_dir().join("system");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (version, bytes, rollout) in releases {
        std::fs::write(dir.join(format!("{BOARD}-{version}")), bytes).unwrap();
        if let Some(rollout) = rollout {
            std::fs::write(dir.join(format!("{BOARD}-{version}.rollout")), rollout).unwrap();
        }
    }
    repo.index(serial, future());
}

struct Scene {
    _temp: TempDir,
    repo: Repo,
    _server: Server,
    device: Device,
    root: PathBuf,
}

fn scene(name: &str, running: &str, entries: &[&str]) -> Scene {
    let temp = TempDir::new(name);
    let repo = Repo::new(&temp, "repo");
    repo.simple("a", "1.0-r0", &[]);
    repo.index(1, future());
    let server = Server::start(&repo.dir);
    let mut device = Device::new(&temp, "store");
    device.trust(&repo, &server.url());
    let root = system_root(&temp, running, entries);
    device.env("AMBER_SYSTEM_ROOT", root.to_str().unwrap());
    // No init here: pkg records no services.
    device.env(
        "AMBER_CONTROL_SOCKET",
        temp.join("no-init").to_str().unwrap(),
    );
    Scene {
        _temp: temp,
        repo,
        _server: server,
        device,
        root,
    }
}

#[test]
fn an_upgrade_writes_the_new_system_with_three_tries_and_keeps_one_previous() {
    let s = scene(
        "system-upgrade",
        "1.1",
        &[
            "amber-1.0.efi",
            "amber-0.9.efi",
            "amber-1.1.efi",
            "amber-0.5+0-3.efi",
        ],
    );
    offer(&s.repo, &[("1.2", b"the 1.2 system", None)], 2);
    let output = s.device.ok(&["system", "upgrade"]);
    assert!(output.contains("system 1.2 written to"), "{output}");
    assert!(output.contains("reboot to use it"), "{output}");
    // The running one, the previous good one, and the new one with three tries.
    assert_eq!(
        esp(&s.root),
        ["amber-1.0.efi", "amber-1.1.efi", "amber-1.2+3.efi"]
    );
    assert_eq!(
        std::fs::read(s.root.join("boot/EFI/Linux/amber-1.2+3.efi")).unwrap(),
        b"the 1.2 system"
    );
    let pending = std::fs::read_to_string(s.device.root.join("state/system-pending")).unwrap();
    assert_eq!(pending, "from 1.1\nto 1.2\n");
    let status = s.device.ok(&["system", "status"]);
    assert!(status.contains("1.2 new, 3 tries left"), "{status}");
    assert!(status.contains("1.1 good (running)"), "{status}");
    // Again: it is there already.
    let again = s.device.ok(&["system", "upgrade"]);
    assert!(again.contains("already on the ESP"), "{again}");
}

#[test]
fn downgrades_tampered_releases_and_bad_systems_are_refused_and_change_nothing() {
    let s = scene(
        "system-refusals",
        "1.1",
        &["amber-1.1.efi", "amber-1.3+0-3.efi"],
    );
    offer(&s.repo, &[("1.0", b"older", None)], 2);
    let error = s.device.fails(&["system", "upgrade"]);
    assert!(error.contains("older than the running 1.1"), "{error}");
    assert_eq!(esp(&s.root), ["amber-1.1.efi", "amber-1.3+0-3.efi"]);
    // --allow-downgrade takes it.
    s.device.ok(&["system", "upgrade", "--allow-downgrade"]);
    assert_eq!(esp(&s.root), ["amber-1.0+3.efi", "amber-1.1.efi"]);

    let s = scene("system-tampered", "1.1", &["amber-1.1.efi"]);
    offer(&s.repo, &[("1.2", b"the real 1.2", None)], 2);
    std::fs::write(
        s.repo.arch_dir().join(format!("system/{BOARD}-1.2")),
        b"the evil 1.2",
    )
    .unwrap();
    let error = s.device.fails(&["system", "upgrade"]);
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert_eq!(esp(&s.root), ["amber-1.1.efi"], "no temporary file is left");

    let s = scene(
        "system-bad-before",
        "1.1",
        &["amber-1.1.efi", "amber-1.2+0-3.efi"],
    );
    offer(&s.repo, &[("1.2", b"1.2 again", None)], 2);
    let error = s.device.fails(&["system", "upgrade"]);
    assert!(error.contains("failed here before"), "{error}");
}

#[test]
fn a_release_waits_for_this_devices_wave_unless_now() {
    let s = scene("system-waves", "1.1", &["amber-1.1.efi"]);
    let later = amber_tests::fixture::now() + 86_400 * 10;
    offer(
        &s.repo,
        &[("1.2", b"1.2", Some(&format!("100@{later}")))],
        2,
    );
    let output = s.device.ok(&["system", "upgrade"]);
    assert!(
        output.contains(&format!("wave comes at {later}")),
        "{output}"
    );
    assert_eq!(esp(&s.root), ["amber-1.1.efi"]);
    let status = s.device.ok(&["system", "status"]);
    assert!(
        status.contains(&format!("comes at {later} (in ")),
        "{status}"
    );
    let json = s.device.ok(&["--json", "system", "status"]);
    assert!(
        json.contains(&format!("\"available_at\":{later}")),
        "{json}"
    );
    s.device.ok(&["system", "upgrade", "--now"]);
    assert_eq!(esp(&s.root), ["amber-1.1.efi", "amber-1.2+3.efi"]);
    // The device's seed stays: the same place next time.
    let seed = std::fs::read_to_string(s.device.root.join("state/rollout-seed")).unwrap();
    s.device.ok(&["system", "status"]);
    assert_eq!(
        std::fs::read_to_string(s.device.root.join("state/rollout-seed")).unwrap(),
        seed
    );
}

#[test]
fn mark_good_mark_bad_and_rollback_rename_the_running_system() {
    let s = scene(
        "system-marks",
        "1.2",
        &["amber-1.1.efi", "amber-1.2+2-1.efi"],
    );
    s.device.ok(&["system", "mark-good"]);
    assert_eq!(esp(&s.root), ["amber-1.1.efi", "amber-1.2.efi"]);
    let output = s.device.ok(&["system", "rollback"]);
    assert!(output.contains("1.1 boots next"), "{output}");
    assert_eq!(esp(&s.root), ["amber-1.1.efi", "amber-1.2+0.efi"]);
    let status = s.device.ok(&["system", "status"]);
    assert!(status.contains("1.2 bad (running)"), "{status}");

    let s = scene("system-no-previous", "1.2", &["amber-1.2.efi"]);
    let error = s.device.fails(&["system", "rollback"]);
    assert!(error.contains("no previous good system"), "{error}");
    s.device.ok(&["system", "mark-bad"]);
    assert_eq!(esp(&s.root), ["amber-1.2+0.efi"]);
}

#[test]
fn system_lines_need_a_valid_signed_index() {
    let s = scene("system-index", "1.1", &["amber-1.1.efi"]);
    // An index with a system line that is not one is refused whole.
    let text = format!(
        "{}{}system {BOARD} 1.2 size=1\n",
        Repo::header(5, future()),
        Repo::entry_line(&s.repo.image("a", "1.0-r0"), "a", "1.0-r0", "")
    );
    s.repo.publish(&text);
    let error = s.device.fails(&["update"]);
    assert!(error.contains("system line: missing sha256="), "{error}");
}

/// A Raspberry Pi root: partition 1 at `boot/`, the boot partitions at `run/amber/boot-N`,
/// the running system in partition 2.
fn pi_root(temp: &TempDir, running: &str) -> PathBuf {
    let root = temp.join("pi-root");
    std::fs::create_dir_all(root.join("etc/amber")).unwrap();
    for dir in ["boot", "run/amber/boot-2", "run/amber/boot-3"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("etc/amber/board"), format!("{BOARD}\n")).unwrap();
    std::fs::write(root.join("etc/amber/version"), format!("{running}\n")).unwrap();
    std::fs::write(
        root.join("boot/autoboot.txt"),
        amber_core::system::pi::autoboot(2, 3),
    )
    .unwrap();
    std::fs::write(root.join("boot/amber-slots"), format!("2 good {running}\n")).unwrap();
    std::fs::write(
        root.join("run/amber/boot-2/amber-version"),
        format!("{running}\n"),
    )
    .unwrap();
    std::fs::write(root.join("run/amber/boot-2/vmlinuz"), b"the old kernel").unwrap();
    std::fs::write(
        root.join("run/amber/boot-3/leftover"),
        b"an older system's file",
    )
    .unwrap();
    root
}

/// A release of a Pi system: a SquashFS image of boot-partition files.
fn pi_release(temp: &TempDir, version: &str) -> Vec<u8> {
    let tree = temp.join(format!("release-{version}"));
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("vmlinuz"), format!("the {version} kernel")).unwrap();
    std::fs::write(tree.join("config.txt"), b"arm_64bit=1\n").unwrap();
    std::fs::write(tree.join("amber-version"), format!("{version}\n")).unwrap();
    let image = temp.join(format!("release-{version}.squashfs"));
    amber_tests::run_ok(std::process::Command::new("mksquashfs").args([
        tree.to_str().unwrap(),
        image.to_str().unwrap(),
        "-comp",
        "gzip",
        "-noappend",
        "-all-root",
        "-quiet",
        "-no-progress",
    ]));
    std::fs::read(image).unwrap()
}

#[test]
fn a_pi_upgrade_fills_the_other_boot_partition_and_arms_tryboot() {
    if !amber_testkit::require_tool("mksquashfs", "squashfs-tools") {
        return;
    }
    let s = scene("system-pi", "1.1", &[]);
    let temp = TempDir::new("system-pi-root");
    let root = pi_root(&temp, "1.1");
    let mut device = Device::new(&temp, "unused");
    device.root = s.device.root.clone();
    device.env("AMBER_SYSTEM_ROOT", root.to_str().unwrap());
    device.env(
        "AMBER_CONTROL_SOCKET",
        temp.join("no-init").to_str().unwrap(),
    );
    let release = pi_release(&temp, "1.2");
    offer(&s.repo, &[("1.2", &release, None)], 2);
    let output = device.ok(&["system", "upgrade"]);
    assert!(output.contains("written to boot partition 3"), "{output}");
    let slot = root.join("run/amber/boot-3");
    assert_eq!(
        std::fs::read(slot.join("vmlinuz")).unwrap(),
        b"the 1.2 kernel"
    );
    assert_eq!(
        std::fs::read_to_string(slot.join("amber-version")).unwrap(),
        "1.2\n"
    );
    assert!(
        !slot.join("leftover").exists(),
        "the partition holds only the release"
    );
    let autoboot = std::fs::read_to_string(root.join("boot/autoboot.txt")).unwrap();
    assert_eq!(
        amber_core::system::pi::committed(&autoboot),
        Some(2),
        "{autoboot}"
    );
    assert!(
        autoboot.contains("[tryboot]\nboot_partition=3\n"),
        "{autoboot}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("boot/amber-slots")).unwrap(),
        "2 good 1.1\n3 trying 1.2\n"
    );
    let status = device.ok(&["system", "status"]);
    assert!(status.contains("partition 3: 1.2 trying"), "{status}");
    assert!(
        status.contains("partition 2: 1.1 good (running)"),
        "{status}"
    );
    // A tampered release changes nothing.
    let before = std::fs::read_to_string(root.join("boot/amber-slots")).unwrap();
    let mut tampered = pi_release(&temp, "1.3");
    offer(&s.repo, &[("1.3", &tampered, None)], 3);
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(
        s.repo.arch_dir().join(format!("system/{BOARD}-1.3")),
        &tampered,
    )
    .unwrap();
    let error = device.fails(&["system", "upgrade"]);
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert_eq!(
        std::fs::read_to_string(root.join("boot/amber-slots")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read(slot.join("vmlinuz")).unwrap(),
        b"the 1.2 kernel"
    );
}
