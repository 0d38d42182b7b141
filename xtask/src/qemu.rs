//! Booting a board's image in qemu under software emulation (TCG, never KVM), either on
//! this terminal or with the serial console on pipes for tests to drive ([`Guest`]).
//!
//! Every board boots from its disk the way its hardware does (DESIGN §10). UEFI boards
//! start qemu's UEFI firmware (OVMF on x86_64, AAVMF on aarch64, from pflash with a
//! variable store of the disk's own beside it), which starts systemd-boot from the
//! disk's EFI system partition, which starts the system's UKI. qemu cannot run the
//! Raspberry Pi firmware, so a Pi board boots the kernel, DTB and initramfs read out
//! of the image's own boot partition (with mtools), with the image as the SD card.
//!
//! The guest's only network to the host is qemu's user network with `restrict=on` and
//! two `guestfwd`s (DESIGN §7), each carried by `xtask proxy` once per guest connection
//! (see [`crate::proxy`]): 10.0.2.100:8080 to the repository server on 127.0.0.1:PORT,
//! and 10.0.2.53:53 to xtask's DNS server over TCP ([`crate::dns`]), which gives the
//! boards' `repo.amber.test` that address. The router test's second network is a
//! `-netdev socket` link between two guests on 127.0.0.1 ([`Options::netdev`]).

use crate::board::{Arch, Board, Firmware, QemuDisk};
use crate::cmd::Cmd;
use crate::util::{copy, create_dir, path_str};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The guest address the repository is reached at (see the board's `repos`).
pub const REPO_GUEST_ADDRESS: &str = "10.0.2.100:8080";

/// What the kernel prints as it hands over to the initramfs's /init.
pub const HANDOVER: &str = "Run /init as init process";

/// The disk qemu boots from.
#[derive(Debug, Clone)]
pub struct Boot {
    pub disk: PathBuf,
}

impl Boot {
    pub fn from_images(images: &crate::image::Images) -> Boot {
        Boot {
            disk: images.disk.clone(),
        }
    }
}

/// The UEFI firmware qemu runs for an architecture: its code (read-only) and the
/// template of its variable store, from Debian's ovmf and qemu-efi-aarch64.
pub fn uefi_firmware(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        Arch::Aarch64 => (
            "/usr/share/AAVMF/AAVMF_CODE.fd",
            "/usr/share/AAVMF/AAVMF_VARS.fd",
        ),
    }
}

/// The disk's UEFI variable store (`DISK.efivars`, or `target/efivars/NAME.efivars` for
/// a block device), made from the firmware's template when missing: the machine's
/// NVRAM, which lives as long as the disk.
fn variable_store(arch: Arch, disk: &Path) -> Result<PathBuf, String> {
    // A block device (a flashed stick) keeps its store under target/, not in /dev.
    let beside = if disk.starts_with("/dev") {
        create_dir(Path::new("target/efivars"))?;
        Path::new("target/efivars").join(disk.file_name().unwrap_or_default())
    } else {
        disk.to_path_buf()
    };
    let mut name = beside.into_os_string();
    name.push(".efivars");
    let store = PathBuf::from(name);
    if !store.is_file() {
        let (_, template) = uefi_firmware(arch);
        copy(Path::new(template), &store)?;
    }
    Ok(store)
}

