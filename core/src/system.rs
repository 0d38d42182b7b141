//! System releases (DESIGN §11): the `system` lines of the repository index, the
//! rollout waves of a release, and the names systemd-boot gives systems on the ESP.
//!
//! ```text
//! system qemu-x86_64 1.2 size=14883840 sha256=<64 hex> rollout=10@1767225600,100@1767312000
//! ```
//!
//! - `system BOARD VERSION`: the board's boot payload of one release (its UKI, or on a
//!   Raspberry Pi board an image of its boot partition's files), published as
//!   `<arch>/system/BOARD-VERSION` beside the packages. BOARD is `[a-z0-9][a-z0-9_-]*`
//!   (at most 64 bytes); VERSION has apk's ordering, as package versions do.
//! - `size=` and `sha256=` as for a package: required, the download cap and the hash.
//! - `rollout=` (optional): waves `PERCENT@UNIX-SECONDS`, both strictly growing, percents
//!   1 to 100. A device whose place (see [`place`]) is below a wave's percent may take the
//!   release from that wave's time on. Without `rollout=`, every device may take it at
//!   once. A release whose last wave is below 100 reaches only that share of devices.
//! - `system` lines follow the `pkg` lines, sorted by board, then version, no two the
//!   same.
//!
//! A device's place in a rollout comes from a seed of its own kept on /data and the
//! release, so a device is early for some releases and late for others, and every
//! device computes its own wave with no server deciding (as Bottlerocket does).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::line::{check_line_shape, parse_decimal, parse_sha256, push_hex, HashError};
use crate::version::{Version, VersionError};

/// The longest board name accepted, in bytes.
pub const MAX_BOARD_LEN: usize = 64;

/// One system release of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    pub board: String,
    pub version: Version,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Empty: every device at once.
    pub rollout: Vec<Wave>,
}

/// From `at` (unix seconds) on, devices whose place is below `percent` may update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wave {
    pub percent: u8,
    pub at: u64,
}

/// Why a `system` line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemError {
    Shape,
    MissingBoardOrVersion,
    BadBoard,
    BadVersion(VersionError),
    NotKeyValue,
    UnknownKey(String),
    DuplicateKey(&'static str),
    KeyOutOfOrder(&'static str),
    MissingKey(&'static str),
    BadNumber(&'static str),
    BadSha256(HashError),
    /// A wave that is not `PERCENT@TIME`, a percent outside 1 to 100, or waves whose
    /// percents or times do not grow.
    BadRollout,
}

impl fmt::Display for SystemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemError::Shape => f.write_str("empty line, control character or bad spacing"),
            SystemError::MissingBoardOrVersion => f.write_str("expected `system BOARD VERSION`"),
            SystemError::BadBoard => f.write_str("board is not [a-z0-9][a-z0-9_-]*"),
            SystemError::BadVersion(error) => write!(f, "version: {error}"),
            SystemError::NotKeyValue => f.write_str("expected key=value"),
            SystemError::UnknownKey(key) => write!(f, "unknown key {key:?}"),
            SystemError::DuplicateKey(key) => write!(f, "{key}= given twice"),
            SystemError::KeyOutOfOrder(key) => write!(f, "{key}= out of order"),
            SystemError::MissingKey(key) => write!(f, "missing {key}="),
            SystemError::BadNumber(key) => write!(f, "{key}= is not a decimal number"),
            SystemError::BadSha256(error) => write!(f, "sha256 {error}"),
            SystemError::BadRollout => {
                f.write_str("rollout= must be PERCENT@TIME waves, percents 1 to 100, both growing")
            }
        }
    }
}

impl core::error::Error for SystemError {}

/// The keys of a `system` line, in the order they must appear.
const KEYS: [&str; 3] = ["size", "sha256", "rollout"];

/// Whether `board` is a board name: `[a-z0-9][a-z0-9_-]*`, never `-<digit>` (so that
/// `BOARD-VERSION` splits one way), at most [`MAX_BOARD_LEN`] bytes.
pub fn is_valid_board(board: &str) -> bool {
    let bytes = board.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_BOARD_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
        && !bytes
            .windows(2)
            .any(|pair| pair[0] == b'-' && pair[1].is_ascii_digit())
}

