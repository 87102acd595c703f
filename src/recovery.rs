//! Interrupted-run recovery (issue #8).
//!
//! rollguard keeps no release state, so the workload carries it: the patch
//! that starts a rollout also sets [`IN_PROGRESS`] (the run's identity, when
//! it started, the images and the exact pre-patch template — gzip + base64
//! when large), and every run that finishes clears it ([`clear`]). A run
//! killed with SIGKILL (or a runner that vanished) leaves it behind; the next
//! run on that workload finds it ([`recover_if_needed`]), says so, and rolls
//! the orphaned change back to the template it replaced before going on
//! (when the template is already back, it only clears the marker).

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::k8s::kind::Kind;
use crate::track::{Poll, Watch, wait_until};
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

async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
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

/// What [`recover_if_needed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No interrupted run.
    Clean,
    /// The interrupted run's template was already gone; the marker was cleared.
    Cleared(String),
    /// The orphaned change was rolled back (and became healthy when `healthy`).
    RolledBack { message: String, healthy: bool },
}

/// Before planning: find a marker left by an interrupted run and roll its
/// change back (within `timeout`). Messages go to `out` and are returned for
/// the report. An error is a message for exit 3 (could not recover).
pub async fn recover_if_needed(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    timeout: Duration,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Recovered, String> {
    let recovered = recover_marker(client, ns, kind, name, timeout, out).await?;
    // A canary of the interrupted run: deleted (Deployment) or its saved
    // partition restored once the template is back (StatefulSet).
    let Some(canary) = crate::canary::cleanup::remove_leftover(client, ns, kind, name, out).await
    else {
        return Ok(recovered);
    };
    Ok(match recovered {
        Recovered::Clean => Recovered::Cleared(canary),
        Recovered::Cleared(m) => Recovered::Cleared(format!("{m}; {canary}")),
        Recovered::RolledBack { message, healthy } => Recovered::RolledBack {
            message: format!("{message}; {canary}"),
            healthy,
        },
    })
}

async fn recover_marker(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    timeout: Duration,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Recovered, String> {
    // A ReplicationController keeps its own bookkeeping annotations.
    let Some(workload_kind) = Kind::from_name(kind).filter(|k| *k != Kind::ReplicationController)
    else {
        return Ok(Recovered::Clean);
    };
    let path = path_of(kind, ns, name);
    let raw = match get(client, &path).await {
        Ok(v) => v,
        // The pipeline reports a missing workload itself.
        Err(_) => return Ok(Recovered::Clean),
    };
    let ann = format!(
        "/metadata/annotations/{}",
        dep::pointer_segment(IN_PROGRESS)
    );
    let rv = raw
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    let present = raw.pointer(&ann).is_some();
    let Some(marker) = marker_of(&raw) else {
        if present {
            // Unreadable: not ours to act on; it only confuses later runs.
            let _ = json_patch(
                client,
                &path,
                &json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, {"op": "remove", "path": ann}]),
            )
            .await;
        }
        return Ok(Recovered::Clean);
    };
    if !marker.applies_to(&raw) {
        // A copy (kubectl rollout undo brings a ReplicaSet's annotations
        // back) or a leftover of an older generation: it does not describe
        // the template there now. Removed, and the run goes on from what is
        // there.
        let msg = format!(
            "ignoring a stale rollguard marker on {kind}/{name} (from run {}, for generation {}; the workload is now at generation {}): removed",
            crate::text::one_line(&marker.run),
            marker.generation,
            raw.pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        );
        tracing::info!("{msg}");
        let _ = json_patch(
            client,
            &path,
            &json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, {"op": "remove", "path": ann}]),
        )
        .await;
        return Ok(Recovered::Clean);
    }
    let found = format!(
        "found an interrupted rollguard run on {kind}/{name} (run {}, started {}): its change to {} was never finished",
        crate::text::one_line(&marker.run),
        crate::text::one_line(&marker.started),
        crate::text::one_line(&marker.image)
    );
    let Some(previous) = marker.previous_template() else {
        let _ = writeln!(
            out,
            "{found}, but the template it replaced cannot be read; clearing its marker and going on"
        );
        let _ = json_patch(client, &path, &json!([{"op": "remove", "path": ann}])).await;
        return Ok(Recovered::Cleared(found));
    };
    let current = raw
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if dep::normalised_template(&current) == dep::normalised_template(&previous) {
        let msg = format!(
            "{found}; the template is already back to {}",
            marker.previous_image
        );
        let _ = writeln!(out, "{msg}: clearing its marker");
        let _ = json_patch(
            client,
            &path,
            &json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, {"op": "remove", "path": ann}]),
        )
        .await;
        return Ok(Recovered::Cleared(msg));
    }
    let _ = writeln!(
        out,
        "{found}: rolling it back to the template it replaced ({}) first, then deploying",
        marker.previous_image
    );
    let _ = out.flush();
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
        json!({"op": "replace", "path": "/spec/template", "value": previous}),
        json!({"op": "remove", "path": ann}),
    ];
    let anns = raw
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    if anns.is_some_and(|a| a.contains_key(crate::cancel::STATE)) {
        ops.push(json!({"op": "remove", "path": format!("/metadata/annotations/{}", dep::pointer_segment(crate::cancel::STATE))}));
    }
    let patched = json_patch(client, &path, &Value::Array(ops))
        .await
        .map_err(|e| {
            format!("{found}; rolling it back failed ({e}): nothing else changed, run again")
        })?;
    let generation = patched
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let pods = crate::k8s::objects::match_labels_selector(&raw);
    let healthy = wait_healthy(client, workload_kind, ns, name, &pods, generation, timeout).await;
    let message = if healthy {
        format!(
            "{found}; rolled it back to {} (healthy again) before deploying",
            marker.previous_image
        )
    } else {
        format!(
            "{found}; rolled it back to {} (not healthy within {}) before deploying",
            marker.previous_image,
            humantime::format_duration(timeout)
        )
    };
    let _ = writeln!(out, "{message}");
    Ok(Recovered::RolledBack { message, healthy })
}

