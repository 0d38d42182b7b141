//! The one deterministic random generator: the same numbers for the same seed on every
//! machine. Tests and benchmarks use it so fixtures are the same each run and failures
//! reproduce; the DHCP client draws its transaction ids and retransmission jitter from
//! it, seeded at random in the daemon and fixed in its tests.

#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

/// xorshift64* (Vigna, 2016): small, fast, and good enough to look like compressed
/// data. Not for anything that must be unpredictable.
#[derive(Clone, Debug)]
pub struct Random(u64);

impl Random {
    /// The generator whose numbers `seed` fixes. Xorshift never leaves 0, so a zero
    /// seed starts from another fixed state.
    pub fn new(seed: u64) -> Random {
        Random(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// A position in a slice of `len` items (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Fill `bytes` with the numbers' little-endian bytes: noise that does not compress.
    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }

    /// Up to three random changes to `bytes` (a byte set, a cut, a bit flipped): what
    /// a broken or hostile peer sends instead of a good message, for the tests of
    /// parsers of the network's messages.
    pub fn damage(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..self.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = self.index(bytes.len());
            match self.below(3) {
                0 => bytes[at] = self.below(256) as u8,
                1 => bytes.truncate(at),
                _ => bytes[at] ^= 1 << self.below(8),
            }
        }
    }

    /// `len` bytes of noise, as [`Random::fill`] makes them.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        self.fill(&mut bytes);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        // Known answers: benchmarks compare runs across machines and commits.
        let mut random = Random::new(1);
        assert_eq!(random.next_u64(), 0x47e4_ce4b_896c_dd1d);
        let first = Random::new(42).bytes(100);
        assert_eq!(Random::new(42).bytes(100), first);
        assert_ne!(Random::new(43).bytes(100), first);
        assert_ne!(Random::new(0).bytes(8), vec![0; 8]);
    }

    #[test]
    fn fill_is_bytes_in_pieces() {
        let whole = Random::new(7).bytes(20);
        let mut random = Random::new(7);
        let mut pieces = vec![0; 20];
        let (first, rest) = pieces.split_at_mut(8);
        random.fill(first);
        random.fill(rest);
        assert_eq!(pieces, whole);
        assert!((0..1000).all(|_| random.below(10) < 10 && random.index(3) < 3));
    }
}
