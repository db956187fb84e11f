//! Prometheus metrics: the functions pipe code calls, and the text `/metrics` serves.
//!
//! Built on the `metrics` facade with `metrics-exporter-prometheus`'s recorder: call sites
//! only name a metric and its labels, and [`render`] turns the recorder's state into the
//! Prometheus text format (0.0.4). Invariants:
//! - every metric is named `tributary_…`, described once in [`describe`] (its `# HELP`), and
//!   documented in the README's "HTTP API and metrics" section with the same labels;
//! - every per-pipe metric carries a `pipe` label; label sets are small and bounded (pipes,
//!   tables, operations, states, error kinds): never a row value or a position;
//! - the calls are cheap and never fail: before [`install`] (unit tests of other modules, the
//!   CLI's client commands) they record nothing;
//! - counters only go up; [`state`] keeps exactly one state of a pipe at 1.
//!
//! Call [`snapshot_rows`] and [`cdc_changes`] once per committed chunk or batch with its row
//! count, not once per row.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::warn;

use crate::lifecycle::PipeState;

/// Upper bounds of the `tributary_flush_seconds` buckets: a healthy batch flushes in tens of
/// milliseconds; tens of seconds means ClickHouse is struggling.
const FLUSH_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const SNAPSHOT_ROWS: &str = "tributary_snapshot_rows_total";
const CDC_CHANGES: &str = "tributary_cdc_changes_total";
const FLUSH_SECONDS: &str = "tributary_flush_seconds";
const LAG_SECONDS: &str = "tributary_lag_seconds";
const PIPE_STATE: &str = "tributary_pipe_state";
const ERRORS: &str = "tributary_errors_total";
const RETRIES: &str = "tributary_retries_total";
const CLAMPED_VALUES: &str = "tributary_clamped_values_total";
const SPILLS: &str = "tributary_cdc_spills_total";
const TABLES_ISOLATED: &str = "tributary_tables_isolated";
const PIPE_STALLED: &str = "tributary_pipe_stalled";
const BUILD_INFO: &str = "tributary_build_info";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (idempotent) and returns the handle that renders it;
/// `None` if another recorder was installed first (then nothing is recorded here).
pub(crate) fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(FLUSH_SECONDS.into()), &FLUSH_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .clone()
}

