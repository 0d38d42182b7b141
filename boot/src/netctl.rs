//! `net`: show and change the network settings. A change is checked, written to
//! /data/etc/amber/network (atomically, durably) and applied at once, without a reboot:
//! init restarts the `network` unit through its control socket, and the new daemon
//! sets everything up from the new settings.
//!
//! ```text
//! net                          where the settings come from, the state, the settings
//! net show                     the settings in effect, as the file says them
//! net set IF KEY [VALUE]...    change (or add) interface IF: dhcp | address A/P |
//!                              gateway G | role wan|lan | mtu N | ipv6 on|off |
//!                              pool FIRST LAST | lease 12h
//! net del IF                   remove interface IF from the settings
//! net dns [SERVER]...          the DNS servers (tcp:A for TCP); none: only DHCP's
//! net ntp [SERVER]...          the SNTP servers; none: only DHCP's
//! net reset                    back to the board's defaults
//! net apply                    apply the settings in effect again
//! net check [FILE]             check a settings file (default: the device's own)
//! ```
//!
//! `net daemon` and `net clock` are what init's `network` and `clock` units run; `net
//! router` prints each interface's role for the `router` package's scripts (one line
//! each: `wan NAME`, or `lan NAME ADDRESS PREFIX NETMASK FIRST LAST LEASE-SECONDS`).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::netconfig::{self, Config, Source, DATA_FILE};
use crate::netconfig::{Ipv4, Role};
use crate::{control, netd, sntp, status};

const USAGE: &str = "usage: net [show | set IF KEY [VALUE]... | del IF | dns [SERVER]... | ntp [SERVER]... | reset | apply | check [FILE] | router]";

/// The first lines of the device's own file.
const HEADER: &str = "# This device's network settings, written by `net` (boot/README.md has the format).\n# They replace the board's defaults (/etc/amber/network); `net reset` returns to those.\n";

fn fail(message: &str) -> ExitCode {
    eprintln!("net: {message}");
    ExitCode::FAILURE
}

fn print(text: &str) -> ExitCode {
    match amber_base::stdout::write(text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("stdout: {error}")),
    }
}

pub fn main(args: Vec<OsString>) -> ExitCode {
    let words: Vec<String> = args
        .into_iter()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let (command, rest) = match words.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("", &[][..]),
    };
    let mut config = netconfig::load().config;
    let changed = match (command, rest) {
        ("", []) => return overview(),
        ("show", []) => return print(&netconfig::render(&config)),
        ("set", [name, changes @ ..]) if !changes.is_empty() => set(&mut config, name, changes),
        ("del", [name]) => {
            let before = config.interfaces.len();
            config.interfaces.retain(|i| i.name != *name);
            if config.interfaces.len() == before {
                Err(format!("{name} is not in the settings"))
            } else {
                Ok(())
            }
        }
        ("dns" | "ntp", servers) => {
            let text = format!("{command} {}\n", servers.join(" "));
            netconfig::parse(&text).map_err(strip_line).map(|given| {
                if command == "dns" {
                    config.dns = given.dns;
                } else {
                    config.ntp = given.ntp;
                }
            })
        }
        _ => return other(command, rest),
    };
    match changed {
        Ok(()) => save(&config),
        Err(error) => fail(&error),
    }
}

