//! Bounded retries with exponential backoff and jitter for transient RetailCRM failures
//! (503/429 rate limiting, other 5xx, timeouts, connection errors). Each attempt goes through
//! the account's budget again (the caller's attempt function takes the token), so retries
//! count against the 10 requests per second like any other call.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use super::error::{Endpoint, RetailCrmError, RetryCause};

/// How often and how long to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles after each further failure.
    pub initial_backoff: Duration,
    /// Cap of one backoff (and of an honoured `Retry-After`).
    pub max_backoff: Duration,
    /// No new attempt starts once this much time has passed since the first one began.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 250 ms doubling up to 5 s, within 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1-based): exponential, capped, with
    /// "equal jitter" (between half and all of the step, so concurrent callers spread out but
    /// never hammer a struggling account). A `Retry-After` from the server is a lower bound.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let step = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let half = step / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        let delay = half + Duration::from_millis(jitter);
        match retry_after {
            Some(hint) => delay.max(hint.min(self.max_backoff)),
            None => delay,
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// Final: success or a non-retryable error.
    Done(Result<T, RetailCrmError>),
    /// Transient failure; `retry_after` is the server's hint, if any.
    Retry {
        cause: RetryCause,
        retry_after: Option<Duration>,
    },
}

/// Runs `attempt` until it is final, or the policy's attempts or time run out; then the last
/// transient cause becomes the error (`RateLimited` or `Unavailable`).
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    endpoint: &Endpoint,
    mut attempt: F,
) -> Result<T, RetailCrmError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let started = Instant::now();
    let mut number = 0u32;
    loop {
        number += 1;
        match attempt(number).await {
            Attempt::Done(result) => return result,
            Attempt::Retry { cause, retry_after } => {
                let delay = policy.backoff(number, retry_after);
                let out_of_time = started.elapsed() + delay > policy.max_elapsed;
                if number >= policy.max_attempts.max(1) || out_of_time {
                    return Err(cause.into_error(endpoint.clone(), number));
                }
                tracing::warn!(
                    %endpoint,
                    attempt = number,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    cause = ?cause,
                    "RetailCRM call failed transiently; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retailcrm::error::Unavailability;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_elapsed: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = policy();
        for _ in 0..50 {
            let first = p.backoff(1, None);
            assert!(
                (50..=100).contains(&(first.as_millis() as u64)),
                "{first:?}"
            );
            let second = p.backoff(2, None);
            assert!(
                (100..=200).contains(&(second.as_millis() as u64)),
                "{second:?}"
            );
            let late = p.backoff(10, None);
            assert!((150..=300).contains(&(late.as_millis() as u64)), "{late:?}");
        }
        // Retry-After is honoured, within the cap.
        assert!(p.backoff(1, Some(Duration::from_millis(250))) >= Duration::from_millis(250));
        assert!(p.backoff(1, Some(Duration::from_secs(60))) <= Duration::from_millis(300));
    }

    /// Same shape as `policy()` with millisecond pauses, so the loop tests run in real time.
    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(3),
            ..policy()
        }
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_with_the_last_cause() {
        let endpoint = Endpoint::get("/api/v5/x");
        let mut calls = 0;
        let result: Result<(), _> = with_retries(&fast(), &endpoint, |_| {
            calls += 1;
            async {
                Attempt::Retry {
                    cause: RetryCause::RateLimited,
                    retry_after: None,
                }
            }
        })
        .await;
        assert_eq!(calls, 4);
        assert!(matches!(
            result,
            Err(RetailCrmError::RateLimited { attempts: 4, .. })
        ));
    }

    #[tokio::test]
    async fn stops_early_when_out_of_time_and_returns_success_when_it_comes() {
        let endpoint = Endpoint::get("/api/v5/x");
        // Pauses of 25–50 ms, then 50–100 ms: the second no longer fits in 60 ms.
        let short = RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_elapsed: Duration::from_millis(60),
            ..policy()
        };
        let result: Result<(), _> = with_retries(&short, &endpoint, |_| async {
            Attempt::Retry {
                cause: RetryCause::Unavailable(Unavailability::Timeout),
                retry_after: None,
            }
        })
        .await;
        match result {
            Err(RetailCrmError::Unavailable {
                attempts, reason, ..
            }) => {
                assert!(attempts < 4, "{attempts}");
                assert_eq!(reason, Unavailability::Timeout);
            }
            other => panic!("{other:?}"),
        }

        let result = with_retries(&fast(), &endpoint, |n| async move {
            if n < 3 {
                Attempt::Retry {
                    cause: RetryCause::RateLimited,
                    retry_after: None,
                }
            } else {
                Attempt::Done(Ok(n))
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }
}
