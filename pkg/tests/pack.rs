//! `pkg pack` end to end: the real binary packs a directory; `unsquashfs` unpacks the
//! image, and what comes out is the tree plus a `.pkg/meta` that agrees with the
//! command line.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use amber_core::meta::Meta;

/// This process's directory under cargo's per-target temp directory: several test
/// processes may run at once, so each works in its own directory, and leftovers of
/// processes that are gone are removed first.
fn process_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pack");
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

/// A small package tree: an executable, a library, docs, a symlink, an empty file
/// and an empty directory.
fn make_tree(root: &Path) -> u64 {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("lib")).unwrap();
    fs::create_dir_all(root.join("share/doc/hello")).unwrap();
    fs::create_dir_all(root.join("share/empty")).unwrap();
    let hello = b"#!/bin/sh\necho hello\n".to_vec();
    let library: Vec<u8> = (0..300_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let readme = b"hello: says hello\n".repeat(100);
    fs::write(root.join("bin/hello"), &hello).unwrap();
    fs::set_permissions(root.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("lib/libhello.so.1"), &library).unwrap();
    fs::write(root.join("share/doc/hello/README"), &readme).unwrap();
    fs::write(root.join("share/doc/hello/EMPTY"), b"").unwrap();
    symlink("hello", root.join("bin/hi")).unwrap();
    symlink("libhello.so.1", root.join("lib/libhello.so")).unwrap();
    (hello.len() + library.len() + readme.len()) as u64
}

fn pkg(args: &[&str], epoch: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pkg"));
    command.args(args);
    match epoch {
        Some(epoch) => command.env("SOURCE_DATE_EPOCH", epoch),
        None => command.env_remove("SOURCE_DATE_EPOCH"),
    };
    command.output().unwrap()
}

fn pack(dir: &Path, out: &Path, extra: &[&str], epoch: Option<&str>) -> Output {
    let mut args = vec![
        "pack",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--name",
        "hello",
        "--version",
        "2.12.1-r3",
        "--arch",
        "x86_64",
    ];
    args.extend_from_slice(extra);
    pkg(&args, epoch)
}

fn unsquashfs(image: &Path, out: &Path) {
    let output = Command::new("unsquashfs")
        .args(["-no-progress", "-quiet", "-d"])
        .arg(out)
        .arg(image)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Names, types, modes, sizes, contents and symlink targets under `expected` all
/// appear the same under `actual`; `actual` may hold `.pkg` at its top besides.
fn assert_same_tree(expected: &Path, actual: &Path, top: bool) {
    let names = |dir: &Path| {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| !(top && name == ".pkg"))
            .collect();
        names.sort();
        names
    };
    let expected_names = names(expected);
    assert_eq!(expected_names, names(actual), "{}", actual.display());
    for name in expected_names {
        let (want, got) = (expected.join(&name), actual.join(&name));
        let (want_meta, got_meta) = (
            fs::symlink_metadata(&want).unwrap(),
            fs::symlink_metadata(&got).unwrap(),
        );
        assert_eq!(
            want_meta.file_type(),
            got_meta.file_type(),
            "{}",
            got.display()
        );
        if want_meta.file_type().is_symlink() {
            assert_eq!(fs::read_link(&want).unwrap(), fs::read_link(&got).unwrap());
        } else if want_meta.is_dir() {
            assert_eq!(want_meta.mode() & 0o7777, got_meta.mode() & 0o7777);
            assert_same_tree(&want, &got, false);
        } else {
            assert_eq!(want_meta.mode() & 0o7777, got_meta.mode() & 0o7777);
            assert!(
                fs::read(&want).unwrap() == fs::read(&got).unwrap(),
                "{}",
                got.display()
            );
        }
    }
}

/// The one line a failed command prints, checked for shape.
fn one_line_error(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert!(stderr.starts_with("pkg: "), "{stderr}");
    assert!(
        stderr.ends_with('\n') && stderr.lines().count() == 1,
        "{stderr:?}"
    );
    stderr
}

