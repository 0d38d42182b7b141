//! The DHCPv4 client (RFC 2131): its messages, and its state machine as a pure function
//! of time and received bytes, so tests drive it with a fake clock.
//!
//! ```text
//!   INIT ──DISCOVER──▶ SELECTING ──OFFER──▶ REQUESTING ──ACK──▶ BOUND
//!                        ▲  (4, 8, 16, 32, 64, 64 s...)  │NAK/4 tries   │T1
//!                        └────────────────────────────────┘            ▼
//!   expiry: unbind ◀── REBINDING ◀──T2── RENEWING (unicast to the server)
//!                      (broadcast)  ──ACK──▶ BOUND
//! ```
//!
//! The client never touches a socket or the interface: each call returns [`Action`]s
//! (send this, configure that lease, remove the address, log this line), and
//! [`Client::next_timer`] says when to call [`Client::timer`]. One log line per state
//! change. The daemon (`netd.rs`) carries the actions out.

use std::net::Ipv4Addr;
use std::time::Duration;

use amber_core::random::Random;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const RELEASE: u8 = 7;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
/// sname, file: the fixed part before the magic cookie.
const FIXED: usize = 236;
/// What the client asks servers for: subnet mask, router, DNS, domain, MTU, NTP, lease
/// time, server id, T1, T2.
const PARAMETERS: [u8; 10] = [1, 3, 6, 15, 26, 42, 51, 54, 58, 59];

/// The first retransmission delay and the longest (RFC 2131 §4.1: 4 s doubling to 64 s).
const FIRST_DELAY: u64 = 4;
const MAX_DELAY: u64 = 64;
/// REQUESTs sent for one offer before discovering again.
const REQUEST_TRIES: u32 = 4;
/// The shortest wait between retransmissions while renewing and rebinding (§4.4.5).
const MIN_RENEW_WAIT: u64 = 60;

/// What a server gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    pub server: Ipv4Addr,
    /// Lease time, T1 and T2 in seconds (u32::MAX: forever).
    pub seconds: u32,
    pub renew: u32,
    pub rebind: u32,
}

/// A message from a server, as far as the client reads it.
#[derive(Debug)]
struct Reply {
    kind: u8,
    xid: u32,
    mac: [u8; 6],
    lease: Lease,
}

/// Read a server's message; None when it is not a well-formed BOOTREPLY.
fn parse(bytes: &[u8]) -> Option<Reply> {
    if bytes.len() < FIXED + 4 || bytes[0] != 2 || bytes[1] != 1 || bytes[2] != 6 {
        return None;
    }
    if bytes[FIXED..FIXED + 4] != MAGIC {
        return None;
    }
    let ipv4 = |at: usize| Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
    let mut kind = 0;
    let mut mask = None;
    let mut lease = Lease {
        address: ipv4(16),
        prefix: 0,
        router: None,
        dns: Vec::new(),
        ntp: Vec::new(),
        domain: None,
        mtu: None,
        server: Ipv4Addr::UNSPECIFIED,
        seconds: 0,
        renew: 0,
        rebind: 0,
    };
    let mut at = FIXED + 4;
    while at < bytes.len() {
        let code = bytes[at];
        if code == 0 {
            at += 1;
            continue;
        }
        if code == 255 {
            break;
        }
        let length = *bytes.get(at + 1)? as usize;
        let data = bytes.get(at + 2..at + 2 + length)?;
        at += 2 + length;
        let addresses = || {
            data.chunks_exact(4)
                .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
                .collect::<Vec<_>>()
        };
        let number =
            || (length == 4).then(|| u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
        match code {
            1 => mask = number(),
            3 => lease.router = addresses().first().copied(),
            6 => lease.dns = addresses().into_iter().take(3).collect(),
            15 => {
                let domain = String::from_utf8_lossy(data)
                    .trim_end_matches('\0')
                    .to_owned();
                let plain = domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                lease.domain = (plain && !domain.is_empty()).then_some(domain);
            }
            26 if length == 2 => {
                lease.mtu = Some(u16::from_be_bytes([data[0], data[1]])).filter(|&m| m >= 576)
            }
            42 => lease.ntp = addresses().into_iter().take(4).collect(),
            51 => lease.seconds = number()?,
            53 if length == 1 => kind = data[0],
            54 => lease.server = addresses().first().copied()?,
            58 => lease.renew = number()?,
            59 => lease.rebind = number()?,
            _ => {}
        }
    }
    lease.prefix = match mask {
        Some(mask) if mask.leading_ones() + mask.trailing_zeros() == 32 && mask != 0 => {
            mask.leading_ones() as u8
        }
        // None or a mask with holes: the address's class, as RFC 2131 clients did.
        _ => match lease.address.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        },
    };
    // T1 and T2 default to 1/2 and 7/8 of the lease (§4.4.5), and must come in order.
    if lease.renew == 0 || lease.renew >= lease.seconds {
        lease.renew = lease.seconds / 2;
    }
    if lease.rebind == 0 || lease.rebind >= lease.seconds || lease.rebind < lease.renew {
        lease.rebind = (lease.seconds as u64 * 7 / 8) as u32;
        // A T1 past 7/8 of the lease with no usable T2: both defaults, so T1 ≤ T2.
        if lease.rebind < lease.renew {
            lease.renew = lease.seconds / 2;
        }
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[28..34]);
    Some(Reply {
        kind,
        xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        mac,
        lease,
    })
}

