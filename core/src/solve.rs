//! The dependency solver: picks one version per package so that every request and every dependency holds, or explains why none can.
//!
//! # Model
//!
//! The rules are apk's (Alpine's package manager) unless this says otherwise.
//!
//! - The candidates are the packages of one or more indexes, taken as one pool, each
//!   under the tag of its repository (or none). When two indexes hold the same id
//!   (`name-version`), the first index's entry wins; the id counts as being in every
//!   repository that lists it.
//! - A package *holds* its own name, with its version, and every name it provides:
//!   a versioned provide (`so:libz.so.1=1.2.13`) with that version, a plain one (`sh`)
//!   without. A name held with a version is held by one package only: two versions
//!   of one package, or two packages providing `so:libz.so.1=...`, exclude each
//!   other. A name without a version may be held by any number of packages at once
//!   (`bash` and `busybox` both provide `sh`), but not beside a holder with a version.
//!   (apk's rule too; the surprise is that a real package `vi` and a package that
//!   provides `vi` without a version cannot be installed together.)
//! - A dependency without a constraint (`sh`) is satisfied by any holder of the name.
//!   One with a constraint (`musl>=1.2.4`) is satisfied only by a holder with a
//!   version the constraint allows: the package of that name or a versioned provide;
//!   a plain provide never satisfies it (as in apk).
//! - A conflict (`!dnsmasq`) refuses every other package that holds the name; one with
//!   a constraint (`!foo<2`) refuses only holders with a version it allows, so plain
//!   provides pass it. A package's conflicts never apply to itself, so a package may
//!   conflict with a name it provides (it replaces the other providers).
//! - `install_if=a,b`: once holders of `a` and `b` are chosen (matching their
//!   constraints, if any), the package is chosen too, and when one of them goes, it
//!   goes with it: the result is always computed from the requests alone.
//! - Requests may name a repository tag (`vim@edge`). A package that only tagged
//!   repositories list is a candidate only for a request naming its tag and for the
//!   dependencies of what such a request chose (apk's pinning). A requested tag's
//!   versions come first for the request itself, even when an untagged repository
//!   has a newer one, so a pinned package stays pinned through upgrades; for
//!   dependencies, untagged versions come first. Installed packages stay candidates
//!   whatever their repository.
//! - The result is the closure of the requests: what they need, what that needs, the
//!   packages `install_if` brings, and so on; nothing else. It is sorted by name.
//!
//! # Preferences
//!
//! When a dependency has several candidates, they are tried in this order:
//!
//! 1. For a dependency without a constraint, candidates are grouped by package
//!    name: first names requested by name, then installed ones, then the name
//!    equal to the dependency, then the other names by `provider_priority`, higher
//!    first, then by the version they provide the name with, newest first, then
//!    alphabetically. (apk asks the provided version before the priority and may
//!    refuse to choose among plain providers without one; amber's order is total, so
//!    the choice is the same every time.)
//! 2. For a dependency with a constraint, every holder the constraint allows, by the
//!    version it holds the name with, newest first; the package of the name before
//!    providers of the same version.
//! 3. Within that order, candidates from a repository with the preferred tag come
//!    first (the request's tag; untagged for a request without one and for
//!    dependencies), and in [`Mode::Keep`] the installed version comes first among
//!    those; in [`Mode::Upgrade`] the newest does.
//!
//! # Search
//!
//! The search is depth first: each chosen package's dependencies are resolved before
//! the next request, so everything a request brings in is decided while it is the
//! request being resolved. For each requirement the preferred candidate is checked
//! against what is chosen (the names it would hold, the conflicts of the chosen
//! packages, the constraints recorded on its names) and one step ahead: each of its
//! versioned dependencies must still have a version that fits every constraint and
//! conflict recorded so far, and its conflicts must not hit a chosen package.
//!
//! A dead end is explained by the choices it depends on: the chosen package in the
//! way, the packages whose constraints or conflicts rule out every version, the
//! package that needed the requirement at all. When a requirement runs out of
//! candidates, the search jumps back to the most recent choice among those, and
//! carries the others along (conflict-directed backjumping): choices that have
//! nothing to do with a dead end, such as the hundreds of packages of an unrelated
//! request, are never retried. When a dependency rules out every version because of
//! the constraints recorded on a name, the dead end depends on those constraints'
//! packages rather than on the version chosen for the name, which no other version
//! would help. Each candidate check is one step; after [`DEFAULT_STEP_LIMIT`] steps
//! (or the pool's own limit) the solver gives up with [`SolveError::TooComplex`]
//! instead of running for exponential time, which some problems still need
//! (pigeonhole-like ones: nine packages that each need one of eight names only one
//! package may hold).
//!
//! When there is no solution, the error is the first dead end the search met,
//! following the preferences above: it explains why the most preferred choice
//! fails, as a chain a person can follow, for example
//! `busybox-1.36.1-r2 needs musl>=1.2.4, but musl=1.2.3-r0 was requested`,
//! `dnsmasq-full-2.90-r0 conflicts with dnsmasq-2.90-r0, which luci-app-x-1.0-r0 needs`
//! or `nothing provides libfoo (needed by bar-1.0-r0 <- requested bar)`.
//!
//! # Cost
//!
//! [`Pool::with_sources`] indexes every name and provided name once (`O(n log n)`),
//! and resolves the dependency names of every candidate to integers, so the search
//! itself does no string lookups except for the requests. A search compares the
//! versions held under a name with a constraint once, when it first meets the
//! constraint, and keeps the answer as one bit per holder: backtracking meets the
//! same constraints again and again, and comparing versions is the dearest thing it
//! does. It builds the explanation of a dead end only for the first one, the one it
//! reports.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::index::{Entry, EntryView, Index, IndexView};
use crate::version::{compare, op_allows, Constraint, Dependency, Op, PackageId, Version};

/// How many candidate checks a solve may take before it gives up.
pub const DEFAULT_STEP_LIMIT: usize = 100_000;

/// The most repository tags one pool tells apart.
pub const MAX_TAGS: usize = 31;

/// Which version of a package the solver tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep the installed version while it is still allowed, so adding one
    /// package does not upgrade unrelated ones.
    Keep,
    /// Prefer the newest version of everything.
    Upgrade,
}

/// The packages of one index: owned entries, or a view of the index's text.
#[derive(Debug, Clone, Copy)]
pub enum Packages<'a> {
    Index(&'a Index),
    View(&'a IndexView<'a>),
}

/// One index of candidates and the tag of the repository it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub packages: Packages<'a>,
    /// `Some("edge")` for a repository added with `--tag edge`.
    pub tag: Option<&'a str>,
}

impl<'a> Source<'a> {
    /// The owned entries of `index`, under `tag`.
    pub fn index(index: &'a Index, tag: Option<&'a str>) -> Source<'a> {
        Source {
            packages: Packages::Index(index),
            tag,
        }
    }

    /// The packages of a parsed text, under `tag`.
    pub fn view(view: &'a IndexView<'a>, tag: Option<&'a str>) -> Source<'a> {
        Source {
            packages: Packages::View(view),
            tag,
        }
    }
}

/// A package the solver chose, and the source (by its position) it was taken from:
/// the first that lists its id.
#[derive(Debug, Clone, Copy)]
pub struct Chosen<'a> {
    source: u32,
    origin: Origin<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    Entry(&'a Entry),
    View(&'a IndexView<'a>, &'a EntryView<'a>),
}

impl<'a> Chosen<'a> {
    /// The position of its source in the sources the pool was built from.
    pub fn source(&self) -> usize {
        self.source as usize
    }

    pub fn name(&self) -> &'a str {
        match self.origin {
            Origin::Entry(entry) => &entry.name,
            Origin::View(_, entry) => entry.name,
        }
    }

    pub fn version(&self) -> &'a str {
        match self.origin {
            Origin::Entry(entry) => entry.version.as_str(),
            Origin::View(_, entry) => entry.version,
        }
    }

    /// The package identity, `name-version`.
    pub fn id(&self) -> PackageId {
        PackageId {
            name: String::from(self.name()),
            version: Version::from_checked(self.version()),
        }
    }

    /// The size of its image file.
    pub fn size(&self) -> u64 {
        match self.origin {
            Origin::Entry(entry) => entry.size,
            Origin::View(_, entry) => entry.size,
        }
    }

    /// The SHA-256 of its image file.
    pub fn sha256(&self) -> [u8; 32] {
        match self.origin {
            Origin::Entry(entry) => entry.sha256,
            Origin::View(_, entry) => entry.sha256,
        }
    }

    /// The entry it was made from, when that was an owned one.
    pub fn entry(&self) -> Option<&'a Entry> {
        match self.origin {
            Origin::Entry(entry) => Some(entry),
            Origin::View(..) => None,
        }
    }

    /// Its owned entry.
    pub fn to_entry(&self) -> Entry {
        match self.origin {
            Origin::Entry(entry) => entry.clone(),
            Origin::View(view, entry) => view.entry(entry),
        }
    }
}

/// What started a chain of packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A request.
    Request(Dependency),
    /// The chosen packages whose names an `install_if` waited for.
    InstallIf(Vec<PackageId>),
}

/// The chain of packages that led to a requirement, up to what started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The packages that needed it, nearest first; empty for a request itself.
    pub packages: Vec<PackageId>,
    pub root: Root,
}

/// Writes `a-1, b-2`.
fn write_ids(f: &mut fmt::Formatter<'_>, ids: &[PackageId]) -> fmt::Result {
    for (i, id) in ids.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        write!(f, "{separator}{id}")?;
    }
    Ok(())
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.root, self.packages.is_empty()) {
            (Root::Request(_), true) => return f.write_str("requested"),
            (Root::InstallIf(ids), true) => {
                f.write_str("installed with ")?;
                write_ids(f, ids)?;
                return f.write_str(" (install_if)");
            }
            _ => {}
        }
        f.write_str("needed by ")?;
        for (i, package) in self.packages.iter().enumerate() {
            let separator = if i == 0 { "" } else { " <- " };
            write!(f, "{separator}{package}")?;
        }
        match &self.root {
            Root::Request(request) => write!(f, " <- requested {request}"),
            Root::InstallIf(ids) => {
                f.write_str(", installed with ")?;
                write_ids(f, ids)?;
                f.write_str(" (install_if)")
            }
        }
    }
}

impl Via {
    /// The rest of the chain after its first package, when it says more than
    /// "requested".
    fn beyond_first(&self) -> Option<Via> {
        let rest = Via {
            packages: self.packages.get(1..)?.to_vec(),
            root: self.root.clone(),
        };
        let plain = rest.packages.is_empty() && matches!(rest.root, Root::Request(_));
        (!plain).then_some(rest)
    }
}

/// Who needs a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needer {
    /// The user asked for it.
    Request,
    /// A package needs it; the chain says why that package is wanted.
    Package(PackageId, Via),
    /// It comes by itself (`install_if`) with these chosen packages.
    InstallIf(Vec<PackageId>),
}

/// Somebody needs a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub needer: Needer,
    pub dependency: Dependency,
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.needer {
            Needer::Request => write!(f, "{} was requested", self.dependency),
            Needer::Package(id, _) => write!(f, "{id} needs {}", self.dependency),
            Needer::InstallIf(ids) => {
                write!(f, "{} comes with ", self.dependency)?;
                write_ids(f, ids)?;
                f.write_str(" (install_if)")
            }
        }
    }
}

/// What stands in the way of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// Another claim on the same name that no version satisfies together with it.
    Claim(Claim),
    /// A package chosen earlier, for the reason given.
    Chosen(PackageId, Via),
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Claim(claim) => write!(f, "{claim}"),
            Blocker::Chosen(id, via) => write!(f, "{id} was chosen ({via})"),
        }
    }
}

/// A package and why it is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub id: PackageId,
    pub via: Via,
}

impl Wanted {
    /// `, which a-1 needs` / `, which was requested`, and the rest of the chain.
    fn write_which(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.via.packages.first(), &self.via.root) {
            (Some(first), _) => {
                write!(f, ", which {first} needs")?;
                if let Some(rest) = self.via.beyond_first() {
                    write!(f, " ({first} is {rest})")?;
                }
                Ok(())
            }
            (None, Root::Request(_)) => f.write_str(", which was requested"),
            (None, Root::InstallIf(_)) => write!(f, ", which is {}", self.via),
        }
    }

    /// ` (a-1 is needed by ...)` when the chain says more than "requested".
    fn write_chain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = self.via.packages.is_empty() && matches!(self.via.root, Root::Request(_));
        if plain {
            return Ok(());
        }
        write!(f, "; {} is {}", self.id, self.via)
    }
}

/// Why a set of requests cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolveError {
    /// No package has or provides the name.
    NothingProvides {
        dependency: Box<Dependency>,
        via: Box<Via>,
    },
    /// Packages of the name exist, but no version satisfies the constraint.
    NoMatchingVersion {
        dependency: Box<Dependency>,
        /// The versions the name is held with in the pool, newest first.
        available: Vec<Version>,
        via: Box<Via>,
    },
    /// Only repositories with a tag the request did not name have the name.
    OnlyTagged {
        dependency: Box<Dependency>,
        tags: Vec<String>,
        via: Box<Via>,
    },
    /// A request names a tag that no repository has.
    UnknownTag { dependency: Box<Dependency> },
    /// Two claims on one name cannot both hold.
    Conflict {
        wanted: Box<Claim>,
        blocker: Box<Blocker>,
    },
    /// `package` conflicts (`!NAME`) with `other`, and both are wanted.
    Conflicts {
        package: Box<Wanted>,
        other: Box<Wanted>,
    },
    /// Two packages hold a name that only one may hold (one with a version).
    SameName {
        name: String,
        package: Box<Wanted>,
        other: Box<Wanted>,
    },
    /// The search took more steps than its limit.
    TooComplex { steps: usize },
}

