//! # polvo-runtime
//!
//! The runtime every polvo-generated API client depends on. It keeps a client inside the
//! API's rate limits instead of reacting after the fact:
//!
//! - **Limits** ([`Limit`], [`Policy`]): named buckets of one or more limits (`100/s` and
//!   `5000/h` together), enforced with GCRA: O(1) state per limit, no background task.
//!   An operation spends one or more buckets atomically, with a cost.
//! - **Acquire** ([`Limiter`]): one reservation across all of an operation's buckets,
//!   first come first served, scheduled from theoretical arrival times so a paced stream
//!   keeps the configured rate.
//! - **Tracking** ([`headers`]): `Retry-After`, `X-RateLimit-*`, and the IETF `RateLimit`
//!   fields are read from every response; the limiter takes the server's view whenever it
//!   is tighter, and a 429 pauses the whole bucket.
//! - **Retries** ([`RetryPolicy`]): only when safe, never sooner than the server asked,
//!   with full-jitter backoff and a retry budget.
//! - **Errors** ([`Error`]): typed, with predicates such as [`Error::is_rate_limited`] and
//!   [`Error::retry_after`]; no credential ever appears in one.
//! - **Transport** ([`Client`], [`Request`]): reqwest with rustls, driving all of the above.
//! - **Bulk and pages** ([`bulk`], [`paginate`]): thousands of calls at the allowed rate,
//!   every item reported; auto-paging streams paced by the limiter.
//! - **Usage** ([`Usage`]): a per-bucket snapshot; every throttle, cooldown and retry is
//!   also a `tracing` event.
//!
//! ## Cargo features
//!
//! - `redis`: `RedisStore`, a quota shared between processes.
//! - `metrics`: the usage counters exported through the [`metrics`] facade, labelled with
//!   `service` and `bucket`: `polvo_requests_sent_total`, `polvo_throttled_total`,
//!   `polvo_throttle_wait_seconds` (a histogram), `polvo_rate_limited_total` (429s),
//!   `polvo_retries_total`, `polvo_failures_total` and `polvo_cooldowns_total`.
//!
//! [`metrics`]: https://docs.rs/metrics
//!
//! ```no_run
//! use polvo_runtime::{Client, Limit, Method, Policy, Request};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::builder()
//!     .bucket("default", [Limit::per_second(25)?, Limit::per_hour(5000)?])
//!     .build()?;
//! let client = Client::builder("example", policy).base_url("https://api.example.com").build()?;
//! match client.execute(Request::new(Method::GET, "/things", "listThings")).await {
//!     Ok(response) => println!("{}", response.text()),
//!     Err(e) if e.is_rate_limited() => println!("try again in {:?}", e.retry_after()),
//!     Err(e) => return Err(e.into()),
//! }
//! println!("{}", client.usage());
//! # Ok(())
//! # }
//! ```

pub mod bulk;
mod client;
mod clock;
mod error;
mod gcra;
pub mod headers;
mod limit;
mod limiter;
pub mod paginate;
mod policy;
#[cfg(feature = "redis")]
mod redis_store;
mod request;
mod retry;
mod round_trip;
mod store;
mod telemetry;
mod timer;
mod usage;

pub use client::{Auth, Client, ClientBuilder, Response, Secret};
pub use clock::{Clock, StdClock, TokioClock};
pub use error::{ApiError, DecodeError, Error, NeverFits, RateLimitReason, RateLimited};
pub use headers::{HeaderNames, RateLimitInfo, ResetKind};
pub use limit::{Limit, LimitError};
pub use limiter::{Limiter, Permit};
pub use policy::{
    BucketPolicy, ConfigError, DEFAULT_BUCKET, Mode, ModeCondition, OperationPolicy, Policy,
    PolicyBuilder,
};
#[cfg(feature = "redis")]
pub use redis_store::{OnFailure, RedisStore, RedisStoreBuilder};
pub use request::{Body, Part, QueryStyle, Request};
pub use retry::{BudgetConfig, RetryBudget, RetryPolicy, RetryPolicyBuilder};
pub use store::{
    BucketRef, BucketView, Grant, MemoryStore, QuotaStore, Report, ReserveRequest, ShiftCause,
    StoreError, StoreFuture, Ticket,
};
pub use usage::{BucketUsage, Usage};

pub use bytes::Bytes;
pub use http::{HeaderMap, Method, StatusCode};
pub use reqwest::Url;
