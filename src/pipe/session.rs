//! One replication session: the binlog decoded from a checkpoint into batches, each written
//! and checkpointed ([`super::commit`]), with the steps an event or a command asks for.
//!
//! Invariants: the session's view of the tables (their order is the decoder's and the batch's
//! index) is taken from the ledger when the session starts and after each DDL, once the batch
//! is flushed; a table isolated meanwhile is no longer decoded (the decoder skips it) and is
//! out of the ledger's replicated tables at once. A batch is flushed only between
//! transactions, except for the parts of one too large to hold ([`super::commit::spill`]).

use std::time::Instant;

use bytes::Bytes;
use tracing::info;

use super::commit::{self, Writer};
use super::context::{aimed_at, Ctx};
use super::health::Moment;
use super::ledger::Ledger;
use super::retry::Retry;
use super::schema_change;
use super::tables::Phase;
use crate::batch::{Batch, Op, Taken};
use crate::binlog::events::{Decoder, SchemaChange};
use crate::binlog::feed::Queued;
use crate::clickhouse::sql::insert_sql;
use crate::error::Result;
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::snapshot::Changed;
use crate::source::Position;
use crate::state::{Checkpoint, StateStore};

/// A batch closes at this many bytes of RowBinary even below `batch_rows` (wide rows), at the
/// next transaction boundary, so memory stays bounded; a transaction larger than this is
/// written in parts (`spill`), its checkpoint still after its commit.
pub(super) const MAX_BATCH_BYTES: usize = 64 << 20;

/// The step ClickHouse writes are counted under (retries, stall).
const WRITE_STEP: &str = "ClickHouse write";

/// Retries of one write before the session restarts from the checkpoint (about 10 minutes of
/// backoff: a ClickHouse restart or a long overload).
const MAX_WRITE_RETRIES: u32 = 25;

pub(super) struct Session<'s, S> {
    pub ctx: &'s Ctx<S>,
    pub ledger: &'s mut Ledger<S>,
    pub checkpoint: &'s mut Checkpoint,
    /// The tables decoded, by the decoder's and the batch's index.
    names: Vec<String>,
    /// Each table's rows go into these INSERTs.
    inserts: Vec<Vec<String>>,
    pub decoder: Decoder,
    pub batch: Batch,
    /// When the batch is flushed even if not full.
    pub deadline: Instant,
    /// Hand back once the checkpoint reaches this position (see `cdc::Exit::Reload`); kept
    /// by the caller, so that a session that fails after a DDL set it leaves it to the next.
    pub reload_after: &'s mut Option<Position>,
}

