//! Thin, safe wrappers around the Linux system calls init needs; all of the crate's
//! `unsafe` lives in this file.

use amber_base::process::Command;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub use libc::{
    MNT_DETACH, MS_NOATIME, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REMOUNT, RB_AUTOBOOT,
    RB_POWER_OFF, SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGTERM, SIGUSR1, SIGUSR2,
};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn c_str(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// mount(2).
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let (source, target, fstype, data) = (
        c_str(source)?,
        c_path(target)?,
        c_str(fstype)?,
        c_str(data)?,
    );
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    })?;
    Ok(())
}

/// umount2(2).
pub fn unmount(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = c_path(target)?;
    // SAFETY: `target` is a valid NUL-terminated string.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

/// finit_module(2): load the kernel module in `file` with the parameter string `params`.
pub fn finit_module(file: &File, params: &str) -> io::Result<()> {
    let params = c_str(params)?;
    // SAFETY: the descriptor is open for the duration of the call and `params` is a valid
    // NUL-terminated string; flags 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            0 as libc::c_int,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// reboot(2) with LINUX_REBOOT_CMD_RESTART2 and a command for the firmware (`0 tryboot`);
/// returns only if the kernel refused.
pub fn reboot_with_argument(argument: &str) -> io::Error {
    let Ok(argument) = c_str(argument) else {
        return io::ErrorKind::InvalidInput.into();
    };
    // SAFETY: the magic numbers and command are integers, and `argument` is a valid
    // NUL-terminated string for the kernel to read; on success it does not return.
    unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            argument.as_ptr(),
        )
    };
    io::Error::last_os_error()
}

/// reboot(2) with RB_POWER_OFF or RB_AUTOBOOT; returns only if the kernel refused.
pub fn reboot(how: libc::c_int) -> io::Error {
    // SAFETY: reboot takes no pointers; on success it does not return.
    unsafe { libc::reboot(how) };
    io::Error::last_os_error()
}

/// Make Ctrl-Alt-Del send SIGINT to init instead of rebooting at once.
pub fn disable_ctrl_alt_del() {
    // SAFETY: reboot(RB_DISABLE_CAD) takes no pointers and only changes a kernel flag.
    unsafe { libc::reboot(libc::RB_DISABLE_CAD) };
}

/// sync(2).
pub fn sync() {
    // SAFETY: sync takes no arguments.
    unsafe { libc::sync() };
}

/// The time since boot on the kernel's clock (the one printk stamps its lines with).
pub fn boot_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Become the parent of orphaned descendants, as PID 1 is; used when supervising for tests.
#[cfg(feature = "test-root")]
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer argument, no pointers.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) })?;
    Ok(())
}

/// kill(2); a negative `pid` names a process group.
pub fn kill(pid: i32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes no pointers.
    check(unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// How a reaped child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with status {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// What one non-blocking waitpid(-1) found.
#[derive(Debug)]
pub enum Reaped {
    Child(i32, Exit),
    /// Children exist but none has exited.
    Nothing,
    NoChildren,
}

/// Reap one exited child of any kind (orphans included) without blocking.
pub fn reap_any() -> Reaped {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable int.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid < 0 {
        return Reaped::NoChildren;
    }
    if pid == 0 {
        return Reaped::Nothing;
    }
    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    Reaped::Child(pid, exit)
}

/// A signalfd for a set of signals, which are blocked for normal delivery.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        // SAFETY: a zeroed sigset_t is a valid value to pass to sigemptyset, which
        // initializes it; the set only lives on this stack frame.
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
            check(libc::sigprocmask(
                libc::SIG_BLOCK,
                &set,
                std::ptr::null_mut(),
            ))?;
            check(libc::signalfd(
                -1,
                &set,
                libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
            ))?
        };
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The next pending signal, if any.
    pub fn read(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data; zero is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: the buffer is a valid, writable signalfd_siginfo of `size` bytes.
        let got = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (got == size as isize).then_some(info.ssi_signo as libc::c_int)
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

pub use libc::{POLLIN, POLLOUT};

/// One entry of a poll(2) set.
pub type PollFd = libc::pollfd;

pub fn poll_entry(fd: RawFd, events: i16) -> PollFd {
    PollFd {
        fd,
        events,
        revents: 0,
    }
}

/// poll(2); an interruption by a signal counts as "nothing ready".
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<()> {
    let timeout = match timeout {
        // Round up, so a deadline 0.3 ms away is not polled for in a busy loop.
        Some(timeout) => timeout.as_micros().div_ceil(1000).min(60_000) as libc::c_int,
        None => -1,
    };
    // SAFETY: `fds` is a valid, writable slice of pollfd of the given length.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    match check(ret) {
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other.map(drop),
    }
}

/// A close-on-exec pipe: (read end, non-blocking; write end).
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    check(unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) })?;
    Ok((read, write))
}

