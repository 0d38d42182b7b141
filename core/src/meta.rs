//! The `.pkg/meta` file inside every package image (DESIGN §3): what the package is, in a strict line format.
//!
//! ```text
//! name busybox
//! version 1.36.1-r2
//! arch x86_64
//! deps musl>=1.2,zlib,!toybox
//! provides sh,vi,cmd:vi=1.36.1-r2
//! provider_priority 10
//! install_if base-files
//! description The Swiss army knife of embedded Linux
//! license GPL-2.0-only
//! size 812345
//! recipe 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```
//!
//! The rules, all enforced by [`Meta::parse`]; anything else is an error naming
//! the 1-based line:
//!
//! - UTF-8; every line ends with `\n`, the last one too; no empty lines, no
//!   `\r`, tabs or other control characters, no leading, trailing or doubled
//!   spaces.
//! - Each line is `KEY VALUE`, or the bare `KEY` when the value is empty. The keys
//!   appear exactly once, in the order shown; unknown, repeated, out-of-order and
//!   missing keys are errors. `provider_priority` and `install_if` are the
//!   exception: they are left out when empty (0, no list), so images packed before
//!   they existed still parse; given, they must have a value.
//! - `name`: a package name; `version`: a whole version, revision included
//!   (`crate::version`); `arch`: `[a-z0-9_]+`, at most 32 bytes.
//! - `deps`: comma-separated dependencies, conflicts (`!NAME`) among them;
//!   `provides`: comma-separated names, each plain or `NAME=VERSION`; each list
//!   without repeats, empty when bare. `provider_priority`: 1 to 65535.
//!   `install_if`: comma-separated dependencies without conflicts. The same
//!   contradictions as in an index line are errors (`crate::index`).
//! - `description` (at most 1024 bytes) and `license` (an SPDX expression, at
//!   most 256 bytes of printable ASCII): free text, may be empty.
//! - `size`: the installed payload in bytes, a decimal `u64` without leading
//!   zeros. It is not the image file size, which the index carries.
//! - `recipe`: the SHA-256 build identity of the recipe as 64 lowercase hex
//!   digits, or bare when the package was not built from a recipe.
//!
//! [`Meta::to_text`] writes exactly this form, so `Meta::parse(&meta.to_text())`
//! gives back `meta` for every valid `meta`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::index::Entry;
use crate::line::{
    check_line_shape, check_relations, is_valid_arch, lines, parse_decimal, parse_dependencies,
    parse_install_if, parse_priority, parse_provides, parse_sha256, push_hex, push_list,
    Contradiction, HashError, LineShapeError, ListError,
};
use crate::version::{is_valid_name, Dependency, PackageId, Provide, Version, VersionError};

use crate::line::MAX_DESCRIPTION_LEN;

/// The longest license expression accepted, in bytes.
pub const MAX_LICENSE_LEN: usize = 256;

/// The keys in the order they must appear.
const KEYS: [&str; 11] = [
    "name",
    "version",
    "arch",
    "deps",
    "provides",
    "provider_priority",
    "install_if",
    "description",
    "license",
    "size",
    "recipe",
];

/// The keys that may be left out, when their value is empty.
const OPTIONAL: [&str; 2] = ["provider_priority", "install_if"];

/// What a package says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub version: Version,
    pub arch: String,
    /// Needs and, with `conflict` set, conflicts.
    pub deps: Vec<Dependency>,
    pub provides: Vec<Provide>,
    /// Which provider of a name to choose first; 0 when not given.
    pub provider_priority: u16,
    /// Installed automatically once all of these are installed.
    pub install_if: Vec<Dependency>,
    pub description: String,
    pub license: String,
    /// Installed payload size in bytes.
    pub size: u64,
    /// SHA-256 build identity of the recipe, if built from one.
    pub recipe: Option<[u8; 32]>,
}

/// Why a `.pkg/meta` file was rejected, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    /// The 1-based line number.
    pub line: usize,
    pub reason: MetaErrorReason,
}

