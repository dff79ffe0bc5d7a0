//! Where quota state lives: the [`QuotaStore`] trait and the in-memory [`MemoryStore`].
//!
//! Each operation of the trait is one atomic step over named buckets (reserve across
//! several keys, undo, pause, adopt what a server reported), so a shared store can run each
//! as one script on its server, with the server's clock. Times cross the trait as delays
//! from "now", never as instants, because a shared store's "now" is not the caller's.
//!
//! The limiter talks to a [`MemoryStore`] through a fast path by bucket index; everything
//! else goes through the trait by key.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{Clock, TokioClock};
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

/// A reservation's identity, to undo it or to learn it was moved by a pause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticket {
    /// The buckets' summed pause total when reserved.
    pub shift: u64,
    /// Each bucket's change counter after the reservation.
    pub seqs: Vec<u64>,
    /// Buckets (bit per index in the request) not charged yet: the waiter reserves them
    /// when it wakes, so a slow bucket's queue does not hold idle a faster one.
    pub deferred: u64,
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
    /// lowers their pace (the server refused what our limits allowed).
    fn pause<'a>(
        &'a self,
        buckets: &'a [BucketRef<'a>],
        delay: Duration,
        slow_down: bool,
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
    origin: Instant,
    index: RwLock<HashMap<String, usize>>,
    states: Mutex<Vec<BucketState>>,
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
        let origin = clock.now();
        Self {
            clock,
            origin,
            index: RwLock::default(),
            states: Mutex::default(),
        }
    }

    /// The index of `key`'s state, creating it with `limits` limits.
    pub(crate) fn register(&self, key: &str, limits: usize) -> usize {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&slot) = index.get(key) {
            return slot;
        }
        let mut states = self.lock();
        states.push(BucketState::new(limits));
        index.insert(key.to_owned(), states.len() - 1);
        states.len() - 1
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<BucketState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Nanoseconds since the store's origin.
    pub(crate) fn now_nanos(&self) -> u64 {
        self.to_nanos(self.clock.now())
    }

    pub(crate) fn to_nanos(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
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
        let max_wait = max_wait.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        // Read the clock before taking the lock, to keep the critical section short. A
        // `now` read a few nanoseconds early is the same as a request arriving then.
        let now = self.now_nanos();
        let mut states = self.lock();
        let (decision, deferred) =
            gcra::reserve_masked(&mut states, targets, mask, cost, now, max_wait);
        let waits = matches!(decision, Decision::Granted { start } if start > now);
        let ticket = if waits {
            ticket_of(&states, targets, deferred)
        } else {
            Ticket::default()
        };
        (decision, now, ticket)
    }

    /// Spends `cost` units of one bucket if they can start now; the uncontended fast path
    /// of most acquires, without the bookkeeping a wait needs.
    pub(crate) fn try_now(&self, target: &Target, cost: u64) -> bool {
        let now = self.now_nanos();
        let mut states = self.lock();
        let state = &mut states[target.state];
        match state.earliest(&target.limits, cost, now) {
            Ok(start) if start <= now => {
                state.commit(&target.limits, cost, now);
                true
            }
            _ => false,
        }
    }

    /// The current pace of a bucket, as a share of its configured rate.
    pub(crate) fn pace_of(&self, target: &Target) -> f64 {
        f64::from(self.lock()[target.state].pace) / f64::from(gcra::FULL_PACE)
    }

    pub(crate) fn release_at(&self, targets: &[Target], cost: u64, ticket: &Ticket) {
        let mut states = self.lock();
        let charged = || {
            let pairs = targets.iter().zip(&ticket.seqs).enumerate();
            pairs
                .filter(|(i, _)| *i >= 64 || ticket.deferred & (1 << i) == 0)
                .map(|(_, p)| p)
        };
        if charged().all(|(t, &seq)| states[t.state].seq == seq) {
            for (target, &seq) in charged() {
                states[target.state].refund(&target.limits, cost, seq);
            }
        }
    }

    pub(crate) fn moved_by_at(&self, targets: &[Target], ticket: &Ticket) -> u64 {
        let states = self.lock();
        let shift: u64 = targets.iter().map(|t| states[t.state].shift_total).sum();
        shift.saturating_sub(ticket.shift)
    }

    pub(crate) fn pause_at(&self, targets: &[Target], delay: Duration, slow_down: bool) {
        let mut states = self.lock();
        let now = self.now_nanos();
        let until = now.saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
        for target in targets {
            states[target.state].pause(now, until, slow_down);
        }
    }

    pub(crate) fn delay_at(&self, target: &Target, delay: Duration) {
        let mut states = self.lock();
        states[target.state].delay(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn adopt_at(&self, target: &Target, report: &Report) {
        let mut states = self.lock();
        let now = self.now_nanos();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let view = ServerView {
            remaining: report.remaining,
            reset_at: report.reset_after.map(|d| now.saturating_add(nanos(d))),
            limit: report.limit,
            window: report.window.map(nanos),
        };
        states[target.state].adopt(&target.limits, now, &view);
    }

    pub(crate) fn recover_at(&self, targets: &[Target]) {
        let mut states = self.lock();
        for target in targets {
            states[target.state].recover();
        }
    }

    pub(crate) fn view_at(&self, target: &Target) -> BucketView {
        let states = self.lock();
        let now = self.now_nanos();
        let state = &states[target.state];
        let available = (0..target.limits.len()).map(|i| state.available(&target.limits, i, now));
        BucketView {
            available: available.collect(),
            blocked_for: Duration::from_nanos(state.blocked_until.saturating_sub(now)),
            pace_ppm: state.pace,
        }
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
        shift: targets.iter().map(|t| states[t.state].shift_total).sum(),
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
    ) -> StoreFuture<'a, ()> {
        let targets = self.targets(buckets);
        self.pause_at(&targets, delay, slow_down);
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
