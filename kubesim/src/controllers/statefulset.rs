// Slightly over 500 lines only with its unit tests: one controller, kept whole.
//! The StatefulSet controller, after upstream
//! `pkg/controller/statefulset/{stateful_set_control.go,
//! stateful_set_utils.go, stateful_pod_control.go}`: pods `<set>-<ordinal>`
//! created in order (OrderedReady: each waits for its predecessors to be
//! Running and Ready; Parallel: all at once), surplus ordinals deleted from
//! the highest down, and RollingUpdate replacing pods from the highest
//! ordinal down to `partition`, one at a time, each waiting for the
//! previous to be Ready. Revisions are ControllerRevisions.
//!
//! As upstream, a pod that never becomes Ready blocks an OrderedReady set
//! even after the template is reverted: the controller waits for it before
//! touching any other pod, so it stays on the bad revision until deleted.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::events::{self, Source};
use super::history::{self, REVISION_HASH_LABEL, STS_HASH_LABEL};
use super::meta::{is_deleting, keep_conditions, listed, name, selector_matches, write_status};
use super::next::Next;
use super::pods;
use super::pods::{available_at, is_available, is_ready};
use super::replicaset::pod_from_template;
use crate::api::{self, DeleteOptions};
use crate::error::ApiResult;
use crate::resources::res;
use crate::sim::Sim;

const COMPONENT: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub fn reconcile(sim: &Sim) -> Next {
    let Some(sets) = listed(sim, "statefulsets.apps") else {
        return Next::default();
    };
    pods::sync_owners(sim, &sets, "statefulset", |set, owned, orphans, now| {
        sync(sim, set, owned, orphans, now)
    })
}

/// The ordinal of a pod of `set`, when its name is `<set>-<n>`.
pub fn ordinal(set_name: &str, pod_name: &str) -> Option<i64> {
    let rest = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    let n: i64 = rest.parse().ok()?;
    (n >= 0 && n.to_string() == rest).then_some(n)
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

fn is_failed(pod: &Value) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

/// Upstream `isRunningAndReady`.
fn running_and_ready(pod: &Value) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// Upstream `isHealthy` (running, ready, not terminating).
fn healthy(pod: &Value) -> bool {
    running_and_ready(pod) && !is_deleting(pod)
}

fn pod_revision(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_HASH_LABEL]
        .as_str()
        .unwrap_or("")
}

