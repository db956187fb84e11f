//! Persists lifecycle transitions and mirrors them into the pipe's shared status.

use tracing::info;

use super::control::PipeHandle;
use crate::error::{Error, Result};
use crate::lifecycle::PipeState;
use crate::state::{ClickHouseStore, StateStore};

pub(crate) struct Recorder {
    pub store: ClickHouseStore,
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
                return Err(Error::IllegalTransition {
                    from: from.as_str(),
                    to: to.as_str(),
                });
            }
        }
        self.store.record_transition(self.state, to, reason).await?;
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
        Ok(())
    }
}
