//! The repository index (DESIGN §4): a strict, line-based text format that parses and writes back byte for byte.
//!
//! ```text
//! amber-index 1
//! arch aarch64
//! serial 1732300000
//! expires 1735000000
//! pkg busybox 1.36.1-r2 size=812345 sha256=<64 hex> deps=musl provides=sh,vi
//! ```
//!
//! The rules, all enforced by [`parse`]; anything else is an error naming the
//! 1-based line:
//!
//! - UTF-8; every line ends with `\n`, the last one too; no empty lines, no
//!   `\r`, tabs or other control characters; fields are separated by exactly one
//!   space, with no leading or trailing space.
//! - The four header lines come first, in this order: `amber-index 1`,
//!   `arch ARCH` (`[a-z0-9_]+`, at most 32 bytes), `serial N`, `expires N`
//!   (decimal `u64`, no sign, no leading zeros).
//! - Then one `pkg NAME VERSION key=value...` line per package (possibly none).
//!   Keys come in this order: `size=` (image file size in bytes, the download
//!   cap), `sha256=` (exactly 64 lowercase hex digits: the hash of the image),
//!   `deps=` (comma-separated dependencies, as in `musl>=1.2.4`), `provides=`
//!   (comma-separated package names). `size` and `sha256` are required; a list
//!   that is empty is written by omitting its key, so `deps=` is an error.
//!   Unknown, repeated and out-of-order keys are errors; so are duplicate
//!   entries in a list.
//! - A hash that is missing, empty, short, long, space-padded, uppercase or not
//!   hex is an error, never "no check" (SECURITY-TESTS item 3). Only lowercase is
//!   accepted so that every hash has a single spelling.
//! - Packages are sorted by name (bytewise), then by version (apk order), with
//!   no two entries for the same name and version.
//!
//! - Then, optionally, `system BOARD VERSION size=N sha256=H [rollout=...]` lines:
//!   system releases ([`crate::system`]), after every `pkg` line, sorted by board,
//!   then version.
//!
//! [`Index::write`] produces exactly this form, sorted, so
//! `parse(&index.write()) == Ok(index)` for every index [`parse`] returns.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::line::{
    check_line_shape, is_valid_arch, lines, parse_decimal, parse_dependencies, parse_name_list,
    parse_sha256, push_hex, push_list, HashError, LineShapeError, ListError,
};
use crate::system::{System, SystemError};
use crate::version::{is_valid_name, Dependency, PackageId, Version, VersionError};

/// The only index format version this code reads and writes.
const MAGIC: &str = "amber-index 1";

/// One package of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub version: Version,
    /// Size of the image file in bytes; downloads stop there.
    pub size: u64,
    /// SHA-256 of the image file.
    pub sha256: [u8; 32],
    pub deps: Vec<Dependency>,
    pub provides: Vec<String>,
}

impl Entry {
    /// The package identity, `name-version`.
    pub fn id(&self) -> PackageId {
        PackageId {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }

    /// The image's file name in the repository: `<id>.squashfs`.
    pub fn file_name(&self) -> String {
        let mut name = String::new();
        let _ = write!(name, "{}-{}.squashfs", self.name, self.version);
        name
    }

    /// Appends the entry's `pkg ...` line, newline included.
    pub fn write_line(&self, out: &mut String) {
        let _ = write!(
            out,
            "pkg {} {} size={} sha256=",
            self.name, self.version, self.size
        );
        push_hex(out, &self.sha256);
        if !self.deps.is_empty() {
            out.push_str(" deps=");
            push_list(out, &self.deps);
        }
        if !self.provides.is_empty() {
            out.push_str(" provides=");
            push_list(out, &self.provides);
        }
        out.push('\n');
    }

    /// Reports whether the entry has the name or provides it.
    pub fn has_or_provides(&self, name: &str) -> bool {
        self.name == name || self.provides.iter().any(|provided| provided == name)
    }
}

/// A parsed repository index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub arch: String,
    /// Grows with every published index; clients refuse a lower one.
    pub serial: u64,
    /// Unix seconds after which the index is stale.
    pub expires: u64,
    /// Sorted by name, then version, after [`parse`].
    pub packages: Vec<Entry>,
    /// System releases (DESIGN §11, [`crate::system`]), sorted by board, then version.
    pub systems: Vec<System>,
}

