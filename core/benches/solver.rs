fn main() {
    eprintln!("bench solver: not built yet");
    std::process::exit(1);
}
