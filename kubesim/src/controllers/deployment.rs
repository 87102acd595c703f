//! The Deployment controller, after upstream `pkg/controller/deployment/`:
//! the sync of one Deployment lives here, finding or creating the new
//! ReplicaSet in `new_rs.rs`, scaling, clean-up and status in `scale.rs`,
//! the strategies in `rolling.rs`, the Progressing/Available
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

mod new_rs;
mod progress;
mod rolling;
mod scale;
pub mod status;
pub mod util;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use self::status::{Condition, Status, get_condition, set_condition};
use self::util::{REVISION, Spec, rs_replicas};
use super::events::{self, Source};
use super::meta::{
    annotation, controller_ref, controller_uid, is_deleting, listed, name, push_owner_ref,
    remove_owner_ref, selector_is_empty, selector_matches, uid,
};
use super::next::Next;
use crate::clock::fmt_time;
use crate::error::ApiResult;
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
    let Some(deployments) = listed(sim, "deployments.apps") else {
        return Next::default();
    };
    let (replica_sets, _) = sim.store.list(res("replicasets.apps"), None);
    let mut pods: Option<PodIndex> = None;
    let mut next = Next::default();
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

    // ------------------------------------------------------------ status
}

fn set_min_ready_seconds(rs: &mut Value, secs: i64) {
    if secs > 0 {
        rs["spec"]["minReadySeconds"] = json!(secs);
    } else if let Some(spec) = rs["spec"].as_object_mut() {
        spec.remove("minReadySeconds");
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
