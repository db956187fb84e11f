//! Tables without a primary key replicated append-only (`tables.keyless = "append"`), on the
//! real servers: every insert, update and delete arrives once as a row of its own, whether it
//! happened before the table was read, while it was read, or after; across a kill -9, a
//! reload of the table and an in-place ALTER.
//!
//! The source tables carry a `seq` column that is unique but not a key (tributary does not
//! know it), so that the target can be checked change by change: every `seq` inserted is in
//! the target exactly once as a snapshot row or an insert, every update and delete once.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use support::{servers, wait_until, Daemon, Kind, Pipe, Servers, Table};

const WITHIN: Duration = Duration::from_secs(90);

const KEYED: Table = Table {
    name: "t",
    key: &["id"],
    columns: &[("id", Kind::Int), ("v", Kind::Text)],
};

/// The pipe's config with `tables.keyless = "append"`.
fn config(s: &Servers, pipe: &Pipe) -> std::path::PathBuf {
    let path = s.config(pipe, "");
    let text = std::fs::read_to_string(&path).expect("read config");
    let text = text.replace(
        "on_source_drop = \"keep\"",
        "on_source_drop = \"keep\"\nkeyless = \"append\"",
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// A source database with `logs` (InnoDB, no key) holding `rows` rows, `audit` (MyISAM, no
/// key) and a keyed table `t`.
async fn source(s: &Servers, db: &str, rows: u64) -> mysql_async::Conn {
    let mut conn = s.mysql().await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE DATABASE `{db}`; USE `{db}`;
             CREATE TABLE logs (seq BIGINT NOT NULL, level VARCHAR(10), msg TEXT, at DATETIME(6)) ENGINE=InnoDB;
             CREATE TABLE audit (n INT, note VARCHAR(20)) ENGINE=MyISAM;
             INSERT INTO audit VALUES (1, 'same'), (1, 'same'), (NULL, NULL), (2, 'ü');
             CREATE TABLE t (id INT PRIMARY KEY, v TEXT);
             INSERT INTO t VALUES (1, 'a'), (2, 'b');"
        ),
    )
    .await;
    let values: Vec<String> = (1..=rows)
        .map(|i| {
            format!(
                "({i}, 'info', 'row {i}', '2026-01-01 00:00:00.{:06}')",
                i % 1_000_000
            )
        })
        .collect();
    for chunk in values.chunks(2000) {
        let sql = format!("INSERT INTO logs VALUES {}", chunk.join(", "));
        s.exec(&mut conn, &sql).await;
    }
    conn
}

/// Inserts into `logs` from `next` on, one row per transaction, until stopped; the next `seq`
/// is left in `next`.
struct Writer {
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    async fn start(s: &Servers, db: &str, next: u64) -> Writer {
        let mut conn = s.mysql().await;
        s.exec(&mut conn, &format!("USE `{db}`")).await;
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(next));
        let task = {
            let (stop, seq) = (Arc::clone(&stop), Arc::clone(&seq));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = seq.load(Ordering::Relaxed);
                    conn.exec_drop(
                        "INSERT INTO logs VALUES (?, 'info', ?, NOW(6))",
                        (n, format!("live {n}")),
                    )
                    .await
                    .expect("insert into logs");
                    seq.store(n + 1, Ordering::Relaxed);
                }
            })
        };
        Writer {
            stop,
            next: seq,
            task,
        }
    }

    /// Stops writing; returns the next `seq` (every one below it is in the source).
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer");
        self.next.load(Ordering::Relaxed)
    }
}

/// How many target rows each `seq` of `logs` has per change kind (deduplicated by FINAL).
fn changes(s: &Servers, db: &str) -> BTreeMap<String, BTreeMap<u64, u64>> {
    let tsv = s.ch(&format!(
        "SELECT _tributary_op, seq, count() FROM `{db}`.logs FINAL GROUP BY _tributary_op, seq"
    ));
    let mut out: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for line in tsv.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (op, seq, n) = (
            f[0].to_owned(),
            f[1].parse().expect("a seq"),
            f[2].parse().expect("a count"),
        );
        out.entry(op).or_default().insert(seq, n);
    }
    out
}

/// Asserts that each `seq` in `1..end` arrived once, as a snapshot row or an insert.
fn assert_inserted_once(s: &Servers, db: &str, end: u64) {
    let c = changes(s, db);
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for op in ["snapshot", "insert"] {
        for (seq, n) in c.get(op).cloned().unwrap_or_default() {
            *seen.entry(seq).or_default() += n;
        }
    }
    let missing: Vec<u64> = (1..end)
        .filter(|q| !seen.contains_key(q))
        .take(10)
        .collect();
    let twice: Vec<(u64, u64)> = seen
        .iter()
        .filter(|(_, n)| **n != 1)
        .map(|(q, n)| (*q, *n))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "missing {missing:?}, more than once {twice:?}"
    );
    assert_eq!(seen.len() as u64, end - 1, "rows beyond the inserted ones");
}

