//! The limiter: turns a [`Policy`] into buckets on a [`QuotaStore`] and hands out permits.
//!
//! An acquire takes, in order: a slot under the service's and the buckets' caps on
//! requests in flight (tokio semaphores, served first come, first served), then one
//! reservation across all of the operation's buckets. Reservations are fixed when they are
//! made, so waiters keep their arrival order. A waiter dropped before its start gives its
//! slot back only when nothing was reserved after it; otherwise the slot stays spent, which
//! can only make the limiter more careful, never less.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::clock::{Clock, TokioClock, nanos};
use crate::error::{Error, NeverFits, RateLimitReason, RateLimited};
use crate::gcra::{ALL, Decision, LimitParams, Target};
use crate::headers::RateLimitInfo;
use crate::limit::Limit;
use crate::policy::{OperationPolicy, Policy};
use crate::round_trip::RoundTrips;
use crate::store::{
    BucketRef, Grant, Lane, LaneCost, MemoryStore, QuotaStore, Report, ReserveRequest, ShiftCause,
    Ticket,
};
use crate::telemetry;
use crate::timer;
use crate::usage::{BucketUsage, Counters, ServerSeen, Usage};

/// Hands out permission to send requests under a service's policy.
///
/// Cloning is cheap and shares the state.
///
/// # Examples
///
/// ```
/// use polvo_runtime::{Limit, Limiter, Policy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = Policy::builder().bucket("default", [Limit::per_second(50)?]).build()?;
/// let limiter = Limiter::new("example", &policy)?;
/// let permit = limiter.acquire("ListCustomers").await?;
/// drop(permit); // the request is done
/// assert_eq!(limiter.usage().buckets[0].name, "default");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    service: String,
    clock: Arc<dyn Clock>,
    store: Arc<dyn QuotaStore>,
    buckets: Vec<Bucket>,
    plans: HashMap<String, Plan, BuildHasherDefault<WordHash>>,
    default_plan: Plan,
    service_slots: Option<Arc<Semaphore>>,
    service_cap: Option<usize>,
    max_wait: Option<Duration>,
    precise_wakeups: Option<Duration>,
}

#[derive(Debug)]
struct Bucket {
    name: String,
    key: String,
    limits: Vec<Limit>,
    slots: Option<Arc<Semaphore>>,
    cap: Option<usize>,
    counters: Counters,
    /// Whether resending in the slot pays off with this server: see
    /// [`Limiter::resend_in_slot`].
    resends: AtomicI32,
    /// The usual time from send to response, to tell a request held up on its way.
    round_trips: Mutex<RoundTrips>,
}

/// An operation's buckets and cost, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    buckets: Vec<usize>,
    targets: Vec<Target>,
    cost: u32,
    limited: bool,
    /// Whether any cap on requests in flight applies.
    capped: bool,
    /// The target holding the plan's shortest interval, and that interval: what a late
    /// wake-up is measured against.
    fastest: Option<(usize, Duration)>,
    /// The lock-free lane, when the plan is one bucket with one limit in memory.
    lane: Option<(Arc<Lane>, LaneCost)>,
}

impl Plan {
    /// Whether any bucket of the plan has a configured limit.
    pub(crate) fn is_limited(&self) -> bool {
        self.limited
    }
}

/// Permission to send one request; hold it until the response is read.
#[derive(Debug)]
pub struct Permit {
    /// Slots under caps on requests in flight; `None` (no drop work) when uncapped.
    _slots: Option<Vec<OwnedSemaphorePermit>>,
    /// Nanoseconds spent waiting for quota.
    waited: u64,
    /// Nanoseconds between the permit's slot and its grant that no later slot absorbed.
    late: u64,
}

impl Permit {
    /// How long the request waited for quota.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited)
    }

    /// How long after its slot the permit was granted, beyond what later slots already
    /// moved back for: zero for a request that started at once.
    pub(crate) fn late(&self) -> Duration {
        Duration::from_nanos(self.late)
    }
}

/// How many times a request may be resent in one slot ([`Limiter::resend_in_slot`]):
/// a bound for servers that answer at once, as the doubling does the rest.
const RESENDS_PER_SLOT: u32 = 6;

/// A request's slot while it is resent in it (see [`Limiter::resend_in_slot`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InSlot {
    /// When the slot was.
    slot: Instant,
    /// Resends in the slot so far.
    resends: u32,
    /// How far the later slots have moved back for them: the time from the slot to the
    /// last resend.
    moved: Duration,
}

impl InSlot {
    /// A slot that started at `slot`, not resent in yet.
    pub(crate) fn new(slot: Instant) -> Self {
        Self {
            slot,
            resends: 0,
            moved: Duration::ZERO,
        }
    }
}

