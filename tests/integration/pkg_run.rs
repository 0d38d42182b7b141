//! `pkg run` without root: as an unprivileged user, with no store mounted, it fetches a
//! package the store lacks over HTTP, shows exactly the closure, runs the command with
//! its exit code, changes no generation, and leases the fetched image while the command
//! runs, so `gc` keeps it until the command is done.
//!
//! The tests run as root (to hand the store to the user), and the user is nobody
//! (65534) through `setpriv`. A kernel that lets no user make a user namespace skips
//! them, by amber-testkit's rule (a failure under CI).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use amber_testkit::http::Server;
use amber_tests::fixture::{future, Device, Repo};
use amber_tests::{pkg_binary, run, run_ok, TempDir};

const NOBODY: &str = "65534";

/// Whether the test can run here: root, to give the store away, and setpriv.
fn can_run() -> bool {
    amber_testkit::require_root("handing a store to an unprivileged user")
        && amber_testkit::require_tool("setpriv", "util-linux")
}

/// `pkg --root ROOT ARGS` as nobody.
fn as_nobody(device: &Device, args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        "--",
    ]);
    command.arg(pkg_binary());
    command.arg("--root").arg(&device.root).args(args);
    command.env("AMBER_ARCH", amber_tests::fixture::ARCH);
    command
}

/// Skips the test (amber-testkit's rule) when `output` says the kernel refused.
fn refused_by_the_kernel(output: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("lets no user make a user namespace") {
        amber_testkit::skip(&format!("user namespaces are off here: {}", stderr.trim()));
        return true;
    }
    false
}

/// Make every file of `dir` nobody's, and the directories above it enterable.
fn give_to_nobody(dir: &Path) {
    run_ok(
        Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(dir),
    );
}

#[test]
fn run_without_root_fetches_what_the_store_lacks() {
    if !can_run() {
        return;
    }
    let temp = TempDir::new("pkg-run-user");
    let repo = Repo::new(&temp, "repo");
    repo.program("lib", "1.0-r0", &[]);
    repo.program("greet", "1.0-r0", &["--dep", "lib"]);
    repo.program("other", "1.0-r0", &[]);
    repo.index(1, future());
    let server = Server::start(&repo.dir);
    let device = Device::new(&temp, "device");
    device.trust(&repo, &server.url());
    device.ok(&["update"]);
    device.ok(&["add", "other"]);
    give_to_nobody(&device.root);
    let generation = device.current();

    // greet and lib are not in the store: fetched, verified, shown, run.
    let output = run(as_nobody(
        &device,
        &[
            "run",
            "-p",
            "greet",
            "--",
            "sh",
            "-c",
            "greet; ls \"$(dirname \"$(command -v greet)\")\"; id -u",
        ],
    )
    .stdin(Stdio::null()));
    if refused_by_the_kernel(&output) {
        return;
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Exactly the closure in bin (other is installed but not asked for), and the
    // command runs as the user, not as root in its namespace.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("greet-1.0-r0\ngreet\nlib\n{NOBODY}\n"),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let images = device.image_names();
    assert!(
        images.contains(&"greet-1.0-r0.squashfs".to_owned()),
        "{images:?}"
    );
    assert!(
        images.contains(&"lib-1.0-r0.squashfs".to_owned()),
        "{images:?}"
    );
    // Into the store, not into the world.
    assert_eq!(device.current(), generation);
    assert_eq!(device.installed(), ["other-1.0-r0"]);
    assert!(device.problems().is_empty(), "{:?}", device.problems());

    // The exit code is the command's; a package nobody has is one clear line.
    let output = run(&mut as_nobody(
        &device,
        &["run", "-p", "greet", "--", "sh", "-c", "exit 3"],
    ));
    assert_eq!(output.status.code(), Some(3));
    let output = run(&mut as_nobody(
        &device,
        &["run", "-p", "nosuch", "--", "true"],
    ));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "pkg: nothing provides nosuch (requested)\n"
    );

    // While a command runs, its lease keeps gc from the images; after, gc takes them.
    let marker = temp.join("started");
    let script = format!("touch {}; sleep 3", marker.display());
    give_to_nobody(temp.path());
    let mut running = as_nobody(&device, &["run", "-p", "greet", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists(), "the command never started");
    device.ok(&["gc", "--keep", "1"]);
    assert!(device
        .image_names()
        .contains(&"greet-1.0-r0.squashfs".to_owned()));
    assert!(running.wait().unwrap().success());
    let output = device.ok(&["gc", "--keep", "1"]);
    assert!(
        output.starts_with("removed 0 generations and 2 images"),
        "{output}"
    );
    assert_eq!(device.image_names(), ["other-1.0-r0.squashfs"]);
}
