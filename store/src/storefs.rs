//! The FUSE store: a read-only filesystem showing the current generation's images at
//! `/ro/<id>/` and its exchange directories (DESIGN §5).
//!
//! Inode numbers carry everything needed to answer a request, so no table of inodes
//! grows with use:
//! - `1` is the store root;
//! - below `2^44`, exchange-directory nodes: a tree's base number plus the node index
//!   (each generation's tree gets fresh numbers, so the switch is atomic: a walk that
//!   started in the old tree finishes in it);
//! - from `2^44` up, image inodes: `slot << 44 | inode reference`, where the slot names
//!   the image and the reference is the SquashFS inode's 48-bit position (the upper
//!   bits must be zero: an inode table under 256 MiB), or [`ROOT_MARK`] for the image
//!   root.
//!
//! Images are opened on first use and closed again when idle or when the limit is
//! reached (least recently used first, never one a request is reading), so never more
//! than `max_open` are open. Decompression caches and reply buffers come from a small
//! pool shared by all threads, so memory stays bounded however many images exist.
//!
//! Image content is immutable, so the kernel may cache it for long: names and
//! attributes for a day, data and listings across opens. Files and directories are
//! opened without asking the daemon at all (FUSE_NO_OPEN_SUPPORT and
//! FUSE_NO_OPENDIR_SUPPORT), so a warm read costs no round trip. Read requests are one
//! data block each and decompress straight into their reply; `mount.rs` raises the
//! mount's readahead so a big file's blocks are decompressed by several threads at
//! once. The root and the exchange directories are invalidated explicitly whenever the
//! generation changes.
//!
//! A reload (after every `pkg add`, `del`, ...) opens only the images new to the
//! generation, to record what the exchange merge reads of them, and the exchange tree
//! is the last one updated (see `exchange.rs`), merged afresh from the recorded
//! listings only when a change touches a conflict. What still grows with the store is
//! reading the generation file and copying the tree.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use amber_core::generation::Preference;
use amber_core::index::Entry;
use amber_core::squashfs::read::{Archive, Cache, Error as ReadError, Inode, Kind};

use crate::error::Error;
use crate::exchange::{self, Change, ImageListing, NodeKind, Recorded, Tree};
use crate::fuse::{AddEntry, Errno, FileAttr, FileType, Notifier};
use crate::image::{self, ImageFile};
use crate::store::Store;

/// The store root's inode.
const ROOT: u64 = 1;
/// Image inodes start at slot 1 shifted by this much.
const SLOT_SHIFT: u32 = 44;
const REFERENCE_MASK: u64 = (1 << SLOT_SHIFT) - 1;
/// Stands for an image's root directory: no inode reference can have an in-block
/// offset of 0xFFFF, since metadata blocks hold at most 8 KiB.
const ROOT_MARK: u64 = 0xFFFF;
/// How long the kernel may cache names and attributes. Images never change, and the
/// root and exchange directories are invalidated explicitly on every switch.
pub const TTL_SECONDS: u64 = 24 * 3600;
/// The largest read request: the block size `pkg pack` writes (DESIGN §3).
pub const BLOCK_REQUEST: u32 = 128 * 1024;
/// How many exchange trees are kept for walks that started before a switch.
const KEPT_TREES: usize = 4;

/// Tunables of a mounted store.
#[derive(Debug, Clone)]
pub struct Options {
    /// The most images open at once.
    pub max_open: usize,
    /// Threads serving requests.
    pub threads: usize,
    /// Images unused this long are closed.
    pub idle: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_open: 64,
            threads: 4,
            idle: Duration::from_secs(30),
        }
    }
}

/// One image the store may show.
struct Slot {
    path: PathBuf,
    /// The open image. Requests hold clones only while they run, and clones are only
    /// made under the [`Images`] lock, so a strong count of 1 there means nobody is
    /// using it and closing it really closes the file.
    archive: Option<Arc<Archive<ImageFile>>>,
    /// Milliseconds since the store started, at the last use.
    last_used: u64,
    /// The [`Images::clock`] at the last use, for least-recently-used eviction.
    last_use: u64,
}

impl Slot {
    /// Open, and used by no request at this instant.
    fn closable(&self) -> bool {
        self.archive
            .as_ref()
            .is_some_and(|archive| Arc::strong_count(archive) == 1)
    }
}

