//! Pipe state kept outside the daemon (in the target ClickHouse, database `_tributary` by
//! default), so the daemon holds no local state and can be rescheduled anywhere.
//!
//! [`StateStore`] is what the pipe asks of it; [`ClickHouseStore`] keeps it in ClickHouse, and
//! an in-memory store (tests) keeps it in a map with the same answers. Invariants of every
//! store: a checkpoint is written only after the data it covers is durable in the target (see
//! `pipe::cdc`), and checkpoint and progress rows are append-only with an increasing sequence,
//! so the newest row is the truth and a crash between two writes leaves the older one in
//! force; table overrides, isolation, reloads and definitions are read back as last written.

mod clickhouse;
pub(crate) mod lease;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(test)]
mod tests;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lifecycle::PipeState;
use crate::schema::TableDef;
use crate::source::Position;
pub(crate) use clickhouse::ClickHouseStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub position: Position,
    /// The version the next CDC row change gets.
    pub next_version: u64,
}

impl Checkpoint {
    /// Where CDC starts anew at `position` (after a snapshot, a resync, or at a `cdc_only`
    /// start), following `previous` if there is one: a higher sequence, and the version
    /// counter carried on, so that no later row change gets a version already written.
    pub fn start(previous: Option<&Checkpoint>, position: Position) -> Checkpoint {
        Checkpoint {
            seq: previous.map_or(1, |c| c.seq + 1),
            position,
            next_version: previous.map_or(1, |c| c.next_version),
        }
    }

    /// The checkpoint after this one: the binlog applied up to `position`, the next row change
    /// getting `next_version`.
    pub fn advance(&self, position: Position, next_version: u64) -> Checkpoint {
        Checkpoint {
            seq: self.seq + 1,
            position,
            next_version,
        }
    }
}

/// A table's reload: waiting until CDC has passed a change, or loading into its copy (its
/// progress under the state key `namespace`) while CDC writes its changes there too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reload {
    Waiting,
    Loading { namespace: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    pub seq: u64,
    /// Where a table without a primary key was read whole (see `snapshot::keyless`): CDC
    /// applies only its changes after this position.
    pub read_at: Option<Position>,
    pub rows: u64,
    pub done: bool,
}

/// One snapshot partition of a table: its range (JSON of `snapshot::plan::Range`) and whether
/// its rows are committed in the target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct PartitionRow {
    pub idx: u32,
    pub spec: String,
    pub rows: u64,
    pub done: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct Transition {
    pub seq: u64,
    pub at: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
}

/// Where a pipe's state is kept: checkpoints, lifecycle history, snapshot progress, and the
/// state of its tables. Each pipe key (a pipe, or one of its loads: [`StateStore::namespaced`])
/// has its own rows.
pub(crate) trait StateStore: Clone + Send + Sync + 'static {
    /// Creates the state tables that are missing (and migrates older ones).
    fn init(&self) -> impl Future<Output = Result<()>> + Send;

    /// The last `limit` lifecycle transitions, newest first.
    fn history(&self, limit: u64) -> impl Future<Output = Result<Vec<Transition>>> + Send;

    /// The state the pipe is in, per the last persisted transition.
    fn current_state(&self) -> impl Future<Output = Result<Option<Transition>>> + Send {
        async move { Ok(self.history(1).await?.into_iter().next()) }
    }

    /// Appends a lifecycle transition, with the next sequence.
    fn record_transition(
        &self,
        from: Option<PipeState>,
        to: PipeState,
        reason: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The newest checkpoint, if any.
    fn checkpoint(&self) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;

    /// Appends `cp`: the newest checkpoint from now on (its `seq` is higher).
    fn save_checkpoint(&self, cp: &Checkpoint) -> impl Future<Output = Result<()>> + Send;

    /// The binlog position the snapshot of this pipe key started at, once taken.
    fn snapshot_start(&self) -> impl Future<Output = Result<Option<Position>>> + Send;

    /// Records where the snapshot starts (once per pipe key).
    fn save_snapshot_start(&self, p: &Position) -> impl Future<Output = Result<()>> + Send;

    /// The newest snapshot progress of `table` (nothing loaded: the default).
    fn progress(&self, table: &str) -> impl Future<Output = Result<Progress>> + Send;

    /// Appends snapshot progress of `table`; the highest `seq` is the truth.
    fn save_progress(&self, table: &str, p: &Progress) -> impl Future<Output = Result<()>> + Send;

    /// The stored partition plan of `table`, newest state per partition, in index order.
    fn partitions(&self, table: &str) -> impl Future<Output = Result<Vec<PartitionRow>>> + Send;

    /// Forgets a table's snapshot (progress and partition plan), so that adding it again loads
    /// it again.
    fn forget_snapshot(&self, table: &str) -> impl Future<Output = Result<()>> + Send;

    /// Stores a newly planned table's partitions in one insert.
    fn save_plan(
        &self,
        table: &str,
        partitions: &[PartitionRow],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stores a partition's state: `seq` 1 when planned, 2 once its rows are committed.
    fn save_partition(
        &self,
        table: &str,
        p: &PartitionRow,
    ) -> impl Future<Output = Result<()>> + Send;

    /// All snapshot progress rows of the pipe, newest per table.
    fn all_progress(&self) -> impl Future<Output = Result<Vec<(String, Progress)>>> + Send;

    /// Tables added (`true`) or removed (`false`) through the API, on top of the config's
    /// include/exclude patterns.
    fn overrides(&self) -> impl Future<Output = Result<Vec<(String, bool)>>> + Send;

    /// Records `table` as added (`true`) or removed (`false`) by an operator.
    fn save_override(&self, table: &str, included: bool)
        -> impl Future<Output = Result<()>> + Send;

    /// Tables taken out of replication by a change the pipe cannot follow, with the reason.
    fn isolated(&self) -> impl Future<Output = Result<Vec<(String, String)>>> + Send;

    /// Isolates `table` with `reason`, or clears its isolation with an empty reason.
    fn isolate(&self, table: &str, reason: &str) -> impl Future<Output = Result<()>> + Send;

    /// Tables being reloaded or waiting for a reload, with the state key of each load.
    fn reloads(&self) -> impl Future<Output = Result<Vec<(String, Reload)>>> + Send;

    /// Records where `table`'s reload stands (`None`: no reload).
    fn save_reload(
        &self,
        table: &str,
        reload: Option<&Reload>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A store for the same target under another pipe key (a resync's own progress).
    fn namespaced(&self, suffix: &str) -> Self;

    /// The definition of `table` in force at checkpoint `seq`: definitions are versioned by
    /// the checkpoint from which they apply, so a restart from an older checkpoint decodes its
    /// binlog with the definition the rows were written under.
    fn stored_definition(
        &self,
        table: &str,
        seq: u64,
    ) -> impl Future<Output = Result<Option<TableDef>>> + Send;

    /// Stores `def` as the definition in force from checkpoint `seq` on.
    fn save_definition(&self, def: &TableDef, seq: u64) -> impl Future<Output = Result<()>> + Send;
}
