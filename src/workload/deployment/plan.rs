//! A Deployment's one patch, decided before anything changes: the image
//! and version label of the pod template, the change-cause and previous
//! image annotations, the `test` of the resourceVersion; and the patch that
//! restores the template it replaced. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Value, json};

use crate::image::ImageChange;
use crate::image::Reference;

pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
pub const PREVIOUS_IMAGE: &str = "rollguard.dev/previous-image";
pub const PREVIOUS_TEMPLATE_HASH: &str = "rollguard.dev/previous-template-hash";
pub const RESTARTED_AT: &str = "rollguard.dev/restartedAt";
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Why the workload cannot be rolled (exit 2, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotRollable(pub String);

/// What the patch will do, decided before anything changes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub container: String,
    pub containers: Vec<String>,
    pub old_image: String,
    pub new_image: String,
    pub version: String,
    /// The JSON Patch to send.
    pub patch: Value,
    /// The exact `spec.template` before the patch (for rollback and the report).
    pub previous_template: Value,
    /// Annotations of the Deployment before the patch.
    pub previous_annotations: BTreeMap<String, String>,
    pub previous_template_hash: Option<String>,
    pub previous_revision: Option<i64>,
}

impl Plan {
    /// The line that opens the rollout.
    pub fn rolling_line(
        &self,
        w: &crate::k8s::kind::WorkloadRef,
        ns: &str,
        version_label: &str,
    ) -> String {
        format!(
            "rolling {w} in {ns}: container {} {} → {} (version {version_label}={})",
            self.container, self.old_image, self.new_image, self.version
        )
    }

    /// What a dry run says it would send.
    pub fn dry_run_text(&self, w: &crate::k8s::kind::WorkloadRef, ns: &str) -> String {
        format!(
            "pre-flight passed; this JSON Patch would be sent to {w} in {ns}:\n{}",
            serde_json::to_string_pretty(&self.patch).unwrap_or_default()
        )
    }
}

/// JSON Pointer escaping of one path segment.
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The template as the typed model sees it, as JSON, without the
/// controller's `pod-template-hash` label: equal templates compare equal.
pub fn normalised_template(t: &Value) -> Value {
    let mut typed: Value = serde_json::from_value::<PodTemplateSpec>(t.clone())
        .ok()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| t.clone());
    if let Some(labels) = typed
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    typed
}

fn typed_template_value(t: Option<&PodTemplateSpec>) -> Value {
    t.and_then(|t| serde_json::to_value(t).ok())
        .map(|v| normalised_template(&v))
        .unwrap_or(Value::Null)
}

fn owned_by(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// The ReplicaSet of this Deployment whose template equals `template`
/// (ignoring `pod-template-hash`): found by ownership and content, never by age.
pub fn replica_set_for_template<'a>(
    deployment_uid: &str,
    replica_sets: &'a [Arc<ReplicaSet>],
    template: &Value,
) -> Option<&'a Arc<ReplicaSet>> {
    let want = normalised_template(template);
    replica_sets
        .iter()
        .filter(|rs| owned_by(rs, deployment_uid))
        .find(|rs| typed_template_value(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == want)
}

/// What a run asks of a plan: the change, which container, the version and
/// its label, where the run comes from (for change-cause) and when.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub container: Option<&'a str>,
    pub change: &'a ImageChange,
    pub version: Option<&'a str>,
    pub version_label: &'a str,
    pub origin: &'a str,
    pub now: &'a str,
}

