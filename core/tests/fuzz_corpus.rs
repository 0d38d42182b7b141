//! Replays the committed corpus of every text fuzz target (`fuzz/corpus/<target>/`)
//! through the target's own check in `fuzz/checks.rs`, so `cargo test` catches a
//! regression without nightly or libFuzzer. The `squashfs` corpus replays in
//! `squashfs_read.rs`.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks.rs"]
mod checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Runs every input of `fuzz/corpus/<target>/` through the target's check. The seeds
/// hold valid and broken inputs, so at least one must be accepted and one refused;
/// the others were found by fuzzing, regressions included.
fn replay(target: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("the target is in checks::TARGETS");
    let corpus = fuzz_dir().join("corpus").join(target);
    let mut inputs: Vec<PathBuf> = fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 4, "the {target} seed corpus is missing");
    let mut failed = Vec::new();
    let mut accepted = 0;
    for input in &inputs {
        let bytes = fs::read(input).unwrap();
        // Catch the panic so the message names every failing file, not just the first.
        match panic::catch_unwind(|| check(&bytes)) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => failed.push(input.display().to_string()),
        }
    }
    eprintln!(
        "{target}: {} corpus inputs, {accepted} accepted",
        inputs.len()
    );
    assert!(failed.is_empty(), "{target} check failed on {failed:#?}");
    assert!(accepted >= 1, "no {target} seed is accepted");
    assert!(accepted < inputs.len(), "no {target} seed is refused");
}

#[test]
fn index_corpus_replays() {
    replay("index");
}

#[test]
fn meta_corpus_replays() {
    replay("meta");
}

#[test]
fn generation_corpus_replays() {
    replay("generation");
}

#[test]
fn minisign_corpus_replays() {
    replay("minisign");
}

#[test]
fn version_corpus_replays() {
    replay("version");
}

/// Every fuzz target is replayed here or in `squashfs_read.rs`, and has a corpus.
#[test]
fn every_fuzz_target_is_replayed() {
    let mut targets: Vec<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    targets.sort();
    let mut known: Vec<&str> = checks::TARGETS.iter().map(|(name, _)| *name).collect();
    known.push("squashfs");
    known.sort();
    assert_eq!(targets, known);
    for target in known {
        assert!(
            fuzz_dir().join("corpus").join(target).is_dir(),
            "fuzz/corpus/{target} is missing"
        );
    }
}