impl<'s, S: StateStore> Session<'s, S> {
    pub async fn new(
        ctx: &'s Ctx<S>,
        ledger: &'s mut Ledger<S>,
        checkpoint: &'s mut Checkpoint,
        reload_after: &'s mut Option<Position>,
    ) -> Result<Session<'s, S>> {
        let position = checkpoint.position.clone();
        let mut session = Session {
            ctx,
            ledger,
            checkpoint,
            names: Vec::new(),
            inserts: Vec::new(),
            decoder: Decoder::new(Vec::new(), &position),
            batch: Batch::new(0, 0),
            deadline: Instant::now() + ctx.cfg.sync.flush_interval,
            reload_after,
        };
        session.rebuild().await?;
        Ok(session)
    }

    /// Takes the tables from the ledger: the decoder, the batch and the inserts start over
    /// at the checkpoint (the batch is empty: flushed, or nothing read yet).
    async fn rebuild(&mut self) -> Result<()> {
        let tables = self.ledger.tables.replicated();
        self.names = tables.iter().map(|(name, _)| (*name).to_owned()).collect();
        let plans: Vec<TablePlan> = tables.iter().map(|(_, plan)| (*plan).clone()).collect();
        self.inserts = self.insert_targets().await?;
        let mut decoder = Decoder::new(plans.clone(), &self.checkpoint.position)
            .with_selection(self.ctx.cfg.tables.clone());
        for (i, plan) in plans.iter().enumerate().filter(|(_, p)| p.append) {
            let progress = self.ctx.store.progress(&plan.def.qualified()).await?;
            if let Some(read_at) = progress.read_at {
                decoder.skip_until(i, read_at);
            }
        }
        self.decoder = decoder;
        self.batch = Batch::new(self.names.len(), self.checkpoint.next_version);
        Ok(())
    }

    /// The INSERT statements of each table's rows: its target; for a table reloading, its
    /// copy, and its live target too while that still has the copy's columns (a
    /// `tables resync` of a healthy table), so that readers see its changes before the swap.
    async fn insert_targets(&self) -> Result<Vec<Vec<String>>> {
        let db = self.ctx.db();
        let mut out = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let entry = self.ledger.tables.get(name);
            let Some((plan, phase)) = entry.and_then(|e| Some((e.plan.as_ref()?, &e.phase))) else {
                // Not replicated after all: nothing of it is written.
                out.push(Vec::new());
                continue;
            };
            let sqls = match phase {
                Phase::Reloading { copy, .. } => {
                    let mut sqls = vec![insert_sql(db, &aimed_at(plan, copy))];
                    if self.ctx.target_has_columns(plan).await? {
                        sqls.push(insert_sql(db, plan));
                    }
                    sqls
                }
                _ => vec![insert_sql(db, plan)],
            };
            out.push(sqls);
        }
        Ok(out)
    }

    /// The initial load of `plans`, beside this session, is done: they replicate as loaded
    /// (see [`Ledger::settle_loaded`]); one that changed under its load waits for a reload
    /// until CDC has passed where the source is now. Running once nothing loads any more.
    /// The session goes on: no reconnection, whose position a short retention may have purged.
    pub async fn initial_loaded(&mut self, plans: &[TablePlan], changed: &[Changed]) -> Result<()> {
        self.flush().await?;
        let names: Vec<String> = plans.iter().map(|p| p.def.qualified()).collect();
        if self.ledger.settle_loaded(&names, changed).await? {
            self.reload_once_passed().await?;
            self.rebuild().await?;
        }
        if self.ledger.tables.loading().is_empty() {
            let reason = format!(
                "every table loaded; replicating from {}",
                self.checkpoint.position
            );
            self.ledger.ensure(PipeState::Running, &reason).await?;
        }
        Ok(())
    }

    /// Whether the batch is due: full, or its interval is over with a transaction in it.
    pub async fn flush_if_due(&mut self) -> Result<()> {
        let due = Instant::now() >= self.deadline;
        if self.batch.in_transaction() {
            return Ok(());
        }
        let full = self.batch.rows() >= self.ctx.cfg.sync.batch_rows
            || self.batch.bytes() >= MAX_BATCH_BYTES;
        if full || (due && self.batch.position.is_some()) {
            self.flush().await?;
            self.deadline = Instant::now() + self.ctx.cfg.sync.flush_interval;
        } else if due {
            self.deadline = Instant::now() + self.ctx.cfg.sync.flush_interval;
        }
        Ok(())
    }

    /// Whether the checkpoint reached where the reloads waiting for it may start.
    pub fn reload_due(&self) -> bool {
        self.reload_after.as_ref().is_some_and(|after| {
            !self.batch.in_transaction() && self.checkpoint.position.reached(after)
        })
    }

    /// One event read from the binlog: decoded into the batch, and what it asks for done
    /// (tables isolated for their rows, a part of a large transaction written, a DDL applied).
    pub async fn event(&mut self, queued: Queued) -> Result<()> {
        self.decoder.apply(&queued.event, &mut self.batch)?;
        for (table, clamps) in self.decoder.take_clamps() {
            crate::metrics::clamped_values(self.ctx.name(), &table, &clamps);
        }
        for (table, reason) in self.decoder.take_isolations() {
            let Some(name) = self.names.get(table).cloned() else {
                continue;
            };
            // A table reloading was planned with the source's definition when its reload
            // started, which may be newer than the rows CDC meets now (DDL still to come in
            // the binlog): reloaded again once CDC has passed where the source is now.
            let reloading = matches!(
                self.ledger.tables.phase(&name),
                Some(Phase::Reloading { .. })
            );
            if reloading {
                let reason =
                    format!("{reason}; reloaded again once replication has passed the change");
                self.ledger.isolate(&name, reason, true).await?;
                self.reload_once_passed().await?;
            } else {
                self.ledger.isolate(&name, reason, false).await?;
            }
        }
        if self.batch.in_transaction() && self.batch.bytes() >= MAX_BATCH_BYTES {
            self.spill().await?;
        }
        if let Some(change) = self.decoder.take_schema_change() {
            self.schema_change(change).await?;
        }
        Ok(())
    }

    /// Tables waiting for a reload start it once CDC has passed where the source is now: past
    /// the change that made them wait, and any later one their new definition includes.
    async fn reload_once_passed(&mut self) -> Result<()> {
        *self.reload_after = Some(self.ctx.current_position().await?);
        Ok(())
    }

    /// The rows before the DDL, under the old definitions; then the DDL; then a checkpoint
    /// after it, so that the rows after it are decoded with the new ones.
    async fn schema_change(&mut self, change: SchemaChange) -> Result<()> {
        self.flush().await?;
        let applies_from = self.checkpoint.seq + 1;
        let (ctx, names) = (self.ctx, &self.names);
        if schema_change::apply(ctx, self.ledger, &change, names, applies_from).await? {
            self.reload_once_passed().await?;
        }
        let next = self
            .checkpoint
            .advance(change.position.clone(), self.checkpoint.next_version);
        self.ctx.store.save_checkpoint(&next).await?;
        *self.checkpoint = next;
        self.rebuild().await
    }

    /// Writes the committed rows of the batch, then the checkpoint. Transient ClickHouse
    /// errors are retried with the rows kept, so a busy target slows the pipe down but loses
    /// nothing.
    pub async fn flush(&mut self) -> Result<()> {
        if self.batch.position.is_none() {
            return Ok(());
        }
        // Committed at the source, not yet in the target: the lag counts while this is written.
        self.ctx.handle.health(|h| h.behind(true, Moment::now()));
        let started = Instant::now();
        let writer = TargetWriter {
            ctx: self.ctx,
            names: &self.names,
            inserts: &self.inserts,
        };
        let retry = writer.retry();
        let committed = commit::commit(
            &self.ctx.store,
            &writer,
            &retry,
            &mut self.batch,
            self.checkpoint,
        );
        let Some(changes) = committed.await? else {
            return Ok(());
        };
        crate::metrics::flush_seconds(self.ctx.name(), started.elapsed().as_secs_f64());
        // What is left is the open transaction, if any: read, not applied.
        let behind = self.batch.in_transaction();
        let commit_time = self.decoder.last_event_time;
        let handle = &self.ctx.handle;
        handle.health(|h| h.applied(commit_time, behind, Moment::now()));
        let position = &self.checkpoint.position;
        handle.update(|s| {
            s.position = Some(position.to_string());
            s.events_applied += changes as u64;
        });
        info!(
            pipe = %self.ctx.name(),
            changes,
            position = %position,
            flush_ms = started.elapsed().as_millis() as u64,
            "batch applied"
        );
        Ok(())
    }

    /// Writes the rows of a transaction too large to hold before it ends, without a
    /// checkpoint.
    async fn spill(&mut self) -> Result<()> {
        let bytes = self.batch.bytes();
        let writer = TargetWriter {
            ctx: self.ctx,
            names: &self.names,
            inserts: &self.inserts,
        };
        let changes = commit::spill(&writer, &mut self.batch).await?;
        self.ctx
            .handle
            .update(|s| s.events_applied += changes as u64);
        crate::metrics::spilled(self.ctx.name());
        info!(
            pipe = %self.ctx.name(),
            changes,
            bytes,
            "part of a transaction larger than the batch byte cap written; checkpoint after its commit"
        );
        Ok(())
    }
}

