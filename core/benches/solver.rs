//! Solver benchmark (DESIGN §8): easy and adversarial requests, each in its own 10,000-package repository.
//!
//! Every repository is generated from fixed seeds, so every run measures the same
//! problems. Most of each one is ordinary background: about 7,000 names, a third
//! of them with two to four versions; each package has 0 to 8 dependencies, most
//! of them on a core of 150 popular libraries (the lower the library's number,
//! the more popular), the rest on other packages; a quarter of the dependencies
//! carry a version constraint (`>=`, `<` or `~`); 40 virtual names are each
//! provided by a few packages. The adversarial cases add their own structure to
//! it and fill the rest of the 10,000 packages with background:
//!
//! - `easy` and `easy-keep`: 200 random names of the background, newest versions
//!   first, then again with their whole closure installed (the common `pkg add`).
//! - `backtrack`: the newest versions of `web` need `ssl>=2` and every version of
//!   `mail` needs `ssl<2`, each through a package one level below what the
//!   solver's lookahead sees, so the search tries each of web's newest versions
//!   against every version of mail before it settles on an older web.
//! - `backtrack-world`: the same conflict requested beside the 200 names of `easy`,
//!   as it would be in a real system; the search must get past their choices too
//!   (conflict-directed backjumping jumps over them).
//! - `chain`: a chain 4,000 packages deep, each link with two versions, the
//!   newest needing the newest of the next link.
//! - `providers`: 600 packages provide `shell`, and all but the last are unusable:
//!   a third need an old `base`, a third need a name nothing provides, a third
//!   need a package that needs an old `base` (seen one level deeper).
//! - `late-failure`: twelve two-version requests come before a conflict two
//!   levels below another request, so the search tries every combination of the
//!   twelve before it reports the conflict.
//! - `late-failure-world`: the same conflict beside the 200 names of `easy`; the
//!   search jumps past their choices, which have nothing to do with it, and fails.
//! - `conflicts-world`: `router` needs `dns-server` and `netd`; 300 providers of
//!   `dns-server`, tried by their `provider_priority`, each need a library that
//!   conflicts with `netd` (one level below, out of the lookahead's sight), but the
//!   last; beside the 200 names of `easy`.
//!
//! Each repository goes through `Index::write` and `index::parse_view` (the parse pkg
//! does: a view that borrows from the text), so the parse time is measured too; it
//! is reported apart from the solve, since the solve goal leaves it out, and on a
//! line of its own for the `easy` repository. Each case prints one line: what it does;
//! the median and worst of its index parses, pool builds and solves; the steps the
//! solver took (found by a binary search over the step limit, since a solve does not
//! report them); how the solve ended; and the verdict against the goal: the median of
//! pool build plus solve within 50 ms, with the expected outcome (a solvable request
//! that ends in "too complex" misses it). The worst case comes last.
//!
//! Then `add`: one `pkg add` against the 10,000-package repository, step by step as
//! pkg takes them, with about 50 packages installed: the signature check of the
//! cached index, its parse (and the current generation's), the pool, the solve, and
//! the plan (the new generation's entries and text); the goal is all of it within
//! 20 ms (DESIGN §8). The bench fails when any case or `add` misses. Times are the
//! thread's CPU time, so other work on a shared machine does not count as the solver's.
//!
//! Run with `cargo xtask bench solver`, which builds with the `bench-device`
//! profile: the device's code generation (opt-level "z", LTO, one codegen unit),
//! since that is what the device runs; the first line names the profile. Options
//! after the name: case names to run only those, and `--quick` to run each case
//! once without counting steps (for profilers: callgrind's
//! `--toggle-collect='*measured_solve*'` looks at the timed solve alone).

use std::fmt::Write as _;
use std::time::Duration;

use amber_core::generation::Generation;
use amber_core::index::{self, Entry, Index, IndexView};
use amber_core::minisign;
use amber_core::solve::{Chosen, Mode, Pool, SolveError, Source, DEFAULT_STEP_LIMIT};
use amber_core::version::{Constraint, Dependency, Op, PackageId, Provide, Version};

const PACKAGES: usize = 10_000;
const CORE: usize = 150;
const VIRTUALS: usize = 40;
const REQUEST: usize = 200;
const PARSE_RUNS: usize = 5;
const RUNS: usize = 15;
const GOAL_MS: f64 = 50.0;

/// Index content drawn from the one deterministic generator.
struct Random(amber_core::random::Random);

