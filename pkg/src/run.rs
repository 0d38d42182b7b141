//! `pkg run -p NAME[CONSTRAINT]... -- COMMAND`: run a command in an environment of
//! exactly the closure of the named packages (static-distro's `withpkgs`).
//!
//! The closure is solved against the kept generations and the repositories, as `add`
//! would; what the store lacks is fetched and verified into `images/`, but no world or
//! generation changes, so `gc` may remove it later. While the command runs, a lease
//! (`Store::lease`) keeps `gc` from removing the images it uses.
//!
//! The view: in a private mount namespace a tmpfs covers the store's mount point (the
//! one the mounted store answers `mountpoint` with; `<root>/run` when no store is
//! mounted for the root or its control socket is root's only), and in it
//! - `<id>/` for each package of the closure: the mounted store's own `/ro/<id>/`
//!   bound in when it shows that package, else the image unpacked into the tmpfs
//!   (SquashFS cannot be mounted by a user, and FUSE needs `/dev/fuse`, which is often
//!   root's only: unpacking is the one way that works for everyone; it happens only
//!   here, in memory that goes with the namespace);
//! - the exchange directories (`bin`, `lib`, ...) with only the closure's symlinks,
//!   merged by the store's rule.
//!
//! `PATH` starts with the view's `bin` and `sbin`; then COMMAND replaces pkg, so its
//! exit code is the command's.
//!
//! No root is needed where the kernel lets users make user namespaces: pkg then enters
//! a new user namespace (its own uid and gid mapped to themselves) with its mount
//! namespace, so the mounts are its own and the command runs with the user's rights.
//! Where it does not (`user.max_user_namespaces` is 0, Debian's
//! `kernel.unprivileged_userns_clone` is 0, or a security module refuses), `pkg run`
//! says so in one line and needs root.

#![forbid(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use amber_core::index::{Entry, Index};
use amber_core::solve::{Mode, Pool};
use amber_core::squashfs::read::{Archive, Cache, DirEntry, Inode, Kind};
use amber_core::squashfs::ReadAt;
use amber_core::version::{Dependency, PackageId};

use crate::context::{Context, Report};
use crate::error::{Context as _, Error};
use crate::exchange::{self, NodeKind, Tree};
use crate::install::{self, Wanted};
use crate::repo;
use crate::store::Store;

/// The deepest directory unpacked; deeper entries are an error (an image may be hostile).
const MAX_DEPTH: usize = 32;

pub fn run(context: &Context, packages: &[String], command: &[String]) -> Result<Report, Error> {
    if packages.is_empty() {
        return Err(Error::usage("run: name at least one package with -p NAME"));
    }
    let Some((program, arguments)) = command.split_first() else {
        return Err(Error::usage("run: give the command after --"));
    };
    let mut requests = Vec::new();
    for name in packages {
        match Wanted::parse(name)? {
            Wanted::Request(request) => requests.push(request),
            Wanted::Local(path) => {
                return Err(Error::usage_args(format_args!(
                    "{path}: run takes packages, not local images (pkg add them first)"
                )))
            }
        }
    }
    let store = Store::open(&context.root);
    let current = store.current()?;
    let closure = solve(context, &store, &current, &requests)?;

    // Fetch what the store lacks, and lease the images outside the current generation
    // so that gc keeps them while the command runs.
    let outside: Vec<String> = closure
        .iter()
        .filter(|(entry, _)| {
            !current
                .packages
                .iter()
                .any(|e| e.name == entry.name && e.version == entry.version)
        })
        .map(|(entry, _)| entry.file_name())
        .collect();
    let lease = if outside.is_empty() {
        None
    } else {
        let (store, _lock) = Store::open_locked(&context.root, context.wait)?;
        let cached = repo::read_indexes(&store).unwrap_or_default();
        let indexes = repo::accept(&store, &cached, &context.arch, &context.clock)?;
        let jobs = install::missing_images(&store, &current, &closure, &indexes)?;
        crate::download::fetch_all(&jobs, &store.images_dir(), &context.arch, &context.limits)?;
        Some(store.lease(&outside)?)
    };

    let mounted = amber_store::mount::mountpoint(&context.root)?;
    let mountpoint = match &mounted {
        Some(mountpoint) => mountpoint.clone(),
        None => {
            let dir = context.root.join("run");
            std::fs::create_dir_all(&dir).context(dir.display())?;
            dir
        }
    };
    enter_namespace()?;
    // The packages the mounted store shows, opened in the new namespace (a bind mount's
    // source must be in it) before the tmpfs covers them.
    let mut shown = Vec::new();
    if mounted.is_some() {
        for (entry, _) in closure.iter() {
            if current.packages.iter().any(|e| e.id() == entry.id()) {
                if let Ok(fd) = open_path(&mountpoint.join(entry.id().to_string())) {
                    shown.push((entry.id(), fd));
                }
            }
        }
    }
    mount_tmpfs(&mountpoint)?;
    for (entry, _) in closure.iter() {
        let id = entry.id();
        let target = mountpoint.join(id.to_string());
        std::fs::create_dir(&target).context(target.display())?;
        match shown.iter().find(|(shown_id, _)| *shown_id == id) {
            Some((_, fd)) => bind(&format!("/proc/self/fd/{fd}"), &target)?,
            None => unpack(&store.image_path(entry), &target)
                .map_err(|e| e.context(format!("run: unpacking {id}")))?,
        }
    }
    let explicit = |name: &str| requests.iter().any(|r| r.name == name);
    let mut cache = Cache::new();
    let tree = exchange::build_for(
        closure
            .iter()
            .map(|(entry, _)| (entry, explicit(&entry.name)))
            .collect(),
        &current.preferences,
        |entry| {
            crate::image::open(&store.image_path(entry))
                .ok()
                .map(Box::new)
        },
        &mut cache,
    );
    for dir in exchange::DIRS {
        let target = mountpoint.join(dir);
        std::fs::create_dir(&target).context(target.display())?;
        let node = tree.child(0, dir.as_bytes()).unwrap_or(0);
        populate(&tree, node, &target)?;
    }
    let mut path = std::ffi::OsString::from(mountpoint.join("bin"));
    path.push(":");
    path.push(mountpoint.join("sbin"));
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    if let Some(lease) = lease {
        lease.keep_across_exec()?;
    }
    // Set in pkg's own environment, which the command inherits: pkg runs no other
    // thread now, and a Command's own environment map costs the device binary 4 KB.
    std::env::set_var("PATH", path);
    let error = amber_base::process::Command::new(program)
        .args(arguments)
        .exec();
    Err(Error::from_args(format_args!("{program}: {error}")))
}

