//! Integration tests live under `tests/`. The library holds only the README, whose Rust
//! examples run as doc tests here, where both the runtime and the generated Stripe
//! client are dependencies: an example that stops compiling fails the test command.

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
