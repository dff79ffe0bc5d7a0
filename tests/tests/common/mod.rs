//! A small HTTP server on 127.0.0.1 for the integration tests, and helpers around it.
//!
//! The server plays an API that enforces its own rate limit and reports it in headers. It
//! answers from a script first (one [`Reply`] per request, in order), then from a
//! fixed-window limit when one is set, then with a fallback reply. A reply may start a
//! cooldown: until it ends the server refuses every request with a 429, as a real API
//! would, so a client that retries too early shows up as an extra 429.
//!
//! Every request is recorded with the instant it arrived on tokio's clock. Tests run on
//! tokio's paused clock (`start_paused = true`), so those instants are exact and delays
//! are measured on them, never on the wall clock.

// Each test binary compiles this module and uses a different part of it.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use polvo_runtime::{Client, ClientBuilder, Limit, Policy, Request};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What test functions return, so set-up steps can use `?`.
pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How far past its target a delay on the paused clock may land. Virtual time moves only
/// when every task is idle, so delays are exact in practice; the slack only keeps an
/// assertion from depending on a nanosecond of rounding.
pub(crate) const SLACK: Duration = Duration::from_millis(1);

/// `n` seconds.
pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `n` milliseconds.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Asserts that `actual` is `expected`, or later by at most [`SLACK`].
#[track_caller]
pub(crate) fn assert_delay(actual: Duration, expected: Duration) {
    assert!(
        actual >= expected && actual <= expected + SLACK,
        "expected a delay of {expected:?}, got {actual:?}"
    );
}

/// One response the server gives.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: String,
    cooldown: Option<Duration>,
    latency: Duration,
}

impl Reply {
    /// `200 OK` with a small JSON body.
    pub(crate) fn ok() -> Self {
        Self::status(200).body(r#"{"ok":true}"#)
    }

    /// An empty response with `status`.
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: Vec::new(),
            body: String::new(),
            cooldown: None,
            latency: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers
            .push((HeaderName::from_static(name), value.to_string()));
        self
    }

    /// Sets the body.
    pub(crate) fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends `Retry-After: secs` and refuses every request until that delay has passed.
    pub(crate) fn retry_after(self, secs: u64) -> Self {
        self.header("retry-after", secs)
            .cooldown(Duration::from_secs(secs))
    }

    /// Refuses every request for `delay` after this one.
    pub(crate) fn cooldown(mut self, delay: Duration) -> Self {
        self.cooldown = Some(delay);
        self
    }

    /// Answers `delay` after the request arrived.
    pub(crate) fn latency(mut self, delay: Duration) -> Self {
        self.latency = delay;
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// When it arrived, on tokio's clock.
    pub(crate) at: Instant,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The status the server answered with.
    pub(crate) status: u16,
}

impl Seen {
    /// The value of header `name`, when there is exactly one and it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    }
}

/// A fixed-window limit the server enforces: `limit` requests per `period`, windows
/// aligned on the server's start.
#[derive(Debug, Clone, Copy)]
struct Window {
    limit: u64,
    period: Duration,
    index: u128,
    used: u64,
}

impl Window {
    /// Admits or refuses one request at `elapsed` since the server started, with the
    /// `X-RateLimit-*` headers a real API sends (reset as a delay in seconds).
    fn admit(&mut self, elapsed: Duration) -> Reply {
        let index = elapsed.as_nanos() / self.period.as_nanos();
        if index != self.index {
            self.index = index;
            self.used = 0;
        }
        let end = self.period.as_nanos() * (index + 1) - elapsed.as_nanos();
        let reset = Duration::from_nanos(u64::try_from(end).unwrap_or(u64::MAX));
        let refused = self.used >= self.limit;
        if !refused {
            self.used += 1;
        }
        let reply = if refused {
            let wait = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
            Reply::status(429).header("retry-after", wait)
        } else {
            Reply::ok()
        };
        reply
            .header("x-ratelimit-limit", self.limit)
            .header("x-ratelimit-remaining", self.limit - self.used)
            .header("x-ratelimit-reset", decimal_seconds(reset))
    }
}

/// A strict limit the server enforces with GCRA and no tolerance: a request arriving
/// before one interval has passed since the previous admitted one's theoretical arrival
/// gets a bare `429`, with no header to say when to come back.
#[derive(Debug, Clone, Copy)]
struct Strict {
    interval: Duration,
    tat: Option<Instant>,
    /// How long a refusal takes to come back.
    refused_after: Duration,
}

impl Strict {
    fn admit(&mut self, now: Instant) -> Reply {
        let tat = self.tat.unwrap_or(now).max(now);
        if tat > now {
            return Reply::status(429).latency(self.refused_after);
        }
        self.tat = Some(tat + self.interval);
        Reply::ok()
    }
}

/// A delay as exact decimal seconds, as the runtime's header parser reads them.
fn decimal_seconds(delay: Duration) -> String {
    format!("{}.{:09}", delay.as_secs(), delay.subsec_nanos())
}

/// Configures a [`TestServer`]; see [`TestServer::builder`].
#[derive(Debug, Clone)]
pub(crate) struct ServerBuilder {
    script: VecDeque<Reply>,
    window: Option<Window>,
    strict: Option<Strict>,
    otherwise: Reply,
}

impl ServerBuilder {
    /// Answers the next request of the script with `reply`.
    pub(crate) fn reply(mut self, reply: Reply) -> Self {
        self.script.push_back(reply);
        self
    }

