//! The Running state: tail the binlog from the checkpoint and apply it in batches.
//!
//! Commit protocol: a batch closes at `batch_rows` row changes or `flush_interval`, always
//! between transactions; its rows are inserted table by table (each insert synchronous), and
//! only then the checkpoint — end position of its last transaction and the next version — is
//! stored. A crash anywhere replays from the previous checkpoint; since versions are counted
//! from the checkpoint in binlog order, the replay writes the very same rows and versions and
//! ReplacingMergeTree collapses the duplicates.
//!
//! A transient error (connection lost, source restart, ClickHouse unavailable) drops whatever
//! is not checkpointed and resumes from the last checkpoint after a backoff: the same replay.
//!
//! Operator commands arrive between events: pause flushes and checkpoints the committed rows
//! (Pausing), closes the dump (Paused) and waits for resume, which reconnects from that
//! checkpoint; resync and table changes are handed back to the runner after the same flush.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::reload::Load;
use super::resync::SUFFIX;
use super::retry::{self, Retry};
use crate::batch::{Batch, Op};
use crate::binlog::events::Decoder;
use crate::binlog::feed::Feed;
use crate::binlog::stream::BinlogStream;
use crate::clickhouse::sql::insert_sql;
use crate::clickhouse::Target;
use crate::config::PipeConfig;
use crate::error::Result;
use crate::lifecycle::PipeState;
use crate::pipe::control::{Command, PipeHandle, Request};
use crate::pipe::health::Moment;
use crate::pipe::recorder::Recorder;
use crate::schema::TablePlan;
use crate::snapshot::{self, Changed};
use crate::source::{ServerFlavor, Source};
use crate::state::{Checkpoint, ClickHouseStore, StateStore};
use futures_util::stream::{FuturesUnordered, StreamExt};

pub(crate) struct Cdc<'a> {
    pub cfg: &'a PipeConfig,
    pub source: &'a Source,
    pub target: &'a Target,
    pub store: &'a ClickHouseStore,
    pub handle: &'a PipeHandle,
    pub server_id: u32,
    /// Hand back [`Exit::Reload`] once the checkpoint reaches this position.
    pub reload_after: Option<crate::source::Position>,
    /// Tables loading into their copies meanwhile; each is handed back ([`Exit::Loaded`])
    /// when its load ends.
    pub loads: Vec<Load>,
}

/// Why replication stopped without an error.
pub(crate) enum Exit {
    Shutdown,
    /// A command for the runner (resync, table changes), received after the committed rows
    /// were flushed and checkpointed.
    Command(Request),
    /// The checkpoint reached `reload_after`: tables that changed under their load can be
    /// reloaded.
    Reload,
    /// A table's load into its copy ended (`None`: stopped by shutdown), after the rows read
    /// so far were flushed and checkpointed.
    Loaded {
        load: Box<Load>,
        result: Result<Option<Vec<Changed>>>,
    },
}

/// How one replication session ended.
enum Session {
    Exit(Exit),
    Paused,
}

