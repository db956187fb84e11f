//! Provisioning and Setup: the source checked, the selected tables planned, their target
//! tables created and the pipe's [`Tables`] restored from the state store.
//!
//! Invariants: nothing is written to the target before the source passed its checks and every
//! selected table was planned (two tables never share a target). With a checkpoint, a table
//! keeps the definition stored for that checkpoint: the binlog after it was written under that
//! definition, and its DDL brings it up to date. A snapshot that has to run (a new pipe, a
//! resync) is refused when the source's binlog retention cannot outlive it.

use std::collections::HashMap;

use tracing::warn;

use super::context::Ctx;
use super::ledger::Ledger;
use crate::clickhouse::sql::create_database_sql;
use crate::config::Mode;
use crate::error::{Error, Result};
use crate::schema::TablePlan;
use crate::source::introspect::{self, Planned};
use crate::source::preflight;
use crate::state::{Progress, StateStore};

/// The source's settings as read at start (for the retention check).
pub(super) type Variables = HashMap<String, String>;

/// Checks the source's binlog settings (a failing one stops the pipe) and grants (a warning:
/// roles `SHOW GRANTS` does not expand may grant what is missing).
pub(super) async fn check_source<S: StateStore>(ctx: &Ctx<S>) -> Result<Variables> {
    let mut conn = ctx.source.conn().await?;
    let names = preflight::variables().chain(["binlog_expire_logs_seconds", "expire_logs_days"]);
    let vars = ctx.source.variables(&mut conn, names).await?;
    preflight::check_settings(&vars)?;
    let grants: Vec<String> = ctx.source.query_as(&mut conn, "SHOW GRANTS").await?;
    if let (preflight::Level::Fail, text) = preflight::check_grants(&grants) {
        warn!(pipe = %ctx.name(), "source privileges: {text}");
    }
    Ok(vars)
}

/// Plans every selected table; the ones that cannot be replicated are isolated (with their
/// reason) and the others planned.
pub(super) async fn plan_tables<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
) -> Result<Vec<TablePlan>> {
    let overrides = ctx.store.overrides().await?;
    let isolated: Vec<String> = ctx
        .store
        .isolated()
        .await?
        .into_iter()
        .map(|(table, _)| table)
        .collect();
    let mut conn = ctx.source.conn().await?;
    let Planned { plans, rejected } = introspect::plan_tables(
        &ctx.source,
        &mut conn,
        &ctx.cfg.tables,
        &overrides,
        &isolated,
    )
    .await?;
    if plans.is_empty() {
        warn!(pipe = %ctx.name(), include = ?ctx.cfg.tables.include, isolated = rejected.len(), "no selected table to replicate now; tables created under the include patterns are replicated from their creation");
    }
    for (table, reason) in rejected {
        ledger.isolate(&table, reason, false).await?;
    }
    show_widened(ctx, &overrides);
    Ok(plans)
}

/// Marks in the status the tables added outside the config's selection.
fn show_widened<S: StateStore>(ctx: &Ctx<S>, overrides: &[(String, bool)]) {
    ctx.handle.update(|s| {
        for (table, included) in overrides {
            let (db, name) = table.split_once('.').unwrap_or((table, ""));
            if *included && !ctx.cfg.tables.matches(db, name) {
                s.tables.entry(table.clone()).or_default().outside_selection = true;
            }
        }
    });
}

/// Refuses to start a resync of `plans` the source's binlog retention cannot outlive: its
/// copies load before CDC goes on from their start, so its binlogs must be kept until then.
pub(super) async fn check_resync_retention<S: StateStore>(
    ctx: &Ctx<S>,
    vars: &Variables,
    plans: &[TablePlan],
) -> Result<()> {
    let names: Vec<(String, String)> = plans
        .iter()
        .map(|p| (p.def.db.clone(), p.def.name.clone()))
        .collect();
    let mut conn = ctx.source.conn().await?;
    let estimate = ctx.source.estimate_snapshot_secs(&mut conn, &names).await?;
    let retention = preflight::retention_seconds(vars);
    match preflight::check_resync_retention(retention, estimate) {
        (preflight::Level::Fail, text) => Err(Error::InvalidSourceSetting {
            setting: "binlog retention".into(),
            actual: retention.map_or("unlimited".into(), |r| format!("{r} s")),
            expected: format!("at least {} s", preflight::required_retention(estimate)),
            hint: text,
        }),
        _ => Ok(()),
    }
}

/// Creates the target tables and restores the pipe's tables into the ledger: `plans`
/// replicate (isolated ones stay out until a resync, unless `fresh`: a resync takes every
/// table with its source definition, isolated ones included).
pub(super) async fn set_up<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    plans: Vec<TablePlan>,
    checkpoint_seq: Option<u64>,
    fresh: bool,
) -> Result<()> {
    ctx.target
        .execute(&create_database_sql(ctx.db()), &[])
        .await?;
    let isolated = ctx.store.isolated().await?;
    let mut set_up = Vec::with_capacity(plans.len());
    for plan in plans {
        let table = plan.def.qualified();
        if !fresh && isolated.iter().any(|(t, _)| *t == table) {
            // Out until a resync: neither its definition nor its target is touched.
            set_up.push(plan);
            continue;
        }
        set_up.push(set_up_table(ctx, plan, checkpoint_seq, fresh).await?.0);
    }
    let snapshot = ctx.cfg.mode != Mode::CdcOnly;
    ledger.restore(set_up, fresh, snapshot).await
}

/// Sets up one table to replicate: its definition (the one stored for the checkpoint, unless
/// `fresh`), its target table, and its snapshot progress shown. Returns its effective plan.
pub(super) async fn set_up_table<S: StateStore>(
    ctx: &Ctx<S>,
    plan: TablePlan,
    checkpoint_seq: Option<u64>,
    fresh: bool,
) -> Result<(TablePlan, Progress)> {
    let table = plan.def.qualified();
    let seq = checkpoint_seq.unwrap_or(0);
    let stored = match (
        checkpoint_seq.is_some() && !fresh,
        ctx.store.stored_definition(&table, seq).await?,
    ) {
        (true, Some(stored)) if stored != plan.def => Some(stored),
        _ => None,
    };
    let plan = match stored {
        Some(stored) => {
            TablePlan::selected(stored, &ctx.cfg.tables).map_err(|reason| Error::Unplannable {
                table: table.clone(),
                reason,
            })?
        }
        None => {
            ctx.store.save_definition(&plan.def, seq).await?;
            plan
        }
    };
    ctx.create_table(&plan).await?;
    let progress = ctx.store.progress(&table).await?;
    ctx.handle.update(|s| {
        let t = s.tables.entry(table.clone()).or_default();
        t.rows_done = progress.rows;
        t.done = progress.done;
        t.error = None;
    });
    Ok((plan, progress))
}

/// Warns when the binlog retention is shorter than `source.max_outage`: replication itself
/// keeps up from the first second (the initial load runs beside CDC), but an outage longer
/// than the retention would need a resync.
pub(super) fn warn_short_retention<S: StateStore>(ctx: &Ctx<S>, vars: &Variables) {
    let retention = preflight::retention_seconds(vars);
    let max_outage = ctx.cfg.source.max_outage.as_secs();
    if let (preflight::Level::Fail, text) = preflight::check_retention(retention, max_outage) {
        warn!(pipe = %ctx.name(), retention = %text, "binlog retention");
    }
}