/// What was wrong with a `.pkg/meta` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaErrorReason {
    /// The text does not end with a newline: probably cut short.
    MissingFinalNewline,
    /// Empty line, control character, or bad spacing.
    Shape(LineShapeError),
    UnknownKey(String),
    DuplicateKey(&'static str),
    /// The key is known but belongs elsewhere; the second field is the key expected here.
    OutOfOrder(&'static str, &'static str),
    /// The file ended before this key.
    MissingKey(&'static str),
    /// `name`, `version`, `arch` and `size` need a value.
    EmptyValue(&'static str),
    BadName,
    BadVersion(VersionError),
    BadArch,
    BadList(&'static str, ListError),
    /// The value is longer than its limit.
    TooLong(&'static str),
    /// The license has characters other than printable ASCII.
    BadLicense,
    BadSize,
    BadRecipe(HashError),
    /// `provider_priority` is not a decimal from 1 to 65535.
    BadPriority,
    /// The package's relations contradict each other.
    Contradiction(Contradiction),
}

impl fmt::Display for MetaErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MetaErrorReason::*;
        match self {
            MissingFinalNewline => f.write_str("last line does not end with a newline"),
            Shape(error) => write!(f, "{error}"),
            UnknownKey(key) => write!(f, "unknown key {key:?}"),
            DuplicateKey(key) => write!(f, "{key} is given twice"),
            OutOfOrder(found, expected) => {
                write!(f, "{found} is out of order (expected {expected} here)")
            }
            MissingKey(key) => write!(f, "{key} is missing"),
            EmptyValue(key) => write!(f, "{key} is empty"),
            BadName => f.write_str("invalid package name"),
            BadVersion(error) => write!(f, "{error}"),
            BadArch => f.write_str("arch is not [a-z0-9_]+ of at most 32 bytes"),
            BadList(key, error) => write!(f, "{key} {error}"),
            TooLong(key) => write!(f, "{key} is too long"),
            BadLicense => f.write_str("license is not printable ASCII"),
            BadSize => f.write_str("size is not a decimal number"),
            BadRecipe(error) => write!(f, "recipe hash {error}"),
            BadPriority => f.write_str("provider_priority is not a number from 1 to 65535"),
            Contradiction(error) => write!(f, "package {error}"),
        }
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "meta line {}: {}", self.line, self.reason)
    }
}

impl core::error::Error for MetaError {}

impl Meta {
    /// Parses a `.pkg/meta` file (see the module documentation for the rules).
    pub fn parse(text: &str) -> Result<Meta, MetaError> {
        let (lines, unterminated) = lines(text);
        if let Some(line) = unterminated {
            return Err(MetaError {
                line,
                reason: MetaErrorReason::MissingFinalNewline,
            });
        }
        // One slot per key, filled in order; `next` is the key expected next.
        let mut values: [&str; KEYS.len()] = [""; KEYS.len()];
        // The line each key was on, for errors found after the loop.
        let mut lines_of = [0usize; KEYS.len()];
        let mut next = 0;
        let mut last_line = 0;
        for (number, line) in lines {
            last_line = number;
            let fail = |reason| MetaError {
                line: number,
                reason,
            };
            check_line_shape(line).map_err(|error| fail(MetaErrorReason::Shape(error)))?;
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let Some(position) = KEYS.iter().position(|known| *known == key) else {
                return Err(fail(MetaErrorReason::UnknownKey(String::from(key))));
            };
            if position < next {
                return Err(fail(MetaErrorReason::DuplicateKey(KEYS[position])));
            }
            // Optional keys may be skipped; the first required one skipped is named.
            if let Some(skipped) = KEYS[next..position]
                .iter()
                .find(|key| !OPTIONAL.contains(key))
            {
                return Err(fail(MetaErrorReason::OutOfOrder(KEYS[position], skipped)));
            }
            if OPTIONAL.contains(&KEYS[position]) && value.is_empty() {
                return Err(fail(MetaErrorReason::EmptyValue(KEYS[position])));
            }
            check_value(KEYS[position], value).map_err(fail)?;
            values[position] = value;
            lines_of[position] = number;
            next = position + 1;
        }
        if let Some(missing) = KEYS.get(next) {
            return Err(MetaError {
                line: last_line + 1,
                reason: MetaErrorReason::MissingKey(missing),
            });
        }
        let [name, version, arch, deps, provides, provider_priority, install_if, description, license, size, recipe] =
            values;
        // Every value passed `check_value`, so these conversions succeed; the
        // errors are still mapped rather than unwrapped, to the key's line.
        let fail = |key: &str, reason| MetaError {
            line: lines_of[KEYS.iter().position(|known| *known == key).unwrap_or(0)],
            reason,
        };
        let meta = Meta {
            name: String::from(name),
            version: Version::parse(version)
                .map_err(|error| fail("version", MetaErrorReason::BadVersion(error)))?,
            arch: String::from(arch),
            deps: list(deps, parse_dependencies)
                .map_err(|error| fail("deps", MetaErrorReason::BadList("deps", error)))?,
            provides: list(provides, parse_provides)
                .map_err(|error| fail("provides", MetaErrorReason::BadList("provides", error)))?,
            provider_priority: if provider_priority.is_empty() {
                0
            } else {
                parse_priority(provider_priority)
                    .ok_or(fail("provider_priority", MetaErrorReason::BadPriority))?
            },
            install_if: list(install_if, parse_install_if).map_err(|error| {
                fail("install_if", MetaErrorReason::BadList("install_if", error))
            })?,
            description: String::from(description),
            license: String::from(license),
            size: parse_decimal(size).ok_or(fail("size", MetaErrorReason::BadSize))?,
            recipe: if recipe.is_empty() {
                None
            } else {
                Some(
                    parse_sha256(recipe)
                        .map_err(|error| fail("recipe", MetaErrorReason::BadRecipe(error)))?,
                )
            },
        };
        check_relations(
            &meta.name,
            &meta.deps.iter().map(Dependency::view).collect::<Vec<_>>(),
            &meta.provides.iter().map(Provide::view).collect::<Vec<_>>(),
            meta.provider_priority,
            &meta
                .install_if
                .iter()
                .map(Dependency::view)
                .collect::<Vec<_>>(),
        )
        .map_err(|error| {
            // The line of the key that says the contradicting thing.
            let key = match error {
                Contradiction::ProvidesItself => "provides",
                Contradiction::InstallIfItself => "install_if",
                Contradiction::PriorityWithoutProvides => "provider_priority",
                Contradiction::ConflictsWithItself | Contradiction::NeedsAndConflicts(_) => "deps",
            };
            fail(key, MetaErrorReason::Contradiction(error))
        })?;
        Ok(meta)
    }

    /// Writes the meta in its one canonical form (module documentation).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(256 + self.description.len());
        let mut line = |key: &str, value: &dyn Fn(&mut String)| {
            out.push_str(key);
            let start = out.len();
            out.push(' ');
            value(&mut out);
            // An empty value is written as the bare key.
            if out.len() == start + 1 {
                out.truncate(start);
            }
            out.push('\n');
        };
        line("name", &|out| out.push_str(&self.name));
        line("version", &|out| out.push_str(self.version.as_str()));
        line("arch", &|out| out.push_str(&self.arch));
        line("deps", &|out| push_list(out, &self.deps));
        line("provides", &|out| push_list(out, &self.provides));
        if self.provider_priority > 0 {
            line("provider_priority", &|out| {
                let _ = write!(out, "{}", self.provider_priority);
            });
        }
        if !self.install_if.is_empty() {
            line("install_if", &|out| push_list(out, &self.install_if));
        }
        line("description", &|out| out.push_str(&self.description));
        line("license", &|out| out.push_str(&self.license));
        line("size", &|out| {
            let _ = write!(out, "{}", self.size);
        });
        line("recipe", &|out| {
            if let Some(hash) = &self.recipe {
                push_hex(out, hash);
            }
        });
        out
    }

    /// The package identity, `name-version`.
    pub fn id(&self) -> PackageId {
        PackageId {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }
}

/// Parses a list value; the bare key means an empty list.
fn list<T>(value: &str, parse: fn(&str) -> Result<Vec<T>, ListError>) -> Result<Vec<T>, ListError> {
    if value.is_empty() {
        Ok(Vec::new())
    } else {
        parse(value)
    }
}

/// Checks one value against the rules of its key.
fn check_value(key: &'static str, value: &str) -> Result<(), MetaErrorReason> {
    let required = matches!(key, "name" | "version" | "arch" | "size");
    if required && value.is_empty() {
        return Err(MetaErrorReason::EmptyValue(key));
    }
    match key {
        "name" if !is_valid_name(value) => Err(MetaErrorReason::BadName),
        "version" => Version::parse(value)
            .map(drop)
            .map_err(MetaErrorReason::BadVersion),
        "arch" if !is_valid_arch(value) => Err(MetaErrorReason::BadArch),
        "deps" => list(value, parse_dependencies)
            .map(drop)
            .map_err(|error| MetaErrorReason::BadList("deps", error)),
        "provides" => list(value, parse_provides)
            .map(drop)
            .map_err(|error| MetaErrorReason::BadList("provides", error)),
        "provider_priority" if parse_priority(value).is_none() => Err(MetaErrorReason::BadPriority),
        "install_if" => list(value, parse_install_if)
            .map(drop)
            .map_err(|error| MetaErrorReason::BadList("install_if", error)),
        "description" if value.len() > MAX_DESCRIPTION_LEN => {
            Err(MetaErrorReason::TooLong("description"))
        }
        "license" if value.len() > MAX_LICENSE_LEN => Err(MetaErrorReason::TooLong("license")),
        "license" if !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
            Err(MetaErrorReason::BadLicense)
        }
        "size" if parse_decimal(value).is_none() => Err(MetaErrorReason::BadSize),
        "recipe" if !value.is_empty() => parse_sha256(value)
            .map(drop)
            .map_err(MetaErrorReason::BadRecipe),
        _ => Ok(()),
    }
}

