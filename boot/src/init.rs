//! `init`: PID 1. Mounts the kernel filesystems, loads modules, mounts /data, then hands
//! over to the supervisor (store, network, services, console) and finally shuts down.
//!
//! Not being PID 1, `init --root DIR [--store]` runs only the supervisor, with every path
//! under DIR (services in DIR/ro/svc and DIR/etc/amber/svc, the control socket at
//! DIR/run/amber/control), short restart delays, no network or console shell, as a
//! subreaper so orphans come to it: the mode the tests and the RSS measurement use. With
//! `--store` (root and /dev/fuse needed) it also supervises this binary's FUSE store,
//! `pkg --root DIR/data/pkg store mount DIR/ro --foreground`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::cmdline::CommandLine;
use crate::supervisor::{self, Backoff, Network, Shell, Store};
use crate::{
    cgroup, console, control, disk, health, log, modules, mounts, privilege, shutdown, sntp,
    status, sys,
};
use crate::{users, watchdog};

/// Bytes of log kept in RAM: the kernel's boot and a good while of services.
const LOG_RAM: usize = 64 << 10;
/// The persisted log's cap on /data unless /data/etc/amber/log says otherwise.
const LOG_DISK: u64 = 1 << 20;

/// A file whose presence turns the test hooks on (the e2e test's simulated hang).
const TEST_HOOKS: &str = "/data/etc/amber/test-hooks";

/// The search path of init, its services and the console shell.
pub const PATH: &str = "/amber/bin:/bin:/sbin:/usr/bin:/usr/sbin";

pub fn main(args: Vec<OsString>) -> ExitCode {
    if std::process::id() == 1 {
        boot();
    }
    match args.get(1..) {
        #[cfg(feature = "test-root")]
        Some([flag, root]) if flag == "--root" => supervise_for_test(Path::new(root), false),
        #[cfg(feature = "test-root")]
        Some([flag, root, store]) if flag == "--root" && store == "--store" => {
            supervise_for_test(Path::new(root), true)
        }
        _ => {
            eprintln!("init: not PID 1; to run the supervisor under a directory for tests: init --root DIR [--store]");
            ExitCode::from(2)
        }
    }
}

