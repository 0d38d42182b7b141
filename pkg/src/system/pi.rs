//! `pkg system` on the Raspberry Pi boards (DESIGN §11): the firmware's A/B.
//!
//! Partition 1 (init mounts it at `/boot`) holds `autoboot.txt`, which names the
//! committed boot partition under `[all]` and the one to try under `[tryboot]`, and
//! `amber-slots`, what boot partitions 2 and 3 hold (`PARTITION STATE VERSION`); init
//! mounts those at `/run/amber/boot-2` and `boot-3`. A release is a SquashFS image of
//! a boot partition's files.
//!
//! `upgrade` writes the release into the partition the running system is not on: it
//! is downloaded into the store and hashed against the signed index first, then the
//! partition's files are replaced one by one, each fsynced, its `amber-version` last
//! (a partition whose `amber-version` is missing or another holds no whole system), and
//! `autoboot.txt` gets the new partition under `[tryboot]`. `--reboot` asks init for a
//! reboot with the one-shot tryboot flag (`reboot "0 tryboot"`), so the firmware starts
//! the new system once; init's health check then commits it (`[all]` names it) or
//! marks it bad and reboots into the committed one, and a kernel that never reaches
//! init is left behind by the next reset, which starts the committed partition again.
//!
//! The tryboot flag reaches the firmware through the Raspberry Pi kernel's reboot
//! notifier (`drivers/firmware/raspberrypi.c`, a patch of the Raspberry Pi fork).
//! Debian's kernel is mainline's and has no such notifier: there, the reboot restarts
//! the committed system and the update is never tried (init then reports that it did
//! not come up). Pi A/B is not verified on hardware (README).

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use amber_core::hash::Sha256Check;
use amber_core::squashfs::read::{Cache, Kind};
use amber_core::system::pi::{self, Slot, SlotState};
use amber_core::system::System;
use amber_core::version::Version;

use crate::context::{Context, Report};
use crate::durable;
use crate::error::{Context as _, Error};
use crate::json::Json;
use crate::repo::{self, Location};
use crate::store::Store;

/// The files of partition 1.
const AUTOBOOT: &str = "autoboot.txt";
const SLOTS_FILE: &str = "amber-slots";
/// The file of a boot partition that says which system it holds, written last.
pub const VERSION_FILE: &str = "amber-version";
/// The most a boot partition's file may be (the kernel is the biggest, ~35 MB).
const MAX_FILE: u64 = 256 << 20;

/// A Pi device's boot partitions.
pub struct Here {
    /// Partition 1.
    pub boot: PathBuf,
    /// `/run/amber` (or under `AMBER_SYSTEM_ROOT`), holding `boot-2`, `boot-3`.
    pub run: PathBuf,
    pub board: String,
    pub running: Version,
}

impl Here {
    fn slot_dir(&self, partition: u8) -> PathBuf {
        self.run.join(format!("boot-{partition}"))
    }

    fn slots(&self) -> Vec<Slot> {
        pi::parse_slots(&fs::read_to_string(self.boot.join(SLOTS_FILE)).unwrap_or_default())
    }

    fn committed(&self) -> Result<u8, Error> {
        let path = self.boot.join(AUTOBOOT);
        let text = fs::read_to_string(&path).context(path.display())?;
        pi::committed(&text).ok_or_else(|| {
            Error::from_args(format_args!(
                "{}: names no boot partition 2 or 3",
                path.display()
            ))
        })
    }

    /// The partition the running system is on: the one whose `amber-version` says so,
    /// else the committed one.
    fn running_slot(&self) -> Result<u8, Error> {
        for partition in pi::SLOTS {
            let version =
                fs::read_to_string(self.slot_dir(partition).join(VERSION_FILE)).unwrap_or_default();
            if Version::parse(version.trim()).is_ok_and(|version| version == self.running) {
                return Ok(partition);
            }
        }
        self.committed()
    }

    fn write_slots(&self, slots: &[Slot]) -> Result<(), Error> {
        durable::write_atomic(
            &self.boot.join(SLOTS_FILE),
            pi::write_slots(slots).as_bytes(),
        )
    }

    fn write_autoboot(&self, committed: u8, trying: u8) -> Result<(), Error> {
        durable::write_atomic(
            &self.boot.join(AUTOBOOT),
            pi::autoboot(committed, trying).as_bytes(),
        )
    }
}

pub fn status(here: &Here, offered: Json, offer_text: &str) -> Result<Report, Error> {
    let running = here.running_slot()?;
    let committed = here.committed()?;
    let slots = here.slots();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "board {} (Raspberry Pi A/B, partition {committed} committed)",
        here.board
    );
    let mut json = Vec::new();
    for partition in pi::SLOTS {
        let is_running = partition == running;
        match slots.iter().find(|slot| slot.partition == partition) {
            Some(slot) => {
                let _ = writeln!(
                    text,
                    "  partition {partition}: {} {}{}",
                    slot.version,
                    slot.state.word(),
                    if is_running { " (running)" } else { "" }
                );
                json.push(Json::object([
                    ("partition", Json::Number(partition as u64)),
                    ("version", Json::string(slot.version.to_string())),
                    ("state", Json::string(slot.state.word())),
                    ("running", Json::Bool(is_running)),
                ]));
            }
            None => {
                let _ = writeln!(text, "  partition {partition}: empty");
            }
        }
    }
    text.push_str(offer_text);
    Ok(Report::new(
        text,
        Json::object([
            ("board", Json::string(here.board.clone())),
            ("running", Json::string(here.running.to_string())),
            ("committed", Json::Number(committed as u64)),
            ("slots", Json::Array(json)),
            ("offered", offered),
        ]),
    ))
}

