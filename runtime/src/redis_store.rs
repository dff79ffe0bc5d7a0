//! A [`QuotaStore`] on Redis, so any number of processes share one quota exactly.
//!
//! Design note (2026-12): every trait method is one call of one Lua script
//! (`redis_store.lua`, run with `EVALSHA`) that mirrors `gcra.rs` line for line, so a
//! reservation across several buckets checks every limit first and spends nothing when one
//! refuses, atomically, on the server. Time comes only from the server's `TIME`, in
//! microseconds since the epoch: a Lua number is a double, which holds that exactly but not
//! nanoseconds. Every wait crosses back to the caller as a delay, so client clocks never
//! matter.
//!
//! Keys are `polvo:{SERVICE:CREDENTIAL}:BUCKET`, where CREDENTIAL is the first 16 hex
//! digits of the credential's SHA-1 (never the credential). The braces are a Redis Cluster
//! hash tag: all buckets of one service and credential share a slot, so one script may
//! touch them all. A key expires once idle for its longest period plus a minute.
//!
//! The store talks to one server ([`RedisStore::builder`]) or to a Redis Cluster
//! ([`RedisStore::cluster_builder`]) with the same script call: the cluster connection
//! sends each `EVALSHA` to the node serving its keys' slot and loads the script on every
//! node when one does not know it. Different credentials and services hash to different
//! slots, so a fleet's quotas spread over the cluster while each reservation stays on one
//! node.
//!
//! When Redis fails or answers slower than the call timeout, the store follows its
//! [`OnFailure`] policy, and skips Redis for a back-off before trying it again, so a dead
//! server costs one timeout per back-off rather than one per request, and recovery needs no
//! one's help. The local fallback is a [`MemoryStore`] with every limit scaled to a share
//! of its count, for a fleet whose members each take their share while they cannot talk.
//!
//! The shares add up to the limit only if no process sends past its own on either side
//! of an outage. A bucket's share starts spent, since Redis's count may have reached the
//! end of the burst just before; at two processes' 50/s that kept the busiest second of
//! an outage at 51 requests instead of 53. And the processes find Redis again one by one,
//! each when its back-off ends, while Redis holds nothing of what the others still spend
//! on their shares; so for one back-off after Redis answers again a request waits for its
//! share's slot first, and only then takes its place on Redis. Without that, the busiest
//! second after Redis came back held 57 (`tests/tests/redis_outage.rs`).
//!
//! Tickets remember which store made them: a Redis ticket has the top bit of each of its
//! [`Ticket::shifts`] set (pause totals never come near 2^63 ns, which is 292 years), so a
//! reservation made locally during an outage is never checked against Redis's totals once
//! Redis is back, or the other way round.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, RedisResult, ScriptInvocation};
use tokio::sync::OnceCell;

use crate::client::Auth;
use crate::clock::Clock;
use crate::gcra::{self, LimitParams, ServerView};
use crate::limit::Limit;
use crate::policy::ConfigError;
use crate::store::{
    BucketRef, BucketView, Grant, MemoryStore, QuotaStore, Report, ReserveRequest, ShiftCause,
    StoreError, StoreFuture, Ticket,
};

/// The script behind every operation.
const SCRIPT: &str = include_str!("redis_store.lua");

/// Marks a ticket's `shifts` as Redis's (see the module docs).
const REMOTE: u64 = 1 << 63;

/// What a [`RedisStore`] does while Redis is unreachable or too slow.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Fail the call: the limiter returns [`Error::Store`](crate::Error::Store).
    Fail,
    /// Answer from a local in-memory store whose limits are `share` of each limit's count
    /// and burst (at least 1), for a fleet that splits the quota while it cannot talk.
    ///
    /// Give each process of the fleet a share of one over the fleet's size, and the same
    /// back-off: the share also holds for one back-off after Redis answers a process
    /// again, the time each of the others takes to try Redis again. (A process whose
    /// first try after the outage fails too comes back one back-off later still; for
    /// that back-off the fleet can go past the limit by what that process's share sends.)
    Local {
        /// The share of the quota this process takes alone, in `(0, 1]`.
        share: f64,
    },
}

/// Quota state in Redis, shared by every process that uses the same server, service and
/// credential.
///
/// The connection is made on first use, so a store can be built outside a tokio runtime;
/// it needs a real clock (tokio's paused clock would fire the call timeouts at once).
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use polvo_runtime::{Client, OnFailure, Policy, RedisStore};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .credential("my-api-token")
///     .on_failure(OnFailure::Local { share: 0.25 })
///     .build()?;
/// let client = Client::builder("example", Policy::default())
///     .base_url("https://api.example.com")
///     .rate_limit(20)
///     .store(Arc::new(store))
///     .build()?;
/// # Ok(())
/// # }
/// ```
pub struct RedisStore {
    backend: Backend,
    /// Where the script reads the time, when not from Redis's `TIME`.
    clock: Option<Arc<dyn Clock>>,
    script: redis::Script,
    credential: String,
    on_failure: OnFailure,
    timeout: Duration,
    backoff: Duration,
    local: MemoryStore,
    retry_at: Mutex<Option<Instant>>,
    handover: Mutex<Handover>,
    fallbacks: AtomicU64,
    failures: AtomicU64,
}

