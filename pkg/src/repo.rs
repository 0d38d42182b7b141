//! Repositories: where they live, fetching their files, and accepting their indexes.
//!
//! An index is accepted only when (SECURITY-TESTS items 2, 4–6, 12–14):
//! - its minisign signature and global signature verify with a trusted key, before a
//!   single byte of it is parsed;
//! - it parses strictly and names this device's architecture;
//! - its serial is not lower than the highest serial accepted from that repository
//!   (and an equal serial must come with the very same bytes);
//! - it has not expired (see [`Clock`] for devices without a real-time clock).
//!
//! If a mirror fails any check the next one is tried; if all fail, the previously
//! accepted index stays in use. Accepted indexes are cached with their signature in one
//! file, written atomically, and verified again every time they are read. Reading
//! parses the index as a view of its text (`amber_core::index::IndexView`), which
//! copies nothing: a command pays for a 10,000-package index in milliseconds.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use amber_core::index::{self, IndexView};
use amber_core::minisign::{self, PublicKey};

use crate::durable;
use crate::error::{Context, Error};
use crate::http::{self, Limits};
use crate::store::{Repository, Store};

/// The largest index accepted (about 200,000 packages).
pub const MAX_INDEX: u64 = 64 * 1024 * 1024;
/// The largest signature file accepted (a real one is about 300 bytes).
pub const MAX_SIGNATURE: u64 = 4096;

/// Where a repository's files are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(String),
    Local(PathBuf),
}

impl Location {
    /// `http://...`, `https://...`, `file:///path`, or an absolute or `./` path.
    pub fn parse(url: &str) -> Result<Location, Error> {
        let url = url.trim_end_matches('/');
        if url.starts_with("http://") || url.starts_with("https://") {
            http::Url::parse(url).map_err(|e| Error::usage_args(format_args!("{url}: {e}")))?;
            Ok(Location::Http(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("file://") {
            Ok(Location::Local(PathBuf::from(if path.is_empty() {
                "/"
            } else {
                path
            })))
        } else if url.starts_with('/') || url.starts_with("./") || url.starts_with("../") {
            Ok(Location::Local(PathBuf::from(url)))
        } else {
            Err(Error::usage_args(format_args!(
                "{url}: a repository is an http://, https:// or file:// URL, or a path"
            )))
        }
    }

    /// Fetch `relative` (e.g. `x86_64/index`) into `sink`, at most `max` bytes.
    pub fn fetch(
        &self,
        relative: &str,
        limits: &Limits,
        max: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        match self {
            Location::Http(base) => http::get(&format!("{base}/{relative}"), limits, max, sink),
            Location::Local(dir) => {
                let path = dir.join(relative);
                let mut file = File::open(&path).context(path.display())?;
                let length = file.metadata().context(path.display())?.len();
                if length > max {
                    return Err(Error::from_args(format_args!(
                        "{}: {length} bytes, more than the {max} expected",
                        path.display()
                    )));
                }
                let mut buffer = vec![0u8; 64 * 1024];
                let mut seen = 0u64;
                loop {
                    let n = file.read(&mut buffer).context(path.display())?;
                    if n == 0 {
                        return Ok(seen);
                    }
                    seen += n as u64;
                    if seen > max {
                        return Err(Error::from_args(format_args!(
                            "{}: grew past the {max} bytes expected",
                            path.display()
                        )));
                    }
                    sink(&buffer[..n])?;
                }
            }
        }
    }

    /// Fetch a small file whole.
    pub fn fetch_bytes(&self, relative: &str, limits: &Limits, max: u64) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        self.fetch(relative, limits, max, &mut |piece| {
            bytes.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(bytes)
    }
}

/// The time used to check index expiry.
///
/// Devices without a battery-backed clock boot in 1970 (or wherever their RTC stands)
/// until SNTP sets the time. The device keeps the last good time on /data
/// ([`CLOCK_FILE`]: written when SNTP sets the clock; init never lets the clock start
/// below it), and a clock earlier than that cannot be right: expiry is then checked
/// against the stored time instead. A device that has never stored one uses this pkg's
/// build date the same way. So an index that expired before the last good time (or the
/// build) is always refused, and full checking resumes once the clock is set.
/// `AMBER_NOW` (unix seconds) overrides the clock and `AMBER_CLOCK_FILE` the file, for
/// tests.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The wall clock, or `AMBER_NOW`.
    pub now: u64,
    /// The last good time stored on the device, or else the build date of this pkg.
    pub floor: u64,
}

/// Where the device keeps the last good time: unix seconds, in decimal, one line.
pub const CLOCK_FILE: &str = "/data/var/amber/clock";

/// The build date: `SOURCE_DATE_EPOCH` at build time, or this release's date.
const BUILD_FLOOR: u64 = match option_env!("SOURCE_DATE_EPOCH") {
    Some(text) => parse_u64(text),
    None => 1_790_000_000, // 2026-09-21, the first release of this format.
};

const fn parse_u64(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut value = 0u64;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u64;
        i += 1;
    }
    value
}

impl Clock {
    pub fn system() -> Clock {
        let now = std::env::var("AMBER_NOW")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            });
        let file = std::env::var_os("AMBER_CLOCK_FILE").unwrap_or_else(|| CLOCK_FILE.into());
        Clock {
            now,
            floor: stored_time(&std::fs::read_to_string(file).unwrap_or_default())
                .unwrap_or(BUILD_FLOOR),
        }
    }

