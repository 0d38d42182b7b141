//! The device's DNS forwarder, on 127.0.0.53 port 53 (UDP), which /etc/resolv.conf
//! names: pkg's and the SNTP client's resolver (`amber_base::dns`) and musl's, in
//! busybox and every package, ask it, and it asks the upstream servers over UDP or,
//! for a `tcp:` server, over TCP (RFC 7766). On a network that carries only TCP
//! (qemu's user network with `restrict=on` drops the guest's UDP), `dns tcp:ADDRESS`
//! in the settings is all the device needs; musl itself falls back to TCP only after a
//! truncated UDP answer, and has no `use-vc`.
//!
//! Each query goes out with a fresh random id from a fresh socket (so a fresh source
//! port); an answer counts only when its id and question are the query's. The servers
//! are asked one after another, each for at most 2 s, starting with the one that
//! answered last; NOERROR and NXDOMAIN answers are taken at once, a SERVFAIL or REFUSED
//! only when no server answers better, and with none at all the client gets SERVFAIL.
//! An answer longer than 512 bytes goes out truncated with TC set (the client would ask
//! again over TCP, which the forwarder does not serve: a device's names fit). No
//! caching: the router's dnsmasq caches for the LAN.
//!
//! The network daemon answers queries in its own loop, one at a time, with blocking reads
//! and timeouts: queries are rare on a device, and that is the least code (a dead server
//! holds the loop up for 2 s, once: then the server that answered goes first).

use amber_base::dns::{self, judge, question_end, Verdict};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::netconfig::Server;

pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);
const PORT: u16 = 53;
/// The longest UDP answer a client without EDNS takes (RFC 1035).
const UDP_ANSWER: usize = 512;
/// How long one server has to answer.
const SERVER_TIMEOUT: Duration = Duration::from_secs(2);

/// The forwarder's socket, and which server goes first.
pub struct Forwarder {
    socket: UdpSocket,
    first: usize,
}

