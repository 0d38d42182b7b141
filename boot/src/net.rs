//! The static IPv4 network: /etc/amber/network and the `amber.ip`, `amber.gw`, `amber.if`
//! kernel parameters, applied with ioctls on an AF_INET datagram socket.
//!
//! The file has one `key value` per line (`#` comments), each key at most once:
//!
//! ```text
//! address 10.0.2.15/24
//! gateway 10.0.2.2       # optional
//! interface eth0         # optional, default eth0
//! ```
//!
//! Each kernel parameter replaces the file's value of the same meaning.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

use crate::cmdline::CommandLine;
use crate::sys;

/// The interface configured when none is named.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// A checked network configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.interface, self.address, self.prefix)?;
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        Ok(())
    }
}

/// The values given so far, before they are checked into a [`Config`].
#[derive(Default)]
struct Given {
    interface: Option<String>,
    address: Option<String>,
    gateway: Option<String>,
}

fn parse_file(text: &str, given: &mut Given) -> Result<(), String> {
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("line {}: expected `key value`", index + 1));
        };
        let slot = match key {
            "address" => &mut given.address,
            "gateway" => &mut given.gateway,
            "interface" => &mut given.interface,
            other => return Err(format!("line {}: unknown key {other:?}", index + 1)),
        };
        if slot.replace(value.to_owned()).is_some() {
            return Err(format!("line {}: {key} given twice", index + 1));
        }
    }
    Ok(())
}

/// Parse `A.B.C.D/PREFIX`.
pub fn parse_address(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("{text:?} is not an IPv4 address with a prefix (10.0.2.15/24)");
    let (address, prefix_text) = text.split_once('/').ok_or_else(bad)?;
    let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix_text.parse().map_err(|_| bad())?;
    // Only the plain decimal spelling: no sign, no leading zeros.
    if !(1..=32).contains(&prefix) || prefix.to_string() != prefix_text {
        return Err(bad());
    }
    Ok((address, prefix))
}

/// The netmask of a prefix length: 24 → 255.255.255.0.
pub fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The configuration from the file's text (if there is a file) and the kernel command line;
/// Ok(None) when neither configures an address.
pub fn configure(file: Option<&str>, command_line: &CommandLine) -> Result<Option<Config>, String> {
    let mut given = Given::default();
    if let Some(text) = file {
        parse_file(text, &mut given)?;
    }
    for (parameter, slot) in [
        ("amber.ip", &mut given.address),
        ("amber.gw", &mut given.gateway),
        ("amber.if", &mut given.interface),
    ] {
        if let Some(value) = command_line.get(parameter) {
            *slot = Some(value.to_owned());
        }
    }
    let Some(address) = given.address else {
        if given.gateway.is_some() || given.interface.is_some() {
            return Err("a gateway or interface is given but no address".into());
        }
        return Ok(None);
    };
    let (address, prefix) = parse_address(&address)?;
    let gateway = match given.gateway {
        Some(text) => Some(
            text.parse::<Ipv4Addr>()
                .map_err(|_| format!("gateway {text:?} is not an IPv4 address"))?,
        ),
        None => None,
    };
    let interface = given
        .interface
        .unwrap_or_else(|| DEFAULT_INTERFACE.to_owned());
    if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ', '\0']) {
        return Err(format!("{interface:?} is not an interface name"));
    }
    Ok(Some(Config {
        interface,
        address,
        prefix,
        gateway,
    }))
}

/// Bring up the loopback interface.
pub fn loopback_up() -> io::Result<()> {
    let socket = sys::inet_socket()?;
    sys::set_address(&socket, "lo", Ipv4Addr::LOCALHOST)?;
    sys::set_netmask(&socket, "lo", netmask(8))?;
    sys::interface_up(&socket, "lo")
}

/// Apply a configuration. A missing interface is `ErrorKind::NotFound`-like ENODEV, which the
/// caller retries for a while (a driver may still be probing).
pub fn apply(config: &Config) -> io::Result<()> {
    let socket = sys::inet_socket()?;
    let interface = config.interface.as_str();
    sys::set_address(&socket, interface, config.address)?;
    sys::set_netmask(&socket, interface, netmask(config.prefix))?;
    sys::interface_up(&socket, interface)?;
    if let Some(gateway) = config.gateway {
        match sys::add_default_route(&socket, gateway) {
            // A route left from an earlier attempt is the route we want.
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
    }
    // Up means packets can go: a NIC that negotiates its link (e1000e takes seconds
    // after it is brought up) is not up before it has a carrier.
    if !has_carrier(interface) {
        return Err(io::Error::from_raw_os_error(libc::ENOLINK));
    }
    Ok(())
}

/// Whether the interface reports a link (`/sys/class/net/IF/carrier` is 1). An
/// interface that cannot say (no such file) counts as having one.
fn has_carrier(interface: &str) -> bool {
    match std::fs::read_to_string(format!("/sys/class/net/{interface}/carrier")) {
        Ok(text) => text.trim() == "1",
        Err(_) => true,
    }
}

/// Whether an error from [`apply`] means the interface is not there yet: it does not
/// exist, or it has no link.
pub fn not_yet(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENODEV | libc::ENOLINK))
}