/// The closure, each package with the repository (by position) it comes from.
type Closure = Vec<(Entry, Option<usize>)>;

/// Solve `requests` against every package of every kept generation (their images are
/// here) and the repositories.
fn solve(
    context: &Context,
    store: &Store,
    current: &amber_core::generation::Generation,
    requests: &[Dependency],
) -> Result<Closure, Error> {
    // Each id once, sorted by id, the newest generation's entry kept (a sorted list
    // rather than a map: one map type fewer in the device binary).
    let mut kept: Vec<(String, Entry)> = Vec::new();
    for number in store.generation_numbers()? {
        for entry in store.generation(number)?.packages {
            let id = entry.id().to_string();
            match kept.binary_search_by(|(known, _)| known.cmp(&id)) {
                Ok(at) => kept[at].1 = entry,
                Err(at) => kept.insert(at, (id, entry)),
            }
        }
    }
    let kept = Index {
        arch: context.arch.clone(),
        serial: 0,
        expires: 0,
        packages: kept.into_iter().map(|(_, entry)| entry).collect(),
        systems: Vec::new(),
    };
    // Repositories are optional here: what the store holds may be enough.
    let cached = match store.repositories()?.is_empty() {
        true => Vec::new(),
        false => repo::read_indexes(store)?,
    };
    let indexes = repo::accept(store, &cached, &context.arch, &context.clock)?;
    let (sources, repos) = install::sources(None, &kept, &indexes);
    let installed: Vec<PackageId> = current.packages.iter().map(Entry::id).collect();
    let closure = Pool::with_sources(&sources)
        .solve(requests, &installed, Mode::Keep)
        .map_err(|e| Error::from_args(format_args!("{e}")))?;
    Ok(closure
        .iter()
        .map(|chosen| (chosen.to_entry(), repos[chosen.source()]))
        .collect())
}

fn c_path(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::from_args(format_args!("run: {}: path contains NUL", path.display())))
}

/// A descriptor of a directory that only names it (O_PATH), for a bind mount later.
/// It is close-on-exec, so the command never inherits it.
fn open_path(path: &Path) -> Result<i32, Error> {
    crate::sys::open_path_dir(&c_path(path)?)
        .map_err(|e| Error::from_args(format_args!("{}: {e}", path.display())))
}

