//! The board's watchdog: init opens /dev/watchdog and feeds it from its poll loop, so a
//! hung init resets the board (a hardware watchdog also a hung kernel); a clean shutdown
//! stops it with the magic close. At boot init also says why the board started: after
//! a watchdog reset (the driver's WDIOF_CARDRESET, or the kernel's last words kept in
//! pstore, as with softdog), after a kernel panic (pstore), after a boot that did not
//! stop cleanly (the log's `running` mark), or after a clean shutdown. The kernel's
//! last words go into the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sys;

/// The timeout asked of the driver; it is fed three times as often.
const TIMEOUT_SECONDS: u32 = 15;
/// WDIOF_CARDRESET: the last reset came from this watchdog.
const CARD_RESET: u32 = 0x20;

/// An open watchdog and when it is fed next.
pub struct Watchdog {
    device: File,
    every: Duration,
    next: Instant,
}

/// Why the board started, from the watchdog's boot status, the kernel's last words of
/// the boot before (pstore records) and whether that boot stopped cleanly (None:
/// unknown, no data partition).
pub fn boot_reason(card_reset: bool, last_words: &[String], clean: Option<bool>) -> &'static str {
    let said = |text: &str| last_words.iter().any(|words| contains(words, text));
    if card_reset || said("softdog: Initiating") || said("Watchdog Timer expired") {
        "after a watchdog reset"
    } else if said("Kernel panic") {
        "after a kernel panic"
    } else if clean == Some(false) {
        "after a boot that did not stop cleanly (power cut, crash or hang)"
    } else if clean == Some(true) {
        "after a clean shutdown"
    } else {
        "(no record of the boot before)"
    }
}

/// Whether `text` holds `part` (a byte search: smaller than the standard library's).
fn contains(text: &str, part: &str) -> bool {
    text.as_bytes()
        .windows(part.len())
        .any(|window| window == part.as_bytes())
}

/// The kernel's records of how the boot before ended (pstore's `dmesg-*` files in
/// `dir`), removed once read so the firmware's variable store does not fill up. Their
/// last lines go into the log.
#[inline(never)]
pub fn last_words(dir: &Path) -> Vec<String> {
    let mut records = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return records;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with("dmesg-") {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(40)..] {
                let text = format!("boot before: {line}");
                crate::log::push(crate::log::KERNEL, crate::log::WARNING, text.as_bytes());
            }
            records.push(text);
        }
        let _ = std::fs::remove_file(&path);
    }
    records
}

impl Watchdog {
    /// Open and start `path`; say what it is, or that there is none. Returns the
    /// watchdog and whether it reset the board last.
    #[inline(never)]
    pub fn open(path: &Path) -> (Option<Watchdog>, bool) {
        let device = match OpenOptions::new().write(true).open(path) {
            Ok(device) => device,
            Err(error) => {
                say!(
                    "watchdog: none ({}: {error}); a hang will not reset this board",
                    path.display()
                );
                return (None, false);
            }
        };
        let (identity, status, timeout) = sys::watchdog_setup(&device, TIMEOUT_SECONDS);
        let kind = if contains(&identity, "Software") {
            " (a kernel timer: it resets a hung init, not a hung kernel)"
        } else {
            ""
        };
        say!("watchdog: {identity}, {timeout} s timeout, fed by init{kind}");
        let every = Duration::from_secs(u64::from(timeout)) / 3;
        let watchdog = Watchdog {
            device,
            every,
            next: Instant::now() + every,
        };
        (Some(watchdog), status & CARD_RESET != 0)
    }

    /// Feed it if it is due; returns when it is due next.
    pub fn feed(&mut self, now: Instant) -> Instant {
        if now >= self.next {
            let _ = self.device.write_all(b"\0");
            self.next = now + self.every;
        }
        self.next
    }

    /// Stop it: the magic close (`V`, then close), for a shutdown that is on its way.
    pub fn stop(mut self) {
        let _ = self.device.write_all(b"V");
    }
}

thread_local! {
    /// init's watchdog, fed from its loop and from the shutdown's waits.
    static WATCHDOG: std::cell::RefCell<Option<Watchdog>> = const { std::cell::RefCell::new(None) };
}

pub fn install(watchdog: Watchdog) {
    WATCHDOG.with(|slot| *slot.borrow_mut() = Some(watchdog));
}

/// Feed init's watchdog if it is due; when it is due next (None without one).
pub fn feed(now: Instant) -> Option<Instant> {
    WATCHDOG.with(|slot| {
        slot.borrow_mut()
            .as_mut()
            .map(|watchdog| watchdog.feed(now))
    })
}

/// Stop init's watchdog with the magic close.
pub fn stop() {
    if let Some(watchdog) = WATCHDOG.with(|slot| slot.borrow_mut().take()) {
        watchdog.stop();
    }
}
