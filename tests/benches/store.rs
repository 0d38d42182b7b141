//! The FUSE store side by side with its peers (DESIGN §8): `pkg store mount`,
//! `squashfuse_ll` and the kernel's squashfs reading the same image in the same run.
//! Run as root with `cargo xtask bench store` (`cargo bench -p amber-tests --bench
//! store`); it needs /dev/fuse, `squashfuse_ll`, `mount`, `umount`, `sync` and a
//! writable `/proc/sys/vm/drop_caches`.
//!
//! The bench builds what users run: `cargo build --release -p amber-pkg` (the
//! size-optimized release profile, opt-level "z"), and for comparison two variants:
//! everything at opt-level 3 (`target/bench-store/target-opt3`), and only miniz_oxide,
//! the inflater, at opt-level 3 (`target/bench-store/target-inflate3`, built with
//! `--config profile.release.package.miniz_oxide.opt-level=3`).
//!
//! The payload is a deterministic tree of 50,000,000 bytes in about 1,400 files in
//! nested directories (text-like files that compress, noise that does not, a few runs
//! of zeros; sizes from empty to several MiB), generated under
//! `target/bench-store/payload` and reused by later runs. Every run packs it into ONE
//! image with `pkg pack` and installs it with `pkg add --allow-untrusted` into a fresh
//! store; squashfuse_ll and the kernel mount the installed image file itself.
//!
//! Measured for each, interleaved, median of the runs, files read in one thread with a
//! 128 KiB buffer in the payload's order (and again with several threads):
//! - cold read: mount afresh (which drops FUSE's caches), `sync`, drop the page cache,
//!   then read every file;
//! - warm read: read every file again right after (the best of three passes);
//! - cold and warm stat walk: mount afresh, drop caches, then list every directory and
//!   lstat every entry; then again (best of three).
//!
//! For the FUSE daemons, the CPU time they spent on the cold read is shown too (from
//! /proc), since on a loaded machine the wall times move a lot.
//!
//! Then memory: the store daemon's VmRSS with 100 packages installed and mounted after
//! one file of each is read, next to squashfuse_ll's with the one image mounted. The
//! host pkg links glibc dynamically, whose libc.so pages count in its RSS; the device
//! binary (static musl, `target/device/x86_64-unknown-linux-musl/release/amber`, made
//! by `cargo xtask build`) is measured as well when it is there.
//!
//! Options: `--quick` measures once; `--runs N` (default 5); `--threads N` readers for
//! the parallel read (default 4); `--no-variants` skips the two comparison builds;
//! `--pkg PATH` measures that pkg binary and builds nothing; `--device PATH` names the
//! device binary.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amber_core::hash::sha256;

