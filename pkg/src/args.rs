//! pkg's commands, each described once: the struct a command gets, with its help in doc
//! comments and how each field is given. The parser's tables, the help texts and the
//! conversions are generated from these (`parser.rs`); the structs only hold what was
//! parsed, and `cli.rs` runs them.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use crate::parser::{command, subcommands};

/// The store directory on the device.
pub const DEFAULT_ROOT: &str = "/data/pkg";

command! {
    /// amber's package manager: signed, immutable SquashFS packages.
    pub struct Args("pkg") {
        /// the store directory (default /data/pkg)
        pub root: Option<PathBuf> = value "--root",
        /// print one JSON document instead of text
        pub json: bool = switch "--json",
        /// fail at once instead of waiting when another pkg command holds the store
        pub no_wait: bool = switch "--no-wait",
        pub command: Command = subcommand,
    }
}

subcommands! {
    pub enum Command {
        Update(UpdateArgs),
        Add(AddArgs),
        Del(DelArgs),
        List(ListArgs),
        Info(InfoArgs),
        Search(SearchArgs),
        Which(WhichArgs),
        Prefer(PreferArgs),
        Upgrade(UpgradeArgs),
        Verify(VerifyArgs),
        Gc(GcArgs),
        Rollback(RollbackArgs),
        Key(KeyArgs),
        Repo(RepoArgs),
        Store(StoreArgs),
        Run(RunArgs),
        System(SystemArgs),
        Keygen(KeygenArgs),
        Pack(PackArgs),
    }
}

command! {
    /// Fetch and verify the index of every repository.
    pub struct UpdateArgs("update") {}
}

command! {
    /// Install packages: NAME, NAME with a constraint (busybox>=1.36), NAME@TAG, !NAME, or a local image.
    pub struct AddArgs("add") {
        /// install local images that no trusted index vouches for
        pub allow_untrusted: bool = switch "--allow-untrusted",
        /// what to install
        pub packages: Vec<String> = greedy "packages",
    }
}

command! {
    /// Remove packages, and the dependencies nothing else needs.
    pub struct DelArgs("del") {
        /// package names
        pub packages: Vec<String> = greedy "packages",
    }
}

command! {
    /// List the installed packages.
    pub struct ListArgs("list") {}
}

command! {
    /// Show a package (installed, or in a repository), or the exchange-directory conflicts.
    pub struct InfoArgs("info") {
        /// list the paths several installed packages want in /ro/bin, /ro/lib, ...
        pub conflicts: bool = switch "--conflicts",
        /// the package name
        pub name: Option<String> = optional "name",
    }
}

command! {
    /// Find packages whose name, provides or description contain WORD.
    pub struct SearchArgs("search") {
        /// the word to look for
        pub word: String = positional "word",
    }
}

command! {
    /// Name the installed package that holds PATH (/bin/sh, /ro/bin/sh, bin/sh).
    pub struct WhichArgs("which") {
        /// the path to look up
        pub path: String = positional "path",
    }
}

command! {
    /// Let the installed package NAME keep PATH in /ro/bin, /ro/lib, ... when others have it too.
    pub struct PreferArgs("prefer") {
        /// drop NAME's claim on PATH instead
        pub forget: bool = switch "--forget",
        /// the package name
        pub name: String = positional "name",
        /// the path (/bin/vi, /ro/bin/vi, bin/vi)
        pub path: String = positional "path",
    }
}

command! {
    /// Upgrade every installed package to the newest version allowed.
    pub struct UpgradeArgs("upgrade") {}
}

command! {
    /// Hash every image again and compare with what was verified at install.
    pub struct VerifyArgs("verify") {}
}

command! {
    /// Remove old generations and the images only they used.
    pub struct GcArgs("gc") {
        /// how many of the newest generations to keep (default 3)
        pub keep: u64 = number "--keep" default 3,
    }
}

command! {
    /// Return to the previous generation.
    pub struct RollbackArgs("rollback") {}
}

command! {
    /// Trusted keys.
    pub struct KeyArgs("key") {
        pub command: KeyCommand = subcommand,
    }
}

subcommands! {
    pub enum KeyCommand {
        Add(KeyAddArgs),
        List(KeyListArgs),
        Del(KeyDelArgs),
    }
}

command! {
    /// Trust a minisign public key file.
    pub struct KeyAddArgs("add") {
        /// the public key file
        pub file: PathBuf = positional "file",
    }
}

command! {
    /// List the trusted keys.
    pub struct KeyListArgs("list") {}
}

command! {
    /// Stop trusting a key.
    pub struct KeyDelArgs("del") {
        /// the key id, as `pkg key list` shows it
        pub id: String = positional "id",
    }
}

command! {
    /// Repositories.
    pub struct RepoArgs("repo") {
        pub command: RepoCommand = subcommand,
    }
}

