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

#[cfg(test)]
mod tests {
    use super::*;

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
