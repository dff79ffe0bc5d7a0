//! Usage counters and the snapshot a client reports per bucket.
//!
//! Counters are plain relaxed atomics: they are statistics, read as a whole only by
//! [`crate::Limiter::usage`], and must cost next to nothing on the request path.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::limit::Limit;

/// Counters for one bucket, updated on the request path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) throttled_nanos: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) server: Mutex<ServerSeen>,
}

/// What the server last reported for a bucket.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ServerSeen {
    pub(crate) remaining: Option<u64>,
    pub(crate) limit: Option<u64>,
    pub(crate) reset_at: Option<Instant>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A point-in-time view of every bucket of a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// One entry per bucket, by name.
    pub buckets: Vec<BucketUsage>,
}

/// A point-in-time view of one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketUsage {
    /// The bucket's name.
    pub name: String,
    /// Its configured limits.
    pub limits: Vec<Limit>,
    /// Units available now, per limit (empty when the store is remote).
    pub available: Vec<u64>,
    /// Time left in a cooldown.
    pub blocked_for: Duration,
    /// Pace as a share of the configured rate (1.0 unless 429s slowed it).
    pub pace: f64,
    /// Units left as the server last reported.
    pub server_remaining: Option<u64>,
    /// The server's limit as last reported.
    pub server_limit: Option<u64>,
    /// Time until the server's window resets, as last reported.
    pub server_reset_in: Option<Duration>,
    /// Requests sent (every attempt).
    pub sent: u64,
    /// Requests that waited for quota.
    pub throttled: u64,
    /// Total time requests waited for quota.
    pub throttled_time: Duration,
    /// 429 responses received.
    pub rejected: u64,
    /// Retries made.
    pub retries: u64,
    /// Requests that ended in an error.
    pub failures: u64,
}

impl fmt::Display for Usage {
    /// A table, one row per bucket.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:<18} {:>9} {:>8} {:>9} {:>10} {:>6} {:>7} {:>8} {:>10}",
            "bucket",
            "limits",
            "available",
            "sent",
            "throttled",
            "waited",
            "429s",
            "retries",
            "failures",
            "server"
        )?;
        for b in &self.buckets {
            let limits: Vec<String> = b.limits.iter().map(ToString::to_string).collect();
            let limits = if limits.is_empty() {
                "-".to_owned()
            } else {
                limits.join(", ")
            };
            let available = b
                .available
                .iter()
                .min()
                .map_or("-".to_owned(), u64::to_string);
            let server = match (b.server_remaining, b.server_limit) {
                (Some(r), Some(l)) => format!("{r}/{l}"),
                (Some(r), None) => r.to_string(),
                _ => "-".to_owned(),
            };
            writeln!(
                f,
                "{:<12} {:<18} {:>9} {:>8} {:>9} {:>9.1}s {:>6} {:>7} {:>8} {:>10}",
                b.name,
                limits,
                available,
                b.sent,
                b.throttled,
                b.throttled_time.as_secs_f64(),
                b.rejected,
                b.retries,
                b.failures,
                server
            )?;
        }
        Ok(())
    }
}
