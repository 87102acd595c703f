//! The scheduler (`default-scheduler`) and the simulated Node objects.
//!
//! Each pass binds every pending pod it can, in priority then creation
//! order, with the filters of the default profile that matter here
//! (NodeUnschedulable, TaintToleration, NodeAffinity for `nodeSelector` and
//! required node affinity, NodeResourcesFit for cpu/memory/pods) and a
//! least-allocated score. A pod that fits nowhere gets `PodScheduled=False`
//! `Unschedulable` with the upstream `FitError` message and a
//! `FailedScheduling` event, written only when the message changes; any store
//! change (a pod removed, a node added) re-runs the pass, which is the
//! upstream queue's "move on cluster event" in level-triggered form.
//!
//! The filters and score are in `fit`, the Node objects in `controllers::nodes`.

mod fit;

use std::collections::HashMap;

use serde_json::{Value, json};

use self::fit::{NodeInfo, add_usage, filter, fit_error, node_info, score};
pub use self::fit::{Requests, pod_requests};
pub(super) use self::fit::{required_node_affinity_matches, tolerates};
use super::events;
use super::next::Next;
use crate::clock::fmt_time;
use crate::resources::res;
use crate::sim::Sim;

fn phase_terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn is_pending_for_us(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && pod["metadata"]["deletionTimestamp"].is_null()
        && !phase_terminal(pod)
        && pod["spec"]["schedulerName"]
            .as_str()
            .is_none_or(|s| s.is_empty() || s == "default-scheduler")
}

/// The nodes with what their bound pods use.
fn with_usage(
    node_objs: &[std::sync::Arc<Value>],
    pods: &[std::sync::Arc<Value>],
) -> Vec<NodeInfo> {
    let mut nodes: Vec<NodeInfo> = node_objs.iter().map(node_info).collect();
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    for p in pods {
        let Some(node) = p["spec"]["nodeName"].as_str() else {
            continue;
        };
        if phase_terminal(p) {
            continue;
        }
        if let Some(&i) = index.get(node) {
            add_usage(&mut nodes[i].usage, p);
        }
    }
    nodes
}

pub fn reconcile(sim: &Sim) -> Next {
    let pods_rt = res("pods");
    let (pods, _) = sim.store.list(pods_rt, None);
    let mut pending: Vec<&std::sync::Arc<Value>> =
        pods.iter().filter(|p| is_pending_for_us(p)).collect();
    if pending.is_empty() {
        return Next::default();
    }
    let (node_objs, _) = sim.store.list(res("nodes"), None);
    let mut nodes = with_usage(&node_objs, &pods);
    pending.sort_by(|a, b| {
        let pa = a["spec"]["priority"].as_i64().unwrap_or(0);
        let pb = b["spec"]["priority"].as_i64().unwrap_or(0);
        pb.cmp(&pa).then_with(|| {
            a["metadata"]["creationTimestamp"]
                .as_str()
                .cmp(&b["metadata"]["creationTimestamp"].as_str())
        })
    });
    for pod in pending {
        schedule_one(sim, pod, &mut nodes);
    }
    Next::default()
}

/// A node shaped like `template` for a what-if placement (the cluster
/// autoscaler's template node): its free capacity as pods are added.
pub struct WhatIfNode(NodeInfo);

impl WhatIfNode {
    /// An empty node of `template`'s shape, labels and taints.
    pub fn empty(template: &std::sync::Arc<Value>) -> Self {
        Self(node_info(template))
    }

    /// The cluster's nodes as they are, with what their bound pods use.
    pub fn existing(nodes: &[std::sync::Arc<Value>], pods: &[std::sync::Arc<Value>]) -> Vec<Self> {
        with_usage(nodes, pods).into_iter().map(Self).collect()
    }

    /// Whether `pod` fits now: Ok, or the scheduler's reasons (e.g.
    /// "Insufficient cpu", "node(s) didn't match Pod's node affinity/selector").
    pub fn fits(&self, pod: &Value) -> Result<(), Vec<String>> {
        filter(pod, pod_requests(pod), &self.0).map_err(|r| r.reasons)
    }

    /// Count `pod` as placed here.
    pub fn place(&mut self, pod: &Value) {
        add_usage(&mut self.0.usage, pod);
    }
}

fn schedule_one(sim: &Sim, pod: &std::sync::Arc<Value>, nodes: &mut [NodeInfo]) {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let req = pod_requests(pod);
    let mut rejections = Vec::new();
    let mut best: Option<(i64, usize)> = None;
    for (i, node) in nodes.iter().enumerate() {
        match filter(pod, req, node) {
            Ok(()) => {
                let s = score(node, req);
                // Ties go to the node with fewer pods, then the first by name.
                let better = match best {
                    None => true,
                    Some((bs, bi)) => s > bs || (s == bs && node.usage.pods < nodes[bi].usage.pods),
                };
                if better {
                    best = Some((s, i));
                }
            }
            Err(r) => rejections.push(r),
        }
    }
    let now = sim.clock.now();
    let generation = pod["metadata"]["generation"].as_i64().unwrap_or(1);
    match best {
        Some((_, i)) => {
            let node_name = nodes[i].name.clone();
            let result = sim.store.modify(res("pods"), &ns, &name, |p| {
                if !p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
                    return Ok(false);
                }
                p["spec"]["nodeName"] = json!(node_name);
                set_condition(
                    p,
                    json!({
                        "lastProbeTime": null,
                        "lastTransitionTime": fmt_time(now),
                        "status": "True",
                        "type": "PodScheduled",
                    }),
                );
                Ok(true)
            });
            if let Ok(bound) = result {
                add_usage(&mut nodes[i].usage, pod);
                events::record_new(
                    sim,
                    &bound,
                    "Normal",
                    "Scheduled",
                    "Binding",
                    &format!("Successfully assigned {ns}/{name} to {node_name}"),
                    "default-scheduler",
                );
            }
        }
        None => {
            let msg = fit_error(pod, nodes.len(), &rejections);
            let cur = pod["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"));
            if cur.is_some_and(|c| {
                c["message"].as_str() == Some(msg.as_str()) && c["status"] == "False"
            }) {
                return;
            }
            let transition = match cur {
                Some(c) if c["status"] == "False" => c["lastTransitionTime"].clone(),
                _ => json!(fmt_time(now)),
            };
            let result = sim.store.modify(res("pods"), &ns, &name, |p| {
                set_condition(
                    p,
                    json!({
                        "lastProbeTime": null,
                        "lastTransitionTime": transition,
                        "message": msg,
                        "observedGeneration": generation,
                        "reason": "Unschedulable",
                        "status": "False",
                        "type": "PodScheduled",
                    }),
                );
                if p["status"]["phase"].is_null() {
                    p["status"]["phase"] = json!("Pending");
                }
                if p["status"]["qosClass"].is_null() {
                    p["status"]["qosClass"] = json!(crate::api::defaults::qos_class(&p["spec"]));
                }
                Ok(true)
            });
            if let Ok(updated) = result {
                events::record_new(
                    sim,
                    &updated,
                    "Warning",
                    "FailedScheduling",
                    "Scheduling",
                    &msg,
                    "default-scheduler",
                );
            }
        }
    }
}

/// Replace (or append) a pod condition by type.
pub fn set_condition(pod: &mut Value, cond: Value) {
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let status = &mut pod["status"];
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(cs) = status["conditions"].as_array_mut() {
        match cs.iter_mut().find(|c| c["type"] == cond["type"]) {
            Some(c) => *c = cond,
            None => cs.push(cond),
        }
    }
}
