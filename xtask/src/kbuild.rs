//! A board's own kernel: Debian's kernel source built with a configuration of the
//! board's (`[kernel] build = "kernels/<name>.config"`).
//!
//! Debian's kernels carry drivers for every machine as modules and are made to boot
//! anything; the price is memory. The cloud kernel needs 51.5 MiB to decompress into
//! (its `init_size`), and through the firmware it boots in 144 MiB at the least
//! (`cargo xtask bench memory`). A board that is one known machine builds only what
//! it needs, everything built in: the same source, with Debian's patches and security
//! fixes, at the version of Debian's own kernel packages.
//!
//! The source is Debian's `linux-source` package (a metapackage, followed to the
//! versioned `linux-source-<x.y>`), fetched like the kernel packages and unpacked once
//! into `target/kernel-build/source/<version>/`. Each board builds out of tree
//! (`O=`) in `target/kernel-build/<board>/`, so changing its configuration rebuilds
//! only what the change touches. The configuration starts from the kernel's
//! `tinyconfig` (everything off that can be), then the board's fragment is applied and
//! `olddefconfig` fills in what follows from it. Every line of the fragment must hold
//! in the result: an option whose dependencies are missing is silently dropped by
//! Kconfig, so xtask names it and stops instead.
//!
//! The build is reproducible: its time, user, host and build number are fixed (the
//! time is the source package's own date), so the same source and fragment give the
//! same kernel, and the UKI made of it the same bytes.

use crate::board::Arch;
use crate::cmd::Cmd;
use crate::util::{create_dir, path_str, read, remove_tree, step, write};
use std::path::{Path, PathBuf};

/// Where sources and build trees live.
const BUILD_DIR: &str = "target/kernel-build";

/// One line of a configuration fragment: `CONFIG_X=value`, or `=n` for off.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    pub symbol: String,
    pub value: String,
}

/// Parse a fragment: `CONFIG_X=y|n|m|number|"string"` lines, `#` comments, blank lines.
pub fn parse_fragment(text: &str) -> Result<Vec<Setting>, String> {
    let mut settings: Vec<Setting> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("line {}: `{line}`", index + 1);
        let (symbol, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{}: not CONFIG_NAME=value", at()))?;
        let name_ok = symbol.strip_prefix("CONFIG_").is_some_and(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        });
        if !name_ok {
            return Err(format!("{}: `{symbol}` is not a CONFIG_ name", at()));
        }
        let value_ok = matches!(value, "y" | "n" | "m")
            || (value.len() >= 2 && value.starts_with('"') && value.ends_with('"'))
            || value.parse::<i64>().is_ok()
            || value
                .strip_prefix("0x")
                .is_some_and(|hex| u64::from_str_radix(hex, 16).is_ok());
        if !value_ok {
            return Err(format!(
                "{}: the value is not y, n, m, a number or a quoted string",
                at()
            ));
        }
        if value == "m" {
            return Err(format!(
                "{}: a board's own kernel builds everything in (y), no modules",
                at()
            ));
        }
        if settings.iter().any(|setting| setting.symbol == symbol) {
            return Err(format!("{}: {symbol} is set twice", at()));
        }
        settings.push(Setting {
            symbol: symbol.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(settings)
}

/// The value a `.config` gives `symbol` (`n` when it is unset or absent).
fn value_in<'a>(config: &'a str, symbol: &str) -> &'a str {
    let prefix = format!("{symbol}=");
    config
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or("n")
}

/// The fragment's settings that `config` does not hold, as `CONFIG_X: wanted y, got n`.
pub fn unmet(settings: &[Setting], config: &str) -> Vec<String> {
    settings
        .iter()
        .filter_map(|setting| {
            let got = value_in(config, &setting.symbol);
            (got != setting.value)
                .then(|| format!("{}: wanted {}, got {got}", setting.symbol, setting.value))
        })
        .collect()
}

