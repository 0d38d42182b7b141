//! The device binary: one static executable that is `init`, `pkg`, `svc`, `net`,
//! `poweroff`, `reboot` and `modprobe`, chosen by the name it was started as (argv[0]).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Print one `amber: ...` line on the console (init's standard output).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say(format_args!($($arg)*))
    };
}

mod cgroup;
mod cmdline;
mod console;
mod control;
mod dhcp;
mod disk;
mod dns;
mod health;
mod init;
mod log;
mod modules;
mod mounts;
mod netconfig;
mod netctl;
mod netd;
mod output;
mod privilege;
mod service;
mod shutdown;
mod sntp;
mod status;
mod supervisor;
mod sys;
mod users;
mod watchdog;

/// Whole milliseconds, as u64: formatting a u128 costs code for nothing here.
fn millis(duration: std::time::Duration) -> u64 {
    duration.as_millis() as u64
}

/// Sort a short list by insertion: a few hundred bytes of code instead of the several
/// kilobytes each instance of the standard library's sort takes.
fn sort_small<T: PartialOrd>(items: &mut [T]) {
    for index in 1..items.len() {
        let mut at = index;
        while at > 0 && items[at - 1] > items[at] {
            items.swap(at - 1, at);
            at -= 1;
        }
    }
}

/// The names in `dir` that are UTF-8, sorted; entries that cannot be read are left
/// out. (One copy of the directory walk for the callers, instead of one each.)
fn dir_names(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    sort_small(&mut names);
    Ok(names)
}

/// A `say!` line: on the console, and in init's log (where there is one).
fn say(message: std::fmt::Arguments) {
    let text = message.to_string();
    print_line(format_args!("amber: {text}"));
    log::push(log::INIT, log::NOTICE, text.as_bytes());
}

/// One line on the console (standard output) only.
fn print_line(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(format_args!("{line}\n"));
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let mut called = command_name(args.first());
    // `amber pkg ...` is the same as `pkg ...`, for when no links exist yet.
    if called == "amber" && args.len() > 1 {
        args.remove(0);
        called = command_name(args.first());
    }
    match called.as_str() {
        "pkg" => amber_pkg::cli::main(args),
        "init" => init::main(args),
        "svc" => control::svc_main(args),
        "net" => netctl::main(args),
        "poweroff" => control::power_main(true, args),
        "reboot" => control::power_main(false, args),
        "modprobe" => modules::modprobe_main(args),
        _ => {
            eprintln!("amber: unknown command name {called:?}; link this binary as init, pkg, svc, net, poweroff, reboot or modprobe");
            ExitCode::from(2)
        }
    }
}

fn command_name(arg0: Option<&OsString>) -> String {
    arg0.and_then(|arg0| Path::new(arg0).file_name())
        .and_then(|name| name.to_str())
        .unwrap_or("amber")
        .to_owned()
}
