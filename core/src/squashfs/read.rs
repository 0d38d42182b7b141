//! Reading SquashFS 4.0 images from untrusted bytes, with bounded memory and no panics.
//!
//! [`Archive::open`] checks the superblock and the table layout and keeps only
//! immutable state (the id table and the fragment table's block pointers), so one
//! `&Archive` can serve many threads. Everything that decompresses goes through a
//! [`Cache`] the caller owns and passes as `&mut`: one per thread, or one per image
//! behind a mutex. The cache has fixed limits, so memory stays bounded whatever the
//! image claims.
//!
//! Every offset, length, count and name read from the image is checked before it is
//! used; a malformed image gives [`Error::Corrupt`] with the reason. Nothing here
//! recurses over image data: directories are read by a resumable [`DirReader`], and
//! [`Archive::check`] walks a whole tree with an explicit, bounded stack.

mod cache;
mod check;
mod dir;
mod file;

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

pub use cache::{
    Cache, DEFAULT_DATA_BLOCKS, DEFAULT_METADATA_BLOCKS, MAX_DATA_BLOCKS, MAX_METADATA_BLOCKS,
};
pub use check::{CheckLimits, CheckSummary};
pub use dir::{DirEntry, DirReader};

use super::format::{
    self, compression, flags, inode_type, Superblock, DIR_SIZE_EXTRA, FRAGMENT_ENTRY_SIZE,
    ID_ENTRY_SIZE, INODE_HEADER_SIZE, MAGIC, MAX_BLOCK_SIZE, MAX_SYMLINK, METADATA_SIZE,
    MIN_BLOCK_SIZE, NO_FRAGMENT, NO_TABLE, SUPERBLOCK_SIZE, TABLE_POINTER_SIZE,
};
use super::{ReadAt, ReadError};

/// The longest path [`Archive::lookup_path`] accepts, as Linux's PATH_MAX. It also
/// bounds the depth of a lookup: a path of 4096 bytes has at most 2048 components.
pub const MAX_PATH: usize = 4096;

/// Deflate cannot expand one input byte into more than 1032 output bytes; this bounds
/// how much a table of a given stored size can hold once decompressed.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Why an image could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The source failed to deliver bytes the image layout says are there.
    Io(ReadError),
    /// The first four bytes are not "hsqs".
    BadMagic,
    /// Not SquashFS 4.0.
    UnsupportedVersion { major: u16, minor: u16 },
    /// The image uses a compressor other than gzip; the name is for the message.
    UnsupportedCompressor(&'static str),
    /// The image contradicts the format or itself; the reason says where.
    Corrupt(&'static str),
    /// No entry of that name.
    NotFound,
    /// A path component or the inode asked for is not a directory.
    NotADirectory,
    /// The inode read from is not a regular file.
    NotAFile,
    /// The inode read as a link is not a symlink.
    NotASymlink,
    /// A path with `..`, a NUL, or longer than [`MAX_PATH`].
    InvalidPath,
    /// A `read_dir` offset that no entry of this directory returned.
    BadOffset,
    /// A bound set by the caller (entries, depth, bytes) was reached.
    LimitExceeded(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(_) => f.write_str("cannot read the image"),
            Error::BadMagic => f.write_str("not a SquashFS image (bad magic)"),
            Error::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported SquashFS version {major}.{minor} (need 4.0)")
            }
            Error::UnsupportedCompressor(name) => {
                write!(f, "unsupported SquashFS compressor {name} (need gzip)")
            }
            Error::Corrupt(reason) => write!(f, "corrupt SquashFS image: {reason}"),
            Error::NotFound => f.write_str("no such file or directory"),
            Error::NotADirectory => f.write_str("not a directory"),
            Error::NotAFile => f.write_str("not a regular file"),
            Error::NotASymlink => f.write_str("not a symlink"),
            Error::InvalidPath => f.write_str("invalid path"),
            Error::BadOffset => f.write_str("invalid directory offset"),
            Error::LimitExceeded(what) => write!(f, "limit exceeded: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl From<ReadError> for Error {
    fn from(error: ReadError) -> Error {
        Error::Io(error)
    }
}

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
}

impl Kind {
    /// The kind of an inode type code, basic (1..=7) or extended (8..=14).
    fn from_type(code: u16) -> Option<Kind> {
        let basic = if code > 7 { code.checked_sub(7)? } else { code };
        Some(match basic {
            inode_type::DIR => Kind::Dir,
            inode_type::FILE => Kind::File,
            inode_type::SYMLINK => Kind::Symlink,
            inode_type::BLOCK_DEV => Kind::BlockDevice,
            inode_type::CHAR_DEV => Kind::CharDevice,
            inode_type::FIFO => Kind::Fifo,
            inode_type::SOCKET => Kind::Socket,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this kind, as in `st_mode`.
    pub fn mode_bits(self) -> u32 {
        match self {
            Kind::Dir => 0o040000,
            Kind::File => 0o100000,
            Kind::Symlink => 0o120000,
            Kind::BlockDevice => 0o060000,
            Kind::CharDevice => 0o020000,
            Kind::Fifo => 0o010000,
            Kind::Socket => 0o140000,
        }
    }
}

/// One inode, decoded and checked. Plain data: keep it, copy it, and come back to the
/// same inode later with [`Archive::inode`] and its `reference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inode {
    /// The inode number, 1..=inode_count.
    pub number: u32,
    pub kind: Kind,
    /// Permission bits (`0o7777`); [`Inode::st_mode`] adds the type bits.
    pub mode: u16,
    /// Owner and group, resolved through the id table.
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    pub nlink: u32,
    /// File size, symlink target length, or directory size as stored (listing + 3).
    pub size: u64,
    /// Device number of block and character devices in the kernel's old 32-bit
    /// encoding, 0 for everything else.
    pub rdev: u32,
    /// The 48-bit inode reference: metadata block offset << 16 | offset in block.
    pub reference: u64,
    layout: Layout,
}

impl Inode {
    /// `st_mode`: type bits and permission bits.
    pub fn st_mode(&self) -> u32 {
        self.kind.mode_bits() | u32::from(self.mode)
    }

    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// Where an inode's contents live; private so that only the reader makes inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Dir {
        /// The listing's first metadata block, relative to the directory table.
        start_block: u32,
        start_offset: u16,
        /// Bytes of listing (the stored size minus 3).
        listing: u32,
        parent: u32,
        index_count: u16,
        /// Where the directory index starts, just after the inode.
        index: MetaPos,
    },
    File {
        blocks_start: u64,
        block_count: u64,
        fragment: u32,
        fragment_offset: u32,
        /// Where the block size list starts, just after the inode.
        block_list: MetaPos,
    },
    Symlink {
        target: MetaPos,
    },
    Other,
}

/// A position in a metadata table: the absolute offset of a block's header and an
/// offset in the block's uncompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MetaPos {
    block: u64,
    offset: u16,
}

/// The byte range a chain of metadata blocks must stay in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Table {
    start: u64,
    end: u64,
}

