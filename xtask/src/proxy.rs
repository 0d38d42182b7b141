//! `xtask proxy HOST:PORT`: one guest connection to the repository, carried to a server on
//! the host. qemu runs it through `guestfwd=tcp:10.0.2.100:8080-cmd:...`.
//!
//! qemu's other form, `guestfwd=...-tcp:127.0.0.1:PORT`, is one character-device stream
//! opened when qemu starts: every guest connection shares that one host connection, so
//! parallel downloads would interleave. With `cmd:`, qemu's user network starts the
//! command once per guest connection with its standard input and output (and error)
//! connected to that connection. This copies stdin to a fresh TCP connection and the
//! connection's answers to stdout until either side closes.
//!
//! It never writes to stderr: that goes to the guest too.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;

/// The subcommand, as qemu runs it; `args` is what follows `proxy`.
pub fn main(args: &[String]) -> ExitCode {
    let [address] = args else {
        return ExitCode::from(2);
    };
    // Unbuffered copies of the standard streams: std's stdout holds bytes back until a
    // newline, which would stall a binary download.
    let streams = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|input| Ok((input, std::io::stdout().as_fd().try_clone_to_owned()?)));
    let result = streams.and_then(|(input, output)| {
        carry(
            address,
            std::fs::File::from(input),
            std::fs::File::from(output),
        )
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn carry(
    address: &str,
    mut input: impl Read + Send + 'static,
    mut output: impl Write,
) -> std::io::Result<()> {
    let upstream = TcpStream::connect(address)?;
    let mut to_server = upstream.try_clone()?;
    std::thread::spawn(move || {
        let _ = copy(&mut input, &mut to_server);
        // The guest closed its side: tell the server, which then finishes and closes.
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let mut from_server = upstream;
    // When the server closes (or the guest's side breaks), the process ends, which
    // closes the guest's connection; the thread copying stdin ends with it.
    copy(&mut from_server, &mut output)
}

/// Copy until the end of the input, writing each piece as soon as it arrives.
fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        to.write_all(&buffer[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A request on the input reaches the server, the answer comes back on the output,
    /// and the proxy ends when the server closes.
    #[test]
    fn carries_one_connection_both_ways() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 5];
            stream.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"ping\n");
            stream.write_all(b"pong\n").unwrap();
        });
        let (input, mut guest) = std::io::pipe().unwrap();
        guest.write_all(b"ping\n").unwrap();
        let mut output = Vec::new();
        carry(&format!("127.0.0.1:{port}"), input, &mut output).unwrap();
        server.join().unwrap();
        assert_eq!(output, b"pong\n");
    }
}
