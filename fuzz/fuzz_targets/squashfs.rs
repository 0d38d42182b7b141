//! Fuzz target: open any bytes as a SquashFS image and walk all of it, bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../walk.rs"]
mod walk;

fuzz_target!(|data: &[u8]| {
    let _ = walk::walk(data);
});
