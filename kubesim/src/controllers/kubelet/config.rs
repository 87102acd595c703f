//! CreateContainerConfigError: the ConfigMaps, Secrets and keys a
//! container's environment refers to, looked up in the store.

use serde_json::Value;

use crate::resources::res;
use crate::sim::Sim;

/// The missing ConfigMap/Secret/key a container's environment refers to.
pub(super) fn config_error(sim: &Sim, ns: &str, c: &Value) -> Option<String> {
    let cms = res("configmaps");
    let secrets = res("secrets");
    let lookup = |secret: bool, name: &str| {
        let rt = if secret { secrets } else { cms };
        sim.store.get(rt, ns, name).ok()
    };
    let not_found = |secret: bool, name: &str| {
        format!(
            "{} \"{name}\" not found",
            if secret { "secret" } else { "configmap" }
        )
    };
    for e in c["envFrom"].as_array().into_iter().flatten() {
        for (key, secret) in [("configMapRef", false), ("secretRef", true)] {
            let r = &e[key];
            if !r.is_object() {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            if r["optional"].as_bool() != Some(true) && lookup(secret, name).is_none() {
                return Some(not_found(secret, name));
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        for (key, secret) in [("configMapKeyRef", false), ("secretKeyRef", true)] {
            let r = &e["valueFrom"][key];
            if !r.is_object() {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            let k = r["key"].as_str().unwrap_or("");
            let optional = r["optional"].as_bool() == Some(true);
            match lookup(secret, name) {
                None if !optional => return Some(not_found(secret, name)),
                Some(obj)
                    if !optional
                        && obj["data"].get(k).is_none()
                        && obj["binaryData"].get(k).is_none()
                        && obj["stringData"].get(k).is_none() =>
                {
                    return Some(format!(
                        "couldn't find key {k} in {} {ns}/{name}",
                        if secret { "Secret" } else { "ConfigMap" }
                    ));
                }
                _ => {}
            }
        }
    }
    None
}
