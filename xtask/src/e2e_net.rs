//! The network steps of the end-to-end test (`e2e.rs` calls them): DHCP, DNS, time and
//! persistent settings on every qemu board, and, once, a router with a LAN and NAT.
//!
//! Every board's first boot, on qemu's user network with `restrict=on`:
//!
//! - eth0 has its address by DHCP from qemu (which, restricted, offers neither a router
//!   nor a DNS server); `repo.amber.test` resolves through the device's forwarder, over
//!   TCP to xtask's DNS server at 10.0.2.53 ([`crate::dns`]); qemu's own 10.0.2.3 gives
//!   no answer; a name nobody knows gives `pkg update` one error line; SLAAC is on.
//!
//! The qemu boards with virtio network cards (qemu-x86_64, qemu-aarch64) also start with
//! their RTC in 2001 and a second card on the test LAN ([`crate::testlan`]: a DHCP server
//! with a 20 s lease and an SNTP server, on the host):
//!
//! - boot 1: the clock is unset, so an index that expires before pkg's build date (but
//!   after the test LAN's time) is refused; `net set eth1 dhcp` applies at once, eth1
//!   gets its lease, DHCP's NTP server sets the clock by SNTP, the same index is
//!   accepted; the lease is renewed at T1; then the test LAN falls silent;
//! - boot 2 (the RTC in 2001 again, the test LAN silent: a DHCP server that never
//!   answers, no SNTP): the clock starts from the time stored on /data, the settings
//!   from /data are still in effect, eth1 keeps discovering; then a broken
//!   /data/etc/amber/network: the console says so in one line and the board's defaults
//!   come up.
//!
//! The router test boots two qemu-x86_64 guests: the router (WAN: qemu's user network;
//! LAN: `-netdev socket,listen=127.0.0.1:PORT`) and a client on that LAN only.

use crate::board::Board;
use crate::e2e::{free_port, Report, Shell, COMMAND_TIMEOUT, NETWORK_UP};
use crate::image;
use crate::qemu::{Boot, Options};
use crate::testlan::TestLan;
use crate::util::{create_dir, path_str, step};
use std::path::Path;
use std::time::{Duration, Instant};

/// The test LAN's time: 2026-08-17 20:53:20 UTC, before pkg's build date (2026-09-21,
/// `BUILD_FLOOR` in pkg/src/repo.rs), so that pkg believes it only from SNTP.
pub const LAN_TIME: u64 = 1_787_000_000;
/// When the clock repository's index expires: a week after [`LAN_TIME`], still before
/// the build date. A device whose clock is unset checks it against the build date and
/// calls it expired; one whose clock SNTP set does not.
const CLOCK_EXPIRES: u64 = LAN_TIME + 7 * 24 * 3600;
/// The clock repository, beside the test packages' (served from target/repo/clock/).
const CLOCK_REPO: &str = "http://repo.amber.test:8080/clock/";
/// A name no DNS server knows.
const NOWHERE: &str = "http://nowhere.amber.test:8080/";
/// A console line as the report shows it: from the unit's name on (the shell's prompt
/// may share the line).
fn clean(line: String) -> String {
    match line.rfind("e2e# ") {
        Some(at) => line[at + 5..].to_owned(),
        None => line,
    }
}

/// How long a console line of the network may take to come.
const LINE_TIMEOUT: Duration = Duration::from_secs(90);

/// What the boards' network steps share: the test LAN.
pub struct Net {
    pub lan: TestLan,
}

