//! Resync: reload every table of the pipe into its copy while the current tables keep serving
//! reads (the pipe in `Snapshot`), swap each pair atomically with `EXCHANGE TABLES` (in
//! `Resync`), drop the old data and continue CDC from the resync's own snapshot position.
//!
//! A resync keeps its progress under its own state key (`<pipe>#resync<N>`, N = resyncs
//! completed before it), where it is recorded as requested before it is answered, so a crash
//! or failure resumes it where it stopped, in the state it stopped in; each swap is recorded,
//! so a resumed resync never swaps a pair back. One table is reloaded alongside CDC instead
//! (see [`super::reload`]).

use super::context::{aimed_at, Control, Ctx};
use super::ledger::Ledger;
use super::loading;
use super::reload::adopt_load;
use super::tables::copy_of;
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::state::{Checkpoint, Progress, StateStore, Transition};

/// Resyncs completed in `history` (newest first): the number of the next one's state key.
pub(super) fn completed(history: &[Transition]) -> usize {
    history
        .iter()
        .filter(|t| t.from_state == "Resync" && t.to_state == "Running")
        .count()
}

/// Whether `history` (newest first) ends in a resync's swap: a crash or a failure
/// interrupted it there, and it resumes there (not in Snapshot: its copies are loaded).
fn swapping(history: &[Transition]) -> bool {
    history
        .iter()
        .filter_map(|t| PipeState::parse(&t.to_state))
        .find(|s| {
            !matches!(
                s,
                PipeState::Provisioning | PipeState::Setup | PipeState::Failed
            )
        })
        == Some(PipeState::Resync)
}

/// The state key of the next resync (see the module's notes).
async fn next<S: StateStore>(store: &S) -> Result<S> {
    let history = store.history(10_000).await?;
    Ok(store.namespaced(&format!("#resync{}", completed(&history))))
}

/// The progress key that records a resync as requested.
const REQUESTED: &str = "#requested";

/// Records a resync as requested (it is resumed after a restart until it completes).
pub(super) async fn request<S: StateStore>(store: &S, control: &mut Control) -> Result<()> {
    let requested = Progress {
        seq: 1,
        done: true,
        ..Progress::default()
    };
    next(store)
        .await?
        .save_progress(REQUESTED, &requested)
        .await?;
    control.resync_requested = true;
    Ok(())
}

/// Whether a resync was requested and has not completed.
pub(super) async fn pending<S: StateStore>(store: &S) -> Result<bool> {
    Ok(next(store).await?.progress(REQUESTED).await?.done)
}

/// The state key of the swap of `table`, done once.
fn swap_marker(table: &str) -> String {
    format!("swap:{table}")
}

/// Runs (or resumes) a resync of every table of the ledger; returns the checkpoint CDC
/// continues from, or None when stopped by shutdown.
pub(super) async fn run<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    control: &mut Control,
) -> Result<Option<Checkpoint>> {
    let history = ctx.store.history(10_000).await?;
    let store = ctx
        .store
        .namespaced(&format!("#resync{}", completed(&history)));
    let swap_only = swapping(&history);
    if !swap_only {
        ledger
            .ensure(
                PipeState::Snapshot,
                "resync: loading every table into its copy (*_resync)",
            )
            .await?;
    }
    let fresh = store.snapshot_start().await?.is_none();
    if fresh {
        // Every table is reloaded: table reloads in progress or waiting are superseded (their
        // copies are the resync's, replaced below).
        for step in ledger.tables.supersede_reloads() {
            ledger.apply(step).await?;
        }
    }
    let plans: Vec<TablePlan> = ledger.tables.resynced();
    let copies: Vec<TablePlan> = plans
        .iter()
        .map(|p| aimed_at(p, &copy_of(&p.target)))
        .collect();
    for copy in &copies {
        if fresh {
            ctx.drop_table(&copy.target).await?;
        }
        ctx.create_table(copy).await?;
    }
    let refs: Vec<&TablePlan> = copies.iter().collect();
    let mut start = None;
    let state = ledger.state();
    match loading::load(ctx, control, state, &store, &refs, &mut start).await? {
        Some(changed) => loading::unchanged(&changed)?,
        None => return Ok(None),
    }
    let start = start
        .or(store.checkpoint().await?)
        .ok_or_else(|| Error::Bug {
            detail: "resync finished without a snapshot position".into(),
        })?;
    ledger
        .ensure(PipeState::Resync, "resync: swapping the loaded copies in")
        .await?;
    swap_all(ctx, &store, &plans).await?;
    for plan in &plans {
        let step = ledger.tables.loaded(&plan.def.qualified());
        ledger.apply(step).await?;
    }
    let previous = ctx.store.checkpoint().await?;
    let checkpoint = Checkpoint::start(previous.as_ref(), start.position);
    ctx.store.save_checkpoint(&checkpoint).await?;
    control.resync_requested = false;
    Ok(Some(checkpoint))
}

/// Swaps each table with its loaded copy, once (a swap recorded in the resync's `store` is
/// not done again), drops the old data, and records the table as loaded.
async fn swap_all<S: StateStore>(ctx: &Ctx<S>, store: &S, plans: &[TablePlan]) -> Result<()> {
    for plan in plans {
        let table = plan.def.qualified();
        if store.progress(&swap_marker(&table)).await?.done {
            continue;
        }
        let (live, copy) = (ctx.quoted(&plan.target), ctx.quoted(&copy_of(&plan.target)));
        ctx.target
            .execute(&format!("EXCHANGE TABLES {live} AND {copy}"), &[])
            .await?;
        let swapped = Progress {
            seq: 1,
            done: true,
            ..Progress::default()
        };
        store.save_progress(&swap_marker(&table), &swapped).await?;
        ctx.target
            .execute(&format!("DROP TABLE IF EXISTS {copy}"), &[])
            .await?;
        adopt_load(&ctx.store, store, &table).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(from: &str, to: &str) -> Transition {
        Transition {
            seq: 0,
            at: String::new(),
            from_state: from.into(),
            to_state: to.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_resync_interrupted_in_its_swap_is_told_from_the_history() {
        // Newest first: a resync's swap, then a crash (the daemon provisions again) and a
        // failure.
        let history = [
            moved("Provisioning", "Failed"),
            moved("Failed", "Provisioning"),
            moved("Setup", "Provisioning"),
            moved("Provisioning", "Setup"),
            moved("Snapshot", "Resync"),
            moved("Running", "Snapshot"),
            moved("Snapshot", "Running"),
        ];
        assert!(swapping(&history));
        assert_eq!(completed(&history), 0);
        let loading = [moved("Setup", "Snapshot"), moved("Provisioning", "Setup")];
        assert!(!swapping(&loading));
        let done = [moved("Resync", "Running"), moved("Snapshot", "Resync")];
        assert!(!swapping(&done));
        assert_eq!(completed(&done), 1);
        assert!(!swapping(&[]));
    }
}
