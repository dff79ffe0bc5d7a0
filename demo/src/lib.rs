//! polvo's demo: a bulk update of 2,000 customers through the generated Stripe client,
//! against a mock Stripe on loopback that enforces Stripe's documented limits.
//!
//! Run it with `cargo run -p polvo-demo`. The [`mock`] server is also what the bulk
//! benchmark (`cargo bench -p polvo-demo --bench bulk`) runs against.

pub mod mock;
