//! What packages say about each other, end to end: a repository built with `pkg pack`
//! and `pkg repo index` holding providers with priorities, a conflict that only
//! backtracking resolves, one that nothing resolves, a soname provide, an install_if
//! pair, and a tagged repository whose pinned package an upgrade leaves alone; all
//! installed over HTTP with the real `pkg`. Also `repo index` on a repository root,
//! `search` by description, and local images whatever their extension.

use std::process::Command;

use amber_testkit::http::Server;
use amber_tests::fixture::{future, Device, Repo};
use amber_tests::{pkg_binary, run, TempDir};

/// The main repository: every kind of relation, described.
fn main_repo(temp: &TempDir) -> Repo {
    let repo = Repo::new(temp, "main");
    // Two providers of wpad; the one with the priority wins.
    repo.simple_with("wpad-basic", "1.0-r0", &["--provides", "wpad"]);
    repo.simple_with(
        "wpad-openssl",
        "1.0-r0",
        &["--provides", "wpad", "--provider-priority", "10"],
    );
    repo.simple_with("hostapd-utils", "1.0-r0", &["--dep", "wpad"]);
    // The newest app needs a helper that conflicts with legacy: with legacy requested,
    // only the older app fits.
    repo.simple_with("app", "1.0-r0", &[]);
    repo.simple_with("app", "2.0-r0", &["--dep", "helper"]);
    repo.simple_with("helper", "1.0-r0", &["--dep", "!legacy"]);
    repo.simple_with("legacy", "1.0-r0", &[]);
    // A conflict nothing resolves.
    repo.simple_with(
        "dnsmasq",
        "2.90-r0",
        &["--description", "DNS and DHCP server"],
    );
    repo.simple_with(
        "dnsmasq-full",
        "2.90-r0",
        &[
            "--dep",
            "!dnsmasq",
            "--description",
            "dnsmasq with every feature",
        ],
    );
    repo.simple_with("luci-app-x", "1.0-r0", &["--dep", "dnsmasq"]);
    // A soname provide and a versioned dependency on it.
    repo.simple_with("zlib", "1.3.1-r0", &["--provides", "so:libz.so.1=1.3.1"]);
    repo.simple_with("curl", "8.5.0-r0", &["--dep", "so:libz.so.1>=1.2"]);
    // An install_if pair: curl's documentation comes once curl and man-pages are in.
    repo.simple_with("man-pages", "6.0-r0", &[]);
    repo.simple_with(
        "curl-doc",
        "8.5.0-r0",
        &["--install-if", "curl", "--install-if", "man-pages"],
    );
    // The untagged vim, older than edge's.
    repo.simple_with("vim", "9.0-r0", &[]);
    repo.index(1, future());
    repo
}

/// The `edge` repository: a newer vim, and a package only it has.
fn edge_repo(temp: &TempDir) -> Repo {
    let repo = Repo::new(temp, "edge");
    repo.simple_with("vim", "9.1-r0", &[]);
    repo.simple_with("edge-only", "1.0-r0", &[]);
    repo.index(1, future());
    repo
}

/// The ids installed now, one line each, sorted.
fn installed(device: &Device) -> String {
    device.installed().join("\n")
}