impl Random {
    fn new(seed: u64) -> Random {
        Random(amber_core::random::Random::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// A number in `0..bound`, skewed toward 0 (the square of a uniform draw).
    fn skewed(&mut self, bound: usize) -> usize {
        let uniform = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((uniform * uniform) * bound as f64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A made-up image hash: the solver never reads it, the index format needs one.
    fn sha256(&mut self) -> [u8; 32] {
        let mut sha256 = [0u8; 32];
        for chunk in sha256.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        sha256
    }
}

fn version(text: &str) -> Version {
    Version::parse(text).expect("generated versions are valid")
}

fn dependency(text: &str) -> Dependency {
    Dependency::parse(text).expect("generated dependencies are valid")
}

/// One generated package name with its versions, oldest first.
struct Name {
    name: String,
    versions: Vec<(u32, u32, u32, u32)>,
}

impl Name {
    fn text(&self, which: usize) -> String {
        let (major, minor, patch, revision) = self.versions[which];
        format!("{major}.{minor}.{patch}-r{revision}")
    }
}

/// The ordinary background: `packages` packages as described in the module
/// documentation. With 10,000 packages it is the repository of the `easy` cases.
fn background(packages: usize) -> Vec<Entry> {
    let mut random = Random::new(0x00c0_ffee_d00d_f00d);
    // Names and versions first, so dependencies can point at real versions.
    let mut names: Vec<Name> = Vec::new();
    let mut count = 0;
    while count < packages {
        let number = names.len();
        let name = if number < CORE {
            format!("lib{number:03}")
        } else {
            format!("pkg{number:05}")
        };
        let wanted = if random.chance(33) {
            2 + random.below(3)
        } else {
            1
        };
        let versions = wanted.min(packages - count);
        let mut major = 1 + random.below(5) as u32;
        let mut minor = random.below(20) as u32;
        let mut list = Vec::new();
        for _ in 0..versions {
            list.push((
                major,
                minor,
                random.below(10) as u32,
                random.below(4) as u32,
            ));
            // Each later version moves on by a minor or, now and then, a major step.
            if random.chance(20) {
                major += 1;
                minor = 0;
            } else {
                minor += 1;
            }
        }
        count += versions;
        names.push(Name {
            name,
            versions: list,
        });
    }
    let virtuals: Vec<String> = (0..VIRTUALS).map(|n| format!("virtual{n:02}")).collect();
    let mut packages = Vec::with_capacity(packages);
    for (number, name) in names.iter().enumerate() {
        for which in 0..name.versions.len() {
            // Fan-out: core libraries need few things, applications more.
            let fan_out = if number < CORE {
                random.below(3)
            } else {
                random.below(9)
            };
            let mut deps: Vec<Dependency> = Vec::new();
            for _ in 0..fan_out {
                let dependency = if random.chance(4) {
                    Dependency::any(&virtuals[random.below(VIRTUALS)])
                } else {
                    let target = if number < CORE || random.chance(70) {
                        random.skewed(CORE)
                    } else {
                        CORE + random.below(names.len() - CORE)
                    };
                    if target == number {
                        continue;
                    }
                    let target = &names[target];
                    let newest = target.versions.len() - 1;
                    let constraint = match random.below(100) {
                        // At least some existing version: the newest always fits.
                        0..=14 => Some(Constraint {
                            op: Op::Ge,
                            version: version(&target.text(random.below(newest + 1))),
                        }),
                        // Below the next major release of the newest version.
                        15..=19 => Some(Constraint {
                            op: Op::Lt,
                            version: version(&format!("{}", target.versions[newest].0 + 1)),
                        }),
                        // The newest version's major release series.
                        20..=24 => Some(Constraint {
                            op: Op::Tilde,
                            version: version(&format!("{}", target.versions[newest].0)),
                        }),
                        _ => None,
                    };
                    Dependency {
                        name: target.name.clone(),
                        constraint,
                        conflict: false,
                        tag: None,
                    }
                };
                if !deps.iter().any(|seen| seen.name == dependency.name) {
                    deps.push(dependency);
                }
            }
            let mut provides = Vec::new();
            if number >= CORE && random.chance(2) {
                provides.push(Provide::any(&virtuals[random.below(VIRTUALS)]));
            }
            packages.push(Entry {
                name: name.name.clone(),
                version: version(&name.text(which)),
                size: 4096 + random.below(4 << 20) as u64,
                sha256: random.sha256(),
                deps,
                provides,
                provider_priority: 0,
                install_if: Vec::new(),
                description: String::new(),
            });
        }
    }
    // Every virtual name needs at least one provider, or requests could fail.
    for (n, virtual_name) in virtuals.iter().enumerate() {
        let provider = CORE + (n * 97) % (names.len() - CORE);
        let provider_name = &names[provider].name;
        for entry in packages
            .iter_mut()
            .filter(|entry| &entry.name == provider_name)
        {
            if !entry.provides.iter().any(|p| &p.name == virtual_name) {
                entry.provides.push(Provide::any(virtual_name));
            }
        }
    }
    packages
}

/// The 200 requests of the `easy` cases: distinct names drawn from the background.
fn background_request(background: &[Entry]) -> Vec<Dependency> {
    let mut random = Random::new(0x5eed_0000_0000_0200);
    let mut request: Vec<Dependency> = Vec::new();
    while request.len() < REQUEST {
        let entry = &background[random.below(background.len())];
        if !request.iter().any(|seen| seen.name == entry.name) {
            request.push(Dependency::any(&entry.name));
        }
    }
    request
}

/// The items of a comma-separated list, none for an empty one.
fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|item| !item.is_empty())
}

/// The packages a case adds to the background, written as the index would say them.
struct Structure {
    random: Random,
    entries: Vec<Entry>,
}

impl Structure {
    fn new() -> Structure {
        Structure {
            random: Random::new(0x0ad0_e125_a121_0000),
            entries: Vec::new(),
        }
    }

    /// Adds a package; `deps` and `provides` are comma-separated, as in the index.
    fn add(&mut self, name: &str, version_text: &str, deps: &str, provides: &str) {
        self.add_full(name, version_text, deps, provides, "");
    }

    /// [`Structure::add`] with a provider priority (empty for none).
    fn add_full(
        &mut self,
        name: &str,
        version_text: &str,
        deps: &str,
        provides: &str,
        priority: &str,
    ) {
        let entry = Entry {
            name: name.into(),
            version: version(version_text),
            size: 4096 + self.random.below(1 << 20) as u64,
            sha256: self.random.sha256(),
            deps: items(deps).map(dependency).collect(),
            provides: items(provides)
                .map(|text| Provide::parse(text).expect("generated provides are valid"))
                .collect(),
            provider_priority: priority.parse().unwrap_or(0),
            install_if: Vec::new(),
            description: String::new(),
        };
        self.entries.push(entry);
    }

    /// The 10,000-package repository: this structure, with background for the rest.
    fn repository(self) -> (Vec<Entry>, Vec<Entry>) {
        let background = background(PACKAGES - self.entries.len());
        (background, self.entries)
    }
}

/// `web` and `mail`, 100 versions each, over `ssl` 1.0 to 1.9 and 2.0 to 2.9.
/// `web-N` needs `webcore=N` and `mail-N` needs `mailcore=N`, so the solver's
/// one-step lookahead sees only that the core exists. `webcore` needs `ssl>=2`
/// from version 21 on and `ssl<2` before; every `mailcore` needs `ssl<2`. The
/// only solutions pair `web-20` or older with any mail; the newest first choice
/// fails 80 times, each time after trying every mail.
fn conflict(structure: &mut Structure) {
    for minor in 0..10 {
        structure.add("ssl", &format!("1.{minor}"), "", "");
        structure.add("ssl", &format!("2.{minor}"), "", "");
    }
    for number in 1..=100 {
        let release = format!("{number}.0");
        structure.add("web", &release, &format!("webcore={release}"), "");
        structure.add("mail", &release, &format!("mailcore={release}"), "");
        let ssl = if number > 20 { "ssl>=2" } else { "ssl<2" };
        structure.add("webcore", &release, ssl, "");
        structure.add("mailcore", &release, "ssl<2", "");
    }
}

/// `broken` needs `brokenlib`, which needs `base<2` against a request of
/// `base>=2`: the conflict sits two levels below the request, out of the
/// lookahead's sight, so it shows only after every earlier choice is made.
fn late_conflict(structure: &mut Structure) {
    for release in ["1.0", "2.0", "3.0"] {
        structure.add("base", release, "", "");
    }
    structure.add("broken", "1.0", "brokenlib", "");
    structure.add("brokenlib", "1.0", "base<2", "");
}

/// How a case is expected to end.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Resolves,
    Fails,
}

/// One benchmark case: a repository, a request, and how the solve should end.
struct Case {
    name: &'static str,
    what: &'static str,
    background: Vec<Entry>,
    structure: Vec<Entry>,
    request: Vec<Dependency>,
    mode: Mode,
    /// Whether the closure of an upgrade solve of the request is installed first.
    closure_installed: bool,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let easy_background = background(PACKAGES);
    let easy_request = background_request(&easy_background);
    let mut cases = Vec::new();
    cases.push(Case {
        name: "easy",
        what: "200 random names, newest versions first",
        background: easy_background.clone(),
        structure: Vec::new(),
        request: easy_request.clone(),
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Resolves,
    });
    cases.push(Case {
        name: "easy-keep",
        what: "the same 200 names with their closure installed, kept (pkg add)",
        background: easy_background,
        structure: Vec::new(),
        request: easy_request,
        mode: Mode::Keep,
        closure_installed: true,
        expect: Expect::Resolves,
    });

