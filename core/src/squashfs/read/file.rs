//! Reading file contents: full blocks, sparse blocks and the fragment tail.

use super::cache::BlockMemo;
use super::{le32, le64, Archive, Cache, Error, Inode, Layout, MetaPos};
use crate::squashfs::format::{
    self, DATA_SIZE_MASK, DATA_UNCOMPRESSED, FRAGMENT_ENTRY_SIZE, NO_FRAGMENT,
};
use crate::squashfs::ReadAt;

/// Check a data block size word: only the size bits and the uncompressed bit may be
/// set, and no block is stored bigger than the block size.
fn block_word(word: u32, block_size: u32) -> Result<(u32, bool), Error> {
    let (stored, compressed) = format::data_block_size(word);
    if word & !(DATA_SIZE_MASK | DATA_UNCOMPRESSED) != 0 || stored > block_size {
        return Err(Error::Corrupt("bad data block size"));
    }
    Ok((stored, compressed))
}

impl<R: ReadAt> Archive<R> {
    /// Read from `file` at `offset` into `buf`; returns the bytes read, fewer than
    /// `buf.len()` only at the end of the file. Each block is decompressed once: a
    /// read covering a whole block decompresses straight into `buf`, a partial one
    /// goes through the cache.
    pub fn read(
        &self,
        file: &Inode,
        offset: u64,
        buf: &mut [u8],
        cache: &mut Cache,
    ) -> Result<usize, Error> {
        let Layout::File {
            blocks_start,
            block_count,
            fragment,
            fragment_offset,
            block_list,
        } = file.layout
        else {
            return Err(Error::NotAFile);
        };
        if offset >= file.size {
            return Ok(0);
        }
        let want = (file.size - offset).min(buf.len() as u64) as usize;
        let block_size = u64::from(self.superblock.block_size);
        let mut done = 0;
        while done < want {
            let at = offset + done as u64;
            let index = at / block_size;
            let within = (at % block_size) as usize;
            let block_len = (file.size - index * block_size).min(block_size) as usize;
            let count = (block_len - within).min(want - done);
            let out = &mut buf[done..done + count];
            if index < block_count {
                let start = BlockMemo {
                    reference: file.reference,
                    index: 0,
                    disk: blocks_start,
                    list: block_list,
                };
                let (disk, word) = self.locate_block(cache, start, index)?;
                self.read_block(cache, disk, word, block_len, within, out)?;
            } else {
                self.read_tail(cache, fragment, fragment_offset, block_len, within, out)?;
            }
            done += count;
        }
        Ok(want)
    }

    /// Find block `index` of a file: its disk position and size word. Positions are
    /// the sum of the sizes before, so start from where the last read stopped when
    /// that was the same file at or before `index`.
    fn locate_block(
        &self,
        cache: &mut Cache,
        start: BlockMemo,
        index: u64,
    ) -> Result<(u64, u32), Error> {
        cache.adopt(self.identity);
        let mut memo = match cache.block_memo {
            Some(memo) if memo.reference == start.reference && memo.index <= index => memo,
            _ => start,
        };
        loop {
            let mut word = [0u8; 4];
            let mut list: MetaPos = memo.list;
            self.read_metadata(cache, self.inode_table, &mut list, &mut word)?;
            let word = u32::from_le_bytes(word);
            let (stored, _) = block_word(word, self.superblock.block_size)?;
            if memo.index == index {
                cache.block_memo = Some(memo);
                return Ok((memo.disk, word));
            }
            memo.disk = memo
                .disk
                .checked_add(u64::from(stored))
                .filter(|&end| end <= self.data_end)
                .ok_or(Error::Corrupt("data block outside the data area"))?;
            memo.list = list;
            memo.index += 1;
        }
    }

    /// Copy `out` from `within` bytes into a block of `block_len` bytes.
    fn read_block(
        &self,
        cache: &mut Cache,
        disk: u64,
        word: u32,
        block_len: usize,
        within: usize,
        out: &mut [u8],
    ) -> Result<(), Error> {
        if word == 0 {
            // A sparse block: nothing stored, all zeros.
            out.fill(0);
            return Ok(());
        }
        let (stored, compressed) = block_word(word, self.superblock.block_size)?;
        if !compressed {
            if stored as usize != block_len {
                return Err(Error::Corrupt("data block size differs from the file's"));
            }
            self.check_data_range(disk, stored)?;
            self.source.read_at(disk + within as u64, out)?;
        } else if within == 0 && out.len() == block_len {
            self.inflate_block_into(cache, disk, stored, out)?;
        } else {
            let slot = self.data_block(cache, disk, stored, usize::MAX)?;
            let data = cache.data_contents(slot);
            if data.len() != block_len {
                return Err(Error::Corrupt("data block size differs from the file's"));
            }
            out.copy_from_slice(&data[within..within + out.len()]);
        }
        Ok(())
    }

