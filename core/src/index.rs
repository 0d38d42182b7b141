//! The repository index (DESIGN §4): a strict, line-based text format that parses and writes back byte for byte.
//!
//! ```text
//! amber-index 1
//! arch aarch64
//! serial 1732300000
//! expires 1735000000
//! pkg busybox 1.36.1-r2 size=812345 sha256=<64 hex> deps=musl provides=sh,vi
//! pkg dnsmasq-full 2.90-r0 size=1 sha256=<64 hex> deps=!dnsmasq provides=dnsmasq=2.90-r0 provider_priority=10 description=DNS and DHCP, every feature
//! pkg zlib 1.3.1-r0 size=1 sha256=<64 hex> provides=so:libz.so.1=1.3.1
//! pkg zlib-doc 1.3.1-r0 size=1 sha256=<64 hex> install_if=zlib,man-pages
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
//!   Keys come in this order, each at most once:
//!   - `size=` (image file size in bytes, the download cap) and `sha256=` (exactly
//!     64 lowercase hex digits: the hash of the image), both required;
//!   - `deps=`: comma-separated dependencies (`musl>=1.2.4`); one with a leading
//!     `!` is a conflict (`!dnsmasq`, `!foo<2`);
//!   - `provides=`: comma-separated names the package also provides, each plain
//!     (`sh`) or versioned (`so:libz.so.1=1.2.13`); only a versioned provide
//!     satisfies a dependency with a constraint;
//!   - `provider_priority=`: 1 to 65535, which provider of a name to choose when
//!     nobody asked for one by its own name (higher first);
//!   - `install_if=`: comma-separated dependencies (no conflicts); once all of them
//!     are installed the package is installed too, and it goes when one of them
//!     goes;
//!   - `description=`: one line of text, at most 1024 bytes; it is always last and
//!     takes the rest of the line, single spaces included.
//!
//!   An empty value (a list, the description) or a priority of 0 is written by
//!   omitting the key, so `deps=` is an error. Unknown, repeated and out-of-order
//!   keys are errors; so are duplicate entries in a list.
//! - A package's relations must not contradict each other (apk refuses the same):
//!   it may not provide its own name, conflict with itself, wait for itself in
//!   `install_if`, need and conflict with the same versions of a name (`x` and
//!   `!x`), or have a `provider_priority` without `provides`.
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
//!
//! The parser runs over every index on every pkg command, so it is written for speed
//! as well as strictness: one pass over each line's bytes for its shape, keys matched
//! without a search, the hash decoded in one pass; see the solver bench.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::line::{
    check_line_shape, check_relations, dependency_views, find_byte, is_valid_arch, lines,
    parse_decimal, parse_priority, parse_sha256, provide_views, push_hex, push_list, Contradiction,
    Fields, HashError, LineShapeError, ListError,
};
use crate::system::{System, SystemError};
use crate::version::{
    check_version, compare, is_valid_name, Dependency, DependencyView, PackageId, Provide,
    ProvideView, Version, VersionError,
};

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
    /// Needs and, with `conflict` set, conflicts.
    pub deps: Vec<Dependency>,
    pub provides: Vec<Provide>,
    /// Which provider of a name to choose first, higher first; 0 when not given.
    pub provider_priority: u16,
    /// Installed automatically once all of these are installed, removed when one goes.
    pub install_if: Vec<Dependency>,
    /// One line of text; empty when not given.
    pub description: String,
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
        if self.provider_priority > 0 {
            let _ = write!(out, " provider_priority={}", self.provider_priority);
        }
        if !self.install_if.is_empty() {
            out.push_str(" install_if=");
            push_list(out, &self.install_if);
        }
        if !self.description.is_empty() {
            out.push_str(" description=");
            out.push_str(&self.description);
        }
        out.push('\n');
    }

    /// Reports whether the entry has the name or provides it.
    pub fn has_or_provides(&self, name: &str) -> bool {
        self.name == name || self.provides.iter().any(|provided| provided.name == name)
    }

    /// The needs, without the conflicts.
    pub fn needs(&self) -> impl Iterator<Item = &Dependency> {
        self.deps.iter().filter(|dep| !dep.conflict)
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
    /// Keys must come in the order of [`KEYS`].
    KeyOutOfOrder(&'static str),
    MissingKey(&'static str),
    /// `deps=`, `provides=`, `install_if=` or `description=` with nothing after it;
    /// omit the key instead.
    EmptyList(&'static str),
    /// `provider_priority` is not a decimal from 1 to 65535.
    BadPriority,
    /// The description is longer than [`crate::line::MAX_DESCRIPTION_LEN`].
    DescriptionTooLong,
    /// The package's relations contradict each other.
    Contradiction(Contradiction),
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
                write!(f, "{key} is out of order ({})", KEYS.join(", "))
            }
            MissingKey(key) => write!(f, "{key} is missing"),
            EmptyList(key) => write!(f, "{key} is empty (omit the key instead)"),
            BadSha256(error) => write!(f, "sha256 {error}"),
            BadList(key, error) => write!(f, "{key} {error}"),
            BadPriority => f.write_str("provider_priority is not a number from 1 to 65535"),
            DescriptionTooLong => f.write_str("description is too long"),
            Contradiction(error) => write!(f, "package {error}"),
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
pub const KEYS: [&str; 7] = [
    "size",
    "sha256",
    "deps",
    "provides",
    "provider_priority",
    "install_if",
    "description",
];

/// An index parsed without copying: every name, version, list item and
/// description is a slice of the text. This is what pkg solves against, since a
/// 10,000-package index parsed into owned [`Entry`]s costs tens of thousands of
/// allocations; [`IndexView::entry`] makes the owned entry of the few packages
/// chosen. It can only come from [`parse_view`], so its entries are valid and
/// sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexView<'t> {
    pub arch: &'t str,
    pub serial: u64,
    pub expires: u64,
    packages: Vec<EntryView<'t>>,
    deps: Vec<DependencyView<'t>>,
    provides: Vec<ProvideView<'t>>,
    install_if: Vec<DependencyView<'t>>,
    /// The `system` lines, sorted by board, then version (owned: an index has few).
    pub systems: Vec<System>,
}

/// One package of an [`IndexView`]; its lists are in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView<'t> {
    pub name: &'t str,
    /// A version [`check_version`] accepted.
    pub version: &'t str,
    pub size: u64,
    pub sha256: [u8; 32],
    pub provider_priority: u16,
    /// Empty when not given.
    pub description: &'t str,
    deps: (u32, u32),
    provides: (u32, u32),
    install_if: (u32, u32),
}

fn span(range: (u32, u32)) -> core::ops::Range<usize> {
    range.0 as usize..range.1 as usize
}

fn length_u32(length: usize) -> u32 {
    // An index over 64 MiB is refused before it is parsed; its lists are far shorter.
    u32::try_from(length).unwrap_or(u32::MAX)
}

impl<'t> IndexView<'t> {
    /// The packages, sorted by name, then version.
    pub fn packages(&self) -> &[EntryView<'t>] {
        &self.packages
    }

    /// A package's dependencies, conflicts among them.
    pub fn deps(&self, entry: &EntryView<'t>) -> &[DependencyView<'t>] {
        &self.deps[span(entry.deps)]
    }

    /// A package's provides.
    pub fn provides(&self, entry: &EntryView<'t>) -> &[ProvideView<'t>] {
        &self.provides[span(entry.provides)]
    }

    /// A package's `install_if`.
    pub fn install_if(&self, entry: &EntryView<'t>) -> &[DependencyView<'t>] {
        &self.install_if[span(entry.install_if)]
    }

    /// The owned entry of one package.
    pub fn entry(&self, entry: &EntryView<'t>) -> Entry {
        Entry {
            name: String::from(entry.name),
            version: Version::from_checked(entry.version),
            size: entry.size,
            sha256: entry.sha256,
            deps: self
                .deps(entry)
                .iter()
                .map(DependencyView::to_dependency)
                .collect(),
            provides: self
                .provides(entry)
                .iter()
                .map(ProvideView::to_provide)
                .collect(),
            provider_priority: entry.provider_priority,
            install_if: self
                .install_if(entry)
                .iter()
                .map(DependencyView::to_dependency)
                .collect(),
            description: String::from(entry.description),
        }
    }

    /// The owned index.
    pub fn to_index(&self) -> Index {
        Index {
            arch: String::from(self.arch),
            serial: self.serial,
            expires: self.expires,
            packages: self
                .packages
                .iter()
                .map(|entry| self.entry(entry))
                .collect(),
            systems: self.systems.clone(),
        }
    }

    /// The newest system release for `board`.
    pub fn newest_system(&self, board: &str) -> Option<&System> {
        newest_system(&self.systems, board)
    }

    /// Whether a package has or provides `name`.
    pub fn has_or_provides(&self, entry: &EntryView<'t>, name: &str) -> bool {
        entry.name == name || self.provides(entry).iter().any(|p| p.name == name)
    }
}

impl EntryView<'_> {
    /// The package identity, `name-version`.
    pub fn id(&self) -> PackageId {
        PackageId {
            name: String::from(self.name),
            version: Version::from_checked(self.version),
        }
    }
}