    let mut structure = Structure::new();
    conflict(&mut structure);
    let (background, structure) = structure.repository();
    cases.push(Case {
        name: "backtrack",
        what: "newest web needs ssl>=2, all mail ssl<2, one level past the lookahead",
        background,
        structure,
        request: vec![dependency("web"), dependency("mail")],
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Resolves,
    });

    let mut structure = Structure::new();
    conflict(&mut structure);
    let (background, structure) = structure.repository();
    let mut request = vec![dependency("web"), dependency("mail")];
    request.extend(background_request(&background));
    cases.push(Case {
        name: "backtrack-world",
        what: "the web/mail conflict requested beside 200 random names",
        background,
        structure,
        request,
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Resolves,
    });

    let mut structure = Structure::new();
    const LINKS: usize = 4_000;
    for link in 0..LINKS {
        let name = format!("link{link:04}");
        if link + 1 < LINKS {
            let next = format!("link{:04}", link + 1);
            structure.add(&name, "1.0", &next, "");
            structure.add(&name, "2.0", &format!("{next}>=2"), "");
        } else {
            structure.add(&name, "1.0", "", "");
            structure.add(&name, "2.0", "", "");
        }
    }
    let (background, structure) = structure.repository();
    cases.push(Case {
        name: "chain",
        what: "a chain 4,000 links deep, each link in two versions",
        background,
        structure,
        request: vec![dependency("link0000")],
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Resolves,
    });

