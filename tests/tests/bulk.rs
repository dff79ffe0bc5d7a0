//! The bulk engine against a real server on 127.0.0.1: order, nothing lost under injected
//! failures, stop, cancel and resume, concurrency sized from the limits, streaming.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use polvo_runtime::bulk::{BulkOptions, Cancel, ItemResult, OnError};
use polvo_runtime::{Client, Error, Limit, Method, Policy, Request};

/// How the server treats item `id`.
fn fate(id: u64) -> Fate {
    match id % 10 {
        3 => Fate::Fail500,
        5 => Fate::Once429,
        7 => Fate::Drop,
        _ => Fate::Ok,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Ok,
    Fail500,
    Once429,
    Drop,
}

#[derive(Default)]
struct Server {
    /// Requests per item id.
    hits: Mutex<BTreeMap<u64, usize>>,
    in_flight: AtomicUsize,
    /// How many other requests were in flight as each one arrived, in arrival order.
    seen_in_flight: Mutex<Vec<usize>>,
    latency: Duration,
    inject: bool,
}

impl Server {
    /// The most requests that were in flight at once.
    fn max_in_flight(&self) -> usize {
        let seen = self.seen_in_flight.lock().unwrap();
        seen.iter().max().map_or(0, |others| others + 1)
    }
}

async fn item(State(server): State<Arc<Server>>, Path(id): Path<u64>) -> Response {
    let hits = {
        let mut hits = server.hits.lock().unwrap();
        let n = hits.entry(id).or_default();
        *n += 1;
        *n
    };
    let now = server.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    server.seen_in_flight.lock().unwrap().push(now - 1);
    tokio::time::sleep(server.latency).await;
    server.in_flight.fetch_sub(1, Ordering::SeqCst);
    match if server.inject { fate(id) } else { Fate::Ok } {
        Fate::Ok => format!("{{\"id\":{id}}}").into_response(),
        Fate::Fail500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Fate::Once429 if hits == 1 => StatusCode::TOO_MANY_REQUESTS.into_response(),
        Fate::Once429 => format!("{{\"id\":{id}}}").into_response(),
        Fate::Drop => {
            // A body that fails after the headers: the connection is cut mid-response.
            let broken =
                futures_util::stream::iter([Err::<bytes::Bytes, _>(std::io::Error::other("cut"))]);
            Response::new(Body::from_stream(broken))
        }
    }
}

async fn serve(latency: Duration, inject: bool) -> (String, Arc<Server>) {
    let server = Arc::new(Server {
        latency,
        inject,
        ..Server::default()
    });
    let app = Router::new()
        .route("/items/{id}", axum::routing::put(item))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, server)
}

fn client(url: &str, policy: Policy) -> Client {
    Client::builder("bulk", policy)
        .base_url(url)
        .build()
        .unwrap()
}

/// A client whose one bucket allows `per_second` calls a second.
fn limited_client(url: &str, per_second: u32) -> Client {
    let limit = Limit::per_second(per_second).unwrap();
    client(
        url,
        Policy::builder()
            .bucket("default", [limit])
            .build()
            .unwrap(),
    )
}

async fn put(client: Client, id: u64) -> Result<u64, Error> {
    let request = Request::new(Method::PUT, "/items/{id}", "putItem").path("id", id);
    let body: serde_json::Value = client.execute(request).await?.json()?;
    Ok(body["id"].as_u64().unwrap_or(u64::MAX))
}

#[tokio::test]
async fn every_item_is_reported_in_input_order_under_failures() {
    let (url, server) = serve(Duration::ZERO, true).await;
    let retry = polvo_runtime::RetryPolicy::builder()
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .budget(None)
        .build()
        .unwrap();
    let client = client(&url, Policy::builder().retry(retry).build().unwrap());
    let ids: Vec<u64> = (0..200).collect();

    let report = client.bulk("putItem").run(ids.clone(), put).await;

    assert_eq!(report.outcomes.len(), ids.len(), "nothing dropped");
    for (position, outcome) in report.outcomes.iter().enumerate() {
        assert_eq!(outcome.index, position, "input order");
        let id = ids[position];
        match (&outcome.result, fate(id)) {
            (ItemResult::Done(got), Fate::Ok | Fate::Once429) => assert_eq!(*got, id),
            (ItemResult::Failed { item, error }, Fate::Fail500) => {
                assert_eq!(*item, id);
                assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
            }
            (ItemResult::Failed { item, error }, Fate::Drop) => {
                assert_eq!(*item, id);
                assert!(matches!(error, Error::Transport(_)), "{error:?}");
            }
            (other, fate) => panic!("item {id} ({fate:?}) ended as {other:?}"),
        }
    }
    assert_eq!(report.succeeded(), 160);
    assert_eq!(report.failed(), 40);
    assert_eq!(report.not_attempted(), 0);
    let hits = server.hits.lock().unwrap();
    assert!(
        ids.iter()
            .filter(|id| fate(**id) == Fate::Once429)
            .all(|id| hits[id] == 2)
    );
}

