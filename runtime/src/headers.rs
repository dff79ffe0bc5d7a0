//! Rate-limit headers of an HTTP response, read into one plain struct.
//!
//! Services announce their limits in several dialects: `Retry-After`
//! (RFC 9110), millisecond variants such as `x-ms-retry-after-ms`, the
//! de-facto `X-RateLimit-*` family (GitHub and many others), the older
//! drafts' `RateLimit-Limit`, `-Remaining` and `-Reset`, and the current
//! IETF draft's structured `RateLimit` and `RateLimit-Policy` fields. The
//! limiter and the retry loop should not care which dialect a service
//! speaks, so this module folds all of them into [`RateLimitInfo`], with
//! every time expressed as a [`Duration`] from the moment of parsing.
//!
//! # Design notes
//!
//! - Nothing here fails. A header is a hint from the network: a malformed
//!   one is logged at debug level and treated as absent, so one bad header
//!   never hides the good ones beside it.
//! - Numbers are read as exact decimals (whole units plus billionths)
//!   rather than through `f64`, so `"1.1"` means exactly 1.1 s, and
//!   `"1e400"`, `"inf"` or `"-1"` are rejected instead of becoming
//!   infinities or wrapping around.
//! - Delays are capped at ten years. A longer one is a bug or a way of
//!   saying "never"; the cap keeps that meaning while sparing callers from
//!   overflow when they add it to an `Instant`.
//! - The structured fields get a small parser for the subset of RFC 9651
//!   lists the drafts use, instead of an `sfv` dependency. A syntax error
//!   discards the whole field, as RFC 9651 asks; an item that parses but
//!   lacks a usable count is skipped on its own.
//! - When the structured fields and the older ones disagree, the
//!   structured ones win field by field: they are newer and name the policy
//!   they describe.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::InvalidHeaderName;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Which header names a service uses. Defaults cover the common schemes.
///
/// Each list is tried in order and the first name whose value parses wins,
/// so put the most precise or most trusted name first.
///
/// # Examples
///
/// ```
/// use polvo_runtime::headers::{HeaderNames, ResetKind};
///
/// let names = HeaderNames::default()
///     .with_remaining(["x-rate-remaining"])?
///     .with_reset_kind(ResetKind::DelaySeconds);
/// assert_eq!(names.remaining[0].as_str(), "x-rate-remaining");
/// # Ok::<(), http::header::InvalidHeaderName>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    /// Delay in seconds or an HTTP-date. Default: `retry-after`.
    pub retry_after: Vec<HeaderName>,
    /// Delay in milliseconds, preferred over `retry_after`.
    /// Default: `retry-after-ms`, `x-ms-retry-after-ms`.
    pub retry_after_ms: Vec<HeaderName>,
    /// Units allowed per window.
    /// Default: `x-ratelimit-limit`, `ratelimit-limit`.
    pub limit: Vec<HeaderName>,
    /// Units left in the window.
    /// Default: `x-ratelimit-remaining`, `ratelimit-remaining`.
    pub remaining: Vec<HeaderName>,
    /// When the window resets, read as [`reset_kind`](Self::reset_kind)
    /// says. Default: `x-ratelimit-reset`, `ratelimit-reset`.
    pub reset: Vec<HeaderName>,
    /// Units spent in the window. Default: `x-ratelimit-used`.
    pub used: Vec<HeaderName>,
    /// Which bucket the other values describe.
    /// Default: `x-ratelimit-resource`.
    pub resource: Vec<HeaderName>,
    /// The IETF draft's structured `RateLimit` field, or `None` to ignore
    /// it. Default: `ratelimit`.
    pub ietf_ratelimit: Option<HeaderName>,
    /// The IETF draft's structured `RateLimit-Policy` field, or `None` to
    /// ignore it. Default: `ratelimit-policy`.
    pub ietf_policy: Option<HeaderName>,
    /// How the `reset` headers are to be read. Default: [`ResetKind::Auto`].
    pub reset_kind: ResetKind,
}

impl Default for HeaderNames {
    fn default() -> Self {
        Self {
            retry_after: vec![http::header::RETRY_AFTER],
            retry_after_ms: static_names(&["retry-after-ms", "x-ms-retry-after-ms"]),
            limit: static_names(&["x-ratelimit-limit", "ratelimit-limit"]),
            remaining: static_names(&["x-ratelimit-remaining", "ratelimit-remaining"]),
            reset: static_names(&["x-ratelimit-reset", "ratelimit-reset"]),
            used: static_names(&["x-ratelimit-used"]),
            resource: static_names(&["x-ratelimit-resource"]),
            ietf_ratelimit: Some(HeaderName::from_static("ratelimit")),
            ietf_policy: Some(HeaderName::from_static("ratelimit-policy")),
            reset_kind: ResetKind::Auto,
        }
    }
}

