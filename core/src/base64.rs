//! Standard base64 (RFC 4648 §4, with padding), the encoding of minisign's key and signature lines.
//!
//! Decoding is strict on purpose: a signature line is untrusted input, and accepting only
//! the one canonical spelling of each byte string means a file that passes here cannot
//! be edited into another file that also passes. Whitespace, missing or extra padding,
//! characters outside the alphabet and non-zero unused bits are all refused.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a base64 string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// The length is not a multiple of four: the text was truncated or has extra characters.
    Length,
    /// A byte outside the alphabet, at this offset.
    Character(usize),
    /// Padding that is not one or two `=` at the very end.
    Padding,
    /// The unused low bits of the last character are not zero, so the text is not the
    /// canonical encoding of any byte string.
    NonCanonical,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64Error::Length => f.write_str("base64 length is not a multiple of 4 (truncated?)"),
            Base64Error::Character(at) => write!(f, "invalid base64 character at offset {at}"),
            Base64Error::Padding => f.write_str("invalid base64 padding"),
            Base64Error::NonCanonical => f.write_str("non-canonical base64 (unused bits set)"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Base64Error {}

/// Encode `bytes` as standard base64 with `=` padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let group = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        // Each output character carries six bits of the 24-bit group, high bits first.
        let symbol = |shift: u32| char::from(ALPHABET[((group >> shift) & 0x3f) as usize]);
        out.push(symbol(18));
        out.push(symbol(12));
        out.push(if chunk.len() > 1 { symbol(6) } else { '=' });
        out.push(if chunk.len() > 2 { symbol(0) } else { '=' });
    }
    out
}

/// The six-bit value of one alphabet character, or `None` for anything else (`=` included).
fn value(byte: u8) -> Option<u32> {
    let v = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decode standard, padded base64, refusing every non-canonical spelling.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let input = text.as_bytes();
    if !input.len().is_multiple_of(4) {
        return Err(Base64Error::Length);
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let groups = input.len() / 4;
    for (index, group) in input.chunks_exact(4).enumerate() {
        let offset = index * 4;
        let last = index + 1 == groups;
        // Padding may only appear in the last group, as `xx==` or `xxx=`.
        let padding = match (group[2], group[3]) {
            (b'=', b'=') if last => 2,
            (_, b'=') if last => 1,
            _ => 0,
        };
        let mut bits = 0u32;
        for (position, &byte) in group[..4 - padding].iter().enumerate() {
            let v = match value(byte) {
                Some(v) => v,
                None if byte == b'=' => return Err(Base64Error::Padding),
                None => return Err(Base64Error::Character(offset + position)),
            };
            bits |= v << (18 - 6 * position as u32);
        }
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        match padding {
            0 => out.extend_from_slice(&bytes),
            1 if bits & 0xff == 0 => out.extend_from_slice(&bytes[..2]),
            2 if bits & 0xffff == 0 => out.push(bytes[0]),
            _ => return Err(Base64Error::NonCanonical),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4648 §10 test vectors.
    const RFC_VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_encode() {
        for (plain, encoded) in RFC_VECTORS {
            assert_eq!(encode(plain.as_bytes()), *encoded, "encode {plain:?}");
        }
    }

    #[test]
    fn rfc4648_vectors_decode() {
        for (plain, encoded) in RFC_VECTORS {
            assert_eq!(
                decode(encoded).unwrap(),
                plain.as_bytes(),
                "decode {encoded:?}"
            );
        }
    }

    #[test]
    fn every_byte_and_length_round_trips() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for len in 0..bytes.len() {
            let text = encode(&bytes[..len]);
            assert_eq!(decode(&text).unwrap(), &bytes[..len]);
        }
    }

    #[test]
    fn both_special_characters() {
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn refuses_bad_input() {
        let cases: &[(&str, Base64Error)] = &[
            // Truncated: one, two or three characters missing from the last group.
            ("Zm9", Base64Error::Length),
            ("Zm9vY", Base64Error::Length),
            ("Zg=", Base64Error::Length),
            // Padding missing entirely is also a length error.
            ("Zg", Base64Error::Length),
            ("Zm8", Base64Error::Length),
            // Characters outside the alphabet, whitespace and the URL-safe alphabet included.
            ("Zm9v!mFy", Base64Error::Character(4)),
            (" Zm9", Base64Error::Character(0)),
            ("Zm9v\n", Base64Error::Length),
            ("Zm9v\nZm9", Base64Error::Character(4)),
            ("Zm-v", Base64Error::Character(2)),
            ("Zm_v", Base64Error::Character(2)),
            ("Zm9\u{e9}", Base64Error::Length),
            // Padding in the wrong place.
            ("Zg==Zm9v", Base64Error::Padding),
            ("Z===", Base64Error::Padding),
            ("====", Base64Error::Padding),
            ("Zm=v", Base64Error::Padding),
            ("=m9v", Base64Error::Padding),
            // Unused bits set: "Zh==" and "Zm9=" decode to the same bytes as "Zg==" and "Zm8=".
            ("Zh==", Base64Error::NonCanonical),
            ("Zm9=", Base64Error::NonCanonical),
        ];
        for (text, error) in cases {
            assert_eq!(decode(text), Err(*error), "decode {text:?}");
        }
    }

    #[test]
    fn errors_display_one_line() {
        for error in [
            Base64Error::Length,
            Base64Error::Character(3),
            Base64Error::Padding,
            Base64Error::NonCanonical,
        ] {
            let text = alloc::format!("{error}");
            assert!(!text.is_empty() && !text.contains('\n'));
        }
    }
}
