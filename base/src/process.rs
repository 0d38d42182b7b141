//! Starting programs: fork and exec, with what the device's callers set (arguments,
//! argv[0], the three standard descriptors, the working directory, a process group,
//! steps run in the child before exec), and waiting for them.
//!
//! std's `Command` does the same and more: an environment map it captures on every
//! spawn (a B-tree of every variable), `posix_spawn` with its file actions, pipes for
//! output capture. Together about 13 KB of the device binary, for features no caller
//! uses: a child here inherits this process's environment (init's is set once, and a
//! service's `env` lines are applied by a pre-exec step, see boot's `sys::confine`).
//! The names and behaviour follow std's, so a call site reads as it did.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// What one of the child's standard descriptors is.
pub enum Stdio {
    /// This process's own.
    Inherit,
    /// /dev/null.
    Null,
    /// This descriptor, duplicated into place.
    Fd(OwnedFd),
}

impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio::Fd(file.into())
    }
}

impl From<io::PipeWriter> for Stdio {
    fn from(pipe: io::PipeWriter) -> Stdio {
        Stdio::Fd(pipe.into())
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio::Fd(fd)
    }
}

type Step = Box<dyn FnMut() -> io::Result<()> + Send + Sync>;

/// A program to start, as std's `Command`.
pub struct Command {
    program: CString,
    /// argv, from argv[0].
    args: Vec<CString>,
    /// An argument held a NUL byte: spawning fails, as with std.
    saw_nul: bool,
    stdio: [Stdio; 3],
    dir: Option<CString>,
    process_group: bool,
    steps: Vec<Step>,
}

impl Command {
    /// Start `program` (searched in PATH unless it holds a `/`), with argv[0] the same.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        let mut command = Command {
            program: CString::default(),
            args: Vec::new(),
            saw_nul: false,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
            dir: None,
            process_group: false,
            steps: Vec::new(),
        };
        command.program = command.c_string(program.as_ref());
        command.args.push(command.program.clone());
        command
    }

    fn c_string(&mut self, text: &OsStr) -> CString {
        CString::new(text.as_bytes()).unwrap_or_else(|_| {
            self.saw_nul = true;
            CString::default()
        })
    }

    /// The name the program sees as argv[0].
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Command {
        self.args[0] = self.c_string(arg0.as_ref());
        self
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        let arg = self.c_string(arg.as_ref());
        self.args.push(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Command {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    pub fn stdin(&mut self, stdin: impl Into<Stdio>) -> &mut Command {
        self.stdio[0] = stdin.into();
        self
    }

    pub fn stdout(&mut self, stdout: impl Into<Stdio>) -> &mut Command {
        self.stdio[1] = stdout.into();
        self
    }

    pub fn stderr(&mut self, stderr: impl Into<Stdio>) -> &mut Command {
        self.stdio[2] = stderr.into();
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<OsStr>) -> &mut Command {
        self.dir = Some(self.c_string(dir.as_ref()));
        self
    }

    /// Start the child in a new process group of its own (setpgid(0, 0)).
    pub fn new_process_group(&mut self) -> &mut Command {
        self.process_group = true;
        self
    }

    /// Run `step` in the child after its descriptors, directory and signals are set
    /// and before exec; an error fails the spawn with it.
    ///
    /// # Safety
    ///
    /// The step runs between fork and exec in a copy of a possibly multi-threaded
    /// process: it may only call async-signal-safe functions, and must not allocate.
    pub unsafe fn pre_exec(
        &mut self,
        step: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
    ) -> &mut Command {
        self.steps.push(Box::new(step));
        self
    }

    /// Start the program; the error is exec's, or a step's, when either fails.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let prepared = self.prepare()?;
        // Close-on-exec, both ends.
        let (mut report_read, report_write) = io::pipe()?;
        // SAFETY: fork has no preconditions; the child branch below only makes
        // async-signal-safe calls on data prepared before the fork, and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let errno = self.in_child(&prepared);
            // SAFETY: the report pipe's write end is open; _exit ends the child without
            // running anything of the parent's.
            unsafe {
                libc::write(
                    report_write.as_raw_fd(),
                    errno.to_ne_bytes().as_ptr().cast(),
                    4,
                );
                libc::_exit(127)
            }
        }
        drop(report_write);
        let mut child = Child { pid, status: None };
        // The report pipe closes at exec (close-on-exec): nothing read means started.
        let mut errno = [0u8; 4];
        match read_full(&mut report_read, &mut errno)? {
            0 => Ok(child),
            _ => {
                let _ = child.wait();
                Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
            }
        }
    }

    /// Replace this process with the program; returns only the reason it could not.
    pub fn exec(&mut self) -> io::Error {
        match self.prepare() {
            Ok(prepared) => io::Error::from_raw_os_error(self.in_child(&prepared)),
            Err(error) => error,
        }
    }

    /// What the child needs, made before the fork: argv and the descriptors.
    fn prepare(&self) -> io::Result<Prepared> {
        if self.saw_nul {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nul byte found in provided data",
            ));
        }
        let mut argv: Vec<*const libc::c_char> = self.args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let null = match self.stdio.iter().any(|s| matches!(s, Stdio::Null)) {
            true => Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")?,
            ),
            false => None,
        };
        let fds = self.stdio.each_ref().map(|stdio| match stdio {
            Stdio::Inherit => None,
            Stdio::Null => null.as_ref().map(|null| null.as_raw_fd()),
            Stdio::Fd(fd) => Some(fd.as_raw_fd()),
        });
        Ok(Prepared {
            argv,
            fds,
            _null: null,
        })
    }

    /// The child's steps up to exec; returns exec's (or a step's) error number.
    fn in_child(&mut self, prepared: &Prepared) -> i32 {
        let failed = || {
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL)
        };
        // SAFETY: every call is async-signal-safe and gets descriptors and
        // NUL-terminated strings prepared before the fork.
        unsafe {
            for (target, fd) in prepared.fds.iter().enumerate() {
                let Some(fd) = *fd else { continue };
                let target = target as RawFd;
                // dup2 onto itself keeps close-on-exec set: clear it instead.
                let result = if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, target)
                };
                if result < 0 {
                    return failed();
                }
            }
            if let Some(dir) = &self.dir {
                if libc::chdir(dir.as_ptr()) != 0 {
                    return failed();
                }
            }
            if self.process_group && libc::setpgid(0, 0) != 0 {
                return failed();
            }
            // A clean start: no blocked signals, and SIGPIPE back to its default (std
            // ignores it in this process).
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            for step in &mut self.steps {
                if let Err(error) = step() {
                    return error.raw_os_error().unwrap_or(libc::EINVAL);
                }
            }
            libc::execvp(self.program.as_ptr(), prepared.argv.as_ptr());
        }
        failed()
    }
}

