//! The FUSE kernel protocol, as much of it as a read-only store speaks (Linux's
//! `include/uapi/linux/fuse.h`, protocol 7.31): the INIT handshake, one loop per
//! thread reading requests from its own clone of the connection, the replies, and the
//! two cache invalidations a reload sends.
//!
//! A general FUSE library (fuser, which the store used before) brings what a
//! read-only filesystem never needs: write and lock operations, mount helpers, a
//! `fusermount -u` fallback that links std's `Command`, a 16 MiB buffer per thread,
//! logging and its own dependencies, about 21 KB of the device binary. Requests here
//! are answered in the thread that read them, from one buffer of a request's largest
//! size (a 128 KiB read) per thread; nothing is allocated per request but the
//! replies of directory listings.
//!
//! Every operation the store does not implement gets ENOSYS, which makes the kernel
//! stop asking for it (OPEN, OPENDIR, FLUSH, xattrs) or fail the caller's call; the
//! mount is read-only, so no write operation ever arrives.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

/// The protocol version spoken: 7.31 has every flag used below (FUSE_MAX_PAGES 7.28,
/// FUSE_CACHE_SYMLINKS 7.28, FUSE_NO_OPENDIR_SUPPORT 7.29) and the structure sizes
/// every later kernel still accepts.
const MAJOR: u32 = 7;
const MINOR: u32 = 31;

const HEADER_IN: usize = 40;
const HEADER_OUT: usize = 16;

// Operation codes.
const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const READLINK: u32 = 5;
const OPEN: u32 = 14;
const READ: u32 = 15;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const INTERRUPT: u32 = 36;
const DESTROY: u32 = 38;
const BATCH_FORGET: u32 = 42;
const READDIRPLUS: u32 = 44;

// INIT flags.
const ASYNC_READ: u32 = 1 << 0;
const BIG_WRITES: u32 = 1 << 5;
const DO_READDIRPLUS: u32 = 1 << 13;
const READDIRPLUS_AUTO: u32 = 1 << 14;
const NO_OPEN_SUPPORT: u32 = 1 << 17;
const PARALLEL_DIROPS: u32 = 1 << 18;
const MAX_PAGES: u32 = 1 << 22;
const CACHE_SYMLINKS: u32 = 1 << 23;
const NO_OPENDIR_SUPPORT: u32 = 1 << 24;

// OPEN reply flags: keep the page cache across opens, and cache directory listings.
const FOPEN_KEEP_CACHE: u32 = 1 << 1;
const FOPEN_CACHE_DIR: u32 = 1 << 3;

// Notification codes.
const NOTIFY_INVAL_INODE: i32 = 2;
const NOTIFY_INVAL_ENTRY: i32 = 3;

/// An error number a request is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const EPROTO: Errno = Errno(libc::EPROTO);
}

/// The type of a file, as its mode's format bits say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    NamedPipe,
    CharDevice,
    BlockDevice,
    Directory,
    RegularFile,
    Symlink,
    Socket,
}

impl FileType {
    /// The `S_IF*` bits; a directory entry's type is these shifted down by 12.
    fn mode(self) -> u32 {
        match self {
            FileType::NamedPipe => libc::S_IFIFO,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::BlockDevice => libc::S_IFBLK,
            FileType::Directory => libc::S_IFDIR,
            FileType::RegularFile => libc::S_IFREG,
            FileType::Symlink => libc::S_IFLNK,
            FileType::Socket => libc::S_IFSOCK,
        }
    }
}

/// What a lookup, a getattr or a readdirplus entry tells the kernel of a file. The
/// access, change and modification times are all `mtime`: images are immutable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileAttr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    pub kind: FileType,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

impl FileAttr {
    /// A directory owned by root, mode 0755, dated at the epoch: the store root's, an
    /// exchange directory's, and the placeholder of an entry listed without attributes.
    pub fn directory(ino: u64) -> FileAttr {
        FileAttr {
            ino,
            size: 0,
            blocks: 0,
            mtime: 0,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
        }
    }
}

/// Takes one directory entry: its inode, the offset after it, its type, its name and,
/// for readdirplus, its attributes; returns true once the reply is full.
pub type AddEntry<'a> = dyn FnMut(u64, u64, FileType, &[u8], Option<FileAttr>) -> bool + 'a;

