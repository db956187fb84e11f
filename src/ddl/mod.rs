//! Schema evolution: the DDL of a binlog QUERY event, understood and applied (pure).
//!
//! **Invariant: a table definition evolves only by what the server executed, in binlog
//! order, and nothing is guessed.** [`classify`] reads the text of a QUERY event the way the
//! server's parser would (executable comments opened, `IF [NOT] EXISTS`, MariaDB and MySQL
//! variants); every specification of an `ALTER TABLE` is either understood exactly — a column
//! change, a key change, a charset change, a rename — or known not to change the columns
//! (indexes, partitions, table options). Anything else about a table is [`Ddl::Unparsed`],
//! naming the tables it touches, so the caller isolates them instead of decoding rows against
//! a definition that may be wrong. [`apply`] then computes the new [`TableDef`] with the
//! server's own rules (MySQL's `mysql_prepare_alter_table`: drops and in-place changes first,
//! then added and moved columns in statement order; names compared case-insensitively), and
//! [`ColumnSpec::to_column_def`] maps a column definition through the same
//! [`crate::schema::ColumnRow::parse`] that introspection uses, so a table read from
//! `information_schema` and the same table followed through its DDL never disagree.
//!
//! What is not followed, and why:
//! - `sql_mode=ORACLE` (where `DATE` means `DATETIME`) and `REAL_AS_FLOAT`: the QUERY event's
//!   `sql_mode` is not consulted; `REAL` is `DOUBLE` as in the default mode.
//! - `explicit_defaults_for_timestamp` is taken as ON (MySQL 8, MariaDB 10.10+): `TIMESTAMP`
//!   is like any type. With OFF (MariaDB before 10.10, MySQL 5.7) the server makes a
//!   `TIMESTAMP` without `NULL` NOT NULL, and the table's first one `DEFAULT CURRENT_TIMESTAMP
//!   ON UPDATE CURRENT_TIMESTAMP`. New rows are still exact (their values come with row
//!   events, and a `Nullable` target column holds every value); what differs is the
//!   nullability of the two definitions and, for rows that existed before an `ADD COLUMN`,
//!   NULL in the target where the source holds the zero date or the time of the ALTER.
//! - A text column shortened below its longest value, or a charset conversion that cannot
//!   represent a character, changes values without row events unless the session is in
//!   strict mode (the default since MySQL 5.7 and MariaDB 10.2.4); strict mode is assumed.
//!
//! The ClickHouse side (statements, or a rebuild verdict) is [`planner`]. A QUERY event
//! on a replicated table is followed as: `classify` → for `AlterTable`, [`apply`] to the
//! table's current definition with its default charset (keep [`Altered::charset`] for the
//! next one) → `TablePlan::new` of [`Altered::def`] → [`planner::alter`] → run the
//! statements, or isolate the table and copy it again on `Rebuild`; a [`DdlError`] isolates
//! the table too. Online schema change tools (gh-ost, pt-osc) alter a shadow table created
//! `LIKE` the replicated one and swap it in with `RENAME TABLE`, so the definitions of
//! tables outside the selection that are created `LIKE` a replicated one are worth keeping.

mod alter;
mod apply;
mod column;
mod lex;
mod parse;
pub(crate) mod planner;
mod statement;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub(crate) use apply::{apply, Altered, Backfill, Origin};

use crate::schema::SchemaError;
use crate::source::ServerFlavor;

/// `(database, table)` as the server spells them (case kept).
pub(crate) type TableName = (String, String);

