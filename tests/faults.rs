//! Fault injection on the real servers: the replication connection killed, MariaDB restarted
//! and ClickHouse stopped under a write load, the daemon killed at random moments. After each,
//! the pipe continues and the target equals the source with no duplicate live rows.
//!
//! These tests disturb the shared servers, so they run one at a time (a lock), in a test binary
//! of their own (test binaries run one after another). Restarting a server needs the local
//! test environment (`scripts/test-env`); with external servers those tests are skipped.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use support::workload::{Workload, DDL, TABLES};
use support::{servers, Daemon, Pipe, Servers};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());
const EQUAL_WITHIN: Duration = Duration::from_secs(120);

fn local_env() -> bool {
    std::env::var("TRIBUTARY_TEST_MARIADB_PIDFILE").is_ok()
}

fn test_env(action: &str) {
    let status = Command::new("scripts/test-env")
        .arg(action)
        .status()
        .expect("run scripts/test-env");
    assert!(status.success(), "scripts/test-env {action} failed");
}

async fn start(s: &Servers, prefix: &str) -> (Pipe, mysql_async::Conn, Daemon) {
    let pipe = Pipe::new(prefix);
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    s.exec(&mut conn, DDL).await;
    Workload::new(1).run(&mut conn, 100).await;
    let daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", Duration::from_secs(60));
    (pipe, conn, daemon)
}

/// Runs `transactions` workload transactions in the background on the pipe's database,
/// reconnecting when the server goes away (statements that failed are simply lost at the
/// source too, so source and target still agree).
fn background_load(
    s: &Servers,
    pipe: &Pipe,
    seed: u64,
    transactions: usize,
) -> tokio::task::JoinHandle<()> {
    let (url, db) = (s.mariadb_url.clone(), pipe.db.clone());
    tokio::spawn(async move {
        let mut workload = Workload::new(seed);
        let mut done = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while done < transactions && Instant::now() < deadline {
            let Ok(mut c) =
                mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url")).await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            if c.query_drop(format!("USE `{db}`")).await.is_err() {
                continue;
            }
            while done < transactions {
                if workload.try_run(&mut c, 1).await.is_err() {
                    break;
                }
                done += 1;
            }
        }
    })
}