impl Cdc<'_> {
    pub async fn run(
        &self,
        plans: &mut Vec<TablePlan>,
        checkpoint: &mut Checkpoint,
        recorder: &mut Recorder,
        commands: &mut mpsc::Receiver<Request>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Exit> {
        let retry = Retry {
            message: Some("replication interrupted; resuming from the last checkpoint"),
            ..Retry::step(&self.cfg.name, self.handle, "replication")
        };
        let mut attempts = retry.attempts();
        loop {
            let error = match self
                .stream_once(plans, checkpoint, recorder, commands, &mut shutdown)
                .await
            {
                Ok(Session::Exit(exit)) => return Ok(exit),
                Ok(Session::Paused) => {
                    self.handle.health(|h| h.stop());
                    match self
                        .paused(checkpoint, recorder, commands, &mut shutdown)
                        .await?
                    {
                        Some(exit) => return Ok(exit),
                        None => attempts = retry.attempts(),
                    }
                    continue;
                }
                Err(e) => e,
            };
            let delay = attempts.failed(error)?;
            if let Some(behind) = self.source_ahead_of(&checkpoint.position).await {
                self.handle.health(|h| h.behind(behind, Moment::now()));
            }
            if !retry::sleep_unless_shutdown(delay, &shutdown).await {
                return Ok(Exit::Shutdown);
            }
        }
    }

    /// Waits in Paused for resume (`None`: replicate again), shutdown or a runner command.
    async fn paused(
        &self,
        checkpoint: &Checkpoint,
        recorder: &mut Recorder,
        commands: &mut mpsc::Receiver<Request>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Exit>> {
        let mut verify = verification_timer();
        loop {
            let request = tokio::select! {
                request = commands.recv() => request,
                _ = shutdown.changed() => return Ok(Some(Exit::Shutdown)),
                _ = verify.tick() => {
                    // Nothing reads the binlog while paused: this is when it gets purged.
                    self.verify_position(&checkpoint.position).await?;
                    continue;
                }
            };
            let Some(request) = request else {
                return Ok(Some(Exit::Shutdown));
            };
            match request.command {
                Command::Resume => {
                    recorder
                        .enter(PipeState::Running, "resumed by operator")
                        .await?;
                    let _ = request.reply.send(Ok("resumed".into()));
                    return Ok(None);
                }
                Command::Resync => return Ok(Some(Exit::Command(request))),
                Command::Pause => {
                    let _ = request.reply.send(Err("the pipe is already paused".into()));
                }
                Command::AddTable { .. }
                | Command::RemoveTable { .. }
                | Command::ResyncTable { .. } => {
                    let _ = request.reply.send(Err(
                        "the pipe is paused: resume it before changing its tables".into(),
                    ));
                }
            }
        }
    }

    fn decoder(&self, plans: &[TablePlan], position: &crate::source::Position) -> Decoder {
        Decoder::new(plans.to_vec(), position).with_selection(self.cfg.tables.clone())
    }

    /// One replication session, from `checkpoint` until an error, shutdown or a command.
    async fn stream_once(
        &self,
        plans: &mut Vec<TablePlan>,
        checkpoint: &mut Checkpoint,
        recorder: &mut Recorder,
        commands: &mut mpsc::Receiver<Request>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Session> {
        if self.source.flavor == ServerFlavor::Mariadb && checkpoint.position.gtid.is_empty() {
            // A position without its GTID state (where a snapshot or a cdc_only start began):
            // look it up once — the server reads the binlog file up to the offset — so that the
            // decoder tracks every domain and the checkpoints resume by GTID from then on.
            let mut conn = self.source.conn().await?;
            let (file, pos) = (&checkpoint.position.file, checkpoint.position.pos);
            if let Some(gtid) = self.source.gtid_at(&mut conn, file, pos).await? {
                checkpoint.position.gtid = gtid;
            }
        }
        self.handle.health(|h| h.start(Moment::now()));
        let stream = BinlogStream::open(self.source, self.server_id, &checkpoint.position).await?;
        info!(pipe = %self.cfg.name, position = %checkpoint.position, by = %stream.start, "replicating");
        // Read in a task of its own: the stream keeps flowing while a batch is inserted.
        let mut feed = Feed::spawn(stream, &checkpoint.position);
        let mut decoder = self.decoder(plans, &checkpoint.position);
        let mut batch = Batch::new(plans.len(), checkpoint.next_version);
        let mut inserts = self.insert_targets(plans).await?;
        let inserts_ref = &mut inserts;
        let flush_interval = self.cfg.sync.flush_interval;
        let mut deadline = Instant::now() + flush_interval;
        let mut verify = verification_timer();
        let mut health = tokio::time::interval(HEALTH_EVERY);
        let mut reload_after = self.reload_after.clone();
        // Tables the decoder isolated for their rows, until the plans can shrink.
        let mut isolated: Vec<String> = Vec::new();
        let mut loading: FuturesUnordered<_> = self
            .loads
            .iter()
            .map(|load| self.load(load, shutdown.clone()))
            .collect();
        loop {
            let due = Instant::now() >= deadline;
            if !batch.in_transaction()
                && (batch.rows() >= self.cfg.sync.batch_rows
                    || batch.bytes() >= MAX_BATCH_BYTES
                    || (due && batch.position.is_some()))
            {
                self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder)
                    .await?;
                deadline = Instant::now() + flush_interval;
            } else if due && batch.position.is_none() && !batch.in_transaction() {
                deadline = Instant::now() + flush_interval;
            }
            if let Some(after) = &reload_after {
                if !batch.in_transaction() && checkpoint.position.reached(after) {
                    self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder)
                        .await?;
                    return Ok(Session::Exit(Exit::Reload));
                }
            }
            let sleep = tokio::time::sleep_until(
                deadline
                    .max(Instant::now() + Duration::from_millis(1))
                    .into(),
            );
            tokio::select! {
                queued = feed.next() => {
                    decoder.apply(&queued?.event, &mut batch)?;
                    for (table, reason) in decoder.take_isolations() {
                        let table = plans[table].def.qualified();
                        self.isolate(&table, &reason).await?;
                        isolated.push(table);
                    }
                    if batch.in_transaction() && batch.bytes() >= MAX_BATCH_BYTES {
                        self.spill(&mut batch, plans, inserts_ref).await?;
                    }
                    if let Some(change) = decoder.take_schema_change() {
                        // The rows before the DDL, under the old definitions; then the DDL;
                        // then a checkpoint after it, so rows after it are decoded with the new.
                        self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder).await?;
                        if self.apply_schema_change(&change, plans, checkpoint.seq + 1).await? {
                            // Rebuilt once CDC has passed where the source is now: past this
                            // DDL and any later one the rebuild's definition includes.
                            let mut conn = self.source.conn().await?;
                            reload_after = Some(self.source.current_position(&mut conn).await?);
                        }
                        // The batch is empty and the decoder is rebuilt: tables isolated for
                        // their rows leave the plans here.
                        plans.retain(|p| !isolated.contains(&p.def.qualified()));
                        isolated.clear();
                        let next = checkpoint
                            .advance(change.position.clone(), checkpoint.next_version);
                        self.store.save_checkpoint(&next).await?;
                        *checkpoint = next;
                        *inserts_ref = self.insert_targets(plans).await?;
                        decoder = self.decoder(plans, &checkpoint.position);
                        batch = Batch::new(plans.len(), checkpoint.next_version);
                    }
                }
                _ = sleep => {}
                _ = health.tick() => {
                    let behind = batch.in_transaction() || batch.position.is_some() || feed.pending();
                    self.handle.health(|h| h.behind(behind, Moment::now()));
                }
                Some((load, result)) = loading.next(), if !loading.is_empty() => {
                    // The copy gets every change read so far before it is swapped in.
                    self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder).await?;
                    let load = Box::new(load.clone());
                    return Ok(Session::Exit(Exit::Loaded { load, result }));
                }
                _ = verify.tick(), if !batch.in_transaction() => {
                    // Checkpoint what was read first: a file purged after the reader left it
                    // is no loss once the checkpoint has left it too.
                    self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder).await?;
                    self.verify_position(&checkpoint.position).await?;
                }
                _ = shutdown.changed() => {
                    self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder).await?;
                    return Ok(Session::Exit(Exit::Shutdown));
                }
                Some(request) = commands.recv() => match request.command {
                    Command::Pause => {
                        recorder.enter(PipeState::Pausing, "requested by operator").await?;
                        self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder).await?;
                        let reason = format!("flushed and checkpointed at {}", checkpoint.position);
                        recorder.enter(PipeState::Paused, &reason).await?;
                        let _ = request.reply.send(Ok(format!("paused; {reason}")));
                        return Ok(Session::Paused);
                    }
                    Command::Resume => {
                        let _ = request.reply.send(Err("the pipe is not paused".into()));
                    }
                    _ => {
                        self.flush(&mut batch, plans, inserts_ref, checkpoint, &decoder).await?;
                        return Ok(Session::Exit(Exit::Command(request)));
                    }
                },
            }
        }
    }

    /// The INSERT statements of each plan's rows: its target; and for a table loading into its
    /// copy, its live target too while that still has the copy's columns (a `tables resync` of
    /// a healthy table), so that readers see its changes before the swap.
    async fn insert_targets(&self, plans: &[TablePlan]) -> Result<Vec<Vec<String>>> {
        let db = &self.cfg.target.database;
        let mut out = Vec::with_capacity(plans.len());
        for plan in plans {
            let mut sqls = vec![insert_sql(db, plan)];
            let loading = self.loads.iter().any(|l| l.plan.def == plan.def);
            if let Some(live) = plan.target.strip_suffix(SUFFIX).filter(|_| loading) {
                let live = TablePlan {
                    target: live.to_owned(),
                    ..plan.clone()
                };
                if self.target_has_columns(&live).await? {
                    sqls.push(insert_sql(db, &live));
                }
            }
            out.push(sqls);
        }
        Ok(out)
    }

    /// Loads one table's copy, retrying transient errors from its recorded partitions.
    async fn load<'l>(
        &self,
        load: &'l Load,
        shutdown: watch::Receiver<bool>,
    ) -> (&'l Load, Result<Option<Vec<Changed>>>) {
        let store = self.store.namespaced(&load.namespace);
        let loader = snapshot::Loader {
            source: self.source,
            target: self.target,
            target_db: &self.cfg.target.database,
            store: &store,
            rows_per_partition: self.cfg.snapshot.rows_per_partition,
            parallelism: self.cfg.snapshot.parallelism,
            tables_in_parallel: 1,
            options: &self.cfg.tables.options,
            handle: self.handle,
            pipe: &self.cfg.name,
        };
        let step = format!("reload of {}", load.plan.def.qualified());
        let retry = Retry {
            what: "reload",
            step: &step,
            message: Some("reload interrupted; resuming it"),
            max_retries: None,
            pipe: &self.cfg.name,
            handle: self.handle,
        };
        let plans = [&load.plan];
        let loaded = retry
            .run(
                || snapshot::load_tables(&loader, &plans, &shutdown),
                retry::sleep,
            )
            .await;
        // Never stopped by the wait (which always goes on): `None` is not an answer here.
        (load, loaded.map(Option::flatten))
    }

    /// Whether the source has written past `position` (`None`: it could not be asked in
    /// [`SOURCE_PROBE_TIMEOUT`]). Asked while the stream is down, so that the lag keeps growing
    /// when there is something to apply, and does not when the source is idle.
    async fn source_ahead_of(&self, position: &crate::source::Position) -> Option<bool> {
        let probe = async {
            let mut conn = self.source.conn().await?;
            self.source.current_position(&mut conn).await
        };
        match tokio::time::timeout(SOURCE_PROBE_TIMEOUT, probe).await {
            Ok(Ok(current)) => Some(!position.reached(&current)),
            _ => None,
        }
    }

    /// Fails with "resync required" when the source can no longer serve `position`; a check
    /// that cannot reach the source is only logged (the stream notices a dead source itself).
    async fn verify_position(&self, position: &crate::source::Position) -> Result<()> {
        let checked = async {
            let mut conn = self.source.conn().await?;
            self.source.check_position(&mut conn, position).await
        };
        match checked.await {
            Err(e) if e.is_transient() => {
                warn!(pipe = %self.cfg.name, error = %e, "could not verify the binlog position");
                Ok(())
            }
            other => other,
        }
    }

    /// Writes the committed rows of `batch`, then the checkpoint. Transient ClickHouse errors
    /// are retried here with the rows kept, so a busy target slows the pipe down but loses
    /// nothing.
    async fn flush(
        &self,
        batch: &mut Batch,
        plans: &[TablePlan],
        inserts: &[Vec<String>],
        checkpoint: &mut Checkpoint,
        decoder: &Decoder,
    ) -> Result<()> {
        // An open transaction's versions (at shutdown) are not consumed: its replay gets them
        // again.
        let next_version = batch.committed_version();
        let (tables, position) = batch.take_committed();
        let Some(position) = position else {
            return Ok(());
        };
        // Committed at the source, not yet in the target: the lag counts while this is written.
        self.handle.health(|h| h.behind(true, Moment::now()));
        let started = Instant::now();
        let changes = self.write(tables, plans, inserts).await?;
        let next = checkpoint.advance(position, next_version);
        self.retry(|| self.store.save_checkpoint(&next)).await?;
        *checkpoint = next;
        crate::metrics::flush_seconds(&self.cfg.name, started.elapsed().as_secs_f64());
        // What is left is the open transaction, if any: read, not applied.
        let behind = batch.in_transaction();
        self.handle
            .health(|h| h.applied(decoder.last_event_time, behind, Moment::now()));
        self.handle.update(|s| {
            s.position = Some(checkpoint.position.to_string());
            s.events_applied += changes as u64;
        });
        info!(
            pipe = %self.cfg.name,
            changes,
            position = %checkpoint.position,
            flush_ms = started.elapsed().as_millis() as u64,
            "batch applied"
        );
        Ok(())
    }

    /// Writes the rows of a transaction too large to hold before it ends, without a
    /// checkpoint: a crash before its commit replays it from the previous checkpoint, with the
    /// same versions, so the rows written now are written again identically.
    async fn spill(
        &self,
        batch: &mut Batch,
        plans: &[TablePlan],
        inserts: &[Vec<String>],
    ) -> Result<()> {
        let bytes = batch.bytes();
        let changes = self.write(batch.spill(), plans, inserts).await?;
        self.handle.update(|s| s.events_applied += changes as u64);
        crate::metrics::spilled(&self.cfg.name);
        info!(
            pipe = %self.cfg.name,
            changes,
            bytes,
            "part of a transaction larger than the batch byte cap written; checkpoint after its commit"
        );
        Ok(())
    }

    /// Inserts rows table by table, counting them; returns the row changes written.
    async fn write(
        &self,
        tables: Vec<crate::batch::Taken>,
        plans: &[TablePlan],
        inserts: &[Vec<String>],
    ) -> Result<usize> {
        let mut changes = 0;
        for taken in tables {
            let data = Bytes::from(taken.data);
            for sql in &inserts[taken.table] {
                self.retry(|| self.target.insert(sql, data.clone())).await?;
            }
            changes += taken.rows;
            let table = plans[taken.table].def.qualified();
            for op in Op::ALL {
                crate::metrics::cdc_changes(
                    &self.cfg.name,
                    &table,
                    op.as_str(),
                    taken.ops[op as usize],
                );
            }
        }
        Ok(changes)
    }

    /// Retries a ClickHouse write: a busy target slows the pipe down, up to
    /// [`MAX_WRITE_RETRIES`], then the session restarts from the checkpoint.
    async fn retry<F, Fut>(&self, op: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let retry = Retry {
            max_retries: Some(MAX_WRITE_RETRIES),
            ..Retry::step(&self.cfg.name, self.handle, WRITE_STEP)
        };
        retry.run(op, retry::sleep).await.map(|_| ())
    }
}

/// A batch closes at this many bytes of RowBinary even below `batch_rows` (wide rows), at the
/// next transaction boundary, so memory stays bounded; a transaction larger than this is
/// written in parts (`spill`), its checkpoint still after its commit.
const MAX_BATCH_BYTES: usize = 64 << 20;

/// How often the lag and the stall signal are brought up to date while streaming.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// How long the source may take to tell its position while the stream is down.
const SOURCE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The step ClickHouse writes are counted under (retries, stall).
const WRITE_STEP: &str = "ClickHouse write";

/// How often the checkpoint is verified to be still on the source (running or paused).
const VERIFY_POSITION_EVERY: Duration = Duration::from_secs(15);

fn verification_timer() -> tokio::time::Interval {
    let start = tokio::time::Instant::now() + VERIFY_POSITION_EVERY;
    let mut timer = tokio::time::interval_at(start, VERIFY_POSITION_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

/// Retries of one write before the session restarts from the checkpoint (about 10 minutes of
/// backoff: a ClickHouse restart or a long overload).
const MAX_WRITE_RETRIES: u32 = 25;