/// The operations of a read-only filesystem; the session turns their results into
/// replies. All of them may run in several threads at once.
pub trait Filesystem: Send + Sync {
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<FileAttr, Errno>;
    fn getattr(&self, ino: u64) -> Result<FileAttr, Errno>;
    fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno>;
    /// Read up to `size` bytes at `offset` and give them to `deliver` once.
    fn read(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Errno>;
    /// List a directory from `offset` until `add` says the reply is full.
    fn readdir(&self, ino: u64, offset: u64, add: &mut AddEntry, plus: bool) -> Result<(), Errno>;
    /// The bytes the filesystem's content takes, for statfs.
    fn used_bytes(&self) -> u64;
}

/// A FUSE connection after its INIT handshake.
pub struct Session {
    device: Arc<File>,
    /// The kernel opens files, and directories, without asking when told ENOSYS once
    /// (FUSE_NO_OPEN_SUPPORT, FUSE_NO_OPENDIR_SUPPORT): no OPEN, FLUSH or RELEASE round
    /// trip per file.
    no_open: bool,
    no_opendir: bool,
    /// Read buffer size: the largest request (a READ header, as WRITE's would be, with
    /// `max_write` bytes) with room to spare.
    buffer: usize,
    /// Seconds the kernel may cache names and attributes.
    ttl: u64,
}

/// The settings a filesystem asks for at INIT.
pub struct Settings {
    /// The most readahead; the kernel's offer if that is smaller.
    pub max_readahead: u32,
    /// The largest read (and write) request.
    pub max_write: u32,
    /// Seconds the kernel may cache names and attributes.
    pub ttl: u64,
}

impl Session {
    /// Answer the kernel's INIT on `device`, a `/dev/fuse` connection just mounted.
    pub fn handshake(device: File, settings: &Settings) -> io::Result<Session> {
        let device = Arc::new(device);
        let mut buffer = vec![0u8; 8192 + HEADER_IN];
        loop {
            let n = receive(&device, &mut buffer)?
                .ok_or_else(|| io::Error::other("FUSE device disconnected during handshake"))?;
            let request = Request::parse(&buffer[..n])?;
            if request.opcode != INIT {
                reply_error(&device, request.unique, Errno::EIO);
                return Err(io::Error::other("FUSE request before INIT"));
            }
            let body = request.body;
            let (major, minor) = (u32_at(body, 0), u32_at(body, 4));
            let mut out = Vec::with_capacity(64);
            if major > MAJOR {
                // Say which major version we speak; the kernel asks again in it.
                put_u32s(&mut out, &[MAJOR, MINOR]);
                out.resize(64, 0);
                reply(&device, request.unique, &[&out]);
                continue;
            }
            if major < MAJOR || minor < 6 {
                reply_error(&device, request.unique, Errno::EPROTO);
                return Err(io::Error::other(format!(
                    "unsupported FUSE protocol {major}.{minor}"
                )));
            }
            let offered_readahead = u32_at(body, 8);
            let offered = u32_at(body, 12);
            let max_readahead = settings.max_readahead.min(offered_readahead);
            let wanted = ASYNC_READ
                | BIG_WRITES
                | MAX_PAGES
                | CACHE_SYMLINKS
                | DO_READDIRPLUS
                | READDIRPLUS_AUTO
                | PARALLEL_DIROPS;
            let page = crate::sys::page_size();
            let max_pages = (settings.max_write.max(max_readahead) - 1) / page + 1;
            put_u32s(&mut out, &[MAJOR, MINOR, max_readahead, wanted & offered]);
            // max_background 16, congestion_threshold 12 (the kernel's own defaults).
            put_u32s(&mut out, &[16 | (12 << 16), settings.max_write, 1]);
            // max_pages, then map_alignment, flags2, max_stack_depth, unused: zero.
            out.extend_from_slice(&(max_pages.min(u32::from(u16::MAX)) as u16).to_ne_bytes());
            out.resize(64, 0);
            let size = match minor {
                0..5 => 8,
                5..23 => 24,
                _ => 64,
            };
            reply(&device, request.unique, &[&out[..size]]);
            return Ok(Session {
                device,
                no_open: offered & NO_OPEN_SUPPORT != 0,
                no_opendir: offered & NO_OPENDIR_SUPPORT != 0,
                buffer: settings.max_write as usize + 4096,
                ttl: settings.ttl,
            });
        }
    }

