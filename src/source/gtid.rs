//! MariaDB GTIDs and replication states (pure): what a position's `gtid` field holds, and
//! what the binlog's GTID and GTID_LIST events move forward.
//!
//! Invariant: a state holds one GTID per domain, the last one reached, and never moves a
//! domain backwards; its text is MariaDB's own (`0-1-100,1-2-7`), so the source accepts it
//! back as `@slave_connect_state`.

use std::collections::BTreeMap;

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// The replication state as MariaDB's `gtid_binlog_pos` prints it: the last GTID per domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GtidState {
    domains: BTreeMap<u32, Gtid>,
}

impl GtidState {
    /// Parses `0-1-100,1-2-7`; `None` for anything else (a MySQL GTID set).
    pub fn parse(s: &str) -> Option<GtidState> {
        let mut state = GtidState::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.splitn(3, '-');
            let gtid = Gtid {
                domain: fields.next()?.parse().ok()?,
                server: fields.next()?.parse().ok()?,
                seq: fields.next()?.parse().ok()?,
            };
            state.domains.insert(gtid.domain, gtid);
        }
        Some(state)
    }

    /// Parses a GTID list where a domain may appear once per server (a GTID_LIST event, as
    /// `SHOW BINLOG EVENTS` prints it: `[0-1-100,0-2-90]`), keeping each domain's highest.
    pub fn parse_list(s: &str) -> Option<GtidState> {
        let mut state = GtidState::default();
        let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let one = GtidState::parse(part)?;
            state.merge(&one.domains.into_values().collect::<Vec<_>>());
        }
        Some(state)
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Whether a dump from this state can be served by binlogs whose oldest file starts at
    /// `oldest` (its GTID_LIST): every domain logged before that file must be one this state
    /// has already reached. Returns the first domain that cannot be served.
    pub fn missing_from(&self, oldest: &GtidState) -> Option<String> {
        oldest.domains.values().find_map(|first| {
            match self.domains.get(&first.domain) {
                Some(ours) if ours.seq >= first.seq => None,
                Some(ours) => Some(format!(
                    "domain {} needs the events after {ours}, but the oldest binlog starts after {first}",
                    first.domain
                )),
                None => Some(format!(
                    "domain {} is not in the position, and the oldest binlog starts after {first}",
                    first.domain
                )),
            }
        })
    }

    /// A new event group: its GTID is now its domain's last.
    pub fn record(&mut self, gtid: Gtid) {
        self.domains.insert(gtid.domain, gtid);
    }

    /// A GTID_LIST: the state at the start of a file, which never moves a domain backwards.
    pub fn merge(&mut self, list: &[Gtid]) {
        for gtid in list {
            let entry = self.domains.entry(gtid.domain).or_insert(*gtid);
            if gtid.seq > entry.seq {
                *entry = *gtid;
            }
        }
    }
}

impl std::fmt::Display for GtidState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, gtid) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_served_only_by_binlogs_starting_at_or_before_it() {
        let oldest = GtidState::parse_list("[0-1-100,0-2-90,1-3-7]").unwrap();
        assert_eq!(oldest.to_string(), "0-1-100,1-3-7");
        let state = |s| GtidState::parse(s).unwrap();
        assert_eq!(state("0-1-100,1-3-9").missing_from(&oldest), None);
        assert_eq!(state("0-2-150,1-3-7,2-1-1").missing_from(&oldest), None);
        let behind = state("0-1-99,1-3-9").missing_from(&oldest).unwrap();
        assert!(
            behind.contains("domain 0 needs the events after 0-1-99"),
            "{behind}"
        );
        let absent = state("0-1-100").missing_from(&oldest).unwrap();
        assert!(
            absent.contains("domain 1 is not in the position"),
            "{absent}"
        );
        assert_eq!(
            state("0-1-1").missing_from(&GtidState::parse_list("[]").unwrap()),
            None
        );
        assert!(GtidState::parse_list("[0-1-x]").is_none());
    }

    #[test]
    fn gtid_state_follows_groups_and_lists() {
        let mut state = GtidState::parse("0-1-10").unwrap();
        state.record(Gtid {
            domain: 0,
            server: 1,
            seq: 11,
        });
        state.merge(&[
            Gtid {
                domain: 0,
                server: 1,
                seq: 5,
            },
            Gtid {
                domain: 2,
                server: 3,
                seq: 7,
            },
        ]);
        assert_eq!(state.to_string(), "0-1-11,2-3-7");
        assert_eq!(GtidState::parse(""), Some(GtidState::default()));
        assert_eq!(
            GtidState::parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"),
            None
        );
    }
}
