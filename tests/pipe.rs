//! End-to-end: the daemon replicates real MariaDB tables into a real ClickHouse; source and
//! target are compared row by row.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;

use support::workload::{Workload, DDL, TABLES};
use support::{servers, Daemon, Kind, Pipe, Table};

const EQUAL_WITHIN: Duration = Duration::from_secs(90);

/// Every type of the common mapping, at its edges, with NULLs.
const TYPES_DDL: &str = "
CREATE TABLE types (
  id INT PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED,
  i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i32 INT, u32 INT UNSIGNED,
  i64 BIGINT, u64 BIGINT UNSIGNED,
  d1 DECIMAL(10,2), d2 DECIMAL(65,30), d3 DECIMAL(18,0),
  f FLOAT, g DOUBLE,
  c CHAR(5), v VARCHAR(100), t TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  b BLOB, vb VARBINARY(16),
  dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, ts0 TIMESTAMP NULL,
  e ENUM('a','b','c d'), j JSON
);";

const TYPES_ROWS: &str = "
INSERT INTO types VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -12345678.91, -99999999999999999999999999999999999.999999999999999999999999999999, 999999999999999999,
  -3.40282e38, 1.7976931348623157e308,
  'ab', 'héllo wörld 😀', 'long text', 'café',
  X'00FF00', X'DEADBEEF',
  '1900-01-01', '2299-12-31 23:59:59', '2024-02-29 12:34:56.789012', '2038-01-19 03:14:07.999', '1970-01-01 00:00:01',
  'c d', '{\"a\": [1, 2.5, \"x\"], \"big\": 12345678901234567890}'),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
  0.00, 0.000000000000000000000000000001, -999999999999999999,
  1.17549e-38, 4.9e-324,
  '', '', '', '',
  X'', X'00',
  '2024-01-01', '2000-01-01 00:00:00', '1999-12-31 23:59:59.000001', NULL, NULL,
  'a', '[]'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);";

const TYPES: Table<'static> = Table {
    name: "types",
    key: &["id"],
    columns: &[
        ("id", Kind::Int),
        ("i8", Kind::Int),
        ("u8", Kind::Int),
        ("i16", Kind::Int),
        ("u16", Kind::Int),
        ("i24", Kind::Int),
        ("u24", Kind::Int),
        ("i32", Kind::Int),
        ("u32", Kind::Int),
        ("i64", Kind::Int),
        ("u64", Kind::Int),
        ("d1", Kind::Decimal(2)),
        ("d2", Kind::Decimal(30)),
        ("d3", Kind::Decimal(0)),
        ("f", Kind::Float),
        ("g", Kind::Double),
        ("c", Kind::Text),
        ("v", Kind::Text),
        ("t", Kind::Text),
        ("l1", Kind::Text),
        ("b", Kind::Binary),
        ("vb", Kind::Binary),
        ("dt", Kind::Date),
        ("dtm", Kind::DateTime(0)),
        ("dtm6", Kind::DateTime(6)),
        ("ts", Kind::DateTime(3)),
        ("ts0", Kind::DateTime(0)),
        ("e", Kind::Text),
        ("j", Kind::Text),
    ],
};