/// What a message the client sends says.
struct Request {
    kind: u8,
    xid: u32,
    secs: u16,
    /// Ask the server to broadcast its answer: nothing can receive unicast yet.
    broadcast: bool,
    ciaddr: Ipv4Addr,
    requested: Option<Ipv4Addr>,
    server: Option<Ipv4Addr>,
}

fn build(mac: &[u8; 6], request: &Request) -> Vec<u8> {
    let mut bytes = vec![0u8; FIXED];
    bytes[..4].copy_from_slice(&[1, 1, 6, 0]);
    bytes[4..8].copy_from_slice(&request.xid.to_be_bytes());
    bytes[8..10].copy_from_slice(&request.secs.to_be_bytes());
    if request.broadcast {
        bytes[10] = 0x80;
    }
    bytes[12..16].copy_from_slice(&request.ciaddr.octets());
    bytes[28..34].copy_from_slice(mac);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&[53, 1, request.kind, 61, 7, 1]);
    bytes.extend_from_slice(mac);
    for (code, address) in [(50, request.requested), (54, request.server)] {
        if let Some(address) = address {
            bytes.extend_from_slice(&[code, 4]);
            bytes.extend_from_slice(&address.octets());
        }
    }
    if request.kind != RELEASE {
        bytes.extend_from_slice(&[55, PARAMETERS.len() as u8]);
        bytes.extend_from_slice(&PARAMETERS);
    }
    bytes.push(255);
    // BOOTP relays and old servers drop messages shorter than 300 bytes.
    bytes.resize(bytes.len().max(300), 0);
    bytes
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not started, or released.
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

/// What the caller must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send to 255.255.255.255:67 on the interface.
    Broadcast(Vec<u8>),
    /// Send to the server at this address, port 67.
    Unicast(Ipv4Addr, Vec<u8>),
    /// Configure the interface with this lease (a new one, or one that changed).
    Bind(Lease),
    /// Take the lease's address off the interface.
    Unbind,
    /// One line for the console and the log.
    Log(String),
}

/// One interface's DHCP client.
pub struct Client {
    name: String,
    mac: [u8; 6],
    state: State,
    xid: u32,
    random: Random,
    /// When the current exchange began (the `secs` field counts from it).
    began: Duration,
    tries: u32,
    /// The next retransmission or lease timer.
    next: Option<Duration>,
    offer: Option<Lease>,
    /// The lease in use and when it began (the time its REQUEST went out).
    lease: Option<(Lease, Duration)>,
    /// When the REQUEST that the next ACK answers was first sent.
    asked: Duration,
    /// The address to ask for in a DISCOVER: the last one held.
    hint: Option<Ipv4Addr>,
    pub renewals: u32,
}

