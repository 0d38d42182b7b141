//! The supervisor end to end on the host: `init --root DIR` supervising small shell-script
//! services in a temporary directory, driven with `svc`, `poweroff` and signals; and every
//! command of the device binary writing into a closed pipe.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_amber");
const WAIT: Duration = Duration::from_secs(15);

/// A supervisor running in its own temporary directory; stopped and cleaned up on drop.
struct Supervisor {
    child: Child,
    root: PathBuf,
    /// Every line it printed, with when the test saw it.
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Leave the directory when dropped (for a supervisor started again in it).
    keep_root: bool,
}

/// A service file: (directory under the root, name, text). The directory is `ro/svc` (a
/// package's) or `etc/amber/svc` (the administrator's).
type ServiceFile<'a> = (&'a str, &'a str, &'a str);

impl Supervisor {
    fn start(test: &str, services: &[ServiceFile]) -> Supervisor {
        Supervisor::start_with(test, services, &[])
    }

    fn start_with(test: &str, services: &[ServiceFile], options: &[&str]) -> Supervisor {
        Supervisor::start_in(fresh_root(test), services, options)
    }

    /// Start in `root` as it is (a supervisor ran there before, or files were put there).
    fn start_in(root: PathBuf, services: &[ServiceFile], options: &[&str]) -> Supervisor {
        for dir in ["ro/svc", "etc/amber/svc"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for (dir, name, text) in services {
            write_service(&root, dir, name, text);
        }
        let mut child = Command::new(BINARY)
            .arg0("init")
            .arg("--root")
            .arg(&root)
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the supervisor");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{}] {line}", std::process::id());
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        let supervisor = Supervisor {
            child,
            root,
            lines,
            keep_root: false,
        };
        supervisor.wait_for_line("amber: ready in ");
        supervisor
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn socket(&self) -> PathBuf {
        self.root.join("run/amber/control")
    }

    /// Run `svc` (or another command name) against this supervisor: (exit code, stdout,
    /// stderr).
    fn command(&self, name: &str, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(BINARY)
            .arg0(name)
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn svc(&self, args: &[&str]) -> (i32, String, String) {
        self.command("svc", args)
    }

    fn has_line(&self, text: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, line)| line.contains(text))
    }

