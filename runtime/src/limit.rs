//! Rate limits: "n units per period", with an optional burst.
//!
//! A [`Limit`] is validated when it is built, so a limiter never holds a limit that cannot
//! be enforced. The limiter turns each limit into a GCRA emission interval
//! (`period / count`, rounded up to a whole nanosecond so rounding never makes it faster
//! than documented) and a burst tolerance.
//!
//! The guarantee a limit gives is the token-bucket one: in any window of length `w`, the
//! units admitted stay below `burst + w / interval`. With the default burst of 1, that is
//! at most `count` units in any window of one period, which is what a server enforcing a
//! sliding window accepts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a limit could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The count was zero.
    #[error("a limit must allow at least one unit per period (count is 0)")]
    ZeroCount,
    /// The period was zero.
    #[error("a limit's period must be longer than zero")]
    ZeroPeriod,
    /// The burst was zero.
    #[error("a limit's burst must be at least 1 (burst is 0)")]
    ZeroBurst,
    /// More units than nanoseconds in the period.
    #[error("limit {count} per {period:?} is faster than one unit per nanosecond")]
    TooFast {
        /// Units per period.
        count: u32,
        /// The period.
        period: Duration,
    },
    /// Text that is not a limit.
    #[error("invalid limit `{text}`: {reason} (expected a form like `100/s`, `5000/h` or `10/2s`)")]
    Parse {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A rate limit: `count` units per `period`, at most `burst` at once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use polvo_runtime::Limit;
///
/// let per_second = Limit::per_second(100)?;
/// assert_eq!(per_second.interval(), Duration::from_millis(10));
///
/// let hourly: Limit = "5000/h".parse()?;
/// let hourly = hourly.with_burst(100)?;
/// assert_eq!(hourly.to_string(), "5000/h burst 100");
/// # Ok::<(), polvo_runtime::LimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    count: u32,
    period: Duration,
    burst: u32,
}

impl Limit {
    /// `count` units per `period`, with a burst of 1.
    ///
    /// # Errors
    ///
    /// [`LimitError::ZeroCount`], [`LimitError::ZeroPeriod`] or [`LimitError::TooFast`].
    pub fn new(count: u32, period: Duration) -> Result<Self, LimitError> {
        if count == 0 {
            return Err(LimitError::ZeroCount);
        }
        if period.is_zero() {
            return Err(LimitError::ZeroPeriod);
        }
        if period.as_nanos() < u128::from(count) {
            return Err(LimitError::TooFast { count, period });
        }
        Ok(Self {
            count,
            period,
            burst: 1,
        })
    }

