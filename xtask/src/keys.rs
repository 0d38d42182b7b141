//! The development signing key: made on first use under `target/keys/`, never in git.
//!
//! Images trust its public key (`/etc/amber/keys/dev.pub`), and repositories built
//! for them (`cargo xtask recipes`) are signed with its secret key. The key has no
//! password, so it is for development only; a real deployment puts its own public
//! keys into the image.

use crate::cmd::Cmd;
use crate::util::{create_dir, path_str, step};
use std::path::PathBuf;

pub struct KeyPair {
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// The development key pair, made now if it does not exist yet.
pub fn development() -> Result<KeyPair, String> {
    let directory = PathBuf::from("target/keys");
    let pair = KeyPair {
        secret: directory.join("dev.key"),
        public: directory.join("dev.pub"),
    };
    if pair.secret.is_file() && pair.public.is_file() {
        return Ok(pair);
    }
    step("making the development signing key in target/keys/");
    create_dir(&directory)?;
    // Write under temporary names and rename, so an interrupted run leaves no half key.
    let secret = directory.join("dev.key.new");
    let public = directory.join("dev.pub.new");
    for stale in [&secret, &public] {
        let _ = std::fs::remove_file(stale);
    }
    // `pkg keygen` makes minisign-compatible keys too; minisign itself is used here so
    // images can be built before the host pkg is. -W: no password.
    Cmd::new("minisign")
        .args([
            "-G",
            "-W",
            "-p",
            path_str(&public)?,
            "-s",
            path_str(&secret)?,
        ])
        .run()?;
    for (from, to) in [(&secret, &pair.secret), (&public, &pair.public)] {
        std::fs::rename(from, to)
            .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))?;
    }
    Ok(pair)
}
