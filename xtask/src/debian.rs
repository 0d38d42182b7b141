//! Debian packages the images are made of (kernels, systemd-boot, the Raspberry Pi
//! firmware), fetched for any architecture with `apt-get download` and unpacked with
//! `dpkg-deb -x`, never installed on the host.
//!
//! apt runs with state of its own under `target/debian/apt-<arch>[-<component>]/`
//! (lists and cache), so a foreign architecture needs neither root nor a change to the
//! host's apt configuration, and installing nothing means the host's own packages
//! (its systemd, say) are never upgraded behind its back. Packages of the `main`
//! component come from the host's configured sources. Another component (the Pi
//! firmware is in `non-free-firmware`) gets a sources list of its own, made from the
//! host's: the same mirrors and suites, that component only.
//!
//! An unpacked package is kept in `target/debian/<arch>/<package>/` and reused while
//! it is there; delete the directory to fetch the newest again.

use crate::cmd::Cmd;
use crate::util::{create_dir, path_str, step, write};
use std::path::{Path, PathBuf};

/// An unpacked package.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// `package version`, from the .deb's control fields.
    pub origin: String,
    /// Where its files are (`tree/usr/lib/...`).
    pub tree: PathBuf,
}

const STAMP: &str = "origin";

/// Fetch (or reuse) `package` for the Debian architecture `arch` from `component`
/// (`main`, `non-free-firmware`) and unpack it.
pub fn unpacked(arch: &str, package: &str, component: &str) -> Result<Unpacked, String> {
    let cache = absolute_target()?.join("debian").join(arch).join(package);
    let tree = cache.join("tree");
    if let Ok(origin) = std::fs::read_to_string(cache.join(STAMP)) {
        if tree.is_dir() {
            return Ok(Unpacked {
                origin: origin.trim().to_owned(),
                tree,
            });
        }
    }
    step(&format!("Debian package {package} ({arch}, {component})"));
    if cache.exists() {
        std::fs::remove_dir_all(&cache)
            .map_err(|e| format!("cannot clear {}: {e}", cache.display()))?;
    }
    create_dir(&cache)?;
    let deb = download(arch, component, package, &cache)?;
    let (origin, tree) = unpack(&deb, &tree)?;
    write(&cache.join(STAMP), format!("{origin}\n").as_bytes())?;
    Ok(Unpacked { origin, tree })
}

/// Unpack a .deb into `tree`; returns its `package version`.
pub fn unpack(deb: &Path, tree: &Path) -> Result<(String, PathBuf), String> {
    let fields = Cmd::new("dpkg-deb")
        .args(["-f", path_str(deb)?, "Package", "Version"])
        .output()?;
    let origin = fields
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(_, value)| value))
        .collect::<Vec<_>>()
        .join(" ");
    Cmd::new("dpkg-deb")
        .args(["-x", path_str(deb)?, path_str(tree)?])
        .run()?;
    Ok((origin, tree.to_path_buf()))
}

/// `apt-get download PACKAGE` into `into`, updating the lists first when there are
/// none or when they turn out stale; returns the .deb.
pub fn download(
    arch: &str,
    component: &str,
    package: &str,
    into: &Path,
) -> Result<PathBuf, String> {
    let fresh = ensure_lists(arch, component)?;
    let absolute = std::fs::canonicalize(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let fetch = || {
        apt("apt-get", arch, component)?
            .args(["download", package])
            .current_dir(&absolute)
            .run()
    };
    if let Err(error) = fetch() {
        if fresh {
            return Err(error);
        }
        // Lists from an earlier run may name a version the archive no longer has.
        step("the package lists may be stale: updating them and trying again");
        apt("apt-get", arch, component)?.arg("update").run()?;
        fetch()?;
    }
    let mut debs: Vec<PathBuf> = std::fs::read_dir(into)
        .map_err(|e| format!("{}: {e}", into.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    match debs.len() {
        1 => Ok(debs.remove(0)),
        n => Err(format!(
            "expected one .deb for {package} in {}, found {n}",
            into.display()
        )),
    }
}

/// Make sure the package lists exist; returns whether they were fetched just now.
pub fn ensure_lists(arch: &str, component: &str) -> Result<bool, String> {
    let lists = state_dir(arch, component)?.join("lists");
    let has_lists = std::fs::read_dir(&lists).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().contains("_Packages"))
    });
    if has_lists {
        return Ok(false);
    }
    apt("apt-get", arch, component)?.arg("update").run()?;
    Ok(true)
}

/// `target/`, absolute: apt is run from other directories.
fn absolute_target() -> Result<PathBuf, String> {
    create_dir(Path::new("target"))?;
    std::fs::canonicalize("target").map_err(|e| format!("target/: {e}"))
}

