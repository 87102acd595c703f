//! FailedScheduling: insufficient cpu/memory with the pod's request and
//! the free room of the best node (computed from the nodes' allocatable and
//! the requests of the pods bound to them), untolerated taints, nodeSelector
//! or node affinity that no node matches — and the fixes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodTemplateSpec};

use super::{Cluster, Words};
use crate::k8s::placement::ineligible;
use crate::k8s::quantity::{bytes, cpu_millis, fmt_bytes, fmt_cpu, pod_requests};

/// The free room of one node for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub node: String,
    pub allocatable: i64,
    pub used: i64,
}

impl Room {
    pub fn free(&self) -> i64 {
        self.allocatable - self.used
    }
}

/// For `resource` ("cpu" or "memory"): the eligible node with the most free
/// room, counting the requests of the non-terminated pods bound to it.
pub fn best_node(spec: &PodSpec, nodes: &[Node], pods: &[Pod], resource: &str) -> Option<Room> {
    let parse = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        if resource == "cpu" {
            cpu_millis(q)
        } else {
            bytes(q)
        }
    };
    let mut used: BTreeMap<&str, i64> = BTreeMap::new();
    for p in pods {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(s) = &p.spec else { continue };
        let Some(node) = s.node_name.as_deref() else {
            continue;
        };
        let r = pod_requests(s);
        *used.entry(node).or_default() += if resource == "cpu" { r.cpu } else { r.memory };
    }
    nodes
        .iter()
        .filter(|n| ineligible(spec, n).is_none())
        .filter_map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let alloc = n
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .and_then(|a| a.get(resource))
                .and_then(parse)?;
            Some(Room {
                used: used.get(name.as_str()).copied().unwrap_or(0),
                node: name,
                allocatable: alloc,
            })
        })
        .max_by_key(|r| (r.free(), std::cmp::Reverse(r.node.clone())))
}

/// `{dedicated: gpu}` from "node(s) had untolerated taint {dedicated: gpu}".
fn taints_in(message: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(i) = rest.find("untolerated taint") {
        rest = &rest[i + "untolerated taint".len()..];
        let Some(open) = rest.find('{') else { break };
        let Some(close) = rest.find('}') else { break };
        if close < open {
            break;
        }
        let inner = &rest[open + 1..close];
        let (k, v) = inner.split_once(':').unwrap_or((inner, ""));
        let t = (k.trim().to_string(), v.trim().to_string());
        if !out.contains(&t) {
            out.push(t);
        }
        rest = &rest[close..];
    }
    out
}

fn fmt(resource: &str, v: i64) -> String {
    if resource == "cpu" {
        fmt_cpu(v)
    } else {
        fmt_bytes(v)
    }
}

/// The advice for new pods that do not fit on the nodes, the same for the
/// pre-flight check and for the diagnosis of a rollout: `requests` names
/// the requests to lower; `surge_first` when surge alone is the problem.
pub fn capacity_fix(requests: &str, surge_first: bool) -> String {
    const SURGE: &str =
        "(spec.strategy.rollingUpdate.maxSurge: 0 with maxUnavailable: 1 replaces pods in place)";
    if surge_first {
        format!(
            "Reduce surge {SURGE}, lower {requests}, run fewer replicas (spec.replicas), or add nodes (or free capacity on them)."
        )
    } else {
        format!(
            "Lower {requests}, run fewer replicas (spec.replicas) or less surge {SURGE}, or add nodes (or free capacity on them)."
        )
    }
}

