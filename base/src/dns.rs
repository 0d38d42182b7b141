//! Host names to addresses: the stub resolver pkg and the SNTP client use, and the DNS
//! exchange the device's forwarder (amber-boot's `dns`) shares with it.
//!
//! [`lookup`] does for them what musl's `getaddrinfo` did, in a fraction of its code
//! (musl's resolver, the stdio it reads its files with and std's lookup iterator were
//! 22 KB of the x86_64 binary):
//!
//! - an IPv4 or IPv6 literal is its own address;
//! - `/etc/hosts` comes next: the address of every line that names the host, in any case;
//! - then DNS, as `/etc/resolv.conf` says: up to three `nameserver` lines (none:
//!   127.0.0.1), `search` or `domain`, and `options ndots:N timeout:N attempts:N`, with
//!   musl's defaults (1, 5 s, 2). A name with fewer than `ndots` dots is tried with each
//!   search domain first, then alone; any other name, and one ending in a dot, only
//!   alone. Each name is asked for A and AAAA at once, of each server in turn,
//!   `attempts` rounds of `timeout / attempts` each. A reply counts only when its id
//!   and question are the query's; one with TC set is asked again over TCP. NOERROR
//!   and NXDOMAIN are taken at once; SERVFAIL or REFUSED sends the question on to the
//!   next server;
//! - the addresses come IPv4 first, each family in the order its answer gave.
//!
//! Left out, as the device needs none of it: IPv6 scope ids, caching (the forwarder's
//! upstream caches for the device), DNSSEC.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const PORT: u16 = 53;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Servers past the third are ignored, as musl and glibc do.
const MOST_SERVERS: usize = 3;
/// The longest name DNS carries, without its final dot.
const LONGEST_NAME: usize = 253;

/// The addresses of `host` (a name or an address literal), each with `port`. The error
/// is a short phrase that follows "cannot resolve HOST: ".
pub fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let addresses = resolve(host, &hosts, &Config::parse(&conf))?;
    Ok(addresses
        .into_iter()
        .map(|address| SocketAddr::new(address, port))
        .collect())
}

/// What resolv.conf says.
#[derive(Debug, PartialEq)]
struct Config {
    servers: Vec<SocketAddr>,
    search: Vec<String>,
    dots: usize,
    timeout: Duration,
    attempts: u32,
}

impl Config {
    /// The settings of a resolv.conf; what it does not say is musl's default, and
    /// what it says wrong is skipped.
    fn parse(text: &str) -> Config {
        let mut config = Config {
            servers: Vec::new(),
            search: Vec::new(),
            dots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let address = words.next().and_then(|word| word.parse::<IpAddr>().ok());
                    if let Some(address) = address {
                        if config.servers.len() < MOST_SERVERS {
                            config.servers.push(SocketAddr::new(address, PORT));
                        }
                    }
                }
                // The last `search` or `domain` line wins.
                Some("search" | "domain") => {
                    config.search = words
                        .map(|word| word.trim_end_matches('.').to_string())
                        .filter(|domain| is_name(domain))
                        .collect();
                }
                Some("options") => {
                    for option in words {
                        let Some((name, value)) = option.split_once(':') else {
                            continue;
                        };
                        let Ok(value) = value.parse::<u32>() else {
                            continue;
                        };
                        // musl's bounds.
                        match name {
                            "ndots" => config.dots = value.min(15) as usize,
                            "timeout" => config.timeout = Duration::from_secs(value.min(60).into()),
                            "attempts" => config.attempts = value.clamp(1, 10),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if config.servers.is_empty() {
            config
                .servers
                .push(SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)));
        }
        config
    }
}

/// `host`'s addresses: itself, from `hosts` (an /etc/hosts) or from DNS.
fn resolve(host: &str, hosts: &str, config: &Config) -> Result<Vec<IpAddr>, String> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(vec![address]);
    }
    let bare = host.strip_suffix('.').unwrap_or(host);
    if !is_name(bare) {
        return Err("not a host name".into());
    }
    let known = from_hosts(bare, hosts);
    if !known.is_empty() {
        return Ok(known);
    }
    for name in names_to_try(host, config) {
        let mut found = Vec::new();
        for answer in ask_servers(&name, config)? {
            found.append(&mut addresses(&answer));
        }
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Err("no such name".into())
}

