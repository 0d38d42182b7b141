//! The board's kernel: fetched as a Debian package through apt (or taken from a path),
//! extracted and cached under `target/kernels/<board>/`.
//!
//! apt runs with its own lists and cache directories under `target/kernels/apt-<arch>/`,
//! so fetching a foreign architecture's kernel needs neither root nor a change to the
//! host's apt configuration. A cached kernel is reused while the board's kernel source
//! stays the same; delete `target/kernels/<board>/` to fetch the newest again.

use crate::board::{Board, KernelSource};
use crate::cmd::Cmd;
use crate::util::{create_dir, path_str, step, write};
use std::path::{Path, PathBuf};

/// An extracted kernel: the image to boot and its module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// What it came from, e.g. `linux-image-6.1.0-56-cloud-amd64 6.1.192-2`.
    pub origin: String,
    /// The kernel release (`uname -r`), the name of its `lib/modules/` directory.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>/` of the extracted tree.
    pub modules_dir: PathBuf,
}

const STAMP: &str = "source";

/// Fetch (or reuse) and extract the board's kernel.
pub fn prepare(board: &Board) -> Result<Kernel, String> {
    let cache = Path::new("target/kernels").join(&board.name);
    let wanted = source_line(board);
    let stamp = cache.join(STAMP);
    let tree = cache.join("tree");
    if let Ok(text) = std::fs::read_to_string(&stamp) {
        let mut lines = text.lines();
        if lines.next() == Some(wanted.as_str()) && tree.is_dir() {
            let origin = lines.next().unwrap_or("?").to_owned();
            return locate(&tree, origin);
        }
    }
    step(&format!("kernel for {}: {wanted}", board.name));
    // Start from an empty cache so a half-finished earlier attempt leaves nothing behind.
    if cache.exists() {
        std::fs::remove_dir_all(&cache)
            .map_err(|e| format!("cannot clear {}: {e}", cache.display()))?;
    }
    create_dir(&cache)?;
    let (deb, directory) = match &board.kernel {
        KernelSource::Debian(package) => (Some(download(board, package, &cache)?), None),
        KernelSource::Path(path) if path.extension().is_some_and(|ext| ext == "deb") => {
            (Some(path.clone()), None)
        }
        KernelSource::Path(path) => (None, Some(path.clone())),
    };
    let (origin, tree) = match (deb, directory) {
        (Some(deb), _) => {
            let fields = Cmd::new("dpkg-deb")
                .args(["-f", path_str(&deb)?, "Package", "Version"])
                .output()?;
            let origin = fields
                .lines()
                .filter_map(|line| line.split_once(": ").map(|(_, value)| value))
                .collect::<Vec<_>>()
                .join(" ");
            Cmd::new("dpkg-deb")
                .args(["-x", path_str(&deb)?, path_str(&tree)?])
                .run()?;
            (origin, tree)
        }
        (None, Some(directory)) => (directory.display().to_string(), directory),
        (None, None) => unreachable!("one of the two is always set"),
    };
    let kernel = locate(&tree, origin)?;
    write(&stamp, format!("{wanted}\n{}\n", kernel.origin).as_bytes())?;
    Ok(kernel)
}

/// The board's kernel source as one line, to notice when it changes.
fn source_line(board: &Board) -> String {
    match &board.kernel {
        KernelSource::Debian(package) => format!("debian {} {package}", board.arch.debian()),
        KernelSource::Path(path) => format!("path {}", path.display()),
    }
}

