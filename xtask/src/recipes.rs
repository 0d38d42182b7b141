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

use crate::board::Arch;
use crate::cmd::Cmd;
use crate::recipe::{self, Build, Origin, Recipe, Source, RECIPE_FILE};
use crate::util::{create_dir, path_str, sha256_file, step, write};
use amber_core::hash::{sha256, to_hex};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Part of every identity: bump it when the builder changes what a build produces.
const BUILDER_VERSION: &str = "amber-recipes 1";

/// The zig release from the `ziglang` wheel that builds C for both musl targets.
pub const ZIG_VERSION: &str = "0.14.1";

/// Where zig is installed (a Python venv) and its global cache, shared by builds.
const ZIG_VENV: &str = "target/tools/zig-venv";
const ZIG_CACHE: &str = "target/tools/zig-cache";

const SANDBOX_SCRIPT: &str = include_str!("sandbox.sh");
const CC_WRAPPER: &str = include_str!("cc-wrapper.sh");

/// Lines of a failed build's log shown on the terminal.
const LOG_TAIL: usize = 30;

/// Where recipes are read from and everything is written; tests use temporary ones.
#[derive(Debug, Clone)]
pub struct Settings {
    pub recipes_dir: PathBuf,
    /// Build trees, logs, stamps and package trees: `<work>/<arch>/...`.
    pub work_dir: PathBuf,
    /// `<repo>/<arch>/` receives images and the signed index.
    pub repo_dir: PathBuf,
    /// The source cache, by SHA-256.
    pub sources_dir: PathBuf,
    /// Signs the index.
    pub secret_key: PathBuf,
}

impl Settings {
    /// The project's directories (`AMBER_RECIPES_DIR` overrides `recipes/`) and the
    /// given key, or the development key.
    pub fn standard(secret_key: Option<PathBuf>) -> Result<Settings, String> {
        let secret_key = match secret_key {
            // Relative to the workspace root, where xtask runs.
            Some(key) if key.is_file() => key,
            Some(key) => return Err(format!("--secret-key {}: no such file", key.display())),
            None => crate::keys::development()?.secret,
        };
        Ok(Settings {
            recipes_dir: std::env::var_os("AMBER_RECIPES_DIR")
                .map_or_else(|| PathBuf::from("recipes"), PathBuf::from),
            work_dir: PathBuf::from("target/recipes"),
            repo_dir: PathBuf::from(crate::run::REPO_DIR),
            sources_dir: PathBuf::from("target/sources"),
            secret_key,
        })
    }
}

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
    let pkg = crate::packages::host_pkg()?;
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
                    index(pkg, &settings.secret_key, &repo, &key_stamp, true)?;
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
    index(pkg, &settings.secret_key, &repo, &key_stamp, changed)?;
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

/// A recipe with the directory it came from.
pub struct Loaded {
    pub recipe: Recipe,
    pub dir: PathBuf,
}

/// Every `<dir>/<name>/recipe.toml`, parsed and checked; directories without one are
/// not recipes.
pub fn load_all(dir: &Path) -> Result<Vec<Loaded>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let file = path.join(RECIPE_FILE);
        if !file.is_file() {
            continue;
        }
        let directory = entry.file_name().to_string_lossy().into_owned();
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let recipe =
            recipe::parse(&directory, &text).map_err(|e| format!("{}: {e}", file.display()))?;
        found.push(Loaded { recipe, dir: path });
    }
    found.sort_by(|a, b| a.recipe.name.cmp(&b.recipe.name));
    Ok(found)
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

/// The toolchain as it enters identities.
struct Toolchain {
    /// `rustc -vV`.
    rustc: String,
    /// The rustc sysroot (of rust-toolchain.toml's toolchain), mounted in the sandbox.
    sysroot: PathBuf,
}

impl Toolchain {
    fn describe() -> Result<Toolchain, String> {
        let rustc = Cmd::new("rustc").arg("-vV").output()?;
        let sysroot = Cmd::new("rustc").args(["--print", "sysroot"]).output()?;
        Ok(Toolchain {
            rustc,
            sysroot: PathBuf::from(sysroot.trim()),
        })
    }
}

