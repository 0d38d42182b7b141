//! Telling a mounted FUSE store that the current generation changed, and waiting until
//! it shows the new one, so `pkg add` returns only when the package is visible.

use std::time::Duration;

use crate::error::Error;
use crate::store::Store;

/// Called after every switch of the current generation (and after gc). Without a store
/// mounted on this root there is nobody to tell.
pub fn after_switch(store: &Store, generation: u64) -> Result<(), Error> {
    match crate::mount::ask(store.root(), "reload", Duration::from_secs(60))? {
        None => Ok(()),
        Some(answer) if answer == format!("ok {generation}") => Ok(()),
        Some(answer) => Err(Error::new(format!(
            "generation {generation} is current, but the mounted store answered {answer:?}"
        ))),
    }
}
