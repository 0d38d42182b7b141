//! The ordinary life of a store, through the real `pkg` binary and a real HTTP server:
//! update, add, del, list, info, search, which, upgrade, rollback, gc, verify, `--json`,
//! usage errors, local images, `file://` repositories and mirrors.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use amber_testkit::http::{dead_url, Server};
use amber_tests::fixture::{future, Device, Repo, Scene, ARCH};
use amber_tests::TempDir;

use crate::json;

#[test]
fn store_life_add_del_upgrade_rollback_gc_verify() {
    let scene = Scene::new(
        "store-life",
        &[
            ("lib", "1.0-r0", &[]),
            ("a", "1.0-r0", &["lib"]),
            ("b", "1.0-r0", &[]),
            ("b", "2.0-r0", &[]),
            ("c", "1.0-r0", &[]),
        ],
        1,
    );
    let (device, repo, url) = (&scene.device, &scene.repo, scene.server.url());
    assert_eq!(
        device.ok(&["update"]),
        format!("{url}: serial 1, 5 packages (unchanged)\n")
    );
    assert_eq!(device.ok(&["list"]), "");

    // A name pulls in its dependencies.
    assert_eq!(
        device.ok(&["add", "a"]),
        "+ a-1.0-r0\n+ lib-1.0-r0\ngeneration 1: 2 packages, 8.0 KiB fetched\n"
    );
    assert_eq!(device.ok(&["list"]), "a-1.0-r0\nlib-1.0-r0 (dependency)\n");
    assert_eq!(device.ok(&["add", "a"]), "a-1.0-r0 is already installed\n");
    assert_eq!(device.current(), Some(1));

    // A constraint picks among versions.
    let out = device.ok(&["add", "b>=2.0-r0", "c"]);
    assert_eq!(
        out,
        "+ b-2.0-r0\n+ c-1.0-r0\ngeneration 2: 4 packages, 8.0 KiB fetched\n"
    );
    assert_eq!(
        device.installed(),
        ["a-1.0-r0", "b-2.0-r0", "c-1.0-r0", "lib-1.0-r0"]
    );
    let line = device.fails(&["add", "b>=3"]);
    assert!(line.starts_with("pkg: ") && line.contains('b'), "{line}");
    assert_eq!(device.current(), Some(2));

    // A dependency is not removed by name while something needs it.
    assert_eq!(
        device.fails(&["del", "lib"]),
        "pkg: lib: not requested by name; needed by a-1.0-r0"
    );
    assert_eq!(device.fails(&["del", "zzz"]), "pkg: zzz: not installed");

    // Questions.
    let info = device.ok(&["info", "a"]);
    assert!(info.starts_with("a-1.0-r0\n"), "{info}");
    assert!(
        info.contains("  installed: 1.0-r0\n  depends: lib\n"),
        "{info}"
    );
    let info = device.ok(&["info", "lib"]);
    assert!(
        info.contains("  installed: 1.0-r0 (dependency)\n"),
        "{info}"
    );
    let info = device.ok(&["info", "b"]);
    assert!(info.contains("  available: 1.0-r0, 2.0-r0\n"), "{info}");
    assert_eq!(
        device.fails(&["info", "nosuch"]),
        "pkg: nosuch: no such package installed or available"
    );
    // `lib` contains a `b` too.
    assert_eq!(
        device.ok(&["search", "b"]),
        "b-2.0-r0 (installed: 2.0-r0)\nlib-1.0-r0 (installed: 1.0-r0)\n"
    );
    assert_eq!(device.ok(&["search", "zzz"]), "");
    assert_eq!(device.ok(&["which", "/bin/a"]), "a-1.0-r0\n");
    assert_eq!(device.ok(&["which", "/ro/bin/c"]), "c-1.0-r0\n");
    assert_eq!(device.ok(&["which", "/ro/b-2.0-r0/bin/b"]), "b-2.0-r0\n");
    assert_eq!(
        device.fails(&["which", "/ro/b-2.0-r0/bin/a"]),
        "pkg: /ro/b-2.0-r0/bin/a: no installed package has it"
    );
    assert_eq!(
        device.fails(&["which", "/bin/nothing"]),
        "pkg: /bin/nothing: no installed package has it"
    );

    // Removing what was asked for takes the dependencies nothing else needs.
    assert_eq!(
        device.ok(&["del", "a", "c"]),
        "- a-1.0-r0\n- c-1.0-r0\n- lib-1.0-r0\ngeneration 3: 1 packages, 0 B fetched\n"
    );
    assert_eq!(device.ok(&["list"]), "b-2.0-r0\n");
    // The images stay until gc: adding `a` again fetches nothing.
    assert_eq!(
        device.ok(&["add", "a"]),
        "+ a-1.0-r0\n+ lib-1.0-r0\ngeneration 4: 3 packages, 0 B fetched\n"
    );

    // A newer index brings newer versions.
    repo.simple("lib", "1.1-r0", &[]);
    repo.simple("a", "1.1-r0", &["lib>=1.1"]);
    repo.simple("b", "2.1-r0", &[]);
    repo.index(2, future());
    assert_eq!(
        device.ok(&["update"]),
        format!("{url}: serial 2, 8 packages\n")
    );
    assert_eq!(
        device.ok(&["upgrade"]),
        "+ a-1.1-r0\n+ b-2.1-r0\n+ lib-1.1-r0\n- a-1.0-r0\n- b-2.0-r0\n- lib-1.0-r0\n\
         generation 5: 3 packages, 12.0 KiB fetched\n"
    );
    assert_eq!(device.installed(), ["a-1.1-r0", "b-2.1-r0", "lib-1.1-r0"]);
    assert_eq!(device.ok(&["upgrade"]), "nothing to do\n");

    // Rollback returns to the generation the upgrade was made from.
    assert_eq!(
        device.ok(&["rollback"]),
        "generation 4 is current again (was 5)\n"
    );
    assert_eq!(device.installed(), ["a-1.0-r0", "b-2.0-r0", "lib-1.0-r0"]);
    assert_eq!(device.ok(&["which", "/bin/a"]), "a-1.0-r0\n");

    // gc keeps the two newest generations (4, current, and 5) and their images; c's
    // image was only used by generation 2.
    assert!(device
        .image_names()
        .contains(&"c-1.0-r0.squashfs".to_owned()));
    assert_eq!(
        device.ok(&["gc", "--keep", "2"]),
        "removed 3 generations and 1 images, freed 4.0 KiB\n"
    );
    assert_eq!(
        device.image_names(),
        [
            "a-1.0-r0.squashfs",
            "a-1.1-r0.squashfs",
            "b-2.0-r0.squashfs",
            "b-2.1-r0.squashfs",
            "lib-1.0-r0.squashfs",
            "lib-1.1-r0.squashfs"
        ]
    );
    let mut generations: Vec<String> = std::fs::read_dir(device.root.join("state/generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    generations.sort();
    assert_eq!(generations, ["4", "5"]);
    let verified = device.ok(&["verify"]);
    assert!(verified.ends_with("6 images verified\n"), "{verified}");
    assert_eq!(device.installed(), ["a-1.0-r0", "b-2.0-r0", "lib-1.0-r0"]);
    let line = device.fails(&["rollback"]);
    assert!(
        line.starts_with("pkg: rollback: the previous generation is gone"),
        "{line}"
    );
    assert!(device.problems().is_empty(), "{:?}", device.problems());

    // One flipped byte of one image on disk: verify names it and exits 1.
    let image = device.root.join("images/b-2.1-r0.squashfs");
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&image, bytes).unwrap();
    let output = device.pkg(&["verify"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("b-2.1-r0: sha256 ") && l.contains(" instead of ")),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with(": ok")).count(),
        5,
        "{stdout}"
    );
    assert_eq!(stderr, "pkg: verify: 1 of 6 images are damaged\n");
}

