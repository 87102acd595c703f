//! The Endpoints and EndpointSlice controllers, after upstream
//! `pkg/controller/endpoint/` and `pkg/controller/endpointslice/`: for
//! every Service with a selector, the pods it selects that have an IP
//! become Endpoints `addresses` (ready) or `notReadyAddresses`, and
//! EndpointSlice endpoints with `ready`/`serving`/`terminating`
//! conditions; ports are the Service's resolved targetPorts. Objects
//! are only written when they differ.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::meta::{is_deleting, name, uid};
use super::next::Next;
use super::pods::is_ready;
use crate::error::ApiResult;
use crate::resources::res;
use crate::sim::Sim;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";
pub const ENDPOINTS_MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
pub const ENDPOINTS_MANAGER: &str = "endpoint-controller";

pub fn reconcile(sim: &Sim) -> Next {
    let mut next = Next::default();
    let (services, _) = sim.store.list(res("services"), None);
    let (endpoints, _) = sim.store.list(res("endpoints"), None);
    let (slices, _) = sim.store.list(res("endpointslices.discovery.k8s.io"), None);
    if services.is_empty() && endpoints.is_empty() && slices.is_empty() {
        return next;
    }
    let (pods, _) = sim.store.list(res("pods"), None);
    let mut pods_by_ns: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
    for p in &pods {
        pods_by_ns
            .entry(p["metadata"]["namespace"].as_str().unwrap_or(""))
            .or_default()
            .push(p);
    }
    let mut slices_by_svc: HashMap<(String, String), Vec<Arc<Value>>> = HashMap::new();
    for s in &slices {
        if s["metadata"]["labels"][SLICE_MANAGED_BY_LABEL] != SLICE_MANAGER {
            continue;
        }
        let ns = s["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let svc = s["metadata"]["labels"][SERVICE_NAME_LABEL]
            .as_str()
            .unwrap_or("")
            .to_string();
        slices_by_svc.entry((ns, svc)).or_default().push(s.clone());
    }
    let mut wanted: HashSet<(String, String)> = HashSet::new();
    for svc in &services {
        if is_deleting(svc) || !has_selector(svc) {
            continue;
        }
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or("");
        wanted.insert((ns.to_string(), name(svc).to_string()));
        let selected: Vec<&Arc<Value>> = pods_by_ns
            .get(ns)
            .into_iter()
            .flatten()
            .filter(|p| selects(svc, p))
            .copied()
            .collect();
        let existing = slices_by_svc
            .remove(&(ns.to_string(), name(svc).to_string()))
            .unwrap_or_default();
        let result = sync_endpoints(sim, svc, &selected)
            .and_then(|_| sync_slice(sim, svc, &selected, &existing));
        if let Err(e) = result {
            tracing::debug!(service = name(svc), error = %e, "endpoints sync failed; retrying");
            next.at(sim.clock.now() + Duration::from_secs(1));
        }
    }
    // Our objects whose Service is gone (or lost its selector).
    for ep in &endpoints {
        let ns = ep["metadata"]["namespace"].as_str().unwrap_or("");
        if ep["metadata"]["labels"][ENDPOINTS_MANAGED_BY_LABEL] == ENDPOINTS_MANAGER
            && !wanted.contains(&(ns.to_string(), name(ep).to_string()))
        {
            let _ = sim.store.delete(res("endpoints"), ns, name(ep));
        }
    }
    for ((ns, _), list) in slices_by_svc {
        for s in list {
            let _ = sim
                .store
                .delete(res("endpointslices.discovery.k8s.io"), &ns, name(&s));
        }
    }
    next
}

fn has_selector(svc: &Value) -> bool {
    svc["spec"]["selector"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
}

fn selects(svc: &Value, pod: &Value) -> bool {
    let labels = &pod["metadata"]["labels"];
    svc["spec"]["selector"]
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn pod_ip(pod: &Value) -> Option<&str> {
    pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty())
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Failed") | Some("Succeeded")
    )
}

/// One endpoint port for the Service port `sp` resolved to `port` on a pod:
/// `name` (when given), port, protocol (TCP when unset), appProtocol.
fn endpoint_port(sp: &Value, port: i64, name: Option<&str>) -> Value {
    let mut p = Map::new();
    if let Some(n) = name {
        p.insert("name".into(), json!(n));
    }
    p.insert("port".into(), json!(port));
    p.insert(
        "protocol".into(),
        json!(sp["protocol"].as_str().unwrap_or("TCP")),
    );
    if let Some(ap) = sp["appProtocol"].as_str() {
        p.insert("appProtocol".into(), json!(ap));
    }
    Value::Object(p)
}

/// Upstream `podutil.FindPort`: a numeric targetPort as is, a named one
/// looked up among the pod's container ports (same protocol).
pub fn resolve_target_port(svc_port: &Value, pod: &Value) -> Option<i64> {
    let target = match &svc_port["targetPort"] {
        Value::Null => svc_port["port"].clone(),
        t => t.clone(),
    };
    if let Some(n) = target.as_i64() {
        return Some(n);
    }
    let want = target.as_str()?;
    if let Ok(n) = want.parse::<i64>() {
        return Some(n);
    }
    let proto = svc_port["protocol"].as_str().unwrap_or("TCP");
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| {
            p["name"].as_str() == Some(want) && p["protocol"].as_str().unwrap_or("TCP") == proto
        })?["containerPort"]
        .as_i64()
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": pod["metadata"]["namespace"],
           "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]})
}

