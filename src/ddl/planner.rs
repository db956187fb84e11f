//! The ClickHouse DDL planner (pure): the statements that make the target follow a source
//! DDL, or the verdict that they cannot. The pipe executes them (`pipe::schema_change`).
//!
//! **Invariant: after the statements run, the target table holds exactly what a fresh
//! `create_table_sql` + snapshot of the new definition would hold**: the same column types
//! (so RowBinary inserts of the new definition fit), and for every existing row the value the
//! source now has. When ClickHouse cannot get there in place, the answer is
//! [`Migration::Rebuild`] with the reason, never an approximation.
//!
//! Rules per DDL kind ([`Ddl`](super::Ddl) variant → target):
//!
//! | source DDL | target |
//! |---|---|
//! | `ALTER TABLE` | [`alter`]: in order `RENAME TABLE` (the target name changed), `DROP COLUMN`, `RENAME COLUMN` (through temporary names when names swap), `UPDATE … WHERE c IS NULL` then `MODIFY COLUMN` (type or nullability), `ADD COLUMN … [DEFAULT v] FIRST/AFTER`, and `MODIFY COLUMN … AFTER` for moved columns (fewest moves). Rebuild: the sorting key changes (primary key / `order_by`: added, dropped, reordered or renamed key column, or a type change of one — ClickHouse cannot alter a sorting key's columns); a type change that is not an exact widening (below); a new column whose existing values the statement does not determine (generated, `AUTO_INCREMENT`, `DEFAULT CURRENT_TIMESTAMP` or another expression, a `TIMESTAMP` literal read in the session time zone); a column that starts being replicated (its values were never copied); rows changed without row events (`DROP`/`TRUNCATE PARTITION`, `IMPORT TABLESPACE`). |
//! | `ALTER TABLE` with only [`Change::Metadata`](super::Change) | nothing. |
//! | `TRUNCATE` | [`truncate_sql`]. |
//! | `DROP TABLE` | [`drop_sql`]: the source rows are gone; a later `CREATE` starts empty. |
//! | `RENAME TABLE a TO b` | [`membership`]: `Stays` → [`alter`] with the definition from [`apply`](super::apply) of [`Change::RenameTable`](super::Change) (a `RENAME TABLE` when the target name follows the source name); `Enters` → the table was never copied: snapshot it; `Leaves` → stop replicating it (the target is left as it is); `Outside` → nothing. |
//! | `CREATE TABLE` of a selected table | `create_table_sql` of its plan; it is empty at this position, so no snapshot. `LIKE` copies the definition the pipe holds for a replicated source table; a statement-logged `… SELECT` and a `LIKE` of a table the pipe does not replicate leave the new table unreplicated, with a warning (`tables add` takes it). |
//! | `DROP DATABASE` | [`drop_sql`] for each replicated table of it. |
//!
//! Type changes applied in place (`MODIFY COLUMN`, or nothing when the ClickHouse type stays):
//! integers to a wider or same-width type that holds every value (`Int32`→`Int64`,
//! `UInt32`→`Int64`, `MEDIUMINT`→`INT` is no change); `Decimal(p,s)`→`Decimal(p2,s2)` with
//! `s2 >= s` and `p2-s2 >= p-s`; `FLOAT`→`DOUBLE`; `BIT(n)`→`BIT(m≥n)`; any text→text
//! (charset and length changes: the target already holds UTF-8); UTF-8 text↔`VARBINARY` (not
//! ascii: its bytes above 0x7F are `?` in the target);
//! `BINARY(n)`→`VARBINARY`; text/ENUM→ENUM, ENUM→text/SET, SET→text; `DATE`→`DATETIME`;
//! `DATETIME`/`TIMESTAMP`/`TIME` to a larger fractional precision; `X`→`Nullable(X)` and
//! back. `NULL`→`NOT NULL` is a `MODIFY … DEFAULT <the type's implicit default>`: ClickHouse
//! refuses it without a `DEFAULT`, and turns the target's remaining NULLs (old versions,
//! deleted rows, or rows the server converted without row events) into that default, as the
//! server did. Run each statement with `mutations_sync = 2` so the next one sees its result.