/// Bump when the generator changes, so an old payload is rebuilt.
const PAYLOAD_VERSION: &str = "amber store bench payload v1";
const PAYLOAD_BYTES: u64 = 50_000_000;
const BUFFER: usize = 128 * 1024;
/// Warm measurements take the best of this many passes.
const WARM_PASSES: usize = 3;
const ARCH: &str = "x86_64";
/// Packages installed for the memory measurement.
const RSS_PACKAGES: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 5;
    let mut threads = 4;
    let mut variants = true;
    let mut prebuilt = None;
    let mut device = None;
    let mut options = args.iter();
    while let Some(arg) = options.next() {
        match arg.as_str() {
            "--quick" => runs = 1,
            "--no-variants" | "--no-opt3" => variants = false,
            "--device" => {
                device = Some(PathBuf::from(
                    options.next().expect("--device wants a path"),
                ))
            }
            "--pkg" => prebuilt = Some(PathBuf::from(options.next().expect("--pkg wants a path"))),
            "--runs" | "--threads" => {
                let value = options
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| panic!("{arg} wants a positive number"));
                if arg == "--runs" {
                    runs = value;
                } else {
                    threads = value;
                }
            }
            // cargo bench passes --bench to every harness = false target.
            "--bench" => {}
            other => panic!(
                "unknown option {other}; known: --quick, --runs N, --threads N, \
                 --no-variants, --pkg PATH, --device PATH"
            ),
        }
    }
    preflight();

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let base = amber_tests::target_dir().join("bench-store");
    fs::create_dir_all(&base).unwrap();
    let base = fs::canonicalize(&base).unwrap();
    // With --pkg, nothing is built, the variants neither.
    let variants = variants && prebuilt.is_none();
    let pkg = match prebuilt {
        Some(path) => fs::canonicalize(&path).expect("--pkg names no file"),
        None => build_pkg(&workspace, Build::Release),
    };
    let variants: Vec<(PathBuf, &'static str)> = if variants {
        vec![
            (build_pkg(&workspace, Build::Opt3(&base)), "pkg store O3"),
            (build_pkg(&workspace, Build::Inflate3(&base)), "inflate O3"),
        ]
    } else {
        Vec::new()
    };
    let device = device
        .or_else(|| {
            let default =
                amber_tests::target_dir().join("device/x86_64-unknown-linux-musl/release/amber");
            default.exists().then_some(default)
        })
        .map(|path| fs::canonicalize(&path).expect("--device names no file"));

    let payload = ensure_payload(&base.join("payload"));
    let started = Instant::now();
    let root = base.join("root");
    let image = install_payload(&Pkg::host(&pkg), &base, &payload, &root);
    println!(
        "payload: {} files in {} directories, {:.1} MB ({:.1} MB compressible); \
         image {:.1} MB, packed and installed in {:.1} s",
        payload.files.len(),
        payload.dirs,
        payload.bytes as f64 / 1e6,
        payload.compressible as f64 / 1e6,
        fs::metadata(&image).unwrap().len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!(
        "pkg: {} ({} bytes, size-optimized release profile)",
        pkg.display(),
        fs::metadata(&pkg).unwrap().len()
    );
    println!(
        "runs: {runs}, interleaved, median reported; reads: {BUFFER} byte buffer; load average \
         before: {}",
        load_average()
    );
    println!();

    let mut systems = vec![System::Ours {
        pkg: Pkg::host(&pkg),
        root: root.clone(),
        label: "pkg store",
    }];
    for (binary, label) in &variants {
        systems.push(System::Ours {
            pkg: Pkg::host(binary),
            root: root.clone(),
            label,
        });
    }
    systems.push(System::Squashfuse {
        image: image.clone(),
    });
    systems.push(System::Kernel {
        image: image.clone(),
    });
    let mounts = base.join("mnt");

    // Every system reads the same bytes and lists the same tree, checked once.
    for system in &systems {
        let mounted = system.mount(&mounts.join("check"));
        verify(&mounted, &payload);
    }

    let mut results: Vec<Vec<Measure>> = vec![Vec::new(); systems.len()];
    for run in 0..runs {
        for (index, system) in systems.iter().enumerate() {
            let measure = measure(system, &mounts.join(format!("m{index}")), &payload, threads);
            println!(
                "run {}: {:<14} cold read {:.3} s (daemon CPU {:.2} s), warm read {:.3} s, \
                 cold walk {:.3} s, warm walk {:.3} s, cold read x{threads} {:.3} s, \
                 warm read x{threads} {:.3} s",
                run + 1,
                system.label(),
                measure.cold_read.as_secs_f64(),
                measure.cold_cpu.as_secs_f64(),
                measure.warm_read.as_secs_f64(),
                measure.cold_walk.as_secs_f64(),
                measure.warm_walk.as_secs_f64(),
                measure.cold_parallel.as_secs_f64(),
                measure.warm_parallel.as_secs_f64(),
            );
            results[index].push(measure);
        }
    }
    println!();
    report(&systems, &results, &payload, threads);
    println!("load average after: {}", load_average());

    println!();
    memory(&Pkg::host(&pkg), device.as_deref(), &base, &image);
}

