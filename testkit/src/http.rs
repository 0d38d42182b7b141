//! The one HTTP/1.1 file server on 127.0.0.1 that the integration tests, the benchmarks
//! and xtask share, so a fix to how files are served reaches every caller at once.
//!
//! It serves the regular files under a root directory, GET and HEAD only, and a request
//! path never leaves the root (no `..`, no `%` escapes, no backslashes). A connection
//! answers requests one after another until the client asks for `Connection: close`
//! (or speaks HTTP/1.0); every client in the workspace does, so each connection
//! carries one request. Bodies go out with `std::io::copy`, which uses sendfile, so a
//! benchmark measures its client rather than the server.
//!
//! What the callers need beyond that:
//!
//! - a log of every request with the progress of its body ([`Server::requests`]), so an
//!   end-to-end test can cut a guest's power in the middle of a download;
//! - chosen files sent at a limited rate ([`Server::set_trickle`]), and the most bodies
//!   in flight at once ([`Server::take_most_at_once`]);
//! - per-path misbehaviour ([`Behavior`]) in every way SECURITY-TESTS.md lists: flipped
//!   bytes, long or endless bodies, trickling, hostile redirects, errors, raw bytes;
//! - a fixed port, with a port already taken reported rather than failed
//!   ([`Server::bind`]), or any free one ([`Server::start`]).
//!
//! A connection waits at most [`IO_TIMEOUT`] for a read or a write, and a misbehaving
//! answer stops after [`MAX_CONNECTION`], so no connection outlives a client that never
//! hangs up. Dropping the [`Server`] closes its port; answers in progress finish.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest a misbehaving answer ([`Behavior::Endless`], [`Behavior::Trickle`]) goes
/// on, counted from the connection's start.
pub const MAX_CONNECTION: Duration = Duration::from_secs(30);

/// The longest one read or write on a connection waits before the connection is closed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a file goes out in one piece, at full speed and when trickled.
const PIECE: u64 = 256 << 10;
const TRICKLE_PIECE: u64 = 16 << 10;

/// How the server answers one path instead of serving its file. Each of these answers
/// closes the connection.
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

/// One request the server answered (or is answering), as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request's path without its query, such as `/x86_64/index`.
    pub path: String,
    /// The status answered; 0 for a [`Behavior::Raw`] answer.
    pub status: u16,
    /// The body's length (0 when unknown, as for an endless body), and how much of it
    /// was written so far.
    pub length: u64,
    pub sent: u64,
    /// Whether the answer is over, written whole or cut off.
    pub finished: bool,
}

/// Send the files at these paths at no more than this rate.
#[derive(Debug, Clone)]
pub struct Trickle {
    pub paths: Vec<String>,
    pub bytes_per_second: u64,
}

/// What the connections of one server share.
struct Shared {
    root: PathBuf,
    rules: Mutex<HashMap<String, Behavior>>,
    trickle: Mutex<Option<Trickle>>,
    log: Mutex<Vec<Request>>,
    /// Bodies being written right now, and the most at once since the last look.
    sending: AtomicUsize,
    most_sending: AtomicUsize,
    stop: AtomicBool,
}

/// A running server; its port closes when it is dropped (see [`Server::detach`]).
pub struct Server {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// A poisoned lock only means a connection thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Server {
    /// Serve `root` on a free port of 127.0.0.1. Panics when it cannot: for tests.
    pub fn start(root: &Path) -> Server {
        match Server::bind(root, 0) {
            Ok(Some(server)) => server,
            Ok(None) => panic!("127.0.0.1: no free port"),
            Err(error) => panic!("{error}"),
        }
    }

