//! The source server: connections, flavor, settings, positions and table definitions.
//!
//! Every connection of a pipe is made from the options [`Source::connect`] settled on once per
//! provisioning, TLS included (see [`tls`]), so they all speak to the server the same way.

pub(crate) mod gtid;
pub(crate) mod introspect;
pub(crate) mod position;
pub(crate) mod preflight;
pub(crate) mod rows;
pub(crate) mod tls;

use std::collections::HashMap;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::config::{Flavor, SourceConfig, SourceTls, SslMode};
use crate::error::{Error, Result};
use gtid::GtidState;

/// Rows read from the largest table to measure the source's read rate.
const SAMPLE_ROWS: u64 = 20_000;
/// The protocol's largest packet (1 GiB), accepted on every connection. The driver otherwise
/// takes the server's `max_allowed_packet` (16 MiB by default) as its own limit and refuses
/// anything larger; but a binlog event is not bounded by it (an UPDATE of a 9 MB BLOB under
/// `binlog_row_image=FULL` is one ~18 MB event), nor is a row read back whole.
const MAX_PACKET: usize = 1 << 30;
/// ER_PARSE_ERROR: the server does not know `SHOW BINARY LOG STATUS` (before MySQL 8.4).
const ER_PARSE_ERROR: u16 = 1064;
pub(crate) use position::Position;

/// The server family actually found, which decides the binlog dialect and position queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerFlavor {
    Mysql,
    Mariadb,
}

#[derive(Clone)]
pub(crate) struct Source {
    opts: Opts,
    /// The URL without its password, for messages.
    pub url: String,
    pub flavor: ServerFlavor,
    /// The configured TLS settings, for the errors of later connections.
    tls: SourceTls,
}

/// The first connection, TLS as `tls` says: `preferred` falls back to plain when the server
/// offers no TLS, and `verify_ca` learns the name to check (see [`tls::name_to_check`]). The
/// options that worked are returned for every later connection.
async fn connect_tls(builder: OptsBuilder, cfg: &SourceTls, url: &str) -> Result<(Opts, Conn)> {
    let mut ssl = tls::ssl_opts(cfg, None);
    let mut name_learned = false;
    loop {
        let opts: Opts = builder.clone().ssl_opts(ssl.clone()).into();
        let err = match Conn::new(opts.clone()).await {
            Ok(conn) => return Ok((opts, conn)),
            Err(e) => e,
        };
        match cfg.mode {
            SslMode::Preferred if ssl.is_some() && tls::no_tls_on_server(&err) => ssl = None,
            SslMode::VerifyCa if !name_learned => match tls::name_to_check(&err) {
                Some(name) => {
                    ssl = tls::ssl_opts(cfg, Some(&name));
                    name_learned = true;
                }
                None => return Err(tls::classify(url, cfg, err)),
            },
            SslMode::Disabled => return Err(refused_without_tls(builder, cfg, url, err).await),
            _ => return Err(tls::classify(url, cfg, err)),
        }
    }
}

/// A login refused with `ssl_mode = disabled`: when the same login over TLS works, the server
/// requires TLS (`require_secure_transport`; MariaDB only says "access denied"), and the error
/// says so; otherwise it is the server's own answer.
async fn refused_without_tls(
    builder: OptsBuilder,
    cfg: &SourceTls,
    url: &str,
    err: mysql_async::Error,
) -> Error {
    let (code, message) = match &err {
        mysql_async::Error::Server(e) if tls::REFUSED_WITHOUT_TLS.contains(&e.code) => {
            (e.code, e.message.clone())
        }
        _ => return tls::classify(url, cfg, err),
    };
    let probe = mysql_async::SslOpts::default().with_danger_accept_invalid_certs(true);
    match Conn::new(builder.ssl_opts(probe)).await {
        Ok(conn) => {
            let _ = conn.disconnect().await;
            Error::SourceTls {
                url: url.to_owned(),
                mode: SslMode::Disabled,
                problem: format!(
                    "the server refuses logins without TLS (it requires secure transport; it answered error {code}: {message}), and the same login over TLS succeeds; set ssl_mode = \"verify_identity\" with ssl_ca (or \"required\")"
                ),
            }
        }
        Err(_) => tls::classify(url, cfg, err),
    }
}