/// /proc/loadavg's first three numbers: the bench shares the machine.
fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How to run pkg: the host binary, or the device binary called as `amber pkg`.
#[derive(Clone)]
struct Pkg {
    program: PathBuf,
    prefix: Vec<&'static str>,
}

impl Pkg {
    fn host(program: &Path) -> Pkg {
        Pkg {
            program: program.to_path_buf(),
            prefix: Vec::new(),
        }
    }

    fn device(program: &Path) -> Pkg {
        Pkg {
            program: program.to_path_buf(),
            prefix: vec!["pkg"],
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.prefix).env("AMBER_ARCH", ARCH);
        command
    }
}

// ---- the systems ------------------------------------------------------------------

enum System {
    Ours {
        pkg: Pkg,
        root: PathBuf,
        label: &'static str,
    },
    Squashfuse {
        image: PathBuf,
    },
    Kernel {
        image: PathBuf,
    },
}

impl System {
    fn label(&self) -> &'static str {
        match self {
            System::Ours { label, .. } => label,
            System::Squashfuse { .. } => "squashfuse_ll",
            System::Kernel { .. } => "kernel",
        }
    }

    /// Mount on `dir` (made empty first).
    fn mount(&self, dir: &Path) -> Mounted {
        let _ = fs::create_dir_all(dir);
        match self {
            System::Ours { pkg, root, .. } => {
                let (pid, _) = mount_store(pkg, root, dir);
                Mounted {
                    dir: dir.to_path_buf(),
                    files: dir.join("bench-1.0-r0"),
                    pid: Some(pid),
                    child: None,
                }
            }
            System::Squashfuse { image } => {
                let child = Command::new("squashfuse_ll")
                    .arg("-f")
                    .arg(image)
                    .arg(dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("start squashfuse_ll");
                let pid = child.id();
                let mounted = Mounted {
                    dir: dir.to_path_buf(),
                    files: dir.to_path_buf(),
                    pid: Some(pid),
                    child: Some(child),
                };
                wait_for(|| is_mounted(dir), "squashfuse_ll to mount");
                mounted
            }
            System::Kernel { image } => {
                run(Command::new("mount")
                    .args(["-t", "squashfs", "-o", "loop,ro"])
                    .arg(image)
                    .arg(dir));
                Mounted {
                    dir: dir.to_path_buf(),
                    files: dir.to_path_buf(),
                    pid: None,
                    child: None,
                }
            }
        }
    }
}

/// A mounted system; unmounted when dropped, its daemon gone.
struct Mounted {
    dir: PathBuf,
    /// Where the payload's files are.
    files: PathBuf,
    pid: Option<u32>,
    child: Option<Child>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        } else if let Some(pid) = self.pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// `pkg --root ROOT store mount DIR`: the daemon's pid and `pkg`'s report.
fn mount_store(pkg: &Pkg, root: &Path, dir: &Path) -> (u32, String) {
    let output = pkg
        .command()
        .arg("--root")
        .arg(root)
        .args(["store", "mount"])
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run pkg store mount");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "pkg store mount failed: {stdout}");
    let pid = stdout
        .rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.trim_end().strip_suffix(')'))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {stdout:?}"));
    (pid, stdout)
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        let zombie = status.lines().any(|l| l.starts_with("State:\tZ"));
        let threads = status.lines().find_map(|l| l.strip_prefix("Threads:"));
        !zombie || threads.is_some_and(|n| n.trim() != "1")
    })
}

fn is_mounted(dir: &Path) -> bool {
    let dir = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(dir.as_str()))
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `sync`, then drop the page cache, dentries and inodes.
fn drop_caches() {
    run(&mut Command::new("sync"));
    fs::write("/proc/sys/vm/drop_caches", "3").expect("write /proc/sys/vm/drop_caches");
}

