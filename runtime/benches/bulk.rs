//! Bulk throughput: N updates through the bulk engine to a local server that enforces R
//! per second strictly, beside the loop users write today (`buffer_unordered(16)` over
//! reqwest with reqwest-retry's exponential backoff).
//!
//! The server runs GCRA with an interval of 1/R and a tolerance of one request, and
//! answers excess with 429 and `Retry-After: 1`. Printed: elapsed time against the ideal
//! (N - 1) / R, and the 429s received. Size with `POLVO_BENCH_REQUESTS` (default 10000)
//! and `POLVO_BENCH_RATE` (default 500).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use polvo_runtime::{Client, Limit, Method, Policy, Request, RetryPolicy};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;

struct Gate {
    interval: Duration,
    tolerance: Duration,
    tat: Mutex<Option<Instant>>,
    ok: AtomicU64,
    rejected: AtomicU64,
}

async fn update(State(gate): State<Arc<Gate>>, Path(id): Path<u64>) -> Response {
    let now = Instant::now();
    let admitted = {
        let mut tat = gate.tat.lock().expect("gate lock");
        let current = tat.unwrap_or(now).max(now);
        let admitted = current.duration_since(now) <= gate.tolerance;
        if admitted {
            *tat = Some(current + gate.interval);
        }
        admitted
    };
    if admitted {
        gate.ok.fetch_add(1, Ordering::Relaxed);
        format!("{{\"id\":{id}}}").into_response()
    } else {
        gate.rejected.fetch_add(1, Ordering::Relaxed);
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
    }
}

async fn serve(rate: u32) -> (String, Arc<Gate>) {
    let interval = Duration::from_secs(1) / rate;
    let gate = Arc::new(Gate {
        interval,
        tolerance: interval,
        tat: Mutex::new(None),
        ok: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/customers/{id}", axum::routing::post(update))
        .with_state(gate.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, gate)
}

async fn polvo(url: &str, rate: u32, n: u64) -> (Duration, u64) {
    let limit = Limit::per_second(rate).expect("limit");
    // Updates are POSTs: an idempotency key makes them safe to retry, as Stripe's are.
    let retry = RetryPolicy::builder()
        .idempotency_header("idempotency-key")
        .build();
    let policy = Policy::builder()
        .bucket("default", [limit])
        .retry(retry.expect("retry policy"))
        .build()
        .expect("policy");
    let client = Client::builder("bench", policy)
        .base_url(url)
        .build()
        .expect("client");
    let start = Instant::now();
    let report = client
        .bulk("updateCustomer")
        .run(0..n, |client, id| async move {
            let request = Request::new(Method::POST, "/customers/{id}", "updateCustomer")
                .path("id", id)
                .form(&[("metadata[synced]", "true")]);
            client.execute(request).await
        })
        .await;
    let elapsed = start.elapsed();
    assert_eq!(report.succeeded() as u64, n, "every update succeeds");
    let rejected = client.usage().buckets.iter().map(|b| b.rejected).sum();
    (elapsed, rejected)
}

async fn today(url: &str, n: u64, gate: &Gate) -> (Duration, u64, u64) {
    let retry = ExponentialBackoff::builder().build_with_max_retries(10);
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(retry))
        .build();
    let before = gate.rejected.load(Ordering::Relaxed);
    let start = Instant::now();
    let failed = futures_util::stream::iter(0..n)
        .map(|id| {
            let http = http.clone();
            let url = format!("{url}/customers/{id}");
            async move {
                let response = http
                    .post(&url)
                    .form(&[("metadata[synced]", "true")])
                    .send()
                    .await;
                response.map(|r| r.status().is_success()).unwrap_or(false)
            }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await;
    let rejected = gate.rejected.load(Ordering::Relaxed) - before;
    (start.elapsed(), rejected, failed as u64)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn main() {
    let n = env_or("POLVO_BENCH_REQUESTS", 10_000);
    let rate = u32::try_from(env_or("POLVO_BENCH_RATE", 500)).unwrap_or(500);
    let _ = NonZeroU32::new(rate).expect("a rate above zero");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ideal = Duration::from_secs_f64((n - 1) as f64 / f64::from(rate));
    println!(
        "bulk: {n} updates, server enforcing {rate}/s strictly; ideal {:.2}s",
        ideal.as_secs_f64()
    );
    println!(
        "{:<34} {:>10} {:>10} {:>8} {:>8}",
        "client", "elapsed", "vs ideal", "429s", "failed"
    );
    rt.block_on(async {
        let (url, _gate) = serve(rate).await;
        let (elapsed, rejected) = polvo(&url, rate, n).await;
        let ratio = elapsed.as_secs_f64() / ideal.as_secs_f64();
        println!(
            "{:<34} {:>9.2}s {:>9.2}% {rejected:>8} {:>8}",
            "polvo bulk",
            elapsed.as_secs_f64(),
            (ratio - 1.0) * 100.0,
            0
        );
        let (url, gate) = serve(rate).await;
        let (elapsed, rejected, failed) = today(&url, n, &gate).await;
        let ratio = elapsed.as_secs_f64() / ideal.as_secs_f64();
        println!(
            "{:<34} {:>9.2}s {:>9.2}% {rejected:>8} {failed:>8}",
            "buffer_unordered(16) + reqwest-retry",
            elapsed.as_secs_f64(),
            (ratio - 1.0) * 100.0
        );
    });
}
