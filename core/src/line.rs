//! What the line formats (the index, `.pkg/meta`, generation files) share: splitting
//! text into numbered lines and checking their shape, and the fields they carry alike
//! (architectures, canonical decimals, hex SHA-256s, comma-separated lists).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::version::{
    Dependency, DependencyError, DependencyView, Provide, ProvideError, ProvideView,
};

/// The longest architecture name accepted, in bytes.
pub const MAX_ARCH_LEN: usize = 32;

/// The longest description accepted, in bytes, in an index line and in `.pkg/meta`.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

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
    let digits = text.as_bytes();
    // The common case in one pass: 64 lowercase hex digits.
    if let Some(pairs) = digits.first_chunk::<64>() {
        if digits.len() == 64 {
            let mut hash = [0u8; 32];
            let mut bad = 0u8;
            for (byte, pair) in hash.iter_mut().zip(pairs.chunks_exact(2)) {
                let (high, low) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
                bad |= high | low;
                *byte = (high << 4) | (low & 15);
            }
            if bad & 0x80 == 0 {
                return Ok(hash);
            }
        }
    }
    if text.is_empty() {
        return Err(HashError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HashError::NotHex);
    }
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(HashError::Uppercase);
    }
    Err(HashError::Length(text.len()))
}

/// The value of each byte as a lowercase hex digit, 0x80 for anything else.
static HEX: [u8; 256] = {
    let mut table = [0x80u8; 256];
    let mut digit = 0;
    while digit < 16 {
        let text = b"0123456789abcdef"[digit];
        table[text as usize] = digit as u8;
        digit += 1;
    }
    table
};

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

/// The pieces of a text between `separator` bytes, as `str::split` gives them: a
/// plain byte loop, since the fields of an index line are short and many.
pub(crate) struct Fields<'t> {
    rest: Option<&'t str>,
    separator: u8,
}

impl<'t> Fields<'t> {
    pub(crate) fn new(text: &'t str, separator: u8) -> Fields<'t> {
        Fields {
            rest: Some(text),
            separator,
        }
    }

    /// What the next fields would be made of, unsplit.
    pub(crate) fn remainder(&self) -> Option<&'t str> {
        self.rest
    }
}

/// The position of the first `wanted` byte, looked for eight bytes at a time.
pub(crate) fn find_byte(bytes: &[u8], wanted: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(wanted);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        if let Some(&word) = chunk.first_chunk::<8>() {
            let found = u64::from_le_bytes(word) ^ pattern;
            // The high bit of the first zero byte is the lowest bit set; bytes after
            // it may show false matches, which do not matter.
            let zeros = found.wrapping_sub(ONES) & !found & HIGH;
            if zeros != 0 {
                return Some(at + (zeros.trailing_zeros() / 8) as usize);
            }
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| byte == wanted)
        .map(|position| at + position)
}

impl<'t> Iterator for Fields<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        let rest = self.rest?;
        match find_byte(rest.as_bytes(), self.separator) {
            Some(at) => {
                // The separator is ASCII, so both sides are whole characters.
                self.rest = rest.get(at + 1..);
                rest.get(..at)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Appends the items of a comma-separated list of provided names, each `NAME` or
/// `NAME=VERSION`, to `out`; no name twice.
pub(crate) fn provide_views<'t>(
    text: &'t str,
    out: &mut Vec<ProvideView<'t>>,
) -> Result<(), ListError> {
    let start = out.len();
    for item in Fields::new(text, b',') {
        let provide = ProvideView::parse(item).map_err(ListError::BadProvide)?;
        if out[start..].iter().any(|seen| seen.name == provide.name) {
            return Err(ListError::Duplicate);
        }
        out.push(provide);
    }
    Ok(())
}

/// Appends the items of a comma-separated list of dependencies to `out`; no repeats,
/// and no conflicts unless `conflicts` allows them.
pub(crate) fn dependency_views<'t>(
    text: &'t str,
    conflicts: bool,
    out: &mut Vec<DependencyView<'t>>,
) -> Result<(), ListError> {
    let start = out.len();
    for item in Fields::new(text, b',') {
        let dependency = DependencyView::parse(item).map_err(ListError::BadDependency)?;
        if out[start..]
            .iter()
            .any(|seen| seen.name.len() == dependency.name.len() && *seen == dependency)
        {
            return Err(ListError::Duplicate);
        }
        out.push(dependency);
    }
    if !conflicts && out[start..].iter().any(|dependency| dependency.conflict) {
        return Err(ListError::Conflict);
    }
    Ok(())
}

