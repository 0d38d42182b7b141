//! A recipe's build identity: SHA-256 over everything that goes into its build, so an
//! unchanged identity needs no new build.

use super::job::{driver, environment, triple, Toolchain, CC_WRAPPER, SANDBOX_SCRIPT};
use super::zig::ZIG_VERSION;
use crate::board::Arch;
use crate::recipe::Loaded;
use crate::util::sha256_file;
use amber_core::hash::{sha256, to_hex};
use std::collections::BTreeMap;
use std::path::Path;

/// Part of every identity: bump it when the builder changes what a build produces.
const BUILDER_VERSION: &str = "amber-recipes 1";

/// The build identity of a recipe, as 64 hex digits; `deps` holds the identities of
/// the recipes built before it.
pub fn identity(
    loaded: &Loaded,
    arch: Arch,
    toolchain: &Toolchain,
    deps: &BTreeMap<String, String>,
) -> Result<String, String> {
    let recipe = &loaded.recipe;
    let mut text = format!(
        "{BUILDER_VERSION}\ntarget {}\nzig {ZIG_VERSION}\nrustc {}\n",
        triple(arch),
        toolchain.rustc.trim()
    );
    // What the builder itself puts around the recipe: the sandbox, the compiler
    // wrapper, the driver of the build kind and the environment (host paths and the
    // number of jobs left out: they must not change what is built).
    let environment: String = environment(arch, Path::new("@SYSROOT@"), Path::new("@ZIG_CACHE@"))
        .into_iter()
        .filter(|(key, _)| key != "JOBS")
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect();
    let builder = format!(
        "{SANDBOX_SCRIPT}\n{CC_WRAPPER}\n{}\n{environment}",
        driver(recipe)
    );
    text.push_str(&format!(
        "builder {}\n",
        to_hex(&sha256(builder.as_bytes()))
    ));
    for (name, hash) in files_of(&loaded.dir)? {
        text.push_str(&format!("file {name} {hash}\n"));
    }
    for source in &recipe.sources {
        if let Some(hash) = &source.sha256 {
            text.push_str(&format!("source {} {hash}\n", source.label()));
        }
    }
    for dep in &recipe.build_deps {
        let hash = deps
            .get(&dep.name)
            .ok_or_else(|| format!("{}: {} is not built yet", recipe.name, dep.name))?;
        text.push_str(&format!("dep {} {hash}\n", dep.name));
    }
    Ok(to_hex(&sha256(text.as_bytes())))
}

/// Every file below `dir` as (relative name, SHA-256), sorted; a symlink hashes as
/// its target.
fn files_of(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|e| format!("{}: {e}", current.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .strip_prefix(dir)
                .expect("below dir")
                .to_string_lossy()
                .into_owned();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let target =
                    std::fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                found.push((name, format!("symlink:{}", target.display())));
            } else {
                found.push((name, sha256_file(&path)?));
            }
        }
    }
    found.sort();
    Ok(found)
}