/// kubectl's rollout-status rule on a raw Deployment.
pub fn rolled_out(d: &Value, generation: i64) -> bool {
    crate::workload::still_waiting_for(Kind::Deployment, d, generation).is_none()
}

/// Watch the workload until its kind's rollout rule holds for
/// `generation` (or `timeout`).
async fn wait_healthy(
    client: &kube::Client,
    kind: Kind,
    ns: &str,
    name: &str,
    pod_selector: &str,
    generation: i64,
    timeout: Duration,
) -> bool {
    let mut watch = Watch::start_kind(client, ns, kind, name, pod_selector);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet = std::io::sink();
    wait_until(&mut watch, deadline, &mut quiet, |w: &Watch| {
        let waiting = w
            .snapshot()
            .object(name)
            .map(|o| crate::workload::still_waiting_for(kind, o, generation))
            .unwrap_or_else(|| Some(format!("{name} to be seen")));
        match waiting {
            None => Poll::Done {
                line: String::new(),
                found: (),
            },
            Some(waiting_for) => Poll::Pending {
                line: String::new(),
                waiting_for,
            },
        }
    })
    .await
    .is_ok()
}

/// Send our rollout patch; on 409/422 (a conflict, or a repeat of a patch
/// whose response was lost) re-read and re-check instead of failing or
/// clobbering (issue #8):
/// - the object carries our marker → our patch landed: its current state is the answer;
/// - the template is still the one we planned from (only the
///   resourceVersion moved, e.g. a status or annotation write) → retry with
///   the new resourceVersion in the patch's `test` op (at most 3 times);
/// - anything else (someone changed the template) → the original error.
pub async fn patch_rechecked(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
    patch: &mut Value,
    previous_template: &Value,
    marker: &mut Marker,
) -> Result<Value, kube::Error> {
    let path = path_of(kind, ns, name);
    let mut attempts = 0;
    loop {
        let err = match json_patch(client, &path, patch).await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => kube::Error::Api(s),
            Err(e) => return Err(e),
        };
        attempts += 1;
        let Ok(current) = get(client, &path).await else {
            return Err(err);
        };
        if marker_of(&current).as_ref() == Some(&*marker) {
            tracing::info!("our patch of {kind}/{name} had landed (its response was lost)");
            return Ok(current);
        }
        let template = current
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        if attempts > 3
            || dep::normalised_template(&template) != dep::normalised_template(previous_template)
        {
            return Err(err);
        }
        let rv = current
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        tracing::info!(
            "{kind}/{name} changed (resourceVersion only) between our read and our patch: re-checked, patching again"
        );
        if let Some(op) = patch.as_array_mut().and_then(|ops| {
            ops.iter_mut()
                .find(|op| op["path"] == "/metadata/resourceVersion")
        }) {
            op["value"] = rv;
        }
        // The patch now lands on this object's generation: bind the marker to it.
        if marker.generation != 0 {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            marker.generation = generation + 1;
            mark(patch, marker);
        }
    }
}

/// Send the rollback patch; on 409/422 re-read: if the template already is
/// the previous one (our rollback landed, its response was lost), that is
/// the answer; otherwise the original error (never clobber another writer).
pub async fn rollback_rechecked(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
    patch: &Value,
    previous_template: &Value,
) -> Result<Value, kube::Error> {
    let path = path_of(kind, ns, name);
    let mut tries = 0;
    loop {
        let err = match json_patch(client, &path, patch).await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => kube::Error::Api(s),
            Err(e) => return Err(e),
        };
        tries += 1;
        let Ok(current) = get(client, &path).await else {
            return Err(err);
        };
        let template = current
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        if dep::normalised_template(&template) == dep::normalised_template(previous_template) {
            return Ok(current);
        }
        // A bare 409 (no test failed: an injected or storage conflict) is worth one more try.
        let conflict = matches!(&err, kube::Error::Api(s) if s.code == 409);
        if !conflict || tries > 3 {
            return Err(err);
        }
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
