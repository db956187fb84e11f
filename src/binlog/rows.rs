//! ROWS events → RowBinary rows in the batch (pure): the decoder's fast path.
//!
//! A [`RowPlan`] binds one TABLE_MAP to the stored definition of a replicated table, once per
//! table map: for every column, how its cells are laid out ([`Layout`]) and how they become
//! RowBinary ([`Target`]). Integers (MEDIUMINT widened to 4 bytes), FLOAT, DOUBLE and
//! length-prefixed text and bytes are written straight from the row image; every other type
//! goes through [`cell::value`] and `decode::encode`, the conversion the snapshot uses. The two
//! paths are byte-identical (`binlog::tests::differential` checks it on random rows).
//!
//! Invariants: a row is either written whole or not at all (`Batch::push` truncates a failed
//! row); every cell is cut by its layout from the bytes that are there, so a short or lying
//! row image is an error, never a read past the end; cost per row is linear in the columns.
//!
//! [`cell::value`]: super::cell::value

use mysql_common::constants::ColumnType;
use mysql_common::value::Value;

use super::cell;
use super::tablemap::{Layout, TableMap};
use super::wire::{Malformed, Reader};
use crate::batch::{Batch, Op};
use crate::charset::to_utf8;
use crate::clickhouse::rowbinary::put_bytes;
use crate::clickhouse::sql::Meta;
use crate::decode::{encode, DecodeError, Origin};
use crate::schema::{Charset, ColumnDef, SourceType, TablePlan};

/// What a present, non-NULL cell becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Not replicated (`exclude_columns`): skipped.
    Skip,
    /// Fixed-width little-endian integer or float already in its RowBinary form.
    Copy,
    /// MEDIUMINT: 3 bytes widened to the target's 4, by the column's signedness.
    Int24 { unsigned: bool },
    /// Text in the column's charset, converted to UTF-8.
    Text(Charset),
    /// Bytes unchanged.
    Bytes,
    /// Anything else: a `Value`, then `decode::encode`.
    Value,
}

#[derive(Debug, Clone)]
struct Step {
    layout: Layout,
    target: Target,
    /// Whether the target column is Nullable (a flag byte precedes the value).
    nullable: bool,
    /// Part of the primary key: compared between the images of an update.
    key: bool,
    /// JSON columns are numbered for the partial-update bitmap.
    json_index: Option<usize>,
    def: ColumnDef,
}

/// A TABLE_MAP bound to a replicated table: built once per table map, used for every row.
#[derive(Debug)]
pub(crate) struct RowPlan {
    /// Index of the table in the pipe's plans (and the batch).
    pub table: usize,
    map: TableMap,
    steps: Vec<Step>,
    /// The table is replicated append-only (it has no primary key).
    append: bool,
}

/// Why a row could not be written.
#[derive(Debug)]
pub(crate) enum RowError {
    /// The row image does not have the shape its table map and header promise.
    Malformed(Malformed),
    /// A value the target column cannot hold.
    Decode(DecodeError),
    /// A replicated column is missing from the image: `binlog_row_image` is not FULL.
    Missing { column: String },
    /// A partial JSON update (MySQL `binlog_row_value_options=PARTIAL_JSON`).
    PartialJson { column: String },
}

impl From<Malformed> for RowError {
    fn from(e: Malformed) -> RowError {
        RowError::Malformed(e)
    }
}

impl From<super::wire::Short> for RowError {
    fn from(e: super::wire::Short) -> RowError {
        RowError::Malformed(e.into())
    }
}

impl From<DecodeError> for RowError {
    fn from(e: DecodeError) -> RowError {
        RowError::Decode(e)
    }
}

/// The header of a ROWS event: which table, which columns each image carries, and the rows.
#[derive(Debug)]
pub(crate) struct RowsHeader<'a> {
    pub table_id: u64,
    pub kind: RowsKind,
    pub columns: usize,
    pub before: Option<&'a [u8]>,
    pub after: Option<&'a [u8]>,
    pub rows: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsKind {
    Write,
    Update,
    /// MySQL's PARTIAL_UPDATE_ROWS: the after image may carry JSON diffs.
    PartialUpdate,
    Delete,
}

/// Event types of the row events (v1: MySQL 5.1–5.5 and MariaDB; v2: MySQL 5.6+).
pub(crate) fn rows_kind(event_type: u8) -> Option<(RowsKind, bool)> {
    match event_type {
        23 => Some((RowsKind::Write, false)),
        24 => Some((RowsKind::Update, false)),
        25 => Some((RowsKind::Delete, false)),
        30 => Some((RowsKind::Write, true)),
        31 => Some((RowsKind::Update, true)),
        32 => Some((RowsKind::Delete, true)),
        39 => Some((RowsKind::PartialUpdate, true)),
        _ => None,
    }
}

