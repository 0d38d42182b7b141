//! Small helpers shared by the subcommands: progress lines and file operations whose
//! errors name the file.

use crate::cmd::Cmd;
use std::path::{Path, PathBuf};

/// Print one progress line for a step that may take a while.
pub fn step(what: &str) {
    eprintln!("==> {what}");
}

pub fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// SHA-256 of a file as 64 hex digits (amber-base's one SHA-256 of a file).
pub fn sha256_file(path: &Path) -> Result<String, String> {
    amber_base::hash::sha256_file(path)
        .map(|hash| amber_core::hash::to_hex(&hash))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Apply a `-p1` patch to the tree in `dir`: all of it or an error naming it.
pub fn apply_patch(patch: &Path, dir: &Path) -> Result<(), String> {
    let patch = std::fs::canonicalize(patch).map_err(|e| format!("{}: {e}", patch.display()))?;
    Cmd::new("patch")
        .args([
            "-p1",
            "--batch",
            "--forward",
            "--no-backup-if-mismatch",
            "-i",
        ])
        .arg(path_str(&patch)?)
        .current_dir(dir)
        .output()
        .map(drop)
        .map_err(|e| format!("patch {} does not apply: {e}", patch.display()))
}

pub fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))
}

/// `path` made if missing, and made absolute.
pub fn absolute(path: &Path) -> Result<PathBuf, String> {
    create_dir(path)?;
    std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn remove_tree(path: &Path) -> Result<(), String> {
    // Builds may leave read-only directories (Go module caches, ...): make them writable.
    let _ = Cmd::new("chmod")
        .args(["-R", "u+w", path_str(path)?])
        .output();
    std::fs::remove_dir_all(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Copy the contents of `from` into `into` (merged; symlinks kept as symlinks).
pub fn copy_tree(from: &Path, into: &Path) -> Result<(), String> {
    create_dir(into)?;
    Cmd::new("cp")
        .args(["-a", "--no-preserve=ownership"])
        .arg(format!("{}/.", path_str(from)?))
        .arg(path_str(into)?)
        .output()
        .map(|_| ())
}

pub fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// Human-readable size: bytes, and KiB or MiB.
pub fn size(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{bytes} B ({:.1} KiB)", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B ({:.1} MiB)", bytes as f64 / 1048576.0)
    }
}
