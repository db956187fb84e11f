//! Whether a pipe is making progress: its lag behind the source and the stall signal (pure).
//!
//! Invariants:
//! - Lag is now minus the source commit time of the newest applied transaction while the
//!   source has changes not yet applied, and 0 when it has none (an idle source is not
//!   behind). It is computed when it is read, never stored at a flush, so it grows by itself
//!   while nothing is applied.
//! - A pipe is stalled after [`Limits::attempts`] consecutive failures of one step, or after
//!   [`Limits::timeout`] without progress while the source is ahead. Progress (a checkpoint
//!   stored, or the source found caught up) clears it. A stall changes nothing in what the
//!   pipe does, which keeps retrying: it only says so.
//! - Outside replication (a snapshot's setup, Paused, Failed) there is no lag and no stall
//!   by time; failed attempts still count (a source that cannot be reached at start).

use std::time::{Duration, Instant};

/// A moment, both monotonic (for durations) and as Unix time (against commit times).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moment {
    pub at: Instant,
    pub unix: f64,
}

impl Moment {
    pub fn now() -> Moment {
        Moment {
            at: Instant::now(),
            unix: unix_now(),
        }
    }

    #[cfg(test)]
    fn plus(self, secs: f64) -> Moment {
        Moment {
            at: self.at + Duration::from_secs_f64(secs),
            unix: self.unix + secs,
        }
    }
}

/// When a pipe counts as stalled (`sync.stall_attempts`, `sync.stall_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub attempts: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub limits: Limits,
    /// Replicating: lag and stall by time apply.
    active: bool,
    /// Source commit time (Unix seconds) of the newest applied transaction.
    applied_commit: Option<f64>,
    /// The source has changes that are not applied yet, as last seen.
    behind: bool,
    /// Last progress, or when replication (re)started.
    progress_at: Instant,
    /// Unix time of `progress_at`: the lag's floor when nothing was applied yet.
    progress_unix: f64,
    failing_step: String,
    failures: u32,
    last_error: Option<String>,
    /// `last_error` changed since [`Health::take_new_error`] last took it.
    new_error: bool,
}

