//! The Running state: tail the binlog from the checkpoint and apply it in batches.
//!
//! Commit protocol (see [`super::commit`]): a batch closes at `batch_rows` row changes or
//! `flush_interval`, always between transactions; its rows are inserted table by table (each
//! insert synchronous), and only then the checkpoint — end position of its last transaction
//! and the next version — is stored. A crash anywhere replays from the previous checkpoint;
//! since versions are counted from the checkpoint in binlog order, the replay writes the very
//! same rows and versions and ReplacingMergeTree collapses the duplicates.
//!
//! A transient error (connection lost, source restart, ClickHouse unavailable) drops whatever
//! is not checkpointed and resumes from the last checkpoint after a backoff: the same replay.
//!
//! Operator commands arrive between events: pause flushes and checkpoints the committed rows
//! (Pausing), closes the dump (Paused) and waits for resume, which reconnects from that
//! checkpoint; resync and table changes are handed back to the driver after the same flush.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tracing::{info, warn};

use super::context::{Control, Ctx};
use super::control::{Command, Request};
use super::health::Moment;
use super::ledger::Ledger;
use super::retry::{self, Retry};
use super::session::Session;
use crate::binlog::feed::Feed;
use crate::binlog::stream::BinlogStream;
use crate::error::Result;
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::snapshot::{self, Changed};
use crate::source::{Position, ServerFlavor};
use crate::state::{Checkpoint, StateStore};

/// A table being loaded into its copy alongside CDC.
#[derive(Debug, Clone)]
pub(super) struct Load {
    pub table: String,
    /// The table's plan, aimed at its copy.
    pub plan: TablePlan,
    /// State key of the load's progress.
    pub namespace: String,
}

/// Why replication stopped without an error.
pub(super) enum Exit {
    Shutdown,
    /// A command for the driver (resync, table changes), received after the committed rows
    /// were flushed and checkpointed.
    Command(Request),
    /// The checkpoint reached `reload_after`: tables that changed under their load can be
    /// reloaded.
    Reload,
    /// A table's load into its copy ended (`None`: stopped by shutdown), after the rows read
    /// so far were flushed and checkpointed.
    Loaded {
        load: Box<Load>,
        result: Result<Option<Vec<Changed>>>,
    },
}

/// How one replication session ended.
pub(super) enum Ended {
    Exit(Exit),
    Paused,
}

pub(super) struct Cdc<'a, S> {
    pub ctx: &'a Ctx<S>,
    pub ledger: &'a mut Ledger<S>,
    pub control: &'a mut Control,
    /// Hand back [`Exit::Reload`] once the checkpoint reaches this position.
    pub reload_after: Option<Position>,
    /// Tables loading into their copies meanwhile; each is handed back ([`Exit::Loaded`])
    /// when its load ends.
    pub loads: Vec<Load>,
    /// Tables whose initial snapshot loads meanwhile, into their targets, which CDC writes
    /// too; the session takes them as loaded when all are, without stopping.
    pub initial: Vec<TablePlan>,
}

