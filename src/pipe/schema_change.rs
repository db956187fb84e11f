//! Applies DDL from the binlog to the target, in binlog order (see [`crate::ddl`]): the
//! executor of what the DDL planner ([`crate::ddl::planner`]) decides.
//!
//! Invariant: no row written after a DDL is decoded before the DDL is applied. The CDC loop
//! flushes the rows before it, applies it here, stores the new definition, then checkpoints at
//! the DDL's end; a crash in between replays the DDL, and a target that already has the new
//! columns is left as it is. A change the target cannot follow in place (a sorting key change,
//! a narrowing type change, rows changed without row events, a statement not understood)
//! isolates that one table: it stops being replicated, its status and metrics say why, the
//! other tables continue, and a reload repairs it (by itself, for a rebuild).

use tracing::{info, warn};

use super::context::{aimed_at, Ctx};
use super::ledger::Ledger;
use super::tables::Phase;
use crate::binlog::events::SchemaChange;
use crate::clickhouse::sql::{create_table_sql, ident};
use crate::config::OnSourceDrop;
use crate::ddl::planner::{self, membership, truncate_sql, Membership, Migration};
use crate::ddl::{self, CreateTable, Ddl, Defaults, TableName};
use crate::error::Result;
use crate::schema::{TableDef, TablePlan};
use crate::state::{Progress, StateStore};

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

/// Applies `change` to the target and to the pipe's tables (some may leave them). `view`
/// names the tables by the index the decoder gave them. `applies_from` is the sequence of the
/// checkpoint written right after the change: the new definitions are stored as in force
/// from it. Returns whether a table awaits a rebuild (a reload waiting for CDC to pass the
/// source's position now).
pub(super) async fn apply<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    change: &SchemaChange,
    view: &[String],
    applies_from: u64,
) -> Result<bool> {
    if let Ddl::CreateTable(ct) = &change.ddl {
        return created(ctx, ledger, change, ct, applies_from).await;
    }
    // A table its rows isolated since the decoder was built is not followed any more.
    let touched: Vec<String> = change
        .tables
        .iter()
        .filter_map(|&i| view.get(i))
        .filter(|name| ledger.tables.replicates(name))
        .cloned()
        .collect();
    let known: Vec<String> = ledger
        .tables
        .replicated()
        .into_iter()
        .map(|(name, _)| name.to_owned())
        .collect();
    // The tables this change leaves as they are, whose targets a renamed table must not
    // take (the tables it touches all move together, a swap included).
    let others: Vec<TablePlan> = ledger
        .tables
        .replicated()
        .into_iter()
        .filter(|(name, _)| !touched.iter().any(|t| t == name))
        .map(|(_, plan)| plan.clone())
        .collect();
    let mut outcomes = Vec::new();
    for name in touched {
        outcomes.push((
            name.clone(),
            follow(ctx, ledger, change, &name, &others).await?,
        ));
    }
    let mut rebuild = settle(ctx, ledger, change, outcomes, applies_from).await?;
    if let Ddl::Unparsed { tables, reason } = &change.ddl {
        isolate_unparsed(ctx, ledger, change, tables, reason, &known).await?;
    }
    if let Ddl::RenameTables(pairs) = &change.ddl {
        rebuild |= renamed_into_selection(ctx, ledger, change, pairs).await?;
    }
    Ok(rebuild)
}

/// Brings the tables to their outcomes: the replaced ones all at once (a swap of names),
/// then the others. Returns whether one awaits a rebuild.
async fn settle<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    change: &SchemaChange,
    outcomes: Vec<(String, Outcome)>,
    applies_from: u64,
) -> Result<bool> {
    let mut replaced = Vec::new();
    let mut rebuild = false;
    for (table, outcome) in &outcomes {
        if let Outcome::Replace(plan) = outcome {
            ctx.store.save_definition(&plan.def, applies_from).await?;
            replaced.push((table.clone(), plan.clone()));
        }
    }
    carry_progress(ctx, &replaced).await?;
    for step in ledger.tables.follow(replaced) {
        ledger.apply(step).await?;
    }
    let at = |what: String| format!("`{}` at {}: {what}", change.statement, change.position);
    for (table, outcome) in outcomes {
        match outcome {
            Outcome::Keep | Outcome::Replace(_) => {}
            Outcome::Stop => {
                info!(pipe = %ctx.name(), table = %table, statement = %change.statement, "table dropped or renamed away in the source: no longer replicated");
                // A reload of it in progress has nothing left to swap in.
                let step = ledger.tables.remove(&table);
                ledger.apply(step).await?;
            }
            Outcome::Isolate(reason) => {
                let reason = at(format!(
                    "{reason}; the table is no longer replicated until a resync"
                ));
                ledger.isolate(&table, reason, false).await?;
            }
            Outcome::Rebuild(reason) => {
                let reason = at(format!("{reason}; the table is rebuilt from a snapshot once replication has passed the change"));
                ledger.isolate(&table, reason, true).await?;
                rebuild = true;
            }
        }
    }
    Ok(rebuild)
}

