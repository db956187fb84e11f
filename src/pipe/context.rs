//! The one context every step of a pipe reads ([`Ctx`]: its config, the source and target
//! servers, its state store and its shared handle), and its [`Control`]: the operator's
//! commands and the shutdown signal.
//!
//! Invariant: a context is built once per drive, after the source is connected, and never
//! changes; what changes while the pipe runs (its lifecycle state and tables: the ledger; its
//! checkpoint) is held by the drive and handed to the steps that change it.

use std::future::Future;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::control::{PipeHandle, Request};
use super::retry::{self, Retry};
use crate::clickhouse::sql::{column_type, create_table_sql, ident};
use crate::config::PipeConfig;
use crate::error::{Error, Result};
use crate::schema::TablePlan;
use crate::snapshot;
use crate::source::{introspect, Position, Source};
use crate::state::StateStore;
use crate::target::Target;

pub(super) struct Ctx<S> {
    pub cfg: PipeConfig,
    pub source: Source,
    pub target: Target,
    pub store: S,
    pub handle: PipeHandle,
    /// The replica server id the binlog dump announces.
    pub server_id: u32,
}

/// `plan` written into `target` instead of its own (a table's copy).
pub(super) fn aimed_at(plan: &TablePlan, target: &str) -> TablePlan {
    TablePlan {
        target: target.to_owned(),
        ..plan.clone()
    }
}

impl<S: StateStore> Ctx<S> {
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The target database.
    pub fn db(&self) -> &str {
        &self.cfg.target.database
    }

    /// How the step `what` of this pipe is retried.
    pub fn retry<'a>(&'a self, what: &'a str) -> Retry<'a> {
        Retry::step(&self.cfg.name, &self.handle, what)
    }

    /// A snapshot loader of this pipe, recording its progress in `store`.
    pub fn loader<'a, T: StateStore>(
        &'a self,
        store: &'a T,
        tables_in_parallel: usize,
    ) -> snapshot::Loader<'a, T> {
        snapshot::Loader {
            source: &self.source,
            target: &self.target,
            target_db: &self.cfg.target.database,
            store,
            rows_per_partition: self.cfg.snapshot.rows_per_partition,
            parallelism: self.cfg.snapshot.parallelism,
            tables_in_parallel,
            options: &self.cfg.tables.options,
            watcher: &self.handle,
            pipe: &self.cfg.name,
        }
    }

    /// Where the source's binlog is now.
    pub async fn current_position(&self) -> Result<Position> {
        let mut conn = self.source.conn().await?;
        self.source.current_position(&mut conn).await
    }

    /// The plan of `db.table` from its current definition in the source.
    pub async fn current_plan(&self, table: &str) -> Result<TablePlan> {
        let Some((db, name)) = table.split_once('.') else {
            return Err(Error::NotATableName {
                name: table.to_owned(),
            });
        };
        let mut conn = self.source.conn().await?;
        let def = introspect::table_def(&self.source, &mut conn, db, name).await?;
        TablePlan::selected(def, &self.cfg.tables).map_err(|reason| Error::Unplannable {
            table: table.to_owned(),
            reason,
        })
    }

    /// `db.name` of a target table, quoted.
    pub fn quoted(&self, name: &str) -> String {
        format!("{}.{}", ident(self.db()), ident(name))
    }

    pub async fn drop_table(&self, name: &str) -> Result<()> {
        let sql = format!("DROP TABLE IF EXISTS {}", self.quoted(name));
        self.target.execute(&sql, &[]).await
    }

    /// Creates `plan`'s target table unless it exists.
    pub async fn create_table(&self, plan: &TablePlan) -> Result<()> {
        self.target
            .execute(&create_table_sql(self.db(), plan), &[])
            .await
    }

    /// Whether the target table `name` exists.
    pub async fn target_exists(&self, name: &str) -> Result<bool> {
        #[derive(Deserialize)]
        struct Row {
            n: u64,
        }
        let rows: Vec<Row> = self
            .target
            .select(
                "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                &[("db", self.db()), ("t", name)],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    /// Whether the target already has exactly `plan`'s columns and types (a DDL replayed
    /// after a crash, or a live table a reload's changes can go into too).
    pub async fn target_has_columns(&self, plan: &TablePlan) -> Result<bool> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
            #[serde(rename = "type")]
            ty: String,
        }
        let rows: Vec<Row> = self
            .target
            .select(
                "SELECT name, type FROM system.columns WHERE database = {db:String} \
                 AND table = {t:String} AND NOT startsWith(name, '_tributary_') ORDER BY position",
                &[("db", self.db()), ("t", &plan.target)],
            )
            .await?;
        let have: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.ty.as_str()))
            .collect();
        let types: Vec<String> = plan.columns().map(column_type).collect();
        let want: Vec<(&str, &str)> = plan
            .columns()
            .zip(&types)
            .map(|(c, t)| (c.name.as_str(), t.as_str()))
            .collect();
        Ok(have == want)
    }
}

/// What the operator asks of the pipe: its commands, the shutdown signal, and a resync asked
/// for and not done yet.
pub(super) struct Control {
    pub commands: mpsc::Receiver<Request>,
    pub shutdown: watch::Receiver<bool>,
    /// Set when a resync was requested, until it completes.
    pub resync_requested: bool,
}

impl Control {
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Runs `op` with `retry` (a server still starting), answering operator commands
    /// meanwhile with a refusal that says what the pipe is doing (`state`); `None` when
    /// stopped by shutdown.
    pub async fn patiently<T, F, Fut>(
        &mut self,
        retry: &Retry<'_>,
        state: &str,
        op: F,
    ) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let shutdown = &self.shutdown;
        let work = retry.run(op, |delay| retry::sleep_unless_shutdown(delay, shutdown));
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                Some(request) = self.commands.recv() => {
                    let _ = request.reply.send(Err(format!(
                        "the pipe is {state} ({}); commands are taken once it is Running",
                        retry.step
                    )));
                }
            }
        }
    }
}
