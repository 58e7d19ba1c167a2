//! Criterion benches of the in-process MiniLM (filled in below).
fn main() {}
