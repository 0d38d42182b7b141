//! `pkg system`: A/B updates of the base (DESIGN §11): the kernel, the device binary,
//! the trusted keys and everything else in the system's boot payload.
//!
//! On UEFI boards a system is one unified kernel image in the EFI system partition,
//! which init mounts at `/boot`, named as systemd-boot counts its tries:
//! `EFI/Linux/amber-VERSION+3.efi` when written, renamed by the loader on every try
//! (`+2-1`, `+1-2`, `+0-3`), blessed by init's health check (`amber-VERSION.efi`, good)
//! or marked bad (`+0-N`). systemd-boot boots the newest system that is not bad, so a
//! new one is tried first and the previous good one boots by itself when the new one
//! used up its tries: a kernel that panics (`panic=-1` reboots) never reaches init, and
//! the loader falls back with nobody at the console.
//!
//! - `status`: the running system, the others on the ESP and their states, and the
//!   newest release the repositories offer for this board, with the time this device's
//!   rollout wave reaches it (its place comes from a seed kept in the store).
//! - `upgrade`: refresh the indexes, pick the newest release (never an older or equal
//!   one unless `--allow-downgrade`; not before this device's wave unless `--now`),
//!   make room (bad systems and all but one previous good one go), stream it into the
//!   ESP under a temporary name while hashing it against the signed index (capped at
//!   the indexed size), fsync, rename to `amber-VERSION+3.efi`, fsync the directory,
//!   and record what the health check must find (the services running now).
//!   `--reboot` then asks init to reboot.
//! - `rollback`: the running system is marked bad, so the previous good one boots next.
//! - `mark-good` / `mark-bad`: bless the running system, or mark it bad, by hand.
//!
//! A power cut at any moment leaves the ESP with the systems it had, plus at most a
//! temporary file that the next upgrade removes: a system gets its name only once its
//! bytes are durable and hash as the signed index says. Nothing of the data partition
//! (the store, /data settings) changes with the system; a newer system reads what an
//! older one wrote.
//!
//! Paths: the running system's facts are in the initramfs (`/etc/amber/board`,
//! `/etc/amber/version`); `AMBER_SYSTEM_ROOT` (default `/`) puts them, and `boot/`,
//! under another directory, for tests.

#![forbid(unsafe_code)]
// Without Raspberry Pi support a firmware match has only its UEFI arm.
#![cfg_attr(
    not(feature = "raspberry-pi"),
    allow(clippy::infallible_destructuring_match)
)]

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use amber_core::hash::{HashError, Sha256Check};
use amber_core::system::{self as core_system, BootEntry, BootState, System};
use amber_core::version::Version;

use crate::context::{Context, Report};
use crate::durable;
use crate::error::{Context as _, Error};
use crate::json::Json;
use crate::repo::{self, Location};
use crate::store::Store;

#[cfg(feature = "raspberry-pi")]
mod pi;

/// Where the ESP's systems are, under the ESP.
const LINUX_DIR: &str = "EFI/Linux";
/// Tries a new system gets (systemd-boot's `+3`).
pub const TRIES: u32 = 3;
/// The store's record of an update waiting for its health check.
pub const PENDING_FILE: &str = "state/system-pending";
/// The store's rollout seed: 8 random bytes as 16 hex digits, made once.
const SEED_FILE: &str = "state/rollout-seed";

/// The running system and where its ESP is.
struct Here {
    esp: PathBuf,
    board: String,
    running: Version,
}

fn here() -> Result<Firmware, Error> {
    let root = PathBuf::from(std::env::var_os("AMBER_SYSTEM_ROOT").unwrap_or_else(|| "/".into()));
    let read = |name: &str| -> Result<String, Error> {
        let path = root.join("etc/amber").join(name);
        fs::read_to_string(&path)
            .map(|text| text.trim().to_owned())
            .map_err(|e| {
                Error::from_args(format_args!(
                    "{}: {e} (pkg system runs on an amber device)",
                    path.display()
                ))
            })
    };
    let board = read("board")?;
    let version = read("version")?;
    let running = Version::parse(&version)
        .map_err(|e| Error::from_args(format_args!("/etc/amber/version {version:?}: {e}")))?;
    let boot = root.join("boot");
    if boot.join(LINUX_DIR).is_dir() {
        return Ok(Firmware::Uefi(Here {
            esp: boot,
            board,
            running,
        }));
    }
    if boot.join("autoboot.txt").is_file() {
        #[cfg(feature = "raspberry-pi")]
        return Ok(Firmware::RaspberryPi(pi::Here {
            boot,
            run: root.join("run/amber"),
            board,
            running,
        }));
        #[cfg(not(feature = "raspberry-pi"))]
        return Err(Error::from_args(format_args!(
            "{}: a Raspberry Pi's partition 1, and this {} build of amber has no Raspberry Pi support",
            boot.display(),
            std::env::consts::ARCH
        )));
    }
    Err(Error::from_args(format_args!(
        "{}: neither {LINUX_DIR} (an EFI system partition) nor autoboot.txt (a Raspberry Pi's partition 1) is there",
        boot.display()
    )))
}