// ---- measuring --------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Measure {
    /// CPU time the daemon spent during the cold read (zero for the kernel).
    cold_cpu: Duration,
    cold_read: Duration,
    warm_read: Duration,
    cold_walk: Duration,
    warm_walk: Duration,
    cold_parallel: Duration,
    warm_parallel: Duration,
}

fn measure(system: &System, dir: &Path, payload: &Payload, threads: usize) -> Measure {
    let timed = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        started.elapsed()
    };
    // Warm state does not change between passes, so the best of a few is its cost with
    // the least of the machine's other load in it.
    let best = |f: &mut dyn FnMut()| (0..WARM_PASSES).map(|_| timed(&mut *f)).min().unwrap();
    let mut buffer = vec![0u8; BUFFER];
    let (cold_read, warm_read, cold_cpu) = {
        let mounted = system.mount(dir);
        drop_caches();
        let cpu_before = mounted.pid.map_or(Duration::ZERO, cpu_time);
        let cold = timed(&mut || {
            assert_eq!(
                read_all(&mounted.files, &payload.files, &mut buffer),
                payload.bytes
            )
        });
        let cold_cpu = mounted.pid.map_or(Duration::ZERO, cpu_time) - cpu_before;
        let warm = best(&mut || {
            assert_eq!(
                read_all(&mounted.files, &payload.files, &mut buffer),
                payload.bytes
            )
        });
        (cold, warm, cold_cpu)
    };
    let (cold_walk, warm_walk) = {
        let mounted = system.mount(dir);
        drop_caches();
        let expected = payload.files.len() + payload.dirs;
        let cold = timed(&mut || assert!(walk(&mounted.files) >= expected));
        let warm = best(&mut || assert!(walk(&mounted.files) >= expected));
        (cold, warm)
    };
    let (cold_parallel, warm_parallel) = {
        let mounted = system.mount(dir);
        drop_caches();
        let cold = timed(&mut || {
            assert_eq!(
                read_parallel(&mounted.files, &payload.files, threads),
                payload.bytes
            )
        });
        let warm = best(&mut || {
            assert_eq!(
                read_parallel(&mounted.files, &payload.files, threads),
                payload.bytes
            )
        });
        (cold, warm)
    };
    Measure {
        cold_cpu,
        cold_read,
        warm_read,
        cold_walk,
        warm_walk,
        cold_parallel,
        warm_parallel,
    }
}

