//! Changing what is installed: `add`, `del` and `upgrade`. Each resolves a new world,
//! fetches what is missing, and switches to a new generation atomically. Also `prefer`,
//! which changes only who keeps a contested exchange-directory path, and so is a new
//! generation too (switched to, and rolled back, like any other).

#![forbid(unsafe_code)]

use std::fs;
use std::io::Read;
use std::path::Path;

use amber_core::generation::{Generation, Preference};
use amber_core::hash::{to_hex, Sha256Check};
use amber_core::index::{Entry, Index};
use amber_core::solve::{Mode, Pool, Source};
use amber_core::version::{Dependency, PackageId};

use crate::context::{Context, Report};
use crate::download::{self, Job};
use crate::durable;
use crate::error::{Context as _, Error};
use crate::json::Json;
use crate::repo::{self, Accepted};
use crate::store::Store;

/// What one argument of `add` (or `run -p`) asks for.
pub enum Wanted {
    /// A request: `busybox`, `busybox>=1.36`, `vim@edge`, `!dnsmasq`.
    Request(Dependency),
    /// A local image: an argument naming an existing file, or holding a `/`.
    Local(String),
}

impl Wanted {
    /// Reads an argument: a path to an existing file or anything with a `/` is a local
    /// image, whatever its extension; the rest must be a request.
    pub fn parse(argument: &str) -> Result<Wanted, Error> {
        if argument.contains('/') || Path::new(argument).is_file() {
            return Ok(Wanted::Local(argument.to_owned()));
        }
        Dependency::parse_request(argument)
            .map(Wanted::Request)
            .map_err(|error| {
                Error::usage_args(format_args!(
                    "{argument}: {error}; a package is NAME[@TAG][OP VERSION] (busybox, \
                     busybox>=1.36, vim@edge, !dnsmasq), a local image an existing file or a \
                     path with a / (./busybox.squashfs)"
                ))
            })
    }
}

/// `pkg add NAME[CONSTRAINT]... | ./file.squashfs...`
pub fn add(context: &Context, packages: &[String], allow_untrusted: bool) -> Result<Report, Error> {
    if packages.is_empty() {
        return Err(Error::usage("add: name at least one package"));
    }
    let mut requests = Vec::new();
    let mut files = Vec::new();
    for argument in packages {
        match Wanted::parse(argument)? {
            Wanted::Request(request) => requests.push(request),
            Wanted::Local(file) => files.push(file),
        }
    }
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let current = store.current()?;
    let cached = if store.repositories()?.is_empty() && !files.is_empty() {
        Vec::new()
    } else {
        repo::read_indexes(&store)?
    };
    let indexes = repo::accept(&store, &cached, &context.arch, &context.clock)?;
    // Local images become entries of their own little index, after their hash matched
    // a trusted index (or --allow-untrusted said to take them as they are).
    let mut local = Vec::new();
    for file in &files {
        let entry = import_local(
            &store,
            &indexes,
            Path::new(file),
            &context.arch,
            allow_untrusted,
        )?;
        requests.push(
            Dependency::parse(&format!("{}={}", entry.name, entry.version))
                .map_err(|e| Error::from_args(format_args!("{e}")))?,
        );
        local.push(entry);
    }
    // The new world: the old one, with these requests replacing any for the same names.
    let mut world: Vec<Dependency> = current
        .world
        .iter()
        .filter(|old| !requests.iter().any(|new| new.name == old.name))
        .cloned()
        .collect();
    world.extend(requests.iter().cloned());
    let already: Vec<String> = requests
        .iter()
        .filter_map(|request| {
            if request.conflict {
                return None;
            }
            let entry = current.packages.iter().find(|e| request.matches(&e.id()))?;
            current
                .world
                .contains(request)
                .then(|| entry.id().to_string())
        })
        .collect();
    if already.len() == requests.len() {
        let text = already
            .iter()
            .map(|id| format!("{id} is already installed\n"))
            .collect();
        let json = Json::object([
            ("ok", Json::Bool(true)),
            ("generation", Json::Number(current.number)),
            ("changed", Json::Bool(false)),
            ("already_installed", Json::strings(already)),
        ]);
        return Ok(Report::new(text, json));
    }
    let local_index = Index {
        arch: context.arch.clone(),
        serial: 0,
        expires: 0,
        packages: local,
        systems: Vec::new(),
    };
    change(
        context,
        &store,
        &current,
        world,
        &indexes,
        Some(&local_index),
        Mode::Keep,
    )
}

