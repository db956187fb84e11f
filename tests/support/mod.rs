//! Shared harness of the integration tests: real servers, the daemon as a child process, and
//! a row-by-row comparison of source and target.
//!
//! Servers come from `TRIBUTARY_TEST_MARIADB_URL` and `TRIBUTARY_TEST_CLICKHOUSE_URL`
//! (`scripts/test` starts them). Without them a test prints a notice and returns, unless
//! `TRIBUTARY_TEST_REQUIRE_SERVERS=1`, where it fails. Each test works in databases of its own.
#![allow(dead_code)]

pub mod browser;
pub mod proxy;
pub mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Value};

pub struct Servers {
    pub mariadb_url: String,
    pub clickhouse_url: String,
    http: reqwest_lite::Http,
    /// The CA the source's certificate is checked with, for a source that requires TLS.
    source_ca: Option<PathBuf>,
}

/// The TLS twins of the test servers (`scripts/test-env` starts them with the local servers).
pub struct Tls {
    /// The MariaDB that requires TLS, as the source, and the plain ClickHouse to read the
    /// target with.
    pub servers: Servers,
    /// The same ClickHouse over HTTPS (`https://localhost:PORT`), with a password user.
    pub https_url: String,
    pub https_user: String,
    pub https_password: String,
    /// `ca.pem`, `other-ca.pem`, `server.crt|key`, `client.crt|key`.
    pub dir: PathBuf,
}

impl Tls {
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// The TLS servers, or `None` (after a notice) when they are not configured, or when
/// `TRIBUTARY_TEST_TLS_SERVERS=none` says there are none (scripts/test-env with Docker or
/// external servers).
pub fn tls_servers() -> Option<Tls> {
    let var = |name: &str| std::env::var(name).ok();
    let plain = servers()?;
    if var("TRIBUTARY_TEST_TLS_SERVERS").as_deref() == Some("none") {
        eprintln!("skipped: TRIBUTARY_TEST_TLS_SERVERS=none (no TLS test servers here)");
        return None;
    }
    match (
        var("TRIBUTARY_TEST_MARIADB_TLS_URL"),
        var("TRIBUTARY_TEST_CLICKHOUSE_HTTPS_URL"),
        var("TRIBUTARY_TEST_CLICKHOUSE_HTTPS_USER"),
        var("TRIBUTARY_TEST_CLICKHOUSE_HTTPS_PASSWORD"),
        var("TRIBUTARY_TEST_TLS_DIR"),
    ) {
        (Some(mariadb), Some(https_url), Some(https_user), Some(https_password), Some(dir)) => {
            let dir = PathBuf::from(dir);
            Some(Tls {
                servers: Servers {
                    mariadb_url: mariadb,
                    source_ca: Some(dir.join("ca.pem")),
                    ..plain
                },
                https_url,
                https_user,
                https_password,
                dir,
            })
        }
        _ if std::env::var("TRIBUTARY_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("TRIBUTARY_TEST_MARIADB_TLS_URL, TRIBUTARY_TEST_CLICKHOUSE_HTTPS_URL/_USER/_PASSWORD and TRIBUTARY_TEST_TLS_DIR must be set (scripts/test-env up sets them with local servers)")
        }
        _ => {
            eprintln!(
                "skipped: no TLS test servers (scripts/test-env up starts them with local servers)"
            );
            None
        }
    }
}

/// Returns the test servers, or `None` (after a notice) when they are not configured.
pub fn servers() -> Option<Servers> {
    let mariadb = std::env::var("TRIBUTARY_TEST_MARIADB_URL").ok();
    let clickhouse = std::env::var("TRIBUTARY_TEST_CLICKHOUSE_URL").ok();
    match (mariadb, clickhouse) {
        (Some(mariadb_url), Some(clickhouse_url)) => Some(Servers {
            http: reqwest_lite::Http::new(&clickhouse_url),
            mariadb_url,
            clickhouse_url,
            source_ca: None,
        }),
        _ if std::env::var("TRIBUTARY_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("TRIBUTARY_TEST_MARIADB_URL and TRIBUTARY_TEST_CLICKHOUSE_URL must be set (scripts/test sets them)")
        }
        _ => {
            eprintln!("skipped: no test servers (run scripts/test, or set TRIBUTARY_TEST_MARIADB_URL and TRIBUTARY_TEST_CLICKHOUSE_URL)");
            None
        }
    }
}

/// A name unique to this test run, usable as a database name on both servers.
pub fn unique(prefix: &str) -> String {
    format!("t_{prefix}_{:08x}", rand::random::<u32>())
}

impl Servers {
    pub async fn mysql(&self) -> Conn {
        let opts = Opts::from_url(&self.mariadb_url)
            .expect("TRIBUTARY_TEST_MARIADB_URL is a mysql:// URL");
        let ssl = self.source_ca.as_ref().map(|ca| {
            mysql_async::SslOpts::default()
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true)
        });
        let opts = mysql_async::OptsBuilder::from_opts(opts).ssl_opts(ssl);
        let mut conn = Conn::new(opts).await.expect("connect to the test MariaDB");
        conn.query_drop("SET time_zone = '+00:00'")
            .await
            .expect("set time zone");
        conn
    }

