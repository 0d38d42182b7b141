//! `pkg repo index`: write a repository's `index` and its minisign signature `index.minisig`.
//!
//! The index is always signed prehashed (`ED`, minisign's default), with a trusted comment
//! in minisign's style that also carries the serial, so `minisign -V` shows which index
//! a signature belongs to.

#![forbid(unsafe_code)]

use std::path::Path;

use amber_core::index::{Entry, Index};
use amber_core::line::is_valid_arch;
use amber_core::minisign::{self, SecretKey};
use amber_core::system::System;

use crate::args::RepoIndexArgs;
use crate::context::Report;
use crate::durable;
use crate::error::{Context, Error};

/// The file names inside `<repo>/<arch>/` (DESIGN §4).
pub const INDEX_FILE: &str = "index";
pub const SIGNATURE_FILE: &str = "index.minisig";
/// Where a repository's system releases are, under `<repo>/<arch>/`.
pub const SYSTEM_DIR: &str = "system";

/// The untrusted comment of index signatures; like every untrusted comment, only a hint.
const UNTRUSTED_COMMENT: &str = "signature from amber pkg repo index";

/// Indexes expire this long after they are signed unless `--expires` says otherwise.
const DEFAULT_LIFETIME: u64 = 30 * 24 * 3600;

/// `pkg repo index DIR --secret-key F [--serial N] [--expires UNIX]`: read every image's
/// `.pkg/meta`, hash the image, and write the signed index. DIR is a repository root,
/// whose every `<arch>/` directory with images is indexed, or one `<repo>/<arch>`
/// directory, whose name is the architecture; every image must say the same. A
/// directory with no images (nor system releases), directly or in an `<arch>/` below,
/// is refused: an empty index is never what was meant.
pub fn run(args: &RepoIndexArgs) -> Result<Report, Error> {
    let dir = &args.dir;
    let key_text = std::fs::read_to_string(&args.secret_key).context(args.secret_key.display())?;
    let secret = SecretKey::parse_file(&key_text).context(args.secret_key.display())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let serial = args.serial.unwrap_or(now);
    let expires = args.expires.unwrap_or(now + DEFAULT_LIFETIME);
    let arch_dirs: Vec<std::path::PathBuf> = if !holds_releases(dir)? {
        // A repository root: its architecture directories that hold images.
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).context(dir.display())?.flatten() {
            let path = entry.path();
            let is_arch = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(is_valid_arch);
            if is_arch && path.is_dir() && holds_releases(&path)? {
                found.push(path);
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(Error::from_args(format_args!(
                "{}: no images here, nor in an <arch>/ directory below it (expected \
                 <repo>/<arch>/<name>-<version>.squashfs)",
                dir.display()
            )));
        }
        found
    } else {
        vec![dir.clone()]
    };
    let mut text = String::new();
    for arch_dir in arch_dirs {
        let index = index_arch(&arch_dir, serial, expires)?;
        write_signed_index(&arch_dir, &index, &secret, &trusted_comment(now, serial))?;
        text.push_str(&format!(
            "{}: {} packages, {} system releases, serial {serial}, expires {expires}\n",
            arch_dir.join(INDEX_FILE).display(),
            index.packages.len(),
            index.systems.len()
        ));
    }
    crate::stdout::write(&text).context("stdout")?;
    Ok(Report::empty())
}

/// Whether a directory is a `<repo>/<arch>` one: it holds images, or system releases
/// in its `system/` (a release may be published before any package).
fn holds_releases(dir: &Path) -> Result<bool, Error> {
    Ok(!images_in(dir)?.is_empty() || dir.join(SYSTEM_DIR).is_dir())
}

/// The images in a directory, sorted.
fn images_in(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut images: Vec<_> = std::fs::read_dir(dir)
        .context(dir.display())?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "squashfs") && path.is_file())
        .collect();
    images.sort();
    Ok(images)
}

/// The index of one `<repo>/<arch>` directory, from its images.
fn index_arch(dir: &Path, serial: u64, expires: u64) -> Result<Index, Error> {
    let arch = dir
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|name| is_valid_arch(name))
        .ok_or_else(|| {
            Error::usage_args(format_args!(
                "{}: name the <repo>/<arch> directory (x86_64, aarch64, ...)",
                dir.display()
            ))
        })?
        .to_owned();
    let mut packages = Vec::new();
    for path in images_in(dir)? {
        let meta = crate::image::read_meta(&path)?;
        let size = std::fs::metadata(&path).context(path.display())?.len();
        let entry = Entry::from_meta(&meta, size, crate::image::sha256(&path)?);
        let expected = entry.file_name();
        if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
            return Err(Error::from_args(format_args!(
                "{}: its meta says {}, so it must be named {expected}",
                path.display(),
                entry.id()
            )));
        }
        entry
            .check_meta(&arch, &meta)
            .map_err(|e| Error::from_args(format_args!("{}: {e}", path.display())))?;
        packages.push(entry);
    }
    let systems = systems(dir)?;
    Ok(Index {
        arch,
        serial,
        expires,
        packages,
        systems,
    })
}

