//! Installing 100 packages from a loopback HTTP repository, side by side with its peers
//! (DESIGN §8). Run with `cargo xtask bench install`
//! (`cargo bench -p amber-tests --bench install`); it needs `dpkg`, `dpkg-deb`, `cp`,
//! `sha256sum` and `sync` on PATH.
//!
//! The bench builds what users run itself: `cargo build --release -p amber-pkg` (the
//! size-optimized release profile, opt-level "z"), and for comparison the same with
//! opt-level 3 into `target/bench-install/target-opt3`.
//!
//! The payload (100 packages, 20,000,000 bytes in about 27,000 files: many small text
//! files, some binary-like files, a few larger ones; a few dependencies between the
//! packages) is generated deterministically under `target/bench-install/payload`, with
//! the same trees packed as `.deb` files by `dpkg-deb --build -Zgzip`, and reused by later
//! runs. The pkg repository is packed, indexed and signed again on every run, with the
//! pkg being measured, and served over HTTP on 127.0.0.1 by a small server in this file
//! (blocking accept, one thread per connection, `sendfile` through `std::io::copy`).
//!
//! Measured, each on a fresh store or directory after a `sync`, interleaved, median of
//! the runs:
//! - pkg: `pkg --root FRESH add p000 ... p099` after `key add`, `repo add` and
//!   `pkg update` (update is timed on its own). Wall, CPU and peak RSS come from
//!   wait4(2) in a small trampoline (see [`run_measured`]).
//! - dpkg: `dpkg -i` of the 100 `.deb` files into a scratch root with its own admin
//!   directory and log (see [`dpkg_command`]); the host's database is checked unchanged
//!   at the end. dpkg fsyncs every file it installs (pkg flushes all its images with one
//!   syncfs), but the host's `/etc/dpkg/dpkg.cfg.d` may turn that off with
//!   `force-unsafe-io` (Debian's container images do): `--no-force-unsafe-io` turns it
//!   back on. dpkg with `--force-unsafe-io` is measured too, for reference.
//! - the limit: `cp` of the 100 image files from the repository into a fresh directory,
//!   then `sha256sum` of the copies (no fsync: that is the limit DESIGN §8 names).
//! - for reference, a loopback client in this file that does only what a durable
//!   install cannot avoid: the images from the same server over 4 connections, hashed
//!   while written, one syncfs(2) for all of them, each renamed, then one fsync of the
//!   directory (what pkg does).
//!
//! Other engineers' builds on a shared machine make the times noisy; for steady numbers
//! build first (`cargo bench -p amber-tests --bench install --no-run` and
//! `cargo build --release -p amber-pkg`), then run the bench under `chrt -r 10`.
//!
//! Options: `--quick` measures once; `--runs N` (default 3); `--no-opt3` skips the
//! opt-level 3 build; `--no-dpkg` skips both dpkg runs (for iterating on pkg);
//! `--pkg PATH` measures that pkg binary instead of building one, and may be repeated
//! to compare builds side by side (the goals are checked for the first).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amber_core::hash::{sha256, to_hex, Sha256Check};

/// Bump when the generator changes, so an old payload is rebuilt.
const PAYLOAD_VERSION: &str = "amber install bench payload v1";
const PACKAGES: usize = 100;
const PAYLOAD_BYTES: u64 = 20_000_000;
const VERSION: &str = "1.0-r0";
const DEB_VERSION: &str = "1.0-0";
/// Connections of the reference loopback client (pkg's `download::PARALLEL`).
const CONNECTIONS: usize = 4;