pub(crate) fn words(message: &str, template: Option<&PodTemplateSpec>, cluster: &Cluster) -> Words {
    let spec = template.and_then(|t| t.spec.as_ref());
    let mut said: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    let note = cluster
        .unavailable
        .as_deref()
        .map(|why| format!(" ({why})"));

    // Insufficient cpu / memory.
    let mut short = Vec::new();
    for resource in ["cpu", "memory"] {
        if !message.contains(&format!("Insufficient {resource}")) {
            continue;
        }
        let requested = spec.map(|s| {
            let r = pod_requests(s);
            if resource == "cpu" { r.cpu } else { r.memory }
        });
        let room = match (spec, &cluster.nodes, &cluster.pods) {
            (Some(s), Some(nodes), Some(pods)) => best_node(s, nodes, pods, resource),
            _ => None,
        };
        let text = match (requested, room) {
            (Some(req), Some(room)) => format!(
                "not enough {resource} on any node: requested {}, best node has {} free ({} of {} used on {}{})",
                fmt(resource, req),
                fmt(resource, room.free().max(0)),
                fmt(resource, room.used),
                fmt(resource, room.allocatable),
                room.node,
                if cluster.pods_namespace_only {
                    format!(
                        ", counting only the pods of namespace {}",
                        cluster.namespace
                    )
                } else {
                    String::new()
                }
            ),
            (Some(req), None) => format!(
                "not enough {resource} on any node: requested {}, more than any node has free{}",
                fmt(resource, req),
                note.clone().unwrap_or_default()
            ),
            _ => format!("not enough {resource} free on any node"),
        };
        short.push((resource, text));
    }
    if !short.is_empty() {
        said.push(
            short
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        );
        // Name the requests to lower: `resources.requests.cpu of container web (100m)`.
        let mut fields: Vec<String> = Vec::new();
        for (r, _) in &short {
            let named: Vec<String> = spec
                .map(|s| {
                    s.containers
                        .iter()
                        .filter_map(|c| {
                            super::resource(Some(c), "requests", r)
                                .map(|q| format!("{} ({q})", c.name))
                        })
                        .collect()
                })
                .unwrap_or_default();
            fields.push(if named.is_empty() {
                format!("resources.requests.{r}")
            } else {
                format!("resources.requests.{r} of container {}", named.join(", "))
            });
        }
        fixes.push(capacity_fix(
            &format!("{} in spec.template.spec.containers", fields.join(" and ")),
            false,
        ));
    }

    // Untolerated taints.
    for (key, value) in taints_in(message) {
        let effect = cluster
            .nodes
            .iter()
            .flatten()
            .filter_map(|n| n.spec.as_ref()?.taints.as_ref())
            .flatten()
            .find(|t| t.key == key && t.value.as_deref().unwrap_or("") == value)
            .map(|t| t.effect.clone())
            .unwrap_or_else(|| "NoSchedule".into());
        let taint = if value.is_empty() {
            format!("{key}:{effect}")
        } else {
            format!("{key}={value}:{effect}")
        };
        said.push(format!(
            "the nodes have the taint {taint} and the pods do not tolerate it"
        ));
        let value_part = if value.is_empty() {
            "operator: Exists".to_string()
        } else {
            format!("operator: Equal, value: {value}")
        };
        fixes.push(format!(
            "If the pods belong on those nodes, add to spec.template.spec.tolerations: {{key: {key}, {value_part}, effect: {effect}}}; otherwise remove the taint (kubectl taint nodes NODE {taint}-) or add nodes without it."
        ));
    }

    // nodeSelector / required node affinity.
    if message.contains("didn't match Pod's node affinity/selector") {
        let selector = spec
            .and_then(|s| s.node_selector.as_ref())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        match selector {
            Some(sel) => {
                said.push(format!(
                    "spec.template.spec.nodeSelector asks for {sel} and no node has those labels"
                ));
                fixes.push(format!(
                    "Label the nodes meant for these pods (kubectl label nodes NODE {}), or fix spec.template.spec.nodeSelector.",
                    sel.replace(',', " ")
                ));
            }
            None => {
                said.push("no node matches the pods' required node affinity (spec.template.spec.affinity.nodeAffinity)".into());
                fixes.push("Fix spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution, or label the nodes it should match.".into());
            }
        }
    }

    if message.contains("Too many pods") {
        said.push("the nodes are at their pod limit".into());
        fixes.push("Run fewer replicas or less surge (spec.strategy.rollingUpdate.maxSurge), or add nodes.".into());
    }
    if message.contains("were unschedulable") {
        said.push("some nodes are cordoned".into());
        fixes.push("Uncordon the nodes (kubectl uncordon NODE) once their maintenance is done, or add nodes.".into());
    }

    if said.is_empty() {
        return Words {
            summary: format!("the new pods cannot be scheduled: {message}"),
            fix: "Lower the pods' resource requests, run fewer replicas or less surge (spec.strategy.rollingUpdate.maxSurge), or add nodes; check the pod template's tolerations, nodeSelector and affinity against the nodes.".into(),
        };
    }
    Words {
        summary: format!("the new pods cannot be scheduled: {}", said.join("; ")),
        fix: fixes.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"}}}))
        .unwrap()
    }

    fn pod(node: &str, cpu: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Running"}}))
        .unwrap()
    }

    #[test]
    fn the_schedulers_numbers_for_a_full_node() {
        let spec: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "web", "resources": {"requests": {"cpu": "100m"}}}]}}))
        .unwrap();
        let cluster = Cluster {
            namespace: "default".into(),
            nodes: Some(vec![node("node-1", "1")]),
            pods: Some(vec![pod("node-1", "870m"), pod("node-1", "100m")]),
            ..Default::default()
        };
        let w = words(
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
            Some(&spec),
            &cluster,
        );
        assert!(
            w.summary
                .contains("not enough cpu on any node: requested 100m, best node has 30m free (970m of 1000m used on node-1)"),
            "{}",
            w.summary
        );
        assert!(w.fix.contains("maxSurge"));
    }

    #[test]
    fn forbidden_node_list_is_said() {
        let spec: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "web", "resources": {"requests": {"cpu": "100m"}}}]}}))
        .unwrap();
        let cluster = Cluster {
            unavailable: Some("node capacity unknown: listing nodes is forbidden".into()),
            ..Default::default()
        };
        let w = words(
            "0/1 nodes are available: 1 Insufficient cpu.",
            Some(&spec),
            &cluster,
        );
        assert!(w.summary.contains("requested 100m, more than any node has free (node capacity unknown: listing nodes is forbidden)"), "{}", w.summary);
        assert!(
            w.fix
                .contains("resources.requests.cpu of container web (100m)"),
            "{}",
            w.fix
        );
    }

    #[test]
    fn taints_are_named() {
        assert_eq!(
            taints_in(
                "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
            ),
            vec![("dedicated".to_string(), "gpu".to_string())]
        );
        let w = words(
            "0/2 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}.",
            None,
            &Cluster::default(),
        );
        assert!(
            w.fix
                .contains("{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}"),
            "{}",
            w.fix
        );
    }
}
