//! Where the runtime reads the time.
//!
//! Every timing decision (reservations, cooldowns, retry delays, header resets) reads one
//! injected [`Clock`], so tests drive the limiter on tokio's paused clock and never sleep
//! for real. The default clock follows `tokio::time::Instant`, which is the paused clock
//! inside `#[tokio::test(start_paused = true)]`.

use std::fmt;
use std::sync::OnceLock;
use std::time::SystemTime;

use tokio::time::Instant;

/// A source of monotonic and wall-clock time.
///
/// The wall clock is needed only to read absolute times that servers send (HTTP dates and
/// epoch resets); every wait is scheduled on the monotonic clock.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current monotonic instant, on tokio's timer.
    fn now(&self) -> Instant;

    /// The wall-clock time matching [`Clock::now`].
    fn wall(&self) -> SystemTime;

    /// Nanoseconds since a start fixed for this clock, advancing as [`Clock::now`] does.
    ///
    /// The limiter reads time through this on every acquire, so it is worth making cheap:
    /// a clock counting nanoseconds itself (a TSC clock, say) answers without building an
    /// `Instant`. The default counts from the first time any clock was read this way.
    fn nanos(&self) -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = self.now();
        nanos_between(*START.get_or_init(|| now), now)
    }
}

/// Nanoseconds from `from` to `to`, zero when `to` is earlier.
///
/// Every acquire reads the clock through this, so it keeps to 64-bit arithmetic: going
/// through [`std::time::Duration::as_nanos`] and back from 128 bits cost about 3 ns of
/// an uncontended acquire's 29.
#[inline]
fn nanos_between<T: Into<std::time::Instant>>(from: T, to: T) -> u64 {
    let elapsed = to.into().saturating_duration_since(from.into());
    (elapsed.as_secs().saturating_mul(1_000_000_000))
        .saturating_add(u64::from(elapsed.subsec_nanos()))
}

/// `delay` in nanoseconds, `u64::MAX` for a delay beyond 584 years.
pub(crate) fn nanos(delay: std::time::Duration) -> u64 {
    u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)
}

/// The default clock: tokio's monotonic clock, with wall time derived from it.
///
/// Wall time is anchored once, when the clock is made, and then advanced with the monotonic
/// clock. This keeps the two consistent when tokio's clock is paused or advanced by a test.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    anchor: Instant,
    anchor_wall: SystemTime,
}

impl TokioClock {
    /// A clock anchored at the current time.
    pub fn new() -> Self {
        Self {
            anchor: Instant::now(),
            anchor_wall: SystemTime::now(),
        }
    }

    /// A clock whose wall time at the current instant is `wall`, for tests that need exact
    /// epoch values.
    pub fn with_wall(wall: SystemTime) -> Self {
        Self {
            anchor: Instant::now(),
            anchor_wall: wall,
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        self.anchor_wall + self.now().saturating_duration_since(self.anchor)
    }

    fn nanos(&self) -> u64 {
        nanos_between(self.anchor, self.now())
    }
}

/// A clock on the operating system's monotonic clock, ignoring tokio's paused time.
///
/// Cheaper to read than [`TokioClock`] when tokio's `test-util` feature is compiled in
/// (tokio then locks its clock on every read); use it where paused time is not wanted.
#[derive(Debug, Clone, Copy)]
pub struct StdClock {
    anchor: std::time::Instant,
    anchor_wall: SystemTime,
}

impl StdClock {
    /// A clock anchored at the current time.
    pub fn new() -> Self {
        Self {
            anchor: std::time::Instant::now(),
            anchor_wall: SystemTime::now(),
        }
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    fn now(&self) -> Instant {
        Instant::from_std(std::time::Instant::now())
    }

    fn wall(&self) -> SystemTime {
        self.anchor_wall + std::time::Instant::now().saturating_duration_since(self.anchor)
    }

    fn nanos(&self) -> u64 {
        nanos_between(self.anchor, std::time::Instant::now())
    }
}
