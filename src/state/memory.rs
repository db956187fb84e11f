//! The state store in memory (tests): the answers [`ClickHouseStore`] gives, without a server.
//!
//! Invariant: each read answers what the ClickHouse store would after the same writes: the
//! highest sequence wins for checkpoints, progress and partitions, the last write for table
//! state, and definitions by the checkpoint they apply from. Clones and namespaced stores share
//! one set of rows, as stores on one ClickHouse do; a "restart" is a new store on those rows
//! ([`MemoryStore::restart`]). Writes can be made to fail, as a ClickHouse gone away does.
//!
//! [`ClickHouseStore`]: super::ClickHouseStore

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Checkpoint, PartitionRow, Progress, Reload, StateStore, Transition};
use crate::error::{Error, Result, TargetCause};
use crate::lifecycle::PipeState;
use crate::schema::TableDef;
use crate::source::Position;

/// The rows of one pipe key.
#[derive(Debug, Default, Clone)]
struct Rows {
    transitions: Vec<Transition>,
    checkpoints: Vec<Checkpoint>,
    snapshot_start: Option<Position>,
    progress: BTreeMap<String, Progress>,
    partitions: BTreeMap<String, BTreeMap<u32, PartitionRow>>,
    overrides: BTreeMap<String, bool>,
    isolation: BTreeMap<String, String>,
    reloads: BTreeMap<String, Reload>,
    /// By table, then by the checkpoint they apply from: the last written.
    definitions: BTreeMap<String, BTreeMap<u64, TableDef>>,
}

#[derive(Debug, Default)]
struct Shared {
    rows: Mutex<HashMap<String, Rows>>,
    /// Every write fails (transiently) while set.
    failing: AtomicBool,
}

#[derive(Clone, Debug)]
pub(crate) struct MemoryStore {
    shared: Arc<Shared>,
    pipe: String,
}

impl MemoryStore {
    pub fn new(pipe: &str) -> MemoryStore {
        MemoryStore {
            shared: Arc::default(),
            pipe: pipe.to_owned(),
        }
    }

    /// A store of a restarted daemon: the same rows, nothing else carried over.
    pub fn restart(&self) -> MemoryStore {
        MemoryStore {
            shared: Arc::clone(&self.shared),
            pipe: self.pipe.clone(),
        }
    }

    /// Makes every write fail (`true`) as an unreachable ClickHouse would, or succeed again.
    pub fn fail_writes(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    fn all(&self) -> MutexGuard<'_, HashMap<String, Rows>> {
        match self.shared.rows.lock() {
            Ok(rows) => rows,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Rows) -> T) -> Result<T> {
        let mut all = self.all();
        Ok(f(all.entry(self.pipe.clone()).or_default()))
    }

    fn write(&self, f: impl FnOnce(&mut Rows)) -> Result<()> {
        if self.shared.failing.load(Ordering::SeqCst) {
            return Err(Error::Target {
                url: "memory".into(),
                message: "the state store is unreachable".into(),
                cause: TargetCause::Network,
            });
        }
        let mut all = self.all();
        f(all.entry(self.pipe.clone()).or_default());
        Ok(())
    }
}

impl StateStore for MemoryStore {
    async fn init(&self) -> Result<()> {
        Ok(())
    }

    async fn history(&self, limit: u64) -> Result<Vec<Transition>> {
        self.read(|r| {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            r.transitions.iter().rev().take(limit).cloned().collect()
        })
    }

    async fn record_transition(
        &self,
        from: Option<PipeState>,
        to: PipeState,
        reason: &str,
    ) -> Result<()> {
        self.write(|r| {
            let transition = Transition {
                seq: r.transitions.last().map_or(1, |t| t.seq + 1),
                at: String::new(),
                from_state: from.map(PipeState::as_str).unwrap_or("").to_owned(),
                to_state: to.as_str().to_owned(),
                reason: reason.to_owned(),
            };
            r.transitions.push(transition);
        })
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.read(|r| r.checkpoints.iter().max_by_key(|c| c.seq).cloned())
    }

