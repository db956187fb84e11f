//! The pipe's record: its lifecycle state and its [`Tables`], kept in the state store and
//! mirrored into its shared status.
//!
//! Invariants: a lifecycle transition is refused unless [`PipeState::can_move_to`] allows it,
//! and is stored with its reason before anyone can observe it. A table's phase changes only in
//! [`Tables`]; each change ([`Step`]) is written to the store (isolation, reload) and to the
//! status here, in an order a crash cannot turn into replicating a table that must not be:
//! an isolation is stored before the reload that follows it, and a reload before the isolation
//! it clears.

use tracing::{info, warn};

use super::control::PipeHandle;
use super::tables::{Phase, Step, Stored, Tables};
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::snapshot::Changed;
use crate::state::StateStore;

pub(crate) struct Ledger<S> {
    store: S,
    handle: PipeHandle,
    pipe: String,
    state: Option<PipeState>,
    /// The pipe's tables, as the current drive found and changed them.
    pub tables: Tables,
}

impl<S: StateStore> Ledger<S> {
    pub fn new(store: S, handle: PipeHandle, pipe: &str, tables: Tables) -> Ledger<S> {
        Ledger {
            store,
            handle,
            pipe: pipe.to_owned(),
            state: None,
            tables,
        }
    }

    /// The lifecycle state the pipe is in (`None` before its first transition).
    pub fn state(&self) -> Option<PipeState> {
        self.state
    }

    /// Takes the state the store says the pipe is in (a drive starts from it).
    pub fn resume_from(&mut self, state: Option<PipeState>) {
        self.state = state;
    }

    /// Moves the pipe to `to`: refused if the lifecycle does not allow it, stored with the
    /// reason before anyone can observe it.
    pub async fn enter(&mut self, to: PipeState, reason: &str) -> Result<()> {
        if let Some(from) = self.state {
            if !from.can_move_to(to) {
                return Err(Error::IllegalTransition {
                    from: from.as_str(),
                    to: to.as_str(),
                });
            }
        }
        self.store.record_transition(self.state, to, reason).await?;
        self.show(to, reason);
        Ok(())
    }

    /// Moves the pipe to Failed. Unlike the other states it is shown (status, metrics) even
    /// when the state store cannot record it: an unreachable or untrusted target is often the
    /// very reason, and a pipe that failed must never look like one still starting.
    pub async fn fail(&mut self, reason: &str) -> Result<()> {
        let stored = self
            .store
            .record_transition(self.state, PipeState::Failed, reason)
            .await;
        self.show(PipeState::Failed, reason);
        stored
    }

    fn show(&mut self, to: PipeState, reason: &str) {
        crate::metrics::state(&self.pipe, to.as_str());
        let from = self.state.map_or("", PipeState::as_str);
        self.handle.update(|s| {
            s.entered(from, to.as_str(), reason);
            if to == PipeState::Failed {
                s.last_error = Some(reason.to_owned());
            }
        });
        info!(pipe = %self.pipe, from = self.state.map(PipeState::as_str).unwrap_or("-"), to = to.as_str(), reason, "state");
        self.state = Some(to);
    }

    /// Enters `to` unless the pipe is in it already.
    pub async fn ensure(&mut self, to: PipeState, reason: &str) -> Result<()> {
        if self.state == Some(to) {
            return Ok(());
        }
        self.enter(to, reason).await
    }

