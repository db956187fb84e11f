//! The commit protocol of CDC: a batch's committed rows are written, then its checkpoint is
//! stored.
//!
//! Invariant: a checkpoint is stored only after every row it covers is written, and covers
//! whole transactions only; the versions it hands on ([`Checkpoint::next_version`]) are the
//! ones the rows after it get. A crash between the rows and the checkpoint replays from the
//! previous checkpoint, whose version counter gives the replayed rows the very versions they
//! were written with, so ReplacingMergeTree collapses them. A transaction too large to hold is
//! written in parts before its commit ([`spill`]), with no checkpoint: its replay writes those
//! parts again, identically.

use std::future::Future;

use super::retry::{self, Retry};
use crate::batch::{Batch, Taken};
use crate::error::Result;
use crate::state::{Checkpoint, StateStore};

/// Where a batch's rows are written (the target's tables).
pub(crate) trait Writer {
    /// Writes each table's rows; returns the row changes written.
    fn write(&self, tables: Vec<Taken>) -> impl Future<Output = Result<usize>> + Send;
}

/// Writes the committed rows of `batch`, then stores the checkpoint after them (retried as
/// `retry` says) and moves `checkpoint` to it; returns the row changes written, or `None`
/// when the batch holds no committed transaction.
pub(crate) async fn commit<S: StateStore, W: Writer>(
    store: &S,
    writer: &W,
    retry: &Retry<'_>,
    batch: &mut Batch,
    checkpoint: &mut Checkpoint,
) -> Result<Option<usize>> {
    // An open transaction's versions (at shutdown) are not consumed: its replay gets them
    // again.
    let next_version = batch.committed_version();
    let (tables, position) = batch.take_committed();
    let Some(position) = position else {
        return Ok(None);
    };
    let changes = writer.write(tables).await?;
    let next = checkpoint.advance(position, next_version);
    retry
        .run(|| store.save_checkpoint(&next), retry::sleep)
        .await?;
    *checkpoint = next;
    Ok(Some(changes))
}

/// Writes the rows of the open transaction so far, without a checkpoint; returns the row
/// changes written.
pub(crate) async fn spill<W: Writer>(writer: &W, batch: &mut Batch) -> Result<usize> {
    writer.write(batch.spill()).await
}