    async fn save_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        self.write(|r| r.checkpoints.push(cp.clone()))
    }

    async fn snapshot_start(&self) -> Result<Option<Position>> {
        self.read(|r| r.snapshot_start.clone())
    }

    async fn save_snapshot_start(&self, p: &Position) -> Result<()> {
        self.write(|r| r.snapshot_start = Some(p.clone()))
    }

    async fn progress(&self, table: &str) -> Result<Progress> {
        self.read(|r| r.progress.get(table).cloned().unwrap_or_default())
    }

    async fn save_progress(&self, table: &str, p: &Progress) -> Result<()> {
        self.write(|r| {
            let newer = r.progress.get(table).is_none_or(|old| p.seq >= old.seq);
            if newer {
                r.progress.insert(table.to_owned(), p.clone());
            }
        })
    }

    async fn partitions(&self, table: &str) -> Result<Vec<PartitionRow>> {
        self.read(|r| {
            r.partitions
                .get(table)
                .map(|p| p.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    async fn forget_snapshot(&self, table: &str) -> Result<()> {
        self.write(|r| {
            r.partitions.remove(table);
            let seq = r.progress.get(table).map_or(0, |p| p.seq) + 1;
            r.progress.insert(
                table.to_owned(),
                Progress {
                    seq,
                    ..Progress::default()
                },
            );
        })
    }

    async fn save_plan(&self, table: &str, partitions: &[PartitionRow]) -> Result<()> {
        self.write(|r| {
            let plan = r.partitions.entry(table.to_owned()).or_default();
            for p in partitions {
                plan.insert(
                    p.idx,
                    PartitionRow {
                        rows: 0,
                        done: 0,
                        ..p.clone()
                    },
                );
            }
        })
    }

    async fn save_partition(&self, table: &str, p: &PartitionRow) -> Result<()> {
        self.write(|r| {
            let plan = r.partitions.entry(table.to_owned()).or_default();
            // `done` is the row's sequence: a done partition stays done.
            if plan.get(&p.idx).is_none_or(|old| p.done >= old.done) {
                plan.insert(p.idx, p.clone());
            }
        })
    }

    async fn all_progress(&self) -> Result<Vec<(String, Progress)>> {
        self.read(|r| {
            r.progress
                .iter()
                .map(|(t, p)| {
                    let shown = Progress {
                        rows: p.rows,
                        done: p.done,
                        ..Progress::default()
                    };
                    (t.clone(), shown)
                })
                .collect()
        })
    }

    async fn overrides(&self) -> Result<Vec<(String, bool)>> {
        self.read(|r| r.overrides.iter().map(|(t, i)| (t.clone(), *i)).collect())
    }

    async fn save_override(&self, table: &str, included: bool) -> Result<()> {
        self.write(|r| {
            r.overrides.insert(table.to_owned(), included);
        })
    }

    async fn isolated(&self) -> Result<Vec<(String, String)>> {
        self.read(|r| {
            r.isolation
                .iter()
                .filter(|(_, reason)| !reason.is_empty())
                .map(|(t, reason)| (t.clone(), reason.clone()))
                .collect()
        })
    }

    async fn isolate(&self, table: &str, reason: &str) -> Result<()> {
        self.write(|r| {
            r.isolation.insert(table.to_owned(), reason.to_owned());
        })
    }

    async fn reloads(&self) -> Result<Vec<(String, Reload)>> {
        self.read(|r| {
            r.reloads
                .iter()
                .map(|(t, l)| (t.clone(), l.clone()))
                .collect()
        })
    }

    async fn save_reload(&self, table: &str, reload: Option<&Reload>) -> Result<()> {
        self.write(|r| match reload {
            Some(reload) => {
                r.reloads.insert(table.to_owned(), reload.clone());
            }
            None => {
                r.reloads.remove(table);
            }
        })
    }

    fn namespaced(&self, suffix: &str) -> MemoryStore {
        MemoryStore {
            shared: Arc::clone(&self.shared),
            pipe: format!("{}{suffix}", self.pipe),
        }
    }

    async fn stored_definition(&self, table: &str, seq: u64) -> Result<Option<TableDef>> {
        self.read(|r| {
            r.definitions
                .get(table)
                .and_then(|by_seq| by_seq.range(..=seq).next_back())
                .map(|(_, def)| def.clone())
        })
    }

    async fn save_definition(&self, def: &TableDef, seq: u64) -> Result<()> {
        self.write(|r| {
            r.definitions
                .entry(def.qualified())
                .or_default()
                .insert(seq, def.clone());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::definition;

    #[tokio::test]
    async fn reads_answer_as_the_clickhouse_store_does() {
        let store = MemoryStore::new("p");
        // Table state: the last write.
        store.isolate("d.t", "a").await.unwrap();
        store.isolate("d.t", "").await.unwrap();
        store.isolate("d.u", "b").await.unwrap();
        assert_eq!(
            store.isolated().await.unwrap(),
            vec![("d.u".into(), "b".into())]
        );
        store
            .save_reload("d.t", Some(&Reload::Waiting))
            .await
            .unwrap();
        store.save_reload("d.t", None).await.unwrap();
        assert_eq!(store.reloads().await.unwrap(), Vec::new());
        // Definitions: the one in force at a checkpoint, last written among equal ones.
        store.save_definition(&definition(1), 3).await.unwrap();
        store.save_definition(&definition(2), 5).await.unwrap();
        store.save_definition(&definition(3), 5).await.unwrap();
        let at = |seq| store.stored_definition("d.t", seq);
        assert_eq!(at(2).await.unwrap(), None);
        assert_eq!(at(4).await.unwrap(), Some(definition(1)));
        assert_eq!(at(9).await.unwrap(), Some(definition(3)));
        // Checkpoints and progress: the highest sequence, whatever the order of the writes.
        let cp = |seq| Checkpoint {
            seq,
            position: Position::default(),
            next_version: seq * 10,
        };
        store.save_checkpoint(&cp(2)).await.unwrap();
        store.save_checkpoint(&cp(1)).await.unwrap();
        assert_eq!(store.checkpoint().await.unwrap(), Some(cp(2)));
        // A namespaced store has rows of its own; a restarted one sees the same rows.
        let ns = store.namespaced("#n");
        assert_eq!(ns.checkpoint().await.unwrap(), None);
        assert_eq!(store.restart().checkpoint().await.unwrap(), Some(cp(2)));
    }

    #[tokio::test]
    async fn failing_writes_change_nothing() {
        let store = MemoryStore::new("p");
        store.fail_writes(true);
        let err = store.isolate("d.t", "x").await.unwrap_err();
        assert!(err.is_transient());
        store.fail_writes(false);
        assert_eq!(store.isolated().await.unwrap(), Vec::new());
    }
}
