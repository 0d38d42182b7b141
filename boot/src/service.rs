//! Service files: the strict, line-based description of one supervised program, and the
//! directories they are read from.
//!
//! A service is a file named after the service (`/ro/svc/dropbear`, no extension) holding
//! one `key value` pair per line:
//!
//! ```text
//! # comments and blank lines are ignored; so is everything after " #"
//! command /bin/dropbear -F -R -p 22   # required, once; words split on blanks,
//!                                     # '...' and "..." quote (no escapes)
//! needs network                       # optional, repeatable: services to wait for
//! restart always                      # always (default) | on-failure | never
//! start auto                          # auto (default) | manual (only `svc start`)
//! env TZ=UTC                          # optional, repeatable
//! user dropbear                       # run as this user (a package's users/NAME)
//! group dropbear                      # and group (default: the user's own)
//! capabilities net_bind_service setuid   # keep only these, bounding set too
//! no_new_privs yes                    # yes (default) | no
//! private-tmp yes                     # a /tmp of its own: yes | no (default)
//! state /data/etc/dropbear            # /data read-only but for this directory
//! memory-max 16M                      # cgroup v2 memory.max (K, M, G: 1024)
//! tasks-max 32                        # cgroup v2 pids.max
//! ```
//!
//! A file with an unknown key, a repeated single key, a bad value or no `command` is not a
//! service: it is skipped with one log line naming the file, the line and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

/// Names the supervisor defines itself; a file cannot take them.
pub const BUILT_IN: [&str; 3] = ["store", "network", "console"];

/// Service files larger than this are refused rather than read into memory.
const MAX_FILE_SIZE: u64 = 16 * 1024;

/// When a service is started again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Always,
    OnFailure,
    /// A one-shot task: it is "up" for the services that need it once it exited with 0.
    Never,
}

/// What a service file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub command: Vec<String>,
    pub needs: Vec<String>,
    pub restart: Restart,
    pub manual: bool,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// The capabilities kept (bit N = capability N); None keeps what init has.
    pub capabilities: Option<u64>,
    pub no_new_privs: bool,
    pub private_tmp: bool,
    /// The one writable directory on /data (an absolute path below /data).
    pub state: Option<String>,
    pub memory_max: Option<u64>,
    pub tasks_max: Option<u64>,
}

/// Linux's capabilities by number, as `capabilities` names them (`cap_` prefix optional).
pub const CAPABILITIES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// A size in bytes: digits with an optional K, M or G (powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    crate::log::number(digits)?.checked_mul(unit)
}

/// A parse error: the line number (1-based, 0 for the file as a whole) and the reason.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

/// A service name: `[a-z0-9][a-z0-9._-]*`, at most 64 bytes.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