/// Plan the one patch. `deployment` is the raw object as read;
/// `replica_sets` are the Deployment's (to name the previous template hash).
pub fn plan(
    deployment: &Value,
    replica_sets: &[Arc<ReplicaSet>],
    ask: &Ask<'_>,
) -> Result<Plan, NotRollable> {
    let Ask {
        container,
        change,
        version,
        version_label,
        origin: change_cause_origin,
        now,
    } = *ask;
    let name = deployment
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    if deployment.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Err(NotRollable(format!(
            "deployment/{name} is paused: resume it (kubectl rollout resume deployment/{name}) or deploy after the pause ends"
        )));
    }
    let template = deployment
        .pointer("/spec/template")
        .cloned()
        .ok_or_else(|| NotRollable(format!("deployment/{name} has no pod template")))?;
    // Regular containers, then init containers (migrations often run as
    // one): (list key, index, name, image).
    let list = |key: &'static str| -> Vec<(&'static str, usize, String, String)> {
        template
            .pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            key,
                            i,
                            c["name"].as_str().unwrap_or("").to_string(),
                            c["image"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = list("containers");
    let init_containers = list("initContainers");
    let names: Vec<String> = containers.iter().map(|c| c.2.clone()).collect();
    let (list_key, index, cname, old_image) = match container {
        Some(want) => containers
            .iter()
            .chain(init_containers.iter())
            .find(|c| c.2 == want)
            .cloned()
            .ok_or_else(|| {
                let init: Vec<&str> = init_containers.iter().map(|c| c.2.as_str()).collect();
                NotRollable(format!(
                    "deployment/{name} has no container \"{want}\"; its containers are: {}{}",
                    names.join(", "),
                    if init.is_empty() {
                        String::new()
                    } else {
                        format!("; its init containers: {}", init.join(", "))
                    }
                ))
            })?,
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(NotRollable(format!(
                "deployment/{name} has {} containers ({}): set the container input to the one to update",
                containers.len(),
                names.join(", ")
            )));
        }
    };
    let new_image = match change {
        ImageChange::Image(i) => i.clone(),
        ImageChange::Tag(t) => {
            let current = Reference::parse(&old_image).map_err(|p| {
                NotRollable(format!(
                    "the current image of container {cname} (\"{old_image}\") {p}; give the full image input instead of tag"
                ))
            })?;
            current.with_tag_or_digest(t)
        }
    };
    let reference = Reference::parse(&new_image)
        .map_err(|p| NotRollable(format!("new image \"{new_image}\" {p}")))?;
    let version = match version {
        Some(v) => v.to_string(),
        None => reference
            .version_source()
            .and_then(crate::k8s::names::sanitise_label_value)
            .ok_or_else(|| {
                NotRollable(format!(
                    "cannot make a version label from \"{new_image}\" (no tag): set the version input"
                ))
            })?,
    };
    let selector = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    if selector.is_some_and(|s| s.contains_key(version_label)) {
        return Err(NotRollable(format!(
            "the selector of deployment/{name} uses the version label \"{version_label}\": changing it would orphan the running pods; choose another version-label"
        )));
    }
    let previous_annotations: BTreeMap<String, String> = deployment
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let uid = deployment
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let previous_rs = replica_set_for_template(uid, replica_sets, &template);
    let previous_template_hash = previous_rs.and_then(|rs| {
        rs.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TEMPLATE_HASH_LABEL).cloned())
    });
    let previous_revision = previous_annotations
        .get(REVISION)
        .and_then(|r| r.parse().ok());
    let resource_version = deployment
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);

    // One JSON Patch. Its first op tests metadata.resourceVersion, so it
    // applies only to exactly the object we read: the template kept for
    // rollback is then exactly the one the patch replaced, and a concurrent
    // writer makes the patch fail instead of being silently merged with.
    // (A strategic merge patch would merge into whatever is there now.)
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}),
        json!({"op": "replace", "path": format!("/spec/template/spec/{list_key}/{index}/image"), "value": new_image}),
    ];
    match template.pointer("/metadata/labels").and_then(Value::as_object) {
        Some(_) => ops.push(json!({"op": "add", "path": format!("/spec/template/metadata/labels/{}", pointer_segment(version_label)), "value": version})),
        None => ops.push(json!({"op": "add", "path": "/spec/template/metadata/labels", "value": {version_label: version}})),
    }
    match template.pointer("/metadata/annotations").and_then(Value::as_object) {
        Some(_) => ops.push(json!({"op": "add", "path": format!("/spec/template/metadata/annotations/{}", pointer_segment(RESTARTED_AT)), "value": now})),
        None => ops.push(json!({"op": "add", "path": "/spec/template/metadata/annotations", "value": {RESTARTED_AT: now}})),
    }
    let mut annotations = vec![
        (
            CHANGE_CAUSE,
            format!("rollguard: {cname}={new_image} (run {change_cause_origin})"),
        ),
        (PREVIOUS_IMAGE, old_image.clone()),
    ];
    if let Some(h) = &previous_template_hash {
        annotations.push((PREVIOUS_TEMPLATE_HASH, h.clone()));
    }
    if deployment
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some()
    {
        for (k, v) in annotations {
            ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", pointer_segment(k)), "value": v}));
        }
    } else {
        let map: serde_json::Map<String, Value> = annotations
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": map}));
    }
    Ok(Plan {
        container: cname,
        containers: names,
        old_image,
        new_image,
        version,
        patch: Value::Array(ops),
        previous_template: template,
        previous_annotations,
        previous_template_hash,
        previous_revision,
    })
}

/// The rollback patch: test that the template is still the one we wrote,
/// restore the previous one, and restore or clear our annotations.
pub fn rollback_patch(
    written_template: &Value,
    written_annotations: &BTreeMap<String, String>,
    previous_template: &Value,
    previous_annotations: &BTreeMap<String, String>,
) -> Value {
    let mut ops = vec![
        json!({"op": "test", "path": "/spec/template", "value": written_template}),
        json!({"op": "replace", "path": "/spec/template", "value": previous_template}),
    ];
    for key in [CHANGE_CAUSE, PREVIOUS_IMAGE, PREVIOUS_TEMPLATE_HASH] {
        let path = format!("/metadata/annotations/{}", pointer_segment(key));
        match previous_annotations.get(key) {
            Some(v) => ops.push(json!({"op": "add", "path": path, "value": v})),
            None if written_annotations.contains_key(key) => {
                ops.push(json!({"op": "remove", "path": path}))
            }
            None => {}
        }
    }
    Value::Array(ops)
}
