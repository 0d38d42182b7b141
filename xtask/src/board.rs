//! Boards are data: `boards/<name>.toml` parsed strictly, then checked into [`Board`].
//!
//! The existence of a board file creates the board. The raw structs mirror the file
//! and reject unknown keys; [`check`] turns them into the type the rest of xtask uses,
//! so every consumer can rely on the values being consistent.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The directory holding the board files, relative to the workspace root.
pub const BOARDS_DIR: &str = "boards";

/// A checked board: everything xtask needs to build, size and boot an image.
#[derive(Debug, Clone)]
pub struct Board {
    pub name: String,
    pub arch: Arch,
    pub rust_target: String,
    pub kernel: KernelSource,
    /// Modules the board needs, as listed; their dependencies are added at build time.
    pub modules: Vec<String>,
    pub cmdline: String,
    pub esp_bytes: u64,
    pub data_bytes: u64,
    pub preinstall: Vec<String>,
    pub budget: Budget,
    pub network: Option<Network>,
    pub repos: Vec<String>,
    pub qemu: Qemu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    fn parse(text: &str) -> Option<Arch> {
        match text {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// The name amber uses (package indexes, repository directories).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Debian's name for the architecture, for apt.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    pub fn qemu_system(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The ELF machine number the kernel's modules must carry.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
        }
    }
}

/// Where the kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// A Debian package name; a metapackage is followed to the versioned image package.
    Debian(String),
    /// A `.deb` file, or a directory laid out like one extracted (`boot/vmlinuz-*`,
    /// `lib/modules/<version>/`), relative to the workspace root unless absolute.
    Path(PathBuf),
}

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub binary_bytes: u64,
    pub base_initramfs_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub interface: String,
    pub address: String,
    pub gateway: String,
}

#[derive(Debug, Clone)]
pub struct Qemu {
    pub machine: String,
    pub cpu: String,
    pub memory_mib: u32,
}

// The raw file, exactly as written. Unknown keys anywhere are errors.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBoard {
    arch: String,
    rust_target: String,
    kernel: RawKernel,
    image: RawImage,
    #[serde(default)]
    packages: RawPackages,
    budget: RawBudget,
    network: Option<RawNetwork>,
    #[serde(default)]
    repos: Vec<String>,
    qemu: RawQemu,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKernel {
    package: Option<String>,
    path: Option<String>,
    modules: Vec<String>,
    cmdline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawImage {
    esp_mib: u64,
    data_mib: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPackages {
    preinstall: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBudget {
    binary_bytes: u64,
    base_initramfs_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNetwork {
    interface: String,
    address: String,
    gateway: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawQemu {
    /// The guest's serial console device; checked against `console=` in the cmdline.
    machine: String,
    cpu: String,
    memory_mib: u32,
    console: String,
}

/// The names of all boards: one per `boards/*.toml`, sorted.
pub fn names() -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(BOARDS_DIR).map_err(|e| format!("cannot list {BOARDS_DIR}/: {e}"))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {BOARDS_DIR}/: {e}"))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if let Some(name) = file_name.strip_suffix(".toml") {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Load and check `boards/<name>.toml`; an unknown name lists the boards there are.
pub fn load(name: &str) -> Result<Board, String> {
    let known = names()?;
    if !known.iter().any(|known| known == name) {
        return Err(format!(
            "unknown board `{name}`; boards: {}",
            if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.join(", ")
            }
        ));
    }
    let path = Path::new(BOARDS_DIR).join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(name, &text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parse and check a board file's text.
pub fn parse(name: &str, text: &str) -> Result<Board, String> {
    let raw: RawBoard = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    check(name, raw)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check(name: &str, raw: RawBoard) -> Result<Board, String> {
    let arch = Arch::parse(&raw.arch)
        .ok_or_else(|| format!("arch `{}` is not one of x86_64, aarch64", raw.arch))?;
    // The device binary is static musl, linked with rust-lld (DESIGN §2).
    let expected_target = format!("{}-unknown-linux-musl", arch.name());
    if raw.rust_target != expected_target {
        return Err(format!(
            "rust-target `{}` does not fit arch {}: expected {expected_target}",
            raw.rust_target,
            arch.name()
        ));
    }
    let kernel = match (raw.kernel.package, raw.kernel.path) {
        (Some(package), None) => {
            if !is_debian_package_name(&package) {
                return Err(format!(
                    "kernel.package `{package}` is not a Debian package name"
                ));
            }
            KernelSource::Debian(package)
        }
        (None, Some(path)) => KernelSource::Path(PathBuf::from(path)),
        _ => return Err("[kernel] needs exactly one of `package` and `path`".into()),
    };
    let mut modules: Vec<String> = Vec::new();
    for module in raw.kernel.modules {
        let normal = module.replace('-', "_");
        if normal.is_empty()
            || !normal
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("kernel.modules: `{module}` is not a module name"));
        }
        if modules.contains(&normal) {
            return Err(format!("kernel.modules: `{module}` is listed twice"));
        }
        modules.push(normal);
    }
    let cmdline = raw.kernel.cmdline.trim().to_owned();
    let console_arg = format!("console={}", raw.qemu.console);
    if !cmdline.split_whitespace().any(|arg| arg == console_arg) {
        return Err(format!(
            "kernel.cmdline must contain `{console_arg}` to match qemu.console"
        ));
    }
    // FAT needs some room; the kernel and initramfs need more. The data partition
    // holds the package store.
    if raw.image.esp_mib < 16 {
        return Err(format!("image.esp-mib {} is below 16", raw.image.esp_mib));
    }
    if raw.image.data_mib < 16 {
        return Err(format!("image.data-mib {} is below 16", raw.image.data_mib));
    }
    for package in &raw.packages.preinstall {
        if !is_amber_package_name(package) {
            return Err(format!(
                "packages.preinstall: `{package}` is not a package name"
            ));
        }
    }
    if raw.budget.binary_bytes == 0 || raw.budget.base_initramfs_bytes == 0 {
        return Err("budget values must be above 0".into());
    }
    let network = match raw.network {
        None => None,
        Some(network) => {
            let (ip, prefix) = network
                .address
                .split_once('/')
                .ok_or_else(|| format!("network.address `{}` needs a /prefix", network.address))?;
            if !is_ipv4(ip) || !prefix.parse::<u8>().is_ok_and(|p| p <= 32) {
                return Err(format!(
                    "network.address `{}` is not IPv4/prefix",
                    network.address
                ));
            }
            if !is_ipv4(&network.gateway) {
                return Err(format!("network.gateway `{}` is not IPv4", network.gateway));
            }
            if network.interface.is_empty()
                || !network.interface.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "network.interface `{}` is not an interface name",
                    network.interface
                ));
            }
            Some(Network {
                interface: network.interface,
                address: network.address,
                gateway: network.gateway,
            })
        }
    };
    for repo in &raw.repos {
        if !(repo.starts_with("http://") || repo.starts_with("https://")) || !repo.ends_with('/') {
            return Err(format!(
                "repos: `{repo}` must be an http:// or https:// URL ending in /"
            ));
        }
    }
    if raw.qemu.memory_mib < 64 {
        return Err(format!(
            "qemu.memory-mib {} is below 64",
            raw.qemu.memory_mib
        ));
    }
    for (key, value) in [
        ("qemu.machine", &raw.qemu.machine),
        ("qemu.cpu", &raw.qemu.cpu),
        ("qemu.console", &raw.qemu.console),
    ] {
        if value.is_empty() || value.contains(char::is_whitespace) || value.contains(',') {
            return Err(format!("{key} `{value}` must be one word"));
        }
    }
    Ok(Board {
        name: name.to_owned(),
        arch,
        rust_target: raw.rust_target,
        kernel,
        modules,
        cmdline,
        esp_bytes: raw.image.esp_mib << 20,
        data_bytes: raw.image.data_mib << 20,
        preinstall: raw.packages.preinstall,
        budget: Budget {
            binary_bytes: raw.budget.binary_bytes,
            base_initramfs_bytes: raw.budget.base_initramfs_bytes,
        },
        network,
        repos: raw.repos,
        qemu: Qemu {
            machine: raw.qemu.machine,
            cpu: raw.qemu.cpu,
            memory_mib: raw.qemu.memory_mib,
        },
    })
}

fn is_debian_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// DESIGN §3: `[a-z0-9][a-z0-9+._-]*`, never containing `-<digit>`.
fn is_amber_package_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(b))
        && !bytes
            .windows(2)
            .any(|pair| pair[0] == b'-' && pair[1].is_ascii_digit())
}

