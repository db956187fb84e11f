//! Column definitions: parsed from DDL, then mapped exactly as introspection maps them.
//!
//! Invariant: [`ColumnSpec::to_column_def`] builds the [`ColumnRow`] that
//! `information_schema.COLUMNS` would hold for the definition — the server's own rewrites
//! applied (`INTEGER` → `int`, `FLOAT(30)` → `double`, `CHAR(4) CHARACTER SET binary` →
//! `binary(4)`, ENUM members without trailing spaces, MariaDB's `JSON` → `longtext`) — and
//! parses it with [`ColumnRow::parse`], the one mapping introspection uses too.

use super::lex::{charset_of_collation, Tok};
use super::parse::{Parsed, Parser};
use super::{ColumnDefault, ColumnSpec, Defaults};
use crate::schema::{ColumnDef, ColumnRow, SchemaError};
use crate::source::ServerFlavor;

/// What `NATIONAL`/`NCHAR` types are in: utf8mb3 on both servers.
const NATIONAL_CHARSET: &str = "utf8mb3";

/// Binary operators that may continue an unparenthesised MariaDB `DEFAULT` expression.
const OPERATORS: &[char] = &['+', '-', '*', '/', '%', '|', '&', '^', '<', '>', '='];

impl Parser<'_> {
    /// The definition of column `name` after its name: the type, then attributes up to a
    /// top-level `,` or `)`, `FIRST`/`AFTER`, a trailing partition clause, or the end.
    pub(super) fn column_definition(&mut self, name: String) -> Parsed<ColumnSpec> {
        let mut spec = ColumnSpec {
            name,
            data_type: String::new(),
            length: Vec::new(),
            values: Vec::new(),
            unsigned: false,
            charset: None,
            nullable: true,
            primary_key: false,
            default: None,
            generated: false,
            auto_increment: false,
        };
        let mut not_null = false;
        self.data_type(&mut spec, &mut not_null)?;
        let mut collation: Option<String> = None;
        loop {
            let ends = self.at_end()
                || self.is_punct(',')
                || self.is_punct(')')
                || self.is_any_kw(&["FIRST", "AFTER"])
                || (self.is_kw("PARTITION") && self.is_kw_at(1, "BY"))
                || (self.is_kw("REMOVE") && self.is_kw_at(1, "PARTITIONING"));
            if ends {
                break;
            }
            self.attribute(&mut spec, &mut not_null, &mut collation)
                .map_err(|e| format!("column `{}`: {e}", spec.name))?;
        }
        if spec.charset.is_none() {
            spec.charset = collation.as_deref().and_then(charset_of_collation);
        }
        spec.nullable = !(not_null || spec.primary_key);
        Ok(spec)
    }

    fn data_type(&mut self, spec: &mut ColumnSpec, not_null: &mut bool) -> Parsed<()> {
        let word = match self.advance() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            _ => return Err(format!("column `{}`: expected a data type", spec.name)),
        };
        let mut national = false;
        let data_type = match word.as_str() {
            "tinyint" | "int1" => "tinyint",
            "smallint" | "int2" => "smallint",
            "mediumint" | "int3" | "middleint" => "mediumint",
            "int" | "integer" | "int4" => "int",
            "bigint" | "int8" => "bigint",
            "bool" | "boolean" => {
                spec.length = vec![1];
                "tinyint"
            }
            "serial" => {
                // BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE
                spec.unsigned = true;
                spec.auto_increment = true;
                *not_null = true;
                "bigint"
            }
            "decimal" | "dec" | "numeric" | "fixed" => "decimal",
            "float" | "float4" => "float",
            "double" => {
                self.eat_kw("PRECISION");
                "double"
            }
            "float8" | "real" => "double",
            "char" | "character" if self.eat_kw("VARYING") => "varchar",
            "char" | "character" => "char",
            "nchar" | "national" => {
                national = true;
                if word == "national" && !self.eat_kw("VARCHAR") {
                    if !(self.eat_kw("CHAR") || self.eat_kw("CHARACTER")) {
                        return Err(format!("column `{}`: expected NATIONAL CHAR", spec.name));
                    }
                    if self.eat_kw("VARYING") {
                        "varchar"
                    } else {
                        "char"
                    }
                } else if word == "nchar" && (self.eat_kw("VARCHAR") || self.eat_kw("VARYING")) {
                    "varchar"
                } else if word == "nchar" {
                    "char"
                } else {
                    "varchar"
                }
            }
            "nvarchar" => {
                national = true;
                "varchar"
            }
            "varchar" | "varcharacter" => "varchar",
            "long" if self.eat_kw("VARBINARY") => "mediumblob",
            "long" => {
                let _ = self.eat_kw("VARCHAR") || self.eat_kws(&["CHAR", "VARYING"]);
                "mediumtext"
            }
            other => other,
        }
        .to_owned();
        if national {
            spec.charset = Some(NATIONAL_CHARSET.into());
        }
        spec.data_type = data_type;
        if self.is_punct('(') {
            if matches!(spec.data_type.as_str(), "enum" | "set") {
                spec.values = self.quoted_values()?;
            } else {
                spec.length = self
                    .numbers()
                    .map_err(|e| format!("column `{}`: {e}", spec.name))?;
            }
        }
        // FLOAT(p) with 25 <= p <= 53 is a DOUBLE; FLOAT(m,d) stays FLOAT.
        if spec.data_type == "float" && spec.length.len() == 1 {
            if spec.length.first().is_some_and(|&p| p > 24) {
                spec.data_type = "double".into();
            }
            spec.length.clear();
        }
        Ok(())
    }

    /// `(n)` or `(p, s)`.
    fn numbers(&mut self) -> Parsed<Vec<u64>> {
        self.expect_punct('(')?;
        let mut out = Vec::new();
        loop {
            match self.advance() {
                Some(Tok::Num(n)) => out.push(
                    n.parse::<u64>()
                        .map_err(|_| format!("`{n}` is not a length"))?,
                ),
                _ => return Err("expected a number in the type's parentheses".into()),
            }
            if self.eat_punct(')') {
                return Ok(out);
            }
            self.expect_punct(',')?;
        }
    }

    /// `('a', 'b ')` of ENUM/SET: members unquoted, trailing spaces removed (as the server
    /// stores them).
    fn quoted_values(&mut self) -> Parsed<Vec<String>> {
        self.expect_punct('(')?;
        let mut out = Vec::new();
        loop {
            let value = self.string().ok_or_else(|| {
                format!(
                    "expected a quoted ENUM/SET member, found {}",
                    self.describe()
                )
            })?;
            out.push(value.trim_end_matches(' ').to_owned());
            if self.eat_punct(')') {
                return Ok(out);
            }
            self.expect_punct(',')?;
        }
    }

    /// A string literal; adjacent literals concatenate (`'a' 'b'` is `'ab'`).
    fn string(&mut self) -> Option<String> {
        let mut text: Option<String> = None;
        while let Some(Tok::Str(s) | Tok::DoubleQuoted(s)) = self.peek_at(0) {
            text.get_or_insert_with(String::new).push_str(s);
            self.advance();
        }
        text
    }

    fn attribute(
        &mut self,
        spec: &mut ColumnSpec,
        not_null: &mut bool,
        collation: &mut Option<String>,
    ) -> Parsed<()> {
        let word = match self.peek_at(0) {
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err(format!("unexpected {}", self.describe())),
        };
        self.advance();
        match word.as_str() {
            "NOT" if self.eat_kw("NULL") => *not_null = true,
            "NOT" if self.eat_kw("SECONDARY") || self.eat_kw("ENFORCED") => {}
            "NULL" | "SIGNED" | "BINARY" | "ENFORCED" | "VISIBLE" | "INVISIBLE" | "VIRTUAL"
            | "STORED" | "PERSISTENT" => {}
            "UNSIGNED" | "ZEROFILL" => spec.unsigned = true,
            "ASCII" => spec.charset = Some("latin1".into()),
            "UNICODE" => spec.charset = Some("ucs2".into()),
            "BYTE" => spec.charset = Some("binary".into()),
            "CHARACTER" | "CHAR" if self.eat_kw("SET") => self.charset_name(spec)?,
            "CHARSET" => self.charset_name(spec)?,
            "COLLATE" => {
                self.eat_punct('=');
                *collation = Some(self.charset_or_collation()?);
            }
            "DEFAULT" => spec.default = Some(self.default_value()?),
            "ON" => {
                self.expect_kw("UPDATE")?;
                self.ident()?;
                if self.is_punct('(') {
                    self.skip_group()?;
                }
            }
            "AUTO_INCREMENT" => spec.auto_increment = true,
            "UNIQUE" => {
                self.eat_kw("KEY");
            }
            "PRIMARY" => {
                self.expect_kw("KEY")?;
                spec.primary_key = true;
            }
            "KEY" => spec.primary_key = true,
            "COMMENT" | "ENGINE_ATTRIBUTE" | "SECONDARY_ENGINE_ATTRIBUTE" => {
                self.eat_punct('=');
                self.string()
                    .ok_or_else(|| format!("{word} without a string"))?;
            }
            "COLUMN_FORMAT" | "STORAGE" => {
                self.ident()?;
            }
            "SRID" => {
                self.advance();
            }
            "REF_SYSTEM_ID" => {
                self.eat_punct('=');
                self.advance();
            }
            "GENERATED" => {
                self.expect_kw("ALWAYS")?;
                self.expect_kw("AS")?;
                self.generated(spec)?;
            }
            "AS" => self.generated(spec)?,
            "CHECK" => self.skip_group()?,
            "CONSTRAINT" => {
                if !self.is_kw("CHECK") {
                    self.ident()?;
                }
                self.expect_kw("CHECK")?;
                self.skip_group()?;
            }
            "REFERENCES" => self.references()?,
            "SERIAL" => {
                self.expect_kw("DEFAULT")?;
                self.expect_kw("VALUE")?;
                *not_null = true;
                spec.auto_increment = true;
            }
            "WITHOUT" if self.eat_kws(&["SYSTEM", "VERSIONING"]) => {}
            "WITH" if self.is_kw("SYSTEM") => {
                return Err("WITH SYSTEM VERSIONING adds hidden history columns".into())
            }
            "COMPRESSED" => {
                return Err("MariaDB COMPRESSED columns have their own binlog types".into())
            }
            _ => return Err(format!("unknown column attribute `{word}`")),
        }
        Ok(())
    }

    fn charset_name(&mut self, spec: &mut ColumnSpec) -> Parsed<()> {
        self.eat_punct('=');
        spec.charset = Some(self.charset_or_collation()?.to_ascii_lowercase());
        Ok(())
    }

    /// After `AS`: `(expr) [VIRTUAL|STORED|PERSISTENT]`, or MariaDB's `ROW START|END`.
    fn generated(&mut self, spec: &mut ColumnSpec) -> Parsed<()> {
        if self.is_kw("ROW") {
            return Err("a system-versioning ROW START/END column".into());
        }
        self.skip_group()?;
        spec.generated = true;
        Ok(())
    }

    /// `REFERENCES t [(cols)] [MATCH x] [ON DELETE|UPDATE action]…`.
    fn references(&mut self) -> Parsed<()> {
        self.table_name()?;
        if self.is_punct('(') {
            self.skip_group()?;
        }
        loop {
            if self.eat_kw("MATCH") {
                self.ident()?;
            } else if self.is_kw("ON")
                && (self.is_kw_at(1, "DELETE")
                    || (self.is_kw_at(1, "UPDATE")
                        && ["RESTRICT", "CASCADE", "SET", "NO"]
                            .iter()
                            .any(|a| self.is_kw_at(2, a))))
            {
                self.advance();
                self.advance();
                if !(self.eat_kws(&["SET", "NULL"])
                    || self.eat_kws(&["SET", "DEFAULT"])
                    || self.eat_kws(&["NO", "ACTION"])
                    || self.eat_kw("RESTRICT")
                    || self.eat_kw("CASCADE"))
                {
                    return Err(format!("unknown referential action {}", self.describe()));
                }
            } else {
                return Ok(());
            }
        }
    }

    /// The value after `DEFAULT`.
    fn default_value(&mut self) -> Parsed<ColumnDefault> {
        let start = self.position();
        let value = self.default_operand()?;
        if !self
            .peek_at(0)
            .is_some_and(|t| matches!(t, Tok::Punct(c) if OPERATORS.contains(c)))
        {
            return Ok(value);
        }
        // MariaDB: an unparenthesised expression (`DEFAULT 1 + 1`).
        while matches!(self.peek_at(0), Some(Tok::Punct(c)) if OPERATORS.contains(c)) {
            self.advance();
            self.default_operand()?;
        }
        Ok(ColumnDefault::Expression(self.render_from(start)))
    }

    fn default_operand(&mut self) -> Parsed<ColumnDefault> {
        let start = self.position();
        let mut negative = false;
        loop {
            if self.eat_punct('-') {
                negative = !negative;
            } else if !self.eat_punct('+') {
                break;
            }
        }
        if let Some(text) = self.string() {
            return Ok(if negative {
                ColumnDefault::Expression(self.render_from(start))
            } else {
                ColumnDefault::Text(text)
            });
        }
        let value = match self.peek_at(0) {
            Some(Tok::Num(n)) => {
                let n = if negative { format!("-{n}") } else { n.clone() };
                self.advance();
                ColumnDefault::Number(n)
            }
            Some(Tok::Bits(v)) if !negative => {
                let v = *v;
                self.advance();
                ColumnDefault::Bits(v)
            }
            Some(Tok::Punct('(')) => {
                self.skip_group()?;
                ColumnDefault::Expression(self.render_from(start))
            }
            Some(Tok::Word(w)) => {
                let upper = w.to_ascii_uppercase();
                self.advance();
                match upper.as_str() {
                    "NULL" if !negative => ColumnDefault::Null,
                    "TRUE" if !negative => ColumnDefault::Number("1".into()),
                    "FALSE" if !negative => ColumnDefault::Number("0".into()),
                    "DATE" | "TIME" | "TIMESTAMP" if !negative => match self.string() {
                        Some(text) => ColumnDefault::Text(text),
                        None => ColumnDefault::Expression(upper),
                    },
                    _ => {
                        if upper == "NEXT" {
                            // NEXT VALUE FOR sequence
                            self.expect_kw("VALUE")?;
                            self.expect_kw("FOR")?;
                            self.table_name()?;
                        } else if self.is_punct('(') {
                            self.skip_group()?;
                        }
                        ColumnDefault::Expression(self.render_from(start))
                    }
                }
            }
            _ => return Err(format!("DEFAULT followed by {}", self.describe())),
        };
        Ok(value)
    }
}

