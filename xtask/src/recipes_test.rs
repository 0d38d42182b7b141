//! `cargo xtask recipes-test`: the recipe builder's tests, on copies of
//! `recipes/test-repro` in `target/test-tmp/recipes/` (x86_64 only, to stay fast):
//!
//! 1. built twice from scratch (build trees, source cache and repository wiped) it
//!    gives byte-identical images, and the program runs with its patch applied;
//! 2. building again with nothing changed builds nothing; one byte changed in the
//!    patch changes the identity and rebuilds;
//! 3. a tampered source (its bytes no longer match the recipe's sha256) is refused
//!    with the mismatch error, and nothing is built;
//!    The same for a tarball fetched from a URL (a server on 127.0.0.1 that sends
//!    tampered bytes): refused, nothing cached; the genuine tarball then builds;
//! 4. a recipe whose build connects to a TCP server on the host's 127.0.0.1 fails in
//!    the sandbox, and the server sees no connection (while the same connection from
//!    outside the sandbox gets through); and it could neither write to /usr nor see
//!    the workspace.

use crate::board::Arch;
use crate::recipes::{build, Settings};
use crate::util::{create_dir, path_str, step, write};
use amber_testkit::http::{Behavior, Server};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

const NAME: &str = "test-repro";
const ARCH: Arch = Arch::X86_64;

pub fn run() -> Result<(), String> {
    let pkg = crate::build::host_pkg()?;
    let base = PathBuf::from("target/test-tmp/recipes");
    if base.exists() {
        std::fs::remove_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    }
    let settings = settings(&base, "main")?;
    copy_recipe(&settings.recipes_dir)?;
    let names = [NAME.to_owned()];

    step("recipes-test 1: two builds from scratch give the same image");
    let first = build(&settings, &pkg, ARCH, &names)?;
    let image = image_path(&settings);
    let first_bytes = crate::util::read(&image)?;
    let output = crate::cmd::Cmd::new(path_str(
        &std::fs::canonicalize(
            settings
                .work_dir
                .join("x86_64/test-repro.tree/bin/test-repro"),
        )
        .map_err(|e| e.to_string())?,
    )?)
    .output()?;
    expect(
        output.trim() == "test-repro: patched",
        &format!("the built program printed {output:?}, not the patched greeting"),
    )?;
    for dir in [
        &settings.work_dir,
        &settings.repo_dir,
        &settings.sources_dir,
    ] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let second = build(&settings, &pkg, ARCH, &names)?;
    expect(
        first[0].built && second[0].built,
        "both builds from scratch should have built",
    )?;
    expect(
        first[0].identity == second[0].identity,
        "the identity changed between two builds of the same recipe",
    )?;
    expect(
        crate::util::read(&image)? == first_bytes,
        &format!(
            "{} differs between two builds from scratch: not reproducible",
            image.display()
        ),
    )?;
    eprintln!(
        "recipes-test: identical images ({} bytes), built in {:.1} s and {:.1} s",
        first_bytes.len(),
        first[0].seconds,
        second[0].seconds
    );

    step("recipes-test 2: nothing changed rebuilds nothing; one byte of a patch rebuilds");
    let again = build(&settings, &pkg, ARCH, &names)?;
    expect(!again[0].built, "an unchanged recipe was built again")?;
    let patch = settings.recipes_dir.join(NAME).join("greeting.patch");
    let text = std::fs::read_to_string(&patch).map_err(|e| format!("{}: {e}", patch.display()))?;
    let edited = text.replacen(
        "+    puts(\"test-repro: patched\");",
        "+    puts(\"test-repro: patcheD\");",
        1,
    );
    expect(
        edited != text,
        "the patch no longer has the line the test edits",
    )?;
    write(&patch, edited.as_bytes())?;
    let changed = build(&settings, &pkg, ARCH, &names)?;
    expect(changed[0].built, "a changed patch did not rebuild")?;
    expect(
        changed[0].identity != again[0].identity,
        "a changed patch kept the identity",
    )?;
    let meta = crate::cmd::Cmd::new("unsquashfs")
        .args(["-cat", path_str(&image)?, ".pkg/meta"])
        .output();
    if let Ok(meta) = meta {
        expect(
            meta.contains(&format!("recipe {}", changed[0].identity)),
            "the image's .pkg/meta does not carry the identity",
        )?;
    }

    step("recipes-test 3: a tampered source is refused");
    let tampered = settings_for_copy(&base, "tampered")?;
    let source = tampered.recipes_dir.join(NAME).join("test-repro.c");
    let mut bytes = crate::util::read(&source)?;
    bytes.extend_from_slice(b"/* tampered */\n");
    write(&source, &bytes)?;
    match build(&tampered, &pkg, ARCH, &names) {
        Ok(_) => return Err("recipes-test: a tampered source was built".into()),
        Err(error) => {
            expect(
                error.contains("source test-repro.c: sha256 mismatch (expected 5f7dd97f"),
                &format!("unexpected error for a tampered source: {error}"),
            )?;
            eprintln!("recipes-test: refused as it should be: {error}");
        }
    }
    expect(
        !image_path(&tampered).exists()
            && !tampered.work_dir.join("x86_64/test-repro.log").exists(),
        "a tampered source got as far as a build",
    )?;

    step("recipes-test 3b: a tampered tarball from a URL is refused; the genuine one builds");
    tarball(&base, &pkg)?;

    step("recipes-test 4: the build sandbox has no network");
    network(&base, &pkg)?;
    step("recipes-test: all passed");
    Ok(())
}