    /// Serve `root` on 127.0.0.1:`port` (0: any free port) from background threads.
    /// `Ok(None)` when the port is taken, meaning another server is already there.
    pub fn bind(root: &Path, port: u16) -> Result<Option<Server>, String> {
        let listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => listener,
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => return Ok(None),
            Err(error) => return Err(format!("cannot listen on 127.0.0.1:{port}: {error}")),
        };
        let address = listener
            .local_addr()
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            rules: Mutex::new(HashMap::new()),
            trickle: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            sending: AtomicUsize::new(0),
            most_sending: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("http {address}"))
            .spawn(move || accept_all(&listener, &accepting))
            .map_err(|e| format!("cannot start the server on {address}: {e}"))?;
        Ok(Some(Server {
            address,
            shared,
            accept: Some(accept),
        }))
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Answer `path` (e.g. `/x86_64/index`) this way from now on.
    pub fn set(&self, path: &str, behavior: Behavior) {
        lock(&self.shared.rules).insert(path.to_owned(), behavior);
    }

    /// Serve every path normally again.
    pub fn clear(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Send the given paths slowly from now on (None: at full speed).
    pub fn set_trickle(&self, trickle: Option<Trickle>) {
        *lock(&self.shared.trickle) = trickle;
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }

    /// The paths of every request so far, in the order they arrived.
    pub fn paths(&self) -> Vec<String> {
        let log = lock(&self.shared.log);
        log.iter().map(|request| request.path.clone()).collect()
    }

    /// The most bodies that were being sent at once since the last call.
    pub fn take_most_at_once(&self) -> usize {
        let now = self.shared.sending.load(Ordering::SeqCst);
        self.shared.most_sending.swap(now, Ordering::SeqCst)
    }

    /// Keep serving after this handle is gone, until the process exits.
    pub fn detach(self) {
        std::mem::forget(self);
    }
}

impl Drop for Server {
    /// Stop accepting: wake the accept loop with one last connection and wait for it to
    /// close the port.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let woken = TcpStream::connect(self.address).is_ok();
        if let Some(accept) = self.accept.take().filter(|_| woken) {
            let _ = accept.join();
        }
    }
}

/// A URL on 127.0.0.1 where nothing listens: a mirror that is down. Panics when no port
/// is free: for tests.
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{address}")
}

/// Accept connections, each served on a thread of its own, until the server stops.
fn accept_all(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors, say: let connections finish before the next accept.
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        let shared = Arc::clone(shared);
        // A broken connection (or one no thread could be made for) only ends itself.
        let _ = thread::Builder::new().spawn(move || {
            let _ = serve_connection(stream, &shared);
        });
    }
}

/// What the server reads of one request.
struct Incoming {
    method: String,
    path: String,
    /// The connection ends after this answer.
    close: bool,
    has_body: bool,
}

/// Answer the requests of one connection until it is to close.
fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let started = Instant::now();
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader)? {
        if !answer(&mut writer, &request, shared, started)? {
            break;
        }
    }
    writer.shutdown(Shutdown::Both)
}

/// The next request's line and headers; None when the client hung up first.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Incoming>> {
    let mut line = String::new();
    while line.trim().is_empty() {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let mut request = Incoming {
        method,
        path: target
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned(),
        close: parts.next() != Some("HTTP/1.1"),
        has_body: false,
    };
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            return Ok(Some(request));
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "connection" {
            let mut options = value.split(',').map(str::trim);
            request.close |= options.any(|option| option.eq_ignore_ascii_case("close"));
        }
        request.has_body |=
            (name == "content-length" && value != "0") || name == "transfer-encoding";
    }
}

/// Answer one request; returns whether the connection stays open for another.
fn answer(
    writer: &mut TcpStream,
    request: &Incoming,
    shared: &Shared,
    started: Instant,
) -> std::io::Result<bool> {
    let path = request.path.as_str();
    if request.has_body || !matches!(request.method.as_str(), "GET" | "HEAD") {
        whole(writer, shared, path, 405, &[], true)?;
        return Ok(false);
    }
    let rule = lock(&shared.rules).get(path).cloned();
    match rule {
        Some(behavior) => misbehave(writer, shared, path, behavior, started).map(|()| false),
        None => serve_file(writer, shared, request).map(|()| !request.close),
    }
}

/// The regular file a request path names, if it stays inside the root.
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

/// Serve the file at the request's path, or a 404.
fn serve_file(writer: &mut TcpStream, shared: &Shared, request: &Incoming) -> std::io::Result<()> {
    let path = request.path.as_str();
    let Some(file) = resolve(&shared.root, path).and_then(|path| File::open(path).ok()) else {
        return whole(writer, shared, path, 404, &[], request.close);
    };
    let length = file.metadata()?.len();
    let head = head(200, Some(length), "", request.close);
    if request.method == "HEAD" {
        log(shared, path, 200, 0);
        return writer.write_all(head.as_bytes());
    }
    let rate = lock(&shared.trickle)
        .as_ref()
        .filter(|trickle| trickle.paths.iter().any(|p| p == path))
        .map(|trickle| trickle.bytes_per_second.max(1));
    let body = Body::start(shared, path, 200, length);
    writer.write_all(head.as_bytes())?;
    body.copy(writer, &file, length, rate)
}