    let mut structure = Structure::new();
    for release in ["1.0", "2.0", "3.0"] {
        structure.add("base", release, "", "");
    }
    structure.add("glue", "1.0", "base<2", "");
    structure.add("app", "1.0", "shell,base>=2", "");
    const PROVIDERS: usize = 600;
    for provider in 0..PROVIDERS {
        let name = format!("shellimpl{provider:03}");
        let need = match provider % 3 {
            _ if provider + 1 == PROVIDERS => "base>=2",
            0 => "base<2",
            1 => "libgone",
            _ => "glue",
        };
        for release in ["1.0", "2.0"] {
            structure.add(&name, release, need, "shell");
        }
    }
    let (background, structure) = structure.repository();
    cases.push(Case {
        name: "providers",
        what: "600 providers of shell in two versions, only the last one usable",
        background,
        structure,
        request: vec![dependency("app")],
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Resolves,
    });

    let mut structure = Structure::new();
    for release in ["1.0", "2.0"] {
        structure.add("netd", release, "", "");
    }
    structure.add("router", "1.0", "dns-server,netd", "");
    const DNS: usize = 300;
    for provider in 0..DNS {
        let name = format!("dnsd{provider:03}");
        let library = format!("{name}-lib");
        // Higher priorities first; all but the last-tried conflict with netd, one
        // level below the provider, out of the lookahead's sight.
        let priority = format!("{}", DNS - provider);
        structure.add_full(&name, "1.0", &library, "dns-server", &priority);
        let conflict = if provider + 1 == DNS { "" } else { "!netd" };
        structure.add(&library, "1.0", conflict, "");
    }
    let (background, structure) = structure.repository();
    let mut request = vec![dependency("router")];
    request.extend(background_request(&background));
    cases.push(Case {
        name: "conflicts-world",
        what: "300 providers by priority, all but one conflicting, beside 200 names",
        background,
        structure,
        request,
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Resolves,
    });

    let mut structure = Structure::new();
    late_conflict(&mut structure);
    const TOOLS: usize = 12;
    for tool in 0..TOOLS {
        for release in ["1.0", "2.0"] {
            structure.add(&format!("tool{tool:02}"), release, "", "");
        }
    }
    let (background, structure) = structure.repository();
    let mut request: Vec<Dependency> = (0..TOOLS)
        .map(|tool| dependency(&format!("tool{tool:02}")))
        .collect();
    request.push(dependency("broken"));
    request.push(dependency("base>=2"));
    cases.push(Case {
        name: "late-failure",
        what: "12 two-version requests, then a conflict two levels below broken",
        background,
        structure,
        request,
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Fails,
    });

