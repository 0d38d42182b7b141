//! Questions about packages: `list`, `info`, `search` and `which`. They read the store
//! and never change it; `which` answers from the images themselves, mounted or not.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use amber_core::hash::to_hex;
use amber_core::index::Entry;
use amber_core::squashfs::read::{Cache, Error as ReadError};

use crate::context::{Context, Report};
use crate::error::Error;
use crate::json::Json;
use crate::repo;
use crate::store::Store;

fn entry_json(entry: &Entry, explicit: Option<bool>) -> Json {
    let mut pairs = vec![
        ("name", Json::string(&entry.name)),
        ("version", Json::string(entry.version.as_str())),
        ("id", Json::string(entry.id().to_string())),
        ("size", Json::Number(entry.size)),
        ("sha256", Json::string(to_hex(&entry.sha256))),
        (
            "deps",
            Json::strings(entry.deps.iter().map(|d| d.to_string())),
        ),
        (
            "provides",
            Json::strings(entry.provides.iter().map(|p| p.to_string())),
        ),
        (
            "provider_priority",
            Json::Number(u64::from(entry.provider_priority)),
        ),
        (
            "install_if",
            Json::strings(entry.install_if.iter().map(|d| d.to_string())),
        ),
        ("description", Json::string(&entry.description)),
    ];
    if let Some(explicit) = explicit {
        pairs.push(("explicit", Json::Bool(explicit)));
    }
    Json::Object(pairs)
}

/// `pkg list`: the current generation's packages.
pub fn list(context: &Context) -> Result<Report, Error> {
    let store = Store::open_reading(&context.root);
    let current = store.current()?;
    let mut text = String::new();
    let mut items = Vec::new();
    for entry in &current.packages {
        let explicit = current.is_explicit(entry);
        let _ = writeln!(
            text,
            "{}{}",
            entry.id(),
            if explicit { "" } else { " (dependency)" }
        );
        items.push(entry_json(entry, Some(explicit)));
    }
    Ok(Report::new(
        text,
        Json::object([
            ("ok", Json::Bool(true)),
            ("generation", Json::Number(current.number)),
            ("packages", Json::Array(items)),
        ]),
    ))
}

/// `pkg info NAME`: the installed package, and what the repositories offer.
pub fn info(context: &Context, name: &str) -> Result<Report, Error> {
    let store = Store::open_reading(&context.root);
    let current = store.current()?;
    let installed = current.package(name);
    // The repositories are a bonus here: without them, the installed package still shows.
    let cached = repo::read_indexes(&store).unwrap_or_default();
    let available: Vec<(Entry, Option<String>)> =
        match repo::accept(&store, &cached, &context.arch, &context.clock) {
            Ok(indexes) => indexes
                .iter()
                .flat_map(|accepted| {
                    let index = &accepted.index;
                    index
                        .packages()
                        .iter()
                        .filter(|entry| entry.name == name)
                        .map(|entry| (index.entry(entry), accepted.tag.map(str::to_owned)))
                        .collect::<Vec<_>>()
                })
                .collect(),
            Err(_) => Vec::new(),
        };
    let Some(shown) = installed.or(available.last().map(|(entry, _)| entry)) else {
        return Err(Error::from_args(format_args!(
            "{name}: no such package installed or available"
        )));
    };
    let mut text = format!("{}\n", shown.id());
    let mut description = shown.description.clone();
    let mut license = String::new();
    if let Some(entry) = installed {
        if let Ok(meta) = crate::image::read_meta(&store.image_path(entry)) {
            description = meta.description;
            license = meta.license;
        }
    }
    if !description.is_empty() {
        let _ = writeln!(text, "  {description}");
    }
    if !license.is_empty() {
        let _ = writeln!(text, "  license: {license}");
    }
    let pinned = current
        .world
        .iter()
        .find(|request| request.name == name)
        .and_then(|request| request.tag.as_deref());
    let _ = writeln!(
        text,
        "  installed: {}",
        installed.map_or("no".to_owned(), |e| format!(
            "{}{}{}",
            e.version,
            if current.is_explicit(e) {
                ""
            } else {
                " (dependency)"
            },
            pinned.map_or(String::new(), |tag| format!(" (pinned to @{tag})"))
        ))
    );
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let _ = writeln!(
        text,
        "  depends: {}",
        list(shown.needs().map(|d| d.to_string()).collect())
    );
    let conflicts: Vec<String> = shown
        .deps
        .iter()
        .filter(|d| d.conflict)
        .map(|d| d.to_string())
        .collect();
    if !conflicts.is_empty() {
        let _ = writeln!(text, "  conflicts: {}", list(conflicts));
    }
    if !shown.provides.is_empty() {
        let _ = writeln!(
            text,
            "  provides: {}",
            list(shown.provides.iter().map(|p| p.to_string()).collect())
        );
    }
    if shown.provider_priority > 0 {
        let _ = writeln!(text, "  provider priority: {}", shown.provider_priority);
    }
    if !shown.install_if.is_empty() {
        let _ = writeln!(
            text,
            "  install_if: {}",
            list(shown.install_if.iter().map(|d| d.to_string()).collect())
        );
    }
    let _ = writeln!(
        text,
        "  size: {}\n  sha256: {}",
        shown.size,
        to_hex(&shown.sha256)
    );
    let versions: Vec<String> = available
        .iter()
        .map(|(entry, tag)| match tag {
            Some(tag) => format!("{}@{tag}", entry.version),
            None => entry.version.to_string(),
        })
        .collect();
    if !versions.is_empty() {
        let _ = writeln!(text, "  available: {}", versions.join(", "));
    }
    Ok(Report::new(
        text,
        Json::object([
            ("ok", Json::Bool(true)),
            (
                "package",
                entry_json(shown, installed.map(|e| current.is_explicit(e))),
            ),
            ("installed", Json::Bool(installed.is_some())),
            ("description", Json::string(description)),
            ("license", Json::string(license)),
            ("available", Json::strings(versions)),
        ]),
    ))
}

