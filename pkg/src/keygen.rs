//! TODO(owner): being written.

use crate::cli::KeygenArgs;
use crate::error::Error;

pub fn run(_args: &KeygenArgs) -> Result<(), Error> {
    Err(Error::new("keygen: not built yet"))
}
