//! Reads the definitions of the included tables from `information_schema`.

use mysql_async::Conn;

use super::Source;
use crate::config::TablesConfig;
use crate::error::{Error, Result};
use crate::schema::{ColumnRow, TableDef, TablePlan};

/// Schemas of the server itself: never replicated.
pub(crate) const SYSTEM_SCHEMAS: [&str; 4] =
    ["mysql", "information_schema", "performance_schema", "sys"];

/// Every base table the include/exclude patterns select, sorted by name.
pub(crate) async fn matching_tables(
    source: &Source,
    conn: &mut Conn,
    tables: &TablesConfig,
) -> Result<Vec<(String, String)>> {
    selected_tables(source, conn, tables, &[]).await
}

/// The tables the patterns select, with `overrides` (qualified name, included) applied on top.
pub(crate) async fn selected_tables(
    source: &Source,
    conn: &mut Conn,
    tables: &TablesConfig,
    overrides: &[(String, bool)],
) -> Result<Vec<(String, String)>> {
    let system = SYSTEM_SCHEMAS.map(|s| format!("'{s}'")).join(",");
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({system}) \
         ORDER BY TABLE_SCHEMA, TABLE_NAME"
    );
    let all: Vec<(String, String)> = source.query_as(conn, &sql).await?;
    Ok(all
        .into_iter()
        .filter(|(db, t)| {
            let name = format!("{db}.{t}");
            match overrides.iter().find(|(o, _)| *o == name) {
                Some((_, included)) => *included,
                None => tables.matches(db, t),
            }
        })
        .collect())
}

/// The definition of `db.table` (its primary key empty if it has none); refuses a column
/// tributary cannot map exactly.
pub(crate) async fn table_def(
    source: &Source,
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<TableDef> {
    let qualified = format!("{db}.{table}");
    type ColumnTuple = (
        String,
        String,
        String,
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        String,
    );
    let rows: Vec<ColumnTuple> = source
        .exec_as(
            conn,
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, DATETIME_PRECISION, \
             NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let columns = rows
        .into_iter()
        .map(
            |(name, data_type, column_type, charset, dtp, np, ns, len, nullable)| {
                ColumnRow {
                    name,
                    data_type,
                    column_type,
                    charset,
                    datetime_precision: dtp,
                    numeric_precision: np,
                    numeric_scale: ns,
                    character_length: len,
                    nullable: nullable.eq_ignore_ascii_case("YES"),
                }
                .parse()
            },
        )
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Schema {
            table: qualified.clone(),
            source,
        })?;
    if columns.is_empty() {
        return Err(Error::TableNotFound { table: qualified });
    }
    let key: Vec<String> = source
        .exec_as(
            conn,
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' \
             ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        .await?;
    let primary_key = key
        .iter()
        .map(|k| columns.iter().position(|c| &c.name == k))
        .collect::<Option<Vec<_>>>()
        .ok_or(Error::UnknownKeyColumn { table: qualified })?;
    Ok(TableDef {
        db: db.to_owned(),
        name: table.to_owned(),
        columns,
        primary_key,
    })
}

/// The included tables: the plans of those that can be replicated, and the others with why
/// not (no primary key, a type or option tributary cannot follow), to be isolated while the
/// rest replicate.
pub(crate) struct Planned {
    pub plans: Vec<TablePlan>,
    pub rejected: Vec<(String, String)>,
}

/// Definitions and target plans of every included table. Fails when two would be written
/// into one target table, unless one of them is `isolated` already (a table created later
/// under a taken name): that one stays out. No table to replicate is no error: the pipe
/// replicates the selected tables created from then on.
pub(crate) async fn plan_tables(
    source: &Source,
    conn: &mut Conn,
    tables: &TablesConfig,
    overrides: &[(String, bool)],
    isolated: &[String],
) -> Result<Planned> {
    let names = selected_tables(source, conn, tables, overrides).await?;
    let mut planned = Planned {
        plans: Vec::with_capacity(names.len()),
        rejected: Vec::new(),
    };
    for (db, table) in names {
        let plan = match table_def(source, conn, &db, &table).await {
            Ok(def) => TablePlan::selected(def, tables),
            Err(e @ Error::Schema { .. }) => Err(e.to_string()),
            // Dropped since it was listed: nothing to replicate.
            Err(Error::TableNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        match plan {
            Ok(plan) => planned.plans.push(plan),
            Err(reason) => planned.rejected.push((format!("{db}.{table}"), reason)),
        }
    }
    // Tables that replicate claim their target names before isolated ones.
    let is_isolated = |p: &TablePlan| isolated.contains(&p.def.qualified());
    planned.plans.sort_by_key(|p| is_isolated(p));
    let mut collisions = Vec::new();
    for plan in std::mem::take(&mut planned.plans) {
        match plan.collision(&planned.plans) {
            None => planned.plans.push(plan),
            Some(reason) if is_isolated(&plan) => {
                planned.rejected.push((plan.def.qualified(), reason));
            }
            Some(reason) => collisions.push(reason),
        }
    }
    planned
        .plans
        .sort_by(|a, b| (&a.def.db, &a.def.name).cmp(&(&b.def.db, &b.def.name)));
    if !collisions.is_empty() {
        return Err(Error::Selection(collisions.join("; ")));
    }
    Ok(planned)
}