use super::{Altered, Backfill, Origin, TableName};
use crate::clickhouse::sql::{column_type, ident};
use crate::config::TablesConfig;
use crate::schema::{ColumnDef, SourceType, TablePlan};

/// What the target needs after a source DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Migration {
    /// Statements to run in order; empty when the target does not change.
    InPlace(Vec<String>),
    /// The target cannot follow in place: recreate it from the new definition and copy the
    /// table again.
    Rebuild { reason: String },
}

/// Where a renamed table stands with respect to the pipe's `tables` selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// Selected before and after.
    Stays,
    /// Selected only under the new name.
    Enters,
    /// Selected only under the old name.
    Leaves,
    /// Selected under neither.
    Outside,
}

pub(crate) fn membership(tables: &TablesConfig, from: &TableName, to: &TableName) -> Membership {
    match (
        tables.matches(&from.0, &from.1),
        tables.matches(&to.0, &to.1),
    ) {
        (true, true) => Membership::Stays,
        (false, true) => Membership::Enters,
        (true, false) => Membership::Leaves,
        (false, false) => Membership::Outside,
    }
}

fn qualified(target_db: &str, table: &str) -> String {
    format!("{}.{}", ident(target_db), ident(table))
}

pub(crate) fn truncate_sql(target_db: &str, plan: &TablePlan) -> String {
    format!(
        "TRUNCATE TABLE IF EXISTS {}",
        qualified(target_db, &plan.target)
    )
}

/// The statements that take the target of `old` to that of `new`, where `new.def` is
/// `altered.def` (from [`super::apply`]) and both plans use the pipe's table options.
pub(crate) fn alter(
    target_db: &str,
    old: &TablePlan,
    new: &TablePlan,
    altered: &Altered,
) -> Migration {
    match plan(target_db, old, new, altered) {
        Ok(statements) => Migration::InPlace(statements),
        Err(reason) => Migration::Rebuild { reason },
    }
}

