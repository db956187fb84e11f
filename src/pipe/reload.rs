//! Reloading one table while every table keeps replicating.
//!
//! A reload copies the table, with its current source definition, into its copy
//! ([`super::tables::copy_of`]) while CDC goes on for the whole pipe and writes this table's
//! changes into that copy; once the copy is loaded, CDC pauses at a flushed checkpoint, the
//! copy is swapped in with `EXCHANGE TABLES` and the old data dropped. It ends correct for the
//! reason a snapshot does: the copy's rows are read at or after the checkpoint the reload
//! starts from, at version 0, and CDC applies every change after that checkpoint on top of
//! them with higher versions.
//!
//! A reload repairs an isolated table (`tables resync`), rebuilds a table whose DDL the target
//! cannot follow in place, and reloads a table that changed under its initial load. The last
//! two wait (isolated, with a reload to come) until CDC has passed the source position taken
//! when the table was isolated, so that no row the copy receives predates the definition it is
//! loaded with. Where each reload stands is kept in the state store (through the ledger):
//! after a restart the copy keeps receiving changes and its load resumes from its recorded
//! partitions.
//!
//! The pipe stays `Running` through a table's reload: every other table replicates as before,
//! and a pipe-wide `Snapshot` for hours would say otherwise. The table's status shows the
//! reload (`reloading`, with its load's progress).

use tokio::sync::watch;
use tracing::info;

use super::cdc::{self, Load};
use super::context::{aimed_at, Ctx};
use super::ledger::Ledger;
use super::tables::{copy_of, Phase};
use crate::error::{Error, Result};
use crate::snapshot::Changed;
use crate::state::{Checkpoint, Progress, StateStore};

/// Starts reloading `table` into its copy with its current source definition (an
/// isolated table replicates again, into the copy). CDC is stopped at `checkpoint`, flushed,
/// and continues from it, loading the copy meanwhile.
pub(super) async fn start<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    table: &str,
    checkpoint: &Checkpoint,
) -> Result<String> {
    if ledger.tables.get(table).is_none() {
        return Err(Error::NotReplicated {
            table: table.to_owned(),
        });
    }
    // Read before anything is written: a table gone from the source leaves it as it was.
    let live = ctx.current_plan(table).await?;
    let copy = aimed_at(&live, &copy_of(&live.target));
    ctx.drop_table(&copy.target).await?;
    ctx.create_table(&copy).await?;
    // In force from the checkpoint CDC continues from: the copy's rows are decoded with it.
    ctx.store.save_definition(&live.def, checkpoint.seq).await?;
    let namespace = format!("#reload-{table}-{:016x}", rand::random::<u64>());
    let step = ledger.tables.start_reload(live, namespace);
    ledger.apply(step).await?;
    // Its load's progress starts over (the phase's flags were set by the step).
    ctx.handle.update(|s| {
        let t = s.tables.entry(table.to_owned()).or_default();
        (t.rows_done, t.rows_estimated, t.done) = (0, 0, false);
    });
    info!(pipe = %ctx.name(), table, copy = %copy.target, "reload started");
    Ok(format!(
        "reloading {table} into {} while replicating from {}; swapped in once loaded",
        copy.target, checkpoint.position
    ))
}

/// The copy of `table` is loaded (CDC stopped, flushed): swaps it in, drops the old data, and
/// the table replicates into its own target again.
async fn finish<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    table: &str,
    namespace: &str,
) -> Result<()> {
    let entry = ledger.tables.get(table);
    let Some((plan, Phase::Reloading { copy, .. })) =
        entry.and_then(|e| Some((e.plan.clone()?, e.phase.clone())))
    else {
        return Err(Error::Bug {
            detail: format!("{table} has no copy to swap in"),
        });
    };
    // The live table may be gone (dropped by hand): the swap needs one.
    ctx.create_table(&plan).await?;
    let (live, copy) = (ctx.quoted(&plan.target), ctx.quoted(&copy));
    let exchange = format!("EXCHANGE TABLES {live} AND {copy}");
    ctx.target.execute(&exchange, &[]).await?;
    ctx.target
        .execute(&format!("DROP TABLE IF EXISTS {copy}"), &[])
        .await?;
    let rows = adopt_load(&ctx.store, &ctx.store.namespaced(namespace), table).await?;
    let step = ledger.tables.finish_reload(table);
    ledger.apply(step).await?;
    ctx.handle.update(|s| {
        let t = s.tables.entry(table.to_owned()).or_default();
        t.rows_done = rows;
        t.done = true;
        t.error = None;
    });
    info!(pipe = %ctx.name(), table, rows, "reloaded copy swapped in");
    Ok(())
}

/// A reload that could not complete: the table is isolated with `reason` (and leaves
/// replication), and its copy is dropped; `retry` waits to reload it again (into a new copy)
/// once CDC has passed the source's position now.
async fn abandon<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    table: &str,
    reason: String,
    retry: bool,
) -> Result<()> {
    let copy = copy_name(ctx, ledger, table);
    ledger.isolate(table, reason, retry).await?;
    ctx.drop_table(&copy).await
}