    /// Whether the clock can be believed.
    pub fn is_sane(&self) -> bool {
        self.now >= self.floor
    }

    /// The time expiry is checked against.
    pub fn effective(&self) -> u64 {
        self.now.max(self.floor)
    }
}

/// The time in a [`CLOCK_FILE`]; None when there is none or it is not one.
pub fn stored_time(text: &str) -> Option<u64> {
    let text = text.trim();
    text.parse()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
}

/// An index that passed every check, with the repository it came from; it borrows
/// the text of its [`Cached`] file.
#[derive(Debug, Clone)]
pub struct Accepted<'t> {
    pub repo: &'t str,
    /// The repository's tag (`pkg repo add URL --tag TAG`).
    pub tag: Option<&'t str>,
    pub index: IndexView<'t>,
}

/// Verify the signature, then parse and check the index. Nothing is parsed before the
/// signature verifies.
pub fn check_index<'t>(
    keys: &[PublicKey],
    index_bytes: &'t [u8],
    signature: &[u8],
    arch: &str,
    clock: &Clock,
) -> Result<IndexView<'t>, Error> {
    let signature = std::str::from_utf8(signature)
        .map_err(|_| Error::new("signature: not a minisign signature file"))?;
    minisign::verify(keys, index_bytes, signature).context("signature")?;
    let text = std::str::from_utf8(index_bytes).map_err(|_| Error::new("index is not UTF-8"))?;
    let index = index::parse_view(text).map_err(|e| Error::from_args(format_args!("{e}")))?;
    if index.arch != arch {
        return Err(Error::from_args(format_args!(
            "index is for {}, this device is {arch}",
            index.arch
        )));
    }
    if index.expires < clock.effective() {
        return Err(Error::from_args(format_args!(
            "index expired at {} (now {}{}); refusing a frozen repository",
            index.expires,
            clock.effective(),
            if clock.is_sane() {
                ""
            } else {
                ", the clock is unset so the last good time or this pkg's build date is used"
            }
        )));
    }
    Ok(index)
}

/// What `update` did for one repository.
#[derive(Debug)]
pub struct Updated {
    pub repo: String,
    pub serial: u64,
    pub packages: usize,
    pub changed: bool,
}

/// Fetch, verify and accept the index of one repository, trying its mirrors in order.
pub fn update_one(
    store: &Store,
    repository: &Repository,
    keys: &[PublicKey],
    arch: &str,
    clock: &Clock,
    limits: &Limits,
) -> Result<Updated, Error> {
    let urls = &repository.urls;
    let repo = urls
        .first()
        .ok_or_else(|| Error::new("empty repository line"))?;
    let known = accepted_serial(store, repo)?;
    let cached = read_cache(store, repo)?;
    let mut failures = Vec::new();
    for url in urls {
        let attempt = (|| {
            let location = Location::parse(url)?;
            let signature =
                location.fetch_bytes(&format!("{arch}/index.minisig"), limits, MAX_SIGNATURE)?;
            let bytes = location.fetch_bytes(&format!("{arch}/index"), limits, MAX_INDEX)?;
            let index = check_index(keys, &bytes, &signature, arch, clock)?;
            if let Some(known) = known {
                if index.serial < known {
                    return Err(Error::from_args(format_args!(
                        "serial {} is lower than {known}, already accepted: refusing a rollback",
                        index.serial
                    )));
                }
                let same_bytes = cached.as_ref().is_some_and(|(_, b)| *b == bytes);
                if index.serial == known && !same_bytes && cached.is_some() {
                    return Err(Error::from_args(format_args!(
                        "serial {known} was already accepted with other contents",
                    )));
                }
            }
            let (serial, packages) = (index.serial, index.packages().len());
            Ok((serial, packages, bytes, signature))
        })();
        match attempt {
            Ok((serial, packages, bytes, signature)) => {
                let changed = cached.as_ref().is_none_or(|(_, b)| *b != bytes);
                if changed {
                    write_cache(store, repo, &signature, &bytes)?;
                    crate::failpoint::hit("update:cache_written");
                }
                // Also when unchanged: a command killed between caching the index and
                // remembering its serial left the serial behind.
                if store.serial(repo)? != Some(serial) {
                    store.set_serial(repo, serial)?;
                }
                return Ok(Updated {
                    repo: repo.clone(),
                    serial,
                    packages,
                    changed,
                });
            }
            Err(error) => failures.push(format!("{url}: {error}")),
        }
    }
    Err(Error::new(failures.join("; ")))
}

/// The highest serial accepted from a repository: the remembered one, or the cached
/// index's if a crash came between caching it and remembering its serial.
fn accepted_serial(store: &Store, repo: &str) -> Result<Option<u64>, Error> {
    let remembered = store.serial(repo)?;
    let cached = read_cache(store, repo)?.and_then(|(_, bytes)| {
        let text = std::str::from_utf8(&bytes).ok()?;
        index::parse_view(text).ok().map(|i| i.serial)
    });
    Ok(match (remembered, cached) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    })
}

