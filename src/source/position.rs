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

/// MariaDB: the position of a consistent snapshot from the `binlog_snapshot_file` and
/// `binlog_snapshot_position` status variables; an error says which one is missing or
/// unreadable (never a default: a made-up position would lose or replay rows).
pub(crate) fn snapshot_position(status: &[(String, String)]) -> Result<Position, String> {
    let get = |name: &str| {
        status
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .ok_or_else(|| format!("the status variable {name} is missing"))
    };
    let file = get("binlog_snapshot_file")?;
    if file.is_empty() {
        return Err("binlog_snapshot_file is empty: is the binary log on?".into());
    }
    let pos = get("binlog_snapshot_position")?;
    let pos = pos
        .parse()
        .map_err(|_| format!("binlog_snapshot_position is `{pos}`, not an offset"))?;
    Ok(Position {
        file: file.to_owned(),
        pos,
        gtid: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_position_is_read_or_refused_with_what_is_missing() {
        let status = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let ok = snapshot_position(&status(&[
            ("Binlog_snapshot_file", "binlog.000003"),
            ("Binlog_snapshot_position", "1234"),
        ]));
        assert_eq!(ok, Ok(at("binlog.000003", 1234)));
        let missing = snapshot_position(&status(&[("Binlog_snapshot_file", "binlog.000003")]));
        assert!(missing
            .unwrap_err()
            .contains("binlog_snapshot_position is missing"));
        let empty = snapshot_position(&status(&[
            ("Binlog_snapshot_file", ""),
            ("Binlog_snapshot_position", "0"),
        ]));
        assert!(empty.unwrap_err().contains("binlog_snapshot_file is empty"));
        let garbage = snapshot_position(&status(&[
            ("Binlog_snapshot_file", "binlog.000003"),
            ("Binlog_snapshot_position", "x1"),
        ]));
        assert!(garbage.unwrap_err().contains("`x1`"));
    }

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
