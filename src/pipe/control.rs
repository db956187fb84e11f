//! What a running pipe shows and what it can be told, shared between the pipe task and the
//! HTTP API.
//!
//! Contract: the pipe task is the only writer of its [`PipeStatus`]; readers get a snapshot
//! copy. A [`Command`] is answered once the pipe has acted on it or refused it (with the
//! reason), never silently dropped: a pipe that has ended answers with an error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::health::{Health, Limits, Moment};
use crate::state::Transition;

/// Lifecycle transitions a status carries: enough for an operator to see how the pipe got
/// where it is; the state store keeps them all.
pub(crate) const HISTORY_SHOWN: usize = 20;

/// Snapshot progress of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct TableStatus {
    pub rows_done: u64,
    pub rows_estimated: u64,
    pub done: bool,
    /// Why the table is no longer replicated (a DDL the pipe cannot follow); a resync
    /// repairs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Added by an operator although `tables.include`/`exclude` do not select it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outside_selection: bool,
    /// Reloading into its copy (`tables resync`, a rebuild), swapped in once loaded; the
    /// pipe stays Running meanwhile.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reloading: bool,
    /// Replicated append-only: the table has no primary key (`tables.keyless = "append"`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub append_only: bool,
}

/// The externally visible state of one pipe.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct PipeStatus {
    pub name: String,
    /// This instance's part in the pipe: `owner` (it replicates the pipe), or `standby`
    /// (another instance holds the pipe's lease: the state shown is the one the owner last
    /// recorded); empty before the lease is first looked at.
    pub role: String,
    /// The instance holding the pipe's lease, when one does.
    pub owner: Option<String>,
    /// Lifecycle state name (`PipeState::as_str`), empty before the first transition.
    pub state: String,
    /// RFC 3339 time the state was entered.
    pub since: String,
    pub mode: String,
    /// Last checkpointed binlog position.
    pub position: Option<String>,
    /// Seconds behind the source (see [`Health::lag`]); `None` while not replicating.
    pub lag_seconds: Option<f64>,
    /// Why the pipe is stalled (see [`Health::stall`]): it keeps retrying meanwhile.
    pub stalled: Option<String>,
    /// Row changes applied by CDC since the daemon started.
    pub events_applied: u64,
    pub tables: BTreeMap<String, TableStatus>,
    pub last_error: Option<String>,
    /// The newest [`HISTORY_SHOWN`] lifecycle transitions with their reasons, newest first:
    /// the state store's when the pipe started, then each one as it is entered.
    pub history: Vec<Transition>,
}

impl PipeStatus {
    /// The pipe entered `to` from `from` (empty before its first state) for `reason`: its
    /// state, since when, and the head of its history.
    pub fn entered(&mut self, from: &str, to: &str, reason: &str) {
        self.state = to.to_owned();
        self.since = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let moved = Transition {
            seq: self.history.first().map_or(1, |t| t.seq + 1),
            at: self.since.clone(),
            from_state: from.to_owned(),
            to_state: to.to_owned(),
            reason: reason.to_owned(),
        };
        self.history.insert(0, moved);
        self.history.truncate(HISTORY_SHOWN);
    }
}

/// Lag to the millisecond: finer is noise in a status.
fn rounded(lag: Option<f64>) -> Option<f64> {
    lag.map(|l| (l * 1000.0).round() / 1000.0)
}

/// An operator's request to a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Pause,
    Resume,
    Resync,
    AddTable {
        table: String,
        /// Replicate it although the pipe's include/exclude do not select it.
        widen: bool,
    },
    RemoveTable {
        table: String,
        drop_target: bool,
    },
    /// Reload one table into a copy and swap it in; CDC continues from the checkpoint.
    ResyncTable {
        table: String,
    },
}

/// A command with the channel its answer goes back on.
pub(crate) struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// One pipe's shared status and command inbox.
#[derive(Clone)]
pub(crate) struct PipeHandle {
    pub status: Arc<RwLock<PipeStatus>>,
    pub commands: mpsc::Sender<Request>,
    /// Lag and stall, published into `status` by [`PipeHandle::health`].
    health: Arc<Mutex<Health>>,
}

impl PipeHandle {
    pub fn new(name: &str, mode: &str) -> (PipeHandle, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel(16);
        let status = PipeStatus {
            name: name.to_owned(),
            mode: mode.to_owned(),
            ..PipeStatus::default()
        };
        let limits = Limits {
            attempts: crate::config::SyncConfig::default().stall_attempts,
            timeout: crate::config::SyncConfig::default().stall_timeout,
        };
        (
            PipeHandle {
                status: Arc::new(RwLock::new(status)),
                commands: tx,
                health: Arc::new(Mutex::new(Health::new(limits, Moment::now()))),
            },
            rx,
        )
    }

    /// A copy of the current status, with its lag and stall as of now: they are derived from
    /// the pipe's health when read, never stored.
    pub fn status(&self) -> PipeStatus {
        let mut status = self
            .status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        let health = self.lock_health();
        let now = Moment::now();
        status.lag_seconds = rounded(health.lag(now));
        status.stalled = health.stall(now);
        status
    }

    /// Changes the status in place (pipe task only); the isolated-tables gauge follows it.
    pub fn update(&self, f: impl FnOnce(&mut PipeStatus)) {
        let mut status = match self.status.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut status);
        let isolated = status.tables.values().filter(|t| t.error.is_some()).count();
        crate::metrics::tables_isolated(&status.name, isolated);
    }

    /// Changes the pipe's health (pipe task only), then publishes its lag and stall to the
    /// metrics and its newest error to the status. Also called every second to let the lag
    /// gauge grow.
    pub fn health(&self, f: impl FnOnce(&mut Health)) {
        let (lag, stalled, error) = {
            let mut health = self.lock_health();
            f(&mut health);
            let now = Moment::now();
            (health.lag(now), health.stall(now), health.take_new_error())
        };
        self.update(|s| {
            crate::metrics::lag_seconds(&s.name, lag.unwrap_or(0.0));
            crate::metrics::stalled(&s.name, stalled.is_some());
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `command` and waits for the pipe's answer.
    pub async fn send(&self, command: Command) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Request { command, reply })
            .await
            .map_err(|_| "the pipe has stopped; see its state and last error".to_string())?;
        answer
            .await
            .map_err(|_| "the pipe stopped before answering".to_string())?
    }
}

impl crate::snapshot::Watcher for PipeHandle {
    fn started(&self, table: &str, estimate: u64) {
        self.update(|s| {
            let t = s.tables.entry(table.to_owned()).or_default();
            t.rows_estimated = estimate;
            t.done = false;
        });
    }

    fn loaded(&self, table: &str, rows: u64, done: bool) {
        self.update(|s| {
            let t = s.tables.entry(table.to_owned()).or_default();
            t.rows_done = rows;
            t.done = done;
        });
    }
}

/// Every pipe of the daemon, by name.
pub(crate) type Registry = Arc<BTreeMap<String, PipeHandle>>;
