//! The SquashFS reader against images made by mksquashfs and gensquashfs, against
//! malformed images patched from real ones, and over the fuzz corpus.
//!
//! Images are built at test time; when the tools are missing, the tests that need
//! them print a notice and pass without checking anything else.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use amber_core::random::Random;
use amber_core::squashfs::format::{self, Superblock, SUPERBLOCK_SIZE};
use amber_core::squashfs::read::{Archive, Cache, CheckLimits, Error, Inode, Kind};

#[path = "../../fuzz/walk.rs"]
mod walk;

const BLOCK: usize = 128 * 1024;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A directory of its own for each test, under cargo's per-target temp dir.
fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("squashfs_read")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the peer `tool` is installed; when it is not, the test is skipped (a failure
/// under CI, see amber-testkit).
fn have(tool: &str) -> bool {
    let package = match tool {
        "gensquashfs" | "rdsquashfs" => "squashfs-tools-ng",
        _ => "squashfs-tools",
    };
    amber_testkit::require_tool(tool, package)
}

fn run(command: &mut Command) {
    let output = command.output().expect("tool runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn mksquashfs(tree: &Path, image: &Path, extra: &[&str]) {
    run(Command::new("mksquashfs")
        .arg(tree)
        .arg(image)
        .args(["-noappend", "-all-root", "-quiet", "-no-progress"])
        .args(extra));
}

fn gensquashfs(tree: &Path, image: &Path, extra: &[&str]) {
    run(Command::new("gensquashfs")
        .arg("-D")
        .arg(tree)
        .args(["-f", "-q", "--all-root"])
        .args(extra)
        .arg(image));
}

fn text(len: usize, seed: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut line = seed;
    while out.len() < len {
        out.extend_from_slice(format!("line {line} of some compressible text\n").as_bytes());
        line += 1;
    }
    out.truncate(len);
    out
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The big tree: many files, big files with every kind of block, empty and sparse
/// files, 40 levels of directories, a directory of 5,000 entries, symlinks, odd but
/// legal names, a hard link, a fifo and a device.
fn big_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = test_dir("big-tree");
        let mut rng = Random::new(0x5eed);
        let files = root.join("files");
        fs::create_dir(&files).unwrap();
        for i in 0..200 {
            let mode = [0o644, 0o600, 0o755, 0o4755][i % 4];
            write(&files.join(format!("f{i:03}")), &text(i * 37, i), mode);
        }
        // Block 0 incompressible (stored raw), block 1 text, block 2 zeros (sparse),
        // then a tail in a fragment.
        let mut big = rng.bytes(BLOCK);
        big.extend(text(BLOCK, 7));
        big.extend(vec![0; BLOCK]);
        big.extend(text(12345, 99));
        write(&root.join("big"), &big, 0o644);
        write(&root.join("exact"), &text(2 * BLOCK, 3), 0o644);
        write(&root.join("empty"), b"", 0o644);
        let mut sparse = vec![0; 5 * BLOCK];
        sparse.extend_from_slice(b"end");
        write(&root.join("sparse"), &sparse, 0o644);
        write(&root.join("zeros"), &vec![0; 300_000], 0o644);
        write(&root.join("random-small"), &rng.bytes(1000), 0o640);

        let mut deep = root.join("deep");
        for level in 0..40 {
            deep = deep.join(format!("d{level}"));
        }
        fs::create_dir_all(&deep).unwrap();
        write(&deep.join("leaf.txt"), b"bottom\n", 0o644);

        let many = root.join("many");
        fs::create_dir(&many).unwrap();
        for i in 0..5000 {
            write(
                &many.join(format!("entry-{i:05}")),
                i.to_string().as_bytes(),
                0o644,
            );
        }

        let odd = root.join("odd");
        fs::create_dir(&odd).unwrap();
        let long = "n".repeat(255);
        for name in [
            "with space",
            "\u{fc}tf-8 \u{2603}",
            "new\nline",
            "tab\there",
            "-dash",
            "#hash",
            "...",
            ".hidden",
            long.as_str(),
        ] {
            write(&odd.join(name), name.as_bytes(), 0o644);
        }
        fs::create_dir(root.join("emptydir")).unwrap();
        fs::set_permissions(root.join("emptydir"), fs::Permissions::from_mode(0o1777)).unwrap();

        let links = root.join("links");
        fs::create_dir(&links).unwrap();
        std::os::unix::fs::symlink("../files/f001", links.join("relative")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", links.join("absolute")).unwrap();
        std::os::unix::fs::symlink("nowhere", links.join("dangling")).unwrap();
        std::os::unix::fs::symlink("x".repeat(1000), links.join("long")).unwrap();
        fs::hard_link(files.join("f010"), links.join("hard")).unwrap();

        let special = root.join("special");
        fs::create_dir(&special).unwrap();
        let _ = Command::new("mkfifo").arg(special.join("fifo")).status();
        let _ = Command::new("mknod")
            .arg(special.join("null"))
            .args(["c", "1", "3"])
            .status();
        root
    })
}

fn open(path: &Path) -> Archive<Vec<u8>> {
    Archive::open(fs::read(path).unwrap()).unwrap()
}

fn kind_of(metadata: &fs::Metadata) -> Kind {
    let kind = metadata.file_type();
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        Kind::Dir
    } else if kind.is_file() {
        Kind::File
    } else if kind.is_symlink() {
        Kind::Symlink
    } else if kind.is_fifo() {
        Kind::Fifo
    } else if kind.is_char_device() {
        Kind::CharDevice
    } else if kind.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::Socket
    }
}

/// Read a whole file with reads of `chunk` bytes, starting at `start`.
fn read_chunked<R: amber_core::squashfs::ReadAt>(
    archive: &Archive<R>,
    file: &Inode,
    cache: &mut Cache,
    start: u64,
    chunk: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    let mut offset = start;
    loop {
        let read = archive.read(file, offset, &mut buf, cache).unwrap();
        if read == 0 {
            break;
        }
        out.extend_from_slice(&buf[..read]);
        offset += read as u64;
    }
    out
}

