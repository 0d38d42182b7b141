//! The dependency solver: picks one version per package so that every request and every dependency holds, or explains why none can.
//!
//! # Model
//!
//! - The candidates are the packages of one or more indexes, taken as one pool.
//!   When two indexes hold the same id (`name-version`), the first index wins.
//! - A dependency with a version constraint (`musl>=1.2.4`) is satisfied only by
//!   a package of that name. A dependency without one (`sh`) is also satisfied
//!   by a package that provides the name; provided names carry no version.
//! - At most one version of each package name is chosen.
//! - The result is the closure of the requests: what they need, what that
//!   needs, and so on; nothing else. It is sorted by name.
//!
//! # Preferences
//!
//! When a dependency has several candidates, they are tried in this order:
//!
//! 1. For a dependency without a constraint, candidates are grouped by package
//!    name: first names that are installed or requested by name, then the name
//!    equal to the dependency, then the other names alphabetically.
//! 2. Within one name, in [`Mode::Keep`] the installed version comes first (if
//!    it is still allowed), then the others newest first; in [`Mode::Upgrade`]
//!    all versions go newest first.
//!
//! # Search
//!
//! Requirements are processed in breadth-first order, starting with the
//! requests. For each open requirement the preferred candidate is checked
//! against every constraint recorded so far on its name, and its own
//! versioned dependencies are checked one step ahead (a version must remain
//! that fits them and every recorded constraint, or the chosen one must fit).
//! When no candidate is left the search backtracks to the most recent choice
//! with untried candidates, so a newer version that leads to a dead end is
//! replaced by an older one that does not. Each candidate check is one step;
//! after [`DEFAULT_STEP_LIMIT`] steps (or the pool's own limit) the solver gives
//! up with [`SolveError::TooComplex`] instead of running for exponential time.
//!
//! When there is no solution, the error is the first dead end the search met,
//! following the preferences above: it explains why the most preferred choice
//! fails, as a chain a person can follow, for example
//! `busybox-1.36.1-r2 needs musl>=1.2.4, but musl=1.2.3-r0 was requested` or
//! `nothing provides libfoo (needed by bar-1.0-r0 <- requested bar)`.
//!
//! # Cost
//!
//! [`Pool::new`] indexes every name and provided name once (`O(n log n)`), and
//! resolves the dependency names of every candidate to integers, so the search
//! itself does no string lookups except for the requests. A search compares the
//! versions of a name with a constraint once, when it first meets the
//! constraint, and keeps the answer as one bit per version: backtracking meets
//! the same constraints again and again, and comparing versions is the dearest
//! thing it does. It builds the explanation of a dead end only for the first
//! one, the one it reports.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::index::{Entry, Index};
use crate::version::{Dependency, PackageId, Version};

/// How many candidate checks a solve may take before it gives up.
pub const DEFAULT_STEP_LIMIT: usize = 100_000;

/// Which version of a package the solver tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep the installed version while it is still allowed, so adding one
    /// package does not upgrade unrelated ones.
    Keep,
    /// Prefer the newest version of everything.
    Upgrade,
}

/// The chain of packages that led to a requirement, up to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The packages that needed it, nearest first; empty for a request itself.
    pub packages: Vec<PackageId>,
    /// The request at the root of the chain.
    pub request: Dependency,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.packages.is_empty() {
            return f.write_str("requested");
        }
        f.write_str("needed by ")?;
        for package in &self.packages {
            write!(f, "{package} <- ")?;
        }
        write!(f, "requested {}", self.request)
    }
}

/// Who needs a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needer {
    /// The user asked for it.
    Request,
    /// A package needs it; the chain says why that package is wanted.
    Package(PackageId, Via),
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
        }
    }
}

/// What stands in the way of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// Another claim on the same name that no version satisfies together with it.
    Claim(Claim),
    /// A version chosen earlier, for the reason given.
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