/// Tables followed under a new name keep what was loaded under the old one (not to be
/// loaded again), in the store and in the status.
async fn carry_progress<S: StateStore>(
    ctx: &Ctx<S>,
    replaced: &[(String, TablePlan)],
) -> Result<()> {
    let renamed: Vec<(&str, String)> = replaced
        .iter()
        .map(|(old, plan)| (old.as_str(), plan.def.qualified()))
        .filter(|(old, new)| old != new)
        .collect();
    // Read before any is written: two names may swap.
    let mut loaded = Vec::new();
    for (old, _) in &renamed {
        loaded.push(ctx.store.progress(old).await?);
    }
    for ((_, new), progress) in renamed.iter().zip(&loaded) {
        ctx.store.save_progress(new, progress).await?;
    }
    ctx.handle.update(|s| {
        let moved: Vec<_> = renamed
            .iter()
            .map(|(old, new)| (new.clone(), s.tables.remove(*old)))
            .collect();
        for (new, shown) in moved {
            if let Some(shown) = shown {
                s.tables.insert(new, shown);
            }
        }
    });
    Ok(())
}

/// A selected table the pipe does not replicate yet (one this statement creates), named by
/// a statement not understood: never passed over silently.
async fn isolate_unparsed<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    change: &SchemaChange,
    tables: &[TableName],
    reason: &str,
    known: &[String],
) -> Result<()> {
    for (db, name) in tables {
        let table = format!("{db}.{name}");
        if known.contains(&table) || !ctx.cfg.tables.matches(db, name) {
            continue;
        }
        let reason = format!(
            "`{}` at {}: statement not understood ({reason}); not replicated until `tributary tables resync`",
            change.statement, change.position
        );
        ledger.isolate(&table, reason, false).await?;
    }
    Ok(())
}

/// Tables renamed into the selection from outside it (after the renames above took effect)
/// were never copied: they are loaded once CDC has passed the rename. Returns whether there
/// is one.
async fn renamed_into_selection<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    change: &SchemaChange,
    pairs: &[(TableName, TableName)],
) -> Result<bool> {
    let mut rebuild = false;
    for (from, to) in pairs {
        let replicated =
            |name: &TableName| ledger.tables.replicated_plan(&name.0, &name.1).is_some();
        if replicated(from) || replicated(to) || !ctx.cfg.tables.matches(&to.0, &to.1) {
            continue;
        }
        let table = format!("{}.{}", to.0, to.1);
        let reason = format!(
            "`{}` at {}: renamed into the selection; copied from a snapshot once replication has passed the rename",
            change.statement, change.position
        );
        ledger.isolate(&table, reason, true).await?;
        rebuild = true;
    }
    Ok(rebuild)
}

