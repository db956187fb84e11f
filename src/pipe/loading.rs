//! Loading tables from a snapshot before CDC replicates them (the initial load, a table added,
//! a resync): patiently, from the progress recorded, and starting the first checkpoint.
//!
//! Invariants: the snapshot's binlog position is taken once per state key and kept, so a
//! resumed load starts CDC from the position its first rows were read after; the first
//! checkpoint is that position, stored only once every table is loaded. A stop (shutdown) is
//! never mistaken for a completed load.

use tracing::info;

use super::context::{Control, Ctx};
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::snapshot::{self, Changed};
use crate::source::Position;
use crate::state::{Checkpoint, StateStore};

/// Loads `pending` tables with the progress kept in `store`; returns `None` if stopped by
/// shutdown first, else the tables that changed in the source under their load. Creates the
/// first checkpoint (at the snapshot's position) when `checkpoint` is None. Transient errors
/// are retried: the load resumes from its recorded partitions. `state` is what commands are
/// told meanwhile.
pub(super) async fn load<S: StateStore, T: StateStore>(
    ctx: &Ctx<S>,
    control: &mut Control,
    state: Option<PipeState>,
    store: &T,
    pending: &[&TablePlan],
    checkpoint: &mut Option<Checkpoint>,
) -> Result<Option<Vec<Changed>>> {
    let start = start_position(ctx, store).await?;
    let loader = ctx.loader(store, ctx.cfg.snapshot.tables_in_parallel);
    let shutdown = control.shutdown.clone();
    let retry = ctx.retry("loading the snapshot");
    let state = state.map_or("starting", PipeState::as_str);
    let loaded = control
        .patiently(&retry, state, || {
            snapshot::load_tables(&loader, pending, &shutdown)
        })
        .await?;
    let Some(Some(changed)) = loaded else {
        return Ok(None);
    };
    if control.stopping() {
        return Ok(None);
    }
    if checkpoint.is_none() {
        let cp = Checkpoint::start(None, start);
        store.save_checkpoint(&cp).await?;
        *checkpoint = Some(cp);
    }
    Ok(Some(changed))
}

/// The snapshot's binlog position P0 kept in `store`, taken (and kept) on the first call: a
/// resumed load starts CDC from where its first rows were read after.
pub(super) async fn start_position<S: StateStore, T: StateStore>(
    ctx: &Ctx<S>,
    store: &T,
) -> Result<Position> {
    let start = match store.snapshot_start().await? {
        Some(p) => p,
        None => {
            let mut conn = ctx.source.conn().await?;
            let position = snapshot::begin(&ctx.source, &mut conn).await?;
            store.save_snapshot_start(&position).await?;
            position
        }
    };
    info!(pipe = %ctx.name(), position = %start, "snapshot position");
    Ok(start)
}

/// For loads that cannot defer a changed table (a resync, an added table, `snapshot_only`):
/// the first change as an error that says to ask again.
pub(super) fn unchanged(changed: &[Changed]) -> Result<()> {
    match changed.first() {
        None => Ok(()),
        Some(c) => Err(Error::ChangedWhileLoaded {
            table: c.table.clone(),
            detail: c.error.clone(),
        }),
    }
}
