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
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::deployment::util::{is_deleting, name, uid};
use super::events::{self, Source};
use super::replicaset::{
    compare_for_deletion, is_active, is_available, is_ready, pod_from_template,
};
use super::{Next, controller_ref, controller_uid};
use crate::Sim;
use crate::api::{self, DeleteOptions};
use crate::clock::{fmt_time, parse_time};
use crate::error::{ApiError, ApiResult};
use crate::resources::res;

const COMPONENT: &str = "replication-controller";
const BURST_REPLICAS: usize = 500;
const REPLICA_FAILURE: &str = "ReplicaFailure";

pub fn reconcile(sim: &Sim) -> Next {
    let mut next = Next::default();
    let (rcs, _) = sim.store.list(res("replicationcontrollers"), None);
    if rcs.is_empty() {
        return next;
    }
    let (all_pods, _) = sim.store.list(res("pods"), None);
    let mut by_owner: HashMap<&str, Vec<Arc<Value>>> = HashMap::new();
    let mut orphans: HashMap<&str, Vec<Arc<Value>>> = HashMap::new();
    for p in &all_pods {
        match controller_uid(p) {
            Some(o) => by_owner.entry(o).or_default().push(p.clone()),
            None if is_active(p) => orphans
                .entry(p["metadata"]["namespace"].as_str().unwrap_or(""))
                .or_default()
                .push(p.clone()),
            None => {}
        }
    }
    let now = sim.clock.now();
    for rc in &rcs {
        let owned = by_owner.get(uid(rc)).map(Vec::as_slice).unwrap_or(&[]);
        let ns = rc["metadata"]["namespace"].as_str().unwrap_or("");
        let ns_orphans = orphans.get(ns).map(Vec::as_slice).unwrap_or(&[]);
        match sync(sim, rc, owned, ns_orphans, now) {
            Ok(Some(t)) => next.at(t),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(rc = name(rc), error = %e, "replicationcontroller sync failed; retrying");
                next.at(now + Duration::from_secs(1));
            }
        }
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
        manage(sim, rc, &active, now).err()
    };
    let status = calculate_status(rc, &active, manage_err.as_ref(), now);
    if rc["status"] != status {
        let my_uid = uid(rc).to_string();
        let ns = rc["metadata"]["namespace"].as_str().unwrap_or("");
        sim.store
            .modify(res("replicationcontrollers"), ns, name(rc), |cur| {
                if uid(cur) != my_uid {
                    return Ok(false);
                }
                cur["status"] = status.clone();
                Ok(true)
            })?;
    }
    if let Some(e) = manage_err {
        return Err(e);
    }
    let min_ready = min_ready_seconds(rc);
    Ok(active
        .iter()
        .filter(|p| is_ready(p) && !is_available(p, min_ready, now))
        .filter_map(|p| ready_since(p))
        .map(|t| t + Duration::from_secs(min_ready.max(0) as u64) + Duration::from_millis(1))
        .filter(|t| *t > now)
        .min())
}

