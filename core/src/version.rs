//! Package names, versions, identities and dependency constraints, ordered the way Alpine's apk orders them.
//!
//! # Names
//!
//! A package name matches `[a-z0-9][a-z0-9+._-]*`, is at most 128 bytes long and
//! never contains `-` followed by a digit, so `NAME-VERSION` splits unambiguously
//! at the first `-<digit>` (`busybox-1.36.1-r2` is `busybox` + `1.36.1-r2`).
//!
//! # Versions
//!
//! A version is at most 128 bytes and follows apk's grammar, without apk's
//! `~<commit>` part (`~` is the fuzzy operator of our dependency syntax):
//!
//! ```text
//! version = number ("." number)* [letter] ("_" suffix [number])* ["-r" number]
//! letter  = one of a-z
//! suffix  = alpha | beta | pre | rc | cvs | svn | git | hg | p
//! ```
//!
//! Examples: `1.36.1-r2`, `1.2.3a`, `2.0_rc1`, `1.0_alpha2_p3`, `20240101_git3-r0`.
//!
//! A version reads as a sequence of tokens: the first number, further numbers,
//! the letter, each suffix and its number, the revision. Two versions compare
//! token by token, like apk-tools' `apk_version_compare`:
//!
//! 1. The first number, suffix numbers and the revision compare numerically, of
//!    any length (no overflow).
//! 2. A later number compares numerically too, unless either side starts with
//!    `0`; then both compare as strings, byte by byte, the way Gentoo and apk do,
//!    so `1.05 < 1.1 < 1.5` and `1.001 < 1.01`.
//! 3. Letters compare alphabetically; suffixes in the order
//!    `alpha < beta < pre < rc < (release) < cvs < svn < git < hg < p`.
//! 4. When one version runs out of tokens, or the two reach tokens of different
//!    kinds, the first pre-release suffix (`alpha`..`rc`) loses; otherwise the
//!    side that goes on with the earlier kind in the order
//!    number, letter, suffix, suffix number, revision, end wins. Hence
//!    `1.0 < 1.0.0`, `1.0 < 1.0a < 1.0.1`, `1.0_rc1 < 1.0 < 1.0-r0 < 1.0_p1 < 1.0a`,
//!    `1.0_rc < 1.0_rc1`.
//!
//! Versions that apk would treat as equal although spelled differently (`01.2`
//! and `1.2`, `1.0_rc01` and `1.0_rc1`, `1.0-r01` and `1.0-r1`) cannot occur:
//! the first number, suffix numbers and revisions are rejected with a leading
//! zero. So every version has exactly one spelling, `Eq` and `Hash` are those of
//! the string, and `a.cmp(&b) == Equal` exactly when `a == b`. Note that
//! `1.0` and `1.0.0` are different versions (`1.0 < 1.0.0`), as in apk.
//!
//! # Constraints
//!
//! `=V`, `<V`, `<=V`, `>V`, `>=V` compare with the order above. `~V` is apk's
//! fuzzy match: a version matches when V's tokens are a prefix of its tokens,
//! so the match is at token boundaries: `~1.2` matches `1.2`, `1.2.3`, `1.2a`,
//! `1.2_rc1` and `1.2-r4`, but not `1.20`, `1.3` or `1`.
//!
//! A dependency is `NAME` or `NAME` OP `VERSION` with no spaces: `musl>=1.2.4`,
//! `busybox`, `foo~1.2`. A leading `!` makes it a conflict, as in apk: `!dnsmasq`
//! refuses every package that has or provides `dnsmasq`, `!foo<2` only those whose
//! version (or provided version) is below 2. A request, what a user asks for and the
//! world records, may also name a repository tag after the name: `busybox@edge`,
//! `musl@edge>=1.2.5` (see the solver); indexes and `.pkg/meta` never do.
//!
//! # Provided names
//!
//! Besides package names, dependencies and provides may use prefixed names, the way
//! Alpine names shared libraries and commands: `[a-z][a-z0-9]*:` followed by
//! `[A-Za-z0-9+._-]+`, at most 128 bytes in all (`so:libz.so.1`, `cmd:vi`,
//! `pc:zlib`). A package itself is never called that. Alpine's path provides
//! (`/bin/sh`) are not accepted: an argument holding `/` names a local image to pkg.
//! A provide is `NAME` or `NAME=VERSION` (`so:libz.so.1=1.2.13`).

use alloc::string::String;
use core::cmp::Ordering;
use core::fmt;

/// The longest package name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// The longest version accepted, in bytes.
pub const MAX_VERSION_LEN: usize = 128;

/// Reports whether `name` is a valid package name (see the module documentation).
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if bytes.len() > MAX_NAME_LEN || !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return false;
    }
    // One pass: every byte allowed, and no `-<digit>`, which would make
    // `NAME-VERSION` ambiguous. Every index line has several names.
    let mut previous = 0u8;
    for &byte in bytes {
        let allowed = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || matches!(byte, b'+' | b'.' | b'_' | b'-');
        if !allowed || (previous == b'-' && byte.is_ascii_digit()) {
            return false;
        }
        previous = byte;
    }
    true
}

/// Why a version string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionError {
    /// The string is empty.
    Empty,
    /// The string is longer than [`MAX_VERSION_LEN`].
    TooLong,
    /// A number was expected at this byte offset.
    ExpectedNumber(usize),
    /// A number that must be written without leading zeros starts with `0`.
    LeadingZero(usize),
    /// The suffix starting at this byte offset is not one of the known ones.
    UnknownSuffix(usize),
    /// This character cannot appear at this byte offset.
    Unexpected(usize, char),
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionError::Empty => f.write_str("version is empty"),
            VersionError::TooLong => {
                write!(f, "version is longer than {MAX_VERSION_LEN} bytes")
            }
            VersionError::ExpectedNumber(at) => {
                write!(f, "version needs a number at byte {at}")
            }
            VersionError::LeadingZero(at) => {
                write!(f, "version has a number with a leading zero at byte {at}")
            }
            VersionError::UnknownSuffix(at) => write!(
                f,
                "version has an unknown suffix at byte {at} \
                 (known: alpha beta pre rc cvs svn git hg p)"
            ),
            VersionError::Unexpected(at, c) => {
                write!(f, "version has an unexpected {c:?} at byte {at}")
            }
        }
    }
}

impl core::error::Error for VersionError {}

/// The kinds of token a version is made of. The declaration order is the one
/// rule 4 of the module documentation uses, so it must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    First,
    Number,
    Letter,
    Suffix,
    SuffixNumber,
    Revision,
    End,
}

