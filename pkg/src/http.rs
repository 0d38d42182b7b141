//! A small HTTP/1.1 GET client for indexes and images, sized for the device binary.
//!
//! ureq costs about 280 KB in a size-optimized static build, over half of the device
//! binary's budget, so plain `http://` is served by this client: one GET per
//! connection, Content-Length, chunked or close-delimited bodies, and the checks that
//! keep a hostile server from doing harm (SECURITY-TESTS items 9–11):
//! - the body is capped at the size the caller expects and reading stops there;
//! - connect and read timeouts, and a minimum transfer rate over a sliding window;
//! - redirects are followed by us, at most a few times, never in a loop, and only to
//!   `http(s)://` URLs made of printable ASCII (no CR/LF smuggling).
//!
//! Hashes are never taken from the transport: the caller hashes what it writes.
//! `https://` needs the `tls` feature (ureq with rustls), which the device build leaves out.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::error::Error;

/// Timeouts and limits for one transfer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long a single read may block.
    pub read_timeout: Duration,
    /// The least bytes per second, averaged over `rate_window`, before the transfer is
    /// abandoned as too slow (a server trickling one byte every few seconds).
    pub min_rate: u64,
    /// The window over which `min_rate` is measured.
    pub rate_window: Duration,
    /// How many redirects are followed.
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            min_rate: 1024,
            rate_window: Duration::from_secs(20),
            max_redirects: 5,
        }
    }
}

impl Limits {
    /// Limits scaled from one timeout in seconds: connect and read timeouts are that
    /// long, the rate window twice that. Used by `AMBER_FETCH_TIMEOUT` and tests.
    pub fn with_timeout(seconds: u64) -> Limits {
        let timeout = Duration::from_secs(seconds.max(1));
        Limits {
            connect_timeout: timeout,
            read_timeout: timeout,
            rate_window: timeout * 2,
            ..Limits::default()
        }
    }
}

/// The longest response head (status line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

