//! Raw binlog bytes → [`Event`]s, validated before `mysql_common` parses them (pure).
//!
//! `mysql_common`'s `Event::read` unwraps a short read, allocates the declared event size
//! before reading it, and slices the checksum off without checking the event is long enough.
//! [`EventReader`] checks all of that first — header present, declared size within
//! `[header (+ checksum), bytes available]`, a FORMAT_DESCRIPTION long enough for its fixed
//! part and checksum footer — and verifies CRC32 checksums; only then does mysql_common see the
//! bytes, and it can no longer panic or over-allocate on them. TRANSACTION_PAYLOAD events
//! (MySQL 8 `binlog_transaction_compression`) are unpacked like the replication client does:
//! the payload event, then the events inside it, read without checksums. PREVIOUS_GTIDS
//! counts are checked against their bytes, since mysql_common reserves memory for them.
//!
//! This is how binlog files and captured streams are read (tests, fixtures). The live stream's
//! framing is done inside mysql_async; there the reader task ([`super::feed`]) turns a panic
//! into a typed error instead.

use std::collections::VecDeque;
use std::io::Read;

use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion, EventType};
use mysql_common::binlog::events::{BinlogEventHeader, Event, FormatDescriptionEvent};

use mysql_common::io::ParseBuf;
use mysql_common::misc::read_varlen_uint;

use super::wire::{le, Malformed, Reader};

/// A binlog file starts with these four bytes.
pub(crate) const MAGIC: &[u8] = b"\xfebin";
const CHECKSUM_LEN: usize = 4;
/// No server writes an event larger than `max_allowed_packet`, at most 1 GiB.
pub(crate) const MAX_EVENT_SIZE: usize = 1 << 30;
/// FORMAT_DESCRIPTION's fixed part: binlog version (2), server version (50), creation time
/// (4), common header length (1).
const FDE_FIXED_LEN: usize = 57;
const FORMAT_DESCRIPTION: u8 = EventType::FORMAT_DESCRIPTION_EVENT as u8;
const TRANSACTION_PAYLOAD: u8 = EventType::TRANSACTION_PAYLOAD_EVENT as u8;
const PREVIOUS_GTIDS: u8 = EventType::PREVIOUS_GTIDS_EVENT as u8;

/// Reads events one after the other, keeping the format description they depend on.
#[derive(Debug, Clone)]
pub(crate) struct EventReader {
    fde: FormatDescriptionEvent<'static>,
}

impl Default for EventReader {
    fn default() -> Self {
        EventReader {
            fde: FormatDescriptionEvent::new(BinlogVersion::Version4),
        }
    }
}

impl EventReader {
    /// One event from the start of `input`, and the bytes it took.
    pub fn read(&mut self, input: &[u8]) -> Result<(Event, usize), Malformed> {
        let (event, size) = read_one(&self.fde, input, true)?;
        if event.header().event_type_raw() == FORMAT_DESCRIPTION {
            let fde = event
                .read_event::<FormatDescriptionEvent<'_>>()
                .map_err(|e| Malformed(format!("format description: {e}")))?;
            if usize::from(fde.event_header_length()) != BinlogEventHeader::LEN {
                return Err(Malformed(format!(
                    "format description with {}-byte event headers (only binlog v4's 19 are read)",
                    fde.event_header_length()
                )));
            }
            self.fde = fde.into_owned().with_footer(event.footer());
        }
        Ok((event, size))
    }

    /// The events inside a TRANSACTION_PAYLOAD event, in order.
    pub fn unpack(&self, event: &Event) -> Result<Vec<Event>, Malformed> {
        let payload = Payload::parse(event.data())
            .map_err(|e| Malformed(format!("transaction payload: {e}")))?;
        let data = match payload.algorithm {
            PAYLOAD_NONE => payload.data.to_vec(),
            PAYLOAD_ZSTD => zstd_bounded(payload.data, payload.uncompressed_size)?,
            other => {
                return Err(Malformed(format!(
                    "transaction payload compressed with algorithm {other}"
                )))
            }
        };
        // Events inside a payload carry no checksum (WL#3549).
        let mut footer = self.fde.footer();
        footer.set_checksum_enabled(false);
        let inner_fde = self.fde.clone().with_footer(footer);
        let mut rest = &data[..];
        let mut events = Vec::new();
        while !rest.is_empty() {
            let (inner, size) = read_one(&inner_fde, rest, false)?;
            match inner.header().event_type_raw() {
                TRANSACTION_PAYLOAD | FORMAT_DESCRIPTION => {
                    return Err(Malformed(
                        "a transaction payload inside a transaction payload".into(),
                    ))
                }
                _ => events.push(inner),
            }
            rest = &rest[size..];
        }
        Ok(events)
    }
}