/// The build identity of a recipe, as 64 hex digits; `deps` holds the identities of
/// the recipes built before it.
fn identity(
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

pub fn triple(arch: Arch) -> String {
    format!("{}-linux-musl", arch.name())
}

fn cargo_target(arch: Arch) -> String {
    format!("{}-unknown-linux-musl", arch.name())
}

/// One recipe's build for one architecture.
struct Job<'a> {
    settings: &'a Settings,
    loaded: &'a Loaded,
    arch: Arch,
    identity: &'a str,
    toolchain: &'a Toolchain,
    pkg: &'a Path,
}

impl Job<'_> {
    fn recipe(&self) -> &Recipe {
        &self.loaded.recipe
    }

    fn arch_dir(&self) -> PathBuf {
        self.settings.work_dir.join(self.arch.name())
    }

    /// The build tree, mounted at /build.
    fn build_dir(&self) -> PathBuf {
        self.arch_dir().join(&self.recipe().name)
    }

    fn log(&self) -> PathBuf {
        self.arch_dir().join(format!("{}.log", self.recipe().name))
    }

    fn stamp(&self) -> PathBuf {
        self.arch_dir()
            .join(format!("{}.stamp", self.recipe().name))
    }

    /// The packed tree, kept for recipes that build on this one.
    fn tree(&self) -> PathBuf {
        tree_dir(self.settings, self.arch, &self.recipe().name)
    }

    fn image(&self) -> PathBuf {
        self.settings.repo_dir.join(self.arch.name()).join(format!(
            "{}-{}.squashfs",
            self.recipe().name,
            self.recipe().full_version()
        ))
    }

    fn stamp_text(&self, image_hash: &str) -> String {
        format!("identity {}\nimage {image_hash}\n", self.identity)
    }

    fn up_to_date(&self) -> bool {
        let Ok(stamp) = std::fs::read_to_string(self.stamp()) else {
            return false;
        };
        if !self.tree().is_dir() {
            return false;
        }
        sha256_file(&self.image()).is_ok_and(|hash| stamp == self.stamp_text(&hash))
    }

    /// Fetch, build in the sandbox, check, pack. Returns the image's size.
    fn run(&self) -> Result<u64, String> {
        let recipe = self.recipe();
        let _ = std::fs::remove_file(self.stamp());
        let build = self.build_dir();
        if build.exists() {
            remove_tree(&build)?;
        }
        for dir in ["src", "out", "deps", "files", "home", "tools", "tmp"] {
            create_dir(&build.join(dir))?;
        }
        // Sources first: a wrong hash stops everything before any build step.
        let mut fetched = Vec::new();
        for source in &recipe.sources {
            fetched.push(fetch(self.settings, recipe, &self.loaded.dir, source)?);
        }
        copy_tree(&self.loaded.dir, &build.join("files"))?;
        let src = build.join("src");
        for (index, (source, file)) in recipe.sources.iter().zip(&fetched).enumerate() {
            let dir = unpack(source, file, &src, index == 0)?;
            let patches: Vec<&String> = if index == 0 {
                recipe.patches.iter().chain(&source.patches).collect()
            } else {
                source.patches.iter().collect()
            };
            for patch in patches {
                let patch_file = std::fs::canonicalize(self.loaded.dir.join(patch))
                    .map_err(|e| format!("patch {patch}: {e}"))?;
                Cmd::new("patch")
                    .args([
                        "-p1",
                        "--batch",
                        "--forward",
                        "--no-backup-if-mismatch",
                        "-i",
                    ])
                    .arg(path_str(&patch_file)?)
                    .current_dir(&dir)
                    .output()
                    .map_err(|e| format!("patch {patch} does not apply: {e}"))?;
            }
            if matches!(source.origin, Origin::Crate { .. }) {
                vendor(&dir)?;
            }
        }
        if recipe.sources.is_empty() && !recipe.patches.is_empty() {
            return Err("patches need a source to apply to".into());
        }
        for dep in &recipe.build_deps {
            let tree = tree_dir(self.settings, self.arch, &dep.name);
            copy_tree(&tree, &build.join("deps"))?;
        }
        let zig = zig()?;
        self.write_tools(&build.join("tools"), &zig)?;
        self.sandboxed(&zig)?;
        let tree = self.tree();
        if tree.exists() {
            remove_tree(&tree)?;
        }
        select(&build.join("out"), &tree, &recipe.files)?;
        check_tree(&tree, self.arch, recipe.allow_dynamic)?;
        let size = self.pack(&tree)?;
        remove_tree(&build)?;
        let hash = sha256_file(&self.image())?;
        write(&self.stamp(), self.stamp_text(&hash).as_bytes())?;
        Ok(size)
    }

    /// The compiler wrappers and the driver script in `/build/tools`.
    fn write_tools(&self, tools: &Path, zig: &Path) -> Result<(), String> {
        let triple = triple(self.arch);
        let zig_text = path_str(zig)?;
        for (name, tool) in [("amber-cc", "cc"), ("amber-c++", "c++")] {
            let text = CC_WRAPPER
                .replace("@ZIG@", zig_text)
                .replace("@TOOL@", tool)
                .replace("@TRIPLE@", &triple);
            write_executable(&tools.join(name), &text)?;
        }
        for tool in ["ar", "ranlib", "objcopy"] {
            let text = format!("#!/bin/sh\nexec {zig_text} {tool} \"$@\"\n");
            write_executable(&tools.join(format!("amber-{tool}")), &text)?;
        }
        // zig links with -s already (LDFLAGS); a strip step has nothing left to do.
        write_executable(&tools.join("amber-strip"), "#!/bin/sh\nexit 0\n")?;
        // Cross prefixes, for builds that take CROSS_COMPILE=$TRIPLE- or probe names.
        for (suffix, target) in [
            ("gcc", "amber-cc"),
            ("cc", "amber-cc"),
            ("g++", "amber-c++"),
            ("c++", "amber-c++"),
            ("ar", "amber-ar"),
            ("ranlib", "amber-ranlib"),
            ("objcopy", "amber-objcopy"),
            ("strip", "amber-strip"),
        ] {
            std::os::unix::fs::symlink(target, tools.join(format!("{triple}-{suffix}")))
                .map_err(|e| format!("{}: {e}", tools.display()))?;
        }
        write_executable(&tools.join("amber-build.sh"), &driver(self.recipe()))
    }

    /// Run the driver in the sandbox, its output into the log.
    fn sandboxed(&self, zig: &Path) -> Result<(), String> {
        let build = absolute(&self.build_dir())?;
        let root = absolute(&self.arch_dir())?.join(format!("{}.root", self.recipe().name));
        create_dir(&root)?;
        let script = build.join("tools/sandbox.sh");
        write(&script, SANDBOX_SCRIPT.as_bytes())?;
        let zig_dir = zig.parent().expect("zig lives in a directory");
        let zig_cache = absolute(Path::new(ZIG_CACHE))?;
        create_dir(&zig_cache)?;
        let sysroot = &self.toolchain.sysroot;
        let readonly = format!("{}:{}", sysroot.display(), zig_dir.display());
        let log_path = self.log();
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut command = std::process::Command::new("unshare");
        command
            .args(["--user", "--map-root-user", "--mount", "--net", "--fork"])
            .args(["--propagation", "private", "--", "sh", "-eu"])
            .arg(&script)
            .arg(&root)
            .arg(&build)
            .arg(&readonly)
            .arg(&zig_cache)
            .args(["sh", "-eu", "/build/tools/amber-build.sh"])
            .env_clear()
            .envs(environment(self.arch, sysroot, &zig_cache))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let status = command
            .status()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let _ = std::fs::remove_dir(&root);
        if status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of {} ---", log_path.display());
        for line in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
            eprintln!("{line}");
        }
        eprintln!("---");
        Err(format!(
            "build failed ({status}); log: {}",
            log_path.display()
        ))
    }

    /// `pkg pack` the tree into the repository; returns the image's size.
    fn pack(&self, tree: &Path) -> Result<u64, String> {
        let recipe = self.recipe();
        let image = self.image();
        let fresh = image.with_extension("squashfs.new");
        let _ = std::fs::remove_file(&fresh);
        let mut command = Cmd::new(path_str(self.pkg)?)
            .args(["pack", path_str(tree)?, "-o", path_str(&fresh)?])
            .args(["--name", &recipe.name, "--version", &recipe.full_version()])
            .args(["--arch", self.arch.name()])
            .args(["--description", &recipe.description])
            .args(["--license", &recipe.license])
            .args(["--recipe-hash", self.identity])
            .env("SOURCE_DATE_EPOCH", "0");
        for dep in &recipe.deps {
            command = command.args(["--dep", dep]);
        }
        for name in &recipe.provides {
            command = command.args(["--provides", name]);
        }
        command.output()?;
        rename(&fresh, &image)?;
        crate::build::file_size(&image)
    }
}