/// `pkg del NAME...`: drop names from the world; what nothing else needs goes too.
pub fn del(context: &Context, names: &[String]) -> Result<Report, Error> {
    if names.is_empty() {
        return Err(Error::usage("del: name at least one package"));
    }
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let current = store.current()?;
    for name in names {
        if !current.world.iter().any(|d| &d.name == name) {
            let reason = match current.package(name) {
                Some(entry) => {
                    let needed_by: Vec<String> = current
                        .packages
                        .iter()
                        .filter(|other| other.needs().any(|d| entry.has_or_provides(&d.name)))
                        .map(|other| other.id().to_string())
                        .collect();
                    if needed_by.is_empty() {
                        format!("{name}: not requested by name; it comes with install_if")
                    } else {
                        format!(
                            "{name}: not requested by name; needed by {}",
                            needed_by.join(", ")
                        )
                    }
                }
                None => format!("{name}: not installed"),
            };
            return Err(Error::new(reason));
        }
    }
    let world: Vec<Dependency> = current
        .world
        .iter()
        .filter(|d| !names.contains(&d.name))
        .cloned()
        .collect();
    // Removing never needs a repository: the installed packages are the only candidates.
    change(context, &store, &current, world, &[], None, Mode::Keep)
}

/// `pkg upgrade`: the same world, newest versions.
pub fn upgrade(context: &Context) -> Result<Report, Error> {
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let current = store.current()?;
    let cached = repo::read_indexes(&store)?;
    let indexes = repo::accept(&store, &cached, &context.arch, &context.clock)?;
    let world = current.world.clone();
    change(
        context,
        &store,
        &current,
        world,
        &indexes,
        None,
        Mode::Upgrade,
    )
}

/// The candidates of a solve: local images first, then what is installed (its images
/// are here and verified), then the repositories in their configured order, each
/// under its tag. Returns the sources and, per source, the repository it is.
pub fn sources<'a>(
    local: Option<&'a Index>,
    installed: &'a Index,
    indexes: &'a [Accepted<'a>],
) -> (Vec<Source<'a>>, Vec<Option<usize>>) {
    let mut sources = Vec::new();
    let mut repos = Vec::new();
    if let Some(local) = local {
        sources.push(Source::index(local, None));
        repos.push(None);
    }
    sources.push(Source::index(installed, None));
    repos.push(None);
    for (at, accepted) in indexes.iter().enumerate() {
        sources.push(Source::view(&accepted.index, accepted.tag));
        repos.push(Some(at));
    }
    (sources, repos)
}

