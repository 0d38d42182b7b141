//! Kernel modules: read `depends=` from each `.ko`'s `.modinfo` ELF section and put the
//! closure of the modules a board needs into a load order, dependencies first.
//!
//! The ELF reading is deliberately small: the section header table, the section name
//! string table, and one section. Modules may be compressed (`.ko.xz`, `.ko.zst`,
//! `.ko.gz`); they are decompressed with the matching tool, since the initramfs loader
//! takes plain `.ko` files.

use crate::board::Board;
use crate::cmd::Cmd;
use crate::kernel::Kernel;
use crate::util::{path_str, read};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One module to put into the initramfs.
#[derive(Debug, Clone)]
pub struct Module {
    /// The module's name, with `_` for `-` as the kernel spells it in `depends=`.
    pub name: String,
    /// The plain file name in `/amber/modules/`: always `<name>.ko`, so init finds a
    /// module's file from its name.
    pub file_name: String,
    /// The uncompressed `.ko` bytes.
    pub bytes: Vec<u8>,
    pub depends: Vec<String>,
    /// The `alias=` fields of its `.modinfo`: the devices it drives (`pci:v...`) and
    /// the names the kernel asks for it by (`fs-vfat`, `crypto-crc32c`).
    pub aliases: Vec<String>,
}

/// What the initramfs carries of the kernel's modules.
#[derive(Debug, Clone)]
pub struct Modules {
    /// The board's `kernel.modules` and what they depend on, in load order: loaded at
    /// every boot (`/etc/amber/modules`).
    pub always: Vec<Module>,
    /// The board's `kernel.hardware-modules` and what they depend on (less what
    /// `always` has), loaded only when a device present asks for one.
    pub hardware: Vec<Module>,
    /// `/etc/amber/modules.alias`: the kernel's `alias PATTERN NAME` lines for every
    /// module carried, device aliases (`pci:`, `usb:`, `of:` ...) and the names the
    /// kernel asks modprobe for (`fs-vfat`, `crypto-crc32c`) alike.
    pub aliases: String,
    /// `/etc/amber/modules.dep`: `NAME: DEPENDENCY...` for every module carried, the
    /// whole closure of its dependencies in load order.
    pub dependencies: String,
}

impl Modules {
    /// Every module carried, `always` first.
    pub fn all(&self) -> impl Iterator<Item = &Module> {
        self.always.iter().chain(&self.hardware)
    }
}

/// The board's modules and all they depend on, with their aliases and load orders.
pub fn resolve(board: &Board, kernel: &Kernel) -> Result<Modules, String> {
    let files = index(&kernel.modules_dir)?;
    let builtin = builtin(&kernel.modules_dir)?;
    for wanted in board.modules.iter().chain(&board.hardware_modules) {
        if builtin.contains(wanted) {
            return Err(format!(
                "board {}: module {wanted} is built into kernel {}; remove it from the board's modules",
                board.name, kernel.release
            ));
        }
        if !files.contains_key(wanted) {
            return Err(format!(
                "board {}: kernel {} has no module {wanted}",
                board.name, kernel.release
            ));
        }
    }
    let mut loaded: BTreeMap<String, Module> = BTreeMap::new();
    let mut pending: Vec<String> = board
        .modules
        .iter()
        .chain(&board.hardware_modules)
        .cloned()
        .collect();
    while let Some(name) = pending.pop() {
        if loaded.contains_key(&name) {
            continue;
        }
        let path = files.get(&name).ok_or_else(|| {
            format!(
                "kernel {}: module dependency {name} has no file",
                kernel.release
            )
        })?;
        let module = load(&name, path, board.arch.elf_machine())?;
        pending.extend(module.depends.iter().cloned());
        loaded.insert(name, module);
    }
    let graph: BTreeMap<String, Vec<String>> = loaded
        .iter()
        .map(|(name, module)| (name.clone(), module.depends.clone()))
        .collect();
    let always_order = load_order(&board.modules, &graph)?;
    let mut hardware_order = load_order(&board.hardware_modules, &graph)?;
    hardware_order.retain(|name| !always_order.contains(name));
    let mut dependencies = String::new();
    for name in graph.keys() {
        let mut closure = load_order(std::slice::from_ref(name), &graph)?;
        closure.pop();
        dependencies.push_str(&format!("{name}:"));
        for dependency in closure {
            dependencies.push(' ');
            dependencies.push_str(&dependency);
        }
        dependencies.push('\n');
    }
    // Debian's kernel packages ship no modules.alias (depmod makes it when a package
    // is installed): the aliases come from each module's own .modinfo.
    let mut aliases = String::new();
    for (name, module) in &loaded {
        for alias in &module.aliases {
            aliases.push_str(&format!("alias {alias} {name}\n"));
        }
    }
    let mut take = |order: Vec<String>| -> Vec<Module> {
        order
            .into_iter()
            .map(|name| {
                loaded
                    .remove(&name)
                    .expect("every ordered module was loaded")
            })
            .collect()
    };
    let always = take(always_order);
    let hardware = take(hardware_order);
    Ok(Modules {
        always,
        hardware,
        aliases,
        dependencies,
    })
}

