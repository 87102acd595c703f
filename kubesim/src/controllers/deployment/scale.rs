//! Scaling a Deployment (proportionally across its ReplicaSets while a
//! rollout is under way), cleaning up old ReplicaSets and computing the
//! status, after upstream `pkg/controller/deployment/sync.go`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::status::{Condition, Status, set_condition};
use super::util::{
    self, by_revision, by_size_newer, by_size_older, proportion, replicas_annotations_need_update,
    rs_available, rs_ready, rs_replicas, rs_status_replicas, rs_terminating,
    set_replicas_annotations,
};
use super::{AVAILABLE, DeploymentSync, active, all_of, rs_type, sum};
use crate::api::{self, DeleteOptions};
use crate::controllers::meta::{annotation, by_creation, is_deleting, name, uid};
use crate::error::ApiResult;

impl DeploymentSync<'_> {
    /// Upstream `isScalingEvent`: an active RS was sized for another replica count.
    pub(super) fn is_scaling_event(&mut self) -> ApiResult<bool> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        Ok(active(&all_of(&new, &old)).iter().any(|rs| {
            annotation(rs, util::DESIRED_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|desired| desired != self.spec.replicas)
        }))
    }

    /// Upstream `sync`: scale (paused or resized Deployments), clean up, status.
    pub(super) fn sync(&mut self) -> ApiResult<()> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        self.scale(new.clone(), old.clone())?;
        let new = new.map(|rs| self.fresh(&rs));
        let old: Vec<Arc<Value>> = old.iter().map(|rs| self.fresh(rs)).collect();
        if self.spec.paused {
            self.cleanup_deployment(&old)?;
        }
        self.sync_deployment_status(&all_of(&new, &old), &new);
        Ok(())
    }

    /// Upstream `scale`: one active RS takes the whole size; otherwise spread
    /// the difference proportionally (largest first) during a rolling update.
    pub(super) fn scale(
        &mut self,
        new: Option<Arc<Value>>,
        mut old: Vec<Arc<Value>>,
    ) -> ApiResult<()> {
        if let Some(target) = find_active_or_latest(&new, &mut old) {
            if rs_replicas(&target) != self.spec.replicas {
                self.scale_rs_and_record(&target, self.spec.replicas)?;
            }
            return Ok(());
        }
        if self.is_saturated(&new) {
            for rs in active(&old) {
                self.scale_rs_and_record(&rs, 0)?;
            }
            return Ok(());
        }
        if self.spec.recreate {
            return Ok(());
        }
        let mut all = active(&all_of(&new, &old));
        let current = sum(&all, rs_replicas);
        let allowed = if self.spec.replicas > 0 {
            self.spec.replicas + self.spec.max_surge()
        } else {
            0
        };
        let to_add = allowed - current;
        match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => all.sort_by(|a, b| by_size_newer(a, b)),
            std::cmp::Ordering::Less => all.sort_by(|a, b| by_size_older(a, b)),
            std::cmp::Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for rs in &all {
            let p = proportion(rs, &self.spec, self.status.replicas, to_add, added);
            sizes.push(rs_replicas(rs) + p);
            added += p;
        }
        if let Some(first) = sizes.first_mut()
            && to_add != 0
        {
            *first = (*first + to_add - added).max(0);
        }
        for (rs, size) in all.iter().zip(sizes) {
            self.scale_rs(rs, size)?;
        }
        Ok(())
    }

    /// Upstream `IsSaturated`.
    pub(super) fn is_saturated(&self, rs: &Option<Arc<Value>>) -> bool {
        let Some(rs) = rs else { return false };
        let desired = annotation(rs, util::DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok());
        rs_replicas(rs) == self.spec.replicas
            && desired == Some(self.spec.replicas)
            && rs_available(rs) == self.spec.replicas
    }

    /// Upstream `scaleReplicaSetAndRecordEvent`.
    pub(super) fn scale_rs_and_record(
        &mut self,
        rs: &Arc<Value>,
        new_scale: i32,
    ) -> ApiResult<(bool, Arc<Value>)> {
        if rs_replicas(rs) == new_scale {
            return Ok((false, rs.clone()));
        }
        self.scale_rs(rs, new_scale)
    }

    /// Upstream `scaleReplicaSet`: size and replica annotations, and the
    /// `ScalingReplicaSet` event when the size changed.
    pub(super) fn scale_rs(
        &mut self,
        rs: &Arc<Value>,
        new_scale: i32,
    ) -> ApiResult<(bool, Arc<Value>)> {
        let rs = self.fresh(rs);
        let old_scale = rs_replicas(&rs);
        let max = self.spec.replicas + self.spec.max_surge();
        let size_changes = old_scale != new_scale;
        if !size_changes && !replicas_annotations_need_update(&rs, self.spec.replicas, max) {
            return Ok((false, rs));
        }
        let mut copy = (*rs).clone();
        copy["spec"]["replicas"] = json!(new_scale);
        set_replicas_annotations(&mut copy, self.spec.replicas, max);
        let updated = self.update_rs(copy)?;
        if size_changes {
            let direction = if old_scale < new_scale { "up" } else { "down" };
            let msg = format!(
                "Scaled {direction} replica set {} from {old_scale} to {new_scale}",
                name(&updated)
            );
            self.event("Normal", "ScalingReplicaSet", &msg);
        }
        Ok((size_changes, updated))
    }

    /// Upstream `cleanupDeployment`: delete the oldest fully scaled-down
    /// ReplicaSets beyond `revisionHistoryLimit`.
    pub(super) fn cleanup_deployment(&mut self, old: &[Arc<Value>]) -> ApiResult<()> {
        let Some(limit) = self.spec.revision_history_limit else {
            return Ok(());
        };
        let mut cleanable: Vec<Arc<Value>> =
            old.iter().filter(|rs| !is_deleting(rs)).cloned().collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        for rs in cleanable.iter().take(excess as usize) {
            let generation = rs["metadata"]["generation"].as_i64().unwrap_or(0);
            let observed = rs["status"]["observedGeneration"].as_i64().unwrap_or(0);
            if rs_status_replicas(rs) != 0 || rs_replicas(rs) != 0 || generation > observed {
                continue;
            }
            match api::delete_object(
                self.sim,
                rs_type(),
                &self.namespace(),
                name(rs),
                &DeleteOptions::default(),
            ) {
                Ok(_) => self.rs_list.retain(|r| uid(r) != uid(rs)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Upstream `calculateStatus` (counters, then the Available condition).
    pub(super) fn calculate_status(&self, all: &[Arc<Value>], new: &Option<Arc<Value>>) -> Status {
        let available = sum(all, rs_available);
        let total = sum(all, rs_replicas);
        let mut st = Status {
            observed_generation: self.generation,
            replicas: sum(all, rs_status_replicas),
            updated_replicas: new.as_ref().map(|rs| rs_status_replicas(rs)).unwrap_or(0),
            ready_replicas: sum(all, rs_ready),
            available_replicas: available,
            unavailable_replicas: (total - available).max(0),
            terminating_replicas: Some(sum(all, rs_terminating)),
            collision_count: self.status.collision_count,
            conditions: self.status.conditions.clone(),
        };
        let c = if available >= self.spec.replicas - self.spec.max_unavailable() {
            Condition::new(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                &self.now,
            )
        } else {
            Condition::new(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                &self.now,
            )
        };
        set_condition(&mut st.conditions, c);
        st
    }

    /// Upstream `syncDeploymentStatus`.
    pub(super) fn sync_deployment_status(&mut self, all: &[Arc<Value>], new: &Option<Arc<Value>>) {
        self.status = self.calculate_status(all, new);
    }
}

/// Upstream `FindActiveOrLatest`: the only active RS; the newest when none
/// is active; None when several are.
fn find_active_or_latest(new: &Option<Arc<Value>>, old: &mut [Arc<Value>]) -> Option<Arc<Value>> {
    if new.is_none() && old.is_empty() {
        return None;
    }
    old.sort_by(|a, b| by_creation(b, a));
    let all = active(&all_of(new, old));
    match all.len() {
        0 => new.clone().or_else(|| old.first().cloned()),
        1 => all.first().cloned(),
        _ => None,
    }
}
