//! The repository's signed index: written again with the host `pkg repo index` only when
//! something it vouches for changed.

use crate::cmd::Cmd;
use crate::util::{create_dir, path_str, sha256_file, write};
use std::path::Path;

/// Sign the index again when an image changed, when there is none, when it expires
/// within a week, when the pkg that writes it is newer than it, or when another key
/// signed it (`key_stamp` remembers the SHA-256 of
/// the secret key file that did). The serial only grows, as devices refuse an older one.
pub fn refresh(
    pkg: &Path,
    secret: &Path,
    repo: &Path,
    key_stamp: &Path,
    changed: bool,
) -> Result<(), String> {
    let key = sha256_file(secret)?;
    let same_key = std::fs::read_to_string(key_stamp).is_ok_and(|text| text.trim() == key);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let old = std::fs::read_to_string(repo.join("index")).ok();
    let field = |name: &str| -> Option<u64> {
        old.as_deref()?
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let fresh = field("expires").is_some_and(|expires| expires > now + 7 * 24 * 3600)
        && repo.join("index.minisig").is_file();
    // A pkg built since may write the index differently (a field the images' meta has
    // and an older pkg left out), and pkg checks an image's meta against its entry.
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let same_writer = matches!(
        (modified(pkg), modified(&repo.join("index"))),
        (Some(program), Some(index)) if program <= index
    );
    if fresh
        && same_key
        && same_writer
        && !changed
        && old.as_deref().is_some_and(|text| lists_images(repo, text))
    {
        return Ok(());
    }
    let serial = field("serial").map_or(now, |serial| now.max(serial + 1));
    Cmd::new(path_str(pkg)?)
        .args(["repo", "index", path_str(repo)?])
        .args(["--secret-key", path_str(secret)?])
        .args(["--serial", &serial.to_string()])
        .output()?;
    create_dir(key_stamp.parent().expect("in a directory"))?;
    write(key_stamp, format!("{key}\n").as_bytes())
}

/// Publish a system release (DESIGN §11) in the repository `repo` (`<repo>/<arch>/`):
/// `file` copied to `system/BOARD-VERSION`, with `rollout` waves (`10@T,100@T`) in
/// `BOARD-VERSION.rollout` or none, and the index signed again when either changed.
pub fn publish_system(
    pkg: &Path,
    secret: &Path,
    repo: &Path,
    key_stamp: &Path,
    release: (&str, &str),
    file: &Path,
    rollout: Option<&str>,
) -> Result<(), String> {
    let (board, version) = release;
    let dir = repo.join("system");
    create_dir(&dir)?;
    let target = dir.join(format!("{board}-{version}"));
    let mut changed = !target.is_file() || sha256_file(&target)? != sha256_file(file)?;
    if changed {
        crate::util::copy(file, &target)?;
    }
    let waves = dir.join(format!("{board}-{version}.rollout"));
    let old = std::fs::read_to_string(&waves).ok();
    match rollout {
        Some(rollout) if old.as_deref().map(str::trim) != Some(rollout) => {
            write(&waves, format!("{rollout}\n").as_bytes())?;
            changed = true;
        }
        None if old.is_some() => {
            std::fs::remove_file(&waves).map_err(|e| format!("{}: {e}", waves.display()))?;
            changed = true;
        }
        _ => {}
    }
    refresh(pkg, secret, repo, key_stamp, changed)
}

/// Whether an index lists exactly the images and system releases in `repo`, at their
/// sizes.
fn lists_images(repo: &Path, index: &str) -> bool {
    let mut listed = 0;
    let mut systems = 0;
    for line in index.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["system", board, version, size, ..] = words.as_slice() {
            systems += 1;
            let file = repo.join("system").join(format!("{board}-{version}"));
            let size = size.strip_prefix("size=").unwrap_or_default();
            if std::fs::metadata(&file).map_or(true, |m| m.len().to_string() != size) {
                return false;
            }
            continue;
        }
        let ["pkg", name, version, size, ..] = words.as_slice() else {
            continue;
        };
        listed += 1;
        let file = repo.join(format!("{name}-{version}.squashfs"));
        let size = size.strip_prefix("size=").unwrap_or_default();
        if std::fs::metadata(&file).map_or(true, |m| m.len().to_string() != size) {
            return false;
        }
    }
    let images = std::fs::read_dir(repo).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".squashfs"))
            .count()
    });
    let releases = std::fs::read_dir(repo.join("system")).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                !name.ends_with(".rollout") && !name.starts_with('.')
            })
            .count()
    });
    listed == images && systems == releases
}