/// The suffixes in their order; everything before `NO_SUFFIX` is a pre-release.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const NO_SUFFIX: u8 = 4;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    /// The suffix rank for `Kind::Suffix`: pre-releases below `NO_SUFFIX`,
    /// post-releases above it.
    rank: u8,
}

/// Splits a version into tokens and checks that each one may follow the last.
struct Tokens<'a> {
    text: &'a str,
    position: usize,
    last: Kind,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens {
            text,
            position: 0,
            last: Kind::First,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn unexpected(&self) -> VersionError {
        let rest = self.text.get(self.position..).unwrap_or("");
        let c = rest.chars().next().unwrap_or('\0');
        VersionError::Unexpected(self.position, c)
    }

    /// Takes a run of digits; `canonical` numbers may not have leading zeros.
    fn digits(&mut self, kind: Kind, canonical: bool) -> Result<Token<'a>, VersionError> {
        let start = self.position;
        let rest = &self.text.as_bytes()[start..];
        let length = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if length == 0 {
            return Err(VersionError::ExpectedNumber(start));
        }
        if canonical && length > 1 && rest[0] == b'0' {
            return Err(VersionError::LeadingZero(start));
        }
        self.position += length;
        self.last = kind;
        Ok(Token {
            kind,
            text: &self.text[start..self.position],
            rank: 0,
        })
    }

    fn first(&mut self) -> Result<Token<'a>, VersionError> {
        self.digits(Kind::First, true)
    }

    fn next_token(&mut self) -> Result<Token<'a>, VersionError> {
        let Some(byte) = self.peek() else {
            self.last = Kind::End;
            return Ok(Token {
                kind: Kind::End,
                text: "",
                rank: 0,
            });
        };
        let last = self.last;
        match byte {
            b'.' if last <= Kind::Number => {
                self.position += 1;
                self.digits(Kind::Number, false)
            }
            b'a'..=b'z' if last <= Kind::Number => {
                let start = self.position;
                self.position += 1;
                self.last = Kind::Letter;
                Ok(Token {
                    kind: Kind::Letter,
                    text: &self.text[start..self.position],
                    rank: 0,
                })
            }
            b'0'..=b'9' if last == Kind::Suffix => self.digits(Kind::SuffixNumber, true),
            b'_' if last <= Kind::SuffixNumber => {
                self.position += 1;
                let start = self.position;
                let rest = &self.text.as_bytes()[start..];
                let length = rest.iter().take_while(|b| b.is_ascii_lowercase()).count();
                let text = &self.text[start..start + length];
                let Some(rank) = SUFFIXES.iter().position(|s| *s == text) else {
                    return Err(VersionError::UnknownSuffix(start));
                };
                // SUFFIXES has nine entries, so the rank fits a byte; the
                // release itself sits between `rc` and `cvs`.
                let rank = rank as u8;
                let rank = if rank < NO_SUFFIX { rank } else { rank + 1 };
                self.position += length;
                self.last = Kind::Suffix;
                Ok(Token {
                    kind: Kind::Suffix,
                    text,
                    rank,
                })
            }
            b'-' if last < Kind::Revision => {
                if self.text.as_bytes().get(self.position + 1) != Some(&b'r') {
                    return Err(self.unexpected());
                }
                self.position += 2;
                self.digits(Kind::Revision, true)
            }
            _ => Err(self.unexpected()),
        }
    }
}

/// Compares two runs of digits as numbers of any length.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    fn strip(digits: &str) -> &[u8] {
        let zeros = digits.bytes().take_while(|&b| b == b'0').count();
        &digits.as_bytes()[zeros..]
    }
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Compares two tokens of the same kind.
fn compare_tokens(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        Kind::Number if a.text.starts_with('0') || b.text.starts_with('0') => a.text.cmp(b.text),
        Kind::First | Kind::Number | Kind::SuffixNumber | Kind::Revision => {
            compare_numbers(a.text, b.text)
        }
        Kind::Letter => a.text.cmp(b.text),
        Kind::Suffix => a.rank.cmp(&b.rank),
        Kind::End => Ordering::Equal,
    }
}

/// How two versions relate; `Prefix` means the second one's tokens are a proper
/// prefix of the first one's (needed by the fuzzy `~` match).
enum Relation {
    Ordered(Ordering),
    Prefix(Ordering),
}

fn relate(a: &str, b: &str) -> Relation {
    let mut left = Tokens::new(a);
    let mut right = Tokens::new(b);
    // Both strings were validated when their `Version` was made, so the
    // tokenizer cannot fail; should it ever, the rest counts as the end.
    let end = Token {
        kind: Kind::End,
        text: "",
        rank: 0,
    };
    let mut x = left.first().unwrap_or(end);
    let mut y = right.first().unwrap_or(end);
    while x.kind == y.kind && x.kind != Kind::End {
        let order = compare_tokens(&x, &y);
        if order != Ordering::Equal {
            return Relation::Ordered(order);
        }
        x = left.next_token().unwrap_or(end);
        y = right.next_token().unwrap_or(end);
    }
    let order = if x.kind == y.kind {
        Ordering::Equal
    } else if x.kind == Kind::Suffix && x.rank < NO_SUFFIX {
        Ordering::Less
    } else if y.kind == Kind::Suffix && y.rank < NO_SUFFIX {
        Ordering::Greater
    } else if x.kind > y.kind {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    if y.kind == Kind::End && x.kind != Kind::End {
        Relation::Prefix(order)
    } else {
        Relation::Ordered(order)
    }
}

/// Checks `text` against the version grammar without keeping it: what
/// [`Version::parse`] accepts.
pub fn check_version(text: &str) -> Result<(), VersionError> {
    if text.is_empty() {
        return Err(VersionError::Empty);
    }
    if text.len() > MAX_VERSION_LEN {
        return Err(VersionError::TooLong);
    }
    if is_plain_version(text.as_bytes()) {
        return Ok(());
    }
    let mut tokens = Tokens::new(text);
    tokens.first()?;
    while tokens.next_token()?.kind != Kind::End {}
    Ok(())
}

/// Whether `bytes` is a version of the common shape, `1.36.1` or `1.36.1-r2`
/// (numbers and dots, an optional revision, no leading zero where the grammar
/// forbids one): checked in one pass, since an index holds tens of thousands of
/// versions. Anything else goes through the tokenizer, which says what is wrong.
fn is_plain_version(bytes: &[u8]) -> bool {
    // Where the current number started, and whether a dot may come now.
    let mut number_start = 0;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'0'..=b'9' => at += 1,
            b'.' if at > number_start => {
                at += 1;
                number_start = at;
            }
            b'-' => break,
            _ => return false,
        }
    }
    // The first number has no leading zero, and the last number is not empty.
    let first_end = bytes
        .iter()
        .position(|&b| !b.is_ascii_digit())
        .unwrap_or(bytes.len());
    if first_end == 0 || (first_end > 1 && bytes[0] == b'0') || at == number_start {
        return false;
    }
    match &bytes[at..] {
        [] => true,
        [b'-', b'r', revision @ ..] => {
            !revision.is_empty()
                && revision.iter().all(u8::is_ascii_digit)
                && (revision.len() == 1 || revision[0] != b'0')
        }
        _ => false,
    }
}

