//! What each pipe did over the last hour, kept in memory for the console's charts and ETAs:
//! an operator sees how lag and throughput moved without running Prometheus.
//!
//! Invariants:
//! - one sample per pipe every [`EVERY`], read from [`PipeHandle::status`] copies: sampling
//!   never changes a pipe, and a slow reader never holds a pipe's status lock;
//! - at most [`KEPT`] samples per pipe (one hour), and per table loading at most the points of
//!   [`ETA_WINDOW`]: memory is bounded whatever the uptime and the number of tables;
//! - a rate is the difference of two samples of this process over their distance in time,
//!   never negative (the counters start at zero with the daemon, as the samples do), and
//!   absent when it cannot be told (the first sample, no time between two).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::pipe::control::{PipeHandle, PipeStatus, Registry};

/// How often each pipe is sampled: fine enough to see a spike of lag, coarse enough that an
/// hour is [`KEPT`] points per pipe.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// Samples kept per pipe: the last hour.
const KEPT: usize = 3600 / EVERY.as_secs() as usize;

/// How far back a table's load rate is measured for its ETA: long enough to smooth one slow
/// partition, short enough to follow a load that speeds up or slows down.
const ETA_WINDOW: Duration = Duration::from_secs(60);

/// One pipe at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// Unix time, in seconds.
    pub at: f64,
    pub state: String,
    pub lag_seconds: Option<f64>,
    /// Row changes applied by CDC per second since the previous sample.
    pub changes_per_second: Option<f64>,
}

/// A table being loaded by a snapshot: its rate over [`ETA_WINDOW`] and the time left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Loading {
    pub rows_per_second: f64,
    /// `None` while nothing moved in the window (no rate to extrapolate).
    pub eta_seconds: Option<f64>,
}

/// What `GET /v1/pipes/{name}/samples` answers.
#[derive(Debug, Serialize)]
pub(crate) struct View {
    pub pipe: String,
    pub interval_seconds: u64,
    /// Oldest first, only those after the `since` asked for.
    pub samples: Vec<Sample>,
    /// Tables loading now, by name.
    pub loading: BTreeMap<String, Loading>,
}

/// One pipe's samples.
#[derive(Debug, Default)]
struct Series {
    samples: VecDeque<Sample>,
    /// `events_applied` at the newest sample, for the next rate.
    last_events: Option<u64>,
    /// `(at, rows_done)` of each table loading, oldest first, within [`ETA_WINDOW`].
    loading: BTreeMap<String, VecDeque<(f64, u64)>>,
}

impl Series {
    /// Adds the sample of `status` taken at `at`.
    fn record(&mut self, status: &PipeStatus, at: f64) {
        let previous = self.samples.back().map(|s| s.at);
        let changes_per_second = match (previous, self.last_events) {
            (Some(before), Some(events)) if at > before => {
                let moved = status.events_applied.saturating_sub(events);
                Some(moved as f64 / (at - before))
            }
            _ => None,
        };
        self.last_events = Some(status.events_applied);
        self.samples.push_back(Sample {
            at,
            state: status.state.clone(),
            lag_seconds: status.lag_seconds,
            changes_per_second,
        });
        while self.samples.len() > KEPT {
            self.samples.pop_front();
        }
        let window = ETA_WINDOW.as_secs_f64();
        self.loading
            .retain(|table, _| status.tables.get(table).is_some_and(|t| !t.done));
        for (table, t) in &status.tables {
            if t.done || t.rows_estimated == 0 {
                continue;
            }
            let points = self.loading.entry(table.clone()).or_default();
            points.push_back((at, t.rows_done));
            while points.front().is_some_and(|(first, _)| at - first > window) {
                points.pop_front();
            }
        }
    }

    /// Each loading table's rate and ETA, from its points and `status`'s estimates.
    fn loading(&self, status: &PipeStatus) -> BTreeMap<String, Loading> {
        self.loading
            .iter()
            .filter_map(|(table, points)| {
                let t = status.tables.get(table)?;
                let (first, last) = (points.front()?, points.back()?);
                if last.0 <= first.0 {
                    return None;
                }
                let rate = last.1.saturating_sub(first.1) as f64 / (last.0 - first.0);
                let left = t.rows_estimated.saturating_sub(t.rows_done) as f64;
                let eta_seconds = (rate > 0.0).then(|| left / rate);
                Some((
                    table.clone(),
                    Loading {
                        rows_per_second: rate,
                        eta_seconds,
                    },
                ))
            })
            .collect()
    }
}

