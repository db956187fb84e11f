//! The pipe lifecycle (pure): states and the transitions real progress may cause.
//!
//! A state changes only when the work that defines it is done (connections open, tables
//! created, every table snapshotted, a batch checkpointed), never on a timer; a transition not
//! in [`PipeState::can_move_to`] is a bug and is refused.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PipeState {
    Provisioning,
    Setup,
    Snapshot,
    Running,
    Pausing,
    Paused,
    Modifying,
    Resync,
    Completed,
    Failed,
}

impl PipeState {
    pub const ALL: [PipeState; 10] = [
        PipeState::Provisioning,
        PipeState::Setup,
        PipeState::Snapshot,
        PipeState::Running,
        PipeState::Pausing,
        PipeState::Paused,
        PipeState::Modifying,
        PipeState::Resync,
        PipeState::Completed,
        PipeState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PipeState::Provisioning => "Provisioning",
            PipeState::Setup => "Setup",
            PipeState::Snapshot => "Snapshot",
            PipeState::Running => "Running",
            PipeState::Pausing => "Pausing",
            PipeState::Paused => "Paused",
            PipeState::Modifying => "Modifying",
            PipeState::Resync => "Resync",
            PipeState::Completed => "Completed",
            PipeState::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<PipeState> {
        PipeState::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether `self → next` is a transition of the lifecycle (DESIGN §2).
    pub fn can_move_to(self, next: PipeState) -> bool {
        use PipeState::*;
        // Any state may fail, and a restarted daemon provisions again from wherever it stopped.
        if next == Failed || next == Provisioning {
            return true;
        }
        matches!(
            (self, next),
            (Provisioning, Setup)
                // The initial load, or a resync's (requested while Failed, or resumed after a
                // restart).
                | (Setup, Snapshot)
                // A resync interrupted by a restart while it swapped the copies in.
                | (Setup, Resync)
                | (Setup, Running)
                | (Setup, Completed)
                | (Snapshot, Running)
                | (Snapshot, Completed)
                // A resync's copies are loaded: they are swapped in.
                | (Snapshot, Resync)
                | (Running, Pausing)
                // Tables removed.
                | (Running, Modifying)
                // Tables added, or a resync.
                | (Running, Snapshot)
                | (Pausing, Paused)
                | (Paused, Running)
                | (Paused, Snapshot)
                | (Modifying, Running)
                | (Resync, Running)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::PipeState::*;
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in PipeState::ALL {
            assert_eq!(PipeState::parse(s.as_str()), Some(s));
        }
        assert_eq!(PipeState::parse("running"), None);
    }

    #[test]
    fn only_real_progress_moves_the_pipe() {
        assert!(Provisioning.can_move_to(Setup));
        assert!(Snapshot.can_move_to(Running));
        assert!(Running.can_move_to(Failed));
        assert!(Completed.can_move_to(Provisioning));
        assert!(!Provisioning.can_move_to(Running));
        assert!(!Snapshot.can_move_to(Paused));
        assert!(!Completed.can_move_to(Running));
        assert!(!Failed.can_move_to(Running));
        // A resync loads in Snapshot and swaps in Resync, from Running or Paused; from Failed
        // it provisions first.
        assert!(Running.can_move_to(Snapshot));
        assert!(Paused.can_move_to(Snapshot));
        assert!(Snapshot.can_move_to(Resync));
        assert!(Resync.can_move_to(Running));
        assert!(!Running.can_move_to(Resync));
        assert!(!Failed.can_move_to(Snapshot));
    }
}
