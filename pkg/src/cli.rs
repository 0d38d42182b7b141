//! The command line: plain structs that only hold what was parsed, a small table-driven
//! parser filling them, and `main`, which runs a command and turns its result into one
//! line on stderr and an exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error (DESIGN §6).
//!
//! The parser behaves as argh did, messages and help texts included (they were taken
//! from it): options anywhere before the subcommand's name, `--` ending options, `help`
//! and `--help` asking for help, a greedy positional taking the rest. argh's derived
//! parsers took about 20 KB of the device binary; one parser over tables takes a few.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::context::Context;
#[cfg(feature = "host")]
use crate::context::Report;
use crate::error::Error;
use crate::json::Json;

/// The store directory on the device.
pub const DEFAULT_ROOT: &str = "/data/pkg";

/// amber's package manager: signed, immutable SquashFS packages.
#[derive(Debug)]
pub struct Args {
    /// the store directory (default /data/pkg)
    pub root: Option<PathBuf>,
    /// print one JSON document instead of text
    pub json: bool,
    /// fail at once instead of waiting when another pkg command holds the store
    pub no_wait: bool,
    pub command: Command,
}

#[derive(Debug)]
pub enum Command {
    Update(UpdateArgs),
    Add(AddArgs),
    Del(DelArgs),
    List(ListArgs),
    Info(InfoArgs),
    Search(SearchArgs),
    Which(WhichArgs),
    Upgrade(UpgradeArgs),
    Verify(VerifyArgs),
    Gc(GcArgs),
    Rollback(RollbackArgs),
    Key(KeyArgs),
    Repo(RepoArgs),
    Store(StoreArgs),
    Run(RunArgs),
    Keygen(KeygenArgs),
    Pack(PackArgs),
}

/// Fetch and verify the index of every repository.
#[derive(Debug)]
pub struct UpdateArgs {}

/// Install packages: NAME, NAME with a constraint (busybox>=1.36), or ./file.squashfs.
#[derive(Debug)]
pub struct AddArgs {
    /// install local images that no trusted index vouches for
    pub allow_untrusted: bool,
    /// what to install
    pub packages: Vec<String>,
}

/// Remove packages, and the dependencies nothing else needs.
#[derive(Debug)]
pub struct DelArgs {
    /// package names
    pub packages: Vec<String>,
}

/// List the installed packages.
#[derive(Debug)]
pub struct ListArgs {}

/// Show a package (installed, or in a repository), or the exchange-directory conflicts.
#[derive(Debug)]
pub struct InfoArgs {
    /// list the paths several installed packages want in /ro/bin, /ro/lib, ...
    pub conflicts: bool,
    /// the package name
    pub name: Option<String>,
}

/// Find packages whose name or provides contain WORD.
#[derive(Debug)]
pub struct SearchArgs {
    /// the word to look for
    pub word: String,
}

/// Name the installed package that holds PATH (/bin/sh, /ro/bin/sh, bin/sh).
#[derive(Debug)]
pub struct WhichArgs {
    /// the path to look up
    pub path: String,
}

/// Upgrade every installed package to the newest version allowed.
#[derive(Debug)]
pub struct UpgradeArgs {}

/// Hash every image again and compare with what was verified at install.
#[derive(Debug)]
pub struct VerifyArgs {}

/// Remove old generations and the images only they used.
#[derive(Debug)]
pub struct GcArgs {
    /// how many of the newest generations to keep (default 3)
    pub keep: u64,
}

/// Return to the previous generation.
#[derive(Debug)]
pub struct RollbackArgs {}

/// Trusted keys.
#[derive(Debug)]
pub struct KeyArgs {
    pub command: KeyCommand,
}

#[derive(Debug)]
pub enum KeyCommand {
    Add(KeyAddArgs),
    List(KeyListArgs),
    Del(KeyDelArgs),
}

/// Trust a minisign public key file.
#[derive(Debug)]
pub struct KeyAddArgs {
    /// the public key file
    pub file: PathBuf,
}

/// List the trusted keys.
#[derive(Debug)]
pub struct KeyListArgs {}

/// Stop trusting a key.
#[derive(Debug)]
pub struct KeyDelArgs {
    /// the key id, as `pkg key list` shows it
    pub id: String,
}

/// The FUSE package store.
#[derive(Debug)]
pub struct StoreArgs {
    pub command: StoreCommand,
}

#[derive(Debug)]
pub enum StoreCommand {
    Mount(StoreMountArgs),
}