/// Parses a ROWS event body; `post_header_len` 6 means 4-byte table ids (servers before 5.1.4).
pub(crate) fn parse_header(
    body: &[u8],
    event_type: u8,
    post_header_len: u8,
) -> Result<RowsHeader<'_>, Malformed> {
    let (kind, v2) = rows_kind(event_type)
        .ok_or_else(|| Malformed(format!("not a rows event: {event_type}")))?;
    let mut r = Reader::new(body);
    let table_id = if post_header_len == 6 {
        u64::from(r.u32_le("table id")?)
    } else {
        r.uint_le(6, "table id")?
    };
    r.take(2, "flags")?;
    if v2 {
        // The extra-data length counts its own two bytes.
        let extra = usize::from(r.u16_le("extra data length")?);
        r.take(extra.saturating_sub(2), "extra data")?;
    }
    let columns = r.lenenc("column count")?;
    let columns = usize::try_from(columns)
        .ok()
        .filter(|&n| n.div_ceil(8) <= r.len())
        .ok_or_else(|| Malformed(format!("column count {columns} exceeds the event")))?;
    let bitmap = columns.div_ceil(8);
    let (before, after) = match kind {
        RowsKind::Write => (None, Some(r.take(bitmap, "columns bitmap")?)),
        RowsKind::Delete => (Some(r.take(bitmap, "columns bitmap")?), None),
        RowsKind::Update | RowsKind::PartialUpdate => (
            Some(r.take(bitmap, "columns bitmap")?),
            Some(r.take(bitmap, "columns bitmap")?),
        ),
    };
    Ok(RowsHeader {
        table_id,
        kind,
        columns,
        before,
        after,
        rows: r.rest(),
    })
}

impl RowPlan {
    /// Binds `map` to `plan`, or says how they disagree: column count, a column's type, or
    /// (with `binlog_row_metadata=FULL`) its name. Rows are never decoded under a definition
    /// they were not written with.
    pub fn new(map: TableMap, plan: &TablePlan, table: usize) -> Result<RowPlan, String> {
        if map.columns.len() != plan.def.columns.len() || plan.included.len() != map.columns.len() {
            return Err(format!(
                "the binlog has {} columns, the stored definition {}",
                map.columns.len(),
                plan.def.columns.len()
            ));
        }
        for (i, (bc, def)) in map.columns.iter().zip(&plan.def.columns).enumerate() {
            if let Some(name) = bc.name.as_deref() {
                // Column names compare case-insensitively in MySQL and MariaDB.
                if !name.eq_ignore_ascii_case(&def.name) {
                    return Err(format!(
                        "column {} is `{name}` in the binlog, `{}` in the stored definition",
                        i + 1,
                        def.name
                    ));
                }
            }
            if !agrees(bc.ty, &def.ty) {
                return Err(format!(
                    "column `{}` is {:?} in the binlog, {:?} in the stored definition",
                    def.name, bc.ty, def.ty
                ));
            }
        }
        let mut json = 0;
        let steps = map
            .columns
            .iter()
            .zip(plan.def.columns.iter().zip(&plan.included))
            .enumerate()
            .map(|(i, (bc, (def, &included)))| {
                let json_index = (bc.ty == ColumnType::MYSQL_TYPE_JSON).then(|| {
                    json += 1;
                    json - 1
                });
                let target = if included {
                    target(bc.ty, &def.ty)
                } else {
                    Target::Skip
                };
                Step {
                    layout: bc.layout,
                    target,
                    nullable: def.nullable,
                    key: plan.def.primary_key.contains(&i),
                    json_index,
                    def: def.clone(),
                }
            })
            .collect();
        Ok(RowPlan {
            table,
            map,
            steps,
            append: plan.append,
        })
    }

    pub fn map(&self) -> &TableMap {
        &self.map
    }

