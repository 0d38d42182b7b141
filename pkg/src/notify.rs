//! Telling a mounted FUSE store that the current generation changed, and waiting until
//! it shows the new one, so `pkg add` returns only when the package is visible.

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::error::Error;
use crate::store::Store;

/// Called after every switch of the current generation (and after gc). Without a store
/// mounted on this root there is nobody to tell.
pub fn after_switch(store: &Store, generation: u64) -> Result<(), Error> {
    amber_store::mount::reload(store.root(), generation)?;
    rescan_services();
    Ok(())
}

/// init's control socket on a device.
const INIT_CONTROL: &str = "/run/amber/control";

/// Ask init to read the service directories again, so a package's services start (or
/// stop) now rather than at init's next periodic rescan. Best effort: off a device, or
/// with init busy, the periodic rescan still comes.
fn rescan_services() {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(INIT_CONTROL) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"rescan\n").is_ok() {
        let mut answer = [0u8; 64];
        let _ = stream.read(&mut answer);
    }
}
