//! Schema evolution: DDL in the binlog applied to ClickHouse in order, interleaved with row
//! changes, compared with the source after every step; a kill -9 between a DDL and the rows
//! after it; a change the target cannot follow isolates only its table, and a resync repairs it.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;

use support::{servers, Daemon, Kind, Pipe, Servers, Table};

const WITHIN: Duration = Duration::from_secs(60);

const OTHER: Table<'static> = Table {
    name: "other",
    key: &["id"],
    columns: &[("id", Kind::Int), ("v", Kind::Int)],
};

async fn equal(s: &Servers, pipe: &Pipe, daemon: &Daemon, tables: &[Table<'_>]) {
    equal_within(s, pipe, daemon, tables, WITHIN).await;
}

/// For tables reloaded one small partition at a time (slow on purpose).
const RELOADED_WITHIN: Duration = Duration::from_secs(180);

async fn equal_within(
    s: &Servers,
    pipe: &Pipe,
    daemon: &Daemon,
    tables: &[Table<'_>],
    within: Duration,
) {
    s.wait_equal(&pipe.db, tables, within, daemon).await;
    for t in tables {
        s.assert_no_duplicates(&pipe.db, t);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_is_followed_in_binlog_order() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("ddl");
    let mut conn = s.mysql().await;
    let db = pipe.db.clone();
    s.exec(&mut conn, &format!("CREATE DATABASE `{db}`")).await;
    s.exec(&mut conn, &format!("USE `{db}`")).await;
    s.exec(
        &mut conn,
        "CREATE TABLE evolve (id INT PRIMARY KEY, a INT, b VARCHAR(20));
         INSERT INTO evolve VALUES (1, 10, 'x'), (2, 20, 'y'), (3, NULL, NULL);
         CREATE TABLE other (id INT PRIMARY KEY, v INT);
         INSERT INTO other VALUES (1, 1);",
    )
    .await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", WITHIN);

    // ADD COLUMN with a default and a position, then rows that use it.
    s.exec(&mut conn, "ALTER TABLE evolve ADD COLUMN c DECIMAL(10,2) NOT NULL DEFAULT 1.50 AFTER a, ALGORITHM=INPLACE, LOCK=NONE").await;
    s.exec(
        &mut conn,
        "INSERT INTO evolve VALUES (4, 40, 2.25, 'z'); UPDATE evolve SET c = 9.99 WHERE id = 1",
    )
    .await;
    let step1 = Table {
        name: "evolve",
        key: &["id"],
        columns: &[
            ("id", Kind::Int),
            ("a", Kind::Int),
            ("c", Kind::Decimal(2)),
            ("b", Kind::Text),
        ],
    };
    equal(&s, &pipe, &daemon, &[Table { ..step1 }, OTHER]).await;

    // Several specifications in one ALTER (version comment included), in one transaction's
    // neighbourhood: DROP, ADD FIRST, rename with widening (CHANGE).
    s.exec(
        &mut conn,
        "/*!40000 ALTER TABLE evolve DROP COLUMN b, ADD COLUMN d DATETIME(3) NULL FIRST */",
    )
    .await;
    s.exec(&mut conn, "ALTER TABLE `evolve` CHANGE COLUMN a a2 BIGINT")
        .await;
    s.exec(&mut conn, "BEGIN; INSERT INTO evolve (id, a2, c, d) VALUES (5, 9000000000, 0, '2024-01-02 03:04:05.678'); UPDATE evolve SET a2 = -1 WHERE id = 2; DELETE FROM evolve WHERE id = 3; COMMIT").await;
    let step2 = Table {
        name: "evolve",
        key: &["id"],
        columns: &[
            ("d", Kind::DateTime(3)),
            ("id", Kind::Int),
            ("a2", Kind::Int),
            ("c", Kind::Decimal(2)),
        ],
    };
    equal(&s, &pipe, &daemon, &[Table { ..step2 }, OTHER]).await;

    // Nullability and precision widened in place; TRUNCATE empties the target in order.
    s.exec(
        &mut conn,
        "ALTER TABLE evolve MODIFY COLUMN c DECIMAL(14,2) NULL",
    )
    .await;
    s.exec(
        &mut conn,
        "INSERT INTO evolve (id, a2, c) VALUES (6, 6, NULL), (7, 7, 123456789012.34)",
    )
    .await;
    equal(&s, &pipe, &daemon, &[Table { ..step2 }, OTHER]).await;
    s.exec(
        &mut conn,
        "TRUNCATE TABLE evolve; INSERT INTO evolve (id, a2, c) VALUES (100, 1, 1)",
    )
    .await;
    equal(&s, &pipe, &daemon, &[Table { ..step2 }, OTHER]).await;

    // A table created while running is replicated from then on, and followed through a rename.
    s.exec(&mut conn, "CREATE TABLE fresh (id INT PRIMARY KEY, s TEXT CHARACTER SET latin1); INSERT INTO fresh VALUES (1, 'café'), (2, NULL)").await;
    let fresh = Table {
        name: "fresh",
        key: &["id"],
        columns: &[("id", Kind::Int), ("s", Kind::Text)],
    };
    equal(&s, &pipe, &daemon, &[fresh, OTHER]).await;
    s.exec(
        &mut conn,
        "RENAME TABLE fresh TO fresh2; INSERT INTO fresh2 VALUES (3, 'après')",
    )
    .await;
    let fresh2 = Table {
        name: "fresh2",
        key: &["id"],
        columns: &[("id", Kind::Int), ("s", Kind::Text)],
    };
    equal(&s, &pipe, &daemon, &[fresh2, OTHER]).await;
    // CREATE TABLE … LIKE a replicated table: the copy has its columns and key.
    s.exec(
        &mut conn,
        "CREATE TABLE other_copy LIKE other; INSERT INTO other_copy VALUES (1, 10), (2, 20);
         UPDATE other_copy SET v = 21 WHERE id = 2",
    )
    .await;
    let copy = Table {
        name: "other_copy",
        ..OTHER
    };
    equal(&s, &pipe, &daemon, &[copy, OTHER]).await;

    // kill -9, then a DDL and rows written while the daemon is down: the restart decodes the
    // rows before the DDL with the old definition and the rows after with the new one.
    daemon.kill9();
    s.exec(
        &mut conn,
        "INSERT INTO evolve (id, a2, c) VALUES (200, 2, 2)",
    )
    .await;
    s.exec(
        &mut conn,
        "ALTER TABLE evolve ADD COLUMN e INT NOT NULL DEFAULT 7",
    )
    .await;
    s.exec(&mut conn, "INSERT INTO evolve (id, a2, c, e) VALUES (201, 3, 3, 8); UPDATE evolve SET e = 9 WHERE id = 100").await;
    let daemon = Daemon::start(&config);
    let step3 = Table {
        name: "evolve",
        key: &["id"],
        columns: &[
            ("d", Kind::DateTime(3)),
            ("id", Kind::Int),
            ("a2", Kind::Int),
            ("c", Kind::Decimal(2)),
            ("e", Kind::Int),
        ],
    };
    equal(&s, &pipe, &daemon, &[Table { ..step3 }, OTHER]).await;

    // A primary key change cannot be followed in place: `evolve` is isolated, `other` keeps
    // replicating, and `evolve` is rebuilt from a snapshot once CDC has passed the change.
    let versions = |s: &Servers| {
        s.ch(&format!(
            "SELECT groupArray(_tributary_version) FROM (SELECT _tributary_version FROM `{db}`.other FINAL ORDER BY id)"
        ))
    };
    s.exec(
        &mut conn,
        "ALTER TABLE evolve DROP PRIMARY KEY, ADD PRIMARY KEY (id, a2)",
    )
    .await;
    s.exec(
        &mut conn,
        "INSERT INTO other VALUES (2, 2); INSERT INTO evolve (id, a2, c) VALUES (300, 3, 3)",
    )
    .await;
    equal(&s, &pipe, &daemon, &[OTHER]).await;
    let other_before = versions(&s);
    let step4 = Table {
        name: "evolve",
        key: &["id", "a2"],
        columns: &[
            ("d", Kind::DateTime(3)),
            ("id", Kind::Int),
            ("a2", Kind::Int),
            ("c", Kind::Decimal(2)),
            ("e", Kind::Int),
        ],
    };
    s.exec(
        &mut conn,
        "INSERT INTO evolve (id, a2, c) VALUES (400, 4, 4)",
    )
    .await;
    equal(&s, &pipe, &daemon, &[step4, OTHER]).await;
    let reasons = s.ch(&format!(
        "SELECT reason FROM `{db}_state`.table_isolation WHERE table_name = '{db}.evolve' ORDER BY at"
    ));
    assert!(
        reasons.contains("ALTER TABLE evolve DROP PRIMARY KEY")
            && reasons.contains("rebuilt from a snapshot"),
        "{reasons}"
    );
    let order_by = s.ch(&format!(
        "SELECT sorting_key FROM system.tables WHERE database = '{db}' AND name = 'evolve'"
    ));
    assert_eq!(
        order_by.trim(),
        "id, a2",
        "the target's ORDER BY follows the key"
    );
    assert_eq!(versions(&s), other_before, "only evolve was reloaded");
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ddl_the_target_cannot_take_isolates_only_its_table_until_its_resync() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("ddlbad");
    let mut conn = s.mysql().await;
    let db = pipe.db.clone();
    s.exec(&mut conn, &format!("CREATE DATABASE `{db}`")).await;
    s.exec(&mut conn, &format!("USE `{db}`")).await;
    s.exec(
        &mut conn,
        "CREATE TABLE weird (id INT PRIMARY KEY, a INT); CREATE TABLE other (id INT PRIMARY KEY, v INT);
         INSERT INTO weird VALUES (1, 1); INSERT INTO other VALUES (1, 1);",
    )
    .await;
    let config = s.config(&pipe, "");
    let daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", WITHIN);
    // A column the mapping refuses (swe7 text: the one charset not converted).
    s.exec(
        &mut conn,
        "ALTER TABLE weird ADD COLUMN s VARCHAR(5) CHARACTER SET swe7",
    )
    .await;
    s.exec(
        &mut conn,
        "INSERT INTO weird (id, a) VALUES (2, 2); INSERT INTO other VALUES (2, 2)",
    )
    .await;
    equal(&s, &pipe, &daemon, &[OTHER]).await;
    let status = pipe
        .api()
        .get(&format!("/v1/pipes/{}", pipe.name))
        .expect("status")
        .json();
    let error = status["tables"][format!("{db}.weird")]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("ALTER TABLE weird ADD COLUMN s VARCHAR(5) CHARACTER SET swe7")
            && error.contains("swe7"),
        "{status}"
    );
    assert_eq!(status["state"], "Running");
    let isolated = s.ch(&format!(
        "SELECT count() FROM `{db}_state`.table_isolation WHERE reason != ''"
    ));
    assert_eq!(isolated.trim(), "1");

    // The operator takes the column out again; `tributary tables resync` reloads the isolated
    // table with its definition now and replicates it again.
    s.exec(&mut conn, "ALTER TABLE weird DROP COLUMN s").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["tables", "resync", &pipe.name, &format!("{db}.weird")])
        .args(["--api", &pipe.api_url()])
        .output()
        .expect("run tributary tables resync");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.exec(
        &mut conn,
        "INSERT INTO weird (id, a) VALUES (3, 3); UPDATE weird SET a = 10 WHERE id = 1",
    )
    .await;
    let weird = Table {
        name: "weird",
        key: &["id"],
        columns: &[("id", Kind::Int), ("a", Kind::Int)],
    };
    equal(&s, &pipe, &daemon, &[weird, OTHER]).await;
    assert_eq!(
        isolated_tables(&s, &db),
        "0",
        "still isolated after its resync"
    );
    s.cleanup(&pipe).await;
}

/// DDL on a table while its snapshot runs: a column added is followed by CDC; a column dropped
/// breaks the table's load, which is isolated, then reloaded with the new definition once
/// replication has passed the change. The table ends equal, the other one was never stopped.
#[tokio::test(flavor = "multi_thread")]
async fn ddl_during_the_snapshot_of_the_same_table_ends_with_a_correct_table() {
    let Some(s) = servers() else { return };
    let pipe = slow_pipe("ddlsnap");
    let db = pipe.db.clone();
    let mut conn = create(&s, &pipe, "CREATE TABLE big (id INT PRIMARY KEY, a INT, x VARCHAR(20), pad CHAR(60));
         INSERT INTO big SELECT seq, seq % 97, CONCAT('x', seq), REPEAT('p', 60) FROM seq_1_to_100000;
         CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO other VALUES (1, 1);").await;
    let daemon = Daemon::start(&s.config(&pipe, ""));
    let api = pipe.api();
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let status = api
            .get(&format!("/v1/pipes/{}", pipe.name))
            .map(|a| a.json())
            .unwrap_or_default();
        let done = status["tables"][format!("{db}.big")]["rows_done"]
            .as_u64()
            .unwrap_or(0);
        if done > 0 {
            assert!(done < 75_000, "the load was too fast to be changed under");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the load of big did not start: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.exec(
        &mut conn,
        "ALTER TABLE big ADD COLUMN c INT NOT NULL DEFAULT 7;
         UPDATE big SET c = 1, a = a + 1 WHERE id % 1000 = 0;
         ALTER TABLE big DROP COLUMN x;
         INSERT INTO big (id, a, pad, c) VALUES (300000, 1, 'new', 3);
         DELETE FROM big WHERE id % 5000 = 1;
         INSERT INTO other VALUES (2, 2);",
    )
    .await;
    const BIG: Table<'static> = Table {
        name: "big",
        key: &["id"],
        columns: &[
            ("id", Kind::Int),
            ("a", Kind::Int),
            ("pad", Kind::Text),
            ("c", Kind::Int),
        ],
    };
    equal_within(&s, &pipe, &daemon, &[BIG, OTHER], RELOADED_WITHIN).await;
    let reasons = s.ch(&format!(
        "SELECT reason FROM `{db}_state`.table_isolation WHERE table_name = '{db}.big' ORDER BY at"
    ));
    assert!(
        reasons.contains("changed in the source while it was loaded"),
        "the load was not interrupted by the change: {reasons:?}"
    );
    assert_eq!(isolated_tables(&s, &db), "0", "{reasons}");
    // Replicated again after its reload.
    s.exec(&mut conn, "UPDATE big SET c = 99 WHERE id = 2")
        .await;
    equal(&s, &pipe, &daemon, &[BIG, OTHER]).await;
    s.cleanup(&pipe).await;
}

/// Rows whose TABLE_MAP disagrees with the stored definition (a DDL made with the binlog off)
/// are never decoded: only their table is isolated, the other goes on, and a table resync
/// repairs it.
#[tokio::test(flavor = "multi_thread")]
async fn rows_that_do_not_match_the_definition_isolate_only_their_table() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("rowmap");
    let db = pipe.db.clone();
    let mut conn = create(
        &s,
        &pipe,
        "CREATE TABLE drifted (id INT PRIMARY KEY, v INT, s VARCHAR(10));
         CREATE TABLE other (id INT PRIMARY KEY, v INT);
         INSERT INTO drifted VALUES (1, 1, 'a'); INSERT INTO other VALUES (1, 1);",
    )
    .await;
    let daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    // Column names are in the binlog only with full row metadata (global, restored below).
    let previous: String = conn
        .query_first("SELECT @@global.binlog_row_metadata")
        .await
        .expect("binlog_row_metadata")
        .expect("a value");
    s.exec(&mut conn, "SET GLOBAL binlog_row_metadata = 'FULL'")
        .await;
    // As an online schema tool or a hand fix might: the DDL never reaches the binlog, only
    // rows of the new shape do.
    s.exec(
        &mut conn,
        "SET SESSION sql_log_bin = 0; ALTER TABLE drifted RENAME COLUMN v TO w; SET SESSION sql_log_bin = 1;
         INSERT INTO drifted VALUES (2, 2, 'b'); INSERT INTO other VALUES (2, 2);",
    )
    .await;
    equal(&s, &pipe, &daemon, &[OTHER]).await;
    let api = pipe.api();
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let status = api
            .get(&format!("/v1/pipes/{}", pipe.name))
            .expect("status")
            .json();
        if let Some(error) = status["tables"][format!("{db}.drifted")]["error"].as_str() {
            assert!(
                error.contains("column 2 is `w` in the binlog, `v` in the stored definition"),
                "{error}"
            );
            assert_eq!(status["state"], "Running", "{status}");
            assert_eq!(isolated_gauge(&pipe), Some(1.0));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drifted not isolated: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resync = api
        .post(
            &format!("/v1/pipes/{}/tables/{db}.drifted/resync", pipe.name),
            "",
        )
        .expect("resync");
    assert_eq!(resync.status, 200, "{resync:?}");
    s.exec(&mut conn, "UPDATE drifted SET w = 20 WHERE id = 2")
        .await;
    s.exec(
        &mut conn,
        &format!("SET GLOBAL binlog_row_metadata = '{}'", previous.trim()),
    )
    .await;
    let drifted = Table {
        name: "drifted",
        key: &["id"],
        columns: &[("id", Kind::Int), ("w", Kind::Int), ("s", Kind::Text)],
    };
    equal(&s, &pipe, &daemon, &[drifted, OTHER]).await;
    wait_until("the isolated-tables gauge stays up", &daemon, || {
        isolated_gauge(&pipe) == Some(0.0)
    })
    .await;
    s.cleanup(&pipe).await;
}

/// The pipe's source database with `ddl` run in it; a connection using it.
async fn create(s: &Servers, pipe: &Pipe, ddl: &str) -> mysql_async::Conn {
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    s.exec(&mut conn, ddl).await;
    conn
}

/// `tributary_tables_isolated` of the pipe, from its /metrics.
fn isolated_gauge(pipe: &Pipe) -> Option<f64> {
    let text = pipe.api().get("/metrics").ok()?.body;
    let prefix = format!("tributary_tables_isolated{{pipe=\"{}\"}} ", pipe.name);
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// A pipe whose loads take one 250-row partition at a time: long enough to act during them.
fn slow_pipe(prefix: &str) -> Pipe {
    let mut pipe = Pipe::new(prefix);
    pipe.parallelism = 1;
    pipe.rows_per_partition = 250;
    pipe
}

/// `POST …/tables/{db.table}/resync`, which must be accepted.
fn resync_table(pipe: &Pipe, table: &str) -> support::Answer {
    let answer = pipe
        .api()
        .post(
            &format!("/v1/pipes/{}/tables/{}.{table}/resync", pipe.name, pipe.db),
            "",
        )
        .expect("resync");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer
}

fn table_exists(s: &Servers, db: &str, table: &str) -> bool {
    s.ch(&format!(
        "SELECT count() FROM system.tables WHERE database = '{db}' AND name = '{table}'"
    ))
    .trim()
        != "0"
}

/// How many tables of the pipe are isolated now.
fn isolated_tables(s: &Servers, db: &str) -> String {
    s.ch(&format!(
        "SELECT count() FROM (SELECT argMax(reason, (rev, at)) AS r FROM `{db}_state`.table_isolation \
         GROUP BY table_name) WHERE r != ''"
    ))
    .trim()
    .to_owned()
}

fn target_rows(s: &Servers, db: &str, table: &str) -> String {
    s.ch(&format!(
        "SELECT count() FROM `{db}`.`{table}` FINAL WHERE _tributary_is_deleted = 0"
    ))
    .trim()
    .to_owned()
}

async fn wait_until(what: &str, daemon: &Daemon, done: impl FnMut() -> bool) {
    support::wait_until(what, WITHIN, daemon, done).await;
}

/// Like [`wait_until`], but the deadline counts from the last change of `progress` (rows
/// loaded): a slow load on a busy machine is waited for, a stuck one fails.
async fn wait_while_loading(
    what: &str,
    daemon: &Daemon,
    mut progress: impl FnMut() -> u64,
    mut done: impl FnMut() -> bool,
) {
    let mut last = progress();
    let mut deadline = std::time::Instant::now() + WITHIN;
    while !done() {
        let now = progress();
        if now != last {
            last = now;
            deadline = std::time::Instant::now() + WITHIN;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} (no progress for {WITHIN:?} at {last} rows)\n{}",
            support::tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CREATE … SELECT, DROP TABLE (target kept, or dropped with `on_source_drop = "drop"`), the
/// same name created again (a fresh target) and CREATE TABLE IF NOT EXISTS over an existing
/// target (rebuilt from a snapshot).
#[tokio::test(flavor = "multi_thread")]
async fn tables_created_dropped_and_created_again() {
    let Some(s) = servers() else { return };
    for on_drop in ["keep", "drop"] {
        let mut pipe = Pipe::new("ddldrop");
        pipe.on_source_drop = on_drop;
        let db = pipe.db.clone();
        let mut conn = create(&s, &pipe, "CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO other VALUES (1, 1), (2, 2), (3, 3);").await;
        let daemon = Daemon::start(&s.config(&pipe, ""));
        s.wait_for_state(&pipe, "Running", WITHIN);

        // In row format the server logs CREATE … SELECT as the full definition plus row events.
        s.exec(
            &mut conn,
            "CREATE TABLE sel (PRIMARY KEY (id)) SELECT id, v FROM other WHERE id < 3",
        )
        .await;
        let sel = Table {
            name: "sel",
            ..OTHER
        };
        equal(&s, &pipe, &daemon, &[sel, OTHER]).await;

        s.exec(&mut conn, "DROP TABLE sel; INSERT INTO other VALUES (4, 4)")
            .await;
        equal(&s, &pipe, &daemon, &[OTHER]).await;
        match on_drop {
            "keep" => assert_eq!(target_rows(&s, &db, "sel"), "2", "target kept"),
            _ => {
                wait_until("target not dropped", &daemon, || {
                    !table_exists(&s, &db, "sel")
                })
                .await
            }
        }

        // The same name again, another shape, with IF NOT EXISTS: a kept target may hold
        // anything, so the table is rebuilt from a snapshot; a dropped one is just created.
        s.exec(
            &mut conn,
            "CREATE TABLE IF NOT EXISTS sel (id INT PRIMARY KEY, w VARCHAR(5)); INSERT INTO sel VALUES (7, 'n')",
        )
        .await;
        const SEL2: Table<'static> = Table {
            name: "sel",
            key: &["id"],
            columns: &[("id", Kind::Int), ("w", Kind::Text)],
        };
        equal(&s, &pipe, &daemon, &[SEL2, OTHER]).await;
        let reasons = s.ch(&format!(
            "SELECT reason FROM `{db}_state`.table_isolation WHERE table_name = '{db}.sel'"
        ));
        assert_eq!(
            reasons.contains("already exists"),
            on_drop == "keep",
            "{reasons}"
        );
        wait_until("sel not replicated again", &daemon, || {
            isolated_tables(&s, &db) == "0"
        })
        .await;

        // Dropped and created again without IF NOT EXISTS: a fresh target replaces a kept one.
        s.exec(
            &mut conn,
            "DROP TABLE sel; CREATE TABLE sel (id INT PRIMARY KEY, w VARCHAR(5));
             INSERT INTO sel VALUES (8, 'm'), (9, 'p'); UPDATE sel SET w = 'o' WHERE id = 8",
        )
        .await;
        equal(&s, &pipe, &daemon, &[SEL2, OTHER]).await;
        s.cleanup(&pipe).await;
    }
}

/// A table resync loads the table's copy while every table keeps replicating (the other
/// table's changes arrive before the load ends); a kill -9 during the load resumes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_reload_runs_alongside_replication_and_survives_kill_9() {
    let Some(s) = servers() else { return };
    let pipe = slow_pipe("reload");
    let db = pipe.db.clone();
    let mut conn = create(
        &s,
        &pipe,
        "CREATE TABLE big (id INT PRIMARY KEY, a INT, pad CHAR(60));
         INSERT INTO big SELECT seq, seq % 97, REPEAT('p', 60) FROM seq_1_to_100000;
         CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO other VALUES (1, 1);",
    )
    .await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    s.wait_for_state(&pipe, "Running", Duration::from_secs(120));
    const BIG: Table<'static> = Table {
        name: "big",
        key: &["id"],
        columns: &[("id", Kind::Int), ("a", Kind::Int), ("pad", Kind::Text)],
    };
    let answer = resync_table(&pipe, "big");
    assert!(answer.body.contains("swapped in once loaded"), "{answer:?}");
    let copy_rows = || {
        s.ch_try(&format!("SELECT count() FROM `{db}`.big_resync"))
            .map(|r| r.trim().parse::<u64>().unwrap_or(0))
            .unwrap_or(0)
    };
    // Changes to both tables while the copy loads: they arrive before the load ends, `big`'s in
    // its live table too (written in binlog order: before `other`'s).
    s.exec(
        &mut conn,
        "UPDATE big SET a = -1 WHERE id = 5; DELETE FROM big WHERE id = 99999; INSERT INTO other VALUES (2, 2)",
    )
    .await;
    equal(&s, &pipe, &daemon, &[OTHER]).await;
    let live = s.ch(&format!(
        "SELECT a FROM `{db}`.big FINAL WHERE id = 5 AND _tributary_is_deleted = 0"
    ));
    assert_eq!(
        live.trim(),
        "-1",
        "the live table missed a change during the reload"
    );
    let loaded = copy_rows();
    assert!(
        loaded > 0 && loaded < 90_000,
        "the copy was not loading while other replicated ({loaded} rows)"
    );

    // Killed mid-load: the restart resumes the load, the copy keeps getting changes.
    daemon.kill9();
    s.exec(
        &mut conn,
        "UPDATE big SET a = -2 WHERE id = 90000; INSERT INTO big VALUES (300000, 3, 'late')",
    )
    .await;
    let daemon = Daemon::start(&config);
    equal_within(&s, &pipe, &daemon, &[BIG, OTHER], RELOADED_WITHIN).await;
    // The live table is equal before the swap (it gets the changes too): the swap comes when
    // the load ends, however slow the machine, as long as the load moves.
    wait_while_loading("the copy was not swapped in", &daemon, copy_rows, || {
        !table_exists(&s, &db, "big_resync")
    })
    .await;
    s.exec(&mut conn, "UPDATE big SET a = 7 WHERE id = 1").await;
    equal(&s, &pipe, &daemon, &[BIG, OTHER]).await;
    s.cleanup(&pipe).await;
}

/// An online schema change (gh-ost style) whose shadow table is outside the selection: the
/// cut-over renames the replicated table away and the shadow into its name; the new table is
/// copied from a snapshot and replicated, the other table never stops.
#[tokio::test(flavor = "multi_thread")]
async fn an_online_schema_change_cut_over_is_followed() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("osc");
    pipe.exclude = Some("_*");
    let mut conn = create(
        &s,
        &pipe,
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1), (2, 2);
         CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO other VALUES (1, 1);",
    )
    .await;
    let daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    s.exec(
        &mut conn,
        "CREATE TABLE _t_gho LIKE t; ALTER TABLE _t_gho ADD COLUMN c INT NOT NULL DEFAULT 5;
         INSERT INTO _t_gho (id, v) SELECT id, v FROM t; UPDATE t SET v = 20 WHERE id = 2;
         UPDATE _t_gho SET v = 20 WHERE id = 2; INSERT INTO t VALUES (3, 3);
         INSERT INTO _t_gho (id, v) VALUES (3, 3);
         RENAME TABLE t TO _t_del, _t_gho TO t;
         INSERT INTO t VALUES (4, 4, 6); INSERT INTO other VALUES (2, 2);",
    )
    .await;
    const T: Table<'static> = Table {
        name: "t",
        key: &["id"],
        columns: &[("id", Kind::Int), ("v", Kind::Int), ("c", Kind::Int)],
    };
    equal(&s, &pipe, &daemon, &[T, OTHER]).await;
    s.exec(
        &mut conn,
        "UPDATE t SET c = 9 WHERE id = 1; DELETE FROM t WHERE id = 3",
    )
    .await;
    equal(&s, &pipe, &daemon, &[T, OTHER]).await;
    s.cleanup(&pipe).await;
}