/// How the local fallback takes the count over from Redis, and hands it back.
#[derive(Debug, Default)]
struct Handover {
    /// The buckets whose local state has taken over in the current outage.
    taken_over: HashSet<String>,
    /// When Redis last answered again after an outage.
    rejoined_at: Option<Instant>,
}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`] and
/// [`RedisStore::cluster_builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    target: Target,
    clock: Option<Arc<dyn Clock>>,
    credential: String,
    on_failure: OnFailure,
    timeout: Duration,
    backoff: Duration,
}

impl RedisStore {
    /// Starts a store on the server at `url` (`redis://[:password@]host[:port][/db]`).
    ///
    /// Defaults: credential `anonymous`, [`OnFailure::Fail`], a 250 ms call timeout and
    /// a 1 s back-off after a failure.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Node(url.into()))
    }

    /// Starts a store on the Redis Cluster that `nodes` belong to, each a URL as for
    /// [`RedisStore::builder`], all with the same password, username and database. One
    /// reachable node is enough to find the others; naming a few lets the store start
    /// while one of them is down.
    ///
    /// Defaults as for [`RedisStore::builder`]. The call timeout covers a whole call,
    /// redirections included.
    ///
    /// Redis Cluster runs a script only on keys of one slot, so every bucket of one
    /// reservation must belong to one service, as a [`Client`](crate::Client)'s always
    /// do; a [`QuotaStore`] call that mixes services fails with a cross-slot error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use polvo_runtime::{Client, OnFailure, Policy, RedisStore};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let nodes = ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"];
    /// let store = RedisStore::cluster_builder(nodes)
    ///     .credential("my-api-token")
    ///     .on_failure(OnFailure::Local { share: 0.25 })
    ///     .build()?;
    /// let client = Client::builder("example", Policy::default())
    ///     .base_url("https://api.example.com")
    ///     .rate_limit(20)
    ///     .store(Arc::new(store))
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cluster_builder<I>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let nodes = nodes.into_iter().map(Into::into).collect();
        RedisStoreBuilder::new(Target::Cluster(nodes))
    }

    /// Whether the store runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster { .. })
    }

    /// Calls not answered by Redis: answered locally, or failed, by the policy.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Calls to Redis that failed or timed out.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether the last call to Redis failed, so calls skip it until the back-off ends.
    pub fn is_degraded(&self) -> bool {
        self.health().is_some()
    }

    fn health(&self) -> MutexGuard<'_, Option<Instant>> {
        self.retry_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handover(&self) -> MutexGuard<'_, Handover> {
        self.handover.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Redis key of `key` (`service:bucket`).
    fn key(&self, key: &str) -> String {
        let (service, bucket) = key.split_once(':').unwrap_or(("", key));
        format!("polvo:{{{service}:{}}}:{bucket}", self.credential)
    }

    /// Runs `op` on Redis, or says why not. Each failure starts a back-off.
    async fn call(&self, op: &'static str, buckets: &[BucketRef<'_>], args: &[i64]) -> Remote {
        if self.health().is_some_and(|at| Instant::now() < at) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return Err(Failure::Skipped);
        }
        let began = Instant::now();
        let began_on_clock = self.clock.as_ref().map(|clock| clock.now());
        let keys: Vec<String> = buckets.iter().map(|b| self.key(b.key)).collect();
        let mut all = args.to_vec();
        all.extend(buckets.iter().flat_map(|b| limit_args(b.limits)));
        let result = tokio::time::timeout(self.timeout, self.eval(op, &keys, &all)).await;
        let failure = match result {
            Ok(Ok(reply)) => {
                self.recovered(op);
                let round_trip = match (&self.clock, began_on_clock) {
                    (Some(clock), Some(began)) => clock.now().saturating_duration_since(began),
                    _ => began.elapsed(),
                };
                return Ok((reply, round_trip));
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.failed(op, &failure);
        Err(Failure::Error(failure))
    }

    /// One script call, on whichever backend the store has.
    async fn eval(&self, op: &str, keys: &[String], args: &[i64]) -> RedisResult<Vec<i64>> {
        let mut invocation = self.script.prepare_invoke();
        match &self.clock {
            // `op@now`: the script reads the time from the name of the operation.
            Some(clock) => invocation.arg(format!("{op}@{}", epoch_micros(clock.wall()))),
            None => invocation.arg(op),
        };
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        match &self.backend {
            Backend::Node { client, connection } => {
                let config = self.manager_config();
                let connect =
                    || async { ConnectionManager::new_lazy_with_config(client.clone(), config) };
                let mut connection = connection.get_or_try_init(connect).await?.clone();
                invoke(&invocation, &mut connection).await
            }
            Backend::Cluster { client, connection } => {
                // Unlike the manager, a cluster connection must reach a node to exist; a
                // failure leaves the cell empty, so the first call after the back-off
                // tries again.
                let connect = || client.get_async_connection();
                let mut connection = connection.get_or_try_init(connect).await?.clone();
                invoke(&invocation, &mut connection).await
            }
        }
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(self.backoff)
    }

    fn failed(&self, op: &'static str, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        // The handover changes with the health, in one step (handover, then health, as
        // everywhere), so no reservation sees a new outage with the last one's handover.
        let mut handover = self.handover();
        let was_up = self
            .health()
            .replace(Instant::now() + self.backoff)
            .is_none();
        if was_up {
            handover.taken_over.clear();
            handover.rejoined_at = None;
            drop(handover);
            tracing::warn!(
                op,
                error,
                backoff_ms = self.backoff.as_millis() as u64,
                policy = ?self.on_failure,
                "redis quota store unavailable; following the failure policy"
            );
        }
    }

    fn recovered(&self, op: &'static str) {
        let mut handover = self.handover();
        if self.health().take().is_some() {
            handover.rejoined_at = Some(Instant::now());
            drop(handover);
            tracing::info!(op, "redis quota store reachable again; quota shared again");
        }
    }

    /// The local store's limits for `buckets`, when the policy falls back to it.
    fn local_limits(&self, buckets: &[BucketRef<'_>]) -> Option<Vec<Vec<Limit>>> {
        let OnFailure::Local { share } = self.on_failure else {
            return None;
        };
        let scaled = |limits: &[Limit]| limits.iter().map(|l| scale(l, share)).collect();
        Some(buckets.iter().map(|b| scaled(b.limits)).collect())
    }

    /// Whether Redis answered again less than one back-off ago, after an outage.
    fn rejoining(&self) -> bool {
        let rejoined_at = self.handover().rejoined_at;
        rejoined_at.is_some_and(|at| at.elapsed() < self.backoff)
    }

    /// Drains the local state of each of `buckets` the first time it answers in an
    /// outage ([`MemoryStore::drain`]).
    fn take_over(&self, buckets: &[BucketRef<'_>]) {
        let mut handover = self.handover();
        let fresh: Vec<BucketRef<'_>> = buckets
            .iter()
            .filter(|bucket| handover.taken_over.insert(bucket.key.to_owned()))
            .copied()
            .collect();
        if !fresh.is_empty() {
            // Under the handover lock, so no reservation meets the bucket undrained.
            self.local.drain(&fresh);
            tracing::debug!(buckets = fresh.len(), "local quota store takes over, spent");
        }
    }

    /// Reserves `request` on the local store, at this process's share of each limit, after
    /// draining the buckets that have not yet taken over in this outage when `take_over`;
    /// `None` when the failure policy has no local store.
    async fn reserve_share(
        &self,
        request: ReserveRequest<'_>,
        take_over: bool,
    ) -> Option<Result<Grant, StoreError>> {
        let limits = self.local_limits(request.buckets)?;
        let buckets = local_refs(request.buckets, &limits);
        if take_over {
            self.take_over(&buckets);
        }
        let local = ReserveRequest {
            buckets: &buckets,
            ..request
        };
        Some(self.local.reserve(local).await)
    }

    /// Redis's `grant`, made to wait for the local `share` too, which was taken `elapsed`
    /// after the caller's count began.
    async fn with_share(
        &self,
        request: ReserveRequest<'_>,
        grant: Grant,
        share: Grant,
        elapsed: Duration,
    ) -> Result<Grant, StoreError> {
        match (grant, share) {
            (Grant::Ready { wait, ticket }, Grant::Ready { wait: local, .. }) => Ok(Grant::Ready {
                wait: wait.max(local + elapsed),
                ticket,
            }),
            // The share alone would wait too long: the place on Redis goes back, unless it
            // could start at once (such a place has nothing to undo, and stays spent).
            (Grant::Ready { ticket, .. }, share @ Grant::TooLong { .. }) => {
                if let Err(error) = self.release(request, &ticket).await {
                    tracing::debug!(%error, "could not give back a reservation on redis");
                }
                Ok(share.later_by(elapsed))
            }
            // Redis refused, or the share's scaled burst cannot hold the cost: Redis's
            // answer stands.
            (grant, _) => Ok(grant),
        }
    }

    async fn reserve_remote(&self, request: ReserveRequest<'_>) -> Result<Grant, Failure> {
        let max_wait = request.max_wait.map_or(-1, micros);
        let args = [i64::from(request.cost), max_wait];
        let (reply, round_trip) = self.call("reserve", request.buckets, &args).await?;
        let n = request.buckets.len();
        match reply.as_slice() {
            [0, wait, rest @ ..] if rest.len() == 3 * n => {
                let wait = duration(*wait);
                if wait.is_zero() {
                    return Ok(Grant::Ready {
                        wait,
                        ticket: Ticket::default(),
                    });
                }
                let (shifts, rest) = rest.split_at(n);
                let (seqs, flags) = rest.split_at(n);
                let ticket = Ticket {
                    shifts: shifts.iter().map(|&s| REMOTE | nanos(s)).collect(),
                    seqs: seqs
                        .iter()
                        .map(|&s| u64::try_from(s).unwrap_or(0))
                        .collect(),
                    deferred: mask(flags),
                };
                // The caller counts the wait from before this call, and Redis from when the
                // script ran: padding by the round trip keeps the start from coming early.
                let wait = wait + round_trip;
                Ok(Grant::Ready { wait, ticket })
            }
            &[1, wait, bucket] => Ok(Grant::TooLong {
                wait: duration(wait),
                bucket: index(bucket),
            }),
            &[2, bucket, limit] => Ok(Grant::Never {
                bucket: index(bucket),
                limit: index(limit),
            }),
            _ => Err(Failure::reply("reserve", &reply)),
        }
    }

    async fn release_remote(
        &self,
        request: ReserveRequest<'_>,
        ticket: &Ticket,
    ) -> Result<(), Failure> {
        let pairs = request.buckets.iter().zip(&ticket.seqs);
        let buckets: Vec<BucketRef<'_>> = pairs.clone().map(|(b, _)| *b).collect();
        let mut args = vec![i64::from(request.cost)];
        for (i, (_, &seq)) in pairs.enumerate() {
            let charged = i >= 64 || ticket.deferred & (1 << i) == 0;
            args.extend([i64::try_from(seq).unwrap_or(-1), i64::from(charged)]);
        }
        self.call("release", &buckets, &args).await.map(drop)
    }

    async fn moved_remote(
        &self,
        buckets: &[BucketRef<'_>],
        ticket: &Ticket,
    ) -> Result<Duration, Failure> {
        let (reply, _) = self.call("shift", buckets, &[]).await?;
        if reply.len() != buckets.len() {
            return Err(Failure::reply("shift", &reply));
        }
        let since = |(&now, &then): (&i64, &u64)| nanos(now).saturating_sub(then & !REMOTE);
        let moved = reply.iter().zip(&ticket.shifts).map(since).max();
        Ok(Duration::from_nanos(moved.unwrap_or(0)))
    }

    async fn adopt_remote(&self, bucket: BucketRef<'_>, report: Report) -> Result<(), Failure> {
        let Some(remaining) = report.remaining else {
            return Ok(());
        };
        let params: Vec<LimitParams> = bucket.limits.iter().map(LimitParams::from).collect();
        let view = ServerView {
            remaining: Some(remaining),
            reset_at: None,
            limit: report.limit,
            window: report.window.map(crate::clock::nanos),
        };
        let matching = gcra::matching_limit(&params, &view);
        let args = [
            i64::try_from(remaining).unwrap_or(i64::MAX),
            report.reset_after.map_or(-1, micros),
            matching.map_or(-1, |i| i64::try_from(i).unwrap_or(-1)),
        ];
        self.call("adopt", &[bucket], &args).await.map(drop)
    }

    async fn view_remote(&self, bucket: BucketRef<'_>) -> Result<BucketView, Failure> {
        let (reply, _) = self.call("view", &[bucket], &[]).await?;
        match reply.as_slice() {
            [blocked, pace, available @ ..] if available.len() == bucket.limits.len() => {
                Ok(BucketView {
                    available: available
                        .iter()
                        .map(|&a| a.max(0).cast_unsigned())
                        .collect(),
                    blocked_for: duration(*blocked),
                    pace_ppm: u32::try_from(*pace).unwrap_or(gcra::FULL_PACE),
                })
            }
            _ => Err(Failure::reply("view", &reply)),
        }
    }
}

impl RedisStoreBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            clock: None,
            credential: "anonymous".to_owned(),
            on_failure: OnFailure::Fail,
            timeout: Duration::from_millis(250),
            backoff: Duration::from_secs(1),
        }
    }

    /// The credential the quota belongs to (its hash names the keys; default
    /// `anonymous`). Clients of the same API key share one quota.
    pub fn credential(mut self, credential: &str) -> Self {
        self.credential = credential.to_owned();
        self
    }

    /// What to do while Redis is unreachable (default [`OnFailure::Fail`]).
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// How long one call may wait for Redis (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long to skip Redis after a failure before trying it again (default 1 s).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Reads the time from `clock` instead of the Redis server's `TIME`, in the script,
    /// for the padding of waits and in the local fallback store.
    ///
    /// Processes on several hosts should leave this unset: the Redis server's clock is
    /// the one they all share, and hosts' clocks drift apart. Set it when every process
    /// reads one host's clock, or in tests, with a clock the test moves itself. Call
    /// timeouts and back-offs stay on the real clock either way.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Builds the store; it connects on first use.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Client`] for a URL that is not a Redis URL, a share outside
    /// `(0, 1]`, or a zero timeout; for a cluster, also for an empty list of nodes or
    /// nodes whose passwords, usernames or databases differ.
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        let invalid = |message: String| Err(ConfigError::Client(message));
        if let OnFailure::Local { share } = self.on_failure
            && !(share > 0.0 && share <= 1.0)
        {
            return invalid(format!(
                "shared quota: local share {share} is not in (0, 1]"
            ));
        }
        if self.timeout.is_zero() {
            return invalid("shared quota: the redis call timeout is 0".to_owned());
        }
        let backend = match &self.target {
            Target::Node(url) => open_node(url)?,
            Target::Cluster(nodes) => open_cluster(nodes, self.timeout)?,
        };
        let digest = sha1_smol::Sha1::from(self.credential.as_bytes())
            .digest()
            .to_string();
        Ok(RedisStore {
            backend,
            local: self
                .clock
                .clone()
                .map_or_else(MemoryStore::new, MemoryStore::with_clock),
            clock: self.clock,
            script: redis::Script::new(SCRIPT),
            credential: digest[..16].to_owned(),
            on_failure: self.on_failure,
            timeout: self.timeout,
            backoff: self.backoff,
            retry_at: Mutex::new(None),
            handover: Mutex::default(),
            fallbacks: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client is left out: its connection info holds the password.
        f.debug_struct("RedisStore")
            .field("cluster", &self.is_cluster())
            .field("credential_hash", &self.credential)
            .field("on_failure", &self.on_failure)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("target", &self.target)
            .field("on_failure", &self.on_failure)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl QuotaStore for RedisStore {
    /// Reserves on Redis, or on the local store by the failure policy.
    ///
    /// The local store takes over spent: a bucket's first local reservation in an outage
    /// waits one interval of each limit, as Redis's count may have run to the end of the
    /// burst just before. For one back-off after Redis answers again, a request takes its
    /// local share first and waits for its slot there before Redis places it: the fleet's
    /// other processes may still be on their shares until their own back-offs end, and
    /// Redis's count does not hold what they spend there. A request with a `max_wait`, and
    /// the call that ends the outage, take the share after Redis instead, and wait for the
    /// later of the two.
    ///
    /// Every wait counts from this call: time spent here (a failed call to Redis, a share's
    /// slot) pads it, as the caller counts from before the call.
    fn reserve<'a>(&'a self, request: ReserveRequest<'a>) -> StoreFuture<'a, Grant> {
        Box::pin(async move {
            let began = tokio::time::Instant::now();
            let mut share = None;
            let share_first = request.max_wait.is_none() && self.rejoining();
            if share_first {
                // A share that cannot hold the cost (its scaled burst is too small)
                // leaves Redis to decide alone.
                let share_grant = self.reserve_share(request, false).await.transpose()?;
                if let Some(Grant::Ready { wait, ticket }) = share_grant {
                    tracing::trace!(
                        wait_us = wait.as_micros() as u64,
                        "redis back within a back-off; waiting for this process's share first"
                    );
                    tokio::time::sleep(wait).await;
                    share = Some(ticket);
                }
            }
            let failure = match self.reserve_remote(request).await {
                Ok(grant) if share.is_some() => return Ok(grant.later_by(began.elapsed())),
                // Not tried yet: the call had a `max_wait`, or it ended the outage itself.
                Ok(grant) if !share_first && self.rejoining() => {
                    let share = self.reserve_share(after(request, began), false);
                    let share = share.await.transpose()?;
                    return match share {
                        Some(share) => {
                            let elapsed = began.elapsed();
                            self.with_share(request, grant, share, elapsed).await
                        }
                        None => Ok(grant),
                    };
                }
                Ok(grant) => return Ok(grant),
                Err(failure) => failure,
            };
            if let Some(ticket) = share {
                let wait = began.elapsed();
                return Ok(Grant::Ready { wait, ticket });
            }
            let local = self.reserve_share(after(request, began), true);
            let grant = local.await.ok_or(failure)??;
            Ok(grant.later_by(began.elapsed()))
        })
    }

    fn release<'a>(
        &'a self,
        request: ReserveRequest<'a>,
        ticket: &'a Ticket,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if ticket.seqs.is_empty() {
                return Ok(());
            }
            if !is_local(self, ticket) {
                return match self.release_remote(request, ticket).await {
                    // Unreleased, the quota stays spent: more careful, never less.
                    Err(failure) if self.local_limits(request.buckets).is_none() => {
                        Err(failure.into())
                    }
                    _ => Ok(()),
                };
            }
            let limits = self.local_limits(request.buckets).ok_or(Failure::Skipped)?;
            let buckets = local_refs(request.buckets, &limits);
            let local = ReserveRequest {
                buckets: &buckets,
                ..request
            };
            self.local.release(local, ticket).await
        })
    }

    fn moved_by<'a>(
        &'a self,
        buckets: &'a [BucketRef<'a>],
        ticket: &'a Ticket,
    ) -> StoreFuture<'a, Duration> {
        Box::pin(async move {
            if !is_local(self, ticket) {
                return match self.moved_remote(buckets, ticket).await {
                    Ok(moved) => Ok(moved),
                    // Redis's pauses cannot be read; the local store takes over from here.
                    Err(_) if self.local_limits(buckets).is_some() => Ok(Duration::ZERO),
                    Err(failure) => Err(failure.into()),
                };
            }
            let limits = self.local_limits(buckets).ok_or(Failure::Skipped)?;
            self.local
                .moved_by(&local_refs(buckets, &limits), ticket)
                .await
        })
    }

    fn pause<'a>(
        &'a self,
        buckets: &'a [BucketRef<'a>],
        delay: Duration,
        slow_down: bool,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let args = [micros(delay), i64::from(slow_down)];
            let failure = match self.call("pause", buckets, &args).await {
                Ok((reply, _)) => return Ok(reply.first() == Some(&1)),
                Err(failure) => failure,
            };
            let limits = self.local_limits(buckets).ok_or(failure)?;
            let local = local_refs(buckets, &limits);
            self.local.pause(&local, delay, slow_down).await
        })
    }

    fn delay<'a>(
        &'a self,
        bucket: BucketRef<'a>,
        shift: Duration,
        cause: ShiftCause,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let args = [micros(shift), i64::from(cause == ShiftCause::Resent)];
            let failure = match self.call("delay", &[bucket], &args).await {
                Ok(_) => return Ok(()),
                Err(failure) => failure,
            };
            let limits = self.local_limits(&[bucket]).ok_or(failure)?;
            for local in local_refs(&[bucket], &limits) {
                self.local.delay(local, shift, cause).await?;
            }
            Ok(())
        })
    }

    fn adopt<'a>(&'a self, bucket: BucketRef<'a>, report: Report) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let failure = match self.adopt_remote(bucket, report).await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            let limits = self.local_limits(&[bucket]).ok_or(failure)?;
            for local in local_refs(&[bucket], &limits) {
                self.local.adopt(local, report).await?;
            }
            Ok(())
        })
    }

    fn recover<'a>(&'a self, bucket: BucketRef<'a>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let failure = match self.call("recover", &[bucket], &[]).await {
                Ok(_) => return Ok(()),
                Err(failure) => failure,
            };
            let limits = self.local_limits(&[bucket]).ok_or(failure)?;
            for local in local_refs(&[bucket], &limits) {
                self.local.recover(local).await?;
            }
            Ok(())
        })
    }

    fn view<'a>(&'a self, bucket: BucketRef<'a>) -> StoreFuture<'a, BucketView> {
        Box::pin(async move {
            let failure = match self.view_remote(bucket).await {
                Ok(view) => return Ok(view),
                Err(failure) => failure,
            };
            let limits = self.local_limits(&[bucket]).ok_or(failure)?;
            match local_refs(&[bucket], &limits).first() {
                Some(local) => self.local.view(*local).await,
                None => Ok(BucketView::default()),
            }
        })
    }
}

