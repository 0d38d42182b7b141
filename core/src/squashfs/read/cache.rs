//! The caller-owned decompression cache: a few metadata blocks and data blocks, LRU.

use alloc::boxed::Box;
use alloc::vec::Vec;

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use super::{Archive, Error, MetaPos, Table};
use crate::squashfs::format::METADATA_SIZE;
use crate::squashfs::ReadAt;

/// Metadata blocks a [`Cache::new`] keeps: 8 × 8 KiB.
pub const DEFAULT_METADATA_BLOCKS: usize = 8;
/// Data blocks (file blocks or fragment blocks) a [`Cache::new`] keeps.
pub const DEFAULT_DATA_BLOCKS: usize = 2;
/// The most metadata blocks [`Cache::with_limits`] accepts.
pub const MAX_METADATA_BLOCKS: usize = 64;
/// The most data blocks [`Cache::with_limits`] accepts.
pub const MAX_DATA_BLOCKS: usize = 16;

/// The position of a slot that holds nothing.
const EMPTY: u64 = u64::MAX;

struct MetadataSlot {
    position: u64,
    /// Where the next block of the same table starts.
    next: u64,
    len: usize,
    stamp: u64,
    data: Box<[u8]>,
}

struct DataSlot {
    position: u64,
    len: usize,
    /// Whether `len` is the whole block, or only the prefix someone needed: reading a
    /// 100-byte file at the start of a fragment block should not inflate 128 KiB.
    complete: bool,
    stamp: u64,
    data: Vec<u8>,
}

/// Where the last file read stopped in its block list, so sequential reads of a big
/// file do not add up the block sizes from the start every time.
#[derive(Debug, Clone, Copy)]
pub(super) struct BlockMemo {
    pub reference: u64,
    /// The block whose size word is at `list` and whose data starts at `disk`.
    pub index: u64,
    pub disk: u64,
    pub list: MetaPos,
}

/// Decompressed blocks kept between calls, and the scratch space to make them.
///
/// Memory is bounded by the limits, whatever the image: `metadata_blocks` × 8 KiB,
/// plus (`data_blocks` + 1) × the image's block size (the extra one holds compressed
/// input), plus about 11 KiB of inflate state. [`Cache::new`] keeps 8 metadata
/// blocks and 2 data blocks: about 460 KiB for 128 KiB blocks. Buffers grow on first
/// use. Blocks are evicted least recently used first.
///
/// A cache may be used with several archives in turn; it forgets everything when the
/// archive changes, so it is never wrong, only slower.
pub struct Cache {
    owner: u64,
    clock: u64,
    metadata_limit: usize,
    data_limit: usize,
    metadata: Vec<MetadataSlot>,
    data: Vec<DataSlot>,
    scratch: Vec<u8>,
    inflater: Box<DecompressorOxide>,
    pub(super) block_memo: Option<BlockMemo>,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache::new()
    }
}

impl core::fmt::Debug for Cache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cache")
            .field("metadata_limit", &self.metadata_limit)
            .field("data_limit", &self.data_limit)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache with the default limits.
    pub fn new() -> Cache {
        Cache::with_limits(DEFAULT_METADATA_BLOCKS, DEFAULT_DATA_BLOCKS)
    }

    /// A cache holding at most `metadata_blocks` metadata blocks and `data_blocks`
    /// data blocks, each clamped to 1..=64 and 1..=16.
    pub fn with_limits(metadata_blocks: usize, data_blocks: usize) -> Cache {
        Cache {
            owner: 0,
            clock: 0,
            metadata_limit: metadata_blocks.clamp(1, MAX_METADATA_BLOCKS),
            data_limit: data_blocks.clamp(1, MAX_DATA_BLOCKS),
            metadata: Vec::new(),
            data: Vec::new(),
            scratch: Vec::new(),
            inflater: Box::default(),
            block_memo: None,
        }
    }

    /// Forget everything if the cache last served another archive.
    pub(super) fn adopt(&mut self, owner: u64) {
        if self.owner != owner {
            self.owner = owner;
            for slot in &mut self.metadata {
                slot.position = EMPTY;
            }
            for slot in &mut self.data {
                slot.position = EMPTY;
            }
            self.block_memo = None;
        }
        self.clock += 1;
    }

    /// The uncompressed bytes of a metadata slot and where the next block starts.
    pub(super) fn metadata_contents(&self, slot: usize) -> (&[u8], u64) {
        let slot = &self.metadata[slot];
        (&slot.data[..slot.len], slot.next)
    }

    /// The uncompressed bytes of a data slot.
    pub(super) fn data_contents(&self, slot: usize) -> &[u8] {
        let slot = &self.data[slot];
        &slot.data[..slot.len]
    }

    /// A metadata slot to fill: a new one while under the limit, else the least
    /// recently used.
    fn metadata_victim(&mut self) -> usize {
        if self.metadata.len() < self.metadata_limit {
            self.metadata.push(MetadataSlot {
                position: EMPTY,
                next: EMPTY,
                len: 0,
                stamp: 0,
                data: alloc::vec![0u8; METADATA_SIZE].into_boxed_slice(),
            });
            return self.metadata.len() - 1;
        }
        least_recent(self.metadata.iter().map(|slot| slot.stamp))
    }

    fn data_victim(&mut self) -> usize {
        if self.data.len() < self.data_limit {
            self.data.push(DataSlot {
                complete: false,
                position: EMPTY,
                len: 0,
                stamp: 0,
                data: Vec::new(),
            });
            return self.data.len() - 1;
        }
        least_recent(self.data.iter().map(|slot| slot.stamp))
    }
}

