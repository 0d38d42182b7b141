//! The board's watchdog: init opens /dev/watchdog and feeds it from its poll loop, so a
//! hung init (or a hung kernel) resets the board; a clean shutdown stops it with the
//! magic close. At boot it also says why the board started: after a watchdog reset (the
//! driver's WDIOF_CARDRESET), after a boot that did not stop cleanly (the log's
//! `running` mark), or after a clean shutdown.

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

/// Why the board started, from the watchdog's boot status and whether the boot before
/// stopped cleanly (None: unknown, no data partition).
pub fn boot_reason(card_reset: bool, clean: Option<bool>) -> &'static str {
    match (card_reset, clean) {
        (true, _) => "after a watchdog reset",
        (false, Some(false)) => "after a boot that did not stop cleanly (power cut, crash or hang)",
        (false, Some(true)) => "after a clean shutdown",
        (false, None) => "(no record of the boot before)",
    }
}

impl Watchdog {
    /// Open and start `path`; say what it is, or that there is none. Returns the
    /// watchdog and whether it reset the board last.
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
        say!("watchdog: {identity}, {timeout} s timeout, fed by init");
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
    WATCHDOG.with(|slot| slot.borrow_mut().as_mut().map(|watchdog| watchdog.feed(now)))
}

/// Stop init's watchdog with the magic close.
pub fn stop() {
    if let Some(watchdog) = WATCHDOG.with(|slot| slot.borrow_mut().take()) {
        watchdog.stop();
    }
}
