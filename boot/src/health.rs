//! The health check of a new system (DESIGN §11): after the first boot of a system that
//! systemd-boot is still counting tries for, init checks that it works and then
//! blesses it (as systemd-bless-boot does: the counter goes from its file name) or
//! marks it bad and reboots, so the loader starts the previous good one.
//!
//! The system passes when, [`DELAY`] after `amber: ready`:
//!
//! - the store is mounted;
//! - the data partition takes a write (a file written, fsynced and removed);
//! - every service that ran before the update (`pkg system upgrade` recorded them in
//!   `/data/pkg/state/system-pending`) is running;
//! - the board's check script, `/etc/amber/health-check`, if the image has one, exits 0
//!   within [`SCRIPT_TIMEOUT`].
//!
//! Blessing also frees the ESP: of the other systems only the newest good one stays
//! (the previous system, to roll back to). A system that is already good is not checked
//! again; a boot of the previous system after a new one used up its tries is reported
//! once and its record removed.

use amber_base::process::Command;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(feature = "raspberry-pi")]
use amber_core::system::pi::{self, SlotState};
use amber_core::system::{BootEntry, BootState};
use amber_core::version::Version;

/// How long after `amber: ready` the check runs: services that crash at start have
/// failed by then, or are in their restart backoff.
pub const DELAY: Duration = Duration::from_secs(10);
/// How long the board's check script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Where the systems are on the ESP.
const LINUX_DIR: &str = "EFI/Linux";

/// A check to run: where the running system is, and what must run.
#[derive(Debug)]
pub struct Check {
    pub target: Target,
    pub version: String,
    /// Services that ran before the update.
    pub services: Vec<String>,
    /// The system the update came from (the pending record's `from`): the previous
    /// system blessing keeps.
    pub from: Option<String>,
    pub pending_file: PathBuf,
    pub script: PathBuf,
}

/// Where the system being tried is.
#[derive(Debug)]
pub enum Target {
    /// On the ESP, as `file` (`amber-1.2+2-1.efi`).
    Uefi { esp: PathBuf, file: String },
    /// In Raspberry Pi boot partition `slot`, with partition 1 mounted at `boot`.
    #[cfg(feature = "raspberry-pi")]
    RaspberryPi { boot: PathBuf, slot: u8 },
}

/// What the facts of one boot say to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// The running system is good, or not on the ESP: nothing to check.
    Nothing,
    /// The running system is being tried: check it after the delay.
    Check,
    /// A newer system was recorded as pending, yet this one runs: the new one did not
    /// come up (its tries are used up, or it was marked bad).
    FellBack(String),
}

/// The record `pkg system upgrade` leaves for the next boots
/// (`/data/pkg/state/system-pending`): `to VERSION`, `from VERSION` and a `service NAME`
/// line for each service that ran then. A missing or unreadable one is empty.
struct Pending {
    to: Option<String>,
    services: Vec<String>,
    from: Option<String>,
}

