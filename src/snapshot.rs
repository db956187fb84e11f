//! Initial load of the included tables.
//!
//! How the snapshot and the binlog agree: the reader opens one
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` and takes the binlog position P0 of exactly
//! that snapshot (MariaDB's `binlog_snapshot_file/position`; on MySQL under a brief
//! `FLUSH TABLES WITH READ LOCK`). Every row is written with version 0 and CDC starts at P0,
//! so any change after P0 is replayed with a higher version and wins. A snapshot resumed after
//! a crash reads its remaining pages in a newer transaction but CDC still starts at the first
//! P0: replaying more history than needed is harmless, starting later would lose changes.
//!
//! Each table is read in primary-key order in pages of `rows_per_partition` rows (keyset
//! pagination: `WHERE key > last ORDER BY key LIMIT n`), through the binary protocol, and each
//! page is streamed into one RowBinary INSERT in chunks of [`CHUNK_BYTES`]; memory stays
//! bounded by one chunk whatever the table size. A page is recorded as committed (its last key
//! and the row count) only after its INSERT succeeded, so a restart resumes after it.

use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::info;

use crate::clickhouse::ddl::insert_sql;
use crate::clickhouse::Target;
use crate::decode::{encode, Origin};
use crate::error::{Error, Result};
use crate::schema::TablePlan;
use crate::source::{Position, ServerFlavor, Source};
use crate::state::StateStore;

/// Bytes of RowBinary buffered before they are handed to the HTTP body.
const CHUNK_BYTES: usize = 1 << 20;

/// A primary key value as stored in the snapshot progress, exact for every key type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
enum KeyValue {
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
    fn from_value(v: &Value) -> Option<KeyValue> {
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

    fn to_value(&self) -> Option<Value> {
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

fn encode_key(values: &[Value]) -> Option<String> {
    let keys: Option<Vec<KeyValue>> = values.iter().map(KeyValue::from_value).collect();
    serde_json::to_string(&keys?).ok()
}

fn decode_key(json: &str) -> Option<Vec<Value>> {
    let keys: Vec<KeyValue> = serde_json::from_str(json).ok()?;
    keys.iter().map(KeyValue::to_value).collect()
}

/// `SELECT` of one page after `has_last` (pure): keyset condition over the primary key,
/// expanded to `a > ? OR (a = ? AND b > ?) ...` so that the optimizer uses the key range.
fn page_sql(plan: &TablePlan, has_last: bool, limit: u64) -> String {
    let q = |name: &str| format!("`{}`", name.replace('`', "``"));
    let cols: Vec<String> = plan.def.columns.iter().map(|c| q(&c.name)).collect();
    let key: Vec<String> = plan.def.primary_key_names().map(q).collect();
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        q(&plan.def.db),
        q(&plan.def.name)
    );
    if has_last {
        let disjuncts: Vec<String> = (0..key.len())
            .map(|i| {
                let mut terms: Vec<String> = key[..i].iter().map(|k| format!("{k} = ?")).collect();
                terms.push(format!("{} > ?", key[i]));
                format!("({})", terms.join(" AND "))
            })
            .collect();
        sql.push_str(&format!(" WHERE {}", disjuncts.join(" OR ")));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", key.join(", ")));
    sql
}

/// Parameters matching [`page_sql`]'s placeholders for the last key `last`.
fn page_params(last: &[Value]) -> Vec<Value> {
    (0..last.len())
        .flat_map(|i| last[..=i].iter().cloned())
        .collect()
}

