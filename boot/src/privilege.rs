//! Least privilege for a service: what its file asks for (`user`, `group`,
//! `capabilities`, `no_new_privs`, `private-tmp`, `state`, `memory-max`, `tasks-max`)
//! turned into the [`sys::Confinement`] its process applies to itself before exec.
//!
//! - `user`/`group`: the uid and gid from the users table; the group is the only
//!   supplementary group.
//! - `capabilities`: only these stay, in the bounding set too, so nothing the service
//!   starts can gain others (an ssh login is no more than dropbear). A service running
//!   as its own user gets them as ambient capabilities, and keeps them when it changes
//!   users itself (SECBIT_NO_SETUID_FIXUP, locked). Without the key a root service
//!   keeps init's and another user's service has none.
//! - `state DIR`: a mount namespace of its own where /data is read-only except DIR,
//!   which init makes and gives to the service's user. `private-tmp`: a fresh tmpfs on
//!   /tmp in that namespace. Its mounts are slaves of init's, so the store mounted
//!   again after a crash shows up there too.
//! - `memory-max`, `tasks-max`: the service's cgroup (`cgroup.rs`).

use std::path::{Path, PathBuf};

use crate::cgroup;
use crate::service::Definition;
use crate::sys::{self, Confinement};
use crate::users::Table;

/// The places a confinement refers to, which tests move under a directory.
#[derive(Debug)]
pub struct Places {
    /// /data: made read-only for services with a `state`.
    pub data: PathBuf,
    /// /tmp: replaced for services with `private-tmp`.
    pub tmp: PathBuf,
    /// The services' parent cgroup, when cgroups work.
    pub cgroups: Option<PathBuf>,
}

/// The confinement of service `name`, or why it cannot start. `warn` hears what is
/// not enforced (limits without cgroups).
#[inline(never)]
pub fn prepare(
    name: &str,
    definition: &Definition,
    users: &Table,
    places: &Places,
    warn: &mut dyn FnMut(String),
) -> Result<Confinement, String> {
    let user =
        match &definition.user {
            Some(user) => Some(users.user(user).ok_or_else(|| {
                format!("no user {user} (a package declares it in users/{user})")
            })?),
            None => None,
        };
    let gid = match &definition.group {
        Some(group) => Some(
            users
                .group(group)
                .ok_or_else(|| format!("no group {group}"))?,
        ),
        None => user.map(|user| user.gid),
    };
    let uid = user.map_or(0, |user| user.uid);
    let ids = (user.is_some() || gid.is_some()).then(|| (uid, gid.unwrap_or(0)));

    let state = match &definition.state {
        Some(state) => {
            // The file names /data/...; a test supervisor's data lives elsewhere.
            let relative = state.strip_prefix("/data/").unwrap_or(state);
            let path = places.data.join(relative);
            make_state(&path, ids.unwrap_or((0, 0)))
                .map_err(|error| format!("state {}: {error}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    let mounts = if state.is_some() || definition.private_tmp {
        let tmp = definition.private_tmp.then_some(places.tmp.as_path());
        let data = state.as_deref().map(|state| (places.data.as_path(), state));
        Some(sys::Mounts::new(tmp, data).map_err(|error| error.to_string())?)
    } else {
        None
    };

    let limited = definition.memory_max.is_some() || definition.tasks_max.is_some();
    let cgroup_procs = match &places.cgroups {
        Some(parent) => {
            match cgroup::prepare(parent, name, definition.memory_max, definition.tasks_max) {
                Ok(procs) => Some(procs),
                Err(error) if limited => {
                    return Err(format!("cgroup {}: {error}", parent.join(name).display()))
                }
                Err(_) => None,
            }
        }
        None => {
            if limited {
                warn("memory-max and tasks-max are not enforced here (no cgroup v2)".into());
            }
            None
        }
    };
    // A service of another user has no capabilities unless it names some.
    let capabilities = definition.capabilities.or_else(|| (uid != 0).then_some(0));
    Ok(Confinement {
        cgroup_procs,
        oom_score_adj: b"0",
        nice: 0,
        mounts,
        ids,
        capabilities,
        no_new_privs: definition.no_new_privs,
        environment: match definition.env.is_empty() {
            true => None,
            false => Some(sys::Environment::new(&definition.env).map_err(|e| e.to_string())?),
        },
    })
}

/// Make the state directory and give it, with everything in it, to the service's user
/// when it belongs to another (as after a change of user, or files left by root).
fn make_state(path: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !path.is_dir() {
        std::fs::create_dir_all(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    let metadata = std::fs::metadata(path)?;
    if metadata.uid() != uid || metadata.gid() != gid {
        give(path, uid, gid, 0)?;
    }
    Ok(())
}

fn give(path: &Path, uid: u32, gid: u32, depth: usize) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if depth < 16 && std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give(&entry?.path(), uid, gid, depth + 1)?;
        }
    }
    Ok(())
}
