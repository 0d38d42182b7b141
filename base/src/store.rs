//! The store under `--root`: where images, generations, keys, repositories and serials
//! live, and the only code that knows those paths.
//!
//! ```text
//! <root>/lock                     held by the one pkg command that may write
//! <root>/keys/<KEYID>.pub         trusted minisign public keys
//! <root>/repos                    one repository per line: [@TAG] URL [MIRROR-URL]...
//! <root>/images/<id>.squashfs     verified images, never modified once renamed in
//! <root>/indexes/<repo>/index     the last index accepted from each repository,
//! <root>/indexes/<repo>/index.minisig   with its signature (verified again on use)
//! <root>/state/generations/<N>    generation N: the world and the resolved packages
//! <root>/state/current            the number of the current generation
//! <root>/state/serials            the highest serial accepted per repository
//! <root>/leases/run-<pid>         the images a running `pkg run` uses, one a line;
//!                                 flocked by it, so `gc` keeps them
//! ```
//!
//! Every write goes through [`crate::durable`]: temp file, fsync, rename, fsync dir.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use amber_core::generation::Generation;
use amber_core::hash::{sha256, to_hex};
use amber_core::index::Entry;
use amber_core::minisign::PublicKey;
use amber_core::version::is_valid_tag;

use crate::durable;
use crate::error::{Context, Error};
use crate::lock::StoreLock;

