//! `greet [NAME]`: greets NAME (default: amber). A test package the end-to-end test
//! installs over HTTP, removes and installs again.

fn main() {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "amber".to_owned());
    println!("Greetings, {name}!");
}
