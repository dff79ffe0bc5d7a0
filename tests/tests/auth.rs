//! Credentials against a real server on 127.0.0.1: each kind of [`Auth`] reaches the
//! server, and none shows in the client's `Debug` or in the `Display` and `Debug` of the
//! errors a request produces.

mod common;

use std::error::Error as _;

use common::{Reply, TestResult, TestServer, client_for, get, secs};
use polvo_runtime::{Auth, Client, Error, Policy, RetryPolicy};

/// Asserts that `secret` shows nowhere in `error`: its `Display`, its `Debug`, or the
/// `Display` of any error in its source chain.
#[track_caller]
fn assert_hidden(error: &Error, secret: &str) {
    let mut texts = vec![error.to_string(), format!("{error:?}")];
    let mut source = error.source();
    while let Some(inner) = source {
        texts.push(inner.to_string());
        source = inner.source();
    }
    for text in texts {
        assert!(!text.contains(secret), "`{secret}` leaked in: {text}");
    }
}

/// A server that refuses every request with a 401 and a JSON body.
async fn refusing_server() -> std::io::Result<TestServer> {
    let reply = Reply::status(401).body(r#"{"error":"invalid credentials"}"#);
    TestServer::builder().otherwise(reply).start().await
}

#[tokio::test(start_paused = true)]
async fn bearer_token_is_sent_and_hidden() -> TestResult {
    let secret = "tok-bearer-7f3a9c";
    let server = refusing_server().await?;
    let client = client_for(&server, Policy::default())
        .auth(Auth::bearer(secret))
        .build()?;

    let error = client.execute(get()).await.expect_err("a 401");

    let expected = format!("Bearer {secret}");
    assert_eq!(
        server.seen()[0].header("authorization"),
        Some(expected.as_str())
    );
    assert_eq!(error.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(server.received(), 1, "a 401 is not retried");
    assert!(!format!("{client:?}").contains(secret));
    assert_hidden(&error, secret);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn basic_credentials_are_sent_and_hidden() -> TestResult {
    let secret = "pw-basic-51d2e0";
    let server = refusing_server().await?;
    let client = client_for(&server, Policy::default())
        .auth(Auth::basic("alice", secret))
        .build()?;

    let error = client.execute(get()).await.expect_err("a 401");

    // base64("alice:pw-basic-51d2e0")
    let encoded = "YWxpY2U6cHctYmFzaWMtNTFkMmUw";
    let expected = format!("Basic {encoded}");
    assert_eq!(
        server.seen()[0].header("authorization"),
        Some(expected.as_str())
    );
    let debug = format!("{client:?}");
    assert!(!debug.contains(secret) && !debug.contains(encoded));
    assert_hidden(&error, secret);
    assert_hidden(&error, encoded);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn header_key_is_sent_and_hidden() -> TestResult {
    let secret = "key-header-0b8e44";
    let server = refusing_server().await?;
    let client = client_for(&server, Policy::default())
        .auth(Auth::header("x-api-key", secret)?)
        .build()?;

    let error = client.execute(get()).await.expect_err("a 401");

    assert_eq!(server.seen()[0].header("x-api-key"), Some(secret));
    assert!(!format!("{client:?}").contains(secret));
    assert_hidden(&error, secret);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn query_key_is_sent_and_hidden() -> TestResult {
    let secret = "key-query-c4a1f9";
    let server = refusing_server().await?;
    let client = client_for(&server, Policy::default())
        .auth(Auth::query("api_key", secret))
        .build()?;

    let error = client.execute(get()).await.expect_err("a 401");

    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/things");
    assert_eq!(seen.query.as_deref(), Some("api_key=key-query-c4a1f9"));
    assert!(!format!("{client:?}").contains(secret));
    assert_hidden(&error, secret);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn transport_error_hides_a_query_key() -> TestResult {
    let secret = "key-query-9e07b2";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    let client = Client::builder("test", Policy::default())
        .base_url(format!("http://{addr}"))
        .auth(Auth::query("api_key", secret))
        .retry(RetryPolicy::none())
        .build()?;

    let error = client.execute(get()).await.expect_err("nothing listens");

    assert!(error.is_connect(), "{error:?}");
    assert_hidden(&error, secret);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeout_error_hides_a_query_key() -> TestResult {
    // A listener that accepts and never answers: the paused clock runs straight to the
    // request timeout.
    let secret = "key-query-41c3d8";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let client = Client::builder("test", Policy::default())
        .base_url(format!("http://{addr}"))
        .auth(Auth::query("api_key", secret))
        .timeout(Some(secs(5)))
        .retry(RetryPolicy::none())
        .build()?;
    let silent = tokio::spawn(async move {
        // Keep the accepted socket open without ever answering.
        let accepted = listener.accept().await;
        std::future::pending::<()>().await;
        drop(accepted);
    });

    let error = client.execute(get()).await.expect_err("no answer");
    silent.abort();

    assert!(error.is_timeout(), "{error:?}");
    assert_hidden(&error, secret);
    Ok(())
}

/// Everything the `tracing` events of a test wrote, at every level.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn no_credential_reaches_a_log_event() -> TestResult {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runs on one thread, so this subscriber sees every event of the client.
    let _guard = tracing::subscriber::set_default(subscriber);

    let secret = "key-in-query-0c4d1b";
    let server = TestServer::builder()
        .reply(Reply::status(429).retry_after(1))
        .reply(Reply::status(503))
        .reply(Reply::ok())
        .otherwise(Reply::status(401))
        .start()
        .await?;
    let client = client_for(&server, Policy::default())
        .auth(Auth::query("api_key", secret))
        .build()?;

    // A 429 and a 503 retried, a success, then a refusal.
    client.execute(get()).await?;
    client.execute(get()).await.expect_err("a 401");
    assert_eq!(server.received(), 4);

    let logs = captured.text();
    assert!(logs.contains("retry"), "the retries were logged:\n{logs}");
    assert!(
        !logs.contains(secret),
        "`{secret}` leaked in a log event:\n{logs}"
    );
    Ok(())
}