/// Letters, digits, `-` and `_` in dot-separated labels of 1 to 63 bytes.
fn is_name(name: &str) -> bool {
    name.len() <= LONGEST_NAME
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
}

/// The addresses /etc/hosts gives `name`, in its order.
fn from_hosts(name: &str, hosts: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(address)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if words.any(|word| word.eq_ignore_ascii_case(name)) && !found.contains(&address) {
            found.push(address);
        }
    }
    found
}

/// The names to ask DNS for, in order (resolv.conf's `search` and `ndots`).
fn names_to_try(host: &str, config: &Config) -> Vec<String> {
    if let Some(absolute) = host.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let mut names = Vec::new();
    if host.matches('.').count() < config.dots {
        for domain in &config.search {
            let name = format!("{host}.{domain}");
            if name.len() <= LONGEST_NAME {
                names.push(name);
            }
        }
    }
    names.push(host.to_string());
    names
}

/// The answers to `name`'s A and AAAA questions from the first server that answers
/// them, or why none did.
fn ask_servers(name: &str, config: &Config) -> Result<Vec<Vec<u8>>, String> {
    let each = config.timeout / config.attempts;
    let mut refused = false;
    for _ in 0..config.attempts {
        for &server in &config.servers {
            let id = crate::sys::random_u64();
            let questions = [
                question(id as u16, name, TYPE_A),
                question((id >> 16) as u16, name, TYPE_AAAA),
            ];
            let replies = exchange(server, false, &questions, each);
            let mut answers = Vec::new();
            for (reply, asked) in replies.into_iter().zip(&questions) {
                let Some(mut reply) = reply else { continue };
                if reply[2] & 0x02 != 0 {
                    // Truncated: the whole answer comes over TCP.
                    match ask(server, true, asked, each) {
                        Some(whole) => reply = whole,
                        None => continue,
                    }
                }
                match judge(asked, &reply) {
                    Verdict::Answer => answers.push(reply),
                    Verdict::Fallback => refused = true,
                    Verdict::Ignore => {}
                }
            }
            if !answers.is_empty() {
                return Ok(answers);
            }
        }
    }
    let servers: Vec<String> = config.servers.iter().map(|s| s.ip().to_string()).collect();
    let servers = servers.join(", ");
    Err(if refused {
        format!("the DNS servers ({servers}) failed to answer")
    } else {
        format!("no answer from the DNS servers ({servers})")
    })
}

/// A query with this id for `name`'s records of type `kind`, recursion desired.
fn question(id: u16, name: &str, kind: u16) -> Vec<u8> {
    let mut message = id.to_be_bytes().to_vec();
    message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.push(0);
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    message
}

/// The A and AAAA records in the answer section of `reply`; nothing for a malformed one.
fn addresses(reply: &[u8]) -> Vec<IpAddr> {
    let mut found = Vec::new();
    let Some(mut at) = question_end(reply) else {
        return found;
    };
    let count = u16::from_be_bytes([reply[6], reply[7]]);
    for _ in 0..count {
        let Some(end) = name_end(reply, at) else {
            break;
        };
        let Some(fixed) = reply.get(end..end + 10) else {
            break;
        };
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let length = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let Some(data) = reply.get(end + 10..end + 10 + length) else {
            break;
        };
        match (kind, class, data.len()) {
            (TYPE_A, CLASS_IN, 4) => found.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (TYPE_AAAA, CLASS_IN, 16) => {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(data);
                found.push(IpAddr::from(bytes));
            }
            _ => {}
        }
        at = end + 10 + length;
    }
    found
}

/// Where the name at `at` ends: after its last label, or after a compression pointer.
fn name_end(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)? as usize;
        match length {
            0 => return Some(at + 1),
            1..=63 => at += 1 + length,
            // A pointer (two bytes) ends the name here, wherever it points.
            0xc0..=0xff => return (at + 2 <= message.len()).then_some(at + 2),
            _ => return None,
        }
    }
}

