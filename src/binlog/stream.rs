//! The replication connection: a binlog dump from a position, with heartbeats and a read
//! timeout, so that a silent source is told apart from a dead link.

use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::events::Event;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;

use crate::error::{Error, Result};
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
    source_url: String,
    from: Position,
}

impl BinlogStream {
    pub async fn open(source: &Source, server_id: u32, from: &Position) -> Result<BinlogStream> {
        let mut conn = source.conn().await?;
        let heartbeat_ns = HEARTBEAT.as_nanos().to_string();
        let mut setup = vec![format!("SET @master_heartbeat_period = {heartbeat_ns}")];
        if source.flavor == ServerFlavor::Mariadb {
            setup.push(format!(
                "SET @mariadb_slave_capability = {MARIADB_SLAVE_CAPABILITY_GTID}"
            ));
        }
        for stmt in setup {
            source.run(conn.query_drop(stmt)).await?;
        }
        let request = BinlogStreamRequest::new(server_id)
            .with_filename(from.file.as_bytes())
            .with_pos(from.pos);
        let inner = source
            .run(conn.get_binlog_stream(request))
            .await
            .map_err(|e| classify(e, from))?;
        Ok(BinlogStream {
            inner,
            source_url: source.url.clone(),
            from: from.clone(),
        })
    }

    /// The next event; a timeout or a closed stream is a transient error (reconnect).
    pub async fn next(&mut self) -> Result<Event> {
        match tokio::time::timeout(READ_TIMEOUT, self.inner.next()).await {
            Err(_) => Err(Error::Source {
                url: self.source_url.clone(),
                source: Box::new(mysql_async::Error::Io(mysql_async::IoError::Io(
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no binlog event or heartbeat for {READ_TIMEOUT:?}"),
                    ),
                ))),
            }),
            Ok(None) => Err(Error::Source {
                url: self.source_url.clone(),
                source: Box::new(mysql_async::Error::Io(mysql_async::IoError::Io(
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the source closed the binlog stream",
                    ),
                ))),
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
