//! Binlog events → row changes in a [`Batch`] (pure: no IO, fed one event at a time, so the
//! same code serves the live stream and binlog files in tests).
//!
//! Transaction boundaries: a transaction opens at a GTID event (MariaDB, MySQL) or a `BEGIN`
//! query, and ends at an XID event or a `COMMIT` query, where the batch records the end
//! position of that event as its resume point. `ROLLBACK` discards the transaction's rows.
//! Rows are decoded against the table definition the pipe stored; a TABLE_MAP whose column
//! count differs from it is a schema change the decoder refuses rather than mis-decodes.

use std::collections::HashMap;

use mysql_common::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_common::binlog::row::BinlogRow;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::proto::MySerialize;
use mysql_common::value::Value;

use crate::decode::{encode, Origin};
use crate::error::{Error, Result};
use crate::pipe::batch::Batch;
use crate::schema::TablePlan;
use crate::source::Position;

/// MariaDB event types (not known to `mysql_common`).
const MARIADB_ANNOTATE_ROWS: u8 = 0xa0;
const MARIADB_BINLOG_CHECKPOINT: u8 = 0xa1;
const MARIADB_GTID: u8 = 0xa2;
const MARIADB_GTID_LIST: u8 = 0xa3;
const MARIADB_START_ENCRYPTION: u8 = 0xa4;
/// 0xa5..=0xab: compressed query and rows events (`log_bin_compress=ON`).
const MARIADB_COMPRESSED_FIRST: u8 = 0xa5;
const MARIADB_COMPRESSED_LAST: u8 = 0xab;
/// MariaDB GTID flag: the event group has no COMMIT/XID (DDL and other standalone statements).
const FL_STANDALONE: u8 = 1;

pub(crate) struct Decoder {
    /// Replicated tables by `(db, table)`, as indexes into `plans`.
    by_name: HashMap<(String, String), usize>,
    plans: Vec<TablePlan>,
    /// TABLE_MAP events by table id, as the stream announced them.
    table_maps: HashMap<u64, TableMapEvent<'static>>,
    file: String,
    gtid: String,
    /// A MariaDB standalone event group: commits at the end of its single statement.
    standalone: bool,
    /// Timestamp of the last event, for lag.
    pub last_event_time: u32,
}