/// The images of `closure` the store lacks, as download jobs from the repository each
/// came from; an image the store has must be the bytes its entry names.
pub fn missing_images<'e>(
    store: &Store,
    current: &Generation,
    closure: &'e [(Entry, Option<usize>)],
    indexes: &[Accepted<'_>],
) -> Result<Vec<Job<'e>>, Error> {
    let mut jobs = Vec::new();
    for (entry, repo) in closure {
        let path = store.image_path(entry);
        if path.is_file() {
            // The image was verified, but perhaps against another entry for the same id
            // (a repository that rebuilt a version). Unless the current generation
            // vouches for exactly this entry, make sure these are the bytes it names.
            // A generation read from the store lists its packages sorted by name, so
            // this is a search, not a walk per package (which made adding one package
            // to a store of hundreds quadratic). Were they not sorted, a miss would only
            // cost the hash below.
            let first = current.packages.partition_point(|e| e.name < entry.name);
            let vouched = current.packages[first..]
                .iter()
                .take_while(|e| e.name == entry.name)
                .any(|e| e.version == entry.version && e.sha256 == entry.sha256);
            if !vouched && crate::image::sha256(&path)? != entry.sha256 {
                return Err(Error::from_args(format_args!(
                    "{}: the store holds other bytes for this version than the index lists \
                     (was it rebuilt?); pkg gc can remove the old image once no kept \
                     generation uses it",
                    entry.id()
                )));
            }
            continue;
        }
        let repo = repo.and_then(|at| indexes.get(at)).ok_or_else(|| {
            Error::from_args(format_args!(
                "{}: image missing and no repository has it",
                entry.id()
            ))
        })?;
        jobs.push(Job {
            entry,
            locations: repo::locations(store, repo.repo)?,
        });
    }
    Ok(jobs)
}