/// apt's own state for an architecture and component.
fn state_dir(arch: &str, component: &str) -> Result<PathBuf, String> {
    let name = if component == "main" {
        format!("apt-{arch}")
    } else {
        format!("apt-{arch}-{component}")
    };
    Ok(absolute_target()?.join("debian").join(name))
}

/// `program` (apt-get, apt-cache) with its own state for `arch` and `component`.
pub fn apt(program: &str, arch: &str, component: &str) -> Result<Cmd, String> {
    let root = state_dir(arch, component)?;
    let lists = root.join("lists");
    let cache = root.join("cache");
    create_dir(&lists.join("partial"))?;
    create_dir(&cache.join("archives/partial"))?;
    let mut options = vec![
        format!("APT::Architecture={arch}"),
        format!("APT::Architectures={arch}"),
        format!("Dir::State::Lists={}", lists.display()),
        format!("Dir::Cache={}", cache.display()),
        // As root, apt would hand downloads to its `_apt` user, which cannot write here.
        "APT::Sandbox::User=root".to_owned(),
        // Only the package lists are needed, not translations or AppStream data.
        "Acquire::Languages=none".to_owned(),
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
        "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_owned(),
        "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_owned(),
    ];
    if component != "main" {
        let list = root.join("sources.list");
        write(&list, sources_for(component, &host_sources()?)?.as_bytes())?;
        let parts = root.join("sources.list.d");
        create_dir(&parts)?;
        options.push(format!("Dir::Etc::SourceList={}", list.display()));
        options.push(format!("Dir::Etc::SourceParts={}", parts.display()));
    }
    let mut command = Cmd::new(program).arg("-q");
    for option in options {
        command = command.args(["-o", &option]);
    }
    Ok(command)
}

/// One `deb` source of the host: its URI, suites and components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

/// The host's apt sources: `/etc/apt/sources.list` (one-line form) and
/// `/etc/apt/sources.list.d/*.list` and `*.sources` (deb822).
fn host_sources() -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        sources.extend(parse_one_line(&text));
    }
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|ext| ext.to_str()) {
            Some("list") => sources.extend(parse_one_line(&text)),
            Some("sources") => sources.extend(parse_deb822(&text)),
            _ => {}
        }
    }
    Ok(sources)
}

/// `deb [options] URI SUITE COMPONENT...` lines.
fn parse_one_line(text: &str) -> Vec<Source> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb ")?.trim();
            let mut signed_by = None;
            let rest = match rest.strip_prefix('[') {
                Some(options) => {
                    let (options, rest) = options.split_once(']')?;
                    signed_by = options
                        .split_whitespace()
                        .find_map(|option| option.strip_prefix("signed-by="))
                        .map(str::to_owned);
                    rest.trim()
                }
                None => rest,
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?.to_owned();
            let suite = words.next()?.to_owned();
            Some(Source {
                uri,
                suites: vec![suite],
                components: words.map(str::to_owned).collect(),
                signed_by,
            })
        })
        .collect()
}

/// deb822 stanzas (`Types: deb`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`).
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Option<String> {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let words = |name: &str| -> Vec<String> {
            field(name)
                .map(|value| value.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        if !words("Types").iter().any(|kind| kind == "deb")
            || field("Enabled").is_some_and(|value| value == "no")
        {
            continue;
        }
        for uri in words("URIs") {
            sources.push(Source {
                uri,
                suites: words("Suites"),
                components: words("Components"),
                signed_by: field("Signed-By"),
            });
        }
    }
    sources
}

/// A sources list with the host's Debian mirrors and suites (those that carry `main`),
/// for `component` only.
fn sources_for(component: &str, host: &[Source]) -> Result<String, String> {
    let mut text = String::new();
    for source in host {
        if !source.components.iter().any(|c| c == "main") {
            continue;
        }
        for suite in &source.suites {
            let options = match &source.signed_by {
                Some(keyring) if !keyring.contains('\n') => format!("[signed-by={keyring}] "),
                _ => String::new(),
            };
            text.push_str(&format!(
                "deb {options}{} {suite} {component}\n",
                source.uri
            ));
        }
    }
    if text.is_empty() {
        return Err(format!(
            "no apt source of the host carries `main`, so none to take `{component}` from"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_sources_of_both_forms_give_a_list_for_another_component() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n\n\
                      Types: deb\nURIs: http://other.example/apt\nSuites: stable\nComponents: contrib\n";
        let mut sources = parse_deb822(deb822);
        sources.extend(parse_one_line(
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m2.example/debian-security bookworm-security main\n",
        ));
        assert_eq!(sources.len(), 3);
        assert_eq!(
            sources_for("non-free-firmware", &sources).unwrap(),
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm non-free-firmware\n\
             deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm-updates non-free-firmware\n\
             deb [signed-by=/k.gpg] http://m2.example/debian-security bookworm-security non-free-firmware\n"
        );
        assert!(sources_for("x", &[]).is_err());
    }
}