    /// Runs statements on the source, panicking with the statement on error.
    pub async fn exec(&self, conn: &mut Conn, sql: &str) {
        if let Err(e) = conn.query_drop(sql).await {
            panic!("source statement failed: {e}\n{sql}");
        }
    }

    /// Runs a ClickHouse statement and returns its TSV output.
    pub fn ch(&self, sql: &str) -> String {
        self.http
            .post(sql)
            .unwrap_or_else(|e| panic!("ClickHouse: {e}\n{sql}"))
    }

    pub fn ch_try(&self, sql: &str) -> Result<String, String> {
        self.http.post(sql)
    }

    /// Writes a one-pipe config and returns its path.
    pub fn config(&self, pipe: &Pipe, extra: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}.toml", pipe.name));
        let text = format!(
            r#"[api]
listen = "127.0.0.1:{api_port}"
{api_extra}

[[pipes]]
name = "{name}"
mode = "{mode}"

[pipes.source]
url = "{source}"
{source_extra}

[pipes.target]
url = "{target}"
database = "{db}"
state_database = "{db}_state"
{target_extra}

[pipes.tables]
include = ["{db}.*"]
exclude = [{exclude}]
on_source_drop = "{on_source_drop}"

[pipes.snapshot]
rows_per_partition = {rows_per_partition}
parallelism = {parallelism}
tables_in_parallel = {tables_in_parallel}

[pipes.sync]
batch_rows = {batch_rows}
flush_interval = "{flush}"
{extra}"#,
            api_port = pipe.api_port,
            api_extra = pipe.api_extra,
            name = pipe.name,
            mode = pipe.mode,
            source = pipe.source_url.as_deref().unwrap_or(&self.mariadb_url),
            source_extra = pipe.source_extra,
            target_extra = pipe.target_extra,
            target = pipe.target_url.as_deref().unwrap_or(&self.clickhouse_url),
            db = pipe.db,
            rows_per_partition = pipe.rows_per_partition,
            parallelism = pipe.parallelism,
            tables_in_parallel = pipe.tables_in_parallel,
            batch_rows = pipe.batch_rows,
            flush = pipe.flush_interval,
            on_source_drop = pipe.on_source_drop,
            exclude = pipe
                .exclude
                .map(|t| format!("\"{}.{t}\"", pipe.db))
                .unwrap_or_default(),
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// The workload's tables in the pipe's database, with `transactions` of its changes
    /// (seeded by `seed`); returns a connection using that database.
    pub async fn workload_tables(&self, pipe: &Pipe, seed: u64, transactions: usize) -> Conn {
        let mut conn = self.mysql().await;
        self.exec(&mut conn, &format!("CREATE DATABASE `{}`", pipe.db))
            .await;
        self.exec(&mut conn, &format!("USE `{}`", pipe.db)).await;
        self.exec(&mut conn, workload::DDL).await;
        workload::Workload::new(seed)
            .run(&mut conn, transactions)
            .await;
        conn
    }

    /// Drops the test's databases on both servers.
    pub async fn cleanup(&self, pipe: &Pipe) {
        let mut conn = self.mysql().await;
        self.exec(&mut conn, &format!("DROP DATABASE IF EXISTS `{}`", pipe.db))
            .await;
        self.ch(&format!("DROP DATABASE IF EXISTS `{}`", pipe.db));
        self.ch(&format!("DROP DATABASE IF EXISTS `{}_state`", pipe.db));
    }

    /// The pipe's current lifecycle state, per the state store.
    pub fn state(&self, pipe: &Pipe) -> String {
        self.ch(&format!(
            "SELECT to_state FROM `{}_state`.pipe_state WHERE pipe = '{}' ORDER BY seq DESC LIMIT 1",
            pipe.db, pipe.name
        ))
        .trim()
        .to_owned()
    }

    /// The seq of the pipe's last state transition (0 before the first).
    pub fn last_transition(&self, pipe: &Pipe) -> u64 {
        self.ch_try(&format!(
            "SELECT max(seq) FROM `{}_state`.pipe_state WHERE pipe = '{}'",
            pipe.db, pipe.name
        ))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
    }

    /// The states the pipe entered after transition `seq`, in order (the state store's
    /// history).
    pub fn states_after(&self, pipe: &Pipe, seq: u64) -> Vec<String> {
        let tsv = self.ch_try(&format!(
            "SELECT to_state FROM `{}_state`.pipe_state WHERE pipe = '{}' AND seq > {seq} ORDER BY seq",
            pipe.db, pipe.name
        ));
        tsv.unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Waits until the history after transition `seq` has as many steps as `expected` and
    /// ends in its last state, and asserts that it is `expected`, step for step.
    pub async fn assert_states_after(
        &self,
        pipe: &Pipe,
        seq: u64,
        expected: &[&str],
        daemon: &Daemon,
    ) {
        let done = || {
            let states = self.states_after(pipe, seq);
            states.len() >= expected.len()
                && states.last().map(String::as_str) == expected.last().copied()
        };
        let what = format!(
            "the pipe did not go through {expected:?} (now {:?})",
            self.states_after(pipe, seq)
        );
        wait_until(&what, Duration::from_secs(90), daemon, done).await;
        assert_eq!(self.states_after(pipe, seq), expected);
    }

    pub fn wait_for_state(&self, pipe: &Pipe, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.ch_try(&format!(
                "SELECT to_state FROM `{}_state`.pipe_state WHERE pipe = '{}' ORDER BY seq DESC LIMIT 1",
                pipe.db, pipe.name
            ));
            if now.as_deref().map(str::trim) == Ok(state) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pipe {} did not reach {state} within {timeout:?} (now {now:?})",
                pipe.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Waits until `done`, checking every 200 ms; after `within`, fails with `what` and the tail
/// of the daemon's log.
pub async fn wait_until(
    what: &str,
    within: Duration,
    daemon: &Daemon,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}\n{}",
            tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One pipe under test: its names and settings.
pub struct Pipe {
    pub name: String,
    pub db: String,
    pub mode: &'static str,
    pub rows_per_partition: u64,
    pub parallelism: u32,
    pub tables_in_parallel: u32,
    pub batch_rows: u64,
    pub flush_interval: &'static str,
    /// `tables.on_source_drop`: `keep` or `drop`.
    pub on_source_drop: &'static str,
    /// A table pattern of the pipe's database left out by `tables.exclude`.
    pub exclude: Option<&'static str>,
    /// The daemon's `api.listen` port: free when the pipe was made, one per test.
    pub api_port: u16,
    /// The ClickHouse URL the daemon uses, when not the test server's own (a proxy).
    pub target_url: Option<String>,
    /// The source URL the daemon uses, when not the test server's own.
    pub source_url: Option<String>,
    /// Lines added to `[api]`, `[pipes.source]` and `[pipes.target]`.
    pub api_extra: String,
    pub source_extra: String,
    pub target_extra: String,
}

impl Pipe {
    pub fn new(prefix: &str) -> Pipe {
        let db = unique(prefix);
        Pipe {
            name: db.clone(),
            db,
            mode: "cdc",
            rows_per_partition: 1000,
            parallelism: 4,
            tables_in_parallel: 1,
            batch_rows: 500,
            flush_interval: "200ms",
            on_source_drop: "keep",
            exclude: None,
            api_port: free_port(),
            target_url: None,
            source_url: None,
            api_extra: String::new(),
            source_extra: String::new(),
            target_extra: String::new(),
        }
    }

    /// The daemon's API, `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// A client of the daemon's API.
    /// The pipe's status from its daemon's API (`Null` while the daemon does not answer).
    pub fn status(&self) -> serde_json::Value {
        self.api()
            .get(&format!("/v1/pipes/{}", self.name))
            .map_or(serde_json::Value::Null, |a| a.json())
    }

    pub fn api(&self) -> Api {
        Api {
            host: format!("127.0.0.1:{}", self.api_port),
            headers: Vec::new(),
        }
    }
}

/// A TCP port nobody listens on now (the OS hands out ephemeral ports in turn, so it stays free
/// until the daemon binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A blocking client of the daemon's HTTP API (independent of the code under test).
pub struct Api {
    host: String,
    /// Extra request headers (`Authorization`, `Origin`, ...).
    pub headers: Vec<(String, String)>,
}

/// An HTTP answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Api {
    pub fn get(&self, path: &str) -> Result<Answer, String> {
        self.request("GET", path, "")
    }

    pub fn post(&self, path: &str, body: &str) -> Result<Answer, String> {
        self.request("POST", path, body)
    }

    pub fn delete(&self, path: &str) -> Result<Answer, String> {
        self.request("DELETE", path, "")
    }

    pub fn request(&self, method: &str, path: &str, body: &str) -> Result<Answer, String> {
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        headers.extend(self.headers.iter().cloned());
        let (status, body) = reqwest_lite::request(&self.host, method, path, body, &headers)?;
        Ok(Answer { status, body })
    }

    /// The same API with `name: value` sent with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Api {
        let mut headers = self.headers.clone();
        headers.push((name.to_owned(), value.to_owned()));
        Api {
            host: self.host.clone(),
            headers,
        }
    }

    /// Waits until `GET path` answers `status`, returning the answer.
    pub fn wait_for(&self, path: &str, status: u16, timeout: Duration) -> Answer {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.get(path);
            match answer {
                Ok(a) if a.status == status => return a,
                _ if Instant::now() > deadline => {
                    panic!("GET {path} did not answer {status} within {timeout:?}: {answer:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// The daemon as a child process, its stderr in a log file.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &std::path::Path) -> Daemon {
        Daemon::start_args(
            &["run", "--config", config.to_str().expect("utf-8 path")],
            config,
        )
    }

    /// `run --config` as an instance of host `host` (`HOSTNAME`): instances of different hosts
    /// know nothing of each other's processes.
    pub fn start_on(config: &std::path::Path, host: &str) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
        command.args(["run", "--config", config.to_str().expect("utf-8 path")]);
        command.env("HOSTNAME", host);
        Daemon::spawn(command, config)
    }

    pub fn start_args(args: &[&str], config: &std::path::Path) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
        command.args(args);
        Daemon::spawn(command, config)
    }

    /// `run --config` with the process's open-file limit lowered to `limit` (the shell's
    /// `ulimit -n`, then exec: the pid is the daemon's).
    pub fn start_with_fd_limit(config: &std::path::Path, limit: u32) -> Daemon {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {limit} && exec \"$0\" run --config \"$1\""),
            env!("CARGO_BIN_EXE_tributary"),
            config.to_str().expect("utf-8 path"),
        ]);
        Daemon::spawn(command, config)
    }

