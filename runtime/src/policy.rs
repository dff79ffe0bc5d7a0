//! A service's rate-limit policy: named buckets, which operations spend which buckets, and
//! the knobs around them.
//!
//! Generated clients embed a [`Policy`] built from the service's annotations file; users
//! change any part of it on the client builder. A policy is checked when it is built, so a
//! reference to an unknown bucket or a cost that can never fit fails at start-up with a
//! message naming the rule, not at the first request.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::headers::HeaderNames;
use crate::limit::Limit;
use crate::retry::RetryPolicy;

/// The bucket every operation without a rule of its own uses.
pub const DEFAULT_BUCKET: &str = "default";

/// Why a policy (or a client configuration) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An operation names a bucket the policy does not define.
    #[error("operation `{operation}` uses bucket `{bucket}`, which is not defined")]
    UnknownBucket {
        /// The operation.
        operation: String,
        /// The missing bucket.
        bucket: String,
    },
    /// An operation costs nothing.
    #[error("operation `{operation}` has cost 0; costs start at 1")]
    ZeroCost {
        /// The operation.
        operation: String,
    },
    /// An operation's cost exceeds a limit's burst, so it could never be sent.
    #[error(
        "operation `{operation}` costs {cost}, above the burst of limit {limit} in bucket \
         `{bucket}`; raise the burst or lower the cost"
    )]
    CostAboveBurst {
        /// The operation.
        operation: String,
        /// Its cost.
        cost: u32,
        /// The bucket.
        bucket: String,
        /// The limit, as text.
        limit: String,
    },
    /// A cap on requests in flight of zero.
    #[error("max_in_flight for {scope} is 0; it must be at least 1")]
    ZeroInFlight {
        /// `service` or `bucket NAME`.
        scope: String,
    },
    /// A limit could not be built.
    #[error("invalid limit in bucket `{bucket}`: {source}")]
    Limit {
        /// The bucket.
        bucket: String,
        /// The broken rule.
        source: crate::limit::LimitError,
    },
    /// A retry setting breaks a rule.
    #[error("invalid retry policy: {0}")]
    Retry(String),
    /// A client setting is invalid (base URL, header value, TLS).
    #[error("invalid client configuration: {0}")]
    Client(String),
}

/// One bucket: limits enforced together, and an optional cap on requests in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketPolicy {
    /// Limits enforced together; empty means the bucket only tracks the server.
    pub limits: Vec<Limit>,
    /// Requests of this bucket allowed in flight at once.
    pub max_in_flight: Option<usize>,
}

/// Which buckets an operation spends, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationPolicy {
    /// Buckets spent together, atomically.
    pub buckets: Vec<String>,
    /// Units spent in each bucket.
    pub cost: u32,
}

impl Default for OperationPolicy {
    fn default() -> Self {
        Self {
            buckets: vec![DEFAULT_BUCKET.to_owned()],
            cost: 1,
        }
    }
}

/// When a [`Mode`] applies.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModeCondition {
    /// The credential (bearer token, API key, or basic user) starts with this prefix,
    /// as Stripe's `sk_test_` keys do.
    KeyPrefix(String),
    /// The base URL is this one (a trailing `/` does not matter).
    BaseUrl(String),
}

/// Limits that replace a bucket's usual ones while a condition holds: a test key or a
/// sandbox URL often gets lower limits than production.
///
/// A mode is chosen once, when the client is built, from its credentials and base URL;
/// the first mode whose condition holds wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    /// The mode's name, for logs.
    pub name: String,
    /// When it applies.
    pub when: ModeCondition,
    /// Per bucket: limits that replace the bucket's, and an in-flight cap that replaces
    /// the bucket's when given.
    pub buckets: BTreeMap<String, BucketPolicy>,
}

impl Mode {
    fn applies(&self, key: Option<&str>, base_url: &str) -> bool {
        match &self.when {
            ModeCondition::KeyPrefix(prefix) => key.is_some_and(|k| k.starts_with(prefix)),
            ModeCondition::BaseUrl(url) => {
                url.trim_end_matches('/') == base_url.trim_end_matches('/')
            }
        }
    }
}

/// How long before its slot a paced request leaves tokio's timer for the precise one:
/// enough to cover tokio's lateness on a busy machine.
const PRECISE_WINDOW: Duration = Duration::from_millis(3);

