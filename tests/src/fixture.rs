//! Repositories and stores for the tests: packages built with `pkg pack`, indexes signed
//! with `pkg repo index`, a store driven through the real `pkg` binary, and snapshots of
//! a store to prove that a refused operation changed nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use amber_core::generation::Generation;
use amber_core::hash::{sha256, to_hex};
use amber_core::minisign::{self, PublicKey, SecretKey};
use amber_testkit::http::Server;

use crate::{pkg_binary, run, run_ok, TempDir};

/// The architecture the tests build and install for.
pub const ARCH: &str = "x86_64";

/// The current time in unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An expiry a month from now: what a healthy repository publishes.
pub fn future() -> u64 {
    now() + 30 * 24 * 3600
}

/// `len` bytes that do not compress, the same for the same `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    amber_core::random::Random::new(seed).bytes(len)
}

/// Copy a directory tree (files and directories only: a mounted store's control
/// socket, for one, stays behind).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.path().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

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
    pub fn package(
        &self,
        name: &str,
        version: &str,
        deps: &[&str],
        files: &[(&str, &[u8])],
    ) -> PathBuf {
        let mut options = Vec::new();
        for dep in deps {
            options.extend(["--dep", dep]);
        }
        self.pack(name, version, &options, files)
    }

    /// Pack a package with any further `pkg pack` options (`--provides X`,
    /// `--install-if Y`, ...); returns the image path.
    pub fn pack(
        &self,
        name: &str,
        version: &str,
        options: &[&str],
        files: &[(&str, &[u8])],
    ) -> PathBuf {
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
        command.args([
            "pack",
            tree.to_str().unwrap(),
            "-o",
            image.to_str().unwrap(),
        ]);
        command.args(["--name", name, "--version", version, "--arch", ARCH]);
        command.args(options);
        run_ok(&mut command);
        image
    }

    /// Pack a package holding the program `bin/NAME` (a script saying its id, mode
    /// 0755) with further `pkg pack` options.
    pub fn program(&self, name: &str, version: &str, options: &[&str]) -> PathBuf {
        let tree = self.work.join(format!("{name}-{version}"));
        let _ = std::fs::remove_dir_all(&tree);
        let program = tree.join("bin").join(name);
        std::fs::create_dir_all(program.parent().unwrap()).unwrap();
        std::fs::write(&program, format!("#!/bin/sh\necho {name}-{version}\n")).unwrap();
        let mut permissions = std::fs::metadata(&program).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&program, permissions).unwrap();
        let image = self.arch_dir().join(format!("{name}-{version}.squashfs"));
        let mut command = Command::new(pkg_binary());
        command.args([
            "pack",
            tree.to_str().unwrap(),
            "-o",
            image.to_str().unwrap(),
        ]);
        command.args(["--name", name, "--version", version, "--arch", ARCH]);
        command.args(options);
        run_ok(&mut command);
        image
    }

    /// Pack a small package holding `bin/NAME` (saying its id) with further `pkg pack`
    /// options.
    pub fn simple_with(&self, name: &str, version: &str, options: &[&str]) -> PathBuf {
        let contents = format!("#!/bin/sh\necho {name}-{version}\n");
        self.pack(
            name,
            version,
            options,
            &[(&format!("bin/{name}"), contents.as_bytes())],
        )
    }

    /// Pack a small package holding `bin/NAME` (saying its id) into the repository.
    pub fn simple(&self, name: &str, version: &str, deps: &[&str]) -> PathBuf {
        let contents = format!("#!/bin/sh\necho {name}-{version}\n");
        self.package(
            name,
            version,
            deps,
            &[(&format!("bin/{name}"), contents.as_bytes())],
        )
    }

    /// The path of a package's image in the repository.
    pub fn image(&self, name: &str, version: &str) -> PathBuf {
        self.arch_dir().join(format!("{name}-{version}.squashfs"))
    }

    /// The repository's secret key.
    pub fn secret(&self) -> SecretKey {
        let text = std::fs::read_to_string(&self.secret_key).unwrap();
        SecretKey::parse_file(&text).expect("the repository's secret key parses")
    }

    /// The key id of the repository's key, as `pkg key list` shows it.
    pub fn key_id(&self) -> String {
        let text = std::fs::read_to_string(&self.public_key).unwrap();
        PublicKey::parse_file(&text).unwrap().key_id_hex()
    }

    /// A valid minisign signature of `data` by the repository's key.
    pub fn sign(&self, data: &[u8]) -> String {
        minisign::sign(
            &self.secret(),
            data,
            "timestamp:0\tfile:index",
            "signature from the amber tests",
            true,
        )
        .unwrap()
    }

    /// Publish `text` as the index, validly signed, whatever it says: for indexes
    /// `pkg repo index` would never write.
    pub fn publish(&self, text: &str) {
        std::fs::write(self.arch_dir().join("index"), text).unwrap();
        std::fs::write(
            self.arch_dir().join("index.minisig"),
            self.sign(text.as_bytes()),
        )
        .unwrap();
    }

    /// The published index.
    pub fn index_bytes(&self) -> Vec<u8> {
        std::fs::read(self.arch_dir().join("index")).unwrap()
    }

    /// The published signature of the index.
    pub fn signature_bytes(&self) -> Vec<u8> {
        std::fs::read(self.arch_dir().join("index.minisig")).unwrap()
    }

    /// The header lines of a hand-written index.
    pub fn header(serial: u64, expires: u64) -> String {
        format!("amber-index 1\narch {ARCH}\nserial {serial}\nexpires {expires}\n")
    }

    /// A hand-written index line for `image` under any name and version; `extra` is
    /// appended as is (` deps=lib`).
    pub fn entry_line(image: &Path, name: &str, version: &str, extra: &str) -> String {
        let bytes = std::fs::read(image).unwrap();
        format!(
            "pkg {name} {version} size={} sha256={}{extra}\n",
            bytes.len(),
            to_hex(&sha256(&bytes))
        )
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

/// The usual scene of a test: a repository of small packages signed at `serial`, served
/// over HTTP on 127.0.0.1, and a store that trusts it and has run `pkg update`.
pub struct Scene {
    pub device: Device,
    pub server: Server,
    pub repo: Repo,
    pub temp: TempDir,
}

impl Scene {
    /// `packages` are (name, version, deps) for [`Repo::simple`].
    pub fn new(name: &str, packages: &[(&str, &str, &[&str])], serial: u64) -> Scene {
        let temp = TempDir::new(name);
        let repo = Repo::new(&temp, "repo");
        for (name, version, deps) in packages {
            repo.simple(name, version, deps);
        }
        repo.index(serial, future());
        let server = Server::start(&repo.dir);
        let device = Device::new(&temp, "device");
        device.trust(&repo, &server.url());
        device.ok(&["update"]);
        Scene {
            device,
            server,
            repo,
            temp,
        }
    }

    /// The server path of a file in the repository's architecture directory.
    pub fn path(&self, file: &str) -> String {
        format!("/{ARCH}/{file}")
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

    /// Run pkg, which must fail as a usage error (exit code 2) with one line on stderr.
    pub fn fails_usage(&self, args: &[&str]) -> String {
        let output = self.pkg(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(2),
            "pkg {args:?} should fail with 2\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
        assert!(lines[0].starts_with("pkg: "), "{stderr}");
        lines[0].to_owned()
    }

    /// A copy of this store under `temp`, with the same environment.
    pub fn copy_as(&self, temp: &TempDir, name: &str) -> Device {
        let copy = Device {
            root: temp.join(name),
            env: self.env.clone(),
        };
        let _ = std::fs::remove_dir_all(&copy.root);
        copy_tree(&self.root, &copy.root);
        copy
    }

    /// The ids `pkg list` shows, sorted.
    pub fn installed(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ok(&["list"])
            .lines()
            .map(|line| line.trim_end_matches(" (dependency)").to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// The number in `state/current`, if any.
    pub fn current(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.root.join("state/current")).ok()?;
        Some(text.trim().parse().expect("state/current holds a number"))
    }

    /// The file names in `images/`, sorted (temporary files included).
    pub fn image_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("images"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Check the store with our own code, not pkg's: every generation file parses; the
    /// current generation's images are all present with the size and hash it records;
    /// every cached index verifies with a trusted key; and every image in `images/`
    /// hashes to a value some generation or cached index vouches for. Returns the
    /// problems found.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut vouched: BTreeSet<[u8; 32]> = BTreeSet::new();
        let generations = self.root.join("state/generations");
        let mut current_found = self.current().is_none();
        for entry in std::fs::read_dir(&generations)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let generation = match Generation::parse(&text) {
                Ok(generation) => generation,
                Err(error) => {
                    problems.push(format!("generation {name}: {error}"));
                    continue;
                }
            };
            vouched.extend(generation.packages.iter().map(|e| e.sha256));
            if Some(generation.number) != self.current() {
                continue;
            }
            current_found = true;
            for package in &generation.packages {
                let path = self.root.join("images").join(package.file_name());
                match std::fs::read(&path) {
                    Err(_) => problems.push(format!("{}: image missing", package.id())),
                    Ok(bytes)
                        if bytes.len() as u64 != package.size
                            || sha256(&bytes) != package.sha256 =>
                    {
                        problems.push(format!("{}: image does not match", package.id()))
                    }
                    Ok(_) => {}
                }
            }
        }
        if !current_found {
            problems.push(format!(
                "current generation {:?} has no file",
                self.current()
            ));
        }
        let keys: Vec<PublicKey> = std::fs::read_dir(self.root.join("keys"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pub"))
            .filter_map(|e| PublicKey::parse_file(&std::fs::read_to_string(e.path()).ok()?).ok())
            .collect();
        for entry in std::fs::read_dir(self.root.join("indexes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(bytes) = std::fs::read(entry.path().join("index")) else {
                continue;
            };
            match split_cached_index(&bytes) {
                Some((signature, index)) => {
                    let verified = std::str::from_utf8(signature)
                        .ok()
                        .and_then(|s| minisign::verify(&keys, index, s).ok());
                    let parsed = std::str::from_utf8(index)
                        .ok()
                        .and_then(|t| amber_core::index::parse(t).ok());
                    match (verified, parsed) {
                        (Some(_), Some(index)) => {
                            vouched.extend(index.packages.iter().map(|e| e.sha256))
                        }
                        _ => problems.push(format!(
                            "{}: cached index does not verify",
                            entry.path().display()
                        )),
                    }
                }
                None => problems.push(format!("{}: cached index is torn", entry.path().display())),
            }
        }
        for name in self.image_names() {
            if name.starts_with(".tmp-") {
                continue;
            }
            let bytes = std::fs::read(self.root.join("images").join(&name)).unwrap_or_default();
            if !vouched.contains(&sha256(&bytes)) {
                problems.push(format!(
                    "images/{name}: no generation or index vouches for it"
                ));
            }
        }
        problems
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

/// Split pkg's cached index file (`amber-cached-index 1 LEN\n`, the signature, the
/// index) into the signature and the index.
fn split_cached_index(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..newline]).ok()?;
    let length: usize = header.strip_prefix("amber-cached-index 1 ")?.parse().ok()?;
    let rest = &bytes[newline + 1..];
    (length <= rest.len()).then(|| rest.split_at(length))
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
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.insert(relative, std::fs::read(&path).unwrap_or_default());
        }
    }
}