/// A store directory.
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open a store for reading; nothing is created.
    pub fn open(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    /// Open a store for writing: create its directories, take the lock, and remove the
    /// temporary files a killed command may have left.
    pub fn open_locked(root: &Path, wait: bool) -> Result<(Store, StoreLock), Error> {
        let store = Store::open(root);
        durable::create_dir_all_durable(root)?;
        let lock = StoreLock::acquire(root, wait)?;
        for dir in [
            store.keys_dir(),
            store.images_dir(),
            store.generations_dir(),
            store.root.join("indexes"),
        ] {
            durable::create_dir_all_durable(&dir)?;
        }
        store.clean_temp_files()?;
        Ok((store, lock))
    }

    /// Open a store for reading. When no other command holds the lock, first remove the
    /// temporary files a killed command left, so any next command cleans up after a
    /// crash (SECURITY-TESTS item 22); a busy or read-only store is left as it is.
    pub fn open_reading(root: &Path) -> Store {
        let store = Store::open(root);
        if let Some(_lock) = StoreLock::try_existing(root) {
            let _ = store.clean_temp_files();
        }
        store
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    fn generations_dir(&self) -> PathBuf {
        self.state_dir().join("generations")
    }

    fn repos_file(&self) -> PathBuf {
        self.root.join("repos")
    }

    fn serials_file(&self) -> PathBuf {
        self.state_dir().join("serials")
    }

    fn current_file(&self) -> PathBuf {
        self.state_dir().join("current")
    }

    fn leases_dir(&self) -> PathBuf {
        self.root.join("leases")
    }

    /// The image file of a package.
    pub fn image_path(&self, entry: &Entry) -> PathBuf {
        self.images_dir().join(entry.file_name())
    }

    /// The directory holding a repository's last accepted index.
    pub fn index_dir(&self, repo_url: &str) -> PathBuf {
        let digest = sha256(repo_url.as_bytes());
        self.root.join("indexes").join(&to_hex(&digest)[..16])
    }

    /// Remove temp files left by a killed command, everywhere pkg writes.
    fn clean_temp_files(&self) -> Result<(), Error> {
        let mut dirs = vec![
            self.root.clone(),
            self.keys_dir(),
            self.images_dir(),
            self.state_dir(),
            self.generations_dir(),
            self.leases_dir(),
        ];
        if let Ok(entries) = fs::read_dir(self.root.join("indexes")) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
        for dir in dirs {
            durable::clean_temp_files(&dir)?;
        }
        Ok(())
    }

    // Keys.

    /// The trusted keys, sorted by key id. An unreadable or malformed key file is an
    /// error: silently trusting fewer keys would hide a broken setup.
    pub fn trusted_keys(&self) -> Result<Vec<PublicKey>, Error> {
        let mut keys = Vec::new();
        for path in sorted_files(&self.keys_dir(), ".pub")? {
            let text = fs::read_to_string(&path).context(path.display())?;
            let key = PublicKey::parse_file(&text).context(path.display())?;
            keys.push(key);
        }
        amber_core::sort::sort_by_key(&mut keys, |key| key.key_id_hex());
        Ok(keys)
    }

    /// Trust a key; returns false when it was trusted already.
    pub fn add_key(&self, key: &PublicKey) -> Result<bool, Error> {
        let path = self.key_path(&key.key_id_hex());
        if let Ok(text) = fs::read_to_string(&path) {
            // Signatures name their key by id, so two keys with one id cannot both be
            // trusted: only the first would ever be tried.
            return match PublicKey::parse_file(&text) {
                Ok(existing) if existing.key == key.key => Ok(false),
                _ => Err(Error::from_args(format_args!(
                    "key {}: a different key with this id is already trusted",
                    key.key_id_hex()
                ))),
            };
        }
        durable::write_atomic(&path, key.to_file_string().as_bytes())?;
        Ok(true)
    }

    /// Stop trusting a key; returns false when it was not trusted.
    pub fn remove_key(&self, key_id_hex: &str) -> Result<bool, Error> {
        let path = self.key_path(key_id_hex);
        if !path.exists() {
            return Ok(false);
        }
        durable::remove_durable(&path)?;
        Ok(true)
    }

    fn key_path(&self, key_id_hex: &str) -> PathBuf {
        self.keys_dir().join(format!("{key_id_hex}.pub"))
    }

    // Repositories.

    /// The configured repositories: each a list of URLs (the first names the
    /// repository, and its serial is kept under that name; the others are mirrors)
    /// and the tag it was added with, if any. A line is `[@TAG] URL [MIRROR]...`.
    pub fn repositories(&self) -> Result<Vec<Repository>, Error> {
        let path = self.repos_file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::from_args(format_args!("{}: {e}", path.display()))),
        };
        let mut repositories = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace().peekable();
            let tag = match words.peek().and_then(|word| word.strip_prefix('@')) {
                Some(tag) if is_valid_tag(tag) => {
                    let tag = tag.to_owned();
                    words.next();
                    Some(tag)
                }
                Some(_) => {
                    return Err(Error::from_args(format_args!(
                        "{} line {}: not a valid @TAG",
                        path.display(),
                        number + 1
                    )))
                }
                None => None,
            };
            let urls: Vec<String> = words.map(str::to_owned).collect();
            if urls.is_empty() {
                return Err(Error::from_args(format_args!(
                    "{} line {}: a tag without a URL",
                    path.display(),
                    number + 1
                )));
            }
            repositories.push(Repository { urls, tag });
        }
        Ok(repositories)
    }

    /// Replace the repository list.
    pub fn set_repositories(&self, repos: &[Repository]) -> Result<(), Error> {
        let mut text = String::new();
        for repository in repos {
            if let Some(tag) = &repository.tag {
                let _ = write!(text, "@{tag} ");
            }
            text.push_str(&repository.urls.join(" "));
            text.push('\n');
        }
        durable::write_atomic(&self.repos_file(), text.as_bytes())
    }

    // Leases.

    /// Record that this process uses `images` (file names in `images/`) until it
    /// ends, so `gc` keeps them: a file in `leases/` with the names, locked with
    /// flock(2) for as long as the returned lease (or a program it is handed to
    /// across exec) holds it open. Call it with the store lock held, as `gc` checks
    /// leases with the store lock held: then a lease is either seen or its images
    /// are not fetched yet.
    pub fn lease(&self, images: &[String]) -> Result<Lease, Error> {
        let dir = self.leases_dir();
        durable::create_dir_all_durable(&dir)?;
        let path = dir.join(format!("run-{}", std::process::id()));
        let temp = durable::temp_path(&path);
        let mut text = String::new();
        for image in images {
            text.push_str(image);
            text.push('\n');
        }
        let result = (|| {
            let mut file = durable::create_new(&temp)?;
            std::io::Write::write_all(&mut file, text.as_bytes()).context(temp.display())?;
            // Locked before it is renamed into place: gc never sees it unlocked while
            // its owner lives.
            file.try_lock()
                .map_err(|e| Error::from_args(format_args!("{}: {e}", temp.display())))?;
            durable::rename_durable(&temp, &path)?;
            Ok(Lease {
                file,
                path: path.clone(),
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// The images the running `pkg run` commands use. A lease whose owner is gone
    /// (nobody holds its lock) is removed on the way.
    pub fn leased_images(&self) -> Result<Vec<String>, Error> {
        let mut images = Vec::new();
        for path in sorted_files(&self.leases_dir(), "")? {
            let Ok(file) = fs::File::open(&path) else {
                continue;
            };
            match file.try_lock() {
                // Nobody holds it: its command has ended.
                Ok(()) => {
                    durable::remove_durable(&path)?;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let text = fs::read_to_string(&path).context(path.display())?;
                    images.extend(text.lines().map(str::to_owned));
                }
                Err(std::fs::TryLockError::Error(error)) => {
                    return Err(Error::from_args(format_args!(
                        "{}: {error}",
                        path.display()
                    )))
                }
            }
        }
        amber_core::sort::sort(&mut images);
        images.dedup();
        Ok(images)
    }

    // Serials.

    /// The highest serial accepted from each repository, sorted by URL.
    /// A URL named twice keeps its last serial. (A sorted list, not a map: the store
    /// holds a handful of repositories, and a map type costs the device binary ~3 KB.)
    pub fn serials(&self) -> Result<Vec<(String, u64)>, Error> {
        let path = self.serials_file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::from_args(format_args!("{}: {e}", path.display()))),
        };
        let mut serials = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let parsed = line
                .rsplit_once(' ')
                .and_then(|(url, serial)| Some((url, serial.parse::<u64>().ok()?)));
            let Some((url, serial)) = parsed else {
                return Err(Error::from_args(format_args!(
                    "{} line {}: not `URL SERIAL`",
                    path.display(),
                    number + 1
                )));
            };
            set(&mut serials, url, serial);
        }
        Ok(serials)
    }

    /// The highest serial accepted from one repository.
    pub fn serial(&self, repo_url: &str) -> Result<Option<u64>, Error> {
        Ok(self
            .serials()?
            .into_iter()
            .find_map(|(url, serial)| (url == repo_url).then_some(serial)))
    }

    /// Remember the serial accepted from a repository (only ever raised by callers).
    pub fn set_serial(&self, repo_url: &str, serial: u64) -> Result<(), Error> {
        let mut serials = self.serials()?;
        set(&mut serials, repo_url, serial);
        let mut text = String::new();
        for (url, serial) in serials {
            let _ = writeln!(text, "{url} {serial}");
        }
        durable::create_dir_all_durable(&self.state_dir())?;
        durable::write_atomic(&self.serials_file(), text.as_bytes())
    }

    // Generations.

    /// The numbers of the generations on disk, ascending.
    pub fn generation_numbers(&self) -> Result<Vec<u64>, Error> {
        let dir = self.generations_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::from_args(format_args!("{}: {e}", dir.display()))),
        };
        let mut numbers: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        amber_core::sort::sort(&mut numbers);
        Ok(numbers)
    }

    /// Read generation `number`.
    pub fn generation(&self, number: u64) -> Result<Generation, Error> {
        let path = self.generations_dir().join(number.to_string());
        let text = fs::read_to_string(&path).context(path.display())?;
        let generation = Generation::parse(&text).context(path.display())?;
        if generation.number != number {
            return Err(Error::from_args(format_args!(
                "{}: says it is generation {}",
                path.display(),
                generation.number
            )));
        }
        Ok(generation)
    }

    /// The number of the current generation, if any was made.
    pub fn current_number(&self) -> Result<Option<u64>, Error> {
        let path = self.current_file();
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                Error::from_args(format_args!("{}: not a generation number", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_args(format_args!("{}: {e}", path.display()))),
        }
    }

    /// The current generation, or an empty generation 0 on a fresh store.
    pub fn current(&self) -> Result<Generation, Error> {
        match self.current_number()? {
            Some(number) => self.generation(number),
            None => Ok(Generation::empty()),
        }
    }

    /// Write a new generation and make it current. The generation file is durable
    /// before `current` names it, so a crash leaves the old or the new one current.
    pub fn commit(&self, generation: &Generation) -> Result<(), Error> {
        for entry in &generation.packages {
            let path = self.image_path(entry);
            if !path.is_file() {
                return Err(Error::from_args(format_args!(
                    "{}: image missing, refusing to switch",
                    entry.id()
                )));
            }
        }
        let path = self.generations_dir().join(generation.number.to_string());
        durable::write_atomic(&path, generation.write().as_bytes())?;
        crate::failpoint::hit("commit:generation_written");
        self.switch_to(generation.number)
    }

    /// Make an existing generation current.
    pub fn switch_to(&self, number: u64) -> Result<(), Error> {
        durable::write_atomic(&self.current_file(), format!("{number}\n").as_bytes())
    }

    /// Remove a generation file (never the current one: callers check).
    pub fn remove_generation(&self, number: u64) -> Result<(), Error> {
        durable::remove_durable(&self.generations_dir().join(number.to_string()))
    }

    /// The image files present, by file name.
    pub fn image_files(&self) -> Result<Vec<PathBuf>, Error> {
        sorted_files(&self.images_dir(), ".squashfs")
    }
}