/// The board and version of a release file's name, `BOARD-VERSION`.
pub fn split_file_name(name: &str) -> Option<(&str, Version)> {
    let split = name
        .as_bytes()
        .windows(2)
        .position(|pair| pair[0] == b'-' && pair[1].is_ascii_digit())?;
    let (board, version) = (&name[..split], &name[split + 1..]);
    if !is_valid_board(board) {
        return None;
    }
    Some((board, Version::parse(version).ok()?))
}

/// Parses a `rollout=` value on its own (`10@1767225600,100@1767312000`), as
/// `pkg repo index` reads it from a release's `.rollout` file.
pub fn parse_waves(value: &str) -> Result<Vec<Wave>, SystemError> {
    parse_rollout(value)
}

/// Parses one `system ...` line.
pub fn parse_line(line: &str) -> Result<System, SystemError> {
    check_line_shape(line).map_err(|_| SystemError::Shape)?;
    let mut fields = line.split(' ');
    if fields.next() != Some("system") {
        return Err(SystemError::MissingBoardOrVersion);
    }
    let (Some(board), Some(version)) = (fields.next(), fields.next()) else {
        return Err(SystemError::MissingBoardOrVersion);
    };
    if !is_valid_board(board) {
        return Err(SystemError::BadBoard);
    }
    let version = Version::parse(version).map_err(SystemError::BadVersion)?;
    let mut size = None;
    let mut sha256 = None;
    let mut rollout = Vec::new();
    let mut seen = [false; KEYS.len()];
    let mut last = 0;
    for field in fields {
        let (key, value) = field.split_once('=').ok_or(SystemError::NotKeyValue)?;
        let position = KEYS
            .iter()
            .position(|known| *known == key)
            .ok_or_else(|| SystemError::UnknownKey(String::from(key)))?;
        let key = KEYS[position];
        if seen[position] {
            return Err(SystemError::DuplicateKey(key));
        }
        if position < last {
            return Err(SystemError::KeyOutOfOrder(key));
        }
        seen[position] = true;
        last = position;
        match key {
            "size" => size = Some(parse_decimal(value).ok_or(SystemError::BadNumber("size"))?),
            "sha256" => sha256 = Some(parse_sha256(value).map_err(SystemError::BadSha256)?),
            _ => rollout = parse_rollout(value)?,
        }
    }
    Ok(System {
        board: String::from(board),
        version,
        size: size.ok_or(SystemError::MissingKey("size"))?,
        sha256: sha256.ok_or(SystemError::MissingKey("sha256"))?,
        rollout,
    })
}

fn parse_rollout(value: &str) -> Result<Vec<Wave>, SystemError> {
    let mut waves: Vec<Wave> = Vec::new();
    for wave in value.split(',') {
        let (percent, at) = wave.split_once('@').ok_or(SystemError::BadRollout)?;
        let percent = parse_decimal(percent)
            .filter(|percent| (1..=100).contains(percent))
            .ok_or(SystemError::BadRollout)? as u8;
        let at = parse_decimal(at).ok_or(SystemError::BadRollout)?;
        if let Some(previous) = waves.last() {
            if percent <= previous.percent || at <= previous.at {
                return Err(SystemError::BadRollout);
            }
        }
        waves.push(Wave { percent, at });
    }
    Ok(waves)
}

impl System {
    /// Appends the release's `system ...` line, newline included.
    pub fn write_line(&self, out: &mut String) {
        let _ = write!(
            out,
            "system {} {} size={} sha256=",
            self.board, self.version, self.size
        );
        push_hex(out, &self.sha256);
        for (index, wave) in self.rollout.iter().enumerate() {
            out.push_str(if index == 0 { " rollout=" } else { "," });
            let _ = write!(out, "{}@{}", wave.percent, wave.at);
        }
        out.push('\n');
    }

    /// The release's file in the repository, under `<arch>/`: `system/BOARD-VERSION`.
    pub fn path(&self) -> String {
        let mut path = String::new();
        let _ = write!(path, "system/{}-{}", self.board, self.version);
        path
    }

