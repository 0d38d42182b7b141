//! The device binary: one static executable that is `init`, `pkg`, `svc`, `poweroff` and
//! `reboot`, chosen by the name it was started as (argv[0]).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let called = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .and_then(|name| name.to_str())
        .unwrap_or("amber")
        .to_owned();
    match called.as_str() {
        "pkg" => amber_pkg::cli::main(args),
        // `amber pkg ...` is the same as `pkg ...`, for when no links exist yet.
        "amber" if args.get(1).is_some_and(|a| a == "pkg") => {
            amber_pkg::cli::main(args.into_iter().skip(1))
        }
        "init" | "svc" | "poweroff" | "reboot" => {
            eprintln!("{called}: not built yet (the boot issue adds init and the supervisor)");
            ExitCode::FAILURE
        }
        _ => {
            eprintln!("amber: unknown command name {called:?}; link this binary as init, pkg, svc, poweroff or reboot");
            ExitCode::from(2)
        }
    }
}
