//! A binlog captured from the test MariaDB (`TRIBUTARY_TEST_MARIADB_URL`): rows of every
//! common type written, the dump read back, then decoded cell by cell and by the pipe's
//! decoder, turned into MariaDB compressed events (`log_bin_compress` format) and decoded
//! again, and finally truncated and corrupted event by event like the fixtures.

use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::value::Value;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::garbage::{split, torture};
use super::inspect::{inspect, run_pipe};
use crate::binlog::frame::MAGIC;
use crate::binlog::mariadb::compress_record;
use crate::binlog::wire::Reader;

const TABLE: &str = "CREATE TABLE t (
  id INT PRIMARY KEY, i8 TINYINT, u16 SMALLINT UNSIGNED, m MEDIUMINT, mu MEDIUMINT UNSIGNED,
  big BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec1 DECIMAL(20,6), b BIT(12), c CHAR(10),
  v VARCHAR(300), l VARCHAR(20) CHARACTER SET latin1, tx TEXT, bl BLOB, e ENUM('x','y'),
  s SET('a','b','c'), dt DATE, tm TIME(2), dtm DATETIME(6), ts TIMESTAMP(3) NULL, y YEAR, j JSON)";

const WRITES: &[&str] = &[
    "INSERT INTO t VALUES (1, -128, 65535, -8388608, 16777215, 18446744073709551615, 1.5, -2.25,
      -12345678901234.123456, b'101010101010', 'abc', 'héllo wörld 😀', 'café', REPEAT('long ', 100),
      X'00FF', 'y', 'a,c', '2024-02-29', '-838:59:59.99', '2024-02-29 12:34:56.789012',
      '2038-01-19 03:14:07.999', 2155, '{\"k\": [1, 2.5, \"x\"]}')",
    "INSERT INTO t (id) VALUES (2), (3), (4)",
    "UPDATE t SET v = 'changed', tm = '12:00:00.5' WHERE id = 1",
    "UPDATE t SET id = 30 WHERE id = 3",
    "DELETE FROM t WHERE id = 2",
    "BEGIN; INSERT INTO t (id) VALUES (5); ROLLBACK",
];

/// The capture: the events MariaDB sends for `WRITES`, back to back as in a binlog file.
async fn capture(url: &str) -> Vec<u8> {
    let opts = Opts::from_url(url).expect("TRIBUTARY_TEST_MARIADB_URL");
    let mut conn = Conn::new(opts.clone()).await.expect("connect");
    let db = format!("t_binlog_live_{:08x}", rand::random::<u32>());
    conn.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .expect("create db");
    conn.query_drop(format!("USE `{db}`")).await.expect("use");
    conn.query_drop(TABLE).await.expect("create table");
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("status")
        .expect("binlog on");
    let (file, pos): (String, u64) = (row.get(0).expect("file"), row.get(1).expect("pos"));
    for w in WRITES {
        conn.query_drop(*w).await.expect("write");
    }
    conn.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");

    let mut dump = Conn::new(opts).await.expect("connect");
    dump.query_drop("SET @mariadb_slave_capability = 4")
        .await
        .expect("capability");
    let request = BinlogStreamRequest::new(rand::random_range(1_000_000_000..2_000_000_000))
        .with_filename(file.as_bytes())
        .with_pos(pos)
        .with_non_blocking();
    let mut stream = dump.get_binlog_stream(request).await.expect("dump");
    let mut bytes = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("dump stalled")
    {
        let event = event.expect("event");
        event
            .write(BinlogVersion::Version4, &mut bytes)
            .expect("serialize");
    }
    bytes
}

