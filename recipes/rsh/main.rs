//! `rsh`: a tiny line-based console shell, and a fixed-string `grep`, chosen by argv[0].
//!
//! The shell prints a prompt, reads a line, splits it on whitespace and runs it: the
//! builtins `cd` and `exit`, or a program (found on PATH when the name has no slash).
//! A non-zero status is printed as `exit N`. A bootstrap and test package until a real
//! shell (busybox) has a recipe.

use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

/// What the shell prints before reading each line; the end-to-end test waits for it.
const PROMPT: &str = "rsh# ";

fn main() -> ExitCode {
    let arg0 = std::env::args().next().unwrap_or_default();
    // A login shell is started as `-sh`; only the last path component counts.
    let name = arg0
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_start_matches('-');
    let args: Vec<String> = std::env::args().skip(1).collect();
    match name {
        "grep" => grep(&args),
        _ => shell(),
    }
}

fn shell() -> ExitCode {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    loop {
        print!("{PROMPT}");
        let _ = std::io::stdout().flush();
        line.clear();
        match input.read_line(&mut line) {
            // The end of the input ends the shell, as a terminal's Ctrl-D does.
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(error) => {
                eprintln!("rsh: cannot read a line: {error}");
                return ExitCode::FAILURE;
            }
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&command, args)) = words.split_first() else {
            continue;
        };
        let status = match command {
            "exit" => {
                let code = args.first().map_or(Some(0), |code| code.parse::<u8>().ok());
                match code {
                    Some(code) => return ExitCode::from(code),
                    None => {
                        eprintln!("rsh: exit: give a number from 0 to 255");
                        2
                    }
                }
            }
            "cd" => {
                let directory = args.first().copied().unwrap_or("/");
                match std::env::set_current_dir(directory) {
                    Ok(()) => 0,
                    Err(error) => {
                        eprintln!("rsh: cd: {directory}: {error}");
                        1
                    }
                }
            }
            _ => run(command, args),
        };
        if status != 0 {
            println!("exit {status}");
        }
    }
}

/// Run a program and wait for it; its status as a shell reports it.
fn run(command: &str, args: &[&str]) -> i32 {
    match Command::new(command).args(args).status() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 255,
        },
        Err(error) => {
            eprintln!("rsh: {command}: {error}");
            127
        }
    }
}

/// `grep PATTERN [FILE]...`: print the lines that contain PATTERN (a fixed string), from
/// the files or standard input. Exits 0 when a line matched, 1 when none did, 2 on error.
fn grep(args: &[String]) -> ExitCode {
    let Some((pattern, files)) = args.split_first() else {
        eprintln!("usage: grep PATTERN [FILE]...");
        return ExitCode::from(2);
    };
    let mut matched = false;
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    let mut search = |reader: &mut dyn BufRead, label: Option<&str>| -> std::io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            if text.contains(pattern.as_str()) {
                matched = true;
                if let Some(label) = label {
                    write!(out, "{label}:")?;
                }
                write!(out, "{}", text.trim_end_matches('\n'))?;
                writeln!(out)?;
            }
        }
    };
    if files.is_empty() {
        if let Err(error) = search(&mut std::io::stdin().lock(), None) {
            eprintln!("grep: (standard input): {error}");
            failed = true;
        }
    }
    for file in files {
        let label = (files.len() > 1).then_some(file.as_str());
        let result =
            std::fs::File::open(file).and_then(|f| search(&mut std::io::BufReader::new(f), label));
        if let Err(error) = result {
            eprintln!("grep: {file}: {error}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(2)
    } else if matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