/// The image slots and which of them are open, under one lock.
struct Images {
    /// Index `slot - 1`. Slots are never reused while mounted, so a stale inode number
    /// can never reach another image.
    slots: Vec<Slot>,
    /// The open slots, in no order.
    open: Vec<u32>,
    /// Counts uses.
    clock: u64,
}

impl Images {
    /// Close the image of slot `slot` if no request uses it; true if it is closed now.
    fn close(&mut self, slot: u32) -> bool {
        let Some(entry) = self.slots.get_mut(slot as usize - 1) else {
            return true;
        };
        if entry.archive.is_some() && !entry.closable() {
            return false;
        }
        entry.archive = None;
        self.open.retain(|&open| open != slot);
        true
    }
}

/// What one request works with: a decompression cache and the buffer its reply is
/// read into.
struct Workspace {
    cache: Cache,
    reply: Vec<u8>,
}

/// What the current generation shows.
struct View {
    generation: u64,
    /// The newest tree last; older ones serve walks that began before a switch.
    trees: Vec<(u64, Arc<Tree>)>,
    /// The ids shown at the root, with their slots, sorted by id.
    visible: Vec<(String, u32)>,
}

/// The recorded exchange listing of one image, by its id.
struct Listed {
    id: String,
    recorded: Recorded,
    /// Whether the newest tree holds the package, and if so whether it was asked for
    /// explicitly there (which decides its priority).
    merged: Option<bool>,
    /// The same for the generation being shown, while a reload makes its tree.
    shown: Option<bool>,
}

/// The shared state of a mounted store: the FUSE handlers, the control socket and the
/// idle closer all hold it.
pub struct Inner {
    root: PathBuf,
    options: Options,
    started: Instant,
    images: Mutex<Images>,
    /// Every image's slot, sorted by id. Sorted lists, here and in [`View`], cost the
    /// device binary less than maps (no hashing, no tree code) and are as fast for the
    /// few hundred ids a store holds.
    by_id: Mutex<Vec<(String, u32)>>,
    /// Held by the one thread opening an image, so that making room and opening are
    /// one step and the number of open images never passes `max_open`.
    opening: Mutex<()>,
    view: RwLock<View>,
    /// What the exchange merge reads of each image of the current generation, recorded
    /// once when the image appears, sorted by id: a reload opens only new images.
    listings: Mutex<Vec<Listed>>,
    /// Decompression caches and reply buffers, one lent to each running request.
    workspaces: Mutex<Vec<Workspace>>,
    /// Whether a request ran since the idle closer last looked.
    busy: AtomicBool,
    next_base: AtomicU64,
    notifier: Mutex<Option<Notifier>>,
}

impl Inner {
    /// A store for `root`, showing its current state.
    pub fn new(root: PathBuf, options: Options) -> Result<Arc<Inner>, Error> {
        let inner = Arc::new(Inner {
            root,
            options,
            started: Instant::now(),
            images: Mutex::new(Images {
                slots: Vec::new(),
                open: Vec::new(),
                clock: 0,
            }),
            by_id: Mutex::new(Vec::new()),
            opening: Mutex::new(()),
            view: RwLock::new(View {
                generation: 0,
                trees: Vec::new(),
                visible: Vec::new(),
            }),
            listings: Mutex::new(Vec::new()),
            workspaces: Mutex::new(Vec::new()),
            busy: AtomicBool::new(false),
            next_base: AtomicU64::new(2),
            notifier: Mutex::new(None),
        });
        inner.reload()?;
        Ok(inner)
    }

    /// Where the kernel connection's notifier goes once the session exists.
    pub fn set_notifier(&self, notifier: Notifier) {
        *lock(&self.notifier) = Some(notifier);
    }

