//! Which source table goes to which target table, on the real servers: two tables of one name
//! never share a target (refused at Setup, on `tables add` and for a table created later),
//! `tables add` keeps to the pipe's selection unless asked to widen it, and a table that
//! cannot be replicated (a column named like tributary's own, a table that does not exist)
//! is refused or isolated alone while the others replicate.

mod support;

use std::time::Duration;

use mysql_async::Conn;
use support::{servers, Daemon, Kind, Pipe, Servers, Table};

const WITHIN: Duration = Duration::from_secs(60);

const T: Table = Table {
    name: "t",
    key: &["id"],
    columns: &[("id", Kind::Int), ("v", Kind::Text)],
};

/// The pipe's config with `include` (patterns of databases made from the pipe's) instead of
/// the pipe's own database, and `tables_extra` lines in `[pipes.tables]`.
fn config(s: &Servers, pipe: &Pipe, include: &[&str], tables_extra: &str) -> std::path::PathBuf {
    let path = s.config(pipe, "");
    let text = std::fs::read_to_string(&path).expect("read config");
    let include: Vec<String> = include.iter().map(|p| format!("\"{p}\"")).collect();
    let text = text.replace(
        &format!("include = [\"{}.*\"]", pipe.db),
        &format!("include = [{}]\n{tables_extra}", include.join(", ")),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Creates source database `db` with a table `t (id, v)` holding `rows`.
async fn source_table(s: &Servers, conn: &mut Conn, db: &str, rows: &str) {
    s.exec(
        conn,
        &format!(
            "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO `{db}`.t VALUES {rows}"
        ),
    )
    .await;
}

async fn drop_databases(s: &Servers, pipe: &Pipe, extra: &[&str]) {
    let mut conn = s.mysql().await;
    for db in extra {
        s.exec(&mut conn, &format!("DROP DATABASE IF EXISTS `{db}`"))
            .await;
    }
    s.cleanup(pipe).await;
}

async fn wait_for(what: &str, daemon: &Daemon, done: impl FnMut() -> bool) {
    support::wait_until(what, WITHIN, daemon, done).await;
}

/// The live rows of target table `table`, as `id:v` sorted.
fn target(s: &Servers, db: &str, table: &str) -> String {
    s.ch_try(&format!(
        "SELECT arrayStringConcat(arraySort(groupArray(concat(toString(id), ':', v))), ',') \
         FROM `{db}`.`{table}` FINAL WHERE _tributary_is_deleted = 0"
    ))
    .unwrap_or_default()
    .trim()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tables_of_one_name_are_refused_at_setup_and_told_apart_by_a_template() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("samename");
    let (a, b) = (format!("{}_a", pipe.db), format!("{}_b", pipe.db));
    let mut conn = s.mysql().await;
    source_table(&s, &mut conn, &a, "(1, 'from a')").await;
    source_table(&s, &mut conn, &b, "(1, 'from b'), (2, 'only b')").await;
    let include = [format!("{a}.*"), format!("{b}.*")];
    let include: Vec<&str> = include.iter().map(String::as_str).collect();

    // Both would write into target `t`: refused before anything is written.
    let mut daemon = Daemon::start(&config(&s, &pipe, &include, ""));
    s.wait_for_state(&pipe, "Failed", WITHIN);
    let reason = s.ch(&format!(
        "SELECT reason FROM `{}_state`.pipe_state WHERE to_state = 'Failed'",
        pipe.db
    ));
    assert!(
        reason.contains(&format!("{b}.t")) && reason.contains(&format!("{a}.t")),
        "{reason}"
    );
    assert!(reason.contains("tables.target_name"), "{reason}");
    assert_eq!(
        s.ch(&format!("EXISTS TABLE `{}`.t", pipe.db)).trim(),
        "0",
        "a target table was written"
    );
    daemon.terminate(Duration::from_secs(10));

    // Restarted with a template that keeps the database: each gets its own target.
    let mut daemon = Daemon::start(&config(
        &s,
        &pipe,
        &include,
        "target_name = \"{db}_{table}\"",
    ));
    s.exec(
        &mut conn,
        &format!("UPDATE `{b}`.t SET v = 'b changed' WHERE id = 1"),
    )
    .await;
    s.exec(&mut conn, &format!("DELETE FROM `{a}`.t WHERE id = 1"))
        .await;
    s.exec(
        &mut conn,
        &format!("INSERT INTO `{a}`.t VALUES (3, 'a again')"),
    )
    .await;
    for (db, expected) in [(&a, "3:a again"), (&b, "1:b changed,2:only b")] {
        let table = format!("{db}_t");
        wait_for(&format!("{table} equal"), &daemon, || {
            target(&s, &pipe.db, &table) == expected
        })
        .await;
    }
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    drop_databases(&s, &pipe, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_created_under_a_taken_target_name_is_isolated_alone() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("createdsame");
    let (a, b) = (format!("{}_a", pipe.db), format!("{}_b", pipe.db));
    let mut conn = s.mysql().await;
    source_table(&s, &mut conn, &a, "(1, 'from a')").await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{b}`")).await;
    let include = [format!("{a}.*"), format!("{b}.*")];
    let include: Vec<&str> = include.iter().map(String::as_str).collect();
    let mut daemon = Daemon::start(&config(&s, &pipe, &include, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);

    s.exec(
        &mut conn,
        &format!(
            "CREATE TABLE `{b}`.t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO `{b}`.t VALUES (1, 'from b'); DELETE FROM `{b}`.t WHERE id = 1"
        ),
    )
    .await;
    s.exec(
        &mut conn,
        &format!("INSERT INTO `{a}`.t VALUES (2, 'a goes on')"),
    )
    .await;
    let isolated = format!("{b}.t");
    wait_for("the new table isolated", &daemon, || {
        pipe.status()["tables"][&isolated]["error"]
            .as_str()
            .is_some_and(|e| e.contains("already uses"))
    })
    .await;
    wait_for("a.t still replicated, untouched by b.t", &daemon, || {
        target(&s, &pipe.db, "t") == "1:from a,2:a goes on"
    })
    .await;
    // A restart keeps it that way: the replicating table keeps its target.
    daemon.terminate(Duration::from_secs(30));
    let mut daemon = Daemon::start(&config(&s, &pipe, &include, ""));
    s.exec(
        &mut conn,
        &format!("INSERT INTO `{a}`.t VALUES (3, 'after restart')"),
    )
    .await;
    wait_for("a.t replicated after a restart", &daemon, || {
        target(&s, &pipe.db, "t") == "1:from a,2:a goes on,3:after restart"
    })
    .await;
    wait_for("still isolated after a restart", &daemon, || {
        pipe.status()["tables"][&isolated]["error"].is_string()
    })
    .await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    drop_databases(&s, &pipe, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_add_keeps_to_the_selection_and_never_replaces_another_target() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("addsel");
    pipe.exclude = Some("skipped");
    let other = format!("{}_other", pipe.db);
    let mut conn = s.mysql().await;
    source_table(&s, &mut conn, &pipe.db, "(1, 'mine')").await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE TABLE `{0}`.skipped (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO `{0}`.skipped VALUES (1, 'x')",
            pipe.db
        ),
    )
    .await;
    source_table(&s, &mut conn, &other, "(1, 'other')").await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    let add = |body: String| {
        pipe.api()
            .post(&format!("/v1/pipes/{}/tables", pipe.name), &body)
            .expect("add")
    };

    // Outside the selection (excluded, another database, a system table): 409.
    for (table, why) in [
        (
            format!("{}.skipped", pipe.db),
            "outside the pipe's selection",
        ),
        (format!("{other}.t"), "outside the pipe's selection"),
        ("mysql.user".to_owned(), "system table"),
    ] {
        let answer = add(format!("{{\"table\": \"{table}\"}}"));
        assert_eq!(answer.status, 409, "{table}: {}", answer.body);
        assert!(answer.body.contains(why), "{table}: {}", answer.body);
    }
    let answer = add("{\"table\": \"mysql.user\", \"widen_selection\": true}".into());
    assert_eq!(answer.status, 409, "{}", answer.body);
    // Widening to `other.t` would write into the target `t` of the pipe's own `t`: refused,
    // and that target keeps its rows.
    let answer = add(format!(
        "{{\"table\": \"{other}.t\", \"widen_selection\": true}}"
    ));
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(answer.body.contains("already uses"), "{}", answer.body);
    assert_eq!(target(&s, &pipe.db, "t"), "1:mine");
    // A table that does not exist says so.
    let answer = add(format!("{{\"table\": \"{}.nothing\"}}", pipe.db));
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(answer.body.contains("does not exist"), "{}", answer.body);

    // Widened on purpose: added, and the status says it is outside the selection.
    let answer = add(format!(
        "{{\"table\": \"{}.skipped\", \"widen_selection\": true}}",
        pipe.db
    ));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let skipped = format!("{}.skipped", pipe.db);
    assert_eq!(pipe.status()["tables"][&skipped]["outside_selection"], true);
    wait_for("the widened table loaded", &daemon, || {
        target(&s, &pipe.db, "skipped") == "1:x"
    })
    .await;
    // And after a restart.
    daemon.terminate(Duration::from_secs(30));
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    wait_for(
        "still shown outside the selection after a restart",
        &daemon,
        || pipe.status()["tables"][&skipped]["outside_selection"] == true,
    )
    .await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    drop_databases(&s, &pipe, &[&other]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_column_named_like_tributarys_own_isolates_only_its_table() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("metacol");
    let mut conn = s.mysql().await;
    source_table(&s, &mut conn, &pipe.db, "(1, 'a')").await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE TABLE `{0}`.early (id INT PRIMARY KEY, _tributary_is_deleted INT)",
            pipe.db
        ),
    )
    .await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    let early = format!("{}.early", pipe.db);
    let reason = pipe.status()["tables"][&early]["error"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.contains("_tributary_is_deleted")),
        "{reason}"
    );
    s.exec(
        &mut conn,
        &format!(
            "CREATE TABLE `{0}`.late (id INT PRIMARY KEY, _tributary_version BIGINT); \
             INSERT INTO `{0}`.late VALUES (1, 5); INSERT INTO `{0}`.t VALUES (2, 'b')",
            pipe.db
        ),
    )
    .await;
    let late = format!("{}.late", pipe.db);
    wait_for("the late table isolated", &daemon, || {
        pipe.status()["tables"][&late]["error"]
            .as_str()
            .is_some_and(|r| r.contains("_tributary_version"))
    })
    .await;
    s.wait_equal(&pipe.db, &[T], WITHIN, &daemon).await;
    assert_eq!(s.state(&pipe), "Running");
    let metrics = pipe.api().get("/metrics").expect("metrics").body;
    let gauge = format!("tributary_tables_isolated{{pipe=\"{}\"}} 2", pipe.name);
    assert!(metrics.contains(&gauge), "no `{gauge}`");
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipe_with_no_table_yet_runs_and_takes_tables_as_they_are_created() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("empty");
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
        .await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    s.exec(
        &mut conn,
        &format!(
            "CREATE TABLE `{0}`.t (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO `{0}`.t VALUES (1, 'a'), (2, 'b'); UPDATE `{0}`.t SET v = 'c' WHERE id = 2",
            pipe.db
        ),
    )
    .await;
    s.wait_equal(&pipe.db, &[T], WITHIN, &daemon).await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// A pipe whose tables mix what replicates (MariaDB's native types, a legacy charset) with what
/// cannot (no primary key): the keyless one is isolated with its reason, the others are equal.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_cannot_be_replicated_does_not_stop_the_others() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("mixed");
    let mut conn = s.mysql().await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE DATABASE `{0}`; USE `{0}`;
             CREATE TABLE logs (at DATETIME, msg TEXT); INSERT INTO logs VALUES (NOW(), 'x');
             CREATE TABLE hosts (id INT PRIMARY KEY, u UUID, a INET4, b INET6);
             INSERT INTO hosts VALUES (1, '123e4567-e89b-12d3-a456-426614174000', '10.1.2.3', '2001:db8::1');
             CREATE TABLE names (id INT PRIMARY KEY, v VARCHAR(20)) CHARACTER SET gbk;
             INSERT INTO names VALUES (1, '中文'), (2, 'abc');",
            pipe.db
        ),
    )
    .await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    s.exec(
        &mut conn,
        "INSERT INTO hosts VALUES (2, UUID(), '0.0.0.0', '::'); INSERT INTO names VALUES (3, '汉字'); \
         INSERT INTO logs VALUES (NOW(), 'y')",
    )
    .await;
    let hosts = Table {
        name: "hosts",
        key: &["id"],
        columns: &[
            ("id", Kind::Int),
            ("u", Kind::Text),
            ("a", Kind::Text),
            ("b", Kind::Text),
        ],
    };
    let names = Table {
        name: "names",
        key: &["id"],
        columns: &[("id", Kind::Int), ("v", Kind::Text)],
    };
    s.wait_equal(&pipe.db, &[hosts, names], WITHIN, &daemon)
        .await;
    let logs = format!("{}.logs", pipe.db);
    let reason = pipe.status()["tables"][&logs]["error"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.contains("no primary key")),
        "{reason}"
    );
    assert_eq!(s.state(&pipe), "Running");
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// A `CREATE` of a selected table that the DDL parser does not follow is never skipped
/// silently: the table shows as isolated with the statement and why, the others replicate.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_the_parser_cannot_follow_isolates_its_table() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("unparsed");
    let mut conn = s.mysql().await;
    source_table(&s, &mut conn, &pipe.db, "(1, 'a')").await;
    let mut daemon = Daemon::start(&s.config(&pipe, ""));
    s.wait_for_state(&pipe, "Running", WITHIN);
    s.exec(
        &mut conn,
        &format!(
            "CREATE TABLE `{0}`.versioned (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING; \
             INSERT INTO `{0}`.versioned VALUES (1, 1); INSERT INTO `{0}`.t VALUES (2, 'b')",
            pipe.db
        ),
    )
    .await;
    let versioned = format!("{}.versioned", pipe.db);
    wait_for("the table shown isolated", &daemon, || {
        pipe.status()["tables"][&versioned]["error"]
            .as_str()
            .is_some_and(|r| r.contains("not understood") && r.contains("SYSTEM VERSIONING"))
    })
    .await;
    s.wait_equal(&pipe.db, &[T], WITHIN, &daemon).await;
    let metrics = pipe.api().get("/metrics").expect("metrics").body;
    let gauge = format!("tributary_tables_isolated{{pipe=\"{}\"}} 1", pipe.name);
    assert!(metrics.contains(&gauge), "no `{gauge}`");
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}