fn replicas(set: &Value) -> i64 {
    set["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

fn min_ready_seconds(set: &Value) -> i64 {
    set["spec"]["minReadySeconds"].as_i64().unwrap_or(0)
}

fn is_parallel(set: &Value) -> bool {
    set["spec"]["podManagementPolicy"].as_str() == Some("Parallel")
}

fn rolling(set: &Value) -> bool {
    set["spec"]["updateStrategy"]["type"].as_str() != Some("OnDelete")
}

fn partition(set: &Value) -> i64 {
    set["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0)
        .max(0)
}

fn start_ordinal(set: &Value) -> i64 {
    set["spec"]["ordinals"]["start"]
        .as_i64()
        .unwrap_or(0)
        .max(0)
}

/// Claim pods: owned members still matching, plus matching orphan members.
fn claim(
    sim: &Sim,
    set: &Value,
    owned: Vec<Arc<Value>>,
    orphans: &[Arc<Value>],
) -> Vec<Arc<Value>> {
    let selector = &set["spec"]["selector"];
    let ns = set["metadata"]["namespace"].as_str().unwrap_or("");
    let mut claimed: Vec<Arc<Value>> = owned
        .into_iter()
        .filter(|p| ordinal(name(set), name(p)).is_some())
        .collect();
    claimed.extend(pods::adopt_all(
        sim,
        set,
        orphans.iter().filter(|o| {
            o["metadata"]["namespace"].as_str() == Some(ns)
                && ordinal(name(set), name(o)).is_some()
                && selector_matches(selector, &o["metadata"]["labels"])
        }),
    ));
    claimed
}

fn sync(
    sim: &Sim,
    set: &Arc<Value>,
    owned: Vec<Arc<Value>>,
    orphans: &[Arc<Value>],
    now: Timestamp,
) -> ApiResult<Option<Timestamp>> {
    let pods = claim(sim, set, owned, orphans);
    let collision = set["status"]["collisionCount"].as_i64().unwrap_or(0) as i32;
    let data = history::patch_of(set);
    let (update_rev, collision, revisions) =
        history::ensure(sim, set, data.clone(), data, STS_HASH_LABEL, collision)?;
    let current_rev = set["status"]["currentRevision"]
        .as_str()
        .and_then(|c| revisions.iter().find(|r| name(r) == c))
        .cloned()
        .unwrap_or_else(|| update_rev.clone());
    let update_name = name(&update_rev).to_string();
    let current_name = name(&current_rev).to_string();

    let n = replicas(set);
    let start = start_ordinal(set);
    let mut slots: Vec<Option<Arc<Value>>> = vec![None; n as usize];
    let mut condemned: Vec<(i64, Arc<Value>)> = Vec::new();
    for p in &pods {
        let Some(ord) = ordinal(name(set), name(p)) else {
            continue;
        };
        if ord >= start && ord < start + n {
            slots[(ord - start) as usize] = Some(p.clone());
        } else {
            condemned.push((ord, p.clone()));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));

    // Status from what exists now (upstream counts before acting).
    let min_ready = min_ready_seconds(set);
    let mut wake: Option<Timestamp> = None;
    let mut st = Counts::default();
    for p in &pods {
        st.replicas += 1;
        if running_and_ready(p) {
            st.ready += 1;
            if is_available(p, min_ready, now) {
                st.available += 1;
            } else if let Some(t) = available_at(p, min_ready) {
                wake = Some(wake.map_or(t, |w: Timestamp| w.min(t)));
            }
        }
        if !is_deleting(p) {
            if pod_revision(p) == current_name {
                st.current += 1;
            }
            if pod_revision(p) == update_name {
                st.updated += 1;
            }
        }
    }

    act(
        sim,
        set,
        &slots,
        &condemned,
        &current_rev,
        &update_rev,
        start,
    )?;

    // Upstream `completeRollingUpdate`.
    let mut current_out = current_name.clone();
    let mut current_count = st.current;
    if rolling(set) && st.updated == st.replicas && st.ready == st.replicas && st.replicas == n {
        current_out = update_name.clone();
        current_count = st.updated;
    }
    let mut status = Map::new();
    if let Some(g) = set["metadata"]["generation"].as_i64() {
        status.insert("observedGeneration".into(), json!(g));
    }
    status.insert("replicas".into(), json!(st.replicas));
    let mut put = |k: &str, v: i64| {
        if v != 0 {
            status.insert(k.into(), json!(v));
        }
    };
    put("readyReplicas", st.ready);
    put("currentReplicas", current_count);
    put("updatedReplicas", st.updated);
    status.insert("currentRevision".into(), json!(current_out));
    status.insert("updateRevision".into(), json!(update_name));
    status.insert("collisionCount".into(), json!(collision));
    status.insert("availableReplicas".into(), json!(st.available));
    keep_conditions(&mut status, set);
    let status = Value::Object(status);
    write_status(sim, "statefulsets.apps", set, &status)?;

    // History: keep live revisions plus `revisionHistoryLimit` others.
    let mut in_use: Vec<&str> = pods.iter().map(|p| pod_revision(p)).collect();
    in_use.push(&current_out);
    in_use.push(&update_name);
    let limit = set["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
    history::truncate(sim, &revisions, &in_use, limit);
    Ok(wake)
}

#[derive(Default)]
struct Counts {
    replicas: i64,
    ready: i64,
    available: i64,
    current: i64,
    updated: i64,
}

/// Upstream `updateStatefulSet`'s actions: replace failed pods, create
/// missing ones, delete condemned ones, then roll. Under OrderedReady the
/// first pod that is missing, terminating or not Running and Ready stops
/// everything after it.
fn act(
    sim: &Sim,
    set: &Value,
    slots: &[Option<Arc<Value>>],
    condemned: &[(i64, Arc<Value>)],
    current_rev: &Value,
    update_rev: &Value,
    start: i64,
) -> ApiResult<()> {
    let monotonic = !is_parallel(set);
    let part = partition(set);
    let mut first_unhealthy: Option<i64> = None;
    for (i, slot) in slots.iter().enumerate() {
        let ord = start + i as i64;
        match slot {
            Some(pod) if is_failed(pod) && !is_deleting(pod) => {
                delete_pod(sim, set, pod)?;
                if monotonic {
                    return Ok(());
                }
            }
            None => {
                // Upstream `newVersionedStatefulSetPod`: below the
                // partition pods keep the current revision.
                let rev = if rolling(set) && (ord - start) < part {
                    current_rev
                } else {
                    update_rev
                };
                create_pod(sim, set, rev, ord)?;
                if monotonic {
                    return Ok(());
                }
            }
            Some(pod) => {
                if !healthy(pod) {
                    first_unhealthy.get_or_insert(ord);
                    if monotonic {
                        return Ok(());
                    }
                }
            }
        }
    }
    for (ord, pod) in condemned.iter().rev() {
        if !healthy(pod) {
            first_unhealthy = Some(first_unhealthy.map_or(*ord, |f| f.min(*ord)));
        }
    }
    for (ord, pod) in condemned {
        if is_deleting(pod) {
            if monotonic {
                return Ok(());
            }
            continue;
        }
        if !running_and_ready(pod) && monotonic && first_unhealthy != Some(*ord) {
            return Ok(());
        }
        delete_pod(sim, set, pod)?;
        if monotonic {
            return Ok(());
        }
    }
    if !rolling(set) {
        return Ok(());
    }
    let update_name = name(update_rev);
    for i in (0..slots.len()).rev() {
        if (i as i64) < part {
            break;
        }
        let Some(pod) = &slots[i] else {
            return Ok(());
        };
        if pod_revision(pod) != update_name && !is_deleting(pod) {
            delete_pod(sim, set, pod)?;
            return Ok(());
        }
        if !healthy(pod) {
            return Ok(());
        }
    }
    Ok(())
}

/// Upstream `newVersionedStatefulSetPod`: the revision's template, named
/// `<set>-<ordinal>`, with the identity labels, hostname and subdomain.
pub fn pod_for(set: &Value, revision: &Value, ordinal: i64) -> Value {
    let mut versioned = set.clone();
    versioned["spec"]["template"] = history::template_of(revision);
    let mut pod = pod_from_template(&versioned);
    let pod_name = format!("{}-{ordinal}", name(set));
    pod["metadata"]["name"] = json!(pod_name);
    let mut labels = pod["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(pod_name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    labels.insert(REVISION_HASH_LABEL.into(), json!(name(revision)));
    pod["metadata"]["labels"] = Value::Object(labels);
    if let Some(spec) = pod["spec"].as_object_mut() {
        spec.insert("hostname".into(), json!(pod_name));
        if let Some(svc) = set["spec"]["serviceName"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            spec.insert("subdomain".into(), json!(svc));
        }
    }
    pod
}

fn create_pod(sim: &Sim, set: &Value, revision: &Value, ordinal: i64) -> ApiResult<()> {
    let pod = pod_for(set, revision, ordinal);
    let pod_name = name(&pod).to_string();
    match api::create_object(sim, pod) {
        Ok(_) => {
            record(
                sim,
                set,
                "Normal",
                "SuccessfulCreate",
                "Create",
                &pod_name,
                None,
            );
            Ok(())
        }
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => {
            record(
                sim,
                set,
                "Warning",
                "FailedCreate",
                "create",
                &pod_name,
                Some(&e.message),
            );
            Err(e)
        }
    }
}

fn delete_pod(sim: &Sim, set: &Value, pod: &Value) -> ApiResult<()> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    match api::delete_object(sim, res("pods"), ns, name(pod), &DeleteOptions::default()) {
        Ok(_) => {
            record(
                sim,
                set,
                "Normal",
                "SuccessfulDelete",
                "Delete",
                name(pod),
                None,
            );
            Ok(())
        }
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => {
            record(
                sim,
                set,
                "Warning",
                "FailedDelete",
                "delete",
                name(pod),
                Some(&e.message),
            );
            Err(e)
        }
    }
}

/// Upstream `recordPodEvent`: "Create Pod db-0 in StatefulSet db successful"
/// or "create Pod db-0 in StatefulSet db failed error: …".
fn record(
    sim: &Sim,
    set: &Value,
    type_: &str,
    reason: &str,
    verb: &str,
    pod: &str,
    err: Option<&str>,
) {
    let msg = match err {
        None => format!("{verb} Pod {pod} in StatefulSet {} successful", name(set)),
        Some(e) => format!(
            "{verb} Pod {pod} in StatefulSet {} failed error: {e}",
            name(set)
        ),
    };
    events::record(
        sim,
        set,
        None,
        type_,
        reason,
        &msg,
        Source::Controller(COMPONENT),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_strictly() {
        assert_eq!(ordinal("db", "db-0"), Some(0));
        assert_eq!(ordinal("db", "db-12"), Some(12));
        assert_eq!(ordinal("db", "db-01"), None);
        assert_eq!(ordinal("db", "dbx-1"), None);
        assert_eq!(ordinal("db", "db-x"), None);
        assert_eq!(ordinal("db", "db-web-1"), None);
    }

    #[test]
    fn pod_identity() {
        let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u"},
            "spec": {"serviceName": "db", "template": {"metadata": {"labels": {"app": "new"}}, "spec": {}}}});
        let rev = json!({"metadata": {"name": "db-abc"},
            "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}}}});
        let p = pod_for(&set, &rev, 2);
        assert_eq!(p["metadata"]["name"], "db-2");
        assert_eq!(p["metadata"]["generateName"], "db-");
        assert_eq!(p["metadata"]["labels"]["app"], "db");
        assert_eq!(p["metadata"]["labels"][POD_NAME_LABEL], "db-2");
        assert_eq!(p["metadata"]["labels"][POD_INDEX_LABEL], "2");
        assert_eq!(p["metadata"]["labels"][REVISION_HASH_LABEL], "db-abc");
        assert_eq!(p["spec"]["hostname"], "db-2");
        assert_eq!(p["spec"]["subdomain"], "db");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    }
}
