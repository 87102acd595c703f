//! The ReplicaSet controller, after upstream
//! `pkg/controller/replicaset/replica_set.go` and `replica_set_utils.go`:
//! claim pods by controllerRef (adopting matching orphans, releasing owned
//! pods that stopped matching), create missing pods from the template,
//! delete surplus ones in upstream's ranking order, and keep the status
//! counters (availability after `minReadySeconds`) current.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::deletion::pods_to_delete;
use super::deployment::util::rs_replicas;
use super::meta::{
    controller_ref, controller_uid, is_deleting, listed, name, remove_owner_ref, selector_matches,
    uid, write_status,
};
use super::next::Next;
use super::pods::{self, is_active, is_terminal};
use crate::error::{ApiError, ApiResult};
use crate::resources::res;
use crate::sim::Sim;

const COMPONENT: &str = "replicaset-controller";

/// Upstream `BurstReplicas`: at most this many creates or deletes per sync.
const BURST_REPLICAS: usize = 500;

pub fn reconcile(sim: &Sim) -> Next {
    let Some(replica_sets) = listed(sim, "replicasets.apps") else {
        return Next::default();
    };
    let pods = PodIndex::new(&sim.store.list(res("pods"), None).0);
    let siblings = group_by_controller(&replica_sets);
    let mut next = Next::default();
    let now = sim.clock.now();
    for rs in &replica_sets {
        let related = related_pods(rs, &siblings, &pods);
        next.after_sync(now, sync_replica_set(sim, rs, &pods, &related, now), |e| {
            tracing::debug!(replicaset = name(rs), error = %e, "replicaset sync failed; retrying");
        });
    }
    next
}

/// Pods by controller uid, and the orphans of each namespace.
struct PodIndex {
    by_owner: HashMap<String, Vec<Arc<Value>>>,
    orphans: HashMap<String, Vec<Arc<Value>>>,
}

