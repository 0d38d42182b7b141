//! The end-to-end steps of a device nobody watches (issue 18), called from `e2e.rs` on
//! each board:
//!
//! - dropbear runs as its own user with only the capabilities its service file names:
//!   its `/proc/PID/status` (Uid, CapEff, CapBnd, NoNewPrivs) is printed and checked,
//!   /data is read-only to it but for its host keys, which it owns;
//! - a line written to the kernel's log and dropbear's login line, both from before a
//!   reboot, are in `svc log kernel` and `svc log dropbear` after it;
//! - init's and the store's OOM scores are -1000 and -900; `kill -9` of the store:
//!   init restarts it at once and `/bin/hello` runs again
//!   (the time from the kill is measured in the guest, with /proc/uptime), `pkg verify`
//!   passes;
//! - a service over its `memory-max` is killed by the kernel in its own cgroup and
//!   restarted by its policy, and says why;
//! - a service over its `tasks-max` cannot fork past it;
//! - memory gone for good (a service without a limit): the OOM killer takes that
//!   service, never init, the store or the console shell, and it is restarted;
//! - /data filled up with dd: `pkg add` fails with one line, the store and the
//!   generation are as before, services keep running, the log keeps its newest lines
//!   in RAM;
//! - a hung init (the test-only signal, with the test hooks on) resets the board through
//!   its watchdog, and the next boot says why it started.

use crate::board::Board;
use crate::e2e::{Report, Shell, COMMAND_TIMEOUT};
use crate::qemu::{self, Boot, Options};
use std::time::{Duration, Instant};

/// dropbear's capabilities (recipes/dropbear/files/dropbear.svc): chown, setgid, setuid,
/// net_bind_service, as /proc/PID/status prints them.
const DROPBEAR_CAPABILITIES: &str = "00000000000004c1";
/// The file that turns on init's test hooks (boot/src/init.rs).
const TEST_HOOKS: &str = "/data/etc/amber/test-hooks";
/// The test-only signal that stops init's loop (boot/src/supervisor.rs).
const HANG_SIGNAL: u32 = 40;
/// The store must be back within this long after `kill -9`.
const HEAL_GOAL: Duration = Duration::from_secs(1);

/// The first line of `text` that holds `part`, trimmed (a command's output may start
/// with what is left of a wrapped echo).
fn line_with<'a>(text: &'a str, part: &str) -> &'a str {
    text.lines()
        .find(|line| line.contains(part))
        .unwrap_or_default()
        .trim()
}

/// The pid of a unit, from `svc status NAME` (`... pid N, up ...`).
fn unit_pid(shell: &mut Shell, name: &str) -> Result<u32, String> {
    let status = shell.ok(&format!("svc status {name}"))?;
    status
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| shell.failure(&format!("no pid in `svc status {name}`:\n{status}")))
}

/// The value of a `Key:\tvalue` line of /proc/PID/status.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        line.strip_prefix(key)?
            .strip_prefix(':')
            .map(|value| value.trim())
    })
}

/// dropbear runs as user dropbear with exactly its capabilities, no new privileges,
/// /data read-only but for its state directory.
pub fn dropbear_confined(shell: &mut Shell, report: &mut Report) -> Result<(), String> {
    let pid = unit_pid(shell, "dropbear")?;
    let passwd = shell.ok("grep ^dropbear: /etc/passwd")?;
    let uid = passwd
        .trim()
        .split(':')
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    let status = shell.ok(&format!(
        "grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/{pid}/status"
    ))?;
    for line in status.lines() {
        eprintln!("      {line}");
    }
    let uid_line = status_field(&status, "Uid").unwrap_or_default();
    let checks = [
        (
            "Uid",
            uid_line.split_whitespace().all(|id| id == uid) && !uid.is_empty(),
        ),
        (
            "CapEff",
            status_field(&status, "CapEff") == Some(DROPBEAR_CAPABILITIES),
        ),
        (
            "CapBnd",
            status_field(&status, "CapBnd") == Some(DROPBEAR_CAPABILITIES),
        ),
        (
            "NoNewPrivs",
            status_field(&status, "NoNewPrivs") == Some("1"),
        ),
    ];
    for (what, good) in checks {
        if !good {
            return Err(shell.failure(&format!(
                "dropbear's {what} is not what its service file asks for (user dropbear = uid {uid}, capabilities {DROPBEAR_CAPABILITIES}):\n{status}"
            )));
        }
    }
    let mounts = shell.ok(&format!(
        "grep -E ' /data(/etc/dropbear)? ' /proc/{pid}/mountinfo"
    ))?;
    let data_read_only = mounts.lines().any(|line| {
        line.split(' ').nth(4) == Some("/data")
            && line.split(' ').nth(5).is_some_and(|o| o.starts_with("ro"))
    });
    let state_writable = mounts.lines().any(|line| {
        line.split(' ').nth(4) == Some("/data/etc/dropbear")
            && line.split(' ').nth(5).is_some_and(|o| o.starts_with("rw"))
    });
    if !data_read_only || !state_writable {
        return Err(shell.failure(&format!(
            "dropbear's mounts are not /data read-only and /data/etc/dropbear writable:\n{mounts}"
        )));
    }
    report.field.push(format!(
        "dropbear: pid {pid} Uid {uid_line}, CapEff {DROPBEAR_CAPABILITIES} (chown setgid setuid net_bind_service), CapBnd the same, NoNewPrivs 1, /data ro but /data/etc/dropbear"
    ));
    Ok(())
}