/// Why an index was rejected, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexError {
    /// The 1-based line number.
    pub line: usize,
    pub reason: IndexErrorReason,
}

/// What was wrong with an index line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexErrorReason {
    /// The first line is not `amber-index N`.
    NotAnIndex,
    /// The first line is `amber-index N` with an `N` other than 1.
    UnsupportedFormat,
    /// The text does not end with a newline: probably cut short.
    MissingFinalNewline,
    /// Empty line, control character, or bad spacing.
    Shape(LineShapeError),
    /// A header line (`arch`, `serial`, `expires`) is missing or out of place.
    ExpectedHeader(&'static str),
    /// The architecture is not `[a-z0-9_]+` of at most 32 bytes.
    BadArch,
    /// `serial`, `expires` or `size` is not a canonical decimal `u64`.
    BadNumber(&'static str),
    /// A line after the header that does not start with `pkg `.
    UnknownLine,
    /// A `pkg` line without both a name and a version.
    MissingNameOrVersion,
    BadName,
    BadVersion(VersionError),
    /// A field after the version without `=`.
    NotKeyValue,
    UnknownKey(String),
    DuplicateKey(&'static str),
    /// Keys must come in the order size, sha256, deps, provides.
    KeyOutOfOrder(&'static str),
    MissingKey(&'static str),
    /// `deps=` or `provides=` with nothing after it; omit the key instead.
    EmptyList(&'static str),
    BadSha256(HashError),
    BadList(&'static str, ListError),
    /// Two entries with the same name and version.
    DuplicatePackage,
    /// An entry sorts before the one on the previous line.
    NotSorted,
    /// A `system` line that is not one (after the first, every line must be one).
    BadSystem(SystemError),
}

impl fmt::Display for IndexErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use IndexErrorReason::*;
        match self {
            NotAnIndex => write!(f, "not an amber index (expected {MAGIC:?})"),
            UnsupportedFormat => write!(f, "unsupported index format (expected {MAGIC:?})"),
            MissingFinalNewline => f.write_str("last line does not end with a newline"),
            Shape(error) => write!(f, "{error}"),
            ExpectedHeader(key) => write!(f, "expected the {key:?} header line"),
            BadArch => f.write_str("arch is not [a-z0-9_]+ of at most 32 bytes"),
            BadNumber(key) => write!(f, "{key} is not a decimal number"),
            UnknownLine => f.write_str("expected a line starting with \"pkg \""),
            MissingNameOrVersion => f.write_str("pkg line needs a name and a version"),
            BadName => f.write_str("invalid package name"),
            BadVersion(error) => write!(f, "{error}"),
            NotKeyValue => f.write_str("expected key=value after the version"),
            UnknownKey(key) => write!(f, "unknown key {key:?}"),
            DuplicateKey(key) => write!(f, "{key} is given twice"),
            KeyOutOfOrder(key) => {
                write!(f, "{key} is out of order (size, sha256, deps, provides)")
            }
            MissingKey(key) => write!(f, "{key} is missing"),
            EmptyList(key) => write!(f, "{key} is empty (omit the key instead)"),
            BadSha256(error) => write!(f, "sha256 {error}"),
            BadList(key, error) => write!(f, "{key} {error}"),
            DuplicatePackage => f.write_str("package is listed twice"),
            NotSorted => f.write_str("packages are not sorted by name, then version"),
            BadSystem(error) => write!(f, "system line: {error}"),
        }
    }
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "index line {}: {}", self.line, self.reason)
    }
}

impl core::error::Error for IndexError {}

/// The keys of a `pkg` line, in the order they must appear.
const KEYS: [&str; 4] = ["size", "sha256", "deps", "provides"];

/// Parses an index (see the module documentation for the rules).
pub fn parse(text: &str) -> Result<Index, IndexError> {
    let (mut lines, unterminated) = lines(text);
    if let Some(line) = unterminated {
        return Err(IndexError {
            line,
            reason: IndexErrorReason::MissingFinalNewline,
        });
    }
    let (number, format) =
        header_line(&mut lines, "amber-index", 0).map_err(|error| IndexError {
            line: error.line,
            reason: match error.reason {
                IndexErrorReason::ExpectedHeader(_) => IndexErrorReason::NotAnIndex,
                other => other,
            },
        })?;
    if format != "1" {
        return Err(IndexError {
            line: number,
            reason: IndexErrorReason::UnsupportedFormat,
        });
    }
    let (number, arch) = header_line(&mut lines, "arch", number)?;
    if !is_valid_arch(arch) {
        return Err(IndexError {
            line: number,
            reason: IndexErrorReason::BadArch,
        });
    }
    let (number, serial) = header_line(&mut lines, "serial", number)?;
    let serial = parse_decimal(serial).ok_or(IndexError {
        line: number,
        reason: IndexErrorReason::BadNumber("serial"),
    })?;
    let (number, expires) = header_line(&mut lines, "expires", number)?;
    let expires = parse_decimal(expires).ok_or(IndexError {
        line: number,
        reason: IndexErrorReason::BadNumber("expires"),
    })?;
    let mut packages: Vec<Entry> = Vec::new();
    let mut systems: Vec<System> = Vec::new();
    for (number, line) in lines {
        if line.starts_with("system ") || !systems.is_empty() {
            let system = crate::system::parse_line(line).map_err(|error| IndexError {
                line: number,
                reason: IndexErrorReason::BadSystem(error),
            })?;
            if let Some(previous) = systems.last() {
                let order = previous
                    .board
                    .cmp(&system.board)
                    .then_with(|| previous.version.cmp(&system.version));
                if order != core::cmp::Ordering::Less {
                    return Err(IndexError {
                        line: number,
                        reason: if order == core::cmp::Ordering::Equal {
                            IndexErrorReason::DuplicatePackage
                        } else {
                            IndexErrorReason::NotSorted
                        },
                    });
                }
            }
            systems.push(system);
            continue;
        }
        let entry = parse_package(line).map_err(|reason| IndexError {
            line: number,
            reason,
        })?;
        if let Some(previous) = packages.last() {
            let order = previous
                .name
                .cmp(&entry.name)
                .then_with(|| previous.version.cmp(&entry.version));
            let reason = match order {
                core::cmp::Ordering::Less => None,
                core::cmp::Ordering::Equal => Some(IndexErrorReason::DuplicatePackage),
                core::cmp::Ordering::Greater => Some(IndexErrorReason::NotSorted),
            };
            if let Some(reason) = reason {
                return Err(IndexError {
                    line: number,
                    reason,
                });
            }
        }
        packages.push(entry);
    }
    Ok(Index {
        arch: String::from(arch),
        serial,
        expires,
        packages,
        systems,
    })
}

/// Takes the next line, which must be `KEY VALUE`; `previous` is the number of
/// the line before, to name the missing line when the text ends early.
fn header_line<'t>(
    lines: &mut impl Iterator<Item = (usize, &'t str)>,
    key: &'static str,
    previous: usize,
) -> Result<(usize, &'t str), IndexError> {
    let Some((number, line)) = lines.next() else {
        return Err(IndexError {
            line: previous + 1,
            reason: IndexErrorReason::ExpectedHeader(key),
        });
    };
    let fail = |reason| IndexError {
        line: number,
        reason,
    };
    check_line_shape(line).map_err(|error| fail(IndexErrorReason::Shape(error)))?;
    match line.split_once(' ') {
        Some((found, value)) if found == key => Ok((number, value)),
        _ => Err(fail(IndexErrorReason::ExpectedHeader(key))),
    }
}

/// Parses one `pkg ...` line; generation files reuse it.
pub(crate) fn parse_package(line: &str) -> Result<Entry, IndexErrorReason> {
    check_line_shape(line).map_err(IndexErrorReason::Shape)?;
    let mut fields = line.split(' ');
    if fields.next() != Some("pkg") {
        return Err(IndexErrorReason::UnknownLine);
    }
    let (Some(name), Some(version)) = (fields.next(), fields.next()) else {
        return Err(IndexErrorReason::MissingNameOrVersion);
    };
    if !is_valid_name(name) {
        return Err(IndexErrorReason::BadName);
    }
    let version = Version::parse(version).map_err(IndexErrorReason::BadVersion)?;
    let mut size = None;
    let mut sha256 = None;
    let mut deps = Vec::new();
    let mut provides = Vec::new();
    // Which keys were seen, and the position in KEYS of the last one, to
    // enforce uniqueness and order.
    let mut seen = [false; KEYS.len()];
    let mut last = 0;
    for field in fields {
        let (key, value) = field.split_once('=').ok_or(IndexErrorReason::NotKeyValue)?;
        let position = KEYS
            .iter()
            .position(|known| *known == key)
            .ok_or_else(|| IndexErrorReason::UnknownKey(String::from(key)))?;
        let key = KEYS[position];
        if seen[position] {
            return Err(IndexErrorReason::DuplicateKey(key));
        }
        if position < last {
            return Err(IndexErrorReason::KeyOutOfOrder(key));
        }
        seen[position] = true;
        last = position;
        match key {
            "size" => {
                size = Some(parse_decimal(value).ok_or(IndexErrorReason::BadNumber("size"))?);
            }
            "sha256" => {
                sha256 = Some(parse_sha256(value).map_err(IndexErrorReason::BadSha256)?);
            }
            "deps" if value.is_empty() => return Err(IndexErrorReason::EmptyList("deps")),
            "deps" => {
                deps = parse_dependencies(value)
                    .map_err(|error| IndexErrorReason::BadList("deps", error))?;
            }
            _ if value.is_empty() => return Err(IndexErrorReason::EmptyList("provides")),
            _ => {
                provides = parse_name_list(value)
                    .map_err(|error| IndexErrorReason::BadList("provides", error))?;
            }
        }
    }
    // A key seen out of order was reported above; a missing one is reported here.
    let size = size.ok_or(IndexErrorReason::MissingKey("size"))?;
    let sha256 = sha256.ok_or(IndexErrorReason::MissingKey("sha256"))?;
    Ok(Entry {
        name: String::from(name),
        version,
        size,
        sha256,
        deps,
        provides,
    })
}

impl Index {
    /// Writes the index in its one canonical form, packages sorted. Entries are
    /// written as they are; an index built from [`parse`] or from valid
    /// [`Meta`](crate::meta::Meta)s without two equal ids parses back to an equal value.
    pub fn write(&self) -> String {
        let mut sorted: Vec<&Entry> = self.packages.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.version.cmp(&b.version)));
        // Sizing the buffer up front avoids regrowing it for large indexes.
        let mut out = String::with_capacity(64 + sorted.len() * 128);
        let _ = write!(
            out,
            "{MAGIC}\narch {}\nserial {}\nexpires {}\n",
            self.arch, self.serial, self.expires
        );
        for entry in sorted {
            entry.write_line(&mut out);
        }
        let mut systems: Vec<&System> = self.systems.iter().collect();
        systems.sort_by(|a, b| {
            a.board
                .cmp(&b.board)
                .then_with(|| a.version.cmp(&b.version))
        });
        for system in systems {
            system.write_line(&mut out);
        }
        out
    }

    /// The newest system release for `board`.
    pub fn newest_system(&self, board: &str) -> Option<&System> {
        self.systems
            .iter()
            .filter(|system| system.board == board)
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    /// All entries named `name`, in the order stored (oldest first after [`parse`]).
    pub fn find<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.packages.iter().filter(move |entry| entry.name == name)
    }

    /// The newest entry named `name`.
    pub fn newest(&self, name: &str) -> Option<&Entry> {
        self.packages
            .iter()
            .filter(|entry| entry.name == name)
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    /// The entry with exactly this name and version.
    pub fn get(&self, id: &PackageId) -> Option<&Entry> {
        self.packages
            .iter()
            .find(|entry| entry.name == id.name && entry.version == id.version)
    }

    /// All entries that are named `name` or provide it.
    pub fn providers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.packages
            .iter()
            .filter(move |entry| entry.has_or_provides(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const HEADER: &str = "amber-index 1\narch aarch64\nserial 1732300000\nexpires 1735000000\n";

    /// Parses the header plus `body` and renders the result like the rust-analyzer
    /// `check(input, expect)` tests: `ok N` (package count) or the error's Display.
    fn render(text: &str) -> String {
        match parse(text) {
            Ok(index) => format!("ok {}", index.packages.len()),
            Err(error) => error.to_string(),
        }
    }

    fn check(body: &str, expect: &str) {
        let text = format!("{HEADER}{body}");
        assert_eq!(render(&text), expect, "input:\n{text}");
    }

    #[test]
    fn example_from_the_design() {
        let text = format!(
            "{HEADER}pkg busybox 1.36.1-r2 size=812345 sha256={HASH} deps=musl provides=sh,vi\n"
        );
        let index = parse(&text).unwrap();
        assert_eq!(index.arch, "aarch64");
        assert_eq!(index.serial, 1_732_300_000);
        assert_eq!(index.expires, 1_735_000_000);
        let entry = &index.packages[0];
        assert_eq!(entry.id().to_string(), "busybox-1.36.1-r2");
        assert_eq!(entry.file_name(), "busybox-1.36.1-r2.squashfs");
        assert_eq!(entry.size, 812_345);
        assert_eq!(entry.sha256[..4], [0x01, 0x23, 0x45, 0x67]);
        assert_eq!(entry.sha256[31], 0xef);
        assert_eq!(entry.deps, vec![Dependency::any("musl")]);
        assert_eq!(entry.provides, ["sh", "vi"]);
        assert_eq!(index.write(), text);
    }

    #[test]
    fn headers() {
        let pkg = format!("pkg a 1 size=1 sha256={HASH}\n");
        let table: &[(&str, &str)] = &[
            (
                "",
                "index line 1: not an amber index (expected \"amber-index 1\")",
            ),
            ("\n", "index line 1: empty line"),
            (
                "amber-index 1",
                "index line 1: last line does not end with a newline",
            ),
            (
                "amber-index 1\n",
                "index line 2: expected the \"arch\" header line",
            ),
            (
                "amber-index 2\n",
                "index line 1: unsupported index format (expected \"amber-index 1\")",
            ),
            (
                "amber-index  1\n",
                "index line 1: leading, trailing or doubled space",
            ),
            (
                "amber-index 1\r\n",
                "index line 1: control character (tab, carriage return, ...)",
            ),
            (
                "AMBER-INDEX 1\n",
                "index line 1: not an amber index (expected \"amber-index 1\")",
            ),
            (
                "apk-index 1\n",
                "index line 1: not an amber index (expected \"amber-index 1\")",
            ),
            (
                "amber-index 1\nserial 1\narch x\n",
                "index line 2: expected the \"arch\" header line",
            ),
            (
                "amber-index 1\narch \n",
                "index line 2: leading, trailing or doubled space",
            ),
            (
                "amber-index 1\narch\n",
                "index line 2: expected the \"arch\" header line",
            ),
            (
                "amber-index 1\narch x86-64\n",
                "index line 2: arch is not [a-z0-9_]+ of at most 32 bytes",
            ),
            (
                "amber-index 1\narch X86_64\n",
                "index line 2: arch is not [a-z0-9_]+ of at most 32 bytes",
            ),
            (
                "amber-index 1\narch x86_64\n",
                "index line 3: expected the \"serial\" header line",
            ),
            (
                "amber-index 1\narch x86_64\nserial 01\n",
                "index line 3: serial is not a decimal number",
            ),
            (
                "amber-index 1\narch x86_64\nserial -1\n",
                "index line 3: serial is not a decimal number",
            ),
            (
                "amber-index 1\narch x86_64\nserial +1\n",
                "index line 3: serial is not a decimal number",
            ),
            (
                "amber-index 1\narch x86_64\nserial 18446744073709551616\n",
                "index line 3: serial is not a decimal number",
            ),
            (
                "amber-index 1\narch x86_64\nserial 1\n",
                "index line 4: expected the \"expires\" header line",
            ),
            (
                "amber-index 1\narch x86_64\nserial 1\nexpires 1x\n",
                "index line 4: expires is not a decimal number",
            ),
            (
                "amber-index 1\narch x86_64\nserial 1\nexpires 2 3\n",
                "index line 4: expires is not a decimal number",
            ),
            (
                "amber-index 1\narch x86_64\nserial 18446744073709551615\nexpires 0\n",
                "ok 0",
            ),
        ];
        for (text, expect) in table {
            assert_eq!(render(text), *expect, "input: {text:?}");
        }
        // Headers are followed by packages only: a repeated header line is unknown.
        check(
            "arch aarch64\n",
            "index line 5: expected a line starting with \"pkg \"",
        );
        check(&format!("{pkg}\n"), "index line 6: empty line");
        check(&pkg, "ok 1");
    }

    #[test]
    fn sha256_must_be_exactly_64_lowercase_hex_digits() {
        // SECURITY-TESTS item 3: every way of spoiling the hash is a parse error.
        let upper = HASH.to_uppercase();
        let mixed = format!("{}A", &HASH[..63]);
        let short = &HASH[..63];
        let long = format!("{HASH}0");
        let non_hex = format!("{}g", &HASH[..63]);
        let table: &[(&str, String, &str)] = &[
            (
                "missing",
                "pkg a 1 size=1\n".into(),
                "index line 5: sha256 is missing",
            ),
            (
                "missing with deps",
                "pkg a 1 size=1 deps=b\n".into(),
                "index line 5: sha256 is missing",
            ),
            (
                "empty",
                "pkg a 1 size=1 sha256=\n".into(),
                "index line 5: sha256 is empty",
            ),
            (
                "empty then more",
                "pkg a 1 size=1 sha256= deps=b\n".into(),
                "index line 5: sha256 is empty",
            ),
            (
                "short",
                format!("pkg a 1 size=1 sha256={short}\n"),
                "index line 5: sha256 is not 64 hex digits",
            ),
            (
                "one digit",
                "pkg a 1 size=1 sha256=0\n".into(),
                "index line 5: sha256 is not 64 hex digits",
            ),
            (
                "long",
                format!("pkg a 1 size=1 sha256={long}\n"),
                "index line 5: sha256 is not 64 hex digits",
            ),
            (
                "double",
                format!("pkg a 1 size=1 sha256={HASH}{HASH}\n"),
                "index line 5: sha256 is not 64 hex digits",
            ),
            (
                "uppercase",
                format!("pkg a 1 size=1 sha256={upper}\n"),
                "index line 5: sha256 must be lowercase hex",
            ),
            (
                "mixed case",
                format!("pkg a 1 size=1 sha256={mixed}\n"),
                "index line 5: sha256 must be lowercase hex",
            ),
            (
                "non-hex",
                format!("pkg a 1 size=1 sha256={non_hex}\n"),
                "index line 5: sha256 has a character that is not a hex digit",
            ),
            (
                "0x prefix",
                format!("pkg a 1 size=1 sha256=0x{}\n", &HASH[2..]),
                "index line 5: sha256 has a character that is not a hex digit",
            ),
            (
                "padded before",
                format!("pkg a 1 size=1 sha256= {HASH}\n"),
                "index line 5: sha256 is empty",
            ),
            (
                "padded after",
                format!("pkg a 1 size=1 sha256={HASH} \n"),
                "index line 5: leading, trailing or doubled space",
            ),
            (
                "tab padded",
                format!("pkg a 1 size=1 sha256=\t{HASH}\n"),
                "index line 5: control character (tab, carriage return, ...)",
            ),
            (
                "nbsp padded",
                format!("pkg a 1 size=1 sha256=\u{a0}{HASH}\n"),
                "index line 5: sha256 has a character that is not a hex digit",
            ),
            (
                "twice",
                format!("pkg a 1 size=1 sha256={HASH} sha256={HASH}\n"),
                "index line 5: sha256 is given twice",
            ),
            (
                "quoted",
                format!("pkg a 1 size=1 sha256=\"{}\"\n", &HASH[..62]),
                "index line 5: sha256 has a character that is not a hex digit",
            ),
            (
                "other hash",
                format!("pkg a 1 size=1 sha512={HASH}\n"),
                "index line 5: unknown key \"sha512\"",
            ),
            ("fine", format!("pkg a 1 size=1 sha256={HASH}\n"), "ok 1"),
        ];
        for (case, body, expect) in table {
            let text = format!("{HEADER}{body}");
            assert_eq!(render(&text), *expect, "case {case}");
        }
    }

    #[test]
    fn package_lines() {
        let h = HASH;
        let table: &[(String, &str)] = &[
            (format!("pkg a 1 size=0 sha256={h}\n"), "ok 1"),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b,c>=2 provides=d,e\n"),
                "ok 1",
            ),
            (format!("pkg a 1 size=1 sha256={h} provides=d\n"), "ok 1"),
            (format!("pkg a 1 size=1 sha256={h} deps=b~1.2\n"), "ok 1"),
            (
                format!("package a 1 size=1 sha256={h}\n"),
                "index line 5: expected a line starting with \"pkg \"",
            ),
            (
                "# comment\n".into(),
                "index line 5: expected a line starting with \"pkg \"",
            ),
            (
                "pkg\n".into(),
                "index line 5: pkg line needs a name and a version",
            ),
            (
                "pkg a\n".into(),
                "index line 5: pkg line needs a name and a version",
            ),
            (
                format!("pkg A 1 size=1 sha256={h}\n"),
                "index line 5: invalid package name",
            ),
            (
                format!("pkg a-1 1 size=1 sha256={h}\n"),
                "index line 5: invalid package name",
            ),
            (
                format!("pkg a x size=1 sha256={h}\n"),
                "index line 5: version needs a number at byte 0",
            ),
            (
                format!("pkg a 1-1 size=1 sha256={h}\n"),
                "index line 5: version has an unexpected '-' at byte 1",
            ),
            (
                format!("pkg a 1 size=1 {h}\n"),
                "index line 5: expected key=value after the version",
            ),
            (
                format!("pkg a 1 sha256={h}\n"),
                "index line 5: size is missing",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} size=1\n"),
                "index line 5: size is given twice",
            ),
            (
                format!("pkg a 1 size=1 size=1 sha256={h}\n"),
                "index line 5: size is given twice",
            ),
            (
                format!("pkg a 1 sha256={h} size=1\n"),
                "index line 5: size is out of order (size, sha256, deps, provides)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b deps=c\n"),
                "index line 5: deps is out of order (size, sha256, deps, provides)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b deps=c\n"),
                "index line 5: deps is given twice",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} url=x\n"),
                "index line 5: unknown key \"url\"",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} Deps=x\n"),
                "index line 5: unknown key \"Deps\"",
            ),
            (
                format!("pkg a 1 size= sha256={h}\n"),
                "index line 5: size is not a decimal number",
            ),
            (
                format!("pkg a 1 size=01 sha256={h}\n"),
                "index line 5: size is not a decimal number",
            ),
            (
                format!("pkg a 1 size=1k sha256={h}\n"),
                "index line 5: size is not a decimal number",
            ),
            (
                format!("pkg a 1 size=99999999999999999999 sha256={h}\n"),
                "index line 5: size is not a decimal number",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=\n"),
                "index line 5: deps is empty (omit the key instead)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=\n"),
                "index line 5: provides is empty (omit the key instead)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b,\n"),
                "index line 5: deps has a bad item: dependency has an invalid package name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b>=\n"),
                "index line 5: deps has a bad item: dependency has an operator but no version",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b,b\n"),
                "index line 5: deps names the same thing twice",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=B\n"),
                "index line 5: provides has an invalid package name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b-2\n"),
                "index line 5: provides has an invalid package name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b,b\n"),
                "index line 5: provides names the same thing twice",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b=1\n"),
                "index line 5: provides has an invalid package name",
            ),
        ];
        for (body, expect) in table {
            check(body, expect);
        }
    }

    #[test]
    fn packages_must_be_sorted_and_unique() {
        let line =
            |name: &str, version: &str| format!("pkg {name} {version} size=1 sha256={HASH}\n");
        let table: &[(Vec<(&str, &str)>, &str)] = &[
            (vec![("a", "1"), ("a", "2"), ("b", "1")], "ok 3"),
            (vec![("a", "1.9"), ("a", "1.10"), ("a", "1.10-r1")], "ok 3"),
            (vec![("a", "1.0_rc1"), ("a", "1.0"), ("a", "1.0.0")], "ok 3"),
            (
                vec![("b", "1"), ("a", "1")],
                "index line 6: packages are not sorted by name, then version",
            ),
            (
                vec![("a", "2"), ("a", "1")],
                "index line 6: packages are not sorted by name, then version",
            ),
            (
                vec![("a", "1.10"), ("a", "1.9")],
                "index line 6: packages are not sorted by name, then version",
            ),
            (
                vec![("a", "1"), ("a", "1")],
                "index line 6: package is listed twice",
            ),
            (
                vec![("a", "1"), ("b", "1"), ("b", "1")],
                "index line 7: package is listed twice",
            ),
            // Names sort bytewise: `-` (0x2d) before `.` before digits before letters.
            (
                vec![
                    ("a", "1"),
                    ("a-b", "1"),
                    ("a.b", "1"),
                    ("a0", "1"),
                    ("ab", "1"),
                ],
                "ok 5",
            ),
        ];
        for (packages, expect) in table {
            let body: String = packages.iter().map(|(n, v)| line(n, v)).collect();
            check(&body, expect);
        }
    }

    #[test]
    fn write_round_trips_and_sorts() {
        let entry = |name: &str, version: &str, fill: u8, deps: &[&str], provides: &[&str]| Entry {
            name: name.into(),
            version: Version::parse(version).unwrap(),
            size: u64::from(fill) * 1000,
            sha256: [fill; 32],
            deps: deps.iter().map(|d| Dependency::parse(d).unwrap()).collect(),
            provides: provides.iter().map(|p| String::from(*p)).collect(),
        };
        let index = Index {
            arch: "x86_64".into(),
            serial: 7,
            expires: u64::MAX,
            packages: vec![
                entry("musl", "1.2.4-r0", 2, &[], &["libc"]),
                entry(
                    "busybox",
                    "1.36.1-r10",
                    1,
                    &["musl>=1.2", "zlib~1.3"],
                    &["sh", "vi"],
                ),
                entry("busybox", "1.36.1-r2", 0, &["musl"], &[]),
            ],
            systems: vec![],
        };
        let text = index.write();
        let expect = format!(
            "amber-index 1\narch x86_64\nserial 7\nexpires 18446744073709551615\n\
             pkg busybox 1.36.1-r2 size=0 sha256={} deps=musl\n\
             pkg busybox 1.36.1-r10 size=1000 sha256={} deps=musl>=1.2,zlib~1.3 provides=sh,vi\n\
             pkg musl 1.2.4-r0 size=2000 sha256={} provides=libc\n",
            "00".repeat(32),
            "01".repeat(32),
            "02".repeat(32),
        );
        assert_eq!(text, expect);
        let parsed = parse(&text).unwrap();
        let mut sorted = index.clone();
        sorted.packages.sort_by_key(Entry::id);
        assert_eq!(parsed, sorted);
        assert_eq!(parsed.write(), text);
        // An empty index round-trips too.
        let empty = Index {
            arch: "aarch64".into(),
            serial: 0,
            expires: 0,
            packages: vec![],
            systems: vec![],
        };
        assert_eq!(parse(&empty.write()).unwrap(), empty);
    }

    #[test]
    fn lookups() {
        let text = format!(
            "{HEADER}\
             pkg bash 5.2-r0 size=1 sha256={HASH} provides=sh\n\
             pkg busybox 1.35-r0 size=1 sha256={HASH} provides=sh,vi\n\
             pkg busybox 1.36.1-r2 size=1 sha256={HASH} provides=sh,vi\n\
             pkg musl 1.2.4-r0 size=1 sha256={HASH}\n"
        );
        let index = parse(&text).unwrap();
        let ids = |entries: Vec<&Entry>| -> Vec<String> {
            entries.iter().map(|e| e.id().to_string()).collect()
        };
        assert_eq!(
            ids(index.find("busybox").collect()),
            ["busybox-1.35-r0", "busybox-1.36.1-r2"]
        );
        assert_eq!(ids(index.find("vi").collect()), Vec::<String>::new());
        assert_eq!(
            ids(index.providers("sh").collect()),
            ["bash-5.2-r0", "busybox-1.35-r0", "busybox-1.36.1-r2"]
        );
        assert_eq!(ids(index.providers("musl").collect()), ["musl-1.2.4-r0"]);
        assert_eq!(
            index
                .newest("busybox")
                .map(|e| e.id().to_string())
                .as_deref(),
            Some("busybox-1.36.1-r2")
        );
        assert!(index.newest("zsh").is_none());
        let id = PackageId::parse("busybox-1.35-r0").unwrap();
        assert_eq!(index.get(&id).map(|e| e.id()), Some(id));
        assert!(index
            .get(&PackageId::parse("busybox-1.35").unwrap())
            .is_none());
    }
}
