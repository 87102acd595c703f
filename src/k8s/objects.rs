//! Small helpers over the Kubernetes API shared by every kind: raw reads
//! and patches of a workload by kind, status-code tests, selectors and
//! fields read out of raw objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::k8s::kind::Kind;

pub fn collection_path(kind: Kind, ns: &str) -> String {
    match kind {
        Kind::ReplicationController => format!("/api/v1/namespaces/{ns}/replicationcontrollers"),
        k => format!("/apis/apps/v1/namespaces/{ns}/{}", k.resource()),
    }
}

pub async fn get_obj(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<Value, kube::Error> {
    let req = kube::core::Request::new(collection_path(kind, ns))
        .get(name, &Default::default())
        .map_err(kube::Error::BuildRequest)?;
    client.request::<Value>(req).await
}

pub fn params() -> PatchParams {
    PatchParams {
        field_manager: Some("rollguard".into()),
        ..Default::default()
    }
}

/// How a patch of [`patch_obj`] applies.
#[derive(Debug, Clone, Copy)]
pub enum ObjPatch<'a> {
    /// A JSON patch: an array of operations (`test` ones included).
    Json(&'a Value),
    /// A merge patch.
    Merge(&'a Value),
}

/// Patch the object `name` of `kind` in `ns` (as rollguard's field manager).
pub async fn patch_obj(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    patch: ObjPatch<'_>,
) -> Result<Value, kube::Error> {
    let req = kube::core::Request::new(collection_path(kind, ns));
    let req = match patch {
        ObjPatch::Json(ops) => {
            let ops: json_patch::Patch =
                serde_json::from_value(ops.clone()).map_err(kube::Error::SerdeError)?;
            req.patch(name, &params(), &Patch::<()>::Json(ops))
        }
        ObjPatch::Merge(v) => req.patch(name, &params(), &Patch::Merge(v)),
    }
    .map_err(kube::Error::BuildRequest)?;
    client.request::<Value>(req).await
}

pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// A label selector (`matchLabels` and `matchExpressions`) as a selector string.
pub fn selector_of(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The pod spec at `pointer` of a raw workload (default when absent).
pub fn pod_spec(raw: &Value, pointer: &str) -> PodSpec {
    raw.pointer(pointer)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// `spec.replicas` of a raw workload (1 when unset).
pub fn replicas_of(raw: &Value) -> i32 {
    raw.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0) as i32
}

/// The string map at `pointer` (labels, a selector's `matchLabels`).
pub fn labels_at(v: &Value, pointer: &str) -> BTreeMap<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `matchLabels` of a raw workload as a selector string.
pub fn match_labels_selector(raw: &Value) -> String {
    selector_string(&labels_at(raw, "/spec/selector/matchLabels"))
}

/// A live (not terminating) pod carrying every label of `selector`.
pub fn matches_selector(pod: &Pod, selector: &BTreeMap<String, String>) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    pod.metadata.deletion_timestamp.is_none()
        && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `k=v,k2=v2`.
pub fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metadata.name` of a raw object.
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.uid` and `metadata.generation` of a raw object.
pub fn uid_generation(raw: &Value) -> (String, i64) {
    (
        raw.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        raw.pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    )
}

/// The pod's `Ready` condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// An object list captured from a real control plane (the shared fixtures,
/// `real-k8s-v1.36/<dir>/<file>`), for the unit tests of the rules that read it.
#[cfg(test)]
pub(crate) fn real_fixture(dir: &str, file: &str) -> Value {
    let path = format!("/work/shared/fixtures/real-k8s-v1.36/{dir}/{file}");
    let path = if std::path::Path::new(&path).exists() {
        path
    } else {
        format!(
            "{}/../shared/fixtures/real-k8s-v1.36/{dir}/{file}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
