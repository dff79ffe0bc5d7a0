//! What `specs/petstore/polvo.yaml` changes in the generated client, observed on the
//! wire: bucket limits and costs pace requests, modes pick lower limits, renamed methods
//! and resources exist, retries follow the statuses and attempts given (and stop on the
//! hint header, or fail at once past `max_retry_after`), POSTs carry an idempotency key,
//! the chosen rate-limit headers are adopted, list pages are followed by cursor, and the
//! in-flight and bulk concurrency caps hold.
//!
//! Every test runs on tokio's paused clock against an axum server in the same runtime,
//! which stamps each request with tokio's `Instant`: delays are exact, nothing sleeps.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors, as tests do"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use polvo_petstore::PetstoreClient;
use polvo_petstore::resources::pets::ListPetsParams;
use tokio::time::Instant;

const PET: &str = r#"{"name": "Rex", "kind": {"type": "cat"}, "id": 7, "attributes": {}}"#;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    at: Duration,
}

/// A reply: status, extra headers, JSON body.
type Reply = (u16, Vec<(&'static str, String)>, String);

/// Answers request number `n` (from 0) as `reply` says; records every request and the
/// most requests it ever had in flight at once.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    peak: Arc<AtomicUsize>,
}

impl Server {
    async fn start(reply: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Self {
        Self::slow(Duration::ZERO, reply).await
    }

    /// A server that takes `latency` to answer each request.
    async fn slow(
        latency: Duration,
        reply: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let peak: Arc<AtomicUsize> = Arc::default();
        let in_flight: Arc<AtomicUsize> = Arc::default();
        let origin = Instant::now();
        let reply = Arc::new(reply);
        let log = seen.clone();
        let top = peak.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let (log, reply, top, in_flight) =
                (log.clone(), reply.clone(), top.clone(), in_flight.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                top.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(latency).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let entry = Seen {
                    method: request.method().to_string(),
                    uri: request.uri().to_string(),
                    headers: request.headers().clone(),
                    at: origin.elapsed(),
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(entry.clone());
                    log.len() - 1
                };
                let (status, headers, body) = reply(n, &entry);
                let mut response = Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .header("content-type", "application/json");
                for (name, value) in headers {
                    response = response.header(name, value);
                }
                response.body(Body::from(body)).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen, peak }
    }

    /// The most requests the server had in flight at once.
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// When each request arrived, from the first.
    fn offsets(&self) -> Vec<Duration> {
        let seen = self.seen();
        seen.iter().map(|s| s.at - seen[0].at).collect()
    }
}

/// A client for `server` with the annotations' policy as it is.
fn client_for(server: &Server) -> PetstoreClient {
    PetstoreClient::builder()
        .base_url(&server.url)
        .build()
        .unwrap()
}

/// A client for `server` whose default bucket is fast enough that only caps hold
/// requests back.
fn fast_client(server: &Server) -> PetstoreClient {
    PetstoreClient::builder()
        .base_url(&server.url)
        .rate_limit(1000)
        .build()
        .unwrap()
}

fn ok(body: &str) -> Reply {
    (200, Vec::new(), body.to_owned())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whether `actual` is `expected`, give or take the few milliseconds a loopback
/// round trip takes while the clock is paused.
fn about(actual: Duration, expected: Duration) -> bool {
    actual >= expected && actual <= expected + ms(30)
}

#[tokio::test(start_paused = true)]
async fn the_default_bucket_paces_the_third_request() {
    let server = Server::start(|_, _| ok(PET)).await;
    let client = client_for(&server);
    for _ in 0..4 {
        client.pets().get(7).await.unwrap();
    }
    // 10/s with a burst of 2: two at once, then one every 100 ms.
    let offsets = server.offsets();
    assert!(about(offsets[1], ms(0)), "{offsets:?}");
    assert!(about(offsets[2], ms(100)), "{offsets:?}");
    assert!(about(offsets[3], ms(200)), "{offsets:?}");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_on_the_builder_replaces_the_default_bucket() {
    let server = Server::start(|_, _| ok(PET)).await;
    let client = PetstoreClient::builder()
        .base_url(&server.url)
        .rate_limit(100)
        .build()
        .unwrap();
    for _ in 0..4 {
        client.pets().get(7).await.unwrap();
    }
    assert!(about(server.offsets()[3], ms(30)), "{:?}", server.offsets());
}

#[test]
fn precise_wakeups_are_set_on_the_builder_and_the_annotations_stay() {
    type Builder = polvo_petstore::PetstoreClientBuilder;
    let build = |change: fn(Builder) -> Builder| {
        let builder = PetstoreClient::builder().base_url("http://127.0.0.1:9");
        change(builder).build().unwrap().runtime().policy().clone()
    };
    let default = build(|b| b);
    assert!(default.precise_wakeups().is_some(), "on by default");
    let off = build(|b| b.precise_wakeups(Duration::ZERO));
    assert_eq!(off.precise_wakeups(), None);
    let wide = build(|b| b.precise_wakeups(ms(5)));
    assert_eq!(wide.precise_wakeups(), Some(ms(5)));
    assert_eq!(
        wide.buckets().keys().collect::<Vec<_>>(),
        default.buckets().keys().collect::<Vec<_>>(),
        "the annotations' buckets are kept"
    );
}

#[tokio::test(start_paused = true)]
async fn writes_cost_two_units() {
    let server = Server::start(|_, _| (201, Vec::new(), PET.to_owned())).await;
    let client = client_for(&server);
    let pet = serde_json::from_str(r#"{"name": "Rex", "kind": {"type": "cat"}}"#).unwrap();
    for _ in 0..3 {
        client.pets().create(&pet).await.unwrap();
    }
    // Two units of `writes` (2/s, burst 4) per write: the burst takes two writes (it
    // would take four at cost 1), then one write a second.
    let offsets = server.offsets();
    assert!(about(offsets[1], ms(0)), "{offsets:?}");
    assert!(about(offsets[2], ms(1000)), "{offsets:?}");
}

#[tokio::test(start_paused = true)]
async fn a_test_key_picks_the_test_mode_limits() {
    let server = Server::start(|_, _| ok(PET)).await;
    let client = PetstoreClient::builder()
        .base_url(&server.url)
        .bearer_token("pt_test_123")
        .build()
        .unwrap();
    for _ in 0..3 {
        client.pets().get(7).await.unwrap();
    }
    // The test mode's 2/s with a burst of 1: one request every 500 ms.
    let offsets = server.offsets();
    assert!(about(offsets[1], ms(500)), "{offsets:?}");
    assert!(about(offsets[2], ms(1000)), "{offsets:?}");
}

#[test]
fn the_sandbox_base_url_picks_the_sandbox_mode_limits() {
    let client = PetstoreClient::builder()
        .base_url("http://localhost:4011")
        .build()
        .unwrap();
    let limits = &client.runtime().policy().buckets()["default"].limits;
    assert_eq!(limits[0].to_string(), "1/s");
    let live = PetstoreClient::builder().build().unwrap();
    let limits = &live.runtime().policy().buckets()["default"].limits;
    assert_eq!(limits[0].to_string(), "10/s burst 2");
    assert_eq!(
        live.runtime().policy().operation("uploadPetPhoto").buckets,
        ["default", "photos"]
    );
    assert_eq!(live.runtime().policy().operation("createPet").cost, 2);
}

#[tokio::test(start_paused = true)]
async fn renamed_methods_and_resources_exist() {
    let owner = r#"{"id": "o-1", "name": "Ann"}"#;
    let server = Server::start(move |_, _| ok(owner)).await;
    let client = client_for(&server);
    let owner = client.people().get("o-1").await.unwrap();
    assert_eq!(owner.name, "Ann");
    assert_eq!(server.seen()[0].uri, "/owners/o-1");
    // `getPetPhoto` is `photo`, not `get_photo`; naming it is the test.
    drop(client.pets().photo(7));
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_statuses_and_attempts_given() {
    let server = Server::start(|_, _| (502, Vec::new(), "{}".into())).await;
    let client = client_for(&server);
    let error = client.pets().get(7).await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(502));
    assert_eq!(server.seen().len(), 3, "502 is retried, 3 attempts in all");

    let server = Server::start(|_, _| (500, Vec::new(), "{}".into())).await;
    let client = client_for(&server);
    client.pets().get(7).await.unwrap_err();
    assert_eq!(server.seen().len(), 1, "500 is not in the statuses");

    let server = Server::start(|_, _| (502, Vec::new(), "{}".into())).await;
    let client = PetstoreClient::builder()
        .base_url(&server.url)
        .retry(polvo_runtime::RetryPolicy::none())
        .build()
        .unwrap();
    client.pets().get(7).await.unwrap_err();
    assert_eq!(server.seen().len(), 1, "the builder's retry policy wins");
}

#[tokio::test(start_paused = true)]
async fn writes_carry_one_idempotency_key_across_retries() {
    let server = Server::start(|n, _| match n {
        0 => (503, Vec::new(), "{}".into()),
        _ => (201, Vec::new(), PET.to_owned()),
    })
    .await;
    let client = client_for(&server);
    let pet = serde_json::from_str(r#"{"name": "Rex", "kind": {"type": "cat"}}"#).unwrap();
    client.pets().create(&pet).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let key = |s: &Seen| s.headers.get("idempotency-key").cloned();
    assert!(key(&seen[0]).is_some());
    assert_eq!(key(&seen[0]), key(&seen[1]));
    assert_eq!(seen[0].method, "POST");
}

/// When the second of two `get`s reaches a server whose first answer said "nothing
/// left for 2 s" in headers named `remaining` and `reset`.
async fn second_get_after_exhausted(remaining: &'static str, reset: &'static str) -> Duration {
    let server = Server::start(move |n, _| match n {
        0 => {
            let headers = vec![(remaining, "0".to_owned()), (reset, "2".to_owned())];
            (200, headers, PET.to_owned())
        }
        _ => ok(PET),
    })
    .await;
    let client = client_for(&server);
    client.pets().get(7).await.unwrap();
    client.pets().get(7).await.unwrap();
    server.offsets()[1]
}

#[tokio::test(start_paused = true)]
async fn x_ratelimit_headers_are_adopted_and_others_ignored() {
    let adopted = second_get_after_exhausted("x-ratelimit-remaining", "x-ratelimit-reset").await;
    assert!(about(adopted, ms(2000)), "{adopted:?}");

    // The older drafts' names are not the scheme chosen: no pause.
    let ignored = second_get_after_exhausted("ratelimit-remaining", "ratelimit-reset").await;
    assert!(about(ignored, ms(0)), "{ignored:?}");
}

#[tokio::test(start_paused = true)]
async fn list_pages_follows_the_cursor() {
    let page = |ids: &[i64], more: bool| {
        let items: Vec<String> = ids
            .iter()
            .map(|id| PET.replace("\"id\": 7", &format!("\"id\": {id}")))
            .collect();
        format!(r#"{{"items": [{}], "has_more": {more}}}"#, items.join(","))
    };
    let server = Server::start(move |_, seen| {
        if seen.uri.contains("starting_after=2") {
            ok(&page(&[3], false))
        } else {
            ok(&page(&[1, 2], true))
        }
    })
    .await;
    let client = client_for(&server);
    let params = ListPetsParams {
        limit: Some(2),
        ..ListPetsParams::default()
    };
    let mut pages = client.pets().list_pages(&params);
    let mut ids = Vec::new();
    while let Some(pet) = pages.next().await {
        ids.push(pet.unwrap().id);
    }
    assert_eq!(ids, [1, 2, 3]);
    let uris: Vec<String> = server.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, ["/pets?limit=2", "/pets?limit=2&starting_after=2"]);
}

/// Calls `get` on `n` tasks at once and waits for all of them.
async fn get_concurrently(client: &PetstoreClient, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        tasks.spawn(async move { client.pets().get(7).await.map(|_| ()) });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_caps_concurrent_requests() {
    let server = Server::slow(ms(1000), |_, _| ok(PET)).await;
    let client = fast_client(&server);
    get_concurrently(&client, 20).await;
    assert_eq!(server.seen().len(), 20);
    assert_eq!(server.peak(), 8, "`default` allows 8 requests in flight");
}

#[tokio::test(start_paused = true)]
async fn bulk_runs_take_the_annotations_concurrency_cap() {
    let server = Server::slow(ms(1000), |_, _| ok(PET)).await;
    let client = fast_client(&server);
    // A run is `Send`: it can be spawned like any other task.
    let run = tokio::spawn(async move {
        let options = polvo_runtime::bulk::BulkOptions::new();
        client.pets().bulk_get(0..20, options).await
    });
    let report = run.await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(server.peak(), 4, "bulk.max_concurrency is 4");

    // The caller's cap wins over the annotations'.
    let server = Server::slow(ms(1000), |_, _| ok(PET)).await;
    let client = fast_client(&server);
    let options = polvo_runtime::bulk::BulkOptions::new().max_concurrency(6);
    let report = client.pets().bulk_get(0..20, options).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(server.peak(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_above_max_retry_after_fails_at_once() {
    let server = Server::start(|_, _| {
        let headers = vec![("retry-after", "60".to_owned())];
        (429, headers, "{}".to_owned())
    })
    .await;
    let client = client_for(&server);
    let error = client.pets().get(7).await.unwrap_err();
    assert!(error.is_rate_limited(), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(
        server.seen().len(),
        1,
        "60 s is above max_retry_after (30 s)"
    );
    let polvo_runtime::Error::RateLimited(limited) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        limited.bucket.as_deref(),
        Some("default"),
        "getPet's bucket"
    );
    assert_eq!(limited.status.map(|s| s.as_u16()), Some(429));
}

#[tokio::test(start_paused = true)]
async fn the_hint_header_stops_a_retry_the_status_allows() {
    let server = Server::start(|_, _| {
        let headers = vec![("x-should-retry", "false".to_owned())];
        (503, headers, "{}".to_owned())
    })
    .await;
    let client = client_for(&server);
    let error = client.pets().get(7).await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(server.seen().len(), 1, "the server said not to retry");
}

#[tokio::test(start_paused = true)]
async fn bulk_update_reports_every_pet_in_input_order() {
    let server = Server::start(|_, seen| {
        let id: i64 = seen.uri.trim_start_matches("/pets/").parse().unwrap();
        match id {
            3 => (400, Vec::new(), r#"{"title": "no such pet"}"#.to_owned()),
            _ => ok(&PET.replace("\"id\": 7", &format!("\"id\": {id}"))),
        }
    })
    .await;
    let client = client_for(&server);
    let update = polvo_petstore::types::PetUpdate {
        name: Some("Rex".into()),
        ..Default::default()
    };
    let items = (1..=5).map(|id| (id, update.clone()));
    let options = polvo_runtime::bulk::BulkOptions::new();
    let report = client.pets().bulk_update(items, options).await;

    let indices: Vec<usize> = report.outcomes.iter().map(|o| o.index).collect();
    assert_eq!(indices, [0, 1, 2, 3, 4]);
    for (outcome, id) in report.outcomes.iter().zip(1..) {
        match &outcome.result {
            polvo_runtime::bulk::ItemResult::Done(pet) => assert_eq!(pet.id, id),
            polvo_runtime::bulk::ItemResult::Failed { item, error } => {
                assert_eq!((id, item.0), (3, 3));
                assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
            }
            other => panic!("pet {id}: {other:?}"),
        }
    }
    assert_eq!((report.succeeded(), report.failed()), (4, 1));
    assert_eq!(report.into_remaining().len(), 1);
    // Writes spend two units of `writes` (2/s, burst 4): two at once, then one a second.
    let offsets = server.offsets();
    assert!(about(offsets[4], ms(3000)), "{offsets:?}");
}
