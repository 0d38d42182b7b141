//! The test LAN: a network of one host-side peer that a guest joins as its second
//! network card, through qemu's `-netdev socket,connect=127.0.0.1:PORT` (Ethernet
//! frames over TCP, each after its length in four bytes, big-endian).
//!
//! qemu's user network with `restrict=on` drops every UDP datagram the guest sends
//! except DHCP's to qemu's own server, so neither a DHCP server with a short lease nor
//! an SNTP server on the host can be reached through it. This peer is both, on a link of
//! its own: it answers ARP for [`SERVER`], gives [`CLIENT`] by DHCP (RFC 2131) with a
//! lease of [`LEASE_SECONDS`] and itself as the NTP server (option 42), and answers SNTP
//! (RFC 4330) with a clock that starts at the time it is given. [`TestLan::set_silent`]
//! makes it a server that never answers. It keeps a count of what it did, and how long
//! each new lease took from the guest's first DISCOVER to the ACK.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SERVER: [u8; 4] = [10, 9, 0, 1];
pub const CLIENT: [u8; 4] = [10, 9, 0, 15];
const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x09, 0x00, 0x01];
/// The guest's card on this LAN.
pub const GUEST_MAC: &str = "52:54:00:09:00:0f";
/// Short, so the guest renews (T1) within seconds.
pub const LEASE_SECONDS: u32 = 20;

#[derive(Default)]
struct Counts {
    offers: AtomicU32,
    acks: AtomicU32,
    renewals: AtomicU32,
    releases: AtomicU32,
    sntp: AtomicU32,
    /// When the first DISCOVER without an ACK since came.
    discovered: Mutex<Option<Instant>>,
    /// For each new lease (not a renewal): from that DISCOVER to the ACK.
    to_address: Mutex<Vec<Duration>>,
}

pub struct TestLan {
    pub port: u16,
    silent: Arc<AtomicBool>,
    counts: Arc<Counts>,
}

impl TestLan {
    /// Listen on 127.0.0.1; the SNTP clock reads `unix_time` now and runs from there.
    pub fn start(unix_time: u64) -> Result<TestLan, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("test LAN: bind: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("test LAN: {e}"))?
            .port();
        let silent = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let (quiet, tally) = (silent.clone(), counts.clone());
        let started = Instant::now();
        std::thread::spawn(move || {
            // One guest at a time: each boot connects anew.
            for stream in listener.incoming().flatten() {
                let peer = Peer {
                    silent: quiet.clone(),
                    counts: tally.clone(),
                    clock: (unix_time, started),
                };
                std::thread::spawn(move || peer.serve(stream));
            }
        });
        Ok(TestLan {
            port,
            silent,
            counts,
        })
    }

    /// The qemu arguments of a guest's card on this LAN: `card` is its device and
    /// options (`virtio-net-pci`, ...).
    pub fn qemu_args(&self, card: &str) -> Vec<String> {
        vec![
            "-netdev".into(),
            format!("socket,id=testlan,connect=127.0.0.1:{}", self.port),
            "-device".into(),
            format!("{card},netdev=testlan,mac={GUEST_MAC}"),
        ]
    }

    /// A server that never answers (true), or one that does.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    /// What it did: offers, acks (renewals among them), releases, SNTP answers.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let load = |n: &AtomicU32| n.load(Ordering::SeqCst);
        format!(
            "{} offers, {} acks ({} renewals), {} releases, {} SNTP answers",
            load(&c.offers),
            load(&c.acks),
            load(&c.renewals),
            load(&c.releases),
            load(&c.sntp)
        )
    }

    pub fn renewals(&self) -> u32 {
        self.counts.renewals.load(Ordering::SeqCst)
    }

    /// How long each new lease took, from the guest's first DISCOVER to the ACK.
    pub fn times_to_address(&self) -> Vec<Duration> {
        self.counts
            .to_address
            .lock()
            .map(|times| times.clone())
            .unwrap_or_default()
    }
}

struct Peer {
    silent: Arc<AtomicBool>,
    counts: Arc<Counts>,
    clock: (u64, Instant),
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame with an IPv4 UDP datagram from the server (UDP checksum 0: none).
fn udp_frame(to_mac: [u8; 6], to: [u8; 4], ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(42 + payload.len());
    frame.extend_from_slice(&to_mac);
    frame.extend_from_slice(&SERVER_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&SERVER);
    ip.extend_from_slice(&to);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}

impl Peer {
    fn serve(self, mut stream: TcpStream) {
        loop {
            let mut length = [0u8; 4];
            if stream.read_exact(&mut length).is_err() {
                return;
            }
            let mut frame = vec![0u8; u32::from_be_bytes(length) as usize];
            if stream.read_exact(&mut frame).is_err() {
                return;
            }
            if self.silent.load(Ordering::SeqCst) {
                continue;
            }
            if let Some(reply) = self.answer(&frame) {
                let mut message = (reply.len() as u32).to_be_bytes().to_vec();
                message.extend_from_slice(&reply);
                if stream.write_all(&message).is_err() {
                    return;
                }
            }
        }
    }

