//! Package images on disk: the SquashFS reader over a file, reading `.pkg/meta`, and
//! hashing a whole image.

#![forbid(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use amber_core::index::Entry;
use amber_core::meta::Meta;
use amber_core::squashfs::read::{Archive, Cache, CheckLimits, Inode, Kind};
use amber_core::squashfs::{ReadAt, ReadError};

use crate::error::{Context, Error};

/// The longest `.pkg/meta` accepted.
const MAX_META: u64 = 64 * 1024;

/// SHA-256 of a file, as pkg reports a failure: with the file's name.
pub fn sha256(path: &Path) -> Result<[u8; 32], Error> {
    crate::hash::sha256_file(path).context(path.display())
}

/// An image file as a [`ReadAt`] source: positioned reads, safe from many threads.
pub struct ImageFile {
    file: File,
    length: u64,
}

impl ImageFile {
    pub fn open(path: &Path) -> Result<ImageFile, Error> {
        let file = File::open(path).context(path.display())?;
        let length = file.metadata().context(path.display())?.len();
        Ok(ImageFile { file, length })
    }
}

impl ReadAt for ImageFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.file.read_exact_at(buf, offset).map_err(|_| ReadError)
    }

    fn len(&self) -> u64 {
        self.length
    }
}

/// Open an image file as an archive.
pub fn open(path: &Path) -> Result<Archive<ImageFile>, Error> {
    let source = ImageFile::open(path)?;
    Archive::open(source).map_err(|e| Error::from_args(format_args!("{}: {e}", path.display())))
}

/// Read a whole regular file from an archive, refusing more than `max` bytes.
pub fn read_file<R: ReadAt>(
    archive: &Archive<R>,
    inode: &Inode,
    max: u64,
    cache: &mut Cache,
) -> Result<Vec<u8>, String> {
    if inode.kind != Kind::File {
        return Err("not a regular file".into());
    }
    if inode.size > max {
        return Err(format!("{} bytes, more than the {max} allowed", inode.size));
    }
    let mut bytes = vec![0u8; inode.size as usize];
    let mut done = 0;
    while done < bytes.len() {
        let n = archive
            .read(inode, done as u64, &mut bytes[done..], cache)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("file ends early".into());
        }
        done += n;
    }
    Ok(bytes)
}

/// Read and parse an image's `.pkg/meta`.
pub fn read_meta(path: &Path) -> Result<Meta, Error> {
    let archive = open(path)?;
    meta_of(&archive, path, &mut Cache::new())
}

/// Read and parse the `.pkg/meta` of an opened image.
fn meta_of(archive: &Archive<ImageFile>, path: &Path, cache: &mut Cache) -> Result<Meta, Error> {
    let fail = |e: &dyn std::fmt::Display| {
        Error::from_args(format_args!("{}: .pkg/meta: {e}", path.display()))
    };
    let inode = archive
        .lookup_path(".pkg/meta", cache)
        .map_err(|e| fail(&e))?;
    let bytes = read_file(archive, &inode, MAX_META, cache).map_err(|e| fail(&e))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| fail(&"not UTF-8"))?;
    Meta::parse(text).map_err(|e| fail(&e))
}

/// Accept an image whose bytes already matched its index entry: its `.pkg/meta` must say
/// what the entry promised, and its whole structure must be sound (every directory,
/// inode and block position checked once, data not decompressed), so that the store
/// never meets a malformed image it has installed.
///
/// `cache` may have served other images (it forgets them): a caller checking many
/// images passes the same one, since fresh block buffers are cleared and faulted in
/// for every image (with musl's allocator, mapped and unmapped too), which cost the
/// device binary more than the checks themselves.
pub fn accept(path: &Path, entry: &Entry, arch: &str, cache: &mut Cache) -> Result<Meta, Error> {
    // One archive and one cache for both checks: the walk starts from the directories
    // and inodes the meta lookup has just decompressed.
    let archive = open(path)?;
    let meta = meta_of(&archive, path, cache)?;
    entry
        .check_meta(arch, &meta)
        .map_err(|e| Error::from_args(format_args!("{e}")))?;
    let limits = CheckLimits {
        read_data: false,
        ..CheckLimits::default()
    };
    archive
        .check(cache, &limits)
        .map_err(|e| Error::from_args(format_args!("malformed image: {e}")))?;
    Ok(meta)
}