    /// Answers every request after the script with `reply` (default [`Reply::ok`]).
    pub(crate) fn otherwise(mut self, reply: Reply) -> Self {
        self.otherwise = reply;
        self
    }

    /// Enforces `limit` requests per `period`, of which `spent` are already used in the
    /// first window (by "other processes" sharing the key).
    pub(crate) fn window(mut self, limit: u64, period: Duration, spent: u64) -> Self {
        self.window = Some(Window {
            limit,
            period,
            index: 0,
            used: spent,
        });
        self
    }

    /// Enforces `per_second` requests a second strictly, answering excess with a bare 429.
    pub(crate) fn strict(self, per_second: u32) -> Self {
        self.strict_every(Duration::from_secs(1) / per_second.max(1), Duration::ZERO)
    }

    /// Admits one request per `interval` strictly; each bare 429 takes `refused_after`
    /// to come back.
    pub(crate) fn strict_every(mut self, interval: Duration, refused_after: Duration) -> Self {
        self.strict = Some(Strict {
            interval,
            tat: None,
            refused_after,
        });
        self
    }

    /// Starts the server on a free port of 127.0.0.1.
    pub(crate) async fn start(self) -> std::io::Result<TestServer> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts the server on `addr`.
    pub(crate) async fn start_on(self, addr: SocketAddr) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            origin: Instant::now(),
            state: Mutex::new(ServerState {
                script: self.script,
                window: self.window,
                strict: self.strict,
                otherwise: self.otherwise,
                cooldown_until: None,
                seen: Vec::new(),
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            // The server lives as long as the test; an error here shows up as failed
            // requests in the test itself.
            let _ = axum::serve(listener, app).await;
        });
        Ok(TestServer { addr, shared, task })
    }
}

/// A running test server; it stops when dropped.
#[derive(Debug)]
pub(crate) struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    origin: Instant,
    state: Mutex<ServerState>,
}

#[derive(Debug)]
struct ServerState {
    script: VecDeque<Reply>,
    window: Option<Window>,
    strict: Option<Strict>,
    otherwise: Reply,
    cooldown_until: Option<Instant>,
    seen: Vec<Seen>,
}

impl TestServer {
    /// A server answering `200 OK` to everything until configured otherwise.
    pub(crate) fn builder() -> ServerBuilder {
        ServerBuilder {
            script: VecDeque::new(),
            window: None,
            strict: None,
            otherwise: Reply::ok(),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received, in arrival order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Requests received.
    pub(crate) fn received(&self) -> usize {
        self.lock().seen.len()
    }

    /// Requests refused with a 429.
    pub(crate) fn rejected(&self) -> usize {
        self.statuses().iter().filter(|&&s| s == 429).count()
    }

    /// The status of every answer, in order.
    pub(crate) fn statuses(&self) -> Vec<u16> {
        self.lock().seen.iter().map(|s| s.status).collect()
    }

    /// Arrival times relative to the first request.
    pub(crate) fn offsets(&self) -> Vec<Duration> {
        let seen = self.seen();
        let Some(first) = seen.first().map(|s| s.at) else {
            return Vec::new();
        };
        seen.iter().map(|s| s.at - first).collect()
    }

    /// Time between consecutive arrivals.
    pub(crate) fn gaps(&self) -> Vec<Duration> {
        let seen = self.seen();
        seen.windows(2).map(|w| w[1].at - w[0].at).collect()
    }

    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let reply = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let reply = answer(&mut state, at, shared.origin);
        state.seen.push(Seen {
            at,
            method,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body,
            status: reply.status.as_u16(),
        });
        reply
    };
    tokio::time::sleep(reply.latency).await;
    into_response(reply)
}

/// Picks the answer: an active cooldown refuses, then the script, the strict limit, the
/// window and the fallback answer in that order.
fn answer(state: &mut ServerState, now: Instant, origin: Instant) -> Reply {
    if let Some(until) = state.cooldown_until.filter(|&until| now < until) {
        let left = until - now;
        let wait = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        return Reply::status(429).header("retry-after", wait);
    }
    if let Some(reply) = state.script.pop_front() {
        if let Some(cooldown) = reply.cooldown {
            state.cooldown_until = Some(now + cooldown);
        }
        return reply;
    }
    if let Some(strict) = &mut state.strict {
        return strict.admit(now);
    }
    if let Some(window) = &mut state.window {
        return window.admit(now - origin);
    }
    state.otherwise.clone()
}

fn into_response(reply: Reply) -> Response {
    let mut headers = HeaderMap::new();
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    (reply.status, headers, reply.body).into_response()
}

/// A client builder for `server` under `policy`.
pub(crate) fn client_for(server: &TestServer, policy: Policy) -> ClientBuilder {
    Client::builder("test", policy).base_url(server.url())
}

/// A policy whose default bucket enforces `limit`.
pub(crate) fn limited(limit: Limit) -> Result<Policy, polvo_runtime::ConfigError> {
    Policy::builder().bucket("default", [limit]).build()
}

/// `GET /things`.
pub(crate) fn get() -> Request {
    Request::new(Method::GET, "/things", "listThings")
}

/// `POST /things` with a small JSON body.
pub(crate) fn post() -> Request {
    Request::new(Method::POST, "/things", "createThing").json(&serde_json::json!({"name": "a"}))
}
