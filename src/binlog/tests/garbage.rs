//! Garbage in, error out: random bytes, every truncation and random corruptions of real events
//! (the fixtures, and a binlog captured from the test MariaDB) go through the whole decoder —
//! framing, every event body, TABLE_MAPs, every cell, and the pipe's decoder — and must come
//! out as results or typed errors, never a panic. Declared sizes larger than the bytes behind
//! them are refused before anything is allocated for them (`frame`, `mariadb::inflate`,
//! `tablemap`), which the cases with huge declared sizes check. Seeded: a failure reproduces.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mysql_common::binlog::consts::BinlogChecksumAlg;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::inspect::{inspect, run_pipe};
use crate::binlog::frame::{EventReader, MAGIC};
use crate::binlog::wire::le;

/// Decodes `stream` (events after the magic) every way the project can; `true` if some part
/// refused it. Panics with `what` if anything panicked.
pub(crate) fn decode(stream: &[u8], what: &dyn Fn() -> String) -> bool {
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(stream);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let summary = inspect(&file);
        let pipe = run_pipe(&file, &summary);
        summary.error.is_some() || !pipe.errors.is_empty()
    }));
    match outcome {
        Ok(refused) => refused,
        Err(_) => panic!("decoding panicked on {}", what()),
    }
}

/// The top-level events of a stream, by their declared sizes.
pub(crate) fn split(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut events = Vec::new();
    while stream.len() >= 19 {
        let size = le(&stream[9..13]) as usize;
        if size < 19 || size > stream.len() {
            break;
        }
        let (event, rest) = stream.split_at(size);
        events.push(event);
        stream = rest;
    }
    events
}

/// Whether the events after this FORMAT_DESCRIPTION end in a CRC32.
fn checksummed(fde: &[u8]) -> bool {
    EventReader::default().read(fde).is_ok_and(|(event, _)| {
        event.footer().get_checksum_alg() == Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32))
    })
}

/// `body` as the body of an event with `header`'s fields: size set, checksum recomputed.
fn reframe(header: &[u8], body: &[u8], crc: bool) -> Vec<u8> {
    let size = 19 + body.len() + if crc { 4 } else { 0 };
    let mut out = header[..19].to_vec();
    out[9..13].copy_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(body);
    if crc {
        let sum = crc32fast::hash(&out);
        out.extend_from_slice(&sum.to_le_bytes());
    }
    out
}

/// Events cut at this length or shorter are cut at every byte; longer ones at a stride.
const EVERY_BYTE_UP_TO: usize = 2048;

/// Truncates and corrupts every event of `stream` (a FORMAT_DESCRIPTION first) in its
/// context: the format description and the TABLE_MAPs before it. Returns (cases, refused).
pub(crate) fn torture(stream: &[u8], name: &str, rng: &mut StdRng) -> (usize, usize) {
    let events = split(stream);
    let Some(fde) = events.first().copied() else {
        return (0, 0);
    };
    let crc = checksummed(fde);
    let (mut cases, mut refused) = (0, 0);
    let mut maps: Vec<&[u8]> = Vec::new();
    for (i, event) in events.iter().enumerate().skip(1) {
        let mut context = fde.to_vec();
        for map in &maps {
            context.extend_from_slice(map);
        }
        let trailer = if crc { 4 } else { 0 };
        let body = &event[19..event.len() - trailer.min(event.len() - 19)];
        let stride = (body.len() / EVERY_BYTE_UP_TO).max(1);
        for cut in (1..event.len()).step_by(stride) {
            // The stream ends inside the event: framing must refuse it.
            let mut cut_stream = context.clone();
            cut_stream.extend_from_slice(&event[..cut]);
            let what = || format!("{name}: event {i} cut to {cut} of {} bytes", event.len());
            assert!(decode(&cut_stream, &what), "{} was accepted", what());
            cases += 1;
            refused += 1;
            // The event claims to be shorter: its body parsers see a cut body.
            if cut < body.len() {
                let mut short = context.clone();
                short.extend_from_slice(&reframe(event, &body[..cut], crc));
                let what = || format!("{name}: event {i} body cut to {cut} of {}", body.len());
                refused += usize::from(decode(&short, &what));
                cases += 1;
            }
        }
        for round in 0..8 {
            let mut bad = body.to_vec();
            for _ in 0..rng.random_range(1..4) {
                if !bad.is_empty() {
                    let at = rng.random_range(0..bad.len());
                    bad[at] = rng.random();
                }
            }
            let mut corrupt = context.clone();
            corrupt.extend_from_slice(&reframe(event, &bad, crc));
            let what = || format!("{name}: event {i} corrupted (round {round})");
            refused += usize::from(decode(&corrupt, &what));
            cases += 1;
        }
        if event.get(4) == Some(&19) {
            maps.push(event);
        }
    }
    (cases, refused)
}

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/mysql-binlogs"
);