/// Mount the store read-only: /ro/<id>/ for every kept image, and the exchange dirs.
#[derive(Debug)]
pub struct StoreMountArgs {
    /// where to mount it (/ro on the device)
    pub mountpoint: PathBuf,
    /// stay in the foreground (init runs it this way)
    pub foreground: bool,
    /// the most images open at once (default 64)
    pub max_open: usize,
    /// threads serving requests (default 4)
    pub threads: usize,
}

/// Run a command where /ro/bin, /ro/lib, ... show only the named packages' closure.
#[derive(Debug)]
pub struct RunArgs {
    /// a package to include; repeatable
    pub package: Vec<String>,
    /// the command and its arguments (after --)
    pub command: Vec<String>,
}

/// Make a minisign key pair (host).
#[cfg(feature = "host")]
#[derive(Debug)]
pub struct KeygenArgs {
    /// where to write the secret key
    pub secret_key: PathBuf,
    /// where to write the public key
    pub public_key: PathBuf,
    /// overwrite existing key files
    pub force: bool,
}

/// Pack a directory into a package image (host).
#[cfg(feature = "host")]
#[derive(Debug)]
pub struct PackArgs {
    /// the directory holding the package's files
    pub dir: PathBuf,
    /// the image to write
    pub output: PathBuf,
    /// package name
    pub name: String,
    /// whole version, revision included (1.36.1-r2)
    pub version: String,
    /// architecture (x86_64, aarch64, noarch)
    pub arch: String,
    /// a dependency, NAME or NAME with a constraint (musl>=1.2.4); repeatable
    pub dep: Vec<String>,
    /// a name this package also provides; repeatable
    pub provides: Vec<String>,
    /// one-line description
    pub description: String,
    /// license expression
    pub license: String,
    /// the recipe hash recorded in .pkg/meta
    pub recipe_hash: String,
}

/// Repositories.
#[derive(Debug)]
pub struct RepoArgs {
    pub command: RepoCommand,
}

#[derive(Debug)]
pub enum RepoCommand {
    Add(RepoAddArgs),
    List(RepoListArgs),
    Del(RepoDelArgs),
    Index(RepoIndexArgs),
}

/// Add a repository: an http(s):// or file:// URL or a path, with optional mirrors.
#[derive(Debug)]
pub struct RepoAddArgs {
    /// the repository URL
    pub url: String,
    /// a mirror of the same repository, tried in order when the first fails
    pub mirror: Vec<String>,
}

/// List the repositories.
#[derive(Debug)]
pub struct RepoListArgs {}

/// Remove a repository.
#[derive(Debug)]
pub struct RepoDelArgs {
    /// the repository URL, as `pkg repo list` shows it
    pub url: String,
}

/// Write and sign the index of a repository directory (host).
#[cfg(feature = "host")]
#[derive(Debug)]
pub struct RepoIndexArgs {
    /// the repository's architecture directory (<repo>/<arch>)
    pub dir: PathBuf,
    /// the minisign secret key to sign with
    pub secret_key: PathBuf,
    /// the index serial (default: the current time in seconds)
    pub serial: Option<u64>,
    /// when the index expires, in unix seconds (default: 30 days from now)
    pub expires: Option<u64>,
}

// The device build has the host-only commands' names and descriptions, so `pkg --help`
// reads the same everywhere, but not their options: parsing them would only lead to
// the usage error in `run`.

/// Make a minisign key pair (host).
#[cfg(not(feature = "host"))]
#[derive(Debug)]
pub struct KeygenArgs {
    /// the host command's arguments
    pub arguments: Vec<String>,
}

/// Pack a directory into a package image (host).
#[cfg(not(feature = "host"))]
#[derive(Debug)]
pub struct PackArgs {
    /// the host command's arguments
    pub arguments: Vec<String>,
}

/// Write and sign the index of a repository directory (host).
#[cfg(not(feature = "host"))]
#[derive(Debug)]
pub struct RepoIndexArgs {
    /// the host command's arguments
    pub arguments: Vec<String>,
}