/// No image and no temporary file was left behind in `dir`.
fn assert_nothing_written(dir: &Path) {
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name != "tree")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn pack_writes_an_image_with_the_tree_and_its_meta() {
    let dir = temp_dir("basic");
    let tree = dir.join("tree");
    let payload = make_tree(&tree);
    let image = dir.join("hello-2.12.1-r3.squashfs");
    let output = pack(
        &tree,
        &image,
        &[
            "--dep",
            "musl>=1.2.4",
            "--dep",
            "zlib",
            "--provides",
            "hi",
            "--description",
            "Says hello",
            "--license",
            "MIT",
        ],
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let size = fs::metadata(&image).unwrap().len();
    assert_eq!(size % 4096, 0);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(image.to_str().unwrap()), "{stdout}");
    assert!(stdout.contains(&size.to_string()), "{stdout}");

    let out = dir.join("out");
    unsquashfs(&image, &out);
    assert_same_tree(&tree, &out, true);
    assert_eq!(fs::metadata(&out).unwrap().mode() & 0o7777, 0o755);

    let text = fs::read_to_string(out.join(".pkg/meta")).unwrap();
    let meta = Meta::parse(&text).unwrap();
    assert_eq!(meta.name, "hello");
    assert_eq!(meta.version.as_str(), "2.12.1-r3");
    assert_eq!(meta.arch, "x86_64");
    let deps: Vec<String> = meta.deps.iter().map(|dep| dep.to_string()).collect();
    assert_eq!(deps, ["musl>=1.2.4", "zlib"]);
    assert_eq!(meta.provides, [amber_core::version::Provide::any("hi")]);
    assert_eq!(meta.description, "Says hello");
    assert_eq!(meta.license, "MIT");
    assert_eq!(meta.size, payload);
    assert_eq!(meta.recipe, None);
    // Nothing but the image is left next to it.
    assert_nothing_written_but(&dir, &["tree", "out", "hello-2.12.1-r3.squashfs"]);
}

fn assert_nothing_written_but(dir: &Path, keep: &[&str]) {
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !keep.contains(&name.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn two_packs_give_identical_bytes() {
    let dir = temp_dir("twice");
    let tree = dir.join("tree");
    make_tree(&tree);
    let (first, second) = (dir.join("first.squashfs"), dir.join("second.squashfs"));
    assert!(pack(&tree, &first, &["--dep", "musl"], None)
        .status
        .success());
    assert!(pack(&tree, &second, &["--dep", "musl"], None)
        .status
        .success());
    assert!(fs::read(&first).unwrap() == fs::read(&second).unwrap());

    // Packing again over an existing image replaces it with the same bytes.
    assert!(pack(&tree, &first, &["--dep", "musl"], None)
        .status
        .success());
    assert!(fs::read(&first).unwrap() == fs::read(&second).unwrap());
}

#[test]
fn source_date_epoch_sets_every_time() {
    let dir = temp_dir("epoch");
    let tree = dir.join("tree");
    make_tree(&tree);
    let image = dir.join("dated.squashfs");
    assert!(pack(&tree, &image, &[], Some("1700000000"))
        .status
        .success());
    let time = Command::new("unsquashfs")
        .arg("-mkfs-time")
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&time.stdout).trim(), "1700000000");
    let out = dir.join("out");
    unsquashfs(&image, &out);
    for path in ["", "bin", "bin/hello", ".pkg", ".pkg/meta", "share/empty"] {
        let meta = fs::metadata(out.join(path)).unwrap();
        assert_eq!(meta.mtime(), 1_700_000_000, "{path}");
    }

    let undated = dir.join("undated.squashfs");
    assert!(pack(&tree, &undated, &[], None).status.success());
    let time = Command::new("unsquashfs")
        .arg("-mkfs-time")
        .arg(&undated)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&time.stdout).trim(), "0");

    let error = one_line_error(&pack(
        &tree,
        &dir.join("bad.squashfs"),
        &[],
        Some("yesterday"),
    ));
    assert!(error.contains("SOURCE_DATE_EPOCH"), "{error}");
    assert!(!dir.join("bad.squashfs").exists());
}

