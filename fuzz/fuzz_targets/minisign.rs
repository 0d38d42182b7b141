//! Fuzz target: a signature file and the data it signs, verified against a fixed key;
//! every line also as base64, a key line and a key id. The checks are in `checks.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::minisign(data);
});
