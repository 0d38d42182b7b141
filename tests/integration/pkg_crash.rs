//! SECURITY-TESTS.md item 22: `pkg` killed at every failpoint of `add`, `del`,
//! `upgrade`, `gc`, `update` and `rollback` (`AMBER_FAILPOINT=N` aborts at the N-th, as
//! SIGKILL or a power cut would). After each kill the store must hold the old or the new
//! generation, whole; the next command must clean up; running the command again must
//! reach the new state.

use std::collections::BTreeMap;

use amber_testkit::http::Server;
use amber_tests::fixture::{future, Device, Repo};
use amber_tests::TempDir;

/// More failpoints than any of these commands passes; a loop reaching it is a bug.
const MAX_POINTS: u64 = 200;

/// One command to crash, on copies of `base`.
struct Case<'a> {
    name: &'a str,
    base: &'a Device,
    args: &'a [&'a str],
    /// What `pkg list` shows before and after the command.
    old: Vec<String>,
    new: Vec<String>,
    /// Further checks of the finished state.
    check_new: &'a dyn Fn(&Device),
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Check a store the way the next command sees it: no broken generation or stray image,
/// the old or the new package set, temporary files gone after one command, and pkg's
/// own verify passing.
fn check_whole(device: &Device, case: &Case<'_>, when: &str) {
    let problems = device.problems();
    assert!(problems.is_empty(), "{}: {when}: {problems:?}", case.name);
    let installed = device.installed();
    assert!(
        installed == case.old || installed == case.new,
        "{}: {when}: neither old nor new: {installed:?}",
        case.name
    );
    assert_eq!(
        device.temp_files(),
        Vec::<String>::new(),
        "{}: {when}: temporary files after `pkg list`",
        case.name
    );
    device.ok(&["verify"]);
    device.ok(&["search", ""]);
}

/// Kill the command at failpoint 1, 2, 3, ... until it runs to the end; returns the
/// names of the failpoints it was killed at.
fn crash_every_step(temp: &TempDir, case: &Case<'_>) -> Vec<String> {
    let mut killed_at = Vec::new();
    for n in 1..=MAX_POINTS {
        let device = case.base.copy_as(temp, &format!("{}-{n}", case.name));
        let mut command = device.command(case.args);
        // abort() may dump core: let it land in the test's directory, if anywhere.
        command
            .env("AMBER_FAILPOINT", n.to_string())
            .current_dir(temp.path());
        let output = amber_tests::run(&mut command);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            assert!(n > 1, "{}: passed no failpoint at all", case.name);
            assert_eq!(
                device.installed(),
                case.new,
                "{}: uninterrupted run",
                case.name
            );
            (case.check_new)(&device);
            let _ = std::fs::remove_dir_all(&device.root);
            return killed_at;
        }
        let marker = format!("pkg: failpoint {n} (");
        assert!(
            output.status.code().is_none() && stderr.contains(&marker),
            "{}: failpoint {n}: not killed there but exited with {}: {stderr}",
            case.name,
            output.status
        );
        let name = stderr
            .split(&marker)
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or("?")
            .to_owned();
        let when = format!("killed at failpoint {n} ({name})");
        check_whole(&device, case, &when);
        // Unless the switch already happened, running the command again finishes it.
        if device.installed() != case.new || case.old == case.new {
            device.ok(case.args);
        }
        assert_eq!(
            device.installed(),
            case.new,
            "{}: {when}, then run again",
            case.name
        );
        (case.check_new)(&device);
        check_whole(&device, case, &format!("{when}, then run again"));
        killed_at.push(name);
        let _ = std::fs::remove_dir_all(&device.root);
    }
    panic!("{}: still killed after {MAX_POINTS} failpoints", case.name);
}

