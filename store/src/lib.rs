//! amber-store: the FUSE package store (DESIGN §5).
//!
//! It shows every package of the current generation read-only at `/ro/<id>/` and
//! merges them into the exchange directories `/ro/bin`, `/ro/lib`, ... without
//! unpacking a file. What it offers:
//!
//! - [`mount`]: `pkg store mount`, the daemon with its control socket, and the client
//!   side pkg uses after every switch ([`mount::reload`]) and `pkg run` uses to find
//!   the mount ([`mount::mountpoint`]);
//! - [`exchange`]: the exchange-directory merge and its conflict rule, which `pkg info
//!   --conflicts` and `pkg run` apply too;
//! - [`Options`]: the daemon's limits.
//!
//! It reads the store directory through amber-base's layout and never writes it.
//! Every module but `sys` forbids `unsafe`; `sys` holds the system calls std lacks.

pub mod exchange;
mod fuse;
pub mod mount;
mod storefs;
mod sys;

pub use storefs::Options;

use amber_base::{error, image, store};
