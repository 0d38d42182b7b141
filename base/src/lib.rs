//! amber-base: what the package manager (amber-pkg), the FUSE store (amber-store) and
//! init (amber-boot) share, and nothing else.
//!
//! - [`store`]: the store directory's layout, the only code that knows its paths;
//! - [`dns`]: host names to addresses (the stub resolver), and the DNS exchange the
//!   device's forwarder shares;
//! - [`durable`]: writes that survive a power cut (temp file, fsync, rename, fsync dir);
//! - [`lock`]: the store lock held by the one command that may write;
//! - [`image`]: opening a package image;
//! - [`hash`]: the one SHA-256 of a file;
//! - [`error`]: the one-line error type and its exit codes;
//! - [`json`]: the writer behind every command's `--json`;
//! - [`stdout`]: standard output where a closed reader is the normal end;
//! - [`failpoint`]: the crash tests' kill points;
//! - [`process`]: starting programs (fork and exec) and waiting for them.
//!
//! Every module but `sys` and `process` forbids `unsafe`; `sys` holds the system calls
//! std lacks, `process` the steps between fork and exec.

pub mod dns;
pub mod durable;
pub mod error;
pub mod failpoint;
pub mod hash;
pub mod image;
pub mod json;
pub mod lock;
pub mod process;
pub mod stdout;
pub mod store;
mod sys;

pub use sys::random_u64;
