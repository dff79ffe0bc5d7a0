//! Edge cases found by the first integration run: GitHub-style exhausted windows, a
//! max_wait refusal after an attempt, and an idempotency key the caller sets.

mod common;

use common::{Reply, TestResult, TestServer, client_for, get, ms, post, secs};
use polvo_runtime::{Error, Policy, RateLimitReason, RetryPolicy};

#[tokio::test(start_paused = true)]
async fn exhausted_reset_on_a_429_is_capped_like_retry_after() -> TestResult {
    // GitHub-style primary limit: a 429 with remaining 0 and a reset an hour away, no
    // Retry-After. The asked delay (3600 s) is above the 60 s cap.
    let server = TestServer::builder()
        .otherwise(
            Reply::status(429)
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", 3600),
        )
        .start()
        .await?;
    let client = client_for(&server, Policy::default()).build()?;

    let error = client
        .execute(get())
        .await
        .expect_err("limit exhausted for an hour");

    let Error::RateLimited(limited) = &error else {
        panic!("expected a rate-limit error, got {error:?}");
    };
    assert_eq!(limited.reason, RateLimitReason::RetryAfterTooLong);
    assert_eq!(limited.retry_after, Some(secs(3600)));
    assert_eq!(
        server.received(),
        1,
        "the client slept an hour and tried again"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn max_wait_refusal_of_a_retry_keeps_attempts_and_status() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(429).retry_after(2))
        .start()
        .await?;
    let client = client_for(&server, Policy::default())
        .max_wait(ms(100))
        .build()?;

    let error = client
        .execute(get())
        .await
        .expect_err("cooldown above max_wait");

    let Error::RateLimited(limited) = &error else {
        panic!("expected a rate-limit error, got {error:?}");
    };
    assert_eq!(server.received(), 1);
    assert_eq!(limited.retry_after, Some(secs(2)));
    assert_eq!(limited.attempts, 1, "one attempt reached the server");
    assert_eq!(limited.status.map(|s| s.as_u16()), Some(429));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn caller_idempotency_key_is_sent_once_and_reused() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(503))
        .start()
        .await?;
    let retry = RetryPolicy::builder()
        .idempotency_header("idempotency-key")
        .build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    client
        .execute(post().header("idempotency-key", "caller-key-1"))
        .await?;

    for seen in server.seen() {
        let values: Vec<_> = seen.headers.get_all("idempotency-key").iter().collect();
        assert_eq!(
            values,
            ["caller-key-1"],
            "one key, the caller's, on every attempt"
        );
    }
    Ok(())
}
