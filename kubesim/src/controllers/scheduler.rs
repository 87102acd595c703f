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

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::events;
use super::next::Next;
use super::quantity;
use crate::clock::fmt_time;
use crate::resources::res;
use crate::sim::Sim;

/// The kubelet version the simulated nodes report.
pub const KUBELET_VERSION: &str = "v1.36.2";

/// The number of a simulated node (`node-3` → 3); other names hash to 1..=250.
pub fn node_index(name: &str) -> u32 {
    if let Some(n) = name.rsplit('-').next().and_then(|s| s.parse::<u32>().ok())
        && (1..=250).contains(&n)
    {
        return n;
    }
    name.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        % 250
        + 1
}

/// The InternalIP of a simulated node.
pub fn node_ip(name: &str) -> String {
    format!("172.18.0.{}", node_index(name) + 1)
}

/// A Node object for a simulated node with the configured capacity.
pub fn node_object(sim: &Sim, name: &str) -> Value {
    let now = fmt_time(sim.clock.now());
    let cfg = &sim.config;
    let cpu = quantity::cpu_millis(&cfg.node_cpu)
        .map_or_else(|| cfg.node_cpu.clone(), quantity::format_cpu);
    let mem = quantity::bytes(&cfg.node_memory)
        .map_or_else(|| cfg.node_memory.clone(), quantity::format_bytes);
    let resources = json!({
        "cpu": cpu,
        "ephemeral-storage": "20Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": mem,
        "pods": cfg.node_pods.to_string(),
    });
    let idx = node_index(name);
    let machine = format!(
        "{:032x}",
        u128::from(idx).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "message": message,
            "reason": reason,
            "status": status,
            "type": type_,
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "kubesim.standard",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "kubesim.standard",
            },
        },
        "spec": {
            "podCIDR": format!("10.244.{idx}.0/24"),
            "podCIDRs": [format!("10.244.{idx}.0/24")],
        },
        "status": {
            "addresses": [
                {"address": node_ip(name), "type": "InternalIP"},
                {"address": name, "type": "Hostname"},
            ],
            "allocatable": resources,
            "capacity": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": format!("{:032x}", u128::from(idx).wrapping_mul(0x2545_f491_4f6c_dd1d)),
                "containerRuntimeVersion": "containerd://2.1.4",
                "kernelVersion": "6.8.0-kubesim",
                "kubeProxyVersion": "",
                "kubeletVersion": KUBELET_VERSION,
                "machineID": machine,
                "operatingSystem": "linux",
                "osImage": "kubesim (simulated node)",
                "systemUUID": format!("{}-{}-{}-{}-{}", &machine[0..8], &machine[8..12], &machine[12..16], &machine[16..20], &machine[20..32]),
            },
        },
    })
}

/// Resource requests of a pod: cpu millicores, memory bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu: i64,
    pub memory: i64,
}

fn container_requests(c: &Value) -> Requests {
    let get = |r: &str| {
        c["resources"]["requests"][r]
            .as_str()
            .or_else(|| c["resources"]["limits"][r].as_str())
    };
    Requests {
        cpu: get("cpu").and_then(quantity::cpu_millis).unwrap_or(0),
        memory: get("memory").and_then(quantity::bytes).unwrap_or(0),
    }
}

/// A pod's effective requests: the sum over containers, at least the
/// largest init container's (the upstream max rule), plus overhead.
pub fn pod_requests(pod: &Value) -> Requests {
    let spec = &pod["spec"];
    let mut sum = Requests::default();
    for c in spec["containers"].as_array().into_iter().flatten() {
        let r = container_requests(c);
        sum.cpu += r.cpu;
        sum.memory += r.memory;
    }
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let r = container_requests(c);
        sum.cpu = sum.cpu.max(r.cpu);
        sum.memory = sum.memory.max(r.memory);
    }
    if let Some(o) = spec["overhead"].as_object() {
        sum.cpu += o
            .get("cpu")
            .and_then(Value::as_str)
            .and_then(quantity::cpu_millis)
            .unwrap_or(0);
        sum.memory += o
            .get("memory")
            .and_then(Value::as_str)
            .and_then(quantity::bytes)
            .unwrap_or(0);
    }
    sum
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    cpu: i64,
    memory: i64,
    /// Requests with the scheduler's non-zero defaults, for scoring.
    score_cpu: i64,
    score_memory: i64,
    pods: i64,
}

