//! The FUSE store side by side with its peers (DESIGN §8): `pkg store mount`,
//! `squashfuse_ll` and the kernel's squashfs reading the same image in the same run,
//! with the same readahead. Run as root with `cargo xtask bench store` (`cargo bench -p
//! amber-tests --bench store`); it needs /dev/fuse, `squashfuse_ll`, `mount`, `umount`,
//! `sync`, a writable `/proc/sys/vm/drop_caches` and writable readahead files in sysfs.
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
//! Readahead decides how much a cold read asks for at once, so every mount gets the
//! same: after each mount the bench writes `--readahead` KiB (default 128, what the
//! kernel gives a new FUSE mount, which squashfuse_ll keeps; a loop device gets a
//! default of its own from its queue limits, which the bench prints) into every file
//! that sets it, reads each back, and checks them again before and after every timed
//! pass. For a FUSE mount that is its backing device's
//! `/sys/class/bdi/<major:minor>/read_ahead_kb`; the `max_readahead` a FUSE daemon
//! answers at INIT only caps that value once, at INIT, and both daemons take the
//! kernel's offer (the new device's 128 KiB: `store/src/fuse.rs` answers the smaller
//! of its ask and the offer, libfuse keeps it). For the kernel's mount it is the loop
//! device's `/sys/block/loopN/queue/read_ahead_kb` and the bdi of the mount (the same
//! device), put back after unmounting as it was before mounting, since a loop device outlives
//! its mount. The image file underneath is read through the host filesystem by all
//! three alike; the bench prints that device's readahead and leaves it alone. These
//! figures are the ones the goals are judged on. A second set measures each side as
//! it ships (ours raises its mount's readahead in `mount.rs`; the others keep the
//! kernel's), not judged; `--equal-only` skips it.
//!
//! Measured for each, interleaved, median of the runs, files read with a 128 KiB
//! buffer in the payload's order, by one reader and by several (`--threads`, default
//! 4) each taking every n-th file:
//! - cold read: mount afresh, `sync`, drop the page cache, then read every file. A
//!   fresh mount is a fresh daemon for the FUSE sides, so nothing an earlier pass
//!   opened or decompressed is kept; what every side reads while mounting (the
//!   superblock and tables; ours also lists the image to build the exchange
//!   directories) stays in its own small caches, as after a boot;
//! - warm read: read every file again right after (the best of three passes);
//! - cold and warm stat walk: mount afresh, drop caches, then list every directory and
//!   lstat every entry; then again (best of three).
//!
//! Each ratio is given for the medians and for each side's best run. A goal is met when
//! both meet it: load only ever adds time, so where the two fall on different sides of
//! a goal the load slowed one side more than the other (the loop device's worker runs
//! at normal priority, the daemons at the bench's), and the bench says which.
//!
//! For the FUSE daemons, what they spent on each cold pass is shown too, from /proc:
//! the time their threads ran (since on a loaded machine the wall times move a lot),
//! their write calls (one per reply, so the requests they served) and their threads.
//! And on a mount of its own, the time of one lookup of a missing name, which each
//! daemon answers without letting the kernel cache it: the least one FUSE request
//! costs, which the cold walk pays twice per directory (a listing, then the empty one
//! that tells the kernel it is complete).
//!
//! Then memory: the store daemon's VmRSS with 100 packages installed and mounted after
//! one file of each is read, next to squashfuse_ll's with the one image mounted. The
//! host pkg links glibc dynamically, whose libc.so pages count in its RSS; the device
//! binary (static musl, `target/device/x86_64-unknown-linux-musl/release/amber`, made
//! by `cargo xtask build`) is measured as well when it is there.
//!
//! Options: `--quick` measures once; `--runs N` (default 5); `--threads N` readers for
//! the parallel read (default 4); `--readahead KIB` for every mount (default 128);
//! `--equal-only` skips the as-shipped set; `--no-variants` skips the two comparison
//! builds; `--pkg PATH` measures that pkg binary and builds nothing; `--device PATH`
//! names the device binary.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
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
/// The readahead every mount gets unless `--readahead` says otherwise: what the kernel
/// gives a new FUSE mount's backing device (VM_READAHEAD_PAGES).
const READAHEAD_KIB: u32 = 128;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 5;
    let mut threads = 4;
    let mut readahead = READAHEAD_KIB;
    let mut shipped = true;
    let mut variants = true;
    let mut prebuilt = None;
    let mut device = None;
    let mut options = args.iter();
    while let Some(arg) = options.next() {
        match arg.as_str() {
            "--quick" => runs = 1,
            "--no-variants" | "--no-opt3" => variants = false,
            "--equal-only" => shipped = false,
            "--device" => {
                device = Some(PathBuf::from(
                    options.next().expect("--device wants a path"),
                ))
            }
            "--pkg" => prebuilt = Some(PathBuf::from(options.next().expect("--pkg wants a path"))),
            "--runs" | "--threads" | "--readahead" => {
                let value = options
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| panic!("{arg} wants a positive number"));
                match arg.as_str() {
                    "--runs" => runs = value,
                    "--threads" => threads = value,
                    _ => readahead = u32::try_from(value).expect("--readahead is too big"),
                }
            }
            // cargo bench passes --bench to every harness = false target.
            "--bench" => {}
            other => panic!(
                "unknown option {other}; known: --quick, --runs N, --threads N, \
                 --readahead KIB, --equal-only, --no-variants, --pkg PATH, --device PATH"
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
        "kernel {}; the image file is read through {}",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        backing_device(&image)
    );
    println!(
        "runs: {runs}, interleaved, medians and best runs reported; reads: {BUFFER} byte buffer, 1 and \
         {threads} readers; load average before: {}",
        load_average()
    );
    println!(
        "scheduling: {}; the FUSE daemons inherit it, the loop device's kernel worker, which \
         reads the image for the kernel's mount, does not",
        scheduling()
    );
    warn_if_busy();
    println!();

    let mut sides = vec![Side {
        system: System::Ours {
            pkg: Pkg::host(&pkg),
            root: root.clone(),
            label: "pkg store",
        },
        readahead: Readahead::Equal(readahead),
    }];
    for (binary, label) in &variants {
        sides.push(Side {
            system: System::Ours {
                pkg: Pkg::host(binary),
                root: root.clone(),
                label,
            },
            readahead: Readahead::Equal(readahead),
        });
    }
    let peers = [
        System::Squashfuse {
            image: image.clone(),
        },
        System::Kernel {
            image: image.clone(),
        },
    ];
    for peer in &peers {
        sides.push(Side {
            system: peer.clone(),
            readahead: Readahead::Equal(readahead),
        });
    }
    if shipped {
        for system in [sides[0].system.clone(), peers[0].clone(), peers[1].clone()] {
            sides.push(Side {
                system,
                readahead: Readahead::Shipped,
            });
        }
    }
    let mounts = base.join("mnt");

    // Every side reads the same bytes and lists the same tree, checked once, and shows
    // where its readahead is set.
    println!("readahead of each mount (KiB), read back before and after every timed pass:");
    for side in &sides {
        let mounted = side.system.mount(&mounts.join("check"), side.readahead);
        // The as-shipped set mounts the same programs on the same image again.
        if side.readahead != Readahead::Shipped {
            verify(&mounted, &payload);
        }
        println!(
            "  {:<14} {:<15} {}",
            side.system.label(),
            side.readahead.to_string(),
            mounted.readahead_report()
        );
    }
    println!();

    let mut results: Vec<Vec<Measure>> = vec![Vec::new(); sides.len()];
    for run in 0..runs {
        for (index, side) in sides.iter().enumerate() {
            let measure = measure(side, &mounts.join(format!("m{index}")), &payload, threads);
            println!(
                "run {}: {:<14} {:<15} cold read {:.3} s (daemon CPU {:.2} s), warm read \
                 {:.3} s, cold read x{threads} {:.3} s, warm read x{threads} {:.3} s, cold \
                 walk {:.3} s, warm walk {:.3} s",
                run + 1,
                side.system.label(),
                side.readahead.to_string(),
                measure.cold_read.as_secs_f64(),
                measure.cold_read_work.cpu.as_secs_f64(),
                measure.warm_read.as_secs_f64(),
                measure.cold_parallel.as_secs_f64(),
                measure.warm_parallel.as_secs_f64(),
                measure.cold_walk.as_secs_f64(),
                measure.warm_walk.as_secs_f64(),
            );
            results[index].push(measure);
        }
    }
    println!();
    let benches = benches(&payload, threads);
    let equal: Vec<usize> = (0..sides.len())
        .filter(|&i| sides[i].readahead != Readahead::Shipped)
        .collect();
    report(&sides, &results, &equal, &benches, &payload, true);
    if shipped {
        let as_shipped: Vec<usize> = (0..sides.len())
            .filter(|&i| sides[i].readahead == Readahead::Shipped)
            .collect();
        println!();
        report(&sides, &results, &as_shipped, &benches, &payload, false);
    }
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

/// Say so when other work keeps the CPUs busy: the loop device's worker then waits
/// behind it while the daemons, at the bench's priority, do not, so the kernel's
/// figures (the cold walk most) come out slower than on a quiet machine.
fn warn_if_busy() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load: f64 = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    if load > cpus as f64 {
        println!(
            "warning: load average {load:.1} on {cpus} CPUs: the kernel's side waits behind \
             other work more than the daemons do; compare the per-run lines"
        );
    }
}