impl Net {
    /// The test LAN, and the clock repository of each architecture.
    pub fn start(boards: &[Board]) -> Result<Net, String> {
        let pkg = crate::build::host_pkg()?;
        let key = crate::keys::development()?;
        for arch in [crate::board::Arch::X86_64, crate::board::Arch::Aarch64] {
            if !boards.iter().any(|board| board.arch == arch) {
                continue;
            }
            let dir = Path::new(crate::recipes::REPO_DIR)
                .join("clock")
                .join(arch.name());
            create_dir(&dir)?;
            // One image, since an empty index is refused: the small test package.
            let packages = Path::new(crate::recipes::REPO_DIR).join(arch.name());
            let hello = std::fs::read_dir(&packages)
                .map_err(|e| format!("{}: {e}", packages.display()))?
                .flatten()
                .map(|entry| entry.file_name())
                .find(|name| {
                    name.to_str().is_some_and(|name| {
                        name.starts_with("hello-") && name.ends_with(".squashfs")
                    })
                })
                .ok_or_else(|| format!("{}: no hello image", packages.display()))?;
            std::fs::copy(packages.join(&hello), dir.join(&hello))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            crate::cmd::Cmd::new(path_str(&pkg)?)
                .args(["repo", "index", path_str(&dir)?])
                .args(["--secret-key", path_str(&key.secret)?])
                .args(["--serial", "1", "--expires", &CLOCK_EXPIRES.to_string()])
                .output()?;
        }
        Ok(Net {
            lan: TestLan::start(LAN_TIME)?,
        })
    }

    /// Whether a board joins the test LAN: the qemu boards with virtio network cards.
    pub fn joins(board: &Board) -> bool {
        board
            .qemu
            .as_ref()
            .is_some_and(|qemu| qemu.nic_model() == "virtio-net-pci")
    }

    /// qemu arguments for a board that joins: its RTC in 2001, a second card of its
    /// model (and options) on the test LAN.
    pub fn qemu_args(&self, board: &Board) -> Vec<String> {
        let mut args = self.lan.qemu_args(card(board));
        args.extend(["-rtc".into(), "base=2001-01-01".into()]);
        args
    }
}

fn seconds(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Every board's first boot, with its network up: DHCP, DNS, a name that does not
/// resolve, SLAAC.
pub fn first_boot(shell: &mut Shell, report: &mut Report) -> Result<(), String> {
    let status = shell.ok("svc status network")?;
    shell.expect_output("svc status network", &status, "(dhcp from 10.0.2.2")?;
    let lease = status
        .split(": up: ")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_owned();
    report
        .network
        .push(format!("DHCP from qemu's user network: {lease}"));
    let resolv = shell.ok("cat /etc/resolv.conf")?;
    shell.expect_output("/etc/resolv.conf", &resolv, "nameserver 127.0.0.53")?;
    let asked = crate::dns::asked().len();
    let lookup = shell.ok(&format!("nslookup {}", crate::dns::REPO_NAME))?;
    shell.expect_output("nslookup", &lookup, "10.0.2.100")?;
    if crate::dns::asked().len() <= asked {
        return Err(shell.failure("the name resolved, but xtask's DNS server was not asked"));
    }
    report.network.push(format!(
        "DNS: {} is 10.0.2.100, by the device's forwarder (127.0.0.53) over TCP to 10.0.2.53 (xtask's server: {} questions so far)",
        crate::dns::REPO_NAME,
        crate::dns::asked().len()
    ));
    // qemu's own DNS under restrict=on: the device with it as its only server.
    if lease.contains("via") || lease.contains("dns") {
        return Err(shell.failure(&format!(
            "qemu's DHCP offered a router or DNS server under restrict=on: {lease}"
        )));
    }
    shell.ok("net dns 10.0.2.3")?;
    shell.ok(NETWORK_UP)?;
    let timer = Instant::now();
    let (code, output) = shell.command(
        &format!("nslookup {}", crate::dns::REPO_NAME),
        COMMAND_TIMEOUT,
    )?;
    let waited = timer.elapsed();
    shell.ok("net dns tcp:10.0.2.53")?;
    shell.ok(NETWORK_UP)?;
    if code == 0 {
        return Err(shell.failure(&format!(
            "qemu's 10.0.2.3 answered under restrict=on:\n{output}"
        )));
    }
    report.network.push(format!(
        "qemu's DNS 10.0.2.3 under restrict=on: its DHCP does not offer it (nor a router), and asked as the only server it never answers (nslookup failed after {:.0}s)",
        waited.as_secs_f64()
    ));
    // A name that does not resolve: one clear line.
    shell.ok(&format!("pkg repo add {NOWHERE}"))?;
    let (code, output) = shell.command("pkg update", COMMAND_TIMEOUT)?;
    shell.ok(&format!("pkg repo del {NOWHERE}"))?;
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("nowhere.amber.test"))
        .collect();
    if code == 0 || lines.len() != 1 || !lines[0].contains("cannot resolve") {
        return Err(shell.failure(&format!(
            "`pkg update` with an unknown name exited {code}, printing:\n{output}"
        )));
    }
    report
        .network
        .push(format!("an unknown name: `{}`", lines[0].trim()));
    // Short lines: busybox's line editing wraps at 80 columns on a serial console.
    let autoconf = shell.ok("cat /proc/sys/net/ipv6/conf/eth0/autoconf")?;
    let accept_ra = shell.ok("cat /proc/sys/net/ipv6/conf/eth0/accept_ra")?;
    let addresses = shell.ok("ip -6 addr show dev eth0 | grep inet6 || true")?;
    let slaac: Vec<&str> = addresses
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains("scope link"))
        .collect();
    report.network.push(format!(
        "IPv6 on eth0: autoconf {}, accept_ra {}; {}",
        autoconf.trim(),
        accept_ra.trim(),
        if slaac.is_empty() {
            "no address beyond the link's (no router advertisement came)".to_owned()
        } else {
            format!("by SLAAC: {}", slaac.join("; "))
        }
    ));
    Ok(())
}

