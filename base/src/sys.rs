//! The system calls amber-base makes that std does not wrap: the crate's only `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

/// syncfs(2): flush everything written to the filesystem that holds `file`.
pub fn syncfs(file: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: syncfs only reads the descriptor, which the caller keeps open.
    if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clear the close-on-exec flag of `fd` and give up ownership of it, so it stays open
/// in the program exec(2) starts next.
pub fn keep_open_across_exec(fd: OwnedFd) -> io::Result<()> {
    let fd = fd.into_raw_fd();
    // SAFETY: fcntl on a descriptor this process owns; F_SETFD with 0 only clears its
    // close-on-exec flag.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