impl Pending {
    fn read(path: &Path) -> Pending {
        let text = fs::read_to_string(path).unwrap_or_default();
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key))
                .map(str::to_owned)
        };
        Pending {
            to: value("to "),
            from: value("from "),
            services: text
                .lines()
                .filter_map(|line| line.strip_prefix("service "))
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// Decide for this boot: `esp` mounted, the running `version`, the store's pending file.
pub fn plan(
    esp: &Path,
    version: &str,
    pending_file: &Path,
    script: &Path,
) -> (Plan, Option<Check>) {
    let Pending { to, services, from } = Pending::read(pending_file);
    let Some(file) = running_file(esp, version) else {
        return (Plan::Nothing, None);
    };
    // Only a system with tries left is being tried; a good one was checked before, and
    // a bad one runs because someone chose it by hand at the loader's menu.
    if BootEntry::parse(&file).is_some_and(|entry| matches!(entry.state(), BootState::Trying(_))) {
        let check = Check {
            target: Target::Uefi {
                esp: esp.to_path_buf(),
                file,
            },
            version: version.to_owned(),
            services,
            from,
            pending_file: pending_file.to_path_buf(),
            script: script.to_path_buf(),
        };
        return (Plan::Check, Some(check));
    }
    match to {
        Some(to) if to != version => (Plan::FellBack(to), None),
        _ => (Plan::Nothing, None),
    }
}

/// Remove what power cuts left of releases being written on a boot partition (the
/// ESP's `EFI/Linux`, or a Pi slot's top directory), so a half-written release never
/// takes the room the next upgrade needs. Returns how many files went.
pub fn remove_temporary_files(partition: &Path) -> usize {
    [partition.join(LINUX_DIR), partition.to_path_buf()]
        .iter()
        .map(|dir| amber_base::durable::clean_temp_files(dir).unwrap_or(0))
        .sum()
}

/// The ESP file of the system `version`: `amber-VERSION.efi` or with a counter.
fn running_file(esp: &Path, version: &str) -> Option<String> {
    let version = Version::parse(version).ok()?;
    crate::dir_names(&esp.join(LINUX_DIR))
        .ok()?
        .into_iter()
        .find(|name| BootEntry::parse(name).is_some_and(|entry| entry.version == version))
}

/// `+LEFT-DONE` of a system file's name; None when it has none (or is no system).
fn counter(name: &str) -> Option<(u32, u32)> {
    BootEntry::parse(name)?.counter
}

/// What the supervisor knows that the check needs.
pub struct Facts<'a> {
    pub store_mounted: bool,
    /// Is the service of this name running?
    pub running: &'a dyn Fn(&str) -> bool,
}

impl Check {
    /// Run the check; `Err` names the first thing that failed.
    pub fn run(&self, facts: &Facts) -> Result<(), String> {
        if !facts.store_mounted {
            return Err("the store is not mounted".into());
        }
        data_writable(Path::new("/data"))?;
        for service in &self.services {
            if !(facts.running)(service) {
                return Err(format!(
                    "service {service}, which ran before the update, is not running"
                ));
            }
        }
        if self.script.exists() {
            run_script(&self.script)?;
        }
        Ok(())
    }

