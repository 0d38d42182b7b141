//! A recipe's sources: fetched into the cache `<sources>/<sha256>/` (a URL, the same file
//! from Debian's source package, or a crate through cargo), checked against their
//! SHA-256, and unpacked into the build tree.

use super::settings::Settings;
use crate::cmd::Cmd;
use crate::recipe::{self, Origin, Recipe, Source};
use crate::util::{
    absolute, copy_tree, create_dir, path_str, remove_tree, rename, sha256_file, step, write,
};
use std::path::{Path, PathBuf};

/// The verified file of a source: a cache entry, or the path in the recipe directory.
pub fn fetch(
    settings: &Settings,
    recipe: &Recipe,
    recipe_dir: &Path,
    source: &Source,
) -> Result<PathBuf, String> {
    let label = source.label();
    let mismatch = |expected: &str, got: &str| {
        format!("source {label}: sha256 mismatch (expected {expected}, got {got})")
    };
    match &source.origin {
        Origin::Path(path) => {
            let file = recipe_dir.join(path);
            let meta = std::fs::symlink_metadata(&file)
                .map_err(|e| format!("source {label}: {}: {e}", file.display()))?;
            if let Some(expected) = &source.sha256 {
                if !meta.is_file() {
                    return Err(format!("source {label}: sha256 given for a non-file"));
                }
                let got = sha256_file(&file)?;
                if &got != expected {
                    return Err(mismatch(expected, &got));
                }
            }
            Ok(file)
        }
        Origin::Url { url, debian } => {
            let expected = source.sha256.as_deref().expect("checked: url has sha256");
            if let Some(file) = cached(settings, expected)? {
                return Ok(file);
            }
            let dir = settings.sources_dir.join(expected);
            create_dir(&dir)?;
            let mut failure = None;
            if let Some(url) = url {
                let file = dir.join(recipe::url_file_name(url));
                let part = dir.join(".download.part");
                step(&format!("{}: fetching {url}", recipe.name));
                let downloaded = Cmd::new("curl")
                    .args([
                        "-fsSL",
                        "--connect-timeout",
                        "10",
                        "--max-time",
                        "600",
                        "-o",
                    ])
                    .arg(path_str(&part)?)
                    .arg(url)
                    .output();
                match downloaded {
                    Ok(_) => {
                        let got = sha256_file(&part)?;
                        if got != expected {
                            let _ = std::fs::remove_file(&part);
                            return Err(mismatch(expected, &got));
                        }
                        rename(&part, &file)?;
                        return Ok(file);
                    }
                    Err(error) => {
                        let _ = std::fs::remove_file(&part);
                        eprintln!("  {url} is out of reach");
                        failure = Some(error);
                    }
                }
            }
            match debian {
                Some(package) => {
                    step(&format!(
                        "{}: fetching {label} from Debian's source package {package}",
                        recipe.name
                    ));
                    crate::debsrc::fetch(&settings.sources_dir, package, expected, &dir)
                        .map_err(|e| format!("source {label}: {e}"))
                }
                None => Err(format!(
                    "source {label}: {}",
                    failure.unwrap_or_else(|| "cannot be fetched".into())
                )),
            }
        }
        Origin::Crate { name, version } => {
            let expected = source.sha256.as_deref().expect("checked: crate has sha256");
            if let Some(file) = cached(settings, expected)? {
                return Ok(file);
            }
            let dir = settings.sources_dir.join(expected);
            create_dir(&dir)?;
            let cached = dir.join(&label);
            step(&format!("{}: fetching crate {name} {version}", recipe.name));
            let file = fetch_crate(settings, name, version)?;
            let got = sha256_file(&file)?;
            if got != expected {
                return Err(mismatch(expected, &got));
            }
            crate::util::copy(&file, &cached)?;
            Ok(cached)
        }
    }
}

/// The file cached under `<sources>/<sha256>/` if its content still has that hash; a
/// damaged one is removed.
fn cached(settings: &Settings, expected: &str) -> Result<Option<PathBuf>, String> {
    let dir = settings.sources_dir.join(expected);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if sha256_file(&path)? == expected {
            return Ok(Some(path));
        }
        eprintln!(
            "  {}: cached file does not match its sha256; fetching again",
            path.display()
        );
        let _ = std::fs::remove_file(&path);
    }
    Ok(None)
}

