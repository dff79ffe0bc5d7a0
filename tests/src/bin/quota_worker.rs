//! One process of the shared-quota test: sends requests through a polvo client whose quota
//! lives in Redis, and prints a one-line JSON summary of what it got.
//!
//! Usage: `quota_worker REDIS_URL BASE_URL REQUESTS RATE TASKS`. The requests are spread
//! over TASKS concurrent tasks; RATE is the client's limit per second. Retries are off, so
//! every refusal the server gives is counted here as well as on the server.

#![allow(
    clippy::print_stdout,
    reason = "the summary line on stdout is this binary's output"
)]

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use polvo_runtime::{Auth, Client, Method, Policy, Request, RetryPolicy};

#[derive(Debug, Default)]
struct Outcomes {
    ok: AtomicU64,
    rate_limited: AtomicU64,
    store_errors: AtomicU64,
    other_errors: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [redis_url, base_url, requests, rate, tasks] = args.as_slice() else {
        return Err("usage: quota_worker REDIS_URL BASE_URL REQUESTS RATE TASKS".into());
    };
    let (requests, rate, tasks): (u64, u32, u64) =
        (requests.parse()?, rate.parse()?, tasks.parse()?);
    let client = Client::builder("quota-test", Policy::default())
        .base_url(base_url.as_str())
        .auth(Auth::bearer("one-key-for-every-worker"))
        .rate_limit(rate)
        .retry(RetryPolicy::none())
        .shared_quota(redis_url)
        .build()?;

    let left = Arc::new(AtomicU64::new(requests));
    let outcomes = Arc::new(Outcomes::default());
    let began = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, left, outcomes) = (client.clone(), left.clone(), outcomes.clone());
            tokio::spawn(async move { run(&client, &left, &outcomes).await })
        })
        .collect();
    for handle in handles {
        handle.await?;
    }

    let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "pid": std::process::id(),
        "ok": count(&outcomes.ok),
        "rate_limited": count(&outcomes.rate_limited),
        "store_errors": count(&outcomes.store_errors),
        "other_errors": count(&outcomes.other_errors),
        "elapsed_ms": began.elapsed().as_millis() as u64,
    });
    println!("{summary}");
    Ok(())
}

async fn run(client: &Client, left: &AtomicU64, outcomes: &Outcomes) {
    while left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        let request = Request::new(Method::GET, "/work", "work");
        let counter = match client.execute(request).await {
            Ok(_) => &outcomes.ok,
            Err(e) if e.is_rate_limited() => &outcomes.rate_limited,
            Err(polvo_runtime::Error::Store(_)) => &outcomes.store_errors,
            Err(_) => &outcomes.other_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
