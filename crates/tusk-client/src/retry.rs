//! When to try again: exponential backoff with jitter, `Retry-After`, and the count of failed
//! attempts in a row that `--max-retries` bounds.

use std::time::{Duration, SystemTime};

use crate::{ClientError, Progress};

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait; each failure in a row doubles it.
    pub base: Duration,
    /// The longest wait the doubling reaches.
    pub cap: Duration,
    /// The longest `Retry-After` honoured: a server asking for more is waited on this long.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failed attempts in a row (1 for the first), before jitter:
    /// `base * 2^(failures-1)`, at most `cap`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The wait after `failures` failed attempts in a row: "equal jitter", between half the
    /// ceiling and the ceiling, so clients that failed together do not return together yet
    /// each still waits a while. `random` is any random number.
    pub fn delay(&self, failures: u32, random: u64) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_millis() as u64;
        half + Duration::from_millis(random % (spread + 1))
    }
}

/// `Retry-After`: delay-seconds or an HTTP date, as a wait from `now` (a date in the past is
/// no wait). `None` if the value is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A random number for jitter; the clock's nanoseconds if the OS has no randomness to give.
fn random() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(0)
    })
}

/// Counts failed attempts in a row for one thing being uploaded, and waits before the next.
/// Progress (the server holding more bytes than before) resets the count, so a link that
/// breaks every few megabytes still finishes, while one that never moves gives up.
pub(crate) struct Retrier {
    policy: RetryPolicy,
    max_retries: Option<u32>,
    failures: u32,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy, max_retries: Option<u32>) -> Retrier {
        Retrier {
            policy,
            max_retries,
            failures: 0,
        }
    }

    /// The upload moved on: the next failure is the first of a new run.
    pub(crate) fn progressed(&mut self) {
        self.failures = 0;
    }

    /// An attempt failed for `reason`: give up if that was the last retry allowed, else tell
    /// `progress` and wait (the backoff, or longer if the server asked with `Retry-After`).
    pub(crate) async fn failed(
        &mut self,
        reason: &str,
        retry_after: Option<Duration>,
        progress: &dyn Progress,
    ) -> Result<(), ClientError> {
        self.failures = self.failures.saturating_add(1);
        if self.max_retries.is_some_and(|max| self.failures > max) {
            return Err(ClientError::GaveUp {
                attempts: self.failures,
                last: reason.to_owned(),
            });
        }
        let mut delay = self.policy.delay(self.failures, random());
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(self.policy.retry_after_cap));
        }
        progress.retrying(self.failures, delay, reason);
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds_and_stops_at_the_cap() {
        let policy = RetryPolicy::default();
        let mut last = Duration::ZERO;
        for failures in 1..=100 {
            let ceiling = policy.ceiling(failures);
            assert!(
                ceiling >= last && ceiling <= policy.cap,
                "{failures}: {ceiling:?}"
            );
            last = ceiling;
            for random in [0, 1, 7, 999, u64::MAX / 3, u64::MAX] {
                let delay = policy.delay(failures, random);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{failures}: {delay:?}"
                );
            }
        }
        assert_eq!(policy.ceiling(1), Duration::from_millis(250));
        assert_eq!(policy.ceiling(2), Duration::from_millis(500));
        assert_eq!(policy.ceiling(u32::MAX), policy.cap);
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = RetryPolicy::default();
        let delays: Vec<Duration> = (0..50).map(|r| policy.delay(6, r * 7919)).collect();
        assert!(delays.iter().any(|d| *d != delays[0]));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5", "soon", "Mon, 32 Foo"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn max_retries_counts_failures_in_a_row() {
        let mut retrier = Retrier::new(RetryPolicy::default(), Some(2));
        let quiet = crate::NoProgress;
        assert!(retrier.failed("a", None, &quiet).await.is_ok());
        assert!(retrier.failed("b", None, &quiet).await.is_ok());
        retrier.progressed();
        assert!(retrier.failed("c", None, &quiet).await.is_ok());
        assert!(retrier.failed("d", None, &quiet).await.is_ok());
        let err = retrier
            .failed("e", None, &quiet)
            .await
            .expect_err("gives up");
        assert!(
            matches!(err, ClientError::GaveUp { attempts: 3, .. }),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_lengthens_the_wait_up_to_its_cap() {
        let policy = RetryPolicy::default();
        let mut retrier = Retrier::new(policy, None);
        let start = tokio::time::Instant::now();
        retrier
            .failed("busy", Some(Duration::from_secs(5)), &crate::NoProgress)
            .await
            .expect("retries");
        assert!(start.elapsed() >= Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        retrier
            .failed(
                "busy",
                Some(Duration::from_secs(86_400)),
                &crate::NoProgress,
            )
            .await
            .expect("retries");
        assert!(start.elapsed() >= policy.retry_after_cap);
        assert!(start.elapsed() < policy.retry_after_cap + policy.cap);
    }
}
