//! SECURITY-TESTS.md items 1–14, 25 and 26: each attack or fault against a real `pkg`
//! and a real HTTP server on 127.0.0.1, with the error line checked and the store
//! compared byte for byte before and after.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use amber_core::minisign::Signature;
use amber_testkit::http::{Behavior, Server};
use amber_tests::fixture::{future, now, Device, Repo, Scene, ARCH};
use amber_tests::{run, run_ok, TempDir};

/// Run a pkg command that must be refused: exit 1, one `pkg: ` line holding every
/// `expected` piece, the store unchanged and no temporary file left. Returns the line.
fn refused(device: &Device, args: &[&str], expected: &[&str]) -> String {
    let before = device.snapshot();
    let line = device.fails(args);
    for piece in expected {
        assert!(line.contains(piece), "{line:?} should contain {piece:?}");
    }
    assert_eq!(
        device.snapshot().diff(&before),
        Vec::<String>::new(),
        "pkg {args:?} changed the store ({line})"
    );
    assert_eq!(device.temp_files(), Vec::<String>::new());
    line
}

/// The server path of a file of the repository.
fn path(file: &str) -> String {
    format!("/{ARCH}/{file}")
}

/// Item 1.
#[test]
fn flipped_image_byte_is_a_sha256_mismatch() {
    let scene = Scene::new("item1", &[("a", "1.0-r0", &[]), ("b", "1.0-r0", &[])], 1);
    let device = &scene.device;
    device.ok(&["add", "a"]);
    let size = std::fs::metadata(scene.repo.image("b", "1.0-r0"))
        .unwrap()
        .len();
    for offset in [0, 1000, size - 1] {
        scene
            .server
            .set(&path("b-1.0-r0.squashfs"), Behavior::FlipByte(offset));
        let line = refused(device, &["add", "b"], &["b-1.0-r0: ", "sha256 mismatch"]);
        assert!(!line.contains("size mismatch"), "{line}");
    }
    assert_eq!(device.installed(), ["a-1.0-r0"]);
    scene.server.clear();
    device.ok(&["add", "b"]);
    assert_eq!(device.installed(), ["a-1.0-r0", "b-1.0-r0"]);
}

/// Item 2.
#[test]
fn flipped_index_or_signature_byte_is_a_signature_error_and_the_old_index_stays() {
    let scene = Scene::new("item2", &[("a", "1.0-r0", &[])], 1);
    let (device, repo, server) = (&scene.device, &scene.repo, &scene.server);
    repo.simple("b", "1.0-r0", &[]);
    repo.index(2, future());
    let index = repo.index_bytes();
    let signature = String::from_utf8(repo.signature_bytes()).unwrap();
    let line_start = |n: usize| -> u64 {
        signature
            .split_inclusive('\n')
            .take(n)
            .map(|l| l.len() as u64)
            .sum()
    };
    // The untrusted comment (line 1) is, as its name says, not signed; every byte of
    // the other three lines is.
    let signature_offsets = [
        line_start(1) + 30,
        line_start(2) + 20,
        line_start(3) - 1,
        line_start(3) + 5,
        line_start(4) - 1,
    ];
    let index_offsets = [0, index.len() as u64 / 2, index.len() as u64 - 1];
    for offset in index_offsets {
        server.set(&path("index"), Behavior::FlipByte(offset));
        refused(device, &["update"], &["signature"]);
    }
    server.clear();
    for offset in signature_offsets {
        server.set(&path("index.minisig"), Behavior::FlipByte(offset));
        refused(device, &["update"], &["signature"]);
    }
    server.clear();
    // Index 1 stays in use: `a` installs from it, `b` (only in index 2) is unknown.
    refused(device, &["add", "b"], &["b"]);
    device.ok(&["add", "a"]);
    assert_eq!(device.installed(), ["a-1.0-r0"]);
    // The untouched pair is accepted.
    device.ok(&["update"]);
    device.ok(&["add", "b"]);
}