    /// When a device at `place` (0 to 9,999, see [`place`]) may take this release:
    /// `Some(unix seconds)`, or `None` when no wave reaches it.
    pub fn available_at(&self, place: u16) -> Option<u64> {
        if self.rollout.is_empty() {
            return Some(0);
        }
        // A wave of P percent reaches the places below P × 100.
        self.rollout
            .iter()
            .find(|wave| u32::from(place) < u32::from(wave.percent) * 100)
            .map(|wave| wave.at)
    }
}

/// A device's place in the rollout of one release, 0 to 9,999: from its seed (kept on
/// /data, made once at random) and the release, by FNV-1a, so places of different
/// releases are unrelated and the same device and release always give the same place.
pub fn place(seed: u64, board: &str, version: &Version) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&seed.to_le_bytes());
    eat(board.as_bytes());
    eat(&[0]);
    let mut text = String::new();
    let _ = write!(text, "{version}");
    eat(text.as_bytes());
    (hash % 10_000) as u16
}

/// A system on the ESP, as systemd-boot's boot counting names it (the boot loader
/// specification's `+LEFT[-DONE]` before the extension): `amber-VERSION.efi` (good: it
/// was blessed), `amber-VERSION+LEFT-DONE.efi` (being tried, LEFT tries left) or with
/// LEFT 0 (bad: used up or marked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub version: Version,
    /// `None`: blessed. `Some((left, done))`: counted.
    pub counter: Option<(u32, u32)>,
}

/// What a boot entry's name says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootState {
    Good,
    /// Not blessed yet: this many tries left.
    Trying(u32),
    Bad,
}

impl BootEntry {
    /// Parses `amber-VERSION[+LEFT[-DONE]].efi`; `None` for any other name.
    pub fn parse(name: &str) -> Option<BootEntry> {
        let stem = name.strip_prefix("amber-")?.strip_suffix(".efi")?;
        let (version, counter) = match stem.rsplit_once('+') {
            Some((version, counter)) => {
                let (left, done) = match counter.split_once('-') {
                    Some((left, done)) => (left, done),
                    None => (counter, "0"),
                };
                let left = parse_decimal(left)?.try_into().ok()?;
                let done = parse_decimal(done)?.try_into().ok()?;
                (version, Some((left, done)))
            }
            None => (stem, None),
        };
        Some(BootEntry {
            version: Version::parse(version).ok()?,
            counter,
        })
    }

    pub fn state(&self) -> BootState {
        match self.counter {
            None => BootState::Good,
            Some((0, _)) => BootState::Bad,
            Some((left, _)) => BootState::Trying(left),
        }
    }

    /// The name with this entry's counter.
    pub fn file_name(&self) -> String {
        let mut name = String::new();
        let _ = write!(name, "amber-{}", self.version);
        match self.counter {
            None => {}
            Some((left, 0)) => {
                let _ = write!(name, "+{left}");
            }
            Some((left, done)) => {
                let _ = write!(name, "+{left}-{done}");
            }
        }
        name.push_str(".efi");
        name
    }
}

/// The Raspberry Pi's A/B (DESIGN §11): two boot partitions, 2 and 3; partition 1's
/// `autoboot.txt` names the committed one under `[all]` and the one to try under
/// `[tryboot]` (the firmware's one-shot tryboot flag); `amber-slots` beside it records
/// what each holds and how it fared, one `PARTITION STATE VERSION` line each (`good`,
/// `trying`, `bad`).
pub mod pi {
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt::Write as _;

    use crate::version::Version;

    /// The boot partitions, as autoboot.txt numbers them.
    pub const SLOTS: [u8; 2] = [2, 3];

    /// The other boot partition.
    pub fn other(slot: u8) -> u8 {
        if slot == SLOTS[0] {
            SLOTS[1]
        } else {
            SLOTS[0]
        }
    }

    /// autoboot.txt booting `committed`, and `trying` with the tryboot flag.
    pub fn autoboot(committed: u8, trying: u8) -> String {
        let mut text = String::new();
        let _ = write!(
            text,
            "# Written by amber: the firmware boots partition {committed}; with the one-shot\n\
             # tryboot flag, partition {trying} (an update being tried).\n\
             [all]\n\
             tryboot_a_b=1\n\
             boot_partition={committed}\n\
             [tryboot]\n\
             boot_partition={trying}\n"
        );
        text
    }

