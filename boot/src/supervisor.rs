//! The service supervisor: one single-threaded poll(2) loop that starts services in
//! dependency order, restarts them with backoff, captures their output, reaps every child
//! (orphans included), supervises the FUSE store and the console shell, and carries out
//! the requests of the control socket (whose server is `control.rs`). Everything it
//! touches comes from [`Config`], so tests run it in a temporary directory without being
//! PID 1.
//!
//! Units: the built-ins `store` (the FUSE store; ready once its mount point is mounted),
//! `network` (the network daemon, `net daemon`; ready once its status file says `up`)
//! and `console` (the shell), then one unit per service
//! file. Every service implicitly needs `store`, since its program lives in /ro. A unit
//! starts once everything it needs is ready; a service is ready while it runs, except a
//! `restart never` one, which is ready once it exited with status 0 (a one-shot task).

use amber_base::process::{Command, Stdio};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::control::{Answer, Request, Server};
use crate::output::{self, Pipe};
use crate::service::{self, Definition, Restart};
use crate::sys::{self, Exit, Reaped};
use crate::users::{self, Table};
use crate::{cgroup, console, health, log, mounts, privilege, status, watchdog};

/// How often the store's mount point is checked while the store starts.
const STORE_POLL: Duration = Duration::from_millis(5);
/// How long the system waits for the network to come up before it is ready without it
/// (a cable may be out, a USB adapter may enumerate late); services that need the
/// network still wait for it.
const NETWORK_WAIT: Duration = Duration::from_secs(5);
/// How often a missing console shell is looked for.
const SHELL_CHECK: Duration = Duration::from_secs(5);
/// A wait at least this long counts as going idle.
const IDLE: Duration = Duration::from_secs(1);
/// A store that ran this long is started again at once when it dies; one that dies
/// sooner waits out the backoff, so a store that cannot start does not spin.
const STORE_AT_ONCE: Duration = Duration::from_secs(1);
/// The store's scheduling priority: it serves every process that runs from /ro.
pub const STORE_NICE: libc::c_int = -10;
/// The test-only signal that stops the loop (a simulated hang), honoured only with
/// [`Config::test_hooks`].
pub const HANG_SIGNAL: libc::c_int = 40;

/// Restart delays: `initial`, doubling up to `max`, back to `initial` once a process
/// stayed up for `reset_after`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

/// The FUSE store process and its mount point.
#[derive(Debug)]
pub struct Store {
    pub program: PathBuf,
    pub arg0: String,
    pub args: Vec<String>,
    pub mount_point: PathBuf,
    /// A store that has not mounted after this long is killed and started again.
    pub ready_timeout: Duration,
}

/// What the `network` unit does.
#[derive(Debug)]
pub enum Network {
    /// Nothing (tests): the unit is up at once.
    Unmanaged,
    /// Run the network daemon, which says in its status file when the network is up;
    /// init reads that file whenever the daemon prints a line.
    Daemon {
        program: PathBuf,
        arg0: String,
        args: Vec<String>,
    },
}

/// The console shell.
#[derive(Debug)]
pub struct Shell {
    pub program: PathBuf,
    pub terminal: PathBuf,
}

/// Everything the supervisor uses from the outside world.
#[derive(Debug)]
pub struct Config {
    /// Service directories; a later one's file replaces an earlier one's of the same name.
    pub service_dirs: Vec<PathBuf>,
    pub control_socket: PathBuf,
    /// None: no store is supervised and `store` is up at once (tests).
    pub store: Option<Store>,
    pub network: Network,
    pub shell: Option<Shell>,
    pub backoff: Backoff,
    /// How long a stopped process gets between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// How often the service directories are read again (besides `svc rescan`, SIGHUP,
    /// and the store coming up).
    pub rescan_every: Option<Duration>,
    /// The boot clock when init started, for the `amber: ready` line.
    pub handed_over: Duration,
    /// The health check of a system being tried (`health.rs`), run [`health::DELAY`]
    /// after `amber: ready`.
    pub health: Option<health::Check>,
    /// Where built-in units' processes write their status line (`status.rs`).
    pub status_dir: PathBuf,
    /// The kernel's log to read into init's (/dev/kmsg), if any.
    pub kernel_log: Option<PathBuf>,
    /// Where the users of the installed packages are read from and written to.
    pub users: Option<users::Places>,
    /// What services' confinements refer to.
    pub places: privilege::Places,
    /// Whether [`HANG_SIGNAL`] stops the loop.
    pub test_hooks: bool,
}

/// Why the supervisor returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    PowerOff,
    Reboot,
    /// A reboot with the Raspberry Pi's one-shot tryboot flag.
    RebootTry,
}

enum Kind {
    Store(Option<Store>),
    Network(Network),
    Shell(Shell),
    Service(Definition),
}

/// What happens once a stopping process has exited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Stop,
    Restart,
    Remove,
}

enum State {
    /// Not running. It starts once `want` is set and what it needs is ready.
    Idle,
    Running {
        pid: i32,
        since: Instant,
    },
    Stopping {
        pid: i32,
        kill_at: Option<Instant>,
        then: Then,
    },
    Backoff {
        until: Instant,
    },
    /// Exited and not restarted (`restart never` or `on-failure` after success).
    Exited(Exit),
    Failed(String),
    /// The console shell's program does not exist yet.
    Missing {
        next_check: Instant,
    },
    /// A unit without a process that is done: the network, an unsupervised store.
    Up,
}