/// The MariaDB compressed form of a query or rows event (`log_bin_compress=ON`), if it is one.
fn compressed(event: &[u8], crc: bool) -> Option<Vec<u8>> {
    let trailer = if crc { 4 } else { 0 };
    let body = &event[19..event.len() - trailer];
    let (ty, head) = match event[4] {
        2 => {
            let head = 13
                + usize::from(u16::from_le_bytes([body[11], body[12]]))
                + usize::from(body[8])
                + 1;
            (0xa5, head)
        }
        t @ 23..=25 => {
            let mut r = Reader::new(&body[8..]);
            let width = r.lenenc("width").ok()? as usize;
            let images = if t == 24 { 2 } else { 1 };
            r.take(width.div_ceil(8) * images, "bitmaps").ok()?;
            (0xa6 + (t - 23), body.len() - r.len())
        }
        _ => return None,
    };
    let mut out = event[..19].to_vec();
    out[4] = ty;
    out.extend_from_slice(&body[..head]);
    out.extend_from_slice(&compress_record(&body[head..]));
    let size = out.len() + trailer;
    out[9..13].copy_from_slice(&(size as u32).to_le_bytes());
    if crc {
        let sum = crc32fast::hash(&out);
        out.extend_from_slice(&sum.to_le_bytes());
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_mariadb_binlog_decodes_plain_and_compressed_and_survives_garbage() {
    let Some(url) = crate::test_servers::url("TRIBUTARY_TEST_MARIADB_URL") else {
        return;
    };
    let stream = capture(&url).await;
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&stream);
    let mut plain = inspect(&file);
    assert_eq!(plain.error, None);
    let table = plain
        .rows
        .keys()
        .find(|t| t.starts_with("t_binlog_live_"))
        .expect("rows captured")
        .clone();
    // Four inserts, two updates, one delete; the rolled back insert is not in the binlog.
    assert_eq!(plain.rows[&table], 7);
    let first = plain
        .changes
        .iter()
        .find(|(t, ..)| *t == table)
        .and_then(|(_, _, a)| a.clone())
        .expect("insert");
    let bytes = |b: &[u8]| Some(Value::Bytes(b.to_vec()));
    assert_eq!(first[0], Some(Value::Int(1)));
    assert_eq!(first[5], Some(Value::UInt(u64::MAX)));
    assert_eq!(first[8], bytes(b"-12345678901234.123456"));
    assert_eq!(first[11], bytes("héllo wörld 😀".as_bytes()));
    assert_eq!(first[18], Some(Value::Time(true, 34, 22, 59, 59, 990_000)));
    assert_eq!(
        first[19],
        Some(Value::Date(2024, 2, 29, 12, 34, 56, 789_012))
    );
    assert_eq!(first[22], bytes(br#"{"k": [1, 2.5, "x"]}"#));
    // Five transactions and the DROP DATABASE. (ANNOTATE_ROWS is only sent to a replica that
    // asks for it in the dump request, which mysql_async does not.)
    assert!(plain.gtids.len() >= 6, "{:?}", plain.gtids);
    // The pipe's decoder, replicating the table (only: other tests may write meanwhile): the
    // same rows, no error, and the closing DROP DATABASE held as the table's schema change.
    plain.maps.retain(|name, _| *name == table);
    let pipe = run_pipe(&file, &plain);
    assert_eq!(pipe.errors, Vec::<String>::new());
    assert!(
        pipe.schema_changes
            .iter()
            .any(|c| c.starts_with("DROP DATABASE")),
        "{:?}",
        pipe.schema_changes
    );
    assert_eq!(pipe.rows.get(&table), Some(&7));

    // The same events as log_bin_compress=ON writes them.
    let events = split(&stream);
    // The test server writes CRC32 checksums (binlog_checksum=CRC32).
    let mut squeezed = Vec::new();
    let mut count = 0;
    for event in &events {
        match compressed(event, true) {
            Some(c) => {
                squeezed.extend_from_slice(&c);
                count += 1;
            }
            None => squeezed.extend_from_slice(event),
        }
    }
    // At least the five rows events and the DROP DATABASE.
    assert!(count >= 6, "{count} events compressed");
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&squeezed);
    let mut inflated = inspect(&file);
    assert_eq!(inflated.error, None);
    assert_eq!(inflated.changes, plain.changes);
    assert_eq!(inflated.queries, plain.queries);
    inflated.maps.retain(|name, _| *name == table);
    let pipe = run_pipe(&file, &inflated);
    assert_eq!((pipe.errors.len(), pipe.rows.get(&table)), (0, Some(&7)));

    let mut rng = StdRng::seed_from_u64(13);
    let (cases, refused) = torture(&stream, "live capture", &mut rng);
    let (more, more_refused) = torture(&squeezed, "live capture, compressed", &mut rng);
    assert!(cases + more > 10_000 && refused + more_refused > (cases + more) / 2);
}