/// How this device boots, and where its systems are.
enum Firmware {
    Uefi(Here),
    #[cfg(feature = "raspberry-pi")]
    RaspberryPi(pi::Here),
}

impl Firmware {
    fn board(&self) -> &str {
        match self {
            Firmware::Uefi(here) => &here.board,
            #[cfg(feature = "raspberry-pi")]
            Firmware::RaspberryPi(here) => &here.board,
        }
    }

    fn running(&self) -> &Version {
        match self {
            Firmware::Uefi(here) => &here.running,
            #[cfg(feature = "raspberry-pi")]
            Firmware::RaspberryPi(here) => &here.running,
        }
    }
}

/// A system on the ESP: its entry and file name.
struct OnDisk {
    entry: BootEntry,
    name: String,
}

/// The systems on the ESP, newest first.
fn on_disk(esp: &Path) -> Result<Vec<OnDisk>, Error> {
    let dir = esp.join(LINUX_DIR);
    let mut systems: Vec<OnDisk> = Vec::new();
    for item in fs::read_dir(&dir).context(dir.display())? {
        let item = item.context(dir.display())?;
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(entry) = BootEntry::parse(&name) {
            systems.push(OnDisk { entry, name });
        }
    }
    // The device's one small stable sort, not another instance of the standard library's.
    amber_core::sort::sort_by(&mut systems, |a, b| b.entry.version.cmp(&a.entry.version));
    Ok(systems)
}

fn state_word(entry: &BootEntry) -> &'static str {
    match entry.state() {
        BootState::Good => "good",
        BootState::Trying(_) => "trying",
        BootState::Bad => "bad",
    }
}

fn describe(entry: &BootEntry) -> String {
    match entry.state() {
        BootState::Trying(left) => format!("new, {left} tries left"),
        _ => state_word(entry).to_owned(),
    }
}

fn entry_json(system: &OnDisk, running: &Version) -> Json {
    let mut pairs = vec![
        ("version", Json::string(system.entry.version.to_string())),
        ("state", Json::string(state_word(&system.entry))),
        ("running", Json::Bool(system.entry.version == *running)),
        ("file", Json::string(system.name.clone())),
    ];
    if let BootState::Trying(left) = system.entry.state() {
        pairs.push(("tries_left", Json::Number(left as u64)));
    }
    Json::Object(pairs)
}

/// The newest release offered for `board` by any repository: (repository, release).
fn offered(
    context: &Context,
    store: &Store,
    board: &str,
) -> Result<Option<(String, System)>, Error> {
    let mut best: Option<(String, System)> = None;
    let cached = repo::read_indexes(store)?;
    for accepted in repo::accept(store, &cached, &context.arch, &context.clock)? {
        if let Some(system) = accepted.index.newest_system(board) {
            if best
                .as_ref()
                .is_none_or(|(_, known)| system.version > known.version)
            {
                best = Some((accepted.repo.to_owned(), system.clone()));
            }
        }
    }
    Ok(best)
}

/// This device's rollout seed, made on first use.
fn seed(store: &Store) -> Result<u64, Error> {
    let path = store.root().join(SEED_FILE);
    if let Ok(text) = fs::read_to_string(&path) {
        if let Ok(seed) = u64::from_str_radix(text.trim(), 16) {
            return Ok(seed);
        }
    }
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
        .context("/dev/urandom")?;
    let seed = u64::from_le_bytes(bytes);
    durable::write_atomic(&path, format!("{seed:016x}\n").as_bytes())?;
    Ok(seed)
}

/// When this device may take `system`: its place and the wave's time.
fn wave(store: &Store, system: &System) -> Result<(u16, Option<u64>), Error> {
    let place = core_system::place(seed(store)?, &system.board, &system.version);
    Ok((place, system.available_at(place)))
}

