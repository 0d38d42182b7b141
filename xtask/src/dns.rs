//! The guests' DNS server: DNS over TCP (RFC 7766) on 127.0.0.1, which qemu's
//! `guestfwd=tcp:10.0.2.53:53-cmd:xtask proxy ...` carries each guest connection to.
//!
//! qemu's user network offers the guest DNS at 10.0.2.3, but with `restrict=on` it drops
//! every UDP datagram from the guest except DHCP's and TFTP's, and TCP except to the
//! guestfwd addresses (which may not be 10.0.2.3 itself): that DNS never answers (the
//! end-to-end test shows it). So the boards name `tcp:10.0.2.53` as their DNS server, the
//! device's forwarder asks it over TCP, and this server answers for [`REPO_NAME`]: A
//! [`REPO_ADDRESS`], no AAAA; any other name does not exist (NXDOMAIN).
//!
//! One server per xtask process, started the first time a qemu command line needs it
//! ([`port`]); it keeps the names it was asked for ([`asked`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};

/// The repository's name in the boards' `repos`.
pub const REPO_NAME: &str = "repo.amber.test";
/// Where the guest reaches the repository: qemu's guestfwd to the repository server.
pub const REPO_ADDRESS: [u8; 4] = [10, 0, 2, 100];
/// The guest address of this server (qemu's guestfwd), as the boards' `dns` names it.
pub const GUEST_ADDRESS: &str = "10.0.2.53:53";

static ASKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The port on 127.0.0.1 this process's DNS server listens on, started on first use.
pub fn port() -> Result<u16, String> {
    static PORT: OnceLock<Result<u16, String>> = OnceLock::new();
    PORT.get_or_init(|| {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("dns server: bind: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("dns server: {e}"))?
            .port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve(stream));
            }
        });
        Ok(port)
    })
    .clone()
}

/// Every name asked for so far, in order (lowercase, without the final dot).
pub fn asked() -> Vec<String> {
    ASKED.lock().map(|names| names.clone()).unwrap_or_default()
}

/// Answer the queries of one connection until the guest closes it.
fn serve(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    loop {
        let mut length = [0u8; 2];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut query = vec![0u8; u16::from_be_bytes(length) as usize];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        let Some(answer) = answer(&query) else {
            return;
        };
        let mut message = (answer.len() as u16).to_be_bytes().to_vec();
        message.extend_from_slice(&answer);
        if stream.write_all(&message).is_err() {
            return;
        }
    }
}

/// The name and type of a query's one question, and where the question ends.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let length = *query.get(at)? as usize;
        at += 1;
        if length == 0 {
            break;
        }
        if length > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + length)?).to_lowercase());
        at += length;
    }
    let kind = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    query.get(at + 3)?;
    Some((labels.join("."), kind, at + 4))
}

/// The answer to a query; None for what is not a query with one question.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let (name, kind, end) = question(query)?;
    if let Ok(mut asked) = ASKED.lock() {
        asked.push(name.clone());
    }
    let mut answer = query[..end].to_vec();
    // QR, the query's RD, AA; counts: one question, no authority, no additional.
    answer[2] = 0x84 | (query[2] & 0x01);
    answer[3] = 0;
    answer[6..12].fill(0);
    if name != REPO_NAME {
        answer[3] = 3; // NXDOMAIN
        return Some(answer);
    }
    if kind == 1 {
        answer[7] = 1;
        // The name by pointer to the question, type A, class IN, TTL 60, 4 bytes.
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        answer.extend_from_slice(&REPO_ADDRESS);
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, kind: u16) -> Vec<u8> {
        let mut message = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            message.push(label.len() as u8);
            message.extend_from_slice(label.as_bytes());
        }
        message.push(0);
        message.extend_from_slice(&kind.to_be_bytes());
        message.extend_from_slice(&[0, 1]);
        message
    }

    #[test]
    fn answers_for_the_repository_only() {
        let a = answer(&query("Repo.Amber.Test", 1)).unwrap();
        assert_eq!(a[..2], [0xbe, 0xef]);
        assert_eq!(a[3] & 0x0f, 0);
        assert_eq!(a[6..8], [0, 1], "one answer");
        assert_eq!(a[a.len() - 4..], REPO_ADDRESS);
        let aaaa = answer(&query(REPO_NAME, 28)).unwrap();
        assert_eq!((aaaa[3] & 0x0f, aaaa[7]), (0, 0), "NOERROR, no address");
        let other = answer(&query("nowhere.amber.test", 1)).unwrap();
        assert_eq!(other[3] & 0x0f, 3, "NXDOMAIN");
        assert!(answer(&[0; 5]).is_none());
        assert!(asked().contains(&"repo.amber.test".to_owned()));
    }

    /// Over TCP as the guest's forwarder asks: two queries on one connection.
    #[test]
    fn serves_tcp() {
        let port = port().unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for name in [REPO_NAME, "x.test"] {
            let message = query(name, 1);
            stream
                .write_all(&(message.len() as u16).to_be_bytes())
                .unwrap();
            stream.write_all(&message).unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).unwrap();
            let mut reply = vec![0u8; u16::from_be_bytes(length) as usize];
            stream.read_exact(&mut reply).unwrap();
            assert_eq!(reply[3] & 0x0f, if name == REPO_NAME { 0 } else { 3 });
        }
    }
}
