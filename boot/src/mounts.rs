//! The early mounts of PID 1 (proc, sysfs, cgroup2, pstore, devtmpfs, devpts, tmpfs)
//! and the mount table.

use std::path::Path;

use crate::sys;

/// Mount the kernel's filesystems and the tmpfs directories. A mount that is already there
/// (EBUSY, as when the kernel mounted devtmpfs itself) is fine; others are reported.
pub fn early() {
    let nosuid_nodev = sys::MS_NOSUID | sys::MS_NODEV;
    let table: [(&str, &str, &str, libc::c_ulong, &str); 8] = [
        ("proc", "/proc", "proc", nosuid_nodev | sys::MS_NOEXEC, ""),
        ("sysfs", "/sys", "sysfs", nosuid_nodev | sys::MS_NOEXEC, ""),
        (
            "cgroup2",
            crate::cgroup::MOUNT,
            "cgroup2",
            nosuid_nodev | sys::MS_NOEXEC,
            "",
        ),
        // The kernel's last words of the boot before (watchdog.rs reads them).
        (
            "pstore",
            "/sys/fs/pstore",
            "pstore",
            nosuid_nodev | sys::MS_NOEXEC,
            "",
        ),
        ("devtmpfs", "/dev", "devtmpfs", sys::MS_NOSUID, "mode=0755"),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            sys::MS_NOSUID | sys::MS_NOEXEC,
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        ("tmpfs", "/run", "tmpfs", nosuid_nodev, "mode=0755"),
        ("tmpfs", "/tmp", "tmpfs", nosuid_nodev, "mode=1777"),
    ];
    for (source, target, fstype, flags, data) in table {
        let target = Path::new(target);
        let _ = std::fs::create_dir_all(target);
        match sys::mount(source, target, fstype, flags, data) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => {}
            Err(error) => say!("mount {fstype} on {}: {error}", target.display()),
        }
    }
    // Mounts init makes later (the store, mounted again after a crash) reach the
    // services' own mount namespaces, which are slaves of this one.
    if let Err(error) = sys::share_mounts() {
        say!("mount --make-rshared /: {error}");
    }
}

/// Undo the escaping of a mountinfo path field (`\040` for a space, and so on).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4);
        match octal {
            Some(digits)
                if bytes[index] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)) =>
            {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                index += 4;
            }
            _ => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

/// Whether `path` is a mount point in the text of /proc/self/mountinfo.
pub fn listed(mountinfo: &str, path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let wanted = path.as_os_str().as_bytes();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| unescape(mount_point) == wanted)
}

/// Whether `path` is a mount point now. Reading the mount table rather than comparing
/// st_dev works for a FUSE mount whose daemon died, where stat fails with ENOTCONN.
pub fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|text| listed(&text, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table() {
        let table = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                     40 22 0:35 / /ro rw,nosuid,nodev - fuse.amber amber rw,user_id=0\n\
                     41 22 0:36 / /mnt/my\\040disk rw - ext4 /dev/vda2 rw\n";
        assert!(listed(table, Path::new("/ro")));
        assert!(listed(table, Path::new("/proc")));
        assert!(listed(table, Path::new("/mnt/my disk")));
        assert!(!listed(table, Path::new("/mnt/my\\040disk")));
        assert!(!listed(table, Path::new("/r")));
        assert!(!listed(table, Path::new("/data")));
        assert!(!listed("", Path::new("/")));
        assert_eq!(unescape("a\\134b\\01"), b"a\\b\\01");
        // This process always has a root mount.
        assert!(is_mounted(Path::new("/")));
    }
}