/// A table dropped in the source while its copy loads: the reload is void, its copy dropped,
/// and the pipe goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_dropped_during_its_reload_leaves_the_pipe_running() {
    let Some(s) = servers() else { return };
    let pipe = slow_pipe("reldrop");
    let db = pipe.db.clone();
    let mut conn = create(
        &s,
        &pipe,
        "CREATE TABLE big (id INT PRIMARY KEY, a INT);
         INSERT INTO big SELECT seq, seq FROM seq_1_to_50000;
         CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO other VALUES (1, 1);",
    )
    .await;
    let daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", Duration::from_secs(120));
    resync_table(&pipe, "big");
    s.exec(&mut conn, "DROP TABLE big; INSERT INTO other VALUES (2, 2)")
        .await;
    equal(&s, &pipe, &daemon, &[OTHER]).await;
    wait_until("the void copy was not dropped", &daemon, || {
        !table_exists(&s, &db, "big_resync")
    })
    .await;
    assert_eq!(
        s.state(&pipe),
        "Running",
        "{}",
        support::tail(&daemon.log_text(), 20)
    );
    s.exec(&mut conn, "INSERT INTO other VALUES (3, 3)").await;
    equal(&s, &pipe, &daemon, &[OTHER]).await;
    s.cleanup(&pipe).await;
}

