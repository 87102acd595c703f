//! Workload objects as the simulator's own tests and its clients' tests
//! create them in `default`: one container named after the workload,
//! selected by `app: <name>` (the two-container ReplicationController
//! aside, which keeps the labels of the report it comes from).

use serde_json::{Value, json};

/// A DaemonSet `name` on `image`.
pub fn daemonset(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": image}]}},
        }
    })
}

/// A StatefulSet `name` of `replicas` pods on `image`.
pub fn statefulset(name: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": image}]}},
        }
    })
}

/// A database StatefulSet: a `statefulset` whose pods are ready 2 s after
/// their port 5432 answers.
pub fn database(name: &str, image: &str, replicas: i64) -> Value {
    let mut s = statefulset(name, image, replicas);
    s["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"tcpSocket": {"port": 5432}, "initialDelaySeconds": 2});
    s
}

/// The ReplicationController `api-rc` of 3 two-container pods (node-api
/// and fluentd), selected by `name: api-pods`.
pub fn two_container_rc() -> Value {
    json!({
        "kind": "ReplicationController", "apiVersion": "v1",
        "metadata": {"name": "api-rc", "namespace": "default", "labels": {"name": "api-rc"}},
        "spec": {
            "replicas": 3,
            "selector": {"name": "api-pods"},
            "template": {
                "metadata": {"labels": {"name": "api-pods"}},
                "spec": {"containers": [
                    {"name": "node-api-container", "image": "asia.gcr.io/xxxxx/node-api:1.0.0",
                     "ports": [{"containerPort": 3000, "protocol": "TCP"}]},
                    {"name": "fluentd-container", "image": "asia.gcr.io/xxxxx/fluentd:1.0.0",
                     "ports": [{"containerPort": 24224, "protocol": "TCP"}]}
                ]}
            }
        }
    })
}
