//! Downloading images: several at once, each into a temporary file, capped at the
//! indexed size, hashed while streaming, checked against its index entry, fsynced and
//! only then renamed into `images/` (DESIGN §5, SECURITY-TESTS items 1, 7–10, 25). One
//! fsync of `images/` after the last rename makes all the renames durable before a
//! generation can name the images.
//!
//! Every file in `images/` has therefore passed its hash and meta checks; a failed or
//! killed download leaves at most a temporary file the next command removes.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use amber_core::hash::{HashError, Sha256Check};
use amber_core::index::Entry;

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
    let progress = Progress::new(jobs);
    let workers = PARALLEL.min(jobs.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { return };
                if let Err(error) = fetch_one(job, images_dir, arch, limits, &progress, &failed) {
                    // Record the error before raising the flag, so the downloads that
                    // stop because of the flag never report first.
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    if slot.is_none() {
                        *slot = Some(error);
                    }
                    drop(slot);
                    failed.store(true, Ordering::SeqCst);
                }
            });
        }
    });
    progress.finish();
    // Every image was fsynced before its rename; one fsync of the directory now makes
    // all the renames durable, before the caller commits a generation naming them.
    // (One per image cost a tenth of the install time of 100 small packages.)
    let synced = if jobs.is_empty() {
        Ok(())
    } else {
        durable::sync_dir(images_dir)
    };
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(error) => Err(error),
        None => synced.map(|()| progress.bytes.load(Ordering::SeqCst)),
    }
}

/// Fetch one image, trying each mirror in turn. Gives up as soon as `cancelled` is set
/// (another download failed, so this one would be thrown away).
fn fetch_one(
    job: &Job<'_>,
    images_dir: &Path,
    arch: &str,
    limits: &Limits,
    progress: &Progress,
    cancelled: &AtomicBool,
) -> Result<(), Error> {
    let id = job.entry.id();
    let target = images_dir.join(job.entry.file_name());
    let mut failures = Vec::new();
    for location in &job.locations {
        if cancelled.load(Ordering::SeqCst) {
            failures.push("cancelled after another download failed".to_owned());
            break;
        }
        match fetch_from(
            job.entry, location, &target, arch, limits, progress, cancelled,
        ) {
            Ok(()) => return Ok(()),
            Err(error) => failures.push(error.to_string()),
        }
    }
    if failures.is_empty() {
        failures.push("no location to fetch from".into());
    }
    Err(Error::new(format!("{id}: {}", failures.join("; "))))
}

fn fetch_from(
    entry: &Entry,
    location: &Location,
    target: &Path,
    arch: &str,
    limits: &Limits,
    progress: &Progress,
    cancelled: &AtomicBool,
) -> Result<(), Error> {
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
        file.sync_all().context(temp.display())?;
        drop(file);
        crate::failpoint::hit("download:fsynced");
        // The bytes are the ones the index vouches for; now the image must say so too.
        image::accept(&temp, entry, arch)?;
        // Renamed only: fetch_all fsyncs images/ once, after the last rename.
        fs::rename(&temp, target).context(target.display())?;
        crate::failpoint::hit("download:renamed");
        progress.done();
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn hash_error(error: HashError) -> Error {
    Error::new(error.to_string())
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
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\rfetching {}/{}: {} of {} ({}/s)   ",
            self.finished.load(Ordering::Relaxed),
            self.count,
            human(bytes),
            human(self.total),
            human((bytes as f64 / seconds) as u64)
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
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
