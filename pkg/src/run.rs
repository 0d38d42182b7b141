//! `pkg run -p NAME... -- COMMAND`: run a command where the exchange directories show
//! only the closure of the named packages (static-distro's `withpkgs`).
//!
//! In a private mount namespace, a tmpfs is mounted over each exchange directory of the
//! mounted store and filled with the closure's symlinks, merged by the same rule as the
//! store's; then COMMAND replaces pkg, so its exit code is the command's.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use amber_core::index::{Entry, Index};
use amber_core::solve::{Mode, Pool};
use amber_core::squashfs::read::Cache;
use amber_core::version::Dependency;

use crate::context::{Context, Report};
use crate::error::{Context as _, Error};
use crate::exchange::{self, NodeKind, Tree};
use crate::store::Store;

pub fn run(context: &Context, packages: &[String], command: &[String]) -> Result<Report, Error> {
    if packages.is_empty() {
        return Err(Error::usage("run: name at least one package with -p NAME"));
    }
    let Some((program, arguments)) = command.split_first() else {
        return Err(Error::usage("run: give the command after --"));
    };
    let mut requests = Vec::new();
    for name in packages {
        requests.push(Dependency::parse(name).map_err(|e| Error::usage(format!("{name}: {e}")))?);
    }
    let store = Store::open(&context.root);
    let current = store.current()?;
    // Candidates: every package of every kept generation; their images are all here.
    // Each id once, sorted by id, the newest generation's entry kept (a sorted list
    // rather than a map: one map type fewer in the device binary).
    let mut candidates: Vec<(String, Entry)> = Vec::new();
    for number in store.generation_numbers()? {
        for entry in store.generation(number)?.packages {
            let id = entry.id().to_string();
            match candidates.binary_search_by(|(known, _)| known.cmp(&id)) {
                Ok(at) => candidates[at].1 = entry,
                Err(at) => candidates.insert(at, (id, entry)),
            }
        }
    }
    let index = Index {
        arch: context.arch.clone(),
        serial: 0,
        expires: 0,
        packages: candidates.into_iter().map(|(_, entry)| entry).collect(),
        systems: Vec::new(),
    };
    let installed: Vec<_> = current.packages.iter().map(|e| e.id()).collect();
    let closure = Pool::new(&[&index])
        .solve(&requests, &installed, Mode::Keep)
        .map_err(|e| Error::new(e.to_string()))?;

    let mountpoint = crate::mount::ask(&context.root, "mountpoint", Duration::from_secs(10))?
        .ok_or_else(|| {
            Error::new(format!(
                "no store is mounted for {}: start one with `pkg store mount`",
                context.root.display()
            ))
        })?;
    let mountpoint = Path::new(&mountpoint);
    let explicit = |name: &str| requests.iter().any(|r| r.name == name);
    let mut cache = Cache::new();
    let tree = exchange::build_for(
        closure.iter().map(|e| (*e, explicit(&e.name))).collect(),
        |entry| {
            crate::image::open(&store.image_path(entry))
                .ok()
                .map(Box::new)
        },
        &mut cache,
    );

    private_namespace()?;
    for dir in exchange::DIRS {
        let target = mountpoint.join(dir);
        mount_tmpfs(&target)?;
        let node = tree.child(0, dir.as_bytes()).unwrap_or(0);
        populate(&tree, node, &target)?;
    }
    let error = std::process::Command::new(program).args(arguments).exec();
    Err(Error::new(format!("{program}: {error}")))
}

/// Enter a new mount namespace whose mounts do not propagate back.
fn private_namespace() -> Result<(), Error> {
    // SAFETY: unshare and mount take no pointers to our memory but the static strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(Error::new(format!(
                "run: cannot make a mount namespace: {}",
                std::io::Error::last_os_error()
            )));
        }
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(Error::new(format!(
                "run: cannot make mounts private: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

fn mount_tmpfs(target: &Path) -> Result<(), Error> {
    let path = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::new("run: path contains NUL"))?;
    let options = c"mode=0755";
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let status = unsafe {
        libc::mount(
            c"amber-run".as_ptr(),
            path.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if status != 0 {
        return Err(Error::new(format!(
            "run: cannot mount a tmpfs on {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Create the directories and symlinks below `node` in `dir`.
fn populate(tree: &Tree, node: u32, dir: &Path) -> Result<(), Error> {
    let NodeKind::Dir(children) = &tree.nodes[node as usize].kind else {
        return Ok(());
    };
    if node == 0 {
        return Ok(());
    }
    for &child in children {
        let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(tree.name(child));
        let path = dir.join(name);
        match &tree.nodes[child as usize].kind {
            NodeKind::Dir(_) => {
                std::fs::create_dir(&path).context(path.display())?;
                populate(tree, child, &path)?;
            }
            NodeKind::Link(_) => {
                let target = tree.link_target(child).unwrap_or_default();
                std::os::unix::fs::symlink(&target, &path).context(path.display())?;
            }
        }
    }
    Ok(())
}
