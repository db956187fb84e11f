//! One drive of a connected pipe, step by step: Setup (source checked, tables planned and
//! created), a resync if one is due, the initial snapshot, then Running until shutdown, a
//! resync request, or an error.
//!
//! Invariant: each step starts from what the state store holds, so a drive cut short anywhere
//! (crash, failure, shutdown) is resumed by the next one: the snapshot per partition, a resync
//! from its own progress, CDC from the last checkpoint, reloads from theirs.

use super::cdc::{Cdc, Exit};
use super::commands::{self, After};
use super::context::{Control, Ctx};
use super::ledger::Ledger;
use super::{loading, reload, resync, setup};
use crate::config::Mode;
use crate::error::Result;
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::state::{Checkpoint, StateStore};

/// How a drive ended, when it did not fail.
pub(super) enum Driven {
    /// Stopped by shutdown after flushing and checkpointing.
    Stopped,
    /// A `snapshot_only` pipe loaded every table.
    Completed,
    /// Set up again, in place, and resync (requested while replicating or paused).
    Resync,
}

pub(super) struct Driver<'a, S> {
    pub ctx: &'a Ctx<S>,
    pub ledger: &'a mut Ledger<S>,
    pub control: &'a mut Control,
}

impl<S: StateStore> Driver<'_, S> {
    /// Drives the connected pipe; `resync` resumes or starts a resync first. `in_place`: set
    /// up again for a resync requested while replicating, without passing through Setup (the
    /// pipe goes from where it is straight to the resync's Snapshot).
    pub async fn run(mut self, resync: bool, in_place: bool) -> Result<Driven> {
        let vars = setup::check_source(self.ctx).await?;
        let source = &self.ctx.source;
        let reason = format!(
            "connected to {} ({:?}); binlog settings OK",
            source.url, source.flavor
        );
        if !in_place {
            self.ledger.enter(PipeState::Setup, &reason).await?;
        }
        let plans = setup::plan_tables(self.ctx, self.ledger).await?;
        let checkpoint = self.ctx.store.checkpoint().await?;
        if resync {
            setup::check_resync_retention(self.ctx, &vars, &plans).await?;
        } else {
            setup::warn_short_retention(self.ctx, &vars);
        }
        let seq = checkpoint.as_ref().map(|c| c.seq);
        setup::set_up(self.ctx, self.ledger, plans, seq, resync).await?;
        let checkpoint = if resync {
            match resync::run(self.ctx, self.ledger, self.control).await? {
                Some(cp) => Some(cp),
                None => return Ok(Driven::Stopped),
            }
        } else {
            checkpoint
        };
        self.load_and_replicate(checkpoint).await
    }

    /// The snapshot of the tables not loaded yet (not in `cdc_only`) and CDC: a `snapshot_only`
    /// pipe loads and completes; a `cdc` pipe loads its tables without a primary key first
    /// (CDC must know where each was read), then replicates from the snapshot's position while
    /// the other tables load beside it.
    async fn load_and_replicate(&mut self, mut checkpoint: Option<Checkpoint>) -> Result<Driven> {
        let snapshot_only = self.ctx.cfg.mode == Mode::SnapshotOnly;
        if !self.load(&mut checkpoint, !snapshot_only).await? {
            return Ok(Driven::Stopped);
        }
        if snapshot_only {
            let reason = if self.ledger.state() == Some(PipeState::Snapshot) {
                "every table loaded"
            } else {
                "the snapshot was already complete"
            };
            self.ledger.enter(PipeState::Completed, reason).await?;
            return Ok(Driven::Completed);
        }
        let checkpoint = self.start_replication(checkpoint).await?;
        self.replicate(checkpoint).await
    }

    /// Snapshot before CDC: loads the tables still loading (with `append_only`, only those
    /// replicated append-only); those that changed under their load are reloaded once CDC has
    /// passed the change. False when stopped by shutdown.
    async fn load(
        &mut self,
        checkpoint: &mut Option<Checkpoint>,
        append_only: bool,
    ) -> Result<bool> {
        let pending: Vec<_> = self
            .ledger
            .tables
            .loading()
            .into_iter()
            .filter(|p| p.append || !append_only)
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(true);
        }
        let names: Vec<String> = pending.iter().map(|p| p.def.qualified()).collect();
        let reason = format!("loading {}", names.join(", "));
        self.ledger.enter(PipeState::Snapshot, &reason).await?;
        let (ctx, state) = (self.ctx, self.ledger.state());
        let refs: Vec<_> = pending.iter().collect();
        let loaded = loading::load(ctx, self.control, state, &ctx.store, &refs, checkpoint);
        let Some(changed) = loaded.await? else {
            return Ok(false);
        };
        if ctx.cfg.mode == Mode::SnapshotOnly {
            // No binlog to catch up with: the load is simply asked for again.
            loading::unchanged(&changed)?;
        }
        self.ledger.settle_loaded(&names, &changed).await?;
        Ok(true)
    }

    /// Where CDC starts: the checkpoint; on a first start, the snapshot's position when tables
    /// are to be loaded (they load beside CDC), else (`cdc_only`, or nothing to load) where
    /// the source is now. Checked to be still held by the source.
    async fn start_replication(&mut self, checkpoint: Option<Checkpoint>) -> Result<Checkpoint> {
        let ctx = self.ctx;
        let checkpoint = match checkpoint {
            Some(cp) => cp,
            None => {
                let start = match self.ledger.tables.loading().is_empty() {
                    true => ctx.current_position().await?,
                    false => loading::start_position(ctx, &ctx.store).await?,
                };
                let cp = Checkpoint::start(None, start);
                ctx.store.save_checkpoint(&cp).await?;
                cp
            }
        };
        let mut conn = ctx.source.conn().await?;
        ctx.source
            .check_position(&mut conn, &checkpoint.position)
            .await?;
        drop(conn);
        let position = checkpoint.position.to_string();
        ctx.handle.update(|s| s.position = Some(position));
        Ok(checkpoint)
    }

    /// CDC sessions until shutdown or a resync, in Snapshot while tables still load beside
    /// them, then Running; between sessions, what each handed back: the initial load done,
    /// reloads to start or swap in, an operator's command.
    async fn replicate(&mut self, mut checkpoint: Checkpoint) -> Result<Driven> {
        let ctx = self.ctx;
        loop {
            reload::run_append(ctx, self.ledger, &self.control.shutdown).await?;
            let initial: Vec<TablePlan> =
                self.ledger.tables.loading().into_iter().cloned().collect();
            let (state, reason) = match initial.is_empty() {
                true => (
                    PipeState::Running,
                    format!("replicating from {}", checkpoint.position),
                ),
                false => (
                    PipeState::Snapshot,
                    format!(
                        "loading {} while replicating from {}",
                        initial
                            .iter()
                            .map(|p| p.def.qualified())
                            .collect::<Vec<_>>()
                            .join(", "),
                        checkpoint.position
                    ),
                ),
            };
            self.ledger.ensure(state, &reason).await?;
            // Tables waiting for a reload: CDC hands back once it has passed where the source
            // is now, hence past the change that interrupted their load.
            let reload_after = match self.ledger.tables.waiting().is_empty() {
                true => None,
                false => Some(ctx.current_position().await?),
            };
            let cdc = Cdc {
                ctx,
                loads: reload::loads(self.ledger),
                initial,
                ledger: self.ledger,
                control: self.control,
                reload_after,
            };
            match cdc.run(&mut checkpoint).await? {
                Exit::Shutdown => return Ok(Driven::Stopped),
                Exit::Reload => reload::start_waiting(ctx, self.ledger, &checkpoint).await?,
                Exit::Loaded { load, result } => {
                    reload::loaded(ctx, self.ledger, &load, result).await?
                }
                Exit::Command(request) => {
                    let after =
                        commands::handle(ctx, self.ledger, self.control, &checkpoint, request);
                    if let After::Resync = after.await? {
                        return Ok(Driven::Resync);
                    }
                }
            }
        }
    }
}