fn plan(
    target_db: &str,
    old: &TablePlan,
    new: &TablePlan,
    altered: &Altered,
) -> Result<Vec<String>, String> {
    if let Some(why) = &altered.rows_replaced {
        return Err(format!("{why} changed rows without row events"));
    }
    if altered.origin.len() != new.def.columns.len() || altered.def != new.def {
        return Err("the new plan is not the altered definition".into());
    }
    let table = qualified(target_db, &new.target);
    let mut out = Vec::new();
    if old.target != new.target {
        out.push(format!(
            "RENAME TABLE {} TO {table}",
            qualified(target_db, &old.target)
        ));
    }
    let included = |plan: &TablePlan, i: usize| plan.included.get(i).copied().unwrap_or(false);

    // Pair every replicated new column with the old one it continues.
    let mut pairs: Vec<(usize, usize)> = Vec::new(); // (old index, new index)
    let mut added: Vec<(usize, &Backfill)> = Vec::new();
    for (j, col) in new.def.columns.iter().enumerate() {
        if !included(new, j) {
            continue;
        }
        match altered.origin.get(j) {
            Some(Origin::Kept(i)) if included(old, *i) => pairs.push((*i, j)),
            Some(Origin::Kept(_)) => {
                return Err(format!(
                    "column `{}` starts being replicated; its existing values were never copied",
                    col.name
                ))
            }
            Some(Origin::Recomputed(_)) => {
                return Err(format!(
                    "column `{}` became a generated column; the server recomputed its values",
                    col.name
                ))
            }
            Some(Origin::Added(backfill)) => added.push((j, backfill)),
            None => return Err("column origins are missing".into()),
        }
    }
    let old_col = |i: usize| old.def.columns.get(i).ok_or("unknown old column");
    let new_col = |j: usize| new.def.columns.get(j).ok_or("unknown new column");

    // The sorting key must stay the same columns, under the same names and types.
    let mut old_key_renamed = Vec::new();
    for name in &old.order_by {
        let successor = pairs
            .iter()
            .find(|(i, _)| old.def.columns.get(*i).is_some_and(|c| &c.name == name))
            .and_then(|(_, j)| new.def.columns.get(*j))
            .map(|c| c.name.clone());
        old_key_renamed.push(successor.unwrap_or_else(|| format!("{name} (dropped)")));
    }
    if old_key_renamed != new.order_by {
        return Err(format!(
            "the sorting key changes from ({}) to ({}); ClickHouse cannot change a table's ORDER BY columns",
            old.order_by.join(", "),
            new.order_by.join(", ")
        ));
    }

    // Drops.
    let mut current: Vec<String> = Vec::new(); // the target's columns, in order
    for (i, col) in old.def.columns.iter().enumerate() {
        if !included(old, i) {
            continue;
        }
        if pairs.iter().any(|(oi, _)| *oi == i) {
            current.push(col.name.clone());
        } else {
            out.push(format!(
                "ALTER TABLE {table} DROP COLUMN {}",
                ident(&col.name)
            ));
        }
    }

    // Renames, through temporary names when a new name is another column's old one.
    let mut renames: Vec<(String, String)> = Vec::new();
    for &(i, j) in &pairs {
        let (from, to) = (&old_col(i)?.name, &new_col(j)?.name);
        if from != to {
            if new.order_by.contains(to) {
                return Err(format!("key column `{from}` is renamed to `{to}`; ClickHouse cannot rename a sorting key column"));
            }
            renames.push((from.clone(), to.clone()));
        }
    }
    let clash = renames
        .iter()
        .any(|(_, to)| renames.iter().any(|(from, _)| from == to));
    if clash {
        for (k, (from, _)) in renames.iter().enumerate() {
            out.push(rename_sql(&table, from, &format!("_tributary_rename_{k}")));
        }
        for (k, (_, to)) in renames.iter().enumerate() {
            out.push(rename_sql(&table, &format!("_tributary_rename_{k}"), to));
        }
    } else {
        for (from, to) in &renames {
            out.push(rename_sql(&table, from, to));
        }
    }
    for name in &mut current {
        if let Some((_, to)) = renames.iter().find(|(from, _)| from == name) {
            *name = to.clone();
        }
    }

    // Type and nullability changes.
    for &(i, j) in &pairs {
        let (before, after) = (old_col(i)?, new_col(j)?);
        exact_conversion(&before.ty, &after.ty)
            .map_err(|why| format!("column `{}`: {why}", after.name))?;
        let ty = column_type(after);
        if column_type(before) == ty {
            continue;
        }
        if new.order_by.contains(&after.name) {
            return Err(format!(
                "key column `{}` changes type; ClickHouse cannot alter a sorting key column",
                after.name
            ));
        }
        let name = ident(&after.name);
        if before.nullable && !after.nullable {
            // ClickHouse takes a Nullable column to a plain type only with a DEFAULT, which
            // its remaining NULLs become.
            let fill =
                implicit_value(after).map_err(|why| format!("column `{}`: {why}", after.name))?;
            out.push(format!(
                "ALTER TABLE {table} MODIFY COLUMN {name} {ty} DEFAULT {fill}"
            ));
        } else {
            out.push(format!("ALTER TABLE {table} MODIFY COLUMN {name} {ty}"));
        }
    }

    // Added columns, each after its predecessor in the new order.
    let predecessor = |j: usize| {
        (0..j)
            .rev()
            .find(|&k| included(new, k))
            .and_then(|k| new.def.columns.get(k))
            .map(|c| c.name.clone())
    };
    for &(j, backfill) in &added {
        let col = new_col(j)?;
        let default = default_sql(col, backfill)
            .map_err(|why| format!("new column `{}`: {why}", col.name))?;
        let default = default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
        let place = match predecessor(j) {
            Some(p) => {
                let at = current
                    .iter()
                    .position(|c| *c == p)
                    .map_or(current.len(), |k| k + 1);
                current.insert(at, col.name.clone());
                format!("AFTER {}", ident(&p))
            }
            None => {
                current.insert(0, col.name.clone());
                "FIRST".into()
            }
        };
        out.push(format!(
            "ALTER TABLE {table} ADD COLUMN {} {}{default} {place}",
            ident(&col.name),
            column_type(col)
        ));
    }

    // Moved columns: those outside a longest run already in the new order.
    let wanted: Vec<&ColumnDef> = new.columns().collect();
    let rank: Vec<usize> = current
        .iter()
        .filter_map(|name| wanted.iter().position(|c| &c.name == name))
        .collect();
    let stay = longest_increasing(&rank);
    for (k, col) in wanted.iter().enumerate() {
        if stay.contains(&k) {
            continue;
        }
        let place = match k.checked_sub(1).and_then(|p| wanted.get(p)) {
            Some(p) => format!("AFTER {}", ident(&p.name)),
            None => "FIRST".into(),
        };
        out.push(format!(
            "ALTER TABLE {table} MODIFY COLUMN {} {} {place}",
            ident(&col.name),
            column_type(col)
        ));
    }
    Ok(out)
}