impl HeaderNames {
    /// Replaces the names read as `Retry-After`.
    ///
    /// # Errors
    ///
    /// Returns the error of the first name that is not a valid header name.
    pub fn with_retry_after<I>(mut self, names: I) -> Result<Self, InvalidHeaderName>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.retry_after = header_names(names)?;
        Ok(self)
    }

    /// Replaces the names read as a delay in milliseconds.
    ///
    /// # Errors
    ///
    /// Returns the error of the first name that is not a valid header name.
    pub fn with_retry_after_ms<I>(mut self, names: I) -> Result<Self, InvalidHeaderName>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.retry_after_ms = header_names(names)?;
        Ok(self)
    }

    /// Replaces the names read as the limit per window.
    ///
    /// # Errors
    ///
    /// Returns the error of the first name that is not a valid header name.
    pub fn with_limit<I>(mut self, names: I) -> Result<Self, InvalidHeaderName>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.limit = header_names(names)?;
        Ok(self)
    }

    /// Replaces the names read as the units remaining.
    ///
    /// # Errors
    ///
    /// Returns the error of the first name that is not a valid header name.
    pub fn with_remaining<I>(mut self, names: I) -> Result<Self, InvalidHeaderName>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.remaining = header_names(names)?;
        Ok(self)
    }

    /// Replaces the names read as the window reset.
    ///
    /// # Errors
    ///
    /// Returns the error of the first name that is not a valid header name.
    pub fn with_reset<I>(mut self, names: I) -> Result<Self, InvalidHeaderName>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.reset = header_names(names)?;
        Ok(self)
    }

    /// Replaces the names read as the units used.
    ///
    /// # Errors
    ///
    /// Returns the error of the first name that is not a valid header name.
    pub fn with_used<I>(mut self, names: I) -> Result<Self, InvalidHeaderName>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.used = header_names(names)?;
        Ok(self)
    }

    /// Replaces the names read as the resource (bucket) name.
    ///
    /// # Errors
    ///
    /// Returns the error of the first name that is not a valid header name.
    pub fn with_resource<I>(mut self, names: I) -> Result<Self, InvalidHeaderName>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.resource = header_names(names)?;
        Ok(self)
    }

    /// Sets the name of the structured `RateLimit` field; `None` ignores it.
    ///
    /// # Errors
    ///
    /// Returns an error when the name is not a valid header name.
    pub fn with_ietf_ratelimit(mut self, name: Option<&str>) -> Result<Self, InvalidHeaderName> {
        self.ietf_ratelimit = name.map(HeaderName::try_from).transpose()?;
        Ok(self)
    }

    /// Sets the name of the structured `RateLimit-Policy` field; `None`
    /// ignores it.
    ///
    /// # Errors
    ///
    /// Returns an error when the name is not a valid header name.
    pub fn with_ietf_policy(mut self, name: Option<&str>) -> Result<Self, InvalidHeaderName> {
        self.ietf_policy = name.map(HeaderName::try_from).transpose()?;
        Ok(self)
    }

    /// Sets how the `reset` headers are to be read.
    #[must_use]
    pub fn with_reset_kind(mut self, kind: ResetKind) -> Self {
        self.reset_kind = kind;
        self
    }
}

/// How a reset value is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResetKind {
    /// Guess from the size of the number: at least 10^12 is epoch
    /// milliseconds, at least 10^9 is epoch seconds, anything smaller is a
    /// delay in seconds.
    ///
    /// The guess is safe because the ranges cannot be confused in
    /// practice: 10^9 seconds after the epoch is September 2001, long past,
    /// while as a delay it would be 31 years, which no server means; 10^12
    /// read as epoch seconds would be some thirty thousand years ahead,
    /// while as epoch milliseconds it is again 2001.
    #[default]
    Auto,
    /// Seconds since the Unix epoch, as GitHub sends.
    EpochSeconds,
    /// Seconds from now, as the IETF drafts specify.
    DelaySeconds,
    /// Milliseconds since the Unix epoch.
    EpochMillis,
}

/// What one response said about rate limits.
///
/// All durations are relative to the moment of parsing and capped at ten
/// years. A field is `None` when no header gave a well-formed value.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// use http::HeaderMap;
/// use polvo_runtime::headers::{HeaderNames, RateLimitInfo};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit", r#""default";r=0;t=30"#.parse()?);
/// headers.insert("ratelimit-policy", r#""default";q=100;w=60"#.parse()?);
///
/// let info = RateLimitInfo::parse(&headers, &HeaderNames::default(), SystemTime::now());
/// assert!(info.is_exhausted());
/// assert_eq!(info.limit, Some(100));
/// assert_eq!(info.reset_after, Some(Duration::from_secs(30)));
/// assert_eq!(info.window, Some(Duration::from_secs(60)));
/// # Ok::<(), http::header::InvalidHeaderValue>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimitInfo {
    /// How long to wait before retrying, from `Retry-After` or a
    /// millisecond variant.
    pub retry_after: Option<Duration>,
    /// Units allowed per window.
    pub limit: Option<u64>,
    /// Units left in the current window.
    pub remaining: Option<u64>,
    /// Time until the current window resets.
    pub reset_after: Option<Duration>,
    /// Units spent in the current window.
    pub used: Option<u64>,
    /// Which bucket the values describe, such as GitHub's `core` or
    /// `search`.
    pub resource: Option<String>,
    /// Length of the window, from `RateLimit-Policy`'s `w` parameter or the
    /// policy parameters of older drafts.
    pub window: Option<Duration>,
    /// Name of the IETF policy the values describe, such as `default` or
    /// `burst`.
    pub policy: Option<String>,
}

impl RateLimitInfo {
    /// Parses `headers` as seen at wall-clock time `now`.
    ///
    /// `now` is injected so that HTTP-dates and epoch resets turn into
    /// exact delays in tests. Malformed values are logged at debug level
    /// and ignored; this never fails and never panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// use http::HeaderMap;
    /// use polvo_runtime::headers::{HeaderNames, RateLimitInfo};
    ///
    /// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-ratelimit-remaining", "42".parse()?);
    /// headers.insert("x-ratelimit-reset", "1700000060".parse()?);
    ///
    /// let info = RateLimitInfo::parse(&headers, &HeaderNames::default(), now);
    /// assert_eq!(info.remaining, Some(42));
    /// assert_eq!(info.reset_after, Some(Duration::from_secs(60)));
    /// # Ok::<(), http::header::InvalidHeaderValue>(())
    /// ```
    #[must_use]
    pub fn parse(headers: &HeaderMap, names: &HeaderNames, now: SystemTime) -> Self {
        let older = Self::from_older_fields(headers, names, now);
        Self::from_structured_fields(headers, names).or(older)
    }

    /// True when nothing at all was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// True when the server says no units are left (`remaining == Some(0)`).
    #[must_use]
    pub fn is_exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Reads `Retry-After`, its millisecond variants and the flat
    /// `X-RateLimit-*` / `RateLimit-*` fields.
    fn from_older_fields(headers: &HeaderMap, names: &HeaderNames, now: SystemTime) -> Self {
        // The millisecond variants go first because they are more precise.
        let retry_after = first_parsed(headers, &names.retry_after_ms, parse_millis)
            .or_else(|| first_parsed(headers, &names.retry_after, |v| parse_retry_after(v, now)));
        let reset_kind = names.reset_kind;
        let (limit, window) = first_parsed(headers, &names.limit, parse_limit).unzip();

        Self {
            retry_after,
            limit,
            remaining: first_parsed(headers, &names.remaining, parse_count),
            reset_after: first_parsed(headers, &names.reset, |v| parse_reset(v, reset_kind, now)),
            used: first_parsed(headers, &names.used, parse_count),
            resource: first_parsed(headers, &names.resource, parse_text),
            window: window.flatten(),
            policy: None,
        }
    }

