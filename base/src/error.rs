//! The one error type of pkg: a single line naming the thing and the reason, and its
//! kind, which decides the exit code.

#![forbid(unsafe_code)]

use std::fmt;

/// An error to print as `pkg: <message>` and exit with.
///
/// Boxed, so that a `Result<T, Error>` is T and one pointer: `Result<(), Error>` comes
/// back in a register and `?` tests it against zero, where the message and kind
/// inline took a 32-byte return slot and a 64-bit niche compare at every call (the
/// box cost an allocation only when something has already failed).
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
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
        Error::of(message.into(), Kind::Failed)
    }

    /// A failure with a formatted message: `Error::from_args(format_args!(...))` is
    /// `Error::new(format!(...))` in one call instead of two at every place.
    pub fn from_args(message: fmt::Arguments<'_>) -> Error {
        Error::of(fmt::format(message), Kind::Failed)
    }

    /// A usage error with a formatted message, as [`Error::from_args`] is for failures.
    pub fn usage_args(message: fmt::Arguments<'_>) -> Error {
        Error::of(fmt::format(message), Kind::Usage)
    }

    fn of(message: String, kind: Kind) -> Error {
        Error(Box::new(Inner { message, kind }))
    }

    /// A usage error: exit code 2.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::of(message.into(), Kind::Usage)
    }

    /// A refused value: `--name "Hello": invalid package name`, or without the value,
    /// `--license: contains a control character`.
    #[cfg(feature = "host")]
    pub fn argument(name: &'static str, value: Option<&str>, reason: impl fmt::Display) -> Error {
        let message = match value {
            Some(value) => format!("{name} {value:?}: {reason}"),
            None => format!("{name}: {reason}"),
        };
        Error::of(message, Kind::Argument(name))
    }

    /// Prefix the message with what was being worked on: `busybox-1.36.1-r2: sha256 mismatch`.
    pub fn context(self, what: impl fmt::Display) -> Error {
        self.context_dyn(&what)
    }

    fn context_dyn(mut self, what: &dyn fmt::Display) -> Error {
        self.0.message = format!("{what}: {}", self.0.message);
        self
    }

    pub fn kind(&self) -> Kind {
        self.0.kind
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self.0.kind {
            Kind::Usage => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
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
    Error::from_args(format_args!("{what}: {error}"))
}
