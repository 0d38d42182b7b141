//! The command-line parser: one table per command, filled in by the [`command!`] and
//! [`subcommands!`] macros from the one description of each command, and a parser and a
//! help writer over those tables. It knows nothing of pkg's commands (`args.rs` has them).
//!
//! It behaves as argh did, messages and help texts included (they were taken from it):
//! options anywhere before the subcommand's name, `--` ending options, `help` and
//! `--help` asking for help, a greedy positional taking the rest. Help is written from
//! the tables as argh wrote it: 80 columns, descriptions from column 21, greedy
//! positionals not listed. argh's derived parsers took about 20 KB of the device binary;
//! one parser over tables takes a few.

#![forbid(unsafe_code)]

use std::path::PathBuf;

/// What a command accepts, in the order its help lists it.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    /// What the command does (its doc comment): the paragraph of its help and its line
    /// in the parent's list.
    pub(crate) about: &'static str,
    /// One per field of the command's struct, in the same order.
    pub(crate) args: &'static [Arg],
}

/// One field of a command: an option, a positional, or the subcommand.
pub(crate) struct Arg {
    /// `--long` for an option, the name for a positional.
    pub(crate) name: &'static str,
    /// `-s`, or empty.
    pub(crate) short: &'static str,
    pub(crate) kind: Kind,
    /// The field's doc comment.
    pub(crate) help: &'static str,
}

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// No value: present or not.
    Switch,
    /// One value, or none.
    Value,
    /// Exactly one value.
    #[cfg_attr(not(feature = "host"), allow(dead_code))] // Only host commands have one.
    Required,
    /// One unsigned number, or none.
    Number,
    /// Any number of values.
    Repeated,
    /// A positional that must be given.
    Positional,
    /// A positional that may be left out.
    Optional,
    /// A positional that takes every argument left, options included (the last one).
    Greedy,
    /// One of these commands must follow.
    Subcommands(&'static [&'static Spec]),
}

impl Arg {
    fn is_option(&self) -> bool {
        matches!(
            self.kind,
            Kind::Switch | Kind::Value | Kind::Required | Kind::Number | Kind::Repeated
        )
    }

    fn is_positional(&self) -> bool {
        matches!(self.kind, Kind::Positional | Kind::Optional | Kind::Greedy)
    }

    /// A positional the help lists (greedy ones it does not, as argh did not).
    fn is_listed(&self) -> bool {
        matches!(self.kind, Kind::Positional | Kind::Optional)
    }
}

