//! The exchange directories (`/ro/bin`, `/ro/lib`, ...): the union of those directories
//! of a set of packages, each file a relative symlink into its package's `/ro/<id>/`.
//!
//! Conflicts are resolved the same way every time. Who keeps a contested path:
//! 1. the package the user chose for it (`pkg prefer NAME PATH`; the nearest choice
//!    for a path below a chosen directory);
//! 2. then a package requested by name (in the world) over one pulled in as a
//!    dependency;
//! 3. then the higher `provider_priority`;
//! 4. then the name, alphabetically, so the result is the same every time.
//!
//! Versions are not compared: they belong to different packages and say nothing about
//! which one should own `/ro/bin/vi`. Packages are merged in the order of rules 2 to 4
//! after the chosen paths are claimed (rule 1), and the first package to claim a path
//! keeps it. Directories of several packages merge; a path that is a file in one
//! package and anything in another is a conflict, recorded with the rule that decided
//! it, so `pkg info --conflicts` can show it. Symlink targets are relative and never
//! climb above `/ro`, so nothing here points outside the store.
//!
//! The mounted store keeps what it merged: a [`Recorded`] listing of each image (read
//! once, when the image first appears) and the last tree, which [`Tree::update`] turns
//! into the next one when packages come and go without touching a conflict or a path
//! the user chose (and the choices stay the same). A change that does touch one is
//! merged afresh from the recorded listings, by the same rule. Either way the tree is
//! the one a fresh merge of the images gives.

#![forbid(unsafe_code)]

use std::cell::Cell;

use amber_core::generation::Preference;
use amber_core::index::Entry;
use amber_core::squashfs::read::{Archive, Cache, Inode, Kind};
use amber_core::squashfs::ReadAt;

/// The exchange directories, in the order each package's are merged.
pub const DIRS: [&str; 7] = amber_core::generation::EXCHANGE_DIRS;

/// The deepest path merged; deeper entries are left out (an image may be hostile).
const MAX_DEPTH: usize = 32;
/// The most nodes one tree may hold.
const MAX_NODES: usize = 1 << 20;

/// Sort packages by exchange priority: requested by name first, then the higher
/// `provider_priority`, then the name (then the version, for the rare set that holds
/// two of one name).
pub fn priority_order(packages: &mut [(&Entry, bool)]) {
    amber_core::sort::sort_by(packages, |(a, a_explicit), (b, b_explicit)| {
        b_explicit
            .cmp(a_explicit)
            .then_with(|| b.provider_priority.cmp(&a.provider_priority))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.version.cmp(&b.version))
    });
}

/// The exchange tree of packages given with whether each was asked for explicitly,
/// and the user's preferences: the preferred paths claimed first, then the packages
/// merged by priority, each image opened with `open` in turn (so at most one is open
/// at a time here). A package whose image cannot be opened adds nothing. Each
/// conflict gets the rule that decided it.
pub fn build_for<R, A>(
    packages: Vec<(&Entry, bool)>,
    preferences: &[Preference],
    mut open: impl FnMut(&Entry) -> Option<A>,
    cache: &mut Cache,
) -> Tree
where
    R: ReadAt,
    A: std::ops::Deref<Target = Archive<R>>,
{
    assemble(packages, preferences, &mut |entry, merge| {
        if let Some(archive) = open(entry) {
            merge(&mut ImageListing {
                archive: &archive,
                cache: &mut *cache,
            });
        }
    })
}

/// Calls its second argument with the first's listing, when it has one.
pub type WithListing<'a> = dyn FnMut(&Entry, &mut dyn FnMut(&mut dyn Listing)) + 'a;

/// [`build_for`] over any way to list a package: `with_listing(entry, merge)` calls
/// `merge` with the package's listing, or does nothing when there is none (the package
/// is counted in, with nothing of it merged). Not generic, so the device binary holds
/// it once, whoever calls it: [`build_for`] with the images, the mounted store with
/// its [`Recorded`] listings. The order and the rule are this function's, the same for
/// every caller.
pub fn assemble(
    mut packages: Vec<(&Entry, bool)>,
    preferences: &[Preference],
    with_listing: &mut WithListing<'_>,
) -> Tree {
    priority_order(&mut packages);
    let mut tree = Tree::empty();
    tree.packages = packages
        .iter()
        .map(|(entry, _)| entry.id().to_string())
        .collect();
    tree.preferences = preferences.to_vec();
    // The deepest choices first, so the nearest one wins a path below two of them.
    let mut claims: Vec<&Preference> = preferences.iter().collect();
    amber_core::sort::sort_by(&mut claims, |a, b| {
        let depth = |p: &Preference| p.path.matches('/').count();
        depth(b).cmp(&depth(a)).then_with(|| a.path.cmp(&b.path))
    });
    for preference in claims {
        let Some(owner) = packages
            .iter()
            .position(|(entry, _)| entry.name == preference.name)
        else {
            continue;
        };
        with_listing(packages[owner].0, &mut |listing| {
            tree.claim(listing, owner as u32, &preference.path)
        });
    }
    let claimed = tree.conflicts.len();
    for (owner, (entry, _)) in packages.iter().enumerate() {
        with_listing(entry, &mut |listing| {
            tree.merge_package(listing, owner as u32)
        });
    }
    // A package that claimed a directory meets the contests of its claim again when
    // merged; claims are few, so a plain scan finds the repeats.
    let mut index = claimed;
    while index < tree.conflicts.len() {
        let conflict = &tree.conflicts[index];
        let repeat = tree.conflicts[..claimed]
            .iter()
            .any(|c| c.path == conflict.path && c.loser == conflict.loser);
        if repeat {
            tree.conflicts.remove(index);
        } else {
            index += 1;
        }
    }
    for index in 0..tree.conflicts.len() {
        let conflict = &tree.conflicts[index];
        let find = |id: &str| {
            let at = tree.packages.iter().position(|p| p == id)?;
            packages.get(at).copied()
        };
        if let (Some(winner), Some(loser)) = (find(&conflict.winner), find(&conflict.loser)) {
            let reason = reason(&conflict.path, winner, loser, preferences);
            tree.conflicts[index].reason = reason;
        }
    }
    tree.shrink();
    tree
}