    let mut structure = Structure::new();
    late_conflict(&mut structure);
    let (background, structure) = structure.repository();
    let mut request = background_request(&background);
    request.push(dependency("broken"));
    request.push(dependency("base>=2"));
    cases.push(Case {
        name: "late-failure-world",
        what: "the same conflict beside 200 random names, found past their choices",
        background,
        structure,
        request,
        mode: Mode::Upgrade,
        closure_installed: false,
        expect: Expect::Fails,
    });
    cases
}

/// The CPU time this thread has used so far. The machine may be shared, and wall
/// time would count other processes' turns on the processor as the solver's.
fn cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given, which lives
    // for the whole call.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(result, 0, "the thread's CPU clock cannot be read");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The median and the worst of some runs.
struct Figures {
    median: Duration,
    worst: Duration,
}

impl Figures {
    fn of(mut samples: Vec<Duration>) -> Figures {
        samples.sort();
        Figures {
            median: samples[samples.len() / 2],
            worst: samples[samples.len() - 1],
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2}/{:.2}",
            milliseconds(self.median),
            milliseconds(self.worst)
        )
    }
}

/// How one solve ended, in a few words.
fn outcome(result: &Result<Vec<Chosen<'_>>, SolveError>) -> String {
    match result {
        Ok(entries) => format!("resolved {} packages", entries.len()),
        Err(SolveError::TooComplex { steps }) => format!("too complex after {steps} steps"),
        Err(SolveError::NothingProvides { .. }) => "failed: nothing provides".into(),
        Err(SolveError::NoMatchingVersion { .. }) => "failed: no matching version".into(),
        Err(SolveError::Conflict { .. }) => "failed: conflict".into(),
        Err(SolveError::Conflicts { .. }) => "failed: conflicts".into(),
        Err(SolveError::SameName { .. }) => "failed: same name".into(),
        Err(SolveError::OnlyTagged { .. }) => "failed: only tagged".into(),
        Err(SolveError::UnknownTag { .. }) => "failed: unknown tag".into(),
    }
}

/// The steps a solve takes: the smallest step limit under which it does not give
/// up. The solver does not report its steps, and a search is deterministic, so a
/// binary search over the limit finds them.
fn steps(
    repository: &IndexView<'_>,
    request: &[Dependency],
    installed: &[PackageId],
    mode: Mode,
) -> usize {
    let gives_up = |limit: usize| {
        matches!(
            measured_pool(repository)
                .with_step_limit(limit)
                .solve(request, installed, mode),
            Err(SolveError::TooComplex { .. })
        )
    };
    if gives_up(DEFAULT_STEP_LIMIT) {
        return DEFAULT_STEP_LIMIT;
    }
    // The search gives up under `low` steps and finishes within `high`.
    let (mut low, mut high) = (0, DEFAULT_STEP_LIMIT);
    while low + 1 < high {
        let middle = (low + high) / 2;
        if gives_up(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// What one case measured, kept for the summary at the end.
struct Measured {
    name: &'static str,
    index_bytes: usize,
    parse: Figures,
    total: Figures,
    met: bool,
}

/// The widths of the table's columns, shared by its heading and its rows.
const CASE_WIDTH: usize = 18;
const WHAT_WIDTH: usize = 70;
const FIGURES_WIDTH: usize = 13;
const OUTCOME_WIDTH: usize = 30;

fn heading() {
    println!(
        "{:<CASE_WIDTH$} {:<WHAT_WIDTH$} {:>FIGURES_WIDTH$} {:>FIGURES_WIDTH$} {:>FIGURES_WIDTH$} \
         {:>6}  {:<OUTCOME_WIDTH$} verdict",
        "case", "what it does", "parse ms", "pool ms", "solve ms", "steps", "outcome",
    );
}

/// The index parse that is timed, in a frame of its own for profilers: the parse
/// pkg does, which borrows from the text.
#[inline(never)]
fn measured_parse(text: &str) -> Result<IndexView<'_>, index::IndexError> {
    index::parse_view(text)
}

/// The pool build that is timed, in a frame of its own for profilers, like
/// [`measured_solve`].
#[inline(never)]
fn measured_pool<'a>(repository: &'a IndexView<'a>) -> Pool<'a> {
    Pool::with_sources(&[Source::view(repository, None)])
}

/// The solve that is timed, in a frame of its own so that a profiler can be told
/// to look at it alone: `valgrind --tool=callgrind --toggle-collect='*measured_solve*'`.
#[inline(never)]
fn measured_solve<'a>(
    pool: &Pool<'a>,
    case: &Case,
    installed: &[PackageId],
) -> Result<Vec<Chosen<'a>>, SolveError> {
    pool.solve(&case.request, installed, case.mode)
}

