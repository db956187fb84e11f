//! What a running pipe shows and what it can be told, shared between the pipe task and the
//! HTTP API.
//!
//! Contract: the pipe task is the only writer of its [`PipeStatus`]; readers get a snapshot
//! copy. A [`Command`] is answered once the pipe has acted on it or refused it (with the
//! reason), never silently dropped: a pipe that has ended answers with an error.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

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
}

/// The externally visible state of one pipe.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct PipeStatus {
    pub name: String,
    /// Lifecycle state name (`PipeState::as_str`), empty before the first transition.
    pub state: String,
    /// RFC 3339 time the state was entered.
    pub since: String,
    pub mode: String,
    /// Last checkpointed binlog position.
    pub position: Option<String>,
    /// Seconds between the newest applied event's timestamp and its flush.
    pub lag_seconds: Option<u64>,
    /// Row changes applied by CDC since the daemon started.
    pub events_applied: u64,
    pub tables: BTreeMap<String, TableStatus>,
    pub last_error: Option<String>,
}

/// An operator's request to a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Pause,
    Resume,
    Resync,
    AddTable {
        table: String,
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
}

impl PipeHandle {
    pub fn new(name: &str, mode: &str) -> (PipeHandle, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel(16);
        let status = PipeStatus {
            name: name.to_owned(),
            mode: mode.to_owned(),
            ..PipeStatus::default()
        };
        (
            PipeHandle {
                status: Arc::new(RwLock::new(status)),
                commands: tx,
            },
            rx,
        )
    }

    /// A copy of the current status.
    pub fn status(&self) -> PipeStatus {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
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

/// Every pipe of the daemon, by name.
pub(crate) type Registry = Arc<BTreeMap<String, PipeHandle>>;