/// Compares two versions that [`check_version`] accepted, as [`Version`]'s `Ord` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    match relate(a, b) {
        Relation::Ordered(order) | Relation::Prefix(order) => order,
    }
}

/// Reports whether the checked version `candidate` satisfies `op` `wanted`.
pub fn op_allows(op: Op, candidate: &str, wanted: &str) -> bool {
    let order = compare(candidate, wanted);
    match op {
        Op::Eq => order == Ordering::Equal,
        Op::Lt => order == Ordering::Less,
        Op::Le => order != Ordering::Greater,
        Op::Gt => order == Ordering::Greater,
        Op::Ge => order != Ordering::Less,
        Op::Tilde => match relate(candidate, wanted) {
            Relation::Ordered(order) => order == Ordering::Equal,
            Relation::Prefix(_) => true,
        },
    }
}

/// A validated version, ordered like apk orders versions (module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// Checks `text` against the version grammar and keeps it.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        check_version(text)?;
        Ok(Version(String::from(text)))
    }

    /// A version [`check_version`] accepted already.
    pub(crate) fn from_checked(text: &str) -> Version {
        Version(String::from(text))
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reports whether `self` matches the fuzzy pattern `~prefix`: `prefix`'s
    /// tokens are the first tokens of `self`.
    pub fn starts_with(&self, prefix: &Version) -> bool {
        match relate(&self.0, &prefix.0) {
            Relation::Ordered(order) => order == Ordering::Equal,
            Relation::Prefix(_) => true,
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match relate(&self.0, &other.0) {
            Relation::Ordered(order) | Relation::Prefix(order) => order,
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Version::parse(text)
    }
}

/// Why a `NAME-VERSION` identity was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageIdError {
    /// There is no `-<digit>` to split the name from the version.
    NoVersion,
    /// The part before the version is not a valid package name.
    BadName,
    /// The part after the name is not a valid version.
    BadVersion(VersionError),
}

impl fmt::Display for PackageIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageIdError::NoVersion => f.write_str("package id has no -VERSION part"),
            PackageIdError::BadName => f.write_str("package id has an invalid name"),
            PackageIdError::BadVersion(error) => write!(f, "package id: {error}"),
        }
    }
}

impl core::error::Error for PackageIdError {}

/// The identity of one build of a package: `busybox-1.36.1-r2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageId {
    pub name: String,
    pub version: Version,
}

impl PackageId {
    /// Splits `NAME-VERSION` at the first `-<digit>` and checks both halves.
    pub fn parse(text: &str) -> Result<PackageId, PackageIdError> {
        let bytes = text.as_bytes();
        let split = bytes
            .windows(2)
            .position(|pair| pair[0] == b'-' && pair[1].is_ascii_digit())
            .ok_or(PackageIdError::NoVersion)?;
        let name = &text[..split];
        if !is_valid_name(name) {
            return Err(PackageIdError::BadName);
        }
        let version = Version::parse(&text[split + 1..]).map_err(PackageIdError::BadVersion)?;
        Ok(PackageId {
            name: String::from(name),
            version,
        })
    }
}

impl Ord for PackageId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name
            .cmp(&other.name)
            .then_with(|| self.version.cmp(&other.version))
    }
}

impl PartialOrd for PackageId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.name, self.version)
    }
}

/// A comparison operator of a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `~`, the fuzzy prefix match.
    Tilde,
}

impl Op {
    /// The operator as written in a dependency.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Tilde => "~",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition on a version: an operator and the version it compares with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    pub op: Op,
    pub version: Version,
}

impl Constraint {
    /// Reports whether `version` satisfies the constraint.
    pub fn matches(&self, version: &Version) -> bool {
        op_allows(self.op, version.as_str(), self.version.as_str())
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.op, self.version)
    }
}

/// Why a dependency was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyError {
    /// The name part is not a valid package name (nor a prefixed name such as `so:libz.so.1`).
    BadName,
    /// The operator is not one of `=`, `<`, `<=`, `>`, `>=`, `~`.
    BadOperator,
    /// An operator is not followed by a version.
    MissingVersion,
    /// The version part is not a valid version.
    BadVersion(VersionError),
    /// `NAME@TAG` where only a plain dependency may stand (an index or `.pkg/meta`).
    Tagged,
    /// The part after `@` is not a valid repository tag.
    BadTag,
    /// `!NAME@TAG`: a conflict holds whatever repository a package comes from.
    TaggedConflict,
}

impl fmt::Display for DependencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DependencyError::BadName => f.write_str("dependency has an invalid package name"),
            DependencyError::BadOperator => {
                f.write_str("dependency has an invalid operator (use = < <= > >= ~)")
            }
            DependencyError::MissingVersion => {
                f.write_str("dependency has an operator but no version")
            }
            DependencyError::BadVersion(error) => write!(f, "dependency: {error}"),
            DependencyError::Tagged => {
                f.write_str("dependency has a repository tag (@TAG belongs in requests only)")
            }
            DependencyError::BadTag => {
                write!(f, "dependency has an invalid tag (use [a-z0-9][a-z0-9._-]*, at most {MAX_TAG_LEN} bytes)")
            }
            DependencyError::TaggedConflict => f.write_str("a conflict (!NAME) takes no tag"),
        }
    }
}

impl core::error::Error for DependencyError {}

/// The longest repository tag accepted, in bytes.
pub const MAX_TAG_LEN: usize = 32;

/// Reports whether `name` may be depended on, conflicted with or provided: a package
/// name, or a prefixed name such as `so:libz.so.1`, `cmd:vi` or `pc:zlib` (module
/// documentation). Package names themselves stay plain.
pub fn is_valid_dependency_name(name: &str) -> bool {
    if is_valid_name(name) {
        return true;
    }
    let Some((prefix, rest)) = name.split_once(':') else {
        return false;
    };
    name.len() <= MAX_NAME_LEN
        && prefix
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_lowercase)
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b))
}