/// Boot 1 of a board on the test LAN: the clock by SNTP, a lease renewed, settings
/// applied without a reboot.
pub fn test_lan(shell: &mut Shell, net: &Net, report: &mut Report) -> Result<(), String> {
    // The board before this one left the LAN's server silent (its second boot's step).
    net.lan.set_silent(false);
    let clock = shell.ok("svc status clock")?;
    shell.expect_output("svc status clock", &clock, "not synchronised")?;
    let rtc = shell.ok("date -u +%s")?;
    if seconds(&rtc).is_none_or(|now| now > 1_100_000_000) {
        return Err(shell.failure(&format!("the clock is not in 2001: {rtc}")));
    }
    shell.ok(&format!("pkg repo add {CLOCK_REPO}"))?;
    let (code, output) = shell.command("pkg update", COMMAND_TIMEOUT)?;
    let refused = output
        .lines()
        .find(|line| line.contains("index expired at"))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if code == 0 || !refused.contains("the clock is unset") {
        return Err(shell.failure(&format!(
            "the clock repository's index was not refused by a clock in 2001:\n{output}"
        )));
    }
    let mark = shell.guest.mark();
    let asked = Instant::now();
    let applied = shell.ok("net set eth1 dhcp")?;
    shell.expect_output("net set", &applied, "applied: network")?;
    let bound = shell
        .guest
        .wait_since("dhcp eth1: bound 10.9.0.15/24", mark, LINE_TIMEOUT)?;
    // An upper bound: the line may have come before the console was read.
    let bound_after = asked.elapsed();
    let set = shell
        .guest
        .wait_since("clock: set to ", mark, LINE_TIMEOUT)?;
    let clock = shell.ok("svc status clock")?;
    shell.expect_output("svc status clock", &clock, "synchronised with 10.9.0.1")?;
    let now = shell.ok("date -u +%s")?;
    if seconds(&now).is_none_or(|now| now.abs_diff(LAN_TIME) > 3600) {
        return Err(shell.failure(&format!("SNTP did not set the clock: {now}")));
    }
    shell.ok("pkg update")?;
    let exchange = net
        .lan
        .times_to_address()
        .first()
        .map_or("not timed".to_owned(), |time| {
            format!("{} ms", time.as_millis())
        });
    report.network.push(format!(
        "DHCP time to address on eth1: {exchange} from the first DISCOVER to the ACK (the test LAN's clock); {:.1}s from `net set eth1 dhcp` (the network daemon restarted) to the console's bound line",
        bound_after.as_secs_f64()
    ));
    report.network.push(format!(
        "clock: the RTC said 2001-01-01; `{refused}`; eth1 on the test LAN: `{bound}`; SNTP from the host side: `{set}`; then `pkg update` accepted that index"
    ));
    let renewed = clean(
        shell
            .guest
            .wait_since("dhcp eth1: renewed", mark, LINE_TIMEOUT)?,
    );
    if net.lan.renewals() == 0 {
        return Err(shell.failure("the guest says it renewed, but the test LAN saw no renewal"));
    }
    report.network.push(format!(
        "lease renewal at T1: `{renewed}` (the test LAN: {})",
        net.lan.summary()
    ));
    // From here on, a DHCP server that never answers and no SNTP.
    net.lan.set_silent(true);
    let stored = shell.ok("cat /data/var/amber/clock")?;
    report.network.push(format!(
        "the last good time stored on /data: {}",
        stored.trim()
    ));
    Ok(())
}

