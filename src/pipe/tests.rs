//! The pipe's lifecycle driven through the in-memory state store, without servers: the steps
//! the pipe takes (pause and resume, a resync and its crash, a table isolated, reloaded and
//! swapped in, the commands of a Failed pipe) run as the daemon runs them, against a
//! [`MemoryStore`] and a stand-in ClickHouse that answers every statement and keeps it. What
//! needs the source (reading the binlog, planning a table) is left to the integration tests;
//! each "restart" here is a new ledger on the same store, as a new daemon is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::cdc::{self, Cdc, Ended};
use super::commands::{self, After};
use super::commit::{self, Writer};
use super::context::{Control, Ctx};
use super::control::{Command, PipeHandle, Request};
use super::ledger::Ledger;
use super::retry::Retry;
use super::session::Session;
use super::tables::{Phase, Tables};
use super::{reload, resync, Task};
use crate::batch::{Batch, Taken};
use crate::clickhouse::sql::Meta;
use crate::config::{Flavor, Mode, PipeConfig, SourceConfig, TablesConfig, TargetConfig};
use crate::error::Result;
use crate::lifecycle::PipeState;
use crate::schema::{TableDef, TablePlan};
use crate::snapshot::Changed;
use crate::source::{Position, ServerFlavor, Source};
use crate::state::memory::MemoryStore;
use crate::state::{Checkpoint, Progress, StateStore};
use crate::target::Target;

/// A ClickHouse that answers every request with success and no rows, and keeps each
/// statement (its query parameter and body, as text).
struct FakeClickHouse {
    url: String,
    statements: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeClickHouse {
    async fn start() -> FakeClickHouse {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let statements = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&statements);
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    let query: String =
                        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                            .filter(|(k, _)| k == "query")
                            .map(|(_, v)| v.into_owned())
                            .collect();
                    let text = format!("{query} {}", String::from_utf8_lossy(&body));
                    kept.lock().expect("statements").push(text);
                    ""
                }
            });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeClickHouse {
            url,
            statements,
            server,
        }
    }

    /// The statements received that contain `text`.
    fn seen(&self, text: &str) -> Vec<String> {
        let statements = self.statements.lock().expect("statements");
        statements
            .iter()
            .filter(|s| s.contains(text))
            .cloned()
            .collect()
    }
}

impl Drop for FakeClickHouse {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A pipe on the in-memory store and the fake ClickHouse, its source never reached.
struct Pipe {
    ctx: Ctx<MemoryStore>,
    ledger: Ledger<MemoryStore>,
    control: Control,
    commands: mpsc::Sender<Request>,
    shutdown: watch::Sender<bool>,
    clickhouse: FakeClickHouse,
}

fn config(target_url: &str) -> PipeConfig {
    PipeConfig {
        name: "p".into(),
        mode: Mode::Cdc,
        source: SourceConfig {
            url: "mysql://127.0.0.1:9".parse().expect("url"),
            server_id: Some(7),
            flavor: Flavor::Mariadb,
            password_file: None,
            tls: Default::default(),
            max_outage: crate::config::DEFAULT_MAX_OUTAGE,
        },
        target: TargetConfig {
            url: target_url.parse().expect("url"),
            user: "default".into(),
            password: String::new(),
            password_file: None,
            database: "d".into(),
            state_database: "_tributary".into(),
            ca_file: None,
            skip_verify: false,
        },
        tables: TablesConfig {
            include: vec!["d.*".into()],
            ..TablesConfig::default()
        },
        snapshot: Default::default(),
        sync: Default::default(),
    }
}

fn plan(name: &str) -> TablePlan {
    let (db, table) = name.split_once('.').expect("db.table");
    let def = TableDef {
        db: db.into(),
        name: table.into(),
        columns: Vec::new(),
        primary_key: Vec::new(),
    };
    TablePlan {
        def,
        target: table.into(),
        order_by: Vec::new(),
        included: Vec::new(),
        append: false,
    }
}

fn at(pos: u64) -> Position {
    Position {
        file: "binlog.000001".into(),
        pos,
        gtid: String::new(),
    }
}

impl Pipe {
    async fn new(store: MemoryStore) -> Pipe {
        let clickhouse = FakeClickHouse::start().await;
        let cfg = config(&clickhouse.url);
        let (handle, receiver) = PipeHandle::new("p", "cdc");
        let (shutdown, watching) = watch::channel(false);
        let ctx = Ctx {
            source: Source::unconnected("mysql://127.0.0.1:9", ServerFlavor::Mariadb),
            target: Target::new(&cfg.target).expect("target"),
            store: store.clone(),
            handle: handle.clone(),
            server_id: 7,
            cfg,
        };
        let tables = Tables::new(ctx.cfg.tables.clone());
        Pipe {
            ledger: Ledger::new(store, handle.clone(), "p", tables),
            control: Control {
                commands: receiver,
                shutdown: watching,
                resync_requested: false,
            },
            commands: handle.commands.clone(),
            shutdown,
            ctx,
            clickhouse,
        }
    }

