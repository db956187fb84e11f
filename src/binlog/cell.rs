//! One cell of a row image → a `mysql_common` [`Value`] (pure): the path every type can take,
//! used by the row decoder for the types it does not write to RowBinary itself.
//!
//! The `Value` is the one mysql_common's own row parser would produce, so `decode::encode`
//! sees exactly what it saw before the fast path existed. Two things are done here instead of
//! in mysql_common, because its versions can panic or overflow on bytes from a server:
//! TIME2 / DATETIME2 / TIMESTAMP2 (unchecked arithmetic; negative TIME(1..2) with a fraction
//! comes out wrong, see [`time2`]), and binary JSON, whose structure is walked first
//! ([`check_jsonb`]) so that nesting depth and total work stay bounded by the cell's size.
//!
//! Invariant: the caller hands over exactly one cell as [`Layout::cell`] cut it, for a column
//! of a validated [`TableMap`], so the metadata mysql_common indexes is there; a cell the parser
//! does not consume entirely is refused.
//!
//! [`Layout::cell`]: super::tablemap::Layout::cell
//! [`TableMap`]: super::tablemap::TableMap

use mysql_common::binlog::jsonb;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::value::Value;

use super::tablemap::BinlogColumn;
use super::wire::{be, Malformed};

/// MySQL refuses JSON documents nested deeper than 100; a little slack, and the recursion of
/// the JSON conversion stays far from the end of a task's stack.
const MAX_JSON_DEPTH: usize = 128;

/// The `Value` of one non-NULL cell (`cell` includes its length prefix, if any).
pub(crate) fn value(col: &BinlogColumn, cell: &[u8]) -> Result<Value, Malformed> {
    use ColumnType::*;
    let fsp = col.meta().first().copied().unwrap_or(0);
    match col.ty {
        MYSQL_TYPE_TIME2 => Ok(time2(cell, fsp)),
        MYSQL_TYPE_DATETIME2 => Ok(datetime2(cell, fsp)),
        MYSQL_TYPE_TIMESTAMP2 => Ok(timestamp2(cell, fsp)),
        MYSQL_TYPE_JSON => json_text(cell.get(4..).unwrap_or_default()).map(Value::Bytes),
        ty => {
            let mut buf = ParseBuf(cell);
            let parsed = buf
                .parse::<BinlogValue<'_>>((ty, col.meta(), col.unsigned, false))
                .map_err(|e| Malformed(format!("{ty:?} cell: {e}")))?;
            if !buf.is_empty() {
                return Err(Malformed(format!("{ty:?} cell longer than its value")));
            }
            match parsed {
                BinlogValue::Value(v) => Ok(v),
                // Only JSON columns produce these, and they are handled above.
                BinlogValue::Jsonb(_) | BinlogValue::JsonDiff(_) => {
                    Err(Malformed(format!("{ty:?} cell decoded as JSON")))
                }
            }
        }
    }
}

/// MySQL binary JSON → its JSON text, as mysql_common's JSON DOM prints it (object keys
/// sorted; opaque DECIMAL / DATE / TIME values as strings).
pub(crate) fn json_text(doc: &[u8]) -> Result<Vec<u8>, Malformed> {
    check_jsonb(doc).map_err(|e| Malformed(format!("binary JSON: {e}")))?;
    let value: jsonb::Value<'_> = ParseBuf(doc)
        .parse(())
        .map_err(|e| Malformed(format!("binary JSON: {e}")))?;
    let dom = value
        .parse()
        .map_err(|e| Malformed(format!("binary JSON: {e}")))?;
    Ok(serde_json::Value::from(dom).to_string().into_bytes())
}

/// TIME2: 3 bytes of `hours:minutes:seconds` (sign by offset), then 0–3 bytes of fraction.
///
/// Negative values with 1–2 fractional digits store the fraction as a negative byte; MySQL
/// reads it signed. mysql_common 0.37 reads it unsigned (wrong value, or an overflow panic in
/// debug builds); this follows MySQL.
fn time2(cell: &[u8], fsp: u8) -> Value {
    let int = be(cell.get(..3).unwrap_or_default()) as i64 - 0x80_0000;
    let frac_bytes = cell.get(3..).unwrap_or_default();
    let packed = match fsp {
        1 | 2 => {
            let (mut int, mut frac) = (int, i64::from(frac_bytes.first().copied().unwrap_or(0)));
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x100;
            }
            (int << 24) + frac * 10_000
        }
        3 | 4 => {
            let (mut int, mut frac) = (int, be(frac_bytes) as i64);
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x1_0000;
            }
            (int << 24) + frac * 100
        }
        5 | 6 => be(cell) as i64 - 0x8000_0000_0000,
        _ => int << 24,
    };
    let negative = packed < 0;
    let tmp = packed.wrapping_abs();
    let hms = tmp >> 24;
    let hours = ((hms >> 12) as u32) % (1 << 10);
    Value::Time(
        negative,
        hours / 24,
        (hours % 24) as u8,
        (((hms >> 6) as u32) % (1 << 6)) as u8,
        ((hms as u32) % (1 << 6)) as u8,
        (tmp % (1 << 24)) as u32,
    )
}

