//! What the text fuzz targets check on one input. Each target in `fuzz_targets/` calls
//! one of these functions, and core's tests include this file too
//! (`core/tests/fuzz_corpus.rs`), so every input of `corpus/<target>/` replays under
//! `cargo test`.
//!
//! A check panics when a property fails: a parser that accepts text it does not write
//! back byte for byte, an order that is not an order, a verifier that disagrees with
//! itself. It returns whether its main parser accepted the input, so the replay test
//! can insist that each corpus holds valid inputs as well as broken ones.

// Each fuzz target binary calls only one of these functions; the others would warn as dead code.
#![allow(dead_code)]

use std::cmp::Ordering;

use amber_core::base64;
use amber_core::generation::Generation;
use amber_core::index::{Entry, Index};
use amber_core::meta::Meta;
use amber_core::minisign::{self, PublicKey, Signature, Verifier};
use amber_core::version::{Dependency, DependencyView, Op, PackageId, Provide, Version};

/// One target's check: panics when a property fails, returns whether the input parsed.
pub type Check = fn(&[u8]) -> bool;

/// The targets whose logic lives here, by the name `cargo xtask fuzz` knows them by.
/// The `squashfs` target's walk is in `walk.rs`.
pub const TARGETS: &[(&str, Check)] = &[
    ("index", index),
    ("meta", meta),
    ("generation", generation),
    ("minisign", minisign),
    ("version", version),
];

/// The key the `minisign` target verifies against: the one core's known-answer tests
/// use, made by `minisign -G -W`. Its secret half is in those tests, so the seeds hold
/// real signatures by it.
pub const MINISIGN_KEY: &str = "untrusted comment: minisign public key B547D128DAB6A5F1\n\
    RWTxpbbaKNFHtYiVjnreRIAmwQBEy7qmESnn4wkJOv4/rOVt1rLIz9yi\n";

/// How many versions of one input the `version` target compares, each against each;
/// enough to find an inconsistent order, few enough to stay fast.
const MAX_VERSIONS: usize = 12;

/// An index that parses writes back to the same text, and that text parses to the same
/// index; its lookups find every entry.
pub fn index(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let view = amber_core::index::parse_view(text);
    let Ok(index) = amber_core::index::parse(text) else {
        assert!(
            view.is_err(),
            "the view parser accepts what the owned one refuses"
        );
        return false;
    };
    // The view and the owned index say the same.
    let view = view.expect("the view parser refuses what the owned one accepts");
    assert_eq!(view.to_index(), index);
    let written = index.write();
    assert_eq!(
        written, text,
        "an accepted index is not in its one written form"
    );
    assert_eq!(amber_core::index::parse(&written), Ok(index.clone()));
    // What the solver makes of it: every package alone resolves or explains itself
    // without a panic, with a bounded search.
    let pool =
        amber_core::solve::Pool::with_sources(&[amber_core::solve::Source::view(&view, None)])
            .with_step_limit(2_000);
    for entry in index.packages.iter().take(8) {
        let request = [Dependency::any(&entry.name)];
        if let Ok(closure) = pool.solve(&request, &[], amber_core::solve::Mode::Upgrade) {
            assert!(closure.iter().any(|chosen| view
                .packages()
                .iter()
                .any(|candidate| candidate.name == chosen.name())));
        }
    }
    for entry in &index.packages {
        assert_eq!(index.get(&entry.id()), Some(entry));
        let newest = index
            .newest(&entry.name)
            .expect("an entry's own name is found");
        assert!(newest.version >= entry.version);
        assert!(index.providers(&entry.name).any(|found| found == entry));
        // The image file name names the entry again.
        let file_name = entry.file_name();
        let id = file_name
            .strip_suffix(".squashfs")
            .map(PackageId::parse)
            .expect("file names end in .squashfs");
        assert_eq!(id, Ok(entry.id()));
    }
    true
}

/// A `.pkg/meta` that parses writes back to the same text, and the index entry made
/// from it (what `pkg repo index` writes) is a valid index line that agrees with it.
pub fn meta(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(meta) = Meta::parse(text) else {
        return false;
    };
    let written = meta.to_text();
    assert_eq!(
        written, text,
        "an accepted meta is not in its one written form"
    );
    assert_eq!(Meta::parse(&written), Ok(meta.clone()));
    let id = meta.id();
    assert_eq!(PackageId::parse(&id.to_string()), Ok(id));
    let entry = Entry::from_meta(&meta, meta.size, [0x5a; 32]);
    assert_eq!(entry.check_meta(&meta.arch, &meta), Ok(()));
    let index = Index {
        arch: meta.arch.clone(),
        serial: 1,
        expires: 2,
        packages: vec![entry],
        systems: Vec::new(),
    };
    assert_eq!(amber_core::index::parse(&index.write()), Ok(index));
    true
}

/// A generation that parses writes back to the same text and parses back equal.
pub fn generation(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(generation) = Generation::parse(text) else {
        return false;
    };
    let written = generation.write();
    assert_eq!(
        written, text,
        "an accepted generation is not in its one written form"
    );
    assert_eq!(Generation::parse(&written), Ok(generation.clone()));
    for entry in &generation.packages {
        assert!(generation.package(&entry.name).is_some());
        generation.is_explicit(entry);
    }
    true
}

