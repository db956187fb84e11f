//! The live stream's reader task: reads events from the replication connection and hands them
//! to the CDC loop through a bounded queue.
//!
//! Invariants:
//! - The queue is bounded both in events ([`QUEUE_EVENTS`]) and in bytes ([`QUEUE_BYTES`]): a
//!   slow target stops the reader once the queue is full, never later, so memory stays bounded;
//!   until then the reader keeps reading while the CDC loop waits on ClickHouse inserts.
//! - Events arrive in binlog order, then at most one error, then nothing: the reader stops at
//!   the first error and the loop receives it.
//! - mysql_async parses each event inside its stream (framing, TRANSACTION_PAYLOAD
//!   decompression), where malformed bytes from a server can panic. A panic there — or anywhere
//!   in the task — becomes [`Error::BinlogPanic`] naming the position after the last good event:
//!   a definite error, so the pipe goes to Failed instead of the process crashing or the stream
//!   silently stopping.
//! - Dropping the [`Feed`] stops the reader and closes its connection.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::{FutureExt, Stream, StreamExt};
use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::stream::BinlogStream;
use crate::error::{panic_message, Error, Result};
use crate::source::Position;

/// Events read ahead of the CDC loop.
pub(crate) const QUEUE_EVENTS: usize = 4096;
/// Bytes of events read ahead; an event larger than this is read alone.
pub(crate) const QUEUE_BYTES: usize = 64 << 20;

/// An event with its share of the queue's byte budget, returned when it is dropped.
pub(crate) struct Queued {
    pub event: Event,
    _permit: OwnedSemaphorePermit,
}

/// The receiving end of the reader task.
pub(crate) struct Feed {
    rx: mpsc::Receiver<Result<Queued>>,
    task: Option<JoinHandle<()>>,
    /// Where the reader was after the last event the loop received.
    last: Cursor,
}

/// The position after the last event seen: the file from ROTATE events, the offset from
/// each event's end position.
#[derive(Debug, Clone)]
struct Cursor {
    file: String,
    pos: u64,
}

impl Cursor {
    fn observe(&mut self, event: &Event) {
        let pos = event.header().log_pos();
        if pos != 0 {
            self.pos = u64::from(pos);
        }
        if event.header().event_type_raw() == EventType::ROTATE_EVENT as u8 {
            if let Ok(Some(EventData::RotateEvent(rotate))) = event.read_data() {
                let name = super::events::strip_checksum(event, rotate.name_raw());
                self.file = String::from_utf8_lossy(name).into_owned();
                self.pos = rotate.position();
            }
        }
    }

    fn describe(&self) -> String {
        format!("after {}:{}", self.file, self.pos)
    }
}

impl Feed {
    /// Starts the reader task on an open stream that begins at `from`.
    pub fn spawn(stream: BinlogStream, from: &Position) -> Feed {
        let events = futures_util::stream::unfold(stream, |mut stream| async move {
            let next = stream.next().await;
            Some((next, stream))
        });
        Feed::spawn_events(Box::pin(events), from)
    }

