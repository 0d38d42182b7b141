//! The system log: one bounded ring in RAM holding the kernel's lines (/dev/kmsg),
//! init's own and every service's, each with a time and a level; written to /data/log/
//! in batches, rotated under a size cap; optionally sent to a remote syslog server
//! (RFC 5424 over UDP).
//!
//! - The ring ([`Ring`]) drops its oldest lines when full. Lines are one record each:
//!   wall-clock milliseconds, a syslog level, the source (`kernel`, `amber`, or a
//!   service's name) and at most [`MAX_TEXT`] bytes of text.
//! - Writing to flash wears it, so lines are not written one by one: a batch goes out
//!   when the oldest unwritten line is [`Policy::interval`] old, when
//!   [`Policy::threshold`] bytes wait, and at shutdown ([`Policy::due`]). Each batch is
//!   appended to `messages` and fdatasync'ed; a crash loses at most the lines since the
//!   last batch.
//! - `messages` is rotated to `messages.1` ... when a batch would take it past its share
//!   of the cap (`size / FILES`). When /data is full, the oldest file is deleted to make
//!   room; when there is still none, the batch waits in RAM (the ring keeps dropping
//!   its oldest lines) and is tried again after [`Policy::interval`].
//! - At boot the end of `messages` (the boots before, as far as they were written) is
//!   read back into the ring, so `svc log` shows what happened before a reboot or a
//!   crash. A file `running` beside it says whether the boot before stopped cleanly.
//!
//! Every line reads `2025-03-01T12:00:05.123Z SOURCE LEVEL: text`, in the files and in
//! `svc log` alike.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The kernel's and init's own source names.
pub const KERNEL: &str = "kernel";
pub const INIT: &str = "amber";

/// Syslog severities.
pub const ERR: u8 = 3;
pub const WARNING: u8 = 4;
pub const NOTICE: u8 = 5;
pub const INFO: u8 = 6;
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The longest text of one line; longer ones are cut.
pub const MAX_TEXT: usize = 1024;
/// How many files the persisted log is spread over (`messages`, `.1`, `.2`, `.3`).
const FILES: usize = 4;
/// A record's header: text length (u16), level, source length, time (u64).
const HEADER: usize = 12;

/// One line of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time_ms: u64,
    pub level: u8,
    pub source: &'a str,
    pub text: &'a [u8],
}

/// A bounded queue of records in one buffer: pushed at the end, dropped from the front.
/// Records never wrap around, so each is one slice; the front is compacted away once it
/// is as large as the rest.
pub struct Ring {
    bytes: Vec<u8>,
    /// Where the oldest record starts.
    head: usize,
    capacity: usize,
    /// The sequence number of the oldest record, and of the next one pushed.
    first: u64,
    next: u64,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            bytes: Vec::new(),
            head: 0,
            capacity,
            first: 0,
            next: 0,
        }
    }

    /// Bytes held, headers included.
    pub fn len(&self) -> usize {
        self.bytes.len() - self.head
    }

    pub fn first(&self) -> u64 {
        self.first
    }

    pub fn next(&self) -> u64 {
        self.next
    }

    pub fn push(&mut self, record: &Record) {
        let source = &record.source.as_bytes()[..record.source.len().min(255)];
        let text = &record.text[..record.text.len().min(MAX_TEXT)];
        let size = HEADER + source.len() + text.len();
        while self.len() > 0 && self.len() + size > self.capacity {
            self.head += self.size_at(self.head);
            self.first += 1;
        }
        if self.head > 0 && self.head >= self.len() {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        self.bytes
            .extend_from_slice(&(text.len() as u16).to_le_bytes());
        self.bytes.push(record.level.min(7));
        self.bytes.push(source.len() as u8);
        self.bytes.extend_from_slice(&record.time_ms.to_le_bytes());
        self.bytes.extend_from_slice(source);
        self.bytes.extend_from_slice(text);
        self.next += 1;
    }

    fn size_at(&self, at: usize) -> usize {
        let text = u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]) as usize;
        HEADER + self.bytes[at + 3] as usize + text
    }

    /// Every record, oldest first, with its sequence number.
    pub fn records(&self) -> impl Iterator<Item = (u64, Record<'_>)> {
        let mut at = self.head;
        let mut seq = self.first;
        std::iter::from_fn(move || {
            if at >= self.bytes.len() {
                return None;
            }
            let bytes = &self.bytes[at..at + self.size_at(at)];
            let source_end = HEADER + bytes[3] as usize;
            let mut time = [0u8; 8];
            time.copy_from_slice(&bytes[4..12]);
            let record = Record {
                time_ms: u64::from_le_bytes(time),
                level: bytes[2],
                source: std::str::from_utf8(&bytes[HEADER..source_end]).unwrap_or("?"),
                text: &bytes[source_end..],
            };
            at += bytes.len();
            seq += 1;
            Some((seq - 1, record))
        })
    }
}