/// `request` with what is left of its `max_wait` once the time since `began` is spent.
fn after(request: ReserveRequest<'_>, began: tokio::time::Instant) -> ReserveRequest<'_> {
    let spent = began.elapsed();
    ReserveRequest {
        max_wait: request.max_wait.map(|max| max.saturating_sub(spent)),
        ..request
    }
}

/// The server or servers a store talks to, with the connection made on first use.
enum Backend {
    /// One server, through a manager that reconnects after a restart.
    Node {
        client: redis::Client,
        connection: OnceCell<ConnectionManager>,
    },
    /// A Redis Cluster, through a connection that follows each slot to its node.
    Cluster {
        // Boxed: its settings are several times the size of the single-node client.
        client: Box<ClusterClient>,
        connection: OnceCell<ClusterConnection>,
    },
}

/// Where a builder's store will live, as the caller named it.
#[derive(Clone)]
enum Target {
    Node(String),
    Cluster(Vec<String>),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(url) => f.debug_tuple("Node").field(&redacted(url)).finish(),
            Self::Cluster(nodes) => {
                let nodes: Vec<String> = nodes.iter().map(|url| redacted(url)).collect();
                f.debug_tuple("Cluster").field(&nodes).finish()
            }
        }
    }
}

/// Reservations are small writes that several tasks pipeline on one connection: with
/// Nagle's algorithm on, one can sit behind another's unacknowledged segment for a
/// delayed-ACK period (about 40 ms on Linux), long enough to send requests late in a
/// bunch and cost 429s later on.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