impl Limiter {
    /// A limiter for `service` with in-memory state on tokio's clock.
    ///
    /// # Errors
    ///
    /// Never today; kept fallible so a policy can be checked again here.
    pub fn new(service: &str, policy: &Policy) -> Result<Self, Error> {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let store = Arc::new(MemoryStore::with_clock(clock.clone()));
        Self::with_store(service, policy, store, clock)
    }

    /// A limiter keeping its state in `store` and reading time from `clock`.
    ///
    /// Bucket keys are `service:bucket`, so services sharing a store do not collide.
    ///
    /// # Errors
    ///
    /// Never today; kept fallible so a policy can be checked again here.
    pub fn with_store(
        service: &str,
        policy: &Policy,
        store: Arc<dyn QuotaStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let buckets: Vec<Bucket> = policy
            .buckets()
            .iter()
            .map(|(name, bucket)| Bucket {
                name: name.clone(),
                key: format!("{service}:{name}"),
                limits: bucket.limits.clone(),
                slots: bucket.max_in_flight.map(|n| Arc::new(Semaphore::new(n))),
                cap: bucket.max_in_flight,
                counters: Counters::default(),
                resends: AtomicI32::new(0),
                round_trips: Mutex::default(),
            })
            .collect();
        let capped = policy.max_in_flight.is_some();
        let plan = |op: &OperationPolicy| make_plan(&buckets, store.as_ref(), capped, op);
        let plans = policy
            .operations
            .iter()
            .map(|(name, op)| (name.clone(), plan(op)))
            .collect();
        let default_plan = plan(&policy.default_operation);
        let inner = Inner {
            service: service.to_owned(),
            service_slots: policy.max_in_flight.map(|n| Arc::new(Semaphore::new(n))),
            service_cap: policy.max_in_flight,
            max_wait: policy.max_wait(),
            precise_wakeups: policy.precise_wakeups(),
            clock,
            store,
            buckets,
            plans,
            default_plan,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Waits until `operation` may send one request, and returns the permit.
    ///
    /// # Errors
    ///
    /// [`Error::RateLimited`] when the wait would exceed the policy's `max_wait` (nothing
    /// is spent), [`Error::NeverFits`] when the operation's cost exceeds a limit's burst,
    /// [`Error::Store`] when a shared store fails.
    #[inline]
    pub async fn acquire(&self, operation: &str) -> Result<Permit, Error> {
        let plan = self.plan(operation);
        // A request that can start now is answered before any waiting machinery is built:
        // this is most acquires, and the benchmark against governor measures it.
        if self.start_now(plan) {
            return Ok(Permit {
                _slots: None,
                waited: 0,
                late: 0,
            });
        }
        self.acquire_slow(operation, plan).await
    }

    /// The rest of [`Limiter::acquire`], boxed: the waiting machinery is a large future
    /// (timers, store calls), and built apart it costs one allocation on the way to a wait
    /// instead of a larger frame and state for every acquire.
    #[inline(never)]
    fn acquire_slow<'a>(
        &'a self,
        operation: &'a str,
        plan: &'a Plan,
    ) -> Pin<Box<dyn Future<Output = Result<Permit, Error>> + Send + 'a>> {
        Box::pin(self.wait_for(operation, plan))
    }

    /// Spends the plan's quota if it can start now, uncapped and on the in-memory store.
    #[inline]
    fn start_now(&self, plan: &Plan) -> bool {
        if plan.capped {
            return false;
        }
        if let Some((lane, cost)) = &plan.lane {
            return lane.try_spend(*cost);
        }
        let Some(memory) = self.inner.store.as_memory() else {
            return false;
        };
        plan.targets.len() == 1 && memory.try_now(&plan.targets[0], u64::from(plan.cost))
    }

    /// Caps on requests in flight, waits and refusals.
    async fn wait_for(&self, operation: &str, plan: &Plan) -> Result<Permit, Error> {
        let cost = u64::from(plan.cost);
        let slots = if plan.capped {
            self.take_slots(plan).await
        } else {
            Vec::new()
        };
        let (waited, late) = match self.inner.store.as_memory() {
            Some(memory) => {
                let max_wait = self.inner.max_wait;
                let (decision, now, ticket) = memory.reserve_at(&plan.targets, ALL, cost, max_wait);
                match decision {
                    // The common case stays out of the waiting machinery altogether.
                    Decision::Granted { start } if start <= now => (Duration::ZERO, Duration::ZERO),
                    _ => {
                        self.wait_memory(memory, operation, plan, (decision, now, ticket))
                            .await?
                    }
                }
            }
            None => self.reserve_shared(operation, plan).await?,
        };
        Ok(Permit {
            _slots: Some(slots),
            waited: nanos(waited),
            late: nanos(late),
        })
    }

