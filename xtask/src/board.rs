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
    /// Modules loaded at every boot, as listed; their dependencies are added at build
    /// time.
    pub modules: Vec<String>,
    /// Drivers the image carries but loads only for a device that is present: init
    /// matches each device's modalias against these modules' aliases.
    pub hardware_modules: Vec<String>,
    pub cmdline: String,
    /// How the board's firmware boots the disk.
    pub firmware: Firmware,
    /// The boot partition (the EFI system partition, or the Pi's FAT partition).
    pub boot_bytes: u64,
    pub data_bytes: u64,
    pub preinstall: Vec<String>,
    pub budget: Budget,
    pub network: Option<Network>,
    pub repos: Vec<String>,
    /// How qemu boots it; `None` for a board qemu cannot emulate (checked structurally).
    pub qemu: Option<Qemu>,
}

/// What starts the board, and so how its disk is laid out (DESIGN §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// UEFI: GPT, an EFI system partition with systemd-boot as the removable-media
    /// loader and the system as a unified kernel image in `EFI/Linux/`.
    Uefi,
    /// The Raspberry Pi's boot ROM and firmware: MBR, partition 1 FAT32 (type 0x0c)
    /// holding the firmware files, config.txt, cmdline.txt, the kernel and the DTBs.
    RaspberryPi(RaspberryPi),
}

/// The Raspberry Pi specifics of a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaspberryPi {
    /// Files of Debian's raspi-firmware (`usr/lib/raspi-firmware/`) the model boots
    /// with: `bootcode.bin`, `start.elf` and `fixup.dat` on the Pi 3.
    pub files: Vec<String>,
    /// config.txt model filters and the DTB each selects (`pi3` →
    /// `bcm2837-rpi-3-b.dtb`), from the kernel's `broadcom/` directory. The first is
    /// the one qemu boots with.
    pub dtbs: Vec<(String, String)>,
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
    /// Debian's kernel source built with a configuration fragment of the board's
    /// (`kbuild.rs`), patched first with the patches named, in order; paths under
    /// `boards/`.
    Build {
        fragment: PathBuf,
        patches: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub binary_bytes: u64,
    pub base_initramfs_bytes: u64,
}

/// The network settings a device starts with (`/etc/amber/network`, in the format
/// boot/README.md gives; `/data/etc/amber/network` on the device replaces them).
#[derive(Debug, Clone)]
pub struct Network {
    pub dns: Vec<String>,
    pub ntp: Vec<String>,
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    /// `wan` or `lan`.
    pub role: String,
    /// `A.B.C.D/P`, or None for DHCP.
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub mtu: Option<u16>,
}

impl Network {
    /// The settings file the device reads.
    pub fn settings(&self) -> String {
        let mut text = String::from("# The board's network settings (boards/*.toml); /data/etc/amber/network replaces them.\n");
        for (key, list) in [("dns", &self.dns), ("ntp", &self.ntp)] {
            if !list.is_empty() {
                text += &format!("{key} {}\n", list.join(" "));
            }
        }
        for interface in &self.interfaces {
            text += &format!(
                "\ninterface {}\n  role {}\n",
                interface.name, interface.role
            );
            match &interface.address {
                Some(address) => text += &format!("  address {address}\n"),
                None => text += "  dhcp\n",
            }
            if let Some(gateway) = &interface.gateway {
                text += &format!("  gateway {gateway}\n");
            }
            if let Some(mtu) = interface.mtu {
                text += &format!("  mtu {mtu}\n");
            }
        }
        text
    }
}

#[derive(Debug, Clone)]
pub struct Qemu {
    pub machine: String,
    /// `None` for machines with a fixed CPU (raspi3b).
    pub cpu: Option<String>,
    pub memory_mib: u32,
    pub disk: QemuDisk,
    /// The network card qemu gives the guest (`virtio-net-pci`, `e1000e`, `usb-net`),
    /// with its options (`virtio-net-pci,romfile=`); every card of the board's.
    pub nic: String,
    /// Which of the machine's serial ports is the console (0 = the first); the raspi3b's
    /// mini UART, where Debian's Pi images put the console, is its second.
    pub serial: u8,
}

