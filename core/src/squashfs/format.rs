//! On-disk constants and the superblock of SquashFS 4.0, shared by the reader and the writer.
//!
//! All integers on disk are little endian. The layout follows the kernel's
//! `fs/squashfs/squashfs_fs.h`.

/// "hsqs" read as a little-endian u32.
pub const MAGIC: u32 = 0x7371_7368;
/// The superblock is always the first 96 bytes of the image.
pub const SUPERBLOCK_SIZE: usize = 96;
/// Metadata (inode, directory, table) blocks hold at most this many bytes uncompressed.
pub const METADATA_SIZE: usize = 8192;
/// Bit 15 of a metadata block header: the block is stored uncompressed.
pub const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Bit 24 of a data block size word: the block is stored uncompressed.
pub const DATA_UNCOMPRESSED: u32 = 1 << 24;
/// A file's fragment index when its tail is not in a fragment.
pub const NO_FRAGMENT: u32 = 0xFFFF_FFFF;
/// An inode's xattr index when it has none.
pub const NO_XATTR: u32 = 0xFFFF_FFFF;
/// A table start when the table is absent.
pub const NO_TABLE: u64 = 0xFFFF_FFFF_FFFF_FFFF;
/// The block size amber writes (DESIGN §3).
pub const DEFAULT_BLOCK_SIZE: u32 = 128 * 1024;
/// The smallest and largest block sizes the format allows.
pub const MIN_BLOCK_SIZE: u32 = 4096;
pub const MAX_BLOCK_SIZE: u32 = 1024 * 1024;
/// The longest name a directory entry may hold.
pub const MAX_NAME: usize = 256;
/// Directory headers group at most this many entries.
pub const DIR_HEADER_MAX_ENTRIES: usize = 256;

/// Compressor ids in the superblock.
pub mod compression {
    pub const GZIP: u16 = 1;
    pub const LZMA: u16 = 2;
    pub const LZO: u16 = 3;
    pub const XZ: u16 = 4;
    pub const LZ4: u16 = 5;
    pub const ZSTD: u16 = 6;

    /// The name of a compressor id, for error messages.
    pub fn name(id: u16) -> &'static str {
        match id {
            GZIP => "gzip",
            LZMA => "lzma",
            LZO => "lzo",
            XZ => "xz",
            LZ4 => "lz4",
            ZSTD => "zstd",
            _ => "unknown",
        }
    }
}

/// Superblock flags.
pub mod flags {
    pub const UNCOMPRESSED_INODES: u16 = 0x0001;
    pub const UNCOMPRESSED_DATA: u16 = 0x0002;
    pub const CHECK: u16 = 0x0004;
    pub const UNCOMPRESSED_FRAGMENTS: u16 = 0x0008;
    pub const NO_FRAGMENTS: u16 = 0x0010;
    pub const ALWAYS_FRAGMENTS: u16 = 0x0020;
    pub const DUPLICATES: u16 = 0x0040;
    pub const EXPORTABLE: u16 = 0x0080;
    pub const UNCOMPRESSED_XATTRS: u16 = 0x0100;
    pub const NO_XATTRS: u16 = 0x0200;
    pub const COMPRESSOR_OPTIONS: u16 = 0x0400;
    pub const UNCOMPRESSED_IDS: u16 = 0x0800;
}

/// Inode types. Basic types are 1..=7, extended ones add 7.
pub mod inode_type {
    pub const DIR: u16 = 1;
    pub const FILE: u16 = 2;
    pub const SYMLINK: u16 = 3;
    pub const BLOCK_DEV: u16 = 4;
    pub const CHAR_DEV: u16 = 5;
    pub const FIFO: u16 = 6;
    pub const SOCKET: u16 = 7;
    pub const EXT_DIR: u16 = 8;
    pub const EXT_FILE: u16 = 9;
    pub const EXT_SYMLINK: u16 = 10;
    pub const EXT_BLOCK_DEV: u16 = 11;
    pub const EXT_CHAR_DEV: u16 = 12;
    pub const EXT_FIFO: u16 = 13;
    pub const EXT_SOCKET: u16 = 14;
}

