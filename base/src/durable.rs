//! Crash-safe file writes: write a temporary file, fsync it, rename it over the target,
//! fsync the directory. A crash at any instant leaves the old or the new file, whole.

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Context, Error};

/// Prefix of every temporary file pkg writes; the next command removes leftovers.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A unique temporary path in the same directory as `target`, so rename is atomic.
pub fn temp_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(
        "{TEMP_PREFIX}{}-{unique}-{name}",
        std::process::id()
    ))
}

/// Replace `target` with `bytes`, durably and atomically.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<(), Error> {
    let temp = temp_path(target);
    let result = (|| {
        let mut file = create_new(&temp)?;
        file.write_all(bytes).context(temp.display())?;
        file.sync_all().context(temp.display())?;
        Ok(())
    })();
    if let Err(error) = result {
        let _ = fs::remove_file(&temp);
        return Err(error);
    }
    crate::failpoint::hit("write_atomic:before_rename");
    rename_durable(&temp, target)
}

/// Create a file that must not exist yet, readable by everyone (images and state are
/// not secret; secret keys are written with their own mode).
pub fn create_new(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .context(path.display())
}

/// Rename `from` to `to` and fsync the directory holding `to`, so the rename survives a
/// power cut.
pub fn rename_durable(from: &Path, to: &Path) -> Result<(), Error> {
    if let Err(error) = fs::rename(from, to) {
        let _ = fs::remove_file(from);
        return Err(Error::from_args(format_args!("{}: {error}", to.display())));
    }
    sync_parent(to)
}

/// fsync the directory that holds `path`.
pub fn sync_parent(path: &Path) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

/// fsync a directory, making the names in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(dir.display())
}

/// Flush everything written to the filesystem that holds `dir` (syncfs(2)): one
/// writeback and one journal commit for any number of files, where an fsync per file
/// costs a journal commit each.
pub fn sync_filesystem(dir: &Path) -> Result<(), Error> {
    let handle = File::open(dir).context(dir.display())?;
    crate::sys::syncfs(&handle).context(dir.display())
}

/// Remove a file durably; a missing file is fine.
pub fn remove_durable(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::from_args(format_args!(
            "{}: {error}",
            path.display()
        ))),
    }
}

/// Remove temporary files a killed command left in `dir`. Returns how many were removed.
pub fn clean_temp_files(dir: &Path) -> Result<usize, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(Error::from_args(format_args!("{}: {error}", dir.display()))),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.context(dir.display())?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            fs::remove_file(&path).context(path.display())?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Create a directory and its parents, fsyncing each parent whose entry was created.
pub fn create_dir_all_durable(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_all_durable(parent)?;
        }
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_parent(dir),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(Error::from_args(format_args!("{}: {error}", dir.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let dir = std::env::temp_dir().join(format!("amber-durable-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("state");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
        fs::write(temp_path(&target), b"left by a crash").unwrap();
        assert_eq!(clean_temp_files(&dir).unwrap(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