/// Charset and collation names written as strings, as HeidiSQL writes them: tables created so
/// are replicated, and a column altered so is followed in place (no isolation).
#[tokio::test(flavor = "multi_thread")]
async fn quoted_charset_and_collation_names_are_followed() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("quotedcs");
    let mut conn = create(
        &s,
        &pipe,
        "CREATE TABLE q3 (id INT PRIMARY KEY, c VARCHAR(10) CHARACTER SET latin1);
         INSERT INTO q3 VALUES (1, 'café');",
    )
    .await;
    let daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    s.exec(
        &mut conn,
        "CREATE TABLE q1 (id INT PRIMARY KEY, c VARCHAR(10) CHARACTER SET 'utf8mb4');
         CREATE TABLE q2 (id INT PRIMARY KEY, c VARCHAR(10)) COLLATE='utf8mb4_general_ci' ENGINE=InnoDB;
         ALTER TABLE q3 MODIFY c VARCHAR(20) CHARACTER SET 'utf8mb4' COLLATE 'utf8mb4_bin';
         INSERT INTO q1 VALUES (1, 'ü😀'), (2, NULL);
         INSERT INTO q2 VALUES (1, '中文😀');
         INSERT INTO q3 VALUES (2, 'ü😀 €'); UPDATE q3 SET c = 'crème 😀' WHERE id = 1;",
    )
    .await;
    let tables: Vec<Table> = ["q1", "q2", "q3"]
        .into_iter()
        .map(|name| Table {
            name,
            key: &["id"],
            columns: &[("id", Kind::Int), ("c", Kind::Text)],
        })
        .collect();
    equal(&s, &pipe, &daemon, &tables).await;
    assert_eq!(isolated_tables(&s, &pipe.db), "0");
    s.cleanup(&pipe).await;
}

