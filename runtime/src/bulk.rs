//! Bulk runs: many calls of one operation, pushed through at the highest rate its limits
//! allow, with nothing lost.
//!
//! Design note (2026-12): the engine keeps exactly as many calls in flight as the limits
//! can use, by Little's law: the operation's sustained rate (from the limiter, at its
//! current pace) times the observed service time of a call (its latency minus the time it
//! waited for quota), plus one. Fewer would leave quota unused while responses travel;
//! more would only queue inside the limiter. The service's and buckets' caps on requests
//! in flight bound it, and so does [`BulkOptions::max_concurrency`]. An operation without
//! limits runs at that cap.
//!
//! The first call of a limited run goes alone, and the others start once it has
//! returned. A first call often opens a new connection, and a process's first request
//! pays its one-time set-ups too: in the bulk benchmark it reached the server 6 to 9 ms
//! after it was sent, where later ones took under 0.4 ms. A second call sent on its slot
//! then arrived right behind it, which a strict server counts as a burst: half the runs
//! began with a 429, and with `Retry-After: 1` a second's pause. Waiting costs one call's
//! latency, once.
//!
//! Every input item gets exactly one [`Outcome`]: its result, its error together with the
//! item, or "not attempted" with the item after a stop or a cancellation, so a run can be
//! resumed with exactly the items that still need it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, Stream, StreamExt};
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::Error;

/// The concurrency used when no limit and no cap says otherwise.
const DEFAULT_CONCURRENCY: usize = 32;
/// Weight of the newest sample in the service-time average.
const EWMA_WEIGHT: f64 = 0.2;
/// How many of the latest calls the current rate in [`Progress`] is measured over.
const RATE_WINDOW: usize = 64;

tokio::task_local! {
    /// Time the current bulk call spent waiting for quota, filled in by the client.
    static QUOTA_WAIT: Cell<Duration>;
}

/// Adds `waited` to the current bulk call's quota wait, when inside one.
pub(crate) fn record_quota_wait(waited: Duration) {
    let _ = QUOTA_WAIT.try_with(|cell| cell.set(cell.get() + waited));
}

/// What a run does when a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Go on with the other items; failures are reported with their items.
    #[default]
    Continue,
    /// Start no new call after the first failure; calls in flight finish.
    Stop,
}

/// Where a run stands, passed to the progress callback after every call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Calls finished, failures included.
    pub done: usize,
    /// Calls that failed.
    pub failed: usize,
    /// Items in all, when the input knows its length.
    pub total: Option<usize>,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Calls finished per second, over the latest 64 calls (over the whole run before
    /// that many finished).
    pub rate: f64,
    /// Estimated time left, when the total is known.
    pub eta: Option<Duration>,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// A handle that cancels a run: calls in flight finish, no new one starts.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    cancelled: Arc<AtomicBool>,
}

impl Cancel {
    /// A handle not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every run holding a clone of this handle.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// How a bulk run behaves.
#[derive(Default)]
pub struct BulkOptions {
    on_error: OnError,
    max_concurrency: Option<usize>,
    progress: Option<ProgressFn>,
    cancel: Option<Cancel>,
}

impl fmt::Debug for BulkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkOptions")
            .field("on_error", &self.on_error)
            .field("max_concurrency", &self.max_concurrency)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl BulkOptions {
    /// Continue on errors, concurrency sized from the limits, no progress callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// What to do when a call fails.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Never more than `max` calls in flight (at least 1), in place of the policy's
    /// [`bulk_max_concurrency`](crate::Policy::bulk_max_concurrency).
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = Some(max.max(1));
        self
    }

    /// Calls `progress` after every finished call.
    pub fn progress(mut self, progress: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Stops the run when `cancel` is cancelled.
    pub fn cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }
}

/// What became of one input item.
#[derive(Debug)]
pub enum ItemResult<I, T> {
    /// The call succeeded.
    Done(T),
    /// The call failed; the item is kept to try again.
    Failed {
        /// The item.
        item: I,
        /// The error.
        error: Error,
    },
    /// The run stopped or was cancelled before this item was tried.
    NotAttempted(I),
}