/// Write `system` into the partition the running system is not on, to be tried.
/// Returns the partition and the milliseconds it took.
pub fn write(
    context: &Context,
    store: &Store,
    here: &Here,
    repo_url: &str,
    system: &System,
) -> Result<(u8, u64), Error> {
    let running = here.running_slot()?;
    let target = pi::other(running);
    if let Some(slot) = here
        .slots()
        .iter()
        .find(|slot| slot.version == system.version)
    {
        if slot.state == SlotState::Bad {
            return Err(Error::from_args(format_args!(
                "system {} failed here before; not trying it again",
                system.version
            )));
        }
    }
    let started = std::time::Instant::now();
    let download = store
        .root()
        .join("state")
        .join(format!(".tmp-system-{}", system.version));
    let _ = fs::remove_file(&download);
    let mut failures = Vec::new();
    let mut fetched = false;
    for location in repo::locations(store, repo_url)? {
        match fetch(&location, &context.arch, system, &download, &context.limits) {
            Ok(()) => {
                fetched = true;
                break;
            }
            Err(error) => failures.push(error.to_string()),
        }
    }
    if !fetched {
        return Err(Error::from_args(format_args!(
            "system {}: {}",
            system.version,
            failures.join("; ")
        )));
    }
    let result = unpack(&download, &here.slot_dir(target), &system.version);
    let _ = fs::remove_file(&download);
    result?;
    let mut slots = here.slots();
    pi::set(
        &mut slots,
        target,
        SlotState::Trying,
        system.version.clone(),
    );
    here.write_slots(&slots)?;
    here.write_autoboot(running, target)?;
    Ok((target, started.elapsed().as_millis() as u64))
}

fn fetch(
    location: &Location,
    arch: &str,
    system: &System,
    to: &Path,
    limits: &crate::http::Limits,
) -> Result<(), Error> {
    let mut file = durable::create_new(to)?;
    let mut check = Sha256Check::new(system.sha256, system.size);
    location.fetch(
        &format!("{arch}/{}", system.path()),
        limits,
        system.size,
        &mut |piece| {
            check
                .update(piece)
                .map_err(|e| Error::from_args(format_args!("{e}")))?;
            file.write_all(piece).context(to.display())
        },
    )?;
    check
        .finish()
        .map_err(|e| Error::from_args(format_args!("{e}")))?;
    file.sync_all().context(to.display())
}

/// Replace the files of the boot partition mounted at `dir` with the release's.
fn unpack(release: &Path, dir: &Path, version: &Version) -> Result<(), Error> {
    let archive = crate::image::open(release)?;
    let mut cache = Cache::new();
    let root = archive
        .root(&mut cache)
        .map_err(|e| Error::from_args(format_args!("{}: {e}", release.display())))?;
    let mut entries: Vec<(String, u64, Kind)> = Vec::new();
    archive
        .read_dir(&root, 0, &mut cache, &mut |entry| {
            entries.push((
                String::from_utf8_lossy(entry.name).into_owned(),
                entry.reference,
                entry.kind,
            ));
            true
        })
        .map_err(|e| Error::from_args(format_args!("{}: {e}", release.display())))?;
    if !entries.iter().any(|(name, _, _)| name == VERSION_FILE) {
        return Err(Error::from_args(format_args!(
            "{}: no {VERSION_FILE}: not a boot partition's files",
            release.display()
        )));
    }
    // The old system goes first, its version file first of all: from here on the
    // partition holds no whole system until the new version file is written.
    let _ = fs::remove_file(dir.join(VERSION_FILE));
    for item in fs::read_dir(dir).context(dir.display())? {
        let path = item.context(dir.display())?.path();
        if path.is_file() {
            fs::remove_file(&path).context(path.display())?;
        }
    }
    durable::sync_dir(dir)?;
    let mut write_one = |name: &str, reference: u64| -> Result<(), Error> {
        let inode = archive
            .inode(reference, &mut cache)
            .map_err(|e| Error::from_args(format_args!("{name}: {e}")))?;
        let bytes = crate::image::read_file(&archive, &inode, MAX_FILE, &mut cache)
            .map_err(|e| Error::from_args(format_args!("{}: {name}: {e}", release.display())))?;
        let path = dir.join(name);
        let mut file = fs::File::create(&path).context(path.display())?;
        file.write_all(&bytes).context(path.display())?;
        file.sync_all().context(path.display())
    };
    for (name, reference, kind) in &entries {
        if *kind != Kind::File {
            return Err(Error::from_args(format_args!(
                "{}: {name} is not a plain file",
                release.display()
            )));
        }
        if name != VERSION_FILE {
            write_one(name, *reference)?;
        }
    }
    crate::failpoint::hit("system:unpacked");
    let (_, reference, _) = entries
        .iter()
        .find(|(name, _, _)| name == VERSION_FILE)
        .expect("checked above");
    write_one(VERSION_FILE, *reference)?;
    durable::sync_dir(dir)?;
    let written = fs::read_to_string(dir.join(VERSION_FILE)).unwrap_or_default();
    if Version::parse(written.trim()).ok().as_ref() != Some(version) {
        return Err(Error::from_args(format_args!(
            "{}: its {VERSION_FILE} says {}, the index {version}",
            release.display(),
            written.trim()
        )));
    }
    Ok(())
}