/// "in 3 d 4 h" / "now", for a time `at` seen from `now`.
fn from_now(at: u64, now: u64) -> String {
    if at <= now {
        return "now".to_owned();
    }
    let left = at - now;
    let (days, hours, minutes) = (left / 86_400, left % 86_400 / 3600, left % 3600 / 60);
    if days > 0 {
        format!("in {days} d {hours} h")
    } else if hours > 0 {
        format!("in {hours} h {minutes} min")
    } else {
        format!("in {} min", minutes.max(1))
    }
}

pub fn status(context: &Context) -> Result<Report, Error> {
    let firmware = here()?;
    let store = Store::open_reading(&context.root);
    let (offer_text, offer) = offer_status(context, &store, firmware.board(), firmware.running())?;
    let here = match firmware {
        Firmware::Uefi(here) => here,
        #[cfg(feature = "raspberry-pi")]
        Firmware::RaspberryPi(here) => return pi::status(&here, offer, &offer_text),
    };
    let systems = on_disk(&here.esp)?;
    let mut text = String::new();
    let _ = writeln!(text, "board {}", here.board);
    for system in &systems {
        let running = system.entry.version == here.running;
        let _ = writeln!(
            text,
            "  {} {}{}",
            system.entry.version,
            describe(&system.entry),
            if running { " (running)" } else { "" }
        );
    }
    if !systems.iter().any(|s| s.entry.version == here.running) {
        let _ = writeln!(text, "  {} running (not on the ESP)", here.running);
    }
    text.push_str(&offer_text);
    let json = Json::object([
        ("board", Json::string(here.board.clone())),
        ("running", Json::string(here.running.to_string())),
        (
            "systems",
            Json::Array(
                systems
                    .iter()
                    .map(|s| entry_json(s, &here.running))
                    .collect(),
            ),
        ),
        ("offered", offer),
    ]);
    Ok(Report::new(text, json))
}

/// The `offered:` line of `status` and its JSON.
fn offer_status(
    context: &Context,
    store: &Store,
    board: &str,
    running: &Version,
) -> Result<(String, Json), Error> {
    let mut text = String::new();
    let now = context.clock.effective();
    let offer = match offered(context, store, board) {
        Ok(Some((repo, system))) => {
            let newer = system.version > *running;
            let (place, at) = wave(store, &system)?;
            let when = match at {
                Some(at) => format!(
                    "this device's wave {}",
                    if at <= now {
                        "has come".to_owned()
                    } else {
                        format!("comes at {at} ({})", from_now(at, now))
                    }
                ),
                None => "no wave reaches this device".to_owned(),
            };
            let _ = writeln!(
                text,
                "offered: {} by {repo} ({}); {when}",
                system.version,
                if newer { "newer" } else { "not newer" }
            );
            Json::object([
                ("version", Json::string(system.version.to_string())),
                ("repo", Json::string(repo)),
                ("newer", Json::Bool(newer)),
                ("place", Json::Number(place as u64)),
                ("available_at", at.map_or(Json::Null, Json::Number)),
                ("wave_reached", Json::Bool(at.is_some_and(|at| at <= now))),
            ])
        }
        Ok(None) => {
            let _ = writeln!(text, "offered: nothing for {board}");
            Json::Null
        }
        Err(error) => {
            let _ = writeln!(text, "offered: unknown ({error})");
            Json::Null
        }
    };
    Ok((text, offer))
}

/// What `upgrade` was asked.
pub struct Upgrade {
    pub reboot: bool,
    pub now: bool,
    pub allow_downgrade: bool,
}