/// One input item's outcome.
#[derive(Debug)]
pub struct Outcome<I, T> {
    /// The item's position in the input, from 0.
    pub index: usize,
    /// What became of it.
    pub result: ItemResult<I, T>,
}

/// The outcome of every input item of a run, in input order.
#[derive(Debug)]
pub struct BulkReport<I, T> {
    /// One entry per input item, in input order.
    pub outcomes: Vec<Outcome<I, T>>,
    /// Whether the run stopped at a failure.
    pub stopped: bool,
    /// Whether the run was cancelled.
    pub cancelled: bool,
    /// How long the run took.
    pub elapsed: Duration,
}

impl<I, T> BulkReport<I, T> {
    /// Items whose call succeeded.
    pub fn succeeded(&self) -> usize {
        self.count(|r| matches!(r, ItemResult::Done(_)))
    }

    /// Items whose call failed.
    pub fn failed(&self) -> usize {
        self.count(|r| matches!(r, ItemResult::Failed { .. }))
    }

    /// Items never tried.
    pub fn not_attempted(&self) -> usize {
        self.count(|r| matches!(r, ItemResult::NotAttempted(_)))
    }

    /// Whether every call succeeded.
    pub fn is_complete(&self) -> bool {
        self.succeeded() == self.outcomes.len()
    }

    /// The items still to do (failed or never tried), in input order, to resume a run.
    pub fn into_remaining(self) -> Vec<I> {
        let remaining = self.outcomes.into_iter().filter_map(|o| match o.result {
            ItemResult::Done(_) => None,
            ItemResult::Failed { item, .. } | ItemResult::NotAttempted(item) => Some(item),
        });
        remaining.collect()
    }

    fn count(&self, matches: impl Fn(&ItemResult<I, T>) -> bool) -> usize {
        self.outcomes.iter().filter(|o| matches(&o.result)).count()
    }
}

/// A bulk run of one operation; see [`Client::bulk`].
#[derive(Debug)]
pub struct Bulk {
    client: Client,
    operation: &'static str,
    options: BulkOptions,
}

impl Client {
    /// Starts a bulk run of `operation` (its operation id, which decides the limits that
    /// size the run).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use polvo_runtime::{Client, Method, Policy, Request};
    /// use polvo_runtime::bulk::{BulkOptions, OnError};
    ///
    /// # async fn run(client: Client) {
    /// let ids: Vec<String> = (0..2000).map(|i| format!("cus_{i}")).collect();
    /// let options = BulkOptions::new()
    ///     .on_error(OnError::Continue)
    ///     .progress(|p| eprintln!("{}/{:?} at {:.0}/s", p.done, p.total, p.rate));
    /// let report = client
    ///     .bulk("PostCustomersCustomer")
    ///     .options(options)
    ///     .run(ids, |client, id| async move {
    ///         let op = "PostCustomersCustomer";
    ///         let request = Request::new(Method::POST, "/v1/customers/{id}", op)
    ///             .path("id", &id)
    ///             .form(&[("metadata[synced]", "true")]);
    ///         client.execute(request).await
    ///     })
    ///     .await;
    /// println!("{} done, {} failed", report.succeeded(), report.failed());
    /// let retry_later = report.into_remaining();
    /// # }
    /// ```
    pub fn bulk(&self, operation: &'static str) -> Bulk {
        Bulk {
            client: self.clone(),
            operation,
            options: BulkOptions::default(),
        }
    }
}

