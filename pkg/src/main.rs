//! The host `pkg` executable; the device reaches the same code through amber-boot.

fn main() -> std::process::ExitCode {
    amber_pkg::cli::main(std::env::args_os())
}
