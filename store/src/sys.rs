//! The system calls the store makes that std does not wrap: the crate's only `unsafe`.

use amber_base::process::Command;
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Start `command`'s process in a new session, away from the caller's terminal.
pub fn in_new_session(command: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory of this process.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// glibc's allocator tunables for a long-running daemon: one arena and a fixed mmap
/// threshold. Call before any other thread starts. The device's musl has neither knob.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Give the memory freed by a reload (listings of new images, the oldest tree) back to
/// the system. glibc keeps freed memory inside its heap until asked; musl, the device's
/// allocator, returns it by itself.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// SIGTERM, SIGINT and SIGHUP, blocked for this thread and every thread it starts, so
/// that only a thread waiting in [`StopSignals::wait`] receives them.
pub struct StopSignals(libc::sigset_t);

impl StopSignals {
    /// Block the stop signals; call before any other thread starts.
    pub fn block() -> StopSignals {
        // SAFETY: sigemptyset initializes the zeroed set; sigaddset takes valid signals;
        // pthread_sigmask accepts a null pointer for the old set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            StopSignals(set)
        }
    }

    /// Wait until one of them arrives.
    pub fn wait(&self) {
        let mut signal = 0;
        // SAFETY: the set is initialized and `signal` a valid out pointer.
        unsafe { libc::sigwait(&self.0, &mut signal) };
    }
}

/// Mount the FUSE connection `device` at `mountpoint`: type `fuse`, source `amber`,
/// read-only, nodev, nosuid, checked by the kernel's permission rules, open to all.
pub fn mount_fuse(device: &impl AsRawFd, mountpoint: &Path, root_mode: u32) -> io::Result<()> {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let options = format!(
        "fd={},rootmode={root_mode:o},user_id={uid},group_id={gid},default_permissions,allow_other",
        device.as_raw_fd()
    );
    let path = c_path(mountpoint)?;
    let options = CString::new(options).map_err(io::Error::other)?;
    let flags = libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOSUID;
    // SAFETY: every pointer is a valid NUL-terminated string for the call's duration.
    let status = unsafe {
        libc::mount(
            c"amber".as_ptr(),
            path.as_ptr(),
            c"fuse".as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// umount2(2): a plain unmount, which fails while the mount is busy, or with `detach`
/// a lazy one (MNT_DETACH), which always succeeds on a mount point.
pub fn unmount(mountpoint: &Path, detach: bool) -> io::Result<()> {
    let path = c_path(mountpoint)?;
    let flags = if detach { libc::MNT_DETACH } else { 0 };
    // SAFETY: `path` is a valid NUL-terminated string for the call's duration.
    if unsafe { libc::umount2(path.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)
}

/// The size of a memory page, which FUSE's `max_pages` counts in.
pub fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size)
        .ok()
        .filter(|&size| size > 0)
        .unwrap_or(4096)
}

/// FUSE_DEV_IOC_CLONE, `_IOR(229, 0, uint32_t)`: make a new /dev/fuse descriptor read
/// requests of the connection `session`'s descriptor belongs to (Linux 4.5).
const FUSE_DEV_IOC_CLONE: u32 = (2 << 30) | (4 << 16) | (229 << 8);

/// A second descriptor of the FUSE connection `session`, from which another thread
/// reads requests of its own.
pub fn clone_fuse(session: &impl AsRawFd) -> io::Result<std::fs::File> {
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let mut source = session.as_raw_fd() as u32;
    // SAFETY: both descriptors are open; the ioctl reads one u32 through the pointer.
    if unsafe { libc::ioctl(device.as_raw_fd(), FUSE_DEV_IOC_CLONE as _, &mut source) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(device)
}