    /// Reads the IETF draft's `RateLimit` and `RateLimit-Policy` fields.
    fn from_structured_fields(headers: &HeaderMap, names: &HeaderNames) -> Self {
        let states = read_members(
            headers,
            names.ietf_ratelimit.as_ref(),
            QuotaState::from_member,
        );
        let policies = read_members(
            headers,
            names.ietf_policy.as_ref(),
            QuotaPolicy::from_member,
        );

        // With several quotas in force, the one closest to running out is
        // the one that decides when the next request may go.
        let state = states.into_iter().min_by_key(|state| state.remaining);
        let policy = QuotaPolicy::matching(policies, state.as_ref());

        Self {
            remaining: state.as_ref().map(|s| s.remaining),
            reset_after: state.as_ref().and_then(|s| s.reset_after),
            limit: policy.as_ref().map(|p| p.quota),
            window: policy.as_ref().and_then(|p| p.window),
            policy: state
                .and_then(|s| s.name)
                .or_else(|| policy.and_then(|p| p.name)),
            ..Self::default()
        }
    }

    /// Keeps every field of `self` that is set and fills the rest from
    /// `fallback`.
    fn or(self, fallback: Self) -> Self {
        Self {
            retry_after: self.retry_after.or(fallback.retry_after),
            limit: self.limit.or(fallback.limit),
            remaining: self.remaining.or(fallback.remaining),
            reset_after: self.reset_after.or(fallback.reset_after),
            used: self.used.or(fallback.used),
            resource: self.resource.or(fallback.resource),
            window: self.window.or(fallback.window),
            policy: self.policy.or(fallback.policy),
        }
    }
}

/// Longest delay this module reports; see the module notes.
const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Smallest reset that [`ResetKind::Auto`] reads as epoch milliseconds.
const EPOCH_MILLIS_FLOOR: u64 = 1_000_000_000_000;

/// Smallest reset that [`ResetKind::Auto`] reads as epoch seconds.
const EPOCH_SECONDS_FLOOR: u64 = 1_000_000_000;

impl ResetKind {
    /// Replaces `Auto` by the kind the size of `whole` suggests.
    fn resolve(self, whole: u64) -> Self {
        match self {
            Self::Auto if whole >= EPOCH_MILLIS_FLOOR => Self::EpochMillis,
            Self::Auto if whole >= EPOCH_SECONDS_FLOOR => Self::EpochSeconds,
            Self::Auto => Self::DelaySeconds,
            other => other,
        }
    }
}

/// Parses constant, known-valid names for the defaults.
fn static_names(names: &[&'static str]) -> Vec<HeaderName> {
    names
        .iter()
        .map(|name| HeaderName::from_static(name))
        .collect()
}

/// Parses user-provided names; `HeaderName` lowercases them on the way.
fn header_names<I>(names: I) -> Result<Vec<HeaderName>, InvalidHeaderName>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names
        .into_iter()
        .map(|name| HeaderName::try_from(name.as_ref()))
        .collect()
}

/// Returns the first value, over `names` in order and then over repeated
/// lines of one name, that `parse` accepts.
fn first_parsed<T>(
    headers: &HeaderMap,
    names: &[HeaderName],
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    names
        .iter()
        .flat_map(|name| headers.get_all(name).iter().map(move |v| (name, v)))
        .find_map(|(name, value)| parse_value(name, value, &parse))
}

/// Parses one header value, logging it when it is malformed.
fn parse_value<T>(
    name: &HeaderName,
    value: &HeaderValue,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let parsed = std::str::from_utf8(value.as_bytes()).ok().and_then(parse);
    if parsed.is_none() {
        tracing::debug!(header = %name, value = ?value, "ignored malformed rate-limit header");
    }
    parsed
}

/// A count such as a limit: plain ASCII digits that fit in a `u64`.
fn parse_count(value: &str) -> Option<u64> {
    let value = value.trim_ascii();
    is_digits(value).then(|| value.parse().ok()).flatten()
}

/// A non-empty string with the surrounding whitespace removed.
fn parse_text(value: &str) -> Option<String> {
    let value = value.trim_ascii();
    (!value.is_empty()).then(|| value.to_owned())
}

/// A limit, either a bare integer or an older draft's list such as
/// `100, 100;w=60` whose first item is the limit and whose items with the
/// same quota may carry the window.
fn parse_limit(value: &str) -> Option<(u64, Option<Duration>)> {
    if let Some(limit) = parse_count(value) {
        return Some((limit, None));
    }
    let members = parse_list(value)?;
    let limit = members.first()?.item.count()?;
    let window = members
        .iter()
        .filter(|member| member.item.count() == Some(limit))
        .find_map(|member| member.param("w"))
        .map(BareItem::delay);
    // A present but malformed window makes the whole value suspect.
    match window {
        Some(None) => None,
        window => Some((limit, window.flatten())),
    }
}

/// `Retry-After`: delta-seconds (decimals tolerated) or an HTTP-date.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Some(number) = Decimal::parse(value) {
        return Some(number.as_seconds().min(MAX_DELAY));
    }
    let date = httpdate::parse_http_date(value.trim_ascii()).ok()?;
    Some(delay_until(date, now))
}

/// A delay in milliseconds, decimals tolerated.
fn parse_millis(value: &str) -> Option<Duration> {
    Decimal::parse(value).map(|number| number.as_millis().min(MAX_DELAY))
}

