//! The lock-free lane of one-limit buckets, against the same rules as the locked path.
//!
//! An uncontended acquire on a bucket with one limit is a compare-and-swap outside the
//! store's lock; waits, cooldowns, server reports and cancellations take the lock and
//! close the lane first. These tests mix all of them and check the limit still holds.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use polvo_runtime::headers::RateLimitInfo;
use polvo_runtime::{Limit, Limiter, Policy};
use proptest::prelude::*;
use tokio::time::Instant;

/// One step of a script, started `at` milliseconds in.
#[derive(Debug, Clone)]
enum Step {
    /// An acquire that gives up (is dropped) after `patience` milliseconds.
    Acquire { at: u64, patience: u64 },
    /// A cooldown of `millis`, as after a 429.
    Pause {
        at: u64,
        millis: u64,
        slow_down: bool,
    },
    /// A server report of `remaining` units.
    Report { at: u64, remaining: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u64..3_000, 0u64..800).prop_map(|(at, patience)| Step::Acquire { at, patience }),
        1 => (0u64..3_000, 1u64..400, any::<bool>())
            .prop_map(|(at, millis, slow_down)| Step::Pause { at, millis, slow_down }),
        1 => (0u64..3_000, 0u64..4).prop_map(|(at, remaining)| Step::Report { at, remaining }),
    ]
}

/// Runs `steps` concurrently on a paused clock and returns when each admitted request
/// started, in milliseconds.
fn admitted(limit: Limit, steps: Vec<Step>) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let policy = Policy::builder()
            .bucket("default", [limit])
            .build()
            .unwrap();
        let limiter = Limiter::new("lane", &policy).unwrap();
        let t0 = Instant::now();
        let tasks: Vec<_> = steps
            .into_iter()
            .map(|step| tokio::spawn(run(limiter.clone(), t0, step)))
            .collect();
        let mut starts = Vec::new();
        for task in tasks {
            starts.extend(task.await.unwrap());
        }
        starts.sort();
        starts
    })
}

async fn run(limiter: Limiter, t0: Instant, step: Step) -> Option<Duration> {
    let millis = Duration::from_millis;
    match step {
        Step::Acquire { at, patience } => {
            tokio::time::sleep_until(t0 + millis(at)).await;
            let permit = tokio::time::timeout(millis(patience), limiter.acquire("op")).await;
            permit.ok().map(|p| p.unwrap()).map(|_| t0.elapsed())
        }
        Step::Pause {
            at,
            millis: pause,
            slow_down,
        } => {
            tokio::time::sleep_until(t0 + millis(at)).await;
            limiter.pause("op", millis(pause), slow_down).await.unwrap();
            None
        }
        Step::Report { at, remaining } => {
            tokio::time::sleep_until(t0 + millis(at)).await;
            let info = RateLimitInfo {
                remaining: Some(remaining),
                reset_after: Some(millis(500)),
                ..RateLimitInfo::default()
            };
            limiter.observe("op", &info).await.unwrap();
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever mix of immediate starts, waits, cancellations, cooldowns and reports, no
    /// window of the limit's period admits more than its count and burst allow.
    #[test]
    fn lane_and_lock_together_keep_the_limit(
        count in 1u32..20,
        period in 100u64..1_000,
        burst in 1u32..5,
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let limit = Limit::new(count, Duration::from_millis(period))
            .unwrap()
            .with_burst(burst)
            .unwrap();
        let starts = admitted(limit, steps);
        let (period, interval) = (limit.period(), limit.interval());
        for &from in &starts {
            let units = starts.iter().filter(|&&at| at >= from && at < from + period).count();
            let units = u32::try_from(units).unwrap();
            prop_assert!(
                interval * units < period + interval * burst,
                "{units} starts in the {period:?} from {from:?} under {limit:?}"
            );
        }
    }
}

/// Eight tasks on two threads race for 1,000 units that refill once a day: exactly 1,000
/// are admitted, so no two compare-and-swaps ever spend the same unit.
#[test]
fn racing_acquires_never_spend_a_unit_twice() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let day = Duration::from_secs(86_400);
    let limit = Limit::new(1_000, day).unwrap().with_burst(1_000).unwrap();
    let policy = Policy::builder()
        .bucket("default", [limit])
        .max_wait(Duration::ZERO)
        .build()
        .unwrap();
    let limiter = Limiter::new("race", &policy).unwrap();
    let granted = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, granted) = (limiter.clone(), granted.clone());
                tokio::spawn(async move {
                    for _ in 0..400 {
                        if limiter.acquire("op").await.is_ok() {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(granted.load(Ordering::Relaxed), 1_000);
    assert_eq!(limiter.usage().buckets[0].available, [0]);
}
