//! What the line formats (the index, `.pkg/meta`, generation files) share: splitting
//! text into numbered lines and checking their shape, and the fields they carry alike
//! (architectures, canonical decimals, hex SHA-256s, comma-separated lists).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::version::{is_valid_name, parse_dependency_list, Dependency, DependencyError};

/// The longest architecture name accepted, in bytes.
pub const MAX_ARCH_LEN: usize = 32;

/// Reports whether `arch` is a valid architecture name such as `aarch64` or `x86_64`.
pub fn is_valid_arch(arch: &str) -> bool {
    !arch.is_empty()
        && arch.len() <= MAX_ARCH_LEN
        && arch
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Why a hex-encoded SHA-256 was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashError {
    /// Nothing was given.
    Empty,
    /// A character is not a hex digit (a space included).
    NotHex,
    /// Hex digits are there, but some are uppercase.
    Uppercase,
    /// The digits are lowercase hex, but there are not 64 of them.
    Length(usize),
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::Empty => f.write_str("is empty"),
            HashError::NotHex => f.write_str("has a character that is not a hex digit"),
            HashError::Uppercase => f.write_str("must be lowercase hex"),
            HashError::Length(_) => f.write_str("is not 64 hex digits"),
        }
    }
}

impl core::error::Error for HashError {}

/// Decodes exactly 64 lowercase hex digits into 32 bytes.
pub fn parse_sha256(text: &str) -> Result<[u8; 32], HashError> {
    if text.is_empty() {
        return Err(HashError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HashError::NotHex);
    }
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(HashError::Uppercase);
    }
    if text.len() != 64 {
        return Err(HashError::Length(text.len()));
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(hash)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        // Callers checked the digit already; nothing else reaches here.
        _ => 0,
    }
}

/// Appends `bytes` to `out` as lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
}

/// Parses a canonical decimal `u64`: digits only, no leading zeros, no overflow.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.bytes().try_fold(0u64, |value, b| {
        if !b.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Parses a comma-separated list of package names (no empty items, no repeats).
pub(crate) fn parse_name_list(text: &str) -> Result<Vec<String>, ListError> {
    let mut names: Vec<String> = Vec::new();
    for name in text.split(',') {
        if !is_valid_name(name) {
            return Err(ListError::BadName);
        }
        if names.iter().any(|seen| seen == name) {
            return Err(ListError::Duplicate);
        }
        names.push(String::from(name));
    }
    Ok(names)
}

/// Parses a comma-separated list of dependencies without repeats.
pub(crate) fn parse_dependencies(text: &str) -> Result<Vec<Dependency>, ListError> {
    let dependencies = parse_dependency_list(text).map_err(ListError::BadDependency)?;
    for (i, dependency) in dependencies.iter().enumerate() {
        if dependencies[..i].contains(dependency) {
            return Err(ListError::Duplicate);
        }
    }
    Ok(dependencies)
}

/// Why a comma-separated list was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// An item is not a valid package name (an empty item included).
    BadName,
    /// An item is not a valid dependency.
    BadDependency(DependencyError),
    /// The same item appears twice.
    Duplicate,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::BadName => f.write_str("has an invalid package name"),
            ListError::BadDependency(error) => write!(f, "has a bad item: {error}"),
            ListError::Duplicate => f.write_str("names the same thing twice"),
        }
    }
}

/// Writes items separated by commas.
pub(crate) fn push_list<T: fmt::Display>(out: &mut String, items: &[T]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing into a String cannot fail.
        let _ = write!(out, "{item}");
    }
}

/// Checks the shape of a line: no control characters, single spaces only.
pub(crate) fn check_line_shape(line: &str) -> Result<(), LineShapeError> {
    if line.is_empty() {
        return Err(LineShapeError::Empty);
    }
    // One plain loop over the bytes (decoding every character, with a string search
    // for the doubled space, took a third of the time of parsing an index). Control
    // characters are `char::is_control`'s: C0 and DEL are single bytes, and C1 (U+0080
    // to U+009F) is 0xC2 followed by 0x80 to 0x9F (in UTF-8, 0xC2 only ever leads).
    let bytes = line.as_bytes();
    let mut doubled = false;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let next = bytes.get(at + 1).copied().unwrap_or(0);
        if byte < 0x20 || byte == 0x7f || (byte == 0xc2 && (0x80..=0x9f).contains(&next)) {
            return Err(LineShapeError::ControlCharacter);
        }
        doubled |= byte == b' ' && next == b' ';
        at += 1;
    }
    if bytes[0] == b' ' || bytes[bytes.len() - 1] == b' ' || doubled {
        return Err(LineShapeError::Spacing);
    }
    Ok(())
}

/// Why a line's outer shape was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineShapeError {
    /// The line has nothing on it.
    Empty,
    /// A tab, carriage return or other control character.
    ControlCharacter,
    /// A leading, trailing or doubled space.
    Spacing,
}

impl fmt::Display for LineShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineShapeError::Empty => f.write_str("empty line"),
            LineShapeError::ControlCharacter => {
                f.write_str("control character (tab, carriage return, ...)")
            }
            LineShapeError::Spacing => f.write_str("leading, trailing or doubled space"),
        }
    }
}

/// Splits text into lines, each paired with its 1-based number; the last line
/// must end with a newline, which yields a `None` line number for the error.
pub(crate) fn lines(text: &str) -> (impl Iterator<Item = (usize, &str)>, Option<usize>) {
    let complete = text.strip_suffix('\n');
    let body = complete.unwrap_or(text);
    let count = if text.is_empty() {
        0
    } else {
        body.split('\n').count()
    };
    let unterminated = if complete.is_none() && !text.is_empty() {
        Some(count)
    } else {
        None
    };
    let iter = body
        .split('\n')
        .take(count)
        .enumerate()
        .map(|(i, line)| (i + 1, line));
    (iter, unterminated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte scan for control characters finds exactly what `char::is_control`
    /// finds, for every character up to U+2FFF (C0, DEL, C1 and their neighbours) and
    /// the highest ones, wherever in the line it stands.
    #[test]
    fn control_characters_are_found_from_the_bytes() {
        let chars = (0..0x3000u32)
            .chain(0x10_fff0..=0x10_ffff)
            .filter_map(char::from_u32);
        for c in chars {
            for line in [format!("a{c}b"), format!("{c}b"), format!("a{c}")] {
                let found = check_line_shape(&line) == Err(LineShapeError::ControlCharacter);
                let spacing = c == ' ';
                assert_eq!(found, c.is_control(), "U+{:04X} in {line:?}", c as u32);
                assert!(
                    found || spacing || check_line_shape(&line).is_ok(),
                    "{line:?}"
                );
            }
        }
    }

    #[test]
    fn sha256_decoding() {
        assert_eq!(parse_sha256(&"ff".repeat(32)), Ok([0xff; 32]));
        assert_eq!(parse_sha256(&"a5".repeat(32)), Ok([0xa5; 32]));
        let mut text = String::new();
        push_hex(&mut text, &[0x00, 0x9f, 0xa0, 0xff]);
        assert_eq!(text, "009fa0ff");
    }

    #[test]
    fn decimals() {
        let table: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("7", Some(7)),
            ("812345", Some(812_345)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("", None),
            ("00", None),
            ("07", None),
            ("-1", None),
            ("+1", None),
            ("1_000", None),
            ("1e3", None),
            ("٣", None),
        ];
        for (text, expect) in table {
            assert_eq!(parse_decimal(text), *expect, "{text:?}");
        }
    }
}
