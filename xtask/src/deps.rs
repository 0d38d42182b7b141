//! Making sure the host has what the project needs: rust targets and Debian packages.
//!
//! As root, missing Debian packages are installed with apt-get; otherwise one line
//! lists what to install. CI calls this through `cargo xtask test`.

use crate::cmd::{have, Cmd};

/// Debian packages and the program each provides (checked with PATH lookups).
const PACKAGES: &[(&str, &str)] = &[
    ("minisign", "minisign"),
    ("squashfs-tools", "unsquashfs"),
    ("squashfs-tools-ng", "rdsquashfs"),
    ("squashfuse", "squashfuse_ll"),
    ("fuse3", "fusermount3"),
    ("e2fsprogs", "mke2fs"),
    ("cpio", "cpio"),
    // Disk images (cargo xtask image) and booting them (run, the end-to-end test).
    ("dosfstools", "mkfs.vfat"),
    ("mtools", "mcopy"),
    ("gdisk", "sgdisk"),
    ("xz-utils", "xz"),
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("qemu-system-arm", "qemu-system-aarch64"),
    // Recipes (cargo xtask recipes): the sandbox, fetching, unpacking, patching, host
    // tools for builds, and Python for the ziglang wheel.
    ("util-linux", "unshare"),
    ("curl", "curl"),
    ("bzip2", "bzip2"),
    ("patch", "patch"),
    ("make", "make"),
    ("gcc", "gcc"),
    ("python3", "python3"),
];

/// Rust targets the device and no_std checks build for (also in rust-toolchain.toml).
const TARGETS: &[&str] = &[
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "aarch64-unknown-none",
];

pub fn ensure() -> Result<(), String> {
    ensure_targets()?;
    ensure_packages()
}

fn ensure_targets() -> Result<(), String> {
    let installed = Cmd::new("rustup")
        .args(["target", "list", "--installed"])
        .output()?;
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Cmd::new("rustup")
        .args(["target", "add"])
        .args(missing)
        .run()
}

fn ensure_packages() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, program)| !have(program) && !have_sbin(program))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "missing host packages; install them with: sudo apt-get install {}",
            missing.join(" ")
        ));
    }
    let mut install = missing.clone();
    // A qemu-utils from bookworm-backports Breaks bookworm's qemu-system-common, and apt
    // does not remove it by itself; nothing here uses qemu-img (see .ci/run).
    if missing
        .iter()
        .any(|package| package.starts_with("qemu-system"))
    {
        install.push("qemu-utils-");
    }
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(install)
        .run()
}

fn have_sbin(program: &str) -> bool {
    ["/sbin", "/usr/sbin"]
        .iter()
        .any(|dir| std::path::Path::new(dir).join(program).is_file())
}

pub fn is_root() -> bool {
    Cmd::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|uid| uid.trim() == "0")
}
