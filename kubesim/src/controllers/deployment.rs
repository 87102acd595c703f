//! The Deployment controller, after upstream `pkg/controller/deployment/`:
//! `sync.go` (new ReplicaSet, revisions, scaling, history clean-up, status)
//! lives here, the strategies in `rolling.rs`, the Progressing/Available
//! conditions in `progress.rs`, the pure helpers in `util.rs`.
//!
//! Each pass syncs every Deployment against a snapshot of the store. A
//! sync works on a copy of the Deployment (revision annotation and status)
//! and on the list of ReplicaSets it controls, writes ReplicaSets as it
//! goes (as upstream does through the API), and writes the Deployment once
//! at the end, only when something changed. As upstream, `getNewReplicaSet`
//! writes the status on its own when it sets the revision or a Progressing
//! condition (`NewReplicaSetCreated`, with the old observedGeneration), and
//! the end-of-sync write of that pass then fails on the stale
//! resourceVersion: the counts and observedGeneration come with the next
//! sync.

mod progress;
mod rolling;
pub mod util;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use self::util::{
    Condition, HASH_LABEL, REVISION, Spec, Status, by_revision, by_size_newer, by_size_older,
    equal_ignore_hash, find_new_replica_set, get_condition, proportion,
    replicas_annotations_need_update, revision, rs_available, rs_ready, rs_replicas,
    rs_status_replicas, rs_terminating, set_condition, set_new_rs_annotations,
    set_replicas_annotations,
};
use super::events::{self, Source};
use super::meta::{
    annotation, by_creation, compute_hash, controller_ref, controller_uid, is_deleting, name,
    push_owner_ref, remove_owner_ref, scaled_value, selector_is_empty, selector_matches, uid,
    with_label,
};
use super::next::Next;
use crate::api::{self, DeleteOptions};
use crate::clock::fmt_time;
use crate::error::{ApiError, ApiResult};
use crate::resources::{ResourceType, res};
use crate::sim::Sim;

const COMPONENT: &str = "deployment-controller";
const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Pods grouped by the uid of their controller (built only when a Recreate
/// Deployment needs it).
type PodIndex = HashMap<String, Vec<Arc<Value>>>;

/// The new ReplicaSet (if any) and all the old ones.
type NewAndOld = (Option<Arc<Value>>, Vec<Arc<Value>>);

pub fn reconcile(sim: &Sim) -> Next {
    let mut next = Next::default();
    let (deployments, _) = sim.store.list(res("deployments.apps"), None);
    if deployments.is_empty() {
        return next;
    }
    let (replica_sets, _) = sim.store.list(res("replicasets.apps"), None);
    let mut pods: Option<PodIndex> = None;
    for d in &deployments {
        let mut sync = DeploymentSync::new(sim, d);
        let ns = sync.namespace();
        let in_ns: Vec<Arc<Value>> = replica_sets
            .iter()
            .filter(|rs| rs["metadata"]["namespace"].as_str() == Some(ns.as_str()))
            .cloned()
            .collect();
        let result = sync.run(in_ns, &mut pods).and_then(|()| sync.commit());
        if let Err(e) = result {
            tracing::debug!(deployment = name(d), error = %e, "deployment sync failed; retrying");
            next.at(sim.clock.now() + Duration::from_secs(1));
        }
        if sync.stale {
            // Upstream requeues the conflicted sync at once (rate limiter: ms).
            next.at(sim.clock.now());
        }
        if let Some(t) = sync.wake {
            next.at(t);
        }
    }
    next
}

/// One sync of one Deployment.
struct DeploymentSync<'a> {
    sim: &'a Sim,
    orig: Arc<Value>,
    /// Working copy: its revision annotation changes here.
    d: Value,
    /// Working status, written at the end.
    status: Status,
    spec: Spec,
    generation: i64,
    /// The ReplicaSets this Deployment controls, kept current as they are written.
    rs_list: Vec<Arc<Value>>,
    now: String,
    wake: Option<Timestamp>,
    /// The status was written mid-sync: the final write would conflict.
    stale: bool,
}

fn rs_type() -> &'static ResourceType {
    res("replicasets.apps")
}

/// Upstream `FilterActiveReplicaSets`: those with replicas wanted.
fn active(list: &[Arc<Value>]) -> Vec<Arc<Value>> {
    list.iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .cloned()
        .collect()
}

fn sum(list: &[Arc<Value>], f: fn(&Value) -> i32) -> i32 {
    list.iter().map(|rs| f(rs)).sum()
}

/// `[old..., new]`, as upstream's `append(oldRSs, newRS)`.
fn all_of(new: &Option<Arc<Value>>, old: &[Arc<Value>]) -> Vec<Arc<Value>> {
    let mut all = old.to_vec();
    all.extend(new.iter().cloned());
    all
}