fn run(case: &Case, options: &Options) -> Measured {
    let generated = Index {
        arch: "aarch64".into(),
        serial: 1_732_300_000,
        expires: 1_735_000_000,
        packages: case
            .background
            .iter()
            .chain(&case.structure)
            .cloned()
            .collect(),
        systems: Vec::new(),
    };
    let text = generated.write();
    let mut parse_times = Vec::new();
    let mut parsed = None;
    for _ in 0..options.parse_runs {
        let started = cpu_time();
        let view = measured_parse(&text);
        parse_times.push(cpu_time() - started);
        parsed = Some(view);
    }
    let repository = match parsed {
        Some(Ok(view)) => view,
        Some(Err(error)) => panic!("{}: generated index does not parse: {error}", case.name),
        None => unreachable!("parsed at least once"),
    };
    assert_eq!(repository.packages().len(), PACKAGES);
    assert_eq!(
        repository.to_index().write(),
        text,
        "index does not round-trip"
    );

    let installed: Vec<PackageId> = if case.closure_installed {
        match measured_pool(&repository).solve(&case.request, &[], Mode::Upgrade) {
            Ok(entries) => entries.iter().map(|entry| entry.id()).collect(),
            Err(error) => panic!(
                "{}: the closure to install does not resolve: {error}",
                case.name
            ),
        }
    } else {
        Vec::new()
    };

    let mut pool_times = Vec::new();
    let mut solve_times = Vec::new();
    let mut total_times = Vec::new();
    let mut ended = String::new();
    let mut resolved = false;
    for _ in 0..options.runs {
        let started = cpu_time();
        let pool = measured_pool(&repository);
        let built = cpu_time() - started;
        let started = cpu_time();
        let result = measured_solve(&pool, case, &installed);
        let solved = cpu_time() - started;
        pool_times.push(built);
        solve_times.push(solved);
        total_times.push(built + solved);
        ended = outcome(&result);
        resolved = result.is_ok();
    }
    let steps = if options.count_steps {
        steps(&repository, &case.request, &installed, case.mode).to_string()
    } else {
        "-".into()
    };
    let total = Figures::of(total_times);
    let fast = milliseconds(total.median) <= GOAL_MS;
    let expected = resolved == (case.expect == Expect::Resolves);
    let met = fast && expected;
    let mut verdict = String::from(if met { "met: " } else { "MISSED: " });
    if !expected {
        let _ = write!(
            verdict,
            "{} (expected it to {}), ",
            if resolved { "resolved" } else { "gave up" },
            match case.expect {
                Expect::Resolves => "resolve",
                Expect::Fails => "fail",
            }
        );
    }
    let _ = write!(
        verdict,
        "{:.2} ms {} {GOAL_MS} ms",
        milliseconds(total.median),
        if fast { "<=" } else { ">" },
    );
    if milliseconds(total.worst) > GOAL_MS {
        let _ = write!(verdict, " (worst run {:.2} ms)", milliseconds(total.worst));
    }
    let parse = Figures::of(parse_times);
    println!(
        "{:<CASE_WIDTH$} {:<WHAT_WIDTH$} {:>FIGURES_WIDTH$} {:>FIGURES_WIDTH$} {:>FIGURES_WIDTH$} \
         {steps:>6}  {ended:<OUTCOME_WIDTH$} {verdict}",
        case.name,
        case.what,
        parse.to_string(),
        Figures::of(pool_times).to_string(),
        Figures::of(solve_times).to_string(),
    );
    Measured {
        name: case.name,
        index_bytes: text.len(),
        parse,
        total,
        met,
    }
}

/// About how many packages the store of the `pkg add` measurement holds, a router's
/// worth: random names of the background whose closures are small, until their
/// closure has this many.
const INSTALLED: usize = 50;
/// The goal for all of one `pkg add`'s work before it downloads (DESIGN §8).
const ADD_GOAL_MS: f64 = 20.0;

/// What one `pkg add` did, by step.
struct AddTimes {
    verify: Duration,
    parse: Duration,
    pool: Duration,
    solve: Duration,
    plan: Duration,
}

