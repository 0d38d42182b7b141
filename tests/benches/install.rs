//! Installing packages from a loopback HTTP repository, side by side with what it is
//! judged against (DESIGN §8). Run as root with `cargo xtask bench install`
//! (`cargo bench -p amber-tests --bench install`); it needs /dev/fuse, `dpkg`,
//! `dpkg-deb`, `cp`, `sha256sum`, `sync` and `umount` on PATH.
//!
//! Two `pkg` binaries are measured, each the whole way through: the device binary
//! (static musl, what a router runs: built with `cargo xtask build --board
//! qemu-x86_64`, or given with `--device PATH`; its argv[0] dispatch runs pkg through a
//! `pkg` symlink) and the host build (`cargo build --release -p amber-pkg`, glibc, or
//! `--pkg PATH`). The goals are judged on the device binary.
//!
//! **Install 100 packages** (20,000,000 bytes in about 27,000 files: many small text
//! files, some binary-like files, a few larger ones, a few dependencies; generated
//! deterministically under `target/bench-install/payload`, with the same trees packed
//! as `.deb` files by `dpkg-deb --build -Zgzip`, and reused by later runs). The pkg
//! repository is packed, indexed and signed on every run by the host build and served
//! over HTTP on 127.0.0.1 by the workspace's test server (`amber_testkit::http`: one
//! thread per connection, `sendfile` through `std::io::copy`). Every side starts from a fresh
//! store or directory after a `sync`, gets the same bytes from the same place, and the
//! sides take turns (each run starts with another one); the median of the runs is
//! reported. The sides:
//! - pkg: `key add`, `repo add`, `pkg update` (timed on its own), then the store is
//!   mounted (`pkg --root R store mount MNT`, as init does on a device) and
//!   `pkg --root R add p000 ... p099` is timed until it returns, which is once the
//!   mounted store shows the new generation (`notify.rs`: pkg asks the daemon to
//!   reload and waits for its answer). Outside the timing the bench checks that MNT
//!   shows all 100 packages and one exchange link for each of their files, and reads
//!   one file of each package through its link. Wall, CPU and peak RSS of pkg come
//!   from wait4(2) in a small trampoline (see [`run_measured`]); the store daemon's
//!   CPU time during the add comes from its threads' schedstat.
//! - the floor, the reference of the ≤ 1.5× goal: a client in this file that does
//!   only what any durable install of these images must do: fetch them from the same
//!   server over as many parallel connections as pkg uses (`download::PARALLEL`, one
//!   request per connection as pkg sends them), SHA-256 each while writing it, then one
//!   syncfs(2) for all of them.
//! - cp + sha256sum, a second reference: `cp` of the 100 image files from the
//!   repository directory into a fresh directory, then `sha256sum` of the copies (no
//!   network, no sync).
//! - dpkg, the peer of the ≥ 10× goal: `dpkg -i` of the 100 `.deb` files in one call
//!   (as apt calls it), into a scratch root with its own empty database and log (see
//!   [`dpkg_command`], whose flags the output prints); gzip members, which unpack
//!   faster than dpkg-deb's default xz; no maintainer scripts. dpkg syncs what it
//!   installs, as pkg does (`--no-force-unsafe-io`, since the host's
//!   `/etc/dpkg/dpkg.cfg.d` may say otherwise); dpkg with `--force-unsafe-io`, which
//!   does not sync and so does less than pkg, is shown too. The host's database and log
//!   are checked unchanged at the end.
//!
//! **Add one package** to a store that already holds 10, 100 and 500 packages, with
//! the store mounted: small packages like a router's (a program, a library, a
//! configuration file, docs and a man page; about 15 files, 150 KB), generated under
//! `target/bench-install/scale-payload`, packed and served from a second repository.
//! Each run times `pkg add x` on each store in turn (until the mount shows it, as
//! above), checks the mount shows it, then removes it again untimed (`pkg del x`,
//! `pkg gc --keep 1`), so every run does the same work: one download, one generation,
//! one reload. The goal is that the three medians are within 20% of each other.
//!
//! Other engineers' builds on a shared machine make the times noisy, which the CPU
//! times printed beside the wall times show; for steady numbers build first (`cargo
//! bench -p amber-tests --bench install --no-run`, `cargo build --release -p
//! amber-pkg`, `cargo xtask build --board qemu-x86_64`), then run the bench under
//! `chrt -r 10`.
//!
//! Options: `--runs N` installs of 100 (default 5); `--add-runs N` adds of one to each
//! store (default 20); `--quick` is one install and three adds; `--device PATH` and
//! `--pkg PATH` measure those binaries instead of building them (a relative path is
//! taken from the workspace root); `--no-host` measures the device binary only;
//! `--no-dpkg` skips both dpkg sides; `--no-add-one` skips the stores of 10, 100 and
//! 500.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amber_core::hash::{sha256, to_hex, Sha256Check};
use amber_testkit::http::Server;

/// Bump when the generator changes, so an old payload is rebuilt.
const PAYLOAD_VERSION: &str = "amber install bench payload v1";
const PACKAGES: usize = 100;
const PAYLOAD_BYTES: u64 = 20_000_000;
const VERSION: &str = "1.0-r0";
const DEB_VERSION: &str = "1.0-0";
/// Connections of the floor: as many as pkg downloads over at once.
const CONNECTIONS: usize = amber_pkg::PARALLEL;
/// The stores the one-package add goes to, by how many packages they hold.
const STORE_SIZES: [usize; 3] = [10, 100, 500];
/// Bump when the small packages' generator changes.
const SCALE_VERSION: &str = "amber install bench scale payload v1";
/// The package added to every store.
const EXTRA: &str = "x";
/// How much slower than the fastest the slowest store may add one package.
const SPREAD_GOAL: f64 = 1.2;

/// The first argument of the bench run as the measuring trampoline of [`run_measured`].
const MEASURE_CHILD: &str = "--measure-child";

/// The command-line options.
struct Options {
    runs: usize,
    add_runs: usize,
    device: Option<PathBuf>,
    host: Option<PathBuf>,
    with_host: bool,
    with_dpkg: bool,
    add_one: bool,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut options = Options {
            runs: 5,
            add_runs: 20,
            device: None,
            host: None,
            with_host: true,
            with_dpkg: true,
            add_one: true,
        };
        let mut args = args.iter();
        let count = |value: Option<&String>, what: &str| -> usize {
            value
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or_else(|| panic!("{what} wants a positive number"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => (options.runs, options.add_runs) = (1, 3),
                "--runs" => options.runs = count(args.next(), "--runs"),
                "--add-runs" => options.add_runs = count(args.next(), "--add-runs"),
                "--device" => {
                    options.device =
                        Some(PathBuf::from(args.next().expect("--device wants a path")))
                }
                "--pkg" => {
                    options.host = Some(PathBuf::from(args.next().expect("--pkg wants a path")))
                }
                "--no-host" => options.with_host = false,
                "--no-dpkg" => options.with_dpkg = false,
                "--no-add-one" => options.add_one = false,
                // cargo bench passes --bench to every harness = false target.
                "--bench" => {}
                other => panic!(
                    "unknown option {other}; known: --runs N, --add-runs N, --quick, \
                     --device PATH, --pkg PATH, --no-host, --no-dpkg, --no-add-one"
                ),
            }
        }
        options
    }
}

