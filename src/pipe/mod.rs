//! One pipe: its lifecycle from Provisioning to Running (or Completed / Failed), and the
//! operator commands that move it between Running, Paused, Resync and Modifying.
//!
//! Each state is entered when the previous one's work is done and persisted with a reason
//! (see [`crate::lifecycle`], [`recorder`]); the runner only wires source, target, snapshot and CDC
//! together. Restart safety: the snapshot resumes per partition from its recorded progress, a
//! resync from its own recorded progress, and CDC from the last checkpoint; nothing is local.
//! A Failed pipe stays up and answers: `resume` provisions it again (after a fix), `resync`
//! reloads it.

pub(crate) mod cdc;
pub(crate) mod control;
pub(crate) mod health;
pub(crate) mod recorder;
mod reload;
mod resync;
mod retry;
mod schema_change;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::clickhouse::sql::{create_database_sql, create_table_sql, ident};
use crate::clickhouse::Target;
use crate::config::{Mode, PipeConfig};
use crate::ddl::planner::truncate_sql;
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::metrics;
use crate::schema::TablePlan;
use crate::snapshot;
use crate::source::{introspect, preflight, Source};
use crate::state::{Checkpoint, ClickHouseStore, Reload, StateStore};
use control::{Command, PipeHandle, Request};
use recorder::Recorder;
use schema_change::isolate_table;

/// How a pipe task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stopped by SIGTERM/SIGINT after flushing and checkpointing.
    Stopped,
    Completed,
    /// Stopped by SIGTERM/SIGINT while Failed.
    Failed,
}

/// What a drive ended with, when it did not fail.
enum Drive {
    Outcome(Outcome),
    /// Provision again (a resync was requested).
    Redrive,
}

struct Runner {
    cfg: PipeConfig,
    store: ClickHouseStore,
    target: Target,
    recorder: Recorder,
    shutdown: watch::Receiver<bool>,
    handle: PipeHandle,
    /// Operator commands; whoever is driving the pipe (CDC, the Failed wait, a long step that
    /// refuses commands meanwhile) holds the lock.
    commands: Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>,
    /// Set when a resync was requested, until it completes.
    resync_requested: bool,
}

/// Runs a pipe until shutdown or completion. A definite error moves it to Failed, where it
/// waits for `resume` or `resync`.
pub(crate) async fn run(
    cfg: PipeConfig,
    handle: PipeHandle,
    commands: mpsc::Receiver<Request>,
    shutdown: watch::Receiver<bool>,
) -> Outcome {
    let name = cfg.name.clone();
    let target = match Target::new(&cfg.target) {
        Ok(t) => t,
        Err(e) => {
            error!(pipe = %name, error = %e, "pipe failed");
            return Outcome::Failed;
        }
    };
    let store = ClickHouseStore::new(target.clone(), &cfg.target.state_database, &cfg.name);
    handle.health(|h| {
        h.limits = health::Limits {
            attempts: cfg.sync.stall_attempts,
            timeout: cfg.sync.stall_timeout,
        }
    });
    // The lag grows and a stall shows while the pipe task waits (a backoff, a slow write).
    let _publisher = Publisher::spawn(handle.clone());
    let mut runner = Runner {
        recorder: Recorder {
            store: store.clone(),
            handle: handle.clone(),
            pipe: name.clone(),
            state: None,
        },
        cfg,
        store,
        target,
        shutdown,
        handle,
        commands: Arc::new(tokio::sync::Mutex::new(commands)),
        resync_requested: false,
    };
    loop {
        let error = match runner.drive().await {
            Ok(Drive::Outcome(outcome)) => return outcome,
            Ok(Drive::Redrive) => continue,
            Err(e) => e,
        };
        error!(pipe = %name, error = %error, "pipe failed");
        metrics::error(&name, error.kind());
        runner.handle.health(|h| h.stop());
        if let Err(store_err) = runner
            .recorder
            .enter(PipeState::Failed, &error.to_string())
            .await
        {
            error!(pipe = %name, error = %store_err, "could not record the failure in the state store");
        }
        if !runner.wait_in_failed().await {
            return Outcome::Failed;
        }
    }
}