impl<'a> DeploymentSync<'a> {
    fn new(sim: &'a Sim, d: &Arc<Value>) -> Self {
        Self {
            sim,
            orig: d.clone(),
            d: (**d).clone(),
            status: Status::of(d),
            spec: Spec::of(d),
            generation: d["metadata"]["generation"].as_i64().unwrap_or(0),
            rs_list: Vec::new(),
            now: fmt_time(sim.clock.now()),
            wake: None,
            stale: false,
        }
    }

    fn namespace(&self) -> String {
        self.d["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    }

    /// Upstream `syncDeployment`.
    fn run(&mut self, replica_sets: Vec<Arc<Value>>, pods: &mut Option<PodIndex>) -> ApiResult<()> {
        self.rs_list = self.claim_replica_sets(replica_sets)?;
        if selector_is_empty(&self.d["spec"]["selector"]) {
            // Upstream refuses to select everything; it only observes the generation.
            self.status.observed_generation = self.generation;
            return Ok(());
        }
        if is_deleting(&self.d) {
            let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
            self.sync_deployment_status(&all_of(&new, &old), &new);
            return Ok(());
        }
        self.check_paused_conditions();
        if self.spec.paused || self.is_scaling_event()? {
            return self.sync();
        }
        if self.spec.recreate {
            let pods = pods.get_or_insert_with(|| index_pods(self.sim));
            return self.rollout_recreate(pods);
        }
        self.rollout_rolling()
    }

    /// Write the revision annotation and the status, if they changed.
    fn commit(&self) -> ApiResult<()> {
        if self.stale {
            return Ok(());
        }
        self.write_status()
    }

    /// UpdateStatus of the working copy: its revision annotation and status.
    fn write_status(&self) -> ApiResult<()> {
        let status = self.status.to_value();
        let rev = annotation(&self.d, REVISION).map(str::to_string);
        if self.orig["status"] == status
            && annotation(&self.orig, REVISION).map(str::to_string) == rev
        {
            return Ok(());
        }
        let ns = self.namespace();
        let my_uid = uid(&self.d).to_string();
        self.sim
            .store
            .modify(res("deployments.apps"), &ns, name(&self.d), |cur| {
                if uid(cur) != my_uid {
                    return Ok(false);
                }
                if let Some(r) = &rev {
                    cur["metadata"]["annotations"][REVISION] = json!(r);
                }
                cur["status"] = status.clone();
                Ok(true)
            })?;
        Ok(())
    }

    fn event(&self, type_: &str, reason: &str, message: &str) {
        events::record(
            self.sim,
            &self.d,
            None,
            type_,
            reason,
            message,
            Source::Controller(COMPONENT),
        );
    }

    // ------------------------------------------------------------ ReplicaSet ownership

    /// Upstream `getReplicaSetsForDeployment`: the ReplicaSets this
    /// Deployment controls, adopting matching orphans and releasing owned
    /// ones that stopped matching.
    fn claim_replica_sets(&self, in_ns: Vec<Arc<Value>>) -> ApiResult<Vec<Arc<Value>>> {
        let d_uid = uid(&self.d).to_string();
        let selector = &self.d["spec"]["selector"];
        let can_claim = !is_deleting(&self.d) && !selector_is_empty(selector);
        let mut owned = Vec::new();
        for rs in in_ns {
            let matches = selector_matches(selector, &rs["metadata"]["labels"]);
            match controller_uid(&rs) {
                Some(u) if u == d_uid && (matches || !can_claim) => owned.push(rs),
                Some(u) if u == d_uid => self.release(&rs, &d_uid)?,
                None if matches && can_claim && !is_deleting(&rs) => owned.push(self.adopt(&rs)?),
                _ => {}
            }
        }
        Ok(owned)
    }

    fn adopt(&self, rs: &Value) -> ApiResult<Arc<Value>> {
        let owner = controller_ref(&self.d);
        self.sim
            .store
            .modify(rs_type(), &self.namespace(), name(rs), |cur| {
                if controller_uid(cur).is_some() {
                    return Ok(false);
                }
                push_owner_ref(cur, &owner);
                Ok(true)
            })
    }

    fn release(&self, rs: &Value, owner_uid: &str) -> ApiResult<()> {
        self.sim
            .store
            .modify(rs_type(), &self.namespace(), name(rs), |cur| {
                Ok(remove_owner_ref(cur, owner_uid))
            })?;
        Ok(())
    }

    /// The current version of a ReplicaSet this sync knows.
    fn fresh(&self, rs: &Arc<Value>) -> Arc<Value> {
        self.rs_list
            .iter()
            .find(|r| uid(r) == uid(rs))
            .cloned()
            .unwrap_or_else(|| rs.clone())
    }

    fn remember(&mut self, rs: Arc<Value>) -> Arc<Value> {
        match self.rs_list.iter_mut().find(|r| uid(r) == uid(&rs)) {
            Some(slot) => *slot = rs.clone(),
            None => self.rs_list.push(rs.clone()),
        }
        rs
    }

    /// Replace a ReplicaSet (optimistic: a concurrent change fails the sync, which retries).
    fn update_rs(&mut self, rs: Value) -> ApiResult<Arc<Value>> {
        let rv = rs["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        let updated = self.sim.store.update(
            rs_type(),
            &self.namespace(),
            name(&rs),
            rs.clone(),
            rv.as_deref(),
        )?;
        Ok(self.remember(updated))
    }

    // ------------------------------------------------------------ new and old ReplicaSets

    /// Upstream `getAllReplicaSetsAndSyncRevision`: (new RS, all old RSes).
    fn get_all_replica_sets_and_sync_revision(&mut self, create: bool) -> ApiResult<NewAndOld> {
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
    fn get_new_replica_set(
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
    fn new_replica_set_object(&self, new_revision: i64, old: &[Arc<Value>]) -> Value {
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
    fn on_name_collision(&mut self, new_rs: &Value, err: ApiError) -> ApiResult<Arc<Value>> {
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
    fn new_rs_new_replicas(&self, all: &[&Value], new_rs: &Value) -> i32 {
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
    fn set_revision(&mut self, rev: &str) -> bool {
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
    fn update_status_mid_sync(&mut self) -> ApiResult<()> {
        if self.stale {
            return Ok(());
        }
        self.write_status()?;
        self.stale = true;
        Ok(())
    }

    fn set_condition(&mut self, type_: &str, status: &str, reason: &str, message: String) {
        let c = Condition::new(type_, status, reason, message, &self.now);
        set_condition(&mut self.status.conditions, c);
    }

    // ------------------------------------------------------------ pause, scaling

    /// Upstream `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if !self.spec.has_progress_deadline() {
            return;
        }
        let reason =
            get_condition(&self.status.conditions, PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return;
        }
        let paused_cond = reason.as_deref() == Some("DeploymentPaused");
        if self.spec.paused && !paused_cond {
            self.set_condition(
                PROGRESSING,
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
            );
        } else if !self.spec.paused && paused_cond {
            self.set_condition(
                PROGRESSING,
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
            );
        }
    }

    /// Upstream `isScalingEvent`: an active RS was sized for another replica count.
    fn is_scaling_event(&mut self) -> ApiResult<bool> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false)?;
        Ok(active(&all_of(&new, &old)).iter().any(|rs| {
            annotation(rs, util::DESIRED_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|desired| desired != self.spec.replicas)
        }))
    }

    /// Upstream `sync`: scale (paused or resized Deployments), clean up, status.
    fn sync(&mut self) -> ApiResult<()> {
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
    fn scale(&mut self, new: Option<Arc<Value>>, mut old: Vec<Arc<Value>>) -> ApiResult<()> {
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
    fn is_saturated(&self, rs: &Option<Arc<Value>>) -> bool {
        let Some(rs) = rs else { return false };
        let desired = annotation(rs, util::DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok());
        rs_replicas(rs) == self.spec.replicas
            && desired == Some(self.spec.replicas)
            && rs_available(rs) == self.spec.replicas
    }

    /// Upstream `scaleReplicaSetAndRecordEvent`.
    fn scale_rs_and_record(
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
    fn scale_rs(&mut self, rs: &Arc<Value>, new_scale: i32) -> ApiResult<(bool, Arc<Value>)> {
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
    fn cleanup_deployment(&mut self, old: &[Arc<Value>]) -> ApiResult<()> {
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

    // ------------------------------------------------------------ status

    /// Upstream `calculateStatus` (counters, then the Available condition).
    fn calculate_status(&self, all: &[Arc<Value>], new: &Option<Arc<Value>>) -> Status {
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
    fn sync_deployment_status(&mut self, all: &[Arc<Value>], new: &Option<Arc<Value>>) {
        self.status = self.calculate_status(all, new);
    }
}

fn set_min_ready_seconds(rs: &mut Value, secs: i64) {
    if secs > 0 {
        rs["spec"]["minReadySeconds"] = json!(secs);
    } else if let Some(spec) = rs["spec"].as_object_mut() {
        spec.remove("minReadySeconds");
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

fn index_pods(sim: &Sim) -> PodIndex {
    let mut index = PodIndex::new();
    for pod in sim.store.list(res("pods"), None).0 {
        if let Some(owner) = controller_uid(&pod) {
            index
                .entry(owner.to_string())
                .or_default()
                .push(pod.clone());
        }
    }
    index
}
