//! BLAKE2b (RFC 7693), unkeyed, incremental, with any output length from 1 to 64 bytes.
//!
//! minisign needs two sizes: BLAKE2b-512 of the signed data for prehashed (`ED`)
//! signatures, and BLAKE2b-256 as the checksum inside secret key files. The output
//! length is a const parameter, so a bad length is a compile error, never a runtime one.

/// The initialization vector, the same eight words as SHA-512's (RFC 7693 §2.6).
const IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

/// The message word permutation of each round (RFC 7693 §2.7); rounds 10 and 11 reuse rows 0 and 1.
const SIGMA: [[u8; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const BLOCK: usize = 128;
const ROUNDS: usize = 12;

/// An incremental BLAKE2b hash producing `N` bytes (64 unless said otherwise).
#[derive(Clone)]
pub struct Blake2b<const N: usize = 64> {
    state: [u64; 8],
    /// Bytes compressed so far; RFC 7693 allows up to 2^128.
    counter: u128,
    /// Input not compressed yet. A full block stays here until more input arrives,
    /// because the last block must be compressed with the final flag set.
    buffer: [u8; BLOCK],
    buffered: usize,
}

/// BLAKE2b with a 64-byte digest, the one minisign's prehashed signatures sign.
pub type Blake2b512 = Blake2b<64>;
/// BLAKE2b with a 32-byte digest, the checksum inside minisign secret keys.
pub type Blake2b256 = Blake2b<32>;

impl<const N: usize> Blake2b<N> {
    /// Start a new, unkeyed hash.
    pub fn new() -> Self {
        // Rejects, at compile time, an output length RFC 7693 does not define.
        const { assert!(N >= 1 && N <= 64, "BLAKE2b output is 1 to 64 bytes") };
        let mut state = IV;
        // Parameter block word 0: digest length, key length 0, fanout 1, depth 1.
        state[0] ^= 0x0101_0000 ^ N as u64;
        Blake2b {
            state,
            counter: 0,
            buffer: [0; BLOCK],
            buffered: 0,
        }
    }

    /// Feed more input.
    pub fn update(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            if self.buffered == BLOCK {
                self.counter = self.counter.wrapping_add(BLOCK as u128);
                compress(&mut self.state, &self.buffer, self.counter, false);
                self.buffered = 0;
            }
            let take = (BLOCK - self.buffered).min(input.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&input[..take]);
            self.buffered += take;
            input = &input[take..];
        }
    }

    /// Finish and return the digest.
    pub fn finalize(mut self) -> [u8; N] {
        self.counter = self.counter.wrapping_add(self.buffered as u128);
        self.buffer[self.buffered..].fill(0);
        compress(&mut self.state, &self.buffer, self.counter, true);
        let mut full = [0u8; 64];
        for (bytes, word) in full.chunks_exact_mut(8).zip(self.state) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&full[..N]);
        out
    }
}

impl<const N: usize> Default for Blake2b<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// BLAKE2b-512 of `data` in one call.
pub fn blake2b_512(data: &[u8]) -> [u8; 64] {
    let mut hash = Blake2b512::new();
    hash.update(data);
    hash.finalize()
}

/// BLAKE2b-256 of `data` in one call.
pub fn blake2b_256(data: &[u8]) -> [u8; 32] {
    let mut hash = Blake2b256::new();
    hash.update(data);
    hash.finalize()
}

