//! The quota arithmetic: GCRA over several limits at once, on plain integers.
//!
//! Design note (2026-12): every bucket keeps one theoretical arrival time (TAT) per limit,
//! in nanoseconds on its store's timeline. A reservation computes, for every limit of every
//! bucket involved, the earliest start that keeps the limit, takes the latest of them, and
//! only then commits all of them; a refusal therefore spends nothing anywhere.
//!
//! Reservations are scheduled from the TATs, never from the moment a waiter wakes up. A
//! limiter that re-checks at wake-up loses each timer's lateness (governor at burst 1 paces
//! 200/s at about 193/s on a loaded 2-core machine); here the next slot is already fixed
//! before the previous waiter wakes, so a paced stream keeps the configured rate.
//!
//! This module knows nothing about clocks, locks or tokio, so the same code runs inside the
//! in-process limiter, the in-memory store and (mirrored in Lua) the Redis store.

use crate::limit::Limit;

/// Pace is kept in parts per million of the configured rate.
pub(crate) const FULL_PACE: u32 = 1_000_000;
/// The lowest pace repeated 429s can push a bucket to.
const MIN_PACE: u32 = 500_000;
/// Each repeated 429 that carries no retry time lowers the pace by 2 %.
const PACE_CUT_PPM: u64 = 20_000;
/// A 429 counts as repeated when fewer successes than this came since the previous one;
/// a lone 429 (a jittery send) costs its slot but leaves the pace alone.
const REPEAT_WITHIN: u32 = 200;
/// Each refused request resent in its slot trims the pace by 0.05 %.
///
/// Such a refusal means the server's count stood a hair past ours. Against a strict
/// server on a jittery path some come at any pace near the limit, so a trim is small: with
/// the recovery below, the pace settles where about one request in six is refused. In the
/// throttle benchmark (no tolerance, 100/s) that gave 98.4 % of the limit, against 97.5 %
/// settling at one in eleven, because each refusal costs only a resend's round trip while
/// a lower pace costs every request. Against a server whose limit is a little below the
/// configured one, every request would be refused and resent without trims, as a resend
/// usually lands past the server's count.
const PACE_TRIM_PPM: u64 = 500;
/// Each success recovers 0.01 % of the configured rate: a 2 % cut takes 200.
///
/// Cuts and recoveries balance where about one success in 200 meets a repeated 429. On a
/// jittery path to a strict server that is a little above the pace at which nothing is
/// refused, and a few refusals cost less than a pace far below the limit: waiting for 200
/// clean successes before recovering held the pace 5 to 25 % low at 500/s.
const PACE_RECOVERY: u32 = 100;

/// One limit as the arithmetic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitParams {
    /// Nanoseconds between units at the sustained rate.
    pub(crate) interval: u64,
    /// Units allowed at once.
    pub(crate) burst: u64,
    /// Length of the limit's period, for matching what servers report.
    pub(crate) period: u64,
    /// Units per period.
    pub(crate) count: u64,
}

impl From<&Limit> for LimitParams {
    fn from(limit: &Limit) -> Self {
        Self {
            interval: limit.interval_nanos(),
            burst: u64::from(limit.burst()),
            period: crate::clock::nanos(limit.period()),
            count: u64::from(limit.count()),
        }
    }
}

/// The outcome of asking for `cost` units across some buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Reserved: the request may start at `start`.
    Granted {
        /// When the request may start.
        start: u64,
    },
    /// Not reserved: the earliest start is later than the caller would wait.
    TooLong {
        /// The earliest start there was.
        start: u64,
        /// Which target decided that start.
        target: usize,
    },
    /// Not reserved: the cost exceeds the burst of one limit, now and forever.
    Never {
        /// Which target refused.
        target: usize,
        /// Which of its limits.
        limit: usize,
    },
}

