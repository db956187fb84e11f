//! The source server: connections, flavor, settings, positions and table definitions.

pub(crate) mod introspect;
pub(crate) mod position;
pub(crate) mod preflight;

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::config::{Flavor, SourceConfig};
use crate::error::{Error, Result};
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
}

impl Source {
    /// Connects once to learn the flavor; fails with the URL and the server's answer.
    pub async fn connect(cfg: &SourceConfig) -> Result<Source> {
        let mut url = cfg.url.clone();
        if url.scheme() == "mariadb" {
            // mysql_async only parses mysql:// URLs; the protocol is the same.
            let rest = url.as_str().trim_start_matches("mariadb");
            url = format!("mysql{rest}")
                .parse()
                .map_err(|e| Error::State(format!("source url: {e}")))?;
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
        let password = cfg.password().map_err(|e| Error::State(e.to_string()))?;
        let mut builder = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .stmt_cache_size(64);
        if let Some(password) = password {
            builder = builder.pass(Some(password));
        }
        let mut source = Source {
            opts: builder.into(),
            url: redacted,
            flavor: ServerFlavor::Mysql,
        };
        let mut conn = source.conn().await?;
        let version: Option<String> = source.run(conn.query_first("SELECT VERSION()")).await?;
        let detected = if version.unwrap_or_default().contains("MariaDB") {
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

    /// Wraps a driver call so its error carries the source URL.
    pub async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = mysql_async::Result<T>>,
    ) -> Result<T> {
        fut.await.map_err(|source| Error::Source {
            url: self.url.clone(),
            source: Box::new(source),
        })
    }

    pub async fn conn(&self) -> Result<Conn> {
        self.run(Conn::new(self.opts.clone())).await
    }

    pub fn opts(&self) -> &Opts {
        &self.opts
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
        let rows: Vec<(String, String)> = self.run(conn.query(sql)).await?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect())
    }

    /// Fails with "resync required" when `position`'s binlog file is no longer on the server.
    pub async fn check_position(&self, conn: &mut Conn, position: &Position) -> Result<()> {
        let logs: Vec<mysql_async::Row> = self.run(conn.query("SHOW BINARY LOGS")).await?;
        let files: Vec<String> = logs
            .iter()
            .filter_map(|row| row.get::<String, _>(0))
            .collect();
        if files.iter().any(|f| f == &position.file) {
            return Ok(());
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
        Err(Error::PositionPurged {
            position: position.to_string(),
            detail: format!(
                "the oldest binlog on the server is {}; retention: {}",
                files.first().map_or("(none)", String::as_str),
                retention.join(", ")
            ),
        })
    }

    /// The binlog position of the last write, and the GTID state where the server has one.
    pub async fn current_position(&self, conn: &mut Conn) -> Result<Position> {
        // MySQL 8.4 renamed SHOW MASTER STATUS; MariaDB and older MySQL keep the old name.
        let row: Option<mysql_async::Row> = match conn.query_first("SHOW BINARY LOG STATUS").await {
            Ok(row) => row,
            Err(_) => self.run(conn.query_first("SHOW MASTER STATUS")).await?,
        };
        let row = row.ok_or_else(|| Error::InvalidSourceSetting {
            setting: "log_bin".into(),
            actual: "OFF".into(),
            expected: "ON".into(),
            hint: "SHOW MASTER STATUS returned nothing: binary logging is off".into(),
        })?;
        let file: String = row.get(0).unwrap_or_default();
        let pos: u64 = row.get(1).unwrap_or_default();
        let gtid = match self.flavor {
            ServerFlavor::Mariadb => self
                .run(conn.query_first::<String, _>("SELECT @@gtid_binlog_pos"))
                .await?
                .unwrap_or_default(),
            ServerFlavor::Mysql => row.get::<String, _>(4).unwrap_or_default(),
        };
        Ok(Position { file, pos, gtid })
    }
}