/// Read every file in order with one buffer; returns the bytes read.
fn read_all(root: &Path, files: &[(PathBuf, u64)], buffer: &mut [u8]) -> u64 {
    let mut total = 0;
    for (file, _) in files {
        let path = root.join(file);
        let mut file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        loop {
            let n = file
                .read(buffer)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

/// Read every file with `threads` readers taking every n-th file.
fn read_parallel(root: &Path, files: &[(PathBuf, u64)], threads: usize) -> u64 {
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..threads)
            .map(|reader| {
                scope.spawn(move || {
                    let mine: Vec<(PathBuf, u64)> = files
                        .iter()
                        .skip(reader)
                        .step_by(threads)
                        .cloned()
                        .collect();
                    read_all(root, &mine, &mut vec![0u8; BUFFER])
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).sum()
    })
}

/// List every directory and lstat every entry; returns the entries seen.
fn walk(dir: &Path) -> usize {
    let mut count = 0;
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        count += 1;
        if meta.is_dir() {
            count += walk(&entry.path());
        }
    }
    count
}

/// Every file of the payload reads back with the same SHA-256, and the walk sees every
/// entry (the store's package directory also holds `.pkg/meta`).
fn verify(mounted: &Mounted, payload: &Payload) {
    for ((file, _), expected) in payload.files.iter().zip(&payload.hashes) {
        let bytes = fs::read(mounted.files.join(file)).unwrap();
        assert!(
            sha256(&bytes) == *expected,
            "{}: contents differ",
            file.display()
        );
    }
    let seen = walk(&mounted.files);
    let expected = payload.files.len() + payload.dirs;
    assert!(
        seen == expected || seen == expected + 2,
        "walk saw {seen}, expected {expected}"
    );
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

fn report(systems: &[System], results: &[Vec<Measure>], payload: &Payload, threads: usize) {
    type Pick = fn(&Measure) -> Duration;
    let rows: [(String, Pick); 7] = [
        ("cold read".into(), |m| m.cold_read),
        ("  daemon CPU in it".into(), |m| m.cold_cpu),
        ("warm read".into(), |m| m.warm_read),
        ("cold stat walk".into(), |m| m.cold_walk),
        ("warm stat walk".into(), |m| m.warm_walk),
        (format!("cold read, {threads} threads"), |m| m.cold_parallel),
        (format!("warm read, {threads} threads"), |m| m.warm_parallel),
    ];
    print!("{:<24}", "median seconds");
    for system in systems {
        print!("{:>15}", system.label());
    }
    println!();
    let mut table: Vec<Vec<f64>> = Vec::new();
    for (name, pick) in &rows {
        print!("{name:<24}");
        let mut row = Vec::new();
        for runs in results {
            let value = median(runs.iter().map(pick)).as_secs_f64();
            print!("{value:>15.3}");
            row.push(value);
        }
        println!();
        table.push(row);
    }
    let mb = payload.bytes as f64 / 1e6;
    print!("{:<24}", "warm read MB/s");
    for value in &table[2] {
        print!("{:>15.0}", mb / value);
    }
    println!();

    let column = |label: &str| systems.iter().position(|s| s.label() == label).unwrap();
    let (ours, squashfuse, kernel) = (
        column("pkg store"),
        column("squashfuse_ll"),
        column("kernel"),
    );
    println!();
    println!("ratios (size-optimized pkg; goal):");
    let ratio = |what: &str, row: usize, peer: usize, peer_name: &str, goal: f64| {
        let value = table[row][ours] / table[row][peer];
        println!(
            "  {what:<30} ours/{peer_name:<14} {value:>5.2}  (goal <= {goal}) {}",
            if value <= goal { "met" } else { "MISSED" }
        );
    };
    ratio("cold read", 0, squashfuse, "squashfuse_ll", 1.0);
    println!(
        "  {:<30} ours/{:<14} {:>5.2}  (what the cold read costs in CPU, whatever the load)",
        "  daemon CPU in it",
        "squashfuse_ll",
        table[1][ours] / table[1][squashfuse]
    );
    ratio("warm read", 2, kernel, "kernel", 1.3);
    ratio("stat walk, cold", 3, kernel, "kernel", 2.0);
    ratio("stat walk, warm", 4, kernel, "kernel", 2.0);
    ratio(
        &format!("cold read, {threads} threads"),
        5,
        squashfuse,
        "squashfuse_ll",
        1.0,
    );
    ratio(
        &format!("warm read, {threads} threads"),
        6,
        kernel,
        "kernel",
        1.3,
    );
    let variants: Vec<usize> = (0..systems.len())
        .filter(|&index| index != ours && matches!(systems[index], System::Ours { .. }))
        .collect();
    if !variants.is_empty() {
        print!(
            "\nvariants against the size-optimized build (time / time of pkg store):\n{:<32}",
            ""
        );
        for &variant in &variants {
            print!("{:>15}", systems[variant].label());
        }
        println!();
        for (index, (name, _)) in rows.iter().enumerate() {
            print!("  {name:<30}");
            for &variant in &variants {
                print!("{:>15.2}", table[index][variant] / table[index][ours]);
            }
            println!();
        }
    }
}

// ---- memory -----------------------------------------------------------------------

/// A process's memory from /proc, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
    peak: u64,
}

fn memory_of(pid: u32) -> Memory {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
        peak: field("VmHWM:"),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} MiB ({:.2} anonymous, {:.2} file)",
            mib(self.rss),
            mib(self.anon),
            mib(self.file)
        )
    }
}

