//! The store lock: one `pkg` process writes a store at a time (SECURITY-TESTS item 26).
//!
//! An advisory `flock` on `<root>/lock`. The kernel drops it when the process dies,
//! so a killed command never leaves the store locked.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

use crate::error::{Context, Error};

/// Held while a command may write the store.
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Take the lock. With `wait`, wait for the other process (saying so once on stderr);
    /// without, fail at once naming the holder.
    pub fn acquire(root: &Path, wait: bool) -> Result<StoreLock, Error> {
        let path = root.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .context(path.display())?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                if !wait {
                    return Err(Error::from_args(format_args!(
                        "{}: another pkg command (pid {holder}) is using the store",
                        root.display()
                    )));
                }
                eprintln!("pkg: waiting for another pkg command (pid {holder}) to finish");
                file.lock().context(path.display())?;
            }
            Err(TryLockError::Error(error)) => {
                return Err(Error::from_args(format_args!(
                    "{}: {error}",
                    path.display()
                )))
            }
        }
        // The pid is only informative, for the message above; no fsync needed.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        Ok(StoreLock { _file: file })
    }

    /// Take the lock of an existing store if nobody holds it, without waiting and
    /// without creating anything: for read-only commands that tidy up when they can.
    pub fn try_existing(root: &Path) -> Option<StoreLock> {
        let file = File::open(root.join("lock")).ok()?;
        file.try_lock().ok()?;
        Some(StoreLock { _file: file })
    }
}
