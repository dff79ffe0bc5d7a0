//! The HTTP client every generated client wraps: reqwest, run through the limiter, the
//! rate-limit header tracker and the retry policy.
//!
//! One call, [`Client::execute`], is the whole request path:
//! acquire quota → send → read the rate-limit headers → succeed, or decide to retry
//! (cooldown on 429, backoff on other statuses and connection errors) → try again or fail
//! with a typed error. The permit for requests in flight is held until the body is read.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest::Url;

use crate::clock::{Clock, TokioClock};
use crate::error::{ApiError, DecodeError, Error, RateLimitReason, RateLimited};
use crate::headers::RateLimitInfo;
use crate::limiter::{Event, InSlot, Limiter, Permit};
use crate::policy::{ConfigError, Policy};
use crate::request::{Body, Request};
use crate::retry::RetryBudget;
use crate::store::{MemoryStore, QuotaStore};

/// A secret string: shown as `***` in `Debug` and never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// An API key in a header.
    Header {
        /// The header name.
        name: HeaderName,
        /// The key.
        value: Secret,
    },
    /// An API key in a query parameter.
    Query {
        /// The parameter name.
        name: String,
        /// The key.
        value: Secret,
    },
}

impl Auth {
    /// A bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::Bearer(Secret::new(token))
    }

    /// HTTP basic credentials.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            user: user.into(),
            password: Secret::new(password),
        }
    }

    /// An API key sent in header `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Client`] when `name` is not a header name.
    pub fn header(name: &str, key: impl Into<String>) -> Result<Self, ConfigError> {
        let name = HeaderName::try_from(name)
            .map_err(|_| ConfigError::Client(format!("`{name}` is not a header name")))?;
        Ok(Self::Header {
            name,
            value: Secret::new(key),
        })
    }

    /// The credential a mode's key prefix is compared with: the token, the key, or the
    /// basic user (services such as Stripe put the key there).
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Bearer(token) => Some(token.expose()),
            Self::Basic { user, .. } => Some(user),
            Self::Header { value, .. } | Self::Query { value, .. } => Some(value.expose()),
        }
    }

    /// An API key sent in query parameter `name`.
    pub fn query(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self::Query {
            name: name.into(),
            value: Secret::new(key),
        }
    }
}

/// A response whose status was a success (or any status, from [`Client::send`]).
#[derive(Debug, Clone)]
pub struct Response {
    operation: &'static str,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    attempts: u32,
}

impl Response {
    /// The operation it answered.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body, owned.
    pub fn into_bytes(self) -> Bytes {
        self.body
    }

    /// Attempts it took.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Decodes the body as JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with the body when it does not decode as `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        // An empty body decodes as `null`, so `()` and `Option<T>` work for 204s.
        let body: &[u8] = if self.body.is_empty() {
            b"null"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| {
            Error::Decode(Box::new(DecodeError {
                operation: self.operation.to_owned(),
                status: self.status,
                body: self.body.clone(),
                message: e.to_string(),
            }))
        })
    }

    /// Turns a failure status into [`Error::Api`].
    ///
    /// # Errors
    ///
    /// [`Error::Api`] when the status is not 2xx.
    pub fn error_for_status(self) -> Result<Self, Error> {
        if self.status.is_success() {
            return Ok(self);
        }
        let json = serde_json::from_slice(&self.body).ok();
        Err(Error::Api(Box::new(ApiError {
            operation: self.operation.to_owned(),
            status: self.status,
            headers: self.headers,
            body: self.body,
            json,
        })))
    }
}