    /// Bless the running system: on UEFI boards also free the ESP of all but the
    /// previous good one; on the Pi commit its boot partition.
    pub fn bless(&self) -> Result<String, String> {
        let (esp, file) = match &self.target {
            Target::Uefi { esp, file } => (esp, file),
            #[cfg(feature = "raspberry-pi")]
            Target::RaspberryPi { boot, slot } => {
                let said = pi_mark(boot, *slot, &self.version, SlotState::Good)?;
                let _ = fs::remove_file(&self.pending_file);
                return Ok(said);
            }
        };
        let dir = esp.join(LINUX_DIR);
        let good = format!("amber-{}.efi", self.version);
        rename(&dir, file, &good)?;
        let ours = Version::parse(&self.version).map_err(|e| format!("{}: {e}", self.version))?;
        let mut others: Vec<(Version, String)> = crate::dir_names(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .into_iter()
            .filter(|name| *name != good)
            .filter_map(|name| Some((version_of(&name)?, name)))
            .collect();
        // Newest first (apk order), so the first good one older than this system is the
        // previous one.
        crate::sort_small(&mut others);
        others.reverse();
        let mut kept = None;
        let mut removed = Vec::new();
        // The system the update came from stays as the previous one, whatever its
        // counter says (it may not have been blessed yet); else the newest good older one.
        let from = self
            .from
            .as_deref()
            .and_then(|from| Version::parse(from).ok());
        let previous = others
            .iter()
            .find(|(version, name)| {
                from.as_ref() == Some(version) && counter(name).is_none_or(|(left, _)| left > 0)
            })
            .or_else(|| {
                others
                    .iter()
                    .find(|(version, name)| counter(name).is_none() && *version < ours)
            })
            .map(|(_, name)| name.clone());
        for (version, name) in others {
            if kept.is_none() && previous.as_deref() == Some(name.as_str()) {
                // It ran well enough to be updated from: it is good.
                let good = format!("amber-{version}.efi");
                if name != good {
                    rename(&dir, &name, &good)?;
                }
                kept = Some(good);
                continue;
            }
            fs::remove_file(dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
            removed.push(name);
        }
        sync_dir(&dir)?;
        let _ = fs::remove_file(&self.pending_file);
        Ok(match (kept, removed.is_empty()) {
            (Some(kept), true) => format!("{good}; {kept} kept as the previous system"),
            (Some(kept), false) => format!(
                "{good}; {kept} kept as the previous system, {} removed",
                removed.join(" ")
            ),
            (None, _) => good,
        })
    }

    /// Mark the running system bad (`+0-DONE`, or in the Pi's `amber-slots`), so the
    /// loader does not start it again.
    pub fn mark_bad(&self) -> Result<String, String> {
        let (esp, file) = match &self.target {
            Target::Uefi { esp, file } => (esp, file),
            #[cfg(feature = "raspberry-pi")]
            Target::RaspberryPi { boot, slot } => {
                return pi_mark(boot, *slot, &self.version, SlotState::Bad)
            }
        };
        let dir = esp.join(LINUX_DIR);
        let done = counter(file).map_or(0, |(_, done)| done);
        let bad = BootEntry {
            version: Version::parse(&self.version).map_err(|e| format!("{}: {e}", self.version))?,
            counter: Some((0, done)),
        }
        .file_name();
        rename(&dir, file, &bad)?;
        Ok(bad)
    }
}

/// What a Raspberry Pi boot's facts say to do: the running system's boot partition
/// (`amber-version` there says the running `version`), its state in `amber-slots`,
/// and the pending record.
#[cfg(feature = "raspberry-pi")]
pub fn plan_pi(
    boot: &Path,
    slot_dirs: &[(u8, PathBuf)],
    version: &str,
    pending_file: &Path,
    script: &Path,
) -> (Plan, Option<Check>) {
    let Pending { to, services, from } = Pending::read(pending_file);
    let slots = pi::parse_slots(&fs::read_to_string(boot.join(PI_SLOTS)).unwrap_or_default());
    let running = slot_dirs.iter().find_map(|(slot, dir)| {
        let said = fs::read_to_string(dir.join(PI_VERSION)).unwrap_or_default();
        (said.trim() == version).then_some(*slot)
    });
    let trying = running.is_some_and(|slot| {
        slots
            .iter()
            .any(|known| known.partition == slot && known.state == SlotState::Trying)
    });
    if let (true, Some(slot)) = (trying, running) {
        let check = Check {
            target: Target::RaspberryPi {
                boot: boot.to_path_buf(),
                slot,
            },
            version: version.to_owned(),
            services,
            from,
            pending_file: pending_file.to_path_buf(),
            script: script.to_path_buf(),
        };
        return (Plan::Check, Some(check));
    }
    match to {
        Some(to) if to != version => {
            // The new system never reached init: record it as bad in its partition.
            if let Some(failed) = slots.iter().find(|known| known.version.to_string() == to) {
                let mut slots = slots.clone();
                pi::set(
                    &mut slots,
                    failed.partition,
                    SlotState::Bad,
                    failed.version.clone(),
                );
                let _ = write_durable(&boot.join(PI_SLOTS), pi::write_slots(&slots).as_bytes());
            }
            (Plan::FellBack(to), None)
        }
        _ => (Plan::Nothing, None),
    }
}

/// The Pi's partition-1 files.
#[cfg(feature = "raspberry-pi")]
const PI_SLOTS: &str = "amber-slots";
#[cfg(feature = "raspberry-pi")]
const PI_AUTOBOOT: &str = "autoboot.txt";
#[cfg(feature = "raspberry-pi")]
const PI_VERSION: &str = "amber-version";

/// Set `slot`'s state; a good one is committed in autoboot.txt too.
#[cfg(feature = "raspberry-pi")]
fn pi_mark(boot: &Path, slot: u8, version: &str, state: SlotState) -> Result<String, String> {
    let version = Version::parse(version).map_err(|e| format!("{version}: {e}"))?;
    let mut slots = pi::parse_slots(&fs::read_to_string(boot.join(PI_SLOTS)).unwrap_or_default());
    pi::set(&mut slots, slot, state, version);
    write_durable(&boot.join(PI_SLOTS), pi::write_slots(&slots).as_bytes())?;
    if state == SlotState::Good {
        write_durable(
            &boot.join(PI_AUTOBOOT),
            pi::autoboot(slot, pi::other(slot)).as_bytes(),
        )?;
        Ok(format!("boot partition {slot} committed in autoboot.txt"))
    } else {
        Ok(format!("boot partition {slot} marked bad in amber-slots"))
    }
}

/// Replace a file durably: a temporary beside it, fsync, rename, fsync the directory.
#[cfg(feature = "raspberry-pi")]
fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let temp = path.with_extension("new");
    let result = fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    result.map_err(|e| format!("{}: {e}", path.display()))?;
    sync_dir(dir)
}

/// The version of a system file `amber-VERSION[+...].efi`; None for other files.
fn version_of(name: &str) -> Option<Version> {
    BootEntry::parse(name).map(|entry| entry.version)
}

fn rename(dir: &Path, from: &str, to: &str) -> Result<(), String> {
    if from != to {
        fs::rename(dir.join(from), dir.join(to))
            .map_err(|e| format!("rename {from} to {to}: {e}"))?;
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn data_writable(data: &Path) -> Result<(), String> {
    let probe = data.join(".amber-health");
    let result = fs::File::create(&probe)
        .and_then(|mut file| {
            file.write_all(b"amber health check\n")?;
            file.sync_all()
        })
        .and_then(|()| fs::remove_file(&probe));
    result.map_err(|e| format!("the data partition takes no write: {e}"))
}

/// Run the board's check script, waiting at most [`SCRIPT_TIMEOUT`].
fn run_script(script: &Path) -> Result<(), String> {
    let mut child = Command::new(script)
        .spawn()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} failed ({status})", script.display())),
            Ok(None) if started.elapsed() > SCRIPT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} took longer than {} s",
                    script.display(),
                    SCRIPT_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => return Err(format!("{}: {error}", script.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esp(names: &[&str]) -> PathBuf {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("amber-health-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join(LINUX_DIR)).unwrap();
        for name in names {
            fs::write(dir.join(LINUX_DIR).join(name), b"uki").unwrap();
        }
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join(LINUX_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn what_a_power_cut_left_is_removed_and_nothing_else() {
        let dir = esp(&[
            "amber-1.0.efi",
            ".tmp-812-0-amber-1.4.efi",
            "amber-1.1+3.efi",
        ]);
        fs::write(dir.join(".tmp-9-0-amber-slots"), b"half").unwrap();
        fs::write(dir.join("config.txt"), b"kept").unwrap();
        assert_eq!(remove_temporary_files(&dir), 2);
        assert_eq!(listing(&dir), ["amber-1.0.efi", "amber-1.1+3.efi"]);
        assert!(dir.join("config.txt").exists());
        assert_eq!(remove_temporary_files(&dir), 0);
    }

    #[test]
    fn a_system_being_tried_is_checked_and_blessing_keeps_one_previous() {
        let dir = esp(&[
            "amber-1.0.efi",
            "amber-1.1.efi",
            "amber-0.9+0-3.efi",
            "amber-1.2+2-1.efi",
        ]);
        let pending = dir.join("pending");
        fs::write(&pending, "from 1.1\nto 1.2\nservice dropbear\n").unwrap();
        let (plan_, check) = plan(&dir, "1.2", &pending, &dir.join("no-script"));
        assert_eq!(plan_, Plan::Check);
        let check = check.unwrap();
        assert!(matches!(&check.target, Target::Uefi { file, .. } if file == "amber-1.2+2-1.efi"));
        assert_eq!(check.services, ["dropbear"]);
        let blessed = check.bless().unwrap();
        assert!(
            blessed.starts_with("amber-1.2.efi; amber-1.1.efi kept"),
            "{blessed}"
        );
        assert_eq!(listing(&dir), ["amber-1.1.efi", "amber-1.2.efi"]);
        assert!(!pending.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_check_marks_the_system_bad() {
        let dir = esp(&["amber-1.1.efi", "amber-1.2+1-2.efi"]);
        let (_, check) = plan(&dir, "1.2", &dir.join("pending"), &dir.join("none"));
        let bad = check.unwrap().mark_bad().unwrap();
        assert_eq!(bad, "amber-1.2+0-2.efi");
        assert_eq!(listing(&dir), ["amber-1.1.efi", "amber-1.2+0-2.efi"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn good_systems_and_fallbacks_are_not_checked() {
        let dir = esp(&["amber-1.1.efi", "amber-1.2+0-3.efi"]);
        let pending = dir.join("pending");
        assert_eq!(plan(&dir, "1.1", &pending, &pending).0, Plan::Nothing);
        fs::write(&pending, "from 1.1\nto 1.2\n").unwrap();
        assert_eq!(
            plan(&dir, "1.1", &pending, &pending).0,
            Plan::FellBack("1.2".into())
        );
        assert_eq!(plan(&dir, "9.9", &pending, &pending).0, Plan::Nothing);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg(feature = "raspberry-pi")]
    fn a_pi_system_being_tried_is_committed_or_marked_bad() {
        let root = esp(&[]);
        let boot = root.join("boot");
        for dir in ["boot", "slot-2", "slot-3"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        fs::write(boot.join(PI_AUTOBOOT), pi::autoboot(2, 3)).unwrap();
        fs::write(boot.join(PI_SLOTS), "2 good 1.1\n3 trying 1.2\n").unwrap();
        fs::write(root.join("slot-2").join(PI_VERSION), "1.1\n").unwrap();
        fs::write(root.join("slot-3").join(PI_VERSION), "1.2\n").unwrap();
        let slots = [(2, root.join("slot-2")), (3, root.join("slot-3"))];
        let pending = root.join("pending");
        fs::write(&pending, "from 1.1\nto 1.2\n").unwrap();
        let (plan_, check) = plan_pi(&boot, &slots, "1.2", &pending, &root.join("none"));
        assert_eq!(plan_, Plan::Check);
        let check = check.unwrap();
        check.bless().unwrap();
        assert_eq!(
            pi::committed(&fs::read_to_string(boot.join(PI_AUTOBOOT)).unwrap()),
            Some(3)
        );
        assert_eq!(
            fs::read_to_string(boot.join(PI_SLOTS)).unwrap(),
            "2 good 1.1\n3 good 1.2\n"
        );
        // A new system that never reached init: the committed one runs, and the new
        // one's partition is marked bad.
        fs::write(boot.join(PI_AUTOBOOT), pi::autoboot(2, 3)).unwrap();
        fs::write(boot.join(PI_SLOTS), "2 good 1.1\n3 trying 1.2\n").unwrap();
        fs::write(&pending, "from 1.1\nto 1.2\n").unwrap();
        let (plan_, _) = plan_pi(&boot, &slots, "1.1", &pending, &root.join("none"));
        assert_eq!(plan_, Plan::FellBack("1.2".into()));
        assert_eq!(
            fs::read_to_string(boot.join(PI_SLOTS)).unwrap(),
            "2 good 1.1\n3 bad 1.2\n"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_check_needs_the_store_and_the_services() {
        let check = Check {
            target: Target::Uefi {
                esp: PathBuf::from("/nonexistent"),
                file: "amber-1.2+2-1.efi".into(),
            },
            version: "1.2".into(),
            services: vec!["dropbear".into()],
            from: None,
            pending_file: PathBuf::from("/nonexistent/p"),
            script: PathBuf::from("/nonexistent/s"),
        };
        let none = |_: &str| false;
        let error = check
            .run(&Facts {
                store_mounted: false,
                running: &none,
            })
            .unwrap_err();
        assert_eq!(error, "the store is not mounted");
    }
}
