//! `cargo xtask build --board B`: cross-build the device binary and report its size; and
//! the host build of pkg the image and recipe steps run.
//!
//! The binary is built with the size-optimized release profile, the standard library
//! rebuilt for size (`-Z build-std`) and panics that abort at once without formatting
//! (DESIGN §8). That needs unstable flags, allowed on the pinned stable toolchain by
//! `RUSTC_BOOTSTRAP=1`, as the Linux kernel's Rust build does; host builds stay plain
//! stable. The device build has its own target directory so it never invalidates the
//! host build's artifacts.

use crate::args::Args;
use crate::board::{Arch, Board};
use crate::cmd::Cmd;
use crate::util::{size, step};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The device build's target directory.
pub const TARGET_DIR: &str = "target/device";

const PACKAGE: &str = "amber-boot";
const BINARY: &str = "amber";

pub fn run(args: &[String]) -> Result<(), String> {
    let args = Args::parse("build", args, &["--board"], &[])?;
    let board = args.board()?;
    crate::deps::ensure()?;
    let binary = device_binary(&board)?;
    let bytes = file_size(&binary)?;
    let verdict = if bytes <= board.budget.binary_bytes {
        "within"
    } else {
        "OVER"
    };
    println!(
        "{}: {} {verdict} the budget of {}",
        binary.display(),
        size(bytes),
        size(board.budget.binary_bytes)
    );
    Ok(())
}

/// Build the device binary for the board's target; returns its path.
pub fn device_binary(board: &Board) -> Result<PathBuf, String> {
    cross_build(board, TARGET_DIR, &[])
}

/// The same binary with its symbol table kept, for the per-crate size breakdown. It has
/// its own target directory, since a changed profile rebuilds every crate.
pub fn device_binary_with_symbols(board: &Board) -> Result<PathBuf, String> {
    cross_build(
        board,
        SYMBOLS_TARGET_DIR,
        &["--config", "profile.release.strip=false"],
    )
}

/// The target directory of [`device_binary_with_symbols`].
pub const SYMBOLS_TARGET_DIR: &str = "target/device-symbols";

