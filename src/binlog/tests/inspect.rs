//! Decodes a whole binlog with the project's own code and summarises it for assertions:
//! every event (framing validated by `frame`, bodies by mysql_common, the MariaDB events by
//! `mariadb`), every TABLE_MAP by `tablemap`, and every cell of every row by `cell::value`
//! against its TABLE_MAP. A second pass runs the pipe's [`Decoder`] on the same events with
//! table definitions made up from those TABLE_MAPs, as a pipe replicating every table would.

use std::collections::{BTreeMap, HashMap};

use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData};
use mysql_common::constants::ColumnType;
use mysql_common::value::Value;

use crate::batch::Batch;
use crate::binlog::cell;
use crate::binlog::events::Decoder;
use crate::binlog::frame::Events;
use crate::binlog::mariadb;
use crate::binlog::rows::{self, RowsHeader, RowsKind};
use crate::binlog::tablemap::{self, TableMap};
use crate::binlog::wire::{Malformed, Reader};
use crate::schema::{Charset, ColumnDef, SourceType, TableDef, TablePlan};
use crate::source::Position;

/// One decoded row change: `db.table`, and its before and after images.
pub(crate) type Change = (
    String,
    Option<Vec<Option<Value>>>,
    Option<Vec<Option<Value>>>,
);

#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// Events by type code (the events of transaction payloads included).
    pub types: BTreeMap<u8, usize>,
    pub events: usize,
    /// Row changes by `db.table`.
    pub rows: BTreeMap<String, usize>,
    pub changes: Vec<Change>,
    pub queries: Vec<String>,
    /// GTIDs of transactions, as MySQL (`uuid[:tag]:gno`) or MariaDB (`domain-server-seq`) print them.
    pub gtids: Vec<String>,
    /// MariaDB GTID_LIST, BINLOG_CHECKPOINT and ANNOTATE_ROWS contents.
    pub mariadb: Vec<String>,
    /// The first TABLE_MAP of each `db.table`.
    pub maps: BTreeMap<String, TableMap>,
    /// The error decoding stopped at.
    pub error: Option<String>,
}

pub(crate) fn inspect(bytes: &[u8]) -> Summary {
    let mut s = Summary::default();
    let mut maps: HashMap<u64, TableMap> = HashMap::new();
    let events = match Events::file(bytes) {
        Ok(events) => events,
        Err(e) => {
            s.error = Some(e.to_string());
            return s;
        }
    };
    for event in events {
        let result = event.map_err(|e| e.to_string()).and_then(|event| {
            one(&mut s, &mut maps, &event)
                .map_err(|e| format!("{e} (event type {})", event.header().event_type_raw()))
        });
        if let Err(e) = result {
            s.error = Some(e);
            break;
        }
    }
    s
}