/// A borrowed source reads like the source itself, so an archive can be opened over
/// `&[u8]` or a shared file handle without giving it away.
impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        (**self).read_at(offset, buf)
    }

    fn len(&self) -> u64 {
        (**self).len()
    }
}

/// Gives every archive a distinct identity, so a [`Cache`] used with another archive
/// notices and forgets what it held.
static NEXT_ARCHIVE: AtomicU64 = AtomicU64::new(1);

/// An opened image. Holds only immutable state: share `&Archive` between threads and
/// give each its own [`Cache`].
#[derive(Debug)]
pub struct Archive<R: ReadAt> {
    source: R,
    superblock: Superblock,
    identity: u64,
    ids: Vec<u32>,
    /// Absolute offsets of the fragment table's metadata blocks.
    fragment_blocks: Vec<u64>,
    /// Data blocks and fragments live in `data_start..data_end`.
    data_start: u64,
    data_end: u64,
    inode_table: Table,
    directory_table: Table,
    /// The range the fragment table's metadata blocks must lie in.
    fragment_table: Table,
    /// Upper bounds on the uncompressed size of the inode and directory tables.
    inode_capacity: u64,
    directory_capacity: u64,
}

impl<R: ReadAt> Archive<R> {
    /// Check the superblock and the table layout, load the id table and the fragment
    /// table's block pointers, and check the root inode.
    pub fn open(source: R) -> Result<Archive<R>, Error> {
        let mut bytes = [0u8; SUPERBLOCK_SIZE];
        if source.len() < SUPERBLOCK_SIZE as u64 {
            if source.len() >= 4 {
                source.read_at(0, &mut bytes[..4])?;
                if bytes[..4] != MAGIC.to_le_bytes() {
                    return Err(Error::BadMagic);
                }
            }
            return Err(Error::Corrupt("image shorter than its superblock"));
        }
        source.read_at(0, &mut bytes)?;
        let superblock = Superblock::decode(&bytes);
        check_superblock(&superblock, source.len())?;

        let mut archive = Archive {
            source,
            superblock,
            identity: NEXT_ARCHIVE.fetch_add(1, Ordering::Relaxed),
            ids: Vec::new(),
            fragment_blocks: Vec::new(),
            data_start: SUPERBLOCK_SIZE as u64,
            data_end: superblock.inode_table_start,
            inode_table: Table {
                start: superblock.inode_table_start,
                end: superblock.directory_table_start,
            },
            directory_table: Table {
                start: superblock.directory_table_start,
                end: superblock.directory_table_start,
            },
            fragment_table: Table {
                start: superblock.directory_table_start,
                end: superblock.directory_table_start,
            },
            inode_capacity: 0,
            directory_capacity: 0,
        };
        let mut cache = Cache::with_limits(1, 1);
        archive.load_layout(&mut cache)?;
        let root = archive.root(&mut cache)?;
        if let Layout::Dir { parent, .. } = root.layout {
            // A root whose parent is an inode of this image would let a directory
            // entry lead back above the root.
            if parent != 0 && parent <= superblock.inode_count {
                return Err(Error::Corrupt("root directory has a parent"));
            }
        }
        Ok(archive)
    }