/// The store with 100 packages installed, mounted by each `pkg` given, and
/// squashfuse_ll with the one big image for reference.
fn memory(host: &Pkg, device: Option<&Path>, base: &Path, image: &Path) {
    let trees = base.join("rss-trees");
    let images = base.join("rss-images");
    let root = base.join("rss-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&images).unwrap();
    let mut add = vec!["add".to_owned(), "--allow-untrusted".to_owned()];
    for index in 0..RSS_PACKAGES {
        let name = format!("p{index:03}");
        let tree = trees.join(&name);
        let done = trees.join(format!("{name}.done"));
        if !done.exists() {
            let _ = fs::remove_dir_all(&tree);
            let mut random = Random(index as u64 + 1000);
            write_file(&tree.join(format!("bin/{name}")), &random.text(20_000));
            write_file(
                &tree.join(format!("lib/lib{name}.so.1")),
                &random.noise(150_000),
            );
            write_file(
                &tree.join(format!("share/doc/{name}/README")),
                &random.text(4_000),
            );
            for file in 0..20 {
                write_file(
                    &tree.join(format!("share/{name}/data{file:02}")),
                    &random.text(3_000),
                );
            }
            fs::write(&done, b"").unwrap();
        }
        let output = images.join(format!("{name}-1.0-r0.squashfs"));
        run(host
            .command()
            .arg("pack")
            .arg(&tree)
            .arg("-o")
            .arg(&output)
            .args(["--name", &name, "--version", "1.0-r0", "--arch", ARCH])
            .stdout(Stdio::null()));
        add.push(output.display().to_string());
    }
    run(host
        .command()
        .arg("--root")
        .arg(&root)
        .args(&add)
        .stdout(Stdio::null()));

    println!("memory, the store with {RSS_PACKAGES} packages (goal <= 4 MiB after reading one file of each):");
    let mut daemons = vec![("host pkg (glibc)", host.clone())];
    if let Some(device) = device {
        daemons.push(("device binary (static musl)", Pkg::device(device)));
    }
    for (label, pkg) in &daemons {
        let dir = base.join("mnt/rss");
        fs::create_dir_all(&dir).unwrap();
        let (pid, _) = mount_store(pkg, &root, &dir);
        let mounted = Mounted {
            dir: dir.clone(),
            files: dir.clone(),
            pid: Some(pid),
            child: None,
        };
        let before = memory_of(pid);
        for index in 0..RSS_PACKAGES {
            let name = format!("p{index:03}");
            fs::read(dir.join(format!("lib/lib{name}.so.1"))).unwrap();
        }
        let after = memory_of(pid);
        drop(mounted);
        println!("  {label}: {}", pkg.program.display());
        println!("    mounted:                          {before}");
        println!(
            "    after reading one file of each:   {after}, peak {:.2} MiB: {}",
            mib(after.peak),
            if after.rss <= 4096 { "met" } else { "MISSED" }
        );
    }

    let reference = [
        (
            "squashfuse_ll",
            System::Squashfuse {
                image: image.to_path_buf(),
            },
        ),
        (
            "pkg store (host)",
            System::Ours {
                pkg: host.clone(),
                root: base.join("root"),
                label: "pkg store",
            },
        ),
    ];
    println!("memory, the one 50 MB image:");
    for (label, system) in reference {
        let mounted = system.mount(&base.join("mnt/rss-one"));
        let pid = mounted.pid.unwrap();
        let before = memory_of(pid);
        fs::read(walk_first_file(&mounted.files)).unwrap();
        let after = memory_of(pid);
        drop(mounted);
        println!("  {label:<18} mounted {before}; after reading one file {after}");
    }
}

/// The first regular file found below `dir`.
fn walk_first_file(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in &entries {
        if fs::symlink_metadata(path).unwrap().is_file() {
            return path.clone();
        }
    }
    for path in entries {
        if path.is_dir() {
            return walk_first_file(&path);
        }
    }
    panic!("no file below {}", dir.display());
}

// ---- the payload ------------------------------------------------------------------

struct Payload {
    dir: PathBuf,
    /// Relative paths and sizes, in the order they are read.
    files: Vec<(PathBuf, u64)>,
    hashes: Vec<[u8; 32]>,
    dirs: usize,
    bytes: u64,
    compressible: u64,
}

/// xorshift64: the same bytes for the same seed, on every machine.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        let mut x = self.0 | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn noise(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&self.next().to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }

    /// Text-like bytes: words from a small vocabulary, numbers and newlines; deflate
    /// makes about a third of it.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 32] = [
            "the",
            "package",
            "store",
            "image",
            "block",
            "inode",
            "router",
            "kernel",
            "amber",
            "squashfs",
            "mount",
            "read",
            "write",
            "file",
            "directory",
            "link",
            "signature",
            "index",
            "version",
            "config",
            "service",
            "network",
            "interface",
            "address",
            "return",
            "error",
            "value",
            "static",
            "const",
            "fn",
            "let",
            "match",
        ];
        let mut bytes = Vec::with_capacity(len + 16);
        while bytes.len() < len {
            match self.below(12) {
                0 => bytes.extend_from_slice(format!("{} ", self.below(100_000)).as_bytes()),
                1 => bytes.push(b'\n'),
                _ => {
                    bytes.extend_from_slice(WORDS[self.below(32) as usize].as_bytes());
                    bytes.push(b' ');
                }
            }
        }
        bytes.truncate(len);
        bytes
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// The payload's file list: (relative path, size, compressible) in generation order.
fn payload_plan() -> Vec<(PathBuf, u64, u8)> {
    let mut random = Random(0x5eed);
    let mut plan = Vec::new();
    let mut total = 0u64;
    let mut index = 0u64;
    while total < PAYLOAD_BYTES {
        // Mostly small files, some medium, a few large: like a real package tree.
        let size = match random.below(100) {
            0..=74 => random.below(8 * 1024),
            75..=91 => 8 * 1024 + random.below(56 * 1024),
            92..=98 => 64 * 1024 + random.below(192 * 1024),
            _ => 512 * 1024 + random.below(2 * 1024 * 1024),
        }
        .min(PAYLOAD_BYTES - total);
        // 0: noise, 1: text, 2: mostly zeros with text.
        let kind = match random.below(10) {
            0..=3 => 0,
            4..=8 => 1,
            _ => 2,
        };
        let depth = 1 + random.below(4);
        let mut path = PathBuf::new();
        for level in 0..depth {
            path.push(format!("d{level}-{}", random.below(6 - level)));
        }
        path.push(format!("file-{index:05}"));
        plan.push((path, size, kind));
        total += size;
        index += 1;
    }
    plan
}