impl Decoder {
    pub fn new(plans: Vec<TablePlan>, start: &Position) -> Decoder {
        let by_name = plans
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.def.db.clone(), p.def.name.clone()), i))
            .collect();
        Decoder {
            by_name,
            plans,
            table_maps: HashMap::new(),
            file: start.file.clone(),
            gtid: start.gtid.clone(),
            standalone: false,
            last_event_time: 0,
        }
    }

    fn position(&self, event: &Event) -> Position {
        Position {
            file: self.file.clone(),
            pos: u64::from(event.header().log_pos()),
            gtid: self.gtid.clone(),
        }
    }

    fn binlog_error(&self, event: &Event, what: impl std::fmt::Display) -> Error {
        Error::Binlog(format!("{what} at {}", self.position(event)))
    }

    /// Applies one event to `batch`.
    pub fn apply(&mut self, event: &Event, batch: &mut Batch) -> Result<()> {
        let header = event.header();
        if header.timestamp() != 0 {
            self.last_event_time = header.timestamp();
        }
        let raw_type = header.event_type_raw();
        match raw_type {
            MARIADB_GTID => return self.mariadb_gtid(event, batch),
            MARIADB_ANNOTATE_ROWS | MARIADB_BINLOG_CHECKPOINT | MARIADB_GTID_LIST
            | MARIADB_START_ENCRYPTION => return Ok(()),
            MARIADB_COMPRESSED_FIRST..=MARIADB_COMPRESSED_LAST => {
                return Err(self.binlog_error(
                    event,
                    "compressed binlog event (log_bin_compress=ON) is not supported yet; set log_bin_compress=OFF",
                ))
            }
            _ => {}
        }
        let data = event.read_data().map_err(|e| {
            self.binlog_error(event, format!("undecodable event type {raw_type}: {e}"))
        })?;
        let Some(data) = data else {
            return Ok(());
        };
        match data {
            EventData::RotateEvent(rotate) => {
                self.file =
                    String::from_utf8_lossy(strip_checksum(event, rotate.name_raw())).into_owned();
            }
            EventData::GtidEvent(_) | EventData::AnonymousGtidEvent(_) => batch.begin(),
            EventData::TableMapEvent(tme) => {
                self.table_maps.insert(tme.table_id(), tme.into_owned());
            }
            EventData::XidEvent(_) => batch.commit(self.position(event)),
            EventData::QueryEvent(q) => {
                let query = q.query();
                let verb = first_word(&query);
                match verb.as_str() {
                    "BEGIN" | "XA" if !query.to_ascii_uppercase().contains("COMMIT") => {
                        batch.begin()
                    }
                    "COMMIT" | "XA" => batch.commit(self.position(event)),
                    "ROLLBACK" if !query.to_ascii_uppercase().contains(" TO ") => batch.rollback(),
                    "SAVEPOINT" | "ROLLBACK" => {}
                    _ => {
                        self.check_ddl(&q.schema(), &query, event)?;
                        // A statement outside BEGIN..COMMIT (DDL) is its own transaction.
                        if self.standalone || !batch.in_transaction() {
                            self.standalone = false;
                            batch.commit(self.position(event));
                        }
                    }
                }
            }
            EventData::RowsEvent(rows) => self.rows(event, &rows, batch)?,
            _ => {}
        }
        Ok(())
    }

    fn mariadb_gtid(&mut self, event: &Event, batch: &mut Batch) -> Result<()> {
        let data = event.data();
        let (Some(seq), Some(domain), Some(&flags)) =
            (data.get(0..8), data.get(8..12), data.get(12))
        else {
            return Err(self.binlog_error(event, "truncated MariaDB GTID event"));
        };
        let seq = u64::from_le_bytes(seq.try_into().unwrap_or_default());
        let domain = u32::from_le_bytes(domain.try_into().unwrap_or_default());
        self.gtid = format!("{domain}-{}-{seq}", event.header().server_id());
        self.standalone = flags & FL_STANDALONE != 0;
        batch.begin();
        Ok(())
    }

    /// Refuses DDL on a replicated table: rows after it would not match the stored definition.
    fn check_ddl(&self, schema: &str, query: &str, event: &Event) -> Result<()> {
        let verb = first_word(query);
        if !matches!(
            verb.as_str(),
            "ALTER" | "DROP" | "RENAME" | "TRUNCATE" | "CREATE"
        ) {
            return Ok(());
        }
        let lower = query.to_lowercase();
        for plan in &self.plans {
            let name = plan.def.name.to_lowercase();
            let mentions = lower
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .any(|word| word == name);
            let same_db = schema.eq_ignore_ascii_case(&plan.def.db)
                || lower.contains(&plan.def.db.to_lowercase());
            if mentions && same_db && verb != "CREATE" {
                return Err(Error::SchemaChanged {
                    table: plan.def.qualified(),
                    detail: format!("statement `{}`", truncate(query, 200)),
                    position: self.position(event).to_string(),
                });
            }
        }
        Ok(())
    }

    fn rows(&mut self, event: &Event, rows: &RowsEventData<'_>, batch: &mut Batch) -> Result<()> {
        let Some(tme) = self.table_maps.get(&rows.table_id()) else {
            return Err(self.binlog_error(
                event,
                format!("rows event for unknown table id {}", rows.table_id()),
            ));
        };
        let key = (
            tme.database_name().into_owned(),
            tme.table_name().into_owned(),
        );
        let Some(&table) = self.by_name.get(&key) else {
            return Ok(());
        };
        let plan = &self.plans[table];
        let position = || self.position(event);
        if tme.columns_count() as usize != plan.def.columns.len() {
            return Err(Error::SchemaChanged {
                table: plan.def.qualified(),
                detail: format!(
                    "the binlog has {} columns, the stored definition {}",
                    tme.columns_count(),
                    plan.def.columns.len()
                ),
                position: position().to_string(),
            });
        }
        let is_update = matches!(
            rows,
            RowsEventData::UpdateRowsEvent(_)
                | RowsEventData::UpdateRowsEventV1(_)
                | RowsEventData::PartialUpdateRowsEvent(_)
        );
        for row in rows.rows(tme) {
            let (before, after) = row.map_err(|e| {
                self.binlog_error(
                    event,
                    format!("undecodable row of {}.{}: {e}", key.0, key.1),
                )
            })?;
            match (before, after) {
                (None, Some(after)) => push_row(plan, table, &after, false, batch, &position)?,
                (Some(before), None) => push_row(plan, table, &before, true, batch, &position)?,
                (Some(before), Some(after)) if is_update => {
                    if !same_key(plan, &before, &after) {
                        push_row(plan, table, &before, true, batch, &position)?;
                    }
                    push_row(plan, table, &after, false, batch, &position)?;
                }
                _ => return Err(self.binlog_error(event, "rows event without row images")),
            }
        }
        Ok(())
    }
}

