//! SquashFS writer and reader against squashfs-tools on the same tree, side by side
//! (DESIGN §8). Run with `cargo xtask bench squashfs`
//! (`cargo bench -p amber-core --bench squashfs`).
//!
//! The tree (≥ 50 MB, ≥ 1,000 files of text-like, binary-like, random and repetitive
//! content, with some duplicates) is generated deterministically under
//! `target/bench-squashfs/tree` and reused by later runs.
//!
//! - Writer: our writer vs `mksquashfs DIR IMG -comp gzip -b 131072 -noappend`, both
//!   reading the same warm tree and writing an image file; goals: time ≤ 2×, image
//!   size within 5%.
//! - Reader: full extraction of mksquashfs's image to disk (every file read whole and
//!   written, with modes and times set) by our reader vs `unsquashfs -d OUT -f IMG`;
//!   goal: time ≤ 1.5×. A read-only pass (decompress every file, write nothing) is
//!   reported too.
//!
//! The sides take turns, a few rounds, and each keeps its best time, so load from
//! other processes on a shared machine favours neither side.
//!
//! Options: `--quick` runs each measurement once.

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use amber_core::random::Random;
use amber_core::squashfs::read::{Archive, Cache, Inode, Kind};
use amber_core::squashfs::write::{write_image, Contents, FileId, Options, Sink, Tree};
use amber_core::squashfs::{ReadAt, ReadError};

