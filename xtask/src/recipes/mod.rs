//! `cargo xtask recipes`: build packages from `recipes/` into the signed repository.
//!
//! For each selected recipe (and, first, the recipes it needs to build), in dependency
//! order:
//!
//! 1. its build identity is computed: SHA-256 over the builder's version and its own
//!    inputs (sandbox script, compiler wrapper, the kind's commands, the environment),
//!    the target, the toolchains (`rustc -vV`, the pinned zig), every file of the recipe directory
//!    (`recipe.toml`, patches, scripts, files) with its name, the SHA-256 of every
//!    fetched source, and the identities of its build dependencies. When the stamp
//!    `target/recipes/<arch>/<name>.stamp` names the same identity and the image it
//!    made is still there, the recipe is up to date;
//! 2. sources are fetched into the cache `target/sources/<sha256>/` (the URL, then the
//!    same file from Debian's source package, or a crate through cargo) and checked
//!    against their SHA-256; a mismatch is refused and nothing is built;
//! 3. the build tree is laid out (`src/`, `out/`, `deps/`, `files/`, `home/`, `tools/`),
//!    patches applied, crates vendored, and the build runs in the sandbox
//!    (`sandbox.sh`: new user, mount and network namespaces, the tree at `/build`, the
//!    host read-only and mostly hidden), its output in `target/recipes/<arch>/<name>.log`;
//! 4. the result is checked (static ELF of the right machine unless allowed, no
//!    symlink leaving the package, only files and directories), packed with the host
//!    `pkg pack` (the identity goes into `.pkg/meta` as the recipe hash) into
//!    `target/repo/<arch>/<name>-<version>-r<revision>.squashfs`, and the index is
//!    signed again.

mod elf;
mod identity;
mod index;
mod job;
mod settings;
mod sources;
mod zig;

pub use settings::{Settings, REPO_DIR};