fn least_recent(stamps: impl Iterator<Item = u64>) -> usize {
    let mut best = (0, u64::MAX);
    for (index, stamp) in stamps.enumerate() {
        if stamp < best.1 {
            best = (index, stamp);
        }
    }
    best.0
}

/// Inflate one zlib stream into `output`; producing more than `output` holds is an
/// error, which caps what a decompression bomb can do.
fn inflate(state: &mut DecompressorOxide, input: &[u8], output: &mut [u8]) -> Result<usize, Error> {
    inflate_prefix(state, input, output, true).map(|(written, _)| written)
}

/// Inflate the start of one zlib stream into `output`. With `whole`, `output` holds a
/// whole block and producing more is an error (the bomb cap); otherwise filling
/// `output` simply stops early. Returns the bytes written and whether the stream ended.
fn inflate_prefix(
    state: &mut DecompressorOxide,
    input: &[u8],
    output: &mut [u8],
    whole: bool,
) -> Result<(usize, bool), Error> {
    state.init();
    let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
        | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, _, written) = decompress(state, input, output, 0, flags);
    match status {
        TINFLStatus::Done => Ok((written, true)),
        TINFLStatus::HasMoreOutput if !whole => Ok((written, false)),
        TINFLStatus::HasMoreOutput => Err(Error::Corrupt("block decompresses past its limit")),
        _ => Err(Error::Corrupt("bad compressed data")),
    }
}

/// Make `scratch` hold at least `len` bytes.
fn scratch_of(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len {
        scratch.resize(len, 0);
    }
    &mut scratch[..len]
}

impl<R: ReadAt> Archive<R> {
    /// Find or load the metadata block at `position`, which must lie in `table`;
    /// returns its slot.
    pub(super) fn metadata_block(
        &self,
        cache: &mut Cache,
        table: Table,
        position: u64,
    ) -> Result<usize, Error> {
        cache.adopt(self.identity);
        let clock = cache.clock;
        if let Some(slot) = cache.metadata.iter().position(|s| s.position == position) {
            let entry = &mut cache.metadata[slot];
            // The same block may be asked for through another table's bounds.
            if position < table.start || entry.next > table.end {
                return Err(Error::Corrupt("metadata block outside its table"));
            }
            entry.stamp = clock;
            return Ok(slot);
        }
        let (stored, compressed) = self.metadata_header(table, position)?;
        let stored = usize::from(stored);
        let body = position + 2;
        let slot = cache.metadata_victim();
        let Cache {
            metadata,
            scratch,
            inflater,
            ..
        } = cache;
        let entry = &mut metadata[slot];
        entry.position = EMPTY;
        let len = if compressed {
            let input = scratch_of(scratch, stored);
            self.source.read_at(body, input)?;
            inflate(inflater, input, &mut entry.data)?
        } else {
            self.source.read_at(body, &mut entry.data[..stored])?;
            stored
        };
        if len == 0 {
            return Err(Error::Corrupt("empty metadata block"));
        }
        entry.position = position;
        entry.next = body + stored as u64;
        entry.len = len;
        entry.stamp = clock;
        Ok(slot)
    }

    /// Copy `out.len()` bytes of a metadata table from `position` on, following the
    /// chain of blocks, and advance `position` past them.
    pub(super) fn read_metadata(
        &self,
        cache: &mut Cache,
        table: Table,
        position: &mut MetaPos,
        out: &mut [u8],
    ) -> Result<(), Error> {
        let mut done = 0;
        while done < out.len() {
            let slot = self.metadata_block(cache, table, position.block)?;
            let (data, next) = cache.metadata_contents(slot);
            let offset = usize::from(position.offset);
            if offset > data.len() {
                return Err(Error::Corrupt("metadata offset past the end of its block"));
            }
            if offset == data.len() {
                // Blocks follow each other; `next` only grows, so this terminates.
                *position = MetaPos {
                    block: next,
                    offset: 0,
                };
                continue;
            }
            let count = (data.len() - offset).min(out.len() - done);
            out[done..done + count].copy_from_slice(&data[offset..offset + count]);
            done += count;
            position.offset += count as u16;
        }
        Ok(())
    }