/// What a QUERY event does to tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ddl {
    /// `ALTER TABLE`, and `CREATE INDEX` / `DROP INDEX` (which are ALTERs of their table).
    AlterTable {
        table: TableName,
        changes: Vec<Change>,
    },
    CreateTable(CreateTable),
    /// `DROP TABLE [IF EXISTS] a, b` (not `TEMPORARY`).
    DropTable(Vec<TableName>),
    /// `RENAME TABLE a TO b, c TO d`, applied left to right.
    RenameTables(Vec<(TableName, TableName)>),
    /// `TRUNCATE [TABLE] t`: every row gone, without row events.
    Truncate(TableName),
    /// `DROP DATABASE`: every table of the database gone, without a `DROP TABLE` each.
    DropDatabase(String),
    /// `CREATE DATABASE … CHARACTER SET` / `ALTER DATABASE … CHARACTER SET`: the charset later
    /// `CREATE TABLE`s in `db` get when they name none.
    DatabaseCharset {
        db: String,
        charset: String,
    },
    /// `INSERT`, `UPDATE`, `DELETE`, `REPLACE`, `LOAD DATA` logged as a statement (a session
    /// left `binlog_format=ROW`, or the server emptied a MEMORY table at start): its rows have
    /// no row events. `tables` holds the target of a single-table statement, else is empty.
    RowsByStatement {
        verb: String,
        tables: Vec<TableName>,
    },
    /// Not about a table's rows or columns: users, grants, `SET`, views, routines, triggers,
    /// events, `CREATE DATABASE` without a charset, temporary tables, transaction control...
    Other,
    /// DDL on tables that this module cannot follow exactly; `tables` are the ones it names
    /// (empty when even the names could not be read).
    Unparsed {
        tables: Vec<TableName>,
        reason: String,
    },
}

/// `CREATE TABLE` (not `TEMPORARY`: temporary tables never reach the binlog as tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreateTable {
    pub table: TableName,
    /// `IF NOT EXISTS`: the server logs the statement even when the table existed (and then
    /// changed nothing).
    pub if_not_exists: bool,
    /// MariaDB's `CREATE OR REPLACE TABLE`: a drop of any existing table, then the create.
    pub or_replace: bool,
    /// `CREATE TABLE t LIKE src`: the columns are `src`'s.
    pub like: Option<TableName>,
    /// `CREATE TABLE … [AS] SELECT`: `columns` may lack the columns the SELECT adds. (In row
    /// format the server logs the complete definition instead, without the SELECT.)
    pub as_select: bool,
    pub columns: Vec<ColumnSpec>,
    /// From `PRIMARY KEY (…)` or an inline `PRIMARY KEY`.
    pub primary_key: Vec<String>,
    /// The table's `DEFAULT CHARSET` / `COLLATE` option, if any.
    pub charset: Option<String>,
}

/// One specification of an `ALTER TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    AddColumn {
        column: ColumnSpec,
        position: Position,
        /// MariaDB: nothing happens when the column exists.
        if_not_exists: bool,
    },
    DropColumn {
        name: String,
        if_exists: bool,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    /// `MODIFY name …` (`new_name` `None`) or `CHANGE name new_name …`: the whole definition
    /// is replaced (a charset left out is the table's default, not the column's old one).
    ModifyColumn {
        name: String,
        new_name: Option<String>,
        column: ColumnSpec,
        position: Position,
        if_exists: bool,
    },
    /// `ADD [CONSTRAINT [c]] PRIMARY KEY (…)`, key parts in order (prefix lengths dropped).
    AddPrimaryKey {
        columns: Vec<String>,
        /// MariaDB: nothing happens when the table has a primary key.
        if_not_exists: bool,
    },
    /// `DROP PRIMARY KEY`, `DROP INDEX \`PRIMARY\``, `DROP CONSTRAINT \`PRIMARY\``.
    DropPrimaryKey,
    /// `RENAME [TO|AS] db.t`.
    RenameTable(TableName),
    /// `[DEFAULT] CHARACTER SET` / `COLLATE` of the table: what later columns default to.
    TableCharset(String),
    /// `CONVERT TO CHARACTER SET`: every text column converted; also the table's default.
    ConvertCharset(String),
    /// Rows removed or replaced without row events: `DROP` / `TRUNCATE` / `DISCARD` / `IMPORT`
    /// `PARTITION`, `IMPORT TABLESPACE`. The definition is unchanged; the rows must be copied
    /// again.
    RowsReplaced(String),
    /// Columns and rows left alone: indexes, foreign keys, checks, partitioning, engine,
    /// comments, `AUTO_INCREMENT=`, `ALGORITHM=`, `LOCK=`, column defaults and visibility,
    /// `ORDER BY`, `FORCE`...
    Metadata,
}