#[test]
fn json_output_parses_for_list_add_verify_and_errors() {
    let scene = Scene::new(
        "json",
        &[("lib", "1.0-r0", &[]), ("a", "1.0-r0", &["lib"])],
        1,
    );
    let device = &scene.device;
    let parse = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = device.pkg(&all);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(
            stdout.lines().count(),
            1,
            "one JSON line expected: {stdout}"
        );
        let value = json::parse(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (output.status.code(), value)
    };

    let (code, list) = parse(&["list"]);
    assert_eq!(code, Some(0));
    assert!(list.get("ok").as_bool());
    assert_eq!(list.get("generation").as_u64(), 0);
    assert!(list.get("packages").as_array().is_empty());

    let (code, add) = parse(&["add", "a"]);
    assert_eq!(code, Some(0));
    assert!(add.get("ok").as_bool());
    assert!(add.get("changed").as_bool());
    assert_eq!(add.get("generation").as_u64(), 1);
    assert_eq!(add.get("added").strings(), ["a-1.0-r0", "lib-1.0-r0"]);
    assert!(add.get("removed").as_array().is_empty());
    assert_eq!(add.get("fetched_bytes").as_u64(), 8192);

    let (_, again) = parse(&["add", "a"]);
    assert!(!again.get("changed").as_bool());
    assert_eq!(again.get("already_installed").strings(), ["a-1.0-r0"]);

    let (_, list) = parse(&["list"]);
    let packages = list.get("packages").as_array();
    assert_eq!(packages.len(), 2);
    assert_eq!(packages[0].get("id").as_str(), "a-1.0-r0");
    assert_eq!(packages[0].get("deps").strings(), ["lib"]);
    assert!(packages[0].get("explicit").as_bool());
    assert_eq!(packages[1].get("name").as_str(), "lib");
    assert!(!packages[1].get("explicit").as_bool());
    let image = std::fs::read(scene.repo.image("a", "1.0-r0")).unwrap();
    assert_eq!(
        packages[0].get("sha256").as_str(),
        amber_core::hash::to_hex(&amber_core::hash::sha256(&image))
    );

    let (code, verify) = parse(&["verify"]);
    assert_eq!(code, Some(0));
    assert!(verify.get("ok").as_bool());
    assert_eq!(verify.get("checked").as_u64(), 2);

    let (_, which) = parse(&["which", "/bin/lib"]);
    assert_eq!(which.get("packages").strings(), ["lib-1.0-r0"]);

    let path = device.root.join("images/lib-1.0-r0.squashfs");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let (code, verify) = parse(&["verify"]);
    assert_eq!(code, Some(1));
    assert!(!verify.get("ok").as_bool());
    let bad = verify.get("bad").as_array();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].get("id").as_str(), "lib-1.0-r0");

    // A failing update still prints one document.
    scene.server.set(
        &scene.path("index.minisig"),
        amber_testkit::http::Behavior::Status(500),
    );
    let (code, update) = parse(&["update"]);
    assert_eq!(code, Some(1));
    assert!(!update.get("ok").as_bool());
    assert!(update.get("error").as_str().contains("HTTP 500"));
    assert!(update.get("repos").as_array().is_empty());

    // Failures are JSON too, with the same message as the error line.
    let output = device.pkg(&["--json", "add", "nosuch"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failure = json::parse(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(!failure.get("ok").as_bool());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr, format!("pkg: {}\n", failure.get("error").as_str()));
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let temp = TempDir::new("usage");
    let device = Device::new(&temp, "device");
    assert_eq!(
        device.fails_usage(&["frobnicate"]),
        "pkg: Unrecognized argument: frobnicate"
    );
    let line = device.fails_usage(&["info"]);
    assert!(line.contains("name"), "{line}");
    let line = device.fails_usage(&["which"]);
    assert!(line.contains("path"), "{line}");
    assert_eq!(
        device.fails_usage(&["add"]),
        "pkg: add: name at least one package"
    );
    assert_eq!(
        device.fails_usage(&["del"]),
        "pkg: del: name at least one package"
    );
    let line = device.fails_usage(&["repo", "add"]);
    assert!(line.contains("url"), "{line}");
    let line = device.fails_usage(&["key"]);
    assert!(line.contains("add") && line.contains("del"), "{line}");
    let line = device.fails_usage(&["gc", "--keep", "many"]);
    assert!(line.contains("--keep"), "{line}");
    assert_eq!(
        device.fails_usage(&["gc", "--keep", "0"]),
        "pkg: gc: --keep must be at least 1"
    );
    let line = device.fails_usage(&["add", "a>>1"]);
    assert!(line.starts_with("pkg: a>>1: "), "{line}");
    let line = device.fails_usage(&["repo", "add", "ftp://example.org/repo"]);
    assert!(line.starts_with("pkg: ftp://example.org/repo: "), "{line}");
    let line = device.fails_usage(&["key", "del", "not-hex"]);
    assert!(line.starts_with("pkg: not-hex: "), "{line}");
    // None of these touched the store.
    assert!(!device.root.exists());
    // Help is not an error.
    let output = device.pkg(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("update"));
}

#[test]
fn failures_are_one_line_naming_the_thing() {
    let temp = TempDir::new("one-line");
    let device = Device::new(&temp, "device");
    assert_eq!(
        device.fails(&["update"]),
        "pkg: no repositories: add one with `pkg repo add URL`"
    );
    let missing = temp.join("missing.pub");
    let line = device.fails(&["key", "add", missing.to_str().unwrap()]);
    assert!(
        line.starts_with(&format!("pkg: {}: ", missing.display())),
        "{line}"
    );
    let url = dead_url();
    device.ok(&["repo", "add", &url]);
    assert_eq!(
        device.fails(&["repo", "add", &format!("{url}/")]),
        format!("pkg: {url}: already a repository")
    );
    assert_eq!(
        device.fails(&["update"]),
        "pkg: no trusted keys: add one with `pkg key add FILE`"
    );
    let repo = Repo::new(&temp, "repo");
    device.ok(&["key", "add", repo.public_key.to_str().unwrap()]);
    let line = device.fails(&["update"]);
    assert!(
        line.starts_with(&format!("pkg: {url}: {url}/{ARCH}/index.minisig: ")),
        "{line}"
    );
    assert!(line.contains("cannot connect"), "{line}");
    assert_eq!(
        device.fails(&["add", "a"]),
        format!("pkg: {url}: no index yet, run pkg update")
    );
    assert_eq!(
        device.fails(&["rollback"]),
        "pkg: rollback: there is no previous generation"
    );
    assert_eq!(
        device.fails(&["key", "del", "1234"]),
        "pkg: key 1234: not trusted"
    );
    assert_eq!(
        device.fails(&["repo", "del", "http://127.0.0.1:1"]),
        "pkg: http://127.0.0.1:1: not a repository"
    );
}

#[test]
fn key_and_repo_lists() {
    let temp = TempDir::new("lists");
    let device = Device::new(&temp, "device");
    let repo = Repo::new(&temp, "repo");
    let id = repo.key_id();
    assert_eq!(
        device.ok(&["key", "add", repo.public_key.to_str().unwrap()]),
        format!("trusting key {id}\n")
    );
    assert_eq!(
        device.ok(&["key", "add", repo.public_key.to_str().unwrap()]),
        format!("key {id} is already trusted\n")
    );
    assert_eq!(device.ok(&["key", "list"]), format!("{id}\n"));
    device.ok(&[
        "repo",
        "add",
        "http://127.0.0.1:9/",
        "--mirror",
        "file:///mnt/usb",
    ]);
    device.ok(&["repo", "add", "/srv/repo"]);
    assert_eq!(
        device.ok(&["repo", "list"]),
        "http://127.0.0.1:9 file:///mnt/usb\n/srv/repo\n"
    );
    device.ok(&["repo", "del", "http://127.0.0.1:9"]);
    assert_eq!(device.ok(&["repo", "list"]), "/srv/repo\n");
    device.ok(&["key", "del", &id.to_lowercase()]);
    assert_eq!(device.ok(&["key", "list"]), "");
}

/// Pack a package that no index lists (a different file from the repository's `a`).
fn unlisted_image(temp: &TempDir) -> std::path::PathBuf {
    let tree = temp.join("unlisted-tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/u"), "unlisted\n").unwrap();
    let image = temp.join("usb/u-1.0-r0.squashfs");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    amber_tests::run_ok(Command::new(amber_tests::pkg_binary()).args([
        "pack",
        tree.to_str().unwrap(),
        "-o",
        image.to_str().unwrap(),
        "--name",
        "u",
        "--version",
        "1.0-r0",
        "--arch",
        ARCH,
    ]));
    image
}

