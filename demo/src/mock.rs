//! A mock Stripe on loopback that enforces Stripe's documented global limits the way a
//! strict server would, for the demo and the bulk benchmark.
//!
//! Reads and writes each have their own limit (Stripe's live mode allows 100 of each per
//! second). Each is a GCRA with a tolerance of one request: a request that arrives
//! earlier than one interval after the previous one's theoretical arrival is refused with
//! `429`, `Retry-After: 1` and Stripe's `rate_limit_error` body. Customers exist as soon
//! as they are named: `POST /v1/customers/{id}` updates (or creates) one, and
//! `GET /v1/customers` lists them with `starting_after`, `limit` and `has_more`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A strict limit: GCRA with an interval of 1/rate and a tolerance of one request.
#[derive(Debug)]
struct Gate {
    interval: Duration,
    tat: Mutex<Option<Instant>>,
}

impl Gate {
    fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            tat: Mutex::new(None),
        }
    }

    /// Whether a request arriving now is within the limit; spends it if so.
    fn admit(&self) -> bool {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        let current = tat.unwrap_or(now).max(now);
        // Tolerance of one interval: the request may arrive up to one interval early.
        let admitted = current.saturating_duration_since(now) <= self.interval;
        if admitted {
            *tat = Some(current + self.interval);
        }
        admitted
    }
}

/// What the mock saw.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    rejected: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Stats {
    /// Requests answered normally.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Requests refused with 429.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Accepted requests per second between the first and the last accepted one.
    pub fn accepted_rate(&self) -> f64 {
        let first = *self.first.lock().unwrap_or_else(PoisonError::into_inner);
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match (first, last) {
            (Some(first), Some(last)) if last > first => {
                (self.accepted() - 1) as f64 / last.duration_since(first).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    fn accept(&self) {
        let now = Instant::now();
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(now);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
    }
}

#[derive(Debug)]
struct Mock {
    reads: Gate,
    writes: Gate,
    stats: Arc<Stats>,
    customers: Mutex<BTreeMap<String, Value>>,
}

/// A running mock Stripe.
#[derive(Debug)]
pub struct MockStripe {
    addr: SocketAddr,
    stats: Arc<Stats>,
}

impl MockStripe {
    /// Starts a mock allowing `per_second` reads and as many writes per second, with
    /// `customers` customers (`cus_0000`, `cus_0001`, ...) already there.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(per_second: u32, customers: usize) -> std::io::Result<Self> {
        let stats = Arc::new(Stats::default());
        let existing = (0..customers)
            .map(|i| {
                let id = customer_id(i);
                let customer = customer(&id, BTreeMap::new());
                (id, customer)
            })
            .collect();
        let mock = Arc::new(Mock {
            reads: Gate::new(per_second),
            writes: Gate::new(per_second),
            stats: stats.clone(),
            customers: Mutex::new(existing),
        });
        let app = Router::new()
            .route("/v1/customers", get(list))
            .route("/v1/customers/{id}", post(update))
            .with_state(mock);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, stats })
    }

    /// The base URL to point a client at.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the mock saw so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// The id of the `i`th customer the mock starts with.
pub fn customer_id(i: usize) -> String {
    format!("cus_{i:04}")
}

fn customer(id: &str, metadata: BTreeMap<String, String>) -> Value {
    json!({
        "id": id,
        "object": "customer",
        "created": 1_764_720_000,
        "livemode": false,
        "metadata": metadata,
    })
}

fn too_many(stats: &Stats) -> Response {
    stats.rejected.fetch_add(1, Ordering::Relaxed);
    let body = json!({"error": {
        "type": "invalid_request_error",
        "code": "rate_limit",
        "message": "Too many requests hit the API too quickly.",
    }});
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", "1"), ("stripe-should-retry", "true")],
        axum::Json(body),
    )
        .into_response()
}

async fn update(
    State(mock): State<Arc<Mock>>,
    Path(id): Path<String>,
    RawForm(form): RawForm,
) -> Response {
    if !mock.writes.admit() {
        return too_many(&mock.stats);
    }
    mock.stats.accept();
    // `metadata[key]=value` pairs become the customer's metadata.
    let metadata: BTreeMap<String, String> = form_urlencoded::parse(&form)
        .filter_map(|(key, value)| {
            let key = key.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_owned(), value.into_owned()))
        })
        .collect();
    let mut customers = mock
        .customers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let entry = customers
        .entry(id.clone())
        .or_insert_with(|| customer(&id, BTreeMap::new()));
    if let Some(stored) = entry.get_mut("metadata").and_then(Value::as_object_mut) {
        for (key, value) in metadata {
            stored.insert(key, Value::String(value));
        }
    }
    axum::Json(entry.clone()).into_response()
}

async fn list(
    State(mock): State<Arc<Mock>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if !mock.reads.admit() {
        return too_many(&mock.stats);
    }
    mock.stats.accept();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let customers = mock
        .customers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let after = query.get("starting_after");
    let mut rest = customers
        .iter()
        .filter(|(id, _)| after.is_none_or(|after| id.as_str() > after.as_str()));
    let data: Vec<Value> = rest.by_ref().take(limit).map(|(_, c)| c.clone()).collect();
    let has_more = rest.next().is_some();
    axum::Json(json!({
        "object": "list",
        "url": "/v1/customers",
        "has_more": has_more,
        "data": data,
    }))
    .into_response()
}
