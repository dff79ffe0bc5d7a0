//! Acquire overhead: polvo's limiter beside governor, uncontended and with 2 and 8 tasks.
//!
//! Both limiters get a limit far above the request rate, so every acquire is admitted and
//! what is measured is the bookkeeping alone. Criterion prints its own statistics; the
//! summary at the end prints polvo's time per acquire as a ratio of governor's, from rounds
//! that run the two in turns.
//!
//! Reading the clock is a large share of either: governor reads the TSC through quanta by
//! default, polvo reads the OS clock (what tokio's clock is outside tests). The summary
//! runs both limiters on both clocks, so each ratio compares like with like.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion};
use governor::clock::{MonotonicClock, QuantaClock, ReasonablyRealtime};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use polvo_runtime::{Clock, Limit, Limiter, MemoryStore, Policy, StdClock};
use tokio::runtime::Runtime;

/// polvo's clock on the TSC, as governor's is, mapped onto tokio's instants.
#[derive(Debug)]
struct TscClock {
    tsc: quanta::Clock,
    anchor: quanta::Instant,
    anchor_raw: u64,
    anchor_tokio: tokio::time::Instant,
    anchor_wall: SystemTime,
}

impl TscClock {
    fn new() -> Self {
        let tsc = quanta::Clock::new();
        let anchor = tsc.now();
        let anchor_raw = tsc.raw();
        let anchor_tokio = tokio::time::Instant::from_std(Instant::now());
        Self {
            tsc,
            anchor,
            anchor_raw,
            anchor_tokio,
            anchor_wall: SystemTime::now(),
        }
    }
}

impl Clock for TscClock {
    fn now(&self) -> tokio::time::Instant {
        self.anchor_tokio + self.tsc.now().duration_since(self.anchor)
    }

    fn wall(&self) -> SystemTime {
        self.anchor_wall + self.tsc.now().duration_since(self.anchor)
    }

    fn nanos(&self) -> u64 {
        self.tsc.delta_as_nanos(self.anchor_raw, self.tsc.raw())
    }
}

/// Admits far more than any loop here can ask for: one unit per nanosecond, with a burst
/// of a second's worth, as governor's quota below has a burst of its whole count.
///
/// The OS clock stands in for the default `TokioClock`: it is what tokio reads in a
/// build without `test-util`, which this benchmark cannot leave out (the tests need it).
fn polvo(clock: Arc<dyn Clock>) -> Limiter {
    let per_nanosecond = 1_000_000_000;
    let limit = Limit::new(per_nanosecond, Duration::from_secs(1))
        .and_then(|limit| limit.with_burst(per_nanosecond))
        .expect("valid limit");
    let policy = Policy::builder()
        .bucket("default", [limit])
        .build()
        .expect("valid policy");
    let store = Arc::new(MemoryStore::with_clock(clock.clone()));
    Limiter::with_store("bench", &policy, store, clock).expect("limiter")
}

fn os_clock() -> Arc<dyn Clock> {
    Arc::new(StdClock::new())
}

type Governor<C> = Arc<
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as governor::clock::Clock>::Instant>>,
>;

fn governor<C: ReasonablyRealtime + Default>() -> Governor<C> {
    let quota = Quota::per_second(NonZeroU32::MAX);
    Arc::new(RateLimiter::direct_with_clock(quota, C::default()))
}

/// Runs `iters` acquires split over `tasks` tasks and returns the elapsed time.
fn run_polvo(rt: &Runtime, limiter: &Limiter, tasks: u64, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    for _ in 0..iters / tasks {
                        let permit = limiter.acquire("op").await.expect("admitted");
                        std::hint::black_box(permit);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        start.elapsed()
    })
}

fn run_governor<C>(rt: &Runtime, limiter: &Governor<C>, tasks: u64, iters: u64) -> Duration
where
    C: ReasonablyRealtime + Send + Sync + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    for _ in 0..iters / tasks {
                        limiter.until_ready().await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        start.elapsed()
    })
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn overhead(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("acquire");
    for tasks in [1u64, 2, 8] {
        let limiter = polvo(os_clock());
        group.bench_with_input(BenchmarkId::new("polvo", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| run_polvo(&rt, &limiter, tasks, iters.max(tasks)))
        });
        let limiter = governor::<QuantaClock>();
        group.bench_with_input(BenchmarkId::new("governor", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| run_governor(&rt, &limiter, tasks, iters.max(tasks)))
        });
    }
    group.finish();
}

/// Rounds of each pairing in the summary.
const ROUNDS: usize = 7;

/// Medians over [`ROUNDS`] rounds of `iters` acquires each: polvo's and governor's time per
/// acquire in nanoseconds, and the median of the rounds' ratios.
///
/// Each round runs both, in turns (polvo first in even rounds, governor first in odd),
/// so drift in the machine's speed over the run, and any cost of going first or second,
/// falls on both sides alike instead of on whichever runs all its rounds later.
fn paired(
    mut polvo: impl FnMut() -> Duration,
    mut governor: impl FnMut() -> Duration,
    iters: u64,
) -> (f64, f64, f64) {
    let per_acquire = |elapsed: Duration| elapsed.as_nanos() as f64 / iters as f64;
    let rounds: Vec<(f64, f64)> = (0..ROUNDS)
        .map(|round| {
            if round % 2 == 0 {
                let p = per_acquire(polvo());
                (p, per_acquire(governor()))
            } else {
                let g = per_acquire(governor());
                (per_acquire(polvo()), g)
            }
        })
        .collect();
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let polvo_ns = median(rounds.iter().map(|(p, _)| *p).collect());
    let governor_ns = median(rounds.iter().map(|(_, g)| *g).collect());
    let ratio = median(rounds.iter().map(|(p, g)| p / g).collect());
    (polvo_ns, governor_ns, ratio)
}

#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn summary() {
    let rt = runtime();
    let iters = 400_000;
    println!(
        "\nacquire overhead, ns per acquire: medians of {ROUNDS} rounds of {iters} acquires, \
         each round running polvo and governor in turns; the ratio is the median of the \
         rounds' ratios"
    );
    println!(
        "{:>6} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6}",
        "tasks", "polvo/os", "gov/os", "ratio", "polvo/tsc", "gov/tsc", "ratio"
    );
    let only: Option<u64> = std::env::var("POLVO_TASKS")
        .ok()
        .and_then(|v| v.parse().ok());
    for tasks in [1u64, 2, 8]
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == *t))
    {
        let (os, tsc) = (polvo(os_clock()), polvo(Arc::new(TscClock::new())));
        let (gov_os, gov_tsc) = (governor::<MonotonicClock>(), governor::<QuantaClock>());
        let (os_ns, gov_os_ns, os_ratio) = paired(
            || run_polvo(&rt, &os, tasks, iters),
            || run_governor(&rt, &gov_os, tasks, iters),
            iters,
        );
        let (tsc_ns, gov_tsc_ns, tsc_ratio) = paired(
            || run_polvo(&rt, &tsc, tasks, iters),
            || run_governor(&rt, &gov_tsc, tasks, iters),
            iters,
        );
        println!(
            "{tasks:>6} | {os_ns:>9.1} {gov_os_ns:>9.1} {os_ratio:>6.2} \
             | {tsc_ns:>9.1} {gov_tsc_ns:>9.1} {tsc_ratio:>6.2}"
        );
    }
}

fn main() {
    if std::env::var_os("POLVO_SUMMARY_ONLY").is_some() {
        summary();
        return;
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    overhead(&mut criterion);
    criterion.final_summary();
    summary();
}
