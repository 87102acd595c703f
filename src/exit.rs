//! Exit codes: what a pipeline can act on.

/// The process exit code of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ExitCode {
    /// Rolled out (and baked) successfully; also a dry run that passed.
    Success = 0,
    /// The rollout failed and was rolled back to a healthy state, or failed with rollback=false.
    RolledBack = 1,
    /// Bad input, or the workload is not fit to roll: nothing changed.
    BadInput = 2,
    /// The rollout failed and the rollback failed, was refused (concurrent change) or not confirmed.
    RollbackFailed = 3,
    /// The rollout timed out (and was rolled back).
    TimedOut = 70,
    /// Kubeconfig, connection, authentication or permission problem.
    ClusterConfig = 78,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}
