//! Round trips far beyond the usual, as a sign a request reached the server late.
//!
//! Design note (2026-12): a request can be held up after it leaves the limiter, where no
//! wake-up lateness shows it: a hand-over between threads that waits for the OS, a new
//! connection, a busy server. In the bulk benchmark (a strict server at 500/s, tolerating
//! one request early) such a request now and then took 2-4 ms from send to the server's
//! handler where the rest took 0.1-0.4 ms, and reached it together with the next one. The
//! server counted the two as a burst and refused the request after them, which was on
//! time. The held-up request's response comes back late by about as much, before that
//! next slot, so the limiter moves the later slots back by the excess beyond a quarter
//! slot, at most a slot.
//!
//! What counts as far beyond the usual is TCP's retransmission rule (RFC 6298): a round
//! trip above the smoothed mean plus four mean deviations. A server whose response times
//! vary widely raises that bar with them, so a real API's slow responses rarely move
//! anything, and a move never costs more than one slot.

use std::time::Duration;

/// Smoothed round-trip time and its mean deviation, in nanoseconds.
#[derive(Debug, Default)]
pub(crate) struct RoundTrips {
    /// `(smoothed, deviation)`, `None` before the first sample.
    estimate: Option<(u64, u64)>,
}

impl RoundTrips {
    /// Records one round trip; returns how far it exceeded the smoothed mean when it was
    /// beyond the mean plus four deviations (measured before this sample).
    pub(crate) fn observe(&mut self, round_trip: Duration) -> Option<Duration> {
        let sample = crate::clock::nanos(round_trip);
        let Some((smoothed, deviation)) = self.estimate else {
            // RFC 6298's start: the first sample as the mean, half of it as deviation.
            self.estimate = Some((sample, sample / 2));
            return None;
        };

        let outlier = sample > smoothed.saturating_add(deviation.saturating_mul(4));
        let error = smoothed.abs_diff(sample);
        let deviation = deviation - deviation / 4 + error / 4;
        let smoothed = smoothed - smoothed / 8 + sample / 8;
        self.estimate = Some((smoothed, deviation));

        outlier.then(|| Duration::from_nanos(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Estimates settled on round trips of 100-120 µs.
    fn settled() -> RoundTrips {
        let mut trips = RoundTrips::default();
        for i in 0..200 {
            assert_eq!(trips.observe(micros(100 + i % 3 * 10)), None);
        }
        trips
    }

    #[test]
    fn usual_round_trips_are_not_outliers() {
        let mut trips = settled();
        assert_eq!(trips.observe(micros(125)), None);
    }

    #[test]
    fn a_held_up_round_trip_reports_its_excess_over_the_mean() {
        let mut trips = settled();
        let excess = trips.observe(micros(2_600)).expect("an outlier");
        assert!(
            excess > micros(2_480) && excess < micros(2_500),
            "{excess:?}"
        );
    }

    #[test]
    fn widely_varying_round_trips_raise_the_bar() {
        let mut trips = RoundTrips::default();
        // A real API: 200-400 ms. What would be twenty times the usual on loopback is
        // within its spread.
        for i in 0..200 {
            trips.observe(Duration::from_millis(200 + i * 37 % 200));
        }
        assert_eq!(trips.observe(Duration::from_millis(450)), None);
        assert!(trips.observe(Duration::from_millis(900)).is_some());
    }

    #[test]
    fn a_slow_first_round_trip_sets_a_high_bar_that_comes_down() {
        let mut trips = RoundTrips::default();
        trips.observe(micros(8_000));
        assert_eq!(trips.observe(micros(3_000)), None);
        for _ in 0..100 {
            trips.observe(micros(100));
        }
        assert!(trips.observe(micros(3_000)).is_some());
    }
}