/// The fixed header of every image, exactly as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Superblock {
    pub magic: u32,
    pub inode_count: u32,
    pub modification_time: u32,
    pub block_size: u32,
    pub fragment_entry_count: u32,
    pub compression_id: u16,
    pub block_log: u16,
    pub flags: u16,
    pub id_count: u16,
    pub version_major: u16,
    pub version_minor: u16,
    pub root_inode_ref: u64,
    pub bytes_used: u64,
    pub id_table_start: u64,
    pub xattr_id_table_start: u64,
    pub inode_table_start: u64,
    pub directory_table_start: u64,
    pub fragment_table_start: u64,
    pub export_table_start: u64,
}

impl Superblock {
    /// Decode the 96 superblock bytes. Only the layout is decoded here; whether the
    /// values make sense is the reader's job.
    pub fn decode(bytes: &[u8; SUPERBLOCK_SIZE]) -> Superblock {
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
        Superblock {
            magic: u32_at(0),
            inode_count: u32_at(4),
            modification_time: u32_at(8),
            block_size: u32_at(12),
            fragment_entry_count: u32_at(16),
            compression_id: u16_at(20),
            block_log: u16_at(22),
            flags: u16_at(24),
            id_count: u16_at(26),
            version_major: u16_at(28),
            version_minor: u16_at(30),
            root_inode_ref: u64_at(32),
            bytes_used: u64_at(40),
            id_table_start: u64_at(48),
            xattr_id_table_start: u64_at(56),
            inode_table_start: u64_at(64),
            directory_table_start: u64_at(72),
            fragment_table_start: u64_at(80),
            export_table_start: u64_at(88),
        }
    }

    /// Encode into the 96 bytes stored at the start of the image.
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut out = [0u8; SUPERBLOCK_SIZE];
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &self.magic.to_le_bytes());
        put(4, &self.inode_count.to_le_bytes());
        put(8, &self.modification_time.to_le_bytes());
        put(12, &self.block_size.to_le_bytes());
        put(16, &self.fragment_entry_count.to_le_bytes());
        put(20, &self.compression_id.to_le_bytes());
        put(22, &self.block_log.to_le_bytes());
        put(24, &self.flags.to_le_bytes());
        put(26, &self.id_count.to_le_bytes());
        put(28, &self.version_major.to_le_bytes());
        put(30, &self.version_minor.to_le_bytes());
        put(32, &self.root_inode_ref.to_le_bytes());
        put(40, &self.bytes_used.to_le_bytes());
        put(48, &self.id_table_start.to_le_bytes());
        put(56, &self.xattr_id_table_start.to_le_bytes());
        put(64, &self.inode_table_start.to_le_bytes());
        put(72, &self.directory_table_start.to_le_bytes());
        put(80, &self.fragment_table_start.to_le_bytes());
        put(88, &self.export_table_start.to_le_bytes());
        out
    }
}

/// An inode reference: the metadata block's offset from the table start (upper 32 bits
/// of the 48 used) and the offset inside the uncompressed block (lower 16 bits).
pub fn inode_ref(block: u64, offset: u16) -> u64 {
    (block << 16) | u64::from(offset)
}

/// Split an inode reference into (block offset from the table start, offset in block).
pub fn split_inode_ref(reference: u64) -> (u64, u16) {
    (reference >> 16, (reference & 0xFFFF) as u16)
}

/// The bits of a metadata block header that hold the stored size.
pub const METADATA_SIZE_MASK: u16 = 0x7FFF;
/// The bits of a data block size word that hold the stored size.
pub const DATA_SIZE_MASK: u32 = 0x00FF_FFFF;
/// Bytes of one fragment table entry: start u64, size word u32, unused u32.
pub const FRAGMENT_ENTRY_SIZE: u64 = 16;
/// Bytes of one id table entry (a u32 uid or gid).
pub const ID_ENTRY_SIZE: u64 = 4;
/// Bytes of one lookup table pointer (a u64 to a metadata block).
pub const TABLE_POINTER_SIZE: u64 = 8;
/// Bytes of the header every inode starts with: type, mode, uid index, gid index,
/// mtime, inode number.
pub const INODE_HEADER_SIZE: usize = 16;
/// Bytes of a directory header: entry count minus one, inode block, base inode number.
pub const DIR_HEADER_SIZE: usize = 12;
/// Bytes of a directory entry before its name: inode offset, inode number delta, type,
/// name length minus one.
pub const DIR_ENTRY_SIZE: usize = 8;
/// Bytes of a directory index entry before its name: listing offset, directory block,
/// name length minus one.
pub const DIR_INDEX_SIZE: usize = 12;
/// A directory inode's size counts this many bytes more than its listing.
pub const DIR_SIZE_EXTRA: u64 = 3;
/// The longest symlink target Linux accepts (PATH_MAX without the NUL).
pub const MAX_SYMLINK: usize = 4095;