const PAYLOAD_ZSTD: u64 = 0;
const PAYLOAD_NONE: u64 = 255;

/// A TRANSACTION_PAYLOAD event's header fields and payload. Parsed here: mysql_common's parser
/// slices unchecked lengths and unwraps the algorithm, so a malformed header panics in it.
struct Payload<'a> {
    algorithm: u64,
    uncompressed_size: u64,
    data: &'a [u8],
}

impl<'a> Payload<'a> {
    fn parse(body: &'a [u8]) -> Result<Payload<'a>, Malformed> {
        const END_MARK: u64 = 0;
        const PAYLOAD_SIZE: u64 = 1;
        const COMPRESSION_TYPE: u64 = 2;
        const UNCOMPRESSED_SIZE: u64 = 3;
        let mut r = Reader::new(body);
        let (mut size, mut algorithm, mut uncompressed_size) = (None, None, 0);
        loop {
            match r.lenenc("field type")? {
                END_MARK => break,
                field => {
                    let value = r.lenenc_bytes("field")?;
                    let mut v = Reader::new(value);
                    match field {
                        PAYLOAD_SIZE => size = Some(v.lenenc("payload size")?),
                        COMPRESSION_TYPE => algorithm = Some(v.lenenc("compression type")?),
                        UNCOMPRESSED_SIZE => uncompressed_size = v.lenenc("uncompressed size")?,
                        _ => {} // a field of a later server version
                    }
                }
            }
        }
        let (Some(size), Some(algorithm)) = (size, algorithm) else {
            return Err(Malformed("payload header without size or algorithm".into()));
        };
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let data = r.take(size, "payload")?;
        Ok(Payload {
            algorithm,
            uncompressed_size,
            data,
        })
    }
}

fn zstd_bounded(compressed: &[u8], declared: u64) -> Result<Vec<u8>, Malformed> {
    let declared = usize::try_from(declared)
        .ok()
        .filter(|&n| n <= MAX_EVENT_SIZE)
        .ok_or_else(|| Malformed(format!("transaction payload declares {declared} bytes")))?;
    const FIRST_ALLOCATION: usize = 64 * 1024;
    let mut out = Vec::with_capacity(declared.min(FIRST_ALLOCATION));
    zstd::stream::read::Decoder::new(compressed)
        .map_err(|e| Malformed(format!("zstd: {e}")))?
        .take(declared as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Malformed(format!("zstd: {e}")))?;
    if out.len() != declared {
        return Err(Malformed(format!(
            "transaction payload declares {declared} bytes and holds {}",
            out.len()
        )));
    }
    Ok(out)
}

/// Validates and parses one event; `checksums` verifies CRC32 where the format says so.
fn read_one(
    fde: &FormatDescriptionEvent<'static>,
    input: &[u8],
    checksums: bool,
) -> Result<(Event, usize), Malformed> {
    let header = input.get(..BinlogEventHeader::LEN).ok_or_else(|| {
        Malformed(format!(
            "{} bytes left, an event header needs 19",
            input.len()
        ))
    })?;
    let event_type = header[4];
    let size = le(&header[9..13]) as usize;
    let is_fde = event_type == FORMAT_DESCRIPTION;
    let trailer = if is_fde { 0 } else { checksum_len(fde) };
    if size < BinlogEventHeader::LEN + trailer {
        return Err(Malformed(format!(
            "event type {event_type} of {size} bytes, shorter than its header and checksum"
        )));
    }
    if size > MAX_EVENT_SIZE {
        return Err(Malformed(format!(
            "event type {event_type} of {size} bytes"
        )));
    }
    if size > input.len() {
        return Err(Malformed(format!(
            "event type {event_type} of {size} bytes, {} bytes left: truncated",
            input.len()
        )));
    }
    if is_fde && size < BinlogEventHeader::LEN + FDE_FIXED_LEN {
        return Err(Malformed(format!(
            "format description of {size} bytes, shorter than its fixed part"
        )));
    }
    let event = Event::read(fde, &input[..size])
        .map_err(|e| Malformed(format!("event type {event_type}: {e}")))?;
    if checksums {
        verify_checksum(&event)?;
    }
    if event_type == PREVIOUS_GTIDS {
        check_previous_gtids(event.data())
            .map_err(|e| Malformed(format!("PREVIOUS_GTIDS: {e}")))?;
    }
    Ok((event, size))
}

/// mysql_common's PREVIOUS_GTIDS parser reserves memory for the counts it reads before it
/// reads what they count: the counts are checked against the bytes first.
fn check_previous_gtids(body: &[u8]) -> Result<(), Malformed> {
    const SID_MIN_LEN: u64 = 16 + 8;
    const INTERVAL_LEN: u64 = 16;
    let mut r = Reader::new(body);
    let header = r.u64_le("header")?;
    let tagged = header >> 56 != 0;
    let sids = if tagged {
        (header >> 8) & ((1 << 48) - 1)
    } else {
        header & ((1 << 56) - 1)
    };
    if sids > r.len() as u64 / SID_MIN_LEN {
        return Err(Malformed(format!("{sids} source ids in {} bytes", r.len())));
    }
    for _ in 0..sids {
        r.take(16, "source id")?;
        if tagged {
            let mut buf = ParseBuf(r.rest());
            let len = read_varlen_uint(&mut buf).map_err(|e| Malformed(e.to_string()))?;
            r = Reader::new(buf.0);
            r.take(usize::try_from(len).unwrap_or(usize::MAX), "tag")?;
        }
        let intervals = r.u64_le("interval count")?;
        if intervals > r.len() as u64 / INTERVAL_LEN {
            return Err(Malformed(format!(
                "{intervals} intervals in {} bytes",
                r.len()
            )));
        }
        r.take((intervals * INTERVAL_LEN) as usize, "intervals")?;
    }
    Ok(())
}

/// Bytes of checksum at the end of events other than FORMAT_DESCRIPTION, as `Event::read`
/// decides it: present unless the algorithm is OFF (or unknown before a format description).
fn checksum_len(fde: &FormatDescriptionEvent<'_>) -> usize {
    let footer = fde.footer();
    let off = matches!(
        footer.get_checksum_alg(),
        Ok(None) | Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF))
    );
    if off || !footer.get_checksum_enabled() {
        0
    } else {
        CHECKSUM_LEN
    }
}

