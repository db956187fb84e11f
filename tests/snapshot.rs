//! The partitioned, parallel, resumable snapshot: every row of every key kind arrives once.

mod support;

use std::time::{Duration, Instant};

use support::{servers, Daemon, Kind, Pipe, Table};

const INT_KEYED: Table<'static> = Table {
    name: "int_keyed",
    key: &["id"],
    columns: &[("id", Kind::Int), ("v", Kind::Text)],
};
const STRING_KEYED: Table<'static> = Table {
    name: "string_keyed",
    key: &["k"],
    columns: &[("k", Kind::Text), ("v", Kind::Int)],
};
const BINARY_KEYED: Table<'static> = Table {
    name: "binary_keyed",
    key: &["k"],
    columns: &[("k", Kind::Binary), ("v", Kind::Int)],
};
const COMPOSITE_KEYED: Table<'static> = Table {
    name: "composite_keyed",
    key: &["a", "b"],
    columns: &[("a", Kind::Text), ("b", Kind::Int), ("v", Kind::Int)],
};
const NULLABLE_PARTITIONED: Table<'static> = Table {
    name: "by_group",
    key: &["id"],
    columns: &[("id", Kind::Int), ("grp", Kind::Int), ("v", Kind::Text)],
};

#[tokio::test(flavor = "multi_thread")]
async fn partitions_cover_every_row_of_every_key_kind() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("parts");
    pipe.mode = "snapshot_only";
    pipe.rows_per_partition = 7;
    pipe.parallelism = 3;
    pipe.tables_in_parallel = 2;
    let mut conn = s.mysql().await;
    let db = &pipe.db;
    s.exec(&mut conn, &format!("CREATE DATABASE `{db}`")).await;
    s.exec(&mut conn, &format!("USE `{db}`")).await;
    s.exec(
        &mut conn,
        "CREATE TABLE int_keyed (id BIGINT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO int_keyed SELECT CAST(seq AS SIGNED) * 3 - 100, CONCAT('v', seq) FROM seq_1_to_200;
         INSERT INTO int_keyed VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max');
         CREATE TABLE string_keyed (k VARCHAR(20) PRIMARY KEY, v INT);
         INSERT INTO string_keyed SELECT CONCAT('key-', seq, IF(seq % 3 = 0, ' ü', '')), seq FROM seq_1_to_100;
         INSERT INTO string_keyed VALUES ('', 0), ('Z', 1), ('a', 2);
         CREATE TABLE binary_keyed (k VARBINARY(8) PRIMARY KEY, v INT);
         INSERT INTO binary_keyed SELECT UNHEX(LPAD(HEX(seq * 2654435761 % 4294967296), 8, '0')), seq FROM seq_1_to_100;
         INSERT INTO binary_keyed VALUES (X'', 0), (X'00', 1), (X'FF', 2);
         CREATE TABLE composite_keyed (a VARCHAR(10), b INT, v INT, PRIMARY KEY (a, b));
         INSERT INTO composite_keyed SELECT CONCAT('g', seq % 5), seq, seq * 2 FROM seq_1_to_100;
         CREATE TABLE by_group (id INT PRIMARY KEY, grp INT NULL, v VARCHAR(10));
         INSERT INTO by_group SELECT seq, IF(seq % 4 = 0, NULL, seq % 30), 'x' FROM seq_1_to_100;",
    )
    .await;
    let options = format!("\n[pipes.tables.options.\"{db}.by_group\"]\npartition_by = \"grp\"\n");
    let config = s.config(&pipe, &options);
    let mut daemon = Daemon::start(&config);
    assert_eq!(
        daemon.wait(Duration::from_secs(60)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    for t in [
        &INT_KEYED,
        &STRING_KEYED,
        &BINARY_KEYED,
        &COMPOSITE_KEYED,
        &NULLABLE_PARTITIONED,
    ] {
        if let Some(d) = s.diff(&mut conn, db, t).await {
            panic!("{d}");
        }
        // Every row was written once: no partition overlaps another.
        let raw = s.ch(&format!(
            "SELECT count() = uniqExact({}) FROM `{db}`.`{}`",
            t.key.join(", "),
            t.name
        ));
        assert_eq!(raw.trim(), "1", "{}: a row was loaded twice", t.name);
        let partitions = s.ch(&format!(
            "SELECT count() FROM `{db}_state`.snapshot_partitions FINAL WHERE table_name = '{db}.{}' AND done = 1",
            t.name
        ));
        let partitions: u32 = partitions.trim().parse().expect("count");
        assert!(partitions > 3, "{}: only {partitions} partitions", t.name);
    }
    let null_partition = s.ch(&format!(
        "SELECT rows FROM `{db}_state`.snapshot_partitions FINAL WHERE table_name = '{db}.by_group' AND spec = '\"Null\"'"
    ));
    assert_eq!(
        null_partition.trim(),
        "25",
        "the NULL partition holds the rows where grp IS NULL"
    );
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_snapshot_resumes_with_the_missing_partitions_only() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("resume");
    pipe.rows_per_partition = 4000;
    pipe.parallelism = 2;
    let table = Table {
        name: "big",
        key: &["id"],
        columns: &[
            ("id", Kind::Int),
            ("a", Kind::Int),
            ("b", Kind::Text),
            ("c", Kind::Decimal(2)),
        ],
    };
    let mut conn = s.mysql().await;
    let db = &pipe.db;
    s.exec(&mut conn, &format!("CREATE DATABASE `{db}`")).await;
    s.exec(&mut conn, &format!("USE `{db}`")).await;
    s.exec(
        &mut conn,
        "CREATE TABLE big (id INT PRIMARY KEY, a INT, b VARCHAR(100), c DECIMAL(10,2));
         INSERT INTO big SELECT seq, seq % 97, REPEAT(MD5(seq), 3), seq / 7 FROM seq_1_to_300000;",
    )
    .await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    let state_table = format!("`{db}_state`.snapshot_partitions");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = s.ch_try(&format!(
            "SELECT countIf(done = 1) FROM {state_table} FINAL"
        ));
        if done
            .ok()
            .and_then(|d| d.trim().parse::<u32>().ok())
            .unwrap_or(0)
            >= 5
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no partition finished:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.kill9();
    let counts = s.ch(&format!(
        "SELECT countIf(done = 1), count() FROM {state_table} FINAL"
    ));
    let (done, total) = counts.trim().split_once('\t').expect("two counts");
    assert!(
        done.parse::<u32>().expect("n") < total.parse::<u32>().expect("n"),
        "the snapshot finished before the kill: {counts}"
    );
    // Changes while the daemon is down, inside done and missing partitions alike.
    s.exec(&mut conn, "UPDATE big SET a = -1 WHERE id % 1000 = 0; DELETE FROM big WHERE id % 1500 = 0; INSERT INTO big VALUES (400000, 1, 'new', 1.5)").await;

    let daemon = Daemon::start(&config);
    let tables = [table];
    s.wait_equal(db, &tables, Duration::from_secs(120), &daemon)
        .await;
    s.assert_no_duplicates(db, &tables[0]);
    // Done partitions were not loaded again: at most the partitions in flight at the kill
    // (parallelism of them) were written twice.
    let raw: u64 = s
        .ch(&format!(
            "SELECT count() FROM `{db}`.big WHERE _tributary_version = 0"
        ))
        .trim()
        .parse()
        .expect("count");
    assert!(
        raw <= 300_000 + 2 * 4000,
        "{raw} snapshot rows written for 300000"
    );
    let snapshots = s.ch(&format!(
        "SELECT count() FROM `{db}_state`.pipe_state WHERE to_state = 'Snapshot'"
    ));
    assert_eq!(snapshots.trim(), "2", "the restart resumes the snapshot");
    s.cleanup(&pipe).await;
}
