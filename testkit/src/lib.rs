//! What every amber test crate shares: the rule for a test that cannot run here. (The
//! one deterministic random generator is `amber_core::random::Random`: the DHCP client
//! draws from it too.)
//!
//! A test that needs something this machine lacks (root, `/dev/fuse`, a peer tool such
//! as `minisign` or `mksquashfs`) asks through [`require_root`], [`require_tool`] or
//! [`require`], which name the test after its libtest thread. When the need is met they return `true`. When it is not:
//!
//! - under CI (the `CI` variable set, as `.ci/run` runs), the test fails and its message
//!   names what is missing: a skipped test is a test that did not pass;
//! - elsewhere, one notice line goes to stderr, and the skip is appended to the file
//!   `$AMBER_SKIP_LOG` names, so `cargo xtask test` can count it at the end.
//!
//! Beside that rule it offers the one HTTP/1.1 file server the tests, the benchmarks and
//! xtask share ([`http`]); fixtures live with the tests that use them.

pub mod http;

use std::io::Write;
use std::path::Path;

/// The variable `cargo xtask test` sets to the file where skips are recorded.
pub const SKIP_LOG: &str = "AMBER_SKIP_LOG";

/// Whether this run is CI's: `CI` is set to anything but an empty string or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false")
}

/// The running test's name: libtest runs each test on a thread named after it.
pub fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "a test".to_owned(),
    }
}

/// Report that the running test cannot run because `missing` is not here. Panics under
/// CI; else prints one notice and records it in `$AMBER_SKIP_LOG`.
pub fn skip(missing: &str) {
    skip_named(&current_test(), missing);
}

/// [`skip`] for a check that is not a libtest test (xtask's steps): `test` names it.
pub fn skip_named(test: &str, missing: &str) {
    if in_ci() {
        panic!("{test}: cannot run in CI: {missing}");
    }
    eprintln!("notice: skipped {test}: {missing}");
    record(test, missing);
}

/// Append one skip to `$AMBER_SKIP_LOG`, when it is set. Each line is whole (one
/// `write` of an `O_APPEND` file), so tests in parallel processes do not mix lines.
pub fn record(test: &str, missing: &str) {
    let Some(path) = std::env::var_os(SKIP_LOG) else {
        return;
    };
    let line = format!("{test}: {missing}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        eprintln!(
            "notice: cannot record the skip in {}: {error}",
            Path::new(&path).display()
        );
    }
}

/// For a step that is not a libtest test (xtask's e2e, flash-test): `Ok(true)` when
/// `met`; otherwise, under CI, an error naming what is missing, and elsewhere one
/// notice, the skip recorded, and `Ok(false)` to go on without the step.
pub fn check_step(step: &str, met: bool, missing: &str) -> Result<bool, String> {
    if met {
        return Ok(true);
    }
    if in_ci() {
        return Err(format!("{step}: cannot run in CI: {missing}"));
    }
    eprintln!("notice: skipped {step}: {missing}");
    record(step, missing);
    Ok(false)
}

/// `true` when `met`; otherwise [`skip`]s the running test for `missing` and returns
/// `false`.
pub fn require(met: bool, missing: &str) -> bool {
    if !met {
        skip(missing);
    }
    met
}

/// Whether `program` is on PATH (or in /sbin, /usr/sbin, where root's tools live).
pub fn have(program: &str) -> bool {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    on_path
        || ["/sbin", "/usr/sbin"]
            .iter()
            .any(|dir| Path::new(dir).join(program).is_file())
}

/// `true` when `program` is on PATH; otherwise skips the running test, naming the
/// Debian package that has it.
pub fn require_tool(program: &str, package: &str) -> bool {
    require(
        have(program),
        &format!("{program} is not installed (apt-get install {package})"),
    )
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

/// `true` when running as root; otherwise skips the running test, saying what root is
/// needed for.
pub fn require_root(needed_for: &str) -> bool {
    require(is_root(), &format!("not root ({needed_for} needs root)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn have_finds_a_program_every_machine_has() {
        assert!(have("sh"));
        assert!(!have("amber-no-such-program"));
    }

    #[test]
    fn require_passes_what_is_met_without_a_notice() {
        assert!(require(true, "nothing"));
    }

    #[test]
    fn the_running_test_is_named_after_its_thread() {
        assert!(current_test().ends_with("the_running_test_is_named_after_its_thread"));
    }
}
