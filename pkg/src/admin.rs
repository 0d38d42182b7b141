//! Configuring trust and sources: `key add|list|del` and `repo add|list|del`.

#![forbid(unsafe_code)]

use amber_core::minisign::PublicKey;

use crate::args::{KeyCommand, RepoCommand};
use crate::context::{Context, Report};
use crate::error::{Context as _, Error};
use crate::json::Json;
use crate::repo::Location;
use crate::store::{Repository, Store};

/// `pkg key add FILE | list | del ID`.
pub fn key(context: &Context, command: KeyCommand) -> Result<Report, Error> {
    match command {
        KeyCommand::Add(add) => {
            let text = std::fs::read_to_string(&add.file).context(add.file.display())?;
            let key = PublicKey::parse_file(&text).context(add.file.display())?;
            let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
            let added = store.add_key(&key)?;
            let id = key.key_id_hex();
            let text = if added {
                format!("trusting key {id}\n")
            } else {
                format!("key {id} is already trusted\n")
            };
            Ok(Report::new(
                text,
                Json::object([
                    ("ok", Json::Bool(true)),
                    ("key", Json::string(id)),
                    ("added", Json::Bool(added)),
                ]),
            ))
        }
        KeyCommand::List(_) => {
            let keys = Store::open(&context.root).trusted_keys()?;
            let ids: Vec<String> = keys.iter().map(PublicKey::key_id_hex).collect();
            let text = ids.iter().map(|id| format!("{id}\n")).collect();
            Ok(Report::new(
                text,
                Json::object([("ok", Json::Bool(true)), ("keys", Json::strings(ids))]),
            ))
        }
        KeyCommand::Del(del) => {
            let id = amber_core::minisign::parse_key_id_hex(&del.id)
                .map(|id| amber_core::minisign::key_id_hex(&id))
                .map_err(|e| Error::usage_args(format_args!("{}: {e}", del.id)))?;
            let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
            if !store.remove_key(&id)? {
                return Err(Error::from_args(format_args!("key {id}: not trusted")));
            }
            Ok(Report::new(
                format!("no longer trusting key {id}\n"),
                Json::object([("ok", Json::Bool(true)), ("key", Json::string(id))]),
            ))
        }
    }
}

/// `pkg repo add URL [--mirror URL]... | list | del URL`.
pub fn repo(context: &Context, command: RepoCommand) -> Result<Report, Error> {
    match command {
        RepoCommand::Add(add) => {
            let mut urls = vec![normalize(&add.url)?];
            for mirror in &add.mirror {
                urls.push(normalize(mirror)?);
            }
            if let Some(tag) = &add.tag {
                if !amber_core::version::is_valid_tag(tag) {
                    return Err(Error::usage_args(format_args!(
                        "--tag {tag:?}: invalid tag (expected [a-z0-9][a-z0-9._-]*, at most \
                         32 bytes)"
                    )));
                }
            }
            let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
            let mut repos = store.repositories()?;
            if repos.iter().any(|r| r.url() == urls[0]) {
                return Err(Error::from_args(format_args!(
                    "{}: already a repository",
                    urls[0]
                )));
            }
            let repository = Repository {
                urls: urls.clone(),
                tag: add.tag.clone(),
            };
            repos.push(repository.clone());
            store.set_repositories(&repos)?;
            Ok(Report::new(
                format!("added {}; run pkg update\n", shown(&repository)),
                Json::object([
                    ("ok", Json::Bool(true)),
                    ("urls", Json::strings(urls)),
                    ("tag", add.tag.map_or(Json::Null, Json::string)),
                ]),
            ))
        }
        RepoCommand::List(_) => {
            let repos = Store::open(&context.root).repositories()?;
            let text = repos
                .iter()
                .map(|repository| format!("{}\n", shown(repository)))
                .collect();
            let json = Json::Array(
                repos
                    .iter()
                    .map(|repository| Json::strings(repository.urls.iter().cloned()))
                    .collect(),
            );
            let tags = Json::Array(
                repos
                    .into_iter()
                    .map(|repository| repository.tag.map_or(Json::Null, Json::string))
                    .collect(),
            );
            Ok(Report::new(
                text,
                Json::object([("ok", Json::Bool(true)), ("repos", json), ("tags", tags)]),
            ))
        }
        RepoCommand::Del(del) => {
            let url = normalize(&del.url)?;
            let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
            let mut repos = store.repositories()?;
            let before = repos.len();
            repos.retain(|r| r.url() != url);
            if repos.len() == before {
                return Err(Error::from_args(format_args!("{url}: not a repository")));
            }
            store.set_repositories(&repos)?;
            Ok(Report::new(
                format!("removed {url}\n"),
                Json::object([("ok", Json::Bool(true)), ("url", Json::string(url))]),
            ))
        }
        RepoCommand::Index(_) => Err(Error::usage("repo index is handled by the host build")),
    }
}

/// A repository as `repo list` shows it: `[@TAG] URL [MIRROR]...`.
fn shown(repository: &Repository) -> String {
    match &repository.tag {
        Some(tag) => format!("@{tag} {}", repository.urls.join(" ")),
        None => repository.urls.join(" "),
    }
}

/// Check a repository URL and give it its one spelling (no trailing slash).
fn normalize(url: &str) -> Result<String, Error> {
    Location::parse(url)?;
    Ok(url.trim_end_matches('/').to_owned())
}