fn push_number(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut left = value;
    while left > 0 || at == digits.len() {
        at -= 1;
        digits[at] = b'0' + (left % 10) as u8;
        left /= 10;
    }
    for _ in digits.len() - at..width {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// `2025-03-01T12:00:05.123Z` (RFC 3339, UTC, milliseconds).
pub fn write_time(out: &mut Vec<u8>, ms: u64) {
    let seconds = ms / 1000;
    let (year, month, day) = civil((seconds / 86_400) as i64);
    let pieces = [
        (year.max(0) as u64, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (seconds / 3600 % 24, 2, b':'),
        (seconds / 60 % 60, 2, b':'),
        (seconds % 60, 2, b'.'),
        (ms % 1000, 3, b'Z'),
    ];
    for (value, width, after) in pieces {
        push_number(out, value, width);
        out.push(after);
    }
}

/// The milliseconds of a time [`write_time`] wrote.
pub fn parse_time(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 24 || bytes[23] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| Some(number(text.get(from..to)?)? as i64);
    let days = days_from_civil(number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let seconds = days * 86_400 + number(11, 13)? * 3600 + number(14, 16)? * 60 + number(17, 19)?;
    u64::try_from(seconds * 1000 + number(20, 23)?).ok()
}

/// One record as a line of text, newline included.
pub fn write_line(out: &mut Vec<u8>, record: &Record) {
    write_time(out, record.time_ms);
    out.push(b' ');
    out.extend_from_slice(record.source.as_bytes());
    out.push(b' ');
    out.extend_from_slice(LEVELS[record.level as usize & 7].as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(record.text);
    out.push(b'\n');
}

/// A line [`write_line`] wrote, back into a record.
pub fn parse_line(line: &str) -> Option<Record<'_>> {
    let (time, rest) = line.split_once(' ')?;
    let (source, rest) = rest.split_once(' ')?;
    let (level, text) = rest.split_once(':')?;
    let text = text.strip_prefix(' ')?;
    Some(Record {
        time_ms: parse_time(time)?,
        level: LEVELS.iter().position(|known| *known == level)? as u8,
        source,
        text: text.as_bytes(),
    })
}

/// A service's line with a `<N>` syslog prefix (as sd-daemon(3) defines it): its level
/// and the rest; without one, [`INFO`].
pub fn level_of(line: &[u8]) -> (u8, &[u8]) {
    match line {
        [b'<', digit @ b'0'..=b'7', b'>', rest @ ..] => (digit - b'0', rest),
        _ => (INFO, line),
    }
}

/// When batches are written.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// The oldest unwritten line waits at most this long (and a failed write this long
    /// before it is tried again).
    pub interval: Duration,
    /// This many unwritten bytes are written at once.
    pub threshold: usize,
}

impl Policy {
    /// Whether a batch is due at `now`, with the oldest unwritten line from `oldest` and
    /// `waiting` bytes unwritten. At shutdown, anything unwritten is due.
    pub fn due(
        &self,
        now: Instant,
        oldest: Option<Instant>,
        waiting: usize,
        shutdown: bool,
    ) -> bool {
        oldest.is_some_and(|oldest| {
            shutdown || waiting >= self.threshold || now >= oldest + self.interval
        })
    }
}

/// The persisted log: `messages` and its rotations in one directory.
pub struct Files {
    dir: PathBuf,
    /// Each file's share of the size cap.
    file_max: u64,
    /// `messages`'s size.
    size: u64,
}

impl Files {
    /// Use `dir` (made if missing) with `total` bytes at most over all its files.
    pub fn open(dir: &Path, total: u64) -> io::Result<Files> {
        std::fs::create_dir_all(dir)?;
        let size = std::fs::metadata(dir.join("messages")).map_or(0, |m| m.len());
        Ok(Files {
            dir: dir.to_owned(),
            file_max: (total / FILES as u64).max(4096),
            size,
        })
    }

    fn path(&self, index: usize) -> PathBuf {
        match index {
            0 => self.dir.join("messages"),
            _ => self.dir.join(format!("messages.{index}")),
        }
    }

    /// The last `bytes` bytes of `messages`, from the first whole line.
    pub fn tail(&self, bytes: u64) -> String {
        let mut text = Vec::new();
        if let Ok(mut file) = File::open(self.path(0)) {
            let start = self.size.saturating_sub(bytes);
            if file.seek(SeekFrom::Start(start)).is_ok() {
                let _ = file.take(bytes).read_to_end(&mut text);
            }
            if start > 0 {
                let first = text
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(text.len(), |at| at + 1);
                text.drain(..first);
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Append `bytes` to `messages` (rotating first when it would grow past its share),
    /// durably. A failed write leaves `messages` as it was.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.file_max {
            for index in (1..FILES).rev() {
                match std::fs::rename(self.path(index - 1), self.path(index)) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
            }
            self.size = 0;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path(0))?;
        match file.write_all(bytes).and_then(|()| file.sync_data()) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                let _ = file.set_len(self.size);
                Err(error)
            }
        }
    }

    /// Delete the oldest rotated file there is; false when there is none.
    pub fn drop_oldest(&mut self) -> bool {
        (1..FILES)
            .rev()
            .any(|index| std::fs::remove_file(self.path(index)).is_ok())
    }

    /// Whether the boot before stopped cleanly (no `running` mark was left; None on a
    /// first boot, with no log yet), and leave a mark for this boot.
    pub fn mark_running(&self) -> Option<bool> {
        let mark = self.dir.join("running");
        let clean = match (mark.exists(), self.size > 0) {
            (true, _) => Some(false),
            (false, true) => Some(true),
            (false, false) => None,
        };
        if File::create(&mark).and_then(|file| file.sync_all()).is_ok() {
            let _ = File::open(&self.dir).and_then(|dir| dir.sync_all());
        }
        clean
    }

    /// Remove the `running` mark: this boot stops cleanly.
    pub fn mark_stopped(&self) {
        let _ = std::fs::remove_file(self.dir.join("running"));
        let _ = File::open(&self.dir).and_then(|dir| dir.sync_all());
    }
}

/// A remote syslog server, sent every line as it comes (RFC 5424 over UDP).
pub struct Remote {
    socket: UdpSocket,
    to: SocketAddrV4,
    host: String,
}

impl Remote {
    pub fn new(to: SocketAddrV4) -> io::Result<Remote> {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        socket.set_nonblocking(true)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = match host.trim() {
            "" | "(none)" => "-".to_owned(),
            name => name.to_owned(),
        };
        Ok(Remote { socket, to, host })
    }

    fn send(&self, record: &Record) {
        let _ = self.socket.send_to(&rfc5424(record, &self.host), self.to);
    }
}

/// One record as an RFC 5424 message: `<PRI>1 TIME HOST APP - - - TEXT`, the kernel's
/// lines with facility kern (0), the others daemon (3).
pub fn rfc5424(record: &Record, host: &str) -> Vec<u8> {
    let facility = if record.source == KERNEL { 0 } else { 3 };
    let mut out = Vec::with_capacity(64 + record.text.len());
    out.push(b'<');
    push_number(&mut out, facility * 8 + u64::from(record.level), 1);
    out.extend_from_slice(b">1 ");
    write_time(&mut out, record.time_ms);
    out.push(b' ');
    out.extend_from_slice(host.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&record.source.as_bytes()[..record.source.len().min(48)]);
    out.extend_from_slice(b" - - - ");
    out.extend_from_slice(record.text);
    out
}

/// A decimal number of digits only.
pub fn number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.bytes().try_fold(0u64, |value, b| {
        b.is_ascii_digit().then(|| value * 10 + u64::from(b - b'0'))
    })
}

/// `ADDRESS:PORT`, an IPv4 address.
fn socket_address(text: &str) -> Option<SocketAddrV4> {
    let (address, port) = text.split_once(':')?;
    let port = u16::try_from(number(port)?).ok()?;
    Some(SocketAddrV4::new(address.parse().ok()?, port))
}

/// `/data/etc/amber/log`: `remote ADDRESS:PORT` and `size BYTES` (K, M, G allowed).
pub fn parse_config(text: &str) -> Result<(Option<SocketAddrV4>, Option<u64>), String> {
    let (mut remote, mut size) = (None, None);
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: &str| format!("line {}: {reason}", index + 1);
        match line.split_once(' ').map(|(key, value)| (key, value.trim())) {
            Some(("remote", value)) => {
                remote =
                    Some(socket_address(value).ok_or_else(|| error("remote: not ADDRESS:PORT"))?)
            }
            Some(("size", value)) => {
                size = Some(
                    crate::service::parse_size(value)
                        .filter(|&size| size >= 16 << 10)
                        .ok_or_else(|| error("size: not a size of at least 16K"))?,
                )
            }
            _ => return Err(error("not `remote ADDRESS:PORT` or `size BYTES`")),
        }
    }
    Ok((remote, size))
}