/// Sign-extends a big-endian integer of `bytes.len()` (1–3) bytes.
fn signed_be(bytes: &[u8]) -> i64 {
    let bits = 8 * bytes.len() as u32;
    if bits == 0 {
        return 0;
    }
    let v = be(bytes) as i64;
    (v << (64 - bits)) >> (64 - bits)
}

/// DATETIME2: 5 bytes of packed `year*13+month, day, hour, minute, second`, then the fraction.
/// Wrapping arithmetic where mysql_common's overflows: identical results for every value a
/// server writes, no panic for the rest.
fn datetime2(cell: &[u8], fsp: u8) -> Value {
    let int = be(cell.get(..5).unwrap_or_default()) as i64 - 0x80_0000_0000;
    let frac = match fsp {
        1 | 2 => signed_be(cell.get(5..6).unwrap_or_default()) * 10_000,
        3 | 4 => signed_be(cell.get(5..7).unwrap_or_default()) * 100,
        5 | 6 => signed_be(cell.get(5..8).unwrap_or_default()),
        _ => 0,
    };
    let mut tmp = ((int as u64) << 24) as i64;
    tmp = tmp.wrapping_add(frac);
    if tmp < 0 {
        tmp = tmp.wrapping_neg();
    }
    let usec = tmp % (1 << 24);
    let ymdhms = tmp >> 24;
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms % (1 << 17);
    Value::Date(
        (ym / 13) as u32 as u16,
        (ym % 13) as u8,
        (ymd % (1 << 5)) as u8,
        ((hms >> 12) as u32) as u8,
        ((hms >> 6) % (1 << 6)) as u8,
        (hms % (1 << 6)) as u8,
        usec as u32,
    )
}

/// TIMESTAMP2: big-endian seconds since the epoch, then the fraction; as mysql_common prints
/// it (`seconds[.micros]`), which `decode::encode` parses.
fn timestamp2(cell: &[u8], fsp: u8) -> Value {
    let secs = be(cell.get(..4).unwrap_or_default()) as u32 as i32;
    let usec = match fsp {
        1 | 2 => signed_be(cell.get(4..5).unwrap_or_default()) * 10_000,
        3 | 4 => signed_be(cell.get(4..6).unwrap_or_default()) * 100,
        5 | 6 => signed_be(cell.get(4..7).unwrap_or_default()),
        _ => 0,
    };
    Value::Bytes(if usec == 0 {
        secs.to_string().into_bytes()
    } else {
        format!("{secs}.{usec:06}").into_bytes()
    })
}

/// Walks a binary JSON document's containers before mysql_common converts it: depth at most
/// [`MAX_JSON_DEPTH`], every offset inside its container, and at most one entry visited per
/// byte of the document — entries sharing a child (which no server writes) would otherwise
/// make the conversion's work exponential.
fn check_jsonb(doc: &[u8]) -> Result<(), &'static str> {
    let Some((&ty, rest)) = doc.split_first() else {
        return Ok(()); // empty: JSON null
    };
    let mut budget = doc.len();
    check_value(ty, rest, 0, &mut budget)
}

const JSONB_SMALL_OBJECT: u8 = 0;
const JSONB_LARGE_OBJECT: u8 = 1;
const JSONB_SMALL_ARRAY: u8 = 2;
const JSONB_LARGE_ARRAY: u8 = 3;
const JSONB_LITERAL: u8 = 4;
const JSONB_INT16: u8 = 5;
const JSONB_UINT16: u8 = 6;
const JSONB_INT32: u8 = 7;
const JSONB_UINT32: u8 = 8;