/// Split a value into words: blanks separate words, `'...'` and `"..."` quote (without
/// escapes), and an unquoted `#` at the start of a word begins a comment.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some(_) => {}
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_ascii_whitespace()) {
            if c == '\'' || c == '"' {
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(other) => word.push(other),
                        None => return Err(format!("unterminated {c} quote")),
                    }
                }
            } else {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// Parse the text of a service file.
pub fn parse(text: &str) -> Result<Definition, ParseError> {
    let mut command = None;
    let mut needs = Vec::new();
    let mut restart = None;
    let mut manual = None;
    let mut env = Vec::new();
    let mut user = None;
    let mut group = None;
    let mut capabilities = None;
    let mut no_new_privs = None;
    let mut private_tmp = None;
    let mut state = None;
    let mut memory_max = None;
    let mut tasks_max = None;
    for (index, line) in text.lines().enumerate() {
        let error = |reason: String| ParseError {
            line: index + 1,
            reason,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((line, ""));
        let words = split_words(rest).map_err(error)?;
        if words.is_empty() {
            return Err(error(format!("{key}: missing value")));
        }
        let one = |what: &str| -> Result<String, ParseError> {
            match words.as_slice() {
                [word] => Ok(word.clone()),
                _ => Err(error(format!("{key}: expected one {what}"))),
            }
        };
        let twice = || error(format!("{key}: given twice"));
        match key {
            "command" => {
                if command.is_some() {
                    return Err(twice());
                }
                if !words[0].starts_with('/') {
                    return Err(error(format!(
                        "command: {:?} is not an absolute path",
                        words[0]
                    )));
                }
                command = Some(words);
            }
            "needs" => {
                for need in words {
                    if !valid_name(&need) {
                        return Err(error(format!("needs: {need:?} is not a service name")));
                    }
                    if !needs.contains(&need) {
                        needs.push(need);
                    }
                }
            }
            "restart" => {
                if restart.is_some() {
                    return Err(twice());
                }
                restart = Some(match one("policy")?.as_str() {
                    "always" => Restart::Always,
                    "on-failure" => Restart::OnFailure,
                    "never" => Restart::Never,
                    other => {
                        return Err(error(format!(
                            "restart: {other:?} is not always, on-failure or never"
                        )))
                    }
                });
            }
            "start" => {
                if manual.is_some() {
                    return Err(twice());
                }
                manual = Some(match one("mode")?.as_str() {
                    "auto" => false,
                    "manual" => true,
                    other => return Err(error(format!("start: {other:?} is not auto or manual"))),
                });
            }
            "env" => {
                for pair in words {
                    match pair.split_once('=') {
                        Some((name, value))
                            if !name.is_empty()
                                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                        {
                            env.push((name.to_owned(), value.to_owned()))
                        }
                        _ => return Err(error(format!("env: {pair:?} is not NAME=VALUE"))),
                    }
                }
            }
            "user" | "group" => {
                let slot = if key == "user" { &mut user } else { &mut group };
                if slot.is_some() {
                    return Err(twice());
                }
                let name = one("name")?;
                if !crate::users::valid_name(&name) {
                    return Err(error(format!("{key}: {name:?} is not a user name")));
                }
                *slot = Some(name);
            }
            "capabilities" => {
                if capabilities.is_some() {
                    return Err(twice());
                }
                let mut mask = 0u64;
                for word in &words {
                    if word == "none" && words.len() == 1 {
                        continue;
                    }
                    let name = word.strip_prefix("cap_").unwrap_or(word);
                    match CAPABILITIES.iter().position(|known| *known == name) {
                        Some(bit) => mask |= 1 << bit,
                        None => {
                            return Err(error(format!(
                                "capabilities: {word:?} is not a capability"
                            )))
                        }
                    }
                }
                capabilities = Some(mask);
            }
            "no_new_privs" | "private-tmp" => {
                let slot = if key == "private-tmp" {
                    &mut private_tmp
                } else {
                    &mut no_new_privs
                };
                if slot.is_some() {
                    return Err(twice());
                }
                *slot = Some(match one("word")?.as_str() {
                    "yes" => true,
                    "no" => false,
                    other => return Err(error(format!("{key}: {other:?} is not yes or no"))),
                });
            }
            "state" => {
                if state.is_some() {
                    return Err(twice());
                }
                let path = one("directory")?;
                let inside = path.strip_prefix("/data/").is_some_and(|rest| {
                    rest.split('/')
                        .all(|part| !part.is_empty() && part != "." && part != "..")
                });
                if !inside {
                    return Err(error(format!(
                        "state: {path:?} is not a directory below /data"
                    )));
                }
                state = Some(path);
            }
            "memory-max" | "tasks-max" => {
                let slot = if key == "memory-max" {
                    &mut memory_max
                } else {
                    &mut tasks_max
                };
                if slot.is_some() {
                    return Err(twice());
                }
                let value = one("number")?;
                let parsed = if key == "memory-max" {
                    parse_size(&value)
                } else {
                    crate::log::number(&value)
                };
                match parsed {
                    Some(number) if number > 0 => *slot = Some(number),
                    _ => return Err(error(format!("{key}: {value:?} is not a positive number"))),
                }
            }
            other => return Err(error(format!("unknown key {other:?}"))),
        }
    }
    let Some(command) = command else {
        return Err(ParseError {
            line: 0,
            reason: "no command line".into(),
        });
    };
    Ok(Definition {
        command,
        needs,
        restart: restart.unwrap_or(Restart::Always),
        manual: manual.unwrap_or(false),
        env,
        user,
        group,
        capabilities,
        no_new_privs: no_new_privs.unwrap_or(true),
        private_tmp: private_tmp.unwrap_or(false),
        state,
        memory_max,
        tasks_max,
    })
}

/// The services found in the service directories.
pub struct Loaded {
    /// By name, sorted.
    pub services: Vec<(String, Definition)>,
    /// False when a directory or file could not be read (as when the store's mount is
    /// dead): a service missing from `services` may then still exist.
    pub complete: bool,
}

/// Read every service of `dirs`; a later directory's file replaces an earlier one's of the
/// same name (so `/etc/amber/svc` overrides `/ro/svc`). A missing directory has no
/// services; every file that is not a valid service is reported through `report` and
/// left out.
pub fn load(dirs: &[PathBuf], report: &mut dyn FnMut(String)) -> Loaded {
    let mut complete = true;
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                complete &= error.kind() == std::io::ErrorKind::NotFound;
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else {
                complete = false;
                continue;
            };
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                report(format!("{}: skipped: name is not UTF-8", path.display()));
                continue;
            };
            // Hidden files are editors' and tools' temporary files, not services.
            if name.starts_with('.') {
                continue;
            }
            if !valid_name(&name) {
                report(format!(
                    "{}: skipped: not a service name ([a-z0-9][a-z0-9._-]*)",
                    path.display()
                ));
            } else if BUILT_IN.contains(&name.as_str()) {
                report(format!(
                    "{}: skipped: {name} is a built-in service",
                    path.display()
                ));
            } else if let Some(slot) = found.iter_mut().find(|(known, _)| *known == name) {
                slot.1 = path;
            } else {
                found.push((name, path));
            }
        }
    }
    crate::sort_small(&mut found);
    let mut services = Vec::with_capacity(found.len());
    for (name, path) in found {
        match read(&path) {
            Ok(definition) => services.push((name, definition)),
            Err((io, reason)) => {
                complete &= !io;
                report(format!("{}: skipped: {reason}", path.display()));
            }
        }
    }
    Loaded { services, complete }
}