impl fmt::Display for SolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SolveError::NothingProvides { dependency, via } => {
                write!(f, "nothing provides {dependency} ({via})")
            }
            SolveError::NoMatchingVersion {
                dependency,
                available,
                via,
            } => {
                write!(
                    f,
                    "no version of {} satisfies {dependency} (available: ",
                    dependency.name
                )?;
                if available.is_empty() {
                    f.write_str("none")?;
                }
                for (i, version) in available.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}{version}")?;
                }
                write!(f, "; {via})")
            }
            SolveError::OnlyTagged {
                dependency,
                tags,
                via,
            } => {
                write!(f, "{} is only in repositories tagged ", dependency.name)?;
                for (i, tag) in tags.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}@{tag}")?;
                }
                let tag = tags.first().map_or("", String::as_str);
                write!(f, " (ask for {}@{tag}; {via})", dependency.name)
            }
            SolveError::UnknownTag { dependency } => match &dependency.tag {
                Some(tag) => write!(f, "{dependency}: no repository is tagged @{tag}"),
                None => write!(f, "{dependency}: no repository has its tag"),
            },
            SolveError::Conflict { wanted, blocker } => {
                write!(f, "{wanted}, but {blocker}")?;
                // A package pulled in by other packages gets its chain, so the
                // reader sees why it is there at all.
                match &wanted.needer {
                    Needer::Package(id, via) if !via.packages.is_empty() => {
                        write!(f, " ({id} is {via})")
                    }
                    Needer::Package(
                        id,
                        via @ Via {
                            root: Root::InstallIf(_),
                            ..
                        },
                    ) => write!(f, " ({id} is {via})"),
                    _ => Ok(()),
                }
            }
            SolveError::Conflicts { package, other } => {
                write!(f, "{} conflicts with {}", package.id, other.id)?;
                other.write_which(f)?;
                package.write_chain(f)
            }
            SolveError::SameName {
                name,
                package,
                other,
            } => {
                write!(
                    f,
                    "{} and {} ({}) both provide {name}, which only one package may \
                     provide with a version",
                    package.id, other.id, other.via
                )?;
                package.write_chain(f)
            }
            SolveError::TooComplex { steps } => write!(
                f,
                "dependencies too complex to resolve: gave up after {steps} steps"
            ),
        }
    }
}

impl core::error::Error for SolveError {}

type NameId = u32;
type CandidateId = u32;
/// A position in the search's list of choices, the depth of a decision.
type Level = u32;

/// Stands for "none" in the `u32` fields below.
const NONE: u32 = u32::MAX;
/// The tag bit of untagged repositories (and of what is installed).
const UNTAGGED: u32 = 1;

/// One name a candidate holds: which name, and its place among the name's holders
/// with a version, or [`NONE`] for a plain provide.
#[derive(Clone, Copy)]
struct Hold {
    name: NameId,
    slot: u32,
}

/// One entry of the pool with its names resolved to integers.
struct Candidate<'a> {
    chosen: Chosen<'a>,
    name: NameId,
    version: &'a str,
    provider_priority: u16,
    /// The tags of the repositories listing it, [`UNTAGGED`] for untagged ones.
    tags: u32,
    /// Range into `Pool::holds`: its own name first, then what it provides.
    holds: (u32, u32),
    /// Range into `Pool::triggers`: its `install_if`.
    triggers: (u32, u32),
}

/// A dependency with its name resolved; `None` when nothing has or provides it.
#[derive(Clone, Copy)]
struct Need<'d> {
    /// The name as written.
    text: &'d str,
    name: Option<NameId>,
    conflict: bool,
    constraint: Option<(Op, &'d str)>,
    /// A request's tag, for messages.
    tag: Option<&'d str>,
}

impl<'d> Need<'d> {
    fn of(dependency: &'d Dependency, name: Option<NameId>) -> Need<'d> {
        Need {
            text: &dependency.name,
            name,
            conflict: dependency.conflict,
            constraint: dependency
                .constraint
                .as_ref()
                .map(|constraint| (constraint.op, constraint.version.as_str())),
            tag: dependency.tag.as_deref(),
        }
    }

    fn of_view(view: &crate::version::DependencyView<'d>, name: Option<NameId>) -> Need<'d> {
        Need {
            text: view.name,
            name,
            conflict: view.conflict,
            constraint: view.constraint,
            tag: None,
        }
    }

    /// Whether the checked version `version` is allowed (for a conflict: covered).
    fn allows(&self, version: &str) -> bool {
        self.constraint
            .is_none_or(|(op, wanted)| op_allows(op, version, wanted))
    }

    /// The owned dependency, for messages.
    fn dependency(&self) -> Dependency {
        Dependency {
            name: String::from(self.text),
            constraint: self.constraint.map(|(op, version)| Constraint {
                op,
                version: Version::from_checked(version),
            }),
            conflict: self.conflict,
            tag: self.tag.map(String::from),
        }
    }
}

/// A holder of a name with a version.
#[derive(Clone, Copy)]
struct Exclusive<'a> {
    candidate: CandidateId,
    version: &'a str,
}

/// The candidates of another package name that provide a name, as one group.
#[derive(Clone, Copy)]
struct Group {
    name: NameId,
    /// Range into `Pool::providers`, newest first.
    members: (u32, u32),
}

/// What the pool knows about one name.
#[derive(Default, Clone)]
struct NameSlot {
    /// The candidates with this name: a range of candidate ids, newest first.
    packages: (CandidateId, CandidateId),
    /// Range into `Pool::exclusive`: every holder with a version, by that version,
    /// newest first; the package of the name first among equal versions.
    exclusive: (u32, u32),
    /// Range into `Pool::groups`: the other package names that provide it, in their
    /// static order (priority, provided version, name).
    groups: (u32, u32),
    /// Range into `Pool::watchers`: candidates whose `install_if` names it.
    watchers: (u32, u32),
}

/// The candidates of one or more indexes, indexed for solving.
pub struct Pool<'a> {
    names: NameTable<'a>,
    slots: Vec<NameSlot>,
    candidates: Vec<Candidate<'a>>,
    triggers: Vec<Need<'a>>,
    holds: Vec<Hold>,
    exclusive: Vec<Exclusive<'a>>,
    groups: Vec<Group>,
    providers: Vec<CandidateId>,
    watchers: Vec<CandidateId>,
    /// The tags of the sources; tag `i` is bit `i + 1`.
    tags: Vec<&'a str>,
    step_limit: usize,
}

/// A hash table from names to their ids, which are their positions in the
/// alphabetical list it is built from. Looking names up is most of the work of
/// building a pool, and `alloc` offers no hash map, so this is a small open
/// addressing table with FNV-1a hashing and linear probing, at most half full.
struct NameTable<'a> {
    names: Vec<&'a str>,
    /// Each slot holds `id + 1`, or 0 when empty.
    slots: Vec<u32>,
}

impl<'a> NameTable<'a> {
    fn new(names: Vec<&'a str>) -> Self {
        let size = (names.len() * 2).next_power_of_two().max(16);
        let mut slots = vec![0u32; size];
        for (id, name) in names.iter().enumerate() {
            let mut slot = Self::hash(name) & (size - 1);
            while slots[slot] != 0 {
                slot = (slot + 1) & (size - 1);
            }
            slots[slot] = to_u32(id + 1);
        }
        NameTable { names, slots }
    }

    /// Eight bytes at a time, multiplied in and mixed at the end (murmur3's final
    /// mix): names are looked up tens of thousands of times per pool, most are
    /// longer than eight bytes, and many differ only in their last bytes.
    fn hash(name: &str) -> usize {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes = name.as_bytes();
        let mut hash = bytes.len() as u64;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            if let Some(&word) = chunk.first_chunk::<8>() {
                hash = (hash ^ u64::from_le_bytes(word))
                    .wrapping_mul(K)
                    .rotate_left(31);
            }
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(K);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        // Only the low bits index the table; truncation on 32-bit targets is fine.
        hash as usize
    }

    fn get(&self, name: &str) -> Option<NameId> {
        let mask = self.slots.len() - 1;
        let mut slot = Self::hash(name) & mask;
        // The table is at most half full, so an empty slot ends every probe.
        loop {
            let id = self.slots[slot].checked_sub(1)?;
            if self.names.get(id as usize) == Some(&name) {
                return Some(id);
            }
            slot = (slot + 1) & mask;
        }
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// The slots whose bits are set in a run of allowed bits, in order.
struct AllowedSlots<'s> {
    words: core::slice::Iter<'s, u64>,
    /// The bits of the current word not visited yet.
    word: u64,
    /// The slot that bit 0 of the current word stands for.
    base: u32,
    /// The slot that bit 0 of the next word stands for.
    next: u32,
}

impl Iterator for AllowedSlots<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.word == 0 {
            self.word = *self.words.next()?;
            self.base = self.next;
            self.next += 64;
        }
        let bit = self.word.trailing_zeros();
        // Clears the lowest set bit, the one just visited.
        self.word &= self.word - 1;
        Some(self.base + bit)
    }
}

fn range(span: (u32, u32)) -> core::ops::Range<usize> {
    span.0 as usize..span.1 as usize
}

fn to_u32(value: usize) -> u32 {
    // Indexes bigger than four billion entries do not fit in memory anyway.
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Fills `ranges` from per-item counts: item `i`'s range starts where `i - 1`'s ends.
fn ranges_from_counts(counts: &[u32]) -> Vec<(u32, u32)> {
    let mut start = 0;
    counts
        .iter()
        .map(|&count| {
            let span = (start, start + count);
            start += count;
            span
        })
        .collect()
}

/// One package of a source, with what sorting and merging need.
#[derive(Clone, Copy)]
struct Item<'a> {
    chosen: Chosen<'a>,
    name: &'a str,
    version: &'a str,
}

impl<'a> Item<'a> {
    fn new(source: u32, origin: Origin<'a>) -> Item<'a> {
        let chosen = Chosen { source, origin };
        Item {
            chosen,
            name: chosen.name(),
            version: chosen.version(),
        }
    }
}

/// A source's packages sorted by name, newest first. A parsed index is sorted by
/// name, then oldest first: then each name's run only needs reversing, which costs
/// far less than a sort (comparing versions is dear). An [`IndexView`] is sorted by
/// construction; owned entries are checked.
fn newest_first<'a>(number: u32, packages: Packages<'a>) -> Vec<Item<'a>> {
    let (mut items, sorted): (Vec<Item<'a>>, bool) = match packages {
        Packages::Index(index) => {
            let sorted = index.packages.windows(2).all(|pair| {
                pair[0]
                    .name
                    .cmp(&pair[1].name)
                    .then_with(|| pair[0].version.cmp(&pair[1].version))
                    .is_lt()
            });
            let items = index
                .packages
                .iter()
                .map(|entry| Item::new(number, Origin::Entry(entry)))
                .collect();
            (items, sorted)
        }
        Packages::View(view) => {
            let items = view
                .packages()
                .iter()
                .map(|entry| Item::new(number, Origin::View(view, entry)))
                .collect();
            (items, true)
        }
    };
    if !sorted {
        crate::sort::sort_by(&mut items, |a, b| {
            a.name
                .cmp(b.name)
                .then_with(|| compare(b.version, a.version))
        });
        // Equal ids within one source: the first stays, as across sources.
        items.dedup_by(|later, earlier| {
            later.name == earlier.name && later.version == earlier.version
        });
        return items;
    }
    let mut start = 0;
    while start < items.len() {
        let name = items[start].name;
        let end = items[start..]
            .iter()
            .position(|item| item.name != name)
            .map_or(items.len(), |length| start + length);
        items[start..end].reverse();
        start = end;
    }
    items
}

/// Merges packages sorted by name, newest first, with those of a later source under
/// `bit`: an id both have keeps the earlier package and gets the bit too.
fn merge<'a>(
    earlier: Vec<(Item<'a>, u32)>,
    later: Vec<Item<'a>>,
    bit: u32,
) -> Vec<(Item<'a>, u32)> {
    let mut out = Vec::with_capacity(earlier.len() + later.len());
    let mut later = later.into_iter().peekable();
    for (item, tags) in earlier {
        let mut tags = tags;
        while let Some(&next) = later.peek() {
            let order = next
                .name
                .cmp(item.name)
                .then_with(|| compare(item.version, next.version));
            match order {
                core::cmp::Ordering::Less => {
                    out.push((next, bit));
                    later.next();
                }
                core::cmp::Ordering::Equal => {
                    tags |= bit;
                    later.next();
                }
                core::cmp::Ordering::Greater => break,
            }
        }
        out.push((item, tags));
    }
    out.extend(later.map(|item| (item, bit)));
    out
}

/// A name a candidate provides, resolved, and the version it provides it with.
#[derive(Clone, Copy)]
struct Provided<'a> {
    name: NameId,
    version: Option<&'a str>,
}

