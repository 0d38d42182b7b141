//! Repositories and stores for the tests: packages built with `pkg pack`, indexes signed
//! with `pkg repo index`, a store driven through the real `pkg` binary, and snapshots of
//! a store to prove that a refused operation changed nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{pkg_binary, run, run_ok, TempDir};

/// The architecture the tests build and install for.
pub const ARCH: &str = "x86_64";

/// A repository directory with a signing key.
pub struct Repo {
    pub dir: PathBuf,
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    work: PathBuf,
}

impl Repo {
    /// A new, empty repository under `temp`, with a fresh key pair from `pkg keygen`.
    pub fn new(temp: &TempDir, name: &str) -> Repo {
        let dir = temp.join(name);
        let work = temp.join(format!("{name}-work"));
        std::fs::create_dir_all(dir.join(ARCH)).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let secret_key = temp.join(format!("{name}.key"));
        let public_key = temp.join(format!("{name}.pub"));
        run_ok(Command::new(pkg_binary()).args([
            "keygen",
            "--secret-key",
            secret_key.to_str().unwrap(),
            "--public-key",
            public_key.to_str().unwrap(),
        ]));
        Repo {
            dir,
            secret_key,
            public_key,
            work,
        }
    }

    /// The directory holding this architecture's index and images.
    pub fn arch_dir(&self) -> PathBuf {
        self.dir.join(ARCH)
    }

    /// Pack a package from `files` (path, contents) into the repository; returns the
    /// image path. `version` includes the revision (`1.0-r0`).
    pub fn package(&self, name: &str, version: &str, deps: &[&str], files: &[(&str, &[u8])]) -> PathBuf {
        let tree = self.work.join(format!("{name}-{version}"));
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&tree).unwrap();
        for (path, contents) in files {
            let path = tree.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        let image = self.arch_dir().join(format!("{name}-{version}.squashfs"));
        let mut command = Command::new(pkg_binary());
        command.args(["pack", tree.to_str().unwrap(), "-o", image.to_str().unwrap()]);
        command.args(["--name", name, "--version", version, "--arch", ARCH]);
        for dep in deps {
            command.args(["--dep", dep]);
        }
        run_ok(&mut command);
        image
    }

    /// Sign the index of everything in the repository; `expires` is in unix seconds.
    pub fn index(&self, serial: u64, expires: u64) {
        run_ok(Command::new(pkg_binary()).args([
            "repo",
            "index",
            self.arch_dir().to_str().unwrap(),
            "--secret-key",
            self.secret_key.to_str().unwrap(),
            "--serial",
            &serial.to_string(),
            "--expires",
            &expires.to_string(),
        ]));
    }
}

/// A store driven through the pkg binary.
pub struct Device {
    pub root: PathBuf,
    env: Vec<(String, String)>,
}

impl Device {
    pub fn new(temp: &TempDir, name: &str) -> Device {
        Device {
            root: temp.join(name),
            env: vec![("AMBER_ARCH".into(), ARCH.into())],
        }
    }

    /// Set an environment variable for every later command.
    pub fn env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// A pkg command on this store, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(pkg_binary());
        command.arg("--root").arg(&self.root).args(args);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Run pkg; returns the output whatever the exit code.
    pub fn pkg(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// Run pkg, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.command(args))
    }

    /// Run pkg, which must fail with exit code 1 and one line on stderr; returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.pkg(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(1),
            "pkg {args:?} should fail with 1\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("pkg: ")).collect();
        assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        lines[0].to_owned()
    }

    /// Trust `repo`'s key and add it as the repository at `url`.
    pub fn trust(&self, repo: &Repo, url: &str) {
        self.ok(&["key", "add", repo.public_key.to_str().unwrap()]);
        self.ok(&["repo", "add", url]);
    }

    /// Every file of the store with its contents, except the lock.
    pub fn snapshot(&self) -> Snapshot {
        let mut files = BTreeMap::new();
        collect(&self.root, &self.root, &mut files);
        Snapshot(files)
    }

    /// The temporary files in the store.
    pub fn temp_files(&self) -> Vec<String> {
        self.snapshot()
            .0
            .keys()
            .filter(|path| {
                Path::new(path)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
            })
            .cloned()
            .collect()
    }
}

/// The files of a store and their contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(pub BTreeMap<String, Vec<u8>>);

impl Snapshot {
    /// The paths that differ between two snapshots.
    pub fn diff(&self, other: &Snapshot) -> Vec<String> {
        let mut paths: Vec<String> = self
            .0
            .keys()
            .chain(other.0.keys())
            .filter(|path| self.0.get(*path) != other.0.get(*path))
            .cloned()
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.file_name().is_some_and(|n| n != "lock") {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            files.insert(relative, std::fs::read(&path).unwrap_or_default());
        }
    }
}