impl Bulk {
    /// Sets the run's options.
    pub fn options(mut self, options: BulkOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs `call` for every item and reports every item's outcome, in input order.
    ///
    /// `call` gets a clone of the client and of the item; the item itself is kept until
    /// its call succeeds, so failures and untried items come back in the report.
    pub async fn run<I, T, F, Fut>(
        self,
        items: impl IntoIterator<Item = I>,
        call: F,
    ) -> BulkReport<I, T>
    where
        I: Clone,
        F: FnMut(Client, I) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut items = items.into_iter();
        let mut engine = Engine::new(self, exact_len(&items), call);
        let mut outcomes = Vec::with_capacity(engine.total.unwrap_or(0));
        loop {
            while engine.wants_more() {
                let Some(item) = items.next() else { break };
                engine.launch(item);
            }
            match engine.next_finished().await {
                Some(outcome) => outcomes.push(outcome),
                None => break,
            }
        }
        // Whatever was not started is reported too: nothing is dropped.
        let untried = items.enumerate().map(|(offset, item)| Outcome {
            index: engine.next_index + offset,
            result: ItemResult::NotAttempted(item),
        });
        outcomes.extend(untried);
        outcomes.sort_by_key(|o| o.index);
        BulkReport {
            outcomes,
            stopped: engine.stopped,
            cancelled: engine.cancelled(),
            elapsed: engine.started.elapsed(),
        }
    }

    /// Runs `call` for every item of a stream and yields outcomes as calls finish, with
    /// memory bounded by the calls in flight. After a stop or a cancellation the stream
    /// ends without pulling more input; pass `input.by_ref()` to keep what is left.
    pub fn stream<I, T, F, Fut, S>(self, input: S, call: F) -> impl Stream<Item = Outcome<I, T>>
    where
        I: Clone,
        F: FnMut(Client, I) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
        S: Stream<Item = I> + Unpin,
    {
        let (low, high) = input.size_hint();
        let total = (Some(low) == high).then_some(low);
        let engine = Engine::new(self, total, call);
        futures_util::stream::unfold(
            (engine, input, false),
            |(mut engine, mut input, mut exhausted)| async move {
                while !exhausted && engine.wants_more() {
                    match input.next().await {
                        Some(item) => engine.launch(item),
                        None => exhausted = true,
                    }
                }
                let outcome = engine.next_finished().await?;
                Some((outcome, (engine, input, exhausted)))
            },
        )
    }
}

fn exact_len<It: Iterator>(items: &It) -> Option<usize> {
    let (low, high) = items.size_hint();
    (Some(low) == high).then_some(low)
}

/// The state of a run, shared by the collecting and the streaming forms.
struct Engine<I, T, F, Fut: Future> {
    client: Client,
    operation: &'static str,
    options: BulkOptions,
    call: F,
    in_flight: FuturesUnordered<Call<I, Fut>>,
    next_index: usize,
    done: usize,
    failed: usize,
    total: Option<usize>,
    stopped: bool,
    service_time: Option<f64>,
    started: Instant,
    /// When the latest calls finished, oldest first, for the current rate.
    recent: VecDeque<Instant>,
    _result: std::marker::PhantomData<fn() -> T>,
}

pin_project_lite::pin_project! {
    /// One call in flight: the caller's future inside the task-local that collects its
    /// quota wait, and its item.
    ///
    /// A named type rather than a boxed `dyn Future`, so that a run is `Send` exactly
    /// when the caller's futures are, without a `Send` bound: proving `Send` where it is
    /// not needed overflows rustc's recursion limit on deeply nested API types (Stripe's
    /// full spec).
    struct Call<I, Fut: Future> {
        index: usize,
        started: Instant,
        item: Option<I>,
        #[pin]
        inner: TaskLocalFuture<Cell<Duration>, Fut>,
    }
}

impl<I, Fut: Future> Future for Call<I, Fut> {
    type Output = Finished<I, Fut::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Without its item the call has finished already, and a finished future may
        // stay pending when polled again.
        if this.item.is_none() {
            return Poll::Pending;
        }
        let result = std::task::ready!(this.inner.as_mut().poll(cx));
        let waited = this
            .inner
            .take_value()
            .map_or(Duration::ZERO, Cell::into_inner);
        let Some(item) = this.item.take() else {
            return Poll::Pending;
        };
        Poll::Ready(Finished {
            index: *this.index,
            item,
            result,
            service: this.started.elapsed().saturating_sub(waited),
        })
    }
}

struct Finished<I, R> {
    index: usize,
    item: I,
    result: R,
    service: Duration,
}