fn boot() -> ! {
    let handed_over = sys::boot_time();
    log::install(log::Log::new(
        LOG_RAM,
        log::Policy {
            interval: Duration::from_secs(30),
            threshold: 16 << 10,
        },
    ));

    let board = std::fs::read_to_string("/etc/amber/board").unwrap_or_default();
    say!(
        "init on {} (kernel handed over at {} ms)",
        board.trim(),
        crate::millis(handed_over)
    );
    sys::set_umask(0o022);
    std::env::set_var("PATH", PATH);
    std::env::set_var("HOME", "/");
    if std::env::var_os("TERM").is_none() {
        std::env::set_var("TERM", "linux");
    }
    mounts::early();
    // The OOM killer's last choice (the store's is -900, everything else 0).
    if let Err(error) = std::fs::write("/proc/self/oom_score_adj", "-1000") {
        say!("/proc/self/oom_score_adj: {error}");
    }
    sys::disable_ctrl_alt_del();
    modules::load_all(
        Path::new("/etc/amber/modules"),
        Path::new(modules::MODULE_DIR),
    );
    // The kernel asks for what it lacks (a file system, a crypto algorithm) through
    // the modprobe applet, which loads from the initramfs.
    // A kernel built without loadable modules has no such file, and asks for nothing.
    let modprobe = Path::new("/proc/sys/kernel/modprobe");
    if !modprobe.exists() {
        say!("modules: the kernel loads none (its drivers are built in)");
    } else if let Err(error) = std::fs::write(modprobe, "/amber/bin/modprobe\n") {
        say!("modules: /proc/sys/kernel/modprobe: {error}");
    }
    let mut loader = modules::Loader::system();
    let started = std::time::Instant::now();
    let sys_bus = Path::new("/sys/bus");
    let mut loaded = loader.coldplug(sys_bus);
    // While init waits for the data partition, drivers bring new devices (the USB
    // host controller, then the stick on it, then its disk): look again each time.
    let data = disk::mount_data(Duration::from_secs(10), &mut || {
        loaded += loader.coldplug(sys_bus)
    });
    loaded += loader.coldplug(sys_bus);
    say!(
        "modules: {loaded} loaded for the devices present ({} ms)",
        crate::millis(started.elapsed())
    );
    let health = data.and_then(|data| boot_partitions(&data));

    let clean = log::persist(Path::new("/data"), LOG_DISK);
    let device = Path::new("/dev/watchdog");
    if !device.exists() && Path::new(modules::MODULE_DIR).join("softdog.ko").exists() {
        // No hardware watchdog: the kernel's timer, which panics (so pstore keeps why)
        // and resets the board when init stops feeding it.
        loader.load_with("softdog", "soft_panic=1");
        let started = std::time::Instant::now();
        while !device.exists() && started.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // `amber.watchdog=off`: qemu's raspi3b resets at once when its watchdog starts
    // (the timer is not modelled), so its runs leave the device closed.
    let (dog, card_reset) = if CommandLine::read().get("amber.watchdog") == Some("off") {
        say!("watchdog: off (amber.watchdog=off)");
        (None, false)
    } else {
        watchdog::Watchdog::open(device)
    };
    if let Some(dog) = dog {
        watchdog::install(dog);
    }
    let last_words = watchdog::last_words(Path::new("/sys/fs/pstore"));
    say!(
        "boot: {}",
        watchdog::boot_reason(card_reset, &last_words, clean)
    );
    let cgroups = match cgroup::setup() {
        Ok(parent) => Some(parent),
        Err(error) => {
            say!(
                "cgroup: {}: {error}; memory-max and tasks-max are not enforced",
                cgroup::SERVICES
            );
            None
        }
    };
    let command_line = CommandLine::read();
    let test_hooks = command_line.get("amber.test") == Some("1") || Path::new(TEST_HOOKS).exists();
    if test_hooks {
        say!(
            "test hooks on (amber.test=1 or {TEST_HOOKS}): signal {} stops the supervisor loop",
            supervisor::HANG_SIGNAL
        );
    }

    // A clock behind the last good time on /data (no RTC, or a flat battery) starts
    // from that time instead.
    if let Some(line) = sntp::restore_at_boot() {
        say!("{line}");
    }
    // From here on the console shell shares the console with the kernel.
    if let Some(line) = console::quiet_kernel(&command_line) {
        say!("{line}");
    }
    let network = Network::Daemon {
        program: PathBuf::from("/init"),
        arg0: "net".into(),
        args: vec!["daemon".into()],
    };
    let config = supervisor::Config {
        service_dirs: vec![PathBuf::from("/ro/svc"), PathBuf::from("/etc/amber/svc")],
        control_socket: PathBuf::from(control::SOCKET),
        store: Some(Store {
            program: PathBuf::from("/init"),
            arg0: "pkg".into(),
            args: ["store", "mount", "/ro", "--foreground"]
                .map(String::from)
                .to_vec(),
            mount_point: PathBuf::from("/ro"),
            ready_timeout: Duration::from_secs(10),
        }),
        network,
        shell: Some(Shell {
            program: PathBuf::from("/bin/sh"),
            terminal: PathBuf::from("/dev/console"),
        }),
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(30),
        },
        stop_timeout: Duration::from_secs(5),
        rescan_every: Some(Duration::from_secs(10)),
        handed_over,
        health,
        status_dir: PathBuf::from(status::DIR),
        kernel_log: Some(PathBuf::from("/dev/kmsg")),
        users: Some(users::Places {
            packages: PathBuf::from("/ro"),
            ids: PathBuf::from("/data/amber/ids"),
            output: PathBuf::from("/run/etc"),
        }),
        places: privilege::Places {
            data: PathBuf::from("/data"),
            tmp: PathBuf::from("/tmp"),
            cgroups,
        },
        test_hooks,
    };
    let outcome = match supervisor::run(config) {
        Ok(outcome) => outcome,
        Err(error) => {
            say!("supervisor: {error}; rebooting in 10 s");
            std::thread::sleep(Duration::from_secs(10));
            supervisor::Outcome::Reboot
        }
    };
    shutdown::finish(outcome)
}

