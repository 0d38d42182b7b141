//! SHA-256: checks of downloaded images against their index entry, the hash of a file
//! read piece by piece, and strict hex helpers.
//!
//! A download is checked while it streams: [`Sha256Check::update`] fails as soon as more
//! bytes arrive than the index promised, so the caller can stop reading at once and an
//! endless or oversized body never fills memory or disk (SECURITY-TESTS 1, 7, 9).

use alloc::string::String;
use alloc::vec;
use core::fmt;

use sha2::{Digest, Sha256};

/// Why a byte stream does not match what the index promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashError {
    /// More bytes arrived than the expected size.
    TooLong { size: u64 },
    /// The stream ended before the expected size.
    TooShort { size: u64, seen: u64 },
    /// The size is right but the SHA-256 differs.
    Mismatch {
        expected: [u8; 32],
        actual: [u8; 32],
    },
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::TooLong { size } => {
                write!(f, "size mismatch: more than the expected {size} bytes")
            }
            HashError::TooShort { size, seen } => {
                write!(f, "size mismatch: {seen} bytes, expected {size}")
            }
            HashError::Mismatch { expected, actual } => write!(
                f,
                "sha256 mismatch: expected {}, got {}",
                to_hex(expected),
                to_hex(actual)
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HashError {}

/// SHA-256 of `bytes` in one call.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of a stream that `read` yields piece by piece: it fills the buffer it is
/// given and returns how many bytes it put there, 0 at the end. This is the one hash of
/// a file for pkg and xtask (`|buffer| file.read(buffer)`); the caller does the I/O.
pub fn sha256_stream<E>(
    mut read: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<[u8; 32], E> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let count = read(&mut buffer)?;
        if count == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..count]);
    }
}

/// SHA-256 of bytes fed in pieces, for callers that hash while they do something else
/// with the bytes (xtask's flash hashes the image as it writes it).
#[derive(Clone, Default)]
pub struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    pub fn new() -> Sha256Hasher {
        Sha256Hasher(Sha256::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Checks a byte stream, fed in pieces, against an expected SHA-256 and exact size.
#[derive(Clone)]
pub struct Sha256Check {
    hasher: Sha256,
    expected: [u8; 32],
    size: u64,
    seen: u64,
    /// Set once too many bytes arrived, so every later call keeps failing.
    overflowed: bool,
}

impl Sha256Check {
    /// Expect exactly `size` bytes whose SHA-256 is `expected`.
    pub fn new(expected: [u8; 32], size: u64) -> Sha256Check {
        Sha256Check {
            hasher: Sha256::new(),
            expected,
            size,
            seen: 0,
            overflowed: false,
        }
    }

    /// Feed the next piece. Fails as soon as the total exceeds the expected size, so the
    /// caller can stop the download; the failing piece is not hashed.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), HashError> {
        let total = (bytes.len() as u64).checked_add(self.seen);
        match total {
            Some(total) if !self.overflowed && total <= self.size => {
                self.hasher.update(bytes);
                self.seen = total;
                Ok(())
            }
            _ => {
                self.overflowed = true;
                Err(HashError::TooLong { size: self.size })
            }
        }
    }

    /// How many more bytes the stream may still bring; a reader can cap its reads with it.
    pub fn remaining(&self) -> u64 {
        self.size - self.seen
    }

    /// The number of bytes accepted so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The stream has ended: check its size and hash.
    pub fn finish(self) -> Result<(), HashError> {
        if self.overflowed {
            return Err(HashError::TooLong { size: self.size });
        }
        if self.seen != self.size {
            return Err(HashError::TooShort {
                size: self.size,
                seen: self.seen,
            });
        }
        let actual: [u8; 32] = self.hasher.finalize().into();
        // Hashes are public values, so a plain comparison leaks nothing worth hiding.
        if actual != self.expected {
            return Err(HashError::Mismatch {
                expected: self.expected,
                actual,
            });
        }
        Ok(())
    }
}

/// Why a hex string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexError {
    /// Not exactly the expected number of characters.
    Length { expected: usize, found: usize },
    /// A character other than `0-9` and `a-f`, at this byte offset.
    Character(usize),
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::Length { expected, found } => {
                write!(
                    f,
                    "expected {expected} lowercase hex digits, found {found} characters"
                )
            }
            HexError::Character(at) => {
                write!(f, "invalid hex digit at offset {at} (only 0-9 and a-f)")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HexError {}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Parse exactly `2 * N` lowercase hex digits. Uppercase, whitespace, a sign or a `0x`
/// prefix are refused, so each byte string has exactly one accepted spelling.
pub fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return Err(HexError::Length {
            expected: 2 * N,
            found: digits.len(),
        });
    }
    let nibble = |at: usize| match digits[at] {
        digit @ b'0'..=b'9' => Ok(digit - b'0'),
        digit @ b'a'..=b'f' => Ok(digit - b'a' + 10),
        _ => Err(HexError::Character(at)),
    };
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibble(2 * i)? << 4) | nibble(2 * i + 1)?;
    }
    Ok(out)
}

