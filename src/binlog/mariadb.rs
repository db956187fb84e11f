//! MariaDB's own binlog events (pure): GTID, GTID_LIST, BINLOG_CHECKPOINT, ANNOTATE_ROWS, and
//! the compressed query and rows events that `log_bin_compress=ON` writes.
//!
//! A compressed event is the plain event with its variable part (the query text; the rows
//! after the column bitmaps) replaced by a compressed record: one header byte `0x80 | n`
//! (`n` = 1–4, bits 4–6 the algorithm, 0 = zlib), the uncompressed length in `n` big-endian
//! bytes, then a zlib stream (MariaDB `binlog_buf_uncompress`, `row_log_event_uncompress`).
//! [`inflate`] rebuilds the plain event — same header fields, the uncompressed type, a fresh
//! CRC32 — so the rest of the decoder never sees the difference.
//!
//! Invariant: inflating allocates only what the zlib stream actually produces, at most the
//! declared length, and the declared length is refused beyond what zlib can expand the
//! record's bytes to or beyond [`MAX_INFLATED`].

use std::io::Read;

use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{BinlogEventHeader, Event};

use super::wire::{be, Malformed, Reader};
use crate::source::gtid::Gtid;

pub(crate) const ANNOTATE_ROWS: u8 = 0xa0;
pub(crate) const BINLOG_CHECKPOINT: u8 = 0xa1;
pub(crate) const GTID: u8 = 0xa2;
pub(crate) const GTID_LIST: u8 = 0xa3;
pub(crate) const START_ENCRYPTION: u8 = 0xa4;
pub(crate) const QUERY_COMPRESSED: u8 = 0xa5;
const WRITE_ROWS_COMPRESSED_V1: u8 = 0xa6;
const WRITE_ROWS_COMPRESSED: u8 = 0xa9;
pub(crate) const DELETE_ROWS_COMPRESSED: u8 = 0xab;

/// GTID flag: the event group has no COMMIT or XID (DDL and other non-transactional statements).
pub(crate) const FL_STANDALONE: u8 = 1;

/// MariaDB's `max_allowed_packet` ceiling: no event, compressed or not, is larger.
pub(crate) const MAX_INFLATED: usize = 1 << 30;
/// Deflate's best case is about 1032 bytes out per byte in; a record declaring more is lying.
const MAX_ZLIB_RATIO: usize = 1032;
/// Rows event post-header before the (v2) variable header: table id and flags.
const ROWS_HEADER_LEN_V1: usize = 8;
const ROWS_HEADER_LEN_V2: u8 = 10;
const CHECKSUM_LEN: usize = 4;

/// A GTID event: the start of an event group. The server id is the event header's.
pub(crate) fn gtid(body: &[u8], server: u32) -> Result<(Gtid, u8), Malformed> {
    let mut r = Reader::new(body);
    let seq = r.u64_le("GTID sequence number")?;
    let domain = r.u32_le("GTID domain")?;
    let flags = r.u8("GTID flags")?;
    Ok((
        Gtid {
            domain,
            server,
            seq,
        },
        flags,
    ))
}

/// A GTID_LIST event: the binlog state at the start of a file (one GTID per domain and server).
pub(crate) fn gtid_list(body: &[u8]) -> Result<Vec<Gtid>, Malformed> {
    let mut r = Reader::new(body);
    // The top 4 bits are flags.
    let count = (r.u32_le("GTID count")? & 0x0fff_ffff) as usize;
    if count > r.len() / 16 {
        return Err(Malformed(format!(
            "GTID_LIST of {count} entries exceeds the event"
        )));
    }
    (0..count)
        .map(|_| {
            Ok(Gtid {
                domain: r.u32_le("GTID domain")?,
                server: r.u32_le("GTID server id")?,
                seq: r.u64_le("GTID sequence number")?,
            })
        })
        .collect()
}

