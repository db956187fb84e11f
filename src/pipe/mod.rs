//! One pipe: its lifecycle from Provisioning to Running (or Completed / Failed).
//!
//! Each state is entered when the previous one's work is done and persisted with a reason
//! (see [`lifecycle`]); the runner only wires source, target, snapshot and CDC together.
//! Restart safety: the snapshot resumes per table from its recorded progress, and CDC from the
//! last checkpoint; nothing is kept locally.

pub(crate) mod batch;
pub(crate) mod cdc;
pub(crate) mod lifecycle;

use std::future::Future;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::clickhouse::ddl::{create_database_sql, create_table_sql};
use crate::clickhouse::Target;
use crate::config::{Mode, PipeConfig};
use crate::error::{backoff, Error, Result};
use crate::schema::TablePlan;
use crate::snapshot;
use crate::source::{introspect, preflight, Source};
use crate::state::{Checkpoint, StateStore};
use lifecycle::PipeState;

/// How a pipe task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stopped by SIGTERM/SIGINT after flushing and checkpointing.
    Stopped,
    Completed,
    Failed,
}

struct Runner {
    cfg: PipeConfig,
    store: StateStore,
    target: Target,
    state: Option<PipeState>,
    shutdown: watch::Receiver<bool>,
}

/// Runs a pipe until shutdown, completion or a definite error (persisted as Failed).
pub(crate) async fn run(cfg: PipeConfig, shutdown: watch::Receiver<bool>) -> Outcome {
    let name = cfg.name.clone();
    let target = match Target::new(&cfg.target) {
        Ok(t) => t,
        Err(e) => {
            error!(pipe = %name, error = %e, "pipe failed");
            return Outcome::Failed;
        }
    };
    let store = StateStore::new(target.clone(), &cfg.target.state_database, &cfg.name);
    let mut runner = Runner {
        cfg,
        store,
        target,
        state: None,
        shutdown,
    };
    match runner.drive().await {
        Ok(outcome) => outcome,
        Err(e) => {
            error!(pipe = %name, error = %e, "pipe failed");
            if let Err(store_err) = runner.enter(PipeState::Failed, &e.to_string()).await {
                error!(pipe = %name, error = %store_err, "could not record the failure in the state store");
            }
            Outcome::Failed
        }
    }
}