/// The commands of the recipe's build kind, as a shell script run in `/build/src`.
fn driver(recipe: &Recipe) -> String {
    let quote_all = |args: &[String]| -> String {
        args.iter()
            .map(|arg| format!(" {}", shell_quote(arg)))
            .collect()
    };
    let body = match &recipe.build {
        Build::Script { script } => {
            format!("exec sh -eux \"$FILES\"/{}\n", shell_quote(script))
        }
        Build::ConfigureMake {
            configure_args,
            make_args,
        } => format!(
            "./configure --host=\"$TRIPLE\" --prefix=/{}\n\
             make -j\"$JOBS\"{make}\n\
             make{make} DESTDIR=\"$OUT\" install\n",
            quote_all(configure_args),
            make = quote_all(make_args)
        ),
        Build::Make { make_args } => format!(
            "make -j\"$JOBS\"{make}\nmake{make} DESTDIR=\"$OUT\" install\n",
            make = quote_all(make_args)
        ),
        Build::Cargo { cargo_args, bins } => {
            let mut text = format!(
                "locked=\nif [ -f Cargo.lock ]; then locked=--locked; fi\n\
                 cargo build --release --offline $locked --target \"$CARGO_TARGET\"{}\n\
                 mkdir -p \"$OUT/bin\"\n",
                quote_all(cargo_args)
            );
            for bin in bins {
                text.push_str(&format!(
                    "cp \"target/$CARGO_TARGET/release/\"{} \"$OUT/bin/\"\n",
                    shell_quote(bin)
                ));
            }
            text
        }
    };
    format!(
        "#!/bin/sh\n# {} build of {}\nset -eux\numask 022\ncd \"$SRC\"\n{body}",
        recipe.build.kind(),
        recipe.name
    )
}

