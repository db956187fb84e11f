//! The API's listener: accepts connections (over TLS when configured) and serves HTTP/1 on
//! them, within limits no client can exhaust.
//!
//! Invariants:
//! - at most `max_connections` connections are open at once, so the API never holds more file
//!   descriptors than that and the pipes' own connections always find some;
//! - past the cap, a new connection closes the one that has been idle longest (connected
//!   without a request in flight: half-open, slow, or keep-alive); one with a request in flight
//!   is never closed, and when every one has, the new connection is closed instead. A flood of
//!   idle connections therefore only evicts itself, and a probe that sends its request at once
//!   is served;
//! - a connection gets [`HEADER_TIMEOUT`] to complete its TLS handshake and then each request
//!   head, or it is closed;
//! - failing to accept (out of file descriptors) never spins: the loop waits and retries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::warn;

/// Time a client has for its TLS handshake, and then for each request head.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Wait after a failed accept (e.g. EMFILE) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One open connection, as the cap sees it.
struct Entry {
    in_flight: usize,
    /// When it last became idle (connected, or its last request answered).
    idle_since: Instant,
    close: Arc<Notify>,
}

/// The connection to close to make room: the one idle longest, never one serving a request.
fn victim<'a>(conns: impl Iterator<Item = (u64, usize, Instant)> + 'a) -> Option<u64> {
    conns
        .filter(|(_, in_flight, _)| *in_flight == 0)
        .min_by_key(|(id, _, idle_since)| (*idle_since, *id))
        .map(|(id, _, _)| id)
}

/// The open connections, and the cap.
struct Tracker {
    max: usize,
    conns: Mutex<(u64, BTreeMap<u64, Entry>)>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Entry>)> {
        // A panic elsewhere while holding the lock leaves consistent data (plain inserts).
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for one more connection (evicting if needed); `None` when all are busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut guard = self.lock();
        let (next, conns) = &mut *guard;
        if conns.len() >= self.max {
            let id = victim(conns.iter().map(|(id, e)| (*id, e.in_flight, e.idle_since)))?;
            if let Some(evicted) = conns.remove(&id) {
                evicted.close.notify_one();
            }
        }
        let id = *next;
        *next += 1;
        let close = Arc::new(Notify::new());
        conns.insert(
            id,
            Entry {
                in_flight: 0,
                idle_since: Instant::now(),
                close: close.clone(),
            },
        );
        Some(Slot {
            tracker: self.clone(),
            id,
            close,
        })
    }

    fn open(&self) -> usize {
        self.lock().1.len()
    }
}

/// A connection's place under the cap; leaving it (drop) frees it.
struct Slot {
    tracker: Arc<Tracker>,
    id: u64,
    close: Arc<Notify>,
}

impl Slot {
    /// Marks a request in flight until the guard is dropped.
    fn busy(self: &Arc<Self>) -> Busy {
        if let Some(e) = self.tracker.lock().1.get_mut(&self.id) {
            e.in_flight += 1;
        }
        Busy(self.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.lock().1.remove(&self.id);
    }
}

struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(e) = self.0.tracker.lock().1.get_mut(&self.0.id) {
            e.in_flight = e.in_flight.saturating_sub(1);
            e.idle_since = Instant::now();
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets open requests finish
/// (the caller bounds how long).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let tracker = Arc::new(Tracker {
        max: max_connections.max(1),
        conns: Mutex::new((0, BTreeMap::new())),
    });
    let mut tasks = JoinSet::new();
    let mut warned: Option<Instant> = None;
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors (or memory): wait for some to be freed. A client
                // that gave up before being accepted is not worth a line.
                if e.kind() != std::io::ErrorKind::ConnectionAborted
                    && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10))
                {
                    warn!(error = %e, open = tracker.open(), "api: cannot accept a connection; retrying");
                    warned = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = tracker.admit() else {
            // Every connection has a request in flight: this one waits its turn elsewhere.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            slot,
            app.clone(),
            tls.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    stream: TcpStream,
    slot: Slot,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) {
    let close = slot.close.clone();
    let slot = Arc::new(slot);
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let busy = slot.busy();
        let call = TowerToHyperService::new(app.clone()).call(request);
        async move {
            let response = call.await;
            drop(busy);
            response
        }
    });
    match tls {
        None => http(TokioIo::new(stream), service, close, shutdown).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    // A failed or slow handshake: nothing to answer in.
                    _ => return,
                },
                _ = close.notified() => return,
            };
            http(TokioIo::new(stream), service, close, shutdown).await
        }
    }
}

/// HTTP/1 on one connection until it ends, is evicted, or the API shuts down (gracefully:
/// the request in flight is answered).
async fn http<I, S>(
    io: TokioIo<I>,
    service: S,
    close: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = tokio::select! {
        _ = conn.as_mut() => false,
        _ = close.notified() => false,
        stop = shutdown.wait_for(|stop| *stop) => stop.is_ok(),
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_makes_room() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // 1 busy since long ago, 2 idle since 5 ms, 3 idle since 2 ms: 3 goes first.
        let conns = [(1, 1, at(0)), (2, 0, at(5)), (3, 0, at(2))];
        assert_eq!(victim(conns.into_iter()), Some(3));
        assert_eq!(victim([(1, 1, at(0)), (2, 2, at(1))].into_iter()), None);
        assert_eq!(victim([(7, 0, at(1)), (4, 0, at(1))].into_iter()), Some(4));
    }

    #[tokio::test]
    async fn the_cap_holds_and_busy_connections_stay() {
        let tracker = Arc::new(Tracker {
            max: 2,
            conns: Mutex::new((0, BTreeMap::new())),
        });
        let first = Arc::new(tracker.admit().unwrap());
        let busy = first.busy();
        let second = tracker.admit().unwrap();
        // Full: the idle one (second) is told to close, the busy one stays.
        let third = tracker.admit().unwrap();
        assert_eq!(tracker.open(), 2);
        tokio::time::timeout(Duration::from_secs(1), second.close.notified())
            .await
            .expect("the idle connection is told to close");
        drop(second);
        assert_eq!(tracker.open(), 2, "an evicted slot is already gone");
        let third = Arc::new(third);
        let _both_busy = third.busy();
        assert!(tracker.admit().is_none(), "every connection is busy");
        drop(busy);
        assert!(tracker.admit().is_some(), "the first is idle again");
    }
}
