//! The limiter's timing behaviour, on tokio's paused clock.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::sync::Arc;
use std::time::Duration;

use polvo_runtime::{Error, Limit, Limiter, Policy, RateLimitReason, headers::RateLimitInfo};
use tokio::time::Instant;

fn limiter(policy: Policy) -> Limiter {
    Limiter::new("test", &policy).unwrap()
}

fn per_second(n: u32) -> Policy {
    Policy::builder()
        .bucket("default", [Limit::per_second(n).unwrap()])
        .build()
        .unwrap()
}

/// Acquires `n` permits one after another and returns each start, relative to `t0`.
async fn starts(limiter: &Limiter, op: &str, n: usize, t0: Instant) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        drop(limiter.acquire(op).await.unwrap());
        out.push(t0.elapsed());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn paced_stream_keeps_exact_slots() {
    let limiter = limiter(per_second(100));
    let t0 = Instant::now();
    let got = starts(&limiter, "op", 5, t0).await;
    let want: Vec<_> = (0..5).map(|i| Duration::from_millis(10 * i)).collect();
    assert_eq!(got, want);
}

#[tokio::test(start_paused = true)]
async fn on_tokios_timer_alone_the_slots_are_the_same() {
    let policy = Policy::builder()
        .bucket("default", [Limit::per_second(100).unwrap()])
        .precise_wakeups(Duration::ZERO)
        .build()
        .unwrap();
    let limiter = limiter(policy);
    let t0 = Instant::now();
    let got = starts(&limiter, "op", 5, t0).await;
    let want: Vec<_> = (0..5).map(|i| Duration::from_millis(10 * i)).collect();
    assert_eq!(got, want);
}

#[tokio::test(start_paused = true)]
async fn short_waits_keep_their_slots_while_other_timers_are_pending() {
    // A timer far off tempts the paused clock to jump ahead whenever the runtime idles;
    // a 2 ms wait must still end at 2 ms, not when that timer fires.
    let sleeper = tokio::spawn(tokio::time::sleep(Duration::from_millis(100)));
    let limiter = limiter(per_second(500));
    let t0 = Instant::now();
    let got = starts(&limiter, "op", 4, t0).await;
    let want: Vec<_> = (0..4).map(|i| Duration::from_millis(2 * i)).collect();
    assert_eq!(got, want);
    sleeper.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let limiter = limiter(per_second(10));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (limiter, order) = (limiter.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limiter.acquire("op").await.unwrap();
            order.lock().unwrap().push(i);
        }));
        // Let task i make its reservation before task i + 1 is spawned.
        tokio::task::yield_now().await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn dropped_last_waiter_gives_its_slot_back() {
    let limiter = limiter(per_second(1));
    let t0 = Instant::now();
    drop(limiter.acquire("op").await.unwrap());

    // A waiter for the 1 s slot is dropped after 100 ms.
    let waiting = tokio::time::timeout(Duration::from_millis(100), limiter.acquire("op")).await;
    assert!(waiting.is_err(), "the second unit is not free before 1 s");

    // Its slot was returned, so the next caller gets 1 s, not 2 s.
    drop(limiter.acquire("op").await.unwrap());
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn dropped_waiter_with_later_waiters_keeps_its_slot_spent() {
    let limiter = limiter(per_second(1));
    let t0 = Instant::now();
    drop(limiter.acquire("op").await.unwrap());
    let first = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire("op").await.map(drop) }
    });
    tokio::task::yield_now().await;
    let second = tokio::spawn({
        let limiter = limiter.clone();
        async move {
            limiter.acquire("op").await.map(drop).unwrap();
            Instant::now()
        }
    });
    tokio::task::yield_now().await;
    first.abort();

    // Giving back the 1 s slot would let a third caller in at 1 s next to the second
    // one's 2 s slot; the limiter keeps it spent instead.
    assert_eq!(second.await.unwrap() - t0, Duration::from_secs(2));
    drop(limiter.acquire("op").await.unwrap());
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn max_wait_fails_fast_and_spends_nothing() {
    let policy = per_second(1)
        .into_builder()
        .max_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let limiter = limiter(policy);
    let t0 = Instant::now();
    drop(limiter.acquire("op").await.unwrap());

    let err = limiter.acquire("op").await.unwrap_err();
    assert!(err.is_rate_limited());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    let Error::RateLimited(limited) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(limited.reason, RateLimitReason::WaitTooLong);
    assert_eq!(limited.bucket.as_deref(), Some("default"));
    assert_eq!(t0.elapsed(), Duration::ZERO, "refused at once");

    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        limiter.acquire("op").await.is_ok(),
        "the refusal spent nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn multi_bucket_operation_waits_for_the_slowest_bucket() {
    let policy = Policy::builder()
        .bucket("default", [Limit::per_second(100).unwrap()])
        .bucket("search", [Limit::per_second(2).unwrap()])
        .operation("Search", ["default", "search"], 1)
        .build()
        .unwrap();
    let limiter = limiter(policy);
    let t0 = Instant::now();
    let got = starts(&limiter, "Search", 3, t0).await;
    assert_eq!(got, [0, 500, 1000].map(Duration::from_millis));

    // The search bucket being busy does not hold up plain requests.
    tokio::time::advance(Duration::from_millis(100)).await;
    let _search = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire("Search").await.map(drop) }
    });
    tokio::task::yield_now().await;
    let plain = Instant::now();
    drop(limiter.acquire("List").await.unwrap());
    assert_eq!(plain.elapsed(), Duration::ZERO);
}

