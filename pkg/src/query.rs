//! Questions about packages: `list`, `info`, `search` and `which`. They read the store
//! and never change it; `which` answers from the images themselves, mounted or not.

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
        ("name".to_owned(), Json::string(&entry.name)),
        ("version".to_owned(), Json::string(entry.version.as_str())),
        ("id".to_owned(), Json::string(entry.id().to_string())),
        ("size".to_owned(), Json::Number(entry.size)),
        ("sha256".to_owned(), Json::string(to_hex(&entry.sha256))),
        (
            "deps".to_owned(),
            Json::strings(entry.deps.iter().map(|d| d.to_string())),
        ),
        (
            "provides".to_owned(),
            Json::strings(entry.provides.iter().cloned()),
        ),
    ];
    if let Some(explicit) = explicit {
        pairs.push(("explicit".to_owned(), Json::Bool(explicit)));
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
    let available: Vec<Entry> = match repo::load_indexes(&store, &context.arch, &context.clock) {
        Ok(indexes) => indexes
            .iter()
            .flat_map(|a| a.index.find(name).cloned().collect::<Vec<_>>())
            .collect(),
        Err(_) => Vec::new(),
    };
    let Some(shown) = installed.or(available.last()) else {
        return Err(Error::new(format!(
            "{name}: no such package installed or available"
        )));
    };
    let mut text = format!("{}\n", shown.id());
    let mut description = String::new();
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
    let _ = writeln!(
        text,
        "  installed: {}",
        installed.map_or("no".to_owned(), |e| format!(
            "{}{}",
            e.version,
            if current.is_explicit(e) {
                ""
            } else {
                " (dependency)"
            }
        ))
    );
    let deps: Vec<String> = shown.deps.iter().map(|d| d.to_string()).collect();
    let _ = writeln!(
        text,
        "  depends: {}",
        if deps.is_empty() {
            "-".into()
        } else {
            deps.join(", ")
        }
    );
    if !shown.provides.is_empty() {
        let _ = writeln!(text, "  provides: {}", shown.provides.join(", "));
    }
    let _ = writeln!(
        text,
        "  size: {}\n  sha256: {}",
        shown.size,
        to_hex(&shown.sha256)
    );
    let versions: Vec<String> = available.iter().map(|e| e.version.to_string()).collect();
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

/// `pkg search WORD`: the newest version of every package whose name or provides
/// contain WORD.
pub fn search(context: &Context, word: &str) -> Result<Report, Error> {
    let store = Store::open_reading(&context.root);
    let current = store.current()?;
    let indexes = repo::load_indexes(&store, &context.arch, &context.clock)?;
    let mut found: Vec<&Entry> = Vec::new();
    for entry in indexes.iter().flat_map(|a| a.index.packages.iter()) {
        let hit = entry.name.contains(word) || entry.provides.iter().any(|p| p.contains(word));
        if !hit {
            continue;
        }
        match found.iter_mut().find(|e| e.name == entry.name) {
            Some(slot) if slot.version < entry.version => *slot = entry,
            Some(_) => {}
            None => found.push(entry),
        }
    }
    amber_core::sort::sort_by(&mut found, |a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    let mut items = Vec::new();
    for entry in found {
        let installed = current.package(&entry.name).map(|e| e.version.to_string());
        let _ = writeln!(
            text,
            "{}{}",
            entry.id(),
            installed
                .as_ref()
                .map_or(String::new(), |v| format!(" (installed: {v})"))
        );
        items.push(entry_json(entry, None));
    }
    Ok(Report::new(
        text,
        Json::object([("ok", Json::Bool(true)), ("packages", Json::Array(items))]),
    ))
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
        return Err(Error::usage(format!("{path}: name a file")));
    }
    let mut owners = Vec::new();
    for entry in scope {
        let archive = crate::image::open(&store.image_path(entry))?;
        let mut cache = Cache::new();
        match archive.lookup_path(inner, &mut cache) {
            Ok(_) => owners.push(entry.id().to_string()),
            Err(ReadError::NotFound) | Err(ReadError::NotADirectory) => {}
            Err(error) => return Err(Error::new(format!("{}: {error}", entry.id()))),
        }
    }
    if owners.is_empty() {
        return Err(Error::new(format!("{path}: no installed package has it")));
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
/// want, and which one wins (the same rule the mounted store applies).
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
            "{}: {} wins over {}",
            conflict.path, conflict.winner, conflict.loser
        );
        items.push(Json::object([
            ("path", Json::string(&conflict.path)),
            ("winner", Json::string(&conflict.winner)),
            ("loser", Json::string(&conflict.loser)),
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
