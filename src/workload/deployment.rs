//! Deployments: plan the patch, judge a snapshot, plan the rollback. Pure:
//! every function takes objects and returns a decision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod, PodTemplateSpec};
use serde_json::{Value, json};

use crate::diagnose::{self, Cause, Signal};
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

/// Plan the one patch. `deployment` is the raw object as read;
/// `replica_sets` are the Deployment's (to name the previous template hash).
#[allow(clippy::too_many_arguments)] // each is one input of the change; a struct would only rename them
pub fn plan(
    deployment: &Value,
    replica_sets: &[Arc<ReplicaSet>],
    container: Option<&str>,
    change: &ImageChange,
    version: Option<&str>,
    version_label: &str,
    change_cause_origin: &str,
    now: &str,
) -> Result<Plan, NotRollable> {
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

/// What we know from our own patch (the response), to judge against.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub deployment_uid: String,
    /// `metadata.generation` our patch produced.
    pub generation: i64,
    /// `spec.template` as stored after our patch.
    pub template: Value,
    /// The Progressing condition as it was in the patch response: a
    /// ProgressDeadlineExceeded equal to it is stale.
    pub baseline_progressing: Option<DeploymentCondition>,
    pub restart_threshold: i32,
    pub unschedulable_grace: Duration,
}

/// What the watches have seen, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub deployment: Option<Arc<Deployment>>,
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    pub pods: Vec<Arc<Pod>>,
    pub events: Vec<Arc<Event>>,
}

/// Observations over time, kept by the shell with its own clock.
#[derive(Debug, Clone, Default)]
pub struct Timers {
    /// Pod name → how long it has been seen Unschedulable.
    pub unschedulable_for: BTreeMap<String, Duration>,
    /// Pods whose restart count changed recently (success must wait).
    pub recently_restarted: Vec<String>,
}

/// The pod's `Ready` condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

pub use crate::model::progress::Progress;

/// A judgement of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Waiting(Progress),
    Succeeded(Progress),
    Failed {
        progress: Progress,
        cause: Cause,
        signals: Vec<Signal>,
    },
}

/// The new ReplicaSet and its pods.
pub fn new_replica_set<'a>(snap: &'a Snapshot, exp: &Expectations) -> Option<&'a Arc<ReplicaSet>> {
    replica_set_for_template(&exp.deployment_uid, &snap.replica_sets, &exp.template)
}

pub fn pods_of<'a>(snap: &'a Snapshot, rs: &ReplicaSet) -> Vec<&'a Arc<Pod>> {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let mut pods: Vec<&Arc<Pod>> = snap
        .pods
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

/// Signals of the new ReplicaSet's pods.
pub fn new_pod_signals(snap: &Snapshot, exp: &Expectations) -> (usize, Vec<Signal>) {
    let events: Vec<Event> = snap.events.iter().map(|e| (**e).clone()).collect();
    match new_replica_set(snap, exp) {
        None => (0, Vec::new()),
        Some(rs) => {
            let pods = pods_of(snap, rs);
            let mut signals: Vec<Signal> = pods
                .iter()
                .flat_map(|p| diagnose::pod_signals(p, &events))
                .collect();
            // The ReplicaSet cannot create pods (quota, admission): FailedCreate.
            signals.extend(diagnose::replica_set_signals(rs, &events));
            (pods.len(), signals)
        }
    }
}

fn progress(snap: &Snapshot, exp: &Expectations) -> Progress {
    let Some(d) = &snap.deployment else {
        return Progress {
            waiting_for: "the Deployment to be seen".into(),
            ..Default::default()
        };
    };
    let status = d.status.clone().unwrap_or_default();
    let new_ready = new_replica_set(snap, exp)
        .and_then(|rs| rs.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    Progress {
        name: d.metadata.name.clone().unwrap_or_default(),
        desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        current: status.replicas.unwrap_or(0),
        up_to_date: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        new_ready,
        waiting_for: String::new(),
    }
}

fn progressing(d: &Deployment) -> Option<&DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
}

