//! `ALTER TABLE` specifications.
//!
//! Invariant: a specification is skipped only when its leading keywords identify it as one
//! that leaves the columns alone ([`Change::Metadata`]); an unknown leading keyword makes the
//! statement [`Ddl::Unparsed`](super::Ddl). Partition operations are standalone in the
//! server's grammar (only `ALGORITHM=`/`LOCK=` may precede them) and take comma-separated
//! partition lists, so they run to the end of the statement.

use super::lex::Tok;
use super::parse::{Parsed, Parser};
use super::{Change, Ddl, Position, TableName};

/// Keywords that start an `ALTER TABLE` specification which leaves the columns alone, each
/// skipped to the next top-level comma.
const METADATA_SPECS: &[&str] = &[
    "ALGORITHM",
    "LOCK",
    "FORCE",
    "ENABLE",
    "DISABLE",
    "WITH",
    "WITHOUT",
];

/// Partition and tablespace operations that leave the rows alone. The server's grammar makes
/// them standalone (only `ALGORITHM=`/`LOCK=` may precede them) and they take comma-separated
/// partition lists, so they run to the end of the statement.
const STANDALONE_METADATA: &[&str] = &[
    "COALESCE",
    "REORGANIZE",
    "ANALYZE",
    "CHECK",
    "OPTIMIZE",
    "REBUILD",
    "REPAIR",
    "REMOVE",
    "UPGRADE",
    "PARTITION",
    "SECONDARY_LOAD",
    "SECONDARY_UNLOAD",
];

/// Words that start an `ALTER TABLE` specification, which end an `ORDER BY` list.
const SPEC_STARTS: &[&str] = &[
    "ADD",
    "DROP",
    "MODIFY",
    "CHANGE",
    "RENAME",
    "ALTER",
    "CONVERT",
    "ALGORITHM",
    "LOCK",
    "FORCE",
];

/// Table options (`ALTER TABLE t ENGINE=…`, after `CREATE TABLE (…)`).
const TABLE_OPTIONS: &[&str] = &[
    "ENGINE",
    "TYPE",
    "AUTO_INCREMENT",
    "AVG_ROW_LENGTH",
    "CHECKSUM",
    "TABLE_CHECKSUM",
    "COMMENT",
    "COMPRESSION",
    "CONNECTION",
    "DATA",
    "INDEX",
    "DELAY_KEY_WRITE",
    "ENCRYPTION",
    "ENCRYPTED",
    "ENCRYPTION_KEY_ID",
    "INSERT_METHOD",
    "KEY_BLOCK_SIZE",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "PASSWORD",
    "ROW_FORMAT",
    "STATS_AUTO_RECALC",
    "STATS_PERSISTENT",
    "STATS_SAMPLE_PAGES",
    "TABLESPACE",
    "STORAGE",
    "UNION",
    "PAGE_CHECKSUM",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "TRANSACTIONAL",
    "IETF_QUOTES",
    "SEQUENCE",
    "ENGINE_ATTRIBUTE",
    "SECONDARY_ENGINE",
    "SECONDARY_ENGINE_ATTRIBUTE",
    "AUTOEXTEND_SIZE",
    "DEFAULT",
    "CHARACTER",
    "CHARSET",
    "CHAR",
    "COLLATE",
    "START",
];

/// `ALTER [ONLINE|OFFLINE] [IGNORE] TABLE …`, `ALTER DATABASE …`.
pub(super) fn alter(p: &mut Parser<'_>, tables: &mut Vec<TableName>) -> Parsed<Ddl> {
    let _ = p.eat_kw("ONLINE") || p.eat_kw("OFFLINE");
    p.eat_kw("IGNORE");
    if p.eat_kw("DATABASE") || p.eat_kw("SCHEMA") {
        return database_charset(p);
    }
    if !p.eat_kw("TABLE") {
        return Ok(Ddl::Other);
    }
    p.eat_kws(&["IF", "EXISTS"]);
    let table = p.table_name()?;
    tables.push(table.clone());
    p.skip_wait();
    let mut changes = Vec::new();
    while !p.at_end() {
        if p.eat_punct(',') {
            continue;
        }
        specification(p, &mut changes, tables)?;
    }
    if changes.is_empty() {
        changes.push(Change::Metadata);
    }
    Ok(Ddl::AlterTable { table, changes })
}

/// `[DEFAULT] CHARACTER SET [=] x` of `CREATE/ALTER DATABASE [IF NOT EXISTS] [db]`.
pub(super) fn database_charset(p: &mut Parser<'_>) -> Parsed<Ddl> {
    p.eat_kws(&["IF", "NOT", "EXISTS"]);
    let db = if p.is_any_kw(&["DEFAULT", "CHARACTER", "CHARSET", "CHAR", "COLLATE"]) {
        p.default_db.to_owned()
    } else {
        match p.ident() {
            Ok(db) => db,
            Err(_) => return Ok(Ddl::Other),
        }
    };
    let options = p.table_options(false);
    // Whatever else a database statement holds, it changes no table.
    while p.advance().is_some() {}
    Ok(match options {
        Ok((Some(charset), _)) => Ddl::DatabaseCharset { db, charset },
        _ => Ddl::Other,
    })
}