#[test]
fn bad_name_version_or_dep_is_a_one_line_error() {
    let dir = temp_dir("bad-args");
    let tree = dir.join("tree");
    make_tree(&tree);
    let image = dir.join("bad.squashfs");
    let image = image.to_str().unwrap();
    let tree = tree.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--name", "Hello", "--version", "1.0-r0", "--arch", "x86_64"],
            "--name",
        ),
        (
            &[
                "--name",
                "hello-2",
                "--version",
                "1.0-r0",
                "--arch",
                "x86_64",
            ],
            "--name",
        ),
        (
            &["--name", "hello", "--version", "1.0-rc", "--arch", "x86_64"],
            "--version",
        ),
        (
            &["--name", "hello", "--version", "v1", "--arch", "x86_64"],
            "--version",
        ),
        (
            &["--name", "hello", "--version", "1.0-r0", "--arch", "x86-64"],
            "--arch",
        ),
        (
            &[
                "--name",
                "hello",
                "--version",
                "1.0-r0",
                "--arch",
                "x86_64",
                "--dep",
                "musl>>1",
            ],
            "--dep",
        ),
        (
            &[
                "--name",
                "hello",
                "--version",
                "1.0-r0",
                "--arch",
                "x86_64",
                "--dep",
                "Musl",
            ],
            "--dep",
        ),
        (
            &[
                "--name",
                "hello",
                "--version",
                "1.0-r0",
                "--arch",
                "x86_64",
                "--dep",
                "musl>=1..2",
            ],
            "--dep",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["pack", tree, "-o", image];
        full.extend_from_slice(args);
        let error = one_line_error(&pkg(&full, None));
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    assert_nothing_written(&dir);
}

#[test]
fn missing_required_argument_is_a_usage_error() {
    let dir = temp_dir("usage");
    let output = pkg(&["pack", dir.to_str().unwrap(), "--name", "hello"], None);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn directory_with_pkg_is_refused() {
    let dir = temp_dir("has-pkg");
    let tree = dir.join("tree");
    make_tree(&tree);
    fs::create_dir(tree.join(".pkg")).unwrap();
    fs::write(tree.join(".pkg/meta"), b"name forged\n").unwrap();
    let error = one_line_error(&pack(&tree, &dir.join("x.squashfs"), &[], None));
    assert!(error.contains(".pkg"), "{error}");
    assert_nothing_written(&dir);
}

#[test]
fn sockets_are_refused() {
    let dir = temp_dir("socket");
    let tree = dir.join("tree");
    make_tree(&tree);
    let _listener = std::os::unix::net::UnixListener::bind(tree.join("control.sock")).unwrap();
    let error = one_line_error(&pack(&tree, &dir.join("x.squashfs"), &[], None));
    assert!(
        error.contains("control.sock") && error.contains("socket"),
        "{error}"
    );
    assert_nothing_written(&dir);
}

#[test]
fn output_inside_the_directory_is_refused() {
    let dir = temp_dir("inside");
    let tree = dir.join("tree");
    make_tree(&tree);
    let error = one_line_error(&pack(&tree, &tree.join("lib/self.squashfs"), &[], None));
    assert!(error.contains("inside"), "{error}");
    assert!(!tree.join("lib/self.squashfs").exists());
}

#[test]
fn missing_directory_is_an_error() {
    let dir = temp_dir("missing");
    let error = one_line_error(&pack(&dir.join("tree"), &dir.join("x.squashfs"), &[], None));
    assert!(error.contains("tree"), "{error}");
    assert_nothing_written(&dir);
}

#[test]
fn symlinks_are_stored_not_followed() {
    let dir = temp_dir("symlinks");
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).unwrap();
    let outside = dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"not for the package").unwrap();
    symlink(&outside, tree.join("escape")).unwrap();
    symlink("/etc/passwd", tree.join("passwd")).unwrap();
    let image = dir.join("links.squashfs");
    assert!(pack(&tree, &image, &[], None).status.success());
    let out = dir.join("out");
    unsquashfs(&image, &out);
    assert_eq!(fs::read_link(out.join("escape")).unwrap(), outside);
    assert_eq!(
        fs::read_link(out.join("passwd")).unwrap(),
        Path::new("/etc/passwd")
    );
    let meta = Meta::parse(&fs::read_to_string(out.join(".pkg/meta")).unwrap()).unwrap();
    assert_eq!(meta.size, 0);
}
