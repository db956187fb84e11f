//! Tests of the DDL module: each statement asserts the parsed structure; the definitions
//! they produce are checked against what introspection makes of the same columns.

mod alter;
mod apply;
mod columns;
mod planner;
mod roundtrip;
mod statements;

use super::*;
use crate::schema::{ColumnDef, SourceType, TableDef};

pub(super) const DB: &str = "shop";

pub(super) fn t(name: &str) -> TableName {
    (DB.into(), name.into())
}

pub(super) fn tn(db: &str, name: &str) -> TableName {
    (db.into(), name.into())
}

/// A nullable column of `data_type` with nothing else said.
pub(super) fn spec(name: &str, data_type: &str) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        data_type: data_type.into(),
        length: Vec::new(),
        values: Vec::new(),
        unsigned: false,
        charset: None,
        nullable: true,
        primary_key: false,
        default: None,
        generated: false,
        auto_increment: false,
    }
}

impl ColumnSpec {
    pub(super) fn len(mut self, length: &[u64]) -> Self {
        self.length = length.to_vec();
        self
    }
    pub(super) fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
    pub(super) fn unsigned(mut self) -> Self {
        self.unsigned = true;
        self
    }
    pub(super) fn charset(mut self, charset: &str) -> Self {
        self.charset = Some(charset.into());
        self
    }
    pub(super) fn default(mut self, default: ColumnDefault) -> Self {
        self.default = Some(default);
        self
    }
    pub(super) fn values(mut self, values: &[&str]) -> Self {
        self.values = values.iter().map(|v| v.to_string()).collect();
        self
    }
}

/// The changes of an `ALTER TABLE` on `shop.t` (or the table the statement names).
pub(super) fn alter_of(sql: &str) -> (TableName, Vec<Change>) {
    match classify(DB, sql) {
        Ddl::AlterTable { table, changes } => (table, changes),
        other => panic!("{sql}\n→ {other:?}"),
    }
}

pub(super) fn changes(sql: &str) -> Vec<Change> {
    let (table, changes) = alter_of(sql);
    assert_eq!(table, t("t"), "{sql}");
    changes
}

pub(super) fn one_change(sql: &str) -> Change {
    let mut all = changes(sql);
    assert_eq!(all.len(), 1, "{sql}: {all:?}");
    all.remove(0)
}

pub(super) fn add(column: ColumnSpec, position: Position) -> Change {
    Change::AddColumn {
        column,
        position,
        if_not_exists: false,
    }
}

pub(super) fn defaults(charset: &str) -> Defaults<'_> {
    Defaults {
        charset,
        flavor: ServerFlavor::Mysql,
    }
}

pub(super) fn int(bytes: u8) -> SourceType {
    SourceType::Int {
        bytes,
        unsigned: false,
    }
}

pub(super) fn col(name: &str, ty: SourceType, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        nullable,
    }
}

/// `shop.t (id INT NOT NULL PRIMARY KEY, name VARCHAR utf8mb4 NULL, qty INT NULL)`.
pub(super) fn table() -> TableDef {
    TableDef {
        db: DB.into(),
        name: "t".into(),
        columns: vec![
            col("id", int(4), false),
            col(
                "name",
                SourceType::Text {
                    charset: crate::schema::Charset::Utf8,
                },
                true,
            ),
            col("qty", int(4), true),
        ],
        primary_key: vec![0],
    }
}

/// `apply` of one ALTER statement to `def`.
pub(super) fn altered(def: &TableDef, sql: &str) -> Result<Altered, DdlError> {
    let (_, changes) = alter_of(sql);
    apply(def, &changes, &defaults("utf8mb4"))
}

pub(super) fn names(def: &TableDef) -> Vec<&str> {
    def.columns.iter().map(|c| c.name.as_str()).collect()
}
