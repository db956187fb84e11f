//! The initial load no longer races binlog retention: CDC reads the binlog from the
//! snapshot's position from the first second while the tables load beside it, so a source
//! that keeps only a few seconds of binlog, written to all through a 2M-row load, ends equal
//! to the target row by row; across two kill -9s during the load too; and with a source user
//! that has no `RELOAD` privilege, without any global read lock.
//!
//! Tests here purge the shared server's binary logs: they run one at a time, and a purge is
//! held while the daemon is down (what the retention has to cover is the longest outage).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use support::{servers, wait_until, Daemon, Pipe, Servers};
use tokio::sync::Mutex;

const ROWS: u64 = 2_000_000;
const WITHIN: Duration = Duration::from_secs(300);

/// One purging test at a time.
static PURGING: Mutex<()> = Mutex::const_new(());

/// Creates `big` with `ROWS` rows in the pipe's database.
async fn big_table(s: &Servers, db: &str) {
    let mut conn = s.mysql().await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE DATABASE `{db}`; USE `{db}`;
             CREATE TABLE big (id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(64), pad VARCHAR(32)) ENGINE=InnoDB;
             INSERT INTO big SELECT seq, seq % 1000, MD5(seq), 'pad' FROM seq_1_to_{ROWS};"
        ),
    )
    .await;
}

/// Background work on the source: about 500 changes a second to `big` (updates, inserts
/// beyond `ROWS`, deletes, three to a transaction) and, every 5 s while `daemon_up`, `FLUSH BINARY LOGS` and a purge of every binary log last
/// written more than 3 s ago: the binlog keeps a few seconds, no more.
struct Background {
    stop: Arc<AtomicBool>,
    daemon_up: Arc<AtomicBool>,
    changes: Arc<AtomicU64>,
    purges: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    async fn start(s: &Servers, db: &str) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let daemon_up = Arc::new(AtomicBool::new(true));
        let changes = Arc::new(AtomicU64::new(0));
        let purges = Arc::new(AtomicU64::new(0));
        let mut writer = s.mysql().await;
        s.exec(&mut writer, &format!("USE `{db}`")).await;
        let mut purger = s.mysql().await;
        let writes = {
            let (stop, changes) = (Arc::clone(&stop), Arc::clone(&changes));
            tokio::spawn(async move {
                // A steady write load, not a flood: what the lag is measured against.
                let mut pace = tokio::time::interval(Duration::from_millis(6));
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    pace.tick().await;
                    n += 1;
                    let id = (n * 7919) % ROWS + 1;
                    let sql = format!(
                        "START TRANSACTION; UPDATE big SET k = k + 1, c = 'changed {n}' WHERE id = {id}; \
                         INSERT INTO big VALUES ({}, {n}, 'new', NULL); DELETE FROM big WHERE id = {}; COMMIT",
                        ROWS + n,
                        (id * 31) % ROWS + 1
                    );
                    writer.query_drop(sql).await.expect("write to big");
                    changes.fetch_add(3, Ordering::Relaxed);
                }
            })
        };
        let purge = {
            let (stop, up, purges) = (
                Arc::clone(&stop),
                Arc::clone(&daemon_up),
                Arc::clone(&purges),
            );
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    if !up.load(Ordering::Relaxed) {
                        continue;
                    }
                    purger
                        .query_drop("FLUSH BINARY LOGS")
                        .await
                        .expect("flush binary logs");
                    // A file a dump thread is reading is kept (and said so): not an error here.
                    let purge = "PURGE BINARY LOGS BEFORE NOW() - INTERVAL 3 SECOND";
                    let _ = purger.query_drop(purge).await;
                    purges.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Background {
            stop,
            daemon_up,
            changes,
            purges,
            tasks: vec![writes, purge],
        }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("background task");
        }
        (
            self.changes.load(Ordering::Relaxed),
            self.purges.load(Ordering::Relaxed),
        )
    }
}

/// `big` in the source and the target, compared row by row in key ranges; `None` if equal.
async fn diff(s: &Servers, db: &str) -> Option<String> {
    let mut conn = s.mysql().await;
    let max: Option<u64> = conn
        .query_first(format!("SELECT MAX(id) FROM `{db}`.big"))
        .await
        .expect("max id");
    let max = max.unwrap_or(0);
    let step = 250_000;
    let mut lo = 0;
    while lo <= max {
        let hi = lo + step;
        let source: Vec<(u64, i64, Option<String>, Option<String>)> = conn
            .query(format!(
                "SELECT id, k, c, pad FROM `{db}`.big WHERE id >= {lo} AND id < {hi} ORDER BY id"
            ))
            .await
            .expect("source rows");
        let source: Vec<String> = source
            .into_iter()
            .map(|(id, k, c, pad)| {
                let text = |v: Option<String>| v.unwrap_or_else(|| "\\N".into());
                format!("{id}\t{k}\t{}\t{}", text(c), text(pad))
            })
            .collect();
        let target = s
            .ch_try(&format!(
                "SELECT id, k, c, pad FROM `{db}`.big FINAL WHERE _tributary_is_deleted = 0 \
                 AND id >= {lo} AND id < {hi} ORDER BY id"
            ))
            .unwrap_or_default();
        let target: Vec<&str> = target.lines().collect();
        if source.len() != target.len() || source.iter().zip(&target).any(|(a, b)| a != b) {
            let first = source
                .iter()
                .zip(&target)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("source {a:?}, target {b:?}"));
            return Some(format!(
                "ids {lo}..{hi}: {} source rows, {} target rows; first difference: {first:?}",
                source.len(),
                target.len()
            ));
        }
        lo = hi;
    }
    None
}

