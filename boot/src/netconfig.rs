//! The network settings: the format of `/etc/amber/network` (the board's defaults, made
//! by `cargo xtask image` from the board file) and `/data/etc/amber/network` (the
//! device's own, which replaces the defaults whole), parsed strictly and written back in
//! one canonical form; and which of the two is in effect.
//!
//! ```text
//! # Before the first interface: settings for the whole device.
//! dns 9.9.9.9 tcp:10.0.2.53   # upstream DNS servers, asked before DHCP's; tcp: = over TCP
//! ntp pool.ntp.org 10.0.2.2   # SNTP servers, asked before DHCP's (option 42)
//!
//! interface eth0              # one block per interface, up to the next `interface`
//!   role wan                  # wan (default) | lan
//!   dhcp                      # or: address 10.0.2.15/24 and optionally gateway 10.0.2.2
//!   mtu 1500                  # optional
//!   ipv6 on                   # SLAAC: on (default for wan) | off (default for lan)
//!
//! interface eth1
//!   role lan                  # a lan needs a static address
//!   address 192.168.8.1/24
//!   pool 192.168.8.100 192.168.8.249   # the DHCP server's addresses (this default)
//!   lease 12h                 # how long its leases last (s, m, h, d; default 12h)
//! ```
//!
//! Each key at most once per block; `#` starts a comment; indentation is free.

use std::fmt::{self, Write};
use std::net::Ipv4Addr;

use crate::cmdline::CommandLine;

/// The board's defaults, in the initramfs.
pub const BOARD_FILE: &str = "/etc/amber/network";
/// The device's own settings, which replace the defaults when they parse.
pub const DATA_FILE: &str = "/data/etc/amber/network";

/// The longest interface name the kernel takes (IFNAMSIZ - 1).
const MAX_NAME: usize = 15;
/// The lease time of the DHCP server on a lan, unless `lease` says otherwise.
const DEFAULT_LEASE: u32 = 12 * 3600;

/// Checked network settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub dns: Vec<Server>,
    pub ntp: Vec<String>,
    pub interfaces: Vec<Interface>,
}

/// An upstream DNS server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    pub address: Ipv4Addr,
    /// Ask it over TCP (RFC 7766) instead of UDP.
    pub tcp: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Toward the world: DHCP client or static, the default route, SLAAC; with a lan
    /// beside it, NAT and the firewall's default deny.
    Wan,
    /// Toward the devices behind a router: a static address, the DHCP server, DNS.
    Lan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4 {
    Dhcp,
    Static {
        address: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub role: Role,
    pub ipv4: Ipv4,
    pub mtu: Option<u16>,
    /// IPv6 addresses by SLAAC (the kernel's, from router advertisements).
    pub ipv6: bool,
    /// The DHCP server's first and last address (lan only).
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// The DHCP server's lease time in seconds (lan only).
    pub lease: u32,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Wan => "wan",
            Role::Lan => "lan",
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tcp {
            f.write_str("tcp:")?;
        }
        write!(f, "{}", self.address)
    }
}

impl Interface {
    /// A new interface's settings: a wan by DHCP.
    pub fn new(name: &str) -> Interface {
        Interface {
            name: name.to_owned(),
            role: Role::Wan,
            ipv4: Ipv4::Dhcp,
            mtu: None,
            ipv6: true,
            pool: None,
            lease: DEFAULT_LEASE,
        }
    }

    /// The pool the DHCP server gives out: the one set, or by default host numbers 100
    /// to 249 of the subnet (the whole subnet but its ends, when it is smaller than that).
    pub fn dhcp_pool(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let Ipv4::Static {
            address, prefix, ..
        } = self.ipv4
        else {
            return None;
        };
        if self.pool.is_some() {
            return self.pool;
        }
        let mask = u32::from(netmask(prefix));
        let network = u32::from(address) & mask;
        let last = network | !mask;
        let (first, end) = if last - network > 250 {
            (network + 100, network + 249)
        } else {
            (network + 1, last.saturating_sub(1).max(network + 1))
        };
        Some((first.into(), end.into()))
    }
}