fn is_ipv4(text: &str) -> bool {
    text.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
arch = "x86_64"
rust-target = "x86_64-unknown-linux-musl"
repos = ["http://10.0.2.100:8080/"]

[kernel]
package = "linux-image-cloud-amd64"
modules = ["virtio_pci", "virtio-blk"]
cmdline = "console=ttyS0 panic=-1"

[image]
esp-mib = 64
data-mib = 256

[packages]
preinstall = []

[budget]
binary-bytes = 524288
base-initramfs-bytes = 1048576

[network]
interface = "eth0"
address = "10.0.2.15/24"
gateway = "10.0.2.2"

[qemu]
machine = "q35"
cpu = "max"
memory-mib = 256
console = "ttyS0"
"#;

    #[test]
    fn good_board_parses() {
        let board = parse("test", GOOD).unwrap();
        assert_eq!(board.arch, Arch::X86_64);
        assert_eq!(board.modules, ["virtio_pci", "virtio_blk"]);
        assert_eq!(board.esp_bytes, 64 << 20);
        assert_eq!(
            board.kernel,
            KernelSource::Debian("linux-image-cloud-amd64".into())
        );
    }

    fn check_error(from: &str, to: &str, expect: &str) {
        let text = GOOD.replacen(from, to, 1);
        assert_ne!(text, GOOD, "the test must change the board: {from}");
        let error = parse("test", &text).unwrap_err();
        assert!(
            error.contains(expect),
            "{error:?} does not contain {expect:?}"
        );
    }

    #[test]
    fn bad_boards_are_refused() {
        check_error("arch = ", "flavour = 1\narch = ", "unknown field `flavour`");
        check_error(
            "cpu = \"max\"",
            "cpu = \"max\"\nsmp = 2",
            "unknown field `smp`",
        );
        check_error("\"x86_64\"", "\"mips\"", "not one of");
        check_error(
            "x86_64-unknown-linux-musl",
            "aarch64-unknown-linux-musl",
            "does not fit",
        );
        check_error("package =", "path = \"k\"\npackage =", "exactly one");
        check_error("console=ttyS0 ", "", "must contain `console=ttyS0`");
        check_error("\"virtio-blk\"", "\"virtio_pci\"", "listed twice");
        check_error("10.0.2.15/24", "10.0.2.15", "needs a /prefix");
        check_error("10.0.2.100:8080/", "10.0.2.100:8080", "ending in /");
        check_error(
            "preinstall = []",
            "preinstall = [\"a-1\"]",
            "not a package name",
        );
        check_error("esp-mib = 64", "esp-mib = 1", "below 16");
    }
}
