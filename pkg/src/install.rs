//! Changing what is installed: `add`, `del` and `upgrade`. Each resolves a new world,
//! fetches what is missing, and switches to a new generation atomically.

use std::fs;
use std::io::Read;
use std::path::Path;

use amber_core::generation::Generation;
use amber_core::hash::{to_hex, Sha256Check};
use amber_core::index::{Entry, Index};
use amber_core::solve::{Mode, Pool};
use amber_core::version::{Dependency, PackageId};

use crate::context::{Context, Report};
use crate::download::{self, Job};
use crate::durable;
use crate::error::{Context as _, Error};
use crate::json::Json;
use crate::repo::{self, Accepted};
use crate::store::Store;

/// `pkg add NAME[CONSTRAINT]... | ./file.squashfs...`
pub fn add(context: &Context, packages: &[String], allow_untrusted: bool) -> Result<Report, Error> {
    if packages.is_empty() {
        return Err(Error::usage("add: name at least one package"));
    }
    let (files, names): (Vec<&String>, Vec<&String>) =
        packages.iter().partition(|p| is_local_image(p));
    let mut requests = Vec::new();
    for name in names {
        requests.push(Dependency::parse(name).map_err(|e| Error::usage(format!("{name}: {e}")))?);
    }
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let current = store.current()?;
    let indexes = if store.repositories()?.is_empty() && !files.is_empty() {
        Vec::new()
    } else {
        repo::load_indexes(&store, &context.arch, &context.clock)?
    };
    // Local images become entries of their own little index, after their hash matched
    // a trusted index (or --allow-untrusted said to take them as they are).
    let mut local = Vec::new();
    for file in files {
        let entry = import_local(
            &store,
            &indexes,
            Path::new(file),
            &context.arch,
            allow_untrusted,
        )?;
        requests.push(
            Dependency::parse(&format!("{}={}", entry.name, entry.version))
                .map_err(|e| Error::new(e.to_string()))?,
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
                        .filter(|other| other.deps.iter().any(|d| entry.has_or_provides(&d.name)))
                        .map(|other| other.id().to_string())
                        .collect();
                    format!(
                        "{name}: not requested by name; needed by {}",
                        needed_by.join(", ")
                    )
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
    let indexes = repo::load_indexes(&store, &context.arch, &context.clock)?;
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

/// Solve `world`, fetch what is missing, and switch to the new generation.
fn change(
    context: &Context,
    store: &Store,
    current: &Generation,
    world: Vec<Dependency>,
    indexes: &[Accepted],
    local: Option<&Index>,
    mode: Mode,
) -> Result<Report, Error> {
    // Candidates: local images first, then what is installed (its images are here and
    // verified), then the repositories in their configured order.
    let installed_index = Index {
        arch: context.arch.clone(),
        serial: 0,
        expires: 0,
        packages: current.packages.clone(),
        systems: Vec::new(),
    };
    let mut sources: Vec<&Index> = Vec::new();
    sources.extend(local);
    sources.push(&installed_index);
    sources.extend(indexes.iter().map(|a| &a.index));
    let installed: Vec<PackageId> = current.packages.iter().map(Entry::id).collect();
    let pool = Pool::new(&sources);
    let closure = pool
        .solve(&world, &installed, mode)
        .map_err(|e| Error::new(e.to_string()))?;

    // Fetch the images not already in the store, from the repository each came from.
    let mut jobs = Vec::new();
    for entry in &closure {
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
                return Err(Error::new(format!(
                    "{}: the store holds other bytes for this version than the index lists \
                     (was it rebuilt?); pkg gc can remove the old image once no kept \
                     generation uses it",
                    entry.id()
                )));
            }
            continue;
        }
        let repo = indexes
            .iter()
            .find(|a| a.index.packages.iter().any(|e| std::ptr::eq(e, *entry)))
            .ok_or_else(|| {
                Error::new(format!(
                    "{}: image missing and no repository has it",
                    entry.id()
                ))
            })?;
        jobs.push(Job {
            entry,
            locations: repo::locations(store, &repo.repo)?,
        });
    }
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

    let number = store
        .generation_numbers()?
        .last()
        .copied()
        .unwrap_or(0)
        .max(current.number)
        + 1;
    let next = Generation {
        number,
        parent: (current.number > 0).then_some(current.number),
        world,
        packages: closure.iter().map(|e| (*e).clone()).collect(),
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
    if added.is_empty() && removed.is_empty() && next.world == current.world {
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

/// Whether an `add` argument names a local image rather than a package.
fn is_local_image(argument: &str) -> bool {
    argument.ends_with(".squashfs") && argument.contains('/')
}

/// Copy a local image into the store. Its hash must match a trusted index entry before
/// the image is opened at all; with `allow_untrusted`, its own meta is believed instead.
fn import_local(
    store: &Store,
    indexes: &[Accepted],
    path: &Path,
    arch: &str,
    allow_untrusted: bool,
) -> Result<Entry, Error> {
    let bytes_hash = crate::image::sha256(path)?;
    let size = fs::metadata(path).context(path.display())?.len();
    let trusted = indexes
        .iter()
        .flat_map(|a| a.index.packages.iter())
        .find(|e| e.sha256 == bytes_hash && e.size == size)
        .cloned();
    let entry = match trusted {
        Some(entry) => entry,
        None if allow_untrusted => {
            let meta = crate::image::read_meta(path)?;
            Entry {
                name: meta.name,
                version: meta.version,
                size,
                sha256: bytes_hash,
                deps: meta.deps,
                provides: meta.provides,
            }
        }
        None => {
            return Err(Error::new(format!(
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
                .map_err(|e| Error::new(e.to_string()))?;
            std::io::Write::write_all(&mut output, &buffer[..n]).context(temp.display())?;
        }
        check.finish().map_err(|e| Error::new(e.to_string()))?;
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