impl<'a> Pool<'a> {
    /// Builds the pool from untagged indexes; for an id in several indexes the first wins.
    pub fn new(indexes: &[&'a Index]) -> Pool<'a> {
        let sources: Vec<Source<'a>> = indexes
            .iter()
            .map(|&index| Source::index(index, None))
            .collect();
        Pool::with_sources(&sources)
    }

    /// Builds the pool from indexes, each under its repository's tag; for an id in
    /// several indexes the first one's entry wins, and the id has every tag. Tags past
    /// the first [`MAX_TAGS`] count as untagged.
    pub fn with_sources(sources: &[Source<'a>]) -> Pool<'a> {
        let mut tags: Vec<&'a str> = Vec::new();
        // Each source's packages sorted by name, newest first, then all merged.
        let mut merged: Vec<(Item<'a>, u32)> = Vec::new();
        for (number, source) in sources.iter().enumerate() {
            let bit = match source.tag {
                None => UNTAGGED,
                Some(tag) => match tags.iter().position(|known| *known == tag) {
                    Some(at) => 2 << at,
                    None if tags.len() < MAX_TAGS => {
                        tags.push(tag);
                        1 << tags.len()
                    }
                    None => UNTAGGED,
                },
            };
            let ordered = newest_first(to_u32(number), source.packages);
            merged = if merged.is_empty() {
                ordered.into_iter().map(|item| (item, bit)).collect()
            } else {
                merge(merged, ordered, bit)
            };
        }
        // Name ids follow alphabetical order, which keeps every later ordering
        // by id alphabetical too: package names (sorted already) merged with
        // the provided names.
        let provided_of =
            |item: &Item<'a>, out: &mut Vec<(&'a str, Option<&'a str>)>| match item.chosen.origin {
                Origin::Entry(entry) => out.extend(
                    entry
                        .provides
                        .iter()
                        .map(|p| (p.name.as_str(), p.version.as_ref().map(Version::as_str))),
                ),
                Origin::View(view, entry) => {
                    out.extend(view.provides(entry).iter().map(|p| (p.name, p.version)))
                }
            };
        let mut provides_text: Vec<(&'a str, Option<&'a str>)> = Vec::new();
        let mut provides_span: Vec<(u32, u32)> = Vec::with_capacity(merged.len());
        for (item, _) in &merged {
            let start = to_u32(provides_text.len());
            provided_of(item, &mut provides_text);
            provides_span.push((start, to_u32(provides_text.len())));
        }
        let mut provided_names: Vec<&'a str> =
            provides_text.iter().map(|(name, _)| *name).collect();
        crate::sort::sort(&mut provided_names);
        provided_names.dedup();
        let mut package_names: Vec<&'a str> = merged.iter().map(|(item, _)| item.name).collect();
        package_names.dedup();
        let mut all_names = Vec::with_capacity(package_names.len() + provided_names.len());
        let (mut left, mut right) = (
            package_names.iter().peekable(),
            provided_names.iter().peekable(),
        );
        loop {
            let next = match (left.peek(), right.peek()) {
                (Some(&&a), Some(&&b)) if a == b => {
                    right.next();
                    left.next()
                }
                (Some(&&a), Some(&&b)) if b < a => right.next(),
                (Some(_), _) => left.next(),
                (None, Some(_)) => right.next(),
                (None, None) => None,
            };
            let Some(&name) = next else {
                break;
            };
            all_names.push(name);
        }
        let names = NameTable::new(all_names);
        let name_count = names.len();
        let provided: Vec<Provided<'a>> = provides_text
            .iter()
            .map(|&(name, version)| Provided {
                name: names.get(name).unwrap_or(0),
                version,
            })
            .collect();
        let mut slots = vec![NameSlot::default(); name_count];
        let mut candidates: Vec<Candidate<'a>> = Vec::with_capacity(merged.len());
        let mut triggers = Vec::new();
        // How many holders with a version, providers and watchers each name has, to
        // lay their lists out by counting.
        let mut exclusive_count = vec![0u32; name_count];
        let mut provider_count = vec![0u32; name_count];
        let mut watcher_count = vec![0u32; name_count];
        // Package names come in the table's order, so their ids need no lookups.
        let mut next_name: NameId = 0;
        for (number, (item, tags)) in merged.into_iter().enumerate() {
            while names
                .names
                .get(next_name as usize)
                .is_some_and(|&name| name != item.name)
            {
                next_name += 1;
            }
            // Every package name is in the table; the lookup only keeps this total.
            let name = if names.names.get(next_name as usize) == Some(&item.name) {
                next_name
            } else {
                next_name = 0;
                names.get(item.name).unwrap_or(0)
            };
            let id = to_u32(number);
            let slot = &mut slots[name as usize];
            if slot.packages.1 == slot.packages.0 {
                slot.packages = (id, id);
            }
            slot.packages.1 = id + 1;
            exclusive_count[name as usize] += 1;
            // Dependencies are resolved by each search, for the candidates it meets:
            // a solve meets a few hundred of the pool's thousands.
            let trigger_start = to_u32(triggers.len());
            let priority = match item.chosen.origin {
                Origin::Entry(entry) => {
                    for dependency in &entry.install_if {
                        triggers.push(Need::of(dependency, names.get(&dependency.name)));
                    }
                    entry.provider_priority
                }
                Origin::View(view, entry) => {
                    for dependency in view.install_if(entry) {
                        triggers.push(Need::of_view(dependency, names.get(dependency.name)));
                    }
                    entry.provider_priority
                }
            };
            let trigger_span = (trigger_start, to_u32(triggers.len()));
            for trigger in &triggers[range(trigger_span)] {
                if let Some(watched) = trigger.name {
                    watcher_count[watched as usize] += 1;
                }
            }
            for provide in &provided[range(provides_span[number])] {
                if provide.version.is_some() {
                    exclusive_count[provide.name as usize] += 1;
                }
                provider_count[provide.name as usize] += 1;
            }
            candidates.push(Candidate {
                chosen: item.chosen,
                name,
                version: item.version,
                provider_priority: priority,
                tags,
                holds: (0, 0),
                triggers: trigger_span,
            });
        }
        // Lay out each name's holders with a version, providers and watchers.
        let exclusive_spans = ranges_from_counts(&exclusive_count);
        let provider_spans = ranges_from_counts(&provider_count);
        let watcher_spans = ranges_from_counts(&watcher_count);
        let total = exclusive_spans.last().map_or(0, |span| span.1 as usize);
        let mut exclusive: Vec<Exclusive<'a>> = match candidates.first() {
            Some(first) => vec![
                Exclusive {
                    candidate: 0,
                    version: first.version,
                };
                total
            ],
            None => Vec::new(),
        };
        let mut exclusive_fill: Vec<u32> = exclusive_spans.iter().map(|s| s.0).collect();
        let mut providers = vec![0u32; provider_spans.last().map_or(0, |s| s.1 as usize)];
        let mut provider_fill: Vec<u32> = provider_spans.iter().map(|s| s.0).collect();
        let mut watchers = vec![0u32; watcher_spans.last().map_or(0, |s| s.1 as usize)];
        let mut watcher_fill: Vec<u32> = watcher_spans.iter().map(|s| s.0).collect();
        // Each candidate's holds: its own name, then its provides in order; the slot
        // of each hold with a version is filled in once the holders are sorted.
        let mut holds = Vec::with_capacity(candidates.len() + provided.len());
        for (number, candidate) in candidates.iter_mut().enumerate() {
            let id = to_u32(number);
            let own = candidate.name as usize;
            let start = to_u32(holds.len());
            holds.push(Hold {
                name: candidate.name,
                slot: exclusive_fill[own],
            });
            exclusive[exclusive_fill[own] as usize] = Exclusive {
                candidate: id,
                version: candidate.version,
            };
            exclusive_fill[own] += 1;
            for provide in &provided[range(provides_span[number])] {
                let name = provide.name as usize;
                let slot = match provide.version {
                    Some(version) => {
                        let slot = exclusive_fill[name];
                        exclusive[slot as usize] = Exclusive {
                            candidate: id,
                            version,
                        };
                        exclusive_fill[name] += 1;
                        slot
                    }
                    None => NONE,
                };
                holds.push(Hold {
                    name: provide.name,
                    slot,
                });
                providers[provider_fill[name] as usize] = id;
                provider_fill[name] += 1;
            }
            candidate.holds = (start, to_u32(holds.len()));
            for trigger in &triggers[range(candidate.triggers)] {
                if let Some(watched) = trigger.name {
                    watchers[watcher_fill[watched as usize] as usize] = id;
                    watcher_fill[watched as usize] += 1;
                }
            }
        }
        // Holders of one name with a version: the package of the name first (its
        // versions newest first already), then providers; sorted when there are any,
        // and the holds moved along.
        for (id, span) in exclusive_spans.iter().enumerate() {
            let own = (slots[id].packages.1 - slots[id].packages.0) as usize;
            slots[id].exclusive = *span;
            slots[id].watchers = watcher_spans[id];
            let list = &mut exclusive[range(*span)];
            if list.len() <= own {
                continue;
            }
            crate::sort::sort_by(list, |a, b| {
                let a_other = candidates[a.candidate as usize].name as usize != id;
                let b_other = candidates[b.candidate as usize].name as usize != id;
                compare(b.version, a.version).then(a_other.cmp(&b_other))
            });
            for slot in range(*span) {
                let holder = exclusive[slot];
                let candidate = &candidates[holder.candidate as usize];
                // The candidate's hold on this name (one per name: provides are
                // unique and never the package's own name).
                if let Some(hold) = holds[range(candidate.holds)]
                    .iter_mut()
                    .find(|hold| hold.name as usize == id)
                {
                    hold.slot = to_u32(slot);
                }
            }
        }
        // The providers of each name, grouped by package name, in static order.
        let mut groups = Vec::new();
        for (id, span) in provider_spans.iter().enumerate() {
            let members = &providers[range(*span)];
            let start = to_u32(groups.len());
            let mut at = 0;
            while at < members.len() {
                let group = candidates[members[at] as usize].name;
                let end = members[at..]
                    .iter()
                    .position(|&c| candidates[c as usize].name != group)
                    .map_or(members.len(), |length| at + length);
                groups.push(Group {
                    name: group,
                    members: (span.0 + to_u32(at), span.0 + to_u32(end)),
                });
                at = end;
            }
            let list = &mut groups[start as usize..];
            if list.len() > 1 {
                let key = |group: &Group| {
                    let members = range(group.members);
                    let first = providers[members.start] as usize;
                    let priority = members
                        .map(|m| candidates[providers[m] as usize].provider_priority)
                        .max()
                        .unwrap_or(0);
                    let version = provided[range(provides_span[first])]
                        .iter()
                        .find(|provide| provide.name as usize == id)
                        .and_then(|provide| provide.version);
                    (priority, version, group.name)
                };
                crate::sort::sort_by(list, |a, b| {
                    let (a_priority, a_version, a_name) = key(a);
                    let (b_priority, b_version, b_name) = key(b);
                    let versions = match (a_version, b_version) {
                        (Some(a), Some(b)) => compare(b, a),
                        (a, b) => b.is_some().cmp(&a.is_some()),
                    };
                    b_priority
                        .cmp(&a_priority)
                        .then(versions)
                        .then(a_name.cmp(&b_name))
                });
            }
            slots[id].groups = (start, to_u32(groups.len()));
        }
        Pool {
            names,
            slots,
            candidates,
            triggers,
            holds,
            exclusive,
            groups,
            providers,
            watchers,
            tags,
            step_limit: DEFAULT_STEP_LIMIT,
        }
    }

    /// Sets how many candidate checks a solve may take.
    pub fn with_step_limit(mut self, limit: usize) -> Pool<'a> {
        self.step_limit = limit;
        self
    }

    /// The number of distinct packages (ids) in the pool.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Reports whether the pool has no packages.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Resolves `requests` against the pool, preferring `installed` versions
    /// as `mode` says. Returns the closure sorted by name.
    pub fn solve(
        &self,
        requests: &[Dependency],
        installed: &[PackageId],
        mode: Mode,
    ) -> Result<Vec<Chosen<'a>>, SolveError> {
        let mut search = Search::new(self, requests, installed, mode)?;
        search.run()?;
        Ok(search
            .states
            .iter()
            .enumerate()
            .filter_map(|(name, state)| {
                let holder = state.holder;
                (holder != NONE && self.name_of(holder) as usize == name)
                    .then(|| self.candidates[holder as usize].chosen)
            })
            .collect())
    }

    fn id(&self, candidate: CandidateId) -> PackageId {
        self.candidates[candidate as usize].chosen.id()
    }

    fn name_text(&self, candidate: CandidateId) -> &'a str {
        self.names.names[self.name_of(candidate) as usize]
    }

    fn name_of(&self, candidate: CandidateId) -> NameId {
        self.candidates[candidate as usize].name
    }

    fn versions(&self, name: NameId) -> core::ops::Range<usize> {
        range(self.slots[name as usize].packages)
    }

    fn holds_of(&self, candidate: CandidateId) -> &[Hold] {
        &self.holds[range(self.candidates[candidate as usize].holds)]
    }

    /// Where `candidate` holds `name`: Some(slot) with a version, Some(NONE) without,
    /// None when it does not hold it.
    fn hold_on(&self, candidate: CandidateId, name: NameId) -> Option<u32> {
        self.holds_of(candidate)
            .iter()
            .find(|hold| hold.name == name)
            .map(|hold| hold.slot)
    }

    /// The names of the tags in `tags`, for messages.
    fn tag_names(&self, tags: u32) -> Vec<String> {
        self.tags
            .iter()
            .enumerate()
            .filter(|(at, _)| tags & (2 << at) != 0)
            .map(|(_, tag)| String::from(*tag))
            .collect()
    }
}

/// Resolves `requests` against the packages of `indexes` (see the module
/// documentation); a convenience for a single solve over a fresh [`Pool`].
pub fn solve<'a>(
    indexes: &[&'a Index],
    installed: &[PackageId],
    requests: &[Dependency],
    mode: Mode,
) -> Result<Vec<Chosen<'a>>, SolveError> {
    Pool::new(indexes).solve(requests, installed, mode)
}

/// What a requirement asks for.
#[derive(Clone, Copy)]
enum Want<'d> {
    /// A dependency or a request.
    Need(Need<'d>),
    /// The package's name, because its `install_if` holds.
    InstallIf(CandidateId),
}

/// One thing that must hold: what is wanted, who needs it, and what started the chain.
struct Requirement<'d> {
    want: Want<'d>,
    /// Names the dependency for the versions it allows (see [`Key`]).
    key: Key,
    parent: Option<CandidateId>,
    /// The request at the root of the chain (unused under an `install_if`).
    root: u32,
    /// The tags its candidates may come from.
    mask: u32,
    /// The tags tried first.
    prefer: u32,
}

/// Names a dependency for the versions it allows: a request's position among the
/// requests; after those, an `install_if` dependency's position in `Pool::triggers`;
/// after those, a package dependency's position in `Search::needs`.
type Key = u32;

/// The holders with a version that one dependency allows, once compared.
#[derive(Clone, Copy, Default)]
struct Allowed {
    /// Where its bits start in `Search::allowed_bits`, plus one; 0 until compared.
    start: u32,
    /// The first slot of the dependency's name, which bit 0 stands for.
    first: u32,
}

/// A dead end: its explanation, for the first one only (building it costs more
/// than finding the dead end), and the levels of the choices it depends on.
type DeadEnd = (Option<Box<SolveError>>, Vec<Level>);

/// A version constraint or a conflict recorded on a name.
#[derive(Clone, Copy)]
struct Restriction<'d> {
    need: Need<'d>,
    key: Key,
    /// The package that says it, or [`NONE`] for a request.
    source: CandidateId,
}