/// Parses a comma-separated list of provided names (see [`provide_views`]).
pub(crate) fn parse_provides(text: &str) -> Result<Vec<Provide>, ListError> {
    let mut views = Vec::new();
    provide_views(text, &mut views)?;
    Ok(views.iter().map(ProvideView::to_provide).collect())
}

/// Parses a comma-separated list of dependencies without repeats.
pub(crate) fn parse_dependencies(text: &str) -> Result<Vec<Dependency>, ListError> {
    let mut views = Vec::new();
    dependency_views(text, true, &mut views)?;
    Ok(views.iter().map(DependencyView::to_dependency).collect())
}

/// Parses an `install_if` list: dependencies without repeats and without conflicts.
pub(crate) fn parse_install_if(text: &str) -> Result<Vec<Dependency>, ListError> {
    let mut views = Vec::new();
    dependency_views(text, false, &mut views)?;
    Ok(views.iter().map(DependencyView::to_dependency).collect())
}

/// Parses a `provider_priority`: a canonical decimal from 1 to 65535 (0 is written by
/// leaving the key out).
pub(crate) fn parse_priority(text: &str) -> Option<u16> {
    parse_decimal(text)
        .and_then(|value| u16::try_from(value).ok())
        .filter(|&value| value > 0)
}

/// Why a comma-separated list was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// An item is not a valid dependency.
    BadDependency(DependencyError),
    /// An item is not a valid provided name.
    BadProvide(ProvideError),
    /// A conflict (`!NAME`) where only needs may stand.
    Conflict,
    /// The same item appears twice.
    Duplicate,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::BadDependency(error) => write!(f, "has a bad item: {error}"),
            ListError::BadProvide(error) => write!(f, "has a bad item: {error}"),
            ListError::Conflict => f.write_str("has a conflict (!NAME), which it cannot hold"),
            ListError::Duplicate => f.write_str("names the same thing twice"),
        }
    }
}

/// What a package says about its relations that cannot hold together (apk refuses
/// the same): checked for index lines and `.pkg/meta` alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contradiction {
    /// `provides` names the package's own name.
    ProvidesItself,
    /// `deps` has `!NAME` for the package's own name.
    ConflictsWithItself,
    /// `install_if` names the package's own name: it would wait for itself.
    InstallIfItself,
    /// `deps` needs a name and conflicts with the same versions of it (`x` and `!x`).
    NeedsAndConflicts(String),
    /// `provider_priority` without `provides`: it only orders the providers of a name.
    PriorityWithoutProvides,
}

impl fmt::Display for Contradiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contradiction::ProvidesItself => f.write_str("provides its own name"),
            Contradiction::ConflictsWithItself => f.write_str("conflicts with itself"),
            Contradiction::InstallIfItself => f.write_str("install_if names the package itself"),
            Contradiction::NeedsAndConflicts(name) => {
                write!(f, "both needs and conflicts with {name}")
            }
            Contradiction::PriorityWithoutProvides => f.write_str(
                "provider_priority without provides (it orders the providers of a name)",
            ),
        }
    }
}

