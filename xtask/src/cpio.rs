//! A deterministic cpio "newc" writer for the initramfs.
//!
//! Entries are kept sorted by path, owned by 0:0, stamped with one fixed time, and
//! numbered in that order, so the same contents always give the same bytes. Device
//! nodes are plain headers here, so no root is needed to make `/dev/console`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Directory { mode: u32 },
    File { mode: u32, bytes: Vec<u8> },
    Symlink { target: String },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

const TYPE_DIRECTORY: u32 = 0o040000;
const TYPE_FILE: u32 = 0o100000;
const TYPE_SYMLINK: u32 = 0o120000;
const TYPE_CHAR: u32 = 0o020000;

/// An archive being assembled: paths without a leading `/`.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    /// Add an entry, and any missing parent directories (mode 0755).
    pub fn add(&mut self, path: &str, entry: Entry) {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let mut parent = String::new();
        for component in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            self.entries
                .entry(parent.clone())
                .or_insert(Entry::Directory { mode: 0o755 });
        }
        self.entries.insert(path.to_owned(), entry);
    }

    pub fn directory(&mut self, path: &str, mode: u32) {
        self.add(path, Entry::Directory { mode });
    }

    pub fn file(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        self.add(path, Entry::File { mode, bytes });
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.add(
            path,
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
    }

    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The archive with only the entries `keep` accepts.
    pub fn filtered(&self, keep: impl Fn(&str, &Entry) -> bool) -> Archive {
        Archive {
            entries: self
                .entries
                .iter()
                .filter(|(path, entry)| keep(path, entry))
                .map(|(path, entry)| (path.clone(), entry.clone()))
                .collect(),
        }
    }

    /// The newc bytes, every entry stamped with `mtime`, ending with the trailer.
    pub fn to_bytes(&self, mtime: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, (path, entry)) in self.entries.iter().enumerate() {
            let inode = index as u32 + 1;
            let (mode, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match entry {
                Entry::Directory { mode } => (TYPE_DIRECTORY | mode, &[], 2, (0, 0)),
                Entry::File { mode, bytes } => (TYPE_FILE | mode, bytes, 1, (0, 0)),
                Entry::Symlink { target } => (TYPE_SYMLINK | 0o777, target.as_bytes(), 1, (0, 0)),
                Entry::CharDevice { mode, major, minor } => {
                    (TYPE_CHAR | mode, &[], 1, (*major, *minor))
                }
            };
            header(&mut out, inode, mode, nlink, mtime, data.len(), rdev, path);
            out.extend_from_slice(data);
            pad(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, 0, (0, 0), "TRAILER!!!");
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    inode: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let fields = [
        inode,
        mode,
        0, // uid
        0, // gid
        nlink,
        mtime,
        size as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
}

/// newc aligns every header and every file's data to 4 bytes.
fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_output_is_stable() {
        let mut archive = Archive::new();
        archive.symlink("/amber/bin/pkg", "/init");
        archive.file("/init", 0o755, b"binary".to_vec());
        archive.add(
            "/dev/console",
            Entry::CharDevice {
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        );
        let paths: Vec<&String> = archive.entries().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            [
                "amber",
                "amber/bin",
                "amber/bin/pkg",
                "dev",
                "dev/console",
                "init"
            ]
        );
        assert_eq!(archive.to_bytes(0), archive.clone().to_bytes(0));
    }

    #[test]
    fn header_layout() {
        let mut archive = Archive::new();
        archive.file("a", 0o644, b"hello".to_vec());
        let bytes = archive.to_bytes(7);
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(
            header,
            "070701\
             00000001\
             000081A4\
             00000000\
             00000000\
             00000001\
             00000007\
             00000005\
             00000000\
             00000000\
             00000000\
             00000000\
             00000002\
             00000000"
        );
        // Header (110) + "a\0" = 112, data 5 padded to 8, then the trailer.
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..117], b"hello");
        assert_eq!(&bytes[120..126], b"070701");
        assert!(bytes.ends_with(b"TRAILER!!!\0\0\0\0"));
        assert_eq!(bytes.len() % 4, 0);
    }

    /// The system's cpio lists our archive with the right types and device numbers.
    #[test]
    fn gnu_cpio_reads_it() {
        if !crate::cmd::have("cpio") {
            eprintln!("cpio is not installed: `cargo xtask deps` installs it");
            return;
        }
        let mut archive = Archive::new();
        archive.file("init", 0o755, b"binary".to_vec());
        archive.symlink("bin", "ro/bin");
        archive.add(
            "dev/console",
            Entry::CharDevice {
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        );
        let directory = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let file = directory.join("test.cpio");
        std::fs::write(&file, archive.to_bytes(0)).unwrap();
        let listing = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cpio -itv --numeric-uid-gid < {}", file.display()))
            .output()
            .unwrap();
        std::fs::remove_dir_all(&directory).unwrap();
        assert!(listing.status.success());
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(text.contains("lrwxrwxrwx"), "{text}");
        assert!(text.contains("bin -> ro/bin"), "{text}");
        assert!(text.contains("crw-------"), "{text}");
        assert!(text.contains("5,   1"), "{text}");
        assert!(text.contains("-rwxr-xr-x"), "{text}");
    }
}
