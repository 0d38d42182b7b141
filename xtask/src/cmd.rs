//! Running subprocesses: every command is printed before it runs, and failures name it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Change to the workspace root (the parent of xtask's manifest directory).
pub fn enter_workspace_root() -> Result<(), String> {
    let root = workspace_root();
    std::env::set_current_dir(&root).map_err(|e| format!("cannot enter {}: {e}", root.display()))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// A command to run, printed as it starts.
pub struct Cmd {
    command: Command,
    shown: String,
}

impl Cmd {
    pub fn new(program: &str) -> Cmd {
        Cmd {
            command: Command::new(program),
            shown: program.to_owned(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<str>) -> Cmd {
        let arg = arg.as_ref();
        self.shown.push(' ');
        // Quote what the shell would split, so a printed command can be pasted back.
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"') {
            self.shown.push('\'');
            self.shown.push_str(&arg.replace('\'', "'\\''"));
            self.shown.push('\'');
        } else {
            self.shown.push_str(arg);
        }
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.command.current_dir(dir);
        self
    }

    /// Where the command's stderr goes (inherited unless set).
    pub fn stderr(mut self, stderr: std::process::Stdio) -> Cmd {
        self.command.stderr(stderr);
        self
    }

    /// Print the command and start it with the given standard streams.
    pub fn spawn(
        mut self,
        stdin: std::process::Stdio,
        stdout: std::process::Stdio,
    ) -> Result<std::process::Child, String> {
        eprintln!("$ {}", self.shown);
        self.command
            .stdin(stdin)
            .stdout(stdout)
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", self.shown))
    }

    /// Run quietly and return stdout as bytes; a non-zero exit is an error carrying stderr.
    pub fn output_bytes(mut self) -> Result<Vec<u8>, String> {
        let output = self
            .command
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", self.shown))?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(format!(
                "`{}` failed ({}): {}",
                self.shown,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Run to completion with inherited stdio; a non-zero exit is an error.
    pub fn run(mut self) -> Result<(), String> {
        eprintln!("$ {}", self.shown);
        let status = self
            .command
            .status()
            .map_err(|e| format!("cannot run `{}`: {e}", self.shown))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.shown))
        }
    }

    /// Run to completion with stdout read line by line: each line is printed as it comes
    /// and handed to `each`; stderr is inherited. A non-zero exit is an error.
    pub fn run_lines(mut self, mut each: impl FnMut(&str)) -> Result<(), String> {
        use std::io::BufRead;
        eprintln!("$ {}", self.shown);
        let mut child = self
            .command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", self.shown))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("`{}`: reading its output: {e}", self.shown))?;
            println!("{line}");
            each(&line);
        }
        let status = child
            .wait()
            .map_err(|e| format!("cannot wait for `{}`: {e}", self.shown))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.shown))
        }
    }

    /// Print the command, run it with nothing on stdin, and return its exit status and
    /// its stdout followed by its stderr, whatever the exit: for tests of failures.
    pub fn capture(mut self) -> Result<(std::process::ExitStatus, String), String> {
        eprintln!("$ {}", self.shown);
        let output = self
            .command
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", self.shown))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok((output.status, text))
    }

    /// Run quietly and return stdout; a non-zero exit is an error carrying stderr.
    pub fn output(mut self) -> Result<String, String> {
        let output = self
            .command
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", self.shown))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "`{}` failed ({}): {}",
                self.shown,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