#[test]
fn killed_at_every_failpoint_the_store_keeps_the_old_or_the_new_generation_whole() {
    let temp = TempDir::new("crash");
    let repo = Repo::new(&temp, "repo");
    for (name, deps) in [
        ("lib", &[][..]),
        ("a", &["lib"][..]),
        ("b", &[]),
        ("c", &[]),
        ("d", &["lib"]),
        ("f", &[]),
    ] {
        repo.simple(name, "1.0-r0", deps);
    }
    repo.index(1, future());
    let server = Server::start(&repo.dir);
    let fresh = |name: &str| {
        let device = Device::new(&temp, name);
        device.trust(&repo, &server.url());
        device.ok(&["update"]);
        device
    };

    // Stores made while index 1 is published.
    let before_update = fresh("base-update");
    before_update.ok(&["add", "a"]);
    let before_upgrade = fresh("base-upgrade");
    before_upgrade.ok(&["add", "a", "b", "c", "d"]);
    let before_gc = fresh("base-gc");
    for args in [
        &["add", "a"][..],
        &["add", "b"],
        &["del", "a"],
        &["add", "c"],
        &["add", "f"],
        &["del", "b"],
    ] {
        before_gc.ok(args);
    }
    assert_eq!(before_gc.current(), Some(6));

    // Index 2: new versions and a new package.
    for (name, version, deps) in [
        ("lib", "1.1-r0", &[][..]),
        ("a", "1.1-r0", &["lib>=1.1"][..]),
        ("b", "1.1-r0", &[]),
        ("c", "1.1-r0", &[]),
        ("e", "1.0-r0", &[]),
    ] {
        repo.simple(name, version, deps);
    }
    repo.index(2, future());
    before_upgrade.ok(&["update"]);
    let before_add = fresh("base-add");
    let before_del = fresh("base-del");
    before_del.ok(&["add", "a", "b", "c", "e"]);
    let before_rollback = fresh("base-rollback");
    before_rollback.ok(&["add", "a", "b", "c", "e"]);
    before_rollback.ok(&["del", "a", "b"]);

    let url = server.url();
    let serial_2 = move |device: &Device| {
        let serials = std::fs::read_to_string(device.root.join("state/serials")).unwrap();
        assert_eq!(serials, format!("{url} 2\n"));
        assert_eq!(device.ok(&["search", "e"]), "e-1.0-r0\n");
    };
    let nothing = |_: &Device| {};
    let gc_done = |device: &Device| {
        assert_eq!(
            device.image_names(),
            ["c-1.0-r0.squashfs", "f-1.0-r0.squashfs"]
        );
        let generations: Vec<_> = std::fs::read_dir(device.root.join("state/generations"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(generations, ["6"]);
    };
    let cases = [
        Case {
            name: "update",
            base: &before_update,
            args: &["update"],
            old: ids(&["a-1.0-r0", "lib-1.0-r0"]),
            new: ids(&["a-1.0-r0", "lib-1.0-r0"]),
            check_new: &serial_2,
        },
        Case {
            name: "add",
            base: &before_add,
            args: &["add", "a", "b", "c", "d", "e"],
            old: Vec::new(),
            new: ids(&[
                "a-1.1-r0",
                "b-1.1-r0",
                "c-1.1-r0",
                "d-1.0-r0",
                "e-1.0-r0",
                "lib-1.1-r0",
            ]),
            check_new: &nothing,
        },
        Case {
            name: "del",
            base: &before_del,
            args: &["del", "a", "b"],
            old: ids(&["a-1.1-r0", "b-1.1-r0", "c-1.1-r0", "e-1.0-r0", "lib-1.1-r0"]),
            new: ids(&["c-1.1-r0", "e-1.0-r0"]),
            check_new: &nothing,
        },
        Case {
            name: "upgrade",
            base: &before_upgrade,
            args: &["upgrade"],
            old: ids(&["a-1.0-r0", "b-1.0-r0", "c-1.0-r0", "d-1.0-r0", "lib-1.0-r0"]),
            new: ids(&["a-1.1-r0", "b-1.1-r0", "c-1.1-r0", "d-1.0-r0", "lib-1.1-r0"]),
            check_new: &nothing,
        },
        Case {
            name: "gc",
            base: &before_gc,
            args: &["gc", "--keep", "1"],
            old: ids(&["c-1.0-r0", "f-1.0-r0"]),
            new: ids(&["c-1.0-r0", "f-1.0-r0"]),
            check_new: &gc_done,
        },
        Case {
            name: "rollback",
            base: &before_rollback,
            args: &["rollback"],
            old: ids(&["c-1.1-r0", "e-1.0-r0"]),
            new: ids(&["a-1.1-r0", "b-1.1-r0", "c-1.1-r0", "e-1.0-r0", "lib-1.1-r0"]),
            check_new: &nothing,
        },
    ];
    let mut total = 0;
    let mut counts = BTreeMap::new();
    let mut summary = Vec::new();
    for case in &cases {
        let killed_at = crash_every_step(&temp, case);
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        for name in &killed_at {
            *by_name.entry(name).or_default() += 1;
        }
        total += killed_at.len();
        counts.insert(case.name, killed_at.len());
        summary.push(format!("{}: {} ({by_name:?})", case.name, killed_at.len()));
    }
    println!("crash test: {total} kill points; {}", summary.join("; "));
    // Each command passes the failpoints its steps promise: two per download (written,
    // renamed) and one for all of them (the filesystem flushed before the renames), three
    // per commit (generation file, its name, `current`), one per removal by gc, four per
    // accepted index (cache, url, cache written, serial).
    let expected = BTreeMap::from([
        ("update", 4),
        ("add", 6 * 2 + 1 + 3),
        ("del", 3),
        ("upgrade", 4 * 2 + 1 + 3),
        ("gc", 5 + 3),
        ("rollback", 1),
    ]);
    assert_eq!(counts, expected, "{}", summary.join("; "));
}