#[test]
fn local_image_needs_a_trusted_index_or_allow_untrusted() {
    let scene = Scene::new("local", &[("a", "1.0-r0", &[])], 1);
    let device = &scene.device;
    // The image the index lists, copied to a USB stick: installed without the network.
    let usb = scene.temp.join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    std::fs::copy(
        scene.repo.image("a", "1.0-r0"),
        usb.join("a-1.0-r0.squashfs"),
    )
    .unwrap();
    let unlisted = unlisted_image(&scene.temp);
    drop(scene.server);
    let mut command = device.command(&["add", "./a-1.0-r0.squashfs"]);
    command.current_dir(&usb);
    let out = amber_tests::run_ok(&mut command);
    assert_eq!(out, "+ a-1.0-r0\ngeneration 1: 1 packages, 0 B fetched\n");
    assert_eq!(device.ok(&["list"]), "a-1.0-r0\n");

    // An image no index lists is refused, and nothing changes.
    let before = device.snapshot();
    let line = device.fails(&["add", unlisted.to_str().unwrap()]);
    let hash = amber_core::hash::to_hex(&amber_core::hash::sha256(
        &std::fs::read(&unlisted).unwrap(),
    ));
    assert_eq!(
        line,
        format!(
            "pkg: {}: no trusted index lists an image with sha256 {hash}; \
             use --allow-untrusted to install it anyway",
            unlisted.display()
        )
    );
    assert_eq!(device.snapshot(), before);

    // The same bytes with a byte changed are refused too, even with a listed name.
    let forged = usb.join("forged/a-1.0-r0.squashfs");
    std::fs::create_dir_all(forged.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(usb.join("a-1.0-r0.squashfs")).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&forged, bytes).unwrap();
    let line = device.fails(&["add", forged.to_str().unwrap()]);
    assert!(line.contains("no trusted index lists"), "{line}");
    assert_eq!(device.snapshot(), before);

    // --allow-untrusted takes the image's own word for what it is.
    let out = device.ok(&["add", "--allow-untrusted", unlisted.to_str().unwrap()]);
    assert_eq!(out, "+ u-1.0-r0\ngeneration 2: 2 packages, 0 B fetched\n");
    assert_eq!(device.installed(), ["a-1.0-r0", "u-1.0-r0"]);
    assert_eq!(device.ok(&["which", "/bin/u"]), "u-1.0-r0\n");
    assert!(device.ok(&["verify"]).ends_with("2 images verified\n"));
    assert!(device.temp_files().is_empty());
}

