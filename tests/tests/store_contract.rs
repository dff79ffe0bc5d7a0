//! The contract every `QuotaStore` keeps, run against the in-memory store, the Redis store
//! on a real `redis-server`, and the Redis store on a real three-master Redis Cluster.
//!
//! Each property is one async function over `Arc<dyn QuotaStore>`; `contract!` turns it
//! into a test per store. On the cluster it runs twice at once, for two credentials whose
//! keys hash to slots on different nodes, and the test then checks where the keys went:
//! every key of one credential on one node, the two credentials on two nodes.
//!
//! Every store reads one clock that stands still (the Redis script too, through
//! `RedisStoreBuilder::clock`), so waits are asserted to equal what the arithmetic says,
//! however long each call to Redis takes.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a broken set-up"
)]

#[path = "common/redis.rs"]
mod redis_server;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use polvo_runtime::{
    BucketRef, Clock, Grant, Limit, MemoryStore, QuotaStore, RedisStore, Report, ReserveRequest,
    ShiftCause, Ticket,
};
use redis_server::{RedisCluster, RedisServer};

/// Two credentials whose hash tags (`{svc:HASH}`) fall in slots 425 and 11641, served by
/// different masters of a three-master cluster.
const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];

/// A clock that stands still. Every store here reads it (the Redis script too, through
/// `RedisStoreBuilder::clock`), so a wait is exactly what the arithmetic says, however
/// long the calls take.
#[derive(Debug)]
struct StillClock {
    now: tokio::time::Instant,
    wall: SystemTime,
}

impl StillClock {
    /// A clock standing at the present.
    fn shared() -> Arc<dyn Clock> {
        Arc::new(Self {
            now: tokio::time::Instant::now(),
            wall: SystemTime::now(),
        })
    }
}

impl Clock for StillClock {
    fn now(&self) -> tokio::time::Instant {
        self.now
    }

    fn wall(&self) -> SystemTime {
        self.wall
    }

    fn nanos(&self) -> u64 {
        0
    }
}

fn limit(count: u32, period: Duration, burst: u32) -> Limit {
    Limit::new(count, period)
        .unwrap()
        .with_burst(burst)
        .unwrap()
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn request<'a>(
    buckets: &'a [BucketRef<'a>],
    cost: u32,
    max_wait: Option<Duration>,
) -> ReserveRequest<'a> {
    ReserveRequest {
        buckets,
        cost,
        max_wait,
    }
}

