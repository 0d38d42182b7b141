//! The FUSE store through the real `pkg` binary: `pkg store mount` on a temporary
//! directory, trees read back byte for byte, exchange directories, generations switching
//! under a mounted store, conflicts, and `pkg run`. The helpers here ([`Mounted`],
//! [`can_mount`], [`pack`]) serve the other `store_*` modules too.
//!
//! Mounting needs root and /dev/fuse; without them each test says so and passes. Every
//! mount is held by a [`Mounted`] guard that unmounts it when dropped, so a failing test
//! leaves no mount behind.

use std::fs::{self, File};
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amber_tests::fixture::{future, noise, Device, Repo, ARCH};
use amber_tests::{pkg_binary, run_ok, TempDir};

pub const EIO: i32 = 5;
pub const ENOTCONN: i32 = 107;

/// Whether this process may mount FUSE filesystems (root and /dev/fuse); when not, the
/// test is skipped (a failure under CI, see amber-testkit).
pub fn can_mount() -> bool {
    amber_testkit::require_root("a FUSE mount")
        && amber_testkit::require(Path::new("/dev/fuse").exists(), "/dev/fuse is missing")
}

/// A store mounted with `pkg store mount`. Dropping it unmounts (`umount -l`) and makes
/// sure the daemon is gone, killing it if it lingers.
pub struct Mounted {
    pub dir: PathBuf,
    /// The daemon's pid, as `pkg store mount` reported it.
    pub pid: u32,
    log: PathBuf,
}

impl Mounted {
    /// Mount `device`'s store on `dir` (created if missing) with extra `options` such as
    /// `--max-open 32`. The daemon's stderr goes to `dir.log`, shown when a check fails.
    pub fn start(device: &Device, dir: &Path, options: &[&str]) -> Mounted {
        fs::create_dir_all(dir).unwrap();
        let log = dir.with_extension("log");
        let mut command = device.command(&["store", "mount", dir.to_str().unwrap()]);
        command.args(options);
        // The daemon inherits stderr: a pipe would keep `output()` waiting for it.
        command
            .stdin(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let output = command.output().expect("run pkg store mount");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let pid = stdout
            .rsplit_once("(pid ")
            .and_then(|(_, rest)| rest.trim_end().strip_suffix(')'))
            .and_then(|pid| pid.parse().ok());
        let mounted = Mounted {
            dir: dir.to_path_buf(),
            pid: pid.unwrap_or(0),
            log,
        };
        assert!(
            output.status.success() && pid.is_some(),
            "pkg store mount failed ({}): {stdout}\n{}",
            output.status,
            mounted.log()
        );
        mounted
    }

    /// A path below the mount point.
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        self.dir.join(path)
    }

    /// What the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the daemon still runs.
    pub fn alive(&self) -> bool {
        alive(self.pid)
    }

