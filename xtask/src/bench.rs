//! `cargo xtask bench NAME` and `cargo xtask fuzz TARGET`: run on demand, never in CI's timing.

use crate::cmd::Cmd;

/// Benchmarks and the crate that holds each (a `harness = false` bench target).
const BENCHES: &[(&str, &str)] = &[
    ("solver", "amber-core"),
    ("squashfs", "amber-core"),
    ("install", "amber-tests"),
    ("store", "amber-tests"),
];

pub fn run(args: &[String]) -> Result<(), String> {
    let names: Vec<&str> = BENCHES.iter().map(|(name, _)| *name).collect();
    let Some(name) = args.first() else {
        return Err(format!("bench needs a name: {}", names.join(", ")));
    };
    let Some((_, package)) = BENCHES.iter().find(|(bench, _)| bench == name) else {
        return Err(format!(
            "unknown bench `{name}`; known: {}",
            names.join(", ")
        ));
    };
    Cmd::new("cargo")
        .args(["bench", "-p", package, "--bench", name, "--"])
        .args(&args[1..])
        .run()
}

/// Fuzz targets of `fuzz/` (its own cargo-fuzz workspace, excluded from ours).
const FUZZ_TARGETS: &[&str] = &["squashfs"];

/// `cargo xtask fuzz TARGET [--seconds N] [-- LIBFUZZER-ARGS]`: install cargo-fuzz if it
/// is missing, then run the target on nightly for N seconds (default 60). New inputs
/// go to `fuzz/target/corpus/TARGET`, so the committed seeds in `fuzz/corpus/TARGET`
/// stay small; a crash is saved under `fuzz/artifacts/TARGET/` and fails the command.
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let Some(target) = args.first().filter(|arg| !arg.starts_with('-')) else {
        return Err(format!("fuzz needs a target: {}", FUZZ_TARGETS.join(", ")));
    };
    if !FUZZ_TARGETS.contains(&target.as_str()) {
        return Err(format!(
            "unknown fuzz target `{target}`; known: {}",
            FUZZ_TARGETS.join(", ")
        ));
    }
    let options = crate::args::Args::parse("fuzz", &args[1..], &["--seconds"], &[])?;
    let seconds: u64 = match options.value("--seconds") {
        Some(value) => value
            .parse()
            .map_err(|_| format!("fuzz: --seconds wants a whole number, not `{value}`"))?,
        None => 60,
    };
    if !crate::cmd::have("cargo-fuzz") {
        Cmd::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .run()?;
    }
    let fuzz_dir = crate::cmd::workspace_root().join("fuzz");
    let scratch = format!("target/corpus/{target}");
    std::fs::create_dir_all(fuzz_dir.join(&scratch))
        .map_err(|e| format!("cannot create fuzz/{scratch}: {e}"))?;
    Cmd::new("cargo")
        .args(["+nightly", "fuzz", "run", target])
        .arg(&scratch)
        .arg(format!("corpus/{target}"))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(&options.rest)
        .current_dir(&fuzz_dir)
        .run()
}