/// Parse a SHA-256 written as 64 lowercase hex digits, as the index carries it.
pub fn parse_hex32(text: &str) -> Result<[u8; 32], HexError> {
    parse_hex::<32>(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn abc() -> [u8; 32] {
        parse_hex32(ABC).unwrap()
    }

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 appendix B.1 and the empty string.
        assert_eq!(to_hex(&sha256(b"abc")), ABC);
        assert_eq!(to_hex(&sha256(b"")), EMPTY);
    }

    #[test]
    fn stream_hash_is_the_hash_of_its_pieces() {
        // A reader that gives one byte at a time, then fails after the end if asked again.
        let mut pieces = [&b"a"[..], b"b", b"c", b""].into_iter();
        let hash = sha256_stream(|buffer: &mut [u8]| {
            let piece = pieces.next().ok_or("read after the end")?;
            buffer[..piece.len()].copy_from_slice(piece);
            Ok::<usize, &str>(piece.len())
        });
        assert_eq!(hash.map(|hash| to_hex(&hash)), Ok(ABC.into()));
        let failing = sha256_stream(|_: &mut [u8]| Err::<usize, _>("broken"));
        assert_eq!(failing, Err("broken"));
    }

    #[test]
    fn check_accepts_exact_stream_in_pieces() {
        let mut check = Sha256Check::new(abc(), 3);
        check.update(b"a").unwrap();
        check.update(b"").unwrap();
        check.update(b"bc").unwrap();
        assert_eq!(check.seen(), 3);
        assert_eq!(check.remaining(), 0);
        check.finish().unwrap();
    }

    #[test]
    fn check_accepts_empty_stream() {
        Sha256Check::new(parse_hex32(EMPTY).unwrap(), 0)
            .finish()
            .unwrap();
    }

    #[test]
    fn check_stops_as_soon_as_stream_is_too_long() {
        let mut check = Sha256Check::new(abc(), 3);
        check.update(b"ab").unwrap();
        assert_eq!(check.update(b"cd"), Err(HashError::TooLong { size: 3 }));
        // Once failed, it stays failed, even for input that would have fitted.
        assert_eq!(check.update(b""), Err(HashError::TooLong { size: 3 }));
        assert_eq!(check.finish(), Err(HashError::TooLong { size: 3 }));
    }

    #[test]
    fn check_refuses_short_stream() {
        let mut check = Sha256Check::new(abc(), 3);
        check.update(b"ab").unwrap();
        assert_eq!(
            check.finish(),
            Err(HashError::TooShort { size: 3, seen: 2 })
        );
    }

    #[test]
    fn check_refuses_flipped_byte_of_same_size() {
        let mut check = Sha256Check::new(abc(), 3);
        check.update(b"abd").unwrap();
        assert_eq!(
            check.finish(),
            Err(HashError::Mismatch {
                expected: abc(),
                actual: sha256(b"abd")
            })
        );
    }

    #[test]
    fn mismatch_message_names_sha256() {
        let error = HashError::Mismatch {
            expected: [0; 32],
            actual: [0xff; 32],
        };
        let text = format!("{error}");
        assert!(text.starts_with("sha256 mismatch"), "{text}");
        assert!(text.contains(&"ff".repeat(32)), "{text}");
    }

    #[test]
    fn huge_size_does_not_overflow() {
        let mut check = Sha256Check::new(abc(), u64::MAX);
        check.update(b"abc").unwrap();
        assert_eq!(check.remaining(), u64::MAX - 3);
        assert!(matches!(check.finish(), Err(HashError::TooShort { .. })));
    }

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i * 8 + 3) as u8);
        assert_eq!(parse_hex32(&to_hex(&bytes)), Ok(bytes));
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(parse_hex::<2>("0aff"), Ok([0x0a, 0xff]));
    }

    #[test]
    fn parse_hex32_is_strict() {
        let cases: &[(&str, HexError)] = &[
            (
                "",
                HexError::Length {
                    expected: 64,
                    found: 0,
                },
            ),
            (
                &ABC[..63],
                HexError::Length {
                    expected: 64,
                    found: 63,
                },
            ),
            (
                &ABC[..62],
                HexError::Length {
                    expected: 64,
                    found: 62,
                },
            ),
            // Padded on either side: still the wrong length.
            (
                " ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
                HexError::Character(0),
            ),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a ",
                HexError::Character(63),
            ),
            (
                "BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                HexError::Character(0),
            ),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aD",
                HexError::Character(63),
            ),
            (
                "0xa816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                HexError::Character(1),
            ),
            (
                "ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                HexError::Character(0),
            ),
            (
                "+a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                HexError::Character(0),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(parse_hex32(text), Err(*error), "{text:?}");
        }
        let long = format!("{ABC}0");
        assert_eq!(
            parse_hex32(&long),
            Err(HexError::Length {
                expected: 64,
                found: 65
            })
        );
        // A multi-byte character is counted in bytes and refused, never split.
        let accent = format!("{}\u{e9}", &ABC[..62]);
        assert_eq!(parse_hex32(&accent), Err(HexError::Character(62)));
    }
}
