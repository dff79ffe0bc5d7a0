//! The `metrics` feature: usage counters reach the installed `metrics` recorder, labelled
//! with service and bucket, and agree with the client's own usage snapshot.

mod common;

use common::{Reply, TestServer, client_for, get, limited};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use polvo_runtime::Limit;

/// One recorded metric: name, labels, value.
type Recorded = (String, Vec<(String, String)>, DebugValue);

/// The value of counter `name` for bucket `default` of service `test`.
fn counter(snapshot: &[Recorded], name: &str) -> u64 {
    snapshot
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && labels.contains(&("service".into(), "test".into()))
                && labels.contains(&("bucket".into(), "default".into()))
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

#[test]
fn usage_counters_reach_the_metrics_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let usage = metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async {
            let server = TestServer::builder()
                .reply(Reply::status(429).retry_after(1))
                .otherwise(Reply::ok())
                .start()
                .await
                .expect("a test server");
            let policy = limited(Limit::per_second(10).expect("a limit")).expect("a policy");
            let client = client_for(&server, policy).build().expect("a client");
            for _ in 0..3 {
                client
                    .execute(get())
                    .await
                    .expect("a success after the retry");
            }
            client.usage()
        })
    });

    let snapshot: Vec<Recorded> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let bucket = &usage.buckets[0];
    assert_eq!(counter(&snapshot, "polvo_requests_sent_total"), 4);
    assert_eq!(counter(&snapshot, "polvo_rate_limited_total"), 1);
    assert_eq!(counter(&snapshot, "polvo_retries_total"), 1);
    assert_eq!(counter(&snapshot, "polvo_cooldowns_total"), 1);
    assert_eq!(counter(&snapshot, "polvo_failures_total"), 0);
    assert_eq!(bucket.sent, 4);
    assert_eq!(
        counter(&snapshot, "polvo_throttled_total"),
        bucket.throttled,
        "the exported throttle count is the snapshot's"
    );
    assert!(bucket.throttled >= 1, "the retry waited out the cooldown");
}
