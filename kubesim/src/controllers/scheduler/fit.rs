//! The scheduler's filters and score (default profile): NodeUnschedulable,
//! TaintToleration, NodeAffinity, NodeResourcesFit, least-allocated scoring,
//! and the upstream `FitError` message of a pod that fits nowhere.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::quantity;

/// Resource requests of a pod: cpu millicores, memory bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu: i64,
    pub memory: i64,
}

pub(super) fn container_requests(c: &Value) -> Requests {
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
pub(super) struct Usage {
    pub(super) cpu: i64,
    pub(super) memory: i64,
    /// Requests with the scheduler's non-zero defaults, for scoring.
    pub(super) score_cpu: i64,
    pub(super) score_memory: i64,
    pub(super) pods: i64,
}

pub(super) struct NodeInfo {
    pub(super) name: String,
    pub(super) obj: std::sync::Arc<Value>,
    pub(super) alloc_cpu: i64,
    pub(super) alloc_memory: i64,
    pub(super) alloc_pods: i64,
    pub(super) usage: Usage,
}

/// The scheduler's defaults for pods without requests (scoring only).
pub(super) const DEFAULT_CPU: i64 = 100;

pub(super) const DEFAULT_MEMORY: i64 = 200 << 20;

pub(super) fn node_info(n: &std::sync::Arc<Value>) -> NodeInfo {
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

pub(super) fn add_usage(u: &mut Usage, pod: &Value) {
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
pub(super) struct Rejection {
    pub(super) reasons: Vec<String>,
    pub(super) resolvable: bool,
}

/// Whether one of `tolerations` tolerates `taint`.
pub(crate) fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
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

pub(super) fn match_expression(labels: &Value, e: &Value) -> bool {
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

pub(super) fn matches_node_affinity(pod: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    if let Some(sel) = pod["spec"]["nodeSelector"].as_object()
        && !sel.iter().all(|(k, v)| labels[k].as_str() == v.as_str())
    {
        return false;
    }
    required_node_affinity_matches(&pod["spec"], node)
}

/// A pod spec's required node affinity against a node (no terms: true).
pub(crate) fn required_node_affinity_matches(spec: &Value, node: &Value) -> bool {
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

pub(super) fn filter(pod: &Value, req: Requests, node: &NodeInfo) -> Result<(), Rejection> {
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
pub(super) fn score(node: &NodeInfo, req: Requests) -> i64 {
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

pub(super) fn histogram(counts: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = counts.iter().map(|(r, c)| format!("{c} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// The upstream `FitError` message for a pod that fits on no node.
pub(super) fn fit_error(pod: &Value, total: usize, rejections: &[Rejection]) -> String {
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