/// Item 3.
#[test]
fn malformed_sha256_in_a_signed_index_is_a_parse_error() {
    let scene = Scene::new("item3", &[("lib", "1.0-r0", &[])], 1);
    let (device, repo) = (&scene.device, &scene.repo);
    let image = repo.simple("m", "1.0-r0", &[]);
    let lib = Repo::entry_line(&repo.image("lib", "1.0-r0"), "lib", "1.0-r0", "");
    let good = Repo::entry_line(&image, "m", "1.0-r0", "");
    let hash = good.split("sha256=").nth(1).unwrap().trim_end().to_owned();
    let size = std::fs::metadata(&image).unwrap().len();
    let variants = [
        (
            "missing",
            format!("pkg m 1.0-r0 size={size}\n"),
            "sha256 is missing",
        ),
        (
            "empty",
            format!("pkg m 1.0-r0 size={size} sha256=\n"),
            "sha256 is empty",
        ),
        (
            "short",
            format!("pkg m 1.0-r0 size={size} sha256={}\n", &hash[..63]),
            "64",
        ),
        (
            "long",
            format!("pkg m 1.0-r0 size={size} sha256={hash}0\n"),
            "64",
        ),
        (
            "padded before",
            format!("pkg m 1.0-r0 size={size} sha256= {hash}\n"),
            "sha256",
        ),
        (
            "padded after",
            format!("pkg m 1.0-r0 size={size} sha256={hash} \n"),
            "space",
        ),
        (
            "tab",
            format!("pkg m 1.0-r0 size={size} sha256=\t{hash}\n"),
            "control",
        ),
        (
            "non-hex",
            format!("pkg m 1.0-r0 size={size} sha256=g{}\n", &hash[1..]),
            "hex",
        ),
        (
            "uppercase",
            format!("pkg m 1.0-r0 size={size} sha256={}\n", hash.to_uppercase()),
            "lowercase",
        ),
        (
            "twice",
            format!("pkg m 1.0-r0 size={size} sha256={hash} sha256={hash}\n"),
            "twice",
        ),
    ];
    for (serial, (what, line, reason)) in (2..).zip(variants) {
        repo.publish(&format!("{}{lib}{line}", Repo::header(serial, future())));
        let error = refused(device, &["update"], &["index line 6: ", reason]);
        assert!(!error.contains("signature"), "{what}: {error}");
        refused(device, &["add", "m"], &[]);
    }
    assert!(device.ok(&["list"]).is_empty());
    // The same index with a well-formed hash is accepted.
    repo.publish(&format!("{}{lib}{good}", Repo::header(20, future())));
    device.ok(&["update"]);
    device.ok(&["add", "m"]);
    assert_eq!(device.installed(), ["m-1.0-r0"]);
}

/// Whether any file of the store holds `bytes`.
fn store_holds(device: &Device, bytes: &[u8]) -> bool {
    device
        .snapshot()
        .0
        .values()
        .any(|file| file.windows(bytes.len()).any(|w| w == bytes))
}

/// Item 4.
#[test]
fn lower_serial_is_refused_and_never_written_to_disk() {
    let scene = Scene::new("item4", &[("a", "1.0-r0", &[])], 5);
    let (device, repo) = (&scene.device, &scene.repo);
    repo.simple("b", "1.0-r0", &[]);
    repo.index(4, future());
    let refused_index = repo.index_bytes();
    refused(
        device,
        &["update"],
        &["serial 4 is lower than 5", "refusing a rollback"],
    );
    assert!(!store_holds(device, &refused_index));
    // The same serial with other contents is refused as well.
    repo.index(5, future());
    let refused_index = repo.index_bytes();
    refused(
        device,
        &["update"],
        &["serial 5 was already accepted with other contents"],
    );
    assert!(!store_holds(device, &refused_index));
    refused(device, &["add", "b"], &[]);
    repo.index(6, future());
    device.ok(&["update"]);
    assert!(store_holds(device, &repo.index_bytes()));
    device.ok(&["add", "b"]);
}