/// The netmask of a prefix length: 24 → 255.255.255.0.
pub fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// Parse `A.B.C.D/PREFIX`.
pub fn parse_address(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("{text:?} is not an IPv4 address with a prefix (10.0.2.15/24)");
    let (address, prefix_text) = text.split_once('/').ok_or_else(bad)?;
    let address = parse_ipv4(address).map_err(|_| bad())?;
    let prefix: u8 = prefix_text.parse().map_err(|_| bad())?;
    // Only the plain decimal spelling: no sign, no leading zeros.
    if !(1..=32).contains(&prefix) || prefix.to_string() != prefix_text {
        return Err(bad());
    }
    Ok((address, prefix))
}

fn parse_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address"))
}

/// `30`, `90s`, `15m`, `12h`, `7d` → seconds.
pub fn parse_duration(text: &str) -> Result<u32, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&seconds| seconds >= 60)
        .ok_or_else(|| format!("{text:?} is not a duration of a minute or more (12h, 30m, 7d)"))
}

/// A duration as the file writes it: the largest unit that divides it.
fn duration_text(seconds: u32) -> String {
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The keys an interface block may have, once each.
const KEYS: &[&str] = &[
    "role", "dhcp", "address", "gateway", "mtu", "ipv6", "pool", "lease",
];

/// What one block says, before it is checked.
#[derive(Default)]
struct Block<'a> {
    name: &'a str,
    line: usize,
    /// (key, value words, line) in the order given.
    given: Vec<(&'a str, Vec<&'a str>, usize)>,
}

impl<'a> Block<'a> {
    fn get(&self, key: &str) -> Option<(&[&'a str], usize)> {
        self.given
            .iter()
            .find(|(k, ..)| *k == key)
            .map(|(_, words, line)| (words.as_slice(), *line))
    }
}

/// Parse a settings file; an error names the line and the reason.
pub fn parse(text: &str) -> Result<Config, String> {
    let mut config = Config::default();
    let mut blocks: Vec<Block> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let at = |message: String| format!("line {number}: {message}");
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_ascii_whitespace();
        let Some(key) = words.next() else {
            continue;
        };
        let values: Vec<&str> = words.collect();
        match (key, blocks.last_mut()) {
            ("interface", _) => {
                let [name] = values[..] else {
                    return Err(at("expected `interface NAME`".into()));
                };
                if !valid_name(name) {
                    return Err(at(format!("{name:?} is not an interface name")));
                }
                if blocks.iter().any(|block| block.name == name) {
                    return Err(at(format!("interface {name} is given twice")));
                }
                blocks.push(Block {
                    name,
                    line: number,
                    given: Vec::new(),
                });
            }
            ("dns" | "ntp", Some(_)) => {
                return Err(at(format!(
                    "`{key}` is for the whole device: put it before the first interface"
                )))
            }
            ("dns", None) => {
                for value in values {
                    let (tcp, address) = match value.strip_prefix("tcp:") {
                        Some(address) => (true, address),
                        None => (false, value),
                    };
                    let address = parse_ipv4(address).map_err(at)?;
                    config.dns.push(Server { address, tcp });
                }
            }
            ("ntp", None) => {
                for value in values {
                    if value.is_empty() || value.len() > 253 || value.contains(['/', ':']) {
                        return Err(at(format!("{value:?} is not a host name or address")));
                    }
                    config.ntp.push(value.to_owned());
                }
            }
            (key, Some(block)) if KEYS.contains(&key) => {
                if block.get(key).is_some() {
                    return Err(at(format!("{key} is given twice for {}", block.name)));
                }
                let wanted = match key {
                    "dhcp" => 0,
                    "pool" => 2,
                    _ => 1,
                };
                if values.len() != wanted {
                    return Err(at(match wanted {
                        0 => format!("`{key}` takes no value"),
                        1 => format!("expected `{key} VALUE`"),
                        _ => format!("expected `{key} FIRST LAST`"),
                    }));
                }
                block.given.push((key, values, number));
            }
            (key, None) if KEYS.contains(&key) => {
                return Err(at(format!(
                    "`{key}` belongs to an interface: put `interface NAME` before it"
                )))
            }
            (key, _) => return Err(at(format!("unknown key {key:?}"))),
        }
    }
    for block in &blocks {
        config.interfaces.push(check(block)?);
    }
    Ok(config)
}