impl Source {
    /// Connects once to learn the flavor (and how to speak TLS to it); fails with the URL and
    /// the server's answer.
    pub async fn connect(cfg: &SourceConfig) -> Result<Source> {
        let mut url = cfg.url.clone();
        if url.scheme() == "mariadb" {
            // mysql_async only parses mysql:// URLs; the protocol is the same.
            let rest = url.as_str().trim_start_matches("mariadb");
            url = format!("mysql{rest}")
                .parse()
                .map_err(|e: url::ParseError| Error::SourceUrl {
                    detail: e.to_string(),
                })?;
        }
        let mut redacted = url.clone();
        if redacted.password().is_some() {
            let _ = redacted.set_password(Some("***"));
        }
        let redacted = redacted.to_string();
        let opts = Opts::from_url(url.as_str()).map_err(|e| Error::Source {
            url: redacted.clone(),
            source: Box::new(e.into()),
        })?;
        let password = cfg.password()?;
        let mut builder = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .stmt_cache_size(64)
            .max_allowed_packet(Some(MAX_PACKET));
        if let Some(password) = password {
            builder = builder.pass(Some(password));
        }
        let (opts, mut conn) = connect_tls(builder, &cfg.tls, &redacted).await?;
        let mut source = Source {
            opts,
            url: redacted,
            flavor: ServerFlavor::Mysql,
            tls: cfg.tls.clone(),
        };
        let version: Option<(Option<String>,)> =
            source.query_first_as(&mut conn, "SELECT VERSION()").await?;
        let detected = if version
            .and_then(|(v,)| v)
            .is_some_and(|v| v.contains("MariaDB"))
        {
            ServerFlavor::Mariadb
        } else {
            ServerFlavor::Mysql
        };
        source.flavor = match (cfg.flavor, detected) {
            (Flavor::Mysql, _) => ServerFlavor::Mysql,
            (Flavor::Mariadb, _) => ServerFlavor::Mariadb,
            (Flavor::Auto, found) => found,
        };
        let _ = conn.disconnect().await;
        Ok(source)
    }

    /// A source at `url` of `flavor`, not connected (tests that never reach it).
    #[cfg(test)]
    pub fn unconnected(url: &str, flavor: ServerFlavor) -> Source {
        Source {
            opts: Opts::from_url(url).unwrap_or_default(),
            url: url.to_owned(),
            flavor,
            tls: SourceTls::default(),
        }
    }