impl<S: StateStore> Cdc<'_, S> {
    /// Replicates from `checkpoint` (moving it along) until shutdown or a step for the driver,
    /// resuming after transient errors; Paused in between when asked.
    pub async fn run(mut self, checkpoint: &mut Checkpoint) -> Result<Exit> {
        let ctx = self.ctx;
        let retry = Retry {
            message: Some("replication interrupted; resuming from the last checkpoint"),
            ..ctx.retry("replication")
        };
        let mut attempts = retry.attempts();
        loop {
            let error = match self.stream_once(checkpoint).await {
                Ok(Ended::Exit(exit)) => return Ok(exit),
                Ok(Ended::Paused) => {
                    ctx.handle.health(|h| h.stop());
                    match self.paused(checkpoint).await? {
                        Some(exit) => return Ok(exit),
                        None => attempts = retry.attempts(),
                    }
                    continue;
                }
                Err(e) => e,
            };
            let delay = attempts.failed(error)?;
            if let Some(behind) = source_ahead_of(ctx, &checkpoint.position).await {
                ctx.handle.health(|h| h.behind(behind, Moment::now()));
            }
            if !retry::sleep_unless_shutdown(delay, &self.control.shutdown).await {
                return Ok(Exit::Shutdown);
            }
        }
    }

    /// Waits in Paused for resume (`None`: replicate again), shutdown or a driver command.
    pub(super) async fn paused(&mut self, checkpoint: &Checkpoint) -> Result<Option<Exit>> {
        let mut verify = verification_timer();
        let mut shutdown = self.control.shutdown.clone();
        loop {
            let request = tokio::select! {
                request = self.control.commands.recv() => request,
                _ = shutdown.changed() => return Ok(Some(Exit::Shutdown)),
                _ = verify.tick() => {
                    // Nothing reads the binlog while paused: this is when it gets purged.
                    verify_position(self.ctx, &checkpoint.position).await?;
                    continue;
                }
            };
            let Some(request) = request else {
                return Ok(Some(Exit::Shutdown));
            };
            let refusal = match request.command {
                Command::Resume => {
                    self.ledger
                        .enter(PipeState::Running, "resumed by operator")
                        .await?;
                    let _ = request.reply.send(Ok("resumed".into()));
                    return Ok(None);
                }
                Command::Resync => return Ok(Some(Exit::Command(request))),
                Command::Pause => "the pipe is already paused",
                Command::AddTable { .. }
                | Command::RemoveTable { .. }
                | Command::ResyncTable { .. } => {
                    "the pipe is paused: resume it before changing its tables"
                }
            };
            let _ = request.reply.send(Err(refusal.into()));
        }
    }

    /// One replication session, from `checkpoint` until an error, shutdown or a command.
    async fn stream_once(&mut self, checkpoint: &mut Checkpoint) -> Result<Ended> {
        let Cdc {
            ctx,
            ledger,
            control,
            reload_after,
            loads,
            initial,
        } = self;
        let ctx: &Ctx<S> = ctx;
        look_up_gtid(ctx, checkpoint).await?;
        ctx.handle.health(|h| h.start(Moment::now()));
        let stream = BinlogStream::open(&ctx.source, ctx.server_id, &checkpoint.position).await?;
        info!(pipe = %ctx.name(), position = %checkpoint.position, by = %stream.start, "replicating");
        // Read in a task of its own: the stream keeps flowing while a batch is inserted.
        let mut feed = Feed::spawn(stream, &checkpoint.position);
        let mut session = Session::new(ctx, ledger, checkpoint, reload_after).await?;
        let mut verify = verification_timer();
        let mut health = tokio::time::interval(HEALTH_EVERY);
        // A clone per session: one that saw the signal cannot miss it in the next session.
        let mut shutdown = control.shutdown.clone();
        let mut loading: FuturesUnordered<_> = loads
            .iter()
            .map(|l| load(ctx, l, control.shutdown.clone()))
            .collect();
        let mut initial_load = std::pin::pin!(load_initial(ctx, initial, control.shutdown.clone()));
        let mut loading_initial = !initial.is_empty();
        loop {
            session.flush_if_due().await?;
            if session.reload_due() {
                session.flush().await?;
                return Ok(Ended::Exit(Exit::Reload));
            }
            let wake = session
                .deadline
                .max(std::time::Instant::now() + Duration::from_millis(1));
            tokio::select! {
                queued = feed.next() => session.event(queued?).await?,
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = health.tick() => {
                    let batch = &session.batch;
                    let behind = batch.in_transaction() || batch.position.is_some() || feed.pending();
                    ctx.handle.health(|h| h.behind(behind, Moment::now()));
                }
                result = &mut initial_load, if loading_initial => {
                    loading_initial = false;
                    // `None`: stopped by shutdown, which ends the session.
                    if let Some(changed) = result? {
                        session.initial_loaded(initial, &changed).await?;
                    }
                }
                Some((load, result)) = loading.next(), if !loading.is_empty() => {
                    // The copy gets every change read so far before it is swapped in.
                    session.flush().await?;
                    let load = Box::new(load.clone());
                    return Ok(Ended::Exit(Exit::Loaded { load, result }));
                }
                _ = verify.tick(), if !session.batch.in_transaction() => {
                    // Checkpoint what was read first: a file purged after the reader left it
                    // is no loss once the checkpoint has left it too.
                    session.flush().await?;
                    verify_position(ctx, &session.checkpoint.position).await?;
                }
                _ = shutdown.changed() => {
                    session.flush().await?;
                    return Ok(Ended::Exit(Exit::Shutdown));
                }
                Some(request) = control.commands.recv() => {
                    if let Some(ended) = command(&mut session, request).await? {
                        return Ok(ended);
                    }
                }
            }
        }
    }
}

/// A command received while replicating: pause here, refuse a resume, hand the others to
/// the driver (after flushing).
pub(super) async fn command<S: StateStore>(
    session: &mut Session<'_, S>,
    request: Request,
) -> Result<Option<Ended>> {
    if session.ledger.state() == Some(PipeState::Snapshot) {
        // The initial load runs beside CDC: the pipe takes commands once it is Running.
        let refusal = match request.command {
            Command::Resume => "the pipe is not paused",
            _ => "the pipe is loading its initial snapshot (replication runs beside it): try again once it is Running",
        };
        let _ = request.reply.send(Err(refusal.into()));
        return Ok(None);
    }
    match request.command {
        Command::Pause => {
            let ledger = &mut *session.ledger;
            ledger
                .enter(PipeState::Pausing, "requested by operator")
                .await?;
            session.flush().await?;
            let reason = format!(
                "flushed and checkpointed at {}",
                session.checkpoint.position
            );
            session.ledger.enter(PipeState::Paused, &reason).await?;
            let _ = request.reply.send(Ok(format!("paused; {reason}")));
            Ok(Some(Ended::Paused))
        }
        Command::Resume => {
            let _ = request.reply.send(Err("the pipe is not paused".into()));
            Ok(None)
        }
        _ => {
            session.flush().await?;
            Ok(Some(Ended::Exit(Exit::Command(request))))
        }
    }
}