/// A configured repository (see [`Store::repositories`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The repository's own URL first, then its mirrors.
    pub urls: Vec<String>,
    /// `edge` for a repository added with `--tag edge`.
    pub tag: Option<String>,
}

impl Repository {
    /// The URL that names the repository.
    pub fn url(&self) -> &str {
        self.urls.first().map_or("", String::as_str)
    }
}

/// A running `pkg run`'s hold on its images (see [`Store::lease`]).
pub struct Lease {
    file: fs::File,
    path: PathBuf,
}

impl Lease {
    /// Keep the lease through exec(2): the descriptor stays open in the program that
    /// replaces this one, and the lease ends when it (and every child it handed the
    /// descriptor to) has exited.
    pub fn keep_across_exec(self) -> Result<(), Error> {
        crate::sys::keep_open_across_exec(self.file.into())
            .map_err(|e| Error::from_args(format_args!("{}: {e}", self.path.display())))
    }
}

/// Set `url`'s serial in a list kept sorted by URL (the order the file is written in).
fn set(serials: &mut Vec<(String, u64)>, url: &str, serial: u64) {
    match serials.binary_search_by(|(known, _)| known.as_str().cmp(url)) {
        Ok(at) => serials[at].1 = serial,
        Err(at) => serials.insert(at, (url.to_owned(), serial)),
    }
}

/// The files in `dir` whose names end with `suffix`, sorted; a missing dir is empty.
fn sorted_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from_args(format_args!("{}: {e}", dir.display()))),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.context(dir.display())?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(suffix) && !name.starts_with(durable::TEMP_PREFIX) {
            files.push(entry.path());
        }
    }
    amber_core::sort::sort(&mut files);
    Ok(files)
}