pub fn upgrade(context: &Context, options: &Upgrade) -> Result<Report, Error> {
    let firmware = here()?;
    // Fresh indexes first, as `pkg update` fetches them (signature, serial, expiry).
    crate::maintain::update(context)?;
    let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
    let board = firmware.board().to_owned();
    let running = firmware.running().clone();
    let Some((repo_url, system)) = offered(context, &store, &board)? else {
        return Err(Error::from_args(format_args!(
            "no repository offers a system for board {board}"
        )));
    };
    let version = system.version.to_string();
    let done = |text: String, json: Json| Ok(Report::new(text, json));
    if system.version == running {
        return done(
            format!("system {version} is running and the newest offered\n"),
            Json::object([
                ("changed", Json::Bool(false)),
                ("version", Json::string(version)),
            ]),
        );
    }
    if system.version < running && !options.allow_downgrade {
        return Err(Error::from_args(format_args!(
            "system {version} is older than the running {running}; --allow-downgrade installs it"
        )));
    }
    let systems = match &firmware {
        Firmware::Uefi(here) => on_disk(&here.esp)?,
        #[cfg(feature = "raspberry-pi")]
        Firmware::RaspberryPi(_) => Vec::new(),
    };
    if let Some(current) = systems.iter().find(|s| s.entry.version == running) {
        if let BootState::Trying(_) = current.entry.state() {
            return Err(Error::from_args(format_args!(
                "the running system {running} is still being tried (init checks it 10 s after ready); upgrade once it is good, or `pkg system mark-good`"
            )));
        }
    }
    if let Some(known) = systems.iter().find(|s| s.entry.version == system.version) {
        if known.entry.state() == BootState::Bad {
            return Err(Error::from_args(format_args!(
                "system {version} failed here before ({}); not trying it again",
                known.name
            )));
        }
        return done(
            format!(
                "system {version} is already on the ESP ({}); reboot to use it\n",
                describe(&known.entry)
            ),
            Json::object([
                ("changed", Json::Bool(false)),
                ("version", Json::string(version)),
            ]),
        );
    }
    let now = context.clock.effective();
    let (place, at) = wave(&store, &system)?;
    if !options.now {
        match at {
            None => {
                return done(
                    format!("system {version}: no rollout wave reaches this device (place {place} of 10000); --now installs it\n"),
                    Json::object([("changed", Json::Bool(false)), ("version", Json::string(version)), ("available_at", Json::Null)]),
                )
            }
            Some(at) if at > now => {
                return done(
                    format!("system {version}: this device's wave comes at {at} ({}); --now installs it before\n", from_now(at, now)),
                    Json::object([("changed", Json::Bool(false)), ("version", Json::string(version)), ("available_at", Json::Number(at))]),
                )
            }
            Some(_) => {}
        }
    }
    let here = match firmware {
        Firmware::Uefi(here) => here,
        #[cfg(feature = "raspberry-pi")]
        Firmware::RaspberryPi(here) => {
            let (partition, took) = pi::write(context, &store, &here, &repo_url, &system)?;
            record_pending(&store, &running, &system.version)?;
            let text = format!(
                "system {version} written to boot partition {partition} in {took} ms, to be tried; {}\n",
                if options.reboot { "rebooting with the tryboot flag" } else { "reboot with `reboot \"0 tryboot\"` to try it" }
            );
            let report = Report::new(
                text,
                Json::object([
                    ("changed", Json::Bool(true)),
                    ("version", Json::string(version)),
                    ("partition", Json::Number(partition as u64)),
                    ("milliseconds", Json::Number(took)),
                ]),
            );
            if options.reboot {
                report.print(context.json)?;
                context.reported.set(true);
                request_reboot("reboot tryboot")?;
                return Ok(Report::empty());
            }
            return Ok(report);
        }
    };
    let dir = here.esp.join(LINUX_DIR);
    make_room(&dir, &systems, &here.running)?;
    let target = dir.join(
        BootEntry {
            version: system.version.clone(),
            counter: Some((TRIES, 0)),
        }
        .file_name(),
    );
    let started = std::time::Instant::now();
    let locations = repo::locations(&store, &repo_url)?;
    let mut failures = Vec::new();
    let mut written = false;
    for location in &locations {
        match write_system(
            location,
            &context.arch,
            &system,
            &dir,
            &target,
            &context.limits,
        ) {
            Ok(()) => {
                written = true;
                break;
            }
            Err(error) => failures.push(error.to_string()),
        }
    }
    if !written {
        return Err(Error::from_args(format_args!(
            "system {version}: {}",
            failures.join("; ")
        )));
    }
    // Whole milliseconds as u64: formatting a u128 costs code for nothing here.
    let took = started.elapsed().as_millis() as u64;
    record_pending(&store, &here.running, &system.version)?;
    let mut text = format!(
        "system {version} written to {} in {} ms; ",
        target.display(),
        took
    );
    text.push_str(if options.reboot {
        "rebooting\n"
    } else {
        "reboot to use it\n"
    });
    let report = Report::new(
        text,
        Json::object([
            ("changed", Json::Bool(true)),
            ("version", Json::string(version)),
            ("file", Json::string(target.display().to_string())),
            ("milliseconds", Json::Number(took)),
        ]),
    );
    if options.reboot {
        report.print(context.json)?;
        context.reported.set(true);
        request_reboot("reboot")?;
        return Ok(Report::empty());
    }
    Ok(report)
}