fn describe() {
    describe_counter!(
        SNAPSHOT_ROWS,
        "Rows copied into the target by the snapshot, per pipe and source table."
    );
    describe_counter!(
        CDC_CHANGES,
        "Row changes from the binlog applied to the target, per pipe, source table and operation (insert, update, delete)."
    );
    describe_histogram!(
        FLUSH_SECONDS,
        metrics::Unit::Seconds,
        "Time to write one CDC batch and its checkpoint, per pipe."
    );
    describe_gauge!(
        LAG_SECONDS,
        metrics::Unit::Seconds,
        "Seconds the target is behind the source, per pipe: now minus the source commit time of the newest applied transaction while the source has changes not yet applied, 0 when it has none."
    );
    describe_gauge!(
        PIPE_STATE,
        "1 for the lifecycle state the pipe is in, 0 for every other state."
    );
    describe_counter!(
        ERRORS,
        "Errors per pipe and kind (transient errors are retried; definite ones fail the pipe)."
    );
    describe_counter!(
        RETRIES,
        "Retries after a transient error, per pipe and what was retried."
    );
    describe_counter!(
        CLAMPED_VALUES,
        "Source values ClickHouse cannot hold that were clamped by the documented rule (zero, invalid or out-of-range dates), per pipe and source table, counted as read."
    );
    describe_gauge!(
        TABLES_ISOLATED,
        "Tables of the pipe not replicated now because of a change it cannot follow (status shows why), per pipe."
    );
    describe_gauge!(
        PIPE_STALLED,
        "1 while the pipe keeps failing one step or makes no progress while the source is ahead (status `stalled` says why), else 0, per pipe."
    );
    describe_counter!(
        SPILLS,
        "Parts of transactions larger than the batch byte cap written before their commit, per pipe."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version label is tributary's.");
}

/// Renders every metric in the Prometheus text format, or `None` without a recorder.
pub(crate) fn render() -> Option<String> {
    let handle = HANDLE.get().cloned().flatten()?;
    handle.run_upkeep();
    Some(handle.render())
}

/// Keeps the recorder's histogram storage bounded when nobody scrapes `/metrics`.
pub(crate) fn upkeep() {
    if let Some(Some(handle)) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// `n` more rows of `table` (`db.table`) committed by the snapshot.
pub(crate) fn snapshot_rows(pipe: &str, table: &str, n: u64) {
    counter!(SNAPSHOT_ROWS, "pipe" => pipe.to_owned(), "table" => table.to_owned()).increment(n);
}

/// `n` more row changes of `table` applied by CDC; `op` is `insert`, `update` or `delete`.
pub(crate) fn cdc_changes(pipe: &str, table: &str, op: &str, n: u64) {
    counter!(CDC_CHANGES, "pipe" => pipe.to_owned(), "table" => table.to_owned(), "op" => op.to_owned())
        .increment(n);
}

/// One CDC batch (rows and checkpoint) took `secs` to write.
pub(crate) fn flush_seconds(pipe: &str, secs: f64) {
    histogram!(FLUSH_SECONDS, "pipe" => pipe.to_owned()).record(secs);
}

/// The pipe's current replication lag.
pub(crate) fn lag_seconds(pipe: &str, secs: f64) {
    gauge!(LAG_SECONDS, "pipe" => pipe.to_owned()).set(secs);
}

/// The pipe entered `state_name` (a [`PipeState::as_str`]): that state's gauge becomes 1 and
/// every other state's 0. An unknown name sets them all to 0.
pub(crate) fn state(pipe: &str, state_name: &str) {
    for s in PipeState::ALL {
        let value = if s.as_str() == state_name { 1.0 } else { 0.0 };
        gauge!(PIPE_STATE, "pipe" => pipe.to_owned(), "state" => s.as_str()).set(value);
    }
}

/// One error of `kind` (e.g. `transient`, `definite`, or a narrower class).
pub(crate) fn error(pipe: &str, kind: &str) {
    counter!(ERRORS, "pipe" => pipe.to_owned(), "kind" => kind.to_owned()).increment(1);
}

/// One retry of `what` (e.g. `source_connect`, `flush`) after a transient error.
pub(crate) fn retry(pipe: &str, what: &str) {
    counter!(RETRIES, "pipe" => pipe.to_owned(), "what" => what.to_owned()).increment(1);
}

/// How many of the pipe's tables are isolated now.
pub(crate) fn tables_isolated(pipe: &str, count: usize) {
    gauge!(TABLES_ISOLATED, "pipe" => pipe.to_owned()).set(count as f64);
}

/// Whether the pipe is stalled now.
pub(crate) fn stalled(pipe: &str, stalled: bool) {
    gauge!(PIPE_STALLED, "pipe" => pipe.to_owned()).set(if stalled { 1.0 } else { 0.0 });
}

/// One part of a transaction too large to hold written before its commit.
pub(crate) fn spilled(pipe: &str) {
    counter!(SPILLS, "pipe" => pipe.to_owned()).increment(1);
}

/// Values of `table` clamped to fit ClickHouse; the first clamp of each column is logged, so
/// an operator learns which column holds them without a log line per value.
pub(crate) fn clamped_values(pipe: &str, table: &str, clamps: &crate::decode::Clamps) {
    static LOGGED: Mutex<BTreeSet<(String, String, String)>> = Mutex::new(BTreeSet::new());
    counter!(CLAMPED_VALUES, "pipe" => pipe.to_owned(), "table" => table.to_owned())
        .increment(clamps.count);
    let mut logged = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    for column in &clamps.columns {
        if logged.insert((pipe.to_owned(), table.to_owned(), column.clone())) {
            warn!(
                pipe,
                table,
                column,
                "a value ClickHouse cannot hold (a zero or out-of-range date) was clamped by the documented rule; later ones of this column are only counted in tributary_clamped_values_total"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The sample line of `name` whose labels contain every one of `labels`.
    fn sample<'a>(text: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|lb| l.contains(lb)))
    }

    fn value(line: &str) -> f64 {
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn rendered_text_has_every_metric_with_its_labels() {
        install().expect("no other recorder in this test binary");
        let p = "metrics_unit_pipe";
        snapshot_rows(p, "shop.orders", 500);
        snapshot_rows(p, "shop.orders", 20);
        cdc_changes(p, "shop.orders", "insert", 3);
        cdc_changes(p, "shop.orders", "delete", 1);
        flush_seconds(p, 0.02);
        flush_seconds(p, 3.0);
        lag_seconds(p, 1.5);
        stalled(p, true);
        state(p, "Snapshot");
        state(p, "Running");
        error(p, "transient");
        retry(p, "flush");
        retry(p, "flush");
        let clamps = crate::decode::Clamps {
            count: 3,
            columns: vec!["born".into()],
        };
        clamped_values(p, "shop.people", &clamps);
        let text = render().unwrap();

        let pipe = format!("pipe=\"{p}\"");
        let rows = sample(&text, SNAPSHOT_ROWS, &[&pipe, "table=\"shop.orders\""]).unwrap();
        assert_eq!(value(rows), 520.0);
        let ins = sample(&text, CDC_CHANGES, &[&pipe, "op=\"insert\""]).unwrap();
        assert_eq!(value(ins), 3.0);
        let del = sample(&text, CDC_CHANGES, &[&pipe, "op=\"delete\""]).unwrap();
        assert_eq!(value(del), 1.0);
        let count = sample(&text, &format!("{FLUSH_SECONDS}_count"), &[&pipe]).unwrap();
        assert_eq!(value(count), 2.0);
        let le = sample(
            &text,
            &format!("{FLUSH_SECONDS}_bucket"),
            &[&pipe, "le=\"0.025\""],
        );
        assert_eq!(value(le.unwrap()), 1.0);
        assert_eq!(value(sample(&text, LAG_SECONDS, &[&pipe]).unwrap()), 1.5);
        assert_eq!(value(sample(&text, PIPE_STALLED, &[&pipe]).unwrap()), 1.0);
        for s in PipeState::ALL {
            let label = format!("state=\"{}\"", s.as_str());
            let line = sample(&text, PIPE_STATE, &[&pipe, &label]).unwrap();
            let expected = if s == PipeState::Running { 1.0 } else { 0.0 };
            assert_eq!(value(line), expected, "{line}");
        }
        assert_eq!(
            value(sample(&text, ERRORS, &[&pipe, "kind=\"transient\""]).unwrap()),
            1.0
        );
        assert_eq!(
            value(sample(&text, RETRIES, &[&pipe, "what=\"flush\""]).unwrap()),
            2.0
        );
        assert_eq!(
            value(sample(&text, CLAMPED_VALUES, &[&pipe, "table=\"shop.people\""]).unwrap()),
            3.0
        );
        for name in [
            SNAPSHOT_ROWS,
            CDC_CHANGES,
            FLUSH_SECONDS,
            LAG_SECONDS,
            PIPE_STALLED,
            PIPE_STATE,
            ERRORS,
            RETRIES,
            CLAMPED_VALUES,
            BUILD_INFO,
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
        }
        assert!(text.contains(&format!("# TYPE {FLUSH_SECONDS} histogram")));
        assert!(text.contains(&format!("# TYPE {SNAPSHOT_ROWS} counter")));
    }
}