/// Why `tables add` of `table` (in database `db`) is refused, if it is: a system table, or a
/// table the selection does not include unless the request widens it.
fn add_refusal(table: &str, db: &str, outside: bool, widen: bool) -> Option<String> {
    if introspect::SYSTEM_SCHEMAS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(db))
    {
        return Some(format!(
            "{table} is a system table of the source: never replicated"
        ));
    }
    (outside && !widen).then(|| {
        format!(
            "{table} is outside the pipe's selection (tables.include/tables.exclude); add it to the config, or ask with widen_selection (CLI: --widen-selection) to replicate it anyway"
        )
    })
}

/// Publishes the pipe's health every second until dropped.
struct Publisher(tokio::task::JoinHandle<()>);

impl Publisher {
    fn spawn(handle: PipeHandle) -> Publisher {
        Publisher(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                handle.health(|_| {});
            }
        }))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Runner {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// In Failed: answers commands until `resume`/`resync` (true: drive again) or shutdown.
    async fn wait_in_failed(&mut self) -> bool {
        let commands = Arc::clone(&self.commands);
        let mut commands = commands.lock().await;
        loop {
            let request = tokio::select! {
                request = commands.recv() => request,
                _ = self.shutdown.changed() => return false,
            };
            let Some(request) = request else { return false };
            match request.command {
                Command::Resume => {
                    let _ = request.reply.send(Ok("provisioning the pipe again".into()));
                    return true;
                }
                Command::Resync => {
                    self.resync_requested = true;
                    let _ = request.reply.send(Ok("resync started".into()));
                    return true;
                }
                _ => {
                    let _ = request.reply.send(Err(
                        "the pipe is Failed: fix the cause and `resume` it, or `resync` it".into(),
                    ));
                }
            }
        }
    }

    /// Retries a step while its error is transient (a server still starting), answering
    /// operator commands meanwhile with a refusal that says what the pipe is doing.
    async fn patiently<T, F, Fut>(&self, what: &str, op: F) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut commands = self.commands.lock().await;
        let state = self.recorder.state.map_or("starting", PipeState::as_str);
        let retry = retry::Retry::step(&self.cfg.name, &self.handle, what);
        let work = retry.run(op, |d| retry::sleep_unless_shutdown(d, &self.shutdown));
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                Some(request) = commands.recv() => {
                    let _ = request.reply.send(Err(format!(
                        "the pipe is {state} ({what}); commands are taken once it is Running"
                    )));
                }
            }
        }
    }

    async fn drive(&mut self) -> Result<Drive> {
        let store = self.store.clone();
        if self
            .patiently("connecting to ClickHouse", || store.init())
            .await?
            .is_none()
        {
            return Ok(Drive::Outcome(Outcome::Stopped));
        }
        let history = store.history(50).await?;
        self.recorder.state = history.first().and_then(|t| PipeState::parse(&t.to_state));
        // A resync interrupted by a crash or a failure is finished before anything else.
        let resuming_resync = history
            .iter()
            .filter_map(|t| PipeState::parse(&t.to_state))
            .find(|s| {
                !matches!(
                    s,
                    PipeState::Provisioning | PipeState::Setup | PipeState::Failed
                )
            })
            == Some(PipeState::Resync);
        self.recorder
            .enter(PipeState::Provisioning, "daemon started")
            .await?;

        let cfg = self.cfg.clone();
        let Some(source) = self
            .patiently("connecting to the source", || Source::connect(&cfg.source))
            .await?
        else {
            return Ok(Drive::Outcome(Outcome::Stopped));
        };
        let mut conn = source.conn().await?;
        let names =
            preflight::variables().chain(["binlog_expire_logs_seconds", "expire_logs_days"]);
        let vars = source.variables(&mut conn, names).await?;
        preflight::check_settings(&vars)?;
        // Grants can come through roles SHOW GRANTS does not expand: a warning, not a stop.
        let grants: Vec<String> = source.query_as(&mut conn, "SHOW GRANTS").await?;
        if let (preflight::Level::Fail, text) = preflight::check_grants(&grants) {
            warn!(pipe = %self.cfg.name, "source privileges: {text}");
        }
        self.recorder
            .enter(
                PipeState::Setup,
                &format!(
                    "connected to {} ({:?}); binlog settings OK",
                    source.url, source.flavor
                ),
            )
            .await?;

        let overrides = self.store.overrides().await?;
        let isolated: Vec<String> = self
            .store
            .isolated()
            .await?
            .into_iter()
            .filter(|(_, reason)| !reason.is_empty())
            .map(|(table, _)| table)
            .collect();
        let planned =
            introspect::plan_tables(&source, &mut conn, &self.cfg.tables, &overrides, &isolated)
                .await?;
        for (table, reason) in &planned.rejected {
            isolate_table(&self.store, &self.handle, &self.cfg.name, table, reason).await?;
        }
        self.show_widened(&overrides);
        let plans = planned.plans;
        let checkpoint = self.store.checkpoint().await?;
        let fresh = self.resync_requested || resuming_resync;
        if (checkpoint.is_none() && self.cfg.mode != Mode::CdcOnly) || fresh {
            // CDC starts where the snapshot starts: its binlogs must outlive the load.
            let names: Vec<(String, String)> = plans
                .iter()
                .map(|p| (p.def.db.clone(), p.def.name.clone()))
                .collect();
            let estimate = source.estimate_snapshot_secs(&mut conn, &names).await?;
            let retention = preflight::retention_seconds(&vars);
            if let (preflight::Level::Fail, text) = preflight::check_retention(retention, estimate)
            {
                return Err(Error::InvalidSourceSetting {
                    setting: "binlog retention".into(),
                    actual: retention.map_or("unlimited".into(), |r| format!("{r} s")),
                    expected: format!("at least {} s", preflight::required_retention(estimate)),
                    hint: text,
                });
            }
        }
        drop(conn);
        let plans = self
            .setup_target(plans, checkpoint.as_ref().map(|c| c.seq), fresh)
            .await?;
        let checkpoint = if self.resync_requested || resuming_resync {
            match self.resync_tables(&source, &plans).await? {
                Some(cp) => Some(cp),
                None => return Ok(Drive::Outcome(Outcome::Stopped)),
            }
        } else {
            checkpoint
        };
        self.load_and_replicate(plans, checkpoint, source).await
    }

    /// Creates the target tables and returns the plans to replicate. With a checkpoint, a
    /// table keeps the definition stored with it (the binlog after the checkpoint was written
    /// under it; its DDL brings it up to date), and isolated tables stay out until a resync.
    /// `fresh` (a resync, an added table) takes the source's current definitions.
    async fn setup_target(
        &mut self,
        plans: Vec<TablePlan>,
        checkpoint_seq: Option<u64>,
        fresh: bool,
    ) -> Result<Vec<TablePlan>> {
        let has_checkpoint = checkpoint_seq.is_some();
        let seq = checkpoint_seq.unwrap_or(0);
        let db = self.cfg.target.database.clone();
        self.target.execute(&create_database_sql(&db), &[]).await?;
        let isolated = self.store.isolated().await?;
        let mut effective = Vec::with_capacity(plans.len());
        for plan in plans {
            let table = plan.def.qualified();
            if let Some((_, reason)) = isolated.iter().find(|(t, _)| *t == table) {
                if !fresh {
                    let reason = reason.clone();
                    self.handle.update(|s| {
                        s.tables.entry(table.clone()).or_default().error = Some(reason);
                    });
                    continue;
                }
                self.store.isolate(&table, "").await?;
            }
            let stored = match (
                has_checkpoint && !fresh,
                self.store.stored_definition(&table, seq).await?,
            ) {
                (true, Some(stored)) if stored != plan.def => Some(stored),
                _ => None,
            };
            let plan = match stored {
                Some(stored) => {
                    TablePlan::selected(stored, &self.cfg.tables).map_err(|reason| {
                        Error::Unplannable {
                            table: table.clone(),
                            reason,
                        }
                    })?
                }
                None => {
                    self.store.save_definition(&plan.def, seq).await?;
                    plan
                }
            };
            self.target
                .execute(&create_table_sql(&db, &plan), &[])
                .await?;
            let rows = self.store.progress(&table).await?;
            self.handle.update(|s| {
                let t = s.tables.entry(table.clone()).or_default();
                t.rows_done = rows.rows;
                t.done = rows.done;
                t.error = None;
            });
            effective.push(plan);
        }
        Ok(effective)
    }

    /// Snapshot of the tables not loaded yet (not in `cdc_only`), then CDC.
    async fn load_and_replicate(
        &mut self,
        mut plans: Vec<TablePlan>,
        mut checkpoint: Option<Checkpoint>,
        source: Source,
    ) -> Result<Drive> {
        if self.cfg.mode != Mode::CdcOnly {
            // A table reloading into its copy is loaded alongside CDC, not here.
            let reloads = self.store.reloads().await?;
            let mut pending = Vec::new();
            for plan in &plans {
                let table = plan.def.qualified();
                if !reloads.iter().any(|(t, _)| *t == table)
                    && !self.store.progress(&table).await?.done
                {
                    pending.push(plan);
                }
            }
            if !pending.is_empty() {
                let names: Vec<String> = pending.iter().map(|p| p.def.qualified()).collect();
                self.recorder
                    .enter(
                        PipeState::Snapshot,
                        &format!("loading {}", names.join(", ")),
                    )
                    .await?;
                let store = self.store.clone();
                let Some(changed) = self
                    .snapshot(&store, &source, &pending, &mut checkpoint)
                    .await?
                else {
                    return Ok(Drive::Outcome(Outcome::Stopped));
                };
                if self.cfg.mode == Mode::SnapshotOnly {
                    // No binlog to catch up with: the load is simply asked for again.
                    unchanged(&changed)?;
                }
                for c in &changed {
                    self.defer_reload(&mut plans, c).await?;
                }
            }
        }
        if self.cfg.mode == Mode::SnapshotOnly {
            let reason = if self.recorder.state == Some(PipeState::Snapshot) {
                "every table loaded"
            } else {
                "the snapshot was already complete"
            };
            self.recorder.enter(PipeState::Completed, reason).await?;
            return Ok(Drive::Outcome(Outcome::Completed));
        }
        let mut checkpoint = match checkpoint {
            Some(cp) => cp,
            None => {
                // cdc_only: replicate from the source's current position.
                let mut conn = source.conn().await?;
                let position = source.current_position(&mut conn).await?;
                let cp = Checkpoint::start(None, position);
                self.store.save_checkpoint(&cp).await?;
                cp
            }
        };
        let mut conn = source.conn().await?;
        source
            .check_position(&mut conn, &checkpoint.position)
            .await?;
        drop(conn);
        let position = checkpoint.position.to_string();
        self.handle.update(|s| s.position = Some(position));
        self.recorder
            .enter(
                PipeState::Running,
                &format!("replicating from {}", checkpoint.position),
            )
            .await?;
        let server_id = self
            .cfg
            .source
            .server_id
            .unwrap_or_else(|| rand::random_range(RANDOM_SERVER_IDS));
        loop {
            // Tables waiting for a reload: CDC hands back once it has passed where the source
            // is now, hence past the change that interrupted their load.
            let reloads = self.store.reloads().await?;
            let reload_after = if reloads.iter().any(|(_, r)| *r == Reload::Waiting) {
                let mut conn = source.conn().await?;
                Some(source.current_position(&mut conn).await?)
            } else {
                None
            };
            let loads = Self::loads(&mut plans, reloads);
            let cdc = cdc::Cdc {
                cfg: &self.cfg,
                source: &source,
                target: &self.target,
                store: &self.store,
                handle: &self.handle,
                server_id,
                reload_after,
                loads,
            };
            let exit = cdc
                .run(
                    &mut plans,
                    &mut checkpoint,
                    &mut self.recorder,
                    &mut *self.commands.clone().lock_owned().await,
                    self.shutdown.clone(),
                )
                .await?;
            let request = match exit {
                cdc::Exit::Shutdown => return Ok(Drive::Outcome(Outcome::Stopped)),
                cdc::Exit::Command(request) => request,
                cdc::Exit::Reload => {
                    self.start_waiting_reloads(&source, &mut plans, &checkpoint)
                        .await?;
                    self.back_to_running(&checkpoint).await?;
                    continue;
                }
                cdc::Exit::Loaded { load, result } => {
                    self.loaded(&mut plans, &load, result).await?;
                    self.back_to_running(&checkpoint).await?;
                    continue;
                }
            };
            match request.command.clone() {
                Command::Resync => {
                    self.resync_requested = true;
                    self.recorder
                        .enter(
                            PipeState::Resync,
                            "requested by operator: reloading every table into *_resync tables",
                        )
                        .await?;
                    let _ = request.reply.send(Ok(
                        "resync started: the tables are reloaded, then swapped in".into(),
                    ));
                    // Provision again: the resync takes every selected table with its current
                    // definition, isolated ones included.
                    return Ok(Drive::Redrive);
                }
                Command::AddTable { table, widen } => {
                    let answer = self
                        .add_table(&source, &mut plans, &table, widen, &checkpoint)
                        .await;
                    let _ = request.reply.send(answer.map_err(|e| e.to_string()));
                }
                Command::RemoveTable { table, drop_target } => {
                    let answer = self.remove_table(&mut plans, &table, drop_target).await;
                    let _ = request.reply.send(answer.map_err(|e| e.to_string()));
                }
                Command::ResyncTable { table } => {
                    let answer = self
                        .start_reload(&source, &mut plans, &table, &checkpoint)
                        .await;
                    let _ = request.reply.send(answer.map_err(|e| e.to_string()));
                }
                Command::Pause | Command::Resume => {
                    let _ = request
                        .reply
                        .send(Err("internal error: misrouted command".into()));
                }
            }
            self.back_to_running(&checkpoint).await?;
        }
    }

    /// Running again after a step taken between CDC sessions (Modifying).
    async fn back_to_running(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        if self.recorder.state != Some(PipeState::Running) {
            self.recorder
                .enter(
                    PipeState::Running,
                    &format!("replicating from {}", checkpoint.position),
                )
                .await?;
        }
        Ok(())
    }

    /// Modifying: creates, snapshots and starts replicating `table`. CDC continues from the
    /// pipe's checkpoint, which precedes this snapshot's position: no gap.
    async fn add_table(
        &mut self,
        source: &Source,
        plans: &mut Vec<TablePlan>,
        table: &str,
        widen: bool,
        checkpoint: &Checkpoint,
    ) -> Result<String> {
        if plans.iter().any(|p| p.def.qualified() == table) {
            return Err(Error::AlreadyReplicated {
                table: table.to_owned(),
            });
        }
        let (db, name) = table.split_once('.').unwrap_or((table, ""));
        let outside = !self.cfg.tables.matches(db, name);
        if let Some(refusal) = add_refusal(table, db, outside, widen) {
            return Err(Error::Selection(refusal));
        }
        // Read before anything is written: a table that is not there, or one that would be
        // written into another table's target, leaves the pipe as it was.
        let plan = self.current_plan(source, table).await?;
        if let Some(collision) = plan.collision(plans) {
            return Err(Error::Selection(collision));
        }
        self.recorder
            .enter(PipeState::Modifying, &format!("adding {table}"))
            .await?;
        // A table added again may hold rows of its earlier replication, some with versions
        // higher than the reload's: start it empty.
        let truncate = truncate_sql(&self.cfg.target.database, &plan);
        self.target.execute(&truncate, &[]).await?;
        let plan = self
            .setup_target(vec![plan], Some(checkpoint.seq), true)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Bug {
                detail: format!("{table} could not be set up"),
            })?;
        let store = self.store.clone();
        let mut cp = Some(checkpoint.clone());
        if self.cfg.mode != Mode::CdcOnly {
            match self.snapshot(&store, source, &[&plan], &mut cp).await? {
                Some(changed) => unchanged(&changed)?,
                None => {
                    return Err(Error::StoppedWhileLoading {
                        table: table.to_owned(),
                    })
                }
            }
        }
        self.store.save_override(table, true).await?;
        plans.push(plan);
        if outside {
            self.handle.update(|s| {
                s.tables
                    .entry(table.to_owned())
                    .or_default()
                    .outside_selection = true;
            });
        }
        Ok(format!(
            "{table} added and loaded{}",
            if outside {
                " (outside tables.include/exclude, as asked)"
            } else {
                ""
            }
        ))
    }

    /// Marks in the status the tables added outside the config's selection.
    fn show_widened(&self, overrides: &[(String, bool)]) {
        self.handle.update(|s| {
            for (table, included) in overrides {
                let (db, name) = table.split_once('.').unwrap_or((table, ""));
                if *included && !self.cfg.tables.matches(db, name) {
                    s.tables.entry(table.clone()).or_default().outside_selection = true;
                }
            }
        });
    }

    /// The plan of `db.table` from its current definition in the source.
    async fn current_plan(&self, source: &Source, table: &str) -> Result<TablePlan> {
        let Some((db, name)) = table.split_once('.') else {
            return Err(Error::NotATableName {
                name: table.to_owned(),
            });
        };
        let mut conn = source.conn().await?;
        let def = introspect::table_def(source, &mut conn, db, name).await?;
        TablePlan::selected(def, &self.cfg.tables).map_err(|reason| Error::Unplannable {
            table: table.to_owned(),
            reason,
        })
    }

    /// Modifying: stops replicating `table`; its target table is kept unless `drop_target`.
    async fn remove_table(
        &mut self,
        plans: &mut Vec<TablePlan>,
        table: &str,
        drop_target: bool,
    ) -> Result<String> {
        let Some(i) = plans.iter().position(|p| p.def.qualified() == table) else {
            return Err(Error::NotReplicated {
                table: table.to_owned(),
            });
        };
        self.recorder
            .enter(PipeState::Modifying, &format!("removing {table}"))
            .await?;
        let plan = plans.remove(i);
        self.store.save_override(table, false).await?;
        self.store.forget_snapshot(table).await?;
        self.store.save_reload(table, None).await?;
        if drop_target {
            let sql = format!(
                "DROP TABLE IF EXISTS {}.{}",
                ident(&self.cfg.target.database),
                ident(&plan.target)
            );
            self.target.execute(&sql, &[]).await?;
        }
        self.handle.update(|s| {
            s.tables.remove(table);
        });
        Ok(format!(
            "{table} removed{}",
            if drop_target {
                "; its target table was dropped"
            } else {
                "; its target table is kept"
            }
        ))
    }

    /// Loads `pending` tables with the progress kept in `store`; returns `None` if stopped by
    /// shutdown first, else the tables that changed in the source under their load. Creates
    /// the first checkpoint (at the snapshot's position) when `checkpoint` is None. Transient errors are retried: the load resumes from its recorded
    /// partitions.
    async fn snapshot(
        &mut self,
        store: &ClickHouseStore,
        source: &Source,
        pending: &[&TablePlan],
        checkpoint: &mut Option<Checkpoint>,
    ) -> Result<Option<Vec<snapshot::Changed>>> {
        let start = match store.snapshot_start().await? {
            Some(p) => p,
            None => {
                let mut conn = source.conn().await?;
                let position = snapshot::begin(source, &mut conn).await?;
                store.save_snapshot_start(&position).await?;
                position
            }
        };
        info!(pipe = %self.cfg.name, position = %start, "snapshot position");
        let loader = snapshot::Loader {
            source,
            target: &self.target,
            target_db: &self.cfg.target.database,
            store,
            rows_per_partition: self.cfg.snapshot.rows_per_partition,
            parallelism: self.cfg.snapshot.parallelism,
            tables_in_parallel: self.cfg.snapshot.tables_in_parallel,
            options: &self.cfg.tables.options,
            handle: &self.handle,
            pipe: &self.cfg.name,
        };
        let shutdown = self.shutdown.clone();
        let loaded = self
            .patiently("loading the snapshot", || {
                snapshot::load_tables(&loader, pending, &shutdown)
            })
            .await?;
        let Some(Some(changed)) = loaded else {
            return Ok(None);
        };
        if self.stopping() {
            return Ok(None);
        }
        if checkpoint.is_none() {
            let cp = Checkpoint::start(None, start);
            store.save_checkpoint(&cp).await?;
            *checkpoint = Some(cp);
        }
        Ok(Some(changed))
    }
}

/// For loads that cannot defer a changed table (a resync, an added table): the first change
/// as an error that says to ask again.
fn unchanged(changed: &[snapshot::Changed]) -> Result<()> {
    match changed.first() {
        None => Ok(()),
        Some(c) => Err(Error::ChangedWhileLoaded {
            table: c.table.clone(),
            detail: c.error.clone(),
        }),
    }
}

/// Server ids picked when none is configured: high, to stay clear of ids operators assign.
const RANDOM_SERVER_IDS: std::ops::Range<u32> = 1_000_000_000..2_000_000_000;
