//! `net daemon`: the `network` unit's process. It reads the settings in effect
//! (`netconfig.rs`) once, then, in one poll(2) loop until SIGTERM:
//!
//! - brings up lo and each interface as it appears and gets a link (the kernel tells
//!   of links on a netlink socket), with its MTU and IPv6 SLAAC switched on or off;
//! - applies a static address and gateway, or runs a DHCP client (`dhcp.rs`) on it and
//!   applies its lease (address, route, MTU, DNS and NTP servers);
//! - serves DNS on 127.0.0.53 (`dns.rs`), forwarding to the settings' servers and the
//!   leases', and names that in /etc/resolv.conf;
//! - writes its state in one line for `svc status network` (`up: ...` once a wan has
//!   an address; init reads it whenever this prints a line), and the DHCP servers' NTP
//!   servers for the clock (restarted when they change).
//!
//! On SIGTERM every lease is released and every address it set is taken off, so the
//! next start (`net` applying new settings) begins clean. Untrusted packets (DHCP, DNS)
//! are parsed here, never in PID 1.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::Duration;

use crate::dhcp::{self, Action, Client};
use crate::netconfig::{self, Interface, Ipv4, Role, Server};
use crate::{control, sntp, status, sys};

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// One configured interface.
struct Link {
    config: Interface,
    /// Brought up (and a static address set) once it existed.
    set_up: bool,
    carrier: bool,
    dhcp: Option<(Client, UdpSocket)>,
    /// The address it has from us: (address, prefix, gateway).
    address: Option<(Ipv4Addr, u8, Option<Ipv4Addr>)>,
    lease: Option<dhcp::Lease>,
    said_missing: bool,
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn read_sys(name: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{file}")).unwrap_or_default()
}

/// The hardware address in /sys/class/net/NAME/address (`52:54:00:12:34:56`).
fn mac(name: &str) -> Option<[u8; 6]> {
    let text = read_sys(name, "address");
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn sysctl(path: &str, value: &str) {
    let _ = std::fs::write(path, value);
}

struct Daemon {
    links: Vec<Link>,
    socket: OwnedFd,
    dns: Vec<Server>,
    upstreams: Vec<Server>,
    lines: Vec<String>,
    status: String,
    resolv: String,
    ntp: String,
}

impl Daemon {
    fn say(&mut self, line: String) {
        self.lines.push(line);
    }

    /// Look at every interface: bring up the new ones, start DHCP where a link came.
    fn check_links(&mut self, now: Duration) {
        for index in 0..self.links.len() {
            let link = &mut self.links[index];
            let name = link.config.name.clone();
            if !exists(&name) {
                if link.set_up {
                    // Unplugged (a USB adapter): set up afresh when it comes back.
                    link.set_up = false;
                    link.carrier = false;
                    link.dhcp = None;
                    link.address = None;
                    link.lease = None;
                    link.said_missing = true;
                    self.lines.push(format!(
                        "{name}: gone; it is set up again when it comes back"
                    ));
                } else if !link.said_missing {
                    link.said_missing = true;
                    self.lines.push(format!(
                        "{name}: no such interface yet; it is set up when it comes"
                    ));
                }
                continue;
            }
            if !link.set_up {
                link.set_up = true;
                let line = self.set_up(index);
                self.say(line);
            }
            let link = &mut self.links[index];
            let carrier = read_sys(&name, "carrier").trim() != "0";
            let came = carrier && !link.carrier;
            link.carrier = carrier;
            // A link that came (back) while no server was found: discover at once.
            let actions = match &mut link.dhcp {
                Some((client, _))
                    if came
                        && matches!(client.state(), dhcp::State::Init | dhcp::State::Selecting) =>
                {
                    client.start(now)
                }
                _ => continue,
            };
            self.carry_out(index, actions);
        }
    }

    /// Bring an interface up with its settings; returns the line that says how.
    fn set_up(&mut self, index: usize) -> String {
        let link = &mut self.links[index];
        let config = link.config.clone();
        let name = config.name.as_str();
        let ipv6 = format!("/proc/sys/net/ipv6/conf/{name}/");
        if config.ipv6 {
            // SLAAC by the kernel; accept_ra 2 keeps it on when the device forwards.
            sysctl(&format!("{ipv6}disable_ipv6"), "0");
            sysctl(&format!("{ipv6}accept_ra"), "2");
            sysctl(&format!("{ipv6}autoconf"), "1");
        } else {
            sysctl(&format!("{ipv6}disable_ipv6"), "1");
        }
        let mut problems = Vec::new();
        if let Some(mtu) = config.mtu {
            if let Err(error) = sys::set_mtu(&self.socket, name, mtu) {
                problems.push(format!("mtu {mtu}: {error}"));
            }
        }
        let what = match config.ipv4 {
            Ipv4::Static {
                address,
                prefix,
                gateway,
            } => {
                let result = sys::set_address(&self.socket, name, address)
                    .and_then(|()| sys::set_netmask(&self.socket, name, netconfig::netmask(prefix)))
                    .and_then(|()| sys::interface_up(&self.socket, name));
                let applied = result.is_ok();
                match result {
                    Ok(()) => link.address = Some((address, prefix, None)),
                    Err(error) => problems.push(format!("address: {error}")),
                }
                if let (Some(gateway), true) = (gateway, applied) {
                    match sys::add_default_route(&self.socket, gateway) {
                        Err(error) if error.raw_os_error() != Some(libc::EEXIST) => {
                            problems.push(format!("route via {gateway}: {error}"))
                        }
                        _ => link.address = Some((address, prefix, Some(gateway))),
                    }
                }
                format!(
                    "{address}/{prefix}{}",
                    gateway.map(|g| format!(" via {g}")).unwrap_or_default()
                )
            }
            Ipv4::Dhcp => {
                // An address left from before is not the lease's.
                let _ = sys::set_address(&self.socket, name, Ipv4Addr::UNSPECIFIED);
                if let Err(error) = sys::interface_up(&self.socket, name) {
                    problems.push(error.to_string());
                }
                match (mac(name), sys::dhcp_socket(name)) {
                    (Some(mac), Ok(socket)) => {
                        let seed = sys::random_u64()
                            ^ u64::from_be_bytes([
                                0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
                            ]);
                        link.dhcp = Some((Client::new(name, mac, seed), socket));
                    }
                    (None, _) => problems.push("no hardware address for DHCP".into()),
                    (_, Err(error)) => problems.push(format!("DHCP socket: {error}")),
                }
                "dhcp".to_owned()
            }
        };
        let role = match config.role {
            Role::Wan => "wan",
            Role::Lan => "lan",
        };
        let mut line = format!(
            "{name}: {what} ({role}{})",
            if config.ipv6 { ", SLAAC" } else { "" }
        );
        if !problems.is_empty() {
            line += &format!(": {}", problems.join("; "));
        }
        line
    }

    fn carry_out(&mut self, index: usize, actions: Vec<Action>) {
        for action in actions {
            let link = &mut self.links[index];
            let name = link.config.name.clone();
            let send = |socket: &UdpSocket, to: Ipv4Addr, bytes: &[u8]| {
                let _ = socket.send_to(bytes, SocketAddr::from((to, dhcp::SERVER_PORT)));
            };
            match action {
                Action::Broadcast(bytes) => {
                    if let Some((_, socket)) = &link.dhcp {
                        send(socket, Ipv4Addr::BROADCAST, &bytes);
                    }
                }
                Action::Unicast(to, bytes) => {
                    if let Some((_, socket)) = &link.dhcp {
                        send(socket, to, &bytes);
                    }
                }
                Action::Log(line) => self.lines.push(line),
                Action::Unbind => {
                    let _ = sys::set_address(&self.socket, &name, Ipv4Addr::UNSPECIFIED);
                    link.address = None;
                    link.lease = None;
                }
                Action::Bind(lease) => {
                    let mut problems = Vec::new();
                    let result =
                        sys::set_address(&self.socket, &name, lease.address).and_then(|()| {
                            sys::set_netmask(&self.socket, &name, netconfig::netmask(lease.prefix))
                        });
                    if let Err(error) = result {
                        problems.push(format!("address: {error}"));
                    }
                    if let (Some(mtu), None) = (lease.mtu, link.config.mtu) {
                        let _ = sys::set_mtu(&self.socket, &name, mtu);
                    }
                    let mut gateway = None;
                    if let (Some(router), Role::Wan) = (lease.router, link.config.role) {
                        match sys::add_default_route(&self.socket, router) {
                            Err(error) if error.raw_os_error() != Some(libc::EEXIST) => {
                                problems.push(format!("route via {router}: {error}"))
                            }
                            _ => gateway = Some(router),
                        }
                    }
                    link.address = Some((lease.address, lease.prefix, gateway));
                    link.lease = Some(lease);
                    if !problems.is_empty() {
                        self.lines.push(format!("{name}: {}", problems.join("; ")));
                    }
                }
            }
        }
    }

    /// The state in one line, and whether the network is up: some wan has an address
    /// (or, without a wan, every interface has its own).
    fn state(&self) -> (bool, String) {
        let mut parts = Vec::new();
        let mut wan_up = false;
        let mut any_wan = false;
        let mut all = true;
        for link in &self.links {
            let name = &link.config.name;
            any_wan |= link.config.role == Role::Wan;
            let part = match (&link.address, &link.dhcp) {
                (Some((address, prefix, gateway)), _) => {
                    wan_up |= link.config.role == Role::Wan;
                    let mut part = format!("{name} {address}/{prefix}");
                    if let Some(gateway) = gateway {
                        part += &format!(" via {gateway}");
                    }
                    match (&link.lease, &link.dhcp) {
                        (Some(lease), Some((client, _))) => {
                            part += &format!(" (dhcp from {}, lease ", lease.server);
                            part += &if lease.seconds == u32::MAX {
                                "forever".to_owned()
                            } else {
                                crate::supervisor::human(Duration::from_secs(lease.seconds.into()))
                            };
                            for dns in &lease.dns {
                                part += &format!(", dns {dns}");
                            }
                            if client.renewals > 0 {
                                part += &format!(", renewed {} times", client.renewals);
                            }
                            part.push(')');
                        }
                        _ if link.config.role == Role::Lan => part += " (lan)",
                        _ => {}
                    }
                    part
                }
                (None, Some((client, _))) => {
                    all = false;
                    let state = match client.state() {
                        dhcp::State::Requesting => "requesting",
                        _ if !link.carrier => "no link",
                        _ => "discovering",
                    };
                    format!("{name} dhcp: {state}")
                }
                (None, None) => {
                    all = false;
                    format!(
                        "{name} {}",
                        if exists(name) {
                            "not configured"
                        } else {
                            "missing"
                        }
                    )
                }
            };
            parts.push(part);
        }
        let up = if any_wan { wan_up } else { all };
        let text = if parts.is_empty() {
            "lo only (no interfaces in the settings)".to_owned()
        } else {
            parts.join(", ")
        };
        (up, format!("{}: {text}", if up { "up" } else { "waiting" }))
    }

    /// Write what changed: the status line, resolv.conf, the forwarder's servers, the
    /// NTP servers; then print the lines (init looks at the status on each line).
    fn publish(&mut self) {
        let mut upstreams = self.dns.clone();
        let mut domains: Vec<String> = Vec::new();
        let mut ntp = String::new();
        for lease in self.links.iter().filter_map(|link| link.lease.as_ref()) {
            for &address in &lease.dns {
                let server = Server {
                    address,
                    tcp: false,
                };
                if !upstreams.contains(&server) {
                    upstreams.push(server);
                }
            }
            if let Some(domain) = &lease.domain {
                if !domains.contains(domain) {
                    domains.push(domain.clone());
                }
            }
            for address in &lease.ntp {
                ntp += &format!("{address}\n");
            }
        }
        self.upstreams = upstreams;
        let mut resolv = format!(
            "# Written by amber's network daemon: DNS goes through the device's forwarder\n\
             # (svc status network; the servers are in the network settings and leases).\n\
             nameserver {}\n",
            crate::dns::ADDRESS
        );
        if !domains.is_empty() {
            resolv += &format!("search {}\n", domains.join(" "));
        }
        if resolv != self.resolv {
            if let Err(error) =
                amber_base::durable::write_atomic(RESOLV_CONF.as_ref(), resolv.as_bytes())
            {
                self.lines.push(format!("{RESOLV_CONF}: {error}"));
            }
            self.resolv = resolv;
        }
        if ntp != self.ntp {
            let path = std::path::Path::new(sntp::NTP_FILE);
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = amber_base::durable::write_atomic(path, ntp.as_bytes());
            // The clock asks the new servers at once (at its start it reads them).
            if self.ntp != "\0" {
                restart("clock");
            }
            self.ntp = ntp;
        }
        let (up, text) = self.state();
        if text != self.status {
            status::write("network", &text);
            let was_up = self.status.starts_with("up");
            self.status = text.clone();
            if up && !was_up {
                self.lines.push(text);
            }
        }
        for line in self.lines.drain(..) {
            status::print(&line);
        }
    }

    /// SIGTERM: release the leases and take every address off.
    fn stop(&mut self, now: Duration) {
        for index in 0..self.links.len() {
            let actions = match &mut self.links[index].dhcp {
                Some((client, _)) => client.release(now),
                None => Vec::new(),
            };
            self.carry_out(index, actions);
            let link = &mut self.links[index];
            if link.address.take().is_some() {
                let _ = sys::set_address(&self.socket, &link.config.name, Ipv4Addr::UNSPECIFIED);
            }
        }
        for line in self.lines.drain(..) {
            status::print(&line);
        }
    }
}

fn loopback_up(socket: &OwnedFd) -> std::io::Result<()> {
    sys::set_address(socket, "lo", Ipv4Addr::LOCALHOST)?;
    sys::set_netmask(socket, "lo", netconfig::netmask(8))?;
    sys::interface_up(socket, "lo")
}

/// Ask init, through its control socket, to restart a unit.
fn restart(name: &str) {
    let request = control::Request::Restart(name.into());
    let socket = std::path::Path::new(control::SOCKET);
    let _ = control::ask(socket, &request, Duration::from_secs(10));
}

/// `net daemon`, as init runs it. (Not inlined: `cargo xtask size` counts it here.)
#[inline(never)]
pub fn main() -> ExitCode {
    let loaded = netconfig::load();
    if let Some(warning) = &loaded.warning {
        status::print(warning);
    }
    let config = loaded.config;
    let (signals, socket, events) = match (
        sys::SignalFd::new(&[sys::SIGTERM, sys::SIGINT]),
        sys::inet_socket(),
        sys::link_events(),
    ) {
        (Ok(signals), Ok(socket), Ok(events)) => (signals, socket, events),
        (Err(error), ..) | (_, Err(error), _) | (.., Err(error)) => {
            status::print(&error.to_string());
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = loopback_up(&socket) {
        status::print(&format!("lo: {error}"));
    }
    let mut daemon = Daemon {
        links: config
            .interfaces
            .iter()
            .map(|interface| Link {
                config: interface.clone(),
                set_up: false,
                carrier: false,
                dhcp: None,
                address: None,
                lease: None,
                said_missing: false,
            })
            .collect(),
        socket,
        dns: config.dns.clone(),
        upstreams: Vec::new(),
        lines: Vec::new(),
        status: String::new(),
        resolv: String::new(),
        ntp: "\0".to_owned(),
    };
    let mut forwarder = crate::dns::Forwarder::listen();
    daemon.check_links(sys::boot_time());
    daemon.publish();
    let mut events = events;
    loop {
        let mut fds = vec![
            sys::poll_entry(signals.fd(), sys::POLLIN),
            sys::poll_entry(events.as_raw_fd(), sys::POLLIN),
            sys::poll_entry(forwarder.as_ref().map_or(-1, |f| f.fd()), sys::POLLIN),
        ];
        for link in &daemon.links {
            let fd = link.dhcp.as_ref().map_or(-1, |(_, s)| s.as_raw_fd());
            fds.push(sys::poll_entry(fd, sys::POLLIN));
        }
        let now = sys::boot_time();
        let timeout = daemon
            .links
            .iter()
            .filter_map(|link| link.dhcp.as_ref()?.0.next_timer())
            .min()
            .map(|at| at.saturating_sub(now));
        if let Err(error) = sys::poll(&mut fds, timeout) {
            status::print(&format!("poll: {error}"));
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let now = sys::boot_time();
        if fds[0].revents != 0 && signals.read().is_some() {
            daemon.stop(now);
            return ExitCode::SUCCESS;
        }
        if fds[1].revents != 0 {
            let mut buffer = [0u8; 8192];
            while matches!(events.read(&mut buffer), Ok(count) if count > 0) {}
            daemon.check_links(now);
        }
        if fds[2].revents != 0 {
            if let Some(forwarder) = &mut forwarder {
                forwarder.answer(&daemon.upstreams);
            }
        }
        for index in 0..daemon.links.len() {
            if fds[3 + index].revents == 0 {
                continue;
            }
            let mut received = Vec::new();
            if let Some((_, socket)) = &daemon.links[index].dhcp {
                let mut buffer = [0u8; 1500];
                while let Ok(count) = socket.recv(&mut buffer) {
                    received.push(buffer[..count].to_vec());
                }
            }
            for bytes in received {
                let actions = match &mut daemon.links[index].dhcp {
                    Some((client, _)) => client.receive(now, &bytes),
                    None => Vec::new(),
                };
                daemon.carry_out(index, actions);
            }
        }
        for index in 0..daemon.links.len() {
            let actions = match &mut daemon.links[index].dhcp {
                Some((client, _)) if client.next_timer().is_some_and(|at| at <= now) => {
                    client.timer(now)
                }
                _ => continue,
            };
            daemon.carry_out(index, actions);
        }
        daemon.publish();
    }
}