impl Client {
    /// A client for the interface `name` with hardware address `mac`; `seed` makes its
    /// transaction ids and jitter (a random number in the daemon, fixed in tests).
    pub fn new(name: &str, mac: [u8; 6], seed: u64) -> Client {
        Client {
            name: name.to_owned(),
            mac,
            state: State::Init,
            xid: 0,
            random: Random::new(seed),
            began: Duration::ZERO,
            tries: 0,
            next: None,
            offer: None,
            lease: None,
            asked: Duration::ZERO,
            hint: None,
            renewals: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The lease in use, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref().map(|(lease, _)| lease)
    }

    /// When [`Client::timer`] is due.
    pub fn next_timer(&self) -> Option<Duration> {
        self.next
    }

    fn log(&self, actions: &mut Vec<Action>, message: std::fmt::Arguments) {
        actions.push(Action::Log(format!("dhcp {}: {message}", self.name)));
    }

    /// The delay before retransmission number `tries` (1, 2, ...): 4, 8, ... 64 s, ±1 s.
    fn backoff(&mut self, tries: u32) -> Duration {
        let base = (FIRST_DELAY << tries.saturating_sub(1).min(4)).min(MAX_DELAY);
        let jitter = self.random.next_u64() % 2001;
        Duration::from_millis(base * 1000 + jitter - 1000)
    }

    fn message(&self, kind: u8, now: Duration) -> Request {
        Request {
            kind,
            xid: self.xid,
            secs: now
                .saturating_sub(self.began)
                .as_secs()
                .min(u16::MAX as u64) as u16,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server: None,
        }
    }

    /// Begin (or begin again): discover a server.
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        self.discover(now, &mut actions);
        actions
    }

    fn discover(&mut self, now: Duration, actions: &mut Vec<Action>) {
        self.state = State::Selecting;
        self.xid = self.random.next_u64() as u32;
        self.began = now;
        self.tries = 0;
        self.offer = None;
        match self.hint {
            Some(hint) => self.log(actions, format_args!("discovering (asking for {hint})")),
            None => self.log(actions, format_args!("discovering")),
        }
        self.send_discover(now, actions);
    }

    fn send_discover(&mut self, now: Duration, actions: &mut Vec<Action>) {
        self.tries += 1;
        let message = Request {
            broadcast: true,
            requested: self.hint,
            ..self.message(DISCOVER, now)
        };
        actions.push(Action::Broadcast(build(&self.mac, &message)));
        if self.tries == 5 {
            self.log(
                actions,
                format_args!(
                    "no offer after 5 tries in {}s; asking every {MAX_DELAY}s",
                    now.saturating_sub(self.began).as_secs()
                ),
            );
        }
        self.next = Some(now + self.backoff(self.tries));
    }

    fn send_request(&mut self, now: Duration, actions: &mut Vec<Action>) {
        self.tries += 1;
        let (message, unicast) = match (self.state, &self.offer, &self.lease) {
            (State::Requesting, Some(offer), _) => (
                Request {
                    broadcast: true,
                    requested: Some(offer.address),
                    server: Some(offer.server),
                    ..self.message(REQUEST, now)
                },
                None,
            ),
            (State::Renewing | State::Rebinding, _, Some((lease, _))) => (
                Request {
                    ciaddr: lease.address,
                    ..self.message(REQUEST, now)
                },
                (self.state == State::Renewing).then_some(lease.server),
            ),
            _ => return,
        };
        let bytes = build(&self.mac, &message);
        actions.push(match unicast {
            Some(server) => Action::Unicast(server, bytes),
            None => Action::Broadcast(bytes),
        });
    }

    /// Renewing and rebinding retransmit after half the time left to `until`, at least
    /// a minute, and never past `until` (RFC 2131 §4.4.5).
    fn wait_until(now: Duration, until: Duration) -> Duration {
        let half = until.saturating_sub(now) / 2;
        (now + half.max(Duration::from_secs(MIN_RENEW_WAIT))).min(until)
    }

    /// The lease's timers: (T1, T2, expiry) as times; None for a lease forever.
    fn deadlines(&self) -> Option<(Duration, Duration, Duration)> {
        let (lease, since) = self.lease.as_ref()?;
        if lease.seconds == u32::MAX {
            return None;
        }
        let at = |seconds: u32| *since + Duration::from_secs(seconds.into());
        Some((at(lease.renew), at(lease.rebind), at(lease.seconds)))
    }