impl Url {
    /// Parse strictly: printable ASCII only, a plain host name, IPv4 or bracketed IPv6
    /// address, an optional port, and a path.
    pub fn parse(text: &str) -> Result<Url, String> {
        if let Some(bad) = text.bytes().find(|b| !(0x21..0x7f).contains(b)) {
            return Err(format!("URL contains the byte 0x{bad:02x}"));
        }
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err("only http:// and https:// URLs are fetched".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("URLs with user information are refused".into());
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
            let port = match after {
                "" => default_port,
                _ => parse_port(after.strip_prefix(':').ok_or("bad text after ]")?)?,
            };
            (format!("[{host}]"), port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host.to_owned(), parse_port(port)?),
                None => (authority.to_owned(), default_port),
            }
        };
        let host_ok = !host.is_empty()
            && (host.starts_with('[')
                || host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
        if !host_ok {
            return Err(format!("bad host {host:?}"));
        }
        if path.contains('#') {
            return Err("URL fragments are refused".into());
        }
        Ok(Url {
            scheme,
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// Resolve a redirect target: an absolute URL, or an absolute path on this server.
    fn join(&self, location: &str) -> Result<Url, String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        if location.starts_with('/') && !location.starts_with("//") {
            return Url::parse(&format!("{}{location}", self.origin()));
        }
        Err(format!("redirect to {location:?} is refused"))
    }

    fn origin(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port {text:?}"));
    }
    text.parse().map_err(|_| format!("bad port {text:?}"))
}

/// GET `url` and hand the body to `sink` piece by piece. The body may be at most
/// `max_body` bytes: a larger Content-Length is refused before reading, and a body that
/// keeps coming is cut off at the limit with an error. Returns the body length.
pub fn get(
    url: &str,
    limits: &Limits,
    max_body: u64,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut url = Url::parse(url).map_err(Error::new)?;
    let mut visited = vec![url.to_string()];
    loop {
        let response = match url.scheme {
            Scheme::Http => get_once(&url, limits, max_body, sink)?,
            Scheme::Https => return get_tls(&url, limits, max_body, sink),
        };
        match response {
            Outcome::Body(length) => return Ok(length),
            Outcome::Redirect(location) => {
                if visited.len() > limits.max_redirects {
                    return Err(Error::from_args(format_args!("{url}: too many redirects")));
                }
                let next = url
                    .join(&location)
                    .map_err(|reason| Error::from_args(format_args!("{url}: {reason}")))?;
                let shown = next.to_string();
                if visited.contains(&shown) {
                    return Err(Error::from_args(format_args!(
                        "{url}: redirect loop to {shown}"
                    )));
                }
                visited.push(shown);
                url = next;
            }
        }
    }
}

enum Outcome {
    Body(u64),
    Redirect(String),
}

fn get_once(
    url: &Url,
    limits: &Limits,
    max_body: u64,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
) -> Result<Outcome, Error> {
    let fail = |what: &dyn std::fmt::Display| Error::from_args(format_args!("{url}: {what}"));
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    let addresses = amber_base::dns::lookup(host, url.port)
        .map_err(|e| fail(&format_args!("cannot resolve {}: {e}", url.host)))?;
    let mut last_error = None;
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, limits.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some(e)) => return Err(fail(&format_args!("cannot connect: {e}"))),
        (None, None) => return Err(fail(&"host has no address")),
    };
    stream
        .set_read_timeout(Some(limits.read_timeout))
        .and_then(|()| stream.set_write_timeout(Some(limits.read_timeout)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| fail(&e))?;
    let host_header = if url.port == 80 {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: amber-pkg/{}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.path,
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail(&format_args!("cannot send request: {e}")))?;

    let mut reader = RateReader::new(stream, limits);
    let (head, leftover) = read_head(&mut reader).map_err(|e| fail(&e))?;
    let head = parse_head(&head).map_err(|e| fail(&e))?;
    match head.status {
        200 => {}
        301 | 302 | 303 | 307 | 308 => {
            let location = head
                .location
                .ok_or_else(|| fail(&format_args!("HTTP {} without Location", head.status)))?;
            return Ok(Outcome::Redirect(location));
        }
        status => return Err(fail(&format_args!("HTTP {status}"))),
    }
    if let Some(length) = head.content_length {
        if length > max_body {
            return Err(fail(&format_args!(
                "body is {length} bytes, more than the {max_body} expected"
            )));
        }
    }
    let mut body = Body {
        reader,
        pending: leftover,
        max_body,
        seen: 0,
    };
    let length = if head.chunked {
        body.read_chunked(sink)
    } else {
        body.read_plain(head.content_length, sink)
    }
    .map_err(|e| e.context(url))?;
    Ok(Outcome::Body(length))
}

/// A socket reader that enforces the minimum transfer rate.
struct RateReader {
    stream: TcpStream,
    min_rate: u64,
    window: Duration,
    window_start: Instant,
    window_bytes: u64,
}

impl RateReader {
    fn new(stream: TcpStream, limits: &Limits) -> RateReader {
        RateReader {
            stream,
            min_rate: limits.min_rate,
            window: limits.rate_window,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let n = match self.stream.read(buf) {
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err("timed out waiting for data".into())
            }
            Err(e) => return Err(format!("read failed: {e}")),
        };
        self.window_bytes += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.window {
            let wanted = self.min_rate.saturating_mul(elapsed.as_secs().max(1));
            if self.window_bytes < wanted {
                return Err(format!(
                    "too slow: {} bytes in {} s (minimum {} bytes/s)",
                    self.window_bytes,
                    elapsed.as_secs(),
                    self.min_rate
                ));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

/// Read up to the blank line ending the head; returns the head and any body bytes read.
fn read_head(reader: &mut RateReader) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            let body = buffer.split_off(end + 4);
            return Ok((buffer, body));
        }
        if buffer.len() > MAX_HEAD {
            return Err("response head too long".into());
        }
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Err("connection closed before the response head ended".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    location: Option<String>,
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("not an HTTP/1 response: {status_line:?}"));
    }
    let status = parts
        .next()
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut result = Head {
        status,
        content_length: None,
        chunked: false,
        location: None,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad Content-Length {value:?}"));
            }
            let length = value.parse().map_err(|_| "Content-Length too large")?;
            if result.content_length.is_some_and(|l| l != length) {
                return Err("conflicting Content-Length headers".into());
            }
            result.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                result.chunked = true;
            } else if !value.eq_ignore_ascii_case("identity") {
                return Err(format!("unsupported Transfer-Encoding {value:?}"));
            }
        } else if name.eq_ignore_ascii_case("location") {
            result.location = Some(value.to_owned());
        }
    }
    if result.chunked {
        // A length next to chunked encoding is a smuggling attempt; the chunks rule.
        result.content_length = None;
    }
    Ok(result)
}

struct Body {
    reader: RateReader,
    pending: Vec<u8>,
    max_body: u64,
    seen: u64,
}

