//! Applies DDL from the binlog to the target, in binlog order (see [`crate::ddl`]).
//!
//! Invariant: no row written after a DDL is decoded before the DDL is applied. The CDC loop
//! flushes the rows before it, applies it here, stores the new definition, then checkpoints at
//! the DDL's end; a crash in between replays the DDL, and a target that already has the new
//! columns is left as it is. A change the target cannot follow in place (a sorting key change,
//! a narrowing type change, rows changed without row events, a statement not understood)
//! isolates that one table: it stops being replicated, its status and metrics say why, the
//! other tables continue, and a resync repairs it.

use serde::Deserialize;
use tracing::{info, warn};

use super::cdc::Cdc;
use crate::binlog::events::SchemaChange;
use crate::clickhouse::sql::{column_type, create_table_sql, ident};
use crate::config::OnSourceDrop;
use crate::ddl::planner::{alter, membership, truncate_sql, Membership, Migration};
use crate::ddl::{self, CreateTable, Ddl, Defaults};
use crate::error::Result;
use crate::pipe::control::PipeHandle;
use crate::schema::{TableDef, TablePlan};
use crate::state::{ClickHouseStore, Reload, StateStore};

/// What became of one table.
enum Outcome {
    Keep,
    Replace(TablePlan),
    /// No longer replicated, not an error (dropped in the source).
    Stop,
    Isolate(String),
    /// The target cannot follow in place: isolated, then rebuilt from a snapshot.
    Rebuild(String),
}

