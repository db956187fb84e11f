//! Loading a table without a primary key, replicated append-only (`tables.keyless = "append"`).
//!
//! Such a table has no key to split it by, and its rows never collapse: a row read by the
//! snapshot and met again as a binlog insert would be two rows. So it is read whole, in one
//! read consistent with a known binlog position; its rows are written as the table at that
//! position, and CDC applies only the table's row events after it ([`Progress::read_at`]).
//!
//! The read: an InnoDB table in a consistent snapshot (MariaDB reports the snapshot's binlog
//! position; MySQL's is taken under a brief `FLUSH TABLES WITH READ LOCK`, as for the initial
//! snapshot); a table of another engine under `LOCK TABLES … READ`, which holds its writers
//! for the read. A read cut short cannot be completed (nothing orders the rest), so a load not
//! recorded done starts over: its target is emptied and the table read again at a new
//! position. The target is then one CDC does not write yet: the initial snapshot and a table
//! added run before CDC, and reloads of such a table run while CDC waits (`pipe::reload`).

use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};
use tracing::info;

use super::{copy, estimate_rows, open_snapshot, plan, set_session, Loader, TableProgress};
use crate::clickhouse::sql::{ident, Change, Meta};
use crate::error::Result;
use crate::schema::TablePlan;
use crate::source::{Position, Source};
use crate::state::{Progress, StateStore};

/// Loads `plan`'s table whole (unless recorded done) and records the position it was read at.
pub(super) async fn load<S: StateStore>(
    loader: &Loader<'_, S>,
    pool: &Pool,
    plan: &TablePlan,
) -> Result<bool> {
    let table = plan.def.qualified();
    let store = loader.store;
    let progress = store.progress(&table).await?;
    if progress.done {
        return Ok(true);
    }
    let target = format!("{}.{}", ident(loader.target_db), ident(&plan.target));
    loader
        .target
        .execute(&format!("TRUNCATE TABLE {target}"), &[])
        .await?;
    let source = loader.source;
    let mut conn = source.run(pool.get_conn()).await?;
    let estimate = estimate_rows(source, &mut conn, plan).await?;
    loader.watcher.started(&table, estimate);
    set_session(source, &mut conn).await?;
    let (position, release) = open_read(source, &mut conn, plan).await?;
    info!(table = %table, position = %position, "reading the table whole (it has no primary key)");
    let counters = TableProgress {
        rows: AtomicU64::new(0),
        seq: AtomicU64::new(progress.seq),
    };
    let meta = |row| Meta::Append {
        change: Change::Snapshot,
        row,
    };
    let select = (plan::select_sql(plan), Vec::new());
    let copied = copy(loader, plan, &counters, &mut conn, select, meta).await;
    let released = source.run(conn.query_drop(release)).await;
    let rows = copied?;
    released?;
    let done = Progress {
        seq: counters.seq.load(Ordering::Relaxed) + 1,
        read_at: Some(position),
        rows,
        done: true,
    };
    store.save_progress(&table, &done).await?;
    loader.watcher.loaded(&table, rows, true);
    info!(table = %table, rows, "table without a primary key loaded");
    Ok(true)
}

/// Opens a read of the table consistent with the binlog position returned; the statement
/// returned ends it.
async fn open_read(
    source: &Source,
    conn: &mut Conn,
    plan: &TablePlan,
) -> Result<(Position, &'static str)> {
    let engine: Option<(Option<String>,)> = source
        .exec_first_as(
            conn,
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&plan.def.db, &plan.def.name),
        )
        .await?;
    let transactional = engine
        .and_then(|(e,)| e)
        .is_some_and(|e| e.eq_ignore_ascii_case("InnoDB"));
    if transactional {
        return Ok((open_snapshot(source, conn).await?, "COMMIT"));
    }
    let lock = format!("LOCK TABLES {} READ", plan::table_name(plan));
    source.run(conn.query_drop(lock)).await?;
    Ok((source.current_position(conn).await?, "UNLOCK TABLES"))
}