/// The whole log: the ring, what of it is written, and where it goes.
pub struct Log {
    ring: Ring,
    /// Records before this one are on disk (or came from there).
    written: u64,
    oldest_unwritten: Option<Instant>,
    unwritten_bytes: usize,
    policy: Policy,
    files: Option<Files>,
    remote: Option<Remote>,
    /// After a failed write, nothing is tried before this.
    retry_at: Option<Instant>,
    said_full: bool,
}

impl Log {
    pub fn new(capacity: usize, policy: Policy) -> Log {
        Log {
            ring: Ring::new(capacity),
            written: 0,
            oldest_unwritten: None,
            unwritten_bytes: 0,
            policy,
            files: None,
            remote: None,
            retry_at: None,
            said_full: false,
        }
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn push(&mut self, record: &Record, now: Instant) {
        self.ring.push(record);
        self.oldest_unwritten.get_or_insert(now);
        self.unwritten_bytes += HEADER + 20 + record.source.len() + record.text.len();
        if let Some(remote) = &self.remote {
            remote.send(record);
        }
    }

    /// Persist to `files` from now on: the end of what they hold goes first into the
    /// ring (as written already), then what was logged so far. Returns whether the
    /// boot before stopped cleanly (None: a first boot).
    #[inline(never)]
    pub fn attach(&mut self, files: Files) -> Option<bool> {
        let clean = files.mark_running();
        let capacity = self.ring.capacity;
        let earlier = std::mem::replace(&mut self.ring, Ring::new(capacity));
        for line in files.tail(self.ring.capacity as u64 / 2).lines() {
            if let Some(record) = parse_line(line) {
                self.ring.push(&record);
            }
        }
        self.written = self.ring.next();
        for (_, record) in earlier.records() {
            self.ring.push(&record);
        }
        self.files = Some(files);
        clean
    }

    pub fn set_remote(&mut self, remote: Remote) {
        self.remote = Some(remote);
    }

    /// When the next batch is due by time, if anything waits.
    pub fn deadline(&self) -> Option<Instant> {
        self.files.as_ref()?;
        let oldest = self.oldest_unwritten?;
        Some(self.retry_at.unwrap_or(oldest + self.policy.interval))
    }

    /// Write a batch if one is due (any unwritten line at `shutdown`); a line for the
    /// console when the disk is full.
    #[inline(never)]
    pub fn flush(&mut self, now: Instant, shutdown: bool) -> Option<String> {
        if self.retry_at.is_some_and(|at| now < at) && !shutdown {
            return None;
        }
        let due = self
            .policy
            .due(now, self.oldest_unwritten, self.unwritten_bytes, shutdown);
        let files = self.files.as_mut()?;
        if !due {
            return None;
        }
        let mut batch = Vec::new();
        if self.written < self.ring.first() {
            let lost = self.ring.first() - self.written;
            let note = format!("log: {lost} lines were dropped before they could be written");
            write_line(
                &mut batch,
                &Record {
                    time_ms: crate::sys::wall_clock_ms(),
                    level: WARNING,
                    source: INIT,
                    text: note.as_bytes(),
                },
            );
        }
        for (seq, record) in self.ring.records() {
            if seq >= self.written {
                write_line(&mut batch, &record);
            }
        }
        let mut result = files.append(&batch);
        while matches!(&result, Err(error) if error.raw_os_error() == Some(libc::ENOSPC))
            && files.drop_oldest()
        {
            result = files.append(&batch);
        }
        match result {
            Ok(()) => {
                self.written = self.ring.next();
                self.oldest_unwritten = None;
                self.unwritten_bytes = 0;
                self.retry_at = None;
                self.said_full = false;
                None
            }
            Err(error) => {
                self.retry_at = Some(now + self.policy.interval);
                let first = !self.said_full;
                self.said_full = true;
                first.then(|| {
                    format!(
                        "log: {}: {error}; the log stays in RAM (oldest lines dropped) until there is room",
                        files.dir.display()
                    )
                })
            }
        }
    }

    /// Everything written: this boot stopped cleanly.
    pub fn stopped(&self) {
        if let Some(files) = &self.files {
            files.mark_stopped();
        }
    }

    /// The lines of `source` (all when None), the last `lines` of them when given.
    #[inline(never)]
    pub fn text(&self, source: Option<&str>, lines: Option<usize>) -> Vec<u8> {
        let matches = |record: &Record| source.is_none_or(|source| record.source == source);
        let count = self.ring.records().filter(|(_, r)| matches(r)).count();
        let skip = count.saturating_sub(lines.unwrap_or(count));
        let mut out = Vec::new();
        for (_, record) in self.ring.records().filter(|(_, r)| matches(r)).skip(skip) {
            write_line(&mut out, &record);
        }
        out
    }

    /// The lines of `source` from sequence number `from` on, appended to `out`;
    /// returns the next sequence number.
    pub fn since(&self, from: u64, source: Option<&str>, out: &mut Vec<u8>) -> u64 {
        for (seq, record) in self.ring.records() {
            if seq >= from && source.is_none_or(|source| record.source == source) {
                write_line(out, &record);
            }
        }
        self.ring.next()
    }
}

/// Write the log to DATA/log from now on, with DATA/etc/amber/log's settings; whether
/// the boot before stopped cleanly (None when the log cannot be written).
#[inline(never)]
pub fn persist(data: &Path, disk_cap: u64) -> Option<bool> {
    let settings = data.join("etc/amber/log");
    let (remote, size) = match std::fs::read_to_string(&settings) {
        Ok(text) => parse_config(&text).unwrap_or_else(|error| {
            say!("log: {}: {error}; using the defaults", settings.display());
            (None, None)
        }),
        Err(_) => (None, None),
    };
    if let Some(address) = remote {
        match Remote::new(address) {
            Ok(remote) => {
                with(|log| log.set_remote(remote));
                say!(
                    "log: every line goes to the syslog server in {}",
                    settings.display()
                );
            }
            Err(error) => say!("log: {}: remote: {error}", settings.display()),
        }
    }
    let dir = data.join("log");
    match Files::open(&dir, size.unwrap_or(disk_cap)) {
        Ok(files) => with(|log| log.attach(files)).flatten(),
        Err(error) => {
            say!(
                "log: {}: {error}; the log is kept in RAM only",
                dir.display()
            );
            None
        }
    }
}

thread_local! {
    /// init's log; None in every other command (a `say!` there only prints).
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

pub fn install(log: Log) {
    LOG.with(|slot| *slot.borrow_mut() = Some(log));
}

/// Run `f` on init's log, if there is one (and it is not in use already).
pub fn with<T>(f: impl FnOnce(&mut Log) -> T) -> Option<T> {
    LOG.with(|slot| slot.try_borrow_mut().ok()?.as_mut().map(f))
}

/// Log one line now.
pub fn push(source: &str, level: u8, text: &[u8]) {
    with(|log| {
        let record = Record {
            time_ms: crate::sys::wall_clock_ms(),
            level,
            source,
            text,
        };
        log.push(&record, Instant::now())
    });
}

/// The kernel's log, /dev/kmsg, read without blocking from its first record on.
pub struct Kernel {
    pub file: File,
}

impl Kernel {
    pub fn open(path: &Path) -> io::Result<Kernel> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Kernel { file })
    }