async fn reserve(
    store: &dyn QuotaStore,
    buckets: &[BucketRef<'_>],
    max_wait: Option<Duration>,
) -> Grant {
    store.reserve(request(buckets, 1, max_wait)).await.unwrap()
}

/// The wait and ticket of a granted reservation.
#[track_caller]
fn granted(grant: Grant) -> (Duration, Ticket) {
    match grant {
        Grant::Ready { wait, ticket } => (wait, ticket),
        other => panic!("expected a grant, got {other:?}"),
    }
}

async fn available(store: &dyn QuotaStore, bucket: BucketRef<'_>) -> Vec<u64> {
    store.view(bucket).await.unwrap().available
}

/// A refusal in one bucket spends nothing in the other, for TooLong and for Never.
async fn all_or_nothing_across_buckets(store: Arc<dyn QuotaStore>) {
    let (a, b) = ([limit(10, hour(), 3)], [limit(1, hour(), 1)]);
    let buckets = [
        BucketRef {
            key: "svc:a",
            limits: &a,
        },
        BucketRef {
            key: "svc:b",
            limits: &b,
        },
    ];
    let (wait, _) = granted(reserve(&*store, &buckets, Some(Duration::ZERO)).await);
    assert_eq!(wait, Duration::ZERO);
    assert_eq!(available(&*store, buckets[0]).await, [2]);
    assert_eq!(available(&*store, buckets[1]).await, [0]);

    match reserve(&*store, &buckets, Some(Duration::from_secs(1))).await {
        Grant::TooLong { wait, bucket } => {
            assert_eq!(bucket, 1, "the hourly bucket decides");
            assert_eq!(wait, hour());
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    assert_eq!(
        available(&*store, buckets[0]).await,
        [2],
        "TooLong spent nothing"
    );

    let never = store.reserve(request(&buckets, 2, None)).await.unwrap();
    assert_eq!(
        never,
        Grant::Never {
            bucket: 1,
            limit: 0
        }
    );
    assert_eq!(
        available(&*store, buckets[0]).await,
        [2],
        "Never spent nothing"
    );
}

/// A cost above a limit's burst never fits, and names that limit.
async fn never_fits(store: Arc<dyn QuotaStore>) {
    let limits = [limit(100, hour(), 100), limit(10, hour(), 5)];
    let buckets = [BucketRef {
        key: "svc:x",
        limits: &limits,
    }];
    let grant = store.reserve(request(&buckets, 6, None)).await.unwrap();
    assert_eq!(
        grant,
        Grant::Never {
            bucket: 0,
            limit: 1
        }
    );
    assert_eq!(available(&*store, buckets[0]).await, [100, 5]);
}

/// `max_wait` refuses a start further away, and the wait it reports is the real one.
async fn max_wait_refusal(store: Arc<dyn QuotaStore>) {
    let limits = [limit(1, Duration::from_secs(1), 1)];
    let buckets = [BucketRef {
        key: "svc:s",
        limits: &limits,
    }];
    let (first, _) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(first, Duration::ZERO);

    match reserve(&*store, &buckets, Some(Duration::from_millis(500))).await {
        Grant::TooLong { wait, bucket: 0 } => assert_eq!(wait, Duration::from_secs(1)),
        other => panic!("expected TooLong, got {other:?}"),
    }
    let (wait, ticket) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(wait, Duration::from_secs(1));
    assert_eq!(ticket.deferred, 0);
}

/// A pause blocks the bucket and moves a pending reservation back by exactly the pause.
async fn pause_blocks_and_moves_pending(store: Arc<dyn QuotaStore>) {
    let limits = [limit(10, hour(), 1)];
    let buckets = [BucketRef {
        key: "svc:p",
        limits: &limits,
    }];
    granted(reserve(&*store, &buckets, None).await);
    let (wait, ticket) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(wait, Duration::from_secs(360));
    assert_eq!(
        store.moved_by(&buckets, &ticket).await.unwrap(),
        Duration::ZERO
    );

    store
        .pause(&buckets, Duration::from_secs(2), false)
        .await
        .unwrap();
    let moved = store.moved_by(&buckets, &ticket).await.unwrap();
    assert_eq!(moved, Duration::from_secs(2), "moved by exactly the pause");
    let view = store.view(buckets[0]).await.unwrap();
    assert_eq!(view.blocked_for, Duration::from_secs(2));
    assert_eq!(view.available, [0]);

    // A shorter pause inside the current one moves nothing.
    store
        .pause(&buckets, Duration::from_secs(1), false)
        .await
        .unwrap();
    assert_eq!(store.moved_by(&buckets, &ticket).await.unwrap(), moved);
    let (next, _) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(next, Duration::from_secs(722));
}

/// A waiter spending two buckets moves by the most either of them was paused, not by the
/// sum: a cooldown of both by 2 s moves it 2 s.
async fn pause_over_two_buckets_moves_once(store: Arc<dyn QuotaStore>) {
    let limits = [limit(10, hour(), 1)];
    let buckets = [
        BucketRef {
            key: "svc:m1",
            limits: &limits,
        },
        BucketRef {
            key: "svc:m2",
            limits: &limits,
        },
    ];
    granted(reserve(&*store, &buckets, None).await);
    let (wait, mut ticket) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(wait, Duration::from_secs(360));

    let two = Duration::from_secs(2);
    store.pause(&buckets, two, false).await.unwrap();
    let moved = store.moved_by(&buckets, &ticket).await.unwrap();
    assert_eq!(moved, two, "moved by the pause once");

    // Once the waiter has moved, only a bucket paused further moves it again.
    ticket.moved(u64::try_from(moved.as_nanos()).unwrap());
    assert_eq!(
        store.moved_by(&buckets, &ticket).await.unwrap(),
        Duration::ZERO
    );
    store
        .pause(&buckets[1..], Duration::from_secs(5), false)
        .await
        .unwrap();
    let again = store.moved_by(&buckets, &ticket).await.unwrap();
    assert_eq!(again, Duration::from_secs(3));
}

/// A lower remaining tightens the bucket, a higher one never loosens it, and an exhausted
/// window with a reset pauses it.
async fn adopt_what_the_server_reports(store: Arc<dyn QuotaStore>) {
    let limits = [limit(100, hour(), 100)];
    let bucket = BucketRef {
        key: "svc:h",
        limits: &limits,
    };
    let report = Report {
        remaining: Some(7),
        ..Report::default()
    };
    store.adopt(bucket, report).await.unwrap();
    assert_eq!(available(&*store, bucket).await, [7]);
    let higher = Report {
        remaining: Some(50),
        ..report
    };
    store.adopt(bucket, higher).await.unwrap();
    assert_eq!(available(&*store, bucket).await, [7]);

    let exhausted = Report {
        remaining: Some(0),
        reset_after: Some(Duration::from_secs(3)),
        ..report
    };
    store.adopt(bucket, exhausted).await.unwrap();
    let view = store.view(bucket).await.unwrap();
    assert_eq!(view.blocked_for, Duration::from_secs(3));
    assert_eq!(view.available, [0]);
}

/// A report matches the limit of its window, else of its count.
async fn adopt_matches_the_reported_window(store: Arc<dyn QuotaStore>) {
    let limits = [limit(100, hour(), 100), limit(1000, 24 * hour(), 1000)];
    let bucket = BucketRef {
        key: "svc:w",
        limits: &limits,
    };
    let by_window = Report {
        remaining: Some(9),
        window: Some(hour()),
        ..Report::default()
    };
    store.adopt(bucket, by_window).await.unwrap();
    assert_eq!(available(&*store, bucket).await, [9, 1000]);
    let by_count = Report {
        remaining: Some(500),
        limit: Some(1000),
        ..Report::default()
    };
    store.adopt(bucket, by_count).await.unwrap();
    assert_eq!(available(&*store, bucket).await, [9, 500]);
}

/// A delay moves a pending reservation and every later slot back by exactly the delay,
/// without blocking the bucket.
async fn delay_moves_later_slots(store: Arc<dyn QuotaStore>) {
    let limits = [limit(10, hour(), 1)];
    let buckets = [BucketRef {
        key: "svc:d",
        limits: &limits,
    }];
    granted(reserve(&*store, &buckets, None).await);
    let (wait, ticket) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(wait, Duration::from_secs(360));

    store
        .delay(buckets[0], Duration::from_secs(2), ShiftCause::Late)
        .await
        .unwrap();
    let moved = store.moved_by(&buckets, &ticket).await.unwrap();
    assert_eq!(moved, Duration::from_secs(2), "moved by exactly the delay");
    let view = store.view(buckets[0]).await.unwrap();
    assert_eq!(view.blocked_for, Duration::ZERO, "a delay is no cooldown");
    assert_eq!(view.pace_ppm, 1_000_000, "a late request leaves the pace");
    let (next, _) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(next, Duration::from_secs(722));
}

/// A resend in the slot moves the later slots as a late request does, and trims the pace
/// by 0.05 % each time, even when nothing moves.
async fn a_resend_trims_the_pace(store: Arc<dyn QuotaStore>) {
    let limits = [limit(10, hour(), 1)];
    let buckets = [BucketRef {
        key: "svc:t",
        limits: &limits,
    }];
    granted(reserve(&*store, &buckets, None).await);
    let (_, ticket) = granted(reserve(&*store, &buckets, None).await);
    let pace = async || store.view(buckets[0]).await.unwrap().pace_ppm;

    let resent = ShiftCause::Resent;
    store
        .delay(buckets[0], Duration::ZERO, resent)
        .await
        .unwrap();
    assert_eq!(pace().await, 999_500);
    let moved = store.moved_by(&buckets, &ticket).await.unwrap();
    assert_eq!(moved, Duration::ZERO, "nothing moves");
    let shift = Duration::from_secs(2);
    store.delay(buckets[0], shift, resent).await.unwrap();
    assert_eq!(pace().await, 999_001, "0.05 % of the pace, rounded down");
    let moved = store.moved_by(&buckets, &ticket).await.unwrap();
    assert_eq!(moved, shift);
    store.recover(buckets[0]).await.unwrap();
    assert_eq!(pace().await, 999_101, "a success wins back 0.01 %");
}

/// Repeated bare 429s cut the pace, and each success wins back a little of it; a pause
/// says whether it cut.
async fn repeated_429s_cut_the_pace(store: Arc<dyn QuotaStore>) {
    let limits = [limit(100, hour(), 1)];
    let bucket = BucketRef {
        key: "svc:r",
        limits: &limits,
    };
    let bare_429 = async || store.pause(&[bucket], Duration::ZERO, true).await.unwrap();
    let pace = async || store.view(bucket).await.unwrap().pace_ppm;
    assert!(!bare_429().await, "a lone 429");
    assert_eq!(pace().await, 1_000_000);
    for _ in 0..2 {
        assert!(bare_429().await, "a repeated 429");
    }
    assert_eq!(pace().await, 960_400);
    for _ in 0..100 {
        store.recover(bucket).await.unwrap();
    }
    assert_eq!(pace().await, 970_400, "each success wins back 0.01 %");
    assert!(bare_429().await, "a 429 within 200 successes repeats");
    assert_eq!(pace().await, 950_992);
    for _ in 0..200 {
        store.recover(bucket).await.unwrap();
    }
    assert_eq!(pace().await, 970_992);
    assert!(!bare_429().await, "a 429 after 200 successes is lone");
    assert_eq!(pace().await, 970_992);
    let second = Duration::from_secs(1);
    let cooled = store.pause(&[bucket], second, false).await.unwrap();
    assert!(!cooled, "a cooldown alone leaves the pace");
}

/// A released reservation is refunded only when nothing was reserved after it.
async fn release_refunds_only_the_last(store: Arc<dyn QuotaStore>) {
    let limits = [limit(10, hour(), 1)];
    let buckets = [BucketRef {
        key: "svc:l",
        limits: &limits,
    }];
    let slot = Duration::from_secs(360);
    granted(reserve(&*store, &buckets, None).await);
    let (wait, ticket) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(wait, slot);
    store
        .release(request(&buckets, 1, None), &ticket)
        .await
        .unwrap();
    let (again, _) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(again, slot);

    let (_, middle) = granted(reserve(&*store, &buckets, None).await);
    granted(reserve(&*store, &buckets, None).await);
    store
        .release(request(&buckets, 1, None), &middle)
        .await
        .unwrap();
    let (last, _) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(last, 4 * slot);
}

/// A waiting reservation charges only the buckets that decided its start; the others are
/// left for the waiter (the ticket's mask), so the faster bucket keeps its gap free.
async fn deferred_mask(store: Arc<dyn QuotaStore>) {
    let (fast, slow) = ([limit(60, hour(), 1)], [limit(1, hour(), 1)]);
    let buckets = [
        BucketRef {
            key: "svc:fast",
            limits: &fast,
        },
        BucketRef {
            key: "svc:slow",
            limits: &slow,
        },
    ];
    let (first, ticket) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!((first, ticket.deferred), (Duration::ZERO, 0));
    let (second, ticket) = granted(reserve(&*store, &buckets, None).await);
    assert_eq!(second, hour());
    assert_eq!(ticket.deferred, 0b01, "the fast bucket is deferred");

    // The fast bucket was charged once: its next slot is one interval away, not two.
    let (fast_only, _) = granted(reserve(&*store, &buckets[..1], None).await);
    assert_eq!(fast_only, Duration::from_secs(60));
}

fn memory() -> Arc<dyn QuotaStore> {
    Arc::new(MemoryStore::with_clock(StillClock::shared()))
}

fn redis(server: &RedisServer) -> Arc<dyn QuotaStore> {
    let builder = RedisStore::builder(server.url()).clock(StillClock::shared());
    Arc::new(builder.build().unwrap())
}

fn redis_cluster(cluster: &RedisCluster, credential: &str) -> Arc<dyn QuotaStore> {
    let builder = RedisStore::cluster_builder(cluster.urls())
        .credential(credential)
        .clock(StillClock::shared());
    Arc::new(builder.build().unwrap())
}

/// Runs `property` on the cluster for both [`TENANTS`] at once, then checks that each
/// tenant's keys sit on one node and the two tenants on two different nodes.
async fn on_cluster<F, Fut>(property: F)
where
    F: Fn(Arc<dyn QuotaStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let cluster = RedisCluster::start();
    let stores = TENANTS.map(|tenant| redis_cluster(&cluster, tenant));
    let [a, b] = stores.clone();
    tokio::join!(property(a), property(b));

    // Some properties write nothing (a refusal spends nothing), so each tenant leaves one
    // key of its own before the count.
    let limits = [limit(1, hour(), 1)];
    let probe = [BucketRef {
        key: "svc:probe",
        limits: &limits,
    }];
    for store in &stores {
        granted(reserve(&**store, &probe, None).await);
    }
    let mut nodes_by_tag: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (node, keys) in cluster
        .keys_per_node("polvo:*")
        .await
        .into_iter()
        .enumerate()
    {
        for key in keys {
            let tag = key.split('}').next().unwrap_or(&key).to_owned();
            nodes_by_tag.entry(tag).or_default().insert(node);
        }
    }
    let nodes: BTreeSet<usize> = nodes_by_tag.values().flatten().copied().collect();
    assert_eq!(
        nodes_by_tag.len(),
        2,
        "one hash tag per tenant: {nodes_by_tag:?}"
    );
    assert!(
        nodes_by_tag.values().all(|n| n.len() == 1) && nodes.len() == 2,
        "each tenant's keys on one node, the tenants on two: {nodes_by_tag:?}"
    );
}

/// On a cluster one script runs on one slot, so a reservation across two services is an
/// error (every `Client` reserves within its own service), and nothing was written.
#[tokio::test]
async fn cluster_refuses_a_reservation_across_services() {
    let cluster = RedisCluster::start();
    let store = redis_cluster(&cluster, TENANTS[0]);
    let limits = [limit(10, hour(), 10)];
    let buckets = [
        BucketRef {
            key: "svc:a",
            limits: &limits,
        },
        BucketRef {
            key: "other:a",
            limits: &limits,
        },
    ];
    let refused = store.reserve(request(&buckets, 1, None)).await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("CrossSlot"), "{message}");
    let keys = cluster.keys_per_node("polvo:*").await;
    assert!(keys.iter().all(Vec::is_empty), "{keys:?}");
}

macro_rules! contract {
    ($($property:ident),* $(,)?) => {
        $(
            mod $property {
                use super::*;

                #[tokio::test]
                async fn memory_store() {
                    super::$property(memory()).await;
                }

                #[tokio::test]
                async fn redis_store() {
                    let server = RedisServer::start();
                    super::$property(redis(&server)).await;
                }

                #[tokio::test]
                async fn redis_cluster_store() {
                    on_cluster(super::$property).await;
                }
            }
        )*
    };
}

contract!(
    all_or_nothing_across_buckets,
    never_fits,
    max_wait_refusal,
    pause_blocks_and_moves_pending,
    pause_over_two_buckets_moves_once,
    adopt_what_the_server_reports,
    adopt_matches_the_reported_window,
    repeated_429s_cut_the_pace,
    delay_moves_later_slots,
    a_resend_trims_the_pace,
    release_refunds_only_the_last,
    deferred_mask,
);
