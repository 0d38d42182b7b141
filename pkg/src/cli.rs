//! `pkg`'s `main`: parse the command line by the descriptions in `args.rs`, run the
//! command, and turn its result into one line on stderr and an exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error (DESIGN §6).

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::process::ExitCode;

use crate::args::{
    Args, Command, RepoArgs, RepoCommand, StoreArgs, StoreCommand, SystemArgs, SystemCommand,
};
use crate::context::{Context, Report};
use crate::error::{Context as _, Error};
use crate::json::Json;
use crate::parser::{parse, Early};
use crate::stdout;

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
    let result = match parse(&Args::SPEC, &[command], rest) {
        Ok(mut parsed) => run(Args::from_parsed(&mut parsed)),
        Err(Early::Help(mut text)) => {
            text.push('\n');
            stdout::write(&text).context("stdout")
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
    match result {
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
        }) => store_mount(&context, &mount),
        Command::Run(run) => crate::run::run(&context, &run.package, &run.command),
        Command::System(SystemArgs { command }) => match command {
            SystemCommand::Status(_) => crate::system::status(&context),
            SystemCommand::Upgrade(upgrade) => crate::system::upgrade(
                &context,
                &crate::system::Upgrade {
                    reboot: upgrade.reboot,
                    now: upgrade.now,
                    allow_downgrade: upgrade.allow_downgrade,
                },
            ),
            SystemCommand::Rollback(_) => crate::system::rollback(&context),
            SystemCommand::MarkGood(_) => crate::system::mark_good(&context),
            SystemCommand::MarkBad(_) => crate::system::mark_bad(&context),
        },
        Command::Search(search) => crate::query::search(&context, &search.word),
        Command::Which(which) => crate::query::which(&context, &which.path),
        Command::Prefer(prefer) => {
            crate::install::prefer(&context, &prefer.name, &prefer.path, prefer.forget)
        }
        Command::Verify(_) => crate::maintain::verify(&context),
        Command::Gc(gc) => crate::maintain::gc(&context, gc.keep),
        Command::Rollback(_) => crate::maintain::rollback(&context),
        Command::Key(key) => crate::admin::key(&context, key.command),
        #[cfg(feature = "host")]
        Command::Repo(RepoArgs {
            command: RepoCommand::Index(index),
        }) => crate::repo_index::run(&index),
        #[cfg(feature = "host")]
        Command::Keygen(keygen) => crate::keygen::run(&keygen),
        #[cfg(feature = "host")]
        Command::Pack(pack) => crate::pack::run(&pack),
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
        Ok(report) => report.print(context.json),
        Err(error) => {
            if context.json && !context.reported.get() {
                let json = Json::object([
                    ("ok", Json::Bool(false)),
                    ("error", Json::string(error.to_string())),
                ]);
                // The error line follows on stderr whatever becomes of this one.
                let _ = stdout::write(&format!("{}\n", json.render()));
            }
            Err(error)
        }
    }
}

/// `pkg store mount`: run the store (amber-store), and report where it went.
fn store_mount(context: &Context, mount: &crate::args::StoreMountArgs) -> Result<Report, Error> {
    let options = amber_store::Options {
        max_open: mount.max_open,
        threads: mount.threads,
        ..amber_store::Options::default()
    };
    let mounted = crate::mount::mount(&context.root, &mount.mountpoint, mount.foreground, options)?;
    Ok(match mounted {
        None => Report::empty(),
        Some(mounted) => Report::new(
            format!(
                "store mounted on {} (pid {})\n",
                mounted.mountpoint.display(),
                mounted.pid
            ),
            Json::object([
                ("ok", Json::Bool(true)),
                (
                    "mountpoint",
                    Json::string(mounted.mountpoint.display().to_string()),
                ),
                ("pid", Json::Number(u64::from(mounted.pid))),
            ]),
        ),
    })
}
