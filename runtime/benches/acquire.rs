//! Acquire overhead: polvo's limiter beside governor, uncontended and with 2 and 8 tasks.
//!
//! Both limiters get a limit far above the request rate, so every acquire is admitted and
//! what is measured is the bookkeeping alone. Criterion prints its own statistics; the
//! summary at the end prints polvo's time per acquire as a ratio of governor's.
//!
//! Reading the clock is a large share of either: governor reads the TSC through quanta,
//! polvo by default reads the OS clock (what tokio's clock is outside tests). The summary
//! shows polvo with both, so the limiter's own cost can be told from the clock's.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use polvo_runtime::{Clock, Limit, Limiter, MemoryStore, Policy, StdClock};
use tokio::runtime::Runtime;

/// polvo's clock on the TSC, as governor's is, mapped onto tokio's instants.
#[derive(Debug)]
struct TscClock {
    tsc: quanta::Clock,
    anchor: quanta::Instant,
    anchor_tokio: tokio::time::Instant,
    anchor_wall: SystemTime,
}

impl TscClock {
    fn new() -> Self {
        let tsc = quanta::Clock::new();
        let anchor = tsc.now();
        let anchor_tokio = tokio::time::Instant::from_std(Instant::now());
        Self {
            tsc,
            anchor,
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
}

/// Admits far more than any loop here can ask for: one unit per nanosecond.
///
/// The OS clock stands in for the default `TokioClock`: it is what tokio reads in a
/// build without `test-util`, which this benchmark cannot leave out (the tests need it).
fn polvo(clock: Arc<dyn Clock>) -> Limiter {
    let limit = Limit::new(1_000_000_000, Duration::from_secs(1)).expect("valid limit");
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

fn governor() -> Arc<DefaultDirectRateLimiter> {
    Arc::new(RateLimiter::direct(Quota::per_second(NonZeroU32::MAX)))
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

fn run_governor(
    rt: &Runtime,
    limiter: &Arc<DefaultDirectRateLimiter>,
    tasks: u64,
    iters: u64,
) -> Duration {
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
        let limiter = governor();
        group.bench_with_input(BenchmarkId::new("governor", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| run_governor(&rt, &limiter, tasks, iters.max(tasks)))
        });
    }
    group.finish();
}

/// The median of five runs of `iters` acquires, in nanoseconds per acquire.
fn median_nanos(mut run: impl FnMut() -> Duration, iters: u64) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| run().as_nanos() as f64 / iters as f64)
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn summary() {
    let rt = runtime();
    let iters = 400_000;
    println!("\nacquire overhead, median of 5 runs of {iters} acquires (ns per acquire)");
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "tasks", "polvo/os", "polvo/tsc", "governor", "os/governor", "tsc/governor"
    );
    let only: Option<u64> = std::env::var("POLVO_TASKS")
        .ok()
        .and_then(|v| v.parse().ok());
    for tasks in [1u64, 2, 8]
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == *t))
    {
        let (os, tsc, g) = (
            polvo(os_clock()),
            polvo(Arc::new(TscClock::new())),
            governor(),
        );
        let os_ns = median_nanos(|| run_polvo(&rt, &os, tasks, iters), iters);
        let tsc_ns = median_nanos(|| run_polvo(&rt, &tsc, tasks, iters), iters);
        let governor_ns = median_nanos(|| run_governor(&rt, &g, tasks, iters), iters);
        println!(
            "{tasks:>6} {os_ns:>10.1} {tsc_ns:>10.1} {governor_ns:>10.1} {:>12.2} {:>12.2}",
            os_ns / governor_ns,
            tsc_ns / governor_ns
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