/// The build environment (recipes/README.md lists it).
fn environment(arch: Arch, sysroot: &Path, zig_cache: &Path) -> Vec<(String, String)> {
    let target = cargo_target(arch);
    let env_target = target.replace('-', "_");
    let sysroot_bin = sysroot.join("bin");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut env: Vec<(String, String)> = [
        ("SRC", "/build/src".to_owned()),
        ("OUT", "/build/out".to_owned()),
        ("DEPS", "/build/deps".to_owned()),
        ("FILES", "/build/files".to_owned()),
        ("HOME", "/build/home".to_owned()),
        ("TMPDIR", "/tmp".to_owned()),
        ("ARCH", arch.name().to_owned()),
        ("TRIPLE", triple(arch)),
        ("CARGO_TARGET", target.clone()),
        ("CC", "/build/tools/amber-cc".to_owned()),
        ("CXX", "/build/tools/amber-c++".to_owned()),
        ("AR", "/build/tools/amber-ar".to_owned()),
        ("RANLIB", "/build/tools/amber-ranlib".to_owned()),
        ("OBJCOPY", "/build/tools/amber-objcopy".to_owned()),
        ("STRIP", "/build/tools/amber-strip".to_owned()),
        ("HOSTCC", "gcc".to_owned()),
        ("HOST_CC", "gcc".to_owned()),
        ("HOST_CXX", "g++".to_owned()),
        (
            "CFLAGS",
            "-Os -ffile-prefix-map=/build=. -ffunction-sections -fdata-sections".to_owned(),
        ),
        (
            "CXXFLAGS",
            "-Os -ffile-prefix-map=/build=. -ffunction-sections -fdata-sections".to_owned(),
        ),
        ("CPPFLAGS", "-I/build/deps/include".to_owned()),
        (
            "LDFLAGS",
            "-static -s -Wl,--gc-sections -L/build/deps/lib".to_owned(),
        ),
        ("JOBS", jobs.to_string()),
        ("SOURCE_DATE_EPOCH", "0".to_owned()),
        ("LC_ALL", "C".to_owned()),
        ("TZ", "UTC".to_owned()),
        (
            "PATH",
            format!(
                "/build/tools:{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                sysroot_bin.display()
            ),
        ),
        ("RUSTC", sysroot_bin.join("rustc").display().to_string()),
        ("CARGO", sysroot_bin.join("cargo").display().to_string()),
        ("CARGO_HOME", "/build/home/.cargo".to_owned()),
        ("CARGO_NET_OFFLINE", "true".to_owned()),
        ("CARGO_INCREMENTAL", "0".to_owned()),
        ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z".to_owned()),
        ("CARGO_PROFILE_RELEASE_LTO", "true".to_owned()),
        ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1".to_owned()),
        ("CARGO_PROFILE_RELEASE_PANIC", "abort".to_owned()),
        ("CARGO_PROFILE_RELEASE_STRIP", "symbols".to_owned()),
        (
            "RUSTFLAGS",
            "-C linker=rust-lld -C target-feature=+crt-static --remap-path-prefix=/build=."
                .to_owned(),
        ),
        ("ZIG_GLOBAL_CACHE_DIR", zig_cache.display().to_string()),
        ("ZIG_LOCAL_CACHE_DIR", "/build/tmp/zig-cache".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    // The cc crate (Rust build scripts compiling C) looks for per-target names.
    for (key, value) in [
        ("CC", "/build/tools/amber-cc"),
        ("CXX", "/build/tools/amber-c++"),
        ("AR", "/build/tools/amber-ar"),
    ] {
        env.push((format!("{key}_{env_target}"), value.to_owned()));
    }
    env
}

fn tree_dir(settings: &Settings, arch: Arch, name: &str) -> PathBuf {
    settings
        .work_dir
        .join(arch.name())
        .join(format!("{name}.tree"))
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    create_dir(path)?;
    std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=+:,@%".contains(&b))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn write_executable(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    write(path, text.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn remove_tree(path: &Path) -> Result<(), String> {
    // Builds may leave read-only directories (Go module caches, ...): make them writable.
    let _ = Cmd::new("chmod")
        .args(["-R", "u+w", path_str(path)?])
        .output();
    std::fs::remove_dir_all(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Copy the contents of `from` into `into` (merged; symlinks kept as symlinks).
fn copy_tree(from: &Path, into: &Path) -> Result<(), String> {
    create_dir(into)?;
    Cmd::new("cp")
        .args(["-a", "--no-preserve=ownership"])
        .arg(format!("{}/.", path_str(from)?))
        .arg(path_str(into)?)
        .output()
        .map(|_| ())
}

// ---------------------------------------------------------------------------------
// Sources

/// The verified file of a source: a cache entry, or the path in the recipe directory.
fn fetch(
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
                    crate::debsrc::fetch(settings, package, expected, &dir)
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

pub fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))
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
fn unpack(source: &Source, file: &Path, src: &Path, first: bool) -> Result<PathBuf, String> {
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
fn vendor(dir: &Path) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------
// Toolchain

/// The zig executable, installed from the pinned `ziglang` wheel into a venv under
/// target/tools/ on first use.
pub fn zig() -> Result<PathBuf, String> {
    let venv = absolute(Path::new(ZIG_VENV))?;
    let find = || -> Option<PathBuf> {
        let lib = venv.join("lib");
        std::fs::read_dir(&lib)
            .ok()?
            .flatten()
            .map(|python| python.path().join("site-packages/ziglang/zig"))
            .find(|zig| zig.is_file())
    };
    if let Some(zig) = find() {
        let version = Cmd::new(path_str(&zig)?).arg("version").output();
        if version.is_ok_and(|v| v.trim() == ZIG_VERSION) {
            return Ok(zig);
        }
    }
    step(&format!(
        "installing zig {ZIG_VERSION} (the ziglang wheel) into {ZIG_VENV}"
    ));
    let started = Instant::now();
    if !venv.join("bin/pip").is_file() {
        Cmd::new("python3")
            .args(["-m", "venv", path_str(&venv)?])
            .run()
            .map_err(|e| format!("{e} (Debian: apt-get install python3-venv)"))?;
    }
    Cmd::new(path_str(&venv.join("bin/pip"))?)
        .args(["install", "--disable-pip-version-check", "--quiet"])
        .arg(format!("ziglang=={ZIG_VERSION}"))
        .run()?;
    let zig = find().ok_or_else(|| format!("the ziglang wheel put no zig into {ZIG_VENV}"))?;
    let version = Cmd::new(path_str(&zig)?).arg("version").output()?;
    if version.trim() != ZIG_VERSION {
        return Err(format!(
            "{}: version {} instead of {ZIG_VERSION}",
            zig.display(),
            version.trim()
        ));
    }
    eprintln!(
        "  zig {ZIG_VERSION} installed in {:.1} s (its first compile per target builds musl, about a minute)",
        started.elapsed().as_secs_f64()
    );
    Ok(zig)
}

// ---------------------------------------------------------------------------------
// Checks of the built tree

/// Copy what the `files` globs select from `out` to `tree` (all of it without globs).
fn select(out: &Path, tree: &Path, globs: &[String]) -> Result<(), String> {
    if globs.is_empty() {
        return rename(out, tree);
    }
    create_dir(tree)?;
    let mut used = vec![false; globs.len()];
    let mut pending = vec![out.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(out).expect("below out");
            let name = relative.to_string_lossy();
            let matched: Vec<usize> = globs
                .iter()
                .enumerate()
                .filter(|(_, glob)| recipe::glob_matches(glob, &name))
                .map(|(index, _)| index)
                .collect();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if matched.is_empty() {
                if is_dir {
                    pending.push(path);
                }
                continue;
            }
            for index in matched {
                used[index] = true;
            }
            let target = tree.join(relative);
            create_dir(target.parent().expect("below tree"))?;
            Cmd::new("cp")
                .args([
                    "-a",
                    "--no-preserve=ownership",
                    path_str(&path)?,
                    path_str(&target)?,
                ])
                .output()?;
        }
    }
    if let Some(index) = used.iter().position(|used| !used) {
        return Err(format!(
            "package.files: `{}` matches nothing in $OUT",
            globs[index]
        ));
    }
    Ok(())
}

/// Every ELF static and for `arch` (unless dynamic linking is allowed), every symlink
/// inside the package, nothing but files, directories and symlinks.
pub fn check_tree(tree: &Path, arch: Arch, allow_dynamic: bool) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let mut pending = vec![tree.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(tree).expect("below tree").to_path_buf();
            let shown = relative.display();
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let target =
                    std::fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if !symlink_stays_inside(&relative, &target) {
                    return Err(format!(
                        "{shown}: symlink to {} leaves the package",
                        target.display()
                    ));
                }
            } else if kind.is_file() {
                files += 1;
                let bytes = crate::util::read(&path)?;
                match elf_linkage(&bytes) {
                    Ok(None) => {}
                    Ok(Some(elf)) => {
                        if elf.machine != arch.elf_machine() {
                            return Err(format!(
                                "{shown}: ELF for machine {}, not {}",
                                elf.machine,
                                arch.name()
                            ));
                        }
                        if elf.dynamic && !allow_dynamic {
                            return Err(format!(
                                "{shown}: dynamically linked ({}); recipes build static \
                                 executables unless build.allow-dynamic is set",
                                elf.reason
                            ));
                        }
                    }
                    Err(reason) => return Err(format!("{shown}: {reason}")),
                }
            } else {
                let what = if kind.is_fifo() {
                    "a fifo"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "a device"
                };
                return Err(format!("{shown}: {what} cannot go in a package"));
            }
        }
    }
    if files == 0 {
        return Err("the package holds no files ($OUT is empty)".into());
    }
    Ok(())
}