#[tokio::test]
async fn stop_at_first_error_reports_the_untried_items() {
    let (url, _server) = serve(Duration::ZERO, true).await;
    let client = client(
        &url,
        Policy::builder()
            .retry(polvo_runtime::RetryPolicy::none())
            .build()
            .unwrap(),
    );
    let options = BulkOptions::new()
        .on_error(OnError::Stop)
        .max_concurrency(1);

    let report = client
        .bulk("putItem")
        .options(options)
        .run(0..50u64, put)
        .await;

    assert!(report.stopped);
    assert_eq!(report.outcomes.len(), 50);
    // Item 3 is the first failure; with one call at a time nothing after it starts.
    assert_eq!(report.succeeded(), 3);
    assert_eq!(report.failed(), 1);
    assert_eq!(report.not_attempted(), 46);
    assert_eq!(report.into_remaining(), (3..50).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn cancelled_run_resumes_with_exactly_the_rest() {
    let (url, server) = serve(Duration::from_millis(20), false).await;
    let client = limited_client(&url, 100);
    let cancel = Cancel::new();
    let trigger = cancel.clone();
    let options = BulkOptions::new().cancel(cancel).progress(move |p| {
        if p.done == 30 {
            trigger.cancel();
        }
    });

    let first = client
        .bulk("putItem")
        .options(options)
        .run(0..100u64, put)
        .await;
    assert!(first.cancelled);
    assert_eq!(first.outcomes.len(), 100);
    assert!(first.succeeded() >= 30 && first.failed() == 0);
    let rest = first.into_remaining();

    let second = client.bulk("putItem").run(rest.clone(), put).await;
    assert!(second.is_complete());
    let hits = server.hits.lock().unwrap();
    assert_eq!(hits.len(), 100, "every item reached the server");
    assert!(hits.values().all(|n| *n == 1), "no item was sent twice");
}

#[tokio::test(start_paused = true)]
async fn concurrency_follows_rate_times_latency() {
    // 50 per second with 100 ms of latency needs 5 calls in flight, plus one.
    let (url, server) = serve(Duration::from_millis(100), false).await;
    let client = limited_client(&url, 50);
    let started = tokio::time::Instant::now();

    let report = client.bulk("putItem").run(0..200u64, put).await;

    assert!(report.is_complete());
    let max = server.max_in_flight();
    assert!((5..=7).contains(&max), "max in flight {max}");
    // 200 calls at 50/s: 199 intervals of 20 ms plus one call's latency, within a few slots.
    let ideal = Duration::from_millis(199 * 20 + 100);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= ideal && elapsed <= ideal + Duration::from_millis(100),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_call_goes_alone() {
    // A first call often pays for a new connection and reaches the server late; a second
    // sent on its slot would arrive right behind it, a burst to a strict server.
    let (url, server) = serve(Duration::from_millis(50), false).await;
    let client = limited_client(&url, 1000);

    let report = client.bulk("putItem").run(0..20u64, put).await;

    assert!(report.is_complete());
    let seen = server.seen_in_flight.lock().unwrap().clone();
    assert_eq!(
        seen[..2],
        [0, 0],
        "the second call waited for the first: {seen:?}"
    );
    // After it, the calls overlap as rate times latency asks (1000/s * 50 ms).
    assert!(seen.iter().any(|&n| n > 1), "{seen:?}");
}

#[tokio::test]
async fn stream_yields_every_outcome_with_bounded_calls_in_flight() {
    let (url, server) = serve(Duration::from_millis(1), false).await;
    let client = client(&url, Policy::default());
    let options = BulkOptions::new().max_concurrency(8);
    let input = futures_util::stream::iter(0..2_000u64);

    let outcomes: Vec<_> = client
        .bulk("putItem")
        .options(options)
        .stream(input, put)
        .collect()
        .await;

    assert_eq!(outcomes.len(), 2_000);
    let mut seen: Vec<usize> = outcomes.iter().map(|o| o.index).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..2_000).collect::<Vec<_>>());
    assert!(server.max_in_flight() <= 8);
}