    /// The resolved plan of `operation`.
    #[inline]
    pub(crate) fn plan(&self, operation: &str) -> &Plan {
        let plans = &self.inner.plans;
        // A policy with one plan for every operation need not hash the name at all.
        if plans.is_empty() {
            return &self.inner.default_plan;
        }
        plans.get(operation).unwrap_or(&self.inner.default_plan)
    }

    /// The sustained rate `operation` may be sent at, in requests per second: the slowest
    /// of its limits at the current pace, divided by its cost. `None` when no limit applies.
    pub fn rate(&self, operation: &str) -> Option<f64> {
        let plan = self.plan(operation);
        let memory = self.inner.store.as_memory();
        let mut slowest: Option<f64> = None;
        for target in &plan.targets {
            let pace = memory.map_or(1.0, |m| m.pace_of(target));
            for limit in &target.limits {
                let rate = 1e9 / limit.interval.max(1) as f64 * pace;
                slowest = Some(slowest.map_or(rate, |s| s.min(rate)));
            }
        }
        slowest.map(|rate| rate / f64::from(plan.cost))
    }

    /// The tightest cap on requests in flight that applies to `operation`.
    pub fn in_flight_cap(&self, operation: &str) -> Option<usize> {
        let plan = self.plan(operation);
        let buckets = plan
            .buckets
            .iter()
            .filter_map(|&b| self.inner.buckets[b].cap);
        self.inner.service_cap.into_iter().chain(buckets).min()
    }