struct Unit {
    name: String,
    kind: Kind,
    state: State,
    /// Whether it should be running (cleared by `svc stop` and by shutdown).
    want: bool,
    /// For the store: its mount point is mounted.
    mounted: bool,
    /// For the network: its daemon says it is up.
    up: bool,
    removed: bool,
    needs: Vec<String>,
    /// The next restart delay.
    delay: Duration,
    restarts: u32,
    /// The OOM kills counted in its cgroup before its last start.
    oom_kills: u64,
}

impl Unit {
    fn pid(&self) -> Option<i32> {
        match self.state {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    fn ready(&self) -> bool {
        match (&self.kind, &self.state) {
            (_, State::Up) => true,
            (Kind::Store(_), State::Running { .. }) => self.mounted,
            (Kind::Network(_), State::Running { .. }) => self.up,
            (Kind::Service(definition), State::Running { .. }) => {
                definition.restart != Restart::Never
            }
            (Kind::Service(definition), State::Exited(exit)) => {
                definition.restart == Restart::Never && exit.success()
            }
            (Kind::Shell(_), State::Running { .. }) => true,
            _ => false,
        }
    }

    /// Whether it may still become ready without anyone asking.
    fn coming(&self) -> bool {
        match self.state {
            State::Idle => self.want,
            State::Running { .. } | State::Backoff { .. } => true,
            State::Stopping { then, .. } => then == Then::Restart,
            _ => false,
        }
    }

    /// Log a supervisor event on the console and in the unit's log.
    fn report(&mut self, message: &str) {
        self.report_at(log::NOTICE, message);
    }

    fn report_at(&mut self, level: u8, message: &str) {
        crate::print_line(format_args!("amber: {}: {message}", self.name));
        log::push(&self.name, level, format!("amber: {message}").as_bytes());
    }
}

struct Supervisor {
    config: Config,
    units: Vec<Unit>,
    pipes: Vec<Pipe>,
    control: Server,
    signals: sys::SignalFd,
    shutdown: Option<(Outcome, Instant)>,
    announced_ready: bool,
    hinted_shell: bool,
    next_rescan: Option<Instant>,
    /// Service-file problems already reported, so a periodic rescan does not repeat them.
    reported: Vec<String>,
    /// This program's code, released from memory whenever the loop goes idle.
    code: Option<(usize, usize)>,
    busy: bool,
    /// When the health check is due, once the system is ready.
    health_due: Option<Instant>,
    users: Table,
    kernel: Option<log::Kernel>,
}

/// Run until a poweroff or reboot is asked for and every process is stopped.
pub fn run(mut config: Config) -> io::Result<Outcome> {
    let mut handled = vec![
        sys::SIGCHLD,
        sys::SIGTERM,
        sys::SIGINT,
        sys::SIGUSR1,
        sys::SIGUSR2,
        sys::SIGHUP,
    ];
    if config.test_hooks {
        handled.push(HANG_SIGNAL);
    }
    let signals = sys::SignalFd::new(&handled)?;
    let control = Server::listen(&config.control_socket);
    let mut units = Vec::new();
    let unit = |name: &str, kind: Kind, needs: &[&str]| Unit {
        name: name.to_owned(),
        kind,
        state: State::Idle,
        want: true,
        mounted: false,
        up: false,
        removed: false,
        needs: needs.iter().map(|need| need.to_string()).collect(),
        delay: config.backoff.initial,
        restarts: 0,
        oom_kills: 0,
    };
    units.push(unit("store", Kind::Store(config.store.take()), &[]));
    let network = std::mem::replace(&mut config.network, Network::Unmanaged);
    units.push(unit("network", Kind::Network(network), &[]));
    if let Some(shell) = config.shell.take() {
        units.push(unit("console", Kind::Shell(shell), &["store"]));
    }
    let kernel = match &config.kernel_log {
        Some(path) => match log::Kernel::open(path) {
            Ok(kernel) => Some(kernel),
            Err(error) => {
                say!(
                    "log: {}: {error}; the kernel's lines are not kept",
                    path.display()
                );
                None
            }
        },
        None => None,
    };
    let users = Table::base();
    if let Some(places) = &config.users {
        if let Err(error) = users.write(&places.output) {
            say!("users: {}: {error}", places.output.display());
        }
    }
    let mut supervisor = Supervisor {
        config,
        units,
        pipes: Vec::new(),
        control,
        signals,
        shutdown: None,
        announced_ready: false,
        hinted_shell: false,
        next_rescan: None,
        reported: Vec::new(),
        code: sys::code_range(),
        busy: true,
        health_due: None,
        users,
        kernel,
    };
    let now = Instant::now();
    supervisor.rescan(now);
    loop {
        let now = Instant::now();
        if let Some(outcome) = supervisor.step(now) {
            return Ok(outcome);
        }
        supervisor.wait(now)?;
    }
}

/// The test-only hang: the loop stops for good, so the watchdog is fed no more.
fn hang() -> ! {
    say!("test: signal {HANG_SIGNAL}: the supervisor loop stops here (a simulated hang)");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Send a signal to a process group, or to the process if it left its group.
fn signal_group(pid: i32, signal: libc::c_int) {
    if sys::kill(-pid, signal).is_err() {
        let _ = sys::kill(pid, signal);
    }
}

/// A duration as people read it: 850ms, 4.2s, 12s, 3m05s, 2h10m.
pub fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if duration < Duration::from_secs(1) {
        format!("{}ms", crate::millis(duration))
    } else if seconds < 10 {
        format!("{}.{}s", seconds, duration.subsec_millis() / 100)
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60)
    }
}

/// Start a process with its stdout and stderr on a new pipe; returns its pid and the
/// pipe's read end.
fn spawn_piped(command: &mut Command) -> io::Result<(i32, File)> {
    let (read, write) = sys::pipe()?;
    command
        .stdin(Stdio::Null)
        .stdout(write.try_clone()?)
        .stderr(write)
        .current_dir("/")
        .new_process_group();
    sys::unblock_signals_in_child(command);
    let child = command.spawn()?;
    Ok((child.id() as i32, read))
}

impl Supervisor {
    fn find(&self, name: &str) -> Option<usize> {
        self.units.iter().position(|unit| unit.name == name)
    }