/// Item 5, and the policy for devices without a real-time clock (repo.rs `Clock`).
#[test]
fn expired_index_is_refused_and_an_unset_clock_uses_the_build_date() {
    let mut scene = Scene::new("item5", &[("a", "1.0-r0", &[])], 1);
    let repo = &scene.repo;
    repo.index(2, now() - 3600);
    let line = refused(&scene.device, &["update"], &["index expired at ", "frozen"]);
    assert!(!line.contains("clock is unset"), "{line}");

    // A device that booted in 1970: the clock cannot be believed, so pkg checks expiry
    // against its own build date. Learn that date from the error it gives.
    scene.device.env("AMBER_NOW", "0");
    let device = &scene.device;
    repo.index(3, 1);
    let line = refused(
        device,
        &["update"],
        &["index expired at 1 (now ", "the clock is unset"],
    );
    let floor: u64 = line
        .split("(now ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no build date in {line}"));
    assert!(floor > 1_700_000_000, "build date {floor} is not plausible");

    // Expired before this pkg was built: refused even with the clock unset.
    repo.index(4, floor - 1);
    refused(
        device,
        &["update"],
        &[&format!("index expired at {}", floor - 1)],
    );
    // Expires after the build date: accepted while the clock is unset...
    repo.index(5, floor + 1);
    if now() > floor + 1 {
        // ...though a set clock knows it is stale.
        let mut clocked = Device::new(&scene.temp, "clocked");
        clocked.env("AMBER_NOW", &now().to_string());
        clocked.trust(repo, &scene.server.url());
        refused(&clocked, &["update"], &["expired"]);
    }
    device.ok(&["update"]);
    device.ok(&["add", "a"]);
    // A clock set later than the expiry stops the index at its next use.
    scene.device.env("AMBER_NOW", &(floor + 100).to_string());
    let device = &scene.device;
    refused(device, &["add", "a>1"], &["expired"]);
}

/// Item 5 on a device that stored a last good time (ARCHITECTURE.md, "Time without a
/// clock"): with the clock unset, the stored time replaces the build date as the floor.
#[test]
fn an_unset_clock_uses_the_stored_last_good_time() {
    let mut scene = Scene::new("item5-stored", &[("a", "1.0-r0", &[])], 1);
    let clock = scene.temp.join("clock");
    scene.device.env("AMBER_NOW", "0");
    scene
        .device
        .env("AMBER_CLOCK_FILE", clock.to_str().expect("a UTF-8 path"));
    let (device, repo) = (&scene.device, &scene.repo);
    // A device that has been running for a while: its last good time is later than
    // the build date, and an index that expired before it is refused...
    let stored = now() + 10_000;
    std::fs::write(&clock, format!("{stored}\n")).unwrap();
    repo.index(2, stored - 1);
    refused(
        device,
        &["update"],
        &[&format!("index expired at {} (now {stored}, ", stored - 1)],
    );
    // ...and one that expires after it is accepted.
    repo.index(3, stored + 1);
    device.ok(&["update"]);
    // A time SNTP set before the build date: what the device stored is believed over
    // the build date, so an index between the two is accepted.
    std::fs::write(&clock, "1000000000\n").unwrap();
    repo.index(4, 1_500_000_000);
    device.ok(&["update"]);
    device.ok(&["add", "a"]);
    // A file that does not hold a time is no floor: the build date is.
    std::fs::write(&clock, "soon\n").unwrap();
    repo.index(5, 1_500_000_001);
    refused(
        device,
        &["update"],
        &["index expired at 1500000001", "the clock is unset"],
    );
}

/// Item 6.
#[test]
fn signature_of_the_previous_index_is_refused() {
    let scene = Scene::new("item6", &[("a", "1.0-r0", &[])], 1);
    let (device, repo, server) = (&scene.device, &scene.repo, &scene.server);
    let (index_1, signature_1) = (repo.index_bytes(), repo.signature_bytes());
    repo.simple("b", "1.0-r0", &[]);
    repo.index(2, future());
    server.set(&path("index.minisig"), Behavior::Body(signature_1));
    refused(device, &["update"], &["signature does not match the data"]);
    server.clear();
    server.set(&path("index"), Behavior::Body(index_1));
    refused(device, &["update"], &["signature does not match the data"]);
    server.clear();
    device.ok(&["update"]);
    device.ok(&["add", "b"]);
}

/// Item 7.
#[test]
fn another_package_served_for_a_request_is_a_sha256_mismatch() {
    let scene = Scene::new("item7", &[("a", "1.0-r0", &[]), ("b", "1.0-r0", &[])], 1);
    let (device, repo) = (&scene.device, &scene.repo);
    let other = std::fs::read(repo.image("a", "1.0-r0")).unwrap();
    let wanted = std::fs::read(repo.image("b", "1.0-r0")).unwrap();
    assert_eq!(
        other.len(),
        wanted.len(),
        "same size, so only the hash can tell"
    );
    scene
        .server
        .set(&path("b-1.0-r0.squashfs"), Behavior::Body(other));
    refused(device, &["add", "b"], &["b-1.0-r0: ", "sha256 mismatch"]);
    // Served under the right name on another path, through a redirect: the same.
    scene.server.set(
        &path("b-1.0-r0.squashfs"),
        Behavior::Redirect(path("a-1.0-r0.squashfs")),
    );
    refused(device, &["add", "b"], &["sha256 mismatch"]);
}