fn open_node(url: &str) -> Result<Backend, ConfigError> {
    let info = url.into_connection_info().map_err(|e| bad_url(url, &e))?;
    let client = redis::Client::open(info.set_tcp_settings(tcp_settings()));
    let client = client.map_err(|e| bad_url(url, &e))?;
    Ok(Backend::Node {
        client,
        connection: OnceCell::new(),
    })
}

fn open_cluster(nodes: &[String], timeout: Duration) -> Result<Backend, ConfigError> {
    if nodes.is_empty() {
        let message = "shared quota: no redis cluster node given".to_owned();
        return Err(ConfigError::Client(message));
    }
    let mut infos = Vec::with_capacity(nodes.len());
    for url in nodes {
        infos.push(
            url.as_str()
                .into_connection_info()
                .map_err(|e| bad_url(url, &e))?,
        );
    }
    let built = ClusterClient::builder(infos)
        .tcp_settings(tcp_settings())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build();
    let client = built.map_err(|error| {
        let nodes: Vec<String> = nodes.iter().map(|url| redacted(url)).collect();
        let nodes = nodes.join(", ");
        ConfigError::Client(format!(
            "shared quota: redis cluster nodes `{nodes}` are invalid: {error}"
        ))
    })?;
    Ok(Backend::Cluster {
        client: Box::new(client),
        connection: OnceCell::new(),
    })
}

