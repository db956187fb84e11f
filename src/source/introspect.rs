//! Reads the definitions of the included tables from `information_schema`.

use mysql_async::Conn;

use super::Source;
use crate::config::{TableOptions, TablesConfig};
use crate::error::{Error, Result};
use crate::schema::{ColumnRow, TableDef, TablePlan};

const SYSTEM_SCHEMAS: &str = "'mysql','information_schema','performance_schema','sys'";

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
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
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

/// The definition of `db.table`; refuses tables without a primary key or with a column
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
    let key: Vec<String> = source
        .exec_as(
            conn,
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' \
             ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        .await?;
    if key.is_empty() {
        return Err(Error::NoPrimaryKey { table: qualified });
    }
    let primary_key = key
        .iter()
        .map(|k| columns.iter().position(|c| &c.name == k))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::State(format!("{qualified}: primary key names an unknown column")))?;
    Ok(TableDef {
        db: db.to_owned(),
        name: table.to_owned(),
        columns,
        primary_key,
    })
}

/// Definitions and target plans of every included table.
pub(crate) async fn plan_tables(
    source: &Source,
    conn: &mut Conn,
    tables: &TablesConfig,
    overrides: &[(String, bool)],
) -> Result<Vec<TablePlan>> {
    let names = selected_tables(source, conn, tables, overrides).await?;
    if names.is_empty() {
        return Err(Error::NoTables {
            patterns: tables.include.clone(),
        });
    }
    let mut plans = Vec::with_capacity(names.len());
    let default = TableOptions::default();
    for (db, table) in names {
        let def = table_def(source, conn, &db, &table).await?;
        let options = tables.options.get(&def.qualified()).unwrap_or(&default);
        plans.push(TablePlan::new(def, options).map_err(Error::State)?);
    }
    Ok(plans)
}
