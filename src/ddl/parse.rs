//! The token cursor shared by the statement parsers, and the pieces they share: names,
//! skipping, key lists, table options.
//!
//! Invariant: skipping is by balanced parentheses, to the next top-level comma or to the end,
//! so an expression or a partition list can never be mistaken for what follows it; an
//! unbalanced statement is an error, never a guess.

use super::lex::Tok;
use super::TableName;

pub(super) type Parsed<T> = Result<T, String>;

pub(super) struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    pub(super) default_db: &'a str,
}

impl<'a> Parser<'a> {
    pub(super) fn new(default_db: &'a str, toks: &'a [Tok]) -> Self {
        // A trailing `;` is not part of the statement.
        let mut end = toks.len();
        while end > 0 && toks.get(end - 1) == Some(&Tok::Punct(';')) {
            end -= 1;
        }
        Parser {
            toks: toks.get(..end).unwrap_or_default(),
            pos: 0,
            default_db,
        }
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<&'a Tok> {
        self.toks.get(self.pos + ahead)
    }

    pub(super) fn is_kw_at(&self, ahead: usize, kw: &str) -> bool {
        matches!(self.peek_at(ahead), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    pub(super) fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    pub(super) fn is_any_kw(&self, kws: &[&str]) -> bool {
        kws.iter().any(|k| self.is_kw(k))
    }

    pub(super) fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Consumes `kws` if they all follow, in order; otherwise nothing.
    pub(super) fn eat_kws(&mut self, kws: &[&str]) -> bool {
        let hit = kws.iter().enumerate().all(|(i, k)| self.is_kw_at(i, k));
        if hit {
            self.pos += kws.len();
        }
        hit
    }

    pub(super) fn expect_kw(&mut self, kw: &str) -> Parsed<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw}, found {}", self.describe()))
        }
    }

    pub(super) fn is_punct(&self, c: char) -> bool {
        self.peek_at(0) == Some(&Tok::Punct(c))
    }

    pub(super) fn eat_punct(&mut self, c: char) -> bool {
        let hit = self.is_punct(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub(super) fn expect_punct(&mut self, c: char) -> Parsed<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(format!("expected `{c}`, found {}", self.describe()))
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    pub(super) fn advance(&mut self) -> Option<&'a Tok> {
        let tok = self.toks.get(self.pos);
        if tok.is_some() {
            self.pos += 1;
        }
        tok
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// The statement's text from token `start` to the current one, re-spaced (for messages).
    pub(super) fn render_from(&self, start: usize) -> String {
        let mut out = String::new();
        let mut previous: Option<&Tok> = None;
        for tok in self.toks.get(start..self.pos).unwrap_or_default() {
            let tight = matches!(previous, None | Some(Tok::Punct('(' | '.')))
                || matches!(tok, Tok::Punct(')' | ',' | '.'))
                || (matches!(tok, Tok::Punct('(')) && matches!(previous, Some(Tok::Word(_))));
            if !tight {
                out.push(' ');
            }
            match tok {
                Tok::Word(w) | Tok::Num(w) => out.push_str(w),
                Tok::Quoted(q) => out.push_str(&format!("`{}`", q.replace('`', "``"))),
                Tok::Str(s) | Tok::DoubleQuoted(s) => {
                    out.push_str(&format!("'{}'", s.replace('\'', "''")))
                }
                Tok::Bits(Some(v)) => out.push_str(&format!("0x{v:x}")),
                Tok::Bits(None) => out.push_str("0x…"),
                Tok::Punct(c) => out.push(*c),
            }
            previous = Some(tok);
        }
        out
    }

    /// The current token, for error messages.
    pub(super) fn describe(&self) -> String {
        match self.peek_at(0) {
            None => "the end of the statement".into(),
            Some(Tok::Word(w)) => format!("`{w}`"),
            Some(Tok::Quoted(q)) => format!("`{q}` (quoted)"),
            Some(Tok::Str(s) | Tok::DoubleQuoted(s)) => format!("string '{s}'"),
            Some(Tok::Num(n)) => format!("number {n}"),
            Some(Tok::Bits(_)) => "a bit literal".into(),
            Some(Tok::Punct(c)) => format!("`{c}`"),
        }
    }

    /// A name: an unquoted word, a backquoted name, or a double-quoted one (`ANSI_QUOTES`:
    /// where a name is expected, a double-quoted token can only be a name).
    pub(super) fn ident(&mut self) -> Parsed<String> {
        match self.peek_at(0) {
            Some(Tok::Word(w) | Tok::Quoted(w) | Tok::DoubleQuoted(w)) => {
                self.pos += 1;
                Ok(w.clone())
            }
            _ => Err(format!("expected a name, found {}", self.describe())),
        }
    }

    /// A character set or collation name. The server's grammar takes a name or a string there
    /// (`ident_or_text`): `CHARACTER SET 'utf8mb4'` and `COLLATE='utf8mb4_bin'` are how HeidiSQL
    /// writes them.
    pub(super) fn charset_or_collation(&mut self) -> Parsed<String> {
        match self.peek_at(0) {
            Some(Tok::Word(w) | Tok::Quoted(w) | Tok::DoubleQuoted(w) | Tok::Str(w)) => {
                self.pos += 1;
                Ok(w.clone())
            }
            _ => Err(format!(
                "expected a character set or collation name, found {}",
                self.describe()
            )),
        }
    }

    /// A column name, possibly qualified (`t.c`, `db.t.c`): its last part.
    pub(super) fn column_name(&mut self) -> Parsed<String> {
        let mut name = self.ident()?;
        for _ in 0..2 {
            if !self.eat_punct('.') {
                break;
            }
            name = self.ident()?;
        }
        Ok(name)
    }

    pub(super) fn table_name(&mut self) -> Parsed<TableName> {
        let first = self.ident()?;
        if self.eat_punct('.') {
            Ok((first, self.ident()?))
        } else {
            Ok((self.default_db.to_owned(), first))
        }
    }

    /// At `(`: consumes through the matching `)`.
    pub(super) fn skip_group(&mut self) -> Parsed<()> {
        self.expect_punct('(')?;
        let mut depth = 1usize;
        while depth > 0 {
            match self.advance() {
                None => return Err("unbalanced parentheses".into()),
                Some(Tok::Punct('(')) => depth += 1,
                Some(Tok::Punct(')')) => depth -= 1,
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Consumes one token, or a whole parenthesised group.
    pub(super) fn skip_item(&mut self) -> Parsed<()> {
        if self.is_punct('(') {
            self.skip_group()
        } else if self.is_punct(')') {
            Err("unbalanced parentheses".into())
        } else {
            self.advance();
            Ok(())
        }
    }

    /// Consumes up to (not including) the next top-level `,` or `)`, or the end.
    pub(super) fn skip_to_comma(&mut self) -> Parsed<()> {
        while !self.at_end() && !self.is_punct(',') && !self.is_punct(')') {
            self.skip_item()?;
        }
        Ok(())
    }

    /// Consumes the rest of the statement (parentheses still balanced).
    pub(super) fn skip_rest(&mut self) -> Parsed<()> {
        while !self.at_end() {
            self.skip_item()?;
        }
        Ok(())
    }

    /// `WAIT n` / `NOWAIT` (MariaDB lock timeouts).
    pub(super) fn skip_wait(&mut self) {
        if self.eat_kw("NOWAIT") {
            return;
        }
        if self.is_kw("WAIT") && matches!(self.peek_at(1), Some(Tok::Num(_))) {
            self.pos += 2;
        }
    }

    /// `(a, b(10), c DESC)`: the column names of a key.
    pub(super) fn key_columns(&mut self) -> Parsed<Vec<String>> {
        self.expect_punct('(')?;
        let mut columns = Vec::new();
        loop {
            if self.is_punct('(') {
                return Err("a functional key part in a primary key".into());
            }
            columns.push(self.column_name()?);
            if self.is_punct('(') {
                self.skip_group()?; // prefix length
            }
            let _ = self.eat_kw("ASC") || self.eat_kw("DESC");
            if self.eat_punct(')') {
                return Ok(columns);
            }
            self.expect_punct(',')?;
        }
    }

    /// After `PRIMARY KEY [IF NOT EXISTS]`: `[name] [USING t] (cols) [options]`.
    pub(super) fn primary_key_body(&mut self) -> Parsed<Vec<String>> {
        while !self.is_punct('(') {
            if self.at_end() || self.is_punct(',') {
                return Err("PRIMARY KEY without a column list".into());
            }
            self.advance();
        }
        let columns = self.key_columns()?;
        self.skip_to_comma()?;
        Ok(columns)
    }

    /// Table options: the charset they set, if any. For `ALTER` (`create` false) they run to
    /// the next top-level comma; after `CREATE TABLE (…)` to the end, or to the query of a
    /// `CREATE TABLE … SELECT`, which the second value then reports.
    pub(super) fn table_options(&mut self, create: bool) -> Parsed<(Option<String>, bool)> {
        let mut charset: Option<String> = None;
        while !self.at_end() && (create || !self.is_punct(',')) {
            if create && self.is_any_kw(&["SELECT", "AS", "IGNORE", "REPLACE", "VALUES", "TABLE"]) {
                return Ok((charset, true));
            }
            if create && self.is_kw("WITH") {
                if self.is_kw_at(1, "SYSTEM") {
                    return Err(
                        "WITH SYSTEM VERSIONING adds hidden row_start/row_end columns".into(),
                    );
                }
                return Ok((charset, true));
            }
            if self.is_punct('(') && (self.is_kw_at(1, "SELECT") || self.is_kw_at(1, "WITH")) {
                return Ok((charset, true));
            }
            let named = self.eat_kws(&["CHARACTER", "SET"])
                || self.eat_kws(&["CHAR", "SET"])
                || self.eat_kw("CHARSET");
            if named {
                self.eat_punct('=');
                let name = self.charset_or_collation()?;
                if name.eq_ignore_ascii_case("DEFAULT") {
                    return Err("CHARACTER SET DEFAULT (the database's, not tracked here)".into());
                }
                charset = Some(name.to_ascii_lowercase());
                continue;
            }
            if self.eat_kw("COLLATE") {
                self.eat_punct('=');
                let name = self.charset_or_collation()?;
                if charset.is_none() {
                    charset = super::lex::charset_of_collation(&name);
                }
                continue;
            }
            if self.is_punct(',') {
                // CREATE TABLE options may be separated by commas.
                self.advance();
                continue;
            }
            self.skip_item()?;
        }
        Ok((charset, false))
    }
}