/// The entries of an image directory, in listing order.
fn list<R: amber_core::squashfs::ReadAt>(
    archive: &Archive<R>,
    dir: &Inode,
    cache: &mut Cache,
) -> Vec<(Vec<u8>, u64, Kind, u32, u64)> {
    let mut entries = Vec::new();
    archive
        .read_dir(dir, 0, cache, &mut |entry| {
            entries.push((
                entry.name.to_vec(),
                entry.reference,
                entry.kind,
                entry.inode_number,
                entry.offset,
            ));
            true
        })
        .unwrap();
    entries
}

/// Compare a whole image with the tree it was made from: names, kinds, modes,
/// sizes, contents, symlink targets; mtimes and hard link counts too when the packer
/// keeps them (mksquashfs does, gensquashfs --pack-dir does not).
fn compare(image: &Path, tree: &Path, keeps_mtime_and_links: bool) {
    let archive = open(image);
    let mut cache = Cache::new();
    let root = archive.root(&mut cache).unwrap();
    assert_eq!(archive.lookup_path("/", &mut cache).unwrap(), root);
    let mut stack = vec![(tree.to_path_buf(), root)];
    let mut seen = 0;
    while let Some((path, dir)) = stack.pop() {
        let mut expected: Vec<Vec<u8>> = fs::read_dir(&path)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().as_bytes().to_vec())
            .collect();
        expected.sort();
        let entries = list(&archive, &dir, &mut cache);
        let names: Vec<Vec<u8>> = entries.iter().map(|entry| entry.0.clone()).collect();
        assert_eq!(names, expected, "listing of {}", path.display());
        for (name, reference, kind, number, _) in entries {
            seen += 1;
            let fs_path = path.join(std::ffi::OsStr::from_bytes(&name));
            let metadata = fs::symlink_metadata(&fs_path).unwrap();
            let inode = archive
                .lookup(&dir, &name, &mut cache)
                .unwrap_or_else(|error| panic!("{}: {error:?}", fs_path.display()))
                .unwrap();
            assert_eq!(inode.reference, reference);
            assert_eq!(inode.number, number);
            assert_eq!(archive.inode(reference, &mut cache).unwrap(), inode);
            assert_eq!(kind, kind_of(&metadata), "{}", fs_path.display());
            assert_eq!(inode.kind, kind);
            assert_eq!(u32::from(inode.mode), metadata.mode() & 0o7777);
            assert_eq!(inode.st_mode(), metadata.mode(), "{}", fs_path.display());
            assert_eq!((inode.uid, inode.gid), (0, 0));
            if keeps_mtime_and_links && kind != Kind::Dir {
                assert_eq!(
                    i64::from(inode.mtime),
                    metadata.mtime(),
                    "{}",
                    fs_path.display()
                );
            }
            match kind {
                Kind::Dir => stack.push((fs_path, inode)),
                Kind::File => {
                    assert_eq!(inode.size, metadata.len());
                    if keeps_mtime_and_links {
                        assert_eq!(
                            u64::from(inode.nlink),
                            metadata.nlink(),
                            "{}",
                            fs_path.display()
                        );
                    }
                    let contents = fs::read(&fs_path).unwrap();
                    let mut whole = vec![0u8; contents.len() + 10];
                    let read = archive.read(&inode, 0, &mut whole, &mut cache).unwrap();
                    assert_eq!(&whole[..read], &contents[..], "{}", fs_path.display());
                    if contents.len() > 1000 {
                        for (start, chunk) in [(0, 4096), (77, 100_000), (0, BLOCK), (5, 1)] {
                            if chunk == 1 && contents.len() > 20_000 {
                                continue;
                            }
                            let got = read_chunked(&archive, &inode, &mut cache, start, chunk);
                            assert!(
                                got == contents[start as usize..],
                                "{} read from {start} by {chunk}",
                                fs_path.display()
                            );
                        }
                    }
                    let past = archive.read(&inode, inode.size, &mut whole, &mut cache);
                    assert_eq!(past, Ok(0));
                }
                Kind::Symlink => {
                    let target = fs::read_link(&fs_path).unwrap();
                    let read = archive.read_link(&inode, &mut cache).unwrap();
                    assert_eq!(read, target.as_os_str().as_bytes());
                    assert_eq!(inode.size, read.len() as u64);
                }
                Kind::CharDevice => assert_eq!(u64::from(inode.rdev), metadata.rdev()),
                _ => {}
            }
        }
    }
    assert!(seen > 10);
    let summary = archive.check(&mut cache, &CheckLimits::default()).unwrap();
    assert_eq!(
        summary.directories + summary.files + summary.symlinks + summary.others,
        seen + 1
    );
}

// ---------------------------------------------------------------------------------
// Real images
// ---------------------------------------------------------------------------------

#[test]
fn reads_mksquashfs_gzip() {
    if !have("mksquashfs") {
        return;
    }
    let image = test_dir("mksquashfs-gzip").join("image");
    mksquashfs(big_tree(), &image, &["-comp", "gzip"]);
    compare(&image, big_tree(), true);
}

#[test]
fn reads_gensquashfs_gzip() {
    if !have("gensquashfs") {
        return;
    }
    let image = test_dir("gensquashfs-gzip").join("image");
    gensquashfs(big_tree(), &image, &["-c", "gzip"]);
    compare(&image, big_tree(), false);
}

#[test]
fn reads_uncompressed_images() {
    if !have("mksquashfs") {
        return;
    }
    let image = test_dir("uncompressed").join("image");
    mksquashfs(big_tree(), &image, &["-noI", "-noD", "-noF", "-noX"]);
    let superblock = superblock(&fs::read(&image).unwrap());
    let expected = format::flags::UNCOMPRESSED_INODES
        | format::flags::UNCOMPRESSED_DATA
        | format::flags::UNCOMPRESSED_FRAGMENTS;
    assert_eq!(superblock.flags & expected, expected);
    compare(&image, big_tree(), true);
}

