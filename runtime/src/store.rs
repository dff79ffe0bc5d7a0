//! Where quota state lives: the [`QuotaStore`] trait and the in-memory [`MemoryStore`].
//!
//! Each operation of the trait is one atomic step over named buckets (reserve across
//! several keys, undo, pause, adopt what a server reported), so a shared store can run each
//! as one script on its server, with the server's clock. Times cross the trait as delays
//! from "now", never as instants, because a shared store's "now" is not the caller's.
//!
//! The limiter talks to a [`MemoryStore`] through a fast path by bucket index (and, for a
//! bucket with one limit that can start a request now, through its lock-free [`Lane`]);
//! everything else goes through the trait by key.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{Clock, TokioClock, nanos};
use crate::gcra::{self, BucketState, Decision, LimitParams, ServerView, Target};
use crate::limit::Limit;

/// A boxed future returned by [`QuotaStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store failure (for example, an unreachable server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// One bucket in a store call: its key and its limits.
#[derive(Debug, Clone, Copy)]
pub struct BucketRef<'a> {
    /// The bucket's key, unique across services sharing the store.
    pub key: &'a str,
    /// The bucket's limits.
    pub limits: &'a [Limit],
}

/// A request for quota across buckets.
#[derive(Debug, Clone, Copy)]
pub struct ReserveRequest<'a> {
    /// Buckets spent together.
    pub buckets: &'a [BucketRef<'a>],
    /// Units per bucket.
    pub cost: u32,
    /// Refuse, spending nothing, when the start is further away than this.
    pub max_wait: Option<Duration>,
}

/// What a store answered to a [`ReserveRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Reserved: start after `wait`.
    Ready {
        /// How long until the request may start.
        wait: Duration,
        /// Identifies the reservation for [`QuotaStore::release`] and
        /// [`QuotaStore::moved_by`].
        ticket: Ticket,
    },
    /// Not reserved: the start is further than `max_wait`.
    TooLong {
        /// How long until quota frees up.
        wait: Duration,
        /// Index of the bucket that decided the start.
        bucket: usize,
    },
    /// Not reserved: the cost exceeds a limit's burst.
    Never {
        /// Index of the bucket.
        bucket: usize,
        /// Index of the limit in that bucket.
        limit: usize,
    },
}

#[cfg(feature = "redis")]
impl Grant {
    /// The same answer for a caller that has already spent `elapsed` of it elsewhere.
    pub(crate) fn later_by(self, elapsed: Duration) -> Self {
        match self {
            Self::Ready { wait, ticket } => Self::Ready {
                wait: wait + elapsed,
                ticket,
            },
            Self::TooLong { wait, bucket } => Self::TooLong {
                wait: wait + elapsed,
                bucket,
            },
            never @ Self::Never { .. } => never,
        }
    }
}

/// A reservation's identity, to undo it or to learn it was moved by a pause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticket {
    /// Each bucket's pause total when reserved (or when the waiter last moved): a waiter
    /// moves by the most any one of its buckets moved since, not by their sum.
    pub shifts: Vec<u64>,
    /// Each bucket's change counter after the reservation.
    pub seqs: Vec<u64>,
    /// Buckets (bit per index in the request) not charged yet: the waiter reserves them
    /// when it wakes, so a slow bucket's queue does not hold idle a faster one.
    pub deferred: u64,
}

impl Ticket {
    /// Records that the waiter moved by `by` nanoseconds: a bucket must move further than
    /// that to move it again.
    pub fn moved(&mut self, by: u64) {
        for shift in &mut self.shifts {
            *shift = shift.saturating_add(by);
        }
    }
}

/// What a server reported about one bucket, as delays from now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Units left.
    pub remaining: Option<u64>,
    /// Time until the window resets.
    pub reset_after: Option<Duration>,
    /// The server's limit.
    pub limit: Option<u64>,
    /// The server's window.
    pub window: Option<Duration>,
}

