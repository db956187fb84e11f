//! One pipe: its lifecycle from Provisioning to Running (or Completed / Failed), and the
//! operator commands that move it between Running, Paused, Snapshot, Resync and Modifying.
//!
//! How it is put together, from the top: [`run`] provisions the pipe (state store, source)
//! and hands each drive to [`drive`], which sets it up ([`setup`]), loads it ([`loading`],
//! [`resync`]) and replicates it ([`cdc`], one [`session`] at a time, committing batches by
//! [`commit`] and following DDL by [`schema_change`]); between CDC sessions it acts on what
//! CDC handed back: operator [`commands`] and table [`reload`]s. Every step reads one context
//! ([`context::Ctx`]) and records what it changes in the [`ledger`]: the lifecycle state
//! ([`crate::lifecycle`]) and the tables' phases ([`tables`]), persisted and shown from there.
//!
//! Each state is entered when the previous one's work is done and persisted with a reason.
//! Restart safety: the snapshot resumes per partition from its recorded progress, a resync
//! from its own recorded progress, and CDC from the last checkpoint; nothing is local. A
//! Failed pipe stays up and answers: `resume` provisions it again (after a fix), `resync`
//! reloads it.

mod cdc;
mod commands;
mod commit;
mod context;
pub(crate) mod control;
mod drive;
pub(crate) mod health;
mod ledger;
mod loading;
mod owner;
mod reload;
mod resync;
mod retry;
mod schema_change;
mod session;
mod setup;
mod tables;
#[cfg(test)]
mod tests;

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::error;

use crate::config::PipeConfig;
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::metrics;
use crate::source::Source;
use crate::state::{ClickHouseStore, StateStore};
use crate::target::Target;
use context::{Control, Ctx};
use control::{Command, PipeHandle, Request, HISTORY_SHOWN};
use drive::{Driven, Driver};
use ledger::Ledger;
use tables::Tables;

/// How a pipe task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stopped by SIGTERM/SIGINT after flushing and checkpointing.
    Stopped,
    Completed,
    /// Stopped by SIGTERM/SIGINT while Failed.
    Failed,
}

/// Runs a pipe until shutdown or completion. A definite error moves it to Failed, where it
/// waits for `resume` or `resync`.
pub(crate) async fn run(
    cfg: PipeConfig,
    handle: PipeHandle,
    commands: mpsc::Receiver<Request>,
    shutdown: watch::Receiver<bool>,
) -> Outcome {
    let name = cfg.name.clone();
    let target = match Target::new(&cfg.target) {
        Ok(t) => t,
        Err(e) => {
            // No store to record it in: shown all the same.
            error!(pipe = %name, error = %e, "pipe failed");
            metrics::state(&name, PipeState::Failed.as_str());
            handle.update(|s| {
                s.entered("", PipeState::Failed.as_str(), &e.to_string());
                s.last_error = Some(e.to_string());
            });
            return Outcome::Failed;
        }
    };
    let store = ClickHouseStore::new(target.clone(), &cfg.target.state_database, &cfg.name);
    handle.health(|h| {
        h.limits = health::Limits {
            attempts: cfg.sync.stall_attempts,
            timeout: cfg.sync.stall_timeout,
        }
    });
    // The lag grows and a stall shows while the pipe task waits (a backoff, a slow write).
    let _publisher = Publisher::spawn(handle.clone());
    let owner = owner::Owner::new(store.clone(), handle.clone(), &name, cfg.sync.lease_period);
    let (mut commands, mut shutdown) = (commands, shutdown);
    let task = |commands, stop| Task {
        ledger: Ledger::new(
            store.clone(),
            handle.clone(),
            &name,
            Tables::new(cfg.tables.clone()),
        ),
        control: Control {
            commands,
            shutdown: stop,
            resync_requested: false,
        },
        cfg: cfg.clone(),
        target: target.clone(),
        store: store.clone(),
        handle: handle.clone(),
    };
    loop {
        // A standby until this instance holds the pipe's lease.
        let held = match owner.acquire(&mut commands, &mut shutdown).await {
            Ok(Some(held)) => held,
            Ok(None) => return Outcome::Stopped,
            // The state store cannot be reached as configured (a certificate, a login):
            // Failed, as a drive that fails, until `resume` or `resync`.
            Err(e) => {
                let mut failed = task(commands, shutdown.clone());
                if !failed.failed(e).await {
                    return Outcome::Failed;
                }
                commands = failed.control.commands;
                continue;
            }
        };
        let keeper = owner.keep(held.clone(), shutdown.clone());
        let mut task = task(commands, keeper.stop.clone());
        let (outcome, fenced) = task.own().await;
        commands = task.control.commands;
        if keeper.finish() || fenced {
            // Another instance replicates the pipe now: this one stands by again.
            owner.deposed();
            continue;
        }
        owner.release(&held).await;
        return outcome;
    }
}

/// The pipe task: what it keeps from one drive to the next.
struct Task<S> {
    cfg: PipeConfig,
    target: Target,
    store: S,
    handle: PipeHandle,
    ledger: Ledger<S>,
    control: Control,
}