/// `pkg search WORD`: the newest version of every package whose name, provides or
/// description contain WORD (the description ignoring ASCII case: Unicode's case
/// tables would cost the device binary more than they give), with its description.
pub fn search(context: &Context, word: &str) -> Result<Report, Error> {
    let store = Store::open_reading(&context.root);
    let current = store.current()?;
    let cached = repo::read_indexes(&store)?;
    let indexes = repo::accept(&store, &cached, &context.arch, &context.clock)?;
    // (index, entry) of the newest version of each name found.
    let mut found: Vec<(usize, &amber_core::index::EntryView<'_>)> = Vec::new();
    for (at, accepted) in indexes.iter().enumerate() {
        let index = &accepted.index;
        for entry in index.packages() {
            let hit = entry.name.contains(word)
                || index.provides(entry).iter().any(|p| p.name.contains(word))
                || contains_ignoring_case(entry.description, word);
            if !hit {
                continue;
            }
            match found.iter_mut().find(|(_, seen)| seen.name == entry.name) {
                Some(slot)
                    if amber_core::version::compare(slot.1.version, entry.version).is_lt() =>
                {
                    *slot = (at, entry);
                }
                Some(_) => {}
                None => found.push((at, entry)),
            }
        }
    }
    amber_core::sort::sort_by(&mut found, |a, b| a.1.name.cmp(b.1.name));
    let mut text = String::new();
    let mut items = Vec::new();
    for (at, view) in found {
        let entry = indexes[at].index.entry(view);
        let installed = current.package(&entry.name).map(|e| e.version.to_string());
        let _ = write!(text, "{}", entry.id());
        if !entry.description.is_empty() {
            let _ = write!(text, " - {}", entry.description);
        }
        if let Some(version) = &installed {
            let _ = write!(text, " (installed: {version})");
        }
        text.push('\n');
        items.push(entry_json(&entry, None));
    }
    Ok(Report::new(
        text,
        Json::object([("ok", Json::Bool(true)), ("packages", Json::Array(items))]),
    ))
}

/// Whether `text` contains `word`, ASCII letters compared without case.
fn contains_ignoring_case(text: &str, word: &str) -> bool {
    let (text, word) = (text.as_bytes(), word.as_bytes());
    word.is_empty()
        || text
            .windows(word.len())
            .any(|window| window.eq_ignore_ascii_case(word))
}

/// `pkg which PATH`: the installed packages holding PATH, looked up in the images.
pub fn which(context: &Context, path: &str) -> Result<Report, Error> {
    let store = Store::open_reading(&context.root);
    let current = store.current()?;
    let relative = path
        .trim_start_matches('/')
        .strip_prefix("ro/")
        .unwrap_or(path.trim_start_matches('/'));
    // `/ro/<id>/...` names its package directly.
    let (scope, inner): (Vec<&Entry>, &str) = match relative.split_once('/') {
        Some((first, rest)) if current.packages.iter().any(|e| e.id().to_string() == first) => (
            current
                .packages
                .iter()
                .filter(|e| e.id().to_string() == first)
                .collect(),
            rest,
        ),
        _ => (current.packages.iter().collect(), relative),
    };
    let inner = inner.trim_matches('/');
    if inner.is_empty() {
        return Err(Error::usage_args(format_args!("{path}: name a file")));
    }
    let mut owners = Vec::new();
    for entry in scope {
        let archive = crate::image::open(&store.image_path(entry))?;
        let mut cache = Cache::new();
        match archive.lookup_path(inner, &mut cache) {
            Ok(_) => owners.push(entry.id().to_string()),
            Err(ReadError::NotFound) | Err(ReadError::NotADirectory) => {}
            Err(error) => return Err(Error::from_args(format_args!("{}: {error}", entry.id()))),
        }
    }
    if owners.is_empty() {
        return Err(Error::from_args(format_args!(
            "{path}: no installed package has it"
        )));
    }
    let text = owners.iter().map(|id| format!("{id}\n")).collect();
    Ok(Report::new(
        text,
        Json::object([
            ("ok", Json::Bool(true)),
            ("path", Json::string(path)),
            ("packages", Json::strings(owners)),
        ]),
    ))
}

/// `pkg info --conflicts`: the exchange-directory paths several installed packages
/// want, which one wins and by which rule (the same rule the mounted store applies).
pub fn conflicts(context: &Context) -> Result<Report, Error> {
    let store = Store::open(&context.root);
    let current = store.current()?;
    let packages = current
        .packages
        .iter()
        .map(|e| (e, current.is_explicit(e)))
        .collect();
    let mut cache = Cache::new();
    let tree = crate::exchange::build_for(
        packages,
        &current.preferences,
        |entry| {
            crate::image::open(&store.image_path(entry))
                .ok()
                .map(Box::new)
        },
        &mut cache,
    );
    let mut text = String::new();
    let mut items = Vec::new();
    for conflict in &tree.conflicts {
        let _ = writeln!(
            text,
            "{}: {} wins over {} ({})",
            conflict.path, conflict.winner, conflict.loser, conflict.reason
        );
        items.push(Json::object([
            ("path", Json::string(&conflict.path)),
            ("winner", Json::string(&conflict.winner)),
            ("loser", Json::string(&conflict.loser)),
            ("reason", Json::string(conflict.reason.word())),
        ]));
    }
    if items.is_empty() {
        text.push_str("no conflicts\n");
    }
    Ok(Report::new(
        text,
        Json::object([("ok", Json::Bool(true)), ("conflicts", Json::Array(items))]),
    ))
}