/// Why a bucket's slots move back (see [`QuotaStore::delay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftCause {
    /// A request reached the server late: a waiter woke late, or a round trip was far
    /// longer than usual. Only the slots move.
    Late,
    /// A request the server refused without a retry time goes again at once, in its slot.
    /// The pace also comes down a hair (0.2 %), as the server's count stood past ours.
    Resent,
}

/// A bucket's state as seen now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketView {
    /// Units available now, per limit.
    pub available: Vec<u64>,
    /// Time until a cooldown ends.
    pub blocked_for: Duration,
    /// Current pace, in parts per million of the configured rate.
    pub pace_ppm: u32,
}

/// Storage for quota state, shared by every client that uses it.
///
/// Implementations must make each method atomic: no other call may see a reservation half
/// made. See the module docs for why times are delays.
pub trait QuotaStore: Send + Sync + fmt::Debug + 'static {
    /// Reserves `cost` units in every bucket, or in none.
    fn reserve<'a>(&'a self, request: ReserveRequest<'a>) -> StoreFuture<'a, Grant>;

    /// Undoes a reservation that will not be used, if nothing came after it.
    fn release<'a>(
        &'a self,
        request: ReserveRequest<'a>,
        ticket: &'a Ticket,
    ) -> StoreFuture<'a, ()>;

    /// How much later than planned a reservation now starts, because of pauses since.
    fn moved_by<'a>(
        &'a self,
        buckets: &'a [BucketRef<'a>],
        ticket: &'a Ticket,
    ) -> StoreFuture<'a, Duration>;

    /// Stops the buckets for `delay`, moving pending reservations back; `slow_down` also
    /// lowers their pace (the server refused what our limits allowed). Returns whether
    /// the pace of any of them came down.
    fn pause<'a>(
        &'a self,
        buckets: &'a [BucketRef<'a>],
        delay: Duration,
        slow_down: bool,
    ) -> StoreFuture<'a, bool>;

    /// Moves every pending and future slot of the bucket back by `shift`, without stopping
    /// it: a strict server's count of arrivals stands that much past ours, for the reason
    /// `cause` gives (a resend also trims the pace).
    fn delay<'a>(
        &'a self,
        bucket: BucketRef<'a>,
        shift: Duration,
        cause: ShiftCause,
    ) -> StoreFuture<'a, ()>;

    /// Adopts a server report where it is tighter than the stored state.
    fn adopt<'a>(&'a self, bucket: BucketRef<'a>, report: Report) -> StoreFuture<'a, ()>;

    /// Records a success, recovering pace lost to 429s.
    fn recover<'a>(&'a self, bucket: BucketRef<'a>) -> StoreFuture<'a, ()>;

    /// The bucket's state now.
    fn view<'a>(&'a self, bucket: BucketRef<'a>) -> StoreFuture<'a, BucketView>;

    /// The in-memory store behind this one, for the limiter's fast path.
    fn as_memory(&self) -> Option<&MemoryStore> {
        None
    }
}

/// Quota state in this process's memory.
///
/// Clone the `Arc` to share one quota between several clients of the same process.
#[derive(Debug)]
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    /// The store's timeline starts here, as an instant and on the clock's own count.
    origin: Instant,
    origin_nanos: u64,
    index: RwLock<HashMap<String, usize>>,
    shelf: Mutex<Shelf>,
}

/// Bucket states behind the store's lock, and the lanes of the one-limit buckets.
#[derive(Debug, Default)]
struct Shelf {
    states: Vec<BucketState>,
    lanes: Vec<Option<Arc<Lane>>>,
}

/// What a lane holds while the lock owns its bucket's TAT.
const CLOSED: u64 = u64::MAX;

