//! Fuzz target: lines as versions, dependencies and package ids, which must write back
//! the same and be totally ordered. The checks are in `checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::version(data);
});
