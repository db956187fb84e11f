//! TABLE_MAP event → a validated description of every column's cells (pure).
//!
//! Parsed here rather than by `mysql_common`, once per table map: the stock row parser re-reads
//! the metadata block from its start for every cell of every row (quadratic in the column
//! count) and indexes metadata bytes without checking they exist.
//!
//! Invariant: a [`TableMap`] exists only if each column's metadata has exactly the length its
//! type requires, the lengths add up to the metadata block, and the values are in the ranges
//! the server can produce (DECIMAL scale ≤ precision ≤ 65, fractional digits ≤ 6, BLOB length
//! bytes 1–4, ...). From then on [`Layout`] alone bounds each cell in a row image, and the
//! metadata handed to `mysql_common` for a fallback cell has every byte its parser indexes.

use mysql_common::constants::ColumnType;

use super::wire::{Malformed, Reader};

/// The largest DECIMAL precision MySQL and MariaDB accept.
const MAX_DECIMAL_PRECISION: u8 = 65;
const MAX_DECIMAL_SCALE: u8 = 30;
/// Fractional second digits of TIME/DATETIME/TIMESTAMP.
const MAX_FSP: u8 = 6;
/// BIT(64) is the widest BIT column.
const MAX_BIT_BYTES: u8 = 8;
/// A SET has at most 64 members: 8 bytes of bitmask.
const MAX_SET_BYTES: u8 = 8;

/// Optional metadata field types (`binlog_row_metadata`), the ones the decoder reads.
const META_SIGNEDNESS: u8 = 1;
const META_DEFAULT_CHARSET: u8 = 2;
const META_COLUMN_CHARSET: u8 = 3;
const META_COLUMN_NAME: u8 = 4;
const META_SET_STR_VALUE: u8 = 5;
const META_ENUM_STR_VALUE: u8 = 6;

/// How a cell of a column is laid out in a row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Exactly this many bytes.
    Fixed(usize),
    /// A little-endian length of this many bytes (1–4), then that many bytes.
    Prefixed(u8),
    /// A type row images never carry (old DECIMAL, NULL, typed arrays): a row with such a
    /// non-NULL cell is refused, since the cell's extent is unknown.
    Unsupported,
}