/// The kernel, DTB and initramfs of a Pi image, read out of the boot partition its
/// autoboot.txt names (as the firmware would, without the tryboot flag) into
/// `DISK.boot/` for qemu's -kernel, -dtb and -initrd (qemu cannot run the Pi firmware).
fn pi_boot_files(board: &Board, disk: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let Firmware::RaspberryPi(pi) = &board.firmware else {
        return Err(format!("board {} is not a Raspberry Pi board", board.name));
    };
    let boot = crate::image::pi_active_place(board, disk)?;
    let mut name = disk.as_os_str().to_owned();
    name.push(".boot");
    let out = PathBuf::from(name);
    create_dir(&out)?;
    let dtb = &pi.dtbs[0].1;
    let image = format!("{}@@{}", path_str(disk)?, boot.offset);
    let mut files = Vec::new();
    for inside in [
        crate::image::PI_KERNEL,
        dtb.as_str(),
        crate::image::PI_INITRAMFS,
    ] {
        let to = out.join(inside);
        Cmd::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args([
                "-o",
                "-n",
                "-i",
                &image,
                &format!("::/{inside}"),
                path_str(&to)?,
            ])
            .output()
            .map_err(|e| format!("reading {inside} out of the image's boot partition: {e}"))?;
        files.push(to);
    }
    let initramfs = files.pop().expect("three files");
    let dtb = files.pop().expect("three files");
    let kernel = files.pop().expect("three files");
    Ok((kernel, dtb, initramfs))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// Serial console and qemu's monitor (Ctrl-A C; Ctrl-A X quits) on this terminal.
    Terminal,
    /// Serial console on pipes, for [`Guest`].
    Piped,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The port on 127.0.0.1 that the guest's 10.0.2.100:8080 is forwarded to.
    /// Something must listen there before qemu starts.
    pub repo_port: u16,
    /// Discard the guest's writes to the disk (qemu's snapshot=on), for tests.
    pub snapshot: bool,
    pub console: Console,
    /// A TCP port on the host's 127.0.0.1 forwarded to a port of the guest (qemu's
    /// `hostfwd`, which `restrict=on` still allows): (host, guest).
    pub host_forward: Option<(u16, u16)>,
    /// Extra qemu arguments, appended last.
    pub extra: Vec<String>,
    /// Memory other than the board's `qemu.memory-mib` (the small-memory measurement).
    pub memory_mib: Option<u32>,
    /// Let a reboot restart the machine (the firmware's boot counting needs several
    /// boots in one run); by default a reboot or panic ends qemu.
    pub reboot: bool,
    /// The guest's first network card's `-netdev` (its id must be `n0`) instead of
    /// qemu's user network: a guest on a LAN only, behind another guest.
    pub netdev: Option<String>,
}

/// The qemu command line for a board.
pub fn command(board: &Board, boot: &Boot, options: &Options) -> Result<Cmd, String> {
    let qemu = board.qemu()?;
    let snapshot = if options.snapshot { ",snapshot=on" } else { "" };
    let disk = path_str(&boot.disk)?;
    let console = match options.console {
        Console::Terminal => "mon:stdio",
        Console::Piped => "stdio",
    };
    let mut command = machine(
        board,
        options.memory_mib.unwrap_or(qemu.memory_mib),
        options.reboot,
        console,
    )?;
    match &board.firmware {
        Firmware::Uefi => {
            let variables = variable_store(board.arch, &boot.disk)?;
            command = uefi_pflash(command, board.arch, &variables)?;
        }
        Firmware::RaspberryPi(_) => {
            let (kernel, dtb, initramfs) = pi_boot_files(board, &boot.disk)?;
            command = command
                .args(["-kernel", path_str(&kernel)?])
                .args(["-dtb", path_str(&dtb)?])
                .args(["-initrd", path_str(&initramfs)?])
                .args(["-append", &pi_cmdline(board, &boot.disk)?]);
        }
    }
    command = match qemu.disk {
        QemuDisk::Virtio => command.args([
            "-drive",
            &format!("if=none,id=disk0,format=raw,file={disk}{snapshot}"),
            "-device",
            "virtio-blk-pci,drive=disk0",
        ]),
        QemuDisk::Usb => command.args([
            "-drive",
            &format!("if=none,id=disk0,format=raw,file={disk}{snapshot}"),
            "-device",
            "qemu-xhci,id=xhci",
            "-device",
            "usb-storage,bus=xhci.0,drive=disk0,removable=on",
        ]),
        QemuDisk::Sd => {
            command.args(["-drive", &format!("if=sd,format=raw,file={disk}{snapshot}")])
        }
    };
    let netdev = match &options.netdev {
        Some(netdev) => netdev.clone(),
        None => {
            let proxy = proxy_program()?;
            format!(
                "user,id=n0,restrict=on,guestfwd=tcp:{REPO_GUEST_ADDRESS}-cmd:{proxy} proxy 127.0.0.1:{},guestfwd=tcp:{}-cmd:{proxy} proxy 127.0.0.1:{}{}",
                options.repo_port,
                crate::dns::GUEST_ADDRESS,
                crate::dns::port()?,
                match options.host_forward {
                    Some((host, guest)) => format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"),
                    None => String::new(),
                }
            )
        }
    };
    Ok(command
        .args([
            "-netdev".to_owned(),
            netdev,
            "-device".to_owned(),
            format!("{},netdev=n0", qemu.nic),
        ])
        .args(&options.extra))
}