/// One pkg binary measured.
struct Binary {
    /// What it is, for the output.
    label: &'static str,
    /// A path whose file name is `pkg`.
    pkg: PathBuf,
    /// The file itself, for its size.
    file: PathBuf,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(MEASURE_CHILD) {
        measure_child(&args[1..]);
        return;
    }
    let options = Options::parse(&args);
    for program in [
        "dpkg",
        "dpkg-deb",
        "cp",
        "sha256sum",
        "sync",
        "true",
        "umount",
    ] {
        assert!(
            amber_tests::have(program),
            "{program} is needed: apt-get install dpkg coreutils mount"
        );
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root && Path::new("/dev/fuse").exists(),
        "the bench mounts the store as on a device: run it as root, with /dev/fuse"
    );

    let workspace = fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    let base = amber_tests::target_dir().join("bench-install");
    fs::create_dir_all(&base).unwrap();
    let base = fs::canonicalize(&base).unwrap();
    // cargo runs a bench in its package's directory; `cargo xtask` users give paths
    // from the workspace root, where xtask runs.
    let given = |path: &PathBuf| {
        let path = workspace.join(path);
        fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // The host build packs and signs the repositories in any case.
    let host = match &options.host {
        Some(path) => given(path),
        None => build_host(&workspace),
    };
    let device = match &options.device {
        Some(path) => given(path),
        None => build_device(&workspace),
    };
    // The device binary runs pkg when it is called `pkg`.
    let link_dir = base.join("device-bin");
    fs::create_dir_all(&link_dir).unwrap();
    let device_pkg = link_dir.join("pkg");
    let _ = fs::remove_file(&device_pkg);
    std::os::unix::fs::symlink(&device, &device_pkg).unwrap();
    let mut binaries = vec![Binary {
        label: "device binary (static musl)",
        pkg: device_pkg,
        file: device,
    }];
    if options.with_host {
        binaries.push(Binary {
            label: "host build (glibc)",
            pkg: host.clone(),
            file: host.clone(),
        });
    }

    let payload = ensure_payload(&base.join("payload"));
    let packages: Vec<(String, PathBuf, Vec<String>)> = (0..PACKAGES)
        .map(|i| {
            (
                package_name(i),
                payload.trees.join(package_name(i)),
                payload.deps[i].clone(),
            )
        })
        .collect();
    let repo = build_repo(&host, &base.join("repo"), &packages);
    let server = Server::start(&base.join("repo"));
    let url = server.url();
    println!(
        "payload: {PACKAGES} packages, {} files, {:.1} MB; images {:.1} MB; .debs {:.1} MB",
        payload.files,
        payload.bytes as f64 / 1e6,
        repo.bytes as f64 / 1e6,
        payload.deb_bytes as f64 / 1e6
    );
    println!(
        "repository: {url}/{} (served by this bench)",
        std::env::consts::ARCH
    );
    for binary in &binaries {
        let size = fs::metadata(&binary.file).unwrap().len();
        println!(
            "pkg, {}: {} ({size} bytes)",
            binary.label,
            binary.file.display()
        );
    }
    println!();

    let host_dpkg = HostDpkg::snapshot();
    let run_dir = base.join("run");
    // Left only by an interrupted run; see `reset` for why nothing is removed before the
    // measurements end.
    let _ = fs::remove_dir_all(&run_dir);
    fs::create_dir_all(&run_dir).unwrap();
    let rss_floor = rss_floor(&run_dir);
    let install = install_hundred(
        &options, &binaries, &payload, &repo, &url, &server, &run_dir,
    );
    host_dpkg.check_unchanged();
    let add_one = options.add_one.then(|| {
        let scale = ensure_scale_payload(&base.join("scale-payload"));
        let scale_repo = build_repo(&host, &base.join("scale-repo"), &scale);
        let scale_server = Server::start(&base.join("scale-repo"));
        let scale_url = scale_server.url();
        add_one_everywhere(
            &options,
            &binaries,
            &scale_repo,
            &scale_url,
            &run_dir.join("scale"),
        )
    });
    let _ = fs::remove_dir_all(&run_dir);

    println!();
    report_install(&options, &binaries, &payload, &install, rss_floor);
    if let Some(add_one) = &add_one {
        report_add_one(&options, &binaries, add_one);
    }
    println!();
    println!("goals (judged on the {}):", binaries[0].label);
    for line in goals(&options, &install, add_one.as_ref()) {
        println!("  {line}");
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(values: impl Iterator<Item = Duration>) -> Duration {
    let mut values: Vec<Duration> = values.collect();
    values.sort();
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2
    }
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn package_name(index: usize) -> String {
    format!("p{index:03}")
}

// ---- building pkg -----------------------------------------------------------------

/// Build the host pkg in release (the size-optimized profile users get); returns its
/// path.
fn build_host(workspace: &Path) -> PathBuf {
    println!("$ cargo build --release -p amber-pkg");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "-p", "amber-pkg"]));
    let binary = amber_tests::target_dir().join("release/pkg");
    fs::canonicalize(&binary).unwrap_or_else(|e| panic!("{}: {e}", binary.display()))
}

/// Build the device binary for this machine's architecture the way every board gets
/// it (`cargo xtask build`); returns its path.
fn build_device(workspace: &Path) -> PathBuf {
    let (board, target) = match std::env::consts::ARCH {
        "x86_64" => ("qemu-x86_64", "x86_64-unknown-linux-musl"),
        "aarch64" => ("qemu-aarch64", "aarch64-unknown-linux-musl"),
        other => panic!("no qemu board for {other}: give the device binary with --device PATH"),
    };
    println!("$ cargo xtask build --board {board}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(workspace)
        .args(["xtask", "build", "--board", board])
        .stdout(Stdio::null()));
    let binary = workspace.join(format!("target/device/{target}/release/amber"));
    fs::canonicalize(&binary).unwrap_or_else(|e| panic!("{}: {e}", binary.display()))
}

// ---- the payload ------------------------------------------------------------------

/// The generated trees and their `.deb` files.
struct Payload {
    trees: PathBuf,
    debs: Vec<PathBuf>,
    deps: Vec<Vec<String>>,
    files: usize,
    bytes: u64,
    deb_bytes: u64,
}

/// Generate the trees and `.deb` files unless a previous run left them complete.
fn ensure_payload(dir: &Path) -> Payload {
    let stamp = dir.join("stamp");
    let trees = dir.join("trees");
    let debs_dir = dir.join("debs");
    let specs: Vec<Package> = (0..PACKAGES).map(plan_package).collect();
    let complete = fs::read_to_string(&stamp).is_ok_and(|s| s == PAYLOAD_VERSION);
    if !complete {
        println!("generating the payload under {}", dir.display());
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(&debs_dir).unwrap();
        for spec in &specs {
            write_tree(spec, &trees.join(&spec.name));
            build_deb(
                spec,
                &trees.join(&spec.name),
                &dir.join("deb-build"),
                &debs_dir,
            );
        }
        let _ = fs::remove_dir_all(dir.join("deb-build"));
        fs::write(&stamp, PAYLOAD_VERSION).unwrap();
    }
    let debs: Vec<PathBuf> = specs
        .iter()
        .map(|spec| debs_dir.join(deb_name(spec)))
        .collect();
    Payload {
        files: specs.iter().map(|s| s.files.len()).sum(),
        bytes: specs
            .iter()
            .flat_map(|s| &s.files)
            .map(|f| f.size as u64)
            .sum(),
        deb_bytes: debs.iter().map(|d| fs::metadata(d).unwrap().len()).sum(),
        deps: specs.into_iter().map(|s| s.deps).collect(),
        trees,
        debs,
    }
}