    /// The superblock as stored.
    pub fn superblock(&self) -> &Superblock {
        &self.superblock
    }

    /// The data block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.superblock.block_size
    }

    /// The number of inodes; inode numbers run from 1 to this.
    pub fn inode_count(&self) -> u32 {
        self.superblock.inode_count
    }

    /// The source the archive reads from.
    pub fn source(&self) -> &R {
        &self.source
    }

    /// The root directory.
    pub fn root(&self, cache: &mut Cache) -> Result<Inode, Error> {
        let root = self.inode(self.superblock.root_inode_ref, cache)?;
        if root.kind != Kind::Dir {
            return Err(Error::Corrupt("root inode is not a directory"));
        }
        Ok(root)
    }

    /// Find the compressor options, the id table, the fragment table and the end of
    /// the directory table, checking that every table lies where the others do not.
    fn load_layout(&mut self, cache: &mut Cache) -> Result<(), Error> {
        let superblock = self.superblock;
        let used = superblock.bytes_used;
        let directory_start = superblock.directory_table_start;

        if superblock.flags & flags::COMPRESSOR_OPTIONS != 0 {
            self.data_start = self.read_compressor_options(cache)?;
        }
        if superblock.inode_table_start < self.data_start {
            return Err(Error::Corrupt("inode table overlaps the superblock"));
        }

        // The id table: its metadata blocks sit between the directory table and the
        // pointers the superblock points at.
        let id_count = u64::from(superblock.id_count);
        let id_blocks = self.table_pointers(
            superblock.id_table_start,
            id_count,
            ID_ENTRY_SIZE,
            "id table pointers out of range",
        )?;
        let id_table = Table {
            start: directory_start,
            end: superblock.id_table_start,
        };
        let mut ids = Vec::with_capacity(usize::from(superblock.id_count));
        let mut entry = [0u8; ID_ENTRY_SIZE as usize];
        for index in 0..id_count {
            let position = self.table_entry(&id_blocks, index, ID_ENTRY_SIZE);
            self.read_metadata(cache, id_table, &mut { position }, &mut entry)?;
            ids.push(u32::from_le_bytes(entry));
        }
        self.ids = ids;
        let mut directory_end = id_table.end.min(id_blocks[0]);

        // The fragment table: only its block pointers are kept; entries are read
        // through the cache when a file's tail is read.
        let fragment_count = u64::from(superblock.fragment_entry_count);
        if fragment_count > 0 {
            let blocks = self.table_pointers(
                superblock.fragment_table_start,
                fragment_count,
                FRAGMENT_ENTRY_SIZE,
                "fragment table pointers out of range",
            )?;
            self.fragment_table = Table {
                start: directory_start,
                end: superblock.fragment_table_start,
            };
            directory_end = directory_end
                .min(blocks[0])
                .min(superblock.fragment_table_start);
            self.fragment_blocks = blocks;
        }

        // The export and xattr tables are not read, but their metadata blocks also
        // come after the directory table and so bound it.
        if superblock.export_table_start != NO_TABLE {
            let start = superblock.export_table_start;
            directory_end = directory_end.min(start);
            if let Some(first) = self.read_u64_within(start, used)? {
                directory_end = directory_end.min(first);
            }
        }
        if superblock.xattr_id_table_start != NO_TABLE {
            let start = superblock.xattr_id_table_start;
            directory_end = directory_end.min(start);
            if let Some(first) = self.read_u64_within(start, used)? {
                directory_end = directory_end.min(first);
            }
        }
        if directory_end < directory_start {
            return Err(Error::Corrupt("a table starts before the directory table"));
        }
        self.directory_table.end = directory_end;
        self.inode_capacity = self.table_capacity(self.inode_table)?;
        self.directory_capacity = self.table_capacity(self.directory_table)?;
        Ok(())
    }

    /// Check the gzip options block after the superblock; returns where data starts.
    fn read_compressor_options(&self, cache: &mut Cache) -> Result<u64, Error> {
        let table = Table {
            start: SUPERBLOCK_SIZE as u64,
            end: self.superblock.inode_table_start,
        };
        let slot = self.metadata_block(cache, table, SUPERBLOCK_SIZE as u64)?;
        let (options, next) = cache.metadata_contents(slot);
        // gzip options: compression level u32, window size u16, strategies u16.
        let [l0, l1, l2, l3, w0, w1, _, _] = *options else {
            return Err(Error::Corrupt("gzip options are not 8 bytes"));
        };
        let level = u32::from_le_bytes([l0, l1, l2, l3]);
        let window = u16::from_le_bytes([w0, w1]);
        if !(1..=9).contains(&level) || !(8..=15).contains(&window) {
            return Err(Error::Corrupt("gzip options out of range"));
        }
        Ok(next)
    }

    /// Read and check the pointers of a lookup table with `count` entries whose index
    /// starts at `start`. Each pointer must lie after the directory table's start and
    /// before the index itself.
    fn table_pointers(
        &self,
        start: u64,
        count: u64,
        entry_size: u64,
        what: &'static str,
    ) -> Result<Vec<u64>, Error> {
        let blocks = format::lookup_table_blocks(count, entry_size);
        let index_bytes = blocks
            .checked_mul(TABLE_POINTER_SIZE)
            .ok_or(Error::Corrupt(what))?;
        let index_end = start.checked_add(index_bytes).ok_or(Error::Corrupt(what))?;
        if blocks == 0
            || start < self.superblock.directory_table_start
            || index_end > self.superblock.bytes_used
        {
            return Err(Error::Corrupt(what));
        }
        // The index lies inside the image, so this allocation is bounded by its size.
        let mut pointers = Vec::with_capacity(blocks as usize);
        let mut bytes = [0u8; TABLE_POINTER_SIZE as usize];
        for block in 0..blocks {
            self.source
                .read_at(start + block * TABLE_POINTER_SIZE, &mut bytes)?;
            let pointer = u64::from_le_bytes(bytes);
            let in_order = pointers.last().is_none_or(|&previous| pointer > previous);
            if pointer < self.superblock.directory_table_start || pointer >= start || !in_order {
                return Err(Error::Corrupt(what));
            }
            pointers.push(pointer);
        }
        Ok(pointers)
    }

    /// Where entry `index` of a lookup table is. Entries never straddle a block since
    /// 8192 is a multiple of every entry size.
    fn table_entry(&self, blocks: &[u64], index: u64, entry_size: u64) -> MetaPos {
        let byte = index * entry_size;
        let per_block = METADATA_SIZE as u64;
        MetaPos {
            block: blocks
                .get((byte / per_block) as usize)
                .copied()
                .unwrap_or(u64::MAX),
            offset: (byte % per_block) as u16,
        }
    }

    /// Read a u64 at `at` if it lies within `end`.
    fn read_u64_within(&self, at: u64, end: u64) -> Result<Option<u64>, Error> {
        match at.checked_add(8) {
            Some(stop) if stop <= end => {
                let mut bytes = [0u8; 8];
                self.source.read_at(at, &mut bytes)?;
                Ok(Some(u64::from_le_bytes(bytes)))
            }
            _ => Ok(None),
        }
    }

    /// Follow the chain of metadata block headers of a table from start to end, and
    /// return an upper bound on its uncompressed size. The chain must end exactly at
    /// the table's end.
    fn table_capacity(&self, table: Table) -> Result<u64, Error> {
        let mut position = table.start;
        let mut capacity = 0u64;
        while position < table.end {
            let (stored, compressed) = self.metadata_header(table, position)?;
            let stored = u64::from(stored);
            capacity += if compressed {
                (stored * MAX_DEFLATE_RATIO).min(METADATA_SIZE as u64)
            } else {
                stored
            };
            position += 2 + stored;
        }
        Ok(capacity)
    }

    /// Read and check the header of the metadata block at `position`:
    /// (stored size, compressed). The whole block must fit in the table.
    fn metadata_header(&self, table: Table, position: u64) -> Result<(u16, bool), Error> {
        if position < table.start || position.saturating_add(2) > table.end {
            return Err(Error::Corrupt("metadata block outside its table"));
        }
        let mut header = [0u8; 2];
        self.source.read_at(position, &mut header)?;
        let (stored, compressed) = format::metadata_header(u16::from_le_bytes(header));
        if stored == 0 || usize::from(stored) > METADATA_SIZE {
            return Err(Error::Corrupt("metadata block size out of range"));
        }
        if position + 2 + u64::from(stored) > table.end {
            return Err(Error::Corrupt("metadata block outside its table"));
        }
        Ok((stored, compressed))
    }

    /// Decode the inode at `reference` (from a directory entry or an earlier
    /// [`Inode::reference`]).
    pub fn inode(&self, reference: u64, cache: &mut Cache) -> Result<Inode, Error> {
        if reference >> 48 != 0 {
            return Err(Error::Corrupt("inode reference wider than 48 bits"));
        }
        let (block, offset) = format::split_inode_ref(reference);
        let block = self.inode_table.start + block;
        if usize::from(offset) >= METADATA_SIZE || block >= self.inode_table.end {
            return Err(Error::Corrupt("inode reference outside the inode table"));
        }
        let mut position = MetaPos { block, offset };
        let table = self.inode_table;
        let mut header = [0u8; INODE_HEADER_SIZE];
        self.read_metadata(cache, table, &mut position, &mut header)?;
        let code = le16(&header, 0);
        let kind = Kind::from_type(code).ok_or(Error::Corrupt("unknown inode type"))?;
        let extended = code > 7;
        let number = le32(&header, 12);
        if number == 0 || number > self.superblock.inode_count {
            return Err(Error::Corrupt("inode number out of range"));
        }
        let id = |index: u16| {
            self.ids
                .get(usize::from(index))
                .copied()
                .ok_or(Error::Corrupt("uid or gid index past the id table"))
        };
        let mut inode = Inode {
            number,
            kind,
            mode: le16(&header, 2) & 0o7777,
            uid: id(le16(&header, 4))?,
            gid: id(le16(&header, 6))?,
            mtime: le32(&header, 8),
            nlink: 1,
            size: 0,
            rdev: 0,
            reference,
            layout: Layout::Other,
        };
        match (kind, extended) {
            (Kind::Dir, false) => {
                let mut body = [0u8; 16];
                self.read_metadata(cache, table, &mut position, &mut body)?;
                inode.nlink = le32(&body, 4);
                inode.size = u64::from(le16(&body, 8));
                inode.layout = self.dir_layout(
                    le32(&body, 0),
                    le16(&body, 10),
                    inode.size,
                    le32(&body, 12),
                    0,
                    position,
                )?;
            }
            (Kind::Dir, true) => {
                let mut body = [0u8; 24];
                self.read_metadata(cache, table, &mut position, &mut body)?;
                inode.nlink = le32(&body, 0);
                inode.size = u64::from(le32(&body, 4));
                inode.layout = self.dir_layout(
                    le32(&body, 8),
                    le16(&body, 18),
                    inode.size,
                    le32(&body, 12),
                    le16(&body, 16),
                    position,
                )?;
            }
            (Kind::File, false) => {
                let mut body = [0u8; 16];
                self.read_metadata(cache, table, &mut position, &mut body)?;
                inode.size = u64::from(le32(&body, 12));
                inode.layout = self.file_layout(
                    u64::from(le32(&body, 0)),
                    inode.size,
                    le32(&body, 4),
                    le32(&body, 8),
                    position,
                )?;
            }
            (Kind::File, true) => {
                let mut body = [0u8; 40];
                self.read_metadata(cache, table, &mut position, &mut body)?;
                inode.size = le64(&body, 8);
                inode.nlink = le32(&body, 24);
                inode.layout = self.file_layout(
                    le64(&body, 0),
                    inode.size,
                    le32(&body, 28),
                    le32(&body, 32),
                    position,
                )?;
            }
            (Kind::Symlink, _) => {
                let mut body = [0u8; 8];
                self.read_metadata(cache, table, &mut position, &mut body)?;
                inode.nlink = le32(&body, 0);
                let length = le32(&body, 4) as usize;
                if length == 0 || length > MAX_SYMLINK {
                    return Err(Error::Corrupt("symlink target length out of range"));
                }
                inode.size = length as u64;
                inode.layout = Layout::Symlink { target: position };
            }
            (Kind::BlockDevice | Kind::CharDevice, _) => {
                let mut body = [0u8; 8];
                self.read_metadata(cache, table, &mut position, &mut body)?;
                inode.nlink = le32(&body, 0);
                inode.rdev = le32(&body, 4);
            }
            (Kind::Fifo | Kind::Socket, _) => {
                let mut body = [0u8; 4];
                self.read_metadata(cache, table, &mut position, &mut body)?;
                inode.nlink = le32(&body, 0);
            }
        }
        Ok(inode)
    }

    /// Check a directory inode's fields against the directory table.
    fn dir_layout(
        &self,
        start_block: u32,
        start_offset: u16,
        size: u64,
        parent: u32,
        index_count: u16,
        index: MetaPos,
    ) -> Result<Layout, Error> {
        let listing = size
            .checked_sub(DIR_SIZE_EXTRA)
            .ok_or(Error::Corrupt("directory size below 3"))?;
        if listing > self.directory_capacity {
            return Err(Error::Corrupt("directory larger than the directory table"));
        }
        if listing > 0
            && (usize::from(start_offset) >= METADATA_SIZE
                || self.directory_table.start + u64::from(start_block) >= self.directory_table.end)
        {
            return Err(Error::Corrupt(
                "directory listing outside the directory table",
            ));
        }
        // Every index entry names a distinct header, and a header with its first
        // entry takes at least 21 bytes.
        let smallest_header = (format::DIR_HEADER_SIZE + format::DIR_ENTRY_SIZE + 1) as u64;
        if u64::from(index_count) > listing / smallest_header {
            return Err(Error::Corrupt("directory index larger than its listing"));
        }
        Ok(Layout::Dir {
            start_block,
            start_offset,
            listing: listing as u32,
            parent,
            index_count,
            index,
        })
    }

    /// Check a file inode's fields: the fragment exists and the block list can fit in
    /// the inode table, so a size cannot promise more than the image holds.
    fn file_layout(
        &self,
        blocks_start: u64,
        size: u64,
        fragment: u32,
        fragment_offset: u32,
        block_list: MetaPos,
    ) -> Result<Layout, Error> {
        let block_size = u64::from(self.superblock.block_size);
        let block_count = if fragment == NO_FRAGMENT {
            size.div_ceil(block_size)
        } else {
            if fragment >= self.superblock.fragment_entry_count {
                return Err(Error::Corrupt("fragment index out of range"));
            }
            let tail = size % block_size;
            if u64::from(fragment_offset) + tail > block_size {
                return Err(Error::Corrupt("fragment tail past the block size"));
            }
            size / block_size
        };
        if block_count.saturating_mul(4) > self.inode_capacity {
            return Err(Error::Corrupt("file larger than its image can describe"));
        }
        // Where the blocks start is checked block by block when they are read: a file
        // whose blocks are all sparse may give any start.
        Ok(Layout::File {
            blocks_start,
            block_count,
            fragment,
            fragment_offset,
            block_list,
        })
    }

    /// The target of a symlink.
    pub fn read_link(&self, link: &Inode, cache: &mut Cache) -> Result<Vec<u8>, Error> {
        let Layout::Symlink { target } = link.layout else {
            return Err(Error::NotASymlink);
        };
        // The length was checked against MAX_SYMLINK when the inode was decoded.
        let mut bytes = alloc::vec![0u8; link.size as usize];
        self.read_metadata(cache, self.inode_table, &mut { target }, &mut bytes)?;
        if bytes.contains(&0) {
            return Err(Error::Corrupt("symlink target contains NUL"));
        }
        Ok(bytes)
    }

    /// Resolve a path from the root, one component at a time. Empty components and
    /// `.` are skipped; `..` is refused, and symlinks are not followed (a symlink in
    /// the middle gives [`Error::NotADirectory`]).
    pub fn lookup_path(&self, path: &str, cache: &mut Cache) -> Result<Inode, Error> {
        if path.len() > MAX_PATH || path.contains('\0') {
            return Err(Error::InvalidPath);
        }
        let mut current = self.root(cache)?;
        for component in path.split('/') {
            match component {
                "" | "." => continue,
                ".." => return Err(Error::InvalidPath),
                name => {
                    if current.kind != Kind::Dir {
                        return Err(Error::NotADirectory);
                    }
                    current = self
                        .lookup(&current, name.as_bytes(), cache)?
                        .ok_or(Error::NotFound)?;
                }
            }
        }
        Ok(current)
    }
}