/// After a login: dropbear made its host key in its state directory, as its own user.
pub fn dropbear_state(shell: &mut Shell) -> Result<(), String> {
    let listing = shell.ok("ls -ln /data/etc/dropbear")?;
    let owned = listing
        .lines()
        .filter(|line| line.contains("_host_key"))
        .any(|line| line.split_whitespace().nth(2) == Some("22"));
    if !owned {
        return Err(shell.failure(&format!(
            "no host key owned by dropbear (22) in /data/etc/dropbear:\n{listing}"
        )));
    }
    Ok(())
}

/// A mark in the kernel's log before a reboot; [`logs_survived`] looks for it after.
pub fn mark_kernel_log(shell: &mut Shell, mark: &str) -> Result<(), String> {
    shell.ok(&format!("echo {mark} > /dev/kmsg")).map(drop)
}

/// After a reboot, the kernel's and dropbear's lines from before it are in `svc log`.
pub fn logs_survived(shell: &mut Shell, mark: &str, report: &mut Report) -> Result<(), String> {
    let kernel = shell.ok(&format!("svc log kernel | grep {mark}"))?;
    let dropbear = shell.ok("svc log dropbear | grep -E 'Pubkey auth succeeded|started'")?;
    if !kernel.contains(mark) || !dropbear.contains("Pubkey auth succeeded for 'root'") {
        return Err(shell.failure(&format!(
            "the log lost the boot before: `svc log kernel` has {kernel:?}, `svc log dropbear` has {dropbear:?}"
        )));
    }
    let size = shell.ok("svc log | wc -c; ls -l /data/log")?;
    eprintln!("    {}", size.replace('\n', "\n    "));
    report.field.push(format!(
        "logs across a reboot: svc log kernel: {}; svc log dropbear: {}",
        line_with(&kernel, mark),
        line_with(&dropbear, "Pubkey auth succeeded")
    ));
    Ok(())
}

/// `kill -9` of the store: /bin/hello runs again within [`HEAL_GOAL`], `pkg verify`
/// passes, the store counts a restart.
pub fn store_heals(shell: &mut Shell, report: &mut Report) -> Result<(), String> {
    let pid = unit_pid(shell, "store")?;
    // The OOM killer's last choices: init, then the store.
    let scores = shell.ok(&format!(
        "cat /proc/1/oom_score_adj /proc/{pid}/oom_score_adj"
    ))?;
    if scores.split_whitespace().collect::<Vec<_>>() != ["-1000", "-900"] {
        return Err(shell.failure(&format!(
            "oom_score_adj of init and the store are not -1000 and -900: {scores:?}"
        )));
    }
    // Lines stay under 80 columns (busybox's line editing on a serial console).
    shell.ok("h(){ until /bin/hello>/dev/null 2>&1;do n=$((n+1));[ $n -lt 9999 ]||break;done;}")?;
    // The shell reads the uptime itself: a `cut` started from the new mount would add
    // its own first start (busybox paged in through the new store) to the time.
    shell.ok("r(){ read \"$1\" _ </proc/uptime; }")?;
    let timed = shell.ok(&format!(
        "n=0; r a; kill -9 {pid}; h; r b; echo healed $a $b $n"
    ))?;
    let hello = shell.ok("/bin/hello")?;
    let numbers: Vec<f64> = timed
        .lines()
        .filter_map(|line| line.trim().strip_prefix("healed "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|word| word.parse().ok())
                .collect::<Vec<f64>>()
        })
        .find(|numbers| numbers.len() == 3)
        .unwrap_or_default();
    let [start, end, tries] = numbers[..] else {
        return Err(shell.failure(&format!("no times from the store kill: {timed:?}")));
    };
    let healed = Duration::from_secs_f64((end - start).max(0.0));
    if !hello.contains("Hello from amber!") || tries >= 9999.0 {
        return Err(shell.failure(&format!(
            "/bin/hello did not run again after the store was killed ({tries} tries)"
        )));
    }
    let status = shell.ok("svc status store")?;
    if !status.contains("restarts") {
        return Err(shell.failure(&format!("the store shows no restart:\n{status}")));
    }
    shell.ok("pkg verify")?;
    let verdict = if healed <= HEAL_GOAL { "met" } else { "missed" };
    report.field.push(format!(
        "store killed (SIGKILL): /bin/hello ran again {} ms later, after {tries} failed tries (goal ≤ {} ms: {verdict}), pkg verify passed; {}; oom_score_adj init -1000, store -900",
        healed.as_millis(),
        HEAL_GOAL.as_millis(),
        line_with(&status, "store ")
    ));
    if healed > HEAL_GOAL * 3 {
        return Err(shell.failure(&format!(
            "the store took {} ms to come back",
            healed.as_millis()
        )));
    }
    Ok(())
}

