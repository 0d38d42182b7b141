//! One recipe's build for one architecture: the build tree laid out, its sources fetched
//! and unpacked, the build run in the sandbox (`sandbox.sh`) with the compiler wrappers
//! (`cc-wrapper.sh`), the result selected, checked and packed with the host `pkg`.

use super::elf::check_tree;
use super::settings::Settings;
use super::sources::{fetch, unpack, vendor};
use super::zig::{zig, ZIG_CACHE};
use crate::board::Arch;
use crate::cmd::Cmd;
use crate::recipe::{self, Build, Loaded, Origin, Recipe};
use crate::util::{
    absolute, copy_tree, create_dir, path_str, remove_tree, rename, sha256_file, write,
};
use std::path::{Path, PathBuf};

pub const SANDBOX_SCRIPT: &str = include_str!("sandbox.sh");
pub const CC_WRAPPER: &str = include_str!("cc-wrapper.sh");

/// Lines of a failed build's log shown on the terminal.
const LOG_TAIL: usize = 30;

/// The toolchain as it enters identities.
pub struct Toolchain {
    /// `rustc -vV`.
    pub rustc: String,
    /// The rustc sysroot (of rust-toolchain.toml's toolchain), mounted in the sandbox.
    pub sysroot: PathBuf,
}

impl Toolchain {
    pub fn describe() -> Result<Toolchain, String> {
        let rustc = Cmd::new("rustc").arg("-vV").output()?;
        let sysroot = Cmd::new("rustc").args(["--print", "sysroot"]).output()?;
        Ok(Toolchain {
            rustc,
            sysroot: PathBuf::from(sysroot.trim()),
        })
    }
}

pub fn triple(arch: Arch) -> String {
    format!("{}-linux-musl", arch.name())
}

fn cargo_target(arch: Arch) -> String {
    format!("{}-unknown-linux-musl", arch.name())
}

/// One recipe's build for one architecture.
pub struct Job<'a> {
    pub settings: &'a Settings,
    pub loaded: &'a Loaded,
    pub arch: Arch,
    pub identity: &'a str,
    pub toolchain: &'a Toolchain,
    pub pkg: &'a Path,
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

    pub fn log(&self) -> PathBuf {
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

    pub fn image(&self) -> PathBuf {
        self.settings.repo_dir.join(self.arch.name()).join(format!(
            "{}-{}.squashfs",
            self.recipe().name,
            self.recipe().full_version()
        ))
    }

    fn stamp_text(&self, image_hash: &str) -> String {
        format!("identity {}\nimage {image_hash}\n", self.identity)
    }

    pub fn up_to_date(&self) -> bool {
        let Ok(stamp) = std::fs::read_to_string(self.stamp()) else {
            return false;
        };
        if !self.tree().is_dir() {
            return false;
        }
        sha256_file(&self.image()).is_ok_and(|hash| stamp == self.stamp_text(&hash))
    }

    /// Fetch, build in the sandbox, check, pack. Returns the image's size.
    pub fn run(&self) -> Result<u64, String> {
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
                crate::util::apply_patch(&self.loaded.dir.join(patch), &dir)?;
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
pub fn driver(recipe: &Recipe) -> String {
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
pub fn environment(arch: Arch, sysroot: &Path, zig_cache: &Path) -> Vec<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