#[test]
fn reads_other_layouts() {
    if !have("mksquashfs") {
        return;
    }
    let dir = test_dir("layouts");
    for (name, extra) in [
        ("small-blocks", &["-b", "4096"][..]),
        ("big-blocks", &["-b", "1M"][..]),
        ("no-fragments", &["-no-fragments"][..]),
        ("always-fragments", &["-always-use-fragments"][..]),
        ("no-sparse", &["-no-sparse"][..]),
        (
            "gzip-options",
            &["-Xcompression-level", "1", "-Xwindow-size", "10"][..],
        ),
        ("no-exports", &["-no-exports", "-no-duplicates"][..]),
    ] {
        let image = dir.join(name);
        eprintln!("layout {name}");
        mksquashfs(big_tree(), &image, extra);
        if name == "gzip-options" {
            let superblock = superblock(&fs::read(&image).unwrap());
            assert_ne!(superblock.flags & format::flags::COMPRESSOR_OPTIONS, 0);
        }
        compare(&image, big_tree(), true);
    }
    if have("gensquashfs") {
        let image = dir.join("gensquashfs-small-blocks");
        gensquashfs(big_tree(), &image, &["-c", "gzip", "-b", "4096"]);
        compare(&image, big_tree(), false);
    }
}

#[test]
fn refuses_other_compressors() {
    if !have("mksquashfs") {
        return;
    }
    let dir = test_dir("compressors");
    let tree = dir.join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("file"), b"contents").unwrap();
    let mut tried = 0;
    for name in ["xz", "zstd", "lz4", "lzo", "lzma"] {
        let image = dir.join(name);
        let status = Command::new("mksquashfs")
            .arg(&tree)
            .arg(&image)
            .args(["-noappend", "-quiet", "-no-progress", "-comp", name])
            .output()
            .unwrap();
        if !status.status.success() {
            eprintln!("mksquashfs here cannot make {name} images");
            continue;
        }
        tried += 1;
        let error = Archive::open(fs::read(&image).unwrap()).unwrap_err();
        assert_eq!(error, Error::UnsupportedCompressor(name));
        assert!(error.to_string().contains(name));
    }
    assert!(tried >= 2, "expected mksquashfs to make xz and zstd images");
}

#[test]
fn lookup_path_resolves_and_refuses() {
    if !have("mksquashfs") {
        return;
    }
    let image = test_dir("lookup-path").join("image");
    mksquashfs(big_tree(), &image, &[]);
    let archive = open(&image);
    let mut cache = Cache::new();
    let deep: Vec<String> = (0..40).map(|level| format!("d{level}")).collect();
    let leaf = format!("deep/{}/leaf.txt", deep.join("/"));
    let inode = archive.lookup_path(&leaf, &mut cache).unwrap();
    let mut buf = [0u8; 64];
    let read = archive.read(&inode, 0, &mut buf, &mut cache).unwrap();
    assert_eq!(&buf[..read], b"bottom\n");
    assert_eq!(
        archive.lookup_path(&format!("/./{leaf}"), &mut cache),
        Ok(inode)
    );
    assert_eq!(
        archive
            .lookup_path("many/entry-04999", &mut cache)
            .unwrap()
            .size,
        4
    );
    assert_eq!(
        archive.lookup_path("many/entry-05000", &mut cache),
        Err(Error::NotFound)
    );
    assert_eq!(
        archive.lookup_path("many/entry-0", &mut cache),
        Err(Error::NotFound)
    );
    assert_eq!(
        archive.lookup_path("files/f001/x", &mut cache),
        Err(Error::NotADirectory)
    );
    assert_eq!(
        archive.lookup_path("links/relative/x", &mut cache),
        Err(Error::NotADirectory)
    );
    assert_eq!(
        archive.lookup_path("deep/../big", &mut cache),
        Err(Error::InvalidPath)
    );
    assert_eq!(
        archive.lookup_path(&"a/".repeat(2049), &mut cache),
        Err(Error::InvalidPath)
    );
    let root = archive.root(&mut cache).unwrap();
    for bad in [&b""[..], b".", b"..", b"a/b", b"big\0"] {
        assert_eq!(archive.lookup(&root, bad, &mut cache), Ok(None));
    }
    let file = archive.lookup_path("big", &mut cache).unwrap();
    assert_eq!(
        archive.lookup(&file, b"x", &mut cache),
        Err(Error::NotADirectory)
    );
    assert_eq!(
        archive.read(&root, 0, &mut buf, &mut cache),
        Err(Error::NotAFile)
    );
    assert_eq!(
        archive.read_link(&file, &mut cache),
        Err(Error::NotASymlink)
    );
    // Every name of the big directory is found, whichever index entry it is under.
    let many = archive.lookup_path("many", &mut cache).unwrap();
    for i in (0..5000).step_by(7) {
        let name = format!("entry-{i:05}");
        let found = archive.lookup(&many, name.as_bytes(), &mut cache).unwrap();
        assert_eq!(found.unwrap().size, i.to_string().len() as u64, "{name}");
    }
    let limits = CheckLimits {
        max_depth: 10,
        ..CheckLimits::default()
    };
    assert_eq!(
        archive.check(&mut cache, &limits),
        Err(Error::LimitExceeded("directory depth"))
    );
}