/// A task that acquires once for `op` and returns when, spawned and given the chance to
/// make its reservation before the caller goes on.
async fn waiter(limiter: &Limiter) -> tokio::task::JoinHandle<Instant> {
    let limiter = limiter.clone();
    let task = tokio::spawn(async move {
        limiter.acquire("op").await.map(drop).unwrap();
        Instant::now()
    });
    tokio::task::yield_now().await;
    task
}

#[tokio::test(start_paused = true)]
async fn cooldown_moves_every_pending_waiter() {
    let limiter = limiter(per_second(10));
    let t0 = Instant::now();
    drop(limiter.acquire("op").await.unwrap());
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(waiter(&limiter).await);
    }
    // Slots were at 100, 200 and 300 ms; a 2 s cooldown at 50 ms moves each by 2 s.
    tokio::time::advance(Duration::from_millis(50)).await;
    limiter
        .pause("op", Duration::from_secs(2), false)
        .await
        .unwrap();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap() - t0);
    }
    assert_eq!(got, [2100, 2200, 2300].map(Duration::from_millis));
}

#[tokio::test(start_paused = true)]
async fn cooldown_over_two_buckets_moves_a_waiter_once() {
    let policy = Policy::builder()
        .bucket("a", [Limit::per_second(10).unwrap()])
        .bucket("b", [Limit::per_second(10).unwrap()])
        .operation("op", ["a", "b"], 1)
        .build()
        .unwrap();
    let limiter = limiter(policy);
    let t0 = Instant::now();
    drop(limiter.acquire("op").await.unwrap());
    let waiter = waiter(&limiter).await;

    // The slot at 100 ms moves by the 2 s cooldown of both buckets, not by 2 s each.
    tokio::time::advance(Duration::from_millis(50)).await;
    limiter
        .pause("op", Duration::from_secs(2), false)
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap() - t0, Duration::from_millis(2100));
}

#[tokio::test(start_paused = true)]
async fn server_reporting_less_remaining_tightens_the_bucket() {
    let limit = Limit::per_minute(60).unwrap().with_burst(60).unwrap();
    let policy = Policy::builder()
        .bucket("default", [limit])
        .build()
        .unwrap();
    let limiter = limiter(policy);
    let info = RateLimitInfo {
        remaining: Some(2),
        limit: Some(60),
        ..RateLimitInfo::default()
    };
    limiter.observe("op", &info).await.unwrap();
    assert_eq!(limiter.usage().buckets[0].available, [2]);

    let t0 = Instant::now();
    let got = starts(&limiter, "op", 3, t0).await;
    assert_eq!(got, [0, 0, 1000].map(Duration::from_millis));
}