// How an image's meta and its index entry relate lives here, beside the meta: the index
// knows nothing of `.pkg/meta`.
impl Entry {
    /// The entry for an image with this meta, file size and hash: what `pkg
    /// repo index` writes for it.
    pub fn from_meta(meta: &Meta, size: u64, sha256: [u8; 32]) -> Entry {
        Entry {
            name: meta.name.clone(),
            version: meta.version.clone(),
            size,
            sha256,
            deps: meta.deps.clone(),
            provides: meta.provides.clone(),
            provider_priority: meta.provider_priority,
            install_if: meta.install_if.clone(),
            description: meta.description.clone(),
        }
    }

    /// Checks that an image's `.pkg/meta` says what this entry promised (DESIGN
    /// §3, SECURITY-TESTS item 8): name, version, architecture, dependencies (conflicts
    /// included), provides, provider priority, install_if and description. Lists
    /// compare as sets. The sizes are not compared: the index
    /// gives the image file size, the meta the installed payload size.
    pub fn check_meta(&self, arch: &str, meta: &Meta) -> Result<(), MetaMismatch> {
        let mismatch =
            |field, meta: String, index: String| Err(MetaMismatch { field, meta, index });
        if meta.name != self.name {
            return mismatch("name", meta.name.clone(), self.name.clone());
        }
        if meta.version != self.version {
            return mismatch(
                "version",
                meta.version.to_string(),
                self.version.to_string(),
            );
        }
        if meta.arch != arch {
            return mismatch("arch", meta.arch.clone(), String::from(arch));
        }
        if !same_set(&meta.deps, &self.deps) {
            return mismatch("deps", list_text(&meta.deps), list_text(&self.deps));
        }
        if !same_set(&meta.provides, &self.provides) {
            return mismatch(
                "provides",
                list_text(&meta.provides),
                list_text(&self.provides),
            );
        }
        if meta.provider_priority != self.provider_priority {
            return mismatch(
                "provider_priority",
                meta.provider_priority.to_string(),
                self.provider_priority.to_string(),
            );
        }
        if !same_set(&meta.install_if, &self.install_if) {
            return mismatch(
                "install_if",
                list_text(&meta.install_if),
                list_text(&self.install_if),
            );
        }
        if meta.description != self.description {
            return mismatch(
                "description",
                format!("{:?}", meta.description),
                format!("{:?}", self.description),
            );
        }
        Ok(())
    }
}

fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter().all(|item| b.contains(item))
        && b.iter().all(|item| a.contains(item))
}

fn list_text<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return String::from("(none)");
    }
    let mut out = String::new();
    push_list(&mut out, items);
    out
}

/// An image's `.pkg/meta` disagrees with its index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaMismatch {
    /// Which field differs: `name`, `version`, `arch`, `deps`, `provides`,
    /// `provider_priority`, `install_if` or `description`.
    pub field: &'static str,
    /// What the image's meta says.
    pub meta: String,
    /// What the index promised.
    pub index: String,
}

impl fmt::Display for MetaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "package meta says {} {}, but the index says {}",
            self.field, self.meta, self.index
        )
    }
}

impl core::error::Error for MetaMismatch {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    const RECIPE: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn full() -> String {
        format!(
            "name busybox\nversion 1.36.1-r2\narch x86_64\ndeps musl>=1.2,zlib\nprovides sh,vi\n\
             description The Swiss army knife of embedded Linux\nlicense GPL-2.0-only\n\
             size 812345\nrecipe {RECIPE}\n"
        )
    }

    /// Renders a parse like rust-analyzer's `check(input, expect)`: `ok NAME-VERSION`
    /// or the error's Display.
    fn check(text: &str, expect: &str) {
        let got = match Meta::parse(text) {
            Ok(meta) => format!("ok {}", meta.id()),
            Err(error) => error.to_string(),
        };
        assert_eq!(got, expect, "input:\n{text}");
    }