#[test]
fn read_dir_resumes_at_every_offset() {
    if !have("mksquashfs") || !have("gensquashfs") {
        return;
    }
    let dir = test_dir("resume");
    let images = [dir.join("mk"), dir.join("gen")];
    mksquashfs(big_tree(), &images[0], &[]);
    gensquashfs(big_tree(), &images[1], &["-c", "gzip"]);
    for image in &images {
        let archive = open(image);
        let mut cache = Cache::with_limits(2, 1);
        for path in ["many", "files", "odd", "emptydir", "/"] {
            let dir = archive.lookup_path(path, &mut cache).unwrap();
            let all = list(&archive, &dir, &mut cache);
            // Resume after each entry in turn, one entry per call, as a FUSE readdir
            // with a tiny buffer would.
            let mut offset = 0;
            let mut one_by_one = Vec::new();
            loop {
                let mut got = None;
                archive
                    .read_dir(&dir, offset, &mut cache, &mut |entry| {
                        got = Some((
                            entry.name.to_vec(),
                            entry.reference,
                            entry.kind,
                            entry.inode_number,
                            entry.offset,
                        ));
                        false
                    })
                    .unwrap();
                let Some(entry) = got else { break };
                offset = entry.4;
                one_by_one.push(entry);
            }
            assert_eq!(one_by_one, all, "{path} in {}", image.display());
            // Offsets 1 and 2 are left for the caller's "." and "..".
            for start in [1, 2, 3] {
                let mut first = None;
                archive
                    .read_dir(&dir, start, &mut cache, &mut |entry| {
                        first = Some(entry.name.to_vec());
                        false
                    })
                    .unwrap();
                assert_eq!(first, all.first().map(|entry| entry.0.clone()));
            }
            if let Some(last) = all.last() {
                assert_eq!(
                    archive.dir_reader(&dir, last.4 + 1, &mut cache).err(),
                    Some(Error::BadOffset)
                );
                if all.len() > 1 {
                    assert_eq!(
                        archive.dir_reader(&dir, all[0].4 - 1, &mut cache).err(),
                        Some(Error::BadOffset)
                    );
                }
            }
        }
    }
}

#[test]
fn caches_are_bounded_and_shareable() {
    if !have("mksquashfs") {
        return;
    }
    let dir = test_dir("shared");
    let images = [dir.join("a"), dir.join("b")];
    mksquashfs(big_tree(), &images[0], &[]);
    mksquashfs(big_tree(), &images[1], &["-b", "4096"]);
    let a = open(&images[0]);
    let b = open(&images[1]);
    // One cache used with two archives in turn, as a store with a cache per thread
    // would: it must never hand one archive's blocks to the other.
    let mut cache = Cache::with_limits(1, 1);
    let expected = fs::read(big_tree().join("big")).unwrap();
    let in_a = a.lookup_path("big", &mut cache).unwrap();
    let in_b = b.lookup_path("big", &mut cache).unwrap();
    let mut buf_a = vec![0u8; 1000];
    let mut buf_b = vec![0u8; 1000];
    for offset in (0..expected.len() as u64).step_by(10_007) {
        let read_a = a.read(&in_a, offset, &mut buf_a, &mut cache).unwrap();
        let read_b = b.read(&in_b, offset, &mut buf_b, &mut cache).unwrap();
        let end = (offset as usize + 1000).min(expected.len());
        assert_eq!(&buf_a[..read_a], &expected[offset as usize..end]);
        assert_eq!(&buf_b[..read_b], &expected[offset as usize..end]);
    }
    // `&Archive` is shared between threads, each with its own cache.
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let a = &a;
            let expected = &expected;
            scope.spawn(move || {
                let mut cache = Cache::new();
                let file = a.lookup_path("big", &mut cache).unwrap();
                let got = read_chunked(a, &file, &mut cache, thread * 1000, 3000 + thread as usize);
                assert!(got == expected[thread as usize * 1000..]);
            });
        }
    });
}

// ---------------------------------------------------------------------------------
// Malformed images (SECURITY-TESTS 15-19)
// ---------------------------------------------------------------------------------

fn superblock(image: &[u8]) -> Superblock {
    Superblock::decode(image[..SUPERBLOCK_SIZE].try_into().unwrap())
}

fn set_superblock(image: &mut [u8], change: impl FnOnce(&mut Superblock)) {
    let mut superblock = superblock(image);
    change(&mut superblock);
    image[..SUPERBLOCK_SIZE].copy_from_slice(&superblock.encode());
}

/// A small tree whose parts the malformed tests patch, packed with 4 KiB blocks and
/// everything uncompressed (so its tables can be found and patched in place), or
/// with compressed data for the decompression bomb.
fn small_image(name: &str, extra: &[&str]) -> Vec<u8> {
    let dir = test_dir(name);
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("sub/child")).unwrap();
    fs::write(tree.join("sub/child/inner.txt"), b"inner").unwrap();
    fs::write(tree.join("ab"), b"ab contents").unwrap();
    fs::write(tree.join("x"), b"x contents").unwrap();
    fs::write(tree.join("abc"), b"abc contents").unwrap();
    fs::write(tree.join("dup1"), b"dup one").unwrap();
    fs::write(tree.join("dup2"), b"dup two").unwrap();
    fs::write(tree.join("same_a"), b"same").unwrap();
    std::os::unix::fs::symlink("ab", tree.join("same_b")).unwrap();
    let mut rng = Random::new(7);
    let mut big = rng.bytes(3 * 4096);
    big.extend(text(100, 1));
    fs::write(tree.join("big.bin"), &big).unwrap();
    // A hard link gets an extended file inode, with a 64-bit size.
    fs::write(tree.join("linked"), text(9000, 5)).unwrap();
    fs::hard_link(tree.join("linked"), tree.join("linked.too")).unwrap();
    let image = dir.join("image");
    mksquashfs(
        &tree,
        &image,
        &[&["-b", "4096", "-no-xattrs"], extra].concat(),
    );
    fs::read(image).unwrap()
}

fn uncompressed_image(name: &str) -> Vec<u8> {
    small_image(name, &["-noI", "-noD", "-noF", "-noX"])
}

/// The one place `needle` occurs in `image[from..to]`.
fn find_once(image: &[u8], from: usize, to: usize, needle: &[u8]) -> usize {
    let found: Vec<usize> = image[from..to]
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(at, _)| from + at)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{:?} occurs {} times",
        String::from_utf8_lossy(needle),
        found.len()
    );
    found[0]
}

