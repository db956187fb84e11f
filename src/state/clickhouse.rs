//! The state store in ClickHouse: one table per kind of state, rows appended, never updated.
//!
//! Checkpoint and progress rows carry an increasing sequence; the newest is read back.
//! Table overrides, isolation, reloads and definitions ([`REVISED`]) are append-only too, each
//! row with `rev`, the store's write sequence: the row with the highest `(rev, at)` is the truth
//! (for definitions, among those of the highest checkpoint `seq` in force). `rev` increases
//! strictly from one write to the next, within a millisecond and across restarts
//! ([`ClickHouseStore::next_rev`]), so neither a clock that ties nor two servers' clocks decide.
//! Rows written before `rev` existed (tables migrated by [`StateStore::init`]) have `rev` 0:
//! they keep their wall-clock order among themselves and any later write beats them. Merges
//! never drop the truth: `rev` ends the sorting key, so only rows of equal `rev` (the pre-`rev`
//! ones) collapse, by `at` as before. `snapshot_start` is written once per pipe key, so its
//! `at` never has to tell two writes apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::OnceCell;

use super::lease::{Held, Lease};
use super::{Checkpoint, PartitionRow, Progress, Reload, StateStore, Transition};
use crate::clickhouse::sql::{create_database_sql, ident};
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::schema::TableDef;
use crate::source::Position;
use crate::target::Target;

const TABLES: &[(&str, &str)] = &[
    (
        "leases",
        "(pipe String, epoch UInt64, instance String, expires DateTime64(3), \
         at DateTime64(3) DEFAULT now64(3)) \
         ENGINE = ReplacingMergeTree(at) ORDER BY (pipe, epoch, instance)",
    ),
    (
        "pipe_state",
        "(pipe String, seq UInt64, at DateTime64(3) DEFAULT now64(3), from_state String, \
         to_state String, reason String) ENGINE = MergeTree ORDER BY (pipe, seq)",
    ),
    (
        "checkpoints",
        "(pipe String, seq UInt64, file String, pos UInt64, gtid String, next_version UInt64, \
         at DateTime64(3) DEFAULT now64(3)) ENGINE = ReplacingMergeTree(seq) ORDER BY pipe",
    ),
    (
        "snapshot_start",
        "(pipe String, file String, pos UInt64, gtid String, at DateTime64(3) DEFAULT now64(3)) \
         ENGINE = ReplacingMergeTree(at) ORDER BY pipe",
    ),
    (
        "snapshot_progress",
        "(pipe String, table_name String, seq UInt64, last_key String, rows UInt64, done UInt8, \
         at DateTime64(3) DEFAULT now64(3)) ENGINE = ReplacingMergeTree(seq) ORDER BY (pipe, table_name)",
    ),
    (
        "snapshot_partitions",
        "(pipe String, table_name String, idx UInt32, seq UInt64, spec String, rows UInt64, \
         done UInt8, at DateTime64(3) DEFAULT now64(3)) \
         ENGINE = ReplacingMergeTree(seq) ORDER BY (pipe, table_name, idx)",
    ),
    // The tables of `REVISED`, as `ClickHouseStore::add_rev` leaves a table created without `rev`,
    // so that a new table and a migrated one are the same.
    (
        "table_overrides",
        "(pipe String, table_name String, included UInt8, at DateTime64(3) DEFAULT now64(3), \
         rev UInt64) ENGINE = ReplacingMergeTree(at) PRIMARY KEY (pipe, table_name) \
         ORDER BY (pipe, table_name, rev)",
    ),
    (
        "table_isolation",
        "(pipe String, table_name String, reason String, at DateTime64(3) DEFAULT now64(3), \
         rev UInt64) ENGINE = ReplacingMergeTree(at) PRIMARY KEY (pipe, table_name) \
         ORDER BY (pipe, table_name, rev)",
    ),
    (
        "table_reloads",
        "(pipe String, table_name String, state UInt8, namespace String, \
         at DateTime64(3) DEFAULT now64(3), rev UInt64) \
         ENGINE = ReplacingMergeTree(at) PRIMARY KEY (pipe, table_name) \
         ORDER BY (pipe, table_name, rev)",
    ),
    (
        "table_definitions",
        "(pipe String, table_name String, seq UInt64, definition String, \
         at DateTime64(3) DEFAULT now64(3), rev UInt64) \
         ENGINE = ReplacingMergeTree(at) PRIMARY KEY (pipe, table_name, seq) \
         ORDER BY (pipe, table_name, seq, rev)",
    ),
];