/// The input is a signature file (its first four lines) followed by the signed data.
/// A signature that parses writes back to the same text; streaming verification agrees
/// with one-shot verification; every line is also tried as base64, as a public key line
/// and as a key id, and each that decodes encodes back to the same text.
pub fn minisign(data: &[u8]) -> bool {
    let key = PublicKey::parse_file(MINISIGN_KEY).expect("the fixed key parses");
    let split = data
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(3)
        .map_or(data.len(), |(at, _)| at + 1);
    let (head, message) = data.split_at(split);
    let mut accepted = false;
    if let Ok(head) = std::str::from_utf8(head) {
        if let Ok(signature) = Signature::parse(head) {
            assert_eq!(
                signature.to_file_string(),
                head,
                "an accepted signature is not in the form minisign writes"
            );
        }
        let one_shot = minisign::verify(&[key], message, head);
        match Verifier::new(&[key], head) {
            Ok(mut verifier) => {
                // Uneven pieces, so block boundaries inside the hashes are crossed.
                for piece in message.chunks(7) {
                    verifier.update(piece);
                }
                assert_eq!(verifier.finish(), one_shot, "streaming disagrees");
            }
            Err(error) => assert_eq!(Err(error), one_shot),
        }
        if let Ok(verified) = &one_shot {
            assert_eq!(verified.key_id, key.key_id);
            accepted = true;
        }
        if let Ok(parsed) = PublicKey::parse_file(head) {
            let line = head.split('\n').nth(1).unwrap_or_default();
            assert_eq!(parsed.to_base64_line(), line);
            accepted = true;
        }
    }
    for line in data.split(|byte| *byte == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if let Ok(bytes) = base64::decode(line) {
            assert_eq!(base64::encode(&bytes), line, "base64 is not canonical");
        }
        if let Ok(parsed) = PublicKey::parse_base64_line(line) {
            assert_eq!(parsed.to_base64_line(), line);
        }
        if let Ok(key_id) = minisign::parse_key_id_hex(line) {
            let shown = minisign::key_id_hex(&key_id);
            assert_eq!(minisign::parse_key_id_hex(&shown), Ok(key_id));
        }
    }
    assert_eq!(base64::decode(&base64::encode(data)), Ok(data.to_vec()));
    accepted
}

/// Each line of the input is tried as a version, a dependency and a package id; what
/// parses writes back to the same text. The versions found are then checked to be
/// totally ordered: antisymmetric, equal only when identical, transitive.
pub fn version(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut versions: Vec<Version> = Vec::new();
    let mut dependencies: Vec<Dependency> = Vec::new();
    let mut ids: Vec<PackageId> = Vec::new();
    for line in text.split('\n').take(MAX_VERSIONS) {
        if let Ok(version) = Version::parse(line) {
            assert_eq!(version.to_string(), line);
            versions.push(version);
        }
        // The borrowed parser agrees with the owned one.
        assert_eq!(
            DependencyView::parse(line).map(|view| view.to_dependency()),
            Dependency::parse(line),
            "{line:?}"
        );
        if let Ok(provide) = Provide::parse(line) {
            assert_eq!(provide.to_string(), line);
            if let Some(version) = &provide.version {
                versions.push(version.clone());
            }
        }
        if let Ok(request) = Dependency::parse_request(line) {
            assert_eq!(request.to_string(), line);
            assert_eq!(Dependency::parse(line).is_ok(), request.tag.is_none());
        }
        if let Ok(dependency) = Dependency::parse(line) {
            assert_eq!(dependency.to_string(), line);
            if let Some(constraint) = &dependency.constraint {
                versions.push(constraint.version.clone());
            }
            dependencies.push(dependency);
        }
        if let Ok(id) = PackageId::parse(line) {
            assert_eq!(id.to_string(), line);
            versions.push(id.version.clone());
            ids.push(id);
        }
    }
    versions.truncate(MAX_VERSIONS);
    for a in &versions {
        assert!(a.starts_with(a), "{a} does not match ~{a}");
        for b in &versions {
            let order = a.cmp(b);
            assert_eq!(order, b.cmp(a).reverse(), "{a} against {b}");
            assert_eq!(order == Ordering::Equal, a == b, "{a} against {b}");
            if a.starts_with(b) && b.starts_with(a) {
                assert_eq!(a, b, "~{a} and ~{b} match each other");
            }
        }
    }
    // Transitivity: once sorted, every version is at most every later one. A cycle
    // such as a < b < c < a cannot be sorted that way.
    versions.sort();
    for (at, a) in versions.iter().enumerate() {
        for b in &versions[at + 1..] {
            assert!(a <= b, "{a} sorts before {b}, but is greater");
        }
    }
    for a in &ids {
        for b in &ids {
            assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a} against {b}");
            assert_eq!(a.cmp(b) == Ordering::Equal, a == b, "{a} against {b}");
        }
    }
    for dependency in &dependencies {
        if let Some(constraint) = &dependency.constraint {
            // Every operator but `<` and `>` allows the version it names.
            let own = constraint.matches(&constraint.version);
            assert_eq!(
                own,
                !matches!(constraint.op, Op::Lt | Op::Gt),
                "{dependency}"
            );
        }
        // Any answer will do; it must come without a panic.
        for version in &versions {
            dependency.allows(version);
        }
    }
    !versions.is_empty()
}
