//! The Progressing condition and the progress deadline, after upstream
//! `pkg/controller/deployment/progress.go`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::super::meta::name;
use super::status::{
    Condition, Status, deployment_complete, deployment_progressing, get_condition,
    parse_conditions, remove_condition, set_condition,
};
use super::{DeploymentSync, PROGRESSING, REPLICA_FAILURE};
use crate::clock::parse_time;

const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";

impl DeploymentSync<'_> {
    /// Upstream `syncRolloutStatus`: counters, Available, then Progressing
    /// (complete / progressing / timed out) and ReplicaFailure.
    pub(super) fn sync_rollout_status(&mut self, all: &[Arc<Value>], new: &Option<Arc<Value>>) {
        let mut st = self.calculate_status(all, new);
        if !self.spec.has_progress_deadline() {
            remove_condition(&mut st.conditions, PROGRESSING);
        }
        let current = get_condition(&self.status.conditions, PROGRESSING).cloned();
        let complete_before = st.replicas == st.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        if self.spec.has_progress_deadline() && !complete_before {
            self.estimate_progress(&mut st, new, current);
        }
        match replica_failure(all, new) {
            Some(c) => set_condition(&mut st.conditions, c),
            None => remove_condition(&mut st.conditions, REPLICA_FAILURE),
        }
        self.status = st;
        self.requeue_stuck_deployment();
    }

    fn estimate_progress(
        &self,
        st: &mut Status,
        new: &Option<Arc<Value>>,
        current: Option<Condition>,
    ) {
        let subject = match new {
            Some(rs) => format!("ReplicaSet {:?}", name(rs)),
            None => format!("Deployment {:?}", name(&self.d)),
        };
        if deployment_complete(&self.spec, self.generation, st) {
            let msg = format!("{subject} has successfully progressed.");
            let c = Condition::new(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, &self.now);
            set_condition(&mut st.conditions, c);
        } else if deployment_progressing(&self.status, st) {
            // Progress moves lastUpdateTime even when the reason stays the same.
            let msg = format!("{subject} is progressing.");
            let mut c = Condition::new(PROGRESSING, "True", "ReplicaSetUpdated", msg, &self.now);
            if let Some(cur) = current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time;
                }
                remove_condition(&mut st.conditions, PROGRESSING);
            }
            set_condition(&mut st.conditions, c);
        } else if self.timed_out(st) {
            let msg = format!("{subject} has timed out progressing.");
            let c = Condition::new(PROGRESSING, "False", TIMED_OUT, msg, &self.now);
            set_condition(&mut st.conditions, c);
        }
    }

    /// Upstream `DeploymentTimedOut`: no progress recorded for
    /// `progressDeadlineSeconds` since the condition's lastUpdateTime.
    fn timed_out(&self, st: &Status) -> bool {
        let Some(deadline) = self.deadline_of(st) else {
            return false;
        };
        match get_condition(&st.conditions, PROGRESSING).and_then(|c| c.reason.as_deref()) {
            Some(TIMED_OUT) => true,
            Some(NEW_RS_AVAILABLE) => false,
            _ => deadline < self.sim.clock.now(),
        }
    }

    /// When the Progressing condition's deadline passes.
    fn deadline_of(&self, st: &Status) -> Option<jiff::Timestamp> {
        let secs = self.spec.progress_deadline_seconds?;
        let cond = get_condition(&st.conditions, PROGRESSING)?;
        let from = parse_time(cond.last_update_time.as_deref()?)?;
        Some(from + Duration::from_secs(secs.max(0) as u64))
    }

    /// Upstream `requeueStuckDeployment`: wake up just after the deadline of
    /// a rollout that is neither complete nor already timed out.
    fn requeue_stuck_deployment(&mut self) {
        let reason =
            get_condition(&self.status.conditions, PROGRESSING).and_then(|c| c.reason.clone());
        if matches!(
            reason.as_deref(),
            None | Some(TIMED_OUT) | Some(NEW_RS_AVAILABLE)
        ) || deployment_complete(&self.spec, self.generation, &self.status)
        {
            return;
        }
        if let Some(deadline) = self.deadline_of(&self.status) {
            self.wake = Some(deadline + Duration::from_secs(1));
        }
    }
}

/// Upstream `getReplicaFailures`: the new RS's ReplicaFailure condition,
/// else any old one's, as a Deployment condition.
fn replica_failure(all: &[Arc<Value>], new: &Option<Arc<Value>>) -> Option<Condition> {
    let failure_of = |rs: &Value| {
        parse_conditions(&rs["status"]["conditions"])
            .into_iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
    };
    let c = new
        .as_deref()
        .and_then(failure_of)
        .or_else(|| all.iter().find_map(|rs| failure_of(rs)))?;
    Some(Condition {
        last_update_time: c.last_transition_time.clone(),
        ..c
    })
}
