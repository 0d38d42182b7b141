//! The end: stop whatever is left, write the rest of the log, unmount /ro and /data
//! (read-only if busy), sync, stop the watchdog, and power off or reboot with reboot(2).
//! PID 1 never returns from here.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::supervisor::Outcome;
use crate::sys::{self, Reaped};
use crate::{log, watchdog};

/// Wait up to `timeout` for every child to exit, reaping as they do.
fn reap_all(timeout: Duration) -> bool {
    let started = Instant::now();
    loop {
        match sys::reap_any() {
            Reaped::Child(..) => continue,
            Reaped::NoChildren => return true,
            Reaped::Nothing if started.elapsed() >= timeout => return false,
            Reaped::Nothing => {
                watchdog::feed(Instant::now());
                std::thread::sleep(Duration::from_millis(10))
            }
        }
    }
}

pub fn finish(outcome: Outcome) -> ! {
    // The supervisor stopped the services and the store; anything left is an orphan.
    if sys::kill(-1, sys::SIGTERM).is_ok() && !reap_all(Duration::from_secs(2)) {
        say!("shutdown: killing the processes that are left");
        let _ = sys::kill(-1, sys::SIGKILL);
        reap_all(Duration::from_secs(1));
    }
    // The services' last words, written before /data goes.
    log::with(|log| {
        if let Some(line) = log.flush(Instant::now(), true) {
            crate::print_line(format_args!("amber: {line}"));
        }
        log.stopped();
    });
    sys::sync();
    // The store's mount may be dead or busy: detach it, the kernel drops it when unused.
    let _ = sys::unmount(Path::new("/ro"), sys::MNT_DETACH);
    // The boot partitions (FAT, which has no journal), before /data.
    for boot in ["/run/amber/boot-2", "/run/amber/boot-3", "/boot"] {
        let _ = sys::unmount(Path::new(boot), 0);
    }
    let data = Path::new("/data");
    if let Err(error) = sys::unmount(data, 0) {
        match sys::mount("", data, "", sys::MS_REMOUNT | sys::MS_RDONLY, "") {
            Ok(()) => say!("shutdown: /data is busy ({error}); remounted read-only"),
            Err(remount) => say!("shutdown: /data: unmount: {error}; remount read-only: {remount}"),
        }
    }
    sys::sync();
    let (how, what) = match outcome {
        Outcome::PowerOff => (sys::RB_POWER_OFF, "powering off"),
        Outcome::Reboot => (sys::RB_AUTOBOOT, "rebooting"),
        Outcome::RebootTry => {
            // `reboot "0 tryboot"`: the Raspberry Pi kernel's firmware driver passes the
            // flag on; a kernel without that driver patch (Debian's) just restarts.
            say!("rebooting with the tryboot flag");
            let error = sys::reboot_with_argument("0 tryboot");
            say!("rebooting with the tryboot flag: reboot(2): {error}; rebooting without it");
            (sys::RB_AUTOBOOT, "rebooting")
        }
    };
    say!("{what}");
    watchdog::stop();
    let error = sys::reboot(how);
    say!("{what}: reboot(2): {error}");
    // PID 1 must not exit: that would panic the kernel.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