/// The pod's DNS hostname when it is in the Service's subdomain.
fn hostname<'a>(svc: &Value, pod: &'a Value) -> Option<&'a str> {
    let h = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    (pod["spec"]["subdomain"].as_str() == Some(name(svc))).then_some(h)
}

fn labels_with(svc: &Value, key: &str, value: &str) -> Map<String, Value> {
    let mut labels = svc["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(key.into(), json!(value));
    labels
}

// ---------------------------------------------------------------- Endpoints

/// One subset being built: (ports, ready addresses, not-ready addresses).
type PortGroup = (Vec<Value>, Vec<Value>, Vec<Value>);

/// Upstream `syncService` of the Endpoints controller: the subsets, packed
/// by port set.
pub fn desired_subsets(svc: &Value, pods: &[&Arc<Value>]) -> Vec<Value> {
    let publish = svc["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    let svc_ports: Vec<Value> = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    // port-set key → (ports, ready, not ready)
    let mut groups: BTreeMap<String, PortGroup> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod_ip(pod) else {
            continue;
        };
        if terminal(pod) || (is_deleting(pod) && !publish) {
            continue;
        }
        let mut ports = Vec::new();
        for sp in &svc_ports {
            let Some(port) = resolve_target_port(sp, pod) else {
                continue;
            };
            let name = sp["name"].as_str().filter(|n| !n.is_empty());
            ports.push(endpoint_port(sp, port, name));
        }
        if ports.is_empty() && !svc_ports.is_empty() {
            continue;
        }
        let mut addr = Map::new();
        addr.insert("ip".into(), json!(ip));
        if let Some(h) = hostname(svc, pod) {
            addr.insert("hostname".into(), json!(h));
        }
        if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            addr.insert("nodeName".into(), json!(n));
        }
        addr.insert("targetRef".into(), target_ref(pod));
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish || is_ready(pod) {
            entry.1.push(Value::Object(addr));
        } else {
            entry.2.push(Value::Object(addr));
        }
    }
    let by_ip = |a: &Value, b: &Value| {
        let ip = |v: &Value| {
            v["ip"]
                .as_str()
                .unwrap_or("")
                .parse::<std::net::IpAddr>()
                .ok()
        };
        ip(a).cmp(&ip(b)).then_with(|| {
            a["targetRef"]["uid"]
                .as_str()
                .cmp(&b["targetRef"]["uid"].as_str())
        })
    };
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), Value::Array(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), Value::Array(not_ready));
            }
            if !ports.is_empty() {
                s.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(s)
        })
        .collect()
}