/// `.config` with the fragment's settings replacing whatever it said of them.
fn apply(config: &str, settings: &[Setting]) -> String {
    let mine = |line: &str| {
        settings.iter().any(|setting| {
            line.starts_with(&format!("{}=", setting.symbol))
                || line == format!("# {} is not set", setting.symbol)
        })
    };
    let mut out: String = config
        .lines()
        .filter(|line| !mine(line))
        .map(|line| format!("{line}\n"))
        .collect();
    for setting in settings {
        if setting.value == "n" {
            out.push_str(&format!("# {} is not set\n", setting.symbol));
        } else {
            out.push_str(&format!("{}={}\n", setting.symbol, setting.value));
        }
    }
    out
}

/// Build the kernel of `fragment` from Debian's `linux-source` for `arch`, with
/// `patches` applied in order, and lay it out in `tree` (which must not exist yet) as an
/// extracted kernel package is (`boot/vmlinuz-<release>`, `lib/modules/<release>/`);
/// returns its origin line.
pub fn build(
    board: &str,
    arch: Arch,
    fragment: &Path,
    patches: &[PathBuf],
    tree: &Path,
) -> Result<String, String> {
    if arch != Arch::X86_64 {
        return Err(format!(
            "board {board}: a kernel of the board's own is built for x86_64 only; \
             aarch64 boards boot Debian's kernel (`[kernel] package`)"
        ));
    }
    let text = String::from_utf8(read(fragment)?)
        .map_err(|_| format!("{}: not UTF-8", fragment.display()))?;
    let settings = parse_fragment(&text).map_err(|e| format!("{}: {e}", fragment.display()))?;
    let (origin, source) = source(arch, patches)?;
    let out = crate::util::absolute(&Path::new(BUILD_DIR).join(board))?;
    // A build tree is reused only with the source (and patches) it was built from.
    let built_from = out.join(".amber-source");
    let source_line = format!("{origin} {}", source.display());
    if std::fs::read_to_string(&built_from).ok().as_deref() != Some(source_line.as_str()) {
        remove_tree(&out)?;
        create_dir(&out)?;
        write(&built_from, source_line.as_bytes())?;
    }
    let patched: String = patches
        .iter()
        .map(|patch| format!(", patched with {}", patch.display()))
        .collect();
    let timestamp = source_date(&source)?;
    let source_dir = path_str(&source)?.to_owned();
    let out_dir = format!("O={}", path_str(&out)?);
    let make = || {
        Cmd::new("make")
            .args(["-C", &source_dir, &out_dir, "ARCH=x86_64"])
            .env("KBUILD_BUILD_USER", "amber")
            .env("KBUILD_BUILD_HOST", "amber")
            .env("KBUILD_BUILD_VERSION", "1")
            .env("KBUILD_BUILD_TIMESTAMP", &timestamp)
    };
    step(&format!(
        "kernel for {board}: {origin} with {}{patched}",
        fragment.display()
    ));
    make().args(["-s", "tinyconfig"]).run()?;
    let config_path = out.join(".config");
    let tiny = String::from_utf8_lossy(&read(&config_path)?).into_owned();
    write(&config_path, apply(&tiny, &settings).as_bytes())?;
    make().args(["-s", "olddefconfig"]).run()?;
    let config = String::from_utf8_lossy(&read(&config_path)?).into_owned();
    let missing = unmet(&settings, &config);
    if !missing.is_empty() {
        return Err(format!(
            "{}: Kconfig did not keep {} of its settings (a dependency is off, or the \
             option does not exist in {origin}): {}",
            fragment.display(),
            missing.len(),
            missing.join("; ")
        ));
    }
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    make().args(["-s", &format!("-j{jobs}"), "bzImage"]).run()?;
    let release = make().args(["-s", "kernelrelease"]).output()?;
    let release = release.trim();
    let boot = tree.join("boot");
    create_dir(&boot)?;
    crate::util::copy(
        &out.join("arch/x86/boot/bzImage"),
        &boot.join(format!("vmlinuz-{release}")),
    )?;
    crate::util::copy(&config_path, &boot.join(format!("config-{release}")))?;
    // No loadable modules: an empty module tree, and the list of what is built in.
    let modules = tree.join("lib/modules").join(release);
    create_dir(&modules.join("kernel"))?;
    crate::util::copy(
        &out.join("modules.builtin"),
        &modules.join("modules.builtin"),
    )?;
    Ok(format!(
        "{origin}, built with {}{patched}",
        fragment.display()
    ))
}

