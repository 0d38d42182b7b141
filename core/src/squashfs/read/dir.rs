//! Directory listings: a resumable reader, and lookup through the directory index.

use core::cmp::Ordering;

use super::{le16, le32, Archive, Cache, Error, Inode, Kind, Layout, MetaPos};
use crate::squashfs::format::{
    self, DIR_ENTRY_SIZE, DIR_HEADER_MAX_ENTRIES, DIR_HEADER_SIZE, DIR_INDEX_SIZE, DIR_SIZE_EXTRA,
    MAX_NAME, METADATA_SIZE,
};
use crate::squashfs::ReadAt;

/// One directory entry, as listed; the name borrows from the [`DirReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    pub name: &'a [u8],
    /// The entry's inode, for [`Archive::inode`] or [`Archive::entry_inode`].
    pub reference: u64,
    pub kind: Kind,
    pub inode_number: u32,
    /// The `read_dir` offset that resumes after this entry.
    pub offset: u64,
}

/// Reads a directory listing entry by entry, checking each name, the order of the
/// names (strictly increasing, so no duplicates), and every header and inode number.
///
/// It holds no borrow of the archive or the cache, so the caller may look up inodes
/// between entries; pass the same archive to every [`DirReader::next`].
#[derive(Debug, Clone)]
pub struct DirReader {
    position: MetaPos,
    /// Bytes of the listing read so far, and its total size.
    consumed: u32,
    listing: u32,
    /// Entries left in the current header, its inode block and base inode number.
    remaining: u32,
    header_block: u32,
    header_number: u32,
    name: [u8; MAX_NAME],
    name_len: usize,
    previous: [u8; MAX_NAME],
    previous_len: usize,
    /// The next entry must carry `previous` exactly: the reader jumped to a header
    /// through the directory index, which names that header's first entry.
    must_equal: bool,
    /// Where in the listing the header read by the last `next` started, if it read one.
    header_at: Option<u32>,
}

/// A directory index entry: a header that starts at `index` bytes into the listing,
/// in the metadata block at `start`, whose first entry is `name`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Jump {
    pub(super) index: u32,
    start: u32,
    name: [u8; MAX_NAME],
    name_len: usize,
}

impl Jump {
    pub(super) fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

impl DirReader {
    /// A reader at the start of a directory's listing.
    pub(super) fn start<R: ReadAt>(archive: &Archive<R>, dir: &Inode) -> Result<DirReader, Error> {
        let Layout::Dir {
            start_block,
            start_offset,
            listing,
            ..
        } = dir.layout
        else {
            return Err(Error::NotADirectory);
        };
        Ok(DirReader {
            position: MetaPos {
                block: archive.directory_table.start + u64::from(start_block),
                offset: start_offset,
            },
            consumed: 0,
            listing,
            remaining: 0,
            header_block: 0,
            header_number: 0,
            name: [0; MAX_NAME],
            name_len: 0,
            previous: [0; MAX_NAME],
            previous_len: 0,
            must_equal: false,
            header_at: None,
        })
    }

    /// Move to the header a directory index entry points at.
    pub(super) fn jump<R: ReadAt>(&mut self, archive: &Archive<R>, dir: &Inode, jump: &Jump) {
        let Layout::Dir { start_offset, .. } = dir.layout else {
            return;
        };
        // The listing is one byte stream cut into 8 KiB blocks, so the header's place
        // in its block follows from its place in the listing.
        let offset = (u64::from(start_offset) + u64::from(jump.index)) % METADATA_SIZE as u64;
        self.position = MetaPos {
            block: archive.directory_table.start + u64::from(jump.start),
            offset: offset as u16,
        };
        self.consumed = jump.index;
        self.remaining = 0;
        self.name_len = 0;
        self.previous[..jump.name_len].copy_from_slice(&jump.name[..jump.name_len]);
        self.previous_len = jump.name_len;
        self.must_equal = true;
    }

    /// Copy the next `out.len()` bytes of the listing, which must not run past it.
    fn take<R: ReadAt>(
        &mut self,
        archive: &Archive<R>,
        cache: &mut Cache,
        out: &mut [u8],
    ) -> Result<(), Error> {
        let end = u64::from(self.consumed) + out.len() as u64;
        if end > u64::from(self.listing) {
            return Err(Error::Corrupt(
                "directory entry past the end of its listing",
            ));
        }
        archive.read_metadata(cache, archive.directory_table, &mut self.position, out)?;
        self.consumed = end as u32;
        Ok(())
    }