impl<S: StateStore> Task<S> {
    /// Drives the pipe until it stops (shutdown, or its lease lost), completes, or fails and
    /// stops while Failed; `true` with it when a checkpoint write found the lease taken over
    /// (nothing more is written then, not even the failure).
    async fn own(&mut self) -> (Outcome, bool) {
        let mut in_place = false;
        loop {
            let error = match self.drive(in_place).await {
                Ok(Driven::Stopped) => return (Outcome::Stopped, false),
                Ok(Driven::Completed) => return (Outcome::Completed, false),
                Ok(Driven::Resync) => {
                    in_place = true;
                    continue;
                }
                Err(e @ Error::LeaseLost { .. }) => {
                    error!(pipe = %self.cfg.name, error = %e, "pipe stopped here");
                    return (Outcome::Stopped, true);
                }
                Err(e) => e,
            };
            in_place = false;
            if !self.failed(error).await {
                return (Outcome::Failed, false);
            }
        }
    }

    /// Provisions the pipe (state store, source), then drives it; `in_place` for a resync
    /// requested while replicating, which is not a new start: no Provisioning, no Setup.
    async fn drive(&mut self, in_place: bool) -> Result<Driven> {
        let retry = retry::Retry::step(&self.cfg.name, &self.handle, "connecting to ClickHouse");
        let state = self.ledger.state().map_or("starting", PipeState::as_str);
        let store = self.store.clone();
        if self
            .control
            .patiently(&retry, state, || store.init())
            .await?
            .is_none()
        {
            return Ok(Driven::Stopped);
        }
        let history = self.store.history(50).await?;
        self.handle.update(|s| {
            s.history = history.iter().take(HISTORY_SHOWN).cloned().collect();
        });
        let last = history.first().and_then(|t| PipeState::parse(&t.to_state));
        self.ledger.resume_from(last);
        // A resync interrupted by a crash or a failure is finished before anything else.
        let resync = self.control.resync_requested || resync::pending(&self.store).await?;
        if !in_place {
            self.ledger
                .enter(PipeState::Provisioning, "daemon started")
                .await?;
        }
        let Some(source) = self.connect().await? else {
            return Ok(Driven::Stopped);
        };
        let ctx = Ctx {
            cfg: self.cfg.clone(),
            source,
            target: self.target.clone(),
            store: self.store.clone(),
            handle: self.handle.clone(),
            server_id: self
                .cfg
                .source
                .server_id
                .unwrap_or_else(|| rand::random_range(RANDOM_SERVER_IDS)),
        };
        // The tables as this drive finds them: planned and restored again.
        self.ledger.tables = Tables::new(self.cfg.tables.clone());
        let driver = Driver {
            ctx: &ctx,
            ledger: &mut self.ledger,
            control: &mut self.control,
        };
        driver.run(resync, in_place).await
    }

    /// Connects to the source, patiently; `None` when stopped by shutdown first.
    async fn connect(&mut self) -> Result<Option<Source>> {
        let retry = retry::Retry::step(&self.cfg.name, &self.handle, "connecting to the source");
        let state = self.ledger.state().map_or("starting", PipeState::as_str);
        let cfg = &self.cfg.source;
        self.control
            .patiently(&retry, state, || Source::connect(cfg))
            .await
    }

    /// Failed with `error`: recorded, then commands are answered until `resume`/`resync`
    /// (true: drive again) or shutdown.
    async fn failed(&mut self, error: crate::error::Error) -> bool {
        let name = &self.cfg.name;
        error!(pipe = %name, error = %error, "pipe failed");
        metrics::error(name, error.kind());
        self.handle.health(|h| h.stop());
        if let Err(store_err) = self.ledger.fail(&error.to_string()).await {
            error!(pipe = %name, error = %store_err, "could not record the failure in the state store");
        }
        self.wait_in_failed().await
    }

    /// In Failed: answers commands until `resume`/`resync` (true: drive again) or shutdown.
    async fn wait_in_failed(&mut self) -> bool {
        let control = &mut self.control;
        let mut shutdown = control.shutdown.clone();
        loop {
            let request = tokio::select! {
                request = control.commands.recv() => request,
                _ = shutdown.changed() => return false,
            };
            let Some(request) = request else { return false };
            match request.command {
                Command::Resume => {
                    let _ = request.reply.send(Ok("provisioning the pipe again".into()));
                    return true;
                }
                Command::Resync => {
                    let answer = resync::request(&self.store, control).await;
                    let ok = answer.is_ok();
                    let answer = answer.map(|()| "resync started".to_owned());
                    let _ = request.reply.send(answer.map_err(|e| e.to_string()));
                    if ok {
                        return true;
                    }
                }
                _ => {
                    let _ = request.reply.send(Err(
                        "the pipe is Failed: fix the cause and `resume` it, or `resync` it".into(),
                    ));
                }
            }
        }
    }
}

/// Publishes the pipe's health every second until dropped.
struct Publisher(tokio::task::JoinHandle<()>);

impl Publisher {
    fn spawn(handle: PipeHandle) -> Publisher {
        Publisher(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                handle.health(|_| {});
            }
        }))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Server ids picked when none is configured: high, to stay clear of ids operators assign.
const RANDOM_SERVER_IDS: std::ops::Range<u32> = 1_000_000_000..2_000_000_000;