/// The first argument of the bench run as the measuring trampoline of [`run_measured`].
const MEASURE_CHILD: &str = "--measure-child";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(MEASURE_CHILD) {
        measure_child(&args[1..]);
        return;
    }
    let mut runs = 3;
    let mut opt3 = true;
    let mut with_dpkg = true;
    let mut prebuilt = Vec::new();
    let mut options = args.iter();
    while let Some(arg) = options.next() {
        match arg.as_str() {
            "--quick" => runs = 1,
            "--no-opt3" => opt3 = false,
            "--no-dpkg" => with_dpkg = false,
            "--pkg" => prebuilt.push(PathBuf::from(options.next().expect("--pkg wants a path"))),
            "--runs" => {
                runs = options
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .expect("--runs wants a positive number")
            }
            // cargo bench passes --bench to every harness = false target.
            "--bench" => {}
            other => panic!(
                "unknown option {other}; known: --quick, --runs N, --no-opt3, --no-dpkg, --pkg PATH"
            ),
        }
    }
    for program in ["dpkg", "dpkg-deb", "cp", "sha256sum", "sync", "true"] {
        assert!(
            amber_tests::have(program),
            "{program} is needed: apt-get install dpkg coreutils"
        );
    }

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let base = amber_tests::target_dir().join("bench-install");
    fs::create_dir_all(&base).unwrap();
    let base = fs::canonicalize(&base).unwrap();
    // The builds measured: the first is the one the goals are about.
    let mut builds: Vec<(String, PathBuf)> = Vec::new();
    if prebuilt.is_empty() {
        builds.push(("pkg".into(), build_pkg(&workspace, None)));
        if opt3 {
            let dir = base.join("target-opt3");
            builds.push(("pkg opt-level 3".into(), build_pkg(&workspace, Some(&dir))));
        }
    }
    for path in prebuilt {
        let path = fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        builds.push((path.display().to_string(), path));
    }
    let pkg = builds[0].1.clone();

    let payload = ensure_payload(&base.join("payload"));
    let repo = build_repo(&pkg, &base, &payload);
    let server = Server::start(&base.join("repo"));
    let url = format!("http://{}", server.address);
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
    for (label, path) in &builds {
        let size = fs::metadata(path).unwrap().len();
        println!("{label}: {} ({size} bytes)", path.display());
    }
    println!("runs: {runs}, interleaved, median reported");
    println!();

    let host_dpkg = HostDpkg::snapshot();
    let run_dir = base.join("run");
    // Left only by an interrupted run; see `reset` for why nothing is removed before the
    // measurements end.
    let _ = fs::remove_dir_all(&run_dir);
    let names: Vec<String> = (0..PACKAGES).map(package_name).collect();
    let floor = rss_floor(&run_dir);
    let mut pkg_runs: Vec<Vec<PkgRun>> = builds.iter().map(|_| Vec::new()).collect();
    let mut dpkg_runs = Vec::new();
    let mut unsafe_runs = Vec::new();
    let mut limit_runs = Vec::new();
    let mut loopback_runs = Vec::new();
    for run in 1..=runs {
        for ((label, path), runs) in builds.iter().zip(&mut pkg_runs) {
            let result = measure_pkg(path, &run_dir.join("pkg-root"), &repo, &url, &names);
            println!(
                "run {run}: {label}: update {:.3} s; add {:.3} s (user {:.3} s, sys {:.3} s, \
                 peak RSS {:.1} MiB)",
                result.update.as_secs_f64(),
                result.add.wall.as_secs_f64(),
                result.add.user.as_secs_f64(),
                result.add.system.as_secs_f64(),
                mib(result.add.max_rss_kib)
            );
            runs.push(result);
        }
        if with_dpkg {
            for (fsync, results) in [(true, &mut dpkg_runs), (false, &mut unsafe_runs)] {
                let result = measure_dpkg(&run_dir.join("dpkg-root"), &payload, fsync);
                println!(
                    "run {run}: dpkg -i{} {:.3} s (user {:.3} s, sys {:.3} s, peak RSS {:.1} MiB)",
                    if fsync { "" } else { " --force-unsafe-io" },
                    result.wall.as_secs_f64(),
                    result.user.as_secs_f64(),
                    result.system.as_secs_f64(),
                    mib(result.max_rss_kib)
                );
                results.push(result);
            }
        }
        let result = measure_limit(&run_dir.join("copy"), &repo);
        println!(
            "run {run}: cp {:.3} s + sha256sum {:.3} s = {:.3} s",
            result.copy.as_secs_f64(),
            result.hash.as_secs_f64(),
            result.total().as_secs_f64()
        );
        limit_runs.push(result);
        let result = measure_loopback(server.address, &run_dir.join("loopback"), &repo);
        println!("run {run}: loopback client {:.3} s", result.as_secs_f64());
        loopback_runs.push(result);
    }
    let _ = fs::remove_dir_all(&run_dir);
    host_dpkg.check_unchanged();

    let pkg_add = median(pkg_runs[0].iter().map(|r| r.add.wall));
    let pkg_update = median(pkg_runs[0].iter().map(|r| r.update));
    let pkg_both = median(pkg_runs[0].iter().map(|r| r.update + r.add.wall));
    let pkg_rss = pkg_runs[0].iter().map(|r| r.add.max_rss_kib).max().unwrap();
    let limit = median(limit_runs.iter().map(Limit::total));
    let loopback = median(loopback_runs.iter().copied());
    let of_limit = pkg_add.as_secs_f64() / limit.as_secs_f64();
    let of_loopback = pkg_add.as_secs_f64() / loopback.as_secs_f64();
    let dpkg = if with_dpkg {
        let dpkg = median(dpkg_runs.iter().map(|r| r.wall));
        let faster = dpkg.as_secs_f64() / pkg_add.as_secs_f64();
        let unsafe_io = median(unsafe_runs.iter().map(|r| r.wall));
        format!(
            "dpkg {:.2} s ({faster:.1}x faster, goal >= 10x: {}; dpkg --force-unsafe-io \
             {:.2} s, {:.1}x)",
            dpkg.as_secs_f64(),
            verdict(faster >= 10.0),
            unsafe_io.as_secs_f64(),
            unsafe_io.as_secs_f64() / pkg_add.as_secs_f64()
        )
    } else {
        "dpkg not measured (--no-dpkg)".to_owned()
    };

    println!();
    println!(
        "install {PACKAGES} packages ({:.1} MB): pkg {:.3} s, {dpkg}, cp+sha256sum {:.3} s \
         (pkg is {of_limit:.2}x the limit, goal <= 1.5x: {}), pkg peak RSS {:.1} MiB \
         (goal <= 8 MiB: {})",
        payload.bytes as f64 / 1e6,
        pkg_add.as_secs_f64(),
        limit.as_secs_f64(),
        verdict(of_limit <= 1.5),
        mib(pkg_rss),
        verdict(pkg_rss <= 8 * 1024)
    );
    println!(
        "  loopback limit ({CONNECTIONS} connections from the same server, hash while writing, \
         one syncfs, rename each image, one directory fsync) {:.3} s: pkg is {of_loopback:.2}x",
        loopback.as_secs_f64()
    );
    println!(
        "  pkg update {:.3} s; update + add {:.3} s; add used {:.3} s of CPU",
        pkg_update.as_secs_f64(),
        pkg_both.as_secs_f64(),
        median(pkg_runs[0].iter().map(|r| r.add.user + r.add.system)).as_secs_f64()
    );
    for ((label, _), runs) in builds.iter().zip(&pkg_runs).skip(1) {
        let add = median(runs.iter().map(|r| r.add.wall));
        let cpu = median(runs.iter().map(|r| r.add.user + r.add.system));
        println!(
            "  {label}: add {:.3} s ({:.2}x the first build), {:.3} s of CPU, peak RSS {:.1} MiB",
            add.as_secs_f64(),
            add.as_secs_f64() / pkg_add.as_secs_f64(),
            cpu.as_secs_f64(),
            mib(runs.iter().map(|r| r.add.max_rss_kib).max().unwrap())
        );
    }
    println!(
        "  peak RSS from wait4 through a trampoline that reports {:.1} MiB for `true`",
        mib(floor)
    );
    println!("  host dpkg database and log: unchanged");
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
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