fn expect(condition: bool, failure: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("recipes-test: {failure}"))
    }
}

fn settings(base: &Path, name: &str) -> Result<Settings, String> {
    let root = base.join(name);
    create_dir(&root.join("recipes"))?;
    Ok(Settings {
        recipes_dir: root.join("recipes"),
        work_dir: root.join("work"),
        repo_dir: root.join("repo"),
        sources_dir: root.join("sources"),
        secret_key: crate::keys::development()?.secret,
    })
}

fn settings_for_copy(base: &Path, name: &str) -> Result<Settings, String> {
    let settings = settings(base, name)?;
    copy_recipe(&settings.recipes_dir)?;
    Ok(settings)
}

fn copy_recipe(recipes: &Path) -> Result<(), String> {
    let from = Path::new("recipes").join(NAME);
    let into = recipes.join(NAME);
    create_dir(&into)?;
    for entry in std::fs::read_dir(&from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .flatten()
    {
        crate::util::copy(&entry.path(), &into.join(entry.file_name()))?;
    }
    Ok(())
}

fn image_path(settings: &Settings) -> PathBuf {
    settings
        .repo_dir
        .join(ARCH.name())
        .join(format!("{NAME}-1.0-r0.squashfs"))
}

/// A recipe that connects to a listener on the host's 127.0.0.1 must fail, unseen.
fn network(base: &Path, pkg: &Path) -> Result<(), String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("listener: {e}"))?
        .port();
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    // The control: the same connection from outside the sandbox gets through, so a
    // failure inside is the sandbox's doing and not a missing tool.
    crate::cmd::Cmd::new("bash")
        .args(["-c", &connect])
        .output()?;
    let accepted = accept_all(&listener)?;
    expect(
        accepted == 1,
        "the control connection from the host did not arrive",
    )?;

    let settings = settings(base, "network")?;
    let dir = settings.recipes_dir.join("test-net");
    create_dir(&dir)?;
    write(
        &dir.join("recipe.toml"),
        b"name = \"test-net\"\nversion = \"1.0\"\nrevision = 0\n\
          description = \"test package: reaches for the network\"\nlicense = \"MIT\"\n\n\
          [build]\nkind = \"script\"\nscript = \"build.sh\"\n",
    )?;
    write(
        &dir.join("build.sh"),
        format!(
            "mkdir -p \"$OUT/bin\"\necho data > \"$OUT/bin/data\"\n\
             if touch /usr/amber-probe || mount -o remount,rw /usr || [ -e {workspace}/Cargo.toml ]; then\n\
             echo SANDBOX-OPEN; else echo SANDBOX-CLOSED; fi\n\
             bash -c '{connect}'\necho connected to the host\n",
            workspace = crate::cmd::workspace_root().display()
        )
        .as_bytes(),
    )?;
    let result = build(&settings, pkg, ARCH, &["test-net".to_owned()]);
    let seen = accept_all(&listener)?;
    expect(
        seen == 0,
        "the sandboxed build reached a server on the host",
    )?;
    match result {
        Ok(_) => Err("recipes-test: a build that connects to the host succeeded".into()),
        Err(error) => {
            expect(
                error.contains("build failed"),
                &format!("unexpected error for the network recipe: {error}"),
            )?;
            let log = std::fs::read_to_string(settings.work_dir.join("x86_64/test-net.log"))
                .unwrap_or_default();
            expect(
                log.lines().any(|line| line == "SANDBOX-CLOSED"),
                "the sandbox let the build write to /usr or see the workspace",
            )?;
            let reason = log
                .lines()
                .find(|line| line.contains("unreachable") || line.contains("connect"))
                .unwrap_or("(no reason in the log)");
            eprintln!("recipes-test: the sandboxed connection failed: {reason}");
            Ok(())
        }
    }
}

