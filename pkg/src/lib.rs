//! amber-pkg: the package manager as a library, so the device binary can call it.

pub mod admin;
pub mod args;
pub mod cli;
pub mod context;
pub mod download;
pub mod durable;
pub mod error;
pub mod exchange;
pub mod failpoint;
pub mod http;
pub mod image;
pub mod install;
pub mod json;
pub mod lock;
pub mod maintain;
pub mod mount;
pub mod notify;
mod parser;
pub mod query;
pub mod repo;
pub mod run;
pub mod stdout;
pub mod store;
pub mod storefs;
pub mod system;

#[cfg(feature = "host")]
pub mod keygen;
#[cfg(feature = "host")]
pub mod pack;
#[cfg(feature = "host")]
pub mod repo_index;