    /// Appends every row change of a ROWS event to `batch`, in binlog order.
    pub fn apply(&self, header: &RowsHeader<'_>, batch: &mut Batch) -> Result<(), RowError> {
        if header.columns != self.steps.len() {
            return Err(Malformed(format!(
                "rows event with {} columns for a table map with {}",
                header.columns,
                self.steps.len()
            ))
            .into());
        }
        let mut r = Reader::new(header.rows);
        let mut before_key = Vec::new();
        let mut after_key = Vec::new();
        while !r.is_empty() {
            let left = r.len();
            match (header.before, header.after) {
                (None, Some(after)) => {
                    batch.count(self.table, Op::Insert);
                    self.push(&mut r, after, false, self.meta(Op::Insert), batch)?
                }
                (Some(before), None) => {
                    batch.count(self.table, Op::Delete);
                    self.push(&mut r, before, false, self.meta(Op::Delete), batch)?
                }
                (Some(before), Some(after)) => {
                    batch.count(self.table, Op::Update);
                    // Measure both images first: a key change writes a delete of the old key,
                    // which must take its version before the new row.
                    let start = r;
                    self.walk(&mut r, before, false, None, Some(&mut before_key))?;
                    let partial = header.kind == RowsKind::PartialUpdate;
                    let after_start = r;
                    self.walk(&mut r, after, partial, None, Some(&mut after_key))?;
                    // (A table without a key has empty keys: it records the new image only.)
                    if before_key != after_key {
                        let mut image = start;
                        let deleted = Meta::Keyed { deleted: true };
                        self.push(&mut image, before, false, deleted, batch)?;
                    }
                    let mut image = after_start;
                    self.push(&mut image, after, partial, self.meta(Op::Update), batch)?;
                }
                (None, None) => return Err(Malformed("rows event without images".into()).into()),
            }
            // Images without columns take no bytes: the rest of the event would never end.
            if r.len() == left {
                return Err(Malformed("row image of no bytes".into()).into());
            }
        }
        Ok(())
    }

    /// The metadata a row change of `op` writes: a key's state (deleted or not), or, for a
    /// table replicated append-only, the change itself.
    fn meta(&self, op: Op) -> Meta {
        match self.append {
            true => Meta::Append {
                change: op.change(),
                row: 0,
            },
            false => Meta::Keyed {
                deleted: op == Op::Delete,
            },
        }
    }

    fn push(
        &self,
        r: &mut Reader<'_>,
        present: &[u8],
        partial: bool,
        meta: Meta,
        batch: &mut Batch,
    ) -> Result<(), RowError> {
        batch
            .push(self.table, meta, |out| {
                self.walk(r, present, partial, Some(out), None)
            })
            .map(|_| ())
    }

    /// Walks one row image off `r`: writes it to `out` if given, and collects the primary key
    /// cells into `key` if given.
    fn walk<'a>(
        &self,
        r: &mut Reader<'a>,
        present: &[u8],
        partial: bool,
        mut out: Option<&mut Vec<u8>>,
        mut key: Option<&mut Vec<Option<&'a [u8]>>>,
    ) -> Result<(), RowError> {
        let is_present = |i: usize| present.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
        let mut partial_json: &[u8] = &[];
        if partial {
            // The shared image of a partial update: value options, then a bitmap of the JSON
            // columns that carry a diff instead of a value.
            const PARTIAL_JSON_UPDATES: u64 = 1;
            if r.lenenc("value options")? & PARTIAL_JSON_UPDATES != 0 {
                partial_json = r.take(self.map.json_columns.div_ceil(8), "partial JSON bitmap")?;
            }
        }
        let image_columns = (0..self.steps.len()).filter(|&i| is_present(i)).count();
        let nulls = r.take(image_columns.div_ceil(8), "NULL bitmap")?;
        if let Some(key) = key.as_deref_mut() {
            key.clear();
        }
        let mut n = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if !is_present(i) {
                if step.target != Target::Skip && out.is_some() {
                    return Err(RowError::Missing {
                        column: step.def.name.clone(),
                    });
                }
                continue;
            }
            let null = nulls[n / 8] & (1 << (n % 8)) != 0;
            n += 1;
            let cell = if null {
                None
            } else {
                Some(step.layout.cell(r)?)
            };
            if let Some(key) = key.as_deref_mut() {
                if step.key {
                    key.push(cell.map(|(whole, _)| whole));
                }
            }
            let Some(out) = out.as_deref_mut() else {
                continue;
            };
            if step.target == Target::Skip {
                continue;
            }
            let def = &step.def;
            let Some((whole, payload)) = cell else {
                if step.target == Target::Value || !step.nullable {
                    encode(def, &Value::NULL, Origin::Binlog, out)?;
                } else {
                    out.push(1);
                }
                continue;
            };
            if let Some(j) = step.json_index {
                if partial_json
                    .get(j / 8)
                    .is_some_and(|b| b & (1 << (j % 8)) != 0)
                {
                    return Err(RowError::PartialJson {
                        column: def.name.clone(),
                    });
                }
            }
            if step.nullable && step.target != Target::Value {
                out.push(0);
            }
            match step.target {
                Target::Copy => out.extend_from_slice(whole),
                Target::Int24 { unsigned } => {
                    let v =
                        u32::from(whole[0]) | u32::from(whole[1]) << 8 | u32::from(whole[2]) << 16;
                    let v = if unsigned {
                        v
                    } else {
                        ((v << 8) as i32 >> 8) as u32
                    };
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Target::Text(charset) => {
                    let text =
                        to_utf8(charset, payload).map_err(|source| DecodeError::Charset {
                            column: def.name.clone(),
                            source,
                        })?;
                    put_bytes(out, &text);
                }
                Target::Bytes => put_bytes(out, payload),
                Target::Value => {
                    let value = cell::value(&self.map.columns[i], whole)?;
                    encode(def, &value, Origin::Binlog, out)?;
                }
                Target::Skip => {}
            }
        }
        Ok(())
    }
}