/// Item 8.
#[test]
fn image_meta_that_disagrees_with_the_index_is_refused() {
    let scene = Scene::new("item8", &[("c", "1.0-r0", &[])], 1);
    let (device, repo) = (&scene.device, &scene.repo);
    let a = repo.simple("a", "1.0-r0", &[]);
    let d = repo.simple("d", "1.0-r0", &["c"]);
    let e = repo.simple("e", "1.0-r0", &[]);
    let p = repo.package("p", "1.0-r0", &[], &[("bin/p", b"p")]);
    // Images that claim to be something else: the bytes of `a` as `x` and as `a-2.0`.
    std::fs::copy(&a, repo.image("x", "1.0-r0")).unwrap();
    std::fs::copy(&a, repo.image("a", "2.0-r0")).unwrap();
    let lines = [
        Repo::entry_line(&a, "a", "2.0-r0", ""),
        Repo::entry_line(&repo.image("c", "1.0-r0"), "c", "1.0-r0", ""),
        Repo::entry_line(&d, "d", "1.0-r0", ""),
        Repo::entry_line(&e, "e", "1.0-r0", " deps=c"),
        Repo::entry_line(&p, "p", "1.0-r0", " provides=q"),
        Repo::entry_line(&a, "x", "1.0-r0", ""),
    ];
    repo.publish(&format!("{}{}", Repo::header(2, future()), lines.concat()));
    device.ok(&["update"]);
    for (request, expected) in [
        (
            "x",
            "x-1.0-r0: package meta says name a, but the index says x",
        ),
        (
            "a",
            "a-2.0-r0: package meta says version 1.0-r0, but the index says 2.0-r0",
        ),
        (
            "d",
            "d-1.0-r0: package meta says deps c, but the index says (none)",
        ),
        (
            "e",
            "e-1.0-r0: package meta says deps (none), but the index says c",
        ),
        (
            "p",
            "p-1.0-r0: package meta says provides (none), but the index says q",
        ),
    ] {
        refused(device, &["add", request], &[expected]);
    }
    device.ok(&["add", "c"]);
    assert_eq!(device.installed(), ["c-1.0-r0"]);
}