/// The world of the current generation, as its file records it.
fn world(device: &Device) -> Vec<String> {
    let number = device.current().expect("a generation");
    let text =
        std::fs::read_to_string(device.root.join(format!("state/generations/{number}"))).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("world "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn relations_over_http() {
    let temp = TempDir::new("pkg-relations");
    let main = main_repo(&temp);
    let edge = edge_repo(&temp);
    let main_server = Server::start(&main.dir);
    let edge_server = Server::start(&edge.dir);
    let device = Device::new(&temp, "device");
    device.trust(&main, &main_server.url());
    device.ok(&["key", "add", edge.public_key.to_str().unwrap()]);
    device.ok(&["repo", "add", &edge_server.url(), "--tag", "edge"]);
    assert_eq!(
        device.ok(&["repo", "list"]),
        format!("{}\n@edge {}\n", main_server.url(), edge_server.url())
    );
    device.ok(&["update"]);

    // Two providers: the higher priority is chosen.
    device.ok(&["add", "hostapd-utils"]);
    assert_eq!(
        installed(&device),
        "hostapd-utils-1.0-r0\nwpad-openssl-1.0-r0"
    );
    // Asked for by name, the other provider replaces it.
    device.ok(&["add", "wpad-basic"]);
    assert_eq!(
        installed(&device),
        "hostapd-utils-1.0-r0\nwpad-basic-1.0-r0"
    );
    device.ok(&["del", "wpad-basic", "hostapd-utils"]);

    // A conflict resolved by backtracking: app-2 needs helper, which conflicts with
    // legacy, so app-1 it is.
    device.ok(&["add", "legacy", "app"]);
    assert_eq!(installed(&device), "app-1.0-r0\nlegacy-1.0-r0");
    // Without legacy, the newest app comes back on upgrade.
    device.ok(&["del", "legacy"]);
    device.ok(&["upgrade"]);
    assert_eq!(installed(&device), "app-2.0-r0\nhelper-1.0-r0");
    device.ok(&["del", "app"]);

    // A conflict nothing resolves: one line that names the chain, nothing changed.
    let before = device.snapshot();
    let line = device.fails(&["add", "dnsmasq-full", "luci-app-x"]);
    assert_eq!(
        line,
        "pkg: dnsmasq-full-2.90-r0 conflicts with dnsmasq-2.90-r0, which luci-app-x-1.0-r0 needs"
    );
    assert!(before.diff(&device.snapshot()).is_empty());
    // A conflict in the world: `!dnsmasq` keeps it out, and says so.
    let line = device.fails(&["add", "!dnsmasq", "luci-app-x"]);
    assert_eq!(
        line,
        "pkg: luci-app-x-1.0-r0 needs dnsmasq, but !dnsmasq was requested"
    );

    // A soname provide satisfies a versioned dependency on it.
    device.ok(&["add", "curl"]);
    assert_eq!(installed(&device), "curl-8.5.0-r0\nzlib-1.3.1-r0");
    assert!(device
        .ok(&["info", "zlib"])
        .contains("  provides: so:libz.so.1=1.3.1\n"));

    // install_if: added once both of its names are in, removed when one goes.
    let added = device.ok(&["add", "man-pages"]);
    assert!(added.contains("+ curl-doc-8.5.0-r0\n"), "{added}");
    assert_eq!(
        installed(&device),
        "curl-8.5.0-r0\ncurl-doc-8.5.0-r0\nman-pages-6.0-r0\nzlib-1.3.1-r0"
    );
    assert!(device
        .ok(&["list"])
        .contains("curl-doc-8.5.0-r0 (dependency)\n"));
    let removed = device.ok(&["del", "man-pages"]);
    assert!(removed.contains("- curl-doc-8.5.0-r0\n"), "{removed}");
    assert_eq!(installed(&device), "curl-8.5.0-r0\nzlib-1.3.1-r0");
    device.ok(&["del", "curl"]);

    // A tagged repository: its packages only when asked for with its tag.
    device.ok(&["add", "vim"]);
    assert_eq!(installed(&device), "vim-9.0-r0");
    let line = device.fails(&["add", "edge-only"]);
    assert_eq!(
        line,
        "pkg: edge-only is only in repositories tagged @edge (ask for edge-only@edge; requested)"
    );
    device.ok(&["add", "vim@edge", "edge-only@edge"]);
    assert_eq!(installed(&device), "edge-only-1.0-r0\nvim-9.1-r0");
    assert_eq!(world(&device), ["edge-only@edge", "vim@edge"]);
    assert!(device
        .ok(&["info", "vim"])
        .contains("  installed: 9.1-r0 (pinned to @edge)\n"));
    let line = device.fails_usage(&["add", "vim@Edge"]);
    assert!(
        line.starts_with("pkg: vim@Edge: dependency has an invalid tag"),
        "{line}"
    );
    let line = device.fails(&["add", "vim@testing"]);
    assert_eq!(line, "pkg: vim@testing: no repository is tagged @testing");

    // The main repository gets a newer vim; the pinned one stays through an upgrade.
    main.simple_with("vim", "9.2-r0", &[]);
    main.index(2, future());
    device.ok(&["update"]);
    device.ok(&["upgrade"]);
    assert_eq!(installed(&device), "edge-only-1.0-r0\nvim-9.1-r0");
    // Unpinned (asked for without the tag), the newest untagged one wins the upgrade.
    device.ok(&["add", "vim"]);
    device.ok(&["upgrade"]);
    assert_eq!(installed(&device), "edge-only-1.0-r0\nvim-9.2-r0");
    assert!(device.problems().is_empty(), "{:?}", device.problems());
}

#[test]
fn search_matches_and_shows_descriptions() {
    let temp = TempDir::new("pkg-search");
    let main = main_repo(&temp);
    let server = Server::start(&main.dir);
    let device = Device::new(&temp, "device");
    device.trust(&main, &server.url());
    device.ok(&["update"]);
    assert_eq!(
        device.ok(&["search", "dhcp"]),
        "dnsmasq-2.90-r0 - DNS and DHCP server\n"
    );
    assert_eq!(
        device.ok(&["search", "dnsmasq"]),
        "dnsmasq-2.90-r0 - DNS and DHCP server\n\
         dnsmasq-full-2.90-r0 - dnsmasq with every feature\n"
    );
    // Provides match too: so:libz.so.1 is zlib's.
    assert_eq!(device.ok(&["search", "libz"]), "zlib-1.3.1-r0\n");
}

#[test]
fn local_images_whatever_their_name() {
    let temp = TempDir::new("pkg-local-names");
    let repo = Repo::new(&temp, "repo");
    let image = repo.simple("hello", "1.0-r0", &[]);
    repo.index(1, future());
    let server = Server::start(&repo.dir);
    let device = Device::new(&temp, "device");
    device.trust(&repo, &server.url());
    device.ok(&["update"]);
    // Another extension, still the indexed bytes: a local image because it holds a /.
    let renamed = temp.join("hello.sqfs");
    std::fs::copy(&image, &renamed).unwrap();
    device.ok(&["add", renamed.to_str().unwrap()]);
    assert_eq!(device.installed(), ["hello-1.0-r0"]);
    // A name that is neither: one line saying what each must look like.
    let line = device.fails_usage(&["add", "Hello.sqfs"]);
    assert_eq!(
        line,
        "pkg: Hello.sqfs: dependency has an invalid package name; a package is \
         NAME[@TAG][OP VERSION] (busybox, busybox>=1.36, vim@edge, !dnsmasq), a local image \
         an existing file or a path with a / (./busybox.squashfs)"
    );
    // An existing file without a / is a local image too.
    let output = device
        .command(&["add", "hello.sqfs"])
        .current_dir(temp.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn repo_index_takes_a_root_and_refuses_nothing() {
    let temp = TempDir::new("pkg-repo-index-root");
    let repo = Repo::new(&temp, "repo");
    repo.simple("hello", "1.0-r0", &[]);
    let aarch64 = repo.dir.join("aarch64");
    std::fs::create_dir_all(&aarch64).unwrap();
    let index = |dir: &std::path::Path| {
        run(Command::new(pkg_binary()).args([
            "repo",
            "index",
            dir.to_str().unwrap(),
            "--secret-key",
            repo.secret_key.to_str().unwrap(),
            "--serial",
            "5",
        ]))
    };
    // The root: every <arch>/ with images (aarch64/ has none, so it gets no index).
    let output = index(&repo.dir);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{}: 1 packages, 0 system releases, serial 5, expires ",
            repo.arch_dir().join("index").display()
        )),
        "{stdout}"
    );
    assert!(repo.arch_dir().join("index.minisig").is_file());
    assert!(!aarch64.join("index").exists());
    // A directory without images, below it or in it: one clear line, nothing written.
    for empty in [aarch64.clone(), temp.join("nothing")] {
        std::fs::create_dir_all(&empty).unwrap();
        let output = index(&empty);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!(
                "pkg: {}: no images here, nor in an <arch>/ directory below it (expected \
                 <repo>/<arch>/<name>-<version>.squashfs)\n",
                empty.display()
            )
        );
        assert!(!empty.join("index").exists());
    }
    // The arch directory itself still works, as before.
    let output = index(&repo.arch_dir());
    assert!(output.status.success(), "{output:?}");
}