    /// The next entry, or `None` at the end of the listing.
    pub fn next<'a, R: ReadAt>(
        &'a mut self,
        archive: &Archive<R>,
        cache: &mut Cache,
    ) -> Result<Option<DirEntry<'a>>, Error> {
        if self.name_len > 0 {
            self.previous[..self.name_len].copy_from_slice(&self.name[..self.name_len]);
            self.previous_len = self.name_len;
            self.name_len = 0;
            self.must_equal = false;
        }
        self.header_at = None;
        if self.remaining == 0 {
            if self.consumed == self.listing {
                return Ok(None);
            }
            self.header_at = Some(self.consumed);
            let mut header = [0u8; DIR_HEADER_SIZE];
            self.take(archive, cache, &mut header)?;
            let count = u64::from(le32(&header, 0)) + 1;
            if count > DIR_HEADER_MAX_ENTRIES as u64 {
                return Err(Error::Corrupt(
                    "directory header with more than 256 entries",
                ));
            }
            self.remaining = count as u32;
            self.header_block = le32(&header, 4);
            self.header_number = le32(&header, 8);
        }
        let mut fixed = [0u8; DIR_ENTRY_SIZE];
        self.take(archive, cache, &mut fixed)?;
        let name_len = usize::from(le16(&fixed, 6)) + 1;
        if name_len > MAX_NAME {
            return Err(Error::Corrupt("name longer than 256 bytes"));
        }
        let mut name = [0u8; MAX_NAME];
        self.take(archive, cache, &mut name[..name_len])?;
        self.remaining -= 1;
        let name = &name[..name_len];
        if !format::is_valid_name(name) {
            return Err(Error::Corrupt("invalid name in a directory"));
        }
        let previous = &self.previous[..self.previous_len];
        if self.must_equal {
            if name != previous {
                return Err(Error::Corrupt("directory index disagrees with the listing"));
            }
        } else if self.previous_len > 0 && name <= previous {
            return Err(Error::Corrupt("directory entries unsorted or duplicated"));
        }
        let kind = Kind::from_type(le16(&fixed, 4)).ok_or(Error::Corrupt("bad entry type"))?;
        let delta = le16(&fixed, 2) as i16;
        let number = i64::from(self.header_number) + i64::from(delta);
        if number < 1 || number > i64::from(archive.superblock.inode_count) {
            return Err(Error::Corrupt("inode number out of range"));
        }
        let offset = le16(&fixed, 0);
        if usize::from(offset) >= METADATA_SIZE {
            return Err(Error::Corrupt("inode offset past its block"));
        }
        self.name[..name_len].copy_from_slice(name);
        self.name_len = name_len;
        Ok(Some(DirEntry {
            name: &self.name[..name_len],
            reference: format::inode_ref(u64::from(self.header_block), offset),
            kind,
            inode_number: number as u32,
            offset: u64::from(self.consumed) + DIR_SIZE_EXTRA,
        }))
    }
}

impl DirReader {
    /// Where in the listing the header read by the last [`DirReader::next`] started,
    /// if that call read one.
    pub(super) fn header_at(&self) -> Option<u32> {
        self.header_at
    }
}

impl<R: ReadAt> Archive<R> {
    /// A reader over `dir`'s entries, resuming after the entry whose
    /// [`DirEntry::offset`] is `offset`. Offsets 0 to 3 all mean the start; callers
    /// adding `.` and `..` themselves can use 1 and 2 for those.
    pub fn dir_reader(
        &self,
        dir: &Inode,
        offset: u64,
        cache: &mut Cache,
    ) -> Result<DirReader, Error> {
        let mut reader = DirReader::start(self, dir)?;
        if offset <= DIR_SIZE_EXTRA {
            return Ok(reader);
        }
        let target = offset - DIR_SIZE_EXTRA;
        if target > u64::from(reader.listing) {
            return Err(Error::BadOffset);
        }
        if let Some(jump) = self.index_jump(dir, cache, &|index, _| u64::from(index) <= target)? {
            reader.jump(self, dir, &jump);
        }
        while u64::from(reader.consumed) < target {
            if reader.next(self, cache)?.is_none() {
                break;
            }
        }
        if u64::from(reader.consumed) != target {
            return Err(Error::BadOffset);
        }
        Ok(reader)
    }

    /// Call `each` for every entry of `dir` after `offset` (see
    /// [`Archive::dir_reader`]), in order, until it returns `false`.
    pub fn read_dir(
        &self,
        dir: &Inode,
        offset: u64,
        cache: &mut Cache,
        each: &mut dyn FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), Error> {
        let mut reader = self.dir_reader(dir, offset, cache)?;
        while let Some(entry) = reader.next(self, cache)? {
            if !each(entry) {
                break;
            }
        }
        Ok(())
    }