/// Whether a relative symlink at `link` (relative to the package root) stays inside.
fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    use std::path::Component;
    if target.is_absolute() {
        return false;
    }
    let mut depth = link.components().count() as isize - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

struct Elf {
    machine: u16,
    dynamic: bool,
    reason: &'static str,
}

/// Read an ELF file's machine and whether it needs a dynamic loader or libraries
/// (PT_INTERP, or DT_NEEDED in PT_DYNAMIC); `None` for a file that is not ELF.
fn elf_linkage(bytes: &[u8]) -> Result<Option<Elf>, String> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let bad = |what: &str| format!("malformed ELF: {what}");
    if bytes.len() < 64 {
        return Err(bad("short header"));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("ELF is not 64-bit little-endian, as both targets are".into());
    }
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let machine = u16_at(18).ok_or_else(|| bad("header"))?;
    let phoff = u64_at(32).ok_or_else(|| bad("header"))? as usize;
    let phentsize = u16_at(54).ok_or_else(|| bad("header"))? as usize;
    let phnum = u16_at(56).ok_or_else(|| bad("header"))? as usize;
    let mut elf = Elf {
        machine,
        dynamic: false,
        reason: "",
    };
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        let kind = u32_at(at).ok_or_else(|| bad("program header"))?;
        match kind {
            // PT_INTERP: a dynamic loader is needed.
            3 => {
                elf.dynamic = true;
                elf.reason = "it has an interpreter";
            }
            // PT_DYNAMIC: a static PIE has one too; only DT_NEEDED entries matter.
            2 => {
                let offset = u64_at(at + 8).ok_or_else(|| bad("program header"))? as usize;
                let size = u64_at(at + 32).ok_or_else(|| bad("program header"))? as usize;
                let mut entry = offset;
                while entry + 16 <= offset.saturating_add(size) {
                    let tag = u64_at(entry).ok_or_else(|| bad("dynamic section"))?;
                    if tag == 0 {
                        break;
                    }
                    if tag == 1 {
                        elf.dynamic = true;
                        elf.reason = "it needs shared libraries";
                    }
                    entry += 16;
                }
            }
            _ => {}
        }
    }
    Ok(Some(elf))
}