/// Why a set of requests cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolveError {
    /// No package has or provides the name.
    NothingProvides {
        dependency: Dependency,
        via: Box<Via>,
    },
    /// Packages of the name exist, but no version satisfies the constraint.
    NoMatchingVersion {
        dependency: Dependency,
        /// The versions in the pool, newest first.
        available: Vec<Version>,
        via: Box<Via>,
    },
    /// Two claims on one name cannot both hold.
    Conflict {
        wanted: Box<Claim>,
        blocker: Box<Blocker>,
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
            SolveError::Conflict { wanted, blocker } => {
                write!(f, "{wanted}, but {blocker}")?;
                // A package pulled in by other packages gets its chain, so the
                // reader sees why it is there at all.
                match &wanted.needer {
                    Needer::Package(id, via) if !via.packages.is_empty() => {
                        write!(f, " ({id} is {via})")
                    }
                    _ => Ok(()),
                }
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

/// One entry of the pool with its names resolved to integers.
struct Candidate<'a> {
    entry: &'a Entry,
    name: NameId,
    /// Range into `Pool::needs`.
    needs: (u32, u32),
    /// Range into `Pool::provided`.
    provides: (u32, u32),
}

/// A dependency with its name resolved; `None` when nothing has or provides it.
#[derive(Clone, Copy)]
struct Need<'d> {
    dependency: &'d Dependency,
    name: Option<NameId>,
}

/// What the pool knows about one name.
#[derive(Default, Clone)]
struct NameSlot {
    /// The candidates with this name: a range of candidate ids, newest first.
    packages: (CandidateId, CandidateId),
    /// Candidates of other names that provide this one, by name, then newest first.
    providers: Vec<CandidateId>,
}

/// The candidates of one or more indexes, indexed for solving.
pub struct Pool<'a> {
    names: NameTable<'a>,
    slots: Vec<NameSlot>,
    candidates: Vec<Candidate<'a>>,
    needs: Vec<Need<'a>>,
    provided: Vec<NameId>,
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

    fn hash(name: &str) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
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

/// The candidates whose bits are set in a run of allowed bits, in order.
struct AllowedVersions<'s> {
    words: core::slice::Iter<'s, u64>,
    /// The bits of the current word not visited yet.
    word: u64,
    /// The candidate that bit 0 of the current word stands for.
    base: CandidateId,
    /// The candidate that bit 0 of the next word stands for.
    next: CandidateId,
}