/// The tables whose rows are ordered by `rev` (see the module doc), with their sorting key
/// before `rev` existed. `rev` extends that key rather than becoming the engine's version:
/// ClickHouse cannot change the version of an existing table, but it can extend a sorting key
/// with a column added by the same ALTER. `at` stays the version, for the pre-`rev` rows.
const REVISED: &[(&str, &str)] = &[
    ("table_overrides", "pipe, table_name"),
    ("table_isolation", "pipe, table_name"),
    ("table_reloads", "pipe, table_name"),
    ("table_definitions", "pipe, table_name, seq"),
];

#[derive(Clone)]
pub(crate) struct ClickHouseStore {
    target: Target,
    db: String,
    pipe: String,
    /// The last `rev` this store and its clones wrote, once read (see `next_rev`).
    last_rev: Arc<OnceCell<AtomicU64>>,
    /// The lease this store and its clones write checkpoints under, once held (see
    /// [`super::lease`]): checked before each.
    fence: Arc<Mutex<Option<(String, Held)>>>,
}

impl ClickHouseStore {
    pub fn new(target: Target, db: &str, pipe: &str) -> ClickHouseStore {
        ClickHouseStore {
            target,
            db: db.to_owned(),
            pipe: pipe.to_owned(),
            last_rev: Arc::default(),
            fence: Arc::default(),
        }
    }

    /// The newest lease of `pipe` (see [`super::lease`]), by ClickHouse's clock.
    pub async fn newest_lease(&self, pipe: &str) -> Result<Option<Lease>> {
        let sql = format!(
            "SELECT epoch, instance, toUInt8(argMax(expires, at) < now64(3)) AS expired, \
             toString(argMax(expires, at)) AS until FROM {} WHERE pipe = {{pipe:String}} \
             GROUP BY epoch, instance ORDER BY epoch DESC, instance DESC LIMIT 1",
            self.table("leases")
        );
        let rows: Vec<Lease> = self.target.select(&sql, &[("pipe", pipe)]).await?;
        Ok(rows.into_iter().next())
    }

