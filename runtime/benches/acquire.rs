//! Benchmarks of the limiter (filled in below).
fn main() {}
