//! `pkg store mount MOUNTPOINT`: run the FUSE store, and its control socket.
//!
//! The daemon listens on `<root>/store.sock` (root only) for one-line commands:
//! `reload` (show the current generation; answers `ok N` once it does), `mountpoint`,
//! and `status`. pkg sends `reload` after every switch, so `pkg add` returns only once
//! the mounted store shows the new generation.
//!
//! A killed store leaves a mount that answers ENOTCONN (SECURITY-TESTS item 24); mounting
//! again first detaches it. SIGTERM, SIGINT and SIGHUP unmount cleanly.

#![forbid(unsafe_code)]

use amber_base::process::{Command, Stdio};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Context as _, Error};
use crate::fuse;
use crate::storefs::{Inner, Options, BLOCK_REQUEST, TTL_SECONDS};

/// The control socket of the store mounted for a root.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join("store.sock")
}

/// A store started in the background by [`mount`].
pub struct Mounted {
    /// Where it is mounted, made absolute.
    pub mountpoint: PathBuf,
    /// The daemon's process id.
    pub pid: u32,
}

/// `pkg store mount MOUNTPOINT [--foreground]`: mount the store of `root`. In the
/// foreground this serves until unmounted and returns None; otherwise it starts the
/// same command in the foreground in a new session and returns once it is mounted.
pub fn mount(
    root: &Path,
    mountpoint: &Path,
    foreground: bool,
    options: Options,
) -> Result<Option<Mounted>, Error> {
    // The daemon answers `mountpoint` with this path, for commands run from anywhere.
    let mountpoint = &std::path::absolute(mountpoint).context(mountpoint.display())?;
    if !root.is_dir() {
        return Err(Error::from_args(format_args!(
            "{}: no store here (pkg commands create it)",
            root.display()
        )));
    }
    detach_if_dead(mountpoint)?;
    if is_amber_mount(mountpoint) {
        return Err(Error::from_args(format_args!(
            "{}: a store is already mounted here",
            mountpoint.display()
        )));
    }
    if !mountpoint.is_dir() {
        return Err(Error::from_args(format_args!(
            "{}: not a directory",
            mountpoint.display()
        )));
    }
    // The store mounts /dev/fuse itself with mount(2), which only root may do: say so
    // in one line rather than through a daemon that fails.
    if !crate::sys::is_root() {
        return Err(Error::from_args(format_args!(
            "{}: cannot mount: the store needs root",
            mountpoint.display()
        )));
    }
    if foreground {
        serve(root, mountpoint, options)?;
        return Ok(None);
    }
    // Start the same command in the foreground in a new session, and wait until the
    // mount is there (or the daemon has said why it is not).
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mut command = Command::new(exe);
    command
        .arg0("pkg")
        .arg("--root")
        .arg(root)
        .args(["store", "mount"])
        .arg(mountpoint)
        .arg("--foreground")
        .args(["--max-open", &options.max_open.to_string()])
        .args(["--threads", &options.threads.to_string()])
        .stdin(Stdio::Null)
        .stdout(Stdio::Null);
    crate::sys::in_new_session(&mut command);
    let mut child = command.spawn().context("cannot start the store")?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(status) = child.try_wait().context("store")? {
            return Err(Error::from_args(format_args!(
                "the store exited ({status}) before mounting"
            )));
        }
        if is_amber_mount(mountpoint) {
            return Ok(Some(Mounted {
                mountpoint: mountpoint.clone(),
                pid: child.id(),
            }));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    // Killed after mounting after all: leave no dead mount behind.
    let _ = detach_if_dead(mountpoint);
    Err(Error::from_args(format_args!(
        "{}: the store did not mount in time",
        mountpoint.display()
    )))
}

/// Run the store until it is unmounted or told to stop.
fn serve(root: &Path, mountpoint: &Path, options: Options) -> Result<(), Error> {
    // Block the stop signals before any thread starts, so every thread inherits the
    // mask and only the signal thread below receives them.
    let signals = crate::sys::StopSignals::block();
    // glibc's defaults cost the daemon memory it never uses: every thread that
    // allocates gets an arena keeping freed memory for itself, and once a big block was
    // freed the mmap threshold rises, so the later request buffers come from the heap,
    // where they are cleared. One arena and a fixed mmap threshold keep it small. The
    // device's musl allocator has neither habit.
    crate::sys::tune_allocator();

    let threads = options.threads.max(1);
    let idle = options.idle;
    let inner = Inner::new(root.to_path_buf(), options)?;
    let device = mount_fuse(mountpoint).map_err(|e| {
        Error::from_args(format_args!("{}: cannot mount: {e}", mountpoint.display()))
    })?;
    let settings = fuse::Settings {
        // The kernel offers its own readahead as the most; ask for all of it (raised
        // further below once mounted).
        max_readahead: 1024 * 1024,
        // One data block per read request: the request size limit (max_pages) follows
        // from it, so a readahead window is cut into block-sized requests the threads
        // serve at once, each decompressed straight into its reply.
        max_write: BLOCK_REQUEST,
        ttl: TTL_SECONDS,
    };
    let session = match fuse::Session::handshake(device, &settings) {
        Ok(session) => session,
        Err(error) => {
            let _ = unmount(mountpoint);
            return Err(Error::from_args(format_args!(
                "{}: cannot mount: {error}",
                mountpoint.display()
            )));
        }
    };
    inner.set_notifier(session.notifier());
    raise_readahead(mountpoint);
    let unmount_path = mountpoint.to_path_buf();

    let socket = socket_path(root);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).context(socket.display())?;
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    let control = Arc::clone(&inner);
    let shown_mountpoint = mountpoint.to_path_buf();
    std::thread::spawn(move || control_loop(listener, &control, &shown_mountpoint));

    let janitor = Arc::clone(&inner);
    std::thread::spawn(move || loop {
        std::thread::sleep(idle.max(Duration::from_secs(1)) / 2);
        janitor.close_idle();
    });

    std::thread::spawn(move || {
        signals.wait();
        // The kernel then ends the connection, and `session.run` returns.
        let _ = unmount(&unmount_path);
    });

    eprintln!(
        "pkg store: generation {} mounted on {}",
        inner.generation(),
        mountpoint.display()
    );
    let result = session.run(threads, inner.clone());
    // Ended by an unmount or by an error: in the second case the mount goes now.
    let _ = unmount(mountpoint);
    let _ = std::fs::remove_file(&socket);
    result.map_err(|e| Error::from_args(format_args!("store: {e}")))
}

