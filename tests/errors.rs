//! Bad input gets a clear error that names the offending value and what to do.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{servers, tributary, Daemon, Pipe};

/// `tributary version | head -0`: a reader gone before the output is written is no crash.
#[test]
fn output_to_a_closed_pipe_is_not_a_crash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("version")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tributary");
    // Closed before the process has started writing.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_wrong_config_names_the_key_the_value_and_the_expectation() {
    let path = std::env::temp_dir().join(format!("bad-{}.toml", rand::random::<u32>()));
    std::fs::write(
        &path,
        r#"
[[pipes]]
name = "p"
[pipes.source]
url = "mysql://root@127.0.0.1:3306"
[pipes.target]
url = "http://127.0.0.1:8123"
database = "d"
[pipes.tables]
include = ["d.*"]
[pipes.sync]
flush_interval = "5 parsecs"
"#,
    )
    .expect("write config");
    let (code, _, stderr) = tributary(&["run", "--config", path.to_str().expect("path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("pipes[0].sync.flush_interval"), "{stderr}");
    assert!(stderr.contains("5 parsecs"), "{stderr}");

    std::fs::write(&path, "[[pipes]]\nname = \"p\"\nsurce = 1\n").expect("write config");
    let (code, _, stderr) = tributary(&["check", "--config", path.to_str().expect("path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("surce"), "{stderr}");

    let (code, _, stderr) = tributary(&["run", "--config", "/nonexistent/tributary.toml"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/tributary.toml"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_source_is_reported_and_retried() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("unreach");
    let config = s.config(&pipe, "");
    // Point the source at a port nothing listens on.
    let text = std::fs::read_to_string(&config).expect("read config");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("mysql://root:tributary@127.0.0.1:{port}");
    std::fs::write(&config, text.replace(&s.mariadb_url, &url)).expect("write config");

    let (code, stdout, _) = tributary(&["check", "--config", config.to_str().expect("path")]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL source"), "{stdout}");
    assert!(stdout.contains(&format!("127.0.0.1:{port}")), "{stdout}");
    assert!(!stdout.contains("tributary@"), "password leaked: {stdout}");

    let mut daemon = Daemon::start(&config);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !daemon
        .log_text()
        .contains("connecting to the source failed; retrying")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no retry logged:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.log_text().contains(&format!("127.0.0.1:{port}")));
    // Still provisioning, not failed: the source may come up.
    assert_eq!(s.state(&pipe), "Provisioning");
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    s.cleanup(&pipe).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_that_cannot_be_replicated_fail_the_pipe_with_their_name() {
    let Some(s) = servers() else { return };
    for (what, ddl, expected) in [
        (
            "nopk",
            "CREATE TABLE events (at DATETIME, msg TEXT)",
            "has no primary key",
        ),
        (
            "swe7",
            "CREATE TABLE names (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET swe7)",
            "swe7",
        ),
    ] {
        let pipe = Pipe::new(what);
        let mut conn = s.mysql().await;
        s.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
            .await;
        s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
        s.exec(&mut conn, ddl).await;
        let config = s.config(&pipe, "");
        let (code, stdout, _) = tributary(&["check", "--config", config.to_str().expect("path")]);
        assert_eq!(code, Some(1), "{stdout}");
        assert!(stdout.contains(expected), "{stdout}");

        let mut daemon = Daemon::start(&config);
        // A Failed pipe stays up, waiting for `resume` or `resync`; SIGTERM ends the daemon
        // with exit code 1 since a pipe is Failed.
        s.wait_for_state(&pipe, "Failed", Duration::from_secs(30));
        assert_eq!(
            daemon.terminate(Duration::from_secs(10)),
            Some(1),
            "{}",
            daemon.log_text()
        );
        let reason = s.ch(&format!(
            "SELECT reason FROM `{}_state`.pipe_state WHERE to_state = 'Failed'",
            pipe.db
        ));
        assert!(
            reason.contains(&pipe.db) && reason.contains(expected),
            "{reason}"
        );
        s.cleanup(&pipe).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_on_a_well_configured_source() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("checkok");
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{0}`; CREATE TABLE `{0}`.t (id INT PRIMARY KEY, v TEXT); INSERT INTO `{0}`.t VALUES (1, 'a')", pipe.db)).await;
    let config = s.config(&pipe, "");
    let (code, stdout, stderr) = tributary(&["check", "--config", config.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for line in [
        "PASS target",
        "PASS source",
        "PASS log_bin",
        "PASS binlog_format: ROW",
        "PASS binlog_row_image: FULL",
        "PASS binlog_row_metadata: FULL",
        "PASS gtid: MariaDB GTIDs",
        "PASS privileges",
        "PASS binlog retention",
    ] {
        assert!(stdout.contains(line), "missing `{line}`:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!(
            "PASS table {}.t: 2 columns, primary key (id)",
            pipe.db
        )),
        "{stdout}"
    );
    s.cleanup(&pipe).await;
}