fn rename_sql(table: &str, from: &str, to: &str) -> String {
    format!(
        "ALTER TABLE {table} RENAME COLUMN {} TO {}",
        ident(from),
        ident(to)
    )
}

/// The values of a longest strictly increasing subsequence of `seq`.
pub(super) fn longest_increasing(seq: &[usize]) -> Vec<usize> {
    // tails[l]: index in seq of the smallest tail of an increasing run of length l + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut parent: Vec<Option<usize>> = vec![None; seq.len()];
    for (i, &v) in seq.iter().enumerate() {
        let l = tails.partition_point(|&t| seq.get(t).is_some_and(|&x| x < v));
        parent[i] = l.checked_sub(1).and_then(|p| tails.get(p).copied());
        if l == tails.len() {
            tails.push(i);
        } else {
            tails[l] = i;
        }
    }
    let mut out = Vec::new();
    let mut at = tails.last().copied();
    while let Some(i) = at {
        out.extend(seq.get(i));
        at = parent.get(i).copied().flatten();
    }
    out.reverse();
    out
}

/// Whether the target's stored values of a column of type `old` are exactly the source's
/// after the server converted it to `new`.
fn exact_conversion(old: &SourceType, new: &SourceType) -> Result<(), String> {
    use crate::schema::Charset::Utf8;
    use SourceType::*;
    let width = |bytes: u8| if bytes == 3 { 4 } else { bytes };
    let ok = match (old, new) {
        _ if old == new => true,
        (
            Int {
                bytes: b1,
                unsigned: u1,
            },
            Int {
                bytes: b2,
                unsigned: u2,
            },
        ) => {
            let (w1, w2) = (width(*b1), width(*b2));
            (u1 == u2 && w2 >= w1) || (*u1 && !*u2 && w2 > w1)
        }
        (
            Decimal {
                precision: p1,
                scale: s1,
            },
            Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && i32::from(*p2) - i32::from(*s2) >= i32::from(*p1) - i32::from(*s1),
        (Float, Double) => true,
        (Bit { bits: a }, Bit { bits: b }) => b >= a,
        (Text { .. }, Text { .. } | Enum { .. }) => true,
        (Text { charset: Utf8 }, Binary) | (Binary, Text { charset: Utf8 }) => true,
        (FixedBinary { .. }, Binary) => true,
        (Enum { .. }, Text { .. } | Enum { .. } | Set { .. })
        | (Set { .. }, Text { .. } | Set { .. }) => true,
        (Date, DateTime { .. }) => true,
        (DateTime { fsp: a }, DateTime { fsp: b })
        | (Timestamp { fsp: a }, Timestamp { fsp: b })
        | (Time { fsp: a }, Time { fsp: b }) => b >= a,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} → {} is not an exact widening (the server converts, rounds or re-reads the values)",
            describe(old),
            describe(new)
        ))
    }
}

