//! Reservation latency of the in-memory and Redis stores (filled in below).

fn main() {}