/// What [`not_yet`] means, in words.
pub fn not_yet_reason(error: &io::Error) -> &'static str {
    if error.raw_os_error() == Some(libc::ENOLINK) {
        "no link"
    } else {
        "no such interface"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(interface: &str, address: [u8; 4], prefix: u8, gateway: Option<[u8; 4]>) -> Config {
        Config {
            interface: interface.into(),
            address: address.into(),
            prefix,
            gateway: gateway.map(Ipv4Addr::from),
        }
    }

    #[test]
    fn files_and_command_lines() {
        let file = "address 10.0.2.15/24\ngateway 10.0.2.2\ninterface eth0\n";
        let none = CommandLine::default();
        // (file, kernel command line, the configuration or part of the error)
        type Case<'a> = (Option<&'a str>, &'a str, Result<Option<Config>, &'a str>);
        let cases: &[Case] = &[
            (
                Some(file),
                "",
                Ok(Some(config(
                    "eth0",
                    [10, 0, 2, 15],
                    24,
                    Some([10, 0, 2, 2]),
                ))),
            ),
            (None, "", Ok(None)),
            (Some("# nothing\n\n"), "", Ok(None)),
            (
                Some("address 192.168.1.1/16 # lan\n"),
                "",
                Ok(Some(config("eth0", [192, 168, 1, 1], 16, None))),
            ),
            (
                Some(file),
                "amber.ip=10.1.0.5/8 amber.if=eth1",
                Ok(Some(config("eth1", [10, 1, 0, 5], 8, Some([10, 0, 2, 2])))),
            ),
            (
                None,
                "amber.ip=10.0.2.15/32 amber.gw=10.0.2.2",
                Ok(Some(config(
                    "eth0",
                    [10, 0, 2, 15],
                    32,
                    Some([10, 0, 2, 2]),
                ))),
            ),
            (
                Some("address 10.0.2.15\n"),
                "",
                Err("not an IPv4 address with a prefix"),
            ),
            (
                Some("address 10.0.2.15/33\n"),
                "",
                Err("not an IPv4 address with a prefix"),
            ),
            (
                Some("address 10.0.2.15/0\n"),
                "",
                Err("not an IPv4 address with a prefix"),
            ),
            (
                Some("address 10.0.2.15/+8\n"),
                "",
                Err("not an IPv4 address with a prefix"),
            ),
            (
                Some("address 10.0.2/8\n"),
                "",
                Err("not an IPv4 address with a prefix"),
            ),
            (
                Some("address 10.0.2.15/8\ngateway router\n"),
                "",
                Err("gateway \"router\""),
            ),
            (
                Some("address 10.0.2.15/8\nmtu 1400\n"),
                "",
                Err("line 2: unknown key \"mtu\""),
            ),
            (
                Some("address 10.0.2.15/8\naddress 10.0.2.16/8\n"),
                "",
                Err("line 2: address given twice"),
            ),
            (Some("address\n"), "", Err("line 1: expected `key value`")),
            (
                Some("address 10.0.2.15/8 extra\n"),
                "",
                Err("line 1: expected `key value`"),
            ),
            (Some("gateway 10.0.2.2\n"), "", Err("no address")),
            (None, "amber.if=eth0", Err("no address")),
            (
                None,
                "amber.ip=10.0.2.15/24 amber.if=averyveryverylongname",
                Err("is not an interface name"),
            ),
        ];
        for (file, line, expected) in cases {
            let got = configure(*file, &CommandLine::parse(line));
            match (expected, &got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "{file:?} {line:?}"),
                (Err(want), Err(got)) => assert!(got.contains(want), "{file:?} {line:?}: {got}"),
                _ => panic!("{file:?} {line:?}: got {got:?}, want {expected:?}"),
            }
        }
        assert_eq!(configure(None, &none), Ok(None));
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(1), Ipv4Addr::new(128, 0, 0, 0));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(
            config("eth0", [10, 0, 2, 15], 24, Some([10, 0, 2, 2])).to_string(),
            "eth0 10.0.2.15/24 via 10.0.2.2"
        );
    }
}
