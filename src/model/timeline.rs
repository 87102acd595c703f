//! The samples of a rollout's timeline: old vs new ready pods as the
//! tracker saw them, and the moments it marks.

use serde::Serialize;

/// What the run was doing when a sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Following the rolling update.
    #[default]
    Rollout,
    /// The rollout completed; watching the new pods for the bake period.
    Bake,
    /// Restoring the previous version.
    Rollback,
}

/// A moment the tracker marks with a sample of its own, even when no count
/// changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mark {
    /// Every new pod is ready: the rollout itself completed.
    Complete,
    /// The run's verdict (success after the bake, or the failure).
    Verdict,
    /// The rollback was confirmed (or given up).
    RollbackEnd,
}

/// One point of the rollout's timeline: ready pods of the old version and
/// of the new one, `millis` after the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Whole seconds after the patch.
    pub seconds: u64,
    pub millis: u64,
    pub old_ready: i32,
    pub new_ready: i32,
    /// The workload's available replicas (kubectl's AVAILABLE).
    pub available: i32,
    pub phase: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

impl Sample {
    pub fn new(millis: u64, old_ready: i32, new_ready: i32, available: i32) -> Sample {
        Sample {
            seconds: millis / 1000,
            millis,
            old_ready,
            new_ready,
            available,
            phase: Phase::Rollout,
            mark: None,
        }
    }
}
