//! The one error type every generated client returns.
//!
//! Variants carry data rather than text: a caller asks [`Error::is_rate_limited`] and
//! [`Error::retry_after`] instead of matching on messages. No variant holds a credential:
//! request headers are never kept, and transport errors drop the URL, which may carry an
//! API key in its query.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::limit::Limit;
use crate::policy::ConfigError;

/// Everything that can go wrong with a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was not sent, or not sent again, because of a rate limit.
    #[error("{0}")]
    RateLimited(Box<RateLimited>),
    /// The request's cost exceeds a limit's burst: it can never be sent.
    #[error("{0}")]
    NeverFits(Box<NeverFits>),
    /// The server answered with a status that is not a success.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The request did not complete: connection, TLS, timeout or body error.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The response body did not decode.
    #[error("{0}")]
    Decode(Box<DecodeError>),
    /// The request could not be built from the arguments given.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The client or its policy is misconfigured.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The shared quota store failed and the failure policy says to stop.
    #[error("quota store error: {0}")]
    Store(String),
}

impl Error {
    /// Whether the request hit a rate limit, on our side or the server's.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            Self::RateLimited(_) | Self::NeverFits(_) => true,
            Self::Api(api) => api.status == StatusCode::TOO_MANY_REQUESTS,
            _ => false,
        }
    }

    /// How long to wait before trying again, when anyone knows.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited(limited) => limited.retry_after,
            _ => None,
        }
    }

    /// The HTTP status, for errors that have one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api(api) => Some(api.status),
            Self::Decode(decode) => Some(decode.status),
            Self::RateLimited(limited) => limited.status,
            Self::Transport(err) => err.status(),
            _ => None,
        }
    }

    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Transport(err) if err.is_timeout())
    }

    /// Whether the connection failed before the request was sent.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Transport(err) if err.is_connect())
    }

    /// The API error, when the server answered with a failure status.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            _ => None,
        }
    }

    pub(crate) fn transport(err: reqwest::Error) -> Self {
        Self::Transport(err.without_url())
    }
}

// Large variants are boxed so that `Result<Permit, Error>`, which every acquire returns,
// stays small to move.
impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Self::Config(Box::new(error))
    }
}

/// A request whose cost exceeds a limit's burst, so that it can never be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "operation `{operation}` costs {cost}, which never fits limit {limit} of bucket `{bucket}`"
)]
pub struct NeverFits {
    /// The operation.
    pub operation: String,
    /// Its cost.
    pub cost: u32,
    /// The bucket.
    pub bucket: String,
    /// The limit it can never fit.
    pub limit: Limit,
}

/// A request stopped by a rate limit.
#[derive(Debug, Clone)]
pub struct RateLimited {
    /// The operation.
    pub operation: String,
    /// The bucket that refused: ours when the limiter refused; when the server did, the
    /// quota its resource header named (`x-ratelimit-resource`), else the operation's
    /// first bucket. `None` for an operation without buckets.
    pub bucket: Option<String>,
    /// When to try again.
    pub retry_after: Option<Duration>,
    /// Attempts made; 0 when the limiter refused before the first one.
    pub attempts: u32,
    /// The status of the last response, when the server refused.
    pub status: Option<StatusCode>,
    /// Why the request stopped.
    pub reason: RateLimitReason,
}

/// Why a request stopped on a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitReason {
    /// The local quota frees up later than the configured `max_wait`.
    WaitTooLong,
    /// The server asked for a delay above the retry policy's cap.
    RetryAfterTooLong,
    /// The server kept refusing until the attempts ran out.
    AttemptsExhausted,
    /// The retry budget was spent.
    BudgetExhausted,
    /// The server refused and the request is not safe to repeat.
    NotRetryable,
}

impl RateLimited {
    /// When to try again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation `{}` rate limited", self.operation)?;
        if let Some(bucket) = &self.bucket {
            write!(f, " by bucket `{bucket}`")?;
        }
        let reason = match self.reason {
            RateLimitReason::WaitTooLong => "local quota frees up after max_wait",
            RateLimitReason::RetryAfterTooLong => "server asked for a delay above the retry cap",
            RateLimitReason::AttemptsExhausted => "attempts exhausted",
            RateLimitReason::BudgetExhausted => "retry budget exhausted",
            RateLimitReason::NotRetryable => "request is not safe to retry",
        };
        write!(f, " ({reason}) after {} attempt(s)", self.attempts)?;
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {} ms", after.as_millis())?;
        }
        Ok(())
    }
}

/// A response whose status is not a success.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The operation.
    pub operation: String,
    /// The status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The body as JSON, when it is JSON.
    pub json: Option<serde_json::Value>,
}

impl ApiError {
    /// Decodes the body as `T`, for typed error bodies.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operation `{}` failed with status {}",
            self.operation, self.status
        )?;
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if !text.is_empty() {
            let cut: String = text.chars().take(200).collect();
            write!(f, ": {cut}")?;
        }
        Ok(())
    }
}

/// A body that did not decode into the expected type.
#[derive(Debug, Clone)]
pub struct DecodeError {
    /// The operation.
    pub operation: String,
    /// The response status.
    pub status: StatusCode,
    /// The raw body.
    pub body: Bytes,
    /// What the decoder said.
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operation `{}`: response body ({} bytes) did not decode: {}",
            self.operation,
            self.body.len(),
            self.message
        )
    }
}