/// One `pkg add NAME` against the 10,000-package repository, step by step as
/// `pkg add` takes them (pkg/src/install.rs): verify the cached index's signature
/// (minisign, prehashed, as `pkg repo index` signs), parse it as a view and the
/// current generation, build the pool of the installed packages and the
/// repository, solve the world plus the new name, and plan: the new generation's
/// packages as owned entries, what is added and removed, and the generation's text.
#[inline(never)]
fn measured_add(
    text: &str,
    signature: &str,
    keys: &[minisign::PublicKey],
    generation_text: &str,
    request: &Dependency,
) -> (AddTimes, usize) {
    let started = cpu_time();
    minisign::verify(keys, text.as_bytes(), signature).expect("the signature verifies");
    let verified = cpu_time();
    let view = index::parse_view(text).expect("the index parses");
    let current = Generation::parse(generation_text).expect("the generation parses");
    let parsed = cpu_time();
    let installed_index = Index {
        arch: view.arch.into(),
        serial: 0,
        expires: 0,
        packages: current.packages.clone(),
        systems: Vec::new(),
    };
    let pool = Pool::with_sources(&[
        Source::index(&installed_index, None),
        Source::view(&view, None),
    ]);
    let pooled = cpu_time();
    let mut world = current.world.clone();
    world.push(request.clone());
    let installed: Vec<PackageId> = current.packages.iter().map(Entry::id).collect();
    let closure = pool
        .solve(&world, &installed, Mode::Keep)
        .expect("the request resolves");
    let solved = cpu_time();
    let packages: Vec<Entry> = closure.iter().map(Chosen::to_entry).collect();
    let mut before: Vec<String> = current
        .packages
        .iter()
        .map(|e| e.id().to_string())
        .collect();
    let mut after: Vec<String> = packages.iter().map(|e| e.id().to_string()).collect();
    before.sort();
    after.sort();
    let added = after
        .iter()
        .filter(|id| before.binary_search(id).is_err())
        .count();
    let next = Generation {
        number: current.number + 1,
        parent: Some(current.number),
        world,
        preferences: current.preferences.clone(),
        packages,
    };
    let written = next.write();
    let planned = cpu_time();
    assert!(added > 0 && !written.is_empty());
    (
        AddTimes {
            verify: verified - started,
            parse: parsed - verified,
            pool: pooled - parsed,
            solve: solved - pooled,
            plan: planned - solved,
        },
        added,
    )
}

/// Measures [`measured_add`] and prints its figures; returns whether the goal was met.
fn add_one(options: &Options) -> bool {
    let background = background(PACKAGES);
    let repository = Index {
        arch: "aarch64".into(),
        serial: 1_732_300_000,
        expires: 1_735_000_000,
        packages: background.clone(),
        systems: Vec::new(),
    };
    let text = repository.write();
    let pair = minisign::KeyPair::from_seed([7; 32], [0x5a; 8]).expect("a key from a seed");
    let signature = minisign::sign(
        &pair.secret,
        text.as_bytes(),
        "timestamp:1732300000\tfile:index\tserial:1732300000",
        "signature from the solver bench",
        true,
    )
    .expect("the index signs");
    let keys = [pair.public];
    // The store: the closure of random names with small closures, as a generation
    // file, and a name with a small closure that is not installed yet.
    let view = index::parse_view(&text).expect("the index parses");
    let pool = Pool::with_sources(&[Source::view(&view, None)]);
    let closure_of = |world: &[Dependency]| {
        pool.solve(world, &[], Mode::Upgrade)
            .expect("the world resolves")
    };
    let small: Vec<Dependency> = background_request(&background)
        .into_iter()
        .filter(|name| closure_of(std::slice::from_ref(name)).len() <= 8)
        .collect();
    let mut world: Vec<Dependency> = Vec::new();
    let mut names = small.iter();
    while closure_of(&world).len() < INSTALLED {
        world.push(names.next().expect("enough small closures").clone());
    }
    let closure = closure_of(&world);
    let current = Generation {
        number: 7,
        parent: Some(6),
        world,
        preferences: Vec::new(),
        packages: closure.iter().map(Chosen::to_entry).collect(),
    };
    let generation_text = current.write();
    let request = names
        .find(|name| !current.packages.iter().any(|entry| entry.name == name.name))
        .expect("a name not installed")
        .clone();
    let mut runs = Vec::new();
    let mut added = 0;
    for _ in 0..options.runs {
        let (times, count) = measured_add(&text, &signature, &keys, &generation_text, &request);
        runs.push(times);
        added = count;
    }
    let figures = |step: fn(&AddTimes) -> Duration| Figures::of(runs.iter().map(step).collect());
    let total = figures(|t| t.verify + t.parse + t.pool + t.solve + t.plan);
    let met = milliseconds(total.median) <= ADD_GOAL_MS;
    println!(
        "pkg add {} against the {PACKAGES}-package repository ({} KiB index) with {} packages \
         installed, {added} added: ms of CPU, median/worst of {} runs",
        request,
        text.len() / 1024,
        current.packages.len(),
        options.runs,
    );
    println!("  verify signature   {}", figures(|t| t.verify));
    println!("  parse (view)       {}", figures(|t| t.parse));
    println!("  pool               {}", figures(|t| t.pool));
    println!("  solve              {}", figures(|t| t.solve));
    println!("  plan               {}", figures(|t| t.plan));
    println!(
        "  total              {}   {}: {:.2} ms {} {ADD_GOAL_MS} ms",
        total,
        if met { "met" } else { "MISSED" },
        milliseconds(total.median),
        if met { "<=" } else { ">" },
    );
    met
}