/// What the search knows about one name.
struct NameState<'d> {
    /// The candidate holding it with a version (its own name, or a versioned
    /// provide), or [`NONE`].
    holder: CandidateId,
    /// The candidates holding it without a version.
    shared: Vec<CandidateId>,
    /// The constraints and conflicts recorded on it.
    restrictions: Vec<Restriction<'d>>,
    /// For a package name held by its own package: the level it was chosen at, the
    /// requirement it was chosen for, and that requirement's tags.
    level: Level,
    chosen_for: u32,
    mask: u32,
    /// How much the name is wanted by name: 2 requested, 1 installed, 0 neither.
    preferred: u8,
    /// The installed candidate of this name, if it is in the pool.
    installed: CandidateId,
}

/// One change to the search state, kept so that it can be undone.
enum Undo {
    Held(NameId),
    Shared(NameId),
    Restricted(NameId),
    Pushed,
    Popped(u32),
}

/// A requirement with candidates: which one is tried next, the state to return to
/// before trying it, and the levels its failures so far depend on.
struct Choice {
    requirement: u32,
    /// Where its candidates start in `Search::options`; they run to the end.
    options: u32,
    /// The position in `Search::options` of the candidate to try next.
    next: u32,
    trail: u32,
    queue: u32,
    conflicts: Vec<Level>,
}

enum Status {
    Satisfied,
    /// The candidates were appended to the list given, in preference order.
    Open,
    Broken(DeadEnd),
}

struct Search<'p, 'a, 'r> {
    pool: &'p Pool<'a>,
    requests: &'r [Dependency],
    mode: Mode,
    states: Vec<NameState<'r>>,
    /// Every requirement met, in order; the pending ones are in `pending`.
    queue: Vec<Requirement<'r>>,
    /// The requirements still to resolve, the next one last.
    pending: Vec<u32>,
    trail: Vec<Undo>,
    choices: Vec<Choice>,
    /// The candidates of every choice, innermost last. Choices nest, so their
    /// candidates form a stack too, and one list serves them all without an
    /// allocation per choice.
    options: Vec<CandidateId>,
    /// The dependencies of the candidates met so far, resolved, and where each
    /// candidate's are ([`NONE`] before it is met).
    needs: Vec<Need<'a>>,
    need_spans: Vec<(u32, u32)>,
    /// The key of `needs[0]`.
    need_base: usize,
    /// Per key: where the holders it allows are, once compared.
    allowed: Vec<Allowed>,
    /// One bit per holder of each compared dependency's name, in slot order.
    allowed_bits: Vec<u64>,
    steps: usize,
    first_failure: Option<SolveError>,
}

/// Adds `level` to a set of levels.
fn add_level(set: &mut Vec<Level>, level: Level) {
    if level != NONE && !set.contains(&level) {
        set.push(level);
    }
}