/// A service's whole rate-limit policy.
///
/// # Examples
///
/// ```
/// use polvo_runtime::{Limit, Policy};
///
/// let policy = Policy::builder()
///     .bucket("default", [Limit::per_second(100)?, Limit::per_hour(5000)?])
///     .bucket("search", [Limit::per_minute(30)?])
///     .operation("SearchCustomers", ["default", "search"], 1)
///     .max_in_flight(16)
///     .build()?;
/// assert_eq!(policy.operation("SearchCustomers").buckets, ["default", "search"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) buckets: BTreeMap<String, BucketPolicy>,
    pub(crate) operations: BTreeMap<String, OperationPolicy>,
    pub(crate) default_operation: OperationPolicy,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) precise_wakeups: Option<Duration>,
    pub(crate) bulk_max_concurrency: Option<usize>,
    pub(crate) retry: RetryPolicy,
    pub(crate) headers: HeaderNames,
    pub(crate) modes: Vec<Mode>,
}

impl Default for Policy {
    /// No proactive limits: one unlimited `default` bucket that follows the server's
    /// headers, and the default retry policy.
    fn default() -> Self {
        let mut buckets = BTreeMap::new();
        buckets.insert(DEFAULT_BUCKET.to_owned(), BucketPolicy::default());
        Self {
            buckets,
            operations: BTreeMap::new(),
            default_operation: OperationPolicy::default(),
            max_in_flight: None,
            max_wait: None,
            precise_wakeups: Some(PRECISE_WINDOW),
            bulk_max_concurrency: None,
            retry: RetryPolicy::default(),
            headers: HeaderNames::default(),
            modes: Vec::new(),
        }
    }
}

