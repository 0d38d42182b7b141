//! Time: the SNTP client (RFC 4330) that init runs as the `clock` service (`net clock`),
//! the last good time kept on /data, and the clock raised to it at boot.
//!
//! Policy (ARCHITECTURE.md, "Time without a clock"): the clock is never set below the
//! last good time ([`amber_pkg::CLOCK_FILE`]). At boot init raises a clock that is
//! behind it (an RTC without a battery, or none) to it; SNTP answers that would set the
//! clock below it are refused. The time is stored when SNTP first sets the clock, then
//! at most hourly, and when the service stops: a few small writes a day, not one a
//! minute. pkg checks index expiry against the stored time whenever the clock is behind
//! it.
//!
//! The servers are the settings' `ntp` list, then those DHCP gave (option 42, in
//! [`NTP_FILE`], written by the network daemon). Host names are resolved by
//! [`amber_base::dns::lookup`], as /etc/resolv.conf says. Each round asks the servers
//! in order until one answers; then it waits [`POLL`], or after a round with no answer
//! 4 s doubling to [`MAX_RETRY`].

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amber_pkg::CLOCK_FILE;

use crate::{netconfig, status, sys};

/// The NTP servers DHCP gave, one address a line, from the network daemon.
pub const NTP_FILE: &str = "/run/amber/net/ntp";

/// Seconds from 1900 (NTP's epoch) to 1970.
const NTP_TO_UNIX: i64 = 2_208_988_800;
const NANOS: i64 = 1_000_000_000;
const PORT: u16 = 123;
/// How long one server has to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Between rounds once synchronised (RFC 4330 asks clients not to poll much more often).
const POLL: Duration = Duration::from_secs(1024);
const FIRST_RETRY: Duration = Duration::from_secs(4);
const MAX_RETRY: Duration = Duration::from_secs(256);
/// How often the time is stored while the clock is synchronised.
const STORE_EVERY: i64 = 3600;
/// A difference smaller than this is left alone: stepping the clock for it would only
/// make time jump for nothing.
const STEP_AT_LEAST: i64 = NANOS / 2;

/// The time now, in nanoseconds since 1970.
fn now_nanos() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i64,
        Err(before) => -(before.duration().as_nanos() as i64),
    }
}

/// A unix time in nanoseconds as an NTP timestamp (32.32 fixed point since 1900).
fn to_ntp(nanos: i64) -> u64 {
    let seconds = (nanos.div_euclid(NANOS) + NTP_TO_UNIX) as u64 & 0xffff_ffff;
    let fraction = ((nanos.rem_euclid(NANOS) as u64) << 32) / NANOS as u64;
    seconds << 32 | fraction
}

/// An NTP timestamp as unix nanoseconds. NTP's seconds wrap in 2036: a timestamp whose
/// top bit is clear is taken to be in the next era (RFC 4330 §3), so this reads times
/// from 1968 to 2104.
fn from_ntp(timestamp: u64) -> i64 {
    let mut seconds = (timestamp >> 32) as i64;
    if seconds & 0x8000_0000 == 0 {
        seconds += 1 << 32;
    }
    let fraction = ((timestamp & 0xffff_ffff) * NANOS as u64) >> 32;
    (seconds - NTP_TO_UNIX) * NANOS + fraction as i64
}

/// A client request sent at `sent` (its transmit timestamp, which the server echoes).
fn request(sent: u64) -> [u8; 48] {
    let mut bytes = [0u8; 48];
    // Leap indicator 0, version 4, mode 3 (client).
    bytes[0] = 0x23;
    bytes[40..48].copy_from_slice(&sent.to_be_bytes());
    bytes
}

/// What one answer says.
#[derive(Debug, PartialEq, Eq)]
struct Sample {
    /// How far the server's clock is ahead of ours.
    offset: i64,
    stratum: u8,
}