/// A whole answer: its head, with Content-Length, and `body`.
fn whole(
    writer: &mut TcpStream,
    shared: &Shared,
    path: &str,
    status: u16,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let head = head(status, Some(body.len() as u64), "", close);
    if body.is_empty() {
        log(shared, path, status, 0);
        return writer.write_all(head.as_bytes());
    }
    let mut sending = Body::start(shared, path, status, body.len() as u64);
    writer.write_all(head.as_bytes())?;
    sending.write(writer, body)
}

/// Answer `path` as `behavior` says, the file (if any) being what it alters.
fn misbehave(
    writer: &mut TcpStream,
    shared: &Shared,
    path: &str,
    behavior: Behavior,
    started: Instant,
) -> std::io::Result<()> {
    let file = || resolve(&shared.root, path).and_then(|path| std::fs::read(path).ok());
    match behavior {
        Behavior::Status(status) => whole(writer, shared, path, status, &[], true),
        Behavior::Body(bytes) => altered(writer, shared, path, Some(bytes)),
        Behavior::FlipByte(offset) => altered(
            writer,
            shared,
            path,
            file().map(|bytes| flip(bytes, offset)),
        ),
        Behavior::Longer(extra) => altered(
            writer,
            shared,
            path,
            file().map(|bytes| longer(bytes, extra)),
        ),
        Behavior::Endless => endless(writer, shared, path, &file().unwrap_or_default(), started),
        Behavior::Trickle(interval) => {
            let bytes = file().unwrap_or_default();
            trickle(writer, shared, path, &bytes, interval, started)
        }
        Behavior::Redirect(location) => {
            let location = format!("Location: {location}\r\n");
            log(shared, path, 302, 0);
            writer.write_all(head(302, Some(0), &location, true).as_bytes())
        }
        Behavior::Chunked => chunked(writer, shared, path, file()),
        Behavior::Raw(bytes) => {
            Body::start(shared, path, 0, bytes.len() as u64).write(writer, &bytes)
        }
    }
}

/// `bytes` whole, closing the connection, or a 404 when there are none.
fn altered(
    writer: &mut TcpStream,
    shared: &Shared,
    path: &str,
    bytes: Option<Vec<u8>>,
) -> std::io::Result<()> {
    match bytes {
        Some(bytes) => whole(writer, shared, path, 200, &bytes, true),
        None => whole(writer, shared, path, 404, &[], true),
    }
}

/// `bytes` followed by `extra` bytes 0x55.
fn longer(mut bytes: Vec<u8>, extra: usize) -> Vec<u8> {
    bytes.extend(std::iter::repeat_n(0x55, extra));
    bytes
}

/// `bytes` with the byte at `offset` XOR-ed with 1 (none when it is past the end).
fn flip(mut bytes: Vec<u8>, offset: u64) -> Vec<u8> {
    if let Some(byte) = usize::try_from(offset)
        .ok()
        .and_then(|at| bytes.get_mut(at))
    {
        *byte ^= 0x01;
    }
    bytes
}

/// `bytes`, then zeros until the client stops reading or [`MAX_CONNECTION`] is up.
fn endless(
    writer: &mut TcpStream,
    shared: &Shared,
    path: &str,
    bytes: &[u8],
    started: Instant,
) -> std::io::Result<()> {
    let mut body = Body::start(shared, path, 200, 0);
    writer.write_all(head(200, None, "", true).as_bytes())?;
    body.write(writer, bytes)?;
    let zeros = [0u8; 16 * 1024];
    while started.elapsed() < MAX_CONNECTION {
        body.write(writer, &zeros)?;
    }
    Ok(())
}

/// `bytes` one at a time, `interval` apart, for at most [`MAX_CONNECTION`].
fn trickle(
    writer: &mut TcpStream,
    shared: &Shared,
    path: &str,
    bytes: &[u8],
    interval: Duration,
    started: Instant,
) -> std::io::Result<()> {
    let mut body = Body::start(shared, path, 200, bytes.len() as u64);
    writer.write_all(head(200, Some(bytes.len() as u64), "", true).as_bytes())?;
    for byte in bytes {
        if started.elapsed() > MAX_CONNECTION {
            break;
        }
        body.write(writer, &[*byte])?;
        thread::sleep(interval);
    }
    Ok(())
}