fn count(s: &Servers, sql: &str) -> u64 {
    s.ch(sql).trim().parse().unwrap_or(0)
}

/// Waits until the target holds `n` rows of `logs` (after FINAL).
async fn wait_rows(s: &Servers, db: &str, n: u64, daemon: &Daemon) {
    let sql = format!("SELECT count() FROM `{db}`.logs FINAL");
    wait_until(
        &format!("{db}.logs did not reach {n} rows"),
        WITHIN,
        daemon,
        || {
            s.ch_try(&sql)
                .ok()
                .and_then(|c| c.trim().parse::<u64>().ok())
                == Some(n)
        },
    )
    .await;
}

/// Rows inserted before, during and after the table's read each arrive once; updates and
/// deletes each arrive once as a row of their kind with their image; an in-place ALTER and
/// a MyISAM table (read under a table lock) follow; the keyed table beside them is equal.
#[tokio::test(flavor = "multi_thread")]
async fn every_change_of_a_keyless_table_arrives_once() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("keyless");
    let mut conn = source(&s, &pipe.db, 20_000).await;
    // Writing from before the daemon starts until it replicates: some rows land while the
    // table is read, and must be neither lost nor doubled.
    let writer = Writer::start(&s, &pipe.db, 20_001).await;
    let mut daemon = Daemon::start(&config(&s, &pipe));
    s.wait_for_state(&pipe, "Running", WITHIN);
    let logs = format!("{}.logs", pipe.db);
    assert_eq!(
        pipe.status()["tables"][&logs]["append_only"],
        true,
        "{}",
        pipe.status()
    );
    let end = writer.stop().await;
    wait_rows(&s, &pipe.db, end - 1, &daemon).await;
    assert_inserted_once(&s, &pipe.db, end);
    let snapshot = count(&s, &format!("SELECT count() FROM `{}`.logs FINAL WHERE _tributary_op = 'snapshot' AND _tributary_version = 0", pipe.db));
    assert!(snapshot >= 20_000, "{snapshot} snapshot rows");

    // Updates and deletes: one row each, with the new image (update) or the old (delete).
    let db = &pipe.db;
    let updated: Option<u64> = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM `{db}`.logs WHERE seq % 10 = 0"
        ))
        .await
        .expect("count updated rows");
    let updated = updated.expect("a count");
    s.exec(
        &mut conn,
        &format!("UPDATE `{db}`.logs SET level = 'warn' WHERE seq % 10 = 0"),
    )
    .await;
    s.exec(
        &mut conn,
        &format!("DELETE FROM `{db}`.logs WHERE seq % 7 = 0 AND seq % 10 <> 0"),
    )
    .await;
    let deleted = (1..end).filter(|q| q % 7 == 0 && q % 10 != 0).count() as u64;
    s.exec(
        &mut conn,
        &format!(
            "ALTER TABLE `{db}`.logs ADD COLUMN extra INT; \
             INSERT INTO `{db}`.logs VALUES ({end}, 'debug', NULL, NULL, 42); \
             INSERT INTO `{db}`.audit VALUES (3, 'after'), (3, 'after')"
        ),
    )
    .await;
    wait_rows(&s, db, end + updated + deleted, &daemon).await;
    let c = changes(&s, db);
    let updates = c.get("update").cloned().unwrap_or_default();
    assert_eq!(updates.len() as u64, updated);
    assert!(
        updates.iter().all(|(q, n)| q % 10 == 0 && *n == 1),
        "{updates:?}"
    );
    assert_eq!(
        count(&s, &format!("SELECT countIf(level = 'warn') FROM `{db}`.logs FINAL WHERE _tributary_op = 'update'")),
        updated
    );
    let deletes = c.get("delete").cloned().unwrap_or_default();
    assert_eq!(deletes.len() as u64, deleted);
    assert_eq!(
        s.ch(&format!(
            "SELECT extra, msg IS NULL FROM `{db}`.logs FINAL WHERE seq = {end}"
        ))
        .trim(),
        "42\t1"
    );
    // Versions follow the binlog: the delete of a row comes after its insert.
    let out_of_order = count(
        &s,
        &format!(
            "SELECT count() FROM (SELECT seq, maxIf(_tributary_version, _tributary_op = 'insert') AS i, \
             maxIf(_tributary_version, _tributary_op = 'delete') AS d FROM `{db}`.logs FINAL GROUP BY seq) \
             WHERE i > 0 AND d > 0 AND d < i"
        ),
    );
    assert_eq!(out_of_order, 0);

    // The MyISAM table: identical rows stay two rows, NULL stays NULL.
    let audit = format!(
        "SELECT _tributary_op, n, note FROM `{db}`.audit FINAL ORDER BY _tributary_op, n, note"
    );
    wait_until("audit's inserts did not arrive", WITHIN, &daemon, || {
        s.ch_try(&audit).is_ok_and(|t| t.lines().count() == 6)
    })
    .await;
    assert_eq!(
        s.ch(&audit),
        "snapshot\t1\tsame\nsnapshot\t1\tsame\nsnapshot\t2\tü\nsnapshot\t\\N\t\\N\ninsert\t3\tafter\ninsert\t3\tafter\n"
    );
    s.wait_equal(db, &[KEYED], WITHIN, &daemon).await;
    assert_eq!(s.state(&pipe), "Running");
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// A daemon killed while it loads, and again while it replicates, under a steady stream of
/// inserts: after each restart every row is in the target exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_daemon_neither_loses_nor_doubles_appended_rows() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("keyless_kill");
    let _conn = source(&s, &pipe.db, 50_000).await;
    let path = config(&s, &pipe);
    let writer = Writer::start(&s, &pipe.db, 50_001).await;
    let mut daemon = Daemon::start(&path);
    s.wait_for_state(&pipe, "Snapshot", WITHIN);
    daemon.kill9();
    let mut daemon = Daemon::start(&path);
    s.wait_for_state(&pipe, "Running", WITHIN);
    // Changes applied, then killed with more in flight.
    let seen = Writer::count_target(&s, &pipe.db);
    wait_until("no change replicated", WITHIN, &daemon, || {
        Writer::count_target(&s, &pipe.db) > seen
    })
    .await;
    daemon.kill9();
    let daemon = Daemon::start(&path);
    s.wait_for_state(&pipe, "Running", WITHIN);
    let end = writer.stop().await;
    wait_rows(&s, &pipe.db, end - 1, &daemon).await;
    assert_inserted_once(&s, &pipe.db, end);
    drop(daemon);
    s.cleanup(&pipe).await;
}