/// What a server reported about one bucket, on the store's timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ServerView {
    /// Units the server says are left.
    pub(crate) remaining: Option<u64>,
    /// When the server's window resets.
    pub(crate) reset_at: Option<u64>,
    /// The server's limit for the window.
    pub(crate) limit: Option<u64>,
    /// The server's window length.
    pub(crate) window: Option<u64>,
}

/// The state of one bucket: O(1) per limit, no background task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BucketState {
    /// One theoretical arrival time per limit.
    pub(crate) tats: Vec<u64>,
    /// No request starts before this time (a cooldown after a 429, or an exhausted window).
    pub(crate) blocked_until: u64,
    /// Sum of all pauses inserted so far; waiters compare it to learn they were moved.
    pub(crate) shift_total: u64,
    /// Current pace in parts per million of the configured rate.
    pub(crate) pace: u32,
    /// Bumped by every change, so a cancelled reservation can tell if it was the last one.
    pub(crate) seq: u64,
    /// Successes since the last 429 without a retry time.
    pub(crate) clean: u32,
}

impl BucketState {
    /// A fresh bucket with `limits` limits, all available.
    pub(crate) fn new(limits: usize) -> Self {
        Self {
            tats: vec![0; limits],
            blocked_until: 0,
            shift_total: 0,
            pace: FULL_PACE,
            seq: 0,
            clean: REPEAT_WITHIN,
        }
    }

    /// The interval of `limit` at the current pace.
    pub(crate) fn interval(&self, limit: &LimitParams) -> u64 {
        if self.pace >= FULL_PACE {
            return limit.interval;
        }
        let slowed =
            (u128::from(limit.interval) * u128::from(FULL_PACE)).div_ceil(u128::from(self.pace));
        u64::try_from(slowed).unwrap_or(u64::MAX)
    }

    /// The earliest start for `cost` units, or the index of a limit it can never fit.
    pub(crate) fn earliest(
        &self,
        limits: &[LimitParams],
        cost: u64,
        now: u64,
    ) -> Result<u64, usize> {
        let mut start = now.max(self.blocked_until);
        for (index, (limit, tat)) in limits.iter().zip(&self.tats).enumerate() {
            if cost > limit.burst {
                return Err(index);
            }
            // The unit conforms when `max(tat, s) + cost * T <= s + burst * T`. The slack
            // stays at the configured interval when the pace is down: a longer one would
            // let units already spaced at full pace start earlier, past the limit.
            let slack = (limit.burst - cost).saturating_mul(limit.interval);
            start = start.max(tat.saturating_sub(slack));
        }
        Ok(start)
    }

    /// Spends `cost` units starting at `start` (which `earliest` allowed).
    pub(crate) fn commit(&mut self, limits: &[LimitParams], cost: u64, start: u64) {
        for (index, limit) in limits.iter().enumerate() {
            let spend = cost.saturating_mul(self.interval(limit));
            let tat = &mut self.tats[index];
            *tat = (*tat).max(start).saturating_add(spend);
        }
        self.seq += 1;
    }

    /// Gives back a reservation that will not be used, when nothing happened since it.
    ///
    /// Returns false, keeping the quota spent, when another reservation, pause or report
    /// came after it: undoing it then could let a later reservation start too early.
    pub(crate) fn refund(&mut self, limits: &[LimitParams], cost: u64, seq: u64) -> bool {
        if self.seq != seq {
            return false;
        }
        for (index, limit) in limits.iter().enumerate() {
            let spend = cost.saturating_mul(self.interval(limit));
            self.tats[index] = self.tats[index].saturating_sub(spend);
        }
        self.seq += 1;
        true
    }