#[test]
fn every_truncation_and_corruption_of_real_events_is_refused_without_panic() {
    let Ok(dir) = std::fs::read_dir(DIR) else {
        eprintln!("skipped: no binlog fixtures at {DIR}");
        return;
    };
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let (mut cases, mut refused) = (0, 0);
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "MANIFEST.tsv")
        .collect();
    names.sort();
    for name in names {
        let file = std::fs::read(format!("{DIR}/{name}")).expect("read fixture");
        let Some(stream) = file.strip_prefix(MAGIC) else {
            continue;
        };
        let (c, r) = torture(stream, &name, &mut rng);
        cases += c;
        refused += r;
    }
    eprintln!(
        "{cases} cut or corrupted events, {refused} refused, in {:?}",
        started.elapsed()
    );
    assert!(
        cases > 100_000 && refused > cases / 2,
        "{cases} cases, {refused} refused"
    );
}

/// Plausible headers (real event types, a size matching the bytes) over random bodies.
#[test]
fn random_bytes_are_refused_without_panic() {
    const TYPES: [u8; 28] = [
        2, 4, 5, 13, 14, 15, 16, 19, 23, 24, 25, 26, 27, 29, 30, 31, 32, 33, 34, 35, 39, 40, 42,
        0xa0, 0xa2, 0xa3, 0xa5, 0xa6,
    ];
    let mut rng = StdRng::seed_from_u64(11);
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut cases, mut refused) = (0usize, 0usize);
    // A real MySQL 8 format description (checksums on) and a MariaDB one, first.
    let fdes: Vec<Vec<u8>> = ["transaction_compression.000001", "mariadb-bin.000001"]
        .iter()
        .filter_map(|n| std::fs::read(format!("{DIR}/{n}")).ok())
        .filter_map(|f| {
            f.get(4..)
                .and_then(|s| split(s).first().map(|e| e.to_vec()))
        })
        .collect();
    while Instant::now() < deadline || cases < 2000 {
        let len = rng.random_range(0..400);
        let mut body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let mut stream = match fdes.get(rng.random_range(0..fdes.len() + 1)) {
            Some(fde) => fde.clone(),
            None => Vec::new(),
        };
        if rng.random_bool(0.8) {
            // A header that frames: a known type and the true size.
            let mut header = vec![0u8; 19];
            header[4] = TYPES[rng.random_range(0..TYPES.len())];
            body = reframe(&header, &body, rng.random_bool(0.5));
        }
        stream.extend_from_slice(&body);
        let what = || format!("random case {cases}: {stream:02x?}");
        refused += usize::from(decode(&stream, &what));
        cases += 1;
    }
    eprintln!("{cases} random events, {refused} refused");
    assert!(refused > cases / 2, "{cases} cases, {refused} refused");
}

#[test]
fn declared_sizes_beyond_the_bytes_are_refused_before_allocating() {
    // An event header declaring 4 GiB, 1 GiB + 1, and less than a header.
    for size in [u32::MAX, (1 << 30) + 1, 18] {
        let mut event = vec![0u8; 40];
        event[4] = 2;
        event[9..13].copy_from_slice(&size.to_le_bytes());
        let err = EventReader::default().read(&event).map(|_| ()).unwrap_err();
        assert!(err.0.contains("bytes"), "{err}");
    }
    // A MariaDB compressed query declaring 256 MiB in a few bytes of zlib.
    let mut body = vec![0u8; 13];
    body.push(0); // empty schema name, NUL
    body.extend_from_slice(&[0x84, 0x10, 0, 0, 0, 0x78, 0x9c, 0x03, 0]);
    let event = super::differential::parse(&super::gen::event(0xa5, &body, 100));
    let err = crate::binlog::mariadb::inflate(&event)
        .map(|_| ())
        .unwrap_err();
    assert!(err.0.contains("declares"), "{err}");
}