fn sync_endpoints(sim: &Sim, svc: &Value, pods: &[&Arc<Value>]) -> ApiResult<()> {
    let rt = res("endpoints");
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or("");
    let subsets = desired_subsets(svc, pods);
    let labels = labels_with(svc, ENDPOINTS_MANAGED_BY_LABEL, ENDPOINTS_MANAGER);
    let apply = |o: &mut Value| {
        if subsets.is_empty() {
            if let Some(m) = o.as_object_mut() {
                m.remove("subsets");
            }
        } else {
            o["subsets"] = Value::Array(subsets.clone());
        }
        o["metadata"]["labels"] = Value::Object(labels.clone());
    };
    match sim.store.get(rt, ns, name(svc)) {
        Ok(cur) => {
            let mut want = (*cur).clone();
            apply(&mut want);
            if want != *cur {
                sim.store.modify(rt, ns, name(svc), |o| {
                    apply(o);
                    Ok(true)
                })?;
            }
            Ok(())
        }
        Err(e) if e.code == 404 => {
            let mut obj = json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name(svc), "namespace": ns}});
            apply(&mut obj);
            match sim.store.create(rt, ns, obj) {
                Ok(_) => Ok(()),
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- EndpointSlices

/// The endpoints and ports of the one slice kept per Service.
pub fn desired_slice(svc: &Value, pods: &[&Arc<Value>]) -> (Value, Value) {
    let publish = svc["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    let svc_ports: Vec<Value> = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let mut endpoints: Vec<Value> = Vec::new();
    let mut ports: Option<Vec<Value>> = None;
    for pod in pods {
        let Some(ip) = pod_ip(pod) else {
            continue;
        };
        if terminal(pod) {
            continue;
        }
        let terminating = is_deleting(pod);
        let serving = publish || is_ready(pod);
        let mut ep = Map::new();
        ep.insert("addresses".into(), json!([ip]));
        ep.insert(
            "conditions".into(),
            json!({"ready": serving && !terminating, "serving": serving, "terminating": terminating}),
        );
        if let Some(h) = hostname(svc, pod) {
            ep.insert("hostname".into(), json!(h));
        }
        if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            ep.insert("nodeName".into(), json!(n));
        }
        ep.insert("targetRef".into(), target_ref(pod));
        endpoints.push(Value::Object(ep));
        if ports.is_none() {
            ports = Some(
                svc_ports
                    .iter()
                    .filter_map(|sp| {
                        let port = resolve_target_port(sp, pod)?;
                        Some(endpoint_port(
                            sp,
                            port,
                            Some(sp["name"].as_str().unwrap_or("")),
                        ))
                    })
                    .collect(),
            );
        }
    }
    endpoints.sort_by(|a, b| a["addresses"][0].as_str().cmp(&b["addresses"][0].as_str()));
    let endpoints = if endpoints.is_empty() {
        Value::Null
    } else {
        Value::Array(endpoints)
    };
    let ports = match ports {
        Some(p) if !p.is_empty() => Value::Array(p),
        _ => Value::Null,
    };
    (endpoints, ports)
}

fn sync_slice(
    sim: &Sim,
    svc: &Value,
    pods: &[&Arc<Value>],
    existing: &[Arc<Value>],
) -> ApiResult<()> {
    let rt = res("endpointslices.discovery.k8s.io");
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or("");
    let (endpoints, ports) = desired_slice(svc, pods);
    let mut labels = labels_with(svc, SERVICE_NAME_LABEL, name(svc));
    labels.insert(SLICE_MANAGED_BY_LABEL.into(), json!(SLICE_MANAGER));
    let owner = json!([{"apiVersion": "v1", "kind": "Service", "name": name(svc),
        "uid": uid(svc), "controller": true, "blockOwnerDeletion": true}]);
    let apply = |o: &mut Value| {
        o["addressType"] = json!("IPv4");
        o["endpoints"] = endpoints.clone();
        o["ports"] = ports.clone();
        o["metadata"]["labels"] = Value::Object(labels.clone());
        o["metadata"]["ownerReferences"] = owner.clone();
    };
    let mut keep = existing
        .iter()
        .filter(|s| !is_deleting(s))
        .min_by(|a, b| name(a).cmp(name(b)));
    // A slice left from an older Service of the same name is replaced.
    if keep.is_some_and(|s| s["metadata"]["ownerReferences"][0]["uid"] != uid(svc)) {
        keep = None;
    }
    for s in existing {
        if keep.is_none_or(|k| name(k) != name(s)) {
            let _ = sim.store.delete(rt, ns, name(s));
        }
    }
    match keep {
        Some(cur) => {
            let mut want = (**cur).clone();
            apply(&mut want);
            if want != **cur {
                sim.store.modify(rt, ns, name(cur), |o| {
                    apply(o);
                    Ok(true)
                })?;
            }
        }
        None => {
            let mut obj = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": format!("{}-", name(svc)), "namespace": ns}});
            apply(&mut obj);
            sim.store.create(rt, ns, obj)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
    }

    #[test]
    fn subsets_split_by_readiness_and_resolve_named_ports() {
        let svc = json!({"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}});
        let a = pod("a", "10.0.0.2", true);
        let b = pod("b", "10.0.0.1", false);
        let c = pod("c", "10.0.0.10", true);
        let subsets = desired_subsets(&svc, &[&a, &b, &c]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0]["addresses"][0]["ip"], "10.0.0.2");
        assert_eq!(subsets[0]["addresses"][1]["ip"], "10.0.0.10");
        assert_eq!(subsets[0]["notReadyAddresses"][0]["ip"], "10.0.0.1");
        assert_eq!(
            subsets[0]["ports"],
            json!([{"port": 8080, "protocol": "TCP"}])
        );
        let (eps, ports) = desired_slice(&svc, &[&a, &b]);
        assert_eq!(eps[0]["addresses"][0], "10.0.0.1");
        assert_eq!(eps[0]["conditions"]["ready"], false);
        assert_eq!(eps[1]["conditions"]["ready"], true);
        assert_eq!(
            ports,
            json!([{"name": "", "port": 8080, "protocol": "TCP"}])
        );
        let (eps, ports) = desired_slice(&svc, &[]);
        assert!(eps.is_null() && ports.is_null());
    }
}