    /// Writes `held`'s lease of `pipe`, expiring `valid` from now (ClickHouse's clock); zero
    /// releases it.
    pub async fn write_lease(&self, pipe: &str, held: &Held, valid: Duration) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipe, epoch, instance, expires) SELECT {{pipe:String}}, \
             {{epoch:UInt64}}, {{instance:String}}, now64(3) + toIntervalMillisecond({{ms:Int64}})",
            self.table("leases")
        );
        // A release expires it a millisecond ago: expired at once by any clock reading.
        let ms = match valid.is_zero() {
            true => -1,
            false => i64::try_from(valid.as_millis()).unwrap_or(i64::MAX),
        };
        let (epoch, ms) = (held.epoch.to_string(), ms.to_string());
        let params = [
            ("pipe", pipe),
            ("epoch", epoch.as_str()),
            ("instance", held.instance.as_str()),
            ("ms", ms.as_str()),
        ];
        self.target.execute(&sql, &params).await
    }

    /// From now on, every checkpoint this store (or a clone) writes is first checked to be
    /// under `held`, still the newest lease of `pipe`; `None` lifts the check.
    pub fn fence(&self, held: Option<(String, Held)>) {
        *self
            .fence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = held;
    }

    /// Fails with `LeaseLost` when another instance holds a newer lease than the fence's.
    async fn check_fence(&self) -> Result<()> {
        let fence = self
            .fence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some((pipe, held)) = fence else {
            return Ok(());
        };
        let newest = self.newest_lease(&pipe).await?;
        if super::lease::holds(newest.as_ref(), &held) {
            return Ok(());
        }
        Err(Error::LeaseLost {
            instance: held.instance,
            by: newest.map_or_else(|| "none".into(), |l| l.instance),
            epoch: held.epoch,
        })
    }

    fn table(&self, name: &str) -> String {
        format!("{}.{}", ident(&self.db), ident(name))
    }

    /// Gives `rev` to the tables of `REVISED` that a version before it created: their rows
    /// read `rev` 0, below any later write. Only tables without it are altered, so that a
    /// start does not rewrite every table's metadata.
    async fn add_rev(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct Row {
            table: String,
        }
        let sql = "SELECT table FROM system.columns WHERE database = {db:String} AND name = 'rev'";
        let revised: Vec<Row> = self.target.select(sql, &[("db", &self.db)]).await?;
        let alters = REVISED
            .iter()
            .filter(|(name, _)| !revised.iter().any(|r| r.table == *name))
            .map(|(name, key)| async move {
                // No DEFAULT clause: ClickHouse refuses to put a column added with a default
                // expression in the sorting key; UInt64's implicit default is 0.
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS rev UInt64, \
                     MODIFY ORDER BY ({key}, rev)",
                    self.table(name)
                );
                self.target.execute_sync(&sql).await
            });
        futures_util::future::try_join_all(alters).await?;
        Ok(())
    }

    /// The `rev` of the next write to a table of `REVISED`: one more than the last, the first
    /// one more than the highest stored. A counter and not a clock: two writes in the same
    /// millisecond get two values in the order they were made, and a restart (on another
    /// host, or after the clock went back) starts above every row written before it. The
    /// stored maximum is read at the first write, after `init` has given every table `rev`.
    async fn next_rev(&self) -> Result<String> {
        let last = self.last_rev.get_or_try_init(|| self.stored_rev()).await?;
        Ok((last.fetch_add(1, Ordering::Relaxed) + 1).to_string())
    }

    /// The highest `rev` stored, of any pipe key: namespaced stores share the sequence.
    async fn stored_rev(&self) -> Result<AtomicU64> {
        #[derive(Deserialize)]
        struct Row {
            rev: u64,
        }
        let maxima: Vec<String> = REVISED
            .iter()
            .map(|(name, _)| format!("(SELECT max(rev) FROM {})", self.table(name)))
            .collect();
        let sql = format!("SELECT greatest({}) AS rev", maxima.join(", "));
        let rows: Vec<Row> = self.target.select(&sql, &[]).await?;
        Ok(AtomicU64::new(rows.first().map_or(0, |r| r.rev)))
    }

    /// Appends to `name`, a table of `REVISED`, the row of `table` with `columns` (name, type,
    /// value) and the next `rev`.
    async fn append(&self, name: &str, table: &str, columns: &[(&str, &str, &str)]) -> Result<()> {
        let rev = self.next_rev().await?;
        let names: Vec<&str> = columns.iter().map(|(c, _, _)| *c).collect();
        let values: Vec<String> = columns
            .iter()
            .map(|(c, ty, _)| format!("{{{c}:{ty}}}"))
            .collect();
        let sql = format!(
            "INSERT INTO {} (pipe, table_name, {}, rev) SELECT {{pipe:String}}, \
             {{table:String}}, {}, {{rev:UInt64}}",
            self.table(name),
            names.join(", "),
            values.join(", ")
        );
        let mut params = vec![
            ("pipe", self.pipe.as_str()),
            ("table", table),
            ("rev", &rev),
        ];
        params.extend(columns.iter().map(|(c, _, value)| (*c, *value)));
        self.target.execute(&sql, &params).await
    }
}

impl StateStore for ClickHouseStore {
    async fn init(&self) -> Result<()> {
        self.target
            .execute(&create_database_sql(&self.db), &[])
            .await?;
        // Independent statements: sent together, so a start does not wait for each in turn.
        let creates = TABLES.iter().map(|(name, body)| async move {
            let sql = format!("CREATE TABLE IF NOT EXISTS {} {body}", self.table(name));
            self.target.execute(&sql, &[]).await
        });
        futures_util::future::try_join_all(creates).await?;
        self.add_rev().await
    }

    async fn history(&self, limit: u64) -> Result<Vec<Transition>> {
        let sql = format!(
            "SELECT seq, toString(at) AS at, from_state, to_state, reason FROM {} \
             WHERE pipe = {{pipe:String}} ORDER BY seq DESC LIMIT {limit}",
            self.table("pipe_state")
        );
        self.target.select(&sql, &[("pipe", &self.pipe)]).await
    }

