//! Error kinds of a pipe, classified once: transient errors are retried inside the current
//! state with backoff; definite ones move the pipe to Failed with a hint for the operator.
//!
//! Invariant: [`Error::is_transient`] is the only place that decides whether retrying can
//! help; the code that creates an error records what happened (a server's error code, a
//! silent link), never the verdict, and no foreign error type is made up to carry one.

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("source setting `{setting}` is `{actual}`, tributary requires `{expected}`: {hint}")]
    InvalidSourceSetting {
        setting: String,
        actual: String,
        expected: String,
        hint: String,
    },
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
    /// The binlog cannot be followed from here without losing changes: only a resync repairs
    /// the target.
    #[error("binlog: {reason}; resync required at {position}")]
    ResyncRequired { reason: String, position: String },
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
    /// The binlog dump went silent past its heartbeats, or the source closed it: the link is
    /// gone, not the position (reconnect from the checkpoint).
    #[error("source `{url}`: {detail}")]
    StreamLost { url: String, detail: String },
    #[error("source url: {detail}")]
    SourceUrl { detail: String },
    #[error("{table}: primary key names an unknown column")]
    UnknownKeyColumn { table: String },
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
        cause: TargetCause,
    },
    #[error("ClickHouse `{url}`: TLS: {problem}")]
    TargetTls { url: String, problem: String },
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// A table the pipe cannot plan: an option that does not fit it, a definition it cannot
    /// map (`reason` names the table).
    #[error("{reason}")]
    Unplannable { table: String, reason: String },
    // Refusals of an operator's command: the pipe stays as it was.
    #[error("{table} is already replicated")]
    AlreadyReplicated { table: String },
    #[error("{table} is not replicated by this pipe")]
    NotReplicated { table: String },
    #[error("`{name}` is not a `db.table` name")]
    NotATableName { name: String },
    #[error("{table} changed in the source while it was loaded ({detail}); ask again once the change is replicated")]
    ChangedWhileLoaded { table: String, detail: String },
    #[error("stopped while loading {table}")]
    StoppedWhileLoading { table: String },
    // State the store holds that cannot be read back.
    #[error("stored definition of {table} is unreadable: {detail}")]
    UnreadableDefinition { table: String, detail: String },
    #[error("instance {instance} no longer owns this pipe: instance {by} took it over (lease epoch {epoch})")]
    LeaseLost {
        instance: String,
        by: String,
        epoch: u64,
    },
    #[error("stored snapshot position of {table} is unreadable: {detail}")]
    UnreadableProgress { table: String, detail: String },
    #[error("stored snapshot partition {idx} of {table} is unreadable: {detail}")]
    UnreadablePartition {
        table: String,
        idx: u32,
        detail: String,
    },
    // Bugs: what tributary's own invariants rule out.
    #[error("internal error: transition {from} → {to} is not allowed")]
    IllegalTransition {
        from: &'static str,
        to: &'static str,
    },
    #[error("internal error: {detail}")]
    Bug { detail: String },
}

/// What went wrong with a ClickHouse request, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetCause {
    /// The connection failed or broke.
    Network,
    TimedOut,
    /// The server answered with an error, with its exception code when it said one.
    Server {
        code: Option<u32>,
    },
    /// The server's answer could not be read.
    Answer,
    /// Anything else the client refused (a bad URL, a request it cannot build).
    Client,
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

/// ClickHouse error codes a retry can cure: overload, timeouts, a table being dropped/created
/// by a concurrent DDL, a restarting server.
const TRANSIENT_TARGET_CODES: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    252, // TOO_MANY_PARTS
    394, // QUERY_WAS_CANCELLED
];

/// Server errors of a read whose table changed under it: the table is reloaded once the
/// change has been replicated.
const DEFINITION_CHANGED: &[u16] = &[1054, 1146];

impl Error {
    /// A short, stable name of the error's kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidSourceSetting { .. } => "source_setting",
            Error::Schema { .. } => "schema",
            Error::TableNotFound { .. } => "table_not_found",
            Error::Selection(_) => "selection",
            Error::Decode { .. } => "decode",
            Error::Binlog(_) | Error::BinlogPanic { .. } | Error::ResyncRequired { .. } => "binlog",
            Error::PositionPurged { .. } => "position_purged",
            Error::LeaseLost { .. } => "lease_lost",
            Error::Source { .. } | Error::SourceRow { .. } | Error::StreamLost { .. } => "source",
            Error::Target { .. } => "target",
            Error::SourceTls { .. } | Error::TargetTls { .. } => "tls",
            Error::SourceUrl { .. }
            | Error::UnknownKeyColumn { .. }
            | Error::Config(_)
            | Error::Unplannable { .. }
            | Error::AlreadyReplicated { .. }
            | Error::NotReplicated { .. }
            | Error::NotATableName { .. }
            | Error::ChangedWhileLoaded { .. }
            | Error::StoppedWhileLoading { .. }
            | Error::UnreadableDefinition { .. }
            | Error::UnreadablePartition { .. }
            | Error::UnreadableProgress { .. }
            | Error::IllegalTransition { .. }
            | Error::Bug { .. } => "state",
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
            Error::StreamLost { .. } => true,
            Error::Target { cause, .. } => match cause {
                TargetCause::Network | TargetCause::TimedOut => true,
                // An error without a code is a proxy's or a restarting server's page.
                TargetCause::Server { code } => {
                    code.is_none_or(|c| TRANSIENT_TARGET_CODES.contains(&c))
                }
                TargetCause::Answer | TargetCause::Client => false,
            },
            _ => false,
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
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
    fn target_errors_are_classified_once() {
        let target = |cause| Error::Target {
            url: "http://x".into(),
            message: "m".into(),
            cause,
        };
        assert!(target(TargetCause::Network).is_transient());
        assert!(target(TargetCause::TimedOut).is_transient());
        assert!(target(TargetCause::Server { code: Some(241) }).is_transient());
        assert!(target(TargetCause::Server { code: None }).is_transient());
        assert!(!target(TargetCause::Server { code: Some(60) }).is_transient());
        assert!(!target(TargetCause::Answer).is_transient());
        let lost = Error::StreamLost {
            url: "mysql://x".into(),
            detail: "silent".into(),
        };
        assert!(lost.is_transient());
    }
}
