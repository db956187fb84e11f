//! Statements other than `ALTER TABLE`'s specifications: which statement, which tables.

use super::alter::{alter, database_charset};
use super::lex::Tok;
use super::parse::{Parsed, Parser};
use super::{Change, CreateTable, Ddl, TableName};

/// The statement of `toks`, whose unqualified table names belong to `default_db`.
pub(super) fn statement(default_db: &str, toks: &[Tok]) -> Ddl {
    let mut p = Parser::new(default_db, toks);
    let verb = match p.peek_at(0) {
        Some(Tok::Word(w)) => w.to_ascii_uppercase(),
        _ => return Ddl::Other,
    };
    p.advance();
    let mut tables = Vec::new();
    let result = match verb.as_str() {
        "ALTER" => alter(&mut p, &mut tables),
        "CREATE" => create(&mut p, &mut tables),
        "DROP" => drop(&mut p, &mut tables),
        "RENAME" if p.eat_kw("TABLE") || p.eat_kw("TABLES") => rename(&mut p, &mut tables),
        "TRUNCATE" => {
            p.eat_kw("TABLE");
            p.table_name().map(|t| {
                tables.push(t.clone());
                p.skip_wait();
                Ddl::Truncate(t)
            })
        }
        "INSERT" | "REPLACE" | "UPDATE" | "DELETE" => Ok(dml(&mut p, &verb)),
        "LOAD" if p.is_kw("DATA") || p.is_kw("XML") => Ok(Ddl::RowsByStatement {
            verb: format!(
                "LOAD {}",
                p.describe().trim_matches('`').to_ascii_uppercase()
            ),
            tables: Vec::new(),
        }),
        _ => Ok(Ddl::Other),
    };
    let result = result.and_then(|ddl| match ddl {
        Ddl::Other | Ddl::RowsByStatement { .. } => Ok(ddl),
        _ if p.at_end() => Ok(ddl),
        _ => Err(format!("unexpected {} after the statement", p.describe())),
    });
    result.unwrap_or_else(|reason| Ddl::Unparsed { tables, reason })
}

/// After `CREATE`.
fn create(p: &mut Parser<'_>, tables: &mut Vec<TableName>) -> Parsed<Ddl> {
    let or_replace = p.eat_kws(&["OR", "REPLACE"]);
    if p.eat_kw("DATABASE") || p.eat_kw("SCHEMA") {
        return database_charset(p);
    }
    if p.eat_kw("TEMPORARY") {
        return Ok(Ddl::Other);
    }
    if p.eat_kw("TABLE") {
        return create_table(p, or_replace, tables);
    }
    let _ = p.eat_kw("ONLINE") || p.eat_kw("OFFLINE");
    let _ = p.eat_kw("UNIQUE") || p.eat_kw("FULLTEXT") || p.eat_kw("SPATIAL");
    if !p.eat_kw("INDEX") {
        return Ok(Ddl::Other); // USER, VIEW, PROCEDURE, TRIGGER, EVENT, SEQUENCE...
    }
    // CREATE INDEX [IF NOT EXISTS] i [USING t] ON tbl (…) …
    while !p.is_kw("ON") {
        if p.at_end() {
            return Err("CREATE INDEX without ON".into());
        }
        p.skip_item()?;
    }
    p.advance();
    let table = p.table_name()?;
    tables.push(table.clone());
    while !p.at_end() {
        p.skip_item()?;
    }
    Ok(Ddl::AlterTable {
        table,
        changes: vec![Change::Metadata],
    })
}

fn create_table(p: &mut Parser<'_>, or_replace: bool, tables: &mut Vec<TableName>) -> Parsed<Ddl> {
    let if_not_exists = p.eat_kws(&["IF", "NOT", "EXISTS"]);
    let table = p.table_name()?;
    tables.push(table.clone());
    let mut create = CreateTable {
        table,
        if_not_exists,
        or_replace,
        like: None,
        as_select: false,
        columns: Vec::new(),
        primary_key: Vec::new(),
        charset: None,
    };
    let parenthesised_like = p.is_punct('(') && p.is_kw_at(1, "LIKE");
    if parenthesised_like {
        p.advance();
    }
    if p.eat_kw("LIKE") {
        let like = p.table_name()?;
        tables.push(like.clone());
        create.like = Some(like);
        if parenthesised_like {
            p.expect_punct(')')?;
        }
        return Ok(Ddl::CreateTable(create));
    }
    let query_in_parens = p.is_punct('(') && (p.is_kw_at(1, "SELECT") || p.is_kw_at(1, "WITH"));
    if p.is_punct('(') && !query_in_parens {
        p.advance();
        loop {
            create_element(p, &mut create)?;
            if p.eat_punct(')') {
                break;
            }
            p.expect_punct(',')?;
        }
    }
    let (charset, as_select) = p.table_options(true)?;
    create.charset = charset;
    create.as_select = as_select;
    if as_select {
        while !p.at_end() {
            p.skip_item()?;
        }
    }
    if create.primary_key.is_empty() {
        create.primary_key = create
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.clone())
            .collect();
    }
    Ok(Ddl::CreateTable(create))
}