/// Parse the command line, run it, and report the outcome as an exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<String> = match args.into_iter().map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(_) => {
            eprintln!("pkg: arguments must be UTF-8");
            return ExitCode::from(2);
        }
    };
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (command, rest) = match strs.split_first() {
        Some((first, rest)) => (*first, rest),
        None => ("pkg", &[][..]),
    };
    let parsed = match parse(&PKG, &[command], rest) {
        Ok(parsed) => Args::from(parsed),
        Err(Early::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(Early::Usage(message)) => {
            // Some messages list names on lines of their own; errors are one line.
            let lines: Vec<&str> = message
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            eprintln!("pkg: {}", lines.join(" "));
            return ExitCode::from(2);
        }
    };
    match run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pkg: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(args: Args) -> Result<(), Error> {
    let context = Context::new(&args);
    let report = match args.command {
        Command::Update(_) => crate::maintain::update(&context),
        Command::Add(add) => crate::install::add(&context, &add.packages, add.allow_untrusted),
        Command::Del(del) => crate::install::del(&context, &del.packages),
        Command::Upgrade(_) => crate::install::upgrade(&context),
        Command::List(_) => crate::query::list(&context),
        Command::Info(info) => match (info.conflicts, info.name) {
            (true, None) => crate::query::conflicts(&context),
            (false, Some(name)) => crate::query::info(&context, &name),
            _ => Err(Error::usage(
                "info: give a package name, or --conflicts alone",
            )),
        },
        Command::Store(StoreArgs {
            command: StoreCommand::Mount(mount),
        }) => crate::mount::mount(
            &context,
            &mount.mountpoint,
            mount.foreground,
            crate::storefs::Options {
                max_open: mount.max_open,
                threads: mount.threads,
                ..crate::storefs::Options::default()
            },
        ),
        Command::Run(run) => crate::run::run(&context, &run.package, &run.command),
        Command::Search(search) => crate::query::search(&context, &search.word),
        Command::Which(which) => crate::query::which(&context, &which.path),
        Command::Verify(_) => crate::maintain::verify(&context),
        Command::Gc(gc) => crate::maintain::gc(&context, gc.keep),
        Command::Rollback(_) => crate::maintain::rollback(&context),
        Command::Key(key) => crate::admin::key(&context, key.command),
        #[cfg(feature = "host")]
        Command::Repo(RepoArgs {
            command: RepoCommand::Index(index),
        }) => crate::repo_index::run(&index).map(|()| Report::empty()),
        #[cfg(feature = "host")]
        Command::Keygen(keygen) => crate::keygen::run(&keygen).map(|()| Report::empty()),
        #[cfg(feature = "host")]
        Command::Pack(pack) => crate::pack::run(&pack).map(|()| Report::empty()),
        #[cfg(not(feature = "host"))]
        Command::Repo(RepoArgs {
            command: RepoCommand::Index(_),
        })
        | Command::Keygen(_)
        | Command::Pack(_) => Err(Error::usage(
            "this command exists only in the host build of pkg",
        )),
        Command::Repo(repo) => crate::admin::repo(&context, repo.command),
    };
    match report {
        Ok(report) => {
            report.print(context.json);
            Ok(())
        }
        Err(error) => {
            if context.json && !context.reported.get() {
                let json = Json::object([
                    ("ok", Json::Bool(false)),
                    ("error", Json::string(error.to_string())),
                ]);
                println!("{}", json.render());
            }
            Err(error)
        }
    }
}

// The parser.

/// What a command accepts: its options, positional arguments and subcommands, in the
/// order their help lists them.
struct Spec {
    name: &'static str,
    /// The help text after `Usage: <command path>`.
    help: &'static str,
    options: &'static [Opt],
    positionals: &'static [Positional],
    subcommands: &'static [&'static Spec],
}

/// An option: `--long`, or `-s` as well.
struct Opt {
    long: &'static str,
    short: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// No value: present or not.
    Switch,
    /// One value, or none.
    Value,
    /// Exactly one value.
    Required,
    /// One unsigned number, or none.
    Number,
    /// Any number of values.
    Repeated,
}

struct Positional {
    name: &'static str,
    required: bool,
    /// Takes every argument left, options included (the last positional only).
    greedy: bool,
}

/// What stops parsing before a command runs.
enum Early {
    /// The help text asked for.
    Help(String),
    /// A usage error.
    Usage(String),
}

/// One command's arguments, in the order of its spec's tables.
struct Parsed {
    spec: &'static Spec,
    /// Per option: its values (a switch gets an empty one each time it is given).
    values: Vec<Vec<String>>,
    /// Per positional: its values.
    positionals: Vec<Vec<String>>,
    subcommand: Option<Box<Parsed>>,
}

const fn switch(long: &'static str) -> Opt {
    Opt {
        long,
        short: "",
        kind: Kind::Switch,
    }
}

const fn option(long: &'static str, kind: Kind) -> Opt {
    Opt {
        long,
        short: "",
        kind,
    }
}

const fn positional(name: &'static str, required: bool, greedy: bool) -> Positional {
    Positional {
        name,
        required,
        greedy,
    }
}

const fn command(name: &'static str, help: &'static str) -> Spec {
    Spec {
        name,
        help,
        options: &[],
        positionals: &[],
        subcommands: &[],
    }
}