impl Layout {
    /// Takes one cell off `r`: the whole cell (with its length prefix) and its payload.
    #[inline]
    pub fn cell<'a>(self, r: &mut Reader<'a>) -> Result<(&'a [u8], &'a [u8]), Malformed> {
        match self {
            Layout::Fixed(n) => {
                let cell = r.take(n, "cell")?;
                Ok((cell, cell))
            }
            Layout::Prefixed(n) => {
                let start = r.rest();
                let len = r.uint_le(usize::from(n), "cell length")?;
                let len = usize::try_from(len).map_err(|_| Malformed("cell length".into()))?;
                let payload = r.take(len, "cell")?;
                Ok((&start[..usize::from(n) + len], payload))
            }
            Layout::Unsupported => Err(Malformed("cell of a column type rows never carry".into())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BinlogColumn {
    /// The real type: CHAR-coded ENUM and SET resolved, DATE read as NEWDATE (as mysql_common).
    pub ty: ColumnType,
    meta: [u8; 2],
    meta_len: u8,
    pub layout: Layout,
    /// From the table map's NULL bitmap.
    pub nullable: bool,
    /// From the optional SIGNEDNESS metadata (`false` without it, like mysql_common).
    pub unsigned: bool,
    /// Collation of a character column, from the optional charset metadata.
    pub collation: Option<u16>,
    /// From the optional COLUMN_NAME metadata.
    pub name: Option<String>,
    /// ENUM / SET members, from the optional ENUM_STR_VALUE / SET_STR_VALUE metadata.
    pub members: Option<Vec<String>>,
}

impl BinlogColumn {
    /// The column's metadata bytes as the table map sent them (0–2 bytes, validated).
    pub fn meta(&self) -> &[u8] {
        &self.meta[..usize::from(self.meta_len)]
    }
}

/// A validated TABLE_MAP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableMap {
    pub table_id: u64,
    pub db: String,
    pub table: String,
    pub columns: Vec<BinlogColumn>,
    /// JSON columns, for the partial-update bitmap of PARTIAL_UPDATE_ROWS events.
    pub json_columns: usize,
}

/// Parses a TABLE_MAP event body. `post_header_len` is the FORMAT_DESCRIPTION's length for
/// TABLE_MAP: 6 on servers before 5.1.4 (4-byte table ids), 8 since.
pub(crate) fn parse(body: &[u8], post_header_len: u8) -> Result<TableMap, Malformed> {
    let mut r = Reader::new(body);
    let (table_id, db, table) = head(&mut r, post_header_len)?;
    let count = r.lenenc("column count")?;
    // Every column has a type byte: a count beyond the event is a lie, refused before use.
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n <= r.len())
        .ok_or_else(|| Malformed(format!("column count {count} exceeds the event")))?;
    let types = r.take(count, "column types")?;
    let meta_block = r.lenenc_bytes("column metadata")?;
    let nulls = r.take(count.div_ceil(8), "NULL bitmap")?;
    let optional = r.rest();

    let mut meta = Reader::new(meta_block);
    let mut columns = Vec::with_capacity(count);
    for (i, &code) in types.iter().enumerate() {
        let mut column = column(code, &mut meta)
            .map_err(|e| Malformed(format!("{db}.{table} column {}: {e}", i + 1)))?;
        column.nullable = nulls[i / 8] & (1 << (i % 8)) != 0;
        columns.push(column);
    }
    if !meta.is_empty() {
        return Err(Malformed(format!(
            "{db}.{table}: {} bytes of column metadata left over",
            meta.len()
        )));
    }
    apply_optional(&mut columns, optional)
        .map_err(|e| Malformed(format!("{db}.{table}: optional metadata: {e}")))?;
    let json_columns = columns
        .iter()
        .filter(|c| c.ty == ColumnType::MYSQL_TYPE_JSON)
        .count();
    Ok(TableMap {
        table_id,
        db,
        table,
        columns,
        json_columns,
    })
}

/// Table id, database and table name: enough to tell whether the table is replicated, without
/// validating (and possibly refusing) the columns of a table the pipe ignores.
pub(crate) fn names(body: &[u8], post_header_len: u8) -> Result<(u64, String, String), Malformed> {
    head(&mut Reader::new(body), post_header_len)
}

/// The table id alone, to find a cached table map without reading the rest.
pub(crate) fn table_id(body: &[u8], post_header_len: u8) -> Result<u64, Malformed> {
    let mut r = Reader::new(body);
    if post_header_len == 6 {
        Ok(u64::from(r.u32_le("table id")?))
    } else {
        Ok(r.uint_le(6, "table id")?)
    }
}

fn head(r: &mut Reader<'_>, post_header_len: u8) -> Result<(u64, String, String), Malformed> {
    let table_id = table_id(r.rest(), post_header_len)?;
    r.take(if post_header_len == 6 { 4 } else { 6 }, "table id")?;
    r.take(2, "flags")?;
    let db = name(r, "database name")?;
    let table = name(r, "table name")?;
    Ok((table_id, db, table))
}

fn name(r: &mut Reader<'_>, what: &'static str) -> Result<String, Malformed> {
    let len = r.u8(what)?;
    let bytes = r.take(usize::from(len), what)?;
    r.take(1, what)?; // NUL terminator
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// One column: its type code and its metadata, taken off `meta`.
fn column(code: u8, meta: &mut Reader<'_>) -> Result<BinlogColumn, Malformed> {
    use ColumnType::*;
    let raw = ColumnType::try_from(code).map_err(|_| Malformed(format!("unknown type {code}")))?;
    let meta_len = match raw {
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_DOUBLE
        | MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_JSON
        | MYSQL_TYPE_VECTOR => 1,
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_BIT => 2,
        // Its metadata length depends on the element type; replication never sends it.
        MYSQL_TYPE_TYPED_ARRAY => return Err(Malformed("typed array column".into())),
        _ => 0,
    };
    let bytes = meta.take(meta_len, "column metadata")?;
    let mut m = [0u8; 2];
    m[..meta_len].copy_from_slice(bytes);
    let bad = |what: &str| Malformed(format!("{raw:?} with {what} (metadata {bytes:02x?})"));
    let (ty, layout) = match raw {
        MYSQL_TYPE_TINY | MYSQL_TYPE_YEAR => (raw, Layout::Fixed(1)),
        MYSQL_TYPE_SHORT => (raw, Layout::Fixed(2)),
        MYSQL_TYPE_INT24 | MYSQL_TYPE_TIME => (raw, Layout::Fixed(3)),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (MYSQL_TYPE_NEWDATE, Layout::Fixed(3)),
        MYSQL_TYPE_LONG | MYSQL_TYPE_TIMESTAMP => (raw, Layout::Fixed(4)),
        MYSQL_TYPE_LONGLONG | MYSQL_TYPE_DATETIME => (raw, Layout::Fixed(8)),
        // mysql_common reads these as 4 and 8 bytes whatever the metadata says.
        MYSQL_TYPE_FLOAT => (raw, Layout::Fixed(4)),
        MYSQL_TYPE_DOUBLE => (raw, Layout::Fixed(8)),
        MYSQL_TYPE_TIMESTAMP2 | MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIME2 => {
            if m[0] > MAX_FSP {
                return Err(bad("more than 6 fractional digits"));
            }
            let int_part = match raw {
                MYSQL_TYPE_TIMESTAMP2 => 4,
                MYSQL_TYPE_DATETIME2 => 5,
                _ => 3,
            };
            (raw, Layout::Fixed(int_part + usize::from(m[0]).div_ceil(2)))
        }
        MYSQL_TYPE_NEWDECIMAL => {
            let (precision, scale) = (m[0], m[1]);
            if precision == 0
                || precision > MAX_DECIMAL_PRECISION
                || scale > MAX_DECIMAL_SCALE
                || scale > precision
            {
                return Err(bad("an impossible precision or scale"));
            }
            (raw, Layout::Fixed(decimal_bytes(precision, scale)))
        }
        MYSQL_TYPE_BIT => {
            let (bits, bytes) = (m[0], m[1]);
            if bits > 7 || u16::from(bytes) * 8 + u16::from(bits) > u16::from(MAX_BIT_BYTES) * 8 {
                return Err(bad("more than 64 bits"));
            }
            (
                raw,
                Layout::Fixed((usize::from(bytes) * 8 + usize::from(bits)).div_ceil(8)),
            )
        }
        MYSQL_TYPE_VARCHAR => {
            let max = u16::from_le_bytes(m);
            (raw, Layout::Prefixed(if max < 256 { 1 } else { 2 }))
        }
        MYSQL_TYPE_STRING | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => {
            string_like(raw, m).ok_or_else(|| bad("an unknown real type"))?
        }
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_VECTOR => {
            if !(1..=4).contains(&m[0]) {
                return Err(bad("a length of other than 1 to 4 bytes"));
            }
            (raw, Layout::Prefixed(m[0]))
        }
        // The JSON length is always 4 bytes (mysql_common ignores the metadata too).
        MYSQL_TYPE_JSON => (raw, Layout::Prefixed(4)),
        _ => (raw, Layout::Unsupported),
    };
    Ok(BinlogColumn {
        ty,
        meta: m,
        meta_len: meta_len as u8,
        layout,
        nullable: false,
        unsigned: false,
        collation: None,
        name: None,
        members: None,
    })
}

/// CHAR, and ENUM / SET coded as CHAR: the first metadata byte carries the real type, and for
/// CHAR wider than 255 bytes also the high bits of the length.
fn string_like(raw: ColumnType, m: [u8; 2]) -> Option<(ColumnType, Layout)> {
    use ColumnType::*;
    let real = match (raw, m[0]) {
        (MYSQL_TYPE_STRING, 0) => MYSQL_TYPE_STRING,
        (MYSQL_TYPE_STRING, f) => ColumnType::try_from(f | 0x30).ok()?,
        (other, _) => other,
    };
    match real {
        MYSQL_TYPE_ENUM if matches!(m[1], 1 | 2) => Some((real, Layout::Fixed(usize::from(m[1])))),
        MYSQL_TYPE_SET if (1..=MAX_SET_BYTES).contains(&m[1]) => {
            Some((real, Layout::Fixed(usize::from(m[1]))))
        }
        MYSQL_TYPE_STRING => {
            let length = if m[0] == 0 {
                usize::from(u16::from_le_bytes(m))
            } else if m[0] & 0x30 != 0x30 {
                usize::from(m[1]) | ((usize::from(m[0] & 0x30) ^ 0x30) << 4)
            } else {
                usize::from(m[1])
            };
            Some((real, Layout::Prefixed(if length < 256 { 1 } else { 2 })))
        }
        _ => None,
    }
}

/// Bytes of MySQL's binary DECIMAL(precision, scale): 4 bytes per 9 digits on each side of
/// the point, fewer for the leftover digits.
pub(crate) fn decimal_bytes(precision: u8, scale: u8) -> usize {
    const DIG_TO_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let int = usize::from(precision - scale);
    let frac = usize::from(scale);
    (int / 9) * 4 + DIG_TO_BYTES[int % 9] + (frac / 9) * 4 + DIG_TO_BYTES[frac % 9]
}

fn is_numeric(ty: ColumnType) -> bool {
    // The columns the SIGNEDNESS bitmap has a bit for, as mysql_common counts them.
    ty.is_numeric_type()
}

fn is_character(ty: ColumnType) -> bool {
    ty.is_character_type()
}

/// Applies the optional metadata fields the decoder uses; unknown fields are skipped by their
/// length. A field whose content does not fit its length is refused.
fn apply_optional(columns: &mut [BinlogColumn], optional: &[u8]) -> Result<(), Malformed> {
    let mut r = Reader::new(optional);
    while !r.is_empty() {
        let kind = r.u8("field type")?;
        let value = r.lenenc_bytes("field")?;
        let mut v = Reader::new(value);
        match kind {
            META_SIGNEDNESS => {
                // One bit per numeric column, most significant bit first.
                for (n, col) in columns.iter_mut().filter(|c| is_numeric(c.ty)).enumerate() {
                    let byte = value.get(n / 8).copied().unwrap_or(0);
                    col.unsigned = byte & (0x80 >> (n % 8)) != 0;
                }
            }
            META_DEFAULT_CHARSET => {
                let default = u16::try_from(v.lenenc("default charset")?).unwrap_or(0);
                let mut exceptions = Vec::new();
                while !v.is_empty() {
                    let index = v.lenenc("column index")?;
                    let collation = v.lenenc("collation")?;
                    exceptions.push((index, u16::try_from(collation).unwrap_or(0)));
                }
                for (n, col) in columns
                    .iter_mut()
                    .filter(|c| is_character(c.ty))
                    .enumerate()
                {
                    let own = exceptions.iter().find(|(i, _)| *i == n as u64);
                    col.collation = Some(own.map_or(default, |(_, c)| *c));
                }
            }
            META_COLUMN_CHARSET => {
                for col in columns.iter_mut().filter(|c| is_character(c.ty)) {
                    if v.is_empty() {
                        break;
                    }
                    col.collation = Some(u16::try_from(v.lenenc("collation")?).unwrap_or(0));
                }
            }
            META_COLUMN_NAME => {
                for col in columns.iter_mut() {
                    if v.is_empty() {
                        break;
                    }
                    let name = v.lenenc_bytes("column name")?;
                    col.name = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
            META_SET_STR_VALUE | META_ENUM_STR_VALUE => {
                let wanted = if kind == META_SET_STR_VALUE {
                    ColumnType::MYSQL_TYPE_SET
                } else {
                    ColumnType::MYSQL_TYPE_ENUM
                };
                for col in columns.iter_mut().filter(|c| c.ty == wanted) {
                    if v.is_empty() {
                        break;
                    }
                    let count = v.lenenc("member count")?;
                    // Each member takes at least one byte: a larger count is refused before
                    // anything is allocated for it.
                    let count = usize::try_from(count)
                        .ok()
                        .filter(|&n| n <= v.len())
                        .ok_or_else(|| Malformed("member count exceeds the field".into()))?;
                    let mut members = Vec::with_capacity(count);
                    for _ in 0..count {
                        let member = v.lenenc_bytes("member")?;
                        members.push(String::from_utf8_lossy(member).into_owned());
                    }
                    col.members = Some(members);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TABLE_MAP body for `db.t` with the given (type, metadata) columns, all nullable.
    pub(crate) fn body(columns: &[(u8, &[u8])], optional: &[u8]) -> Vec<u8> {
        let mut b = vec![42, 0, 0, 0, 0, 0, 0, 0, 2, b'd', b'b', 0, 1, b't', 0];
        b.push(columns.len() as u8);
        b.extend(columns.iter().map(|(t, _)| *t));
        let meta: Vec<u8> = columns
            .iter()
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        b.push(meta.len() as u8);
        b.extend(meta);
        b.extend(std::iter::repeat_n(0xff, columns.len().div_ceil(8)));
        b.extend_from_slice(optional);
        b
    }

    #[test]
    fn layouts_follow_the_metadata() {
        let map = parse(
            &body(
                &[
                    (3, &[]),           // INT
                    (15, &[0x2c, 1]),   // VARCHAR(300)
                    (254, &[0xf7, 1]),  // ENUM
                    (254, &[0xfe, 20]), // CHAR(20)
                    (246, &[10, 2]),    // DECIMAL(10,2)
                    (18, &[3]),         // DATETIME(3)
                    (252, &[2]),        // BLOB
                ],
                &[],
            ),
            8,
        )
        .unwrap();
        let layouts: Vec<Layout> = map.columns.iter().map(|c| c.layout).collect();
        assert_eq!(
            layouts,
            [
                Layout::Fixed(4),
                Layout::Prefixed(2),
                Layout::Fixed(1),
                Layout::Prefixed(1),
                Layout::Fixed(5),
                Layout::Fixed(7),
                Layout::Prefixed(2),
            ]
        );
        assert_eq!(map.columns[2].ty, ColumnType::MYSQL_TYPE_ENUM);
        assert_eq!(
            (map.db.as_str(), map.table.as_str(), map.table_id),
            ("db", "t", 42)
        );
    }

    #[test]
    fn metadata_that_does_not_add_up_is_refused() {
        // DECIMAL with scale > precision, BLOB with a 5-byte length, leftover metadata,
        // metadata cut short, and a column count beyond the event.
        for bad in [
            body(&[(246, &[2, 10])], &[]),
            body(&[(252, &[5])], &[]),
            body(&[(3, &[7])], &[]),
            body(&[(15, &[1])], &[]),
            body(&[(18, &[7])], &[]),
            body(&[(16, &[0, 9])], &[]),
        ] {
            assert!(parse(&bad, 8).is_err(), "{bad:?}");
        }
        let mut huge = body(&[(3, &[])], &[]);
        huge[15] = 0xfc; // column count 0x03fc...
        assert!(parse(&huge, 8).is_err());
    }

    #[test]
    fn optional_metadata_names_signs_and_members() {
        let mut optional = vec![META_SIGNEDNESS, 1, 0b0100_0000];
        optional.extend([META_COLUMN_NAME, 6, 1, b'a', 1, b'b', 1, b'c']);
        optional.extend([META_ENUM_STR_VALUE, 5, 2, 1, b'x', 1, b'y']);
        optional.extend([99, 2, 0, 0]); // an unknown field, skipped
        let map = parse(
            &body(&[(1, &[]), (3, &[]), (254, &[0xf7, 1])], &optional),
            8,
        )
        .unwrap();
        assert!(!map.columns[0].unsigned && map.columns[1].unsigned);
        assert_eq!(map.columns[2].name.as_deref(), Some("c"));
        assert_eq!(map.columns[2].members, Some(vec!["x".into(), "y".into()]));
        let lying = [META_ENUM_STR_VALUE, 2, 0xfc, 0xff];
        assert!(parse(&body(&[(254, &[0xf7, 1])], &lying), 8).is_err());
    }
}
