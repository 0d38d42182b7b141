//! A small static HTTP/1.1 server on 127.0.0.1 for the guest's package repository.
//!
//! The guest reaches it through qemu's `guestfwd=...-cmd:` (see [`crate::proxy`]): one
//! proxy process, and so one connection here, per guest connection. The server answers
//! requests on a connection one after another until the peer closes it or asks for
//! `Connection: close`. Only GET and HEAD of regular files under the root are served.
//!
//! For the end-to-end tests the server keeps a log of what it sent ([`Server::requests`])
//! and can send chosen files slowly ([`Server::set_trickle`]), so a test can see a
//! download in progress and cut the guest's power in the middle of it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A running server; it stops when xtask exits.
pub struct Server {
    pub port: u16,
    state: Arc<State>,
}

/// One request the server answered (or is answering).
#[derive(Debug, Clone)]
pub struct Request {
    /// The request's path, such as `/x86_64/index`.
    pub path: String,
    pub status: u16,
    /// The body's length, and how much of it was written so far.
    pub length: u64,
    pub sent: u64,
    pub finished: bool,
}

/// Send the files at these paths at no more than this rate.
#[derive(Debug, Clone)]
pub struct Trickle {
    pub paths: Vec<String>,
    pub bytes_per_second: u64,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    trickle: Mutex<Option<Trickle>>,
    /// Bodies being written right now, and the most at once since the last look.
    sending: AtomicUsize,
    most_sending: AtomicUsize,
}

/// A poisoned lock only means a connection thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Server {
    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests).clone()
    }

    /// Send the given paths slowly from now on (None: at full speed).
    pub fn set_trickle(&self, trickle: Option<Trickle>) {
        *lock(&self.state.trickle) = trickle;
    }

    /// The most responses that were being sent at once since the last call.
    pub fn take_most_at_once(&self) -> usize {
        self.state
            .most_sending
            .swap(self.state.sending.load(Ordering::SeqCst), Ordering::SeqCst)
    }
}

/// Serve `root` on 127.0.0.1:`port` (0: any free port) from background threads.
/// Returns None when the port is taken, meaning another server is already there.
pub fn start(root: PathBuf, port: u16) -> Result<Option<Server>, String> {
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => return Ok(None),
        Err(error) => return Err(format!("cannot listen on 127.0.0.1:{port}: {error}")),
    };
    let port = listener
        .local_addr()
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?
        .port();
    let state = Arc::new(State::default());
    let shared = state.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            let state = shared.clone();
            std::thread::spawn(move || {
                // A broken connection only ends that connection.
                let _ = serve_connection(stream, &root, &state);
            });
        }
    });
    Ok(Some(Server { port, state }))
}

fn serve_connection(stream: TcpStream, root: &Path, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let request_line = request_line.trim_end().to_owned();
        if request_line.is_empty() {
            continue;
        }
        let mut close = false;
        let mut has_body = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().to_ascii_lowercase();
                if name == "connection" && value == "close" {
                    close = true;
                }
                if (name == "content-length" && value != "0") || name == "transfer-encoding" {
                    has_body = true;
                }
            }
        }
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if has_body || !(method == "GET" || method == "HEAD") {
            respond(&mut writer, 405, "Method Not Allowed", b"", true)?;
            return Ok(());
        }
        let path = target.split(['?', '#']).next().unwrap_or("").to_owned();
        let file = resolve(root, &path).and_then(|path| std::fs::read(path).ok());
        match file {
            Some(bytes) if method == "HEAD" => {
                respond_with_length(&mut writer, bytes.len(), close)?;
            }
            Some(bytes) => {
                respond_with_length(&mut writer, bytes.len(), close)?;
                send_body(&mut writer, &bytes, path, state)?;
            }
            None => {
                log(state, path, 404, 0);
                respond(&mut writer, 404, "Not Found", b"not found\n", close)?
            }
        }
        if close {
            return Ok(());
        }
    }
}

/// The file a request path (without its query) names, if it stays inside the root.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.strip_prefix('/')?;
    if relative.contains('%') || relative.contains('\\') {
        return None;
    }
    let mut resolved = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    resolved.is_file().then_some(resolved)
}