/// One element of `CREATE TABLE t (…)`: a column, a key, a constraint.
fn create_element(p: &mut Parser<'_>, create: &mut CreateTable) -> Parsed<()> {
    if p.eat_kw("CONSTRAINT") {
        if !p.is_any_kw(&["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"]) {
            p.ident()?;
        }
        if !p.is_kw("PRIMARY") {
            return p.skip_to_comma();
        }
    }
    if p.eat_kws(&["PRIMARY", "KEY"]) {
        create.primary_key = p.primary_key_body()?;
        return Ok(());
    }
    let keys = [
        "INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK",
    ];
    if p.is_any_kw(&keys) || (p.is_kw("PERIOD") && p.is_kw_at(1, "FOR")) {
        return p.skip_to_comma();
    }
    let name = p.column_name()?;
    let column = p.column_definition(name)?;
    create.columns.push(column);
    Ok(())
}

/// After `DROP`.
fn drop(p: &mut Parser<'_>, tables: &mut Vec<TableName>) -> Parsed<Ddl> {
    if p.eat_kw("DATABASE") || p.eat_kw("SCHEMA") {
        p.eat_kws(&["IF", "EXISTS"]);
        return Ok(Ddl::DropDatabase(p.ident()?));
    }
    if p.eat_kw("TEMPORARY") {
        return Ok(Ddl::Other);
    }
    if p.eat_kw("TABLE") || p.eat_kw("TABLES") {
        p.eat_kws(&["IF", "EXISTS"]);
        let mut dropped = Vec::new();
        loop {
            let table = p.table_name()?;
            tables.push(table.clone());
            dropped.push(table);
            if !p.eat_punct(',') {
                break;
            }
        }
        p.skip_wait();
        let _ = p.eat_kw("RESTRICT") || p.eat_kw("CASCADE");
        return Ok(Ddl::DropTable(dropped));
    }
    let _ = p.eat_kw("ONLINE") || p.eat_kw("OFFLINE");
    if p.eat_kw("INDEX") {
        // DROP INDEX [IF EXISTS] i ON tbl [ALGORITHM=…] [LOCK=…]
        p.eat_kws(&["IF", "EXISTS"]);
        let _ = p.eat_kw("ONLINE") || p.eat_kw("OFFLINE");
        let index = p.ident()?;
        p.expect_kw("ON")?;
        let table = p.table_name()?;
        tables.push(table.clone());
        while !p.at_end() {
            p.skip_item()?;
        }
        let change = if index.eq_ignore_ascii_case("PRIMARY") {
            Change::DropPrimaryKey
        } else {
            Change::Metadata
        };
        return Ok(Ddl::AlterTable {
            table,
            changes: vec![change],
        });
    }
    Ok(Ddl::Other)
}

/// After `RENAME TABLE`: `[IF EXISTS] a [WAIT n] TO b, c TO d`.
fn rename(p: &mut Parser<'_>, tables: &mut Vec<TableName>) -> Parsed<Ddl> {
    p.eat_kws(&["IF", "EXISTS"]);
    let mut pairs = Vec::new();
    loop {
        let from = p.table_name()?;
        tables.push(from.clone());
        p.skip_wait();
        p.expect_kw("TO")?;
        let to = p.table_name()?;
        tables.push(to.clone());
        pairs.push((from, to));
        if !p.eat_punct(',') {
            return Ok(Ddl::RenameTables(pairs));
        }
    }
}

/// `INSERT`/`REPLACE`/`UPDATE`/`DELETE` by statement: its target when it has a single one.
fn dml(p: &mut Parser<'_>, verb: &str) -> Ddl {
    let modifiers = [
        "LOW_PRIORITY",
        "DELAYED",
        "HIGH_PRIORITY",
        "QUICK",
        "IGNORE",
    ];
    while p.is_any_kw(&modifiers) {
        p.advance();
    }
    let single = match verb {
        "INSERT" | "REPLACE" => {
            p.eat_kw("INTO");
            p.table_name().ok()
        }
        "DELETE" if p.eat_kw("FROM") => p
            .table_name()
            .ok()
            .filter(|_| !p.is_punct(',') && !p.is_kw("USING")),
        "UPDATE" => p.table_name().ok().filter(|_| p.is_kw("SET")),
        _ => None,
    };
    Ddl::RowsByStatement {
        verb: verb.to_owned(),
        tables: single.into_iter().collect(),
    }
}
