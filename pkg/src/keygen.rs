//! `pkg keygen`: make a minisign key pair that `minisign -S` and `minisign -V` accept.
//!
//! The secret key is written unencrypted (as `minisign -G -W` does) with mode 0600, since
//! repositories are signed by scripts that cannot type a password.

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use amber_core::minisign::KeyPair;

use crate::args::KeygenArgs;
use crate::context::Report;
use crate::error::{Context, Error};

/// Where the randomness comes from; the kernel's pool never blocks once seeded.
const RANDOM_SOURCE: &str = "/dev/urandom";

pub fn run(args: &KeygenArgs) -> Result<Report, Error> {
    if args.secret_key == args.public_key {
        return Err(Error::usage(
            "keygen: --secret-key and --public-key must be different files",
        ));
    }
    // Check both paths before writing either, so a refusal leaves nothing behind.
    if !args.force {
        for path in [&args.secret_key, &args.public_key] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(Error::from_args(format_args!(
                    "{}: already exists (use --force to overwrite)",
                    path.display()
                )));
            }
        }
    }
    let pair = generate()?;
    write_key(
        &args.secret_key,
        pair.secret.to_file_string().as_bytes(),
        0o600,
        args.force,
    )?;
    write_key(
        &args.public_key,
        pair.public.to_file_string().as_bytes(),
        0o644,
        args.force,
    )?;
    let line = format!(
        "public key {} (key id {})\n",
        args.public_key.display(),
        pair.public.key_id_hex()
    );
    crate::stdout::write(&line).context("stdout")?;
    Ok(Report::empty())
}

/// A new key pair from 32 random bytes of seed and 8 of key id.
fn generate() -> Result<KeyPair, Error> {
    let mut random = [0u8; 40];
    File::open(RANDOM_SOURCE)
        .and_then(|mut source| source.read_exact(&mut random))
        .context(RANDOM_SOURCE)?;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&random[..32]);
    let mut key_id = [0u8; 8];
    key_id.copy_from_slice(&random[32..]);
    random.fill(0);
    // Only an all-zero seed is refused, which a working random source never gives.
    let pair = KeyPair::from_seed(seed, key_id).context(RANDOM_SOURCE);
    seed.fill(0);
    pair
}

/// Write a key file whole or not at all: a temporary file with the final mode, fsynced,
/// then linked (no overwrite) or renamed (with `--force`) into place, then the directory
/// fsynced. Linking fails if the file appeared meanwhile, so nothing is ever clobbered
/// without `--force`.
fn write_key(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), Error> {
    let temp = temp_path(path);
    let result = write_temp(&temp, contents, mode).and_then(|()| {
        if force {
            fs::rename(&temp, path).context(path.display())
        } else {
            let linked = fs::hard_link(&temp, path).map_err(|error| {
                if error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::from_args(format_args!(
                        "{}: already exists (use --force to overwrite)",
                        path.display()
                    ))
                } else {
                    Error::from_args(format_args!("{}: {error}", path.display()))
                }
            });
            let _ = fs::remove_file(&temp);
            linked
        }
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .context(dir.display())
}

fn write_temp(temp: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temp)
        .context(temp.display())?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .context(temp.display())
}

/// A temporary name next to `path`, so the final rename or link stays in one filesystem.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_ne!(first.public, second.public);
        assert_eq!(first.secret.public_key(), first.public);
    }
}
