//! Standard output, where a reader that stopped reading ends the output, not the command.
//!
//! `println!` panics when a write fails, and the device build aborts on a panic, so
//! `svc status | head -1` died by SIGILL once `head` had its line. Every command of the
//! device binary (pkg, svc, poweroff, reboot) and of the host `pkg` writes its standard
//! output through [`write`] instead. The rule: a closed pipe (EPIPE) is the normal end
//! of the output. The rest is dropped without a word, the command finishes what it was
//! doing and exits with the status it would have had: 0 for `pkg list | head -1`, 1 for
//! a command that failed. (coreutils die by SIGPIPE there, status 141, which a
//! `set -o pipefail` script takes for a failure; here nothing is killed half-way
//! through a change.) Any other write error is returned, for one error line.

use std::io::{self, Write};

/// Write `text` to standard output and flush it; a closed reader is not an error.
pub fn write(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}