    /// The committed partition of an autoboot.txt: the first `boot_partition=`, which
    /// is the `[all]` one.
    pub fn committed(autoboot: &str) -> Option<u8> {
        autoboot
            .lines()
            .find_map(|line| line.trim().strip_prefix("boot_partition="))
            .and_then(|number| number.trim().parse().ok())
            .filter(|slot| SLOTS.contains(slot))
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum SlotState {
        Good,
        Trying,
        Bad,
    }

    impl SlotState {
        pub fn word(self) -> &'static str {
            match self {
                SlotState::Good => "good",
                SlotState::Trying => "trying",
                SlotState::Bad => "bad",
            }
        }
    }

    /// What one boot partition holds.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Slot {
        pub partition: u8,
        pub state: SlotState,
        pub version: Version,
    }

    /// Parses `amber-slots`; lines that are not `PARTITION STATE VERSION` are skipped.
    pub fn parse_slots(text: &str) -> Vec<Slot> {
        let mut slots = Vec::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            let (Some(partition), Some(state), Some(version), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Ok(partition) = partition.parse::<u8>() else {
                continue;
            };
            let state = match state {
                "good" => SlotState::Good,
                "trying" => SlotState::Trying,
                "bad" => SlotState::Bad,
                _ => continue,
            };
            let Ok(version) = Version::parse(version) else {
                continue;
            };
            if SLOTS.contains(&partition) && !slots.iter().any(|s: &Slot| s.partition == partition)
            {
                slots.push(Slot {
                    partition,
                    state,
                    version,
                });
            }
        }
        slots
    }

    /// Writes `amber-slots`, in partition order.
    pub fn write_slots(slots: &[Slot]) -> String {
        let mut text = String::new();
        for partition in SLOTS {
            if let Some(slot) = slots.iter().find(|slot| slot.partition == partition) {
                let _ = writeln!(
                    text,
                    "{} {} {}",
                    slot.partition,
                    slot.state.word(),
                    slot.version
                );
            }
        }
        text
    }

    /// Set what `partition` holds.
    pub fn set(slots: &mut Vec<Slot>, partition: u8, state: SlotState, version: Version) {
        slots.retain(|slot| slot.partition != partition);
        slots.push(Slot {
            partition,
            state,
            version,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn system_lines_parse_and_write_back() {
        for line in [
            alloc::format!("system qemu-x86_64 1.2 size=100 sha256={HASH}"),
            alloc::format!(
                "system rpi3 2.0-r1 size=7 sha256={HASH} rollout=10@1000,50@2000,100@3000"
            ),
        ] {
            let system = parse_line(&line).unwrap();
            let mut out = String::new();
            system.write_line(&mut out);
            assert_eq!(out, alloc::format!("{line}\n"));
        }
        let system = parse_line(&alloc::format!("system b 1.0 size=1 sha256={HASH}")).unwrap();
        assert_eq!(system.path(), "system/b-1.0");
        let (board, version) = split_file_name("qemu-x86_64-1.2-r3").unwrap();
        assert_eq!(
            (board, version.to_string().as_str()),
            ("qemu-x86_64", "1.2-r3")
        );
        assert!(
            split_file_name("rpi-4-1.0").is_none(),
            "a board never holds -<digit>"
        );
        assert!(split_file_name("nodigits").is_none());
    }

    #[test]
    fn bad_system_lines_are_refused() {
        for (line, expect) in [
            ("system".into(), SystemError::MissingBoardOrVersion),
            (
                alloc::format!("system Board 1 size=1 sha256={HASH}"),
                SystemError::BadBoard,
            ),
            (
                alloc::format!("system b 1 sha256={HASH}"),
                SystemError::MissingKey("size"),
            ),
            (
                "system b 1 size=1".into(),
                SystemError::MissingKey("sha256"),
            ),
            (
                alloc::format!("system b 1 sha256={HASH} size=1"),
                SystemError::KeyOutOfOrder("size"),
            ),
            (
                alloc::format!("system b 1 size=1 sha256={HASH} x=1"),
                SystemError::UnknownKey("x".into()),
            ),
            (
                alloc::format!("system b 1 size=1 sha256={HASH} rollout=50@2,10@3"),
                SystemError::BadRollout,
            ),
            (
                alloc::format!("system b 1 size=1 sha256={HASH} rollout=10@3,50@2"),
                SystemError::BadRollout,
            ),
            (
                alloc::format!("system b 1 size=1 sha256={HASH} rollout=0@3"),
                SystemError::BadRollout,
            ),
            (
                alloc::format!("system b 1 size=1 sha256={HASH} rollout=101@3"),
                SystemError::BadRollout,
            ),
            (
                alloc::format!("system b 1 size=1 sha256={HASH} rollout=10"),
                SystemError::BadRollout,
            ),
            (
                "system b 1 size=1 sha256=abc".into(),
                SystemError::BadSha256(HashError::Length(3)),
            ),
        ] {
            assert_eq!(parse_line(&line), Err(expect), "{line}");
        }
    }

    #[test]
    fn waves_reach_places_below_their_percent() {
        let system = parse_line(&alloc::format!(
            "system b 1 size=1 sha256={HASH} rollout=10@1000,50@2000,90@3000"
        ))
        .unwrap();
        assert_eq!(system.available_at(0), Some(1000));
        assert_eq!(system.available_at(999), Some(1000));
        assert_eq!(system.available_at(1000), Some(2000));
        assert_eq!(system.available_at(8999), Some(3000));
        assert_eq!(system.available_at(9000), None);
        let everyone = parse_line(&alloc::format!("system b 1 size=1 sha256={HASH}")).unwrap();
        assert_eq!(everyone.available_at(9999), Some(0));
    }

    #[test]
    fn places_are_stable_and_spread() {
        let version = Version::parse("1.2").unwrap();
        assert_eq!(place(7, "b", &version), place(7, "b", &version));
        assert_ne!(
            place(7, "b", &version),
            place(7, "b", &Version::parse("1.3").unwrap())
        );
        // 10,000 devices: a 10% wave takes about a thousand of them.
        let early = (0..10_000u64)
            .filter(|seed| place(*seed, "qemu-x86_64", &version) < 1000)
            .count();
        assert!((850..1150).contains(&early), "{early}");
    }

    #[test]
    fn pi_autoboot_and_slots_write_and_read_back() {
        use super::pi::*;
        let text = autoboot(3, 2);
        assert_eq!(committed(&text), Some(3));
        assert!(text.contains("[tryboot]\nboot_partition=2\n"));
        assert_eq!(committed("[all]\nboot_partition=7\n"), None);
        assert_eq!(other(2), 3);
        let mut slots = parse_slots("2 good 1.1\n3 trying 1.2\nnonsense\n9 good 1.0\n");
        assert_eq!(slots.len(), 2);
        set(
            &mut slots,
            3,
            SlotState::Bad,
            Version::parse("1.2").unwrap(),
        );
        assert_eq!(write_slots(&slots), "2 good 1.1\n3 bad 1.2\n");
        assert_eq!(parse_slots(&write_slots(&slots)), slots);
    }

    #[test]
    fn boot_entries_name_their_state() {
        for (name, state, back) in [
            ("amber-1.2.efi", Some(BootState::Good), "amber-1.2.efi"),
            (
                "amber-1.2+3.efi",
                Some(BootState::Trying(3)),
                "amber-1.2+3.efi",
            ),
            (
                "amber-1.2+2-1.efi",
                Some(BootState::Trying(2)),
                "amber-1.2+2-1.efi",
            ),
            (
                "amber-1.2+0-3.efi",
                Some(BootState::Bad),
                "amber-1.2+0-3.efi",
            ),
            (
                "amber-1.2-r1+1-2.efi",
                Some(BootState::Trying(1)),
                "amber-1.2-r1+1-2.efi",
            ),
        ] {
            let entry = BootEntry::parse(name).unwrap();
            assert_eq!(Some(entry.state()), state, "{name}");
            assert_eq!(entry.file_name(), back);
        }
        for name in [
            "amber-.efi",
            "amber-1.2",
            "other-1.2.efi",
            "amber-1.2+x.efi",
            "amber-1.2+1-.efi",
        ] {
            assert_eq!(BootEntry::parse(name), None, "{name}");
        }
    }
}