    fn answer(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let source_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
        match frame.get(12..14)? {
            // ARP: who has 10.9.0.1? This MAC.
            [0x08, 0x06] => {
                let arp = frame.get(14..42)?;
                if arp[6..8] != [0, 1] || arp[24..28] != SERVER {
                    return None;
                }
                let mut reply = Vec::with_capacity(42);
                reply.extend_from_slice(&source_mac);
                reply.extend_from_slice(&SERVER_MAC);
                reply.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
                reply.extend_from_slice(&SERVER_MAC);
                reply.extend_from_slice(&SERVER);
                reply.extend_from_slice(&arp[8..14]);
                reply.extend_from_slice(&arp[14..18]);
                Some(reply)
            }
            [0x08, 0x00] => {
                let ip = frame.get(14..)?;
                let header = usize::from(ip[0] & 0x0f) * 4;
                if ip[9] != 17 || ip.len() < header + 8 {
                    return None;
                }
                let from: [u8; 4] = ip[12..16].try_into().ok()?;
                let udp = &ip[header..];
                let ports = (
                    u16::from_be_bytes([udp[0], udp[1]]),
                    u16::from_be_bytes([udp[2], udp[3]]),
                );
                let payload = udp.get(8..)?;
                match ports.1 {
                    67 => self.dhcp(source_mac, payload),
                    123 if ip[16..20] == SERVER => {
                        let reply = self.sntp(payload)?;
                        Some(udp_frame(source_mac, from, (123, ports.0), &reply))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// An offer for a DISCOVER, an ACK (or NAK) for a REQUEST.
    fn dhcp(&self, mac: [u8; 6], message: &[u8]) -> Option<Vec<u8>> {
        if message.len() < 240 || message[0] != 1 || message[236..240] != [99, 130, 83, 99] {
            return None;
        }
        let (mut kind, mut requested) = (0u8, None);
        let mut at = 240;
        while at + 1 < message.len() && message[at] != 255 {
            if message[at] == 0 {
                at += 1;
                continue;
            }
            let length = usize::from(message[at + 1]);
            let data = message.get(at + 2..at + 2 + length)?;
            match message[at] {
                53 => kind = data[0],
                50 if length == 4 => requested = Some([data[0], data[1], data[2], data[3]]),
                _ => {}
            }
            at += 2 + length;
        }
        let ciaddr: [u8; 4] = message[12..16].try_into().ok()?;
        let reply_kind = match kind {
            1 => {
                self.counts.offers.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut discovered) = self.counts.discovered.lock() {
                    discovered.get_or_insert_with(Instant::now);
                }
                2
            }
            3 if requested == Some(CLIENT) || ciaddr == CLIENT => {
                self.counts.acks.fetch_add(1, Ordering::SeqCst);
                if ciaddr == CLIENT {
                    self.counts.renewals.fetch_add(1, Ordering::SeqCst);
                } else if let Some(at) = self
                    .counts
                    .discovered
                    .lock()
                    .ok()
                    .and_then(|mut d| d.take())
                {
                    if let Ok(mut times) = self.counts.to_address.lock() {
                        times.push(at.elapsed());
                    }
                }
                5
            }
            3 => 6,
            7 => {
                self.counts.releases.fetch_add(1, Ordering::SeqCst);
                return None;
            }
            _ => return None,
        };
        let mut reply = vec![0u8; 236];
        reply[..4].copy_from_slice(&[2, 1, 6, 0]);
        reply[4..8].copy_from_slice(&message[4..8]);
        reply[10..12].copy_from_slice(&message[10..12]);
        if reply_kind != 6 {
            reply[16..20].copy_from_slice(&CLIENT);
        }
        reply[28..44].copy_from_slice(&message[28..44]);
        reply.extend_from_slice(&[99, 130, 83, 99, 53, 1, reply_kind, 54, 4]);
        reply.extend_from_slice(&SERVER);
        if reply_kind != 6 {
            reply.extend_from_slice(&[1, 4, 255, 255, 255, 0, 51, 4]);
            reply.extend_from_slice(&LEASE_SECONDS.to_be_bytes());
            reply.extend_from_slice(&[42, 4]);
            reply.extend_from_slice(&SERVER);
        }
        reply.push(255);
        // A client without its address yet gets the answer broadcast (RFC 2131 §4.1).
        let (to_mac, to) = if ciaddr == [0; 4] {
            ([0xff; 6], [255; 4])
        } else {
            (mac, ciaddr)
        };
        Some(udp_frame(to_mac, to, (67, 68), &reply))
    }

    /// A server's answer to a client's request: stratum 2, this peer's clock.
    fn sntp(&self, request: &[u8]) -> Option<Vec<u8>> {
        if request.len() < 48 || request[0] & 7 != 3 {
            return None;
        }
        self.counts.sntp.fetch_add(1, Ordering::SeqCst);
        let elapsed = self.clock.1.elapsed();
        let seconds = self.clock.0 + elapsed.as_secs() + 2_208_988_800;
        let fraction = (u64::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000;
        let now = (seconds & 0xffff_ffff) << 32 | fraction;
        let mut reply = vec![0u8; 48];
        reply[0] = 0x24; // no leap warning, version 4, mode 4 (server)
        reply[1] = 2;
        reply[2] = request[2];
        reply[3] = 0xec;
        reply[12..16].copy_from_slice(b"TEST");
        reply[16..24].copy_from_slice(&now.to_be_bytes());
        reply[24..32].copy_from_slice(&request[40..48]);
        reply[32..40].copy_from_slice(&now.to_be_bytes());
        reply[40..48].copy_from_slice(&now.to_be_bytes());
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discover(kind: u8, ciaddr: [u8; 4]) -> Vec<u8> {
        let mut message = vec![0u8; 236];
        message[..4].copy_from_slice(&[1, 1, 6, 0]);
        message[4..8].copy_from_slice(&[1, 2, 3, 4]);
        message[12..16].copy_from_slice(&ciaddr);
        message[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        message.extend_from_slice(&[99, 130, 83, 99, 53, 1, kind, 255]);
        message
    }

    fn peer() -> Peer {
        Peer {
            silent: Arc::new(AtomicBool::new(false)),
            counts: Arc::new(Counts::default()),
            clock: (1_787_000_000, Instant::now()),
        }
    }

    #[test]
    fn offers_and_acks() {
        let peer = peer();
        let offer = peer.dhcp([2, 0, 0, 0, 0, 1], &discover(1, [0; 4])).unwrap();
        // Broadcast, to port 68, offering 10.9.0.15 with a 20 s lease.
        assert_eq!(offer[..6], [0xff; 6]);
        let dhcp = &offer[42..];
        assert_eq!(dhcp[16..20], CLIENT);
        assert!(dhcp.windows(6).any(|w| w == [51, 4, 0, 0, 0, 20]));
        assert!(dhcp.windows(6).any(|w| w == [42, 4, 10, 9, 0, 1]));
        assert_eq!(checksum(&offer[14..34]), 0, "a valid IPv4 header");
        // The REQUEST for what it offered: a new lease, timed from the DISCOVER.
        let mut request = discover(3, [0; 4]);
        request.pop();
        request.extend_from_slice(&[50, 4, 10, 9, 0, 15, 255]);
        let ack = peer.dhcp([2, 0, 0, 0, 0, 1], &request).unwrap();
        assert_eq!(ack[42 + 242], 5, "ACK");
        assert_eq!(peer.counts.to_address.lock().unwrap().len(), 1);
        assert!(peer.counts.discovered.lock().unwrap().is_none());
        // A renewal: unicast, counted.
        let ack = peer.dhcp([2, 0, 0, 0, 0, 1], &discover(3, CLIENT)).unwrap();
        assert_eq!(ack[..6], [2, 0, 0, 0, 0, 1]);
        assert_eq!(ack[42 + 242], 5, "ACK");
        assert_eq!(peer.counts.renewals.load(Ordering::SeqCst), 1);
        assert_eq!(peer.counts.to_address.lock().unwrap().len(), 1, "not timed");
        // A REQUEST for an address it does not give: NAK.
        let nak = peer
            .dhcp([2, 0, 0, 0, 0, 1], &discover(3, [10, 9, 0, 99]))
            .unwrap();
        assert_eq!(nak[42 + 242], 6, "NAK");
    }

    #[test]
    fn sntp_answers() {
        let mut request = vec![0u8; 48];
        request[0] = 0x23;
        request[40..48].copy_from_slice(&[9; 8]);
        let reply = peer().sntp(&request).unwrap();
        assert_eq!(reply[0] & 7, 4);
        assert_eq!(
            reply[24..32],
            [9; 8],
            "the client's transmit time as originate"
        );
        let seconds = u32::from_be_bytes(reply[40..44].try_into().unwrap()) as u64;
        assert!(seconds - 2_208_988_800 - 1_787_000_000 < 5, "{seconds}");
    }
}