/// What becomes of a package in [`Tree::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// In both trees, with the same priority.
    Kept,
    /// In both trees, with another priority (asked for explicitly, or no longer).
    Moved,
    /// Only in the old tree.
    Removed,
    /// Only in the new tree.
    Added,
}

/// Which rule made `winner` keep `path` over `loser`.
fn reason(
    path: &str,
    (winner, winner_explicit): (&Entry, bool),
    (loser, loser_explicit): (&Entry, bool),
    preferences: &[Preference],
) -> Reason {
    let nearest = preferences
        .iter()
        .filter(|preference| preference.covers(path))
        .max_by_key(|preference| preference.path.len());
    if nearest.is_some_and(|preference| preference.name == winner.name) {
        Reason::Preferred
    } else if winner_explicit && !loser_explicit {
        Reason::Requested
    } else if winner.provider_priority > loser.provider_priority {
        Reason::Priority(winner.provider_priority, loser.provider_priority)
    } else {
        Reason::Name
    }
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
    pub reason: Reason,
}

/// The rule of the module documentation that decided a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The user chose the winner for the path (`pkg prefer`).
    Preferred,
    /// The winner was requested by name, the loser only needed.
    Requested,
    /// The winner's `provider_priority`, then the loser's.
    Priority(u16, u16),
    /// Nothing else told them apart: the name that sorts first.
    Name,
}

impl Reason {
    /// One word for `--json`.
    pub fn word(&self) -> &'static str {
        match self {
            Reason::Preferred => "preferred",
            Reason::Requested => "requested",
            Reason::Priority(..) => "priority",
            Reason::Name => "name",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Preferred => f.write_str("preferred with pkg prefer"),
            Reason::Requested => f.write_str("requested by name, the other only needed"),
            Reason::Priority(winner, loser) => {
                write!(f, "provider_priority {winner} over {loser}")
            }
            Reason::Name => f.write_str("nothing else decides: the name that sorts first"),
        }
    }
}