/// Solve `world`, fetch what is missing, and switch to the new generation.
fn change(
    context: &Context,
    store: &Store,
    current: &Generation,
    world: Vec<Dependency>,
    indexes: &[Accepted<'_>],
    local: Option<&Index>,
    mode: Mode,
) -> Result<Report, Error> {
    let installed_index = Index {
        arch: context.arch.clone(),
        serial: 0,
        expires: 0,
        packages: current.packages.clone(),
        systems: Vec::new(),
    };
    let (sources, repos) = sources(local, &installed_index, indexes);
    let installed: Vec<PackageId> = current.packages.iter().map(Entry::id).collect();
    let pool = Pool::with_sources(&sources);
    let closure: Vec<(Entry, Option<usize>)> = pool
        .solve(&world, &installed, mode)
        .map_err(|e| Error::from_args(format_args!("{e}")))?
        .iter()
        .map(|chosen| (chosen.to_entry(), repos[chosen.source()]))
        .collect();

    // Fetch the images not already in the store, from the repository each came from.
    let jobs = missing_images(store, current, &closure, indexes)?;
    let fetched =
        match download::fetch_all(&jobs, &store.images_dir(), &context.arch, &context.limits) {
            Ok(fetched) => fetched,
            Err(error) => {
                // Leave the store as it was: the images this run fetched before the failure
                // are verified, but nothing uses them and a small device needs the space.
                for job in &jobs {
                    let _ = durable::remove_durable(&store.image_path(job.entry));
                }
                return Err(error);
            }
        };

    let number = next_number(store, current)?;
    let packages: Vec<Entry> = closure.into_iter().map(|(entry, _)| entry).collect();
    // A preference rides along with its package: gone when the package goes.
    let preferences = current
        .preferences
        .iter()
        .filter(|preference| packages.iter().any(|e| e.name == preference.name))
        .cloned()
        .collect();
    let next = Generation {
        number,
        parent: (current.number > 0).then_some(current.number),
        world,
        preferences,
        packages,
    };
    let before = sorted_ids(&current.packages);
    let after = sorted_ids(&next.packages);
    let added: Vec<&String> = after
        .iter()
        .filter(|id| before.binary_search(id).is_err())
        .collect();
    let removed: Vec<&String> = before
        .iter()
        .filter(|id| after.binary_search(id).is_err())
        .collect();
    if added.is_empty()
        && removed.is_empty()
        && next.world == current.world
        && next.preferences == current.preferences
    {
        let json = Json::object([
            ("ok", Json::Bool(true)),
            ("generation", Json::Number(current.number)),
            ("changed", Json::Bool(false)),
        ]);
        return Ok(Report::new("nothing to do\n".into(), json));
    }
    store.commit(&next)?;
    crate::notify::after_switch(store, number)?;

    let mut text = String::new();
    for id in &added {
        text.push_str(&format!("+ {id}\n"));
    }
    for id in &removed {
        text.push_str(&format!("- {id}\n"));
    }
    text.push_str(&format!(
        "generation {number}: {} packages, {} fetched\n",
        next.packages.len(),
        download::human(fetched)
    ));
    let json = Json::object([
        ("ok", Json::Bool(true)),
        ("generation", Json::Number(number)),
        ("changed", Json::Bool(true)),
        ("added", Json::strings(added.iter().map(|s| s.as_str()))),
        ("removed", Json::strings(removed.iter().map(|s| s.as_str()))),
        ("fetched_bytes", Json::Number(fetched)),
    ]);
    Ok(Report::new(text, json))
}

/// The ids of `entries`, sorted and without repeats (a sorted list rather than a set:
/// less code in the device binary).
fn sorted_ids(entries: &[Entry]) -> Vec<String> {
    let mut ids: Vec<String> = entries.iter().map(|e| e.id().to_string()).collect();
    amber_core::sort::sort(&mut ids);
    ids.dedup();
    ids
}

/// Copy a local image into the store. Its hash must match a trusted index entry before
/// the image is opened at all; with `allow_untrusted`, its own meta is believed instead.
fn import_local(
    store: &Store,
    indexes: &[Accepted<'_>],
    path: &Path,
    arch: &str,
    allow_untrusted: bool,
) -> Result<Entry, Error> {
    let metadata = fs::metadata(path).context(path.display())?;
    if !metadata.is_file() {
        return Err(Error::from_args(format_args!(
            "{}: not a file (a local image is a package's .squashfs file)",
            path.display()
        )));
    }
    let bytes_hash = crate::image::sha256(path)?;
    let size = metadata.len();
    let trusted = indexes.iter().find_map(|accepted| {
        let index = &accepted.index;
        index
            .packages()
            .iter()
            .find(|e| e.sha256 == bytes_hash && e.size == size)
            .map(|e| index.entry(e))
    });
    let entry = match trusted {
        Some(entry) => entry,
        None if allow_untrusted => {
            let meta = crate::image::read_meta(path)?;
            Entry::from_meta(&meta, size, bytes_hash)
        }
        None => {
            return Err(Error::from_args(format_args!(
                "{}: no trusted index lists an image with sha256 {}; \
                 use --allow-untrusted to install it anyway",
                path.display(),
                to_hex(&bytes_hash)
            )))
        }
    };
    let target = store.image_path(&entry);
    if target.is_file() {
        return Ok(entry);
    }
    // Copy through the same checks as a download: hash while writing, meta, fsync, rename.
    let temp = durable::temp_path(&target);
    let result = (|| {
        let mut check = Sha256Check::new(entry.sha256, entry.size);
        let mut input = fs::File::open(path).context(path.display())?;
        let mut output = durable::create_new(&temp)?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buffer).context(path.display())?;
            if n == 0 {
                break;
            }
            check
                .update(&buffer[..n])
                .map_err(|e| Error::from_args(format_args!("{e}")))?;
            std::io::Write::write_all(&mut output, &buffer[..n]).context(temp.display())?;
        }
        check
            .finish()
            .map_err(|e| Error::from_args(format_args!("{e}")))?;
        output.sync_all().context(temp.display())?;
        crate::image::accept(&temp, &entry, arch, &mut Default::default())?;
        durable::rename_durable(&temp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(|e| e.context(path.display()))?;
    Ok(entry)
}

/// The number of the next generation: above every kept one and the current one.
fn next_number(store: &Store, current: &Generation) -> Result<u64, Error> {
    let highest = store.generation_numbers()?.last().copied().unwrap_or(0);
    Ok(highest.max(current.number) + 1)
}

/// `pkg prefer NAME PATH`: the installed package NAME keeps PATH (and, for a directory,
/// what it holds there) in the exchange directories, whoever else has it; with
/// `forget`, NAME's choice of PATH is dropped. Either way a new generation.
pub fn prefer(context: &Context, name: &str, path: &str, forget: bool) -> Result<Report, Error> {
    let preference = Preference::new(name, path)
        .map_err(|e| Error::usage_args(format_args!("prefer {name} {path}: {e}")))?;
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let current = store.current()?;
    let mut preferences = current.preferences.clone();
    let text = if forget {
        let before = preferences.len();
        preferences.retain(|p| *p != preference);
        if preferences.len() == before {
            return Err(Error::from_args(format_args!(
                "{}: {name} was not preferred for it",
                preference.path
            )));
        }
        format!("{}: no longer preferred to {name}\n", preference.path)
    } else {
        let Some(entry) = current.package(name) else {
            return Err(Error::from_args(format_args!("{name}: not installed")));
        };
        let archive = crate::image::open(&store.image_path(entry))?;
        let mut cache = amber_core::squashfs::read::Cache::new();
        if archive.lookup_path(&preference.path, &mut cache).is_err() {
            return Err(Error::from_args(format_args!(
                "{}: has no {}",
                entry.id(),
                preference.path
            )));
        }
        if preferences.contains(&preference) {
            let json = Json::object([
                ("ok", Json::Bool(true)),
                ("generation", Json::Number(current.number)),
                ("changed", Json::Bool(false)),
            ]);
            return Ok(Report::new("nothing to do\n".into(), json));
        }
        preferences.retain(|p| p.path != preference.path);
        preferences.push(preference.clone());
        amber_core::sort::sort(&mut preferences);
        format!("{}: preferred to {}\n", preference.path, entry.id())
    };
    let number = next_number(&store, &current)?;
    let next = Generation {
        number,
        parent: (current.number > 0).then_some(current.number),
        world: current.world.clone(),
        preferences,
        packages: current.packages.clone(),
    };
    store.commit(&next)?;
    crate::notify::after_switch(&store, number)?;
    let json = Json::object([
        ("ok", Json::Bool(true)),
        ("generation", Json::Number(number)),
        ("changed", Json::Bool(true)),
        ("path", Json::string(&preference.path)),
        ("package", Json::string(name)),
    ]);
    Ok(Report::new(format!("{text}generation {number}\n"), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_requests_or_local_images() {
        let render = |argument: &str| match Wanted::parse(argument) {
            Ok(Wanted::Request(request)) => format!("request {request}"),
            Ok(Wanted::Local(path)) => format!("local {path}"),
            Err(error) => error.to_string(),
        };
        let table: &[(&str, &str)] = &[
            ("busybox", "request busybox"),
            ("busybox>=1.36", "request busybox>=1.36"),
            ("vim@edge", "request vim@edge"),
            ("!dnsmasq", "request !dnsmasq"),
            ("so:libz.so.1", "request so:libz.so.1"),
            ("./x.sqfs", "local ./x.sqfs"),
            ("/tmp/x.squashfs", "local /tmp/x.squashfs"),
            ("dir/x", "local dir/x"),
            // An existing file, whatever it is called.
            ("Cargo.toml", "local Cargo.toml"),
            (
                "X.sqfs",
                "X.sqfs: dependency has an invalid package name; a package is \
                 NAME[@TAG][OP VERSION] (busybox, busybox>=1.36, vim@edge, !dnsmasq), a local \
                 image an existing file or a path with a / (./busybox.squashfs)",
            ),
            (
                "foo==1",
                "foo==1: dependency has an invalid operator (use = < <= > >= ~); a package \
                 is NAME[@TAG][OP VERSION] (busybox, busybox>=1.36, vim@edge, !dnsmasq), a \
                 local image an existing file or a path with a / (./busybox.squashfs)",
            ),
        ];
        for (argument, expect) in table {
            assert_eq!(render(argument), *expect, "{argument}");
        }
    }
}