fn package_name(index: usize) -> String {
    format!("p{index:03}")
}

// ---- building pkg -----------------------------------------------------------------

/// Build the pkg binary in release; with `target_dir`, with opt-level 3 there instead of
/// the size-optimized profile users get. Returns the binary's path.
fn build_pkg(workspace: &Path, target_dir: Option<&Path>) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "-p", "amber-pkg"]);
    let binary = match target_dir {
        Some(dir) => {
            command
                .arg("--target-dir")
                .arg(dir)
                .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3");
            dir.join("release/pkg")
        }
        None => amber_tests::target_dir().join("release/pkg"),
    };
    match target_dir {
        Some(dir) => println!(
            "$ CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo build --release -p amber-pkg --target-dir {}",
            dir.display()
        ),
        None => println!("$ cargo build --release -p amber-pkg"),
    }
    run(&mut command);
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

/// xorshift64*: deterministic, fast, good enough to look like compressed data.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Random {
        // splitmix64 of the seed, so nearby seeds start far apart; never zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Random((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, limit: u64) -> u64 {
        self.next() % limit
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

// ---- the pkg repository -----------------------------------------------------------

/// The signed repository and what the measurements need from it.
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

/// Pack every tree with `pkg pack`, index and sign with `pkg repo index`.
fn build_repo(pkg: &Path, base: &Path, payload: &Payload) -> Repo {
    let repo = base.join("repo");
    let arch_dir = repo.join(std::env::consts::ARCH);
    let _ = fs::remove_dir_all(&repo);
    fs::create_dir_all(&arch_dir).unwrap();
    let secret_key = base.join("bench.key");
    let public_key = base.join("bench.pub");
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
    for (index, deps) in payload.deps.iter().enumerate() {
        let name = package_name(index);
        let file_name = format!("{name}-{VERSION}.squashfs");
        let path = arch_dir.join(&file_name);
        let mut command = Command::new(pkg);
        command
            .arg("pack")
            .arg(payload.trees.join(&name))
            .arg("-o")
            .arg(&path)
            .args([
                "--name",
                &name,
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
        "packed and indexed {PACKAGES} images in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Repo {
        public_key,
        bytes: images.iter().map(|i| i.size).sum(),
        images,
    }
}

// ---- measurements -----------------------------------------------------------------

struct PkgRun {
    update: Duration,
    add: Usage,
}

/// A fresh store with the key and repository added, `pkg update` timed, then
/// `pkg add` of every package timed.
fn measure_pkg(pkg: &Path, root: &Path, repo: &Repo, url: &str, names: &[String]) -> PkgRun {
    reset(root);
    let command = |args: &[&str]| {
        let mut command = Command::new(pkg);
        command
            .arg("--root")
            .arg(root)
            .args(args)
            .env("AMBER_ARCH", std::env::consts::ARCH);
        command
    };
    run(command(&["key", "add", repo.public_key.to_str().unwrap()]).stdout(Stdio::null()));
    run(command(&["repo", "add", url]).stdout(Stdio::null()));
    let log = root.with_extension("log");
    settle();
    let update = run_measured(&command(&["update"]), &log).wall;
    settle();
    let mut add = command(&["add"]);
    add.args(names);
    let usage = run_measured(&add, &log);
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
    PkgRun { update, add: usage }
}

/// The dpkg invocation: a scratch root with its own admin directory and log, so the
/// host's database and log are never read or written; maintainer scripts (there are
/// none) would run without chroot; with `fsync`, fsyncs on even where the host's
/// dpkg.cfg.d says unsafe-io.
fn dpkg_command(root: &Path, debs: &[PathBuf], fsync: bool) -> Command {
    let mut command = Command::new("dpkg");
    command
        .arg(format!("--root={}", root.display()))
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .arg(format!("--log={}", root.join("dpkg.log").display()))
        .args(["--force-not-root", "--force-script-chrootless"])
        .arg(if fsync {
            "--no-force-unsafe-io"
        } else {
            "--force-unsafe-io"
        })
        .arg("-i")
        .args(debs);
    command
}

fn measure_dpkg(root: &Path, payload: &Payload, fsync: bool) -> Usage {
    reset(root);
    let admin = root.join("var/lib/dpkg");
    for dir in ["info", "updates", "triggers"] {
        fs::create_dir_all(admin.join(dir)).unwrap();
    }
    File::create(admin.join("status")).unwrap();
    File::create(admin.join("available")).unwrap();
    let log = root.with_extension("log");
    settle();
    let usage = run_measured(&dpkg_command(root, &payload.debs, fsync), &log);
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

/// The physical limit, in two timed steps.
struct Limit {
    copy: Duration,
    hash: Duration,
}

impl Limit {
    fn total(&self) -> Duration {
        self.copy + self.hash
    }
}

fn measure_limit(dir: &Path, repo: &Repo) -> Limit {
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
    Limit { copy, hash }
}

/// The least a client must do: [`CONNECTIONS`] connections, each image hashed while
/// written to a temporary file, one syncfs(2) for all of them, each renamed, then one
/// fsync of the directory.
fn measure_loopback(address: SocketAddr, dir: &Path, repo: &Repo) -> Duration {
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
    for image in &repo.images {
        let temp = dir.join(format!(".tmp-{}", image.file_name));
        fs::rename(&temp, dir.join(&image.file_name)).unwrap();
    }
    handle.sync_all().unwrap();
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
    let temp = dir.join(format!(".tmp-{}", image.file_name));
    let mut file = File::create_new(&temp).unwrap();
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

// ---- the server -------------------------------------------------------------------

/// A plain static file server on 127.0.0.1: blocking accept, a thread per connection,
/// keep-alive unless the client asks to close, bodies sent with `std::io::copy` (which
/// uses sendfile). It stays out of the way, so the client is what gets measured.
struct Server {
    address: SocketAddr,
}

impl Server {
    fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || serve(stream, &root));
            }
        });
        Server { address }
    }
}

fn serve(stream: TcpStream, root: &Path) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut close = request.ends_with("HTTP/1.0\r\n");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let file = (!path.contains(".."))
            .then(|| File::open(root.join(path.trim_start_matches('/'))).ok())
            .flatten();
        let connection = if close { "close" } else { "keep-alive" };
        let sent = match file {
            Some(mut file) => {
                let length = file.metadata().map(|m| m.len()).unwrap_or(0);
                write!(
                    writer,
                    "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: {connection}\r\n\r\n"
                )
                .and_then(|()| std::io::copy(&mut file, &mut writer).map(|_| ()))
            }
            None => write!(
                writer,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: {connection}\r\n\r\n"
            ),
        };
        if sent.is_err() || close {
            return;
        }
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