/// Parse `args`, the arguments after the command path `path`, by `spec`.
fn parse(spec: &'static Spec, path: &[&str], args: &[&str]) -> Result<Parsed, Early> {
    let usage = |message: String| Err(Early::Usage(message));
    let mut parsed = Parsed {
        spec,
        values: spec.options.iter().map(|_| Vec::new()).collect(),
        positionals: spec.positionals.iter().map(|_| Vec::new()).collect(),
        subcommand: None,
    };
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
                .options
                .iter()
                .position(|o| o.long == arg || o.short == arg)
            else {
                return usage(format!("Unrecognized argument: {arg}\n"));
            };
            let kind = spec.options[at].kind;
            if kind == Kind::Switch {
                parsed.values[at].push(String::new());
                continue;
            }
            let Some((&value, after)) = rest.split_first() else {
                return usage(format!("No value provided for option '{arg}'.\n"));
            };
            rest = after;
            let problem = if kind != Kind::Repeated && !parsed.values[at].is_empty() {
                Some("duplicate values provided".to_owned())
            } else if kind == Kind::Number {
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
        if let Some(sub) = spec.subcommands.iter().find(|s| s.name == arg) {
            let mut sub_path = path.to_vec();
            sub_path.push(sub.name);
            // Help asked for before the subcommand is the subcommand's help.
            let sub_args: Vec<&str> = help
                .then_some("help")
                .into_iter()
                .chain(rest.iter().copied())
                .collect();
            parsed.subcommand = Some(Box::new(parse(sub, &sub_path, &sub_args)?));
            help = false;
            break;
        }
        let Some(slot) = spec.positionals.get(index) else {
            return usage(format!("Unrecognized argument: {arg}\n"));
        };
        parsed.positionals[index].push(arg.to_owned());
        if slot.greedy {
            options_ended = true;
        } else {
            index += 1;
        }
    }
    if help {
        return Err(Early::Help(format!(
            "Usage: {}{}",
            path.join(" "),
            spec.help
        )));
    }
    missing(&parsed).map_or(Ok(parsed), usage)
}

/// The message naming what a command lacks, as argh words it; None when nothing.
fn missing(parsed: &Parsed) -> Option<String> {
    let spec = parsed.spec;
    let positionals: Vec<&str> = spec
        .positionals
        .iter()
        .zip(&parsed.positionals)
        .filter(|(p, values)| p.required && values.is_empty())
        .map(|(p, _)| p.name)
        .collect();
    let options: Vec<&str> = spec
        .options
        .iter()
        .zip(&parsed.values)
        .filter(|(o, values)| o.kind == Kind::Required && values.is_empty())
        .map(|(o, _)| o.long)
        .collect();
    let subcommand = !spec.subcommands.is_empty() && parsed.subcommand.is_none();
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
        for sub in spec.subcommands {
            out.push_str("\n    ");
            out.push_str(sub.name);
        }
    }
    out.push('\n');
    Some(out)
}

impl Parsed {
    fn values(&mut self, long: &str) -> Vec<String> {
        let at = self.spec.options.iter().position(|o| o.long == long);
        at.map(|at| std::mem::take(&mut self.values[at]))
            .unwrap_or_default()
    }

    fn switch(&mut self, long: &str) -> bool {
        !self.values(long).is_empty()
    }

    fn value(&mut self, long: &str) -> Option<String> {
        self.values(long).pop()
    }

    /// A number option's value; the parser checked that it is one.
    fn number(&mut self, long: &str) -> Option<u64> {
        self.value(long).and_then(|value| value.parse().ok())
    }

    #[cfg(feature = "host")]
    fn path(&mut self, long: &str) -> PathBuf {
        self.value(long).unwrap_or_default().into()
    }

    /// All values of the positional at `index`.
    fn rest(&mut self, index: usize) -> Vec<String> {
        std::mem::take(&mut self.positionals[index])
    }

    /// The value of the positional at `index`; required ones were checked.
    fn positional(&mut self, index: usize) -> Option<String> {
        self.rest(index).pop()
    }

    fn subcommand(&mut self) -> (&'static str, Parsed) {
        let sub = self
            .subcommand
            .take()
            .expect("the parser checked the subcommand");
        (sub.spec.name, *sub)
    }
}

