//! The in-progress marker: what the patch that starts a rollout records on
//! the workload (the run, when, the images and the exact pre-patch
//! template), and its removal when the run ends.

use std::io::{Read, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::workload::deployment as dep;

/// The annotation of a rollout in progress.
pub const IN_PROGRESS: &str = "rollguard.dev/in-progress";
/// Templates larger than this (as JSON) are stored gzip + base64.
const COMPRESS_ABOVE: usize = 2048;
const GZIP_PREFIX: &str = "gzip+base64:";

/// The value of [`IN_PROGRESS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    /// Who started the rollout (CI run URL, else host + pid).
    pub run: String,
    pub started: String,
    pub image: String,
    pub previous_image: String,
    /// The pre-patch `spec.template`: JSON, or `gzip+base64:…` of its JSON.
    pub template: Value,
    /// The workload the marker belongs to (`metadata.uid`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The `metadata.generation` our patch gives the workload: the marker
    /// describes exactly that spec. A copy of it anywhere else — on a
    /// ReplicaSet (the Deployment controller copies the Deployment's
    /// annotations there), then back on the Deployment with an older
    /// template (`kubectl rollout undo` copies the ReplicaSet's annotations)
    /// — sits at a later generation and is ignored. 0: written by a
    /// rollguard that did not bind markers (taken as it is).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Marker {
    pub fn new(
        run: &str,
        started: &str,
        image: &str,
        previous_image: &str,
        template: &Value,
    ) -> Marker {
        let text = template.to_string();
        let template = if text.len() > COMPRESS_ABOVE {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let packed = gz.write_all(text.as_bytes()).and_then(|_| gz.finish());
            match packed {
                Ok(bytes) => Value::String(format!(
                    "{GZIP_PREFIX}{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                )),
                Err(_) => template.clone(),
            }
        } else {
            template.clone()
        };
        Marker {
            run: run.to_string(),
            started: started.to_string(),
            image: image.to_string(),
            previous_image: previous_image.to_string(),
            template,
            uid: String::new(),
            generation: 0,
        }
    }

    /// Bind the marker to the workload `uid` at the generation our patch
    /// gives it (the generation of the object the patch tests, plus one).
    pub fn bound_to(mut self, uid: &str, generation: i64) -> Marker {
        self.uid = uid.to_string();
        self.generation = generation;
        self
    }

    /// Does the marker describe `workload` as it is now (same object, same
    /// generation)? An unbound marker is taken as it is.
    pub fn applies_to(&self, workload: &Value) -> bool {
        if self.uid.is_empty() && self.generation == 0 {
            return true;
        }
        let uid = workload
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let generation = workload
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        uid == self.uid && generation == self.generation
    }

    /// The pre-patch template, unpacked.
    pub fn previous_template(&self) -> Option<Value> {
        match &self.template {
            Value::String(s) => {
                let b64 = s.strip_prefix(GZIP_PREFIX)?;
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                let mut text = String::new();
                flate2::read::GzDecoder::new(bytes.as_slice())
                    .take(8 * 1024 * 1024)
                    .read_to_string(&mut text)
                    .ok()?;
                serde_json::from_str(&text).ok()
            }
            Value::Object(_) => Some(self.template.clone()),
            _ => None,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The marker on a workload (raw JSON), if any and readable.
pub fn marker_of(workload: &Value) -> Option<Marker> {
    let v = workload
        .pointer(&format!(
            "/metadata/annotations/{}",
            dep::pointer_segment(IN_PROGRESS)
        ))?
        .as_str()?;
    serde_json::from_str(v).ok()
}

/// Add the marker to a planned JSON Patch (same patch: set atomically with
/// the new template); a marker already there is replaced.
pub fn mark(patch: &mut Value, marker: &Marker) {
    let value = marker.encode();
    let Some(ops) = patch.as_array_mut() else {
        return;
    };
    let own_path = format!(
        "/metadata/annotations/{}",
        dep::pointer_segment(IN_PROGRESS)
    );
    if let Some(op) = ops.iter_mut().find(|op| op["path"] == own_path.as_str()) {
        op["value"] = Value::String(value);
        return;
    }
    // The plan adds the whole annotations map when the object has none.
    if let Some(map) = ops
        .iter_mut()
        .find(|op| op["path"] == "/metadata/annotations" && op["op"] == "add")
        .and_then(|op| op.get_mut("value"))
        .and_then(Value::as_object_mut)
    {
        map.insert(IN_PROGRESS.to_string(), Value::String(value));
        return;
    }
    ops.push(json!({
        "op": "add",
        "path": format!("/metadata/annotations/{}", dep::pointer_segment(IN_PROGRESS)),
        "value": value,
    }));
}

/// `/apis/apps/v1/namespaces/NS/deployments/NAME`
pub fn object_path(ns: &str, name: &str) -> String {
    path_of("deployment", ns, name)
}

/// The object path of a workload of `kind` (`deployment`, `statefulset`,
/// `daemonset`): `/apis/apps/v1/namespaces/NS/<kind>s/NAME`.
pub fn path_of(kind: &str, ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/{kind}s/{name}")
}

/// Send a JSON Patch to an object path.
pub async fn json_patch(
    client: &kube::Client,
    path: &str,
    patch: &Value,
) -> Result<Value, kube::Error> {
    let req = http::Request::builder()
        .method(http::Method::PATCH)
        .uri(format!("{path}?fieldManager=rollguard"))
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(patch.to_string().into_bytes())
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(req).await
}

pub(super) async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
    let req = http::Request::builder()
        .method(http::Method::GET)
        .uri(path)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(req).await
}

/// Remove our marker at the end of a run (only if it is the one we set).
pub async fn clear(client: &kube::Client, kind: &str, ns: &str, name: &str, marker: &Marker) {
    let path = format!(
        "/metadata/annotations/{}",
        dep::pointer_segment(IN_PROGRESS)
    );
    let patch = json!([
        {"op": "test", "path": path, "value": marker.encode()},
        {"op": "remove", "path": path},
    ]);
    let object = path_of(kind, ns, name);
    match json_patch(client, &object, &patch).await {
        Ok(_) => {}
        // Not ours any more: someone changed the workload during the run
        // (`kubectl rollout undo` brings a ReplicaSet's annotations back, a
        // copy of an earlier run's marker among them). A marker that does
        // not describe the workload as it is now goes too.
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => {
            let Ok(current) = get(client, &object).await else {
                return;
            };
            if marker_of(&current).is_some_and(|m| !m.applies_to(&current) || m.run == marker.run) {
                let rv = current
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                let patch = json!([
                    {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                    {"op": "remove", "path": path},
                ]);
                if let Err(e) = json_patch(client, &object, &patch).await {
                    tracing::debug!("could not clear a stale {IN_PROGRESS} on {kind}/{name}: {e}");
                }
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!("could not clear {IN_PROGRESS} on {kind}/{name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_roundtrip_small_and_large() {
        let small = json!({"spec": {"containers": [{"name": "a", "image": "a:1"}]}});
        let m = Marker::new("run", "t", "a:2", "a:1", &small);
        assert_eq!(m.previous_template(), Some(small.clone()));
        let big = json!({"spec": {"containers": [{"name": "a", "image": "a:1", "args": vec!["x".repeat(100); 100]}]}});
        let m = Marker::new("run", "t", "a:2", "a:1", &big);
        assert!(m.template.as_str().unwrap().starts_with(GZIP_PREFIX));
        assert!(m.encode().len() < big.to_string().len());
        assert_eq!(m.previous_template(), Some(big));
        let obj = json!({"metadata": {"annotations": {IN_PROGRESS: m.encode()}}});
        assert_eq!(marker_of(&obj), Some(m));
    }

    #[test]
    fn mark_extends_either_patch_shape() {
        let m = Marker::new("r", "t", "a:2", "a:1", &json!({}));
        let mut p = json!([{"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}}]);
        mark(&mut p, &m);
        assert!(p[0]["value"][IN_PROGRESS].is_string());
        let mut p = json!([{"op": "add", "path": "/metadata/annotations/x", "value": "y"}]);
        mark(&mut p, &m);
        assert_eq!(
            p[1]["path"],
            "/metadata/annotations/rollguard.dev~1in-progress"
        );
    }
}
