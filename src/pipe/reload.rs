//! Reloading one table while every table keeps replicating.
//!
//! A reload copies the table, with its current source definition, into `<target>_resync`
//! while CDC goes on for the whole pipe and writes this table's changes into that copy; once
//! the copy is loaded, CDC pauses at a flushed checkpoint, the copy is swapped in with
//! `EXCHANGE TABLES` and the old data dropped. It ends correct for the reason a snapshot does:
//! the copy's rows are read at or after the checkpoint the reload starts from, at version 0,
//! and CDC applies every change after that checkpoint on top of them with higher versions.
//!
//! A reload repairs an isolated table (`tables resync`), rebuilds a table whose DDL the target
//! cannot follow in place, and reloads a table that changed under its initial load. The last
//! two wait ([`Reload::Waiting`]) until CDC has passed the source position taken when the
//! table was isolated, so that no row the copy receives predates the definition it is loaded
//! with. Where each reload stands is kept in the state store: after a restart the copy keeps
//! receiving changes and its load resumes from its recorded partitions.

use tracing::info;

use super::resync::SUFFIX;
use super::schema_change::isolate_table;
use super::Runner;
use crate::clickhouse::sql::{create_table_sql, ident};
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::snapshot::Changed;
use crate::source::Source;
use crate::state::{Checkpoint, Reload, StateStore};

/// A table being loaded into its copy alongside CDC.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    /// The table's plan; its target is the copy.
    pub plan: TablePlan,
    /// State key of the load's progress.
    pub namespace: String,
}

impl Runner {
    /// Modifying: starts reloading `table` into its copy with its current source definition
    /// (an isolated table replicates again, into the copy). CDC is stopped at `checkpoint`,
    /// flushed, and continues from it, loading the copy meanwhile.
    pub(super) async fn start_reload(
        &mut self,
        source: &Source,
        plans: &mut Vec<TablePlan>,
        table: &str,
        checkpoint: &Checkpoint,
    ) -> Result<String> {
        let isolated = self.store.isolated().await?;
        let replicated = plans.iter().any(|p| p.def.qualified() == table)
            || isolated
                .iter()
                .any(|(t, reason)| t == table && !reason.is_empty());
        if !replicated {
            return Err(Error::NotReplicated {
                table: table.to_owned(),
            });
        }
        self.recorder
            .enter(PipeState::Modifying, &format!("reloading {table}"))
            .await?;
        let live = self.current_plan(source, table).await?;
        let copy = TablePlan {
            target: format!("{}{SUFFIX}", live.target),
            ..live.clone()
        };
        let db = &self.cfg.target.database;
        let sql = format!("DROP TABLE IF EXISTS {}.{}", ident(db), ident(&copy.target));
        self.target.execute(&sql, &[]).await?;
        self.target
            .execute(&create_table_sql(db, &copy), &[])
            .await?;
        // In force from the checkpoint CDC continues from: the copy's rows are decoded with it.
        self.store
            .save_definition(&copy.def, checkpoint.seq)
            .await?;
        let namespace = format!("#reload-{table}-{:016x}", rand::random::<u64>());
        self.store
            .save_reload(table, Some(&Reload::Loading { namespace }))
            .await?;
        self.store.isolate(table, "").await?;
        let target = copy.target.clone();
        match plans.iter_mut().find(|p| p.def.qualified() == table) {
            Some(p) => *p = copy,
            None => plans.push(copy),
        }
        self.handle.update(|s| {
            let t = s.tables.entry(table.to_owned()).or_default();
            *t = Default::default();
        });
        info!(pipe = %self.cfg.name, table, copy = %target, "reload started");
        Ok(format!(
            "reloading {table} into {target} while replicating from {}; swapped in once loaded",
            checkpoint.position
        ))
    }

