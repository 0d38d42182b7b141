//! `pkg pack DIR -o OUT.squashfs --name N --version V --arch A [--dep D]...` (host):
//! turn a directory into a reproducible package image with its `.pkg/meta`.
//!
//! The arguments are checked into a [`Meta`] before anything is read, then DIR is
//! walked (symlinks stored as symlinks, never followed; sockets, fifos and devices
//! refused), and the image is written to a temporary file next to OUT, fsynced and
//! renamed into place, so OUT is either the old file or the whole new one.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use amber_core::line::{is_valid_arch, parse_sha256};
use amber_core::meta::Meta;
use amber_core::squashfs::write::{
    write_image, Contents, DirId, FileId, Options, Sink, Tree, WriteError,
};
use amber_core::version::{is_valid_name, Dependency, Provide, Version};

use crate::args::PackArgs;
use crate::context::Report;
use crate::durable;
use crate::error::{Context, Error};

/// The directory inside every image that holds `meta`; DIR must not have one.
pub const META_DIR: &str = ".pkg";
/// The metadata file's name inside [`META_DIR`].
pub const META_FILE: &str = "meta";

pub fn run(args: &PackArgs) -> Result<Report, Error> {
    let mtime = source_date_epoch(std::env::var_os("SOURCE_DATE_EPOCH").as_deref())?;
    let mut meta = check_args(args)?;
    check_output(&args.dir, &args.output)?;
    let mut scan = scan(&args.dir)?;
    meta.size = scan.payload;

    let root = scan.tree.root();
    let meta_dir = scan
        .tree
        .add_dir(root, META_DIR.as_bytes(), 0o755)
        .map_err(|error| Error::from_args(format_args!("{}: {error}", args.dir.display())))?;
    let text = meta.to_text().into_bytes();
    let meta_file = scan
        .tree
        .add_file(meta_dir, META_FILE.as_bytes(), 0o644, text.len() as u64)
        .map_err(|error| Error::from_args(format_args!("{}: {error}", args.dir.display())))?;
    debug_assert_eq!(meta_file.index(), scan.sources.len());
    scan.sources.push(Source::Memory(text));

    let options = Options {
        mtime,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Options::default()
    };
    let size = write_output(&args.output, |sink| {
        let mut contents = Sources {
            sources: &scan.sources,
            open: None,
        };
        write_image(&scan.tree, &options, &mut contents, sink)
            .map(|summary| summary.image_size)
            .map_err(|error| match error {
                WriteError::Read { file, error } => {
                    let path = match &scan.sources[file.index()] {
                        Source::Disk(path) => path.display().to_string(),
                        Source::Memory(_) => format!("{META_DIR}/{META_FILE}"),
                    };
                    Error::from_args(format_args!("{path}: {error}"))
                }
                WriteError::Sink(error) => {
                    Error::from_args(format_args!("{}: {error}", args.output.display()))
                }
                other => Error::from_args(format_args!("{}: {other}", args.output.display())),
            })
    })?;
    let line = format!("wrote {} ({size} bytes)\n", args.output.display());
    crate::stdout::write(&line).context("stdout")?;
    Ok(Report::empty())
}

/// SOURCE_DATE_EPOCH (https://reproducible-builds.org/specs/source-date-epoch/): unset
/// means 0; anything but a decimal number of seconds that fits the image's 32-bit
/// times is an error rather than a silently different image.
fn source_date_epoch(value: Option<&OsStr>) -> Result<u32, Error> {
    let Some(value) = value else {
        return Ok(0);
    };
    let text = value.to_str().unwrap_or("");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::argument(
            "SOURCE_DATE_EPOCH",
            None,
            "not a decimal number of seconds",
        ));
    }
    text.parse::<u32>().map_err(|_| {
        Error::argument(
            "SOURCE_DATE_EPOCH",
            None,
            "beyond 4294967295, the latest time SquashFS can store",
        )
    })
}

