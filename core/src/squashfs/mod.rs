//! SquashFS 4.0: a bounded-memory reader for the device and a reproducible writer for the host.
//!
//! Only what amber's packages need is supported: gzip (zlib/deflate) or uncompressed
//! blocks, no xattrs. Images using another compressor are refused by name.

pub mod format;
pub mod read;
#[cfg(feature = "host")]
pub mod write;

/// Random-access reads from an image: a file, a memory buffer or anything else.
///
/// The reader never assumes the source is trustworthy: every offset it asks for was
/// checked against [`ReadAt::len`] first, and a short source is an error, not a panic.
pub trait ReadAt {
    /// Fill `buf` from `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError>;
    /// The size of the source in bytes.
    fn len(&self) -> u64;
    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A failure of the underlying source, as opposed to a malformed image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadError;

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let start = usize::try_from(offset).map_err(|_| ReadError)?;
        let end = start.checked_add(buf.len()).ok_or(ReadError)?;
        let source = self.get(start..end).ok_or(ReadError)?;
        buf.copy_from_slice(source);
        Ok(())
    }

    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for alloc::vec::Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.as_slice().read_at(offset, buf)
    }

    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
}
