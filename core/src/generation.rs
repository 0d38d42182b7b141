//! Generations: the world the user asked for and the packages it resolved to, as one
//! strict text file per generation (DESIGN §5).
//!
//! ```text
//! amber-generation 1
//! number 4
//! parent 3
//! world busybox
//! world dropbear>=2022.83
//! world vim@edge
//! prefer bin/vi vim
//! pkg busybox 1.36.1-r2 size=812345 sha256=<64 hex> deps=musl provides=sh,vi
//! pkg musl 1.2.4-r0 size=402112 sha256=<64 hex>
//! ```
//!
//! - `number` is this generation's number (1 and up; 0 is the empty store);
//!   `parent` is the generation it was made from, omitted for the first.
//! - `world` lines are the requests the user made, as dependencies, sorted: a
//!   request may carry a repository tag (`vim@edge`, pinned to that repository through
//!   upgrades) or be a conflict (`!dnsmasq`, never install it).
//! - `prefer` lines are the user's choices of who keeps a contested exchange-directory
//!   path (`pkg prefer vim /bin/vi`): the path below `/ro` (in one of
//!   [`EXCHANGE_DIRS`], no spaces, no `.` or `..`), then the package name. Sorted by
//!   path, one per path. They ride along with the packages they name: a generation
//!   keeps only those of packages it holds.
//! - `pkg` lines are index lines ([`crate::index`]): the resolved closure, sorted, each
//!   with the size and hash its image was verified against, so a generation can be
//!   checked and solved again without any repository.
//!
//! Like the index, every malformed line is an error naming its line number.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::index::{parse_package, Entry, IndexErrorReason};
use crate::line::{check_line_shape, lines, parse_decimal};
use crate::version::{Dependency, DependencyError};

const MAGIC: &str = "amber-generation 1";

/// The exchange directories below `/ro`, where the files of every package meet.
pub const EXCHANGE_DIRS: [&str; 7] = ["bin", "sbin", "lib", "share", "etc", "include", "svc"];

/// The longest preferred path, in bytes.
pub const MAX_PREFERENCE_PATH: usize = 1024;

/// A user's choice: package `name` keeps exchange-directory path `path` (`bin/vi`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Preference {
    pub path: String,
    pub name: String,
}

/// Why a preference was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferenceError {
    /// The path is not below one of the [`EXCHANGE_DIRS`], or names one itself.
    NotInExchangeDir,
    /// The path has an empty, `.` or `..` component, a space or a control character,
    /// or is too long.
    BadPath,
    /// The package name is not a valid one.
    BadName,
}

impl fmt::Display for PreferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PreferenceError::NotInExchangeDir => {
                "a preferred path must lie inside an exchange directory (bin/vi, /ro/bin/vi, /bin/vi)"
            }
            PreferenceError::BadPath => {
                "a preferred path has no empty, `.` or `..` part, no space and no control character"
            }
            PreferenceError::BadName => "invalid package name",
        })
    }
}

/// The canonical form of an exchange-directory path given as `bin/vi`, `/bin/vi` or
/// `/ro/bin/vi`: `bin/vi`. Trailing slashes are dropped.
pub fn exchange_path(path: &str) -> Result<String, PreferenceError> {
    let trimmed = path.trim_start_matches('/');
    let relative = trimmed.strip_prefix("ro/").unwrap_or(trimmed);
    let relative = relative.trim_end_matches('/');
    check_exchange_path(relative)?;
    Ok(String::from(relative))
}

