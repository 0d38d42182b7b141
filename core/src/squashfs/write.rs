//! The SquashFS 4.0 writer (host only): turns a [`Tree`] and file contents pulled
//! through [`Contents`] into a reproducible image pushed into a [`Sink`].
//!
//! The image has gzip (zlib) blocks, one id (0), every time set to one value, no
//! xattrs and no export table. Identical files are stored once; small files and the
//! tails of large ones are packed into fragment blocks; all-zero blocks are sparse.
//!
//! Layout: superblock, data and fragment blocks, inode table, directory table,
//! fragment table, id table, then zero padding to a multiple of 4096 bytes. The
//! kernel requires each lookup table's index to end exactly where the next table
//! starts (the id index ends at `bytes_used`), so nothing else goes in between.
//!
//! Memory stays bounded by the tree, the metadata and a few blocks in flight: file
//! contents are read one block at a time, and a file is read twice only when its
//! size equals another file's (its hash is needed to find duplicates first).

mod compress;
mod metadata;
mod tree;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};

use self::compress::{Compressor, Encoded, Encoder, Finished, Target};
use self::metadata::{lookup_table, MetadataStream};
pub use self::tree::{
    check_name, DirId, FileId, NameProblem, Tree, TreeError, MAX_SYMLINK_TARGET, MODE_BITS,
};
use self::tree::{Kind, Node};
use super::format::{
    compression, flags, inode_ref, inode_type, split_inode_ref, Superblock, DATA_UNCOMPRESSED,
    DEFAULT_BLOCK_SIZE, DIR_HEADER_MAX_ENTRIES, MAGIC, MAX_BLOCK_SIZE, METADATA_SIZE,
    MIN_BLOCK_SIZE, NO_FRAGMENT, NO_TABLE, NO_XATTR, SUPERBLOCK_SIZE,
};
use super::ReadError;

/// The image is padded with zeros to a multiple of this, as mksquashfs does, so it
/// can sit on a block device.
pub const PAD_TO: u64 = 4096;