    /// Wraps a driver call so its error carries the source URL (and a TLS failure is typed).
    pub async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = mysql_async::Result<T>>,
    ) -> Result<T> {
        fut.await
            .map_err(|source| tls::classify(&self.url, &self.tls, source))
    }

    /// The TLS settings the source was configured with.
    pub fn tls(&self) -> &SourceTls {
        &self.tls
    }

    pub async fn conn(&self) -> Result<Conn> {
        self.run(Conn::new(self.opts.clone())).await
    }

    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// The session's TLS protocol version and cipher as the server reports them (empty
    /// without TLS).
    pub async fn session_tls(&self, conn: &mut Conn) -> Result<(String, String)> {
        const QUERY: &str =
            "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')";
        let rows: Vec<(String, String)> = self.query_as(conn, QUERY).await?;
        let value = |name: &str| {
            rows.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Ok((value("Ssl_version"), value("Ssl_cipher")))
    }

    /// Global variables by lower-case name.
    pub async fn variables(
        &self,
        conn: &mut Conn,
        names: impl Iterator<Item = &str>,
    ) -> Result<HashMap<String, String>> {
        let list: Vec<String> = names.map(|n| format!("'{n}'")).collect();
        let sql = format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})",
            list.join(",")
        );
        let rows: Vec<(String, String)> = self.query_as(conn, &sql).await?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect())
    }

    /// Seconds a snapshot of `tables` takes at the read rate measured on the largest of them
    /// (one connection: a conservative figure, the snapshot reads in parallel).
    pub async fn estimate_snapshot_secs(
        &self,
        conn: &mut Conn,
        tables: &[(String, String)],
    ) -> Result<u64> {
        let source = self;
        let mut total = 0u64;
        let mut largest: Option<(&str, &str, u64)> = None;
        for (db, table) in tables {
            let rows: Option<(Option<u64>,)> = source
                .exec_first_as(
                    conn,
                    "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (db, table),
                )
                .await?;
            let rows = rows.and_then(|(r,)| r).unwrap_or(0);
            total += rows;
            if largest.is_none_or(|(_, _, r)| rows > r) {
                largest = Some((db, table, rows));
            }
        }
        let Some((db, table, _)) = largest else {
            return Ok(0);
        };
        let sql = format!(
            "SELECT * FROM `{}`.`{}` LIMIT {SAMPLE_ROWS}",
            db.replace('`', "``"),
            table.replace('`', "``")
        );
        let started = Instant::now();
        let sample: Vec<mysql_async::Row> = source.run(conn.exec(sql, ())).await?;
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let rate = (sample.len() as f64 / secs).max(1.0);
        Ok((total as f64 / rate).ceil() as u64)
    }

    /// Fails with "resync required" when `position` can no longer be served: its binlog file
    /// is gone and (MariaDB, which resumes by GTID) the oldest binlog starts after its GTID
    /// state.
    pub async fn check_position(&self, conn: &mut Conn, position: &Position) -> Result<()> {
        const QUERY: &str = "SHOW BINARY LOGS";
        let logs: Vec<mysql_async::Row> = self.query_as(conn, QUERY).await?;
        let files: Vec<String> = logs
            .iter()
            .map(|row| rows::column(row, 0, QUERY))
            .collect::<Result<_>>()?;
        if files.iter().any(|f| f == &position.file) {
            return Ok(());
        }
        let mut why = Vec::new();
        if let (ServerFlavor::Mariadb, Some(state), Some(oldest)) = (
            self.flavor,
            GtidState::parse(&position.gtid).filter(|s| !s.is_empty()),
            files.first(),
        ) {
            match self.gtid_list_of(conn, oldest).await? {
                Some(first) => match state.missing_from(&first) {
                    // A file name this server never had (a new primary) or one purged with
                    // nothing the position still needs: the dump resumes by GTID.
                    None => return Ok(()),
                    Some(missing) => why.push(missing),
                },
                None => why.push(format!("{oldest} has no GTID list")),
            }
        }
        let retention = self
            .variables(
                conn,
                ["binlog_expire_logs_seconds", "expire_logs_days"].into_iter(),
            )
            .await?;
        let retention: Vec<String> = retention
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        why.push(format!(
            "the oldest binlog on the server is {}; retention: {}",
            files.first().map_or("(none)", String::as_str),
            retention.join(", ")
        ));
        Err(Error::PositionPurged {
            position: position.to_string(),
            detail: why.join("; "),
        })
    }

    /// MariaDB: the GTID state a binlog file starts at (its GTID_LIST event).
    async fn gtid_list_of(&self, conn: &mut Conn, file: &str) -> Result<Option<GtidState>> {
        // SHOW cannot take parameters; the name is the server's own, quoted all the same.
        let quoted = file.replace('\\', "\\\\").replace('\'', "\\'");
        let query = format!("SHOW BINLOG EVENTS IN '{quoted}' LIMIT 4");
        let events: Vec<mysql_async::Row> = self.query_as(conn, &query).await?;
        for row in &events {
            let kind: String = rows::column(row, 2, &query)?;
            if kind == "Gtid_list" {
                let info: String = rows::column(row, 5, &query)?;
                return Ok(GtidState::parse_list(&info));
            }
        }
        Ok(None)
    }

    /// MariaDB: the GTID state at `file:pos`, from the server's own binlog, so it matches the
    /// offset exactly. `None` when the server cannot tell: `BINLOG_GTID_POS` is NULL when the
    /// file is gone, or when the offset is not one it finds an event boundary at (after a
    /// large event, say). The dump then resumes from `file:pos`.
    pub async fn gtid_at(&self, conn: &mut Conn, file: &str, pos: u64) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = self
            .exec_first_as(conn, "SELECT BINLOG_GTID_POS(?, ?)", (file, pos))
            .await?;
        Ok(row.and_then(|(gtid,)| gtid).filter(|g| !g.is_empty()))
    }

    /// The binlog position of the last write, with MySQL's executed GTID set where the server
    /// has one (MariaDB's GTID state is looked up when CDC starts from the position).
    pub async fn current_position(&self, conn: &mut Conn) -> Result<Position> {
        // MySQL 8.4 renamed SHOW MASTER STATUS; MariaDB and older MySQL keep the old name and
        // answer the new one with a parse error. Any other error (a lost connection) is one.
        let mut query = "SHOW BINARY LOG STATUS";
        let row: Option<mysql_async::Row> = match self.query_first_as(conn, query).await {
            Err(Error::Source { source, .. }) if matches!(source.as_ref(), mysql_async::Error::Server(e) if e.code == ER_PARSE_ERROR) =>
            {
                query = "SHOW MASTER STATUS";
                self.query_first_as(conn, query).await?
            }
            other => other?,
        };
        let row = row.ok_or_else(|| Error::InvalidSourceSetting {
            setting: "log_bin".into(),
            actual: "OFF".into(),
            expected: "ON".into(),
            hint: format!("{query} returned nothing: binary logging is off"),
        })?;
        let file: String = rows::column(&row, 0, query)?;
        let pos: u64 = rows::column(&row, 1, query)?;
        if file.is_empty() {
            return Err(Error::SourceRow {
                query: query.into(),
                detail: "the binlog file name is empty".into(),
            });
        }
        let gtid = match self.flavor {
            // Looked up when CDC starts from it (`gtid_at` scans the binlog file up to `pos`).
            ServerFlavor::Mariadb => String::new(),
            // Executed_Gtid_Set: absent before MySQL 5.6, NULL-free otherwise.
            ServerFlavor::Mysql if row.len() > 4 => {
                rows::column::<Option<String>>(&row, 4, query)?.unwrap_or_default()
            }
            ServerFlavor::Mysql => String::new(),
        };
        Ok(Position { file, pos, gtid })
    }
}