/// A reset, read as `kind` says.
fn parse_reset(value: &str, kind: ResetKind, now: SystemTime) -> Option<Duration> {
    let number = Decimal::parse(value)?;
    let reset = match kind.resolve(number.whole) {
        ResetKind::EpochMillis => delay_until_epoch(number.as_millis(), now),
        ResetKind::EpochSeconds => delay_until_epoch(number.as_seconds(), now),
        ResetKind::DelaySeconds | ResetKind::Auto => number.as_seconds(),
    };
    Some(reset.min(MAX_DELAY))
}

/// Time from `now` until `offset` after the Unix epoch.
fn delay_until_epoch(offset: Duration, now: SystemTime) -> Duration {
    // An instant too far out for `SystemTime` is beyond the cap anyway.
    UNIX_EPOCH
        .checked_add(offset)
        .map_or(MAX_DELAY, |moment| delay_until(moment, now))
}

/// Time from `now` until `moment`; zero when it has passed.
fn delay_until(moment: SystemTime, now: SystemTime) -> Duration {
    moment
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(MAX_DELAY)
}

fn is_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

/// An exact non-negative decimal number: whole units plus billionths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    whole: u64,
    billionths: u32,
}

impl Decimal {
    /// Accepts `digits` or `digits.digits` with surrounding whitespace, and
    /// nothing else: no sign, no exponent, no `inf`.
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim_ascii();
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        if !is_digits(whole) || (value.contains('.') && !is_digits(fraction)) {
            return None;
        }
        let whole = whole.parse().ok()?;
        Some(Self {
            whole,
            billionths: billionths(fraction),
        })
    }

    fn as_seconds(self) -> Duration {
        // `billionths` is below 10^9, so `Duration::new` cannot carry over.
        Duration::new(self.whole, self.billionths)
    }

    fn as_millis(self) -> Duration {
        // A billionth of a millisecond is a thousandth of a nanosecond.
        let fraction = Duration::from_nanos(u64::from(self.billionths / 1_000));
        Duration::from_millis(self.whole).saturating_add(fraction)
    }
}

/// Reads up to nine fraction digits as billionths; digits past the ninth
/// are below a nanosecond and are dropped.
fn billionths(fraction: &str) -> u32 {
    let digits = fraction.bytes().chain(std::iter::repeat(b'0')).take(9);
    digits.fold(0, |acc, digit| acc * 10 + u32::from(digit - b'0'))
}

/// One item of the `RateLimit` field: the state of one quota.
#[derive(Debug)]
struct QuotaState {
    name: Option<String>,
    remaining: u64,
    reset_after: Option<Duration>,
}

impl QuotaState {
    /// Reads `"name";r=<remaining>;t=<seconds>`; `r` is required.
    fn from_member(member: &Member) -> Option<Self> {
        Some(Self {
            name: Some(member.item.name()?),
            remaining: member.param("r")?.count()?,
            reset_after: optional_delay(member.param("t"))?,
        })
    }
}

/// One item of the `RateLimit-Policy` field: the shape of one quota.
#[derive(Debug)]
struct QuotaPolicy {
    name: Option<String>,
    quota: u64,
    window: Option<Duration>,
}

impl QuotaPolicy {
    /// Reads `"name";q=<quota>;w=<seconds>`, or an older draft's unnamed
    /// `<quota>;w=<seconds>`. Other parameters (`qu`, `pk`) are ignored.
    fn from_member(member: &Member) -> Option<Self> {
        let (name, quota) = match member.item.count() {
            Some(quota) => (None, quota),
            None => (Some(member.item.name()?), member.param("q")?.count()?),
        };
        let window = optional_delay(member.param("w"))?;
        Some(Self {
            name,
            quota,
            window,
        })
    }

    /// Picks the policy that describes `state`: the one of the same name,
    /// else an unnamed one, which applies to every quota. Without a state
    /// there is nothing to match, so the first policy stands for them all.
    fn matching(policies: Vec<Self>, state: Option<&QuotaState>) -> Option<Self> {
        let Some(state) = state else {
            return policies.into_iter().next();
        };
        let index = policies.iter().position(|p| p.name == state.name);
        let index = index.or_else(|| policies.iter().position(|p| p.name.is_none()))?;
        policies.into_iter().nth(index)
    }
}

/// Reads an absent parameter as `Some(None)` and a malformed one as `None`.
fn optional_delay(value: Option<&BareItem>) -> Option<Option<Duration>> {
    match value {
        None => Some(None),
        Some(value) => value.delay().map(Some),
    }
}

/// Reads every line of a structured list field and converts each member,
/// skipping (and logging) those `convert` rejects.
fn read_members<T>(
    headers: &HeaderMap,
    name: Option<&HeaderName>,
    convert: impl Fn(&Member) -> Option<T>,
) -> Vec<T> {
    let Some(name) = name else { return Vec::new() };
    let Some(members) = structured_field(headers, name) else {
        return Vec::new();
    };
    members
        .iter()
        .filter_map(|member| convert_member(name, member, &convert))
        .collect()
}

/// Converts one member, logging it when `convert` rejects it.
fn convert_member<T>(
    name: &HeaderName,
    member: &Member,
    convert: impl Fn(&Member) -> Option<T>,
) -> Option<T> {
    let value = convert(member);
    if value.is_none() {
        tracing::debug!(header = %name, item = ?member, "ignored malformed rate-limit item");
    }
    value
}

/// Joins the lines of a list field, as RFC 9651 asks, and parses them.
fn structured_field(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<Member>> {
    let mut lines = Vec::new();
    for value in headers.get_all(name) {
        let Ok(line) = std::str::from_utf8(value.as_bytes()) else {
            tracing::debug!(header = %name, value = ?value, "ignored malformed rate-limit header");
            return None;
        };
        lines.push(line);
    }
    let joined = lines.join(", ");
    let members = parse_list(&joined);
    if members.is_none() {
        tracing::debug!(header = %name, value = ?joined, "ignored malformed rate-limit header");
    }
    members
}

/// A member of a structured list: an item and its parameters.
#[derive(Debug)]
struct Member {
    item: BareItem,
    params: Vec<(String, BareItem)>,
}

impl Member {
    /// The value of parameter `key`; a repeated key's last value wins, as
    /// in RFC 9651.
    fn param(&self, key: &str) -> Option<&BareItem> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
    }
}

