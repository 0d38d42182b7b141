//! TODO(owner): being written.

use crate::cli::PackArgs;
use crate::error::Error;

pub fn run(_args: &PackArgs) -> Result<(), Error> {
    Err(Error::new("pack: not built yet"))
}
