//! The initramfs: what the device binary finds at boot (DESIGN §5), as a cpio archive.
//!
//! The layout is a contract with init (boot/):
//!
//! ```text
//! /init                          the device binary
//! /amber/bin/{pkg,svc,net,poweroff,reboot,modprobe} -> /init
//! /bin, /sbin, /lib -> ro/...;  /usr/{bin,sbin,lib,share} -> /ro/...
//! /etc/amber/board               the board name
//! /etc/amber/version             the system's release (its UKI's VERSION_ID)
//! /etc/amber/modules             modules loaded at every boot, in order, one file per line
//! /etc/amber/modules.alias       `alias PATTERN NAME` of every module carried (modalias)
//! /etc/amber/modules.dep         `NAME: DEPENDENCY...` of every module, in load order
//! /etc/amber/network             the board's network settings (boot/README.md)
//! /etc/amber/keys/*.pub          trusted minisign public keys
//! /etc/amber/repos               repository URLs, one per line
//! /etc/amber/svc/clock           the SNTP client's service
//! /etc/amber/svc/hotplug         the hotplug service (boards with hardware modules)
//! /etc/passwd, /etc/group -> /run/etc/...   written by init (root, nobody, tty, and
//!                                the installed packages' users); /root -> /data/root
//! /amber/modules/*.ko            the kernel modules
//! /dev/console (char 5:1); empty /proc /sys /dev /run /tmp /data /ro
//! ```
//!
//! The base (everything but the modules) has a size budget; the modules depend on the
//! kernel and are reported apart.

use crate::board::Board;
use crate::cmd::Cmd;
use crate::cpio::{Archive, Entry};
use crate::modules::Modules;
use crate::util::{create_dir, path_str, write};
use std::path::Path;

/// The names init answers to besides `init`, linked to /init.
pub const APPLETS: &[&str] = &["pkg", "svc", "net", "poweroff", "reboot", "modprobe"];

/// The `hotplug` service: the device binary's module loader, listening to uevents.
const HOTPLUG_SERVICE: &str = "\
# Loads the driver of every device that appears after boot (cargo xtask image).
command /amber/bin/modprobe --hotplug
restart always
";

/// The `clock` service: the device binary's SNTP client (boot/src/sntp.rs).
const CLOCK_SERVICE: &str = "\
# Sets the clock by SNTP from the network settings' servers and DHCP's (cargo xtask image).
command /amber/bin/net clock
needs network
";

/// Which part of the base an entry belongs to, for the size report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Binary,
    Keys,
    Skeleton,
    Modules,
}

impl Part {
    pub fn of(path: &str) -> Part {
        if path == "init" {
            Part::Binary
        } else if path.starts_with("etc/amber/keys/") {
            Part::Keys
        } else if path.starts_with("amber/modules/") || path.starts_with("etc/amber/modules.") {
            Part::Modules
        } else {
            Part::Skeleton
        }
    }
}