#[test]
fn local_image_with_allow_untrusted_on_a_store_without_repositories() {
    let temp = TempDir::new("local-bare");
    let image = unlisted_image(&temp);
    let device = Device::new(&temp, "device");
    let line = device.fails(&["add", image.to_str().unwrap()]);
    assert!(line.contains("no trusted index lists"), "{line}");
    device.ok(&["add", "--allow-untrusted", image.to_str().unwrap()]);
    assert_eq!(device.installed(), ["u-1.0-r0"]);
}

#[test]
fn repository_on_a_path_or_file_url() {
    let temp = TempDir::new("file-repo");
    let repo = Repo::new(&temp, "repo");
    repo.simple("lib", "1.0-r0", &[]);
    repo.simple("a", "1.0-r0", &["lib"]);
    repo.index(1, future());
    for (name, url) in [
        ("by-path", repo.dir.display().to_string()),
        ("by-url", format!("file://{}", repo.dir.display())),
    ] {
        let device = Device::new(&temp, name);
        device.trust(&repo, &url);
        assert_eq!(
            device.ok(&["update"]),
            format!("{url}: serial 1, 2 packages\n")
        );
        device.ok(&["add", "a"]);
        assert_eq!(device.installed(), ["a-1.0-r0", "lib-1.0-r0"]);
        assert!(device.ok(&["verify"]).ends_with("2 images verified\n"));
    }
    // A repository path with a bad image is refused the same way as over HTTP.
    let device = Device::new(&temp, "flipped");
    device.trust(&repo, &repo.dir.display().to_string());
    device.ok(&["update"]);
    let image = repo.image("lib", "1.0-r0");
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[300] ^= 1;
    std::fs::write(&image, bytes).unwrap();
    let before = device.snapshot();
    let line = device.fails(&["add", "a"]);
    assert!(
        line.contains("lib-1.0-r0") && line.contains("sha256 mismatch"),
        "{line}"
    );
    assert_eq!(device.snapshot().diff(&before), Vec::<String>::new());
}

