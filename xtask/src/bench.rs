//! `cargo xtask bench NAME` and `cargo xtask fuzz TARGET`: run on demand, never in CI's timing.

use crate::cmd::Cmd;

/// Benchmarks and the crate that holds each (a `harness = false` bench target).
const BENCHES: &[(&str, &str)] = &[("solver", "amber-core"), ("squashfs", "amber-core")];

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

pub fn fuzz(_args: &[String]) -> Result<(), String> {
    Err("fuzz is not built yet: it arrives with the SquashFS reader".into())
}