/// Boot 2 of a board on the (now silent) test LAN: the stored time, the settings kept,
/// a server that never answers, then broken settings.
pub fn second_boot(shell: &mut Shell, report: &mut Report) -> Result<(), String> {
    let console = shell.guest.transcript();
    let raised = console
        .lines()
        .find(|line| line.contains("amber: clock: ") && line.contains("last good time"))
        .map(|line| clean(line.trim().to_owned()))
        .ok_or_else(|| {
            shell.failure("no `amber: clock: ... last good time` line at boot with the RTC in 2001")
        })?;
    let now = shell.ok("date -u +%s")?;
    if seconds(&now).is_none_or(|now| now < LAN_TIME) {
        return Err(shell.failure(&format!("the clock is behind the stored time: {now}")));
    }
    let clock = shell.ok("svc status clock")?;
    shell.expect_output("svc status clock", &clock, "not synchronised")?;
    report.network.push(format!(
        "with no SNTP server, the clock keeps the stored time: `{raised}`"
    ));
    // The clock repository's index is still accepted: the stored time is the floor.
    shell.ok("pkg update")?;
    shell.ok(&format!("pkg repo del {CLOCK_REPO}"))?;
    let settings = shell.ok("net")?;
    shell.expect_output("net", &settings, "settings: /data/etc/amber/network")?;
    shell.expect_output("net", &settings, "interface eth1")?;
    let discovering = clean(
        shell
            .guest
            .wait_since("dhcp eth1: discovering", 0, LINE_TIMEOUT)?,
    );
    let status = shell.ok("svc status network")?;
    shell.expect_output("svc status network", &status, "eth1 dhcp: discovering")?;
    report.network.push(format!(
        "settings survive a reboot (from /data/etc/amber/network); a DHCP server that never answers: `{discovering}`, and the network is up on eth0 all the same"
    ));
    // Broken settings: one line, and the board's defaults.
    let mark = shell.guest.mark();
    shell.ok("printf 'interface eth0\\n  adress 10.0.2.15/24\\n' > /data/etc/amber/network")?;
    shell.ok("net apply")?;
    let warning = clean(shell.guest.wait_since(
        "using the board's defaults",
        mark,
        LINE_TIMEOUT,
    )?);
    shell.ok(NETWORK_UP)?;
    let settings = shell.ok("net")?;
    shell.expect_output("net", &settings, "settings: /etc/amber/network")?;
    shell.ok("pkg update")?;
    report.network.push(format!(
        "broken settings fall back to the board's defaults: `{warning}`"
    ));
    Ok(())
}

/// The device (and options) of a second card for `board`: the same as its first.
fn card(board: &Board) -> &str {
    board
        .qemu
        .as_ref()
        .map_or("virtio-net-pci", |qemu| &qemu.nic)
}

