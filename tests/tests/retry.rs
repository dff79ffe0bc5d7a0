//! Retries against a real server on 127.0.0.1: which requests are safe to repeat, the
//! idempotency key, the cap on server-asked delays, the retry budget, the server's hint
//! header, connections refused before anything was sent, and the bare 429s that cost no
//! attempt.
//!
//! Every test runs on tokio's paused clock, so backoffs and cooldowns cost no real time.

mod common;

use std::net::SocketAddr;

use common::{Reply, TestResult, TestServer, client_for, get, limited, ms, post, secs};
use polvo_runtime::{BudgetConfig, Client, Error, Limit, Policy, RateLimitReason, RetryPolicy};

/// The rate-limit error inside `error`, or a panic naming what came instead.
#[track_caller]
fn rate_limited(error: &Error) -> &polvo_runtime::RateLimited {
    match error {
        Error::RateLimited(limited) => limited,
        other => panic!("expected a rate-limit error, got {other:?}"),
    }
}

/// A port on 127.0.0.1 nothing listens on.
async fn closed_port() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    listener.local_addr()
}

#[tokio::test(start_paused = true)]
async fn post_without_key_is_not_retried_on_429() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(429).retry_after(1))
        .start()
        .await?;
    let client = client_for(&server, Policy::default()).build()?;

    let error = client.execute(post()).await.expect_err("a 429 on a POST");

    let limited = rate_limited(&error);
    assert_eq!(limited.reason, RateLimitReason::NotRetryable);
    assert_eq!(limited.status.map(|s| s.as_u16()), Some(429));
    assert_eq!(limited.attempts, 1);
    assert_eq!(error.retry_after(), Some(secs(1)));
    assert_eq!(server.received(), 1);
    assert_eq!(client.usage().buckets[0].retries, 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn post_without_key_is_not_retried_on_503() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(503).body("down"))
        .start()
        .await?;
    let client = client_for(&server, Policy::default()).build()?;

    let error = client.execute(post()).await.expect_err("a 503 on a POST");

    let api = error.api().expect("an API error");
    assert_eq!(api.status, 503);
    assert_eq!(api.body, "down");
    assert!(!error.is_rate_limited());
    assert_eq!(server.received(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn post_with_idempotency_key_is_retried_with_the_same_key() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(429).retry_after(1))
        .reply(Reply::status(503))
        .start()
        .await?;
    let retry = RetryPolicy::builder()
        .idempotency_header("idempotency-key")
        .build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    let response = client.execute(post()).await?;
    client.execute(post()).await?;

    assert_eq!(response.attempts(), 3);
    assert_eq!(server.statuses(), [429, 503, 200, 200]);
    let seen = server.seen();
    let keys: Vec<_> = seen.iter().map(|s| s.header("idempotency-key")).collect();
    let first = keys[0].expect("the first attempt carries one key");
    assert!(first.starts_with("polvo-"), "{first}");
    assert_eq!(keys[..3], [Some(first); 3], "every attempt reuses the key");
    assert!(
        keys[3].is_some_and(|k| k != first),
        "a new request gets a new key"
    );
    assert!(seen[..3].iter().all(|s| s.body == seen[0].body));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn get_is_not_keyed() -> TestResult {
    let server = TestServer::builder().start().await?;
    let retry = RetryPolicy::builder()
        .idempotency_header("idempotency-key")
        .build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    client.execute(get()).await?;

    assert_eq!(server.seen()[0].headers.get("idempotency-key"), None);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_above_the_cap_fails_at_once() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(429).retry_after(120))
        .start()
        .await?;
    let client = client_for(&server, Policy::default()).build()?;

    let error = client.execute(get()).await.expect_err("above the 60 s cap");

    let limited = rate_limited(&error);
    assert_eq!(limited.reason, RateLimitReason::RetryAfterTooLong);
    assert_eq!(limited.retry_after(), Some(secs(120)));
    assert_eq!(limited.attempts, 1);
    assert_eq!(limited.status.map(|s| s.as_u16()), Some(429));
    assert_eq!(server.received(), 1);
    // The bucket still honours what the server asked, for the next request.
    assert_eq!(client.usage().buckets[0].blocked_for, secs(120));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_above_a_custom_cap_fails_on_503_too() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(503).retry_after(10))
        .start()
        .await?;
    let retry = RetryPolicy::builder().max_retry_after(secs(5)).build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    let error = client.execute(get()).await.expect_err("above the 5 s cap");

    let limited = rate_limited(&error);
    assert_eq!(limited.reason, RateLimitReason::RetryAfterTooLong);
    assert_eq!(error.retry_after(), Some(secs(10)));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(server.received(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_budget_bounds_retries_against_a_failing_server() -> TestResult {
    let server = TestServer::builder()
        .otherwise(Reply::status(503))
        .start()
        .await?;
    // 10 % of first attempts plus 1 retry a second; backoffs of at most 1 ms keep the
    // whole run inside one second of the paused clock.
    let budget = BudgetConfig {
        per_mille: 100,
        min_per_second: 1,
    };
    let retry = RetryPolicy::builder()
        .budget(Some(budget))
        .backoff(ms(1), ms(1))
        .build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    for _ in 0..20 {
        let error = client.execute(get()).await.expect_err("always 503");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    }

    // 20 first attempts; retries: 1 from the floor, then 1 per 10 first attempts (the
    // 10th and the 20th). Without a budget the server would see 80.
    assert_eq!(server.received(), 23);
    assert_eq!(client.usage().buckets[0].retries, 3);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn exhausted_budget_on_429_is_a_rate_limit_error() -> TestResult {
    let server = TestServer::builder()
        .otherwise(Reply::status(429))
        .start()
        .await?;
    let budget = BudgetConfig {
        per_mille: 100,
        min_per_second: 1,
    };
    let retry = RetryPolicy::builder()
        .budget(Some(budget))
        .backoff(ms(1), ms(1))
        .build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    let error = client.execute(get()).await.expect_err("always 429");

    let limited = rate_limited(&error);
    assert_eq!(limited.reason, RateLimitReason::BudgetExhausted);
    assert_eq!(limited.attempts, 2, "the floor allowed one retry");
    assert_eq!(server.received(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn hint_false_stops_an_idempotent_retry() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(503).header("stripe-should-retry", "false"))
        .reply(
            Reply::status(429)
                .retry_after(1)
                .header("stripe-should-retry", "false"),
        )
        .start()
        .await?;
    let retry = RetryPolicy::builder()
        .hint_header("stripe-should-retry")
        .build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    let error = client.execute(get()).await.expect_err("not retried");
    assert_eq!(error.api().map(|a| a.status.as_u16()), Some(503));
    assert_eq!(server.received(), 1);

    let error = client.execute(get()).await.expect_err("not retried");
    let limited = rate_limited(&error);
    assert_eq!(limited.reason, RateLimitReason::NotRetryable);
    assert_eq!(limited.attempts, 1);
    assert_eq!(server.received(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn hint_true_retries_a_post() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(503).header("stripe-should-retry", "true"))
        .start()
        .await?;
    let retry = RetryPolicy::builder()
        .hint_header("stripe-should-retry")
        .build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    let response = client.execute(post()).await?;

    assert_eq!(response.attempts(), 2);
    assert_eq!(server.statuses(), [503, 200]);
    assert!(server.seen().iter().all(|s| s.method == "POST"));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn refused_connection_on_a_post_is_retried() -> TestResult {
    let addr = closed_port().await?;
    let client = Client::builder("test", Policy::default())
        .base_url(format!("http://{addr}"))
        .build()?;

    let error = client.execute(post()).await.expect_err("nothing listens");

    assert!(error.is_connect(), "{error:?}");
    let usage = &client.usage().buckets[0];
    assert_eq!(
        (usage.sent, usage.retries, usage.failures),
        (4, 3, 1),
        "all four attempts were made"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn post_reaches_a_server_that_starts_late_exactly_once() -> TestResult {
    let addr = closed_port().await?;
    let later = tokio::spawn(async move {
        tokio::time::sleep(ms(1)).await;
        TestServer::builder().start_on(addr).await
    });
    let retry = RetryPolicy::builder().max_attempts(10).build()?;
    let client = Client::builder("test", Policy::default())
        .base_url(format!("http://{addr}"))
        .retry(retry)
        .build()?;

    let response = client.execute(post()).await?;
    let server = later.await??;

    assert!(response.attempts() >= 2, "the first connect was refused");
    assert_eq!(server.received(), 1, "refused connects sent nothing");
    assert_eq!(server.seen()[0].body, r#"{"name":"a"}"#);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn bare_429s_that_slow_the_pace_cost_no_attempt_down_to_the_floor() -> TestResult {
    // A server that refuses everything with a bare 429, and no retry budget, so only the
    // attempts cap can end the request.
    let server = TestServer::builder()
        .otherwise(Reply::status(429))
        .start()
        .await?;
    let limit = Limit::per_second(100)?;
    let no_budget = RetryPolicy::builder().budget(None).build()?;
    let client = client_for(&server, limited(limit)?)
        .retry(no_budget)
        .build()?;

    let error = client
        .execute(get())
        .await
        .expect_err("every attempt is refused");

    let refused = rate_limited(&error);
    assert_eq!(refused.reason, RateLimitReason::AttemptsExhausted);
    // Counted: the first (resent in its slot), the resend (a lone 429, which leaves the
    // pace alone) and two at the floor. Free: the 35 that cut the pace by 2 % each, from
    // 1 to 0.98^35, below one half, where it stops.
    assert_eq!(refused.attempts, 4 + 35);
    assert_eq!(server.received(), 39);
    assert_eq!(client.usage().buckets[0].pace, 0.5);

    // With retries off, no attempt is free.
    let client = client_for(&server, limited(limit)?)
        .retry(RetryPolicy::none())
        .build()?;
    let error = client.execute(get()).await.expect_err("refused");
    assert_eq!(rate_limited(&error).attempts, 1);
    assert_eq!(server.received(), 40);
    Ok(())
}
