//! The SQL the ClickHouse writer executes for target tables (pure): type mapping, names,
//! `CREATE TABLE` and `INSERT`.
//!
//! Every target table of a keyed source table is a
//! `ReplacingMergeTree(_tributary_version, _tributary_is_deleted)` ordered by the source
//! primary key, so that for each key the row with the highest version is the current state
//! and a delete is a row with `_tributary_is_deleted = 1`.
//!
//! A table without a primary key replicated append-only is a `ReplacingMergeTree` ordered by
//! `(_tributary_version, _tributary_row)`: each change is its own row with its kind in
//! `_tributary_op`, and only a row written twice (the same change replayed after a crash)
//! collapses. Snapshot rows share version 0 and are told apart by `_tributary_row`.

use crate::schema::{ColumnDef, SourceType, TablePlan};

pub(crate) const VERSION_COLUMN: &str = "_tributary_version";
pub(crate) const DELETED_COLUMN: &str = "_tributary_is_deleted";
pub(crate) const SYNCED_AT_COLUMN: &str = "_tributary_synced_at";
pub(crate) const ROW_COLUMN: &str = "_tributary_row";
pub(crate) const OP_COLUMN: &str = "_tributary_op";

/// The kind of change an append-only row records (`_tributary_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Snapshot = 0,
    Insert = 1,
    Update = 2,
    Delete = 3,
}

const OP_TYPE: &str = "Enum8('snapshot' = 0, 'insert' = 1, 'update' = 2, 'delete' = 3)";

/// The metadata columns a row carries after its source columns, by its table's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meta {
    /// A keyed table's row: the key's state, or its delete.
    Keyed { deleted: bool },
    /// An append-only table's row: one change; `row` numbers the rows of a snapshot, which
    /// share version 0 (0 for a binlog change, whose version is its own).
    Append { change: Change, row: u64 },
}

impl Meta {
    /// Writes the metadata columns in [`insert_sql`]'s order.
    pub fn put(self, out: &mut Vec<u8>, version: u64) {
        out.extend_from_slice(&version.to_le_bytes());
        match self {
            Meta::Keyed { deleted } => out.push(u8::from(deleted)),
            Meta::Append { change, row } => {
                out.extend_from_slice(&row.to_le_bytes());
                out.push(change as u8);
            }
        }
    }
}

/// The ClickHouse type of a source column, without `Nullable`.
pub(crate) fn base_type(ty: &SourceType) -> String {
    match ty {
        SourceType::Int { bytes, unsigned } => {
            let bits = match bytes {
                1 => 8,
                2 => 16,
                3 | 4 => 32,
                _ => 64,
            };
            format!("{}Int{bits}", if *unsigned { "U" } else { "" })
        }
        SourceType::Decimal { precision, scale } => {
            // ClickHouse needs at least one digit of precision and scale <= precision.
            let precision = (*precision).max(1);
            format!("Decimal({precision}, {})", (*scale).min(precision))
        }
        SourceType::Float => "Float32".into(),
        SourceType::Double => "Float64".into(),
        SourceType::Bit { .. } => "UInt64".into(),
        SourceType::Text { .. }
        | SourceType::Binary
        | SourceType::FixedBinary { .. }
        | SourceType::Set { .. }
        | SourceType::Json
        | SourceType::Geometry => "String".into(),
        SourceType::Enum { .. } => "LowCardinality(String)".into(),
        SourceType::Date => "Date32".into(),
        // DATETIME is a wall-clock value: stored as that wall clock read as UTC, so that it is
        // displayed unchanged whatever the ClickHouse server's time zone.
        SourceType::DateTime { fsp } | SourceType::Timestamp { fsp } => {
            format!("DateTime64({fsp}, 'UTC')")
        }
        SourceType::Time { .. } => "Int64".into(),
        SourceType::Year => "UInt16".into(),
        SourceType::Uuid => "UUID".into(),
        SourceType::Inet4 => "IPv4".into(),
        SourceType::Inet6 => "IPv6".into(),
    }
}

pub(crate) fn column_type(col: &ColumnDef) -> String {
    let base = base_type(&col.ty);
    if !col.nullable {
        return base;
    }
    // LowCardinality must wrap Nullable, not the other way round.
    match base.strip_prefix("LowCardinality(") {
        Some(inner) => format!("LowCardinality(Nullable({})", inner),
        None => format!("Nullable({base})"),
    }
}

/// Quotes an identifier for ClickHouse SQL.
pub(crate) fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('`');
    out
}

pub(crate) fn create_database_sql(db: &str) -> String {
    format!("CREATE DATABASE IF NOT EXISTS {}", ident(db))
}

/// `CREATE TABLE IF NOT EXISTS` for the target of a planned table.
pub(crate) fn create_table_sql(target_db: &str, plan: &TablePlan) -> String {
    let order_by = &plan.order_by;
    let mut columns: Vec<String> = plan
        .columns()
        .map(|c| format!("    {} {}", ident(&c.name), column_type(c)))
        .collect();
    columns.push(format!("    {VERSION_COLUMN} UInt64"));
    if plan.append {
        columns.push(format!("    {ROW_COLUMN} UInt64"));
        columns.push(format!("    {OP_COLUMN} {OP_TYPE}"));
    } else {
        columns.push(format!("    {DELETED_COLUMN} UInt8"));
    }
    columns.push(format!(
        "    {SYNCED_AT_COLUMN} DateTime64(3) DEFAULT now64(3)"
    ));
    if plan.append {
        return format!(
            "CREATE TABLE IF NOT EXISTS {}.{} (\n{}\n) ENGINE = ReplacingMergeTree\nORDER BY ({VERSION_COLUMN}, {ROW_COLUMN})",
            ident(target_db),
            ident(&plan.target),
            columns.join(",\n"),
        );
    }
    let order: Vec<String> = order_by.iter().map(|c| ident(c)).collect();
    // A nullable key column needs allow_nullable_key; nullable keys only arise from a custom
    // order_by since primary key columns are NOT NULL in MySQL.
    let nullable_key = plan
        .columns()
        .any(|c| c.nullable && order_by.contains(&c.name));
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\n{}\n) ENGINE = ReplacingMergeTree({VERSION_COLUMN}, {DELETED_COLUMN})\nORDER BY ({}){}",
        ident(target_db),
        ident(&plan.target),
        columns.join(",\n"),
        order.join(", "),
        if nullable_key {
            "\nSETTINGS allow_nullable_key = 1"
        } else {
            ""
        }
    )
}