/// Where the directory entry called `name` is in an uncompressed image: the offset
/// of its name; its fixed part is the 8 bytes before.
fn entry_at(image: &[u8], name: &[u8]) -> usize {
    let superblock = superblock(image);
    let from = superblock.directory_table_start as usize;
    let to = superblock
        .fragment_table_start
        .min(superblock.id_table_start) as usize;
    let mut needle = ((name.len() - 1) as u16).to_le_bytes().to_vec();
    needle.extend_from_slice(name);
    find_once(image, from, to, &needle) + 2
}

/// Where an inode is in an uncompressed image whose inode table is one block.
fn inode_at(image: &[u8], reference: u64) -> usize {
    let superblock = superblock(image);
    assert!(superblock.directory_table_start - superblock.inode_table_start < 8192);
    let (block, offset) = format::split_inode_ref(reference);
    assert_eq!(block, 0);
    superblock.inode_table_start as usize + 2 + offset as usize
}

/// Open and walk an image; it must fail, and not by panicking.
fn walk_error(image: &[u8]) -> Error {
    match Archive::open(image) {
        Err(error) => error,
        Ok(archive) => {
            let mut cache = Cache::new();
            archive
                .check(&mut cache, &CheckLimits::default())
                .expect_err("a malformed image passed the check")
        }
    }
}

fn lookup_error(image: &[u8], path: &str) -> Error {
    let archive = Archive::open(image).unwrap();
    let mut cache = Cache::new();
    let result = archive.lookup_path(path, &mut cache).and_then(|inode| {
        if inode.kind == Kind::File {
            let mut buf = vec![0u8; inode.size.min(1 << 20) as usize];
            archive.read(&inode, 0, &mut buf, &mut cache).map(|_| inode)
        } else {
            Ok(inode)
        }
    });
    result.expect_err("a malformed entry was accepted")
}

#[test]
fn small_images_are_sound() {
    if !have("mksquashfs") {
        return;
    }
    for image in [
        uncompressed_image("sound-raw"),
        small_image("sound-gzip", &[]),
    ] {
        let archive = Archive::open(&image[..]).unwrap();
        let mut cache = Cache::new();
        let summary = archive.check(&mut cache, &CheckLimits::default()).unwrap();
        assert_eq!(
            (summary.directories, summary.files, summary.symlinks),
            (3, 10, 1)
        );
        let link = archive.lookup_path("linked.too", &mut cache).unwrap();
        assert_eq!(link.nlink, 2);
    }
}

#[test]
fn bad_names_are_refused() {
    // SECURITY-TESTS 15.
    if !have("mksquashfs") {
        return;
    }
    let clean = uncompressed_image("names");
    for (old, new, reason) in [
        (&b"abc"[..], &b"a/c"[..], "invalid name in a directory"),
        (b"abc", b"a\0c", "invalid name in a directory"),
        (b"ab", b"..", "invalid name in a directory"),
        (b"x", b".", "invalid name in a directory"),
        (b"x", b"/", "invalid name in a directory"),
    ] {
        let mut image = clean.clone();
        let at = entry_at(&image, old);
        image[at..at + new.len()].copy_from_slice(new);
        assert_eq!(walk_error(&image), Error::Corrupt(reason), "{new:?}");
    }
    // A name longer than 256 bytes: the stored length is one less than the length.
    let mut image = clean.clone();
    let at = entry_at(&image, b"abc");
    image[at - 2..at].copy_from_slice(&256u16.to_le_bytes());
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("name longer than 256 bytes")
    );
    // An empty name cannot be stored (lengths are stored minus one); the shortest is
    // one byte, and a length of 0xFFFF means 65536 bytes, refused as too long.
    image[at - 2..at].copy_from_slice(&0xFFFFu16.to_le_bytes());
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("name longer than 256 bytes")
    );
}

#[test]
fn duplicate_and_unsorted_entries_are_refused() {
    // SECURITY-TESTS 16.
    if !have("mksquashfs") {
        return;
    }
    let clean = uncompressed_image("duplicates");
    for (old, new) in [
        (&b"dup2"[..], &b"dup1"[..]),
        // A symlink and a file of the same name (CVE-2021-41072).
        (b"same_b", b"same_a"),
        // Out of order: "dup2" sorted before "dup1".
        (b"dup2", b"dup0"),
        (b"ab", b"zz"),
    ] {
        let mut image = clean.clone();
        let at = entry_at(&image, old);
        image[at..at + new.len()].copy_from_slice(new);
        assert_eq!(
            walk_error(&image),
            Error::Corrupt("directory entries unsorted or duplicated"),
            "{}",
            String::from_utf8_lossy(new)
        );
    }
}

#[test]
fn directory_cycles_are_refused() {
    // SECURITY-TESTS 17.
    if !have("mksquashfs") {
        return;
    }
    let clean = uncompressed_image("cycles");
    let archive = Archive::open(&clean[..]).unwrap();
    let mut cache = Cache::new();
    let root = archive.root(&mut cache).unwrap();
    let sub = archive.lookup_path("sub", &mut cache).unwrap();
    for (target, reason) in [
        (sub, "directory contains itself"),
        (root, "directory's parent is not the one holding it"),
    ] {
        // Point sub's entry "child" at `target`, with a matching inode number.
        let mut image = clean.clone();
        let at = entry_at(&image, b"child") - 8;
        // The header is the 12 bytes before sub's only entry; its last field is the
        // base inode number the entry's delta is added to.
        let header_number = u32::from_le_bytes(image[at - 4..at].try_into().unwrap());
        let (block, offset) = format::split_inode_ref(target.reference);
        assert_eq!(block, 0);
        image[at..at + 2].copy_from_slice(&offset.to_le_bytes());
        let delta = (i64::from(target.number) - i64::from(header_number)) as i16;
        image[at + 2..at + 4].copy_from_slice(&delta.to_le_bytes());
        assert_eq!(lookup_error(&image, "sub/child"), Error::Corrupt(reason));
        assert_eq!(walk_error(&image), Error::Corrupt(reason));
    }
    // Deep nesting is bounded by the path length and the walk's depth limit.
    assert_eq!(
        archive.lookup_path(&"sub/".repeat(1100), &mut cache),
        Err(Error::InvalidPath)
    );
    let limits = CheckLimits {
        max_depth: 2,
        ..CheckLimits::default()
    };
    assert_eq!(
        archive.check(&mut cache, &limits),
        Err(Error::LimitExceeded("directory depth"))
    );
}

