//! The control socket: its protocol, init's server, and the clients `svc`, `poweroff`
//! and `reboot`.
//!
//! A client connects to the unix stream socket (/run/amber/control, mode 0600, and init
//! also checks that the peer runs as its own user, root), writes one request line and
//! reads the answer until init closes the connection:
//!
//! ```text
//! request:  status [NAME] | start NAME | stop NAME | restart NAME
//!           | log [NAME] [-n N] [-f] | rescan | poweroff | reboot
//! answer:   ok|fail|usage, a newline, then text
//! ```
//!
//! `svc` prints the text of `ok` on stdout and exits 0; for `fail` it prints
//! `svc: <text>` on stderr and exits 1; `usage` (and its own usage errors) exit 2.
//! `stop` and `restart` are answered once the service's process has exited. `log -f`
//! answers with the log so far and keeps the connection, sending new lines as they
//! come, until the client closes it.
//!
//! The server ([`Server`]) is part of init's poll loop: it accepts connections, reads
//! request lines and writes answers without blocking; what a request does is the
//! supervisor's.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::sys;

/// Where init listens on the device.
pub const SOCKET: &str = "/run/amber/control";

/// The longest request line init reads.
pub const MAX_REQUEST: usize = 256;

/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many control connections at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;

/// One request to init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Status(Option<String>),
    Start(String),
    Stop(String),
    Restart(String),
    Log(LogQuery),
    Rescan,
    PowerOff,
    Reboot,
    /// A reboot with the Raspberry Pi firmware's one-shot tryboot flag (A/B updates).
    RebootTry,
}

impl Request {
    /// Parse the words of a request (a command line's, or a received line's).
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Request, String> {
        let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        let named = |make: fn(String) -> Request, command: &str, rest: &[&str]| match rest {
            [name] => Ok(make((*name).to_owned())),
            _ => Err(format!("{command} takes one service name")),
        };
        match words.split_first() {
            Some((&"status", [])) => Ok(Request::Status(None)),
            Some((&"status", [name])) => Ok(Request::Status(Some((*name).to_owned()))),
            Some((&"status", _)) => Err("status takes at most one service name".into()),
            Some((&"start", rest)) => named(Request::Start, "start", rest),
            Some((&"stop", rest)) => named(Request::Stop, "stop", rest),
            Some((&"restart", rest)) => named(Request::Restart, "restart", rest),
            Some((&"log", rest)) => LogQuery::parse(rest).map(Request::Log),
            Some((&"rescan", [])) => Ok(Request::Rescan),
            Some((&"poweroff", [])) => Ok(Request::PowerOff),
            Some((&"reboot", [])) => Ok(Request::Reboot),
            Some((&"reboot", ["tryboot"])) => Ok(Request::RebootTry),
            Some((command, _)) => Err(format!("unknown command {command:?}")),
            None => Err("no command".into()),
        }
    }

    /// The request as the line sent on the socket.
    pub fn line(&self) -> String {
        match self {
            Request::Status(None) => "status\n".into(),
            Request::Status(Some(name)) => format!("status {name}\n"),
            Request::Start(name) => format!("start {name}\n"),
            Request::Stop(name) => format!("stop {name}\n"),
            Request::Restart(name) => format!("restart {name}\n"),
            Request::Log(query) => query.line(),
            Request::Rescan => "rescan\n".into(),
            Request::PowerOff => "poweroff\n".into(),
            Request::Reboot => "reboot\n".into(),
            Request::RebootTry => "reboot tryboot\n".into(),
        }
    }
}

/// `log [NAME] [-n N] [-f]`: the lines of one source (a service, `kernel`, `amber`) or
/// of all, the last N of them, and whether to follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub name: Option<String>,
    pub lines: Option<usize>,
    pub follow: bool,
}

impl LogQuery {
    fn parse(words: &[&str]) -> Result<LogQuery, String> {
        let mut query = LogQuery::default();
        let mut words = words.iter();
        while let Some(&word) = words.next() {
            match word {
                "-f" => query.follow = true,
                "-n" => match words.next().and_then(|count| count.parse().ok()) {
                    Some(count) => query.lines = Some(count),
                    None => return Err("log: -n takes a number of lines".into()),
                },
                name if query.name.is_none() && !name.starts_with('-') => {
                    query.name = Some(name.to_owned())
                }
                _ => return Err("log takes at most one name, -n N and -f".into()),
            }
        }
        Ok(query)
    }