struct Package {
    name: String,
    deps: Vec<String>,
    seed: u64,
    files: Vec<PlannedFile>,
}

struct PlannedFile {
    path: String,
    kind: Kind,
    size: usize,
    executable: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Binary,
    Random,
}

/// The shares of the payload each package gets: mostly even, a few packages three
/// times the size, summing to exactly [`PAYLOAD_BYTES`].
fn package_budgets() -> Vec<u64> {
    let mut random = Random::new(0xa3be_0001);
    let weights: Vec<u64> = (0..PACKAGES)
        .map(|i| {
            let weight = 3 + random.below(5);
            if i % 16 == 5 {
                weight * 3
            } else {
                weight
            }
        })
        .collect();
    let total: u64 = weights.iter().sum();
    let mut budgets: Vec<u64> = weights.iter().map(|w| PAYLOAD_BYTES * w / total).collect();
    let short = PAYLOAD_BYTES - budgets.iter().sum::<u64>();
    budgets[0] += short;
    budgets
}

/// Split `total` into `count` sizes of at least one byte, unevenly.
fn split(random: &mut Random, total: u64, count: usize) -> Vec<usize> {
    let weights: Vec<u64> = (0..count).map(|_| 1 + random.below(16)).collect();
    let sum: u64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights
        .iter()
        .map(|w| ((total - count as u64) * w / sum) as usize + 1)
        .collect();
    let short = total as usize - sizes.iter().sum::<usize>();
    sizes[0] += short;
    sizes
}

/// What package `index` holds: 150–349 files, 30% of its bytes in small text files under
/// `share/`, `etc/` and `include/`, 35% in binary-like files under `bin/` and `lib/`, and
/// the rest in two to four larger files.
fn plan_package(index: usize) -> Package {
    let name = package_name(index);
    let budget = package_budgets()[index];
    let mut random = Random::new(0xa3be_1000 + index as u64);
    let count = 150 + random.below(200) as usize;
    let large = 2 + random.below(3) as usize;
    let binaries = 8 + random.below(16) as usize;
    let texts = count - large - binaries;
    let text_bytes = budget * 30 / 100;
    let binary_bytes = budget * 35 / 100;
    let large_bytes = budget - text_bytes - binary_bytes;
    let mut files = Vec::new();
    let text_dirs = [
        format!("share/{name}/doc"),
        format!("share/{name}/data/a"),
        format!("share/{name}/data/b"),
        format!("share/{name}/data/c/deep"),
        format!("share/{name}/locale/de"),
        format!("etc/{name}"),
        format!("include/{name}"),
    ];
    for (j, size) in split(&mut random, text_bytes, texts)
        .into_iter()
        .enumerate()
    {
        let dir = &text_dirs[random.below(text_dirs.len() as u64) as usize];
        let word = WORDS[random.below(WORDS.len() as u64) as usize];
        files.push(PlannedFile {
            path: format!("{dir}/{word}-{j}.txt"),
            kind: Kind::Text,
            size,
            executable: false,
        });
    }
    for (j, size) in split(&mut random, binary_bytes, binaries)
        .into_iter()
        .enumerate()
    {
        let word = WORDS[random.below(WORDS.len() as u64) as usize];
        let (path, executable) = if j < 4 {
            (format!("bin/{name}-{word}{j}"), true)
        } else {
            (format!("lib/{name}/lib{word}-{j}.so"), false)
        };
        files.push(PlannedFile {
            path,
            kind: Kind::Binary,
            size,
            executable,
        });
    }
    for (j, size) in split(&mut random, large_bytes, large)
        .into_iter()
        .enumerate()
    {
        let (path, kind) = match j % 3 {
            0 => (format!("share/{name}/assets/blob-{j}.dat"), Kind::Random),
            1 => (format!("share/{name}/doc/manual-{j}.txt"), Kind::Text),
            _ => (format!("lib/{name}/libbig-{j}.so"), Kind::Binary),
        };
        files.push(PlannedFile {
            path,
            kind,
            size,
            executable: false,
        });
    }
    // A few dependencies: every fifth package needs p000, some need their predecessor.
    let mut deps = Vec::new();
    if index % 5 == 1 && index > 1 {
        deps.push(package_name(0));
    }
    if index % 10 == 3 || index % 10 == 8 {
        deps.push(package_name(index - 1));
    }
    Package {
        name,
        deps,
        seed: 0xa3be_2000 + index as u64,
        files,
    }
}

