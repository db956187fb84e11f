//! The operator's commands CDC hands to the driver (after flushing): a resync, and the
//! table changes (`tables add|remove|resync`), each answered with the pipe's own message.
//!
//! Invariant: a refused command leaves the pipe as it was (everything that can refuse it is
//! read before anything is written), and every command is answered exactly once.

use super::context::{Control, Ctx};
use super::control::{Command, Request};
use super::ledger::Ledger;
use super::{loading, reload, resync, setup};
use crate::config::Mode;
use crate::ddl::planner::truncate_sql;
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::source::introspect;
use crate::state::{Checkpoint, StateStore};

/// What the driver does once a command is handled.
pub(super) enum After {
    /// CDC goes on from the checkpoint.
    Replicate,
    /// Set up again and resync (requested).
    Resync,
}

/// Acts on `request` (CDC stopped at `checkpoint`) and answers it.
pub(super) async fn handle<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    control: &mut Control,
    checkpoint: &Checkpoint,
    request: Request,
) -> Result<After> {
    let answer = match request.command.clone() {
        Command::Resync => {
            resync::request(&ctx.store, control).await?;
            let _ = request.reply.send(Ok(
                "resync started: the tables are loaded into copies (Snapshot), then swapped in (Resync)".into(),
            ));
            // Set up again, in place: the resync takes every selected table with its current
            // definition, isolated ones included.
            return Ok(After::Resync);
        }
        Command::AddTable { table, widen } => {
            add_table(ctx, ledger, control, checkpoint, &table, widen).await
        }
        Command::RemoveTable { table, drop_target } => {
            remove_table(ctx, ledger, &table, drop_target).await
        }
        Command::ResyncTable { table } => reload::start(ctx, ledger, &table, checkpoint).await,
        Command::Pause | Command::Resume => {
            let _ = request
                .reply
                .send(Err("internal error: misrouted command".into()));
            return Ok(After::Replicate);
        }
    };
    let _ = request.reply.send(answer.map_err(|e| e.to_string()));
    Ok(After::Replicate)
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

/// Snapshot (unless `cdc_only`): creates, snapshots and starts replicating `table`. CDC
/// continues from the pipe's checkpoint, which precedes this snapshot's position: no gap.
async fn add_table<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    control: &mut Control,
    checkpoint: &Checkpoint,
    table: &str,
    widen: bool,
) -> Result<String> {
    if ledger.tables.replicates(table) {
        return Err(Error::AlreadyReplicated {
            table: table.to_owned(),
        });
    }
    let (db, name) = table.split_once('.').unwrap_or((table, ""));
    let outside = !ctx.cfg.tables.matches(db, name);
    if let Some(refusal) = add_refusal(table, db, outside, widen) {
        return Err(Error::Selection(refusal));
    }
    // Read before anything is written: a table that is not there, or one that would be
    // written into another table's target, leaves the pipe as it was.
    let plan = ctx.current_plan(table).await?;
    if let Some(collision) = plan.collision(&ledger.tables.plans()) {
        return Err(Error::Selection(collision));
    }
    // A table added again may hold rows of its earlier replication, some with versions
    // higher than the reload's: start it empty.
    ctx.target
        .execute(&truncate_sql(ctx.db(), &plan), &[])
        .await?;
    let (plan, _) = setup::set_up_table(ctx, plan, Some(checkpoint.seq), true).await?;
    let mut cp = Some(checkpoint.clone());
    if ctx.cfg.mode != Mode::CdcOnly {
        // Snapshot while it loads (CDC waits at the checkpoint); Running again after.
        ledger
            .enter(PipeState::Snapshot, &format!("loading added table {table}"))
            .await?;
        let state = ledger.state();
        match loading::load(ctx, control, state, &ctx.store, &[&plan], &mut cp).await? {
            Some(changed) => loading::unchanged(&changed)?,
            None => {
                return Err(Error::StoppedWhileLoading {
                    table: table.to_owned(),
                })
            }
        }
    }
    ctx.store.save_override(table, true).await?;
    let step = ledger.tables.add(plan);
    ledger.apply(step).await?;
    if outside {
        ctx.handle.update(|s| {
            let t = s.tables.entry(table.to_owned()).or_default();
            t.outside_selection = true;
        });
    }
    let widened = if outside {
        " (outside tables.include/exclude, as asked)"
    } else {
        ""
    };
    Ok(format!("{table} added and loaded{widened}"))
}

/// Modifying: stops replicating `table`; its target table is kept unless `drop_target`.
async fn remove_table<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    table: &str,
    drop_target: bool,
) -> Result<String> {
    let Some(target) = ledger
        .tables
        .get(table)
        .filter(|_| ledger.tables.replicates(table))
        .map(|e| e.target.clone())
    else {
        return Err(Error::NotReplicated {
            table: table.to_owned(),
        });
    };
    ledger
        .enter(PipeState::Modifying, &format!("removing {table}"))
        .await?;
    ctx.store.save_override(table, false).await?;
    ctx.store.forget_snapshot(table).await?;
    let step = ledger.tables.remove(table);
    ledger.apply(step).await?;
    if drop_target {
        ctx.drop_table(&target).await?;
    }
    Ok(format!(
        "{table} removed{}",
        if drop_target {
            "; its target table was dropped"
        } else {
            "; its target table is kept"
        }
    ))
}