/// Bump when the generator changes, so an old tree is rebuilt.
const TREE_VERSION: &str = "amber squashfs bench tree v2";
const MIN_BYTES: u64 = 56 * 1000 * 1000;
const MIN_FILES: usize = 1_200;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let runs = if quick { 1 } else { 3 };
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-squashfs");
    fs::create_dir_all(&base).unwrap();
    let base = fs::canonicalize(&base).unwrap();
    let source = base.join("tree");
    let (files, bytes) = ensure_tree(&base, &source);
    println!(
        "tree: {} ({files} files, {:.1} MB)",
        source.display(),
        bytes as f64 / 1e6
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("threads: {threads} available; mksquashfs and unsquashfs use them all");

    // Warm the page cache so neither side pays for the first read of the tree.
    let (tree, _) = scan(&source);
    drop(tree);
    let _ = Command::new("cat")
        .args(walk_files(&source).iter().map(|p| p.as_os_str().to_owned()))
        .stdout(std::process::Stdio::null())
        .status();

    println!();
    println!("== writer: ours vs mksquashfs -comp gzip -b 131072 -noappend");
    let ours_image = base.join("ours.squashfs");
    let theirs_image = base.join("mksquashfs.squashfs");
    let mut mksquashfs = || {
        let _ = fs::remove_file(&theirs_image);
        timed(|| {
            run(Command::new("mksquashfs")
                .arg(&source)
                .arg(&theirs_image)
                .args([
                    "-comp",
                    "gzip",
                    "-b",
                    "131072",
                    "-noappend",
                    "-quiet",
                    "-no-progress",
                ]))
        })
    };
    let [ours, theirs, ours_single] = interleaved(
        runs,
        [
            &mut || timed(|| write_ours(&source, &ours_image, threads)),
            &mut mksquashfs,
            &mut || timed(|| write_ours(&source, &ours_image, 1)),
        ],
    );
    let ours_size = fs::metadata(&ours_image).unwrap().len();
    let theirs_size = fs::metadata(&theirs_image).unwrap().len();
    println!(
        "ours ({threads} threads): {:>8.3} s   image {ours_size} bytes",
        ours.as_secs_f64()
    );
    println!("ours (1 thread):    {:>8.3} s", ours_single.as_secs_f64());
    println!(
        "mksquashfs:         {:>8.3} s   image {theirs_size} bytes",
        theirs.as_secs_f64()
    );
    let time_ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    let size_ratio = ours_size as f64 / theirs_size as f64;
    println!(
        "time ratio ours/mksquashfs: {time_ratio:.2} (goal <= 2.00) {}",
        verdict(time_ratio <= 2.0)
    );
    println!(
        "size ratio ours/mksquashfs: {size_ratio:.4} (goal within 5%) {}",
        verdict((size_ratio - 1.0).abs() <= 0.05)
    );

    println!();
    println!(
        "== reader: full extraction of the mksquashfs image to disk, ours vs unsquashfs -d OUT -f"
    );
    let ours_out = base.join("extract-ours");
    let theirs_out = base.join("extract-unsquashfs");
    let mut extracted = (0, 0);
    let [ours_read, theirs_read, read_only] = interleaved(
        runs + 2,
        [
            &mut || {
                remove(&ours_out);
                timed(|| extracted = extract_ours(&theirs_image, &ours_out, true))
            },
            &mut || {
                remove(&theirs_out);
                timed(|| {
                    run(Command::new("unsquashfs")
                        .args(["-no-progress", "-quiet", "-d"])
                        .arg(&theirs_out)
                        .arg("-f")
                        .arg(&theirs_image))
                })
            },
            &mut || {
                timed(|| {
                    let read = extract_ours(&theirs_image, &ours_out, false);
                    assert_eq!(read, (files, bytes), "our reading is incomplete");
                })
            },
        ],
    );
    assert_eq!(extracted, (files, bytes), "our extraction is incomplete");
    println!(
        "ours (1 thread):    {:>8.3} s   ({} files, {} bytes written)",
        ours_read.as_secs_f64(),
        extracted.0,
        extracted.1
    );
    println!("unsquashfs:         {:>8.3} s", theirs_read.as_secs_f64());
    let read_ratio = ours_read.as_secs_f64() / theirs_read.as_secs_f64();
    println!(
        "time ratio ours/unsquashfs: {read_ratio:.2} (goal <= 1.50) {}",
        verdict(read_ratio <= 1.5)
    );
    println!(
        "ours, reading only (decompress every file, write nothing): {:.3} s",
        read_only.as_secs_f64()
    );
    remove(&ours_out);
    remove(&theirs_out);
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

fn timed(measure: impl FnOnce()) -> Duration {
    let start = Instant::now();
    measure();
    start.elapsed()
}

/// Run each side once per round, `runs` rounds, and keep each side's best time.
/// Taking turns spreads the load of a shared machine evenly over the sides.
fn interleaved<const N: usize>(
    runs: usize,
    mut sides: [&mut dyn FnMut() -> Duration; N],
) -> [Duration; N] {
    let mut best = [Duration::MAX; N];
    for _ in 0..runs {
        for (side, best) in sides.iter_mut().zip(best.iter_mut()) {
            *best = (*best).min(side());
        }
    }
    best
}

fn run(command: &mut Command) {
    let status = command.status().unwrap_or_else(|error| {
        panic!("{command:?}: {error}");
    });
    assert!(status.success(), "{command:?} failed");
}

fn remove(path: &Path) {
    if path.exists() {
        fs::remove_dir_all(path).unwrap();
    }
}

// ---- the tree -------------------------------------------------------------------

/// A size between `low` and `high`, spread evenly on a log scale.
fn size(random: &mut Random, low: u64, high: u64) -> usize {
    let (low, high) = ((low as f64).ln(), (high as f64).ln());
    let unit = random.below(1 << 20) as f64 / f64::from(1 << 20);
    (low + (high - low) * unit).exp() as usize
}

/// Extend `out` to `length` bytes of noise.
fn noise(random: &mut Random, out: &mut Vec<u8>, length: usize) {
    let start = out.len();
    out.resize(length, 0);
    random.fill(&mut out[start..]);
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
    "if",
    "else",
    "while",
    "for",
    "break",
    "sizeof",
    "NULL",
    "printf",
    "malloc",
    "free",
    "buffer",
    "length",
    "offset",
    "socket",
    "bind",
    "listen",
    "accept",
    "packet",
    "header",
    "checksum",
    "firmware",
    "device",
    "driver",
    "module",
    "license",
    "copyright",
    "version",
    "update",
    "install",
    "remove",
    "service",
    "daemon",
];

/// Text with a skewed word distribution, lines and indentation: source, docs, configs.
fn text(random: &mut Random, length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(length + 32);
    let mut column = 0;
    while out.len() < length {
        // Squaring a uniform pick favours the first words, as real text does.
        let pick = random.below(WORDS.len() as u64);
        let word = WORDS[(pick * pick / WORDS.len() as u64) as usize];
        out.extend_from_slice(word.as_bytes());
        column += word.len() + 1;
        if column > 60 + random.below(20) as usize {
            out.push(b'\n');
            let indent = random.below(3) as usize * 4;
            out.resize(out.len() + indent, b' ');
            column = 0;
        } else {
            out.push(if random.below(9) == 0 { b'_' } else { b' ' });
        }
        if random.below(40) == 0 {
            out.extend_from_slice(format!("{}", random.below(100_000)).as_bytes());
        }
    }
    out.truncate(length);
    out
}

/// Machine-code-like bytes: a small alphabet of opcodes, little-endian offsets,
/// string tables, zero padding and some incompressible stretches.
fn binary(random: &mut Random, length: usize) -> Vec<u8> {
    const OPCODES: &[&[u8]] = &[
        &[0x48, 0x89, 0xe5],
        &[0x48, 0x83, 0xec],
        &[0xe8],
        &[0xc3],
        &[0x55],
        &[0x5d],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x48, 0x8b, 0x45],
        &[0x89, 0x45],
        &[0x74],
        &[0x75],
        &[0xeb],
        &[0x31, 0xc0],
    ];
    let mut out = Vec::with_capacity(length + 64);
    while out.len() < length {
        match random.below(20) {
            0 => {
                let run = out.len() + random.below(4096) as usize;
                noise(random, &mut out, run);
            }
            1 => out.resize(out.len() + random.below(512) as usize, 0),
            2 => {
                let length = random.below(300) as usize;
                let words = text(random, length);
                for word in words.split(|b| *b == b' ') {
                    out.extend_from_slice(word);
                    out.push(0);
                }
            }
            _ => {
                for _ in 0..random.below(64) {
                    let opcode = OPCODES[random.below(OPCODES.len() as u64) as usize];
                    out.extend_from_slice(opcode);
                    if random.below(2) == 0 {
                        out.extend_from_slice(&(random.below(1 << 12) as u32).to_le_bytes());
                    }
                }
            }
        }
    }
    out.truncate(length);
    out
}