/// `tables resync` of a keyless table reloads it while CDC waits: afterwards it holds the
/// source's rows once each, and changes made during and after the reload follow.
#[tokio::test(flavor = "multi_thread")]
async fn a_keyless_table_is_reloaded_without_doubling_a_row() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("keyless_reload");
    let mut conn = source(&s, &pipe.db, 10_000).await;
    let mut daemon = Daemon::start(&config(&s, &pipe));
    s.wait_for_state(&pipe, "Running", WITHIN);
    let db = &pipe.db;
    s.exec(
        &mut conn,
        &format!("DELETE FROM `{db}`.logs WHERE seq <= 100"),
    )
    .await;
    wait_rows(&s, db, 10_000 + 100, &daemon).await;
    let writer = Writer::start(&s, db, 10_001).await;
    let answer = pipe
        .api()
        .post(
            &format!("/v1/pipes/{}/tables/{db}.logs/resync", pipe.name),
            "",
        )
        .expect("resync");
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The reload is done once the copy is gone and the pipe replicates again.
    let copies = format!(
        "SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'logs_resync'"
    );
    wait_until("the reload did not finish", WITHIN, &daemon, || {
        s.ch_try(&copies).is_ok_and(|c| c.trim() == "0") && s.state(&pipe) == "Running"
    })
    .await;
    let end = writer.stop().await;
    // The reloaded table: the source's rows at its read (no deletes of rows it no longer
    // has), then the inserts after it.
    wait_rows(&s, db, end - 1 - 100, &daemon).await;
    let c = changes(&s, db);
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for op in ["snapshot", "insert"] {
        for (seq, n) in c.get(op).cloned().unwrap_or_default() {
            *seen.entry(seq).or_default() += n;
        }
    }
    assert!(
        !c.contains_key("delete"),
        "deletes before the reload survived it"
    );
    let expected: Vec<u64> = (101..end).collect();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), expected);
    assert!(seen.values().all(|n| *n == 1));
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

impl Writer {
    /// Rows of `logs` in the target so far.
    fn count_target(s: &Servers, db: &str) -> u64 {
        s.ch_try(&format!("SELECT count() FROM `{db}`.logs"))
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0)
    }
}
