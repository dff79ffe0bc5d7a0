//! When to retry a request, how long to wait first, and how many retries a client may
//! spend.
//!
//! The rules, in order: a request is retried only when it is safe (an idempotent method,
//! an idempotency key, or a connection that failed before anything was sent); a server
//! hint header, when configured, overrides that; the delay is never shorter than what the
//! server asked for; a server asking for more than [`RetryPolicy::max_retry_after`] gets
//! the caller a rate-limit error at once instead of a long sleep; and a [`RetryBudget`]
//! keeps a failing server from receiving a retry storm.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderName, Method};
use rand::Rng;
use tokio::time::Instant;

use crate::policy::ConfigError;

/// How a client retries.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use polvo_runtime::RetryPolicy;
///
/// let retry = RetryPolicy::builder()
///     .max_attempts(5)
///     .backoff(Duration::from_millis(200), Duration::from_secs(5))
///     .idempotency_header("idempotency-key")
///     .hint_header("stripe-should-retry")
///     .build()?;
/// assert_eq!(retry.max_attempts(), 5);
/// # Ok::<(), polvo_runtime::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    statuses: BTreeSet<u16>,
    max_attempts: u32,
    base_delay: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    budget: Option<BudgetConfig>,
    idempotency_header: Option<HeaderName>,
    idempotent_methods: Vec<Method>,
    hint_header: Option<HeaderName>,
}

/// How many retries a client may spend: a share of its first attempts, plus a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Retries allowed per 1000 first attempts.
    pub per_mille: u32,
    /// Retries always allowed per second, so a quiet client can still retry.
    pub min_per_second: u32,
}

impl Default for RetryPolicy {
    /// Retries 429 and 503, 4 attempts in all, backoff from 100 ms to 10 s, server delays
    /// up to 60 s, a budget of 20 % plus 10 per second, idempotent methods only.
    fn default() -> Self {
        Self {
            statuses: [429, 503].into_iter().collect(),
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            budget: Some(BudgetConfig {
                per_mille: 200,
                min_per_second: 10,
            }),
            idempotency_header: None,
            idempotent_methods: vec![
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
                Method::TRACE,
            ],
            hint_header: None,
        }
    }
}

impl RetryPolicy {
    /// Starts from [`RetryPolicy::default`].
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: Self::default(),
            error: None,
        }
    }

    /// Never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Attempts in all, the first one included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The longest server-requested delay the client sleeps through.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The header carrying an idempotency key, when the service takes one.
    pub fn idempotency_header(&self) -> Option<&HeaderName> {
        self.idempotency_header.as_ref()
    }

    /// The header with which the server says whether to retry.
    pub fn hint_header(&self) -> Option<&HeaderName> {
        self.hint_header.as_ref()
    }

    /// The budget settings.
    pub fn budget(&self) -> Option<BudgetConfig> {
        self.budget
    }

    /// Whether `status` is worth retrying.
    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    /// Whether `method` may be repeated without a key.
    pub fn is_idempotent(&self, method: &Method) -> bool {
        self.idempotent_methods.contains(method)
    }

    /// The backoff before retry number `retry` (1-based): full jitter over
    /// `min(max_backoff, base * 2^(retry-1))`, so many clients failing together spread out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let ceiling = exp.min(self.max_backoff);
        let ceiling = crate::clock::nanos(ceiling);
        Duration::from_nanos(rand::rng().random_range(0..=ceiling))
    }
}

/// Builds a [`RetryPolicy`], checking its rules.
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
    error: Option<String>,
}

