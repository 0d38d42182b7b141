//! TODO(owner): being written.

use crate::cli::RepoIndexArgs;
use crate::error::Error;

pub fn run(_args: &RepoIndexArgs) -> Result<(), Error> {
    Err(Error::new("repo_index: not built yet"))
}