/// Check every argument that goes into `.pkg/meta`; `size` is filled in after the walk.
fn check_args(args: &PackArgs) -> Result<Meta, Error> {
    if !is_valid_name(&args.name) {
        return Err(Error::argument(
            "--name",
            Some(&args.name),
            "invalid package name (expected [a-z0-9][a-z0-9+._-]* without -<digit>)",
        ));
    }
    let version = Version::parse(&args.version)
        .map_err(|error| Error::argument("--version", Some(&args.version), error))?;
    // The whole version names one build of a package, so it carries its revision.
    let has_revision = args.version.rsplit_once("-r").is_some_and(|(_, revision)| {
        !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_digit())
    });
    if !has_revision {
        return Err(Error::argument(
            "--version",
            Some(&args.version),
            "give the whole version with its revision, like 1.36.1-r2",
        ));
    }
    if !is_valid_arch(&args.arch) {
        return Err(Error::argument(
            "--arch",
            Some(&args.arch),
            "invalid architecture (expected [a-z0-9_]+, at most 32 bytes)",
        ));
    }
    let mut deps = Vec::new();
    for dep in &args.dep {
        let parsed =
            Dependency::parse(dep).map_err(|error| Error::argument("--dep", Some(dep), error))?;
        if deps
            .iter()
            .any(|seen: &Dependency| seen.name == parsed.name && seen.conflict == parsed.conflict)
        {
            return Err(Error::argument(
                "--dep",
                Some(dep),
                format_args!("{} is given twice", parsed.name),
            ));
        }
        deps.push(parsed);
    }
    let mut provides: Vec<Provide> = Vec::new();
    for text in &args.provides {
        let provide = Provide::parse(text)
            .map_err(|error| Error::argument("--provides", Some(text), error))?;
        if provides.iter().any(|seen| seen.name == provide.name) {
            return Err(Error::argument("--provides", Some(text), "given twice"));
        }
        provides.push(provide);
    }
    let provider_priority = match args.provider_priority {
        None => 0,
        Some(priority) => u16::try_from(priority)
            .ok()
            .filter(|&priority| priority > 0)
            .ok_or_else(|| {
                Error::argument(
                    "--provider-priority",
                    Some(&priority.to_string()),
                    "not a number from 1 to 65535",
                )
            })?,
    };
    let mut install_if: Vec<Dependency> = Vec::new();
    for text in &args.install_if {
        let parsed = Dependency::parse(text)
            .map_err(|error| Error::argument("--install-if", Some(text), error))?;
        if parsed.conflict {
            return Err(Error::argument(
                "--install-if",
                Some(text),
                "takes no conflict (!NAME)",
            ));
        }
        if install_if.iter().any(|seen| seen.name == parsed.name) {
            return Err(Error::argument("--install-if", Some(text), "given twice"));
        }
        install_if.push(parsed);
    }
    // A newline would split the meta line and shift the blame below to the wrong option.
    for (option, text) in [
        ("--description", &args.description),
        ("--license", &args.license),
    ] {
        if text.chars().any(char::is_control) {
            return Err(Error::argument(
                option,
                None,
                "contains a control character (one line of text expected)",
            ));
        }
    }
    let recipe =
        if args.recipe_hash.is_empty() {
            None
        } else {
            Some(parse_sha256(&args.recipe_hash).map_err(|error| {
                Error::argument("--recipe-hash", Some(&args.recipe_hash), error)
            })?)
        };
    let meta = Meta {
        name: args.name.clone(),
        version,
        arch: args.arch.clone(),
        deps,
        provides,
        provider_priority,
        install_if,
        description: args.description.clone(),
        license: args.license.clone(),
        size: 0,
        recipe,
    };
    // The meta parser is the one authority on what a valid file is (description and
    // license rules included): what pack writes must read back as the same thing.
    let text = meta.to_text();
    match Meta::parse(&text) {
        Ok(parsed) if parsed == meta => Ok(meta),
        Ok(_) => Err(Error::new("package metadata does not read back as written")),
        Err(error) => {
            // Name the option the offending line came from, by the line's key.
            const OPTIONS: [(&str, &str); 10] = [
                ("name", "--name"),
                ("version", "--version"),
                ("arch", "--arch"),
                ("deps", "--dep"),
                ("provides", "--provides"),
                ("provider_priority", "--provider-priority"),
                ("install_if", "--install-if"),
                ("description", "--description"),
                ("license", "--license"),
                ("recipe", "--recipe-hash"),
            ];
            let key = error
                .line
                .checked_sub(1)
                .and_then(|line| text.lines().nth(line))
                .and_then(|line| line.split(' ').next());
            match OPTIONS.iter().find(|(known, _)| Some(*known) == key) {
                Some((_, option)) => Err(Error::argument(option, None, error.reason)),
                None => Err(Error::from_args(format_args!("package metadata: {error}"))),
            }
        }
    }
}