/// Mount a FUSE filesystem at `mountpoint` and return the connection's /dev/fuse
/// descriptor: type `fuse`, source `amber`, read-only, nodev, nosuid, checked by the
/// kernel's permission rules and open to every user.
///
/// A direct mount(2), as root does it (the store runs as root: init starts it), without
/// the setuid `fusermount3` helper FUSE libraries fall back to for other users.
fn mount_fuse(mountpoint: &Path) -> std::io::Result<std::fs::File> {
    let mode = std::fs::metadata(mountpoint)?.permissions().mode();
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    crate::sys::mount_fuse(&device, mountpoint, mode)?;
    Ok(device)
}

/// Unmount the store, which ends the FUSE connection: a plain umount(2),
/// which fails while the mount is busy.
fn unmount(mountpoint: &Path) -> std::io::Result<()> {
    crate::sys::unmount(mountpoint, false)
}

fn control_loop(listener: UnixListener, inner: &Inner, mountpoint: &Path) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        let answer = match line.trim() {
            "reload" => match inner.reload() {
                Ok(generation) => format!("ok {generation}\n"),
                Err(error) => format!("error {error}\n"),
            },
            "mountpoint" => format!("{}\n", mountpoint.display()),
            "status" => format!(
                "generation {} open-images {}\n",
                inner.generation(),
                inner.open_images()
            ),
            other => format!("error unknown command {other:?}\n"),
        };
        let mut stream = &stream;
        let _ = stream.write_all(answer.as_bytes());
    }
}