/// Where `ADD` / `MODIFY` / `CHANGE` put a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    First,
    After(String),
    /// No position given: `ADD` appends the column, `MODIFY`/`CHANGE` keep it in place.
    Default,
}

/// A column definition as written, aliases resolved to `information_schema`'s names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnSpec {
    pub name: String,
    /// `information_schema.COLUMNS.DATA_TYPE`: `INTEGER` → `int`, `BOOL` → `tinyint`,
    /// `CHARACTER VARYING` → `varchar`, `FLOAT(30)` → `double`, `SERIAL` → `bigint`...
    pub data_type: String,
    /// The numbers in parentheses after the type: `DECIMAL(10,2)` → `[10, 2]`.
    pub length: Vec<u64>,
    /// `ENUM` / `SET` members, unquoted, trailing spaces removed as the server does.
    pub values: Vec<String>,
    /// `UNSIGNED` or `ZEROFILL`.
    pub unsigned: bool,
    /// Explicit charset (`CHARACTER SET`, `NATIONAL`, `ASCII`, `UNICODE`, `BYTE`, or implied
    /// by `COLLATE`); `None`: the table's default.
    pub charset: Option<String>,
    /// False with `NOT NULL`, an inline `PRIMARY KEY` or `SERIAL`.
    pub nullable: bool,
    /// Inline `PRIMARY KEY` (or `KEY`, which means the same in a column definition).
    pub primary_key: bool,
    pub default: Option<ColumnDefault>,
    /// `[GENERATED ALWAYS] AS (expr)`: values computed from other columns.
    pub generated: bool,
    pub auto_increment: bool,
}

/// A column's `DEFAULT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnDefault {
    Null,
    /// A numeric literal as written (`-1.5`, `1e3`); `TRUE` / `FALSE` are `1` / `0`.
    Number(String),
    /// A string literal, unescaped (`DATE '2020-01-01'` included).
    Text(String),
    /// `b'101'`, `0x1F`, `X'1F'`; `None` past 128 bits.
    Bits(Option<u128>),
    /// Computed: `CURRENT_TIMESTAMP`, `(a + 1)`, `uuid()`, `NEXT VALUE FOR s`... as a summary.
    Expression(String),
}

/// What the server fills in where a definition leaves it out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults<'a> {
    /// The table's default charset (for `ALTER`), or the database's (for `CREATE TABLE`).
    pub charset: &'a str,
    /// MariaDB's `JSON` is `LONGTEXT` in `information_schema`; MySQL's is `json`.
    pub flavor: ServerFlavor,
}

/// Why [`apply`] or [`CreateTable::table_def`] cannot produce a definition; names the
/// table and, where one is at fault, the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DdlError {
    #[error("`{table}`: {change} names column `{column}`, which the table does not have")]
    UnknownColumn {
        table: String,
        column: String,
        change: &'static str,
    },
    #[error("`{table}`: {change} adds column `{column}`, which the table already has")]
    DuplicateColumn {
        table: String,
        column: String,
        change: &'static str,
    },
    #[error("`{table}`: {source}")]
    Column { table: String, source: SchemaError },
    #[error("`{table}`: {what} cannot be followed from the statement alone")]
    Unsupported { table: String, what: String },
}

/// Reads the text of a QUERY event; `default_db` is the event's schema, which unqualified
/// table names belong to. Never panics, whatever the input.
pub(crate) fn classify(default_db: &str, sql: &str) -> Ddl {
    // The event's sql_mode may hold NO_BACKSLASH_ESCAPES; a string that only lexes one way
    // tells which.
    let tokens =
        lex::tokenize(sql, true).or_else(|first| lex::tokenize(sql, false).map_err(|_| first));
    match tokens {
        Ok(tokens) => statement::statement(default_db, &tokens),
        Err(reason) => {
            let verb = sql
                .trim_start()
                .split(|c: char| !c.is_ascii_alphabetic())
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match verb.as_str() {
                "ALTER" | "CREATE" | "DROP" | "RENAME" | "TRUNCATE" => Ddl::Unparsed {
                    tables: Vec::new(),
                    reason,
                },
                _ => Ddl::Other,
            }
        }
    }
}
