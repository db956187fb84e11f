//! Partition planning and partition SQL (pure).
//!
//! Invariant: the partitions of a table cover every row, whatever its key, exactly once:
//! integer ranges are half-open and the first and last are unbounded, keyset ranges are
//! `(lo, hi]` chained boundary to boundary with unbounded ends, and a nullable partition column
//! gets an `IS NULL` partition. A plan is stored before loading starts, so a resumed snapshot
//! loads the same partitions.

use mysql_async::Value;
use serde::{Deserialize, Serialize};

use crate::schema::{SourceType, TablePlan};

/// A primary key value as stored in a plan, exact for every key type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub(crate) enum KeyValue {
    Int(i64),
    UInt(u64),
    /// Hex, so binary keys survive JSON.
    Bytes(String),
    FloatBits(u32),
    DoubleBits(u64),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl KeyValue {
    pub fn from_value(v: &Value) -> Option<KeyValue> {
        Some(match v {
            Value::NULL => return None,
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Bytes(b) => KeyValue::Bytes(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Float(f) => KeyValue::FloatBits(f.to_bits()),
            Value::Double(f) => KeyValue::DoubleBits(f.to_bits()),
            Value::Date(y, m, d, h, mi, s, us) => KeyValue::Date(*y, *m, *d, *h, *mi, *s, *us),
            Value::Time(n, d, h, m, s, us) => KeyValue::Time(*n, *d, *h, *m, *s, *us),
        })
    }

    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::UInt(u) => Value::UInt(*u),
            KeyValue::Bytes(hex) => Value::Bytes(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?,
            ),
            KeyValue::FloatBits(b) => Value::Float(f32::from_bits(*b)),
            KeyValue::DoubleBits(b) => Value::Double(f64::from_bits(*b)),
            KeyValue::Date(y, m, d, h, mi, s, us) => Value::Date(*y, *m, *d, *h, *mi, *s, *us),
            KeyValue::Time(n, d, h, m, s, us) => Value::Time(*n, *d, *h, *m, *s, *us),
        })
    }
}

/// Which rows a partition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Range {
    /// `lo <= col < hi` on an integer column; `None` is unbounded.
    Int { lo: Option<i128>, hi: Option<i128> },
    /// `lo < key <= hi` in primary key order; `None` is unbounded.
    Key {
        lo: Option<Vec<KeyValue>>,
        hi: Option<Vec<KeyValue>>,
    },
    /// `col IS NULL` for a nullable partition column.
    Null,
}

/// How a table is split: by an integer column (the primary key's only column, or the
/// configured `partition_by`), or by keyset boundaries of the primary key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Splitter {
    Int { column: String, nullable: bool },
    Key { columns: Vec<String> },
}

impl Splitter {
    pub fn for_table(plan: &TablePlan, partition_by: Option<&str>) -> Result<Splitter, String> {
        let def = &plan.def;
        if let Some(name) = partition_by {
            let col = def.columns.iter().find(|c| c.name == name).ok_or_else(|| {
                format!(
                    "partition_by names column `{name}`, which {} does not have",
                    def.qualified()
                )
            })?;
            return match col.ty {
                SourceType::Int { .. } => Ok(Splitter::Int {
                    column: col.name.clone(),
                    nullable: col.nullable,
                }),
                _ => Err(format!(
                    "partition_by column `{name}` of {} is not an integer column",
                    def.qualified()
                )),
            };
        }
        match def.primary_key.as_slice() {
            [only] if matches!(def.columns[*only].ty, SourceType::Int { .. }) => {
                Ok(Splitter::Int {
                    column: def.columns[*only].name.clone(),
                    nullable: false,
                })
            }
            _ => Ok(Splitter::Key {
                columns: def.primary_key_names().map(str::to_owned).collect(),
            }),
        }
    }
}

/// Integer ranges over `[min, max]` for about `rows / rows_per_partition` partitions, the
/// outer ones unbounded, plus `IS NULL` when the column is nullable.
pub(crate) fn int_ranges(
    min: Option<i128>,
    max: Option<i128>,
    estimated_rows: u64,
    rows_per_partition: u64,
    nullable: bool,
) -> Vec<Range> {
    let mut ranges = Vec::new();
    match (min, max) {
        (Some(min), Some(max)) if max > min => {
            let parts = estimated_rows.div_ceil(rows_per_partition.max(1)).max(1);
            let span = max - min + 1;
            let step = (span + i128::from(parts) - 1) / i128::from(parts);
            let mut lo = None;
            let mut edge = min + step;
            while edge <= max {
                ranges.push(Range::Int { lo, hi: Some(edge) });
                lo = Some(edge);
                edge += step;
            }
            ranges.push(Range::Int { lo, hi: None });
        }
        _ => ranges.push(Range::Int { lo: None, hi: None }),
    }
    if nullable {
        ranges.push(Range::Null);
    }
    ranges
}