/// Item 9.
#[test]
fn longer_or_endless_body_stops_at_the_indexed_size() {
    let scene = Scene::new("item9", &[("a", "1.0-r0", &[])], 1);
    let (device, server) = (&scene.device, &scene.server);
    let image = path("a-1.0-r0.squashfs");
    let size = std::fs::metadata(scene.repo.image("a", "1.0-r0"))
        .unwrap()
        .len();
    let bytes = std::fs::read(scene.repo.image("a", "1.0-r0")).unwrap();
    let cases = [
        (
            Behavior::Longer(1),
            format!("more than the {size} expected"),
        ),
        (
            Behavior::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n".to_vec()),
            format!("body is 1099511627776 bytes, more than the {size} expected"),
        ),
        (
            Behavior::Endless,
            format!("longer than the {size} bytes expected"),
        ),
        (
            Behavior::Raw(
                [
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                    format!("{:x}\r\n", size + 1).as_bytes(),
                    &bytes,
                    b"x\r\n0\r\n\r\n",
                ]
                .concat(),
            ),
            format!("longer than the {size} bytes expected"),
        ),
        (
            Behavior::Body(bytes[..1000].to_vec()),
            format!("size mismatch: 1000 bytes, expected {size}"),
        ),
    ];
    for (behavior, expected) in cases {
        server.set(&image, behavior);
        let started = Instant::now();
        refused(device, &["add", "a"], &["a-1.0-r0: ", &expected]);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    server.set(&image, Behavior::Chunked);
    device.ok(&["add", "a"]);
}

/// Item 10.
#[test]
fn slow_retrieval_times_out_and_other_downloads_are_cleaned_up() {
    let mut scene = Scene::new(
        "item10",
        &[
            ("a", "1.0-r0", &[]),
            ("c", "1.0-r0", &[]),
            ("d", "1.0-r0", &[]),
        ],
        1,
    );
    let noise = amber_tests::fixture::noise(256 << 10, 10);
    scene
        .repo
        .package("b", "1.0-r0", &[], &[("share/b", &noise)]);
    scene.repo.index(2, future());
    scene.device.env("AMBER_FETCH_TIMEOUT", "2");
    let (device, server) = (&scene.device, &scene.server);
    device.ok(&["update"]);
    // `a` sends a byte every 3 s, so a read times out after 2 s. `b` is 256 KiB sent at
    // about 2 KB/s, above the minimum rate: alone it would take minutes, so the command
    // returning soon shows it was cancelled. `c` and `d` are healthy and done first.
    server.set(
        &path("a-1.0-r0.squashfs"),
        Behavior::Trickle(Duration::from_secs(3)),
    );
    server.set(
        &path("b-1.0-r0.squashfs"),
        Behavior::Trickle(Duration::from_micros(500)),
    );
    let started = Instant::now();
    refused(
        device,
        &["add", "a", "b", "c", "d"],
        &["a-1.0-r0: ", "timed out"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(device.image_names(), Vec::<String>::new());

    // A byte every 20 ms never times out a read, but is far below the minimum rate.
    server.set(
        &path("b-1.0-r0.squashfs"),
        Behavior::Trickle(Duration::from_millis(20)),
    );
    let started = Instant::now();
    refused(device, &["add", "b"], &["b-1.0-r0: ", "too slow"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    server.set(
        &path("index.minisig"),
        Behavior::Trickle(Duration::from_secs(3)),
    );
    let started = Instant::now();
    refused(device, &["update"], &["index.minisig", "timed out"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    server.clear();
    device.ok(&["add", "a", "b", "c", "d"]);
}

/// Item 11.
#[test]
fn hostile_redirects_are_refused_and_a_plain_one_works() {
    let scene = Scene::new("item11", &[("a", "1.0-r0", &[])], 1);
    let (device, server) = (&scene.device, &scene.server);
    let image = path("a-1.0-r0.squashfs");
    let here = server.url();
    let cases = [
        (format!("{image}\nX-Injected: 1"), "0x0a".to_owned()),
        (format!("{image}\rX-Injected: 1"), "0x0d".to_owned()),
        (format!("{here}{image}\nX: 1"), "0x0a".to_owned()),
        (
            "ftp://127.0.0.1/a.squashfs".to_owned(),
            "refused".to_owned(),
        ),
        ("file:///etc/passwd".to_owned(), "refused".to_owned()),
        ("//127.0.0.1/a.squashfs".to_owned(), "refused".to_owned()),
        ("a-1.0-r0.squashfs".to_owned(), "refused".to_owned()),
        (image.clone(), "redirect loop".to_owned()),
        (format!("{here}{image}"), "redirect loop".to_owned()),
        ("/hop1".to_owned(), "redirect loop".to_owned()),
        ("/chain1".to_owned(), "too many redirects".to_owned()),
    ];
    server.set("/hop1", Behavior::Redirect("/hop2".into()));
    server.set("/hop2", Behavior::Redirect(image.clone()));
    for n in 1..10 {
        server.set(
            &format!("/chain{n}"),
            Behavior::Redirect(format!("/chain{}", n + 1)),
        );
    }
    for (location, expected) in cases {
        server.set(&image, Behavior::Redirect(location.clone()));
        let line = refused(device, &["add", "a"], &["a-1.0-r0: ", &expected]);
        assert!(!line.contains('\r'), "{line:?}");
    }
    // An encoded CR/LF is never decoded into the request: it reaches the server as is.
    server.set(
        &image,
        Behavior::Redirect("/moved/a%0D%0AX-Injected:%201".into()),
    );
    refused(device, &["add", "a"], &["HTTP 404"]);
    assert!(server
        .paths()
        .contains(&"/moved/a%0D%0AX-Injected:%201".to_owned()));

    // A plain redirect, to a path or a full URL on the same server, is followed.
    let moved = scene.repo.dir.join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::copy(scene.repo.image("a", "1.0-r0"), moved.join("a.squashfs")).unwrap();
    server.set(&image, Behavior::Redirect(format!("{here}/hop-a")));
    server.set("/hop-a", Behavior::Redirect("/moved/a.squashfs".into()));
    device.ok(&["add", "a"]);
    assert_eq!(device.installed(), ["a-1.0-r0"]);
    assert!(server
        .paths()
        .ends_with(&[image, "/hop-a".into(), "/moved/a.squashfs".into()]));
}

/// Item 12.
#[test]
fn failing_first_mirror_does_not_let_the_second_serve_an_unsigned_or_stale_index() {
    let temp = TempDir::new("item12");
    let repo = Repo::new(&temp, "repo");
    repo.simple("a", "1.0-r0", &[]);
    repo.index(1, future());
    let (stale_index, stale_signature) = (repo.index_bytes(), repo.signature_bytes());
    repo.index(2, future());
    let primary = Server::start(&repo.dir);
    let mirror = Server::start(&repo.dir);
    let device = Device::new(&temp, "device");
    device.ok(&["key", "add", repo.public_key.to_str().unwrap()]);
    device.ok(&["repo", "add", &primary.url(), "--mirror", &mirror.url()]);
    device.ok(&["update"]);
    assert!(mirror.requests().is_empty());

    primary.set(&path("index"), Behavior::Status(500));
    primary.set(&path("index.minisig"), Behavior::Status(500));
    repo.simple("b", "1.0-r0", &[]);
    repo.index(3, future());
    // Unsigned: no signature file, or an empty one.
    mirror.set(&path("index.minisig"), Behavior::Status(404));
    refused(&device, &["update"], &["HTTP 500", "HTTP 404"]);
    mirror.set(&path("index.minisig"), Behavior::Body(Vec::new()));
    refused(
        &device,
        &["update"],
        &["HTTP 500", "not a minisign signature"],
    );
    // Stale: index 1, validly signed, after index 2 was accepted.
    mirror.set(&path("index"), Behavior::Body(stale_index));
    mirror.set(&path("index.minisig"), Behavior::Body(stale_signature));
    refused(
        &device,
        &["update"],
        &["HTTP 500", "serial 1 is lower than 2"],
    );
    refused(&device, &["add", "b"], &[]);
    // The mirror with the current index takes over.
    mirror.clear();
    assert_eq!(
        device.ok(&["update"]),
        format!("{}: serial 3, 2 packages\n", primary.url())
    );
    primary.clear();
    device.ok(&["add", "b"]);
}

/// Item 13: malformed and misattributed signatures.
#[test]
fn unknown_key_wrong_key_id_edited_comment_or_truncated_signature_is_refused() {
    let scene = Scene::new("item13", &[("a", "1.0-r0", &[])], 1);
    let (device, repo, server) = (&scene.device, &scene.repo, &scene.server);
    // A second trusted key, and a stranger's.
    let other = Repo::new(&scene.temp, "other");
    device.ok(&["key", "add", other.public_key.to_str().unwrap()]);
    let stranger = Repo::new(&scene.temp, "stranger");
    repo.simple("b", "1.0-r0", &[]);
    repo.index(2, future());
    let index = repo.index_bytes();
    let good = String::from_utf8(repo.signature_bytes()).unwrap();
    let parsed = Signature::parse(&good).unwrap();
    let with = |change: &dyn Fn(&mut Signature)| {
        let mut signature = parsed.clone();
        change(&mut signature);
        signature.to_file_string()
    };
    let key_id = |r: &Repo| r.secret().key_id();
    let lines: Vec<&str> = good.lines().collect();
    let relined = |lines: &[&str]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            stranger.sign(&index),
            "which is not a trusted key",
        ),
        (
            "untrusted key id",
            with(&|s| s.key_id = key_id(&stranger)),
            "which is not a trusted key",
        ),
        (
            "another trusted key's id",
            with(&|s| s.key_id = key_id(&other)),
            "signature does not match the data",
        ),
        (
            "edited trusted comment",
            with(&|s| s.trusted_comment = s.trusted_comment.replace("serial:2", "serial:3")),
            "trusted comment signature does not match",
        ),
        (
            "legacy algorithm claimed",
            with(&|s| s.algorithm = amber_core::minisign::Algorithm::Legacy),
            "signature does not match the data",
        ),
        (
            "truncated signature line",
            relined(&[
                lines[0],
                &lines[1][..lines[1].len() - 4],
                lines[2],
                lines[3],
            ]),
            "signature line 2 holds 72 bytes, expected 74",
        ),
        (
            "signature line cut by one",
            relined(&[
                lines[0],
                &lines[1][..lines[1].len() - 1],
                lines[2],
                lines[3],
            ]),
            "signature line 2",
        ),
        (
            "truncated global signature",
            relined(&[
                lines[0],
                lines[1],
                lines[2],
                &lines[3][..lines[3].len() - 8],
            ]),
            "signature line 4",
        ),
        (
            "cut after two lines",
            relined(&lines[..2]),
            "expected 4 lines",
        ),
        (
            "no final newline",
            good.trim_end().to_owned(),
            "expected 4 lines",
        ),
        ("CRLF line ends", good.replace('\n', "\r\n"), "signature"),
        (
            "trailing line",
            format!("{good}extra\n"),
            "expected 4 lines",
        ),
        ("empty", String::new(), "expected 4 lines"),
    ];
    for (what, signature, expected) in cases {
        assert_ne!(signature, good, "{what}");
        server.set(
            &path("index.minisig"),
            Behavior::Body(signature.into_bytes()),
        );
        let line = refused(device, &["update"], &["signature", expected]);
        assert!(!line.contains('\r'), "{what}: {line:?}");
    }
    server.clear();
    device.ok(&["update"]);
    device.ok(&["add", "b"]);
}

/// Item 13: the real `minisign` tool's signatures pass, and only for the exact bytes.
#[test]
fn minisign_tool_signatures_are_accepted_and_an_edited_index_is_not() {
    if !amber_testkit::require_tool("minisign", "minisign") {
        return;
    }
    let scene = Scene::new("item13-minisign", &[("a", "1.0-r0", &[])], 1);
    let (device, repo) = (&scene.device, &scene.repo);
    // `pkg keygen` keys work with `minisign -V`.
    run_ok(std::process::Command::new("minisign").args([
        "-V",
        "-q",
        "-p",
        repo.public_key.to_str().unwrap(),
        "-m",
        repo.arch_dir().join("index").to_str().unwrap(),
    ]));
    let (public, secret) = (scene.temp.join("tool.pub"), scene.temp.join("tool.key"));
    run_ok(
        std::process::Command::new("minisign")
            .args([
                "-G",
                "-W",
                "-p",
                public.to_str().unwrap(),
                "-s",
                secret.to_str().unwrap(),
            ])
            .stdin(Stdio::null()),
    );
    let sign = |legacy: bool| {
        let index = repo.arch_dir().join("index");
        let mut command = std::process::Command::new("minisign");
        command.args([
            "-S",
            "-s",
            secret.to_str().unwrap(),
            "-m",
            index.to_str().unwrap(),
        ]);
        command.args([
            "-x",
            repo.arch_dir().join("index.minisig").to_str().unwrap(),
        ]);
        if legacy {
            command.arg("-l");
        }
        run_ok(command.stdin(Stdio::null()));
    };
    repo.simple("b", "1.0-r0", &[]);
    repo.index(2, future());
    sign(false);
    refused(device, &["update"], &["which is not a trusted key"]);
    device.ok(&["key", "add", public.to_str().unwrap()]);
    assert_eq!(
        device.ok(&["update"]),
        format!("{}: serial 2, 2 packages\n", scene.server.url())
    );
    device.ok(&["add", "b"]);
    // The legacy (not prehashed) signature of minisign -l passes too.
    repo.index(3, future());
    sign(true);
    assert!(String::from_utf8(repo.signature_bytes())
        .unwrap()
        .contains("\nRW"));
    device.ok(&["update"]);
    // One byte of the index changed (the expiry, still in the future): refused.
    repo.index(4, 4_000_000_000);
    sign(false);
    let index = repo.arch_dir().join("index");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        text.replace("expires 4000000000", "expires 4000000001"),
    )
    .unwrap();
    refused(device, &["update"], &["signature does not match the data"]);
}

/// Item 14.
#[test]
fn deleted_key_is_refused_at_update_and_at_add() {
    let scene = Scene::new("item14", &[("a", "1.0-r0", &[]), ("b", "1.0-r0", &[])], 1);
    let (device, repo) = (&scene.device, &scene.repo);
    device.ok(&["add", "a"]);
    let id = repo.key_id();
    assert_eq!(
        device.ok(&["key", "del", &id]),
        format!("no longer trusting key {id}\n")
    );
    assert_eq!(device.ok(&["key", "list"]), "");
    let expected = format!("signed by key {id}, which is not a trusted key");
    refused(device, &["add", "b"], &[&expected]);
    refused(device, &["upgrade"], &[&expected]);
    refused(device, &["search", "b"], &[&expected]);
    // A new index signed by it is refused as well (another key is trusted now).
    let other = Repo::new(&scene.temp, "other");
    device.ok(&["key", "add", other.public_key.to_str().unwrap()]);
    repo.index(2, future());
    refused(device, &["update"], &[&expected]);
    // What is installed stays installed and verified.
    assert_eq!(device.installed(), ["a-1.0-r0"]);
    device.ok(&["verify"]);
    device.ok(&["key", "add", repo.public_key.to_str().unwrap()]);
    device.ok(&["update"]);
    device.ok(&["add", "b"]);
}

/// Unmounts a mount point when dropped, so a failing test leaves no mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let status = run(std::process::Command::new("umount").arg(&self.0));
        if !status.status.success() {
            let _ = run(std::process::Command::new("umount").arg("-l").arg(&self.0));
        }
    }
}

/// Free blocks of the file system holding `path`.
fn free_blocks(path: &std::path::Path) -> u64 {
    let out = run_ok(
        std::process::Command::new("stat")
            .args(["-f", "-c", "%f"])
            .arg(path),
    );
    out.trim().parse().unwrap()
}

/// Item 25.
#[test]
fn disk_full_during_a_download_is_a_clear_error_and_the_space_comes_back() {
    if !amber_testkit::require_root("mounting a small tmpfs") {
        return;
    }
    let temp = TempDir::new("item25");
    let repo = Repo::new(&temp, "repo");
    repo.simple("a", "1.0-r0", &[]);
    let noise = amber_tests::fixture::noise(3 << 20, 25);
    repo.package("big", "1.0-r0", &[], &[("share/big/noise", &noise)]);
    repo.index(1, future());
    assert!(
        std::fs::metadata(repo.image("big", "1.0-r0"))
            .unwrap()
            .len()
            > 3 << 20
    );
    let server = Server::start(&repo.dir);
    let device = Device::new(&temp, "store");
    std::fs::create_dir_all(&device.root).unwrap();
    let mounted = run(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&device.root));
    if !mounted.status.success() {
        // Root without the right to mount (an unprivileged container).
        amber_testkit::skip(&format!(
            "cannot mount a tmpfs: {}",
            String::from_utf8_lossy(&mounted.stderr).trim()
        ));
        return;
    }
    let _mount = Mount(device.root.clone());
    device.trust(&repo, &server.url());
    device.ok(&["update"]);
    device.ok(&["add", "a"]);
    let free = free_blocks(&device.root);
    refused(
        &device,
        &["add", "big"],
        &["big-1.0-r0: ", "No space left on device"],
    );
    assert_eq!(free_blocks(&device.root), free, "the space is free again");
    assert_eq!(device.installed(), ["a-1.0-r0"]);
    device.ok(&["verify"]);
    device.ok(&["del", "a"]);
}

/// Item 26.
#[test]
fn second_pkg_command_waits_for_the_lock_or_fails_clearly() {
    let scene = Scene::new("item26", &[("a", "1.0-r0", &[]), ("b", "1.0-r0", &[])], 1);
    let device = &scene.device;
    // Hold the store lock as another pkg command would.
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device.root.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    lock.set_len(0).unwrap();
    write!(lock, "{}", std::process::id()).unwrap();
    let holder = format!(
        "another pkg command (pid {}) is using the store",
        std::process::id()
    );
    refused(device, &["--no-wait", "add", "a"], &[&holder]);
    refused(device, &["--no-wait", "update"], &[&holder]);
    // Reading needs no lock.
    assert_eq!(device.ok(&["list"]), "");

    let mut child = device
        .command(&["add", "b"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert_eq!(
        first,
        format!(
            "pkg: waiting for another pkg command (pid {}) to finish\n",
            std::process::id()
        )
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "add finished while the lock was held"
    );
    assert_eq!(device.current(), None);
    lock.unlock().unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "+ b-1.0-r0\ngeneration 1: 1 packages, 4.0 KiB fetched\n"
    );
    drop(lock);
    assert_eq!(device.installed(), ["b-1.0-r0"]);
}
