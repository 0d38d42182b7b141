//! A bounded walk over a whole image that reads everything once, for verifying an
//! image before use and for the fuzz target.

use alloc::vec;
use alloc::vec::Vec;

use super::{Archive, Cache, DirReader, Error, Inode, Kind};
use crate::squashfs::format::MAX_NAME;
use crate::squashfs::ReadAt;

/// Bounds on [`Archive::check`], so that even a hostile image is walked in bounded
/// time and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Directory entries visited, over the whole tree.
    pub max_entries: u64,
    /// Directories open at once along the current path.
    pub max_depth: usize,
    /// File bytes read, over the whole tree.
    pub max_read: u64,
}

impl Default for CheckLimits {
    /// One million entries, 1024 levels, no limit on bytes.
    fn default() -> CheckLimits {
        CheckLimits {
            max_entries: 1_000_000,
            max_depth: 1024,
            max_read: u64::MAX,
        }
    }
}

/// What [`Archive::check`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Directories, the root included.
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    /// Devices, fifos and sockets.
    pub others: u64,
    /// File bytes read.
    pub bytes: u64,
}

impl<R: ReadAt> Archive<R> {
    /// Walk the whole tree without recursion: list every directory, look every
    /// entry up again by name (which also exercises the directory index and checks
    /// that it agrees with the listing), decode every inode, read every file and
    /// symlink. The first problem found is returned.
    pub fn check(&self, cache: &mut Cache, limits: &CheckLimits) -> Result<CheckSummary, Error> {
        let mut summary = CheckSummary {
            directories: 1,
            ..CheckSummary::default()
        };
        let root = self.root(cache)?;
        let mut stack: Vec<(Inode, DirReader)> = vec![(root, self.dir_reader(&root, 0, cache)?)];
        let mut buffer = vec![0u8; self.block_size() as usize];
        let mut entries = 0u64;
        while let Some((dir, reader)) = stack.last_mut() {
            let dir = *dir;
            let mut name = [0u8; MAX_NAME];
            let (name_len, reference) = match reader.next(self, cache)? {
                Some(entry) => {
                    name[..entry.name.len()].copy_from_slice(entry.name);
                    (entry.name.len(), entry.reference)
                }
                None => {
                    stack.pop();
                    continue;
                }
            };
            entries += 1;
            if entries > limits.max_entries {
                return Err(Error::LimitExceeded("directory entries"));
            }
            let inode = self
                .lookup(&dir, &name[..name_len], cache)?
                .ok_or(Error::Corrupt("listed entry not found by lookup"))?;
            if inode.reference != reference {
                return Err(Error::Corrupt("directory index disagrees with the listing"));
            }
            match inode.kind {
                Kind::Dir => {
                    if stack.len() >= limits.max_depth {
                        return Err(Error::LimitExceeded("directory depth"));
                    }
                    summary.directories += 1;
                    let reader = self.dir_reader(&inode, 0, cache)?;
                    stack.push((inode, reader));
                }
                Kind::File => {
                    summary.files += 1;
                    let mut offset = 0;
                    while offset < inode.size {
                        if summary.bytes >= limits.max_read {
                            return Err(Error::LimitExceeded("bytes read"));
                        }
                        let read = self.read(&inode, offset, &mut buffer, cache)?;
                        if read == 0 {
                            return Err(Error::Corrupt("file ends before its size"));
                        }
                        offset += read as u64;
                        summary.bytes += read as u64;
                    }
                }
                Kind::Symlink => {
                    summary.symlinks += 1;
                    self.read_link(&inode, cache)?;
                }
                _ => summary.others += 1,
            }
        }
        Ok(summary)
    }
}
