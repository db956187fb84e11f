//! Retrying a step after transient errors: one loop, one backoff rule.
//!
//! Invariants: only an error [`Error::is_transient`] calls transient is retried, a definite one
//! is returned at once; each retry waits [`backoff`] (exponential, with jitter) and is counted
//! (`tributary_retries_total`), logged, and reported to the pipe's health, so that a step that
//! keeps failing shows as stalled; a success after failures clears that step's count. A step
//! with a cap on its attempts returns its last error once the cap is reached.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use super::control::PipeHandle;
use crate::error::{Error, Result};

/// Exponential backoff with jitter for transient errors: 0.5 s doubling to 30 s, each wait
/// its step ±12.5 %.
pub(crate) fn backoff(attempt: u32) -> Duration {
    const BASE_MS: u64 = 500;
    const MAX_MS: u64 = 30_000;
    let exp = BASE_MS.saturating_mul(1u64 << attempt.min(10)).min(MAX_MS);
    let jitter = rand::random_range(0..=exp / 4);
    Duration::from_millis(exp - exp / 8 + jitter)
}

/// How one step is retried.
pub(crate) struct Retry<'a> {
    pub pipe: &'a str,
    pub handle: &'a PipeHandle,
    /// The step as counted in `tributary_retries_total{what}`.
    pub what: &'a str,
    /// The step as the health (stall) reports it.
    pub step: &'a str,
    /// The log line of a retry (`None`: "<step> failed; retrying").
    pub message: Option<&'a str>,
    /// Retries before the error is returned (`None`: no limit).
    pub max_retries: Option<u32>,
}

impl<'a> Retry<'a> {
    /// A step retried without limit, counted and reported as `what`.
    pub fn step(pipe: &'a str, handle: &'a PipeHandle, what: &'a str) -> Retry<'a> {
        Retry {
            pipe,
            handle,
            what,
            step: what,
            message: None,
            max_retries: None,
        }
    }

    /// The attempts of one run of the step, for a caller that loops itself (its step borrows
    /// what a closure could not).
    pub fn attempts(&self) -> Attempts<'_> {
        Attempts {
            retry: self,
            failures: 0,
        }
    }

    /// Runs `op` until it succeeds or fails definitely (or its retries run out); between
    /// attempts, `wait` waits out the backoff and says whether to go on (`false`: shutdown,
    /// answered `None`).
    pub async fn run<T, F, Fut, W, WFut>(&self, mut op: F, mut wait: W) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
        W: FnMut(Duration) -> WFut,
        WFut: Future<Output = bool>,
    {
        let mut attempts = self.attempts();
        loop {
            match op().await {
                Ok(v) => {
                    attempts.succeeded();
                    return Ok(Some(v));
                }
                Err(e) => {
                    let delay = attempts.failed(e)?;
                    if !wait(delay).await {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// The failures of one run of a step so far.
pub(crate) struct Attempts<'r> {
    retry: &'r Retry<'r>,
    failures: u32,
}

impl Attempts<'_> {
    /// After a failed attempt: how long to wait before the next one (counted, logged and
    /// reported), or the error itself when it is not to be retried.
    pub fn failed(&mut self, e: Error) -> Result<Duration> {
        let r = self.retry;
        if !e.is_transient() || r.max_retries.is_some_and(|max| self.failures >= max) {
            return Err(e);
        }
        let delay = backoff(self.failures);
        self.failures += 1;
        crate::metrics::retry(r.pipe, r.what);
        match r.message {
            Some(message) => {
                warn!(pipe = %r.pipe, step = r.step, error = %e, retry_in = ?delay, attempt = self.failures, "{message}")
            }
            None => {
                warn!(pipe = %r.pipe, error = %e, retry_in = ?delay, attempt = self.failures, "{} failed; retrying", r.step)
            }
        }
        r.handle.health(|h| h.failed(r.step, &e.to_string()));
        Ok(delay)
    }

    /// After a successful attempt: the step's failures no longer count towards a stall.
    pub fn succeeded(&self) {
        if self.failures > 0 {
            self.retry.handle.health(|h| h.succeeded(self.retry.step));
        }
    }
}

/// Waits `delay`: true, or false as soon as `shutdown` is signalled (or if it was).
pub(crate) async fn sleep_unless_shutdown(
    delay: Duration,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    let mut shutdown = shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.changed() => false,
    }
}

/// Waits `delay`; always goes on.
pub(crate) async fn sleep(delay: Duration) -> bool {
    tokio::time::sleep(delay).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_and_is_capped() {
        // Each wait is its step ±12.5 % (jitter); steps double from 0.5 s and stop at 30 s.
        for _ in 0..100 {
            let first = backoff(0);
            assert!((437..=563).contains(&first.as_millis()), "{first:?}");
            let capped = backoff(20);
            assert!(
                (26_250..=33_750).contains(&capped.as_millis()),
                "{capped:?}"
            );
            assert!(backoff(3) > backoff(0));
        }
    }

    fn transient() -> Error {
        Error::StreamLost {
            url: "mysql://x".into(),
            detail: "silent".into(),
        }
    }

    fn handle() -> PipeHandle {
        PipeHandle::new("p", "cdc").0
    }

    #[tokio::test]
    async fn transient_errors_are_retried_reported_and_cleared() {
        let handle = handle();
        let retry = Retry::step("p", &handle, "connecting");
        let calls = AtomicU32::new(0);
        let waits = std::sync::Mutex::new(Vec::new());
        let got = retry
            .run(
                || async {
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0 | 1 => Err(transient()),
                        n => Ok(n),
                    }
                },
                |d| {
                    waits.lock().expect("waits").push(d);
                    async { true }
                },
            )
            .await
            .expect("retried");
        assert_eq!(got, Some(2));
        let waits = waits.into_inner().expect("waits");
        assert_eq!(waits.len(), 2);
        assert!(waits[1] > waits[0], "{waits:?}");
        let status = handle.status();
        assert_eq!(
            status.last_error.as_deref(),
            Some("connecting: source `mysql://x`: silent")
        );
        assert_eq!(status.stalled, None);
    }

    #[tokio::test]
    async fn a_definite_error_is_returned_at_once_and_a_cap_ends_the_retries() {
        let handle = handle();
        let definite = Retry::step("p", &handle, "writing");
        let calls = AtomicU32::new(0);
        let err = definite
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Error::NotATableName { name: "x".into() })
                },
                |_| async { true },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotATableName { .. }));
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

        let capped = Retry {
            max_retries: Some(3),
            ..Retry::step("p", &handle, "writing")
        };
        let err = capped
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(transient())
                },
                |_| async { true },
            )
            .await
            .unwrap_err();
        assert!(err.is_transient());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "one attempt and three retries"
        );
        // Three failures in a row of one step: stalled (default limit 5 not reached, so not yet).
        assert_eq!(handle.status().stalled, None);
    }

    #[tokio::test]
    async fn a_shutdown_during_the_wait_stops_the_retries() {
        let handle = handle();
        let retry = Retry::step("p", &handle, "connecting");
        let got = retry
            .run(|| async { Err::<(), _>(transient()) }, |_| async { false })
            .await
            .expect("stopped");
        assert_eq!(got, None);
    }
}
