//! The ClickHouse connection of a pipe: DDL, JSON queries and RowBinary inserts over HTTP.
//!
//! Contract: [`Target::insert`] returns only once ClickHouse has written the rows
//! (`async_insert = 0`), so a checkpoint stored after it never points past data that is not
//! durable in the target. An `https://` target is reached over rustls with the system roots
//! plus `target.ca_file` (or no verification with `target.skip_verify`, warned about each time
//! a target is set up); a certificate it refuses is a definite [`Error::TargetTls`].

use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::config::TargetConfig;
use crate::error::{Error, Result, TargetCause};

/// As the clickhouse crate's own client: TCP keep-alive, and idle pooled connections closed
/// before ClickHouse's 3 s keep-alive timeout closes them under a request.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub(crate) struct Target {
    client: clickhouse::Client,
    url: String,
}

/// Named query parameters, bound server-side (`{name:Type}` in the SQL).
pub(crate) type Params<'a> = &'a [(&'a str, &'a str)];

impl Target {
    pub fn new(cfg: &TargetConfig) -> Result<Target> {
        let password = cfg.password()?;
        let url = cfg.url.as_str().trim_end_matches('/').to_owned();
        // The crate's TLS features take neither a CA file nor skip-verify: the HTTP client is
        // built here, over the same hyper stack.
        let tls = crate::tls::client_config(cfg.ca_file.as_deref(), cfg.skip_verify).map_err(
            |problem| Error::TargetTls {
                url: url.clone(),
                problem,
            },
        )?;
        if cfg.skip_verify {
            warn!(url = %url, "target.skip_verify = true: the ClickHouse server's certificate is not checked, so anyone on the network path can pose as it; set target.ca_file instead");
        }
        let mut http = HttpConnector::new();
        http.set_keepalive(Some(TCP_KEEPALIVE));
        let connector = crate::tls::https_connector(tls, http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        // Compressing bodies costs CPU on both ends; it pays across a network, not on loopback.
        let loopback = match cfg.url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let compression = if loopback {
            clickhouse::Compression::None
        } else {
            clickhouse::Compression::Lz4
        };
        let client = clickhouse::Client::with_http_client(http)
            .with_url(url.clone())
            .with_user(cfg.user.clone())
            .with_password(password)
            // Inserts the checkpoint depends on must be synchronous (ClickHouse may default
            // to async_insert=1).
            .with_option("async_insert", "0")
            .with_option("wait_end_of_query", "1")
            // The client compresses with LZ4; some servers default to ZSTD for compressed
            // HTTP bodies and would answer in a format the client cannot read.
            .with_option("network_compression_method", "lz4")
            .with_compression(compression)
            // Collapsing versions inside each inserted block is work FINAL and merges redo.
            .with_option("optimize_on_insert", "0");
        Ok(Target { client, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, err: clickhouse::error::Error) -> Error {
        if let Some(tls) = crate::tls::rustls_error(&err) {
            return Error::TargetTls {
                url: self.url.clone(),
                problem: crate::tls::describe(
                    tls,
                    "set target.ca_file to the PEM file of the CA that signed it",
                ),
            };
        }
        let message = err.to_string();
        let cause = match &err {
            clickhouse::error::Error::Network(_) => TargetCause::Network,
            clickhouse::error::Error::TimedOut => TargetCause::TimedOut,
            clickhouse::error::Error::BadResponse(text) => TargetCause::Server {
                code: error_code(text),
            },
            _ => TargetCause::Client,
        };
        Error::Target {
            url: self.url.clone(),
            message,
            cause,
        }
    }

    fn query(&self, sql: &str, params: Params<'_>) -> clickhouse::query::Query {
        // The client treats `?` as a bind placeholder; tributary binds with named parameters.
        let mut q = self.client.query(&sql.replace('?', "??"));
        for (name, value) in params {
            q = q.param(name, *value);
        }
        q
    }

    pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<()> {
        self.query(sql, params)
            .execute()
            .await
            .map_err(|e| self.error(e))
    }

    /// Runs a statement that changes a table (ALTER, TRUNCATE) and waits until its mutations
    /// are done everywhere, so the next statement sees its result.
    pub async fn execute_sync(&self, sql: &str) -> Result<()> {
        self.query(sql, &[])
            .with_option("mutations_sync", "2")
            .with_option("alter_sync", "2")
            .execute()
            .await
            .map_err(|e| self.error(e))
    }

    /// Runs a SELECT and parses each `JSONEachRow` line into `T`.
    pub async fn select<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<T>> {
        let bytes = self
            .query(sql, params)
            .with_option("output_format_json_quote_64bit_integers", "0")
            .fetch_bytes("JSONEachRow")
            .map_err(|e| self.error(e))?
            .collect()
            .await
            .map_err(|e| self.error(e))?;
        bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice(line).map_err(|e| Error::Target {
                    url: self.url.clone(),
                    message: format!("unexpected answer to `{sql}`: {e}"),
                    cause: TargetCause::Answer,
                })
            })
            .collect()
    }

    /// Starts a streaming insert; `sql` is an `INSERT ... FORMAT RowBinary` statement.
    pub fn start_insert(&self, sql: &str) -> Insert {
        Insert {
            inner: self.client.insert_formatted_with(sql.to_owned()),
            target: self.clone(),
        }
    }

    /// Inserts one RowBinary block and waits until it is written.
    pub async fn insert(&self, sql: &str, data: Bytes) -> Result<()> {
        let mut insert = self.start_insert(sql);
        insert.send(data).await?;
        insert.end().await
    }
}

/// An INSERT whose body is sent in chunks; nothing is visible before [`Insert::end`].
pub(crate) struct Insert {
    inner: clickhouse::insert_formatted::InsertFormatted,
    target: Target,
}

impl Insert {
    pub async fn send(&mut self, data: impl Into<Bytes>) -> Result<()> {
        self.inner
            .send(data.into())
            .await
            .map_err(|e| self.target.error(e))
    }

    pub async fn end(self) -> Result<()> {
        let target = self.target;
        self.inner.end().await.map_err(|e| target.error(e))
    }
}

/// The `Code: N.` a ClickHouse exception message starts with.
fn error_code(text: &str) -> Option<u32> {
    let start = text.find("Code: ")? + "Code: ".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::error_code;

    #[test]
    fn finds_exception_codes() {
        assert_eq!(
            error_code("Code: 60. DB::Exception: Table x doesn't exist"),
            Some(60)
        );
        assert_eq!(error_code("bad gateway"), None);
    }
}
