//! Persists lifecycle transitions and mirrors them into the pipe's shared status.

use tracing::info;

use super::control::PipeHandle;
use super::lifecycle::PipeState;
use crate::error::{Error, Result};
use crate::state::StateStore;

pub(crate) struct Recorder {
    pub store: StateStore,
    pub handle: PipeHandle,
    pub pipe: String,
    pub state: Option<PipeState>,
}

impl Recorder {
    /// Moves the pipe to `to`: refused if the lifecycle does not allow it, stored with the
    /// reason before anyone can observe it.
    pub async fn enter(&mut self, to: PipeState, reason: &str) -> Result<()> {
        if let Some(from) = self.state {
            if !from.can_move_to(to) {
                return Err(Error::State(format!(
                    "internal error: transition {} → {} is not allowed",
                    from.as_str(),
                    to.as_str()
                )));
            }
        }
        self.store.record_transition(self.state, to, reason).await?;
        self.show(to, reason);
        Ok(())
    }

    /// Moves the pipe to Failed. Unlike the other states it is shown (status, metrics) even
    /// when the state store cannot record it: an unreachable or untrusted target is often the
    /// very reason, and a pipe that failed must never look like one still starting.
    pub async fn fail(&mut self, reason: &str) -> Result<()> {
        let stored = self
            .store
            .record_transition(self.state, PipeState::Failed, reason)
            .await;
        self.show(PipeState::Failed, reason);
        stored
    }

    fn show(&mut self, to: PipeState, reason: &str) {
        crate::metrics::state(&self.pipe, to.as_str());
        self.handle.update(|s| {
            s.state = to.as_str().to_owned();
            s.since = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
            if to == PipeState::Failed {
                s.last_error = Some(reason.to_owned());
            }
        });
        info!(pipe = %self.pipe, from = self.state.map(PipeState::as_str).unwrap_or("-"), to = to.as_str(), reason, "state");
        self.state = Some(to);
    }
}