#[test]
fn directory_indexes_are_checked() {
    // A directory index entry that names no header, or the wrong first name, would
    // let a lookup find something the listing does not have.
    if !have("mksquashfs") {
        return;
    }
    let dir = test_dir("index");
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("many")).unwrap();
    for i in 0..1000 {
        fs::write(tree.join(format!("many/entry-{i:05}")), b"").unwrap();
    }
    let image = dir.join("image");
    mksquashfs(&tree, &image, &["-noI", "-no-xattrs"]);
    let clean = fs::read(&image).unwrap();
    let archive = Archive::open(&clean[..]).unwrap();
    let mut cache = Cache::new();
    archive.check(&mut cache, &CheckLimits::default()).unwrap();
    // Index entries are the only "entry-" names in the inode table, after their
    // name length (minus one) as a u32.
    let superblock = superblock(&clean);
    let (from, to) = (
        superblock.inode_table_start as usize,
        superblock.directory_table_start as usize,
    );
    let needle = b"\x0a\x00\x00\x00entry-";
    let found: Vec<usize> = (from..to - needle.len())
        .filter(|&at| &clean[at..at + needle.len()] == needle)
        .collect();
    assert!(found.len() >= 2, "{found:?}");
    let at = found[0];
    let name = clean[at + 4..at + 15].to_vec();

    let mut image = clean.clone();
    let index = u32::from_le_bytes(image[at - 8..at - 4].try_into().unwrap());
    image[at - 8..at - 4].copy_from_slice(&(index + 4).to_le_bytes());
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("directory index names no header")
    );
    let archive = Archive::open(&image[..]).unwrap();
    let many = archive.lookup_path("many", &mut cache).unwrap();
    let looked = archive.lookup(&many, &name, &mut cache);
    assert!(matches!(looked, Err(Error::Corrupt(_))), "{looked:?}");

    let mut image = clean.clone();
    image[at + 14] += 1;
    let mut renamed = name.clone();
    renamed[10] += 1;
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("directory index disagrees with the listing")
    );
    let archive = Archive::open(&image[..]).unwrap();
    assert_eq!(
        archive.lookup(&many, &renamed, &mut cache),
        Err(Error::Corrupt("directory index disagrees with the listing"))
    );
}

