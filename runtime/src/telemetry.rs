//! Counters exported through the [`metrics`](https://docs.rs/metrics) facade, behind the
//! `metrics` cargo feature.
//!
//! The names and labels are listed in the crate documentation, under "Cargo features".

use std::time::Duration;

/// Adds `value` to the counter `name` of one bucket.
#[cfg(feature = "metrics")]
pub(crate) fn count(name: &'static str, service: &str, bucket: &str, value: u64) {
    metrics::counter!(name, "service" => service.to_owned(), "bucket" => bucket.to_owned())
        .increment(value);
}

/// Records one throttle wait of one bucket.
#[cfg(feature = "metrics")]
pub(crate) fn waited(service: &str, bucket: &str, wait: Duration) {
    metrics::histogram!(
        "polvo_throttle_wait_seconds",
        "service" => service.to_owned(),
        "bucket" => bucket.to_owned()
    )
    .record(wait.as_secs_f64());
}

/// Without the `metrics` feature: nothing.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn count(_name: &'static str, _service: &str, _bucket: &str, _value: u64) {}

/// Without the `metrics` feature: nothing.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn waited(_service: &str, _bucket: &str, _wait: Duration) {}