    /// The image files the daemon holds open now.
    pub fn open_images(&self) -> usize {
        open_images(self.pid)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.alive() {
            let _ = Command::new("kill")
                .args(["-9", &self.pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether process `pid` runs. A zombie counts as gone once it is its only thread: a
/// thread group leader shows as a zombie while its other threads still exit, holding
/// the process's files (the store's /dev/fuse among them).
pub fn alive(pid: u32) -> bool {
    pid != 0
        && fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
            let zombie = status.lines().any(|l| l.starts_with("State:\tZ"));
            let threads = status.lines().find_map(|l| l.strip_prefix("Threads:"));
            !zombie || threads.is_some_and(|n| n.trim() != "1")
        })
}

/// How many of process `pid`'s open files are package images.
pub fn open_images(pid: u32) -> usize {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| fs::read_link(entry.path()).ok())
        .filter(|target| target.to_string_lossy().ends_with(".squashfs"))
        .count()
}

/// Pack directory `tree` with `pkg pack` into `output`.
pub fn pack(tree: &Path, output: &Path, name: &str, version: &str, deps: &[&str]) {
    let mut command = Command::new(pkg_binary());
    command.arg("pack").arg(tree).arg("-o").arg(output);
    command.args(["--name", name, "--version", version, "--arch", ARCH]);
    for dep in deps {
        command.args(["--dep", dep]);
    }
    run_ok(&mut command);
}

/// A device trusting `repo`, read from its directory through a `file://` URL, updated.
pub fn device_for(temp: &TempDir, name: &str, repo: &Repo) -> Device {
    let device = Device::new(temp, name);
    device.trust(repo, &format!("file://{}", repo.dir.display()));
    device.ok(&["update"]);
    device
}

/// The raw OS error of an I/O result, or `None` when it succeeded.
pub fn errno<T>(result: std::io::Result<T>) -> Option<i32> {
    result.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

/// The names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A link's target joined to its directory and normalized without touching the disk.
pub fn lexical_target(link: &Path, target: &Path) -> PathBuf {
    let mut resolved = if target.is_absolute() {
        PathBuf::from("/")
    } else {
        link.parent().unwrap().to_path_buf()
    };
    for component in target.components() {
        match component {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(part) => resolved.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    resolved
}

/// Every symlink below `dir`, walking real directories only (links are not followed).
pub fn links_below(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            out.push(path);
        } else if meta.is_dir() {
            links_below(&path, out);
        }
    }
}

// The tree read back byte for byte.

/// A tree with every kind of content the store must serve: many small files, a big
/// file of several blocks plus a tail, blocks of exactly the block size, empty files,
/// symlinks (relative, absolute, dangling, climbing), a deep path, a directory of 1,200
/// entries, odd modes, and names with spaces and UTF-8.
fn rich_tree(dir: &Path) {
    let write = |path: &str, bytes: &[u8], mode: u32| {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    write("bin/rich", b"#!/bin/sh\necho rich\n", 0o755);
    write("bin/empty", b"", 0o755);
    write("share/man/man1/rich.1", b".TH RICH 1\n", 0o644);
    write("etc/rich.conf", b"key = value\n", 0o600);
    for i in 0..300u64 {
        let bytes = match i % 4 {
            0 => noise((i * 37 % 5000) as usize, i),
            1 => format!("line {i}\n").repeat(i as usize).into_bytes(),
            2 => Vec::new(),
            _ => noise(9000 + i as usize, i),
        };
        write(&format!("data/small/f{i:03}"), &bytes, 0o644);
    }
    let mut big = noise(3 * 131072, 7);
    big.extend(std::iter::repeat_n(0u8, 2 * 131072));
    big.extend(noise(1000, 8));
    write("data/big", &big, 0o644);
    write("data/exact", &b"0123456789abcdef".repeat(8192), 0o644);
    write("data/plus-one", &noise(131073, 9), 0o444);
    write("data/setuid", b"not really a program", 0o4755);
    write("data/with space and ünïcode", b"name test\n", 0o640);
    let mut deep = String::from("data/deep");
    for level in 0..40 {
        deep.push_str(&format!("/d{level}"));
    }
    write(&format!("{deep}/leaf"), b"deep leaf\n", 0o644);
    for i in 0..1200 {
        write(
            &format!("data/wide/entry-{i:04}"),
            format!("{i}\n").as_bytes(),
            0o644,
        );
    }
    fs::create_dir_all(dir.join("data/empty-dir")).unwrap();
    fs::create_dir_all(dir.join("data/private")).unwrap();
    fs::set_permissions(dir.join("data/private"), fs::Permissions::from_mode(0o700)).unwrap();
    write("data/private/secret", b"secret\n", 0o600);
    symlink("rich", dir.join("bin/rich-link")).unwrap();
    symlink("/etc/passwd", dir.join("data/absolute")).unwrap();
    symlink("../../..", dir.join("data/climbing")).unwrap();
    symlink("does/not/exist", dir.join("data/dangling")).unwrap();
    symlink("small/f003", dir.join("data/to-small")).unwrap();
}

/// Compare the tree at `mounted` with the source tree at `source`: the same names, and
/// for each the same type, permission bits, size, symlink target and contents; owner,
/// group and time are 0 as `pkg pack` stores them. Returns the number of entries seen.
/// At the `top`, the image's `.pkg` directory is left out.
fn compare_trees(source: &Path, mounted: &Path, top: bool) -> usize {
    let expected = names(source);
    let mut found = names(mounted);
    if top {
        found.retain(|name| name != ".pkg");
    }
    assert_eq!(found, expected, "listing of {}", mounted.display());
    let mut seen = 0;
    for name in expected {
        let (from, to) = (source.join(&name), mounted.join(&name));
        let want = fs::symlink_metadata(&from).unwrap();
        let have = fs::symlink_metadata(&to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
        let what = to.display();
        assert_eq!(have.file_type(), want.file_type(), "{what}");
        assert_eq!(have.mode() & 0o7777, want.mode() & 0o7777, "{what}");
        assert_eq!((have.uid(), have.gid(), have.mtime()), (0, 0, 0), "{what}");
        seen += 1;
        if want.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&to).unwrap(),
                fs::read_link(&from).unwrap(),
                "{what}"
            );
            assert_eq!(have.len(), want.len(), "{what}");
        } else if want.is_dir() {
            seen += compare_trees(&from, &to, false);
        } else {
            assert_eq!(have.len(), want.len(), "{what}");
            let (a, b) = (fs::read(&to).unwrap(), fs::read(&from).unwrap());
            assert!(a == b, "{what}: contents differ");
        }
    }
    seen
}

#[test]
fn store_serves_packed_trees_byte_for_byte() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-bytes");
    let tree = temp.join("trees/rich");
    rich_tree(&tree);
    let image = temp.join("rich-1.0-r0.squashfs");
    pack(&tree, &image, "rich", "1.0-r0", &[]);
    let device = Device::new(&temp, "device");
    device.ok(&["add", "--allow-untrusted", image.to_str().unwrap()]);
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);