    /// The clock the limiter reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    async fn take_slots(&self, plan: &Plan) -> Vec<OwnedSemaphorePermit> {
        let service = self.inner.service_slots.iter();
        let buckets = plan
            .buckets
            .iter()
            .filter_map(|&b| self.inner.buckets[b].slots.as_ref());
        let mut slots = Vec::new();
        for semaphore in service.chain(buckets) {
            // The semaphores are never closed, so acquiring cannot fail.
            if let Ok(permit) = semaphore.clone().acquire_owned().await {
                slots.push(permit);
            }
        }
        slots
    }

    /// Waits out (or refuses) a reservation the in-memory store answered; returns the
    /// time waited and the lateness no later slot absorbed.
    async fn wait_memory(
        &self,
        memory: &MemoryStore,
        operation: &str,
        plan: &Plan,
        (decision, now, ticket): (Decision, u64, Ticket),
    ) -> Result<(Duration, Duration), Error> {
        match decision {
            Decision::Granted { start } if start <= now => Ok((Duration::ZERO, Duration::ZERO)),
            Decision::Granted { start } => {
                let mut refund = Refund {
                    memory,
                    plan,
                    ticket: Some(ticket),
                };
                let began = memory.to_instant(now);
                let mut wake = memory.to_instant(start);
                loop {
                    timer::sleep_until(wake, self.inner.precise_wakeups).await;
                    let Some(ticket) = refund.ticket.as_mut() else {
                        break;
                    };
                    let moved = memory.moved_by_at(&plan.targets, ticket);
                    if moved == 0 {
                        break;
                    }
                    ticket.moved(moved);
                    wake += Duration::from_nanos(moved);
                }
                let deferred = refund.ticket.take().map_or(0, |t| t.deferred);
                charge_deferred(memory, plan, deferred).await;
                let late = self.absorb_lateness(operation, plan, wake).await;
                Ok((self.record_wait(operation, plan, began), late))
            }
            Decision::TooLong { start, target } => {
                let wait = Duration::from_nanos(start - now);
                Err(self.too_long(operation, plan.buckets[target], wait))
            }
            Decision::Never { target, limit } => Err(self.never(operation, plan, target, limit)),
        }
    }

    /// The shared-store form of the wait: returns the time waited and how late it woke.
    async fn reserve_shared(
        &self,
        operation: &str,
        plan: &Plan,
    ) -> Result<(Duration, Duration), Error> {
        let refs = self.refs(plan);
        let request = ReserveRequest {
            buckets: &refs,
            cost: plan.cost,
            max_wait: self.inner.max_wait,
        };
        let began = self.inner.clock.now();
        match self
            .inner
            .store
            .reserve(request)
            .await
            .map_err(store_error)?
        {
            Grant::Ready { wait, .. } if wait.is_zero() => Ok((Duration::ZERO, Duration::ZERO)),
            Grant::Ready { wait, ticket } => {
                let (deferred, wake) = self.wait_moved(&refs, ticket, began + wait).await?;
                self.charge_deferred_shared(deferred_of(&refs, deferred), plan.cost)
                    .await?;
                let late = self.absorb_lateness(operation, plan, wake).await;
                Ok((self.record_wait(operation, plan, began), late))
            }
            Grant::TooLong { wait, bucket } => {
                Err(self.too_long(operation, plan.buckets[bucket], wait))
            }
            Grant::Never { bucket, limit } => Err(self.never(operation, plan, bucket, limit)),
        }
    }

    /// Sleeps until `wake`, and again for as long as pauses moved the reservation.
    /// Returns the buckets still to charge and when the last sleep was to end.
    async fn wait_moved(
        &self,
        refs: &[BucketRef<'_>],
        mut ticket: Ticket,
        mut wake: Instant,
    ) -> Result<(u64, Instant), Error> {
        loop {
            timer::sleep_until(wake, self.inner.precise_wakeups).await;
            let moved = self
                .inner
                .store
                .moved_by(refs, &ticket)
                .await
                .map_err(store_error)?;
            if moved.is_zero() {
                return Ok((ticket.deferred, wake));
            }
            ticket.moved(nanos(moved));
            wake += moved;
        }
    }

    /// The shared-store form of [`charge_deferred`].
    async fn charge_deferred_shared(
        &self,
        mut pending: Vec<BucketRef<'_>>,
        cost: u32,
    ) -> Result<(), Error> {
        while !pending.is_empty() {
            let request = ReserveRequest {
                buckets: &pending,
                cost,
                max_wait: None,
            };
            match self
                .inner
                .store
                .reserve(request)
                .await
                .map_err(store_error)?
            {
                Grant::Ready { wait, ticket } => {
                    tokio::time::sleep(wait).await;
                    pending = deferred_of(&pending, ticket.deferred);
                }
                Grant::TooLong { .. } | Grant::Never { .. } => break,
            }
        }
        Ok(())
    }

    fn refs<'a>(&'a self, plan: &Plan) -> Vec<BucketRef<'a>> {
        let bucket = |&b: &usize| {
            let bucket = &self.inner.buckets[b];
            BucketRef {
                key: &bucket.key,
                limits: &bucket.limits,
            }
        };
        plan.buckets.iter().map(bucket).collect()
    }

    /// Moves later slots back by the part of a late wake-up beyond one slot.
    ///
    /// Slots come from the theoretical arrival times, so a waiter that wakes late does
    /// not delay the next one, which keeps the rate. But a strict server counts from
    /// arrivals: one request late by more than its tolerance, followed by one on time,
    /// looks like two in one slot and earns a 429, and with a `Retry-After` a cooldown
    /// (measured at 500/s on two busy cores: 36 of 10,000 bulk updates, 36 s lost). A
    /// server that tolerates one request never sees a slot of lateness, so that much is
    /// forgiven and timer jitter costs no rate; what is beyond it moves the slots of the
    /// operation's fastest bucket as the server's own count would move.
    ///
    /// With precise wake-ups a waiter is rarely more than 200 µs late, so one later than
    /// an eighth of a slot means the machine paused, and the requests sent just before
    /// it reach the server late too: the slots then move back by all of the lateness.
    /// Forgiving a slot there left three to thirteen 429s in 10,000 bulk updates;
    /// moving by all of it, none to two, for 0.26 % of the rate.
    ///
    /// Returns the lateness left over: what the server may see of it.
    async fn absorb_lateness(&self, operation: &str, plan: &Plan, wake: Instant) -> Duration {
        let late = self.inner.clock.now().saturating_duration_since(wake);
        let Some((_, slot)) = plan.fastest else {
            return late;
        };
        let shift = match self.inner.precise_wakeups {
            Some(_) if late > slot / 8 => late,
            Some(_) => Duration::ZERO,
            None => late.saturating_sub(slot),
        };
        if shift.is_zero()
            || !self
                .delay_slots(operation, plan, shift, ShiftCause::Late)
                .await
        {
            return late;
        }
        tracing::trace!(
            operation,
            late_us = late.as_micros() as u64,
            "woke late; later slots move back"
        );
        late - shift
    }

    /// Moves the later slots of the operation's fastest bucket back by `shift`. False when
    /// a shared store could not (the error is logged).
    async fn delay_slots(
        &self,
        operation: &str,
        plan: &Plan,
        shift: Duration,
        cause: ShiftCause,
    ) -> bool {
        let Some((target, _)) = plan.fastest else {
            return false;
        };
        if let Some(memory) = self.inner.store.as_memory() {
            memory.delay_at(&plan.targets[target], shift, cause);
            return true;
        }
        let bucket = &self.inner.buckets[plan.buckets[target]];
        let bucket = BucketRef {
            key: &bucket.key,
            limits: &bucket.limits,
        };
        match self.inner.store.delay(bucket, shift, cause).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(operation, %error, "could not move the later slots back");
                false
            }
        }
    }

    /// Takes note of how long a request of `operation` took from send to response, and
    /// moves the later slots of its fastest bucket back when that was far beyond the
    /// usual: the request probably reached the server late, right before the next one
    /// (see the `round_trip` module's notes). The move is the excess beyond a quarter of
    /// a slot, at most a slot.
    pub(crate) async fn round_trip(&self, operation: &str, took: Duration) {
        let plan = self.plan(operation);
        let Some((target, slot)) = plan.fastest else {
            return;
        };
        let bucket = &self.inner.buckets[plan.buckets[target]];
        let excess = (bucket.round_trips.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .observe(took);
        // A quarter of a slot is forgiven: the timer's jitter is of that order, and at
        // 500/s moving by all of every excess cost 0.3 to 0.7 % of the rate.
        let Some(excess) = excess.filter(|excess| *excess > slot / 4) else {
            return;
        };
        let shift = (excess - slot / 4).min(slot);
        if self
            .delay_slots(operation, plan, shift, ShiftCause::Late)
            .await
        {
            tracing::debug!(
                operation,
                excess_us = excess.as_micros() as u64,
                shift_us = shift.as_micros() as u64,
                "response far later than usual; later slots move back"
            );
        }
    }

    /// Lets a request the server refused without a retry time go again at once, in the
    /// slot it already holds, when that is cheaper than taking the next slot.
    ///
    /// A strict server refuses a request that arrives even a little before its own count
    /// allows: the previous request reached it late, and this one on time. Its count then
    /// stands a few tens of microseconds past our slot, not a whole slot, so the same
    /// request sent again at once is admitted. The operation's later slots move back by
    /// the time since the refused request's slot, as the server's count moved, so the
    /// resend costs that time instead of a slot. Taking the next slot instead left
    /// 70-85 % of the rate against a server tolerating nothing at 500/s; resending, 96 %.
    ///
    /// A server that tolerates a request or more early refuses only requests a whole slot
    /// or more early (a pause bunched them up), and a resend at once is refused too: at
    /// 500/s with a tolerance of one, every resend was, doubling the 429s. So each bucket
    /// keeps a score of how resends fared ([`Limiter::resent`]): a refused one costs a
    /// point, an admitted one wins two (up to four), and below zero a refusal is not
    /// resent but wins a point back. Resends go on while at least one in three is
    /// admitted (each saves a slot, each refused one costs a 429 and a round trip);
    /// where none is, one refusal in two is resent.
    ///
    /// A resend refused in turn goes again too, on the same terms, once twice as much time
    /// has passed since the slot as at the last resend: a request held up on its way can
    /// put the server's count further past ours than one round trip, and doubling finds
    /// it in a few resends, wherever it is within half a slot. The later slots then move
    /// by the time since the last resend. Only the first resend in a slot is scored, and
    /// only a request not yet resent wins a point back, so one pause that refuses a few
    /// resends in a row does not stop resends for the requests after it.
    ///
    /// Each resend also trims the pace a hair ([`ShiftCause::Resent`]): at any pace near a
    /// strict server's limit some requests are refused, but against a server whose limit
    /// is a little below ours, every one would be.
    ///
    /// Returns false, changing nothing but that score, when half a slot or more has
    /// passed since the slot (the next slot is as cheap), when the slot has had its
    /// resends, when resends have not paid off lately, when the operation has no limit,
    /// or when a shared store cannot move its slots.
    pub(crate) async fn resend_in_slot(&self, operation: &str, in_slot: &mut InSlot) -> bool {
        let plan = self.plan(operation);
        let Some((target, slot)) = plan.fastest else {
            return false;
        };
        // A later resend goes once twice the time of the last one has passed since the
        // slot: each looks twice as far past our slot for the server's count.
        let due = in_slot.moved * 2;
        let since_slot = self
            .inner
            .clock
            .now()
            .saturating_duration_since(in_slot.slot);
        let half = slot / 2;
        if since_slot.max(due) >= half || in_slot.resends >= RESENDS_PER_SLOT {
            return false;
        }
        let score = self.resend_score(plan, target);
        if score.load(Ordering::Relaxed) < 0 {
            if in_slot.resends == 0 {
                score.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
        if since_slot < due {
            timer::sleep_until(in_slot.slot + due, self.inner.precise_wakeups).await;
        }
        let since_slot = self
            .inner
            .clock
            .now()
            .saturating_duration_since(in_slot.slot);
        let shift = since_slot.saturating_sub(in_slot.moved);
        if !self
            .delay_slots(operation, plan, shift, ShiftCause::Resent)
            .await
        {
            return false;
        }
        tracing::debug!(
            operation,
            since_slot_us = since_slot.as_micros() as u64,
            "refused without a retry time; resent in its slot, later slots move back"
        );
        in_slot.resends += 1;
        in_slot.moved = since_slot;
        true
    }

    /// Records how a resend in `in_slot` fared: `admitted` unless it was refused again.
    /// A refusal costs a point only on the slot's first resend.
    pub(crate) fn resent(&self, operation: &str, admitted: bool, in_slot: &InSlot) {
        let plan = self.plan(operation);
        let Some((target, _)) = plan.fastest else {
            return;
        };
        if !admitted && in_slot.resends > 1 {
            return;
        }
        let score = self.resend_score(plan, target);
        let update = |score: i32| {
            Some(if admitted {
                (score + 2).min(4)
            } else {
                (score - 1).max(-2)
            })
        };
        // The closure always returns Some, so the update always succeeds.
        let _ = score.fetch_update(Ordering::Relaxed, Ordering::Relaxed, update);
    }

    /// The resend score of the bucket behind `target` of `plan`.
    fn resend_score(&self, plan: &Plan, target: usize) -> &AtomicI32 {
        &self.inner.buckets[plan.buckets[target]].resends
    }

    fn record_wait(&self, operation: &str, plan: &Plan, began: Instant) -> Duration {
        let waited = self.inner.clock.now().saturating_duration_since(began);
        let waited_nanos = nanos(waited);
        for &b in &plan.buckets {
            let counters = &self.inner.buckets[b].counters;
            Counters::add(&counters.throttled, 1);
            Counters::add(&counters.throttled_nanos, waited_nanos);
            let name = &self.inner.buckets[b].name;
            telemetry::count("polvo_throttled_total", &self.inner.service, name, 1);
            telemetry::waited(&self.inner.service, name, waited);
        }
        tracing::trace!(
            operation,
            wait_ms = waited.as_millis() as u64,
            "waited for quota"
        );
        waited
    }

    fn too_long(&self, operation: &str, bucket: usize, wait: Duration) -> Error {
        let bucket = self.inner.buckets[bucket].name.clone();
        tracing::debug!(
            operation,
            bucket,
            wait_ms = wait.as_millis() as u64,
            "refused: wait above max_wait"
        );
        Error::RateLimited(Box::new(RateLimited {
            operation: operation.to_owned(),
            bucket: Some(bucket),
            retry_after: Some(wait),
            attempts: 0,
            status: None,
            reason: RateLimitReason::WaitTooLong,
        }))
    }

    fn never(&self, operation: &str, plan: &Plan, target: usize, limit: usize) -> Error {
        let bucket = &self.inner.buckets[plan.buckets[target]];
        Error::NeverFits(Box::new(NeverFits {
            operation: operation.to_owned(),
            cost: plan.cost,
            bucket: bucket.name.clone(),
            limit: bucket.limits[limit],
        }))
    }

    /// Stops every bucket of `operation` for `delay`: pending requests wait it out too.
    ///
    /// `slow_down` also lowers the buckets' pace a little, for a server that refused a
    /// request our limits allowed. Returns whether the pace of any bucket came down: a
    /// 429 repeated within 200 successes of the last one, above the lowest pace.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a shared store fails and has no local fallback.
    pub async fn pause(
        &self,
        operation: &str,
        delay: Duration,
        slow_down: bool,
    ) -> Result<bool, Error> {
        let plan = self.plan(operation);
        tracing::info!(
            operation,
            delay_ms = delay.as_millis() as u64,
            slow_down,
            "cooldown"
        );
        for &b in &plan.buckets {
            let name = &self.inner.buckets[b].name;
            telemetry::count("polvo_cooldowns_total", &self.inner.service, name, 1);
        }
        match self.inner.store.as_memory() {
            Some(memory) => Ok(memory.pause_at(&plan.targets, delay, slow_down)),
            None => {
                let refs = self.refs(plan);
                let result = self.inner.store.pause(&refs, delay, slow_down).await;
                result.map_err(|e| Error::Store(e.to_string()))
            }
        }
    }

    /// Takes what a response said about the operation's quota.
    ///
    /// A report naming a resource (`x-ratelimit-resource`) goes to the bucket of that name
    /// when the operation uses it; otherwise to the operation's first bucket.
    pub async fn observe(&self, operation: &str, info: &RateLimitInfo) -> Result<(), Error> {
        if info.remaining.is_none() && info.reset_after.is_none() {
            return Ok(());
        }
        let plan = self.plan(operation);
        let by_resource = info.resource.as_deref().and_then(|resource| {
            plan.buckets
                .iter()
                .position(|&b| self.inner.buckets[b].name == resource)
        });
        let Some(index) = by_resource.or(if plan.buckets.is_empty() {
            None
        } else {
            Some(0)
        }) else {
            return Ok(());
        };
        let bucket = &self.inner.buckets[plan.buckets[index]];
        self.remember_server(bucket, info);
        let report = Report {
            remaining: info.remaining,
            reset_after: info.reset_after,
            limit: info.limit,
            window: info.window,
        };
        match self.inner.store.as_memory() {
            Some(memory) => memory.adopt_at(&plan.targets[index], &report),
            None => {
                let bucket_ref = BucketRef {
                    key: &bucket.key,
                    limits: &bucket.limits,
                };
                let result = self.inner.store.adopt(bucket_ref, report).await;
                result.map_err(|e| Error::Store(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn remember_server(&self, bucket: &Bucket, info: &RateLimitInfo) {
        let mut seen = bucket
            .counters
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let reset_at = info.reset_after.map(|d| self.inner.clock.now() + d);
        *seen = ServerSeen {
            remaining: info.remaining.or(seen.remaining),
            limit: info.limit.or(seen.limit),
            reset_at: reset_at.or(seen.reset_at),
        };
    }

    /// Records a successful response: recovers pace lost to earlier 429s.
    pub(crate) async fn succeeded(&self, operation: &str) {
        let plan = self.plan(operation);
        match self.inner.store.as_memory() {
            Some(memory) => memory.recover_at(&plan.targets),
            None => {
                for bucket in self.refs(plan) {
                    if let Err(error) = self.inner.store.recover(bucket).await {
                        tracing::debug!(%error, "quota store did not record a success");
                    }
                }
            }
        }
    }

    /// Counts one event of `kind` in every bucket of `operation`.
    pub(crate) fn count(&self, operation: &str, kind: Event) {
        for &b in &self.plan(operation).buckets {
            let c = &self.inner.buckets[b].counters;
            let (counter, metric) = match kind {
                Event::Sent => (&c.sent, "polvo_requests_sent_total"),
                Event::Rejected => (&c.rejected, "polvo_rate_limited_total"),
                Event::Retry => (&c.retries, "polvo_retries_total"),
                Event::Failure => (&c.failures, "polvo_failures_total"),
            };
            Counters::add(counter, 1);
            let name = &self.inner.buckets[b].name;
            telemetry::count(metric, &self.inner.service, name, 1);
        }
    }

    /// [`Limiter::usage`], with units available, cooldown and pace read from the store
    /// even when it is shared: one round trip per bucket to a Redis store.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a shared store cannot be read.
    pub async fn usage_now(&self) -> Result<Usage, Error> {
        let mut usage = self.usage();
        if self.inner.store.as_memory().is_some() {
            return Ok(usage);
        }
        for (bucket, row) in self.inner.buckets.iter().zip(&mut usage.buckets) {
            let key = BucketRef {
                key: &bucket.key,
                limits: &bucket.limits,
            };
            let view = self.inner.store.view(key).await.map_err(store_error)?;
            row.available = view.available;
            row.blocked_for = view.blocked_for;
            row.pace = f64::from(view.pace_ppm.max(1)) / 1e6;
        }
        Ok(usage)
    }

    /// A snapshot of every bucket.
    ///
    /// Units available are read from an in-memory store; with a shared store they are left
    /// empty, because reading them takes a round trip: [`Limiter::usage_now`] makes it.
    pub fn usage(&self) -> Usage {
        let memory = self.inner.store.as_memory();
        let now = self.inner.clock.now();
        let buckets = self.inner.buckets.iter().map(|bucket| {
            let view = memory.map(|m| {
                let limits = bucket.limits.iter().map(LimitParams::from).collect();
                m.view_at(&Target {
                    state: m.register(&bucket.key, bucket.limits.len()),
                    limits,
                })
            });
            let view = view.unwrap_or_default();
            let seen = *bucket
                .counters
                .server
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let c = &bucket.counters;
            BucketUsage {
                name: bucket.name.clone(),
                limits: bucket.limits.clone(),
                available: view.available,
                blocked_for: view.blocked_for,
                pace: f64::from(view.pace_ppm.max(1)) / 1e6,
                server_remaining: seen.remaining,
                server_limit: seen.limit,
                server_reset_in: seen.reset_at.map(|at| at.saturating_duration_since(now)),
                sent: Counters::get(&c.sent),
                throttled: Counters::get(&c.throttled),
                throttled_time: Duration::from_nanos(Counters::get(&c.throttled_nanos)),
                rejected: Counters::get(&c.rejected),
                retries: Counters::get(&c.retries),
                failures: Counters::get(&c.failures),
            }
        });
        Usage {
            buckets: buckets.collect(),
        }
    }
}

/// A multiply-rotate hash over eight bytes at a time: operation ids are trusted strings
/// of 10 to 40 bytes, and SipHash's flood resistance (or FNV's byte at a time) would cost
/// more than the rest of an uncontended acquire.
#[derive(Debug, Default)]
struct WordHash(u64);

impl WordHash {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0; 8];
            buf.copy_from_slice(word);
            self.mix(u64::from_le_bytes(buf));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buf = [0; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(buf));
        }
    }
}

/// What [`Limiter::count`] counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Sent,
    Rejected,
    Retry,
    Failure,
}

/// Charges the buckets a waiting reservation deferred, waiting for them when needed.
///
/// Their charge is small by construction (they were not the slowest bucket), so this wait
/// is short; it is not refunded on drop, which can only leave the limiter more careful.
async fn charge_deferred(memory: &MemoryStore, plan: &Plan, mut deferred: u64) {
    while deferred != 0 {
        let (decision, now, ticket) =
            memory.reserve_at(&plan.targets, deferred, u64::from(plan.cost), None);
        let Decision::Granted { start } = decision else {
            break;
        };
        if start > now {
            tokio::time::sleep_until(memory.to_instant(start)).await;
        }
        deferred = ticket.deferred;
    }
}

fn store_error(error: crate::store::StoreError) -> Error {
    Error::Store(error.to_string())
}

/// The buckets of `refs` whose bits are set in `mask`.
fn deferred_of<'a>(refs: &[BucketRef<'a>], mask: u64) -> Vec<BucketRef<'a>> {
    let set = |i: usize| i < 64 && mask & (1 << i) != 0;
    refs.iter()
        .enumerate()
        .filter(|(i, _)| set(*i))
        .map(|(_, r)| *r)
        .collect()
}