/// Generate the payload unless a previous run left it complete.
fn ensure_payload(dir: &Path) -> Payload {
    // Beside the tree, not in it: everything in it is packed.
    let stamp = dir.with_extension("complete");
    let plan = payload_plan();
    if fs::read_to_string(&stamp).ok().as_deref() != Some(PAYLOAD_VERSION) {
        let _ = fs::remove_dir_all(dir);
        let mut random = Random(0xda7a);
        for (path, size, kind) in &plan {
            let size = *size as usize;
            let bytes = match kind {
                0 => random.noise(size),
                1 => random.text(size),
                _ => {
                    let mut bytes = vec![0u8; size];
                    let text = random.text(size / 8);
                    bytes[..text.len()].copy_from_slice(&text);
                    bytes
                }
            };
            write_file(&dir.join(path), &bytes);
        }
        fs::write(&stamp, PAYLOAD_VERSION).unwrap();
    }
    let mut dirs = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    let mut hashes = Vec::new();
    let mut bytes = 0;
    let mut compressible = 0;
    for (path, size, kind) in &plan {
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_path_buf());
            parent = p.parent();
        }
        let contents = fs::read(dir.join(path)).unwrap();
        assert_eq!(
            contents.len() as u64,
            *size,
            "{}: stale payload",
            path.display()
        );
        hashes.push(sha256(&contents));
        files.push((path.clone(), *size));
        bytes += size;
        if *kind != 0 {
            compressible += size;
        }
    }
    Payload {
        dir: dir.to_path_buf(),
        files,
        hashes,
        dirs: dirs.len(),
        bytes,
        compressible,
    }
}

