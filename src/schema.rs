//! Source table definitions, as read from `information_schema`.
//!
//! A [`TableDef`] is the one description of a table that the snapshot reader, the binlog
//! decoder and the target DDL builder share, so the three cannot disagree on a column's type.
//! Parsing here is pure: it turns the strings `information_schema.COLUMNS` holds into a
//! [`SourceType`], and refuses what it does not know instead of guessing.

use serde::{Deserialize, Serialize};

pub(crate) use crate::charset::Charset;
use crate::config::Keyless;

/// A replicated source table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableDef {
    pub db: String,
    pub name: String,
    /// Every column of the table in ordinal order: the order the binlog sends them in.
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns`, in primary key order; empty for a table without one.
    pub primary_key: Vec<usize>,
}

impl TableDef {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }

    pub fn primary_key_names(&self) -> impl Iterator<Item = &str> {
        self.primary_key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
    }
}

/// A source table with what the pipe's options make of it in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TablePlan {
    pub def: TableDef,
    /// Target table name (the source name unless `tables.options` says otherwise).
    pub target: String,
    /// ORDER BY of the target: the primary key unless configured; always contains it.
    pub order_by: Vec<String>,
    /// Per column of `def`: whether it is replicated (`exclude_columns` clears it).
    pub included: Vec<bool>,
    /// A table without a primary key replicated append-only (`tables.keyless = "append"`):
    /// every change is a new row, ordered by version; `order_by` is empty.
    pub append: bool,
}

/// The prefix of the columns tributary adds to every target table: a source column named
/// like them would be written into them.
pub(crate) const METADATA_PREFIX: &str = "_tributary_";

impl TablePlan {
    /// The plan of a table the pipe selects: its options and its target name
    /// (`tables.options.*.target`, else `tables.target_name`).
    pub fn selected(
        def: TableDef,
        tables: &crate::config::TablesConfig,
    ) -> Result<TablePlan, String> {
        let options = tables
            .options
            .get(&def.qualified())
            .cloned()
            .unwrap_or_default();
        let mut plan = TablePlan::new(def, &options, tables.keyless)?;
        plan.target = tables.target_of(&plan.def.db, &plan.def.name);
        Ok(plan)
    }

    /// The plan of `def` with its `options`; a table without a primary key is planned as
    /// `keyless` says.
    pub fn new(
        def: TableDef,
        options: &crate::config::TableOptions,
        keyless: Keyless,
    ) -> Result<TablePlan, String> {
        let table = def.qualified();
        let append = def.primary_key.is_empty();
        if append && keyless == Keyless::Isolate {
            return Err(format!(
                "{table} has no primary key: its updates and deletes cannot be applied to rows that nothing identifies; add a primary key, or set tables.keyless = \"append\" to replicate it append-only"
            ));
        }
        if append && (!options.order_by.is_empty() || options.partition_by.is_some()) {
            return Err(format!(
                "tables.options.\"{table}\" sets order_by or partition_by, but the table has no primary key: it is replicated append-only, ordered by version and read whole"
            ));
        }
        if let Some(c) = def
            .columns
            .iter()
            .find(|c| c.name.to_ascii_lowercase().starts_with(METADATA_PREFIX))
        {
            return Err(format!(
                "column `{}` of {table} clashes with the columns tributary adds to every target table (`{METADATA_PREFIX}*`); rename the column or exclude the table",
                c.name
            ));
        }
        for name in options.exclude_columns.iter().chain(&options.order_by) {
            if !def.columns.iter().any(|c| &c.name == name) {
                return Err(format!(
                    "tables.options.\"{table}\" names column `{name}`, which the table does not have"
                ));
            }
        }
        let key: Vec<String> = def.primary_key_names().map(str::to_owned).collect();
        if let Some(k) = key.iter().find(|k| options.exclude_columns.contains(k)) {
            return Err(format!(
                "tables.options.\"{table}\".exclude_columns contains primary key column `{k}`; the key is needed to apply updates and deletes"
            ));
        }
        let order_by = if options.order_by.is_empty() {
            key
        } else {
            if let Some(k) = key.iter().find(|k| !options.order_by.contains(k)) {
                return Err(format!(
                    "tables.options.\"{table}\".order_by {:?} must contain every primary key column; `{k}` is missing",
                    options.order_by
                ));
            }
            options.order_by.clone()
        };
        let included = def
            .columns
            .iter()
            .map(|c| !options.exclude_columns.contains(&c.name))
            .collect();
        Ok(TablePlan {
            target: options.target.clone().unwrap_or_else(|| def.name.clone()),
            order_by,
            included,
            append,
            def,
        })
    }

    /// Why `plan` cannot be added beside `plans`: another table already writes into its
    /// target table.
    pub fn collision(&self, plans: &[TablePlan]) -> Option<String> {
        let other = plans
            .iter()
            .find(|p| p.def.qualified() != self.def.qualified() && p.target == self.target)?;
        Some(format!(
            "{} would be replicated into the target table `{}`, which {} already uses; give one of them another target name (tables.target_name = \"{{db}}_{{table}}\", or tables.options.\"{}\".target)",
            self.def.qualified(),
            self.target,
            other.def.qualified(),
            self.def.qualified()
        ))
    }

    /// The replicated columns, in source order.
    pub fn columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.def
            .columns
            .iter()
            .zip(&self.included)
            .filter(|(_, inc)| **inc)
            .map(|(c, _)| c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ColumnDef {
    pub name: String,
    pub ty: SourceType,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SourceType {
    /// TINYINT (1), SMALLINT (2), MEDIUMINT (3), INT (4), BIGINT (8).
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Decimal {
        precision: u8,
        scale: u8,
    },
    Float,
    Double,
    Bit {
        bits: u8,
    },
    /// CHAR, VARCHAR, *TEXT.
    Text {
        charset: Charset,
    },
    /// VARBINARY, *BLOB: bytes unchanged.
    Binary,
    /// BINARY(len): the binlog drops its trailing 0x00 padding, which decoding restores.
    FixedBinary {
        len: u16,
    },
    Enum {
        values: Vec<String>,
    },
    Set {
        values: Vec<String>,
    },
    Date,
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Time {
        fsp: u8,
    },
    Year,
    /// MySQL binary JSON or MariaDB's JSON alias of LONGTEXT.
    Json,
    /// MariaDB's UUID: 16 bytes, sent in the order of its text form.
    Uuid,
    /// MariaDB's INET4: 4 bytes, network order.
    Inet4,
    /// MariaDB's INET6: 16 bytes, network order.
    Inet6,
    /// GEOMETRY and its subtypes: sent as the server stores them (a 4-byte SRID, then WKB),
    /// written as plain WKB.
    Geometry,
}

/// One row of `information_schema.COLUMNS`, the fields the parser needs.
#[derive(Debug, Clone)]
pub(crate) struct ColumnRow {
    pub name: String,
    pub data_type: String,
    pub column_type: String,
    pub charset: Option<String>,
    pub datetime_precision: Option<u64>,
    pub numeric_precision: Option<u64>,
    pub numeric_scale: Option<u64>,
    /// CHARACTER_MAXIMUM_LENGTH: the byte length of BINARY(n).
    pub character_length: Option<u64>,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("column `{column}` has type `{column_type}`, which tributary cannot replicate yet")]
    UnsupportedType { column: String, column_type: String },
    #[error("column `{column}` uses character set `{charset}`, which tributary cannot convert to UTF-8 (supported: {})", crate::charset::SUPPORTED)]
    UnsupportedCharset { column: String, charset: String },
    #[error("column `{column}`: cannot read the definition `{column_type}`: {reason}")]
    Malformed {
        column: String,
        column_type: String,
        reason: String,
    },
}

impl ColumnRow {
    pub fn parse(&self) -> Result<ColumnDef, SchemaError> {
        let unsigned = self.column_type.to_ascii_lowercase().contains("unsigned");
        let fsp = self.datetime_precision.unwrap_or(0).min(6) as u8;
        let int = |bytes| SourceType::Int { bytes, unsigned };
        let ty = match self.data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "bool" | "boolean" => int(1),
            "smallint" => int(2),
            "mediumint" => int(3),
            "int" | "integer" => int(4),
            "bigint" => int(8),
            "decimal" | "numeric" => SourceType::Decimal {
                precision: self.numeric_precision.unwrap_or(10).min(65) as u8,
                scale: self.numeric_scale.unwrap_or(0).min(30) as u8,
            },
            "float" => SourceType::Float,
            "double" | "real" => SourceType::Double,
            "bit" => SourceType::Bit {
                bits: self.numeric_precision.unwrap_or(1).clamp(1, 64) as u8,
            },
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                let name = self.charset.as_deref().unwrap_or("binary");
                match Charset::from_name(name) {
                    Some(charset) => SourceType::Text { charset },
                    None => {
                        return Err(SchemaError::UnsupportedCharset {
                            column: self.name.clone(),
                            charset: name.to_owned(),
                        })
                    }
                }
            }
            "binary" => SourceType::FixedBinary {
                len: self.character_length.unwrap_or(0).min(255) as u16,
            },
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => SourceType::Binary,
            "enum" => SourceType::Enum {
                values: self.quoted_list("enum")?,
            },
            "set" => SourceType::Set {
                values: self.quoted_list("set")?,
            },
            "date" => SourceType::Date,
            "datetime" => SourceType::DateTime { fsp },
            "timestamp" => SourceType::Timestamp { fsp },
            "time" => SourceType::Time { fsp },
            "year" => SourceType::Year,
            "json" => SourceType::Json,
            "uuid" => SourceType::Uuid,
            "inet4" => SourceType::Inet4,
            "inet6" => SourceType::Inet6,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => SourceType::Geometry,
            _ => {
                return Err(SchemaError::UnsupportedType {
                    column: self.name.clone(),
                    column_type: self.column_type.clone(),
                })
            }
        };
        Ok(ColumnDef {
            name: self.name.clone(),
            ty,
            nullable: self.nullable,
        })
    }

    /// Parses the value list of `enum('a','b')` / `set(...)` as `COLUMN_TYPE` prints it:
    /// single quotes, a quote inside a value doubled.
    fn quoted_list(&self, keyword: &str) -> Result<Vec<String>, SchemaError> {
        let malformed = |reason: &str| SchemaError::Malformed {
            column: self.name.clone(),
            column_type: self.column_type.clone(),
            reason: reason.to_owned(),
        };
        let body = self
            .column_type
            .get(keyword.len()..)
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| malformed("expected a parenthesised list"))?;
        let mut values = Vec::new();
        let mut chars = body.chars().peekable();
        loop {
            if chars.next() != Some('\'') {
                return Err(malformed("expected a quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        value.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(malformed("unterminated quoted value")),
                }
            }
            values.push(value);
            match chars.next() {
                Some(',') => continue,
                None => return Ok(values),
                Some(_) => return Err(malformed("expected `,` between values")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(data_type: &str, column_type: &str) -> ColumnRow {
        ColumnRow {
            name: "c".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            charset: Some("utf8mb4".into()),
            datetime_precision: None,
            numeric_precision: None,
            numeric_scale: None,
            character_length: None,
            nullable: false,
        }
    }

    #[test]
    fn integers_keep_width_and_sign() {
        assert_eq!(
            row("bigint", "bigint(20) unsigned").parse().map(|c| c.ty),
            Ok(SourceType::Int {
                bytes: 8,
                unsigned: true
            })
        );
        assert_eq!(
            row("mediumint", "mediumint(9)").parse().map(|c| c.ty),
            Ok(SourceType::Int {
                bytes: 3,
                unsigned: false
            })
        );
    }

    #[test]
    fn enum_values_with_quotes_and_commas() {
        let parsed = row("enum", "enum('a','it''s','x,y','')").parse();
        assert_eq!(
            parsed.map(|c| c.ty),
            Ok(SourceType::Enum {
                values: vec!["a".into(), "it's".into(), "x,y".into(), "".into()]
            })
        );
    }

    #[test]
    fn malformed_enum_is_an_error_not_a_panic() {
        for bad in ["enum(", "enum('a'", "enum('a' 'b')", "enum()", "e"] {
            assert!(row("enum", bad).parse().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_type_and_charset_are_named() {
        let err = row("hyperloglog", "hyperloglog").parse().unwrap_err();
        assert!(err.to_string().contains("hyperloglog"));
        let mut r = row("varchar", "varchar(10)");
        r.charset = Some("swe7".into());
        assert!(r.parse().unwrap_err().to_string().contains("swe7"));
    }

    #[test]
    fn decimal_and_fsp() {
        let mut r = row("decimal", "decimal(65,30)");
        r.numeric_precision = Some(65);
        r.numeric_scale = Some(30);
        assert_eq!(
            r.parse().map(|c| c.ty),
            Ok(SourceType::Decimal {
                precision: 65,
                scale: 30
            })
        );
        let mut r = row("datetime", "datetime(6)");
        r.datetime_precision = Some(6);
        assert_eq!(r.parse().map(|c| c.ty), Ok(SourceType::DateTime { fsp: 6 }));
    }
}
