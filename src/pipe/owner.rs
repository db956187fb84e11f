//! This instance's hold on a pipe (see `state::lease`): a standby until it holds the pipe's
//! lease, then its owner while it renews it.
//!
//! Invariants: the pipe runs only under a lease this instance holds, and every checkpoint it
//! writes is fenced by that lease (`ClickHouseStore::fence`); the pipe is stopped as soon as
//! the lease is found taken over or could not be renewed for a whole period; a standby writes
//! nothing to the state store but its claims.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::control::{PipeHandle, Request};
use crate::error::Result;
use crate::state::lease::{self, Held};
use crate::state::{ClickHouseStore, StateStore};

/// How long a claim waits before it is read back: a rival's claim of the same epoch has
/// landed by then (see `state::lease`).
const SETTLE: Duration = Duration::from_millis(500);
/// How often a standby looks at the lease: a released one is taken within this.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// This host's name (`HOSTNAME`, else `/etc/hostname`): a pod's name on Kubernetes.
fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// The instance's id: host, process and a random part (a restarted process is another
/// instance).
fn instance_id() -> String {
    format!(
        "{}-{}-{:04x}",
        host(),
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Whether the lease's holder was a process of this host that is gone (killed, crashed, a
/// restarted container): its lease is not waited out.
fn holder_dead(holder: &str) -> bool {
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    lease::dead_on_this_host(holder, &host(), std::process::id(), alive)
}

pub(super) struct Owner {
    store: ClickHouseStore,
    handle: PipeHandle,
    pipe: String,
    pub instance: String,
    period: Duration,
}

impl Owner {
    pub fn new(store: ClickHouseStore, handle: PipeHandle, pipe: &str, period: Duration) -> Owner {
        Owner {
            store,
            handle,
            pipe: pipe.to_owned(),
            instance: instance_id(),
            period,
        }
    }

    /// Standby until this instance holds the pipe's lease (`None`: shut down first). The
    /// status shows the owner and the state it last recorded; commands are refused. Transient
    /// errors are retried; a definite one (a certificate, a login) is returned.
    pub async fn acquire(
        &self,
        commands: &mut mpsc::Receiver<Request>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Held>> {
        let mut ready = false;
        loop {
            if *shutdown.borrow() {
                return Ok(None);
            }
            // The state tables (the lease's among them) exist before the lease is read.
            if !ready {
                ready = match self.store.init().await {
                    Ok(()) => true,
                    Err(e) if e.is_transient() => {
                        warn!(pipe = %self.pipe, error = %e, "cannot set up the state store; trying again");
                        false
                    }
                    Err(e) => return Err(e),
                };
            }
            let claimed = match ready {
                true => self.claim().await,
                false => Ok(None),
            };
            match claimed {
                Ok(Some(held)) => {
                    info!(pipe = %self.pipe, instance = %self.instance, epoch = held.epoch, "this instance owns the pipe");
                    self.store.fence(Some((self.pipe.clone(), held.clone())));
                    let instance = self.instance.clone();
                    self.handle.update(|s| {
                        s.role = "owner".into();
                        s.owner = Some(instance);
                    });
                    return Ok(Some(held));
                }
                Ok(None) => {}
                Err(e) if e.is_transient() => {
                    warn!(pipe = %self.pipe, error = %e, "cannot read the pipe's lease; looking again");
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = shutdown.changed() => {}
                Some(request) = commands.recv() => {
                    let owner = self.handle.status().owner.unwrap_or_else(|| "another instance".into());
                    let refusal = format!("this instance is a standby for the pipe: send commands to its owner, {owner}");
                    let _ = request.reply.send(Err(refusal));
                }
            }
        }
    }

    /// Claims the lease if it is free, expired or this instance's, and reads it back after
    /// [`SETTLE`]; shows the standby's view otherwise.
    async fn claim(&self) -> Result<Option<Held>> {
        let newest = self.store.newest_lease(&self.pipe).await?;
        let dead = newest.as_ref().is_some_and(|l| holder_dead(&l.instance));
        let Some(held) = lease::claim(newest.as_ref(), &self.instance, dead) else {
            self.show_standby(newest.map(|l| l.instance)).await?;
            return Ok(None);
        };
        self.store
            .write_lease(&self.pipe, &held, self.period)
            .await?;
        tokio::time::sleep(SETTLE).await;
        let newest = self.store.newest_lease(&self.pipe).await?;
        if lease::holds(newest.as_ref(), &held) {
            return Ok(Some(held));
        }
        self.show_standby(newest.map(|l| l.instance)).await?;
        Ok(None)
    }

    /// The status of a standby: the owner, and the state the owner last recorded.
    async fn show_standby(&self, owner: Option<String>) -> Result<()> {
        let current = self.store.current_state().await?;
        self.handle.update(|s| {
            s.role = "standby".into();
            s.owner = owner;
            if let Some(t) = current {
                s.state = t.to_state;
                s.since = t.at;
            }
        });
        Ok(())
    }

    /// Holds `held` while the pipe runs: renewed every third of a period. The keeper's `stop`
    /// fires on `shutdown`, or once the lease is taken over or could not be renewed for a
    /// period (`lost`).
    pub fn keep(&self, held: Held, mut shutdown: watch::Receiver<bool>) -> Keeper {
        let (stop_tx, stop) = watch::channel(*shutdown.borrow());
        let lost = Arc::new(AtomicBool::new(false));
        let (store, pipe, period) = (self.store.clone(), self.pipe.clone(), self.period);
        let flag = Arc::clone(&lost);
        let task = tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period / 3) => {}
                    _ = shutdown.changed() => {
                        let _ = stop_tx.send(true);
                        return;
                    }
                }
                match renew(&store, &pipe, &held, period).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => break,
                    Err(e) if renewed.elapsed() < period => {
                        warn!(pipe = %pipe, error = %e, "cannot renew the pipe's lease; trying again");
                    }
                    Err(e) => {
                        warn!(pipe = %pipe, error = %e, "the pipe's lease could not be renewed for a whole period: another instance may take over; stopping");
                        break;
                    }
                }
            }
            flag.store(true, Ordering::Relaxed);
            let _ = stop_tx.send(true);
        });
        Keeper { stop, lost, task }
    }

    /// Gives the lease up (after the pipe's final checkpoint): a standby takes over at once.
    pub async fn release(&self, held: &Held) {
        self.store.fence(None);
        match self
            .store
            .write_lease(&self.pipe, held, Duration::ZERO)
            .await
        {
            Ok(()) => info!(pipe = %self.pipe, instance = %self.instance, "lease released"),
            Err(e) => {
                warn!(pipe = %self.pipe, error = %e, "cannot release the pipe's lease: a standby takes over once it expires")
            }
        }
    }

    /// After the pipe stopped without the lease: no more fencing by it, and a standby again.
    pub fn deposed(&self) {
        self.store.fence(None);
        self.handle.update(|s| s.role = "standby".into());
    }
}

/// Renews `held` if it is still the newest lease; false when another instance took over.
async fn renew(store: &ClickHouseStore, pipe: &str, held: &Held, period: Duration) -> Result<bool> {
    let newest = store.newest_lease(pipe).await?;
    if !lease::holds(newest.as_ref(), held) {
        let by = newest.map_or_else(|| "none".into(), |l| l.instance);
        warn!(pipe, instance = %held.instance, by = %by, "the pipe was taken over by another instance; stopping it here");
        return Ok(false);
    }
    store.write_lease(pipe, held, period).await?;
    Ok(true)
}

/// The renewal of a held lease (see [`Owner::keep`]).
pub(super) struct Keeper {
    /// Fires on shutdown or when the lease is lost: the pipe's stop signal.
    pub stop: watch::Receiver<bool>,
    lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// Stops renewing; whether the lease was lost.
    pub fn finish(self) -> bool {
        self.task.abort();
        self.lost.load(Ordering::Relaxed)
    }
}