/// apt-get with its own state for the board's architecture, under target/.
fn apt(program: &str, board: &Board) -> Result<Cmd, String> {
    let root = std::fs::canonicalize("target")
        .map_err(|e| format!("target/: {e}"))?
        .join(format!("kernels/apt-{}", board.arch.debian()));
    let lists = root.join("lists");
    let cache = root.join("cache");
    create_dir(&lists.join("partial"))?;
    create_dir(&cache.join("archives/partial"))?;
    let arch = board.arch.debian();
    Ok(Cmd::new(program).args([
        "-q".to_owned(),
        "-o".to_owned(),
        format!("APT::Architecture={arch}"),
        "-o".to_owned(),
        format!("APT::Architectures={arch}"),
        "-o".to_owned(),
        format!("Dir::State::Lists={}", lists.display()),
        "-o".to_owned(),
        format!("Dir::Cache={}", cache.display()),
        // As root, apt would hand downloads to its `_apt` user, which cannot write here.
        "-o".to_owned(),
        "APT::Sandbox::User=root".to_owned(),
        // Only the package lists are needed, not translations or AppStream data.
        "-o".to_owned(),
        "Acquire::Languages=none".to_owned(),
        "-o".to_owned(),
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
        "-o".to_owned(),
        "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_owned(),
        "-o".to_owned(),
        "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_owned(),
    ]))
}

/// Download the kernel package, following metapackages to the versioned image package.
fn download(board: &Board, package: &str, into: &Path) -> Result<PathBuf, String> {
    let lists = std::fs::canonicalize("target")
        .map_err(|e| format!("target/: {e}"))?
        .join(format!("kernels/apt-{}/lists", board.arch.debian()));
    let has_lists = std::fs::read_dir(&lists).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().contains("_Packages"))
    });
    if !has_lists {
        apt("apt-get", board)?.arg("update").run()?;
    }
    match download_newest(board, package, into) {
        Ok(deb) => Ok(deb),
        // Lists from an earlier run may name a version the archive no longer has.
        Err(_) if has_lists => {
            step("the package lists may be stale: updating them and trying again");
            apt("apt-get", board)?.arg("update").run()?;
            download_newest(board, package, into)
        }
        Err(error) => Err(error),
    }
}

fn download_newest(board: &Board, package: &str, into: &Path) -> Result<PathBuf, String> {
    let mut name = package.to_owned();
    // A metapackage such as linux-image-cloud-amd64 depends on exactly one versioned
    // linux-image package; follow the chain a few steps at most.
    for _ in 0..4 {
        let depends = apt("apt-cache", board)?
            .args([
                "depends",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                &name,
            ])
            .output()?;
        let images: Vec<&str> = depends
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Depends: "))
            .filter(|dependency| dependency.starts_with("linux-image-"))
            .collect();
        match images.as_slice() {
            [] => break,
            [one] => name = (*one).to_owned(),
            _ => {
                return Err(format!(
                    "kernel package {name} depends on several kernel images: {}",
                    images.join(", ")
                ))
            }
        }
    }
    let absolute = std::fs::canonicalize(into).map_err(|e| format!("{}: {e}", into.display()))?;
    apt("apt-get", board)?
        .args(["download", &name])
        .current_dir(&absolute)
        .run()?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(into)
        .map_err(|e| format!("{}: {e}", into.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    match debs.len() {
        1 => Ok(debs.remove(0)),
        n => Err(format!(
            "expected one .deb for {name} in {}, found {n}",
            into.display()
        )),
    }
}

/// Find `boot/vmlinuz-<release>` and its `lib/modules/<release>/` in an extracted tree.
fn locate(tree: &Path, origin: String) -> Result<Kernel, String> {
    let boot = tree.join("boot");
    let mut images: Vec<(String, PathBuf)> = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let release = name.strip_prefix("vmlinuz-")?.to_owned();
            Some((release, entry.path()))
        })
        .collect();
    let (release, vmlinuz) = match images.len() {
        1 => images.remove(0),
        n => {
            return Err(format!(
                "{}: expected one vmlinuz-<release>, found {n}",
                boot.display()
            ))
        }
    };
    // Debian 12 keeps modules in /lib/modules; later releases in /usr/lib/modules.
    let modules_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|dir| tree.join(dir).join(&release))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| format!("{}: no lib/modules/{release}/", tree.display()))?;
    Ok(Kernel {
        origin,
        release,
        vmlinuz,
        modules_dir,
    })
}