/// One `ALTER TABLE` specification (several for `ADD (a …, b …)`).
fn specification(
    p: &mut Parser<'_>,
    changes: &mut Vec<Change>,
    tables: &mut Vec<TableName>,
) -> Parsed<()> {
    if p.eat_kw("ADD") {
        return add(p, changes);
    }
    if p.eat_kw("DROP") {
        let change = drop_spec(p)?;
        changes.push(change);
        return Ok(());
    }
    if p.is_kw("MODIFY") || p.is_kw("CHANGE") {
        let change = p.is_kw("CHANGE");
        p.advance();
        p.eat_kw("COLUMN");
        let if_exists = p.eat_kws(&["IF", "EXISTS"]);
        let name = p.column_name()?;
        let new_name = if change { Some(p.column_name()?) } else { None };
        let column = p.column_definition(new_name.clone().unwrap_or_else(|| name.clone()))?;
        let position = position(p)?;
        let new_name = new_name.filter(|n| *n != name);
        changes.push(Change::ModifyColumn {
            name,
            new_name,
            column,
            position,
            if_exists,
        });
        return Ok(());
    }
    if p.eat_kw("RENAME") {
        if p.eat_kw("COLUMN") {
            p.eat_kws(&["IF", "EXISTS"]);
            let from = p.column_name()?;
            p.expect_kw("TO")?;
            let to = p.column_name()?;
            changes.push(Change::RenameColumn { from, to });
        } else if p.eat_kw("INDEX") || p.eat_kw("KEY") {
            p.skip_to_comma()?;
            changes.push(Change::Metadata);
        } else {
            let _ = p.eat_kw("TO") || p.eat_kw("AS");
            let to = p.table_name()?;
            tables.push(to.clone());
            changes.push(Change::RenameTable(to));
        }
        return Ok(());
    }
    if p.eat_kw("ALTER") {
        // ALTER [COLUMN] c SET DEFAULT / DROP DEFAULT / SET [IN]VISIBLE, ALTER INDEX|KEY i
        // [NOT] IGNORED|VISIBLE, ALTER CHECK|CONSTRAINT c [NOT] ENFORCED: no data changes.
        p.skip_to_comma()?;
        changes.push(Change::Metadata);
        return Ok(());
    }
    if p.eat_kw("CONVERT") {
        if p.eat_kw("TO") {
            let _ = p.eat_kws(&["CHARACTER", "SET"]) || p.eat_kw("CHARSET");
            let name = p.charset_or_collation()?;
            if name.eq_ignore_ascii_case("DEFAULT") {
                return Err(
                    "CONVERT TO CHARACTER SET DEFAULT (the database's, not tracked)".into(),
                );
            }
            p.skip_to_comma()?;
            changes.push(Change::ConvertCharset(name.to_ascii_lowercase()));
            return Ok(());
        }
        // MariaDB: CONVERT PARTITION p TO TABLE t2 / CONVERT TABLE t2 TO PARTITION p.
        let _ = p.eat_kw("PARTITION") || p.eat_kw("TABLE");
        let _ = p.ident();
        return Err(
            "CONVERT PARTITION / CONVERT TABLE moves rows between tables without row events".into(),
        );
    }
    if p.eat_kw("EXCHANGE") {
        p.expect_kw("PARTITION")?;
        p.ident()?;
        p.expect_kw("WITH")?;
        p.expect_kw("TABLE")?;
        let other = p.table_name()?;
        tables.push(other);
        return Err("EXCHANGE PARTITION swaps rows between two tables without row events".into());
    }
    let rows_replaced =
        p.is_any_kw(&["TRUNCATE", "IMPORT"]) || (p.is_kw("DISCARD") && p.is_kw_at(1, "PARTITION"));
    if rows_replaced {
        let words: Vec<String> = (0..2)
            .filter_map(|i| match p.peek_at(i) {
                Some(Tok::Word(w)) => Some(w.to_ascii_uppercase()),
                _ => None,
            })
            .collect();
        p.skip_rest()?;
        changes.push(Change::RowsReplaced(format!(
            "ALTER TABLE … {}",
            words.join(" ")
        )));
        return Ok(());
    }
    if p.is_any_kw(STANDALONE_METADATA) || p.is_kw("DISCARD") {
        p.skip_rest()?;
        changes.push(Change::Metadata);
        return Ok(());
    }
    if p.eat_kws(&["ORDER", "BY"]) {
        loop {
            p.column_name()?;
            let _ = p.eat_kw("ASC") || p.eat_kw("DESC");
            let more = p.is_punct(',')
                && match p.peek_at(1) {
                    Some(Tok::Word(w)) => !SPEC_STARTS.iter().any(|k| w.eq_ignore_ascii_case(k)),
                    Some(Tok::Quoted(_) | Tok::DoubleQuoted(_)) => true,
                    _ => false,
                };
            if !more {
                break;
            }
            p.advance();
        }
        changes.push(Change::Metadata);
        return Ok(());
    }
    if p.is_any_kw(TABLE_OPTIONS) {
        let (charset, _) = p.table_options(false)?;
        changes.push(match charset {
            Some(c) => Change::TableCharset(c),
            None => Change::Metadata,
        });
        return Ok(());
    }
    if p.is_any_kw(METADATA_SPECS) {
        p.skip_to_comma()?;
        changes.push(Change::Metadata);
        return Ok(());
    }
    Err(format!(
        "unknown ALTER TABLE specification at {}",
        p.describe()
    ))
}