/// Refuse an output inside DIR: a second pack would swallow the first image.
fn check_output(dir: &Path, output: &Path) -> Result<(), Error> {
    let dir = fs::canonicalize(dir).context(dir.display())?;
    if !dir.is_dir() {
        return Err(Error::from_args(format_args!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let parent = fs::canonicalize(parent).context(parent.display())?;
    if parent.starts_with(&dir) {
        return Err(Error::from_args(format_args!(
            "{}: the image would be written inside the directory being packed",
            output.display()
        )));
    }
    Ok(())
}

/// Where a file's contents come from.
enum Source {
    Disk(PathBuf),
    Memory(Vec<u8>),
}

struct Scan {
    tree: Tree,
    /// By [`FileId`].
    sources: Vec<Source>,
    /// Total bytes of regular files: the installed payload.
    payload: u64,
}

/// Walk DIR into a tree. The image's root is always `0o755`: it is mounted as
/// `/ro/<id>`, and the mode of a build's temporary directory should not leak in.
fn scan(dir: &Path) -> Result<Scan, Error> {
    let reserved = dir.join(META_DIR);
    if fs::symlink_metadata(&reserved).is_ok() {
        return Err(Error::from_args(format_args!(
            "{}: already exists; pack writes {META_DIR}/{META_FILE} itself",
            reserved.display()
        )));
    }
    let mut scan = Scan {
        tree: Tree::new(),
        sources: Vec::new(),
        payload: 0,
    };
    let mut pending: Vec<(PathBuf, DirId)> = vec![(dir.to_path_buf(), scan.tree.root())];
    while let Some((dir, id)) = pending.pop() {
        let mut entries = fs::read_dir(&dir)
            .context(dir.display())?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<Vec<_>, _>>()
            .context(dir.display())?;
        // The tree sorts entries itself; sorting here only makes errors repeatable.
        entries.sort();
        for path in entries {
            let meta = fs::symlink_metadata(&path).context(path.display())?;
            let name = path.file_name().unwrap_or_default().as_bytes();
            let kind = meta.file_type();
            let mode = (meta.permissions().mode() & 0o7777) as u16;
            let added = if kind.is_symlink() {
                let target = fs::read_link(&path).context(path.display())?;
                scan.tree
                    .add_symlink(id, name, target.as_os_str().as_bytes())
            } else if kind.is_dir() {
                scan.tree.add_dir(id, name, mode).map(|child| {
                    pending.push((path.clone(), child));
                })
            } else if kind.is_file() {
                scan.payload += meta.len();
                scan.tree.add_file(id, name, mode, meta.len()).map(|file| {
                    debug_assert_eq!(file.index(), scan.sources.len());
                    scan.sources.push(Source::Disk(path.clone()));
                })
            } else {
                return Err(Error::from_args(format_args!(
                    "{}: {} cannot go in a package (only files, directories and symlinks)",
                    path.display(),
                    describe(kind)
                )));
            };
            added.map_err(|error| Error::from_args(format_args!("{}: {error}", path.display())))?;
        }
    }
    Ok(scan)
}

fn describe(kind: fs::FileType) -> &'static str {
    if kind.is_socket() {
        "a socket"
    } else if kind.is_fifo() {
        "a fifo"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else {
        "this file type"
    }
}

/// File contents for the writer, keeping the last file open.
struct Sources<'a> {
    sources: &'a [Source],
    open: Option<(FileId, File)>,
}

impl Contents for Sources<'_> {
    type Error = std::io::Error;

    fn read(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let path = match &self.sources[file.index()] {
            Source::Memory(bytes) => {
                return amber_core::squashfs::ReadAt::read_at(bytes, offset, buf).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read")
                });
            }
            Source::Disk(path) => path,
        };
        if !matches!(&self.open, Some((id, _)) if *id == file) {
            self.open = Some((file, File::open(path)?));
        }
        let Some((_, handle)) = &self.open else {
            unreachable!("opened just above");
        };
        handle.read_exact_at(buf, offset).map_err(|error| {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::new(error.kind(), "the file shrank while being packed")
            } else {
                error
            }
        })
    }
}

/// The image file being written: buffered appends, and one positioned write for the
/// superblock at the end.
struct FileSink(BufWriter<File>);

impl Sink for FileSink {
    type Error = std::io::Error;

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.flush()?;
        self.0.get_ref().write_all_at(bytes, offset)
    }
}

