//! Resync: reload every table of the pipe into `<table>_resync` while the current tables keep
//! serving reads, swap each pair atomically with `EXCHANGE TABLES`, drop the old data and
//! continue CDC from the resync's own snapshot position.
//!
//! A resync keeps its progress under its own state key (`<pipe>#resync<N>`, N = resyncs
//! completed before it), so a crash or failure resumes it where it stopped; each swap is
//! recorded, so a resumed resync never swaps a pair back.
//! One table is reloaded alongside CDC instead (see [`super::reload`]).

use super::Runner;
use crate::clickhouse::sql::{create_table_sql, ident};
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::schema::TablePlan;
use crate::source::Source;
use crate::state::{Checkpoint, Progress, StateStore};

/// Suffix of the copies a resync or a table reload loads before swapping them in.
pub(super) const SUFFIX: &str = "_resync";

impl Runner {
    /// Runs (or resumes) a resync; returns the checkpoint CDC continues from, or None when
    /// stopped by shutdown.
    pub(super) async fn resync_tables(
        &mut self,
        source: &Source,
        plans: &[TablePlan],
    ) -> Result<Option<Checkpoint>> {
        if self.recorder.state != Some(PipeState::Resync) {
            self.recorder
                .enter(
                    PipeState::Resync,
                    "reloading every table into *_resync tables",
                )
                .await?;
        }
        let completed = self
            .store
            .history(10_000)
            .await?
            .iter()
            .filter(|t| t.from_state == "Resync" && t.to_state == "Running")
            .count();
        let store = self.store.namespaced(&format!("#resync{completed}"));
        let db = self.cfg.target.database.clone();
        let fresh = store.snapshot_start().await?.is_none();
        if fresh {
            // Every table is reloaded: table reloads in progress or waiting are superseded
            // (their copies are the resync's, dropped below).
            for (table, _) in self.store.reloads().await? {
                self.store.save_reload(&table, None).await?;
            }
        }
        let shadows: Vec<TablePlan> = plans
            .iter()
            .map(|p| TablePlan {
                target: format!("{}{SUFFIX}", p.target),
                ..p.clone()
            })
            .collect();
        for shadow in &shadows {
            if fresh {
                let drop = format!(
                    "DROP TABLE IF EXISTS {}.{}",
                    ident(&db),
                    ident(&shadow.target)
                );
                self.target.execute(&drop, &[]).await?;
            }
            self.target
                .execute(&create_table_sql(&db, shadow), &[])
                .await?;
        }
        let refs: Vec<&TablePlan> = shadows.iter().collect();
        let mut start = None;
        match self.snapshot(&store, source, &refs, &mut start).await? {
            Some(changed) => super::unchanged(&changed)?,
            None => return Ok(None),
        }
        let start = start
            .or(store.checkpoint().await?)
            .ok_or_else(|| Error::Bug {
                detail: "resync finished without a snapshot position".into(),
            })?;
        for (plan, shadow) in plans.iter().zip(&shadows) {
            let marker = format!("swap:{}", plan.def.qualified());
            if store.progress(&marker).await?.done {
                continue;
            }
            let (live, new) = (
                format!("{}.{}", ident(&db), ident(&plan.target)),
                format!("{}.{}", ident(&db), ident(&shadow.target)),
            );
            self.target
                .execute(&format!("EXCHANGE TABLES {live} AND {new}"), &[])
                .await?;
            store
                .save_progress(
                    &marker,
                    &Progress {
                        seq: 1,
                        done: true,
                        ..Progress::default()
                    },
                )
                .await?;
            self.target
                .execute(&format!("DROP TABLE IF EXISTS {new}"), &[])
                .await?;
            self.adopt_load(&store, &plan.def.qualified()).await?;
        }
        let previous = self.store.checkpoint().await?;
        let checkpoint = Checkpoint::start(previous.as_ref(), start.position);
        self.store.save_checkpoint(&checkpoint).await?;
        self.resync_requested = false;
        Ok(Some(checkpoint))
    }

    /// Records `table` as loaded in the pipe's own progress with the rows a reload (kept in
    /// `reload`) copied, so that a restart does not load it again; returns those rows.
    pub(super) async fn adopt_load(
        &self,
        reload: &crate::state::ClickHouseStore,
        table: &str,
    ) -> Result<u64> {
        let loaded = reload.progress(table).await?;
        self.store
            .save_progress(
                table,
                &Progress {
                    // Above any sequence a load writes: this record wins.
                    seq: u64::MAX / 2,
                    rows: loaded.rows,
                    done: true,
                    ..Progress::default()
                },
            )
            .await?;
        Ok(loaded.rows)
    }
}