subcommands! {
    pub enum RepoCommand {
        Add(RepoAddArgs),
        List(RepoListArgs),
        Del(RepoDelArgs),
        Index(RepoIndexArgs),
    }
}

command! {
    /// Add a repository: an http(s):// or file:// URL or a path, with optional mirrors.
    pub struct RepoAddArgs("add") {
        /// the repository URL
        pub url: String = positional "url",
        /// a mirror of the same repository, tried in order when the first fails
        pub mirror: Vec<String> = repeated "--mirror",
        /// tag the repository: its packages are only taken when asked for as NAME@TAG
        pub tag: Option<String> = value "--tag",
    }
}

command! {
    /// List the repositories.
    pub struct RepoListArgs("list") {}
}

command! {
    /// Remove a repository.
    pub struct RepoDelArgs("del") {
        /// the repository URL, as `pkg repo list` shows it
        pub url: String = positional "url",
    }
}

command! {
    /// Write and sign the index of a repository directory (host).
    pub struct RepoIndexArgs("index", host) {
        /// the repository root (every <arch>/ below it), or one <repo>/<arch> directory
        pub dir: PathBuf = positional "dir",
        /// the minisign secret key to sign with
        pub secret_key: PathBuf = required "--secret-key",
        /// the index serial (default: the current time in seconds)
        pub serial: Option<u64> = number "--serial",
        /// when the index expires, in unix seconds (default: 30 days from now)
        pub expires: Option<u64> = number "--expires",
    }
}

command! {
    /// The FUSE package store.
    pub struct StoreArgs("store") {
        pub command: StoreCommand = subcommand,
    }
}

subcommands! {
    pub enum StoreCommand {
        Mount(StoreMountArgs),
    }
}

command! {
    /// Mount the store read-only: /ro/<id>/ for every kept image, and the exchange dirs.
    pub struct StoreMountArgs("mount") {
        /// where to mount it (/ro on the device)
        pub mountpoint: PathBuf = positional "mountpoint",
        /// stay in the foreground (init runs it this way)
        pub foreground: bool = switch "--foreground",
        /// the most images open at once (default 64)
        pub max_open: usize = number "--max-open" default 64,
        /// threads serving requests (default 4)
        pub threads: usize = number "--threads" default 4,
    }
}

command! {
    /// Run a command where /ro/bin, /ro/lib, ... show only the named packages' closure.
    pub struct RunArgs("run") {
        /// a package to include, NAME with an optional constraint; repeatable
        pub package: Vec<String> = repeated "-p" "--package",
        /// the command and its arguments (after --)
        pub command: Vec<String> = greedy "command",
    }
}

command! {
    /// The base's A/B system updates: kernel, device binary and keys (device).
    pub struct SystemArgs("system") {
        pub command: SystemCommand = subcommand,
    }
}

subcommands! {
    pub enum SystemCommand {
        Status(SystemStatusArgs),
        Upgrade(SystemUpgradeArgs),
        Rollback(SystemRollbackArgs),
        MarkGood(SystemMarkGoodArgs),
        MarkBad(SystemMarkBadArgs),
    }
}

command! {
    /// Show the running system, the others on the boot partition, and what is offered.
    pub struct SystemStatusArgs("status") {}
}

command! {
    /// Write the newest offered system next to the running one, to be tried at the next boot.
    pub struct SystemUpgradeArgs("upgrade") {
        /// reboot into it at once
        pub reboot: bool = switch "--reboot",
        /// do not wait for this device's rollout wave
        pub now: bool = switch "--now",
        /// install an offered system older than the running one
        pub allow_downgrade: bool = switch "--allow-downgrade",
    }
}

command! {
    /// Boot the previous good system next; the running one is marked bad.
    pub struct SystemRollbackArgs("rollback") {}
}

command! {
    /// Bless the running system: it stays the one booted.
    pub struct SystemMarkGoodArgs("mark-good") {}
}

command! {
    /// Mark the running system bad: the previous good one boots next.
    pub struct SystemMarkBadArgs("mark-bad") {}
}

command! {
    /// Make a minisign key pair (host).
    pub struct KeygenArgs("keygen", host) {
        /// where to write the secret key
        pub secret_key: PathBuf = required "--secret-key",
        /// where to write the public key
        pub public_key: PathBuf = required "--public-key",
        /// overwrite existing key files
        pub force: bool = switch "--force",
    }
}