/// A reload of a table that no longer exists in the source is void: its copy is dropped and
/// the table is no longer replicated (as after its `DROP TABLE`).
async fn void<S: StateStore>(ctx: &Ctx<S>, ledger: &mut Ledger<S>, table: &str) -> Result<()> {
    info!(pipe = %ctx.name(), table, "the table to reload no longer exists in the source; its reload is void");
    let copy = copy_name(ctx, ledger, table);
    let step = ledger.tables.remove(table);
    ledger.apply(step).await?;
    ctx.drop_table(&copy).await
}

/// The copy `table` is (or would be) reloaded into.
fn copy_name<S: StateStore>(ctx: &Ctx<S>, ledger: &Ledger<S>, table: &str) -> String {
    match ledger.tables.get(table) {
        Some(entry) => match &entry.phase {
            Phase::Reloading { copy, .. } => copy.clone(),
            _ => copy_of(&entry.target),
        },
        None => {
            let (db, name) = table.split_once('.').unwrap_or((table, ""));
            copy_of(&ctx.cfg.tables.target_of(db, name))
        }
    }
}

/// Starts the reloads that waited for CDC to pass their change. One that cannot start leaves
/// its table isolated with the reason.
pub(super) async fn start_waiting<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    checkpoint: &Checkpoint,
) -> Result<()> {
    for table in ledger.tables.waiting() {
        match start(ctx, ledger, &table, checkpoint).await {
            Ok(_) => {}
            Err(Error::TableNotFound { .. }) => void(ctx, ledger, &table).await?,
            Err(e) => {
                let reason = format!(
                    "the automatic reload could not start: {e}; `tributary tables resync` retries it"
                );
                abandon(ctx, ledger, &table, reason, false).await?;
            }
        }
    }
    Ok(())
}

/// The loads CDC runs alongside it: one per table reloading into its copy, but for tables
/// replicated append-only (see [`run_append`]).
pub(super) fn loads<S: StateStore>(ledger: &Ledger<S>) -> Vec<Load> {
    all_loads(ledger)
        .into_iter()
        .filter(|l| !l.plan.append)
        .collect()
}

fn all_loads<S: StateStore>(ledger: &Ledger<S>) -> Vec<Load> {
    ledger
        .tables
        .reloading()
        .into_iter()
        .map(|(table, plan, copy, namespace)| Load {
            table: table.to_owned(),
            plan: aimed_at(plan, copy),
            namespace: namespace.to_owned(),
        })
        .collect()
}

/// Runs the reloads of tables replicated append-only while CDC waits, and swaps each copy in.
/// Such a copy is read whole at a position only its load finds (`snapshot::keyless`), and CDC
/// must not write into it what that read already holds: CDC goes on from its checkpoint once
/// the copy is in, skipping the table's changes up to that position.
pub(super) async fn run_append<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    shutdown: &watch::Receiver<bool>,
) -> Result<()> {
    let loads: Vec<Load> = all_loads(ledger)
        .into_iter()
        .filter(|l| l.plan.append)
        .collect();
    for load in loads {
        let (load, result) = cdc::load(ctx, &load, shutdown.clone()).await;
        loaded(ctx, ledger, load, result).await?;
    }
    Ok(())
}

/// After a loaded copy (or a load that failed) was handed back by CDC.
pub(super) async fn loaded<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    load: &Load,
    result: Result<Option<Vec<Changed>>>,
) -> Result<()> {
    // The table may have changed course while its copy loaded: dropped, isolated again by a
    // DDL, or reloading anew. Then this load is void.
    let Some(table) = ledger
        .tables
        .reloaded_in(&load.namespace)
        .map(str::to_owned)
    else {
        info!(pipe = %ctx.name(), table = %load.table, "reload superseded while its copy loaded; its result is dropped");
        if !ledger.tables.has_reload(&load.table) {
            // No reload wants the copy any more.
            ctx.drop_table(&load.plan.target).await?;
        }
        return Ok(());
    };
    match result {
        Ok(Some(changed)) if changed.is_empty() => {
            finish(ctx, ledger, &table, &load.namespace).await
        }
        Ok(Some(changed)) => {
            let error = changed.first().map_or("", |c| c.error.as_str());
            let reason = format!(
                "changed in the source while it was reloaded ({error}); reloaded again once replication has passed the change"
            );
            abandon(ctx, ledger, &table, reason, true).await
        }
        Ok(None) => Ok(()),
        Err(e) => {
            let reason = format!("its reload failed: {e}; `tributary tables resync` retries it");
            abandon(ctx, ledger, &table, reason, false).await
        }
    }
}

/// Records `table` as loaded in the pipe's own progress (`store`) with the rows a reload
/// (kept in `reload`) copied, so that a restart does not load it again; returns those rows.
pub(super) async fn adopt_load<S: StateStore>(store: &S, reload: &S, table: &str) -> Result<u64> {
    let loaded = reload.progress(table).await?;
    let adopted = Progress {
        // Above any sequence a load writes: this record wins.
        seq: u64::MAX / 2,
        rows: loaded.rows,
        done: true,
        read_at: loaded.read_at,
    };
    store.save_progress(table, &adopted).await?;
    Ok(loaded.rows)
}
