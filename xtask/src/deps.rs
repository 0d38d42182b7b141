//! Making sure the host has what the project needs, whatever the machine's history:
//! the Rust toolchain's components and targets, cargo tools from crates.io, and Debian
//! packages. `cargo xtask test`, `build`, `size`, `run`, `image` and `deps` call
//! [`ensure`] before any work starts.
//!
//! Nothing here trusts a toolchain file to have done its part: rustup installs a
//! `rust-toolchain.toml`'s components only when it installs the toolchain itself, not
//! when the pinned toolchain already exists (on these machines it can even be a link to
//! another toolchain). So every component and target is asked for by name and added
//! when missing. As root, missing Debian packages are installed with apt-get; otherwise
//! one line lists what to install.

use crate::cmd::{have, Cmd};

/// The rustup components the project uses: rust-src for the device build's
/// `-Z build-std`, clippy and rustfmt for `cargo xtask test`. rust-toolchain.toml lists
/// the same (a unit test keeps the two equal).
pub const COMPONENTS: &[&str] = &["rust-src", "clippy", "rustfmt"];

/// Rust targets the device and no_std checks build for (also in rust-toolchain.toml).
pub const TARGETS: &[&str] = &[
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "aarch64-unknown-none",
];

/// cargo subcommands from crates.io, pinned: (crate, version, the program it installs).
/// Fuzzing (SECURITY-TESTS 21) runs cargo-fuzz on the pinned toolchain with
/// `RUSTC_BOOTSTRAP=1` (see `bench.rs`), so no nightly toolchain is needed.
const CARGO_TOOLS: &[(&str, &str, &str)] = &[("cargo-fuzz", "0.13.2", "cargo-fuzz")];

/// Debian packages and what shows each is there: a program looked up on PATH (and in
/// /sbin, /usr/sbin), or, starting with `/`, a file.
const PACKAGES: &[(&str, &str)] = &[
    // Interop peers of the tests and benchmarks.
    ("minisign", "minisign"),
    ("squashfs-tools", "unsquashfs"),
    ("squashfs-tools-ng", "rdsquashfs"),
    ("squashfuse", "squashfuse_ll"),
    ("fuse3", "fusermount3"),
    ("dpkg", "dpkg-deb"),
    ("mount", "mount"),
    ("e2fsprogs", "mke2fs"),
    ("cpio", "cpio"),
    // Disk images (cargo xtask image) and booting them (run, the end-to-end test).
    ("dosfstools", "mkfs.vfat"),
    ("mtools", "mcopy"),
    ("gdisk", "sgdisk"),
    ("xz-utils", "xz"),
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("qemu-system-arm", "qemu-system-aarch64"),
    // The UEFI firmware qemu boots the UEFI boards with (qemu.rs).
    ("ovmf", "/usr/share/OVMF/OVMF_CODE_4M.fd"),
    ("qemu-efi-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd"),
    // sfdisk reads back the Pi boards' MBR in a test; flash-test uses loop devices.
    ("fdisk", "sfdisk"),
    ("mount", "losetup"),
    ("util-linux", "partx"),
    // The size report's per-crate breakdown reads symbols with nm.
    ("binutils", "nm"),
    // Recipes (cargo xtask recipes): the sandbox, fetching, unpacking, patching, host
    // tools for builds, and Python for the ziglang wheel.
    ("util-linux", "unshare"),
    ("curl", "curl"),
    ("bzip2", "bzip2"),
    ("patch", "patch"),
    ("make", "make"),
    ("gcc", "gcc"),
    ("python3", "python3"),
    // A board's own kernel (kbuild.rs): Kconfig's parsers, the build's calculator and
    // objtool's ELF library.
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("libelf-dev", "/usr/include/libelf.h"),
    // libFuzzer, which cargo-fuzz builds from C++ sources.
    ("g++", "g++"),
];

/// Check everything and add what is missing; prints one line when all was there.
pub fn ensure() -> Result<(), String> {
    ensure_toolchain()?;
    ensure_cargo_tools()?;
    ensure_packages()?;
    eprintln!(
        "deps: toolchain {} has {} and {} targets; {} cargo tools and {} host packages present",
        active_toolchain()?,
        COMPONENTS.join(", "),
        TARGETS.len(),
        CARGO_TOOLS.len(),
        PACKAGES.len()
    );
    Ok(())
}

