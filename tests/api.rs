//! The HTTP API and the CLI commands that use it, over real HTTP against the daemon started as
//! a child process on real servers: probes, pipe status, commands, OpenAPI and metrics.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use support::workload::{Workload, DDL, TABLES};
use support::{free_port, servers, tributary, Daemon, Pipe};

const RUNNING_WITHIN: Duration = Duration::from_secs(90);

/// Every route the API serves, as the OpenAPI document must list it.
const ROUTES: [(&str, &str); 11] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/pipes"),
    ("get", "/v1/pipes/{name}"),
    ("post", "/v1/pipes/{name}/pause"),
    ("post", "/v1/pipes/{name}/resume"),
    ("post", "/v1/pipes/{name}/resync"),
    ("post", "/v1/pipes/{name}/tables"),
    ("delete", "/v1/pipes/{name}/tables/{table}"),
];

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Checks the Prometheus text exposition format line by line (`# HELP`, `# TYPE`, samples
/// `name{label="value",...} value`) and that every sample belongs to a declared family.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| Err(format!("line {}: {why}: {line:?}", i + 1));
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) {
                return bad("HELP for an invalid name");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next()) else {
                return bad("TYPE needs a name and a type");
            };
            if !valid_name(name) {
                return bad("TYPE for an invalid name");
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return bad("unknown type");
            }
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => return bad("sample without value"),
        };
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => return bad("value is not a number"),
            },
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let Some(body) = rest.strip_suffix('}') else {
                    return bad("labels not closed");
                };
                match parse_labels(body) {
                    Ok(l) => (name, l),
                    Err(e) => return bad(&e),
                }
            }
        };
        if !valid_name(name) {
            return bad("invalid metric name");
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        if !types.contains_key(family) {
            return bad("sample before its # TYPE line");
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// `a="x",b="y \"quoted\""` into a map.
fn parse_labels(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("label value not closed".into()),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
}

#[test]
fn the_prometheus_check_rejects_broken_text() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total{pipe=\"p\",t=\"q\\\"\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    let samples = parse_prometheus(good).expect("valid");
    assert_eq!(metric(&samples, "a_total", &[("t", "q\"")]), Some(3.0));
    for bad in [
        "a_total 1\n",
        "# TYPE a counter\na{pipe=\"p\" 1\n",
        "# TYPE a counter\na{pipe=\"p\"} one\n",
        "# TYPE a counters\n",
        "# TYPE 1a counter\n",
    ] {
        assert!(parse_prometheus(bad).is_err(), "{bad:?} accepted");
    }
}

/// Probes, listing, errors, OpenAPI and metrics format need no running pipe: the source is a
/// port nothing listens on, so the pipe stays in Provisioning, retrying.
#[tokio::test(flavor = "multi_thread")]
async fn probes_routes_and_errors_while_a_pipe_cannot_start() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("apiprobe");
    let config = s.config(&pipe, "");
    let text = std::fs::read_to_string(&config).expect("read config");
    let closed = format!("mysql://root:tributary@127.0.0.1:{}", free_port());
    std::fs::write(&config, text.replace(&s.mariadb_url, &closed)).expect("write config");
    let mut daemon = Daemon::start(&config);
    let api = pipe.api();

    let health = api.wait_for("/healthz", 200, Duration::from_secs(20));
    assert_eq!(health.json()["status"], "ok");
    assert!(
        daemon
            .log_text()
            .contains(&format!("api listening addr=127.0.0.1:{}", pipe.api_port)),
        "{}",
        daemon.log_text()
    );
    let ready = api.get("/readyz").expect("readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    let ready = ready.json();
    assert_eq!(ready["ready"], false);
    let state = ready["pipes"][&pipe.name]
        .as_str()
        .expect("state of the pipe");
    assert!(["starting", "Provisioning"].contains(&state), "{ready}");
    assert!(ready["error"]
        .as_str()
        .is_some_and(|e| e.contains(&pipe.name)));

    let all = api.get("/v1/pipes").expect("list");
    assert_eq!(all.status, 200);
    let all = all.json();
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all[0]["name"], pipe.name.as_str());
    assert_eq!(all[0]["mode"], "cdc");

    let missing = api.get("/v1/pipes/no_such_pipe").expect("get");
    assert_eq!(missing.status, 404);
    assert!(
        missing.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("no_such_pipe") && e.contains(&pipe.name)),
        "{missing:?}"
    );
    let missing = api.post("/v1/pipes/no_such_pipe/pause", "").expect("post");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
    let route = api.get("/v1/nothing").expect("get");
    assert_eq!(route.status, 404);
    assert!(route.json()["error"].is_string());
    let bad = api
        .post(&format!("/v1/pipes/{}/tables", pipe.name), "{\"table\": 3}")
        .expect("post");
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.json()["error"].is_string());

    let doc = api.get("/v1/openapi.json").expect("openapi");
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
    }

    let metrics = api.get("/metrics").expect("metrics");
    assert_eq!(metrics.status, 200);
    let samples = parse_prometheus(&metrics.body)
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{}", metrics.body));
    assert!(
        metric(&samples, "tributary_build_info", &[]).is_some(),
        "{}",
        metrics.body
    );

    // The CLI's client commands reach the same API (its port from --config) and fail on errors.
    let cfg = config.to_str().expect("path");
    let (code, stdout, stderr) = tributary(&["health", "--config", cfg]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, _, stderr) = tributary(&["health", "--ready", "--config", cfg]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not ready"), "{stderr}");
    let (code, _, stderr) = tributary(&["pause", "no_such_pipe", "--config", cfg]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no pipe named `no_such_pipe`"), "{stderr}");
    let (code, _, stderr) = tributary(&["pause", "x", "--api", "http://127.0.0.1:1"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot reach the API"), "{stderr}");

    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    // The API stops with the daemon.
    assert!(api.get("/healthz").is_err());
    s.cleanup(&pipe).await;
}

/// Source row counts of the workload tables.
async fn source_counts(s: &support::Servers, db: &str) -> BTreeMap<String, u64> {
    let mut conn = s.mysql().await;
    let mut counts = BTreeMap::new();
    for t in TABLES {
        let n: Option<u64> = mysql_async::prelude::Queryable::query_first(
            &mut conn,
            format!("SELECT COUNT(*) FROM `{db}`.`{}`", t.name),
        )
        .await
        .expect("count");
        counts.insert(format!("{db}.{}", t.name), n.unwrap_or(0));
    }
    counts
}

/// Readiness follows the lifecycle; the status shows the snapshot's rows and the CDC position;
/// the metrics count the rows moved. Needs the pipe side to publish its status and metrics.
#[tokio::test(flavor = "multi_thread")]
async fn status_and_metrics_follow_a_pipe_from_snapshot_to_running() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("apirun");
    pipe.rows_per_partition = 200;
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    s.exec(&mut conn, DDL).await;
    Workload::new(11).run(&mut conn, 600).await;
    let counts = source_counts(&s, &pipe.db).await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    let api = pipe.api();

    // Not ready before Running: the first answer comes while the pipe provisions or loads.
    let first = api.wait_for("/readyz", 503, Duration::from_secs(20));
    let state = first.json()["pipes"][&pipe.name].clone();
    assert_ne!(state, "Running", "{}", first.body);
    let ready = api.wait_for("/readyz", 200, RUNNING_WITHIN);
    assert_eq!(ready.json()["pipes"][&pipe.name], "Running");

    let status = api
        .get(&format!("/v1/pipes/{}", pipe.name))
        .expect("status")
        .json();
    assert_eq!(status["name"], pipe.name.as_str());
    assert_eq!(status["state"], "Running", "{status}");
    assert_eq!(status["mode"], "cdc");
    assert!(
        status["since"].as_str().is_some_and(|s| !s.is_empty()),
        "{status}"
    );
    assert!(
        status["position"].as_str().is_some_and(|p| p.contains(':')),
        "{status}"
    );
    assert!(status["events_applied"].is_u64(), "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    for (table, rows) in &counts {
        let t = &status["tables"][table];
        assert_eq!(t["rows_done"].as_u64(), Some(*rows), "{table}: {status}");
        assert_eq!(t["done"], true, "{table}: {status}");
    }
    let listed = api.get("/v1/pipes").expect("list").json();
    assert_eq!(listed[0]["state"], "Running");

    let text = api.get("/metrics").expect("metrics").body;
    let samples =
        parse_prometheus(&text).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    for (table, rows) in &counts {
        let moved = metric(
            &samples,
            "tributary_snapshot_rows_total",
            &[("pipe", &pipe.name), ("table", table)],
        );
        assert_eq!(moved, Some(*rows as f64), "{table}:\n{text}");
    }
    let running = metric(
        &samples,
        "tributary_pipe_state",
        &[("pipe", &pipe.name), ("state", "Running")],
    );
    assert_eq!(running, Some(1.0), "{text}");
    let snapshot = metric(
        &samples,
        "tributary_pipe_state",
        &[("pipe", &pipe.name), ("state", "Snapshot")],
    );
    assert_eq!(snapshot, Some(0.0), "{text}");

    // CDC: applied changes show in the status and the metrics.
    s.exec(
        &mut conn,
        "INSERT INTO tags (tag, cnt) VALUES ('api-a', 1), ('api-b', 2)",
    )
    .await;
    s.exec(&mut conn, "UPDATE tags SET cnt = 3 WHERE tag = 'api-a'")
        .await;
    s.exec(&mut conn, "DELETE FROM tags WHERE tag = 'api-b'")
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let tags = format!("{}.tags", pipe.db);
    loop {
        let status = api
            .get(&format!("/v1/pipes/{}", pipe.name))
            .expect("status")
            .json();
        let text = api.get("/metrics").expect("metrics").body;
        let samples = parse_prometheus(&text).expect("Prometheus text");
        let changes = |op| {
            metric(
                &samples,
                "tributary_cdc_changes_total",
                &[("pipe", &pipe.name), ("table", &tags), ("op", op)],
            )
        };
        let done = status["events_applied"].as_u64().unwrap_or(0) >= 4
            && changes("insert") >= Some(2.0)
            && changes("update") >= Some(1.0)
            && changes("delete") >= Some(1.0);
        if done {
            assert!(status["lag_seconds"].is_number(), "{status}");
            assert!(
                metric(&samples, "tributary_lag_seconds", &[("pipe", &pipe.name)]).is_some(),
                "{text}"
            );
            assert!(
                samples
                    .iter()
                    .any(|s| s.name == "tributary_flush_seconds_count"
                        && s.labels.get("pipe") == Some(&pipe.name)),
                "{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "changes not counted within 30 s:\n{status}\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // `status --config` reads the running daemon's API, with the state store's history.
    let cfg = config.to_str().expect("path");
    let (code, stdout, stderr) = tributary(&["status", "--config", cfg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("from the API"), "{stdout}");
    assert!(stdout.contains("state     Running"), "{stdout}");
    assert!(stdout.contains("[##########] 100%"), "{stdout}");
    assert!(stdout.contains("Snapshot"), "history missing:\n{stdout}");
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// pause, resume, resync and table commands through the CLI and the API. Needs the pipe side
/// to answer commands.
#[tokio::test(flavor = "multi_thread")]
async fn commands_pause_resume_resync_and_change_tables() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("apicmd");
    let mut conn = s.mysql().await;
    s.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
        .await;
    s.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
    s.exec(&mut conn, DDL).await;
    Workload::new(12).run(&mut conn, 100).await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    let api = pipe.api();
    api.wait_for("/readyz", 200, RUNNING_WITHIN);
    let url = pipe.api_url();
    let state = || {
        api.get(&format!("/v1/pipes/{}", pipe.name))
            .expect("status")
            .json()["state"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let wait_state = |want: &str| {
        let deadline = std::time::Instant::now() + RUNNING_WITHIN;
        while state() != want {
            assert!(
                std::time::Instant::now() < deadline,
                "pipe did not reach {want} (now {}):\n{}",
                state(),
                support::tail(&daemon.log_text(), 30)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    let (code, stdout, stderr) = tributary(&["pause", &pipe.name, "--api", &url]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("pipe {}: ", pipe.name)),
        "{stdout}"
    );
    wait_state("Paused");
    assert_eq!(api.get("/readyz").expect("readyz").status, 200);
    // Changes made while paused do not reach ClickHouse, and arrive after resume.
    let rows_in_target = || {
        s.ch(&format!(
            "SELECT (SELECT count() FROM `{0}`.orders) + (SELECT count() FROM `{0}`.items) + (SELECT count() FROM `{0}`.tags)",
            pipe.db
        ))
    };
    let before = rows_in_target();
    Workload::new(13).run(&mut conn, 100).await;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        rows_in_target(),
        before,
        "rows reached ClickHouse while Paused"
    );
    let (code, stdout, stderr) = tributary(&["resume", &pipe.name, "--api", &url]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    wait_state("Running");
    // A second resume is refused with the pipe's reason: 409, exit code 1.
    let again = api
        .post(&format!("/v1/pipes/{}/resume", pipe.name), "")
        .expect("resume");
    assert_eq!(again.status, 409, "{again:?}");
    assert!(again.json()["error"].is_string());
    let (code, _, stderr) = tributary(&["resume", &pipe.name, "--api", &url]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error: "), "{stderr}");
    s.wait_equal(&pipe.db, TABLES, RUNNING_WITHIN, &daemon)
        .await;

    // Remove a table and drop its target; add it back: it is snapshotted again.
    let table = format!("{}.tags", pipe.db);
    let (code, stdout, stderr) = tributary(&[
        "tables", "remove", &pipe.name, &table, "--drop", "--api", &url,
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    wait_state("Running");
    let deadline = std::time::Instant::now() + RUNNING_WITHIN;
    while s.ch(&format!("EXISTS TABLE `{}`.tags", pipe.db)).trim() == "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "target table not dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, stdout, stderr) = tributary(&["tables", "add", &pipe.name, &table, "--api", &url]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    wait_state("Running");
    s.wait_equal(&pipe.db, TABLES, RUNNING_WITHIN, &daemon)
        .await;

    // Resync while writes continue: equal after the swap, and the old data gone.
    let (code, stdout, stderr) = tributary(&["resync", &pipe.name, "--api", &url]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    Workload::new(14).run(&mut conn, 100).await;
    wait_state("Running");
    Workload::new(15).run(&mut conn, 50).await;
    s.wait_equal(&pipe.db, TABLES, RUNNING_WITHIN, &daemon)
        .await;
    let leftovers = s.ch(&format!(
        "SELECT count() FROM system.tables WHERE database = '{}' AND name LIKE '%\\_resync'",
        pipe.db
    ));
    assert_eq!(
        leftovers.trim(),
        "0",
        "the swapped-out tables must be dropped"
    );

    // `status --api` (no config): the live view with progress bars, and JSON lines.
    let (code, stdout, stderr) = tributary(&["status", "--api", &url]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("state     Running"), "{stdout}");
    assert!(stdout.contains(&format!("{}.orders", pipe.db)), "{stdout}");
    assert!(stdout.contains("100%"), "{stdout}");
    let (code, stdout, _) = tributary(&["status", "--json", "--api", &url, &pipe.name]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(v["source"], "api");
    assert_eq!(v["state"], "Running");
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// The lifecycle follows ClickPipes' meanings, as the state history records it step by step:
/// a table removed is `Modifying`, a table added is `Snapshot` while it loads, a resync is
/// `Snapshot` while its copies load and `Resync` for the swap (from Running and from Paused,
/// which it leaves Running), and a resync killed during its load resumes in `Snapshot`.
#[tokio::test(flavor = "multi_thread")]
async fn the_lifecycle_follows_each_table_change_and_resync_step_by_step() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("apilife");
    let mut conn = s.workload_tables(&pipe, 21, 100).await;
    let config = s.config(&pipe, "");
    let mut daemon = Daemon::start(&config);
    let api = pipe.api();
    api.wait_for("/readyz", 200, RUNNING_WITHIN);
    let url = pipe.api_url();
    let run = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--api", url.as_str()]);
        let (code, stdout, stderr) = tributary(&args);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
    };
    let table = format!("{}.tags", pipe.db);

    let mark = s.last_transition(&pipe);
    run(&["tables", "remove", &pipe.name, &table, "--drop"]);
    s.assert_states_after(&pipe, mark, &["Modifying", "Running"], &daemon)
        .await;

    let mark = s.last_transition(&pipe);
    run(&["tables", "add", &pipe.name, &table]);
    s.assert_states_after(&pipe, mark, &["Snapshot", "Running"], &daemon)
        .await;

    let mark = s.last_transition(&pipe);
    run(&["resync", &pipe.name]);
    Workload::new(22).run(&mut conn, 50).await;
    s.assert_states_after(&pipe, mark, &["Snapshot", "Resync", "Running"], &daemon)
        .await;
    s.wait_equal(&pipe.db, TABLES, RUNNING_WITHIN, &daemon)
        .await;

    // From Paused: loaded and swapped in, then Running (a resync replays to the present).
    let mark = s.last_transition(&pipe);
    run(&["pause", &pipe.name]);
    s.assert_states_after(&pipe, mark, &["Pausing", "Paused"], &daemon)
        .await;
    let mark = s.last_transition(&pipe);
    run(&["resync", &pipe.name]);
    s.assert_states_after(&pipe, mark, &["Snapshot", "Resync", "Running"], &daemon)
        .await;

    // Killed during the resync's load, which a write lock on one of its tables holds (not the
    // largest, which set-up samples before Snapshot): the restart resumes it in Snapshot, then
    // swaps and runs, with the data equal.
    let mut locker = s.mysql().await;
    s.exec(
        &mut locker,
        &format!("LOCK TABLES `{}`.tags WRITE", pipe.db),
    )
    .await;
    let mark = s.last_transition(&pipe);
    run(&["resync", &pipe.name]);
    s.assert_states_after(&pipe, mark, &["Snapshot"], &daemon)
        .await;
    daemon.kill9();
    s.exec(&mut locker, "UNLOCK TABLES").await;
    Workload::new(23).run(&mut conn, 50).await;
    let mark = s.last_transition(&pipe);
    let mut daemon = Daemon::start(&config);
    let resumed = ["Provisioning", "Setup", "Snapshot", "Resync", "Running"];
    s.assert_states_after(&pipe, mark, &resumed, &daemon).await;
    s.wait_equal(&pipe.db, TABLES, RUNNING_WITHIN, &daemon)
        .await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// A resync of a Failed pipe provisions it again, then loads (`Snapshot`) and swaps (`Resync`).
#[tokio::test(flavor = "multi_thread")]
async fn a_resync_of_a_failed_pipe_loads_then_swaps() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("apifailresync");
    let mut conn = s.mysql().await;
    s.exec(
        &mut conn,
        &format!(
            "CREATE DATABASE `{0}`; CREATE TABLE `{0}`.a (id INT PRIMARY KEY, v TEXT); \
             CREATE TABLE `{0}`.b (id INT PRIMARY KEY, v TEXT); INSERT INTO `{0}`.b VALUES (1, 'b')",
            pipe.db
        ),
    )
    .await;
    // `a` is written into `b`'s target: refused at Setup, the pipe Failed.
    let extra = format!("[pipes.tables.options.\"{}.a\"]\ntarget = \"b\"\n", pipe.db);
    let mut daemon = Daemon::start(&s.config(&pipe, &extra));
    s.wait_for_state(&pipe, "Failed", RUNNING_WITHIN);
    // Fixed at the source; then resynced.
    s.exec(&mut conn, &format!("DROP TABLE `{}`.a", pipe.db))
        .await;
    let mark = s.last_transition(&pipe);
    let (code, stdout, stderr) = tributary(&["resync", &pipe.name, "--api", &pipe.api_url()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let expected = ["Provisioning", "Setup", "Snapshot", "Resync", "Running"];
    s.assert_states_after(&pipe, mark, &expected, &daemon).await;
    let b = support::Table {
        name: "b",
        key: &["id"],
        columns: &[("id", support::Kind::Int), ("v", support::Kind::Text)],
    };
    s.wait_equal(&pipe.db, &[b], RUNNING_WITHIN, &daemon).await;
    assert_eq!(daemon.terminate(Duration::from_secs(30)), Some(0));
    s.cleanup(&pipe).await;
}

/// A random API token in a file of the test's own; `(token, path)`.
fn token_file(pipe: &Pipe) -> (String, std::path::PathBuf) {
    let token = format!("{:032x}", rand::random::<u128>());
    let path = std::env::temp_dir().join(format!("{}.token", pipe.name));
    std::fs::write(&path, format!("{token}\n")).expect("write token");
    (token, path)
}

/// Waits until the pipe's state (through `api`, which carries the token) is `want`.
fn wait_api_state(api: &support::Api, pipe: &Pipe, want: &str, daemon: &Daemon) {
    let deadline = std::time::Instant::now() + RUNNING_WITHIN;
    loop {
        let state = api
            .get(&format!("/v1/pipes/{}", pipe.name))
            .map(|a| a.json()["state"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        if state == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pipe did not reach {want} (now {state}):\n{}",
            support::tail(&daemon.log_text(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// With a token, every route that changes something answers 401 without it and acts with it;
/// reads need it too, the probes do not; a browser's foreign Origin gets 403 and a form's
/// content type 415. The CLI sends the token from --token, TRIBUTARY_API_TOKEN or the config.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_guards_every_mutating_route_and_browsers_are_refused() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("apiauth");
    let mut conn = s.workload_tables(&pipe, 21, 100).await;
    let (token, file) = token_file(&pipe);
    pipe.api_extra = format!("token_file = \"{}\"", file.display());
    let config = s.config(&pipe, "");
    let daemon = Daemon::start(&config);
    let anonymous = pipe.api();
    anonymous.wait_for("/readyz", 200, RUNNING_WITHIN);
    let api = anonymous.with_header("Authorization", &format!("Bearer {token}"));
    wait_api_state(&api, &pipe, "Running", &daemon);

    let table = format!("{}.tags", pipe.db);
    let p = &pipe.name;
    let routes = [
        ("POST", format!("/v1/pipes/{p}/pause"), String::new()),
        ("POST", format!("/v1/pipes/{p}/resume"), String::new()),
        (
            "DELETE",
            format!("/v1/pipes/{p}/tables/{table}?drop=true"),
            String::new(),
        ),
        (
            "POST",
            format!("/v1/pipes/{p}/tables"),
            format!("{{\"table\": \"{table}\"}}"),
        ),
        (
            "POST",
            format!("/v1/pipes/{p}/tables/{table}/resync"),
            String::new(),
        ),
        ("POST", format!("/v1/pipes/{p}/resync"), String::new()),
    ];
    let wrong = anonymous.with_header("Authorization", "Bearer 0123456789abcdef0123456789abcdef");
    for (method, path, body) in &routes {
        for client in [&anonymous, &wrong] {
            let answer = client.request(method, path, body).expect("request");
            assert_eq!(answer.status, 401, "{method} {path}: {answer:?}");
            assert!(answer.json()["error"].is_string());
        }
    }
    for path in [
        "/v1/pipes",
        "/v1/openapi.json",
        &format!("/v1/pipes/{p}"),
        "/v1/nothing",
    ] {
        assert_eq!(anonymous.get(path).expect("get").status, 401, "{path}");
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(anonymous.get(path).expect("get").status, 200, "{path}");
    }
    // Browsers: a foreign origin, even with the token; a form's content type.
    let page = api.with_header("Origin", "https://evil.example");
    let answer = page
        .post(&format!("/v1/pipes/{p}/pause"), "")
        .expect("post");
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.body.contains("https://evil.example"), "{answer:?}");
    assert_eq!(
        anonymous
            .with_header("Origin", "https://evil.example")
            .get("/healthz")
            .expect("get")
            .status,
        403
    );
    let form = support::reqwest_request(
        &format!("127.0.0.1:{}", pipe.api_port),
        "POST",
        &format!("/v1/pipes/{p}/pause"),
        "x=1",
        &[
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("Authorization".into(), format!("Bearer {token}")),
        ],
    );
    assert_eq!(form.0, 415, "{form:?}");
    assert_eq!(
        api.get(&format!("/v1/pipes/{p}")).expect("status").json()["state"],
        "Running",
        "a refused request changed the pipe"
    );

    // With the token, each acts.
    let after = [
        "Paused", "Running", "Running", "Running", "Running", "Running",
    ];
    for ((method, path, body), state) in routes.iter().zip(after) {
        let answer = api.request(method, path, body).expect("request");
        assert_eq!(answer.status, 200, "{method} {path}: {answer:?}");
        wait_api_state(&api, &pipe, state, &daemon);
    }
    Workload::new(22).run(&mut conn, 50).await;
    s.wait_equal(&pipe.db, TABLES, RUNNING_WITHIN, &daemon)
        .await;

    // The CLI: refused without a token, let in with --token, TRIBUTARY_API_TOKEN or the config.
    let url = pipe.api_url();
    let (code, _, stderr) = tributary(&["pause", p, "--api", &url]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("Authorization: Bearer"), "{stderr}");
    let (code, stdout, stderr) = tributary(&["pause", p, "--api", &url, "--token", &token]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    wait_api_state(&api, &pipe, "Paused", &daemon);
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["resume", p, "--api", &url])
        .env("TRIBUTARY_API_TOKEN", &token)
        .output()
        .expect("run tributary");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    wait_api_state(&api, &pipe, "Running", &daemon);
    let (code, stdout, stderr) = tributary(&["status", "--config", config.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("from the API"), "{stdout}");
    drop(daemon);
    s.cleanup(&pipe).await;
}

/// `run` refuses an API beyond loopback without a token, saying how to set one or opt out;
/// with `allow_unauthenticated` it starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_non_loopback_listen_without_a_token_refuses_to_start() {
    let Some(s) = servers() else { return };
    let mut pipe = Pipe::new("apiexposed");
    // No source: the pipe keeps provisioning, which is all the API needs.
    pipe.source_url = Some(format!("mysql://root:tributary@127.0.0.1:{}", free_port()));
    let config = s.config(&pipe, "");
    let exposed = std::fs::read_to_string(&config)
        .expect("read config")
        .replace(
            &format!("listen = \"127.0.0.1:{}\"", pipe.api_port),
            &format!("listen = \"0.0.0.0:{}\"", pipe.api_port),
        );
    std::fs::write(&config, &exposed).expect("write config");
    let started = std::time::Instant::now();
    let (code, _, stderr) = tributary(&["run", "--config", config.to_str().expect("path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for part in [
        format!("0.0.0.0:{}", pipe.api_port).as_str(),
        "not a loopback address",
        "api.token_file",
        "api.allow_unauthenticated = true",
    ] {
        assert!(stderr.contains(part), "missing `{part}`: {stderr}");
    }
    assert!(pipe.api().get("/healthz").is_err(), "something listens");

    let opted_out = exposed.replace("[api]\n", "[api]\nallow_unauthenticated = true\n");
    std::fs::write(&config, opted_out).expect("write config");
    let mut daemon = Daemon::start(&config);
    pipe.api()
        .wait_for("/healthz", 200, Duration::from_secs(20));
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    s.cleanup(&pipe).await;
}

/// 2,000 connections held open without a whole request (a slowloris), renewed while the test
/// runs, against a daemon limited to 1,024 file descriptors: /healthz keeps answering, the
/// pipe keeps replicating, the daemon never runs out of descriptors, and the server closes
/// the idle connections itself.
#[tokio::test(flavor = "multi_thread")]
async fn half_open_connections_leave_healthz_answering_and_the_pipe_replicating() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const HELD: usize = 2000;
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("apiflood");
    let mut conn = s.workload_tables(&pipe, 31, 100).await;
    let config = s.config(&pipe, "");
    let daemon = Daemon::start_with_fd_limit(&config, 1024);
    let api = pipe.api();
    api.wait_for("/readyz", 200, RUNNING_WITHIN);

    // The flood: HELD connections, every other one with half a request head, the oldest
    // replaced by a new one about every millisecond.
    let host = format!("127.0.0.1:{}", pipe.api_port);
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let held: Arc<Mutex<std::collections::VecDeque<std::net::TcpStream>>> = Arc::default();
    let flood = {
        let (stop, opened, held, host) = (stop.clone(), opened.clone(), held.clone(), host.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok(mut c) = std::net::TcpStream::connect(&host) else {
                    continue;
                };
                let n = opened.fetch_add(1, Ordering::SeqCst);
                if n % 2 == 0 {
                    let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                }
                let mut held = held.lock().expect("held");
                held.push_back(c);
                if held.len() > HELD {
                    held.pop_front();
                }
                drop(held);
                if n >= HELD {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    while opened.load(Ordering::SeqCst) < HELD {
        std::thread::sleep(Duration::from_millis(10));
    }
    let fds = |pid: u32| std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let mut most_fds = fds(daemon.pid());

    // Probes answer while the flood goes on.
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let asked = std::time::Instant::now();
        let answer = api.get("/healthz").expect("/healthz during the flood");
        assert_eq!(answer.status, 200, "{answer:?}");
        slowest = slowest.max(asked.elapsed());
        most_fds = most_fds.max(fds(daemon.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pipe keeps replicating.
    Workload::new(32).run(&mut conn, 300).await;
    s.wait_equal(&pipe.db, TABLES, RUNNING_WITHIN, &daemon)
        .await;
    most_fds = most_fds.max(fds(daemon.pid()));
    stop.store(true, Ordering::SeqCst);
    flood.join().expect("flood thread");
    let total = opened.load(Ordering::SeqCst);
    eprintln!(
        "flood: {total} connections opened ({HELD} held at a time); /healthz slowest {slowest:?}; daemon fds at most {most_fds}"
    );
    assert!(slowest < Duration::from_secs(3), "{slowest:?}");
    assert!(most_fds < 1024, "the daemon held {most_fds} descriptors");
    let log = daemon.log_text();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("retrying"), "{}", support::tail(&log, 40));

    // What is left is closed by the server: evicted, or past the 10 s header timeout.
    std::thread::sleep(Duration::from_secs(12));
    let still_open = {
        let mut held = held.lock().expect("held");
        let mut still_open = 0;
        for c in held.iter_mut() {
            let _ = c.set_read_timeout(Some(Duration::from_millis(20)));
            let mut byte = [0u8; 1];
            // Open and silent: the read times out. Closed: end of stream, or a reset.
            if matches!(c.read(&mut byte), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
            {
                still_open += 1;
            }
        }
        still_open
    };
    assert_eq!(still_open, 0, "connections the server kept open");
    assert_eq!(api.get("/healthz").expect("/healthz").status, 200);
    drop(daemon);
    s.cleanup(&pipe).await;
}

/// `api.tls_cert`/`api.tls_key`: the API answers HTTPS only; the CLI with `--config` trusts the
/// certificates of `api.tls_cert` (here the server's with its CA) and sends the token.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_https_with_its_certificate() {
    let Some(tls) = support::tls_servers() else {
        return;
    };
    let s = &tls.servers;
    let mut pipe = Pipe::new("apitls");
    let chain = std::env::temp_dir().join(format!("{}.chain.pem", pipe.name));
    let pem = |name: &str| std::fs::read_to_string(tls.dir.join(name)).expect("read PEM");
    std::fs::write(&chain, pem("server.crt") + &pem("ca.pem")).expect("write chain");
    let (token, file) = token_file(&pipe);
    pipe.api_extra = format!(
        "token_file = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        file.display(),
        chain.display(),
        tls.file("server.key")
    );
    // No source: the pipe keeps provisioning, which is all the API needs.
    pipe.source_url = Some(format!("mysql://root:tributary@127.0.0.1:{}", free_port()));
    let config = s.config(&pipe, "");
    let cfg = config.to_str().expect("path");
    let mut daemon = Daemon::start(&config);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, _) = tributary(&["health", "--config", cfg]);
        if code == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        daemon.log_text().contains("scheme=\"https\""),
        "{}",
        daemon.log_text()
    );
    let (code, stdout, stderr) = tributary(&["status", "--config", cfg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("from the API"), "{stdout}");
    let https = format!("https://127.0.0.1:{}", pipe.api_port);
    // An explicit URL: the CA from --ca-file; without it the system roots do not know it.
    let (code, _, stderr) = tributary(&["pause", "nope", "--api", &https, "--token", &token]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    let ca = tls.file("ca.pem");
    let (code, _, stderr) = tributary(&[
        "pause",
        "nope",
        "--api",
        &https,
        "--token",
        &token,
        "--ca-file",
        &ca,
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no pipe named `nope`"), "{stderr}");
    // Plain HTTP gets no answer.
    assert!(
        pipe.api().get("/healthz").map_or(true, |a| a.status != 200),
        "plain HTTP answered"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    s.cleanup(&pipe).await;
}