impl Spec {
    fn subcommands(&self) -> &'static [&'static Spec] {
        self.args
            .iter()
            .find_map(|arg| match arg.kind {
                Kind::Subcommands(subcommands) => Some(subcommands),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

/// What stops parsing before a command runs.
pub(crate) enum Early {
    /// The help text asked for.
    Help(String),
    /// A usage error.
    Usage(String),
}

/// One command's arguments, per field of its spec; the generated `from_parsed` takes
/// them in order.
pub(crate) struct Parsed {
    /// Per arg: its values (a switch gets an empty one each time it is given).
    values: Vec<Vec<String>>,
    /// The arg the next conversion takes.
    next: usize,
    /// The subcommand given: its place in the spec's list, and its arguments.
    subcommand: Option<(usize, Box<Parsed>)>,
}

/// Parse `args`, the arguments after the command path `path`, by `spec`.
pub(crate) fn parse(spec: &'static Spec, path: &[&str], args: &[&str]) -> Result<Parsed, Early> {
    let usage = |message: String| Err(Early::Usage(message));
    let mut parsed = Parsed {
        values: spec.args.iter().map(|_| Vec::new()).collect(),
        next: 0,
        subcommand: None,
    };
    let positionals: Vec<usize> = (0..spec.args.len())
        .filter(|&at| spec.args[at].is_positional())
        .collect();
    let subcommands = spec.subcommands();
    let mut help = false;
    let mut options_ended = false;
    let mut index = 0;
    let mut rest = args;
    while let Some((&arg, after)) = rest.split_first() {
        rest = after;
        if !options_ended && (arg == "--help" || arg == "help") {
            help = true;
            continue;
        }
        if !options_ended && arg.starts_with('-') {
            if arg == "--" {
                options_ended = true;
                continue;
            }
            if help {
                return usage("Trailing arguments are not allowed after `help`.".into());
            }
            let Some(at) = spec
                .args
                .iter()
                .position(|o| o.is_option() && (o.name == arg || o.short == arg))
            else {
                return usage(format!("Unrecognized argument: {arg}\n"));
            };
            let kind = spec.args[at].kind;
            if matches!(kind, Kind::Switch) {
                parsed.values[at].push(String::new());
                continue;
            }
            let Some((&value, after)) = rest.split_first() else {
                return usage(format!("No value provided for option '{arg}'.\n"));
            };
            rest = after;
            let problem = if !matches!(kind, Kind::Repeated) && !parsed.values[at].is_empty() {
                Some("duplicate values provided".to_owned())
            } else if matches!(kind, Kind::Number) {
                value.parse::<u64>().err().map(|e| e.to_string())
            } else {
                None
            };
            if let Some(problem) = problem {
                return usage(format!(
                    "Error parsing option '{arg}' with value '{value}': {problem}\n"
                ));
            }
            parsed.values[at].push(value.to_owned());
            continue;
        }
        if let Some(which) = subcommands.iter().position(|s| s.name == arg) {
            let sub = subcommands[which];
            let mut sub_path = path.to_vec();
            sub_path.push(sub.name);
            // Help asked for before the subcommand is the subcommand's help.
            let sub_args: Vec<&str> = help
                .then_some("help")
                .into_iter()
                .chain(rest.iter().copied())
                .collect();
            parsed.subcommand = Some((which, Box::new(parse(sub, &sub_path, &sub_args)?)));
            help = false;
            break;
        }
        let Some(&at) = positionals.get(index) else {
            return usage(format!("Unrecognized argument: {arg}\n"));
        };
        parsed.values[at].push(arg.to_owned());
        if matches!(spec.args[at].kind, Kind::Greedy) {
            options_ended = true;
        } else {
            index += 1;
        }
    }
    if help {
        return Err(Early::Help(help_text(spec, path)));
    }
    missing(spec, &parsed).map_or(Ok(parsed), usage)
}

/// The message naming what a command lacks, as argh words it; None when nothing.
fn missing(spec: &Spec, parsed: &Parsed) -> Option<String> {
    let unset = |wanted: fn(&Kind) -> bool| -> Vec<&'static str> {
        spec.args
            .iter()
            .zip(&parsed.values)
            .filter(|(arg, values)| wanted(&arg.kind) && values.is_empty())
            .map(|(arg, _)| arg.name)
            .collect()
    };
    let positionals = unset(|kind| matches!(kind, Kind::Positional));
    let options = unset(|kind| matches!(kind, Kind::Required));
    let subcommands = spec.subcommands();
    let subcommand = !subcommands.is_empty() && parsed.subcommand.is_none();
    if positionals.is_empty() && options.is_empty() && !subcommand {
        return None;
    }
    let mut out = String::new();
    if !positionals.is_empty() {
        out.push_str("Required positional arguments not provided:");
        for name in &positionals {
            out.push_str("\n    ");
            out.push_str(name);
        }
    }
    if !options.is_empty() {
        if !positionals.is_empty() {
            out.push('\n');
        }
        out.push_str("Required options not provided:");
        for name in &options {
            out.push_str("\n    ");
            out.push_str(name);
        }
    }
    if subcommand {
        if !options.is_empty() {
            out.push('\n');
        }
        out.push_str("One of the following subcommands must be present:\n    help");
        for sub in subcommands {
            out.push_str("\n    ");
            out.push_str(sub.name);
        }
    }
    out.push('\n');
    Some(out)
}

/// Where descriptions start in a help list, and where lines wrap.
const DESCRIPTION_COLUMN: usize = 20;
const WIDTH: usize = 80;

/// The help of `spec`, reached by the command path `path`, as argh wrote it.
fn help_text(spec: &Spec, path: &[&str]) -> String {
    let mut out = String::from("Usage: ");
    out.push_str(&path.join(" "));
    let options = || spec.args.iter().filter(|arg| arg.is_option());
    let listed = || spec.args.iter().filter(|arg| arg.is_listed());
    for arg in options() {
        let required = matches!(arg.kind, Kind::Required);
        out.push_str(if required { " " } else { " [" });
        out.push_str(if arg.short.is_empty() {
            arg.name
        } else {
            arg.short
        });
        if !matches!(arg.kind, Kind::Switch) {
            out.push_str(" <");
            out.push_str(arg.name.trim_start_matches('-'));
            if matches!(arg.kind, Kind::Repeated) {
                out.push_str("...");
            }
            out.push('>');
        }
        if !required {
            out.push(']');
        }
    }
    if listed().next().is_some() {
        out.push_str(" [--]");
    }
    for arg in spec.args.iter().filter(|arg| arg.is_positional()) {
        let (open, close) = match arg.kind {
            Kind::Positional => (" <", ">"),
            Kind::Optional => (" [<", ">]"),
            _ => (" [", "...]"),
        };
        out.push_str(open);
        out.push_str(arg.name);
        out.push_str(close);
    }
    let subcommands = spec.subcommands();
    if !subcommands.is_empty() {
        out.push_str(" <command> [<args>]");
    }
    out.push_str("\n\n");
    out.push_str(spec.about);
    out.push_str("\n\n");
    if listed().next().is_some() {
        out.push_str("Positional Arguments:\n");
        for arg in listed() {
            describe(&mut out, arg.name, arg.help);
        }
        out.push('\n');
    }
    out.push_str("Options:\n");
    for arg in options() {
        if arg.short.is_empty() {
            describe(&mut out, arg.name, arg.help);
        } else {
            describe(&mut out, &format!("{}, {}", arg.short, arg.name), arg.help);
        }
    }
    describe(&mut out, "--help, help", "display usage information");
    if !subcommands.is_empty() {
        out.push_str("\nCommands:\n");
        for sub in subcommands {
            describe(&mut out, sub.name, sub.about);
        }
    }
    out
}

/// One entry of a help list: the name from column 3, its description from column 21,
/// wrapped at 80 columns; a name too long for its column gets a line of its own.
fn describe(out: &mut String, name: &str, description: &str) {
    let mut line = String::from("  ");
    line.push_str(name);
    for (at, word) in description.split_whitespace().enumerate() {
        if line.len() >= DESCRIPTION_COLUMN && (at == 0 || line.len() + 1 + word.len() > WIDTH) {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if line.len() < DESCRIPTION_COLUMN {
            line.extend(std::iter::repeat_n(' ', DESCRIPTION_COLUMN - line.len()));
        } else {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

impl Parsed {
    /// The values of the next field.
    pub(crate) fn take(&mut self) -> Vec<String> {
        let values = self.values.get_mut(self.next).map(std::mem::take);
        self.next += 1;
        values.unwrap_or_default()
    }

    pub(crate) fn switch(&mut self) -> bool {
        !self.take().is_empty()
    }

    pub(crate) fn value<T: Value>(&mut self) -> T {
        T::from_value(self.take().pop())
    }

    /// A number option's value; the parser checked that it is one.
    pub(crate) fn number(&mut self) -> Option<u64> {
        self.take().pop().and_then(|value| value.parse().ok())
    }

    /// The subcommand: its place in the spec's list and its arguments.
    pub(crate) fn subcommand(&mut self) -> (usize, Parsed) {
        self.next += 1;
        let (which, sub) = self
            .subcommand
            .take()
            .expect("the parser checked the subcommand");
        (which, *sub)
    }
}

/// A field that holds one value, or none.
pub(crate) trait Value {
    fn from_value(value: Option<String>) -> Self;
}

impl Value for String {
    fn from_value(value: Option<String>) -> String {
        value.unwrap_or_default()
    }
}

impl Value for Option<String> {
    fn from_value(value: Option<String>) -> Option<String> {
        value
    }
}

impl Value for PathBuf {
    fn from_value(value: Option<String>) -> PathBuf {
        value.unwrap_or_default().into()
    }
}

impl Value for Option<PathBuf> {
    fn from_value(value: Option<String>) -> Option<PathBuf> {
        value.map(PathBuf::from)
    }
}

/// A number field with a default.
pub(crate) trait Number {
    fn from_u64(value: u64) -> Self;
}

impl Number for u64 {
    fn from_u64(value: u64) -> u64 {
        value
    }
}

impl Number for usize {
    fn from_u64(value: u64) -> usize {
        value as usize
    }
}

/// Describe a command once, as its struct with a doc comment on the struct (what the
/// command does) and on each field (its help line), each field saying how it is given:
///
/// ```text
/// command! {
///     /// Remove old generations and the images only they used.
///     pub struct GcArgs("gc") {
///         /// how many of the newest generations to keep (default 3)
///         pub keep: u64 = number "--keep" default 3,
///     }
/// }
/// ```
///
/// This makes the struct, its `SPEC` (the parser's table, from which the help is
/// written) and `from_parsed`. Kinds: `switch`, `value`, `required`, `number` (without
/// `default N` the field is an `Option<u64>`), `repeated` (a short name first, as in
/// `"-p" "--package"`, if it has one), the positionals `positional`, `optional` and
/// `greedy`, and `subcommand` (the field's type is a [`subcommands!`] enum).
///
/// `("name", host)` marks a host-only command: the device build keeps its name and
/// description, so `pkg --help` reads the same everywhere, but not its options (parsing
/// them would only lead to the usage error `cli::run` gives); it takes any arguments.
macro_rules! command {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident($command:literal, host) { $($fields:tt)* }
    ) => {
        #[cfg(feature = "host")]
        $crate::parser::command! {
            $(#[doc = $doc])*
            pub struct $name($command) { $($fields)* }
        }
        #[cfg(not(feature = "host"))]
        $crate::parser::command! {
            $(#[doc = $doc])*
            pub struct $name($command) {
                /// the host command's arguments
                pub arguments: Vec<String> = greedy "arguments",
            }
        }
    };
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident($command:literal) {
            $(
                $(#[doc = $help:literal])*
                pub $field:ident: $type:ty = $kind:ident $($key:literal)* $(default $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub struct $name {
            $(
                $(#[doc = $help])*
                pub $field: $type,
            )*
        }

        impl $name {
            pub(crate) const SPEC: $crate::parser::Spec = $crate::parser::Spec {
                name: $command,
                about: concat!($($doc),*).trim_ascii_start(),
                args: &[$(
                    $crate::parser::arg!($kind [$($key)*] $type, concat!($($help),*).trim_ascii_start())
                ),*],
            };

            #[allow(unused_variables)]
            pub(crate) fn from_parsed(parsed: &mut $crate::parser::Parsed) -> $name {
                // Struct expressions evaluate their fields in the order written, which is
                // the order of `SPEC.args`.
                $name {
                    $($field: $crate::parser::take!(parsed, $kind $type $(, $default)?),)*
                }
            }
        }
    };
}

/// An enum of subcommands, one variant per [`command!`] struct, in the order help lists
/// them: `subcommands! { pub enum KeyCommand { Add(KeyAddArgs), List(KeyListArgs) } }`.
macro_rules! subcommands {
    (
        $(#[doc = $doc:literal])*
        pub enum $name:ident { $($variant:ident($type:ty)),* $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub enum $name {
            $($variant($type)),*
        }

        impl $name {
            pub(crate) const SPECS: &'static [&'static $crate::parser::Spec] =
                &[$(&<$type>::SPEC),*];

            /// The `which`-th subcommand of [`Self::SPECS`], as the parser chose it.
            #[allow(unused_assignments)]
            pub(crate) fn from_parsed(which: usize, parsed: &mut $crate::parser::Parsed) -> $name {
                let mut at = 0;
                $(
                    if which == at {
                        return $name::$variant(<$type>::from_parsed(parsed));
                    }
                    at += 1;
                )*
                unreachable!("the parser chose one of the subcommands")
            }
        }
    };
}

/// The table entry of one field (for [`command!`]).
macro_rules! arg {
    ($kind:ident [$name:literal] $type:ty, $help:expr) => {
        $crate::parser::arg!($kind ["" $name] $type, $help)
    };
    (greedy ["" $name:literal] $type:ty, $help:expr) => {
        // Help does not list greedy positionals, so their doc stays out of the binary.
        $crate::parser::Arg {
            name: $name,
            short: "",
            kind: $crate::parser::Kind::Greedy,
            help: "",
        }
    };
    (subcommand [] $type:ty, $help:expr) => {
        $crate::parser::Arg {
            name: "",
            short: "",
            kind: $crate::parser::Kind::Subcommands(<$type>::SPECS),
            help: "",
        }
    };
    ($kind:ident [$short:literal $name:literal] $type:ty, $help:expr) => {
        $crate::parser::Arg {
            name: $name,
            short: $short,
            kind: $crate::parser::kind!($kind),
            help: $help,
        }
    };
}

macro_rules! kind {
    (switch) => {
        $crate::parser::Kind::Switch
    };
    (value) => {
        $crate::parser::Kind::Value
    };
    (required) => {
        $crate::parser::Kind::Required
    };
    (number) => {
        $crate::parser::Kind::Number
    };
    (repeated) => {
        $crate::parser::Kind::Repeated
    };
    (positional) => {
        $crate::parser::Kind::Positional
    };
    (optional) => {
        $crate::parser::Kind::Optional
    };
}

/// The conversion of one field (for [`command!`]).
macro_rules! take {
    ($parsed:ident, switch $type:ty) => {
        $parsed.switch()
    };
    ($parsed:ident, number $type:ty, $default:expr) => {
        $crate::parser::Number::from_u64($parsed.number().unwrap_or($default))
    };
    ($parsed:ident, number $type:ty) => {
        $parsed.number()
    };
    ($parsed:ident, repeated $type:ty) => {
        $parsed.take()
    };
    ($parsed:ident, greedy $type:ty) => {
        $parsed.take()
    };
    ($parsed:ident, subcommand $type:ty) => {{
        let (which, mut sub) = $parsed.subcommand();
        <$type>::from_parsed(which, &mut sub)
    }};
    ($parsed:ident, $kind:ident $type:ty) => {
        $parsed.value()
    };
}

pub(crate) use {arg, command, kind, subcommands, take};
