//! Metadata streams: bytes cut into 8 KiB blocks, each compressed (or stored when that
//! does not help) behind a two-byte header, as the inode, directory and lookup tables are.

use alloc::vec::Vec;

use super::compress::Compressor;
use crate::squashfs::format::{METADATA_SIZE, METADATA_UNCOMPRESSED};

/// A metadata table being written. Full blocks are compressed as soon as they fill,
/// so the position of the block being filled is always known: that is what inode
/// references and directory headers point at.
pub(super) struct MetadataStream {
    /// Finished blocks, headers included.
    output: Vec<u8>,
    /// The block being filled, never holding a full block at rest.
    pending: Vec<u8>,
    /// Where each finished block starts in `output`.
    block_starts: Vec<u64>,
    /// Bytes appended so far, uncompressed.
    total: u64,
    scratch: Vec<u8>,
}

impl MetadataStream {
    pub(super) fn new() -> MetadataStream {
        MetadataStream {
            output: Vec::new(),
            pending: Vec::with_capacity(METADATA_SIZE),
            block_starts: Vec::new(),
            total: 0,
            scratch: Vec::with_capacity(METADATA_SIZE),
        }
    }

    /// Where the next appended byte goes: the start of its block relative to the
    /// table, and the offset inside the uncompressed block.
    pub(super) fn position(&self) -> (u64, u16) {
        (self.output.len() as u64, self.pending.len() as u16)
    }

    /// Uncompressed bytes appended so far.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    pub(super) fn append(&mut self, compressor: &mut Compressor, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = METADATA_SIZE - self.pending.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.pending.extend_from_slice(now);
            bytes = later;
            if self.pending.len() == METADATA_SIZE {
                self.finish_block(compressor);
            }
        }
    }

    fn finish_block(&mut self, compressor: &mut Compressor) {
        self.block_starts.push(self.output.len() as u64);
        let length = self.pending.len() as u16;
        if compressor.compress(&self.pending, &mut self.scratch) {
            self.output
                .extend_from_slice(&(self.scratch.len() as u16).to_le_bytes());
            self.output.extend_from_slice(&self.scratch);
        } else {
            self.output
                .extend_from_slice(&(length | METADATA_UNCOMPRESSED).to_le_bytes());
            self.output.extend_from_slice(&self.pending);
        }
        self.pending.clear();
    }

    /// Close the last, partly filled block. Returns the table bytes and where each of
    /// its blocks starts, relative to the table.
    pub(super) fn finish(mut self, compressor: &mut Compressor) -> (Vec<u8>, Vec<u64>) {
        if !self.pending.is_empty() {
            self.finish_block(compressor);
        }
        (self.output, self.block_starts)
    }
}

/// A lookup table (fragments, ids): its metadata blocks, then the index of their
/// absolute positions. `start` is where the blocks will be written; returns the
/// bytes to write and the absolute position of the index, which the superblock holds.
pub(super) fn lookup_table(
    compressor: &mut Compressor,
    entries: &[u8],
    start: u64,
) -> (Vec<u8>, u64) {
    let mut stream = MetadataStream::new();
    stream.append(compressor, entries);
    let (mut bytes, block_starts) = stream.finish(compressor);
    let index_start = start + bytes.len() as u64;
    for block in block_starts {
        bytes.extend_from_slice(&(start + block).to_le_bytes());
    }
    (bytes, index_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniz_oxide::inflate::decompress_to_vec_zlib;

    /// Undo a metadata stream: the uncompressed bytes of each block, in order.
    fn blocks(mut table: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !table.is_empty() {
            let header = u16::from_le_bytes([table[0], table[1]]);
            let length = usize::from(header & !METADATA_UNCOMPRESSED);
            let body = &table[2..2 + length];
            out.push(if header & METADATA_UNCOMPRESSED != 0 {
                body.to_vec()
            } else {
                decompress_to_vec_zlib(body).unwrap()
            });
            table = &table[2 + length..];
        }
        out
    }

    #[test]
    fn stream_cuts_blocks_and_tracks_positions() {
        let mut compressor = Compressor::new(9);
        let mut stream = MetadataStream::new();
        assert_eq!(stream.position(), (0, 0));
        stream.append(&mut compressor, &[1u8; 8000]);
        assert_eq!(stream.position(), (0, 8000));
        stream.append(&mut compressor, &[2u8; 400]);
        // The first block filled and was compressed: the position moves to the second.
        let (block, offset) = stream.position();
        assert!(block > 2 && block < 100, "{block}");
        assert_eq!(offset, 8400 - 8192);
        assert_eq!(stream.total(), 8400);
        let (table, starts) = stream.finish(&mut compressor);
        assert_eq!(starts, [0, block]);
        let decoded = blocks(&table);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].len(), 8192);
        assert_eq!(decoded[1], [2u8; 208]);
    }

    #[test]
    fn tiny_tables_are_stored() {
        let mut compressor = Compressor::new(9);
        let (bytes, index_start) = lookup_table(&mut compressor, &[0, 0, 0, 0], 1000);
        // Four zero bytes do not shrink under zlib: header, raw bytes, then the index.
        assert_eq!(&bytes[..6], &[4, 0x80, 0, 0, 0, 0]);
        assert_eq!(index_start, 1006);
        assert_eq!(&bytes[6..], &1000u64.to_le_bytes());
    }
}