/// Read until `buffer` is full or the end; returns how much was read.
fn read_full(from: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buffer.len() {
        match from.read(&mut buffer[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(done)
}

struct Prepared {
    argv: Vec<*const libc::c_char>,
    fds: [Option<RawFd>; 3],
    /// /dev/null, open until the child has it.
    _null: Option<File>,
}

/// A started program, as std's `Child`.
pub struct Child {
    pid: i32,
    status: Option<ExitStatus>,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Its exit status once it has ended, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = crate::sys::wait_pid(self.pid, false)?.map(ExitStatus);
        }
        Ok(self.status)
    }

    /// Wait until it ends.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = ExitStatus(crate::sys::wait_pid(self.pid, true)?.unwrap_or_default());
        self.status = Some(status);
        Ok(status)
    }

    /// SIGKILL it, unless it was already waited for.
    pub fn kill(&mut self) -> io::Result<()> {
        match self.status {
            Some(_) => Ok(()),
            None => crate::sys::kill(self.pid, libc::SIGKILL),
        }
    }
}

/// How a program ended: wait(2)'s status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus(i32);

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.0 == 0
    }
}

/// As std says it: "exit status: 1", "signal: 9".
impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (code, signal) = (self.0 >> 8 & 0xff, self.0 & 0x7f);
        match signal {
            0 => write!(f, "exit status: {code}"),
            _ if self.0 & 0x80 != 0 => write!(f, "signal: {signal} (core dumped)"),
            _ => write!(f, "signal: {signal}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_runs_with_its_arguments_and_descriptors() {
        let (mut read, write) = io::pipe().unwrap();
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo \"$0 $1\"; pwd; exit 3", "zero", "one"])
            .arg0("ignored-by-sh-c")
            .stdin(Stdio::Null)
            .stdout(write)
            .current_dir("/");
        let mut child = command.spawn().unwrap();
        drop(command);
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert_eq!(status.to_string(), "exit status: 3");
        let mut output = String::new();
        read.read_to_string(&mut output).unwrap();
        assert_eq!(output, "zero one\n/\n");
    }

    #[test]
    fn a_missing_program_fails_the_spawn_with_exec_error() {
        let error = Command::new("/nonexistent/program").spawn().err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let error = Command::new("a\0b").spawn().err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_failing_step_fails_the_spawn_with_its_error() {
        let mut command = Command::new("true");
        // SAFETY: the step allocates nothing and calls nothing.
        unsafe {
            command.pre_exec(|| Err(io::Error::from_raw_os_error(libc::EPERM)));
        }
        let error = command.spawn().err().unwrap();
        assert_eq!(error.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn killed_and_waited() {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.to_string(), "signal: 9");
        assert_eq!(child.try_wait().unwrap(), Some(status));
        child.kill().unwrap();
    }
}
