//! SECURITY-TESTS.md items 15 to 20 and 24 through the FUSE store: `pkg add
//! --allow-untrusted` refuses malformed images, and when installed images go bad on
//! disk anyway, the store gives EIO (or nothing) for what they break while the daemon
//! lives on and serves every other package; symlinks never lead the exchange
//! directories out of the mount; a killed store answers ENOTCONN at once and can be
//! mounted again.
//!
//! The malformed images are made by `mksquashfs` with uncompressed metadata and data
//! (`-noI -noD -noF`), so names and inode fields can be found and changed in place;
//! each keeps its `.pkg/meta` intact, so only the structure check refuses it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use amber_core::squashfs::read::{Archive, Cache};
use amber_tests::fixture::{future, noise, Device, Repo, ARCH};
use amber_tests::TempDir;

use crate::store::{
    can_mount, device_for, errno, lexical_target, links_below, names, pack, Mounted, EIO, ENOTCONN,
};

/// A package tree: `.pkg/meta` for `name` 1.0-r0, `bin/NAME-good` and `etc/NAME.conf`,
/// which must stay readable whatever else in the image is broken.
fn base_tree(dir: &Path, name: &str) {
    fs::create_dir_all(dir.join(".pkg")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    let meta = format!(
        "name {name}\nversion 1.0-r0\narch {ARCH}\ndeps\nprovides\ndescription\nlicense\nsize 0\nrecipe\n"
    );
    fs::write(dir.join(".pkg/meta"), meta).unwrap();
    fs::write(
        dir.join(format!("bin/{name}-good")),
        format!("{name} good\n"),
    )
    .unwrap();
    fs::write(
        dir.join(format!("etc/{name}.conf")),
        format!("{name} conf\n"),
    )
    .unwrap();
}

/// An image made by mksquashfs with nothing compressed, to be changed in place.
struct Raw {
    bytes: Vec<u8>,
}

impl Raw {
    /// With `compress_data`, data blocks are compressed (metadata never is).
    fn make(tree: &Path, image: &Path, compress_data: bool) -> Raw {
        let mut command = Command::new("mksquashfs");
        command.arg(tree).arg(image);
        if !compress_data {
            command.args(["-noD", "-noF"]);
        }
        let status = command
            .args(["-noI", "-noX", "-no-xattrs", "-no-exports", "-all-root"])
            .args([
                "-mkfs-time",
                "0",
                "-all-time",
                "0",
                "-noappend",
                "-quiet",
                "-no-progress",
            ])
            .status()
            .expect("run mksquashfs");
        assert!(status.success(), "mksquashfs {}", tree.display());
        let raw = Raw {
            bytes: fs::read(image).unwrap(),
        };
        // The patches below assume one uncompressed metadata block per table.
        for start in [raw.u64_at(64), raw.u64_at(72)] {
            let header = u16::from_le_bytes([raw.bytes[start], raw.bytes[start + 1]]);
            assert!(header & 0x8000 != 0, "metadata is compressed");
        }
        raw
    }

    fn u64_at(&self, at: usize) -> usize {
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().unwrap()) as usize
    }

    /// Where the inode of `path` starts in the file.
    fn inode_at(&self, path: &str) -> usize {
        let archive = Archive::open(&self.bytes[..]).expect("the untouched image reads");
        let inode = archive.lookup_path(path, &mut Cache::new()).unwrap();
        let (block, offset) = (inode.reference >> 16, inode.reference & 0xFFFF);
        assert_eq!(block, 0, "{path}: inode past the first metadata block");
        self.u64_at(64) + 2 + offset as usize
    }

    /// Where the directory entry named `name` stores its name, just after its 16-bit
    /// length field; it must occur once in the directory table.
    fn name_at(&self, name: &[u8]) -> usize {
        let (start, end) = (self.u64_at(72), self.bytes.len());
        let mut pattern = ((name.len() - 1) as u16).to_le_bytes().to_vec();
        pattern.extend_from_slice(name);
        let hits: Vec<usize> = (start..end - pattern.len())
            .filter(|&at| self.bytes[at..at + pattern.len()] == pattern[..])
            .collect();
        assert_eq!(hits.len(), 1, "{}", String::from_utf8_lossy(name));
        hits[0] + 2
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) {
        assert_eq!(from.len(), to.len());
        let at = self.name_at(from);
        self.bytes[at..at + to.len()].copy_from_slice(to);
    }

    fn put_u32(&mut self, at: usize, value: u32) {
        self.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(&mut self, at: usize, value: u64) {
        self.bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn inode_type(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }
}

/// What a harmed package should show through the store, checked after mounting.
enum Expect {
    /// Listing `bin` fails with EIO, or lists only valid, distinct names.
    BadNames,
    /// `bin/FILE` gives EIO on stat while `bin` still lists it.
    BrokenInode(&'static str),
    /// `bin/FILE` stats with this size but reading it gives EIO.
    BrokenData(&'static str, u64),
    /// `bin/loop` is a directory that contains itself: walking down stops with an
    /// error, and the exchange directories stay bounded.
    Cycle,
}

/// An image built clean, and the same bytes harmed in place.
struct Harmed {
    clean: PathBuf,
    harmed: PathBuf,
    expect: Expect,
}

/// Build the image `name`, clean and harmed, and say what to expect of the harm.
fn harmed(temp: &TempDir, name: &str) -> Harmed {
    let tree = temp.join(format!("trees/{name}"));
    base_tree(&tree, name);
    let bin = tree.join("bin");
    let image = temp.join(format!("{name}-1.0-r0.squashfs"));
    let build = |tree: &Path| Raw::make(tree, &image, false);
    let (raw, expect) = match name {
        // Item 15: names with `..`, `/`, NUL, longer than 256 bytes.
        "dotdot" | "slash" | "nul" | "long" => {
            let victim = if name == "dotdot" { "QQ" } else { "QxQ" };
            fs::write(bin.join(victim), b"renamed\n").unwrap();
            let mut raw = build(&tree);
            match name {
                "dotdot" => raw.rename(b"QQ", b".."),
                "slash" => raw.rename(b"QxQ", b"Q/Q"),
                "nul" => raw.rename(b"QxQ", b"Q\0Q"),
                _ => {
                    let at = raw.name_at(b"QxQ") - 2;
                    raw.bytes[at..at + 2].copy_from_slice(&299u16.to_le_bytes());
                }
            }
            (raw, Expect::BadNames)
        }
        // Item 16: duplicate entries; a symlink and a file of the same name.
        "dup" | "twin" => {
            fs::write(bin.join("twinB"), b"file\n").unwrap();
            if name == "dup" {
                fs::write(bin.join("twinA"), b"file\n").unwrap();
            } else {
                symlink(format!("{name}-good"), bin.join("twinA")).unwrap();
            }
            let mut raw = build(&tree);
            raw.rename(b"twinB", b"twinA");
            (raw, Expect::BadNames)
        }
        // Item 18: inode 0; a fragment index out of range; data past the end.
        "zero" | "fragment" => {
            fs::write(bin.join("target"), b"small file in a fragment\n").unwrap();
            let mut raw = build(&tree);
            let at = raw.inode_at("bin/target");
            assert_eq!(raw.inode_type(at), 2, "a basic file inode");
            if name == "zero" {
                raw.put_u32(at + 12, 0);
            } else {
                raw.put_u32(at + 20, 1000);
            }
            (raw, Expect::BrokenInode("target"))
        }
        "offset" => {
            fs::write(bin.join("target"), noise(300_000, 3)).unwrap();
            let mut raw = build(&tree);
            let at = raw.inode_at("bin/target");
            assert_eq!(raw.inode_type(at), 2, "a basic file inode");
            raw.put_u32(at + 16, 0xFFFF_0000);
            (raw, Expect::BrokenData("target", 300_000))
        }
        // Item 19: a small image claiming a 1 TB file (a hard link makes mksquashfs
        // write an extended file inode, whose size has 64 bits).
        "huge" => {
            fs::write(bin.join("target"), b"small\n").unwrap();
            fs::hard_link(bin.join("target"), bin.join("target-link")).unwrap();
            let mut raw = build(&tree);
            let at = raw.inode_at("bin/target");
            assert_eq!(raw.inode_type(at), 9, "an extended file inode");
            raw.put_u64(at + 24, 1 << 40);
            (raw, Expect::BrokenInode("target"))
        }
        // Item 19: a decompression bomb: a block that inflates to 128 KiB in a file that
        // says it holds 1,000 bytes. The structure check does not decompress data, so
        // the store is what must cap it.
        "bomb" => {
            fs::write(bin.join("target"), vec![b'a'; 128 * 1024]).unwrap();
            let mut raw = Raw::make(&tree, &image, true);
            let at = raw.inode_at("bin/target");
            assert_eq!(raw.inode_type(at), 2, "a basic file inode");
            let word = u32::from_le_bytes(raw.bytes[at + 32..at + 36].try_into().unwrap());
            assert!(
                word & (1 << 24) == 0 && word < 4096,
                "a small compressed block: {word:#x}"
            );
            raw.put_u32(at + 28, 1000);
            (raw, Expect::BrokenData("target", 1000))
        }
        // Item 17: a directory whose listing is its parent's, so it contains itself.
        "cycle" => {
            fs::create_dir_all(bin.join("loop")).unwrap();
            let mut raw = build(&tree);
            let (parent, child) = (raw.inode_at("bin"), raw.inode_at("bin/loop"));
            assert_eq!((raw.inode_type(parent), raw.inode_type(child)), (1, 1));
            // start_block, nlink, file_size, offset; the inode number and parent stay.
            let listing = raw.bytes[parent + 16..parent + 28].to_vec();
            raw.bytes[child + 16..child + 28].copy_from_slice(&listing);
            (raw, Expect::Cycle)
        }
        other => panic!("no harm called {other}"),
    };
    let harmed = temp.join(format!("harmed/{name}-1.0-r0.squashfs"));
    fs::create_dir_all(harmed.parent().unwrap()).unwrap();
    fs::write(&harmed, &raw.bytes).unwrap();
    Harmed {
        clean: image,
        harmed,
        expect,
    }
}

/// `ls -a1 DIR`: Ok(names, "." and ".." included) or Err(stderr).
fn ls_all(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let output = Command::new("ls").arg("-a1").arg(dir).output().unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// Read a file through a thread, failing the test if it takes longer than `limit`:
/// nothing the store is asked may hang.
fn read_within(path: &Path, limit: Duration) -> std::io::Result<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = send.send(fs::read(owned));
    });
    receive
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{}: no answer within {limit:?}", path.display()))
}

/// Every symlink in the exchange directories points, one hop, to an entry of a package
/// directory inside the mount; returns how many links were checked. With `broken`, the
/// entry may give EIO (a link into a malformed image).
fn exchange_links_stay_inside(store: &Mounted, broken: bool) -> usize {
    let mut links = Vec::new();
    for dir in ["bin", "sbin", "lib", "share", "etc", "include", "svc"] {
        links_below(&store.join(dir), &mut links);
    }
    for link in &links {
        let target = fs::read_link(link).unwrap();
        assert!(
            target.is_relative(),
            "{}: {}",
            link.display(),
            target.display()
        );
        let resolved = lexical_target(link, &target);
        assert!(
            resolved.starts_with(&store.dir) && resolved != store.dir,
            "{} -> {} leaves the mount",
            link.display(),
            target.display()
        );
        let package = resolved
            .strip_prefix(&store.dir)
            .unwrap()
            .components()
            .next()
            .unwrap();
        let package = package.as_os_str().to_string_lossy();
        assert!(
            !["bin", "sbin", "lib", "share", "etc", "include", "svc"].contains(&package.as_ref()),
            "{} -> {} points into an exchange directory",
            link.display(),
            target.display()
        );
        let found = errno(fs::symlink_metadata(&resolved));
        assert!(
            found.is_none() || (broken && found == Some(EIO)),
            "{} -> {} names nothing",
            link.display(),
            target.display()
        );
    }
    links.len()
}

#[test]
fn store_malformed_images_give_eio_and_the_daemon_serves_the_rest() {
    if !can_mount() {
        return;
    }
    if !amber_testkit::require_tool("mksquashfs", "squashfs-tools") {
        return;
    }
    let temp = TempDir::new("store-malformed");
    let harms = [
        "dotdot", "slash", "nul", "long", "dup", "twin", "zero", "fragment", "offset", "huge",
        "cycle", "bomb",
    ];
    let device = Device::new(&temp, "device");
    let fine_tree = temp.join("fine-tree");
    fs::create_dir_all(fine_tree.join("bin")).unwrap();
    fs::write(fine_tree.join("bin/fine"), b"fine\n").unwrap();
    let fine = temp.join("fine-1.0-r0.squashfs");
    pack(&fine_tree, &fine, "fine", "1.0-r0", &[]);
    let mut expectations = Vec::new();
    let mut add = vec![
        "add".to_owned(),
        "--allow-untrusted".to_owned(),
        fine.display().to_string(),
    ];
    for name in harms {
        let image = harmed(&temp, name);
        // pkg checks an image's whole structure before taking it: the harmed image is
        // refused and nothing changes. (The bomb's structure is sound; only reading
        // its data shows it.)
        if name != "bomb" {
            let before = device.snapshot();
            let harmed = image.harmed.to_str().unwrap();
            let line = device.fails(&["add", "--allow-untrusted", harmed]);
            assert!(line.contains("malformed image"), "{name}: {line}");
            assert_eq!(device.snapshot(), before, "{name}");
        }
        add.push(image.clean.display().to_string());
        expectations.push((name, image));
    }
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    device.ok(&add);
    // The store does not count on that check: the images go bad on disk after they
    // were installed (same size, other bytes), and only then is the store mounted.
    for (name, image) in &expectations {
        let installed = device.root.join(format!("images/{name}-1.0-r0.squashfs"));
        fs::copy(&image.harmed, &installed).unwrap();
    }
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);
    let limit = Duration::from_secs(5);

    for (name, image) in &expectations {
        let id = format!("{name}-1.0-r0");
        let bin = store.join(format!("{id}/bin"));
        match &image.expect {
            Expect::BadNames => match ls_all(&bin) {
                Err(stderr) => assert!(stderr.contains("Input/output error"), "{id}: {stderr}"),
                Ok(listed) => {
                    let mut seen = listed.clone();
                    seen.sort();
                    seen.dedup();
                    assert_eq!(seen.len(), listed.len(), "{id}: duplicates in {listed:?}");
                    let dots = listed.iter().filter(|n| n.as_slice() == b"..").count();
                    assert_eq!(dots, 1, "{id}: {listed:?}");
                    for name in &listed {
                        assert!(name.len() <= 255 && !name.contains(&0), "{id}: {name:?}");
                    }
                }
            },
            Expect::BrokenInode(file) => {
                let path = bin.join(file);
                assert_eq!(errno(fs::symlink_metadata(&path)), Some(EIO), "{id}");
                assert_eq!(errno(read_within(&path, limit)), Some(EIO), "{id}");
                // The directory lists; only the broken entry fails.
                let listed = names(&bin);
                assert!(listed.contains(&file.to_string()), "{id}: {listed:?}");
                let output = Command::new("ls").arg("-l").arg(&bin).output().unwrap();
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert!(stdout.contains(&format!("{name}-good")), "{id}: {stdout}");
            }
            Expect::BrokenData(file, size) => {
                let path = bin.join(file);
                assert_eq!(fs::metadata(&path).unwrap().len(), *size, "{id}");
                assert_eq!(errno(read_within(&path, limit)), Some(EIO), "{id}");
            }
            Expect::Cycle => {
                // The directory lists, and going down into itself is an error.
                assert_eq!(names(&bin.join("loop")), ["cycle-good", "loop"], "{id}");
                assert_eq!(
                    errno(fs::metadata(bin.join("loop/loop"))),
                    Some(EIO),
                    "{id}"
                );
                assert_eq!(
                    errno(fs::read_dir(bin.join("loop/loop"))),
                    Some(EIO),
                    "{id}"
                );
                // The exchange directories follow it no deeper than their depth limit.
                let mut exchange = store.join("bin");
                let mut depth = 0;
                while fs::metadata(exchange.join("loop")).is_ok() {
                    exchange.push("loop");
                    depth += 1;
                    assert!(depth <= 32, "{id}: the exchange tree follows the cycle");
                }
            }
        }
        // Whatever is broken, the rest of the package and the store still serve.
        assert_eq!(
            fs::read_to_string(store.join(format!("{id}/etc/{name}.conf"))).unwrap(),
            format!("{name} conf\n"),
            "{id}"
        );
        assert_eq!(
            fs::read_to_string(store.join("bin/fine")).unwrap(),
            "fine\n"
        );
        assert!(store.alive(), "{id} killed the store:\n{}", store.log());
    }

    // No broken name reached the exchange directories, and no link leaves the mount.
    for name in names(&store.join("bin")) {
        assert!(
            !name.contains('\0') && name != ".." && name.len() <= 255,
            "{name:?}"
        );
    }
    assert!(!names(&store.join("bin")).contains(&"twinB".to_owned()));
    assert!(exchange_links_stay_inside(&store, true) > harms.len());
    // The questions that open every image do not fail because some are broken.
    device.ok(&["info", "--conflicts"]);
    device.ok(&["list"]);
    assert!(store.alive(), "{}", store.log());
}

#[test]
fn store_exchange_links_never_point_outside_the_mount() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-escape");
    let repo = Repo::new(&temp, "repo");
    let tree = temp.join("escape-tree");
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::create_dir_all(tree.join("share/doc")).unwrap();
    fs::write(tree.join("bin/tool"), b"tool\n").unwrap();
    symlink("/etc/passwd", tree.join("bin/passwd")).unwrap();
    symlink("../../..", tree.join("bin/up")).unwrap();
    symlink("/", tree.join("bin/root")).unwrap();
    symlink("/etc", tree.join("share/etc")).unwrap();
    symlink(
        "../../../../../../../etc/shadow",
        tree.join("share/doc/shadow"),
    )
    .unwrap();
    // An exchange directory that is itself a symlink out of the image.
    symlink("/lib", tree.join("lib")).unwrap();
    symlink("/usr/sbin", tree.join("sbin")).unwrap();
    pack(
        &tree,
        &repo.arch_dir().join("escape-1.0-r0.squashfs"),
        "escape",
        "1.0-r0",
        &[],
    );
    repo.simple("plain", "1.0-r0", &[]);
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    device.ok(&["add", "escape", "plain"]);
    let store = Mounted::start(&device, &temp.join("mnt"), &[]);

    // The package's own links are shown as they are, never followed by the store.
    let package = store.join("escape-1.0-r0");
    assert_eq!(
        fs::read_link(package.join("bin/passwd")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(package.join("lib")).unwrap(),
        Path::new("/lib")
    );
    // Symlinked exchange directories of a package are not merged: the host's /lib and
    // /usr/sbin never show up in the store.
    assert_eq!(names(&store.join("lib")), Vec::<String>::new());
    assert_eq!(names(&store.join("sbin")), Vec::<String>::new());
    assert_eq!(
        names(&store.join("bin")),
        ["passwd", "plain", "root", "tool", "up"]
    );
    // Every exchange link points one hop into a package directory of the mount.
    assert_eq!(exchange_links_stay_inside(&store, false), 7);
    assert_eq!(
        fs::read_link(store.join("bin/up")).unwrap(),
        Path::new("../escape-1.0-r0/bin/up")
    );
    assert_eq!(
        fs::read_link(store.join("share/doc/shadow")).unwrap(),
        Path::new("../../escape-1.0-r0/share/doc/shadow")
    );
    assert_eq!(
        fs::read_to_string(store.join("bin/tool")).unwrap(),
        "tool\n"
    );
}

#[test]
fn store_killed_answers_enotconn_and_mounts_again() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-killed");
    let repo = Repo::new(&temp, "repo");
    repo.simple("a", "1.0-r0", &[]);
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    device.ok(&["add", "a"]);
    let first = Mounted::start(&device, &temp.join("mnt"), &[]);
    assert_eq!(
        fs::read_to_string(first.join("bin/a")).unwrap(),
        "#!/bin/sh\necho a-1.0-r0\n"
    );
    // A file kept open across the kill, as a running program's would be.
    let open = fs::File::open(first.join("a-1.0-r0/bin/a")).unwrap();

    let status = Command::new("kill")
        .args(["-9", &first.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!first.alive(), "kill -9 did not stop the store");

    // Nothing hangs, and whatever needs the daemon answers ENOTCONN at once: listings
    // and files never read, names never looked up. What the kernel cached while the
    // daemon lived (attributes, the data of a file read before) may still be served.
    let started = Instant::now();
    let limit = Duration::from_secs(5);
    for dir in ["", "bin", "a-1.0-r0", "a-1.0-r0/.pkg"] {
        let path = first.join(dir);
        assert_eq!(
            errno(fs::read_dir(&path)),
            Some(ENOTCONN),
            "{}",
            path.display()
        );
    }
    for never_seen in ["a-1.0-r0/.pkg/meta", "a-1.0-r0/etc", "nosuch", "bin/nosuch"] {
        let path = first.join(never_seen);
        assert_eq!(
            errno(read_within(&path, limit)),
            Some(ENOTCONN),
            "{}",
            path.display()
        );
        assert_eq!(
            errno(fs::symlink_metadata(&path)),
            Some(ENOTCONN),
            "{}",
            path.display()
        );
    }
    for read_before in ["bin/a", "a-1.0-r0/bin/a"] {
        let path = first.join(read_before);
        match read_within(&path, limit) {
            Ok(bytes) => assert_eq!(bytes, b"#!/bin/sh\necho a-1.0-r0\n"),
            Err(error) => assert_eq!(error.raw_os_error(), Some(ENOTCONN), "{}", path.display()),
        }
    }
    // A file opened before the kill reads what the page cache still holds, or fails.
    let mut buffer = [0u8; 64];
    match std::os::unix::fs::FileExt::read_at(&open, &mut buffer, 0) {
        Ok(n) => assert_eq!(&buffer[..n], b"#!/bin/sh\necho a-1.0-r0\n"),
        Err(error) => assert_eq!(error.raw_os_error(), Some(ENOTCONN)),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Switching generations does not hang on the dead daemon's socket either.
    device.ok(&["del", "a"]);
    device.ok(&["add", "a"]);

    // Mounting again detaches the dead mount first.
    let second = Mounted::start(&device, &temp.join("mnt"), &[]);
    assert!(
        second.log().contains("detached the dead store"),
        "{}",
        second.log()
    );
    assert_eq!(
        fs::read_to_string(second.join("bin/a")).unwrap(),
        "#!/bin/sh\necho a-1.0-r0\n"
    );
    assert_eq!(
        fs::read_to_string(second.join("a-1.0-r0/bin/a")).unwrap(),
        "#!/bin/sh\necho a-1.0-r0\n"
    );
    drop(open);
    drop(second);
    // The first guard's unmount finds nothing left to do.
    drop(first);
    assert_eq!(
        errno(fs::read_dir(temp.join("mnt")).map(|d| d.count())),
        None
    );
}