/// This process's scheduling policy, from /proc/self/stat: the bench is meant to run
/// under `chrt -r 10` on a shared machine.
fn scheduling() -> String {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // Fields 40 and 41 of proc(5), counted from the state, which is field 3.
    let priority = fields.get(37).copied().unwrap_or("?");
    match fields.get(38).copied() {
        Some("1") => format!("SCHED_FIFO {priority}"),
        Some("2") => format!("SCHED_RR {priority}"),
        Some("0") => "SCHED_OTHER (run it under `chrt -r 10` for steadier numbers)".to_owned(),
        other => format!("policy {}", other.unwrap_or("?")),
    }
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

#[derive(Clone)]
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

/// The readahead a mount gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readahead {
    /// This many KiB in every file that sets it, written by the bench.
    Equal(u32),
    /// What the side sets itself.
    Shipped,
}

impl std::fmt::Display for Readahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readahead::Equal(kib) => write!(f, "equal {kib} KiB"),
            Readahead::Shipped => write!(f, "as shipped"),
        }
    }
}

/// One column of the results: a system at a readahead.
struct Side {
    system: System,
    readahead: Readahead,
}

impl System {
    fn label(&self) -> &'static str {
        match self {
            System::Ours { label, .. } => label,
            System::Squashfuse { .. } => "squashfuse_ll",
            System::Kernel { .. } => "kernel",
        }
    }

    /// What the side is, in a few words, for the report.
    fn what(&self) -> &'static str {
        match self {
            System::Ours { .. } => "FUSE daemon `pkg store mount` (own protocol code, miniz_oxide)",
            System::Squashfuse { .. } => "FUSE daemon squashfuse_ll (libfuse 3, zlib)",
            System::Kernel { .. } => "kernel squashfs on a loop device",
        }
    }

    /// Mount on `dir` (made empty first) with `readahead`.
    fn mount(&self, dir: &Path, readahead: Readahead) -> Mounted {
        let _ = fs::create_dir_all(dir);
        // A loop device keeps its readahead when it is detached, and the kernel sets one
        // of its own when it is attached: note what each held, to put it back after.
        let idle_loops = match self {
            System::Kernel { .. } => loop_readaheads(),
            _ => Vec::new(),
        };
        let mut mounted = match self {
            System::Ours { pkg, root, .. } => {
                let (pid, _) = mount_store(pkg, root, dir);
                Mounted::new(dir, dir.join("bench-1.0-r0"), Some(pid), None)
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
                let mounted = Mounted::new(dir, dir.to_path_buf(), Some(pid), Some(child));
                wait_for(|| is_mounted(dir), "squashfuse_ll to mount");
                mounted
            }
            System::Kernel { image } => {
                run(Command::new("mount")
                    .args(["-t", "squashfs", "-o", "loop,ro"])
                    .arg(image)
                    .arg(dir));
                Mounted::new(dir, dir.to_path_buf(), None, None)
            }
        };
        // A listing waits until the daemon serves requests, which it does only after the
        // INIT handshake and whatever it sets up after it (ours raises its readahead
        // there), so the values read below are the ones the passes will see.
        let listed = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .count();
        assert!(listed > 0, "{}: mounted empty", dir.display());
        mounted.set_readahead(self, readahead, &idle_loops);
        mounted
    }
}