/// Moment as Unix seconds with a fraction.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Health {
    pub fn new(limits: Limits, now: Moment) -> Health {
        Health {
            limits,
            active: false,
            applied_commit: None,
            behind: false,
            progress_at: now.at,
            progress_unix: now.unix,
            failing_step: String::new(),
            failures: 0,
            last_error: None,
            new_error: false,
        }
    }

    /// Replication starts (or resumes): progress is measured from now.
    pub fn start(&mut self, now: Moment) {
        if !self.active {
            self.active = true;
            self.progress_at = now.at;
            self.progress_unix = now.unix;
        }
    }

    /// Replication stops (Paused, Failed, a snapshot): no lag, no stall by time.
    pub fn stop(&mut self) {
        self.active = false;
        self.behind = false;
        self.failures = 0;
    }

    /// A checkpoint was stored: the source's transactions up to one committed at
    /// `commit_unix` are applied; `behind` says whether more were read already.
    pub fn applied(&mut self, commit_unix: u32, behind: bool, now: Moment) {
        if commit_unix != 0 {
            self.applied_commit = Some(f64::from(commit_unix));
        }
        self.behind = behind;
        self.progressed(now);
    }

    /// Whether the source has changes not yet applied, as just found; finding it caught up
    /// is progress.
    pub fn behind(&mut self, behind: bool, now: Moment) {
        if !behind {
            self.progressed(now);
        }
        self.behind = behind;
    }

    /// An attempt of `step` succeeded: its failures no longer count.
    pub fn succeeded(&mut self, step: &str) {
        if self.failing_step == step {
            self.failures = 0;
        }
    }

    /// One attempt of `step` failed with `error` (it is retried).
    pub fn failed(&mut self, step: &str, error: &str) {
        if self.failing_step == step {
            self.failures = self.failures.saturating_add(1);
        } else {
            self.failing_step = step.to_owned();
            self.failures = 1;
        }
        self.last_error = Some(format!("{step}: {error}"));
        self.new_error = true;
    }

    fn progressed(&mut self, now: Moment) {
        self.progress_at = now.at;
        self.progress_unix = now.unix;
        self.failures = 0;
    }

    /// The last failure (`step: error`) if it is new since the last call: the status shows
    /// it, without overwriting a newer reason (a Failed transition's) with an older one.
    pub fn take_new_error(&mut self) -> Option<String> {
        std::mem::take(&mut self.new_error)
            .then(|| self.last_error.clone())
            .flatten()
    }

    /// Seconds behind the source; `None` when not replicating.
    pub fn lag(&self, now: Moment) -> Option<f64> {
        if !self.active {
            return None;
        }
        if !self.behind {
            return Some(0.0);
        }
        // Nothing applied yet in this process: behind for at least as long as it waited.
        let since = self.applied_commit.unwrap_or(self.progress_unix);
        Some((now.unix - since).max(0.0))
    }

    /// Why the pipe is stalled, or `None`.
    pub fn stall(&self, now: Moment) -> Option<String> {
        if self.failures >= self.limits.attempts {
            return Some(format!(
                "{} failed {} times in a row; retrying. Last error: {}",
                self.failing_step,
                self.failures,
                self.last_error.as_deref().unwrap_or("-")
            ));
        }
        let idle = now.at.saturating_duration_since(self.progress_at);
        if self.active && self.behind && idle >= self.limits.timeout {
            let mut reason = format!(
                "no change applied for {} s while the source has changes to apply",
                idle.as_secs()
            );
            if let Some(error) = &self.last_error {
                reason.push_str(&format!("; last error: {error}"));
            }
            return Some(reason);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        attempts: 3,
        timeout: Duration::from_secs(60),
    };

    fn health() -> (Health, Moment) {
        let now = Moment {
            at: Instant::now(),
            unix: 1_000.0,
        };
        let mut h = Health::new(LIMITS, now);
        h.start(now);
        (h, now)
    }

    #[test]
    fn lag_grows_while_behind_and_is_zero_when_caught_up() {
        let (mut h, now) = health();
        assert_eq!(h.lag(now), Some(0.0));
        h.applied(1_000, true, now.plus(0.2));
        // Nothing applied since: the lag is measured when read, to the sub-second.
        assert_eq!(h.lag(now.plus(2.5)), Some(2.5));
        assert_eq!(h.lag(now.plus(30.25)), Some(30.25));
        h.behind(false, now.plus(31.0));
        assert_eq!(h.lag(now.plus(40.0)), Some(0.0));
        h.stop();
        assert_eq!(h.lag(now.plus(40.0)), None);
    }

    #[test]
    fn behind_before_anything_was_applied_counts_from_the_start() {
        let (mut h, now) = health();
        h.behind(true, now);
        assert_eq!(h.lag(now.plus(7.0)), Some(7.0));
    }

    #[test]
    fn consecutive_failures_of_one_step_stall_and_progress_clears_it() {
        let (mut h, now) = health();
        let packet = "Packet is larger than max_allowed_packet";
        h.failed("replication", packet);
        h.failed("replication", packet);
        assert_eq!(h.stall(now), None);
        h.failed("replication", packet);
        let reason = h.stall(now).expect("stalled");
        assert!(
            reason.contains("replication failed 3 times") && reason.contains(packet),
            "{reason}"
        );
        // Another step starts its own count; a success of a step clears only its own.
        h.failed("ClickHouse write", "timeout");
        assert_eq!(h.stall(now), None);
        h.failed("ClickHouse write", "timeout");
        h.succeeded("replication");
        h.failed("ClickHouse write", "timeout");
        assert!(h.stall(now).is_some());
        h.succeeded("ClickHouse write");
        assert_eq!(h.stall(now), None);
        h.failed("ClickHouse write", "timeout");
        h.failed("ClickHouse write", "timeout");
        h.failed("ClickHouse write", "timeout");
        h.applied(1_001, false, now);
        assert_eq!(h.stall(now), None);
        // The last error is published once and stays in the status after recovery.
        assert_eq!(
            h.take_new_error().as_deref(),
            Some("ClickHouse write: timeout")
        );
        assert_eq!(h.take_new_error(), None);
    }

    #[test]
    fn no_progress_while_behind_stalls_after_the_timeout_but_an_idle_source_does_not() {
        let (mut h, now) = health();
        assert_eq!(h.stall(now.plus(61.0)), None, "idle source");
        h.behind(true, now);
        assert_eq!(h.stall(now.plus(59.0)), None);
        let reason = h.stall(now.plus(61.0)).expect("stalled");
        assert!(reason.contains("no change applied for 61 s"), "{reason}");
        // Paused: not stalled.
        h.stop();
        assert_eq!(h.stall(now.plus(61.0)), None);
    }
}