/// Check one interface block into its settings.
fn check(block: &Block) -> Result<Interface, String> {
    let name = block.name;
    let mut interface = Interface::new(name);
    let at = |line: usize, message: String| format!("line {line}: {message}");
    if let Some(([role], line)) = block.get("role") {
        interface.role = match *role {
            "wan" => Role::Wan,
            "lan" => Role::Lan,
            _ => return Err(at(line, format!("role {role:?} is neither wan nor lan"))),
        };
    }
    interface.ipv4 = match (
        block.get("dhcp"),
        block.get("address"),
        block.get("gateway"),
    ) {
        (Some(_), Some((_, line)), _) | (Some(_), _, Some((_, line))) => {
            return Err(at(line, format!("{name} is dhcp: no address or gateway")))
        }
        (Some(_), None, None) => Ipv4::Dhcp,
        (None, Some(([address], line)), gateway) => {
            let (address, prefix) = parse_address(address).map_err(|e| at(line, e))?;
            let gateway = match gateway {
                Some(([gateway], line)) => Some(parse_ipv4(gateway).map_err(|e| at(line, e))?),
                _ => None,
            };
            Ipv4::Static {
                address,
                prefix,
                gateway,
            }
        }
        (None, None, Some((_, line))) => {
            return Err(at(line, format!("{name} has a gateway but no address")))
        }
        _ => {
            return Err(at(
                block.line,
                format!("interface {name} needs `dhcp` or `address A.B.C.D/PREFIX`"),
            ))
        }
    };
    if let Some(([mtu], line)) = block.get("mtu") {
        interface.mtu = Some(
            mtu.parse::<u16>()
                .ok()
                .filter(|mtu| *mtu >= 576)
                .ok_or_else(|| at(line, format!("mtu {mtu:?} is not 576 to 65535")))?,
        );
    }
    interface.ipv6 = interface.role == Role::Wan;
    if let Some(([ipv6], line)) = block.get("ipv6") {
        interface.ipv6 = match *ipv6 {
            "on" => true,
            "off" => false,
            _ => return Err(at(line, format!("ipv6 {ipv6:?} is neither on nor off"))),
        };
    }
    let lan_only = ["pool", "lease"]
        .iter()
        .find_map(|key| block.get(key).map(|(_, line)| (key, line)));
    if interface.role == Role::Wan {
        if let Some((key, line)) = lan_only {
            return Err(at(line, format!("`{key}` is for a lan interface")));
        }
        return Ok(interface);
    }
    let Ipv4::Static {
        address, prefix, ..
    } = interface.ipv4
    else {
        return Err(at(
            block.line,
            format!("{name} is a lan: it needs a static address, not dhcp"),
        ));
    };
    if let Some(([lease], line)) = block.get("lease") {
        interface.lease = parse_duration(lease).map_err(|e| at(line, e))?;
    }
    if let Some(([first, last], line)) = block.get("pool") {
        let first = parse_ipv4(first).map_err(|e| at(line, e))?;
        let last = parse_ipv4(last).map_err(|e| at(line, e))?;
        let mask = u32::from(netmask(prefix));
        let inside = |a: Ipv4Addr| u32::from(a) & mask == u32::from(address) & mask;
        if !inside(first) || !inside(last) || first > last {
            return Err(at(
                line,
                format!("pool {first} {last} is not a range inside {address}/{prefix}"),
            ));
        }
        if (first..=last).contains(&address) {
            return Err(at(
                line,
                format!("pool {first} {last} holds {address} itself"),
            ));
        }
        interface.pool = Some((first, last));
    }
    Ok(interface)
}