/// Module name → file, for every module file under the release's `kernel/` tree.
fn index(modules_dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut files = BTreeMap::new();
    let mut directories = vec![modules_dir.join("kernel")];
    while let Some(directory) = directories.pop() {
        let entries = std::fs::read_dir(&directory)
            .map_err(|e| format!("cannot list {}: {e}", directory.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                directories.push(path);
            } else if let Some(name) = module_name(&entry.file_name().to_string_lossy()) {
                files.insert(name, path);
            }
        }
    }
    Ok(files)
}

/// The names of modules built into the kernel, from `modules.builtin`.
fn builtin(modules_dir: &Path) -> Result<BTreeSet<String>, String> {
    let path = modules_dir.join("modules.builtin");
    let text =
        String::from_utf8(read(&path)?).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| module_name(line.rsplit('/').next()?))
        .collect())
}

/// `crc-ccitt.ko.xz` → `crc_ccitt`; None for files that are not modules.
fn module_name(file_name: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file_name.strip_suffix(suffix))?;
    Some(stem.replace('-', "_"))
}

fn load(name: &str, path: &Path, machine: u16) -> Result<Module, String> {
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("{}: odd file name", path.display()))?;
    let bytes = if file_name.ends_with(".xz") {
        decompress("xz", path)?
    } else if file_name.ends_with(".zst") {
        decompress("zstd", path)?
    } else if file_name.ends_with(".gz") {
        decompress("gzip", path)?
    } else {
        read(path)?
    };
    let info = modinfo(&bytes, machine).map_err(|e| format!("{}: {e}", path.display()))?;
    let depends = info
        .iter()
        .filter(|(key, _)| key == "depends")
        .flat_map(|(_, value)| value.split(','))
        .filter(|dependency| !dependency.is_empty())
        .map(|dependency| dependency.replace('-', "_"))
        .collect();
    let aliases = info
        .iter()
        .filter(|(key, value)| {
            key == "alias" && !value.is_empty() && !value.contains(char::is_whitespace)
        })
        .map(|(_, value)| value.clone())
        .collect();
    // The file is named after the module whatever the kernel tree calls it.
    Ok(Module {
        name: name.to_owned(),
        file_name: format!("{name}.ko"),
        bytes,
        depends,
        aliases,
    })
}

fn decompress(tool: &str, path: &Path) -> Result<Vec<u8>, String> {
    Cmd::new(tool).args(["-dc", path_str(path)?]).output_bytes()
}