    /// Stops the bucket until `until`, moving every pending slot back by the added pause.
    ///
    /// With `slow_down`, the bucket also lowers its pace, because the server refused a
    /// request the configured limits allowed. Returns whether the pace came down.
    pub(crate) fn pause(&mut self, now: u64, until: u64, slow_down: bool) -> bool {
        let from = self.blocked_until.max(now);
        if until > from {
            let shift = until - from;
            for tat in &mut self.tats {
                *tat = (*tat).max(now).saturating_add(shift);
            }
            self.shift_total = self.shift_total.saturating_add(shift);
            self.blocked_until = until;
        }
        let before = self.pace;
        if slow_down {
            if self.clean < REPEAT_WITHIN {
                let cut = u64::from(self.pace) * PACE_CUT_PPM / u64::from(FULL_PACE);
                let pace = u64::from(self.pace).saturating_sub(cut);
                self.pace = u32::try_from(pace).unwrap_or(FULL_PACE).max(MIN_PACE);
            }
            self.clean = 0;
        }
        self.seq += 1;
        self.pace < before
    }

    /// Moves every pending and future slot back by `shift`, without stopping the bucket:
    /// a waiter woke that much later than a strict server tolerates, and the server
    /// will expect every later slot that much later too.
    ///
    /// With `trim`, a refused request went again in its slot: the pace comes down by
    /// [`PACE_TRIM_PPM`].
    pub(crate) fn delay(&mut self, shift: u64, trim: bool) {
        if shift == 0 && !trim {
            return;
        }
        if trim {
            let cut = u64::from(self.pace) * PACE_TRIM_PPM / u64::from(FULL_PACE);
            let pace = u64::from(self.pace).saturating_sub(cut);
            self.pace = u32::try_from(pace).unwrap_or(FULL_PACE).max(MIN_PACE);
        }
        for tat in &mut self.tats {
            *tat = tat.saturating_add(shift);
        }
        self.shift_total = self.shift_total.saturating_add(shift);
        self.seq += 1;
    }

    /// Spends every limit's burst as of `now`, unless more is spent already: the next
    /// unit starts no sooner than one interval of each limit from now.
    ///
    /// For a bucket that takes over from another that kept the count until now (a shared
    /// store that stopped answering), and may have spent the burst just before.
    #[cfg(any(feature = "redis", test))]
    pub(crate) fn drain(&mut self, limits: &[LimitParams], now: u64) {
        for (index, limit) in limits.iter().enumerate() {
            let spent = now.saturating_add(limit.burst.saturating_mul(self.interval(limit)));
            let tat = &mut self.tats[index];
            *tat = (*tat).max(spent);
        }
        self.seq += 1;
    }

    /// Recovers a little of the pace lost to earlier 429s.
    ///
    /// Returns whether the pace rose.
    pub(crate) fn recover(&mut self) -> bool {
        self.clean = self.clean.saturating_add(1);
        if self.pace < FULL_PACE {
            self.pace = (self.pace + PACE_RECOVERY).min(FULL_PACE);
            self.seq += 1;
            return true;
        }
        false
    }

    /// Whether a reservation at `now` or later needs nothing but the one TAT: a single
    /// limit, at full pace, with no cooldown.
    pub(crate) fn is_plain(&self, now: u64) -> bool {
        self.tats.len() == 1 && self.pace >= FULL_PACE && self.blocked_until <= now
    }

    /// Units of `limit` that could start at `now`.
    pub(crate) fn available(&self, limits: &[LimitParams], index: usize, now: u64) -> u64 {
        let limit = &limits[index];
        if self.blocked_until > now {
            return 0;
        }
        let interval = self.interval(limit).max(1);
        let horizon = now.saturating_add(limit.burst.saturating_mul(interval));
        (horizon.saturating_sub(self.tats[index].max(now)) / interval).min(limit.burst)
    }

    /// Takes the server's view where it is tighter than ours.
    ///
    /// Quota that other processes spent on the same key shows up only in what the server
    /// reports, so the bucket never believes it has more left than the server says.
    pub(crate) fn adopt(&mut self, limits: &[LimitParams], now: u64, view: &ServerView) {
        let Some(remaining) = view.remaining else {
            return;
        };
        if let (0, Some(reset_at)) = (remaining, view.reset_at) {
            self.pause(now, reset_at, false);
            return;
        }
        let Some(index) = matching_limit(limits, view) else {
            return;
        };
        if remaining < self.available(limits, index, now) {
            let limit = &limits[index];
            let interval = self.interval(limit);
            self.tats[index] =
                now.saturating_add((limit.burst - remaining).saturating_mul(interval));
            self.seq += 1;
        }
    }
}