/// Very repetitive: logs, tables, locale data.
fn repetitive(random: &mut Random, length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(length + 128);
    let mut line = 0u64;
    while out.len() < length {
        line += 1;
        let level = ["INFO", "INFO", "INFO", "WARN", "DEBUG"][random.below(5) as usize];
        out.extend_from_slice(
            format!(
                "2024-11-23T17:{:02}:{:02}Z {level} netd[{}]: link eth{} state up, carrier ok, line {line}\n",
                line / 60 % 60,
                line % 60,
                1200 + random.below(4),
                random.below(2)
            )
            .as_bytes(),
        );
    }
    out.truncate(length);
    out
}

fn ensure_tree(base: &Path, source: &Path) -> (usize, u64) {
    let stamp = base.join("tree.stamp");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(TREE_VERSION) {
        let files = walk_files(source);
        let bytes = files.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
        return (files.len(), bytes);
    }
    println!("generating the tree (once)...");
    remove(source);
    let _ = fs::remove_file(&stamp);
    fs::create_dir_all(source).unwrap();
    let mut random = Random::new(0x005E_ED0F_A3BE_2024);
    let dirs: Vec<PathBuf> = [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib/modules/net",
        "usr/lib/modules/fs",
        "usr/lib/python/site",
        "usr/share/doc",
        "usr/share/doc/examples",
        "usr/share/locale/de/LC_MESSAGES",
        "usr/share/locale/fr/LC_MESSAGES",
        "usr/share/locale/ja/LC_MESSAGES",
        "usr/share/man/man1",
        "usr/share/man/man8",
        "usr/share/www/static/img",
        "usr/share/www/static/js",
        "usr/include/net",
        "etc",
        "etc/init",
        "var/log",
    ]
    .iter()
    .map(|dir| source.join(dir))
    .collect();
    for dir in &dirs {
        fs::create_dir_all(dir).unwrap();
    }
    let mut written: Vec<PathBuf> = Vec::new();
    let mut bytes = 0u64;
    while bytes < MIN_BYTES || written.len() < MIN_FILES {
        let dir = &dirs[random.below(dirs.len() as u64) as usize];
        let n = written.len();
        let kind = random.below(100);
        let (name, contents, mode) = if kind < 5 && n > 10 {
            // A duplicate of an earlier file.
            let original = &written[random.below(n as u64) as usize];
            (format!("copy-{n}"), fs::read(original).unwrap(), 0o644)
        } else if kind < 60 {
            let length = size(&mut random, 200, 100_000);
            (format!("text-{n}.c"), text(&mut random, length), 0o644)
        } else if kind < 78 {
            let length = size(&mut random, 5_000, 600_000);
            (format!("prog-{n}"), binary(&mut random, length), 0o755)
        } else if kind < 88 {
            let length = size(&mut random, 1_000, 1_000_000);
            (format!("data-{n}.gz"), random.bytes(length), 0o644)
        } else if kind < 99 {
            let length = size(&mut random, 1_000, 500_000);
            (
                format!("log-{n}.txt"),
                repetitive(&mut random, length),
                0o644,
            )
        } else {
            (format!("empty-{n}"), Vec::new(), 0o644)
        };
        let path = dir.join(name);
        fs::write(&path, &contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        bytes += contents.len() as u64;
        written.push(path);
        if n.is_multiple_of(50) {
            let link = dir.join(format!("link-{n}"));
            std::os::unix::fs::symlink(format!("prog-{}", n.saturating_sub(1)), link).unwrap();
        }
    }
    fs::write(&stamp, TREE_VERSION).unwrap();
    (written.len(), bytes)
}

/// Every regular file under `dir`, sorted.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

// ---- our writer -------------------------------------------------------------------

struct DiskContents {
    paths: Vec<PathBuf>,
    open: Option<(FileId, File)>,
}

impl Contents for DiskContents {
    type Error = std::io::Error;

    fn read(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if !matches!(&self.open, Some((id, _)) if *id == file) {
            self.open = Some((file, File::open(&self.paths[file.index()])?));
        }
        let (_, handle) = self.open.as_ref().unwrap();
        handle.read_exact_at(buf, offset)
    }
}

struct FileSink(std::io::BufWriter<File>);

impl Sink for FileSink {
    type Error = std::io::Error;

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.flush()?;
        self.0.get_ref().write_all_at(bytes, offset)
    }
}

