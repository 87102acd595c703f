//! Finding or creating the new ReplicaSet of a Deployment and syncing the
//! revision, after upstream `getNewReplicaSet`/`getAllReplicaSetsAndSyncRevision`
//! in `pkg/controller/deployment/sync.go`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::status::get_condition;
use super::util::{
    HASH_LABEL, REVISION, equal_ignore_hash, find_new_replica_set, revision, rs_replicas,
    set_new_rs_annotations,
};
use super::{DeploymentSync, NewAndOld, PROGRESSING, rs_type, set_min_ready_seconds};
use crate::controllers::meta::{
    annotation, compute_hash, controller_ref, controller_uid, name, scaled_value, uid, with_label,
};
use crate::error::{ApiError, ApiResult};

impl DeploymentSync<'_> {
    /// Upstream `getAllReplicaSetsAndSyncRevision`: (new RS, all old RSes).
    pub(super) fn get_all_replica_sets_and_sync_revision(
        &mut self,
        create: bool,
    ) -> ApiResult<NewAndOld> {
        let existing = find_new_replica_set(&self.d, &self.rs_list).cloned();
        let old: Vec<Arc<Value>> = self
            .rs_list
            .iter()
            .filter(|rs| existing.as_ref().is_none_or(|n| uid(n) != uid(rs)))
            .cloned()
            .collect();
        let new = self.get_new_replica_set(existing, &old, create)?;
        Ok((new, old))
    }

    /// Upstream `getNewReplicaSet`: bring the existing new RS's annotations
    /// up to date, or create it (when asked) as `<name>-<pod-template-hash>`.
    pub(super) fn get_new_replica_set(
        &mut self,
        existing: Option<Arc<Value>>,
        old: &[Arc<Value>],
        create: bool,
    ) -> ApiResult<Option<Arc<Value>>> {
        let new_revision = old.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1;
        if let Some(rs) = existing {
            let mut copy = (*rs).clone();
            let annotations_changed =
                set_new_rs_annotations(&self.d, &mut copy, new_revision, true, &self.spec);
            let min_ready = copy["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
            if annotations_changed || min_ready != self.spec.min_ready_seconds {
                set_min_ready_seconds(&mut copy, self.spec.min_ready_seconds);
                return self.update_rs(copy).map(Some);
            }
            let rev = annotation(&copy, REVISION).unwrap_or("").to_string();
            let mut needs_update = self.set_revision(&rev);
            if self.spec.has_progress_deadline()
                && get_condition(&self.status.conditions, PROGRESSING).is_none()
            {
                let msg = format!("Found new replica set {:?}", name(&rs));
                self.set_condition(PROGRESSING, "True", "FoundNewReplicaSet", msg);
                needs_update = true;
            }
            if needs_update {
                self.update_status_mid_sync()?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let new_rs = self.new_replica_set_object(new_revision, old);
        let replicas = rs_replicas(&new_rs);
        let (created, already_existed) =
            match self
                .sim
                .store
                .create(rs_type(), &self.namespace(), new_rs.clone())
            {
                Ok(created) => (created, false),
                Err(e) if e.reason == "AlreadyExists" => {
                    (self.on_name_collision(&new_rs, e)?, true)
                }
                Err(e) => {
                    let msg = format!(
                        "Failed to create new replica set {:?}: {}",
                        name(&new_rs),
                        e.message
                    );
                    if self.spec.has_progress_deadline() {
                        self.set_condition(
                            PROGRESSING,
                            "False",
                            "ReplicaSetCreateError",
                            msg.clone(),
                        );
                    }
                    self.event("Warning", "ReplicaSetCreateError", &msg);
                    return Err(e);
                }
            };
        let created = self.remember(created);
        if !already_existed && replicas > 0 {
            let msg = format!(
                "Scaled up replica set {} from 0 to {replicas}",
                name(&created)
            );
            self.event("Normal", "ScalingReplicaSet", &msg);
        }
        let mut needs_update = self.set_revision(&new_revision.to_string());
        if !already_existed && self.spec.has_progress_deadline() {
            let msg = format!("Created new replica set {:?}", name(&created));
            self.set_condition(PROGRESSING, "True", "NewReplicaSetCreated", msg);
            needs_update = true;
        }
        if needs_update {
            self.update_status_mid_sync()?;
        }
        Ok(Some(created))
    }

    /// The ReplicaSet upstream's `getNewReplicaSet` would create.
    pub(super) fn new_replica_set_object(&self, new_revision: i64, old: &[Arc<Value>]) -> Value {
        let template = &self.d["spec"]["template"];
        let hash = compute_hash(template, self.status.collision_count);
        let mut new_template = template.clone();
        new_template["metadata"]["labels"] =
            with_label(&template["metadata"]["labels"], HASH_LABEL, &hash);
        let mut selector = self.d["spec"]["selector"].clone();
        selector["matchLabels"] = with_label(&selector["matchLabels"], HASH_LABEL, &hash);
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": format!("{}-{hash}", name(&self.d)),
                "namespace": self.namespace(),
                "labels": new_template["metadata"]["labels"],
                "ownerReferences": [controller_ref(&self.d)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": new_template},
        });
        set_min_ready_seconds(&mut rs, self.spec.min_ready_seconds);
        let mut all: Vec<&Value> = old.iter().map(|r| r.as_ref()).collect();
        all.push(&rs);
        let replicas = self.new_rs_new_replicas(&all, &rs);
        rs["spec"]["replicas"] = json!(replicas);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false, &self.spec);
        rs
    }

    /// A ReplicaSet of the new name exists: ours with our template (use it),
    /// or a hash collision (bump `collisionCount` and retry next pass).
    pub(super) fn on_name_collision(
        &mut self,
        new_rs: &Value,
        err: ApiError,
    ) -> ApiResult<Arc<Value>> {
        let existing = self
            .sim
            .store
            .get(rs_type(), &self.namespace(), name(new_rs))?;
        if controller_uid(&existing) == Some(uid(&self.d))
            && equal_ignore_hash(&existing["spec"]["template"], &self.d["spec"]["template"])
        {
            return Ok(existing);
        }
        self.status.collision_count = Some(self.status.collision_count.unwrap_or(0) + 1);
        Err(err)
    }

    /// Upstream `NewRSNewReplicas`.
    pub(super) fn new_rs_new_replicas(&self, all: &[&Value], new_rs: &Value) -> i32 {
        if self.spec.recreate {
            return self.spec.replicas;
        }
        let max_surge = scaled_value(&self.spec.max_surge, self.spec.replicas, true).unwrap_or(0);
        let current: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
        let max_total = self.spec.replicas + max_surge;
        if current >= max_total {
            return rs_replicas(new_rs);
        }
        let scale_up = (max_total - current).min(self.spec.replicas - rs_replicas(new_rs));
        rs_replicas(new_rs) + scale_up
    }

    /// Upstream `SetDeploymentRevision`: whether the annotation changed.
    pub(super) fn set_revision(&mut self, rev: &str) -> bool {
        if annotation(&self.d, REVISION) != Some(rev) {
            self.d["metadata"]["annotations"][REVISION] = json!(rev);
            return true;
        }
        false
    }

    /// getNewReplicaSet's own UpdateStatus: the Deployment as this sync has
    /// changed it so far (old counts and observedGeneration, the new
    /// revision and condition). Upstream drops the returned object, so the
    /// sync's final UpdateStatus carries a stale resourceVersion and fails
    /// with a conflict; the next sync writes the counts.
    pub(super) fn update_status_mid_sync(&mut self) -> ApiResult<()> {
        if self.stale {
            return Ok(());
        }
        self.write_status()?;
        self.stale = true;
        Ok(())
    }
}