    async fn record_transition(
        &self,
        from: Option<PipeState>,
        to: PipeState,
        reason: &str,
    ) -> Result<()> {
        let seq = self.current_state().await?.map_or(1, |t| t.seq + 1);
        let sql = format!(
            "INSERT INTO {} (pipe, seq, from_state, to_state, reason) SELECT {{pipe:String}}, \
             {{seq:UInt64}}, {{from:String}}, {{to:String}}, {{reason:String}}",
            self.table("pipe_state")
        );
        let seq = seq.to_string();
        let from = from.map(PipeState::as_str).unwrap_or("");
        self.target
            .execute(
                &sql,
                &[
                    ("pipe", &self.pipe),
                    ("seq", &seq),
                    ("from", from),
                    ("to", to.as_str()),
                    ("reason", reason),
                ],
            )
            .await
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        #[derive(Deserialize)]
        struct Row {
            seq: u64,
            file: String,
            pos: u64,
            gtid: String,
            next_version: u64,
        }
        let sql = format!(
            "SELECT seq, file, pos, gtid, next_version FROM {} WHERE pipe = {{pipe:String}} \
             ORDER BY seq DESC LIMIT 1",
            self.table("checkpoints")
        );
        let rows: Vec<Row> = self.target.select(&sql, &[("pipe", &self.pipe)]).await?;
        Ok(rows.into_iter().next().map(|r| Checkpoint {
            seq: r.seq,
            position: Position {
                file: r.file,
                pos: r.pos,
                gtid: r.gtid,
            },
            next_version: r.next_version,
        }))
    }