/// Enter a new mount namespace whose mounts do not propagate back; as a user, inside
/// a new user namespace that maps the user's own uid and gid to themselves.
fn enter_namespace() -> Result<(), Error> {
    let (euid, uid, gid) = crate::sys::ids();
    // pkg has no other thread running here (the downloads are joined).
    if let Err(error) = crate::sys::unshare(euid != 0) {
        if euid != 0 {
            return Err(Error::from_args(format_args!(
                "run: this kernel lets no user make a user namespace ({error}); \
                 pkg run needs root here"
            )));
        }
        return Err(Error::from_args(format_args!(
            "run: cannot make a mount namespace: {error}"
        )));
    }
    if euid != 0 {
        // The user's own ids only: setgroups must be denied before a user may map
        // its group.
        for (file, text) in [
            ("/proc/self/setgroups", "deny".to_owned()),
            ("/proc/self/uid_map", format!("{uid} {uid} 1")),
            ("/proc/self/gid_map", format!("{gid} {gid} 1")),
        ] {
            std::fs::write(file, text).map_err(|e| {
                Error::from_args(format_args!("run: {file}: {e}; pkg run needs root here"))
            })?;
        }
    }
    crate::sys::make_mounts_private()
        .map_err(|e| Error::from_args(format_args!("run: cannot make mounts private: {e}")))
}

fn mount_tmpfs(target: &Path) -> Result<(), Error> {
    crate::sys::mount_tmpfs(&c_path(target)?).map_err(|e| {
        Error::from_args(format_args!(
            "run: cannot mount a tmpfs on {}: {e}",
            target.display()
        ))
    })
}

/// Bind `source` (a path, `/proc/self/fd/N` included) onto `target`.
fn bind(source: &str, target: &Path) -> Result<(), Error> {
    let from = CString::new(source).map_err(|_| Error::new("run: path contains NUL"))?;
    crate::sys::bind(&from, &c_path(target)?).map_err(|e| {
        Error::from_args(format_args!(
            "run: cannot show {} at {}: {e}",
            source,
            target.display()
        ))
    })
}

/// Unpack a verified image into `into`: directories, files (permission bits without
/// set-id bits) and symlinks as they are; nothing else is made.
fn unpack(image: &Path, into: &Path) -> Result<(), Error> {
    let archive = crate::image::open(image)?;
    let mut cache = Cache::new();
    let root = archive
        .root(&mut cache)
        .map_err(|e| Error::from_args(format_args!("{}: {e}", image.display())))?;
    unpack_dir(&archive, &root, into, 0, &mut cache).map_err(|e| e.context(image.display()))
}

fn unpack_dir<R: ReadAt>(
    archive: &Archive<R>,
    dir: &Inode,
    path: &Path,
    depth: usize,
    cache: &mut Cache,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::from_args(format_args!(
            "{}: nested deeper than {MAX_DEPTH} directories",
            path.display()
        )));
    }
    let fail =
        |e: &dyn std::fmt::Display| Error::from_args(format_args!("{}: {e}", path.display()));
    // The listing first: the reader's entries borrow it, and unpacking needs the cache.
    let mut entries: Vec<(Vec<u8>, u64, Kind, u32)> = Vec::new();
    archive
        .read_dir(dir, 0, cache, &mut |entry| {
            entries.push((
                entry.name.to_vec(),
                entry.reference,
                entry.kind,
                entry.inode_number,
            ));
            true
        })
        .map_err(|e| fail(&e))?;
    for (name, reference, kind, inode_number) in entries {
        let listed = DirEntry {
            name: &name,
            reference,
            kind,
            inode_number,
            offset: 0,
        };
        let inode = archive
            .entry_inode(dir, &listed, cache)
            .map_err(|e| fail(&e))?;
        let target = path.join(OsStr::from_bytes(&name));
        match inode.kind {
            Kind::Dir => {
                std::fs::create_dir(&target).context(target.display())?;
                unpack_dir(archive, &inode, &target, depth + 1, cache)?;
            }
            Kind::File => {
                let mut file = crate::durable::create_new(&target)?;
                let mut buffer = vec![0u8; 128 * 1024];
                let mut offset = 0;
                loop {
                    let n = archive
                        .read(&inode, offset, &mut buffer, cache)
                        .map_err(|e| fail(&e))?;
                    if n == 0 {
                        break;
                    }
                    std::io::Write::write_all(&mut file, &buffer[..n]).context(target.display())?;
                    offset += n as u64;
                }
                let mode = u32::from(inode.mode) & 0o777;
                std::fs::set_permissions(
                    &target,
                    std::os::unix::fs::PermissionsExt::from_mode(mode),
                )
                .context(target.display())?;
            }
            Kind::Symlink => {
                let link = archive.read_link(&inode, cache).map_err(|e| fail(&e))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target)
                    .context(target.display())?;
            }
            // pkg pack makes none of these; an image from elsewhere may.
            _ => {}
        }
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
        let name = OsStr::from_bytes(tree.name(child));
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
