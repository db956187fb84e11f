//! The definition a table has after an `ALTER TABLE`, computed with the server's rules.
//!
//! Invariant: the result is the definition `information_schema` shows after the statement,
//! or an error; never a guess. Order follows MySQL's `mysql_prepare_alter_table` (MariaDB's
//! is the same): `IF [NOT] EXISTS` is decided against the table as it was; drops, renames
//! and `MODIFY`/`CHANGE` match the *old* column names (so `RENAME COLUMN a TO b, RENAME COLUMN
//! b TO a` swaps); then added columns and repositioned ones are placed in statement order,
//! `AFTER x` naming a column of the *new* list; then the primary key. Column names compare
//! case-insensitively, as the server compares them. Primary key columns are NOT NULL, as
//! the server makes them. [`Altered::origin`] records, for every new column, the old one it
//! continues, so the target can rename and convert instead of dropping data.

use super::{Change, ColumnDefault, ColumnSpec, CreateTable, DdlError, Defaults, Position};
use crate::schema::{Charset, ColumnDef, SchemaError, SourceType, TableDef};

/// A definition after an `ALTER TABLE`, with how each column came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Altered {
    pub def: TableDef,
    /// Per column of `def`.
    pub origin: Vec<Origin>,
    /// The table's default charset after the statement.
    pub charset: String,
    /// Set when rows changed without row events (`DROP PARTITION`…): the target needs them
    /// copied again.
    pub rows_replaced: Option<String>,
}

/// Where a column of the new definition comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Old column `i`, values carried over (kept, renamed, moved or converted by the server).
    Kept(usize),
    /// Old column `i`, but the server recomputed its values (it became a generated column).
    Recomputed(usize),
    /// A new column; the existing rows hold this.
    Added(Backfill),
}

/// What the rows that existed before an `ADD COLUMN` hold in the new column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backfill {
    Null,
    /// The type's implicit default: 0, '', the first ENUM member, the zero date.
    Implicit,
    Number(String),
    Text(String),
    Bits(u128),
    /// Values the statement does not determine (a generated column, AUTO_INCREMENT,
    /// `DEFAULT CURRENT_TIMESTAMP`, an expression): why.
    Unknown(String),
}