/// A position without its GTID state (where a snapshot or a cdc_only start began), on
/// MariaDB: looked up once — the server reads the binlog file up to the offset — so that the
/// decoder tracks every domain and the checkpoints resume by GTID from then on.
async fn look_up_gtid<S: StateStore>(ctx: &Ctx<S>, checkpoint: &mut Checkpoint) -> Result<()> {
    if ctx.source.flavor != ServerFlavor::Mariadb || !checkpoint.position.gtid.is_empty() {
        return Ok(());
    }
    let mut conn = ctx.source.conn().await?;
    let (file, pos) = (&checkpoint.position.file, checkpoint.position.pos);
    if let Some(gtid) = ctx.source.gtid_at(&mut conn, file, pos).await? {
        checkpoint.position.gtid = gtid;
    }
    Ok(())
}

/// Loads one table's copy, retrying transient errors from its recorded partitions.
pub(super) async fn load<'l, S: StateStore>(
    ctx: &Ctx<S>,
    load: &'l Load,
    shutdown: watch::Receiver<bool>,
) -> (&'l Load, Result<Option<Vec<Changed>>>) {
    let store = ctx.store.namespaced(&load.namespace);
    let loader = ctx.loader(&store, 1);
    let step = format!("reload of {}", load.table);
    let retry = Retry {
        what: "reload",
        step: &step,
        message: Some("reload interrupted; resuming it"),
        ..ctx.retry("reload")
    };
    let loaded = load_retried(&loader, &retry, &[&load.plan], &shutdown).await;
    (load, loaded)
}

/// Loads the initial snapshot of `plans` into their targets beside CDC, retrying transient
/// errors from the recorded partitions.
async fn load_initial<S: StateStore>(
    ctx: &Ctx<S>,
    plans: &[TablePlan],
    shutdown: watch::Receiver<bool>,
) -> Result<Option<Vec<Changed>>> {
    let loader = ctx.loader(&ctx.store, ctx.cfg.snapshot.tables_in_parallel);
    let retry = Retry {
        message: Some("snapshot interrupted; resuming it from its recorded partitions"),
        ..ctx.retry("loading the snapshot")
    };
    let plans: Vec<&TablePlan> = plans.iter().collect();
    load_retried(&loader, &retry, &plans, &shutdown).await
}

/// Loads `plans`, retrying transient errors from their recorded partitions; `None`: stopped
/// by shutdown (the wait between attempts always goes on: only the load itself stops).
async fn load_retried<T: StateStore>(
    loader: &snapshot::Loader<'_, T>,
    retry: &Retry<'_>,
    plans: &[&TablePlan],
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<Vec<Changed>>> {
    let loaded = retry.run(
        || snapshot::load_tables(loader, plans, shutdown),
        retry::sleep,
    );
    loaded.await.map(Option::flatten)
}

/// Whether the source has written past `position` (`None`: it could not be asked in
/// [`SOURCE_PROBE_TIMEOUT`]). Asked while the stream is down, so that the lag keeps growing
/// when there is something to apply, and does not when the source is idle.
async fn source_ahead_of<S: StateStore>(ctx: &Ctx<S>, position: &Position) -> Option<bool> {
    match tokio::time::timeout(SOURCE_PROBE_TIMEOUT, ctx.current_position()).await {
        Ok(Ok(current)) => Some(!position.reached(&current)),
        _ => None,
    }
}

/// Fails with "resync required" when the source can no longer serve `position`; a check
/// that cannot reach the source is only logged (the stream notices a dead source itself).
async fn verify_position<S: StateStore>(ctx: &Ctx<S>, position: &Position) -> Result<()> {
    let checked = async {
        let mut conn = ctx.source.conn().await?;
        ctx.source.check_position(&mut conn, position).await
    };
    match checked.await {
        Err(e) if e.is_transient() => {
            warn!(pipe = %ctx.name(), error = %e, "could not verify the binlog position");
            Ok(())
        }
        other => other,
    }
}

/// How often the lag and the stall signal are brought up to date while streaming.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// How long the source may take to tell its position while the stream is down.
const SOURCE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the checkpoint is verified to be still on the source (running or paused).
const VERIFY_POSITION_EVERY: Duration = Duration::from_secs(15);

fn verification_timer() -> tokio::time::Interval {
    let start = tokio::time::Instant::now() + VERIFY_POSITION_EVERY;
    let mut timer = tokio::time::interval_at(start, VERIFY_POSITION_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}