/// The merged exchange directories of one set of packages.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Node 0 is the store root; its children are the [`DIRS`], always present.
    pub nodes: Vec<Node>,
    /// Every node's name, one after the other.
    names: Vec<u8>,
    /// Package ids, in priority order when merged afresh; `NodeKind::Link` points into
    /// this list. [`Tree::update`] appends the packages it adds and empties the ids of
    /// those it removes, so the order is no longer the priority order after it.
    pub packages: Vec<String>,
    pub conflicts: Vec<Conflict>,
    /// Nodes [`Tree::update`] took out of the tree, still in `nodes`.
    unused: usize,
    /// The user's choices the tree was merged with ([`Tree::update`] keeps a tree only
    /// for the same choices).
    preferences: Vec<Preference>,
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
            unused: 0,
            preferences: Vec::new(),
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
        self.merge_package(listing, owner);
    }

    /// Merge package `owner` (an index into [`Tree::packages`]).
    fn merge_package(&mut self, listing: &mut dyn Listing, owner: u32) {
        for (index, dir) in DIRS.iter().enumerate() {
            self.merge(listing, owner, index as u32 + 1, dir.to_string(), 1);
        }
    }

    /// This tree after a change of packages, when it can be had without merging every
    /// package afresh; None when a fresh merge is needed. `packages` are those of this
    /// tree and of the next, each with its recorded listing and what becomes of it;
    /// `preferences` are the next generation's choices (`pkg prefer`).
    ///
    /// The rule only decides a path several packages want, or one the user chose. So
    /// while the choices stay the same, no package that comes, leaves or moves has a
    /// path of a recorded conflict or a path a choice covers, and the packages that
    /// come add no conflict, the fresh merge would give every path to the package it
    /// gives it to here (and every conflict the same winner, loser and reason: both
    /// stay, as they were): the removed packages' links go (and their directories,
    /// once no package that stays has them), the added packages are merged as if last.
    /// Anything else is left to the fresh merge, as are trees near the node limit and
    /// trees where more nodes are unused than used.
    pub fn update(
        &self,
        packages: &[(&str, &Recorded, Change)],
        preferences: &[Preference],
    ) -> Option<Tree> {
        if self.preferences != preferences {
            return None;
        }
        let mut tree = self.clone();
        let mut removed = Vec::new();
        for &(id, listing, change) in packages {
            let touches = |path: &str| listing.has(path);
            if change != Change::Kept
                && (self.conflicts.iter().any(|c| touches(&c.path))
                    || preferences.iter().any(|p| touches(&p.path)))
            {
                // An added package with a conflict's path would add a conflict anyway.
                return None;
            }
            if change == Change::Removed {
                let owner = tree.packages.iter().position(|p| p == id)?;
                tree.packages[owner] = String::new();
                removed.push(owner as u32);
            }
        }
        if !removed.is_empty() {
            for dir in 1..=DIRS.len() as u32 {
                tree.prune(dir, &removed, packages);
            }
        }
        for &(id, mut listing, change) in packages {
            if change == Change::Added {
                tree.add(id.to_owned(), &mut listing);
            }
        }
        let fits = tree.nodes.len() < MAX_NODES && tree.names.len() <= u32::MAX as usize / 2;
        let unchanged = tree.conflicts.len() == self.conflicts.len();
        (fits && unchanged && tree.unused * 2 <= tree.nodes.len()).then_some(tree)
    }

    /// Take the links of the `removed` packages out from below directory `node`, and
    /// the directories that are left empty unless a package that stays has them (a
    /// package's empty directory shows too). Returns whether `node` is empty now.
    fn prune(
        &mut self,
        node: u32,
        removed: &[u32],
        packages: &[(&str, &Recorded, Change)],
    ) -> bool {
        let NodeKind::Dir(children) = &mut self.nodes[node as usize].kind else {
            return false;
        };
        let mut children = std::mem::take(children);
        children.retain(|&child| {
            let gone = match self.nodes[child as usize].kind {
                NodeKind::Link(owner) => removed.contains(&owner),
                NodeKind::Dir(_) => {
                    self.prune(child, removed, packages) && {
                        let path = self.path(child);
                        let stays = |&(_, listing, change): &(&str, &Recorded, Change)| {
                            matches!(change, Change::Kept | Change::Moved) && listing.has(&path)
                        };
                        !packages.iter().any(stays)
                    }
                }
            };
            self.unused += usize::from(gone);
            !gone
        });
        let empty = children.is_empty();
        self.nodes[node as usize].kind = NodeKind::Dir(children);
        empty
    }

    /// Give package `owner` the path `path` (`bin/vi`, or a directory and all it holds
    /// in the package) before any package is merged, when the package has it: the
    /// directories on the way are made, and whatever is merged later meets the claim.
    fn claim(&mut self, listing: &mut dyn Listing, owner: u32, path: &str) {
        let mut parts = path.split('/');
        let Some(dir) = parts.next() else {
            return;
        };
        let Some(index) = DIRS.iter().position(|d| *d == dir) else {
            return;
        };
        let mut node = index as u32 + 1;
        let mut parent = dir.to_string();
        let parts: Vec<&str> = parts.collect();
        for (depth, part) in parts.iter().enumerate() {
            let last = depth + 1 == parts.len();
            let Some(entries) = listing.list(&parent) else {
                return;
            };
            let Some(&(_, is_dir)) = entries.iter().find(|(name, _)| name == part.as_bytes())
            else {
                return;
            };
            if (!is_dir && !last) || depth + 1 >= MAX_DEPTH || self.nodes.len() >= MAX_NODES {
                return;
            }
            let child_path = format!("{parent}/{part}");
            match self.child(node, part.as_bytes()) {
                Err(slot) => {
                    let kind = if is_dir {
                        NodeKind::Dir(Vec::new())
                    } else {
                        NodeKind::Link(owner)
                    };
                    let index = self.push(part.as_bytes(), node, kind);
                    if let NodeKind::Dir(children) = &mut self.nodes[node as usize].kind {
                        children.insert(slot, index);
                    }
                    node = index;
                }
                Ok(existing) => match (&self.nodes[existing as usize].kind, is_dir) {
                    (NodeKind::Dir(_), true) => node = existing,
                    (NodeKind::Link(o), _) if *o == owner => return,
                    (kind, _) => {
                        // A deeper choice already holds it (claims run deepest first).
                        let winner = match kind {
                            NodeKind::Link(winner) => self.packages[*winner as usize].clone(),
                            NodeKind::Dir(_) => self.first_owner(existing),
                        };
                        self.conflicts.push(Conflict {
                            path: child_path,
                            winner,
                            loser: self.packages[owner as usize].clone(),
                            reason: Reason::Name,
                        });
                        return;
                    }
                },
            }
            if last && is_dir {
                self.merge(listing, owner, node, child_path, depth + 2);
                return;
            }
            parent = child_path;
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
                    // Its own claim: nothing to add, nothing contested.
                    (NodeKind::Link(o), false) if *o == owner => {}
                    (kind, _) => {
                        let winner = match kind {
                            NodeKind::Link(winner) => self.packages[*winner as usize].clone(),
                            NodeKind::Dir(_) => self.first_owner(existing),
                        };
                        self.conflicts.push(Conflict {
                            path: child_path,
                            winner,
                            loser: self.packages[owner as usize].clone(),
                            reason: Reason::Name,
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
        let result = self.archive.read_dir(&dir, 0, self.cache, &mut |entry| {
            entries.push((entry.name.to_vec(), entry.kind == Kind::Dir));
            entries.len() < 1 << 16
        });
        result.ok()?;
        Some(entries)
    }
}

/// The most bytes a [`Recorded`] listing holds, some 500,000 entries: more than any
/// real package puts in the exchange directories, and about what [`MAX_NODES`] lets
/// the tree itself hold of one image. What a hostile image has beyond it is left out,
/// as the merge leaves out what does not fit in the tree (where it is cut off may
/// differ).
const MAX_RECORDED: usize = 16 << 20;

/// Every answer one image's [`Listing`] gives the merge, kept in memory: the mounted
/// store records each image of the current generation once, when it first appears, so
/// a reload reads only the images new to it. The answers are the image's own, asked
/// for every directory the merge could ever visit (each exchange directory and every
/// directory below, to [`MAX_DEPTH`], conflicts or not), so a tree merged from them is
/// the tree merged from the images, conflicts and all.
///
/// Compact, since a store keeps one for each of its packages: a directory is three
/// numbers and its path, an entry its name and one byte.
pub struct Recorded {
    /// The listed directories in the order they were asked for, which is the order the
    /// merge asks for them: where each one's path starts in `bytes`, where its entries
    /// start (the path's end), and where they end.
    dirs: Vec<[u32; 3]>,
    /// Paths and entries; each entry is its name followed by `/` for a directory, NUL
    /// for anything else (neither is ever part of a name: the reader refuses them).
    bytes: Vec<u8>,
    /// Where the next search for a directory starts: after the last one found, so a
    /// merge finds each directory at once (and a sort and its code are saved).
    next: Cell<usize>,
}

impl Recorded {
    /// Ask `listing` everything the merge could, to [`MAX_RECORDED`] bytes.
    pub fn record(listing: &mut dyn Listing) -> Recorded {
        let mut recorder = Recorder {
            listing,
            recorded: Recorded {
                dirs: Vec::new(),
                bytes: Vec::new(),
                next: Cell::new(0),
            },
        };
        // Merged alone into an empty tree, the image meets no conflict, so the merge
        // asks for every directory it could ever ask for, as it would ask for it.
        Tree::empty().add(String::new(), &mut recorder);
        let mut recorded = recorder.recorded;
        recorded.dirs.shrink_to_fit();
        recorded.bytes.shrink_to_fit();
        recorded
    }

    /// Whether the image has `path` (`bin/sh`), as a file or a directory, where the
    /// merge would meet it. Names compare as the merge writes them into paths.
    fn has(&self, path: &str) -> bool {
        let Some(slash) = path.bytes().rposition(|b| b == b'/') else {
            return false;
        };
        let (parent, name) = (&path[..slash], &path[slash + 1..]);
        let entries = (&mut &*self).list(parent).unwrap_or_default();
        entries
            .iter()
            .any(|(entry, _)| String::from_utf8_lossy(entry) == name)
    }
}

/// Passes a listing's answers on to the merge, and records them.
struct Recorder<'a> {
    listing: &'a mut dyn Listing,
    recorded: Recorded,
}

impl Listing for Recorder<'_> {
    fn list(&mut self, path: &str) -> Option<Vec<(Vec<u8>, bool)>> {
        let entries = self.listing.list(path)?;
        let bytes = &mut self.recorded.bytes;
        let start = bytes.len();
        bytes.extend_from_slice(path.as_bytes());
        let entries_start = bytes.len();
        for (name, is_dir) in &entries {
            bytes.extend_from_slice(name);
            bytes.push(if *is_dir { b'/' } else { 0 });
        }
        // A directory not recorded is not merged either (None hides it), so the bound
        // on the bytes bounds the work too.
        if bytes.len() > MAX_RECORDED {
            bytes.truncate(start);
            return None;
        }
        let end = bytes.len();
        self.recorded
            .dirs
            .push([start, entries_start, end].map(|n| n as u32));
        Some(entries)
    }
}

impl Listing for &Recorded {
    fn list(&mut self, path: &str) -> Option<Vec<(Vec<u8>, bool)>> {
        let (bytes, count, start) = (&self.bytes, self.dirs.len(), self.next.get());
        // Two names that read the same lossily ask for one path twice: the first
        // answer found is the answer to both.
        let found = (0..count).map(|i| (start + i) % count).find(|&i| {
            let [path_start, path_end, _] = self.dirs[i];
            &bytes[path_start as usize..path_end as usize] == path.as_bytes()
        })?;
        self.next.set(found + 1);
        let [_, start, end] = self.dirs[found].map(|n| n as usize);
        let mut entries = Vec::new();
        let mut rest = &bytes[start..end];
        while let Some(at) = rest.iter().position(|&b| b == 0 || b == b'/') {
            entries.push((rest[..at].to_vec(), rest[at] == b'/'));
            rest = &rest[at + 1..];
        }
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

    /// Every node of a tree, as `path/` for a directory or `path -> target`, sorted, and
    /// the conflicts in the order they were found.
    fn view(tree: &Tree) -> (Vec<String>, Vec<Conflict>) {
        let mut nodes = Vec::new();
        let mut pending = vec![0];
        while let Some(node) = pending.pop() {
            match &tree.nodes[node as usize].kind {
                NodeKind::Dir(children) => {
                    pending.extend(children);
                    nodes.push(format!("{}/", tree.path(node)));
                }
                NodeKind::Link(_) => nodes.push(format!(
                    "{} -> {}",
                    tree.path(node),
                    tree.link_target(node).unwrap()
                )),
            }
        }
        nodes.sort();
        (nodes, tree.conflicts.clone())
    }

    /// A tree merged from recorded listings is the tree merged from the packages
    /// themselves, for every subset of them in two orders: adding or removing packages
    /// and merging the rest from what was recorded before gives what a fresh merge gives.
    #[test]
    fn recorded_listings_merge_like_the_packages() {
        // Deeper than the merge goes.
        let deep: Vec<String> = (1..=MAX_DEPTH + 2)
            .map(|depth| format!("include/{}", vec!["d/"; depth].concat()))
            .collect();
        let mut d = vec![
            "include/",
            "include/a/",
            "include/a/b/",
            "include/a/b/c",
            "svc/",
        ];
        d.extend(deep.iter().map(String::as_str));
        let mut fakes = [
            (
                "a-1-r0",
                Fake::new(&[
                    "bin/",
                    "bin/sh",
                    "bin/ls",
                    "share/",
                    "share/man/",
                    "share/man/ls.1",
                ]),
            ),
            // bin/ls a directory here: hidden by a's file whenever a is merged first.
            (
                "b-1-r0",
                Fake::new(&[
                    "bin/",
                    "bin/ls/",
                    "bin/ls/x",
                    "bin/ls/deep/",
                    "bin/ls/deep/y",
                    "etc/",
                    "etc/b.conf",
                ]),
            ),
            // share/man a file here; an empty directory.
            (
                "c-1-r0",
                Fake::new(&[
                    "share/",
                    "share/man",
                    "lib/",
                    "lib/empty/",
                    "bin/",
                    "bin/sh",
                ]),
            ),
            ("d-1-r0", Fake::new(&d)),
            ("e-1-r0", Fake::new(&[])),
        ];
        // A directory name that is not UTF-8: the merge asks for it by its lossy path.
        let svc = fakes[3].1 .0.get_mut("svc").unwrap();
        svc.push((b"d\xff".to_vec(), true));
        fakes[3]
            .1
             .0
            .insert("svc/d\u{fffd}".into(), vec![(b"z".to_vec(), false)]);
        let recorded: Vec<Recorded> = fakes
            .iter()
            .map(|(_, fake)| Recorded::record(&mut Fake(fake.0.clone())))
            .collect();
        for subset in 0u32..1 << fakes.len() {
            for reverse in [false, true] {
                let mut chosen: Vec<usize> =
                    (0..fakes.len()).filter(|i| subset & 1 << i != 0).collect();
                if reverse {
                    chosen.reverse();
                }
                let mut fresh = Tree::empty();
                let mut from_records = Tree::empty();
                for &i in &chosen {
                    let id = fakes[i].0.to_owned();
                    fresh.add(id.clone(), &mut Fake(fakes[i].1 .0.clone()));
                    from_records.add(id, &mut &recorded[i]);
                }
                assert_eq!(view(&fresh), view(&from_records), "{chosen:?}");
            }
        }
        // What a's file hid was recorded too, and shows once a is gone.
        let mut tree = Tree::empty();
        tree.add("b-1-r0".into(), &mut &recorded[1]);
        let shown = view(&tree).0;
        assert!(shown.contains(&"bin/ls/deep/y -> ../../../b-1-r0/bin/ls/deep/y".to_owned()));
        let mut tree = Tree::empty();
        tree.add("d-1-r0".into(), &mut &recorded[3]);
        let shown = view(&tree).0;
        assert!(shown.contains(&"svc/d\u{fffd}/z -> ../../d-1-r0/svc/d\u{fffd}/z".to_owned()));
        assert_eq!(
            shown.iter().filter(|n| n.starts_with("include/d")).count(),
            MAX_DEPTH
        );
    }

    /// Step by step, packages come, go and change priority; the tree kept up to date
    /// with [`Tree::update`] (or merged afresh where it declines) is the fresh merge of
    /// the packages at every step, and most steps are updates.
    #[test]
    fn updated_trees_are_fresh_merges() {
        let specs: [(&str, &[&str]); 10] = [
            (
                "p0-1-r0",
                &[
                    "bin/",
                    "bin/a",
                    "share/",
                    "share/doc/",
                    "share/doc/p0/",
                    "share/doc/p0/README",
                    "share/man/",
                    "share/man/man1/",
                    "share/man/man1/a.1",
                ],
            ),
            (
                "p1-1-r0",
                &[
                    "bin/",
                    "bin/b",
                    "lib/",
                    "lib/libb.so",
                    "share/",
                    "share/doc/",
                    "share/doc/p1/",
                    "share/doc/p1/README",
                ],
            ),
            (
                "p2-1-r0",
                &["bin/", "bin/c", "lib/", "lib/empty/", "etc/", "etc/c.conf"],
            ),
            // Wants p0's bin/a.
            ("p3-1-r0", &["bin/", "bin/a", "share/", "share/man/"]),
            // A file where others have a directory.
            ("p4-1-r0", &["share/", "share/man"]),
            // Only the empty directory p2 has too.
            ("p5-1-r0", &["lib/", "lib/empty/"]),
            // A directory where p1 has a file.
            ("p6-1-r0", &["bin/", "bin/b/", "bin/b/x"]),
            (
                "p7-1-r0",
                &[
                    "include/",
                    "include/p7/",
                    "include/p7/x.h",
                    "share/",
                    "share/doc/",
                    "share/doc/p7/",
                    "share/doc/p7/README",
                ],
            ),
            (
                "p8-1-r0",
                &[
                    "etc/",
                    "etc/p8/",
                    "etc/p8/a/",
                    "etc/p8/a/b.conf",
                    "svc/",
                    "svc/p8",
                ],
            ),
            (
                "p9-1-r0",
                &[
                    "sbin/",
                    "sbin/p9",
                    "share/",
                    "share/man/",
                    "share/man/man8/",
                    "share/man/man8/p9.8",
                ],
            ),
        ];
        let recorded: Vec<Recorded> = specs
            .iter()
            .map(|(_, paths)| Recorded::record(&mut Fake::new(paths)))
            .collect();
        // Installed or not, and asked for explicitly or not (which comes first).
        let mut state: Vec<Option<bool>> = vec![None; specs.len()];
        let mut tree = Tree::empty();
        let mut generator = amber_core::random::Random::new(0x9e37_79b9_7f4a_7c15);
        let mut updates = 0;
        for step in 0..600 {
            let random = generator.next_u64();
            let which = (random % specs.len() as u64) as usize;
            let before = state.clone();
            state[which] = match (state[which], random >> 32 & 3) {
                (None, 0) => Some(true),
                (None, _) => Some(false),
                (Some(explicit), 0) => Some(!explicit),
                (Some(_), _) => None,
            };
            // The fresh merge: explicit first, then by name.
            let mut order: Vec<usize> = (0..specs.len()).filter(|&i| state[i].is_some()).collect();
            order.sort_by_key(|&i| (!state[i].unwrap(), specs[i].0));
            let mut fresh = Tree::empty();
            for &i in &order {
                fresh.add(specs[i].0.to_owned(), &mut &recorded[i]);
            }
            let changes: Vec<(&str, &Recorded, Change)> = (0..specs.len())
                .filter_map(|i| {
                    let change = match (before[i], state[i]) {
                        (Some(_), None) => Change::Removed,
                        (None, Some(_)) => Change::Added,
                        (Some(was), Some(now)) if was != now => Change::Moved,
                        (Some(_), Some(_)) => Change::Kept,
                        (None, None) => return None,
                    };
                    Some((specs[i].0, &recorded[i], change))
                })
                .collect();
            tree = match tree.update(&changes, &[]) {
                Some(updated) => {
                    updates += 1;
                    updated
                }
                None => fresh.clone(),
            };
            assert_eq!(view(&tree), view(&fresh), "step {step}: {state:?}");
        }
        assert!(updates > 300, "{updates} of 600 steps were updates");
    }

    /// As [`updated_trees_are_fresh_merges`], with the whole rule: packages with a
    /// `provider_priority`, and the user's choices (`pkg prefer`), which come and go
    /// too (a generation keeps only those of packages it holds). The fresh merge is
    /// [`assemble`] over the recorded listings, as the mounted store's is; every step's
    /// tree, conflicts and reasons included, is the fresh merge's.
    #[test]
    fn updated_trees_are_fresh_merges_under_the_whole_rule() {
        let specs: [(&str, u16, &[&str]); 8] = [
            (
                "q0",
                0,
                &[
                    "bin/",
                    "bin/vi",
                    "bin/a",
                    "share/",
                    "share/man/",
                    "share/man/a.1",
                ],
            ),
            ("q1", 5, &["bin/", "bin/vi", "bin/b", "lib/", "lib/q1.so"]),
            (
                "q2",
                0,
                &["share/", "share/man/", "share/man/a.1", "share/man/b.1"],
            ),
            (
                "q3",
                9,
                &[
                    "etc/",
                    "etc/q3.conf",
                    "share/",
                    "share/man/",
                    "share/man/c.1",
                ],
            ),
            ("q4", 0, &["include/", "include/q4.h"]),
            ("q5", 0, &["sbin/", "sbin/q5", "bin/", "bin/q5"]),
            ("q6", 2, &["share/", "share/man"]),
            ("q7", 0, &["svc/", "svc/q7", "bin/", "bin/b"]),
        ];
        let entries: Vec<Entry> = specs.iter().map(|(n, p, _)| entry(n, *p)).collect();
        let recorded: Vec<Recorded> = specs
            .iter()
            .map(|(_, _, paths)| Recorded::record(&mut Fake::new(paths)))
            .collect();
        let ids: Vec<String> = entries.iter().map(|e| e.id().to_string()).collect();
        let choices: [(&str, &str); 7] = [
            ("q0", "bin/vi"),
            ("q1", "bin/vi"),
            ("q2", "share/man"),
            ("q0", "share/man/a.1"),
            ("q7", "bin/b"),
            ("q3", "share/man/c.1"),
            ("q4", "include/q4.h"),
        ];
        let mut state: Vec<Option<bool>> = vec![None; specs.len()];
        let mut chosen = [false; 7];
        let mut tree = Tree::empty();
        let mut generator = amber_core::random::Random::new(0x2545_f491_4f6c_dd1d);
        let (mut updates, mut refused_for_choices) = (0, 0);
        for step in 0..1500 {
            let random = generator.next_u64();
            let before = state.clone();
            let before_preferences: Vec<Preference> = preferences(&choices, &chosen);
            if random >> 40 & 7 == 0 {
                let which = (random >> 8) as usize % choices.len();
                chosen[which] = !chosen[which];
            } else {
                let which = (random % specs.len() as u64) as usize;
                state[which] = match (state[which], random >> 32 & 3) {
                    (None, 0) => Some(true),
                    (None, _) => Some(false),
                    (Some(explicit), 0) => Some(!explicit),
                    (Some(_), _) => None,
                };
            }
            // A choice belongs to its package, and of one path there is one choice.
            for (at, (name, _)) in choices.iter().enumerate() {
                let index = specs.iter().position(|(n, _, _)| n == name).unwrap();
                chosen[at] &= state[index].is_some();
            }
            let taken: Vec<Preference> = preferences(&choices, &chosen);
            let packages: Vec<(&Entry, bool)> = (0..specs.len())
                .filter_map(|i| Some((&entries[i], state[i]?)))
                .collect();
            let fresh = assemble(packages, &taken, &mut |entry, merge| {
                let at = entries.iter().position(|e| e == entry).unwrap();
                merge(&mut &recorded[at]);
            });
            let changes: Vec<(&str, &Recorded, Change)> = (0..specs.len())
                .filter_map(|i| {
                    let change = match (before[i], state[i]) {
                        (Some(_), None) => Change::Removed,
                        (None, Some(_)) => Change::Added,
                        (Some(was), Some(now)) if was != now => Change::Moved,
                        (Some(_), Some(_)) => Change::Kept,
                        (None, None) => return None,
                    };
                    Some((ids[i].as_str(), &recorded[i], change))
                })
                .collect();
            tree = match tree.update(&changes, &taken) {
                Some(updated) => {
                    updates += 1;
                    updated
                }
                None => {
                    refused_for_choices += usize::from(before_preferences != taken);
                    fresh.clone()
                }
            };
            assert_eq!(
                view(&tree),
                view(&fresh),
                "step {step}: {state:?} {taken:?}"
            );
        }
        assert!(updates > 300, "{updates} of 1500 steps were updates");
        assert!(refused_for_choices > 50, "{refused_for_choices}");
    }

    /// The preferences `chosen` of `choices`, one per path (the first), sorted by path.
    fn preferences(choices: &[(&str, &str)], chosen: &[bool]) -> Vec<Preference> {
        let mut taken: Vec<Preference> = Vec::new();
        for (at, (name, path)) in choices.iter().enumerate() {
            if chosen[at] && !taken.iter().any(|p| p.path == *path) {
                taken.push(Preference::new(name, path).unwrap());
            }
        }
        taken.sort_by(|a, b| a.path.cmp(&b.path));
        taken
    }

    /// A hostile image's listing is recorded only so far: the store's memory stays
    /// bounded.
    #[test]
    fn recorded_listings_are_bounded() {
        let names: Vec<String> = (0..400_000)
            .map(|i| format!("share/a-file-name-long-enough-to-fill-memory-fast-{i:06}"))
            .collect();
        let mut paths: Vec<&str> = vec!["share/", "share/a/"];
        paths.extend(names.iter().map(String::as_str));
        let recorded = Recorded::record(&mut Fake::new(&paths));
        assert!(recorded.bytes.len() <= MAX_RECORDED);
        let small = Recorded::record(&mut Fake::new(&paths[..1000]));
        assert_eq!((&mut &small).list("share").map(|e| e.len()), Some(999));
    }

    #[test]
    fn every_exchange_dir_exists_even_when_empty() {
        let tree = Tree::build(std::iter::empty());
        for dir in DIRS {
            assert!(tree.child(0, dir.as_bytes()).is_ok(), "{dir}");
        }
    }

    /// An entry of `name`, version 1, with a provider priority.
    fn entry(name: &str, provider_priority: u16) -> Entry {
        let text = format!(
            "amber-index 1\narch x86_64\nserial 1\nexpires 2\n\
             pkg {name} 1 size=1 sha256={}{}\n",
            "0".repeat(64),
            if provider_priority > 0 {
                format!(" provides=x provider_priority={provider_priority}")
            } else {
                String::new()
            }
        );
        amber_core::index::parse(&text).unwrap().packages.remove(0)
    }

    /// Each contested path with its winner and rule, for packages given as
    /// (entry, requested by name, paths) and the user's preferences.
    fn contest(packages: &[(Entry, bool, &[&str])], preferences: &[(&str, &str)]) -> Vec<String> {
        let preferences: Vec<Preference> = preferences
            .iter()
            .map(|(name, path)| Preference::new(name, path).unwrap())
            .collect();
        let mut listings: BTreeMap<String, Fake> = packages
            .iter()
            .map(|(entry, _, paths)| (entry.name.clone(), Fake::new(paths)))
            .collect();
        let tree = assemble(
            packages
                .iter()
                .map(|(e, explicit, _)| (e, *explicit))
                .collect(),
            &preferences,
            &mut |entry, merge| merge(listings.get_mut(&entry.name).unwrap()),
        );
        let mut out: Vec<String> = tree
            .conflicts
            .iter()
            .map(|c| {
                format!(
                    "{}: {} over {} ({})",
                    c.path,
                    c.winner,
                    c.loser,
                    c.reason.word()
                )
            })
            .collect();
        out.extend(links(&tree));
        out
    }

    #[test]
    fn the_conflict_rule_in_order() {
        const VI: &[&str] = &["bin/", "bin/vi"];
        // Versions are not compared: only the name decides between equals.
        assert_eq!(
            contest(
                &[
                    (entry("vim", 0), false, VI),
                    (entry("busybox", 0), false, VI)
                ],
                &[]
            ),
            [
                "bin/vi: busybox-1 over vim-1 (name)",
                "bin/vi -> ../busybox-1/bin/vi"
            ]
        );
        // The higher provider_priority before the name.
        assert_eq!(
            contest(
                &[
                    (entry("vim", 5), false, VI),
                    (entry("busybox", 0), false, VI)
                ],
                &[]
            ),
            [
                "bin/vi: vim-1 over busybox-1 (priority)",
                "bin/vi -> ../vim-1/bin/vi"
            ]
        );
        // Requested by name before the priority.
        assert_eq!(
            contest(
                &[
                    (entry("vim", 5), false, VI),
                    (entry("busybox", 0), true, VI)
                ],
                &[]
            ),
            [
                "bin/vi: busybox-1 over vim-1 (requested)",
                "bin/vi -> ../busybox-1/bin/vi"
            ]
        );
        // The user's choice before everything.
        assert_eq!(
            contest(
                &[
                    (entry("vim", 0), false, VI),
                    (entry("busybox", 9), true, VI)
                ],
                &[("vim", "/bin/vi")]
            ),
            [
                "bin/vi: vim-1 over busybox-1 (preferred)",
                "bin/vi -> ../vim-1/bin/vi"
            ]
        );
        // A choice of a package not in the set, or of a path it lacks, changes nothing.
        assert_eq!(
            contest(
                &[
                    (entry("vim", 0), false, VI),
                    (entry("busybox", 0), false, VI)
                ],
                &[("nvi", "bin/vi"), ("vim", "bin/view")]
            ),
            [
                "bin/vi: busybox-1 over vim-1 (name)",
                "bin/vi -> ../busybox-1/bin/vi"
            ]
        );
    }

    #[test]
    fn a_preferred_directory_and_the_nearest_choice() {
        let man: &[&str] = &["share/", "share/man/", "share/man/a.1", "share/man/b.1"];
        let other: &[&str] = &[
            "share/",
            "share/man/",
            "share/man/a.1",
            "share/man/b.1",
            "bin/",
            "bin/x",
        ];
        // The whole directory goes to the chosen package; what else the other has stays.
        assert_eq!(
            contest(
                &[
                    (entry("aaa", 0), true, other),
                    (entry("zzz", 0), false, man)
                ],
                &[("zzz", "share/man")]
            ),
            [
                "share/man/a.1: zzz-1 over aaa-1 (preferred)",
                "share/man/b.1: zzz-1 over aaa-1 (preferred)",
                "share/man/a.1 -> ../../zzz-1/share/man/a.1",
                "share/man/b.1 -> ../../zzz-1/share/man/b.1",
                "bin/x -> ../aaa-1/bin/x",
            ]
        );
        // A choice deeper inside wins there.
        assert_eq!(
            contest(
                &[
                    (entry("aaa", 0), true, other),
                    (entry("zzz", 0), false, man)
                ],
                &[("zzz", "share/man"), ("aaa", "share/man/b.1")]
            ),
            [
                "share/man/b.1: aaa-1 over zzz-1 (preferred)",
                "share/man/a.1: zzz-1 over aaa-1 (preferred)",
                "share/man/b.1 -> ../../aaa-1/share/man/b.1",
                "share/man/a.1 -> ../../zzz-1/share/man/a.1",
                "bin/x -> ../aaa-1/bin/x",
            ]
        );
    }
}