/// The whole initramfs: the base plus the modules.
pub fn archive(
    board: &Board,
    binary: Vec<u8>,
    keys: &[(String, Vec<u8>)],
    modules: &Modules,
    extra: &[(String, u32, Vec<u8>)],
) -> Archive {
    let mut archive = Archive::new();
    archive.file("init", 0o755, binary);
    for applet in APPLETS {
        archive.symlink(&format!("amber/bin/{applet}"), "/init");
    }
    // The exchange directories of the package store (DESIGN §5).
    for directory in ["bin", "sbin", "lib"] {
        archive.symlink(directory, &format!("ro/{directory}"));
    }
    for directory in ["bin", "sbin", "lib", "share"] {
        archive.symlink(&format!("usr/{directory}"), &format!("/ro/{directory}"));
    }
    archive.file(
        "etc/amber/board",
        0o644,
        format!("{}\n", board.name).into_bytes(),
    );
    let list: String = modules
        .always
        .iter()
        .map(|module| format!("{}\n", module.file_name))
        .collect();
    archive.file("etc/amber/modules", 0o644, list.into_bytes());
    archive.file(
        "etc/amber/modules.alias",
        0o644,
        modules.aliases.clone().into_bytes(),
    );
    archive.file(
        "etc/amber/modules.dep",
        0o644,
        modules.dependencies.clone().into_bytes(),
    );
    if let Some(network) = &board.network {
        archive.file("etc/amber/network", 0o644, network.settings().into_bytes());
    }
    for (name, bytes) in keys {
        archive.file(&format!("etc/amber/keys/{name}"), 0o644, bytes.clone());
    }
    let repos: String = board.repos.iter().map(|repo| format!("{repo}\n")).collect();
    archive.file("etc/amber/repos", 0o644, repos.into_bytes());
    archive.directory("etc/amber/svc", 0o755);
    archive.file(
        "etc/amber/svc/clock",
        0o644,
        CLOCK_SERVICE.as_bytes().to_vec(),
    );
    if !modules.hardware.is_empty() {
        // Drivers for devices that appear after boot (hotplug, slow buses).
        archive.file(
            "etc/amber/svc/hotplug",
            0o644,
            HOTPLUG_SERVICE.as_bytes().to_vec(),
        );
    }
    // Users and groups are init's to write (root, nobody, the tty group and the users
    // the installed packages declare; boot/src/users.rs). root's home is on the data
    // partition, so ~/.ssh/authorized_keys persists. No password: logins over ssh
    // take a key.
    archive.symlink("etc/passwd", "/run/etc/passwd");
    archive.symlink("etc/group", "/run/etc/group");
    archive.symlink("root", "/data/root");
    archive.directory("amber/modules", 0o755);
    for module in modules.all() {
        archive.file(
            &format!("amber/modules/{}", module.file_name),
            0o644,
            module.bytes.clone(),
        );
    }
    archive.add(
        "dev/console",
        Entry::CharDevice {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    );
    for directory in ["proc", "sys", "dev", "run", "data", "ro"] {
        archive.directory(directory, 0o755);
    }
    archive.directory("tmp", 0o1777);
    for (path, mode, bytes) in extra {
        archive.file(path, *mode, bytes.clone());
    }
    archive
}

/// The base initramfs: everything but the kernel modules.
pub fn base(full: &Archive) -> Archive {
    full.filtered(|path, _| Part::of(path) != Part::Modules)
}

/// The time stamped on every entry: SOURCE_DATE_EPOCH, or 0.
pub fn mtime() -> u32 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// `gzip -9 -n` of the bytes: deterministic (no name, no time), as the kernel reads it.
pub fn gzip(bytes: &[u8], scratch: &Path) -> Result<Vec<u8>, String> {
    create_dir(scratch)?;
    let file = scratch.join(format!("gzip-input-{}", std::process::id()));
    write(&file, bytes)?;
    let compressed = Cmd::new("gzip")
        .args(["-9", "-n", "-c", path_str(&file)?])
        .output_bytes();
    let _ = std::fs::remove_file(&file);
    compressed
}

/// The compressed size of each part of the base as it adds to the whole: the skeleton
/// alone, then with the keys, then with the binary. The last total is the base's size.
pub fn part_sizes(base: &Archive, scratch: &Path) -> Result<Vec<(Part, u64, u64)>, String> {
    let mut sizes = Vec::new();
    let mut included: Vec<Part> = Vec::new();
    let mut previous = 0u64;
    for part in [Part::Skeleton, Part::Keys, Part::Binary] {
        included.push(part);
        let subset = base.filtered(|path, _| included.contains(&Part::of(path)));
        let raw: u64 = base
            .entries()
            .filter(|(path, _)| Part::of(path) == part)
            .map(|(_, entry)| match entry {
                Entry::File { bytes, .. } => bytes.len() as u64,
                _ => 0,
            })
            .sum();
        let compressed = gzip(&subset.to_bytes(mtime()), scratch)?.len() as u64;
        sizes.push((part, raw, compressed - previous.min(compressed)));
        previous = compressed;
    }
    Ok(sizes)
}