    /// Everything that is due at `now`; Some when the supervisor is done.
    fn step(&mut self, now: Instant) -> Option<Outcome> {
        self.timers(now);
        let done = match self.shutdown {
            None => {
                self.start_ready(now);
                None
            }
            Some(_) => self.shutdown_progress(now),
        };
        self.answer_waiters(now);
        self.control.close_answered();
        self.check_ready();
        if self.health_due.is_some_and(|due| due <= now) && self.shutdown.is_none() {
            self.health_due = None;
            self.check_health(now);
        }
        done
    }

    /// The new system's health check: bless it, or mark it bad and reboot into the
    /// previous one.
    fn check_health(&mut self, now: Instant) {
        let Some(check) = self.config.health.take() else {
            return;
        };
        let store_mounted = self
            .find("store")
            .is_some_and(|index| self.units[index].ready());
        let running = |name: &str| {
            self.find(name)
                .is_some_and(|index| matches!(self.units[index].state, State::Running { .. }))
        };
        let facts = health::Facts {
            store_mounted,
            running: &running,
        };
        match check.run(&facts) {
            Ok(()) => match check.bless() {
                Ok(what) => say!(
                    "system: {} passed its health check; blessed: {what}",
                    check.version
                ),
                Err(error) => say!(
                    "system: {} passed its health check, but blessing it failed: {error}",
                    check.version
                ),
            },
            Err(reason) => {
                match check.mark_bad() {
                    Ok(bad) => say!(
                        "system: {} failed its health check: {reason}; marked bad ({bad}), rebooting into the previous system",
                        check.version
                    ),
                    Err(error) => say!(
                        "system: {} failed its health check: {reason}; marking it bad failed too ({error}); rebooting, the loader counts its tries",
                        check.version
                    ),
                }
                self.request_shutdown(Outcome::Reboot, now);
            }
        }
    }

    fn timers(&mut self, now: Instant) {
        watchdog::feed(now);
        if let Some(line) = log::with(|log| log.flush(now, false)).flatten() {
            say!("{line}");
        }
        let mut store_came_up = false;
        for index in 0..self.units.len() {
            let unit = &mut self.units[index];
            match unit.state {
                State::Backoff { until } if until <= now => unit.state = State::Idle,
                State::Missing { next_check } if next_check <= now => unit.state = State::Idle,
                State::Stopping {
                    pid,
                    kill_at: Some(kill_at),
                    then,
                } if kill_at <= now => {
                    unit.report(&format!(
                        "still running {} after SIGTERM; sending SIGKILL",
                        human(self.config.stop_timeout)
                    ));
                    signal_group(pid, sys::SIGKILL);
                    if let Some(parent) = &self.config.places.cgroups {
                        cgroup::kill(parent, &unit.name);
                    }
                    unit.state = State::Stopping {
                        pid,
                        kill_at: None,
                        then,
                    };
                }
                State::Running { pid, since } if !unit.mounted => {
                    if let Kind::Store(Some(store)) = &unit.kind {
                        if mounts::is_mounted(&store.mount_point) {
                            unit.mounted = true;
                            let message = format!(
                                "mounted at {} ({} ms after start)",
                                store.mount_point.display(),
                                crate::millis(now.duration_since(since))
                            );
                            unit.report(&message);
                            store_came_up = true;
                        } else if now.duration_since(since) >= store.ready_timeout {
                            let message = format!(
                                "{} not mounted after {}; killing the store",
                                store.mount_point.display(),
                                human(store.ready_timeout)
                            );
                            unit.report(&message);
                            signal_group(pid, sys::SIGKILL);
                            unit.state = State::Stopping {
                                pid,
                                kill_at: None,
                                then: Then::Restart,
                            };
                        }
                    }
                }
                _ => {}
            }
        }
        // The store's services (/ro/svc) are only visible once it is mounted.
        let rescan_due = self.next_rescan.is_some_and(|at| at <= now);
        if (store_came_up || rescan_due) && self.shutdown.is_none() {
            self.rescan(now);
        }
        self.control.close_idle(now);
    }

    /// Start every wanted, idle unit whose needs are ready, until nothing changes (a unit
    /// that is ready at once, like the network, can let others start).
    fn start_ready(&mut self, now: Instant) {
        loop {
            let startable: Vec<usize> = (0..self.units.len())
                .filter(|&index| {
                    let unit = &self.units[index];
                    unit.want
                        && matches!(unit.state, State::Idle)
                        && self.unmet_need(unit).is_none()
                })
                .collect();
            if startable.is_empty() {
                return;
            }
            for index in startable {
                self.start(index, now);
            }
        }
    }