/// Whether a binlog column type can hold values of a column defined as `def`: the same type
/// family and, for integers, the same width.
fn agrees(ty: ColumnType, def: &SourceType) -> bool {
    use ColumnType::*;
    let text_like = matches!(
        ty,
        MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
    );
    match def {
        SourceType::Int { bytes, .. } => matches!(
            (ty, bytes),
            (MYSQL_TYPE_TINY, 1)
                | (MYSQL_TYPE_SHORT, 2)
                | (MYSQL_TYPE_INT24, 3)
                | (MYSQL_TYPE_LONG, 4)
                | (MYSQL_TYPE_LONGLONG, 8)
        ),
        SourceType::Decimal { .. } => ty == MYSQL_TYPE_NEWDECIMAL,
        SourceType::Float => ty == MYSQL_TYPE_FLOAT,
        SourceType::Double => ty == MYSQL_TYPE_DOUBLE,
        SourceType::Bit { .. } => ty == MYSQL_TYPE_BIT,
        SourceType::Text { .. } | SourceType::FixedBinary { .. } => text_like,
        // MySQL 9's VECTOR is a length-prefixed byte string too.
        SourceType::Binary => text_like || ty == MYSQL_TYPE_VECTOR,
        SourceType::Enum { .. } => ty == MYSQL_TYPE_ENUM,
        SourceType::Set { .. } => ty == MYSQL_TYPE_SET,
        SourceType::Date => matches!(ty, MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE),
        SourceType::DateTime { .. } => matches!(ty, MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2),
        SourceType::Timestamp { .. } => {
            matches!(ty, MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2)
        }
        SourceType::Time { .. } => matches!(ty, MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2),
        SourceType::Year => ty == MYSQL_TYPE_YEAR,
        // MariaDB sends its fixed-size binary types as BINARY(n).
        SourceType::Uuid | SourceType::Inet4 | SourceType::Inet6 => ty == MYSQL_TYPE_STRING,
        // MySQL's binary JSON, or MariaDB's alias of LONGTEXT.
        SourceType::Json => ty == MYSQL_TYPE_JSON || text_like,
        SourceType::Geometry => ty == MYSQL_TYPE_GEOMETRY || text_like,
    }
}

/// Which binlog type / definition pairs the fast path writes itself: exactly those where the
/// stock conversion leaves the bytes unchanged (up to MEDIUMINT widening and charset
/// conversion). Any other pair, including an unexpected one, takes the general path.
fn target(ty: ColumnType, def: &SourceType) -> Target {
    use ColumnType::*;
    match (ty, def) {
        (MYSQL_TYPE_TINY, SourceType::Int { bytes: 1, .. })
        | (MYSQL_TYPE_SHORT, SourceType::Int { bytes: 2, .. })
        | (MYSQL_TYPE_LONG, SourceType::Int { bytes: 4, .. })
        | (MYSQL_TYPE_LONGLONG, SourceType::Int { bytes: 8, .. })
        | (MYSQL_TYPE_FLOAT, SourceType::Float)
        | (MYSQL_TYPE_DOUBLE, SourceType::Double) => Target::Copy,
        (MYSQL_TYPE_INT24, SourceType::Int { bytes: 3, unsigned }) => Target::Int24 {
            unsigned: *unsigned,
        },
        (
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB,
            SourceType::Text { charset },
        ) => Target::Text(*charset),
        (
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB,
            SourceType::Binary | SourceType::Json,
        ) => Target::Bytes,
        _ => Target::Value,
    }
}