/// Checks a path in its canonical form (what [`exchange_path`] returns).
fn check_exchange_path(path: &str) -> Result<(), PreferenceError> {
    // What the line check refuses (C1 controls too) must be refused here, or a choice
    // could write a generation that no longer parses.
    if path.len() > MAX_PREFERENCE_PATH
        || path.bytes().any(|byte| byte <= b' ' || byte == 0x7f)
        || check_line_shape(path).is_err()
    {
        return Err(PreferenceError::BadPath);
    }
    let mut parts = path.split('/');
    let dir = parts.next().unwrap_or("");
    if !EXCHANGE_DIRS.contains(&dir) {
        return Err(PreferenceError::NotInExchangeDir);
    }
    let mut any = false;
    for part in parts {
        if part.is_empty() || part == "." || part == ".." {
            return Err(PreferenceError::BadPath);
        }
        any = true;
    }
    if !any {
        return Err(PreferenceError::NotInExchangeDir);
    }
    Ok(())
}

impl Preference {
    /// A preference of package `name` for `path` (any form [`exchange_path`] takes).
    pub fn new(name: &str, path: &str) -> Result<Preference, PreferenceError> {
        if !crate::version::is_valid_name(name) {
            return Err(PreferenceError::BadName);
        }
        Ok(Preference {
            path: exchange_path(path)?,
            name: String::from(name),
        })
    }

    /// Whether the preference decides `path`: the path itself or something below it.
    pub fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// One generation of installed packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    pub parent: Option<u64>,
    /// What the user asked for, sorted.
    pub world: Vec<Dependency>,
    /// Who keeps a contested exchange-directory path, sorted by path.
    pub preferences: Vec<Preference>,
    /// The resolved closure, sorted by name then version.
    pub packages: Vec<Entry>,
}

/// Why a generation file was rejected, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationError {
    pub line: usize,
    pub reason: GenerationErrorReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerationErrorReason {
    MissingFinalNewline,
    BadHeader(&'static str),
    BadWorld(DependencyError),
    BadPreference(PreferenceError),
    BadPackage(IndexErrorReason),
    UnknownLine,
    NotSorted,
}

impl fmt::Display for GenerationErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerationErrorReason::MissingFinalNewline => {
                f.write_str("last line does not end with a newline")
            }
            GenerationErrorReason::BadHeader(expected) => write!(f, "expected {expected}"),
            GenerationErrorReason::BadWorld(error) => write!(f, "world: {error}"),
            GenerationErrorReason::BadPreference(error) => write!(f, "prefer: {error}"),
            GenerationErrorReason::BadPackage(error) => write!(f, "{error}"),
            GenerationErrorReason::UnknownLine => f.write_str("unknown line"),
            GenerationErrorReason::NotSorted => f.write_str("not sorted, or a duplicate"),
        }
    }
}

impl fmt::Display for GenerationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation line {}: {}", self.line, self.reason)
    }
}

impl core::error::Error for GenerationError {}

impl Generation {
    /// The state of a store where nothing was ever installed.
    pub fn empty() -> Generation {
        Generation {
            number: 0,
            parent: None,
            world: Vec::new(),
            preferences: Vec::new(),
            packages: Vec::new(),
        }
    }