    /// Log every record that is there.
    #[inline(never)]
    pub fn read(&mut self) {
        let mut buffer = [0u8; 2048];
        // The kernel stamps records with the monotonic clock; the log keeps wall time.
        let offset = crate::sys::wall_clock_ms()
            .saturating_mul(1000)
            .saturating_sub(crate::sys::monotonic_us());
        loop {
            match self.file.read(&mut buffer) {
                Ok(0) => return,
                Ok(count) => {
                    if let Some((level, micros, text)) = parse_kmsg(&buffer[..count]) {
                        let record = Record {
                            time_ms: (offset + micros) / 1000,
                            level,
                            source: KERNEL,
                            text,
                        };
                        with(|log| log.push(&record, Instant::now()));
                    }
                }
                // EPIPE: records were overwritten before they were read; go on.
                Err(error) if error.raw_os_error() == Some(libc::EPIPE) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// One /dev/kmsg record, `PRI,SEQ,MICROS,FLAGS[,...];TEXT\n[ KEY=VALUE\n]...`: (level,
/// microseconds, text).
pub fn parse_kmsg(record: &[u8]) -> Option<(u8, u64, &[u8])> {
    let semicolon = record.iter().position(|&b| b == b';')?;
    let header = std::str::from_utf8(&record[..semicolon]).ok()?;
    let mut fields = header.split(',');
    let priority = number(fields.next()?)?;
    let _sequence = fields.next()?;
    let micros = number(fields.next()?)?;
    let text = &record[semicolon + 1..];
    let end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
    Some(((priority & 7) as u8, micros, &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time_ms: u64, source: &'static str, text: &'static str) -> Record<'static> {
        Record {
            time_ms,
            level: INFO,
            source,
            text: text.as_bytes(),
        }
    }

    fn texts(ring: &Ring) -> Vec<String> {
        ring.records()
            .map(|(seq, r)| format!("{seq} {} {}", r.source, String::from_utf8_lossy(r.text)))
            .collect()
    }

    #[test]
    fn the_ring_drops_its_oldest_records() {
        let mut ring = Ring::new(3 * (HEADER + 3 + 5));
        for (index, text) in ["one..", "two..", "three", "four.", "five."]
            .iter()
            .enumerate()
        {
            ring.push(&record(index as u64, "web", text));
            assert!(ring.len() <= 3 * (HEADER + 8), "{}", ring.len());
        }
        assert_eq!(texts(&ring), ["2 web three", "3 web four.", "4 web five."]);
        assert_eq!((ring.first(), ring.next()), (2, 5));
        // A record larger than everything empties the ring but is kept itself.
        ring.push(&record(
            9,
            "kernel",
            Box::leak("x".repeat(60).into_boxed_str()),
        ));
        assert_eq!(ring.records().count(), 1);
        assert_eq!(ring.first(), 5);
        // Long texts are cut; levels and times come back as they went in.
        let mut ring = Ring::new(1 << 16);
        let long = "y".repeat(MAX_TEXT + 10);
        ring.push(&Record {
            time_ms: 1_700_000_000_123,
            level: ERR,
            source: "dropbear",
            text: long.as_bytes(),
        });
        let (_, got) = ring.records().next().unwrap();
        assert_eq!(
            (got.time_ms, got.level, got.source),
            (1_700_000_000_123, ERR, "dropbear")
        );
        assert_eq!(got.text.len(), MAX_TEXT);
        // Many pushes keep the buffer bounded (the front is compacted away).
        for index in 0..10_000 {
            ring.push(&record(index, "web", "some line of output"));
        }
        assert!(ring.bytes.len() <= 2 * (1 << 16) + HEADER + MAX_TEXT);
    }

    #[test]
    fn lines_and_times_round_trip() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
            (1_740_830_405_123, "2025-03-01T12:00:05.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ];
        for (ms, text) in cases {
            let mut out = Vec::new();
            write_time(&mut out, ms);
            assert_eq!(String::from_utf8(out).unwrap(), text);
            assert_eq!(parse_time(text), Some(ms), "{text}");
        }
        assert_eq!(parse_time("2025-03-01T12:00:05.123"), None);
        assert_eq!(parse_time("2025-03-01T12:0x:05.123Z"), None);
        let mut out = Vec::new();
        let original = Record {
            time_ms: 1_740_830_405_123,
            level: WARNING,
            source: "dropbear",
            text: b"Exit before auth: x: y",
        };
        write_line(&mut out, &original);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "2025-03-01T12:00:05.123Z dropbear warning: Exit before auth: x: y\n"
        );
        assert_eq!(parse_line(line.trim_end()), Some(original));
        assert_eq!(parse_line("not a log line"), None);
        assert_eq!(level_of(b"<3>disk on fire"), (3, &b"disk on fire"[..]));
        assert_eq!(level_of(b"<9>x"), (INFO, &b"<9>x"[..]));
        assert_eq!(
            parse_kmsg(b"6,339,5140900,-;NET: Registered protocol family 10\n SUBSYSTEM=net\n"),
            Some((6, 5_140_900, &b"NET: Registered protocol family 10"[..]))
        );
        assert_eq!(parse_kmsg(b"garbage"), None);
        let message = rfc5424(&original, "router");
        assert_eq!(
            String::from_utf8(message).unwrap(),
            "<28>1 2025-03-01T12:00:05.123Z router dropbear - - - Exit before auth: x: y"
        );
        let kernel = Record {
            source: KERNEL,
            level: 2,
            ..original
        };
        assert!(rfc5424(&kernel, "-").starts_with(b"<2>1 "));
    }

    #[test]
    fn the_flush_policy_spares_the_flash() {
        let policy = Policy {
            interval: Duration::from_secs(30),
            threshold: 16 << 10,
        };
        let start = Instant::now();
        let later = |seconds| start + Duration::from_secs(seconds);
        // Nothing waiting: never due, not even at shutdown.
        assert!(!policy.due(later(100), None, 0, true));
        // A line waits: not at once, not after 29 s, but after 30 s.
        assert!(!policy.due(start, Some(start), 100, false));
        assert!(!policy.due(later(29), Some(start), 100, false));
        assert!(policy.due(later(30), Some(start), 100, false));
        // Many bytes at once, or a shutdown: due at once.
        assert!(policy.due(start, Some(start), 16 << 10, false));
        assert!(policy.due(start, Some(start), 1, true));
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("amber-boot-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_rotate_under_their_cap() {
        let dir = temp_dir("rotate");
        let mut files = Files::open(&dir, 4 * 4096).unwrap();
        let line = format!("{}\n", "z".repeat(99));
        for _ in 0..400 {
            files.append(line.as_bytes()).unwrap();
        }
        let sizes: Vec<u64> = (0..FILES)
            .map(|index| std::fs::metadata(files.path(index)).unwrap().len())
            .collect();
        assert!(!files.path(FILES).exists(), "at most {FILES} files");
        assert!(
            sizes.iter().all(|&size| size <= 4096 && size > 0),
            "{sizes:?}"
        );
        assert_eq!(files.tail(250), line.repeat(2));
        // A new batch that does not fit starts a new file; the oldest goes.
        let before = std::fs::read(files.path(2)).unwrap();
        files.append(&vec![b'q'; 4000]).unwrap();
        assert_eq!(std::fs::read(files.path(3)).unwrap(), before);
        assert!(files.drop_oldest() && files.drop_oldest() && files.drop_oldest());
        assert!(!files.drop_oldest(), "only messages is left");
        assert_eq!(files.mark_running(), Some(true), "no mark: a clean stop");
        assert_eq!(
            files.mark_running(),
            Some(false),
            "the mark is left: it was not"
        );
        files.mark_stopped();
        assert_eq!(files.mark_running(), Some(true));
        let empty = Files::open(&dir.join("empty"), 1 << 20).unwrap();
        assert_eq!(empty.mark_running(), None, "no log yet: a first boot");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_writes_in_batches_and_reads_the_boot_before() {
        let dir = temp_dir("batches");
        let policy = Policy {
            interval: Duration::from_secs(30),
            threshold: 1 << 20,
        };
        let start = Instant::now();
        let mut log = Log::new(1 << 16, policy);
        log.push(&record(1_000, INIT, "early, before /data"), start);
        assert_eq!(log.attach(Files::open(&dir, 1 << 20).unwrap()), None);
        log.push(&record(2_000, "dropbear", "listening"), start);
        assert_eq!(log.flush(start + Duration::from_secs(1), false), None);
        assert!(!dir.join("messages").exists(), "not written at once");
        assert_eq!(log.deadline(), Some(start + Duration::from_secs(30)));
        log.flush(start + Duration::from_secs(30), false);
        let written = std::fs::read_to_string(dir.join("messages")).unwrap();
        assert_eq!(
            written,
            "1970-01-01T00:00:01.000Z amber info: early, before /data\n\
             1970-01-01T00:00:02.000Z dropbear info: listening\n"
        );
        assert_eq!(log.deadline(), None, "nothing waits");
        log.push(&record(3_000, "kernel", "last words"), start);
        log.flush(start + Duration::from_secs(31), true);
        log.stopped();

        // The next boot starts with what was written, not again.
        let mut next = Log::new(1 << 16, policy);
        assert_eq!(next.attach(Files::open(&dir, 1 << 20).unwrap()), Some(true));
        assert_eq!(
            next.text(Some("dropbear"), None),
            b"1970-01-01T00:00:02.000Z dropbear info: listening\n"
        );
        next.push(&record(4_000, "dropbear", "again"), start);
        assert_eq!(
            next.text(Some("dropbear"), Some(1)),
            b"1970-01-01T00:00:04.000Z dropbear info: again\n"
        );
        assert_eq!(
            next.text(None, None)
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            4
        );
        next.flush(start, true);
        let written = std::fs::read_to_string(dir.join("messages")).unwrap();
        assert_eq!(written.lines().count(), 4, "{written}");
        let mut out = Vec::new();
        assert_eq!(next.since(3, Some("dropbear"), &mut out), 4);
        assert!(String::from_utf8(out).unwrap().ends_with("again\n"));
        // A boot that was not stopped is told apart.
        let mut crashed = Log::new(1 << 16, policy);
        assert_eq!(
            crashed.attach(Files::open(&dir, 1 << 20).unwrap()),
            Some(false)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn configuration() {
        assert_eq!(parse_config("# none\n"), Ok((None, None)));
        assert_eq!(
            parse_config("remote 10.0.2.2:514\nsize 2M\n"),
            Ok((
                Some(SocketAddrV4::new([10, 0, 2, 2].into(), 514)),
                Some(2 << 20)
            ))
        );
        assert!(parse_config("remote host:514\n")
            .unwrap_err()
            .contains("line 1: remote"));
        assert!(parse_config("size 1K\n")
            .unwrap_err()
            .contains("at least 16K"));
        assert!(parse_config("loud yes\n").is_err());
    }
}