    /// Stores and shows one table's change of phase (see the module doc for the order).
    pub async fn apply(&self, step: Step) -> Result<()> {
        let table = step.table.as_str();
        if step.isolates() {
            let reason = step.isolation().unwrap_or("");
            warn!(pipe = %self.pipe, table, reason, "table isolated");
            crate::metrics::error(&self.pipe, "table_isolated");
        }
        let isolating = step.isolation().is_some_and(|r| !r.is_empty());
        if isolating {
            self.store
                .isolate(table, step.isolation().unwrap_or(""))
                .await?;
        }
        if let Some(reload) = step.reload() {
            self.store.save_reload(table, reload.as_ref()).await?;
        }
        if let (false, Some(cleared)) = (isolating, step.isolation()) {
            self.store.isolate(table, cleared).await?;
        }
        let append = self.append_only(table);
        self.handle.update(|s| match &step.after {
            None => {
                s.tables.remove(table);
            }
            Some(phase) => {
                let error = match phase {
                    Phase::Isolated { reason, .. } => Some(reason.clone()),
                    _ => None,
                };
                let shown = s.tables.entry(table.to_owned()).or_default();
                shown.error = error;
                shown.reloading = matches!(phase, Phase::Reloading { .. });
                shown.append_only = append;
            }
        });
        Ok(())
    }

    /// Restores the pipe's tables as the store has them: `plans` (the selected tables, set up)
    /// replicate, but for isolated ones; those stay out unless `fresh` (a resync takes every
    /// table). With `snapshot` false (`cdc_only`), none is loaded before CDC.
    pub async fn restore(
        &mut self,
        plans: Vec<TablePlan>,
        fresh: bool,
        snapshot: bool,
    ) -> Result<()> {
        let isolated = self.store.isolated().await?;
        let mut stored = Stored {
            reloads: self.store.reloads().await?,
            loaded: Vec::new(),
        };
        let (mut replicated, mut kept_out) = (Vec::new(), Vec::new());
        for plan in plans {
            let table = plan.def.qualified();
            if self.store.progress(&table).await?.done {
                stored.loaded.push(table.clone());
            }
            match isolated.iter().find(|(t, _)| *t == table) {
                Some((_, reason)) => kept_out.push((table, Some(plan), reason.clone())),
                None => replicated.push(plan),
            }
        }
        let again: Vec<(String, String)> = kept_out
            .iter()
            .map(|(table, _, reason)| (table.clone(), reason.clone()))
            .collect();
        self.tables.restore(replicated, kept_out, &stored, snapshot);
        for table in self.tables.names() {
            let append = self.append_only(&table);
            self.handle.update(|s| {
                s.tables.entry(table).or_default().append_only = append;
            });
        }
        for (table, reason) in again {
            if fresh {
                let step = self.tables.reinstate(&table);
                self.apply(step).await?;
            } else {
                self.handle.update(|s| {
                    s.tables.entry(table).or_default().error = Some(reason);
                });
            }
        }
        Ok(())
    }

    /// After the initial load of `names`: each still loading replicates as loaded, or, if it
    /// changed under its load, is isolated (its rows are not decoded under a definition they
    /// were not written with) and reloaded with its new definition once CDC has passed the
    /// change. A table whose course changed meanwhile (isolated by a DDL CDC met, dropped) is
    /// left as it is. Returns whether one waits for a reload.
    pub async fn settle_loaded(&mut self, names: &[String], changed: &[Changed]) -> Result<bool> {
        let mut deferred = false;
        for name in names {
            if self.tables.phase(name) != Some(&Phase::Loading) {
                continue;
            }
            match changed.iter().find(|c| &c.table == name) {
                Some(c) => {
                    let reason = format!(
                        "changed in the source while it was loaded ({}); reloaded automatically once replication has passed the change",
                        c.error
                    );
                    self.isolate(name, reason, true).await?;
                    deferred = true;
                }
                None => {
                    let step = self.tables.loaded(name);
                    self.apply(step).await?;
                }
            }
        }
        Ok(deferred)
    }

    /// Whether `table` is planned append-only (it has no primary key).
    fn append_only(&self, table: &str) -> bool {
        let plan = self.tables.get(table).and_then(|e| e.plan.as_ref());
        plan.is_some_and(|p| p.append)
    }

    /// Takes `table` out of replication for `reason` (see [`Tables::isolate`]).
    pub async fn isolate(&mut self, table: &str, reason: String, reload: bool) -> Result<()> {
        let step = self.tables.isolate(table, reason, reload);
        self.apply(step).await
    }
}