fn make_plan(
    buckets: &[Bucket],
    store: &dyn QuotaStore,
    service_capped: bool,
    op: &OperationPolicy,
) -> Plan {
    // Policies are validated when built, so every name resolves; an unknown one is skipped
    // rather than trusted.
    let indices: Vec<usize> = op
        .buckets
        .iter()
        .filter_map(|name| buckets.iter().position(|b| &b.name == name))
        .collect();
    let target = |&b: &usize| {
        let bucket: &Bucket = &buckets[b];
        let state = store
            .as_memory()
            .map_or(usize::MAX, |m| m.register(&bucket.key, bucket.limits.len()));
        Target {
            state,
            limits: bucket.limits.iter().map(LimitParams::from).collect(),
        }
    };
    let targets: Vec<Target> = indices.iter().map(target).collect();
    let limited = targets.iter().any(|t| !t.limits.is_empty());
    let capped = service_capped || indices.iter().any(|&b| buckets[b].slots.is_some());
    let fastest = targets
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.limits.iter().map(move |l| (i, l.interval)))
        .min_by_key(|&(_, interval)| interval)
        .map(|(i, interval)| (i, Duration::from_nanos(interval)));
    let lane = match (store.as_memory(), targets.as_slice()) {
        (Some(memory), [target]) if target.limits.len() == 1 => {
            let cost = LaneCost::new(&target.limits[0], u64::from(op.cost));
            memory.lane(target.state).zip(cost)
        }
        _ => None,
    };
    Plan {
        buckets: indices,
        targets,
        cost: op.cost,
        limited,
        capped,
        fastest,
        lane,
    }
}

