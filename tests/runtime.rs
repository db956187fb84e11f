//! Runtime defects found by outside workloads, on the real servers: binlog events larger than
//! the server's `max_allowed_packet`, a stall that must be visible, and CDC starting where the
//! server cannot tell the GTID state of its position.
//!
//! The tests that write events of tens of MB hold a lock: after such an event the server's
//! `BINLOG_GTID_POS` answers NULL for every later position of the same binlog file, so each of
//! them ends by rotating the binlog, and other pipes do not start behind one.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use support::proxy::Proxy;
use support::{servers, tail, Daemon, Pipe, Servers};
use tokio::sync::Mutex;

static BIG_EVENTS: Mutex<()> = Mutex::const_new(());

/// One BLOB value stays below the server's default 16 MiB `max_allowed_packet`.
const PIECE: usize = 8 << 20;
const PIECES: [&str; 5] = ["a", "b", "c", "d", "e"];

async fn create_db(s: &Servers, pipe: &Pipe) -> mysql_async::Conn {
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    conn
}

/// The pipe's database with a table `big` of five BLOB pieces and the given first rows.
async fn big_table(s: &Servers, pipe: &Pipe, rows: &str) -> mysql_async::Conn {
    let mut conn = create_db(s, pipe).await;
    s.exec(
        &mut conn,
        "CREATE TABLE big (id INT PRIMARY KEY, a LONGBLOB, b LONGBLOB, c LONGBLOB, \
         d LONGBLOB, e LONGBLOB, note VARCHAR(20))",
    )
    .await;
    s.exec(&mut conn, &format!("INSERT INTO big VALUES {rows}"))
        .await;
    conn
}

