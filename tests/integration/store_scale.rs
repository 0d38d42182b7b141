//! The FUSE store with many packages: images open lazily and never more than
//! `--max-open` at once, however many packages are read, by however many readers.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use amber_tests::fixture::{future, Repo};
use amber_tests::TempDir;

use crate::store::{can_mount, device_for, open_images, Mounted};

const PACKAGES: usize = 500;
const MAX_OPEN: usize = 32;

#[test]
fn store_with_500_packages_never_holds_more_than_max_open_images() {
    if !can_mount() {
        return;
    }
    let temp = TempDir::new("store-500");
    let repo = Repo::new(&temp, "repo");
    let names: Vec<String> = (0..PACKAGES).map(|i| format!("p{i:03}")).collect();
    for name in &names {
        repo.simple(name, "1.0-r0", &[]);
    }
    repo.index(1, future());
    let device = device_for(&temp, "device", &repo);
    let mut add = vec!["add"];
    add.extend(names.iter().map(String::as_str));
    device.ok(&add);

    let max_open = MAX_OPEN.to_string();
    let store = Mounted::start(&device, &temp.join("mnt"), &["--max-open", &max_open]);
    // Building the exchange directories opened every image in turn; none stays open
    // beyond the limit.
    assert!(
        store.open_images() <= MAX_OPEN,
        "{} open",
        store.open_images()
    );
    assert_eq!(fs::read_dir(store.join("bin")).unwrap().count(), PACKAGES);

    // Sample the daemon's open image files while four readers each read one file of
    // every package, through its directory and through the exchange link.
    let stop = AtomicBool::new(false);
    let most = AtomicUsize::new(0);
    let samples = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                most.fetch_max(open_images(store.pid), Ordering::SeqCst);
                samples.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let readers: Vec<_> = (0..4)
            .map(|reader| {
                let (store, names) = (&store, &names);
                scope.spawn(move || {
                    // Each reader starts at another place, so they work on different
                    // images at once.
                    for step in 0..PACKAGES {
                        let name = &names[(step + reader * PACKAGES / 4) % PACKAGES];
                        let expected = format!("#!/bin/sh\necho {name}-1.0-r0\n");
                        let path = if reader % 2 == 0 {
                            store.join(format!("{name}-1.0-r0/bin/{name}"))
                        } else {
                            store.join(format!("bin/{name}"))
                        };
                        let contents = fs::read_to_string(&path)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                        assert_eq!(contents, expected);
                    }
                })
            })
            .collect();
        for reader in readers {
            reader.join().unwrap();
        }
        stop.store(true, Ordering::SeqCst);
    });
    let most = most.into_inner();
    let open_now = store.open_images();
    assert!(samples.into_inner() > 10, "the sampler did not run");
    assert!(
        most <= MAX_OPEN,
        "{most} images open at once, over {MAX_OPEN}"
    );
    // Right after reading 500 images the limit is full: the bound is what holds the
    // count down, not an early close.
    assert!(
        open_now > MAX_OPEN / 2 && open_now <= MAX_OPEN,
        "{open_now} open after reading"
    );
    // And the store still answers for all of them.
    assert_eq!(
        fs::read_to_string(store.join("p000-1.0-r0/bin/p000")).unwrap(),
        "#!/bin/sh\necho p000-1.0-r0\n"
    );
    assert!(store.alive(), "{}", store.log());
}
