//! The operator's view against a real pipe: the web console driven in a headless Chromium
//! (pages, actions, where its requests go, screenshots), and the Grafana dashboard and
//! Prometheus alert rules in deploy/ checked against a live `/metrics`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::browser::{browser, Browser};
use support::workload::Workload;
use support::{free_port, servers, wait_until, Daemon, Pipe};

const RUNNING_WITHIN: Duration = Duration::from_secs(90);

/// How long the page may take to show a change: it polls every 2 s, and a pause flushes first.
const PAGE_WITHIN: Duration = Duration::from_secs(30);

/// Rows arrive in ClickHouse after a resume, through one CDC batch.
const ROWS_WITHIN: Duration = Duration::from_secs(60);

/// The state the page shows for the pipe (`[data-state]` of its badge) equals `want`.
fn shows_state(b: &Browser, css: &str, want: &str) -> bool {
    b.text(&format!("{css} [data-state]")).as_deref() == Some(want)
}

/// Opens the confirmation of the button `css` and confirms it.
fn confirm(b: &Browser, css: &str) {
    b.click(css);
    b.click("#confirm-ok");
}

/// The console's pages with a token, against a pipe replicating one table and isolating one
/// without a primary key: overview, the pipe's page, a refused and an accepted command, rows
/// arriving after a resume from the page. Every request the page made stays on the daemon's
/// origin. Screenshots go to `$CARGO_TARGET_TMPDIR/console/`.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_and_steers_a_real_pipe() {
    let Some(s) = servers() else { return };
    let Some(browser) = browser() else { return };
    let started = Instant::now();
    let mut pipe = Pipe::new("console");
    let token = format!("{:032x}", rand::random::<u128>());
    pipe.api_extra = format!("token = \"{token}\"");
    let mut conn = s.mysql().await;
    for sql in [
        format!("CREATE DATABASE `{}`", pipe.db),
        format!("USE `{}`", pipe.db),
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))".into(),
        "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')".into(),
        "CREATE TABLE notes (body VARCHAR(200))".into(),
        "INSERT INTO notes VALUES ('a note without a key')".into(),
    ] {
        s.exec(&mut conn, &sql).await;
    }
    let config = s.config(&pipe, "");
    let daemon = Daemon::start(&config);
    let api = pipe
        .api()
        .with_header("Authorization", &format!("Bearer {token}"));
    let status = format!("/v1/pipes/{}", pipe.name);
    wait_until("the pipe runs", RUNNING_WITHIN, &daemon, || {
        api.get(&status)
            .is_ok_and(|a| a.status == 200 && a.json()["state"] == "Running")
    })
    .await;
    let origin = pipe.api_url();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&out).expect("screenshot folder");
    let (items, notes) = (format!("{}.items", pipe.db), format!("{}.notes", pipe.db));

    // The page asks for the token, then shows every pipe.
    browser.goto(&format!("{origin}/"));
    browser.wait("the console asks for the token", PAGE_WITHIN, |b| {
        b.text("#token").is_some()
    });
    browser.type_into("#token", &token);
    browser.click("#login");
    let row = format!("tr[data-pipe=\"{}\"]", pipe.name);
    browser.wait("the overview shows the pipe Running", PAGE_WITHIN, |b| {
        shows_state(b, &row, "Running")
    });
    let tables = browser
        .text(&format!("{row} td.tables"))
        .unwrap_or_default();
    assert!(tables.starts_with("2 (1 isolated)"), "{tables}");
    let attention = browser
        .text(&format!("li[data-isolated=\"{notes}\"]"))
        .unwrap_or_default();
    assert!(attention.contains("primary key"), "{attention}");
    browser.screenshot(&out.join("overview.png"));

    // The pipe's page: its tables, the isolated one with its reason, its history.
    browser.click(&format!("{row} a"));
    browser.wait("the pipe's page shows it Running", PAGE_WITHIN, |b| {
        shows_state(b, "#pipe-state", "Running")
            && b.text(&format!("tr[data-table=\"{items}\"]")).is_some()
    });
    let loaded = browser
        .text(&format!("tr[data-table=\"{items}\"] td.progress"))
        .unwrap_or_default();
    assert!(loaded.trim().starts_with("100%"), "{loaded}");
    let reason = browser
        .text(&format!("tr[data-isolated=\"{notes}\"] td.reason"))
        .unwrap_or_default();
    assert!(reason.contains("primary key"), "{reason}");
    let history = browser.text("table.history tbody").unwrap_or_default();
    assert!(
        history.contains("Snapshot") && history.contains("Running"),
        "{history}"
    );

    // A command the pipe refuses shows the refusal; pause is answered, then shown.
    confirm(&browser, "#resume");
    browser.wait("the refusal of resume is shown", PAGE_WITHIN, |b| {
        b.text("#answer.refused")
            .is_some_and(|t| t.contains("409") && t.contains("not paused"))
    });
    confirm(&browser, "#pause");
    browser.wait("the pause is answered", PAGE_WITHIN, |b| {
        b.text("#answer.accepted")
            .is_some_and(|t| t.starts_with("pause:"))
    });
    browser.wait("the page shows Paused", PAGE_WITHIN, |b| {
        shows_state(b, "#pipe-state", "Paused")
    });

    // Rows written while paused arrive once the page resumes the pipe.
    s.exec(
        &mut conn,
        "INSERT INTO items VALUES (4, 'four'), (5, 'five')",
    )
    .await;
    confirm(&browser, "#resume");
    browser.wait("the page shows Running again", PAGE_WITHIN, |b| {
        shows_state(b, "#pipe-state", "Running")
    });
    let count = format!(
        "SELECT count() FROM `{}`.items FINAL WHERE _tributary_is_deleted = 0",
        pipe.db
    );
    wait_until(
        "the rows arrive in ClickHouse",
        ROWS_WITHIN,
        &daemon,
        || s.ch_try(&count).is_ok_and(|n| n.trim() == "5"),
    )
    .await;
    browser.wait("the charts have lines", PAGE_WITHIN, |b| {
        b.script(
            "return document.querySelectorAll('svg.chart polyline').length;",
            serde_json::json!([]),
        )
        .as_u64()
            >= Some(2)
    });
    browser.screenshot(&out.join("pipe.png"));

    // Nothing the page asked for left the daemon's origin.
    let requests = browser.requests();
    assert!(
        requests.iter().any(|u| u.ends_with("/console.js")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|u| u.contains("/samples?since=")),
        "{requests:?}"
    );
    let foreign: BTreeSet<&String> = requests
        .iter()
        .filter(|u| !u.starts_with(&format!("{origin}/")))
        .collect();
    assert!(foreign.is_empty(), "requests off the origin: {foreign:?}");
    eprintln!(
        "console: {} requests, all to {origin}; screenshots in {}; {:.1} s",
        requests.len(),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    drop(browser);
    drop(daemon);
    s.cleanup(&pipe).await;
}