/// A mounted system; unmounted when dropped, its daemon gone.
struct Mounted {
    dir: PathBuf,
    /// Where the payload's files are.
    files: PathBuf,
    pid: Option<u32>,
    child: Option<Child>,
    /// The files setting this mount's readahead: path, KiB after mounting, KiB now.
    readahead: Vec<(PathBuf, u32, u32)>,
    /// A loop device's readahead before it was attached, put back once it is detached.
    restore: Vec<(PathBuf, u32)>,
}

impl Mounted {
    fn new(dir: &Path, files: PathBuf, pid: Option<u32>, child: Option<Child>) -> Mounted {
        Mounted {
            dir: dir.to_path_buf(),
            files,
            pid,
            child,
            readahead: Vec::new(),
            restore: Vec::new(),
        }
    }

    /// Find the files that set this mount's readahead and, for [`Readahead::Equal`],
    /// write the value into each and read it back. `idle_loops` is what every loop
    /// device's readahead was before mounting.
    fn set_readahead(
        &mut self,
        system: &System,
        readahead: Readahead,
        idle_loops: &[(PathBuf, u32)],
    ) {
        let device = mount_device(&self.dir)
            .unwrap_or_else(|| panic!("{}: not in mountinfo", self.dir.display()));
        let mut files = Vec::new();
        if let System::Kernel { .. } = system {
            // /sys/dev/block/7:N links to the loop device's directory, named loopN.
            let link = fs::read_link(format!("/sys/dev/block/{device}"))
                .unwrap_or_else(|e| panic!("/sys/dev/block/{device}: {e}"));
            let name = link.file_name().unwrap().to_string_lossy().into_owned();
            let queue = PathBuf::from(format!("/sys/block/{name}/queue/read_ahead_kb"));
            if let Some((_, kib)) = idle_loops.iter().find(|(path, _)| *path == queue) {
                self.restore.push((queue.clone(), *kib));
            }
            files.push(queue);
        }
        files.push(PathBuf::from(format!(
            "/sys/class/bdi/{device}/read_ahead_kb"
        )));
        // Read every file before writing any: the loop device's queue and its bdi are
        // the same setting, so writing one shows in the other.
        let found: Vec<(PathBuf, u32)> = files
            .into_iter()
            .map(|path| {
                let kib = read_kib(&path);
                (path, kib)
            })
            .collect();
        for (path, found) in found {
            let now = match readahead {
                Readahead::Equal(kib) => {
                    fs::write(&path, kib.to_string())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let now = read_kib(&path);
                    assert_eq!(now, kib, "{}: wrote {kib}, read {now}", path.display());
                    now
                }
                Readahead::Shipped => found,
            };
            self.readahead.push((path, found, now));
        }
    }

