//! The system calls pkg makes that std does not wrap (all of them for `pkg run`'s
//! namespace): the crate's only `unsafe`.

use std::ffi::CStr;
use std::io;

fn check(status: i32) -> io::Result<()> {
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A close-on-exec descriptor that only names the directory `path` (O_PATH), for a
/// bind mount later through `/proc/self/fd/N`.
pub fn open_path_dir(path: &CStr) -> io::Result<i32> {
    // SAFETY: `path` is a valid NUL-terminated string for the call's duration.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The effective user id, the real user id and the real group id.
pub fn ids() -> (u32, u32, u32) {
    // SAFETY: geteuid, getuid and getgid have no preconditions and touch no memory.
    unsafe { (libc::geteuid(), libc::getuid(), libc::getgid()) }
}

/// Enter a new mount namespace, and with `user` a new user namespace too. The caller
/// must have no other thread running, as a new user namespace requires.
pub fn unshare(user: bool) -> io::Result<()> {
    let flags = if user {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    } else {
        libc::CLONE_NEWNS
    };
    // SAFETY: unshare takes no pointers.
    check(unsafe { libc::unshare(flags) })
}

/// Make every mount of this namespace private, so mounts made here do not propagate
/// back out.
pub fn make_mounts_private() -> io::Result<()> {
    // SAFETY: mount with a static NUL-terminated path and null pointers for the rest.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
}

/// Mount a tmpfs named `amber-run` (mode 0755, nosuid, nodev) on `target`.
pub fn mount_tmpfs(target: &CStr) -> io::Result<()> {
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    check(unsafe {
        libc::mount(
            c"amber-run".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755".as_ptr().cast(),
        )
    })
}

/// Bind `source` onto `target`, with every mount below it.
pub fn bind(source: &CStr, target: &CStr) -> io::Result<()> {
    // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    })
}