use crate::board::Arch;
use crate::recipe::{load_all, Loaded};
use crate::util::create_dir;
use identity::identity;
use job::{Job, Toolchain};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `cargo xtask recipes --board B [--secret-key F] [NAME...]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut board = None;
    let mut secret = None;
    let mut names = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (option, inline) = match arg.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| format!("recipes: {option} needs a value"))
        };
        match option {
            "--board" => board = Some(value()?),
            "--secret-key" => secret = Some(PathBuf::from(value()?)),
            _ if arg.starts_with('-') => {
                return Err(format!(
                    "recipes: unknown argument `{arg}`; options: --board --secret-key"
                ))
            }
            _ => names.push(arg.clone()),
        }
    }
    let board = match board {
        Some(name) => crate::board::load(&name)?,
        None => {
            return Err(format!(
                "recipes: --board is required; boards: {}",
                crate::board::names()?.join(", ")
            ))
        }
    };
    let settings = Settings::standard(secret)?;
    let pkg = crate::build::host_pkg()?;
    let names = if names.is_empty() {
        load_all(&settings.recipes_dir)?
            .into_iter()
            .map(|loaded| loaded.recipe.name)
            .collect()
    } else {
        names
    };
    let outcomes = build(&settings, &pkg, board.arch, &names)?;
    // The table the closing note asks for; an up-to-date recipe shows no time.
    println!(
        "{:<16} {:<8} {:>10} {:>10}",
        "package", "arch", "image KiB", "build s"
    );
    for outcome in &outcomes {
        let time = if outcome.built {
            format!("{:.1}", outcome.seconds)
        } else {
            "-".to_owned()
        };
        println!(
            "{:<16} {:<8} {:>10} {:>10}",
            outcome.name,
            board.arch.name(),
            outcome.image_bytes.div_ceil(1024),
            time
        );
    }
    Ok(())
}

/// Build the named recipes (and their build dependencies) for `arch` into
/// `<repo>/<arch>/` and sign its index when an image changed. Returns what was done
/// per recipe, in build order.
/// Publish a system release in the standard repository (`target/repo/<arch>/system/`),
/// signed with `settings`' key, the index signed again when it changed.
pub fn publish_system(
    settings: &Settings,
    pkg: &Path,
    arch: Arch,
    release: (&str, &str),
    file: &Path,
    rollout: Option<&str>,
) -> Result<(), String> {
    let repo = settings.repo_dir.join(arch.name());
    create_dir(&repo)?;
    let key_stamp = settings.work_dir.join(arch.name()).join("index-key");
    index::publish_system(
        pkg,
        &settings.secret_key,
        &repo,
        &key_stamp,
        release,
        file,
        rollout,
    )
}

pub fn build(
    settings: &Settings,
    pkg: &Path,
    arch: Arch,
    names: &[String],
) -> Result<Vec<Outcome>, String> {
    let all = load_all(&settings.recipes_dir)?;
    let order = build_order(&all, names)?;
    let toolchain = Toolchain::describe()?;
    let mut identities: BTreeMap<String, String> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let repo = settings.repo_dir.join(arch.name());
    create_dir(&repo)?;
    let key_stamp = settings.work_dir.join(arch.name()).join("index-key");
    let mut changed = false;
    for (position, loaded) in order.iter().enumerate() {
        let recipe = &loaded.recipe;
        let identity = identity(loaded, arch, &toolchain, &identities)?;
        identities.insert(recipe.name.clone(), identity.clone());
        let label = format!(
            "[{}/{}] {} {} {}",
            position + 1,
            order.len(),
            recipe.name,
            recipe.full_version(),
            arch.name()
        );
        let job = Job {
            settings,
            loaded,
            arch,
            identity: &identity,
            toolchain: &toolchain,
            pkg,
        };
        if job.up_to_date() {
            eprintln!("{label}: up to date");
            outcomes.push(Outcome {
                name: recipe.name.clone(),
                identity: identity.clone(),
                built: false,
                seconds: 0.0,
                image_bytes: std::fs::metadata(job.image()).map_or(0, |m| m.len()),
            });
            continue;
        }
        eprintln!("{label}: building (log {})", job.log().display());
        let started = Instant::now();
        let image_bytes = match job.run() {
            Ok(bytes) => bytes,
            Err(error) => {
                // What was built before stays usable: its images get into the index.
                if changed {
                    index::refresh(pkg, &settings.secret_key, &repo, &key_stamp, true)?;
                }
                return Err(format!("{}: {error}", recipe.name));
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{label}: built in {seconds:.1} s, {} KiB",
            image_bytes.div_ceil(1024)
        );
        changed = true;
        outcomes.push(Outcome {
            name: recipe.name.clone(),
            identity,
            built: true,
            seconds,
            image_bytes,
        });
    }
    index::refresh(pkg, &settings.secret_key, &repo, &key_stamp, changed)?;
    Ok(outcomes)
}

/// What happened to one recipe.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub identity: String,
    pub built: bool,
    pub seconds: f64,
    pub image_bytes: u64,
}

/// The named recipes and their build dependencies, dependencies first.
fn build_order<'a>(all: &'a [Loaded], names: &[String]) -> Result<Vec<&'a Loaded>, String> {
    fn visit<'a>(
        all: &'a [Loaded],
        name: &str,
        needed_by: Option<&str>,
        path: &mut Vec<String>,
        order: &mut Vec<&'a Loaded>,
    ) -> Result<(), String> {
        if order.iter().any(|done| done.recipe.name == name) {
            return Ok(());
        }
        if path.iter().any(|seen| seen == name) {
            return Err(format!(
                "build dependency cycle: {} -> {name}",
                path.join(" -> ")
            ));
        }
        let loaded = all
            .iter()
            .find(|loaded| loaded.recipe.name == name)
            .ok_or_else(|| match needed_by {
                Some(parent) => format!("{parent}: build dependency `{name}` has no recipe"),
                None => format!("no recipe `{name}`"),
            })?;
        path.push(name.to_owned());
        for dep in &loaded.recipe.build_deps {
            visit(all, &dep.name, Some(name), path, order)?;
            let found = all
                .iter()
                .find(|other| other.recipe.name == dep.name)
                .expect("visited");
            let version = amber_core::version::Version::parse(&found.recipe.full_version())
                .map_err(|e| format!("{}: {e}", dep.name))?;
            if !dep.allows(&version) {
                return Err(format!(
                    "{name}: build dependency {} is not met by {} {}",
                    dep_text(dep),
                    dep.name,
                    found.recipe.full_version()
                ));
            }
        }
        path.pop();
        order.push(loaded);
        Ok(())
    }
    let mut order = Vec::new();
    for name in names {
        visit(all, name, None, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

fn dep_text(dep: &amber_core::version::Dependency) -> String {
    match &dep.constraint {
        Some(constraint) => format!("{}{constraint}", dep.name),
        None => dep.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(name: &str, deps: &str) -> Loaded {
        let text = format!(
            "name = \"{name}\"\nversion = \"1.2\"\nrevision = 0\ndescription = \"d\"\n\
             license = \"MIT\"\n[build]\nkind = \"make\"\ndeps = [{deps}]\n"
        );
        Loaded {
            recipe: crate::recipe::parse(name, &text).unwrap(),
            dir: PathBuf::from(name),
        }
    }

    #[test]
    fn order_of_builds() {
        let names = |order: Vec<&Loaded>| -> Vec<String> {
            order.iter().map(|l| l.recipe.name.clone()).collect()
        };
        let all = [
            loaded("app", "\"lib>=1.0\", \"zlib\""),
            loaded("lib", "\"zlib\""),
            loaded("zlib", ""),
        ];
        let order = build_order(&all, &["app".into()]).unwrap();
        assert_eq!(names(order), ["zlib", "lib", "app"]);
        let order = build_order(&all, &["zlib".into(), "lib".into()]).unwrap();
        assert_eq!(names(order), ["zlib", "lib"]);
        let error = build_order(&all, &["nothing".into()]).err().unwrap();
        assert_eq!(error, "no recipe `nothing`");

        let all = [loaded("app", "\"lib>=2\""), loaded("lib", "")];
        let error = build_order(&all, &["app".into()]).err().unwrap();
        assert!(error.contains("lib>=2 is not met by lib 1.2-r0"), "{error}");
        let all = [loaded("a", "\"b\""), loaded("b", "\"a\"")];
        let error = build_order(&all, &["a".into()]).err().unwrap();
        assert!(error.contains("cycle: a -> b -> a"), "{error}");
        let all = [loaded("a", "\"gone\"")];
        let error = build_order(&all, &["a".into()]).err().unwrap();
        assert_eq!(error, "a: build dependency `gone` has no recipe");
    }

    #[test]
    fn the_recipes_directory_parses() {
        let dir = crate::cmd::workspace_root().join("recipes");
        let all = load_all(&dir).unwrap();
        let names: Vec<String> = all.iter().map(|l| l.recipe.name.clone()).collect();
        build_order(&all, &names).unwrap();
    }
}