    /// The entry of `dir` called `name`, if any. The directory index of a big
    /// directory is used to start near the name. A name that cannot be in a
    /// directory (empty, `.`, `..`, with `/` or NUL) is simply not found.
    pub fn lookup(
        &self,
        dir: &Inode,
        name: &[u8],
        cache: &mut Cache,
    ) -> Result<Option<Inode>, Error> {
        let mut reader = DirReader::start(self, dir)?;
        if !format::is_valid_name(name) {
            return Ok(None);
        }
        if let Some(jump) = self.index_jump(dir, cache, &|_, index_name| index_name <= name)? {
            reader.jump(self, dir, &jump);
        }
        let (reference, kind, number) = loop {
            let Some(entry) = reader.next(self, cache)? else {
                return Ok(None);
            };
            match entry.name.cmp(name) {
                Ordering::Less => continue,
                Ordering::Greater => return Ok(None),
                Ordering::Equal => break (entry.reference, entry.kind, entry.inode_number),
            }
        };
        let inode = self.inode(reference, cache)?;
        check_child(dir, kind, number, &inode)?;
        Ok(Some(inode))
    }

    /// The inode of an entry `dir` listed, checked against the entry as
    /// [`Archive::lookup`] does.
    pub fn entry_inode(
        &self,
        dir: &Inode,
        entry: &DirEntry<'_>,
        cache: &mut Cache,
    ) -> Result<Inode, Error> {
        let inode = self.inode(entry.reference, cache)?;
        check_child(dir, entry.kind, entry.inode_number, &inode)?;
        Ok(inode)
    }

    /// Read `dir`'s index up to the last entry `accept` takes (both callers accept a
    /// prefix, since the index is sorted).
    fn index_jump(
        &self,
        dir: &Inode,
        cache: &mut Cache,
        accept: &dyn Fn(u32, &[u8]) -> bool,
    ) -> Result<Option<Jump>, Error> {
        let mut cursor = IndexCursor::new(dir)?;
        let mut best = None;
        while let Some(jump) = cursor.next(self, cache)? {
            if !accept(jump.index, jump.name()) {
                break;
            }
            best = Some(*jump);
        }
        Ok(best)
    }
}

/// Reads a directory's index entry by entry, checking that offsets, blocks and names
/// all increase.
#[derive(Debug, Clone)]
pub(super) struct IndexCursor {
    position: MetaPos,
    remaining: u16,
    listing: u32,
    previous: Option<Jump>,
}

impl IndexCursor {
    pub(super) fn new(dir: &Inode) -> Result<IndexCursor, Error> {
        let Layout::Dir {
            listing,
            index_count,
            index,
            ..
        } = dir.layout
        else {
            return Err(Error::NotADirectory);
        };
        Ok(IndexCursor {
            position: index,
            remaining: index_count,
            listing,
            previous: None,
        })
    }

    pub(super) fn next<R: ReadAt>(
        &mut self,
        archive: &Archive<R>,
        cache: &mut Cache,
    ) -> Result<Option<&Jump>, Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let table = archive.inode_table;
        let mut fixed = [0u8; DIR_INDEX_SIZE];
        archive.read_metadata(cache, table, &mut self.position, &mut fixed)?;
        let index = le32(&fixed, 0);
        let start = le32(&fixed, 4);
        let name_size = le32(&fixed, 8);
        if name_size as usize >= MAX_NAME {
            return Err(Error::Corrupt("name longer than 256 bytes"));
        }
        let name_len = name_size as usize + 1;
        let mut name = [0u8; MAX_NAME];
        archive.read_metadata(cache, table, &mut self.position, &mut name[..name_len])?;
        let jump = Jump {
            index,
            start,
            name,
            name_len,
        };
        if !format::is_valid_name(jump.name()) {
            return Err(Error::Corrupt("invalid name in a directory index"));
        }
        if index >= self.listing {
            return Err(Error::Corrupt(
                "directory index past the end of its listing",
            ));
        }
        if let Some(previous) = &self.previous {
            if index <= previous.index || start < previous.start || jump.name() <= previous.name() {
                return Err(Error::Corrupt("directory index out of order"));
            }
        }
        Ok(Some(self.previous.insert(jump)))
    }
}

/// Check that an inode is what its directory entry said, and that a directory found
/// in `dir` names `dir` as its parent: together with the root having no parent, this
/// stops an entry from leading back to the directory itself or to an ancestor.
fn check_child(dir: &Inode, kind: Kind, number: u32, inode: &Inode) -> Result<(), Error> {
    if inode.kind != kind || inode.number != number {
        return Err(Error::Corrupt("directory entry disagrees with its inode"));
    }
    if inode.number == dir.number {
        return Err(Error::Corrupt("directory contains itself"));
    }
    if let Layout::Dir { parent, .. } = inode.layout {
        if parent != dir.number {
            return Err(Error::Corrupt(
                "directory's parent is not the one holding it",
            ));
        }
    }
    Ok(())
}