/// Check a server's answer to the request sent with transmit timestamp `sent`,
/// received at `received` (unix nanoseconds), and compute the offset:
/// ((T2 - T1) + (T3 - T4)) / 2.
fn read_answer(bytes: &[u8], sent: u64, received: i64) -> Result<Sample, String> {
    if bytes.len() < 48 {
        return Err("a short answer".into());
    }
    let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let (leap, version, mode, stratum) = (bytes[0] >> 6, bytes[0] >> 3 & 7, bytes[0] & 7, bytes[1]);
    if mode != 4 || !(1..=4).contains(&version) {
        return Err("not a server's answer".into());
    }
    if word(24) != sent {
        return Err("an answer to another request".into());
    }
    if stratum == 0 {
        let code = String::from_utf8_lossy(&bytes[12..16]).into_owned();
        return Err(format!("kiss-o'-death {code:?}"));
    }
    if leap == 3 || stratum > 15 {
        return Err("its own clock is not synchronised".into());
    }
    let (receive, transmit) = (word(32), word(40));
    if transmit == 0 || receive == 0 {
        return Err("an answer without a time".into());
    }
    let (t1, t2, t3) = (from_ntp(sent), from_ntp(receive), from_ntp(transmit));
    let offset = ((t2 - t1) + (t3 - received)) / 2;
    Ok(Sample { offset, stratum })
}

/// A unix time as `2026-06-01 12:00:00 UTC` (the civil calendar from days, after
/// Howard Hinnant's `civil_from_days`).
pub fn utc(seconds: i64) -> String {
    let (days, second) = (seconds.div_euclid(86400), seconds.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second / 3600,
        second / 60 % 60,
        second % 60
    )
}

/// The last good time stored on /data, in unix seconds.
pub fn stored() -> Option<i64> {
    let text = std::fs::read_to_string(CLOCK_FILE).ok()?;
    amber_pkg::stored_time(&text).map(|seconds| seconds as i64)
}

fn store(seconds: i64) {
    let path = Path::new(CLOCK_FILE);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(error) = amber_base::durable::write_atomic(path, format!("{seconds}\n").as_bytes()) {
        status::print(&format!("cannot store the time: {error}"));
    }
}

/// At boot, with /data mounted: a clock behind the last good time is set to it. Returns
/// the line to print when it was.
pub fn restore_at_boot() -> Option<String> {
    let stored = stored()?;
    let now = now_nanos().div_euclid(NANOS);
    if now >= stored {
        return None;
    }
    Some(match sys::set_clock(stored * NANOS) {
        Ok(()) => format!(
            "clock: {} is before the last good time; set to {}",
            utc(now),
            utc(stored)
        ),
        Err(error) => format!("clock: cannot set it to the last good time: {error}"),
    })
}

/// The servers to ask: the settings' `ntp` list, then DHCP's.
fn servers() -> Vec<String> {
    let mut servers = netconfig::load().config.ntp;
    let learned = std::fs::read_to_string(NTP_FILE).unwrap_or_default();
    for line in learned.lines().map(str::trim) {
        if !line.is_empty() && !servers.iter().any(|s| s == line) {
            servers.push(line.to_owned());
        }
    }
    servers
}