impl Iterator for AllowedVersions<'_> {
    type Item = CandidateId;

    fn next(&mut self) -> Option<CandidateId> {
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

impl<'a> Pool<'a> {
    /// Builds the pool from indexes; for an id in several indexes the first wins.
    pub fn new(indexes: &[&'a Index]) -> Pool<'a> {
        let mut entries: Vec<&'a Entry> = indexes
            .iter()
            .flat_map(|index| index.packages.iter())
            .collect();
        // Sorted by name, newest first. The sort is stable, so among equal ids
        // the first index's entry stays first and survives the dedup. Parsed
        // indexes come sorted by name, which keeps this sort cheap.
        crate::sort::sort_by(&mut entries, |a, b| {
            a.name.cmp(&b.name).then_with(|| b.version.cmp(&a.version))
        });
        entries.dedup_by(|later, earlier| {
            later.name == earlier.name && later.version == earlier.version
        });
        // Name ids follow alphabetical order, which keeps every later ordering
        // by id alphabetical too: package names (sorted already) merged with
        // the provided names.
        let mut provided_names: Vec<&'a str> = entries
            .iter()
            .flat_map(|entry| entry.provides.iter().map(String::as_str))
            .collect();
        crate::sort::sort(&mut provided_names);
        provided_names.dedup();
        let mut package_names: Vec<&'a str> =
            entries.iter().map(|entry| entry.name.as_str()).collect();
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
        let mut slots = vec![NameSlot::default(); names.len()];
        let mut candidates: Vec<Candidate<'a>> = Vec::with_capacity(entries.len());
        for entry in entries {
            let name = names.get(&entry.name).unwrap_or(0);
            let number = to_u32(candidates.len());
            let slot = &mut slots[name as usize];
            if slot.packages.1 == slot.packages.0 {
                slot.packages = (number, number);
            }
            slot.packages.1 = number + 1;
            candidates.push(Candidate {
                entry,
                name,
                needs: (0, 0),
                provides: (0, 0),
            });
        }
        let mut needs = Vec::new();
        let mut provided = Vec::new();
        for (number, candidate) in candidates.iter_mut().enumerate() {
            let start = to_u32(needs.len());
            for dependency in &candidate.entry.deps {
                let name = names.get(&dependency.name);
                needs.push(Need { dependency, name });
            }
            candidate.needs = (start, to_u32(needs.len()));
            let start = to_u32(provided.len());
            for name in &candidate.entry.provides {
                let Some(id) = names.get(name) else {
                    continue;
                };
                // Providing one's own name adds nothing.
                if id != candidate.name {
                    provided.push(id);
                    slots[id as usize].providers.push(to_u32(number));
                }
            }
            candidate.provides = (start, to_u32(provided.len()));
        }
        Pool {
            names,
            slots,
            candidates,
            needs,
            provided,
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
    ) -> Result<Vec<&'a Entry>, SolveError> {
        let mut search = Search::new(self, requests, installed, mode);
        search.run()?;
        Ok(search
            .chosen
            .iter()
            .flatten()
            .map(|&candidate| self.candidates[candidate as usize].entry)
            .collect())
    }

    fn entry(&self, candidate: CandidateId) -> &'a Entry {
        self.candidates[candidate as usize].entry
    }

    fn name_of(&self, candidate: CandidateId) -> NameId {
        self.candidates[candidate as usize].name
    }

    fn versions(&self, name: NameId) -> core::ops::Range<usize> {
        range(self.slots[name as usize].packages)
    }
}

/// Resolves `requests` against the packages of `indexes` (see the module
/// documentation); a convenience for a single solve over a fresh [`Pool`].
pub fn solve<'a>(
    indexes: &[&'a Index],
    installed: &[PackageId],
    requests: &[Dependency],
    mode: Mode,
) -> Result<Vec<&'a Entry>, SolveError> {
    Pool::new(indexes).solve(requests, installed, mode)
}

/// One thing that must hold: a dependency, who needs it, and the request at the
/// root of the chain.
struct Requirement<'d> {
    need: Need<'d>,
    key: Key,
    parent: Option<CandidateId>,
    root: usize,
}

/// Names a dependency for the versions it allows: its position in `Pool::needs`
/// for a package's dependency, or `Pool::needs.len()` plus its position among the
/// requests for a request.
type Key = u32;

/// The versions one dependency allows, once the search has compared them.
#[derive(Clone, Copy, Default)]
struct Allowed {
    /// Where its bits start in `Search::allowed_bits`, plus one; 0 until compared.
    start: u32,
    /// The first candidate of the dependency's name, which bit 0 stands for.
    first: CandidateId,
}

/// A dead end. Only the first one is reported, and building the explanation (a
/// chain of package ids) costs more than finding the dead end, so later ones
/// carry none.
type DeadEnd = Option<SolveError>;

/// Where a recorded version constraint comes from.
#[derive(Clone, Copy)]
enum Source {
    Request,
    Package(CandidateId),
}

/// A version constraint recorded on a name.
struct Restriction<'d> {
    dependency: &'d Dependency,
    key: Key,
    source: Source,
}

/// One change to the search state, kept so that it can be undone.
enum Undo {
    Chose(NameId),
    Provided(NameId),
    Restricted(NameId),
}