fn scan(source: &Path) -> (Tree, DiskContents) {
    let mut tree = Tree::new();
    let mut paths = Vec::new();
    let mut pending = vec![(source.to_path_buf(), tree.root())];
    while let Some((dir, id)) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let name = entry.file_name();
            let mode = meta.permissions().mode() as u16 & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                tree.add_symlink(id, name.as_bytes(), target.as_os_str().as_bytes())
                    .unwrap();
            } else if meta.is_dir() {
                let child = tree.add_dir(id, name.as_bytes(), mode).unwrap();
                pending.push((path, child));
            } else {
                tree.add_file(id, name.as_bytes(), mode, meta.len())
                    .unwrap();
                paths.push(path);
            }
        }
    }
    (tree, DiskContents { paths, open: None })
}

fn write_ours(source: &Path, image: &Path, threads: usize) {
    let (tree, mut contents) = scan(source);
    let file = File::create(image).unwrap();
    let mut sink = FileSink(std::io::BufWriter::with_capacity(1 << 20, file));
    let options = Options {
        threads,
        ..Options::default()
    };
    write_image(&tree, &options, &mut contents, &mut sink).unwrap();
    sink.0.flush().unwrap();
}

// ---- our reader -------------------------------------------------------------------

struct FileSource {
    file: File,
    len: u64,
}

impl ReadAt for FileSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.file.read_exact_at(buf, offset).map_err(|_| ReadError)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// Extract every file of `image` under `out` (or only read them all when `write` is
/// false). Returns the regular files and bytes extracted.
fn extract_ours(image: &Path, out: &Path, write: bool) -> (usize, u64) {
    let file = File::open(image).unwrap();
    let len = file.metadata().unwrap().len();
    let archive = Archive::open(FileSource { file, len }).unwrap();
    let mut cache = Cache::new();
    let root = archive.root(&mut cache).unwrap();
    let mut buffer = vec![0u8; archive.block_size() as usize];
    let (mut files, mut bytes) = (0, 0);
    if write {
        fs::create_dir_all(out).unwrap();
    }
    let mut pending: Vec<(Inode, PathBuf)> = vec![(root, out.to_path_buf())];
    let mut dirs_done: Vec<(PathBuf, Inode)> = Vec::new();
    while let Some((dir, path)) = pending.pop() {
        let mut reader = archive.dir_reader(&dir, 0, &mut cache).unwrap();
        while let Some(entry) = reader.next(&archive, &mut cache).unwrap() {
            let inode = archive.entry_inode(&dir, &entry, &mut cache).unwrap();
            let target = path.join(std::ffi::OsStr::from_bytes(entry.name));
            match inode.kind {
                Kind::Dir => {
                    if write {
                        fs::create_dir(&target).unwrap();
                    }
                    pending.push((inode, target));
                }
                Kind::File => {
                    let mut output = write.then(|| File::create(&target).unwrap());
                    let mut offset = 0;
                    while offset < inode.size {
                        let read = archive
                            .read(&inode, offset, &mut buffer, &mut cache)
                            .unwrap();
                        assert!(read > 0);
                        if let Some(output) = &mut output {
                            output.write_all(&buffer[..read]).unwrap();
                        }
                        offset += read as u64;
                    }
                    if let Some(output) = output {
                        finish(&output, &inode);
                    }
                    files += 1;
                    bytes += inode.size;
                }
                Kind::Symlink => {
                    let link = archive.read_link(&inode, &mut cache).unwrap();
                    if write {
                        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), &target)
                            .unwrap();
                    }
                }
                _ => {}
            }
        }
        if write {
            dirs_done.push((path, dir));
        }
    }
    // Directory modes and times last, as unsquashfs does, so writing into them works.
    for (path, dir) in dirs_done.iter().rev() {
        finish(&File::open(path).unwrap(), dir);
    }
    (files, bytes)
}

/// Set the mode and time of an extracted file or directory, as unsquashfs does.
fn finish(file: &File, inode: &Inode) {
    file.set_permissions(fs::Permissions::from_mode(u32::from(inode.mode)))
        .unwrap();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(inode.mtime));
    file.set_times(fs::FileTimes::new().set_modified(time).set_accessed(time))
        .unwrap();
}