impl RetryPolicyBuilder {
    /// Statuses that are retried (default 429 and 503).
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.policy.statuses = statuses.into_iter().collect();
        self
    }

    /// Attempts in all, the first included; 1 turns retries off.
    ///
    /// With retries on, a 429 without a retry time on a limited bucket that lowered the
    /// bucket's pace is not counted: the server's limit is below ours, and the attempt is
    /// charged to our limits while they come down to it. Each such 429 cuts the pace by
    /// 2 % (down to half the configured rate) and successes win back 2 % in 200, so
    /// there are only so many.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.policy.max_attempts = attempts;
        self
    }

    /// Exponential backoff from `base`, capped at `max`.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.policy.base_delay = base;
        self.policy.max_backoff = max;
        self
    }

    /// Server delays above `cap` end the request with a rate-limit error at once.
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.policy.max_retry_after = cap;
        self
    }

    /// The retry budget; `None` turns it off.
    pub fn budget(mut self, budget: Option<BudgetConfig>) -> Self {
        self.policy.budget = budget;
        self
    }

    /// Sends an idempotency key in `header`, generated once per logical request, which
    /// makes any method safe to retry.
    pub fn idempotency_header(mut self, header: &str) -> Self {
        match HeaderName::try_from(header) {
            Ok(name) => self.policy.idempotency_header = Some(name),
            Err(_) => {
                self.error = Some(format!(
                    "idempotency header `{header}` is not a header name"
                ))
            }
        }
        self
    }

    /// Methods safe to repeat without a key.
    pub fn idempotent_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.policy.idempotent_methods = methods.into_iter().collect();
        self
    }

    /// A response header (`true` or `false`) that overrides the retry decision.
    pub fn hint_header(mut self, header: &str) -> Self {
        match HeaderName::try_from(header) {
            Ok(name) => self.policy.hint_header = Some(name),
            Err(_) => self.error = Some(format!("hint header `{header}` is not a header name")),
        }
        self
    }

    /// Checks the rules.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Retry`] for zero attempts, a base delay above the maximum, a zero
    /// budget share without a floor, or a header name that is not one.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        if let Some(error) = self.error {
            return Err(ConfigError::Retry(error));
        }
        let p = &self.policy;
        if p.max_attempts == 0 {
            return Err(ConfigError::Retry(
                "max_attempts is 0; use 1 to turn retries off".into(),
            ));
        }
        if p.base_delay > p.max_backoff {
            return Err(ConfigError::Retry(format!(
                "backoff base {:?} is above its maximum {:?}",
                p.base_delay, p.max_backoff
            )));
        }
        if p.budget
            .is_some_and(|b| b.per_mille == 0 && b.min_per_second == 0)
        {
            return Err(ConfigError::Retry(
                "retry budget allows no retries at all".into(),
            ));
        }
        Ok(self.policy)
    }
}

/// A per-client allowance of retries.
///
/// Every first attempt deposits `per_mille / 1000` of a retry; every retry withdraws one.
/// A floor of `min_per_second` retries is refilled each second. Deposits are capped at ten
/// seconds' worth of first attempts so an idle period cannot save up a storm.
#[derive(Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    /// Deposited retries, in thousandths.
    balance: u64,
    /// Floor retries left in the current second.
    floor_left: u32,
    floor_since: Option<Instant>,
}

impl RetryBudget {
    /// A budget with `config`, starting empty but for its floor.
    pub fn new(config: BudgetConfig) -> Self {
        let state = BudgetState {
            balance: 0,
            floor_left: config.min_per_second,
            floor_since: None,
        };
        Self {
            config,
            state: Mutex::new(state),
        }
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cap = u64::from(self.config.per_mille).saturating_mul(10_000);
        state.balance = (state.balance + u64::from(self.config.per_mille)).min(cap.max(1000));
    }

    /// Takes one retry if the budget allows it.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.balance >= 1000 {
            state.balance -= 1000;
            return true;
        }
        let fresh = state
            .floor_since
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if fresh {
            state.floor_since = Some(now);
            state.floor_left = self.config.min_per_second;
        }
        if state.floor_left > 0 {
            state.floor_left -= 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_the_cap() {
        let policy = RetryPolicy::builder()
            .backoff(Duration::from_millis(100), Duration::from_millis(800))
            .build()
            .unwrap();
        for retry in 1..30 {
            let ceiling = Duration::from_millis(100 * (1 << (retry - 1).min(3)));
            assert!(policy.backoff(retry) <= ceiling, "retry {retry}");
        }
    }

    #[test]
    fn builder_names_the_broken_rule() {
        let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid retry policy: max_attempts is 0; use 1 to turn retries off"
        );
        let err = RetryPolicy::builder()
            .backoff(Duration::from_secs(2), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid retry policy: backoff base 2s is above its maximum 1s"
        );
        let err = RetryPolicy::builder()
            .idempotency_header("bad header")
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid retry policy: idempotency header `bad header` is not a header name"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn budget_allows_a_share_plus_a_floor() {
        let budget = RetryBudget::new(BudgetConfig {
            per_mille: 100,
            min_per_second: 2,
        });
        for _ in 0..20 {
            budget.deposit();
        }
        let now = Instant::now();
        let granted = (0..10).filter(|_| budget.try_withdraw(now)).count();
        assert_eq!(
            granted, 4,
            "2 from 20 first attempts at 10 %, 2 from the floor"
        );

        tokio::time::advance(Duration::from_secs(1)).await;
        let granted = (0..10)
            .filter(|_| budget.try_withdraw(Instant::now()))
            .count();
        assert_eq!(granted, 2, "the floor refills each second");
    }
}