    async fn save_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        self.check_fence().await?;
        let sql = format!(
            "INSERT INTO {} (pipe, seq, file, pos, gtid, next_version) SELECT {{pipe:String}}, \
             {{seq:UInt64}}, {{file:String}}, {{pos:UInt64}}, {{gtid:String}}, {{version:UInt64}}",
            self.table("checkpoints")
        );
        let (seq, pos, version) = (
            cp.seq.to_string(),
            cp.position.pos.to_string(),
            cp.next_version.to_string(),
        );
        self.target
            .execute(
                &sql,
                &[
                    ("pipe", &self.pipe),
                    ("seq", &seq),
                    ("file", &cp.position.file),
                    ("pos", &pos),
                    ("gtid", &cp.position.gtid),
                    ("version", &version),
                ],
            )
            .await
    }

    async fn snapshot_start(&self) -> Result<Option<Position>> {
        let sql = format!(
            "SELECT file, pos, gtid FROM {} WHERE pipe = {{pipe:String}} ORDER BY at DESC LIMIT 1",
            self.table("snapshot_start")
        );
        Ok(self
            .target
            .select::<Position>(&sql, &[("pipe", &self.pipe)])
            .await?
            .into_iter()
            .next())
    }

    async fn save_snapshot_start(&self, p: &Position) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipe, file, pos, gtid) SELECT {{pipe:String}}, {{file:String}}, \
             {{pos:UInt64}}, {{gtid:String}}",
            self.table("snapshot_start")
        );
        let pos = p.pos.to_string();
        self.target
            .execute(
                &sql,
                &[
                    ("pipe", &self.pipe),
                    ("file", &p.file),
                    ("pos", &pos),
                    ("gtid", &p.gtid),
                ],
            )
            .await
    }

    async fn progress(&self, table: &str) -> Result<Progress> {
        #[derive(Deserialize)]
        struct Row {
            seq: u64,
            last_key: String,
            rows: u64,
            done: u8,
        }
        let sql = format!(
            "SELECT seq, last_key, rows, done FROM {} WHERE pipe = {{pipe:String}} \
             AND table_name = {{table:String}} ORDER BY seq DESC LIMIT 1",
            self.table("snapshot_progress")
        );
        let rows: Vec<Row> = self
            .target
            .select(&sql, &[("pipe", &self.pipe), ("table", table)])
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| {
                // The column keeps its first name; it holds the JSON of `read_at`.
                let read_at =
                    match r.last_key.as_str() {
                        "" => None,
                        json => Some(serde_json::from_str(json).map_err(|e| {
                            Error::UnreadableProgress {
                                table: table.to_owned(),
                                detail: e.to_string(),
                            }
                        })?),
                    };
                Ok::<_, Error>(Progress {
                    seq: r.seq,
                    read_at,
                    rows: r.rows,
                    done: r.done != 0,
                })
            })
            .transpose()?
            .unwrap_or_default())
    }

    async fn save_progress(&self, table: &str, p: &Progress) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipe, table_name, seq, last_key, rows, done) SELECT {{pipe:String}}, \
             {{table:String}}, {{seq:UInt64}}, {{key:String}}, {{rows:UInt64}}, {{done:UInt8}}",
            self.table("snapshot_progress")
        );
        let (seq, rows, done) = (
            p.seq.to_string(),
            p.rows.to_string(),
            u8::from(p.done).to_string(),
        );
        let read_at = match &p.read_at {
            None => String::new(),
            Some(position) => serde_json::to_string(position).map_err(|e| Error::Bug {
                detail: format!("snapshot position of {table}: {e}"),
            })?,
        };
        self.target
            .execute(
                &sql,
                &[
                    ("pipe", &self.pipe),
                    ("table", table),
                    ("seq", &seq),
                    ("key", &read_at),
                    ("rows", &rows),
                    ("done", &done),
                ],
            )
            .await
    }

    async fn partitions(&self, table: &str) -> Result<Vec<PartitionRow>> {
        let sql = format!(
            "SELECT idx, argMax(spec, seq) AS spec, argMax(rows, seq) AS rows, \
             argMax(done, seq) AS done FROM {} WHERE pipe = {{pipe:String}} \
             AND table_name = {{table:String}} GROUP BY idx ORDER BY idx",
            self.table("snapshot_partitions")
        );
        self.target
            .select(&sql, &[("pipe", &self.pipe), ("table", table)])
            .await
    }

    async fn forget_snapshot(&self, table: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE pipe = {{pipe:String}} AND table_name = {{table:String}}",
            self.table("snapshot_partitions")
        );
        self.target
            .execute(&sql, &[("pipe", &self.pipe), ("table", table)])
            .await?;
        let current = self.progress(table).await?;
        self.save_progress(
            table,
            &Progress {
                seq: current.seq + 1,
                ..Progress::default()
            },
        )
        .await
    }

    async fn save_plan(&self, table: &str, partitions: &[PartitionRow]) -> Result<()> {
        let mut body = Vec::new();
        for p in partitions {
            let row = serde_json::json!({
                "pipe": self.pipe, "table_name": table, "idx": p.idx, "seq": 1,
                "spec": p.spec, "rows": 0, "done": 0,
            });
            body.extend_from_slice(row.to_string().as_bytes());
            body.push(b'\n');
        }
        let sql = format!(
            "INSERT INTO {} (pipe, table_name, idx, seq, spec, rows, done) FORMAT JSONEachRow",
            self.table("snapshot_partitions")
        );
        self.target.insert(&sql, body.into()).await
    }

    async fn save_partition(&self, table: &str, p: &PartitionRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipe, table_name, idx, seq, spec, rows, done) SELECT {{pipe:String}}, \
             {{table:String}}, {{idx:UInt32}}, {{seq:UInt64}}, {{spec:String}}, {{rows:UInt64}}, \
             {{done:UInt8}}",
            self.table("snapshot_partitions")
        );
        let (idx, seq, rows, done) = (
            p.idx.to_string(),
            (1 + u64::from(p.done)).to_string(),
            p.rows.to_string(),
            p.done.to_string(),
        );
        self.target
            .execute(
                &sql,
                &[
                    ("pipe", &self.pipe),
                    ("table", table),
                    ("idx", &idx),
                    ("seq", &seq),
                    ("spec", &p.spec),
                    ("rows", &rows),
                    ("done", &done),
                ],
            )
            .await
    }

    async fn all_progress(&self) -> Result<Vec<(String, Progress)>> {
        #[derive(Deserialize)]
        struct Row {
            table_name: String,
            rows: u64,
            done: u8,
        }
        let sql = format!(
            "SELECT table_name, argMax(rows, seq) AS rows, argMax(done, seq) AS done FROM {} \
             WHERE pipe = {{pipe:String}} GROUP BY table_name ORDER BY table_name",
            self.table("snapshot_progress")
        );
        let rows: Vec<Row> = self.target.select(&sql, &[("pipe", &self.pipe)]).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.table_name,
                    Progress {
                        rows: r.rows,
                        done: r.done != 0,
                        ..Progress::default()
                    },
                )
            })
            .collect())
    }

    async fn overrides(&self) -> Result<Vec<(String, bool)>> {
        #[derive(Deserialize)]
        struct Row {
            table_name: String,
            included: u8,
        }
        let sql = format!(
            "SELECT table_name, argMax(included, (rev, at)) AS included FROM {} \
             WHERE pipe = {{pipe:String}} GROUP BY table_name ORDER BY table_name",
            self.table("table_overrides")
        );
        let rows: Vec<Row> = self.target.select(&sql, &[("pipe", &self.pipe)]).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.table_name, r.included != 0))
            .collect())
    }

    async fn save_override(&self, table: &str, included: bool) -> Result<()> {
        let included = u8::from(included).to_string();
        self.append(
            "table_overrides",
            table,
            &[("included", "UInt8", &included)],
        )
        .await
    }

    async fn isolated(&self) -> Result<Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct Row {
            table_name: String,
            reason: String,
        }
        let sql = format!(
            "SELECT table_name, argMax(reason, (rev, at)) AS reason FROM {} WHERE pipe = {{pipe:String}} \
             GROUP BY table_name HAVING reason != '' ORDER BY table_name",
            self.table("table_isolation")
        );
        let rows: Vec<Row> = self.target.select(&sql, &[("pipe", &self.pipe)]).await?;
        Ok(rows.into_iter().map(|r| (r.table_name, r.reason)).collect())
    }

    async fn isolate(&self, table: &str, reason: &str) -> Result<()> {
        self.append("table_isolation", table, &[("reason", "String", reason)])
            .await
    }

    async fn reloads(&self) -> Result<Vec<(String, Reload)>> {
        #[derive(Deserialize)]
        struct Row {
            table_name: String,
            state: u8,
            namespace: String,
        }
        let sql = format!(
            "SELECT table_name, argMax(state, (rev, at)) AS state, \
             argMax(namespace, (rev, at)) AS namespace \
             FROM {} WHERE pipe = {{pipe:String}} GROUP BY table_name HAVING state != 0 \
             ORDER BY table_name",
            self.table("table_reloads")
        );
        let rows: Vec<Row> = self.target.select(&sql, &[("pipe", &self.pipe)]).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let reload = match r.state {
                    1 => Reload::Waiting,
                    _ => Reload::Loading {
                        namespace: r.namespace,
                    },
                };
                (r.table_name, reload)
            })
            .collect())
    }

    async fn save_reload(&self, table: &str, reload: Option<&Reload>) -> Result<()> {
        let (state, namespace) = match reload {
            None => ("0", ""),
            Some(Reload::Waiting) => ("1", ""),
            Some(Reload::Loading { namespace }) => ("2", namespace.as_str()),
        };
        let columns = [
            ("state", "UInt8", state),
            ("namespace", "String", namespace),
        ];
        self.append("table_reloads", table, &columns).await
    }

    fn namespaced(&self, suffix: &str) -> ClickHouseStore {
        ClickHouseStore {
            target: self.target.clone(),
            db: self.db.clone(),
            pipe: format!("{}{suffix}", self.pipe),
            last_rev: self.last_rev.clone(),
            fence: self.fence.clone(),
        }
    }

    async fn stored_definition(&self, table: &str, seq: u64) -> Result<Option<TableDef>> {
        #[derive(Deserialize)]
        struct Row {
            definition: String,
        }
        let sql = format!(
            "SELECT definition FROM {} WHERE pipe = {{pipe:String}} AND table_name = {{table:String}} \
             AND seq <= {{seq:UInt64}} ORDER BY seq DESC, rev DESC, at DESC LIMIT 1",
            self.table("table_definitions")
        );
        let rows: Vec<Row> = self
            .target
            .select(
                &sql,
                &[
                    ("pipe", &self.pipe),
                    ("table", table),
                    ("seq", &seq.to_string()),
                ],
            )
            .await?;
        rows.into_iter()
            .next()
            .map(|r| {
                serde_json::from_str(&r.definition).map_err(|e| Error::UnreadableDefinition {
                    table: table.to_owned(),
                    detail: e.to_string(),
                })
            })
            .transpose()
    }

    async fn save_definition(&self, def: &TableDef, seq: u64) -> Result<()> {
        let json = serde_json::to_string(def).map_err(|e| Error::Bug {
            detail: format!("definition of {}: {e}", def.qualified()),
        })?;
        let seq = seq.to_string();
        let columns = [
            ("seq", "UInt64", seq.as_str()),
            ("definition", "String", &json),
        ];
        self.append("table_definitions", &def.qualified(), &columns)
            .await
    }
}

#[cfg(test)]
mod tests;