/// The end of the question section of a message with one question; None when it has
/// no such question.
pub fn question_end(message: &[u8]) -> Option<usize> {
    if message.len() < 12 || message[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12;
    loop {
        let length = *message.get(at)? as usize;
        if length == 0 {
            break;
        }
        if length > 63 {
            return None;
        }
        at += 1 + length;
    }
    let end = at + 5;
    (end <= message.len()).then_some(end)
}

/// What a reply is to a query.
pub enum Verdict {
    /// NOERROR or NXDOMAIN: the answer.
    Answer,
    /// Another response code (SERVFAIL, REFUSED, ...): ask another server.
    Fallback,
    /// Not a reply to this query.
    Ignore,
}

/// Whether `reply` answers `query`: its id and question, then its response code.
pub fn judge(query: &[u8], reply: &[u8]) -> Verdict {
    let Some(end) = question_end(query) else {
        return Verdict::Ignore;
    };
    let same = reply.len() >= end
        && reply[..2] == query[..2]
        && reply[2] & 0x80 != 0
        && reply[4..6] == [0, 1]
        && reply[12..end].eq_ignore_ascii_case(&query[12..end]);
    match reply.get(3).map(|b| b & 0x0f) {
        _ if !same => Verdict::Ignore,
        Some(0 | 3) => Verdict::Answer,
        _ => Verdict::Fallback,
    }
}

/// One server's reply to `message` over UDP or TCP (RFC 7766), within `timeout`; None
/// when it gives none.
pub fn ask(server: SocketAddr, tcp: bool, message: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    exchange(server, tcp, &[message.to_vec()], timeout)
        .pop()
        .flatten()
}

/// The server's replies to `messages`, sent at once: over UDP on one socket, each
/// taken within `timeout` of sending; over TCP one after another on one connection.
/// What else arrives (a late or forged datagram) is skipped.
fn exchange(
    server: SocketAddr,
    tcp: bool,
    messages: &[Vec<u8>],
    timeout: Duration,
) -> Vec<Option<Vec<u8>>> {
    let mut replies: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
    if timeout.is_zero() {
        return replies;
    }
    if tcp {
        let Ok(mut stream) = TcpStream::connect_timeout(&server, timeout) else {
            return replies;
        };
        if stream.set_read_timeout(Some(timeout)).is_err() {
            return replies;
        }
        for (message, reply) in messages.iter().zip(replies.iter_mut()) {
            let mut request = (message.len() as u16).to_be_bytes().to_vec();
            request.extend_from_slice(message);
            let mut length = [0u8; 2];
            if stream.write_all(&request).is_err() || stream.read_exact(&mut length).is_err() {
                break;
            }
            let mut answer = vec![0u8; u16::from_be_bytes(length) as usize];
            if stream.read_exact(&mut answer).is_err() {
                break;
            }
            if !matches!(judge(message, &answer), Verdict::Ignore) {
                *reply = Some(answer);
            }
        }
        return replies;
    }
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let Ok(socket) = UdpSocket::bind(SocketAddr::new(any, 0)) else {
        return replies;
    };
    if socket.connect(server).is_err() || messages.iter().any(|m| socket.send(m).is_err()) {
        return replies;
    }
    let deadline = Instant::now() + timeout;
    let mut buffer = vec![0u8; 4096];
    while replies.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            break;
        }
        let Ok(count) = socket.recv(&mut buffer) else {
            break;
        };
        let reply = &buffer[..count];
        for (message, slot) in messages.iter().zip(replies.iter_mut()) {
            if slot.is_none() && !matches!(judge(message, reply), Verdict::Ignore) {
                *slot = Some(reply.to_vec());
                break;
            }
        }
    }
    replies
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A query for `name` (type A) with id 0x1234.
    fn query(name: &str) -> Vec<u8> {
        question(0x1234, name, TYPE_A)
    }

    fn answer_to(query: &[u8], rcode: u8, extra: usize) -> Vec<u8> {
        let mut answer = query.to_vec();
        answer[2] |= 0x80;
        answer[3] = 0x80 | rcode;
        answer[7] = 1;
        answer.extend(std::iter::repeat_n(0u8, extra));
        answer
    }

    /// The answer a recursive server gives to `query`: a CNAME, then the records of
    /// the query's type for `addresses` (the ones of its family), names compressed.
    fn records(query: &[u8], addresses: &[IpAddr]) -> Vec<u8> {
        let end = question_end(query).unwrap();
        let kind = u16::from_be_bytes([query[end - 4], query[end - 3]]);
        let mut answer = query[..end].to_vec();
        answer[2] |= 0x80;
        answer[3] = 0x80;
        let mut count = 1u16;
        // repo.example CNAME mirror.example: the name points at the question's.
        answer.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0, 0, 9]);
        answer.extend_from_slice(b"\x06mirror\xc0\x11");
        for address in addresses {
            let data = match (address, kind) {
                (IpAddr::V4(v4), TYPE_A) => v4.octets().to_vec(),
                (IpAddr::V6(v6), TYPE_AAAA) => v6.octets().to_vec(),
                _ => continue,
            };
            count += 1;
            answer.extend_from_slice(&[0xc0, 12]);
            answer.extend_from_slice(&kind.to_be_bytes());
            answer.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
            answer.extend_from_slice(&data);
        }
        answer[6..8].copy_from_slice(&count.to_be_bytes());
        answer
    }

    /// The name a query asks for, dotted.
    fn asked_name(query: &[u8]) -> String {
        let mut labels = Vec::new();
        let mut at = 12;
        while query[at] != 0 {
            let length = query[at] as usize;
            labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + length]).into_owned());
            at += 1 + length;
        }
        labels.join(".")
    }

    /// A DNS server on 127.0.0.1 (UDP, and TCP on the same port) that answers each
    /// query with what `answer` gives (nothing: silence); the names it was asked for
    /// come out of the channel.
    fn server(
        answer: impl Fn(&[u8], bool) -> Vec<Vec<u8>> + Send + Sync + 'static,
    ) -> (SocketAddr, mpsc::Receiver<String>) {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = udp.local_addr().unwrap();
        let tcp = std::net::TcpListener::bind(address).unwrap();
        let (asked, names) = mpsc::channel();
        let answer = std::sync::Arc::new(answer);
        let (tcp_answer, tcp_asked) = (answer.clone(), asked.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while let Ok((count, from)) = udp.recv_from(&mut buffer) {
                let _ = asked.send(asked_name(&buffer[..count]));
                for reply in answer(&buffer[..count], false) {
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        std::thread::spawn(move || {
            for stream in tcp.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut length = [0u8; 2];
                while stream.read_exact(&mut length).is_ok() {
                    let mut message = vec![0u8; u16::from_be_bytes(length) as usize];
                    if stream.read_exact(&mut message).is_err() {
                        break;
                    }
                    let _ = tcp_asked.send(format!("tcp {}", asked_name(&message)));
                    for reply in tcp_answer(&message, true) {
                        let _ = stream.write_all(&(reply.len() as u16).to_be_bytes());
                        let _ = stream.write_all(&reply);
                    }
                }
            }
        });
        (address, names)
    }

    fn config(servers: &[SocketAddr], search: &[&str]) -> Config {
        Config {
            servers: servers.to_vec(),
            search: search.iter().map(|domain| domain.to_string()).collect(),
            dots: 1,
            timeout: Duration::from_millis(600),
            attempts: 2,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn questions() {
        let message = query("repo.amber.test");
        assert_eq!(question_end(&message), Some(message.len()));
        assert_eq!(question_end(&message[..message.len() - 1]), None);
        let mut two = message.clone();
        two[5] = 2;
        assert_eq!(question_end(&two), None);
        let mut long_label = message.clone();
        long_label[12] = 64;
        assert_eq!(question_end(&long_label), None);
        assert_eq!(question_end(&[0; 11]), None);
        assert_eq!(asked_name(&message), "repo.amber.test");
    }

    #[test]
    fn answers_are_judged() {
        let message = query("repo.amber.test");
        let verdict = |reply: &[u8]| match judge(&message, reply) {
            Verdict::Answer => "answer",
            Verdict::Fallback => "fallback",
            Verdict::Ignore => "ignore",
        };
        assert_eq!(verdict(&answer_to(&message, 0, 16)), "answer");
        assert_eq!(verdict(&answer_to(&message, 3, 0)), "answer");
        assert_eq!(verdict(&answer_to(&message, 2, 0)), "fallback");
        assert_eq!(verdict(&answer_to(&message, 5, 0)), "fallback");
        // The name's case may differ (0x20 randomisation); the name itself may not.
        assert_eq!(
            verdict(&answer_to(&query("REPO.amber.test"), 0, 0)),
            "answer"
        );
        assert_eq!(
            verdict(&answer_to(&query("evil.amber.test"), 0, 0)),
            "ignore"
        );
        let mut wrong_id = answer_to(&message, 0, 0);
        wrong_id[1] ^= 1;
        assert_eq!(verdict(&wrong_id), "ignore");
        // A query is not an answer.
        assert_eq!(verdict(&message), "ignore");
    }

    #[test]
    fn resolv_conf() {
        let config = Config::parse(
            "# written by netd\nnameserver 127.0.0.53\nnameserver fd00::1\nnameserver bogus\n\
             nameserver 10.0.0.1\nnameserver 10.0.0.2\ndomain first.example\n\
             search lan. home.arpa bad/domain\noptions ndots:2 timeout:3 attempts:0 rotate\n",
        );
        assert_eq!(
            config,
            Config {
                servers: vec![
                    "127.0.0.53:53".parse().unwrap(),
                    "[fd00::1]:53".parse().unwrap(),
                    "10.0.0.1:53".parse().unwrap(),
                ],
                search: vec!["lan".into(), "home.arpa".into()],
                dots: 2,
                timeout: Duration::from_secs(3),
                attempts: 1,
            }
        );
        let empty = Config::parse("");
        assert_eq!(empty.servers, ["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(
            (empty.dots, empty.timeout, empty.attempts),
            (1, Duration::from_secs(5), 2)
        );
    }

    #[test]
    fn hosts_file() {
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost # the loopback\n\
                     # 10.9.9.9 repo\n10.0.0.7\trepo Repo.Lan\nnot-an-address repo\n10.0.0.7 repo\n";
        assert_eq!(from_hosts("localhost", hosts), [ip("127.0.0.1"), ip("::1")]);
        assert_eq!(from_hosts("REPO", hosts), [ip("10.0.0.7")]);
        assert_eq!(from_hosts("repo.lan", hosts), [ip("10.0.0.7")]);
        assert!(from_hosts("ip6", hosts).is_empty());
        assert_eq!(
            resolve("localhost", hosts, &config(&[], &[])).unwrap(),
            [ip("127.0.0.1"), ip("::1")]
        );
    }

    #[test]
    fn names_and_literals() {
        let search = config(&[], &["lan", "home.arpa"]);
        let cases: &[(&str, &[&str])] = &[
            ("repo", &["repo.lan", "repo.home.arpa", "repo"]),
            ("repo.example", &["repo.example"]),
            ("repo.", &["repo"]),
        ];
        for (host, names) in cases {
            assert_eq!(names_to_try(host, &search), *names, "{host}");
        }
        assert_eq!(resolve("10.0.2.2", "", &search).unwrap(), [ip("10.0.2.2")]);
        assert_eq!(resolve("fd00::2", "", &search).unwrap(), [ip("fd00::2")]);
        for bad in [
            "",
            "a..b",
            "white space",
            "semi;colon",
            &"x".repeat(64),
            &"a.".repeat(130),
        ] {
            assert_eq!(
                resolve(bad, "", &search).unwrap_err(),
                "not a host name",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn records_are_read() {
        let message = query("repo.example");
        let answer = records(&message, &[ip("10.0.0.1"), ip("fd00::1"), ip("10.0.0.2")]);
        assert_eq!(addresses(&answer), [ip("10.0.0.1"), ip("10.0.0.2")]);
        let six = question(1, "repo.example", TYPE_AAAA);
        assert_eq!(
            addresses(&records(&six, &[ip("10.0.0.1"), ip("fd00::1")])),
            [ip("fd00::1")]
        );
        // Cut anywhere, an answer gives the records before the cut and no more.
        for cut in 0..answer.len() {
            assert!(addresses(&answer[..cut]).len() <= 1, "cut at {cut}");
        }
    }

    #[test]
    fn asks_the_server() {
        let (address, names) =
            server(|query, _| vec![records(query, &[ip("10.0.0.1"), ip("fd00::1")])]);
        let found = resolve("repo.example", "", &config(&[address], &["lan"])).unwrap();
        assert_eq!(found, [ip("10.0.0.1"), ip("fd00::1")], "IPv4 first");
        let asked: Vec<String> = names.try_iter().collect();
        assert_eq!(
            asked,
            ["repo.example", "repo.example"],
            "A and AAAA, no search"
        );
    }

    #[test]
    fn search_domains_until_a_name_is_found() {
        let (address, names) = server(|query, _| {
            let name = asked_name(query);
            let found: &[IpAddr] = if name == "repo.home.arpa" {
                &[ip("10.0.0.9")]
            } else {
                &[]
            };
            let mut answer = records(query, found);
            if name == "repo.lan" {
                answer[3] = 0x83; // NXDOMAIN
            }
            vec![answer]
        });
        let found = resolve("repo", "", &config(&[address], &["lan", "home.arpa"])).unwrap();
        assert_eq!(found, [ip("10.0.0.9")]);
        let asked: Vec<String> = names.try_iter().collect();
        assert_eq!(
            asked,
            ["repo.lan", "repo.lan", "repo.home.arpa", "repo.home.arpa"]
        );
        let error = resolve("nowhere.example", "", &config(&[address], &[])).unwrap_err();
        assert_eq!(error, "no such name");
    }

    #[test]
    fn truncated_answers_come_over_tcp() {
        let (address, names) = server(|query, tcp| {
            let mut answer = records(query, &[ip("10.0.0.3")]);
            if !tcp {
                answer.truncate(question_end(query).unwrap());
                answer[2] |= 0x02;
                answer[6..12].fill(0);
            }
            vec![answer]
        });
        let found = resolve("repo.example", "", &config(&[address], &[])).unwrap();
        assert_eq!(found, [ip("10.0.0.3")]);
        assert!(names.try_iter().any(|name| name == "tcp repo.example"));
    }

    #[test]
    fn forged_failed_and_silent_servers() {
        // A forged reply (another id) and one for another name come first: both skipped.
        let (forging, _) = server(|query, _| {
            let mut forged = records(query, &[ip("6.6.6.6")]);
            forged[0] ^= 0xff;
            let other = records(
                &question(
                    u16::from_be_bytes([query[0], query[1]]),
                    "evil.example",
                    TYPE_A,
                ),
                &[ip("6.6.6.6")],
            );
            vec![forged, other, records(query, &[ip("10.0.0.4")])]
        });
        let found = resolve("repo.example", "", &config(&[forging], &[])).unwrap();
        assert_eq!(found, [ip("10.0.0.4")]);
        // SERVFAIL from the first server: the second is asked.
        let (failing, _) =
            server(|query, _| vec![answer_to(&query[..question_end(query).unwrap()], 2, 0)]);
        let (good, _) = server(|query, _| vec![records(query, &[ip("10.0.0.5")])]);
        let found = resolve("repo.example", "", &config(&[failing, good], &[])).unwrap();
        assert_eq!(found, [ip("10.0.0.5")]);
        let error = resolve("repo.example", "", &config(&[failing], &[])).unwrap_err();
        assert_eq!(error, "the DNS servers (127.0.0.1) failed to answer");
        // Silence: the whole timeout, then one line.
        let (silent, names) = server(|_, _| Vec::new());
        let started = Instant::now();
        let error = resolve("repo.example", "", &config(&[silent], &[])).unwrap_err();
        assert_eq!(error, "no answer from the DNS servers (127.0.0.1)");
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert_eq!(names.try_iter().count(), 4, "A and AAAA, two attempts");
    }

    /// Broken replies: nothing panics, and a reply for another question is never taken.
    #[test]
    fn hostile_replies() {
        let mut random = amber_core::random::Random::new(53);
        let message = query("repo.amber.test");
        let good = records(&message, &[ip("10.0.0.1"), ip("10.0.0.2")]);
        for round in 0..20_000 {
            let mut bytes = match random.below(3) {
                0 => good.clone(),
                1 => answer_to(&message, random.below(16) as u8, random.index(64)),
                _ => {
                    let length = random.index(64);
                    random.bytes(length)
                }
            };
            random.damage(&mut bytes);
            if !matches!(judge(&message, &bytes), Verdict::Ignore) {
                assert!(
                    bytes[12..message.len()].eq_ignore_ascii_case(&message[12..]),
                    "round {round}: a reply for another question taken"
                );
            }
            assert!(addresses(&bytes).len() <= 64, "round {round}");
            let _ = judge(&bytes, &message);
        }
    }
}
