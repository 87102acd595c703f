//! What one reconcile pass asks of its loop: when to run again.

use jiff::Timestamp;

use crate::error::{ApiError, ApiResult};

/// What one reconcile pass asks of the loop.
#[derive(Debug, Default, Clone, Copy)]
pub struct Next {
    /// Wake at this simulated time even if nothing changes.
    pub wake_at: Option<Timestamp>,
}

impl Next {
    /// Keep the earliest of two wake-up times.
    pub fn at(&mut self, t: Timestamp) {
        self.wake_at = Some(match self.wake_at {
            Some(cur) if cur <= t => cur,
            _ => t,
        });
    }

    /// Fold in the outcome of one object's sync: wake at its deadline, or
    /// (after `log` reports the error) retry one simulated second from `now`.
    pub fn after_sync(
        &mut self,
        now: Timestamp,
        result: ApiResult<Option<Timestamp>>,
        log: impl FnOnce(&ApiError),
    ) {
        match result {
            Ok(Some(t)) => self.at(t),
            Ok(None) => {}
            Err(e) => {
                log(&e);
                self.at(now + std::time::Duration::from_secs(1));
            }
        }
    }
}