/// A configured API client. Cheap to clone; clones share limits and connections.
///
/// # Examples
///
/// ```no_run
/// use polvo_runtime::{Auth, Client, Method, Policy, Request};
///
/// # async fn run() -> Result<(), polvo_runtime::Error> {
/// let client = Client::builder("petstore", Policy::default())
///     .base_url("https://petstore.example.com/v1")
///     .auth(Auth::bearer("token"))
///     .rate_limit(20)
///     .build()?;
/// let pets: serde_json::Value = client
///     .execute(Request::new(Method::GET, "/pets", "listPets"))
///     .await?
///     .json()?;
/// println!("{pets}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    policy: Policy,
    limiter: Limiter,
    budget: Option<RetryBudget>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`Client`]; see [`Client::builder`].
#[derive(Debug)]
pub struct ClientBuilder {
    service: String,
    policy: Policy,
    base_url: Option<String>,
    auth: Auth,
    user_agent: String,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    store: Option<Arc<dyn QuotaStore>>,
    clock: Option<Arc<dyn Clock>>,
    http: Option<reqwest::Client>,
    #[cfg(feature = "redis")]
    shared_quota: Option<(String, crate::OnFailure)>,
    errors: Vec<ConfigError>,
}

impl Client {
    /// Starts a client for `service` under `policy`.
    pub fn builder(service: impl Into<String>, policy: Policy) -> ClientBuilder {
        ClientBuilder {
            service: service.into(),
            policy,
            base_url: None,
            auth: Auth::None,
            user_agent: concat!("polvo/", env!("CARGO_PKG_VERSION")).to_owned(),
            timeout: Some(Duration::from_secs(60)),
            connect_timeout: Duration::from_secs(10),
            store: None,
            clock: None,
            http: None,
            #[cfg(feature = "redis")]
            shared_quota: None,
            errors: Vec::new(),
        }
    }

    /// The limiter, to acquire quota by hand or share it.
    pub fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// A snapshot of every bucket's usage.
    ///
    /// With a shared store, units available are left empty; [`Client::usage_now`] reads
    /// them.
    pub fn usage(&self) -> crate::usage::Usage {
        self.inner.limiter.usage()
    }

