//! zig, the C compiler of recipe builds for both musl targets: installed from the pinned
//! `ziglang` wheel into a venv under `target/tools/` on first use.

use crate::cmd::Cmd;
use crate::util::{absolute, path_str, step};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The zig release from the `ziglang` wheel that builds C for both musl targets.
pub const ZIG_VERSION: &str = "0.14.1";

/// Where zig is installed (a Python venv) and its global cache, shared by builds.
const ZIG_VENV: &str = "target/tools/zig-venv";
pub const ZIG_CACHE: &str = "target/tools/zig-cache";

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
