//! Kernel modules: the list in /etc/amber/modules, loaded in order with finit_module(2),
//! then the drivers the devices present ask for (their modalias), and `modprobe`.
//!
//! `/etc/amber/modules` has one module per line: the file name in /amber/modules
//! (`virtio_net.ko`), optionally followed by its parameters (`virtio_net.ko napi_tx=0`).
//! `#` starts a comment. The order is the load order; the image builder works it out
//! from each module's `depends=`.
//!
//! The initramfs carries more drivers than it loads (a PC board's USB, SATA, NVMe and
//! NIC drivers). `/etc/amber/modules.alias` (`alias PATTERN NAME`, the kernel's own
//! aliases of each module) and `/etc/amber/modules.dep` (`NAME: DEPENDENCY...`, in load
//! order) describe them. At boot, [`Loader::coldplug`] reads the `modalias` of every
//! device in /sys/bus/*/devices/, loads the modules whose patterns match (dependencies
//! first), and is called again while init waits for the data partition, since a loaded
//! driver brings new devices (a USB host controller, then the stick on it, then its
//! disk). The kernel's own requests (`fs-vfat`, `crypto-crc32c`) reach the same table
//! through the `modprobe` applet, which /proc/sys/kernel/modprobe names. Devices that
//! come later (a USB adapter plugged in, a bus that enumerates slowly) are handled by
//! `modprobe --hotplug`, the `hotplug` service, which listens to the kernel's uevents.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sys;

/// One line of the module list.
#[derive(Debug, PartialEq, Eq)]
pub struct Module {
    pub file: String,
    pub parameters: String,
}

/// Parse the module list; bad lines are returned as messages and left out.
pub fn parse_list(text: &str) -> (Vec<Module>, Vec<String>) {
    let mut modules = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_ascii_whitespace();
        let Some(file) = words.next() else {
            continue;
        };
        if file.contains('/') || file.starts_with('.') {
            errors.push(format!(
                "line {}: {file:?} is not a file name in the module directory",
                index + 1
            ));
            continue;
        }
        modules.push(Module {
            file: file.to_owned(),
            parameters: words.collect::<Vec<_>>().join(" "),
        });
    }
    (modules, errors)
}

/// Load every module of `list` (a file in `dir`); report each failure and the total.
/// A module that is already loaded or built in (EEXIST) counts as present, not as failed.
pub fn load_all(list_file: &Path, dir: &Path) {
    let Ok(text) = std::fs::read_to_string(list_file) else {
        say!("modules: no {} (none loaded)", list_file.display());
        return;
    };
    let started = Instant::now();
    let (modules, errors) = parse_list(&text);
    for error in errors {
        say!("modules: {}: {error}", list_file.display());
    }
    let (mut loaded, mut present, mut failed) = (0, 0, 0);
    for module in &modules {
        let path = dir.join(&module.file);
        let result =
            File::open(&path).and_then(|file| sys::finit_module(&file, &module.parameters));
        match result {
            Ok(()) => loaded += 1,
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => present += 1,
            Err(error) => {
                failed += 1;
                say!("module {}: {error}", path.display());
            }
        }
    }
    say!(
        "modules: {loaded} loaded, {present} already present, {failed} failed ({} ms)",
        crate::millis(started.elapsed())
    );
}

/// Where the module database and files are in the initramfs.
pub const ALIAS_FILE: &str = "/etc/amber/modules.alias";
pub const DEPENDENCY_FILE: &str = "/etc/amber/modules.dep";
pub const MODULE_DIR: &str = "/amber/modules";

/// The modules the initramfs carries: their aliases and dependencies.
#[derive(Debug, Default)]
pub struct Database {
    /// (pattern, module name), in file order.
    aliases: Vec<(String, String)>,
    /// (module name, its dependencies in load order).
    dependencies: Vec<(String, Vec<String>)>,
}

impl Database {
    /// Read both files; a missing file is an empty table (a board without hardware
    /// modules).
    pub fn read(alias_file: &Path, dependency_file: &Path) -> Database {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        Database::parse(&read(alias_file), &read(dependency_file))
    }