fn bad_url(url: &str, error: &redis::RedisError) -> ConfigError {
    let url = redacted(url);
    ConfigError::Client(format!(
        "shared quota: redis url `{url}` is invalid: {error}"
    ))
}

/// Runs `invocation`, twice when the connection was lost: the first try after a restart
/// only learns that the old connection is gone.
async fn invoke<C>(invocation: &ScriptInvocation<'_>, connection: &mut C) -> RedisResult<Vec<i64>>
where
    C: redis::aio::ConnectionLike,
{
    match invocation.invoke_async(connection).await {
        Err(error) if error.is_io_error() || error.is_unrecoverable_error() => {
            invocation.invoke_async(connection).await
        }
        other => other,
    }
}

/// `buckets` with the local store's limits.
fn local_refs<'l>(buckets: &[BucketRef<'l>], limits: &'l [Vec<Limit>]) -> Vec<BucketRef<'l>> {
    let pairs = buckets.iter().zip(limits);
    pairs
        .map(|(b, limits)| BucketRef { key: b.key, limits })
        .collect()
}

/// Why a call was not answered by Redis.
#[derive(Debug)]
enum Failure {
    /// Skipped during the back-off after an earlier failure.
    Skipped,
    /// Failed now.
    Error(String),
}

impl Failure {
    fn reply(op: &str, reply: &[i64]) -> Self {
        Self::Error(format!("unexpected reply to `{op}`: {reply:?}"))
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        Self(failure.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Skipped => f.write_str("redis quota store unavailable (backing off)"),
            Self::Error(error) => write!(f, "redis quota store: {error}"),
        }
    }
}

