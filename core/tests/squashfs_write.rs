//! Interop tests of the SquashFS writer: trees built on disk are written with our
//! writer, then read back by `unsquashfs`, `rdsquashfs` (squashfs-tools-ng) and the
//! Linux kernel, and compared with the source tree name by name and byte by byte.
#![cfg(feature = "host")]

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use amber_core::random::Random;
use amber_core::squashfs::read::{Archive, Cache, CheckLimits, Kind};
use amber_core::squashfs::write::{
    write_image, Contents, FileId, Options, Sink, Summary, Tree, TreeError,
};
use amber_core::squashfs::{ReadAt, ReadError};

/// This process's directory under cargo's per-target temp directory. Several test
/// processes may run at once (and mount images), so each works in its own directory,
/// and leftovers of processes that are gone are removed first.
fn process_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("squashfs_write");
        fs::create_dir_all(&base).unwrap();
        for entry in fs::read_dir(&base).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let alive = name
                .strip_prefix("pid-")
                .is_some_and(|pid| Path::new("/proc").join(pid).exists());
            if !alive {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let dir = base.join(format!("pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = process_dir().join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// File contents read from disk, keeping the last file open.
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

/// The image written straight to a file.
struct FileSink(File);

impl Sink for FileSink {
    type Error = std::io::Error;

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }
}

/// Describe the tree under `source` the way `pkg pack` does: modes from disk,
/// symlinks stored, not followed.
fn scan(source: &Path) -> (Tree, DiskContents) {
    let mut tree = Tree::new();
    let mut paths = Vec::new();
    let root = tree.root();
    let mode = fs::metadata(source).unwrap().permissions().mode() as u16 & 0o7777;
    tree.set_dir_mode(root, mode).unwrap();
    let mut pending = vec![(source.to_path_buf(), root)];
    while let Some((dir, id)) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name();
            let name = name.as_bytes();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() as u16 & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                tree.add_symlink(id, name, target.as_os_str().as_bytes())
                    .unwrap();
            } else if meta.is_dir() {
                let child = tree.add_dir(id, name, mode).unwrap();
                pending.push((path, child));
            } else if meta.is_file() {
                let file = tree.add_file(id, name, mode, meta.len()).unwrap();
                assert_eq!(file.index(), paths.len());
                paths.push(path);
            } else {
                panic!("{}: unexpected file type", path.display());
            }
        }
    }
    (tree, DiskContents { paths, open: None })
}

fn write_dir(source: &Path, image: &Path, options: &Options) -> Summary {
    let (tree, mut contents) = scan(source);
    let mut sink = FileSink(File::create(image).unwrap());
    let summary = write_image(&tree, options, &mut contents, &mut sink).unwrap();
    sink.0.sync_all().unwrap();
    assert_eq!(fs::metadata(image).unwrap().len(), summary.image_size);
    summary
}

/// Text-like bytes: words from a small vocabulary, so deflate has something to find.
fn text(random: &mut Random, length: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the", "package", "store", "router", "kernel", "squashfs", "block", "image", "amber",
        "signed", "index", "version", "=", "{", "}", "\n", "    ", "fn", "0x1f", "return",
    ];
    let mut out = Vec::with_capacity(length + 16);
    while out.len() < length {
        out.extend_from_slice(WORDS[random.index(WORDS.len())].as_bytes());
        out.push(b' ');
    }
    out.truncate(length);
    out
}