/// qemu for the board's machine and CPU at `memory_mib`, its console the serial port
/// `qemu.serial` on `console` (a `-serial` backend), and nothing attached yet.
pub fn machine(board: &Board, memory_mib: u32, reboot: bool, console: &str) -> Result<Cmd, String> {
    let qemu = board.qemu()?;
    let mut command = Cmd::new(board.arch.qemu_system())
        .args([
            "-accel",
            "tcg",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args(["-machine", &qemu.machine]);
    if let Some(cpu) = &qemu.cpu {
        command = command.args(["-cpu", cpu]);
    }
    command = command.args(["-m", &format!("{memory_mib}M")]);
    if !reboot {
        // Reboots and panics (panic=-1 on the command line) end qemu, so a failed boot
        // ends the run instead of looping.
        command = command.arg("-no-reboot");
    }
    // The console is the machine's serial port `qemu.serial`; the ones before it go
    // nowhere.
    for _ in 0..qemu.serial {
        command = command.args(["-serial", "null"]);
    }
    command = command.args(["-serial", console]);
    Ok(command)
}

/// The UEFI firmware's two flash drives: its code, read-only, and `variables`.
pub fn uefi_pflash(command: Cmd, arch: Arch, variables: &Path) -> Result<Cmd, String> {
    let (code, _) = uefi_firmware(arch);
    Ok(command
        .args([
            "-drive",
            &format!("if=pflash,format=raw,readonly=on,file={code}"),
        ])
        .args([
            "-drive",
            &format!("if=pflash,format=raw,file={}", path_str(variables)?),
        ]))
}

/// The command line the Pi firmware would pass: the image's own cmdline.txt, read out
/// of its boot partition.
fn pi_cmdline(board: &Board, disk: &Path) -> Result<String, String> {
    let boot = crate::image::pi_active_place(board, disk)?;
    let image = format!("{}@@{}", path_str(disk)?, boot.offset);
    let text = Cmd::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &image, "::/cmdline.txt"])
        .output()
        .map_err(|e| format!("reading cmdline.txt out of the image's boot partition: {e}"))?;
    // qemu's raspi3b resets the machine the moment the watchdog starts (it does not
    // model the timer); the driver stays, as the kernel reboots through it.
    Ok(format!("{} amber.watchdog=off", text.trim()))
}

/// This program, as the `cmd:` of the guestfwd: quoted for the shell-like split qemu's
/// user network does, with commas doubled for qemu's option parser.
fn proxy_program() -> Result<String, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    // When cargo builds xtask again while this one runs (another `cargo xtask` in the
    // same tree), Linux names the running file "PATH (deleted)": the new build at PATH
    // has the proxy too, and qemu runs the proxy only later, once per connection.
    let program = path_str(&program)?;
    let program = program.strip_suffix(" (deleted)").unwrap_or(program);
    if !std::path::Path::new(program).is_file() {
        return Err(format!(
            "{program}: this program is gone, so qemu could not run its proxy"
        ));
    }
    let plain = program
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b));
    let quoted = if plain {
        program.to_owned()
    } else {
        format!("'{}'", program.replace('\'', "'\\''"))
    };
    Ok(quoted.replace(',', ",,"))
}

/// A running guest whose serial console is on pipes.
///
/// Output is collected by a reader thread; [`Guest::expect`] waits for text to appear
/// after what the previous `expect` matched. Dropping the guest kills qemu.
pub struct Guest {
    child: Child,
    input: Option<ChildStdin>,
    output: Receiver<Vec<u8>>,
    transcript: Vec<u8>,
    /// Where the next `expect` starts looking in the transcript.
    cursor: usize,
    started: Instant,
    /// Copy the console to stderr as it arrives, so a failing test shows the boot.
    echo: bool,
}

impl Guest {
    /// Start qemu with the console on pipes.
    pub fn start(
        board: &Board,
        boot: &Boot,
        options: &Options,
        echo: bool,
    ) -> Result<Guest, String> {
        let options = Options {
            console: Console::Piped,
            ..options.clone()
        };
        Guest::spawn(command(board, boot, &options)?, echo)
    }