/// Commit the running system: `[all]` names its partition, and it is good.
pub fn mark_good(here: &Here) -> Result<String, Error> {
    let running = here.running_slot()?;
    let mut slots = here.slots();
    pi::set(&mut slots, running, SlotState::Good, here.running.clone());
    here.write_slots(&slots)?;
    here.write_autoboot(running, pi::other(running))?;
    Ok(format!(
        "system {} is good (partition {running} committed)\n",
        here.running
    ))
}

/// Mark the running system bad; the other partition is committed when it is good.
pub fn mark_bad(here: &Here) -> Result<String, Error> {
    let running = here.running_slot()?;
    let mut slots = here.slots();
    pi::set(&mut slots, running, SlotState::Bad, here.running.clone());
    here.write_slots(&slots)?;
    let other = pi::other(running);
    if slots
        .iter()
        .any(|slot| slot.partition == other && slot.state == SlotState::Good)
    {
        here.write_autoboot(other, running)?;
        return Ok(format!(
            "system {} is bad; partition {other} boots next\n",
            here.running
        ));
    }
    Ok(format!(
        "system {} is bad, but no other good system is there to boot\n",
        here.running
    ))
}

/// The previous good system boots next (it is committed); the running one is bad.
pub fn rollback(here: &Here) -> Result<String, Error> {
    let running = here.running_slot()?;
    let other = pi::other(running);
    let slots = here.slots();
    let Some(previous) = slots
        .iter()
        .find(|slot| slot.partition == other && slot.state == SlotState::Good)
    else {
        return Err(Error::new(
            "no previous good system on the other boot partition to roll back to",
        ));
    };
    let previous = previous.version.clone();
    mark_bad(here)?;
    Ok(format!(
        "rolled back: {previous} (partition {other}) boots next; {} is marked bad\n",
        here.running
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(name: &str, running: &str) -> Here {
        let root = std::env::temp_dir().join(format!("amber-pi-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["boot", "run/boot-2", "run/boot-3"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        fs::write(root.join("boot").join(AUTOBOOT), pi::autoboot(2, 3)).unwrap();
        fs::write(root.join("boot").join(SLOTS_FILE), "2 good 1.1\n").unwrap();
        fs::write(root.join("run/boot-2").join(VERSION_FILE), "1.1\n").unwrap();
        Here {
            boot: root.join("boot"),
            run: root.join("run"),
            board: "rpi3".into(),
            running: Version::parse(running).unwrap(),
        }
    }

    #[test]
    fn committing_and_marking_change_autoboot_and_the_slots() {
        let here = here("marks", "1.1");
        assert_eq!(here.running_slot().unwrap(), 2);
        // As if 1.2 were written into partition 3 and booted there.
        fs::write(here.run.join("boot-3").join(VERSION_FILE), "1.2\n").unwrap();
        fs::write(here.boot.join(SLOTS_FILE), "2 good 1.1\n3 trying 1.2\n").unwrap();
        fs::write(here.boot.join(AUTOBOOT), pi::autoboot(2, 3)).unwrap();
        let now = Here {
            running: Version::parse("1.2").unwrap(),
            ..here
        };
        assert_eq!(now.running_slot().unwrap(), 3);
        now.mark_good_for_test();
        assert_eq!(
            pi::committed(&fs::read_to_string(now.boot.join(AUTOBOOT)).unwrap()),
            Some(3)
        );
        assert_eq!(
            fs::read_to_string(now.boot.join(SLOTS_FILE)).unwrap(),
            "2 good 1.1\n3 good 1.2\n"
        );
        let message = rollback(&now).unwrap();
        assert!(
            message.contains("1.1 (partition 2) boots next"),
            "{message}"
        );
        assert_eq!(
            pi::committed(&fs::read_to_string(now.boot.join(AUTOBOOT)).unwrap()),
            Some(2)
        );
        assert_eq!(
            fs::read_to_string(now.boot.join(SLOTS_FILE)).unwrap(),
            "2 good 1.1\n3 bad 1.2\n"
        );
        assert!(rollback(&Here {
            running: Version::parse("1.1").unwrap(),
            ..now
        })
        .is_err());
    }

    impl Here {
        fn mark_good_for_test(&self) {
            mark_good(self).unwrap();
        }
    }
}