/// The `key=value` pairs of an ELF64 little-endian module's `.modinfo` section.
pub fn modinfo(elf: &[u8], machine: u16) -> Result<Vec<(String, String)>, String> {
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian: both amber architectures.
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let found_machine = u16_at(elf, 0x12)?;
    if found_machine != machine {
        return Err(format!(
            "ELF machine {found_machine}, expected {machine} for this board"
        ));
    }
    let section_table = u64_at(elf, 0x28)?;
    let entry_size = u64::from(u16_at(elf, 0x3a)?);
    let count = u64::from(u16_at(elf, 0x3c)?);
    let names_index = u64::from(u16_at(elf, 0x3e)?);
    if entry_size < 64 {
        return Err(format!("section header size {entry_size} is below 64"));
    }
    let header = |index: u64| -> Result<(u32, u64, u64), String> {
        let at = index
            .checked_mul(entry_size)
            .and_then(|offset| offset.checked_add(section_table))
            .ok_or("section header offset overflows")?;
        let at = usize::try_from(at).map_err(|_| "section header offset overflows")?;
        Ok((
            u32_at(elf, at)?,
            u64_at(elf, at.saturating_add(24))?,
            u64_at(elf, at.saturating_add(32))?,
        ))
    };
    let (_, names_offset, names_size) = header(names_index)?;
    let names = slice(elf, names_offset, names_size)?;
    for index in 0..count {
        let (name_offset, offset, size) = header(index)?;
        let name = names
            .get(name_offset as usize..)
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .ok_or("section name out of range")?;
        if name == b".modinfo" {
            let section = slice(elf, offset, size)?;
            return Ok(section
                .split(|&b| b == 0)
                .filter_map(|entry| {
                    let text = std::str::from_utf8(entry).ok()?;
                    let (key, value) = text.split_once('=')?;
                    Some((key.to_owned(), value.to_owned()))
                })
                .collect());
        }
    }
    Err("no .modinfo section".into())
}

fn slice(bytes: &[u8], offset: u64, size: u64) -> Result<&[u8], String> {
    let start = usize::try_from(offset).map_err(|_| "section offset overflows")?;
    let size = usize::try_from(size).map_err(|_| "section size overflows")?;
    start
        .checked_add(size)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| "section out of range".to_owned())
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    Ok(u16::from_le_bytes(field(bytes, at)?))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    Ok(u32::from_le_bytes(field(bytes, at)?))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    Ok(u64::from_le_bytes(field(bytes, at)?))
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .map(|slice| slice.try_into().expect("the slice has N bytes"))
        .ok_or_else(|| format!("ELF file too short for a field at {at}"))
}

