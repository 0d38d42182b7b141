//! `hello`: prints one line. A test package: the image preinstalls it, and the end-to-end
//! test runs `/bin/hello` to show a preinstalled package's program runs from /bin.

fn main() {
    println!("Hello from amber!");
}
