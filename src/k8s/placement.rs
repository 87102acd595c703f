//! Whether a pod may go on a node at all: cordoned nodes, taints against
//! tolerations, the nodeSelector and required node affinity.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, PodSpec, Taint, Toleration};

fn tolerates(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let t_effect = t.effect.as_deref().unwrap_or("");
        if !t_effect.is_empty() && t_effect != effect {
            return false;
        }
        let t_key = t.key.as_deref().unwrap_or("");
        let exists = t.operator.as_deref() == Some("Exists");
        if t_key.is_empty() {
            return exists;
        }
        t_key == key && (exists || t.value.as_deref().unwrap_or("") == value)
    })
}

fn match_requirement(labels: &BTreeMap<String, String>, r: &NodeSelectorRequirement) -> bool {
    let have = labels.get(&r.key);
    let values = r.values.clone().unwrap_or_default();
    match r.operator.as_str() {
        "In" => have.is_some_and(|h| values.contains(h)),
        "NotIn" => have.is_none_or(|h| !values.contains(h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        op @ ("Gt" | "Lt") => {
            let h = have.and_then(|h| h.parse::<i64>().ok());
            let v = values.first().and_then(|v| v.parse::<i64>().ok());
            match (h, v) {
                (Some(h), Some(v)) => (op == "Gt" && h > v) || (op == "Lt" && h < v),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Why the new pods may not go on this node at all (None: eligible).
pub fn ineligible(spec: &PodSpec, node: &Node) -> Option<String> {
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let node_spec = node.spec.as_ref();
    if node_spec.and_then(|s| s.unschedulable) == Some(true)
        && !tolerates(
            &tolerations,
            "node.kubernetes.io/unschedulable",
            "",
            "NoSchedule",
        )
    {
        return Some("unschedulable (cordoned)".into());
    }
    for Taint {
        key, value, effect, ..
    } in node_spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
    {
        let value = value.as_deref().unwrap_or("");
        if (effect == "NoSchedule" || effect == "NoExecute")
            && !tolerates(&tolerations, key, value, effect)
        {
            return Some(format!("untolerated taint {key}={value}:{effect}"));
        }
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return Some("does not match the nodeSelector".into());
    }
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default();
    if !terms.is_empty() {
        let name = node.metadata.name.clone().unwrap_or_default();
        let fields = BTreeMap::from([("metadata.name".to_string(), name)]);
        let ok = terms.iter().any(|t| {
            let exprs = t.match_expressions.clone().unwrap_or_default();
            let fexprs = t.match_fields.clone().unwrap_or_default();
            (!exprs.is_empty() || !fexprs.is_empty())
                && exprs.iter().all(|e| match_requirement(labels, e))
                && fexprs.iter().all(|e| match_requirement(&fields, e))
        });
        if !ok {
            return Some("does not match the required node affinity".into());
        }
    }
    None
}