/// The TAT of a bucket with one limit, spendable without the store's lock.
///
/// While the bucket is plain (one limit, full pace, no cooldown) a request that can start
/// now needs nothing but that TAT, so it is one compare-and-swap here, as in governor.
/// Anything else takes the lock and first closes the lane, moving the TAT back into the
/// bucket's state; the lock hands it back when the bucket is plain again. A spend on the
/// lane bumps the state's change counter when the lane closes, so a waiter that is
/// cancelled afterwards knows it was not the last reservation and refunds nothing.
#[derive(Debug)]
pub(crate) struct Lane {
    tat: LaneTat,
    /// The store's clock and the start of its timeline, so a spend needs nothing else.
    clock: Arc<dyn Clock>,
    origin_nanos: u64,
}

/// The lane's word, on a cache line of its own (128 bytes covers the adjacent-line
/// prefetch of x86): sharing one with data every acquire reads made each read on one
/// core stall the compare-and-swap on the other.
#[derive(Debug)]
#[repr(align(128))]
struct LaneTat(AtomicU64);

/// One operation's spend on a lane, worked out when its plan is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneCost {
    /// Nanoseconds of TAT one request adds.
    spend: u64,
    /// How far the TAT may lie ahead of now for the request to start at once.
    slack: u64,
}

impl LaneCost {
    /// The spend of `cost` units of `limit`, or `None` when they never fit its burst.
    pub(crate) fn new(limit: &LimitParams, cost: u64) -> Option<Self> {
        let slack = limit
            .burst
            .checked_sub(cost)?
            .saturating_mul(limit.interval);
        let spend = cost.saturating_mul(limit.interval);
        Some(Self { spend, slack })
    }
}

impl Lane {
    /// Spends `cost` if it can start now; false sends the caller to the lock.
    #[inline]
    pub(crate) fn try_spend(&self, cost: LaneCost) -> bool {
        let now = self.clock.nanos().saturating_sub(self.origin_nanos);
        let word = &self.tat.0;
        let mut tat = word.load(Ordering::Acquire);
        loop {
            if tat == CLOSED || tat.saturating_sub(cost.slack) > now {
                return false;
            }
            let next = tat.max(now).saturating_add(cost.spend);
            if next == CLOSED {
                return false;
            }
            match word.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

impl Shelf {
    /// Moves the TATs of `targets` from their lanes into their states.
    fn close(&mut self, targets: &[Target]) {
        for target in targets {
            let Some(lane) = &self.lanes[target.state] else {
                continue;
            };
            let tat = lane.tat.0.swap(CLOSED, Ordering::AcqRel);
            let state = &mut self.states[target.state];
            if tat != CLOSED && state.tats[0] != tat {
                state.tats[0] = tat;
                state.seq += 1;
            }
        }
    }

    /// Hands the TATs of the plain buckets among `targets` back to their lanes.
    fn reopen(&mut self, targets: &[Target], now: u64) {
        for target in targets {
            let Some(lane) = &self.lanes[target.state] else {
                continue;
            };
            let state = &self.states[target.state];
            let closed = lane.tat.0.load(Ordering::Acquire) == CLOSED;
            if closed && state.is_plain(now) && state.tats[0] < CLOSED {
                lane.tat.0.store(state.tats[0], Ordering::Release);
            }
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(TokioClock::new()))
    }
}

impl MemoryStore {
    /// A store on tokio's clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store reading time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let (origin, origin_nanos) = (clock.now(), clock.nanos());
        Self {
            clock,
            origin,
            origin_nanos,
            index: RwLock::default(),
            shelf: Mutex::default(),
        }
    }

    /// The index of `key`'s state, creating it with `limits` limits.
    pub(crate) fn register(&self, key: &str, limits: usize) -> usize {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&slot) = index.get(key) {
            return slot;
        }
        let mut shelf = self.lock();
        shelf.states.push(BucketState::new(limits));
        let lane = (limits == 1).then(|| {
            Arc::new(Lane {
                tat: LaneTat(AtomicU64::new(0)),
                clock: self.clock.clone(),
                origin_nanos: self.origin_nanos,
            })
        });
        shelf.lanes.push(lane);
        let slot = shelf.states.len() - 1;
        index.insert(key.to_owned(), slot);
        slot
    }

    /// The lane of the bucket at `state`, when it has one limit.
    pub(crate) fn lane(&self, state: usize) -> Option<Arc<Lane>> {
        self.lock().lanes.get(state).cloned().flatten()
    }

    fn lock(&self) -> MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `step` on the bucket states at `now`, under the lock and with the TATs of
    /// `targets` taken back from their lanes, then hands back the lanes of the buckets
    /// that are plain again.
    ///
    /// The clock is read before taking the lock, to keep the critical section short: a
    /// `now` read a few nanoseconds early is the same as a request arriving then.
    fn held<R>(&self, targets: &[Target], step: impl FnOnce(&mut [BucketState], u64) -> R) -> R {
        let now = self.now_nanos();
        let mut shelf = self.lock();
        shelf.close(targets);
        let result = step(&mut shelf.states, now);
        shelf.reopen(targets, now);
        result
    }

    /// Nanoseconds since the store's origin.
    pub(crate) fn now_nanos(&self) -> u64 {
        self.clock.nanos().saturating_sub(self.origin_nanos)
    }

    pub(crate) fn to_instant(&self, nanos: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos)
    }