/// The toolchain rustup runs here (the pinned one, from rust-toolchain.toml).
fn active_toolchain() -> Result<String, String> {
    let shown = Cmd::new("rustup")
        .args(["show", "active-toolchain"])
        .output()?;
    shown
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| "rustup names no active toolchain".to_owned())
}

fn ensure_toolchain() -> Result<(), String> {
    let toolchain = active_toolchain()?;
    // `component list --installed` names components with the host triple appended
    // (`rust-src`, `clippy-x86_64-unknown-linux-gnu`).
    let components = Cmd::new("rustup")
        .args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            &toolchain,
        ])
        .output()?;
    let missing: Vec<&str> = COMPONENTS
        .iter()
        .copied()
        .filter(|wanted| !components.lines().any(|line| names_component(line, wanted)))
        .collect();
    if !missing.is_empty() {
        Cmd::new("rustup")
            .args(["component", "add", "--toolchain", &toolchain])
            .args(&missing)
            .run()?;
    }
    let targets = Cmd::new("rustup")
        .args(["target", "list", "--installed", "--toolchain", &toolchain])
        .output()?;
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|target| !targets.lines().any(|line| line.trim() == *target))
        .collect();
    if !missing.is_empty() {
        Cmd::new("rustup")
            .args(["target", "add", "--toolchain", &toolchain])
            .args(&missing)
            .run()?;
    }
    Ok(())
}

/// Whether a line of `rustup component list --installed` is the component `wanted`:
/// its name, or its name and a target triple.
fn names_component(line: &str, wanted: &str) -> bool {
    let line = line.trim();
    line == wanted
        || line
            .strip_prefix(wanted)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|triple| triple.matches('-').count() >= 2)
}

fn ensure_cargo_tools() -> Result<(), String> {
    for (name, version, program) in CARGO_TOOLS {
        let installed = Cmd::new(program)
            .args(["--version"])
            .output()
            .unwrap_or_default();
        // `cargo-fuzz 0.13.2`
        if installed.split_whitespace().nth(1) == Some(*version) {
            continue;
        }
        eprintln!("deps: installing {name} {version} from crates.io (a few minutes, once)");
        Cmd::new("cargo")
            .args(["install", "--locked", name, "--version", version])
            .run()?;
    }
    Ok(())
}

fn ensure_packages() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, need)| !present(need))
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
        .run()?;
    let still: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, need)| !present(need))
        .map(|(_, need)| *need)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing after apt-get install: {}",
            still.join(", ")
        ))
    }
}

/// Whether a need of [`PACKAGES`] is met: a file that exists, or a program found.
fn present(need: &str) -> bool {
    if need.starts_with('/') {
        std::path::Path::new(need).is_file()
    } else {
        have(need) || have_sbin(need)
    }
}

fn have_sbin(program: &str) -> bool {
    ["/sbin", "/usr/sbin"]
        .iter()
        .any(|dir| std::path::Path::new(dir).join(program).is_file())
}

pub fn is_root() -> bool {
    amber_testkit::is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rust-toolchain.toml and this module name the same components and targets, so a
    /// new one cannot be added to one and forgotten in the other.
    #[test]
    fn the_toolchain_file_lists_the_same_components_and_targets() {
        let file =
            std::fs::read_to_string(crate::cmd::workspace_root().join("rust-toolchain.toml"))
                .unwrap();
        let table: toml::Table = toml::from_str(&file).unwrap();
        let list = |key: &str| -> Vec<String> {
            let mut names: Vec<String> = table["toolchain"][key]
                .as_array()
                .unwrap()
                .iter()
                .map(|value| value.as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        let sorted = |names: &[&str]| -> Vec<String> {
            let mut names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
            names.sort();
            names
        };
        assert_eq!(list("components"), sorted(COMPONENTS));
        assert_eq!(list("targets"), sorted(TARGETS));
    }

    #[test]
    fn component_lines_are_matched_by_name() {
        assert!(names_component("rust-src", "rust-src"));
        assert!(names_component("clippy-x86_64-unknown-linux-gnu", "clippy"));
        assert!(!names_component("rust-src-extra", "rust-src"));
        assert!(!names_component("rustfmt-preview", "rustfmt"));
    }
}