/// Gives a reservation back when its waiter is dropped before the start.
struct Refund<'a> {
    memory: &'a MemoryStore,
    plan: &'a Plan,
    ticket: Option<Ticket>,
}

impl Drop for Refund<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.memory
                .release_at(&self.plan.targets, u64::from(self.plan.cost), &ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter_at_ten_per_second() -> Limiter {
        let limit = Limit::per_second(10).expect("a valid limit");
        let policy = Policy::builder()
            .bucket("default", [limit])
            .build()
            .expect("a valid policy");
        Limiter::new("test", &policy).expect("a limiter")
    }

    /// How long after the first acquire a second one starts, once a round trip of
    /// `took` was reported in between, after twenty of 1 ms.
    async fn second_start_after(took: Duration) -> Duration {
        let limiter = limiter_at_ten_per_second();
        for _ in 0..20 {
            limiter.round_trip("op", Duration::from_millis(1)).await;
        }
        let start = Instant::now();
        drop(limiter.acquire("op").await.expect("admitted"));
        limiter.round_trip("op", took).await;
        drop(limiter.acquire("op").await.expect("admitted"));
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_usual_response_moves_nothing() {
        let waited = second_start_after(Duration::from_millis(2)).await;
        assert_eq!(waited, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_far_later_than_usual_moves_the_later_slots() {
        // 60 ms beyond the usual 1 ms; a quarter of the 100 ms slot is forgiven.
        let waited = second_start_after(Duration::from_millis(61)).await;
        assert_eq!(waited, Duration::from_millis(135));
    }

    #[tokio::test(start_paused = true)]
    async fn a_move_is_at_most_a_slot() {
        let waited = second_start_after(Duration::from_secs(5)).await;
        assert_eq!(waited, Duration::from_millis(200));
    }
}