    /// Start a qemu command line whose console is its stdio (`-serial stdio`).
    pub fn spawn(command: Cmd, echo: bool) -> Result<Guest, String> {
        let mut child = command.spawn(Stdio::piped(), Stdio::piped())?;
        let started = Instant::now();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let (sender, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                match stdout.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sender.send(buffer[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Guest {
            input: child.stdin.take(),
            child,
            output,
            transcript: Vec::new(),
            cursor: 0,
            started,
            echo,
        })
    }

    /// Wait until `text` appears on the console; returns the time since qemu started.
    /// Fails when qemu exits or `timeout` passes first, with the console's last lines.
    pub fn expect(&mut self, text: &str, timeout: Duration) -> Result<Duration, String> {
        self.until(text, timeout)?;
        Ok(self.started.elapsed())
    }

    /// Wait until `text` appears on the console, as [`Guest::expect`]; returns what the
    /// console printed between the previous match and this one.
    pub fn until(&mut self, text: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let start = self.cursor;
        // Where a match could still start: only new output is searched each time round,
        // since the kernel writes the console a few bytes at a time.
        let mut from = self.cursor;
        loop {
            if let Some(found) = find(&self.transcript[from..], text.as_bytes()) {
                self.cursor = from + found + text.len();
                return Ok(
                    String::from_utf8_lossy(&self.transcript[start..from + found]).into_owned(),
                );
            }
            from = from.max(
                self.transcript
                    .len()
                    .saturating_sub(text.len().saturating_sub(1)),
            );
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => {
                    self.receive(&bytes);
                    self.drain();
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no `{text}` on the console within {}s; last lines:\n{}",
                        timeout.as_secs(),
                        self.tail(30)
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!(
                        "qemu ended ({status}) before `{text}` appeared; last lines:\n{}",
                        self.tail(30)
                    ));
                }
            }
        }
    }

    /// How much the console has printed so far: a mark for [`Guest::wait_since`].
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.transcript.len()
    }

    /// Wait until `text` appears anywhere after the mark `from` (a service's line may
    /// come while a command runs, before its prompt); returns the whole line it is in.
    /// Unlike [`Guest::until`] this leaves the cursor where it is.
    pub fn wait_since(
        &mut self,
        text: &str,
        from: usize,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            let after = &self.transcript[from.min(self.transcript.len())..];
            if let Some(at) = find(after, text.as_bytes()) {
                let start = after[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = after[at..]
                    .iter()
                    .position(|&b| b == b'\n' || b == b'\r')
                    .map_or(after.len(), |i| at + i);
                return Ok(String::from_utf8_lossy(&after[start..end])
                    .trim()
                    .to_owned());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "qemu ended ({status}) before `{text}` appeared; last lines:\n{}",
                    self.tail(30)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no `{text}` on the console within {}s; last lines:\n{}",
                    timeout.as_secs(),
                    self.tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether `text` has appeared since the last match, without waiting.
    pub fn seen(&mut self, text: &str) -> bool {
        self.drain();
        find(&self.transcript[self.cursor..], text.as_bytes()).is_some()
    }

    /// Wait for qemu to exit by itself (the guest powered off or rebooted); fails with
    /// the console's last lines when it does not within `timeout`, or exits with an error.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(self.started.elapsed()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "qemu exited with {status}; last lines:\n{}",
                        self.tail(30)
                    ))
                }
                Ok(None) => {}
                Err(error) => return Err(format!("cannot wait for qemu: {error}")),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "qemu still runs after {}s; last lines:\n{}",
                    timeout.as_secs(),
                    self.tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The console's last lines, for error messages.
    pub fn last_lines(&mut self, lines: usize) -> String {
        self.drain();
        self.tail(lines)
    }

    /// Take in whatever the console printed that has not been read yet, without waiting.
    fn drain(&mut self) {
        while let Ok(bytes) = self.output.try_recv() {
            self.receive(&bytes);
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
        if self.echo {
            let mut stderr = std::io::stderr();
            let _ = stderr.write_all(bytes);
            let _ = stderr.flush();
        }
        self.transcript.extend_from_slice(bytes);
    }

    /// Type `text` on the serial console.
    pub fn send(&mut self, text: &str) -> Result<(), String> {
        let input = self.input.as_mut().ok_or("the console's input is closed")?;
        input
            .write_all(text.as_bytes())
            .and_then(|()| input.flush())
            .map_err(|e| format!("cannot write to the console: {e}"))
    }

    /// Everything the console printed so far.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }

    fn tail(&self, lines: usize) -> String {
        let text = self.transcript();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop qemu and return the whole console transcript. qemu gets SIGKILL: for the
    /// guest, a power cut.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(bytes) = self.output.try_recv() {
            self.transcript.extend_from_slice(&bytes);
        }
        self.transcript()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