    /// Read the store's generations again and show the current one. Returns its number.
    pub fn reload(&self) -> Result<u64, Error> {
        let store = Store::open(&self.root);
        let current = store.current()?;
        let current_number = current.number;
        // The root shows the current generation: a removed package is gone at once.
        // Images of older generations keep serving the inodes already in use (an
        // upgraded service still running from its old image), until gc removes them.
        let explicit = current.explicit_flags();
        let mut shown: Vec<(String, &Entry, bool)> = current
            .packages
            .iter()
            .zip(explicit)
            .map(|(entry, explicit)| (entry.id().to_string(), entry, explicit))
            .collect();
        amber_core::sort::sort_by(&mut shown, |a, b| a.0.cmp(&b.0));
        shown.dedup_by(|a, b| a.0 == b.0);
        let mut visible = Vec::with_capacity(shown.len());
        for (id, entry, _) in &shown {
            let slot = self.slot_for(id, &store, entry)?;
            visible.push((id.clone(), slot));
        }

        let tree = self.exchange_tree(&shown, &visible, &current.preferences);
        let base = self
            .next_base
            .fetch_add(tree.nodes.len() as u64 + 1, Ordering::SeqCst);

        let removed: Vec<String> = {
            let mut view = write(&self.view);
            let removed = view
                .visible
                .iter()
                .filter(|(id, _)| find(&visible, id).is_none())
                .map(|(id, _)| id.clone())
                .collect();
            view.generation = current.number;
            view.trees.push((base, Arc::new(tree)));
            if view.trees.len() > KEPT_TREES {
                view.trees.remove(0);
            }
            view.visible = visible;
            removed
        };
        // Images the current generation no longer shows are closed now, unless a
        // request is reading one this instant (the idle closer gets those later); their
        // slots stay reserved.
        for id in &removed {
            if let Some(slot) = find(&lock(&self.by_id), id) {
                lock(&self.images).close(slot);
            }
        }
        if let Some(notifier) = lock(&self.notifier).as_ref() {
            // Errors mean the kernel had nothing cached under that name.
            for name in exchange::DIRS.iter().map(|d| d.to_string()).chain(removed) {
                let _ = notifier.inval_entry(ROOT, name.as_bytes());
            }
            // The root's cached listing too: an entry invalidation only reaches it when
            // the kernel still holds a dentry of that name, and an added id has none.
            let _ = notifier.inval_inode(ROOT);
        }
        drop(current);
        crate::sys::release_free_memory();
        Ok(current_number)
    }

    /// The exchange tree of generation `current`, whose packages `shown` are sorted by
    /// id, each with whether it was asked for explicitly, and their slots in `visible`;
    /// `preferences` are its `prefer` choices.
    ///
    /// The listings of the images shown before and still shown are kept; only the
    /// images new to this generation are opened and listed. The tree is then the last
    /// one updated ([`Tree::update`]: the links of packages that left taken out, those
    /// of new packages merged in), or, where that would not give the same tree, merged
    /// afresh in priority order from the recorded listings: the same tree as merged
    /// from the images themselves either way.
    fn exchange_tree(
        &self,
        shown: &[(String, &Entry, bool)],
        visible: &[(String, u32)],
        preferences: &[Preference],
    ) -> Tree {
        let mut listings = lock(&self.listings);
        for listed in listings.iter_mut() {
            listed.shown = None;
        }
        // An id names the same bytes in every generation that shows it (`pkg add`
        // refuses other bytes for an installed version), so a listing is kept by id.
        for ((id, _, explicit), (_, slot)) in shown.iter().zip(visible) {
            let position = match listed_position(&listings, id) {
                Ok(found) => found,
                Err(position) => {
                    // An image that cannot be opened now adds nothing, and is tried
                    // again at the next reload.
                    let Ok(archive) = self.archive(*slot) else {
                        continue;
                    };
                    let recorded = self.with_cache(|cache| {
                        Recorded::record(&mut ImageListing {
                            archive: &archive,
                            cache,
                        })
                    });
                    let listed = Listed {
                        id: id.clone(),
                        recorded,
                        merged: None,
                        shown: None,
                    };
                    listings.insert(position, listed);
                    position
                }
            };
            listings[position].shown = Some(*explicit);
        }

        let tree = {
            let last = read(&self.view)
                .trees
                .last()
                .map(|(_, tree)| Arc::clone(tree));
            last.and_then(|last| {
                let mut packages = Vec::with_capacity(listings.len());
                for listed in listings.iter() {
                    let change = match (listed.merged, listed.shown) {
                        (Some(_), None) => Change::Removed,
                        (None, Some(_)) => Change::Added,
                        (Some(was), Some(now)) if was != now => Change::Moved,
                        (Some(_), Some(_)) => Change::Kept,
                        (None, None) => continue,
                    };
                    packages.push((listed.id.as_str(), &listed.recorded, change));
                }
                last.update(&packages, preferences)
            })
        };
        let tree = tree.unwrap_or_else(|| {
            let packages = shown
                .iter()
                .map(|(_, e, explicit)| (*e, *explicit))
                .collect();
            exchange::assemble(packages, preferences, &mut |entry, merge| {
                if let Ok(found) = listed_position(&listings, &entry.id().to_string()) {
                    merge(&mut &listings[found].recorded);
                }
            })
        });
        // What the tree now holds; the listings of packages no longer shown go.
        listings.retain_mut(|listed| {
            listed.merged = listed.shown;
            listed.merged.is_some()
        });
        tree
    }

