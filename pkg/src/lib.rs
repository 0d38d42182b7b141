//! amber-pkg: the package manager as a library, so the device binary can call it.

pub mod cli;
pub mod error;
#[cfg(feature = "host")]
pub mod keygen;
#[cfg(feature = "host")]
pub mod pack;
#[cfg(feature = "host")]
pub mod repo_index;