impl Runner {
    async fn enter(&mut self, to: PipeState, reason: &str) -> Result<()> {
        if let Some(from) = self.state {
            if !from.can_move_to(to) {
                return Err(Error::State(format!(
                    "internal error: transition {} → {} is not allowed",
                    from.as_str(),
                    to.as_str()
                )));
            }
        }
        self.store.record_transition(self.state, to, reason).await?;
        info!(pipe = %self.cfg.name, from = self.state.map(PipeState::as_str).unwrap_or("-"), to = to.as_str(), reason, "state");
        self.state = Some(to);
        Ok(())
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Retries a startup step while its error is transient (a server still starting).
    async fn patiently<T, F, Fut>(&self, what: &str, mut op: F) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        let mut shutdown = self.shutdown.clone();
        loop {
            match op().await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.is_transient() => {
                    let wait = backoff(attempt);
                    attempt += 1;
                    warn!(pipe = %self.cfg.name, error = %e, retry_in = ?wait, "{what} failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return Ok(None),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn drive(&mut self) -> Result<Outcome> {
        let store = self.store.clone();
        if self
            .patiently("connecting to ClickHouse", || store.init())
            .await?
            .is_none()
        {
            return Ok(Outcome::Stopped);
        }
        self.state = store
            .current_state()
            .await?
            .and_then(|t| PipeState::parse(&t.to_state));
        self.enter(PipeState::Provisioning, "daemon started")
            .await?;

        let cfg = self.cfg.clone();
        let Some(source) = self
            .patiently("connecting to the source", || Source::connect(&cfg.source))
            .await?
        else {
            return Ok(Outcome::Stopped);
        };
        let mut conn = source.conn().await?;
        let vars = source.variables(&mut conn, preflight::variables()).await?;
        preflight::check_settings(&vars)?;
        self.enter(
            PipeState::Setup,
            &format!(
                "connected to {} ({:?}); binlog settings OK",
                source.url, source.flavor
            ),
        )
        .await?;

        let plans = introspect::plan_tables(&source, &mut conn, &self.cfg.tables).await?;
        drop(conn);
        let checkpoint = self.store.checkpoint().await?;
        self.setup_target(&plans, checkpoint.is_some()).await?;
        self.enter_next_state(plans, checkpoint, source).await
    }

    /// Creates the target tables and stores the definitions they were made from.
    async fn setup_target(&mut self, plans: &[TablePlan], has_checkpoint: bool) -> Result<()> {
        let db = &self.cfg.target.database;
        self.target.execute(&create_database_sql(db), &[]).await?;
        for plan in plans {
            let table = plan.def.qualified();
            if let Some(stored) = self.store.stored_definition(&table).await? {
                if stored != plan.def && has_checkpoint {
                    return Err(Error::SchemaChanged {
                        table,
                        detail: "its definition differs from the one the pipe replicated until now"
                            .into(),
                        position: "the last checkpoint".into(),
                    });
                }
            }
            self.target
                .execute(&create_table_sql(db, plan), &[])
                .await?;
            self.store.save_definition(&plan.def).await?;
        }
        Ok(())
    }

    async fn enter_next_state(
        &mut self,
        plans: Vec<TablePlan>,
        checkpoint: Option<Checkpoint>,
        source: Source,
    ) -> Result<Outcome> {
        let mode = self.cfg.mode;
        let mut checkpoint = checkpoint;
        if mode != Mode::CdcOnly {
            let mut pending = Vec::new();
            for plan in &plans {
                if !self.store.progress(&plan.def.qualified()).await?.done {
                    pending.push(plan);
                }
            }
            if !pending.is_empty() {
                let names: Vec<String> = pending.iter().map(|p| p.def.qualified()).collect();
                self.enter(
                    PipeState::Snapshot,
                    &format!("loading {}", names.join(", ")),
                )
                .await?;
                if !self.snapshot(&source, &pending, &mut checkpoint).await? {
                    return Ok(Outcome::Stopped);
                }
            }
        }
        if mode == Mode::SnapshotOnly {
            if self.state != Some(PipeState::Snapshot) {
                // Already complete at an earlier run: Setup → Completed.
                self.enter(PipeState::Completed, "snapshot was already complete")
                    .await?;
            } else {
                self.enter(PipeState::Completed, "every table loaded")
                    .await?;
            }
            return Ok(Outcome::Completed);
        }
        let checkpoint = match checkpoint {
            Some(cp) => cp,
            None => {
                // cdc_only: replicate from the source's current position.
                let mut conn = source.conn().await?;
                let position = source.current_position(&mut conn).await?;
                let cp = Checkpoint {
                    seq: 1,
                    position,
                    next_version: 1,
                };
                self.store.save_checkpoint(&cp).await?;
                cp
            }
        };
        self.enter(
            PipeState::Running,
            &format!("replicating from {}", checkpoint.position),
        )
        .await?;
        let server_id = self
            .cfg
            .source
            .server_id
            .unwrap_or_else(|| rand::random_range(RANDOM_SERVER_IDS));
        let cdc = cdc::Cdc {
            cfg: &self.cfg,
            source: &source,
            target: &self.target,
            store: &self.store,
            server_id,
        };
        cdc.run(plans, checkpoint, self.shutdown.clone()).await?;
        Ok(Outcome::Stopped)
    }

    /// Loads `pending` tables; returns false if stopped by shutdown first. Creates the first
    /// checkpoint (at the snapshot's position) when the pipe has none. Transient errors are
    /// retried: the load resumes from its recorded partitions.
    async fn snapshot(
        &mut self,
        source: &Source,
        pending: &[&TablePlan],
        checkpoint: &mut Option<Checkpoint>,
    ) -> Result<bool> {
        let start = match self.store.snapshot_start().await? {
            Some(p) => p,
            None => {
                let mut conn = source.conn().await?;
                let position = snapshot::begin(source, &mut conn).await?;
                self.store.save_snapshot_start(&position).await?;
                position
            }
        };
        info!(pipe = %self.cfg.name, position = %start, "snapshot position");
        let loader = snapshot::Loader {
            source,
            target: &self.target,
            target_db: &self.cfg.target.database,
            store: &self.store,
            rows_per_partition: self.cfg.snapshot.rows_per_partition,
            parallelism: self.cfg.snapshot.parallelism,
            tables_in_parallel: self.cfg.snapshot.tables_in_parallel,
            options: &self.cfg.tables.options,
        };
        let shutdown = self.shutdown.clone();
        let loaded = self
            .patiently("loading the snapshot", || {
                snapshot::load_tables(&loader, pending, &shutdown)
            })
            .await?;
        if loaded != Some(true) || self.stopping() {
            return Ok(false);
        }
        if checkpoint.is_none() {
            let cp = Checkpoint {
                seq: 1,
                position: start,
                next_version: 1,
            };
            self.store.save_checkpoint(&cp).await?;
            *checkpoint = Some(cp);
        }
        Ok(true)
    }
}

/// Server ids picked when none is configured: high, to stay clear of ids operators assign.
const RANDOM_SERVER_IDS: std::ops::Range<u32> = 1_000_000_000..2_000_000_000;