/// The settings as a file, canonically: what `net` writes.
pub fn render(config: &Config) -> String {
    let mut text = String::new();
    let mut list = |key: &str, items: &mut dyn Iterator<Item = String>| {
        let items: Vec<String> = items.collect();
        if !items.is_empty() {
            let _ = writeln!(text, "{key} {}", items.join(" "));
        }
    };
    list("dns", &mut config.dns.iter().map(Server::to_string));
    list("ntp", &mut config.ntp.iter().cloned());
    for interface in &config.interfaces {
        let _ = writeln!(
            text,
            "\ninterface {}\n  role {}",
            interface.name,
            interface.role.name()
        );
        match interface.ipv4 {
            Ipv4::Dhcp => text.push_str("  dhcp\n"),
            Ipv4::Static {
                address,
                prefix,
                gateway,
            } => {
                let _ = writeln!(text, "  address {address}/{prefix}");
                if let Some(gateway) = gateway {
                    let _ = writeln!(text, "  gateway {gateway}");
                }
            }
        }
        if let Some(mtu) = interface.mtu {
            let _ = writeln!(text, "  mtu {mtu}");
        }
        if interface.ipv6 != (interface.role == Role::Wan) {
            let _ = writeln!(text, "  ipv6 {}", if interface.ipv6 { "on" } else { "off" });
        }
        if let Some((first, last)) = interface.pool {
            let _ = writeln!(text, "  pool {first} {last}");
        }
        if interface.role == Role::Lan && interface.lease != DEFAULT_LEASE {
            let _ = writeln!(text, "  lease {}", duration_text(interface.lease));
        }
    }
    text.trim_start_matches('\n').to_owned()
}

/// Where the settings in effect come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Board,
    Data,
}

/// The settings in effect, and the one line to say when the device's own are broken.
pub struct Loaded {
    pub config: Config,
    pub source: Source,
    pub warning: Option<String>,
}

/// The settings in effect: the device's own file when it parses, else the board's; then
/// the kernel command line's `amber.ip=A/P|dhcp`, `amber.gw=G`, `amber.if=NAME`
/// (default eth0), which replace that interface's IPv4 settings, for a rescue.
pub fn choose(board: Option<&str>, data: Option<&str>, command_line: &CommandLine) -> Loaded {
    let mut warning = None;
    let mut source = Source::Board;
    let board_config = |warning: &mut Option<String>| match parse(board.unwrap_or("")) {
        Ok(config) => config,
        Err(error) => {
            *warning = Some(format!("{BOARD_FILE}: {error}; bringing up lo only"));
            Config::default()
        }
    };
    let mut config = match data.map(parse) {
        Some(Ok(config)) => {
            source = Source::Data;
            config
        }
        Some(Err(error)) => {
            let config = board_config(&mut warning);
            warning = Some(format!(
                "{DATA_FILE}: {error}; using the board's defaults ({BOARD_FILE}) instead"
            ));
            config
        }
        None => board_config(&mut warning),
    };
    if let Err(error) = command_line_override(&mut config, command_line) {
        warning = Some(format!("kernel command line: {error}; ignored"));
    }
    Loaded {
        config,
        source,
        warning,
    }
}

fn command_line_override(config: &mut Config, command_line: &CommandLine) -> Result<(), String> {
    let Some(ip) = command_line.get("amber.ip") else {
        if command_line.get("amber.gw").is_some() {
            return Err("amber.gw= without amber.ip=".into());
        }
        return Ok(());
    };
    let name = command_line.get("amber.if").unwrap_or("eth0");
    if !valid_name(name) {
        return Err(format!("amber.if={name:?} is not an interface name"));
    }
    let ipv4 = if ip == "dhcp" {
        Ipv4::Dhcp
    } else {
        let (address, prefix) = parse_address(ip)?;
        let gateway = match command_line.get("amber.gw") {
            Some(gateway) => Some(parse_ipv4(gateway)?),
            None => None,
        };
        Ipv4::Static {
            address,
            prefix,
            gateway,
        }
    };
    match config.interfaces.iter_mut().find(|i| i.name == name) {
        Some(interface) => interface.ipv4 = ipv4,
        None => config.interfaces.push(Interface {
            ipv4,
            ..Interface::new(name)
        }),
    }
    Ok(())
}