fn put(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

const BLOCK: usize = 128 * 1024;

/// The tree every interop test reads: many small files, multi-block files with and
/// without a fragment tail, sparse and incompressible blocks, empty and duplicate
/// files, 40 levels of directories, a directory of 5,000 entries, symlinks, odd but
/// legal names and unusual modes.
fn build_fixture(root: &Path) {
    let mut random = Random::new(0x00C0_FFEE_1234_5678);
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();

    // Many small files across a few directories, text and binary.
    for dir in ["bin", "lib", "share/doc", "etc"] {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).unwrap();
        for n in 0..120 {
            let length = random.below(6000) as usize;
            let bytes = if n % 3 == 0 {
                random.bytes(length)
            } else {
                text(&mut random, length)
            };
            put(&dir.join(format!("file{n:03}")), &bytes, 0o644);
        }
    }
    fs::set_permissions(root.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();

    // Several blocks plus a tail, exact block multiples, incompressible, sparse.
    let big = root.join("big");
    fs::create_dir(&big).unwrap();
    let long_text = text(&mut random, 5 * BLOCK + 1234);
    put(&big.join("text"), &long_text, 0o755);
    put(&big.join("noise"), &random.bytes(3 * BLOCK + 77), 0o644);
    put(
        &big.join("two-blocks"),
        &text(&mut random, 2 * BLOCK),
        0o644,
    );
    let mut sparse = vec![0u8; 4 * BLOCK + 10];
    sparse[2 * BLOCK..2 * BLOCK + 5].copy_from_slice(b"holes");
    put(&big.join("sparse"), &sparse, 0o644);
    put(
        &big.join("one-block-exactly"),
        &text(&mut random, BLOCK),
        0o644,
    );
    put(&big.join("one-less"), &text(&mut random, BLOCK - 1), 0o644);

    // Duplicates of a big file, of a small file, and of a file's tail only.
    put(&big.join("text-copy"), &long_text, 0o600);
    put(&root.join("text-copy-2"), &long_text, 0o644);
    let small = fs::read(root.join("bin/file001")).unwrap();
    put(&root.join("small-copy"), &small, 0o644);
    put(&big.join("tail-only"), &long_text[5 * BLOCK..], 0o644);

    // Empty files and an empty directory.
    for name in ["empty", "empty2", "big/empty3"] {
        put(&root.join(name), b"", 0o644);
    }
    fs::create_dir(root.join("empty-dir")).unwrap();

    // 40 levels deep.
    let mut deep = root.join("deep");
    for level in 0..40 {
        deep = deep.join(format!("level{level}"));
    }
    fs::create_dir_all(&deep).unwrap();
    put(&deep.join("bottom"), b"the bottom\n", 0o644);

    // A directory of 5,000 entries: files, symlinks and a few directories, with
    // names of varied length so headers and metadata blocks split at odd places.
    let wide = root.join("wide");
    fs::create_dir(&wide).unwrap();
    for n in 0..5000u32 {
        let name = format!("entry-{n:05}-{}", "x".repeat((n % 37) as usize));
        let path = wide.join(&name);
        match n % 50 {
            0 => fs::create_dir(&path).unwrap(),
            1 => std::os::unix::fs::symlink(format!("../wide/entry-{:05}", n + 1), &path).unwrap(),
            _ => put(&path, format!("{n}\n").as_bytes(), 0o644),
        }
    }

    // Symlinks: relative, absolute, dangling, to a directory, long.
    let links = root.join("links");
    fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink("../big/text", links.join("relative")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", links.join("absolute")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", links.join("dangling")).unwrap();
    std::os::unix::fs::symlink("../deep", links.join("to-dir")).unwrap();
    std::os::unix::fs::symlink("a/".repeat(1000), links.join("long")).unwrap();

    // Odd but legal names.
    let odd = root.join("odd");
    fs::create_dir(&odd).unwrap();
    for name in [
        "with space",
        " leading space",
        "-leading-dash",
        "--",
        "...",
        ".hidden",
        "gr\u{fc}n-\u{540d}\u{524d}-\u{1f980}",
        "tab\there",
        "new\nline",
        "back\\slash",
        "quote\"s'",
        "*?[]",
    ] {
        put(&odd.join(name), name.as_bytes(), 0o644);
    }
    let longest = "n".repeat(255);
    put(&odd.join(&longest), b"255 bytes of name\n", 0o644);

    // Unusual modes.
    put(&root.join("setuid"), b"#!/bin/sh\n", 0o4755);
    put(&root.join("no-permissions"), b"secret\n", 0o000);
    fs::create_dir(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
}

struct Fixture {
    source: PathBuf,
    image: PathBuf,
    summary: Summary,
}

/// Build the fixture tree and its image once for all tests of this binary.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = temp_dir("fixture");
        let source = dir.join("tree");
        fs::create_dir(&source).unwrap();
        build_fixture(&source);
        let image = dir.join("tree.squashfs");
        let options = Options {
            mtime: 1_234_567_890,
            threads: 2,
            ..Options::default()
        };
        let summary = write_dir(&source, &image, &options);
        Fixture {
            source,
            image,
            summary,
        }
    })
}