/// A BINLOG_CHECKPOINT event: the oldest binlog file still needed for crash recovery.
pub(crate) fn binlog_checkpoint(body: &[u8]) -> Result<String, Malformed> {
    let mut r = Reader::new(body);
    let len = r.u32_le("file name length")? as usize;
    let name = r.take(len, "file name")?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// Whether `event_type` is one of MariaDB's compressed events.
pub(crate) fn is_compressed(event_type: u8) -> bool {
    (QUERY_COMPRESSED..=DELETE_ROWS_COMPRESSED).contains(&event_type)
}

/// The plain event a compressed MariaDB event stands for.
pub(crate) fn inflate(event: &Event) -> Result<Event, Malformed> {
    let header = event.header();
    let ty = header.event_type_raw();
    let body = event.data();
    let fde = event.fde();
    let post_header_len = |ty: u8, plain: EventType| {
        fde.event_type_header_lengths()
            .get(usize::from(ty) - 1)
            .copied()
            .unwrap_or_else(|| fde.get_event_type_header_length(plain))
    };
    let (plain, head_len) = match ty {
        QUERY_COMPRESSED => {
            let post = usize::from(post_header_len(ty, EventType::QUERY_EVENT));
            let mut r = Reader::new(body);
            let fixed = r.take(post, "query post-header")?;
            // thread id (4), execution time (4), schema length (1), error code (2), status
            // variables length (2).
            let (Some(&db_len), Some(vars)) = (fixed.get(8), fixed.get(11..13)) else {
                return Err(Malformed("query post-header too short".into()));
            };
            let vars = usize::from(u16::from_le_bytes([vars[0], vars[1]]));
            (
                EventType::QUERY_EVENT as u8,
                post + vars + usize::from(db_len) + 1,
            )
        }
        WRITE_ROWS_COMPRESSED_V1..=DELETE_ROWS_COMPRESSED => {
            let v2 = post_header_len(ty, EventType::WRITE_ROWS_EVENT) == ROWS_HEADER_LEN_V2;
            let plain = if ty >= WRITE_ROWS_COMPRESSED {
                EventType::WRITE_ROWS_EVENT as u8 + (ty - WRITE_ROWS_COMPRESSED)
            } else {
                EventType::WRITE_ROWS_EVENT_V1 as u8 + (ty - WRITE_ROWS_COMPRESSED_V1)
            };
            let update = matches!(ty, 0xa7 | 0xaa);
            let mut r = Reader::new(body);
            r.take(ROWS_HEADER_LEN_V1, "rows post-header")?;
            if v2 {
                // The variable header's length counts its own two bytes.
                let var_len = usize::from(r.u16_le("rows variable header")?);
                r.take(var_len.saturating_sub(2), "rows variable header")?;
            }
            let width = r.lenenc("column count")?;
            let bitmap =
                usize::try_from(width.div_ceil(8)).map_err(|_| Malformed("column count".into()))?;
            r.take(bitmap, "columns bitmap")?;
            if update {
                r.take(bitmap, "columns bitmap")?;
            }
            (plain, body.len() - r.len())
        }
        other => return Err(Malformed(format!("event type {other} is not compressed"))),
    };
    let (head, record) = body
        .split_at_checked(head_len)
        .ok_or_else(|| Malformed("compressed event shorter than its header".into()))?;
    let payload = uncompress(record)?;

    let had_checksum = (header.event_size() as usize)
        .checked_sub(BinlogEventHeader::LEN + body.len())
        == Some(CHECKSUM_LEN);
    let size = BinlogEventHeader::LEN
        + head.len()
        + payload.len()
        + if had_checksum { CHECKSUM_LEN } else { 0 };
    let size32 = u32::try_from(size)
        .ok()
        .filter(|&s| s as usize <= MAX_INFLATED)
        .ok_or_else(|| Malformed(format!("uncompressed event of {size} bytes")))?;
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&header.timestamp().to_le_bytes());
    bytes.push(plain);
    bytes.extend_from_slice(&header.server_id().to_le_bytes());
    bytes.extend_from_slice(&size32.to_le_bytes());
    bytes.extend_from_slice(&header.log_pos().to_le_bytes());
    bytes.extend_from_slice(&header.flags_raw().to_le_bytes());
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(&payload);
    if had_checksum {
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
    }
    // The bytes are well-formed by construction: their size field is their length and the
    // checksum is there when the format description says so.
    Event::read(fde, &bytes[..]).map_err(|e| Malformed(format!("rebuilt event: {e}")))
}