fn same(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// What existing rows get in column `spec` when it is added.
fn backfill(spec: &ColumnSpec) -> Backfill {
    if spec.generated {
        return Backfill::Unknown("a generated column's values are computed by the server".into());
    }
    if spec.auto_increment {
        return Backfill::Unknown("existing rows get AUTO_INCREMENT sequence numbers".into());
    }
    match &spec.default {
        None | Some(ColumnDefault::Null) if spec.nullable => Backfill::Null,
        None | Some(ColumnDefault::Null) => Backfill::Implicit,
        Some(ColumnDefault::Number(n)) => Backfill::Number(n.clone()),
        Some(ColumnDefault::Text(t)) => Backfill::Text(t.clone()),
        Some(ColumnDefault::Bits(Some(v))) => Backfill::Bits(*v),
        Some(ColumnDefault::Bits(None)) => Backfill::Unknown("a bit literal over 128 bits".into()),
        Some(ColumnDefault::Expression(e)) => Backfill::Unknown(format!(
            "existing rows get DEFAULT {e}, computed by the server"
        )),
    }
}

struct Slot {
    col: ColumnDef,
    /// The name in the old table; `None` for an added column.
    old_name: Option<String>,
    origin: Origin,
}

/// The definition after `changes` (one `ALTER TABLE`); `defaults.charset` is the table's
/// default charset before the statement.
pub(crate) fn apply(
    def: &TableDef,
    changes: &[Change],
    defaults: &Defaults<'_>,
) -> Result<Altered, DdlError> {
    let table = def.qualified();
    let column_err = |source: SchemaError| DdlError::Column {
        table: table.clone(),
        source,
    };
    let unknown = |column: &str, change: &'static str| DdlError::UnknownColumn {
        table: table.clone(),
        column: column.to_owned(),
        change,
    };

    // Table options apply before columns: a column added in the same statement gets the new
    // default charset.
    let mut charset = defaults.charset.to_ascii_lowercase();
    let mut convert = None;
    let mut rows_replaced = None;
    let mut renamed_to = None;
    for change in changes {
        match change {
            Change::TableCharset(c) => charset = c.clone(),
            Change::ConvertCharset(c) => {
                charset = c.clone();
                convert = Some(c.clone());
            }
            Change::RowsReplaced(why) => rows_replaced = Some(why.clone()),
            Change::RenameTable(to) => renamed_to = Some(to.clone()),
            _ => {}
        }
    }
    let column_defaults = Defaults {
        charset: &charset,
        flavor: defaults.flavor,
    };

    let mut slots: Vec<Slot> = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, col)| Slot {
            col: col.clone(),
            old_name: Some(col.name.clone()),
            origin: Origin::Kept(i),
        })
        .collect();
    let mut key: Vec<String> = def.primary_key_names().map(str::to_owned).collect();

    if let Some(to) = &convert {
        let new = Charset::from_name(to);
        for slot in &mut slots {
            if let SourceType::Text { charset } = &mut slot.col.ty {
                *charset = match new {
                    Some(Charset::Binary) => {
                        return Err(DdlError::Unsupported {
                            table: table.clone(),
                            what: "CONVERT TO CHARACTER SET binary (CHAR becomes BINARY(n) of a length the definition does not keep)".into(),
                        })
                    }
                    Some(c) => c,
                    None => {
                        return Err(column_err(SchemaError::UnsupportedCharset {
                            column: slot.col.name.clone(),
                            charset: to.clone(),
                        }))
                    }
                };
            }
        }
    }

    // IF [NOT] EXISTS, decided against the table as it was.
    let existed = |name: &str| def.columns.iter().any(|c| same(&c.name, name));
    let mut added_names: Vec<&str> = Vec::new();
    let mut active = Vec::with_capacity(changes.len());
    for change in changes {
        let keep = match change {
            Change::AddColumn {
                column,
                if_not_exists,
                ..
            } => {
                let dup =
                    existed(&column.name) || added_names.iter().any(|n| same(n, &column.name));
                added_names.push(&column.name);
                !(*if_not_exists && dup)
            }
            Change::DropColumn { name, if_exists }
            | Change::ModifyColumn {
                name, if_exists, ..
            } => !*if_exists || existed(name),
            Change::AddPrimaryKey { if_not_exists, .. } => {
                !*if_not_exists || def.primary_key.is_empty()
            }
            _ => true,
        };
        if keep {
            active.push(change);
        }
    }

    // Drops, renames, redefinitions: matched against old names.
    let find_old = |slots: &[Slot], name: &str| {
        slots
            .iter()
            .position(|s| s.old_name.as_deref().is_some_and(|o| same(o, name)))
    };
    let mut moves: Vec<(usize, &Position)> = Vec::new(); // (change index, where)
    for (ci, change) in active.iter().enumerate() {
        match change {
            Change::DropColumn { name, .. } => {
                let i = find_old(&slots, name).ok_or_else(|| unknown(name, "DROP COLUMN"))?;
                let gone = slots.remove(i);
                key.retain(|k| !same(k, &gone.col.name));
            }
            Change::RenameColumn { from, to } => {
                let i = find_old(&slots, from).ok_or_else(|| unknown(from, "RENAME COLUMN"))?;
                if let Some(slot) = slots.get_mut(i) {
                    rename_key(&mut key, &slot.col.name, to);
                    slot.col.name = to.clone();
                }
            }
            Change::ModifyColumn {
                name,
                column,
                position,
                ..
            } => {
                let what = if column.name == *name {
                    "MODIFY"
                } else {
                    "CHANGE"
                };
                let i = find_old(&slots, name).ok_or_else(|| unknown(name, what))?;
                let col = column.to_column_def(&column_defaults).map_err(column_err)?;
                if let Some(slot) = slots.get_mut(i) {
                    rename_key(&mut key, &slot.col.name, &col.name);
                    if column.generated {
                        if let Origin::Kept(old) = slot.origin {
                            slot.origin = Origin::Recomputed(old);
                        }
                    }
                    slot.col = col;
                }
                if *position != Position::Default {
                    moves.push((ci, position));
                }
            }
            _ => {}
        }
    }
    check_duplicates(&slots, &table, "RENAME/CHANGE")?;

    // Added and moved columns, in statement order.
    for (ci, change) in active.iter().enumerate() {
        let (slot, position, what) = match change {
            Change::AddColumn {
                column, position, ..
            } => {
                let col = column.to_column_def(&column_defaults).map_err(column_err)?;
                if slots.iter().any(|s| same(&s.col.name, &col.name)) {
                    return Err(DdlError::DuplicateColumn {
                        table: table.clone(),
                        column: col.name,
                        change: "ADD COLUMN",
                    });
                }
                let slot = Slot {
                    col,
                    old_name: None,
                    origin: Origin::Added(backfill(column)),
                };
                (slot, position, "ADD COLUMN … AFTER")
            }
            Change::ModifyColumn { name, .. } => {
                let Some(&(_, position)) = moves.iter().find(|(i, _)| *i == ci) else {
                    continue;
                };
                let i = find_old(&slots, name).ok_or_else(|| unknown(name, "MODIFY"))?;
                (slots.remove(i), position, "MODIFY … AFTER")
            }
            _ => continue,
        };
        let at = match position {
            Position::Default => slots.len(),
            Position::First => 0,
            Position::After(x) => {
                slots
                    .iter()
                    .position(|s| same(&s.col.name, x))
                    .ok_or_else(|| unknown(x, what))?
                    + 1
            }
        };
        slots.insert(at, slot);
    }

    // The primary key, in statement order.
    for change in &active {
        match change {
            Change::DropPrimaryKey => key.clear(),
            Change::AddPrimaryKey { columns, .. } => key = columns.clone(),
            Change::AddColumn { column, .. } | Change::ModifyColumn { column, .. }
                if column.primary_key =>
            {
                key = vec![column.name.clone()]
            }
            _ => {}
        }
    }
    let primary_key = key
        .iter()
        .map(|k| {
            slots
                .iter()
                .position(|s| same(&s.col.name, k))
                .ok_or_else(|| unknown(k, "PRIMARY KEY"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (db, name) = renamed_to.unwrap_or_else(|| (def.db.clone(), def.name.clone()));
    for &i in &primary_key {
        if let Some(slot) = slots.get_mut(i) {
            slot.col.nullable = false;
        }
    }
    let origin = slots.iter().map(|s| s.origin.clone()).collect();
    Ok(Altered {
        def: TableDef {
            db,
            name,
            columns: slots.into_iter().map(|s| s.col).collect(),
            primary_key,
        },
        origin,
        charset,
        rows_replaced,
    })
}

fn rename_key(key: &mut [String], from: &str, to: &str) {
    for k in key.iter_mut() {
        if same(k, from) {
            *k = to.to_owned();
        }
    }
}

fn check_duplicates(slots: &[Slot], table: &str, change: &'static str) -> Result<(), DdlError> {
    for (i, slot) in slots.iter().enumerate() {
        if slots
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .any(|o| same(&o.col.name, &slot.col.name))
        {
            return Err(DdlError::DuplicateColumn {
                table: table.to_owned(),
                column: slot.col.name.clone(),
                change,
            });
        }
    }
    Ok(())
}

impl CreateTable {
    /// The definition of the created table; `defaults.charset` is the database's default
    /// charset (the statement's `DEFAULT CHARSET` wins). `LIKE` and `… SELECT` do not hold
    /// the complete definition and are refused.
    pub(crate) fn table_def(&self, defaults: &Defaults<'_>) -> Result<TableDef, DdlError> {
        let table = format!("{}.{}", self.table.0, self.table.1);
        if let Some((db, name)) = &self.like {
            return Err(DdlError::Unsupported {
                table,
                what: format!("CREATE TABLE … LIKE `{db}`.`{name}` (the columns are that table's)"),
            });
        }
        if self.as_select {
            return Err(DdlError::Unsupported {
                table,
                what: "CREATE TABLE … SELECT (the query adds columns)".into(),
            });
        }
        let charset = self.charset.as_deref().unwrap_or(defaults.charset);
        let column_defaults = Defaults {
            charset,
            flavor: defaults.flavor,
        };
        let mut columns = self
            .columns
            .iter()
            .map(|c| c.to_column_def(&column_defaults))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| DdlError::Column {
                table: table.clone(),
                source,
            })?;
        let primary_key = self
            .primary_key
            .iter()
            .map(|k| {
                columns
                    .iter()
                    .position(|c| same(&c.name, k))
                    .ok_or_else(|| DdlError::UnknownColumn {
                        table: table.clone(),
                        column: k.clone(),
                        change: "PRIMARY KEY",
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for &i in &primary_key {
            if let Some(c) = columns.get_mut(i) {
                c.nullable = false;
            }
        }
        Ok(TableDef {
            db: self.table.0.clone(),
            name: self.table.1.clone(),
            columns,
            primary_key,
        })
    }
}
