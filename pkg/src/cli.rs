//! The command line: argh structs that only parse, and `main`, which runs a command and
//! turns its result into one line on stderr and an exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error (DESIGN §6).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;

use crate::error::Error;

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
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Keygen(KeygenArgs),
    Pack(PackArgs),
    Repo(RepoArgs),
}

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
    Index(RepoIndexArgs),
}

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
    /// expiry, in seconds from now (default 30 days)
    #[argh(option)]
    pub expires: Option<u64>,
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
                    eprint!("{}", early.output);
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
    match args.command {
        #[cfg(feature = "host")]
        Command::Keygen(keygen) => crate::keygen::run(&keygen),
        #[cfg(feature = "host")]
        Command::Pack(pack) => crate::pack::run(&pack),
        #[cfg(feature = "host")]
        Command::Repo(RepoArgs {
            command: RepoCommand::Index(index),
        }) => crate::repo_index::run(&index),
        #[cfg(not(feature = "host"))]
        Command::Keygen(_) | Command::Pack(_) | Command::Repo(_) => Err(Error::usage(
            "this command exists only in the host build of pkg",
        )),
    }
}
