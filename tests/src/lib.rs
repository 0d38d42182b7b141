//! Helpers shared by the workspace integration tests: temporary directories, the path of
//! the built `pkg` binary and running commands with their output captured. The HTTP
//! server they talk to is `amber_testkit::http`.

pub mod fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory removed when dropped; each test gets its own.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh, empty directory under the target directory, named after the test.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = target_dir()
            .join("test-tmp")
            .join(format!("{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test directory");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, part: impl AsRef<Path>) -> PathBuf {
        self.path.join(part)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The `pkg` host binary these tests drive: `$AMBER_PKG_BIN`, or the debug build that
/// `cargo xtask test` makes before running the tests.
pub fn pkg_binary() -> PathBuf {
    let path = match std::env::var_os("AMBER_PKG_BIN") {
        Some(path) => PathBuf::from(path),
        None => target_dir().join("debug/pkg"),
    };
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p amber-pkg` first (cargo xtask test does)",
        path.display()
    );
    path
}

/// Whether an external program is on PATH.
pub use amber_testkit::have;

/// Run a command, panicking with its output if it cannot be started.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Run a command that must succeed; returns its stdout.
pub fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed with {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
