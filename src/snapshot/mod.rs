//! Initial load of the included tables, partitioned and parallel.
//!
//! How the snapshot and the binlog agree: [`begin`] takes the binlog position P0 of a
//! consistent snapshot (MariaDB's `binlog_snapshot_file/position` of a
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT`; on MySQL under a brief
//! `FLUSH TABLES WITH READ LOCK`), so every transaction before P0 is visible to any read that
//! starts afterwards. Partitions are then read on their own connections, each at its own later
//! point in time; every row is written with version 0 and CDC starts at P0, so every change
//! after P0 is replayed with a higher version and wins. Replaying more history than a
//! partition needed is harmless; starting CDC after a change a partition missed would lose it,
//! which P0 rules out. A resumed snapshot keeps the first P0 for the same reason.
//!
//! Each table is split into partitions (see [`plan`]) stored before loading; `parallelism`
//! partitions of a table and `tables_in_parallel` tables load at once. A partition streams
//! from one binary-protocol SELECT into one RowBinary INSERT in chunks of [`CHUNK_BYTES`], so
//! memory stays bounded whatever the table size; it is recorded as done only after its
//! INSERT succeeded, and a restart loads only the partitions not done. A partition cut off by
//! a crash may have written some blocks; its reload writes the same keys again with version 0,
//! which ReplacingMergeTree collapses, and CDC from P0 overrides any that changed.

mod keyless;
pub(crate) mod plan;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt, TryStreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clickhouse::sql::{insert_sql, Meta};
use crate::decode::{encode, Origin};
use crate::error::{Error, Result};
use crate::schema::TablePlan;
use crate::source::{Position, ServerFlavor, Source};
use crate::state::{PartitionRow, Progress, StateStore};
use crate::target::Target;
use plan::{KeyValue, Range, Splitter};

/// Bytes of RowBinary buffered before they are handed to the HTTP body.
const CHUNK_BYTES: usize = 1 << 20;
/// How often loading tables log their progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Takes the binlog position of a consistent snapshot (see the module's notes).
pub(crate) async fn begin(source: &Source, conn: &mut Conn) -> Result<Position> {
    let position = open_snapshot(source, conn).await;
    source.run(conn.query_drop("COMMIT")).await?;
    position
}

/// Starts a consistent snapshot on `conn`, a read-only transaction left open (`COMMIT` ends
/// it), and returns its binlog position.
async fn open_snapshot(source: &Source, conn: &mut Conn) -> Result<Position> {
    const START: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
    match source.flavor {
        ServerFlavor::Mariadb => {
            source.run(conn.query_drop(START)).await?;
            let query = "SHOW STATUS LIKE 'binlog_snapshot_%'";
            let status: Vec<(String, String)> = source.query_as(conn, query).await?;
            // The GTID state is looked up from the offset when CDC starts from it
            // (@@gtid_binlog_pos may already include transactions committed after the snapshot).
            crate::source::position::snapshot_position(&status).map_err(|detail| Error::SourceRow {
                query: query.into(),
                detail,
            })
        }
        ServerFlavor::Mysql => {
            source
                .run(conn.query_drop("FLUSH TABLES WITH READ LOCK"))
                .await?;
            let started = source.run(conn.query_drop(START)).await;
            let position = source.current_position(conn).await;
            source.run(conn.query_drop("UNLOCK TABLES")).await?;
            started?;
            position
        }
    }
}

/// What loading tables needs besides the tables themselves.
pub(crate) struct Loader<'a, S> {
    pub source: &'a Source,
    pub target: &'a Target,
    pub target_db: &'a str,
    pub store: &'a S,
    pub rows_per_partition: u64,
    pub parallelism: usize,
    pub tables_in_parallel: usize,
    pub pipe: &'a str,
    /// Where each table's progress is shown (the pipe's status).
    pub watcher: &'a dyn Watcher,
    /// `tables.options`, for each table's `partition_by`.
    pub options: &'a std::collections::BTreeMap<String, crate::config::TableOptions>,
}

/// Where a load shows how far each table is.
pub(crate) trait Watcher: Sync {
    /// The load of `table` starts (or resumes), about `estimate` rows in all.
    fn started(&self, table: &str, estimate: u64);
    /// `rows` of `table` are loaded; `done` once all are.
    fn loaded(&self, table: &str, rows: u64, done: bool);
}

/// A table whose definition changed in the source while it was being loaded: its rows so far
/// are in the target, the rest could not be read.
#[derive(Debug, Clone)]
pub(crate) struct Changed {
    pub table: String,
    pub error: String,
}

/// How loading tables ended: `None` if stopped by shutdown first, else the tables that
/// changed under their load (the others are loaded).
pub(crate) async fn load_tables<S: StateStore>(
    loader: &Loader<'_, S>,
    plans: &[&TablePlan],
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<Vec<Changed>>> {
    let pool = Pool::new(
        mysql_async::OptsBuilder::from_opts(loader.source.opts().clone()).pool_opts(
            mysql_async::PoolOpts::default().with_constraints(
                mysql_async::PoolConstraints::new(
                    0,
                    loader.parallelism * loader.tables_in_parallel + 1,
                )
                .unwrap_or_default(),
            ),
        ),
    );
    // Futures collected first (they start only when polled): a closure-built stream here
    // trips the compiler's Send inference for the spawned pipe task.
    let loads: Vec<_> = plans
        .iter()
        .map(|plan| {
            let pool = &pool;
            async move {
                match load_table(loader, pool, plan, shutdown).await {
                    Ok(done) => Ok((done, None)),
                    // One table changed: the others go on loading.
                    Err(e) if e.is_definition_change() => {
                        let table = plan.def.qualified();
                        warn!(table = %table, error = %e, "the table changed in the source while it was loaded");
                        let error = e.to_string();
                        Ok((true, Some(Changed { table, error })))
                    }
                    Err(e) => Err(e),
                }
            }
        })
        .collect();
    let results: Vec<(bool, Option<Changed>)> = stream::iter(loads)
        .buffer_unordered(loader.tables_in_parallel.max(1))
        .try_collect()
        .await?;
    let _ = pool.disconnect().await;
    if !results.iter().all(|(done, _)| *done) {
        return Ok(None);
    }
    Ok(Some(results.into_iter().filter_map(|(_, c)| c).collect()))
}

/// Per-table counters shared by its partition loads.
struct TableProgress {
    rows: AtomicU64,
    seq: AtomicU64,
}

impl TableProgress {
    /// Stores the table's progress (rows so far, and whether it is done) in the state and in
    /// the pipe's status.
    async fn record<S: StateStore>(
        &self,
        loader: &Loader<'_, S>,
        table: &str,
        done: bool,
    ) -> Result<()> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let rows = self.rows.load(Ordering::Relaxed);
        loader.watcher.loaded(table, rows, done);
        let progress = Progress {
            seq,
            rows,
            done,
            ..Progress::default()
        };
        loader.store.save_progress(table, &progress).await
    }
}

async fn load_table<S: StateStore>(
    loader: &Loader<'_, S>,
    pool: &Pool,
    plan: &TablePlan,
    shutdown: &watch::Receiver<bool>,
) -> Result<bool> {
    let table = plan.def.qualified();
    let store = loader.store;
    if plan.append {
        return keyless::load(loader, pool, plan).await;
    }
    let progress = store.progress(&table).await?;
    if progress.done {
        return Ok(true);
    }
    let partition_by = loader
        .options
        .get(&table)
        .and_then(|o| o.partition_by.as_deref());
    let splitter =
        Splitter::for_table(plan, partition_by).map_err(|reason| Error::Unplannable {
            table: table.clone(),
            reason,
        })?;
    let mut conn = loader.source.run(pool.get_conn()).await?;
    let estimate = estimate_rows(loader.source, &mut conn, plan).await?;
    let mut partitions = store.partitions(&table).await?;
    if partitions.is_empty() {
        partitions = plan_partitions(loader, &mut conn, plan, &splitter, estimate).await?;
        store.save_plan(&table, &partitions).await?;
        info!(table = %table, partitions = partitions.len(), estimated_rows = estimate, "snapshot planned");
    }
    drop(conn);
    loader.watcher.started(&table, estimate);
    let counters = Arc::new(TableProgress {
        rows: AtomicU64::new(partitions.iter().map(|p| p.rows).sum()),
        seq: AtomicU64::new(progress.seq),
    });
    let pending: Vec<PartitionRow> = partitions.into_iter().filter(|p| p.done == 0).collect();
    let started = Instant::now();
    let rows_at_start = counters.rows.load(Ordering::Relaxed);

    let reporter = {
        let counters = Arc::clone(&counters);
        let table = table.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                log_progress(&table, &counters, estimate, rows_at_start, started);
            }
        })
    };
    let job = TableLoad {
        loader,
        pool,
        plan,
        splitter: &splitter,
        counters: &counters,
    };
    let loads: Vec<_> = pending
        .into_iter()
        .map(|partition| job.load_and_record(partition, shutdown))
        .collect();
    let result = stream::iter(loads)
        .buffer_unordered(loader.parallelism.max(1))
        .try_collect::<Vec<()>>()
        .await;
    reporter.abort();
    result?;
    if *shutdown.borrow() && store.partitions(&table).await?.iter().any(|p| p.done == 0) {
        return Ok(false);
    }
    counters.record(loader, &table, true).await?;
    log_progress(&table, &counters, estimate, rows_at_start, started);
    Ok(true)
}

/// One table being loaded: what each of its partition loads shares.
struct TableLoad<'a, S> {
    loader: &'a Loader<'a, S>,
    pool: &'a Pool,
    plan: &'a TablePlan,
    splitter: &'a Splitter,
    counters: &'a TableProgress,
}

impl<S: StateStore> TableLoad<'_, S> {
    /// Loads one partition unless shutting down, then records it and the table's progress.
    async fn load_and_record(
        &self,
        partition: PartitionRow,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<()> {
        if *shutdown.borrow() {
            return Ok(());
        }
        let table = self.plan.def.qualified();
        let range: Range =
            serde_json::from_str(&partition.spec).map_err(|e| Error::UnreadablePartition {
                table: table.clone(),
                idx: partition.idx,
                detail: e.to_string(),
            })?;
        let mut conn = self.loader.source.run(self.pool.get_conn()).await?;
        let rows = self.load_partition(&mut conn, &range).await?;
        let store = self.loader.store;
        store
            .save_partition(
                &table,
                &PartitionRow {
                    rows,
                    done: 1,
                    ..partition
                },
            )
            .await?;
        self.counters.record(self.loader, &table, false).await
    }
    /// Streams one partition into one INSERT; returns the rows written.
    async fn load_partition(&self, conn: &mut Conn, range: &Range) -> Result<u64> {
        let table = self.plan.def.qualified();
        let (sql, params) =
            plan::partition_sql(self.plan, self.splitter, range).ok_or_else(|| Error::Bug {
                detail: format!("{table}: partition {range:?} does not fit the table's splitter"),
            })?;
        set_session(self.loader.source, conn).await?;
        let meta = |_| Meta::Keyed { deleted: false };
        copy(
            self.loader,
            self.plan,
            self.counters,
            conn,
            (sql, params),
            meta,
        )
        .await
    }
}

/// UTC so TIMESTAMP values arrive as stored; utf8mb4 so text arrives as UTF-8.
async fn set_session(source: &Source, conn: &mut Conn) -> Result<()> {
    source
        .run(conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4"))
        .await
}

/// Streams the rows of one SELECT into one INSERT into the plan's target, each row's
/// metadata from `meta` given the row's number (from 1); returns the rows written.
async fn copy<S>(
    loader: &Loader<'_, S>,
    plan: &TablePlan,
    counters: &TableProgress,
    conn: &mut Conn,
    (sql, params): (String, Vec<Value>),
    meta: impl Fn(u64) -> Meta,
) -> Result<u64> {
    let source = loader.source;
    let table = plan.def.qualified();
    let mut result = source.run(conn.exec_iter(sql, params)).await?;
    let mut insert = loader
        .target
        .start_insert(&insert_sql(loader.target_db, plan));
    let mut buf = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
    let mut rows = 0u64;
    let mut unreported = 0u64;
    while let Some(row) = source.run(result.next()).await? {
        for (i, (col, included)) in plan.def.columns.iter().zip(&plan.included).enumerate() {
            if !included {
                continue;
            }
            let value = row.as_ref(i).unwrap_or(&Value::NULL);
            encode(col, value, Origin::Snapshot, &mut buf).map_err(|source| Error::Decode {
                table: table.clone(),
                position: "snapshot".into(),
                source: Box::new(source),
            })?;
        }
        // Taken before the next await: they were recorded on this thread.
        if let Some(clamps) = crate::decode::take_clamps() {
            crate::metrics::clamped_values(loader.pipe, &table, &clamps);
        }
        rows += 1;
        meta(rows).put(&mut buf, 0);
        unreported += 1;
        if buf.len() >= CHUNK_BYTES {
            let chunk =
                std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4));
            insert.send(chunk).await?;
            counters.rows.fetch_add(unreported, Ordering::Relaxed);
            crate::metrics::snapshot_rows(loader.pipe, &table, unreported);
            unreported = 0;
        }
    }
    drop(result);
    if rows > 0 {
        insert.send(buf).await?;
        insert.end().await?;
    }
    counters.rows.fetch_add(unreported, Ordering::Relaxed);
    crate::metrics::snapshot_rows(loader.pipe, &table, unreported);
    Ok(rows)
}

fn log_progress(
    table: &str,
    counters: &TableProgress,
    estimate: u64,
    rows_at_start: u64,
    started: Instant,
) {
    let rows = counters.rows.load(Ordering::Relaxed);
    let rate = (rows - rows_at_start.min(rows)) as f64 / started.elapsed().as_secs_f64().max(1e-3);
    let eta = if estimate > rows && rate > 0.0 {
        format!("{:.0}s", (estimate - rows) as f64 / rate)
    } else {
        "-".into()
    };
    info!(table = %table, rows, estimated = estimate, rows_per_sec = rate as u64, eta = %eta, "snapshot progress");
}

async fn estimate_rows(source: &Source, conn: &mut Conn, plan: &TablePlan) -> Result<u64> {
    let rows: Option<(Option<u64>,)> = source
        .exec_first_as(
            conn,
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&plan.def.db, &plan.def.name),
        )
        .await?;
    // An estimate for progress only: NULL (a view-like engine) reads as unknown.
    Ok(rows.and_then(|(r,)| r).unwrap_or(0))
}

/// Splits a table into partitions (see [`plan`]).
async fn plan_partitions<S: StateStore>(
    loader: &Loader<'_, S>,
    conn: &mut Conn,
    plan: &TablePlan,
    splitter: &Splitter,
    estimate: u64,
) -> Result<Vec<PartitionRow>> {
    let source = loader.source;
    let ranges = match splitter {
        Splitter::Int { column, nullable } => {
            let q = format!(
                "SELECT MIN(`{0}`), MAX(`{0}`) FROM `{1}`.`{2}`",
                column.replace('`', "``"),
                plan.def.db.replace('`', "``"),
                plan.def.name.replace('`', "``")
            );
            let row: Option<(Value, Value)> = source.run(conn.query_first(q)).await?;
            let as_int = |v: &Value| match v {
                Value::Int(i) => Some(i128::from(*i)),
                Value::UInt(u) => Some(i128::from(*u)),
                Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            };
            let (min, max) = row.map_or((None, None), |(a, b)| (as_int(&a), as_int(&b)));
            plan::int_ranges(min, max, estimate, loader.rows_per_partition, *nullable)
        }
        Splitter::Key { columns } => {
            let mut boundaries: Vec<Vec<KeyValue>> = Vec::new();
            loop {
                let (sql, params) = plan::boundary_sql(
                    plan,
                    columns,
                    boundaries.last().map(Vec::as_slice),
                    loader.rows_per_partition,
                )
                .ok_or_else(|| Error::Bug {
                    detail: format!("{}: unreadable partition boundary", plan.def.qualified()),
                })?;
                let row: Option<mysql_async::Row> =
                    source.run(conn.exec_first(sql, params)).await?;
                let Some(row) = row else { break };
                let key: Option<Vec<KeyValue>> = (0..columns.len())
                    .map(|i| row.as_ref(i).and_then(KeyValue::from_value))
                    .collect();
                match key {
                    Some(key) => boundaries.push(key),
                    None => break,
                }
            }
            plan::key_ranges(boundaries)
        }
    };
    ranges
        .iter()
        .enumerate()
        .map(|(idx, range)| {
            Ok(PartitionRow {
                idx: idx as u32,
                spec: serde_json::to_string(range).map_err(|e| Error::Bug {
                    detail: format!("partition {range:?}: {e}"),
                })?,
                rows: 0,
                done: 0,
            })
        })
        .collect()
}
