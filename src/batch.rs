//! A CDC batch (pure): RowBinary rows per target table, the versions they carry and the
//! position of the last committed transaction they contain.
//!
//! Invariant: outside an open transaction the batch holds only whole committed transactions,
//! so flushing it and checkpointing `position` never splits a transaction; a rolled-back
//! transaction is truncated away and leaves neither rows nor consumed versions.

use crate::clickhouse::sql::{Change, Meta};
use crate::source::Position;

#[derive(Debug, Default)]
pub(crate) struct TableRows {
    pub data: Vec<u8>,
    pub rows: usize,
    /// Source row changes by kind, indexed by [`Op`] (a key-changing update is one update
    /// though it writes two rows).
    pub ops: [u64; 3],
}

/// The kind of a source row change, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Insert = 0,
    Update = 1,
    Delete = 2,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Insert, Op::Update, Op::Delete];

    /// The change an append-only table records for it.
    pub fn change(self) -> Change {
        match self {
            Op::Insert => Change::Insert,
            Op::Update => Change::Update,
            Op::Delete => Change::Delete,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// The committed rows of one table, taken out of a batch to be written.
#[derive(Debug)]
pub(crate) struct Taken {
    pub table: usize,
    pub data: Vec<u8>,
    pub rows: usize,
    pub ops: [u64; 3],
}

/// Where the open transaction started, to roll it back.
#[derive(Debug)]
struct Mark {
    lens: Vec<(usize, usize)>,
    ops: Vec<[u64; 3]>,
    next_version: u64,
    /// Some of its rows were already written (see [`Batch::spill`]): it can no longer be
    /// rolled back here.
    spilled: bool,
}

#[derive(Debug)]
pub(crate) struct Batch {
    pub tables: Vec<TableRows>,
    /// The version the next row change gets.
    pub next_version: u64,
    /// End of the last transaction committed into this batch.
    pub position: Option<Position>,
    committed_rows: usize,
    /// Bytes held in `tables`, kept as rows are pushed: read after every event.
    bytes: usize,
    open: Option<Mark>,
}

impl Batch {
    pub fn new(tables: usize, next_version: u64) -> Batch {
        Batch {
            tables: (0..tables).map(|_| TableRows::default()).collect(),
            next_version,
            position: None,
            committed_rows: 0,
            bytes: 0,
            open: None,
        }
    }

    pub fn begin(&mut self) {
        if self.open.is_none() {
            self.open = Some(Mark {
                lens: self.tables.iter().map(|t| (t.data.len(), t.rows)).collect(),
                ops: self.tables.iter().map(|t| t.ops).collect(),
                next_version: self.next_version,
                spilled: false,
            });
        }
    }

    /// Counts one source row change of `table` (rolled back with its transaction).
    pub fn count(&mut self, table: usize, op: Op) {
        self.begin();
        self.tables[table].ops[op as usize] += 1;
    }

    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Appends one row change: `encode_columns` writes the column values, the batch appends
    /// the version and the rest of `meta`. Returns the version used.
    pub fn push<E>(
        &mut self,
        table: usize,
        meta: Meta,
        encode_columns: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.begin();
        let version = self.next_version;
        let t = &mut self.tables[table];
        let start = t.data.len();
        if let Err(e) = encode_columns(&mut t.data) {
            t.data.truncate(start);
            return Err(e);
        }
        meta.put(&mut t.data, version);
        self.bytes += t.data.len() - start;
        t.rows += 1;
        self.next_version += 1;
        Ok(version)
    }

    pub fn commit(&mut self, position: Position) {
        if let Some(mark) = self.open.take() {
            let before: usize = mark.lens.iter().map(|(_, rows)| rows).sum();
            let after: usize = self.tables.iter().map(|t| t.rows).sum();
            self.committed_rows += after - before;
        }
        self.position = Some(position);
    }

    /// Drops the open transaction's rows and versions; `false` when some of them were already
    /// spilled to the target, which cannot be undone.
    pub fn rollback(&mut self) -> bool {
        if self.open.as_ref().is_some_and(|m| m.spilled) {
            return false;
        }
        if let Some(mark) = self.open.take() {
            for ((t, (len, rows)), ops) in self.tables.iter_mut().zip(mark.lens).zip(mark.ops) {
                t.data.truncate(len);
                t.rows = rows;
                t.ops = ops;
            }
            self.next_version = mark.next_version;
            self.bytes = self.held();
        }
        true
    }

    /// The version after the last committed transaction: what a checkpoint at `position`
    /// records as the next one.
    pub fn committed_version(&self) -> u64 {
        self.open
            .as_ref()
            .map_or(self.next_version, |m| m.next_version)
    }

    /// Takes every row out, the open transaction's included, to be written before the
    /// transaction ends; `position` stays, for the checkpoint after its commit. For a
    /// transaction too large to hold: its rows are written in parts, each under the versions
    /// a replay from the previous checkpoint gives them again.
    pub fn spill(&mut self) -> Vec<Taken> {
        let mut out = Vec::new();
        for (i, t) in self.tables.iter_mut().enumerate() {
            let ops = std::mem::take(&mut t.ops);
            if t.rows > 0 {
                out.push(Taken {
                    table: i,
                    data: std::mem::take(&mut t.data),
                    rows: std::mem::take(&mut t.rows),
                    ops,
                });
            }
        }
        if let Some(mark) = &mut self.open {
            mark.lens.iter_mut().for_each(|l| *l = (0, 0));
            mark.ops.iter_mut().for_each(|o| *o = [0; 3]);
            mark.spilled = true;
        }
        self.committed_rows = 0;
        self.bytes = 0;
        out
    }

    /// Row changes of committed transactions.
    pub fn rows(&self) -> usize {
        self.committed_rows
    }

    /// Bytes of RowBinary held, open transaction included.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn held(&self) -> usize {
        self.tables.iter().map(|t| t.data.len()).sum()
    }

    /// Takes the rows of committed transactions out of the batch, with the position they end
    /// at. Inside an open transaction (only at shutdown) the open part stays behind.
    pub fn take_committed(&mut self) -> (Vec<Taken>, Option<Position>) {
        let mut out = Vec::new();
        for (i, t) in self.tables.iter_mut().enumerate() {
            let (len, rows, ops) = match &mut self.open {
                Some(mark) => {
                    let (len, rows) = std::mem::take(&mut mark.lens[i]);
                    let ops = std::mem::take(&mut mark.ops[i]);
                    (len, rows, ops)
                }
                None => (t.data.len(), t.rows, t.ops),
            };
            for (now, taken) in t.ops.iter_mut().zip(ops) {
                *now -= taken;
            }
            if rows == 0 {
                continue;
            }
            let data = if len == t.data.len() {
                std::mem::take(&mut t.data)
            } else {
                t.data.drain(..len).collect()
            };
            t.rows -= rows;
            out.push(Taken {
                table: i,
                data,
                rows,
                ops,
            });
        }
        self.committed_rows = 0;
        self.bytes = self.held();
        (out, self.position.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(p: u64) -> Position {
        Position {
            file: "b.1".into(),
            pos: p,
            gtid: String::new(),
        }
    }

    fn put(batch: &mut Batch, table: usize, byte: u8) -> u64 {
        batch
            .push(table, Meta::Keyed { deleted: false }, |out| {
                out.push(byte);
                Ok::<(), ()>(())
            })
            .unwrap_or(0)
    }

    #[test]
    fn rollback_discards_rows_and_versions() {
        let mut b = Batch::new(2, 10);
        b.begin();
        assert_eq!(put(&mut b, 0, 1), 10);
        b.commit(pos(100));
        b.begin();
        put(&mut b, 0, 2);
        put(&mut b, 1, 3);
        b.rollback();
        assert_eq!(b.rows(), 1);
        assert_eq!(b.tables[0].data, [1, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(b.tables[1].data.is_empty());
        assert_eq!(b.next_version, 11);
        assert_eq!(b.position, Some(pos(100)));
        b.begin();
        assert_eq!(put(&mut b, 1, 4), 11);
        b.commit(pos(200));
        assert_eq!(b.rows(), 2);
        let (tables, position) = b.take_committed();
        assert_eq!(position, Some(pos(200)));
        assert_eq!(
            tables.iter().map(|t| (t.table, t.rows)).collect::<Vec<_>>(),
            [(0, 1), (1, 1)]
        );
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn shutdown_inside_a_transaction_takes_only_committed_rows() {
        let mut b = Batch::new(1, 1);
        put(&mut b, 0, 1);
        b.commit(pos(10));
        b.begin();
        put(&mut b, 0, 2);
        let (tables, position) = b.take_committed();
        assert_eq!(position, Some(pos(10)));
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].data[0], 1);
        assert_eq!(tables[0].rows, 1);
        assert_eq!(b.tables[0].rows, 1);
        assert_eq!(b.tables[0].data[0], 2);
    }

    #[test]
    fn operations_are_counted_per_table_and_rolled_back() {
        let mut b = Batch::new(1, 1);
        b.count(0, Op::Insert);
        put(&mut b, 0, 1);
        b.commit(pos(1));
        b.count(0, Op::Delete);
        put(&mut b, 0, 2);
        b.rollback();
        b.count(0, Op::Update);
        put(&mut b, 0, 3);
        b.commit(pos(2));
        b.count(0, Op::Delete);
        let (tables, _) = b.take_committed();
        assert_eq!(tables[0].ops, [1, 1, 0]);
        assert_eq!(
            b.tables[0].ops,
            [0, 0, 1],
            "the open transaction's count stays"
        );
    }

    #[test]
    fn a_spilled_transaction_keeps_its_versions_and_cannot_roll_back() {
        let mut b = Batch::new(2, 5);
        put(&mut b, 0, 1);
        b.commit(pos(10));
        b.begin();
        put(&mut b, 0, 2);
        put(&mut b, 1, 3);
        let spilled = b.spill();
        assert_eq!(
            spilled
                .iter()
                .map(|t| (t.table, t.rows))
                .collect::<Vec<_>>(),
            [(0, 2), (1, 1)]
        );
        assert_eq!(b.bytes(), 0);
        assert_eq!(
            b.committed_version(),
            6,
            "the open transaction is not committed"
        );
        assert_eq!(put(&mut b, 1, 4), 8, "versions continue after the spill");
        assert!(!b.rollback(), "spilled rows cannot be taken back");
        b.commit(pos(20));
        assert_eq!(b.committed_version(), 9);
        let (tables, position) = b.take_committed();
        assert_eq!(position, Some(pos(20)));
        assert_eq!(
            tables.iter().map(|t| (t.table, t.rows)).collect::<Vec<_>>(),
            [(1, 1)]
        );
    }

    #[test]
    fn bytes_count_every_table() {
        let mut b = Batch::new(2, 1);
        put(&mut b, 0, 1);
        put(&mut b, 1, 2);
        assert_eq!(b.bytes(), 2 * (1 + 8 + 1));
        b.commit(pos(1));
        b.begin();
        put(&mut b, 0, 3);
        b.rollback();
        assert_eq!(
            b.bytes(),
            2 * (1 + 8 + 1),
            "a rollback gives its bytes back"
        );
        b.begin();
        put(&mut b, 0, 4);
        let _ = b.take_committed();
        assert_eq!(b.bytes(), 1 + 8 + 1, "the open transaction's bytes stay");
    }

    #[test]
    fn failed_encoding_leaves_no_partial_row() {
        let mut b = Batch::new(1, 1);
        let r = b.push(0, Meta::Keyed { deleted: false }, |out| {
            out.push(9);
            Err("bad")
        });
        assert_eq!(r, Err("bad"));
        assert!(b.tables[0].data.is_empty());
        assert_eq!(b.next_version, 1);
    }
}