/// One compressed record → its bytes.
fn uncompress(record: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut r = Reader::new(record);
    let first = r.u8("compressed record header")?;
    if first & 0x80 == 0 {
        return Err(Malformed(
            "compressed record without its header byte".into(),
        ));
    }
    let algorithm = (first & 0x70) >> 4;
    if algorithm != 0 {
        return Err(Malformed(format!(
            "compression algorithm {algorithm} (only zlib, 0, exists)"
        )));
    }
    let len_bytes = usize::from(first & 0x07);
    if !(1..=4).contains(&len_bytes) {
        return Err(Malformed(format!(
            "compressed record length of {len_bytes} bytes"
        )));
    }
    let declared = be(r.take(len_bytes, "uncompressed length")?) as usize;
    let stream = r.rest();
    if declared == 0
        || declared > MAX_INFLATED
        || declared > stream.len().saturating_mul(MAX_ZLIB_RATIO)
    {
        return Err(Malformed(format!(
            "compressed record of {} bytes declares {declared} bytes uncompressed",
            stream.len()
        )));
    }
    // The allocation follows the data actually produced, never the declared length alone.
    const FIRST_ALLOCATION: usize = 64 * 1024;
    let mut out = Vec::with_capacity(declared.min(FIRST_ALLOCATION));
    flate2::read::ZlibDecoder::new(stream)
        .take(declared as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Malformed(format!("zlib: {e}")))?;
    if out.len() != declared {
        return Err(Malformed(format!(
            "compressed record declares {declared} bytes and holds {}",
            out.len()
        )));
    }
    Ok(out)
}

/// The compressed record of `data` as MariaDB writes it (tests build compressed events).
#[cfg(test)]
pub(crate) fn compress_record(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let len = data.len() as u32;
    let len_bytes = match len {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => 4,
    };
    let mut out = vec![0x80 | len_bytes as u8];
    out.extend_from_slice(&len.to_be_bytes()[4 - len_bytes..]);
    let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
    let _ = z.write_all(data);
    z.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_lies_are_refused() {
        let data = b"INSERT INTO t VALUES (1), (2), (3), (4), (5), (6), (7), (8)".repeat(20);
        let record = compress_record(&data);
        assert_eq!(uncompress(&record).unwrap(), data);
        // Declared length larger than zlib can expand these bytes to.
        let mut lying = record.clone();
        lying[0] = 0x84;
        lying.splice(1..3, [0x3f, 0xff, 0xff, 0xff]);
        assert!(uncompress(&lying).is_err());
        // Declared length that does not match the stream.
        let mut short = record.clone();
        short[2] = short[2].wrapping_sub(1);
        assert!(uncompress(&short).is_err());
        for bad in [&[][..], &[0x00, 1, 0], &[0x85, 1], &[0x91, 1, 0]] {
            assert!(uncompress(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_and_checkpoints_are_bounded() {
        let mut list = 2u32.to_le_bytes().to_vec();
        list.extend_from_slice(&[0; 16]);
        assert!(gtid_list(&list).is_err());
        list.extend_from_slice(&[0; 16]);
        assert_eq!(gtid_list(&list).unwrap().len(), 2);
        assert!(binlog_checkpoint(&[9, 0, 0, 0, b'a']).is_err());
        assert_eq!(binlog_checkpoint(&[1, 0, 0, 0, b'a']).unwrap(), "a");
    }
}