/// The system releases in `<dir>/system/` (DESIGN §11): each file `BOARD-VERSION`, hashed,
/// with the rollout waves of its `BOARD-VERSION.rollout` beside it when there is one.
fn systems(dir: &Path) -> Result<Vec<System>, Error> {
    let system_dir = dir.join(SYSTEM_DIR);
    let Ok(entries) = std::fs::read_dir(&system_dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        // Releases are `BOARD-VERSION` (the version may hold dots); beside them are
        // their `.rollout` files and nothing else.
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.ends_with(".rollout") && !name.starts_with('.') && path.is_file()
        })
        .collect();
    paths.sort();
    let mut systems = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        let (board, version) = amber_core::system::split_file_name(name).ok_or_else(|| {
            Error::from_args(format_args!(
                "{}: a system release is named BOARD-VERSION (qemu-x86_64-1.2)",
                path.display()
            ))
        })?;
        let rollout_file = path.with_file_name(format!("{name}.rollout"));
        let rollout = match std::fs::read_to_string(&rollout_file) {
            Ok(text) => amber_core::system::parse_waves(text.trim())
                .map_err(|e| Error::from_args(format_args!("{}: {e}", rollout_file.display())))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(Error::from_args(format_args!(
                    "{}: {error}",
                    rollout_file.display()
                )))
            }
        };
        systems.push(System {
            board: board.to_owned(),
            version,
            size: std::fs::metadata(&path).context(path.display())?.len(),
            sha256: crate::image::sha256(&path)?,
            rollout,
        });
    }
    Ok(systems)
}

/// The trusted comment of an index signature, in minisign's `key:value<TAB>...` style:
/// `timestamp:1732300000<TAB>file:index<TAB>serial:1732300000`.
pub fn trusted_comment(timestamp: u64, serial: u64) -> String {
    format!("timestamp:{timestamp}\tfile:{INDEX_FILE}\tserial:{serial}")
}

/// Write `index` and its signature into `dir`, each atomically and durably (temporary
/// file, fsync, rename, fsync of the directory). The signature is checked against the
/// key's public half before anything is written, so a broken key never publishes.
///
/// The two files are replaced one after the other; a client that fetches between the two
/// renames sees a pair whose signature does not match and refuses it, as it must.
pub fn write_signed_index(
    dir: &Path,
    index: &Index,
    secret: &SecretKey,
    trusted_comment: &str,
) -> Result<(), Error> {
    let text = index.write();
    let signature = minisign::sign(
        secret,
        text.as_bytes(),
        trusted_comment,
        UNTRUSTED_COMMENT,
        true,
    )
    .map_err(|error| Error::from_args(format_args!("trusted comment: {error}")))?;
    minisign::verify(&[secret.public_key()], text.as_bytes(), &signature)
        .map_err(|error| Error::from_args(format_args!("signature self-check failed: {error}")))?;
    durable::write_atomic(&dir.join(INDEX_FILE), text.as_bytes())?;
    durable::write_atomic(&dir.join(SIGNATURE_FILE), signature.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amber_core::minisign::{verify, KeyPair};
    use std::fs;
    use std::path::PathBuf;

    /// A fresh directory under the build's target directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/test-tmp")
                .join(format!("repo-index-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn index() -> Index {
        let text = "amber-index 1\narch aarch64\nserial 7\nexpires 1735000000\n\
                    pkg busybox 1.36.1-r2 size=812345 sha256=\
                    ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad \
                    deps=musl provides=sh,vi\n";
        amber_core::index::parse(text).unwrap()
    }

    #[test]
    fn trusted_comment_follows_minisign_style() {
        assert_eq!(
            trusted_comment(1732300000, 7),
            "timestamp:1732300000\tfile:index\tserial:7"
        );
    }

    #[test]
    fn writes_index_and_verifying_signature() {
        let dir = TempDir::new("write");
        let pair = KeyPair::from_seed([9; 32], [1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let index = index();
        write_signed_index(&dir.0, &index, &pair.secret, &trusted_comment(100, 7)).unwrap();

        let text = fs::read_to_string(dir.0.join("index")).unwrap();
        assert_eq!(text, index.write());
        let signature = fs::read_to_string(dir.0.join("index.minisig")).unwrap();
        let verified = verify(&[pair.public], text.as_bytes(), &signature).unwrap();
        assert_eq!(
            verified.trusted_comment,
            "timestamp:100\tfile:index\tserial:7"
        );
        assert_eq!(verified.algorithm, minisign::Algorithm::Prehashed);
        // No temporary files are left behind.
        let mut names: Vec<String> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["index", "index.minisig"]);
    }

    #[test]
    fn rewriting_replaces_both_files() {
        let dir = TempDir::new("rewrite");
        let pair = KeyPair::from_seed([9; 32], [1; 8]).unwrap();
        let mut index = index();
        write_signed_index(&dir.0, &index, &pair.secret, &trusted_comment(1, 7)).unwrap();
        index.serial = 8;
        write_signed_index(&dir.0, &index, &pair.secret, &trusted_comment(2, 8)).unwrap();
        let text = fs::read_to_string(dir.0.join("index")).unwrap();
        assert!(text.contains("\nserial 8\n"));
        let signature = fs::read_to_string(dir.0.join("index.minisig")).unwrap();
        verify(&[pair.public], text.as_bytes(), &signature).unwrap();
    }

    #[test]
    fn bad_trusted_comment_writes_nothing() {
        let dir = TempDir::new("comment");
        let pair = KeyPair::from_seed([9; 32], [1; 8]).unwrap();
        let error = write_signed_index(&dir.0, &index(), &pair.secret, "a\nb").unwrap_err();
        assert_eq!(
            error.to_string(),
            "trusted comment: comment contains CR, LF or NUL"
        );
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 0);
    }
}