impl From<Parsed> for Args {
    fn from(mut parsed: Parsed) -> Args {
        let (name, mut sub) = parsed.subcommand();
        let command = match name {
            "update" => Command::Update(UpdateArgs {}),
            "add" => Command::Add(AddArgs {
                allow_untrusted: sub.switch("--allow-untrusted"),
                packages: sub.rest(0),
            }),
            "del" => Command::Del(DelArgs {
                packages: sub.rest(0),
            }),
            "list" => Command::List(ListArgs {}),
            "info" => Command::Info(InfoArgs {
                conflicts: sub.switch("--conflicts"),
                name: sub.positional(0),
            }),
            "search" => Command::Search(SearchArgs {
                word: sub.positional(0).unwrap_or_default(),
            }),
            "which" => Command::Which(WhichArgs {
                path: sub.positional(0).unwrap_or_default(),
            }),
            "upgrade" => Command::Upgrade(UpgradeArgs {}),
            "verify" => Command::Verify(VerifyArgs {}),
            "gc" => Command::Gc(GcArgs {
                keep: sub.number("--keep").unwrap_or(3),
            }),
            "rollback" => Command::Rollback(RollbackArgs {}),
            "key" => {
                let (name, mut key) = sub.subcommand();
                Command::Key(KeyArgs {
                    command: match name {
                        "add" => KeyCommand::Add(KeyAddArgs {
                            file: key.positional(0).unwrap_or_default().into(),
                        }),
                        "list" => KeyCommand::List(KeyListArgs {}),
                        _ => KeyCommand::Del(KeyDelArgs {
                            id: key.positional(0).unwrap_or_default(),
                        }),
                    },
                })
            }
            "repo" => {
                let (name, mut repo) = sub.subcommand();
                Command::Repo(RepoArgs {
                    command: match name {
                        "add" => RepoCommand::Add(RepoAddArgs {
                            url: repo.positional(0).unwrap_or_default(),
                            mirror: repo.values("--mirror"),
                        }),
                        "list" => RepoCommand::List(RepoListArgs {}),
                        "del" => RepoCommand::Del(RepoDelArgs {
                            url: repo.positional(0).unwrap_or_default(),
                        }),
                        _ => RepoCommand::Index(repo_index_args(&mut repo)),
                    },
                })
            }
            "store" => {
                let (_, mut mount) = sub.subcommand();
                Command::Store(StoreArgs {
                    command: StoreCommand::Mount(StoreMountArgs {
                        mountpoint: mount.positional(0).unwrap_or_default().into(),
                        foreground: mount.switch("--foreground"),
                        max_open: mount.number("--max-open").unwrap_or(64) as usize,
                        threads: mount.number("--threads").unwrap_or(4) as usize,
                    }),
                })
            }
            "run" => Command::Run(RunArgs {
                package: sub.values("--package"),
                command: sub.rest(0),
            }),
            "keygen" => Command::Keygen(keygen_args(&mut sub)),
            _ => Command::Pack(pack_args(&mut sub)),
        };
        Args {
            root: parsed.value("--root").map(PathBuf::from),
            json: parsed.switch("--json"),
            no_wait: parsed.switch("--no-wait"),
            command,
        }
    }
}

#[cfg(feature = "host")]
fn keygen_args(parsed: &mut Parsed) -> KeygenArgs {
    KeygenArgs {
        secret_key: parsed.path("--secret-key"),
        public_key: parsed.path("--public-key"),
        force: parsed.switch("--force"),
    }
}

#[cfg(feature = "host")]
fn pack_args(parsed: &mut Parsed) -> PackArgs {
    PackArgs {
        dir: parsed.positional(0).unwrap_or_default().into(),
        output: parsed.path("--output"),
        name: parsed.value("--name").unwrap_or_default(),
        version: parsed.value("--version").unwrap_or_default(),
        arch: parsed.value("--arch").unwrap_or_default(),
        dep: parsed.values("--dep"),
        provides: parsed.values("--provides"),
        description: parsed.value("--description").unwrap_or_default(),
        license: parsed.value("--license").unwrap_or_default(),
        recipe_hash: parsed.value("--recipe-hash").unwrap_or_default(),
    }
}

#[cfg(feature = "host")]
fn repo_index_args(parsed: &mut Parsed) -> RepoIndexArgs {
    RepoIndexArgs {
        dir: parsed.positional(0).unwrap_or_default().into(),
        secret_key: parsed.path("--secret-key"),
        serial: parsed.number("--serial"),
        expires: parsed.number("--expires"),
    }
}

#[cfg(not(feature = "host"))]
fn keygen_args(parsed: &mut Parsed) -> KeygenArgs {
    KeygenArgs {
        arguments: parsed.rest(0),
    }
}

#[cfg(not(feature = "host"))]
fn pack_args(parsed: &mut Parsed) -> PackArgs {
    PackArgs {
        arguments: parsed.rest(0),
    }
}

