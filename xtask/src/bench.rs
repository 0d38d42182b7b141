//! `cargo xtask bench NAME` and `cargo xtask fuzz TARGET`: run on demand, never in CI's timing.

use crate::cmd::Cmd;

/// A benchmark: a `harness = false` bench target of a crate, and the cargo profile
/// it is built with.
struct Bench {
    name: &'static str,
    package: &'static str,
    profile: &'static str,
}

/// Benchmarks of code the device runs use `bench-device`, the release profile's
/// code generation (Cargo.toml), so they measure what the device runs; the others
/// use cargo's `bench` profile.
const BENCHES: &[Bench] = &[
    Bench {
        name: "solver",
        package: "amber-core",
        profile: "bench-device",
    },
    Bench {
        name: "squashfs",
        package: "amber-core",
        profile: "bench",
    },
    Bench {
        name: "install",
        package: "amber-tests",
        profile: "bench",
    },
    Bench {
        name: "store",
        package: "amber-tests",
        profile: "bench",
    },
];

/// `cargo xtask bench NAME [ARGS]`: builds and runs one benchmark; ARGS go to it.
pub fn run(args: &[String]) -> Result<(), String> {
    // The memory bench boots qemu: xtask runs it itself.
    if args.first().map(String::as_str) == Some("memory") {
        return crate::memory::run(&args[1..]);
    }
    let mut names: Vec<&str> = BENCHES.iter().map(|bench| bench.name).collect();
    names.push("memory");
    let Some(name) = args.first() else {
        return Err(format!("bench needs a name: {}", names.join(", ")));
    };
    let Some(bench) = BENCHES.iter().find(|bench| bench.name == name) else {
        return Err(format!(
            "unknown bench `{name}`; known: {}",
            names.join(", ")
        ));
    };
    eprintln!("bench {name}: cargo profile `{}`", bench.profile);
    Cmd::new("cargo")
        .args(["bench", "--profile", bench.profile])
        .args(["-p", bench.package, "--bench", name, "--"])
        .args(&args[1..])
        .run()
}

/// Fuzz targets of `fuzz/` (its own cargo-fuzz workspace, excluded from ours): one per
/// parser of untrusted bytes (SECURITY-TESTS 21).
const FUZZ_TARGETS: &[&str] = &[
    "index",
    "meta",
    "generation",
    "minisign",
    "version",
    "squashfs",
];

/// How long `--ci` runs each target: six targets and a first build from nothing (about
/// 70 s on two cores) stay under three minutes.
pub const CI_SECONDS: u64 = 15;

/// `--ci` prints no line per new input, only crashes and the final counts.
const CI_QUIET: [&str; 2] = ["-verbosity=0", "-print_final_stats=1"];

/// An input that takes 5 s or 512 MB is a failure like a panic: no hang, no unbounded
/// memory (SECURITY-TESTS 21).
const FUZZ_LIMITS: [&str; 2] = ["-timeout=5", "-rss_limit_mb=512"];