    /// Something is due (see [`Client::next_timer`]).
    #[inline(never)]
    pub fn timer(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.next.is_none_or(|next| now < next) {
            return actions;
        }
        match self.state {
            State::Init => self.next = None,
            State::Selecting => self.send_discover(now, &mut actions),
            State::Requesting if self.tries >= REQUEST_TRIES => {
                let server = self
                    .offer
                    .as_ref()
                    .map_or(Ipv4Addr::UNSPECIFIED, |o| o.server);
                self.log(
                    &mut actions,
                    format_args!("no answer from {server} to {} requests", self.tries),
                );
                self.discover(now, &mut actions);
            }
            State::Requesting => {
                self.send_request(now, &mut actions);
                self.next = Some(now + self.backoff(self.tries));
            }
            State::Bound | State::Renewing | State::Rebinding => {
                let Some((renew, rebind, expiry)) = self.deadlines() else {
                    self.next = None;
                    return actions;
                };
                let address = self
                    .lease()
                    .map(|l| l.address)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                let server = self
                    .lease()
                    .map(|l| l.server)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                if now >= expiry {
                    self.log(&mut actions, format_args!("lease of {address} expired"));
                    actions.push(Action::Unbind);
                    self.hint = Some(address);
                    self.lease = None;
                    self.discover(now, &mut actions);
                    return actions;
                }
                let state = if now >= rebind {
                    State::Rebinding
                } else if now >= renew {
                    State::Renewing
                } else {
                    State::Bound
                };
                if state != self.state {
                    self.state = state;
                    self.xid = self.random.next_u64() as u32;
                    self.began = now;
                    self.asked = now;
                    self.tries = 0;
                    match state {
                        State::Renewing => self.log(
                            &mut actions,
                            format_args!("renewing {address} with {server}"),
                        ),
                        _ => self.log(
                            &mut actions,
                            format_args!("rebinding {address}: {server} did not answer"),
                        ),
                    }
                }
                match state {
                    State::Bound => self.next = Some(renew),
                    State::Renewing => {
                        self.send_request(now, &mut actions);
                        self.next = Some(Self::wait_until(now, rebind));
                    }
                    _ => {
                        self.send_request(now, &mut actions);
                        self.next = Some(Self::wait_until(now, expiry));
                    }
                }
            }
        }
        actions
    }

    /// A datagram arrived on the client port.
    #[inline(never)]
    pub fn receive(&mut self, now: Duration, bytes: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(reply) = parse(bytes) else {
            return actions;
        };
        if reply.xid != self.xid || reply.mac != self.mac {
            return actions;
        }
        let lease = reply.lease;
        match (self.state, reply.kind) {
            (State::Selecting, OFFER)
                if !lease.address.is_unspecified()
                    && !lease.server.is_unspecified()
                    && lease.seconds > 0 =>
            {
                self.log(
                    &mut actions,
                    format_args!(
                        "offered {} by {}; requesting it",
                        lease.address, lease.server
                    ),
                );
                self.state = State::Requesting;
                self.offer = Some(lease);
                self.tries = 0;
                self.asked = now;
                self.send_request(now, &mut actions);
                self.next = Some(now + self.backoff(1));
            }
            (State::Requesting | State::Renewing | State::Rebinding, ACK)
                if !lease.address.is_unspecified() && lease.seconds > 0 =>
            {
                let previous = self.lease.take().map(|(lease, _)| lease);
                let changed = previous.as_ref() != Some(&lease);
                let how = match (self.state, &previous) {
                    (State::Requesting, _) => "bound",
                    (_, Some(old)) if old.address != lease.address => "bound anew",
                    (State::Renewing, _) => "renewed",
                    _ => "rebound",
                };
                if self.state != State::Requesting {
                    self.renewals += 1;
                }
                let forever = lease.seconds == u32::MAX;
                self.log(
                    &mut actions,
                    format_args!(
                        "{how} {}/{}{} from {}, lease {}",
                        lease.address,
                        lease.prefix,
                        lease
                            .router
                            .map(|r| format!(" via {r}"))
                            .unwrap_or_default(),
                        lease.server,
                        if forever {
                            "forever".to_owned()
                        } else {
                            crate::supervisor::human(Duration::from_secs(lease.seconds.into()))
                        }
                    ),
                );
                if changed {
                    if previous.is_some_and(|old| old.address != lease.address) {
                        actions.push(Action::Unbind);
                    }
                    actions.push(Action::Bind(lease.clone()));
                }
                self.hint = Some(lease.address);
                self.lease = Some((lease, self.asked));
                self.offer = None;
                self.state = State::Bound;
                self.next = self.deadlines().map(|(renew, ..)| renew);
            }
            (State::Requesting | State::Renewing | State::Rebinding, NAK) => {
                self.log(
                    &mut actions,
                    format_args!("refused by {} (NAK)", lease.server),
                );
                if self.lease.take().is_some() {
                    actions.push(Action::Unbind);
                }
                self.hint = None;
                self.discover(now, &mut actions);
            }
            _ => {}
        }
        actions
    }