fn same_condition(a: &DeploymentCondition, b: &DeploymentCondition) -> bool {
    a.reason == b.reason
        && a.status == b.status
        && a.message == b.message
        && a.last_update_time == b.last_update_time
        && a.last_transition_time == b.last_transition_time
}

/// kubectl's rollout rule (with observedGeneration ≥ our generation):
/// what is still awaited, or None when the rollout is complete.
pub fn still_waiting_for(d: &Deployment, min_generation: i64) -> Option<String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if observed < generation.max(min_generation) {
        return Some("the Deployment controller to observe the change".into());
    }
    if updated < desired {
        return Some(format!("{} more to be updated", desired - updated));
    }
    if replicas > updated {
        let old = replicas - updated;
        return Some(format!(
            "{old} old replica{} to terminate",
            if old == 1 { "" } else { "s" }
        ));
    }
    if available < updated {
        return Some(format!("{} more to become available", updated - available));
    }
    None
}

/// Judge a snapshot during the rollout: fail fast on the new pods, else
/// kubectl's rule, else waiting.
pub fn judge(snap: &Snapshot, exp: &Expectations, timers: &Timers) -> Verdict {
    let mut p = progress(snap, exp);
    let Some(d) = &snap.deployment else {
        return Verdict::Waiting(p);
    };
    let (_, signals) = new_pod_signals(snap, exp);
    let fatal: Vec<Signal> = signals
        .iter()
        .filter(|s| match s.cause {
            c if c.is_permanent() => true,
            Cause::CrashLoop | Cause::OomKilled => s.restarts >= exp.restart_threshold,
            // Keyed by pod, or by the ReplicaSet for FailedCreate.
            Cause::Unschedulable | Cause::ReplicaFailure => timers
                .unschedulable_for
                .get(&s.pod)
                .is_some_and(|t| *t >= exp.unschedulable_grace),
            _ => false,
        })
        .cloned()
        .collect();
    if let Some(first) = fatal.iter().min_by_key(|s| s.cause) {
        let cause = first.cause;
        let related = signals
            .iter()
            .filter(|s| s.cause == cause)
            .cloned()
            .collect();
        return Verdict::Failed {
            progress: p,
            cause,
            signals: related,
        };
    }
    let observed = d
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    if let Some(c) = progressing(d)
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        && observed >= exp.generation
        && exp
            .baseline_progressing
            .as_ref()
            .is_none_or(|b| !same_condition(b, c))
    {
        let mut sigs = signals.clone();
        sigs.push(Signal {
            cause: Cause::ProgressDeadline,
            pod: String::new(),
            container: None,
            message: c
                .message
                .clone()
                .unwrap_or_else(|| "ProgressDeadlineExceeded".into()),
            restarts: 0,
            exit_code: None,
        });
        return Verdict::Failed {
            progress: p,
            cause: Cause::ProgressDeadline,
            signals: sigs,
        };
    }
    if let Some(w) = still_waiting_for(d, exp.generation) {
        p.waiting_for = w;
        return Verdict::Waiting(p);
    }
    if new_replica_set(snap, exp).is_none() {
        p.waiting_for = "the new ReplicaSet to be seen".into();
        return Verdict::Waiting(p);
    }
    // The Deployment's counts can run ahead of what the pods show: a new pod
    // of a build that crashes right after start may already be down again
    // while the status still counts it available. Every new pod must be
    // Ready in our own view too before the rollout counts as done.
    let ready_now = new_replica_set(snap, exp).map_or(0, |rs| {
        // pods_of already leaves out terminating pods.
        pods_of(snap, rs)
            .into_iter()
            .filter(|pod| pod_is_ready(pod))
            .count() as i32
    });
    let ready = p.new_ready.min(ready_now);
    if ready < p.desired {
        let n = p.desired - ready;
        p.waiting_for = format!(
            "{n} more new pod{} to report Ready",
            if n == 1 { "" } else { "s" }
        );
        return Verdict::Waiting(p);
    }
    if let Some(pod) = timers.recently_restarted.first() {
        p.waiting_for = format!("pod {pod} to stay up after a restart");
        return Verdict::Waiting(p);
    }
    if let Some(s) = signals
        .iter()
        .find(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
    {
        p.waiting_for = format!("pod {} to stop restarting", s.pod);
        return Verdict::Waiting(p);
    }
    Verdict::Succeeded(p)
}

/// Restart counts of the new pods: (pod, container) → restarts.
pub fn restart_counts(snap: &Snapshot, exp: &Expectations) -> BTreeMap<(String, String), i32> {
    let mut out = BTreeMap::new();
    if let Some(rs) = new_replica_set(snap, exp) {
        for p in pods_of(snap, rs) {
            let name = p.metadata.name.clone().unwrap_or_default();
            for cs in p
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
            {
                out.insert((name.clone(), cs.name.clone()), cs.restart_count);
            }
        }
    }
    out
}

/// Judge a snapshot during the bake: any restart since `baseline`, an OOM
/// kill, or an unready new pod fails; otherwise it keeps waiting.
pub fn judge_bake(
    snap: &Snapshot,
    exp: &Expectations,
    baseline: &BTreeMap<(String, String), i32>,
) -> Verdict {
    let p = progress(snap, exp);
    let (_, signals) = new_pod_signals(snap, exp);
    let counts = restart_counts(snap, exp);
    let restarted: Vec<&(String, String)> = counts
        .iter()
        .filter(|(k, v)| baseline.get(*k).is_some_and(|b| *v > b))
        .map(|(k, _)| k)
        .collect();
    if !restarted.is_empty() {
        let sigs: Vec<Signal> = signals
            .iter()
            .filter(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
            .cloned()
            .collect();
        let cause = sigs
            .iter()
            .map(|s| s.cause)
            .min()
            .unwrap_or(Cause::CrashLoop);
        let sigs = if sigs.is_empty() {
            restarted
                .iter()
                .map(|(pod, c)| Signal {
                    cause: Cause::CrashLoop,
                    pod: pod.clone(),
                    container: Some(c.clone()),
                    message: "container restarted during the bake".into(),
                    restarts: counts.get(&(pod.clone(), c.clone())).copied().unwrap_or(0),
                    exit_code: None,
                })
                .collect()
        } else {
            sigs
        };
        return Verdict::Failed {
            progress: p,
            cause,
            signals: sigs,
        };
    }
    // Restarts are judged against the baseline above; other signals fail now.
    let settled = |s: &&Signal| {
        !matches!(
            s.cause,
            Cause::ImagePullTransient | Cause::CrashLoop | Cause::OomKilled
        )
    };
    if let Some(s) = signals.iter().find(settled) {
        return Verdict::Failed {
            progress: p,
            cause: s.cause,
            signals: signals
                .iter()
                .filter(|x| x.cause == s.cause)
                .cloned()
                .collect(),
        };
    }
    if let Some(rs) = new_replica_set(snap, exp) {
        for pod in pods_of(snap, rs) {
            if !pod_is_ready(pod)
                && baseline
                    .keys()
                    .any(|(n, _)| Some(n) == pod.metadata.name.as_ref())
            {
                return unready_during_bake(p, pod);
            }
        }
    }
    Verdict::Waiting(p)
}

/// A new pod turned unready during the bake: a container that exited is a
/// crash (judged before the Ready condition, as the kubelet reports the exit
/// with Ready=False); otherwise the unready container's readiness.
pub fn unready_during_bake(p: Progress, pod: &Pod) -> Verdict {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let crashed: Vec<Signal> = diagnose::pod_signals(pod, &[])
        .into_iter()
        .filter(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
        .collect();
    if let Some(cause) = crashed.iter().map(|s| s.cause).min() {
        return Verdict::Failed {
            progress: p,
            cause,
            signals: crashed,
        };
    }
    let container = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| !c.ready)
        .map(|c| c.name.clone());
    Verdict::Failed {
        progress: p,
        cause: Cause::ReadinessFailing,
        signals: vec![Signal {
            cause: Cause::ReadinessFailing,
            pod: name,
            container,
            message: "pod turned unready during the bake".into(),
            restarts: 0,
            exit_code: None,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items<T: serde::de::DeserializeOwned>(v: Value) -> Vec<T> {
        serde_json::from_value(v["items"].clone()).unwrap()
    }

    fn read(dir: &str, file: &str) -> Value {
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

    fn snapshot(dir: &str, name: &str) -> (Snapshot, Value) {
        let ds: Vec<Deployment> = items(read(dir, "deployments.json"));
        let raw = read(dir, "deployments.json")["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap()
            .clone();
        let rss: Vec<ReplicaSet> = items(read(dir, "replicasets.json"));
        let pods: Vec<Pod> = items(read(dir, "pods.json"));
        let events: Vec<Event> = items(read(dir, "events.json"));
        let d = ds
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .unwrap();
        (
            Snapshot {
                deployment: Some(Arc::new(d)),
                replica_sets: rss.into_iter().map(Arc::new).collect(),
                pods: pods.into_iter().map(Arc::new).collect(),
                events: events.into_iter().map(Arc::new).collect(),
            },
            raw,
        )
    }

    fn expectations(raw: &Value, baseline: Option<DeploymentCondition>) -> Expectations {
        Expectations {
            deployment_uid: raw["metadata"]["uid"].as_str().unwrap().into(),
            generation: raw["metadata"]["generation"].as_i64().unwrap(),
            template: raw["spec"]["template"].clone(),
            baseline_progressing: baseline,
            restart_threshold: 2,
            unschedulable_grace: Duration::from_secs(30),
        }
    }

    #[test]
    fn healthy_is_succeeded() {
        let (snap, raw) = snapshot("01-healthy", "web");
        let v = judge(&snap, &expectations(&raw, None), &Timers::default());
        assert!(matches!(v, Verdict::Succeeded(_)), "{v:?}");
    }

    #[test]
    fn complete_counts_with_a_new_pod_down_are_not_success() {
        // The Deployment says complete, but one new pod is no longer Ready
        // (a build that crashes right after start): keep waiting.
        let (mut snap, raw) = snapshot("01-healthy", "web");
        let mut pod = (*snap.pods[0]).clone();
        for c in pod
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .into_iter()
            .flatten()
        {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        snap.pods[0] = std::sync::Arc::new(pod);
        match judge(&snap, &expectations(&raw, None), &Timers::default()) {
            Verdict::Waiting(p) => assert_eq!(p.waiting_for, "1 more new pod to report Ready"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn mid_rollout_is_waiting() {
        let (snap, raw) = snapshot("02-mid-rollout-slow", "web");
        match judge(&snap, &expectations(&raw, None), &Timers::default()) {
            Verdict::Waiting(p) => assert!(
                p.line().starts_with("web: ") && p.line().contains(" of 3 new replicas updated, "),
                "{}",
                p.line()
            ),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn missing_image_fails_fast() {
        let (snap, raw) = snapshot("03-image-missing", "web");
        match judge(&snap, &expectations(&raw, None), &Timers::default()) {
            Verdict::Failed { cause, signals, .. } => {
                assert_eq!(cause, Cause::ImageNotFound);
                assert_eq!(signals.len(), 1);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn crash_loop_fails_at_threshold() {
        let (snap, raw) = snapshot("04-crash-loop", "web");
        let mut exp = expectations(&raw, None);
        assert!(matches!(
            judge(&snap, &exp, &Timers::default()),
            Verdict::Failed {
                cause: Cause::CrashLoop,
                ..
            }
        ));
        exp.restart_threshold = 3;
        assert!(matches!(
            judge(&snap, &exp, &Timers::default()),
            Verdict::Waiting(_)
        ));
    }

    #[test]
    fn failed_create_of_the_new_replica_set_fails_after_grace() {
        let (mut snap, raw) = snapshot("02-mid-rollout-slow", "web");
        let exp = expectations(&raw, None);
        let rs = new_replica_set(&snap, &exp).unwrap().clone();
        let name = rs.metadata.name.clone().unwrap();
        let mut failing = (*rs).clone();
        let status = failing.status.get_or_insert_with(Default::default);
        status.conditions = Some(vec![serde_json::from_value(serde_json::json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"web-abc-xyz\" is forbidden: exceeded quota: compute, requested: cpu=500m, used: cpu=1500m, limited: cpu=2"
        }))
        .unwrap()]);
        snap.replica_sets = snap
            .replica_sets
            .iter()
            .map(|r| {
                if r.metadata.name.as_deref() == Some(name.as_str()) {
                    Arc::new(failing.clone())
                } else {
                    r.clone()
                }
            })
            .collect();
        assert!(matches!(
            judge(&snap, &exp, &Timers::default()),
            Verdict::Waiting(_)
        ));
        let mut timers = Timers::default();
        timers
            .unschedulable_for
            .insert(name, Duration::from_secs(31));
        match judge(&snap, &exp, &timers) {
            Verdict::Failed { cause, signals, .. } => {
                assert_eq!(cause, Cause::ReplicaFailure);
                assert!(signals[0].message.contains("exceeded quota: compute"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn unschedulable_waits_for_grace() {
        let (snap, raw) = snapshot("06-unschedulable-surge", "hog");
        let exp = expectations(&raw, None);
        assert!(matches!(
            judge(&snap, &exp, &Timers::default()),
            Verdict::Waiting(_)
        ));
        let mut timers = Timers::default();
        timers
            .unschedulable_for
            .insert("hog-6f5b579d8-lh2dx".into(), Duration::from_secs(31));
        assert!(matches!(
            judge(&snap, &exp, &timers),
            Verdict::Failed {
                cause: Cause::Unschedulable,
                ..
            }
        ));
    }

    #[test]
    fn stale_progress_deadline_is_ignored() {
        let (snap, raw) = snapshot("07-progress-deadline-exceeded", "web");
        let d = snap.deployment.clone().unwrap();
        let stale = progressing(&d).cloned();
        let exp = expectations(&raw, stale);
        assert!(!matches!(
            judge(&snap, &exp, &Timers::default()),
            Verdict::Failed {
                cause: Cause::ProgressDeadline,
                ..
            }
        ));
        let exp = expectations(&raw, None);
        assert!(matches!(
            judge(&snap, &exp, &Timers::default()),
            Verdict::Failed { .. }
        ));
    }

    #[test]
    fn plans_one_patch_for_the_named_container() {
        let (snap, raw) = snapshot("01-healthy", "web");
        let p = plan(
            &raw,
            &snap.replica_sets,
            None,
            &ImageChange::Tag("v2".into()),
            None,
            "app.kubernetes.io/version",
            "ci",
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(p.new_image, "example/web:v2");
        assert_eq!(p.version, "v2");
        assert!(p.previous_template_hash.is_some());
        let mut patched = raw.clone();
        let patch: json_patch::Patch = serde_json::from_value(p.patch.clone()).unwrap();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(
            patched["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
            "v2"
        );
        assert!(
            patched["spec"]["selector"]["matchLabels"]
                .get("app.kubernetes.io/version")
                .is_none()
        );
        let back = rollback_patch(
            &patched["spec"]["template"],
            &serde_json::from_value(patched["metadata"]["annotations"].clone()).unwrap(),
            &p.previous_template,
            &p.previous_annotations,
        );
        let back: json_patch::Patch = serde_json::from_value(back).unwrap();
        json_patch::patch(&mut patched, &back).unwrap();
        assert_eq!(patched["spec"], raw["spec"]);
        assert_eq!(
            patched["metadata"]["annotations"],
            raw["metadata"]["annotations"]
        );
    }
}