/// The mixing function G (RFC 7693 §3.1).
#[inline(always)]
fn mix(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

/// The compression function F (RFC 7693 §3.2).
///
/// Every byte of a repository index goes through here on every pkg command (the
/// index's prehashed signature is checked each time it is read), so the message
/// words are picked by plain indexing in each round: a closure for it was not
/// inlined at opt-level "z" and cost three quarters of the time.
fn compress(state: &mut [u64; 8], block: &[u8; BLOCK], counter: u128, last: bool) {
    let mut m = [0u64; 16];
    for (word, bytes) in m.iter_mut().zip(block.chunks_exact(8)) {
        if let Some(&bytes) = bytes.first_chunk::<8>() {
            *word = u64::from_le_bytes(bytes);
        }
    }
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(state);
    v[8..].copy_from_slice(&IV);
    v[12] ^= counter as u64;
    v[13] ^= (counter >> 64) as u64;
    if last {
        v[14] = !v[14];
    }
    for round in 0..ROUNDS {
        let s = &SIGMA[round % 10];
        let x = |i: usize| m[usize::from(s[i]) & 15];
        let (x0, x1, x2, x3) = (x(0), x(1), x(2), x(3));
        let (x4, x5, x6, x7) = (x(4), x(5), x(6), x(7));
        let (x8, x9, x10, x11) = (x(8), x(9), x(10), x(11));
        let (x12, x13, x14, x15) = (x(12), x(13), x(14), x(15));
        mix(&mut v, 0, 4, 8, 12, x0, x1);
        mix(&mut v, 1, 5, 9, 13, x2, x3);
        mix(&mut v, 2, 6, 10, 14, x4, x5);
        mix(&mut v, 3, 7, 11, 15, x6, x7);
        mix(&mut v, 0, 5, 10, 15, x8, x9);
        mix(&mut v, 1, 6, 11, 12, x10, x11);
        mix(&mut v, 2, 7, 8, 13, x12, x13);
        mix(&mut v, 3, 4, 9, 14, x14, x15);
    }
    for (i, word) in state.iter_mut().enumerate() {
        *word ^= v[i] ^ v[i + 8];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::to_hex;
    use alloc::vec::Vec;

    /// 0, 1, 2, ... 250, 0, 1, ...: a pattern that differs from block to block.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn rfc7693_appendix_a_abc() {
        assert_eq!(
            to_hex(&blake2b_512(b"abc")),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
    }

    #[test]
    fn empty_input_512() {
        assert_eq!(
            to_hex(&blake2b_512(b"")),
            "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419\
             d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce"
        );
    }

    #[test]
    fn output_length_is_part_of_the_hash() {
        // A shorter digest is not a prefix of the longer one: the length is hashed in.
        assert_eq!(
            to_hex(&blake2b_256(b"abc")),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
        assert_eq!(
            to_hex(&blake2b_256(b"")),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
        let mut one = Blake2b::<1>::new();
        one.update(b"abc");
        assert_eq!(one.finalize(), [0x6b]);
    }

    #[test]
    fn block_boundaries() {
        // Lengths around the 128-byte block, where the final-block buffering matters.
        // The digests come from an independent implementation (Python's hashlib).
        let cases: &[(usize, &str)] = &[
            (
                128,
                "2319e3789c47e2daa5fe807f61bec2a1a6537fa03f19ff32e87eecbfd64b7e0e\
                 8ccff439ac333b040f19b0c4ddd11a61e24ac1fe0f10a039806c5dcc0da3d115",
            ),
            (
                129,
                "f59711d44a031d5f97a9413c065d1e614c417ede998590325f49bad2fd444d3e\
                 4418be19aec4e11449ac1a57207898bc57d76a1bcf3566292c20c683a5c4648f",
            ),
            (
                256,
                "93463ac058b6163eb43be3f5bb32b28541498f4e3366f1effe253ad44e1e076e\
                 41c3616046027c82a7124f8f4746668ad10b12e8e25a95ac8f3151df01cd5a93",
            ),
            (
                1000,
                "c11e1c0340bd7e5a1b275f1230c962fad215ecb1391486e74e31b960a2f29963\
                 81a5fad092da06841d5f26e38f6ecfeaf441acbcd1c2de61aef121e7927175f5",
            ),
        ];
        for (len, expected) in cases {
            assert_eq!(
                to_hex(&blake2b_512(&pattern(*len))),
                *expected,
                "length {len}"
            );
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data = pattern(1000);
        let whole = blake2b_512(&data);
        for piece in [1, 7, 127, 128, 129, 500] {
            let mut hash = Blake2b512::new();
            for chunk in data.chunks(piece) {
                hash.update(chunk);
            }
            hash.update(&[]);
            assert_eq!(hash.finalize(), whole, "pieces of {piece}");
        }
    }
}