    pub fn parse(aliases: &str, dependencies: &str) -> Database {
        let aliases = aliases
            .lines()
            .filter_map(|line| {
                let mut words = line.split_ascii_whitespace();
                match (words.next(), words.next(), words.next(), words.next()) {
                    (Some("alias"), Some(pattern), Some(name), None) => {
                        Some((pattern.to_owned(), normalize(name)))
                    }
                    _ => None,
                }
            })
            .collect();
        let dependencies = dependencies
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.split_once(':')?;
                Some((
                    normalize(name.trim()),
                    rest.split_ascii_whitespace().map(normalize).collect(),
                ))
            })
            .collect();
        Database {
            aliases,
            dependencies,
        }
    }

    /// Whether `name` is a module the initramfs carries.
    pub fn has(&self, name: &str) -> bool {
        self.dependencies.iter().any(|(known, _)| known == name)
    }

    /// The modules an alias (a device's modalias, or a name the kernel asks for)
    /// matches, each once, in file order.
    pub fn matching(&self, alias: &str) -> Vec<&str> {
        let mut found: Vec<&str> = Vec::new();
        for (pattern, name) in &self.aliases {
            if !found.contains(&name.as_str()) && glob_match(pattern.as_bytes(), alias.as_bytes()) {
                found.push(name);
            }
        }
        found
    }

    /// `name`'s dependencies in load order, then `name`.
    pub fn closure<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        let mut order: Vec<&str> = self
            .dependencies
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, dependencies)| dependencies.iter().map(String::as_str).collect())
            .unwrap_or_default();
        order.push(name);
        order
    }
}

