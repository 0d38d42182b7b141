//! Downloading images: several at once, each into a temporary file, capped at the
//! indexed size, hashed while streaming and checked against its index entry (DESIGN §5,
//! SECURITY-TESTS items 1, 7–10, 25). When every download has passed, one syncfs(2)
//! makes all their bytes durable (one journal commit, where an fsync per image cost one
//! each: most of the time of installing 100 small packages), then the images are renamed
//! into `images/` and one fsync of `images/` makes the renames durable before a
//! generation can name the images.
//!
//! Every file in `images/` has therefore passed its hash and meta checks and was on disk
//! before it got its name; a failed or killed download leaves at most temporary files
//! the next command removes.

#![forbid(unsafe_code)]

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use amber_core::hash::{HashError, Sha256Check};
use amber_core::index::Entry;
use amber_core::squashfs::read::Cache;

use crate::durable;
use crate::error::{Context, Error};
use crate::http::Limits;
use crate::image;
use crate::repo::Location;

/// One image to fetch: its entry and the mirrors of the repository it came from.
pub struct Job<'a> {
    pub entry: &'a Entry,
    pub locations: Vec<Location>,
}

/// How many downloads run at once.
pub const PARALLEL: usize = 4;

/// Fetch every job's image into `images_dir`. Runs up to [`PARALLEL`] at once; after the
/// first failure no new download starts, the running ones stop at their next piece and
/// remove their temporary files, and the first error is returned. Returns the bytes
/// downloaded.
pub fn fetch_all(
    jobs: &[Job<'_>],
    images_dir: &Path,
    arch: &str,
    limits: &Limits,
) -> Result<u64, Error> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    // Checked images waiting under their temporary names: (temporary, final).
    let checked: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
    let progress = Progress::new(jobs);
    let run = Run {
        arch,
        limits,
        progress: &progress,
        cancelled: &failed,
    };
    let workers = PARALLEL.min(jobs.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                // Each worker checks its images with one decompression cache.
                let mut cache = Cache::new();
                loop {
                    if failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { return };
                    let result = fetch_one(job, images_dir, &run, &mut cache);
                    match result {
                        Ok(names) => checked
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(names),
                        Err(error) => {
                            // Record the error before raising the flag, so the downloads that
                            // stop because of the flag never report first.
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            if slot.is_none() {
                                *slot = Some(error);
                            }
                            drop(slot);
                            failed.store(true, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    progress.finish();
    let checked = checked.into_inner().unwrap_or_else(|p| p.into_inner());
    let result = match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(error) => Err(error),
        None => commit(&checked, images_dir),
    };
    if result.is_err() {
        for (temp, _) in &checked {
            let _ = fs::remove_file(temp);
        }
    }
    result.map(|()| progress.bytes.load(Ordering::SeqCst))
}

/// Make the checked images durable and give them their names: one flush of the
/// filesystem for all their bytes, the renames, one fsync of `images/` for the names.
fn commit(checked: &[(PathBuf, PathBuf)], images_dir: &Path) -> Result<(), Error> {
    if checked.is_empty() {
        return Ok(());
    }
    durable::sync_filesystem(images_dir)?;
    crate::failpoint::hit("download:synced");
    for (temp, target) in checked {
        fs::rename(temp, target).context(target.display())?;
        crate::failpoint::hit("download:renamed");
    }
    durable::sync_dir(images_dir)
}

/// What every download of one [`fetch_all`] shares.
struct Run<'a> {
    arch: &'a str,
    limits: &'a Limits,
    progress: &'a Progress,
    /// Set once a download failed: the others stop, since they would be thrown away.
    cancelled: &'a AtomicBool,
}

/// Fetch one image, trying each mirror in turn, into a checked temporary file; returns
/// its name and the image's final name. Gives up as soon as the run is cancelled.
fn fetch_one(
    job: &Job<'_>,
    images_dir: &Path,
    run: &Run<'_>,
    cache: &mut Cache,
) -> Result<(PathBuf, PathBuf), Error> {
    let id = job.entry.id();
    let target = images_dir.join(job.entry.file_name());
    let mut failures = Vec::new();
    for location in &job.locations {
        if run.cancelled.load(Ordering::SeqCst) {
            failures.push("cancelled after another download failed".to_owned());
            break;
        }
        match fetch_from(job.entry, location, &target, run, cache) {
            Ok(temp) => return Ok((temp, target)),
            Err(error) => failures.push(error.to_string()),
        }
    }
    if failures.is_empty() {
        failures.push("no location to fetch from".into());
    }
    Err(Error::from_args(format_args!(
        "{id}: {}",
        failures.join("; ")
    )))
}

fn fetch_from(
    entry: &Entry,
    location: &Location,
    target: &Path,
    run: &Run<'_>,
    cache: &mut Cache,
) -> Result<PathBuf, Error> {
    let Run {
        arch,
        limits,
        progress,
        cancelled,
    } = *run;
    let temp = durable::temp_path(target);
    let result = (|| {
        let mut file = durable::create_new(&temp)?;
        let mut check = Sha256Check::new(entry.sha256, entry.size);
        let relative = format!("{arch}/{}", entry.file_name());
        location.fetch(&relative, limits, entry.size, &mut |piece| {
            if cancelled.load(Ordering::SeqCst) {
                return Err(Error::new("cancelled after another download failed"));
            }
            check.update(piece).map_err(hash_error)?;
            file.write_all(piece).context(temp.display())?;
            progress.add(piece.len() as u64);
            Ok(())
        })?;
        check.finish().map_err(hash_error)?;
        drop(file);
        crate::failpoint::hit("download:written");
        // The bytes are the ones the index vouches for; now the image must say so too.
        image::accept(&temp, entry, arch, cache)?;
        // Flushed and renamed by `commit`, with all the others.
        progress.done();
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| temp)
}

fn hash_error(error: HashError) -> Error {
    Error::from_args(format_args!("{error}"))
}

/// The progress line: shown on stderr while stdout is a terminal, never otherwise.
struct Progress {
    enabled: bool,
    total: u64,
    count: usize,
    bytes: AtomicU64,
    finished: AtomicUsize,
    started: Instant,
    last_draw: Mutex<Instant>,
}

impl Progress {
    fn new(jobs: &[Job<'_>]) -> Progress {
        Progress {
            enabled: std::io::stdout().is_terminal() && !jobs.is_empty(),
            total: jobs.iter().map(|j| j.entry.size).sum(),
            count: jobs.len(),
            bytes: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            started: Instant::now(),
            last_draw: Mutex::new(Instant::now()),
        }
    }

    fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.draw(false);
    }

    fn done(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        self.draw(true);
    }

    fn draw(&self, force: bool) {
        if !self.enabled {
            return;
        }
        let mut last = self.last_draw.lock().unwrap_or_else(|p| p.into_inner());
        if !force && last.elapsed().as_millis() < 100 {
            return;
        }
        *last = Instant::now();
        let bytes = self.bytes.load(Ordering::Relaxed);
        // Integer arithmetic throughout: float formatting would cost the device binary
        // about 9 KB.
        let millis = (self.started.elapsed().as_millis() as u64).max(1);
        let rate = bytes.saturating_mul(1000) / millis;
        eprint!(
            "\rfetching {}/{}: {} of {} ({}/s)   ",
            self.finished.load(Ordering::Relaxed),
            self.count,
            human(bytes),
            human(self.total),
            human(rate)
        );
    }

    fn finish(&self) {
        if self.enabled {
            self.draw(true);
            eprintln!();
        }
    }
}

/// Bytes for people: 812 B, 1.2 MiB.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // The value is bytes / divisor; it is shown in tenths, rounded half to even as
    // `{:.1}` of the same f64 would be.
    let mut divisor: u64 = 1024;
    let mut unit = 0;
    while bytes / 1024 >= divisor && unit < UNITS.len() - 1 {
        divisor *= 1024;
        unit += 1;
    }
    // The remainder is below the divisor (at most 2^40), so ten times it fits.
    let scaled = bytes % divisor * 10;
    let mut tenths = bytes / divisor * 10 + scaled / divisor;
    let remainder = scaled % divisor;
    if remainder * 2 > divisor || (remainder * 2 == divisor && tenths % 2 == 1) {
        tenths += 1;
    }
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human;

    /// The integer rounding matches `{:.1}` of the f64 it replaced, ties included.
    #[test]
    fn human_matches_float_formatting() {
        fn float(bytes: u64) -> String {
            const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
            if bytes < 1024 {
                return format!("{bytes} B");
            }
            let mut value = bytes as f64 / 1024.0;
            let mut unit = 0;
            while value >= 1024.0 && unit < UNITS.len() - 1 {
                value /= 1024.0;
                unit += 1;
            }
            format!("{value:.1} {}", UNITS[unit])
        }
        let mut samples: Vec<u64> = (0..5000).collect();
        for power in [1u64 << 10, 1 << 20, 1 << 30, 1 << 40] {
            for tenth in 0..20_000u64 {
                // Every tie (x.x5) and its neighbours, around each unit.
                let tie = (tenth * 2 + 1) * power / 20;
                samples.extend([tie.saturating_sub(1), tie, tie + 1]);
            }
            samples.extend([power - 1, power, power + 1, power * 1023 + power / 20 * 19]);
        }
        samples.extend([u64::MAX >> 12, 1 << 52, 5 << 50]);
        for bytes in samples {
            assert_eq!(human(bytes), float(bytes), "{bytes} bytes");
        }
        assert_eq!(human(812), "812 B");
        assert_eq!(human(1280), "1.2 KiB");
        assert_eq!(human(8192), "8.0 KiB");
    }
}
