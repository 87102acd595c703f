//! The DaemonSet controller, after upstream
//! `pkg/controller/daemon/{daemon_controller.go,update.go}` and
//! `pkg/controller/daemon/util/`: one pod per eligible node (nodeSelector,
//! required node affinity, taints against the template's tolerations plus
//! the default daemon tolerations), pinned with the required node affinity
//! `metadata.name In [node]` and placed by the scheduler; RollingUpdate in
//! `update.rs`; revisions as ControllerRevisions `<ds>-<hash>`.

mod update;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub use self::update::TEMPLATE_GENERATION_LABEL;
use self::update::{is_updated, max_surge_value, min_ready_seconds, rolling, rolling_update};
use super::history::{self, REVISION_HASH_LABEL};
use super::meta::{
    by_creation, controller_uid, is_deleting, keep_conditions, listed, name, selector_matches,
    write_status,
};
use super::next::Next;
use super::pods::{available_at, is_available, is_ready};
use super::replicaset::pod_from_template;
use super::{pods, scheduler};
use crate::error::ApiResult;
use crate::resources::res;
use crate::sim::Sim;

const COMPONENT: &str = "daemonset-controller";

pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

pub fn reconcile(sim: &Sim) -> Next {
    let Some(sets) = listed(sim, "daemonsets.apps") else {
        return Next::default();
    };
    let (nodes, _) = sim.store.list(res("nodes"), None);
    pods::sync_owners(sim, &sets, "daemonset", |ds, owned, _, now| {
        sync(sim, ds, &nodes, owned, now)
    })
}

// ---------------------------------------------------------------- eligibility

/// Upstream `AddOrUpdateDaemonPodTolerations`, in upstream's order.
pub fn default_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

fn pod_tolerations(template_spec: &Value) -> Vec<Value> {
    let mut t: Vec<Value> = template_spec["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for d in default_tolerations(template_spec["hostNetwork"].as_bool() == Some(true)) {
        let dup = t.iter().any(|x| {
            x["key"] == d["key"] && x["effect"] == d["effect"] && x["operator"] == d["operator"]
        });
        if !dup {
            t.push(d);
        }
    }
    t
}

/// The template's nodeSelector and required node affinity against a node.
fn fits_node(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    if let Some(sel) = spec["nodeSelector"].as_object()
        && !sel.iter().all(|(k, v)| labels[k.as_str()] == *v)
    {
        return false;
    }
    scheduler::required_node_affinity_matches(spec, node)
}

/// Upstream `NodeShouldRunDaemonPod`: (should run, should continue running).
pub fn node_should_run(ds: &Value, node: &Value) -> (bool, bool) {
    let spec = &ds["spec"]["template"]["spec"];
    if let Some(n) = spec["nodeName"].as_str()
        && !n.is_empty()
        && n != name(node)
    {
        return (false, false);
    }
    if !fits_node(spec, node) {
        return (false, false);
    }
    let tolerations = pod_tolerations(spec);
    let mut run = true;
    let mut keep = true;
    for taint in node["spec"]["taints"].as_array().into_iter().flatten() {
        if scheduler::tolerates(&tolerations, taint) {
            continue;
        }
        match taint["effect"].as_str() {
            Some("NoSchedule") => run = false,
            Some("NoExecute") => {
                run = false;
                keep = false;
            }
            _ => {}
        }
    }
    (run, keep)
}

/// The node a daemon pod targets: its nodeName, or the node of its
/// `metadata.name In [node]` affinity (upstream `GetTargetNodeName`).
pub fn target_node(pod: &Value) -> Option<&str> {
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()?
        .iter()
        .flat_map(|t| t["matchFields"].as_array().into_iter().flatten())
        .find(|f| f["key"] == "metadata.name" && f["operator"] == "In")?["values"][0]
        .as_str()
}

// ---------------------------------------------------------------- sync