    let root = store.join("rich-1.0-r0");
    let seen = compare_trees(&tree, &root, true);
    assert!(seen > 1500, "only {seen} entries compared");
    assert_eq!(names(&root.join("data/wide")).len(), 1200);
    assert_eq!(
        fs::read_to_string(root.join(".pkg/meta"))
            .unwrap()
            .lines()
            .next(),
        Some("name rich")
    );
    // The image root is always 0755, whatever the source directory's mode was.
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o7777, 0o755);

    // Reads at odd offsets and lengths, across block boundaries and into the tail,
    // through a descriptor opened once.
    let big = fs::read(tree.join("data/big")).unwrap();
    let file = File::open(root.join("data/big")).unwrap();
    for (offset, len) in [
        (0usize, 1usize),
        (1, 4095),
        (131071, 2),
        (131072 * 2 - 10, 131072 + 20),
        (131072 * 4 + 99, 70000),
        (big.len() - 1000, 1000),
        (big.len() - 3, 100),
        (big.len(), 10),
    ] {
        let mut buffer = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = file
                .read_at(&mut buffer[done..], (offset + done) as u64)
                .unwrap();
            if n == 0 {
                break;
            }
            done += n;
        }
        let end = (offset + len).min(big.len());
        assert_eq!(done, end - offset, "read at {offset}+{len}");
        assert!(
            buffer[..done] == big[offset..end],
            "bytes at {offset}+{len}"
        );
    }

    // Nothing can be written.
    let error = fs::OpenOptions::new()
        .write(true)
        .open(root.join("bin/rich"))
        .unwrap_err();
    assert!(
        matches!(error.raw_os_error(), Some(30) | Some(13)),
        "opening for writing: {error}"
    );
    assert!(fs::write(store.join("new-file"), b"x").is_err());
    assert!(store.alive(), "{}", store.log());
}