/// Pack the payload into one image and install it into a fresh store at `root`;
/// returns the installed image's path.
fn install_payload(pkg: &Pkg, base: &Path, payload: &Payload, root: &Path) -> PathBuf {
    let packed = base.join("bench-1.0-r0.squashfs");
    let _ = fs::remove_file(&packed);
    run(pkg
        .command()
        .arg("pack")
        .arg(&payload.dir)
        .arg("-o")
        .arg(&packed)
        .args(["--name", "bench", "--version", "1.0-r0", "--arch", ARCH])
        .stdout(Stdio::null()));
    let _ = fs::remove_dir_all(root);
    run(pkg
        .command()
        .arg("--root")
        .arg(root)
        .args(["add", "--allow-untrusted"])
        .arg(&packed)
        .stdout(Stdio::null()));
    root.join("images/bench-1.0-r0.squashfs")
}

// ---- running things ---------------------------------------------------------------

fn preflight() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0");
    assert!(root, "the store bench mounts filesystems: run it as root");
    assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing");
    for program in ["squashfuse_ll", "mount", "umount", "sync"] {
        assert!(
            amber_tests::have(program),
            "{program} is needed: apt-get install squashfuse mount coreutils"
        );
    }
}

/// Which pkg to build.
enum Build<'a> {
    /// The release profile as users get it (size-optimized).
    Release,
    /// Everything at opt-level 3, under `BASE/target-opt3`.
    Opt3(&'a Path),
    /// Only the inflater at opt-level 3, under `BASE/target-inflate3`.
    Inflate3(&'a Path),
}

/// Build the pkg binary in release; returns its path.
fn build_pkg(workspace: &Path, build: Build) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "-p", "amber-pkg"]);
    let binary = match build {
        Build::Release => {
            println!("$ cargo build --release -p amber-pkg");
            amber_tests::target_dir().join("release/pkg")
        }
        Build::Opt3(base) => {
            let dir = base.join("target-opt3");
            command
                .arg("--target-dir")
                .arg(&dir)
                .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3");
            println!(
                "$ CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo build --release -p amber-pkg --target-dir {}",
                dir.display()
            );
            dir.join("release/pkg")
        }
        Build::Inflate3(base) => {
            let dir = base.join("target-inflate3");
            let setting = "profile.release.package.miniz_oxide.opt-level=3";
            command
                .arg("--target-dir")
                .arg(&dir)
                .args(["--config", setting]);
            println!(
                "$ cargo build --release -p amber-pkg --config {setting} --target-dir {}",
                dir.display()
            );
            dir.join("release/pkg")
        }
    };
    run(&mut command);
    let binary = fs::canonicalize(&binary).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    println!("  {} bytes", fs::metadata(&binary).unwrap().len());
    binary
}

/// Run a command that must succeed.
fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(status.success(), "{command:?} failed with {status}");
}

/// User and system time of process `pid` so far (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let tick =
        |index: usize| -> u64 { fields.get(index).and_then(|f| f.parse().ok()).unwrap_or(0) };
    Duration::from_millis((tick(11) + tick(12)) * 10)
}