/// After `ADD`.
fn add(p: &mut Parser<'_>, changes: &mut Vec<Change>) -> Parsed<()> {
    let column_keyword = p.eat_kw("COLUMN");
    if !column_keyword {
        if p.eat_kw("CONSTRAINT") {
            p.eat_kws(&["IF", "NOT", "EXISTS"]);
            if !p.is_any_kw(&["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"]) {
                p.ident()?; // the constraint's name
            }
            if !p.is_kw("PRIMARY") {
                p.skip_to_comma()?;
                changes.push(Change::Metadata);
                return Ok(());
            }
        }
        if p.eat_kws(&["PRIMARY", "KEY"]) {
            let if_not_exists = p.eat_kws(&["IF", "NOT", "EXISTS"]);
            let columns = p.primary_key_body()?;
            changes.push(Change::AddPrimaryKey {
                columns,
                if_not_exists,
            });
            return Ok(());
        }
        if p.is_kw("PARTITION") {
            p.skip_rest()?;
            changes.push(Change::Metadata);
            return Ok(());
        }
        let metadata = [
            "INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK",
        ];
        if p.is_any_kw(&metadata) || (p.is_kw("PERIOD") && p.is_kw_at(1, "FOR")) {
            p.skip_to_comma()?;
            changes.push(Change::Metadata);
            return Ok(());
        }
        if p.is_kw("SYSTEM") && p.is_kw_at(1, "VERSIONING") {
            return Err("ADD SYSTEM VERSIONING adds hidden row_start/row_end columns".into());
        }
    }
    let if_not_exists = p.eat_kws(&["IF", "NOT", "EXISTS"]);
    if p.eat_punct('(') {
        // ADD [COLUMN] (a INT, b INT): appended in order.
        loop {
            let name = p.column_name()?;
            let column = p.column_definition(name)?;
            changes.push(Change::AddColumn {
                column,
                position: Position::Default,
                if_not_exists,
            });
            if p.eat_punct(')') {
                return Ok(());
            }
            p.expect_punct(',')?;
        }
    }
    let name = p.column_name()?;
    let column = p.column_definition(name)?;
    let position = position(p)?;
    changes.push(Change::AddColumn {
        column,
        position,
        if_not_exists,
    });
    Ok(())
}

fn position(p: &mut Parser<'_>) -> Parsed<Position> {
    if p.eat_kw("FIRST") {
        Ok(Position::First)
    } else if p.eat_kw("AFTER") {
        Ok(Position::After(p.column_name()?))
    } else {
        Ok(Position::Default)
    }
}

/// After `ALTER TABLE … DROP`.
fn drop_spec(p: &mut Parser<'_>) -> Parsed<Change> {
    if p.eat_kws(&["PRIMARY", "KEY"]) {
        return Ok(Change::DropPrimaryKey);
    }
    if p.eat_kw("INDEX") || p.eat_kw("KEY") || p.eat_kw("CONSTRAINT") {
        p.eat_kws(&["IF", "EXISTS"]);
        let name = p.ident()?;
        p.skip_to_comma()?;
        return Ok(if name.eq_ignore_ascii_case("PRIMARY") {
            Change::DropPrimaryKey
        } else {
            Change::Metadata
        });
    }
    if p.is_any_kw(&["FOREIGN", "CHECK"]) || (p.is_kw("PERIOD") && p.is_kw_at(1, "FOR")) {
        p.skip_to_comma()?;
        return Ok(Change::Metadata);
    }
    if p.eat_kw("PARTITION") {
        p.skip_rest()?;
        return Ok(Change::RowsReplaced("ALTER TABLE … DROP PARTITION".into()));
    }
    if p.is_kw("SYSTEM") && p.is_kw_at(1, "VERSIONING") {
        return Err("DROP SYSTEM VERSIONING removes hidden columns and history rows".into());
    }
    if p.is_kw("DEFAULT") {
        return Err("unknown ALTER TABLE … DROP DEFAULT".into());
    }
    p.eat_kw("COLUMN");
    let if_exists = p.eat_kws(&["IF", "EXISTS"]);
    let name = p.column_name()?;
    let _ = p.eat_kw("RESTRICT") || p.eat_kw("CASCADE");
    Ok(Change::DropColumn { name, if_exists })
}