/// The file in chunks of 1000 with chunked transfer encoding, or a 404 without one.
fn chunked(
    writer: &mut TcpStream,
    shared: &Shared,
    path: &str,
    file: Option<Vec<u8>>,
) -> std::io::Result<()> {
    let Some(bytes) = file else {
        return whole(writer, shared, path, 404, &[], true);
    };
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 100 + 16);
    for chunk in bytes.chunks(1000) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    let mut body = Body::start(shared, path, 200, out.len() as u64);
    let encoding = "Transfer-Encoding: chunked\r\n";
    writer.write_all(head(200, None, encoding, true).as_bytes())?;
    body.write(writer, &out)
}

/// A response head: the status line, `fields` (whole header lines), Content-Length when
/// known and `Connection: close` when the connection ends after it.
fn head(status: u16, length: Option<u64>, fields: &str, close: bool) -> String {
    let reason = match status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n{fields}");
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head
}

/// Add an answer without a body to the log, finished.
fn log(shared: &Shared, path: &str, status: u16, length: u64) {
    lock(&shared.log).push(Request {
        path: path.to_owned(),
        status,
        length,
        sent: 0,
        finished: true,
    });
}

/// A body being written: in the log, its progress kept there, and in flight (for
/// [`Server::take_most_at_once`]) until it is dropped, written whole or cut off.
struct Body<'a> {
    shared: &'a Shared,
    entry: usize,
    sent: u64,
}