impl ColumnSpec {
    /// The column as `information_schema.COLUMNS` would describe it once the server has
    /// applied the definition; `defaults.charset` is the table's default charset.
    pub(crate) fn column_row(&self, defaults: &Defaults<'_>) -> ColumnRow {
        let mut charset = self
            .charset
            .clone()
            .unwrap_or_else(|| defaults.charset.to_ascii_lowercase());
        let mut data_type = self.data_type.as_str();
        if data_type == "json" && defaults.flavor == ServerFlavor::Mariadb {
            // MariaDB: JSON is LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin.
            data_type = "longtext";
            charset = self.charset.clone().unwrap_or_else(|| "utf8mb4".into());
        }
        if charset == "binary" {
            // The server turns a text type in the binary charset into the binary type.
            data_type = match data_type {
                "char" => "binary",
                "varchar" => "varbinary",
                "tinytext" => "tinyblob",
                "text" => "blob",
                "mediumtext" => "mediumblob",
                "longtext" => "longblob",
                other => other,
            };
        }
        let first = self.length.first().copied();
        let column_type = match data_type {
            "enum" | "set" => {
                let quoted: Vec<String> = self
                    .values
                    .iter()
                    .map(|v| format!("'{}'", v.replace('\'', "''")))
                    .collect();
                format!("{data_type}({})", quoted.join(","))
            }
            _ => {
                let args: Vec<String> = self.length.iter().map(u64::to_string).collect();
                let args = if args.is_empty() {
                    String::new()
                } else {
                    format!("({})", args.join(","))
                };
                let sign = if self.unsigned { " unsigned" } else { "" };
                format!("{data_type}{args}{sign}")
            }
        };
        let text = matches!(
            data_type,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        );
        ColumnRow {
            name: self.name.clone(),
            data_type: data_type.to_owned(),
            column_type,
            charset: text.then_some(charset),
            datetime_precision: matches!(data_type, "datetime" | "timestamp" | "time")
                .then(|| first.unwrap_or(0)),
            numeric_precision: match data_type {
                "decimal" => Some(first.unwrap_or(10)),
                "bit" => Some(first.unwrap_or(1)),
                _ => None,
            },
            numeric_scale: (data_type == "decimal")
                .then(|| self.length.get(1).copied().unwrap_or(0)),
            character_length: matches!(data_type, "binary" | "char").then(|| first.unwrap_or(1)),
            nullable: self.nullable,
        }
    }

    /// The column's definition, through the same parser introspection uses.
    pub(crate) fn to_column_def(&self, defaults: &Defaults<'_>) -> Result<ColumnDef, SchemaError> {
        self.column_row(defaults).parse()
    }
}