/// Ask one server; Err says why it gave no time.
fn ask(address: SocketAddr, signals: &sys::SignalFd) -> Result<Sample, String> {
    let socket = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
        .and_then(|socket| socket.connect(address).map(|()| socket))
        .map_err(|e| e.to_string())?;
    let sent = to_ntp(now_nanos());
    socket.send(&request(sent)).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut buffer = [0u8; 68];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no answer".into());
        }
        let mut fds = [
            sys::poll_entry(socket.as_raw_fd(), sys::POLLIN),
            sys::poll_entry(signals.fd(), sys::POLLIN),
        ];
        sys::poll(&mut fds, Some(left)).map_err(|e| e.to_string())?;
        if fds[1].revents != 0 {
            return Err("stopping".into());
        }
        if fds[0].revents == 0 {
            continue;
        }
        match socket.recv(&mut buffer) {
            Ok(count) => match read_answer(&buffer[..count], sent, now_nanos()) {
                Err(error) if error.contains("another request") => continue,
                other => return other,
            },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// `net clock`: the SNTP client, until SIGTERM. (Not inlined: `cargo xtask size` counts
/// it here.)
#[inline(never)]
pub fn main() -> ExitCode {
    let signals = match sys::SignalFd::new(&[sys::SIGTERM, sys::SIGINT]) {
        Ok(signals) => signals,
        Err(error) => {
            status::print(&error.to_string());
            return ExitCode::FAILURE;
        }
    };
    let mut last_good = stored();
    let mut synchronised: Option<String> = None;
    let mut stored_at = i64::MIN;
    let mut retry = FIRST_RETRY;
    let mut lost_said = false;
    loop {
        let servers = servers();
        let mut failures = Vec::new();
        let mut sample = None;
        'servers: for server in &servers {
            let addresses = match amber_base::dns::lookup(server, PORT) {
                Ok(addresses) => addresses.into_iter().filter(SocketAddr::is_ipv4).collect(),
                Err(error) => {
                    failures.push(format!("{server}: {error}"));
                    Vec::new()
                }
            };
            for address in addresses {
                match ask(address, &signals) {
                    Ok(answer) => {
                        sample = Some((server.clone(), answer));
                        break 'servers;
                    }
                    Err(error) if error == "stopping" => return stop(&synchronised),
                    Err(error) => failures.push(format!("{server}: {error}")),
                }
            }
        }
        let wait = match sample {
            Some((server, sample)) => {
                let now = now_nanos();
                let target = now + sample.offset;
                let floor = last_good.unwrap_or(i64::MIN);
                if target.div_euclid(NANOS) < floor {
                    failures.push(format!(
                        "{server} says {}, before the last good time {}",
                        utc(target.div_euclid(NANOS)),
                        utc(floor)
                    ));
                    None
                } else {
                    if sample.offset.abs() >= STEP_AT_LEAST {
                        match sys::set_clock(now_nanos() + sample.offset) {
                            Ok(()) => status::print(&format!(
                                "set to {} by {server} (it was {})",
                                utc(target.div_euclid(NANOS)),
                                utc(now.div_euclid(NANOS))
                            )),
                            Err(error) => status::print(&format!("cannot set the clock: {error}")),
                        }
                    } else if synchronised.is_none() {
                        status::print(&format!("synchronised with {server}"));
                    }
                    let seconds = target.div_euclid(NANOS);
                    if seconds - stored_at >= STORE_EVERY || synchronised.is_none() {
                        store(seconds);
                        stored_at = seconds;
                        last_good = Some(seconds);
                    }
                    synchronised = Some(server.clone());
                    lost_said = false;
                    status::write(
                        "clock",
                        &format!(
                            "synchronised with {server} (stratum {}) at {}",
                            sample.stratum,
                            utc(seconds)
                        ),
                    );
                    retry = FIRST_RETRY;
                    Some(POLL)
                }
            }
            None => None,
        };
        let wait = wait.unwrap_or_else(|| {
            let why = if servers.is_empty() {
                "no SNTP servers (ntp in the network settings, or DHCP)".to_owned()
            } else {
                failures.join("; ")
            };
            if synchronised.is_some() && !lost_said {
                status::print(&format!("no answer this round ({why}); the clock runs on"));
                lost_said = true;
            }
            if synchronised.is_none() {
                let since = match last_good {
                    Some(seconds) => format!(
                        "; the clock started from the last good time, {}",
                        utc(seconds)
                    ),
                    None => String::new(),
                };
                status::write("clock", &format!("not synchronised: {why}{since}"));
            }
            let wait = retry;
            retry = (retry * 2).min(MAX_RETRY);
            wait
        });
        let mut fds = [sys::poll_entry(signals.fd(), sys::POLLIN)];
        if sys::poll(&mut fds, Some(wait)).is_ok() && fds[0].revents != 0 {
            return stop(&synchronised);
        }
    }
}