/// Writes a batch's rows into the target tables of the session's view.
struct TargetWriter<'w, S> {
    ctx: &'w Ctx<S>,
    names: &'w [String],
    inserts: &'w [Vec<String>],
}

impl<S: StateStore> TargetWriter<'_, S> {
    /// How a ClickHouse write is retried: up to [`MAX_WRITE_RETRIES`] times, then the session
    /// restarts from the checkpoint.
    fn retry(&self) -> Retry<'_> {
        Retry {
            max_retries: Some(MAX_WRITE_RETRIES),
            ..self.ctx.retry(WRITE_STEP)
        }
    }
}

impl<S: StateStore> Writer for TargetWriter<'_, S> {
    /// Inserts rows table by table, counting them.
    async fn write(&self, tables: Vec<Taken>) -> Result<usize> {
        let retry = self.retry();
        let mut changes = 0;
        for taken in tables {
            let data = Bytes::from(taken.data);
            for sql in &self.inserts[taken.table] {
                let insert = || self.ctx.target.insert(sql, data.clone());
                retry.run(insert, super::retry::sleep).await?;
            }
            changes += taken.rows;
            let table = &self.names[taken.table];
            for op in Op::ALL {
                let count = taken.ops[op as usize];
                crate::metrics::cdc_changes(self.ctx.name(), table, op.as_str(), count);
            }
        }
        Ok(changes)
    }
}