/// A service over its memory-max is killed in its cgroup and restarted by its policy.
pub fn memory_max_restarts(shell: &mut Shell, report: &mut Report) -> Result<(), String> {
    shell.ok("echo \"command /bin/sh -c 'x=\\$(yes | head -c 40000000)'\" > /tmp/hog")?;
    shell.ok("echo 'memory-max 8M' >> /tmp/hog; cat /tmp/hog")?;
    shell.ok("mv /tmp/hog /etc/amber/svc/hog && svc rescan")?;
    shell.ok(
        "n=0; until svc status hog | grep -q restarts; do sleep 1; n=$((n+1)); [ $n -lt 90 ] || break; done",
    )?;
    let status = shell.ok("svc status hog")?;
    let log = shell.ok("svc log hog | grep memory-max")?;
    shell.ok("rm /etc/amber/svc/hog && svc rescan")?;
    if !status.contains("restarts") || !log.contains("over its memory-max of 8192 KiB") {
        return Err(shell.failure(&format!(
            "the service over its memory-max was not restarted for it:\n{status}\n{log}"
        )));
    }
    let store = shell.ok("svc status store")?;
    report.field.push(format!(
        "memory-max 8M: {}; init and the store untouched ({})",
        line_with(&log, "memory-max"),
        line_with(&store, "store ")
    ));
    Ok(())
}

