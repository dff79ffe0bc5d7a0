//! Throttling against a real server on 127.0.0.1: cooldowns after a 429, the server's
//! remaining and reset headers, concurrent requests during a cooldown, `max_wait` and
//! pacing.
//!
//! Every test runs on tokio's paused clock; the server stamps each request with tokio's
//! `Instant`, so the delays asserted here are exact and no test sleeps for real.

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::{
    Reply, SLACK, ServerBuilder, TestResult, TestServer, assert_delay, client_for, get, limited,
    ms, secs,
};
use futures_util::StreamExt;
use polvo_runtime::{Client, Error, Limit, Policy, RateLimitReason, RetryPolicy, TokioClock};
use tokio::task::JoinSet;

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_delays_the_retry() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(429).retry_after(2))
        .start()
        .await?;
    let client = client_for(&server, Policy::default()).build()?;

    let response = client.execute(get()).await?;

    assert_eq!(response.status(), 200);
    assert_eq!(response.attempts(), 2);
    assert_eq!(server.statuses(), [429, 200]);
    assert_delay(server.gaps()[0], secs(2));
    let usage = &client.usage().buckets[0];
    assert_eq!(
        (usage.sent, usage.rejected, usage.retries, usage.throttled),
        (2, 1, 1, 1)
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_http_date_delays_the_retry() -> TestResult {
    // The client's wall clock reads exactly 1_700_000_000 s after the epoch, which is
    // Tue, 14 Nov 2023 22:13:20 GMT; the server asks for three seconds later.
    let clock = TokioClock::with_wall(UNIX_EPOCH + secs(1_700_000_000));
    let server = TestServer::builder()
        .reply(
            Reply::status(429)
                .header("retry-after", "Tue, 14 Nov 2023 22:13:23 GMT")
                .cooldown(secs(3)),
        )
        .start()
        .await?;
    let client = client_for(&server, Policy::default())
        .clock(Arc::new(clock))
        .build()?;

    let response = client.execute(get()).await?;

    assert_eq!(response.attempts(), 2);
    assert_eq!(server.statuses(), [429, 200]);
    assert_delay(server.gaps()[0], secs(3));
    Ok(())
}

/// A server giving `replies` in turn (then `200 OK`), and a client limited to 10/s.
async fn ten_per_second(
    replies: impl IntoIterator<Item = Reply>,
) -> Result<(TestServer, Client), Box<dyn std::error::Error>> {
    let server = replies
        .into_iter()
        .fold(TestServer::builder(), ServerBuilder::reply)
        .start()
        .await?;
    let client = client_for(&server, limited(Limit::per_second(10)?)?).build()?;
    Ok((server, client))
}

#[tokio::test(start_paused = true)]
async fn bare_429_on_a_limited_bucket_is_resent_in_its_slot() -> TestResult {
    // The refusal takes 20 ms to come back: the resend goes at once, and the next
    // request's slot moves back by those 20 ms, as the strict server's count moved.
    let (server, client) = ten_per_second([Reply::status(429).latency(ms(20))]).await?;

    let first = client.execute(get()).await?;
    let second = client.execute(get()).await?;

    assert_eq!((first.attempts(), second.attempts()), (2, 1));
    assert_eq!(server.statuses(), [429, 200, 200]);
    let gaps = server.gaps();
    assert_delay(gaps[0], ms(20));
    assert_delay(gaps[1], ms(100));
    let usage = &client.usage().buckets[0];
    assert_eq!((usage.rejected, usage.retries), (1, 1));
    assert_eq!(
        usage.pace, 0.9997,
        "a resend trims the pace by 0.05 %, and each success wins back 0.01 %"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_second_bare_429_takes_the_next_slot() -> TestResult {
    let (server, client) = ten_per_second([Reply::status(429), Reply::status(429)]).await?;

    let response = client.execute(get()).await?;

    assert_eq!(response.attempts(), 3);
    assert_eq!(server.statuses(), [429, 429, 200]);
    // Resent at once, then, refused again, it waits for the bucket's next slot: never
    // sooner than the limit allows and far from a one-second backoff.
    let gaps = server.gaps();
    assert_delay(gaps[0], Duration::ZERO);
    assert_delay(gaps[1], ms(100));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn after_a_refused_resend_the_next_bare_429_takes_the_next_slot() -> TestResult {
    // A server with some tolerance refuses only requests a slot or more early, and then
    // refuses the resend too: the bucket stops resending for a while.
    let (server, client) = ten_per_second([
        Reply::status(429),
        Reply::status(429),
        Reply::ok(),
        Reply::status(429),
    ])
    .await?;

    let first = client.execute(get()).await?;
    let second = client.execute(get()).await?;

    assert_eq!((first.attempts(), second.attempts()), (3, 2));
    assert_eq!(server.statuses(), [429, 429, 200, 429, 200]);
    let gaps = server.gaps();
    assert_delay(gaps[0], Duration::ZERO);
    for gap in &gaps[1..] {
        assert_delay(*gap, ms(100));
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_refused_resend_goes_again_while_in_its_slot() -> TestResult {
    // The first request's resend is admitted, so resends pay off with this server. The
    // second request's refusal takes 10 ms and it is resent at once; the resend is refused
    // in 2 ms, and the next goes once 20 ms have passed since the slot, twice the first
    // resend's time. The later slots move back by those 20 ms.
    let (server, client) = ten_per_second([
        Reply::status(429),
        Reply::ok(),
        Reply::status(429).latency(ms(10)),
        Reply::status(429).latency(ms(2)),
    ])
    .await?;

    let first = client.execute(get()).await?;
    let second = client.execute(get()).await?;
    let third = client.execute(get()).await?;

    assert_eq!(
        (first.attempts(), second.attempts(), third.attempts()),
        (2, 3, 1)
    );
    assert_eq!(server.statuses(), [429, 200, 429, 429, 200, 200]);
    let gaps = server.gaps();
    let expected = [Duration::ZERO, ms(100), ms(10), ms(10), ms(100)];
    for (gap, expected) in gaps.into_iter().zip(expected) {
        assert_delay(gap, expected);
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_bare_429_half_a_slot_late_takes_the_next_slot() -> TestResult {
    // Resending 60 ms into a 100 ms slot would move every later slot by more than half
    // a slot; the next slot costs less.
    let (server, client) = ten_per_second([Reply::status(429).latency(ms(60))]).await?;

    let response = client.execute(get()).await?;

    assert_eq!(response.attempts(), 2);
    assert_eq!(server.statuses(), [429, 200]);
    assert_delay(server.gaps()[0], ms(100));
    assert_eq!(
        client.usage().buckets[0].pace,
        1.0,
        "a lone 429 leaves the pace alone"
    );
    Ok(())
}

/// How a client limited to 10/s fared against a strict server once its pace settled.
struct Settled {
    /// Admitted requests per second after the first 200.
    rate: f64,
    /// 429s after the first 200 admitted requests.
    late_429s: usize,
    /// The pace at the end.
    pace: f64,
}

/// Requests in a [`settle`] run; the first 200 are left for the pace to settle.
const SETTLE_REQUESTS: usize = 600;

/// Sends [`SETTLE_REQUESTS`], eight at a time, from a client limited to 10/s to `server`.
async fn settle(server: ServerBuilder) -> Result<Settled, Box<dyn std::error::Error>> {
    let server = server.start().await?;
    let client = client_for(&server, limited(Limit::per_second(10)?)?).build()?;
    let client = &client;

    let results: Vec<_> = futures_util::stream::iter(0..SETTLE_REQUESTS)
        .map(|_| client.execute(get()))
        .buffer_unordered(8)
        .collect()
        .await;

    assert!(results.iter().all(Result::is_ok), "every request succeeds");
    let seen = server.seen();
    let admitted: Vec<_> = seen
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.at)
        .collect();
    assert_eq!(admitted.len(), SETTLE_REQUESTS);
    let (from, to) = (admitted[200], admitted[SETTLE_REQUESTS - 1]);
    let late_429s = seen
        .iter()
        .filter(|s| s.status == 429 && s.at > from)
        .count();
    Ok(Settled {
        rate: (SETTLE_REQUESTS - 201) as f64 / (to - from).as_secs_f64(),
        late_429s,
        pace: client.usage().buckets[0].pace,
    })
}

#[tokio::test(start_paused = true)]
async fn a_server_stricter_than_configured_is_served_near_its_own_limit() -> TestResult {
    // Configured for 10/s; the server allows 8/s and says nothing but a bare 429. Until
    // the pace comes down, every other request is refused; the 429s that bring it down
    // cost no attempt, so the default four are enough for every request.
    let settled = settle(TestServer::builder().strict(8)).await?;

    // Once settled, the server's limit is used to within 10 %, and at most one request
    // in 50 earns a 429.
    let Settled {
        rate,
        late_429s,
        pace,
    } = settled;
    assert!(
        rate >= 8.0 * 0.9,
        "served at {rate:.2}/s of the server's 8/s"
    );
    let settled_requests = SETTLE_REQUESTS - 200;
    assert!(
        late_429s * 50 <= settled_requests,
        "{late_429s} 429s once settled"
    );
    assert!(
        pace < 0.82,
        "the pace came down to the server's limit: {pace}"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_server_a_little_stricter_is_not_refused_every_request() -> TestResult {
    // Configured for 10/s; the server allows one request per 102 ms and its refusals take
    // 5 ms to come back. Every request then arrives 2 ms early and is refused, and its
    // resend, 5 ms later, is admitted: with the pace left alone, each request would earn
    // a 429. Each resend trims the pace, so it settles near the server's limit.
    let server = TestServer::builder().strict_every(ms(102), ms(5));
    let Settled {
        rate, late_429s, ..
    } = settle(server).await?;

    // Once settled, at most one request in four earns a 429, and the server's limit is
    // used to within 3 %.
    let settled_requests = SETTLE_REQUESTS - 200;
    assert!(
        late_429s * 4 <= settled_requests,
        "{late_429s} 429s in the last {settled_requests} requests"
    );
    let limit = 1.0 / 0.102;
    assert!(
        rate >= limit * 0.97,
        "served at {rate:.3}/s of {limit:.3}/s"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn bare_429_without_limits_backs_off_under_the_ceiling() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(429))
        .reply(Reply::status(429))
        .reply(Reply::status(429))
        .start()
        .await?;
    let retry = RetryPolicy::builder().backoff(ms(300), ms(500)).build()?;
    let client = client_for(&server, Policy::default())
        .retry(retry)
        .build()?;

    let response = client.execute(get()).await?;

    assert_eq!(response.attempts(), 4);
    assert_eq!(server.statuses(), [429, 429, 429, 200]);
    // Full jitter under 300 ms, then 600 ms capped at 500 ms, twice.
    let ceilings = [ms(300), ms(500), ms(500)];
    for (gap, ceiling) in server.gaps().into_iter().zip(ceilings) {
        assert!(gap <= ceiling + SLACK, "backoff {gap:?} above {ceiling:?}");
    }
    let usage = &client.usage().buckets[0];
    assert_eq!(
        usage.blocked_for,
        Duration::ZERO,
        "no cooldown without a retry time"
    );
    assert_eq!((usage.rejected, usage.retries), (3, 3));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn exhausted_quota_waits_for_the_reset() -> TestResult {
    let server = TestServer::builder()
        .reply(
            Reply::ok()
                .header("x-ratelimit-limit", 100)
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", 3)
                .cooldown(secs(3)),
        )
        .start()
        .await?;
    let client = client_for(&server, Policy::default()).build()?;

    client.execute(get()).await?;
    let usage = &client.usage().buckets[0];
    assert_eq!(usage.server_remaining, Some(0));
    assert_eq!(usage.server_limit, Some(100));
    assert_eq!(usage.server_reset_in, Some(secs(3)));
    assert_eq!(usage.blocked_for, secs(3));

    let response = client.execute(get()).await?;

    assert_eq!(response.attempts(), 1);
    assert_eq!(server.statuses(), [200, 200]);
    assert_delay(server.gaps()[0], secs(3));
    assert_eq!(client.usage().buckets[0].throttled, 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn server_remaining_below_local_belief_is_adopted() -> TestResult {
    // Locally 10 are available at once; the server says 2 are left after the first.
    let server = TestServer::builder()
        .reply(
            Reply::ok()
                .header("x-ratelimit-limit", 10)
                .header("x-ratelimit-remaining", 2)
                .header("x-ratelimit-reset", 1),
        )
        .start()
        .await?;
    let limit = Limit::per_second(10)?.with_burst(10)?;
    let client = client_for(&server, limited(limit)?).build()?;

    client.execute(get()).await?;
    let usage = &client.usage().buckets[0];
    assert_eq!(usage.server_remaining, Some(2));
    assert_eq!(usage.available, [2]);

    for _ in 0..3 {
        client.execute(get()).await?;
    }

    // Two go at once, the third waits for the next unit at the configured rate.
    let offsets = server.offsets();
    assert_eq!(offsets[..3], [Duration::ZERO; 3]);
    assert_delay(offsets[3], ms(100));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn quota_spent_elsewhere_causes_no_429() -> TestResult {
    // The server allows 5 per second and other processes already spent 3 of this window;
    // locally the bucket believes all 5 are free. Without header tracking the client
    // would send 5 at once and earn 3 refusals.
    let server = TestServer::builder().window(5, secs(1), 3).start().await?;
    let limit = Limit::per_second(5)?.with_burst(5)?;
    let client = client_for(&server, limited(limit)?).build()?;

    for _ in 0..12 {
        let response = client.execute(get()).await?;
        assert_eq!(response.attempts(), 1);
    }

    assert_eq!(server.received(), 12);
    assert_eq!(server.rejected(), 0);
    assert_eq!(client.usage().buckets[0].rejected, 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn queued_requests_wait_out_a_cooldown() -> TestResult {
    let interval = ms(100);
    let (server, client) = ten_per_second([Reply::status(429).retry_after(1)]).await?;

    let mut tasks = JoinSet::new();
    for _ in 0..5 {
        let client = client.clone();
        tasks.spawn(async move { client.execute(get()).await });
    }
    let mut attempts = 0;
    while let Some(result) = tasks.join_next().await {
        attempts += result??.attempts();
    }

    // One 429, and every other request waited for the cooldown instead of earning its own.
    assert_eq!(attempts, 6);
    assert_eq!(server.received(), 6);
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.statuses()[0], 429);
    let offsets = server.offsets();
    assert!(offsets[1..].iter().all(|&at| at >= secs(1)), "{offsets:?}");
    for gap in server.gaps() {
        assert!(gap >= interval, "the limit still spaces requests: {gap:?}");
    }
    assert!(offsets[5] <= secs(1) + 5 * interval + SLACK, "{offsets:?}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn requests_waiting_for_a_slot_in_flight_wait_out_a_cooldown() -> TestResult {
    let server = TestServer::builder()
        .reply(Reply::status(429).retry_after(1))
        .start()
        .await?;
    let client = client_for(&server, Policy::default())
        .max_in_flight(1)
        .build()?;

    let mut tasks = JoinSet::new();
    for _ in 0..4 {
        let client = client.clone();
        tasks.spawn(async move { client.execute(get()).await });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }

    assert_eq!(server.received(), 5);
    assert_eq!(server.rejected(), 1);
    let offsets = server.offsets();
    assert!(offsets[1..].iter().all(|&at| at >= secs(1)), "{offsets:?}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn max_wait_refuses_at_once_with_the_exact_wait() -> TestResult {
    let server = TestServer::builder().start().await?;
    let client = client_for(&server, limited(Limit::per_second(1)?)?)
        .max_wait(ms(100))
        .build()?;

    client.execute(get()).await?;
    let error = client
        .execute(get())
        .await
        .expect_err("the second request would wait a second");

    let Error::RateLimited(limited) = &error else {
        panic!("expected a rate-limit error, got {error:?}");
    };
    assert_eq!(limited.reason, RateLimitReason::WaitTooLong);
    assert_eq!(limited.retry_after(), Some(secs(1)));
    assert_eq!(limited.attempts, 0);
    assert_eq!(limited.bucket.as_deref(), Some("default"));
    assert_eq!(limited.status, None);
    assert!(error.is_rate_limited());
    assert_eq!(server.received(), 1);

    // Nothing was spent by the refusal: after the second, the next request goes at once.
    tokio::time::advance(secs(1)).await;
    let response = client.execute(get()).await?;
    assert_eq!(response.attempts(), 1);
    assert_eq!(server.received(), 2);
    assert_delay(server.gaps()[0], secs(1));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn pacing_keeps_the_configured_rate() -> TestResult {
    let interval = ms(20);
    let server = TestServer::builder().start().await?;
    let client = client_for(&server, limited(Limit::per_second(50)?)?).build()?;

    for _ in 0..20 {
        client.execute(get()).await?;
    }

    assert_eq!(server.received(), 20);
    for gap in server.gaps() {
        assert!(gap >= interval, "requests {gap:?} apart");
    }
    let total = server.offsets()[19];
    assert!(
        total >= 19 * interval && total < 20 * interval,
        "20 requests took {total:?}"
    );
    Ok(())
}
