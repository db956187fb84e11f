//! Binlog positions (pure).
//!
//! A position is the end of the last committed transaction: resuming a dump there replays
//! exactly the transactions after it. On MariaDB the GTID is the complete `domain-server-seq`
//! state at that offset (one per domain, as `BINLOG_GTID_POS` gives it) and the dump resumes
//! from it; elsewhere `file:pos` is resumed from and the GTID (MySQL's executed set where
//! known) is kept for operators.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct Position {
    pub file: String,
    pub pos: u64,
    #[serde(default)]
    pub gtid: String,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if !self.gtid.is_empty() {
            write!(f, " (gtid {})", self.gtid)?;
        }
        Ok(())
    }
}

impl Position {
    /// Whether this position is at or after `other` in the same server's binlog: by the
    /// file's sequence number (`name.000123`), then the offset.
    pub fn reached(&self, other: &Position) -> bool {
        fn sequence(file: &str) -> Option<u64> {
            file.rsplit_once('.')?.1.parse().ok()
        }
        match (sequence(&self.file), sequence(&other.file)) {
            (Some(a), Some(b)) if a != b => a > b,
            _ if self.file == other.file => self.pos >= other.pos,
            _ => self.file > other.file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, pos: u64) -> Position {
        Position {
            file: file.into(),
            pos,
            gtid: String::new(),
        }
    }

    #[test]
    fn positions_are_ordered_by_file_sequence_then_offset() {
        assert!(at("binlog.000002", 4).reached(&at("binlog.000001", 900)));
        assert!(at("binlog.000001", 900).reached(&at("binlog.000001", 900)));
        assert!(!at("binlog.000001", 899).reached(&at("binlog.000001", 900)));
        assert!(at("binlog.1000000", 4).reached(&at("binlog.999999", 4)));
        assert!(!at("binlog.999999", 4).reached(&at("binlog.1000000", 4)));
    }

    #[test]
    fn display() {
        let p = Position {
            file: "binlog.000042".into(),
            pos: 1234,
            gtid: "0-1-77".into(),
        };
        assert_eq!(p.to_string(), "binlog.000042:1234 (gtid 0-1-77)");
    }
}
