//! The command line: argh structs that only parse, and `main`, which runs a command and
//! turns its result into one line on stderr and an exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error (DESIGN §6).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;

use crate::context::Context;
#[cfg(feature = "host")]
use crate::context::Report;
use crate::error::Error;
use crate::json::Json;

/// The store directory on the device.
pub const DEFAULT_ROOT: &str = "/data/pkg";

#[derive(FromArgs, Debug)]
/// amber's package manager: signed, immutable SquashFS packages.
pub struct Args {
    /// the store directory (default /data/pkg)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// print one JSON document instead of text
    #[argh(switch)]
    pub json: bool,
    /// fail at once instead of waiting when another pkg command holds the store
    #[argh(switch)]
    pub no_wait: bool,
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
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

#[derive(FromArgs, Debug)]
/// Fetch and verify the index of every repository.
#[argh(subcommand, name = "update")]
pub struct UpdateArgs {}

#[derive(FromArgs, Debug)]
/// Install packages: NAME, NAME with a constraint (busybox>=1.36), or ./file.squashfs.
#[argh(subcommand, name = "add")]
pub struct AddArgs {
    /// install local images that no trusted index vouches for
    #[argh(switch)]
    pub allow_untrusted: bool,
    /// what to install
    #[argh(positional, greedy)]
    pub packages: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// Remove packages, and the dependencies nothing else needs.
#[argh(subcommand, name = "del")]
pub struct DelArgs {
    /// package names
    #[argh(positional, greedy)]
    pub packages: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// List the installed packages.
#[argh(subcommand, name = "list")]
pub struct ListArgs {}

#[derive(FromArgs, Debug)]
/// Show a package (installed, or in a repository), or the exchange-directory conflicts.
#[argh(subcommand, name = "info")]
pub struct InfoArgs {
    /// list the paths several installed packages want in /ro/bin, /ro/lib, ...
    #[argh(switch)]
    pub conflicts: bool,
    /// the package name
    #[argh(positional)]
    pub name: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Find packages whose name or provides contain WORD.
#[argh(subcommand, name = "search")]
pub struct SearchArgs {
    /// the word to look for
    #[argh(positional)]
    pub word: String,
}

#[derive(FromArgs, Debug)]
/// Name the installed package that holds PATH (/bin/sh, /ro/bin/sh, bin/sh).
#[argh(subcommand, name = "which")]
pub struct WhichArgs {
    /// the path to look up
    #[argh(positional)]
    pub path: String,
}

#[derive(FromArgs, Debug)]
/// Upgrade every installed package to the newest version allowed.
#[argh(subcommand, name = "upgrade")]
pub struct UpgradeArgs {}

#[derive(FromArgs, Debug)]
/// Hash every image again and compare with what was verified at install.
#[argh(subcommand, name = "verify")]
pub struct VerifyArgs {}

#[derive(FromArgs, Debug)]
/// Remove old generations and the images only they used.
#[argh(subcommand, name = "gc")]
pub struct GcArgs {
    /// how many of the newest generations to keep (default 3)
    #[argh(option, default = "3")]
    pub keep: u64,
}

#[derive(FromArgs, Debug)]
/// Return to the previous generation.
#[argh(subcommand, name = "rollback")]
pub struct RollbackArgs {}

#[derive(FromArgs, Debug)]
/// Trusted keys.
#[argh(subcommand, name = "key")]
pub struct KeyArgs {
    #[argh(subcommand)]
    pub command: KeyCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum KeyCommand {
    Add(KeyAddArgs),
    List(KeyListArgs),
    Del(KeyDelArgs),
}

#[derive(FromArgs, Debug)]
/// Trust a minisign public key file.
#[argh(subcommand, name = "add")]
pub struct KeyAddArgs {
    /// the public key file
    #[argh(positional)]
    pub file: PathBuf,
}

#[derive(FromArgs, Debug)]
/// List the trusted keys.
#[argh(subcommand, name = "list")]
pub struct KeyListArgs {}

#[derive(FromArgs, Debug)]
/// Stop trusting a key.
#[argh(subcommand, name = "del")]
pub struct KeyDelArgs {
    /// the key id, as `pkg key list` shows it
    #[argh(positional)]
    pub id: String,
}

#[derive(FromArgs, Debug)]
/// The FUSE package store.
#[argh(subcommand, name = "store")]
pub struct StoreArgs {
    #[argh(subcommand)]
    pub command: StoreCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum StoreCommand {
    Mount(StoreMountArgs),
}

#[derive(FromArgs, Debug)]
/// Mount the store read-only: /ro/<id>/ for every kept image, and the exchange dirs.
#[argh(subcommand, name = "mount")]
pub struct StoreMountArgs {
    /// where to mount it (/ro on the device)
    #[argh(positional)]
    pub mountpoint: PathBuf,
    /// stay in the foreground (init runs it this way)
    #[argh(switch)]
    pub foreground: bool,
    /// the most images open at once (default 64)
    #[argh(option, default = "64")]
    pub max_open: usize,
    /// threads serving requests (default 4)
    #[argh(option, default = "4")]
    pub threads: usize,
}

#[derive(FromArgs, Debug)]
/// Run a command where /ro/bin, /ro/lib, ... show only the named packages' closure.
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// a package to include; repeatable
    #[argh(option, short = 'p')]
    pub package: Vec<String>,
    /// the command and its arguments (after --)
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

#[cfg(feature = "host")]
#[derive(FromArgs, Debug)]
/// Make a minisign key pair (host).
#[argh(subcommand, name = "keygen")]
pub struct KeygenArgs {
    /// where to write the secret key
    #[argh(option)]
    pub secret_key: PathBuf,
    /// where to write the public key
    #[argh(option)]
    pub public_key: PathBuf,
    /// overwrite existing key files
    #[argh(switch)]
    pub force: bool,
}

#[cfg(feature = "host")]
#[derive(FromArgs, Debug)]
/// Pack a directory into a package image (host).
#[argh(subcommand, name = "pack")]
pub struct PackArgs {
    /// the directory holding the package's files
    #[argh(positional)]
    pub dir: PathBuf,
    /// the image to write
    #[argh(option, short = 'o')]
    pub output: PathBuf,
    /// package name
    #[argh(option)]
    pub name: String,
    /// whole version, revision included (1.36.1-r2)
    #[argh(option)]
    pub version: String,
    /// architecture (x86_64, aarch64, noarch)
    #[argh(option)]
    pub arch: String,
    /// a dependency, NAME or NAME with a constraint (musl>=1.2.4); repeatable
    #[argh(option)]
    pub dep: Vec<String>,
    /// a name this package also provides; repeatable
    #[argh(option)]
    pub provides: Vec<String>,
    /// one-line description
    #[argh(option, default = "String::new()")]
    pub description: String,
    /// license expression
    #[argh(option, default = "String::new()")]
    pub license: String,
    /// the recipe hash recorded in .pkg/meta
    #[argh(option, default = "String::new()")]
    pub recipe_hash: String,
}

#[derive(FromArgs, Debug)]
/// Repositories.
#[argh(subcommand, name = "repo")]
pub struct RepoArgs {
    #[argh(subcommand)]
    pub command: RepoCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum RepoCommand {
    Add(RepoAddArgs),
    List(RepoListArgs),
    Del(RepoDelArgs),
    Index(RepoIndexArgs),
}

#[derive(FromArgs, Debug)]
/// Add a repository: an http(s):// or file:// URL or a path, with optional mirrors.
#[argh(subcommand, name = "add")]
pub struct RepoAddArgs {
    /// the repository URL
    #[argh(positional)]
    pub url: String,
    /// a mirror of the same repository, tried in order when the first fails
    #[argh(option)]
    pub mirror: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// List the repositories.
#[argh(subcommand, name = "list")]
pub struct RepoListArgs {}

#[derive(FromArgs, Debug)]
/// Remove a repository.
#[argh(subcommand, name = "del")]
pub struct RepoDelArgs {
    /// the repository URL, as `pkg repo list` shows it
    #[argh(positional)]
    pub url: String,
}

#[cfg(feature = "host")]
#[derive(FromArgs, Debug)]
/// Write and sign the index of a repository directory (host).
#[argh(subcommand, name = "index")]
pub struct RepoIndexArgs {
    /// the repository's architecture directory (<repo>/<arch>)
    #[argh(positional)]
    pub dir: PathBuf,
    /// the minisign secret key to sign with
    #[argh(option)]
    pub secret_key: PathBuf,
    /// the index serial (default: the current time in seconds)
    #[argh(option)]
    pub serial: Option<u64>,
    /// when the index expires, in unix seconds (default: 30 days from now)
    #[argh(option)]
    pub expires: Option<u64>,
}

// The device build has the host-only commands' names and descriptions, so `pkg --help`
// reads the same everywhere, but not their options: parsing them would only lead to
// the usage error below (and costs the device binary about 3 KB).

#[cfg(not(feature = "host"))]
#[derive(FromArgs, Debug)]
/// Make a minisign key pair (host).
#[argh(subcommand, name = "keygen")]
pub struct KeygenArgs {
    /// the host command's arguments
    #[argh(positional, greedy)]
    pub arguments: Vec<String>,
}

#[cfg(not(feature = "host"))]
#[derive(FromArgs, Debug)]
/// Pack a directory into a package image (host).
#[argh(subcommand, name = "pack")]
pub struct PackArgs {
    /// the host command's arguments
    #[argh(positional, greedy)]
    pub arguments: Vec<String>,
}

#[cfg(not(feature = "host"))]
#[derive(FromArgs, Debug)]
/// Write and sign the index of a repository directory (host).
#[argh(subcommand, name = "index")]
pub struct RepoIndexArgs {
    /// the host command's arguments
    #[argh(positional, greedy)]
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
    let parsed = match Args::from_args(&[command], rest) {
        Ok(parsed) => parsed,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    // argh spreads some messages over several lines; errors are one line.
                    let lines: Vec<&str> = early
                        .output
                        .lines()
                        .map(str::trim)
                        .filter(|line| !line.is_empty())
                        .collect();
                    eprintln!("pkg: {}", lines.join(" "));
                    ExitCode::from(2)
                }
            };
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