    /// [`Client::usage`], with units available read from the store even when it is
    /// shared (one round trip per bucket to Redis).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a shared store cannot be read.
    pub async fn usage_now(&self) -> Result<crate::usage::Usage, Error> {
        self.inner.limiter.usage_now().await
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Sends `request` under the policy and returns the successful response.
    ///
    /// # Errors
    ///
    /// [`Error::Api`] for a failure status, [`Error::RateLimited`] when limits or the server
    /// refuse beyond what the retry policy allows, [`Error::Transport`] when the request
    /// does not complete, [`Error::InvalidRequest`] when it could not be built.
    pub async fn execute(&self, request: Request) -> Result<Response, Error> {
        self.send(request).await?.error_for_status()
    }

    /// Like [`Client::execute`], but returns the final response whatever its status, so
    /// typed error bodies can be decoded per status.
    ///
    /// # Errors
    ///
    /// As [`Client::execute`], except [`Error::Api`].
    pub async fn send(&self, request: Request) -> Result<Response, Error> {
        if let Some(error) = &request.error {
            return Err(Error::InvalidRequest(error.clone()));
        }
        let url = self.url(&request)?;
        let key = self.idempotency_key(&request);
        let result = self.run(&request, &url, key.as_ref()).await;
        if result.as_ref().map_or(true, |r| !r.status.is_success()) {
            self.inner.limiter.count(request.operation, Event::Failure);
        }
        result
    }

    async fn run(
        &self,
        request: &Request,
        url: &Url,
        key: Option<&HeaderValue>,
    ) -> Result<Response, Error> {
        let operation = request.operation;
        let retry = self.inner.policy.retry();
        let limiter = &self.inner.limiter;
        if let Some(budget) = &self.inner.budget {
            budget.deposit();
        }
        let mut attempt = 0;
        // Attempts counted against `max_attempts`: all but the free ones (see `Step`).
        let mut charged = 0;
        let mut last_status = None;
        // A permit kept for a resend in its slot, with the slot's resends so far.
        let mut kept: Option<(Permit, InSlot)> = None;
        loop {
            attempt += 1;
            charged += 1;
            let resending = kept.is_some();
            let (permit, mut in_slot) = match kept.take() {
                Some(kept) => kept,
                None => match limiter.acquire(operation).await {
                    Ok(permit) => {
                        crate::bulk::record_quota_wait(permit.waited());
                        let now = self.inner.clock.now();
                        let slot = now.checked_sub(permit.late()).unwrap_or(now);
                        (permit, InSlot::new(slot))
                    }
                    Err(error) => return Err(after_attempts(error, attempt - 1, last_status)),
                },
            };
            limiter.count(operation, Event::Sent);
            let outcome = self.attempt(request, url, key).await;
            if resending && let Ok((response, _)) = &outcome {
                let admitted = response.status != StatusCode::TOO_MANY_REQUESTS;
                limiter.resent(operation, admitted, &in_slot);
            }

            let decision = match outcome {
                Ok((response, took)) => {
                    last_status = Some(response.status);
                    let info = self.observe(operation, &response, took).await;
                    if response.status.is_success() {
                        limiter.succeeded(operation).await;
                        return Ok(Response {
                            attempts: attempt,
                            ..response
                        });
                    }
                    if !retry.retries_status(response.status.as_u16()) {
                        return Ok(Response {
                            attempts: attempt,
                            ..response
                        });
                    }
                    let resend = limiter.plan(operation).is_limited().then_some(&mut in_slot);
                    match self
                        .on_retryable_status(
                            request,
                            key.is_some(),
                            response,
                            info,
                            (attempt, charged),
                            resend,
                        )
                        .await?
                    {
                        Step::Retry { delay, free } => {
                            charged -= u32::from(free);
                            delay
                        }
                        Step::Resend => {
                            kept = Some((permit, in_slot));
                            limiter.count(operation, Event::Retry);
                            tracing::info!(operation, attempt, "resending in its slot");
                            continue;
                        }
                        Step::Return(response) => return Ok(response),
                    }
                }
                Err(error) => {
                    self.on_transport_error(request, key.is_some(), error, (attempt, charged))?
                }
            };
            drop(permit);
            if let Some(delay) = decision {
                tokio::time::sleep(delay).await;
            }
            limiter.count(operation, Event::Retry);
            tracing::info!(operation, attempt, "retrying");
        }
    }

    /// What a response tells the limiter: how long it took to come (see
    /// [`Limiter::round_trip`]) and the server's rate-limit headers.
    async fn observe(&self, operation: &str, response: &Response, took: Duration) -> RateLimitInfo {
        self.inner.limiter.round_trip(operation, took).await;
        let names = self.inner.policy.headers();
        let info = RateLimitInfo::parse(&response.headers, names, self.inner.clock.wall());
        if let Err(error) = self.inner.limiter.observe(operation, &info).await {
            tracing::warn!(operation, %error, "could not record the server's rate-limit state");
        }
        info
    }

    /// Decides what follows a retryable status: retry (after an optional sleep; without
    /// one the limiter's cooldown or next slot sets the pace), resend at once in the same
    /// slot, return the response as it is, or fail with a rate-limit error.
    ///
    /// `attempts` are the attempts made and those of them charged against `max_attempts`.
    /// `resend`, on a limited bucket, is the request's slot, for a resend in it.
    async fn on_retryable_status(
        &self,
        request: &Request,
        keyed: bool,
        response: Response,
        info: RateLimitInfo,
        (attempt, charged): (u32, u32),
        resend: Option<&mut InSlot>,
    ) -> Result<Step, Error> {
        let operation = request.operation;
        let limiter = &self.inner.limiter;
        let retry = self.inner.policy.retry();
        let status = response.status;
        let too_many = status == StatusCode::TOO_MANY_REQUESTS;
        let plan_limited = limiter.plan(operation).is_limited();
        if too_many {
            limiter.count(operation, Event::Rejected);
        }
        // A 429 with an exhausted window and no Retry-After (GitHub's primary limit) asks
        // for the window's reset.
        let asked = info
            .retry_after
            .or(info.reset_after.filter(|_| too_many && info.is_exhausted()));
        let hint = self.hint(&response.headers);
        let safe = retry.is_idempotent(&request.method) || keyed;
        let mut reason = if hint == Some(false) || (hint.is_none() && !safe) {
            Some(RateLimitReason::NotRetryable)
        } else if asked.is_some_and(|d| d > retry.max_retry_after()) {
            Some(RateLimitReason::RetryAfterTooLong)
        } else if charged >= retry.max_attempts() {
            Some(RateLimitReason::AttemptsExhausted)
        } else if !self.budget_allows() {
            Some(RateLimitReason::BudgetExhausted)
        } else {
            None
        };
        let bare = too_many && plan_limited && asked.is_none();
        // A strict server's count is most likely a hair past the slot: go again at once.
        if let Some(in_slot) = resend.filter(|_| bare && reason.is_none())
            && limiter.resend_in_slot(operation, in_slot).await
        {
            return Ok(Step::Resend);
        }
        // Pause the buckets, even when this request will not be retried, so other
        // requests in flight wait instead of earning their own 429s. A bare 429 not
        // resent only lowers the pace: its retry takes the next slot.
        let mut free = false;
        if let Some(delay) = asked {
            limiter.pause(operation, delay, false).await?;
        } else if bare {
            free = limiter.pause(operation, Duration::ZERO, true).await?;
        }
        // A bare 429 that slowed the pace is charged to our limits, not to the request.
        let free = free && retry.max_attempts() > 1;
        if free && reason == Some(RateLimitReason::AttemptsExhausted) && self.budget_allows() {
            reason = None;
        }
        let Some(reason) = reason else {
            // A server-asked delay is already a cooldown in the limiter, and a 429 on a
            // limited bucket takes the next slot; anything else backs off.
            let paced = asked.is_some() || (too_many && plan_limited);
            let delay = (!paced).then(|| retry.backoff(attempt));
            return Ok(Step::Retry { delay, free });
        };
        tracing::info!(
            operation,
            attempt,
            status = status.as_u16(),
            ?reason,
            "not retrying"
        );
        if !too_many && reason != RateLimitReason::RetryAfterTooLong {
            return Ok(Step::Return(Response {
                attempts: attempt,
                ..response
            }));
        }
        // The server's refusal names its quota when it sends a resource header
        // (GitHub's `core`, `search`); otherwise the operation's first bucket spent.
        let bucket = info.resource.clone().or_else(|| {
            let policy = self.inner.policy.operation(operation);
            policy.buckets.first().cloned()
        });
        Err(Error::RateLimited(Box::new(RateLimited {
            operation: operation.to_owned(),
            bucket,
            retry_after: asked,
            attempts: attempt,
            status: Some(status),
            reason,
        })))
    }

    fn on_transport_error(
        &self,
        request: &Request,
        keyed: bool,
        error: Error,
        (attempt, charged): (u32, u32),
    ) -> Result<Option<Duration>, Error> {
        let retry = self.inner.policy.retry();
        // A failed connect sent nothing, so repeating it is always safe.
        let safe = error.is_connect() || retry.is_idempotent(&request.method) || keyed;
        if !safe || charged >= retry.max_attempts() || !self.budget_allows() {
            return Err(error);
        }
        let operation = request.operation;
        tracing::info!(operation, attempt, %error, "transport error; will retry");
        Ok(Some(retry.backoff(attempt)))
    }

    fn budget_allows(&self) -> bool {
        let now = self.inner.clock.now();
        self.inner
            .budget
            .as_ref()
            .is_none_or(|b| b.try_withdraw(now))
    }

    fn hint(&self, headers: &HeaderMap) -> Option<bool> {
        let name = self.inner.policy.retry().hint_header()?;
        let value = headers.get(name)?.to_str().ok()?.trim();
        match value {
            v if v.eq_ignore_ascii_case("true") => Some(true),
            v if v.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    async fn attempt(
        &self,
        request: &Request,
        url: &Url,
        key: Option<&HeaderValue>,
    ) -> Result<(Response, Duration), Error> {
        let mut builder = self.inner.http.request(request.method.clone(), url.clone());
        let key_header = self.inner.policy.retry().idempotency_header();
        for (name, value) in &request.headers {
            // The idempotency key, the caller's or ours, is added once below.
            if Some(name) != key_header {
                builder = builder.header(name, value);
            }
        }
        if let Some(accept) = request.accept {
            builder = builder.header(ACCEPT, accept);
        }
        if let (Some(name), Some(key)) = (self.inner.policy.retry().idempotency_header(), key) {
            builder = builder.header(name, key);
        }
        builder = self.authorize(builder);
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(bytes) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Form(pairs) => builder.form(pairs),
            Body::Multipart(parts) => builder.multipart(multipart(parts)?),
            Body::Bytes {
                bytes,
                content_type,
            } => builder
                .header(CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone()),
        };
        let sent = self.inner.clock.now();
        let response = builder.send().await.map_err(Error::transport)?;
        // Up to the headers: how long the body takes depends on its size, not the trip.
        let took = self.inner.clock.now().saturating_duration_since(sent);
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Error::transport)?;
        let response = Response {
            operation: request.operation,
            status,
            headers,
            body,
            attempts: 0,
        };
        Ok((response, took))
    }

    fn authorize(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let sensitive = |value: String| {
            let mut value = HeaderValue::from_str(&value).ok()?;
            value.set_sensitive(true);
            Some(value)
        };
        match &self.inner.auth {
            Auth::Bearer(token) => match sensitive(format!("Bearer {}", token.expose())) {
                Some(value) => builder.header(AUTHORIZATION, value),
                None => builder,
            },
            Auth::Basic { user, password } => builder.basic_auth(user, Some(password.expose())),
            Auth::Header { name, value } => match sensitive(value.expose().to_owned()) {
                Some(value) => builder.header(name, value),
                None => builder,
            },
            Auth::Query { .. } | Auth::None => builder,
        }
    }

    fn url(&self, request: &Request) -> Result<Url, Error> {
        if let Some(url) = &request.absolute {
            return self.same_origin(url);
        }
        let path = request.rendered_path()?;
        let mut url = self.inner.base.clone();
        let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        let auth_query = match &self.inner.auth {
            Auth::Query { name, value } => Some((name.as_str(), value.expose())),
            _ => None,
        };
        if !request.query.is_empty() || auth_query.is_some() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &request.query {
                pairs.append_pair(name, value);
            }
            if let Some((name, value)) = auth_query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// A server-given URL (a `Link` header), only on the base URL's origin: credentials
    /// must never follow a link to another host.
    fn same_origin(&self, url: &Url) -> Result<Url, Error> {
        let base = &self.inner.base;
        let same = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        if !same {
            let origin = url.origin().ascii_serialization();
            return Err(Error::InvalidRequest(format!(
                "next-page link points to another origin ({origin}); not following it"
            )));
        }
        Ok(url.clone())
    }

    fn idempotency_key(&self, request: &Request) -> Option<HeaderValue> {
        let retry = self.inner.policy.retry();
        let header = retry.idempotency_header()?;
        // A key the caller chose is the one to send, on every attempt.
        if let Some((_, value)) = request.headers.iter().find(|(name, _)| name == header) {
            return Some(value.clone());
        }
        if retry.is_idempotent(&request.method) {
            return None;
        }
        let key = format!("polvo-{:032x}", rand::random::<u128>());
        HeaderValue::from_str(&key).ok()
    }
}

/// Completes a limiter refusal that came before a retry with what the earlier attempts
/// saw, so the error tells that the server was reached.
fn after_attempts(error: Error, attempts: u32, status: Option<StatusCode>) -> Error {
    match error {
        Error::RateLimited(mut limited) if attempts > 0 => {
            limited.attempts = attempts;
            limited.status = limited.status.or(status);
            Error::RateLimited(limited)
        }
        other => other,
    }
}

/// What follows a retryable status.
enum Step {
    /// Try again, after sleeping `delay` when set. A `free` attempt is not counted
    /// against `max_attempts`: a bare 429 that slowed the pace was our limits' doing, and
    /// there can be only so many (each cuts the pace by 2 %, down to half, and successes
    /// win back 2 % in 200).
    Retry { delay: Option<Duration>, free: bool },
    /// Try again at once, in the slot the refused attempt held.
    Resend,
    /// Stop and hand this response to the caller.
    Return(Response),
}

fn multipart(parts: &[crate::request::Part]) -> Result<reqwest::multipart::Form, Error> {
    let mut form = reqwest::multipart::Form::new();
    for part in parts {
        let mut body = reqwest::multipart::Part::bytes(part.bytes.to_vec());
        if let Some(name) = &part.file_name {
            body = body.file_name(name.clone());
        }
        if let Some(content_type) = &part.content_type {
            body = body.mime_str(content_type).map_err(|_| {
                Error::InvalidRequest(format!("part `{}` has an invalid content type", part.name))
            })?;
        }
        form = form.part(part.name.clone(), body);
    }
    Ok(form)
}

impl ClientBuilder {
    /// The base URL every path is joined to.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The credentials.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the default bucket to `per_second` requests per second.
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        match self.policy.clone().into_builder().rate_limit(per_second) {
            Ok(builder) => self.policy = builder.build_unchecked(),
            Err(error) => self.errors.push(error),
        }
        self
    }

    /// Replaces the whole policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Changes the policy with `change`, e.g. to replace one bucket's limits.
    pub fn with_policy(
        mut self,
        change: impl FnOnce(crate::PolicyBuilder) -> crate::PolicyBuilder,
    ) -> Self {
        self.policy = change(self.policy.clone().into_builder()).build_unchecked();
        self
    }

    /// Replaces the retry policy.
    pub fn retry(self, retry: crate::RetryPolicy) -> Self {
        self.with_policy(|p| p.retry(retry))
    }

    /// Fails requests that would wait longer than `max_wait` for quota.
    pub fn max_wait(self, max_wait: Duration) -> Self {
        self.with_policy(|p| p.max_wait(max_wait))
    }

    /// Caps requests in flight.
    pub fn max_in_flight(self, max: usize) -> Self {
        self.with_policy(|p| p.max_in_flight(max))
    }

    /// Wakes waiters on a timer thread for the last `window` of each wait, within a
    /// fraction of a millisecond of their slot (on by default, 3 ms);
    /// [`Duration::ZERO`] leaves every wait to tokio's timer, whose 1 ms ticks cost a
    /// server that tolerates no early request about a third of its rate at 500/s. See
    /// [`PolicyBuilder::precise_wakeups`](crate::PolicyBuilder::precise_wakeups).
    pub fn precise_wakeups(self, window: Duration) -> Self {
        self.with_policy(|p| p.precise_wakeups(window))
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The whole-request timeout (default 60 s); `None` turns it off.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keeps quota state in `store`, to share it with other clients.
    pub fn store(mut self, store: Arc<dyn QuotaStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Shares quota with every process using the Redis server at `redis_url` with the same
    /// service and credentials (a hash of them, never the credentials, names the keys).
    ///
    /// While Redis is unreachable this process takes half of each limit on its own, right
    /// for a fleet of two, and it returns to the shared quota by itself;
    /// [`ClientBuilder::shared_quota_with`] sets another share (one over the fleet's size
    /// keeps the fleet within the limit), or failing instead. An invalid URL is reported
    /// by [`ClientBuilder::build`].
    #[cfg(feature = "redis")]
    pub fn shared_quota(self, redis_url: &str) -> Self {
        self.shared_quota_with(redis_url, crate::OnFailure::Local { share: 0.5 })
    }

    /// Without the `redis` feature a shared quota cannot be built: [`ClientBuilder::build`]
    /// fails with an error that says which feature to enable.
    #[cfg(not(feature = "redis"))]
    pub fn shared_quota(mut self, redis_url: &str) -> Self {
        let _ = redis_url;
        self.errors.push(ConfigError::Client(
            "a shared quota needs polvo-runtime's `redis` feature (for a generated client, \
             enable the client crate's `redis` feature)"
                .to_owned(),
        ));
        self
    }

    /// As [`ClientBuilder::shared_quota`], choosing what happens while Redis is
    /// unreachable.
    ///
    /// # Examples
    ///
    /// One of four processes that share a key: a quarter of each limit while Redis is away.
    ///
    /// ```no_run
    /// use polvo_runtime::{Client, OnFailure, Policy};
    ///
    /// # fn run() -> Result<(), polvo_runtime::Error> {
    /// let client = Client::builder("example", Policy::default())
    ///     .base_url("https://api.example.com")
    ///     .rate_limit(100)
    ///     .shared_quota_with("redis://10.0.0.5:6379", OnFailure::Local { share: 0.25 })
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub fn shared_quota_with(mut self, redis_url: &str, on_failure: crate::OnFailure) -> Self {
        match crate::redis_store::for_client(redis_url, &Auth::None, on_failure) {
            Ok(_) => self.shared_quota = Some((redis_url.to_owned(), on_failure)),
            Err(error) => self.errors.push(error),
        }
        self
    }

    /// Reads time from `clock` (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses a ready reqwest client (proxies, TLS settings); timeouts and user agent set
    /// here are then ignored.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a missing or invalid base URL, an invalid policy or a TLS
    /// set-up failure.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(error) = self.errors.into_iter().next() {
            return Err(error.into());
        }
        let base = self
            .base_url
            .ok_or_else(|| ConfigError::Client("no base URL set".into()))?;
        let (policy, mode) = self.policy.with_mode_for(self.auth.key(), &base);
        if let Some(mode) = mode {
            tracing::debug!(service = %self.service, mode, "mode limits chosen");
        }
        let policy = policy.into_builder().build()?;
        let base = Url::parse(&base)
            .map_err(|e| ConfigError::Client(format!("base URL `{base}` is invalid: {e}")))?;
        let http = match self.http {
            Some(http) => http,
            None => {
                let mut builder = reqwest::Client::builder()
                    .user_agent(self.user_agent)
                    .connect_timeout(self.connect_timeout);
                if let Some(timeout) = self.timeout {
                    builder = builder.timeout(timeout);
                }
                builder
                    .build()
                    .map_err(|e| ConfigError::Client(format!("http client: {e}")))?
            }
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(TokioClock::new()));
        // The credentials are final only now, and they name the shared quota's keys.
        #[cfg(feature = "redis")]
        let store = match &self.shared_quota {
            Some((url, on_failure)) => {
                let redis = crate::redis_store::for_client(url, &self.auth, *on_failure)?;
                Some(Arc::new(redis) as Arc<dyn QuotaStore>)
            }
            None => self.store,
        };
        #[cfg(not(feature = "redis"))]
        let store = self.store;
        let store = store.unwrap_or_else(|| Arc::new(MemoryStore::with_clock(clock.clone())));
        let limiter = Limiter::with_store(&self.service, &policy, store, clock.clone())?;
        let budget = policy.retry().budget().map(RetryBudget::new);
        let inner = ClientInner {
            http,
            base,
            auth: self.auth,
            policy,
            limiter,
            budget,
            clock,
        };
        Ok(Client {
            inner: Arc::new(inner),
        })
    }
}