/// The newest of `systems` for `board`.
fn newest_system<'s>(systems: &'s [System], board: &str) -> Option<&'s System> {
    systems
        .iter()
        .filter(|system| system.board == board)
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// Parses an index into its owned form (see the module documentation for the rules).
pub fn parse(text: &str) -> Result<Index, IndexError> {
    parse_view(text).map(|view| view.to_index())
}

/// Parses an index without copying it (see [`IndexView`] and the module
/// documentation for the rules).
pub fn parse_view(text: &str) -> Result<IndexView<'_>, IndexError> {
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
    // About one package per 150 bytes, three dependencies each.
    let estimate = text.len() / 150;
    let mut view = IndexView {
        arch,
        serial,
        expires,
        packages: Vec::with_capacity(estimate),
        deps: Vec::with_capacity(estimate * 3),
        provides: Vec::new(),
        install_if: Vec::new(),
        systems: Vec::new(),
    };
    for (number, line) in lines {
        let fail = |reason| IndexError {
            line: number,
            reason,
        };
        if line.starts_with("system ") || !view.systems.is_empty() {
            let system = crate::system::parse_line(line)
                .map_err(|error| fail(IndexErrorReason::BadSystem(error)))?;
            if let Some(previous) = view.systems.last() {
                let order = previous
                    .board
                    .cmp(&system.board)
                    .then_with(|| previous.version.cmp(&system.version));
                match order {
                    core::cmp::Ordering::Less => {}
                    core::cmp::Ordering::Equal => {
                        return Err(fail(IndexErrorReason::DuplicatePackage));
                    }
                    core::cmp::Ordering::Greater => return Err(fail(IndexErrorReason::NotSorted)),
                }
            }
            view.systems.push(system);
            continue;
        }
        let entry = parse_line(line, &mut view).map_err(fail)?;
        if let Some(previous) = view.packages.last() {
            let order = previous
                .name
                .cmp(entry.name)
                .then_with(|| compare(previous.version, entry.version));
            match order {
                core::cmp::Ordering::Less => {}
                core::cmp::Ordering::Equal => {
                    return Err(fail(IndexErrorReason::DuplicatePackage));
                }
                core::cmp::Ordering::Greater => return Err(fail(IndexErrorReason::NotSorted)),
            }
        }
        view.packages.push(entry);
    }
    Ok(view)
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
    let mut view = IndexView {
        arch: "",
        serial: 0,
        expires: 0,
        packages: Vec::new(),
        deps: Vec::new(),
        provides: Vec::new(),
        install_if: Vec::new(),
        systems: Vec::new(),
    };
    let entry = parse_line(line, &mut view)?;
    Ok(view.entry(&entry))
}

