//! One owner per pipe: a lease in the state store (table `leases`), held by one instance.
//!
//! A starting instance is a standby until it holds the pipe's lease. It claims one when there
//! is none or the newest has expired: a row with the next epoch, its instance id, and an
//! expiry one lease period ahead by ClickHouse's clock (so the instances' own clocks do not
//! matter). The owner renews its row every third of a period, and every checkpoint it writes
//! is first checked to be under the newest lease (fencing, `ClickHouseStore::fence`): an
//! instance that finds a newer one stops the pipe at once and writes nothing more. A stopping
//! owner releases its lease (expires it) after its final checkpoint, so that its standby takes
//! over at its next look instead of a period later.
//!
//! A lease whose holder is known to be gone is not waited out: an instance id names its host
//! and process (`host-pid-random`), so an instance on the same host sees that the process is
//! no more (a restart after a crash, a restarted container) and claims at once. Across hosts,
//! nothing is known but the expiry.
//!
//! ClickHouse has no compare-and-set outside Keeper, so a claim is an insert and a read-back.
//! The newest lease is the one with the highest `(epoch, instance)`: two instances that claim
//! the same epoch agree on the winner once both rows are in. The race window: an instance that
//! reads back before the other's insert has landed believes it won until it looks again, so a
//! claim is read back once more after a settling pause (see `pipe::owner`) before the pipe
//! starts, and every checkpoint write looks again. What remains is the moment between that
//! check and the write it guards: a deposed owner may write one last checkpoint, of rows it
//! wrote itself, in the same versions the new owner's replay writes.

use serde::Deserialize;

/// A pipe's newest lease.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Lease {
    pub epoch: u64,
    pub instance: String,
    /// 1 once its expiry has passed (ClickHouse's clock).
    pub expired: u8,
    /// When it expires (ClickHouse's clock), for messages.
    pub until: String,
}

/// A lease an instance holds (or claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub epoch: u64,
    pub instance: String,
}

/// The lease `me` claims given the pipe's `newest`: the first epoch, the next one after an
/// expired lease or one whose holder is known to be dead (`holder_dead`), its own again;
/// `None` while another live instance holds an unexpired one.
pub(crate) fn claim(newest: Option<&Lease>, me: &str, holder_dead: bool) -> Option<Held> {
    let epoch = match newest {
        None => 1,
        Some(l) if l.instance == me => l.epoch,
        Some(l) if l.expired != 0 || holder_dead => l.epoch + 1,
        Some(_) => return None,
    };
    Some(Held {
        epoch,
        instance: me.to_owned(),
    })
}

/// Whether `held` is still the newest lease.
pub(crate) fn holds(newest: Option<&Lease>, held: &Held) -> bool {
    newest.is_some_and(|l| l.epoch == held.epoch && l.instance == held.instance)
}

/// Whether the instance `holder` (`host-pid-random`) is a process of `host` that is gone:
/// `alive(pid)` says no, or it is `pid`, this very process (a restarted container keeps its
/// pid) under another instance id. Another host's instances are not known here.
pub(crate) fn dead_on_this_host(
    holder: &str,
    host: &str,
    pid: u32,
    alive: impl Fn(u32) -> bool,
) -> bool {
    let mut parts = holder.rsplitn(3, '-');
    let (_, Some(their_pid), Some(their_host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(their_pid) = their_pid.parse::<u32>() else {
        return false;
    };
    their_host == host && (their_pid == pid || !alive(their_pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(epoch: u64, instance: &str, expired: bool) -> Lease {
        Lease {
            epoch,
            instance: instance.into(),
            expired: u8::from(expired),
            until: String::new(),
        }
    }

    #[test]
    fn a_lease_is_claimed_when_free_or_expired_and_never_while_held() {
        assert_eq!(claim(None, "a", false).map(|h| h.epoch), Some(1));
        let expired = lease(4, "b", true);
        assert_eq!(claim(Some(&expired), "a", false).map(|h| h.epoch), Some(5));
        assert_eq!(claim(Some(&lease(4, "b", false)), "a", false), None);
        // A holder known to be dead does not hold it until it expires.
        let held = lease(4, "b", false);
        assert_eq!(claim(Some(&held), "a", true).map(|h| h.epoch), Some(5));
        // Its own lease, expired or not, is renewed under the same epoch.
        assert_eq!(
            claim(Some(&lease(4, "a", true)), "a", false).map(|h| h.epoch),
            Some(4)
        );
    }

    #[test]
    fn a_holder_is_dead_only_when_this_host_says_so() {
        let alive = |pid: u32| pid == 7;
        assert!(
            dead_on_this_host("web-1-3-8a2f", "web-1", 9, alive),
            "pid 3 is gone"
        );
        assert!(
            !dead_on_this_host("web-1-7-8a2f", "web-1", 9, alive),
            "pid 7 runs"
        );
        // A restarted container: the same pid, another instance.
        assert!(dead_on_this_host("web-1-9-8a2f", "web-1", 9, alive));
        // Another host's instance is not known here.
        assert!(!dead_on_this_host("web-2-3-8a2f", "web-1", 9, alive));
        assert!(!dead_on_this_host("garbage", "web-1", 9, alive));
    }

    #[test]
    fn only_the_newest_lease_is_held() {
        let held = Held {
            epoch: 5,
            instance: "a".into(),
        };
        assert!(holds(Some(&lease(5, "a", false)), &held));
        // Another instance claimed the same epoch and sorts after it: it wins.
        assert!(!holds(Some(&lease(5, "b", false)), &held));
        assert!(!holds(Some(&lease(6, "b", false)), &held));
        assert!(!holds(None, &held));
    }
}