    /// Check that a stored data block lies in the data area and is no bigger than a
    /// block: a compressed block larger than its output would have been stored raw.
    pub(super) fn check_data_range(&self, position: u64, stored: u32) -> Result<(), Error> {
        let end = position.checked_add(u64::from(stored));
        if stored > self.superblock.block_size
            || position < self.data_start
            || end.is_none_or(|end| end > self.data_end)
        {
            return Err(Error::Corrupt("data block outside the data area"));
        }
        Ok(())
    }

    /// Find or decompress the compressed data block at `position`, at least its first
    /// `needed` bytes (`usize::MAX` for all of it); returns its slot.
    pub(super) fn data_block(
        &self,
        cache: &mut Cache,
        position: u64,
        stored: u32,
        needed: usize,
    ) -> Result<usize, Error> {
        cache.adopt(self.identity);
        let clock = cache.clock;
        let found = cache.data.iter().position(|s| s.position == position);
        if let Some(slot) = found {
            let entry = &mut cache.data[slot];
            if entry.complete || entry.len >= needed {
                entry.stamp = clock;
                return Ok(slot);
            }
        }
        self.check_data_range(position, stored)?;
        let block_size = self.superblock.block_size as usize;
        // Inflate a prefix rounded up to 4 KiB, so neighbours in a fragment come along.
        let limit = needed.saturating_add(4095) & !4095;
        let limit = limit.min(block_size);
        let slot = match found {
            Some(slot) => slot,
            None => cache.data_victim(),
        };
        let Cache {
            data,
            scratch,
            inflater,
            ..
        } = cache;
        let entry = &mut data[slot];
        entry.position = EMPTY;
        if entry.data.len() < limit {
            entry.data.resize(block_size, 0);
        }
        let input = scratch_of(scratch, stored as usize);
        self.source.read_at(position, input)?;
        let (len, complete) = inflate_prefix(
            inflater,
            input,
            &mut entry.data[..limit],
            limit == block_size,
        )?;
        entry.len = len;
        entry.complete = complete;
        entry.position = position;
        entry.stamp = clock;
        Ok(slot)
    }

    /// Decompress the data block at `position` straight into `out`, which must come
    /// out exactly full: a whole block read needs no copy and no cache slot.
    pub(super) fn inflate_block_into(
        &self,
        cache: &mut Cache,
        position: u64,
        stored: u32,
        out: &mut [u8],
    ) -> Result<(), Error> {
        self.check_data_range(position, stored)?;
        let Cache {
            scratch, inflater, ..
        } = cache;
        let input = scratch_of(scratch, stored as usize);
        self.source.read_at(position, input)?;
        if inflate(inflater, input, out)? != out.len() {
            return Err(Error::Corrupt("data block shorter than the file says"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniz_oxide::deflate::compress_to_vec_zlib;

    #[test]
    fn inflate_is_capped() {
        let mut state = DecompressorOxide::new();
        let bomb = compress_to_vec_zlib(&[0u8; 100_000], 9);
        let mut out = [0u8; METADATA_SIZE];
        assert_eq!(
            inflate(&mut state, &bomb, &mut out),
            Err(Error::Corrupt("block decompresses past its limit"))
        );
        let fits = compress_to_vec_zlib(&[7u8; METADATA_SIZE], 9);
        assert_eq!(inflate(&mut state, &fits, &mut out), Ok(METADATA_SIZE));
        assert!(out.iter().all(|&byte| byte == 7));
        assert_eq!(
            inflate(&mut state, &fits[..fits.len() - 1], &mut out),
            Err(Error::Corrupt("bad compressed data"))
        );
        let mut flipped = fits.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            inflate(&mut state, &flipped, &mut out),
            Err(Error::Corrupt("bad compressed data"))
        );
    }

    #[test]
    fn eviction_is_least_recent() {
        assert_eq!(least_recent([5, 2, 9].into_iter()), 1);
        assert_eq!(least_recent([1, 1].into_iter()), 0);
        let cache = Cache::with_limits(0, 1000);
        assert_eq!(
            (cache.metadata_limit, cache.data_limit),
            (1, MAX_DATA_BLOCKS)
        );
    }
}