    /// `count` units per second.
    ///
    /// # Errors
    ///
    /// [`LimitError::ZeroCount`] when `count` is 0.
    pub fn per_second(count: u32) -> Result<Self, LimitError> {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` units per minute.
    ///
    /// # Errors
    ///
    /// [`LimitError::ZeroCount`] when `count` is 0.
    pub fn per_minute(count: u32) -> Result<Self, LimitError> {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` units per hour.
    ///
    /// # Errors
    ///
    /// [`LimitError::ZeroCount`] when `count` is 0.
    pub fn per_hour(count: u32) -> Result<Self, LimitError> {
        Self::new(count, Duration::from_secs(3600))
    }

    /// The same limit, allowing up to `burst` units at once.
    ///
    /// A burst above 1 lets idle time be spent later; it also means a window of one period
    /// can see up to `count + burst - 1` units.
    ///
    /// # Errors
    ///
    /// [`LimitError::ZeroBurst`] when `burst` is 0.
    pub fn with_burst(self, burst: u32) -> Result<Self, LimitError> {
        if burst == 0 {
            return Err(LimitError::ZeroBurst);
        }
        Ok(Self { burst, ..self })
    }

    /// Units per period.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Units allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time between units at the sustained rate, rounded up to a whole nanosecond.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    pub(crate) fn interval_nanos(&self) -> u64 {
        let nanos = self.period.as_nanos().div_ceil(u128::from(self.count));
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.count)?;
        let secs = self.period.as_secs();
        let unit = match (secs, self.period.subsec_nanos()) {
            (1, 0) => "s".to_owned(),
            (60, 0) => "min".to_owned(),
            (3600, 0) => "h".to_owned(),
            (86400, 0) => "d".to_owned(),
            (s, 0) => format!("{s}s"),
            _ => format!("{}ms", self.period.as_millis()),
        };
        f.write_str(&unit)?;
        if self.burst > 1 {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

impl FromStr for Limit {
    type Err = LimitError;

    /// Reads `COUNT/PERIOD`, where PERIOD is an optional number and a unit: `ms`, `s`,
    /// `sec`, `m`, `min`, `h`, `hour`, `d` or `day` (`100/s`, `5000/h`, `10/2s`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parse_err = |reason| LimitError::Parse {
            text: text.to_owned(),
            reason,
        };
        let (count, period) = text.split_once('/').ok_or_else(|| parse_err("no `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| parse_err("count is not a number"))?;
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (amount, unit) = period.split_at(split);
        let amount: u64 = if amount.is_empty() {
            1
        } else {
            amount
                .parse()
                .map_err(|_| parse_err("period amount is not a number"))?
        };
        let unit_nanos: u64 = match unit.trim() {
            "ms" => 1_000_000,
            "s" | "sec" | "second" => 1_000_000_000,
            "m" | "min" | "minute" => 60_000_000_000,
            "h" | "hour" => 3_600_000_000_000,
            "d" | "day" => 86_400_000_000_000,
            _ => return Err(parse_err("unknown period unit")),
        };
        let nanos = amount
            .checked_mul(unit_nanos)
            .ok_or_else(|| parse_err("period too long"))?;
        Self::new(count, Duration::from_nanos(nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let cases = [
            ("100/s", 100, 1_000),
            ("5000/h", 5000, 3_600_000),
            ("10/2s", 10, 2_000),
            ("25 / min", 25, 60_000),
            ("3/500ms", 3, 500),
        ];
        for (text, count, millis) in cases {
            let limit: Limit = text.parse().expect(text);
            assert_eq!(limit.count(), count, "{text}");
            assert_eq!(limit.period(), Duration::from_millis(millis), "{text}");
            assert_eq!(limit.burst(), 1, "{text}");
        }
    }

    #[test]
    fn rejects_bad_text_with_reason() {
        let cases = [
            ("100", "no `/`"),
            ("x/s", "count is not a number"),
            ("10/fortnight", "unknown period unit"),
            ("10/99999999999999999999s", "period amount is not a number"),
        ];
        for (text, reason) in cases {
            let err = text.parse::<Limit>().unwrap_err();
            assert_eq!(
                err,
                LimitError::Parse {
                    text: text.into(),
                    reason
                },
                "{text}"
            );
        }
        assert_eq!("0/s".parse::<Limit>().unwrap_err(), LimitError::ZeroCount);
        assert_eq!("5/0s".parse::<Limit>().unwrap_err(), LimitError::ZeroPeriod);
    }

    #[test]
    fn validates_rules() {
        assert_eq!(Limit::per_second(0), Err(LimitError::ZeroCount));
        assert_eq!(Limit::new(1, Duration::ZERO), Err(LimitError::ZeroPeriod));
        let limit = Limit::per_second(1).unwrap();
        assert_eq!(limit.with_burst(0), Err(LimitError::ZeroBurst));
        assert!(matches!(
            Limit::new(10, Duration::from_nanos(5)),
            Err(LimitError::TooFast { count: 10, .. })
        ));
    }

    #[test]
    fn interval_rounds_up() {
        let limit = Limit::per_second(3).unwrap();
        assert_eq!(limit.interval_nanos(), 333_333_334);
        assert!(limit.interval_nanos() * 3 >= 1_000_000_000);
    }

    #[test]
    fn displays_round_trip() {
        for text in ["100/s", "5000/h", "10/2s", "3/500ms", "7/min burst 3"] {
            let (rate, burst) = match text.split_once(" burst ") {
                Some((r, b)) => (r, b.parse().unwrap()),
                None => (text, 1),
            };
            let limit = rate.parse::<Limit>().unwrap().with_burst(burst).unwrap();
            assert_eq!(limit.to_string(), text);
        }
    }
}
