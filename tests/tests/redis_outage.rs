//! Redis killed in the middle of a run and started again on the same port, or frozen
//! (SIGSTOP: connected but silent, the way a stuck server looks) and let go again: the
//! failure policy holds, nothing panics or hangs, every request gets an answer, and the
//! shared store is used again once Redis is back. Also what a client on Redis reports
//! about its quota, and how it resends a bare 429 in its slot.
//!
//! Real time and a real `redis-server` throughout; the HTTP server only counts requests.
//! No assertion reads the wall clock: a generous outer timeout only turns a hang into a
//! failure instead of a stuck test run.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a broken set-up"
)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use polvo_runtime::{
    BucketRef, Client, Error, Grant, Limit, Method, OnFailure, Policy, QuotaStore, RedisStore,
    Request, ReserveRequest, RetryPolicy,
};
use redis_server::RedisServer;
use tokio::net::TcpListener;
use tokio::task::{JoinSet, block_in_place};

const BACKOFF: Duration = Duration::from_millis(200);

/// Far above anything these tests wait for (the store's 250 ms call timeout, a few
/// back-offs), so only a hang reaches it.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// `future`, or a failed test if it has not finished within [`HANG_GUARD`].
async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} hung for {HANG_GUARD:?}"),
    }
}

/// Sends requests, a back-off apart, until one is answered with Redis reachable.
async fn until_recovered(client: &Client, store: &RedisStore) {
    let recovered = async {
        loop {
            tokio::time::sleep(BACKOFF).await;
            let sent = client.execute(work()).await;
            if !store.is_degraded() {
                return sent;
            }
        }
    };
    let status = guarded("recovery", recovered).await.unwrap().status();
    assert_eq!(status, 200);
}

