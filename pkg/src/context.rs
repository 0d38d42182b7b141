//! What every command is given (the checked command line and the environment) and
//! what it returns (a report printed as text or as one JSON document).

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::path::PathBuf;

use crate::args::{Args, DEFAULT_ROOT};
use crate::error::{Context as _, Error};
use crate::http::Limits;
use crate::json::Json;
use crate::repo::Clock;
use crate::stdout;

/// The resolved global options and environment of one pkg run.
pub struct Context {
    pub root: PathBuf,
    pub json: bool,
    /// Wait for the store lock rather than failing at once.
    pub wait: bool,
    /// The architecture packages are installed for: this binary's, or `AMBER_ARCH`
    /// (used by image builds that prepare another architecture's store).
    pub arch: String,
    pub clock: Clock,
    /// Fetch limits; `AMBER_FETCH_TIMEOUT` (seconds) scales the timeouts.
    pub limits: Limits,
    /// Set once a failing command printed its own report, so `main` prints no second
    /// JSON document.
    pub reported: Cell<bool>,
}

impl Context {
    pub fn new(args: &Args) -> Context {
        let limits = match std::env::var("AMBER_FETCH_TIMEOUT")
            .ok()
            .and_then(|t| t.parse().ok())
        {
            Some(seconds) => Limits::with_timeout(seconds),
            None => Limits::default(),
        };
        Context {
            root: args
                .root
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)),
            json: args.json,
            wait: !args.no_wait,
            arch: std::env::var("AMBER_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.to_owned()),
            clock: Clock::system(),
            limits,
            reported: Cell::new(false),
        }
    }

    /// Print what a failing command found before it failed (verify's damaged images,
    /// update's other repositories): its text, or its JSON document with `ok` false and
    /// the error added, as the one document of the run.
    pub fn report_failure(&self, report: Report, error: &Error) {
        let json = match report.json {
            Json::Object(mut pairs) => {
                pairs.retain(|(key, _)| *key != "ok" && *key != "error");
                pairs.insert(0, ("ok", Json::Bool(false)));
                pairs.push(("error", Json::string(error.to_string())));
                Json::Object(pairs)
            }
            other => other,
        };
        // The command fails with `error` whatever becomes of its report.
        let _ = Report::new(report.text, json).print(self.json);
        self.reported.set(true);
    }
}

/// The outcome of a command: lines for people and a JSON document for programs.
pub struct Report {
    pub text: String,
    pub json: Json,
}

impl Report {
    /// A report with nothing to say beyond success.
    pub fn empty() -> Report {
        Report {
            text: String::new(),
            json: Json::object([("ok", Json::Bool(true))]),
        }
    }

    pub fn new(text: String, json: Json) -> Report {
        Report { text, json }
    }

    /// Print the report on standard output: its JSON document, or its text.
    pub fn print(&self, json: bool) -> Result<(), Error> {
        let rendered;
        let text = if json {
            rendered = self.json.render();
            &rendered
        } else {
            &self.text
        };
        stdout::write(text).context("stdout")?;
        if !text.is_empty() && !text.ends_with('\n') {
            stdout::write("\n").context("stdout")?;
        }
        Ok(())
    }
}
