//! amber-pkg: the package manager as a library, so the device binary can call it.

pub mod admin;
pub mod cli;
pub mod context;
pub mod download;
pub mod durable;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod image;
pub mod install;
pub mod json;
pub mod lock;
pub mod maintain;
pub mod notify;
pub mod query;
pub mod repo;
pub mod store;

#[cfg(feature = "host")]
pub mod keygen;
#[cfg(feature = "host")]
pub mod pack;
#[cfg(feature = "host")]
pub mod repo_index;