#[cfg(not(feature = "host"))]
fn repo_index_args(parsed: &mut Parsed) -> RepoIndexArgs {
    RepoIndexArgs {
        arguments: parsed.rest(0),
    }
}

// The commands. Help texts are argh's, word for word: 80 columns, descriptions from
// column 21.

static PKG: Spec = Spec {
    options: &[
        option("--root", Kind::Value),
        switch("--json"),
        switch("--no-wait"),
    ],
    subcommands: &[
        &UPDATE, &ADD, &DEL, &LIST, &INFO, &SEARCH, &WHICH, &UPGRADE, &VERIFY, &GC, &ROLLBACK,
        &KEY, &REPO, &STORE, &RUN, &KEYGEN, &PACK,
    ],
    ..command("pkg", PKG_HELP)
};
static UPDATE: Spec = command("update", UPDATE_HELP);
static ADD: Spec = Spec {
    options: &[switch("--allow-untrusted")],
    positionals: &[positional("packages", false, true)],
    ..command("add", ADD_HELP)
};
static DEL: Spec = Spec {
    positionals: &[positional("packages", false, true)],
    ..command("del", DEL_HELP)
};
static LIST: Spec = command("list", LIST_HELP);
static INFO: Spec = Spec {
    options: &[switch("--conflicts")],
    positionals: &[positional("name", false, false)],
    ..command("info", INFO_HELP)
};
static SEARCH: Spec = Spec {
    positionals: &[positional("word", true, false)],
    ..command("search", SEARCH_HELP)
};
static WHICH: Spec = Spec {
    positionals: &[positional("path", true, false)],
    ..command("which", WHICH_HELP)
};
static UPGRADE: Spec = command("upgrade", UPGRADE_HELP);
static VERIFY: Spec = command("verify", VERIFY_HELP);
static GC: Spec = Spec {
    options: &[option("--keep", Kind::Number)],
    ..command("gc", GC_HELP)
};
static ROLLBACK: Spec = command("rollback", ROLLBACK_HELP);
static KEY: Spec = Spec {
    subcommands: &[&KEY_ADD, &KEY_LIST, &KEY_DEL],
    ..command("key", KEY_HELP)
};
static KEY_ADD: Spec = Spec {
    positionals: &[positional("file", true, false)],
    ..command("add", KEY_ADD_HELP)
};
static KEY_LIST: Spec = command("list", KEY_LIST_HELP);
static KEY_DEL: Spec = Spec {
    positionals: &[positional("id", true, false)],
    ..command("del", KEY_DEL_HELP)
};
static REPO: Spec = Spec {
    subcommands: &[&REPO_ADD, &REPO_LIST, &REPO_DEL, &REPO_INDEX],
    ..command("repo", REPO_HELP)
};
static REPO_ADD: Spec = Spec {
    options: &[option("--mirror", Kind::Repeated)],
    positionals: &[positional("url", true, false)],
    ..command("add", REPO_ADD_HELP)
};
static REPO_LIST: Spec = command("list", REPO_LIST_HELP);
static REPO_DEL: Spec = Spec {
    positionals: &[positional("url", true, false)],
    ..command("del", REPO_DEL_HELP)
};
static STORE: Spec = Spec {
    subcommands: &[&STORE_MOUNT],
    ..command("store", STORE_HELP)
};
static STORE_MOUNT: Spec = Spec {
    options: &[
        switch("--foreground"),
        option("--max-open", Kind::Number),
        option("--threads", Kind::Number),
    ],
    positionals: &[positional("mountpoint", true, false)],
    ..command("mount", STORE_MOUNT_HELP)
};
static RUN: Spec = Spec {
    options: &[Opt {
        long: "--package",
        short: "-p",
        kind: Kind::Repeated,
    }],
    positionals: &[positional("command", false, true)],
    ..command("run", RUN_HELP)
};

#[cfg(feature = "host")]
static KEYGEN: Spec = Spec {
    options: &[
        option("--secret-key", Kind::Required),
        option("--public-key", Kind::Required),
        switch("--force"),
    ],
    ..command("keygen", KEYGEN_HELP)
};
#[cfg(feature = "host")]
static PACK: Spec = Spec {
    options: &[
        Opt {
            long: "--output",
            short: "-o",
            kind: Kind::Required,
        },
        option("--name", Kind::Required),
        option("--version", Kind::Required),
        option("--arch", Kind::Required),
        option("--dep", Kind::Repeated),
        option("--provides", Kind::Repeated),
        option("--description", Kind::Value),
        option("--license", Kind::Value),
        option("--recipe-hash", Kind::Value),
    ],
    positionals: &[positional("dir", true, false)],
    ..command("pack", PACK_HELP)
};
#[cfg(feature = "host")]
static REPO_INDEX: Spec = Spec {
    options: &[
        option("--secret-key", Kind::Required),
        option("--serial", Kind::Number),
        option("--expires", Kind::Number),
    ],
    positionals: &[positional("dir", true, false)],
    ..command("index", REPO_INDEX_HELP)
};