async fn start_server() -> SocketAddr {
    let app = Router::new().route("/work", get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn store(redis: &RedisServer, on_failure: OnFailure) -> Arc<RedisStore> {
    store_with_backoff(redis, on_failure, BACKOFF)
}

fn store_with_backoff(
    redis: &RedisServer,
    on_failure: OnFailure,
    backoff: Duration,
) -> Arc<RedisStore> {
    let store = RedisStore::builder(redis.url())
        .credential("outage-key")
        .on_failure(on_failure)
        .backoff(backoff)
        .build()
        .unwrap();
    Arc::new(store)
}

fn client(addr: SocketAddr, store: Arc<RedisStore>) -> Client {
    Client::builder("outage", Policy::default())
        .base_url(format!("http://{addr}"))
        .rate_limit(50)
        .retry(RetryPolicy::none())
        .store(store)
        .build()
        .unwrap()
}

fn work() -> Request {
    Request::new(Method::GET, "/work", "work")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fallback_carries_the_run_through_an_outage() {
    const REQUESTS: u64 = 150;
    let mut redis = RedisServer::start();
    let addr = start_server().await;
    let store = store(&redis, OnFailure::Local { share: 0.5 });
    let client = client(addr, store.clone());

    let left = Arc::new(AtomicU64::new(REQUESTS));
    let mut tasks = JoinSet::new();
    for _ in 0..4 {
        let (client, left) = (client.clone(), left.clone());
        tasks.spawn(async move {
            let mut results = Vec::new();
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                results.push(client.execute(work()).await.map(|r| r.status()));
            }
            results
        });
    }

    // 50/s for 150 requests is 3 s: Redis dies at 0.7 s and is back at 1.7 s.
    tokio::time::sleep(Duration::from_millis(700)).await;
    block_in_place(|| redis.kill());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures_during = store.failures();
    block_in_place(|| redis.restart());

    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.extend(joined.expect("no task panicked"));
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    eprintln!(
        "outage with local fallback: {} results, {ok} ok, {} redis failures, {} calls answered \
         locally",
        results.len(),
        store.failures(),
        store.fallbacks(),
    );
    assert_eq!(results.len() as u64, REQUESTS, "every request got a result");
    assert_eq!(ok as u64, REQUESTS, "{results:?}");
    assert!(failures_during > 0, "the outage was noticed");
    assert!(
        store.fallbacks() > 0,
        "the local store answered during the outage"
    );

    // Back on Redis: the restarted server holds the quota's keys again, and they expire.
    client.execute(work()).await.unwrap();
    assert!(!store.is_degraded());
    let keys: Vec<String> = redis.query(&["KEYS", "polvo:*"]).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("polvo:{outage:") && keys[0].ends_with("}:default"));
    let ttl: i64 = redis.query(&["PTTL", &keys[0]]).await;
    assert!(ttl > 0, "idle keys expire (PTTL {ttl})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_policy_returns_store_errors_during_an_outage() {
    let mut redis = RedisServer::start();
    let addr = start_server().await;
    let store = store(&redis, OnFailure::Fail);
    let client = client(addr, store.clone());
    client.execute(work()).await.unwrap();

    block_in_place(|| redis.kill());
    for _ in 0..2 {
        // The first call meets the dead server, the second the back-off after it.
        match client.execute(work()).await {
            Err(Error::Store(message)) => assert!(message.contains("redis"), "{message}"),
            other => panic!("expected a store error, got {other:?}"),
        }
    }
    assert!(store.is_degraded());

    block_in_place(|| redis.restart());
    tokio::time::sleep(BACKOFF * 2).await;
    let status = client.execute(work()).await.unwrap().status();
    assert_eq!(status, 200);
    assert!(!store.is_degraded());
    assert_eq!(store.failures(), 1, "one failure, then the back-off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fallback_answers_while_redis_is_frozen() {
    const REQUESTS: usize = 10;
    let redis = RedisServer::start();
    let addr = start_server().await;
    let store = store(&redis, OnFailure::Local { share: 0.5 });
    let client = client(addr, store.clone());
    client.execute(work()).await.unwrap();
    assert_eq!(store.fallbacks(), 0);

    block_in_place(|| redis.freeze());
    let frozen = async {
        let mut statuses = Vec::new();
        for _ in 0..REQUESTS {
            statuses.push(client.execute(work()).await.map(|r| r.status().as_u16()));
        }
        statuses
    };
    let statuses = guarded("requests while redis is frozen", frozen).await;
    let (failures, fallbacks) = (store.failures(), store.fallbacks());
    let degraded = store.is_degraded();
    block_in_place(|| redis.thaw());

    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "every request answered through the local store: {statuses:?}"
    );
    assert!(failures > 0, "the silent server was noticed");
    assert!(
        fallbacks >= REQUESTS as u64,
        "each request's reservation answered locally ({fallbacks} fallbacks)"
    );
    assert!(degraded, "no call reached redis while it was frozen");

    // Back on Redis: a request after recovery costs no fallback, and its key is there.
    until_recovered(&client, &store).await;
    let before = store.fallbacks();
    client.execute(work()).await.unwrap();
    assert_eq!(store.fallbacks(), before, "answered by redis again");
    let keys: Vec<String> = redis.query(&["KEYS", "polvo:*"]).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_policy_returns_an_error_while_redis_is_frozen() {
    let redis = RedisServer::start();
    let addr = start_server().await;
    // A back-off far longer than the gap between two requests, so the second one meets
    // it even on a loaded machine.
    let store = store_with_backoff(&redis, OnFailure::Fail, Duration::from_secs(2));
    let client = client(addr, store.clone());
    client.execute(work()).await.unwrap();

    block_in_place(|| redis.freeze());
    let frozen = async {
        // The first call waits out the call timeout, the second meets the back-off.
        let timed_out = client.execute(work()).await;
        let backing_off = client.execute(work()).await;
        (timed_out, backing_off)
    };
    let (timed_out, backing_off) = guarded("requests while redis is frozen", frozen).await;
    let degraded = store.is_degraded();
    block_in_place(|| redis.thaw());

    match timed_out {
        Err(Error::Store(message)) => {
            assert!(message.contains("no answer within 250 ms"), "{message}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    match backing_off {
        Err(Error::Store(message)) => assert!(message.contains("backing off"), "{message}"),
        other => panic!("expected a store error, got {other:?}"),
    }
    assert!(degraded);
    assert_eq!(store.failures(), 1, "one timeout, then the back-off");

    until_recovered(&client, &store).await;
    assert!(!store.is_degraded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_now_reads_units_available_from_redis() {
    let redis = RedisServer::start();
    let addr = start_server().await;
    let client = client(addr, store(&redis, OnFailure::Fail));
    assert_eq!(client.usage().buckets[0].available, Vec::<u64>::new());

    let before = client.usage_now().await.unwrap();
    assert_eq!(
        before.buckets[0].available,
        [1],
        "a fresh 50/s bucket of burst 1"
    );
    guarded("request", client.execute(work())).await.unwrap();
    let after = client.usage_now().await.unwrap();
    assert_eq!(after.buckets[0].sent, 1);
    assert!(after.buckets[0].pace > 0.99, "full pace, read from Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_429_is_resent_in_its_slot_and_the_shared_slots_move_back() {
    // As on the in-memory store: the refusal takes 20 ms to come back, the resend goes at
    // once, and the next slot in Redis moves back by the time that took, so the next
    // request comes a whole slot (200 ms at 5/s) after the resend rather than 180 ms.
    let redis = RedisServer::start();
    let server = common::TestServer::builder()
        .reply(common::Reply::status(429).latency(Duration::from_millis(20)))
        .start()
        .await
        .unwrap();
    let client = Client::builder("resend", Policy::default())
        .base_url(server.url())
        .rate_limit(5)
        .store(store(&redis, OnFailure::Fail))
        .build()
        .unwrap();

    let first = guarded("first request", client.execute(common::get())).await;
    let second = guarded("second request", client.execute(common::get())).await;

    assert_eq!(
        (first.unwrap().attempts(), second.unwrap().attempts()),
        (2, 1)
    );
    assert_eq!(server.statuses(), [429, 200, 200]);
    // Real time here (Redis keeps its own clock), so each bound sits halfway between what
    // the mechanism gives and what its absence would: a retry in the next slot comes
    // 200 ms after the refused request, a resend with the slots left in place 180 ms
    // before the next request.
    let gaps = server.gaps();
    let ms = Duration::from_millis;
    assert!(
        gaps[0] < ms(110),
        "resent at once, not in the next slot: {gaps:?}"
    );
    assert!(
        gaps[1] >= ms(190),
        "a whole slot after the resend: {gaps:?}"
    );
}

/// A reservation of one unit of the bucket `outage:default`, with `limits`, in `store`.
async fn reserve(store: &RedisStore, limits: &[Limit]) -> Grant {
    let buckets = [BucketRef {
        key: "outage:default",
        limits,
    }];
    let request = ReserveRequest {
        buckets: &buckets,
        cost: 1,
        max_wait: None,
    };
    guarded("reservation", store.reserve(request))
        .await
        .unwrap()
}

/// The wait of a granted reservation.
#[track_caller]
fn wait_of(grant: Grant) -> Duration {
    match grant {
        Grant::Ready { wait, .. } => wait,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_store_takes_over_spent_and_hands_back_slowly() {
    // 50/s on Redis, 25/s (an interval of 40 ms) as this process's share.
    let limits = [Limit::per_second(50).unwrap()];
    let mut redis = RedisServer::start();
    let store = store(&redis, OnFailure::Local { share: 0.5 });
    assert_eq!(wait_of(reserve(&store, &limits).await), Duration::ZERO);

    // Redis may have spent the burst just before it went away: the share starts spent,
    // so the first local reservation waits an interval of it instead of going at once,
    // and the second (answered locally at once, in the back-off) two intervals.
    block_in_place(|| redis.kill());
    reserve(&store, &limits).await;
    assert!(store.is_degraded());
    let second_local = wait_of(reserve(&store, &limits).await);
    assert!(
        second_local > Duration::from_millis(70),
        "two of the share's 40 ms intervals, the first spent at the take-over: \
         {second_local:?}"
    );

    // Back on Redis, a request keeps to the share for one back-off: two in a row are
    // the share's 40 ms apart, not Redis's 20 ms, as the fleet's other processes may
    // still be on their shares.
    block_in_place(|| redis.restart());
    let rejoin = async {
        loop {
            tokio::time::sleep(BACKOFF).await;
            reserve(&store, &limits).await;
            if !store.is_degraded() {
                return;
            }
        }
    };
    guarded("rejoining redis", rejoin).await;
    let within_share = wait_of(reserve(&store, &limits).await);
    assert!(
        within_share > Duration::from_millis(35),
        "the next waits for the share's interval: {within_share:?}"
    );

    // After the back-off, Redis's count alone decides again.
    tokio::time::sleep(BACKOFF + Duration::from_millis(50)).await;
    reserve(&store, &limits).await;
    let on_redis = wait_of(reserve(&store, &limits).await);
    assert!(
        on_redis < Duration::from_millis(35),
        "Redis's 20 ms interval, padded by a round trip: {on_redis:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_waits_count_from_the_call_when_redis_is_frozen() {
    // Three reservations meet a frozen Redis together, wait out its 250 ms call timeout,
    // and fall back to the 25/s share at 0, 40 and 80 ms after it (its first unit spent
    // at the take-over: at 40, 80 and 120 ms). The caller counts each wait from before
    // its call, so each must hold the timeout as well; without it, all three would be
    // due at once when the timeout ends.
    let limits = [Limit::per_second(50).unwrap()];
    let redis = RedisServer::start();
    let store = store(&redis, OnFailure::Local { share: 0.5 });
    assert_eq!(wait_of(reserve(&store, &limits).await), Duration::ZERO);

    block_in_place(|| redis.freeze());
    let calls = [0, 1, 2].map(|_| reserve(&store, &limits));
    let mut waits = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(wait_of)
        .collect::<Vec<_>>();
    block_in_place(|| redis.thaw());

    waits.sort();
    assert!(
        waits[0] > Duration::from_millis(250),
        "the call's timeout is part of the wait: {waits:?}"
    );
    for pair in waits.windows(2) {
        assert!(
            pair[1] - pair[0] > Duration::from_millis(30),
            "the share's 40 ms apart: {waits:?}"
        );
    }
}

/// The most arrivals among `at` in any window of `period` that starts at one of them.
fn busiest(at: &[tokio::time::Instant], period: Duration) -> usize {
    let mut at = at.to_vec();
    at.sort();
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|&&t| t < at[i] + period).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_its_shares_stays_within_the_limit_through_an_outage() {
    // Two processes of one fleet (two stores, each with a local store of its own) share
    // 50/s through Redis, each with a share of half. Redis goes away for 2 s, comes back
    // empty, and the fleet keeps sending throughout.
    const LIMIT: usize = 50;
    let mut redis = RedisServer::start();
    let server = common::TestServer::builder().start().await.unwrap();
    let stores = [0, 1].map(|_| store(&redis, OnFailure::Local { share: 0.5 }));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for store in &stores {
        let client = client(server.addr(), store.clone());
        for _ in 0..2 {
            let (client, stop) = (client.clone(), stop.clone());
            tasks.spawn(async move {
                let mut results = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    results.push(client.execute(work()).await.map(|r| r.status()));
                }
                results
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    block_in_place(|| redis.kill());
    tokio::time::sleep(Duration::from_secs(2)).await;
    block_in_place(|| redis.restart());
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);

    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.extend(joined.expect("no task panicked"));
    }
    let arrivals: Vec<_> = server.seen().iter().map(|seen| seen.at).collect();
    let busiest = busiest(&arrivals, Duration::from_secs(1));
    let fallbacks = stores.each_ref().map(|store| store.fallbacks());
    eprintln!(
        "fleet through an outage: {} requests, at most {busiest} in one second \
         (limit {LIMIT}), calls answered locally {fallbacks:?}",
        results.len()
    );
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        fallbacks.iter().all(|&n| n > 0),
        "both processes ran on their shares: {fallbacks:?}"
    );
    // The limit, a unit of burst for each share, and two for delivery: a request held up
    // on its way lands in a later window. Each process taking all of it comes to about
    // 100, and either leaving its share when Redis came back while the other was still
    // on its own, to 57.
    assert!(
        busiest <= LIMIT + 4,
        "{busiest} requests in one second against a limit of {LIMIT}"
    );
}