/// The limit a server report is about: same window, else same count, else the only or the
/// longest one (servers usually report their slowest window).
pub(crate) fn matching_limit(limits: &[LimitParams], view: &ServerView) -> Option<usize> {
    let by_window = view
        .window
        .and_then(|w| limits.iter().position(|l| l.period == w));
    let by_count = view
        .limit
        .and_then(|n| limits.iter().position(|l| l.count == n));
    let longest = limits
        .iter()
        .enumerate()
        .max_by_key(|(_, l)| l.period)
        .map(|(i, _)| i);
    by_window.or(by_count).or(longest)
}

/// One bucket taking part in a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Index of the bucket's state.
    pub(crate) state: usize,
    /// The bucket's limits.
    pub(crate) limits: Vec<LimitParams>,
}

/// Every target of a reservation.
pub(crate) const ALL: u64 = u64::MAX;

/// Whether target `index` is in `mask` (targets past the 64th always are).
fn in_mask(mask: u64, index: usize) -> bool {
    index >= 64 || mask & (1 << index) != 0
}

/// Reserves `cost` units in every target bucket, or in none.
///
/// `max_wait` turns a start further than that from `now` into [`Decision::TooLong`].
#[cfg(test)]
pub(crate) fn reserve(
    states: &mut [BucketState],
    targets: &[Target],
    cost: u64,
    now: u64,
    max_wait: Option<u64>,
) -> Decision {
    reserve_masked(states, targets, ALL, cost, now, max_wait).0
}