#[test]
fn mirror_takes_over_when_the_first_url_is_down() {
    let temp = TempDir::new("mirrors");
    let repo = Repo::new(&temp, "repo");
    repo.simple("lib", "1.0-r0", &[]);
    repo.simple("a", "1.0-r0", &["lib"]);
    repo.simple("b", "1.0-r0", &[]);
    repo.index(1, future());
    let mirror = Server::start(&repo.dir);
    let down = dead_url();
    let device = Device::new(&temp, "device");
    device.ok(&["key", "add", repo.public_key.to_str().unwrap()]);
    assert_eq!(
        device.ok(&["repo", "add", &down, "--mirror", &mirror.url()]),
        format!("added {down} {}; run pkg update\n", mirror.url())
    );
    assert_eq!(
        device.ok(&["repo", "list"]),
        format!("{down} {}\n", mirror.url())
    );
    // The serial is remembered under the repository's first URL.
    assert_eq!(
        device.ok(&["update"]),
        format!("{down}: serial 1, 3 packages\n")
    );
    device.ok(&["add", "a", "b"]);
    assert_eq!(device.installed(), ["a-1.0-r0", "b-1.0-r0", "lib-1.0-r0"]);
    let fetched: Vec<String> = mirror
        .paths()
        .into_iter()
        .filter(|p| p.ends_with(".squashfs"))
        .collect();
    assert_eq!(fetched.len(), 3, "{fetched:?}");

    // A mirror that answers 500 for an image is passed over for the next one.
    let second = Server::start(&repo.dir);
    let device = Device::new(&temp, "device2");
    device.ok(&["key", "add", repo.public_key.to_str().unwrap()]);
    device.ok(&["repo", "add", &mirror.url(), "--mirror", &second.url()]);
    device.ok(&["update"]);
    mirror.set(
        &format!("/{ARCH}/b-1.0-r0.squashfs"),
        amber_testkit::http::Behavior::Status(500),
    );
    device.ok(&["add", "b"]);
    assert_eq!(device.installed(), ["b-1.0-r0"]);
    assert_eq!(second.paths(), [format!("/{ARCH}/b-1.0-r0.squashfs")]);
    // With every mirror failing, the error names each.
    second.set(
        &format!("/{ARCH}/lib-1.0-r0.squashfs"),
        amber_testkit::http::Behavior::Status(404),
    );
    mirror.set(
        &format!("/{ARCH}/lib-1.0-r0.squashfs"),
        amber_testkit::http::Behavior::Status(500),
    );
    let before = device.snapshot();
    let line = device.fails(&["add", "lib"]);
    assert!(
        line.contains("HTTP 500") && line.contains("HTTP 404"),
        "{line}"
    );
    assert_eq!(device.snapshot(), before);
    assert!(device.temp_files().is_empty());
}