fn cross_build(board: &Board, target_dir: &str, extra: &[&str]) -> Result<PathBuf, String> {
    let mut rustflags = vec![
        "-Zunstable-options",
        "-Cpanic=immediate-abort",
        "-Ctarget-feature=+crt-static",
        // Nothing unwinds once panics abort at once: the unwind tables (.eh_frame and
        // its index, about 14% of the binary) would only take space.
        "-Cforce-unwind-tables=no",
        "-Clink-arg=--no-eh-frame-hdr",
        // On x86_64 the binary stays a static PIE (ASLR; a fixed-address executable,
        // -Crelocation-model=static, would be 13.1 KB smaller), but its ~830 relative
        // relocations are packed as a RELR bitmap (musl's static-pie start code applies
        // DT_RELR) instead of 24 bytes each: about 18 KB. rustc links aarch64-musl as a
        // plain static executable, which has no relocations to pack.
        "-Clink-arg=-zpack-relative-relocs",
        // Fold functions whose code came out identical (monomorphized generics): ~2.5 KB.
        // Rust promises no distinct addresses for distinct functions, so this is sound.
        "-Clink-arg=--icf=all",
        // Derived Debug impls print only the type or variant name. Nothing the device
        // prints uses a derived Debug of a type with fields (`{:?}` at run time is on
        // strings, paths and fieldless enums, whose output is unchanged): ~5 KB.
        "-Zfmt-debug=shallow",
        // The base is five crates (core, base, store, pkg, boot). A generic that several
        // use is instantiated once, in the crate below, not again in each (~0.5 KB),
        // and no function is inlined into another crate just because it is small
        // (~0.5 KB): what one crate calls of another stays one copy.
        "-Zshare-generics=y",
        "-Zcross-crate-inline-threshold=never",
    ];
    if board.arch == Arch::X86_64 {
        // Frame pointers: locals are then addressed from rbp, which needs no SIB byte
        // as rsp does, so the saved bytes per stack access outweigh each function's
        // push/mov/pop of rbp: ~8.6 KB. Backtraces (gdb, perf) get them for free.
        rustflags.push("-Cforce-frame-pointers=yes");
        // Move repeated instruction sequences into shared functions. LLVM already does
        // this for aarch64 at opt-level "z"; for x86_64 it must be asked: ~11 KB.
        rustflags.push("-Cllvm-args=-enable-machine-outliner");
        // A switch as compare-and-branch chains rather than a table of jumps: ~0.1 KB.
        rustflags.push("-Cjump-tables=no");
        // Do not inline a function whose stack frame exceeds 256 bytes. Inlining every
        // command into `pkg`'s dispatcher (and every step into init's `boot`, the
        // supervisor's loop, ...) gave functions frames of many KB, and on x86_64 each
        // access to a stack slot past 127 bytes takes a 4-byte displacement instead of
        // one: ~17 KB. The hot loops (SHA-256, inflate, the FUSE reads) are unchanged.
        rustflags.push("-Cllvm-args=-inline-max-stacksize=256");
        // A copy of a known size over 16 bytes (a String, a Vec, every struct moved by
        // value) as `rep movsb` (2 bytes, with its three registers set) rather than up to
        // four pairs of 16-byte loads and stores, which is what opt-level "z" allows by
        // default: ~10.2 KB. Short `rep movsb` starts slower on CPUs without fast short
        // rep mov (FSRM), but the loops the device spends its time in (inflate, SHA-256,
        // the FUSE replies) move no structs per byte, and `cargo xtask bench install`
        // showed no difference beyond run-to-run noise.
        rustflags.push("-Cllvm-args=-max-store-memcpy=1");
        // The same for fills of a known size: ~0.2 KB.
        rustflags.push("-Cllvm-args=-max-store-memset=1");
        // SimplifyCFG hoists the instructions both arms of a branch start with: ~0.7 KB.
        rustflags.push("-Cllvm-args=-hoist-common-insts");
        // The register allocator places the copies around a split live range for size,
        // not speed: ~0.8 KB.
        rustflags.push("-Cllvm-args=-split-spill-mode=size");
        // Lay out each function's blocks by the ext-TSP model with code size as its
        // goal: more fall-throughs and more branches that reach with a 1-byte offset
        // (2 bytes instead of 5 or 6): ~6.2 KB.
        rustflags.push("-Cllvm-args=-apply-ext-tsp-for-size");
    } else {
        // Outline again what the first outlining left repeated: ~1.4 KB.
        rustflags.push("-Cllvm-args=-machine-outliner-reruns=2");
        // As on x86_64, but aarch64's fixed-size instructions gain less from smaller
        // frames, and the measured best bound is larger: ~1.8 KB.
        rustflags.push("-Cllvm-args=-inline-max-stacksize=896");
        // Atomics inline as load-exclusive/store-exclusive loops instead of calls to
        // helpers that test for ARMv8.1's LSE instructions at run time: ~1.7 KB. The
        // boards' CPUs (Cortex-A53 in the Pi 3, Cortex-A72 in the Pi 4) are ARMv8.0
        // and have no LSE, so the helpers always took the same loops.
        rustflags.push("-Ctarget-feature=-outline-atomics");
    }
    step(&format!(
        "device binary for {} (RUSTC_BOOTSTRAP=1 RUSTFLAGS=\"{}\")",
        board.rust_target,
        rustflags.join(" ")
    ));
    let per_arch: &[&str] = match board.arch {
        // The Raspberry Pi's boot partitions (init's health check, `pkg system`). Every
        // Pi board is aarch64, so the x86_64 binary leaves them out: ~18.5 KB.
        Arch::Aarch64 => &["--features", "raspberry-pi"],
        // SHA-256 at the size-first opt-level, not the workspace's 3: ~7.4 KB. x86_64's
        // hash runs on the CPU's SHA extensions wherever they exist (Intel Goldmont
        // and Ice Lake on, every AMD Zen), where the opt-level does not matter; the
        // plain-code path it changes still hashes 190 MB/s on this host (435 at 3),
        // more than any network or USB stick delivers. aarch64 keeps opt-level 3:
        // the Pi 3's and Pi 4's Cortex-A53/A72 have no SHA-2 instructions.
        Arch::X86_64 => &["--config", "profile.release.package.sha2.opt-level=\"z\""],
    };
    Cmd::new("cargo")
        .args([
            "build",
            "--release",
            "--package",
            PACKAGE,
            "--bin",
            BINARY,
            // Without the host tests' `init --root DIR` (boot's feature test-root).
            "--no-default-features",
            "--target",
            &board.rust_target,
            "--target-dir",
            target_dir,
            "-Z",
            "build-std=std,panic_abort",
            // The standard library's own size switch: small sorts (a merge sort and a
            // heap sort instead of driftsort and ipnsort, per element type), smaller
            // integer formatting and string search: ~37 KB. It replaces the default
            // build-std features, which only add unwinding and backtraces, both unused
            // with immediate-abort panics.
            "-Z",
            "build-std-features=optimize_for_size",
        ])
        .args(per_arch)
        .args(extra)
        .env("RUSTC_BOOTSTRAP", "1")
        // The encoded form wins over RUSTFLAGS and over the target's rustflags in
        // .cargo/config.toml, whatever the caller's environment holds.
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        .run()?;
    let binary = PathBuf::from(target_dir)
        .join(&board.rust_target)
        .join("release")
        .join(BINARY);
    if !binary.is_file() {
        return Err(format!("cargo built no {}", binary.display()));
    }
    Ok(binary)
}

/// The host build of pkg (pack, repo index, and `--root` stores for images), absolute.
pub fn host_pkg() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            step("host pkg");
            Cmd::new("cargo")
                .args(["build", "--package", "amber-pkg", "--bin", "pkg"])
                .run()?;
            let program = PathBuf::from("target/debug/pkg");
            if !program.is_file() {
                return Err(format!("cargo built no {}", program.display()));
            }
            // Absolute, since pkg is also run from other directories' points of view.
            std::fs::canonicalize(&program).map_err(|e| format!("{}: {e}", program.display()))
        })
        .clone()
}

pub fn file_size(path: &std::path::Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|metadata| metadata.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}