    /// The first need of `unit` that is not ready.
    fn unmet_need<'a>(&self, unit: &'a Unit) -> Option<&'a str> {
        unit.needs
            .iter()
            .find(|need| {
                !self
                    .find(need)
                    .is_some_and(|index| self.units[index].ready())
            })
            .map(String::as_str)
    }

    fn start(&mut self, index: usize, now: Instant) {
        let unit = &mut self.units[index];
        let mut warnings = Vec::new();
        let spawned = match &unit.kind {
            Kind::Store(None) => {
                unit.state = State::Up;
                return;
            }
            Kind::Network(Network::Unmanaged) => {
                unit.state = State::Up;
                unit.report("up (not managed here)");
                return;
            }
            Kind::Network(Network::Daemon {
                program,
                arg0,
                args,
            }) => {
                let mut command = Command::new(program);
                command.arg0(arg0).args(args);
                spawn_piped(&mut command).map(|(pid, pipe)| (pid, Some(pipe)))
            }
            Kind::Shell(shell) => {
                if !shell.program.exists() {
                    if !self.hinted_shell {
                        self.hinted_shell = true;
                        say!(
                            "console: no {} yet; `pkg add busybox` installs one, and it starts here by itself",
                            shell.program.display()
                        );
                    }
                    unit.state = State::Missing {
                        next_check: now + SHELL_CHECK,
                    };
                    return;
                }
                console::spawn_shell(&shell.program, &shell.terminal).map(|pid| (pid, None))
            }
            Kind::Store(Some(store)) => {
                // A store that died leaves a mount answering ENOTCONN: detach it first.
                if mounts::is_mounted(&store.mount_point) {
                    match sys::unmount(&store.mount_point, sys::MNT_DETACH) {
                        Ok(()) => say!(
                            "store: detached the old mount at {}",
                            store.mount_point.display()
                        ),
                        Err(error) => {
                            say!("store: unmount {}: {error}", store.mount_point.display())
                        }
                    }
                }
                let mut command = Command::new(&store.program);
                command.arg0(&store.arg0).args(&store.args);
                // The OOM killer takes the store only after everything but init. Every
                // exec and read of /ro waits on it, so it runs before what waits: a
                // store coming back is not starved by processes retrying /bin.
                sys::confine(
                    &mut command,
                    sys::Confinement::priorities(b"-900", STORE_NICE),
                );
                spawn_piped(&mut command).map(|(pid, pipe)| (pid, Some(pipe)))
            }
            Kind::Service(definition) => {
                let confinement = privilege::prepare(
                    &unit.name,
                    definition,
                    &self.users,
                    &self.config.places,
                    &mut |warning| warnings.push(warning),
                );
                if let Some(parent) = &self.config.places.cgroups {
                    unit.oom_kills = cgroup::oom_kills(parent, &unit.name);
                }
                let mut command = Command::new(&definition.command[0]);
                command.args(&definition.command[1..]);
                match confinement {
                    Ok(confinement) => {
                        sys::confine(&mut command, confinement);
                        spawn_piped(&mut command).map(|(pid, pipe)| (pid, Some(pipe)))
                    }
                    Err(reason) => Err(std::io::Error::other(reason)),
                }
            }
        };
        for warning in warnings {
            unit.report_at(log::WARNING, &warning);
        }
        match spawned {
            Ok((pid, pipe)) => {
                unit.state = State::Running { pid, since: now };
                unit.mounted = false;
                unit.report(&format!("started (pid {pid})"));
                if let Some(pipe) = pipe {
                    self.pipes.push(Pipe::new(unit.name.clone(), pipe));
                }
            }
            Err(error) => {
                let program = match &unit.kind {
                    Kind::Service(definition) => definition.command[0].clone(),
                    Kind::Store(Some(store)) => store.program.display().to_string(),
                    Kind::Shell(shell) => shell.program.display().to_string(),
                    Kind::Network(Network::Daemon { program, .. }) => program.display().to_string(),
                    _ => String::new(),
                };
                self.exited(index, now, Err(format!("cannot start {program}: {error}")));
            }
        }
    }

    /// A unit's process ended (`Ok`) or could not be started (`Err`).
    fn exited(&mut self, index: usize, now: Instant, how: Result<Exit, String>) {
        let backoff = self.config.backoff;
        let shutting_down = self.shutdown.is_some();
        let unit = &mut self.units[index];
        unit.mounted = false;
        unit.up = false;
        // A status line belongs to the process that wrote it: the next one starts clean.
        let _ = std::fs::remove_file(self.config.status_dir.join(&unit.name));
        let mut text = match &how {
            Ok(exit) => exit.to_string(),
            Err(message) => message.clone(),
        };
        if let (Kind::Service(definition), Some(parent)) = (&unit.kind, &self.config.places.cgroups)
        {
            // What it left behind goes with it.
            cgroup::kill(parent, &unit.name);
            if how.is_ok() && cgroup::oom_kills(parent, &unit.name) > unit.oom_kills {
                text += &match definition.memory_max {
                    Some(max) => {
                        format!(", by the kernel: over its memory-max of {} KiB", max >> 10)
                    }
                    None => ", by the kernel's OOM killer: memory ran out".to_owned(),
                };
            }
        }
        let (ran, then) = match unit.state {
            State::Running { since, .. } => (now.duration_since(since), None),
            State::Stopping { then, .. } => (Duration::ZERO, Some(then)),
            _ => (Duration::ZERO, None),
        };
        match then {
            Some(Then::Stop) => {
                unit.state = State::Idle;
                unit.report(&format!("stopped ({text})"));
            }
            Some(Then::Restart) => {
                unit.state = State::Idle;
                unit.delay = backoff.initial;
                unit.report(&format!("stopped for a restart ({text})"));
            }
            Some(Then::Remove) => {
                unit.state = State::Idle;
                unit.removed = true;
                if let Some(parent) = &self.config.places.cgroups {
                    cgroup::remove(parent, &unit.name);
                }
                unit.report(&format!("stopped and removed ({text})"));
            }
            None => {
                let success = matches!(how, Ok(exit) if exit.success());
                let restart = !shutting_down
                    && unit.want
                    && match &unit.kind {
                        Kind::Service(definition) => match definition.restart {
                            Restart::Always => true,
                            Restart::OnFailure => !success,
                            Restart::Never => false,
                        },
                        _ => true,
                    };
                let at_once = matches!(unit.kind, Kind::Store(_)) && ran >= STORE_AT_ONCE;
                if restart && at_once {
                    // Everything hangs on the store: no backoff for one that ran.
                    unit.delay = backoff.initial;
                    unit.restarts += 1;
                    unit.state = State::Idle;
                    unit.report_at(log::ERR, &format!("{text}; restarting at once"));
                } else if restart {
                    if ran >= backoff.reset_after {
                        unit.delay = backoff.initial;
                    }
                    let delay = unit.delay;
                    unit.delay = (delay * 2).min(backoff.max);
                    unit.restarts += 1;
                    unit.state = State::Backoff { until: now + delay };
                    unit.report_at(
                        log::WARNING,
                        &format!("{text}; restarting in {}", human(delay)),
                    );
                } else {
                    unit.state = match how {
                        Ok(exit) => State::Exited(exit),
                        Err(message) => State::Failed(message),
                    };
                    unit.report(&text);
                }
            }
        }
    }

    /// Ask a unit's process to stop: SIGTERM (SIGHUP for the shell), SIGKILL after the
    /// stop timeout. A unit without a process is settled at once.
    fn stop(&mut self, index: usize, now: Instant, then: Then) {
        let kill_at = Some(now + self.config.stop_timeout);
        let unit = &mut self.units[index];
        match unit.state {
            State::Running { pid, .. } => {
                let signal = match unit.kind {
                    Kind::Shell(_) => sys::SIGHUP,
                    _ => sys::SIGTERM,
                };
                signal_group(pid, signal);
                signal_group(pid, libc::SIGCONT);
                unit.state = State::Stopping { pid, kill_at, then };
            }
            State::Stopping { pid, kill_at, .. } => {
                unit.state = State::Stopping { pid, kill_at, then };
            }
            _ => match then {
                Then::Remove => unit.removed = true,
                Then::Restart | Then::Stop => {
                    if !matches!(unit.state, State::Up) {
                        unit.state = State::Idle;
                    }
                }
            },
        }
    }

    /// Read the service directories again: add new services, stop removed ones, keep
    /// changed definitions for their next start.
    fn rescan(&mut self, now: Instant) {
        let mut problems = Vec::new();
        // The packages' users are read from a mounted store only: a store that is down
        // or coming back shows none, and the running services' users must stay.
        let store_ready = self.find("store").is_some_and(|index| {
            let store = &self.units[index];
            store.ready() || matches!(store.kind, Kind::Store(None))
        });
        if let (Some(places), true) = (&self.config.users, store_ready) {
            self.users.refresh(places, &mut |line| problems.push(line));
        }
        let loaded = service::load(&self.config.service_dirs, &mut |line| problems.push(line));
        for problem in &problems {
            if !self.reported.contains(problem) {
                say!("{problem}");
            }
        }
        self.reported = problems;

        // A service is only taken away when it is surely gone: every directory was read,
        // and the store (behind /ro/svc) is mounted, not dead or restarting.
        for index in 0..self.units.len() {
            let unit = &self.units[index];
            let gone = !loaded.services.iter().any(|(name, _)| *name == unit.name);
            if matches!(unit.kind, Kind::Service(_)) && gone && loaded.complete && store_ready {
                self.units[index].want = false;
                self.units[index].report("service file removed; stopping");
                self.stop(index, now, Then::Remove);
            }
        }
        self.units.retain(|unit| !unit.removed);

        for (name, definition) in loaded.services {
            let mut needs: Vec<String> = vec!["store".into()];
            needs.extend(
                definition
                    .needs
                    .iter()
                    .filter(|need| *need != "store")
                    .cloned(),
            );
            match self.find(&name) {
                Some(index) => {
                    let unit = &mut self.units[index];
                    if let Kind::Service(old) = &mut unit.kind {
                        if *old != definition {
                            *old = definition;
                            unit.needs = needs;
                            if unit.pid().is_some() {
                                unit.report("service file changed; `svc restart` applies it");
                            }
                        }
                    }
                }
                None => self.units.push(Unit {
                    name,
                    want: !definition.manual,
                    kind: Kind::Service(definition),
                    state: State::Idle,
                    mounted: false,
                    up: false,
                    removed: false,
                    needs,
                    delay: self.config.backoff.initial,
                    restarts: 0,
                    oom_kills: 0,
                }),
            }
        }
        self.mark_cycles();
        self.next_rescan = self.config.rescan_every.map(|every| now + every);
        // A package may have brought the console shell too: look for it now.
        for unit in &mut self.units {
            if matches!(unit.state, State::Missing { .. }) {
                unit.state = State::Idle;
            }
        }
    }

    /// A service that needs itself, through any chain of needs, can never start.
    fn mark_cycles(&mut self) {
        const CYCLE: &str = "dependency cycle";
        for index in 0..self.units.len() {
            let cyclic = self.in_cycle(index);
            let unit = &mut self.units[index];
            match &unit.state {
                State::Idle if cyclic => {
                    unit.report(&format!("{CYCLE} (through {})", unit.needs.join(", ")));
                    unit.state = State::Failed(CYCLE.into());
                }
                State::Failed(reason) if !cyclic && reason == CYCLE => unit.state = State::Idle,
                _ => {}
            }
        }
    }

    fn in_cycle(&self, start: usize) -> bool {
        let target = self.units[start].name.as_str();
        let mut seen: Vec<&str> = Vec::new();
        let mut stack: Vec<&str> = self.units[start].needs.iter().map(String::as_str).collect();
        while let Some(name) = stack.pop() {
            if name == target {
                return true;
            }
            if !seen.contains(&name) {
                seen.push(name);
                if let Some(index) = self.find(name) {
                    stack.extend(self.units[index].needs.iter().map(String::as_str));
                }
            }
        }
        false
    }

    fn request_shutdown(&mut self, outcome: Outcome, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        say!(
            "{}: stopping services",
            match outcome {
                Outcome::PowerOff => "power off",
                Outcome::Reboot | Outcome::RebootTry => "reboot",
            }
        );
        let deadline = now + self.config.stop_timeout * 2 + Duration::from_secs(2);
        self.shutdown = Some((outcome, deadline));
        for index in 0..self.units.len() {
            self.units[index].want = false;
            if matches!(self.units[index].kind, Kind::Service(_) | Kind::Shell(_)) {
                self.stop(index, now, Then::Stop);
            }
        }
    }

    /// Services first, then the store their programs live in and the network (which
    /// gives its DHCP leases back).
    fn shutdown_progress(&mut self, now: Instant) -> Option<Outcome> {
        let (outcome, deadline) = self.shutdown?;
        let services_down = self.units.iter().all(|unit| {
            matches!(unit.kind, Kind::Store(_) | Kind::Network(_)) || unit.pid().is_none()
        });
        if services_down {
            for name in ["store", "network"] {
                if let Some(index) = self.find(name) {
                    if matches!(self.units[index].state, State::Running { .. }) {
                        self.stop(index, now, Then::Stop);
                    }
                }
            }
        }
        let running: Vec<&str> = self
            .units
            .iter()
            .filter(|unit| unit.pid().is_some())
            .map(|unit| unit.name.as_str())
            .collect();
        if running.is_empty() {
            return Some(outcome);
        }
        if now >= deadline {
            say!("shutdown: gave up waiting for {}", running.join(", "));
            return Some(outcome);
        }
        None
    }

    /// Print `amber: ready` once: the store mounted, the network settled, and every wanted
    /// service started (or waiting on something that cannot come up by itself).
    fn check_ready(&mut self) {
        if self.announced_ready || self.shutdown.is_some() {
            return;
        }
        let store_ready = self
            .find("store")
            .is_some_and(|index| self.units[index].ready());
        let network_settled = self.find("network").is_some_and(|index| {
            let unit = &self.units[index];
            match unit.state {
                State::Up | State::Failed(_) => true,
                State::Running { since, .. } => unit.up || since.elapsed() >= NETWORK_WAIT,
                _ => false,
            }
        });
        let services_pending = self.units.iter().any(|unit| {
            matches!(unit.kind, Kind::Service(_))
                && (matches!(unit.state, State::Idle) && unit.want
                    || matches!(unit.state, State::Running { .. }) && !unit.ready())
                && unit.needs.iter().all(|need| {
                    self.find(need).is_some_and(|index| {
                        let need = &self.units[index];
                        need.ready() || need.coming()
                    })
                })
        });
        if store_ready && network_settled && !services_pending {
            self.announced_ready = true;
            if self.config.health.is_some() {
                self.health_due = Some(Instant::now() + health::DELAY);
            }
            let handed_over = self.config.handed_over;
            let now = sys::boot_time();
            say!(
                "ready in {} ms (kernel handed over at {} ms)",
                crate::millis(now.saturating_sub(handed_over)),
                crate::millis(handed_over)
            );
        }
    }

    /// The earliest time something is due.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let units = self.units.iter().filter_map(|unit| match unit.state {
            State::Backoff { until } => Some(until),
            State::Missing { next_check } => Some(next_check),
            State::Stopping { kill_at, .. } => kill_at,
            State::Running { .. } if matches!(unit.kind, Kind::Store(Some(_))) && !unit.mounted => {
                Some(now + STORE_POLL)
            }
            // When the system stops waiting for the network to be ready.
            State::Running { since, .. }
                if matches!(unit.kind, Kind::Network(_))
                    && !unit.up
                    && now < since + NETWORK_WAIT
                    && !self.announced_ready =>
            {
                Some(since + NETWORK_WAIT)
            }
            _ => None,
        });
        units
            .chain(self.control.next_deadline())
            .chain(watchdog::feed(now))
            .chain(log::with(|log| log.deadline()).flatten())
            .chain(self.next_rescan)
            .chain(self.shutdown.map(|(_, deadline)| deadline))
            .chain(self.health_due)
            .min()
    }

    /// Wait for the next event or deadline and handle what happened.
    fn wait(&mut self, now: Instant) -> io::Result<()> {
        let connections_start = 3 + self.pipes.len();
        let mut fds = Vec::with_capacity(connections_start);
        fds.push(sys::poll_entry(self.signals.fd(), sys::POLLIN));
        fds.push(self.control.listener_entry());
        let kernel = self
            .kernel
            .as_ref()
            .map_or(-1, |kernel| kernel.file.as_raw_fd());
        fds.push(sys::poll_entry(kernel, sys::POLLIN));
        for pipe in &self.pipes {
            fds.push(sys::poll_entry(pipe.file.as_raw_fd(), sys::POLLIN));
        }
        self.control.connection_entries(&mut fds);
        let timeout = self
            .next_deadline(now)
            .map(|deadline| deadline.saturating_duration_since(now));
        // About to sleep for a while after some work: give the code pages back.
        let long = timeout.is_none_or(|timeout| timeout >= IDLE);
        if long && self.busy && self.announced_ready {
            if let Some(code) = self.code {
                sys::release_code(code);
            }
            self.busy = false;
        }
        sys::poll(&mut fds, timeout)?;
        self.busy |= fds.iter().any(|fd| fd.revents != 0) || !long;
        let now = Instant::now();

        // Output first, so a service's last words are logged before its exit is.
        self.drain_pipes(&|index, _| fds[3 + index].revents != 0);
        if fds[2].revents != 0 {
            if let Some(kernel) = &mut self.kernel {
                kernel.read();
            }
        }

        if fds[0].revents != 0 {
            while let Some(signal) = self.signals.read() {
                match signal {
                    sys::SIGCHLD => {}
                    sys::SIGTERM | sys::SIGINT => self.request_shutdown(Outcome::Reboot, now),
                    sys::SIGUSR1 | sys::SIGUSR2 => self.request_shutdown(Outcome::PowerOff, now),
                    sys::SIGHUP => self.rescan(now),
                    HANG_SIGNAL => hang(),
                    _ => {}
                }
            }
            self.reap(now);
        }

        let connection_events: Vec<i16> = fds[connections_start..]
            .iter()
            .map(|fd| fd.revents)
            .collect();
        for (index, revents) in connection_events.into_iter().enumerate() {
            if revents == 0 {
                continue;
            }
            if let Some(request) = self.control.serve(index, revents, now) {
                if let Some(answer) = self.handle(index, request, now) {
                    self.control.answer(index, answer, now);
                }
            }
        }
        self.control.feed(&mut |from, source, out| {
            log::with(|log| log.since(from, source, out)).unwrap_or(from)
        });
        self.control.close_answered();

        if fds[1].revents != 0 {
            self.control.accept(now);
        }
        Ok(())
    }

    /// Log what the pipes `which` picks hold, and forget those every writer has closed.
    fn drain_pipes(&mut self, which: &dyn Fn(usize, &str) -> bool) {
        let units = &mut self.units;
        let status_dir = &self.config.status_dir;
        let mut closed = Vec::new();
        for (index, pipe) in self.pipes.iter_mut().enumerate() {
            if !which(index, &pipe.name) {
                continue;
            }
            let open = pipe.drain(&mut |name, line| {
                output::echo(name, line);
                let (level, text) = log::level_of(line.strip_suffix(b"\r").unwrap_or(line));
                log::push(name, level, text);
                if let Some(unit) = units.iter_mut().find(|unit| unit.name == name) {
                    // The network daemon prints a line whenever its state changes.
                    if matches!(unit.kind, Kind::Network(_)) {
                        unit.up = status::read(status_dir, name)
                            .is_some_and(|text| text.starts_with("up"));
                    }
                }
            });
            if !open {
                closed.push(index);
            }
        }
        for index in closed.into_iter().rev() {
            self.pipes.swap_remove(index);
        }
    }

    fn reap(&mut self, now: Instant) {
        while let Reaped::Child(pid, exit) = sys::reap_any() {
            // Anything else is an orphan that was reparented to us: reaping it is all.
            if let Some(index) = self.units.iter().position(|unit| unit.pid() == Some(pid)) {
                // It may have written and exited after poll looked: its last words
                // are in the pipe now, and go to the log before its exit does.
                let name = self.units[index].name.clone();
                self.drain_pipes(&|_, pipe| pipe == name);
                self.exited(index, now, Ok(exit));
            }
        }
        self.units.retain(|unit| !unit.removed);
    }

    /// Answer the clients of `svc stop` and `svc restart` whose service has stopped.
    fn answer_waiters(&mut self, now: Instant) {
        let settled: Vec<(usize, String)> = self
            .control
            .waiting()
            .filter_map(|(index, name)| match self.find(name) {
                None => Some((index, format!("{name}: stopped and removed\n"))),
                Some(unit) if !matches!(self.units[unit].state, State::Stopping { .. }) => {
                    Some((index, self.status_line(unit, now, 0)))
                }
                Some(_) => None,
            })
            .collect();
        for (index, text) in settled {
            self.control.answer(index, Answer::Ok(text), now);
        }
    }

    /// Carry out a request; None when the answer comes later (stop and restart).
    fn handle(&mut self, connection: usize, request: Request, now: Instant) -> Option<Answer> {
        let name = match &request {
            Request::Status(None) => {
                let width = self
                    .units
                    .iter()
                    .map(|unit| unit.name.len())
                    .max()
                    .unwrap_or(0);
                let text: String = (0..self.units.len())
                    .map(|index| self.status_line(index, now, width))
                    .collect();
                return Some(Answer::Ok(text));
            }
            Request::Rescan => {
                self.rescan(now);
                self.start_ready(now);
                let services = self
                    .units
                    .iter()
                    .filter(|unit| matches!(unit.kind, Kind::Service(_)))
                    .count();
                return Some(Answer::Ok(format!("{services} services\n")));
            }
            Request::PowerOff => {
                self.request_shutdown(Outcome::PowerOff, now);
                return Some(Answer::Ok("powering off\n".into()));
            }
            Request::Reboot => {
                self.request_shutdown(Outcome::Reboot, now);
                return Some(Answer::Ok("rebooting\n".into()));
            }
            Request::RebootTry => {
                self.request_shutdown(Outcome::RebootTry, now);
                return Some(Answer::Ok("rebooting with the tryboot flag\n".into()));
            }
            Request::Log(query) => {
                let name = query.name.as_deref();
                let (text, next) =
                    log::with(|log| (log.text(name, query.lines), log.ring().next()))
                        .unwrap_or_default();
                let known = name.is_none_or(|name| {
                    name == log::KERNEL || name == log::INIT || self.find(name).is_some()
                });
                if !known && text.is_empty() {
                    let name = name.unwrap_or_default();
                    return Some(Answer::Fail(format!("{name}: no such service\n")));
                }
                let text = String::from_utf8_lossy(&text).into_owned();
                if query.follow {
                    self.control.answer(connection, Answer::Ok(text), now);
                    self.control.follow(connection, query.name.clone(), next);
                    return None;
                }
                return Some(Answer::Ok(text));
            }
            Request::Status(Some(name))
            | Request::Start(name)
            | Request::Stop(name)
            | Request::Restart(name) => name.clone(),
        };
        let Some(index) = self.find(&name) else {
            return Some(Answer::Fail(format!("{name}: no such service\n")));
        };
        if self.shutdown.is_some() && matches!(request, Request::Start(_) | Request::Restart(_)) {
            return Some(Answer::Fail("shutting down\n".into()));
        }
        let unit = &mut self.units[index];
        let fixed = match unit.kind {
            Kind::Store(None) => Some("is not supervised here"),
            Kind::Network(_) if matches!(request, Request::Stop(_)) => {
                Some("cannot be stopped (`svc restart network` applies the configuration again)")
            }
            _ => None,
        };
        match request {
            Request::Status(_) => Some(Answer::Ok(self.status_line(index, now, 0))),
            _ if fixed.is_some() => {
                Some(Answer::Fail(format!("{name}: {}\n", fixed.unwrap_or(""))))
            }
            Request::Stop(_) => {
                unit.want = false;
                if unit.pid().is_some() {
                    self.stop(index, now, Then::Stop);
                    self.control.wait_for(connection, name);
                    return None;
                }
                if !matches!(unit.state, State::Up) {
                    unit.state = State::Idle;
                }
                Some(Answer::Ok(self.status_line(index, now, 0)))
            }
            Request::Start(_) | Request::Restart(_) => {
                let restart = matches!(request, Request::Restart(_));
                unit.want = true;
                unit.delay = self.config.backoff.initial;
                match unit.state {
                    State::Running { .. } | State::Stopping { .. } if restart => {
                        self.stop(index, now, Then::Restart);
                        self.control.wait_for(connection, name);
                        return None;
                    }
                    State::Stopping { .. } => self.stop(index, now, Then::Restart),
                    State::Running { .. } => {}
                    State::Up if !restart => {}
                    State::Failed(ref reason) if reason == "dependency cycle" => {}
                    _ => unit.state = State::Idle,
                }
                self.start_ready(now);
                self.check_ready();
                let line = self.status_line(index, now, 0);
                match self.units[index].state {
                    State::Failed(_) | State::Backoff { .. } => Some(Answer::Fail(line)),
                    _ => Some(Answer::Ok(line)),
                }
            }
            Request::Rescan
            | Request::PowerOff
            | Request::Reboot
            | Request::RebootTry
            | Request::Log(_) => None,
        }
    }

    /// One line of `svc status`: name, state, details.
    fn status_line(&self, index: usize, now: Instant, width: usize) -> String {
        let unit = &self.units[index];
        let (state, mut detail) = match &unit.state {
            State::Idle if unit.want => match self.unmet_need(unit) {
                Some(need) if self.find(need).is_none() => {
                    ("waiting", format!("for {need}, which does not exist"))
                }
                Some(need) => ("waiting", format!("for {need}")),
                None => ("starting", String::new()),
            },
            State::Idle => ("stopped", String::new()),
            State::Running { pid, since } => {
                let mut detail = format!("pid {pid}, up {}", human(now.duration_since(*since)));
                if let Some(text) = status::read(&self.config.status_dir, &unit.name) {
                    detail += ": ";
                    detail += &text;
                }
                if let Kind::Store(Some(store)) = &unit.kind {
                    if unit.mounted {
                        detail += &format!(", mounted at {}", store.mount_point.display());
                    } else {
                        detail += ", not mounted yet";
                    }
                }
                ("running", detail)
            }
            State::Stopping { pid, .. } => ("stopping", format!("pid {pid}")),
            State::Backoff { until } => (
                "backoff",
                format!("restart in {}", human(until.saturating_duration_since(now))),
            ),
            State::Exited(exit) => ("exited", exit.to_string()),
            State::Failed(reason) => ("failed", reason.clone()),
            State::Missing { .. } => match &unit.kind {
                Kind::Shell(shell) => (
                    "waiting",
                    format!("for {} (pkg add busybox)", shell.program.display()),
                ),
                _ => ("waiting", String::new()),
            },
            State::Up => (
                "up",
                match &unit.kind {
                    Kind::Network(_) => "not managed here".into(),
                    _ => "not supervised".into(),
                },
            ),
        };
        if unit.restarts > 0 {
            if !detail.is_empty() {
                detail += ", ";
            }
            detail += &format!("{} restarts", unit.restarts);
        }
        let line = format!("{:<width$}  {:<8}  {detail}", unit.name, state);
        format!("{}\n", line.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            (Duration::from_millis(850), "850ms"),
            (Duration::from_millis(4250), "4.2s"),
            (Duration::from_secs(12), "12s"),
            (Duration::from_secs(185), "3m05s"),
            (Duration::from_secs(7800), "2h10m"),
        ];
        for (duration, text) in cases {
            assert_eq!(human(duration), text);
        }
    }
}