    fn spawn(mut command: Command, config: &std::path::Path) -> Daemon {
        let log = config.with_extension(format!("{}.log", rand::random::<u16>()));
        let file = std::fs::File::create(&log).expect("create log");
        let child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start tributary");
        Daemon { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.wait(timeout)
    }

    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!(
                    "tributary did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a column is compared: the canonical text both sides are brought to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Int,
    /// DECIMAL with this scale.
    Decimal(u8),
    Float,
    Double,
    Text,
    Binary,
    Date,
    /// DATETIME / TIMESTAMP with this many fractional digits.
    DateTime(u8),
    Time,
    Year,
    /// BIT(n): big-endian bytes at the source, UInt64 in the target.
    Bit,
    /// GEOMETRY as bytes: the source's `ST_AsBinary`, the target's String.
    Wkb,
    /// GEOMETRY as text: the source's `ST_AsText`, what ClickHouse's `readWKB` reads in the
    /// target, printed by `wkt`.
    Wkt,
}

/// The source expression that reads a column of `kind`.
fn source_expr(kind: Kind, col: &str) -> String {
    match kind {
        Kind::Wkb => format!("ST_AsBinary(`{col}`)"),
        Kind::Wkt => format!("ST_AsText(`{col}`)"),
        _ => format!("`{col}`"),
    }
}

/// The documented rule for dates ClickHouse cannot hold: zero or invalid dates become the
/// minimum, dates outside 1900-01-01 .. 2299-12-31 are clamped.
fn clamp_civil(y: u16, m: u8, d: u8, time: (u8, u8, u8, u32)) -> (u16, u8, u8, (u8, u8, u8, u32)) {
    const MIN: (u16, u8, u8, (u8, u8, u8, u32)) = (1900, 1, 1, (0, 0, 0, 0));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = y != 0 && (1..=12).contains(&m) && d >= 1 && d <= days[usize::from(m) - 1];
    if !valid || y < 1900 {
        MIN
    } else if y > 2299 {
        (2299, 12, 31, (23, 59, 59, 999_999))
    } else {
        (y, m, d, time)
    }
}

/// Canonical text of a source value (fetched through the binary protocol, UTC session).
fn canonical_source(kind: Kind, v: &Value) -> String {
    match (kind, v) {
        (_, Value::NULL) => "NULL".into(),
        (Kind::Float, Value::Float(f)) => format!("f32:{:08x}", f.to_bits()),
        (Kind::Double, Value::Double(f)) => format!("f64:{:016x}", f.to_bits()),
        (Kind::Binary | Kind::Wkb, Value::Bytes(b)) => {
            b.iter().map(|x| format!("{x:02x}")).collect()
        }
        (Kind::Bit, Value::Bytes(b)) => b
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
            .to_string(),
        (_, Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        (_, Value::Int(i)) => i.to_string(),
        (_, Value::UInt(u)) => u.to_string(),
        (Kind::Date, Value::Date(y, m, d, ..)) => {
            let (y, m, d, _) = clamp_civil(*y, *m, *d, (0, 0, 0, 0));
            format!("{y:04}-{m:02}-{d:02}")
        }
        (Kind::DateTime(fsp), Value::Date(y, m, d, h, mi, s, us)) => {
            let (y, m, d, (h, mi, s, us)) = clamp_civil(*y, *m, *d, (*h, *mi, *s, *us));
            let mut out = format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            if fsp > 0 {
                let frac = format!("{us:06}");
                write!(out, ".{}", &frac[..usize::from(fsp)]).ok();
            }
            out
        }
        (Kind::Time, Value::Time(neg, d, h, m, s, us)) => {
            let micros =
                ((i64::from(*d) * 24 + i64::from(*h)) * 3600 + i64::from(*m) * 60 + i64::from(*s))
                    * 1_000_000
                    + i64::from(*us);
            (if *neg { -micros } else { micros }).to_string()
        }
        (k, v) => panic!("no canonical form for {v:?} as {k:?}"),
    }
}

/// Makes a canonical value safe inside a tab-separated row.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('\t', r"\t")
        .replace('\n', r"\n")
}

fn unhex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("ClickHouse hex() output"))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// ClickHouse expression giving the canonical text of a target column.
fn canonical_target(kind: Kind, col: &str) -> String {
    let c = format!("`{col}`");
    let expr = match kind {
        Kind::Float => {
            format!("concat('f32:', leftPad(lower(hex(reinterpretAsUInt32({c}))), 8, '0'))")
        }
        Kind::Double => {
            format!("concat('f64:', leftPad(lower(hex(reinterpretAsUInt64({c}))), 16, '0'))")
        }
        Kind::Binary | Kind::Wkb => format!("lower(hex({c}))"),
        Kind::Wkt => format!("wkt(readWKB(assumeNotNull({c})))"),
        Kind::Decimal(scale) => format!("toDecimalString({c}, {scale})"),
        Kind::Text => format!("toString({c})"),
        _ => format!("toString({c})"),
    };
    // Hex on the wire, so values with tabs and newlines survive the TSV answer.
    format!("hex(if(isNull({c}), 'NULL', assumeNotNull({expr})))")
}

/// A table to compare: its name, key column count (leading columns) and columns.
pub struct Table<'a> {
    pub name: &'a str,
    pub key: &'a [&'a str],
    pub columns: &'a [(&'a str, Kind)],
}