/// Parses one `pkg ...` line into `view`'s lists; the entry is returned, not pushed.
fn parse_line<'t>(
    line: &'t str,
    view: &mut IndexView<'t>,
) -> Result<EntryView<'t>, IndexErrorReason> {
    check_line_shape(line).map_err(IndexErrorReason::Shape)?;
    let rest = line.strip_prefix("pkg ").ok_or(if line == "pkg" {
        IndexErrorReason::MissingNameOrVersion
    } else {
        IndexErrorReason::UnknownLine
    })?;
    let mut fields = Fields::new(rest, b' ');
    let (Some(name), Some(version)) = (fields.next(), fields.next()) else {
        return Err(IndexErrorReason::MissingNameOrVersion);
    };
    if !is_valid_name(name) {
        return Err(IndexErrorReason::BadName);
    }
    check_version(version).map_err(IndexErrorReason::BadVersion)?;
    let mut entry = EntryView {
        name,
        version,
        size: 0,
        sha256: [0; 32],
        provider_priority: 0,
        description: "",
        deps: (0, 0),
        provides: (0, 0),
        install_if: (0, 0),
    };
    // The position in KEYS of the next key allowed, to enforce uniqueness and order.
    let mut next = 0;
    let mut seen = [false; KEYS.len()];
    let mut take = |position: usize| {
        let key = KEYS[position];
        if seen[position] {
            return Err(IndexErrorReason::DuplicateKey(key));
        }
        if position < next {
            return Err(IndexErrorReason::KeyOutOfOrder(key));
        }
        seen[position] = true;
        next = position + 1;
        Ok(key)
    };
    let mut description = None;
    while let Some(field) = fields.next() {
        let equals = find_byte(field.as_bytes(), b'=').ok_or(IndexErrorReason::NotKeyValue)?;
        let (key, value) = (&field[..equals], &field[equals + 1..]);
        if key == "description" {
            // The description takes the rest of the line, spaces included.
            description = Some(match fields.remainder() {
                Some(more) => &rest[rest.len() - more.len() - value.len() - 1..],
                None => value,
            });
            break;
        }
        let position = match key {
            "size" => 0,
            "sha256" => 1,
            "deps" => 2,
            "provides" => 3,
            "provider_priority" => 4,
            "install_if" => 5,
            _ => return Err(IndexErrorReason::UnknownKey(String::from(key))),
        };
        let key = take(position)?;
        if value.is_empty() && position >= 2 && position != 4 {
            return Err(IndexErrorReason::EmptyList(key));
        }
        let list = |error| IndexErrorReason::BadList(key, error);
        match position {
            0 => {
                entry.size = parse_decimal(value).ok_or(IndexErrorReason::BadNumber("size"))?;
            }
            1 => entry.sha256 = parse_sha256(value).map_err(IndexErrorReason::BadSha256)?,
            2 => {
                let start = length_u32(view.deps.len());
                dependency_views(value, true, &mut view.deps).map_err(list)?;
                entry.deps = (start, length_u32(view.deps.len()));
            }
            3 => {
                let start = length_u32(view.provides.len());
                provide_views(value, &mut view.provides).map_err(list)?;
                entry.provides = (start, length_u32(view.provides.len()));
            }
            4 => {
                entry.provider_priority =
                    parse_priority(value).ok_or(IndexErrorReason::BadPriority)?;
            }
            _ => {
                let start = length_u32(view.install_if.len());
                dependency_views(value, false, &mut view.install_if).map_err(list)?;
                entry.install_if = (start, length_u32(view.install_if.len()));
            }
        }
    }
    if let Some(description) = description {
        take(6)?;
        if description.is_empty() {
            return Err(IndexErrorReason::EmptyList("description"));
        }
        if description.len() > crate::line::MAX_DESCRIPTION_LEN {
            return Err(IndexErrorReason::DescriptionTooLong);
        }
        entry.description = description;
    }
    // A key seen out of order was reported above; a missing one is reported here.
    if !seen[0] {
        return Err(IndexErrorReason::MissingKey("size"));
    }
    if !seen[1] {
        return Err(IndexErrorReason::MissingKey("sha256"));
    }
    check_relations(
        entry.name,
        view.deps(&entry),
        view.provides(&entry),
        entry.provider_priority,
        view.install_if(&entry),
    )
    .map_err(IndexErrorReason::Contradiction)?;
    Ok(entry)
}