fn verify_checksum(event: &Event) -> Result<(), Malformed> {
    let footer = event.footer();
    if !footer.get_checksum_enabled()
        || footer.get_checksum_alg() != Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32))
    {
        return Ok(());
    }
    let Some(stored) = event.checksum() else {
        return Ok(());
    };
    let computed = event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
    if u32::from_le_bytes(stored) != computed {
        return Err(Malformed(format!(
            "event type {} ending at {}: CRC32 {:08x} stored, {computed:08x} computed",
            event.header().event_type_raw(),
            event.header().log_pos(),
            u32::from_le_bytes(stored)
        )));
    }
    Ok(())
}

/// Where in the input a framing error happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {detail}")]
pub(crate) struct FrameError {
    pub offset: usize,
    pub detail: Malformed,
}

/// The events of a binlog file (or of a captured stream, without the magic), the events of
/// transaction payloads after the payload event itself. Stops at the first error.
pub(crate) struct Events<'a> {
    reader: EventReader,
    input: &'a [u8],
    offset: usize,
    pending: VecDeque<Event>,
    failed: bool,
}

impl<'a> Events<'a> {
    /// A binlog file: the magic, then events.
    pub fn file(bytes: &'a [u8]) -> Result<Events<'a>, FrameError> {
        match bytes.strip_prefix(MAGIC) {
            Some(_) => Ok(Events::stream(bytes, MAGIC.len())),
            None => Err(FrameError {
                offset: 0,
                detail: Malformed("not a binlog file (no magic number)".into()),
            }),
        }
    }

    /// Events back to back, from `offset`.
    pub fn stream(bytes: &'a [u8], offset: usize) -> Events<'a> {
        Events {
            reader: EventReader::default(),
            input: bytes,
            offset,
            pending: VecDeque::new(),
            failed: false,
        }
    }
}

impl Iterator for Events<'_> {
    type Item = Result<Event, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(event) = self.pending.pop_front() {
            return Some(Ok(event));
        }
        let rest = self.input.get(self.offset..).unwrap_or_default();
        if self.failed || rest.is_empty() {
            return None;
        }
        let fail = |offset, detail| Some(Err(FrameError { offset, detail }));
        match self.reader.read(rest) {
            Ok((event, size)) => {
                if event.header().event_type_raw() == TRANSACTION_PAYLOAD {
                    match self.reader.unpack(&event) {
                        Ok(inner) => self.pending.extend(inner),
                        Err(detail) => {
                            self.failed = true;
                            return fail(self.offset, detail);
                        }
                    }
                }
                self.offset += size;
                Some(Ok(event))
            }
            Err(detail) => {
                self.failed = true;
                fail(self.offset, detail)
            }
        }
    }
}
