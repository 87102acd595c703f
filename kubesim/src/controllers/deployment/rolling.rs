//! The two rollout strategies, after upstream
//! `pkg/controller/deployment/rolling.go` and `recreate.go`.

use std::sync::Arc;

use serde_json::Value;

use super::super::meta::{by_creation, uid};
use super::status::deployment_complete;
use super::util::{rs_available, rs_replicas, rs_status_replicas};
use super::{DeploymentSync, PodIndex, active, all_of, sum};
use crate::error::ApiResult;

impl DeploymentSync<'_> {
    /// Upstream `rolloutRolling`: scale the new RS up within maxSurge, else
    /// the old ones down within maxUnavailable; clean up when complete.
    pub(super) fn rollout_rolling(&mut self) -> ApiResult<()> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
        let Some(new_rs) = new.clone() else {
            return Ok(());
        };
        let all = all_of(&new, &old);
        if self.reconcile_new_replica_set(&all, &new_rs)? {
            self.sync_rollout_status(&all, &new);
            return Ok(());
        }
        if self.reconcile_old_replica_sets(&all, active(&old), &new_rs)? {
            self.sync_rollout_status(&all, &new);
            return Ok(());
        }
        self.finish_rollout(&all, &new, &old)
    }

    /// Both strategies' last step once nothing was scaled: upstream cleans
    /// up old revisions when the Deployment is complete, then syncs status.
    fn finish_rollout(
        &mut self,
        all: &[Arc<Value>],
        new: &Option<Arc<Value>>,
        old: &[Arc<Value>],
    ) -> ApiResult<()> {
        if deployment_complete(&self.spec, self.generation, &self.status) {
            self.cleanup_deployment(old)?;
        }
        self.sync_rollout_status(all, new);
        Ok(())
    }

    /// Upstream `reconcileNewReplicaSet`.
    fn reconcile_new_replica_set(
        &mut self,
        all: &[Arc<Value>],
        new_rs: &Arc<Value>,
    ) -> ApiResult<bool> {
        let current = rs_replicas(new_rs);
        if current == self.spec.replicas {
            return Ok(false);
        }
        if current > self.spec.replicas {
            return Ok(self.scale_rs_and_record(new_rs, self.spec.replicas)?.0);
        }
        let all: Vec<&Value> = all.iter().map(|rs| rs.as_ref()).collect();
        let target = self.new_rs_new_replicas(&all, new_rs);
        Ok(self.scale_rs_and_record(new_rs, target)?.0)
    }

    /// Upstream `reconcileOldReplicaSets`: how far old RSes may shrink
    /// without going under `replicas - maxUnavailable` available pods,
    /// unhealthy replicas first.
    fn reconcile_old_replica_sets(
        &mut self,
        all: &[Arc<Value>],
        old: Vec<Arc<Value>>,
        new_rs: &Arc<Value>,
    ) -> ApiResult<bool> {
        if sum(&old, rs_replicas) == 0 {
            return Ok(false);
        }
        let min_available = self.spec.replicas - self.spec.max_unavailable();
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = sum(all, rs_replicas) - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let (old, cleaned) = self.cleanup_unhealthy_replicas(old, max_scaled_down)?;
        let all = all_of(&Some(self.fresh(new_rs)), &old);
        let scaled = self.scale_down_old_replica_sets_for_rolling_update(&all, old)?;
        Ok(cleaned + scaled > 0)
    }

    /// Upstream `cleanupUnhealthyReplicas`: shrink old RSes by their
    /// unavailable replicas (the RS controller deletes those pods first).
    fn cleanup_unhealthy_replicas(
        &mut self,
        mut old: Vec<Arc<Value>>,
        max_cleanup: i32,
    ) -> ApiResult<(Vec<Arc<Value>>, i32)> {
        old.sort_by(|a, b| by_creation(a, b));
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let replicas = rs_replicas(rs);
            let unhealthy = replicas - rs_available(rs);
            if replicas == 0 || unhealthy <= 0 {
                continue;
            }
            let count = (max_cleanup - total).min(unhealthy);
            let (_, updated) = self.scale_rs_and_record(rs, replicas - count)?;
            *rs = updated;
            total += count;
        }
        Ok((old, total))
    }

    /// Upstream `scaleDownOldReplicaSetsForRollingUpdate`: oldest first, by
    /// the available pods above `replicas - maxUnavailable`.
    fn scale_down_old_replica_sets_for_rolling_update(
        &mut self,
        all: &[Arc<Value>],
        mut old: Vec<Arc<Value>>,
    ) -> ApiResult<i32> {
        let min_available = self.spec.replicas - self.spec.max_unavailable();
        let available = sum(all, rs_available);
        if available <= min_available {
            return Ok(0);
        }
        old.sort_by(|a, b| by_creation(a, b));
        let wanted = available - min_available;
        let mut total = 0;
        for rs in &old {
            if total >= wanted {
                break;
            }
            let replicas = rs_replicas(rs);
            if replicas == 0 {
                continue;
            }
            let count = replicas.min(wanted - total);
            self.scale_rs_and_record(rs, replicas - count)?;
            total += count;
        }
        Ok(total)
    }

    /// Upstream `rolloutRecreate`: old RSes to 0, wait until their pods are
    /// gone, then create/scale the new RS.
    pub(super) fn rollout_recreate(&mut self, pods: &PodIndex) -> ApiResult<()> {
        let (mut new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        let mut all = all_of(&new, &old);
        if self.scale_down_old_replica_sets_for_recreate(active(&old))? {
            self.sync_rollout_status(&all, &new);
            return Ok(());
        }
        if old_pods_running(&new, &old, pods) {
            self.sync_rollout_status(&all, &new);
            return Ok(());
        }
        let mut old = old;
        if new.is_none() {
            (new, old) = self.get_all_replica_sets_and_sync_revision(true)?;
            all = all_of(&new, &old);
        }
        if let Some(rs) = &new {
            self.scale_rs_and_record(rs, self.spec.replicas)?;
        }
        self.finish_rollout(&all, &new, &old)
    }

    fn scale_down_old_replica_sets_for_recreate(
        &mut self,
        old: Vec<Arc<Value>>,
    ) -> ApiResult<bool> {
        let mut scaled = false;
        for rs in old.iter().filter(|rs| rs_replicas(rs) != 0) {
            scaled |= self.scale_rs_and_record(rs, 0)?.0;
        }
        Ok(scaled)
    }
}

/// Upstream `oldPodsRunning`: old RSes still report replicas, or pods of
/// old RSes (terminating ones included) have not reached a terminal phase.
fn old_pods_running(new: &Option<Arc<Value>>, old: &[Arc<Value>], pods: &PodIndex) -> bool {
    if sum(old, rs_status_replicas) > 0 {
        return true;
    }
    old.iter()
        .filter(|rs| new.as_ref().is_none_or(|n| uid(n) != uid(rs)))
        .filter_map(|rs| pods.get(uid(rs)))
        .flatten()
        .any(|pod| {
            !matches!(
                pod["status"]["phase"].as_str(),
                Some("Failed" | "Succeeded")
            )
        })
}
