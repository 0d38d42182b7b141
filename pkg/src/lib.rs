//! amber-pkg: the package manager, as a library so the device binary can call it.
//!
//! What it offers is [`cli::main`], the whole `pkg` command (the device binary and the
//! host's `pkg` both run it), and the two facts the rest of the system shares with it:
//! how many downloads run at once ([`PARALLEL`]) and where the last trusted time is
//! kept ([`CLOCK_FILE`], [`stored_time`]). Everything else is the crate's own. What pkg
//! shares with the FUSE store (the store layout, durable writes, the error type) is in
//! amber-base; the store itself is amber-store, told of each switch through
//! `amber_store::mount::reload`.
//!
//! Every module but `sys` forbids `unsafe`; `sys` holds the system calls std lacks.

pub mod cli;

mod admin;
// The device build parses the host-only commands too, to refuse them with one line; it
// never reads their arguments.
#[cfg_attr(not(feature = "host"), allow(dead_code))]
mod args;
mod context;
mod download;
mod http;
mod install;
mod maintain;
mod notify;
mod parser;
mod query;
mod repo;
mod run;
mod sys;
mod system;

#[cfg(feature = "host")]
mod keygen;
#[cfg(feature = "host")]
mod pack;
#[cfg(feature = "host")]
mod repo_index;

pub use download::PARALLEL;
pub use repo::{stored_time, CLOCK_FILE};

// What pkg shares with the store, under the names the modules use.
use amber_base::{durable, error, failpoint, image, json, stdout, store};
use amber_store::{exchange, mount};
