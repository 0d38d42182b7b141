//! Solver benchmark (DESIGN §8): resolve a 200-package request in a synthetic 10,000-package repository.
//!
//! The repository is generated from a fixed seed, so every run measures the same
//! problem: about 7,000 names, a third of them with two to four versions; each
//! package has 0 to 8 dependencies, most of them on a core of 150 popular
//! libraries (the lower the library's number, the more popular), the rest on
//! other packages; a quarter of the dependencies carry a version constraint
//! (`>=`, `<` or `~`); 40 virtual names are each provided by a few packages.
//! The repository goes through `Index::write` and `index::parse` first, and
//! those are timed too. Run with `cargo xtask bench solver`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use amber_core::index::{self, Entry, Index};
use amber_core::solve::{Mode, Pool};
use amber_core::version::{Constraint, Dependency, Op, Version};

const PACKAGES: usize = 10_000;
const CORE: usize = 150;
const VIRTUALS: usize = 40;
const REQUEST: usize = 200;
const RUNS: usize = 15;
const GOAL_MS: f64 = 50.0;

/// A xorshift64* generator: small, fast, and the same on every machine.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
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
}

fn version(text: &str) -> Version {
    Version::parse(text).expect("generated versions are valid")
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

fn generate() -> Index {
    let mut random = Random(0x00c0_ffee_d00d_f00d);
    // Names and versions first, so dependencies can point at real versions.
    let mut names: Vec<Name> = Vec::new();
    let mut count = 0;
    while count < PACKAGES {
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
        let versions = wanted.min(PACKAGES - count);
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
    let mut packages = Vec::with_capacity(PACKAGES);
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
                    }
                };
                if !deps.iter().any(|seen| seen.name == dependency.name) {
                    deps.push(dependency);
                }
            }
            let mut provides = Vec::new();
            if number >= CORE && random.chance(2) {
                provides.push(virtuals[random.below(VIRTUALS)].clone());
            }
            let mut sha256 = [0u8; 32];
            for chunk in sha256.chunks_mut(8) {
                chunk.copy_from_slice(&random.next().to_le_bytes());
            }
            packages.push(Entry {
                name: name.name.clone(),
                version: version(&name.text(which)),
                size: 4096 + random.below(4 << 20) as u64,
                sha256,
                deps,
                provides,
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
            if !entry.provides.contains(virtual_name) {
                entry.provides.push(virtual_name.clone());
            }
        }
    }
    Index {
        arch: "aarch64".into(),
        serial: 1_732_300_000,
        expires: 1_735_000_000,
        packages,
    }
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let generated = generate();

    let started = Instant::now();
    let text = generated.write();
    let write_time = started.elapsed();

    let mut parse_times = Vec::new();
    let mut parsed = None;
    for _ in 0..5 {
        let started = Instant::now();
        let index = index::parse(&text);
        parse_times.push(started.elapsed());
        parsed = Some(index);
    }
    let repository = match parsed {
        Some(Ok(index)) => index,
        Some(Err(error)) => panic!("generated index does not parse: {error}"),
        None => unreachable!("parsed at least once"),
    };
    assert_eq!(repository.packages.len(), PACKAGES);
    assert_eq!(repository.write(), text, "index does not round-trip");

    // The request: 200 distinct names drawn from the whole repository.
    let mut random = Random(0x5eed_0000_0000_0200);
    let mut request: Vec<Dependency> = Vec::new();
    while request.len() < REQUEST {
        let entry = &repository.packages[random.below(PACKAGES)];
        if !request.iter().any(|seen| seen.name == entry.name) {
            request.push(Dependency::any(&entry.name));
        }
    }

    let mut pool_times = Vec::new();
    let mut solve_times = Vec::new();
    let mut closure = 0;
    let mut summary = String::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let pool = Pool::new(&[&repository]);
        pool_times.push(started.elapsed());
        let started = Instant::now();
        let result = pool.solve(&request, &[], Mode::Upgrade);
        solve_times.push(started.elapsed());
        match result {
            Ok(entries) => {
                closure = entries.len();
                summary.clear();
                for entry in entries.iter().take(3) {
                    let _ = write!(summary, "{} ", entry.id());
                }
            }
            Err(error) => panic!("synthetic request does not resolve: {error}"),
        }
    }

    // Keep mode with the whole closure installed: the common `pkg add` case.
    let pool = Pool::new(&[&repository]);
    let installed: Vec<_> = match pool.solve(&request, &[], Mode::Upgrade) {
        Ok(entries) => entries.iter().map(|entry| entry.id()).collect(),
        Err(error) => panic!("synthetic request does not resolve: {error}"),
    };
    let mut keep_times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let result = pool.solve(&request, &installed, Mode::Keep);
        keep_times.push(started.elapsed());
        assert_eq!(result.map(|entries| entries.len()).ok(), Some(closure));
    }

    let solve = milliseconds(median(solve_times.clone()));
    let pool_build = milliseconds(median(pool_times.clone()));
    let total: Vec<Duration> = pool_times
        .iter()
        .zip(&solve_times)
        .map(|(pool, solve)| *pool + *solve)
        .collect();
    let total = milliseconds(median(total));
    println!(
        "index: {PACKAGES} packages, {} KiB; write {:.2} ms, parse median {:.2} ms",
        text.len() / 1024,
        milliseconds(write_time),
        milliseconds(median(parse_times)),
    );
    println!(
        "pool: build median {pool_build:.2} ms ({} distinct ids)",
        pool.len()
    );
    println!(
        "solve: {PACKAGES} packages, request {REQUEST}, closure {closure}, median {solve:.2} ms \
         (goal <= {GOAL_MS} ms); with pool build {total:.2} ms; keep mode with closure installed {:.2} ms",
        milliseconds(median(keep_times)),
    );
    println!("closure starts with: {}...", summary.trim_end());
    if total > GOAL_MS {
        println!("solve: over the goal of {GOAL_MS} ms");
        std::process::exit(1);
    }
}
