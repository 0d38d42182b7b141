//! A bounded walk over a whole image that checks everything once, for verifying an
//! image before use and for the fuzz target.

use alloc::vec;
use alloc::vec::Vec;

use super::dir::{IndexCursor, Jump};
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
    /// Read and decompress every file; when false, only where the data lies is
    /// checked (block size words, data ranges, fragment entries).
    pub read_data: bool,
}

impl Default for CheckLimits {
    /// One million entries, 1024 levels, every byte read.
    fn default() -> CheckLimits {
        CheckLimits {
            max_entries: 1_000_000,
            max_depth: 1024,
            max_read: u64::MAX,
            read_data: true,
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

/// One open directory of the walk.
struct Frame {
    dir: Inode,
    reader: DirReader,
    index: IndexCursor,
    /// The next index entry, not yet matched with a header of the listing.
    pending: Option<Jump>,
}

impl<R: ReadAt> Archive<R> {
    /// Walk the whole tree without recursion and check it: every listing (names,
    /// order, headers), every directory index entry against the header it names (so
    /// a lookup through the index finds what the listing has), every inode against
    /// its entry, every file's data and every symlink. Time is linear in the image.
    pub fn check(&self, cache: &mut Cache, limits: &CheckLimits) -> Result<CheckSummary, Error> {
        let mut summary = CheckSummary {
            directories: 1,
            ..CheckSummary::default()
        };
        let root = self.root(cache)?;
        let mut stack = vec![self.frame(root)?];
        let mut buffer = Vec::new();
        let mut entries = 0u64;
        while let Some(frame) = stack.last_mut() {
            let mut name = [0u8; MAX_NAME];
            let Some(entry) = frame.reader.next(self, cache)? else {
                if frame.pending.is_some() || frame.index.next(self, cache)?.is_some() {
                    return Err(Error::Corrupt("directory index names no header"));
                }
                stack.pop();
                continue;
            };
            let name_len = entry.name.len();
            name[..name_len].copy_from_slice(entry.name);
            let (reference, kind, number) = (entry.reference, entry.kind, entry.inode_number);
            let entry = super::DirEntry {
                name: &name[..name_len],
                reference,
                kind,
                inode_number: number,
                offset: entry.offset,
            };
            entries += 1;
            if entries > limits.max_entries {
                return Err(Error::LimitExceeded("directory entries"));
            }
            if let Some(header_at) = frame.reader.header_at() {
                self.check_index(frame, header_at, &entry, cache)?;
            }
            let dir = frame.dir;
            let inode = self.entry_inode(&dir, &entry, cache)?;
            match inode.kind {
                Kind::Dir => {
                    if stack.len() >= limits.max_depth {
                        return Err(Error::LimitExceeded("directory depth"));
                    }
                    summary.directories += 1;
                    stack.push(self.frame(inode)?);
                }
                Kind::File => {
                    summary.files += 1;
                    self.check_file_layout(&inode, cache)?;
                    if limits.read_data {
                        self.check_file_data(&inode, cache, limits, &mut buffer, &mut summary)?;
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

    fn frame(&self, dir: Inode) -> Result<Frame, Error> {
        Ok(Frame {
            reader: DirReader::start(self, &dir)?,
            index: IndexCursor::new(&dir)?,
            pending: None,
            dir,
        })
    }

    /// A header of the listing starts at `header_at` and `entry` is its first entry.
    /// Index entries, in order, must each name one of these headers: same place in
    /// the listing, same first name, and jumping there must read the same entry.
    fn check_index(
        &self,
        frame: &mut Frame,
        header_at: u32,
        entry: &super::DirEntry<'_>,
        cache: &mut Cache,
    ) -> Result<(), Error> {
        if frame.pending.is_none() {
            frame.pending = frame.index.next(self, cache)?.copied();
        }
        let Some(jump) = frame.pending else {
            return Ok(());
        };
        if jump.index < header_at {
            return Err(Error::Corrupt("directory index names no header"));
        }
        if jump.index == header_at {
            if jump.name() != entry.name {
                return Err(Error::Corrupt("directory index disagrees with the listing"));
            }
            let mut probe = DirReader::start(self, &frame.dir)?;
            probe.jump(self, &frame.dir, &jump);
            let found = probe.next(self, cache)?.map(|found| found.reference);
            if found != Some(entry.reference) {
                return Err(Error::Corrupt("directory index disagrees with the listing"));
            }
            frame.pending = None;
        }
        Ok(())
    }

    /// Read a whole file, block by block, within the byte budget.
    fn check_file_data(
        &self,
        file: &Inode,
        cache: &mut Cache,
        limits: &CheckLimits,
        buffer: &mut Vec<u8>,
        summary: &mut CheckSummary,
    ) -> Result<(), Error> {
        if buffer.is_empty() {
            buffer.resize(self.block_size() as usize, 0);
        }
        let mut offset = 0;
        while offset < file.size {
            if summary.bytes >= limits.max_read {
                return Err(Error::LimitExceeded("bytes read"));
            }
            let read = self.read(file, offset, buffer, cache)?;
            if read == 0 {
                return Err(Error::Corrupt("file ends before its size"));
            }
            offset += read as u64;
            summary.bytes += read as u64;
        }
        Ok(())
    }
}