/// A requirement with several candidates: which one is tried next, and the
/// state to return to before trying it.
struct Choice {
    requirement: usize,
    /// Where its candidates start in `Search::options`; they run to the end.
    options: usize,
    /// The position in `Search::options` of the candidate to try next.
    next: usize,
    trail: usize,
    queue: usize,
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
    /// Per name: installed or requested by name.
    preferred: Vec<bool>,
    /// Per name: the installed candidate, if it is in the pool.
    installed: Vec<Option<CandidateId>>,
    /// Per name: the chosen candidate and the requirement it was chosen for.
    chosen: Vec<Option<CandidateId>>,
    chosen_for: Vec<usize>,
    /// Per name: how many chosen candidates of other names provide it.
    provided: Vec<u32>,
    /// Per name: version constraints recorded so far.
    restrictions: Vec<Vec<Restriction<'r>>>,
    queue: Vec<Requirement<'r>>,
    trail: Vec<Undo>,
    choices: Vec<Choice>,
    /// The candidates of every choice, innermost last. Choices nest, so their
    /// candidates form a stack too, and one list serves them all without an
    /// allocation per choice.
    options: Vec<CandidateId>,
    /// Per key: where the versions it allows are, once compared.
    allowed: Vec<Allowed>,
    /// One bit per version of each compared dependency's name, newest first.
    allowed_bits: Vec<u64>,
    steps: usize,
    first_failure: Option<SolveError>,
}