/// A socket that receives the kernel's uevents (NETLINK_KOBJECT_UEVENT, multicast group
/// 1, what udev and mdev listen to), with a large receive buffer so a burst of devices
/// at boot is not dropped.
pub fn uevent_socket() -> io::Result<File> {
    // SAFETY: socket takes integer arguments and returns a new descriptor or -1.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_KOBJECT_UEVENT,
        )
    })?;
    // SAFETY: the descriptor is new and owned by nothing else.
    let socket = unsafe { File::from_raw_fd(fd) };
    let size: libc::c_int = 1 << 20;
    // SAFETY: the option value is a valid int of the size given. Root may exceed
    // rmem_max with SO_RCVBUFFORCE; a failure only leaves the default buffer.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value to fill in.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address.nl_groups = 1;
    // SAFETY: `address` is a valid sockaddr_nl and the length is its size.
    check(unsafe {
        libc::bind(
            fd,
            (&address as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(socket)
}

/// The user id of the process at the other end of a unix socket.
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid and writable; the kernel writes at most `len` bytes.
    check(unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred.uid)
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

/// Set the file mode creation mask.
pub fn set_umask(mask: u32) {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Let the child started by `command` receive the signals init blocks for its signalfd: a
/// blocked mask is inherited across exec, and std does not reset it on every path.
pub fn unblock_signals_in_child(command: &mut Command) {
    // SAFETY: between fork and exec the closure only calls sigemptyset and sigprocmask,
    // which are async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                &set,
                std::ptr::null_mut(),
            ))?;
            Ok(())
        });
    }
}

/// Make the child started by `command` a session leader whose controlling terminal is the
/// terminal already set as its standard input.
pub fn controlling_terminal(command: &mut Command) {
    // SAFETY: between fork and exec the closure only calls async-signal-safe functions
    // (setsid, ioctl) and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            check(libc::setsid())?;
            check(libc::ioctl(0, libc::TIOCSCTTY as _, 1 as libc::c_int))?;
            Ok(())
        });
    }
}

/// An AF_INET datagram socket for the interface and routing ioctls.
pub fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes integer arguments.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: socket returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A `struct sockaddr_in` for an IPv4 address, as the bytes of a `struct sockaddr`.
fn sockaddr_in(address: Ipv4Addr) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    bytes[4..8].copy_from_slice(&address.octets());
    bytes
}

/// `struct ifreq`: the interface name and a union, at most 24 bytes on 64-bit kernels.
#[repr(C)]
struct InterfaceRequest {
    name: [u8; 16],
    data: [u8; 24],
    _align: [u64; 0],
}

fn interface_request(interface: &str) -> io::Result<InterfaceRequest> {
    let mut request = InterfaceRequest {
        name: [0; 16],
        data: [0; 24],
        _align: [],
    };
    let bytes = interface.as_bytes();
    if bytes.is_empty() || bytes.len() > 15 || bytes.contains(&0) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    request.name[..bytes.len()].copy_from_slice(bytes);
    Ok(request)
}

fn interface_ioctl(
    socket: &OwnedFd,
    request: libc::c_ulong,
    ifreq: &mut InterfaceRequest,
) -> io::Result<()> {
    // SAFETY: `ifreq` is a valid, writable struct ifreq (the kernel copies at most its size),
    // and every request used here takes a struct ifreq.
    check(unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            request as _,
            ifreq as *mut InterfaceRequest,
        )
    })?;
    Ok(())
}

/// SIOCSIFADDR or SIOCSIFNETMASK: set an IPv4 address of an interface.
fn set_interface_address(
    socket: &OwnedFd,
    interface: &str,
    request: libc::c_ulong,
    address: Ipv4Addr,
) -> io::Result<()> {
    let mut ifreq = interface_request(interface)?;
    ifreq.data[..16].copy_from_slice(&sockaddr_in(address));
    interface_ioctl(socket, request, &mut ifreq)
}

pub fn set_address(socket: &OwnedFd, interface: &str, address: Ipv4Addr) -> io::Result<()> {
    set_interface_address(socket, interface, libc::SIOCSIFADDR as _, address)
}