const CACHE_MAGIC: &str = "amber-cached-index 1 ";

fn cache_path(store: &Store, repo: &str) -> PathBuf {
    store.index_dir(repo).join("index")
}

/// Cache the signature and the index in one file so they can never be torn apart.
fn write_cache(store: &Store, repo: &str, signature: &[u8], index: &[u8]) -> Result<(), Error> {
    let dir = store.index_dir(repo);
    durable::create_dir_all_durable(&dir)?;
    let mut bytes = format!("{CACHE_MAGIC}{}\n", signature.len()).into_bytes();
    bytes.extend_from_slice(signature);
    bytes.extend_from_slice(index);
    durable::write_atomic(&cache_path(store, repo), &bytes)?;
    // The URL is kept beside the cache for people reading the store.
    durable::write_atomic(&dir.join("url"), format!("{repo}\n").as_bytes())
}

/// A cached index: (signature file, index bytes), not verified yet.
type CacheFile = (Vec<u8>, Vec<u8>);

/// The cached signature and index of a repository, unverified.
fn read_cache(store: &Store, repo: &str) -> Result<Option<CacheFile>, Error> {
    let path = cache_path(store, repo);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::from_args(format_args!("{}: {e}", path.display()))),
    };
    let corrupt = || {
        Error::from_args(format_args!(
            "{}: corrupt cache, run pkg update",
            path.display()
        ))
    };
    let newline = bytes.iter().position(|&b| b == b'\n').ok_or_else(corrupt)?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| corrupt())?;
    let length: usize = header
        .strip_prefix(CACHE_MAGIC)
        .and_then(|n| n.parse().ok())
        .ok_or_else(corrupt)?;
    let rest = &bytes[newline + 1..];
    if length > rest.len() {
        return Err(corrupt());
    }
    Ok(Some((rest[..length].to_vec(), rest[length..].to_vec())))
}

/// A repository's cached index as read from the store, not checked yet.
#[derive(Debug, Clone)]
pub struct Cached {
    pub repository: Repository,
    signature: Vec<u8>,
    index: Vec<u8>,
}

/// The cached indexes of every configured repository, as read; [`accept`] checks them.
pub fn read_indexes(store: &Store) -> Result<Vec<Cached>, Error> {
    let mut cached = Vec::new();
    for repository in store.repositories()? {
        let repo = repository.url();
        let Some((signature, index)) = read_cache(store, repo)? else {
            return Err(Error::from_args(format_args!(
                "{repo}: no index yet, run pkg update"
            )));
        };
        cached.push(Cached {
            repository,
            signature,
            index,
        });
    }
    Ok(cached)
}

/// The indexes of [`read_indexes`], verified again with the keys trusted now (so a
/// key removed with `pkg key del` stops its indexes at once), parsed and checked.
pub fn accept<'t>(
    store: &Store,
    cached: &'t [Cached],
    arch: &str,
    clock: &Clock,
) -> Result<Vec<Accepted<'t>>, Error> {
    let keys = store.trusted_keys()?;
    cached
        .iter()
        .map(|cached| {
            let repo = cached.repository.url();
            let index = check_index(&keys, &cached.index, &cached.signature, arch, clock)
                .map_err(|e| e.context(repo))?;
            Ok(Accepted {
                repo,
                tag: cached.repository.tag.as_deref(),
                index,
            })
        })
        .collect()
}

/// The locations of a repository's URLs, for downloading its images.
pub fn locations(store: &Store, repo: &str) -> Result<Vec<Location>, Error> {
    let repos = store.repositories()?;
    let repository = repos
        .iter()
        .find(|repository| repository.url() == repo)
        .ok_or_else(|| Error::from_args(format_args!("{repo}: not a configured repository")))?;
    repository
        .urls
        .iter()
        .map(|url| Location::parse(url))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("http://10.0.2.100:8080/").unwrap(),
            Location::Http("http://10.0.2.100:8080".into())
        );
        assert_eq!(
            Location::parse("file:///mnt/usb/repo").unwrap(),
            Location::Local("/mnt/usb/repo".into())
        );
        assert_eq!(
            Location::parse("/mnt/usb/repo").unwrap(),
            Location::Local("/mnt/usb/repo".into())
        );
        for bad in ["ftp://x/", "repo", "http://a b/", "http://x/\r\n"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clock_policy() {
        let unset = Clock {
            now: 5,
            floor: 1000,
        };
        assert!(!unset.is_sane());
        assert_eq!(unset.effective(), 1000);
        let set = Clock {
            now: 2000,
            floor: 1000,
        };
        assert!(set.is_sane());
        assert_eq!(set.effective(), 2000);
        assert_eq!(stored_time("1790000000\n"), Some(1_790_000_000));
        for bad in ["", "-5", "+5", "12x", "1 2"] {
            assert_eq!(stored_time(bad), None, "{bad:?}");
        }
    }
}
