//! A small static HTTP/1.1 server on 127.0.0.1 for the guest's package repository.
//!
//! qemu's `guestfwd=tcp:10.0.2.100:8080-tcp:127.0.0.1:PORT` connects to PORT once, when
//! qemu starts (it refuses to start when nothing listens there), and carries every
//! guest connection to 10.0.2.100:8080 over that one host connection. So this server
//! keeps each connection open and answers requests one after another for as long as
//! the peer wants; it never closes first. Only GET and HEAD of regular files under the
//! root directory are served.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

/// A running server; it stops when xtask exits.
pub struct Server {
    pub port: u16,
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
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                // A broken connection only ends that connection.
                let _ = serve_connection(stream, &root);
            });
        }
    });
    Ok(Some(Server { port }))
}

fn serve_connection(stream: TcpStream, root: &Path) -> std::io::Result<()> {
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
        let file = resolve(root, target).and_then(|path| std::fs::read(path).ok());
        match file {
            Some(bytes) => {
                let body: &[u8] = if method == "HEAD" { b"" } else { &bytes };
                respond_with_length(&mut writer, body, bytes.len(), close)?;
            }
            None => respond(&mut writer, 404, "Not Found", b"not found\n", close)?,
        }
        if close {
            return Ok(());
        }
    }
}

/// The file a request path names, if it stays inside the root.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
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

fn respond_with_length(
    writer: &mut TcpStream,
    body: &[u8],
    length: usize,
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()
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
    }
}