/// The kinds of bare item the rate-limit fields can hold.
#[derive(Debug)]
enum BareItem {
    /// An integer or decimal, kept as text so the callers choose how to
    /// read it; a leading `-` makes every reading fail.
    Number(String),
    /// A string or a token; the drafts use both for policy names.
    Text(String),
    /// A byte sequence or a boolean, which only unused parameters hold.
    Other,
}

impl BareItem {
    fn count(&self) -> Option<u64> {
        match self {
            Self::Number(text) => parse_count(text),
            _ => None,
        }
    }

    fn delay(&self) -> Option<Duration> {
        match self {
            Self::Number(text) => Decimal::parse(text).map(|n| n.as_seconds().min(MAX_DELAY)),
            _ => None,
        }
    }

    fn name(&self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

/// Parses a structured list field (RFC 9651, section 4.2.1) without inner
/// lists. Whitespace around `;` and `=` and upper-case keys are tolerated.
fn parse_list(input: &str) -> Option<Vec<Member>> {
    Parser {
        input: input.as_bytes(),
        pos: 0,
    }
    .list()
}

/// A cursor over the bytes of a structured field.
struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn list(&mut self) -> Option<Vec<Member>> {
        let mut members = Vec::new();
        self.skip_whitespace();
        while self.peek().is_some() {
            members.push(self.member()?);
            self.skip_whitespace();
            if self.peek().is_none() {
                break;
            }
            // RFC 9651 rejects a trailing comma, so one must be followed by
            // another member.
            self.expect(b',')?;
            self.skip_whitespace();
            self.peek()?;
        }
        Some(members)
    }

    fn member(&mut self) -> Option<Member> {
        let item = self.bare_item()?;
        let params = self.params()?;
        Some(Member { item, params })
    }

    fn params(&mut self) -> Option<Vec<(String, BareItem)>> {
        let mut params = Vec::new();
        loop {
            self.skip_whitespace();
            if !self.eat(b';') {
                return Some(params);
            }
            self.skip_whitespace();
            let key = self.key()?;
            self.skip_whitespace();
            params.push((key, self.param_value()?));
        }
    }

    /// A parameter without `=` is the boolean true, per RFC 9651.
    fn param_value(&mut self) -> Option<BareItem> {
        if !self.eat(b'=') {
            return Some(BareItem::Other);
        }
        self.skip_whitespace();
        self.bare_item()
    }

    fn key(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == b'*') {
            return None;
        }
        let key = self.take_while(|b| b.is_ascii_alphanumeric() || b"_-.*".contains(&b));
        Some(key.to_ascii_lowercase())
    }