    /// The full example with one line replaced (or removed, for an empty `with`).
    fn edit(key: &str, with: &str) -> String {
        full()
            .lines()
            .filter_map(|line| {
                let own = line.split(' ').next() == Some(key);
                match (own, with.is_empty()) {
                    (true, true) => None,
                    (true, false) => Some(format!("{with}\n")),
                    (false, _) => Some(format!("{line}\n")),
                }
            })
            .collect()
    }

    #[test]
    fn parses_the_example() {
        let meta = Meta::parse(&full()).unwrap();
        assert_eq!(meta.name, "busybox");
        assert_eq!(meta.version.as_str(), "1.36.1-r2");
        assert_eq!(meta.arch, "x86_64");
        assert_eq!(
            meta.deps,
            vec![
                Dependency::parse("musl>=1.2").unwrap(),
                Dependency::any("zlib")
            ]
        );
        assert_eq!(meta.provides, [Provide::any("sh"), Provide::any("vi")]);
        assert_eq!(meta.description, "The Swiss army knife of embedded Linux");
        assert_eq!(meta.license, "GPL-2.0-only");
        assert_eq!(meta.size, 812_345);
        assert_eq!(meta.recipe.map(|r| r[0]), Some(0x9f));
        assert_eq!(meta.to_text(), full());
    }

    #[test]
    fn empty_values_are_bare_keys() {
        let text = "name a\nversion 1\narch aarch64\ndeps\nprovides\ndescription\nlicense\n\
                    size 0\nrecipe\n";
        let meta = Meta::parse(text).unwrap();
        assert!(meta.deps.is_empty() && meta.provides.is_empty());
        assert_eq!((meta.description.as_str(), meta.license.as_str()), ("", ""));
        assert_eq!(meta.recipe, None);
        assert_eq!(meta.to_text(), text);
    }

    #[test]
    fn round_trip() {
        let table = [
            Meta {
                name: "a".into(),
                version: Version::parse("0").unwrap(),
                arch: "x86_64".into(),
                deps: vec![],
                provides: vec![],
                provider_priority: 0,
                install_if: vec![],
                description: String::new(),
                license: String::new(),
                size: 0,
                recipe: None,
            },
            Meta {
                name: "libstdc++".into(),
                version: Version::parse("13.2.1_git20231014-r0").unwrap(),
                arch: "aarch64".into(),
                deps: vec![
                    Dependency::parse("musl~1.2").unwrap(),
                    Dependency::any("libgcc"),
                ],
                provides: vec![Provide::parse("so:libstdc++.so.6=6.0.32").unwrap()],
                provider_priority: 3,
                install_if: vec![Dependency::parse("gcc>=13").unwrap()],
                description: "GNU C++ library: ünïcode, \"quotes\" = fine".into(),
                license: "GPL-3.0-or-later WITH GCC-exception-3.1".into(),
                size: u64::MAX,
                recipe: Some([0xab; 32]),
            },
        ];
        for meta in table {
            let text = meta.to_text();
            assert_eq!(Meta::parse(&text), Ok(meta), "{text}");
        }
    }