    /// A restarted daemon on the same store: the state it finds, the tables `plans` selected.
    async fn restart(&self, plans: &[&str]) -> Pipe {
        let mut pipe = Pipe::new(self.ctx.store.restart()).await;
        let last = pipe.ctx.store.current_state().await.unwrap();
        let state = last.and_then(|t| PipeState::parse(&t.to_state));
        pipe.ledger.resume_from(state);
        let plans = plans.iter().map(|t| plan(t)).collect();
        pipe.ledger.restore(plans, false, true).await.unwrap();
        pipe
    }

    /// The pipe Running, its tables `live` loaded and replicated, from checkpoint `cp`.
    async fn running(live: &[&str], cp: &Checkpoint) -> Pipe {
        let store = MemoryStore::new("p");
        for table in live {
            let done = Progress {
                seq: 1,
                rows: 5,
                done: true,
                ..Progress::default()
            };
            store.save_progress(table, &done).await.unwrap();
        }
        store.save_checkpoint(cp).await.unwrap();
        let mut pipe = Pipe::new(store).await;
        let plans = live.iter().map(|t| plan(t)).collect();
        pipe.ledger.restore(plans, false, true).await.unwrap();
        for state in [
            PipeState::Provisioning,
            PipeState::Setup,
            PipeState::Running,
        ] {
            pipe.ledger.enter(state, "test").await.unwrap();
        }
        pipe
    }

    async fn history(&self) -> Vec<(String, String)> {
        let history = self.ctx.store.history(100).await.unwrap();
        history
            .into_iter()
            .rev()
            .map(|t| (t.to_state, t.reason))
            .collect()
    }