/// Every pipe's samples, shared by the sampling task and the API.
#[derive(Clone, Default)]
pub(crate) struct Samples {
    series: Arc<Mutex<BTreeMap<String, Series>>>,
}

impl Samples {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Series>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples every pipe of `registry` now.
    fn take(&self, registry: &Registry) {
        let at = unix_now();
        let statuses: Vec<PipeStatus> = registry.values().map(PipeHandle::status).collect();
        let mut series = self.lock();
        for status in statuses {
            series
                .entry(status.name.clone())
                .or_default()
                .record(&status, at);
        }
    }

    /// The samples of `handle`'s pipe after `since` (unix seconds), and its loading tables.
    pub fn view(&self, handle: &PipeHandle, since: f64) -> View {
        let status = handle.status();
        let series = self.lock();
        let (samples, loading) = match series.get(&status.name) {
            Some(s) => (
                s.samples.iter().filter(|x| x.at > since).cloned().collect(),
                s.loading(&status),
            ),
            None => (Vec::new(), BTreeMap::new()),
        };
        View {
            pipe: status.name,
            interval_seconds: EVERY.as_secs(),
            samples,
            loading,
        }
    }

    /// Samples `registry` every [`EVERY`], the first time at once; runs until aborted.
    pub async fn run(self, registry: Registry) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.take(&registry);
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pipe::control::TableStatus;

    fn status(events: u64, tables: &[(&str, u64, u64, bool)]) -> PipeStatus {
        PipeStatus {
            name: "p".into(),
            state: "Running".into(),
            events_applied: events,
            lag_seconds: Some(0.5),
            tables: tables
                .iter()
                .map(|(name, done, estimated, finished)| {
                    let t = TableStatus {
                        rows_done: *done,
                        rows_estimated: *estimated,
                        done: *finished,
                        ..TableStatus::default()
                    };
                    ((*name).to_owned(), t)
                })
                .collect(),
            ..PipeStatus::default()
        }
    }

    #[test]
    fn the_rate_is_the_difference_over_time_and_never_negative() {
        let mut s = Series::default();
        s.record(&status(100, &[]), 1000.0);
        s.record(&status(150, &[]), 1005.0);
        // A counter read lower (cannot happen within one process) is no negative rate.
        s.record(&status(120, &[]), 1010.0);
        // Two samples at the same instant tell no rate.
        s.record(&status(130, &[]), 1010.0);
        let rates: Vec<_> = s.samples.iter().map(|x| x.changes_per_second).collect();
        assert_eq!(rates, [None, Some(10.0), Some(0.0), None]);
        assert_eq!(s.samples[1].lag_seconds, Some(0.5));
    }

    #[test]
    fn an_hour_of_samples_is_kept_and_no_more() {
        let mut s = Series::default();
        for i in 0..(KEPT + 50) {
            s.record(&status(i as u64, &[]), i as f64 * 5.0);
        }
        assert_eq!(s.samples.len(), KEPT);
        assert_eq!(s.samples.front().unwrap().at, 50.0 * 5.0);
    }

    #[test]
    fn a_loading_table_gets_a_rate_and_an_eta_over_the_last_minute() {
        let mut s = Series::default();
        // 1,000 rows every 5 s for two minutes: the window holds the last minute only.
        for i in 0..=24u64 {
            let st = status(0, &[("d.t", i * 1000, 100_000, false), ("d.u", 5, 5, true)]);
            s.record(&st, i as f64 * 5.0);
        }
        let points = &s.loading["d.t"];
        assert_eq!(points.len(), 13, "{points:?}");
        let now = status(0, &[("d.t", 24_000, 100_000, false), ("d.u", 5, 5, true)]);
        let loading = s.loading(&now);
        assert_eq!(
            loading.keys().collect::<Vec<_>>(),
            ["d.t"],
            "done tables have none"
        );
        assert_eq!(loading["d.t"].rows_per_second, 200.0);
        assert_eq!(loading["d.t"].eta_seconds, Some(76_000.0 / 200.0));
        // Once done it is dropped; a table that does not move has a rate but no ETA.
        s.record(
            &status(0, &[("d.t", 100_000, 100_000, true), ("d.v", 0, 9, false)]),
            200.0,
        );
        s.record(&status(0, &[("d.v", 0, 9, false)]), 205.0);
        let loading = s.loading(&status(0, &[("d.v", 0, 9, false)]));
        assert_eq!(s.loading.keys().collect::<Vec<_>>(), ["d.v"]);
        assert_eq!(loading["d.v"].eta_seconds, None);
    }
}