    #[test]
    fn errors() {
        let table: &[(String, &str)] = &[
            (String::new(), "meta line 1: name is missing"),
            (
                full().trim_end().into(),
                "meta line 9: last line does not end with a newline",
            ),
            (format!("{}\n", full()), "meta line 10: empty line"),
            (
                full().replace('\n', "\r\n"),
                "meta line 1: control character (tab, carriage return, ...)",
            ),
            (
                edit("name", "name  busybox"),
                "meta line 1: leading, trailing or doubled space",
            ),
            (
                edit("name", "name busybox "),
                "meta line 1: leading, trailing or doubled space",
            ),
            (
                edit("name", " name busybox"),
                "meta line 1: leading, trailing or doubled space",
            ),
            (
                edit("description", "description a\tb"),
                "meta line 6: control character (tab, carriage return, ...)",
            ),
            (edit("name", "name"), "meta line 1: name is empty"),
            (
                edit("name", "name Busybox"),
                "meta line 1: invalid package name",
            ),
            (
                edit("name", "name busybox-1"),
                "meta line 1: invalid package name",
            ),
            (
                edit("name", "Name busybox"),
                "meta line 1: unknown key \"Name\"",
            ),
            (
                edit("name", "name=busybox"),
                "meta line 1: unknown key \"name=busybox\"",
            ),
            (
                edit("name", ""),
                "meta line 1: version is out of order (expected name here)",
            ),
            (
                edit("version", ""),
                "meta line 2: arch is out of order (expected version here)",
            ),
            (edit("version", "version"), "meta line 2: version is empty"),
            (
                edit("version", "version 1.36.1-x"),
                "meta line 2: version has an unexpected '-' at byte 6",
            ),
            (
                edit("arch", "arch x86-64"),
                "meta line 3: arch is not [a-z0-9_]+ of at most 32 bytes",
            ),
            (edit("arch", "arch"), "meta line 3: arch is empty"),
            (
                edit("deps", "deps musl,"),
                "meta line 4: deps has a bad item: dependency has an invalid package name",
            ),
            (
                edit("deps", "deps musl,musl"),
                "meta line 4: deps names the same thing twice",
            ),
            (
                edit("deps", "deps musl, zlib"),
                "meta line 4: deps has a bad item: dependency has an invalid package name",
            ),
            (
                edit("provides", "provides sh,sh"),
                "meta line 5: provides names the same thing twice",
            ),
            (
                edit("provides", "provides sh>=1"),
                "meta line 5: provides has a bad item: provides a version with an operator \
                 other than = (NAME=VERSION)",
            ),
            (
                edit("provides", "provides sh,so:libz.so.1=1.3"),
                "ok busybox-1.36.1-r2",
            ),
            (
                edit("provides", "provides busybox"),
                "meta line 5: package provides its own name",
            ),
            (
                edit("deps", "deps musl,!busybox"),
                "meta line 4: package conflicts with itself",
            ),
            (
                edit("deps", "deps musl,!musl"),
                "meta line 4: package both needs and conflicts with musl",
            ),
            (
                edit("provides", "provides sh\nprovider_priority 7"),
                "ok busybox-1.36.1-r2",
            ),
            (
                edit("provides", "provides sh\nprovider_priority 0"),
                "meta line 6: provider_priority is not a number from 1 to 65535",
            ),
            (
                edit("provides", "provides sh\nprovider_priority"),
                "meta line 6: provider_priority is empty",
            ),
            (
                edit("provides", "provides\nprovider_priority 7"),
                "meta line 6: package provider_priority without provides (it orders the \
                 providers of a name)",
            ),
            (
                edit("provides", "provides sh\ninstall_if base,lang"),
                "ok busybox-1.36.1-r2",
            ),
            (
                edit("provides", "provides sh\ninstall_if busybox"),
                "meta line 6: package install_if names the package itself",
            ),
            (
                edit("provides", "provides sh\ninstall_if !base"),
                "meta line 6: install_if has a conflict (!NAME), which it cannot hold",
            ),
            (
                edit("provides", "provides sh\ninstall_if x\nprovider_priority 1"),
                "meta line 7: provider_priority is given twice",
            ),
            (
                edit("provides", "provides sh\ninstall_if"),
                "meta line 6: install_if is empty",
            ),
            (
                edit("description", &format!("description {}", "x".repeat(1025))),
                "meta line 6: description is too long",
            ),
            (
                edit("license", "license GPL-2.0-only OR MIT"),
                "ok busybox-1.36.1-r2",
            ),
            (
                edit("license", "license ©"),
                "meta line 7: license is not printable ASCII",
            ),
            (
                edit("license", &format!("license {}", "x".repeat(257))),
                "meta line 7: license is too long",
            ),
            (edit("size", "size"), "meta line 8: size is empty"),
            (
                edit("size", "size 01"),
                "meta line 8: size is not a decimal number",
            ),
            (
                edit("size", "size -1"),
                "meta line 8: size is not a decimal number",
            ),
            (
                edit("size", "size 18446744073709551616"),
                "meta line 8: size is not a decimal number",
            ),
            (edit("recipe", "recipe"), "ok busybox-1.36.1-r2"),
            (
                edit("recipe", "recipe 0"),
                "meta line 9: recipe hash is not 64 hex digits",
            ),
            (
                edit("recipe", &format!("recipe {}", RECIPE.to_uppercase())),
                "meta line 9: recipe hash must be lowercase hex",
            ),
            (
                edit("recipe", &format!("recipe {RECIPE}x")),
                "meta line 9: recipe hash has a character that is not a hex digit",
            ),
            (edit("recipe", ""), "meta line 9: recipe is missing"),
            (
                format!("{}recipe {RECIPE}\n", full()),
                "meta line 10: recipe is given twice",
            ),
            (
                format!("{}name x\n", full()),
                "meta line 10: name is given twice",
            ),
            (
                format!("{}homepage x\n", full()),
                "meta line 10: unknown key \"homepage\"",
            ),
            (
                "name a\nname a\n".into(),
                "meta line 2: name is given twice",
            ),
            (
                "version 1\nname a\n".into(),
                "meta line 1: version is out of order (expected name here)",
            ),
            (
                "name a\nversion 1\narch x\n".into(),
                "meta line 4: deps is missing",
            ),
        ];
        for (text, expect) in table {
            check(text, expect);
        }
    }