    fn states(history: &[(String, String)]) -> Vec<&str> {
        history.iter().map(|(s, _)| s.as_str()).collect()
    }
}

/// A command and the receiver of its answer.
fn request(command: Command) -> (Request, oneshot::Receiver<Result<String, String>>) {
    let (reply, answer) = oneshot::channel();
    (Request { command, reply }, answer)
}

/// Opens a transaction in `batch` (if none is open) with one row of table 0 holding `n`.
fn row(batch: &mut Batch, n: u8) {
    batch.begin();
    batch
        .push(0, Meta::Keyed { deleted: false }, |buf| {
            buf.push(n);
            Ok::<_, ()>(())
        })
        .expect("row");
}

/// Reads transaction `n` into `batch`: one row of table 0 holding `n`, committed at `n`.
fn transaction(batch: &mut Batch, n: u8) {
    row(batch, n);
    batch.commit(at(u64::from(n)));
}

/// The target's rows as written: (table, bytes), in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<(usize, Vec<u8>)>>);

impl Writer for Recorded {
    async fn write(&self, tables: Vec<Taken>) -> Result<usize> {
        let mut rows = self.0.lock().expect("rows");
        let mut changes = 0;
        for t in tables {
            changes += t.rows;
            rows.push((t.table, t.data));
        }
        Ok(changes)
    }
}

#[tokio::test]
async fn a_crash_between_rows_and_checkpoint_replays_the_same_rows_and_versions() {
    let store = MemoryStore::new("p");
    let handle = PipeHandle::new("p", "cdc").0;
    let retry = Retry {
        max_retries: Some(0),
        ..Retry::step("p", &handle, "ClickHouse write")
    };
    let target = Recorded::default();
    let mut checkpoint = Checkpoint::start(None, at(4));
    store.save_checkpoint(&checkpoint).await.unwrap();

    // A first batch goes through: rows, then the checkpoint after them.
    let mut batch = Batch::new(1, checkpoint.next_version);
    transaction(&mut batch, 10);
    let written = commit::commit(&store, &target, &retry, &mut batch, &mut checkpoint).await;
    assert_eq!(written.unwrap(), Some(1));
    assert_eq!(store.checkpoint().await.unwrap(), Some(checkpoint.clone()));

    // The next one: its rows are written, then the store fails before its checkpoint (a
    // crash there, as far as the state is concerned).
    let mut batch = Batch::new(1, checkpoint.next_version);
    transaction(&mut batch, 20);
    transaction(&mut batch, 30);
    store.fail_writes(true);
    let before = checkpoint.clone();
    let err = commit::commit(&store, &target, &retry, &mut batch, &mut checkpoint).await;
    assert!(err.is_err());
    assert_eq!(checkpoint, before, "the checkpoint only moves once stored");
    store.fail_writes(false);
    let first_try = target.0.lock().unwrap().split_off(1);

    // A restart replays from the stored checkpoint: the same rows, with the same versions.
    let restarted = store.restart();
    let mut checkpoint = restarted.checkpoint().await.unwrap().expect("checkpoint");
    assert_eq!(checkpoint, before);
    let mut batch = Batch::new(1, checkpoint.next_version);
    transaction(&mut batch, 20);
    transaction(&mut batch, 30);
    let written = commit::commit(&restarted, &target, &retry, &mut batch, &mut checkpoint).await;
    assert_eq!(written.unwrap(), Some(2));
    let replay = target.0.lock().unwrap().split_off(1);
    assert_eq!(replay, first_try);
    assert_eq!(checkpoint.position, at(30));
    assert_eq!(checkpoint.seq, before.seq + 1);
    assert_eq!(checkpoint.next_version, before.next_version + 2);
    assert_eq!(restarted.checkpoint().await.unwrap(), Some(checkpoint));
}

#[tokio::test]
async fn a_batch_without_a_commit_writes_nothing_and_keeps_the_checkpoint() {
    let store = MemoryStore::new("p");
    let handle = PipeHandle::new("p", "cdc").0;
    let retry = Retry::step("p", &handle, "ClickHouse write");
    let target = Recorded::default();
    let mut checkpoint = Checkpoint::start(None, at(4));
    let mut batch = Batch::new(1, checkpoint.next_version);
    row(&mut batch, 1);
    let written = commit::commit(&store, &target, &retry, &mut batch, &mut checkpoint).await;
    assert_eq!(written.unwrap(), None);
    assert!(target.0.lock().unwrap().is_empty());
    assert_eq!(store.checkpoint().await.unwrap(), None);
    // Spilled, the open transaction's rows are written without a checkpoint.
    assert_eq!(commit::spill(&target, &mut batch).await.unwrap(), 1);
    assert_eq!(store.checkpoint().await.unwrap(), None);
}

#[tokio::test]
async fn pause_flushes_and_checkpoints_then_resume_continues_from_that_checkpoint() {
    let mut checkpoint = Checkpoint::start(None, at(4));
    let mut pipe = Pipe::running(&["d.t"], &checkpoint).await;
    let ctx = &pipe.ctx;
    let mut reload_after = None;
    let mut session = Session::new(ctx, &mut pipe.ledger, &mut checkpoint, &mut reload_after)
        .await
        .unwrap();
    transaction(&mut session.batch, 10);
    let (pause, answer) = request(Command::Pause);
    let ended = cdc::command(&mut session, pause).await.unwrap();
    assert!(matches!(ended, Some(Ended::Paused)));
    drop(session);
    assert_eq!(
        answer.await.unwrap().unwrap(),
        "paused; flushed and checkpointed at binlog.000001:10"
    );
    // The rows first, then the checkpoint after them.
    assert_eq!(pipe.clickhouse.seen("INSERT INTO").len(), 1);
    let stored = pipe.ctx.store.checkpoint().await.unwrap().unwrap();
    assert_eq!(
        (stored.seq, stored.position.pos, stored.next_version),
        (2, 10, 2)
    );
    assert_eq!(stored, checkpoint);

    // Paused: a second pause and table changes are refused, resume replicates again.
    let sender = pipe.commands.clone();
    let asked = tokio::spawn(async move {
        let mut answers = Vec::new();
        for command in [
            Command::Pause,
            Command::RemoveTable {
                table: "d.t".into(),
                drop_target: false,
            },
            Command::Resume,
        ] {
            let (request, answer) = request(command);
            sender.send(request).await.unwrap();
            answers.push(answer.await.unwrap());
        }
        answers
    });
    let mut cdc = Cdc {
        ctx: &pipe.ctx,
        ledger: &mut pipe.ledger,
        control: &mut pipe.control,
        reload_after: None,
        loads: Vec::new(),
        initial: Vec::new(),
    };
    let exit = cdc.paused(&checkpoint).await.unwrap();
    assert!(exit.is_none(), "resumed");
    let answers = asked.await.unwrap();
    assert_eq!(answers[0], Err("the pipe is already paused".into()));
    assert_eq!(
        answers[1],
        Err("the pipe is paused: resume it before changing its tables".into())
    );
    assert_eq!(answers[2], Ok("resumed".into()));
    let history = pipe.history().await;
    assert_eq!(
        Pipe::states(&history)[3..],
        ["Pausing", "Paused", "Running"]
    );
    assert_eq!(history[4].1, "flushed and checkpointed at binlog.000001:10");
    // A restart resumes from the paused checkpoint, in the state the pipe was left in.
    let restarted = pipe.restart(&["d.t"]).await;
    assert_eq!(
        restarted.ctx.store.checkpoint().await.unwrap(),
        Some(checkpoint)
    );
    assert_eq!(restarted.ledger.state(), Some(PipeState::Running));
}

#[tokio::test]
async fn a_resync_is_resumed_after_a_crash_and_never_swaps_a_table_twice() {
    let checkpoint = Checkpoint {
        seq: 7,
        position: at(400),
        next_version: 900,
    };
    let mut pipe = Pipe::running(&["d.a", "d.b"], &checkpoint).await;
    let (asked, answer) = request(Command::Resync);
    let ctx = &pipe.ctx;
    let after = commands::handle(ctx, &mut pipe.ledger, &mut pipe.control, &checkpoint, asked);
    assert!(matches!(after.await.unwrap(), After::Resync));
    assert!(pipe.control.resync_requested);
    assert_eq!(
        answer.await.unwrap().unwrap(),
        "resync started: the tables are loaded into copies (Snapshot), then swapped in (Resync)"
    );
    assert!(resync::pending(&pipe.ctx.store).await.unwrap());

    // The daemon dies during the resync: both copies loaded, `d.a` already swapped in.
    let resync = pipe.ctx.store.namespaced("#resync0");
    resync.save_snapshot_start(&at(500)).await.unwrap();
    for table in ["d.a", "d.b"] {
        let loaded = Progress {
            seq: 3,
            rows: 5,
            done: true,
            ..Progress::default()
        };
        resync.save_progress(table, &loaded).await.unwrap();
    }
    let swapped = Progress {
        seq: 1,
        done: true,
        ..Progress::default()
    };
    resync.save_progress("swap:d.a", &swapped).await.unwrap();

    let mut restarted = pipe.restart(&["d.a", "d.b"]).await;
    let history = restarted.ctx.store.history(100).await.unwrap();
    let pending = resync::pending(&restarted.ctx.store).await.unwrap();
    assert!(pending, "the resync is resumed first");
    assert_eq!(resync::completed(&history), 0);
    for state in [PipeState::Provisioning, PipeState::Setup] {
        restarted.ledger.enter(state, "restarted").await.unwrap();
    }
    let ctx = &restarted.ctx;
    let done = resync::run(ctx, &mut restarted.ledger, &mut restarted.control).await;
    let resumed = done.unwrap().expect("not stopped");
    // Only `d.b` is swapped now; CDC goes on from the resync's position, versions carried on.
    let exchanges = restarted.clickhouse.seen("EXCHANGE TABLES");
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert!(
        exchanges[0].contains("`b` AND `d`.`b_resync`"),
        "{exchanges:?}"
    );
    assert_eq!(
        (resumed.seq, resumed.position.pos, resumed.next_version),
        (8, 500, 900)
    );
    assert_eq!(
        restarted.ctx.store.checkpoint().await.unwrap(),
        Some(resumed)
    );
    assert!(!restarted.control.resync_requested);
    assert_eq!(restarted.ctx.store.progress("d.b").await.unwrap().rows, 5);
    // It resumed in Snapshot (it stopped there) and swapped in Resync.
    let history = restarted.ctx.store.history(100).await.unwrap();
    let states: Vec<&str> = history.iter().map(|t| t.to_state.as_str()).collect();
    assert_eq!(states[..3], ["Resync", "Snapshot", "Setup"]);
    restarted
        .ledger
        .enter(PipeState::Running, "resynced")
        .await
        .unwrap();
    let history = restarted.ctx.store.history(100).await.unwrap();
    assert_eq!(
        resync::completed(&history),
        1,
        "the next resync has a key of its own"
    );
    assert!(!resync::pending(&restarted.ctx.store).await.unwrap());
}

#[tokio::test]
async fn an_isolated_table_stays_out_across_restarts_until_its_reload_is_swapped_in() {
    let checkpoint = Checkpoint::start(None, at(4));
    let mut pipe = Pipe::running(&["d.a", "d.b"], &checkpoint).await;
    pipe.ledger
        .isolate("d.b", "rows do not match".into(), false)
        .await
        .unwrap();
    let replicated = |p: &Pipe| -> Vec<String> {
        let tables = p.ledger.tables.replicated();
        tables.into_iter().map(|(n, _)| n.to_owned()).collect()
    };
    assert_eq!(replicated(&pipe), ["d.a"]);
    let shown = pipe.ctx.handle.status().tables["d.b"].error.clone();
    assert_eq!(shown.as_deref(), Some("rows do not match"));

    // Out after a restart too, and shown with its reason.
    let mut pipe = pipe.restart(&["d.a", "d.b"]).await;
    assert_eq!(replicated(&pipe), ["d.a"]);
    let shown = pipe.ctx.handle.status().tables["d.b"].error.clone();
    assert_eq!(shown.as_deref(), Some("rows do not match"));

    // Its reload starts: it replicates again, into its copy, and survives a restart.
    let step = pipe
        .ledger
        .tables
        .start_reload(plan("d.b"), "#reload-b".into());
    pipe.ledger.apply(step).await.unwrap();
    assert_eq!(pipe.ctx.store.isolated().await.unwrap(), Vec::new());
    let mut pipe = pipe.restart(&["d.a", "d.b"]).await;
    assert_eq!(replicated(&pipe), ["d.a", "d.b"]);
    let loads = reload::loads(&pipe.ledger);
    assert_eq!(loads.len(), 1);
    assert_eq!(
        (loads[0].plan.target.as_str(), loads[0].namespace.as_str()),
        ("b_resync", "#reload-b")
    );

    // Its copy is loaded: swapped in, and the table is plainly live.
    pipe.ledger.resume_from(Some(PipeState::Running));
    let loaded = pipe.ctx.store.namespaced("#reload-b");
    let rows = Progress {
        seq: 4,
        rows: 12,
        done: true,
        ..Progress::default()
    };
    loaded.save_progress("d.b", &rows).await.unwrap();
    let ctx = &pipe.ctx;
    reload::loaded(ctx, &mut pipe.ledger, &loads[0], Ok(Some(Vec::new())))
        .await
        .unwrap();
    assert_eq!(pipe.ledger.tables.phase("d.b"), Some(&Phase::Live));
    assert_eq!(
        pipe.clickhouse
            .seen("EXCHANGE TABLES `d`.`b` AND `d`.`b_resync`")
            .len(),
        1
    );
    assert_eq!(pipe.ctx.store.reloads().await.unwrap(), Vec::new());
    let shown = pipe.ctx.handle.status().tables["d.b"].clone();
    assert_eq!((shown.rows_done, shown.done, shown.error), (12, true, None));
    assert!(!shown.reloading);
    // A table's reload leaves the pipe Running (see `reload`).
    assert_eq!(pipe.ledger.state(), Some(PipeState::Running));
    let pipe = pipe.restart(&["d.a", "d.b"]).await;
    assert_eq!(pipe.ledger.tables.phase("d.b"), Some(&Phase::Live));
}

#[tokio::test]
async fn a_reload_whose_table_changed_waits_and_one_superseded_drops_its_copy() {
    let checkpoint = Checkpoint::start(None, at(4));
    let mut pipe = Pipe::running(&["d.a", "d.b"], &checkpoint).await;
    let step = pipe
        .ledger
        .tables
        .start_reload(plan("d.b"), "#first".into());
    pipe.ledger.apply(step).await.unwrap();
    let first = reload::loads(&pipe.ledger).remove(0);
    let changed = Changed {
        table: "d.b".into(),
        error: "Unknown column 'v'".into(),
    };
    let ctx = &pipe.ctx;
    reload::loaded(ctx, &mut pipe.ledger, &first, Ok(Some(vec![changed])))
        .await
        .unwrap();
    // Isolated, its copy dropped, reloaded once CDC passes the change: even after a restart.
    assert!(matches!(
        pipe.ledger.tables.phase("d.b"),
        Some(Phase::Isolated { reload: true, .. })
    ));
    assert_eq!(
        pipe.clickhouse
            .seen("DROP TABLE IF EXISTS `d`.`b_resync`")
            .len(),
        1
    );
    let mut pipe = pipe.restart(&["d.a", "d.b"]).await;
    assert_eq!(pipe.ledger.tables.waiting(), ["d.b"]);
    // A load handed back after its table went another way (here: reloading anew) is void.
    let step = pipe
        .ledger
        .tables
        .start_reload(plan("d.b"), "#second".into());
    pipe.ledger.apply(step).await.unwrap();
    let ctx = &pipe.ctx;
    reload::loaded(ctx, &mut pipe.ledger, &first, Ok(Some(Vec::new())))
        .await
        .unwrap();
    assert_eq!(pipe.clickhouse.seen("EXCHANGE").len(), 0);
    assert_eq!(pipe.ledger.tables.reloaded_in("#second"), Some("d.b"));
}

#[tokio::test]
async fn a_failed_pipe_answers_resume_and_resync_only() {
    let store = MemoryStore::new("p");
    let pipe = Pipe::new(store.clone()).await;
    let Pipe {
        ctx,
        ledger,
        control,
        commands,
        shutdown: _shutdown,
        clickhouse: _clickhouse,
    } = pipe;
    let mut task = Task {
        cfg: ctx.cfg.clone(),
        target: ctx.target.clone(),
        store,
        handle: ctx.handle.clone(),
        ledger,
        control,
    };
    let asked = tokio::spawn(async move {
        let mut answers = Vec::new();
        for command in [Command::Pause, Command::Resync] {
            let (request, answer) = request(command);
            commands.send(request).await.unwrap();
            answers.push(answer.await.unwrap());
        }
        answers
    });
    assert!(task.wait_in_failed().await, "driven again");
    assert!(task.control.resync_requested);
    let answers = asked.await.unwrap();
    assert_eq!(
        answers[0],
        Err("the pipe is Failed: fix the cause and `resume` it, or `resync` it".into())
    );
    assert_eq!(answers[1], Ok("resync started".into()));
}

#[tokio::test]
async fn commands_before_running_are_refused_with_what_the_pipe_is_doing() {
    let mut pipe = Pipe::new(MemoryStore::new("p")).await;
    let (done, waiting) = oneshot::channel::<()>();
    let sender = pipe.commands.clone();
    let asked = tokio::spawn(async move {
        let (request, answer) = request(Command::Pause);
        sender.send(request).await.unwrap();
        let answer = answer.await.unwrap();
        let _ = done.send(());
        answer
    });
    let retry = pipe.ctx.retry("connecting to the source");
    let waiting = std::sync::Mutex::new(Some(waiting));
    let connected = pipe
        .control
        .patiently(&retry, "Provisioning", || {
            let waiting = waiting.lock().unwrap().take();
            async move {
                if let Some(waiting) = waiting {
                    let _ = waiting.await;
                }
                Ok(())
            }
        })
        .await
        .unwrap();
    assert_eq!(connected, Some(()));
    assert_eq!(
        asked.await.unwrap(),
        Err("the pipe is Provisioning (connecting to the source); commands are taken once it is Running".into())
    );
    // Shut down while waiting to retry: stopped, not failed.
    pipe.shutdown.send(true).unwrap();
    let failing = || async {
        Err::<(), _>(crate::error::Error::StreamLost {
            url: "x".into(),
            detail: "down".into(),
        })
    };
    let stopped = tokio::time::timeout(
        Duration::from_secs(5),
        pipe.control.patiently(&retry, "Provisioning", failing),
    )
    .await
    .expect("no wait after shutdown");
    assert_eq!(stopped.unwrap(), None);
}

#[tokio::test]
async fn a_table_changed_under_its_initial_load_waits_isolated_for_its_reload() {
    let checkpoint = Checkpoint::start(None, at(4));
    let mut pipe = Pipe::running(&["d.a"], &checkpoint).await;
    // `d.b` is selected and not loaded yet: CDC waits for its snapshot.
    pipe.ledger.tables = Tables::new(pipe.ctx.cfg.tables.clone());
    let plans = vec![plan("d.a"), plan("d.b")];
    pipe.ledger.restore(plans, false, true).await.unwrap();
    let loading: Vec<String> = pipe
        .ledger
        .tables
        .loading()
        .iter()
        .map(|p| p.def.qualified())
        .collect();
    assert_eq!(loading, ["d.b"]);
    // Its load finds it changed: isolated (not decoded under a definition its rows do not
    // have), and reloaded once CDC has passed the change.
    let changed = Changed {
        table: "d.b".into(),
        error: "Table 'd.b' doesn't exist".into(),
    };
    let names = ["d.b".to_owned()];
    let deferred = pipe.ledger.settle_loaded(&names, &[changed]).await;
    assert!(deferred.unwrap(), "a reload waits");
    assert_eq!(pipe.ledger.tables.waiting(), ["d.b"]);
    assert!(!pipe.ledger.tables.replicates("d.b"));
    let isolated = pipe.ctx.store.isolated().await.unwrap();
    assert!(
        isolated[0]
            .1
            .starts_with("changed in the source while it was loaded"),
        "{isolated:?}"
    );
    let pipe = pipe.restart(&["d.a", "d.b"]).await;
    assert_eq!(pipe.ledger.tables.waiting(), ["d.b"]);
    assert_eq!(pipe.ledger.tables.loading().len(), 0);
}
