//! MariaDB `log_bin_compress=ON`: compressed query and rows events (0xa5–0xab) are replicated
//! like plain ones, across a daemon restart in the middle, and the source and target tables
//! compare equal row by row.
//!
//! Its own test binary: it changes global settings of the shared test server, and test
//! binaries run one after another. The settings are restored at the end, also on failure.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use support::{servers, Daemon, Kind, Pipe, Table};

const EQUAL_WITHIN: Duration = Duration::from_secs(90);

const DDL: &str = "CREATE TABLE c (
  id INT PRIMARY KEY, name VARCHAR(200) NOT NULL, note TEXT, amount DECIMAL(12,2),
  ratio DOUBLE, small MEDIUMINT, seen DATETIME(3), kind ENUM('a','b','c d'), doc JSON, data BLOB)";

const TABLE: Table<'static> = Table {
    name: "c",
    key: &["id"],
    columns: &[
        ("id", Kind::Int),
        ("name", Kind::Text),
        ("note", Kind::Text),
        ("amount", Kind::Decimal(2)),
        ("ratio", Kind::Double),
        ("small", Kind::Int),
        ("seen", Kind::DateTime(3)),
        ("kind", Kind::Text),
        ("doc", Kind::Text),
        ("data", Kind::Binary),
    ],
};

/// Rows `from..to`, with text long and repetitive enough to be worth compressing.
fn insert(from: u32, to: u32) -> String {
    let rows: Vec<String> = (from..to)
        .map(|i| {
            format!(
                "({i}, 'name {i} {pad}', REPEAT('note {i} ', {n}), {i}.25, {i}e-3, {m}, \
                 '2024-01-{d:02} 10:{mi:02}:00.{ms:03}', '{kind}', '{{\"i\": {i}, \"tags\": [\"x\", \"y\"]}}', \
                 REPEAT(X'00FF', {n}))",
                pad = "é".repeat((i % 40) as usize),
                n = 1 + i % 50,
                m = i64::from(i % 16_000) * 977 - 8_000_000,
                d = 1 + i % 28,
                mi = i % 60,
                ms = i % 1000,
                kind = ["a", "b", "c d"][(i % 3) as usize],
            )
        })
        .collect();
    format!("INSERT INTO c VALUES {}", rows.join(", "))
}

async fn changes(s: &support::Servers, conn: &mut mysql_async::Conn, base: u32) {
    for batch in 0..4 {
        let from = base + batch * 25;
        s.exec(conn, &insert(from, from + 25)).await;
    }
    s.exec(conn, &format!("UPDATE c SET note = CONCAT(note, REPEAT('!', 300)), amount = -amount WHERE id % 3 = 0 AND id >= {base}")).await;
    s.exec(
        conn,
        &format!("UPDATE c SET id = id + 100000 WHERE id % 7 = 0 AND id >= {base} AND id < 100000"),
    )
    .await;
    s.exec(
        conn,
        &format!("DELETE FROM c WHERE id % 5 = 0 AND id >= {base} AND id < 100000"),
    )
    .await;
    s.exec(
        conn,
        &format!("BEGIN; {}; ROLLBACK", insert(base + 90_000, base + 90_010)),
    )
    .await;
    // DDL of a table the pipe does not replicate, in a compressed query event too.
    s.exec(
        conn,
        &format!("CREATE TABLE other_{base} (x INT); DROP TABLE other_{base}"),
    )
    .await;
}

/// Compressed events written since `from` (`file`, `pos`), per `SHOW BINLOG EVENTS`.
async fn compressed_events(conn: &mut mysql_async::Conn, file: &str, pos: u64) -> usize {
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {pos}"))
        .await
        .expect("show binlog events");
    rows.iter()
        .filter(|r| {
            r.get::<String, _>(2)
                .is_some_and(|t| t.to_ascii_lowercase().contains("compressed"))
        })
        .count()
}

async fn replicate_through_compression() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("compressed");
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{0}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    s.exec(&mut conn, DDL).await;
    s.exec(&mut conn, &insert(1, 50)).await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    // Plain events first.
    changes(&s, &mut conn, 1_000).await;

    let status: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("status")
        .expect("binlog");
    let (file, pos): (String, u64) = (status.get(0).expect("file"), status.get(1).expect("pos"));
    s.exec(
        &mut conn,
        "SET GLOBAL log_bin_compress = ON, GLOBAL log_bin_compress_min_len = 10",
    )
    .await;
    changes(&s, &mut conn, 2_000).await;
    s.wait_equal(&pipe.db, &[TABLE], EQUAL_WITHIN, &daemon)
        .await;

    // A restart replays from the checkpoint, through compressed events again.
    daemon.kill9();
    changes(&s, &mut conn, 3_000).await;
    let compressed = compressed_events(&mut conn, &file, pos).await;
    s.exec(&mut conn, "SET GLOBAL log_bin_compress = OFF").await;
    changes(&s, &mut conn, 4_000).await;
    let mut daemon = Daemon::start(&config);
    s.wait_equal(&pipe.db, &[TABLE], EQUAL_WITHIN, &daemon)
        .await;
    s.assert_no_duplicates(&pipe.db, &TABLE);
    eprintln!("{compressed} compressed events replicated");
    assert!(
        compressed >= 10,
        "only {compressed} compressed events were written"
    );
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_binlog_events_replicate_like_plain_ones() {
    let Some(s) = servers() else { return };
    let mut conn = s.mysql().await;
    let before: (String, String) = conn
        .query_first("SELECT @@GLOBAL.log_bin_compress, @@GLOBAL.log_bin_compress_min_len")
        .await
        .expect("read settings")
        .expect("settings");
    // Run the test in a task, so that a failure comes back here as a value and the settings
    // are restored before it is reported.
    let outcome = tokio::spawn(replicate_through_compression()).await;
    let on = if before.0 == "1" || before.0.eq_ignore_ascii_case("ON") {
        "ON"
    } else {
        "OFF"
    };
    conn.query_drop(format!(
        "SET GLOBAL log_bin_compress = {on}, GLOBAL log_bin_compress_min_len = {}",
        before.1
    ))
    .await
    .expect("restore log_bin_compress");
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{e}"),
    }
}