fn check_value(ty: u8, data: &[u8], depth: usize, budget: &mut usize) -> Result<(), &'static str> {
    let (large, object) = match ty {
        JSONB_SMALL_OBJECT => (false, true),
        JSONB_LARGE_OBJECT => (true, true),
        JSONB_SMALL_ARRAY => (false, false),
        JSONB_LARGE_ARRAY => (true, false),
        _ => return Ok(()), // scalars: mysql_common checks their lengths
    };
    if depth >= MAX_JSON_DEPTH {
        return Err("nested deeper than MySQL allows");
    }
    let word = if large { 4 } else { 2 };
    let read = |at: usize| -> Result<usize, &'static str> {
        data.get(at..at + word)
            .map(|b| crate::binlog::wire::le(b) as usize)
            .ok_or("container header beyond the document")
    };
    let count = read(0)?;
    let size = read(word)?;
    let data = data
        .get(..size)
        .ok_or("container larger than the document")?;
    *budget = budget
        .checked_sub(count)
        .ok_or("more entries than the document has bytes")?;
    let key_entries = if object { count * (word + 2) } else { 0 };
    let value_entry = 1 + word;
    let header = 2 * word + key_entries + count * value_entry;
    if header > size {
        return Err("container header larger than the container");
    }
    for i in 0..count {
        let entry = 2 * word + key_entries + i * value_entry;
        let child_ty = data[entry];
        let inlined = matches!(child_ty, JSONB_LITERAL | JSONB_INT16 | JSONB_UINT16)
            || (large && matches!(child_ty, JSONB_INT32 | JSONB_UINT32));
        if inlined {
            continue;
        }
        let offset = read(entry + 1)?;
        if offset < entry + value_entry || offset >= size {
            return Err("value offset outside its container");
        }
        check_value(child_ty, &data[offset..], depth + 1, budget)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_time_with_one_fractional_digit_is_read_as_mysql_writes_it() {
        // '-00:00:01.5' as TIME(1): integer part -2 (floor), fraction byte (char)-50.
        let int = (0x80_0000i64 - 2) as u32;
        let cell = [
            (int >> 16) as u8,
            (int >> 8) as u8,
            int as u8,
            (-50i8) as u8,
        ];
        assert_eq!(time2(&cell, 1), Value::Time(true, 0, 0, 0, 1, 500_000));
        // '-838:59:59' as TIME(0).
        let packed = (838i64 << 12) | (59 << 6) | 59;
        let int = (0x80_0000 - packed) as u32;
        let cell = [(int >> 16) as u8, (int >> 8) as u8, int as u8];
        assert_eq!(time2(&cell, 0), Value::Time(true, 34, 22, 59, 59, 0));
    }

    #[test]
    fn datetime2_extremes_do_not_overflow() {
        // All zero bytes: the most negative integer part, which no server writes.
        let _ = datetime2(&[0; 8], 6);
        let _ = datetime2(&[0xff; 8], 6);
        let _ = time2(&[0; 6], 6);
        let _ = time2(&[0xff; 6], 6);
        let _ = timestamp2(&[0xff; 7], 6);
    }

    #[test]
    fn json_nesting_and_shared_children_are_bounded() {
        // [[[[...]]]] nested 200 deep: each level a small array of one element.
        let mut doc = vec![JSONB_SMALL_ARRAY];
        let levels = 200;
        let mut body: Vec<u8> = vec![0, 0, 4, 0]; // innermost: empty array
        for _ in 0..levels {
            let mut outer = vec![1, 0];
            let size = 4 + 3 + body.len();
            outer.extend_from_slice(&(size as u16).to_le_bytes());
            outer.push(JSONB_SMALL_ARRAY);
            outer.extend_from_slice(&7u16.to_le_bytes());
            outer.extend_from_slice(&body);
            body = outer;
        }
        doc.extend_from_slice(&body);
        assert!(json_text(&doc).is_err());
        // Two entries pointing at the same child, 20 levels deep: 2^20 visits without the
        // budget. The walk refuses it.
        let mut body: Vec<u8> = vec![0, 0, 4, 0];
        for _ in 0..20 {
            let mut outer = vec![2, 0];
            let size = 4 + 6 + body.len();
            outer.extend_from_slice(&(size as u16).to_le_bytes());
            for _ in 0..2 {
                outer.push(JSONB_SMALL_ARRAY);
                outer.extend_from_slice(&10u16.to_le_bytes());
            }
            outer.extend_from_slice(&body);
            body = outer;
        }
        let mut doc = vec![JSONB_SMALL_ARRAY];
        doc.extend_from_slice(&body);
        assert!(check_jsonb(&doc).is_err());
        // A plain document passes and prints as JSON.
        let ok = [JSONB_SMALL_ARRAY, 1, 0, 7, 0, JSONB_INT16, 42, 0];
        assert_eq!(json_text(&ok).unwrap(), b"[42]");
    }
}