command! {
    /// Pack a directory into a package image (host).
    pub struct PackArgs("pack", host) {
        /// the directory holding the package's files
        pub dir: PathBuf = positional "dir",
        /// the image to write
        pub output: PathBuf = required "-o" "--output",
        /// package name
        pub name: String = required "--name",
        /// whole version, revision included (1.36.1-r2)
        pub version: String = required "--version",
        /// architecture (x86_64, aarch64, noarch)
        pub arch: String = required "--arch",
        /// a dependency, NAME or NAME with a constraint (musl>=1.2.4), or a conflict !NAME; repeatable
        pub dep: Vec<String> = repeated "--dep",
        /// a name this package also provides, NAME or NAME=VERSION (so:libz.so.1=1.3); repeatable
        pub provides: Vec<String> = repeated "--provides",
        /// which provider of a name to choose first, 1 to 65535 (higher first)
        pub provider_priority: Option<u64> = number "--provider-priority",
        /// install this package once all of these are installed (and remove it when one goes); repeatable
        pub install_if: Vec<String> = repeated "--install-if",
        /// one-line description
        pub description: String = value "--description",
        /// license expression
        pub license: String = value "--license",
        /// the recipe hash recorded in .pkg/meta
        pub recipe_hash: String = value "--recipe-hash",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{parse, Early};

    /// What `pkg ARGS` parses to: the arguments, or the help or usage text.
    fn parsed(args: &[&str]) -> Result<Args, String> {
        match parse(&Args::SPEC, &["pkg"], args) {
            Ok(mut parsed) => Ok(Args::from_parsed(&mut parsed)),
            Err(Early::Help(text) | Early::Usage(text)) => Err(text),
        }
    }

    // Help texts are argh's, word for word; these pin a few of every shape.
    const PKG: &str = "\
Usage: pkg [--root <root>] [--json] [--no-wait] <command> [<args>]

amber's package manager: signed, immutable SquashFS packages.

Options:
  --root            the store directory (default /data/pkg)
  --json            print one JSON document instead of text
  --no-wait         fail at once instead of waiting when another pkg command
                    holds the store
  --help, help      display usage information

Commands:
  update            Fetch and verify the index of every repository.
  add               Install packages: NAME, NAME with a constraint
                    (busybox>=1.36), NAME@TAG, !NAME, or a local image.
  del               Remove packages, and the dependencies nothing else needs.
  list              List the installed packages.
  info              Show a package (installed, or in a repository), or the
                    exchange-directory conflicts.
  search            Find packages whose name, provides or description contain
                    WORD.
  which             Name the installed package that holds PATH (/bin/sh,
                    /ro/bin/sh, bin/sh).
  prefer            Let the installed package NAME keep PATH in /ro/bin,
                    /ro/lib, ... when others have it too.
  upgrade           Upgrade every installed package to the newest version
                    allowed.
  verify            Hash every image again and compare with what was verified at
                    install.
  gc                Remove old generations and the images only they used.
  rollback          Return to the previous generation.
  key               Trusted keys.
  repo              Repositories.
  store             The FUSE package store.
  run               Run a command where /ro/bin, /ro/lib, ... show only the
                    named packages' closure.
  system            The base's A/B system updates: kernel, device binary and
                    keys (device).
  keygen            Make a minisign key pair (host).
  pack              Pack a directory into a package image (host).
";

    const UPDATE: &str = "\
Usage: pkg update

Fetch and verify the index of every repository.

Options:
  --help, help      display usage information
";

    const INFO: &str = "\
Usage: pkg info [--conflicts] [--] [<name>]

Show a package (installed, or in a repository), or the exchange-directory conflicts.

Positional Arguments:
  name              the package name

Options:
  --conflicts       list the paths several installed packages want in /ro/bin,
                    /ro/lib, ...
  --help, help      display usage information
";

    const STORE_MOUNT: &str = "\
Usage: pkg store mount [--foreground] [--max-open <max-open>] [--threads <threads>] [--] <mountpoint>

Mount the store read-only: /ro/<id>/ for every kept image, and the exchange dirs.

Positional Arguments:
  mountpoint        where to mount it (/ro on the device)

Options:
  --foreground      stay in the foreground (init runs it this way)
  --max-open        the most images open at once (default 64)
  --threads         threads serving requests (default 4)
  --help, help      display usage information
";

    const RUN: &str = "\
Usage: pkg run [-p <package...>] [command...]

Run a command where /ro/bin, /ro/lib, ... show only the named packages' closure.

Options:
  -p, --package     a package to include, NAME with an optional constraint;
                    repeatable
  --help, help      display usage information
";

    const KEY: &str = "\
Usage: pkg key <command> [<args>]

Trusted keys.

Options:
  --help, help      display usage information

Commands:
  add               Trust a minisign public key file.
  list              List the trusted keys.
  del               Stop trusting a key.
";

    #[cfg(feature = "host")]
    const PACK: &str = "\
Usage: pkg pack -o <output> --name <name> --version <version> --arch <arch> [--dep <dep...>] [--provides <provides...>] [--provider-priority <provider-priority>] [--install-if <install-if...>] [--description <description>] [--license <license>] [--recipe-hash <recipe-hash>] [--] <dir>

Pack a directory into a package image (host).

Positional Arguments:
  dir               the directory holding the package's files

Options:
  -o, --output      the image to write
  --name            package name
  --version         whole version, revision included (1.36.1-r2)
  --arch            architecture (x86_64, aarch64, noarch)
  --dep             a dependency, NAME or NAME with a constraint (musl>=1.2.4),
                    or a conflict !NAME; repeatable
  --provides        a name this package also provides, NAME or NAME=VERSION
                    (so:libz.so.1=1.3); repeatable
  --provider-priority
                    which provider of a name to choose first, 1 to 65535 (higher
                    first)
  --install-if      install this package once all of these are installed (and
                    remove it when one goes); repeatable
  --description     one-line description
  --license         license expression
  --recipe-hash     the recipe hash recorded in .pkg/meta
  --help, help      display usage information
";

    #[cfg(not(feature = "host"))]
    const PACK: &str = "\
Usage: pkg pack [arguments...]

Pack a directory into a package image (host).

Options:
  --help, help      display usage information
";

    #[test]
    fn help_texts_are_argh_s() {
        let table: &[(&[&str], &str)] = &[
            (&["--help"], PKG),
            (&["help"], PKG),
            (&["update", "--help"], UPDATE),
            (&["help", "update"], UPDATE),
            (&["info", "help"], INFO),
            (&["store", "mount", "--help"], STORE_MOUNT),
            (&["run", "--help"], RUN),
            (&["key", "--help"], KEY),
            (&["pack", "--help"], PACK),
        ];
        for (args, expected) in table {
            assert_eq!(parsed(args).unwrap_err(), *expected, "{args:?}");
        }
    }

    #[test]
    fn usage_errors_are_argh_s() {
        let table: &[(&[&str], &str)] = &[
            (&["frobnicate"], "Unrecognized argument: frobnicate\n"),
            (&["--bogus", "list"], "Unrecognized argument: --bogus\n"),
            (&["list", "extra"], "Unrecognized argument: extra\n"),
            (
                &["search"],
                "Required positional arguments not provided:\n    word\n",
            ),
            (
                &["key"],
                "One of the following subcommands must be present:\n    help\n    add\n    \
                 list\n    del\n",
            ),
            (
                &["gc", "--keep"],
                "No value provided for option '--keep'.\n",
            ),
            (
                &["gc", "--keep", "many"],
                "Error parsing option '--keep' with value 'many': invalid digit found in \
                 string\n",
            ),
            (
                &["gc", "--keep", "1", "--keep", "2"],
                "Error parsing option '--keep' with value '2': duplicate values provided\n",
            ),
            (
                &["--help", "--json"],
                "Trailing arguments are not allowed after `help`.",
            ),
        ];
        for (args, expected) in table {
            assert_eq!(parsed(args).unwrap_err(), *expected, "{args:?}");
        }
    }

    #[test]
    fn fields_get_what_was_given() {
        let args = parsed(&[
            "--root",
            "/r",
            "--json",
            "add",
            "--allow-untrusted",
            "a",
            "-b",
        ])
        .unwrap();
        assert_eq!(args.root, Some(PathBuf::from("/r")));
        assert!(args.json && !args.no_wait);
        let Command::Add(add) = args.command else {
            panic!("{:?}", args.command)
        };
        assert!(add.allow_untrusted);
        assert_eq!(add.packages, ["a", "-b"]);

        let args = parsed(&["store", "mount", "/ro", "--threads", "2"]).unwrap();
        assert_eq!(args.root, None);
        let Command::Store(StoreArgs {
            command: StoreCommand::Mount(mount),
        }) = args.command
        else {
            panic!("{:?}", args.command)
        };
        assert_eq!(mount.mountpoint, PathBuf::from("/ro"));
        assert!(!mount.foreground);
        assert_eq!((mount.max_open, mount.threads), (64, 2));

        let Command::Gc(gc) = parsed(&["gc"]).unwrap().command else {
            panic!()
        };
        assert_eq!(gc.keep, 3);

        let args = parsed(&["run", "-p", "a", "--package", "b", "--", "sh", "-c", "x"]).unwrap();
        let Command::Run(run) = args.command else {
            panic!("{:?}", args.command)
        };
        assert_eq!(run.package, ["a", "b"]);
        assert_eq!(run.command, ["sh", "-c", "x"]);

        let args = parsed(&["repo", "add", "http://a", "--mirror", "http://b"]).unwrap();
        let Command::Repo(RepoArgs {
            command: RepoCommand::Add(add),
        }) = args.command
        else {
            panic!("{:?}", args.command)
        };
        assert_eq!(
            (add.url.as_str(), add.mirror.as_slice()),
            ("http://a", &["http://b".to_owned()][..])
        );
    }
}
