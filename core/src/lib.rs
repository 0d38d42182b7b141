//! amber-core: the formats and algorithms the device and the host share; it does no I/O.
//!
//! Everything here is `no_std` + `alloc` so the same code runs in the device binary,
//! on the host, and checks on a bare-metal target. Functions take bytes (or a small
//! [`squashfs::ReadAt`] trait) and return values; callers own files, sockets and clocks.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod base64;
pub mod blake2b;
pub mod generation;
pub mod hash;
pub mod index;
pub mod line;
pub mod meta;
pub mod minisign;
pub mod random;
pub mod solve;
pub mod sort;
pub mod squashfs;
pub mod system;
pub mod version;
