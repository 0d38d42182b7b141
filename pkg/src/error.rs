//! The one error type of the pkg binary: a single line naming the thing and the reason.

use std::fmt;

/// An error to print as `pkg: <message>` and exit with.
#[derive(Debug)]
pub struct Error {
    message: String,
    usage: bool,
}

impl Error {
    /// A failure: exit code 1.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            usage: false,
        }
    }

    /// A usage error: exit code 2.
    pub fn usage(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            usage: true,
        }
    }

    /// Prefix the message with what was being worked on: `busybox-1.36.1-r2: sha256 mismatch`.
    pub fn context(self, what: impl fmt::Display) -> Error {
        self.context_dyn(&what)
    }

    fn context_dyn(self, what: &dyn fmt::Display) -> Error {
        Error {
            message: format!("{what}: {}", self.message),
            usage: self.usage,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        if self.usage {
            2
        } else {
            1
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