// ---------------------------------------------------------------------------------
// The index

/// Sign the index again when an image changed, when there is none, when it expires
/// within a week, or when another key signed it (`key_stamp` remembers the SHA-256 of
/// the secret key file that did). The serial only grows, as devices refuse an older one.
fn index(
    pkg: &Path,
    secret: &Path,
    repo: &Path,
    key_stamp: &Path,
    changed: bool,
) -> Result<(), String> {
    let key = sha256_file(secret)?;
    let same_key = std::fs::read_to_string(key_stamp).is_ok_and(|text| text.trim() == key);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let old = std::fs::read_to_string(repo.join("index")).ok();
    let field = |name: &str| -> Option<u64> {
        old.as_deref()?
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let fresh = field("expires").is_some_and(|expires| expires > now + 7 * 24 * 3600)
        && repo.join("index.minisig").is_file();
    if fresh && same_key && !changed && old.as_deref().is_some_and(|text| lists_images(repo, text))
    {
        return Ok(());
    }
    let serial = field("serial").map_or(now, |serial| now.max(serial + 1));
    Cmd::new(path_str(pkg)?)
        .args(["repo", "index", path_str(repo)?])
        .args(["--secret-key", path_str(secret)?])
        .args(["--serial", &serial.to_string()])
        .output()?;
    create_dir(key_stamp.parent().expect("in a directory"))?;
    write(key_stamp, format!("{key}\n").as_bytes())
}

/// Whether an index lists exactly the images in `repo`, at their sizes.
fn lists_images(repo: &Path, index: &str) -> bool {
    let mut listed = 0;
    for line in index.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["pkg", name, version, size, ..] = words.as_slice() else {
            continue;
        };
        listed += 1;
        let file = repo.join(format!("{name}-{version}.squashfs"));
        let size = size.strip_prefix("size=").unwrap_or_default();
        if std::fs::metadata(&file).map_or(true, |m| m.len().to_string() != size) {
            return false;
        }
    }
    let images = std::fs::read_dir(repo).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".squashfs"))
            .count()
    });
    listed == images
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks() {
        for (link, target, inside) in [
            ("bin/grep", "sh", true),
            ("bin/grep", "../sbin/x", true),
            ("bin/grep", "../../x", false),
            ("grep", "../x", false),
            ("bin/grep", "/bin/sh", false),
            ("a/b/c", "../../d/./e", true),
            ("a/b/c", "x/../../../..", false),
        ] {
            assert_eq!(
                symlink_stays_inside(Path::new(link), Path::new(target)),
                inside,
                "{link} -> {target}"
            );
        }
    }

    #[test]
    fn elf_headers() {
        assert!(elf_linkage(b"#!/bin/sh\n").unwrap().is_none());
        assert!(elf_linkage(b"\x7fELF\x02\x01").is_err());
        // The running test binary: an x86_64 or aarch64 ELF, linked against glibc.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let elf = elf_linkage(&me).unwrap().unwrap();
        assert!(elf.dynamic);
        assert!([62, 183].contains(&elf.machine));
    }

    /// The compiler wrapper drops the options lld rejects and the caller's target,
    /// in every spelling, and passes the rest on in order.
    #[test]
    fn compiler_wrapper() {
        let dir = std::env::temp_dir().join(format!("amber-cc-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("cc");
        let text = CC_WRAPPER
            .replace("@ZIG@", "printf '%s\\n'")
            .replace("@TOOL@", "cc")
            .replace("@TRIPLE@", "aarch64-linux-musl");
        write_executable(&script, &text).unwrap();
        for (args, expected) in [
            (&["-Os", "-c", "a.c"][..], "-Os -c a.c"),
            (&["-Wl,--sort-common,--warn-common", "-o", "x"], "-o x"),
            (&["-Wl,-Map,x.map,--gc-sections"], "-Wl,--gc-sections"),
            (&["-Wl,-Map", "-Wl,x.map", "-s"], "-s"),
            (&["-Wl,--sort-section", "-Wl,alignment", "-lz"], "-lz"),
            (&["-Wl,--sort-section=alignment", "-Wl,--verbose"], ""),
            (
                &["-Xlinker", "-Map", "-Xlinker", "m", "-Xlinker", "-z"],
                "-Xlinker -z",
            ),
            (
                &["--target=x86_64-unknown-linux-musl", "-target", "x", "a.o"],
                "a.o",
            ),
            (&["-DX=\"a b\"", "*.c"], "-DX=\"a b\" *.c"),
        ] {
            let output = std::process::Command::new("sh")
                .arg(&script)
                .args(args)
                .output()
                .unwrap();
            let text = String::from_utf8(output.stdout).unwrap();
            let words: Vec<&str> = text.lines().collect();
            assert_eq!(
                words[..3],
                ["cc", "-target", "aarch64-linux-musl"],
                "{args:?}"
            );
            assert_eq!(words[3..].join(" "), expected, "{args:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("PROGRAMS=dropbear"), "PROGRAMS=dropbear");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    fn loaded(name: &str, deps: &str) -> Loaded {
        let text = format!(
            "name = \"{name}\"\nversion = \"1.2\"\nrevision = 0\ndescription = \"d\"\n\
             license = \"MIT\"\n[build]\nkind = \"make\"\ndeps = [{deps}]\n"
        );
        Loaded {
            recipe: recipe::parse(name, &text).unwrap(),
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
