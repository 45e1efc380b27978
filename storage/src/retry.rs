//! Retries with capped exponential backoff and full jitter, every retry reported to the caller.
//!
//! The SDKs' own retry loops are switched off: retries happen here, so the worker can count them by
//! kind in its metrics instead of seeing only a slower request. Every attempt has a timeout, so no
//! request can hang a worker.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use crate::{ErrorKind, StorageError};

/// How often and how patiently a storage request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled for each next one, with full jitter.
    #[serde(with = "millis")]
    pub base_delay: Duration,
    /// Longest backoff between two attempts.
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// Longest one attempt may take before it counts as a timeout.
    #[serde(with = "millis")]
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A request's result and the retries it took, by the kind of failure each retry followed.
#[derive(Debug)]
pub struct Attempted<T> {
    pub result: Result<T, StorageError>,
    pub retries: Vec<ErrorKind>,
}

impl RetryPolicy {
    /// A policy that tries once.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Runs `op` until it succeeds, fails for good, or runs out of attempts.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Attempted<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let mut retries = Vec::new();
        let mut attempt = 1;
        loop {
            let result = match tokio::time::timeout(self.attempt_timeout, op()).await {
                Ok(result) => result,
                Err(_) => Err(StorageError::new(
                    ErrorKind::Timeout,
                    format!("{what}: no answer within {} ms", self.attempt_timeout.as_millis()),
                )),
            };
            match result {
                Err(e) if e.kind.is_retryable() && attempt < self.max_attempts.max(1) => {
                    retries.push(e.kind);
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                result => return Attempted { result, retries },
            }
        }
    }

    /// Full-jitter backoff before retry number `attempt` (1-based): uniform in [0, min(max, base·2^(attempt-1))].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1u32 << (attempt - 1).min(20)).min(self.max_delay);
        let nanos = ceiling.as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { rand::rng().random_range(0..=nanos) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> RetryPolicy {
        RetryPolicy { base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2), ..RetryPolicy::default() }
    }

    #[tokio::test]
    async fn retries_transient_failures_and_reports_each() {
        let calls = AtomicU32::new(0);
        let attempted = quick()
            .run("get k", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(StorageError::new(ErrorKind::Throttled, "slow down")),
                    1 => Err(StorageError::new(ErrorKind::Unavailable, "503")),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(attempted.result.unwrap(), 7);
        assert_eq!(attempted.retries, [ErrorKind::Throttled, ErrorKind::Unavailable]);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_never_retries_permanent_errors() {
        let calls = AtomicU32::new(0);
        let attempted: Attempted<()> = quick()
            .run("put k", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::new(ErrorKind::Timeout, "slow"))
            })
            .await;
        assert_eq!(attempted.result.unwrap_err().kind, ErrorKind::Timeout);
        assert_eq!((calls.load(Ordering::SeqCst), attempted.retries.len()), (4, 3));

        let calls = AtomicU32::new(0);
        let attempted: Attempted<()> = quick()
            .run("get k", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::new(ErrorKind::NotFound, "missing"))
            })
            .await;
        assert_eq!((calls.load(Ordering::SeqCst), attempted.retries.len()), (1, 0));
    }

    #[tokio::test]
    async fn a_hung_attempt_times_out_and_is_retried() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy { attempt_timeout: Duration::from_millis(20), ..quick() };
        let attempted = policy
            .run("get k", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                Ok(1)
            })
            .await;
        assert_eq!(attempted.result.unwrap(), 1);
        assert_eq!(attempted.retries, [ErrorKind::Timeout]);
    }

    #[test]
    fn backoff_is_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..40 {
            assert!(policy.backoff(attempt) <= policy.max_delay);
        }
    }
}