/// A topological order of `graph` (module → its dependencies), dependencies first.
///
/// Depth-first from the modules in the order the board lists them, dependencies in
/// name order, so the same inputs always give the same order and the board's own
/// order is kept where dependencies allow it.
pub fn load_order(
    roots: &[String],
    graph: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        graph: &BTreeMap<String, Vec<String>>,
        marks: &mut BTreeMap<String, Mark>,
        order: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<(), String> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                path.push(name.to_owned());
                return Err(format!("module dependency cycle: {}", path.join(" -> ")));
            }
            None => {}
        }
        let depends = graph
            .get(name)
            .ok_or_else(|| format!("module {name} is not known"))?;
        marks.insert(name.to_owned(), Mark::Visiting);
        path.push(name.to_owned());
        let mut sorted: Vec<&String> = depends.iter().collect();
        sorted.sort();
        sorted.dedup();
        for dependency in sorted {
            visit(dependency, graph, marks, order, path)?;
        }
        path.pop();
        marks.insert(name.to_owned(), Mark::Done);
        order.push(name.to_owned());
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut order = Vec::new();
    for root in roots {
        visit(root, graph, &mut marks, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(name, depends)| {
                (
                    name.to_string(),
                    depends.iter().map(|d| d.to_string()).collect(),
                )
            })
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn virtio_modules_load_dependencies_first() {
        // The dependencies of Debian 12's cloud kernels (DESIGN §7).
        let graph = graph(&[
            ("virtio_ring", &[]),
            ("virtio", &["virtio_ring"]),
            ("virtio_pci_modern_dev", &[]),
            ("virtio_pci_legacy_dev", &[]),
            (
                "virtio_pci",
                &[
                    "virtio_ring",
                    "virtio_pci_modern_dev",
                    "virtio_pci_legacy_dev",
                    "virtio",
                ],
            ),
            ("virtio_blk", &["virtio", "virtio_ring"]),
            ("failover", &[]),
            ("net_failover", &["failover"]),
            ("virtio_net", &["virtio_ring", "virtio", "net_failover"]),
            ("fuse", &[]),
        ]);
        let order = load_order(
            &names(&["virtio_pci", "virtio_blk", "virtio_net", "fuse"]),
            &graph,
        )
        .unwrap();
        assert_eq!(
            order,
            names(&[
                "virtio_ring",
                "virtio",
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_pci",
                "virtio_blk",
                "failover",
                "net_failover",
                "virtio_net",
                "fuse",
            ])
        );
    }

    #[test]
    fn cycles_and_unknown_modules_are_errors() {
        let cyclic = graph(&[("a", &["b"]), ("b", &["a"])]);
        let error = load_order(&names(&["a"]), &cyclic).unwrap_err();
        assert_eq!(error, "module dependency cycle: a -> b -> a");
        let missing = graph(&[("a", &["c"])]);
        let error = load_order(&names(&["a"]), &missing).unwrap_err();
        assert_eq!(error, "module c is not known");
    }

    #[test]
    fn module_names_are_normalized() {
        assert_eq!(module_name("crc-ccitt.ko"), Some("crc_ccitt".into()));
        assert_eq!(module_name("virtio_net.ko.xz"), Some("virtio_net".into()));
        assert_eq!(module_name("modules.dep"), None);
    }

    /// A minimal ELF64 relocatable file with a null section, `.modinfo` and `.shstrtab`.
    fn tiny_module(modinfo_text: &[u8], machine: u16) -> Vec<u8> {
        let names = b"\0.modinfo\0.shstrtab\0";
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[6] = 1;
        elf[0x10..0x12].copy_from_slice(&1u16.to_le_bytes());
        elf[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        let modinfo_at = elf.len() as u64;
        elf.extend_from_slice(modinfo_text);
        let names_at = elf.len() as u64;
        elf.extend_from_slice(names);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let table_at = elf.len() as u64;
        let section = |name: u32, offset: u64, size: u64| {
            let mut header = vec![0u8; 64];
            header[..4].copy_from_slice(&name.to_le_bytes());
            header[24..32].copy_from_slice(&offset.to_le_bytes());
            header[32..40].copy_from_slice(&size.to_le_bytes());
            header
        };
        elf.extend(section(0, 0, 0));
        elf.extend(section(1, modinfo_at, modinfo_text.len() as u64));
        elf.extend(section(10, names_at, names.len() as u64));
        elf[0x28..0x30].copy_from_slice(&table_at.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        elf
    }

    #[test]
    fn modinfo_reads_depends() {
        let elf = tiny_module(
            b"license=GPL\0depends=virtio_ring,virtio\0name=virtio_blk\0",
            62,
        );
        let info = modinfo(&elf, 62).unwrap();
        assert!(info.contains(&("depends".into(), "virtio_ring,virtio".into())));
        assert!(info.contains(&("name".into(), "virtio_blk".into())));
        assert_eq!(
            modinfo(&elf, 183).unwrap_err(),
            "ELF machine 62, expected 183 for this board"
        );
    }

    #[test]
    fn modinfo_never_panics_on_truncated_files() {
        let elf = tiny_module(b"depends=\0", 62);
        for length in 0..elf.len() {
            let _ = modinfo(&elf[..length], 62);
        }
        let mut bad = elf.clone();
        bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(modinfo(&bad, 62).is_err());
    }
}