    /// Give the lease back (shutdown, or the settings changed): RELEASE to the server
    /// and take the address off.
    pub fn release(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some((lease, _)) = self.lease.take() {
            self.xid = self.random.next_u64() as u32;
            let message = Request {
                ciaddr: lease.address,
                server: Some(lease.server),
                ..self.message(RELEASE, now)
            };
            actions.push(Action::Unicast(lease.server, build(&self.mac, &message)));
            actions.push(Action::Unbind);
            self.log(
                &mut actions,
                format_args!("released {} to {}", lease.address, lease.server),
            );
        }
        self.state = State::Init;
        self.next = None;
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    /// What a client's message says, read back as a server would.
    struct Sent {
        kind: u8,
        xid: u32,
        broadcast: bool,
        ciaddr: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
    }

    fn read_sent(bytes: &[u8]) -> Sent {
        assert!(bytes.len() >= 300);
        assert_eq!(&bytes[..4], &[1, 1, 6, 0]);
        assert_eq!(&bytes[28..34], &MAC);
        assert_eq!(bytes[FIXED..FIXED + 4], MAGIC);
        let mut sent = Sent {
            kind: 0,
            xid: u32::from_be_bytes(bytes[4..8].try_into().unwrap()),
            broadcast: bytes[10] & 0x80 != 0,
            ciaddr: Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]),
            requested: None,
            server: None,
        };
        let mut at = FIXED + 4;
        while bytes[at] != 255 {
            let (code, length) = (bytes[at], bytes[at + 1] as usize);
            let data = &bytes[at + 2..at + 2 + length];
            let address = || Some(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
            match code {
                53 => sent.kind = data[0],
                50 => sent.requested = address(),
                54 => sent.server = address(),
                _ => {}
            }
            at += 2 + length;
        }
        sent
    }

