//! The Debian fallback of a recipe's URL source: the same upstream tarball as the orig
//! tarball of a Debian source package, through `apt-get source --download-only`.
//!
//! apt runs with xtask's own configuration under `target/sources/apt/`: a `deb-src`
//! list for the mirror and suite the host's own apt sources use (read from
//! /etc/apt, so no host name is written into the project), its own lists and cache,
//! like `kernel.rs` does for binary packages. What apt downloads is only used when its
//! SHA-256 is the one the recipe names.

use crate::cmd::Cmd;
use crate::util::{create_dir, rename, sha256_file, step, write};
use std::path::{Path, PathBuf};

/// Download the source package `package` and move the file whose SHA-256 is
/// `expected` into the directory `into`; returns where it is. apt's own files live under
/// the source cache `sources`.
pub fn fetch(
    sources: &Path,
    package: &str,
    expected: &str,
    into: &Path,
) -> Result<PathBuf, String> {
    let root = std::fs::canonicalize(sources)
        .map_err(|e| format!("{}: {e}", sources.display()))?
        .join("apt");
    let list = root.join("sources.list");
    write_list(&list)?;
    let lists = root.join("lists");
    let has_lists = std::fs::read_dir(&lists).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().ends_with("_Sources"))
    });
    if !has_lists {
        step("Debian source package lists");
        apt(&root)?.arg("update").run()?;
    }
    let download = root.join("download").join(package);
    if download.exists() {
        std::fs::remove_dir_all(&download)
            .map_err(|e| format!("cannot clear {}: {e}", download.display()))?;
    }
    create_dir(&download)?;
    let source = |root: &Path| -> Result<(), String> {
        apt(root)?
            .args(["source", "--download-only", package])
            .current_dir(&download)
            .run()
    };
    if source(&root).is_err() {
        step("the source package lists may be stale: updating them and trying again");
        apt(&root)?.arg("update").run()?;
        source(&root)?;
    }
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&download)
        .map_err(|e| format!("{}: {e}", download.display()))?
        .flatten()
    {
        let path = entry.path();
        let hash = sha256_file(&path)?;
        if hash == expected {
            let file = into.join(entry.file_name());
            rename(&path, &file)?;
            let _ = std::fs::remove_dir_all(&download);
            return Ok(file);
        }
        seen.push(format!(
            "{} {hash}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    Err(format!(
        "no file of Debian source package {package} has sha256 {expected} (got: {})",
        seen.join(", ")
    ))
}

fn apt(root: &Path) -> Result<Cmd, String> {
    let lists = root.join("lists");
    let cache = root.join("cache");
    let parts = root.join("sources.list.d");
    create_dir(&lists.join("partial"))?;
    create_dir(&cache.join("archives/partial"))?;
    create_dir(&parts)?;
    let options = [
        format!(
            "Dir::Etc::SourceList={}",
            root.join("sources.list").display()
        ),
        format!("Dir::Etc::SourceParts={}", parts.display()),
        format!("Dir::State::Lists={}", lists.display()),
        format!("Dir::Cache={}", cache.display()),
        // As root, apt would hand downloads to its `_apt` user, which cannot write here.
        "APT::Sandbox::User=root".to_owned(),
        "Acquire::Languages=none".to_owned(),
        "Acquire::IndexTargets::deb-src::Sources::DefaultEnabled=true".to_owned(),
    ];
    let mut command = Cmd::new("apt-get").arg("-q");
    for option in options {
        command = command.args(["-o", &option]);
    }
    Ok(command)
}

/// `deb-src` for the host's main Debian entry (mirror, first suite, components, key).
fn write_list(list: &Path) -> Result<(), String> {
    let entry = host_entry()?;
    let mut line = String::from("deb-src ");
    if let Some(key) = &entry.signed_by {
        line.push_str(&format!("[signed-by={key}] "));
    }
    line.push_str(&format!(
        "{} {} {}\n",
        entry.uri,
        entry.suite,
        entry.components.join(" ")
    ));
    if std::fs::read_to_string(list).ok().as_deref() != Some(line.as_str()) {
        create_dir(list.parent().expect("in a directory"))?;
        write(list, line.as_bytes())?;
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
struct Entry {
    uri: String,
    suite: String,
    components: Vec<String>,
    signed_by: Option<String>,
}

/// The first `deb` entry of the host's apt sources whose suite is a release (not
/// `-security` or `-updates`).
fn host_entry() -> Result<Entry, String> {
    let mut files: Vec<PathBuf> = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let name = file.to_string_lossy();
        let found = if name.ends_with(".sources") {
            deb822_entries(&text)
        } else if name.ends_with(".list") {
            one_line_entries(&text)
        } else {
            continue;
        };
        if let Some(entry) = found.into_iter().next() {
            return Ok(entry);
        }
    }
    Err("no Debian `deb` source in /etc/apt to take the mirror from".into())
}

fn is_release(suite: &str) -> bool {
    !suite.is_empty() && !suite.contains('-') && !suite.contains('/')
}

fn deb822_entries(text: &str) -> Vec<Entry> {
    let mut found = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Option<String> {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let types = field("Types").unwrap_or_default();
        if !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        if field("Enabled").is_some_and(|v| v == "no") {
            continue;
        }
        let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
            continue;
        };
        let Some(uri) = uris.split_whitespace().next() else {
            continue;
        };
        let Some(suite) = suites.split_whitespace().find(|s| is_release(s)) else {
            continue;
        };
        let components = field("Components").unwrap_or_else(|| "main".into());
        found.push(Entry {
            uri: uri.to_owned(),
            suite: suite.to_owned(),
            components: components.split_whitespace().map(str::to_owned).collect(),
            signed_by: field("Signed-By").filter(|key| key.starts_with('/')),
        });
    }
    found
}

fn one_line_entries(text: &str) -> Vec<Entry> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut signed_by = None;
        let rest = match rest.trim_start().strip_prefix('[') {
            Some(options) => {
                let Some((options, after)) = options.split_once(']') else {
                    continue;
                };
                signed_by = options
                    .split_whitespace()
                    .find_map(|option| option.strip_prefix("signed-by="))
                    .map(str::to_owned);
                after
            }
            None => rest,
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() < 3 || !is_release(words[1]) {
            continue;
        }
        found.push(Entry {
            uri: words[0].to_owned(),
            suite: words[1].to_owned(),
            components: words[2..].iter().map(|w| (*w).to_owned()).collect(),
            signed_by,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-updates\n\
                    Components: main\n\nTypes: deb deb-src\nURIs: http://mirror.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main contrib\n\
                    Signed-By: /usr/share/keyrings/k.gpg\n";
        assert_eq!(
            deb822_entries(text),
            [Entry {
                uri: "http://mirror.example/debian".into(),
                suite: "bookworm".into(),
                components: vec!["main".into(), "contrib".into()],
                signed_by: Some("/usr/share/keyrings/k.gpg".into()),
            }]
        );
    }

    #[test]
    fn one_line() {
        let text = "# comment\ndeb http://m.example/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        let found = one_line_entries(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].suite, "bookworm");
        assert_eq!(found[0].signed_by.as_deref(), Some("/k.gpg"));
    }
}
