//! The mounted store's reload after `pkg add`, `del`, `upgrade` and `rollback`: it
//! opens only the images new to the generation, updates the exchange directories it
//! showed before, and shows exactly what a store mounted afresh on the same state
//! shows, conflicts and all.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use amber_tests::fixture::{future, Device, Repo};
use amber_tests::TempDir;

use crate::store::{can_mount, device_for, Mounted};

/// Everything the exchange directories show: `dir/` for each directory and
/// `path -> target` for each link, sorted.
fn exchange_view(store: &Mounted) -> Vec<String> {
    fn walk(dir: &Path, top: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(top).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push(format!("{relative} -> {}", target.display()));
            } else {
                out.push(format!("{relative}/"));
                walk(&path, top, out);
            }
        }
    }
    let mut view = Vec::new();
    for dir in ["bin", "sbin", "lib", "share", "etc", "include", "svc"] {
        walk(&store.join(dir), &store.dir, &mut view);
    }
    view.sort();
    view
}

/// The view of the mounted store, which must be the view of a store mounted afresh on
/// a copy of the same state (a copy, so the fresh daemon does not take over the
/// control socket that `pkg` notifies).
fn check_against_fresh(
    temp: &TempDir,
    device: &Device,
    store: &Mounted,
    step: &str,
) -> Vec<String> {
    let shown = exchange_view(store);
    let copy = device.copy_as(temp, &format!("fresh-{step}"));
    let fresh = Mounted::start(&copy, &temp.join(format!("fresh-mnt-{step}")), &[]);
    let expected = exchange_view(&fresh);
    assert!(
        shown == expected,
        "after {step}, the reloaded store differs from a fresh mount:\n\
         only reloaded: {:?}\nonly fresh: {:?}",
        shown
            .iter()
            .filter(|s| !expected.contains(s))
            .collect::<Vec<_>>(),
        expected
            .iter()
            .filter(|s| !shown.contains(s))
            .collect::<Vec<_>>()
    );
    assert!(store.alive(), "{}", store.log());
    shown
}

/// Which image files of a store are opened, through inotify on `images/`.
struct ImageOpens {
    fd: i32,
}

impl ImageOpens {
    fn watch(images: &Path) -> ImageOpens {
        let path = CString::new(images.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain system calls; `path` is a valid C string for the call.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: as above.
        let watch = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_OPEN) };
        assert!(
            watch >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        ImageOpens { fd }
    }