/// A script's reply, with the call's round trip.
type Remote = Result<(Vec<i64>, Duration), Failure>;

/// The credential a client's quota belongs to, for [`RedisStoreBuilder::credential`].
pub(crate) fn credential_of(auth: &Auth) -> String {
    match auth {
        Auth::None => "anonymous".to_owned(),
        Auth::Bearer(token) => token.expose().to_owned(),
        Auth::Basic { user, password } => format!("{user}:{}", password.expose()),
        Auth::Header { value, .. } | Auth::Query { value, .. } => value.expose().to_owned(),
    }
}

/// The store behind [`ClientBuilder::shared_quota`](crate::ClientBuilder::shared_quota):
/// half the quota locally while Redis is away.
pub(crate) fn for_client(
    url: &str,
    auth: &Auth,
    on_failure: OnFailure,
) -> Result<RedisStore, ConfigError> {
    RedisStore::builder(url)
        .credential(&credential_of(auth))
        .on_failure(on_failure)
        .build()
}

/// Whether `ticket` came from the local store.
fn is_local(store: &RedisStore, ticket: &Ticket) -> bool {
    let remote = ticket.shifts.first().is_some_and(|s| s & REMOTE != 0);
    matches!(store.on_failure, OnFailure::Local { .. }) && !remote
}

