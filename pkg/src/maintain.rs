//! Keeping the store healthy: `update`, `verify`, `gc` and `rollback`.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use amber_core::hash::to_hex;

use crate::context::{Context, Report};
use crate::error::Error;
use crate::json::Json;
use crate::repo;
use crate::store::Store;

/// `pkg update`: fetch and accept every repository's index. A repository that fails
/// keeps its previous index; the command then exits 1 after updating the others.
pub fn update(context: &Context) -> Result<Report, Error> {
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let repos = store.repositories()?;
    if repos.is_empty() {
        return Err(Error::new(
            "no repositories: add one with `pkg repo add URL`",
        ));
    }
    let keys = store.trusted_keys()?;
    if keys.is_empty() {
        return Err(Error::new(
            "no trusted keys: add one with `pkg key add FILE`",
        ));
    }
    let mut text = String::new();
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for urls in &repos {
        match repo::update_one(
            &store,
            urls,
            &keys,
            &context.arch,
            &context.clock,
            &context.limits,
        ) {
            Ok(updated) => {
                let _ = writeln!(
                    text,
                    "{}: serial {}, {} packages{}",
                    updated.repo,
                    updated.serial,
                    updated.packages,
                    if updated.changed { "" } else { " (unchanged)" }
                );
                results.push(Json::object([
                    ("repo", Json::string(updated.repo)),
                    ("serial", Json::Number(updated.serial)),
                    ("packages", Json::Number(updated.packages as u64)),
                    ("changed", Json::Bool(updated.changed)),
                ]));
            }
            // The error names each URL tried, the repository's own first.
            Err(error) => failures.push(error),
        }
    }
    let report = Report::new(
        text,
        Json::object([("ok", Json::Bool(true)), ("repos", Json::Array(results))]),
    );
    if let Some(first) = failures.into_iter().next() {
        context.report_failure(report, &first);
        return Err(first);
    }
    Ok(report)
}

/// `pkg verify`: hash every image the kept generations use, again.
pub fn verify(context: &Context) -> Result<Report, Error> {
    let store = Store::open_reading(&context.root);
    // A list, not a set: a few hundred entries at most, and one set type fewer in the
    // device binary.
    let mut checked: Vec<(String, [u8; 32])> = Vec::new();
    let mut bad = Vec::new();
    let mut text = String::new();
    for number in store.generation_numbers()? {
        let generation = store.generation(number)?;
        for entry in &generation.packages {
            let id = entry.id().to_string();
            // By id and hash: two generations may name one file with different hashes.
            if checked
                .iter()
                .any(|(known, hash)| *known == id && *hash == entry.sha256)
            {
                continue;
            }
            checked.push((id.clone(), entry.sha256));
            let path = store.image_path(entry);
            let problem = match std::fs::metadata(&path) {
                Err(_) => Some("image missing".to_string()),
                Ok(meta) if meta.len() != entry.size => {
                    Some(format!("size {} instead of {}", meta.len(), entry.size))
                }
                Ok(_) => {
                    let hash = crate::image::sha256(&path)?;
                    (hash != entry.sha256).then(|| {
                        format!(
                            "sha256 {} instead of {}",
                            to_hex(&hash),
                            to_hex(&entry.sha256)
                        )
                    })
                }
            };
            match problem {
                Some(problem) => {
                    let _ = writeln!(text, "{id}: {problem}");
                    bad.push(Json::object([
                        ("id", Json::string(&id)),
                        ("problem", Json::string(problem)),
                    ]));
                }
                None => {
                    let _ = writeln!(text, "{id}: ok");
                }
            }
        }
    }
    if !bad.is_empty() {
        let error = Error::from_args(format_args!(
            "verify: {} of {} images are damaged",
            bad.len(),
            checked.len()
        ));
        let json = Json::object([
            ("checked", Json::Number(checked.len() as u64)),
            ("bad", Json::Array(bad)),
        ]);
        context.report_failure(Report::new(text, json), &error);
        return Err(error);
    }
    let _ = writeln!(text, "{} images verified", checked.len());
    Ok(Report::new(
        text,
        Json::object([
            ("ok", Json::Bool(true)),
            ("checked", Json::Number(checked.len() as u64)),
            ("bad", Json::Array(Vec::new())),
        ]),
    ))
}

/// `pkg gc --keep N`: keep the newest N generations and the current one; remove the
/// rest, then the images no kept generation uses and no running `pkg run` leases.
/// Generation files go first, so a crash never leaves a generation whose images are
/// gone.
pub fn gc(context: &Context, keep: u64) -> Result<Report, Error> {
    if keep == 0 {
        return Err(Error::usage("gc: --keep must be at least 1"));
    }
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let current = store.current_number()?;
    let numbers = store.generation_numbers()?;
    let cut = numbers.len().saturating_sub(keep as usize);
    let (old, kept) = numbers.split_at(cut);
    let mut removed_generations = Vec::new();
    for &number in old {
        if Some(number) != current {
            store.remove_generation(number)?;
            crate::failpoint::hit("gc:generation_removed");
            removed_generations.push(number);
        }
    }
    let mut used = Vec::new();
    for &number in kept.iter().chain(current.iter()) {
        for entry in store.generation(number)?.packages {
            used.push(store.image_path(&entry));
        }
    }
    for image in store.leased_images()? {
        used.push(store.images_dir().join(image));
    }
    let mut removed_images = Vec::new();
    let mut freed = 0;
    for path in store.image_files()? {
        if !used.contains(&path) {
            freed += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            crate::durable::remove_durable(&path)?;
            crate::failpoint::hit("gc:image_removed");
            removed_images.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    crate::notify::after_switch(&store, current.unwrap_or(0))?;
    let text = format!(
        "removed {} generations and {} images, freed {}\n",
        removed_generations.len(),
        removed_images.len(),
        crate::download::human(freed)
    );
    Ok(Report::new(
        text,
        Json::object([
            ("ok", Json::Bool(true)),
            (
                "removed_generations",
                Json::Array(removed_generations.into_iter().map(Json::Number).collect()),
            ),
            ("removed_images", Json::strings(removed_images)),
            ("freed_bytes", Json::Number(freed)),
        ]),
    ))
}

/// `pkg rollback`: make the current generation's parent current again.
pub fn rollback(context: &Context) -> Result<Report, Error> {
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let current = store.current()?;
    let parent = current
        .parent
        .ok_or_else(|| Error::new("rollback: there is no previous generation"))?;
    let previous = store
        .generation(parent)
        .map_err(|e| e.context("rollback: the previous generation is gone (removed by gc?)"))?;
    for entry in &previous.packages {
        if !store.image_path(entry).is_file() {
            return Err(Error::from_args(format_args!(
                "rollback: {} is gone from the store (removed by gc?)",
                entry.id()
            )));
        }
    }
    store.switch_to(parent)?;
    crate::notify::after_switch(&store, parent)?;
    Ok(Report::new(
        format!(
            "generation {parent} is current again (was {})\n",
            current.number
        ),
        Json::object([
            ("ok", Json::Bool(true)),
            ("generation", Json::Number(parent)),
            ("previous", Json::Number(current.number)),
        ]),
    ))
}
