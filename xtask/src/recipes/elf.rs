//! The checks of a built package tree: every ELF static and for the right machine (unless
//! the recipe allows dynamic linking), every symlink inside the package, nothing but
//! files, directories and symlinks.

use crate::board::Arch;
use std::path::Path;

/// Every ELF static and for `arch` (unless dynamic linking is allowed), every symlink
/// inside the package, nothing but files, directories and symlinks.
pub fn check_tree(tree: &Path, arch: Arch, allow_dynamic: bool) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let mut pending = vec![tree.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(tree).expect("below tree").to_path_buf();
            let shown = relative.display();
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let target =
                    std::fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if !symlink_stays_inside(&relative, &target) {
                    return Err(format!(
                        "{shown}: symlink to {} leaves the package",
                        target.display()
                    ));
                }
            } else if kind.is_file() {
                files += 1;
                let bytes = crate::util::read(&path)?;
                match elf_linkage(&bytes) {
                    Ok(None) => {}
                    Ok(Some(elf)) => {
                        if elf.machine != arch.elf_machine() {
                            return Err(format!(
                                "{shown}: ELF for machine {}, not {}",
                                elf.machine,
                                arch.name()
                            ));
                        }
                        if elf.dynamic && !allow_dynamic {
                            return Err(format!(
                                "{shown}: dynamically linked ({}); recipes build static \
                                 executables unless build.allow-dynamic is set",
                                elf.reason
                            ));
                        }
                    }
                    Err(reason) => return Err(format!("{shown}: {reason}")),
                }
            } else {
                let what = if kind.is_fifo() {
                    "a fifo"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "a device"
                };
                return Err(format!("{shown}: {what} cannot go in a package"));
            }
        }
    }
    if files == 0 {
        return Err("the package holds no files ($OUT is empty)".into());
    }
    Ok(())
}

/// Whether a relative symlink at `link` (relative to the package root) stays inside.
fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    use std::path::Component;
    if target.is_absolute() {
        return false;
    }
    let mut depth = link.components().count() as isize - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

struct Elf {
    machine: u16,
    dynamic: bool,
    reason: &'static str,
}

/// Read an ELF file's machine and whether it needs a dynamic loader or libraries
/// (PT_INTERP, or DT_NEEDED in PT_DYNAMIC); `None` for a file that is not ELF.
fn elf_linkage(bytes: &[u8]) -> Result<Option<Elf>, String> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let bad = |what: &str| format!("malformed ELF: {what}");
    if bytes.len() < 64 {
        return Err(bad("short header"));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("ELF is not 64-bit little-endian, as both targets are".into());
    }
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let machine = u16_at(18).ok_or_else(|| bad("header"))?;
    let phoff = u64_at(32).ok_or_else(|| bad("header"))? as usize;
    let phentsize = u16_at(54).ok_or_else(|| bad("header"))? as usize;
    let phnum = u16_at(56).ok_or_else(|| bad("header"))? as usize;
    let mut elf = Elf {
        machine,
        dynamic: false,
        reason: "",
    };
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        let kind = u32_at(at).ok_or_else(|| bad("program header"))?;
        match kind {
            // PT_INTERP: a dynamic loader is needed.
            3 => {
                elf.dynamic = true;
                elf.reason = "it has an interpreter";
            }
            // PT_DYNAMIC: a static PIE has one too; only DT_NEEDED entries matter.
            2 => {
                let offset = u64_at(at + 8).ok_or_else(|| bad("program header"))? as usize;
                let size = u64_at(at + 32).ok_or_else(|| bad("program header"))? as usize;
                let mut entry = offset;
                while entry + 16 <= offset.saturating_add(size) {
                    let tag = u64_at(entry).ok_or_else(|| bad("dynamic section"))?;
                    if tag == 0 {
                        break;
                    }
                    if tag == 1 {
                        elf.dynamic = true;
                        elf.reason = "it needs shared libraries";
                    }
                    entry += 16;
                }
            }
            _ => {}
        }
    }
    Ok(Some(elf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks() {
        for (link, target, inside) in [
            ("bin/grep", "sh", true),
            ("bin/grep", "../sbin/x", true),
            ("bin/grep", "../../x", false),
            ("grep", "../x", false),
            ("bin/grep", "/bin/sh", false),
            ("a/b/c", "../../d/./e", true),
            ("a/b/c", "x/../../../..", false),
        ] {
            assert_eq!(
                symlink_stays_inside(Path::new(link), Path::new(target)),
                inside,
                "{link} -> {target}"
            );
        }
    }

    #[test]
    fn elf_headers() {
        assert!(elf_linkage(b"#!/bin/sh\n").unwrap().is_none());
        assert!(elf_linkage(b"\x7fELF\x02\x01").is_err());
        // The running test binary: an x86_64 or aarch64 ELF, linked against glibc.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let elf = elf_linkage(&me).unwrap().unwrap();
        assert!(elf.dynamic);
        assert!([62, 183].contains(&elf.machine));
    }
}
