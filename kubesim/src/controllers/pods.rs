//! Pod bookkeeping shared by the workload controllers (ReplicaSet,
//! ReplicationController, DaemonSet, StatefulSet): adopting orphans,
//! creating and deleting pods with upstream's events, and the replica
//! counters of a ReplicaSet-shaped status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::events::{self, Source};
use super::meta::{controller_ref, controller_uid, is_deleting, name, push_owner_ref, uid};
use super::next::Next;
use crate::api::{self, DeleteOptions};
use crate::clock::{fmt_time, parse_time};
use crate::error::{ApiError, ApiResult};
use crate::resources::res;
use crate::sim::Sim;

/// Adopt `pod` for `owner`: add the controllerRef unless the pod already
/// has a controller or is being deleted.
pub fn adopt(sim: &Sim, owner: &Value, pod: &Value) -> ApiResult<Arc<Value>> {
    let owner_ref = controller_ref(owner);
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    sim.store.modify(res("pods"), ns, name(pod), |cur| {
        if controller_uid(cur).is_some() || is_deleting(cur) {
            return Ok(false);
        }
        push_owner_ref(cur, &owner_ref);
        Ok(true)
    })
}

/// Adopt each of `orphans` for `owner`; the ones it then controls (another
/// controller may have won one, or it may have gone: those are skipped).
pub fn adopt_all<'a>(
    sim: &Sim,
    owner: &Value,
    orphans: impl IntoIterator<Item = &'a Arc<Value>>,
) -> Vec<Arc<Value>> {
    orphans
        .into_iter()
        .filter_map(|o| adopt(sim, owner, o).ok())
        .filter(|p| controller_uid(p) == Some(uid(owner)))
        .collect()
}

/// Pods grouped by the uid of their controller.
pub type ByController = HashMap<String, Vec<Arc<Value>>>;

/// Every pod, grouped by the uid of its controller, and the pods no
/// controller owns.
pub fn by_controller(sim: &Sim) -> (ByController, Vec<Arc<Value>>) {
    let (all, _) = sim.store.list(res("pods"), None);
    let mut by_owner = ByController::new();
    let mut unowned = Vec::new();
    for p in all {
        match controller_uid(&p) {
            Some(o) => by_owner.entry(o.to_string()).or_default().push(p),
            None => unowned.push(p),
        }
    }
    (by_owner, unowned)
}

/// One pass of a controller that owns its pods directly and leaves alone
/// the objects being deleted (DaemonSet, StatefulSet): `sync` each other
/// object of `owners` with the pods it controls and the orphans (pods with
/// no controller, not being deleted); a failed sync is logged and retried.
pub fn sync_owners(
    sim: &Sim,
    owners: &[Arc<Value>],
    kind: &str,
    mut sync: impl FnMut(
        &Arc<Value>,
        Vec<Arc<Value>>,
        &[Arc<Value>],
        Timestamp,
    ) -> ApiResult<Option<Timestamp>>,
) -> Next {
    let (mut by_owner, mut orphans) = by_controller(sim);
    orphans.retain(|p| !is_deleting(p));
    let mut next = Next::default();
    let now = sim.clock.now();
    for o in owners.iter().filter(|o| !is_deleting(o)) {
        let owned = by_owner.remove(uid(o)).unwrap_or_default();
        next.after_sync(now, sync(o, owned, &orphans, now), |e| {
            tracing::debug!(name = name(o), error = %e, "{kind} sync failed; retrying");
        });
    }
    next
}

/// Create `pod` for `owner`, recording upstream's `SuccessfulCreate`
/// ("Created pod: …") or `FailedCreate` ("Error creating: …") event.
pub fn create(sim: &Sim, owner: &Value, component: &str, pod: Value) -> ApiResult<()> {
    match api::create_object(sim, pod) {
        Ok(pod) => {
            let msg = format!("Created pod: {}", name(&pod));
            record(sim, owner, component, "Normal", "SuccessfulCreate", &msg);
            Ok(())
        }
        Err(e) => {
            let msg = format!("Error creating: {}", e.message);
            record(sim, owner, component, "Warning", "FailedCreate", &msg);
            Err(e)
        }
    }
}

/// Delete `pod` of `owner`, recording upstream's `SuccessfulDelete`
/// ("Deleted pod: …") or `FailedDelete` ("Error deleting: …") event; a pod
/// already gone is no error and no event.
pub fn delete(sim: &Sim, owner: &Value, component: &str, pod: &Value) -> ApiResult<()> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    match api::delete_object(sim, res("pods"), ns, name(pod), &DeleteOptions::default()) {
        Ok(_) => {
            let msg = format!("Deleted pod: {}", name(pod));
            record(sim, owner, component, "Normal", "SuccessfulDelete", &msg);
            Ok(())
        }
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => {
            let msg = format!("Error deleting: {}", e.message);
            record(sim, owner, component, "Warning", "FailedDelete", &msg);
            Err(e)
        }
    }
}

