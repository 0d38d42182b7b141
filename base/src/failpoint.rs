//! Failpoints for the crash tests: `AMBER_FAILPOINT=N` kills the process at the N-th
//! failpoint it passes, as a power cut or SIGKILL would (SECURITY-TESTS item 22).
//!
//! Failpoints sit between every pair of durable steps. With the variable unset they cost
//! one relaxed atomic load.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static PASSED: AtomicU64 = AtomicU64::new(0);

fn target() -> Option<u64> {
    static TARGET: OnceLock<Option<u64>> = OnceLock::new();
    *TARGET.get_or_init(|| std::env::var("AMBER_FAILPOINT").ok()?.parse().ok())
}

/// Pass a failpoint; dies here, without unwinding or flushing, if it is the chosen one.
pub fn hit(name: &str) {
    let Some(target) = target() else { return };
    let count = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if count == target {
        eprintln!("pkg: failpoint {count} ({name}): killed");
        // SIGKILL semantics as far as the store is concerned: no destructor, no cleanup.
        std::process::abort();
    }
}

/// How many failpoints this process passed (reported by `AMBER_FAILPOINT=count`).
pub fn passed() -> u64 {
    PASSED.load(Ordering::SeqCst)
}