/// Reports whether `tag` is a valid repository tag such as `edge` or `testing`.
pub fn is_valid_tag(tag: &str) -> bool {
    tag.len() <= MAX_TAG_LEN
        && tag
            .as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A need for a package by name, optionally limited to some versions; or, with
/// `conflict`, the refusal of one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    pub name: String,
    pub constraint: Option<Constraint>,
    /// `!NAME`: no other package may have or provide the name (with a constraint, in a
    /// version it allows).
    pub conflict: bool,
    /// `NAME@TAG`, in requests only: the name may come from the repository tagged TAG.
    pub tag: Option<String>,
}

impl Dependency {
    /// Parses `[!]NAME[OP VERSION]`, for example `musl>=1.2.4` or `!dnsmasq`: what an
    /// index and `.pkg/meta` may say.
    pub fn parse(text: &str) -> Result<Dependency, DependencyError> {
        DependencyView::parse(text).map(|view| view.to_dependency())
    }

    /// Parses `[!]NAME[@TAG][OP VERSION]`, what a user may ask for and the world records:
    /// `busybox@edge`, `musl@edge>=1.2.5`.
    pub fn parse_request(text: &str) -> Result<Dependency, DependencyError> {
        // The tag sits between the name and the constraint; without it, the rest is a
        // plain dependency.
        let split = text
            .bytes()
            .position(|b| matches!(b, b'<' | b'>' | b'=' | b'~'))
            .unwrap_or(text.len());
        let (Some(at), plain) = (text[..split].find('@'), text) else {
            return DependencyView::parse_plain(text).map(|view| view.to_dependency());
        };
        let tag = &text[at + 1..split];
        let without = [&plain[..at], &plain[split..]].concat();
        let mut dependency = DependencyView::parse_plain(&without)?.to_dependency();
        if !is_valid_tag(tag) {
            return Err(DependencyError::BadTag);
        }
        if dependency.conflict {
            return Err(DependencyError::TaggedConflict);
        }
        dependency.tag = Some(String::from(tag));
        Ok(dependency)
    }

    /// A dependency on any version of `name`.
    pub fn any(name: &str) -> Dependency {
        Dependency {
            name: String::from(name),
            constraint: None,
            conflict: false,
            tag: None,
        }
    }

    /// Reports whether `version` is allowed (always, without a constraint). For a
    /// conflict, this is whether the conflict covers the version.
    pub fn allows(&self, version: &Version) -> bool {
        self.constraint
            .as_ref()
            .is_none_or(|constraint| constraint.matches(version))
    }

    /// Reports whether the package `id` itself satisfies the dependency: same
    /// name and an allowed version (for a conflict: one the conflict covers).
    /// Packages that merely provide the name are the solver's business.
    pub fn matches(&self, id: &PackageId) -> bool {
        self.name == id.name && self.allows(&id.version)
    }
}

/// Parses what follows a name: nothing, or an operator and a checked version.
fn parse_constraint(rest: &str) -> Result<Option<(Op, &str)>, DependencyError> {
    let is_operator = |b: u8| matches!(b, b'<' | b'>' | b'=' | b'~');
    let bytes = rest.as_bytes();
    let (op, length) = match bytes {
        [] => return Ok(None),
        [b'<', b'=', ..] => (Op::Le, 2),
        [b'>', b'=', ..] => (Op::Ge, 2),
        [b'<', ..] => (Op::Lt, 1),
        [b'>', ..] => (Op::Gt, 1),
        [b'=', ..] => (Op::Eq, 1),
        [b'~', ..] => (Op::Tilde, 1),
        _ => return Err(DependencyError::BadOperator),
    };
    let version = &rest[length..];
    let Some(&first) = version.as_bytes().first() else {
        return Err(DependencyError::MissingVersion);
    };
    // Catch `==`, `=>`, `~>` and the like as operator mistakes, which says
    // more than "unexpected character in version".
    if is_operator(first) {
        return Err(DependencyError::BadOperator);
    }
    check_version(version).map_err(DependencyError::BadVersion)?;
    Ok(Some((op, version)))
}

/// A dependency as a text spells it, borrowed from the text: what
/// [`Dependency::parse`] accepts, without copying (the index is parsed this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyView<'t> {
    pub name: &'t str,
    /// The operator and the (checked) version of the constraint, if any.
    pub constraint: Option<(Op, &'t str)>,
    pub conflict: bool,
}

impl<'t> DependencyView<'t> {
    /// Parses `[!]NAME[OP VERSION]` as [`Dependency::parse`] does.
    pub fn parse(text: &'t str) -> Result<DependencyView<'t>, DependencyError> {
        let view = DependencyView::parse_plain(text);
        if view.is_err() && text.contains('@') {
            // A tag: the request parser names the exact mistake, or says a tag does
            // not belong here.
            return match Dependency::parse_request(text) {
                Ok(_) => Err(DependencyError::Tagged),
                Err(error) => Err(error),
            };
        }
        view
    }

    /// [`DependencyView::parse`] for a text that holds no tag.
    fn parse_plain(text: &'t str) -> Result<DependencyView<'t>, DependencyError> {
        let (conflict, rest) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let split = rest
            .bytes()
            .position(|b| matches!(b, b'<' | b'>' | b'=' | b'~'))
            .unwrap_or(rest.len());
        let (name, constraint) = rest.split_at(split);
        if !is_valid_name(name) && !is_valid_dependency_name(name) {
            return Err(DependencyError::BadName);
        }
        Ok(DependencyView {
            name,
            constraint: parse_constraint(constraint)?,
            conflict,
        })
    }

    /// Reports whether the checked version `version` is allowed (always, without a
    /// constraint; for a conflict, whether the conflict covers it).
    pub fn allows(&self, version: &str) -> bool {
        self.constraint
            .is_none_or(|(op, wanted)| op_allows(op, version, wanted))
    }

    /// The owned dependency.
    pub fn to_dependency(&self) -> Dependency {
        Dependency {
            name: String::from(self.name),
            constraint: self.constraint.map(|(op, version)| Constraint {
                op,
                version: Version::from_checked(version),
            }),
            conflict: self.conflict,
            tag: None,
        }
    }
}

impl Dependency {
    /// The dependency as a view (its tag left out).
    pub fn view(&self) -> DependencyView<'_> {
        DependencyView {
            name: &self.name,
            constraint: self
                .constraint
                .as_ref()
                .map(|constraint| (constraint.op, constraint.version.as_str())),
            conflict: self.conflict,
        }
    }
}

/// A provided name as a text spells it, borrowed from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvideView<'t> {
    pub name: &'t str,
    /// The (checked) version, if any.
    pub version: Option<&'t str>,
}