/// Add a request to the log; returns its place there.
fn log(state: &State, path: String, status: u16, length: u64) -> usize {
    let mut requests = lock(&state.requests);
    requests.push(Request {
        path,
        status,
        length,
        sent: 0,
        finished: status != 200,
    });
    requests.len() - 1
}

/// The head of a 200 answer.
fn respond_with_length(writer: &mut TcpStream, length: usize, close: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    writer.write_all(head.as_bytes())?;
    writer.flush()
}

/// Write a body in pieces, logging the progress, at the trickle rate when its path is
/// one of the trickled ones.
fn send_body(
    writer: &mut TcpStream,
    body: &[u8],
    path: String,
    state: &State,
) -> std::io::Result<()> {
    let rate = lock(&state.trickle)
        .as_ref()
        .filter(|trickle| trickle.paths.contains(&path))
        .map(|trickle| trickle.bytes_per_second.max(1));
    let entry = log(state, path, 200, body.len() as u64);
    let now_sending = state.sending.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_sending.fetch_max(now_sending, Ordering::SeqCst);
    let started = Instant::now();
    let piece = if rate.is_some() { 16 << 10 } else { 256 << 10 };
    let mut result = Ok(());
    let mut sent = 0u64;
    for chunk in body.chunks(piece) {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        }
        result = writer.write_all(chunk).and_then(|()| writer.flush());
        if result.is_err() {
            break;
        }
        sent += chunk.len() as u64;
        lock(&state.requests)[entry].sent = sent;
    }
    lock(&state.requests)[entry].finished = true;
    state.sending.fetch_sub(1, Ordering::SeqCst);
    result
}

fn respond(
    writer: &mut TcpStream,
    code: u16,
    reason: &str,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn serves_files_over_one_kept_connection() {
        let root = std::env::temp_dir().join(format!("xtask-serve-{}", std::process::id()));
        std::fs::create_dir_all(root.join("x86_64")).unwrap();
        std::fs::write(root.join("x86_64/index"), b"amber-index 1\n").unwrap();
        let server = start(root.clone(), 0).unwrap().unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .write_all(b"GET /x86_64/index HTTP/1.1\r\nHost: a\r\n\r\nGET /../etc/passwd HTTP/1.1\r\n\r\nGET /x86_64/index HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
        assert_eq!(answer.matches("HTTP/1.1 404").count(), 1, "{answer}");
        assert_eq!(answer.matches("amber-index 1\n").count(), 2, "{answer}");
        let log: Vec<(String, u16, u64)> = server
            .requests()
            .into_iter()
            .map(|request| (request.path, request.status, request.sent))
            .collect();
        assert_eq!(
            log,
            [
                ("/x86_64/index".to_owned(), 200, 14),
                ("/../etc/passwd".to_owned(), 404, 0),
                ("/x86_64/index".to_owned(), 200, 14),
            ]
        );
    }

    #[test]
    fn trickles_the_chosen_paths() {
        let root = std::env::temp_dir().join(format!("xtask-trickle-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("slow"), vec![7u8; 64 << 10]).unwrap();
        std::fs::write(root.join("fast"), vec![7u8; 64 << 10]).unwrap();
        let server = start(root.clone(), 0).unwrap().unwrap();
        server.set_trickle(Some(Trickle {
            paths: vec!["/slow".to_owned()],
            bytes_per_second: 256 << 10,
        }));
        let fetch = |path: &str| {
            let started = Instant::now();
            let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).unwrap();
            assert!(answer.ends_with(&[7u8; 1000]));
            started.elapsed()
        };
        // 48 KiB are due after the last piece starts: at least 0.19 s at 256 KiB/s.
        assert!(fetch("/slow") >= Duration::from_millis(180));
        assert!(fetch("/fast") < Duration::from_millis(150));
        std::fs::remove_dir_all(&root).unwrap();
        assert!(server
            .requests()
            .iter()
            .all(|r| r.finished && r.sent == 64 << 10));
        assert_eq!(server.take_most_at_once(), 1);
    }
}