/// Which cargo profile built this bench, from the directory cargo put it in:
/// `target/PROFILE/deps/`, where the `bench` profile builds into `release`.
fn profile() -> String {
    let executable = std::env::current_exe().ok();
    let directory = executable
        .as_deref()
        .and_then(|path| path.parent()?.parent()?.file_name()?.to_str());
    match directory {
        Some("bench-device") => {
            "bench-device (the device's code generation: opt-level \"z\", LTO, one codegen unit)"
                .into()
        }
        Some("release") => "bench (opt-level 3), not the device's code generation; \
             `cargo xtask bench solver` builds with bench-device"
            .into(),
        Some(other) => format!("{other}, not the device's code generation"),
        None => "unknown".into(),
    }
}

/// What the command line asks for.
struct Options {
    /// Case names to run; all when empty.
    only: Vec<String>,
    parse_runs: usize,
    runs: usize,
    count_steps: bool,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            only: Vec::new(),
            parse_runs: PARSE_RUNS,
            runs: RUNS,
            count_steps: true,
        };
        // cargo passes `--bench` to every bench target; other flags are ours.
        for argument in std::env::args().skip(1) {
            match argument.as_str() {
                "--quick" => {
                    options.parse_runs = 1;
                    options.runs = 1;
                    options.count_steps = false;
                }
                flag if flag.starts_with('-') => {}
                name => options.only.push(name.into()),
            }
        }
        options
    }
}

fn main() {
    let options = Options::parse();
    println!("profile: {}", profile());
    println!(
        "each case: {PACKAGES} packages; times in ms of the thread's CPU clock, median/worst of \
         {} parses and {} solves; verdict: the median of pool build + solve <= {GOAL_MS} ms \
         and the expected outcome",
        options.parse_runs, options.runs,
    );
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|case| options.only.is_empty() || options.only.iter().any(|name| name == case.name))
        .collect();
    if cases.is_empty() && !options.only.iter().any(|name| name == "add") {
        eprintln!("solver bench: no case named {}", options.only.join(", "));
        std::process::exit(2);
    }
    let measured: Vec<Measured> = if cases.is_empty() {
        Vec::new()
    } else {
        heading();
        cases.iter().map(|case| run(case, &options)).collect()
    };
    // The parse is timed apart from the solve goal (its own goal is the `pkg add`
    // one below); its own line names the repository it was measured on.
    if let Some(first) = measured.first() {
        println!(
            "index parse (a view of the text, as pkg parses): {PACKAGES} packages, {} KiB ({}): \
             median {:.2} ms, worst {:.2} ms",
            first.index_bytes / 1024,
            first.name,
            milliseconds(first.parse.median),
            milliseconds(first.parse.worst),
        );
    }
    if let Some(worst) = measured.iter().max_by_key(|case| case.total.median) {
        println!(
            "worst case (the slowest): {}, pool build + solve median {:.2} ms, worst run {:.2} \
             ms (goal {GOAL_MS} ms)",
            worst.name,
            milliseconds(worst.total.median),
            milliseconds(worst.total.worst),
        );
    }
    let mut missed: Vec<&str> = measured
        .iter()
        .filter(|case| !case.met)
        .map(|case| case.name)
        .collect();
    if (options.only.is_empty() || options.only.iter().any(|name| name == "add"))
        && !add_one(&options)
    {
        missed.push("add");
    }
    if missed.is_empty() {
        println!("solver: every case met the goal");
    } else {
        println!("solver: missed the goal: {}", missed.join(", "));
        std::process::exit(1);
    }
}
