//! The one SHA-256 of a file, for pkg and xtask alike, on core's stream hash (the
//! function `Sha256Check` checks downloads with).

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// SHA-256 of everything `reader` gives, read piece by piece.
pub fn sha256_read(mut reader: impl Read) -> io::Result<[u8; 32]> {
    amber_core::hash::sha256_stream(|buffer| reader.read(buffer))
}

/// SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    sha256_read(File::open(path)?)
}
