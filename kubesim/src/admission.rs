//! Admission of pod creations: the ResourceQuota check of upstream's
//! `ResourceQuota` admission plugin (plugin/pkg/admission/resourcequota),
//! with its message forms:
//!
//! `pods "web-6d4b9c7f5-x2k8p" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=1500m, limited: requests.cpu=1500m`
//! `pods "web-6d4b9c7f5-x2k8p" is forbidden: failed quota: compute: must specify limits.cpu for: web`
//!
//! Usage is computed from the namespace's pods at admission time (kubesim
//! has no quota controller): every pod not in a terminal phase counts, as
//! upstream's pod evaluator counts pods still terminating. `spec.hard` is
//! used (upstream reads `status.hard`, which its controller copies from it);
//! the quota's `status` is written back (hard and used) so `kubectl describe
//! quota` shows it. Scopes and scope selectors are not simulated.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::quantity;
use crate::resources::res;
use crate::sim::Sim;

/// The quota resources tracked for pods.
const TRACKED: &[&str] = &[
    "pods",
    "count/pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

fn is_cpu(resource: &str) -> bool {
    resource.ends_with("cpu")
}

/// Parse a quota quantity in the resource's unit (millicores for cpu, bytes
/// for memory, a count for pods).
fn parse(resource: &str, q: &str) -> Option<i64> {
    if is_cpu(resource) {
        quantity::cpu_millis(q)
    } else {
        quantity::bytes(q)
    }
}

/// Format a quantity as `Quantity.String()` would for typical values.
fn format(resource: &str, v: i64) -> String {
    if is_cpu(resource) {
        if v % 1000 == 0 {
            (v / 1000).to_string()
        } else {
            format!("{v}m")
        }
    } else if resource.ends_with("memory") {
        for (unit, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
            if v != 0 && v % (1i64 << shift) == 0 {
                return format!("{}{unit}", v >> shift);
            }
        }
        v.to_string()
    } else {
        v.to_string()
    }
}

/// What one pod counts against each tracked resource; `None` for a
/// resource the pod leaves unspecified on some container (limits).
fn pod_usage(pod: &Value) -> BTreeMap<&'static str, Option<i64>> {
    let spec = &pod["spec"];
    let containers: Vec<&Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let inits: Vec<&Value> = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    // requests default to limits (API defaulting does this on the pod).
    let get = |c: &Value, kind: &str, name: &str| -> Option<i64> {
        let r = &c["resources"];
        let v = r[kind][name].as_str().or_else(|| {
            (kind == "requests")
                .then(|| r["limits"][name].as_str())
                .flatten()
        });
        v.and_then(|q| parse(name, q))
    };
    let total = |kind: &str, name: &str, required: bool| -> Option<i64> {
        let mut sum = 0i64;
        for c in &containers {
            match get(c, kind, name) {
                Some(v) => sum += v,
                None if required => return None,
                None => {}
            }
        }
        for c in &inits {
            match get(c, kind, name) {
                Some(v) => sum = sum.max(v),
                None if required => return None,
                None => {}
            }
        }
        Some(sum)
    };
    let mut out = BTreeMap::new();
    out.insert("pods", Some(1));
    out.insert("count/pods", Some(1));
    out.insert("cpu", total("requests", "cpu", false));
    out.insert("requests.cpu", total("requests", "cpu", false));
    out.insert("memory", total("requests", "memory", false));
    out.insert("requests.memory", total("requests", "memory", false));
    out.insert("limits.cpu", total("limits", "cpu", true));
    out.insert("limits.memory", total("limits", "memory", true));
    out
}

