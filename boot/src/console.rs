//! The console shell: `/bin/sh` (from a package such as busybox) on the console, as a
//! session leader whose controlling terminal is the console, so job control and Ctrl-C work.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sys;

/// The terminal behind /dev/console: the last (preferred) entry of
/// /sys/class/tty/console/active, such as /dev/ttyS0. /dev/console itself cannot be a
/// controlling terminal with job control, the real device can.
pub fn real_terminal(terminal: &Path) -> PathBuf {
    if terminal != Path::new("/dev/console") {
        return terminal.to_owned();
    }
    let active = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    match active.split_whitespace().last() {
        Some(name) if !name.contains('/') && Path::new("/dev").join(name).exists() => {
            Path::new("/dev").join(name)
        }
        _ => terminal.to_owned(),
    }
}

/// Start `program` as a login shell on `terminal`; returns its pid.
pub fn spawn_shell(program: &Path, terminal: &Path) -> io::Result<i32> {
    let terminal: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(real_terminal(terminal))?;
    let mut command = Command::new(program);
    command
        .arg0("-sh")
        .current_dir("/")
        .stdin(terminal.try_clone()?)
        .stdout(terminal.try_clone()?)
        .stderr(terminal);
    sys::unblock_signals_in_child(&mut command);
    sys::confine(&mut command, sys::Confinement::priorities(b"0", 0));
    sys::controlling_terminal(&mut command);
    Ok(command.spawn()?.id() as i32)
}