/// The sample names of a Prometheus text exposition (`name{labels} value` lines).
fn exported(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = line[end..].split('}').next().unwrap_or("").to_owned();
        names
            .entry(line[..end].to_owned())
            .or_default()
            .push(labels);
    }
    names
}

/// The `tributary_*` metric names in `expr` (a PromQL expression or a series).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tributary_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every PromQL expression of the dashboard (panel targets and template queries).
fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("expr" | "query" | "definition", Some(text)) => out.push(text.to_owned()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The Grafana dashboard's expressions and the alert rules (and their tests' series) name
/// only metrics this daemon exports, with the label values they match on (a state name).
/// The daemon runs one pipe that snapshots, applies changes and isolates a table, and one
/// whose source does not answer (it retries), so that every metric has samples.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_alert_rules_use_only_exported_metrics() {
    let Some(s) = servers() else { return };
    let pipe = Pipe::new("deploy");
    let mut conn = s.workload_tables(&pipe, 31, 50).await;
    s.exec(&mut conn, "CREATE TABLE keyless (v INT)").await;
    let config = s.config(&pipe, "");
    let down = format!("{}_down", pipe.db);
    let second = format!(
        r#"
[[pipes]]
name = "{down}"

[pipes.source]
url = "mysql://root:tributary@127.0.0.1:{port}"

[pipes.target]
url = "{target}"
database = "{down}"
state_database = "{down}_state"

[pipes.tables]
include = ["{down}.*"]
"#,
        port = free_port(),
        target = s.clickhouse_url
    );
    let text = std::fs::read_to_string(&config).expect("read config") + &second;
    std::fs::write(&config, text).expect("write config");
    let daemon = Daemon::start(&config);
    let api = pipe.api();
    let status = format!("/v1/pipes/{}", pipe.name);
    wait_until("the pipe runs", RUNNING_WITHIN, &daemon, || {
        api.get(&status)
            .is_ok_and(|a| a.status == 200 && a.json()["state"] == "Running")
    })
    .await;
    Workload::new(32).run(&mut conn, 20).await;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/tributary.json")).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    // The rules and their tests hold one expression or series a line.
    for file in ["prometheus/alerts.yml", "prometheus/alerts_test.yml"] {
        exprs.extend(
            read(file)
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("expr:") || l.starts_with("- series:"))
                .map(str::to_owned),
        );
    }
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    for needed in [
        "tributary_pipe_state",
        "tributary_lag_seconds",
        "tributary_cdc_changes_total",
        "tributary_flush_seconds_bucket",
        "tributary_snapshot_rows_total",
        "tributary_errors_total",
        "tributary_retries_total",
        "tributary_tables_isolated",
        "tributary_pipe_stalled",
    ] {
        assert!(used.contains(needed), "nothing in deploy/ uses {needed}");
    }

    // Counters and histograms appear with their first sample: wait for each.
    let deadline = Instant::now() + RUNNING_WITHIN;
    let metrics = loop {
        let metrics = exported(&api.get("/metrics").expect("metrics").body);
        let missing: Vec<&String> = used.iter().filter(|n| !metrics.contains_key(*n)).collect();
        if missing.is_empty() {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "deploy/ uses metrics the daemon does not export: {missing:?}\n{}",
            support::tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let failed = &metrics["tributary_pipe_state"];
    assert!(
        failed.iter().any(|l| l.contains("state=\"Failed\"")),
        "the rules match state=\"Failed\": {failed:?}"
    );
    drop(daemon);
    s.cleanup(&pipe).await;
    s.ch(&format!("DROP DATABASE IF EXISTS `{down}`"));
    s.ch(&format!("DROP DATABASE IF EXISTS `{down}_state`"));
}
