//! Binlog events → row changes in a [`Batch`] (pure: no IO, fed one event at a time, so the
//! same code serves the live stream and binlog files in tests).
//!
//! Transaction boundaries: a transaction opens at a GTID event (MariaDB, MySQL) or a `BEGIN`
//! query, and ends at an XID event or a `COMMIT` query, where the batch records the end
//! position of that event as its resume point. `ROLLBACK` discards the transaction's rows.
//! Rows are decoded against the table definition the pipe stored; a TABLE_MAP whose column
//! count differs from it is a schema change the decoder refuses rather than mis-decodes.
//!
//! Only the events the pipe acts on are parsed at all; everything a server sends is checked
//! before use (TABLE_MAPs and rows by [`tablemap`] and [`rows`], MariaDB events by
//! [`mariadb`]), and a panic anywhere in decoding becomes [`Error::BinlogPanic`] for the event,
//! never a crash of the pipe task.
//!
//! [`tablemap`]: super::tablemap
//! [`rows`]: super::rows
//! [`mariadb`]: super::mariadb

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData};
use mysql_common::proto::MySerialize;

use super::mariadb;
use super::rows::{self, RowError, RowPlan};
use super::tablemap;
use crate::batch::Batch;
use crate::config::TablesConfig;
use crate::ddl::{self, Ddl};
use crate::error::{panic_message, Error, Result};
use crate::schema::TablePlan;
use crate::source::gtid::GtidState;
use crate::source::Position;

/// Table ids are reassigned as tables are reopened; past this many the cache starts over
/// (TABLE_MAPs are resent with every statement, so nothing is lost).
const MAX_TABLE_MAPS: usize = 4096;

const QUERY: u8 = EventType::QUERY_EVENT as u8;
const ROTATE: u8 = EventType::ROTATE_EVENT as u8;
const XID: u8 = EventType::XID_EVENT as u8;
const TABLE_MAP: u8 = EventType::TABLE_MAP_EVENT as u8;
const INCIDENT: u8 = EventType::INCIDENT_EVENT as u8;
const GTID: u8 = EventType::GTID_EVENT as u8;
const ANONYMOUS_GTID: u8 = EventType::ANONYMOUS_GTID_EVENT as u8;
const GTID_TAGGED: u8 = EventType::GTID_TAGGED_LOG_EVENT as u8;
const TRANSACTION_PAYLOAD: u8 = EventType::TRANSACTION_PAYLOAD_EVENT as u8;

/// A table id's TABLE_MAP, as last announced; `raw` skips re-planning an identical one.
struct Mapped {
    raw: Vec<u8>,
    /// `None` for tables the pipe does not replicate.
    plan: Option<RowPlan>,
}

pub(crate) struct Decoder {
    /// Replicated tables by `(db, table)`, as indexes into `plans`.
    by_name: HashMap<(String, String), usize>,
    plans: Vec<TablePlan>,
    table_maps: HashMap<u64, Mapped>,
    file: String,
    gtid: String,
    /// MariaDB's per-domain GTID state, when the start position has one (or none at all).
    gtid_state: Option<GtidState>,
    /// A MariaDB standalone event group: commits at the end of its single statement.
    standalone: bool,
    /// End of the TRANSACTION_PAYLOAD whose events are being applied: they carry no position
    /// of their own.
    payload_end: Option<u32>,
    /// The statement of the rows that follow (MariaDB ANNOTATE_ROWS), for error messages.
    annotate: Vec<u8>,
    /// DDL on a replicated table, waiting for the CDC loop.
    pending: Option<SchemaChange>,
    /// Tables (plan indexes) whose rows no longer match their definition: skipped.
    isolated: HashSet<usize>,
    /// Isolations not yet taken by the CDC loop, with the reason.
    isolations: Vec<(usize, String)>,
    /// The pipe's table selection, to notice tables created or renamed into it.
    selection: Option<TablesConfig>,
    /// Timestamp of the last event, for lag.
    pub last_event_time: u32,
    /// Values clamped since the CDC loop last took them.
    clamps: Vec<(String, crate::decode::Clamps)>,
    /// Tables (plan indexes) replicated append-only, with the position their rows were read
    /// at: their row events up to it are in the target already.
    read_at: HashMap<usize, Position>,
}

