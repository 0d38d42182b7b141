//! The one error type of pkg: a single line naming the thing and the reason, and its
//! kind, which decides the exit code.

#![forbid(unsafe_code)]

use std::fmt;

/// An error to print as `pkg: <message>` and exit with.
#[derive(Debug)]
pub struct Error {
    message: String,
    kind: Kind,
}

/// What kind of failure an error is, so code and tests tell cases apart by it and not by
/// the words of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something failed: exit code 1.
    Failed,
    /// The command line is wrong: exit code 2.
    Usage,
    /// A value given to a command was refused (exit code 1); names the option (`--name`)
    /// or variable (`SOURCE_DATE_EPOCH`) it came from. Only host commands check values
    /// after parsing; on the device the kind stays one byte, as every `Result<_, Error>`
    /// carries it (the wider kind cost the device binary ~3 KB).
    #[cfg(feature = "host")]
    Argument(&'static str),
}

impl Error {
    /// A failure: exit code 1.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            kind: Kind::Failed,
        }
    }

    /// A usage error: exit code 2.
    pub fn usage(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            kind: Kind::Usage,
        }
    }

    /// A refused value: `--name "Hello": invalid package name`, or without the value,
    /// `--license: contains a control character`.
    #[cfg(feature = "host")]
    pub fn argument(name: &'static str, value: Option<&str>, reason: impl fmt::Display) -> Error {
        let message = match value {
            Some(value) => format!("{name} {value:?}: {reason}"),
            None => format!("{name}: {reason}"),
        };
        Error {
            message,
            kind: Kind::Argument(name),
        }
    }

    /// Prefix the message with what was being worked on: `busybox-1.36.1-r2: sha256 mismatch`.
    pub fn context(self, what: impl fmt::Display) -> Error {
        self.context_dyn(&what)
    }

    fn context_dyn(self, what: &dyn fmt::Display) -> Error {
        Error {
            message: format!("{what}: {}", self.message),
            kind: self.kind,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Usage => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Attach a path or name to an I/O error: `/data/pkg/index: No such file or directory`.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, Error>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|error| with_context(&what, &error))
    }
}

/// The message of [`Context::context`], formatted once for every type of error and
/// thing it names rather than once per pair of them.
fn with_context(what: &dyn fmt::Display, error: &dyn fmt::Display) -> Error {
    Error::new(format!("{what}: {error}"))
}