#[test]
fn bad_offsets_counts_and_numbers_are_refused() {
    // SECURITY-TESTS 18.
    if !have("mksquashfs") {
        return;
    }
    let clean = uncompressed_image("offsets");
    let archive = Archive::open(&clean[..]).unwrap();
    let mut cache = Cache::new();
    let root = archive.root(&mut cache).unwrap();
    let file = archive.lookup_path("ab", &mut cache).unwrap();
    let big = archive.lookup_path("big.bin", &mut cache).unwrap();
    let used = superblock(&clean).bytes_used;
    drop(archive);

    let corrupt = |change: &dyn Fn(&mut Superblock)| {
        let mut image = clean.clone();
        set_superblock(&mut image, |superblock| change(superblock));
        walk_error(&image)
    };
    assert_eq!(corrupt(&|s| s.magic ^= 1), Error::BadMagic);
    assert_eq!(
        corrupt(&|s| s.version_major = 3),
        Error::UnsupportedVersion { major: 3, minor: 0 }
    );
    assert_eq!(
        corrupt(&|s| s.compression_id = format::compression::XZ),
        Error::UnsupportedCompressor("xz")
    );
    assert_eq!(
        corrupt(&|s| s.compression_id = 77),
        Error::UnsupportedCompressor("unknown")
    );
    for change in [
        &(|s: &mut Superblock| s.block_size = 5000) as &dyn Fn(&mut Superblock),
        &|s| s.block_log = 13,
        &|s| {
            s.block_size = 1 << 21;
            s.block_log = 21;
        },
        &|s| s.bytes_used = used + 1_000_000,
        &|s| s.bytes_used = u64::MAX,
        &|s| s.inode_table_start = s.directory_table_start,
        &|s| s.inode_table_start = u64::MAX,
        &|s| s.inode_table_start = 10,
        &|s| s.directory_table_start = u64::MAX,
        &|s| s.directory_table_start = s.id_table_start + 4,
        &|s| s.id_table_start = used,
        &|s| s.id_table_start = u64::MAX - 3,
        &|s| s.id_table_start = s.inode_table_start,
        &|s| s.fragment_table_start = used + 8,
        &|s| s.fragment_table_start = s.inode_table_start,
        &|s| s.export_table_start = used + 8,
        &|s| s.xattr_id_table_start = 5,
        &|s| s.id_count = 0,
        &|s| s.id_count = u16::MAX,
        &|s| s.inode_count = 0,
        &|s| s.fragment_entry_count = u32::MAX,
        &|s| s.root_inode_ref = 1 << 48,
        &|s| s.root_inode_ref = 8191,
        &|s| s.root_inode_ref = format::inode_ref(1 << 20, 0),
        &|s| s.root_inode_ref = file.reference,
    ] {
        let error = corrupt(change);
        assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    }
    // Truncated images.
    for len in [0, 50, 95, 96, 200, used as usize - 1] {
        let error = walk_error(&clean[..len]);
        assert!(
            matches!(error, Error::Corrupt(_) | Error::BadMagic),
            "{len}: {error:?}"
        );
    }

    // Inode numbers 0 and past the count, in the inode and in the entry.
    let inode = inode_at(&clean, file.reference);
    for number in [0u32, 1000] {
        let mut image = clean.clone();
        image[inode + 12..inode + 16].copy_from_slice(&number.to_le_bytes());
        assert_eq!(
            lookup_error(&image, "ab"),
            Error::Corrupt("inode number out of range")
        );
        let mut image = clean.clone();
        let at = entry_at(&image, b"ab") - 8;
        image[at + 2..at + 4].copy_from_slice(&(1000i16).to_le_bytes());
        assert_eq!(
            walk_error(&image),
            Error::Corrupt("inode number out of range")
        );
    }
    // An entry whose inode number is another inode's.
    let mut image = clean.clone();
    let at = entry_at(&image, b"ab") - 8;
    let delta = i16::from_le_bytes([image[at + 2], image[at + 3]]);
    image[at + 2..at + 4].copy_from_slice(&(delta + 1).to_le_bytes());
    assert_eq!(
        lookup_error(&image, "ab"),
        Error::Corrupt("directory entry disagrees with its inode")
    );
    // An entry pointing past the inode table, or into the middle of an inode.
    let mut image = clean.clone();
    image[at..at + 2].copy_from_slice(&8000u16.to_le_bytes());
    assert!(matches!(lookup_error(&image, "ab"), Error::Corrupt(_)));
    let mut image = clean.clone();
    image[at..at + 2].copy_from_slice(&9000u16.to_le_bytes());
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("inode offset past its block")
    );
    // A uid index past the id table.
    let mut image = clean.clone();
    image[inode + 4..inode + 6].copy_from_slice(&5u16.to_le_bytes());
    assert_eq!(
        lookup_error(&image, "ab"),
        Error::Corrupt("uid or gid index past the id table")
    );
    // An unknown inode type.
    let mut image = clean.clone();
    image[inode..inode + 2].copy_from_slice(&15u16.to_le_bytes());
    assert_eq!(
        lookup_error(&image, "ab"),
        Error::Corrupt("unknown inode type")
    );
    // A fragment index out of range (basic file: fragment at 16 + 4).
    let mut image = clean.clone();
    image[inode + 20..inode + 24].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(
        lookup_error(&image, "ab"),
        Error::Corrupt("fragment index out of range")
    );
    // A fragment offset past the block.
    let mut image = clean.clone();
    image[inode + 24..inode + 28].copy_from_slice(&4090u32.to_le_bytes());
    assert_eq!(
        lookup_error(&image, "ab"),
        Error::Corrupt("fragment tail past the block size")
    );
    let mut image = clean.clone();
    image[inode + 24..inode + 28].copy_from_slice(&4000u32.to_le_bytes());
    assert_eq!(
        lookup_error(&image, "ab"),
        Error::Corrupt("file tail past the end of its fragment")
    );
    // A directory listing pointing past the directory table (basic dir: start block
    // at 16, size at 24).
    let root_inode = inode_at(&clean, root.reference);
    let mut image = clean.clone();
    image[root_inode + 16..root_inode + 20].copy_from_slice(&100_000u32.to_le_bytes());
    assert!(matches!(walk_error(&image), Error::Corrupt(_)));
    let mut image = clean.clone();
    image[root_inode + 24..root_inode + 26].copy_from_slice(&60_000u16.to_le_bytes());
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("directory larger than the directory table")
    );
    let mut image = clean.clone();
    image[root_inode + 24..root_inode + 26].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(walk_error(&image), Error::Corrupt("directory size below 3"));
    // A directory header claiming more than 256 entries.
    let mut image = clean.clone();
    let first = entry_at(&image, b"ab") - 8 - 12;
    image[first..first + 4].copy_from_slice(&300u32.to_le_bytes());
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("directory header with more than 256 entries")
    );
    // Block size words: a stored size over the block size, unknown bits, and a
    // block list that runs off the data area.
    let big_inode = inode_at(&clean, big.reference);
    let list = big_inode + 32;
    for word in [4097u32, 1 << 26 | 100, 0x00FF_FFFF] {
        let mut image = clean.clone();
        image[list..list + 4].copy_from_slice(&word.to_le_bytes());
        assert_eq!(
            lookup_error(&image, "big.bin"),
            Error::Corrupt("bad data block size"),
            "{word:#x}"
        );
    }
    let mut image = clean.clone();
    image[big_inode + 16..big_inode + 20].copy_from_slice(&(used as u32).to_le_bytes());
    assert_eq!(
        lookup_error(&image, "big.bin"),
        Error::Corrupt("data block outside the data area")
    );
    let mut image = clean.clone();
    image[list..list + 4].copy_from_slice(&(format::DATA_UNCOMPRESSED | 1000).to_le_bytes());
    assert_eq!(
        lookup_error(&image, "big.bin"),
        Error::Corrupt("data block size differs from the file's")
    );
    // Metadata block headers: a length over 8192 and a length of zero.
    let table = superblock(&clean).inode_table_start as usize;
    for header in [0x8000u16 | 9000, 0x8000, 0x7FFF] {
        let mut image = clean.clone();
        image[table..table + 2].copy_from_slice(&header.to_le_bytes());
        assert!(
            matches!(walk_error(&image), Error::Corrupt(_)),
            "{header:#x}"
        );
    }
}