/// A service file's definition, or (whether it was an I/O error, the reason).
fn read(path: &Path) -> Result<Definition, (bool, String)> {
    let io = |error: std::io::Error| (true, error.to_string());
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_file() {
        return Err((false, "not a regular file".into()));
    }
    if metadata.len() > MAX_FILE_SIZE {
        return Err((false, format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse(&text).map_err(|error| (false, error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A definition with the defaults of every optional key.
    fn plain() -> Definition {
        parse("command /bin/x\n").unwrap()
    }

    #[test]
    fn good_files() {
        let cases: &[(&str, Definition)] = &[
            (
                "command /bin/dropbear -F -R -p 22\nneeds network\nrestart always   # always\n",
                Definition {
                    command: words(&["/bin/dropbear", "-F", "-R", "-p", "22"]),
                    needs: words(&["network"]),
                    restart: Restart::Always,
                    manual: false,
                    env: vec![],
                    ..plain()
                },
            ),
            (
                "# a one-shot\n\n  command /bin/sh -c 'echo a  b; exit 0' \"x y\"z\nrestart never\nneeds a b\nneeds a c\nstart manual\nenv TZ=UTC A_1=x=y\n",
                Definition {
                    command: words(&["/bin/sh", "-c", "echo a  b; exit 0", "x yz"]),
                    needs: words(&["a", "b", "c"]),
                    restart: Restart::Never,
                    manual: true,
                    env: vec![("TZ".into(), "UTC".into()), ("A_1".into(), "x=y".into())],
                    ..plain()
                },
            ),
            (
                "command\t/sbin/x #comment\nrestart on-failure\n",
                Definition {
                    command: words(&["/sbin/x"]),
                    needs: vec![],
                    restart: Restart::OnFailure,
                    manual: false,
                    env: vec![],
                    ..plain()
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).as_ref(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn bad_files() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "no command line"),
            ("# only a comment\n", 0, "no command line"),
            ("needs network\n", 0, "no command line"),
            (
                "command /bin/a\ncommand /bin/b\n",
                2,
                "command: given twice",
            ),
            ("command bin/a\n", 1, "not an absolute path"),
            ("command\n", 1, "command: missing value"),
            ("command # nothing\n", 1, "command: missing value"),
            ("command /bin/a\nusers nobody\n", 2, "unknown key \"users\""),
            ("command /bin/a\nuser Root\n", 2, "is not a user name"),
            ("command /bin/a\nuser a b\n", 2, "expected one name"),
            (
                "command /bin/a\ngroup a\ngroup b\n",
                3,
                "group: given twice",
            ),
            (
                "command /bin/a\ncapabilities cap_frob\n",
                2,
                "is not a capability",
            ),
            (
                "command /bin/a\ncapabilities none kill\n",
                2,
                "\"none\" is not",
            ),
            (
                "command /bin/a\nno_new_privs maybe\n",
                2,
                "is not yes or no",
            ),
            (
                "command /bin/a\nprivate-tmp\n",
                2,
                "private-tmp: missing value",
            ),
            (
                "command /bin/a\nstate /etc/x\n",
                2,
                "is not a directory below /data",
            ),
            ("command /bin/a\nstate /data/../etc\n", 2, "below /data"),
            ("command /bin/a\nstate /data/\n", 2, "below /data"),
            (
                "command /bin/a\nmemory-max 12X\n",
                2,
                "is not a positive number",
            ),
            (
                "command /bin/a\nmemory-max 0\n",
                2,
                "is not a positive number",
            ),
            (
                "command /bin/a\ntasks-max 1K\n",
                2,
                "is not a positive number",
            ),
            ("Command /bin/a\n", 1, "unknown key \"Command\""),
            (
                "command /bin/a\nrestart sometimes\n",
                2,
                "is not always, on-failure or never",
            ),
            (
                "command /bin/a\nrestart always\nrestart never\n",
                3,
                "restart: given twice",
            ),
            (
                "command /bin/a\nrestart always never\n",
                2,
                "expected one policy",
            ),
            ("command /bin/a\nneeds Net\n", 2, "is not a service name"),
            ("command /bin/a\nstart later\n", 2, "is not auto or manual"),
            ("command /bin/a\nenv =x\n", 2, "is not NAME=VALUE"),
            ("command /bin/a\nenv X\n", 2, "is not NAME=VALUE"),
            ("command /bin/sh -c 'echo\n", 1, "unterminated ' quote"),
        ];
        for (text, line, reason) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, *line, "{text:?}: {error}");
            assert!(error.reason.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn privileges_and_limits() {
        let text = "command /sbin/dropbear -F\nuser dropbear\ngroup tty\n\
                    capabilities net_bind_service CAP_SETUID cap_setgid\nno_new_privs no\n\
                    private-tmp yes\nstate /data/etc/dropbear\nmemory-max 16M\ntasks-max 32\n";
        let definition = parse(&text.replace("CAP_SETUID", "setuid")).unwrap();
        assert_eq!(definition.user.as_deref(), Some("dropbear"));
        assert_eq!(definition.group.as_deref(), Some("tty"));
        assert_eq!(definition.capabilities, Some(1 << 10 | 1 << 7 | 1 << 6));
        assert!(!definition.no_new_privs);
        assert!(definition.private_tmp);
        assert_eq!(definition.state.as_deref(), Some("/data/etc/dropbear"));
        assert_eq!(definition.memory_max, Some(16 << 20));
        assert_eq!(definition.tasks_max, Some(32));
        // Names are lowercase: CAP_SETUID is not one.
        assert!(parse(text).is_err());
        let defaults = plain();
        assert!(defaults.no_new_privs && !defaults.private_tmp);
        assert_eq!(defaults.capabilities, None);
        assert_eq!(
            parse("command /bin/x\ncapabilities none\n")
                .unwrap()
                .capabilities,
            Some(0)
        );
        for (text, size) in [
            ("1", Some(1)),
            ("2k", Some(2048)),
            ("3G", Some(3 << 30)),
            ("", None),
            ("M", None),
            ("-1", None),
        ] {
            assert_eq!(parse_size(text), size, "{text}");
        }
        assert_eq!(CAPABILITIES[40], "checkpoint_restore");
    }

    #[test]
    fn names() {
        for good in ["dropbear", "a", "0", "ntp.d", "my_svc-2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "-x", ".x", "_x", "A", "a b", "a/b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn later_directory_overrides_and_bad_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("amber-boot-service-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (packages, admin) = (dir.join("ro"), dir.join("etc"));
        std::fs::create_dir_all(&packages).unwrap();
        std::fs::create_dir_all(&admin).unwrap();
        std::fs::write(packages.join("web"), "command /bin/httpd\n").unwrap();
        std::fs::write(packages.join("ntp"), "command /bin/ntpd\n").unwrap();
        std::fs::write(admin.join("web"), "command /bin/httpd -p 8080\n").unwrap();
        std::fs::write(admin.join("bad"), "command /bin/x\nfoo bar\n").unwrap();
        std::fs::write(admin.join("network"), "command /bin/x\n").unwrap();
        std::fs::write(admin.join("Upper"), "command /bin/x\n").unwrap();
        std::fs::write(admin.join(".web.swp"), "junk").unwrap();
        let mut reports = Vec::new();
        let loaded = load(
            &[packages, admin.clone(), dir.join("missing")],
            &mut |line| reports.push(line),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(loaded.complete);
        let names: Vec<&str> = loaded
            .services
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["ntp", "web"]);
        assert_eq!(
            loaded.services[1].1.command,
            words(&["/bin/httpd", "-p", "8080"])
        );
        reports.sort();
        assert_eq!(reports.len(), 3, "{reports:?}");
        assert!(reports[0].ends_with("Upper: skipped: not a service name ([a-z0-9][a-z0-9._-]*)"));
        assert!(reports[1].ends_with("bad: skipped: line 2: unknown key \"foo\""));
        assert!(reports[2].ends_with("network: skipped: network is a built-in service"));

        // A directory that cannot be read (here: a file) makes the result incomplete.
        let file =
            std::env::temp_dir().join(format!("amber-boot-service-file-{}", std::process::id()));
        std::fs::write(&file, "").unwrap();
        let loaded = load(std::slice::from_ref(&file), &mut |_| {});
        std::fs::remove_file(&file).unwrap();
        assert!(!loaded.complete);
        assert!(loaded.services.is_empty());
    }
}