impl<'a> Body<'a> {
    fn start(shared: &'a Shared, path: &str, status: u16, length: u64) -> Body<'a> {
        let entry = {
            let mut log = lock(&shared.log);
            log.push(Request {
                path: path.to_owned(),
                status,
                length,
                sent: 0,
                finished: false,
            });
            log.len() - 1
        };
        let now_sending = shared.sending.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_sending.fetch_max(now_sending, Ordering::SeqCst);
        Body {
            shared,
            entry,
            sent: 0,
        }
    }

    /// Write `bytes` and count them sent.
    fn write(&mut self, writer: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        writer.write_all(bytes)?;
        self.advance(bytes.len() as u64);
        Ok(())
    }

    /// Copy `length` bytes of `file` in pieces, at no more than `rate` bytes a second
    /// when given.
    fn copy(
        mut self,
        writer: &mut TcpStream,
        file: &File,
        length: u64,
        rate: Option<u64>,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        let piece = if rate.is_some() { TRICKLE_PIECE } else { PIECE };
        while self.sent < length {
            if let Some(rate) = rate {
                let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
                thread::sleep(due.saturating_sub(started.elapsed()));
            }
            let copied = std::io::copy(&mut file.take(piece.min(length - self.sent)), writer)?;
            if copied == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.advance(copied);
        }
        Ok(())
    }

    fn advance(&mut self, bytes: u64) {
        self.sent += bytes;
        lock(&self.shared.log)[self.entry].sent = self.sent;
    }
}

impl Drop for Body<'_> {
    fn drop(&mut self) {
        lock(&self.shared.log)[self.entry].finished = true;
        self.shared.sending.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Root {
            let path = std::env::temp_dir().join(format!("testkit-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Root(path)
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Send `request` raw and read the whole answer, the server closing the connection.
    fn exchange(server: &Server, request: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        answer
    }

    fn get(server: &Server, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n");
        String::from_utf8_lossy(&exchange(server, &request)).into_owned()
    }

    #[test]
    fn serves_files_over_one_kept_connection() {
        let root = Root::new("kept");
        std::fs::create_dir_all(root.0.join("x86_64")).unwrap();
        std::fs::write(root.0.join("x86_64/index"), b"amber-index 1\n").unwrap();
        let server = Server::start(&root.0);
        let answer = exchange(
            &server,
            "GET /x86_64/index HTTP/1.1\r\nHost: a\r\n\r\nGET /../etc/passwd HTTP/1.1\r\n\r\n\
             HEAD /x86_64/index HTTP/1.1\r\n\r\nGET /x86_64/index HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let answer = String::from_utf8(answer).unwrap();
        assert_eq!(
            answer
                .matches("HTTP/1.1 200 OK\r\nContent-Length: 14\r\n")
                .count(),
            3,
            "{answer}"
        );
        assert_eq!(
            answer
                .matches("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n")
                .count(),
            1
        );
        assert_eq!(answer.matches("amber-index 1\n").count(), 2, "{answer}");
        assert!(
            answer.ends_with("Connection: close\r\n\r\namber-index 1\n"),
            "{answer}"
        );
        let log: Vec<(String, u16, u64)> = server
            .requests()
            .into_iter()
            .map(|request| (request.path, request.status, request.sent))
            .collect();
        let index = "/x86_64/index".to_owned();
        assert_eq!(
            log,
            [
                (index.clone(), 200, 14),
                ("/../etc/passwd".to_owned(), 404, 0),
                (index.clone(), 200, 0),
                (index, 200, 14),
            ]
        );
    }

    #[test]
    fn refuses_other_methods_and_paths_out_of_the_root() {
        let root = Root::new("refuse");
        std::fs::write(root.0.join("file"), b"x").unwrap();
        let server = Server::start(&root.0.join("."));
        let post = exchange(&server, "POST /file HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
        assert!(post.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n"));
        for path in ["/%2e%2e/file", "/a/../file", "file", "/", "/.\\file"] {
            assert!(get(&server, path).starts_with("HTTP/1.1 404 "), "{path}");
        }
        assert!(get(&server, "/./file?x=1").ends_with("\r\n\r\nx"));
    }

    #[test]
    fn trickles_the_chosen_paths() {
        let root = Root::new("trickle");
        std::fs::write(root.0.join("slow"), vec![7u8; 64 << 10]).unwrap();
        std::fs::write(root.0.join("fast"), vec![7u8; 64 << 10]).unwrap();
        let server = Server::start(&root.0);
        server.set_trickle(Some(Trickle {
            paths: vec!["/slow".to_owned()],
            bytes_per_second: 256 << 10,
        }));
        let fetch = |path: &str| {
            let started = Instant::now();
            assert!(get(&server, path).as_bytes().ends_with(&[7u8; 1000]));
            started.elapsed()
        };
        // 48 KiB are due after the last piece starts: at least 0.19 s at 256 KiB/s.
        assert!(fetch("/slow") >= Duration::from_millis(180));
        assert!(fetch("/fast") < Duration::from_millis(150));
        assert!(server
            .requests()
            .iter()
            .all(|r| r.finished && r.sent == 64 << 10));
        assert_eq!(server.take_most_at_once(), 1);
    }

    #[test]
    fn misbehaves_on_the_chosen_paths_only() {
        let root = Root::new("behave");
        std::fs::write(root.0.join("file"), b"abc").unwrap();
        let server = Server::start(&root.0);
        let close = "Connection: close\r\n\r\n";
        let cases = [
            (
                Behavior::Status(500),
                format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n{close}"),
            ),
            (
                Behavior::Body(b"xy".to_vec()),
                format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{close}xy"),
            ),
            (
                Behavior::FlipByte(1),
                format!("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n{close}acc"),
            ),
            (
                Behavior::Longer(1),
                format!("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n{close}abcU"),
            ),
            (
                Behavior::Trickle(Duration::from_millis(1)),
                format!("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n{close}abc"),
            ),
            (
                Behavior::Redirect("/x\r\nY: 1".into()),
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: /x\r\nY: 1\r\nContent-Length: 0\r\n{close}"
                ),
            ),
            (
                Behavior::Chunked,
                format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{close}3\r\nabc\r\n0\r\n\r\n"
                ),
            ),
            (
                Behavior::Raw(b"HTTP/1.1 204 \r\n\r\n".to_vec()),
                "HTTP/1.1 204 \r\n\r\n".to_owned(),
            ),
        ];
        for (behavior, expected) in cases {
            server.set("/file", behavior.clone());
            assert_eq!(get(&server, "/file"), expected, "{behavior:?}");
        }
        server.set("/other", Behavior::Status(404));
        server.clear();
        assert!(get(&server, "/file").ends_with("\r\n\r\nabc"));
        assert_eq!(server.paths().len(), 9);
    }

    #[test]
    fn an_endless_body_goes_on_until_the_client_stops_reading() {
        let root = Root::new("endless");
        let server = Server::start(&root.0);
        server.set("/endless", Behavior::Endless);
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream.write_all(b"GET /endless HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = vec![0u8; 1 << 20];
        stream.read_exact(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n\0\0"));
    }

    #[test]
    fn a_taken_port_is_reported_and_a_dropped_server_closes_its_port() {
        let root = Root::new("port");
        let server = Server::start(&root.0);
        assert!(Server::bind(&root.0, server.port()).unwrap().is_none());
        let address = server.address();
        drop(server);
        assert!(TcpStream::connect(address).is_err());
        assert!(TcpStream::connect(dead_url().trim_start_matches("http://")).is_err());
    }
}