impl PodIndex {
    fn new(pods: &[Arc<Value>]) -> Self {
        let mut by_owner: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
        let mut orphans: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
        for pod in pods {
            match controller_uid(pod) {
                Some(owner) => by_owner
                    .entry(owner.to_string())
                    .or_default()
                    .push(pod.clone()),
                None if is_active(pod) => {
                    let ns = pod["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    orphans.entry(ns).or_default().push(pod.clone());
                }
                None => {}
            }
        }
        Self { by_owner, orphans }
    }

    fn owned_by(&self, owner_uid: &str) -> &[Arc<Value>] {
        self.by_owner
            .get(owner_uid)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// ReplicaSets grouped by their controller's uid.
fn group_by_controller(replica_sets: &[Arc<Value>]) -> HashMap<String, Vec<String>> {
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for rs in replica_sets {
        if let Some(owner) = controller_uid(rs) {
            groups
                .entry(owner.to_string())
                .or_default()
                .push(uid(rs).to_string());
        }
    }
    groups
}

/// Upstream `getIndirectlyRelatedPods`: the pods of every ReplicaSet with
/// the same controller (the Deployment's other revisions), for ranking.
fn related_pods(
    rs: &Value,
    siblings: &HashMap<String, Vec<String>>,
    pods: &PodIndex,
) -> Vec<Arc<Value>> {
    let own = vec![uid(rs).to_string()];
    let group = controller_uid(rs)
        .and_then(|o| siblings.get(o))
        .unwrap_or(&own);
    group
        .iter()
        .flat_map(|u| pods.owned_by(u).iter().cloned())
        .collect()
}

/// Sync one ReplicaSet; returns when it next wants to look (a pod becoming available).
fn sync_replica_set(
    sim: &Sim,
    rs: &Arc<Value>,
    pods: &PodIndex,
    related: &[Arc<Value>],
    now: Timestamp,
) -> ApiResult<Option<Timestamp>> {
    let owned = claim_pods(sim, rs, pods)?;
    let active: Vec<Arc<Value>> = owned.iter().filter(|p| is_active(p)).cloned().collect();
    let terminating = owned
        .iter()
        .filter(|p| is_deleting(p) && !is_terminal(p))
        .count();
    let manage_err = if is_deleting(rs) {
        None
    } else {
        let want = rs_replicas(rs).max(0) as usize;
        manage_replicas(sim, rs, COMPONENT, want, &active, related, now).err()
    };
    let status = calculate_status(rs, &active, terminating, manage_err.as_ref(), now);
    report_then_fail(sim, "replicasets.apps", rs, &status, manage_err)?;
    Ok(pods::next_available(&active, min_ready_seconds(rs), now))
}

/// Write the `status` a sync computed (it reports `manage_err`, the
/// failure to create or delete pods), then fail the sync with that error.
pub(super) fn report_then_fail(
    sim: &Sim,
    resource: &str,
    owner: &Value,
    status: &Value,
    manage_err: Option<ApiError>,
) -> ApiResult<()> {
    write_status(sim, resource, owner, status)?;
    manage_err.map_or(Ok(()), Err)
}

// ---------------------------------------------------------------- claiming

/// Upstream `claimPods`: owned pods still matching the selector, plus
/// matching active orphans (adopted); owned pods that stopped matching are
/// released. A ReplicaSet being deleted neither adopts nor releases.
fn claim_pods(sim: &Sim, rs: &Value, pods: &PodIndex) -> ApiResult<Vec<Arc<Value>>> {
    let selector = &rs["spec"]["selector"];
    let deleting = is_deleting(rs);
    let mut claimed = Vec::new();
    for pod in pods.owned_by(uid(rs)) {
        if deleting || selector_matches(selector, &pod["metadata"]["labels"]) || !is_active(pod) {
            claimed.push(pod.clone());
        } else {
            release(sim, pod, uid(rs))?;
        }
    }
    if deleting {
        return Ok(claimed);
    }
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or("");
    for orphan in pods.orphans.get(ns).into_iter().flatten() {
        if !selector_matches(selector, &orphan["metadata"]["labels"]) {
            continue;
        }
        let adopted = pods::adopt(sim, rs, orphan)?;
        if controller_uid(&adopted) == Some(uid(rs)) {
            claimed.push(adopted);
        }
    }
    Ok(claimed)
}

fn release(sim: &Sim, pod: &Value, owner_uid: &str) -> ApiResult<()> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    sim.store.modify(res("pods"), ns, name(pod), |cur| {
        Ok(remove_owner_ref(cur, owner_uid))
    })?;
    Ok(())
}

// ---------------------------------------------------------------- creating and deleting

/// Upstream `manageReplicas` (the ReplicationController's too): create the
/// `want` less `active` missing pods from `owner`'s template (stopping at
/// the first failure) or delete the surplus, lowest-ranked among `related`
/// first; at most `BURST_REPLICAS` either way, as `component`.
pub(super) fn manage_replicas(
    sim: &Sim,
    owner: &Value,
    component: &str,
    want: usize,
    active: &[Arc<Value>],
    related: &[Arc<Value>],
    now: Timestamp,
) -> ApiResult<()> {
    if active.len() < want {
        let missing = (want - active.len()).min(BURST_REPLICAS);
        for _ in 0..missing {
            pods::create(sim, owner, component, pod_from_template(owner))?;
        }
    } else if active.len() > want {
        let surplus = (active.len() - want).min(BURST_REPLICAS);
        for pod in pods_to_delete(active, related, surplus, now) {
            pods::delete(sim, owner, component, &pod)?;
        }
    }
    Ok(())
}

/// Upstream `GetPodFromTemplate`: labels, annotations and finalizers of the
/// template, `generateName: <rs>-`, the controllerRef, the template's spec.
pub fn pod_from_template(rs: &Value) -> Value {
    let t = &rs["spec"]["template"];
    let mut meta = Map::new();
    meta.insert("generateName".into(), json!(format!("{}-", name(rs))));
    meta.insert("namespace".into(), rs["metadata"]["namespace"].clone());
    for key in ["labels", "annotations", "finalizers"] {
        if let Some(v) = t["metadata"].get(key).filter(|v| !v.is_null()) {
            meta.insert(key.into(), v.clone());
        }
    }
    meta.insert("ownerReferences".into(), json!([controller_ref(rs)]));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": t["spec"]})
}

fn min_ready_seconds(rs: &Value) -> i64 {
    rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0)
}

// ---------------------------------------------------------------- status

/// Upstream `calculateStatus` + `updateReplicaSetStatus`, as the status JSON
/// (Go's omitempty: `replicas` always, the other counters when non-zero).
fn calculate_status(
    rs: &Value,
    active: &[Arc<Value>],
    terminating: usize,
    manage_err: Option<&ApiError>,
    now: Timestamp,
) -> Value {
    pods::ReplicaStatus {
        owner: rs,
        active,
        want: rs_replicas(rs).max(0) as usize,
        min_ready_seconds: min_ready_seconds(rs),
        terminating: Some(terminating),
        manage_err,
        now,
    }
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    use crate::controllers::deletion::compare_for_deletion;
    use crate::controllers::pods::is_available;

    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_at: Option<&str>,
        created: &str,
        restarts: i64,
    ) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": created},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "containerStatuses": [{"restartCount": restarts}]},
        });
        if let Some(t) = ready_at {
            p["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]);
        }
        p
    }

    #[test]
    fn deletion_prefers_unassigned_pending_unready_restarting_new() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let old = "2026-01-01T00:00:00Z";
        let running_ready = pod("ready", "n1", "Running", Some(old), old, 0);
        let running_unready = pod("unready", "n1", "Running", None, old, 0);
        let pending = pod("pending", "n1", "Pending", None, old, 0);
        let unassigned = pod("unassigned", "", "Pending", None, old, 0);
        let cmp = |a: &Value, b: &Value| compare_for_deletion(a, 0, b, 0, now);
        assert_eq!(cmp(&unassigned, &pending), Ordering::Less);
        assert_eq!(cmp(&pending, &running_unready), Ordering::Less);
        assert_eq!(cmp(&running_unready, &running_ready), Ordering::Less);
        let crashing = pod("crashing", "n1", "Running", None, old, 5);
        assert_eq!(
            cmp(&crashing, &running_unready),
            Ordering::Less,
            "more restarts first"
        );
        let newer = pod("newer", "n1", "Running", None, "2026-01-01T00:59:00Z", 0);
        assert_eq!(cmp(&newer, &running_unready), Ordering::Less, "newer first");
        let recently_ready = pod(
            "recent",
            "n1",
            "Running",
            Some("2026-01-01T00:59:59Z"),
            old,
            0,
        );
        assert_eq!(
            cmp(&recently_ready, &running_ready),
            Ordering::Less,
            "ready more recently first"
        );
        assert_eq!(
            compare_for_deletion(&running_ready, 3, &running_ready.clone(), 1, now),
            Ordering::Less,
            "doubled up first"
        );
    }

    #[test]
    fn pods_to_delete_takes_the_lowest_ranked() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let t = "2026-01-01T00:00:00Z";
        let pods: Vec<Arc<Value>> = vec![
            Arc::new(pod("a", "n1", "Running", Some(t), t, 0)),
            Arc::new(pod("b", "", "Pending", None, t, 0)),
            Arc::new(pod("c", "n2", "Running", None, t, 0)),
        ];
        let names: Vec<String> = pods_to_delete(&pods, &pods, 2, now)
            .iter()
            .map(|p| name(p).to_string())
            .collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod(
            "a",
            "n1",
            "Running",
            Some("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:00Z",
            0,
        );
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(
            !is_available(&p, 10, at("2026-01-01T00:00:10Z")),
            "strictly after"
        );
        assert!(is_available(&p, 10, at("2026-01-01T00:00:10.5Z")));
        assert!(pods::available_at(&p, 10).unwrap() > at("2026-01-01T00:00:10Z"));
    }

    #[test]
    fn status_shape_matches_upstream() {
        let rs = json!({"metadata": {"name": "web-1", "generation": 2},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "1"}}}}});
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        assert_eq!(
            calculate_status(&rs, &[], 0, None, now),
            json!({"replicas": 0, "observedGeneration": 2, "terminatingReplicas": 0})
        );
        let mut p = pod(
            "a",
            "n1",
            "Running",
            Some("2026-01-01T00:00:00Z"),
            "2026-01-01T00:00:00Z",
            0,
        );
        p["metadata"]["labels"] = json!({"app": "web", "pod-template-hash": "1"});
        let err = ApiError::new(403, "Forbidden", "exceeded quota");
        let st = calculate_status(&rs, &[Arc::new(p)], 1, Some(&err), now);
        assert_eq!(st["fullyLabeledReplicas"], 1);
        assert_eq!(st["availableReplicas"], 1);
        assert_eq!(st["terminatingReplicas"], 1);
        assert_eq!(st["conditions"][0]["reason"], "FailedCreate");
    }

    #[test]
    fn pod_template_becomes_a_pod() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let p = pod_from_template(&rs);
        assert_eq!(p["metadata"]["generateName"], "web-abc-");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["spec"]["containers"][0]["name"], "c");
    }
}