impl Index {
    /// Writes the index in its one canonical form, packages sorted. Entries are
    /// written as they are; an index built from [`parse`] or from valid
    /// package metadata (`.pkg/meta`) without two equal ids parses back to an equal value.
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
        newest_system(&self.systems, board)
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
        assert_eq!(entry.provides, [Provide::any("sh"), Provide::any("vi")]);
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
                "index line 5: size is out of order (size, sha256, deps, provides, provider_priority, install_if, description)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b deps=c\n"),
                "index line 5: deps is out of order (size, sha256, deps, provides, provider_priority, install_if, description)",
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
                "index line 5: provides has a bad item: provides an invalid name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b-2\n"),
                "index line 5: provides has a bad item: provides an invalid name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b,b\n"),
                "index line 5: provides names the same thing twice",
            ),
            (format!("pkg a 1 size=1 sha256={h} provides=b=1\n"), "ok 1"),
        ];
        for (body, expect) in table {
            check(body, expect);
        }
    }

    #[test]
    fn conflicts_provides_priorities_install_if_and_descriptions() {
        let h = HASH;
        let table: &[(String, &str)] = &[
            (
                format!(
                    "pkg dnsmasq-full 2.90-r0 size=1 sha256={h} deps=!dnsmasq,!foo<2 \
                     provides=dnsmasq=2.90-r0,so:libz.so.1=1.2.13,cmd:vi provider_priority=10 \
                     install_if=luci,lang~1 description=DNS and DHCP, every feature\n"
                ),
                "ok 1",
            ),
            (format!("pkg a 1 size=1 sha256={h} description=x\n"), "ok 1"),
            (
                format!("pkg a 1 size=1 sha256={h} description=size=1 sha256={h}\n"),
                "ok 1",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=so:libz.so.1>=1.2\n"),
                "ok 1",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=sh deps=!sh\n"),
                "index line 5: deps is out of order (size, sha256, deps, provides, \
                 provider_priority, install_if, description)",
            ),
            // Conflicting with a name it provides: it replaces the other providers.
            (
                format!("pkg a 1 size=1 sha256={h} deps=!sh provides=sh\n"),
                "ok 1",
            ),
            // Contradictions apk refuses.
            (
                format!("pkg a 1 size=1 sha256={h} provides=a\n"),
                "index line 5: package provides its own name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=a=1\n"),
                "index line 5: package provides its own name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=!a\n"),
                "index line 5: package conflicts with itself",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=!a<2\n"),
                "index line 5: package conflicts with itself",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} install_if=a,b\n"),
                "index line 5: package install_if names the package itself",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b,!b\n"),
                "index line 5: package both needs and conflicts with b",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b>=2,!b\n"),
                "index line 5: package both needs and conflicts with b",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b>=2,!b>=2\n"),
                "index line 5: package both needs and conflicts with b",
            ),
            (format!("pkg a 1 size=1 sha256={h} deps=b,!b<2\n"), "ok 1"),
            (
                format!("pkg a 1 size=1 sha256={h} provider_priority=5\n"),
                "index line 5: package provider_priority without provides (it orders the \
                 providers of a name)",
            ),
            // The fields themselves.
            (
                format!("pkg a 1 size=1 sha256={h} deps=!\n"),
                "index line 5: deps has a bad item: dependency has an invalid package name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=!b,!b\n"),
                "index line 5: deps names the same thing twice",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} deps=b@edge\n"),
                "index line 5: deps has a bad item: dependency has a repository tag (@TAG \
                 belongs in requests only)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b>=1\n"),
                "index line 5: provides has a bad item: provides a version with an operator \
                 other than = (NAME=VERSION)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b=1,b=2\n"),
                "index line 5: provides names the same thing twice",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=/bin/sh\n"),
                "index line 5: provides has a bad item: provides an invalid name",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b provider_priority=0\n"),
                "index line 5: provider_priority is not a number from 1 to 65535",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b provider_priority=65536\n"),
                "index line 5: provider_priority is not a number from 1 to 65535",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b provider_priority=07\n"),
                "index line 5: provider_priority is not a number from 1 to 65535",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b provider_priority=\n"),
                "index line 5: provider_priority is not a number from 1 to 65535",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} provides=b provider_priority=65535\n"),
                "ok 1",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} install_if=\n"),
                "index line 5: install_if is empty (omit the key instead)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} install_if=b,!c\n"),
                "index line 5: install_if has a conflict (!NAME), which it cannot hold",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} install_if=b,b\n"),
                "index line 5: install_if names the same thing twice",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} install_if=b provides=c\n"),
                "index line 5: provides is out of order (size, sha256, deps, provides, \
                 provider_priority, install_if, description)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} description=\n"),
                "index line 5: description is empty (omit the key instead)",
            ),
            (
                format!("pkg a 1 size=1 sha256={h} description=a  b\n"),
                "index line 5: leading, trailing or doubled space",
            ),
            (
                format!(
                    "pkg a 1 size=1 sha256={h} description={}\n",
                    "x".repeat(1025)
                ),
                "index line 5: description is too long",
            ),
            (
                format!("pkg a 1 description=x size=1 sha256={h}\n"),
                "index line 5: size is missing",
            ),
        ];
        for (body, expect) in table {
            check(body, expect);
        }
        // Everything round-trips through the writer.
        let text = format!("{HEADER}{}", table[0].0);
        let index = parse(&text).unwrap();
        let entry = &index.packages[0];
        assert_eq!(
            entry.deps,
            [
                Dependency::parse("!dnsmasq").unwrap(),
                Dependency::parse("!foo<2").unwrap()
            ]
        );
        assert_eq!(entry.provides[1].to_string(), "so:libz.so.1=1.2.13");
        assert_eq!(entry.provider_priority, 10);
        assert_eq!(entry.install_if.len(), 2);
        assert_eq!(entry.description, "DNS and DHCP, every feature");
        assert_eq!(entry.needs().count(), 0);
        assert!(entry.has_or_provides("cmd:vi"));
        assert_eq!(index.write(), text);
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
            provides: provides
                .iter()
                .map(|p| Provide::parse(p).unwrap())
                .collect(),
            provider_priority: 0,
            install_if: Vec::new(),
            description: String::new(),
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