/// Pods that count against the quota: not Succeeded or Failed.
fn counts(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn pretty(m: &BTreeMap<&str, i64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", format(k, *v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Admit a pod about to be created in `ns`: resolve `generateName` (the
/// name is part of the message, as upstream's validating admission sees the
/// generated name), then check every ResourceQuota of the namespace.
pub fn admit_pod(sim: &Sim, ns: &str, pod: &mut Value) -> ApiResult<()> {
    let (quotas, _) = sim.store.list(res("resourcequotas"), Some(ns));
    if quotas.is_empty() {
        return Ok(());
    }
    if pod["metadata"]["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = pod["metadata"]["generateName"].as_str()
    {
        let name = format!("{prefix}{}", crate::store::random_suffix(5));
        pod["metadata"]["name"] = json!(name);
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let forbidden = |msg: String| {
        let mut e = ApiError::new(
            403,
            "Forbidden",
            format!("pods \"{name}\" is forbidden: {msg}"),
        );
        e.details = Some(json!({"name": name, "kind": "pods"}));
        e
    };
    let requested = pod_usage(pod);
    let (pods, _) = sim.store.list(res("pods"), Some(ns));
    let mut quotas: Vec<&Value> = quotas.iter().map(|q| q.as_ref()).collect();
    quotas.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    for q in quotas {
        let qname = q["metadata"]["name"].as_str().unwrap_or("");
        let Some(hard_spec) = q["spec"]["hard"].as_object() else {
            continue;
        };
        let mut hard: BTreeMap<&str, i64> = BTreeMap::new();
        for r in TRACKED {
            if let Some(v) = hard_spec
                .get(*r)
                .and_then(Value::as_str)
                .and_then(|s| parse(r, s))
            {
                hard.insert(r, v);
            }
        }
        if hard.is_empty() {
            continue;
        }
        // A quota on limits needs every container to state them.
        let missing: Vec<&str> = hard
            .keys()
            .filter(|r| requested.get(*r).is_some_and(Option::is_none))
            .copied()
            .collect();
        if !missing.is_empty() {
            let containers: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            let parts: Vec<String> = missing
                .iter()
                .map(|r| format!("{r} for: {}", containers.join(",")))
                .collect();
            return Err(forbidden(format!(
                "failed quota: {qname}: must specify {}",
                parts.join("; ")
            )));
        }
        let mut used: BTreeMap<&str, i64> = hard.keys().map(|r| (*r, 0)).collect();
        for p in pods.iter().filter(|p| counts(p)) {
            let u = pod_usage(p);
            for (r, v) in used.iter_mut() {
                *v += u.get(r).copied().flatten().unwrap_or(0);
            }
        }
        let mut exceeded = Vec::new();
        for (r, h) in &hard {
            let req = requested.get(r).copied().flatten().unwrap_or(0);
            if req > 0 && used[r] + req > *h {
                exceeded.push(*r);
            }
        }
        write_status(sim, ns, q, &hard, &used);
        if !exceeded.is_empty() {
            let mask = |m: &BTreeMap<&str, i64>| -> BTreeMap<&str, i64> {
                exceeded
                    .iter()
                    .map(|r| (*r, m.get(r).copied().unwrap_or(0)))
                    .collect()
            };
            let req: BTreeMap<&str, i64> = requested
                .iter()
                .map(|(k, v)| (*k, v.unwrap_or(0)))
                .collect();
            return Err(forbidden(format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                pretty(&mask(&req)),
                pretty(&mask(&used)),
                pretty(&mask(&hard))
            )));
        }
    }
    Ok(())
}

/// Keep the quota's status (hard and used) as its controller would.
fn write_status(
    sim: &Sim,
    ns: &str,
    q: &Value,
    hard: &BTreeMap<&str, i64>,
    used: &BTreeMap<&str, i64>,
) {
    let qname = q["metadata"]["name"].as_str().unwrap_or("").to_string();
    let to_map = |m: &BTreeMap<&str, i64>| -> Value {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_string(), json!(format(k, *v))))
                .collect(),
        )
    };
    let status = json!({"hard": to_map(hard), "used": to_map(used)});
    if q["status"] == status {
        return;
    }
    let _ = sim.store.modify(res("resourcequotas"), ns, &qname, |v| {
        v["status"] = status;
        Ok(true)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_print_as_upstream() {
        assert_eq!(format("requests.cpu", 1500), "1500m");
        assert_eq!(format("cpu", 2000), "2");
        assert_eq!(format("limits.memory", 512 << 20), "512Mi");
        assert_eq!(format("pods", 3), "3");
    }

    #[test]
    fn usage_of_a_pod() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "500m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
        ]}});
        let u = pod_usage(&pod);
        assert_eq!(u["requests.cpu"], Some(600));
        assert_eq!(u["memory"], Some(64 << 20));
        assert_eq!(u["limits.cpu"], None, "b states no cpu limit");
        assert_eq!(u["pods"], Some(1));
    }
}