    fn bare_item(&mut self) -> Option<BareItem> {
        match self.peek()? {
            b'"' => self.string().map(BareItem::Text),
            b'-' | b'0'..=b'9' => self.number().map(BareItem::Number),
            b if b.is_ascii_alphabetic() || b == b'*' => Some(BareItem::Text(self.token())),
            b':' => self.byte_sequence().map(|()| BareItem::Other),
            b'?' => self.boolean().map(|()| BareItem::Other),
            _ => None,
        }
    }

    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut bytes = Vec::new();
        loop {
            match self.bump()? {
                b'"' => return String::from_utf8(bytes).ok(),
                b'\\' => bytes.push(self.bump().filter(|b| matches!(b, b'"' | b'\\'))?),
                b if b < 0x20 || b == 0x7f => return None,
                b => bytes.push(b),
            }
        }
    }

    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        self.eat(b'-');
        if self.take_while(|b| b.is_ascii_digit()).is_empty() {
            return None;
        }
        if self.eat(b'.') && self.take_while(|b| b.is_ascii_digit()).is_empty() {
            return None;
        }
        Some(self.text(start))
    }

    fn token(&mut self) -> String {
        self.take_while(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
    }

    fn byte_sequence(&mut self) -> Option<()> {
        self.expect(b':')?;
        self.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        self.expect(b':')
    }

    fn boolean(&mut self) -> Option<()> {
        self.expect(b'?')?;
        self.bump().filter(|b| matches!(b, b'0' | b'1')).map(|_| ())
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        self.text(start)
    }

    /// The text from `start` to the cursor. Callers only stop at ASCII
    /// bytes, so the slice is whole UTF-8; the lossy conversion merely
    /// avoids a fallible path.
    fn text(&self, start: usize) -> String {
        let bytes = self.input.get(start..self.pos).unwrap_or_default();
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.expect(byte).is_some()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed wall clock: 2023-11-14T22:13:20Z.
    const NOW_SECS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn secs(secs: u64) -> Option<Duration> {
        Some(Duration::from_secs(secs))
    }

    fn millis(millis: u64) -> Option<Duration> {
        Some(Duration::from_millis(millis))
    }

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::try_from(*name).expect("valid test header name");
            let value = HeaderValue::from_str(value).expect("valid test header value");
            headers.append(name, value);
        }
        headers
    }

    fn parse_with(pairs: &[(&str, &str)], names: &HeaderNames) -> RateLimitInfo {
        RateLimitInfo::parse(&header_map(pairs), names, now())
    }

    fn parse(pairs: &[(&str, &str)]) -> RateLimitInfo {
        parse_with(pairs, &HeaderNames::default())
    }

    #[test]
    fn default_names_cover_common_schemes() {
        let names = HeaderNames::default();
        assert_eq!(names.retry_after, [http::header::RETRY_AFTER]);
        assert_eq!(names.retry_after_ms[1].as_str(), "x-ms-retry-after-ms");
        assert_eq!(names.limit[1].as_str(), "ratelimit-limit");
        assert_eq!(
            names.ietf_policy.as_ref().map(HeaderName::as_str),
            Some("ratelimit-policy")
        );
        assert_eq!(names.reset_kind, ResetKind::Auto);
    }

    #[test]
    fn retry_after_delta_seconds() {
        assert_eq!(parse(&[("retry-after", "120")]).retry_after, secs(120));
        assert_eq!(parse(&[("retry-after", "0")]).retry_after, secs(0));
    }

    #[test]
    fn retry_after_decimal_seconds_with_whitespace() {
        assert_eq!(parse(&[("retry-after", " 1.5 ")]).retry_after, millis(1500));
        assert_eq!(
            parse(&[("retry-after", "0.0000000019")]).retry_after,
            Some(Duration::new(0, 1))
        );
    }

    #[test]
    fn retry_after_http_date_in_future() {
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(90));
        assert_eq!(parse(&[("retry-after", &date)]).retry_after, secs(90));
    }

    #[test]
    fn retry_after_http_date_in_past_is_zero() {
        let date = httpdate::fmt_http_date(now() - Duration::from_secs(90));
        assert_eq!(
            parse(&[("retry-after", &date)]).retry_after,
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_ms_integer_and_decimal() {
        assert_eq!(parse(&[("retry-after-ms", "250")]).retry_after, millis(250));
        let info = parse(&[("x-ms-retry-after-ms", "1.5")]);
        assert_eq!(info.retry_after, Some(Duration::from_micros(1500)));
    }

    #[test]
    fn retry_after_ms_preferred_over_seconds() {
        let info = parse(&[("retry-after", "2"), ("retry-after-ms", "1750")]);
        assert_eq!(info.retry_after, millis(1750));
    }

    #[test]
    fn malformed_retry_after_ms_falls_back_to_seconds() {
        let info = parse(&[("retry-after", "2"), ("retry-after-ms", "soon")]);
        assert_eq!(info.retry_after, secs(2));
    }

    #[test]
    fn reset_epoch_seconds() {
        assert_eq!(
            parse(&[("x-ratelimit-reset", "1700000060")]).reset_after,
            secs(60)
        );
    }

    #[test]
    fn reset_epoch_millis() {
        let info = parse(&[("x-ratelimit-reset", "1700000000250")]);
        assert_eq!(info.reset_after, millis(250));
    }

    #[test]
    fn reset_delay_seconds() {
        assert_eq!(parse(&[("x-ratelimit-reset", "30")]).reset_after, secs(30));
        assert_eq!(
            parse(&[("x-ratelimit-reset", "1.5")]).reset_after,
            millis(1500)
        );
    }

    #[test]
    fn reset_epoch_in_past_is_zero() {
        let info = parse(&[("x-ratelimit-reset", "1600000000")]);
        assert_eq!(info.reset_after, Some(Duration::ZERO));
        let info = parse(&[("x-ratelimit-reset", "1600000000000")]);
        assert_eq!(info.reset_after, Some(Duration::ZERO));
    }

    #[test]
    fn reset_epoch_with_fraction() {
        let info = parse(&[("x-ratelimit-reset", "1700000001.5")]);
        assert_eq!(info.reset_after, millis(1500));
    }

    #[test]
    fn reset_kind_overrides_auto() {
        let delay = HeaderNames::default().with_reset_kind(ResetKind::DelaySeconds);
        let info = parse_with(&[("x-ratelimit-reset", "1700000060")], &delay);
        assert_eq!(info.reset_after, Some(MAX_DELAY));

        let epoch = HeaderNames::default().with_reset_kind(ResetKind::EpochSeconds);
        let info = parse_with(&[("x-ratelimit-reset", "30")], &epoch);
        assert_eq!(info.reset_after, Some(Duration::ZERO));

        let millis_kind = HeaderNames::default().with_reset_kind(ResetKind::EpochMillis);
        let info = parse_with(&[("x-ratelimit-reset", "1700000060")], &millis_kind);
        assert_eq!(info.reset_after, Some(Duration::ZERO));
        let info = parse_with(&[("x-ratelimit-reset", "1700000000500")], &millis_kind);
        assert_eq!(info.reset_after, millis(500));
    }

    #[test]
    fn github_style_headers() {
        let info = parse(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "4987"),
            ("x-ratelimit-reset", "1700000600"),
            ("x-ratelimit-used", "13"),
            ("x-ratelimit-resource", " core "),
        ]);
        let expected = RateLimitInfo {
            limit: Some(5000),
            remaining: Some(4987),
            reset_after: secs(600),
            used: Some(13),
            resource: Some("core".to_owned()),
            ..RateLimitInfo::default()
        };
        assert_eq!(info, expected);
    }

    #[test]
    fn older_draft_flat_fields() {
        let info = parse(&[
            ("ratelimit-limit", "100"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "45"),
        ]);
        assert_eq!(
            (info.limit, info.remaining, info.reset_after),
            (Some(100), Some(0), secs(45))
        );
        assert!(info.is_exhausted());
    }

    #[test]
    fn older_draft_limit_with_quota_policy() {
        let info = parse(&[("ratelimit-limit", "100, 100;w=60, 1000;w=3600")]);
        assert_eq!((info.limit, info.window), (Some(100), secs(60)));
    }

    #[test]
    fn first_name_in_list_wins() {
        let info = parse(&[("ratelimit-remaining", "7"), ("x-ratelimit-remaining", "3")]);
        assert_eq!(info.remaining, Some(3));
    }

    #[test]
    fn first_name_that_parses_wins() {
        let info = parse(&[
            ("x-ratelimit-remaining", "lots"),
            ("ratelimit-remaining", "7"),
        ]);
        assert_eq!(info.remaining, Some(7));
    }

    #[test]
    fn ietf_single_item() {
        let info = parse(&[
            ("ratelimit", r#""default";r=50;t=30"#),
            ("ratelimit-policy", r#""default";q=100;w=60"#),
        ]);
        let expected = RateLimitInfo {
            limit: Some(100),
            remaining: Some(50),
            reset_after: secs(30),
            window: secs(60),
            policy: Some("default".to_owned()),
            ..RateLimitInfo::default()
        };
        assert_eq!(info, expected);
    }

    #[test]
    fn ietf_multiple_items_pick_tightest_and_match_window_by_name() {
        let info = parse(&[
            ("ratelimit", r#""daily";r=900;t=80000, "burst";r=3;t=5"#),
            (
                "ratelimit-policy",
                r#""daily";q=1000;w=86400, "burst";q=100;w=60"#,
            ),
        ]);
        assert_eq!(info.policy.as_deref(), Some("burst"));
        assert_eq!((info.remaining, info.reset_after), (Some(3), secs(5)));
        assert_eq!((info.limit, info.window), (Some(100), secs(60)));
    }

    #[test]
    fn ietf_fields_split_across_lines_are_joined() {
        let info = parse(&[
            ("ratelimit", r#""burst";r=9;t=1"#),
            ("ratelimit", r#""daily";r=2;t=600"#),
            ("ratelimit-policy", r#""burst";q=10;w=1"#),
            ("ratelimit-policy", r#""daily";q=500;w=86400"#),
        ]);
        assert_eq!(
            (info.policy.as_deref(), info.remaining),
            (Some("daily"), Some(2))
        );
        assert_eq!((info.limit, info.window), (Some(500), secs(86400)));
    }

    #[test]
    fn ietf_token_names_and_ignored_params() {
        let info = parse(&[
            ("ratelimit", "default;r=5;t=2;pk=:cGsx:"),
            (
                "ratelimit-policy",
                r#"default;q=10;qu="requests";w=20;pk=:cGsx:"#,
            ),
        ]);
        assert_eq!(
            (info.remaining, info.limit, info.window),
            (Some(5), Some(10), secs(20))
        );
    }

    #[test]
    fn ietf_tolerates_whitespace_and_upper_case_keys() {
        let info = parse(&[("ratelimit", r#" "default" ; R = 5 ;t=2 "#)]);
        assert_eq!((info.remaining, info.reset_after), (Some(5), secs(2)));
    }

    #[test]
    fn ietf_preferred_over_older_fields() {
        let info = parse(&[
            ("ratelimit", r#""default";r=1;t=10"#),
            ("x-ratelimit-remaining", "99"),
            ("x-ratelimit-reset", "50"),
            ("x-ratelimit-limit", "500"),
        ]);
        assert_eq!((info.remaining, info.reset_after), (Some(1), secs(10)));
        // Without a policy field the older limit still fills the gap.
        assert_eq!(info.limit, Some(500));
    }

    #[test]
    fn ietf_policy_without_state_uses_first_policy() {
        let info = parse(&[("ratelimit-policy", r#""burst";q=100;w=60, "daily";q=1000"#)]);
        assert_eq!(info.policy.as_deref(), Some("burst"));
        assert_eq!(
            (info.limit, info.window, info.remaining),
            (Some(100), secs(60), None)
        );
    }

    #[test]
    fn ietf_state_without_named_policy_uses_unnamed_one() {
        let info = parse(&[
            ("ratelimit", r#""x";r=4"#),
            ("ratelimit-policy", "100;w=60"),
        ]);
        assert_eq!((info.limit, info.window), (Some(100), secs(60)));
    }

    #[test]
    fn ietf_state_without_matching_policy_leaves_limit_unset() {
        let info = parse(&[
            ("ratelimit", r#""x";r=4"#),
            ("ratelimit-policy", r#""y";q=9"#),
        ]);
        assert_eq!((info.remaining, info.limit), (Some(4), None));
    }

    #[test]
    fn older_draft_policy_with_bare_quota() {
        let info = parse(&[("ratelimit-policy", "100;w=60")]);
        assert_eq!(
            (info.limit, info.window, info.policy),
            (Some(100), secs(60), None)
        );
    }

    #[test]
    fn custom_names_via_setters() -> Result<(), InvalidHeaderName> {
        let names = HeaderNames::default()
            .with_retry_after(["x-wait"])?
            .with_retry_after_ms(["x-wait-ms"])?
            .with_limit(["x-rate-limit"])?
            .with_remaining(["X-Rate-Remaining"])?
            .with_reset(["x-rate-reset"])?
            .with_used(["x-rate-used"])?
            .with_resource(["x-rate-bucket"])?
            .with_ietf_ratelimit(Some("x-rl"))?
            .with_ietf_policy(None)?;
        let info = parse_with(
            &[
                ("x-wait", "3"),
                ("x-rate-limit", "10"),
                ("x-rate-remaining", "4"),
                ("x-rate-reset", "8"),
                ("x-rate-used", "6"),
                ("x-rate-bucket", "search"),
                ("x-ratelimit-remaining", "999"),
                ("ratelimit-policy", "1;w=1"),
            ],
            &names,
        );
        assert_eq!(
            (info.retry_after, info.limit, info.remaining),
            (secs(3), Some(10), Some(4))
        );
        assert_eq!((info.reset_after, info.used), (secs(8), Some(6)));
        assert_eq!(
            (info.resource.as_deref(), info.window),
            (Some("search"), None)
        );
        Ok(())
    }

    #[test]
    fn setters_reject_invalid_names() {
        assert!(HeaderNames::default().with_limit(["bad name"]).is_err());
        assert!(HeaderNames::default().with_ietf_policy(Some("")).is_err());
    }

    #[test]
    fn malformed_numbers_are_ignored() {
        for bad in [
            "soon", "-5", "+5", "1e400", "inf", "NaN", "", "  ", "1.", ".5", "1.2.3", "0x10",
        ] {
            let info = parse(&[
                ("retry-after", bad),
                ("retry-after-ms", bad),
                ("x-ratelimit-limit", bad),
                ("x-ratelimit-remaining", bad),
                ("x-ratelimit-reset", bad),
                ("x-ratelimit-used", bad),
            ]);
            assert!(info.is_empty(), "{bad:?} gave {info:?}");
        }
    }

    #[test]
    fn counts_reject_decimals_and_overflow() {
        let info = parse(&[
            ("x-ratelimit-remaining", "2.5"),
            ("x-ratelimit-limit", "18446744073709551616"),
        ]);
        assert!(info.is_empty());
        let info = parse(&[("x-ratelimit-limit", "18446744073709551615")]);
        assert_eq!(info.limit, Some(u64::MAX));
    }

    #[test]
    fn huge_delays_are_capped() {
        let info = parse(&[
            ("retry-after", "18446744073709551615.999999999"),
            ("x-ratelimit-reset", "18446744073709551615"),
        ]);
        assert_eq!(
            (info.retry_after, info.reset_after),
            (Some(MAX_DELAY), Some(MAX_DELAY))
        );
        let info = parse(&[("retry-after-ms", "18446744073709551615")]);
        assert_eq!(info.retry_after, Some(MAX_DELAY));
        let info = parse(&[("retry-after", "99999999999999999999999")]);
        assert_eq!(info.retry_after, None);
    }

    #[test]
    fn empty_resource_is_ignored() {
        assert_eq!(parse(&[("x-ratelimit-resource", "  ")]).resource, None);
    }

    #[test]
    fn non_utf8_values_are_ignored() {
        let mut headers = HeaderMap::new();
        let raw = HeaderValue::from_bytes(b"12\xff").expect("obs-text is a valid header value");
        for name in [
            "x-ratelimit-remaining",
            "x-ratelimit-resource",
            "ratelimit",
            "retry-after",
        ] {
            headers.insert(HeaderName::from_static(name), raw.clone());
        }
        let info = RateLimitInfo::parse(&headers, &HeaderNames::default(), now());
        assert!(info.is_empty());
    }

    #[test]
    fn utf8_resource_is_kept() {
        let mut headers = HeaderMap::new();
        let raw = HeaderValue::from_bytes("büsket".as_bytes()).expect("valid header value");
        headers.insert("x-ratelimit-resource", raw);
        let info = RateLimitInfo::parse(&headers, &HeaderNames::default(), now());
        assert_eq!(info.resource.as_deref(), Some("büsket"));
    }

    #[test]
    fn malformed_structured_fields_fall_back_to_older_fields() {
        let bad = [
            r#""default;r=5"#,
            r#""default";r=5,"#,
            r#""default";=5"#,
            r#""default";r=5 "x";r=1"#,
            r#"("a" "b");r=1"#,
            r#""default";r=:abc"#,
            r#""bad\escape";r=1"#,
            "default;r=--1",
            ",",
        ];
        for value in bad {
            let info = parse(&[("ratelimit", value), ("x-ratelimit-remaining", "8")]);
            assert_eq!(info.remaining, Some(8), "{value:?}");
            assert_eq!(info.policy, None, "{value:?}");
        }
    }

    #[test]
    fn malformed_structured_items_are_skipped() {
        let bad = [
            r#""default";r"#,
            r#""default";r=-1"#,
            r#""default";r=1.5"#,
            r#""default";r="5""#,
            r#""default";t=5"#,
            r#""default";r=5;t=-1"#,
            "5;r=5",
        ];
        for value in bad {
            let info = parse(&[("ratelimit", value)]);
            assert!(info.is_empty(), "{value:?} gave {info:?}");
        }
        let info = parse(&[("ratelimit", r#""a";r, "b";r=6"#)]);
        assert_eq!(
            (info.policy.as_deref(), info.remaining),
            (Some("b"), Some(6))
        );
    }

    #[test]
    fn malformed_policy_items_are_skipped() {
        for value in [
            r#""p";w=60"#,
            r#""p";q=-1"#,
            "100;w=x",
            "100;w=-60",
            "-100;w=60",
        ] {
            let info = parse(&[("ratelimit-policy", value)]);
            assert!(info.is_empty(), "{value:?} gave {info:?}");
        }
    }

    #[test]
    fn empty_structured_field_is_nothing() {
        assert!(parse(&[("ratelimit", ""), ("ratelimit-policy", "  ")]).is_empty());
    }

    #[test]
    fn string_escapes_are_unescaped() {
        let info = parse(&[("ratelimit", r#""a\"b\\c";r=1"#)]);
        assert_eq!(info.policy.as_deref(), Some(r#"a"b\c"#));
    }

    #[test]
    fn predicates() {
        assert!(RateLimitInfo::default().is_empty());
        assert!(!RateLimitInfo::default().is_exhausted());
        let info = parse(&[("x-ratelimit-remaining", "1")]);
        assert!(!info.is_empty() && !info.is_exhausted());
    }

    /// A small xorshift generator, so the fuzz test needs no extra crates
    /// and every run sees the same inputs.
    struct XorShift(u64);

    impl XorShift {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            usize::try_from(self.next_u64() % bound as u64).unwrap_or(0)
        }
    }

    /// Bytes weighted towards those the parsers branch on.
    const ALPHABET: &[u8] = b"0123456789.;=,\"\\:?-+ \tabqrtwpkuDEFGMTNov*()e\x80\xc3\xa9\xff/";

    fn random_value(rng: &mut XorShift) -> Vec<u8> {
        let len = rng.below(24);
        (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect()
    }

    #[test]
    fn random_values_never_panic() {
        let names = HeaderNames::default();
        let all_names: Vec<HeaderName> = [&names.retry_after, &names.retry_after_ms, &names.limit]
            .into_iter()
            .chain([&names.remaining, &names.reset, &names.used, &names.resource])
            .flatten()
            .chain(names.ietf_ratelimit.iter())
            .chain(names.ietf_policy.iter())
            .cloned()
            .collect();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut headers = HeaderMap::new();
            for name in &all_names {
                if let Ok(value) = HeaderValue::from_bytes(&random_value(&mut rng)) {
                    headers.append(name.clone(), value);
                }
            }
            let info = RateLimitInfo::parse(&headers, &names, now());
            let delays = [info.retry_after, info.reset_after, info.window];
            assert!(
                delays.iter().flatten().all(|delay| *delay <= MAX_DELAY),
                "{info:?}"
            );
        }
    }

    #[test]
    fn random_structured_fields_never_panic() {
        const PIECES: &[&str] = &[
            "\"p\"", "tok", ";r=", ";t=", ";q=", ";w=", "5", "-1", "1.5", ", ", ":YQ==:", "?1",
        ];
        let mut rng = XorShift(42);
        for _ in 0..20_000 {
            let count = rng.below(8);
            let value: String = (0..count)
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect();
            let info = parse(&[("ratelimit", &value), ("ratelimit-policy", &value)]);
            assert!(info.window.is_none_or(|w| w <= MAX_DELAY));
        }
    }
}