/// `MODIFY … NOT NULL` on a nullable column: ClickHouse takes it only with a DEFAULT, and the
/// NULLs the server converted (non-strict mode, no row events) become the implicit default in
/// the target too; the pipe stays Running and the table is never isolated.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_made_not_null_is_followed_in_place() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("notnull");
    let mut conn = create(
        &s,
        &pipe,
        "CREATE TABLE n2 (id INT PRIMARY KEY, c INT, t VARCHAR(10));
         INSERT INTO n2 VALUES (1, NULL, NULL), (2, 5, 'x');
         CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO other VALUES (1, 1);",
    )
    .await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    s.exec(&mut conn, "INSERT INTO n2 VALUES (3, NULL, 'y')")
        .await;
    // Non-strict: the server turns the NULLs into 0 and '' without row events.
    s.exec(
        &mut conn,
        "SET SESSION sql_mode = ''; ALTER TABLE n2 MODIFY c INT NOT NULL, MODIFY t VARCHAR(10) NOT NULL",
    )
    .await;
    s.exec(
        &mut conn,
        "INSERT INTO n2 VALUES (4, 7, 'z'); UPDATE n2 SET c = c + 1 WHERE id = 2; INSERT INTO other VALUES (2, 2)",
    )
    .await;
    let n2 = Table {
        name: "n2",
        key: &["id"],
        columns: &[("id", Kind::Int), ("c", Kind::Int), ("t", Kind::Text)],
    };
    equal(&s, &pipe, &daemon, &[n2, OTHER]).await;
    assert_eq!(s.state(&pipe), "Running");
    assert_eq!(isolated_tables(&s, &pipe.db), "0");
    assert!(
        !daemon.log_text().contains("table isolated"),
        "followed by a rebuild, not in place:\n{}",
        daemon.log_text()
    );
    assert_eq!(
        s.ch(&format!(
            "SELECT type FROM system.columns WHERE database = '{}' AND table = 'n2' AND name = 'c'",
            pipe.db
        ))
        .trim(),
        "Int32"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}