    /// When the first line containing `text` was seen; panics after [`WAIT`].
    fn wait_for_line(&self, text: &str) -> Instant {
        let started = Instant::now();
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, line)| line.contains(text))
                .map(|(at, _)| *at);
            if let Some(at) = found {
                return at;
            }
            assert!(
                started.elapsed() < WAIT,
                "no line with {text:?} after {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// When each line containing `text` was seen.
    fn times_of(&self, text: &str) -> Vec<Instant> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|(_, line)| line.contains(text))
            .map(|(at, _)| *at)
            .collect()
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The pid `svc status NAME` shows, if it runs.
    fn service_pid(&self, name: &str) -> Option<i32> {
        let (_, status, _) = self.svc(&["status", name]);
        let after = status.split("pid ").nth(1)?;
        after
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Wait for the supervisor to exit by itself; its exit code.
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // SIGTERM asks for a shutdown: services are stopped before it exits.
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill takes no pointers; the pid is our own child's.
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if mounted(&self.path("ro")) {
            let path = std::ffi::CString::new(self.path("ro").display().to_string()).unwrap();
            // SAFETY: the path is a valid NUL-terminated string.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
        if !self.keep_root {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// An empty directory for a test's supervisor.
fn fresh_root(test: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("amber-boot-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// Whether `path` is a mount point (in this process's mount table).
fn mounted(path: &Path) -> bool {
    mount_count(path) > 0
}

/// capabilities(7): a negative nice value takes the first, lowering an OOM score below
/// 0 the second.
const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process holds capability `number` (capabilities(7)) in its effective set.
fn has_capability(number: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << number) != 0)
}

fn mount_count(path: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = path.display().to_string();
    table
        .lines()
        .filter(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
        .count()
}

fn write_service(root: &Path, dir: &str, name: &str, text: &str) {
    let text = text.replace("ROOT", &root.display().to_string());
    std::fs::write(root.join(dir).join(name), text).unwrap();
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(pid, 0); look at its state too.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Children of `pid` that are zombies: exited but not reaped.
fn zombie_children(pid: i32) -> Vec<String> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[1] == pid.to_string() && fields[0] == "Z" {
            zombies.push(stat);
        }
    }
    zombies
}

#[test]
fn independent_services_start_in_parallel() {
    // Each waits for the other to have started: only a parallel start lets both finish.
    let rendezvous = |me: &str, other: &str| {
        format!(
            "command /bin/sh -c 'touch ROOT/{me}.started; while [ ! -e ROOT/{other}.started ]; do sleep 0.02; done; echo {me}-met-{other}; exec sleep 30'\n"
        )
    };
    let (a, b) = (rendezvous("a", "b"), rendezvous("b", "a"));
    let supervisor = Supervisor::start("parallel", &[("ro/svc", "a", &a), ("ro/svc", "b", &b)]);
    supervisor.wait_for_line("a: a-met-b");
    supervisor.wait_for_line("b: b-met-a");
}

#[test]
fn env_lines_are_set_over_inits_environment() {
    // The last of two lines for one name wins; what init has and no line names is kept.
    let service = "command /bin/sh -c 'echo \"greeting=$GREETING empty=[$EMPTY] home=$HOME\"; exec sleep 30'\nenv GREETING=hi EMPTY=\nenv GREETING=x=y\n";
    let supervisor = Supervisor::start("env", &[("ro/svc", "greet", service)]);
    let home = std::env::var("HOME").unwrap_or_default();
    supervisor.wait_for_line(&format!("greet: greeting=x=y empty=[] home={home}"));
}

#[test]
fn dependents_start_after_what_they_need() {
    let supervisor = Supervisor::start(
        "needs",
        &[
            // A one-shot: what needs it starts once it exited with 0.
            ("ro/svc", "setup", "command /bin/sh -c 'sleep 0.3; touch ROOT/setup.done'\nrestart never\n"),
            (
                "ro/svc",
                "web",
                "command /bin/sh -c 'if [ -e ROOT/setup.done ]; then echo after-setup; else echo too-early; fi; exec sleep 30'\nneeds setup\n",
            ),
            // A daemon: what needs it starts once it runs.
            ("ro/svc", "daemon", "command /bin/sh -c 'exec sleep 30'\n"),
            ("etc/amber/svc", "client", "command /bin/sh -c 'echo client-up; exec sleep 30'\nneeds daemon network\n"),
            ("ro/svc", "lost", "command /bin/sh -c 'exec sleep 30'\nneeds nothing-like-it\n"),
            ("ro/svc", "x", "command /bin/sh -c 'exec sleep 30'\nneeds y\n"),
            ("ro/svc", "y", "command /bin/sh -c 'exec sleep 30'\nneeds x\n"),
        ],
    );
    supervisor.wait_for_line("web: after-setup");
    assert!(!supervisor.has_line("too-early"));
    let daemon = supervisor.wait_for_line("amber: daemon: started");
    let client = supervisor.wait_for_line("amber: client: started");
    assert!(daemon <= client);
    supervisor.wait_for_line("client: client-up");

    let (code, status, _) = supervisor.svc(&["status"]);
    assert_eq!(code, 0);
    let line = |name: &str| {
        status
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .to_owned()
    };
    assert!(
        line("setup").contains("exited    exited with status 0"),
        "{status}"
    );
    assert!(line("web").contains("running"), "{status}");
    assert!(
        line("lost").contains("waiting   for nothing-like-it, which does not exist"),
        "{status}"
    );
    assert!(line("x").contains("failed    dependency cycle"), "{status}");
    assert!(line("y").contains("failed    dependency cycle"), "{status}");
    assert!(
        line("store").contains("up        not supervised"),
        "{status}"
    );
    assert!(line("network").contains("up"), "{status}");
}

#[test]
fn crashing_services_restart_with_growing_delays() {
    let supervisor = Supervisor::start(
        "backoff",
        &[
            (
                "ro/svc",
                "crash",
                "command /bin/sh -c 'echo run; exit 3'\nrestart always\n",
            ),
            (
                "ro/svc",
                "done",
                "command /bin/sh -c 'echo once; exit 0'\nrestart on-failure\n",
            ),
            (
                "ro/svc",
                "fails",
                "command /bin/sh -c 'echo once; exit 1'\nrestart never\n",
            ),
            (
                "ro/svc",
                "missing",
                "command /no/such/program\nrestart always\n",
            ),
        ],
    );
    // Test delays: 100 ms doubling to at most 800 ms: runs at about 0, .1, .3, .7, 1.5, 2.3 s.
    let started = Instant::now();
    let runs = loop {
        let runs = supervisor.times_of("crash: run");
        if runs.len() >= 6 {
            break runs;
        }
        assert!(started.elapsed() < WAIT, "only {} runs", runs.len());
        std::thread::sleep(Duration::from_millis(20));
    };
    let gaps: Vec<Duration> = runs.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(90), "{gaps:?}");
    assert!(gaps[1] > gaps[0] + Duration::from_millis(50), "{gaps:?}");
    assert!(gaps[2] > gaps[1] + Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[3] >= Duration::from_millis(750), "{gaps:?}");
    assert!(
        gaps[4] >= Duration::from_millis(750) && gaps[4] < Duration::from_millis(1500),
        "capped: {gaps:?}"
    );
    assert!(supervisor.has_line("amber: crash: exited with status 3; restarting in 100ms"));

    let (_, status, _) = supervisor.svc(&["status", "crash"]);
    assert!(status.contains("restarts"), "{status}");
    let (_, status, _) = supervisor.svc(&["status", "done"]);
    assert!(
        status.contains("exited    exited with status 0"),
        "{status}"
    );
    let (_, status, _) = supervisor.svc(&["status", "fails"]);
    assert!(
        status.contains("exited    exited with status 1"),
        "{status}"
    );
    assert_eq!(supervisor.times_of("done: once").len(), 1);
    assert_eq!(supervisor.times_of("fails: once").len(), 1);
    supervisor.wait_for_line("amber: missing: cannot start /no/such/program: ");
}

#[test]
fn output_is_logged_and_svc_commands_work() {
    let supervisor = Supervisor::start(
        "commands",
        &[
            (
                "ro/svc",
                "talker",
                "command /bin/sh -c 'echo hello; echo to-stderr >&2; exec sleep 30'\n",
            ),
            (
                "ro/svc",
                "later",
                "command /bin/sh -c 'echo later-up; exec sleep 30'\nstart manual\n",
            ),
            (
                "ro/svc",
                "stubborn",
                "command /bin/sh -c 'trap \"\" TERM; echo armed; while :; do sleep 0.05; done'\n",
            ),
        ],
    );
    supervisor.wait_for_line("talker: hello");
    supervisor.wait_for_line("talker: to-stderr");
    let (code, log, _) = supervisor.svc(&["log", "talker"]);
    assert_eq!(code, 0);
    assert!(
        log.contains("hello\n") && log.contains("to-stderr\n"),
        "{log}"
    );
    assert!(log.contains("amber: started (pid "), "{log}");

    let first = supervisor.service_pid("talker").expect("talker runs");
    let started = Instant::now();
    let (code, out, _) = supervisor.svc(&["stop", "talker"]);
    assert_eq!(code, 0);
    // SIGTERM is enough: the signals init blocks for itself are unblocked in services.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // The answer may reach the test before the console line does.
    supervisor.wait_for_line("amber: talker: stopped (killed by signal 15)");
    assert!(
        out.starts_with("talker") && out.contains("stopped"),
        "{out}"
    );
    assert!(!alive(first), "stop answers once the process is gone");
    let (code, out, _) = supervisor.svc(&["start", "talker"]);
    assert_eq!(code, 0, "{out}");
    let second = supervisor.service_pid("talker").expect("talker runs again");
    assert_ne!(first, second);
    let (code, out, _) = supervisor.svc(&["restart", "talker"]);
    assert_eq!(code, 0, "{out}");
    let third = supervisor
        .service_pid("talker")
        .expect("talker runs after a restart");
    assert_ne!(second, third);
    assert!(!alive(second));

    // A manual service waits for `svc start`.
    let (_, status, _) = supervisor.svc(&["status", "later"]);
    assert!(status.contains("stopped"), "{status}");
    assert!(!supervisor.has_line("later-up"));
    assert_eq!(supervisor.svc(&["start", "later"]).0, 0);
    supervisor.wait_for_line("later: later-up");

    // One that ignores SIGTERM is killed after the stop timeout (1 s here).
    supervisor.wait_for_line("stubborn: armed");
    let started = Instant::now();
    let (code, out, _) = supervisor.svc(&["stop", "stubborn"]);
    assert_eq!(code, 0, "{out}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(
        supervisor.has_line("amber: stubborn: still running 1.0s after SIGTERM; sending SIGKILL")
    );

    let (code, _, err) = supervisor.svc(&["status", "nope"]);
    assert_eq!((code, err.as_str()), (1, "svc: nope: no such service\n"));
    let (code, _, err) = supervisor.svc(&["frobnicate"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = supervisor.svc(&["start"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = supervisor.svc(&["stop", "network"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = Supervisor::command(&supervisor, "svc", &[]);
    assert_eq!(code, 2);

    // Idle memory of this (debug, glibc) build, for the record.
    let status = std::fs::read_to_string(format!("/proc/{}/status", supervisor.pid())).unwrap();
    let rss = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap_or("");
    eprintln!("idle supervisor (debug build): {rss}");
}

#[test]
fn orphans_are_reaped() {
    let supervisor = Supervisor::start(
        "orphans",
        &[(
            "ro/svc",
            "forker",
            "command /bin/sh -c 'sleep 0.2 & sleep 0.3 & sleep 0.4 & echo forked; exit 0'\nrestart never\n",
        )],
    );
    supervisor.wait_for_line("forker: forked");
    // The sleeps outlive their parent, become the supervisor's, exit, and must be reaped.
    std::thread::sleep(Duration::from_millis(1200));
    let zombies = zombie_children(supervisor.pid());
    assert!(zombies.is_empty(), "unreaped: {zombies:?}");
}

#[test]
fn service_files_are_overridden_checked_and_rescanned() {
    let mut supervisor = Supervisor::start(
        "rescan",
        &[
            (
                "ro/svc",
                "web",
                "command /bin/sh -c 'echo from-package; exec sleep 30'\n",
            ),
            (
                "etc/amber/svc",
                "web",
                "command /bin/sh -c 'echo from-admin; exec sleep 30'\n",
            ),
            ("etc/amber/svc", "bad", "command /bin/true\ncolour blue\n"),
        ],
    );
    supervisor.wait_for_line("web: from-admin");
    assert!(!supervisor.has_line("from-package"));
    assert!(supervisor.has_line("bad: skipped: line 2: unknown key \"colour\""));
    let (code, _, _) = supervisor.svc(&["status", "bad"]);
    assert_eq!(code, 1);

    // A package brings a new service: `svc rescan` starts it.
    write_service(
        &supervisor.root,
        "ro/svc",
        "fresh",
        "command /bin/sh -c 'echo fresh-up; exec sleep 30'\n",
    );
    assert_eq!(supervisor.svc(&["rescan"]).0, 0);
    supervisor.wait_for_line("fresh: fresh-up");
    // Its removal (and SIGHUP, like `svc rescan`) stops it.
    std::fs::remove_file(supervisor.path("ro/svc/fresh")).unwrap();
    // SAFETY: kill takes no pointers; the pid is our own child's.
    unsafe { libc::kill(supervisor.pid(), libc::SIGHUP) };
    supervisor.wait_for_line("amber: fresh: stopped and removed");
    let (code, _, _) = supervisor.svc(&["status", "fresh"]);
    assert_eq!(code, 1);

    // poweroff: services get SIGTERM, the supervisor stops.
    write_service(
        &supervisor.root,
        "ro/svc",
        "graceful",
        "command /bin/sh -c 'trap \"echo got-term; exit 0\" TERM; echo armed; while :; do sleep 0.05; done'\n",
    );
    assert_eq!(supervisor.svc(&["rescan"]).0, 0);
    supervisor.wait_for_line("graceful: armed");
    let (code, out, err) = supervisor.command("poweroff", &[]);
    assert_eq!((code, out.as_str()), (0, "powering off\n"), "{err}");
    assert_eq!(supervisor.wait_exit(Duration::from_secs(5)), Some(0));
    supervisor.wait_for_line("graceful: got-term");
    supervisor.wait_for_line("amber: supervisor stopped (PowerOff)");
}

/// SECURITY-TESTS item 24: the FUSE store killed → its mount answers ENOTCONN (or is
/// already replaced), readers do not hang, init detaches the dead mount and starts the
/// store again; the services keep running; at shutdown the store goes last and unmounts.
#[test]
fn killed_store_is_detached_and_restarted() {
    // A FUSE mount needs root and /dev/fuse; CI has both, a developer may not.
    if !amber_testkit::require_root("mounting the FUSE store")
        || !amber_testkit::require(Path::new("/dev/fuse").exists(), "/dev/fuse is missing")
    {
        return;
    }
    let mut supervisor = Supervisor::start_with(
        "store",
        &[(
            "etc/amber/svc",
            "web",
            "command /bin/sh -c 'echo web-up; exec sleep 30'\n",
        )],
        &["--store"],
    );
    let mounted_at = supervisor.wait_for_line("amber: store: mounted at ");
    let web_started = supervisor.wait_for_line("amber: web: started");
    // A store that ran a while is restarted at once, without a backoff.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(mounted_at <= web_started, "services wait for the store");
    let ro = supervisor.path("ro");
    assert!(std::fs::read_dir(ro.join("svc")).is_ok());
    let web = supervisor.service_pid("web").unwrap();
    let store = supervisor.service_pid("store").unwrap();
    // The OOM killer takes the store only after everything but init. (Lowering a score
    // takes CAP_SYS_RESOURCE, which some containers' root lacks; the end-to-end test
    // checks the scores on the device.)
    let score = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"));
    if has_capability(CAP_SYS_RESOURCE) {
        assert_eq!(score(store).unwrap().trim(), "-900");
    } else {
        eprintln!("notice: no CAP_SYS_RESOURCE here: the store's OOM score is not checked");
        amber_testkit::record(
            &amber_testkit::current_test(),
            "the store's OOM score: no CAP_SYS_RESOURCE",
        );
    }
    // It runs before the processes that wait on it (the nice value, field 19 of stat).
    // (A negative nice takes CAP_SYS_NICE; without it the store runs at init's.)
    let stat = std::fs::read_to_string(format!("/proc/{store}/stat")).unwrap();
    let nice = stat.rsplit(')').next().unwrap().split_whitespace().nth(16);
    if has_capability(CAP_SYS_NICE) {
        assert_eq!(nice, Some("-10"), "{stat}");
    }
    // A process with a directory of the store open when it dies.
    let held = std::fs::File::open(ro.join("svc")).unwrap();

    // SAFETY: kill takes no pointers; the pid is the store the supervisor started.
    unsafe { libc::kill(store, libc::SIGKILL) };
    // Readers get an answer at once (ENOTCONN from the dead mount, or the new store's).
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(300) {
        let asked = Instant::now();
        let _ = std::fs::read_dir(&ro);
        assert!(asked.elapsed() < Duration::from_secs(1), "a reader hung");
    }
    supervisor.wait_for_line("amber: store: killed by signal 9; restarting at once");
    supervisor.wait_for_line("amber: store: detached the old mount at ");
    let started = Instant::now();
    while supervisor.times_of("amber: store: mounted at ").len() < 2 {
        assert!(started.elapsed() < WAIT, "the store was not mounted again");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(std::fs::read_dir(ro.join("svc")).is_ok());
    // What was open in the dead mount stays there: it answers with an error at once,
    // never with a hang, while the new mount serves everyone else.
    use std::os::fd::AsRawFd;
    let asked = Instant::now();
    // statfs always asks the file system: nothing the kernel cached answers it.
    // SAFETY: statfs is plain data, for which all zeroes is a value.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one statfs into `stats`, which lives across the call.
    let answer = unsafe { libc::fstatfs(held.as_raw_fd(), &mut stats) };
    let error = std::io::Error::last_os_error();
    assert!(asked.elapsed() < Duration::from_secs(1), "a reader hung");
    assert_eq!(answer, -1, "the dead mount answered");
    assert_eq!(error.raw_os_error(), Some(libc::ENOTCONN), "{error}");
    drop(held);
    assert_eq!(
        mount_count(&ro),
        1,
        "the dead mount is gone, not stacked under the new one"
    );
    assert_ne!(supervisor.service_pid("store"), Some(store));
    assert_eq!(
        supervisor.service_pid("web"),
        Some(web),
        "services keep running"
    );

    let (code, _, err) = supervisor.command("poweroff", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(supervisor.wait_exit(Duration::from_secs(10)), Some(0));
    let web_stopped = supervisor.wait_for_line("amber: web: stopped");
    let store_stopped = supervisor.wait_for_line("amber: store: stopped");
    assert!(web_stopped <= store_stopped, "the store stops last");
    assert!(!mounted(&ro), "the store unmounted /ro");
}

/// Run the device binary as `name` with `args`, its standard output a pipe whose reader
/// is closed before it writes (`svc status | head -0`): (exit code, signal, stderr).
fn into_closed_pipe(name: &str, args: &[&str]) -> (Option<i32>, Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(BINARY)
        .arg0(name)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        output.status.code(),
        output.status.signal(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `svc status | head -1` died by SIGILL on the device: println! panicked on EPIPE and
/// the device build aborts on a panic. A closed output is the end of the output: every
/// command that prints exits as it would have with a reader, without a word about it.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let supervisor = Supervisor::start(
        "closed-stdout",
        &[(
            "ro/svc",
            "talker",
            "command /bin/sh -c 'echo hello; exec sleep 30'\n",
        )],
    );
    supervisor.wait_for_line("talker: hello");
    let socket = supervisor.socket();
    let socket = socket.to_str().unwrap();
    let store = supervisor.path("store");
    let store = store.to_str().unwrap();
    // A command that changes something finishes the change, its output dropped.
    let added = into_closed_pipe("pkg", &["--root", store, "repo", "add", "file:///nowhere"]);
    assert_eq!(added, (Some(0), None, String::new()));
    let repos = Command::new(BINARY)
        .arg0("pkg")
        .args(["--root", store, "repo", "list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&repos.stdout), "file:///nowhere\n");
    // (command name, arguments, exit code, what stderr says)
    let table: &[(&str, &[&str], i32, &str)] = &[
        ("svc", &["--socket", socket, "status"], 0, ""),
        ("svc", &["--socket", socket, "status", "talker"], 0, ""),
        ("svc", &["--socket", socket, "log", "talker"], 0, ""),
        ("svc", &["--help"], 0, ""),
        ("poweroff", &["--help"], 0, ""),
        ("reboot", &["--help"], 0, ""),
        ("pkg", &["--help"], 0, ""),
        ("pkg", &["info", "--help"], 0, ""),
        ("pkg", &["--root", store, "repo", "list"], 0, ""),
        ("pkg", &["--root", store, "--json", "list"], 0, ""),
        ("pkg", &["--root", store, "--json", "key", "list"], 0, ""),
        (
            "pkg",
            &["--root", store, "--json", "search", "x"],
            1,
            "pkg: file:///nowhere: no index yet, run pkg update\n",
        ),
        (
            "pkg",
            &["--root", store, "--json", "info", "x"],
            1,
            "pkg: x: no such package installed or available\n",
        ),
    ];
    for (name, args, code, stderr) in table {
        let with_reader = Command::new(BINARY)
            .arg0(name)
            .args(*args)
            .output()
            .unwrap();
        assert!(!with_reader.stdout.is_empty(), "{name} {args:?} prints");
        let got = into_closed_pipe(name, args);
        assert_eq!(
            got,
            (Some(*code), None, stderr.to_string()),
            "{name} {args:?}"
        );
    }
}

#[test]
fn one_log_with_levels_followed_and_kept_across_a_restart() {
    let root = fresh_root("log");
    let ticker = "command /bin/sh -c 'echo \"<3>disk on fire\"; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.1; done'\n";
    let mut supervisor = Supervisor::start_in(
        root.clone(),
        &[
            ("ro/svc", "ticker", ticker),
            (
                "ro/svc",
                "quiet",
                "command /bin/sh -c 'echo hush; exec sleep 30'\n",
            ),
        ],
        &[],
    );
    supervisor.wait_for_line("ticker: tick-3");
    let (code, log, _) = supervisor.svc(&["log", "ticker"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = log.lines().collect();
    // `TIME SOURCE LEVEL: text`, the level from the line's <N> prefix.
    assert!(
        lines[0].contains(" ticker notice: amber: started (pid "),
        "{log}"
    );
    assert!(lines[1].ends_with(" ticker err: disk on fire"), "{log}");
    assert!(lines[2].ends_with(" ticker info: tick-1"), "{log}");
    assert!(
        lines[0].as_bytes()[10] == b'T' && lines[0].as_bytes()[23] == b'Z',
        "{log}"
    );
    assert!(!log.contains("hush"), "only the service asked for");
    let (_, all, _) = supervisor.svc(&["log"]);
    assert!(
        all.contains(" quiet info: hush") && all.contains(" amber notice: "),
        "{all}"
    );
    let (_, last, _) = supervisor.svc(&["log", "ticker", "-n", "2"]);
    assert_eq!(last.lines().count(), 2, "{last}");
    assert!(
        last.lines()
            .all(|line| line.contains(" ticker info: tick-")),
        "{last}"
    );
    let (code, _, err) = supervisor.svc(&["log", "nothing-here"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "svc: nothing-here: no such service\n")
    );

    // -f: the log so far, then new lines as they come.
    let mut follower = Command::new(BINARY)
        .arg0("svc")
        .arg("--socket")
        .arg(supervisor.socket())
        .args(["log", "-n", "1", "-f", "ticker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < 4 {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the follower ended: {seen:?}"
        );
        seen.push(line);
        assert!(started.elapsed() < WAIT);
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let numbers: Vec<u32> = seen
        .iter()
        .filter_map(|line| line.trim().rsplit("tick-").next()?.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 4, "{seen:?}");
    assert!(
        numbers.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{seen:?}"
    );
    // The supervisor goes on serving others once the follower has gone.
    assert_eq!(supervisor.svc(&["status", "ticker"]).0, 0);

    // Written to data/log by the shutdown, and read back by the next start.
    let (code, _, err) = supervisor.command("poweroff", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(supervisor.wait_exit(Duration::from_secs(10)), Some(0));
    supervisor.keep_root = true;
    drop(supervisor);
    let written = std::fs::read_to_string(root.join("data/log/messages")).unwrap();
    assert!(written.contains(" ticker err: disk on fire\n"), "{written}");
    assert!(
        written.contains(" ticker notice: amber: stopped (killed by signal 15)"),
        "{written}"
    );
    assert!(
        !root.join("data/log/running").exists(),
        "a clean stop leaves no mark"
    );
    let supervisor = Supervisor::start_in(root, &[], &[]);
    supervisor.wait_for_line("amber: boot: after a clean shutdown");
    let (code, log, _) = supervisor.svc(&["log", "ticker"]);
    assert_eq!(
        code, 0,
        "the lines of a service that is gone are still there"
    );
    assert!(
        log.contains(" ticker err: disk on fire") && log.contains("tick-1\n"),
        "{log}"
    );
}

#[test]
fn lines_go_to_a_remote_syslog_server() {
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_read_timeout(Some(WAIT)).unwrap();
    let root = fresh_root("syslog");
    std::fs::create_dir_all(root.join("data/etc/amber")).unwrap();
    std::fs::write(
        root.join("data/etc/amber/log"),
        format!("# the collector\nremote {}\n", server.local_addr().unwrap()),
    )
    .unwrap();
    let supervisor = Supervisor::start_in(
        root,
        &[(
            "ro/svc",
            "talker",
            "command /bin/sh -c 'echo hello-remote; exec sleep 30'\n",
        )],
        &[],
    );
    supervisor.wait_for_line("talker: hello-remote");
    let mut buffer = [0u8; 2048];
    let started = Instant::now();
    loop {
        let count = server.recv(&mut buffer).expect("a syslog message");
        let message = String::from_utf8_lossy(&buffer[..count]).into_owned();
        if message.ends_with("hello-remote") {
            // RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG, daemon.info.
            assert!(message.starts_with("<30>1 "), "{message}");
            assert!(
                message.contains("Z ") && message.contains(" talker - - - hello-remote"),
                "{message}"
            );
            break;
        }
        assert!(started.elapsed() < WAIT, "no message for talker");
    }
}

#[test]
fn services_run_with_least_privilege() {
    // Users, capabilities and mount namespaces need root.
    if !amber_testkit::require_root("changing users and mounting a service's namespace") {
        return;
    }
    let root = fresh_root("privilege");
    let users = root.join("ro/web-1.0-r0/users");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("web"), "uid 4321\nhome /data/web\n").unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("tmp-outside"), "").unwrap();
    let script = "id -u; id -g; grep -E \"^(CapEff|CapBnd|CapAmb|NoNewPrivs)\" /proc/self/status; \
                  touch ROOT/data/x && echo data-writable; touch ROOT/data/web/y && echo state-writable; \
                  touch ROOT/tmp/z && ls ROOT/tmp | tr \"\\n\" \" \"; echo; exec sleep 30";
    let web = format!(
        "command /bin/sh -c '{script}'\nuser web\ncapabilities net_bind_service\nstate /data/web\nprivate-tmp yes\n"
    );
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(root.join("tmp/outside"), "").unwrap();
    let supervisor = Supervisor::start_in(
        root.clone(),
        &[
            ("ro/svc", "web", &web),
            ("ro/svc", "nobody-user", "command /bin/sh -c 'id -u; exec sleep 30'\nuser ghost\n"),
            ("ro/svc", "plain", "command /bin/sh -c 'grep -E \"^(CapEff|NoNewPrivs)\" /proc/self/status; exec sleep 30'\n"),
        ],
        &[],
    );
    supervisor.wait_for_line("web: state-writable");
    supervisor.wait_for_line("web: z ");
    let line = |text: &str| supervisor.has_line(text);
    assert!(line("web: 4321"), "uid and gid come from users/web");
    assert!(
        line("web: CapEff:\t0000000000000400"),
        "only net_bind_service"
    );
    assert!(
        line("web: CapBnd:\t0000000000000400"),
        "the bounding set too"
    );
    assert!(
        line("web: CapAmb:\t0000000000000400"),
        "kept across exec as user web"
    );
    assert!(line("web: NoNewPrivs:\t1"));
    assert!(
        !line("web: data-writable"),
        "/data is read-only but for the state"
    );
    assert!(line("Read-only file system"));
    assert!(line("web: z "), "a /tmp of its own: only z is there");
    assert!(!line("outside"));
    // A user nobody declared: the service does not start, and says why.
    supervisor.wait_for_line("nobody-user: cannot start /bin/sh: no user ghost");
    // Without the keys: root's capabilities, but no new privileges.
    supervisor.wait_for_line("plain: NoNewPrivs:\t1");
    assert!(!line("plain: CapEff:\t0000000000000000"));
    let passwd = std::fs::read_to_string(root.join("run/etc/passwd")).unwrap();
    assert!(
        passwd.contains("web:x:4321:4321:web:/data/web:/bin/false\n"),
        "{passwd}"
    );
    assert!(
        passwd.contains("root:x:0:0:root:/root:/bin/sh\n"),
        "{passwd}"
    );
    let group = std::fs::read_to_string(root.join("run/etc/group")).unwrap();
    assert!(
        group.contains("web:x:4321:\n") && group.contains("tty:x:5:\n"),
        "{group}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("data/amber/ids")).unwrap(),
        "web 4321\n"
    );
    use std::os::unix::fs::MetadataExt;
    let state = std::fs::metadata(root.join("data/web")).unwrap();
    assert_eq!(
        (state.uid(), state.gid()),
        (4321, 4321),
        "the state is the user's"
    );
    assert!(root.join("data/web/y").exists() && !root.join("data/x").exists());
    assert!(!root.join("tmp/z").exists(), "its /tmp was its own");
}