/// Write `output` through a temporary file in the same directory: fsync it, rename
/// it over `output`, fsync the directory. On any error the temporary file is removed
/// and `output` is untouched.
fn write_output<T>(
    output: &Path,
    write: impl FnOnce(&mut FileSink) -> Result<T, Error>,
) -> Result<T, Error> {
    if output.file_name().is_none() {
        return Err(Error::from_args(format_args!(
            "{}: not a file name",
            output.display()
        )));
    }
    let temp = durable::temp_path(output);
    let file = durable::create_new(&temp)?;
    let result = (|| {
        let mut sink = FileSink(BufWriter::with_capacity(1 << 20, file));
        let value = write(&mut sink)?;
        let file = sink.0.into_inner().map_err(|error| {
            Error::from_args(format_args!("{}: {}", temp.display(), error.error()))
        })?;
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .context(temp.display())?;
        file.sync_all().context(temp.display())?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
        return result;
    }
    durable::rename_durable(&temp, output)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn args() -> PackArgs {
        PackArgs {
            dir: PathBuf::from("unused"),
            output: PathBuf::from("unused.squashfs"),
            name: "busybox".into(),
            version: "1.36.1-r2".into(),
            arch: "x86_64".into(),
            dep: vec!["musl>=1.2.4".into()],
            provides: vec!["sh".into()],
            provider_priority: None,
            install_if: Vec::new(),
            description: "The Swiss army knife".into(),
            license: "GPL-2.0-only".into(),
            recipe_hash: String::new(),
        }
    }

    #[test]
    fn source_date_epoch_parses_strictly() {
        let table: &[(Option<&str>, Option<u32>)] = &[
            (None, Some(0)),
            (Some("0"), Some(0)),
            (Some("1700000000"), Some(1_700_000_000)),
            (Some("4294967295"), Some(u32::MAX)),
            (Some("4294967296"), None),
            (Some(""), None),
            (Some("-1"), None),
            (Some(" 1"), None),
            (Some("1e9"), None),
        ];
        for (value, expected) in table {
            let got = source_date_epoch(value.map(OsStr::new)).ok();
            assert_eq!(got, *expected, "{value:?}");
        }
    }

    #[test]
    fn arguments_become_meta() {
        let meta = check_args(&args()).unwrap();
        assert_eq!(meta.name, "busybox");
        assert_eq!(meta.version.as_str(), "1.36.1-r2");
        assert_eq!(meta.deps.len(), 1);
        assert_eq!(meta.provides, [Provide::any("sh")]);
        let mut full = args();
        full.dep.push("!toybox".into());
        full.provides.push("cmd:vi=1.36.1-r2".into());
        full.provider_priority = Some(10);
        full.install_if = vec!["base".into(), "lang>=2".into()];
        let meta = check_args(&full).unwrap();
        assert_eq!(
            meta.to_text().lines().skip(3).take(4).collect::<Vec<_>>(),
            [
                "deps musl>=1.2.4,!toybox",
                "provides sh,cmd:vi=1.36.1-r2",
                "provider_priority 10",
                "install_if base,lang>=2"
            ]
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        type Edit = fn(&mut PackArgs);
        let table: &[(Edit, &str)] = &[
            (|a| a.name = "Busybox".into(), "--name"),
            (|a| a.name = "foo-1".into(), "--name"),
            (|a| a.version = "1..2".into(), "--version"),
            (|a| a.version = String::new(), "--version"),
            (|a| a.version = "1.0".into(), "--version"),
            (|a| a.arch = "x86-64".into(), "--arch"),
            (|a| a.dep = vec!["musl>>1".into()], "--dep"),
            (|a| a.dep = vec!["musl".into(), "musl>=1".into()], "--dep"),
            (|a| a.provides = vec!["Sh".into()], "--provides"),
            (|a| a.provides = vec!["busybox".into()], "--provides"),
            (|a| a.provides = vec!["sh>=1".into()], "--provides"),
            (
                |a| a.provides = vec!["sh=1".into(), "sh".into()],
                "--provides",
            ),
            (|a| a.dep = vec!["!busybox".into()], "--dep"),
            (|a| a.dep = vec!["musl".into(), "!musl".into()], "--dep"),
            (|a| a.install_if = vec!["busybox".into()], "--install-if"),
            (|a| a.install_if = vec!["!x".into()], "--install-if"),
            (
                |a| a.install_if = vec!["x".into(), "x>=1".into()],
                "--install-if",
            ),
            (
                |a| {
                    a.provides.clear();
                    a.provider_priority = Some(3);
                },
                "--provider-priority",
            ),
            (|a| a.provider_priority = Some(0), "--provider-priority"),
            (
                |a| a.provider_priority = Some(70_000),
                "--provider-priority",
            ),
            (
                |a| a.provides = vec!["sh".into(), "sh".into()],
                "--provides",
            ),
            (|a| a.recipe_hash = "abc".into(), "--recipe-hash"),
            (|a| a.description = "two\nlines".into(), "--description"),
            (|a| a.license = "caf\u{e9}".into(), "--license"),
            (|a| a.description = "x".repeat(1025), "--description"),
        ];
        for (edit, expected) in table {
            let mut args = args();
            edit(&mut args);
            let error = check_args(&args).unwrap_err();
            assert_eq!(error.kind(), Kind::Argument(expected), "{error}");
            let line = error.to_string();
            assert!(line.starts_with(expected) && !line.contains('\n'), "{line}");
        }
    }
}