impl Forwarder {
    /// Listen on 127.0.0.53:53; a socket that cannot be made is said once (names then
    /// do not resolve, but the network still comes up).
    pub fn listen() -> Option<Forwarder> {
        let socket = UdpSocket::bind(SocketAddr::from((ADDRESS, PORT)))
            .and_then(|socket| socket.set_nonblocking(true).map(|()| socket));
        match socket {
            Ok(socket) => Some(Forwarder { socket, first: 0 }),
            Err(error) => {
                crate::status::print(&format!("dns: cannot listen on {ADDRESS} port 53: {error}"));
                None
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Answer every query waiting, asking `servers`.
    pub fn answer(&mut self, servers: &[Server]) {
        let servers: Vec<(SocketAddr, bool)> = servers
            .iter()
            .map(|server| (SocketAddr::from((server.address, PORT)), server.tcp))
            .collect();
        let mut buffer = [0u8; 1500];
        while let Ok((count, from)) = self.socket.recv_from(&mut buffer) {
            if let Some(answer) = resolve(&buffer[..count], &servers, &mut self.first) {
                let _ = self.socket.send_to(&answer, from);
            }
        }
    }
}

/// The answer for a client's query (its id, at most 512 bytes): each server asked in
/// turn from `first` (which becomes the one that answered). None for what is not a
/// query with one question.
fn resolve(query: &[u8], servers: &[(SocketAddr, bool)], first: &mut usize) -> Option<Vec<u8>> {
    if question_end(query).is_none() || query[2] & 0x80 != 0 {
        return None;
    }
    let mut message = query.to_vec();
    message[..2].copy_from_slice(&(crate::sys::random_u64() as u16).to_be_bytes());
    let mut best = None;
    for turn in 0..servers.len() {
        let at = (*first + turn) % servers.len();
        let (address, tcp) = servers[at];
        let Some(reply) = dns::ask(address, tcp, &message, SERVER_TIMEOUT) else {
            continue;
        };
        match judge(&message, &reply) {
            Verdict::Answer => {
                *first = at;
                best = Some(reply);
                break;
            }
            _ => best = Some(reply),
        }
    }
    let mut answer = match best {
        Some(answer) => answer,
        None => short_answer(&message, 2, false)?,
    };
    if answer.len() > UDP_ANSWER {
        answer = short_answer(&answer, answer[3] & 0x0f, true)?;
    }
    answer[..2].copy_from_slice(&query[..2]);
    Some(answer)
}

/// An answer with only the header and the question of `message` and this response
/// code, or with TC set (`truncated`).
fn short_answer(message: &[u8], rcode: u8, truncated: bool) -> Option<Vec<u8>> {
    let end = question_end(message)?;
    let mut answer = message[..end].to_vec();
    // QR, the query's opcode and RD; TC when truncated; RA; the code; one question only.
    answer[2] = 0x80 | (message[2] & 0x79) | if truncated { 0x02 } else { 0 };
    answer[3] = 0x80 | rcode;
    answer[6..12].fill(0);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A query for `name` (type A) with id 0x1234.
    fn query(name: &str) -> Vec<u8> {
        let mut message = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            message.push(label.len() as u8);
            message.extend_from_slice(label.as_bytes());
        }
        message.extend_from_slice(&[0, 0, 1, 0, 1]);
        message
    }

    fn answer_to(query: &[u8], rcode: u8, extra: usize) -> Vec<u8> {
        let mut answer = query.to_vec();
        answer[2] |= 0x80;
        answer[3] = 0x80 | rcode;
        answer[7] = 1;
        answer.extend(std::iter::repeat_n(0u8, extra));
        answer
    }

    #[test]
    fn short_answers() {
        let message = query("repo.amber.test");
        let servfail = short_answer(&message, 2, false).unwrap();
        assert_eq!(servfail.len(), message.len());
        assert_eq!(servfail[2], 0x81);
        assert_eq!(servfail[3], 0x82);
        let long = answer_to(&message, 0, 600);
        let truncated = short_answer(&long, long[3] & 0x0f, true).unwrap();
        assert_eq!(truncated.len(), message.len());
        assert_eq!(truncated[2] & 0x02, 0x02, "TC");
        assert_eq!(truncated[6..12], [0; 6]);
    }

    /// A query over UDP, answered by a TCP server on 127.0.0.1 (as 10.0.2.53 in qemu):
    /// the client's id comes back, and a long answer is truncated with TC set.
    #[test]
    fn resolves_over_tcp() {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = upstream.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = upstream.accept().unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).unwrap();
            let mut message = vec![0u8; u16::from_be_bytes(length) as usize];
            stream.read_exact(&mut message).unwrap();
            let answer = answer_to(&message, 0, 700);
            stream
                .write_all(&(answer.len() as u16).to_be_bytes())
                .unwrap();
            stream.write_all(&answer).unwrap();
        });
        let message = query("repo.amber.test");
        // A dead server first: the answer comes from the next, which is then first.
        let dead = (SocketAddr::from(([127, 0, 0, 1], 1)), true);
        let target = (SocketAddr::from(([127, 0, 0, 1], port)), true);
        let mut first = 0;
        let answer = resolve(&message, &[dead, target], &mut first).unwrap();
        assert_eq!(first, 1);
        server.join().unwrap();
        assert_eq!(answer[..2], message[..2], "the client's own id");
        assert_eq!(answer.len(), message.len(), "cut to the question");
        assert_eq!(answer[2] & 0x82, 0x82, "an answer, truncated");
        // No servers at all: SERVFAIL at once, with the client's id.
        let answer = resolve(&message, &[], &mut first).unwrap();
        assert_eq!(answer[..2], message[..2]);
        assert_eq!(answer[3] & 0x0f, 2);
    }

    /// Broken queries from a client: nothing panics, and what goes back to a client is
    /// its own id, at most 512 bytes. (Replies are judged by amber-base's `dns`, and
    /// tested there.)
    #[test]
    fn hostile_messages() {
        let mut random = amber_core::random::Random::new(53);
        let message = query("repo.amber.test");
        for round in 0..20_000 {
            let mut bytes = match random.below(3) {
                0 => message.clone(),
                1 => answer_to(&message, random.below(16) as u8, random.index(700)),
                _ => {
                    let length = random.index(64);
                    random.bytes(length)
                }
            };
            random.damage(&mut bytes);
            let _ = short_answer(&bytes, 2, random.chance(50));
            if let Some(answer) = resolve(&bytes, &[], &mut 0) {
                assert_eq!(answer[..2], bytes[..2], "round {round}");
                assert!(answer.len() <= UDP_ANSWER, "round {round}");
            }
        }
    }
}