    /// The current generation's number.
    pub fn generation(&self) -> u64 {
        read(&self.view).generation
    }

    /// How many images are open now.
    pub fn open_images(&self) -> usize {
        lock(&self.images).open.len()
    }

    /// The slot of an image, made on first sight.
    fn slot_for(&self, id: &str, store: &Store, entry: &Entry) -> Result<u32, Error> {
        let mut by_id = lock(&self.by_id);
        let position = match by_id.binary_search_by(|(known, _)| known.as_str().cmp(id)) {
            Ok(found) => return Ok(by_id[found].1),
            Err(position) => position,
        };
        let slots = &mut lock(&self.images).slots;
        let slot = slots.len() as u64 + 1;
        if slot >= 1 << (64 - SLOT_SHIFT) {
            return Err(Error::new(
                "store: too many images seen since mounting; remount the store",
            ));
        }
        slots.push(Slot {
            path: store.image_path(entry),
            archive: None,
            last_used: 0,
            last_use: 0,
        });
        by_id.insert(position, (id.to_owned(), slot as u32));
        Ok(slot as u32)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The open archive of a slot, opening it if needed. At the limit, the least
    /// recently used image no request is reading is closed first; when every open image
    /// is being read (more threads than `max_open`), this waits for one to be free.
    fn archive(&self, slot: u32) -> Result<Arc<Archive<ImageFile>>, Errno> {
        let index = (slot as usize).checked_sub(1).ok_or(Errno::ENOENT)?;
        if let Some(archive) = self.use_slot(index)? {
            return Ok(archive);
        }
        let _opening = lock(&self.opening);
        // Another thread may have opened it while this one waited.
        if let Some(archive) = self.use_slot(index)? {
            return Ok(archive);
        }
        let path = self.make_room(index);
        let archive = Arc::new(image::open(&path).map_err(|error| {
            eprintln!("pkg store: {error}");
            Errno::EIO
        })?);
        let mut images = lock(&self.images);
        images.slots[index].archive = Some(Arc::clone(&archive));
        images.open.push(slot);
        Ok(archive)
    }

    /// Mark slot `index` used now; its archive if it is open.
    fn use_slot(&self, index: usize) -> Result<Option<Arc<Archive<ImageFile>>>, Errno> {
        let now = self.now_ms();
        let mut images = lock(&self.images);
        images.clock += 1;
        let clock = images.clock;
        let entry = images.slots.get_mut(index).ok_or(Errno::ENOENT)?;
        entry.last_used = now;
        entry.last_use = clock;
        Ok(entry.archive.clone())
    }

    /// Close images until one more fits under the limit; returns slot `index`'s path.
    /// Only the thread holding `opening` calls this, so the room stays free.
    fn make_room(&self, index: usize) -> PathBuf {
        let limit = self.options.max_open.max(1);
        loop {
            {
                let mut images = lock(&self.images);
                while images.open.len() >= limit {
                    let Images { slots, open, .. } = &mut *images;
                    let victim = open
                        .iter()
                        .copied()
                        .filter(|&slot| slots[slot as usize - 1].closable())
                        .min_by_key(|&slot| slots[slot as usize - 1].last_use);
                    match victim {
                        Some(victim) => {
                            images.close(victim);
                        }
                        None => break,
                    }
                }
                if images.open.len() < limit {
                    return images.slots[index].path.clone();
                }
            }
            // Every open image is being read; requests are short, so poll.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Close every image unused for longer than the idle time, and when no request ran
    /// since the last call, let go of all workspaces but one.
    pub fn close_idle(&self) {
        if !self.busy.swap(false, Ordering::Relaxed) {
            let spare = {
                let mut workspaces = lock(&self.workspaces);
                let keep = workspaces.len().min(1);
                workspaces.split_off(keep)
            };
            if !spare.is_empty() {
                drop(spare);
                crate::sys::release_free_memory();
            }
        }
        let limit = self.options.idle.as_millis() as u64;
        let now = self.now_ms();
        let mut images = lock(&self.images);
        let idle: Vec<u32> = images
            .open
            .iter()
            .copied()
            .filter(|&slot| now.saturating_sub(images.slots[slot as usize - 1].last_used) > limit)
            .collect();
        for slot in idle {
            images.close(slot);
        }
    }

    /// Run `f` with a workspace from the shared pool, which keeps one for each thread
    /// (at most about 450 KiB each: 8 metadata blocks, a data block, compressed input
    /// and a reply). Making them afresh for each request would cost more time than the
    /// decompression they serve (fresh buffers are cleared and faulted in); the idle
    /// closer gives the spare ones back when the store goes quiet.
    fn with_workspace<T>(&self, f: impl FnOnce(&mut Workspace) -> T) -> T {
        // The pool's work is in two plain functions, not in each closure's copy.
        let mut workspace = self.take_workspace();
        let result = f(&mut workspace);
        self.give_back(workspace);
        result
    }

    fn take_workspace(&self) -> Workspace {
        self.busy.store(true, Ordering::Relaxed);
        lock(&self.workspaces).pop().unwrap_or_else(|| Workspace {
            cache: Cache::with_limits(8, 1),
            reply: Vec::new(),
        })
    }

    fn give_back(&self, mut workspace: Workspace) {
        // A request bigger than a block (a kernel that ignores max_pages) is served,
        // but its buffer is not kept.
        if workspace.reply.capacity() > BLOCK_REQUEST as usize {
            workspace.reply = Vec::new();
        }
        let mut workspaces = lock(&self.workspaces);
        if workspaces.len() < self.options.threads.max(1) {
            workspaces.push(workspace);
        }
    }

    /// Run `f` with a decompression cache from the shared pool.
    fn with_cache<T>(&self, f: impl FnOnce(&mut Cache) -> T) -> T {
        self.with_workspace(|workspace| f(&mut workspace.cache))
    }

    // Inode numbers.

    fn tree_node(&self, ino: u64) -> Option<(Arc<Tree>, u64, u32)> {
        let view = read(&self.view);
        view.trees.iter().rev().find_map(|(base, tree)| {
            let index = ino.checked_sub(*base)?;
            (index < tree.nodes.len() as u64).then(|| (Arc::clone(tree), *base, index as u32))
        })
    }

    fn current_tree(&self) -> (Arc<Tree>, u64) {
        let view = read(&self.view);
        let (base, tree) = view.trees.last().expect("a tree is made at start");
        (Arc::clone(tree), *base)
    }

    fn image_ino(slot: u32, reference: u64) -> Result<u64, Errno> {
        if reference > REFERENCE_MASK {
            return Err(Errno::EIO);
        }
        Ok((u64::from(slot) << SLOT_SHIFT) | reference)
    }

    /// The image slot and inode of an image inode number.
    fn image_inode(&self, ino: u64) -> Result<(u32, Arc<Archive<ImageFile>>, Inode), Errno> {
        let slot = (ino >> SLOT_SHIFT) as u32;
        if slot == 0 {
            return Err(Errno::ENOENT);
        }
        let reference = ino & REFERENCE_MASK;
        let archive = self.archive(slot)?;
        let inode = self.with_cache(|cache| {
            if reference == ROOT_MARK {
                archive.root(cache)
            } else {
                archive.inode(reference, cache)
            }
        });
        Ok((slot, archive, inode.map_err(read_errno)?))
    }

    fn image_attr(&self, slot: u32, inode: &Inode, root: bool) -> Result<FileAttr, Errno> {
        let reference = if root { ROOT_MARK } else { inode.reference };
        let ino = Self::image_ino(slot, reference)?;
        Ok(FileAttr {
            ino,
            size: inode.size,
            blocks: inode.size.div_ceil(512),
            mtime: u64::from(inode.mtime),
            kind: file_type(inode.kind),
            perm: inode.mode & 0o7777,
            nlink: inode.nlink,
            uid: inode.uid,
            gid: inode.gid,
            rdev: inode.rdev,
            blksize: 128 * 1024,
        })
    }

    /// The bytes of the images the current generation shows, for statfs.
    fn shown_bytes(&self) -> u64 {
        read(&self.view)
            .visible
            .iter()
            .filter_map(|(id, _)| {
                let path = self.root.join("images").join(format!("{id}.squashfs"));
                std::fs::metadata(path).ok().map(|m| m.len())
            })
            .sum()
    }
}

/// The operations, each returning a Result the session turns into a reply.
impl crate::fuse::Filesystem for Inner {
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<FileAttr, Errno> {
        if parent == ROOT {
            let (tree, base) = self.current_tree();
            if let Ok(index) = tree.child(0, name) {
                return Ok(tree_attr(&tree, base, index));
            }
            let id = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
            let slot = find(&read(&self.view).visible, id).ok_or(Errno::ENOENT)?;
            let (_, _, inode) = self.image_inode(Self::image_ino(slot, ROOT_MARK)?)?;
            return self.image_attr(slot, &inode, true);
        }
        if let Some((tree, base, index)) = self.tree_node(parent) {
            let child = tree.child(index, name).map_err(|_| Errno::ENOENT)?;
            return Ok(tree_attr(&tree, base, child));
        }
        let (slot, archive, dir) = self.image_inode(parent)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let child = self
            .with_cache(|cache| archive.lookup(&dir, name, cache))
            .map_err(read_errno)?
            .ok_or(Errno::ENOENT)?;
        self.image_attr(slot, &child, false)
    }

    fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        if ino == ROOT {
            return Ok(dir_attr(ROOT));
        }
        if let Some((tree, base, index)) = self.tree_node(ino) {
            return Ok(tree_attr(&tree, base, index));
        }
        let (slot, _, inode) = self.image_inode(ino)?;
        self.image_attr(slot, &inode, ino & REFERENCE_MASK == ROOT_MARK)
    }

    fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        if let Some((tree, _, index)) = self.tree_node(ino) {
            return tree
                .link_target(index)
                .map(String::into_bytes)
                .ok_or(Errno::EINVAL);
        }
        let (_, archive, inode) = self.image_inode(ino)?;
        self.with_cache(|cache| archive.read_link(&inode, cache))
            .map_err(read_errno)
    }

    /// Read `size` bytes at `offset` and give them to `deliver`, from a pooled buffer:
    /// a block-sized request decompresses straight into it, and nothing is allocated.
    fn read(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Errno> {
        let (_, archive, inode) = self.image_inode(ino)?;
        if inode.kind != Kind::File {
            return Err(Errno::EISDIR);
        }
        let wanted = (size as u64).min(inode.size.saturating_sub(offset)) as usize;
        self.with_workspace(|workspace| {
            let Workspace { cache, reply } = workspace;
            if reply.len() < wanted {
                reply.resize(wanted, 0);
            }
            let mut done = 0;
            while done < wanted {
                let n = archive.read(
                    &inode,
                    offset + done as u64,
                    &mut reply[done..wanted],
                    cache,
                )?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            deliver(&reply[..done]);
            Ok::<(), ReadError>(())
        })
        .map_err(read_errno)
    }

    /// List a directory from `offset`, giving each entry with the offset after it, until
    /// `add` returns true (the reply is full). With `plus`, entries carry attributes.
    fn readdir(&self, ino: u64, offset: u64, add: &mut AddEntry, plus: bool) -> Result<(), Errno> {
        if ino == ROOT {
            let (tree, base) = self.current_tree();
            let mut entries: Vec<(u64, FileType, Vec<u8>, Option<FileAttr>)> = vec![
                (ROOT, FileType::Directory, b".".to_vec(), None),
                (ROOT, FileType::Directory, b"..".to_vec(), None),
            ];
            if let NodeKind::Dir(children) = &tree.nodes[0].kind {
                for &child in children {
                    let attr = tree_attr(&tree, base, child);
                    entries.push((
                        attr.ino,
                        FileType::Directory,
                        tree.name(child).to_vec(),
                        Some(attr),
                    ));
                }
            }
            // Listing the root must not open every image: the ids come without
            // attributes, which a lookup fetches when someone looks inside.
            for (id, slot) in &read(&self.view).visible {
                let ino = Self::image_ino(*slot, ROOT_MARK)?;
                entries.push((ino, FileType::Directory, id.as_bytes().to_vec(), None));
            }
            return emit(entries, offset, add);
        }
        if let Some((tree, base, index)) = self.tree_node(ino) {
            let NodeKind::Dir(children) = &tree.nodes[index as usize].kind else {
                return Err(Errno::ENOTDIR);
            };
            let mut entries = vec![
                (ino, FileType::Directory, b".".to_vec(), None),
                (ino, FileType::Directory, b"..".to_vec(), None),
            ];
            for &child in children {
                let attr = tree_attr(&tree, base, child);
                entries.push((attr.ino, attr.kind, tree.name(child).to_vec(), Some(attr)));
            }
            return emit(entries, offset, add);
        }
        let (slot, archive, dir) = self.image_inode(ino)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if offset == 0 && add(ino, 1, FileType::Directory, b".", None) {
            return Ok(());
        }
        if offset <= 1 && add(ino, 2, FileType::Directory, b"..", None) {
            return Ok(());
        }
        self.with_cache(|cache| {
            let mut reader = archive.dir_reader(&dir, offset, cache)?;
            while let Some(entry) = reader.next(&archive, cache)? {
                let child_ino =
                    Self::image_ino(slot, entry.reference).map_err(|_| ReadError::BadOffset)?;
                let (name, kind, next) = (entry.name.to_vec(), file_type(entry.kind), entry.offset);
                // A child whose inode is broken is listed without attributes, so the
                // rest of the directory still lists and only that entry gives EIO.
                let attr = if plus {
                    archive
                        .inode(entry.reference, cache)
                        .ok()
                        .and_then(|child| self.image_attr(slot, &child, false).ok())
                } else {
                    None
                };
                if add(child_ino, next, kind, &name, attr) {
                    break;
                }
            }
            Ok(())
        })
        .map_err(read_errno)
    }

    fn used_bytes(&self) -> u64 {
        self.shown_bytes()
    }
}

/// Emit synthetic entries from `offset` (entry i has offset i + 1).
fn emit(
    entries: Vec<(u64, FileType, Vec<u8>, Option<FileAttr>)>,
    offset: u64,
    add: &mut AddEntry,
) -> Result<(), Errno> {
    for (index, (ino, kind, name, attr)) in entries.into_iter().enumerate().skip(offset as usize) {
        if add(ino, index as u64 + 1, kind, &name, attr) {
            break;
        }
    }
    Ok(())
}

fn tree_attr(tree: &Tree, base: u64, index: u32) -> FileAttr {
    let ino = base + u64::from(index);
    match &tree.nodes[index as usize].kind {
        NodeKind::Dir(_) => dir_attr(ino),
        NodeKind::Link(_) => {
            let length = tree.link_target(index).map_or(0, |t| t.len() as u64);
            FileAttr {
                kind: FileType::Symlink,
                perm: 0o777,
                nlink: 1,
                size: length,
                ..dir_attr(ino)
            }
        }
    }
}

fn dir_attr(ino: u64) -> FileAttr {
    FileAttr::directory(ino)
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::BlockDevice => FileType::BlockDevice,
        Kind::CharDevice => FileType::CharDevice,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
    }
}

/// A malformed image gives EIO on the entries it breaks; the daemon lives on.
fn read_errno(error: ReadError) -> Errno {
    match error {
        ReadError::NotFound => Errno::ENOENT,
        ReadError::NotADirectory => Errno::ENOTDIR,
        _ => Errno::EIO,
    }
}

/// Where the listing of `id` is, or would go, in listings sorted by id.
fn listed_position(listings: &[Listed], id: &str) -> Result<usize, usize> {
    listings.binary_search_by(|listed| listed.id.as_str().cmp(id))
}

/// The slot of `id` in a list sorted by id.
fn find(sorted: &[(String, u32)], id: &str) -> Option<u32> {
    sorted
        .binary_search_by(|(known, _)| known.as_str().cmp(id))
        .ok()
        .map(|found| sorted[found].1)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