impl<'t> ProvideView<'t> {
    /// Parses `NAME` or `NAME=VERSION` as [`Provide::parse`] does.
    pub fn parse(text: &'t str) -> Result<ProvideView<'t>, ProvideError> {
        let is_operator = |b: u8| matches!(b, b'<' | b'>' | b'=' | b'~');
        let split = text.bytes().position(is_operator).unwrap_or(text.len());
        let name = &text[..split];
        if !is_valid_dependency_name(name) {
            return Err(ProvideError::BadName);
        }
        let rest = &text[split..];
        if rest.is_empty() {
            return Ok(ProvideView {
                name,
                version: None,
            });
        }
        let version = rest.strip_prefix('=').ok_or(ProvideError::BadOperator)?;
        match version.as_bytes().first() {
            None => return Err(ProvideError::MissingVersion),
            Some(&first) if is_operator(first) => return Err(ProvideError::BadOperator),
            Some(_) => {}
        }
        check_version(version).map_err(ProvideError::BadVersion)?;
        Ok(ProvideView {
            name,
            version: Some(version),
        })
    }

    /// The owned provide.
    pub fn to_provide(&self) -> Provide {
        Provide {
            name: String::from(self.name),
            version: self.version.map(Version::from_checked),
        }
    }
}

impl Provide {
    /// The provide as a view.
    pub fn view(&self) -> ProvideView<'_> {
        ProvideView {
            name: &self.name,
            version: self.version.as_ref().map(Version::as_str),
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("!")?;
        }
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, "@{tag}")?;
        }
        if let Some(constraint) = &self.constraint {
            write!(f, "{constraint}")?;
        }
        Ok(())
    }
}

impl core::str::FromStr for Dependency {
    type Err = DependencyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Dependency::parse(text)
    }
}

/// Why a provided name was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvideError {
    /// The name is not a package name nor a prefixed name.
    BadName,
    /// A provided version is given with `=` only.
    BadOperator,
    /// `NAME=` without a version.
    MissingVersion,
    BadVersion(VersionError),
}

impl fmt::Display for ProvideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvideError::BadName => f.write_str("provides an invalid name"),
            ProvideError::BadOperator => {
                f.write_str("provides a version with an operator other than = (NAME=VERSION)")
            }
            ProvideError::MissingVersion => f.write_str("provides a name with = but no version"),
            ProvideError::BadVersion(error) => write!(f, "provides: {error}"),
        }
    }
}

impl core::error::Error for ProvideError {}

/// A name a package provides besides its own: `sh`, or with a version,
/// `so:libz.so.1=1.2.13`. Only a versioned provide satisfies a dependency with a
/// constraint; an unversioned one satisfies only dependencies without (as in apk).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provide {
    pub name: String,
    pub version: Option<Version>,
}

impl Provide {
    /// Parses `NAME` or `NAME=VERSION`.
    pub fn parse(text: &str) -> Result<Provide, ProvideError> {
        ProvideView::parse(text).map(|view| view.to_provide())
    }

    /// An unversioned provide of `name`.
    pub fn any(name: &str) -> Provide {
        Provide {
            name: String::from(name),
            version: None,
        }
    }
}

impl fmt::Display for Provide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(version) = &self.version {
            write!(f, "={version}")?;
        }
        Ok(())
    }
}

impl core::str::FromStr for Provide {
    type Err = ProvideError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Provide::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;
    use Ordering::{Equal, Greater, Less};