/// A type as an operator reads it in a message.
fn describe(ty: &SourceType) -> String {
    match ty {
        SourceType::Int { bytes, unsigned } => {
            let name = match bytes {
                1 => "TINYINT",
                2 => "SMALLINT",
                3 => "MEDIUMINT",
                4 => "INT",
                _ => "BIGINT",
            };
            format!("{name}{}", if *unsigned { " UNSIGNED" } else { "" })
        }
        SourceType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        SourceType::Text { charset } => format!("text ({charset:?})"),
        SourceType::Binary => "VARBINARY/BLOB".into(),
        SourceType::FixedBinary { len } => format!("BINARY({len})"),
        SourceType::Bit { bits } => format!("BIT({bits})"),
        SourceType::DateTime { fsp } => format!("DATETIME({fsp})"),
        SourceType::Timestamp { fsp } => format!("TIMESTAMP({fsp})"),
        SourceType::Time { fsp } => format!("TIME({fsp})"),
        SourceType::Enum { .. } => "ENUM".into(),
        SourceType::Set { .. } => "SET".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

/// The zero date (`0000-00-00`), as decoding writes it: ClickHouse's minimum.
const ZERO_DATE: &str = "1900-01-01";
const ZERO_DATETIME: &str = "1900-01-01 00:00:00";

/// A ClickHouse string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The server's implicit default for `col` (0, '', first ENUM member, zero date) as
/// tributary maps it, as a ClickHouse literal.
fn implicit_value(col: &ColumnDef) -> Result<String, String> {
    Ok(match implicit_default(col)? {
        Some(v) => v,
        None if matches!(
            col.ty,
            SourceType::Text { .. }
                | SourceType::Binary
                | SourceType::Set { .. }
                | SourceType::Geometry
                | SourceType::Enum { .. }
                | SourceType::FixedBinary { .. }
        ) =>
        {
            "''".into()
        }
        // The server's implicit defaults are ClickHouse's too, but a bare 0 is not one.
        None if col.ty == SourceType::Uuid => {
            "toUUID('00000000-0000-0000-0000-000000000000')".into()
        }
        None if col.ty == SourceType::Inet4 => "toIPv4('0.0.0.0')".into(),
        None if col.ty == SourceType::Inet6 => "toIPv6('::')".into(),
        None => "0".into(),
    })
}

/// `Some(literal)` when the implicit default differs from ClickHouse's default of the type.
fn implicit_default(col: &ColumnDef) -> Result<Option<String>, String> {
    Ok(match &col.ty {
        SourceType::FixedBinary { len } if *len > 0 => {
            Some(format!("unhex('{}')", "00".repeat(usize::from(*len))))
        }
        SourceType::Enum { values } => values.first().filter(|v| !v.is_empty()).map(|v| quote(v)),
        SourceType::Date => Some(quote(ZERO_DATE)),
        SourceType::DateTime { .. } | SourceType::Timestamp { .. } => Some(quote(ZERO_DATETIME)),
        SourceType::Json => {
            return Err("the implicit default of a JSON column is not defined".into())
        }
        _ => None,
    })
}

/// The `DEFAULT` an added column needs so that existing rows read what the source holds.
fn default_sql(col: &ColumnDef, backfill: &Backfill) -> Result<Option<String>, String> {
    match backfill {
        Backfill::Null if col.nullable => Ok(None),
        Backfill::Null | Backfill::Implicit => implicit_default(col),
        Backfill::Unknown(why) => Err(why.clone()),
        Backfill::Number(n) => number_default(col, n),
        Backfill::Text(t) => text_default(col, t),
        Backfill::Bits(v) => match col.ty {
            SourceType::Int { .. } | SourceType::Bit { .. } | SourceType::Decimal { .. } => {
                Ok(Some(v.to_string()))
            }
            _ => Err("a bit/hex literal default on a non-numeric column".into()),
        },
    }
}

fn is_integer(n: &str) -> bool {
    let digits = n.strip_prefix('-').unwrap_or(n);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// An integer literal without leading zeros (`007` → `7`); `None` past 128 bits.
fn integer(n: &str) -> Option<String> {
    is_integer(n)
        .then(|| n.parse::<i128>().ok())
        .flatten()
        .map(|v| v.to_string())
}

fn number_default(col: &ColumnDef, n: &str) -> Result<Option<String>, String> {
    // `[-]digits[.digits]`, leading zeros of the integer part dropped: its fraction length.
    let plain_decimal = |n: &str| {
        let (sign, digits) = n.strip_prefix('-').map_or(("", n), |d| ("-", d));
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let ok = !int.is_empty() && int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit());
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let text = if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        };
        ok.then_some((text, frac.len()))
    };
    let converted =
        || format!("DEFAULT {n} is converted by the server in a way not reproduced here");
    match &col.ty {
        SourceType::Int { unsigned, .. } if !(*unsigned && n.starts_with('-')) => {
            integer(n).map(Some).ok_or_else(converted)
        }
        SourceType::Bit { .. } | SourceType::Year if !n.starts_with('-') => {
            integer(n).map(Some).ok_or_else(converted)
        }
        SourceType::Decimal { scale, .. } => match plain_decimal(n) {
            Some((text, frac)) if frac <= usize::from(*scale) => Ok(Some(text)),
            _ => Err(converted()),
        },
        SourceType::Float | SourceType::Double if n.parse::<f64>().is_ok() => {
            Ok(Some(n.to_owned()))
        }
        // A number on a string column is its text; on ENUM/SET it would be an index.
        SourceType::Text { .. } | SourceType::Binary | SourceType::FixedBinary { .. } => {
            text_default(col, n)
        }
        SourceType::Time { .. } if n == "0" => Ok(None),
        _ => Err(converted()),
    }
}

fn text_default(col: &ColumnDef, t: &str) -> Result<Option<String>, String> {
    let numeric = matches!(
        col.ty,
        SourceType::Int { .. }
            | SourceType::Decimal { .. }
            | SourceType::Float
            | SourceType::Double
            | SourceType::Year
    );
    match &col.ty {
        _ if numeric => {
            let n = t.trim();
            if n.parse::<f64>().is_ok() && !n.contains(['e', 'E', '+', 'i', 'n', 'I', 'N']) {
                number_default(col, n)
            } else {
                Err(format!(
                    "DEFAULT '{t}' on a numeric column is converted by the server"
                ))
            }
        }
        SourceType::Text { .. } | SourceType::Binary => Ok(Some(quote(t))),
        SourceType::FixedBinary { len } => {
            let pad = usize::from(*len)
                .checked_sub(t.len())
                .ok_or_else(|| format!("DEFAULT '{t}' is longer than BINARY({len})"))?;
            Ok(Some(quote(&format!("{t}{}", "\0".repeat(pad)))))
        }
        SourceType::Enum { values } => values
            .iter()
            .find(|v| v.as_str() == t)
            .or_else(|| values.iter().find(|v| v.to_lowercase() == t.to_lowercase()))
            .map(|v| Some(quote(v)))
            .ok_or_else(|| format!("DEFAULT '{t}' is not a member of the ENUM")),
        SourceType::Set { values } => {
            let mut members: Vec<usize> = Vec::new();
            for part in t.split(',').filter(|p| !p.is_empty()) {
                let i = values
                    .iter()
                    .position(|v| v.to_lowercase() == part.to_lowercase())
                    .ok_or_else(|| format!("DEFAULT '{t}': `{part}` is not a member of the SET"))?;
                members.push(i);
            }
            members.sort_unstable();
            members.dedup();
            let text: Vec<&str> = members
                .iter()
                .filter_map(|&i| values.get(i).map(String::as_str))
                .collect();
            Ok(Some(quote(&text.join(","))))
        }
        SourceType::Date => date_default(t),
        SourceType::DateTime { fsp } => datetime_default(t, *fsp),
        SourceType::Timestamp { .. }
            if t.trim_start_matches(['0', '-', ' ', ':', '.']).is_empty() =>
        {
            Ok(Some(quote(ZERO_DATETIME)))
        }
        SourceType::Timestamp { .. } => {
            Err("a TIMESTAMP literal is read in the session's time zone".into())
        }
        SourceType::Time { fsp } => time_default(t, *fsp),
        // In the form the server prints (other forms it accepts are not reproduced here).
        SourceType::Uuid if crate::decode::parse_uuid(t).is_some() => Ok(Some(quote(t))),
        SourceType::Inet4 if t.parse::<std::net::Ipv4Addr>().is_ok() => Ok(Some(quote(t))),
        SourceType::Inet6 if t.parse::<std::net::Ipv6Addr>().is_ok() => Ok(Some(quote(t))),
        _ => Err(format!("DEFAULT '{t}' on this type is not reproduced here")),
    }
}

/// A `YYYY-MM-DD` date: `None` for a zero or invalid date, which decoding turns into
/// ClickHouse's minimum.
fn parse_day(t: &str) -> Result<Option<String>, String> {
    let bad = || format!("DEFAULT '{t}' is not in YYYY-MM-DD form");
    let parts: Vec<&str> = t.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let num = |s: &str, len: usize| {
        (s.len() == len && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (num(y, 4), num(m, 2), num(d, 2)) else {
        return Err(bad());
    };
    let month_len = crate::decode::days_in_month(i64::from(y), i64::from(m)).unwrap_or(0);
    if d == 0 || i64::from(d) > month_len {
        return Ok(None);
    }
    if !(1900..=2299).contains(&y) {
        return Err(format!("DEFAULT '{t}' is outside ClickHouse's date range"));
    }
    Ok(Some(format!("{y:04}-{m:02}-{d:02}")))
}

fn date_default(t: &str) -> Result<Option<String>, String> {
    Ok(Some(quote(parse_day(t)?.as_deref().unwrap_or(ZERO_DATE))))
}

fn datetime_default(t: &str, fsp: u8) -> Result<Option<String>, String> {
    let (date, time) = t.split_once(' ').unwrap_or((t, "00:00:00"));
    let Some(day) = parse_day(date)? else {
        return Ok(Some(quote(ZERO_DATETIME)));
    };
    let micros = time_micros(time, fsp)?;
    if !(0..86_400_000_000).contains(&micros) {
        return Err(format!("DEFAULT '{t}' has an invalid time of day"));
    }
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let clock = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    Ok(Some(quote(&if frac == 0 {
        format!("{day} {clock}")
    } else {
        format!("{day} {clock}.{frac:06}")
    })))
}

/// `[-]HH:MM:SS[.ffffff]` as microseconds; fractional digits past `fsp` must be zeros (the
/// server rounds them).
fn time_micros(t: &str, fsp: u8) -> Result<i64, String> {
    let bad = || format!("DEFAULT '{t}' is not in [-]HH:MM:SS[.ffffff] form");
    let (negative, body) = t.strip_prefix('-').map_or((false, t), |b| (true, b));
    let (clock, frac) = body.split_once('.').unwrap_or((body, ""));
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return Err(bad());
    };
    let num = |s: &str| {
        (!s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    let (Some(h), Some(m), Some(s)) = (num(h), num(m), num(s)) else {
        return Err(bad());
    };
    if m > 59 || s > 59 || frac.len() > 6 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.chars().skip(usize::from(fsp)).any(|c| c != '0') {
        return Err(format!(
            "DEFAULT '{t}' has more fractional digits than the column keeps (the server rounds)"
        ));
    }
    let micros_frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    let micros = (h * 3600 + m * 60 + s) * 1_000_000 + micros_frac;
    Ok(if negative { -micros } else { micros })
}

fn time_default(t: &str, fsp: u8) -> Result<Option<String>, String> {
    let micros = time_micros(t, fsp)?;
    Ok((micros != 0).then(|| micros.to_string()))
}