impl Qemu {
    /// The network card's device, without its options.
    pub fn nic_model(&self) -> &str {
        self.nic.split(',').next().unwrap_or_default()
    }
}

/// How qemu attaches the disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuDisk {
    /// A virtio-blk disk (Debian's cloud kernels have no USB).
    Virtio,
    /// A USB stick: usb-storage on a qemu-xhci controller.
    Usb,
    /// The machine's SD card slot.
    Sd,
}

// The raw file, exactly as written. Unknown keys anywhere are errors.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBoard {
    arch: String,
    rust_target: String,
    kernel: RawKernel,
    image: RawImage,
    raspberrypi: Option<RawRaspberryPi>,
    #[serde(default)]
    packages: RawPackages,
    budget: RawBudget,
    network: Option<RawNetwork>,
    #[serde(default)]
    repos: Vec<String>,
    qemu: Option<RawQemu>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKernel {
    package: Option<String>,
    path: Option<String>,
    build: Option<String>,
    #[serde(default)]
    patches: Vec<String>,
    modules: Vec<String>,
    #[serde(default)]
    hardware_modules: Vec<String>,
    cmdline: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawImage {
    firmware: String,
    boot_mib: u64,
    data_mib: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRaspberryPi {
    files: Vec<String>,
    dtbs: toml::Table,
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
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    ntp: Vec<String>,
    #[serde(default)]
    interface: Vec<RawInterface>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInterface {
    name: String,
    role: Option<String>,
    #[serde(default)]
    dhcp: bool,
    address: Option<String>,
    gateway: Option<String>,
    mtu: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawQemu {
    machine: String,
    cpu: Option<String>,
    memory_mib: u32,
    /// The guest's serial console device; checked against `console=` in the cmdline.
    console: String,
    disk: String,
    nic: Option<String>,
    #[serde(default)]
    serial: u8,
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
    let kernel = match (raw.kernel.package, raw.kernel.path, raw.kernel.build) {
        (Some(package), None, None) => {
            if !is_debian_package_name(&package) {
                return Err(format!(
                    "kernel.package `{package}` is not a Debian package name"
                ));
            }
            KernelSource::Debian(package)
        }
        (None, Some(path), None) => KernelSource::Path(PathBuf::from(path)),
        (None, None, Some(fragment)) => {
            let under_boards = |key: &str, path: &str| {
                crate::recipe::check_relative(path)
                    .map(|()| Path::new(BOARDS_DIR).join(path))
                    .map_err(|_| {
                        format!("kernel.{key} `{path}` is not a relative path under {BOARDS_DIR}/")
                    })
            };
            KernelSource::Build {
                fragment: under_boards("build", &fragment)?,
                patches: raw
                    .kernel
                    .patches
                    .iter()
                    .map(|patch| under_boards("patches", patch))
                    .collect::<Result<_, _>>()?,
            }
        }
        _ => return Err("[kernel] needs exactly one of `package`, `path` and `build`".into()),
    };
    if !raw.kernel.patches.is_empty() && !matches!(kernel, KernelSource::Build { .. }) {
        return Err("kernel.patches apply to a kernel the board builds (`build`) only".into());
    }
    let mut seen = Vec::new();
    let modules = module_names("kernel.modules", raw.kernel.modules, &mut seen)?;
    let hardware_modules = module_names(
        "kernel.hardware-modules",
        raw.kernel.hardware_modules,
        &mut seen,
    )?;
    let cmdline = raw.kernel.cmdline.trim().to_owned();
    if let Some(qemu) = &raw.qemu {
        let console_arg = format!("console={}", qemu.console);
        let named = cmdline.split_whitespace().any(|arg| {
            arg.strip_prefix(console_arg.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(','))
        });
        if !named {
            return Err(format!(
                "kernel.cmdline must contain `{console_arg}` to match qemu.console"
            ));
        }
    }
    let firmware = match (raw.image.firmware.as_str(), raw.raspberrypi) {
        ("uefi", None) => Firmware::Uefi,
        ("uefi", Some(_)) => {
            return Err("[raspberrypi] is only for image.firmware = \"raspberrypi\"".into())
        }
        ("raspberrypi", Some(pi)) => Firmware::RaspberryPi(check_raspberrypi(pi)?),
        ("raspberrypi", None) => {
            return Err("image.firmware = \"raspberrypi\" needs a [raspberrypi] table".into())
        }
        (other, _) => {
            return Err(format!(
                "image.firmware `{other}` is not one of uefi, raspberrypi"
            ))
        }
    };
    if firmware != Firmware::Uefi && arch != Arch::Aarch64 {
        return Err("a Raspberry Pi board is aarch64".into());
    }
    // FAT needs some room; the kernel and initramfs need more. The data partition
    // holds the package store.
    // FAT32 needs about 33 MiB at the least.
    if raw.image.boot_mib < 40 {
        return Err(format!("image.boot-mib {} is below 40", raw.image.boot_mib));
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
    let network = raw.network.map(check_network).transpose()?;
    for repo in &raw.repos {
        if !(repo.starts_with("http://") || repo.starts_with("https://")) || !repo.ends_with('/') {
            return Err(format!(
                "repos: `{repo}` must be an http:// or https:// URL ending in /"
            ));
        }
    }
    let qemu = match raw.qemu {
        None => None,
        Some(qemu) => Some(check_qemu(qemu, &firmware)?),
    };
    Ok(Board {
        name: name.to_owned(),
        arch,
        rust_target: raw.rust_target,
        kernel,
        modules,
        hardware_modules,
        cmdline,
        firmware,
        boot_bytes: raw.image.boot_mib << 20,
        data_bytes: raw.image.data_mib << 20,
        preinstall: raw.packages.preinstall,
        budget: Budget {
            binary_bytes: raw.budget.binary_bytes,
            base_initramfs_bytes: raw.budget.base_initramfs_bytes,
        },
        network,
        repos: raw.repos,
        qemu,
    })
}

/// Module names as the kernel spells them (`_` for `-`), each listed once across both
/// lists (`seen`).
fn module_names(
    key: &str,
    list: Vec<String>,
    seen: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for module in list {
        let normal = module.replace('-', "_");
        // Letters of either case: netfilter's targets are named so (xt_MASQUERADE).
        if normal.is_empty()
            || !normal
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("{key}: `{module}` is not a module name"));
        }
        if seen.contains(&normal) {
            return Err(format!("{key}: `{module}` is listed twice"));
        }
        seen.push(normal.clone());
        names.push(normal);
    }
    Ok(names)
}

fn check_raspberrypi(raw: RawRaspberryPi) -> Result<RaspberryPi, String> {
    if raw.files.is_empty() {
        return Err("raspberrypi.files names no firmware file".into());
    }
    for file in &raw.files {
        if !is_plain_file_name(file) {
            return Err(format!("raspberrypi.files: `{file}` is not a file name"));
        }
    }
    let mut dtbs = Vec::new();
    for (filter, dtb) in raw.dtbs {
        let dtb = dtb
            .as_str()
            .ok_or_else(|| format!("raspberrypi.dtbs.{filter} must be a file name"))?
            .to_owned();
        if !filter
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+')
            || !is_plain_file_name(&dtb)
            || !dtb.ends_with(".dtb")
        {
            return Err(format!(
                "raspberrypi.dtbs: `{filter} = {dtb}` is not a model filter and a .dtb file"
            ));
        }
        dtbs.push((filter, dtb));
    }
    if dtbs.is_empty() {
        return Err("raspberrypi.dtbs names no device tree".into());
    }
    Ok(RaspberryPi {
        files: raw.files,
        dtbs,
    })
}

fn check_qemu(raw: RawQemu, firmware: &Firmware) -> Result<Qemu, String> {
    if raw.memory_mib < 64 {
        return Err(format!("qemu.memory-mib {} is below 64", raw.memory_mib));
    }
    for (key, value) in [
        ("qemu.machine", Some(&raw.machine)),
        ("qemu.cpu", raw.cpu.as_ref()),
        ("qemu.console", Some(&raw.console)),
    ] {
        let Some(value) = value else { continue };
        if value.is_empty() || value.contains(char::is_whitespace) || value.contains(',') {
            return Err(format!("{key} `{value}` must be one word"));
        }
    }
    let disk = match raw.disk.as_str() {
        "virtio" => QemuDisk::Virtio,
        "usb" => QemuDisk::Usb,
        "sd" => QemuDisk::Sd,
        other => return Err(format!("qemu.disk `{other}` is not one of virtio, usb, sd")),
    };
    // qemu cannot run the Pi's firmware: it boots the kernel out of the boot partition
    // on the machine's SD card; UEFI boards boot from their disk through OVMF/AAVMF.
    match (firmware, disk) {
        (Firmware::RaspberryPi(_), QemuDisk::Sd)
        | (Firmware::Uefi, QemuDisk::Virtio | QemuDisk::Usb) => {}
        _ => {
            return Err(format!(
                "qemu.disk `{}` does not fit the board's firmware",
                raw.disk
            ))
        }
    }
    if raw.serial > 3 {
        return Err(format!(
            "qemu.serial {} is not a serial port of the machine",
            raw.serial
        ));
    }
    Ok(Qemu {
        machine: raw.machine,
        cpu: raw.cpu,
        memory_mib: raw.memory_mib,
        disk,
        nic: raw.nic.unwrap_or_else(|| "virtio-net-pci".to_owned()),
        serial: raw.serial,
    })
}

/// A file name without directories, as the firmware and config.txt name them.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

impl Board {
    /// The board's qemu settings, or why it has none.
    pub fn qemu(&self) -> Result<&Qemu, String> {
        self.qemu.as_ref().ok_or_else(|| {
            format!(
                "board {} has no [qemu] table: qemu cannot boot it (its image is checked structurally)",
                self.name
            )
        })
    }
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

/// The board's network settings, checked as far as the device's parser would refuse
/// them (boot/src/netconfig.rs has the whole check).
fn check_network(raw: RawNetwork) -> Result<Network, String> {
    for server in &raw.dns {
        if !is_ipv4(server.strip_prefix("tcp:").unwrap_or(server)) {
            return Err(format!("network.dns: `{server}` is not IPv4 or tcp:IPv4"));
        }
    }
    if let Some(bad) = raw
        .ntp
        .iter()
        .find(|server| server.is_empty() || server.contains(['/', ':', ' ']))
    {
        return Err(format!(
            "network.ntp: `{bad}` is not a host name or address"
        ));
    }
    let mut interfaces: Vec<Interface> = Vec::new();
    for raw in raw.interface {
        let name = raw.name;
        let bad = |what: String| format!("network.interface {name}: {what}");
        if name.is_empty()
            || name.len() > 15
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!(
                "network.interface: `{name}` is not an interface name"
            ));
        }
        if interfaces.iter().any(|i| i.name == name) {
            return Err(bad("listed twice".into()));
        }
        let role = raw.role.unwrap_or_else(|| "wan".into());
        if role != "wan" && role != "lan" {
            return Err(bad(format!("role `{role}` is not wan or lan")));
        }
        match (&raw.address, raw.dhcp) {
            (Some(_), true) | (None, false) => {
                return Err(bad("needs exactly one of dhcp = true and address".into()))
            }
            (None, true) if role == "lan" => return Err(bad("a lan needs an address".into())),
            _ => {}
        }
        if let Some(address) = &raw.address {
            let (ip, prefix) = address
                .split_once('/')
                .ok_or_else(|| bad(format!("address `{address}` needs a /prefix")))?;
            if !is_ipv4(ip) || !prefix.parse::<u8>().is_ok_and(|p| (1..=32).contains(&p)) {
                return Err(bad(format!("address `{address}` is not IPv4/prefix")));
            }
        }
        match &raw.gateway {
            Some(_) if raw.address.is_none() => {
                return Err(bad("a gateway needs an address".into()))
            }
            Some(gateway) if !is_ipv4(gateway) => {
                return Err(bad(format!("gateway `{gateway}` is not IPv4")))
            }
            _ => {}
        }
        if raw.mtu.is_some_and(|mtu| mtu < 576) {
            return Err(bad("mtu below 576".into()));
        }
        interfaces.push(Interface {
            name,
            role,
            address: raw.address,
            gateway: raw.gateway,
            mtu: raw.mtu,
        });
    }
    Ok(Network {
        dns: raw.dns,
        ntp: raw.ntp,
        interfaces,
    })
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
modules = ["fuse", "squashfs"]
hardware-modules = ["virtio_pci", "virtio-blk"]
cmdline = "console=ttyS0 panic=-1"

[image]
firmware = "uefi"
boot-mib = 64
data-mib = 256

[packages]
preinstall = []

[budget]
binary-bytes = 524288
base-initramfs-bytes = 1048576

[network]
dns = ["tcp:10.0.2.53"]

[[network.interface]]
name = "eth0"
address = "10.0.2.15/24"
gateway = "10.0.2.2"

[qemu]
machine = "q35"
cpu = "max"
memory-mib = 256
console = "ttyS0"
disk = "virtio"
"#;

    const PI: &str = r#"
arch = "aarch64"
rust-target = "aarch64-unknown-linux-musl"

[kernel]
package = "linux-image-arm64"
modules = ["fuse"]
hardware-modules = ["bcm2835"]
cmdline = "console=ttyS1,115200 panic=-1"

[image]
firmware = "raspberrypi"
boot-mib = 128
data-mib = 256

[raspberrypi]
files = ["bootcode.bin", "start.elf", "fixup.dat"]
dtbs = { pi3 = "bcm2837-rpi-3-b.dtb", "pi3+" = "bcm2837-rpi-3-b-plus.dtb" }

[budget]
binary-bytes = 524288
base-initramfs-bytes = 1048576

[qemu]
machine = "raspi3b"
memory-mib = 1024
console = "ttyS1"
disk = "sd"
serial = 1
"#;

    #[test]
    fn good_board_parses() {
        let board = parse("test", GOOD).unwrap();
        assert_eq!(
            board.network.as_ref().unwrap().settings(),
            "# The board's network settings (boards/*.toml); /data/etc/amber/network replaces them.\n\
             dns tcp:10.0.2.53\n\ninterface eth0\n  role wan\n  address 10.0.2.15/24\n  gateway 10.0.2.2\n"
        );
        assert_eq!(board.arch, Arch::X86_64);
        assert_eq!(board.modules, ["fuse", "squashfs"]);
        assert_eq!(board.hardware_modules, ["virtio_pci", "virtio_blk"]);
        assert_eq!(board.boot_bytes, 64 << 20);
        assert_eq!(board.firmware, Firmware::Uefi);
        assert_eq!(board.qemu().unwrap().disk, QemuDisk::Virtio);
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
    fn a_built_kernel_is_a_fragment_under_boards() {
        let text = GOOD.replacen(
            "package = \"linux-image-cloud-amd64\"",
            "build = \"kernels/small.config\"",
            1,
        );
        let board = parse("test", &text).unwrap();
        assert_eq!(
            board.kernel,
            KernelSource::Build {
                fragment: PathBuf::from("boards/kernels/small.config"),
                patches: Vec::new(),
            }
        );
        let patched = text.replacen(
            "build = \"kernels/small.config\"",
            "build = \"kernels/small.config\"\npatches = [\"kernels/a.patch\", \"kernels/b.patch\"]",
            1,
        );
        let KernelSource::Build { patches, .. } = parse("test", &patched).unwrap().kernel else {
            panic!("not a built kernel");
        };
        assert_eq!(
            patches,
            [
                PathBuf::from("boards/kernels/a.patch"),
                PathBuf::from("boards/kernels/b.patch")
            ]
        );
        for (patches, why) in [
            (
                "patches = [\"../a.patch\"]",
                "not a relative path under boards/",
            ),
            (
                "patches = [\"/a.patch\"]",
                "not a relative path under boards/",
            ),
        ] {
            let bad = text.replacen(
                "build = \"kernels/small.config\"",
                &format!("build = \"kernels/small.config\"\n{patches}"),
                1,
            );
            let error = parse("test", &bad).unwrap_err();
            assert!(error.contains(why), "{patches}: {error}");
        }
        // A Debian kernel is not patched.
        let error = parse(
            "test",
            &GOOD.replacen(
                "package = \"linux-image-cloud-amd64\"",
                "package = \"linux-image-cloud-amd64\"\npatches = [\"kernels/a.patch\"]",
                1,
            ),
        )
        .unwrap_err();
        assert!(
            error.contains("apply to a kernel the board builds"),
            "{error}"
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
        check_error(
            "package =",
            "build = \"k.config\"\npackage =",
            "exactly one",
        );
        check_error(
            "package = \"linux-image-cloud-amd64\"",
            "build = \"../k.config\"",
            "not a relative path under boards/",
        );
        check_error("console=ttyS0 ", "", "must contain `console=ttyS0`");
        check_error("\"virtio-blk\"", "\"virtio_pci\"", "listed twice");
        check_error("10.0.2.15/24", "10.0.2.15", "needs a /prefix");
        check_error(
            "address = \"10.0.2.15/24\"",
            "dhcp = true",
            "a gateway needs an address",
        );
        check_error(
            "gateway = \"10.0.2.2\"",
            "dhcp = true",
            "exactly one of dhcp",
        );
        check_error(
            "name = \"eth0\"",
            "name = \"eth0\"\nrole = \"dmz\"",
            "not wan or lan",
        );
        check_error("tcp:10.0.2.53", "udp:10.0.2.53", "not IPv4 or tcp:IPv4");
        check_error("10.0.2.100:8080/", "10.0.2.100:8080", "ending in /");
        check_error(
            "preinstall = []",
            "preinstall = [\"a-1\"]",
            "not a package name",
        );
        check_error("boot-mib = 64", "boot-mib = 1", "below 40");
        check_error(
            "\"squashfs\"]",
            "\"squashfs\", \"virtio_pci\"]",
            "listed twice",
        );
        check_error("\"uefi\"", "\"bios\"", "not one of uefi, raspberrypi");
        check_error("disk = \"virtio\"", "disk = \"sd\"", "does not fit");
        check_error("disk = \"virtio\"", "disk = \"floppy\"", "not one of");
    }

    /// Every board file of the tree parses and checks.
    #[test]
    fn every_board_file_parses() {
        let dir = crate::cmd::workspace_root().join(BOARDS_DIR);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let board = parse(name, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let KernelSource::Build { fragment, patches } = &board.kernel {
                // The kernel configuration it builds is there and well formed, and so
                // are its patches.
                let fragment = crate::cmd::workspace_root().join(fragment);
                let text = std::fs::read_to_string(&fragment)
                    .unwrap_or_else(|e| panic!("{}: {e}", fragment.display()));
                crate::kbuild::parse_fragment(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", fragment.display()));
                for patch in patches {
                    let patch = crate::cmd::workspace_root().join(patch);
                    let text = std::fs::read_to_string(&patch)
                        .unwrap_or_else(|e| panic!("{}: {e}", patch.display()));
                    assert!(
                        text.contains("\n+++ b/"),
                        "{}: not a -p1 patch",
                        patch.display()
                    );
                }
            }
            count += 1;
        }
        assert!(count >= 5, "{count} boards");
    }

    #[test]
    fn raspberry_pi_boards_parse_and_are_checked() {
        let board = parse("pi", PI).unwrap();
        let Firmware::RaspberryPi(pi) = &board.firmware else {
            panic!("not a Pi board")
        };
        assert_eq!(pi.files[0], "bootcode.bin");
        assert_eq!(
            pi.dtbs,
            [
                ("pi3".to_owned(), "bcm2837-rpi-3-b.dtb".to_owned()),
                ("pi3+".to_owned(), "bcm2837-rpi-3-b-plus.dtb".to_owned())
            ]
        );
        let qemu = board.qemu().unwrap();
        assert_eq!((qemu.cpu.as_deref(), qemu.serial), (None, 1));
        let without_qemu = PI[..PI.find("[qemu]").unwrap()].to_owned();
        assert!(parse("pi", &without_qemu).unwrap().qemu().is_err());
        let broken = PI.replace("\"start.elf\"", "\"../start.elf\"");
        assert!(parse("pi", &broken)
            .unwrap_err()
            .contains("not a file name"));
        let no_table = PI.replace("[raspberrypi]", "[raspberrypi-x]");
        assert!(parse("pi", &no_table).is_err());
    }
}