fn push_row(
    plan: &TablePlan,
    table: usize,
    row: &BinlogRow,
    deleted: bool,
    batch: &mut Batch,
    position: &dyn Fn() -> Position,
) -> Result<()> {
    let decode_error = |source| Error::Decode {
        table: plan.def.qualified(),
        position: position().to_string(),
        source: Box::new(source),
    };
    batch
        .push(table, deleted, |out| {
            for (i, (col, included)) in plan.def.columns.iter().zip(&plan.included).enumerate() {
                if !included {
                    continue;
                }
                let value = match row.as_ref(i) {
                    Some(BinlogValue::Value(v)) => std::borrow::Cow::Borrowed(v),
                    Some(BinlogValue::Jsonb(j)) => {
                        let json = serde_json::Value::try_from(j.clone()).map_err(|e| {
                            Error::Binlog(format!("{}.{}: unreadable binary JSON: {e}", plan.def.qualified(), col.name))
                        })?;
                        std::borrow::Cow::Owned(Value::Bytes(json.to_string().into_bytes()))
                    }
                    Some(BinlogValue::JsonDiff(_)) => {
                        return Err(Error::Binlog(format!(
                            "{}.{}: partial JSON update in the binlog; set binlog_row_value_options='' (at {})",
                            plan.def.qualified(),
                            col.name,
                            position()
                        )))
                    }
                    None => {
                        return Err(Error::InvalidSourceSetting {
                            setting: "binlog_row_image".into(),
                            actual: "not FULL".into(),
                            expected: "FULL".into(),
                            hint: format!("a row of {} arrived without column `{}`", plan.def.qualified(), col.name),
                        })
                    }
                };
                encode(col, &value, Origin::Binlog, out).map_err(decode_error)?;
            }
            Ok(())
        })
        .map(|_| ())
}

/// The ROTATE a dump starts with comes before any FORMAT_DESCRIPTION, so the stream reader
/// cannot know that it carries a CRC32 and leaves the checksum at the end of the file name.
/// Strips those four bytes when they are the event's CRC32.
fn strip_checksum<'a>(event: &Event, name: &'a [u8]) -> &'a [u8] {
    let data = event.data();
    let (Some(body), Some(crc)) = (
        data.len().checked_sub(4).map(|n| &data[..n]),
        data.len().checked_sub(4).and_then(|n| data.get(n..)),
    ) else {
        return name;
    };
    let mut covered = Vec::with_capacity(data.len() + 19);
    event.header().serialize(&mut covered);
    covered.extend_from_slice(body);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if name.len() >= 4 && crc32fast::hash(&covered) == expected {
        &name[..name.len() - 4]
    } else {
        name
    }
}

fn same_key(plan: &TablePlan, before: &BinlogRow, after: &BinlogRow) -> bool {
    plan.def
        .primary_key
        .iter()
        .all(|&i| before.as_ref(i) == after.as_ref(i))
}

fn first_word(query: &str) -> String {
    // Skip leading comments such as `/* generated */` that some clients prepend.
    let mut rest = query.trim_start();
    while let Some(after) = rest.strip_prefix("/*") {
        rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
    }
    rest.split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_word_skips_comments() {
        assert_eq!(first_word("/* x */ alter table t add c int"), "ALTER");
        assert_eq!(first_word("  BEGIN"), "BEGIN");
        assert_eq!(first_word("COMMIT;"), "COMMIT");
        assert_eq!(first_word("/* unterminated"), "");
    }
}
