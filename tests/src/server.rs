//! A real HTTP/1.1 server on 127.0.0.1 for the tests: it serves a directory, and can be
//! told to misbehave on chosen paths in every way SECURITY-TESTS.md lists (flipped
//! bytes, long or endless bodies, trickling, hostile redirects, errors).
//!
//! Every connection is bounded in time ([`MAX_CONNECTION`]), so a misbehaving handler
//! stops by itself even if a client never hangs up.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any one connection is served.
pub const MAX_CONNECTION: Duration = Duration::from_secs(30);

/// How the server answers one path.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// An HTTP status with an empty body.
    Status(u16),
    /// These bytes instead of the file, with a correct Content-Length.
    Body(Vec<u8>),
    /// The file with one byte XOR-ed at this offset (same size).
    FlipByte(u64),
    /// The file followed by `extra` more bytes, announced in Content-Length.
    Longer(usize),
    /// The file followed by zeros forever, with no Content-Length.
    Endless,
    /// The file, one byte every `interval`.
    Trickle(Duration),
    /// A 302 with exactly this Location value (raw: may hold CR/LF).
    Redirect(String),
    /// The file sent with chunked transfer encoding.
    Chunked,
    /// These raw bytes as the whole response.
    Raw(Vec<u8>),
}

struct Shared {
    root: PathBuf,
    rules: Mutex<HashMap<String, Behavior>>,
    log: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// A running server; stopped when dropped.
pub struct Server {
    address: SocketAddr,
    shared: Arc<Shared>,
}

impl Server {
    /// Serve `root` on a free port of 127.0.0.1.
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            rules: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || {
            while !accept_shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = Arc::clone(&accept_shared);
                        thread::spawn(move || serve(stream, &shared));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { address, shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Answer `path` (e.g. `/x86_64/index`) this way from now on.
    pub fn set(&self, path: &str, behavior: Behavior) {
        self.shared
            .rules
            .lock()
            .unwrap()
            .insert(path.to_owned(), behavior);
    }

    /// Serve every path normally again.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// The request paths seen so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

/// A URL on 127.0.0.1 where nothing listens: a mirror that is down.
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{address}")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let started = Instant::now();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    shared.log.lock().unwrap().push(path.clone());
    let rule = shared.rules.lock().unwrap().get(&path).cloned();
    let file = || std::fs::read(shared.root.join(path.trim_start_matches('/')));
    let mut stream = stream;
    let result = match rule {
        None => match file() {
            Ok(bytes) => respond(&mut stream, 200, &bytes, Some(bytes.len())),
            Err(_) => respond(&mut stream, 404, b"", Some(0)),
        },
        Some(Behavior::Status(status)) => respond(&mut stream, status, b"", Some(0)),
        Some(Behavior::Body(bytes)) => respond(&mut stream, 200, &bytes, Some(bytes.len())),
        Some(Behavior::FlipByte(offset)) => match file() {
            Ok(mut bytes) => {
                if let Some(byte) = bytes.get_mut(offset as usize) {
                    *byte ^= 0x01;
                }
                respond(&mut stream, 200, &bytes, Some(bytes.len()))
            }
            Err(_) => respond(&mut stream, 404, b"", Some(0)),
        },
        Some(Behavior::Longer(extra)) => match file() {
            Ok(mut bytes) => {
                bytes.extend(std::iter::repeat_n(0x55, extra));
                respond(&mut stream, 200, &bytes, Some(bytes.len()))
            }
            Err(_) => respond(&mut stream, 404, b"", Some(0)),
        },
        Some(Behavior::Endless) => {
            let bytes = file().unwrap_or_default();
            let mut result = respond(&mut stream, 200, &bytes, None);
            let zeros = [0u8; 16 * 1024];
            while result.is_ok() && started.elapsed() < MAX_CONNECTION {
                result = stream.write_all(&zeros);
            }
            result
        }
        Some(Behavior::Trickle(interval)) => {
            let bytes = file().unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            let mut result = stream.write_all(head.as_bytes());
            for byte in &bytes {
                if result.is_err() || started.elapsed() > MAX_CONNECTION {
                    break;
                }
                result = stream.write_all(&[*byte]);
                thread::sleep(interval);
            }
            result
        }
        Some(Behavior::Redirect(location)) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())
        }
        Some(Behavior::Chunked) => match file() {
            Ok(bytes) => {
                let mut out =
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        .to_vec();
                for chunk in bytes.chunks(1000) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                stream.write_all(&out)
            }
            Err(_) => respond(&mut stream, 404, b"", Some(0)),
        },
        Some(Behavior::Raw(bytes)) => stream.write_all(&bytes),
    };
    let _ = result;
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    body: &[u8],
    length: Option<usize>,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}