#[test]
fn store_exchange_links_resolve_into_packages() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-exchange");
    let repo = Repo::new(&temp, "repo");
    repo.package(
        "tool",
        "1.0-r0",
        &[],
        &[
            ("bin/tool", b"tool binary\n"),
            ("sbin/toold", b"tool daemon\n"),
            ("lib/libtool.so.1", b"tool library\n"),
            ("share/man/man1/tool.1", b".TH TOOL 1\n"),
            ("share/doc/tool/README", b"tool readme\n"),
            ("etc/tool.conf", b"tool = 1\n"),
            ("include/tool.h", b"int tool(void);\n"),
            ("svc/tool", b"run /ro/bin/tool\n"),
            ("other/not-exchanged", b"x\n"),
        ],
    );
    repo.package(
        "other",
        "2.0-r0",
        &[],
        &[
            ("bin/other", b"other binary\n"),
            ("share/man/man1/other.1", b".TH OTHER 1\n"),
            ("share/man/man5/other.conf.5", b".TH OTHER.CONF 5\n"),
        ],
    );
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    device.ok(&["add", "tool", "other"]);
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);

    assert_eq!(
        names(&store.dir),
        [
            "bin",
            "etc",
            "include",
            "lib",
            "other-2.0-r0",
            "sbin",
            "share",
            "svc",
            "tool-1.0-r0"
        ]
    );
    let (tool, other) = ("tool-1.0-r0", "other-2.0-r0");
    for (path, owner, contents) in [
        ("bin/tool", tool, "tool binary\n"),
        ("bin/other", other, "other binary\n"),
        ("sbin/toold", tool, "tool daemon\n"),
        ("lib/libtool.so.1", tool, "tool library\n"),
        ("share/man/man1/tool.1", tool, ".TH TOOL 1\n"),
        ("share/man/man1/other.1", other, ".TH OTHER 1\n"),
        ("share/man/man5/other.conf.5", other, ".TH OTHER.CONF 5\n"),
        ("share/doc/tool/README", tool, "tool readme\n"),
        ("etc/tool.conf", tool, "tool = 1\n"),
        ("include/tool.h", tool, "int tool(void);\n"),
        ("svc/tool", tool, "run /ro/bin/tool\n"),
    ] {
        let link = store.join(path);
        assert_eq!(fs::read_to_string(&link).unwrap(), contents, "{path}");
        let meta = fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "{path}");
        let target = fs::read_link(&link).unwrap();
        assert_eq!(meta.len(), target.as_os_str().len() as u64, "{path}");
        // Relative, up to the store root and down into the package.
        let depth = path.matches('/').count();
        assert_eq!(
            target,
            PathBuf::from(format!("{}{owner}/{path}", "../".repeat(depth))),
            "{path}"
        );
    }
    // Directories of several packages merge; only exchange directories are exchanged.
    assert_eq!(names(&store.join("share/man")), ["man1", "man5"]);
    assert_eq!(names(&store.join("share/man/man1")), ["other.1", "tool.1"]);
    assert_eq!(names(&store.join("bin")), ["other", "tool"]);
    assert!(fs::symlink_metadata(store.join("other")).is_err());
    for dir in ["bin", "share", "share/man", "share/man/man1"] {
        let meta = fs::metadata(store.join(dir)).unwrap();
        assert!(meta.is_dir() && meta.mode() & 0o7777 == 0o755, "{dir}");
    }
    // A nested path resolved in one call, as a program would.
    let nested = fs::canonicalize(store.join("share/man/man5/other.conf.5")).unwrap();
    assert_eq!(
        nested,
        fs::canonicalize(&store.dir)
            .unwrap()
            .join("other-2.0-r0/share/man/man5/other.conf.5")
    );
}