    /// A server's answer to `xid`.
    fn reply(kind: u8, xid: u32, lease_seconds: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; FIXED];
        bytes[..4].copy_from_slice(&[2, 1, 6, 0]);
        bytes[4..8].copy_from_slice(&xid.to_be_bytes());
        bytes[16..20].copy_from_slice(&ADDRESS.octets());
        bytes[28..34].copy_from_slice(&MAC);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&[53, 1, kind, 54, 4, 10, 0, 2, 2, 1, 4, 255, 255, 255, 0]);
        bytes.extend_from_slice(&[3, 4, 10, 0, 2, 2, 6, 8, 10, 0, 2, 3, 9, 9, 9, 9]);
        bytes.extend_from_slice(&[
            42, 4, 10, 0, 2, 4, 26, 2, 5, 220, 15, 4, b't', b'e', b's', b't',
        ]);
        bytes.extend_from_slice(&[51, 4]);
        bytes.extend_from_slice(&lease_seconds.to_be_bytes());
        bytes.push(255);
        bytes
    }

    fn sent(actions: &[Action]) -> Vec<(Option<Ipv4Addr>, Sent)> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Broadcast(bytes) => Some((None, read_sent(bytes))),
                Action::Unicast(to, bytes) => Some((Some(*to), read_sent(bytes))),
                _ => None,
            })
            .collect()
    }

    fn logs(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Log(line) => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Through discover, offer, request and ack to a bound lease of `seconds`.
    fn bound(seconds: u32) -> Client {
        let mut client = Client::new("eth0", MAC, 7);
        let actions = client.start(secs(0));
        let [(None, discover)] = &sent(&actions)[..] else {
            panic!("one broadcast DISCOVER")
        };
        assert_eq!(discover.kind, DISCOVER);
        assert!(discover.broadcast);
        assert_eq!(logs(&actions), ["dhcp eth0: discovering"]);
        let actions = client.receive(secs(1), &reply(OFFER, discover.xid, seconds));
        assert_eq!(client.state(), State::Requesting);
        let [(None, request)] = &sent(&actions)[..] else {
            panic!("one broadcast REQUEST")
        };
        assert_eq!(request.kind, REQUEST);
        assert_eq!(request.xid, discover.xid);
        assert_eq!(request.requested, Some(ADDRESS));
        assert_eq!(request.server, Some(SERVER));
        assert_eq!(
            logs(&actions),
            ["dhcp eth0: offered 10.0.2.15 by 10.0.2.2; requesting it"]
        );
        let actions = client.receive(secs(1), &reply(ACK, request.xid, seconds));
        assert_eq!(client.state(), State::Bound);
        let lease = client.lease().unwrap().clone();
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Bind(_)))
                .count(),
            1
        );
        assert_eq!(lease.address, ADDRESS);
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some(SERVER));
        assert_eq!(
            lease.dns,
            [Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(9, 9, 9, 9)]
        );
        assert_eq!(lease.ntp, [Ipv4Addr::new(10, 0, 2, 4)]);
        assert_eq!(lease.mtu, Some(1500));
        assert_eq!(lease.domain.as_deref(), Some("test"));
        client
    }

    #[test]
    fn discover_offer_request_ack() {
        let client = bound(3600);
        // T1 and T2 default to half and 7/8 of the lease, from the REQUEST's time.
        let lease = client.lease().unwrap();
        assert_eq!((lease.renew, lease.rebind), (1800, 3150));
        assert_eq!(client.next_timer(), Some(secs(1 + 1800)));
    }

    #[test]
    fn renew_at_t1() {
        let mut client = bound(100);
        // Nothing before T1 (50 s after the request at 1 s).
        assert!(client.timer(secs(50)).is_empty());
        let actions = client.timer(secs(51));
        assert_eq!(client.state(), State::Renewing);
        assert_eq!(
            logs(&actions),
            ["dhcp eth0: renewing 10.0.2.15 with 10.0.2.2"]
        );
        let [(Some(to), request)] = &sent(&actions)[..] else {
            panic!("one unicast REQUEST")
        };
        assert_eq!(*to, SERVER);
        assert_eq!(request.ciaddr, ADDRESS);
        assert_eq!((request.requested, request.server), (None, None));
        // The next try is not before T2 (88 s): a lease this short has no time for a
        // minute's wait.
        assert_eq!(client.next_timer(), Some(secs(88)));
        let actions = client.receive(secs(52), &reply(ACK, request.xid, 100));
        assert_eq!(client.state(), State::Bound);
        assert_eq!(
            logs(&actions),
            ["dhcp eth0: renewed 10.0.2.15/24 via 10.0.2.2 from 10.0.2.2, lease 1m40s"]
        );
        // The same lease again: nothing to reconfigure.
        assert!(!actions.iter().any(|a| matches!(a, Action::Bind(_))));
        assert_eq!(client.renewals, 1);
        // The renewed lease counts from its REQUEST, at 51 s.
        assert_eq!(client.next_timer(), Some(secs(51 + 50)));
    }

    #[test]
    fn rebind_at_t2_then_expiry() {
        let mut client = bound(1000);
        // T1 at 501 s: renewing, unicast, the server gone.
        let actions = client.timer(secs(501));
        assert_eq!(sent(&actions).len(), 1);
        // Half of the 375 s left to T2 (876 s).
        assert_eq!(client.next_timer(), Some(Duration::from_millis(688_500)));
        let actions = client.timer(client.next_timer().unwrap());
        assert_eq!(sent(&actions)[0].0, Some(SERVER));
        // Then half again, a minute at least, but never past T2.
        assert_eq!(client.next_timer(), Some(Duration::from_millis(782_250)));
        client.timer(client.next_timer().unwrap());
        assert_eq!(client.next_timer(), Some(Duration::from_millis(842_250)));
        client.timer(client.next_timer().unwrap());
        assert_eq!(client.next_timer(), Some(secs(876)));
        // T2: rebinding, broadcast to any server.
        let actions = client.timer(secs(876));
        assert_eq!(client.state(), State::Rebinding);
        assert_eq!(
            logs(&actions),
            ["dhcp eth0: rebinding 10.0.2.15: 10.0.2.2 did not answer"]
        );
        let [(None, request)] = &sent(&actions)[..] else {
            panic!("one broadcast REQUEST")
        };
        assert_eq!(request.ciaddr, ADDRESS);
        // Retransmissions until the lease ends at 1001 s.
        let mut now = secs(876);
        while let Some(next) = client.next_timer() {
            assert!(next > now);
            now = next;
            let actions = client.timer(now);
            if now >= secs(1001) {
                assert_eq!(
                    logs(&actions)[..2],
                    [
                        "dhcp eth0: lease of 10.0.2.15 expired",
                        "dhcp eth0: discovering (asking for 10.0.2.15)"
                    ]
                );
                assert!(actions.contains(&Action::Unbind));
                let (_, discover) = &sent(&actions)[0];
                assert_eq!(
                    (discover.kind, discover.requested),
                    (DISCOVER, Some(ADDRESS))
                );
                break;
            }
            assert_eq!(sent(&actions)[0].0, None, "rebinding broadcasts");
        }
        assert_eq!(client.state(), State::Selecting);
        assert!(client.lease().is_none());
    }

    #[test]
    fn rebinding_to_another_server() {
        let mut client = bound(100);
        client.timer(secs(51));
        let actions = client.timer(secs(89));
        assert_eq!(client.state(), State::Rebinding);
        let (_, request) = &sent(&actions)[0];
        let actions = client.receive(secs(90), &reply(ACK, request.xid, 100));
        assert_eq!(
            logs(&actions)[0],
            "dhcp eth0: rebound 10.0.2.15/24 via 10.0.2.2 from 10.0.2.2, lease 1m40s"
        );
        assert_eq!(client.state(), State::Bound);
    }

    #[test]
    fn a_server_that_never_answers() {
        let mut client = Client::new("eth1", MAC, 99);
        client.start(secs(0));
        let mut now = secs(0);
        let mut delays = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..8 {
            let next = client.next_timer().unwrap();
            delays.push((next - now).as_secs_f64().round() as u64);
            now = next;
            let actions = client.timer(now);
            assert_eq!(sent(&actions).len(), 1, "one DISCOVER per try");
            assert_eq!(sent(&actions)[0].1.kind, DISCOVER);
            lines.extend(logs(&actions).into_iter().map(str::to_owned));
        }
        assert_eq!(client.state(), State::Selecting);
        // 4, 8, 16, 32, 64 s, then every 64 s, each ±1 s.
        for (delay, expected) in delays.iter().zip([4, 8, 16, 32, 64, 64, 64, 64]) {
            assert!(delay.abs_diff(expected) <= 1, "{delays:?}");
        }
        // One line when it starts, and one when the retries reach their longest wait.
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("dhcp eth1: no offer after 5 tries in "),
            "{lines:?}"
        );
    }

    #[test]
    fn no_ack_discovers_again_and_nak_restarts() {
        let mut client = Client::new("eth0", MAC, 3);
        let actions = client.start(secs(0));
        let xid = sent(&actions)[0].1.xid;
        client.receive(secs(0), &reply(OFFER, xid, 60));
        for _ in 0..REQUEST_TRIES {
            let now = client.next_timer().unwrap();
            let actions = client.timer(now);
            if client.state() == State::Selecting {
                assert!(logs(&actions)[0].contains("no answer from 10.0.2.2 to 4 requests"));
            }
        }
        assert_eq!(client.state(), State::Selecting);

        let mut client = bound(100);
        let actions = client.timer(secs(51));
        let (_, request) = &sent(&actions)[0];
        let actions = client.receive(secs(52), &reply(NAK, request.xid, 0));
        assert_eq!(logs(&actions)[0], "dhcp eth0: refused by 10.0.2.2 (NAK)");
        assert!(actions.contains(&Action::Unbind));
        assert_eq!(client.state(), State::Selecting);
        assert!(client.lease().is_none());
    }

    #[test]
    fn ignores_what_is_not_for_it() {
        let mut client = Client::new("eth0", MAC, 5);
        let actions = client.start(secs(0));
        let xid = sent(&actions)[0].1.xid;
        assert!(client
            .receive(secs(1), &reply(OFFER, xid ^ 1, 60))
            .is_empty());
        assert!(client.receive(secs(1), &reply(ACK, xid, 60)).is_empty());
        let mut other = reply(OFFER, xid, 60);
        other[33] ^= 1;
        assert!(client.receive(secs(1), &other).is_empty());
        for cut in [0, 10, FIXED, FIXED + 3, FIXED + 6] {
            assert!(client
                .receive(secs(1), &reply(OFFER, xid, 60)[..cut])
                .is_empty());
        }
        // An option running past the end is not a message.
        let mut long = reply(OFFER, xid, 60);
        long.truncate(long.len() - 3);
        long.extend_from_slice(&[51, 40, 1]);
        assert!(parse(&long).is_none());
        assert_eq!(client.state(), State::Selecting);
    }

    #[test]
    fn release_on_shutdown() {
        let mut client = bound(3600);
        let actions = client.release(secs(10));
        let [(Some(to), release)] = &sent(&actions)[..] else {
            panic!("one unicast RELEASE")
        };
        assert_eq!(
            (*to, release.kind, release.ciaddr),
            (SERVER, RELEASE, ADDRESS)
        );
        assert_eq!(release.server, Some(SERVER));
        assert!(actions.contains(&Action::Unbind));
        assert_eq!(
            logs(&actions),
            ["dhcp eth0: released 10.0.2.15 to 10.0.2.2"]
        );
        assert_eq!(client.state(), State::Init);
        assert_eq!(client.next_timer(), None);
        // Nothing to release twice.
        assert!(client.release(secs(11)).is_empty());
    }

    #[test]
    fn options_read_strictly() {
        let mut bytes = reply(ACK, 1, 60);
        // A mask with holes: the address's class instead.
        let at = bytes.windows(3).position(|w| w == [1, 4, 255]).unwrap();
        bytes[at + 4] = 0;
        bytes[at + 5] = 255;
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.lease.prefix, 8);
        assert_eq!((parsed.lease.renew, parsed.lease.rebind), (30, 52));
        // T1 and T2 as the server gives them, or defaults that keep T1 ≤ T2 < lease.
        for (t1, t2, expected) in [
            (20, 40, (20, 40)),
            (0, 40, (30, 40)),
            (20, 0, (20, 52)),
            (40, 20, (40, 52)),
            (59, 20, (30, 52)),
            (59, 0, (30, 52)),
            (60, 70, (30, 52)),
        ] {
            let mut bytes = reply(ACK, 1, 60);
            bytes.pop();
            bytes.extend_from_slice(&[58, 4, 0, 0, 0, t1, 59, 4, 0, 0, 0, t2, 255]);
            let lease = parse(&bytes).unwrap().lease;
            assert_eq!((lease.renew, lease.rebind), expected, "T1 {t1}, T2 {t2}");
        }
    }

    /// Replies a broken or hostile server might send, at every state: the client never
    /// panics, always has a timer while it runs, and binds only leases whose T1 ≤ T2 ≤
    /// the lease.
    #[test]
    fn hostile_replies() {
        let mut random = Random::new(17);
        for round in 0..4000 {
            let mut client = bound(60 + round % 7);
            let mut now = secs(1);
            for _ in 0..8 {
                // Walk the client on through its states between replies.
                if random.chance(40) {
                    if let Some(next) = client.next_timer() {
                        now = now.max(next);
                        client.timer(now);
                    }
                }
                let kind = [OFFER, ACK, NAK][random.index(3)];
                let mut bytes = reply(kind, client.xid, random.below(200) as u32);
                match random.below(4) {
                    0 => {
                        let at = FIXED + 4 + random.index(bytes.len() - FIXED - 4);
                        bytes[at] = random.below(256) as u8;
                    }
                    1 => bytes.truncate(FIXED + random.index(bytes.len() - FIXED)),
                    2 => {
                        bytes.pop();
                        let length = random.index(80);
                        let noise = random.bytes(length);
                        bytes.extend_from_slice(&noise);
                    }
                    _ => {
                        let at = random.index(bytes.len());
                        bytes[at] ^= 1 << random.below(8);
                    }
                }
                let actions = client.receive(now, &bytes);
                if let Some(lease) = client.lease() {
                    assert!(
                        lease.renew <= lease.rebind && lease.rebind <= lease.seconds,
                        "round {round}: T1 {} T2 {} lease {}",
                        lease.renew,
                        lease.rebind,
                        lease.seconds
                    );
                }
                assert!(
                    client.state() == State::Init || client.next_timer().is_some(),
                    "round {round}: no timer in {:?} after {} actions",
                    client.state(),
                    actions.len()
                );
            }
        }
    }
}
