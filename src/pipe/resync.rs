//! Resync: reload every table of the pipe into its copy while the current tables keep serving
//! reads, swap each pair atomically with `EXCHANGE TABLES`, drop the old data and continue CDC
//! from the resync's own snapshot position.
//!
//! A resync keeps its progress under its own state key (`<pipe>#resync<N>`, N = resyncs
//! completed before it), so a crash or failure resumes it where it stopped; each swap is
//! recorded, so a resumed resync never swaps a pair back. One table is reloaded alongside CDC
//! instead (see [`super::reload`]).

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

/// Whether `history` (newest first) ends in a resync that did not complete: a crash or a
/// failure interrupted it, and it is finished before anything else.
pub(super) fn interrupted(history: &[Transition]) -> bool {
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
    ledger
        .ensure(
            PipeState::Resync,
            "reloading every table into *_resync tables",
        )
        .await?;
    let history = ctx.store.history(10_000).await?;
    let store = ctx
        .store
        .namespaced(&format!("#resync{}", completed(&history)));
    let fresh = store.snapshot_start().await?.is_none();
    if fresh {
        // Every table is reloaded: table reloads in progress or waiting are superseded (their
        // copies are the resync's, replaced below).
        for step in ledger.tables.supersede_reloads() {
            ledger.apply(step).await?;
        }
    }
    let plans: Vec<TablePlan> = ledger.tables.plans();
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
    fn an_interrupted_resync_is_told_from_the_history() {
        // Newest first: a resync, then a crash (the daemon provisions again) and a failure.
        let history = [
            moved("Provisioning", "Failed"),
            moved("Failed", "Provisioning"),
            moved("Setup", "Provisioning"),
            moved("Provisioning", "Setup"),
            moved("Running", "Resync"),
            moved("Snapshot", "Running"),
        ];
        assert!(interrupted(&history));
        assert_eq!(completed(&history), 0);
        let done = [moved("Resync", "Running"), moved("Running", "Resync")];
        assert!(!interrupted(&done));
        assert_eq!(completed(&done), 1);
        assert!(!interrupted(&[]));
    }
}
