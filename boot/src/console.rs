//! The console shell: `/bin/sh` (from a package such as busybox) on the console, as a
//! session leader whose controlling terminal is the console, so job control and Ctrl-C work.

use amber_base::process::Command;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::cmdline::CommandLine;
use crate::sys;

/// The kernel's console level once the shell is up: errors and worse (levels 0-3) still
/// reach the console, everything else only the log (`svc log kernel`), so the kernel's
/// chatter (a link coming up, a clock source switched) does not land in the middle of a
/// command's output. Debian's default, `kernel.printk = 4 4 1 7`.
const QUIET_LEVEL: u8 = 4;

/// The level to set, unless the command line asks for the kernel's own (`loglevel=`,
/// `debug`, `ignore_loglevel`).
pub fn quiet_level(command_line: &CommandLine) -> Option<u8> {
    let chosen = command_line
        .parameters
        .iter()
        .any(|(name, _)| matches!(name.as_str(), "loglevel" | "debug" | "ignore_loglevel"));
    (!chosen).then_some(QUIET_LEVEL)
}

/// Lower the kernel's console level as [`quiet_level`] says; the line to say, if any.
pub fn quiet_kernel(command_line: &CommandLine) -> Option<String> {
    let level = quiet_level(command_line)?;
    // One number sets only the console's level (the first of the four).
    Some(match std::fs::write("/proc/sys/kernel/printk", format!("{level}\n")) {
        Ok(()) => "console: kernel lines below error go to `svc log kernel` only (loglevel= keeps them)"
            .to_owned(),
        Err(error) => format!("console: /proc/sys/kernel/printk: {error}"),
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_unless_the_command_line_chooses() {
        let level = |line: &str| quiet_level(&CommandLine::parse(line));
        assert_eq!(level("console=ttyS0 panic=-1"), Some(QUIET_LEVEL));
        assert_eq!(level("console=ttyS0 loglevel=7"), None);
        assert_eq!(level("debug console=ttyS0"), None);
        assert_eq!(level("ignore_loglevel"), None);
        assert_eq!(level("amber.loglevel=1"), Some(QUIET_LEVEL));
    }
}