impl<'p, 'a: 'r, 'r> Search<'p, 'a, 'r> {
    fn new(
        pool: &'p Pool<'a>,
        requests: &'r [Dependency],
        installed: &[PackageId],
        mode: Mode,
    ) -> Result<Self, SolveError> {
        let count = pool.slots.len();
        let need_base = requests.len() + pool.triggers.len();
        let mut search = Search {
            pool,
            requests,
            mode,
            states: (0..count)
                .map(|_| NameState {
                    holder: NONE,
                    shared: Vec::new(),
                    restrictions: Vec::new(),
                    level: NONE,
                    chosen_for: NONE,
                    mask: 0,
                    preferred: 0,
                    installed: NONE,
                })
                .collect(),
            queue: Vec::with_capacity(requests.len() * 4),
            pending: Vec::new(),
            trail: Vec::new(),
            choices: Vec::new(),
            options: Vec::new(),
            needs: Vec::new(),
            need_spans: vec![(NONE, NONE); pool.candidates.len()],
            need_base,
            allowed: vec![Allowed::default(); need_base],
            allowed_bits: Vec::new(),
            steps: 0,
            first_failure: None,
        };
        for id in installed {
            let Some(name) = pool.names.get(&id.name) else {
                continue;
            };
            let state = &mut search.states[name as usize];
            state.preferred = state.preferred.max(1);
            state.installed = pool
                .versions(name)
                .find(|&candidate| pool.candidates[candidate].version == id.version.as_str())
                .map_or(NONE, to_u32);
        }
        let mut tags = Vec::with_capacity(requests.len());
        for (root, dependency) in requests.iter().enumerate() {
            let name = pool.names.get(&dependency.name);
            let key = to_u32(root);
            tags.push(match &dependency.tag {
                None => UNTAGGED,
                Some(tag) => match pool.tags.iter().position(|known| known == tag) {
                    Some(at) => 2 << at,
                    None => {
                        return Err(SolveError::UnknownTag {
                            dependency: Box::new(dependency.clone()),
                        })
                    }
                },
            });
            search.compare(key, Need::of(dependency, name));
            let Some(name) = name else { continue };
            // Requests constrain their name from the start, so the first candidate
            // checks already see them.
            if dependency.constraint.is_some() || dependency.conflict {
                search.states[name as usize].restrictions.push(Restriction {
                    need: Need::of(dependency, Some(name)),
                    key,
                    source: NONE,
                });
            }
            if !dependency.conflict {
                search.states[name as usize].preferred = 2;
            }
        }
        // The first request on top, so requests are resolved in order.
        for (root, dependency) in requests.iter().enumerate().rev() {
            if dependency.conflict {
                continue;
            }
            let need = Need::of(dependency, pool.names.get(&dependency.name));
            let key = to_u32(root);
            let tag = tags[root];
            search.push_requirement(Want::Need(need), key, None, root, tag | UNTAGGED, tag);
        }
        // The pushes above are the starting state, not something to undo.
        search.trail.clear();
        Ok(search)
    }

    fn push_requirement(
        &mut self,
        want: Want<'r>,
        key: Key,
        parent: Option<CandidateId>,
        root: usize,
        mask: u32,
        prefer: u32,
    ) {
        let position = to_u32(self.queue.len());
        self.queue.push(Requirement {
            want,
            key,
            parent,
            root: to_u32(root),
            mask,
            prefer,
        });
        self.pending.push(position);
        self.trail.push(Undo::Pushed);
    }

    fn run(&mut self) -> Result<(), SolveError> {
        loop {
            let Some(position) = self.pending.pop() else {
                return Ok(());
            };
            self.trail.push(Undo::Popped(position));
            self.compare_requirement(position);
            let mut options = core::mem::take(&mut self.options);
            let start = options.len();
            let status = self.status(position, &mut options);
            self.options = options;
            match status {
                Status::Satisfied => {}
                Status::Open => {
                    self.choices.push(Choice {
                        requirement: position,
                        options: to_u32(start),
                        next: to_u32(start),
                        trail: to_u32(self.trail.len()),
                        queue: to_u32(self.queue.len()),
                        conflicts: Vec::new(),
                    });
                    self.advance()?;
                }
                Status::Broken((error, mut levels)) => {
                    self.note(error);
                    self.add_origin(position, &mut levels);
                    self.jump(levels)?;
                    self.advance()?;
                }
            }
        }
    }

    /// Tries the remaining candidates of the innermost choice; when it runs out,
    /// jumps back to the latest choice its dead ends depend on and goes on there.
    /// Returns once a candidate was chosen.
    fn advance(&mut self) -> Result<(), SolveError> {
        loop {
            let Some(choice) = self.choices.last() else {
                return Err(self.failure());
            };
            let (requirement, trail, queue) = (choice.requirement, choice.trail, choice.queue);
            self.undo(trail as usize, queue as usize);
            while let Some(candidate) = self.next_option() {
                self.steps += 1;
                if self.steps > self.pool.step_limit {
                    return Err(SolveError::TooComplex {
                        steps: self.steps - 1,
                    });
                }
                self.compare_needs(candidate);
                match self.check(candidate, requirement) {
                    Ok(()) => {
                        self.apply(candidate, requirement);
                        return Ok(());
                    }
                    Err((error, levels)) => {
                        self.note(error);
                        if let Some(choice) = self.choices.last_mut() {
                            for level in levels {
                                add_level(&mut choice.conflicts, level);
                            }
                        }
                    }
                }
            }
            let Some(choice) = self.choices.pop() else {
                return Err(self.failure());
            };
            self.options.truncate(choice.options as usize);
            let mut levels = choice.conflicts;
            self.add_origin(choice.requirement, &mut levels);
            self.jump(levels)?;
        }
    }

    /// Goes back to the latest of `levels`, leaving the choices after it, and
    /// hands it the others: if it runs out too, they are where to go next.
    fn jump(&mut self, levels: Vec<Level>) -> Result<(), SolveError> {
        let Some(&target) = levels.iter().max() else {
            return Err(self.failure());
        };
        while self.choices.len() > target as usize + 1 {
            if let Some(choice) = self.choices.pop() {
                self.options.truncate(choice.options as usize);
            }
        }
        let Some(choice) = self.choices.last_mut() else {
            return Err(self.failure());
        };
        for level in levels {
            if level != target {
                add_level(&mut choice.conflicts, level);
            }
        }
        Ok(())
    }

    /// Adds the levels a requirement exists because of: the choice of the package
    /// that needs it, or of the packages its `install_if` waited for.
    fn add_origin(&self, position: u32, levels: &mut Vec<Level>) {
        let requirement = &self.queue[position as usize];
        if let Some(parent) = requirement.parent {
            add_level(levels, self.level_of(parent));
        }
        if let Want::InstallIf(candidate) = requirement.want {
            let pool = self.pool;
            for trigger in &pool.triggers[range(pool.candidates[candidate as usize].triggers)] {
                if let Some(name) = trigger.name {
                    for holder in self.holders(name) {
                        add_level(levels, self.level_of(holder));
                    }
                }
            }
        }
    }

    fn level_of(&self, candidate: CandidateId) -> Level {
        self.states[self.pool.name_of(candidate) as usize].level
    }

    /// The candidates holding `name`, with a version or without.
    fn holders(&self, name: NameId) -> impl Iterator<Item = CandidateId> + '_ {
        let state = &self.states[name as usize];
        let holder = (state.holder != NONE).then_some(state.holder);
        holder.into_iter().chain(state.shared.iter().copied())
    }

    fn next_option(&mut self) -> Option<CandidateId> {
        let choice = self.choices.last_mut()?;
        let candidate = self.options.get(choice.next as usize).copied()?;
        choice.next += 1;
        Some(candidate)
    }

    /// Keeps the first dead end: it explains the most preferred path.
    fn note(&mut self, error: Option<Box<SolveError>>) {
        if self.first_failure.is_none() {
            self.first_failure = error.map(|error| *error);
        }
    }

    /// A dead end depending on `levels`, explained by `explain` if it is the first.
    fn dead_end(&self, levels: Vec<Level>, explain: &dyn Fn() -> SolveError) -> DeadEnd {
        (
            self.first_failure.is_none().then(|| Box::new(explain())),
            levels,
        )
    }

    fn failure(&mut self) -> SolveError {
        // A search that fails has met at least one dead end; the fallback only
        // keeps this function total.
        self.first_failure
            .take()
            .unwrap_or(SolveError::TooComplex { steps: self.steps })
    }

    /// Compares the holders of a versioned dependency's name with its constraint,
    /// unless that was done already.
    fn compare(&mut self, key: Key, need: Need<'_>) {
        let (Some(name), Some(_)) = (need.name, &need.constraint) else {
            return;
        };
        let allowed = &mut self.allowed[key as usize];
        if allowed.start != 0 {
            return;
        }
        let slots = range(self.pool.slots[name as usize].exclusive);
        allowed.start = to_u32(self.allowed_bits.len() + 1);
        allowed.first = to_u32(slots.start);
        let start = self.allowed_bits.len();
        self.allowed_bits
            .resize(start + slots.len().div_ceil(64), 0);
        for (bit, slot) in slots.enumerate() {
            if need.allows(self.pool.exclusive[slot].version) {
                self.allowed_bits[start + bit / 64] |= 1 << (bit % 64);
            }
        }
    }

    fn compare_requirement(&mut self, position: u32) {
        let requirement = &self.queue[position as usize];
        match requirement.want {
            Want::Need(need) => {
                let key = requirement.key;
                self.compare(key, need);
            }
            Want::InstallIf(candidate) => self.compare_triggers(candidate),
        }
    }

    /// Resolves the dependencies of a candidate, unless that was done already, and
    /// compares its versioned needs and conflicts, before it is checked.
    fn compare_needs(&mut self, candidate: CandidateId) {
        let needs = range(self.resolve_needs(candidate));
        for at in needs {
            let need = self.needs[at];
            self.compare(self.need_key(at), need);
        }
    }

    /// Where a candidate's dependencies are in `needs`, resolved on first use.
    fn resolve_needs(&mut self, candidate: CandidateId) -> (u32, u32) {
        let span = self.need_spans[candidate as usize];
        if span.0 != NONE {
            return span;
        }
        let pool = self.pool;
        let start = to_u32(self.needs.len());
        match pool.candidates[candidate as usize].chosen.origin {
            Origin::Entry(entry) => {
                for dependency in &entry.deps {
                    let name = pool.names.get(&dependency.name);
                    self.needs.push(Need::of(dependency, name));
                }
            }
            Origin::View(view, entry) => {
                for dependency in view.deps(entry) {
                    let name = pool.names.get(dependency.name);
                    self.needs.push(Need::of_view(dependency, name));
                }
            }
        }
        let span = (start, to_u32(self.needs.len()));
        self.need_spans[candidate as usize] = span;
        self.allowed
            .resize(self.need_base + self.needs.len(), Allowed::default());
        span
    }

    /// A candidate's dependencies, resolved by [`Search::compare_needs`].
    fn needs_of(&self, candidate: CandidateId) -> core::ops::Range<usize> {
        range(self.need_spans[candidate as usize])
    }

    fn need_key(&self, at: usize) -> Key {
        to_u32(self.need_base + at)
    }

    fn trigger_key(&self, at: usize) -> Key {
        to_u32(self.requests.len() + at)
    }

    fn compare_triggers(&mut self, candidate: CandidateId) {
        let pool = self.pool;
        let triggers = range(pool.candidates[candidate as usize].triggers);
        for (at, need) in triggers.clone().zip(&pool.triggers[triggers]) {
            self.compare(self.trigger_key(at), *need);
        }
    }

    /// Reports whether the dependency `key` allows the holder in `slot`, a holder of
    /// its name. The holders were compared when the dependency entered the search.
    fn allows(&self, key: Key, slot: u32) -> bool {
        let allowed = self.allowed[key as usize];
        let bit = (slot - allowed.first) as usize;
        let word = allowed.start as usize - 1 + bit / 64;
        self.allowed_bits[word] & (1 << (bit % 64)) != 0
    }

    /// The slots of `name` that the dependency `key` allows, in slot order.
    fn allowed_slots(&self, key: Key, name: NameId) -> AllowedSlots<'_> {
        let allowed = self.allowed[key as usize];
        let start = allowed.start as usize - 1;
        let words = range(self.pool.slots[name as usize].exclusive)
            .len()
            .div_ceil(64);
        AllowedSlots {
            words: self.allowed_bits[start..start + words].iter(),
            word: 0,
            base: allowed.first,
            next: allowed.first,
        }
    }

    /// Whether a restriction rules out holding its name in `slot` ([`NONE`]: without
    /// a version) by `candidate`.
    fn forbids(&self, restriction: &Restriction<'_>, candidate: CandidateId, slot: u32) -> bool {
        let need = restriction.need;
        match (need.conflict, need.constraint.is_some(), slot) {
            // A package's conflicts never apply to itself.
            (true, _, _) if restriction.source == candidate => false,
            (true, false, _) => true,
            (true, true, NONE) => false,
            (true, true, slot) => self.allows(restriction.key, slot),
            // A versioned need wants a holder with a version; one without would be
            // in its way.
            (false, _, NONE) => true,
            (false, _, slot) => !self.allows(restriction.key, slot),
        }
    }

    fn undo(&mut self, trail: usize, queue: usize) {
        while self.trail.len() > trail {
            match self.trail.pop() {
                Some(Undo::Held(name)) => self.states[name as usize].holder = NONE,
                Some(Undo::Shared(name)) => {
                    self.states[name as usize].shared.pop();
                }
                Some(Undo::Restricted(name)) => {
                    self.states[name as usize].restrictions.pop();
                }
                Some(Undo::Pushed) => {
                    self.pending.pop();
                }
                Some(Undo::Popped(position)) => self.pending.push(position),
                None => break,
            }
        }
        self.queue.truncate(queue);
    }

    fn apply(&mut self, candidate: CandidateId, requirement: u32) {
        let pool = self.pool;
        let record = &pool.candidates[candidate as usize];
        let level = to_u32(self.choices.len().saturating_sub(1));
        let (mask, root) = {
            let requirement = &self.queue[requirement as usize];
            (requirement.mask, requirement.root)
        };
        {
            let state = &mut self.states[record.name as usize];
            state.level = level;
            state.chosen_for = requirement;
            state.mask = mask;
        }
        for hold in pool.holds_of(candidate) {
            if hold.slot == NONE {
                self.states[hold.name as usize].shared.push(candidate);
                self.trail.push(Undo::Shared(hold.name));
            } else {
                self.states[hold.name as usize].holder = candidate;
                self.trail.push(Undo::Held(hold.name));
            }
        }
        let needs = self.needs_of(candidate);
        for at in needs.clone() {
            let need = self.needs[at];
            let Some(name) = need.name else { continue };
            if need.constraint.is_some() || need.conflict {
                let key = self.need_key(at);
                self.states[name as usize].restrictions.push(Restriction {
                    need,
                    key,
                    source: candidate,
                });
                self.trail.push(Undo::Restricted(name));
            }
        }
        // Packages this one completes the `install_if` of, below its own needs.
        let mut triggered: Vec<CandidateId> = Vec::new();
        for hold in pool.holds_of(candidate) {
            let watchers = &pool.watchers[range(pool.slots[hold.name as usize].watchers)];
            for &watcher in watchers {
                let name = pool.name_of(watcher);
                let taken = self.states[name as usize].holder != NONE
                    || triggered.iter().any(|&other| pool.name_of(other) == name);
                if !taken && self.triggers_hold(watcher) {
                    // One it may not come from (its tags) is not brought in at all.
                    if self.tag_allows(watcher, self.trigger_mask(watcher)) {
                        triggered.push(watcher);
                    }
                }
            }
        }
        for watcher in triggered {
            self.compare_triggers(watcher);
            let mask = self.trigger_mask(watcher);
            self.push_requirement(Want::InstallIf(watcher), NONE, None, 0, mask, UNTAGGED);
        }
        // Its needs, the first one on top, so they are resolved in order.
        for at in needs.rev() {
            let need = self.needs[at];
            if need.conflict {
                continue;
            }
            self.push_requirement(
                Want::Need(need),
                self.need_key(at),
                Some(candidate),
                root as usize,
                mask,
                UNTAGGED,
            );
        }
    }

    /// Whether every `install_if` of `candidate` is held now, versions included.
    fn triggers_hold(&mut self, candidate: CandidateId) -> bool {
        self.compare_triggers(candidate);
        let pool = self.pool;
        let triggers = range(pool.candidates[candidate as usize].triggers);
        !triggers.is_empty()
            && triggers
                .clone()
                .zip(&pool.triggers[triggers])
                .all(|(at, need)| {
                    let Some(name) = need.name else {
                        return false;
                    };
                    let state = &self.states[name as usize];
                    if need.constraint.is_none() {
                        return state.holder != NONE || !state.shared.is_empty();
                    }
                    let key = self.trigger_key(at);
                    state.holder != NONE
                        && pool
                            .hold_on(state.holder, name)
                            .is_some_and(|slot| slot != NONE && self.allows(key, slot))
                })
    }

    /// The tags an `install_if` package may come from: those its triggers were
    /// chosen under.
    fn trigger_mask(&self, candidate: CandidateId) -> u32 {
        let pool = self.pool;
        let mut mask = UNTAGGED;
        for trigger in &pool.triggers[range(pool.candidates[candidate as usize].triggers)] {
            if let Some(name) = trigger.name {
                for holder in self.holders(name) {
                    mask |= self.states[pool.name_of(holder) as usize].mask;
                }
            }
        }
        mask
    }

    /// Whether a candidate may come from the tags of `mask`: it is in such a
    /// repository, or installed.
    fn tag_allows(&self, candidate: CandidateId, mask: u32) -> bool {
        let record = &self.pool.candidates[candidate as usize];
        record.tags & mask != 0 || self.states[record.name as usize].installed == candidate
    }

    /// What the requirement at `position` needs next; its versions must have
    /// been compared (see [`Search::compare`]). The candidates of an open one
    /// are appended to `options`.
    fn status(&self, position: u32, options: &mut Vec<CandidateId>) -> Status {
        let requirement = &self.queue[position as usize];
        let (mask, prefer) = (requirement.mask, requirement.prefer);
        let need = match requirement.want {
            Want::Need(need) => need,
            Want::InstallIf(watcher) => {
                let name = self.pool.name_of(watcher);
                if self.states[name as usize].holder != NONE {
                    return Status::Satisfied;
                }
                self.install_if_options(name, mask, options);
                if options.is_empty() {
                    // Its own triggers held when it was pushed; a version of the name
                    // always qualifies unless its tags are not allowed.
                    return Status::Broken(self.dead_end(Vec::new(), &|| {
                        SolveError::OnlyTagged {
                            dependency: Box::new(Dependency::any(self.pool.name_text(watcher))),
                            tags: self
                                .pool
                                .tag_names(self.pool.candidates[watcher as usize].tags),
                            via: Box::new(self.via(position)),
                        }
                    }));
                }
                return Status::Open;
            }
        };
        let dependency = need;
        let unprovided = || SolveError::NothingProvides {
            dependency: Box::new(dependency.dependency()),
            via: Box::new(self.via(position)),
        };
        let Some(name) = need.name else {
            return Status::Broken(self.dead_end(Vec::new(), &unprovided));
        };
        let state = &self.states[name as usize];
        let start = options.len();
        if dependency.constraint.is_none() {
            if state.holder != NONE || !state.shared.is_empty() {
                return Status::Satisfied;
            }
            self.provider_options(name, mask, prefer, options);
            if options.len() == start {
                return Status::Broken(self.dead_end(Vec::new(), &|| {
                    self.untagged_failure(position, name, &unprovided)
                }));
            }
            return Status::Open;
        }
        if state.holder != NONE {
            let holder = state.holder;
            let slot = self.pool.hold_on(holder, name).unwrap_or(NONE);
            if slot != NONE && self.allows(requirement.key, slot) {
                return Status::Satisfied;
            }
            let levels = self.blame(requirement.key, name, mask, holder);
            return Status::Broken(self.dead_end(levels, &|| SolveError::Conflict {
                wanted: Box::new(self.claim(position)),
                blocker: Box::new(self.blocker(requirement.key, name, holder)),
            }));
        }
        if let Some(&shared) = state.shared.first() {
            let mut levels = Vec::new();
            for &holder in &state.shared {
                add_level(&mut levels, self.level_of(holder));
            }
            return Status::Broken(self.dead_end(levels, &|| SolveError::Conflict {
                wanted: Box::new(self.claim(position)),
                blocker: Box::new(Blocker::Chosen(self.pool.id(shared), self.via_of(shared))),
            }));
        }
        self.versioned_options(requirement.key, name, mask, prefer, options);
        if options.len() == start {
            return Status::Broken(self.dead_end(Vec::new(), &|| {
                self.untagged_failure(position, name, &|| SolveError::NoMatchingVersion {
                    dependency: Box::new(dependency.dependency()),
                    available: self.available(name),
                    via: Box::new(self.via(position)),
                })
            }));
        }
        Status::Open
    }

    /// Why a requirement on `name` has no candidate: they are all in repositories
    /// with other tags, or `otherwise`.
    fn untagged_failure(
        &self,
        position: u32,
        name: NameId,
        otherwise: &dyn Fn() -> SolveError,
    ) -> SolveError {
        let pool = self.pool;
        let slot = &pool.slots[name as usize];
        let mut tags = 0;
        for candidate in range(slot.packages) {
            tags |= pool.candidates[candidate].tags;
        }
        for group in &pool.groups[range(slot.groups)] {
            for &member in &pool.providers[range(group.members)] {
                tags |= pool.candidates[member as usize].tags;
            }
        }
        let requirement = &self.queue[position as usize];
        let dependency = match requirement.want {
            Want::Need(need) => need,
            Want::InstallIf(_) => return otherwise(),
        };
        // Only tagged ones, which this requirement may not take.
        if tags != 0 && tags & UNTAGGED == 0 && tags & requirement.mask == 0 {
            let constrained = dependency.constraint.is_some();
            let any_allowed = !constrained
                || range(slot.exclusive)
                    .any(|slot| dependency.allows(pool.exclusive[slot].version));
            if any_allowed {
                return SolveError::OnlyTagged {
                    dependency: Box::new(dependency.dependency()),
                    tags: pool.tag_names(tags),
                    via: Box::new(self.via(position)),
                };
            }
        }
        otherwise()
    }

    /// The levels a versioned need on `name` that `holder` does not satisfy fails
    /// because of: the holder's own choice when another holder would do, else the
    /// choices whose restrictions rule out every holder the need allows.
    fn blame(&self, key: Key, name: NameId, mask: u32, holder: CandidateId) -> Vec<Level> {
        let mut levels = Vec::new();
        if self.possible(key, name, mask, &mut levels) {
            levels.clear();
            add_level(&mut levels, self.level_of(holder));
        }
        levels
    }

    /// Whether some holder of `name` that the dependency `key` allows fits every
    /// restriction recorded on the name; when none does, `levels` gets the choices
    /// of the restrictions that rule them out.
    fn possible(&self, key: Key, name: NameId, mask: u32, levels: &mut Vec<Level>) -> bool {
        let restrictions = &self.states[name as usize].restrictions;
        for slot in self.allowed_slots(key, name) {
            let candidate = self.pool.exclusive[slot as usize].candidate;
            if !self.tag_allows(candidate, mask) {
                continue;
            }
            match restrictions
                .iter()
                .find(|restriction| self.forbids(restriction, candidate, slot))
            {
                None => return true,
                Some(restriction) if restriction.source != NONE => {
                    add_level(levels, self.level_of(restriction.source));
                }
                Some(_) => {}
            }
        }
        false
    }

    /// Appends the holders with a version that the dependency `key` allows and the
    /// tags of `mask` admit, in preference order.
    fn versioned_options(
        &self,
        key: Key,
        name: NameId,
        mask: u32,
        prefer: u32,
        out: &mut Vec<CandidateId>,
    ) {
        let pool = self.pool;
        // Preferred tags first, then the rest; the installed one first in each.
        for preferred in [true, false] {
            let from = out.len();
            for slot in self.allowed_slots(key, name) {
                let candidate = pool.exclusive[slot as usize].candidate;
                let tags = pool.candidates[candidate as usize].tags;
                if (tags & prefer != 0) == preferred && self.tag_allows(candidate, mask) {
                    if self.kept(candidate) {
                        out.insert(from, candidate);
                    } else {
                        out.push(candidate);
                    }
                }
            }
        }
    }

    /// Whether `candidate` is the installed version that [`Mode::Keep`] tries first.
    fn kept(&self, candidate: CandidateId) -> bool {
        self.mode == Mode::Keep
            && self.states[self.pool.name_of(candidate) as usize].installed == candidate
    }

    /// Appends one package name's candidates (`members`), preferred tags first, the
    /// installed one first in [`Mode::Keep`], then newest first.
    fn push_group(
        &self,
        members: &mut dyn Iterator<Item = CandidateId>,
        mask: u32,
        prefer: u32,
        out: &mut Vec<CandidateId>,
    ) {
        let start = out.len();
        for candidate in members {
            if !self.tag_allows(candidate, mask) {
                continue;
            }
            out.push(candidate);
        }
        // A stable partition: preferred tags first, the kept one first of all. Most
        // groups need none, and only those that do pay for a copy.
        let rank = |candidate: CandidateId| {
            let tags = self.pool.candidates[candidate as usize].tags;
            match (self.kept(candidate), tags & prefer != 0) {
                (true, true) => 0,
                (false, true) => 1,
                (true, false) => 2,
                (false, false) => 3,
            }
        };
        let group = &out[start..];
        let Some(&first) = group.first() else { return };
        let first_rank = rank(first);
        if group.iter().all(|&candidate| rank(candidate) == first_rank) {
            return;
        }
        let members = group.to_vec();
        out.truncate(start);
        for wanted in 0..4 {
            out.extend(
                members
                    .iter()
                    .filter(|&&candidate| rank(candidate) == wanted),
            );
        }
    }

    /// Appends the candidates for a dependency without a constraint, in
    /// preference order (module documentation).
    fn provider_options(&self, name: NameId, mask: u32, prefer: u32, out: &mut Vec<CandidateId>) {
        let pool = self.pool;
        let slot = &pool.slots[name as usize];
        let own = || pool.versions(name).map(to_u32);
        let groups = &pool.groups[range(slot.groups)];
        // Most names have no providers: then the name's own versions are all.
        if groups.is_empty() {
            self.push_group(&mut own(), mask, prefer, out);
            return;
        }
        let has_own = !pool.versions(name).is_empty();
        // Names requested by name first, then installed ones, then the rest, each
        // pass in the static order: the name itself, then the providers' groups.
        for preferred in [2, 1, 0] {
            if has_own && self.states[name as usize].preferred == preferred {
                self.push_group(&mut own(), mask, prefer, out);
            }
            for group in groups {
                if self.states[group.name as usize].preferred == preferred {
                    let members = &pool.providers[range(group.members)];
                    self.push_group(&mut members.iter().copied(), mask, prefer, out);
                }
            }
        }
    }

    /// Appends the versions of `name` whose `install_if` holds now.
    fn install_if_options(&self, name: NameId, mask: u32, out: &mut Vec<CandidateId>) {
        let pool = self.pool;
        let start = out.len();
        for candidate in pool.versions(name).map(to_u32) {
            let triggers = range(pool.candidates[candidate as usize].triggers);
            if triggers.is_empty() || !self.tag_allows(candidate, mask) {
                continue;
            }
            // Versions whose triggers were not compared yet are compared when they
            // are the watcher of a requirement; here only compared ones can hold.
            let compared = triggers.clone().all(|at| {
                pool.triggers[at].constraint.is_none()
                    || self.allowed[self.trigger_key(at) as usize].start != 0
            });
            if compared && self.triggers_hold_now(candidate) {
                if self.kept(candidate) {
                    out.insert(start, candidate);
                } else {
                    out.push(candidate);
                }
            }
        }
    }

    /// [`Search::triggers_hold`] without comparing: the triggers were compared.
    fn triggers_hold_now(&self, candidate: CandidateId) -> bool {
        let pool = self.pool;
        let triggers = range(pool.candidates[candidate as usize].triggers);
        triggers
            .clone()
            .zip(&pool.triggers[triggers])
            .all(|(at, need)| {
                let Some(name) = need.name else {
                    return false;
                };
                let state = &self.states[name as usize];
                if need.constraint.is_none() {
                    return state.holder != NONE || !state.shared.is_empty();
                }
                let key = self.trigger_key(at);
                state.holder != NONE
                    && pool
                        .hold_on(state.holder, name)
                        .is_some_and(|slot| slot != NONE && self.allows(key, slot))
            })
    }

    /// Checks a candidate for a requirement before choosing it; the versions
    /// of its needs must have been compared (see [`Search::compare_needs`]).
    fn check(&self, candidate: CandidateId, requirement: u32) -> Result<(), DeadEnd> {
        let pool = self.pool;
        let record = &pool.candidates[candidate as usize];
        let mask = self.queue[requirement as usize].mask;
        // The names it would hold must be free for it.
        for hold in pool.holds_of(candidate) {
            let state = &self.states[hold.name as usize];
            let own = hold.name == record.name;
            let holder = if state.holder != NONE {
                Some(state.holder)
            } else if hold.slot != NONE {
                state.shared.first().copied()
            } else {
                None
            };
            if let Some(holder) = holder {
                let mut levels = Vec::new();
                for other in self.holders(hold.name) {
                    add_level(&mut levels, self.level_of(other));
                }
                return Err(self.dead_end(levels, &|| {
                    if own && pool.name_of(holder) == record.name {
                        // Another version of this package is in already, and it
                        // does not provide what is needed here.
                        SolveError::Conflict {
                            wanted: Box::new(self.claim(requirement)),
                            blocker: Box::new(Blocker::Chosen(
                                pool.id(holder),
                                self.via_of(holder),
                            )),
                        }
                    } else {
                        SolveError::SameName {
                            name: String::from(pool.names.names[hold.name as usize]),
                            package: Box::new(self.wanted_for(candidate, requirement)),
                            other: Box::new(self.wanted(holder)),
                        }
                    }
                }));
            }
            if let Some(restriction) = state
                .restrictions
                .iter()
                .find(|restriction| self.forbids(restriction, candidate, hold.slot))
            {
                let mut levels = Vec::new();
                if restriction.source != NONE {
                    add_level(&mut levels, self.level_of(restriction.source));
                }
                return Err(self.dead_end(levels, &|| {
                    if restriction.need.conflict {
                        self.conflicts_error(
                            restriction,
                            self.wanted_for(candidate, requirement),
                            self.claim(requirement),
                        )
                    } else {
                        SolveError::Conflict {
                            wanted: Box::new(self.claim(requirement)),
                            blocker: Box::new(Blocker::Claim(self.restriction_claim(restriction))),
                        }
                    }
                }));
            }
        }
        // Look one step ahead: its conflicts must not hit a chosen package, and each
        // versioned dependency must still be possible.
        for at in self.needs_of(candidate) {
            let need = &self.needs[at];
            let key = self.need_key(at);
            let dependency = *need;
            let via = || {
                let mut via = self.via(requirement);
                via.packages.insert(0, record.chosen.id());
                via
            };
            let Some(name) = need.name else {
                if dependency.conflict {
                    continue;
                }
                return Err(self.dead_end(Vec::new(), &|| SolveError::NothingProvides {
                    dependency: Box::new(dependency.dependency()),
                    via: Box::new(via()),
                }));
            };
            if dependency.conflict {
                for holder in self.holders(name) {
                    let slot = pool.hold_on(holder, name).unwrap_or(NONE);
                    let hit = holder != candidate
                        && (dependency.constraint.is_none()
                            || (slot != NONE && self.allows(key, slot)));
                    if hit {
                        let mut levels = Vec::new();
                        add_level(&mut levels, self.level_of(holder));
                        return Err(self.dead_end(levels, &|| SolveError::Conflicts {
                            package: Box::new(self.wanted_for(candidate, requirement)),
                            other: Box::new(self.wanted(holder)),
                        }));
                    }
                }
                continue;
            }
            if dependency.constraint.is_none() {
                continue;
            }
            let wanted = || Claim {
                needer: Needer::Package(record.chosen.id(), self.via(requirement)),
                dependency: dependency.dependency(),
            };
            // It may satisfy the need itself.
            if let Some(slot) = pool.hold_on(candidate, name) {
                if slot != NONE && self.allows(key, slot) {
                    continue;
                }
                return Err(
                    self.dead_end(Vec::new(), &|| SolveError::NoMatchingVersion {
                        dependency: Box::new(dependency.dependency()),
                        available: self.available(name),
                        via: Box::new(via()),
                    }),
                );
            }
            let state = &self.states[name as usize];
            if state.holder != NONE {
                let holder = state.holder;
                let slot = pool.hold_on(holder, name).unwrap_or(NONE);
                if slot != NONE && self.allows(key, slot) {
                    continue;
                }
                let levels = self.blame(key, name, mask, holder);
                return Err(self.dead_end(levels, &|| SolveError::Conflict {
                    wanted: Box::new(wanted()),
                    blocker: Box::new(self.blocker(key, name, holder)),
                }));
            }
            if let Some(&shared) = state.shared.first() {
                let mut levels = Vec::new();
                for &holder in &state.shared {
                    add_level(&mut levels, self.level_of(holder));
                }
                return Err(self.dead_end(levels, &|| SolveError::Conflict {
                    wanted: Box::new(wanted()),
                    blocker: Box::new(Blocker::Chosen(pool.id(shared), self.via_of(shared))),
                }));
            }
            let mut levels = Vec::new();
            if self.possible(key, name, mask, &mut levels) {
                continue;
            }
            let first_allowed = self
                .allowed_slots(key, name)
                .find(|&slot| self.tag_allows(pool.exclusive[slot as usize].candidate, mask));
            let Some(first_allowed) = first_allowed else {
                return Err(
                    self.dead_end(Vec::new(), &|| SolveError::NoMatchingVersion {
                        dependency: Box::new(dependency.dependency()),
                        available: self.available(name),
                        via: Box::new(via()),
                    }),
                );
            };
            let blocked = pool.exclusive[first_allowed as usize].candidate;
            return Err(self.dead_end(levels, &|| {
                let restriction = self.states[name as usize]
                    .restrictions
                    .iter()
                    .find(|restriction| self.forbids(restriction, blocked, first_allowed));
                match restriction {
                    Some(restriction) if restriction.need.conflict => self.conflicts_error(
                        restriction,
                        Wanted {
                            id: pool.id(blocked),
                            via: via(),
                        },
                        wanted(),
                    ),
                    Some(restriction) => SolveError::Conflict {
                        wanted: Box::new(wanted()),
                        blocker: Box::new(Blocker::Claim(self.restriction_claim(restriction))),
                    },
                    None => SolveError::NoMatchingVersion {
                        dependency: Box::new(dependency.dependency()),
                        available: self.available(name),
                        via: Box::new(via()),
                    },
                }
            }));
        }
        Ok(())
    }

    /// The error for a conflict recorded by `restriction` that rules out `other`,
    /// wanted for `claim`.
    fn conflicts_error(
        &self,
        restriction: &Restriction<'_>,
        other: Wanted,
        claim: Claim,
    ) -> SolveError {
        if restriction.source == NONE {
            // A request's conflict: say it like a request's constraint.
            return SolveError::Conflict {
                wanted: Box::new(claim),
                blocker: Box::new(Blocker::Claim(Claim {
                    needer: Needer::Request,
                    dependency: restriction.need.dependency(),
                })),
            };
        }
        SolveError::Conflicts {
            package: Box::new(self.wanted(restriction.source)),
            other: Box::new(other),
        }
    }

    /// Explains why `holder` is in the way of the dependency `key` on `name`: the
    /// recorded constraint that rules out the newest holder the dependency allows,
    /// or else the choice itself.
    fn blocker(&self, key: Key, name: NameId, holder: CandidateId) -> Blocker {
        let pool = self.pool;
        if let Some(slot) = self.allowed_slots(key, name).next() {
            let candidate = pool.exclusive[slot as usize].candidate;
            if let Some(restriction) =
                self.states[name as usize]
                    .restrictions
                    .iter()
                    .find(|restriction| {
                        !restriction.need.conflict && self.forbids(restriction, candidate, slot)
                    })
            {
                return Blocker::Claim(self.restriction_claim(restriction));
            }
        }
        Blocker::Chosen(pool.id(holder), self.via_of(holder))
    }

    fn restriction_claim(&self, restriction: &Restriction<'_>) -> Claim {
        let needer = match restriction.source {
            NONE => Needer::Request,
            source => Needer::Package(self.pool.id(source), self.via_of(source)),
        };
        Claim {
            needer,
            dependency: restriction.need.dependency(),
        }
    }

    /// Who needs the requirement at `position`, and what.
    fn claim(&self, position: u32) -> Claim {
        let requirement = &self.queue[position as usize];
        let (needer, dependency) = match requirement.want {
            Want::Need(need) => (
                match requirement.parent {
                    None => Needer::Request,
                    Some(parent) => Needer::Package(self.pool.id(parent), self.via_of(parent)),
                },
                need.dependency(),
            ),
            Want::InstallIf(watcher) => (
                Needer::InstallIf(self.trigger_ids(watcher)),
                Dependency::any(self.pool.name_text(watcher)),
            ),
        };
        Claim { needer, dependency }
    }

    /// A chosen package and why it is in.
    fn wanted(&self, candidate: CandidateId) -> Wanted {
        Wanted {
            id: self.pool.id(candidate),
            via: self.via_of(candidate),
        }
    }

    /// A candidate for the requirement at `position`, and why it is wanted.
    fn wanted_for(&self, candidate: CandidateId, position: u32) -> Wanted {
        Wanted {
            id: self.pool.id(candidate),
            via: self.via(position),
        }
    }

    /// The chosen packages an `install_if` waits for.
    fn trigger_ids(&self, candidate: CandidateId) -> Vec<PackageId> {
        let pool = self.pool;
        let mut ids = Vec::new();
        for trigger in &pool.triggers[range(pool.candidates[candidate as usize].triggers)] {
            if let Some(holder) = trigger.name.and_then(|name| self.holders(name).next()) {
                ids.push(pool.id(holder));
            }
        }
        ids
    }

    /// Why a chosen candidate is in.
    fn via_of(&self, candidate: CandidateId) -> Via {
        self.via(self.states[self.pool.name_of(candidate) as usize].chosen_for)
    }

    /// The chain from the requirement at `position` up to what started it.
    fn via(&self, position: u32) -> Via {
        let mut packages = Vec::new();
        let mut position = position;
        // Each parent was chosen for an earlier requirement, so the walk ends;
        // the bound only guards against a broken invariant.
        for _ in 0..self.queue.len() {
            let Some(requirement) = self.queue.get(position as usize) else {
                break;
            };
            let Some(parent) = requirement.parent else {
                break;
            };
            packages.push(self.pool.id(parent));
            position = self.states[self.pool.name_of(parent) as usize].chosen_for;
        }
        let root = match self.queue.get(position as usize) {
            Some(Requirement {
                want: Want::InstallIf(watcher),
                ..
            }) => Root::InstallIf(self.trigger_ids(*watcher)),
            requirement => Root::Request(
                requirement
                    .and_then(|requirement| self.requests.get(requirement.root as usize))
                    .cloned()
                    .unwrap_or_else(|| Dependency::any("")),
            ),
        };
        Via { packages, root }
    }

    /// The versions `name` is held with in the pool, newest first.
    fn available(&self, name: NameId) -> Vec<Version> {
        let pool = self.pool;
        let mut versions: Vec<Version> = range(pool.slots[name as usize].exclusive)
            .map(|slot| Version::from_checked(pool.exclusive[slot].version))
            .collect();
        versions.dedup();
        versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::parse;
    use alloc::format;
    use alloc::string::ToString;

    /// Builds an index from lines `NAME VERSION [deps=..] [provides=..]`; the
    /// hash's first byte is `fill`, to tell equal ids from different indexes apart.
    fn index(lines: &[&str], fill: u8) -> Index {
        let mut text = String::from("amber-index 1\narch x86_64\nserial 1\nexpires 2\n");
        let mut sorted: Vec<(PackageId, &str)> = lines
            .iter()
            .map(|line| {
                let mut fields = line.splitn(3, ' ');
                let name = fields.next().unwrap_or("");
                let version = fields.next().unwrap_or("");
                let id = PackageId::parse(&format!("{name}-{version}")).unwrap();
                (id, fields.next().unwrap_or(""))
            })
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, rest) in sorted {
            let hash = format!("{fill:02x}{}", "0".repeat(62));
            let rest = if rest.is_empty() {
                String::new()
            } else {
                format!(" {rest}")
            };
            text.push_str(&format!(
                "pkg {} {} size=1 sha256={hash}{rest}\n",
                id.name, id.version
            ));
        }
        parse(&text).unwrap()
    }

    fn requests(text: &str) -> Vec<Dependency> {
        text.split_whitespace()
            .map(|dependency| Dependency::parse(dependency).unwrap())
            .collect()
    }

    fn ids(text: &str) -> Vec<PackageId> {
        text.split_whitespace()
            .map(|id| PackageId::parse(id).unwrap())
            .collect()
    }

    /// Solves and renders the result as space-separated ids, or the error text.
    fn render(indexes: &[&Index], installed: &str, wanted: &str, mode: Mode) -> String {
        match solve(indexes, &ids(installed), &requests(wanted), mode) {
            Ok(entries) => entries
                .iter()
                .map(|entry| entry.id().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            Err(error) => format!("error: {error}"),
        }
    }

    struct Case {
        what: &'static str,
        repo: &'static [&'static str],
        installed: &'static str,
        requests: &'static str,
        mode: Mode,
        expect: &'static str,
    }

    const fn case(
        what: &'static str,
        repo: &'static [&'static str],
        installed: &'static str,
        requests: &'static str,
        mode: Mode,
        expect: &'static str,
    ) -> Case {
        Case {
            what,
            repo,
            installed,
            requests,
            mode,
            expect,
        }
    }

    use Mode::{Keep, Upgrade};

    const CASES: &[Case] = &[
        case(
            "simple chain",
            &["a 1 deps=b", "b 1 deps=c", "c 1", "d 1"],
            "",
            "a",
            Keep,
            "a-1 b-1 c-1",
        ),
        case("newest wins", &["a 1", "a 2", "a 1.10", "a 1.9"], "", "a", Keep, "a-2"),
        case(
            "constraint picks an older version",
            &["a 1", "a 2", "a 3"],
            "",
            "a<3",
            Keep,
            "a-2",
        ),
        case(
            "diamond meets in the middle",
            &["a 1 deps=b,c", "b 1 deps=d>=1", "c 1 deps=d<3", "d 1", "d 2", "d 3"],
            "",
            "a",
            Keep,
            "a-1 b-1 c-1 d-2",
        ),
        case(
            "later constraint narrows an unversioned dependency",
            &["a 1 deps=c", "b 1 deps=c<2", "c 1", "c 2", "c 3"],
            "",
            "a b",
            Keep,
            "a-1 b-1 c-1",
        ),
        case(
            "fuzzy constraint",
            &["a 1 deps=b~1.2", "b 1.2.9", "b 1.20", "b 1.3"],
            "",
            "a",
            Keep,
            "a-1 b-1.2.9",
        ),
        case(
            "provides satisfy an unversioned dependency",
            &["a 1 deps=sh", "busybox 1.36 provides=sh,vi"],
            "",
            "a",
            Keep,
            "a-1 busybox-1.36",
        ),
        case(
            "several providers: alphabetical",
            &["a 1 deps=sh", "busybox 1 provides=sh", "bash 5 provides=sh"],
            "",
            "a",
            Keep,
            "a-1 bash-5",
        ),
        case(
            "several providers: the requested one",
            &["a 1 deps=sh", "busybox 1 provides=sh", "bash 5 provides=sh"],
            "",
            "a busybox",
            Keep,
            "a-1 busybox-1",
        ),
        case(
            "several providers: the requested one even when asked later",
            &["a 1 deps=sh", "zsh 1 provides=sh", "bash 5 provides=sh"],
            "",
            "a zsh",
            Keep,
            "a-1 zsh-1",
        ),
        case(
            "several providers: the installed one",
            &["a 1 deps=sh", "busybox 1 provides=sh", "bash 5 provides=sh"],
            "busybox-1",
            "a",
            Keep,
            "a-1 busybox-1",
        ),
        case(
            "several providers: the name itself",
            &["a 1 deps=sh", "busybox 1 provides=sh", "sh 1"],
            "",
            "a",
            Keep,
            "a-1 sh-1",
        ),
        case(
            "provider that is already in",
            &["a 1 deps=busybox,sh", "busybox 1 provides=sh", "sh 1"],
            "",
            "a",
            Keep,
            "a-1 busybox-1",
        ),
        case(
            "versioned dependency ignores provides",
            &["a 1 deps=sh>=1", "busybox 1 provides=sh", "sh 1"],
            "",
            "a",
            Keep,
            "a-1 sh-1",
        ),
        case(
            "versioned dependency on a provided name only",
            &["a 1 deps=sh>=1", "busybox 1 provides=sh"],
            "",
            "a",
            Keep,
            "error: no version of sh satisfies sh>=1 (available: none; needed by a-1 <- requested a)",
        ),
        case(
            "cycle",
            &["a 1 deps=b", "b 1 deps=c", "c 1 deps=a"],
            "",
            "a",
            Keep,
            "a-1 b-1 c-1",
        ),
        case("self dependency", &["a 1 deps=a"], "", "a", Keep, "a-1"),
        case(
            "installed version kept",
            &["a 1 deps=b", "b 1", "b 2"],
            "b-1",
            "a",
            Keep,
            "a-1 b-1",
        ),
        case(
            "installed version upgraded in upgrade mode",
            &["a 1 deps=b", "b 1", "b 2"],
            "b-1",
            "a",
            Upgrade,
            "a-1 b-2",
        ),
        case(
            "installed version replaced when no longer allowed",
            &["a 1 deps=b>=2", "b 1", "b 2", "b 3"],
            "b-1",
            "a",
            Keep,
            "a-1 b-3",
        ),
        case(
            "installed version that left the repository",
            &["a 2"],
            "a-1",
            "a",
            Keep,
            "a-2",
        ),
        case(
            "installed but not requested stays out",
            &["a 1", "b 1"],
            "b-1",
            "a",
            Keep,
            "a-1",
        ),
        case(
            "backtracks over the newest version (one step ahead)",
            &["a 1 deps=c", "a 2 deps=c>=2", "c 1", "c 2"],
            "",
            "a c<2",
            Keep,
            "a-1 c-1",
        ),
        case(
            "backtracks over the newest version (two steps deep)",
            &["a 1", "a 2 deps=b", "b 1 deps=c>=2", "c 1", "c 2"],
            "",
            "a c<2",
            Keep,
            "a-1 c-1",
        ),
        case(
            "backtracks over the installed version",
            &["b 1 deps=c>=3", "c 2", "c 3"],
            "c-2",
            "c b",
            Keep,
            "b-1 c-3",
        ),
        case(
            "backtracks over a provider",
            &["a 1 deps=sh,libc>=2", "bash 5 deps=libc<2 provides=sh", "busybox 1 provides=sh", "libc 1", "libc 2"],
            "",
            "a",
            Keep,
            "a-1 busybox-1 libc-2",
        ),
        case(
            "nothing provides a request",
            &["a 1"],
            "",
            "nosuch",
            Keep,
            "error: nothing provides nosuch (requested)",
        ),
        case(
            "nothing provides a dependency",
            &["bar 1.0-r0 deps=libfoo"],
            "",
            "bar",
            Keep,
            "error: nothing provides libfoo (needed by bar-1.0-r0 <- requested bar)",
        ),
        case(
            "nothing provides a deep dependency",
            &["app 1 deps=bar", "bar 1.0-r0 deps=libfoo>=1"],
            "",
            "app",
            Keep,
            "error: nothing provides libfoo>=1 (needed by bar-1.0-r0 <- app-1 <- requested app)",
        ),
        case(
            "no version matches a request",
            &["musl 1.2.3-r0", "musl 1.2.4-r0"],
            "",
            "musl>=9",
            Keep,
            "error: no version of musl satisfies musl>=9 (available: 1.2.4-r0, 1.2.3-r0; requested)",
        ),
        case(
            "no version matches a dependency",
            &["busybox 1.36.1-r2 deps=musl>=9", "musl 1.2.4-r0"],
            "",
            "busybox",
            Keep,
            "error: no version of musl satisfies musl>=9 (available: 1.2.4-r0; needed by busybox-1.36.1-r2 <- requested busybox)",
        ),
        case(
            "dependency conflicts with a request",
            &["busybox 1.36.1-r2 deps=musl>=1.2.4", "musl 1.2.3-r0", "musl 1.2.4-r0"],
            "",
            "busybox musl=1.2.3-r0",
            Keep,
            "error: busybox-1.36.1-r2 needs musl>=1.2.4, but musl=1.2.3-r0 was requested",
        ),
        case(
            "request conflicts with a request",
            &["musl 1.2.3-r0", "musl 1.2.4-r0"],
            "",
            "musl=1.2.3-r0 musl>=1.2.4",
            Keep,
            "error: musl=1.2.3-r0 was requested, but musl>=1.2.4 was requested",
        ),
        case(
            "two packages need incompatible versions",
            &["a 1 deps=c>=2", "b 1 deps=c<2", "c 1", "c 2"],
            "",
            "a b",
            Keep,
            "error: b-1 needs c<2, but a-1 needs c>=2",
        ),
        case(
            "deep conflict names the chain",
            &["app 1 deps=libx", "libx 1 deps=musl>=2", "musl 1", "musl 2"],
            "",
            "app musl<2",
            Keep,
            "error: libx-1 needs musl>=2, but musl<2 was requested (libx-1 is needed by app-1 <- requested app)",
        ),
        case(
            "conflict with a version chosen for an unversioned need",
            &["a 1 deps=c", "b 1 deps=c>=3", "c 2", "c 3"],
            "c-2",
            "a b",
            Keep,
            "a-1 b-1 c-3",
        ),
        case(
            "exhausted alternatives report the most preferred failure",
            &["a 1 deps=y>=5", "a 2 deps=x", "y 4"],
            "",
            "a",
            Keep,
            "error: nothing provides x (needed by a-2 <- requested a)",
        ),
        case("empty request", &["a 1"], "", "", Keep, ""),
        // Conflicts.
        case(
            "a conflict keeps a requested package out",
            &["a 1 deps=!b", "b 1"],
            "",
            "a b",
            Keep,
            "error: a-1 conflicts with b-1, which was requested",
        ),
        case(
            "a conflict with what another package needs (the issue's example)",
            &["dnsmasq 2.90-r0", "dnsmasq-full 2.90-r0 deps=!dnsmasq", "luci-app-x 1.0-r0 deps=dnsmasq"],
            "",
            "dnsmasq-full luci-app-x",
            Keep,
            "error: dnsmasq-full-2.90-r0 conflicts with dnsmasq-2.90-r0, which luci-app-x-1.0-r0 needs",
        ),
        case(
            "the same conflict found from the other side",
            &["dnsmasq 2.90-r0", "dnsmasq-full 2.90-r0 deps=!dnsmasq", "luci-app-x 1.0-r0 deps=dnsmasq"],
            "",
            "luci-app-x dnsmasq-full",
            Keep,
            "error: dnsmasq-full-2.90-r0 conflicts with dnsmasq-2.90-r0, which luci-app-x-1.0-r0 needs",
        ),
        case(
            "a conflict deep in a chain names both chains",
            &["router 1 deps=dnsmasq-full", "dnsmasq 2.90-r0", "dnsmasq-full 2.90-r0 deps=!dnsmasq", "luci 1 deps=luci-app-x", "luci-app-x 1.0-r0 deps=dnsmasq"],
            "",
            "router luci",
            Keep,
            "error: dnsmasq-full-2.90-r0 conflicts with dnsmasq-2.90-r0, which luci-app-x-1.0-r0 needs (luci-app-x-1.0-r0 is needed by luci-1 <- requested luci); dnsmasq-full-2.90-r0 is needed by router-1 <- requested router",
        ),
        case(
            "a conflict that a provider replacing the name resolves",
            &["dnsmasq 2.90-r0", "dnsmasq-full 2.90-r0 deps=!dnsmasq provides=dnsmasq", "luci-app-x 1.0-r0 deps=dnsmasq"],
            "",
            "dnsmasq-full luci-app-x",
            Keep,
            "dnsmasq-full-2.90-r0 luci-app-x-1.0-r0",
        ),
        case(
            "a conflict resolved by backtracking to an older version",
            &["a 1 deps=x", "x 1", "x 2 deps=!b", "b 1"],
            "",
            "a b",
            Keep,
            "a-1 b-1 x-1",
        ),
        case(
            "a versioned conflict passes other versions",
            &["a 1 deps=!foo<2", "foo 1", "foo 2"],
            "foo-1",
            "a foo",
            Keep,
            "a-1 foo-2",
        ),
        case(
            "a versioned conflict passes plain provides",
            &["a 1 deps=!sh<2", "busybox 1 provides=sh"],
            "",
            "a busybox",
            Keep,
            "a-1 busybox-1",
        ),
        case(
            "an unversioned conflict hits plain provides",
            &["a 1 deps=!sh", "busybox 1 provides=sh"],
            "",
            "a busybox",
            Keep,
            "error: a-1 conflicts with busybox-1, which was requested",
        ),
        case(
            "a conflict in the world",
            &["a 1 deps=b", "b 1"],
            "",
            "!b a",
            Keep,
            "error: a-1 needs b, but !b was requested",
        ),
        case(
            "a conflict in the world keeps a provider out, another one serves",
            &["a 1 deps=sh", "bash 5 provides=sh", "busybox 1 provides=sh"],
            "",
            "!bash a",
            Keep,
            "a-1 busybox-1",
        ),
        // Versioned provides.
        case(
            "a versioned provide satisfies a versioned dependency (soname)",
            &["app 1 deps=so:libz.so.1>=1.2", "zlib 1.3.1-r0 provides=so:libz.so.1=1.3.1"],
            "",
            "app",
            Keep,
            "app-1 zlib-1.3.1-r0",
        ),
        case(
            "a versioned provide that is too old",
            &["app 1 deps=so:libz.so.1>=1.3", "zlib 1.2.13-r0 provides=so:libz.so.1=1.2.13"],
            "",
            "app",
            Keep,
            "error: no version of so:libz.so.1 satisfies so:libz.so.1>=1.3 (available: 1.2.13; needed by app-1 <- requested app)",
        ),
        case(
            "the newest provided version wins",
            &["app 1 deps=so:libssl.so.3", "libressl 3.8.2-r0 provides=so:libssl.so.3=3.8.2", "openssl 3.0.8-r0 provides=so:libssl.so.3=3.0.8"],
            "",
            "app",
            Keep,
            "app-1 libressl-3.8.2-r0",
        ),
        case(
            "a constraint on the provided version chooses the provider",
            &["app 1 deps=so:libssl.so.3<3.5", "libressl 3.8.2-r0 provides=so:libssl.so.3=3.8.2", "openssl 3.0.8-r0 provides=so:libssl.so.3=3.0.8"],
            "",
            "app",
            Keep,
            "app-1 openssl-3.0.8-r0",
        ),
        case(
            "a versioned name has one provider only",
            &["a 1 deps=b,c", "b 1 provides=so:x.so.1=1", "c 1 provides=so:x.so.1=2"],
            "",
            "a",
            Keep,
            "error: c-1 and b-1 (needed by a-1 <- requested a) both provide so:x.so.1, which only one package may provide with a version; c-1 is needed by a-1 <- requested a",
        ),
        case(
            "a plain provider serves a request for the name it provides",
            &["vi 1", "busybox 1 provides=vi"],
            "",
            "vi busybox",
            Keep,
            "busybox-1",
        ),
        case(
            "a package and a plain provider of its name exclude each other (as in apk)",
            &["vi 1", "busybox 1 provides=vi"],
            "",
            "vi>=1 busybox",
            Keep,
            "error: busybox-1 and vi-1 (requested) both provide vi, which only one package may provide with a version",
        ),
        case(
            "a versioned provide replaces the package of that name",
            &["app 1 deps=dnsmasq>=2", "dnsmasq 2.89-r0", "dnsmasq-full 2.90-r0 provides=dnsmasq=2.90-r0"],
            "",
            "app dnsmasq-full",
            Keep,
            "app-1 dnsmasq-full-2.90-r0",
        ),
        // Provider priorities.
        case(
            "the provider with the higher priority",
            &["a 1 deps=wpad", "wpad-basic 1 provides=wpad", "wpad-openssl 1 provides=wpad provider_priority=10"],
            "",
            "a",
            Keep,
            "a-1 wpad-openssl-1",
        ),
        case(
            "a provider requested by name beats the priority",
            &["a 1 deps=wpad", "wpad-basic 1 provides=wpad", "wpad-openssl 1 provides=wpad provider_priority=10"],
            "",
            "a wpad-basic",
            Keep,
            "a-1 wpad-basic-1",
        ),
        case(
            "an installed provider beats the priority",
            &["a 1 deps=wpad", "wpad-basic 1 provides=wpad", "wpad-openssl 1 provides=wpad provider_priority=10"],
            "wpad-basic-1",
            "a",
            Keep,
            "a-1 wpad-basic-1",
        ),
        case(
            "a provider requested by name replaces the installed one",
            &["a 1 deps=wpad", "wpad-basic 1 provides=wpad", "wpad-openssl 1 provides=wpad provider_priority=10"],
            "a-1 wpad-openssl-1",
            "a wpad-basic",
            Keep,
            "a-1 wpad-basic-1",
        ),
        case(
            "the name itself beats the priority",
            &["a 1 deps=sh", "sh 1", "busybox 1 provides=sh provider_priority=100"],
            "",
            "a",
            Keep,
            "a-1 sh-1",
        ),
        case(
            "the priority before the provided version",
            &["a 1 deps=so:x.so.1", "p 1 provides=so:x.so.1=2", "q 1 provides=so:x.so.1=1 provider_priority=5"],
            "",
            "a",
            Keep,
            "a-1 q-1",
        ),
        case(
            "the priority falls back when its provider cannot be installed",
            &["a 1 deps=wpad,!wpad-openssl", "wpad-basic 1 provides=wpad", "wpad-openssl 1 provides=wpad provider_priority=10"],
            "",
            "a",
            Keep,
            "a-1 wpad-basic-1",
        ),
        // install_if.
        case(
            "install_if brings a package once all its names are in",
            &["a 1", "b 1", "ab 1 install_if=a,b"],
            "",
            "a b",
            Keep,
            "a-1 ab-1 b-1",
        ),
        case(
            "install_if waits for all its names",
            &["a 1", "b 1", "ab 1 install_if=a,b"],
            "",
            "a",
            Keep,
            "a-1",
        ),
        case(
            "install_if with a version",
            &["a 1", "a 2", "x 1 install_if=a>=2"],
            "",
            "a=1",
            Keep,
            "a-1",
        ),
        case(
            "install_if with a version that holds",
            &["a 1", "a 2", "x 1 install_if=a>=2"],
            "",
            "a",
            Keep,
            "a-2 x-1",
        ),
        case(
            "install_if through a provider",
            &["busybox 1 provides=sh", "sh-doc 1 install_if=sh"],
            "",
            "busybox",
            Keep,
            "busybox-1 sh-doc-1",
        ),
        case(
            "install_if brings its own dependencies and further install_if",
            &["a 1", "b 1", "ab 1 deps=c install_if=a,b", "c 1", "abc 1 install_if=ab,c"],
            "",
            "a b",
            Keep,
            "a-1 ab-1 abc-1 b-1 c-1",
        ),
        case(
            "install_if of a package that cannot be installed explains itself",
            &["a 1", "b 1", "ab 1 deps=gone install_if=a,b"],
            "",
            "a b",
            Keep,
            "error: nothing provides gone (needed by ab-1, installed with a-1, b-1 (install_if))",
        ),
    ];

    #[test]
    fn scenarios() {
        for case in CASES {
            let repo = index(case.repo, 0);
            let got = render(&[&repo], case.installed, case.requests, case.mode);
            assert_eq!(got, case.expect, "case: {}", case.what);
        }
    }

    #[test]
    fn install_if_transitions() {
        // Each step solves the world with the previous result installed, as pkg does.
        let repo = index(
            &["a 1", "b 1", "ab 1 deps=c install_if=a,b", "c 1", "d 1"],
            0,
        );
        let steps: &[(&str, &str)] = &[
            ("a", "a-1"),
            // b comes: ab is added, with its dependency.
            ("a b", "a-1 ab-1 b-1 c-1"),
            // Something unrelated: ab stays.
            ("a b d", "a-1 ab-1 b-1 c-1 d-1"),
            // b goes: ab goes with it, and what only it needed.
            ("a d", "a-1 d-1"),
            // b again, then a goes.
            ("a b d", "a-1 ab-1 b-1 c-1 d-1"),
            ("b d", "b-1 d-1"),
        ];
        let mut installed = String::new();
        for (world, expect) in steps {
            let got = render(&[&repo], &installed, world, Keep);
            assert_eq!(got, *expect, "world {world}");
            installed = got;
        }
    }

    #[test]
    fn repository_tags_pin_packages() {
        let main = index(
            &[
                "a 1",
                "b 1 deps=lib",
                "lib 1",
                "lib 3",
                "tool 1 deps=lib>=4",
            ],
            1,
        );
        let edge = index(
            &["a 2", "b 2 deps=lib>=2", "lib 2", "lib 4", "c 1", "tool 2"],
            2,
        );
        let solve_with = |sources: &[Source<'_>], installed: &str, wanted: &str, mode| {
            let pool = Pool::with_sources(sources);
            let request: Vec<Dependency> = wanted
                .split_whitespace()
                .map(|text| Dependency::parse_request(text).unwrap())
                .collect();
            match pool.solve(&request, &ids(installed), mode) {
                Ok(entries) => entries
                    .iter()
                    .map(|entry| format!("{}:{}", entry.id(), entry.sha256()[0]))
                    .collect::<Vec<_>>()
                    .join(" "),
                Err(error) => format!("error: {error}"),
            }
        };
        let sources = [
            Source::index(&main, None),
            Source::index(&edge, Some("edge")),
        ];
        let table: &[(&str, &str, &str, Mode, &str)] = &[
            ("untagged only", "", "a", Upgrade, "a-1:1"),
            ("the tag's version first", "", "a@edge", Keep, "a-2:2"),
            (
                "only in a tagged repository",
                "",
                "c",
                Keep,
                "error: c is only in repositories tagged @edge (ask for c@edge; requested)",
            ),
            ("asked for with its tag", "", "c@edge", Keep, "c-1:2"),
            (
                "a pinned package's dependency from its repository when need be",
                "",
                "b@edge",
                Upgrade,
                "b-2:2 lib-3:1",
            ),
            (
                "an untagged request cannot take the dependency from the tagged repository",
                "",
                "tool",
                Upgrade,
                "error: no version of lib satisfies lib>=4 (available: 4, 3, 2, 1; needed by tool-1 <- requested tool)",
            ),
            (
                "pinned through an upgrade",
                "a-2",
                "a@edge",
                Upgrade,
                "a-2:2",
            ),
            (
                "unknown tag",
                "",
                "a@testing",
                Keep,
                "error: a@testing: no repository is tagged @testing",
            ),
        ];
        for (what, installed, wanted, mode, expect) in table {
            assert_eq!(
                solve_with(&sources, installed, wanted, *mode),
                *expect,
                "case: {what}"
            );
        }
        // A newer untagged version does not move a pinned package.
        let newer = index(&["a 3"], 3);
        let sources = [
            Source::index(&main, None),
            Source::index(&newer, None),
            Source::index(&edge, Some("edge")),
        ];
        assert_eq!(solve_with(&sources, "a-2", "a@edge", Upgrade), "a-2:2");
        assert_eq!(solve_with(&sources, "a-2", "a", Upgrade), "a-3:3");
        // What is installed stays a candidate whatever its repository: pkg lists the
        // installed packages as an untagged source of their own.
        let installed = index(&["c 1"], 2);
        let sources = [
            Source::index(&installed, None),
            Source::index(&main, None),
            Source::index(&edge, Some("edge")),
        ];
        assert_eq!(solve_with(&sources, "c-1", "c", Keep), "c-1:2");
    }

    #[test]
    fn first_index_wins_for_equal_ids() {
        let main = index(&["a 1", "a 2"], 1);
        let extra = index(&["a 2", "a 3", "b 1"], 2);
        let fill = |indexes: &[&Index], wanted: &str| -> Vec<(String, u8)> {
            solve(indexes, &[], &requests(wanted), Keep)
                .unwrap()
                .iter()
                .map(|entry| (entry.id().to_string(), entry.sha256()[0]))
                .collect()
        };
        let row = |id: &str, fill: u8| (String::from(id), fill);
        assert_eq!(
            fill(&[&main, &extra], "a=2 b"),
            [row("a-2", 1), row("b-1", 2)]
        );
        assert_eq!(fill(&[&extra, &main], "a=2"), [row("a-2", 2)]);
        // The pool is the union: the newest version may come from any index.
        assert_eq!(fill(&[&main, &extra], "a"), [row("a-3", 2)]);
        assert_eq!(Pool::new(&[&main, &extra]).len(), 4);
    }

    #[test]
    fn deterministic() {
        let repo = index(
            &[
                "a 1 deps=sh,b",
                "b 1 deps=c>=1,d",
                "b 2 deps=c>=2",
                "c 1",
                "c 2",
                "c 3 deps=e",
                "d 1",
                "e 1",
                "busybox 1 provides=sh",
                "bash 5 deps=c provides=sh",
            ],
            0,
        );
        let pool = Pool::new(&[&repo]);
        let first = render(&[&repo], "", "a d e", Keep);
        for _ in 0..3 {
            let again: Vec<String> = pool
                .solve(&requests("a d e"), &[], Keep)
                .unwrap()
                .iter()
                .map(|entry| entry.id().to_string())
                .collect();
            assert_eq!(again.join(" "), first);
        }
        assert_eq!(first, "a-1 b-2 bash-5 c-3 d-1 e-1");
        // Asking in another order gives the same closure.
        assert_eq!(render(&[&repo], "", "e d a", Keep), first);
    }

    #[test]
    fn step_limit_gives_a_clear_error() {
        // Seven packages that each need one of six names only one package may hold
        // (a versioned provide): the pigeonhole problem. Every dead end depends on
        // every earlier choice, so no backjump skips one, and the search tries the
        // orderings of holes one by one: 50 steps are far too few.
        let mut texts: Vec<String> = Vec::new();
        for pigeon in 0..7 {
            for hole in 1..=6 {
                texts.push(format!("pigeon{pigeon} {hole} provides=hole{hole}=1"));
            }
        }
        let lines: Vec<&str> = texts.iter().map(String::as_str).collect();
        let repo = index(&lines, 0);
        let request: Vec<String> = (0..7).map(|pigeon| format!("pigeon{pigeon}")).collect();
        let request = requests(&request.join(" "));
        let error = Pool::new(&[&repo])
            .with_step_limit(50)
            .solve(&request, &[], Keep)
            .unwrap_err();
        assert_eq!(error, SolveError::TooComplex { steps: 50 });
        assert_eq!(
            error.to_string(),
            "dependencies too complex to resolve: gave up after 50 steps"
        );
        // Under the default limit the search runs to the end and explains.
        let error = Pool::new(&[&repo]).solve(&request, &[], Keep).unwrap_err();
        assert_eq!(
            error.to_string(),
            "pigeon1-6 and pigeon0-6 (requested) both provide hole6, which only one package may \
             provide with a version"
        );
    }
}