    /// The image files opened since the last call, sorted, without repeats.
    fn take(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `buffer` is valid for writes of its length.
            let n = unsafe { libc::read(self.fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if n <= 0 {
                break;
            }
            let mut at = 0;
            while at + 16 <= n as usize {
                // struct inotify_event: wd, mask, cookie, len, then len bytes of name.
                let length = u32::from_ne_bytes(buffer[at + 12..at + 16].try_into().unwrap());
                let name = &buffer[at + 16..at + 16 + length as usize];
                let name = String::from_utf8_lossy(name)
                    .trim_end_matches('\0')
                    .to_owned();
                // Downloads land in temporary files first (`.tmp-...`).
                if name.ends_with(".squashfs") && !name.starts_with('.') {
                    names.push(name);
                }
                at += 16 + length as usize;
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

impl Drop for ImageOpens {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// A package like many on a router: a program, a library directory, docs, a man page
/// in a directory every package shares, and an empty directory of its own.
fn plain(repo: &Repo, name: &str, version: &str) {
    let program = format!("#!/bin/sh\necho {name}-{version}\n");
    let readme = format!("{name} {version}\n");
    let man = format!(".TH {name} 1\n");
    repo.package(
        name,
        version,
        &[],
        &[
            (&format!("bin/{name}"), program.as_bytes()),
            (&format!("lib/{name}/lib{name}.so"), b"\x7fELF"),
            (&format!("share/doc/{name}/README"), readme.as_bytes()),
            (&format!("share/man/man1/{name}.1"), man.as_bytes()),
        ],
    );
}

#[test]
fn store_reload_updates_the_exchange_dirs_as_a_fresh_mount_shows_them() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-reload");
    let repo = Repo::new(&temp, "repo");
    for i in 0..30 {
        plain(&repo, &format!("p{i:02}"), "1.0-r0");
    }
    // Two shells that both want bin/sh; a tool pulled in as a dependency that an
    // explicitly requested one overrides; a package whose share/man is a file.
    repo.package("ash", "1.0-r0", &[], &[("bin/sh", b"ash\n")]);
    repo.package(
        "dash",
        "2.0-r0",
        &[],
        &[("bin/sh", b"dash\n"), ("share/doc/dash/README", b"dash\n")],
    );
    repo.package("tool", "1.0-r0", &[], &[("bin/tool", b"tool 1\n")]);
    repo.package("user", "1.0-r0", &["tool"], &[("bin/user", b"user\n")]);
    repo.package("tool-alt", "1.0-r0", &[], &[("bin/tool", b"tool alt\n")]);
    repo.package("odd", "9.0-r0", &[], &[("share/man", b"not a directory\n")]);
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    // Two open images at most: a reload that reopened the old images would show in
    // the opens watched below, not be served from images left open.
    let store = Mounted::start(&device, &temp.join("mnt"), &["--max-open", "2"]);
    let opens = ImageOpens::watch(&device.root.join("images"));

    // One package at a time: each reload opens only the new image.
    for i in 0..20 {
        let name = format!("p{i:02}");
        opens.take();
        device.ok(&["add", &name]);
        let opened = opens.take();
        assert_eq!(
            opened,
            [format!("{name}-1.0-r0.squashfs")],
            "adding {name} opened these images"
        );
    }
    check_against_fresh(&temp, &device, &store, "20-adds");

    // New conflicts, among the new packages and with an installed dependency.
    device.ok(&["add", "ash", "dash", "user"]);
    device.ok(&["add", "tool-alt"]);
    let view = check_against_fresh(&temp, &device, &store, "conflicts");
    // Both asked for, neither with a priority: the name decides, not the version.
    assert!(view.contains(&"bin/sh -> ../ash-1.0-r0/bin/sh".to_owned()));
    assert!(view.contains(&"bin/tool -> ../tool-alt-1.0-r0/bin/tool".to_owned()));

    // The user's choice: a generation that changes only the preferences is merged
    // afresh (from the recorded listings), never updated.
    device.ok(&["prefer", "dash", "/bin/sh"]);
    let view = check_against_fresh(&temp, &device, &store, "prefer");
    assert!(view.contains(&"bin/sh -> ../dash-2.0-r0/bin/sh".to_owned()));

    // More packages beside the conflicts, which they do not touch.
    for i in 20..30 {
        let name = format!("p{i:02}");
        opens.take();
        device.ok(&["add", &name]);
        assert_eq!(opens.take(), [format!("{name}-1.0-r0.squashfs")]);
    }
    check_against_fresh(&temp, &device, &store, "30-adds");

    // A del removes the package's links and its own directories, and leaves the
    // directories others share; it opens no image.
    opens.take();
    device.ok(&["del", "p03", "p07"]);
    assert_eq!(opens.take(), Vec::<String>::new());
    let view = check_against_fresh(&temp, &device, &store, "del");
    for gone in [
        "bin/p03",
        "lib/p03/",
        "share/doc/p07/",
        "share/man/man1/p07.1",
    ] {
        assert!(
            !view.iter().any(|s| s.starts_with(gone)),
            "{gone} still shown"
        );
    }
    assert!(view.contains(&"share/man/man1/".to_owned()));

    // The dependency asked for by name now: it comes first, and takes bin/tool back.
    device.ok(&["add", "tool"]);
    let view = check_against_fresh(&temp, &device, &store, "explicit");
    assert!(view.contains(&"bin/tool -> ../tool-1.0-r0/bin/tool".to_owned()));

    // A file where every package has a directory, added and removed again.
    device.ok(&["add", "odd"]);
    let view = check_against_fresh(&temp, &device, &store, "odd");
    assert!(view.contains(&"share/man -> ../odd-9.0-r0/share/man".to_owned()));
    device.ok(&["del", "odd"]);
    let view = check_against_fresh(&temp, &device, &store, "odd-gone");
    assert!(view
        .contains(&"share/man/man1/p00.1 -> ../../../p00-1.0-r0/share/man/man1/p00.1".to_owned()));

    // An upgrade swaps one image for another; rollback brings the old one back.
    repo.package(
        "p10",
        "2.0-r0",
        &[],
        &[("bin/p10", b"p10 2\n"), ("sbin/p10d", b"p10 daemon\n")],
    );
    repo.index(2, future());
    device.ok(&["update"]);
    device.ok(&["upgrade"]);
    let view = check_against_fresh(&temp, &device, &store, "upgrade");
    assert!(view.contains(&"sbin/p10d -> ../p10-2.0-r0/sbin/p10d".to_owned()));
    assert!(!view.iter().any(|s| s.starts_with("share/doc/p10/")));
    device.ok(&["rollback"]);
    let view = check_against_fresh(&temp, &device, &store, "rollback");
    assert!(view.contains(&"share/doc/p10/".to_owned()));

    // The shell that won bin/sh goes, and its choice with it: the other one has it now.
    device.ok(&["del", "dash"]);
    let view = check_against_fresh(&temp, &device, &store, "shell");
    assert!(view.contains(&"bin/sh -> ../ash-1.0-r0/bin/sh".to_owned()));
}