/// Where the writer gets file contents from.
pub trait Contents {
    type Error;
    /// Fill all of `buf` with the bytes of `file` starting at `offset`. The writer
    /// never asks for bytes past the size the file was added with; a source that
    /// cannot supply them (a file that shrank) must return an error.
    fn read(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// Where the image goes. Bytes are written front to back; only the 96-byte
/// superblock is written last, at offset 0, once every table's place is known.
pub trait Sink {
    type Error;
    /// Append `bytes`.
    fn write(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
    /// Overwrite bytes already written, starting at `offset`.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// How to write an image. `Options::default()` is what amber's packages use (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Every inode's time and the superblock's (SOURCE_DATE_EPOCH).
    pub mtime: u32,
    /// Data block size: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// zlib level, 0 (store) to 10; 9 matches `mksquashfs -comp gzip`.
    pub level: u8,
    /// Threads compressing data blocks; 0 or 1 compresses on the calling thread. The
    /// image is the same for any value.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mtime: 0,
            block_size: DEFAULT_BLOCK_SIZE,
            level: 9,
            threads: 1,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The bytes the filesystem uses (the superblock's `bytes_used`).
    pub bytes_used: u64,
    /// The bytes written, padding included.
    pub image_size: u64,
    pub inode_count: u32,
    pub fragment_count: u32,
    /// The sum of all regular files' sizes.
    pub file_bytes: u64,
    /// Non-empty files stored as a reference to an identical earlier file.
    pub duplicate_files: u32,
}

/// Why an image could not be written.
#[derive(Debug)]
pub enum WriteError<C, S> {
    /// An option is out of range.
    Options(&'static str),
    /// The contents of a file could not be read.
    Read { file: FileId, error: C },
    /// The sink refused bytes.
    Sink(S),
    /// A table outgrew what the format can address.
    TooLarge(&'static str),
}

impl<C: fmt::Display, S: fmt::Display> fmt::Display for WriteError<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Options(what) => write!(f, "invalid option: {what}"),
            WriteError::Read { file, error } => {
                write!(f, "reading file #{}: {error}", file.index())
            }
            WriteError::Sink(error) => write!(f, "writing the image: {error}"),
            WriteError::TooLarge(what) => write!(f, "image too large: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl<C: fmt::Debug + fmt::Display, S: fmt::Debug + fmt::Display> std::error::Error
    for WriteError<C, S>
{
}

/// File contents held in memory, indexed by [`FileId::index`].
impl<T: AsRef<[u8]>> Contents for [T] {
    type Error = ReadError;

    fn read(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let bytes = self.get(file.index()).ok_or(ReadError)?.as_ref();
        crate::squashfs::ReadAt::read_at(bytes, offset, buf)
    }
}

impl<T: AsRef<[u8]>> Contents for Vec<T> {
    type Error = ReadError;

    fn read(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.as_mut_slice().read(file, offset, buf)
    }
}

/// An image built in memory.
impl Sink for Vec<u8> {
    type Error = core::convert::Infallible;

    fn write(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error> {
        // An in-memory image cannot be larger than the address space.
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(bytes.len());
        if end > self.len() {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(bytes);
        Ok(())
    }
}

/// What the writer's steps return.
type WriteResult<T, C, S> = Result<T, WriteError<C, S>>;

/// Write `tree` as a SquashFS image into `sink`, reading file contents from `contents`.
///
/// The same tree, contents and options always give the same bytes.
pub fn write_image<C: Contents + ?Sized, S: Sink + ?Sized>(
    tree: &Tree,
    options: &Options,
    contents: &mut C,
    sink: &mut S,
) -> WriteResult<Summary, C::Error, S::Error> {
    let block_size = options.block_size;
    if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(WriteError::Options(
            "block size must be a power of two from 4096 to 1048576",
        ));
    }
    if options.level > 10 {
        return Err(WriteError::Options("compression level must be 0 to 10"));
    }

    // The superblock goes last; keep its place.
    sink.write(&[0; SUPERBLOCK_SIZE])
        .map_err(WriteError::Sink)?;
    let data = std::thread::scope(|scope| {
        let mut encoder = Encoder::start(scope, options.threads, options.level);
        let mut data = DataWriter::new(sink, block_size);
        data.write_files(tree, contents, &mut encoder)?;
        data.finish(&mut encoder).map_err(WriteError::Sink)?;
        Ok::<_, WriteError<C::Error, S::Error>>(data.into_layout())
    })?;

    let mut compressor = Compressor::new(options.level);
    let tables =
        Tables::build(tree, &data, options, &mut compressor).map_err(WriteError::TooLarge)?;

    let mut position = data.end;
    let mut put = |bytes: &[u8], position: &mut u64| -> WriteResult<u64, C::Error, S::Error> {
        let at = *position;
        sink.write(bytes).map_err(WriteError::Sink)?;
        *position += bytes.len() as u64;
        Ok(at)
    };
    let inode_table_start = put(&tables.inodes, &mut position)?;
    let directory_table_start = put(&tables.directories, &mut position)?;
    let fragment_table_start = if data.fragments.is_empty() {
        position
    } else {
        let entries: Vec<u8> = data
            .fragments
            .iter()
            .flat_map(|(start, size)| {
                let mut entry = [0u8; 16];
                entry[..8].copy_from_slice(&start.to_le_bytes());
                entry[8..12].copy_from_slice(&size.to_le_bytes());
                entry
            })
            .collect();
        let (bytes, index_start) = lookup_table(&mut compressor, &entries, position);
        put(&bytes, &mut position)?;
        index_start
    };
    // One id, 0, for every uid and gid.
    let (bytes, id_table_start) = lookup_table(&mut compressor, &0u32.to_le_bytes(), position);
    put(&bytes, &mut position)?;
    let bytes_used = position;
    let padding = (PAD_TO - bytes_used % PAD_TO) % PAD_TO;
    put(&vec![0; padding as usize], &mut position)?;

    let fragment_count = u32::try_from(data.fragments.len())
        .map_err(|_| WriteError::TooLarge("more than 2^32 fragments"))?;
    let superblock = Superblock {
        magic: MAGIC,
        inode_count: tables.inode_count,
        modification_time: options.mtime,
        block_size,
        fragment_entry_count: fragment_count,
        compression_id: compression::GZIP,
        block_log: block_size.trailing_zeros() as u16,
        flags: flags::NO_XATTRS | flags::DUPLICATES | flags::ALWAYS_FRAGMENTS,
        id_count: 1,
        version_major: 4,
        version_minor: 0,
        root_inode_ref: tables.root,
        bytes_used,
        id_table_start,
        xattr_id_table_start: NO_TABLE,
        inode_table_start,
        directory_table_start,
        fragment_table_start,
        export_table_start: NO_TABLE,
    };
    sink.write_at(0, &superblock.encode())
        .map_err(WriteError::Sink)?;
    Ok(Summary {
        bytes_used,
        image_size: position,
        inode_count: tables.inode_count,
        fragment_count,
        file_bytes: data.file_bytes,
        duplicate_files: data.duplicate_files,
    })
}

/// Where a file's data went.
#[derive(Debug, Default)]
struct FileRecord {
    /// Where the first block starts; `None` for a file without blocks.
    start: Option<u64>,
    /// The size word of each block (bit 24: stored; 0: sparse).
    blocks: Vec<u32>,
    /// The fragment block and the offset in it holding the tail.
    fragment: Option<(u32, u32)>,
    size: u64,
    /// Bytes saved by sparse blocks.
    sparse: u64,
}

/// The data area once written.
struct DataLayout {
    end: u64,
    records: Vec<FileRecord>,
    /// The record of each file, by [`FileId`].
    file_records: Vec<u32>,
    /// Start and size word of each fragment block.
    fragments: Vec<(u64, u32)>,
    file_bytes: u64,
    duplicate_files: u32,
}

struct DataWriter<'s, S: ?Sized> {
    sink: &'s mut S,
    position: u64,
    block_size: u32,
    records: Vec<FileRecord>,
    file_records: Vec<u32>,
    fragments: Vec<(u64, u32)>,
    fragment_count: u32,
    fragment: Vec<u8>,
    /// Buffers returned by the encoder, reused for the next reads.
    spare: Vec<Vec<u8>>,
    file_bytes: u64,
    duplicate_files: u32,
}

impl<'s, S: Sink + ?Sized> DataWriter<'s, S> {
    fn new(sink: &'s mut S, block_size: u32) -> DataWriter<'s, S> {
        DataWriter {
            sink,
            position: SUPERBLOCK_SIZE as u64,
            block_size,
            records: Vec::new(),
            file_records: Vec::new(),
            fragments: Vec::new(),
            fragment_count: 0,
            fragment: Vec::new(),
            spare: Vec::new(),
            file_bytes: 0,
            duplicate_files: 0,
        }
    }

    fn into_layout(self) -> DataLayout {
        DataLayout {
            end: self.position,
            records: self.records,
            file_records: self.file_records,
            fragments: self.fragments,
            file_bytes: self.file_bytes,
            duplicate_files: self.duplicate_files,
        }
    }

    /// Write a finished block at the current position and note where it went.
    fn commit(&mut self, finished: Finished) -> Result<(), S::Error> {
        let at = self.position;
        let word = match &finished.encoded {
            Encoded::Sparse => 0,
            Encoded::Stored(bytes) => {
                self.sink.write(bytes)?;
                bytes.len() as u32 | DATA_UNCOMPRESSED
            }
            Encoded::Compressed(bytes) => {
                self.sink.write(bytes)?;
                bytes.len() as u32
            }
        };
        self.position += u64::from(word & !DATA_UNCOMPRESSED);
        match finished.target {
            Target::Block { record } => {
                let record = &mut self.records[record as usize];
                record.start.get_or_insert(at);
                record.blocks.push(word);
                if word == 0 {
                    record.sparse += u64::from(self.block_size);
                }
            }
            Target::Fragment { index } => {
                // Blocks commit in submission order, so fragments arrive in index order.
                debug_assert_eq!(index as usize, self.fragments.len());
                self.fragments.push((at, word));
            }
        }
        if let Encoded::Stored(buffer) = finished.encoded {
            self.spare.push(buffer);
        }
        if let Some(buffer) = finished.spare {
            self.spare.push(buffer);
        }
        Ok(())
    }

    fn submit(
        &mut self,
        encoder: &mut Encoder,
        target: Target,
        data: Vec<u8>,
    ) -> Result<(), S::Error> {
        encoder.submit(target, data, &mut |finished| self.commit(finished))
    }

    fn finish(&mut self, encoder: &mut Encoder) -> Result<(), S::Error> {
        self.flush_fragment(encoder)?;
        encoder.finish(&mut |finished| self.commit(finished))
    }

    /// Read `length` bytes of `file` at `offset` into a recycled buffer.
    fn read<C: Contents + ?Sized>(
        &mut self,
        contents: &mut C,
        file: FileId,
        offset: u64,
        length: usize,
    ) -> WriteResult<Vec<u8>, C::Error, S::Error> {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.resize(length, 0);
        contents
            .read(file, offset, &mut buffer)
            .map_err(|error| WriteError::Read { file, error })?;
        Ok(buffer)
    }

    /// Write every file's data, in the order a sorted depth-first walk meets them.
    fn write_files<C: Contents + ?Sized>(
        &mut self,
        tree: &Tree,
        contents: &mut C,
        encoder: &mut Encoder,
    ) -> WriteResult<(), C::Error, S::Error> {
        // Only files sharing a size can be duplicates, so only those are hashed.
        let mut sizes: BTreeMap<u64, u32> = BTreeMap::new();
        for node in &tree.files {
            if let Kind::File { size, .. } = tree.nodes[*node as usize].kind {
                *sizes.entry(size).or_default() += 1;
            }
        }
        let mut seen: BTreeMap<(u64, [u8; 32]), u32> = BTreeMap::new();
        self.file_records = vec![u32::MAX; tree.files.len()];
        let mut empty = None;

        let mut stack = vec![children(&tree.nodes[0]).values()];
        while let Some(walk) = stack.last_mut() {
            let Some(&child) = walk.next() else {
                stack.pop();
                continue;
            };
            let node = &tree.nodes[child as usize];
            match node.kind {
                Kind::Dir { .. } => stack.push(children(node).values()),
                Kind::Symlink { .. } => {}
                Kind::File { id, size } => {
                    self.file_bytes += size;
                    let record = if size == 0 {
                        *empty.get_or_insert_with(|| {
                            self.records.push(FileRecord::default());
                            self.records.len() as u32 - 1
                        })
                    } else {
                        let shared = sizes.get(&size).is_some_and(|count| *count > 1);
                        self.write_file(contents, encoder, id, size, shared, &mut seen)?
                    };
                    self.file_records[id.index()] = record;
                }
            }
        }
        Ok(())
    }

    /// Write one non-empty file, or find the identical file already written. Returns
    /// the index of its record.
    fn write_file<C: Contents + ?Sized>(
        &mut self,
        contents: &mut C,
        encoder: &mut Encoder,
        file: FileId,
        size: u64,
        shared: bool,
        seen: &mut BTreeMap<(u64, [u8; 32]), u32>,
    ) -> WriteResult<u32, C::Error, S::Error> {
        let block_size = u64::from(self.block_size);
        // A file of at most one block is read once and kept for writing.
        let mut first = None;
        let mut key = None;
        if shared {
            let mut hasher = Sha256::new();
            if size <= block_size {
                let bytes = self.read(contents, file, 0, size as usize)?;
                hasher.update(&bytes);
                first = Some(bytes);
            } else {
                let mut offset = 0;
                while offset < size {
                    let length = (size - offset).min(block_size);
                    let bytes = self.read(contents, file, offset, length as usize)?;
                    hasher.update(&bytes);
                    self.spare.push(bytes);
                    offset += length;
                }
            }
            let digest: [u8; 32] = hasher.finalize().into();
            if let Some(record) = seen.get(&(size, digest)) {
                if let Some(bytes) = first {
                    self.spare.push(bytes);
                }
                self.duplicate_files += 1;
                return Ok(*record);
            }
            key = Some((size, digest));
        }

        let record = u32::try_from(self.records.len())
            .map_err(|_| WriteError::TooLarge("more than 2^32 files"))?;
        let full_blocks = size / block_size;
        let tail = size % block_size;
        self.records.push(FileRecord {
            size,
            blocks: Vec::with_capacity(full_blocks as usize),
            ..FileRecord::default()
        });
        for block in 0..full_blocks {
            let bytes = match first.take() {
                Some(bytes) => bytes,
                None => self.read(contents, file, block * block_size, block_size as usize)?,
            };
            self.submit(encoder, Target::Block { record }, bytes)
                .map_err(WriteError::Sink)?;
        }
        if tail > 0 {
            let bytes = match first.take() {
                Some(bytes) => bytes,
                None => self.read(contents, file, full_blocks * block_size, tail as usize)?,
            };
            self.add_tail(encoder, record, &bytes)
                .map_err(WriteError::Sink)?;
            self.spare.push(bytes);
        }
        if let Some(key) = key {
            seen.insert(key, record);
        }
        Ok(record)
    }

    /// Pack a file's tail into the fragment block being filled, starting a new one
    /// when it does not fit.
    fn add_tail(
        &mut self,
        encoder: &mut Encoder,
        record: u32,
        tail: &[u8],
    ) -> Result<(), S::Error> {
        if self.fragment.len() + tail.len() > self.block_size as usize {
            self.flush_fragment(encoder)?;
        }
        self.records[record as usize].fragment =
            Some((self.fragment_count, self.fragment.len() as u32));
        self.fragment.extend_from_slice(tail);
        Ok(())
    }

    fn flush_fragment(&mut self, encoder: &mut Encoder) -> Result<(), S::Error> {
        if self.fragment.is_empty() {
            return Ok(());
        }
        let index = self.fragment_count;
        self.fragment_count += 1;
        let mut next = self.spare.pop().unwrap_or_default();
        next.clear();
        let full = core::mem::replace(&mut self.fragment, next);
        self.submit(encoder, Target::Fragment { index }, full)
    }
}

fn children(node: &Node) -> &BTreeMap<alloc::boxed::Box<[u8]>, u32> {
    static EMPTY: BTreeMap<alloc::boxed::Box<[u8]>, u32> = BTreeMap::new();
    match &node.kind {
        Kind::Dir { children, .. } => children,
        _ => &EMPTY,
    }
}

/// One entry of an extended directory inode's index: where a directory header that
/// starts a new metadata block sits, and the first name under it.
struct IndexEntry<'t> {
    /// Offset of the header from the start of the directory's listing.
    offset: u32,
    /// The metadata block holding the header, relative to the directory table.
    block: u32,
    name: &'t [u8],
}

/// Where a directory's listing went.
struct Listing<'t> {
    block: u32,
    offset: u16,
    /// Listing bytes plus 3, as the format counts them (for `.` and `..`).
    size: u32,
    index: Vec<IndexEntry<'t>>,
}

/// The inode and directory tables.
struct Tables {
    inodes: Vec<u8>,
    directories: Vec<u8>,
    root: u64,
    inode_count: u32,
}

struct TableWriter<'t, 'c> {
    tree: &'t Tree,
    data: &'t DataLayout,
    mtime: u32,
    compressor: &'c mut Compressor,
    inodes: MetadataStream,
    directories: MetadataStream,
    numbers: Vec<u32>,
    references: Vec<u64>,
    listings: Vec<Option<Listing<'t>>>,
}

impl Tables {
    fn build(
        tree: &Tree,
        data: &DataLayout,
        options: &Options,
        compressor: &mut Compressor,
    ) -> Result<Tables, &'static str> {
        // Directories children first: a directory's inode needs its listing, and a
        // listing needs its children's inodes.
        let mut order = Vec::new();
        let mut stack = vec![(0u32, children(&tree.nodes[0]).values())];
        while let Some((dir, walk)) = stack.last_mut() {
            match walk.next() {
                Some(&child) => {
                    let node = &tree.nodes[child as usize];
                    if let Kind::Dir { .. } = node.kind {
                        stack.push((child, children(node).values()));
                    }
                }
                None => {
                    order.push(*dir);
                    stack.pop();
                }
            }
        }

        // Inode numbers follow the order inodes are written in, so the entries of one
        // directory have consecutive numbers; the root comes last.
        let mut numbers = vec![0u32; tree.nodes.len()];
        let mut next = 1u32;
        for dir in &order {
            for child in children(&tree.nodes[*dir as usize]).values() {
                numbers[*child as usize] = next;
                next += 1;
            }
        }
        numbers[0] = next;
        let inode_count = next;

        let mut writer = TableWriter {
            tree,
            data,
            mtime: options.mtime,
            compressor,
            inodes: MetadataStream::new(),
            directories: MetadataStream::new(),
            numbers,
            references: vec![0; tree.nodes.len()],
            listings: (0..tree.nodes.len()).map(|_| None).collect(),
        };
        for dir in &order {
            let parent = writer.numbers[*dir as usize];
            let entries = children(&tree.nodes[*dir as usize]);
            for child in entries.values() {
                writer.write_inode(*child, parent)?;
            }
            let listing = writer.write_listing(entries)?;
            writer.listings[*dir as usize] = Some(listing);
        }
        // The root's parent is one past the last inode, as mksquashfs does.
        let root_parent = inode_count.checked_add(1).ok_or("too many inodes")?;
        writer.write_inode(0, root_parent)?;
        let root = writer.references[0];
        let TableWriter {
            inodes,
            directories,
            compressor,
            ..
        } = writer;
        Ok(Tables {
            inodes: inodes.finish(compressor).0,
            directories: directories.finish(compressor).0,
            root,
            inode_count,
        })
    }
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

impl<'t> TableWriter<'t, '_> {
    fn write_inode(&mut self, node: u32, parent: u32) -> Result<(), &'static str> {
        let tree = self.tree;
        let Node { mode, kind } = &tree.nodes[node as usize];
        let mut out = Vec::with_capacity(64);
        let common = |out: &mut Vec<u8>, kind: u16| {
            put16(out, kind);
            // Permission bits only: the type is the inode type, and Linux 6.18 refuses
            // an inode whose mode carries type bits.
            put16(out, *mode);
            put16(out, 0);
            put16(out, 0);
            put32(out, self.mtime);
            put32(out, self.numbers[node as usize]);
        };
        match kind {
            Kind::Dir { subdirs, .. } => {
                let listing = self.listings[node as usize]
                    .as_ref()
                    .ok_or("directory listing missing")?;
                let nlink = subdirs.checked_add(2).ok_or("too many subdirectories")?;
                match u16::try_from(listing.size) {
                    Ok(size) if listing.index.is_empty() => {
                        common(&mut out, inode_type::DIR);
                        put32(&mut out, listing.block);
                        put32(&mut out, nlink);
                        put16(&mut out, size);
                        put16(&mut out, listing.offset);
                        put32(&mut out, parent);
                    }
                    _ => {
                        common(&mut out, inode_type::EXT_DIR);
                        put32(&mut out, nlink);
                        put32(&mut out, listing.size);
                        put32(&mut out, listing.block);
                        put32(&mut out, parent);
                        put16(&mut out, listing.index.len() as u16);
                        put16(&mut out, listing.offset);
                        put32(&mut out, NO_XATTR);
                        for entry in &listing.index {
                            put32(&mut out, entry.offset);
                            put32(&mut out, entry.block);
                            put32(&mut out, entry.name.len() as u32 - 1);
                            out.extend_from_slice(entry.name);
                        }
                    }
                }
            }
            Kind::File { id, .. } => {
                let record = &self.data.records[self.data.file_records[id.index()] as usize];
                let start = record.start.unwrap_or(0);
                let (fragment, offset) = record.fragment.unwrap_or((NO_FRAGMENT, 0));
                match (u32::try_from(start), u32::try_from(record.size)) {
                    (Ok(start), Ok(size)) if record.sparse == 0 => {
                        common(&mut out, inode_type::FILE);
                        put32(&mut out, start);
                        put32(&mut out, fragment);
                        put32(&mut out, offset);
                        put32(&mut out, size);
                    }
                    _ => {
                        common(&mut out, inode_type::EXT_FILE);
                        put64(&mut out, start);
                        put64(&mut out, record.size);
                        put64(&mut out, record.sparse);
                        put32(&mut out, 1);
                        put32(&mut out, fragment);
                        put32(&mut out, offset);
                        put32(&mut out, NO_XATTR);
                    }
                }
                for word in &record.blocks {
                    put32(&mut out, *word);
                }
            }
            Kind::Symlink { target } => {
                common(&mut out, inode_type::SYMLINK);
                put32(&mut out, 1);
                put32(&mut out, target.len() as u32);
                out.extend_from_slice(target);
            }
        }
        let (block, offset) = self.inodes.position();
        if block >= 1 << 32 {
            return Err("inode table over 4 GiB");
        }
        self.references[node as usize] = inode_ref(block, offset);
        self.inodes.append(self.compressor, &out);
        Ok(())
    }

    /// Write a directory's entries as runs under headers. A new header starts after
    /// 256 entries, when the entries' inodes move to another metadata block, when an
    /// inode number is too far from the header's, and when the listing crosses into a
    /// new metadata block; a header of the last kind gets an index entry, which lets
    /// the kernel's lookup skip straight to the right block of a big directory.
    fn write_listing(
        &mut self,
        entries: &'t BTreeMap<alloc::boxed::Box<[u8]>, u32>,
    ) -> Result<Listing<'t>, &'static str> {
        let metadata = METADATA_SIZE as u64;
        let (block, offset) = self.directories.position();
        let block = u32::try_from(block).map_err(|_| "directory table over 4 GiB")?;
        let listing_start = self.directories.total();
        let mut index = Vec::new();
        let mut indexed_block = listing_start / metadata;

        let mut run: Vec<u8> = Vec::new();
        let mut run_count = 0usize;
        let mut run_base = 0u32;
        let mut run_inode_block = 0u64;
        let mut run_start = listing_start;
        for (name, child) in entries {
            let (inode_block, inode_offset) = split_inode_ref(self.references[*child as usize]);
            let number = self.numbers[*child as usize];
            let delta = i64::from(number) - i64::from(run_base);
            let new_run = run_count == 0
                || run_count == DIR_HEADER_MAX_ENTRIES
                || inode_block != run_inode_block
                || i16::try_from(delta).is_err()
                || (run_start + run.len() as u64) / metadata != run_start / metadata;
            if new_run {
                self.flush_run(&mut run, run_count);
                run_start = self.directories.total();
                if run_start / metadata != indexed_block && index.len() < usize::from(u16::MAX) {
                    index.push(IndexEntry {
                        offset: u32::try_from(run_start - listing_start)
                            .map_err(|_| "directory over 4 GiB")?,
                        block: u32::try_from(self.directories.position().0)
                            .map_err(|_| "directory table over 4 GiB")?,
                        name,
                    });
                    indexed_block = run_start / metadata;
                }
                run_count = 0;
                run_base = number;
                run_inode_block = inode_block;
                put32(&mut run, 0);
                put32(&mut run, inode_block as u32);
                put32(&mut run, number);
            }
            let kind = match self.tree.nodes[*child as usize].kind {
                Kind::Dir { .. } => inode_type::DIR,
                Kind::File { .. } => inode_type::FILE,
                Kind::Symlink { .. } => inode_type::SYMLINK,
            };
            put16(&mut run, inode_offset);
            put16(&mut run, (number.wrapping_sub(run_base)) as u16);
            put16(&mut run, kind);
            put16(&mut run, name.len() as u16 - 1);
            run.extend_from_slice(name);
            run_count += 1;
        }
        self.flush_run(&mut run, run_count);
        let size = u32::try_from(self.directories.total() - listing_start + 3)
            .map_err(|_| "directory over 4 GiB")?;
        Ok(Listing {
            block,
            offset,
            size,
            index,
        })
    }

    /// Fill in the entry count of a run's header and append the run.
    fn flush_run(&mut self, run: &mut Vec<u8>, count: usize) {
        if count == 0 {
            return;
        }
        run[..4].copy_from_slice(&(count as u32 - 1).to_le_bytes());
        self.directories.append(self.compressor, run);
        run.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tree: &Tree, contents: &mut Vec<Vec<u8>>, options: &Options) -> Vec<u8> {
        let mut out = Vec::new();
        write_image(tree, options, contents, &mut out).unwrap();
        out
    }

    fn sample() -> (Tree, Vec<Vec<u8>>) {
        let mut tree = Tree::new();
        let mut contents = Vec::new();
        let root = tree.root();
        let bin = tree.add_dir(root, b"bin", 0o755).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|n| (n * 7 / 13) as u8).collect();
        for (dir, name, bytes) in [
            (bin, &b"busybox"[..], big.clone()),
            (root, b"copy", big),
            (root, b"empty", Vec::new()),
            (root, b"zeros", vec![0; 3 * 4096]),
            (root, b"small", b"hello\n".to_vec()),
        ] {
            let id = tree.add_file(dir, name, 0o644, bytes.len() as u64).unwrap();
            assert_eq!(id.index(), contents.len());
            contents.push(bytes);
        }
        tree.add_symlink(bin, b"sh", b"busybox").unwrap();
        (tree, contents)
    }

    #[test]
    fn superblock_describes_the_image() {
        let (tree, mut contents) = sample();
        let options = Options {
            mtime: 1_700_000_000,
            ..Options::default()
        };
        let bytes = image(&tree, &mut contents, &options);
        assert_eq!(bytes.len() % 4096, 0);
        let superblock = Superblock::decode(bytes[..SUPERBLOCK_SIZE].try_into().unwrap());
        assert_eq!(superblock.magic, MAGIC);
        assert_eq!(superblock.inode_count, 8);
        assert_eq!(superblock.modification_time, 1_700_000_000);
        assert_eq!(superblock.block_size, 131_072);
        assert_eq!(superblock.block_log, 17);
        assert_eq!(superblock.compression_id, compression::GZIP);
        assert_eq!(superblock.id_count, 1);
        assert_eq!(superblock.xattr_id_table_start, NO_TABLE);
        assert_eq!(superblock.export_table_start, NO_TABLE);
        assert_ne!(superblock.flags & flags::NO_XATTRS, 0);
        // The id index is the last thing before bytes_used.
        assert_eq!(superblock.id_table_start + 8, superblock.bytes_used);
        assert!(superblock.inode_table_start < superblock.directory_table_start);
        assert!(superblock.directory_table_start <= superblock.fragment_table_start);
        // The two copies share their blocks: far less than two 300 KB files.
        assert!(bytes.len() < 300_000, "{}", bytes.len());
    }

    #[test]
    fn same_tree_same_bytes_for_any_thread_count() {
        let (tree, mut contents) = sample();
        let one = image(&tree, &mut contents, &Options::default());
        let again = image(&tree, &mut contents, &Options::default());
        let threads = Options {
            threads: 3,
            ..Options::default()
        };
        assert_eq!(one, again);
        assert_eq!(one, image(&tree, &mut contents, &threads));
    }

    #[test]
    fn summary_counts_duplicates_and_bytes() {
        let (tree, mut contents) = sample();
        let mut out = Vec::new();
        let summary = write_image(&tree, &Options::default(), &mut contents, &mut out).unwrap();
        assert_eq!(summary.duplicate_files, 1);
        assert_eq!(summary.file_bytes, 600_000 + 3 * 4096 + 6);
        assert_eq!(summary.image_size, out.len() as u64);
        assert_eq!(summary.inode_count, 8);
        // Both 300 KB files end in the same 37,856-byte tail, stored once, plus the
        // small file: one fragment block.
        assert_eq!(summary.fragment_count, 1);
    }

    #[test]
    fn bad_options_and_short_contents_are_errors() {
        let (tree, mut contents) = sample();
        let mut out = Vec::new();
        let options = Options {
            block_size: 5000,
            ..Options::default()
        };
        assert!(matches!(
            write_image(&tree, &options, &mut contents, &mut out),
            Err(WriteError::Options(_))
        ));
        contents[0].truncate(10);
        let error = write_image(&tree, &Options::default(), &mut contents, &mut out).unwrap_err();
        assert!(matches!(error, WriteError::Read { file, .. } if file.index() == 0));
    }

    #[test]
    fn empty_tree_is_an_image() {
        let tree = Tree::new();
        let bytes = image(&tree, &mut Vec::new(), &Options::default());
        let superblock = Superblock::decode(bytes[..SUPERBLOCK_SIZE].try_into().unwrap());
        assert_eq!(superblock.inode_count, 1);
        assert_eq!(superblock.fragment_entry_count, 0);
        assert_eq!(bytes.len(), 4096);
    }
}