    #[test]
    fn meta_must_agree_with_the_entry() {
        let meta_text = "name busybox\nversion 1.36.1-r2\narch aarch64\ndeps musl>=1.2,zlib\n\
                         provides sh,vi\ndescription\nlicense\nsize 9\nrecipe\n";
        let meta = Meta::parse(meta_text).unwrap();
        let entry = Entry::from_meta(&meta, 812_345, [7; 32]);
        assert_eq!(entry.size, 812_345);
        assert_eq!(entry.check_meta("aarch64", &meta), Ok(()));
        // Each row edits the meta and gives the expected complaint.
        let table: &[(&str, &str, &str)] = &[
            (
                "name busybox",
                "name toybox",
                "package meta says name toybox, but the index says busybox",
            ),
            (
                "version 1.36.1-r2",
                "version 1.36.1-r3",
                "package meta says version 1.36.1-r3, but the index says 1.36.1-r2",
            ),
            (
                "arch aarch64",
                "arch x86_64",
                "package meta says arch x86_64, but the index says aarch64",
            ),
            ("deps musl>=1.2,zlib", "deps zlib,musl>=1.2", ""),
            (
                "deps musl>=1.2,zlib",
                "deps zlib",
                "package meta says deps zlib, but the index says musl>=1.2,zlib",
            ),
            (
                "deps musl>=1.2,zlib",
                "deps musl>=1.3,zlib",
                "package meta says deps musl>=1.3,zlib, but the index says musl>=1.2,zlib",
            ),
            (
                "deps musl>=1.2,zlib",
                "deps musl>=1.2,zlib,curl",
                "package meta says deps musl>=1.2,zlib,curl, but the index says musl>=1.2,zlib",
            ),
            (
                "deps musl>=1.2,zlib",
                "deps",
                "package meta says deps (none), but the index says musl>=1.2,zlib",
            ),
            ("provides sh,vi", "provides vi,sh", ""),
            (
                "provides sh,vi",
                "provides sh",
                "package meta says provides sh, but the index says sh,vi",
            ),
            // The sizes differ by design: payload bytes against image bytes.
            ("size 9", "size 10", ""),
        ];
        for (from, to, expect) in table {
            let edited = Meta::parse(&meta_text.replace(from, to)).unwrap();
            let got = match entry.check_meta("aarch64", &edited) {
                Ok(()) => String::new(),
                Err(error) => error.to_string(),
            };
            assert_eq!(got, *expect, "{from} -> {to}");
        }
    }
}