/// A service over its `tasks-max` cannot fork past it (pids.max in its cgroup), and
/// what it started is killed with it when it exits.
pub fn tasks_max_holds(shell: &mut Shell, report: &mut Report) -> Result<(), String> {
    shell.ok(
        "echo \"command /bin/sh -c 'for i in 1 2 3 4 5 6; do sleep 60 & done; wait'\" > /tmp/t",
    )?;
    shell.ok("echo 'tasks-max 4' >> /tmp/t; mv /tmp/t /etc/amber/svc/fork && svc rescan")?;
    shell.ok(
        "n=0; until svc status fork | grep -q restarts; do sleep 1; n=$((n+1)); [ $n -lt 90 ] || break; done",
    )?;
    // Each line marked, so a wrapped echo of the command is not taken for the output.
    let cgroup: String = shell
        .ok("c=/sys/fs/cgroup/services/fork; cat $c/pids.max $c/pids.events | sed 's/^/cg: /'")?
        .lines()
        .filter_map(|line| line.trim().strip_prefix("cg: "))
        .map(|line| format!("{line}\n"))
        .collect();
    let log = shell.ok("svc log fork | grep -m1 \"can't fork\" || true")?;
    shell.ok("rm /etc/amber/svc/fork && svc rescan")?;
    let refused = cgroup
        .lines()
        .find_map(|line| line.trim().strip_prefix("max "))
        .and_then(|count| count.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if cgroup.lines().next().map(str::trim) != Some("4") || refused == 0 || log.is_empty() {
        return Err(shell.failure(&format!(
            "tasks-max 4 did not hold: pids.max and pids.events {cgroup:?}, log {log:?}"
        )));
    }
    report.field.push(format!(
        "tasks-max 4: pids.max 4, {refused} forks refused by the pids controller, {}",
        line_with(&log, "can't fork")
    ));
    Ok(())
}

/// With /data full, `pkg add` fails with one line and nothing is lost.
pub fn disk_full(shell: &mut Shell, report: &mut Report) -> Result<(), String> {
    let before = shell.ok("pkg list")?;
    let (status, output) = shell.command(
        "dd if=/dev/zero of=/data/fill bs=1M",
        Duration::from_secs(600),
    )?;
    if status == 0 || !output.contains("No space left") {
        return Err(shell.failure(&format!("dd did not fill /data (exit {status}):\n{output}")));
    }
    let df = shell.ok("df /data | tail -1")?;
    let (status, output) = shell.command("pkg add rsh", COMMAND_TIMEOUT)?;
    // The download's progress line (a terminal's, redrawn in place) is not an error line.
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("fetching "))
        .collect();
    if status != 1 || lines.len() != 1 || !lines[0].starts_with("pkg: ") {
        return Err(shell.failure(&format!(
            "`pkg add` on a full /data: exit {status}, not one error line:\n{output}"
        )));
    }
    // The log fills past its batch size and cannot be written: its newest lines stay.
    shell.ok("for i in $(seq 300); do echo e2e-full-$i > /dev/kmsg; done")?;
    let newest = shell.ok("svc log kernel -n 1")?;
    let services = shell.ok("svc status")?;
    shell.ok("pkg verify")?;
    let after = shell.ok("pkg list")?;
    let running = services
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("network"))
        .all(|line| line.contains("running") || line.contains(" up "));
    if after != before || !newest.contains("e2e-full-300") || !running {
        return Err(shell.failure(&format!(
            "after the full disk: pkg list {after:?} (before {before:?}), newest log line {newest:?}, services:\n{services}"
        )));
    }
    let said = shell.ok("svc log amber | grep -c 'log: ' || true")?;
    shell.ok("rm /data/fill && sync")?;
    shell.ok("pkg verify")?;
    report.field.push(format!(
        "/data full ({}): `pkg add rsh` → {} (exit 1); pkg verify passed, pkg list unchanged, every service running, the newest log line in RAM ({} lines of the log about its own writes)",
        df.split_whitespace().nth(4).unwrap_or("?"),
        lines[0].trim(),
        said.trim()
    ));
    Ok(())
}

/// A hung init resets the board through its watchdog; the next boot says why.
pub fn watchdog_resets_a_hang(
    board: &Board,
    boot: &Boot,
    options: &Options,
    report: &mut Report,
) -> Result<(), String> {
    let mut shell = Shell::boot(board, boot, options, report)?;
    shell.ok(&format!("mkdir -p /data/etc/amber && touch {TEST_HOOKS}"))?;
    shell.shut_down("poweroff")?;
    // This boot may reset and come back: qemu must not end at the reset.
    let options = Options {
        reboot: true,
        ..options.clone()
    };
    let mut shell = Shell::boot(board, boot, &options, report)?;
    shell.ok("svc log amber | grep 'test hooks on'")?;
    let watchdog = shell.ok("svc log amber | grep 'watchdog: '")?;
    eprintln!(
        "    {PROMPT}kill -{HANG_SIGNAL} 1",
        PROMPT = crate::e2e::PROMPT
    );
    shell.guest.send(&format!("kill -{HANG_SIGNAL} 1\n"))?;
    let hung = Instant::now();
    shell
        .guest
        .expect("the supervisor loop stops here", Duration::from_secs(30))?;
    shell
        .guest
        .expect(qemu::HANDOVER, Duration::from_secs(240))?;
    let reset_after = hung.elapsed();
    // `amber: boot: after ...`; the boot partition's line (`amber: boot: /dev/sda1
    // mounted at /boot`) comes first.
    shell
        .guest
        .expect("amber: boot: after ", Duration::from_secs(120))?;
    let reason = shell.guest.until("\n", Duration::from_secs(10))?;
    let reason = format!("after {}", reason.trim());
    let mut shell = shell.resync(report)?;
    shell.ok(&format!("rm {TEST_HOOKS}"))?;
    let last_words = shell.ok("svc log kernel | grep -c 'boot before' || true")?;
    shell.shut_down("poweroff")?;
    if reason != "after a watchdog reset" {
        return Err(format!(
            "{}: after the hang the boot says `{reason}`, not `after a watchdog reset`",
            board.name
        ));
    }
    report.field.push(format!(
        "hung init (signal {HANG_SIGNAL}): {}; the board reset {:.1}s later and said `amber: boot: {reason}` ({} lines of the kernel's last words in the log)",
        line_with(&watchdog, "watchdog: ")
            .split("amber notice: ")
            .last()
            .unwrap_or_default(),
        reset_after.as_secs_f64(),
        last_words.trim()
    ));
    Ok(())
}