    /// What sends the connection's cache invalidations.
    pub fn notifier(&self) -> Notifier {
        Notifier(Arc::clone(&self.device))
    }

    /// Serve requests in `threads` threads, each reading its own clone of the
    /// connection (FUSE_DEV_IOC_CLONE) so the kernel hands requests to whichever is
    /// idle, until the filesystem is unmounted.
    pub fn run(self, threads: usize, fs: Arc<dyn Filesystem>) -> io::Result<()> {
        let mut devices = vec![Arc::clone(&self.device)];
        for _ in 1..threads.max(1) {
            devices.push(Arc::new(crate::sys::clone_fuse(&self.device)?));
        }
        let session = Arc::new(self);
        let mut workers = Vec::with_capacity(devices.len());
        for (index, device) in devices.into_iter().enumerate() {
            let (session, fs) = (Arc::clone(&session), Arc::clone(&fs));
            workers.push(
                std::thread::Builder::new()
                    .name(format!("fuse-{index}"))
                    .spawn(move || session.serve(&device, &*fs))?,
            );
        }
        let mut result = Ok(());
        for worker in workers {
            let ended = worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a FUSE thread panicked")));
            if result.is_ok() {
                result = ended;
            }
        }
        result
    }

    /// One thread's loop: read a request, answer it, until the connection ends.
    fn serve(&self, device: &File, fs: &dyn Filesystem) -> io::Result<()> {
        let mut buffer = vec![0u8; self.buffer];
        let mut out = Vec::new();
        while let Some(n) = receive(device, &mut buffer)? {
            let request = Request::parse(&buffer[..n])?;
            if request.opcode == DESTROY {
                reply(device, request.unique, &[]);
                return Ok(());
            }
            out.clear();
            match self.answer(&request, fs, device, &mut out) {
                Ok(Answer::Data) => reply(device, request.unique, &[&out]),
                Ok(Answer::Sent | Answer::Nothing) => {}
                Err(errno) => reply_error(device, request.unique, errno),
            }
        }
        Ok(())
    }