/// The commands that change nothing in the settings.
fn other(command: &str, rest: &[String]) -> ExitCode {
    match (command, rest) {
        ("reset", []) => {
            if let Err(error) = amber_base::durable::remove_durable(Path::new(DATA_FILE)) {
                return fail(&error.to_string());
            }
            apply()
        }
        ("apply", []) => apply(),
        ("check", [file]) => check(file),
        ("check", []) => check(DATA_FILE),
        ("daemon", []) => netd::main(),
        ("clock", []) => sntp::main(),
        ("router", []) => print(&router(&netconfig::load().config)),
        ("-h" | "--help" | "help", []) => print(&format!("{USAGE}\n")),
        _ => {
            eprintln!("net: unknown command or arguments\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `line 1: reason` → `reason`, for settings made from a command line.
fn strip_line(error: String) -> String {
    match error.split_once(": ") {
        Some((line, rest)) if line.starts_with("line ") => rest.to_owned(),
        _ => error,
    }
}

fn overview() -> ExitCode {
    let loaded = netconfig::load();
    let source = match loaded.source {
        Source::Data => format!("{DATA_FILE} (`net reset` returns to the board's defaults)"),
        Source::Board => format!("{} (the board's defaults)", netconfig::BOARD_FILE),
    };
    let dir = Path::new(status::DIR);
    let state = |name| status::read(dir, name).unwrap_or_else(|| "not running".into());
    let mut text = format!(
        "settings: {source}\nnetwork:  {}\nclock:    {}\n",
        state("network"),
        state("clock")
    );
    if let Some(warning) = &loaded.warning {
        text += &format!("warning:  {warning}\n");
    }
    text.push('\n');
    text += &netconfig::render(&loaded.config);
    print(&text)
}

/// Write changed settings as the device's own, and apply them.
fn save(config: &Config) -> ExitCode {
    let text = netconfig::render(config);
    // The whole file must parse: settings that belong together are checked together.
    if let Err(error) = netconfig::parse(&text) {
        return fail(&strip_line(error));
    }
    let path = Path::new(DATA_FILE);
    let written = path
        .parent()
        .map_or(Ok(()), amber_base::durable::create_dir_all_durable)
        .and_then(|()| {
            amber_base::durable::write_atomic(path, format!("{HEADER}{text}").as_bytes())
        });
    if let Err(error) = written {
        return fail(&error.to_string());
    }
    apply()
}

/// What the `router` package's scripts read (see the module doc).
fn router(config: &Config) -> String {
    let mut text = String::new();
    for interface in &config.interfaces {
        match (interface.role, interface.ipv4, interface.dhcp_pool()) {
            (
                Role::Lan,
                Ipv4::Static {
                    address, prefix, ..
                },
                Some((first, last)),
            ) => {
                text += &format!(
                    "lan {} {address} {prefix} {} {first} {last} {}\n",
                    interface.name,
                    netconfig::netmask(prefix),
                    interface.lease
                )
            }
            (Role::Wan, ..) => text += &format!("wan {}\n", interface.name),
            _ => {}
        }
    }
    text
}

/// Restart the network unit, which reads the settings again, and then the router's
/// services when there are (the `router` package's), which read them too.
fn apply() -> ExitCode {
    let socket = Path::new(control::SOCKET);
    let ask = |name: &str| {
        let request = control::Request::Restart(name.into());
        control::ask(socket, &request, Duration::from_secs(30))
    };
    let answer = ask("network");
    if matches!(answer, Ok(control::Answer::Ok(_))) {
        for name in ["firewall", "dnsmasq"] {
            let _ = ask(name);
        }
    }
    match answer {
        Ok(control::Answer::Ok(text)) => print(&format!("applied: {text}")),
        Ok(control::Answer::Fail(text) | control::Answer::Usage(text)) => {
            fail(&format!("written, but not applied: {}", text.trim_end()))
        }
        Err(error) => fail(&format!(
            "written, but not applied: {}: {error}",
            socket.display()
        )),
    }
}

fn check(file: &str) -> ExitCode {
    match std::fs::read_to_string(file) {
        Ok(text) => match netconfig::parse(&text) {
            Ok(_) => print(&format!("{file}: ok\n")),
            Err(error) => fail(&format!("{file}: {error}")),
        },
        Err(error) => fail(&format!("{file}: {error}")),
    }
}

/// `net set IF KEY [VALUE]...`: the interface's block with these keys replaced.
fn set(config: &mut Config, name: &str, changes: &[String]) -> Result<(), String> {
    let existing = config.interfaces.iter().position(|i| i.name == name);
    // The block as the file says it: (key, value) lines.
    let mut lines: Vec<(String, String)> = match existing {
        Some(index) => {
            let alone = Config {
                interfaces: vec![config.interfaces[index].clone()],
                ..Config::default()
            };
            netconfig::render(&alone)
                .lines()
                .skip(1)
                .map(|line| match line.trim().split_once(' ') {
                    Some((key, value)) => (key.to_owned(), value.to_owned()),
                    None => (line.trim().to_owned(), String::new()),
                })
                .collect()
        }
        None => Vec::new(),
    };
    let mut words = changes.iter().map(String::as_str);
    while let Some(key) = words.next() {
        let count = match key {
            "dhcp" => 0,
            "pool" => 2,
            "address" | "gateway" | "role" | "mtu" | "ipv6" | "lease" => 1,
            _ => return Err(format!("unknown key {key:?} (see `net help`)")),
        };
        let value: Vec<&str> = words.by_ref().take(count).collect();
        if value.len() != count {
            return Err(format!("{key} needs {count} value(s)"));
        }
        let replaced: &[&str] = match key {
            "dhcp" => &["dhcp", "address", "gateway"],
            "address" => &["dhcp", "address"],
            other => &[other],
        };
        lines.retain(|(k, _)| !replaced.contains(&k.as_str()));
        lines.push((key.to_owned(), value.join(" ")));
    }
    let mut text = format!("interface {name}\n");
    for (key, value) in &lines {
        text += &format!("{key} {value}\n");
    }
    let interface = netconfig::parse(&text)
        .map_err(strip_line)?
        .interfaces
        .remove(0);
    match existing {
        Some(index) => config.interfaces[index] = interface,
        None => config.interfaces.push(interface),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(start: &str, name: &str, words: &str) -> Result<String, String> {
        let mut config = netconfig::parse(start).unwrap();
        let words: Vec<String> = words.split(' ').map(String::from).collect();
        set(&mut config, name, &words)?;
        Ok(netconfig::render(&config))
    }

    #[test]
    fn set_replaces_keys_of_one_interface() {
        let start = "interface eth0\ndhcp\n";
        assert_eq!(
            changed(start, "eth1", "role lan address 192.168.8.1/24").unwrap(),
            "interface eth0\n  role wan\n  dhcp\n\ninterface eth1\n  role lan\n  address 192.168.8.1/24\n"
        );
        assert_eq!(
            changed(start, "eth0", "address 10.0.2.15/24 gateway 10.0.2.2").unwrap(),
            "interface eth0\n  role wan\n  address 10.0.2.15/24\n  gateway 10.0.2.2\n"
        );
        let fixed = "interface eth0\naddress 10.0.2.15/24\ngateway 10.0.2.2\nmtu 1400\n";
        assert_eq!(
            changed(fixed, "eth0", "dhcp").unwrap(),
            "interface eth0\n  role wan\n  dhcp\n  mtu 1400\n"
        );
        // Checked as the file would be.
        let error = changed(start, "eth0", "role lan").unwrap_err();
        assert!(
            error.contains("eth0 is a lan: it needs a static address"),
            "{error}"
        );
        let error = changed(start, "eth1", "role lan").unwrap_err();
        assert!(
            error.contains("interface eth1 needs `dhcp` or `address"),
            "{error}"
        );
        assert!(changed(start, "eth0", "colour red")
            .unwrap_err()
            .contains("unknown key"));
        assert!(changed(start, "eth0", "pool 10.0.0.1")
            .unwrap_err()
            .contains("needs 2"));
    }

    #[test]
    fn lines_stripped() {
        assert_eq!(strip_line("line 3: bad".into()), "bad");
        assert_eq!(strip_line("bad: thing".into()), "bad: thing");
    }
}