/// Remove what the ESP need not keep before a new system is written: bad systems, and
/// good ones other than the running one and the newest other (the previous good one).
/// Leftover temporary files of interrupted upgrades go too.
fn make_room(dir: &Path, systems: &[OnDisk], running: &Version) -> Result<(), Error> {
    let mut kept_previous = false;
    for system in systems {
        if system.entry.version == *running {
            continue;
        }
        let keep = match system.entry.state() {
            BootState::Bad => false,
            // Newest first: the first good one that is not running is the previous.
            _ if !kept_previous => {
                kept_previous = true;
                true
            }
            _ => false,
        };
        if !keep {
            durable::remove_durable(&dir.join(&system.name))?;
        }
    }
    durable::clean_temp_files(dir)?;
    Ok(())
}

/// Stream the release from `location` into a temporary file in `dir`, hashing it as it
/// comes; once it is whole and right, fsync, rename to `target`, fsync `dir`.
///
/// The file gets its full size first, made durable before a byte of the release is
/// written. The ESP is FAT, which has no journal and allocates clusters as a file
/// grows: a power cut while a file grows can leave its directory entry naming clusters
/// the FAT on disk still calls free, and the kernel then remounts the ESP read-only as
/// soon as the leftover is removed, so no later update could be written. Allocated at
/// once and synced (the FAT before the directory entry), the file's metadata does not
/// change while the release streams in; a power cut then leaves only data to discard.
fn write_system(
    location: &Location,
    arch: &str,
    system: &System,
    dir: &Path,
    target: &Path,
    limits: &crate::http::Limits,
) -> Result<(), Error> {
    let temp = durable::temp_path(target);
    let result = (|| {
        let mut file = durable::create_new(&temp)?;
        file.set_len(system.size).context(temp.display())?;
        file.sync_all().context(temp.display())?;
        durable::sync_dir(dir)?;
        crate::failpoint::hit("system:allocated");
        let mut check = Sha256Check::new(system.sha256, system.size);
        let relative = format!("{arch}/{}", system.path());
        location.fetch(&relative, limits, system.size, &mut |piece| {
            check.update(piece).map_err(hash_error)?;
            file.write_all(piece).context(temp.display())
        })?;
        check.finish().map_err(hash_error)?;
        crate::failpoint::hit("system:written");
        file.sync_all().context(temp.display())?;
        drop(file);
        fs::rename(&temp, target).context(target.display())?;
        crate::failpoint::hit("system:renamed");
        durable::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn hash_error(error: HashError) -> Error {
    Error::from_args(format_args!("{error}"))
}

/// Record, for init's health check after the reboot, which system this was and which
/// services ran: they must run again under the new one.
fn record_pending(store: &Store, from: &Version, to: &Version) -> Result<(), Error> {
    let services = running_services().unwrap_or_default();
    let mut text = format!("from {from}\nto {to}\n");
    for service in services {
        let _ = writeln!(text, "service {service}");
    }
    durable::write_atomic(&store.root().join(PENDING_FILE), text.as_bytes())
}

/// The services init runs now, from `svc status` over its control socket.
fn running_services() -> Result<Vec<String>, Error> {
    let answer = ask_init("status")?;
    Ok(answer
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            (words.next() == Some("running")).then(|| name.to_owned())
        })
        // The built-in units come back by themselves; the console shell is not a service.
        .filter(|name| !matches!(name.as_str(), "store" | "network" | "console"))
        .collect())
}

/// Send one request line to init's control socket; the text of an `ok` answer.
fn ask_init(request: &str) -> Result<String, Error> {
    use std::io::Read;
    let socket =
        std::env::var("AMBER_CONTROL_SOCKET").unwrap_or_else(|_| "/run/amber/control".into());
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).context(&socket)?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .context(&socket)?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .context(&socket)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).context(&socket)?;
    match answer.split_once('\n') {
        Some(("ok", rest)) => Ok(rest.to_owned()),
        Some((_, rest)) => Err(Error::from_args(format_args!("init: {}", rest.trim()))),
        None if answer == "ok" => Ok(String::new()),
        None => Err(Error::from_args(format_args!("init: {}", answer.trim()))),
    }
}

