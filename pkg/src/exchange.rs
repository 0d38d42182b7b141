//! The exchange directories (`/ro/bin`, `/ro/lib`, ...): the union of those directories
//! of a set of packages, each file a relative symlink into its package's `/ro/<id>/`.
//!
//! Conflicts are resolved the same way every time: packages are merged in priority
//! order (explicitly requested first, then the newest version, then the name) and the
//! first package to claim a path keeps it. Directories of several packages merge; a
//! path that is a file in one package and anything in another is a conflict, recorded
//! so `pkg info --conflicts` can show it. Symlink targets are relative and never climb
//! above `/ro`, so nothing here points outside the store.

use amber_core::index::Entry;
use amber_core::squashfs::read::{Archive, Cache, Inode, Kind};
use amber_core::squashfs::ReadAt;

/// The exchange directories, in the order each package's are merged.
pub const DIRS: [&str; 7] = ["bin", "sbin", "lib", "share", "etc", "include", "svc"];

/// The deepest path merged; deeper entries are left out (an image may be hostile).
const MAX_DEPTH: usize = 32;
/// The most nodes one tree may hold.
const MAX_NODES: usize = 1 << 20;

/// Sort packages by exchange priority: explicit first, then newest version, then name.
pub fn priority_order(packages: &mut [(&Entry, bool)]) {
    amber_core::sort::sort_by(packages, |(a, a_explicit), (b, b_explicit)| {
        b_explicit
            .cmp(a_explicit)
            .then_with(|| b.version.cmp(&a.version))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// The exchange tree of packages given with whether each was asked for explicitly:
/// sorted by priority, each image opened with `open` in turn (so at most one is open
/// at a time here). A package whose image cannot be opened adds nothing.
pub fn build_for<R, A>(
    mut packages: Vec<(&Entry, bool)>,
    mut open: impl FnMut(&Entry) -> Option<A>,
    cache: &mut Cache,
) -> Tree
where
    R: ReadAt,
    A: std::ops::Deref<Target = Archive<R>>,
{
    priority_order(&mut packages);
    let mut tree = Tree::empty();
    for (entry, _) in packages {
        let id = entry.id().to_string();
        match open(entry) {
            Some(archive) => {
                let mut listing = ImageListing {
                    archive: &archive,
                    cache: &mut *cache,
                };
                tree.add(id, &mut listing);
            }
            None => tree.packages.push(id),
        }
    }
    tree.shrink();
    tree
}

/// One node: an exchange directory (or a directory inside one), or a link. Its name
/// is [`Tree::name`]: names live in one buffer, since a store holds many thousands of
/// nodes for as long as it is mounted.
#[derive(Debug, Clone)]
pub struct Node {
    name_start: u32,
    name_len: u16,
    pub parent: u32,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// Children sorted by name (node indexes).
    Dir(Vec<u32>),
    /// A link to the same path inside this package (an index into the package list).
    Link(u32),
}

/// A path two packages both want; the first named keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub winner: String,
    pub loser: String,
}

/// The merged exchange directories of one set of packages.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Node 0 is the store root; its children are the [`DIRS`], always present.
    pub nodes: Vec<Node>,
    /// Every node's name, one after the other.
    names: Vec<u8>,
    /// Package ids in priority order; `NodeKind::Link` points into this list.
    pub packages: Vec<String>,
    pub conflicts: Vec<Conflict>,
}

/// How the builder sees one package image's directories.
pub trait Listing {
    /// The entries of directory `path` (relative to the image root, like `bin` or
    /// `share/man`), sorted by name: (name, is_directory). `None` when `path` is not a
    /// directory in the image.
    fn list(&mut self, path: &str) -> Option<Vec<(Vec<u8>, bool)>>;
}

impl Tree {
    /// An empty tree: the exchange directories with nothing in them.
    pub fn empty() -> Tree {
        let mut tree = Tree {
            nodes: Vec::new(),
            names: Vec::new(),
            packages: Vec::new(),
            conflicts: Vec::new(),
        };
        tree.push(b"", 0, NodeKind::Dir(Vec::new()));
        let mut children = Vec::new();
        for dir in DIRS {
            children.push(tree.push(dir.as_bytes(), 0, NodeKind::Dir(Vec::new())));
        }
        // Node i + 1 is DIRS[i], but children are kept sorted by name like every other
        // directory's, since [`Tree::child`] searches them by bisection.
        amber_core::sort::sort_by(&mut children, |&a, &b| tree.name(a).cmp(tree.name(b)));
        tree.nodes[0].kind = NodeKind::Dir(children);
        tree
    }

    /// Add a node; returns its index. Names are at most 256 bytes (image names are
    /// checked by the reader).
    fn push(&mut self, name: &[u8], parent: u32, kind: NodeKind) -> u32 {
        let index = self.nodes.len() as u32;
        let name = &name[..name.len().min(u16::MAX as usize)];
        self.nodes.push(Node {
            name_start: self.names.len() as u32,
            name_len: name.len() as u16,
            parent,
            kind,
        });
        self.names.extend_from_slice(name);
        index
    }

    /// The name of a node.
    pub fn name(&self, node: u32) -> &[u8] {
        let node = &self.nodes[node as usize];
        let start = node.name_start as usize;
        &self.names[start..start + usize::from(node.name_len)]
    }

    /// Give back the room kept for growth, once every package is merged.
    pub fn shrink(&mut self) {
        self.nodes.shrink_to_fit();
        self.names.shrink_to_fit();
        for node in &mut self.nodes {
            if let NodeKind::Dir(children) = &mut node.kind {
                children.shrink_to_fit();
            }
        }
    }

    /// Merge packages, given in priority order, each with a way to list its image.
    pub fn build<'l>(packages: impl IntoIterator<Item = (String, &'l mut dyn Listing)>) -> Tree {
        let mut tree = Tree::empty();
        for (id, listing) in packages {
            tree.add(id, listing);
        }
        tree
    }

    /// Merge the next package (lower priority than every package merged before).
    pub fn add(&mut self, id: String, listing: &mut dyn Listing) {
        let owner = self.packages.len() as u32;
        self.packages.push(id);
        for (index, dir) in DIRS.iter().enumerate() {
            self.merge(listing, owner, index as u32 + 1, dir.to_string(), 1);
        }
    }

    fn merge(
        &mut self,
        listing: &mut dyn Listing,
        owner: u32,
        node: u32,
        path: String,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let Some(entries) = listing.list(&path) else {
            return;
        };
        for (name, is_dir) in entries {
            // The names buffer is indexed with u32.
            if self.nodes.len() >= MAX_NODES || self.names.len() > u32::MAX as usize / 2 {
                return;
            }
            let child_path = format!("{path}/{}", String::from_utf8_lossy(&name));
            match self.child(node, &name) {
                Err(slot) => {
                    let kind = if is_dir {
                        NodeKind::Dir(Vec::new())
                    } else {
                        NodeKind::Link(owner)
                    };
                    let index = self.push(&name, node, kind);
                    if let NodeKind::Dir(children) = &mut self.nodes[node as usize].kind {
                        children.insert(slot, index);
                    }
                    if is_dir {
                        self.merge(listing, owner, index, child_path, depth + 1);
                    }
                }
                Ok(existing) => match (&self.nodes[existing as usize].kind, is_dir) {
                    (NodeKind::Dir(_), true) => {
                        self.merge(listing, owner, existing, child_path, depth + 1)
                    }
                    (kind, _) => {
                        let winner = match kind {
                            NodeKind::Link(winner) => self.packages[*winner as usize].clone(),
                            NodeKind::Dir(_) => self.first_owner(existing),
                        };
                        self.conflicts.push(Conflict {
                            path: child_path,
                            winner,
                            loser: self.packages[owner as usize].clone(),
                        });
                    }
                },
            }
        }
    }

    /// The package that first put something under a merged directory.
    fn first_owner(&self, node: u32) -> String {
        let mut stack = vec![node];
        let mut best: Option<u32> = None;
        while let Some(n) = stack.pop() {
            match &self.nodes[n as usize].kind {
                NodeKind::Link(owner) => best = Some(best.map_or(*owner, |b| b.min(*owner))),
                NodeKind::Dir(children) => stack.extend(children),
            }
        }
        best.map_or_else(String::new, |o| self.packages[o as usize].clone())
    }

    /// The child of directory `node` called `name`: Ok(index) or Err(insertion slot).
    pub fn child(&self, node: u32, name: &[u8]) -> Result<u32, usize> {
        let NodeKind::Dir(children) = &self.nodes[node as usize].kind else {
            return Err(0);
        };
        children
            .binary_search_by(|&c| self.name(c).cmp(name))
            .map(|slot| children[slot])
    }

    /// The path of a node below the store root: `bin/sh`.
    pub fn path(&self, node: u32) -> String {
        let mut parts = Vec::new();
        let mut n = node;
        while n != 0 {
            parts.push(String::from_utf8_lossy(self.name(n)).into_owned());
            n = self.nodes[n as usize].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// The target of a link node: relative, from its directory up to the store root and
    /// down into the package (`../busybox-1.36.1-r2/bin/sh`).
    pub fn link_target(&self, node: u32) -> Option<String> {
        let NodeKind::Link(owner) = self.nodes[node as usize].kind else {
            return None;
        };
        let path = self.path(node);
        let depth = path.matches('/').count();
        Some(format!(
            "{}{}/{path}",
            "../".repeat(depth),
            self.packages[owner as usize]
        ))
    }
}

/// Lists an image's directories through the SquashFS reader; errors hide the directory.
pub struct ImageListing<'a, R: ReadAt> {
    pub archive: &'a Archive<R>,
    pub cache: &'a mut Cache,
}

