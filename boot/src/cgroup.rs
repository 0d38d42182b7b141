//! cgroup v2: one cgroup per service below /sys/fs/cgroup/services, with the memory and
//! pids controllers, so `memory-max` and `tasks-max` hold, a service's processes can be
//! killed together, and an OOM kill inside it is told apart from other deaths.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup2 is mounted on the device (mounts.rs) and the services' parent.
pub const MOUNT: &str = "/sys/fs/cgroup";
pub const SERVICES: &str = "/sys/fs/cgroup/services";

/// Make the services' parent cgroup and hand it the memory and pids controllers.
#[inline(never)]
pub fn setup() -> io::Result<PathBuf> {
    let services = Path::new(SERVICES);
    match std::fs::create_dir(services) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
        _ => {}
    }
    for dir in [Path::new(MOUNT), services] {
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids")?;
    }
    Ok(services.to_owned())
}

/// A service's cgroup, made if missing, with its limits set (none: "max"). Returns
/// its cgroup.procs, open for the child to write itself into.
#[inline(never)]
pub fn prepare(
    parent: &Path,
    name: &str,
    memory_max: Option<u64>,
    tasks_max: Option<u64>,
) -> io::Result<File> {
    let dir = parent.join(name);
    match std::fs::create_dir(&dir) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
        _ => {}
    }
    let limit = |value: Option<u64>| value.map_or("max".to_owned(), |value| value.to_string());
    std::fs::write(dir.join("memory.max"), limit(memory_max))?;
    std::fs::write(dir.join("pids.max"), limit(tasks_max))?;
    // An OOM kill takes the whole service, not one of its processes.
    let _ = std::fs::write(dir.join("memory.oom.group"), "1");
    OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
}

/// How many times the kernel's OOM killer has killed in the service's cgroup.
pub fn oom_kills(parent: &Path, name: &str) -> u64 {
    let events =
        std::fs::read_to_string(parent.join(name).join("memory.events")).unwrap_or_default();
    events
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// SIGKILL every process left in the service's cgroup (cgroup.kill, Linux 5.14).
pub fn kill(parent: &Path, name: &str) {
    let _ = std::fs::write(parent.join(name).join("cgroup.kill"), "1");
}

/// Remove the cgroup of a service that is gone (it must be empty).
pub fn remove(parent: &Path, name: &str) {
    let _ = std::fs::remove_dir(parent.join(name));
}
