//! A source whose binlog cannot carry row changes is refused with the setting, the value found
//! and the value required; a binlog retention shorter than `source.max_outage` fails `check`
//! and is warned about by `run`, which replicates all the same. Its own test binary: it changes global settings of the shared test server, and test binaries run one
//! after another.

mod support;

use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use support::{servers, Daemon, Pipe};
use tokio::sync::Mutex;

/// The tests here change global settings of the shared server: one at a time.
static GLOBALS: Mutex<()> = Mutex::const_new(());

/// Runs `tributary check`, then the daemon until its pipe is Failed (it stays up waiting for
/// `resume`/`resync`) and SIGTERM; returns the check's output and the daemon's exit code.
/// Never panics, so that the caller restores the server's settings first.
async fn check_and_run(
    s: &support::Servers,
    pipe: &Pipe,
    config: &std::path::Path,
) -> (std::process::Output, Option<i32>, Daemon) {
    let check = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["check", "--config", config.to_str().expect("path")])
        .output()
        .expect("run check");
    let mut daemon = Daemon::start(config);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let state_sql = format!(
        "SELECT to_state FROM `{}_state`.pipe_state ORDER BY seq DESC LIMIT 1",
        pipe.db
    );
    while s
        .ch_try(&state_sql)
        .map(|t| t.trim() != "Failed")
        .unwrap_or(true)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let code = daemon.terminate(Duration::from_secs(10));
    (check, code, daemon)
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_binlog_format_is_refused() {
    let Some(s) = servers() else { return };
    let _globals = GLOBALS.lock().await;
    let pipe = Pipe::new("stmt");
    let mut conn = s.mysql().await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE DATABASE `{0}`; CREATE TABLE `{0}`.t (id INT PRIMARY KEY)",
            pipe.db
        ),
    )
    .await;
    let config = s.config(&pipe, "");
    s.exec(&mut conn, "SET GLOBAL binlog_format = 'STATEMENT'")
        .await;
    let (check, code, daemon) = check_and_run(&s, &pipe, &config).await;
    // Restore before asserting, so that a failure here does not break the tests after it.
    conn.query_drop("SET GLOBAL binlog_format = 'ROW'")
        .await
        .expect("restore binlog_format");

    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL binlog_format: found STATEMENT, required ROW"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS binlog_row_image"), "{stdout}");
    assert_eq!(code, Some(1), "{}", daemon.log_text());
    assert_eq!(s.state(&pipe), "Failed");
    let log = daemon.log_text();
    assert!(
        log.contains("binlog_format") && log.contains("STATEMENT") && log.contains("ROW"),
        "{log}"
    );
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retention_shorter_than_max_outage_fails_check_and_run_warns() {
    let Some(s) = servers() else { return };
    let _globals = GLOBALS.lock().await;
    let pipe = Pipe::new("retention");
    let mut conn = s.mysql().await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE DATABASE `{0}`; CREATE TABLE `{0}`.t (id INT PRIMARY KEY)",
            pipe.db
        ),
    )
    .await;
    let config = s.config(&pipe, "");
    let before: Option<String> = conn
        .query_first("SELECT @@global.binlog_expire_logs_seconds")
        .await
        .expect("read retention");
    s.exec(&mut conn, "SET GLOBAL binlog_expire_logs_seconds = 600")
        .await;
    let check = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["check", "--config", config.to_str().expect("path")])
        .output()
        .expect("run check");
    // The snapshot loads beside CDC: a short retention is no reason to refuse it.
    let mut daemon = Daemon::start(&config);
    let reached =
        std::panic::catch_unwind(|| s.wait_for_state(&pipe, "Running", Duration::from_secs(60)));
    let code = daemon.terminate(Duration::from_secs(30));
    conn.query_drop(format!(
        "SET GLOBAL binlog_expire_logs_seconds = {}",
        before.unwrap_or_else(|| "0".into())
    ))
    .await
    .expect("restore retention");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL binlog retention: 600 s, shorter than source.max_outage (3600 s)"),
        "{stdout}"
    );
    let log = daemon.log_text();
    assert!(reached.is_ok(), "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("WARN") && log.contains("binlog retention") && log.contains("600 s"),
        "{log}"
    );
    s.cleanup(&pipe).await;
}
