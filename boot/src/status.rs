//! Status files: the one line a built-in unit's process (`network`, `clock`) writes
//! about itself in `/run/amber/status/NAME`, which `svc status` shows after the unit's
//! state, and from which init reads whether the network is up.

use std::path::Path;

/// Where the files are on the device.
pub const DIR: &str = "/run/amber/status";

/// Replace the status of `name` (atomically: init may read it at any moment).
pub fn write(name: &str, text: &str) {
    let dir = Path::new(DIR);
    let _ = std::fs::create_dir_all(dir);
    let _ = amber_base::durable::write_atomic(&dir.join(name), format!("{text}\n").as_bytes());
}

/// The status line of `name` under `dir`, if its process wrote one.
pub fn read(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// Print one line on standard output (for a unit's process, init's pipe to the console
/// and the unit's log); a write error is dropped, as `println!` would panic on it.
pub fn print(line: &str) {
    use std::io::Write;
    let _ = std::io::stdout()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}