fn one(s: &mut Summary, maps: &mut HashMap<u64, TableMap>, event: &Event) -> Result<(), Malformed> {
    let ty = event.header().event_type_raw();
    *s.types.entry(ty).or_default() += 1;
    s.events += 1;
    let body = event.data();
    match ty {
        mariadb::GTID => {
            let (gtid, _) = mariadb::gtid(body, event.header().server_id())?;
            s.gtids.push(gtid.to_string());
        }
        mariadb::GTID_LIST => {
            let list = mariadb::gtid_list(body)?;
            let list: Vec<String> = list.iter().map(ToString::to_string).collect();
            s.mariadb.push(format!("GTID_LIST [{}]", list.join(",")));
        }
        mariadb::BINLOG_CHECKPOINT => {
            s.mariadb.push(format!(
                "BINLOG_CHECKPOINT {}",
                mariadb::binlog_checkpoint(body)?
            ));
        }
        mariadb::ANNOTATE_ROWS => {
            s.mariadb
                .push(format!("ANNOTATE_ROWS {}", String::from_utf8_lossy(body)));
        }
        t if mariadb::is_compressed(t) => {
            let plain = mariadb::inflate(event)?;
            return one(s, maps, &plain);
        }
        t if t == EventType::TABLE_MAP_EVENT as u8 => {
            let post = event
                .fde()
                .get_event_type_header_length(EventType::TABLE_MAP_EVENT);
            let map = tablemap::parse(body, post)?;
            s.maps
                .entry(format!("{}.{}", map.db, map.table))
                .or_insert_with(|| map.clone());
            maps.insert(map.table_id, map);
        }
        // Unpacked by the frame reader (mysql_common's own parser of it can panic).
        t if t == EventType::TRANSACTION_PAYLOAD_EVENT as u8 => {}
        t if rows::rows_kind(t).is_some() => {
            let post = event
                .header()
                .event_type()
                .map(|t| event.fde().get_event_type_header_length(t))
                .unwrap_or(0);
            let header = rows::parse_header(body, t, post)?;
            let map = maps.get(&header.table_id).ok_or_else(|| {
                Malformed(format!("rows for unknown table id {}", header.table_id))
            })?;
            let name = format!("{}.{}", map.db, map.table);
            for (before, after) in images(map, &header)? {
                *s.rows.entry(name.clone()).or_default() += 1;
                s.changes.push((name.clone(), before, after));
            }
        }
        _ => match event.read_data() {
            Ok(Some(EventData::QueryEvent(q))) => s.queries.push(q.query().into_owned()),
            Ok(Some(EventData::GtidEvent(g))) => {
                let sid = g.sid();
                let uuid = format!(
                    "{}-{}-{}-{}-{}",
                    hex(&sid[..4]),
                    hex(&sid[4..6]),
                    hex(&sid[6..8]),
                    hex(&sid[8..10]),
                    hex(&sid[10..])
                );
                match g.tag() {
                    Some(tag) => s.gtids.push(format!("{uuid}:{}:{}", tag.as_str(), g.gno())),
                    None => s.gtids.push(format!("{uuid}:{}", g.gno())),
                }
            }
            Ok(_) => {}
            Err(e) => return Err(Malformed(e.to_string())),
        },
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

type Images = (Option<Vec<Option<Value>>>, Option<Vec<Option<Value>>>);

/// Every row of a ROWS event as values, against its TABLE_MAP.
pub(crate) fn images(map: &TableMap, header: &RowsHeader<'_>) -> Result<Vec<Images>, Malformed> {
    if header.columns != map.columns.len() {
        return Err(Malformed(
            "rows event and table map disagree on columns".into(),
        ));
    }
    let mut r = Reader::new(header.rows);
    let mut out = Vec::new();
    while !r.is_empty() {
        let left = r.len();
        let before = header
            .before
            .map(|bits| image(map, bits, false, &mut r))
            .transpose()?;
        let partial = header.kind == RowsKind::PartialUpdate;
        let after = header
            .after
            .map(|bits| image(map, bits, partial, &mut r))
            .transpose()?;
        out.push((before, after));
        if r.len() == left {
            return Err(Malformed("row image of no bytes".into()));
        }
    }
    Ok(out)
}

fn image(
    map: &TableMap,
    present: &[u8],
    partial: bool,
    r: &mut Reader<'_>,
) -> Result<Vec<Option<Value>>, Malformed> {
    let bit = |bytes: &[u8], i: usize| bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
    let mut diffs: &[u8] = &[];
    if partial && r.lenenc("value options")? & 1 != 0 {
        diffs = r.take(map.json_columns.div_ceil(8), "partial JSON bitmap")?;
    }
    let count = (0..map.columns.len()).filter(|&i| bit(present, i)).count();
    let nulls = r.take(count.div_ceil(8), "NULL bitmap")?;
    let (mut n, mut json) = (0, 0);
    let mut values = Vec::new();
    for (i, col) in map.columns.iter().enumerate() {
        let is_json = col.ty == ColumnType::MYSQL_TYPE_JSON;
        json += usize::from(is_json);
        if !bit(present, i) {
            values.push(None);
            continue;
        }
        n += 1;
        if bit(nulls, n - 1) {
            values.push(Some(Value::NULL));
            continue;
        }
        let (whole, _) = col.layout.cell(r)?;
        if is_json && bit(diffs, json - 1) {
            values.push(Some(Value::Bytes(b"<partial JSON>".to_vec())));
            continue;
        }
        values.push(Some(cell::value(col, whole)?));
    }
    Ok(values)
}

/// A column definition a pipe would have stored for a binlog column, from the TABLE_MAP alone.
fn column_def(col: &tablemap::BinlogColumn, i: usize) -> ColumnDef {
    use ColumnType::*;
    let meta = col.meta();
    let text = || match col.collation {
        Some(63) | None => SourceType::Binary,
        Some(c) => match charset_of(c) {
            Some(charset) => SourceType::Text { charset },
            None => SourceType::Binary,
        },
    };
    let fsp = meta.first().copied().unwrap_or(0).min(6);
    let ty = match col.ty {
        MYSQL_TYPE_TINY => SourceType::Int {
            bytes: 1,
            unsigned: col.unsigned,
        },
        MYSQL_TYPE_SHORT => SourceType::Int {
            bytes: 2,
            unsigned: col.unsigned,
        },
        MYSQL_TYPE_INT24 => SourceType::Int {
            bytes: 3,
            unsigned: col.unsigned,
        },
        MYSQL_TYPE_LONG => SourceType::Int {
            bytes: 4,
            unsigned: col.unsigned,
        },
        MYSQL_TYPE_LONGLONG => SourceType::Int {
            bytes: 8,
            unsigned: col.unsigned,
        },
        MYSQL_TYPE_FLOAT => SourceType::Float,
        MYSQL_TYPE_DOUBLE => SourceType::Double,
        MYSQL_TYPE_NEWDECIMAL => SourceType::Decimal {
            precision: meta[0],
            scale: meta[1],
        },
        MYSQL_TYPE_BIT => SourceType::Bit {
            bits: (meta[1] * 8 + meta[0]).max(1),
        },
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_STRING | MYSQL_TYPE_BLOB => text(),
        MYSQL_TYPE_ENUM => match &col.members {
            Some(values) => SourceType::Enum {
                values: values.clone(),
            },
            None => SourceType::Int {
                bytes: 2,
                unsigned: true,
            },
        },
        MYSQL_TYPE_SET => match &col.members {
            Some(values) => SourceType::Set {
                values: values.clone(),
            },
            None => SourceType::Binary,
        },
        MYSQL_TYPE_NEWDATE => SourceType::Date,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => SourceType::DateTime { fsp },
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => SourceType::Timestamp { fsp },
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => SourceType::Time { fsp },
        MYSQL_TYPE_YEAR => SourceType::Year,
        MYSQL_TYPE_JSON => SourceType::Json,
        MYSQL_TYPE_GEOMETRY => SourceType::Geometry,
        _ => SourceType::Binary,
    };
    ColumnDef {
        name: col.name.clone().unwrap_or_else(|| format!("@{}", i + 1)),
        ty,
        nullable: col.nullable,
    }
}

fn charset_of(collation: u16) -> Option<Charset> {
    match collation {
        33 | 83 | 192..=215 | 45 | 46 | 224..=247 | 255..=323 => Some(Charset::Utf8),
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Some(Charset::Latin1),
        11 | 65 => Some(Charset::Ascii),
        _ => None,
    }
}

/// What the pipe's decoder made of a file: rows per table in the batch, and its errors.
#[derive(Debug, Default)]
pub(crate) struct PipeRun {
    pub rows: BTreeMap<String, usize>,
    pub errors: Vec<String>,
    /// Statements held as schema changes, in order.
    pub schema_changes: Vec<String>,
}

/// Runs the pipe's decoder over the file, replicating every table of `summary.maps`. Errors
/// (DDL on those tables, for one) are collected and decoding continues with the next event.
pub(crate) fn run_pipe(bytes: &[u8], summary: &Summary) -> PipeRun {
    let plans = plans(summary);
    let names: Vec<String> = plans.iter().map(|p| p.def.qualified()).collect();
    let mut decoder = Decoder::new(plans, &Position::default());
    let mut batch = Batch::new(names.len(), 1);
    let mut run = PipeRun::default();
    for event in Events::file(bytes).into_iter().flatten() {
        let Ok(event) = event else { break };
        if let Err(e) = decoder.apply(&event, &mut batch) {
            run.errors.push(e.to_string());
        }
        // DDL on a replicated table, held for the CDC loop to apply (not applied here).
        if let Some(change) = decoder.take_schema_change() {
            run.schema_changes.push(change.statement);
        }
    }
    for (name, table) in names.iter().zip(&batch.tables) {
        if table.rows > 0 {
            run.rows.insert(name.clone(), table.rows);
        }
    }
    run
}

/// Definitions of every table of the file, made up from its first TABLE_MAP, in name order.
pub(crate) fn plans(summary: &Summary) -> Vec<TablePlan> {
    summary
        .maps
        .values()
        .map(|map| {
            let columns: Vec<ColumnDef> = map
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| column_def(c, i))
                .collect();
            TablePlan {
                included: vec![true; columns.len()],
                append: false,
                def: TableDef {
                    db: map.db.clone(),
                    name: map.table.clone(),
                    columns,
                    primary_key: vec![],
                },
                target: map.table.clone(),
                order_by: vec![],
            }
        })
        .collect()
}