    /// Every readahead file still holds what the mount started the passes with.
    fn check_readahead(&self) {
        for (path, _, kib) in &self.readahead {
            let now = read_kib(path);
            assert_eq!(now, *kib, "{}: changed during a pass", path.display());
        }
    }

    /// `path: found -> set` for each readahead file.
    fn readahead_report(&self) -> String {
        let files: Vec<String> = self
            .readahead
            .iter()
            .map(|(path, found, now)| {
                if found == now {
                    format!("{} = {now}", path.display())
                } else {
                    format!("{} = {found} after mounting, set to {now}", path.display())
                }
            })
            .collect();
        files.join("; ")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        for (path, kib) in &self.restore {
            let _ = fs::write(path, kib.to_string());
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

/// Every loop device's readahead file and its value in KiB.
fn loop_readaheads() -> Vec<(PathBuf, u32)> {
    let Ok(devices) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    devices
        .flatten()
        .filter(|device| device.file_name().to_string_lossy().starts_with("loop"))
        .map(|device| device.path().join("queue/read_ahead_kb"))
        .filter_map(|path| {
            let kib = fs::read_to_string(&path).ok()?.trim().parse().ok()?;
            Some((path, kib))
        })
        .collect()
}

/// A readahead file's value in KiB.
fn read_kib(path: &Path) -> u32 {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: {text:?} is no number", path.display()))
}

/// The device number (`major:minor`) of the mount on `dir`, from mountinfo.
fn mount_device(dir: &Path) -> Option<String> {
    let dir = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .rfind(|fields| fields.get(4) == Some(&dir.as_str()))
        .and_then(|fields| fields.get(2).map(|d| d.to_string()))
}

/// The device holding `file` and its readahead, which every side reads through.
fn backing_device(file: &Path) -> String {
    let dev = fs::metadata(file).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    match fs::read_to_string(&path) {
        Ok(kib) => format!(
            "device {major}:{minor}, readahead {} KiB ({path}, left as it is)",
            kib.trim()
        ),
        Err(_) => format!("device {major}:{minor}, which has no readahead of its own"),
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

/// How many threads process `pid` has now.
fn threads_of(pid: u32) -> usize {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn is_mounted(dir: &Path) -> bool {
    mount_device(dir).is_some()
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

/// What a FUSE daemon spent on one pass, from /proc (nothing for the kernel, whose work
/// is nobody's process).
#[derive(Debug, Clone, Copy, Default)]
struct Work {
    /// Time its threads ran, user and system.
    cpu: Duration,
    /// Its write calls: each reply to the kernel is one, so this counts the requests
    /// it served.
    replies: u64,
    /// Its threads at the end.
    threads: usize,
}

impl Work {
    fn of(pid: Option<u32>) -> Work {
        let Some(pid) = pid else {
            return Work::default();
        };
        let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        Work {
            cpu: cpu_time(pid),
            replies: io
                .lines()
                .find_map(|l| l.strip_prefix("syscw:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0),
            threads: threads_of(pid),
        }
    }

    fn since(self, before: Work) -> Work {
        Work {
            cpu: self.cpu.saturating_sub(before.cpu),
            replies: self.replies.saturating_sub(before.replies),
            threads: self.threads,
        }
    }
}

#[derive(Debug, Clone)]
struct Measure {
    cold_read: Duration,
    cold_read_work: Work,
    warm_read: Duration,
    cold_parallel: Duration,
    cold_parallel_work: Work,
    warm_parallel: Duration,
    cold_walk: Duration,
    cold_walk_work: Work,
    warm_walk: Duration,
    /// One lookup of a missing name, on a mount of its own.
    round_trip: Duration,
}

fn measure(side: &Side, dir: &Path, payload: &Payload, threads: usize) -> Measure {
    let timed = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        started.elapsed()
    };
    // Warm state does not change between passes, so the best of a few is its cost with
    // the least of the machine's other load in it.
    let best = |f: &mut dyn FnMut()| (0..WARM_PASSES).map(|_| timed(&mut *f)).min().unwrap();
    let mut buffer = vec![0u8; BUFFER];
    let expected = payload.files.len() + payload.dirs;
    // Each block mounts afresh: a new daemon, or a new loop device, with no state from
    // an earlier pass; then the page cache goes too.
    let (cold_read, cold_read_work, warm_read) = {
        let mounted = side.system.mount(dir, side.readahead);
        drop_caches();
        mounted.check_readahead();
        let before = Work::of(mounted.pid);
        let cold = timed(&mut || {
            assert_eq!(
                read_all(&mounted.files, &payload.files, &mut buffer),
                payload.bytes
            )
        });
        let work = Work::of(mounted.pid).since(before);
        let warm = best(&mut || {
            assert_eq!(
                read_all(&mounted.files, &payload.files, &mut buffer),
                payload.bytes
            )
        });
        mounted.check_readahead();
        (cold, work, warm)
    };
    let (cold_parallel, cold_parallel_work, warm_parallel) = {
        let mounted = side.system.mount(dir, side.readahead);
        drop_caches();
        mounted.check_readahead();
        let before = Work::of(mounted.pid);
        let cold = timed(&mut || {
            assert_eq!(
                read_parallel(&mounted.files, &payload.files, threads),
                payload.bytes
            )
        });
        let work = Work::of(mounted.pid).since(before);
        let warm = best(&mut || {
            assert_eq!(
                read_parallel(&mounted.files, &payload.files, threads),
                payload.bytes
            )
        });
        mounted.check_readahead();
        (cold, work, warm)
    };
    let (cold_walk, cold_walk_work, warm_walk) = {
        let mounted = side.system.mount(dir, side.readahead);
        drop_caches();
        let before = Work::of(mounted.pid);
        let cold = timed(&mut || assert!(walk(&mounted.files) >= expected));
        let work = Work::of(mounted.pid).since(before);
        let warm = best(&mut || assert!(walk(&mounted.files) >= expected));
        (cold, work, warm)
    };
    let round_trip = {
        let mounted = side.system.mount(dir, side.readahead);
        round_trip(&mounted.files)
    };
    Measure {
        cold_read,
        cold_read_work,
        warm_read,
        cold_parallel,
        cold_parallel_work,
        warm_parallel,
        cold_walk,
        cold_walk_work,
        warm_walk,
        round_trip,
    }
}

/// Names looked up to time one round trip.
const ROUND_TRIPS: u32 = 1000;

/// The time of one lookup of a name that is not there: both daemons answer ENOENT
/// without letting the kernel cache it, so each is one request and the least a FUSE
/// request costs. A cold walk cannot take less than its requests times this.
fn round_trip(dir: &Path) -> Duration {
    let started = Instant::now();
    for index in 0..ROUND_TRIPS {
        let missing = dir.join(format!("missing-{index}"));
        assert!(
            fs::symlink_metadata(&missing).is_err(),
            "{}",
            missing.display()
        );
    }
    started.elapsed() / ROUND_TRIPS
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

// ---- the report -------------------------------------------------------------------

type Pick = fn(&Measure) -> Duration;
type PickWork = fn(&Measure) -> Work;

/// One benchmark: what every side does in it, and the goal against which peer.
struct Bench {
    name: String,
    does: String,
    time: Pick,
    /// What the daemon spent in it, where that is measured (the cold passes).
    work: Option<PickWork>,
    /// Whether to show what its requests cost in FUSE round trips alone.
    round_trips: bool,
    peer: &'static str,
    goal: f64,
}

fn benches(payload: &Payload, threads: usize) -> Vec<Bench> {
    let files = format!(
        "the {} files ({:.1} MB)",
        payload.files.len(),
        payload.bytes as f64 / 1e6
    );
    let entries = payload.files.len() + payload.dirs;
    let fresh = "mounted afresh, sync, page cache dropped";
    let warm = format!("the same mount right after, best of {WARM_PASSES} passes");
    let bench =
        |name: String, does: String, time: Pick, work: Option<PickWork>, peer, goal| Bench {
            name,
            does,
            time,
            work,
            round_trips: false,
            peer,
            goal,
        };
    vec![
        bench(
            "cold read, 1 reader".into(),
            format!("{fresh}, then {files} read in order"),
            |m| m.cold_read,
            Some(|m| m.cold_read_work),
            "squashfuse_ll",
            1.0,
        ),
        bench(
            "warm read, 1 reader".into(),
            format!("{warm}: {files} read in order"),
            |m| m.warm_read,
            None,
            "kernel",
            1.3,
        ),
        bench(
            format!("cold read, {threads} readers"),
            format!("{fresh}, then {files} read by {threads} readers, each every {threads}th"),
            |m| m.cold_parallel,
            Some(|m| m.cold_parallel_work),
            "squashfuse_ll",
            1.0,
        ),
        bench(
            format!("warm read, {threads} readers"),
            format!("{warm}: {files} read by {threads} readers"),
            |m| m.warm_parallel,
            None,
            "kernel",
            1.3,
        ),
        // The cold walk is where FUSE's own cost shows: two requests per directory.
        Bench {
            round_trips: true,
            ..bench(
                "cold stat walk".into(),
                format!("{fresh}, then every directory listed and its {entries} entries lstat'ed"),
                |m| m.cold_walk,
                Some(|m| m.cold_walk_work),
                "kernel",
                2.0,
            )
        },
        bench(
            "warm stat walk".into(),
            format!("{warm}: the same listing and lstat's"),
            |m| m.warm_walk,
            None,
            "kernel",
            2.0,
        ),
    ]
}

/// The report of the sides `columns` (one readahead setting): with `judged`, a block
/// per benchmark (each side, what it does, its figure, the ratio against the goal's
/// peer), then the table of medians and the ratios.
fn report(
    sides: &[Side],
    results: &[Vec<Measure>],
    columns: &[usize],
    benches: &[Bench],
    payload: &Payload,
    judged: bool,
) {
    let readahead = sides[columns[0]].readahead;
    let median_of = |column: usize, pick: Pick| median(results[column].iter().map(pick));
    let cpu_of =
        |column: usize, pick: PickWork| median(results[column].iter().map(|m| pick(m).cpu));
    let replies_of = |column: usize, pick: PickWork| {
        let mut replies: Vec<u64> = results[column].iter().map(|m| pick(m).replies).collect();
        replies.sort_unstable();
        replies[replies.len() / 2]
    };
    let column = |label: &str| {
        columns
            .iter()
            .copied()
            .find(|&c| sides[c].system.label() == label)
            .unwrap()
    };
    let ours = column("pkg store");
    // The least disturbed run of each side: load only ever adds time, so where the
    // best runs and the medians disagree on a goal, the load moved one side more.
    let best_of = |column: usize, pick: Pick| results[column].iter().map(pick).min().unwrap();
    let best_ratio = |bench: &Bench, peer: usize| {
        best_of(ours, bench.time).as_secs_f64() / best_of(peer, bench.time).as_secs_f64()
    };
    // The three systems; the variants only get their own table.
    let main: Vec<usize> = [ours, column("squashfuse_ll"), column("kernel")].to_vec();

    println!(
        "==== readahead {readahead}{}",
        if judged {
            ": the goals are judged on these"
        } else {
            ": each side's own defaults, not judged"
        }
    );
    println!();
    if judged {
        let setting = match readahead {
            Readahead::Equal(kib) => format!("readahead {kib} KiB"),
            Readahead::Shipped => "its own readahead".to_owned(),
        };
        for bench in benches {
            println!("{}: {}", bench.name, bench.does);
            for &side in &main {
                let system = &sides[side].system;
                let work = match (bench.work, system) {
                    (Some(pick), System::Ours { .. } | System::Squashfuse { .. }) => format!(
                        "daemon CPU {:.3} s, {} replies, threads {}",
                        cpu_of(side, pick).as_secs_f64(),
                        replies_of(side, pick),
                        results[side]
                            .iter()
                            .map(|m| pick(m).threads)
                            .max()
                            .unwrap_or(0),
                    ),
                    _ => String::new(),
                };
                println!(
                    "  {:<14} {:>7.3} s  {work:<48} {}, {setting}",
                    system.label(),
                    median_of(side, bench.time).as_secs_f64(),
                    system.what(),
                );
            }
            if let (true, Some(pick)) = (bench.round_trips, bench.work) {
                // What the FUSE transport alone costs this benchmark's requests.
                let trips: Vec<String> = main
                    .iter()
                    .map(|&side| {
                        format!(
                            "{} {:.1} us",
                            sides[side].system.label(),
                            median_of(side, |m| m.round_trip).as_secs_f64() * 1e6
                        )
                    })
                    .collect();
                let trip = median_of(ours, |m| m.round_trip);
                println!(
                    "  one lookup of a missing name (timed apart, {ROUND_TRIPS} times): {}; \
                     pkg store's {} replies at that are {:.3} s",
                    trips.join(", "),
                    replies_of(ours, pick),
                    trip.as_secs_f64() * replies_of(ours, pick) as f64
                );
            }
            let peer = column(bench.peer);
            let value = median_of(ours, bench.time).as_secs_f64()
                / median_of(peer, bench.time).as_secs_f64();
            let best = best_ratio(bench, peer);
            println!(
                "  pkg store / {}: {value:.2}, of the best runs {best:.2} (goal <= {}): {}",
                bench.peer,
                bench.goal,
                verdict(value, best, bench.goal)
            );
            println!();
        }
    }

    print!("{:<24}", "median seconds");
    for &side in columns {
        print!("{:>15}", sides[side].system.label());
    }
    println!();
    for bench in benches {
        print!("{:<24}", bench.name);
        for &side in columns {
            print!("{:>15.3}", median_of(side, bench.time).as_secs_f64());
        }
        println!();
        if let Some(pick) = bench.work {
            print!("{:<24}", "  daemon CPU in it");
            for &side in columns {
                match sides[side].system {
                    System::Kernel { .. } => print!("{:>15}", "-"),
                    _ => print!("{:>15.3}", cpu_of(side, pick).as_secs_f64()),
                }
            }
            println!();
            print!("{:<24}", "  replies (requests)");
            for &side in columns {
                match sides[side].system {
                    System::Kernel { .. } => print!("{:>15}", "-"),
                    _ => print!("{:>15}", replies_of(side, pick)),
                }
            }
            println!();
        }
    }
    let mb = payload.bytes as f64 / 1e6;
    print!("{:<24}", "warm read MB/s");
    for &side in columns {
        print!(
            "{:>15.0}",
            mb / median_of(side, |m| m.warm_read).as_secs_f64()
        );
    }
    println!();

    println!();
    println!(
        "ratios, readahead {readahead} (size-optimized pkg; {}):",
        if judged {
            "goal"
        } else {
            "goal, not judged here"
        }
    );
    for bench in benches {
        let peer = column(bench.peer);
        let value =
            median_of(ours, bench.time).as_secs_f64() / median_of(peer, bench.time).as_secs_f64();
        let best = best_ratio(bench, peer);
        let verdict = if judged {
            verdict(value, best, bench.goal)
        } else {
            ""
        };
        println!(
            "  {:<24} ours/{:<14} {value:>5.2}  (goal <= {}) {verdict}",
            bench.name, bench.peer, bench.goal
        );
        if let Some(pick) = bench.work {
            let squashfuse = column("squashfuse_ll");
            println!(
                "  {:<24} ours/{:<14} {:>5.2}  (what it costs in CPU, whatever the load)",
                "  daemon CPU in it",
                "squashfuse_ll",
                cpu_of(ours, pick).as_secs_f64() / cpu_of(squashfuse, pick).as_secs_f64()
            );
        }
    }
    let variants: Vec<usize> = columns
        .iter()
        .copied()
        .filter(|&c| c != ours && matches!(sides[c].system, System::Ours { .. }))
        .collect();
    if !variants.is_empty() {
        print!(
            "\nvariants against the size-optimized build (time / time of pkg store):\n{:<32}",
            ""
        );
        for &variant in &variants {
            print!("{:>15}", sides[variant].system.label());
        }
        println!();
        for bench in benches {
            print!("  {:<30}", bench.name);
            for &variant in &variants {
                print!(
                    "{:>15.2}",
                    median_of(variant, bench.time).as_secs_f64()
                        / median_of(ours, bench.time).as_secs_f64()
                );
            }
            println!();
        }
    }
}

/// A goal is met when the ratio of the medians and that of the best runs both meet it:
/// load only ever adds time, so where they disagree the load slowed one side more, and
/// a goal met only by a slowed peer is not met.
fn verdict(median: f64, best: f64, goal: f64) -> &'static str {
    match (median <= goal, best <= goal) {
        (true, true) => "met",
        (true, false) => "MISSED (the medians meet it only because the load slowed the peer more)",
        (false, true) => "MISSED (the best runs meet it: the load slowed ours more)",
        (false, false) => "MISSED",
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
            let mut random = Random::new(index as u64 + 1000);
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
        let mounted = Mounted::new(&dir, dir.clone(), Some(pid), None);
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
        let mounted = system.mount(&base.join("mnt/rss-one"), Readahead::Shipped);
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

/// Payload content drawn from the one deterministic generator: the same bytes for the
/// same seed, on every machine.
struct Random(amber_core::random::Random);

impl Random {
    fn new(seed: u64) -> Random {
        Random(amber_core::random::Random::new(seed))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    fn noise(&mut self, len: usize) -> Vec<u8> {
        self.0.bytes(len)
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
    let mut random = Random::new(0x5eed);
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
        let mut random = Random::new(0xda7a);
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

/// The time every thread of process `pid` has run so far: the sum of the threads'
/// schedstat run times (nanoseconds), else user and system time from its stat (clock
/// ticks of 10 ms, too coarse for a stat walk).
fn cpu_time(pid: u32) -> Duration {
    let tasks = fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    let run: Option<u64> = tasks
        .map(|task| {
            let path = task.ok()?.path().join("schedstat");
            fs::read_to_string(path)
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    if let Some(nanoseconds) = run.filter(|n| *n > 0) {
        return Duration::from_nanos(nanoseconds);
    }
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