/// Fetch Debian's kernel source and unpack it once per set of patches (applied in
/// order, the set named by its bytes); returns its origin and directory.
fn source(arch: Arch, patches: &[PathBuf]) -> Result<(String, PathBuf), String> {
    let package = crate::kernel::follow_metapackage(arch, "linux-source", "linux-source-")?;
    let unpacked = crate::debian::unpacked(arch.debian(), &package, "main")?;
    let tarballs: Vec<PathBuf> = std::fs::read_dir(unpacked.tree.join("usr/src"))
        .map_err(|e| format!("{}/usr/src: {e}", unpacked.tree.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".tar.xz"))
        .collect();
    let [tarball] = tarballs.as_slice() else {
        return Err(format!(
            "{}: expected one linux-source tarball in usr/src/, found {}",
            unpacked.origin,
            tarballs.len()
        ));
    };
    let mut version = unpacked.origin.replace(' ', "_");
    if !patches.is_empty() {
        let hashes = patches
            .iter()
            .map(|patch| crate::util::sha256_file(patch))
            .collect::<Result<Vec<_>, _>>()?;
        let set = amber_core::hash::to_hex(&amber_core::hash::sha256(hashes.concat().as_bytes()));
        version = format!("{version}+{}", &set[..16]);
    }
    let root = crate::util::absolute(&Path::new(BUILD_DIR).join("source"))?;
    let dir = root.join(&version);
    let done = root.join(format!("{version}.unpacked"));
    if !done.exists() {
        step(&format!("unpacking {}", tarball.display()));
        if dir.exists() {
            remove_tree(&dir)?;
        }
        create_dir(&dir)?;
        Cmd::new("tar")
            .args(["-xJf", path_str(tarball)?, "--strip-components=1", "-C"])
            .arg(path_str(&dir)?)
            .run()?;
        for patch in patches {
            crate::util::apply_patch(patch, &dir)?;
        }
        write(&done, b"")?;
    }
    Ok((unpacked.origin, dir))
}

/// The date the source package was made (its tarball's time, which dpkg keeps), in the
/// form `uname -v` shows.
fn source_date(source: &Path) -> Result<String, String> {
    let makefile = source.join("Makefile");
    let time = std::fs::metadata(&makefile)
        .and_then(|metadata| metadata.modified())
        .map_err(|e| format!("{}: {e}", makefile.display()))?;
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    Ok(Cmd::new("date")
        .args(["-u", "-d", &format!("@{seconds}"), "+%Y-%m-%d"])
        .output()?
        .trim()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_parse_and_bad_lines_are_named() {
        let settings = parse_fragment(
            "# comment\n\nCONFIG_A=y\nCONFIG_B=n\nCONFIG_C=\"ascii\"\nCONFIG_D=-1\nCONFIG_E=0x200000\n",
        )
        .unwrap();
        assert_eq!(settings.len(), 5);
        assert_eq!(settings[2].value, "\"ascii\"");
        for (text, why) in [
            ("CONFIG_A", "not CONFIG_NAME=value"),
            ("A=y", "not a CONFIG_ name"),
            ("CONFIG_a=y", "not a CONFIG_ name"),
            ("CONFIG_A=yes", "not y, n, m"),
            ("CONFIG_A=m", "no modules"),
            ("CONFIG_A=y\nCONFIG_A=n", "set twice"),
        ] {
            let error = parse_fragment(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn the_fragment_replaces_what_the_config_said_and_unmet_settings_are_named() {
        let settings = parse_fragment("CONFIG_A=y\nCONFIG_B=n\nCONFIG_C=\"x\"\n").unwrap();
        let applied = apply(
            "CONFIG_A=n\n# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_Z=y\n",
            &settings,
        );
        assert_eq!(
            applied,
            "CONFIG_Z=y\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n"
        );
        assert!(unmet(&settings, &applied).is_empty());
        // Kconfig dropped A (a dependency is off) and changed C.
        let after = "CONFIG_Z=y\n# CONFIG_A is not set\nCONFIG_C=\"y\"\n";
        assert_eq!(
            unmet(&settings, after),
            [
                "CONFIG_A: wanted y, got n",
                "CONFIG_C: wanted \"x\", got \"y\""
            ]
        );
    }
}