fn write_tree(spec: &Package, dir: &Path) {
    let mut random = Random::new(spec.seed);
    let mut contents = Vec::new();
    for file in &spec.files {
        contents.clear();
        match file.kind {
            Kind::Text => random.text(&mut contents, file.size),
            Kind::Binary => random.binary(&mut contents, file.size),
            Kind::Random => random.noise(&mut contents, file.size),
        }
        let path = dir.join(&file.path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &contents).unwrap();
        let mode = if file.executable { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn deb_name(spec: &Package) -> String {
    format!("{}_{DEB_VERSION}_all.deb", spec.name)
}

/// Pack a tree as a `.deb`: the tree hard-linked into a staging directory next to a
/// `DEBIAN/control`, then `dpkg-deb --build -Zgzip`.
fn build_deb(spec: &Package, tree: &Path, staging: &Path, out: &Path) {
    let stage = staging.join(&spec.name);
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(staging).unwrap();
    run(Command::new("cp").arg("-al").arg(tree).arg(&stage));
    fs::create_dir_all(stage.join("DEBIAN")).unwrap();
    let mut control = format!(
        "Package: {}\nVersion: {DEB_VERSION}\nArchitecture: all\n\
         Maintainer: amber bench <bench@example.invalid>\n",
        spec.name
    );
    if !spec.deps.is_empty() {
        control.push_str(&format!("Depends: {}\n", spec.deps.join(", ")));
    }
    control.push_str(&format!(
        "Description: amber install bench package {}\n generated payload\n",
        spec.name
    ));
    fs::write(stage.join("DEBIAN/control"), control).unwrap();
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&stage)
        .arg(out.join(deb_name(spec)))
        .stdout(Stdio::null()));
    fs::remove_dir_all(&stage).unwrap();
}

/// Fixture content (noise, text, machine code) drawn from the one deterministic
/// generator.
struct Random(amber_core::random::Random);

impl Random {
    fn new(seed: u64) -> Random {
        Random(amber_core::random::Random::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, limit: u64) -> u64 {
        self.0.below(limit)
    }

    /// Incompressible bytes, like an already compressed asset.
    fn noise(&mut self, out: &mut Vec<u8>, length: usize) {
        while out.len() < length {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(length);
    }

    /// Lines of words, like documentation or configuration.
    fn text(&mut self, out: &mut Vec<u8>, length: usize) {
        while out.len() < length {
            let words = 3 + self.below(10);
            for w in 0..words {
                if w > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(WORDS[self.below(WORDS.len() as u64) as usize].as_bytes());
            }
            if self.below(4) == 0 {
                out.extend_from_slice(format!(" = {}", self.below(100_000)).as_bytes());
            }
            out.push(b'\n');
        }
        out.truncate(length);
    }

    /// Like machine code: instructions from a small alphabet with random operands,
    /// string tables, zero padding and some noise; compresses about as well as binaries.
    fn binary(&mut self, out: &mut Vec<u8>, length: usize) {
        const OPCODES: [u8; 12] = [
            0x48, 0x89, 0x8b, 0xe8, 0xc3, 0x0f, 0x85, 0x74, 0x83, 0xff, 0x31, 0xc0,
        ];
        while out.len() < length {
            match self.below(10) {
                0..=5 => {
                    for _ in 0..32 {
                        out.push(OPCODES[self.below(OPCODES.len() as u64) as usize]);
                        if self.below(3) == 0 {
                            out.push(self.next() as u8);
                        }
                    }
                }
                6 | 7 => {
                    out.extend_from_slice(
                        WORDS[self.below(WORDS.len() as u64) as usize].as_bytes(),
                    );
                    out.push(0);
                }
                8 => out.extend(std::iter::repeat_n(0, 8 + self.below(56) as usize)),
                _ => {
                    let end = out.len() + 16;
                    self.noise(out, end);
                }
            }
        }
        out.truncate(length);
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "that",
    "with",
    "on",
    "as",
    "by",
    "this",
    "package",
    "file",
    "directory",
    "kernel",
    "router",
    "network",
    "interface",
    "address",
    "config",
    "option",
    "value",
    "return",
    "error",
    "static",
    "const",
    "struct",
    "void",
    "int",
    "char",
    "unsigned",
    "buffer",
    "length",
    "offset",
    "device",
    "driver",
    "module",
    "service",
    "daemon",
    "socket",
    "route",
    "table",
    "firewall",
    "bridge",
    "vlan",
    "wifi",
    "channel",
    "power",
    "signal",
    "timeout",
    "retry",
    "default",
    "enable",
    "disable",
    "server",
    "client",
    "packet",
    "queue",
    "filter",
    "match",
    "accept",
    "drop",
];

// ---- the pkg repositories ---------------------------------------------------------

/// A signed repository and what the measurements need from it.
struct Repo {
    public_key: PathBuf,
    images: Vec<Image>,
    bytes: u64,
}

struct Image {
    path: PathBuf,
    file_name: String,
    size: u64,
    sha256: [u8; 32],
}

/// Pack every (name, tree, dependencies) with `pkg pack` into `dir/<arch>/`, then index
/// and sign them with `pkg repo index` and a fresh key.
fn build_repo(pkg: &Path, dir: &Path, packages: &[(String, PathBuf, Vec<String>)]) -> Repo {
    let arch_dir = dir.join(std::env::consts::ARCH);
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(&arch_dir).unwrap();
    let secret_key = dir.with_extension("key");
    let public_key = dir.with_extension("pub");
    let _ = fs::remove_file(&secret_key);
    let _ = fs::remove_file(&public_key);
    run(Command::new(pkg)
        .arg("keygen")
        .arg("--secret-key")
        .arg(&secret_key)
        .arg("--public-key")
        .arg(&public_key)
        .stdout(Stdio::null()));
    let started = Instant::now();
    let mut images = Vec::new();
    for (name, tree, deps) in packages {
        let file_name = format!("{name}-{VERSION}.squashfs");
        let path = arch_dir.join(&file_name);
        let mut command = Command::new(pkg);
        command
            .arg("pack")
            .arg(tree)
            .arg("-o")
            .arg(&path)
            .args([
                "--name",
                name,
                "--version",
                VERSION,
                "--arch",
                std::env::consts::ARCH,
            ])
            .stdout(Stdio::null());
        for dep in deps {
            command.args(["--dep", dep]);
        }
        run(&mut command);
        let bytes = fs::read(&path).unwrap();
        images.push(Image {
            path,
            file_name,
            size: bytes.len() as u64,
            sha256: sha256(&bytes),
        });
    }
    run(Command::new(pkg)
        .args(["repo", "index"])
        .arg(&arch_dir)
        .arg("--secret-key")
        .arg(&secret_key)
        .args(["--serial", "1", "--expires", "4102444800"])
        .stdout(Stdio::null()));
    println!(
        "packed and indexed {} images into {} in {:.1} s",
        packages.len(),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Repo {
        public_key,
        bytes: images.iter().map(|i| i.size).sum(),
        images,
    }
}

// ---- running things ---------------------------------------------------------------

// ---- installing 100 packages ------------------------------------------------------

/// One install of the 100 packages by pkg.
struct PkgRun {
    update: Duration,
    add: Usage,
    /// CPU time the mounted store spent while pkg added.
    daemon: Duration,
}

/// Every side's runs.
struct Install {
    /// By binary, in the order of [`Binary`]s.
    pkg: Vec<Vec<PkgRun>>,
    floor: Vec<Duration>,
    copy: Vec<(Duration, Duration)>,
    dpkg: Vec<Usage>,
    dpkg_unsafe: Vec<Usage>,
}

/// The sides of the install, in the order the first run takes them.
#[derive(Clone, Copy)]
enum Side {
    Pkg(usize),
    Floor,
    Copy,
    Dpkg { sync: bool },
}

fn install_hundred(
    options: &Options,
    binaries: &[Binary],
    payload: &Payload,
    repo: &Repo,
    url: &str,
    server: &Server,
    run_dir: &Path,
) -> Install {
    let names: Vec<String> = (0..PACKAGES).map(package_name).collect();
    let mut sides: Vec<Side> = (0..binaries.len()).map(Side::Pkg).collect();
    sides.extend([Side::Floor, Side::Copy]);
    if options.with_dpkg {
        sides.extend([Side::Dpkg { sync: true }, Side::Dpkg { sync: false }]);
    }
    let mut install = Install {
        pkg: binaries.iter().map(|_| Vec::new()).collect(),
        floor: Vec::new(),
        copy: Vec::new(),
        dpkg: Vec::new(),
        dpkg_unsafe: Vec::new(),
    };
    println!(
        "install {PACKAGES} packages: {} runs of {} sides, each run starting with the next side",
        options.runs,
        sides.len()
    );
    for run in 0..options.runs {
        for turn in 0..sides.len() {
            match sides[(run + turn) % sides.len()] {
                Side::Pkg(index) => {
                    let binary = &binaries[index];
                    let result = measure_pkg(&binary.pkg, run_dir, repo, url, &names, payload);
                    println!(
                        "run {}: pkg, {}: update {:.3} s; add {:.3} s (user {:.3} s, sys {:.3} s, \
                         store {:.3} s, peak RSS {:.1} MiB)",
                        run + 1,
                        binary.label,
                        seconds(result.update),
                        seconds(result.add.wall),
                        seconds(result.add.user),
                        seconds(result.add.system),
                        seconds(result.daemon),
                        mib(result.add.max_rss_kib)
                    );
                    install.pkg[index].push(result);
                }
                Side::Floor => {
                    let result = measure_floor(server.address(), &run_dir.join("floor"), repo);
                    println!("run {}: floor {:.3} s", run + 1, seconds(result));
                    install.floor.push(result);
                }
                Side::Copy => {
                    let (copy, hash) = measure_copy(&run_dir.join("copy"), repo);
                    println!(
                        "run {}: cp {:.3} s + sha256sum {:.3} s",
                        run + 1,
                        seconds(copy),
                        seconds(hash)
                    );
                    install.copy.push((copy, hash));
                }
                Side::Dpkg { sync } => {
                    let result = measure_dpkg(&run_dir.join("dpkg-root"), payload, sync);
                    println!(
                        "run {}: dpkg -i{} {:.3} s (user {:.3} s, sys {:.3} s, peak RSS {:.1} MiB)",
                        run + 1,
                        if sync { "" } else { " --force-unsafe-io" },
                        seconds(result.wall),
                        seconds(result.user),
                        seconds(result.system),
                        mib(result.max_rss_kib)
                    );
                    if sync {
                        install.dpkg.push(result);
                    } else {
                        install.dpkg_unsafe.push(result);
                    }
                }
            }
        }
    }
    install
}

/// A pkg command on the store at `root`.
fn pkg_command(pkg: &Path, root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(pkg);
    command
        .arg("--root")
        .arg(root)
        .args(args)
        .env("AMBER_ARCH", std::env::consts::ARCH);
    command
}

/// A fresh store with the key and repository added and `pkg update` timed; the store
/// mounted; then `pkg add` of every package timed, and what the mount shows checked.
fn measure_pkg(
    pkg: &Path,
    run_dir: &Path,
    repo: &Repo,
    url: &str,
    names: &[String],
    payload: &Payload,
) -> PkgRun {
    let root = run_dir.join("pkg-root");
    reset(&root);
    let mountpoint = run_dir.join("pkg-mnt");
    reset(&mountpoint);
    run(pkg_command(
        pkg,
        &root,
        &["key", "add", repo.public_key.to_str().unwrap()],
    )
    .stdout(Stdio::null()));
    run(pkg_command(pkg, &root, &["repo", "add", url]).stdout(Stdio::null()));
    let log = root.with_extension("log");
    settle();
    let update = run_measured(&pkg_command(pkg, &root, &["update"]), &log).wall;
    let store = Mount::start(pkg, &root, &mountpoint);
    settle();
    let mut add = pkg_command(pkg, &root, &["add"]);
    add.args(names);
    let before = store.cpu();
    let usage = run_measured(&add, &log);
    let daemon = store.cpu() - before;
    let output = fs::read_to_string(&log).unwrap();
    assert!(
        output.contains(&format!("generation 1: {PACKAGES} packages")),
        "unexpected pkg add output:\n{output}"
    );
    for image in &repo.images {
        let installed = root.join("images").join(&image.file_name);
        assert_eq!(
            fs::metadata(&installed).map(|m| m.len()).ok(),
            Some(image.size)
        );
    }
    check_mounted(&mountpoint, payload);
    drop(store);
    PkgRun {
        update,
        add: usage,
        daemon,
    }
}

/// What the mounted store must show once `pkg add` returned: every package's
/// directory, an exchange link for every file of the payload, and through the links
/// the bytes of the trees (one file of each package is read).
fn check_mounted(mountpoint: &Path, payload: &Payload) {
    for index in 0..PACKAGES {
        let name = package_name(index);
        let id_dir = mountpoint.join(format!("{name}-{VERSION}"));
        assert!(
            id_dir.join(".pkg/meta").is_file(),
            "{} is not shown",
            id_dir.display()
        );
        let file = &plan_package(index).files[0].path;
        let shown = fs::read(mountpoint.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let source = fs::read(payload.trees.join(&name).join(file)).unwrap();
        assert!(shown == source, "{file} differs through the mounted store");
    }
    let links: usize = ["bin", "sbin", "lib", "share", "etc", "include", "svc"]
        .iter()
        .map(|dir| count_links(&mountpoint.join(dir)))
        .sum();
    assert_eq!(
        links, payload.files,
        "the mounted store shows {links} exchange links"
    );
}

fn count_links(dir: &Path) -> usize {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_symlink() => 1,
            Ok(kind) if kind.is_dir() => count_links(&entry.path()),
            _ => 0,
        })
        .sum()
}

/// A store mounted with `pkg store mount`; dropping it unmounts it and waits for the
/// daemon to end.
struct Mount {
    dir: PathBuf,
    pid: u32,
}

impl Mount {
    fn start(pkg: &Path, root: &Path, dir: &Path) -> Mount {
        // The daemon inherits stderr: a pipe would keep `output()` waiting for it.
        let log = File::create(root.with_extension("store.log")).unwrap();
        let output = pkg_command(pkg, root, &["store", "mount", dir.to_str().unwrap()])
            .stdin(Stdio::null())
            .stderr(log)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let pid = stdout
            .rsplit_once("(pid ")
            .and_then(|(_, rest)| rest.trim_end().strip_suffix(')'))
            .and_then(|pid| pid.parse().ok());
        match pid {
            Some(pid) if output.status.success() => Mount {
                dir: dir.to_path_buf(),
                pid,
            },
            _ => panic!(
                "pkg store mount failed ({}): {stdout}{}",
                output.status,
                fs::read_to_string(root.with_extension("store.log")).unwrap_or_default()
            ),
        }
    }

    /// The CPU time all the daemon's threads have run, from their schedstat
    /// (nanoseconds, where /proc/PID/stat counts in ticks of 10 ms).
    fn cpu(&self) -> Duration {
        let tasks = fs::read_dir(format!("/proc/{}/task", self.pid)).unwrap();
        let nanos: u64 = tasks
            .flatten()
            .filter_map(|task| fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(nanos)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            // A daemon that ended is a zombie until `pkg store mount`'s child is reaped;
            // it was started in its own session, so init reaps it.
            if fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .is_ok_and(|stat| stat.contains(") Z "))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The dpkg invocation: one call for every `.deb`, as apt makes it, into a scratch root
/// with its own admin directory and log, so the host's database and log are never read
/// or written; maintainer scripts (there are none) would run without chroot; with
/// `sync`, dpkg syncs what it writes even where the host's dpkg.cfg.d says unsafe-io.
fn dpkg_command(root: &Path, debs: &[PathBuf], sync: bool) -> Command {
    let mut command = Command::new("dpkg");
    command.args(dpkg_flags(root, sync)).arg("-i").args(debs);
    command
}

/// The flags of [`dpkg_command`], which the output shows.
fn dpkg_flags(root: &Path, sync: bool) -> Vec<String> {
    vec![
        format!("--root={}", root.display()),
        format!("--admindir={}", root.join("var/lib/dpkg").display()),
        format!("--log={}", root.join("dpkg.log").display()),
        "--force-not-root".into(),
        "--force-script-chrootless".into(),
        if sync {
            "--no-force-unsafe-io"
        } else {
            "--force-unsafe-io"
        }
        .into(),
    ]
}

fn measure_dpkg(root: &Path, payload: &Payload, sync: bool) -> Usage {
    reset(root);
    let admin = root.join("var/lib/dpkg");
    for dir in ["info", "updates", "triggers"] {
        fs::create_dir_all(admin.join(dir)).unwrap();
    }
    File::create(admin.join("status")).unwrap();
    File::create(admin.join("available")).unwrap();
    let log = root.with_extension("log");
    settle();
    let usage = run_measured(&dpkg_command(root, &payload.debs, sync), &log);
    let status = fs::read_to_string(admin.join("status")).unwrap();
    let installed = status.matches("Status: install ok installed").count();
    assert_eq!(installed, PACKAGES, "dpkg installed {installed} packages");
    let files: usize = ["bin", "etc", "include", "lib", "share"]
        .iter()
        .map(|dir| count_files(&root.join(dir)))
        .sum();
    assert_eq!(files, payload.files, "dpkg installed {files} files");
    usage
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => count_files(&entry.path()),
            Ok(kind) if kind.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// `cp` of the images into a fresh directory, then `sha256sum` of the copies: the two
/// times.
fn measure_copy(dir: &Path, repo: &Repo) -> (Duration, Duration) {
    reset(dir);
    settle();
    let copies: Vec<PathBuf> = repo.images.iter().map(|i| dir.join(&i.file_name)).collect();
    let started = Instant::now();
    run(Command::new("cp")
        .args(repo.images.iter().map(|i| &i.path))
        .arg(dir));
    let copy = started.elapsed();
    let started = Instant::now();
    let output = Command::new("sha256sum").args(&copies).output().unwrap();
    let hash = started.elapsed();
    assert!(output.status.success());
    let sums = String::from_utf8(output.stdout).unwrap();
    for (line, image) in sums.lines().zip(&repo.images) {
        assert!(line.starts_with(&to_hex(&image.sha256)), "{line}");
    }
    (copy, hash)
}

/// The floor: what any durable install of the images must do, and no more. Over
/// [`CONNECTIONS`] connections at once, one request each as pkg sends them, every image
/// is fetched from the same server, hashed while it is written, and checked; then one
/// syncfs(2) makes all of them durable.
fn measure_floor(address: SocketAddr, dir: &Path, repo: &Repo) -> Duration {
    reset(dir);
    settle();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..CONNECTIONS {
            scope.spawn(|| {
                let mut buffer = vec![0u8; 64 * 1024];
                while let Some(image) = repo.images.get(next.fetch_add(1, Ordering::SeqCst)) {
                    fetch_image(address, dir, image, &mut buffer);
                }
            });
        }
    });
    let handle = File::open(dir).unwrap();
    // SAFETY: syncfs only reads the descriptor, which `handle` keeps open.
    assert_eq!(unsafe { libc::syncfs(handle.as_raw_fd()) }, 0);
    started.elapsed()
}

fn fetch_image(address: SocketAddr, dir: &Path, image: &Image, buffer: &mut [u8]) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_nodelay(true).unwrap();
    write!(
        stream,
        "GET /{}/{} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        std::env::consts::ARCH,
        image.file_name
    )
    .unwrap();
    let mut head = Vec::new();
    let body_start = loop {
        let n = stream.read(buffer).unwrap();
        assert!(n > 0, "connection closed in the response head");
        head.extend_from_slice(&buffer[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(head.starts_with(b"HTTP/1.1 200 "));
    let mut file = File::create_new(dir.join(&image.file_name)).unwrap();
    let mut check = Sha256Check::new(image.sha256, image.size);
    let mut piece = &head[body_start..];
    loop {
        check.update(piece).unwrap();
        file.write_all(piece).unwrap();
        let n = stream.read(buffer).unwrap();
        if n == 0 {
            break;
        }
        piece = &buffer[..n];
    }
    check.finish().unwrap();
}

fn report_install(
    options: &Options,
    binaries: &[Binary],
    payload: &Payload,
    install: &Install,
    rss_floor: u64,
) {
    let floor = median(install.floor.iter().copied());
    let of_floor = |time: Duration| seconds(time) / seconds(floor);
    let dpkg = options
        .with_dpkg
        .then(|| median(install.dpkg.iter().map(|r| r.wall)));
    println!(
        "install {PACKAGES} packages ({:.1} MB in {} files), median of {} runs; the goals' \
         references are the floor (pkg <= 1.5x) and dpkg -i (pkg >= 10x faster):",
        payload.bytes as f64 / 1e6,
        payload.files,
        options.runs
    );
    for (binary, runs) in binaries.iter().zip(&install.pkg) {
        let add = median(runs.iter().map(|r| r.add.wall));
        let versus_dpkg = match dpkg {
            Some(dpkg) => format!(
                "; dpkg -i takes {:.1}x as long",
                seconds(dpkg) / seconds(add)
            ),
            None => String::new(),
        };
        println!(
            "  pkg, {}: store mounted, `pkg add` of the {PACKAGES} until the mount shows \
             them: {:.3} s (pkg CPU {:.3} s, store CPU {:.3} s, pkg peak RSS {:.1} MiB; \
             `pkg update` before it {:.3} s): {:.2}x the floor{versus_dpkg}",
            binary.label,
            seconds(add),
            seconds(median(runs.iter().map(|r| r.add.user + r.add.system))),
            seconds(median(runs.iter().map(|r| r.daemon))),
            mib(runs.iter().map(|r| r.add.max_rss_kib).max().unwrap()),
            seconds(median(runs.iter().map(|r| r.update))),
            of_floor(add)
        );
    }
    println!(
        "  floor: {CONNECTIONS} connections at once (as pkg), fetch + SHA-256 while \
         writing + one syncfs of the same bytes: {:.3} s: 1.00x the floor",
        seconds(floor)
    );
    let copy = median(install.copy.iter().map(|(copy, hash)| *copy + *hash));
    println!(
        "  cp + sha256sum of the images (local files, no sync): {:.3} s (cp {:.3} s, \
         sha256sum {:.3} s): {:.2}x the floor",
        seconds(copy),
        seconds(median(install.copy.iter().map(|(copy, _)| *copy))),
        seconds(median(install.copy.iter().map(|(_, hash)| *hash))),
        of_floor(copy)
    );
    if options.with_dpkg {
        let root = Path::new("ROOT");
        for (runs, sync) in [(&install.dpkg, true), (&install.dpkg_unsafe, false)] {
            let wall = median(runs.iter().map(|r| r.wall));
            println!(
                "  dpkg -i of the {PACKAGES} .debs in one call{}: `dpkg {} -i *.deb`: {:.3} s \
                 (CPU {:.3} s, peak RSS {:.1} MiB): {:.2}x the floor",
                if sync {
                    ""
                } else {
                    ", not syncing (less than pkg does)"
                },
                dpkg_flags(root, sync).join(" "),
                seconds(wall),
                seconds(median(runs.iter().map(|r| r.user + r.system))),
                mib(runs.iter().map(|r| r.max_rss_kib).max().unwrap()),
                of_floor(wall)
            );
        }
    } else {
        println!("  dpkg: not measured (--no-dpkg)");
    }
    println!(
        "  (peak RSS from wait4 through a trampoline that reports {:.1} MiB for `true`; \
         host dpkg database and log unchanged)",
        mib(rss_floor)
    );
}

// ---- adding one package to stores of 10, 100 and 500 ------------------------------

/// One timed add of one package.
struct AddRun {
    wall: Duration,
    /// pkg's user and system time.
    cpu: Duration,
    /// The store daemon's, meanwhile.
    store: Duration,
}

/// The adds of one package, by binary, then by store size.
type AddOne = Vec<Vec<Vec<AddRun>>>;

fn add_one_everywhere(
    options: &Options,
    binaries: &[Binary],
    repo: &Repo,
    url: &str,
    dir: &Path,
) -> AddOne {
    // Stores for every binary and size, each mounted by its own binary.
    let mut stores = Vec::new();
    for (index, binary) in binaries.iter().enumerate() {
        for &size in &STORE_SIZES {
            let root = dir.join(format!("root-{index}-{size}"));
            let mountpoint = dir.join(format!("mnt-{index}-{size}"));
            reset(&root);
            reset(&mountpoint);
            let pkg = &binary.pkg;
            run(pkg_command(
                pkg,
                &root,
                &["key", "add", repo.public_key.to_str().unwrap()],
            )
            .stdout(Stdio::null()));
            run(pkg_command(pkg, &root, &["repo", "add", url]).stdout(Stdio::null()));
            run(pkg_command(pkg, &root, &["update"]).stdout(Stdio::null()));
            let mut add = pkg_command(pkg, &root, &["add"]);
            add.args((0..size).map(scale_name));
            run(add.stdout(Stdio::null()));
            let store = Mount::start(pkg, &root, &mountpoint);
            stores.push((index, size, root, store));
        }
    }
    println!();
    println!(
        "add 1 package to stores of {STORE_SIZES:?} packages, mounted: {} runs, each run \
         going through the stores in another order",
        options.add_runs
    );
    let mut results: AddOne = binaries
        .iter()
        .map(|_| STORE_SIZES.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..options.add_runs {
        for turn in 0..stores.len() {
            let (index, size, root, store) = &stores[(round + turn) % stores.len()];
            let pkg = &binaries[*index].pkg;
            let log = root.with_extension("log");
            settle();
            let before = store.cpu();
            let usage = run_measured(&pkg_command(pkg, root, &["add", EXTRA]), &log);
            let daemon = store.cpu() - before;
            // Shown once pkg returned, and gone again after the untimed del and gc.
            let link = store.dir.join(format!("bin/{EXTRA}"));
            let shown =
                fs::read_to_string(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
            assert_eq!(shown, scale_program(EXTRA), "{}", link.display());
            assert!(store
                .dir
                .join(format!("{EXTRA}-{VERSION}/.pkg/meta"))
                .is_file());
            run(pkg_command(pkg, root, &["del", EXTRA]).stdout(Stdio::null()));
            run(pkg_command(pkg, root, &["gc", "--keep", "1"]).stdout(Stdio::null()));
            assert!(
                fs::symlink_metadata(&link).is_err(),
                "{} is still shown",
                link.display()
            );
            let slot = STORE_SIZES.iter().position(|s| s == size).unwrap();
            results[*index][slot].push(AddRun {
                wall: usage.wall,
                cpu: usage.user + usage.system,
                store: daemon,
            });
        }
        if (round + 1) % 5 == 0 || round + 1 == options.add_runs {
            println!("  {} of {} runs done", round + 1, options.add_runs);
        }
    }
    results
}

fn report_add_one(options: &Options, binaries: &[Binary], add_one: &AddOne) {
    println!();
    println!(
        "add 1 package ({EXTRA}: download, generation, reload until the mount shows it) to a \
         mounted store of {STORE_SIZES:?}, median of {} runs; the goal's reference is the \
         fastest of the three (all within 20%):",
        options.add_runs
    );
    for (binary, by_size) in binaries.iter().zip(add_one) {
        let walls: Vec<Duration> = by_size
            .iter()
            .map(|runs| median(runs.iter().map(|r| r.wall)))
            .collect();
        let fastest = walls.iter().min().copied().unwrap();
        for ((size, runs), wall) in STORE_SIZES.iter().zip(by_size).zip(&walls) {
            println!(
                "  pkg, {}, store of {size}: `pkg add {EXTRA}` {:.1} ms (pkg CPU {:.1} ms, \
                 store CPU {:.1} ms): {:.2}x the fastest",
                binary.label,
                millis(*wall),
                millis(median(runs.iter().map(|r| r.cpu))),
                millis(median(runs.iter().map(|r| r.store))),
                seconds(*wall) / seconds(fastest)
            );
        }
    }
}

fn goals(options: &Options, install: &Install, add_one: Option<&AddOne>) -> Vec<String> {
    let add = median(install.pkg[0].iter().map(|r| r.add.wall));
    let floor = median(install.floor.iter().copied());
    let of_floor = seconds(add) / seconds(floor);
    let mut lines = vec![format!(
        "install {PACKAGES}: pkg <= 1.5x the parallel floor: {:.3} s against {:.3} s, \
         {of_floor:.2}x: {}",
        seconds(add),
        seconds(floor),
        verdict(of_floor <= 1.5)
    )];
    if options.with_dpkg {
        let dpkg = median(install.dpkg.iter().map(|r| r.wall));
        let faster = seconds(dpkg) / seconds(add);
        lines.push(format!(
            "install {PACKAGES}: pkg >= 10x faster than dpkg -i (syncing, as pkg does): \
             {:.3} s against {:.3} s, {faster:.1}x: {}",
            seconds(add),
            seconds(dpkg),
            verdict(faster >= 10.0)
        ));
    } else {
        lines.push("install: pkg against dpkg: not measured (--no-dpkg)".into());
    }
    match add_one {
        Some(add_one) => {
            let walls: Vec<Duration> = add_one[0]
                .iter()
                .map(|runs| median(runs.iter().map(|r| r.wall)))
                .collect();
            let spread =
                seconds(*walls.iter().max().unwrap()) / seconds(*walls.iter().min().unwrap());
            let shown: Vec<String> = walls.iter().map(|w| format!("{:.1}", millis(*w))).collect();
            lines.push(format!(
                "add 1 to a store of {STORE_SIZES:?} within 20%: {} ms, the slowest {:.2}x the \
                 fastest: {}",
                shown.join(" / "),
                spread,
                verdict(spread <= SPREAD_GOAL)
            ));
        }
        None => lines.push("add 1: not measured (--no-add-one)".into()),
    }
    lines
}

// ---- the small packages of the stores ---------------------------------------------

fn scale_name(index: usize) -> String {
    format!("s{index:03}")
}

fn scale_program(name: &str) -> String {
    format!("#!/bin/sh\necho {name} {VERSION}\n")
}

/// Generate the small packages (every store's and [`EXTRA`]) unless a previous run left
/// them; returns (name, tree, dependencies) for each.
fn ensure_scale_payload(dir: &Path) -> Vec<(String, PathBuf, Vec<String>)> {
    let largest = *STORE_SIZES.iter().max().unwrap();
    let mut names: Vec<String> = (0..largest).map(scale_name).collect();
    names.push(EXTRA.to_owned());
    let stamp = dir.join("stamp");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(SCALE_VERSION) {
        println!("generating the small packages under {}", dir.display());
        let _ = fs::remove_dir_all(dir);
        for (index, name) in names.iter().enumerate() {
            write_small_package(&dir.join("trees").join(name), name, index as u64);
        }
        fs::write(&stamp, SCALE_VERSION).unwrap();
    }
    names
        .into_iter()
        .map(|name| {
            let tree = dir.join("trees").join(&name);
            (name, tree, Vec::new())
        })
        .collect()
}

/// A package like most on a router: a program, a library, a configuration file, a
/// README and a man page (in directories every package shares) and some data files
/// of its own; about 15 files and 150 KB.
fn write_small_package(tree: &Path, name: &str, seed: u64) {
    let mut random = Random::new(0xa3be_5000 + seed);
    let mut files: Vec<(String, Vec<u8>)> =
        vec![(format!("bin/{name}"), scale_program(name).into_bytes())];
    let mut bytes = Vec::new();
    let size = 40_000 + random.below(40_000) as usize;
    random.binary(&mut bytes, size);
    files.push((format!("lib/lib{name}.so.1"), bytes));
    for (path, size) in [
        (format!("etc/{name}.conf"), 300),
        (format!("share/doc/{name}/README"), 2_000),
        (format!("share/man/man1/{name}.1"), 3_000),
    ] {
        let mut text = Vec::new();
        random.text(&mut text, size);
        files.push((path, text));
    }
    for file in 0..10 {
        let mut text = Vec::new();
        let size = 1_000 + random.below(8_000) as usize;
        random.text(&mut text, size);
        files.push((format!("share/{name}/data{file:02}"), text));
    }
    for (path, contents) in files {
        let path = tree.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
    }
}

/// Create `dir` empty, moving aside what an earlier run left there.
///
/// The old one is only moved aside, into the same parent: the bench's scratch space is
/// removed once, at the end. On ext4 without a journal (this machine's root file
/// system), inode allocation skips over inodes deleted in the last minutes, one by one
/// (`recently_deleted` in ext4's ialloc.c), so removing dpkg's 25,000 files before the
/// next run made every later run create its files several times slower.
fn reset(dir: &Path) {
    static MOVED: AtomicUsize = AtomicUsize::new(0);
    if dir.exists() {
        let n = MOVED.fetch_add(1, Ordering::Relaxed);
        let name = dir.file_name().unwrap().to_string_lossy();
        fs::rename(dir, dir.with_file_name(format!("old-{n}-{name}"))).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
}

/// Write back what earlier steps left dirty, so no measurement pays for another's.
fn settle() {
    run(&mut Command::new("sync"));
}

fn run(command: &mut Command) {
    let output = command
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What one measured child used.
struct Usage {
    wall: Duration,
    user: Duration,
    system: Duration,
    max_rss_kib: u64,
}

/// Run a command with its output in `log`, timing it and taking its resource usage
/// from wait4(2); it must succeed.
///
/// The command runs under a trampoline, this bench started again with
/// [`MEASURE_CHILD`]: a child's peak RSS includes what it had before exec, and a child
/// spawned straight from this process would share its memory until then (std spawns
/// with vfork), so the bench's own RSS would be counted as the child's. The trampoline
/// is small; [`rss_floor`] measures what it adds at most.
fn run_measured(command: &Command, log: &Path) -> Usage {
    let out = File::create(log).unwrap();
    let result = log.with_extension("usage");
    let mut trampoline = Command::new(std::env::current_exe().unwrap());
    trampoline
        .arg(MEASURE_CHILD)
        .arg(&result)
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => trampoline.env(key, value),
            None => trampoline.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        trampoline.current_dir(dir);
    }
    let status = trampoline
        .status()
        .unwrap_or_else(|e| panic!("{trampoline:?}: {e}"));
    let text = fs::read_to_string(&result).unwrap_or_default();
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        status.success() && numbers.len() == 5 && numbers[0] == 0,
        "{command:?} failed (trampoline {status}, wait status {text:?}):\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
    Usage {
        wall: Duration::from_nanos(numbers[1]),
        user: Duration::from_nanos(numbers[2]),
        system: Duration::from_nanos(numbers[3]),
        max_rss_kib: numbers[4],
    }
}

/// The trampoline: run `PROGRAM ARGS...` and write its wait status, wall, user and
/// system times in nanoseconds, and peak RSS in KiB to `RESULT`.
// The child is reaped by wait4, which std's `Child::wait` cannot replace: it does not
// report resource usage.
#[allow(clippy::zombie_processes)]
fn measure_child(args: &[String]) {
    let [result, program, rest @ ..] = args else {
        panic!("{MEASURE_CHILD} RESULT PROGRAM [ARG]...");
    };
    let started = Instant::now();
    let child = Command::new(program)
        .args(rest)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let (status, usage) = rusage::wait(child.id());
    let wall = started.elapsed();
    fs::write(
        result,
        format!(
            "{status} {} {} {} {}\n",
            wall.as_nanos(),
            usage.user.as_nanos(),
            usage.system.as_nanos(),
            usage.max_rss_kib
        ),
    )
    .unwrap();
}

/// The peak RSS [`run_measured`] reports for `true`: what the trampoline itself
/// contributes, below which no measurement can go.
fn rss_floor(dir: &Path) -> u64 {
    fs::create_dir_all(dir).unwrap();
    run_measured(&Command::new("true"), &dir.join("floor.log")).max_rss_kib
}

mod rusage {
    //! wait4(2), which std does not offer: a child's peak RSS and CPU times.

    use std::ffi::{c_int, c_long};
    use std::time::Duration;

    use super::Usage;

    #[repr(C)]
    #[derive(Default)]
    struct Timeval {
        seconds: c_long,
        microseconds: c_long,
    }

    /// `struct rusage` on Linux: two timevals, then fourteen longs.
    #[repr(C)]
    #[derive(Default)]
    struct Rusage {
        user: Timeval,
        system: Timeval,
        max_rss: c_long,
        other: [c_long; 13],
    }

    extern "C" {
        fn wait4(pid: c_int, status: *mut c_int, options: c_int, usage: *mut Rusage) -> c_int;
    }

    fn duration(time: &Timeval) -> Duration {
        Duration::from_secs(time.seconds as u64) + Duration::from_micros(time.microseconds as u64)
    }

    /// Wait for child `pid`; returns its raw wait status and usage (wall time zero).
    pub fn wait(pid: u32) -> (i32, Usage) {
        let mut status: c_int = 0;
        let mut usage = Rusage::default();
        loop {
            // SAFETY: `status` and `usage` are valid for writes and outlive the call, and
            // `Rusage` has the layout of Linux's `struct rusage`.
            let result = unsafe { wait4(pid as c_int, &mut status, 0, &mut usage) };
            if result == pid as c_int {
                break;
            }
            let error = std::io::Error::last_os_error();
            assert!(
                error.kind() == std::io::ErrorKind::Interrupted,
                "wait4: {error}"
            );
        }
        (
            status,
            Usage {
                wall: Duration::ZERO,
                user: duration(&usage.user),
                system: duration(&usage.system),
                max_rss_kib: usage.max_rss as u64,
            },
        )
    }
}

// ---- the host's dpkg --------------------------------------------------------------

/// The host's dpkg database and log, to prove the bench never touched them.
struct HostDpkg {
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl HostDpkg {
    const PATHS: [&str; 3] = [
        "/var/lib/dpkg/status",
        "/var/lib/dpkg/available",
        "/var/log/dpkg.log",
    ];

    fn snapshot() -> HostDpkg {
        HostDpkg {
            files: HostDpkg::PATHS
                .iter()
                .map(|p| (PathBuf::from(p), fs::read(p).ok()))
                .collect(),
        }
    }

    fn check_unchanged(&self) {
        for (path, before) in &self.files {
            assert!(
                fs::read(path).ok() == *before,
                "{} changed during the bench",
                path.display()
            );
        }
    }
}
