//! The ReplicationController controller. Upstream
//! `pkg/controller/replication/` wraps the ReplicaSet controller with
//! conversions (the map selector becomes `matchLabels`); this does the same
//! work on the RC directly: claim pods by controllerRef (adopting matching
//! orphans, releasing owned pods that stopped matching), create missing
//! pods from the template, delete surplus ones in the ReplicaSet
//! controller's ranking order, and keep the status counters current.
//! Events come from `replication-controller`, as upstream.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use super::meta::{controller_uid, is_deleting, listed, name, remove_owner_ref, uid};
use super::next::Next;
use super::pods;
use super::pods::is_active;
use super::replicaset::{manage_replicas, report_then_fail};
use crate::error::{ApiError, ApiResult};
use crate::resources::res;
use crate::sim::Sim;

const COMPONENT: &str = "replication-controller";

pub fn reconcile(sim: &Sim) -> Next {
    let Some(rcs) = listed(sim, "replicationcontrollers") else {
        return Next::default();
    };
    let (by_owner, unowned) = pods::by_controller(sim);
    let mut orphans: HashMap<&str, Vec<Arc<Value>>> = HashMap::new();
    for p in unowned.iter().filter(|p| is_active(p)) {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
        orphans.entry(ns).or_default().push(p.clone());
    }
    let mut next = Next::default();
    let now = sim.clock.now();
    for rc in &rcs {
        let owned = by_owner.get(uid(rc)).map(Vec::as_slice).unwrap_or(&[]);
        let ns = rc["metadata"]["namespace"].as_str().unwrap_or("");
        let ns_orphans = orphans.get(ns).map(Vec::as_slice).unwrap_or(&[]);
        next.after_sync(now, sync(sim, rc, owned, ns_orphans, now), |e| {
            tracing::debug!(rc = name(rc), error = %e, "replicationcontroller sync failed; retrying");
        });
    }
    next
}

/// An RC selector (a plain label map) matches when every pair is present;
/// an empty selector matches nothing (the API defaults it to the template's labels).
pub fn map_selector_matches(selector: &Value, labels: &Value) -> bool {
    match selector.as_object() {
        Some(m) if !m.is_empty() => m.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

fn replicas(rc: &Value) -> usize {
    rc["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize
}

fn min_ready_seconds(rc: &Value) -> i64 {
    rc["spec"]["minReadySeconds"].as_i64().unwrap_or(0)
}

fn sync(
    sim: &Sim,
    rc: &Arc<Value>,
    owned: &[Arc<Value>],
    orphans: &[Arc<Value>],
    now: Timestamp,
) -> ApiResult<Option<Timestamp>> {
    let pods = claim(sim, rc, owned, orphans)?;
    let active: Vec<Arc<Value>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
    let manage_err = if is_deleting(rc) {
        None
    } else {
        // Every pod in `active` is active, so it is also the family the
        // pods per node are counted over.
        manage_replicas(sim, rc, COMPONENT, replicas(rc), &active, &active, now).err()
    };
    let status = calculate_status(rc, &active, manage_err.as_ref(), now);
    report_then_fail(sim, "replicationcontrollers", rc, &status, manage_err)?;
    Ok(pods::next_available(&active, min_ready_seconds(rc), now))
}

fn claim(
    sim: &Sim,
    rc: &Value,
    owned: &[Arc<Value>],
    orphans: &[Arc<Value>],
) -> ApiResult<Vec<Arc<Value>>> {
    let selector = &rc["spec"]["selector"];
    let deleting = is_deleting(rc);
    let ns = rc["metadata"]["namespace"].as_str().unwrap_or("");
    let mut claimed = Vec::new();
    for pod in owned {
        if deleting || !is_active(pod) || map_selector_matches(selector, &pod["metadata"]["labels"])
        {
            claimed.push(pod.clone());
            continue;
        }
        let my_uid = uid(rc).to_string();
        sim.store.modify(res("pods"), ns, name(pod), |cur| {
            Ok(remove_owner_ref(cur, &my_uid))
        })?;
    }
    if deleting {
        return Ok(claimed);
    }
    for orphan in orphans {
        if !map_selector_matches(selector, &orphan["metadata"]["labels"]) {
            continue;
        }
        match pods::adopt(sim, rc, orphan) {
            Ok(p) if controller_uid(&p) == Some(uid(rc)) => claimed.push(p),
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(claimed)
}

/// Upstream `calculateStatus` in the RC's shape (no `terminatingReplicas`;
/// `replicas` always, the other counters when non-zero).
fn calculate_status(
    rc: &Value,
    active: &[Arc<Value>],
    manage_err: Option<&ApiError>,
    now: Timestamp,
) -> Value {
    pods::ReplicaStatus {
        owner: rc,
        active,
        want: replicas(rc),
        min_ready_seconds: min_ready_seconds(rc),
        terminating: None,
        manage_err,
        now,
    }
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn map_selector() {
        let sel = json!({"name": "api-pods"});
        assert!(map_selector_matches(
            &sel,
            &json!({"name": "api-pods", "x": "y"})
        ));
        assert!(!map_selector_matches(&sel, &json!({"name": "other"})));
        assert!(!map_selector_matches(
            &json!({}),
            &json!({"name": "api-pods"})
        ));
    }

    #[test]
    fn status_shape_matches_fixture() {
        let rc = json!({"metadata": {"name": "api-rc", "generation": 1},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"name": "api-pods"}}}}});
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        assert_eq!(
            calculate_status(&rc, &[], None, now),
            json!({"replicas": 0, "observedGeneration": 1})
        );
    }
}