/// Waits until the target's digest of `big` equals the source's.
async fn wait_digest_equal(
    s: &Servers,
    pipe: &Pipe,
    conn: &mut mysql_async::Conn,
    daemon: &Daemon,
) {
    let expected = source_digest(conn).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let target = target_digest(s, &pipe.db);
        if target.as_ref() == Ok(&expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the target did not catch up: {target:?}\nexpected {expected:?}\n{}",
            tail(&daemon.log_text(), 30)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Each row as `id`, then length and MD5 of every piece, then `note`, from the source.
async fn source_digest(conn: &mut mysql_async::Conn) -> Vec<String> {
    let cols: Vec<String> = PIECES
        .iter()
        .map(|c| format!("CONCAT(LENGTH({c}), ':', MD5({c}))"))
        .collect();
    let sql = format!(
        "SELECT CONCAT_WS(' ', id, {}, note) FROM big ORDER BY id",
        cols.join(", ")
    );
    conn.query(sql).await.expect("source digest")
}

/// The same digest from the target's live rows.
fn target_digest(s: &Servers, db: &str) -> Result<Vec<String>, String> {
    let cols: Vec<String> = PIECES
        .iter()
        .map(|c| format!("concat(toString(length({c})), ':', lower(hex(MD5({c}))))"))
        .collect();
    let text = s.ch_try(&format!(
        "SELECT concat_ws(' ', toString(id), {}, note) FROM `{db}`.big FINAL \
         WHERE _tributary_is_deleted = 0 ORDER BY id FORMAT TSVRaw",
        cols.join(", ")
    ))?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// The daemon's peak resident memory, in MiB.
fn peak_rss_mib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
        .expect("read /proc/PID/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024
}

async fn rotate_binlog(s: &Servers) {
    let mut conn = s.mysql().await;
    s.exec(&mut conn, "FLUSH BINARY LOGS").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_event_over_16_mib_replicates_with_bounded_memory() {
    let Some(s) = servers() else { return };
    let _big = BIG_EVENTS.lock().await;
    let pipe = Pipe::new("bigevent");
    let mut conn = big_table(
        &s,
        &pipe,
        "(1, '', '', '', '', '', 'small'), (2, 'x', 'y', '', '', '', 'other')",
    )
    .await;
    let packet: u64 = conn
        .query_first("SELECT @@max_allowed_packet")
        .await
        .expect("max_allowed_packet")
        .expect("a value");
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));

    // Row 1 grows one 8 MiB piece per statement to 40 MiB: each statement's packet stays
    // under the server's limit, while each UPDATE's event (before and after images) grows
    // past it, to ~80 MiB for the last.
    for (i, c) in PIECES.iter().enumerate() {
        s.exec(
            &mut conn,
            &format!(
                "UPDATE big SET {c} = REPEAT(CHAR({}), {PIECE}) WHERE id = 1",
                65 + i
            ),
        )
        .await;
    }
    // The 40 MiB row updated in place, then ordinary rows after it: all must arrive.
    s.exec(&mut conn, "UPDATE big SET note = 'updated' WHERE id = 1")
        .await;
    s.exec(
        &mut conn,
        "INSERT INTO big VALUES (3, 'after', '', '', '', '', 'after the big events')",
    )
    .await;
    let expected = source_digest(&mut conn).await;
    assert!(
        expected[0].contains(&format!("{PIECE}:")) && expected[0].ends_with("updated"),
        "{expected:?}"
    );
    wait_digest_equal(&s, &pipe, &mut conn, &daemon).await;
    let rss = peak_rss_mib(&daemon);
    let event_mib = (2 * PIECES.len() * PIECE) >> 20;
    eprintln!(
        "big event report: largest event ~{event_mib} MiB (server max_allowed_packet {} MiB), \
         equal; daemon peak RSS {rss} MiB",
        packet >> 20
    );
    // Bounded: the event, its decoded rows and the insert body, not a multiple of the binlog.
    assert!(rss < 1024, "peak RSS {rss} MiB");
    let status = pipe
        .api()
        .get(&format!("/v1/pipes/{}", pipe.name))
        .expect("status");
    assert_eq!(
        status.json()["stalled"],
        serde_json::Value::Null,
        "{}",
        status.body
    );
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    rotate_binlog(&s).await;
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cdc_starts_where_binlog_gtid_pos_is_null() {
    let Some(s) = servers() else { return };
    let _big = BIG_EVENTS.lock().await;
    let mut pipe = Pipe::new("gtidnull");
    pipe.mode = "cdc_only";
    let mut conn = create_db(&s, &pipe).await;
    s.exec(
        &mut conn,
        "CREATE TABLE big (id INT PRIMARY KEY, a LONGBLOB, b LONGBLOB, c LONGBLOB, \
         d LONGBLOB, e LONGBLOB, note VARCHAR(20))",
    )
    .await;
    s.exec(
        &mut conn,
        "INSERT INTO big VALUES (1, '', '', '', '', '', 'x')",
    )
    .await;
    // A 9 MiB row updated in place: an event of ~18 MiB, which the server's own
    // BINLOG_GTID_POS cannot read past.
    s.exec(
        &mut conn,
        &format!("UPDATE big SET a = REPEAT('a', {}) WHERE id = 1", 9 << 20),
    )
    .await;
    s.exec(&mut conn, "UPDATE big SET note = 'y' WHERE id = 1")
        .await;
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .expect("status")
            .expect("a row");
        (row.get(0).expect("file"), row.get(1).expect("pos"))
    };
    let gtid: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
        .await
        .expect("BINLOG_GTID_POS");
    assert_eq!(gtid, Some(None), "the server knows the GTID state here");

    // cdc_only starts at the current position, where the server answers NULL.
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    s.exec(
        &mut conn,
        "INSERT INTO big VALUES (2, 'b', '', '', '', '', 'after start')",
    )
    .await;
    s.exec(&mut conn, "UPDATE big SET note = 'changed' WHERE id = 1")
        .await;
    wait_digest_equal(&s, &pipe, &mut conn, &daemon).await;
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    rotate_binlog(&s).await;
    s.cleanup(&pipe).await;
}

/// The pipe's status from the API.
fn status(pipe: &Pipe) -> serde_json::Value {
    pipe.api()
        .get(&format!("/v1/pipes/{}", pipe.name))
        .expect("status")
        .json()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_pipe_says_so_and_its_lag_grows() {
    let Some(s) = servers() else { return };
    let proxy = Proxy::start(
        s.clickhouse_url
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    );
    let mut pipe = Pipe::new("stall");
    pipe.target_url = Some(format!("http://127.0.0.1:{}", proxy.port));
    let mut conn = create_db(&s, &pipe).await;
    s.exec(&mut conn, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await;
    s.exec(&mut conn, "INSERT INTO t VALUES (1, 1)").await;
    let config = s.config(&pipe, "stall_attempts = 1000\nstall_timeout = \"3s\"\n");
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    pipe.api().wait_for("/readyz", 200, Duration::from_secs(30));

    // ClickHouse unreachable for this pipe only; the source goes on writing.
    proxy.cut(true);
    s.exec(&mut conn, "INSERT INTO t VALUES (2, 2)").await;
    let cut_at = Instant::now();
    let deadline = cut_at + Duration::from_secs(60);
    let mut lags = Vec::new();
    let stalled = loop {
        let st = status(&pipe);
        if let Some(lag) = st["lag_seconds"].as_f64() {
            lags.push(lag);
        }
        if let Some(why) = st["stalled"].as_str() {
            break (why.to_owned(), st);
        }
        assert!(
            Instant::now() < deadline,
            "no stall signal within 60 s: {st}\n{}",
            tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (why, st) = stalled;
    eprintln!(
        "stall report: stalled {:.1} s after the cut: {why}; lags seen {lags:?}",
        cut_at.elapsed().as_secs_f64()
    );
    assert!(why.contains("no change applied"), "{why}");
    assert!(st["last_error"].as_str().is_some(), "{st}");
    assert_eq!(st["state"], "Running", "{st}");
    // The lag keeps growing while nothing is applied, as of each reading, to the millisecond.
    let first = st["lag_seconds"].as_f64().expect("lag while stalled");
    let between = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = status(&pipe)["lag_seconds"].as_f64().expect("lag");
    let waited = between.elapsed().as_secs_f64();
    assert!(
        later - first >= waited - 0.01,
        "lag {first} then {later}, {waited} s apart"
    );
    assert!(
        later.fract() != 0.0 || first.fract() != 0.0,
        "whole seconds only: {first}, {later}"
    );
    let ready = pipe.api().get("/readyz").expect("readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("stalled"), "{}", ready.body);
    let metrics = pipe.api().get("/metrics").expect("metrics").body;
    let gauge = format!("tributary_pipe_stalled{{pipe=\"{}\"}} 1", pipe.name);
    assert!(metrics.contains(&gauge), "no `{gauge}` in\n{metrics}");

    // Reachable again: the rows arrive, the stall clears, the lag falls back.
    proxy.cut(false);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = s.ch_try(&format!(
            "SELECT count() FROM `{}`.t FINAL WHERE _tributary_is_deleted = 0",
            pipe.db
        ));
        let st = status(&pipe);
        let caught_up = rows.as_deref().map(str::trim) == Ok("2")
            && st["stalled"].is_null()
            && st["lag_seconds"].as_f64().is_some_and(|l| l < 5.0);
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover: rows {rows:?}, status {st}\n{}",
            tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    pipe.api().wait_for("/readyz", 200, Duration::from_secs(30));
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    s.cleanup(&pipe).await;
}