/// A limit's script arguments: its count, then interval (µs, rounded up), burst and period.
fn limit_args(limits: &[Limit]) -> Vec<i64> {
    let mut args = vec![i64::try_from(limits.len()).unwrap_or(0)];
    for limit in limits {
        let interval = LimitParams::from(limit).interval.div_ceil(1_000);
        args.extend([
            i64::try_from(interval).unwrap_or(i64::MAX),
            i64::from(limit.burst()),
            micros(limit.period()),
        ]);
    }
    args
}

/// `limit` cut to `share` of its count and burst, at least 1 of each.
fn scale(limit: &Limit, share: f64) -> Limit {
    let cut = |n: u32| ((f64::from(n) * share).floor() as u32).max(1);
    Limit::new(cut(limit.count()), limit.period())
        .and_then(|l| l.with_burst(cut(limit.burst())))
        .unwrap_or(*limit)
}

/// Microseconds, rounded up so a delay never shrinks.
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_nanos().div_ceil(1_000)).unwrap_or(i64::MAX)
}

fn duration(micros: i64) -> Duration {
    Duration::from_micros(micros.max(0).cast_unsigned())
}

/// Microseconds from the epoch to `wall`, 0 before it.
fn epoch_micros(wall: std::time::SystemTime) -> u128 {
    wall.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros())
}