impl Servers {
    pub async fn source_rows(&self, conn: &mut Conn, db: &str, t: &Table<'_>) -> Vec<String> {
        let cols: Vec<String> = t.columns.iter().map(|(c, k)| source_expr(*k, c)).collect();
        let sql = format!("SELECT {} FROM `{db}`.`{}`", cols.join(", "), t.name);
        let rows: Vec<mysql_async::Row> = conn.exec(sql, ()).await.expect("read source rows");
        let mut out: Vec<String> = rows
            .into_iter()
            .map(|row| {
                t.columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        escape(&canonical_source(
                            *kind,
                            row.as_ref(i).unwrap_or(&Value::NULL),
                        ))
                    })
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect();
        out.sort();
        out
    }

    /// The target's live rows in canonical form, or ClickHouse's error (e.g. a column the
    /// pipe has not added yet).
    pub fn target_rows(&self, db: &str, t: &Table<'_>) -> Result<Vec<String>, String> {
        let exprs: Vec<String> = t
            .columns
            .iter()
            .map(|(c, k)| canonical_target(*k, c))
            .collect();
        let sql = format!(
            "SELECT {} FROM `{db}`.`{}` FINAL WHERE _tributary_is_deleted = 0 \
             SETTINGS output_format_decimal_trailing_zeros = 1 FORMAT TabSeparatedRaw",
            exprs.join(", "),
            t.name
        );
        let mut out: Vec<String> = self
            .ch_try(&sql)?
            .lines()
            .map(|line| {
                line.split('\t')
                    .map(|field| escape(&unhex(field)))
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Compares source and target row by row; on mismatch, describes the first difference.
    pub async fn diff(&self, conn: &mut Conn, db: &str, t: &Table<'_>) -> Option<String> {
        let source = self.source_rows(conn, db, t).await;
        let target = match self.target_rows(db, t) {
            Ok(rows) => rows,
            Err(e) => return Some(format!("{db}.{}: the target cannot be read: {e}", t.name)),
        };
        if source == target {
            return None;
        }
        let names: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        let key_len = t.key.len();
        let key_of = |row: &str| row.split('\t').take(key_len).collect::<Vec<_>>().join(",");
        let tgt: std::collections::HashMap<String, &String> =
            target.iter().map(|r| (key_of(r), r)).collect();
        let src: std::collections::HashMap<String, &String> =
            source.iter().map(|r| (key_of(r), r)).collect();
        for row in &source {
            match tgt.get(&key_of(row)) {
                None => {
                    return Some(format!(
                        "{db}.{}: key ({}) missing in the target; source row {row}",
                        t.name,
                        key_of(row)
                    ))
                }
                Some(other) if *other != row => {
                    for ((s, d), name) in row.split('\t').zip(other.split('\t')).zip(&names) {
                        if s != d {
                            return Some(format!(
                                "{db}.{}: key ({}) column {name}: source {s:?}, target {d:?}",
                                t.name,
                                key_of(row)
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for row in &target {
            if !src.contains_key(&key_of(row)) {
                return Some(format!(
                    "{db}.{}: key ({}) is in the target but not in the source: {row}",
                    t.name,
                    key_of(row)
                ));
            }
        }
        Some(format!(
            "{db}.{}: {} source rows, {} target rows (duplicates in the target)",
            t.name,
            source.len(),
            target.len()
        ))
    }

    /// Waits until source and target are equal, panicking with the last difference.
    pub async fn wait_equal(
        &self,
        db: &str,
        tables: &[Table<'_>],
        timeout: Duration,
        daemon: &Daemon,
    ) {
        let mut conn = self.mysql().await;
        let deadline = Instant::now() + timeout;
        loop {
            let mut diff = None;
            for t in tables {
                diff = self.diff(&mut conn, db, t).await;
                if diff.is_some() {
                    break;
                }
            }
            match diff {
                None => return,
                Some(d) if Instant::now() > deadline => {
                    panic!(
                        "source and target differ after {timeout:?}: {d}\ndaemon log:\n{}",
                        tail(&daemon.log_text(), 40)
                    )
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// Asserts no key has two live rows, and that a replay wrote identical rows for a version.
    pub fn assert_no_duplicates(&self, db: &str, t: &Table<'_>) {
        let key = t
            .key
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let dup = self.ch(&format!(
            "SELECT {key}, count() FROM `{db}`.`{}` FINAL WHERE _tributary_is_deleted = 0 GROUP BY {key} HAVING count() > 1 LIMIT 5",
            t.name
        ));
        assert!(
            dup.trim().is_empty(),
            "{db}.{}: duplicate live rows:\n{dup}",
            t.name
        );
        let cols = t
            .columns
            .iter()
            .map(|(c, _)| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let diverged = self.ch(&format!(
            "SELECT {key}, _tributary_version, uniqExact(tuple({cols}, _tributary_is_deleted)) AS n FROM `{db}`.`{}` \
             GROUP BY {key}, _tributary_version HAVING n > 1 LIMIT 5",
            t.name
        ));
        assert!(
            diverged.trim().is_empty(),
            "{db}.{}: one version written with different values:\n{diverged}",
            t.name
        );
    }
}

/// One raw HTTP/1.0 exchange with the daemon at `host`, with exactly `headers`.
pub fn reqwest_request(
    host: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(String, String)],
) -> (u16, String) {
    reqwest_lite::request(host, method, path, body, headers).expect("HTTP exchange")
}

/// Runs the tributary binary with `args`: its exit code, stdout and stderr.
pub fn tributary(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .output()
        .expect("run tributary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A minimal blocking HTTP client for ClickHouse statements (the tests' own, independent of
/// the code under test).
mod reqwest_lite {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub struct Http {
        host: String,
    }

    impl Http {
        pub fn new(url: &str) -> Http {
            let host = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned();
            Http { host }
        }

        pub fn post(&self, sql: &str) -> Result<String, String> {
            let (status, body) = request(&self.host, "POST", "/?async_insert=0", sql, &[])?;
            if status == 200 {
                Ok(body)
            } else {
                Err(body)
            }
        }
    }

    /// One HTTP/1.0 exchange with `host`: the status code and the body.
    pub fn request(
        host: &str,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(String, String)],
    ) -> Result<(u16, String), String> {
        // HTTP/1.0: the body ends with the connection, no chunked encoding to undo.
        exchange(host, &format!("{method} {path} HTTP/1.0"), body, headers)
    }

    /// The same over HTTP/1.1, for servers that refuse 1.0 (chromedriver); the answer must
    /// not be chunked (chromedriver's is not).
    pub fn request_http11(
        host: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        let headers = [
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Connection".to_owned(), "close".to_owned()),
        ];
        exchange(host, &format!("{method} {path} HTTP/1.1"), body, &headers)
    }

    fn exchange(
        host: &str,
        request_line: &str,
        body: &str,
        headers: &[(String, String)],
    ) -> Result<(u16, String), String> {
        let mut stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
        let headers: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let request = format!(
            "{request_line}\r\nHost: {host}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        // The body ends at its Content-Length, else with the connection (chromedriver says
        // `Connection: close` but keeps it open).
        let mut response = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let (split, length) = loop {
            let head_end = response.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(split) = head_end {
                let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
                let length = head.lines().find_map(|l| {
                    l.strip_prefix("content-length:")
                        .and_then(|n| n.trim().parse::<usize>().ok())
                });
                if length.is_some_and(|n| response.len() >= split + 4 + n) {
                    break (split, length);
                }
            }
            let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break (head_end.ok_or("malformed HTTP response")?, None);
            }
            response.extend_from_slice(&chunk[..n]);
        };
        let status = std::str::from_utf8(&response[..split])
            .ok()
            .and_then(|head| head.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or("malformed HTTP status line")?;
        let body = &response[split + 4..];
        let body = length.map_or(body, |n| &body[..n]);
        Ok((status, String::from_utf8_lossy(body).into_owned()))
    }
}