fn ready_since(pod: &Value) -> Option<Timestamp> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?["lastTransitionTime"]
        .as_str()
        .and_then(parse_time)
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
            let Some(refs) = cur["metadata"]["ownerReferences"].as_array_mut() else {
                return Ok(false);
            };
            refs.retain(|r| r["uid"].as_str() != Some(my_uid.as_str()));
            if refs.is_empty()
                && let Some(m) = cur["metadata"].as_object_mut()
            {
                m.remove("ownerReferences");
            }
            Ok(true)
        })?;
    }
    if deleting {
        return Ok(claimed);
    }
    for orphan in orphans {
        if !map_selector_matches(selector, &orphan["metadata"]["labels"]) {
            continue;
        }
        let owner = controller_ref(rc);
        let adopted = sim.store.modify(res("pods"), ns, name(orphan), |cur| {
            if controller_uid(cur).is_some() || is_deleting(cur) {
                return Ok(false);
            }
            match cur["metadata"]["ownerReferences"].as_array_mut() {
                Some(refs) => refs.push(owner.clone()),
                None => cur["metadata"]["ownerReferences"] = json!([owner.clone()]),
            }
            Ok(true)
        });
        match adopted {
            Ok(p) if controller_uid(&p) == Some(uid(rc)) => claimed.push(p),
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(claimed)
}

fn manage(sim: &Sim, rc: &Value, active: &[Arc<Value>], now: Timestamp) -> ApiResult<()> {
    let want = replicas(rc);
    if active.len() < want {
        for _ in 0..(want - active.len()).min(BURST_REPLICAS) {
            create_pod(sim, rc)?;
        }
    } else if active.len() > want {
        let surplus = (active.len() - want).min(BURST_REPLICAS);
        let mut on_node: HashMap<&str, usize> = HashMap::new();
        for p in active {
            *on_node
                .entry(p["spec"]["nodeName"].as_str().unwrap_or(""))
                .or_default() += 1;
        }
        let rank = |p: &Value| {
            on_node
                .get(p["spec"]["nodeName"].as_str().unwrap_or(""))
                .copied()
                .unwrap_or(0)
        };
        let mut ranked: Vec<&Arc<Value>> = active.iter().collect();
        ranked.sort_by(|a, b| compare_for_deletion(a, rank(a), b, rank(b), now));
        for pod in ranked.into_iter().take(surplus) {
            delete_pod(sim, rc, pod)?;
        }
    }
    Ok(())
}

fn create_pod(sim: &Sim, rc: &Value) -> ApiResult<()> {
    match api::create_object(sim, pod_from_template(rc)) {
        Ok(pod) => {
            let msg = format!("Created pod: {}", name(&pod));
            events::record(
                sim,
                rc,
                None,
                "Normal",
                "SuccessfulCreate",
                &msg,
                Source::Controller(COMPONENT),
            );
            Ok(())
        }
        Err(e) => {
            let msg = format!("Error creating: {}", e.message);
            events::record(
                sim,
                rc,
                None,
                "Warning",
                "FailedCreate",
                &msg,
                Source::Controller(COMPONENT),
            );
            Err(e)
        }
    }
}

fn delete_pod(sim: &Sim, rc: &Value, pod: &Value) -> ApiResult<()> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    match api::delete_object(sim, res("pods"), ns, name(pod), &DeleteOptions::default()) {
        Ok(_) => {
            let msg = format!("Deleted pod: {}", name(pod));
            events::record(
                sim,
                rc,
                None,
                "Normal",
                "SuccessfulDelete",
                &msg,
                Source::Controller(COMPONENT),
            );
            Ok(())
        }
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => {
            let msg = format!("Error deleting: {}", e.message);
            events::record(
                sim,
                rc,
                None,
                "Warning",
                "FailedDelete",
                &msg,
                Source::Controller(COMPONENT),
            );
            Err(e)
        }
    }
}

/// Upstream `calculateStatus` in the RC's shape (no `terminatingReplicas`;
/// `replicas` always, the other counters when non-zero).
fn calculate_status(
    rc: &Value,
    active: &[Arc<Value>],
    manage_err: Option<&ApiError>,
    now: Timestamp,
) -> Value {
    let template_labels = &rc["spec"]["template"]["metadata"]["labels"];
    let min_ready = min_ready_seconds(rc);
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels.as_object().is_none_or(|w| {
                w.iter()
                    .all(|(k, v)| p["metadata"]["labels"].get(k) == Some(v))
            })
        })
        .count();
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| is_available(p, min_ready, now))
        .count();

    let mut conditions: Vec<Value> = rc["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c["type"] == REPLICA_FAILURE);
    match manage_err {
        Some(e) if !has_failure => {
            let reason = if active.len() < replicas(rc) {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            conditions.push(
                json!({"type": REPLICA_FAILURE, "status": "True", "reason": reason,
                "message": e.message, "lastTransitionTime": fmt_time(now)}),
            );
        }
        None if has_failure => conditions.retain(|c| c["type"] != REPLICA_FAILURE),
        _ => {}
    }
    let mut st = Map::new();
    st.insert("replicas".into(), json!(active.len()));
    let mut put = |k: &str, v: usize| {
        if v > 0 {
            st.insert(k.into(), json!(v));
        }
    };
    put("fullyLabeledReplicas", fully_labeled);
    put("readyReplicas", ready);
    put("availableReplicas", available);
    if let Some(g) = rc["metadata"]["generation"].as_i64().filter(|g| *g != 0) {
        st.insert("observedGeneration".into(), json!(g));
    }
    if !conditions.is_empty() {
        st.insert("conditions".into(), Value::Array(conditions));
    }
    Value::Object(st)
}

#[cfg(test)]
mod tests {
    use super::*;

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