struct NodeInfo {
    name: String,
    obj: std::sync::Arc<Value>,
    alloc_cpu: i64,
    alloc_memory: i64,
    alloc_pods: i64,
    usage: Usage,
}

/// The scheduler's defaults for pods without requests (scoring only).
const DEFAULT_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 << 20;

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

pub fn reconcile(sim: &Sim) -> Next {
    let pods_rt = res("pods");
    let (pods, _) = sim.store.list(pods_rt, None);
    let mut pending: Vec<&std::sync::Arc<Value>> =
        pods.iter().filter(|p| is_pending_for_us(p)).collect();
    if pending.is_empty() {
        return Next::default();
    }
    let (node_objs, _) = sim.store.list(res("nodes"), None);
    let mut nodes: Vec<NodeInfo> = node_objs.iter().map(node_info).collect();
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    for p in &pods {
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

fn node_info(n: &std::sync::Arc<Value>) -> NodeInfo {
    let alloc = &n["status"]["allocatable"];
    NodeInfo {
        name: n["metadata"]["name"].as_str().unwrap_or("").to_string(),
        obj: n.clone(),
        alloc_cpu: alloc["cpu"]
            .as_str()
            .and_then(quantity::cpu_millis)
            .unwrap_or(0),
        alloc_memory: alloc["memory"]
            .as_str()
            .and_then(quantity::bytes)
            .unwrap_or(0),
        alloc_pods: alloc["pods"]
            .as_str()
            .and_then(quantity::value)
            .unwrap_or(110),
        usage: Usage::default(),
    }
}

/// A node shaped like `template` for a what-if placement (the cluster
/// autoscaler's template node): its free capacity as pods are added.
pub struct WhatIfNode(NodeInfo);

impl WhatIfNode {
    /// An empty node of `template`'s shape, labels and taints.
    pub fn empty(template: &std::sync::Arc<Value>) -> Self {
        Self(node_info(template))
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

fn add_usage(u: &mut Usage, pod: &Value) {
    let r = pod_requests(pod);
    u.cpu += r.cpu;
    u.memory += r.memory;
    u.score_cpu += if r.cpu == 0 { DEFAULT_CPU } else { r.cpu };
    u.score_memory += if r.memory == 0 {
        DEFAULT_MEMORY
    } else {
        r.memory
    };
    u.pods += 1;
}

/// Why one node was filtered out; `resolvable` says whether preemption
/// could help (Unschedulable) or not (UnschedulableAndUnresolvable).
struct Rejection {
    reasons: Vec<String>,
    resolvable: bool,
}

/// Whether one of `tolerations` tolerates `taint`.
pub(super) fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    let key = taint["key"].as_str().unwrap_or("");
    let value = taint["value"].as_str().unwrap_or("");
    let effect = taint["effect"].as_str().unwrap_or("");
    tolerations.iter().any(|t| {
        let t_effect = t["effect"].as_str().unwrap_or("");
        if !t_effect.is_empty() && t_effect != effect {
            return false;
        }
        let t_key = t["key"].as_str().unwrap_or("");
        let op = t["operator"].as_str().unwrap_or("Equal");
        if t_key.is_empty() {
            return op == "Exists";
        }
        if t_key != key {
            return false;
        }
        match op {
            "Exists" => true,
            _ => t["value"].as_str().unwrap_or("") == value,
        }
    })
}

fn match_expression(labels: &Value, e: &Value) -> bool {
    let key = e["key"].as_str().unwrap_or("");
    let vals: Vec<&str> = e["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let have = labels[key].as_str();
    match e["operator"].as_str().unwrap_or("") {
        "In" => have.is_some_and(|h| vals.contains(&h)),
        "NotIn" => have.is_none_or(|h| !vals.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(h), Some(v)) = (
                have.and_then(|h| h.parse::<i64>().ok()),
                vals.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if e["operator"] == "Gt" { h > v } else { h < v }
        }
        _ => false,
    }
}

fn matches_node_affinity(pod: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    if let Some(sel) = pod["spec"]["nodeSelector"].as_object()
        && !sel.iter().all(|(k, v)| labels[k].as_str() == v.as_str())
    {
        return false;
    }
    required_node_affinity_matches(&pod["spec"], node)
}

/// A pod spec's required node affinity against a node (no terms: true).
pub(super) fn required_node_affinity_matches(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let terms = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    if let Some(terms) = terms.as_array()
        && !terms.is_empty()
    {
        let name = json!({"metadata.name": node["metadata"]["name"]});
        return terms.iter().any(|t| {
            let exprs = t["matchExpressions"].as_array();
            let fields = t["matchFields"].as_array();
            if exprs.is_none_or(|e| e.is_empty()) && fields.is_none_or(|f| f.is_empty()) {
                return false;
            }
            exprs
                .into_iter()
                .flatten()
                .all(|e| match_expression(labels, e))
                && fields
                    .into_iter()
                    .flatten()
                    .all(|e| match_expression(&name, e))
        });
    }
    true
}

fn filter(pod: &Value, req: Requests, node: &NodeInfo) -> Result<(), Rejection> {
    let tolerations: Vec<Value> = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let n = &node.obj;
    let unresolvable = |r: String| {
        Err(Rejection {
            reasons: vec![r],
            resolvable: false,
        })
    };
    if n["spec"]["unschedulable"].as_bool() == Some(true)
        && !tolerates(
            &tolerations,
            &json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}),
        )
    {
        return unresolvable("node(s) were unschedulable".into());
    }
    if let Some(pinned) = pod["spec"]["nodeName"].as_str()
        && !pinned.is_empty()
        && pinned != node.name
    {
        return unresolvable("node(s) didn't match the requested node name".into());
    }
    for taint in n["spec"]["taints"].as_array().into_iter().flatten() {
        let effect = taint["effect"].as_str().unwrap_or("");
        if (effect == "NoSchedule" || effect == "NoExecute") && !tolerates(&tolerations, taint) {
            return unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or(""),
                taint["value"].as_str().unwrap_or("")
            ));
        }
    }
    if !matches_node_affinity(pod, n) {
        return unresolvable("node(s) didn't match Pod's node affinity/selector".into());
    }
    let mut reasons = Vec::new();
    if node.usage.pods + 1 > node.alloc_pods {
        reasons.push("Too many pods".to_string());
    }
    if req.cpu > 0 && node.usage.cpu + req.cpu > node.alloc_cpu {
        reasons.push("Insufficient cpu".to_string());
    }
    if req.memory > 0 && node.usage.memory + req.memory > node.alloc_memory {
        reasons.push("Insufficient memory".to_string());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            reasons,
            resolvable: true,
        })
    }
}

