//! The walk the `squashfs` fuzz target runs on every input. core's tests include this
//! file too (`core/tests/squashfs_read.rs`), so the corpus replays under `cargo test`.

use amber_core::squashfs::read::{Archive, Cache, CheckLimits, CheckSummary, Error, Kind};

/// Small enough that every input finishes in milliseconds.
pub const LIMITS: CheckLimits = CheckLimits {
    max_entries: 10_000,
    max_depth: 64,
    max_read: 16 << 20,
    read_data: true,
};

/// Open `data` and read everything in it: the root listing resumed after every
/// entry, each root entry looked up by name, partial reads of the root's files at
/// odd offsets, then the whole tree through `Archive::check`. Small caches make eviction happen often.
pub fn walk(data: &[u8]) -> Result<CheckSummary, Error> {
    let archive = Archive::open(data)?;
    let mut cache = Cache::with_limits(2, 1);
    let root = archive.root(&mut cache)?;
    let mut offset = 0;
    let mut buf = [0u8; 1000];
    for _ in 0..1000 {
        let mut next = None;
        archive.read_dir(&root, offset, &mut cache, &mut |entry| {
            let mut name = [0u8; 256];
            name[..entry.name.len()].copy_from_slice(entry.name);
            next = Some((
                entry.offset,
                entry.reference,
                entry.kind,
                name,
                entry.name.len(),
            ));
            false
        })?;
        let Some((after, reference, kind, name, name_len)) = next else {
            break;
        };
        offset = after;
        let inode = archive.inode(reference, &mut cache)?;
        archive.lookup(&root, &name[..name_len], &mut cache)?;
        match kind {
            Kind::File => {
                for start in [inode.size / 3, inode.size.saturating_sub(10), 1] {
                    archive.read(&inode, start, &mut buf, &mut cache)?;
                }
            }
            Kind::Dir => {
                archive.dir_reader(&inode, 4, &mut cache).ok();
            }
            _ => {}
        }
    }
    archive.check(&mut cache, &LIMITS)
}