/// A recipe whose source is a tarball served by a local HTTP server: tampered bytes
/// are refused and not cached, the genuine ones are unpacked and built.
fn tarball(base: &Path, pkg: &Path) -> Result<(), String> {
    let settings = settings(base, "tarball")?;
    // The genuine tarball: test-repro's sources under one top-level directory.
    let top = base.join("tarball-src/test-tarball-1.0");
    create_dir(&top)?;
    for file in ["test-repro.c", "Makefile"] {
        crate::util::copy(&Path::new("recipes").join(NAME).join(file), &top.join(file))?;
    }
    let genuine = base.join("test-tarball-1.0.tar.gz");
    crate::cmd::Cmd::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "-czf",
        ])
        .arg(path_str(
            &std::fs::canonicalize(base)
                .map_err(|e| e.to_string())?
                .join("test-tarball-1.0.tar.gz"),
        )?)
        .args([
            "-C",
            path_str(&base.join("tarball-src"))?,
            "test-tarball-1.0",
        ])
        .output()?;
    let genuine_bytes = crate::util::read(&genuine)?;
    let genuine_hash = amber_core::hash::to_hex(&amber_core::hash::sha256(&genuine_bytes));
    let mut tampered = genuine_bytes.clone();
    tampered.extend_from_slice(b"tampered");

    // The tarball's path answers the tampered bytes until cleared, then the genuine file.
    let server = Server::bind(base, 0)?.ok_or("cannot start the tarball's server")?;
    server.set("/test-tarball-1.0.tar.gz", Behavior::Body(tampered));
    let port = server.port();

    let dir = settings.recipes_dir.join("test-tarball");
    create_dir(&dir)?;
    write(
        &dir.join("recipe.toml"),
        format!(
            "name = \"test-tarball\"\nversion = \"1.0\"\nrevision = 0\n\
             description = \"test package: a tarball source\"\nlicense = \"MIT\"\n\n\
             [[source]]\nurl = \"http://127.0.0.1:{port}/test-tarball-1.0.tar.gz\"\n\
             sha256 = \"{genuine_hash}\"\n\n[build]\nkind = \"make\"\n"
        )
        .as_bytes(),
    )?;
    let names = ["test-tarball".to_owned()];
    match build(&settings, pkg, ARCH, &names) {
        Ok(_) => return Err("recipes-test: a tampered tarball was built".into()),
        Err(error) => {
            let expected = format!(
                "source test-tarball-1.0.tar.gz: sha256 mismatch (expected {genuine_hash}, got"
            );
            expect(
                error.contains(&expected),
                &format!("unexpected error for a tampered tarball: {error}"),
            )?;
            eprintln!("recipes-test: refused as it should be: {error}");
        }
    }
    let cached = settings.sources_dir.join(&genuine_hash);
    let kept = std::fs::read_dir(&cached).map_or(0, |entries| entries.count());
    expect(kept == 0, "a tampered tarball was kept in the source cache")?;
    expect(
        !settings.work_dir.join("x86_64/test-tarball.log").exists(),
        "a tampered tarball got as far as a build",
    )?;
    server.clear();
    let built = build(&settings, pkg, ARCH, &names)?;
    expect(built[0].built, "the genuine tarball did not build")?;
    expect(
        settings
            .work_dir
            .join("x86_64/test-tarball.tree/bin/test-repro")
            .is_file(),
        "the genuine tarball's build installed no bin/test-repro",
    )
}

/// Accept every pending connection; returns how many there were.
fn accept_all(listener: &TcpListener) -> Result<usize, String> {
    let mut count = 0;
    // The control connection may still be in flight: give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(200));
    loop {
        match listener.accept() {
            Ok(_) => count += 1,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(count),
            Err(error) => return Err(format!("listener: {error}")),
        }
    }
}