/// Opens the snapshot transaction and returns its binlog position.
pub(crate) async fn begin(source: &Source, conn: &mut Conn) -> Result<Position> {
    for stmt in [
        "SET SESSION time_zone = '+00:00'",
        "SET NAMES utf8mb4",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ] {
        source.run(conn.query_drop(stmt)).await?;
    }
    match source.flavor {
        ServerFlavor::Mariadb => {
            source
                .run(conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"))
                .await?;
            let status: Vec<(String, String)> = source
                .run(conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'"))
                .await?;
            let get = |name: &str| {
                status
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let gtid: Option<String> = source
                .run(conn.query_first("SELECT @@gtid_binlog_pos"))
                .await?;
            Ok(Position {
                file: get("binlog_snapshot_file"),
                pos: get("binlog_snapshot_position").parse().unwrap_or(0),
                gtid: gtid.unwrap_or_default(),
            })
        }
        ServerFlavor::Mysql => {
            source
                .run(conn.query_drop("FLUSH TABLES WITH READ LOCK"))
                .await?;
            let started = source
                .run(conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"))
                .await;
            let position = source.current_position(conn).await;
            source.run(conn.query_drop("UNLOCK TABLES")).await?;
            started?;
            position
        }
    }
}

/// What loading a table needs besides the table itself.
pub(crate) struct Loader<'a> {
    pub source: &'a Source,
    pub target: &'a Target,
    pub target_db: &'a str,
    pub store: &'a StateStore,
    pub rows_per_page: u64,
}

/// Loads one table from where its recorded progress stopped; returns false when stopped by
/// `shutdown` before the end.
pub(crate) async fn load_table(
    loader: &Loader<'_>,
    conn: &mut Conn,
    plan: &TablePlan,
    shutdown: &watch::Receiver<bool>,
) -> Result<bool> {
    let Loader {
        source,
        target,
        target_db,
        store,
        rows_per_page,
    } = *loader;
    let table = plan.def.qualified();
    let mut progress = store.progress(&table).await?;
    if progress.done {
        return Ok(true);
    }
    let estimate: Option<u64> = source
        .run(conn.exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&plan.def.db, &plan.def.name),
        ))
        .await?;
    let mut last: Option<Vec<Value>> = match progress.last_key.as_str() {
        "" => None,
        json => Some(decode_key(json).ok_or_else(|| {
            Error::State(format!(
                "snapshot progress of {table} has an unreadable key {json}"
            ))
        })?),
    };
    let insert = insert_sql(target_db, plan);
    let started = Instant::now();
    let rows_at_start = progress.rows;
    while !*shutdown.borrow() {
        let sql = page_sql(plan, last.is_some(), rows_per_page);
        let params = last.as_deref().map(page_params).unwrap_or_default();
        let (rows, key) = load_page(source, conn, target, &insert, plan, &sql, params).await?;
        progress.seq += 1;
        progress.rows += rows;
        progress.done = rows < rows_per_page;
        if let Some(key) = key {
            progress.last_key = encode_key(&key)
                .ok_or_else(|| Error::State(format!("{table}: primary key value is NULL")))?;
            last = Some(key);
        }
        store.save_progress(&table, &progress).await?;
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rate = (progress.rows - rows_at_start) as f64 / secs;
        let eta = estimate
            .filter(|&e| e > progress.rows && rate > 0.0)
            .map(|e| format!("{:.0}s", (e - progress.rows) as f64 / rate))
            .unwrap_or_else(|| "-".into());
        info!(
            table = %table,
            rows = progress.rows,
            estimated = estimate.unwrap_or(0),
            rows_per_sec = rate as u64,
            eta = %eta,
            "snapshot progress"
        );
        if progress.done {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Streams one page into one INSERT; returns the rows read and the last primary key.
async fn load_page(
    source: &Source,
    conn: &mut Conn,
    target: &Target,
    insert_sql: &str,
    plan: &TablePlan,
    sql: &str,
    params: Vec<Value>,
) -> Result<(u64, Option<Vec<Value>>)> {
    let table = plan.def.qualified();
    let mut result = source.run(conn.exec_iter(sql, params)).await?;
    let mut insert = target.start_insert(insert_sql);
    let mut buf = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
    let mut rows = 0u64;
    let mut last_row = None;
    while let Some(row) = source.run(result.next()).await? {
        for ((col, included), i) in plan.def.columns.iter().zip(&plan.included).zip(0..) {
            if !included {
                continue;
            }
            let value = row.as_ref(i).unwrap_or(&Value::NULL);
            encode(col, value, Origin::Snapshot, &mut buf).map_err(|source| Error::Decode {
                table: table.clone(),
                position: "snapshot".into(),
                source: Box::new(source),
            })?;
        }
        buf.extend_from_slice(&0u64.to_le_bytes()); // _tributary_version
        buf.push(0); // _tributary_is_deleted
        rows += 1;
        if buf.len() >= CHUNK_BYTES {
            insert
                .send(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4),
                ))
                .await?;
        }
        last_row = Some(row);
    }
    drop(result);
    let last_key = last_row.map(|row| {
        plan.def
            .primary_key
            .iter()
            .map(|&i| row.as_ref(i).cloned().unwrap_or(Value::NULL))
            .collect()
    });
    if rows > 0 {
        insert.send(buf).await?;
        insert.end().await?;
    }
    Ok((rows, last_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TableOptions;
    use crate::schema::{ColumnDef, SourceType, TableDef};

    fn plan(keys: &[&str]) -> TablePlan {
        let columns = ["a", "b", "c"]
            .iter()
            .map(|n| ColumnDef {
                name: (*n).into(),
                ty: SourceType::Int {
                    bytes: 4,
                    unsigned: false,
                },
                nullable: false,
            })
            .collect();
        let def = TableDef {
            db: "d".into(),
            name: "t".into(),
            columns,
            primary_key: keys
                .iter()
                .map(|k| ["a", "b", "c"].iter().position(|n| n == k).unwrap_or(0))
                .collect(),
        };
        TablePlan::new(def, &TableOptions::default()).expect("plan")
    }

    #[test]
    fn keyset_over_composite_key() {
        let sql = page_sql(&plan(&["a", "b"]), true, 10);
        assert_eq!(
            sql,
            "SELECT `a`, `b`, `c` FROM `d`.`t` WHERE (`a` > ?) OR (`a` = ? AND `b` > ?) ORDER BY `a`, `b` LIMIT 10"
        );
        let params = page_params(&[Value::Int(1), Value::Int(2)]);
        assert_eq!(params, vec![Value::Int(1), Value::Int(1), Value::Int(2)]);
        assert!(!page_sql(&plan(&["a"]), false, 5).contains("WHERE"));
    }

    #[test]
    fn keys_round_trip_exactly() {
        let key = vec![
            Value::Bytes(vec![0, 255, b'x']),
            Value::UInt(u64::MAX),
            Value::Double(-0.0),
            Value::Date(2024, 2, 29, 1, 2, 3, 4),
        ];
        let json = encode_key(&key).expect("encodable");
        assert_eq!(decode_key(&json), Some(key));
        assert_eq!(encode_key(&[Value::NULL]), None);
        assert_eq!(decode_key("[{\"t\":\"Bytes\",\"v\":\"zz\"}]"), None);
    }
}