/// Split a metadata block header into (stored size, compressed).
pub fn metadata_header(header: u16) -> (u16, bool) {
    (
        header & METADATA_SIZE_MASK,
        header & METADATA_UNCOMPRESSED == 0,
    )
}

/// Split a data block size word into (stored size, compressed). A word of 0 is a
/// sparse block: nothing stored, the block reads as zeros.
pub fn data_block_size(word: u32) -> (u32, bool) {
    (word & DATA_SIZE_MASK, word & DATA_UNCOMPRESSED == 0)
}

/// How many metadata blocks a lookup table (id, fragment, export) of `count` entries of
/// `entry_size` bytes fills; its index holds one pointer per block.
pub fn lookup_table_blocks(count: u64, entry_size: u64) -> u64 {
    count
        .saturating_mul(entry_size)
        .div_ceil(METADATA_SIZE as u64)
}

/// Whether `name` may appear in a directory: 1 to [`MAX_NAME`] bytes, no `/` or NUL,
/// and neither `.` nor `..`.
pub fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != b"."
        && name != b".."
        && !name.iter().any(|&byte| byte == b'/' || byte == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips() {
        let superblock = Superblock {
            magic: MAGIC,
            inode_count: 7,
            block_size: DEFAULT_BLOCK_SIZE,
            compression_id: compression::GZIP,
            block_log: 17,
            version_major: 4,
            root_inode_ref: inode_ref(0x1234, 0x56),
            bytes_used: 0xDEAD_BEEF_0000,
            export_table_start: NO_TABLE,
            ..Superblock::default()
        };
        let bytes = superblock.encode();
        assert_eq!(&bytes[0..4], b"hsqs");
        assert_eq!(Superblock::decode(&bytes), superblock);
        assert_eq!(split_inode_ref(superblock.root_inode_ref), (0x1234, 0x56));
    }

    #[test]
    fn block_words_split() {
        assert_eq!(metadata_header(0x8000 | 12), (12, false));
        assert_eq!(metadata_header(8192), (8192, true));
        assert_eq!(data_block_size(0), (0, true));
        assert_eq!(data_block_size(DATA_UNCOMPRESSED | 4096), (4096, false));
        assert_eq!(data_block_size(1234), (1234, true));
        assert_eq!(lookup_table_blocks(0, ID_ENTRY_SIZE), 0);
        assert_eq!(lookup_table_blocks(1, ID_ENTRY_SIZE), 1);
        assert_eq!(lookup_table_blocks(2048, ID_ENTRY_SIZE), 1);
        assert_eq!(lookup_table_blocks(2049, ID_ENTRY_SIZE), 2);
        assert_eq!(lookup_table_blocks(513, FRAGMENT_ENTRY_SIZE), 2);
        assert_eq!(
            lookup_table_blocks(u64::MAX, FRAGMENT_ENTRY_SIZE),
            u64::MAX / 8192 + 1
        );
    }

    #[test]
    fn names_are_checked() {
        let long = [b'a'; MAX_NAME + 1];
        for (name, valid) in [
            (&b"a"[..], true),
            (b"with space", true),
            (b"new\nline", true),
            ("\u{e9}t\u{e9}".as_bytes(), true),
            (&long[..MAX_NAME], true),
            (&long[..], false),
            (b"", false),
            (b".", false),
            (b"..", false),
            (b"...", true),
            (b"a/b", false),
            (b"/", false),
            (b"a\0b", false),
        ] {
            assert_eq!(is_valid_name(name), valid, "{name:?}");
        }
    }
}