async fn finish(s: &Servers, pipe: &Pipe, mut daemon: Daemon, what: &str) {
    s.wait_equal(&pipe.db, TABLES, EQUAL_WITHIN, &daemon).await;
    for t in TABLES {
        s.assert_no_duplicates(&pipe.db, t);
    }
    let rows = s.ch(&format!(
        "SELECT sum(c) FROM (SELECT count() AS c FROM `{0}`.orders FINAL WHERE _tributary_is_deleted = 0 \
         UNION ALL SELECT count() FROM `{0}`.items FINAL WHERE _tributary_is_deleted = 0 \
         UNION ALL SELECT count() FROM `{0}`.tags FINAL WHERE _tributary_is_deleted = 0)",
        pipe.db
    ));
    eprintln!(
        "fault report: {what}: equal after recovery, {} live rows compared, no duplicates",
        rows.trim()
    );
    assert_eq!(
        daemon.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );
    s.cleanup(pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_replication_connection_is_resumed() {
    let Some(s) = servers() else { return };
    let _serial = SERIAL.lock().await;
    let (pipe, mut conn, daemon) = start(&s, "killconn").await;
    let load = background_load(&s, &pipe, 11, 600);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Wait for the (re)connected dump, then kill it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let ids = loop {
            let ids: Vec<u64> = conn
                .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
                .await
                .expect("processlist");
            if !ids.is_empty() {
                break ids;
            }
            assert!(
                Instant::now() < deadline,
                "the pipe did not reconnect:\n{}",
                daemon.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for id in ids {
            let _ = conn.query_drop(format!("KILL {id}")).await;
        }
    }
    load.await.expect("load");
    finish(
        &s,
        &pipe,
        daemon,
        "replication connection killed 3 times under load",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_restart_under_load_is_survived() {
    let Some(s) = servers() else { return };
    if !local_env() {
        eprintln!("skipped: restarting MariaDB needs the local test environment");
        return;
    }
    let _serial = SERIAL.lock().await;
    let (pipe, conn, daemon) = start(&s, "restartdb").await;
    drop(conn);
    let load = background_load(&s, &pipe, 12, 500);
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(|| test_env("restart-mariadb"))
        .await
        .expect("restart");
    load.await.expect("load");
    finish(&s, &pipe, daemon, "MariaDB restarted under load").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_outage_under_load_is_survived() {
    let Some(s) = servers() else { return };
    if !local_env() {
        eprintln!("skipped: stopping ClickHouse needs the local test environment");
        return;
    }
    let _serial = SERIAL.lock().await;
    let (pipe, conn, daemon) = start(&s, "chdown").await;
    drop(conn);
    let load = background_load(&s, &pipe, 13, 500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(|| {
        test_env("stop-clickhouse");
        std::thread::sleep(Duration::from_secs(10));
        test_env("start-clickhouse");
    })
    .await
    .expect("outage");
    load.await.expect("load");
    finish(&s, &pipe, daemon, "ClickHouse stopped for 10 s under load").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_killed_at_ten_random_moments_recovers_every_time() {
    let Some(s) = servers() else { return };
    let _serial = SERIAL.lock().await;
    let (pipe, conn, mut daemon) = start(&s, "kill10").await;
    drop(conn);
    let config = s.config(&pipe, "");
    for round in 0..10u64 {
        let load = background_load(&s, &pipe, 100 + round, 150);
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..700))).await;
        daemon.kill9();
        load.await.expect("load");
        daemon = Daemon::start(&config);
        let mut check = s.mysql().await;
        s.exec(&mut check, &format!("USE `{}`", pipe.db)).await;
        s.wait_equal(&pipe.db, TABLES, EQUAL_WITHIN, &daemon).await;
        for t in TABLES {
            s.assert_no_duplicates(&pipe.db, t);
        }
        eprintln!("fault report: kill -9 #{}: equal, no duplicates", round + 1);
    }
    finish(
        &s,
        &pipe,
        daemon,
        "daemon killed with SIGKILL at 10 random moments",
    )
    .await;
}

/// Ends the lingering dump threads, then purges until only the newest binlog is left.
async fn purge_all_but_the_newest_binlog(s: &Servers, conn: &mut mysql_async::Conn) {
    s.exec(conn, "FLUSH BINARY LOGS").await;
    // A stopped dump thread may linger on the server until its next write, and a binlog in use
    // is not purged: end it, then purge until only the newest file is left.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dumps: Vec<u64> = conn
            .query(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
            )
            .await
            .expect("processlist");
        for id in dumps {
            let _ = conn.query_drop(format!("KILL {id}")).await;
        }
        let logs: Vec<mysql_async::Row> =
            conn.query("SHOW BINARY LOGS").await.expect("binary logs");
        let last: String = logs.last().and_then(|r| r.get(0)).expect("a binlog");
        if logs.len() == 1 {
            return;
        }
        s.exec(conn, &format!("PURGE BINARY LOGS TO '{last}'"))
            .await;
        assert!(Instant::now() < deadline, "binlogs could not be purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn failures(s: &Servers, pipe: &Pipe) -> usize {
    s.ch(&format!(
        "SELECT count() FROM `{}_state`.pipe_state WHERE to_state = 'Failed'",
        pipe.db
    ))
    .trim()
    .parse()
    .expect("count")
}

fn wait_for_failures(s: &Servers, pipe: &Pipe, count: usize, daemon: &Daemon) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while failures(s, pipe) < count {
        assert!(
            Instant::now() < deadline,
            "pipe did not fail (state {})\n{}",
            s.state(pipe),
            support::tail(&daemon.log_text(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    s.ch(&format!(
        "SELECT reason FROM `{}_state`.pipe_state WHERE to_state = 'Failed' ORDER BY seq DESC LIMIT 1",
        pipe.db
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn purged_binlog_fails_with_resync_required_and_resync_recovers() {
    let Some(s) = servers() else { return };
    let _serial = SERIAL.lock().await;
    let (pipe, mut conn, mut daemon) = start(&s, "purged").await;
    // Paused, the pipe reads no binlog, so nothing holds the files it needs: changes it has
    // not read are purged under it, and the periodic check notices.
    let answer = pipe
        .api()
        .post(&format!("/v1/pipes/{}/pause", pipe.name), "")
        .expect("pause");
    assert_eq!(answer.status, 200, "{answer:?}");
    s.wait_for_state(&pipe, "Paused", Duration::from_secs(30));
    Workload::new(21).run(&mut conn, 100).await;
    purge_all_but_the_newest_binlog(&s, &mut conn).await;
    let reason = wait_for_failures(&s, &pipe, 1, &daemon);
    for expected in [
        "resync required",
        "oldest binlog on the server is",
        "domain 0 needs the events after",
    ] {
        assert!(reason.contains(expected), "{expected:?} not in {reason}");
    }
    eprintln!(
        "fault report: binlog purged under a paused pipe: Failed with `{}`",
        reason.trim()
    );

    // A restart checks again before replicating: Failed again, same cause.
    daemon.terminate(Duration::from_secs(30));
    let daemon = Daemon::start(&s.config(&pipe, ""));
    let reason = wait_for_failures(&s, &pipe, 2, &daemon);
    assert!(reason.contains("resync required"), "{reason}");
    eprintln!(
        "fault report: restarted on the purged checkpoint: Failed with `{}`",
        reason.trim()
    );

    // resync from Failed: reloaded, swapped in, replicating again, equal.
    let answer = pipe
        .api()
        .post(&format!("/v1/pipes/{}/resync", pipe.name), "")
        .expect("resync");
    assert_eq!(answer.status, 200, "{answer:?}");
    s.wait_for_state(&pipe, "Running", Duration::from_secs(120));
    Workload::new(22).run(&mut conn, 50).await;
    finish(&s, &pipe, daemon, "binlog purged, then resync").await;
}

/// A new primary has the same GTIDs under other binlog file names: a checkpoint whose file the
/// server never had resumes by its GTID state (by file offset it could only fail).
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_in_a_binlog_file_the_server_never_had_resumes_by_gtid() {
    let Some(s) = servers() else { return };
    let _serial = SERIAL.lock().await;
    let (pipe, mut conn, mut daemon) = start(&s, "gtid").await;
    Workload::new(31).run(&mut conn, 100).await;
    s.wait_equal(&pipe.db, TABLES, EQUAL_WITHIN, &daemon).await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    Workload::new(32).run(&mut conn, 100).await;
    let state = format!("`{}_state`.checkpoints", pipe.db);
    s.ch(&format!(
        "INSERT INTO {state} (pipe, seq, file, pos, gtid, next_version) \
         SELECT pipe, seq + 1, 'elsewhere-bin.000042', 4, gtid, next_version FROM {state} \
         ORDER BY seq DESC LIMIT 1"
    ));
    let gtid = s.ch(&format!(
        "SELECT gtid FROM {state} ORDER BY seq DESC LIMIT 1"
    ));
    assert!(!gtid.trim().is_empty(), "the checkpoint has no GTID state");
    let daemon = Daemon::start(&s.config(&pipe, ""));
    background_load(&s, &pipe, 33, 200).await.expect("load");
    s.wait_equal(&pipe.db, TABLES, EQUAL_WITHIN, &daemon).await;
    let log = daemon.log_text();
    assert!(
        log.contains("elsewhere-bin.000042") && log.contains("by=GTID"),
        "{}",
        support::tail(&log, 30)
    );
    finish(
        &s,
        &pipe,
        daemon,
        &format!("checkpoint file renamed, resumed by GTID {}", gtid.trim()),
    )
    .await;
}