#[test]
fn store_shows_add_del_upgrade_rollback_before_pkg_returns() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-switch");
    let repo = Repo::new(&temp, "repo");
    repo.simple("a", "1.0-r0", &[]);
    repo.simple("b", "1.0-r0", &[]);
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    // Mounted on a store without any generation yet: only the exchange directories.
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);
    let exchange = ["bin", "etc", "include", "lib", "sbin", "share", "svc"];
    assert_eq!(names(&store.dir), exchange);
    assert_eq!(names(&store.join("bin")), Vec::<String>::new());
    // Looked up while absent, so a stale negative entry would show.
    assert_eq!(errno(fs::metadata(store.join("a-1.0-r0"))), Some(2));
    assert_eq!(errno(fs::metadata(store.join("bin/a"))), Some(2));

    let shows = |ids: &[&str]| {
        let mut expected: Vec<String> = exchange.iter().map(|s| s.to_string()).collect();
        expected.extend(ids.iter().map(|s| s.to_string()));
        expected.sort();
        assert_eq!(names(&store.dir), expected);
        let mut bin: Vec<String> = ids
            .iter()
            .map(|id| id.split('-').next().unwrap().to_owned())
            .collect();
        bin.sort();
        assert_eq!(names(&store.join("bin")), bin);
        for id in ids {
            let name = id.split('-').next().unwrap();
            let expected = format!("#!/bin/sh\necho {id}\n");
            assert_eq!(
                fs::read_to_string(store.join(format!("{id}/bin/{name}"))).unwrap(),
                expected
            );
            assert_eq!(
                fs::read_to_string(store.join(format!("bin/{name}"))).unwrap(),
                expected
            );
        }
    };
    // `shows` checked the exchange links of what is there; this checks the package
    // directory of what is not, and with `no_link`, that no `bin/NAME` is left.
    let gone = |id: &str, no_link: bool| {
        let name = id.split('-').next().unwrap();
        assert_eq!(errno(fs::metadata(store.join(id))), Some(2), "{id}");
        if no_link {
            assert_eq!(
                errno(fs::symlink_metadata(store.join(format!("bin/{name}")))),
                Some(2),
                "{id}"
            );
        }
    };

    // Each check runs right after the command returns: no sleep, no retry.
    device.ok(&["add", "a"]);
    shows(&["a-1.0-r0"]);
    device.ok(&["add", "b"]);
    shows(&["a-1.0-r0", "b-1.0-r0"]);
    device.ok(&["del", "a"]);
    shows(&["b-1.0-r0"]);
    gone("a-1.0-r0", true);

    // An upgrade replaces one version with the other in the same switch.
    repo.simple("b", "2.0-r0", &[]);
    repo.index(2, future());
    device.ok(&["update"]);
    let opened_before = File::open(store.join("b-1.0-r0/bin/b")).unwrap();
    device.ok(&["upgrade"]);
    shows(&["b-2.0-r0"]);
    gone("b-1.0-r0", false);
    // A file opened before the switch still reads from its image.
    let mut buffer = [0u8; 64];
    let n = opened_before.read_at(&mut buffer, 0).unwrap();
    assert_eq!(&buffer[..n], b"#!/bin/sh\necho b-1.0-r0\n");

    device.ok(&["rollback"]);
    shows(&["b-1.0-r0"]);
    gone("b-2.0-r0", false);
    device.ok(&["rollback"]);
    shows(&["a-1.0-r0", "b-1.0-r0"]);
    device.ok(&["del", "a", "b"]);
    shows(&[]);
    gone("a-1.0-r0", true);
    gone("b-1.0-r0", true);
    assert!(store.alive(), "{}", store.log());
}

/// The exchange links of the store, as `path -> target`, and `pkg info --conflicts`.
fn exchange_state(device: &Device, store: &Mounted) -> (Vec<String>, String) {
    let mut links = Vec::new();
    links_below(&store.join("bin"), &mut links);
    links_below(&store.join("share"), &mut links);
    let mut shown: Vec<String> = links
        .iter()
        .map(|link| {
            let target = fs::read_link(link).unwrap();
            let relative = link.strip_prefix(&store.dir).unwrap();
            format!("{} -> {}", relative.display(), target.display())
        })
        .collect();
    shown.sort();
    (shown, device.ok(&["info", "--conflicts"]))
}