/// The router test: two guests of `board`, a LAN between them.
pub fn router(board: &Board, repo_port: u16, report: &mut Report) -> Result<(), String> {
    let name = &board.name;
    step(&format!("e2e {name}: the router and a client on its LAN"));
    let images = image::build(board, image::Disk::Skip)?;
    let directory = Path::new("target/e2e/router");
    create_dir(directory)?;
    let disk = |file: &str| -> Result<Boot, String> {
        let path = directory.join(file);
        let _ = std::fs::remove_file(directory.join(format!("{file}.efivars")));
        image::make_disk(board, &images, &path)?;
        Ok(Boot { disk: path })
    };
    let (router_disk, client_disk) = (disk("router.img")?, disk("client.img")?);
    let lan_port = free_port()?;
    let outside_port = free_port()?;
    let options = Options {
        repo_port,
        snapshot: false,
        console: crate::qemu::Console::Piped,
        host_forward: Some((outside_port, 22)),
        extra: vec![
            "-netdev".into(),
            format!("socket,id=lan,listen=127.0.0.1:{lan_port}"),
            "-device".into(),
            format!("{},netdev=lan,mac=52:54:00:08:00:01", card(board)),
        ],
        memory_mib: None,
        reboot: false,
        netdev: None,
    };
    let mut router = Shell::boot(board, &router_disk, &options, report)?;
    router.ok(NETWORK_UP)?;
    router.ok("pkg update")?;
    router.ok("pkg add router dropbear")?;
    // Before it is a router, its ssh port answers from outside.
    let before = banner_within(outside_port, Duration::from_secs(60));
    if before.is_none() {
        return Err(router.failure("no SSH banner through the hostfwd before the firewall"));
    }
    let mark = router.guest.mark();
    router.ok("net set eth1 role lan address 192.168.8.1/24")?;
    let firewall = clean(router.guest.wait_since(
        "firewall: NAT and default deny",
        mark,
        LINE_TIMEOUT,
    )?);
    router
        .guest
        .wait_since("amber: dnsmasq: started", mark, LINE_TIMEOUT)?;
    router.ok(NETWORK_UP)?;
    // From outside, the same port now gives nothing.
    if let Some(banner) = banner_within(outside_port, Duration::from_secs(15)) {
        return Err(router.failure(&format!(
            "the firewall let a connection from outside through to port 22: {banner}"
        )));
    }
    report.network.push(format!(
        "router: `{firewall}`; from outside (the host, through a hostfwd to its WAN) its ssh port answered before, and gives nothing now"
    ));

    let client_options = Options {
        host_forward: None,
        extra: Vec::new(),
        netdev: Some(format!("socket,id=n0,connect=127.0.0.1:{lan_port}")),
        ..options.clone()
    };
    let mut client = Shell::boot(board, &client_disk, &client_options, report)?;
    client.ok(NETWORK_UP)?;
    let status = client.ok("svc status network")?;
    client.expect_output(
        "client: svc status network",
        &status,
        "(dhcp from 192.168.8.1",
    )?;
    let lease = status
        .split(": up: ")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_owned();
    // Only the router's DNS: the board's own TCP server would reach qemu through the NAT.
    client.ok("net dns")?;
    client.ok(NETWORK_UP)?;
    let asked = crate::dns::asked().len();
    let lookup = client.ok(&format!("nslookup {}", crate::dns::REPO_NAME))?;
    client.expect_output("client: nslookup", &lookup, "10.0.2.100")?;
    if crate::dns::asked().len() <= asked {
        return Err(client.failure("the client resolved the name, but not through the router"));
    }
    client.ok("pkg update")?;
    client.ok("pkg add greet")?;
    let greeting = client.ok("/bin/greet router")?;
    client.expect_output("/bin/greet", &greeting, "Greetings, router!")?;
    // From the LAN, the router's ssh port answers.
    let inside = client.ok("echo | timeout 10 nc 192.168.8.1 22 | head -1")?;
    client.expect_output("the router's ssh from the LAN", &inside, "SSH-2.0-")?;
    let leases = router.ok("cat /data/var/dnsmasq.leases")?;
    router.expect_output("the router's leases", &leases, "52:54:00:12:34:56")?;
    report.network.push(format!(
        "client on the LAN: `{lease}`; it resolved {} through the router and ran `pkg add greet` through its NAT; the router's ssh answers from the LAN; the lease is on the router's /data: {}",
        crate::dns::REPO_NAME,
        leases
            .lines()
            .find(|line| line.contains("52:54:00:12:34:56"))
            .unwrap_or("")
            .trim()
    ));
    client.shut_down("poweroff")?;
    router.shut_down("poweroff")?;
    Ok(())
}

/// The first line an SSH server sends through the hostfwd on `port`, if one comes
/// within `timeout` (qemu accepts the connection whether or not the guest answers).
fn banner_within(port: u16, timeout: Duration) -> Option<String> {
    use std::io::Read;
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut bytes = [0u8; 64];
            if let Ok(count) = stream.read(&mut bytes) {
                let line = String::from_utf8_lossy(&bytes[..count]).to_string();
                if line.starts_with("SSH-2.0-") {
                    return Some(line.lines().next().unwrap_or("").to_owned());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}
