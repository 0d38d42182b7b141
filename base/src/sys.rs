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

/// Random bytes from the kernel (getrandom(2)), as a number: DHCP transaction ids and
/// DNS query ids. Early in boot the pool may not be initialised yet; then a value from
/// the clocks, which is all an id needs not to repeat.
pub fn random_u64() -> u64 {
    let mut value = 0u64;
    // SAFETY: the buffer is the 8 bytes of `value`; GRND_NONBLOCK never waits.
    let got = unsafe { libc::getrandom((&mut value as *mut u64).cast(), 8, libc::GRND_NONBLOCK) };
    if got != 8 {
        let mut booted = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes only the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut booted) };
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let booted = (booted.tv_sec as u64).wrapping_mul(1_000_000_000) ^ booted.tv_nsec as u64;
        value = since.as_nanos() as u64 ^ booted.rotate_left(32);
    }
    value
}

/// waitpid(2) for `pid`: its status word once it has ended; with `block` false, None
/// while it runs.
pub fn wait_pid(pid: i32, block: bool) -> io::Result<Option<i32>> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: `status` is a valid out pointer for the call's duration.
        match unsafe { libc::waitpid(pid, &mut status, flags) } {
            0 => return Ok(None),
            found if found > 0 => return Ok(Some(status)),
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

/// kill(2).
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes integers and touches no memory.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
