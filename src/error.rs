//! Error kinds of a pipe, classified once: transient errors are retried inside the current
//! state with backoff; definite ones move the pipe to Failed with a hint for the operator.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("source setting `{setting}` is `{actual}`, tributary requires `{expected}`: {hint}")]
    InvalidSourceSetting {
        setting: String,
        actual: String,
        expected: String,
        hint: String,
    },
    #[error("table `{table}` has no primary key: tributary needs one to order and deduplicate rows in ClickHouse; add a primary key or exclude the table")]
    NoPrimaryKey { table: String },
    #[error("table `{table}` does not exist in the source (dropped or renamed?)")]
    TableNotFound { table: String },
    #[error("{0}")]
    Selection(String),
    #[error("table `{table}`: {source}")]
    Schema {
        table: String,
        source: crate::schema::SchemaError,
    },
    #[error("table `{table}`: {source} (at binlog {position})")]
    Decode {
        table: String,
        position: String,
        source: Box<crate::decode::DecodeError>,
    },
    #[error("binlog: {0}")]
    Binlog(String),
    #[error("binlog: cannot read the event {position}: {detail}; the pipe stops rather than skip it (a corrupt binlog or a tributary bug: please report it with the binlog file)")]
    BinlogPanic { position: String, detail: String },
    #[error(
        "the binlog position {position} is no longer on the source (purged): resync required, e.g. `tributary resync PIPE` ({detail})"
    )]
    PositionPurged { position: String, detail: String },
    #[error("source `{url}`: {source}")]
    Source {
        url: String,
        source: Box<mysql_async::Error>,
    },
    #[error("source `{url}`: TLS with ssl_mode = {mode}: {problem}")]
    SourceTls {
        url: String,
        mode: crate::config::SslMode,
        problem: String,
    },
    #[error("source answered `{query}` in a way tributary cannot read: {detail}")]
    SourceRow { query: String, detail: String },
    #[error("ClickHouse `{url}`: {message}")]
    Target {
        url: String,
        message: String,
        transient: bool,
    },
    #[error("ClickHouse `{url}`: TLS: {problem}")]
    TargetTls { url: String, problem: String },
    #[error("{0}")]
    State(String),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// MySQL server errors that mean a retry cannot help.
const DEFINITE_SERVER_ERRORS: &[u16] = &[
    1045, // access denied
    1049, // unknown database
    1054, // unknown column: the table changed under a snapshot read
    1142, // command denied
    1146, // table does not exist: dropped or renamed under a snapshot read
    1227, // access denied; need privilege
    1236, // binlog: could not find first log file / position purged
];

/// Server errors of a read whose table changed under it: the table is reloaded once the
/// change has been replicated.
const DEFINITION_CHANGED: &[u16] = &[1054, 1146];

impl Error {
    /// A short, stable name of the error's kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidSourceSetting { .. } => "source_setting",
            Error::NoPrimaryKey { .. } => "no_primary_key",
            Error::Schema { .. } => "schema",
            Error::TableNotFound { .. } => "table_not_found",
            Error::Selection(_) => "selection",
            Error::Decode { .. } => "decode",
            Error::Binlog(_) | Error::BinlogPanic { .. } => "binlog",
            Error::PositionPurged { .. } => "position_purged",
            Error::Source { .. } | Error::SourceRow { .. } => "source",
            Error::Target { .. } => "target",
            Error::SourceTls { .. } | Error::TargetTls { .. } => "tls",
            Error::State(_) => "state",
        }
    }

    /// Whether a snapshot read failed because its table changed in the source (a column or the
    /// table gone under the read).
    pub fn is_definition_change(&self) -> bool {
        matches!(self, Error::Source { source, .. }
            if matches!(source.as_ref(), mysql_async::Error::Server(e)
                if DEFINITION_CHANGED.contains(&e.code)))
    }

    /// Whether retrying the same operation later may succeed (network, restarts, timeouts).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Source { source, .. } => match source.as_ref() {
                mysql_async::Error::Server(e) => !DEFINITE_SERVER_ERRORS.contains(&e.code),
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
                _ => false,
            },
            Error::Target { transient, .. } => *transient,
            _ => false,
        }
    }
}

/// Exponential backoff with jitter for transient errors: 0.5 s doubling to 30 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    const BASE_MS: u64 = 500;
    const MAX_MS: u64 = 30_000;
    let exp = BASE_MS.saturating_mul(1u64 << attempt.min(10)).min(MAX_MS);
    let jitter = rand::random_range(0..=exp / 4);
    Duration::from_millis(exp - exp / 8 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: u16) -> Error {
        Error::Source {
            url: "mysql://x".into(),
            source: Box::new(mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "m".into(),
                state: "HY000".into(),
            })),
        }
    }

    #[test]
    fn server_errors_are_classified_once() {
        // A lock wait or a restart: retry. A purged binlog, a missing privilege, a table that
        // changed under a read: retrying cannot help.
        assert!(server_error(1205).is_transient());
        assert!(server_error(1927).is_transient());
        for definite in [1045, 1054, 1146, 1227, 1236] {
            assert!(!server_error(definite).is_transient(), "{definite}");
        }
        assert!(server_error(1054).is_definition_change());
        assert!(!server_error(1045).is_definition_change());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        // Each wait is its step ±12.5 % (jitter); steps double from 0.5 s and stop at 30 s.
        for _ in 0..100 {
            let first = backoff(0);
            assert!((437..=563).contains(&first.as_millis()), "{first:?}");
            let capped = backoff(20);
            assert!(
                (26_250..=33_750).contains(&capped.as_millis()),
                "{capped:?}"
            );
            assert!(backoff(3) > backoff(0));
        }
    }
}