/// What `change` does to the replicated table `name`.
async fn follow<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &Ledger<S>,
    change: &SchemaChange,
    name: &str,
    others: &[TablePlan],
) -> Result<Outcome> {
    let Some(entry) = ledger.tables.get(name) else {
        return Ok(Outcome::Keep);
    };
    let Some(plan) = entry.plan.as_ref() else {
        return Ok(Outcome::Keep);
    };
    if entry.phase == Phase::Loading {
        match &change.ddl {
            // Its initial load reads it as planned, beside CDC: its rows would not follow the
            // change. It is loaded again, with its new definition, once CDC has passed it.
            Ddl::AlterTable { .. } | Ddl::Truncate(_) | Ddl::RowsByStatement { .. } => {
                let reason = "changed in the source while it was loaded";
                return Ok(Outcome::Rebuild(reason.into()));
            }
            // Its load reads the old name: it leaves under it, and the new name (if selected)
            // is loaded once CDC has passed the rename (see `renamed_into_selection`).
            Ddl::RenameTables(_) => return Ok(Outcome::Stop),
            _ => {}
        }
    }
    // Rows go into the copy of a table reloading: the copy is what follows the change.
    let (written, reloading) = match &entry.phase {
        Phase::Reloading { copy, .. } => (aimed_at(plan, copy), true),
        _ => (plan.clone(), false),
    };
    Ok(match &change.ddl {
        Ddl::AlterTable { table, changes } => {
            let alter = Alter {
                plan,
                written: &written,
                reloading,
            };
            follow_alter(ctx, change, alter, table, changes).await?
        }
        Ddl::Truncate(_) => {
            let sql = truncate_sql(ctx.db(), &written);
            ctx.target.execute_sync(&sql).await?;
            info!(pipe = %ctx.name(), table = %name, "truncated in the source: target emptied");
            Outcome::Keep
        }
        Ddl::DropTable(_) | Ddl::DropDatabase(_) => {
            if ctx.cfg.tables.on_source_drop == OnSourceDrop::Drop {
                let sql = format!("DROP TABLE IF EXISTS {}", ctx.quoted(&plan.target));
                ctx.target.execute_sync(&sql).await?;
                info!(pipe = %ctx.name(), table = %name, "target table dropped (tables.on_source_drop = \"drop\")");
            }
            Outcome::Stop
        }
        Ddl::RenameTables(pairs) => follow_rename(ctx, plan, pairs, others).await?,
        Ddl::Unparsed { reason, .. } => {
            Outcome::Isolate(format!("statement not understood: {reason}"))
        }
        Ddl::RowsByStatement { verb, .. } => Outcome::Isolate(format!(
            "rows changed by a statement-logged {verb} (no row events)"
        )),
        Ddl::CreateTable(_) | Ddl::DatabaseCharset { .. } | Ddl::Other => Outcome::Keep,
    })
}

/// The table an `ALTER TABLE` changes.
struct Alter<'a> {
    plan: &'a TablePlan,
    /// Its plan aimed at where its rows go: its target, or its copy while it reloads.
    written: &'a TablePlan,
    reloading: bool,
}

/// An `ALTER TABLE` of `alter.plan`, applied to where its rows go.
async fn follow_alter<S: StateStore>(
    ctx: &Ctx<S>,
    change: &SchemaChange,
    alter: Alter<'_>,
    table: &TableName,
    changes: &[ddl::Change],
) -> Result<Outcome> {
    let Alter {
        plan,
        written,
        reloading,
    } = alter;
    let charset = table_charset(ctx, &table.0, &table.1).await?;
    let defaults = Defaults {
        charset: &charset,
        flavor: ctx.source.flavor,
    };
    let altered = match ddl::apply(&plan.def, changes, &defaults) {
        Ok(altered) => altered,
        // A table reloading into its copy was planned with the source's definition when its
        // reload started, which may already include a DDL that CDC meets only now: rebuilt
        // once replication has passed it, not left isolated.
        Err(e) if reloading => return Ok(Outcome::Rebuild(e.to_string())),
        Err(e) => return Ok(Outcome::Isolate(e.to_string())),
    };
    let new = match TablePlan::selected(altered.def.clone(), &ctx.cfg.tables) {
        Ok(new) => new,
        Err(e) => return Ok(Outcome::Isolate(e)),
    };
    let new_written = aimed_at(&new, &written.target);
    match planner::alter(ctx.db(), written, &new_written, &altered) {
        Migration::InPlace(statements) => {
            if !ctx.target_has_columns(&new_written).await? {
                for sql in &statements {
                    match ctx.target.execute_sync(sql).await {
                        // ClickHouse refused a change planned as in place: the table is
                        // rebuilt rather than the pipe stopped.
                        Err(e) if !e.is_transient() => {
                            let reason = format!("ClickHouse refused `{sql}` ({e})");
                            return Ok(Outcome::Rebuild(reason));
                        }
                        other => other?,
                    }
                }
            }
            info!(pipe = %ctx.name(), table = %plan.def.qualified(), statement = %change.statement, applied = statements.len(), "schema change followed");
            Ok(Outcome::Replace(new))
        }
        Migration::Rebuild { reason } => Ok(Outcome::Rebuild(reason)),
    }
}