/// LeastAllocated: the mean free fraction of cpu and memory after placing.
fn score(node: &NodeInfo, req: Requests) -> i64 {
    let cpu = if req.cpu == 0 { DEFAULT_CPU } else { req.cpu };
    let mem = if req.memory == 0 {
        DEFAULT_MEMORY
    } else {
        req.memory
    };
    let free = |alloc: i64, used: i64| {
        if alloc <= 0 {
            0
        } else {
            ((alloc - used).max(0) * 100) / alloc
        }
    };
    free(node.alloc_cpu, node.usage.score_cpu + cpu)
        + free(node.alloc_memory, node.usage.score_memory + mem)
}

fn histogram(counts: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = counts.iter().map(|(r, c)| format!("{c} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// The upstream `FitError` message for a pod that fits on no node.
fn fit_error(pod: &Value, total: usize, rejections: &[Rejection]) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut preemption: BTreeMap<String, usize> = BTreeMap::new();
    for r in rejections {
        for reason in &r.reasons {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
        let p = if r.resolvable {
            "No preemption victims found for incoming pod."
        } else {
            "Preemption is not helpful for scheduling."
        };
        *preemption.entry(p.to_string()).or_default() += 1;
    }
    let post = if pod["spec"]["preemptionPolicy"].as_str() == Some("Never") {
        "not eligible due to preemptionPolicy=Never.".to_string()
    } else {
        // Sorted "N reason." strings joined with ", "; the final reason keeps its period.
        let mut parts: Vec<String> = preemption.iter().map(|(r, c)| format!("{c} {r}")).collect();
        parts.sort();
        let joined = parts
            .iter()
            .map(|s| s.trim_end_matches('.').to_string())
            .collect::<Vec<_>>()
            .join(", ");
        format!("0/{total} nodes are available: {joined}.")
    };
    format!(
        "0/{total} nodes are available: {}. no new claims to deallocate, preemption: {post}",
        histogram(&reasons)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: i64, used: i64) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            obj: std::sync::Arc::new(
                json!({"metadata": {"name": name, "labels": {"disk": "ssd"}}, "spec": {}}),
            ),
            alloc_cpu: cpu,
            alloc_memory: 4 << 30,
            alloc_pods: 110,
            usage: Usage {
                cpu: used,
                ..Default::default()
            },
        }
    }

    #[test]
    fn fit_error_matches_fixture_form() {
        let pod = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1200m"}}}]}});
        let nodes = [node("a", 2000, 1200), node("b", 2000, 1200)];
        let rej: Vec<Rejection> = nodes
            .iter()
            .filter_map(|n| filter(&pod, pod_requests(&pod), n).err())
            .collect();
        assert_eq!(
            fit_error(&pod, 2, &rej),
            "0/2 nodes are available: 2 Insufficient cpu. no new claims to deallocate, preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn fit_error_mixed_reasons() {
        let rej = vec![
            Rejection {
                reasons: vec!["node(s) had untolerated taint {dedicated: gpu}".into()],
                resolvable: false,
            },
            Rejection {
                reasons: vec!["Insufficient cpu".into()],
                resolvable: true,
            },
            Rejection {
                reasons: vec!["Insufficient cpu".into()],
                resolvable: true,
            },
        ];
        assert_eq!(
            fit_error(&json!({}), 3, &rej),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. no new claims to deallocate, preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn requests_init_max_and_limits_default() {
        let pod = json!({"spec": {
            "containers": [{"resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}, {"resources": {"requests": {"cpu": "0.25"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}}],
        }});
        assert_eq!(
            pod_requests(&pod),
            Requests {
                cpu: 2000,
                memory: 1 << 30
            }
        );
    }

    #[test]
    fn selectors_and_tolerations() {
        let n = node("a", 2000, 0);
        let pod = json!({"spec": {"nodeSelector": {"disk": "hdd"}}});
        assert!(filter(&pod, Requests::default(), &n).is_err());
        let pod = json!({"spec": {"nodeSelector": {"disk": "ssd"}}});
        assert!(filter(&pod, Requests::default(), &n).is_ok());
        let taint = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
        assert!(tolerates(
            &[json!({"key": "dedicated", "operator": "Equal", "value": "gpu"})],
            &taint
        ));
        assert!(tolerates(&[json!({"operator": "Exists"})], &taint));
        assert!(!tolerates(
            &[json!({"key": "dedicated", "value": "cpu"})],
            &taint
        ));
        assert!(!tolerates(
            &[json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})],
            &taint
        ));
    }
}
