//! A workload's rollout progress in kubectl's counts: what tracking
//! records and every report shows.

/// The counts kubectl shows, and the new ReplicaSet's readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub name: String,
    pub desired: i32,
    pub current: i32,
    pub up_to_date: i32,
    pub available: i32,
    pub new_ready: i32,
    /// What we are still waiting for, in words (empty when done).
    pub waiting_for: String,
}

impl Progress {
    /// In kubectl's terms: `api: 2 of 3 new replicas updated, 3 available
    /// (2 old still running)`. Counts only: what is still awaited is said
    /// by `waiting_for`, so the two never contradict.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}: {} of {} new replicas updated, {} available",
            self.name, self.up_to_date, self.desired, self.available
        );
        let old = self.current - self.up_to_date;
        if old > 0 {
            s.push_str(&format!(" ({old} old still running)"));
        }
        s
    }
}
