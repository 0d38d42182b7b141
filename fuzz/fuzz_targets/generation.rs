//! Fuzz target: any text as a generation file; what parses must write back the same.
//! The checks are in `checks.rs`, which core's tests replay the corpus through.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::generation(data);
});
