//! Service output: lines read from a service's stdout/stderr pipe, echoed to the console
//! with the service's name in front (the supervisor logs them, `log.rs`).

use std::fs::File;
use std::io::{self, Read, Write};

/// A line longer than this is cut into pieces, so a service writing without newlines
/// cannot make init buffer without bound.
const MAX_LINE: usize = 1024;

/// The read end of one service's output pipe, with the unfinished last line.
pub struct Pipe {
    pub name: String,
    pub file: File,
    partial: Vec<u8>,
}

impl Pipe {
    pub fn new(name: String, file: File) -> Pipe {
        Pipe {
            name,
            file,
            partial: Vec::new(),
        }
    }

    /// Read what is there (the pipe is non-blocking) and hand every complete line to
    /// `line`. Returns false at end of file (every writer closed it); the last unfinished
    /// line is handed over then too.
    pub fn drain(&mut self, line: &mut dyn FnMut(&str, &[u8])) -> bool {
        let mut buffer = [0u8; 2048];
        loop {
            match self.file.read(&mut buffer) {
                Ok(0) => {
                    if !self.partial.is_empty() {
                        line(&self.name, &self.partial);
                        self.partial.clear();
                    }
                    return false;
                }
                Ok(count) => self.take(&buffer[..count], line),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    fn take(&mut self, bytes: &[u8], line: &mut dyn FnMut(&str, &[u8])) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let (text, complete) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            self.partial.extend_from_slice(text);
            while self.partial.len() > MAX_LINE {
                let rest = self.partial.split_off(MAX_LINE);
                line(&self.name, &self.partial);
                self.partial = rest;
            }
            if complete {
                line(&self.name, &self.partial);
                self.partial.clear();
            }
        }
    }
}

/// Write `NAME: line` to the console (this process's standard output).
pub fn echo(name: &str, line: &[u8]) {
    let mut text = Vec::with_capacity(name.len() + line.len() + 3);
    text.extend_from_slice(name.as_bytes());
    text.extend_from_slice(b": ");
    text.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    text.push(b'\n');
    let _ = io::stdout().lock().write_all(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_split_lines() {
        let (read, mut write) = crate::sys::pipe().unwrap();
        let mut pipe = Pipe::new("web".into(), read);
        let mut lines = Vec::new();
        write.write_all(b"hello\nwor").unwrap();
        assert!(pipe.drain(
            &mut |name, line| lines.push(format!("{name}: {}", String::from_utf8_lossy(line)))
        ));
        write.write_all(b"ld\n").unwrap();
        write.write_all(&vec![b'x'; MAX_LINE + 10]).unwrap();
        write.write_all(b"\ntail").unwrap();
        drop(write);
        assert!(!pipe.drain(
            &mut |name, line| lines.push(format!("{name}: {}", String::from_utf8_lossy(line)))
        ));
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], "web: hello");
        assert_eq!(lines[1], "web: world");
        assert_eq!(lines[2].len(), 5 + MAX_LINE);
        assert_eq!(lines[3], format!("web: {}", "x".repeat(10)));
        assert_eq!(lines[4], "web: tail");
    }
}