    /// Parse a generation file.
    pub fn parse(text: &str) -> Result<Generation, GenerationError> {
        let (numbered, unterminated) = lines(text);
        if let Some(line) = unterminated {
            return Err(GenerationError {
                line,
                reason: GenerationErrorReason::MissingFinalNewline,
            });
        }
        let mut numbered = numbered.peekable();
        let mut header = |expected: &'static str| {
            let (line, text) = numbered.next().unwrap_or((1, ""));
            let fail = move || GenerationError {
                line,
                reason: GenerationErrorReason::BadHeader(expected),
            };
            check_line_shape(text).map_err(|_| fail())?;
            Ok::<_, GenerationError>((line, text, fail))
        };
        let (_, magic, fail) = header(MAGIC)?;
        if magic != MAGIC {
            return Err(fail());
        }
        let (_, number, fail) = header("number N")?;
        let number = number
            .strip_prefix("number ")
            .and_then(parse_decimal)
            .ok_or_else(fail)?;
        let mut generation = Generation {
            number,
            parent: None,
            world: Vec::new(),
            preferences: Vec::new(),
            packages: Vec::new(),
        };
        for (line, text) in numbered {
            let fail = |reason| GenerationError { line, reason };
            check_line_shape(text).map_err(|e| {
                fail(GenerationErrorReason::BadPackage(IndexErrorReason::Shape(
                    e,
                )))
            })?;
            if let Some(parent) = text.strip_prefix("parent ") {
                if generation.parent.is_some()
                    || !generation.world.is_empty()
                    || !generation.preferences.is_empty()
                    || !generation.packages.is_empty()
                {
                    return Err(fail(GenerationErrorReason::UnknownLine));
                }
                let parent = parse_decimal(parent)
                    .ok_or(fail(GenerationErrorReason::BadHeader("parent N")))?;
                generation.parent = Some(parent);
            } else if let Some(world) = text.strip_prefix("world ") {
                if !generation.preferences.is_empty() || !generation.packages.is_empty() {
                    return Err(fail(GenerationErrorReason::UnknownLine));
                }
                let dependency = Dependency::parse_request(world)
                    .map_err(|e| fail(GenerationErrorReason::BadWorld(e)))?;
                if let Some(last) = generation.world.last() {
                    if last.to_string() >= dependency.to_string() {
                        return Err(fail(GenerationErrorReason::NotSorted));
                    }
                }
                generation.world.push(dependency);
            } else if let Some(rest) = text.strip_prefix("prefer ") {
                if !generation.packages.is_empty() {
                    return Err(fail(GenerationErrorReason::UnknownLine));
                }
                let bad = |e| fail(GenerationErrorReason::BadPreference(e));
                let (path, name) = rest.split_once(' ').ok_or(bad(PreferenceError::BadName))?;
                check_exchange_path(path).map_err(bad)?;
                let preference = Preference::new(name, path).map_err(bad)?;
                if let Some(last) = generation.preferences.last() {
                    if last.path >= preference.path {
                        return Err(fail(GenerationErrorReason::NotSorted));
                    }
                }
                generation.preferences.push(preference);
            } else if text.starts_with("pkg ") {
                let entry =
                    parse_package(text).map_err(|e| fail(GenerationErrorReason::BadPackage(e)))?;
                if let Some(last) = generation.packages.last() {
                    if (&last.name, &last.version) >= (&entry.name, &entry.version) {
                        return Err(fail(GenerationErrorReason::NotSorted));
                    }
                }
                generation.packages.push(entry);
            } else {
                return Err(fail(GenerationErrorReason::UnknownLine));
            }
        }
        Ok(generation)
    }

    /// The one canonical text of this generation: world and packages sorted.
    pub fn write(&self) -> String {
        let mut world: Vec<String> = self.world.iter().map(|d| d.to_string()).collect();
        crate::sort::sort(&mut world);
        world.dedup();
        let mut packages: Vec<&Entry> = self.packages.iter().collect();
        crate::sort::sort_by(&mut packages, |a, b| {
            a.name.cmp(&b.name).then_with(|| a.version.cmp(&b.version))
        });
        let mut out = String::new();
        let _ = writeln!(out, "{MAGIC}\nnumber {}", self.number);
        if let Some(parent) = self.parent {
            let _ = writeln!(out, "parent {parent}");
        }
        for dependency in world {
            let _ = writeln!(out, "world {dependency}");
        }
        let mut preferences: Vec<&Preference> = self.preferences.iter().collect();
        crate::sort::sort(&mut preferences);
        preferences.dedup_by(|a, b| a.path == b.path);
        for preference in preferences {
            let _ = writeln!(out, "prefer {} {}", preference.path, preference.name);
        }
        for entry in packages {
            entry.write_line(&mut out);
        }
        out
    }

    /// The package with this name, if installed.
    pub fn package(&self, name: &str) -> Option<&Entry> {
        self.packages.iter().find(|entry| entry.name == name)
    }

    /// The package the user chose to keep `path`, if any (the nearest preference).
    pub fn preferred(&self, path: &str) -> Option<&Preference> {
        self.preferences
            .iter()
            .filter(|preference| preference.covers(path))
            .max_by_key(|preference| preference.path.len())
    }

    /// Whether the user asked for a package by name (it is in the world).
    pub fn is_explicit(&self, entry: &Entry) -> bool {
        self.world
            .iter()
            .any(|dependency| !dependency.conflict && entry.has_or_provides(&dependency.name))
    }

    /// [`Generation::is_explicit`] of every package, in order. The world's names are
    /// sorted once instead of walked for each package: a store whose hundreds of
    /// packages were all asked for by name would otherwise compare every pair.
    pub fn explicit_flags(&self) -> Vec<bool> {
        // Strings, not &str: the device binary already holds a sort of strings.
        let mut names: Vec<String> = self
            .world
            .iter()
            .filter(|dependency| !dependency.conflict)
            .map(|dependency| dependency.name.clone())
            .collect();
        crate::sort::sort(&mut names);
        let requested = |name: &String| names.binary_search(name).is_ok();
        self.packages
            .iter()
            .map(|entry| {
                requested(&entry.name) || entry.provides.iter().any(|p| requested(&p.name))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn example() -> String {
        format!(
            "amber-generation 1\nnumber 4\nparent 3\nworld busybox\nworld dropbear>=2022.83\n\
             pkg busybox 1.36.1-r2 size=812345 sha256={HASH} deps=musl provides=sh,vi\n\
             pkg musl 1.2.4-r0 size=402112 sha256={HASH}\n"
        )
    }

    #[test]
    fn round_trips() {
        let text = example();
        let generation = Generation::parse(&text).unwrap();
        assert_eq!(generation.number, 4);
        assert_eq!(generation.parent, Some(3));
        assert_eq!(generation.world.len(), 2);
        assert_eq!(generation.packages.len(), 2);
        assert_eq!(generation.write(), text);
        assert!(generation.is_explicit(generation.package("busybox").unwrap()));
        assert!(!generation.is_explicit(generation.package("musl").unwrap()));
        assert_eq!(generation.explicit_flags(), [true, false]);
        let empty = Generation::empty();
        assert_eq!(Generation::parse(&empty.write()).unwrap(), empty);
    }

    /// The flags for all packages at once are `is_explicit` of each: by name, through
    /// what a package provides, and not for a package only depended on.
    #[test]
    fn explicit_flags_match_is_explicit() {
        let text = format!(
            "amber-generation 1\nnumber 2\nworld musl\nworld sh\nworld zlib<2\n\
             pkg busybox 1.36.1-r2 size=1 sha256={HASH} provides=sh,vi\n\
             pkg libz 1.3-r0 size=1 sha256={HASH} provides=zlib\n\
             pkg musl 1.2.4-r0 size=1 sha256={HASH}\n\
             pkg toybox 0.8-r0 size=1 sha256={HASH} provides=vi\n"
        );
        let generation = Generation::parse(&text).unwrap();
        let one_by_one: Vec<bool> = generation
            .packages
            .iter()
            .map(|entry| generation.is_explicit(entry))
            .collect();
        assert_eq!(one_by_one, [true, true, true, false]);
        assert_eq!(generation.explicit_flags(), one_by_one);
    }

    #[test]
    fn malformed_generations_name_the_line() {
        let cases = [
            (
                "amber-generation 2\nnumber 1\n",
                "generation line 1: expected amber-generation 1",
            ),
            (
                "amber-generation 1\nnumber x\n",
                "generation line 2: expected number N",
            ),
            (
                "amber-generation 1\nnumber 1",
                "generation line 2: last line does not end with a newline",
            ),
            (
                "amber-generation 1\nnumber 1\nworld b\nworld a\n",
                "generation line 4: not sorted, or a duplicate",
            ),
            (
                "amber-generation 1\nnumber 1\nworld A\n",
                "generation line 3: world: ",
            ),
            (
                "amber-generation 1\nnumber 1\nhello\n",
                "generation line 3: unknown line",
            ),
            (
                "amber-generation 1\nnumber 1\npkg a 1 size=1 sha256=00\n",
                "generation line 3: ",
            ),
        ];
        for (text, expect) in cases {
            let error = Generation::parse(text).unwrap_err().to_string();
            assert!(error.starts_with(expect), "{text:?}: {error}");
        }
        let text = example().replace("pkg musl", "pkg aaa");
        assert!(Generation::parse(&text).is_err());
    }

    #[test]
    fn preferences_round_trip_and_are_checked() {
        let text = example().replace(
            "world dropbear>=2022.83\n",
            "world dropbear>=2022.83\nprefer bin/vi busybox\nprefer share/man/man1 musl\n",
        );
        let generation = Generation::parse(&text).unwrap();
        assert_eq!(
            generation.preferences,
            [
                Preference::new("busybox", "/bin/vi").unwrap(),
                Preference::new("musl", "/ro/share/man/man1/").unwrap(),
            ]
        );
        assert_eq!(generation.write(), text);
        assert_eq!(
            generation
                .preferred("share/man/man1/ls.1")
                .map(|p| p.name.as_str()),
            Some("musl")
        );
        assert_eq!(generation.preferred("share/man/man10"), None);
        assert_eq!(
            generation.preferred("bin/vi").map(|p| p.name.as_str()),
            Some("busybox")
        );
        let head = "amber-generation 1\nnumber 1\nworld a\n";
        let cases = [
            (
                "prefer bin/b a\nprefer bin/a a\n",
                "generation line 5: not sorted, or a duplicate",
            ),
            (
                "prefer bin/a a\nprefer bin/a b\n",
                "generation line 5: not sorted, or a duplicate",
            ),
            (
                "prefer usr/bin/a a\n",
                "generation line 4: prefer: a preferred path must lie inside",
            ),
            (
                "prefer bin a\n",
                "generation line 4: prefer: a preferred path must lie inside",
            ),
            (
                "prefer /bin/a a\n",
                "generation line 4: prefer: a preferred path must lie inside",
            ),
            (
                "prefer bin/../etc/x a\n",
                "generation line 4: prefer: a preferred path has no",
            ),
            (
                "prefer bin//x a\n",
                "generation line 4: prefer: a preferred path has no",
            ),
            (
                "prefer bin/x A\n",
                "generation line 4: prefer: invalid package name",
            ),
            (
                "prefer bin/x\n",
                "generation line 4: prefer: invalid package name",
            ),
            (
                "prefer bin/x a b\n",
                "generation line 4: prefer: invalid package name",
            ),
        ];
        for (lines, expect) in cases {
            let text = format!("{head}{lines}");
            let error = Generation::parse(&text).unwrap_err().to_string();
            assert!(error.starts_with(expect), "{text:?}: {error}");
        }
        // After the packages, or before the world, a preference is out of place.
        let late = format!("{}prefer bin/vi busybox\n", example());
        assert!(Generation::parse(&late).is_err());
        let early = "amber-generation 1\nnumber 1\nprefer bin/x a\nworld a\n";
        assert!(Generation::parse(early).is_err());
        for path in ["bin/x y", "bin/x\u{85}", "bin/x\ty", "bin/\u{7f}"] {
            assert_eq!(
                Preference::new("a", path),
                Err(PreferenceError::BadPath),
                "{path:?}"
            );
        }
        // Whatever a preference accepts, the generation it is written into parses.
        let mut generation = Generation::empty();
        generation.preferences = ["bin/é", "share/a+b/c~", "svc/x.y"]
            .iter()
            .map(|path| Preference::new("a", path).unwrap())
            .collect();
        assert_eq!(Generation::parse(&generation.write()), Ok(generation));
    }
}
