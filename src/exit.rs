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

    /// The code of a workload's report (its `exit_code`): anything that is
    /// not a verdict of a rollout counts as failed and rolled back.
    pub fn of_verdict(code: i32) -> ExitCode {
        match code {
            0 => ExitCode::Success,
            70 => ExitCode::TimedOut,
            3 => ExitCode::RollbackFailed,
            _ => ExitCode::RolledBack,
        }
    }

    /// The worse of two codes, for a group: 3 > 78 > 2 > 70 > 1 > 0 (2 and
    /// 78 stop before anything changes and rarely meet the others).
    pub fn worse(self, other: ExitCode) -> ExitCode {
        let rank = |c: ExitCode| match c {
            ExitCode::Success => 0,
            ExitCode::RolledBack => 1,
            ExitCode::TimedOut => 2,
            ExitCode::BadInput => 3,
            ExitCode::ClusterConfig => 4,
            ExitCode::RollbackFailed => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode::*;
    use super::*;

    #[test]
    fn the_worst_code_of_a_group_wins() {
        assert_eq!(Success.worse(RolledBack), RolledBack);
        assert_eq!(RolledBack.worse(TimedOut), TimedOut);
        assert_eq!(TimedOut.worse(RolledBack), TimedOut);
        assert_eq!(TimedOut.worse(RollbackFailed), RollbackFailed);
        assert_eq!(RollbackFailed.worse(Success), RollbackFailed);
        let all = [Success, RolledBack, TimedOut, Success];
        assert_eq!(all.into_iter().fold(Success, ExitCode::worse), TimedOut);
    }

    #[test]
    fn report_codes_map_back() {
        assert_eq!(ExitCode::of_verdict(0), Success);
        assert_eq!(ExitCode::of_verdict(70), TimedOut);
        assert_eq!(ExitCode::of_verdict(3), RollbackFailed);
        assert_eq!(ExitCode::of_verdict(1), RolledBack);
        assert_eq!(ExitCode::of_verdict(2), RolledBack);
    }
}