/// Read and choose the settings in effect on this device.
pub fn load() -> Loaded {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    choose(
        read(BOARD_FILE).as_deref(),
        read(DATA_FILE).as_deref(),
        &CommandLine::read(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: &str = "\
dns tcp:10.0.2.53 9.9.9.9   # upstream
ntp pool.ntp.org

interface eth0
  role wan
  dhcp
interface eth1
  role lan
  address 192.168.8.1/24
  lease 1h
";

    fn lan(address: [u8; 4], prefix: u8) -> Interface {
        Interface {
            role: Role::Lan,
            ipv4: Ipv4::Static {
                address: address.into(),
                prefix,
                gateway: None,
            },
            ipv6: false,
            ..Interface::new("eth1")
        }
    }

    #[test]
    fn a_router() {
        let config = parse(ROUTER).unwrap();
        assert_eq!(
            config.dns,
            [
                Server {
                    address: [10, 0, 2, 53].into(),
                    tcp: true
                },
                Server {
                    address: [9, 9, 9, 9].into(),
                    tcp: false
                }
            ]
        );
        assert_eq!(config.ntp, ["pool.ntp.org"]);
        assert_eq!(config.interfaces[0], Interface::new("eth0"));
        let eth1 = &config.interfaces[1];
        assert_eq!(
            *eth1,
            Interface {
                lease: 3600,
                ..lan([192, 168, 8, 1], 24)
            }
        );
        assert_eq!(
            eth1.dhcp_pool(),
            Some(([192, 168, 8, 100].into(), [192, 168, 8, 249].into()))
        );
        // The canonical form parses back to the same settings, and is a fixed point.
        let text = render(&config);
        assert_eq!(parse(&text).unwrap(), config);
        assert_eq!(render(&parse(&text).unwrap()), text);
        assert!(text.starts_with("dns tcp:10.0.2.53 9.9.9.9\nntp pool.ntp.org\n\ninterface eth0\n  role wan\n  dhcp\n"), "{text}");
        assert!(text.contains("  lease 1h\n"), "{text}");
    }

    #[test]
    fn pools() {
        let small = lan([10, 1, 1, 1], 29);
        assert_eq!(
            small.dhcp_pool(),
            Some(([10, 1, 1, 1].into(), [10, 1, 1, 6].into()))
        );
        let set = parse("interface eth1\nrole lan\naddress 10.0.0.1/16\npool 10.0.5.1 10.0.5.9\n")
            .unwrap();
        assert_eq!(
            set.interfaces[0].dhcp_pool(),
            Some(([10, 0, 5, 1].into(), [10, 0, 5, 9].into()))
        );
        assert_eq!(Interface::new("eth0").dhcp_pool(), None);
    }

    #[test]
    fn broken_files_name_the_line() {
        let cases = [
            ("interface\n", "line 1: expected `interface NAME`"),
            (
                "interface a/b\ndhcp\n",
                "line 1: \"a/b\" is not an interface name",
            ),
            (
                "interface eth0\ndhcp\ninterface eth0\ndhcp\n",
                "line 3: interface eth0 is given twice",
            ),
            ("dhcp\n", "line 1: `dhcp` belongs to an interface"),
            (
                "interface eth0\ndhcp\ndns 1.1.1.1\n",
                "line 3: `dns` is for the whole device",
            ),
            ("dns 1.1.1\n", "line 1: \"1.1.1\" is not an IPv4 address"),
            ("ntp a/b\n", "line 1: \"a/b\" is not a host name"),
            (
                "interface eth0\nadress 10.0.0.1/8\n",
                "line 2: unknown key \"adress\"",
            ),
            (
                "interface eth0\ndhcp\ndhcp\n",
                "line 3: dhcp is given twice for eth0",
            ),
            (
                "interface eth0\ndhcp yes\n",
                "line 2: `dhcp` takes no value",
            ),
            ("interface eth0\nmtu\n", "line 2: expected `mtu VALUE`"),
            (
                "interface eth0\n",
                "line 1: interface eth0 needs `dhcp` or `address",
            ),
            (
                "interface eth0\ndhcp\naddress 10.0.0.1/8\n",
                "line 3: eth0 is dhcp",
            ),
            (
                "interface eth0\ngateway 10.0.0.1\n",
                "line 2: eth0 has a gateway but no address",
            ),
            (
                "interface eth0\naddress 10.0.0.1\n",
                "line 2: \"10.0.0.1\" is not an IPv4 address with a prefix",
            ),
            (
                "interface eth0\naddress 10.0.0.1/33\n",
                "not an IPv4 address with a prefix",
            ),
            (
                "interface eth0\naddress 10.0.0.1/08\n",
                "not an IPv4 address with a prefix",
            ),
            (
                "interface eth0\naddress 10.0.0.1/8\ngateway x\n",
                "line 3: \"x\" is not an IPv4 address",
            ),
            (
                "interface eth0\ndhcp\nrole router\n",
                "line 3: role \"router\" is neither wan nor lan",
            ),
            (
                "interface eth0\ndhcp\nmtu 100\n",
                "line 3: mtu \"100\" is not 576 to 65535",
            ),
            (
                "interface eth0\ndhcp\nipv6 maybe\n",
                "line 3: ipv6 \"maybe\"",
            ),
            (
                "interface eth0\ndhcp\npool 10.0.0.2 10.0.0.3\n",
                "line 3: `pool` is for a lan interface",
            ),
            (
                "interface eth1\nrole lan\ndhcp\n",
                "line 1: eth1 is a lan: it needs a static address",
            ),
            (
                "interface eth1\nrole lan\naddress 10.0.0.1/24\nlease 10\n",
                "line 4: \"10\" is not a duration",
            ),
            (
                "interface eth1\nrole lan\naddress 10.0.0.1/24\npool 10.0.1.2 10.0.1.9\n",
                "line 4: pool 10.0.1.2 10.0.1.9 is not a range inside",
            ),
            (
                "interface eth1\nrole lan\naddress 10.0.0.1/24\npool 10.0.0.9 10.0.0.2\n",
                "is not a range",
            ),
            (
                "interface eth1\nrole lan\naddress 10.0.0.5/24\npool 10.0.0.2 10.0.0.9\n",
                "holds 10.0.0.5 itself",
            ),
        ];
        for (text, expected) in cases {
            match parse(text) {
                Err(error) => assert!(error.contains(expected), "{text:?}: {error}"),
                Ok(_) => panic!("{text:?} parsed"),
            }
        }
    }

    #[test]
    fn durations() {
        for (text, seconds) in [
            ("60", 60),
            ("90s", 90),
            ("15m", 900),
            ("12h", 43200),
            ("7d", 604800),
        ] {
            assert_eq!(parse_duration(text), Ok(seconds), "{text}");
        }
        for text in ["", "59", "h", "1x", "-5m", "99999999d"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        for seconds in [60, 90, 900, 43200, 604800, 3601] {
            assert_eq!(parse_duration(&duration_text(seconds)), Ok(seconds));
        }
    }

    #[test]
    fn the_device_file_replaces_the_boards() {
        let board = "interface eth0\n  dhcp\n";
        let none = CommandLine::default();
        let loaded = choose(Some(board), None, &none);
        assert_eq!(loaded.source, Source::Board);
        assert_eq!(loaded.config.interfaces, [Interface::new("eth0")]);
        assert!(loaded.warning.is_none());

        let loaded = choose(Some(board), Some(ROUTER), &none);
        assert_eq!(loaded.source, Source::Data);
        assert_eq!(loaded.config.interfaces.len(), 2);

        // A broken device file: one line, and the board's defaults.
        let loaded = choose(Some(board), Some("interface eth0\nadress x\n"), &none);
        assert_eq!(loaded.source, Source::Board);
        assert_eq!(loaded.config.interfaces, [Interface::new("eth0")]);
        assert_eq!(
            loaded.warning.as_deref(),
            Some("/data/etc/amber/network: line 2: unknown key \"adress\"; using the board's defaults (/etc/amber/network) instead")
        );

        // The kernel command line replaces one interface's IPv4 settings.
        let rescue = CommandLine::parse("amber.ip=10.0.2.15/24 amber.gw=10.0.2.2");
        let loaded = choose(Some(board), None, &rescue);
        assert_eq!(
            loaded.config.interfaces[0].ipv4,
            Ipv4::Static {
                address: [10, 0, 2, 15].into(),
                prefix: 24,
                gateway: Some([10, 0, 2, 2].into())
            }
        );
        let loaded = choose(
            None,
            None,
            &CommandLine::parse("amber.ip=dhcp amber.if=usb0"),
        );
        assert_eq!(loaded.config.interfaces, [Interface::new("usb0")]);
        let loaded = choose(Some(board), None, &CommandLine::parse("amber.gw=10.0.0.1"));
        assert!(loaded
            .warning
            .unwrap()
            .contains("amber.gw= without amber.ip="));
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(1), Ipv4Addr::new(128, 0, 0, 0));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
    }
}
