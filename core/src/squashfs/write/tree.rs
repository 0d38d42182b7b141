//! The tree the writer turns into an image: directories, regular files and symlinks,
//! each checked as it is added so a bad name never reaches the image.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::squashfs::format::{MAX_NAME, MAX_SYMLINK};

/// The longest symlink target accepted: Linux refuses to read longer ones (PATH_MAX - 1),
/// and the kernel's SquashFS driver rejects a symlink inode larger than a page.
pub const MAX_SYMLINK_TARGET: usize = MAX_SYMLINK;

/// The permission bits an inode may carry (setuid, setgid, sticky and rwx for all).
pub const MODE_BITS: u16 = 0o7777;

/// A directory of a [`Tree`]; [`Tree::root`] gives the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DirId(u32);

/// A regular file of a [`Tree`]. Ids are handed out in the order files are added,
/// starting at 0, so a caller can keep its sources in a `Vec` indexed by [`FileId::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u32);

impl FileId {
    /// The position of this file among the files added, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a node of the tree is.
#[derive(Debug)]
pub(super) enum Kind {
    /// Children by name; a `BTreeMap` keeps them sorted bytewise, the order the
    /// kernel's lookup relies on.
    Dir {
        children: BTreeMap<Box<[u8]>, u32>,
        subdirs: u32,
    },
    File {
        id: FileId,
        size: u64,
    },
    Symlink {
        target: Box<[u8]>,
    },
}

#[derive(Debug)]
pub(super) struct Node {
    pub(super) mode: u16,
    pub(super) kind: Kind,
}

/// An in-memory description of the image: names, kinds, modes, sizes and symlink
/// targets. File contents are not held here; the writer asks for them by [`FileId`].
#[derive(Debug)]
pub struct Tree {
    pub(super) nodes: Vec<Node>,
    pub(super) files: Vec<u32>,
}

/// Why a name cannot be stored in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    Dot,
    DotDot,
    Slash,
    Nul,
    TooLong,
}

impl NameProblem {
    fn reason(self) -> &'static str {
        match self {
            NameProblem::Empty => "empty name",
            NameProblem::Dot => "name is `.`",
            NameProblem::DotDot => "name is `..`",
            NameProblem::Slash => "name contains `/`",
            NameProblem::Nul => "name contains a NUL byte",
            NameProblem::TooLong => "name is longer than 256 bytes",
        }
    }
}

/// Check that `name` can be one directory entry: not empty, not `.` or `..`, no `/`
/// or NUL, at most 256 bytes (squashfs-tools CVE-2021-40153 came from allowing these).
pub fn check_name(name: &[u8]) -> Result<(), NameProblem> {
    match name {
        [] => Err(NameProblem::Empty),
        b"." => Err(NameProblem::Dot),
        b".." => Err(NameProblem::DotDot),
        _ if name.len() > MAX_NAME => Err(NameProblem::TooLong),
        _ if name.contains(&b'/') => Err(NameProblem::Slash),
        _ if name.contains(&0) => Err(NameProblem::Nul),
        _ => Ok(()),
    }
}

/// A tree that cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// The name is not a valid directory entry.
    Name { name: Vec<u8>, problem: NameProblem },
    /// The directory already holds an entry of this name.
    Duplicate { name: Vec<u8> },
    /// A symlink target that is empty, holds a NUL or is longer than 4095 bytes.
    SymlinkTarget { name: Vec<u8> },
    /// Mode bits outside `0o7777`.
    Mode { name: Vec<u8>, mode: u16 },
    /// A [`DirId`] that does not belong to this tree.
    UnknownDir,
    /// More entries than an image can number (2^32 - 2).
    TooManyEntries,
}