#[tokio::test(start_paused = true)]
async fn exhausted_server_window_blocks_until_reset_even_without_limits() {
    let limiter = limiter(Policy::default());
    let info = RateLimitInfo {
        remaining: Some(0),
        reset_after: Some(Duration::from_secs(30)),
        ..RateLimitInfo::default()
    };
    limiter.observe("op", &info).await.unwrap();
    let usage = limiter.usage();
    assert_eq!(usage.buckets[0].server_remaining, Some(0));
    assert_eq!(usage.buckets[0].blocked_for, Duration::from_secs(30));

    let t0 = Instant::now();
    drop(limiter.acquire("op").await.unwrap());
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn in_flight_cap_holds_requests_until_permits_drop() {
    let policy = Policy::builder().max_in_flight(2).build().unwrap();
    let limiter = limiter(policy);
    let a = limiter.acquire("op").await.unwrap();
    let _b = limiter.acquire("op").await.unwrap();
    let third = tokio::time::timeout(Duration::from_secs(5), limiter.acquire("op")).await;
    assert!(
        third.is_err(),
        "a third request waits while two are in flight"
    );
    drop(a);
    assert!(limiter.acquire("op").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn usage_counts_throttled_time() {
    let limiter = limiter(per_second(4));
    let t0 = Instant::now();
    let _ = starts(&limiter, "op", 3, t0).await;
    let bucket = &limiter.usage().buckets[0];
    assert_eq!(bucket.throttled, 2);
    assert_eq!(bucket.throttled_time, Duration::from_millis(250 + 250));
}

/// Three waiters with slots at 10, 20 and 30 ms, all woken at 35 ms (every timer fires
/// then), on the limiter `policy` makes; returns when each went.
async fn woken_together_at_35_ms(policy: Policy) -> Vec<Duration> {
    let limiter = limiter(policy);
    let t0 = Instant::now();
    drop(limiter.acquire("op").await.unwrap());
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let limiter = limiter.clone();
        waiters.push(tokio::spawn(async move {
            drop(limiter.acquire("op").await.unwrap());
            t0.elapsed()
        }));
        tokio::task::yield_now().await;
    }
    tokio::time::advance(Duration::from_millis(35)).await;
    let mut got = Vec::new();
    for waiter in waiters {
        got.push(waiter.await.unwrap());
    }
    got
}

#[tokio::test(start_paused = true)]
async fn on_tokios_timer_a_waiter_late_by_more_than_a_slot_moves_later_slots_back() {
    // The first waiter is 25 ms late, 15 ms more than a slot. A server counting arrivals
    // with a tolerance of one request takes it and the next at 35 ms, and the third no
    // sooner than 45 ms; without the move all three would go at 35 ms and the third
    // would earn a 429.
    let policy = Policy::builder()
        .bucket("default", [Limit::per_second(100).unwrap()])
        .precise_wakeups(Duration::ZERO)
        .build()
        .unwrap();
    let ms = Duration::from_millis;
    assert_eq!(
        woken_together_at_35_ms(policy).await,
        [ms(35), ms(35), ms(45)]
    );
}

#[tokio::test(start_paused = true)]
async fn with_precise_wakeups_a_late_waiter_moves_later_slots_by_all_its_lateness() {
    // With precise wake-ups, 25 ms late means the machine paused: the later slots move
    // by all 25 ms, to 45 and 55 ms.
    let ms = Duration::from_millis;
    assert_eq!(
        woken_together_at_35_ms(per_second(100)).await,
        [ms(35), ms(45), ms(55)]
    );
}