impl<I, T, F, Fut> Engine<I, T, F, Fut>
where
    I: Clone,
    F: FnMut(Client, I) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    fn new(bulk: Bulk, total: Option<usize>, call: F) -> Self {
        Self {
            client: bulk.client,
            operation: bulk.operation,
            options: bulk.options,
            call,
            in_flight: FuturesUnordered::new(),
            next_index: 0,
            done: 0,
            failed: 0,
            total,
            stopped: false,
            service_time: None,
            started: Instant::now(),
            recent: VecDeque::with_capacity(RATE_WINDOW),
            _result: std::marker::PhantomData,
        }
    }

    fn cancelled(&self) -> bool {
        self.options
            .cancel
            .as_ref()
            .is_some_and(Cancel::is_cancelled)
    }

    /// Calls in flight the limits can use now.
    fn target(&self) -> usize {
        let limiter = self.client.limiter();
        // The run's own cap replaces the policy's bulk default.
        let bulk_cap = self
            .options
            .max_concurrency
            .or(self.client.policy().bulk_max_concurrency());
        let cap = [bulk_cap, limiter.in_flight_cap(self.operation)]
            .into_iter()
            .flatten()
            .min();
        let wanted = match (limiter.rate(self.operation), self.service_time) {
            (Some(rate), Some(service)) => (rate * service).ceil() as usize + 1,
            // The first call goes alone (see the module's notes) and measures the service
            // time.
            (Some(_), None) => 1,
            (None, _) => DEFAULT_CONCURRENCY,
        };
        wanted.clamp(1, cap.unwrap_or(usize::MAX))
    }

    fn wants_more(&self) -> bool {
        !self.stopped && !self.cancelled() && self.in_flight.len() < self.target()
    }

    /// Waits for the next call in flight to finish; `None` when none is in flight.
    async fn next_finished(&mut self) -> Option<Outcome<I, T>> {
        let finished = self.in_flight.next().await?;
        Some(self.record(finished))
    }

    fn launch(&mut self, item: I) {
        let index = self.next_index;
        self.next_index += 1;
        let call = (self.call)(self.client.clone(), item.clone());
        self.in_flight.push(Call {
            index,
            started: Instant::now(),
            item: Some(item),
            inner: QUOTA_WAIT.scope(Cell::new(Duration::ZERO), call),
        });
    }

    fn record(&mut self, finished: Finished<I, Result<T, Error>>) -> Outcome<I, T> {
        let sample = finished.service.as_secs_f64();
        self.service_time = Some(match self.service_time {
            Some(average) => average + EWMA_WEIGHT * (sample - average),
            None => sample,
        });
        self.done += 1;
        let result = match finished.result {
            Ok(value) => ItemResult::Done(value),
            Err(error) => {
                self.failed += 1;
                if self.options.on_error == OnError::Stop {
                    self.stopped = true;
                }
                let (operation, index) = (self.operation, finished.index);
                tracing::debug!(operation, index, %error, "bulk item failed");
                ItemResult::Failed {
                    item: finished.item,
                    error,
                }
            }
        };
        self.report_progress();
        Outcome {
            index: finished.index,
            result,
        }
    }

    /// Calls finished per second over the latest [`RATE_WINDOW`] calls; over the whole
    /// run until that many have finished.
    fn current_rate(&self, now: Instant) -> f64 {
        let (calls, since) = match self.recent.front() {
            Some(first) if self.recent.len() == RATE_WINDOW => (RATE_WINDOW - 1, *first),
            _ => (self.done, self.started),
        };
        let seconds = (now - since).as_secs_f64();
        if seconds > 0.0 {
            calls as f64 / seconds
        } else {
            0.0
        }
    }

    fn report_progress(&mut self) {
        if self.options.progress.is_none() {
            return;
        }
        let now = Instant::now();
        if self.recent.len() == RATE_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(now);

        let rate = self.current_rate(now);
        let eta = self
            .total
            .filter(|_| rate > 0.0)
            .map(|total| Duration::from_secs_f64(total.saturating_sub(self.done) as f64 / rate));
        let report = Progress {
            done: self.done,
            failed: self.failed,
            total: self.total,
            in_flight: self.in_flight.len(),
            rate,
            eta,
            elapsed: now - self.started,
        };
        if let Some(progress) = self.options.progress.as_mut() {
            progress(&report);
        }
    }
}