    fn line(&self) -> String {
        let mut line = String::from("log");
        if let Some(name) = &self.name {
            line += " ";
            line += name;
        }
        if let Some(lines) = self.lines {
            line += &format!(" -n {lines}");
        }
        if self.follow {
            line += " -f";
        }
        line + "\n"
    }
}

/// Init's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Ok(String),
    Fail(String),
    Usage(String),
}

impl Answer {
    pub fn encode(&self) -> Vec<u8> {
        let (word, text) = match self {
            Answer::Ok(text) => ("ok", text),
            Answer::Fail(text) => ("fail", text),
            Answer::Usage(text) => ("usage", text),
        };
        format!("{word}\n{text}").into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        let text = String::from_utf8_lossy(bytes);
        let (word, rest) = text.split_once('\n')?;
        let rest = rest.to_owned();
        match word {
            "ok" => Some(Answer::Ok(rest)),
            "fail" => Some(Answer::Fail(rest)),
            "usage" => Some(Answer::Usage(rest)),
            _ => None,
        }
    }
}

/// Send one request and read the whole answer.
pub fn ask(socket: &Path, request: &Request, timeout: Duration) -> io::Result<Answer> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(request.line().as_bytes())?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    Answer::decode(&bytes).ok_or_else(|| io::Error::other("init sent an answer that is not one"))
}

/// `lines(from, source, out)`: append the log's lines of `source` (all: None) from
/// sequence number `from` on to `out`; returns the next sequence number.
pub type LinesSince<'a> = dyn FnMut(u64, Option<&str>, &mut Vec<u8>) -> u64 + 'a;

/// Init's side of the socket: the listener and its connections.
pub struct Server {
    /// None when the socket could not be made: services still run.
    listener: Option<UnixListener>,
    connections: Vec<Connection>,
}

struct Connection {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Answer once this unit is no longer stopping.
    waiting_for: Option<String>,
    /// `log -f`: the source followed (None: all) and the next line's sequence number.
    follow: Option<(Option<String>, u64)>,
    answered: bool,
    deadline: Instant,
}

impl Server {
    /// Listen on `path` (its directory made 0700, the socket 0600). When that fails,
    /// say so: init goes on without a control socket.
    pub fn listen(path: &Path) -> Server {
        let listener = match listen(path) {
            Ok(listener) => Some(listener),
            Err(error) => {
                say!("control: {}: {error}; svc will not work", path.display());
                None
            }
        };
        Server {
            listener,
            connections: Vec::new(),
        }
    }

    /// The listener's poll entry (fd -1, never ready, when there is none).
    pub fn listener_entry(&self) -> sys::PollFd {
        let fd = self
            .listener
            .as_ref()
            .map_or(-1, |listener| listener.as_raw_fd());
        sys::poll_entry(fd, sys::POLLIN)
    }

    /// One poll entry per connection, in order: [`Server::serve`] takes their events.
    pub fn connection_entries(&self, fds: &mut Vec<sys::PollFd>) {
        for connection in &self.connections {
            let events = if connection.follow.is_some() {
                // A follower's hang-up shows as input.
                sys::POLLIN
                    | if connection.output.is_empty() {
                        0
                    } else {
                        sys::POLLOUT
                    }
            } else if !connection.output.is_empty() {
                sys::POLLOUT
            } else if !connection.answered && connection.waiting_for.is_none() {
                sys::POLLIN
            } else {
                0
            };
            fds.push(sys::poll_entry(connection.stream.as_raw_fd(), events));
        }
    }