/// Download a crate's `.crate` file with cargo (a throwaway project that depends on
/// exactly that version) and return its place in cargo's registry cache.
fn fetch_crate(settings: &Settings, name: &str, version: &str) -> Result<PathBuf, String> {
    let project = absolute(
        &settings
            .sources_dir
            .join("crate-fetch")
            .join(format!("{name}-{version}")),
    )?;
    create_dir(&project.join("src"))?;
    write(&project.join("src/lib.rs"), b"")?;
    write(
        &project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"amber-crate-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\n{name} = \"={version}\"\n\n[workspace]\n"
        )
        .as_bytes(),
    )?;
    Cmd::new("cargo")
        .args(["fetch", "--manifest-path"])
        .arg(path_str(&project.join("Cargo.toml"))?)
        .run()?;
    let home = std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    );
    let caches = home.join("registry/cache");
    let file_name = format!("{name}-{version}.crate");
    std::fs::read_dir(&caches)
        .map_err(|e| format!("{}: {e}", caches.display()))?
        .flatten()
        .map(|registry| registry.path().join(&file_name))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("cargo fetched no {file_name} into {}", caches.display()))
}

/// Extract or copy a fetched source into the build's `src` and return the directory
/// it landed in (patches apply there).
pub fn unpack(source: &Source, file: &Path, src: &Path, first: bool) -> Result<PathBuf, String> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_archive = [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".crate",
    ]
    .iter()
    .any(|suffix| name.ends_with(suffix));
    let label = source.label();
    if file.is_dir() {
        let into = if first {
            src.to_path_buf()
        } else {
            src.join(&name)
        };
        copy_tree(file, &into)?;
        return Ok(into);
    }
    if !is_archive {
        crate::util::copy(file, &src.join(&name))?;
        return Ok(src.to_path_buf());
    }
    let unpacked = src.with_file_name("unpack");
    if unpacked.exists() {
        remove_tree(&unpacked)?;
    }
    create_dir(&unpacked)?;
    Cmd::new("tar")
        .args([
            "-xf",
            path_str(&std::fs::canonicalize(file).map_err(|e| e.to_string())?)?,
        ])
        .args(["--no-same-owner", "-C", path_str(&unpacked)?])
        .output()
        .map_err(|e| format!("source {label}: cannot extract: {e}"))?;
    let entries: Vec<PathBuf> = std::fs::read_dir(&unpacked)
        .map_err(|e| format!("{}: {e}", unpacked.display()))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    // One top-level directory is stripped; anything else is taken as it is.
    let (top, top_name) = match entries.as_slice() {
        [only] if only.is_dir() => (
            only.clone(),
            only.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        ),
        _ => (
            unpacked.clone(),
            name.split(".tar").next().unwrap_or(&name).to_owned(),
        ),
    };
    let into = if first {
        src.to_path_buf()
    } else {
        src.join(top_name)
    };
    if first {
        std::fs::remove_dir(src).map_err(|e| format!("{}: {e}", src.display()))?;
    }
    rename(&top, &into)?;
    if unpacked.exists() {
        remove_tree(&unpacked)?;
    }
    Ok(into)
}

/// Vendor a crate's dependencies (as its Cargo.lock pins them) beside it, so the
/// sandboxed build runs offline.
pub fn vendor(dir: &Path) -> Result<(), String> {
    let manifest = dir.join("Cargo.toml");
    let original = crate::util::read(&manifest)?;
    // The build tree lies inside this workspace's target/: cargo must not take the
    // crate for a member of it while vendoring.
    let text = String::from_utf8_lossy(&original);
    let standalone = !text.lines().any(|line| line.trim() == "[workspace]");
    if standalone {
        let mut edited = original.clone();
        edited.extend_from_slice(b"\n[workspace]\n");
        write(&manifest, &edited)?;
    }
    let locked = dir.join("Cargo.lock").is_file();
    let mut command = Cmd::new("cargo")
        .args(["vendor", "--manifest-path"])
        .arg(path_str(&manifest)?);
    if locked {
        command = command.arg("--locked");
    }
    let result = command.arg(path_str(&dir.join("vendor"))?).output();
    write(&manifest, &original)?;
    result?;
    create_dir(&dir.join(".cargo"))?;
    write(
        &dir.join(".cargo/config.toml"),
        b"[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n\
          [source.vendored-sources]\ndirectory = \"vendor\"\n",
    )
}