    /// Copy `out` from `within` bytes into a file's tail of `tail_len` bytes, which
    /// lives in a fragment block shared with other files.
    fn read_tail(
        &self,
        cache: &mut Cache,
        fragment: u32,
        fragment_offset: u32,
        tail_len: usize,
        within: usize,
        out: &mut [u8],
    ) -> Result<(), Error> {
        let (start, stored, compressed) = self.fragment_block(cache, fragment)?;
        let tail_end = fragment_offset as usize + tail_len;
        let begin = fragment_offset as usize + within;
        if !compressed {
            if tail_end > stored as usize {
                return Err(Error::Corrupt("file tail past the end of its fragment"));
            }
            self.source.read_at(start + begin as u64, out)?;
        } else {
            let slot = self.data_block(cache, start, stored, tail_end)?;
            let data = cache.data_contents(slot);
            if tail_end > data.len() {
                return Err(Error::Corrupt("file tail past the end of its fragment"));
            }
            out.copy_from_slice(&data[begin..begin + out.len()]);
        }
        Ok(())
    }
}

impl<R: ReadAt> Archive<R> {
    /// The fragment block a file's tail is in: (start, stored size, compressed),
    /// checked to lie in the data area.
    fn fragment_block(&self, cache: &mut Cache, fragment: u32) -> Result<(u64, u32, bool), Error> {
        if fragment == NO_FRAGMENT {
            return Err(Error::Corrupt("file tail without a fragment"));
        }
        let mut position = self.table_entry(
            &self.fragment_blocks,
            u64::from(fragment),
            FRAGMENT_ENTRY_SIZE,
        );
        let mut entry = [0u8; FRAGMENT_ENTRY_SIZE as usize];
        self.read_metadata(cache, self.fragment_table, &mut position, &mut entry)?;
        let start = le64(&entry, 0);
        let (stored, compressed) = block_word(le32(&entry, 8), self.superblock.block_size)?;
        if stored == 0 {
            return Err(Error::Corrupt("empty fragment block"));
        }
        self.check_data_range(start, stored)?;
        Ok((start, stored, compressed))
    }

    /// Check where a file's data is without reading it: every block size word, the
    /// last block's place in the data area, and the fragment entry.
    pub(super) fn check_file_layout(&self, file: &Inode, cache: &mut Cache) -> Result<(), Error> {
        let Layout::File {
            blocks_start,
            block_count,
            fragment,
            fragment_offset,
            block_list,
        } = file.layout
        else {
            return Err(Error::NotAFile);
        };
        if block_count > 0 {
            let start = BlockMemo {
                reference: file.reference,
                index: 0,
                disk: blocks_start,
                list: block_list,
            };
            let (disk, word) = self.locate_block(cache, start, block_count - 1)?;
            let (stored, _) = block_word(word, self.superblock.block_size)?;
            if word != 0 {
                self.check_data_range(disk, stored)?;
            }
        }
        let tail = file.size % u64::from(self.superblock.block_size);
        if fragment != NO_FRAGMENT && tail > 0 {
            let (_, stored, compressed) = self.fragment_block(cache, fragment)?;
            if !compressed && u64::from(fragment_offset) + tail > u64::from(stored) {
                return Err(Error::Corrupt("file tail past the end of its fragment"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_words_are_checked() {
        let block_size = 131072;
        for (word, expected) in [
            (0, Ok((0, true))),
            (1000, Ok((1000, true))),
            (DATA_UNCOMPRESSED | 131072, Ok((131072, false))),
            (131073, Err(Error::Corrupt("bad data block size"))),
            (
                DATA_UNCOMPRESSED | 131073,
                Err(Error::Corrupt("bad data block size")),
            ),
            (1 << 25 | 10, Err(Error::Corrupt("bad data block size"))),
            (u32::MAX, Err(Error::Corrupt("bad data block size"))),
        ] {
            assert_eq!(block_word(word, block_size), expected, "{word:#x}");
        }
    }
}