#[cfg(not(feature = "host"))]
static KEYGEN: Spec = Spec {
    positionals: &[positional("arguments", false, true)],
    ..command("keygen", KEYGEN_HELP)
};
#[cfg(not(feature = "host"))]
static PACK: Spec = Spec {
    positionals: &[positional("arguments", false, true)],
    ..command("pack", PACK_HELP)
};
#[cfg(not(feature = "host"))]
static REPO_INDEX: Spec = Spec {
    positionals: &[positional("arguments", false, true)],
    ..command("index", REPO_INDEX_HELP)
};

const PKG_HELP: &str = " [--root <root>] [--json] [--no-wait] <command> [<args>]

amber's package manager: signed, immutable SquashFS packages.

Options:
  --root            the store directory (default /data/pkg)
  --json            print one JSON document instead of text
  --no-wait         fail at once instead of waiting when another pkg command
                    holds the store
  --help, help      display usage information

Commands:
  update            Fetch and verify the index of every repository.
  add               Install packages: NAME, NAME with a constraint
                    (busybox>=1.36), or ./file.squashfs.
  del               Remove packages, and the dependencies nothing else needs.
  list              List the installed packages.
  info              Show a package (installed, or in a repository), or the
                    exchange-directory conflicts.
  search            Find packages whose name or provides contain WORD.
  which             Name the installed package that holds PATH (/bin/sh,
                    /ro/bin/sh, bin/sh).
  upgrade           Upgrade every installed package to the newest version
                    allowed.
  verify            Hash every image again and compare with what was verified at
                    install.
  gc                Remove old generations and the images only they used.
  rollback          Return to the previous generation.
  key               Trusted keys.
  repo              Repositories.
  store             The FUSE package store.
  run               Run a command where /ro/bin, /ro/lib, ... show only the
                    named packages' closure.
  keygen            Make a minisign key pair (host).
  pack              Pack a directory into a package image (host).
";
const UPDATE_HELP: &str = "

Fetch and verify the index of every repository.

Options:
  --help, help      display usage information
";
const ADD_HELP: &str = " [--allow-untrusted] [packages...]

Install packages: NAME, NAME with a constraint (busybox>=1.36), or ./file.squashfs.

Options:
  --allow-untrusted install local images that no trusted index vouches for
  --help, help      display usage information
";
const DEL_HELP: &str = " [packages...]

Remove packages, and the dependencies nothing else needs.

Options:
  --help, help      display usage information
";
const LIST_HELP: &str = "

List the installed packages.

Options:
  --help, help      display usage information
";
const INFO_HELP: &str = " [--conflicts] [--] [<name>]

Show a package (installed, or in a repository), or the exchange-directory conflicts.

Positional Arguments:
  name              the package name

Options:
  --conflicts       list the paths several installed packages want in /ro/bin,
                    /ro/lib, ...
  --help, help      display usage information
";
const SEARCH_HELP: &str = " [--] <word>

Find packages whose name or provides contain WORD.

Positional Arguments:
  word              the word to look for

Options:
  --help, help      display usage information
";
const WHICH_HELP: &str = " [--] <path>

Name the installed package that holds PATH (/bin/sh, /ro/bin/sh, bin/sh).

Positional Arguments:
  path              the path to look up

Options:
  --help, help      display usage information
";
const UPGRADE_HELP: &str = "

Upgrade every installed package to the newest version allowed.

Options:
  --help, help      display usage information
";
const VERIFY_HELP: &str = "

Hash every image again and compare with what was verified at install.

Options:
  --help, help      display usage information
";
const GC_HELP: &str = " [--keep <keep>]

Remove old generations and the images only they used.

Options:
  --keep            how many of the newest generations to keep (default 3)
  --help, help      display usage information
";
const ROLLBACK_HELP: &str = "

Return to the previous generation.

Options:
  --help, help      display usage information
";
const KEY_HELP: &str = " <command> [<args>]

Trusted keys.

Options:
  --help, help      display usage information

Commands:
  add               Trust a minisign public key file.
  list              List the trusted keys.
  del               Stop trusting a key.
";
const KEY_ADD_HELP: &str = " [--] <file>