#[test]
fn store_conflicts_resolve_by_rule_every_time() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-conflicts");
    let repo = Repo::new(&temp, "repo");
    repo.package(
        "busybox",
        "1.36.1-r2",
        &[],
        &[("bin/sh", b"busybox sh\n"), ("bin/ls", b"busybox ls\n")],
    );
    repo.package("ash", "1.36.1-r2", &[], &[("bin/sh", b"ash sh\n")]);
    // The newest version of all, which no longer decides anything.
    repo.package(
        "toybox",
        "2.0-r0",
        &[],
        &[
            ("bin/sh", b"toybox sh\n"),
            ("bin/toybox", b"toybox\n"),
            ("share/doc/sh.txt", b"toybox doc\n"),
        ],
    );
    repo.package(
        "app",
        "1.0-r0",
        &["toybox"],
        &[("bin/app", b"app\n"), ("share/doc/sh.txt", b"app doc\n")],
    );
    // A provider with a priority, and one of the same name without.
    repo.pack(
        "mksh",
        "59-r0",
        &["--provides", "shell", "--provider-priority", "10"],
        &[("bin/sh", b"mksh sh\n")],
    );
    repo.pack(
        "dash",
        "0.5-r0",
        &["--provides", "shell"],
        &[("bin/sh", b"dash sh\n")],
    );
    repo.package(
        "script",
        "1.0-r0",
        &["mksh", "dash"],
        &[("bin/script", b"script\n")],
    );
    repo.index(1, future());

    // All asked for by name, no priorities: the name decides, not the versions of
    // different packages (toybox's 2.0 is the newest).
    let device = device_for(&temp, "device", &repo);
    device.ok(&["add", "busybox", "ash", "toybox"]);
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "ash sh\n"
    );
    assert_eq!(
        fs::read_link(store.join("bin/sh")).unwrap(),
        Path::new("../ash-1.36.1-r2/bin/sh")
    );
    assert_eq!(
        fs::read_to_string(store.join("bin/ls")).unwrap(),
        "busybox ls\n"
    );
    let by_name = "nothing else decides: the name that sorts first";
    assert_eq!(
        device.ok(&["info", "--conflicts"]),
        format!(
            "bin/sh: ash-1.36.1-r2 wins over busybox-1.36.1-r2 ({by_name})\n\
             bin/sh: ash-1.36.1-r2 wins over toybox-2.0-r0 ({by_name})\n"
        )
    );
    let json = device.ok(&["--json", "info", "--conflicts"]);
    assert!(
        json.contains(r#""path":"bin/sh""#)
            && json.contains(r#""winner":"ash-1.36.1-r2""#)
            && json.contains(r#""reason":"name""#),
        "{json}"
    );

    // The same every time: asked again, after a remount, and on another store where the
    // same packages came in another order, one command each.
    let first = exchange_state(&device, &store);
    assert_eq!(exchange_state(&device, &store), first);
    drop(store);
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);
    assert_eq!(exchange_state(&device, &store), first);
    let other = device_for(&temp, "other", &repo);
    for name in ["toybox", "ash", "busybox"] {
        other.ok(&["add", name]);
    }
    let other_store = Mounted::start(&other, &temp.join("mnt-other"), &[]);
    assert_eq!(exchange_state(&other, &other_store), first);
    drop(other_store);

    // The user's choice beats everything, is a generation of its own, and is shown.
    let before = device.current().unwrap();
    let chosen = device.ok(&["prefer", "toybox", "/bin/sh"]);
    assert!(
        chosen.starts_with("bin/sh: preferred to toybox-2.0-r0\n"),
        "{chosen}"
    );
    assert_eq!(device.current(), Some(before + 1));
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "toybox sh\n"
    );
    let preferred = "preferred with pkg prefer";
    assert_eq!(
        device.ok(&["info", "--conflicts"]),
        format!(
            "bin/sh: toybox-2.0-r0 wins over ash-1.36.1-r2 ({preferred})\n\
             bin/sh: toybox-2.0-r0 wins over busybox-1.36.1-r2 ({preferred})\n"
        )
    );
    assert_eq!(
        device.ok(&["prefer", "toybox", "bin/sh"]),
        "nothing to do\n"
    );
    // Bad choices are one line each, and change nothing.
    let snapshot = device.snapshot();
    assert_eq!(
        device.fails(&["prefer", "toybox", "/bin/nosuch"]),
        "pkg: toybox-2.0-r0: has no bin/nosuch"
    );
    assert_eq!(
        device.fails(&["prefer", "app", "/bin/sh"]),
        "pkg: app: not installed"
    );
    assert_eq!(
        device.fails_usage(&["prefer", "toybox", "/usr/bin/sh"]),
        "pkg: prefer toybox /usr/bin/sh: a preferred path must lie inside an exchange \
         directory (bin/vi, /ro/bin/vi, /bin/vi)"
    );
    assert_eq!(
        device.fails(&["prefer", "--forget", "ash", "/bin/sh"]),
        "pkg: bin/sh: ash was not preferred for it"
    );
    assert!(snapshot.diff(&device.snapshot()).is_empty());
    // Rolled back like any generation, and forgotten.
    device.ok(&["rollback"]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "ash sh\n"
    );
    device.ok(&["prefer", "toybox", "/ro/bin/sh"]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "toybox sh\n"
    );
    device.ok(&["prefer", "--forget", "toybox", "bin/sh"]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "ash sh\n"
    );
    // A choice goes with its package.
    device.ok(&["prefer", "toybox", "/bin/sh"]);
    device.ok(&["del", "toybox"]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "ash sh\n"
    );
    device.ok(&["add", "toybox"]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "ash sh\n"
    );
    device.ok(&["del", "toybox"]);

    // Asked for by name beats pulled in: toybox only comes as app's dependency now,
    // and loses to busybox though the name would have it first.
    device.ok(&["del", "ash"]);
    device.ok(&["add", "app"]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "busybox sh\n"
    );
    assert_eq!(
        fs::read_to_string(store.join("bin/toybox")).unwrap(),
        "toybox\n"
    );
    assert_eq!(
        fs::read_to_string(store.join("share/doc/sh.txt")).unwrap(),
        "app doc\n"
    );
    let requested = "requested by name, the other only needed";
    assert_eq!(
        device.ok(&["info", "--conflicts"]),
        format!(
            "bin/sh: busybox-1.36.1-r2 wins over toybox-2.0-r0 ({requested})\n\
             share/doc/sh.txt: app-1.0-r0 wins over toybox-2.0-r0 ({requested})\n"
        )
    );
    device.ok(&["del", "app", "busybox"]);
    assert_eq!(device.ok(&["info", "--conflicts"]), "no conflicts\n");
    assert_eq!(names(&store.join("bin")), Vec::<String>::new());

    // Between two dependencies, the higher provider_priority: mksh over dash, whose
    // name sorts first.
    device.ok(&["add", "script"]);
    assert_eq!(
        fs::read_to_string(store.join("bin/sh")).unwrap(),
        "mksh sh\n"
    );
    assert_eq!(
        device.ok(&["info", "--conflicts"]),
        "bin/sh: mksh-59-r0 wins over dash-0.5-r0 (provider_priority 10 over 0)\n"
    );
}