#[test]
fn huge_files_and_bombs_are_capped() {
    // SECURITY-TESTS 19.
    if !have("mksquashfs") {
        return;
    }
    let clean = uncompressed_image("huge");
    assert!(clean.len() < 40_000);
    let archive = Archive::open(&clean[..]).unwrap();
    let mut cache = Cache::new();
    let link = archive.lookup_path("linked.too", &mut cache).unwrap();
    let file = archive.lookup_path("ab", &mut cache).unwrap();
    drop(archive);
    // An extended file inode claiming 1 TB (size at 16 + 8).
    let inode = inode_at(&clean, link.reference);
    assert_eq!(
        u16::from_le_bytes([clean[inode], clean[inode + 1]]),
        format::inode_type::EXT_FILE
    );
    let mut image = clean.clone();
    image[inode + 24..inode + 32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(
        lookup_error(&image, "linked.too"),
        Error::Corrupt("file larger than its image can describe")
    );
    // An extended file whose blocks start at the very end of the address space:
    // adding the block sizes must not overflow.
    let mut image = clean.clone();
    image[inode + 16..inode + 24].copy_from_slice(&(u64::MAX - 10).to_le_bytes());
    assert_eq!(
        lookup_error(&image, "linked.too"),
        Error::Corrupt("data block outside the data area")
    );
    let archive = Archive::open(&image[..]).unwrap();
    let linked = archive.lookup_path("linked.too", &mut cache).unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(
        archive.read(&linked, 4096, &mut buf, &mut cache),
        Err(Error::Corrupt("data block outside the data area"))
    );
    drop(archive);
    // A basic file claiming 4 GiB.
    let inode = inode_at(&clean, file.reference);
    let mut image = clean.clone();
    image[inode + 28..inode + 32].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        lookup_error(&image, "ab"),
        Error::Corrupt("file larger than its image can describe")
    );

    // A decompression bomb in a data block: a zlib stream of 1 MiB of zeros put in
    // place of big.bin's first (raw) block.
    let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![0u8; 1 << 20], 9);
    assert!(bomb.len() < 4096);
    let archive = Archive::open(&clean[..]).unwrap();
    let big = archive.lookup_path("big.bin", &mut cache).unwrap();
    drop(archive);
    let big_inode = inode_at(&clean, big.reference);
    let start =
        u32::from_le_bytes(clean[big_inode + 16..big_inode + 20].try_into().unwrap()) as usize;
    let mut image = clean.clone();
    image[start..start + bomb.len()].copy_from_slice(&bomb);
    image[big_inode + 32..big_inode + 36].copy_from_slice(&(bomb.len() as u32).to_le_bytes());
    let archive = Archive::open(&image[..]).unwrap();
    let big = archive.lookup_path("big.bin", &mut cache).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        archive.read(&big, 0, &mut buf, &mut cache),
        Err(Error::Corrupt("block decompresses past its limit"))
    );
    assert_eq!(
        archive.read(&big, 10, &mut buf[..100], &mut cache),
        Err(Error::Corrupt("block decompresses past its limit"))
    );
    // A stream that decompresses to less than the block is refused too.
    let short = miniz_oxide::deflate::compress_to_vec_zlib(&[1u8; 100], 9);
    let mut image = clean.clone();
    image[start..start + short.len()].copy_from_slice(&short);
    image[big_inode + 32..big_inode + 36].copy_from_slice(&(short.len() as u32).to_le_bytes());
    let archive = Archive::open(&image[..]).unwrap();
    assert_eq!(
        archive.read(&big, 0, &mut buf, &mut cache),
        Err(Error::Corrupt("data block shorter than the file says"))
    );
    assert_eq!(
        archive.read(&big, 1, &mut buf[..10], &mut cache),
        Err(Error::Corrupt("data block size differs from the file's"))
    );

    // A decompression bomb in a metadata block: the inode table's only block,
    // replaced by a compressed stream of 100 KiB.
    let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![0u8; 100 << 10], 9);
    let superblock = superblock(&clean);
    let table = superblock.inode_table_start as usize;
    let stored = u16::from_le_bytes([clean[table], clean[table + 1]]) & 0x7FFF;
    assert!(bomb.len() < usize::from(stored));
    let mut image = clean.clone();
    image[table..table + 2].copy_from_slice(&stored.to_le_bytes());
    image[table + 2..table + 2 + bomb.len()].copy_from_slice(&bomb);
    assert_eq!(
        walk_error(&image),
        Error::Corrupt("block decompresses past its limit")
    );
}

/// Every single-byte change of a small image, opened and walked: errors are fine,
/// panics and hangs are not.
#[test]
fn every_single_byte_corruption_is_survived() {
    if !have("mksquashfs") {
        return;
    }
    let limits = CheckLimits {
        max_entries: 1000,
        max_depth: 32,
        max_read: 1 << 20,
        read_data: true,
    };
    for clean in [
        uncompressed_image("bytes-raw"),
        small_image("bytes-gzip", &[]),
    ] {
        let used = superblock(&clean).bytes_used as usize;
        let mut outcomes = BTreeMap::new();
        for at in 0..used {
            for change in [0xFF, 0x01, 0x80] {
                let mut image = clean[..used].to_vec();
                image[at] ^= change;
                let outcome = match Archive::open(&image[..]) {
                    Ok(archive) => match archive.check(&mut Cache::with_limits(1, 1), &limits) {
                        Ok(_) => "walked".to_string(),
                        Err(error) => format!("{error:?}"),
                    },
                    Err(error) => format!("{error:?}"),
                };
                *outcomes.entry(outcome).or_insert(0) += 1;
            }
        }
        eprintln!("{} bytes: {outcomes:#?}", used);
        assert!(outcomes.len() > 5);
    }
}

/// Random multi-byte corruptions with a fixed seed.
#[test]
fn random_corruptions_are_survived() {
    if !have("mksquashfs") {
        return;
    }
    let limits = CheckLimits {
        max_entries: 1000,
        max_depth: 32,
        max_read: 1 << 20,
        read_data: true,
    };
    let mut rng = Random::new(0xC0FFEE);
    for clean in [
        uncompressed_image("random-raw"),
        small_image("random-gzip", &[]),
    ] {
        for _ in 0..3000 {
            let mut image = clean.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.index(image.len());
                image[at] = rng.next_u64() as u8;
            }
            if let Ok(archive) = Archive::open(&image[..]) {
                let _ = archive.check(&mut Cache::with_limits(1, 1), &limits);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The fuzz corpus
// ---------------------------------------------------------------------------------

/// Replays every input of the fuzz corpus through the fuzz target's own walk.
#[test]
fn fuzz_corpus_replays() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/squashfs");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&corpus)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 3, "the seed corpus is missing");
    let mut walked = 0;
    for input in &inputs {
        let bytes = fs::read(input).unwrap();
        if walk::walk(&bytes).is_ok() {
            walked += 1;
        }
    }
    eprintln!(
        "{} corpus inputs, {walked} walked without error",
        inputs.len()
    );
    assert!(walked >= 3, "the seed images must walk cleanly");
}