/// A FUSE mount whose daemon died answers ENOTCONN; detach it so it can be mounted again.
/// Opening the directory asks the daemon every time, where a stat may be answered from
/// the attributes the kernel cached while the daemon lived.
fn detach_if_dead(mountpoint: &Path) -> Result<(), Error> {
    match std::fs::read_dir(mountpoint).and_then(|_| std::fs::metadata(mountpoint)) {
        Err(error) if error.raw_os_error() == Some(libc::ENOTCONN) => {
            if let Err(error) = crate::sys::unmount(mountpoint, true) {
                return Err(Error::from_args(format_args!(
                    "{}: cannot detach the dead store: {error}",
                    mountpoint.display()
                )));
            }
            eprintln!("pkg: detached the dead store from {}", mountpoint.display());
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether an amber store is mounted at `mountpoint`, from /proc/self/mountinfo.
pub fn is_amber_mount(mountpoint: &Path) -> bool {
    amber_mount_device(mountpoint).is_some()
}

/// The device (`major:minor`) of the amber store mounted at `mountpoint`, if one is.
fn amber_mount_device(mountpoint: &Path) -> Option<String> {
    // The parent, not the mount point itself: a dead store's mount point cannot be
    // resolved. A bare name's parent is the empty path, which means ".".
    let parent = match mountpoint.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
        Some(parent) => parent,
        None => Path::new("/"),
    };
    let canonical = canonical(parent)?.join(mountpoint.file_name().unwrap_or_default());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let separator = fields.iter().position(|f| *f == "-")?;
        // The store mounts with mount(2) directly: type `fuse`, source `amber`.
        let ours = fields.get(4).map(|p| unescape(p)) == Some(canonical.display().to_string())
            && fields
                .get(separator + 1)
                .is_some_and(|t| *t == "fuse" || *t == "fuse.amber")
            && fields.get(separator + 2) == Some(&"amber");
        ours.then(|| fields.get(2).map(|d| d.to_string())).flatten()
    })
}

/// `path` with every link and `..` resolved, as the kernel names the directory it opens
/// (mountinfo reads /proc anyway): less code than `fs::canonicalize`, musl's realpath.
fn canonical(path: &Path) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .ok()?;
    std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()
}

/// Readahead of the store's files, in KiB.
const READAHEAD_KIB: u32 = 1024;

/// The kernel gives a FUSE mount the default 128 KiB of readahead and lets a server
/// only lower it at INIT; as root, raise it afterwards through the mount's
/// backing-device entry. A big file's readahead then goes out as several block-sized
/// requests at once, which the threads decompress side by side. Where sysfs is not
/// writable the default stays, which is only slower.
fn raise_readahead(mountpoint: &Path) {
    if let Some(device) = amber_mount_device(mountpoint) {
        let path = format!("/sys/class/bdi/{device}/read_ahead_kb");
        let _ = std::fs::write(path, READAHEAD_KIB.to_string());
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Tell the store mounted for `root` that generation `generation` is now current, and
/// wait until it shows it. Without a store mounted for this root nobody is told.
pub fn reload(root: &Path, generation: u64) -> Result<(), Error> {
    match ask(root, "reload", Duration::from_secs(60))? {
        None => Ok(()),
        Some(answer) if answer == format!("ok {generation}") => Ok(()),
        Some(answer) => Err(Error::from_args(format_args!(
            "generation {generation} is current, but the mounted store answered {answer:?}"
        ))),
    }
}

/// Where the store of `root` is mounted; None when no store is running.
pub fn mountpoint(root: &Path) -> Result<Option<PathBuf>, Error> {
    Ok(ask(root, "mountpoint", Duration::from_secs(10))?.map(PathBuf::from))
}

/// Ask the store mounted for `root`; None when no store is running.
fn ask(root: &Path, command: &str, timeout: Duration) -> Result<Option<String>, Error> {
    let socket = socket_path(root);
    let stream = match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(stream) => stream,
        // No socket, or a socket left by a killed store: nobody is serving this root.
        Err(_) => return Ok(None),
    };
    stream
        .set_read_timeout(Some(timeout))
        .context(socket.display())?;
    let mut writer = &stream;
    writer
        .write_all(format!("{command}\n").as_bytes())
        .context(socket.display())?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| Error::from_args(format_args!("the mounted store did not answer: {e}")))?;
    Ok(Some(answer.trim_end().to_owned()))
}