/// A DDL statement on replicated tables, in binlog order: rows after it must not be decoded
/// before it is applied.
#[derive(Debug, Clone)]
pub(crate) struct SchemaChange {
    pub ddl: Ddl,
    /// Indexes of the replicated tables it touches, into the decoder's plans.
    pub tables: Vec<usize>,
    /// The statement (shortened), for messages.
    pub statement: String,
    /// End of the QUERY event: where the pipe resumes once the change is applied.
    pub position: Position,
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
            gtid_state: GtidState::parse(&start.gtid),
            standalone: false,
            payload_end: None,
            annotate: Vec::new(),
            pending: None,
            isolated: HashSet::new(),
            isolations: Vec::new(),
            selection: None,
            last_event_time: 0,
            clamps: Vec::new(),
            read_at: HashMap::new(),
        }
    }

    /// Skips the row events of table `table` (a plan index) that end at or before `position`,
    /// where its rows were read whole (a table replicated append-only has no key under which
    /// a change applied twice would collapse).
    pub fn skip_until(&mut self, table: usize, position: Position) {
        self.read_at.insert(table, position);
    }

    /// Tables found not to match their definition since the last call, with the reason: the
    /// decoder skips their rows; the pipe isolates them.
    pub fn take_isolations(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.isolations)
    }

    /// Also notices tables that `selection` selects when they are created while replicating.
    pub fn with_selection(mut self, selection: TablesConfig) -> Decoder {
        self.selection = Some(selection);
        self
    }

    fn position(&self, event: &Event) -> Position {
        let pos = match (event.header().log_pos(), self.payload_end) {
            (0, Some(end)) => end,
            (pos, _) => pos,
        };
        Position {
            file: self.file.clone(),
            pos: u64::from(pos),
            gtid: self.gtid.clone(),
        }
    }

    fn binlog_error(&self, event: &Event, what: impl std::fmt::Display) -> Error {
        Error::Binlog(format!("{what} at {}", self.position(event)))
    }

    fn resync_required(&self, event: &Event, reason: &str) -> Error {
        Error::ResyncRequired {
            reason: reason.to_owned(),
            position: self.position(event).to_string(),
        }
    }

    /// Applies one event to `batch`. A panic while decoding it (a bug: every input is checked)
    /// is returned as an error naming the event's position.
    pub fn apply(&mut self, event: &Event, batch: &mut Batch) -> Result<()> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.apply_event(event, batch)))
            .unwrap_or_else(|panic| {
                Err(Error::BinlogPanic {
                    position: format!("ending at {}", self.position(event)),
                    detail: format!("decoding panicked: {}", panic_message(panic.as_ref())),
                })
            })
    }

    fn apply_event(&mut self, event: &Event, batch: &mut Batch) -> Result<()> {
        let header = event.header();
        if header.timestamp() != 0 {
            self.last_event_time = header.timestamp();
        }
        if header.log_pos() != 0 {
            self.payload_end = None;
        }
        let malformed = |e: super::wire::Malformed| self.binlog_error(event, e);
        match header.event_type_raw() {
            mariadb::GTID => {
                let (gtid, flags) =
                    mariadb::gtid(event.data(), header.server_id()).map_err(malformed)?;
                match &mut self.gtid_state {
                    Some(state) => {
                        state.record(gtid);
                        self.gtid = state.to_string();
                    }
                    None => self.gtid = gtid.to_string(),
                }
                self.standalone = flags & mariadb::FL_STANDALONE != 0;
                batch.begin();
            }
            mariadb::GTID_LIST => {
                let list = mariadb::gtid_list(event.data()).map_err(malformed)?;
                if let Some(state) = &mut self.gtid_state {
                    state.merge(&list);
                    self.gtid = state.to_string();
                }
            }
            mariadb::ANNOTATE_ROWS => {
                self.annotate.clear();
                self.annotate.extend_from_slice(event.data());
            }
            mariadb::BINLOG_CHECKPOINT => {
                mariadb::binlog_checkpoint(event.data()).map_err(malformed)?;
            }
            // Encryption is undone by the server before it sends events.
            mariadb::START_ENCRYPTION => {}
            t if mariadb::is_compressed(t) => {
                let plain = mariadb::inflate(event)
                    .map_err(|e| self.binlog_error(event, format!("compressed event: {e}")))?;
                return self.apply_event(&plain, batch);
            }
            TABLE_MAP => self.table_map(event)?,
            t if rows::rows_kind(t).is_some() => self.rows(event, batch)?,
            TRANSACTION_PAYLOAD => self.payload_end = Some(header.log_pos()),
            INCIDENT => {
                return Err(self.resync_required(
                    event,
                    "the source logged an incident (changes may be missing from its binlog)",
                ))
            }
            QUERY | ROTATE | XID | GTID | ANONYMOUS_GTID | GTID_TAGGED => {
                self.parsed(event, batch)?
            }
            // Nothing else changes rows or transaction boundaries: not even parsed.
            _ => {}
        }
        Ok(())
    }

    /// The events mysql_common parses for us: their parsers read with bounds checks.
    fn parsed(&mut self, event: &Event, batch: &mut Batch) -> Result<()> {
        let data = event.read_data().map_err(|e| {
            self.binlog_error(
                event,
                format!(
                    "undecodable event type {}: {e}",
                    event.header().event_type_raw()
                ),
            )
        })?;
        match data {
            Some(EventData::RotateEvent(rotate)) => {
                self.file =
                    String::from_utf8_lossy(strip_checksum(event, rotate.name_raw())).into_owned();
                // Table ids do not survive a new file.
                self.table_maps.clear();
            }
            Some(EventData::GtidEvent(_) | EventData::AnonymousGtidEvent(_)) => batch.begin(),
            Some(EventData::XidEvent(_)) => batch.commit(self.position(event)),
            Some(EventData::QueryEvent(q)) => {
                let query = q.query();
                let verb = first_word(&query);
                match verb.as_str() {
                    "BEGIN" | "XA" if !query.to_ascii_uppercase().contains("COMMIT") => {
                        batch.begin()
                    }
                    "COMMIT" | "XA" => batch.commit(self.position(event)),
                    "ROLLBACK" if !query.to_ascii_uppercase().contains(" TO ") => {
                        if !batch.rollback() {
                            // Only a transaction that also changed non-transactional tables
                            // reaches the binlog with a ROLLBACK, and this one was too large
                            // to hold: its first rows are already in the target.
                            return Err(self.resync_required(
                                event,
                                "a rolled-back transaction larger than the batch byte cap was \
                                 partly written to the target",
                            ));
                        }
                    }
                    "SAVEPOINT" | "ROLLBACK" => {}
                    _ => {
                        if self.note_ddl(&q.schema(), &query, event) {
                            // Committed by the CDC loop once the change is applied.
                            self.standalone = false;
                            return Ok(());
                        }
                        // A statement outside BEGIN..COMMIT (DDL) is its own transaction.
                        if self.standalone || !batch.in_transaction() {
                            self.standalone = false;
                            batch.commit(self.position(event));
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Classifies a statement outside row events. DDL on a replicated table is held as
    /// [`SchemaChange`] for the CDC loop, which applies it before any later row is decoded;
    /// returns whether it was held.
    fn note_ddl(&mut self, schema: &str, query: &str, event: &Event) -> bool {
        let ddl = ddl::classify(schema, query);
        let touched: Vec<ddl::TableName> = match &ddl {
            Ddl::AlterTable { table, .. } | Ddl::Truncate(table) => vec![table.clone()],
            Ddl::DropTable(tables) => tables.clone(),
            Ddl::RenameTables(pairs) => pairs.iter().map(|(from, _)| from.clone()).collect(),
            Ddl::Unparsed { tables, .. } | Ddl::RowsByStatement { tables, .. } => tables.clone(),
            Ddl::DropDatabase(db) => self
                .plans
                .iter()
                .filter(|p| p.def.db.eq_ignore_ascii_case(db))
                .map(|p| (p.def.db.clone(), p.def.name.clone()))
                .collect(),
            Ddl::CreateTable(_) | Ddl::DatabaseCharset { .. } | Ddl::Other => Vec::new(),
        };
        let replicated: Vec<usize> = touched
            .iter()
            .filter_map(|t| self.by_name.get(t).copied())
            .collect();
        let new_to_the_pipe = |name: &ddl::TableName| {
            self.selection
                .as_ref()
                .is_some_and(|t| t.matches(&name.0, &name.1))
                && !self.by_name.contains_key(name)
        };
        let created = match &ddl {
            Ddl::CreateTable(ct) => new_to_the_pipe(&ct.table),
            // A statement about a selected table the pipe does not know, not understood
            // (a CREATE, typically): the pipe isolates the table rather than ignore it.
            Ddl::Unparsed { tables, .. } => tables.iter().any(new_to_the_pipe),
            // A table renamed into the selection (an online schema change's cut-over, when
            // its shadow table is not selected): it has to be copied.
            Ddl::RenameTables(pairs) => pairs
                .iter()
                .any(|(from, to)| !self.by_name.contains_key(from) && new_to_the_pipe(to)),
            _ => false,
        };
        if replicated.is_empty() && !created {
            return false;
        }
        self.pending = Some(SchemaChange {
            ddl,
            tables: replicated,
            statement: truncate(query, 500).to_owned(),
            position: self.position(event),
        });
        true
    }

    /// The DDL held by the last event, if any (see [`Decoder::note_ddl`]).
    pub fn take_schema_change(&mut self) -> Option<SchemaChange> {
        self.pending.take()
    }

    /// A TABLE_MAP: bound to its table's plan once, reused while the server resends it as is.
    fn table_map(&mut self, event: &Event) -> Result<()> {
        let body = event.data();
        let post_header_len = event
            .fde()
            .get_event_type_header_length(EventType::TABLE_MAP_EVENT);
        let malformed = |e| self.binlog_error(event, format!("TABLE_MAP: {e}"));
        let id = tablemap::table_id(body, post_header_len).map_err(malformed)?;
        if self.table_maps.get(&id).is_some_and(|m| m.raw == body) {
            return Ok(());
        }
        let (_, db, name) = tablemap::names(body, post_header_len).map_err(malformed)?;
        let plan = match self.by_name.get(&(db, name)) {
            Some(&table) if !self.isolated.contains(&table) => {
                let map = tablemap::parse(body, post_header_len).map_err(malformed)?;
                match RowPlan::new(map, &self.plans[table], table) {
                    Ok(plan) => Some(plan),
                    Err(detail) => {
                        // Its rows are skipped from here on; the other tables go on.
                        let reason = format!(
                            "the binlog's TABLE_MAP at {} does not match the stored definition: {detail}",
                            self.position(event)
                        );
                        self.isolated.insert(table);
                        self.isolations.push((table, reason));
                        None
                    }
                }
            }
            _ => None,
        };
        if self.table_maps.len() >= MAX_TABLE_MAPS {
            self.table_maps.clear();
        }
        self.table_maps.insert(
            id,
            Mapped {
                raw: body.to_vec(),
                plan,
            },
        );
        Ok(())
    }

    fn rows(&mut self, event: &Event, batch: &mut Batch) -> Result<()> {
        let ty = event.header().event_type_raw();
        let post_header_len = event
            .header()
            .event_type()
            .map(|t| event.fde().get_event_type_header_length(t))
            .unwrap_or(0);
        let header = rows::parse_header(event.data(), ty, post_header_len)
            .map_err(|e| self.binlog_error(event, format!("rows event: {e}")))?;
        let plan = match self.table_maps.get(&header.table_id) {
            None => {
                return Err(self.binlog_error(
                    event,
                    format!("rows event for unknown table id {}", header.table_id),
                ))
            }
            Some(Mapped { plan: None, .. }) => return Ok(()),
            Some(Mapped {
                plan: Some(plan), ..
            }) => plan,
        };
        if let Some(read_at) = self.read_at.get(&plan.table) {
            if read_at.reached(&self.position(event)) {
                return Ok(());
            }
        }
        let applied = plan
            .apply(&header, batch)
            .map_err(|e| self.row_error(e, plan, event));
        // Recorded on this thread while the event was decoded (see `decode::take_clamps`).
        if let Some(clamps) = crate::decode::take_clamps() {
            let table = format!("{}.{}", plan.map().db, plan.map().table);
            self.clamps.push((table, clamps));
        }
        applied
    }

    /// Values clamped to fit ClickHouse since the last call, by table (`db.table`).
    pub fn take_clamps(&mut self) -> Vec<(String, crate::decode::Clamps)> {
        std::mem::take(&mut self.clamps)
    }

    fn row_error(&self, e: RowError, plan: &RowPlan, event: &Event) -> Error {
        let table = format!("{}.{}", plan.map().db, plan.map().table);
        match e {
            RowError::Malformed(e) => {
                let statement = if self.annotate.is_empty() {
                    String::new()
                } else {
                    let text = String::from_utf8_lossy(&self.annotate);
                    format!(" (statement `{}`)", truncate(&text, 200))
                };
                self.binlog_error(event, format!("undecodable row of {table}{statement}: {e}"))
            }
            RowError::Decode(source) => Error::Decode {
                table,
                position: self.position(event).to_string(),
                source: Box::new(source),
            },
            RowError::Missing { column } => Error::InvalidSourceSetting {
                setting: "binlog_row_image".into(),
                actual: "not FULL".into(),
                expected: "FULL".into(),
                hint: format!("a row of {table} arrived without column `{column}`"),
            },
            RowError::PartialJson { column } => Error::Binlog(format!(
                "{table}.{column}: partial JSON update in the binlog; set binlog_row_value_options='' (at {})",
                self.position(event)
            )),
        }
    }
}

/// The ROTATE a dump starts with comes before any FORMAT_DESCRIPTION, so the stream reader
/// cannot know that it carries a CRC32 and leaves the checksum at the end of the file name.
/// Strips those four bytes when they are the event's CRC32.
pub(crate) fn strip_checksum<'a>(event: &Event, name: &'a [u8]) -> &'a [u8] {
    let data = event.data();
    let Some(split) = data.len().checked_sub(4) else {
        return name;
    };
    let (body, crc) = data.split_at(split);
    let mut covered = Vec::with_capacity(data.len() + 19);
    event.header().serialize(&mut covered);
    covered.extend_from_slice(body);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    match name.len().checked_sub(4) {
        Some(n) if crc32fast::hash(&covered) == expected => &name[..n],
        _ => name,
    }
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
    use crate::binlog::tests::{event_bytes, gen};
    use rand::SeedableRng;

    #[test]
    fn a_panic_while_decoding_is_an_error_naming_the_event() {
        // A batch with fewer tables than the decoder has plans: writing a row of the second
        // table indexes past the batch, a bug the decoder reports instead of crashing on.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let cols = vec![gen::column(&mut rng, 0, true)];
        let plan = gen::plan_of(&cols, 1, |_| true);
        let mut other = plan.clone();
        other.def.name = "u".into();
        let mut decoder = Decoder::new(vec![other, plan], &Position::default());
        let mut batch = Batch::new(1, 1);
        let parse = |bytes: Vec<u8>| {
            Event::read(
                &mysql_common::binlog::events::FormatDescriptionEvent::new(
                    mysql_common::binlog::consts::BinlogVersion::Version4,
                ),
                &bytes[..],
            )
            .expect("event")
        };
        let map = parse(event_bytes(19, &gen::table_map_body(5, &cols), 300));
        decoder.apply(&map, &mut batch).expect("table map");
        let row = vec![gen::cell(&mut rng, &cols[0], false)];
        let body = gen::rows_body(5, 1, gen::Change::Insert, false, &[(None, Some(row))]);
        let rows = parse(event_bytes(23, &body, 400));
        let err = decoder.apply(&rows, &mut batch).unwrap_err();
        assert!(matches!(err, Error::BinlogPanic { .. }), "{err}");
        assert!(err.to_string().contains(":400"), "{err}");
    }

    #[test]
    fn first_word_skips_comments() {
        assert_eq!(first_word("/* x */ alter table t add c int"), "ALTER");
        assert_eq!(first_word("  BEGIN"), "BEGIN");
        assert_eq!(first_word("COMMIT;"), "COMMIT");
        assert_eq!(first_word("/* unterminated"), "");
    }
}