impl Body {
    /// Bytes that arrived with the head first, then the socket.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        self.reader.read(buf).map_err(Error::new)
    }

    fn deliver(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.seen += bytes.len() as u64;
        if self.seen > self.max_body {
            return Err(Error::from_args(format_args!(
                "body is longer than the {} bytes expected",
                self.max_body
            )));
        }
        sink(bytes)
    }

    fn read_plain(
        &mut self,
        length: Option<u64>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let want = match length {
                Some(length) => {
                    let left = length - self.seen;
                    if left == 0 {
                        return Ok(self.seen);
                    }
                    buffer
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX))
                }
                None => buffer.len(),
            };
            let n = self.fill(&mut buffer[..want])?;
            if n == 0 {
                return match length {
                    Some(length) => Err(Error::from_args(format_args!(
                        "connection closed after {} of {length} bytes",
                        self.seen
                    ))),
                    None => Ok(self.seen),
                };
            }
            self.deliver(&buffer[..n], sink)?;
        }
    }

    fn read_line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            if self.fill(&mut byte)? == 0 {
                return Err(Error::new("connection closed inside a chunk header"));
            }
            if byte[0] == b'\n' {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return String::from_utf8(line).map_err(|_| Error::new("bad chunk header"));
            }
            line.push(byte[0]);
            if line.len() > 1024 {
                return Err(Error::new("chunk header too long"));
            }
        }
    }

    fn read_chunked(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            if size_text.is_empty()
                || size_text.len() > 15
                || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(Error::from_args(format_args!(
                    "bad chunk size {size_text:?}"
                )));
            }
            let mut left = u64::from_str_radix(size_text, 16)
                .map_err(|_| Error::from_args(format_args!("bad chunk size {size_text:?}")))?;
            if left == 0 {
                // Trailers, then the blank line.
                while !self.read_line()?.is_empty() {}
                return Ok(self.seen);
            }
            if self.seen.saturating_add(left) > self.max_body {
                return Err(Error::from_args(format_args!(
                    "body is longer than the {} bytes expected",
                    self.max_body
                )));
            }
            while left > 0 {
                let want = buffer
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.fill(&mut buffer[..want])?;
                if n == 0 {
                    return Err(Error::new("connection closed inside a chunk"));
                }
                self.deliver(&buffer[..n], sink)?;
                left -= n as u64;
            }
            if !self.read_line()?.is_empty() {
                return Err(Error::new("chunk not followed by CRLF"));
            }
        }
    }
}

#[cfg(feature = "tls")]
fn get_tls(
    url: &Url,
    limits: &Limits,
    max_body: u64,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(limits.connect_timeout))
        .timeout_recv_body(Some(limits.read_timeout))
        .max_redirects(0)
        .https_only(true)
        .build()
        .into();
    let shown = url.to_string();
    let mut response = agent
        .get(&shown)
        .call()
        .map_err(|e| Error::from_args(format_args!("{shown}: {e}")))?;
    let mut reader = response.body_mut().with_config().limit(max_body).reader();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut seen = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| Error::from_args(format_args!("{shown}: {e}")))?;
        if n == 0 {
            return Ok(seen);
        }
        seen += n as u64;
        sink(&buffer[..n])?;
    }
}

#[cfg(not(feature = "tls"))]
fn get_tls(
    url: &Url,
    _limits: &Limits,
    _max_body: u64,
    _sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
) -> Result<u64, Error> {
    Err(Error::from_args(format_args!(
        "{url}: https is not in this build of pkg (build with the `tls` feature); \
         repositories are signed, so http is safe to use"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_strictly() {
        let url = Url::parse("http://10.0.2.100:8080/x86_64/index").unwrap();
        assert_eq!(url.host, "10.0.2.100");
        assert_eq!(url.port, 8080);
        assert_eq!(url.path, "/x86_64/index");
        assert_eq!(Url::parse("http://[::1]/").unwrap().port, 80);
        for bad in [
            "ftp://host/",
            "file:///etc",
            "http://host/a\r\nX-Evil: 1",
            "http://host/a b",
            "http://user@host/",
            "http://ho_st/",
            "http://host:99999/",
            "http://host:/",
            "http:///path",
            "http://host/é",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn redirect_targets_are_checked() {
        let base = Url::parse("http://a:1/x/index").unwrap();
        assert_eq!(base.join("/y").unwrap().to_string(), "http://a:1/y");
        assert_eq!(
            base.join("http://b/z").unwrap().to_string(),
            "http://b:80/z"
        );
        assert!(base.join("ftp://b/z").is_err());
        assert!(base.join("//b/z").is_err());
        assert!(base.join("relative").is_err());
        assert!(base.join("http://b/\r\nz").is_err());
    }

    #[test]
    fn heads_parse_strictly() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n").unwrap();
        assert_eq!(head.content_length, Some(12));
        let head =
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n")
                .unwrap();
        assert!(head.chunked);
        assert_eq!(head.content_length, None);
        for bad in [
            &b"SSH-2.0 hi\r\n"[..],
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