fn record(sim: &Sim, owner: &Value, component: &str, type_: &str, reason: &str, msg: &str) {
    events::record(
        sim,
        owner,
        None,
        type_,
        reason,
        msg,
        Source::Controller(component),
    );
}

/// The inputs of a ReplicaSet-shaped status (ReplicaSet and
/// ReplicationController, upstream `calculateStatus`).
pub struct ReplicaStatus<'a> {
    /// The owner (its template labels, generation and conditions are read).
    pub owner: &'a Value,
    /// Its active pods.
    pub active: &'a [Arc<Value>],
    /// `spec.replicas`, clamped at zero.
    pub want: usize,
    pub min_ready_seconds: i64,
    /// `terminatingReplicas`, for the kinds that report it.
    pub terminating: Option<usize>,
    /// The error of the last create/delete pass, if any.
    pub manage_err: Option<&'a ApiError>,
    pub now: Timestamp,
}

const REPLICA_FAILURE: &str = "ReplicaFailure";

impl ReplicaStatus<'_> {
    /// The status JSON (Go's omitempty: `replicas` always, the other
    /// counters when non-zero).
    pub fn to_json(&self) -> Value {
        let template_labels = &self.owner["spec"]["template"]["metadata"]["labels"];
        let fully_labeled = self
            .active
            .iter()
            .filter(|p| labels_contain(&p["metadata"]["labels"], template_labels))
            .count();
        let ready = self.active.iter().filter(|p| is_ready(p)).count();
        let available = self
            .active
            .iter()
            .filter(|p| is_available(p, self.min_ready_seconds, self.now))
            .count();

        let mut conditions: Vec<Value> = self.owner["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has_failure = conditions
            .iter()
            .any(|c| c["type"].as_str() == Some(REPLICA_FAILURE));
        match self.manage_err {
            Some(e) if !has_failure => {
                let reason = if self.active.len() < self.want {
                    "FailedCreate"
                } else {
                    "FailedDelete"
                };
                conditions.push(
                    json!({"type": REPLICA_FAILURE, "status": "True", "reason": reason,
                    "message": e.message, "lastTransitionTime": fmt_time(self.now)}),
                );
            }
            None if has_failure => {
                conditions.retain(|c| c["type"].as_str() != Some(REPLICA_FAILURE))
            }
            _ => {}
        }

        let mut st = Map::new();
        st.insert("replicas".into(), json!(self.active.len()));
        let mut put = |k: &str, v: usize| {
            if v > 0 {
                st.insert(k.into(), json!(v));
            }
        };
        put("fullyLabeledReplicas", fully_labeled);
        put("readyReplicas", ready);
        put("availableReplicas", available);
        if let Some(g) = self.owner["metadata"]["generation"]
            .as_i64()
            .filter(|g| *g != 0)
        {
            st.insert("observedGeneration".into(), json!(g));
        }
        if let Some(t) = self.terminating {
            st.insert("terminatingReplicas".into(), json!(t));
        }
        if !conditions.is_empty() {
            st.insert("conditions".into(), Value::Array(conditions));
        }
        Value::Object(st)
    }
}

/// Every pair of `wanted` (a label map) is in `labels`.
fn labels_contain(labels: &Value, wanted: &Value) -> bool {
    wanted
        .as_object()
        .is_none_or(|w| w.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

// ---------------------------------------------------------------- readiness

/// The pod's Ready condition.
fn ready_condition(pod: &Value) -> Option<&Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some("Ready"))
}

pub fn is_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some_and(|c| c["status"].as_str() == Some("True"))
}

/// When a ready pod became ready (its Ready condition's lastTransitionTime).
pub fn ready_since(pod: &Value) -> Option<Timestamp> {
    if !is_ready(pod) {
        return None;
    }
    ready_condition(pod)?["lastTransitionTime"]
        .as_str()
        .and_then(parse_time)
}

/// When a ready pod counts as available: upstream `IsPodAvailable` needs
/// `lastTransitionTime + minReadySeconds` to be strictly before now.
pub fn available_at(pod: &Value, min_ready_seconds: i64) -> Option<Timestamp> {
    let since = ready_since(pod)?;
    Some(since + Duration::from_secs(min_ready_seconds.max(0) as u64) + Duration::from_millis(1))
}

/// The earliest moment after `now` at which one of `pods`, ready but not
/// yet available, becomes available: when its controller is to look again.
pub fn next_available(
    pods: &[Arc<Value>],
    min_ready_seconds: i64,
    now: Timestamp,
) -> Option<Timestamp> {
    pods.iter()
        .filter(|p| !is_available(p, min_ready_seconds, now))
        .filter_map(|p| available_at(p, min_ready_seconds))
        .filter(|t| *t > now)
        .min()
}

pub fn is_available(pod: &Value, min_ready_seconds: i64, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod).is_some_and(|t| t + Duration::from_secs(min_ready_seconds as u64) < now)
}

// ---------------------------------------------------------------- pod state

pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

pub fn is_terminal(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Upstream `IsPodActive`: not terminal, not being deleted.
pub fn is_active(pod: &Value) -> bool {
    !is_terminal(pod) && !is_deleting(pod)
}