    /// Take every pending connection from a peer running as init's own user, up to
    /// [`MAX_CONNECTIONS`]; the others get a `fail` answer and are closed.
    pub fn accept(&mut self, now: Instant) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok((stream, _)) = listener.accept() {
            let mut connection = Connection {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                waiting_for: None,
                follow: None,
                answered: false,
                deadline: now + CLIENT_TIMEOUT,
            };
            let allowed = sys::peer_uid(&connection.stream).ok() == Some(sys::effective_uid());
            if self.connections.len() >= MAX_CONNECTIONS
                || !allowed
                || connection.stream.set_nonblocking(true).is_err()
            {
                let answer = if allowed {
                    "too many connections\n"
                } else {
                    "permission denied\n"
                };
                let _ = connection.stream.set_nonblocking(true);
                let _ = connection
                    .stream
                    .write_all(&Answer::Fail(answer.into()).encode());
                continue;
            }
            self.connections.push(connection);
        }
    }

    /// Act on the poll events of connection `index`: write what is left of its answer,
    /// or read its request. A whole, valid request is returned for the supervisor to
    /// carry out; a bad one is answered here.
    pub fn serve(&mut self, index: usize, revents: i16, now: Instant) -> Option<Request> {
        let connection = &mut self.connections[index];
        if revents & sys::POLLOUT != 0 && !connection.output.is_empty() {
            match connection.stream.write(&connection.output) {
                Ok(written) => {
                    connection.output.drain(..written);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => connection.output.clear(),
            }
            return None;
        }
        if connection.answered || connection.waiting_for.is_some() {
            // The client hung up while waiting or following: forget it.
            connection.answered = true;
            connection.output.clear();
            connection.waiting_for = None;
            connection.follow = None;
            return None;
        }
        let mut buffer = [0u8; MAX_REQUEST];
        let line = match connection.stream.read(&mut buffer) {
            Ok(0) | Err(_) => {
                connection.answered = true;
                return None;
            }
            Ok(count) => {
                connection.input.extend_from_slice(&buffer[..count]);
                match connection.input.iter().position(|&b| b == b'\n') {
                    Some(end) => String::from_utf8_lossy(&connection.input[..end]).into_owned(),
                    None if connection.input.len() > MAX_REQUEST => {
                        self.answer(index, Answer::Usage("request too long\n".into()), now);
                        return None;
                    }
                    None => return None,
                }
            }
        };
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match Request::parse(&words) {
            Ok(request) => Some(request),
            Err(message) => {
                self.answer(index, Answer::Usage(format!("{message}\n")), now);
                None
            }
        }
    }

    /// Answer connection `index`; init closes it once the answer is written.
    pub fn answer(&mut self, index: usize, answer: Answer, now: Instant) {
        let connection = &mut self.connections[index];
        connection.output = answer.encode();
        connection.answered = true;
        connection.waiting_for = None;
        connection.deadline = now + CLIENT_TIMEOUT;
        // Most answers fit the socket buffer at once.
        if let Ok(written) = connection.stream.write(&connection.output) {
            connection.output.drain(..written);
        }
    }

    /// Answer connection `index` later, once unit `name` no longer stops.
    pub fn wait_for(&mut self, index: usize, name: String) {
        self.connections[index].waiting_for = Some(name);
    }

    /// Keep connection `index` open after its answer, for the lines of `source` from
    /// sequence number `next` on.
    pub fn follow(&mut self, index: usize, source: Option<String>, next: u64) {
        self.connections[index].follow = Some((source, next));
    }

    /// Give every follower its new lines: `lines(from, source, out)` appends them and
    /// returns the next sequence number. A follower that does not read falls behind
    /// and loses lines rather than making init buffer without bound.
    pub fn feed(&mut self, lines: &mut LinesSince) {
        for connection in &mut self.connections {
            let Some((source, next)) = &mut connection.follow else {
                continue;
            };
            let mut more = Vec::new();
            *next = lines(*next, source.as_deref(), &mut more);
            if connection.output.len() < 64 << 10 {
                connection.output.extend_from_slice(&more);
            }
            if !connection.output.is_empty() {
                if let Ok(written) = connection.stream.write(&connection.output) {
                    connection.output.drain(..written);
                }
            }
        }
    }

    /// The connections waiting for a unit to stop: (connection, unit).
    pub fn waiting(&self) -> impl Iterator<Item = (usize, &str)> {
        self.connections
            .iter()
            .enumerate()
            .filter_map(|(index, connection)| Some((index, connection.waiting_for.as_deref()?)))
    }

    /// Close the connections whose answer is written.
    pub fn close_answered(&mut self) {
        self.connections.retain(|connection| {
            connection.follow.is_some() || !(connection.answered && connection.output.is_empty())
        });
    }

    /// Close the connections past their deadline (a waiting one has none), and say how
    /// many.
    pub fn close_idle(&mut self, now: Instant) {
        let before = self.connections.len();
        self.connections.retain(|connection| {
            connection.waiting_for.is_some()
                || connection.follow.is_some()
                || connection.deadline > now
        });
        if self.connections.len() != before {
            say!(
                "control: closed {} idle connection(s)",
                before - self.connections.len()
            );
        }
    }

    /// The earliest deadline of a connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.connections
            .iter()
            .filter(|connection| connection.waiting_for.is_none() && connection.follow.is_none())
            .map(|connection| connection.deadline)
            .min()
    }
}