/// Keyset ranges chained through `boundaries` (ascending keys): `(-inf, b1], (b1, b2], ...,
/// (bn, +inf)`.
pub(crate) fn key_ranges(boundaries: Vec<Vec<KeyValue>>) -> Vec<Range> {
    let mut ranges = Vec::with_capacity(boundaries.len() + 1);
    let mut lo = None;
    for b in boundaries {
        ranges.push(Range::Key {
            lo: lo.clone(),
            hi: Some(b.clone()),
        });
        lo = Some(b);
    }
    ranges.push(Range::Key { lo, hi: None });
    ranges
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `(a, b) OP (?, ?)` expanded so that the optimizer uses the key range:
/// `a > ? OR (a = ? AND b OP ?)` for `OP` in `>`, `<=`.
fn tuple_cmp(columns: &[String], strict: &str, last: &str) -> String {
    let disjuncts: Vec<String> = (0..columns.len())
        .map(|i| {
            let mut terms: Vec<String> = columns[..i]
                .iter()
                .map(|c| format!("{} = ?", quote(c)))
                .collect();
            let op = if i + 1 == columns.len() { last } else { strict };
            terms.push(format!("{} {op} ?", quote(&columns[i])));
            format!("({})", terms.join(" AND "))
        })
        .collect();
    format!("({})", disjuncts.join(" OR "))
}

/// Parameters for [`tuple_cmp`]'s placeholders.
fn tuple_params(key: &[KeyValue]) -> Option<Vec<Value>> {
    let values: Vec<Value> = key.iter().map(KeyValue::to_value).collect::<Option<_>>()?;
    Some(
        (0..values.len())
            .flat_map(|i| values[..=i].iter().cloned())
            .collect(),
    )
}

/// The SELECT of every row of the table, its columns in source order.
pub(crate) fn select_sql(plan: &TablePlan) -> String {
    let cols: Vec<String> = plan.def.columns.iter().map(|c| quote(&c.name)).collect();
    format!("SELECT {} FROM {}", cols.join(", "), table_name(plan))
}

/// `db`.`table`, quoted for the source.
pub(crate) fn table_name(plan: &TablePlan) -> String {
    format!("{}.{}", quote(&plan.def.db), quote(&plan.def.name))
}

/// The SELECT of one partition and its parameters; `None` if a stored bound is unreadable.
pub(crate) fn partition_sql(
    plan: &TablePlan,
    splitter: &Splitter,
    range: &Range,
) -> Option<(String, Vec<Value>)> {
    let mut sql = select_sql(plan);
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    match (splitter, range) {
        (Splitter::Int { column, .. }, Range::Int { lo, hi }) => {
            // Bounds are literals: exact for any width, and the optimizer sees a constant range.
            if let Some(lo) = lo {
                conditions.push(format!("{} >= {lo}", quote(column)));
            }
            if let Some(hi) = hi {
                conditions.push(format!("{} < {hi}", quote(column)));
            }
        }
        (Splitter::Int { column, .. }, Range::Null) => {
            conditions.push(format!("{} IS NULL", quote(column)));
        }
        (Splitter::Key { columns }, Range::Key { lo, hi }) => {
            if let Some(lo) = lo {
                conditions.push(tuple_cmp(columns, ">", ">"));
                params.extend(tuple_params(lo)?);
            }
            if let Some(hi) = hi {
                conditions.push(tuple_cmp(columns, "<", "<="));
                params.extend(tuple_params(hi)?);
            }
        }
        _ => return None,
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    Some((sql, params))
}

/// The query that finds the next keyset boundary: the `rows_per_partition`-th key after `after`.
pub(crate) fn boundary_sql(
    plan: &TablePlan,
    columns: &[String],
    after: Option<&[KeyValue]>,
    rows_per_partition: u64,
) -> Option<(String, Vec<Value>)> {
    let key: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        key.join(", "),
        quote(&plan.def.db),
        quote(&plan.def.name)
    );
    let mut params = Vec::new();
    if let Some(after) = after {
        sql.push_str(&format!(" WHERE {}", tuple_cmp(columns, ">", ">")));
        params = tuple_params(after)?;
    }
    sql.push_str(&format!(
        " ORDER BY {} LIMIT 1 OFFSET {}",
        key.join(", "),
        rows_per_partition.max(1) - 1
    ));
    Some((sql, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Keyless, TableOptions};
    use crate::schema::{Charset, ColumnDef, TableDef};

    fn plan(key: &[&str]) -> TablePlan {
        let columns = vec![
            ColumnDef {
                name: "id".into(),
                ty: SourceType::Int {
                    bytes: 8,
                    unsigned: false,
                },
                nullable: false,
            },
            ColumnDef {
                name: "name".into(),
                ty: SourceType::Text {
                    charset: Charset::Utf8,
                },
                nullable: false,
            },
            ColumnDef {
                name: "grp".into(),
                ty: SourceType::Int {
                    bytes: 4,
                    unsigned: false,
                },
                nullable: true,
            },
        ];
        let primary_key = key
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect();
        let def = TableDef {
            db: "d".into(),
            name: "t".into(),
            columns,
            primary_key,
        };
        TablePlan::new(def, &TableOptions::default(), Keyless::Isolate).expect("plan")
    }

    #[test]
    fn integer_keys_split_by_min_max_with_open_ends() {
        let ranges = int_ranges(Some(1), Some(1000), 1000, 250, false);
        assert_eq!(
            ranges,
            vec![
                Range::Int {
                    lo: None,
                    hi: Some(251)
                },
                Range::Int {
                    lo: Some(251),
                    hi: Some(501)
                },
                Range::Int {
                    lo: Some(501),
                    hi: Some(751)
                },
                Range::Int {
                    lo: Some(751),
                    hi: None
                },
            ]
        );
        // Empty or single-valued tables: one partition that takes everything.
        assert_eq!(
            int_ranges(None, None, 0, 10, false),
            vec![Range::Int { lo: None, hi: None }]
        );
        assert_eq!(
            int_ranges(Some(5), Some(5), 1, 10, false),
            vec![Range::Int { lo: None, hi: None }]
        );
        // Extremes of BIGINT UNSIGNED do not overflow.
        let wide = int_ranges(Some(0), Some(u64::MAX as i128), 10, 5, false);
        assert_eq!(wide.len(), 2);
    }

    #[test]
    fn nullable_partition_column_gets_a_null_partition() {
        let p = plan(&["id"]);
        let splitter = Splitter::for_table(&p, Some("grp")).expect("integer column");
        assert_eq!(
            splitter,
            Splitter::Int {
                column: "grp".into(),
                nullable: true
            }
        );
        let ranges = int_ranges(Some(1), Some(10), 10, 5, true);
        assert_eq!(ranges.last(), Some(&Range::Null));
        let (sql, _) = partition_sql(&p, &splitter, &Range::Null).expect("sql");
        assert!(sql.ends_with("WHERE `grp` IS NULL"), "{sql}");
        assert!(Splitter::for_table(&p, Some("name")).is_err());
        assert!(Splitter::for_table(&p, Some("nope")).is_err());
    }

    #[test]
    fn string_and_composite_keys_split_by_keyset() {
        let p = plan(&["name", "id"]);
        let splitter = Splitter::for_table(&p, None).expect("splitter");
        assert_eq!(
            splitter,
            Splitter::Key {
                columns: vec!["name".into(), "id".into()]
            }
        );
        let b1 = vec![KeyValue::Bytes("61".into()), KeyValue::Int(7)];
        let ranges = key_ranges(vec![b1.clone()]);
        assert_eq!(ranges.len(), 2);
        let (sql, params) = partition_sql(&p, &splitter, &ranges[0]).expect("sql");
        assert!(
            sql.ends_with("WHERE ((`name` < ?) OR (`name` = ? AND `id` <= ?))"),
            "{sql}"
        );
        assert_eq!(
            params,
            vec![
                Value::Bytes(b"a".to_vec()),
                Value::Bytes(b"a".to_vec()),
                Value::Int(7)
            ]
        );
        let (sql, _) = partition_sql(&p, &splitter, &ranges[1]).expect("sql");
        assert!(
            sql.ends_with("WHERE ((`name` > ?) OR (`name` = ? AND `id` > ?))"),
            "{sql}"
        );
        let (sql, params) =
            boundary_sql(&p, &["name".into(), "id".into()], Some(&b1), 100).expect("sql");
        assert!(
            sql.ends_with("ORDER BY `name`, `id` LIMIT 1 OFFSET 99"),
            "{sql}"
        );
        assert_eq!(params.len(), 3);
        let single = plan(&["name"]);
        assert_eq!(
            Splitter::for_table(&single, None),
            Ok(Splitter::Key {
                columns: vec!["name".into()]
            })
        );
    }

    #[test]
    fn integer_partitions_use_literal_half_open_bounds() {
        let p = plan(&["id"]);
        let splitter = Splitter::for_table(&p, None).expect("splitter");
        let (sql, params) = partition_sql(
            &p,
            &splitter,
            &Range::Int {
                lo: Some(-5),
                hi: Some(10),
            },
        )
        .expect("sql");
        assert!(sql.ends_with("WHERE `id` >= -5 AND `id` < 10"), "{sql}");
        assert!(params.is_empty());
        let (sql, _) =
            partition_sql(&p, &splitter, &Range::Int { lo: None, hi: None }).expect("sql");
        assert!(!sql.contains("WHERE"));
    }

    #[test]
    fn keys_round_trip_exactly() {
        let key = [
            Value::Bytes(vec![0, 255, b'x']),
            Value::UInt(u64::MAX),
            Value::Double(-0.0),
            Value::Date(2024, 2, 29, 1, 2, 3, 4),
        ];
        let stored: Vec<KeyValue> = key.iter().filter_map(KeyValue::from_value).collect();
        let json = serde_json::to_string(&stored).expect("json");
        let back: Vec<KeyValue> = serde_json::from_str(&json).expect("parse");
        let values: Option<Vec<Value>> = back.iter().map(KeyValue::to_value).collect();
        assert_eq!(values.as_deref(), Some(&key[..]));
        assert_eq!(KeyValue::from_value(&Value::NULL), None);
        assert_eq!(KeyValue::Bytes("zz".into()).to_value(), None);
    }
}
