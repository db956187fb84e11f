//! The replication connection: a binlog dump from a position, with heartbeats and a read
//! timeout, so that a silent source is told apart from a dead link.

use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::events::Event;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;

use tracing::warn;

use crate::error::{Error, Result};
use crate::source::gtid::GtidState;
use crate::source::{Position, ServerFlavor, Source};

/// Heartbeat period asked of the source: an idle source sends one per period.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);
/// A link that is silent for two heartbeats (plus slack) is dead: reconnect.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(12);
/// MariaDB: tell the server we understand GTID events (otherwise it rewrites them).
const MARIADB_SLAVE_CAPABILITY_GTID: u8 = 4;
/// ER_MASTER_FATAL_ERROR_READING_BINLOG: the requested binlog is gone (purged) or unreadable.
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;

pub(crate) struct BinlogStream {
    inner: mysql_async::BinlogStream,
    /// The first event, read by `open` to learn whether the server accepted the start.
    first: Option<Event>,
    source_url: String,
    from: Position,
    /// How the dump was started, for the log.
    pub start: Start,
}

/// Where a dump starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// MariaDB `@slave_connect_state`: the position's GTID state, which does not depend on
    /// file names (a new primary, a renamed binlog).
    Gtid,
    FileOffset,
}

impl std::fmt::Display for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Start::Gtid => "GTID",
            Start::FileOffset => "file offset",
        })
    }
}

impl BinlogStream {
    /// Opens a dump that resumes after `from`: by GTID on MariaDB when the position has a GTID
    /// state, else — or when the server refuses that state — by file offset.
    pub async fn open(source: &Source, server_id: u32, from: &Position) -> Result<BinlogStream> {
        let by_gtid = source.flavor == ServerFlavor::Mariadb
            && GtidState::parse(&from.gtid).is_some_and(|s| !s.is_empty());
        if by_gtid {
            match BinlogStream::dump(source, server_id, from, Start::Gtid).await {
                Err(Error::PositionPurged { detail, .. }) => warn!(
                    position = %from,
                    detail,
                    "the source cannot resume from the GTID state; resuming from the file offset"
                ),
                other => return other,
            }
        }
        BinlogStream::dump(source, server_id, from, Start::FileOffset).await
    }

    async fn dump(
        source: &Source,
        server_id: u32,
        from: &Position,
        start: Start,
    ) -> Result<BinlogStream> {
        let mut conn = source.conn().await?;
        let heartbeat_ns = HEARTBEAT.as_nanos().to_string();
        let mut setup = vec![format!("SET @master_heartbeat_period = {heartbeat_ns}")];
        if source.flavor == ServerFlavor::Mariadb {
            setup.push(format!(
                "SET @mariadb_slave_capability = {MARIADB_SLAVE_CAPABILITY_GTID}"
            ));
        }
        let mut request = BinlogStreamRequest::new(server_id);
        match start {
            Start::Gtid => {
                // The state is digits, dashes and commas (checked by parsing it).
                setup.push(format!("SET @slave_connect_state = '{}'", from.gtid));
                setup.push("SET @slave_gtid_strict_mode = 0".into());
                setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
            }
            Start::FileOffset => {
                request = request
                    .with_filename(from.file.as_bytes())
                    .with_pos(from.pos);
            }
        }
        for stmt in setup {
            source.run(conn.query_drop(stmt)).await?;
        }
        let inner = source
            .run(conn.get_binlog_stream(request))
            .await
            .map_err(|e| classify(e, from))?;
        let mut stream = BinlogStream {
            inner,
            first: None,
            source_url: source.url.clone(),
            from: from.clone(),
            start,
        };
        // The server answers a start it cannot serve with an error instead of the first event.
        stream.first = Some(stream.read().await?);
        Ok(stream)
    }

    /// The next event; a timeout or a closed stream is a transient error (reconnect).
    pub async fn next(&mut self) -> Result<Event> {
        match self.first.take() {
            Some(event) => Ok(event),
            None => self.read().await,
        }
    }

    async fn read(&mut self) -> Result<Event> {
        match tokio::time::timeout(READ_TIMEOUT, self.inner.next()).await {
            Err(_) => Err(Error::StreamLost {
                url: self.source_url.clone(),
                detail: format!("no binlog event or heartbeat for {READ_TIMEOUT:?}"),
            }),
            Ok(None) => Err(Error::StreamLost {
                url: self.source_url.clone(),
                detail: "the source closed the binlog stream".into(),
            }),
            Ok(Some(Ok(event))) => Ok(event),
            Ok(Some(Err(source))) => Err(classify(
                Error::Source {
                    url: self.source_url.clone(),
                    source: Box::new(source),
                },
                &self.from,
            )),
        }
    }
}

/// Server error 1236 means the position is gone: a definite error that names the position.
fn classify(err: Error, from: &Position) -> Error {
    match err {
        Error::Source { ref source, .. } => match source.as_ref() {
            mysql_async::Error::Server(e) if e.code == ER_MASTER_FATAL_ERROR_READING_BINLOG => {
                Error::PositionPurged {
                    position: from.to_string(),
                    detail: e.message.clone(),
                }
            }
            _ => err,
        },
        other => other,
    }
}