impl<'p, 'a: 'r, 'r> Search<'p, 'a, 'r> {
    fn new(
        pool: &'p Pool<'a>,
        requests: &'r [Dependency],
        installed: &[PackageId],
        mode: Mode,
    ) -> Self {
        let count = pool.slots.len();
        let mut search = Search {
            pool,
            requests,
            mode,
            preferred: vec![false; count],
            installed: vec![None; count],
            chosen: vec![None; count],
            chosen_for: vec![0; count],
            provided: vec![0; count],
            restrictions: (0..count).map(|_| Vec::new()).collect(),
            queue: Vec::with_capacity(requests.len() * 4),
            trail: Vec::new(),
            choices: Vec::new(),
            options: Vec::new(),
            allowed: vec![Allowed::default(); pool.needs.len() + requests.len()],
            allowed_bits: Vec::new(),
            steps: 0,
            first_failure: None,
        };
        for id in installed {
            let Some(name) = pool.names.get(&id.name) else {
                continue;
            };
            search.preferred[name as usize] = true;
            search.installed[name as usize] = pool
                .versions(name)
                .find(|&candidate| pool.candidates[candidate].entry.version == id.version)
                .map(to_u32);
        }
        for (root, dependency) in requests.iter().enumerate() {
            let name = pool.names.get(&dependency.name);
            let need = Need { dependency, name };
            let key = to_u32(pool.needs.len() + root);
            search.compare(key, need);
            if let Some(name) = name {
                search.preferred[name as usize] = true;
                // Requests constrain their name from the start, so the first
                // candidate checks already see them.
                if dependency.constraint.is_some() {
                    search.restrictions[name as usize].push(Restriction {
                        dependency,
                        key,
                        source: Source::Request,
                    });
                }
            }
            search.queue.push(Requirement {
                need,
                key,
                parent: None,
                root,
            });
        }
        search
    }

    fn run(&mut self) -> Result<(), SolveError> {
        let mut position = 0;
        'search: loop {
            // Walk forward over what already holds, up to the next open requirement.
            while position < self.queue.len() {
                let requirement = &self.queue[position];
                self.compare(requirement.key, requirement.need);
                let mut options = core::mem::take(&mut self.options);
                let start = options.len();
                let status = self.status(position, &mut options);
                self.options = options;
                match status {
                    Status::Satisfied => position += 1,
                    Status::Open => {
                        self.choices.push(Choice {
                            requirement: position,
                            options: start,
                            next: start,
                            trail: self.trail.len(),
                            queue: self.queue.len(),
                        });
                        break;
                    }
                    Status::Broken(error) => {
                        self.note(error);
                        break;
                    }
                }
            }
            if position == self.queue.len() {
                return Ok(());
            }
            // Take the next workable candidate of the innermost choice, going
            // back to earlier choices when one runs out.
            loop {
                let Some(choice) = self.choices.last() else {
                    return Err(self.failure());
                };
                let (requirement, trail, queue) = (choice.requirement, choice.trail, choice.queue);
                self.undo(trail, queue);
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
                            position = requirement + 1;
                            continue 'search;
                        }
                        Err(error) => self.note(error),
                    }
                }
                if let Some(choice) = self.choices.pop() {
                    self.options.truncate(choice.options);
                }
            }
        }
    }

    fn next_option(&mut self) -> Option<CandidateId> {
        let choice = self.choices.last_mut()?;
        let candidate = self.options.get(choice.next).copied()?;
        choice.next += 1;
        Some(candidate)
    }

    /// Keeps the first dead end: it explains the most preferred path.
    fn note(&mut self, dead_end: DeadEnd) {
        if self.first_failure.is_none() {
            self.first_failure = dead_end;
        }
    }

    /// A dead end, explained by `explain` if it is the first one.
    fn dead_end(&self, explain: impl FnOnce() -> SolveError) -> DeadEnd {
        self.first_failure.is_none().then(explain)
    }

    /// Compares the versions of a versioned need's name with its constraint,
    /// unless that was done already.
    fn compare(&mut self, key: Key, need: Need<'_>) {
        let (Some(name), Some(_)) = (need.name, &need.dependency.constraint) else {
            return;
        };
        let allowed = &mut self.allowed[key as usize];
        if allowed.start != 0 {
            return;
        }
        let versions = self.pool.versions(name);
        allowed.start = to_u32(self.allowed_bits.len() + 1);
        allowed.first = to_u32(versions.start);
        let start = self.allowed_bits.len();
        self.allowed_bits
            .resize(start + versions.len().div_ceil(64), 0);
        for (bit, candidate) in versions.enumerate() {
            if need
                .dependency
                .allows(&self.pool.candidates[candidate].entry.version)
            {
                self.allowed_bits[start + bit / 64] |= 1 << (bit % 64);
            }
        }
    }

    /// Compares the versioned needs of a candidate before it is checked.
    fn compare_needs(&mut self, candidate: CandidateId) {
        let pool = self.pool;
        let needs = range(pool.candidates[candidate as usize].needs);
        for (key, need) in needs.clone().zip(&pool.needs[needs]) {
            self.compare(to_u32(key), *need);
        }
    }

    /// Reports whether the dependency `key` allows `candidate`, a version of its
    /// name. The versions were compared when the dependency entered the search.
    fn allows(&self, key: Key, candidate: CandidateId) -> bool {
        let allowed = self.allowed[key as usize];
        let bit = (candidate - allowed.first) as usize;
        let word = allowed.start as usize - 1 + bit / 64;
        self.allowed_bits[word] & (1 << (bit % 64)) != 0
    }

    /// The versions of `name` that the dependency `key` allows, newest first.
    /// Only those are visited: a name may have many versions, and backtracking
    /// asks for the same ones again and again.
    fn allowed_versions(&self, key: Key, name: NameId) -> AllowedVersions<'_> {
        let allowed = self.allowed[key as usize];
        let start = allowed.start as usize - 1;
        let words = self.pool.versions(name).len().div_ceil(64);
        AllowedVersions {
            words: self.allowed_bits[start..start + words].iter(),
            word: 0,
            base: allowed.first,
            next: allowed.first,
        }
    }

    fn failure(&mut self) -> SolveError {
        // A search that fails has met at least one dead end; the fallback only
        // keeps this function total.
        self.first_failure
            .take()
            .unwrap_or(SolveError::TooComplex { steps: self.steps })
    }

    fn undo(&mut self, trail: usize, queue: usize) {
        while self.trail.len() > trail {
            match self.trail.pop() {
                Some(Undo::Chose(name)) => self.chosen[name as usize] = None,
                Some(Undo::Provided(name)) => self.provided[name as usize] -= 1,
                Some(Undo::Restricted(name)) => {
                    self.restrictions[name as usize].pop();
                }
                None => break,
            }
        }
        self.queue.truncate(queue);
    }

    fn apply(&mut self, candidate: CandidateId, requirement: usize) {
        let pool = self.pool;
        let record = &pool.candidates[candidate as usize];
        let name = record.name as usize;
        self.chosen[name] = Some(candidate);
        self.chosen_for[name] = requirement;
        self.trail.push(Undo::Chose(record.name));
        for &provided in &pool.provided[range(record.provides)] {
            self.provided[provided as usize] += 1;
            self.trail.push(Undo::Provided(provided));
        }
        let root = self.queue[requirement].root;
        let needs = range(record.needs);
        for (key, need) in needs.clone().zip(&pool.needs[needs]) {
            let key = to_u32(key);
            if let (Some(name), Some(_)) = (need.name, &need.dependency.constraint) {
                self.restrictions[name as usize].push(Restriction {
                    dependency: need.dependency,
                    key,
                    source: Source::Package(candidate),
                });
                self.trail.push(Undo::Restricted(name));
            }
            self.queue.push(Requirement {
                need: *need,
                key,
                parent: Some(candidate),
                root,
            });
        }
    }

    /// What the requirement at `position` needs next; its versions must have
    /// been compared (see [`Search::compare`]). The candidates of an open one
    /// are appended to `options`.
    fn status(&self, position: usize, options: &mut Vec<CandidateId>) -> Status {
        let requirement = &self.queue[position];
        let dependency = requirement.need.dependency;
        let unprovided = || SolveError::NothingProvides {
            dependency: dependency.clone(),
            via: Box::new(self.via(position)),
        };
        let Some(name) = requirement.need.name else {
            return Status::Broken(self.dead_end(unprovided));
        };
        if dependency.constraint.is_none() {
            if self.chosen[name as usize].is_some() || self.provided[name as usize] > 0 {
                return Status::Satisfied;
            }
            let start = options.len();
            self.provider_options(name, options);
            if options.len() == start {
                return Status::Broken(self.dead_end(unprovided));
            }
            return Status::Open;
        }
        if let Some(chosen) = self.chosen[name as usize] {
            if self.allows(requirement.key, chosen) {
                return Status::Satisfied;
            }
            return Status::Broken(self.dead_end(|| SolveError::Conflict {
                wanted: Box::new(self.claim(position)),
                blocker: Box::new(self.blocker(name, dependency, chosen)),
            }));
        }
        let start = options.len();
        self.push_versions(name, Some(requirement.key), options);
        if options.len() == start {
            return Status::Broken(self.dead_end(|| SolveError::NoMatchingVersion {
                dependency: dependency.clone(),
                available: self.available(name),
                via: Box::new(self.via(position)),
            }));
        }
        Status::Open
    }

    /// Appends the versions of `name` that the dependency `key` allows (all
    /// without one), in preference order.
    fn push_versions(&self, name: NameId, key: Option<Key>, out: &mut Vec<CandidateId>) {
        let installed = match self.mode {
            Mode::Keep => self.installed[name as usize],
            Mode::Upgrade => None,
        };
        let Some(key) = key else {
            out.extend(installed);
            let versions = self.pool.versions(name).map(to_u32);
            out.extend(versions.filter(|&candidate| Some(candidate) != installed));
            return;
        };
        let installed = installed.filter(|&candidate| self.allows(key, candidate));
        out.extend(installed);
        let versions = self.allowed_versions(key, name);
        out.extend(versions.filter(|&candidate| Some(candidate) != installed));
    }

    /// Appends the candidates for a dependency without a constraint, in
    /// preference order.
    fn provider_options(&self, name: NameId, options: &mut Vec<CandidateId>) {
        let pool = self.pool;
        let providers = &pool.slots[name as usize].providers;
        // Most names have no providers: then the name's own versions are all.
        if providers.is_empty() {
            self.push_versions(name, None, options);
            return;
        }
        // Groups of one package name each: the name itself, then each provider.
        let mut groups: Vec<(bool, bool, NameId, usize, usize)> = Vec::new();
        let mut start = 0;
        while start < providers.len() {
            let group = pool.name_of(providers[start]);
            let end = providers[start..]
                .iter()
                .position(|&candidate| pool.name_of(candidate) != group)
                .map_or(providers.len(), |length| start + length);
            groups.push((!self.preferred[group as usize], true, group, start, end));
            start = end;
        }
        let own = pool.versions(name);
        if !own.is_empty() {
            groups.push((!self.preferred[name as usize], false, name, 0, 0));
        }
        groups
            .sort_unstable_by_key(|&(unpreferred, other, group, _, _)| (unpreferred, other, group));
        for (_, other, group, start, end) in groups {
            if !other {
                self.push_versions(name, None, options);
                continue;
            }
            let keep = match self.mode {
                Mode::Keep => self.installed[group as usize],
                Mode::Upgrade => None,
            };
            let members = &providers[start..end];
            if let Some(installed) = keep.filter(|candidate| members.contains(candidate)) {
                options.push(installed);
            }
            options.extend(members.iter().filter(|&&candidate| Some(candidate) != keep));
        }
    }

    /// Checks a candidate for a requirement before choosing it; the versions
    /// of its needs must have been compared (see [`Search::compare_needs`]).
    fn check(&self, candidate: CandidateId, requirement: usize) -> Result<(), DeadEnd> {
        let pool = self.pool;
        let record = &pool.candidates[candidate as usize];
        let entry = record.entry;
        if let Some(chosen) = self.chosen[record.name as usize] {
            // Another version of this package is in already, and it does not
            // provide what is needed here.
            return Err(self.dead_end(|| SolveError::Conflict {
                wanted: Box::new(self.claim(requirement)),
                blocker: Box::new(Blocker::Chosen(
                    pool.entry(chosen).id(),
                    self.via_of(chosen),
                )),
            }));
        }
        if let Some(restriction) = self.restrictions[record.name as usize]
            .iter()
            .find(|restriction| !self.allows(restriction.key, candidate))
        {
            return Err(self.dead_end(|| SolveError::Conflict {
                wanted: Box::new(self.claim(requirement)),
                blocker: Box::new(Blocker::Claim(self.restriction_claim(restriction))),
            }));
        }
        // Look one step ahead: each versioned dependency must still be possible.
        let needs = range(record.needs);
        for (key, need) in needs.clone().zip(&pool.needs[needs]) {
            let key = to_u32(key);
            let dependency = need.dependency;
            let wanted = || Claim {
                needer: Needer::Package(entry.id(), self.via(requirement)),
                dependency: dependency.clone(),
            };
            let via = || {
                let mut via = self.via(requirement);
                via.packages.insert(0, entry.id());
                via
            };
            let Some(name) = need.name else {
                return Err(self.dead_end(|| SolveError::NothingProvides {
                    dependency: dependency.clone(),
                    via: Box::new(via()),
                }));
            };
            if dependency.constraint.is_none() {
                continue;
            }
            if let Some(chosen) = self.chosen[name as usize] {
                if self.allows(key, chosen) {
                    continue;
                }
                return Err(self.dead_end(|| SolveError::Conflict {
                    wanted: Box::new(wanted()),
                    blocker: Box::new(self.blocker(name, dependency, chosen)),
                }));
            }
            let restrictions = &self.restrictions[name as usize];
            let mut first_allowed = None;
            let mut possible = false;
            for version in self.allowed_versions(key, name) {
                first_allowed.get_or_insert(version);
                if restrictions
                    .iter()
                    .all(|restriction| self.allows(restriction.key, version))
                {
                    possible = true;
                    break;
                }
            }
            if possible {
                continue;
            }
            let Some(first_allowed) = first_allowed else {
                return Err(self.dead_end(|| SolveError::NoMatchingVersion {
                    dependency: dependency.clone(),
                    available: self.available(name),
                    via: Box::new(via()),
                }));
            };
            if let Some(restriction) = restrictions
                .iter()
                .find(|restriction| !self.allows(restriction.key, first_allowed))
            {
                return Err(self.dead_end(|| SolveError::Conflict {
                    wanted: Box::new(wanted()),
                    blocker: Box::new(Blocker::Claim(self.restriction_claim(restriction))),
                }));
            }
        }
        Ok(())
    }

    /// Explains why `chosen` is in the way of `dependency`: the recorded
    /// constraint that rules out the newest version `dependency` allows, or
    /// else the choice itself.
    fn blocker(&self, name: NameId, dependency: &Dependency, chosen: CandidateId) -> Blocker {
        let pool = self.pool;
        let newest_allowed = pool
            .versions(name)
            .map(to_u32)
            .find(|&candidate| dependency.allows(&pool.entry(candidate).version));
        if let Some(candidate) = newest_allowed {
            let version = &pool.entry(candidate).version;
            if let Some(restriction) = self.restrictions[name as usize]
                .iter()
                .find(|restriction| !restriction.dependency.allows(version))
            {
                return Blocker::Claim(self.restriction_claim(restriction));
            }
        }
        Blocker::Chosen(pool.entry(chosen).id(), self.via_of(chosen))
    }

    fn restriction_claim(&self, restriction: &Restriction<'_>) -> Claim {
        let needer = match restriction.source {
            Source::Request => Needer::Request,
            Source::Package(candidate) => {
                Needer::Package(self.pool.entry(candidate).id(), self.via_of(candidate))
            }
        };
        Claim {
            needer,
            dependency: restriction.dependency.clone(),
        }
    }

    /// Who needs the requirement at `position`, and what.
    fn claim(&self, position: usize) -> Claim {
        let requirement = &self.queue[position];
        let needer = match requirement.parent {
            None => Needer::Request,
            Some(parent) => Needer::Package(self.pool.entry(parent).id(), self.via_of(parent)),
        };
        Claim {
            needer,
            dependency: requirement.need.dependency.clone(),
        }
    }

    /// Why a chosen candidate is in.
    fn via_of(&self, candidate: CandidateId) -> Via {
        self.via(self.chosen_for[self.pool.name_of(candidate) as usize])
    }

    /// The chain from the requirement at `position` up to its request.
    fn via(&self, position: usize) -> Via {
        let mut packages = Vec::new();
        let mut position = position;
        // Each parent was chosen for an earlier requirement, so the walk ends;
        // the bound only guards against a broken invariant.
        for _ in 0..self.queue.len() {
            let Some(requirement) = self.queue.get(position) else {
                break;
            };
            let Some(parent) = requirement.parent else {
                break;
            };
            packages.push(self.pool.entry(parent).id());
            position = self.chosen_for[self.pool.name_of(parent) as usize];
        }
        let root = self
            .queue
            .get(position)
            .map_or(0, |requirement| requirement.root);
        let request = self
            .requests
            .get(root)
            .cloned()
            .unwrap_or_else(|| Dependency::any(""));
        Via { packages, request }
    }

    fn available(&self, name: NameId) -> Vec<Version> {
        self.pool
            .versions(name)
            .map(|candidate| self.pool.candidates[candidate].entry.version.clone())
            .collect()
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
    fn first_index_wins_for_equal_ids() {
        let main = index(&["a 1", "a 2"], 1);
        let extra = index(&["a 2", "a 3", "b 1"], 2);
        let fill = |indexes: &[&Index], wanted: &str| -> Vec<(String, u8)> {
            solve(indexes, &[], &requests(wanted), Keep)
                .unwrap()
                .iter()
                .map(|entry| (entry.id().to_string(), entry.sha256[0]))
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
        // Twelve independent two-version choices come before a dead end that
        // none of them causes, so a chronological search tries every
        // combination of them: 4096 of them.
        let mut texts: Vec<String> = Vec::new();
        for layer in 0..12 {
            texts.push(format!("m{layer} 1"));
            texts.push(format!("m{layer} 2"));
        }
        let layers: Vec<String> = (0..12).map(|layer| format!("m{layer}")).collect();
        texts.push(format!("a 1 deps={},q", layers.join(",")));
        texts.push(String::from("q 1 deps=w"));
        let lines: Vec<&str> = texts.iter().map(String::as_str).collect();
        let repo = index(&lines, 0);
        let error = Pool::new(&[&repo])
            .with_step_limit(50)
            .solve(&requests("a"), &[], Keep)
            .unwrap_err();
        assert_eq!(error, SolveError::TooComplex { steps: 50 });
        assert_eq!(
            error.to_string(),
            "dependencies too complex to resolve: gave up after 50 steps"
        );
        // Under the default limit the search runs to the end and explains.
        let error = Pool::new(&[&repo])
            .solve(&requests("a"), &[], Keep)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "nothing provides w (needed by q-1 <- a-1 <- requested a)"
        );
    }
}