impl Policy {
    /// Starts a policy from [`Policy::default`].
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            policy: Policy::default(),
        }
    }

    /// The rule for `operation`: its own, or the default one.
    pub fn operation(&self, operation: &str) -> &OperationPolicy {
        self.operations
            .get(operation)
            .unwrap_or(&self.default_operation)
    }

    /// The buckets, by name.
    pub fn buckets(&self) -> &BTreeMap<String, BucketPolicy> {
        &self.buckets
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The most calls a bulk run keeps in flight unless its options say otherwise.
    pub fn bulk_max_concurrency(&self) -> Option<usize> {
        self.bulk_max_concurrency
    }

    /// The longest a request waits for quota before failing with a rate-limit error.
    pub fn max_wait(&self) -> Option<Duration> {
        self.max_wait
    }

    /// The window of precise wake-ups, `None` when they are off; see
    /// [`PolicyBuilder::precise_wakeups`].
    pub fn precise_wakeups(&self) -> Option<Duration> {
        self.precise_wakeups
    }

    /// The header names the service uses.
    pub fn headers(&self) -> &HeaderNames {
        &self.headers
    }

    /// The modes, in the order they are tried.
    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }

    /// The policy with the first mode that applies to `key` and `base_url` folded into
    /// its buckets, and that mode's name; the policy unchanged when none applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use polvo_runtime::{BucketPolicy, Limit, ModeCondition, Policy};
    ///
    /// let test = BucketPolicy { limits: vec![Limit::per_second(25)?], max_in_flight: None };
    /// let policy = Policy::builder()
    ///     .bucket("default", [Limit::per_second(100)?])
    ///     .mode("test", ModeCondition::KeyPrefix("sk_test_".into()), [("default", test)])
    ///     .build()?;
    /// let (chosen, mode) = policy.with_mode_for(Some("sk_test_123"), "https://api.example.com");
    /// assert_eq!(mode.as_deref(), Some("test"));
    /// assert_eq!(chosen.buckets()["default"].limits, [Limit::per_second(25)?]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_mode_for(mut self, key: Option<&str>, base_url: &str) -> (Self, Option<String>) {
        let Some(mode) = self
            .modes
            .iter()
            .find(|m| m.applies(key, base_url))
            .cloned()
        else {
            return (self, None);
        };
        for (name, change) in mode.buckets {
            let bucket = self.buckets.entry(name).or_default();
            bucket.limits = change.limits;
            if change.max_in_flight.is_some() {
                bucket.max_in_flight = change.max_in_flight;
            }
        }
        (self, Some(mode.name))
    }

    /// Turns the policy back into a builder, to change a part of it.
    pub fn into_builder(self) -> PolicyBuilder {
        PolicyBuilder { policy: self }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_in_flight == Some(0) {
            return Err(ConfigError::ZeroInFlight {
                scope: "service".into(),
            });
        }
        let in_modes = self.modes.iter().flat_map(|m| &m.buckets);
        for (name, bucket) in self.buckets.iter().chain(in_modes) {
            if bucket.max_in_flight == Some(0) {
                return Err(ConfigError::ZeroInFlight {
                    scope: format!("bucket `{name}`"),
                });
            }
        }
        let default = ("(default)".to_owned(), &self.default_operation);
        let named = self.operations.iter().map(|(name, op)| (name.clone(), op));
        for (name, op) in named.chain(std::iter::once(default)) {
            self.validate_operation(&name, op)?;
        }
        Ok(())
    }

    fn validate_operation(&self, name: &str, op: &OperationPolicy) -> Result<(), ConfigError> {
        if op.cost == 0 {
            return Err(ConfigError::ZeroCost {
                operation: name.to_owned(),
            });
        }
        for bucket_name in &op.buckets {
            let bucket =
                self.buckets
                    .get(bucket_name)
                    .ok_or_else(|| ConfigError::UnknownBucket {
                        operation: name.to_owned(),
                        bucket: bucket_name.clone(),
                    })?;
            if let Some(limit) = bucket.limits.iter().find(|l| l.burst() < op.cost) {
                return Err(ConfigError::CostAboveBurst {
                    operation: name.to_owned(),
                    cost: op.cost,
                    bucket: bucket_name.clone(),
                    limit: limit.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Builds a [`Policy`]; see [`Policy::builder`].
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    /// Defines (or replaces the limits of) a bucket.
    ///
    /// Limits set this way win over the modes defined before: the bucket leaves them.
    pub fn bucket(
        mut self,
        name: impl Into<String>,
        limits: impl IntoIterator<Item = Limit>,
    ) -> Self {
        let name = name.into();
        for mode in &mut self.policy.modes {
            mode.buckets.remove(&name);
        }
        self.policy.buckets.entry(name).or_default().limits = limits.into_iter().collect();
        self
    }

    /// Caps the requests of one bucket in flight at once, over any mode's cap.
    pub fn bucket_in_flight(mut self, name: impl Into<String>, max: usize) -> Self {
        let name = name.into();
        for mode in &mut self.policy.modes {
            if let Some(bucket) = mode.buckets.get_mut(&name) {
                bucket.max_in_flight = None;
            }
        }
        self.policy.buckets.entry(name).or_default().max_in_flight = Some(max);
        self
    }

    /// Adds a mode, tried after those added before; see [`Mode`].
    pub fn mode<I, S>(mut self, name: impl Into<String>, when: ModeCondition, buckets: I) -> Self
    where
        I: IntoIterator<Item = (S, BucketPolicy)>,
        S: Into<String>,
    {
        let buckets = buckets.into_iter().map(|(n, b)| (n.into(), b)).collect();
        self.policy.modes.push(Mode {
            name: name.into(),
            when,
            buckets,
        });
        self
    }

    /// Makes `operation` spend `cost` units of each of `buckets`.
    pub fn operation<I, S>(mut self, operation: impl Into<String>, buckets: I, cost: u32) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let buckets = buckets.into_iter().map(Into::into).collect();
        self.policy
            .operations
            .insert(operation.into(), OperationPolicy { buckets, cost });
        self
    }

    /// Sets the rule for operations without one of their own.
    pub fn default_operation<I, S>(mut self, buckets: I, cost: u32) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let buckets = buckets.into_iter().map(Into::into).collect();
        self.policy.default_operation = OperationPolicy { buckets, cost };
        self
    }

    /// Sets the default bucket to `per_second` requests per second, replacing its limits.
    pub fn rate_limit(self, per_second: u32) -> Result<Self, ConfigError> {
        let limit = Limit::per_second(per_second).map_err(|source| ConfigError::Limit {
            bucket: DEFAULT_BUCKET.into(),
            source,
        })?;
        Ok(self.bucket(DEFAULT_BUCKET, [limit]))
    }

    /// Caps the service's requests in flight at once.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.policy.max_in_flight = Some(max);
        self
    }

    /// Caps the calls a bulk run keeps in flight (at least 1), unless the run's
    /// [`BulkOptions`](crate::bulk::BulkOptions) set their own cap.
    pub fn bulk_max_concurrency(mut self, max: usize) -> Self {
        self.policy.bulk_max_concurrency = Some(max.max(1));
        self
    }

    /// Fails a request with a rate-limit error instead of waiting longer than `max_wait`.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.policy.max_wait = Some(max_wait);
        self
    }

    /// Sets how long before its slot a paced request leaves tokio's timer for the precise
    /// one (3 ms unless set); `Duration::ZERO` turns precise wake-ups off.
    ///
    /// tokio's timer has 1 ms ticks and fires when a worker gets to it, so on it alone
    /// paced requests leave up to a couple of milliseconds after their slot, unevenly. A
    /// thread on the operating system's timer wakes them within a fraction of a
    /// millisecond instead, and a waiter that still wakes more than an eighth of a slot
    /// late (the machine paused) moves the later slots back by all of its lateness, as
    /// the requests it held up will reach the server that late. Measured at 500/s
    /// against a strict server: with a tolerance of one request, 0 429s in 5,000 where
    /// tokio's timer alone had 0 to 2; with no tolerance, 95 % of the rate instead of
    /// 66 % (a refused request is resent in its slot when it comes back within half a
    /// slot, which on tokio's timer it rarely does). The thread starts at the first wait
    /// and sleeps between wake-ups; on tokio's paused clock deadlines are kept exactly.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use polvo_runtime::{Limit, Policy};
    ///
    /// let policy = Policy::builder()
    ///     .bucket("default", [Limit::per_second(500)?])
    ///     .precise_wakeups(Duration::ZERO)
    ///     .build()?;
    /// assert_eq!(policy.precise_wakeups(), None, "tokio's timer alone");
    /// assert!(Policy::default().precise_wakeups().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn precise_wakeups(mut self, window: Duration) -> Self {
        self.policy.precise_wakeups = (!window.is_zero()).then_some(window);
        self
    }

    /// Replaces the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.policy.retry = retry;
        self
    }

    /// Replaces the header names read from responses.
    pub fn headers(mut self, headers: HeaderNames) -> Self {
        self.policy.headers = headers;
        self
    }

    /// The policy as it stands; [`crate::ClientBuilder::build`] checks it later.
    pub(crate) fn build_unchecked(self) -> Policy {
        self.policy
    }

    /// Checks the policy.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule: an unknown bucket, a zero cost, a
    /// cost above a burst or a zero in-flight cap.
    pub fn build(self) -> Result<Policy, ConfigError> {
        self.policy.validate()?;
        Ok(self.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_bucket() {
        let err = Policy::builder()
            .operation("Search", ["search"], 1)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "operation `Search` uses bucket `search`, which is not defined"
        );
    }

    #[test]
    fn rejects_cost_above_burst() {
        let limit = Limit::per_second(10).unwrap().with_burst(2).unwrap();
        let err = Policy::builder()
            .bucket("default", [limit])
            .operation("Upload", ["default"], 3)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "operation `Upload` costs 3, above the burst of limit 10/s burst 2 in bucket \
             `default`; raise the burst or lower the cost"
        );
    }

    #[test]
    fn rejects_zero_cost_and_zero_in_flight() {
        let err = Policy::builder()
            .operation("A", ["default"], 0)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::ZeroCost {
                operation: "A".into()
            }
        );
        let err = Policy::builder()
            .bucket_in_flight("default", 0)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_in_flight for bucket `default` is 0; it must be at least 1"
        );
    }

    fn test_mode(policy: PolicyBuilder) -> PolicyBuilder {
        let slow = BucketPolicy {
            limits: vec![Limit::per_second(5).unwrap()],
            max_in_flight: Some(2),
        };
        let when = ModeCondition::KeyPrefix("sk_test_".into());
        policy.mode("test", when, [("default", slow)])
    }

    #[test]
    fn modes_apply_by_key_prefix_or_base_url() {
        let policy = test_mode(Policy::builder().rate_limit(100).unwrap())
            .mode(
                "sandbox",
                ModeCondition::BaseUrl("https://sandbox.example.com/".into()),
                [("default", BucketPolicy::default())],
            )
            .build()
            .unwrap();
        let (live, mode) = policy
            .clone()
            .with_mode_for(Some("sk_live_1"), "https://api.example.com");
        assert_eq!(mode, None);
        assert_eq!(live.buckets()["default"].limits.len(), 1);
        let (test, mode) = policy
            .clone()
            .with_mode_for(Some("sk_test_1"), "https://api.example.com");
        assert_eq!(mode.as_deref(), Some("test"));
        assert_eq!(test.buckets()["default"].limits[0].count(), 5);
        assert_eq!(test.buckets()["default"].max_in_flight, Some(2));
        let (sandbox, mode) = policy.with_mode_for(None, "https://sandbox.example.com");
        assert_eq!(mode.as_deref(), Some("sandbox"));
        assert!(sandbox.buckets()["default"].limits.is_empty());
    }

    #[test]
    fn explicit_limits_win_over_modes() {
        let policy = test_mode(Policy::builder())
            .rate_limit(100)
            .unwrap()
            .build()
            .unwrap();
        let (chosen, _) = policy.with_mode_for(Some("sk_test_1"), "https://api.example.com");
        assert_eq!(chosen.buckets()["default"].limits[0].count(), 100);
    }

    #[test]
    fn rate_limit_replaces_default_bucket() {
        let policy = Policy::builder().rate_limit(100).unwrap().build().unwrap();
        assert_eq!(
            policy.buckets()["default"].limits,
            [Limit::per_second(100).unwrap()]
        );
    }
}