/// The kernel spells module names with `_`; files and aliases may use `-`.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Shell-style matching as modprobe does it: `*` any run, `?` one byte, `[...]` a set
/// (with ranges and a leading `!` or `^`). Iterative, with one backtrack point for the
/// last `*`, so no pattern costs more than length × length.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, end)) = class_match(&pattern[p..], text[t]) {
                        if matched {
                            p += end;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // An unclosed `[` is a plain character.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                byte if byte == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((star_p, star_t)) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

/// Whether `byte` is in the set at the start of `pattern` (`[...]`), and the set's
/// length; `None` when the set is not closed.
fn class_match(pattern: &[u8], byte: u8) -> Option<(bool, usize)> {
    let mut index = 1;
    let negated = matches!(pattern.get(index), Some(b'!' | b'^'));
    if negated {
        index += 1;
    }
    let mut matched = false;
    let mut first = true;
    while index < pattern.len() {
        let current = pattern[index];
        if current == b']' && !first {
            return Some((matched != negated, index + 1));
        }
        first = false;
        if pattern.get(index + 1) == Some(&b'-')
            && pattern.get(index + 2).is_some_and(|&end| end != b']')
        {
            let end = pattern[index + 2];
            matched |= (current..=end).contains(&byte);
            index += 3;
        } else {
            matched |= current == byte;
            index += 1;
        }
    }
    None
}

/// Loads modules from the initramfs by name, alias or device, each at most once.
pub struct Loader {
    database: Database,
    dir: PathBuf,
    /// Modules this loader has tried, whatever came of it.
    tried: Vec<String>,
    /// Device aliases already looked up.
    seen: Vec<String>,
}

impl Loader {
    pub fn new(database: Database, dir: &Path) -> Loader {
        Loader {
            database,
            dir: dir.to_path_buf(),
            tried: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// The loader of the running system's initramfs.
    pub fn system() -> Loader {
        Loader::new(
            Database::read(Path::new(ALIAS_FILE), Path::new(DEPENDENCY_FILE)),
            Path::new(MODULE_DIR),
        )
    }

    /// Load `name` and what it depends on; returns how many modules were loaded now.
    /// Failures are reported, once per module.
    pub fn load(&mut self, name: &str) -> usize {
        self.load_with(name, "")
    }

    /// [`Loader::load`], with parameters for `name` itself (not its dependencies).
    pub fn load_with(&mut self, name: &str, params: &str) -> usize {
        let order: Vec<String> = self
            .database
            .closure(name)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut loaded = 0;
        for module in order {
            if self.tried.contains(&module) {
                continue;
            }
            self.tried.push(module.clone());
            let path = self.dir.join(format!("{module}.ko"));
            let params = if module == name { params } else { "" };
            match File::open(&path).and_then(|file| sys::finit_module(&file, params)) {
                Ok(()) => loaded += 1,
                Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(error) => say!("module {module}: {error}"),
            }
        }
        loaded
    }

    /// Load what an alias names (`fs-vfat`, or a module's own name); returns whether
    /// anything matched.
    pub fn probe(&mut self, alias: &str) -> bool {
        let name = normalize(alias);
        if self.database.has(&name) {
            self.load(&name);
            return true;
        }
        let names: Vec<String> = self
            .database
            .matching(alias)
            .into_iter()
            .map(str::to_owned)
            .collect();
        for name in &names {
            self.load(name);
        }
        !names.is_empty()
    }

    /// One pass over the devices present: load the drivers their modaliases ask for.
    /// Returns how many modules were loaded.
    pub fn coldplug(&mut self, sys_bus: &Path) -> usize {
        if self.database.aliases.is_empty() {
            return 0;
        }
        let mut loaded = 0;
        for alias in device_aliases(sys_bus) {
            if self.seen.contains(&alias) {
                continue;
            }
            let names: Vec<String> = self
                .database
                .matching(&alias)
                .into_iter()
                .map(str::to_owned)
                .collect();
            self.seen.push(alias);
            for name in names {
                loaded += self.load(&name);
            }
        }
        loaded
    }
}

/// The `modalias` of every device under `sys_bus` (/sys/bus): `<bus>/devices/<dev>/modalias`.
fn device_aliases(sys_bus: &Path) -> Vec<String> {
    let mut aliases = Vec::new();
    let Ok(buses) = std::fs::read_dir(sys_bus) else {
        return aliases;
    };
    for bus in buses.flatten() {
        let Ok(devices) = std::fs::read_dir(bus.path().join("devices")) else {
            continue;
        };
        for device in devices.flatten() {
            if let Ok(text) = std::fs::read_to_string(device.path().join("modalias")) {
                let alias = text.trim();
                if !alias.is_empty() && !aliases.iter().any(|known: &String| known == alias) {
                    aliases.push(alias.to_owned());
                }
            }
        }
    }
    aliases
}

/// The fields of one uevent message (`add@/devices/...\0ACTION=add\0MODALIAS=...\0`)
/// that hotplug needs: its action and the device's modalias.
pub fn uevent_modalias(message: &[u8]) -> Option<(&str, &str)> {
    let mut action = None;
    let mut modalias = None;
    for field in message.split(|&byte| byte == 0) {
        let Ok(field) = std::str::from_utf8(field) else {
            continue;
        };
        if let Some(value) = field.strip_prefix("ACTION=") {
            action = Some(value);
        } else if let Some(value) = field.strip_prefix("MODALIAS=") {
            modalias = Some(value);
        }
    }
    Some((action?, modalias?))
}

/// `modprobe --hotplug`: load the driver of every device that appears, for as long as
/// the system runs (init supervises it as the `hotplug` service). It listens to the
/// kernel's uevents first, then looks at the devices already there, so none is missed;
/// when the kernel drops events (ENOBUFS), it looks at every device again.
fn hotplug() -> std::process::ExitCode {
    use std::io::Read;
    let mut socket = match sys::uevent_socket() {
        Ok(socket) => socket,
        Err(error) => {
            eprintln!("hotplug: uevent socket: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let sys_bus = Path::new("/sys/bus");
    let mut loader = Loader::system();
    let loaded = loader.coldplug(sys_bus);
    // Lines go to the service's output, which the supervisor prefixes with `hotplug: `.
    let report = |line: std::fmt::Arguments| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    if loaded > 0 {
        report(format_args!("{loaded} modules loaded for devices present"));
    }
    let mut buffer = vec![0u8; 8192];
    loop {
        match socket.read(&mut buffer) {
            Ok(length) => {
                if let Some(("add", modalias)) = uevent_modalias(&buffer[..length]) {
                    let before = loader.tried.len();
                    if loader.probe(modalias) && loader.tried.len() > before {
                        report(format_args!(
                            "{modalias}: {}",
                            loader.tried[before..].join(" ")
                        ));
                    }
                }
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                loader.coldplug(sys_bus);
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                eprintln!("hotplug: uevent socket: {error}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
}

/// `modprobe [-q] [--] NAME`: what the kernel runs (/proc/sys/kernel/modprobe) when it
/// needs a module it has not got: a file system, a crypto algorithm, a protocol.
/// Exit 0 when NAME names something the initramfs carries, else 1.
pub fn modprobe_main(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    let mut quiet = false;
    let mut names = Vec::new();
    let mut options = true;
    if args.get(1).is_some_and(|arg| arg == "--hotplug") {
        return hotplug();
    }
    for arg in args.iter().skip(1) {
        let arg = arg.to_string_lossy();
        match arg.as_ref() {
            "--" if options => options = false,
            "-q" | "--quiet" if options => quiet = true,
            option if options && option.starts_with('-') => {}
            name => names.push(name.to_owned()),
        }
    }
    if names.is_empty() {
        eprintln!("modprobe: usage: modprobe [-q] [--] NAME");
        return std::process::ExitCode::from(2);
    }
    let mut loader = Loader::system();
    let mut found = true;
    for name in &names {
        if !loader.probe(name) {
            found = false;
            if !quiet {
                eprintln!("modprobe: {name}: not in the initramfs");
            }
        }
    }
    if found {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_modprobe_does() {
        for (pattern, text, expect) in [
            (
                "pci:v00008086d000010D3sv*sd*bc*sc*i*",
                "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
                true,
            ),
            (
                "pci:v00008086d000010D3sv*sd*bc*sc*i*",
                "pci:v00008086d000010D4sv00008086sd0000A01Fbc02sc00i00",
                false,
            ),
            ("virtio:d00000001v*", "virtio:d00000001v00001AF4", true),
            ("virtio:d00000001v*", "virtio:d00000002v00001AF4", false),
            (
                "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
                "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
                true,
            ),
            (
                "of:N*T*Cbrcm,bcm2835-sdhostC*",
                "of:NmmcT(null)Cbrcm,bcm2835-sdhost",
                false,
            ),
            (
                "of:N*T*Cbrcm,bcm2835-sdhost",
                "of:NmmcT(null)Cbrcm,bcm2835-sdhost",
                true,
            ),
            ("scsi:t-0x0[07]*", "scsi:t-0x00", true),
            ("scsi:t-0x0[07]*", "scsi:t-0x05", false),
            ("a[!b]c", "axc", true),
            ("a[!b]c", "abc", false),
            ("a[a-c]?", "ab9", true),
            ("fs-vfat", "fs-vfat", true),
            ("fs-vfat", "fs-vfa", false),
            ("*", "", true),
            ("a*", "", false),
            ("[", "[", true),
        ] {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                expect,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn the_database_finds_modules_and_their_dependencies() {
        let database = Database::parse(
            "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n\
             alias virtio:d00000001v* virtio_net\n\
             alias crypto-crc32c crc32c-generic\n\
             garbage line\n",
            "virtio_pci: virtio virtio_ring\nvirtio_net: virtio net_failover failover\ncrc32c_generic:\n",
        );
        assert_eq!(
            database.matching("virtio:d00000001v00001AF4"),
            ["virtio_net"]
        );
        assert_eq!(database.matching("crypto-crc32c"), ["crc32c_generic"]);
        assert!(database
            .matching("pci:v00008086d00001234sv0sd0bc0sc0i0")
            .is_empty());
        assert_eq!(
            database.closure("virtio_net"),
            ["virtio", "net_failover", "failover", "virtio_net"]
        );
        assert!(database.has("crc32c_generic"));
        assert!(!database.has("e1000e"));
    }

    #[test]
    fn uevents_give_their_action_and_modalias() {
        let message = b"add@/devices/platform/soc/3f980000.usb/usb1/1-1/1-1.1/1-1.1:2.0\0ACTION=add\0DEVPATH=/devices/x\0SUBSYSTEM=usb\0MODALIAS=usb:v0525pA4A2d0000dc02dsc00dp00ic02isc06ip00in00\0SEQNUM=1234\0";
        assert_eq!(
            uevent_modalias(message),
            Some(("add", "usb:v0525pA4A2d0000dc02dsc00dp00ic02isc06ip00in00"))
        );
        assert_eq!(
            uevent_modalias(b"remove@/x\0ACTION=remove\0SEQNUM=1\0"),
            None
        );
        assert_eq!(uevent_modalias(b"libudev\0\xfe\xed"), None);
    }

    #[test]
    fn device_aliases_are_read_from_sysfs() {
        let root = std::env::temp_dir().join(format!("amber-modalias-{}", std::process::id()));
        let device = root.join("pci/devices/0000:00:01.0");
        std::fs::create_dir_all(&device).unwrap();
        std::fs::write(
            device.join("modalias"),
            "pci:v00001AF4d00001000sv0sd1bc02sc00i00\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("virtio/devices/virtio0")).unwrap();
        std::fs::write(
            root.join("virtio/devices/virtio0/modalias"),
            "virtio:d00000001v00001AF4\n",
        )
        .unwrap();
        let mut aliases = device_aliases(&root);
        aliases.sort();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            aliases,
            [
                "pci:v00001AF4d00001000sv0sd1bc02sc00i00",
                "virtio:d00000001v00001AF4"
            ]
        );
    }

    #[test]
    fn lists() {
        let (modules, errors) = parse_list(
            "# virtio first\nvirtio_ring.ko\n\n  virtio.ko  # core\nvirtio_net.ko napi_tx=0  debug=1\n../evil.ko\nsub/dir.ko\n.hidden.ko\n",
        );
        let module = |file: &str, parameters: &str| Module {
            file: file.into(),
            parameters: parameters.into(),
        };
        assert_eq!(
            modules,
            [
                module("virtio_ring.ko", ""),
                module("virtio.ko", ""),
                module("virtio_net.ko", "napi_tx=0 debug=1"),
            ]
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("line 6: \"../evil.ko\""));
        assert!(parse_list("").0.is_empty());
    }
}