fn template_generation(ds: &Value) -> i64 {
    ds["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION]
        .as_str()
        .and_then(|g| g.parse().ok())
        .or_else(|| ds["metadata"]["generation"].as_i64())
        .unwrap_or(1)
}

/// Claim: owned pods still matching the selector, plus adopted orphans.
fn claim(sim: &Sim, ds: &Value, owned: Vec<Arc<Value>>) -> Vec<Arc<Value>> {
    let selector = &ds["spec"]["selector"];
    let ns = ds["metadata"]["namespace"].as_str().unwrap_or("");
    let mut claimed: Vec<Arc<Value>> = owned
        .into_iter()
        .filter(|p| selector_matches(selector, &p["metadata"]["labels"]) || is_deleting(p))
        .collect();
    let (pods, _) = sim.store.list(res("pods"), Some(ns));
    claimed.extend(pods::adopt_all(
        sim,
        ds,
        pods.iter().filter(|o| {
            controller_uid(o).is_none()
                && !is_deleting(o)
                && selector_matches(selector, &o["metadata"]["labels"])
        }),
    ));
    claimed
}

fn sync(
    sim: &Sim,
    ds: &Arc<Value>,
    nodes: &[Arc<Value>],
    owned: Vec<Arc<Value>>,
    now: Timestamp,
) -> ApiResult<Option<Timestamp>> {
    let pods = claim(sim, ds, owned);
    let collision = ds["status"]["collisionCount"].as_i64().unwrap_or(0) as i32;
    let (cur_rev, collision, revisions) = history::ensure(
        sim,
        ds,
        history::patch_of(ds),
        ds["spec"]["template"].clone(),
        REVISION_HASH_LABEL,
        collision,
    )?;
    let hash = cur_rev["metadata"]["labels"][REVISION_HASH_LABEL]
        .as_str()
        .unwrap_or("")
        .to_string();
    let generation = template_generation(ds);

    // Pods by target node (BTreeMap: deterministic order).
    let mut by_node: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
    for p in &pods {
        if let Some(n) = target_node(p) {
            by_node.entry(n.to_string()).or_default().push(p.clone());
        }
    }
    for list in by_node.values_mut() {
        list.sort_by(|a, b| by_creation(a, b));
    }
    let eligibility: Vec<(&str, bool, bool)> = nodes
        .iter()
        .filter(|n| !is_deleting(n))
        .map(|n| {
            let (run, keep) = node_should_run(ds, n);
            (name(n), run, keep)
        })
        .collect();
    let surge_mode = rolling(ds) && max_surge_value(ds) != 0;

    // Upstream `manage` / `podsShouldBeOnNode`.
    let mut create_on: Vec<String> = Vec::new();
    let mut delete: Vec<Arc<Value>> = Vec::new();
    for (node, run, keep) in &eligibility {
        let on_node = by_node.get(*node).map(Vec::as_slice).unwrap_or(&[]);
        if *run && on_node.is_empty() {
            create_on.push(node.to_string());
        } else if *keep {
            let mut running: Vec<&Arc<Value>> = Vec::new();
            for p in on_node.iter().filter(|p| !is_deleting(p)) {
                if p["status"]["phase"] == "Failed" {
                    delete.push(p.clone());
                } else {
                    running.push(p);
                }
            }
            if !surge_mode {
                delete.extend(running.iter().skip(1).map(|p| (*p).clone()));
            } else {
                let (mut newest, mut oldest) = (false, false);
                for p in running {
                    let slot = if is_updated(p, &hash, generation) {
                        &mut newest
                    } else {
                        &mut oldest
                    };
                    if *slot {
                        delete.push(p.clone());
                    }
                    *slot = true;
                }
            }
        } else {
            delete.extend(on_node.iter().filter(|p| !is_deleting(p)).cloned());
        }
    }
    // Pods on nodes that are gone or not eligible at all.
    for (node, list) in &by_node {
        if !eligibility.iter().any(|(n, _, _)| n == node) {
            delete.extend(list.iter().filter(|p| !is_deleting(p)).cloned());
        }
    }

    let desired = eligibility.iter().filter(|(_, run, _)| *run).count() as i32;
    if create_on.is_empty() && delete.is_empty() && rolling(ds) {
        let (creates, deletes) =
            rolling_update(ds, &eligibility, &by_node, &hash, generation, desired, now);
        create_on = creates;
        delete = deletes;
    }
    for node in &create_on {
        pods::create(sim, ds, COMPONENT, pod_for(ds, node, &hash, generation))?;
    }
    for pod in &delete {
        pods::delete(sim, ds, COMPONENT, pod)?;
    }

    // Status (upstream `updateDaemonSetStatus`).
    let min_ready = min_ready_seconds(ds);
    let (mut current, mut misscheduled, mut ready, mut available, mut updated) = (0, 0, 0, 0, 0);
    let mut wake: Option<Timestamp> = None;
    for (node, run, _) in &eligibility {
        let on_node: Vec<&Arc<Value>> = by_node
            .get(*node)
            .into_iter()
            .flatten()
            .filter(|p| !is_deleting(p))
            .collect();
        if *run {
            let Some(pod) = on_node.first() else {
                continue;
            };
            current += 1;
            if is_ready(pod) {
                ready += 1;
                if is_available(pod, min_ready, now) {
                    available += 1;
                } else if let Some(t) = available_at(pod, min_ready) {
                    wake = Some(wake.map_or(t, |w: Timestamp| w.min(t)));
                }
            }
            if is_updated(pod, &hash, generation) {
                updated += 1;
            }
        } else if !on_node.is_empty() {
            misscheduled += 1;
        }
    }
    let mut st = Map::new();
    st.insert("currentNumberScheduled".into(), json!(current));
    st.insert("numberMisscheduled".into(), json!(misscheduled));
    st.insert("desiredNumberScheduled".into(), json!(desired));
    st.insert("numberReady".into(), json!(ready));
    let mut put = |k: &str, v: i64| {
        if v != 0 {
            st.insert(k.into(), json!(v));
        }
    };
    put(
        "observedGeneration",
        ds["metadata"]["generation"].as_i64().unwrap_or(0),
    );
    put("updatedNumberScheduled", updated);
    put("numberAvailable", available);
    put("numberUnavailable", i64::from(desired) - available);
    put("collisionCount", i64::from(collision));
    keep_conditions(&mut st, ds);
    let status = Value::Object(st);
    write_status(sim, "daemonsets.apps", ds, &status)?;

    let mut in_use: Vec<String> = pods
        .iter()
        .filter_map(|p| p["metadata"]["labels"][REVISION_HASH_LABEL].as_str())
        .map(|h| format!("{}-{h}", name(ds)))
        .collect();
    in_use.push(name(&cur_rev).to_string());
    let in_use: Vec<&str> = in_use.iter().map(String::as_str).collect();
    let limit = ds["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
    history::truncate(sim, &revisions, &in_use, limit);
    Ok(wake)
}

/// Upstream `NewPod` + `syncNodes`: the template with the revision labels,
/// the node-name affinity and the daemon tolerations.
pub fn pod_for(ds: &Value, node: &str, hash: &str, generation: i64) -> Value {
    let mut pod = pod_from_template(ds);
    let mut labels = pod["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), json!(hash));
    labels.insert(
        TEMPLATE_GENERATION_LABEL.into(),
        json!(generation.to_string()),
    );
    pod["metadata"]["labels"] = Value::Object(labels);
    let tolerations = pod_tolerations(&pod["spec"]);
    if let Some(spec) = pod["spec"].as_object_mut() {
        spec.insert("tolerations".into(), Value::Array(tolerations));
        let mut affinity = spec.get("affinity").cloned().unwrap_or_else(|| json!({}));
        if !affinity.is_object() {
            affinity = json!({});
        }
        if !affinity["nodeAffinity"].is_object() {
            affinity["nodeAffinity"] = json!({});
        }
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
            "nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}
            ]}]
        });
        spec.insert("affinity".into(), affinity);
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::daemonset::update::surge_and_unavailable;

    fn ds() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "uid": "u", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a"}]}}}})
    }

    #[test]
    fn pod_shape_matches_fixture() {
        let p = pod_for(&ds(), "node-2", "5fd4596745", 2);
        assert_eq!(p["metadata"]["generateName"], "agent-");
        assert_eq!(p["metadata"]["labels"][REVISION_HASH_LABEL], "5fd4596745");
        assert_eq!(p["metadata"]["labels"][TEMPLATE_GENERATION_LABEL], "2");
        assert_eq!(
            p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0],
            "node-2"
        );
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 6);
        assert_eq!(target_node(&p), Some("node-2"));
    }

    #[test]
    fn taints_and_selectors() {
        let d = ds();
        let node = |taints: Value, labels: Value| json!({"metadata": {"name": "n", "labels": labels}, "spec": {"taints": taints}});
        assert_eq!(
            node_should_run(&d, &node(json!([]), json!({}))),
            (true, true)
        );
        let ns = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        assert_eq!(node_should_run(&d, &node(ns, json!({}))), (false, true));
        let ne = json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]);
        assert_eq!(node_should_run(&d, &node(ne, json!({}))), (false, false));
        let cordoned = json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]);
        assert_eq!(
            node_should_run(&d, &node(cordoned, json!({}))),
            (true, true)
        );
        let mut sel = ds();
        sel["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        assert_eq!(
            node_should_run(&sel, &node(json!([]), json!({"disk": "hdd"}))),
            (false, false)
        );
        assert_eq!(
            node_should_run(&sel, &node(json!([]), json!({"disk": "ssd"}))),
            (true, true)
        );
    }

    #[test]
    fn fenceposts() {
        let mut d = ds();
        d["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}});
        assert_eq!(surge_and_unavailable(&d, 3), (0, 1));
        d["spec"]["updateStrategy"]["rollingUpdate"] =
            json!({"maxSurge": "50%", "maxUnavailable": 0});
        assert_eq!(surge_and_unavailable(&d, 3), (2, 0));
        d["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": 0});
        assert_eq!(surge_and_unavailable(&d, 3), (0, 1));
    }
}