    /// Modifying: the copy of `table` is loaded (CDC stopped, flushed): swaps it in, drops
    /// the old data, and the table replicates into its own target again.
    pub(super) async fn finish_reload(
        &mut self,
        plans: &mut [TablePlan],
        table: &str,
        namespace: &str,
    ) -> Result<()> {
        self.recorder
            .enter(PipeState::Modifying, &format!("swapping in {table}"))
            .await?;
        let Some(plan) = plans.iter_mut().find(|p| p.def.qualified() == table) else {
            return Err(Error::Bug {
                detail: format!("{table} has no plan to swap in"),
            });
        };
        let copy = plan.target.clone();
        let live_name = copy.strip_suffix(SUFFIX).unwrap_or(&copy).to_owned();
        let live = TablePlan {
            target: live_name,
            ..plan.clone()
        };
        let db = &self.cfg.target.database;
        // The live table may be gone (dropped by hand): the swap needs one.
        self.target
            .execute(&create_table_sql(db, &live), &[])
            .await?;
        let (live_sql, copy_sql) = (
            format!("{}.{}", ident(db), ident(&live.target)),
            format!("{}.{}", ident(db), ident(&copy)),
        );
        self.target
            .execute(&format!("EXCHANGE TABLES {live_sql} AND {copy_sql}"), &[])
            .await?;
        *plan = live;
        self.target
            .execute(&format!("DROP TABLE IF EXISTS {copy_sql}"), &[])
            .await?;
        let rows = self
            .adopt_load(&self.store.namespaced(namespace), table)
            .await?;
        self.store.save_reload(table, None).await?;
        self.handle.update(|s| {
            let t = s.tables.entry(table.to_owned()).or_default();
            t.rows_done = rows;
            t.done = true;
            t.error = None;
        });
        info!(pipe = %self.cfg.name, table, rows, "reloaded copy swapped in");
        Ok(())
    }

    /// A reload that could not complete: the table is isolated with `reason` and leaves the
    /// plans, and its copy is dropped; `retry` waits to reload it again (into a new copy) once
    /// CDC has passed the source's position now.
    pub(super) async fn abandon_reload(
        &mut self,
        plans: &mut Vec<TablePlan>,
        table: &str,
        reason: &str,
        retry: bool,
    ) -> Result<()> {
        isolate_table(&self.store, &self.handle, &self.cfg.name, table, reason).await?;
        let reload = retry.then_some(Reload::Waiting);
        self.store.save_reload(table, reload.as_ref()).await?;
        self.drop_copy(plans, table).await?;
        plans.retain(|p| p.def.qualified() != table);
        Ok(())
    }

    /// A reload of a table that no longer exists in the source is void: its copy is dropped
    /// and the table is no longer replicated (as after its `DROP TABLE`).
    async fn void_reload(&mut self, plans: &mut Vec<TablePlan>, table: &str) -> Result<()> {
        info!(pipe = %self.cfg.name, table, "the table to reload no longer exists in the source; its reload is void");
        self.store.save_reload(table, None).await?;
        self.drop_copy(plans, table).await?;
        plans.retain(|p| p.def.qualified() != table);
        self.handle.update(|s| {
            s.tables.remove(table);
        });
        Ok(())
    }

    /// Drops the reload copy of `table`, if there is one.
    async fn drop_copy(&self, plans: &[TablePlan], table: &str) -> Result<()> {
        let copy = match plans.iter().find(|p| p.def.qualified() == table) {
            Some(p) if p.target.ends_with(SUFFIX) => p.target.clone(),
            Some(p) => format!("{}{SUFFIX}", p.target),
            None => {
                let (db, name) = table.split_once('.').unwrap_or((table, ""));
                format!("{}{SUFFIX}", self.cfg.tables.target_of(db, name))
            }
        };
        let db = &self.cfg.target.database;
        let sql = format!("DROP TABLE IF EXISTS {}.{}", ident(db), ident(&copy));
        self.target.execute(&sql, &[]).await
    }