/// Ask init to reboot. Its answer may never come (it is stopping everything), so a
/// connection cut short counts as done once the request went out.
fn request_reboot(request: &str) -> Result<(), Error> {
    let socket =
        std::env::var("AMBER_CONTROL_SOCKET").unwrap_or_else(|_| "/run/amber/control".into());
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).context(&socket)?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .context(&socket)
}

/// The running system's file on the ESP.
fn running_entry(here: &Here) -> Result<OnDisk, Error> {
    on_disk(&here.esp)?
        .into_iter()
        .find(|system| system.entry.version == here.running)
        .ok_or_else(|| {
            Error::from_args(format_args!(
                "the running system {} is not on the ESP",
                here.running
            ))
        })
}

/// Rename the running system's file to `entry`'s name, durably.
fn rename_running(here: &Here, running: &OnDisk, entry: &BootEntry) -> Result<String, Error> {
    let dir = here.esp.join(LINUX_DIR);
    let name = entry.file_name();
    if name != running.name {
        durable::rename_durable(&dir.join(&running.name), &dir.join(&name))?;
    }
    Ok(name)
}

pub fn mark_good(context: &Context) -> Result<Report, Error> {
    let here = match here()? {
        Firmware::Uefi(here) => here,
        #[cfg(feature = "raspberry-pi")]
        Firmware::RaspberryPi(here) => {
            let text = pi::mark_good(&here)?;
            let _ = fs::remove_file(Store::open_reading(&context.root).root().join(PENDING_FILE));
            return Ok(marked(text, &here.running, "good"));
        }
    };
    let running = running_entry(&here)?;
    let name = rename_running(
        &here,
        &running,
        &BootEntry {
            version: here.running.clone(),
            counter: None,
        },
    )?;
    let store = Store::open_reading(&context.root);
    let _ = fs::remove_file(store.root().join(PENDING_FILE));
    Ok(Report::new(
        format!("system {} is good ({name})\n", here.running),
        Json::object([
            ("version", Json::string(here.running.to_string())),
            ("state", Json::string("good")),
        ]),
    ))
}

pub fn mark_bad(_context: &Context) -> Result<Report, Error> {
    let here = match here()? {
        Firmware::Uefi(here) => here,
        #[cfg(feature = "raspberry-pi")]
        Firmware::RaspberryPi(here) => {
            return Ok(marked(pi::mark_bad(&here)?, &here.running, "bad"))
        }
    };
    let running = running_entry(&here)?;
    let done = running.entry.counter.map_or(0, |(_, done)| done);
    let name = rename_running(
        &here,
        &running,
        &BootEntry {
            version: here.running.clone(),
            counter: Some((0, done)),
        },
    )?;
    Ok(Report::new(
        format!(
            "system {} is bad ({name}); the previous good system boots next\n",
            here.running
        ),
        Json::object([
            ("version", Json::string(here.running.to_string())),
            ("state", Json::string("bad")),
        ]),
    ))
}

pub fn rollback(context: &Context) -> Result<Report, Error> {
    let here = match here()? {
        Firmware::Uefi(here) => here,
        #[cfg(feature = "raspberry-pi")]
        Firmware::RaspberryPi(here) => {
            return Ok(marked(pi::rollback(&here)?, &here.running, "bad"))
        }
    };
    let systems = on_disk(&here.esp)?;
    let Some(previous) = systems
        .iter()
        .find(|s| s.entry.version != here.running && s.entry.state() == BootState::Good)
    else {
        return Err(Error::new(
            "no previous good system on the ESP to roll back to",
        ));
    };
    let previous = previous.entry.version.to_string();
    mark_bad(context)?;
    Ok(Report::new(
        format!(
            "rolled back: {} boots next; {} is marked bad\n",
            previous, here.running
        ),
        Json::object([
            ("next", Json::string(previous)),
            ("marked_bad", Json::string(here.running.to_string())),
        ]),
    ))
}

/// The report of a mark on the Pi boards.
#[cfg(feature = "raspberry-pi")]
fn marked(text: String, running: &Version, state: &str) -> Report {
    Report::new(
        text,
        Json::object([
            ("version", Json::string(running.to_string())),
            ("state", Json::string(state)),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_now_are_short() {
        assert_eq!(from_now(10, 20), "now");
        assert_eq!(from_now(100, 40), "in 1 min");
        assert_eq!(from_now(3 * 3600 + 600, 0), "in 3 h 10 min");
        assert_eq!(from_now(2 * 86_400 + 5 * 3600, 0), "in 2 d 5 h");
    }
}