/// Reserves `cost` units in the targets of `mask`, or in none, and returns which targets
/// were deferred.
///
/// When the start lies in the future, only the buckets that decided it are charged now.
/// The others are left for the waiter to charge when it wakes (the returned mask): a
/// unit charged at a future start would block every earlier slot of a faster bucket,
/// because one TAT cannot describe a hole. `max_wait` turns a start further than that
/// from `now` into [`Decision::TooLong`]; every refusal spends nothing.
pub(crate) fn reserve_masked(
    states: &mut [BucketState],
    targets: &[Target],
    mask: u64,
    cost: u64,
    now: u64,
    max_wait: Option<u64>,
) -> (Decision, u64) {
    // Earliest starts of the first targets are kept for the commit pass; plans rarely
    // have more than a few buckets, and the rest are computed again.
    let mut earliest = [0u64; 8];
    let (mut start, mut decider) = (now, 0);
    for (index, target) in targets.iter().enumerate() {
        if !in_mask(mask, index) {
            continue;
        }
        match states[target.state].earliest(&target.limits, cost, now) {
            Ok(at) => {
                if let Some(slot) = earliest.get_mut(index) {
                    *slot = at;
                }
                if at > start {
                    (start, decider) = (at, index);
                }
            }
            Err(limit) => {
                return (
                    Decision::Never {
                        target: index,
                        limit,
                    },
                    0,
                );
            }
        }
    }
    if max_wait.is_some_and(|max| start - now > max) {
        return (
            Decision::TooLong {
                start,
                target: decider,
            },
            0,
        );
    }

    let mut deferred = 0;
    for (index, target) in targets.iter().enumerate() {
        if !in_mask(mask, index) {
            continue;
        }
        let state = &mut states[target.state];
        let at = match earliest.get(index) {
            Some(at) => *at,
            None => state.earliest(&target.limits, cost, now).unwrap_or(start),
        };
        if start == now || at == start || index >= 64 {
            state.commit(&target.limits, cost, start);
        } else {
            deferred |= 1 << index;
        }
    }
    (Decision::Granted { start }, deferred)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn params(count: u64, period: u64, burst: u64) -> LimitParams {
        LimitParams {
            interval: period.div_ceil(count),
            burst,
            period,
            count,
        }
    }

    fn one(states: &mut [BucketState], limits: &[LimitParams], cost: u64, now: u64) -> Decision {
        reserve(
            states,
            &[Target {
                state: 0,
                limits: limits.to_vec(),
            }],
            cost,
            now,
            None,
        )
    }

    #[test]
    fn paces_from_theoretical_arrival_not_from_wakeup() {
        let limits = [params(200, SEC, 1)];
        let mut states = vec![BucketState::new(1)];
        let starts: Vec<u64> = (0..5)
            .map(|_| match one(&mut states, &limits, 1, 0) {
                Decision::Granted { start } => start,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(starts, [0, 5_000_000, 10_000_000, 15_000_000, 20_000_000]);

        // A waiter that wakes 1 ms late does not push the next slot back.
        let late = 21_000_000;
        assert_eq!(
            one(&mut states, &limits, 1, late),
            Decision::Granted { start: 25_000_000 }
        );
    }

    #[test]
    fn a_slower_pace_never_lets_a_unit_start_earlier() {
        // 2 per 100 ms with a burst of 2: after two units at 0, the next starts at 50 ms.
        let limits = [params(2, SEC / 10, 2)];
        let mut states = vec![BucketState::new(1)];
        for _ in 0..2 {
            one(&mut states, &limits, 1, 0);
        }
        // A repeated bare 429 cuts the pace and a resend trims it. Both space later units
        // further apart; neither may widen the burst allowance the start is measured by.
        states[0].pause(0, 0, true);
        states[0].pause(0, 0, true);
        states[0].delay(0, true);
        assert!(states[0].pace < FULL_PACE);
        assert_eq!(states[0].earliest(&limits, 1, 0), Ok(SEC / 20));
    }

    #[test]
    fn a_drained_bucket_starts_an_interval_out_and_keeps_what_was_spent() {
        // 10/s with a burst of 3 and 5/min: drained at 1 s, the next unit waits for the
        // slowest limit's interval, as if each burst had just been spent.
        let limits = [params(10, SEC, 3), params(5, 60 * SEC, 1)];
        let mut state = BucketState::new(2);
        state.drain(&limits, SEC);
        assert_eq!(state.earliest(&limits, 1, SEC), Ok(13 * SEC));
        // Spent further than a drain would: the drain changes nothing.
        let mut states = vec![BucketState::new(1)];
        let limits = [params(10, SEC, 1)];
        for _ in 0..5 {
            one(&mut states, &limits, 1, 0);
        }
        let before = states[0].earliest(&limits, 1, 0);
        states[0].drain(&limits, 0);
        assert_eq!(states[0].earliest(&limits, 1, 0), before);
    }

    #[test]
    fn burst_then_sustained_rate() {
        let limits = [params(10, SEC, 3)];
        let mut states = vec![BucketState::new(1)];
        let starts: Vec<_> = (0..5).map(|_| one(&mut states, &limits, 1, 0)).collect();
        let expected = [0, 0, 0, 100_000_000, 200_000_000].map(|start| Decision::Granted { start });
        assert_eq!(starts, expected);
    }

    #[test]
    fn cost_above_burst_never_fits() {
        let limits = [params(100, SEC, 100), params(10, SEC, 5)];
        let mut states = vec![BucketState::new(2)];
        assert_eq!(
            one(&mut states, &limits, 6, 0),
            Decision::Never {
                target: 0,
                limit: 1
            }
        );
        assert_eq!(states[0], BucketState::new(2), "a refusal spends nothing");
    }

    #[test]
    fn too_long_spends_nothing_in_any_bucket() {
        let fast = [params(100, SEC, 1)];
        let slow = [params(1, SEC, 1)];
        let mut states = vec![BucketState::new(1), BucketState::new(1)];
        let targets = [
            Target {
                state: 0,
                limits: fast.to_vec(),
            },
            Target {
                state: 1,
                limits: slow.to_vec(),
            },
        ];
        assert_eq!(
            reserve(&mut states, &targets, 1, 0, Some(0)),
            Decision::Granted { start: 0 }
        );

        let before = states.clone();
        let decision = reserve(&mut states, &targets, 1, 0, Some(SEC / 2));
        assert_eq!(
            decision,
            Decision::TooLong {
                start: SEC,
                target: 1
            }
        );
        assert_eq!(states, before);
    }

    #[test]
    fn a_waiting_reservation_defers_the_faster_buckets() {
        let fast = [params(100, SEC, 1)];
        let slow = [params(2, SEC, 1)];
        let mut states = vec![BucketState::new(1), BucketState::new(1)];
        let targets = [
            Target {
                state: 0,
                limits: fast.to_vec(),
            },
            Target {
                state: 1,
                limits: slow.to_vec(),
            },
        ];
        let first = reserve_masked(&mut states, &targets, ALL, 1, 0, None);
        assert_eq!(first, (Decision::Granted { start: 0 }, 0));
        let second = reserve_masked(&mut states, &targets, ALL, 1, 0, None);
        assert_eq!(
            second,
            (Decision::Granted { start: SEC / 2 }, 0b01),
            "fast bucket deferred"
        );
        assert_eq!(
            states[0].tats[0],
            SEC / 100,
            "the fast bucket keeps its gap free"
        );

        // The waiter charges the deferred bucket when it wakes.
        let woke = reserve_masked(&mut states, &targets, 0b01, 1, SEC / 2, None);
        assert_eq!(woke, (Decision::Granted { start: SEC / 2 }, 0));
    }

    #[test]
    fn multi_limit_bucket_waits_for_the_latest_limit() {
        // 10/s with a burst of 10, and 12/min: the 13th unit waits for the minute.
        let limits = [params(10, SEC, 10), params(12, 60 * SEC, 12)];
        let mut states = vec![BucketState::new(2)];
        let mut last = 0;
        for _ in 0..13 {
            if let Decision::Granted { start } = one(&mut states, &limits, 1, 0) {
                last = start;
            }
        }
        assert_eq!(
            last,
            5 * SEC,
            "12/min spaces units 5 s apart once its burst is used"
        );
    }

    #[test]
    fn pause_moves_pending_slots_and_blocks() {
        let limits = [params(10, SEC, 1)];
        let mut states = vec![BucketState::new(1)];
        one(&mut states, &limits, 1, 0);
        one(&mut states, &limits, 1, 0); // pending at 100 ms
        states[0].pause(0, 2 * SEC, false);
        assert_eq!(states[0].shift_total, 2 * SEC);
        assert_eq!(
            one(&mut states, &limits, 1, 0),
            Decision::Granted {
                start: 2_200_000_000
            }
        );

        // A shorter pause inside the current one adds nothing.
        states[0].pause(SEC, SEC + 1, false);
        assert_eq!(states[0].shift_total, 2 * SEC);
    }

    #[test]
    fn repeated_429s_slow_the_pace_and_successes_recover_it() {
        let limit = params(100, SEC, 1);
        let mut state = BucketState::new(1);
        state.pause(0, 0, true);
        assert_eq!(state.pace, FULL_PACE, "a lone 429 leaves the pace alone");
        for _ in 0..2 {
            state.pause(0, 0, true);
        }
        assert_eq!(state.pace, 960_400, "two repeats cut 2 % each");
        assert_eq!(state.interval(&limit), 10_412_329);
        for _ in 0..100 {
            state.recover();
        }
        assert_eq!(state.pace, 970_400, "each success recovers 0.01 %");
        state.pause(0, 0, true);
        assert_eq!(
            state.pace, 950_992,
            "a 429 within {REPEAT_WITHIN} successes of the last one repeats it"
        );
        for _ in 0..10_000 {
            state.recover();
        }
        assert_eq!(state.pace, FULL_PACE);
    }

    #[test]
    fn adopts_a_lower_remaining_and_an_exhausted_window() {
        let limits = [params(100, SEC, 100)];
        let mut state = BucketState::new(1);
        let view = ServerView {
            remaining: Some(7),
            ..ServerView::default()
        };
        state.adopt(&limits, 0, &view);
        assert_eq!(state.available(&limits, 0, 0), 7);

        // A higher remaining never loosens our own view.
        state.adopt(
            &limits,
            0,
            &ServerView {
                remaining: Some(50),
                ..view
            },
        );
        assert_eq!(state.available(&limits, 0, 0), 7);

        let exhausted = ServerView {
            remaining: Some(0),
            reset_at: Some(3 * SEC),
            ..view
        };
        state.adopt(&limits, 0, &exhausted);
        assert_eq!(state.blocked_until, 3 * SEC);
        assert_eq!(state.available(&limits, 0, SEC), 0);
    }

    #[test]
    fn refund_only_when_nothing_came_after() {
        let limits = [params(10, SEC, 1)];
        let mut states = vec![BucketState::new(1)];
        one(&mut states, &limits, 1, 0);
        let seq = states[0].seq;
        assert!(states[0].refund(&limits, 1, seq));
        assert_eq!(states[0].tats[0], 0);

        one(&mut states, &limits, 1, 0);
        let seq = states[0].seq;
        one(&mut states, &limits, 1, 0);
        assert!(
            !states[0].refund(&limits, 1, seq),
            "a later reservation depends on it"
        );
    }

    fn limit_strategy() -> impl Strategy<Value = LimitParams> {
        (1u64..50, 1u64..5_000, 1u64..6)
            .prop_map(|(count, millis, burst)| params(count, millis * 1_000_000, burst))
    }

    proptest! {
        /// Admitted units never exceed any limit in any window of its period, waiting or not.
        #[test]
        fn never_exceeds_any_limit(
            limits in prop::collection::vec(limit_strategy(), 1..4),
            arrivals in prop::collection::vec((0u64..200_000_000, 1u64..6, any::<bool>()), 1..200),
        ) {
            let mut states = vec![BucketState::new(limits.len())];
            let mut now = 0;
            let mut admitted = Vec::new();
            for (gap, cost, wait) in arrivals {
                now += gap;
                let max_wait = if wait { None } else { Some(0) };
                let before = states.clone();
                let targets = [Target { state: 0, limits: limits.clone() }];
                match reserve(&mut states, &targets, cost, now, max_wait) {
                    Decision::Granted { start } => admitted.push((start, cost)),
                    _ => prop_assert_eq!(&states, &before, "a refusal must spend nothing"),
                }
            }
            for limit in &limits {
                for &(from, _) in &admitted {
                    let units: u64 = admitted
                        .iter()
                        .filter(|(at, _)| *at >= from && *at < from + limit.period)
                        .map(|(_, cost)| cost)
                        .sum();
                    prop_assert!(
                        units * limit.interval < limit.period + limit.burst * limit.interval,
                        "{units} units in one period of {limit:?}"
                    );
                    if limit.burst == 1 {
                        prop_assert!(units <= limit.count);
                    }
                }
            }
        }

        /// With two buckets, one refusing never spends the other's quota.
        #[test]
        fn multi_bucket_refusal_is_atomic(
            a in limit_strategy(),
            b in limit_strategy(),
            costs in prop::collection::vec(1u64..6, 1..100),
        ) {
            let (la, lb) = ([a], [b]);
            let mut states = vec![BucketState::new(1), BucketState::new(1)];
            let targets = [
                Target { state: 0, limits: la.to_vec() },
                Target { state: 1, limits: lb.to_vec() },
            ];
            for cost in costs {
                let before = states.clone();
                match reserve(&mut states, &targets, cost, 0, Some(0)) {
                    Decision::Granted { start } => prop_assert_eq!(start, 0),
                    _ => prop_assert_eq!(&states, &before),
                }
            }
        }
    }
}