    /// A table that changed under its initial load: isolated (its rows are not decoded under
    /// a definition they were not written with) and reloaded with its new definition once
    /// replication has passed the change.
    pub(super) async fn defer_reload(
        &mut self,
        plans: &mut Vec<TablePlan>,
        changed: &Changed,
    ) -> Result<()> {
        let reason = format!(
            "changed in the source while it was loaded ({}); reloaded automatically once replication has passed the change",
            changed.error
        );
        self.abandon_reload(plans, &changed.table, &reason, true)
            .await
    }

    /// Starts the reloads that waited for CDC to pass their change. One that cannot start
    /// leaves its table isolated with the reason.
    pub(super) async fn start_waiting_reloads(
        &mut self,
        source: &Source,
        plans: &mut Vec<TablePlan>,
        checkpoint: &Checkpoint,
    ) -> Result<()> {
        for (table, reload) in self.store.reloads().await? {
            if reload != Reload::Waiting {
                continue;
            }
            match self.start_reload(source, plans, &table, checkpoint).await {
                Ok(_) => {}
                Err(Error::TableNotFound { .. }) => self.void_reload(plans, &table).await?,
                Err(e) => {
                    let reason = format!(
                    "the automatic reload could not start: {e}; `tributary tables resync` retries it"
                    );
                    self.abandon_reload(plans, &table, &reason, false).await?;
                }
            }
        }
        Ok(())
    }

    /// The reloads in progress among `reloads` (the stored ones): each table's plan is pointed
    /// at its copy (where CDC writes its changes) and its load is returned, to run alongside
    /// CDC.
    pub(super) fn loads(plans: &mut [TablePlan], reloads: Vec<(String, Reload)>) -> Vec<Load> {
        let mut loads = Vec::new();
        for (table, reload) in reloads {
            let Reload::Loading { namespace } = reload else {
                continue;
            };
            if let Some(plan) = plans.iter_mut().find(|p| p.def.qualified() == table) {
                if !plan.target.ends_with(SUFFIX) {
                    plan.target = format!("{}{SUFFIX}", plan.target);
                }
                loads.push(Load {
                    plan: plan.clone(),
                    namespace,
                });
            }
        }
        loads
    }

    /// After a loaded copy (or a load that failed) was handed back by CDC.
    pub(super) async fn loaded(
        &mut self,
        plans: &mut Vec<TablePlan>,
        load: &Load,
        result: Result<Option<Vec<Changed>>>,
    ) -> Result<()> {
        let table = load.plan.def.qualified();
        // The table may have changed course while its copy loaded: dropped, renamed, or
        // isolated again by a DDL. Then this load is void.
        let current = self.store.reloads().await?;
        let still = current.iter().any(|(t, r)| {
            *t == table
                && *r
                    == Reload::Loading {
                        namespace: load.namespace.clone(),
                    }
        });
        let in_plans = plans.iter().any(|p| p.def.qualified() == table);
        if !still || !in_plans {
            info!(pipe = %self.cfg.name, table, "reload superseded while its copy loaded; its result is dropped");
            if !current.iter().any(|(t, _)| *t == table) {
                // No reload wants the copy any more.
                let db = &self.cfg.target.database;
                let sql = format!(
                    "DROP TABLE IF EXISTS {}.{}",
                    ident(db),
                    ident(&load.plan.target)
                );
                self.target.execute(&sql, &[]).await?;
                self.store.save_reload(&table, None).await?;
            }
            return Ok(());
        }
        match result {
            Ok(Some(changed)) if changed.is_empty() => {
                self.finish_reload(plans, &table, &load.namespace).await
            }
            Ok(Some(changed)) => {
                let error = changed.first().map_or("", |c| c.error.as_str());
                let reason = format!(
                    "changed in the source while it was reloaded ({error}); reloaded again once replication has passed the change"
                );
                self.abandon_reload(plans, &table, &reason, true).await
            }
            Ok(None) => Ok(()),
            Err(e) => {
                let reason =
                    format!("its reload failed: {e}; `tributary tables resync` retries it");
                self.abandon_reload(plans, &table, &reason, false).await
            }
        }
    }
}