/// Compare two trees: names, types, permission bits, sizes, contents and symlink
/// targets. Returns how many entries were compared.
fn compare_trees(expected: &Path, actual: &Path) -> usize {
    let mut compared = 0;
    let mut pending = vec![(expected.to_path_buf(), actual.to_path_buf())];
    while let Some((expected, actual)) = pending.pop() {
        let names = |dir: &Path| {
            let mut names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let expected_names = names(&expected);
        assert_eq!(expected_names, names(&actual), "{}", actual.display());
        for name in expected_names {
            let (want, got) = (expected.join(&name), actual.join(&name));
            let (want_meta, got_meta) = (
                fs::symlink_metadata(&want).unwrap(),
                fs::symlink_metadata(&got).unwrap(),
            );
            compared += 1;
            assert_eq!(
                want_meta.file_type(),
                got_meta.file_type(),
                "{}",
                got.display()
            );
            if want_meta.file_type().is_symlink() {
                assert_eq!(fs::read_link(&want).unwrap(), fs::read_link(&got).unwrap());
                continue;
            }
            assert_eq!(
                want_meta.mode() & 0o7777,
                got_meta.mode() & 0o7777,
                "mode of {}",
                got.display()
            );
            if want_meta.is_dir() {
                pending.push((want, got));
            } else {
                assert_eq!(want_meta.len(), got_meta.len(), "size of {}", got.display());
                assert!(
                    fs::read(&want).unwrap() == fs::read(&got).unwrap(),
                    "contents of {}",
                    got.display()
                );
            }
        }
    }
    compared
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn unsquashfs(image: &Path, out: &Path) {
    run(Command::new("unsquashfs")
        .args(["-no-progress", "-quiet", "-d"])
        .arg(out)
        .arg(image));
}

fn rdsquashfs(image: &Path, out: &Path) {
    fs::create_dir_all(out).unwrap();
    run(Command::new("rdsquashfs")
        .args([
            "--quiet",
            "--chmod",
            "--set-times",
            "--unpack-path",
            "/",
            "--unpack-root",
        ])
        .arg(out)
        .arg(image));
}

/// A read-only loop mount, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// Mount `image`, or `None` (with a notice) where loop mounts are not possible.
    fn new(image: &Path, at: &Path) -> Option<Mount> {
        if !amber_testkit::require_root("the kernel's squashfs mount")
            || !amber_testkit::require(
                Path::new("/dev/loop-control").exists(),
                "/dev/loop-control is missing (the kernel mount needs loop devices)",
            )
        {
            return None;
        }
        fs::create_dir_all(at).unwrap();
        run(Command::new("mount")
            .args(["-t", "squashfs", "-o", "loop,ro"])
            .arg(image)
            .arg(at));
        Some(Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Still busy: detach it now, the kernel finishes when it is idle.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Every entry under `dir`: what a walk of the mounted image sees.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

#[test]
fn unsquashfs_extracts_the_tree_exactly() {
    let fixture = fixture();
    let out = temp_dir("unsquashfs").join("out");
    unsquashfs(&fixture.image, &out);
    let compared = compare_trees(&fixture.source, &out);
    assert!(compared > 5_500, "{compared}");
    assert_eq!(
        fs::metadata(&out).unwrap().mode() & 0o7777,
        fs::metadata(&fixture.source).unwrap().mode() & 0o7777
    );
}

#[test]
fn rdsquashfs_extracts_the_tree_exactly() {
    let fixture = fixture();
    let out = temp_dir("rdsquashfs").join("out");
    rdsquashfs(&fixture.image, &out);
    assert!(compare_trees(&fixture.source, &out) > 5_500);
}

#[test]
fn kernel_mounts_the_tree_exactly() {
    let fixture = fixture();
    let dir = temp_dir("kernel");
    let Some(mount) = Mount::new(&fixture.image, &dir.join("mnt")) else {
        return;
    };
    assert!(compare_trees(&fixture.source, &mount.0) > 5_500);

    let mut entries = Vec::new();
    walk(&mount.0, &mut entries);
    let mut inodes = std::collections::BTreeSet::new();
    for path in &entries {
        let meta = fs::symlink_metadata(path).unwrap();
        assert_eq!(meta.mtime(), 1_234_567_890, "{}", path.display());
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        assert!(inodes.insert(meta.ino()), "inode number reused");
        if meta.is_dir() {
            // Directories count `.`, their entry in the parent, and each subdirectory's `..`.
            let subdirs = fs::read_dir(path)
                .unwrap()
                .filter(|entry| entry.as_ref().unwrap().file_type().unwrap().is_dir())
                .count() as u64;
            assert_eq!(meta.nlink(), 2 + subdirs, "{}", path.display());
            // The inode numbers directory entries give agree with the inodes.
            for entry in fs::read_dir(path).unwrap() {
                let entry = entry.unwrap();
                let stat = fs::symlink_metadata(entry.path()).unwrap();
                assert_eq!(entry.ino(), stat.ino(), "{}", entry.path().display());
            }
        } else if meta.is_file() {
            assert_eq!(meta.nlink(), 1);
        }
    }
    assert_eq!(inodes.len() as u32 + 1, fixture.summary.inode_count);

    // Looking up names directly (not through readdir) goes through the directory
    // index of the big directory: every name must be found, and absent ones not.
    let wide = mount.0.join("wide");
    for n in (0..5000u32).rev().step_by(7) {
        let name = format!("entry-{n:05}-{}", "x".repeat((n % 37) as usize));
        assert!(fs::symlink_metadata(wide.join(&name)).is_ok(), "{name}");
        let missing = format!("entry-{n:05}-{}", "x".repeat((n % 37) as usize + 1));
        assert!(
            fs::symlink_metadata(wide.join(&missing)).is_err(),
            "{missing}"
        );
    }
    for missing in ["a", "entry", "entry-99999", "zzz", "\u{fc}"] {
        assert!(
            fs::symlink_metadata(wide.join(missing)).is_err(),
            "{missing}"
        );
    }
}

#[test]
fn fixture_exercises_duplicates_fragments_and_big_directories() {
    let fixture = fixture();
    // text-copy, text-copy-2, small-copy, the 5,000-entry directory's repeated
    // contents, and the empty files do not count (they share no data).
    assert!(
        fixture.summary.duplicate_files >= 3,
        "{:?}",
        fixture.summary
    );
    assert!(fixture.summary.fragment_count >= 2);
    let listing = run(Command::new("rdsquashfs")
        .args(["--stat", "/wide"])
        .arg(&fixture.image));
    assert!(
        listing.contains("extended directory") || listing.contains("Extended directory"),
        "{listing}"
    );
    // Three copies of a 656 KB text file are stored once: the image stays well
    // below the sum of its files.
    let image_size = fs::metadata(&fixture.image).unwrap().len();
    assert!(image_size * 2 < fixture.summary.file_bytes, "{image_size}");
}

#[test]
fn same_tree_gives_same_bytes() {
    let fixture = fixture();
    let dir = temp_dir("determinism");
    let again = dir.join("again.squashfs");
    let options = Options {
        mtime: 1_234_567_890,
        threads: 1,
        ..Options::default()
    };
    write_dir(&fixture.source, &again, &options);
    assert!(fs::read(&fixture.image).unwrap() == fs::read(&again).unwrap());
}

#[test]
fn source_date_epoch_is_applied() {
    let dir = temp_dir("epoch");
    let source = dir.join("tree");
    fs::create_dir_all(source.join("sub")).unwrap();
    fs::write(source.join("sub/file"), b"dated\n").unwrap();
    std::os::unix::fs::symlink("sub/file", source.join("link")).unwrap();

    for epoch in [0u32, 1_700_000_000, u32::MAX] {
        let image = dir.join(format!("{epoch}.squashfs"));
        let options = Options {
            mtime: epoch,
            ..Options::default()
        };
        write_dir(&source, &image, &options);
        let time = run(Command::new("unsquashfs").arg("-mkfs-time").arg(&image));
        assert_eq!(time.trim(), epoch.to_string());
        let out = dir.join(format!("{epoch}.out"));
        unsquashfs(&image, &out);
        for path in [out.clone(), out.join("sub"), out.join("sub/file")] {
            assert_eq!(fs::metadata(&path).unwrap().mtime(), i64::from(epoch));
        }
        assert_eq!(
            fs::symlink_metadata(out.join("link")).unwrap().mtime(),
            i64::from(epoch)
        );
    }
    // Different epochs, otherwise the same tree: only times differ, so only the
    // superblock and the inode table change.
    let zero = fs::read(dir.join("0.squashfs")).unwrap();
    let later = fs::read(dir.join("1700000000.squashfs")).unwrap();
    assert_ne!(zero, later);
}

#[test]
fn empty_tree_is_readable() {
    let dir = temp_dir("empty");
    let source = dir.join("tree");
    fs::create_dir(&source).unwrap();
    fs::set_permissions(&source, fs::Permissions::from_mode(0o755)).unwrap();
    let image = dir.join("empty.squashfs");
    write_dir(&source, &image, &Options::default());
    assert_eq!(fs::metadata(&image).unwrap().len(), 4096);
    let out = dir.join("out");
    unsquashfs(&image, &out);
    assert_eq!(compare_trees(&source, &out), 0);
    let rd = dir.join("rd");
    rdsquashfs(&image, &rd);
    assert_eq!(compare_trees(&source, &rd), 0);
    if let Some(mount) = Mount::new(&image, &dir.join("mnt")) {
        assert_eq!(compare_trees(&source, &mount.0), 0);
    }
}

#[test]
fn empty_directories_only() {
    // Every directory empty except for subdirectories: listings of size 0 point at
    // the end of the directory table.
    let dir = temp_dir("empty-dirs");
    let source = dir.join("tree");
    fs::create_dir_all(source.join("a/b/c")).unwrap();
    fs::create_dir_all(source.join("d")).unwrap();
    let image = dir.join("dirs.squashfs");
    write_dir(&source, &image, &Options::default());
    let out = dir.join("out");
    unsquashfs(&image, &out);
    assert_eq!(compare_trees(&source, &out), 4);
    let rd = dir.join("rd");
    rdsquashfs(&image, &rd);
    assert_eq!(compare_trees(&source, &rd), 4);
    if let Some(mount) = Mount::new(&image, &dir.join("mnt")) {
        assert_eq!(compare_trees(&source, &mount.0), 4);
    }
}

/// Contents of a file that is all zeros but its last bytes, without a disk file.
struct Huge {
    size: u64,
    tail: &'static [u8],
}

impl Contents for Huge {
    type Error = std::convert::Infallible;

    fn read(&mut self, _: FileId, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        buf.fill(0);
        let tail_start = self.size - self.tail.len() as u64;
        let end = offset + buf.len() as u64;
        if end > tail_start {
            let from = tail_start.max(offset);
            let tail = &self.tail[(from - tail_start) as usize..(end - tail_start) as usize];
            buf[(from - offset) as usize..].copy_from_slice(tail);
        }
        Ok(())
    }
}

#[test]
fn file_over_4_gib_uses_an_extended_inode() {
    let dir = temp_dir("huge");
    let size = (4u64 << 30) + 100;
    let mut tree = Tree::new();
    let root = tree.root();
    tree.add_file(root, b"huge", 0o644, size).unwrap();
    let image = dir.join("huge.squashfs");
    let mut sink = FileSink(File::create(&image).unwrap());
    let options = Options {
        block_size: 1 << 20,
        threads: 2,
        ..Options::default()
    };
    let mut contents = Huge {
        size,
        tail: b"the end",
    };
    write_image(&tree, &options, &mut contents, &mut sink).unwrap();
    // 4,096 sparse blocks and a fragment: the image is tiny.
    assert!(fs::metadata(&image).unwrap().len() < 64 * 1024);

    let listing = run(Command::new("unsquashfs").arg("-lln").arg(&image));
    assert!(listing.contains(&size.to_string()), "{listing}");
    let stat = run(Command::new("rdsquashfs")
        .args(["--stat", "/huge"])
        .arg(&image));
    assert!(stat.contains(&size.to_string()), "{stat}");
    // unsquashfs writes the sparse blocks as holes, so extracting costs no disk space.
    let out = dir.join("out");
    unsquashfs(&image, &out);
    let file = File::open(out.join("huge")).unwrap();
    assert_eq!(file.metadata().unwrap().len(), size);
    let mut end = [0u8; 7];
    file.read_exact_at(&mut end, size - 7).unwrap();
    assert_eq!(&end, b"the end");
    if let Some(mount) = Mount::new(&image, &dir.join("mnt")) {
        let file = File::open(mount.0.join("huge")).unwrap();
        assert_eq!(file.metadata().unwrap().len(), size);
        let mut end = [0u8; 7];
        file.read_exact_at(&mut end, size - 7).unwrap();
        assert_eq!(&end, b"the end");
        let mut middle = [1u8; 16];
        file.read_exact_at(&mut middle, 3 << 30).unwrap();
        assert_eq!(middle, [0; 16]);
    }
}

#[test]
fn bad_names_are_refused() {
    let mut tree = Tree::new();
    let root = tree.root();
    for name in [&b""[..], b".", b"..", b"a/b", b"nul\0", &[b'x'; 257]] {
        assert!(matches!(
            tree.add_file(root, name, 0o644, 0),
            Err(TreeError::Name { .. })
        ));
    }
    tree.add_file(root, &[b'x'; 256], 0o644, 0).unwrap();
}

/// A file opened for [`Archive`]: positioned reads, no shared cursor.
struct FileSource(File, u64);

impl ReadAt for FileSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.0.read_exact_at(buf, offset).map_err(|_| ReadError)
    }

    fn len(&self) -> u64 {
        self.1
    }
}

#[test]
fn our_reader_reads_what_we_wrote() {
    let fixture = fixture();
    let file = File::open(&fixture.image).unwrap();
    let len = file.metadata().unwrap().len();
    let archive = Archive::open(FileSource(file, len)).unwrap();
    let mut cache = Cache::new();
    let summary = archive.check(&mut cache, &CheckLimits::default()).unwrap();
    assert_eq!(
        summary.directories + summary.files + summary.symlinks,
        u64::from(fixture.summary.inode_count)
    );
    assert_eq!(summary.bytes, fixture.summary.file_bytes);

    // Every entry of the source is found by path, with its kind, mode, size,
    // contents or target.
    let mut compared = 0;
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(fixture.source.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let relative = relative.join(entry.file_name());
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            let Some(path) = relative.to_str() else {
                continue;
            };
            let inode = archive.lookup_path(path, &mut cache).unwrap();
            assert_eq!(inode.mtime, 1_234_567_890);
            assert_eq!((inode.uid, inode.gid), (0, 0));
            compared += 1;
            if meta.file_type().is_symlink() {
                assert_eq!(inode.kind, Kind::Symlink);
                let target = archive.read_link(&inode, &mut cache).unwrap();
                assert_eq!(
                    target,
                    fs::read_link(entry.path()).unwrap().as_os_str().as_bytes()
                );
                continue;
            }
            assert_eq!(u32::from(inode.mode), meta.mode() & 0o7777, "{path}");
            if meta.is_dir() {
                assert_eq!(inode.kind, Kind::Dir);
                pending.push(relative);
            } else {
                assert_eq!(inode.kind, Kind::File);
                assert_eq!(inode.size, meta.len());
                let mut contents = vec![0u8; meta.len() as usize];
                let read = archive.read(&inode, 0, &mut contents, &mut cache).unwrap();
                assert_eq!(read, contents.len());
                assert!(contents == fs::read(entry.path()).unwrap(), "{path}");
            }
        }
    }
    assert!(compared > 5_500, "{compared}");
}