impl Cdc<'_> {
    /// Applies `change` to the target and to `plans` (tables may leave `plans`).
    /// `applies_from` is the sequence of the checkpoint written right after the change: the
    /// new definitions are stored as in force from it. Returns whether a table awaits a
    /// rebuild (a pending reload).
    pub(super) async fn apply_schema_change(
        &self,
        change: &SchemaChange,
        plans: &mut Vec<TablePlan>,
        applies_from: u64,
    ) -> Result<bool> {
        if let Ddl::CreateTable(ct) = &change.ddl {
            return self.create_table(change, ct, plans, applies_from).await;
        }
        let mut rebuild = false;
        let mut outcomes = Vec::new();
        // The tables this change leaves as they are, whose targets a renamed table must not
        // take (the tables it touches all move together, a swap included).
        let known: Vec<String> = plans.iter().map(|p| p.def.qualified()).collect();
        let others: Vec<TablePlan> = (0..plans.len())
            .filter(|i| !change.tables.contains(i))
            .map(|i| plans[i].clone())
            .collect();
        for &i in &change.tables {
            let Some(plan) = plans.get(i) else { continue };
            let outcome = self.follow(change, plan, &others).await?;
            outcomes.push((plan.def.qualified(), outcome));
        }
        for (table, outcome) in outcomes {
            let Some(i) = plans.iter().position(|p| p.def.qualified() == table) else {
                continue;
            };
            match outcome {
                Outcome::Keep => {}
                Outcome::Replace(plan) => {
                    self.store.save_definition(&plan.def, applies_from).await?;
                    let new_name = plan.def.qualified();
                    if new_name != table {
                        // Loaded under its old name: not to be loaded again under the new one.
                        let loaded = self.store.progress(&table).await?;
                        self.store.save_progress(&new_name, &loaded).await?;
                        self.handle.update(|s| {
                            if let Some(t) = s.tables.remove(&table) {
                                s.tables.insert(new_name, t);
                            }
                        });
                    }
                    plans[i] = plan;
                }
                Outcome::Stop => {
                    // A reload of it in progress has nothing left to swap in.
                    self.store.save_reload(&table, None).await?;
                    info!(pipe = %self.cfg.name, table = %table, statement = %change.statement, "table dropped or renamed away in the source: no longer replicated");
                    plans.remove(i);
                    self.handle.update(|s| {
                        s.tables.remove(&table);
                    });
                }
                Outcome::Isolate(reason) => {
                    let reason = format!(
                        "`{}` at {}: {reason}; the table is no longer replicated until a resync",
                        change.statement, change.position
                    );
                    self.isolate(&table, &reason).await?;
                    plans.remove(i);
                }
                Outcome::Rebuild(reason) => {
                    let reason = format!(
                        "`{}` at {}: {reason}; the table is rebuilt from a snapshot once replication has passed the change",
                        change.statement, change.position
                    );
                    self.isolate_until_reloaded(&table, &reason).await?;
                    plans.remove(i);
                    rebuild = true;
                }
            }
        }
        if let Ddl::Unparsed { tables, reason } = &change.ddl {
            // A selected table the pipe does not replicate yet (one this statement creates):
            // never passed over silently.
            for (db, name) in tables {
                let table = format!("{db}.{name}");
                if known.contains(&table) || !self.cfg.tables.matches(db, name) {
                    continue;
                }
                let reason = format!(
                    "`{}` at {}: statement not understood ({reason}); not replicated until `tributary tables resync`",
                    change.statement, change.position
                );
                self.isolate(&table, &reason).await?;
            }
        }
        if let Ddl::RenameTables(pairs) = &change.ddl {
            // Tables renamed into the selection from outside it (after the renames above took
            // effect) were never copied: they are loaded once CDC has passed the rename.
            let replicated = |name: &(String, String)| {
                plans
                    .iter()
                    .any(|p| p.def.db == name.0 && p.def.name == name.1)
            };
            for (from, to) in pairs {
                if replicated(from) || replicated(to) || !self.cfg.tables.matches(&to.0, &to.1) {
                    continue;
                }
                let table = format!("{}.{}", to.0, to.1);
                let reason = format!(
                    "`{}` at {}: renamed into the selection; copied from a snapshot once replication has passed the rename",
                    change.statement, change.position
                );
                self.isolate_until_reloaded(&table, &reason).await?;
                rebuild = true;
            }
        }
        Ok(rebuild)
    }

    /// Isolates `table` until it is reloaded, once CDC has passed the change (see
    /// [`super::reload`]).
    async fn isolate_until_reloaded(&self, table: &str, reason: &str) -> Result<()> {
        self.isolate(table, reason).await?;
        self.store.save_reload(table, Some(&Reload::Waiting)).await
    }

    /// Takes `table` out of replication with `reason` (state, status, metrics); the other
    /// tables continue and `tables resync` repairs it.
    pub(super) async fn isolate(&self, table: &str, reason: &str) -> Result<()> {
        isolate_table(self.store, self.handle, &self.cfg.name, table, reason).await
    }

    async fn follow(
        &self,
        change: &SchemaChange,
        plan: &TablePlan,
        others: &[TablePlan],
    ) -> Result<Outcome> {
        let db = &self.cfg.target.database;
        Ok(match &change.ddl {
            Ddl::AlterTable { table, changes } => {
                let charset = self.table_charset(&table.0, &table.1).await?;
                let defaults = Defaults {
                    charset: &charset,
                    flavor: self.source.flavor,
                };
                let altered = match ddl::apply(&plan.def, changes, &defaults) {
                    Ok(altered) => altered,
                    Err(e) => return Ok(Outcome::Isolate(e.to_string())),
                };
                let new = match TablePlan::selected(altered.def.clone(), &self.cfg.tables) {
                    Ok(new) => new,
                    Err(e) => return Ok(Outcome::Isolate(e)),
                };
                match alter(db, plan, &new, &altered) {
                    Migration::InPlace(statements) => {
                        if !self.target_has_columns(&new).await? {
                            for sql in &statements {
                                self.target.execute_sync(sql).await?;
                            }
                        }
                        info!(pipe = %self.cfg.name, table = %plan.def.qualified(), statement = %change.statement, applied = statements.len(), "schema change followed");
                        Outcome::Replace(new)
                    }
                    Migration::Rebuild { reason } => Outcome::Rebuild(reason),
                }
            }
            Ddl::Truncate(_) => {
                self.target.execute_sync(&truncate_sql(db, plan)).await?;
                info!(pipe = %self.cfg.name, table = %plan.def.qualified(), "truncated in the source: target emptied");
                Outcome::Keep
            }
            Ddl::DropTable(_) | Ddl::DropDatabase(_) => {
                if self.cfg.tables.on_source_drop == OnSourceDrop::Drop {
                    let sql = format!("DROP TABLE IF EXISTS {}.{}", ident(db), ident(&plan.target));
                    self.target.execute_sync(&sql).await?;
                    info!(pipe = %self.cfg.name, table = %plan.def.qualified(), "target table dropped (tables.on_source_drop = \"drop\")");
                }
                Outcome::Stop
            }
            Ddl::RenameTables(pairs) => {
                // Renames apply left to right: follow this table through the chain.
                let mut name = (plan.def.db.clone(), plan.def.name.clone());
                for (from, to) in pairs {
                    if *from == name {
                        name = to.clone();
                    }
                }
                let from = (plan.def.db.clone(), plan.def.name.clone());
                match membership(&self.cfg.tables, &from, &name) {
                    Membership::Stays => {
                        let mut def = plan.def.clone();
                        def.db = name.0.clone();
                        def.name = name.1.clone();
                        let new = match TablePlan::selected(def, &self.cfg.tables) {
                            Ok(new) => new,
                            Err(e) => return Ok(Outcome::Isolate(e)),
                        };
                        if let Some(collision) = new.collision(others) {
                            return Ok(Outcome::Isolate(collision));
                        }
                        if new.target != plan.target {
                            let sql = format!(
                                "RENAME TABLE {0}.{1} TO {0}.{2}",
                                ident(db),
                                ident(&plan.target),
                                ident(&new.target)
                            );
                            if !self.target_has_columns(&new).await? {
                                self.target.execute_sync(&sql).await?;
                            }
                        }
                        info!(pipe = %self.cfg.name, from = %plan.def.qualified(), to = %new.def.qualified(), "table renamed in the source: followed");
                        Outcome::Replace(new)
                    }
                    _ => Outcome::Stop,
                }
            }
            Ddl::Unparsed { reason, .. } => {
                Outcome::Isolate(format!("statement not understood: {reason}"))
            }
            Ddl::RowsByStatement { verb, .. } => Outcome::Isolate(format!(
                "rows changed by a statement-logged {verb} (no row events)"
            )),
            Ddl::CreateTable(_) | Ddl::DatabaseCharset { .. } | Ddl::Other => Outcome::Keep,
        })
    }

    /// A table created in the source that the selection includes: its target is created
    /// empty and it is replicated from here on (`CREATE … SELECT` rows follow as row events).
    /// A target left by an earlier table of that name (kept after its `DROP`) is replaced. After
    /// `CREATE TABLE IF NOT EXISTS`, which the server logs even when the table was there, an
    /// existing target may hold anything: the table is rebuilt from a snapshot instead
    /// (returns true).
    async fn create_table(
        &self,
        change: &SchemaChange,
        ct: &CreateTable,
        plans: &mut Vec<TablePlan>,
        applies_from: u64,
    ) -> Result<bool> {
        let name = format!("{}.{}", ct.table.0, ct.table.1);
        let charset = match &ct.charset {
            Some(c) => c.clone(),
            None => self.database_charset(&ct.table.0).await?,
        };
        let defaults = Defaults {
            charset: &charset,
            flavor: self.source.flavor,
        };
        let def = match &ct.like {
            // The copy has the columns and key the source table has at this position: the
            // definition this pipe holds for it, when it replicates it.
            Some((db, table)) => plans
                .iter()
                .find(|p| p.def.db == *db && p.def.name == *table)
                .map(|p| TableDef {
                    db: ct.table.0.clone(),
                    name: ct.table.1.clone(),
                    ..p.def.clone()
                })
                .ok_or_else(|| {
                    format!("created LIKE `{db}`.`{table}`, which this pipe does not replicate: its columns are not known here")
                }),
            None => ct.table_def(&defaults).map_err(|e| e.to_string()),
        };
        let plan = match def.and_then(|def| {
            if def.primary_key.is_empty() {
                Err(format!("{name} has no primary key"))
            } else {
                TablePlan::selected(def, &self.cfg.tables)
            }
        }) {
            Ok(plan) => plan,
            Err(reason) => {
                let reason = format!(
                    "`{}` at {}: created, but cannot be replicated: {reason}; `tributary tables resync` loads it once it can be",
                    change.statement, change.position
                );
                self.isolate(&name, &reason).await?;
                return Ok(false);
            }
        };
        if let Some(collision) = plan.collision(plans) {
            let reason = format!("`{}` at {}: {collision}", change.statement, change.position);
            self.isolate(&name, &reason).await?;
            return Ok(false);
        }
        let db = &self.cfg.target.database;
        if self.target_exists(&plan.target).await? {
            if ct.if_not_exists {
                let reason = format!(
                    "`{}` at {}: the target table already exists and the source table may have too; the table is rebuilt from a snapshot once replication has passed the change",
                    change.statement, change.position
                );
                self.isolate_until_reloaded(&name, &reason).await?;
                return Ok(true);
            }
            warn!(pipe = %self.cfg.name, table = %name, "table created again in the source: its earlier target table is replaced");
            let sql = format!("DROP TABLE IF EXISTS {}.{}", ident(db), ident(&plan.target));
            self.target.execute_sync(&sql).await?;
        }
        self.target
            .execute_sync(&create_table_sql(db, &plan))
            .await?;
        self.store.save_definition(&plan.def, applies_from).await?;
        // Created empty at this position: nothing to snapshot.
        self.store
            .save_progress(
                &name,
                &crate::state::Progress {
                    seq: 1,
                    done: true,
                    ..Default::default()
                },
            )
            .await?;
        info!(pipe = %self.cfg.name, table = %name, "table created in the source: replicated from here on");
        self.handle.update(|s| {
            s.tables.entry(name.clone()).or_default().done = true;
        });
        plans.push(plan);
        Ok(false)
    }

    async fn target_exists(&self, target: &str) -> Result<bool> {
        #[derive(Deserialize)]
        struct Row {
            n: u64,
        }
        let rows: Vec<Row> = self
            .target
            .select(
                "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                &[("db", &self.cfg.target.database), ("t", target)],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    async fn database_charset(&self, db: &str) -> Result<String> {
        let mut conn = self.source.conn().await?;
        let charset: Option<(Option<String>,)> = self
            .source
            .exec_first_as(
                &mut conn,
                "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (db,),
            )
            .await?;
        let _ = conn.disconnect().await;
        Ok(charset
            .and_then(|(c,)| c)
            .unwrap_or_else(|| "utf8mb4".into()))
    }

    /// The table's default character set, for columns an ALTER adds without one.
    async fn table_charset(&self, db: &str, table: &str) -> Result<String> {
        let mut conn = self.source.conn().await?;
        let charset: Option<(Option<String>,)> = self
            .source
            .exec_first_as(
                &mut conn,
                "SELECT c.CHARACTER_SET_NAME FROM information_schema.TABLES t \
                 JOIN information_schema.COLLATION_CHARACTER_SET_APPLICABILITY c \
                 ON c.COLLATION_NAME = t.TABLE_COLLATION \
                 WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ? LIMIT 1",
                (db, table),
            )
            .await?;
        let _ = conn.disconnect().await;
        Ok(charset
            .and_then(|(c,)| c)
            .unwrap_or_else(|| "utf8mb4".into()))
    }

    /// Whether the target already has exactly `plan`'s columns and types (a DDL replayed
    /// after a crash).
    pub(super) async fn target_has_columns(&self, plan: &TablePlan) -> Result<bool> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
            #[serde(rename = "type")]
            ty: String,
        }
        let rows: Vec<Row> = self
            .target
            .select(
                "SELECT name, type FROM system.columns WHERE database = {db:String} \
                 AND table = {t:String} AND NOT startsWith(name, '_tributary_') ORDER BY position",
                &[("db", &self.cfg.target.database), ("t", &plan.target)],
            )
            .await?;
        let have: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.ty.as_str()))
            .collect();
        let types: Vec<String> = plan.columns().map(column_type).collect();
        let want: Vec<(&str, &str)> = plan
            .columns()
            .zip(&types)
            .map(|(c, t)| (c.name.as_str(), t.as_str()))
            .collect();
        Ok(have == want)
    }
}

/// Takes `table` of pipe `pipe` out of replication with `reason`: stored (a restart keeps it
/// out), shown in its status, counted in the metrics and logged.
pub(super) async fn isolate_table(
    store: &ClickHouseStore,
    handle: &PipeHandle,
    pipe: &str,
    table: &str,
    reason: &str,
) -> Result<()> {
    warn!(pipe, table, reason, "table isolated");
    crate::metrics::error(pipe, "table_isolated");
    store.isolate(table, reason).await?;
    handle.update(|s| {
        s.tables.entry(table.to_owned()).or_default().error = Some(reason.to_owned());
    });
    Ok(())
}