/// On SIGTERM: a synchronised clock is stored once more.
fn stop(synchronised: &Option<String>) -> ExitCode {
    if synchronised.is_some() {
        store(now_nanos().div_euclid(NANOS));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        // 2026-06-01 00:00:00.5 UTC and back.
        let nanos = 1_780_272_000 * NANOS + NANOS / 2;
        let ntp = to_ntp(nanos);
        assert_eq!(ntp >> 32, 1_780_272_000 + 2_208_988_800);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
        assert_eq!(from_ntp(ntp), nanos);
        // After NTP's era 0 ends (2036-02-07 06:28:16 UTC) the seconds wrap.
        let later = 2_085_978_496 * NANOS + 5 * NANOS;
        assert_eq!(to_ntp(later) >> 32, 5);
        assert_eq!(from_ntp(to_ntp(later)), later);
        // The RTC of a machine from 2001.
        let old = 978_307_200 * NANOS;
        assert_eq!(from_ntp(to_ntp(old)), old);
    }

    /// A server's answer: received at `t2`, sent at `t3`, to a request sent at `sent`.
    fn answer(first: u8, stratum: u8, sent: u64, t2: i64, t3: i64) -> Vec<u8> {
        let mut bytes = vec![0u8; 48];
        bytes[0] = first;
        bytes[1] = stratum;
        bytes[12..16].copy_from_slice(b"RATE");
        bytes[24..32].copy_from_slice(&sent.to_be_bytes());
        bytes[32..40].copy_from_slice(&to_ntp(t2).to_be_bytes());
        bytes[40..48].copy_from_slice(&to_ntp(t3).to_be_bytes());
        bytes
    }

    #[test]
    fn offsets_and_refusals() {
        // Our clock says 2001; the server's says 25 years later, 20 ms away each way.
        let t1 = 978_307_200 * NANOS;
        let ahead = 789_000_000 * NANOS;
        let sent = to_ntp(t1);
        let t2 = t1 + ahead + 20_000_000;
        let t3 = t2 + 1_000_000;
        let t4 = t1 + 41_000_000;
        let sample = read_answer(&answer(0x24, 2, sent, t2, t3), sent, t4).unwrap();
        // Timestamps have 2^-32 s resolution: within a microsecond.
        assert!(
            (sample.offset - ahead).abs() < 1000,
            "{}",
            sample.offset - ahead
        );
        assert_eq!(sample.stratum, 2);
        // A version 3 server is fine.
        assert!(read_answer(&answer(0x1c, 2, sent, t2, t3), sent, t4).is_ok());

        let cases: [(Vec<u8>, &str); 6] = [
            (
                answer(0x24, 2, sent, t2, t3)[..47].to_vec(),
                "a short answer",
            ),
            (answer(0x23, 2, sent, t2, t3), "not a server's answer"),
            (
                answer(0x24, 2, sent + 1, t2, t3),
                "an answer to another request",
            ),
            (answer(0x24, 0, sent, t2, t3), "kiss-o'-death \"RATE\""),
            (answer(0xe4, 2, sent, t2, t3), "not synchronised"),
            (
                answer(0x24, 2, sent, t2, 2_085_978_496 * NANOS),
                "without a time",
            ),
        ];
        for (bytes, expected) in cases {
            let error = read_answer(&bytes, sent, t4).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn the_request() {
        let bytes = request(0x0102_0304_0506_0708);
        assert_eq!(bytes[0], 0x23);
        assert_eq!(bytes[40..48], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(bytes[1..40].iter().all(|&b| b == 0));
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(978_307_200), "2001-01-01 00:00:00 UTC");
        assert_eq!(utc(1_780_272_000), "2026-06-01 00:00:00 UTC");
        assert_eq!(utc(1_709_210_096), "2024-02-29 12:34:56 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }
}