#[test]
fn rebuilt_version_is_not_taken_for_the_image_already_in_the_store() {
    let scene = Scene::new("rebuilt", &[("a", "1.0-r0", &[])], 1);
    let (device, repo) = (&scene.device, &scene.repo);
    device.ok(&["add", "a"]);
    device.ok(&["del", "a"]);
    // The repository rebuilds a-1.0-r0 with other contents: same id, other bytes.
    repo.package("a", "1.0-r0", &[], &[("bin/a", b"rebuilt\n")]);
    repo.index(2, future());
    device.ok(&["update"]);
    let before = device.snapshot();
    let line = device.fails(&["add", "a"]);
    assert!(
        line.starts_with("pkg: a-1.0-r0: the store holds other bytes for this version"),
        "{line}"
    );
    assert_eq!(device.snapshot(), before);
    // Once gc drops the old image, the new bytes are fetched and recorded.
    device.ok(&["gc", "--keep", "1"]);
    device.ok(&["add", "a"]);
    assert!(device.problems().is_empty(), "{:?}", device.problems());

    // verify checks every generation's hash, even for an id it already checked.
    let generations = device.root.join("state/generations");
    let current = std::fs::read_to_string(generations.join("3")).unwrap();
    let mut forged = amber_core::generation::Generation::parse(&current).unwrap();
    forged.number = 9;
    forged.packages[0].sha256[0] ^= 1;
    std::fs::write(generations.join("9"), forged.write()).unwrap();
    let output = device.pkg(&["verify"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("a-1.0-r0: ok\n"), "{stdout}");
    assert!(stdout.contains("a-1.0-r0: sha256 "), "{stdout}");
}

/// `pkg list | head -1` must not die when head closes the pipe (the device build aborts
/// on println!'s panic, by SIGILL): every query's output ends quietly at a closed
/// reader, with the status it would have had.
#[test]
fn closed_stdout_ends_query_output_quietly() {
    let scene = Scene::new(
        "closed-stdout",
        &[("a", "1.0-r0", &[]), ("b", "1.0-r0", &["a"])],
        1,
    );
    let device = &scene.device;
    device.ok(&["add", "b"]);
    let table: &[(&[&str], i32)] = &[
        (&["list"], 0),
        (&["search", "a"], 0),
        (&["info", "b"], 0),
        (&["info", "--conflicts"], 0),
        (&["which", "/bin/a"], 0),
        (&["verify"], 0),
        (&["key", "list"], 0),
        (&["--json", "list"], 0),
        (&["--json", "info", "nosuch"], 1),
    ];
    for (args, code) in table {
        let with_reader = device.pkg(args);
        assert!(!with_reader.stdout.is_empty(), "pkg {args:?} prints");
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = device
            .command(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            (output.status.code(), output.status.signal()),
            (Some(*code), None),
            "pkg {args:?}: {stderr}"
        );
        // Nothing but the command's own error line, as with a reader.
        assert_eq!(
            stderr,
            String::from_utf8_lossy(&with_reader.stderr),
            "pkg {args:?}"
        );
    }
}