/// A `RENAME TABLE` chain: the table follows it within the selection, or leaves it.
async fn follow_rename<S: StateStore>(
    ctx: &Ctx<S>,
    plan: &TablePlan,
    pairs: &[(TableName, TableName)],
    others: &[TablePlan],
) -> Result<Outcome> {
    // Renames apply left to right: follow this table through the chain.
    let mut name = (plan.def.db.clone(), plan.def.name.clone());
    for (from, to) in pairs {
        if *from == name {
            name = to.clone();
        }
    }
    let from = (plan.def.db.clone(), plan.def.name.clone());
    if membership(&ctx.cfg.tables, &from, &name) != Membership::Stays {
        return Ok(Outcome::Stop);
    }
    let def = TableDef {
        db: name.0.clone(),
        name: name.1.clone(),
        ..plan.def.clone()
    };
    let new = match TablePlan::selected(def, &ctx.cfg.tables) {
        Ok(new) => new,
        Err(e) => return Ok(Outcome::Isolate(e)),
    };
    if let Some(collision) = new.collision(others) {
        return Ok(Outcome::Isolate(collision));
    }
    if new.target != plan.target && !ctx.target_has_columns(&new).await? {
        let db = ident(ctx.db());
        let sql = format!(
            "RENAME TABLE {db}.{} TO {db}.{}",
            ident(&plan.target),
            ident(&new.target)
        );
        ctx.target.execute_sync(&sql).await?;
    }
    info!(pipe = %ctx.name(), from = %plan.def.qualified(), to = %new.def.qualified(), "table renamed in the source: followed");
    Ok(Outcome::Replace(new))
}

/// A table created in the source that the selection includes: its target is created
/// empty and it is replicated from here on (`CREATE … SELECT` rows follow as row events).
/// A target left by an earlier table of that name (kept after its `DROP`) is replaced. After
/// `CREATE TABLE IF NOT EXISTS`, which the server logs even when the table was there, an
/// existing target may hold anything: the table is rebuilt from a snapshot instead
/// (returns true).
async fn created<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &mut Ledger<S>,
    change: &SchemaChange,
    ct: &CreateTable,
    applies_from: u64,
) -> Result<bool> {
    let name = format!("{}.{}", ct.table.0, ct.table.1);
    let at = |what: String| format!("`{}` at {}: {what}", change.statement, change.position);
    let plan = match created_plan(ctx, ledger, ct).await? {
        Ok(plan) => plan,
        Err(reason) => {
            let reason = at(format!("created, but cannot be replicated: {reason}; `tributary tables resync` loads it once it can be"));
            ledger.isolate(&name, reason, false).await?;
            return Ok(false);
        }
    };
    if let Some(collision) = plan.collision(&ledger.tables.plans()) {
        ledger.isolate(&name, at(collision), false).await?;
        return Ok(false);
    }
    if ctx.target_exists(&plan.target).await? {
        if ct.if_not_exists {
            let reason = at("the target table already exists and the source table may have too; the table is rebuilt from a snapshot once replication has passed the change".into());
            ledger.isolate(&name, reason, true).await?;
            return Ok(true);
        }
        warn!(pipe = %ctx.name(), table = %name, "table created again in the source: its earlier target table is replaced");
        let sql = format!("DROP TABLE IF EXISTS {}", ctx.quoted(&plan.target));
        ctx.target.execute_sync(&sql).await?;
    }
    ctx.target
        .execute_sync(&create_table_sql(ctx.db(), &plan))
        .await?;
    ctx.store.save_definition(&plan.def, applies_from).await?;
    // Created empty at this position: nothing to snapshot.
    let progress = Progress {
        seq: 1,
        done: true,
        ..Progress::default()
    };
    ctx.store.save_progress(&name, &progress).await?;
    info!(pipe = %ctx.name(), table = %name, "table created in the source: replicated from here on");
    ctx.handle.update(|s| {
        s.tables.entry(name.clone()).or_default().done = true;
    });
    let step = ledger.tables.add(plan);
    ledger.apply(step).await?;
    Ok(false)
}

/// The plan of a created table, or why it cannot be replicated.
async fn created_plan<S: StateStore>(
    ctx: &Ctx<S>,
    ledger: &Ledger<S>,
    ct: &CreateTable,
) -> Result<Result<TablePlan, String>> {
    let charset = match &ct.charset {
        Some(c) => c.clone(),
        None => database_charset(ctx, &ct.table.0).await?,
    };
    let defaults = Defaults {
        charset: &charset,
        flavor: ctx.source.flavor,
    };
    let def = match &ct.like {
        // The copy has the columns and key the source table has at this position: the
        // definition this pipe holds for it, when it replicates it.
        Some((db, table)) => ledger
            .tables
            .replicated_plan(db, table)
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
    Ok(def.and_then(|def| TablePlan::selected(def, &ctx.cfg.tables)))
}

async fn database_charset<S: StateStore>(ctx: &Ctx<S>, db: &str) -> Result<String> {
    let mut conn = ctx.source.conn().await?;
    let charset: Option<(Option<String>,)> = ctx
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
async fn table_charset<S: StateStore>(ctx: &Ctx<S>, db: &str, table: &str) -> Result<String> {
    let mut conn = ctx.source.conn().await?;
    let charset: Option<(Option<String>,)> = ctx
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