    /// Reserves across buckets given by index.
    pub(crate) fn reserve_at(
        &self,
        targets: &[Target],
        mask: u64,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> (Decision, u64, Ticket) {
        let max_wait = max_wait.map(nanos);
        self.held(targets, |states, now| {
            let (decision, deferred) =
                gcra::reserve_masked(states, targets, mask, cost, now, max_wait);
            let waits = matches!(decision, Decision::Granted { start } if start > now);
            let ticket = if waits {
                ticket_of(states, targets, deferred)
            } else {
                Ticket::default()
            };
            (decision, now, ticket)
        })
    }

    /// Spends `cost` units of one bucket if they can start now; the uncontended fast path
    /// of most acquires, without the bookkeeping a wait needs.
    pub(crate) fn try_now(&self, target: &Target, cost: u64) -> bool {
        self.held(std::slice::from_ref(target), |states, now| {
            let state = &mut states[target.state];
            match state.earliest(&target.limits, cost, now) {
                Ok(start) if start <= now => {
                    state.commit(&target.limits, cost, now);
                    true
                }
                _ => false,
            }
        })
    }

    /// The current pace of a bucket, as a share of its configured rate.
    pub(crate) fn pace_of(&self, target: &Target) -> f64 {
        f64::from(self.lock().states[target.state].pace) / f64::from(gcra::FULL_PACE)
    }

    pub(crate) fn release_at(&self, targets: &[Target], cost: u64, ticket: &Ticket) {
        let charged = || {
            let pairs = targets.iter().zip(&ticket.seqs).enumerate();
            pairs
                .filter(|(i, _)| *i >= 64 || ticket.deferred & (1 << i) == 0)
                .map(|(_, p)| p)
        };
        self.held(targets, |states, _| {
            if charged().all(|(t, &seq)| states[t.state].seq == seq) {
                for (target, &seq) in charged() {
                    states[target.state].refund(&target.limits, cost, seq);
                }
            }
        });
    }

    pub(crate) fn moved_by_at(&self, targets: &[Target], ticket: &Ticket) -> u64 {
        let shelf = self.lock();
        let totals = targets.iter().map(|t| shelf.states[t.state].shift_total);
        let moved = totals
            .zip(&ticket.shifts)
            .map(|(now, &then)| now.saturating_sub(then));
        moved.max().unwrap_or(0)
    }

    pub(crate) fn pause_at(&self, targets: &[Target], delay: Duration, slow_down: bool) -> bool {
        let delay = nanos(delay);
        self.held(targets, |states, now| {
            let until = now.saturating_add(delay);
            let slowed = targets
                .iter()
                .map(|t| states[t.state].pause(now, until, slow_down));
            // Every bucket pauses: no short circuit.
            slowed.fold(false, |any, slowed| any | slowed)
        })
    }

    pub(crate) fn delay_at(&self, target: &Target, delay: Duration, cause: ShiftCause) {
        let delay = nanos(delay);
        self.held(std::slice::from_ref(target), |states, _| {
            states[target.state].delay(delay, cause == ShiftCause::Resent);
        });
    }

    pub(crate) fn adopt_at(&self, target: &Target, report: &Report) {
        self.held(std::slice::from_ref(target), |states, now| {
            let view = ServerView {
                remaining: report.remaining,
                reset_at: report.reset_after.map(|d| now.saturating_add(nanos(d))),
                limit: report.limit,
                window: report.window.map(nanos),
            };
            states[target.state].adopt(&target.limits, now, &view);
        });
    }

    pub(crate) fn recover_at(&self, targets: &[Target]) {
        let mut shelf = self.lock();
        let mut recovered = false;
        for target in targets {
            recovered |= shelf.states[target.state].recover();
        }
        // Only a return to full pace can make a bucket plain again.
        if recovered {
            shelf.reopen(targets, self.now_nanos());
        }
    }

    /// Spends the burst of every bucket of `buckets` as of now ([`BucketState::drain`]).
    #[cfg(feature = "redis")]
    pub(crate) fn drain(&self, buckets: &[BucketRef<'_>]) {
        let targets = self.targets(buckets);
        self.held(&targets, |states, now| {
            for target in &targets {
                states[target.state].drain(&target.limits, now);
            }
        });
    }

    pub(crate) fn view_at(&self, target: &Target) -> BucketView {
        self.held(std::slice::from_ref(target), |states, now| {
            let state = &states[target.state];
            let limits = &target.limits;
            let available = (0..limits.len()).map(|i| state.available(limits, i, now));
            BucketView {
                available: available.collect(),
                blocked_for: Duration::from_nanos(state.blocked_until.saturating_sub(now)),
                pace_ppm: state.pace,
            }
        })
    }

    /// Resolves keyed buckets to indexed targets, registering new keys.
    pub(crate) fn targets(&self, buckets: &[BucketRef<'_>]) -> Vec<Target> {
        let target = |b: &BucketRef<'_>| Target {
            state: self.register(b.key, b.limits.len()),
            limits: b.limits.iter().map(LimitParams::from).collect(),
        };
        buckets.iter().map(target).collect()
    }
}

fn ticket_of(states: &[BucketState], targets: &[Target], deferred: u64) -> Ticket {
    Ticket {
        shifts: targets
            .iter()
            .map(|t| states[t.state].shift_total)
            .collect(),
        seqs: targets.iter().map(|t| states[t.state].seq).collect(),
        deferred,
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl QuotaStore for MemoryStore {
    fn reserve<'a>(&'a self, request: ReserveRequest<'a>) -> StoreFuture<'a, Grant> {
        let targets = self.targets(request.buckets);
        let (decision, now, ticket) = self.reserve_at(
            &targets,
            gcra::ALL,
            u64::from(request.cost),
            request.max_wait,
        );
        let grant = match decision {
            Decision::Granted { start } => Grant::Ready {
                wait: Duration::from_nanos(start - now),
                ticket,
            },
            Decision::TooLong { start, target } => Grant::TooLong {
                wait: Duration::from_nanos(start - now),
                bucket: target,
            },
            Decision::Never { target, limit } => Grant::Never {
                bucket: target,
                limit,
            },
        };
        ready(grant)
    }

    fn release<'a>(
        &'a self,
        request: ReserveRequest<'a>,
        ticket: &'a Ticket,
    ) -> StoreFuture<'a, ()> {
        let targets = self.targets(request.buckets);
        self.release_at(&targets, u64::from(request.cost), ticket);
        ready(())
    }

    fn moved_by<'a>(
        &'a self,
        buckets: &'a [BucketRef<'a>],
        ticket: &'a Ticket,
    ) -> StoreFuture<'a, Duration> {
        let targets = self.targets(buckets);
        ready(Duration::from_nanos(self.moved_by_at(&targets, ticket)))
    }

    fn pause<'a>(
        &'a self,
        buckets: &'a [BucketRef<'a>],
        delay: Duration,
        slow_down: bool,
    ) -> StoreFuture<'a, bool> {
        let targets = self.targets(buckets);
        ready(self.pause_at(&targets, delay, slow_down))
    }

    fn delay<'a>(
        &'a self,
        bucket: BucketRef<'a>,
        shift: Duration,
        cause: ShiftCause,
    ) -> StoreFuture<'a, ()> {
        for target in self.targets(&[bucket]) {
            self.delay_at(&target, shift, cause);
        }
        ready(())
    }

    fn adopt<'a>(&'a self, bucket: BucketRef<'a>, report: Report) -> StoreFuture<'a, ()> {
        for target in self.targets(&[bucket]) {
            self.adopt_at(&target, &report);
        }
        ready(())
    }

    fn recover<'a>(&'a self, bucket: BucketRef<'a>) -> StoreFuture<'a, ()> {
        self.recover_at(&self.targets(&[bucket]));
        ready(())
    }

    fn view<'a>(&'a self, bucket: BucketRef<'a>) -> StoreFuture<'a, BucketView> {
        let view = self
            .targets(&[bucket])
            .iter()
            .map(|t| self.view_at(t))
            .next();
        ready(view.unwrap_or_default())
    }

    fn as_memory(&self) -> Option<&MemoryStore> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;

    const MS: u64 = 1_000_000;

    /// A store with one bucket of `count` per second, burst 1, and its target and lane.
    fn one_bucket(count: u32) -> (MemoryStore, Target, Arc<Lane>, LaneCost) {
        let store = MemoryStore::with_clock(Arc::new(TokioClock::new()));
        let limit = LimitParams::from(&Limit::per_second(count).expect("valid limit"));
        let target = Target {
            state: store.register("s:b", 1),
            limits: vec![limit],
        };
        let lane = store.lane(target.state).expect("one limit has a lane");
        let cost = LaneCost::new(&limit, 1).expect("fits");
        (store, target, lane, cost)
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_refunds_nothing_after_a_lane_spend() {
        let (store, target, lane, cost) = one_bucket(10);
        let targets = std::slice::from_ref(&target);
        assert!(lane.try_spend(cost));
        let (decision, _, ticket) = store.reserve_at(targets, gcra::ALL, 1, None);
        assert_eq!(decision, Decision::Granted { start: 100 * MS });

        // The waiter oversleeps by a whole slot; a request on the lane takes the next one.
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(lane.try_spend(cost));
        store.release_at(targets, 1, &ticket);

        let tats = &store.lock().states[target.state].tats;
        assert_eq!(tats, &[300 * MS], "the waiter's slot stays spent");
    }

    #[tokio::test(start_paused = true)]
    async fn the_lane_closes_for_a_cooldown_and_reopens_after_it() {
        let (store, target, lane, cost) = one_bucket(1_000);
        let targets = std::slice::from_ref(&target);
        store.pause_at(targets, Duration::from_millis(50), false);
        assert!(!lane.try_spend(cost), "closed while blocked");

        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(!lane.try_spend(cost), "only the lock reopens it");
        let (decision, now, _) = store.reserve_at(targets, gcra::ALL, 1, None);
        assert_eq!(decision, Decision::Granted { start: now });
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(lane.try_spend(cost), "plain again after the cooldown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slowed_bucket_stays_off_the_lane_until_its_pace_recovers() {
        let (store, target, lane, cost) = one_bucket(1_000);
        let targets = std::slice::from_ref(&target);
        // Two 429s in a row without a retry time lower the pace.
        store.pause_at(targets, Duration::ZERO, true);
        store.pause_at(targets, Duration::ZERO, true);
        assert!(store.pace_of(&target) < 1.0);
        assert!(!lane.try_spend(cost));

        while store.pace_of(&target) < 1.0 {
            store.recover_at(targets);
        }
        assert!(lane.try_spend(cost));
    }
}