fn listen(path: &Path) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

const SVC_USAGE: &str = "usage: svc [--socket PATH] status [NAME] | start NAME | stop NAME | restart NAME | log [NAME] [-n N] [-f] | rescan";

/// `svc`: talk to init about services.
pub fn svc_main(args: Vec<OsString>) -> ExitCode {
    let Some(mut words) = utf8_args("svc", args) else {
        return ExitCode::from(2);
    };
    if matches!(
        words.first().map(String::as_str),
        Some("-h" | "--help" | "help")
    ) {
        return print("svc", &format!("{SVC_USAGE}\n"));
    }
    let socket = match take_socket(&mut words) {
        Ok(socket) => socket,
        Err(message) => return usage("svc", &message, SVC_USAGE),
    };
    let request = match Request::parse(&words) {
        Ok(Request::PowerOff | Request::Reboot | Request::RebootTry) => {
            return usage("svc", "use the poweroff and reboot commands", SVC_USAGE)
        }
        Ok(request) => request,
        Err(message) => return usage("svc", &message, SVC_USAGE),
    };
    if let Request::Log(LogQuery { follow: true, .. }) = &request {
        return follow(&socket, &request);
    }
    // A stop waits for the service to exit, which init bounds by its stop timeout.
    finish(
        "svc",
        ask(&socket, &request, Duration::from_secs(30)),
        &socket,
    )
}

/// `poweroff` and `reboot`: ask init to stop everything and power off or reboot. With
/// `-f`, do it at once without init: sync and call reboot(2).
pub fn power_main(power_off: bool, args: Vec<OsString>) -> ExitCode {
    let command = if power_off { "poweroff" } else { "reboot" };
    let help = format!("usage: {command} [-f] [--socket PATH]");
    let Some(mut words) = utf8_args(command, args) else {
        return ExitCode::from(2);
    };
    let socket = match take_socket(&mut words) {
        Ok(socket) => socket,
        Err(message) => return usage(command, &message, &help),
    };
    match words.as_slice() {
        [] => {}
        [flag] if flag == "-f" => {
            sys::sync();
            let how = if power_off {
                sys::RB_POWER_OFF
            } else {
                sys::RB_AUTOBOOT
            };
            eprintln!("{command}: {}", sys::reboot(how));
            return ExitCode::FAILURE;
        }
        [flag] if flag == "-h" || flag == "--help" => {
            return print(command, &format!("{help}\n"));
        }
        _ => return usage(command, "unexpected arguments", &help),
    }
    let request = if power_off {
        Request::PowerOff
    } else {
        Request::Reboot
    };
    finish(
        command,
        ask(&socket, &request, Duration::from_secs(10)),
        &socket,
    )
}

/// `svc log -f`: print the answer as it comes, until init or the reader stops.
fn follow(socket: &Path, request: &Request) -> ExitCode {
    let mut head = Vec::new();
    let result = (|| -> io::Result<Option<Answer>> {
        let mut stream = UnixStream::connect(socket)?;
        stream.write_all(request.line().as_bytes())?;
        let mut buffer = [0u8; 4096];
        let mut streaming = false;
        loop {
            let count = stream.read(&mut buffer)?;
            if count == 0 && streaming {
                return Ok(None);
            }
            if count == 0 {
                return Answer::decode(&head)
                    .map(Some)
                    .ok_or_else(|| io::Error::other("init sent an answer that is not one"));
            }
            if streaming {
                if amber_base::stdout::write(&String::from_utf8_lossy(&buffer[..count])).is_err() {
                    return Ok(None);
                }
                continue;
            }
            head.extend_from_slice(&buffer[..count]);
            if let Some(rest) = head.strip_prefix(b"ok\n") {
                streaming = true;
                if amber_base::stdout::write(&String::from_utf8_lossy(rest)).is_err() {
                    return Ok(None);
                }
            }
        }
    })();
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(answer)) => finish("svc", Ok(answer), socket),
        Err(error) => finish("svc", Err(error), socket),
    }
}