Trust a minisign public key file.

Positional Arguments:
  file              the public key file

Options:
  --help, help      display usage information
";
const KEY_LIST_HELP: &str = "

List the trusted keys.

Options:
  --help, help      display usage information
";
const KEY_DEL_HELP: &str = " [--] <id>

Stop trusting a key.

Positional Arguments:
  id                the key id, as `pkg key list` shows it

Options:
  --help, help      display usage information
";
const REPO_HELP: &str = " <command> [<args>]

Repositories.

Options:
  --help, help      display usage information

Commands:
  add               Add a repository: an http(s):// or file:// URL or a path,
                    with optional mirrors.
  list              List the repositories.
  del               Remove a repository.
  index             Write and sign the index of a repository directory (host).
";
const REPO_ADD_HELP: &str = " [--mirror <mirror...>] [--] <url>

Add a repository: an http(s):// or file:// URL or a path, with optional mirrors.

Positional Arguments:
  url               the repository URL

Options:
  --mirror          a mirror of the same repository, tried in order when the
                    first fails
  --help, help      display usage information
";
const REPO_LIST_HELP: &str = "

List the repositories.

Options:
  --help, help      display usage information
";
const REPO_DEL_HELP: &str = " [--] <url>

Remove a repository.

Positional Arguments:
  url               the repository URL, as `pkg repo list` shows it

Options:
  --help, help      display usage information
";
#[cfg(feature = "host")]
const REPO_INDEX_HELP: &str =
    " --secret-key <secret-key> [--serial <serial>] [--expires <expires>] [--] <dir>

Write and sign the index of a repository directory (host).

Positional Arguments:
  dir               the repository's architecture directory (<repo>/<arch>)

Options:
  --secret-key      the minisign secret key to sign with
  --serial          the index serial (default: the current time in seconds)
  --expires         when the index expires, in unix seconds (default: 30 days
                    from now)
  --help, help      display usage information
";
#[cfg(not(feature = "host"))]
const REPO_INDEX_HELP: &str = " [arguments...]

Write and sign the index of a repository directory (host).

Options:
  --help, help      display usage information
";
const STORE_HELP: &str = " <command> [<args>]

The FUSE package store.

Options:
  --help, help      display usage information

Commands:
  mount             Mount the store read-only: /ro/<id>/ for every kept image,
                    and the exchange dirs.
";
const STORE_MOUNT_HELP: &str =
    " [--foreground] [--max-open <max-open>] [--threads <threads>] [--] <mountpoint>

Mount the store read-only: /ro/<id>/ for every kept image, and the exchange dirs.

Positional Arguments:
  mountpoint        where to mount it (/ro on the device)

Options:
  --foreground      stay in the foreground (init runs it this way)
  --max-open        the most images open at once (default 64)
  --threads         threads serving requests (default 4)
  --help, help      display usage information
";
const RUN_HELP: &str = " [-p <package...>] [command...]

Run a command where /ro/bin, /ro/lib, ... show only the named packages' closure.

Options:
  -p, --package     a package to include; repeatable
  --help, help      display usage information
";
#[cfg(feature = "host")]
const KEYGEN_HELP: &str = " --secret-key <secret-key> --public-key <public-key> [--force]

Make a minisign key pair (host).

Options:
  --secret-key      where to write the secret key
  --public-key      where to write the public key
  --force           overwrite existing key files
  --help, help      display usage information
";
#[cfg(not(feature = "host"))]
const KEYGEN_HELP: &str = " [arguments...]

Make a minisign key pair (host).

Options:
  --help, help      display usage information
";
#[cfg(feature = "host")]
const PACK_HELP: &str = " -o <output> --name <name> --version <version> --arch <arch> [--dep <dep...>] [--provides <provides...>] [--description <description>] [--license <license>] [--recipe-hash <recipe-hash>] [--] <dir>

Pack a directory into a package image (host).

Positional Arguments:
  dir               the directory holding the package's files

Options:
  -o, --output      the image to write
  --name            package name
  --version         whole version, revision included (1.36.1-r2)
  --arch            architecture (x86_64, aarch64, noarch)
  --dep             a dependency, NAME or NAME with a constraint (musl>=1.2.4);
                    repeatable
  --provides        a name this package also provides; repeatable
  --description     one-line description
  --license         license expression
  --recipe-hash     the recipe hash recorded in .pkg/meta
  --help, help      display usage information
";
#[cfg(not(feature = "host"))]
const PACK_HELP: &str = " [arguments...]

Pack a directory into a package image (host).

Options:
  --help, help      display usage information
";