    /// Answer one request into `out`, or send the answer itself.
    fn answer(
        &self,
        request: &Request,
        fs: &dyn Filesystem,
        device: &File,
        out: &mut Vec<u8>,
    ) -> Result<Answer, Errno> {
        let (ino, body) = (request.nodeid, request.body);
        match request.opcode {
            LOOKUP => {
                let name = body.split(|&b| b == 0).next().unwrap_or_default();
                put_entry(out, &fs.lookup(ino, name)?, self.ttl);
            }
            GETATTR => {
                put_u64s(out, &[self.ttl, 0]);
                put_attr(out, &fs.getattr(ino)?);
            }
            READLINK => out.extend_from_slice(&fs.readlink(ino)?),
            OPEN => {
                if u32_at(body, 0) as i32 & libc::O_ACCMODE != libc::O_RDONLY {
                    return Err(Errno::EROFS);
                }
                if self.no_open {
                    // The mount is read-only, so the kernel refuses writers itself.
                    return Err(Errno::ENOSYS);
                }
                match fs.getattr(ino)?.kind {
                    FileType::RegularFile => put_u64s(out, &[0, u64::from(FOPEN_KEEP_CACHE)]),
                    _ => return Err(Errno::EISDIR),
                }
            }
            OPENDIR => {
                if self.no_opendir {
                    return Err(Errno::ENOSYS);
                }
                put_u64s(out, &[0, u64::from(FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE)]);
            }
            READ => {
                let (offset, size) = (u64_at(body, 8), u32_at(body, 16));
                // Decompressed straight into the filesystem's buffer and sent from it.
                fs.read(ino, offset, size, &mut |data| {
                    reply(device, request.unique, &[data])
                })?;
                return Ok(Answer::Sent);
            }
            READDIR | READDIRPLUS => {
                let plus = request.opcode == READDIRPLUS;
                let (offset, size) = (u64_at(body, 8), u32_at(body, 16) as usize);
                let ttl = self.ttl;
                fs.readdir(
                    ino,
                    offset,
                    &mut |ino, next, kind, name, attr| {
                        let entry = 24 + name.len();
                        let padded = (entry + 7) & !7;
                        let needed = padded + if plus { 128 } else { 0 };
                        if out.len() + needed > size {
                            return true;
                        }
                        if plus {
                            // Entries listed without attributes ("." and "..", the
                            // image roots) get placeholders the kernel must not cache.
                            let (attr, ttl) = match attr {
                                Some(attr) => (attr, ttl),
                                None => (
                                    FileAttr {
                                        kind,
                                        ..FileAttr::directory(ino)
                                    },
                                    0,
                                ),
                            };
                            put_entry(out, &attr, ttl);
                        }
                        put_u64s(out, &[ino, next]);
                        put_u32s(out, &[name.len() as u32, kind.mode() >> 12]);
                        out.extend_from_slice(name);
                        out.resize(out.len() + padded - entry, 0);
                        false
                    },
                    plus,
                )?;
            }
            STATFS => {
                let blocks = fs.used_bytes().div_ceil(4096);
                put_u64s(out, &[blocks, 0, 0, 0, 0]);
                // bsize, namelen, frsize, then padding and spare words.
                put_u32s(out, &[4096, 255, 4096]);
                out.resize(80, 0);
            }
            RELEASE | RELEASEDIR => {}
            FORGET | BATCH_FORGET | INTERRUPT => return Ok(Answer::Nothing),
            INIT => return Err(Errno::EIO),
            // FLUSH (nothing to write back: the kernel stops sending it), xattrs,
            // access (the kernel checks permissions: default_permissions), and every
            // write operation on the read-only mount.
            _ => return Err(Errno::ENOSYS),
        }
        Ok(Answer::Data)
    }
}

enum Answer {
    /// `out` holds the reply.
    Data,
    /// The reply went out already.
    Sent,
    /// The operation has no reply.
    Nothing,
}

/// Sends cache invalidations on the connection.
#[derive(Clone)]
pub struct Notifier(Arc<File>);

impl Notifier {
    /// Forget the cached entry `name` in directory `parent`. Fails (ENOENT) when the
    /// kernel had nothing cached under that name.
    pub fn inval_entry(&self, parent: u64, name: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(16 + name.len() + 1);
        put_u64s(&mut out, &[parent]);
        put_u32s(&mut out, &[name.len() as u32, 0]);
        out.extend_from_slice(name);
        out.push(0);
        send(&self.0, NOTIFY_INVAL_ENTRY, 0, &[&out])
    }

    /// Forget the cached attributes and data of `ino` (all of its data: offset 0,
    /// length 0).
    pub fn inval_inode(&self, ino: u64) -> io::Result<()> {
        let mut out = Vec::with_capacity(24);
        put_u64s(&mut out, &[ino, 0, 0]);
        send(&self.0, NOTIFY_INVAL_INODE, 0, &[&out])
    }
}

/// A request as read from the connection.
struct Request<'a> {
    opcode: u32,
    unique: u64,
    nodeid: u64,
    body: &'a [u8],
}

impl<'a> Request<'a> {
    fn parse(bytes: &'a [u8]) -> io::Result<Request<'a>> {
        if bytes.len() < HEADER_IN || u32_at(bytes, 0) as usize != bytes.len() {
            return Err(io::Error::other("malformed FUSE request"));
        }
        Ok(Request {
            opcode: u32_at(bytes, 4),
            unique: u64_at(bytes, 8),
            nodeid: u64_at(bytes, 16),
            body: &bytes[HEADER_IN..],
        })
    }
}

/// Read one request; `None` once the filesystem is unmounted (ENODEV). An interrupted
/// request (ENOENT), a signal (EINTR) or nothing yet (EAGAIN) read again.
fn receive(device: &File, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match (&*device).read(buffer) {
            Ok(n) => return Ok(Some(n)),
            Err(error) => match error.raw_os_error() {
                Some(libc::ENOENT | libc::EINTR | libc::EAGAIN) => continue,
                Some(libc::ENODEV) => return Ok(None),
                _ => return Err(error),
            },
        }
    }
}

fn reply(device: &File, unique: u64, parts: &[&[u8]]) {
    // An error means the request was interrupted meanwhile: nobody waits for it.
    let _ = send(device, 0, unique, parts);
}

fn reply_error(device: &File, unique: u64, errno: Errno) {
    let _ = send(device, -errno.0, unique, &[]);
}