fn nanos(micros: i64) -> u64 {
    micros.max(0).cast_unsigned().saturating_mul(1_000) & !REMOTE
}

fn index(i: i64) -> usize {
    usize::try_from(i).unwrap_or(0)
}

/// The deferred mask from one flag per bucket.
fn mask(flags: &[i64]) -> u64 {
    let set = flags.iter().take(64).enumerate().filter(|(_, f)| **f != 0);
    set.fold(0, |mask, (i, _)| mask | 1 << i)
}

/// `url` with its password hidden.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparsable)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_hash_tag_and_hide_the_credential() {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .credential("secret-token")
            .build()
            .unwrap();
        let key = store.key("github:search");
        assert!(key.starts_with("polvo:{github:"), "{key}");
        assert!(key.ends_with("}:search"), "{key}");
        assert!(!key.contains("secret"));
        assert_eq!(key.len(), "polvo:{github:}:search".len() + 16);
    }

    #[test]
    fn rejects_bad_settings_without_echoing_the_password() {
        let share = RedisStore::builder("redis://127.0.0.1")
            .on_failure(OnFailure::Local { share: 1.5 })
            .build();
        assert!(share.unwrap_err().to_string().contains("1.5"));
        let url = RedisStore::builder("http://:hunter2@example.com").build();
        let message = url.unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn cluster_nodes_are_checked_without_echoing_passwords() {
        let empty = RedisStore::cluster_builder(Vec::<String>::new()).build();
        let message = empty.unwrap_err().to_string();
        assert!(message.contains("no redis cluster node"), "{message}");

        let nodes = ["redis://:hunter2@127.0.0.1:1", "redis://:other@127.0.0.1:2"];
        let message = RedisStore::cluster_builder(nodes)
            .build()
            .unwrap_err()
            .to_string();
        assert!(message.contains("password"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");

        let builder = RedisStore::cluster_builder(["redis://:hunter2@127.0.0.1:1"]);
        assert!(!format!("{builder:?}").contains("hunter2"));
        let store = builder.credential("k").build().unwrap();
        assert!(store.is_cluster());
        assert!(store.key("svc:b").starts_with("polvo:{svc:"));
        assert!(
            !RedisStore::builder("redis://127.0.0.1:1")
                .build()
                .unwrap()
                .is_cluster()
        );
    }

    #[test]
    fn scales_limits_to_a_share_of_at_least_one() {
        let limit = Limit::per_second(100).unwrap().with_burst(10).unwrap();
        let half = scale(&limit, 0.5);
        assert_eq!((half.count(), half.burst()), (50, 5));
        let tiny = scale(&Limit::per_hour(1).unwrap(), 0.1);
        assert_eq!((tiny.count(), tiny.burst()), (1, 1));
    }

    #[test]
    fn mask_and_ticket_marks() {
        assert_eq!(mask(&[0, 1, 1]), 0b110);
        assert_eq!(nanos(5), 5_000);
        assert_eq!((REMOTE | nanos(5)) & !REMOTE, 5_000);
    }
}