pub fn set_netmask(socket: &OwnedFd, interface: &str, mask: Ipv4Addr) -> io::Result<()> {
    set_interface_address(socket, interface, libc::SIOCSIFNETMASK as _, mask)
}

/// Set IFF_UP (and IFF_RUNNING) on an interface, keeping its other flags.
pub fn interface_up(socket: &OwnedFd, interface: &str) -> io::Result<()> {
    let mut ifreq = interface_request(interface)?;
    interface_ioctl(socket, libc::SIOCGIFFLAGS as _, &mut ifreq)?;
    let flags = i16::from_ne_bytes([ifreq.data[0], ifreq.data[1]])
        | (libc::IFF_UP | libc::IFF_RUNNING) as i16;
    ifreq.data[..2].copy_from_slice(&flags.to_ne_bytes());
    interface_ioctl(socket, libc::SIOCSIFFLAGS as _, &mut ifreq)
}

/// `struct rtentry` from <linux/route.h>.
#[repr(C)]
struct RouteEntry {
    pad1: libc::c_ulong,
    destination: [u8; 16],
    gateway: [u8; 16],
    genmask: [u8; 16],
    flags: libc::c_ushort,
    pad2: libc::c_short,
    pad3: libc::c_ulong,
    pad4: *mut libc::c_void,
    metric: libc::c_short,
    device: *mut libc::c_char,
    mtu: libc::c_ulong,
    window: libc::c_ulong,
    irtt: libc::c_ushort,
}

/// SIOCADDRT: a default route through `gateway`.
pub fn add_default_route(socket: &OwnedFd, gateway: Ipv4Addr) -> io::Result<()> {
    let mut route = RouteEntry {
        pad1: 0,
        destination: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        gateway: sockaddr_in(gateway),
        genmask: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        flags: libc::RTF_UP | libc::RTF_GATEWAY,
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        device: std::ptr::null_mut(),
        mtu: 0,
        window: 0,
        irtt: 0,
    };
    // SAFETY: `route` is a valid, writable struct rtentry whose device pointer is null (the
    // kernel picks the interface from the gateway).
    check(unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCADDRT as _,
            &mut route as *mut RouteEntry,
        )
    })?;
    Ok(())
}

/// SIOCSIFMTU: the largest packet an interface sends.
pub fn set_mtu(socket: &OwnedFd, interface: &str, mtu: u16) -> io::Result<()> {
    let mut ifreq = interface_request(interface)?;
    ifreq.data[..4].copy_from_slice(&i32::from(mtu).to_ne_bytes());
    interface_ioctl(socket, libc::SIOCSIFMTU as _, &mut ifreq)
}

/// clock_settime(CLOCK_REALTIME): set the wall clock to a unix time in nanoseconds.
pub fn set_clock(unix_nanos: i64) -> io::Result<()> {
    let time = libc::timespec {
        tv_sec: unix_nanos.div_euclid(1_000_000_000) as _,
        tv_nsec: unix_nanos.rem_euclid(1_000_000_000) as _,
    };
    // SAFETY: `time` is a valid timespec that outlives the call.
    check(unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &time) })?;
    Ok(())
}

pub use amber_base::random_u64;

fn set_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: the option value is a valid buffer of the length given.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The DHCP client's socket on `interface`: UDP port 68 of that interface only
/// (SO_BINDTODEVICE, so each interface has its own, and it works before the interface
/// has an address), broadcasts allowed, non-blocking.
pub fn dhcp_socket(interface: &str) -> io::Result<UdpSocket> {
    // SAFETY: socket takes integer arguments.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: socket returned a new descriptor that nothing else owns.
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    let one = 1 as libc::c_int;
    set_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one.to_ne_bytes())?;
    set_option(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, &one.to_ne_bytes())?;
    set_option(
        fd,
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        interface.as_bytes(),
    )?;
    let address = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    let mut address = address;
    address[2..4].copy_from_slice(&crate::dhcp::CLIENT_PORT.to_be_bytes());
    // SAFETY: `address` holds a struct sockaddr_in of 16 bytes.
    check(unsafe { libc::bind(fd, address.as_ptr().cast(), 16) })?;
    Ok(socket)
}

