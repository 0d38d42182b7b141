//! The board's kernel: fetched as a Debian package through apt (or taken from a path,
//! or built from Debian's kernel source by [`crate::kbuild`]), extracted and cached
//! under `target/kernels/<board>/`.
//!
//! apt runs with state of its own (see [`crate::debian`]), so fetching a foreign
//! architecture's kernel needs neither root nor a change to the host's apt
//! configuration. A cached kernel is reused while the board's kernel source
//! stays the same; delete `target/kernels/<board>/` to fetch the newest again.

use crate::board::{Arch, Board, KernelSource};
use crate::util::{create_dir, step, write};
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
    let (origin, tree) = match &board.kernel {
        KernelSource::Build { fragment, patches } => (
            crate::kbuild::build(&board.name, board.arch, fragment, patches, &tree)?,
            tree,
        ),
        KernelSource::Debian(package) => {
            crate::debian::unpack(&download(board, package, &cache)?, &tree)?
        }
        KernelSource::Path(path) if path.extension().is_some_and(|ext| ext == "deb") => {
            crate::debian::unpack(path, &tree)?
        }
        KernelSource::Path(directory) => (directory.display().to_string(), directory.clone()),
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
        // The fragment's and the patches' bytes, so that a change builds again.
        KernelSource::Build { fragment, patches } => {
            std::iter::once(fragment)
                .chain(patches)
                .fold("build".to_owned(), |line, file| {
                    format!(
                        "{line} {} {}",
                        file.display(),
                        crate::util::sha256_file(file).unwrap_or_default()
                    )
                })
        }
    }
}

/// Download the kernel package, following metapackages to the versioned image package.
fn download(board: &Board, package: &str, into: &Path) -> Result<PathBuf, String> {
    let arch = board.arch.debian();
    let fresh = crate::debian::ensure_lists(arch, "main")?;
    match download_newest(board, package, into) {
        Ok(deb) => Ok(deb),
        // Lists from an earlier run may name a version the archive no longer has.
        Err(_) if !fresh => {
            step("the package lists may be stale: updating them and trying again");
            crate::debian::apt("apt-get", arch, "main")?
                .arg("update")
                .run()?;
            download_newest(board, package, into)
        }
        Err(error) => Err(error),
    }
}

fn download_newest(board: &Board, package: &str, into: &Path) -> Result<PathBuf, String> {
    let name = follow_metapackage(board.arch, package, "linux-image-")?;
    crate::debian::download(board.arch.debian(), "main", &name, into)
}

/// The versioned package a metapackage such as `linux-image-cloud-amd64` or
/// `linux-source` stands for: the one dependency whose name starts with `prefix`,
/// followed a few steps at most. A package that is not a metapackage is itself.
pub fn follow_metapackage(arch: Arch, package: &str, prefix: &str) -> Result<String, String> {
    crate::debian::ensure_lists(arch.debian(), "main")?;
    let mut name = package.to_owned();
    for _ in 0..4 {
        let depends = crate::debian::apt("apt-cache", arch.debian(), "main")?
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
        let versioned: Vec<&str> = depends
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Depends: "))
            .filter(|dependency| dependency.starts_with(prefix))
            .collect();
        match versioned.as_slice() {
            [] => break,
            [one] => name = (*one).to_owned(),
            _ => {
                return Err(format!(
                    "package {name} depends on several {prefix}* packages: {}",
                    versioned.join(", ")
                ))
            }
        }
    }
    Ok(name)
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