/// Check the superblock fields that need nothing else from the image.
fn check_superblock(superblock: &Superblock, source_len: u64) -> Result<(), Error> {
    if superblock.magic != MAGIC {
        return Err(Error::BadMagic);
    }
    if (superblock.version_major, superblock.version_minor) != (4, 0) {
        return Err(Error::UnsupportedVersion {
            major: superblock.version_major,
            minor: superblock.version_minor,
        });
    }
    if superblock.compression_id != compression::GZIP {
        return Err(Error::UnsupportedCompressor(compression::name(
            superblock.compression_id,
        )));
    }
    let block_size = superblock.block_size;
    if !block_size.is_power_of_two()
        || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        || u32::from(superblock.block_log) != block_size.trailing_zeros()
    {
        return Err(Error::Corrupt("bad block size"));
    }
    if superblock.bytes_used > source_len || superblock.bytes_used < SUPERBLOCK_SIZE as u64 {
        return Err(Error::Corrupt("image larger than its source"));
    }
    if superblock.inode_count == 0 {
        return Err(Error::Corrupt("no inodes"));
    }
    if superblock.id_count == 0 {
        return Err(Error::Corrupt("empty id table"));
    }
    if superblock.inode_table_start >= superblock.directory_table_start
        || superblock.directory_table_start > superblock.bytes_used
    {
        return Err(Error::Corrupt("inode and directory tables out of order"));
    }
    for start in [
        superblock.export_table_start,
        superblock.xattr_id_table_start,
    ] {
        if start != NO_TABLE
            && (start < superblock.directory_table_start || start > superblock.bytes_used)
        {
            return Err(Error::Corrupt("table outside the image"));
        }
    }
    Ok(())
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | (u64::from(le32(bytes, at + 4)) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use miniz_oxide::deflate::compress_to_vec_zlib;

    /// An archive over `bytes` whose inode table is `table`, built by hand so the
    /// metadata code can be tested without a whole image.
    fn archive_over(bytes: Vec<u8>, table: Table) -> Archive<Vec<u8>> {
        Archive {
            source: bytes,
            superblock: Superblock {
                block_size: 4096,
                inode_count: 10,
                ..Superblock::default()
            },
            identity: NEXT_ARCHIVE.fetch_add(1, Ordering::Relaxed),
            ids: vec![0],
            fragment_blocks: Vec::new(),
            data_start: 0,
            data_end: 0,
            inode_table: table,
            directory_table: table,
            fragment_table: table,
            inode_capacity: 0,
            directory_capacity: 0,
        }
    }

    fn raw_block(contents: &[u8]) -> Vec<u8> {
        let mut block = (contents.len() as u16 | format::METADATA_UNCOMPRESSED)
            .to_le_bytes()
            .to_vec();
        block.extend_from_slice(contents);
        block
    }

    fn compressed_block(contents: &[u8]) -> Vec<u8> {
        let packed = compress_to_vec_zlib(contents, 6);
        let mut block = (packed.len() as u16).to_le_bytes().to_vec();
        block.extend_from_slice(&packed);
        block
    }

    /// Two blocks, raw then compressed, 8192 + 100 bytes of a counting pattern.
    fn two_blocks() -> (Vec<u8>, Vec<u8>, Table) {
        let pattern: Vec<u8> = (0..8292u32).map(|i| (i % 251) as u8).collect();
        let mut bytes = vec![0xAA; 10];
        bytes.extend(raw_block(&pattern[..8192]));
        bytes.extend(compressed_block(&pattern[8192..]));
        let end = bytes.len() as u64;
        bytes.extend([0xBB; 5]);
        (bytes, pattern, Table { start: 10, end })
    }

    #[test]
    fn metadata_reads_cross_blocks() {
        let (bytes, pattern, table) = two_blocks();
        let archive = archive_over(bytes, table);
        let mut cache = Cache::with_limits(1, 1);
        for (offset, len) in [(0, 10), (8180, 30), (8190, 2), (8191, 101), (0, 8292)] {
            let mut position = MetaPos { block: 10, offset };
            let mut out = vec![0; len];
            archive
                .read_metadata(&mut cache, table, &mut position, &mut out)
                .unwrap();
            let start = usize::from(offset);
            assert_eq!(out, pattern[start..start + len], "{offset} {len}");
        }
        // The end of the table is the end of the stream.
        let mut position = MetaPos {
            block: 10,
            offset: 8191,
        };
        let mut out = [0; 102];
        assert_eq!(
            archive.read_metadata(&mut cache, table, &mut position, &mut out),
            Err(Error::Corrupt("metadata block outside its table"))
        );
        // An offset past a block's contents.
        let second = 10 + 2 + 8192;
        let mut position = MetaPos {
            block: second,
            offset: 101,
        };
        assert_eq!(
            archive.read_metadata(&mut cache, table, &mut position, &mut out[..1]),
            Err(Error::Corrupt("metadata offset past the end of its block"))
        );
        // A block asked for through a table it is not in, cached or not.
        let other = Table {
            start: 10,
            end: second,
        };
        assert_eq!(
            archive.metadata_block(&mut cache, other, second),
            Err(Error::Corrupt("metadata block outside its table"))
        );
        archive.metadata_block(&mut cache, table, 10).unwrap();
        let before = Table {
            start: 11,
            end: table.end,
        };
        assert_eq!(
            archive.metadata_block(&mut cache, before, 10),
            Err(Error::Corrupt("metadata block outside its table"))
        );
        assert_eq!(archive.table_capacity(table), Ok(8192 + 8192));
    }

    #[test]
    fn metadata_headers_are_checked() {
        let (clean, _, table) = two_blocks();
        for (header, reason) in [
            (0x8000u16, "metadata block size out of range"),
            (0x0000, "metadata block size out of range"),
            (0x8000 | 8193, "metadata block size out of range"),
            (0x7FFF, "metadata block size out of range"),
            (0x8000 | 8000, "bad compressed data"),
        ] {
            let mut bytes = clean.clone();
            let second = 10 + 2 + 8192;
            bytes[second..second + 2].copy_from_slice(&header.to_le_bytes());
            let archive = archive_over(bytes, table);
            let mut cache = Cache::new();
            let mut position = MetaPos {
                block: 10,
                offset: 8190,
            };
            let mut out = [0; 4];
            let result = archive.read_metadata(&mut cache, table, &mut position, &mut out);
            if header == 0x8000 | 8000 {
                // A raw block of 8000 bytes runs past the table's end.
                assert_eq!(
                    result,
                    Err(Error::Corrupt("metadata block outside its table"))
                );
            } else {
                assert_eq!(result, Err(Error::Corrupt(reason)), "{header:#x}");
            }
        }
        // A compressed block that inflates to nothing is refused.
        let mut bytes = vec![0; 10];
        bytes.extend(compressed_block(&[]));
        let table = Table {
            start: 10,
            end: bytes.len() as u64,
        };
        let archive = archive_over(bytes, table);
        assert_eq!(
            archive.metadata_block(&mut Cache::new(), table, 10),
            Err(Error::Corrupt("empty metadata block"))
        );
    }

    #[test]
    fn superblocks_are_checked() {
        let good = Superblock {
            magic: MAGIC,
            inode_count: 1,
            block_size: 131072,
            block_log: 17,
            compression_id: compression::GZIP,
            id_count: 1,
            version_major: 4,
            bytes_used: 1000,
            inode_table_start: 96,
            directory_table_start: 200,
            id_table_start: 300,
            xattr_id_table_start: NO_TABLE,
            export_table_start: NO_TABLE,
            fragment_table_start: NO_TABLE,
            ..Superblock::default()
        };
        assert_eq!(check_superblock(&good, 1000), Ok(()));
        type Change = fn(&mut Superblock);
        let cases: [(Change, Error); 10] = [
            (|s| s.magic = 0, Error::BadMagic),
            (
                |s| s.version_minor = 1,
                Error::UnsupportedVersion { major: 4, minor: 1 },
            ),
            (
                |s| s.compression_id = compression::ZSTD,
                Error::UnsupportedCompressor("zstd"),
            ),
            (|s| s.block_size = 3 << 15, Error::Corrupt("bad block size")),
            (|s| s.block_log = 16, Error::Corrupt("bad block size")),
            (
                |s| {
                    s.block_size = 2048;
                    s.block_log = 11;
                },
                Error::Corrupt("bad block size"),
            ),
            (
                |s| s.bytes_used = 1001,
                Error::Corrupt("image larger than its source"),
            ),
            (|s| s.inode_count = 0, Error::Corrupt("no inodes")),
            (
                |s| s.directory_table_start = 96,
                Error::Corrupt("inode and directory tables out of order"),
            ),
            (
                |s| s.export_table_start = 100,
                Error::Corrupt("table outside the image"),
            ),
        ];
        for (change, error) in cases {
            let mut superblock = good;
            change(&mut superblock);
            assert_eq!(check_superblock(&superblock, 1000), Err(error));
        }
    }

    #[test]
    fn archives_are_shared_and_caches_move_between_threads() {
        fn shared<T: Send + Sync>() {}
        fn moved<T: Send>() {}
        shared::<Archive<Vec<u8>>>();
        shared::<Archive<&[u8]>>();
        shared::<Inode>();
        moved::<Cache>();
        moved::<DirReader>();
    }

    #[test]
    fn kinds_come_from_basic_and_extended_types() {
        assert_eq!(Kind::from_type(inode_type::DIR), Some(Kind::Dir));
        assert_eq!(Kind::from_type(inode_type::EXT_DIR), Some(Kind::Dir));
        assert_eq!(Kind::from_type(inode_type::EXT_SOCKET), Some(Kind::Socket));
        for code in [0, 15, 0xFFFF] {
            assert_eq!(Kind::from_type(code), None);
        }
        assert_eq!(Kind::Dir.mode_bits() | 0o755, 0o40755);
    }

    #[test]
    fn short_sources_are_refused() {
        assert_eq!(
            Archive::open(&b""[..]).err(),
            Some(Error::Corrupt("image shorter than its superblock"))
        );
        assert_eq!(
            Archive::open(&b"hsqs and a bit"[..]).err(),
            Some(Error::Corrupt("image shorter than its superblock"))
        );
        assert_eq!(Archive::open(&[0u8; 50][..]).err(), Some(Error::BadMagic));
        assert_eq!(Archive::open(&[0u8; 500][..]).err(), Some(Error::BadMagic));
    }
}