impl<R: ReadAt> Listing for ImageListing<'_, R> {
    fn list(&mut self, path: &str) -> Option<Vec<(Vec<u8>, bool)>> {
        let dir: Inode = self.archive.lookup_path(path, self.cache).ok()?;
        if !dir.is_dir() {
            return None;
        }
        let mut entries = Vec::new();
        let result = self.archive.read_dir(&dir, 0, self.cache, |entry| {
            entries.push((entry.name.to_vec(), entry.kind == Kind::Dir));
            entries.len() < 1 << 16
        });
        result.ok()?;
        Some(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A package given as a list of paths; a trailing `/` marks a directory.
    struct Fake(BTreeMap<String, Vec<(Vec<u8>, bool)>>);

    impl Fake {
        fn new(paths: &[&str]) -> Fake {
            let mut dirs: BTreeMap<String, Vec<(Vec<u8>, bool)>> = BTreeMap::new();
            for path in paths {
                let is_dir = path.ends_with('/');
                let path = path.trim_end_matches('/');
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
                dirs.entry(parent.to_owned())
                    .or_default()
                    .push((name.as_bytes().to_vec(), is_dir));
                if is_dir {
                    dirs.entry(path.to_owned()).or_default();
                }
            }
            for entries in dirs.values_mut() {
                entries.sort();
            }
            Fake(dirs)
        }
    }

    impl Listing for Fake {
        fn list(&mut self, path: &str) -> Option<Vec<(Vec<u8>, bool)>> {
            self.0.get(path).cloned()
        }
    }

    fn links(tree: &Tree) -> Vec<String> {
        (0..tree.nodes.len() as u32)
            .filter_map(|n| Some(format!("{} -> {}", tree.path(n), tree.link_target(n)?)))
            .collect()
    }

    #[test]
    fn merges_in_priority_order_and_records_conflicts() {
        let mut busybox = Fake::new(&[
            "bin/",
            "bin/sh",
            "bin/ls",
            "share/",
            "share/man/",
            "share/man/ls.1",
        ]);
        let mut toybox = Fake::new(&[
            "bin/",
            "bin/sh",
            "bin/toybox",
            "share/",
            "share/man/",
            "share/man/toybox.1",
        ]);
        let mut odd = Fake::new(&["bin/", "bin/ls/", "bin/ls/x", "etc/", "etc/odd.conf"]);
        let tree = Tree::build([
            (
                "busybox-1.36.1-r2".to_owned(),
                &mut busybox as &mut dyn Listing,
            ),
            (
                "toybox-0.8.11-r0".to_owned(),
                &mut toybox as &mut dyn Listing,
            ),
            ("odd-1-r0".to_owned(), &mut odd as &mut dyn Listing),
        ]);
        assert_eq!(
            links(&tree),
            [
                "bin/ls -> ../busybox-1.36.1-r2/bin/ls",
                "bin/sh -> ../busybox-1.36.1-r2/bin/sh",
                "share/man/ls.1 -> ../../busybox-1.36.1-r2/share/man/ls.1",
                "bin/toybox -> ../toybox-0.8.11-r0/bin/toybox",
                "share/man/toybox.1 -> ../../toybox-0.8.11-r0/share/man/toybox.1",
                "etc/odd.conf -> ../odd-1-r0/etc/odd.conf",
            ]
        );
        let conflicts: Vec<String> = tree
            .conflicts
            .iter()
            .map(|c| format!("{}: {} over {}", c.path, c.winner, c.loser))
            .collect();
        assert_eq!(
            conflicts,
            [
                "bin/sh: busybox-1.36.1-r2 over toybox-0.8.11-r0",
                "bin/ls: busybox-1.36.1-r2 over odd-1-r0",
            ]
        );
        // Listing order inside a merged directory is by name.
        let bin = tree.child(0, b"bin").unwrap();
        let NodeKind::Dir(children) = &tree.nodes[bin as usize].kind else {
            panic!()
        };
        let names: Vec<&[u8]> = children.iter().map(|&c| tree.name(c)).collect();
        assert_eq!(names, [&b"ls"[..], b"sh", b"toybox"]);
    }

    #[test]
    fn every_exchange_dir_exists_even_when_empty() {
        let tree = Tree::build(std::iter::empty());
        for dir in DIRS {
            assert!(tree.child(0, dir.as_bytes()).is_ok(), "{dir}");
        }
    }
}