#[test]
fn store_run_sees_only_the_closure() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-run");
    let repo = Repo::new(&temp, "repo");
    repo.simple("lib", "1.0-r0", &[]);
    repo.simple("a", "1.0-r0", &["lib"]);
    repo.simple("b", "1.0-r0", &[]);
    repo.package(
        "c",
        "1.0-r0",
        &[],
        &[("bin/c", b"c\n"), ("share/c/data", b"c data\n")],
    );
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    device.ok(&["add", "a", "b", "c"]);
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);
    let mnt = store.dir.display().to_string();
    assert_eq!(names(&store.join("bin")), ["a", "b", "c", "lib"]);

    let run = |packages: &[&str], script: &str| {
        let mut args = vec!["run"];
        for package in packages {
            args.extend(["-p", package]);
        }
        args.extend(["--", "sh", "-c", script]);
        device.pkg(&args)
    };
    let output = run(
        &["a"],
        &format!("ls {mnt}/bin; ls {mnt}/share; cat {mnt}/bin/a"),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "a\nlib\n#!/bin/sh\necho a-1.0-r0\n"
    );
    let output = run(
        &["b", "c"],
        &format!("ls {mnt}/bin; ls {mnt}/share/c; cat {mnt}/share/c/data"),
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "b\nc\ndata\nc data\n"
    );
    // Exactly the closure: its package directories (from the mounted store), none other.
    let output = run(&["a"], &format!("ls {mnt}"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "a-1.0-r0\nbin\netc\ninclude\nlib\nlib-1.0-r0\nsbin\nshare\nsvc\n"
    );
    let output = run(&["b"], &format!("ls {mnt}/a-1.0-r0 || echo gone"));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "gone\n");
    // The view's bin comes first on PATH.
    let output = run(&["a"], "echo $PATH");
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with(&format!("{mnt}/bin:{mnt}/sbin:")),
        "{output:?}"
    );

    // The exit code is the command's.
    assert_eq!(run(&["a"], "exit 7").status.code(), Some(7));
    assert_eq!(run(&["a"], "exit 0").status.code(), Some(0));
    // And the narrowing never leaks out of the command.
    assert_eq!(names(&store.join("bin")), ["a", "b", "c", "lib"]);
    let output = run(&["nosuch"], "true");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn store_mount_refuses_a_second_store_on_the_same_directory() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-twice");
    let repo = Repo::new(&temp, "repo");
    repo.simple("a", "1.0-r0", &[]);
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    device.ok(&["add", "a"]);
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);
    let line = device.fails(&["store", "mount", store.dir.to_str().unwrap()]);
    assert!(line.contains("already mounted"), "{line}");
    assert_eq!(
        fs::read_to_string(store.join("bin/a")).unwrap(),
        "#!/bin/sh\necho a-1.0-r0\n"
    );
    // A clean unmount stops the daemon.
    let pid = store.pid;
    run_ok(Command::new("umount").arg(&store.dir));
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(pid), "the store outlived its unmount");
    assert!(!temp.join("device/store.sock").exists());
    drop(store);
}