    /// Starts the reader task on any stream of events (tests stand in for the server).
    fn spawn_events<S>(events: S, from: &Position) -> Feed
    where
        S: Stream<Item = Result<Event>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE_EVENTS);
        let cursor = Cursor {
            file: from.file.clone(),
            pos: from.pos,
        };
        let task = tokio::spawn(read(events, tx, cursor.clone()));
        Feed {
            rx,
            task: Some(task),
            last: cursor,
        }
    }

    /// Whether events are read and waiting for the loop.
    pub fn pending(&self) -> bool {
        !self.rx.is_empty()
    }

    /// The next event, or the error that stopped the reader.
    pub async fn next(&mut self) -> Result<Queued> {
        match self.rx.recv().await {
            Some(Ok(queued)) => {
                self.last.observe(&queued.event);
                Ok(queued)
            }
            Some(Err(e)) => Err(e),
            // The task ended without saying why: it panicked outside the guarded read, or
            // was cancelled. Either way the stream is gone and the loop must not wait on it.
            None => {
                let detail = match self.task.take() {
                    Some(task) => match task.await {
                        Err(e) if e.is_panic() => format!(
                            "the binlog reader panicked: {}",
                            panic_message(e.into_panic().as_ref())
                        ),
                        Err(e) => format!("the binlog reader task ended: {e}"),
                        Ok(()) => "the binlog reader stopped".into(),
                    },
                    None => "the binlog reader stopped".into(),
                };
                Err(Error::BinlogPanic {
                    position: self.last.describe(),
                    detail,
                })
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn read<S>(mut events: S, tx: mpsc::Sender<Result<Queued>>, mut cursor: Cursor)
where
    S: Stream<Item = Result<Event>> + Unpin,
{
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    loop {
        let next = AssertUnwindSafe(events.next()).catch_unwind().await;
        let event = match next {
            Ok(Some(Ok(event))) => event,
            // The live stream never ends (a closed connection is an error), others may.
            Ok(None) => {
                let _ = tx
                    .send(Err(Error::Binlog(format!(
                        "the binlog stream ended {}",
                        cursor.describe()
                    ))))
                    .await;
                return;
            }
            Ok(Some(Err(e))) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(panic) => {
                let _ = tx
                    .send(Err(Error::BinlogPanic {
                        position: cursor.describe(),
                        detail: format!(
                            "the binlog reader panicked: {}",
                            panic_message(panic.as_ref())
                        ),
                    }))
                    .await;
                return;
            }
        };
        cursor.observe(&event);
        let size = (event.data().len() + 19).clamp(1, QUEUE_BYTES) as u32;
        let Ok(permit) = budget.clone().acquire_many_owned(size).await else {
            return;
        };
        let queued = Queued {
            event,
            _permit: permit,
        };
        if tx.send(Ok(queued)).await.is_err() {
            return; // the loop is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::tests::event_bytes;

    fn event(log_pos: u32) -> Event {
        let bytes = event_bytes(16, &7u64.to_le_bytes(), log_pos);
        Event::read(
            &mysql_common::binlog::events::FormatDescriptionEvent::new(
                mysql_common::binlog::consts::BinlogVersion::Version4,
            ),
            &bytes[..],
        )
        .expect("event")
    }

    fn start() -> Position {
        Position {
            file: "binlog.000007".into(),
            pos: 4,
            gtid: String::new(),
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_reader_is_a_definite_error_naming_the_position() {
        let events = futures_util::stream::iter([Ok(event(100)), Ok(event(200))]).chain(
            futures_util::stream::poll_fn(|_| -> std::task::Poll<Option<Result<Event>>> {
                panic!("malformed event")
            }),
        );
        let mut feed = Feed::spawn_events(Box::pin(events), &start());
        assert_eq!(
            feed.next().await.expect("first").event.header().log_pos(),
            100
        );
        assert_eq!(
            feed.next().await.expect("second").event.header().log_pos(),
            200
        );
        let err = feed.next().await.map(|_| ()).unwrap_err();
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.contains("after binlog.000007:200") && text.contains("malformed event"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_reader_stops_when_the_queue_is_full() {
        let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = produced.clone();
        let events = futures_util::stream::repeat_with(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(event(300))
        });
        let mut feed = Feed::spawn_events(Box::pin(events), &start());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Full: the queue, plus the event waiting to be sent.
        let read_ahead = produced.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (QUEUE_EVENTS..=QUEUE_EVENTS + 1).contains(&read_ahead),
            "{read_ahead}"
        );
        // Taking one event lets exactly one more in.
        drop(feed.next().await.expect("event"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(
            produced.load(std::sync::atomic::Ordering::SeqCst),
            read_ahead + 1
        );
    }
}