/// A netlink socket that hears of network interfaces coming, going and changing
/// (NETLINK_ROUTE, group RTMGRP_LINK), non-blocking: the network daemon's wake-up when
/// a link appears or its carrier changes.
pub fn link_events() -> io::Result<File> {
    // SAFETY: socket takes integer arguments and returns a new descriptor or -1.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
        )
    })?;
    // SAFETY: the descriptor is new and owned by nothing else.
    let socket = unsafe { File::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value to fill in.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: `address` is a valid sockaddr_nl and the length is its size.
    check(unsafe {
        libc::bind(
            fd,
            (&address as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(socket)
}

/// The address range of this program's executable code (the `r-xp` mapping of
/// /proc/self/maps that holds this function).
pub fn code_range() -> Option<(usize, usize)> {
    let here = code_range as fn() -> Option<(usize, usize)> as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        (fields.next()? == "r-xp" && (start..end).contains(&here)).then_some((start, end))
    })
}

/// Unmap the resident pages of this program's code: they stay in the page cache (the
/// initramfs holds them in memory anyway) and come back, on the next fault, only as far
/// as they are used. Idle, init then holds little more than its own data.
pub fn release_code((start, end): (usize, usize)) {
    // SAFETY: the range is this program's private, read-only, file-backed code mapping,
    // which nothing writes to (no text relocations): dropping its pages loses nothing,
    // they are read back from the file when executed again.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
}

/// Name the calling thread, as musl's `pthread_setname_np` does, for the one caller
/// there is: the standard library names each new thread from inside it
/// (`std::thread::Builder::name`; fuser names its workers this way).
///
/// musl's own version, for a thread other than the caller, formats
/// `/proc/self/task/%d/comm` with `snprintf`, and that one call links all of musl's
/// printf into the binary (about 8 KB, floating point included). A static link takes
/// this definition before libc.a's, so libc.a's is never pulled in. Naming another
/// thread is refused with ENOTSUP.
///
/// # Safety
///
/// `name` must point to a NUL-terminated string.
#[cfg(target_env = "musl")]
#[no_mangle]
pub unsafe extern "C" fn pthread_setname_np(
    thread: libc::pthread_t,
    name: *const libc::c_char,
) -> libc::c_int {
    // SAFETY: the caller passes a NUL-terminated string; pthread_self has no
    // preconditions; PR_SET_NAME reads the string, at most 16 bytes of it.
    unsafe {
        if libc::strlen(name) > 15 {
            return libc::ERANGE;
        }
        if thread != libc::pthread_self() {
            return libc::ENOTSUP;
        }
        if libc::prctl(libc::PR_SET_NAME, name as libc::c_ulong, 0 as libc::c_ulong) != 0 {
            return io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL);
        }
    }
    0
}

/// What a service's process does to itself between fork and exec, worked out before the
/// fork (the child may not allocate): join its cgroup, set its OOM score, enter a mount
/// namespace of its own, change user and group, keep only some capabilities, and
/// forbid gaining privileges through exec.
pub struct Confinement {
    /// cgroup.procs of the service's cgroup, open for writing: the child writes "0".
    pub cgroup_procs: Option<File>,
    /// Written to /proc/self/oom_score_adj (init's -1000 must not be inherited).
    pub oom_score_adj: &'static [u8],
    /// The scheduling priority (nice value) to run at; 0 leaves init's.
    pub nice: libc::c_int,
    pub mounts: Option<Mounts>,
    /// (uid, gid): change to these, with the group as the only supplementary group.
    pub ids: Option<(u32, u32)>,
    /// Keep only these capabilities (bit N = capability N), the bounding set included;
    /// None keeps them all.
    pub capabilities: Option<u64>,
    pub no_new_privs: bool,
    /// The environment to exec with; None keeps init's.
    pub environment: Option<Environment>,
}

impl Confinement {
    /// Nothing but an OOM score and a scheduling priority.
    pub fn priorities(oom_score_adj: &'static [u8], nice: libc::c_int) -> Confinement {
        Confinement {
            cgroup_procs: None,
            oom_score_adj,
            nice,
            mounts: None,
            ids: None,
            capabilities: None,
            no_new_privs: false,
            environment: None,
        }
    }
}

/// An environment for exec: init's own with a service's `env` lines over it, made
/// before the fork. The child only points `environ` at it, so that exec passes it on.
/// (`Command::envs` would do the same through a map of every variable, which costs
/// the device binary about 4 KB.)
pub struct Environment {
    /// The NAME=VALUE strings; `pointers` points into them.
    _strings: Vec<CString>,
    /// NULL-terminated, as `environ` is.
    pointers: Vec<*const libc::c_char>,
}

impl Environment {
    /// Init's environment, each of `settings` replacing a variable of the same name
    /// (the last of several wins), or an error for a NUL byte.
    pub fn new(settings: &[(String, String)]) -> io::Result<Environment> {
        let set = |name: &[u8]| settings.iter().any(|(n, _)| n.as_bytes() == name);
        let mut strings = Vec::new();
        for (name, value) in std::env::vars_os() {
            if !set(name.as_bytes()) {
                strings.push(pair(name.as_bytes(), value.as_bytes())?);
            }
        }
        for (index, (name, value)) in settings.iter().enumerate() {
            if !settings[index + 1..].iter().any(|(later, _)| later == name) {
                strings.push(pair(name.as_bytes(), value.as_bytes())?);
            }
        }
        let mut pointers: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(std::ptr::null());
        Ok(Environment {
            _strings: strings,
            pointers,
        })
    }
}

// SAFETY: the pointers point into the CStrings owned beside them, which nothing
// changes or frees before the Environment is dropped; they are only read.
unsafe impl Send for Environment {}
// SAFETY: as above.
unsafe impl Sync for Environment {}

fn pair(name: &[u8], value: &[u8]) -> io::Result<CString> {
    CString::new([name, b"=", value].concat()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

unsafe extern "C" {
    /// The process's environment, which execvp passes on.
    static mut environ: *const *const libc::c_char;
}

/// The private mounts of a service: a fresh tmpfs on `tmp`, and `data` read-only but
/// for `state`.
pub struct Mounts {
    pub tmp: Option<CString>,
    pub data: Option<(CString, CString)>,
}

impl Mounts {
    pub fn new(tmp: Option<&Path>, data: Option<(&Path, &Path)>) -> io::Result<Mounts> {
        Ok(Mounts {
            tmp: tmp.map(c_path).transpose()?,
            data: match data {
                Some((data, state)) => Some((c_path(data)?, c_path(state)?)),
                None => None,
            },
        })
    }
}

/// The version-3 header of capget(2) and capset(2).
#[repr(C)]
struct CapabilityHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapabilityData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const PR_CAP_AMBIENT_RAISE: libc::c_ulong = 2;
/// SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED.
const KEEP_CAPABILITIES_ACROSS_USER_CHANGES: libc::c_ulong = 0b1100;

/// mount(2) with ready-made C strings, for the child (no allocation).
fn mount_c(
    source: *const libc::c_char,
    target: &CString,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> io::Result<()> {
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    check(unsafe { libc::mount(source, target.as_ptr(), fstype, flags, data.cast()) }).map(drop)
}

fn prctl(option: libc::c_int, argument: libc::c_ulong, more: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options used here take integer arguments only.
    check(unsafe {
        libc::prctl(
            option,
            argument,
            more,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

/// Carry out `confinement` in the child started by `command`.
pub fn confine(command: &mut Command, confinement: Confinement) {
    // SAFETY: between fork and exec the closure only makes system calls (write, open,
    // unshare, mount, prctl, setgroups, setresgid, setresuid, capset) on data prepared
    // before the fork, points the child's `environ` at an environment prepared before
    // the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let c = &confinement;
            if let Some(procs) = &c.cgroup_procs {
                check(libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) as libc::c_int)?;
            }
            // Best effort: a test supervisor that is not root may not lower it.
            let score = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if score >= 0 {
                libc::write(
                    score,
                    c.oom_score_adj.as_ptr().cast(),
                    c.oom_score_adj.len(),
                );
                libc::close(score);
            }
            if c.nice != 0 {
                // Best effort too: without CAP_SYS_NICE it runs at init's priority.
                libc::setpriority(libc::PRIO_PROCESS, 0, c.nice);
            }
            if let Some(mounts) = &c.mounts {
                check(libc::unshare(libc::CLONE_NEWNS))?;
                // Mounts made by init later (the store mounted again) still reach it.
                check(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ))?;
                if let Some(tmp) = &mounts.tmp {
                    mount_c(
                        c"tmpfs".as_ptr(),
                        tmp,
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        c"mode=1777".as_ptr(),
                    )?;
                }
                if let Some((data, state)) = &mounts.data {
                    let null = std::ptr::null();
                    mount_c(
                        data.as_ptr(),
                        data,
                        null,
                        libc::MS_BIND | libc::MS_REC,
                        null,
                    )?;
                    mount_c(state.as_ptr(), state, null, libc::MS_BIND, null)?;
                    mount_c(
                        null,
                        data,
                        null,
                        libc::MS_REMOUNT
                            | libc::MS_BIND
                            | libc::MS_RDONLY
                            | libc::MS_NOSUID
                            | libc::MS_NODEV
                            | libc::MS_NOATIME,
                        null,
                    )?;
                }
            }
            let user = c.ids.is_some_and(|(uid, _)| uid != 0);
            if let Some(keep) = c.capabilities {
                if user {
                    // A service that keeps capabilities as its own user keeps them when
                    // it changes users itself (dropbear logging a user in).
                    prctl(
                        libc::PR_SET_SECUREBITS,
                        KEEP_CAPABILITIES_ACROSS_USER_CHANGES,
                        0,
                    )?;
                }
                for capability in 0..64 {
                    if keep & (1 << capability) == 0 {
                        // EINVAL past the kernel's last capability.
                        let _ = prctl(libc::PR_CAPBSET_DROP, capability, 0);
                    }
                }
            }
            if let Some((uid, gid)) = c.ids {
                check(libc::setgroups(1, &gid))?;
                check(libc::setresgid(gid, gid, gid))?;
                check(libc::setresuid(uid, uid, uid))?;
            }
            if let Some(keep) = c.capabilities {
                let header = CapabilityHeader {
                    version: CAPABILITY_VERSION_3,
                    pid: 0,
                };
                let mut data = [CapabilityData {
                    effective: 0,
                    permitted: 0,
                    inheritable: 0,
                }; 2];
                for (index, word) in data.iter_mut().enumerate() {
                    let bits = (keep >> (32 * index)) as u32;
                    *word = CapabilityData {
                        effective: bits,
                        permitted: bits,
                        inheritable: bits,
                    };
                }
                check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int)?;
                if user {
                    // Ambient capabilities survive the exec of a program that has none.
                    for capability in 0..64 {
                        if keep & (1 << capability) != 0 {
                            prctl(libc::PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, capability)?;
                        }
                    }
                }
            }
            if c.no_new_privs {
                prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)?;
            }
            if let Some(environment) = &c.environment {
                // Only this process's copy of the pointer changes: exec follows it.
                environ = environment.pointers.as_ptr();
            }
            Ok(())
        });
    }
}

/// Make every mount below / share its later mounts and unmounts with the copies in the
/// services' mount namespaces (which are its slaves).
pub fn share_mounts() -> io::Result<()> {
    // SAFETY: the path is a valid NUL-terminated string; the other pointers are null.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SHARED,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// The real-time clock in milliseconds since 1970.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The monotonic clock (the kernel log's time stamps) in microseconds.
pub fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

/// The watchdog's `struct watchdog_info` (WDIOC_GETSUPPORT).
#[repr(C)]
struct WatchdogInfo {
    options: u32,
    firmware_version: u32,
    identity: [u8; 32],
}

const WDIOC_GETSUPPORT: libc::c_ulong = 0x8028_5700;
const WDIOC_GETBOOTSTATUS: libc::c_ulong = 0x8004_5702;
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;
const WDIOC_GETTIMEOUT: libc::c_ulong = 0x8004_5707;

/// A watchdog device: its identity, its boot status flags, and the timeout it took
/// after being asked for `timeout` seconds.
pub fn watchdog_setup(device: &File, timeout: u32) -> (String, u32, u32) {
    let fd = device.as_raw_fd();
    let mut info = WatchdogInfo {
        options: 0,
        firmware_version: 0,
        identity: [0; 32],
    };
    let mut status: libc::c_int = 0;
    let mut seconds = timeout as libc::c_int;
    // SAFETY: each request writes at most the size of the value passed for it, which is
    // valid and writable; errors leave the values as they were.
    unsafe {
        libc::ioctl(fd, WDIOC_GETSUPPORT as _, &mut info as *mut WatchdogInfo);
        libc::ioctl(
            fd,
            WDIOC_GETBOOTSTATUS as _,
            &mut status as *mut libc::c_int,
        );
        if libc::ioctl(fd, WDIOC_SETTIMEOUT as _, &mut seconds as *mut libc::c_int) != 0 {
            libc::ioctl(fd, WDIOC_GETTIMEOUT as _, &mut seconds as *mut libc::c_int);
        }
    }
    let end = info.identity.iter().position(|&b| b == 0).unwrap_or(32);
    let identity = String::from_utf8_lossy(&info.identity[..end]).into_owned();
    (identity, status as u32, seconds.max(1) as u32)
}
