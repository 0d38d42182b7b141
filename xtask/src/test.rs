//! `cargo xtask test`: the README's test command. Everything CI checks, in order, and at
//! the end a count of what ran and what was skipped.
//!
//! A test that cannot run here (not root, a tool missing) is never a silent pass: under
//! CI (`CI` set) it fails naming what is missing; elsewhere it prints one notice and is
//! recorded in `target/test-skips.log` (amber-testkit's `AMBER_SKIP_LOG`), which the
//! summary counts.

use crate::cmd::Cmd;
use std::path::Path;

/// Where the tests of this run record their skips.
const SKIP_LOG: &str = "target/test-skips.log";

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("test takes no arguments, got `{extra}`"));
    }
    crate::deps::ensure()?;
    let skip_log = crate::cmd::workspace_root().join(SKIP_LOG);
    crate::util::create_dir(skip_log.parent().expect("the log is in target/"))?;
    let _ = std::fs::remove_file(&skip_log);
    // Set before any thread starts; every test process inherits it.
    std::env::set_var(amber_testkit::SKIP_LOG, &skip_log);
    let mut ran: Vec<String> = Vec::new();

    Cmd::new("cargo")
        .args(["fmt", "--all", "--", "--check"])
        .run()?;
    ran.push("fmt".into());
    Cmd::new("cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    ran.push("clippy".into());
    // The no_std core must build for a bare-metal target: it does no I/O.
    Cmd::new("cargo")
        .args([
            "check",
            "-p",
            "amber-core",
            "--no-default-features",
            "--target",
            "aarch64-unknown-none",
        ])
        .run()?;
    ran.push("no_std core on aarch64-unknown-none".into());
    // Integration tests drive the real pkg binary, so build it first.
    Cmd::new("cargo").args(["build", "-p", "amber-pkg"]).run()?;
    let mut results = TestResults::default();
    Cmd::new("cargo")
        .args(["test", "--workspace"])
        .run_lines(|line| results.read(line))?;
    ran.push(format!(
        "{} tests in {} test binaries ({} ignored)",
        results.passed, results.binaries, results.ignored
    ));
    // The size budgets (DESIGN §8) of both qemu boards: `size` fails when one is exceeded.
    for board in ["qemu-x86_64", "qemu-aarch64"] {
        crate::size::run(&["--board".to_owned(), board.to_owned()])?;
        ran.push(format!("size budget of {board}"));
    }
    // Every fuzz target for 15 s (SECURITY-TESTS 21).
    let targets = crate::bench::fuzz_ci()?;
    ran.push(format!(
        "{targets} fuzz targets, {} s each",
        crate::bench::CI_SECONDS
    ));
    // The recipe builder: reproducible images, refused tampered sources, no network in
    // the sandbox, identities that follow every input.
    crate::recipes_test::run()?;
    ran.push("recipes-test".into());
    // flash on loop devices: verified writes, every refusal, a clean stop on Ctrl-C.
    crate::flash_test::run()?;
    ran.push("flash-test".into());
    // Every qemu board end to end: images, boots, pkg over HTTP, reboots, power cuts.
    let boards = crate::e2e::run()?;
    if boards > 0 {
        ran.push(format!("e2e on {boards} boards"));
    }
    summary(&ran, &skip_log);
    Ok(())
}

/// Print what ran and what was skipped (read back from the skip log).
fn summary(ran: &[String], skip_log: &Path) {
    let skips = skipped(skip_log);
    println!("\ntest: ran {}", ran.join("; "));
    println!("test: skipped {}", skips.len());
    for skip in &skips {
        println!("  skipped {skip}");
    }
}

/// The skips recorded in the log, one per line.
fn skipped(skip_log: &Path) -> Vec<String> {
    std::fs::read_to_string(skip_log)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The sums of libtest's `test result:` lines.
#[derive(Debug, Default, PartialEq)]
struct TestResults {
    binaries: u64,
    passed: u64,
    ignored: u64,
}

impl TestResults {
    /// Add one line of `cargo test`'s output when it is a summary:
    /// `test result: ok. 57 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; ...`
    fn read(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        self.binaries += 1;
        let count = |what: &str| -> u64 {
            rest.split(['.', ';'])
                .map(str::trim)
                .find_map(|part| part.strip_suffix(what)?.trim().parse().ok())
                .unwrap_or(0)
        };
        self.passed += count(" passed");
        self.ignored += count(" ignored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_lines_are_summed() {
        let mut results = TestResults::default();
        for line in [
            "running 3 tests",
            "test a ... ok",
            "test result: ok. 57 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            results.read(line);
        }
        assert_eq!(
            results,
            TestResults {
                binaries: 3,
                passed: 60,
                ignored: 2
            }
        );
    }
}