/// Mount the boot partitions on the data partition's disk, and say what this boot's
/// system is to its loader: the EFI system partition at /boot, or on a Raspberry Pi
/// partition 1 at /boot and the boot partitions at /run/amber/boot-2 and boot-3.
fn boot_partitions(data: &Path) -> Option<health::Check> {
    let version = std::fs::read_to_string("/etc/amber/version").ok()?;
    let version = version.trim();
    let pending = Path::new("/data/pkg").join("state/system-pending");
    let script = Path::new("/etc/amber/health-check");
    let boot = Path::new("/boot");
    if disk::mount_boot(data, disk::ESP_LABEL, boot).is_some() {
        report_removed(health::remove_temporary_files(boot));
        let (plan, check) = health::plan(boot, version, &pending, script);
        return report_plan(plan, check, version, &pending);
    }
    #[cfg(feature = "raspberry-pi")]
    if disk::mount_boot(data, disk::PI_BOOT_LABEL, boot).is_some() {
        let mut slots = Vec::new();
        for (slot, label) in [(2u8, "AMBER-A"), (3, "AMBER-B")] {
            let at = PathBuf::from(format!("/run/amber/boot-{slot}"));
            if disk::mount_boot(data, label, &at).is_some() {
                report_removed(health::remove_temporary_files(&at));
                slots.push((slot, at));
            }
        }
        let (plan, check) = health::plan_pi(boot, &slots, version, &pending, script);
        return report_plan(plan, check, version, &pending);
    }
    None
}

fn report_removed(files: usize) {
    if files > 0 {
        say!("system: removed {files} half-written file(s) of an interrupted upgrade");
    }
}

/// Say what the health plan is: a new system to check after `ready`, one that took
/// over from a new one that failed (reported once), or nothing to do.
fn report_plan(
    plan: health::Plan,
    check: Option<health::Check>,
    version: &str,
    pending: &Path,
) -> Option<health::Check> {
    match plan {
        health::Plan::Check => say!(
            "system: {version} is being tried; its health check runs {} s after ready",
            health::DELAY.as_secs()
        ),
        health::Plan::FellBack(failed) => {
            say!("system: {failed} did not come up; the previous system {version} runs");
            let _ = std::fs::remove_file(pending);
        }
        health::Plan::Nothing => {}
    }
    check
}

#[cfg(feature = "test-root")]
fn supervise_for_test(root: &Path, with_store: bool) -> ExitCode {
    let root = match std::env::current_dir() {
        Ok(current) => current.join(root),
        Err(error) => {
            eprintln!("init: current directory: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = sys::become_subreaper() {
        // As under qemu-user; only orphans are then not ours to reap.
        eprintln!("init: cannot become a subreaper: {error}");
    }
    // The log as on the device, written every second here.
    log::install(log::Log::new(
        LOG_RAM,
        log::Policy {
            interval: Duration::from_secs(1),
            threshold: 16 << 10,
        },
    ));
    let clean = log::persist(&root.join("data"), LOG_DISK);
    say!("boot: {}", watchdog::boot_reason(false, &[], clean));
    if with_store {
        // As on the device: the store directory exists, seeded from DIR/etc/amber.
        disk::seed(&root.join("etc/amber"), &root.join("data/pkg"));
        let _ = std::fs::create_dir_all(root.join("ro"));
    }
    let store = match with_store.then(std::env::current_exe) {
        None => None,
        Some(Ok(program)) => Some(Store {
            program,
            arg0: "pkg".into(),
            args: vec![
                "--root".into(),
                root.join("data/pkg").display().to_string(),
                "store".into(),
                "mount".into(),
                root.join("ro").display().to_string(),
                "--foreground".into(),
            ],
            mount_point: root.join("ro"),
            ready_timeout: Duration::from_secs(10),
        }),
        Some(Err(error)) => {
            eprintln!("init: cannot find this program: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = supervisor::Config {
        service_dirs: vec![root.join("ro/svc"), root.join("etc/amber/svc")],
        control_socket: root.join("run/amber/control"),
        store,
        network: Network::Unmanaged,
        shell: None,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
            reset_after: Duration::from_secs(2),
        },
        stop_timeout: Duration::from_secs(1),
        rescan_every: None,
        handed_over: sys::boot_time(),
        health: None,
        status_dir: root.join("run/amber/status"),
        kernel_log: None,
        users: Some(users::Places {
            packages: root.join("ro"),
            ids: root.join("data/amber/ids"),
            output: root.join("run/etc"),
        }),
        places: privilege::Places {
            data: root.join("data"),
            tmp: root.join("tmp"),
            cgroups: None,
        },
        test_hooks: false,
    };
    match supervisor::run(config) {
        Ok(outcome) => {
            say!("supervisor stopped ({outcome:?})");
            log::with(|log| {
                log.flush(std::time::Instant::now(), true);
                log.stopped();
            });
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("init: {error}");
            ExitCode::FAILURE
        }
    }
}