    fn version(text: &str) -> Version {
        match Version::parse(text) {
            Ok(version) => version,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[test]
    fn names() {
        let check = |name: &str, expect: bool| {
            assert_eq!(is_valid_name(name), expect, "{name:?}");
        };
        check("busybox", true);
        check("musl", true);
        check("libstdc++", true);
        check("py3-six", true);
        check("gtk+3.0", true);
        check("7zip", true);
        check("a", true);
        check("foo_bar.baz-qux", true);
        check("foo-bar2", true);
        check("x-11a", false);
        check("", false);
        check("Busybox", false);
        check("-foo", false);
        check("_foo", false);
        check(".foo", false);
        check("foo bar", false);
        check("foo/bar", false);
        check("foo-1", false);
        check("python-3x", false);
        check("foo=1", false);
        check("foo~", false);
        check("é", false);
        check(&"a".repeat(128), true);
        check(&"a".repeat(129), false);
    }

    #[test]
    fn ordering() {
        // Each row is (a, b, how a compares with b); the reverse is checked too.
        let table: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", Equal),
            ("1.36.1-r2", "1.36.1-r2", Equal),
            ("1.0", "1.1", Less),
            ("1.9", "1.10", Less),
            ("1.10", "1.2", Greater),
            ("2", "10", Less),
            ("1.2.3", "1.2.4", Less),
            ("1.2.3", "1.3", Less),
            ("1.0", "1.0.0", Less),
            ("1", "1.0", Less),
            ("1.0.0", "1.0.1", Less),
            ("99999999999999999999999", "100000000000000000000000", Less),
            ("1.99999999999999999999", "1.100000000000000000000", Less),
            // Later numbers with a leading zero compare as strings.
            ("1.05", "1.1", Less),
            ("1.05", "1.5", Less),
            ("1.001", "1.01", Less),
            ("1.01", "1.010", Less),
            ("1.0", "1.00", Less),
            ("2024.01.05", "2024.01.10", Less),
            ("1.09", "1.1", Less),
            // Letters.
            ("1.0a", "1.0b", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0.1", Less),
            ("1.0z", "1.1", Less),
            ("1.2.3a", "1.2.3", Greater),
            // Pre-release suffixes sort before the release.
            ("1.0_alpha", "1.0_beta", Less),
            ("1.0_beta", "1.0_pre", Less),
            ("1.0_pre", "1.0_rc", Less),
            ("1.0_rc", "1.0", Less),
            ("1.0_rc1", "1.0", Less),
            ("1.0_rc1", "1.0_rc2", Less),
            ("1.0_rc2", "1.0_rc10", Less),
            ("1.0_rc", "1.0_rc1", Less),
            ("1.0_alpha9", "1.0_beta1", Less),
            ("1.0_rc1", "0.9", Greater),
            ("1.0_rc1", "1.0-r1", Less),
            ("1.0_rc1-r5", "1.0_rc2", Less),
            ("1.0_rc1", "1.0_rc1-r0", Less),
            // Post-release suffixes sort after it.
            ("1.0", "1.0_cvs", Less),
            ("1.0_cvs", "1.0_svn", Less),
            ("1.0_svn", "1.0_git", Less),
            ("1.0_git", "1.0_hg", Less),
            ("1.0_hg", "1.0_p", Less),
            ("1.0_p1", "1.0_p2", Less),
            ("1.0_git20240101", "1.0_git20231231", Greater),
            ("1.0_p1", "1.0.1", Less),
            ("1.0_p1", "1.0a", Less),
            ("1.0_p1", "1.0-r1", Greater),
            ("1.0_alpha1_p2", "1.0_alpha1", Greater),
            ("1.0_alpha1_p2", "1.0_alpha2", Less),
            ("1.0_alpha_beta", "1.0_alpha", Less),
            // Revisions.
            ("1.0", "1.0-r0", Less),
            ("1.0-r1", "1.0-r2", Less),
            ("1.0-r9", "1.0-r10", Less),
            ("1.0-r1", "1.0.1", Less),
            ("1.36.1-r2", "1.36.1-r10", Less),
            ("1.2.4-r0", "1.2.3-r9", Greater),
            ("0", "0.0", Less),
            ("0.9", "0.10", Less),
        ];
        assert!(table.len() >= 40);
        for &(a, b, expect) in table {
            let (left, right) = (version(a), version(b));
            assert_eq!(left.cmp(&right), expect, "{a} vs {b}");
            assert_eq!(right.cmp(&left), expect.reverse(), "{b} vs {a}");
            // Eq must agree with Ord: equal exactly when spelled the same.
            assert_eq!(left == right, expect == Equal, "{a} == {b}");
        }
    }

    #[test]
    fn ordering_is_transitive_over_a_sorted_list() {
        let sorted = [
            "0.9",
            "1",
            "1.0_alpha",
            "1.0_alpha1",
            "1.0_beta",
            "1.0_pre2",
            "1.0_rc1",
            "1.0_rc1-r1",
            "1.0_rc2",
            "1.0",
            "1.0-r0",
            "1.0-r1",
            "1.0_cvs",
            "1.0_p1",
            "1.0_p1-r3",
            "1.0a",
            "1.0b",
            "1.0.0",
            "1.0.1",
            "1.01",
            "1.1",
            "1.1.1_rc1",
            "2",
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(version(a).cmp(&version(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn the_fast_check_agrees_with_the_tokenizer() {
        let pieces = [
            "0", "1", "01", "10", ".", "-r", "-r0", "-r01", "a", "_rc1", "-", "",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let mut longer = Vec::new();
            for text in &texts {
                for piece in pieces {
                    longer.push(format!("{text}{piece}"));
                }
            }
            texts = longer;
        }
        for text in &texts {
            if is_plain_version(text.as_bytes()) {
                let mut tokens = Tokens::new(text);
                let parsed = tokens.first().and_then(|_| {
                    while tokens.next_token()?.kind != Kind::End {}
                    Ok(())
                });
                assert_eq!(parsed, Ok(()), "{text:?} passed the fast check only");
            }
        }
    }

    #[test]
    fn invalid_versions() {
        let check = |text: &str, expect: VersionError| {
            assert_eq!(Version::parse(text), Err(expect), "{text:?}");
        };
        check("", VersionError::Empty);
        check(&"1".repeat(129), VersionError::TooLong);
        check("a", VersionError::ExpectedNumber(0));
        check("v1.0", VersionError::ExpectedNumber(0));
        check("1.", VersionError::ExpectedNumber(2));
        check("1..2", VersionError::ExpectedNumber(2));
        check(".1", VersionError::ExpectedNumber(0));
        check("01.2", VersionError::LeadingZero(0));
        check("1.0_rc01", VersionError::LeadingZero(6));
        check("1.0-r01", VersionError::LeadingZero(5));
        check("1.0-r", VersionError::ExpectedNumber(5));
        check("1.0-", VersionError::Unexpected(3, '-'));
        check("1.0-1", VersionError::Unexpected(3, '-'));
        check("1.0-r1-r2", VersionError::Unexpected(6, '-'));
        check("1.0-r1.2", VersionError::Unexpected(6, '.'));
        check("1.0ab", VersionError::Unexpected(4, 'b'));
        check("1.0a.1", VersionError::Unexpected(4, '.'));
        check("1.0a1", VersionError::Unexpected(4, '1'));
        check("1.0A", VersionError::Unexpected(3, 'A'));
        check("1.0_foo", VersionError::UnknownSuffix(4));
        check("1.0_", VersionError::UnknownSuffix(4));
        check("1.0_RC1", VersionError::UnknownSuffix(4));
        check("1.0_rc1.2", VersionError::Unexpected(7, '.'));
        check("1.0_rc1a", VersionError::Unexpected(7, 'a'));
        check("1.0_p-r1_rc", VersionError::Unexpected(8, '_'));
        check("1.0~abc", VersionError::Unexpected(3, '~'));
        check("1.0 ", VersionError::Unexpected(3, ' '));
        check(" 1.0", VersionError::ExpectedNumber(0));
        check("1.0\n", VersionError::Unexpected(3, '\n'));
        check("1.0é", VersionError::Unexpected(3, 'é'));
        // Leading zeros stay allowed where apk compares them as strings.
        assert!(Version::parse("2024.01.05").is_ok());
        assert!(Version::parse("0").is_ok());
        assert!(Version::parse("0.0_rc0-r0").is_ok());
        assert!(Version::parse(&"1".repeat(128)).is_ok());
    }

    #[test]
    fn package_ids() {
        let check = |text: &str, expect: Result<(&str, &str), PackageIdError>| {
            let got = PackageId::parse(text);
            match (&got, &expect) {
                (Ok(id), Ok((name, version))) => {
                    assert_eq!((id.name.as_str(), id.version.as_str()), (*name, *version));
                    assert_eq!(id.to_string(), text);
                }
                _ => assert_eq!(got.map(|_| ()), expect.map(|_| ()), "{text}"),
            }
        };
        check("busybox-1.36.1-r2", Ok(("busybox", "1.36.1-r2")));
        check("py3-six-1.16.0-r0", Ok(("py3-six", "1.16.0-r0")));
        check(
            "libstdc++-13.2.1_git20231014-r0",
            Ok(("libstdc++", "13.2.1_git20231014-r0")),
        );
        check("7zip-23.01-r0", Ok(("7zip", "23.01-r0")));
        check("a-0", Ok(("a", "0")));
        check("busybox", Err(PackageIdError::NoVersion));
        check("busybox-", Err(PackageIdError::NoVersion));
        check("busybox-r1", Err(PackageIdError::NoVersion));
        check("-1.0", Err(PackageIdError::BadName));
        check("Busybox-1.0", Err(PackageIdError::BadName));
        check("foo--1.0", Ok(("foo-", "1.0")));
        check(
            "foo-1.0-x",
            Err(PackageIdError::BadVersion(VersionError::Unexpected(3, '-'))),
        );
        check(
            "foo-1.0 ",
            Err(PackageIdError::BadVersion(VersionError::Unexpected(3, ' '))),
        );
    }

    #[test]
    fn package_id_order_is_name_then_version() {
        let mut ids: Vec<PackageId> = [
            "musl-1.2.4-r0",
            "busybox-1.36.1-r10",
            "busybox-1.36.1-r2",
            "b-2",
        ]
        .iter()
        .map(|text| PackageId::parse(text).unwrap())
        .collect();
        ids.sort();
        let text: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        assert_eq!(
            text,
            [
                "b-2",
                "busybox-1.36.1-r2",
                "busybox-1.36.1-r10",
                "musl-1.2.4-r0"
            ]
        );
    }

    #[test]
    fn constraints() {
        // Each row is (constraint, version, whether it matches).
        let table: &[(&str, &str, bool)] = &[
            ("=1.2", "1.2", true),
            ("=1.2", "1.2.0", false),
            ("=1.2", "1.2-r0", false),
            ("<1.2", "1.1.9", true),
            ("<1.2", "1.2", false),
            ("<1.2", "1.2_rc1", true),
            ("<=1.2", "1.2", true),
            ("<=1.2", "1.2-r1", false),
            (">1.2", "1.2", false),
            (">1.2", "1.2-r1", true),
            (">1.2", "1.2_p1", true),
            (">1.2", "1.2_rc9", false),
            (">=1.2.4", "1.2.4", true),
            (">=1.2.4", "1.2.3-r9", false),
            (">=1.2.4", "1.10", true),
            ("~1.2", "1.2", true),
            ("~1.2", "1.2.3", true),
            ("~1.2", "1.2a", true),
            ("~1.2", "1.2_rc1", true),
            ("~1.2", "1.2-r4", true),
            ("~1.2", "1.2.3_p1-r2", true),
            ("~1.2", "1.20", false),
            ("~1.2", "1.3", false),
            ("~1.2", "1", false),
            ("~1.2", "1.1.9", false),
            ("~1.2", "01.2", false),
            ("~1.2.3", "1.2", false),
            ("~1.2-r1", "1.2-r1", true),
            ("~1.2-r1", "1.2-r10", false),
            ("~1.2_rc", "1.2_rc3", true),
            ("~1.2_rc", "1.2_p3", false),
            ("~1.02", "1.02.1", true),
            ("~1.02", "1.020", false),
        ];
        for &(constraint, text, expect) in table {
            let dependency = Dependency::parse(&format!("x{constraint}")).unwrap();
            // `~1.2` against `01.2` checks that an invalid version never matches.
            let Ok(candidate) = Version::parse(text) else {
                assert!(!expect);
                continue;
            };
            assert_eq!(
                dependency.allows(&candidate),
                expect,
                "{constraint} vs {text}"
            );
        }
    }

    #[test]
    fn dependencies() {
        // A parsed dependency as (name, optional (operator, version)).
        type View<'a> = (&'a str, Option<(Op, &'a str)>);
        let check = |text: &str, expect: Result<View, DependencyError>| {
            let got = Dependency::parse(text);
            let got_view = got.as_ref().map(|dependency| {
                (
                    dependency.name.as_str(),
                    dependency
                        .constraint
                        .as_ref()
                        .map(|c| (c.op, c.version.as_str())),
                )
            });
            assert_eq!(got_view, expect.as_ref().copied(), "{text}");
            if let Ok(dependency) = got {
                assert_eq!(dependency.to_string(), text);
            }
        };
        check("busybox", Ok(("busybox", None)));
        check("musl>=1.2.4", Ok(("musl", Some((Op::Ge, "1.2.4")))));
        check("musl<=1.2.4", Ok(("musl", Some((Op::Le, "1.2.4")))));
        check("musl>1", Ok(("musl", Some((Op::Gt, "1")))));
        check("musl<1", Ok(("musl", Some((Op::Lt, "1")))));
        check("musl=1.2.3-r0", Ok(("musl", Some((Op::Eq, "1.2.3-r0")))));
        check("foo~1.2", Ok(("foo", Some((Op::Tilde, "1.2")))));
        check("libstdc++>=13", Ok(("libstdc++", Some((Op::Ge, "13")))));
        check("", Err(DependencyError::BadName));
        check(">=1.0", Err(DependencyError::BadName));
        check("Foo>=1", Err(DependencyError::BadName));
        check("foo-1>=1", Err(DependencyError::BadName));
        check("foo bar", Err(DependencyError::BadName));
        check("foo>=", Err(DependencyError::MissingVersion));
        check("foo=", Err(DependencyError::MissingVersion));
        check("foo==1", Err(DependencyError::BadOperator));
        check("foo=>1", Err(DependencyError::BadOperator));
        check("foo~>1", Err(DependencyError::BadOperator));
        check("foo<>1", Err(DependencyError::BadOperator));
        check(
            "foo>=1.x",
            Err(DependencyError::BadVersion(VersionError::ExpectedNumber(2))),
        );
        check(
            "foo>= 1",
            Err(DependencyError::BadVersion(VersionError::ExpectedNumber(0))),
        );
    }

    #[test]
    fn prefixed_names_and_tags() {
        let table: &[(&str, bool)] = &[
            ("busybox", true),
            ("so:libz.so.1", true),
            ("so:libSDL2-2.0.so.0", true),
            ("cmd:vi", true),
            ("pc:zlib", true),
            ("py3:six", true),
            ("so:", false),
            (":libz", false),
            ("So:libz", false),
            ("1so:libz", false),
            ("so:lib z", false),
            ("so:lib/z", false),
            ("so:libz:1", false),
            ("/bin/sh", false),
            ("so:libz@edge", false),
        ];
        for (name, expect) in table {
            assert_eq!(is_valid_dependency_name(name), *expect, "{name}");
            // A package is never called by a prefixed name.
            if name.contains(':') {
                assert!(!is_valid_name(name), "{name}");
            }
        }
        assert!(!is_valid_dependency_name(&format!(
            "so:{}",
            "a".repeat(126)
        )));
        assert!(is_valid_dependency_name(&format!("so:{}", "a".repeat(125))));
        for (tag, expect) in [
            ("edge", true),
            ("testing-2", true),
            ("v3.19", true),
            ("", false),
            ("Edge", false),
            ("-x", false),
            ("a b", false),
        ] {
            assert_eq!(is_valid_tag(tag), expect, "{tag:?}");
        }
        assert!(!is_valid_tag(&"a".repeat(33)));
    }

    #[test]
    fn conflicts_and_requests() {
        // (text, as a dependency, as a request): what each parse gives, as
        // "conflict name tag constraint" or the error.
        let render = |result: Result<Dependency, DependencyError>| match result {
            Ok(d) => format!(
                "{} {} {} {}",
                d.conflict,
                d.name,
                d.tag.as_deref().unwrap_or("-"),
                d.constraint.map_or("-".into(), |c| c.to_string())
            ),
            Err(error) => error.to_string(),
        };
        let table: &[(&str, &str, &str)] = &[
            ("!dnsmasq", "true dnsmasq - -", "true dnsmasq - -"),
            ("!foo<2", "true foo - <2", "true foo - <2"),
            (
                "!so:libz.so.1",
                "true so:libz.so.1 - -",
                "true so:libz.so.1 - -",
            ),
            (
                "so:libz.so.1>=1.2",
                "false so:libz.so.1 - >=1.2",
                "false so:libz.so.1 - >=1.2",
            ),
            (
                "busybox@edge",
                "dependency has a repository tag (@TAG belongs in requests only)",
                "false busybox edge -",
            ),
            (
                "musl@edge>=1.2.5",
                "dependency has a repository tag (@TAG belongs in requests only)",
                "false musl edge >=1.2.5",
            ),
            (
                "!foo@edge",
                "a conflict (!NAME) takes no tag",
                "a conflict (!NAME) takes no tag",
            ),
            (
                "foo@",
                "dependency has an invalid tag (use [a-z0-9][a-z0-9._-]*, at most 32 bytes)",
                "dependency has an invalid tag (use [a-z0-9][a-z0-9._-]*, at most 32 bytes)",
            ),
            (
                "foo@Edge",
                "dependency has an invalid tag (use [a-z0-9][a-z0-9._-]*, at most 32 bytes)",
                "dependency has an invalid tag (use [a-z0-9][a-z0-9._-]*, at most 32 bytes)",
            ),
            (
                "!!foo",
                "dependency has an invalid package name",
                "dependency has an invalid package name",
            ),
            (
                "!",
                "dependency has an invalid package name",
                "dependency has an invalid package name",
            ),
            (
                "foo!",
                "dependency has an invalid package name",
                "dependency has an invalid package name",
            ),
            (
                "@edge",
                "dependency has an invalid package name",
                "dependency has an invalid package name",
            ),
            (
                "foo>=1@edge",
                "dependency: version has an unexpected '@' at byte 1",
                "dependency: version has an unexpected '@' at byte 1",
            ),
        ];
        for (text, dependency, request) in table {
            assert_eq!(render(Dependency::parse(text)), *dependency, "{text}");
            let parsed = Dependency::parse_request(text);
            if let Ok(parsed) = &parsed {
                assert_eq!(parsed.to_string(), *text);
            }
            assert_eq!(render(parsed), *request, "{text}");
        }
        // A conflict's constraint says which versions it covers.
        let conflict = Dependency::parse("!foo<2").unwrap();
        assert!(conflict.allows(&version("1.9")));
        assert!(!conflict.allows(&version("2")));
    }

    #[test]
    fn provides() {
        let render = |text: &str| match Provide::parse(text) {
            Ok(provide) => {
                assert_eq!(provide.to_string(), text);
                format!(
                    "{} {}",
                    provide.name,
                    provide.version.map_or("-".into(), |v| v.to_string())
                )
            }
            Err(error) => error.to_string(),
        };
        let table: &[(&str, &str)] = &[
            ("sh", "sh -"),
            ("so:libz.so.1=1.2.13", "so:libz.so.1 1.2.13"),
            ("cmd:vi=1.36.1-r2", "cmd:vi 1.36.1-r2"),
            ("vi=1", "vi 1"),
            (
                "sh>=1",
                "provides a version with an operator other than = (NAME=VERSION)",
            ),
            (
                "sh~1",
                "provides a version with an operator other than = (NAME=VERSION)",
            ),
            (
                "sh==1",
                "provides a version with an operator other than = (NAME=VERSION)",
            ),
            ("sh=", "provides a name with = but no version"),
            ("sh=x", "provides: version needs a number at byte 0"),
            ("Sh", "provides an invalid name"),
            ("b-2", "provides an invalid name"),
            ("!sh", "provides an invalid name"),
            ("sh@edge", "provides an invalid name"),
            ("", "provides an invalid name"),
        ];
        for (text, expect) in table {
            assert_eq!(render(text), *expect, "{text}");
        }
    }

    #[test]
    fn dependency_matches_package_ids() {
        let id = PackageId::parse("musl-1.2.4-r0").unwrap();
        let check = |text: &str, expect: bool| {
            assert_eq!(
                Dependency::parse(text).unwrap().matches(&id),
                expect,
                "{text}"
            );
        };
        check("musl", true);
        check("musl>=1.2.4", true);
        check("musl>1.2.4", true);
        check("musl<1.2.4", false);
        check("musl~1.2", true);
        check("musl-dev", false);
        check("glibc", false);
    }

    #[test]
    fn dependency_lists() {
        let parse_dependency_list = |text: &str| -> Result<Vec<Dependency>, DependencyError> {
            text.split(',').map(Dependency::parse).collect()
        };
        let list = parse_dependency_list("musl>=1.2,zlib").unwrap();
        assert_eq!(
            list,
            vec![
                Dependency::parse("musl>=1.2").unwrap(),
                Dependency::any("zlib")
            ]
        );
        assert_eq!(
            parse_dependency_list("").unwrap_err(),
            DependencyError::BadName
        );
        assert_eq!(
            parse_dependency_list("a,,b").unwrap_err(),
            DependencyError::BadName
        );
        assert_eq!(
            parse_dependency_list("a, b").unwrap_err(),
            DependencyError::BadName
        );
    }

    #[test]
    fn errors_display_one_line() {
        let check = |error: &dyn fmt::Display, expect: &str| assert_eq!(error.to_string(), expect);
        check(&VersionError::Empty, "version is empty");
        check(
            &VersionError::Unexpected(3, '-'),
            "version has an unexpected '-' at byte 3",
        );
        check(
            &PackageIdError::BadVersion(VersionError::LeadingZero(0)),
            "package id: version has a number with a leading zero at byte 0",
        );
        check(
            &DependencyError::MissingVersion,
            "dependency has an operator but no version",
        );
    }
}