/// Write one message, header and parts in one writev: the kernel takes a message
/// whole or not at all.
fn send(device: &File, error: i32, unique: u64, parts: &[&[u8]]) -> io::Result<()> {
    let length = HEADER_OUT + parts.iter().map(|part| part.len()).sum::<usize>();
    let mut header = [0u8; HEADER_OUT];
    header[..4].copy_from_slice(&(length as u32).to_ne_bytes());
    header[4..8].copy_from_slice(&error.to_ne_bytes());
    header[8..].copy_from_slice(&unique.to_ne_bytes());
    let mut slices = [IoSlice::new(&header), IoSlice::new(&[]), IoSlice::new(&[])];
    for (slot, part) in slices[1..].iter_mut().zip(parts) {
        *slot = IoSlice::new(part);
    }
    let written = (&*device).write_vectored(&slices[..1 + parts.len().min(2)])?;
    if written != length {
        return Err(io::Error::other("short write to the FUSE device"));
    }
    Ok(())
}

/// fuse_entry_out: node id, generation, entry and attribute validity, then the
/// attributes.
fn put_entry(out: &mut Vec<u8>, attr: &FileAttr, ttl: u64) {
    put_u64s(out, &[attr.ino, 0, ttl, ttl, 0]);
    put_attr(out, attr);
}

/// fuse_attr, 88 bytes.
fn put_attr(out: &mut Vec<u8>, attr: &FileAttr) {
    let time = attr.mtime;
    put_u64s(out, &[attr.ino, attr.size, attr.blocks, time, time, time]);
    put_u32s(
        out,
        &[
            0,
            0,
            0,
            attr.kind.mode() | u32::from(attr.perm),
            attr.nlink,
            attr.uid,
            attr.gid,
            attr.rdev,
            attr.blksize,
            0,
        ],
    );
}

fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    for value in values {
        out.extend_from_slice(&value.to_ne_bytes());
    }
}

fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    for value in values {
        out.extend_from_slice(&value.to_ne_bytes());
    }
}

/// The field at `at`, or 0 past the end (a shorter structure of an older protocol).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map_or(0, |b| u32::from_ne_bytes(b.try_into().unwrap_or_default()))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr() -> FileAttr {
        FileAttr {
            ino: 7,
            size: 1000,
            blocks: 2,
            mtime: 1_700_000_000,
            kind: FileType::RegularFile,
            perm: 0o644,
            nlink: 1,
            uid: 3,
            gid: 4,
            rdev: 0,
            blksize: 131072,
        }
    }

    #[test]
    fn attributes_take_the_kernels_layout() {
        let mut out = Vec::new();
        put_entry(&mut out, &attr(), 86400);
        // fuse_entry_out is 40 bytes before its 88-byte fuse_attr.
        assert_eq!(out.len(), 128);
        assert_eq!(u64_at(&out, 0), 7);
        assert_eq!(u64_at(&out, 16), 86400);
        assert_eq!(u64_at(&out, 40), 7);
        assert_eq!(u64_at(&out, 48), 1000);
        assert_eq!(u64_at(&out, 80), 1_700_000_000);
        assert_eq!(u32_at(&out, 40 + 60), libc::S_IFREG | 0o644);
        assert_eq!(u32_at(&out, 40 + 68), 3);
        assert_eq!(u32_at(&out, 40 + 80), 131072);
    }

    #[test]
    fn a_request_must_say_its_own_length() {
        let mut bytes = vec![0u8; 48];
        bytes[..4].copy_from_slice(&48u32.to_ne_bytes());
        bytes[4..8].copy_from_slice(&LOOKUP.to_ne_bytes());
        bytes[8..16].copy_from_slice(&9u64.to_ne_bytes());
        bytes[16..24].copy_from_slice(&1u64.to_ne_bytes());
        let request = Request::parse(&bytes).unwrap();
        assert_eq!(
            (request.opcode, request.unique, request.nodeid),
            (LOOKUP, 9, 1)
        );
        assert_eq!(request.body.len(), 8);
        assert!(Request::parse(&bytes[..47]).is_err());
        assert!(Request::parse(&bytes[..20]).is_err());
    }

    #[test]
    fn short_fields_read_as_zero() {
        assert_eq!(u32_at(&[1, 0, 0], 0), 0);
        assert_eq!(u64_at(&[1, 0, 0, 0, 0, 0, 0, 0], 0), 1);
    }
}