/// Checks a package's relations with itself: what a package named `name` needs,
/// provides and is installed with must not contradict each other.
pub(crate) fn check_relations(
    name: &str,
    deps: &[DependencyView<'_>],
    provides: &[ProvideView<'_>],
    provider_priority: u16,
    install_if: &[DependencyView<'_>],
) -> Result<(), Contradiction> {
    if provides.iter().any(|provide| provide.name == name) {
        return Err(Contradiction::ProvidesItself);
    }
    if deps.iter().any(|dep| dep.conflict && dep.name == name) {
        return Err(Contradiction::ConflictsWithItself);
    }
    if install_if.iter().any(|dep| dep.name == name) {
        return Err(Contradiction::InstallIfItself);
    }
    // A conflict without a constraint covers every version a need could allow; one
    // with the need's own constraint covers exactly those.
    for conflict in deps.iter().filter(|dep| dep.conflict) {
        let contradicted = deps.iter().any(|need| {
            !need.conflict
                && need.name == conflict.name
                && (conflict.constraint.is_none() || conflict.constraint == need.constraint)
        });
        if contradicted {
            return Err(Contradiction::NeedsAndConflicts(String::from(
                conflict.name,
            )));
        }
    }
    if provider_priority > 0 && provides.is_empty() {
        return Err(Contradiction::PriorityWithoutProvides);
    }
    Ok(())
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
///
/// It runs on every line of a 10,000-package index, so printable ASCII, by far the
/// common case, is checked eight bytes at a time; a word with any other byte goes
/// through the careful loop. The control characters are Unicode's
/// (`char::is_control`): bytes below 0x20, 0x7f, and U+0080..U+009F, which UTF-8
/// writes as 0xc2 followed by 0x80..0x9f.
pub(crate) fn check_line_shape(line: &str) -> Result<(), LineShapeError> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = line.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return Err(LineShapeError::Empty);
    };
    let mut spacing = first == b' ' || last == b' ';
    let mut previous = 0u8;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let Some(&word) = chunk.first_chunk::<8>() else {
            continue;
        };
        let word = u64::from_le_bytes(word);
        // Bytes 0x20..0x7e only: no high bit, none below 0x20, none equal to 0x7f.
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        let delete = (word ^ (ONES * 0x7f)).wrapping_sub(ONES) & !(word ^ (ONES * 0x7f)) & HIGH;
        if (word & HIGH) | below_space | delete != 0 {
            for &byte in chunk {
                check_byte(byte, previous, &mut spacing)?;
                previous = byte;
            }
            continue;
        }
        // Exactly the space bytes, as their high bits; a pair is two neighbours, or
        // the last byte before this word and the first of it.
        let spaces = word ^ (ONES * 0x20);
        let spaces = !(((spaces & !HIGH) + !HIGH) | spaces | !HIGH);
        spacing |= spaces & (spaces >> 8) != 0 || (previous == b' ' && chunk[0] == b' ');
        previous = chunk[7];
    }
    for &byte in chunks.remainder() {
        check_byte(byte, previous, &mut spacing)?;
        previous = byte;
    }
    if spacing {
        return Err(LineShapeError::Spacing);
    }
    Ok(())
}

/// One byte of [`check_line_shape`]'s careful loop.
fn check_byte(byte: u8, previous: u8, spacing: &mut bool) -> Result<(), LineShapeError> {
    if byte < 0x20 || byte == 0x7f || (previous == 0xc2 && (0x80..0xa0).contains(&byte)) {
        return Err(LineShapeError::ControlCharacter);
    }
    *spacing |= byte == b' ' && previous == b' ';
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
    let unterminated = match complete {
        None if !text.is_empty() => Some(text.bytes().filter(|&b| b == b'\n').count() + 1),
        _ => None,
    };
    let body = complete.unwrap_or(text);
    let iter = (!text.is_empty())
        .then(|| body.split('\n'))
        .into_iter()
        .flatten()
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
    fn line_shape_agrees_with_the_plain_rules() {
        // The word-at-a-time check against the rules written the plain way, on lines
        // built from a few troublesome pieces at every alignment.
        let plain = |line: &str| {
            if line.is_empty() {
                Err(LineShapeError::Empty)
            } else if line.chars().any(char::is_control) {
                Err(LineShapeError::ControlCharacter)
            } else if line.starts_with(' ') || line.ends_with(' ') || line.contains("  ") {
                Err(LineShapeError::Spacing)
            } else {
                Ok(())
            }
        };
        let pieces = [
            "a", " ", "  ", "\t", "\u{7f}", "\u{85}", "é", "\u{a0}", "~", "\r", "abcdefgh",
        ];
        let mut random = crate::random::Random::new(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let mut line = String::new();
            for _ in 0..random.below(7) {
                line.push_str(pieces[random.index(pieces.len())]);
                line.push_str(&"x".repeat(random.index(9)));
            }
            assert_eq!(check_line_shape(&line), plain(&line), "{line:?}");
        }
    }

    #[test]
    fn find_byte_finds_the_first() {
        let text = b"abc,def,ghijklmnopqrstuvwxyz,,0123456789";
        for start in 0..text.len() {
            for end in start..=text.len() {
                let piece = &text[start..end];
                assert_eq!(
                    find_byte(piece, b','),
                    piece.iter().position(|&b| b == b','),
                    "{start}..{end}"
                );
            }
        }
        assert_eq!(find_byte(&[0x80, 0x2c, 0xac], b','), Some(1));
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