async fn create(servers: &support::Servers, pipe: &Pipe, ddl: &str) -> mysql_async::Conn {
    let mut conn = servers.mysql().await;
    servers
        .exec(&mut conn, &format!("CREATE DATABASE `{0}`", pipe.db))
        .await;
    servers.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    servers.exec(&mut conn, ddl).await;
    conn
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_only_copies_every_type_exactly() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("snap");
    pipe.mode = "snapshot_only";
    let mut conn = create(&s, &pipe, TYPES_DDL).await;
    s.exec(&mut conn, TYPES_ROWS).await;
    s.exec(&mut conn, DDL).await;
    Workload::new(1).run(&mut conn, 300).await;

    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    let code = daemon.wait(Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "snapshot_only run failed:\n{}",
        daemon.log_text()
    );
    assert_eq!(s.state(&pipe), "Completed");
    for t in std::iter::once(&TYPES).chain(TABLES) {
        if let Some(d) = s.diff(&mut conn, &pipe.db, t).await {
            panic!("{d}");
        }
    }
    // The snapshot wrote each row once, with version 0.
    let versions = s.ch(&format!(
        "SELECT count(), max(_tributary_version) FROM `{}`.types",
        pipe.db
    ));
    assert_eq!(versions.trim(), "3\t0");
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cdc_applies_a_mixed_workload_and_stops_cleanly() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("cdc");
    let mut conn = create(&s, &pipe, TYPES_DDL).await;
    s.exec(&mut conn, DDL).await;
    let mut workload = Workload::new(2);
    workload.run(&mut conn, 200).await;

    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    // Changes of every kind on the edge-value table, through the binlog this time.
    s.exec(&mut conn, TYPES_ROWS).await;
    s.exec(&mut conn, "UPDATE types SET i8 = -1, d2 = -d2, j = '{\"k\": \"v\"}', dtm6 = '2000-02-29 00:00:00.5' WHERE id = 1").await;
    s.exec(&mut conn, "UPDATE types SET id = 30 WHERE id = 3")
        .await;
    s.exec(&mut conn, "DELETE FROM types WHERE id = 2").await;
    workload.run(&mut conn, 1500).await;

    let tables: Vec<Table> = std::iter::once(TYPES)
        .chain(TABLES.iter().map(|t| Table { ..*t }))
        .collect();
    s.wait_equal(&pipe.db, &tables, EQUAL_WITHIN, &daemon).await;
    for t in &tables {
        s.assert_no_duplicates(&pipe.db, t);
    }
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_workload_recovers_without_loss_or_duplicates() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("kill");
    let mut conn = create(&s, &pipe, DDL).await;
    let mut workload = Workload::new(3);
    workload.run(&mut conn, 100).await;
    let config = s.config(&pipe, "");

    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    for round in 0..3 {
        // Write while the daemon is killed at an arbitrary point of its batches.
        let writer = {
            let url = s.mariadb_url.clone();
            let db = pipe.db.clone();
            tokio::spawn(async move {
                let opts = mysql_async::Opts::from_url(&url).expect("url");
                let mut c = mysql_async::Conn::new(opts).await.expect("connect");
                mysql_async::prelude::Queryable::query_drop(&mut c, format!("USE `{db}`"))
                    .await
                    .expect("use");
                Workload::new(100 + round).run(&mut c, 400).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(300 + 400 * round)).await;
        daemon.kill9();
        writer.await.expect("workload");
        daemon = Daemon::start(&config);
    }
    s.wait_equal(&pipe.db, TABLES, EQUAL_WITHIN, &daemon).await;
    for t in TABLES {
        s.assert_no_duplicates(&pipe.db, t);
    }
    // The snapshot ran once: restarts went straight back to Running.
    let snapshots = s.ch(&format!(
        "SELECT count() FROM `{}_state`.pipe_state WHERE pipe = '{}' AND to_state = 'Snapshot'",
        pipe.db, pipe.name
    ));
    assert_eq!(snapshots.trim(), "1");
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_state_position_and_progress() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("status");
    let mut conn = create(&s, &pipe, DDL).await;
    Workload::new(4).run(&mut conn, 50).await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["status", "--config", config.to_str().expect("path")])
        .output()
        .expect("run status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("state     Running"), "{text}");
    assert!(
        text.contains(&format!("{}.orders", pipe.db)) && text.contains("done"),
        "{text}"
    );
    assert!(text.contains("Snapshot"), "history missing:\n{text}");
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "status",
            "--json",
            "--config",
            config.to_str().expect("path"),
        ])
        .output()
        .expect("run status --json");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json is JSON");
    assert_eq!(v["state"], "Running");
    assert!(v["position"].as_str().is_some_and(|p| p.contains(':')));
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cdc_only_replicates_changes_from_its_start_without_a_snapshot() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("cdconly");
    pipe.mode = "cdc_only";
    let mut conn = create(&s, &pipe, DDL).await;
    Workload::new(5).run(&mut conn, 50).await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    // Nothing was copied: the rows before the start are not in the target.
    let copied = s.ch(&format!("SELECT count() FROM `{}`.orders", pipe.db));
    assert_eq!(copied.trim(), "0", "cdc_only must not snapshot");
    let history = s.ch(&format!(
        "SELECT groupArray(to_state) FROM (SELECT to_state FROM `{}_state`.pipe_state ORDER BY seq)",
        pipe.db
    ));
    assert_eq!(history.trim(), "['Provisioning','Setup','Running']");
    // Rows inserted after the start arrive exactly.
    s.exec(&mut conn, "INSERT INTO orders VALUES (9000001, 'late', 1.25, 1, 2.5, 'new', NULL, '2024-01-01 00:00:00.000', NULL)").await;
    s.exec(&mut conn, "UPDATE orders SET qty = 2 WHERE id = 9000001")
        .await;
    let deadline = std::time::Instant::now() + EQUAL_WITHIN;
    loop {
        let got = s.ch(&format!(
            "SELECT id, customer, qty FROM `{}`.orders FINAL WHERE _tributary_is_deleted = 0 FORMAT TSV",
            pipe.db
        ));
        if got.trim() == "9000001\tlate\t2" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "late row not replicated: {got:?}\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// A transaction larger than the 64 MB batch cap is written in parts before its commit (memory
/// stays bounded) and still arrives exactly, with the rows after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_larger_than_the_batch_cap_arrives_whole() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("bigtx");
    let mut conn = create(
        &s,
        &pipe,
        "CREATE TABLE big (id INT PRIMARY KEY, body LONGTEXT, n INT)",
    )
    .await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    // 320 rows of 256 KiB: 80 MiB of row data in one transaction, then rows after it.
    s.exec(&mut conn, "BEGIN").await;
    s.exec(
        &mut conn,
        "INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 262144), seq FROM seq_1_to_320",
    )
    .await;
    s.exec(&mut conn, "UPDATE big SET n = -n WHERE id % 7 = 0")
        .await;
    s.exec(&mut conn, "DELETE FROM big WHERE id % 11 = 0").await;
    s.exec(&mut conn, "COMMIT").await;
    s.exec(&mut conn, "INSERT INTO big VALUES (1000, 'after', 1)")
        .await;
    let source: Vec<(i32, String, i32)> = conn
        .query("SELECT id, MD5(body), n FROM big ORDER BY id")
        .await
        .expect("source rows");
    let source: Vec<String> = source
        .into_iter()
        .map(|(id, md5, n)| format!("{id}\t{md5}\t{n}"))
        .collect();
    let deadline = std::time::Instant::now() + EQUAL_WITHIN;
    loop {
        let target = s.ch(&format!(
            "SELECT id, lower(hex(MD5(body))), n FROM `{}`.big FINAL \
             WHERE _tributary_is_deleted = 0 ORDER BY id FORMAT TSV",
            pipe.db
        ));
        if target.lines().collect::<Vec<_>>() == source {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "target differs: {} rows vs {} in the source\n{}",
            target.lines().count(),
            source.len(),
            support::tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let metrics = pipe.api().get("/metrics").expect("metrics").body;
    let spills = metrics
        .lines()
        .find(|l| l.starts_with("tributary_cdc_spills_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        spills >= 1.0,
        "no part written before the commit:\n{metrics}"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}