/// `cargo xtask fuzz TARGET [--seconds N] [-- LIBFUZZER-ARGS]`: make sure of cargo-fuzz
/// (deps.rs), then run the target for N seconds (default 60). New inputs
/// go to `fuzz/target/corpus/TARGET`, so the committed seeds in `fuzz/corpus/TARGET`
/// stay small; a crash is saved under `fuzz/artifacts/TARGET/` and fails the command.
///
/// `cargo xtask fuzz --ci [--seconds N]`: every target, 15 seconds each by default, as
/// `cargo xtask test` runs them.
///
/// cargo-fuzz's flags (`-Zsanitizer=address`, sanitizer coverage) are unstable; they run
/// on the pinned stable toolchain with `RUSTC_BOOTSTRAP=1`, as the device build's
/// `-Z build-std` does, so a machine with only the pinned toolchain fuzzes too. The
/// AddressSanitizer runtime ships in the host's rust-std.
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let (target, rest) = match args.first() {
        Some(first) if !first.starts_with('-') => (Some(first.as_str()), &args[1..]),
        _ => (None, args),
    };
    let options = crate::args::Args::parse("fuzz", rest, &["--seconds"], &["--ci"])?;
    let seconds = match options.value("--seconds") {
        Some(value) => Some(
            value
                .parse::<u64>()
                .map_err(|_| format!("fuzz: --seconds wants a whole number, not `{value}`"))?,
        ),
        None => None,
    };
    if options.flag("--ci") {
        if let Some(target) = target {
            return Err(format!("fuzz --ci runs every target; drop `{target}`"));
        }
        return fuzz_every_target(seconds.unwrap_or(CI_SECONDS), &options.rest);
    }
    let Some(target) = target else {
        return Err(format!(
            "fuzz needs a target ({}) or --ci",
            FUZZ_TARGETS.join(", ")
        ));
    };
    if !FUZZ_TARGETS.contains(&target) {
        return Err(format!(
            "unknown fuzz target `{target}`; known: {}",
            FUZZ_TARGETS.join(", ")
        ));
    }
    crate::deps::ensure()?;
    fuzz_target(target, seconds.unwrap_or(60), &options.rest)
}

/// The fuzzing step of `cargo xtask test`, the same as `cargo xtask fuzz --ci`; returns
/// how many targets ran.
pub fn fuzz_ci() -> Result<usize, String> {
    fuzz_every_target(CI_SECONDS, &[])?;
    Ok(FUZZ_TARGETS.len())
}

/// Builds every target once, then runs each for `seconds`; all run even when one
/// crashes, and the command fails naming each that did. The corpora also replay under
/// `cargo test`.
fn fuzz_every_target(seconds: u64, extra: &[String]) -> Result<(), String> {
    let started = std::time::Instant::now();
    cargo_fuzz().arg("build").run()?;
    let mut flags: Vec<String> = CI_QUIET.iter().map(|flag| flag.to_string()).collect();
    flags.extend_from_slice(extra);
    let mut failed = Vec::new();
    for (number, target) in FUZZ_TARGETS.iter().enumerate() {
        eprintln!(
            "fuzz {}/{}: {target} for {seconds} s",
            number + 1,
            FUZZ_TARGETS.len()
        );
        if let Err(error) = fuzz_target(target, seconds, &flags) {
            eprintln!("fuzz: {target}: {error}");
            failed.push(*target);
        }
    }
    let elapsed = started.elapsed().as_secs();
    if failed.is_empty() {
        eprintln!(
            "fuzz: {} targets, {seconds} s each, no crash ({elapsed} s in all)",
            FUZZ_TARGETS.len()
        );
        Ok(())
    } else {
        Err(format!(
            "fuzz targets failed: {}; the inputs are in fuzz/artifacts/<target>/ \
             (replay one with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET FILE` in fuzz/)",
            failed.join(", ")
        ))
    }
}

/// Runs one target for `seconds` over its committed seeds, with the limits above.
fn fuzz_target(target: &str, seconds: u64, extra: &[String]) -> Result<(), String> {
    let scratch = format!("target/corpus/{target}");
    std::fs::create_dir_all(fuzz_dir().join(&scratch))
        .map_err(|e| format!("cannot create fuzz/{scratch}: {e}"))?;
    cargo_fuzz()
        .args(["run", target])
        .arg(&scratch)
        .arg(format!("corpus/{target}"))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(FUZZ_LIMITS)
        .args(extra)
        .run()
}

/// `cargo fuzz` in `fuzz/`, on the pinned toolchain with its unstable flags allowed.
fn cargo_fuzz() -> Cmd {
    Cmd::new("cargo")
        .arg("fuzz")
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(fuzz_dir())
}

fn fuzz_dir() -> std::path::PathBuf {
    crate::cmd::workspace_root().join("fuzz")
}
