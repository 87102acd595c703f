//! Server-side defaulting, applied on every create/update/patch result, as
//! the real API server's defaulters (and, for Pods, the admission plugins
//! ServiceAccount, DefaultTolerationSeconds and Priority) write them.

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    let e = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if e.is_null() {
        *e = json!({});
    }
    e.as_object_mut()
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    match m.get(key) {
        None | Some(Value::Null) => {
            m.insert(key.to_string(), v);
        }
        _ => {}
    }
}

/// Default a workload's update strategy (`key`: `strategy` or
/// `updateStrategy`) to `RollingUpdate` and, when it is one, fill in the
/// `rollingUpdate` fields the API server defaults for that kind.
fn rolling_update(spec: &mut Map<String, Value>, key: &str, defaults: &[(&str, Value)]) {
    let strategy = spec.entry(key).or_insert_with(|| json!({}));
    let Some(s) = strategy.as_object_mut() else {
        return;
    };
    set_default(s, "type", json!("RollingUpdate"));
    if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
        if let Some(ru) = ru.as_object_mut() {
            for (k, v) in defaults {
                set_default(ru, k, v.clone());
            }
        }
    }
}

/// Apply the API server's defaults for `rt` to `obj` in place.
pub fn apply(rt: &ResourceType, obj: &mut Value) {
    match (rt.group, rt.plural) {
        ("apps", "deployments") => {
            let Some(spec) = obj_mut(obj, "spec") else {
                return;
            };
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            rolling_update(
                spec,
                "strategy",
                &[("maxSurge", json!("25%")), ("maxUnavailable", json!("25%"))],
            );
            template(spec);
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            let Some(spec) = obj_mut(obj, "spec") else {
                return;
            };
            set_default(spec, "replicas", json!(1));
            if rt.plural == "replicationcontrollers" {
                // An absent selector defaults to the template's labels.
                let labels = spec
                    .get("template")
                    .and_then(|t| t.get("metadata"))
                    .and_then(|m| m.get("labels"))
                    .cloned();
                if spec
                    .get("selector")
                    .is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty()))
                    && let Some(l) = labels
                {
                    spec.insert("selector".into(), l);
                }
            }
            template(spec);
        }
        ("apps", "statefulsets") => {
            let Some(spec) = obj_mut(obj, "spec") else {
                return;
            };
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            rolling_update(spec, "updateStrategy", &[("partition", json!(0))]);
            template(spec);
        }
        ("apps", "daemonsets") => {
            let Some(spec) = obj_mut(obj, "spec") else {
                return;
            };
            set_default(spec, "revisionHistoryLimit", json!(10));
            rolling_update(
                spec,
                "updateStrategy",
                &[("maxSurge", json!(0)), ("maxUnavailable", json!(1))],
            );
            template(spec);
        }
        ("", "pods") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                pod_spec(spec);
                pod_admission(spec);
            }
            let qos = qos_class(&obj["spec"]);
            if let Some(status) = obj_mut(obj, "status") {
                set_default(status, "phase", json!("Pending"));
                set_default(status, "qosClass", json!(qos));
            }
        }
        ("", "services") => {
            let Some(spec) = obj_mut(obj, "spec") else {
                return;
            };
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if let Some(p) = p.as_object_mut() {
                        set_default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set_default(p, "targetPort", port);
                        }
                    }
                }
            }
        }
        ("", "secrets") => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "type", json!("Opaque"));
            }
        }
        ("", "namespaces") => {
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            if let Some(meta) = obj_mut(obj, "metadata")
                && !name.is_empty()
            {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    set_default(l, "kubernetes.io/metadata.name", json!(name));
                }
            }
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(status) = obj_mut(obj, "status") {
                set_default(status, "phase", json!("Active"));
            }
        }
        _ => {}
    }
}

/// Defaults of `spec.template.spec` in a workload.
fn template(spec: &mut Map<String, Value>) {
    let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(ps) = t.get_mut("spec").and_then(Value::as_object_mut) {
        pod_spec(ps);
    }
}

/// Defaults of a PodSpec (shared by templates and pods).
pub fn pod_spec(ps: &mut Map<String, Value>) {
    set_default(ps, "restartPolicy", json!("Always"));
    set_default(ps, "terminationGracePeriodSeconds", json!(30));
    set_default(ps, "dnsPolicy", json!("ClusterFirst"));
    set_default(ps, "schedulerName", json!("default-scheduler"));
    set_default(ps, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        if let Some(cs) = ps.get_mut(key).and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(c) = c.as_object_mut() {
                    container(c);
                }
            }
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = if image_tag(image).is_none_or(|t| t == "latest") && !image.contains('@') {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_default(c, "imagePullPolicy", json!(policy));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// The tag of an image reference, if any ("example/web:1" → "1";
/// "localhost:5000/web" → None).
fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, t)| t)
}

/// What the Pod admission plugins add (ServiceAccount, tolerations, priority).
fn pod_admission(ps: &mut Map<String, Value>) {
    set_default(ps, "enableServiceLinks", json!(true));
    set_default(ps, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(ps, "priority", json!(0));
    set_default(ps, "serviceAccountName", json!("default"));
    let sa = ps
        .get("serviceAccountName")
        .cloned()
        .unwrap_or(json!("default"));
    set_default(ps, "serviceAccount", sa);
    let tolerations = ps.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(ts) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            if !ts.iter().any(|t| t["key"].as_str() == Some(key)) {
                ts.push(json!({"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300}));
            }
        }
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut containers: Vec<&Value> = Vec::new();
    for key in ["containers", "initContainers"] {
        if let Some(cs) = spec[key].as_array() {
            containers.extend(cs.iter());
        }
    }
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let req = c["resources"]["requests"].as_object();
        let lim = c["resources"]["limits"].as_object();
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::res;

    #[test]
    fn deployment_defaults_match_fixture_shape() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "example/web:1"}, {"name": "x", "image": "x"}]}}}});
        apply(res("deployments.apps"), &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[1]["imagePullPolicy"], "Always");
        assert_eq!(d["spec"]["template"]["spec"]["securityContext"], json!({}));
    }

    #[test]
    fn pod_defaults_and_qos() {
        let mut p = json!({"spec": {"containers": [{"name": "w", "image": "localhost:5000/w",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        apply(res("pods"), &mut p);
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }
}
