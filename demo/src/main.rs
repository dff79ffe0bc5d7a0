//! `cargo run -p polvo-demo`: starts a mock Stripe on loopback that enforces Stripe's
//! live-mode limit of 100 writes per second (excess gets 429 with `Retry-After`), lists a
//! page of customers, updates 2,000 customers in one bulk run with a progress bar, and
//! prints the usage snapshot: 429s received, achieved rate against the limit, time waited.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a demo reports on the terminal"
)]

use std::error::Error;
use std::io::Write;
use std::time::{Duration, Instant};

use polvo_demo::mock::{MockStripe, customer_id};
use polvo_runtime::bulk::{BulkOptions, ItemResult, OnError, Progress};
use polvo_stripe::StripeClient;
use polvo_stripe::resources::customers::ListCustomersParams;
use polvo_stripe::types::{CustomerUpdateParams, Metadata};

/// Stripe's documented live-mode limit for writes (and, separately, for reads).
const LIMIT: u32 = 100;
const CUSTOMERS: usize = 2000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mock = MockStripe::start(LIMIT, CUSTOMERS).await?;
    println!("mock Stripe on {} enforcing {LIMIT} writes/s", mock.url());

    // A live-mode key: the client takes Stripe's live limits from its annotations.
    let stripe = StripeClient::builder()
        .api_key("sk_live_polvo_demo")
        .base_url(mock.url())
        .build()?;

    let params = ListCustomersParams {
        limit: Some(3),
        ..ListCustomersParams::default()
    };
    let page = stripe.customers().list(&params).await?;
    let ids: Vec<&str> = page.data.iter().map(|c| c.id.as_str()).collect();
    println!(
        "first customers: {} (more: {})",
        ids.join(", "),
        page.has_more
    );

    let updates: Vec<(String, CustomerUpdateParams)> = (0..CUSTOMERS)
        .map(|i| {
            let metadata = Metadata::from([("synced".to_owned(), "2026-12-03".to_owned())]);
            let body = CustomerUpdateParams {
                metadata: Some(metadata),
                ..CustomerUpdateParams::default()
            };
            (customer_id(i), body)
        })
        .collect();
    let options = BulkOptions::new()
        .on_error(OnError::Continue)
        .progress(progress_bar());
    let began = Instant::now();
    let report = stripe.customers().bulk_update(updates, options).await;
    let elapsed = began.elapsed();
    eprintln!();

    for outcome in &report.outcomes {
        if let ItemResult::Failed { item, error } = &outcome.result {
            println!("customer {} failed: {error}", item.0);
        }
    }
    let usage = stripe.usage();
    println!("\n{usage}");
    let rejected: u64 = usage.buckets.iter().map(|b| b.rejected).sum();
    let achieved = mock.stats().accepted_rate();
    println!(
        "updated {} of {CUSTOMERS} customers in {:.2} s ({} failed, {} not attempted)",
        report.succeeded(),
        elapsed.as_secs_f64(),
        report.failed(),
        report.not_attempted(),
    );
    println!("requests rejected by the server (429): {rejected}");
    println!(
        "achieved rate: {achieved:.1}/s against a limit of {LIMIT}/s ({:.1} %)",
        achieved / f64::from(LIMIT) * 100.0
    );
    println!(
        "time waited for quota: {:.1} s in all, across {} throttled requests",
        usage
            .buckets
            .iter()
            .map(|b| b.throttled_time.as_secs_f64())
            .sum::<f64>(),
        usage.buckets.iter().map(|b| b.throttled).max().unwrap_or(0),
    );
    Ok(())
}

/// A progress callback drawing a bar on stderr, at most ten times a second.
fn progress_bar() -> impl FnMut(&Progress) + Send + 'static {
    let mut drawn: Option<Instant> = None;
    move |p: &Progress| {
        let finished = p.total == Some(p.done);
        if drawn.is_some_and(|at| at.elapsed() < Duration::from_millis(100)) && !finished {
            return;
        }
        drawn = Some(Instant::now());
        let total = p.total.unwrap_or(p.done).max(1);
        let width = 40;
        let filled = p.done * width / total;
        let eta = p
            .eta
            .map_or("-".to_owned(), |eta| format!("{:.0}s", eta.as_secs_f64()));
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r[{}{}] {}/{} {:.0}/s, {} failed, {} in flight, eta {eta}   ",
            "#".repeat(filled),
            ".".repeat(width - filled),
            p.done,
            total,
            p.rate,
            p.failed,
            p.in_flight,
        );
        let _ = stderr.flush();
    }
}