fn utf8_args(command: &str, args: Vec<OsString>) -> Option<Vec<String>> {
    let words: Result<Vec<String>, _> = args
        .into_iter()
        .skip(1)
        .map(OsString::into_string)
        .collect();
    if words.is_err() {
        eprintln!("{command}: arguments must be UTF-8");
    }
    words.ok()
}

/// Remove a leading `--socket PATH` (for tests) and return the socket to use.
fn take_socket(words: &mut Vec<String>) -> Result<PathBuf, String> {
    if words.first().map(String::as_str) != Some("--socket") {
        return Ok(PathBuf::from(SOCKET));
    }
    if words.len() < 2 {
        return Err("--socket needs a path".into());
    }
    let path = words.remove(1);
    words.remove(0);
    Ok(PathBuf::from(path))
}

fn usage(command: &str, message: &str, help: &str) -> ExitCode {
    eprintln!("{command}: {message}\n{help}");
    ExitCode::from(2)
}

/// Print `text` on standard output, where a closed reader is the normal end of the
/// output (`svc status | head -1` exits 0; see `amber_base::stdout`).
fn print(command: &str, text: &str) -> ExitCode {
    match amber_base::stdout::write(text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{command}: stdout: {error}");
            ExitCode::FAILURE
        }
    }
}

fn finish(command: &str, answer: io::Result<Answer>, socket: &Path) -> ExitCode {
    match answer {
        Ok(Answer::Ok(text)) => print(command, &text),
        Ok(Answer::Fail(text)) => {
            eprint!("{command}: {text}");
            ExitCode::FAILURE
        }
        Ok(Answer::Usage(text)) => {
            eprint!("{command}: {text}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("{command}: {}: {error}", socket.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let cases: &[(&str, Result<Request, &str>)] = &[
            ("status", Ok(Request::Status(None))),
            ("status web", Ok(Request::Status(Some("web".into())))),
            ("start web", Ok(Request::Start("web".into()))),
            ("stop web", Ok(Request::Stop("web".into()))),
            ("restart web", Ok(Request::Restart("web".into()))),
            (
                "log web",
                Ok(Request::Log(LogQuery {
                    name: Some("web".into()),
                    ..LogQuery::default()
                })),
            ),
            ("log", Ok(Request::Log(LogQuery::default()))),
            (
                "log kernel -n 20 -f",
                Ok(Request::Log(LogQuery {
                    name: Some("kernel".into()),
                    lines: Some(20),
                    follow: true,
                })),
            ),
            ("log -n", Err("-n takes a number")),
            ("log a b", Err("at most one name")),
            ("rescan", Ok(Request::Rescan)),
            ("poweroff", Ok(Request::PowerOff)),
            ("reboot", Ok(Request::Reboot)),
            ("", Err("no command")),
            ("start", Err("start takes one service name")),
            ("stop a b", Err("stop takes one service name")),
            ("status a b", Err("status takes at most one")),
            ("reboot now", Err("unknown command \"reboot\"")),
            ("launch web", Err("unknown command \"launch\"")),
        ];
        for (line, expected) in cases {
            let words: Vec<&str> = line.split_whitespace().collect();
            match (Request::parse(&words), expected) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(&got, want);
                    assert_eq!(got.line().trim_end(), *line);
                }
                (Err(got), Err(want)) => assert!(got.contains(want), "{line:?}: {got}"),
                (got, _) => panic!("{line:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn answers() {
        for answer in [
            Answer::Ok("web running\n".into()),
            Answer::Fail("web: no such service\n".into()),
            Answer::Usage(String::new()),
        ] {
            assert_eq!(Answer::decode(&answer.encode()), Some(answer));
        }
        assert_eq!(Answer::decode(b"ok"), None);
        assert_eq!(Answer::decode(b"maybe\nx"), None);
    }

    #[test]
    fn socket_option() {
        let mut words: Vec<String> = ["--socket", "/tmp/c", "status"].map(String::from).to_vec();
        assert_eq!(take_socket(&mut words), Ok(PathBuf::from("/tmp/c")));
        assert_eq!(words, ["status"]);
        let mut words = vec!["status".to_string()];
        assert_eq!(take_socket(&mut words), Ok(PathBuf::from(SOCKET)));
        assert!(take_socket(&mut vec!["--socket".to_string()]).is_err());
    }
}