/// Write a name for an error message: UTF-8 as is, other bytes replaced, control
/// characters escaped so the message stays one line.
pub(super) fn show_name(f: &mut fmt::Formatter<'_>, name: &[u8]) -> fmt::Result {
    let text = String::from_utf8_lossy(name);
    write!(f, "\"{}\"", text.escape_debug())
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::Name { name, problem } => {
                f.write_str("invalid name ")?;
                show_name(f, name)?;
                write!(f, ": {}", problem.reason())
            }
            TreeError::Duplicate { name } => {
                f.write_str("duplicate entry ")?;
                show_name(f, name)
            }
            TreeError::SymlinkTarget { name } => {
                f.write_str("symlink ")?;
                show_name(f, name)?;
                f.write_str(": target is empty, holds a NUL byte or is longer than 4095 bytes")
            }
            TreeError::Mode { name, mode } => {
                show_name(f, name)?;
                write!(f, ": mode {mode:o} has bits outside 7777")
            }
            TreeError::UnknownDir => f.write_str("directory id does not belong to this tree"),
            TreeError::TooManyEntries => f.write_str("too many entries for one image"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TreeError {}

impl Default for Tree {
    fn default() -> Tree {
        Tree::new()
    }
}

impl Tree {
    /// An empty tree: a root directory with mode `0o755`.
    pub fn new() -> Tree {
        Tree {
            nodes: alloc::vec![Node {
                mode: 0o755,
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                    subdirs: 0,
                },
            }],
            files: Vec::new(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> DirId {
        DirId(0)
    }

    /// Change the permission bits of a directory, the root's included.
    pub fn set_dir_mode(&mut self, dir: DirId, mode: u16) -> Result<(), TreeError> {
        if mode & !MODE_BITS != 0 {
            return Err(TreeError::Mode {
                name: Vec::new(),
                mode,
            });
        }
        self.dir_children(dir)?;
        self.nodes[dir.0 as usize].mode = mode;
        Ok(())
    }

    /// Add a directory named `name` in `parent`.
    pub fn add_dir(&mut self, parent: DirId, name: &[u8], mode: u16) -> Result<DirId, TreeError> {
        let kind = Kind::Dir {
            children: BTreeMap::new(),
            subdirs: 0,
        };
        let index = self.add(parent, name, mode, kind)?;
        if let Kind::Dir { subdirs, .. } = &mut self.nodes[parent.0 as usize].kind {
            *subdirs += 1;
        }
        Ok(DirId(index))
    }

    /// Add a regular file of `size` bytes; the writer reads its contents through
    /// [`super::Contents`] with the returned id.
    pub fn add_file(
        &mut self,
        parent: DirId,
        name: &[u8],
        mode: u16,
        size: u64,
    ) -> Result<FileId, TreeError> {
        let id = FileId(u32::try_from(self.files.len()).map_err(|_| TreeError::TooManyEntries)?);
        let index = self.add(parent, name, mode, Kind::File { id, size })?;
        self.files.push(index);
        Ok(id)
    }

    /// Add a symlink pointing at `target`; the target is stored as given, never resolved.
    pub fn add_symlink(
        &mut self,
        parent: DirId,
        name: &[u8],
        target: &[u8],
    ) -> Result<(), TreeError> {
        if target.is_empty() || target.len() > MAX_SYMLINK_TARGET || target.contains(&0) {
            return Err(TreeError::SymlinkTarget {
                name: name.to_vec(),
            });
        }
        let kind = Kind::Symlink {
            target: target.into(),
        };
        self.add(parent, name, 0o777, kind)?;
        Ok(())
    }

    /// How many regular files the tree holds.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// How many inodes the image will hold: every entry plus the root.
    pub fn inode_count(&self) -> usize {
        self.nodes.len()
    }

    /// The size given for a file.
    pub fn file_size(&self, file: FileId) -> Option<u64> {
        let node = self.files.get(file.index())?;
        match self.nodes[*node as usize].kind {
            Kind::File { size, .. } => Some(size),
            _ => None,
        }
    }

    fn dir_children(&mut self, dir: DirId) -> Result<&mut BTreeMap<Box<[u8]>, u32>, TreeError> {
        match self.nodes.get_mut(dir.0 as usize) {
            Some(Node {
                kind: Kind::Dir { children, .. },
                ..
            }) => Ok(children),
            _ => Err(TreeError::UnknownDir),
        }
    }

    fn add(&mut self, parent: DirId, name: &[u8], mode: u16, kind: Kind) -> Result<u32, TreeError> {
        if let Err(problem) = check_name(name) {
            return Err(TreeError::Name {
                name: name.to_vec(),
                problem,
            });
        }
        if mode & !MODE_BITS != 0 {
            return Err(TreeError::Mode {
                name: name.to_vec(),
                mode,
            });
        }
        // Inode numbers are u32 and start at 1; keep one spare for the root's parent.
        let index = u32::try_from(self.nodes.len())
            .ok()
            .filter(|index| *index < u32::MAX - 1)
            .ok_or(TreeError::TooManyEntries)?;
        let children = self.dir_children(parent)?;
        if children.contains_key(name) {
            return Err(TreeError::Duplicate {
                name: name.to_vec(),
            });
        }
        children.insert(name.into(), index);
        self.nodes.push(Node { mode, kind });
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let long = [b'a'; 256];
        let too_long = [b'a'; 257];
        let table: &[(&[u8], Result<(), NameProblem>)] = &[
            (b"bin", Ok(())),
            (b"-rf", Ok(())),
            (b"with space", Ok(())),
            ("gr\u{fc}n".as_bytes(), Ok(())),
            (b"...", Ok(())),
            (b".pkg", Ok(())),
            (b"\xff\xfe", Ok(())),
            (&long, Ok(())),
            (b"", Err(NameProblem::Empty)),
            (b".", Err(NameProblem::Dot)),
            (b"..", Err(NameProblem::DotDot)),
            (b"a/b", Err(NameProblem::Slash)),
            (b"/", Err(NameProblem::Slash)),
            (b"a\0b", Err(NameProblem::Nul)),
            (&too_long, Err(NameProblem::TooLong)),
        ];
        for (name, expected) in table {
            assert_eq!(check_name(name), *expected, "{name:?}");
            // The reader applies the same rule.
            assert_eq!(
                crate::squashfs::format::is_valid_name(name),
                expected.is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn tree_refuses_bad_entries() {
        let mut tree = Tree::new();
        let root = tree.root();
        let bin = tree.add_dir(root, b"bin", 0o755).unwrap();
        tree.add_file(bin, b"sh", 0o755, 10).unwrap();
        assert_eq!(
            tree.add_file(bin, b"sh", 0o644, 1),
            Err(TreeError::Duplicate {
                name: b"sh".to_vec()
            })
        );
        assert!(matches!(
            tree.add_symlink(bin, b"sh", b"busybox"),
            Err(TreeError::Duplicate { .. })
        ));
        assert!(matches!(
            tree.add_dir(root, b"..", 0o755),
            Err(TreeError::Name {
                problem: NameProblem::DotDot,
                ..
            })
        ));
        assert!(matches!(
            tree.add_file(root, b"x", 0o10644, 1),
            Err(TreeError::Mode { .. })
        ));
        assert!(matches!(
            tree.add_symlink(root, b"l", b""),
            Err(TreeError::SymlinkTarget { .. })
        ));
        assert!(matches!(
            tree.add_symlink(root, b"l", b"a\0b"),
            Err(TreeError::SymlinkTarget { .. })
        ));
        assert!(matches!(
            tree.add_symlink(root, b"l", &[b'a'; 4096]),
            Err(TreeError::SymlinkTarget { .. })
        ));
        tree.add_symlink(root, b"l", &[b'a'; 4095]).unwrap();
        assert_eq!(
            tree.add_file(DirId(99), b"x", 0o644, 1),
            Err(TreeError::UnknownDir)
        );
        // A file's id is not a directory: adding under the file's node is refused.
        assert_eq!(
            tree.add_file(DirId(2), b"x", 0o644, 1),
            Err(TreeError::UnknownDir)
        );
        assert_eq!(tree.file_count(), 1);
        assert_eq!(tree.inode_count(), 4);
    }

    #[test]
    fn errors_are_one_line() {
        let error = TreeError::Name {
            name: b"a\nb/c".to_vec(),
            problem: NameProblem::Slash,
        };
        let text = alloc::format!("{error}");
        assert_eq!(text, "invalid name \"a\\nb/c\": name contains `/`");
    }
}