/// The column list of an insert into a target table, in RowBinary order.
pub(crate) fn insert_sql(target_db: &str, plan: &TablePlan) -> String {
    let mut cols: Vec<String> = plan.columns().map(|c| ident(&c.name)).collect();
    cols.push(VERSION_COLUMN.into());
    if plan.append {
        cols.push(ROW_COLUMN.into());
        cols.push(OP_COLUMN.into());
    } else {
        cols.push(DELETED_COLUMN.into());
    }
    format!(
        "INSERT INTO {}.{} ({}) FORMAT RowBinary",
        ident(target_db),
        ident(&plan.target),
        cols.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Keyless, TableOptions};
    use crate::schema::{Charset, TableDef};

    fn col(name: &str, ty: SourceType, nullable: bool) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            ty,
            nullable,
        }
    }

    #[test]
    fn mapping_is_exact() {
        let cases = [
            (
                SourceType::Int {
                    bytes: 3,
                    unsigned: true,
                },
                "UInt32",
            ),
            (
                SourceType::Int {
                    bytes: 8,
                    unsigned: false,
                },
                "Int64",
            ),
            (
                SourceType::Decimal {
                    precision: 65,
                    scale: 30,
                },
                "Decimal(65, 30)",
            ),
            (SourceType::Float, "Float32"),
            (SourceType::Timestamp { fsp: 6 }, "DateTime64(6, 'UTC')"),
            (SourceType::Date, "Date32"),
            (
                SourceType::Enum { values: vec![] },
                "LowCardinality(String)",
            ),
        ];
        for (ty, expected) in cases {
            assert_eq!(base_type(&ty), expected);
        }
        assert_eq!(
            column_type(&col("e", SourceType::Enum { values: vec![] }, true)),
            "LowCardinality(Nullable(String))"
        );
        assert_eq!(
            column_type(&col(
                "t",
                SourceType::Text {
                    charset: Charset::Utf8
                },
                true
            )),
            "Nullable(String)"
        );
    }

    #[test]
    fn identifiers_are_escaped() {
        assert_eq!(ident("we`ird\\"), "`we\\`ird\\\\`");
    }

    #[test]
    fn create_table_orders_by_key() {
        let table = TableDef {
            db: "shop".into(),
            name: "orders".into(),
            columns: vec![
                col(
                    "id",
                    SourceType::Int {
                        bytes: 8,
                        unsigned: true,
                    },
                    false,
                ),
                col(
                    "note",
                    SourceType::Text {
                        charset: Charset::Utf8,
                    },
                    true,
                ),
            ],
            primary_key: vec![0],
        };
        let plan = TablePlan::new(table.clone(), &TableOptions::default(), Keyless::Isolate)
            .expect("valid plan");
        let sql = create_table_sql("tgt", &plan);
        assert!(sql.contains("`id` UInt64"));
        assert!(sql.contains("`note` Nullable(String)"));
        assert!(sql.contains("ReplacingMergeTree(_tributary_version, _tributary_is_deleted)"));
        assert!(sql.ends_with("ORDER BY (`id`)"));
        assert_eq!(
            insert_sql("tgt", &plan),
            "INSERT INTO `tgt`.`orders` (`id`, `note`, _tributary_version, _tributary_is_deleted) FORMAT RowBinary"
        );
    }

    #[test]
    fn a_keyless_table_is_appended_in_version_order() {
        let table = TableDef {
            db: "app".into(),
            name: "events".into(),
            columns: vec![col(
                "msg",
                SourceType::Text {
                    charset: Charset::Utf8,
                },
                true,
            )],
            primary_key: vec![],
        };
        let refused = TablePlan::new(table.clone(), &TableOptions::default(), Keyless::Isolate);
        assert!(refused.unwrap_err().contains("has no primary key"));
        let plan = TablePlan::new(table, &TableOptions::default(), Keyless::Append).unwrap();
        let sql = create_table_sql("tgt", &plan);
        assert!(sql.contains(
            "_tributary_op Enum8('snapshot' = 0, 'insert' = 1, 'update' = 2, 'delete' = 3)"
        ));
        assert!(!sql.contains(DELETED_COLUMN));
        assert!(sql.ends_with(
            "ENGINE = ReplacingMergeTree\nORDER BY (_tributary_version, _tributary_row)"
        ));
        assert_eq!(
            insert_sql("tgt", &plan),
            "INSERT INTO `tgt`.`events` (`msg`, _tributary_version, _tributary_row, _tributary_op) FORMAT RowBinary"
        );
        let mut out = Vec::new();
        Meta::Append {
            change: Change::Delete,
            row: 0,
        }
        .put(&mut out, 7);
        assert_eq!(out, [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    }
}