/// Waits until `big` is equal in the source and the target.
async fn wait_equal(s: &Servers, db: &str, daemon: &Daemon) {
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let Some(difference) = diff(s, db).await else {
            return;
        };
        assert!(
            std::time::Instant::now() < deadline,
            "{difference}\n{}",
            support::tail(&daemon.log_text(), 30)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A user with what the README lists, without `RELOAD`.
async fn user_without_reload(s: &Servers, pipe: &Pipe) -> String {
    let user = format!("u{}", &pipe.db[pipe.db.len() - 8..]);
    let mut conn = s.mysql().await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'secret'; \
             GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'"
        ),
    )
    .await;
    let url = url::Url::parse(&s.mariadb_url).expect("url");
    format!(
        "mysql://{user}:secret@{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(3306)
    )
}

/// A 2M-row load with writes and a purge every 5 s, by a user without `RELOAD`: the pipe
/// replicates from the first second (lag stays small), takes no global lock, and ends
/// Running and equal.
#[tokio::test(flavor = "multi_thread")]
async fn a_load_survives_a_binlog_purged_every_five_seconds() {
    let Some(s) = servers() else { return };
    let _one = PURGING.lock().await;
    let mut pipe = Pipe::new("purge");
    big_table(&s, &pipe.db).await;
    pipe.source_url = Some(user_without_reload(&s, &pipe).await);
    // One partition at a time: the load outlasts several purges, which a pipe that starts
    // CDC only after its load does not survive.
    pipe.rows_per_partition = 5_000;
    pipe.parallelism = 1;
    let background = Background::start(&s, &pipe.db).await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Snapshot", WITHIN);
    let purged_before = background.purges.load(Ordering::Relaxed);
    // While it loads: replication runs (a position and a lag are shown) and no session holds
    // or waits for a global read lock.
    let mut conn = s.mysql().await;
    let mut max_lag: f64 = 0.0;
    let mut seen_position = false;
    let mut locks = Vec::new();
    while s.state(&pipe) == "Snapshot" {
        let status = pipe.status();
        if let Some(lag) = status["lag_seconds"].as_f64() {
            max_lag = max_lag.max(lag);
        }
        seen_position |= status["position"].is_string();
        let flush: Vec<String> = conn
            .query(
                "SELECT INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE 'FLUSH TABLES%'",
            )
            .await
            .expect("processlist");
        locks.extend(flush);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let purged_during = background.purges.load(Ordering::Relaxed) - purged_before;
    assert!(seen_position, "no CDC position shown during the load");
    assert!(
        locks.is_empty(),
        "global read locks during the load: {locks:?}"
    );
    wait_until("the pipe did not reach Running", WITHIN, &daemon, || {
        s.state(&pipe) == "Running"
    })
    .await;
    let (changes, purges) = background.stop().await;
    wait_equal(&s, &pipe.db, &daemon).await;
    println!(
        "2M-row load with {changes} changes and {purges} purges ({purged_during} during the load): max lag during the load {max_lag:.1} s"
    );
    assert!(
        purged_during >= 2,
        "only {purged_during} purges ran during the load: it proves nothing"
    );
    assert_eq!(s.state(&pipe), "Running");
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// The same with two kill -9s during the load: it ends equal, and partitions recorded done
/// before a kill stay done (only those in flight are loaded again).
#[tokio::test(flavor = "multi_thread")]
async fn a_load_killed_twice_under_purges_ends_equal() {
    let Some(s) = servers() else { return };
    let _one = PURGING.lock().await;
    let mut pipe = Pipe::new("purgekill");
    big_table(&s, &pipe.db).await;
    pipe.rows_per_partition = 50_000;
    pipe.parallelism = 2;
    // A restart waits for the killed instance's lease to expire: the outage the binlog must
    // outlive, kept short.
    let config = s.config(&pipe, "lease_period = \"3s\"\n");
    let background = Background::start(&s, &pipe.db).await;
    let done_partitions = || {
        s.ch_try(&format!(
            "SELECT idx FROM `{}_state`.snapshot_partitions FINAL WHERE pipe = '{}' AND done = 1 ORDER BY idx",
            pipe.db, pipe.name
        ))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let mut daemon = Daemon::start(&config);
    for _ in 0..2 {
        let before = done_partitions().len();
        wait_until("no partition was loaded", WITHIN, &daemon, || {
            done_partitions().len() > before
        })
        .await;
        background.daemon_up.store(false, Ordering::Relaxed);
        daemon.kill9();
        let done = done_partitions();
        daemon = Daemon::start(&config);
        // Purging resumes once the restarted daemon replicates again: the outage is over.
        wait_until(
            "the restarted daemon did not replicate",
            WITHIN,
            &daemon,
            || {
                let status = pipe.status();
                status["role"] == "owner" && status["state"] == "Snapshot"
            },
        )
        .await;
        background.daemon_up.store(true, Ordering::Relaxed);
        let still: Vec<String> = done_partitions();
        assert!(
            done.iter().all(|p| still.contains(p)),
            "partitions done before the kill were reset: {done:?} then {still:?}"
        );
    }
    wait_until("the pipe did not reach Running", WITHIN, &daemon, || {
        s.state(&pipe) == "Running"
    })
    .await;
    background.stop().await;
    wait_equal(&s, &pipe.db, &daemon).await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}
