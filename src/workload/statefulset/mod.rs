//! StatefulSets: the same one-patch plan as Deployments (image, version
//! label in the template, annotations), judged on the pods of the update
//! revision; rollback restores the exact pre-patch template and then
//! deletes the pods of the bad revision that are stuck (the "forced
//! rollback" upstream documents for `OrderedReady`). Pure.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::deployment::{Ask, NotRollable, Plan, Progress};

pub mod rollout;

pub const REVISION_LABEL: &str = "controller-revision-hash";

fn n(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// Plan the one patch (see [`super::deployment::plan`]).
pub fn plan(raw: &Value, ask: &Ask<'_>) -> Result<Plan, NotRollable> {
    template_plan("statefulset", raw, ask)
}

/// The Deployment plan, for any object with `spec.template` and a
/// `matchLabels` selector; messages name `kind`.
pub(crate) fn template_plan(kind: &str, raw: &Value, ask: &Ask<'_>) -> Result<Plan, NotRollable> {
    let name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    if raw
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return Err(NotRollable(format!(
            "{kind}/{name} uses updateStrategy OnDelete: its pods are only replaced when deleted, so a rollout cannot be followed; switch it to RollingUpdate"
        )));
    }
    super::deployment::plan(raw, &[], ask).map_err(|e| {
        NotRollable(e.0.replace(&format!("deployment/{name}"), &format!("{kind}/{name}")))
    })
}

/// The StatefulSet's `partition` (0 when unset).
pub fn partition(sts: &Value) -> i64 {
    n(sts, "/spec/updateStrategy/rollingUpdate/partition")
}

fn replicas(sts: &Value) -> i64 {
    sts.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// kubectl's StatefulSet rule: what is still awaited, or None when done.
pub fn still_waiting_for(sts: &Value, min_generation: i64) -> Option<String> {
    let generation = n(sts, "/metadata/generation");
    if n(sts, "/status/observedGeneration") < generation.max(min_generation) {
        return Some("the StatefulSet controller to observe the change".into());
    }
    let replicas = replicas(sts);
    let partition = partition(sts);
    let want = (replicas - partition).max(0);
    let updated = n(sts, "/status/updatedReplicas");
    if updated < want {
        return Some(format!("{} more to be updated", want - updated));
    }
    let ready = n(sts, "/status/readyReplicas");
    if ready < replicas {
        return Some(format!("{} more to be ready", replicas - ready));
    }
    if partition == 0 {
        let current = sts
            .pointer("/status/currentRevision")
            .and_then(Value::as_str);
        let update = sts
            .pointer("/status/updateRevision")
            .and_then(Value::as_str);
        if current != update {
            return Some("the current revision to become the update revision".into());
        }
    }
    None
}

/// The update revision, once the controller observed `min_generation`.
pub fn update_revision(sts: &Value, min_generation: i64) -> Option<String> {
    if n(sts, "/status/observedGeneration") < min_generation {
        return None;
    }
    sts.pointer("/status/updateRevision")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The pods of `revision`.
pub fn pods_of_revision(pods: &[Arc<Pod>], revision: &str) -> Vec<Arc<Pod>> {
    super::pods_labelled(pods, REVISION_LABEL, revision)
}

/// The pods of `bad_revision` that the controller will not replace by itself.
pub fn stuck_pods(pods: &[Arc<Pod>], bad_revision: &str) -> Vec<String> {
    pods_of_revision(pods, bad_revision)
        .iter()
        .filter(|p| super::pod_is_stuck(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

/// The counts for progress lines: desired, current, up-to-date, ready.
pub fn progress(sts: &Value, new_ready: i32) -> Progress {
    Progress {
        name: sts
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        desired: replicas(sts) as i32,
        current: n(sts, "/status/replicas") as i32,
        up_to_date: n(sts, "/status/updatedReplicas") as i32,
        available: n(sts, "/status/availableReplicas").max(n(sts, "/status/readyReplicas")) as i32,
        new_ready,
        waiting_for: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(status: Value) -> Value {
        json!({"metadata": {"name": "db", "generation": 2},
               "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "db"}},
                        "spec": {"containers": [{"name": "db", "image": "example/db:1"}]}}},
               "status": status})
    }

    #[test]
    fn done_needs_revisions_equal() {
        let s = sts(
            json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
            "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "b"}),
        );
        assert!(still_waiting_for(&s, 2).is_some());
        let s = sts(
            json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
            "updatedReplicas": 3, "currentRevision": "b", "updateRevision": "b"}),
        );
        assert_eq!(still_waiting_for(&s, 2), None);
        assert!(still_waiting_for(&s, 3).is_some());
    }

    #[test]
    fn plans_and_refuses_on_delete() {
        let s = sts(json!({}));
        let change = crate::image::ImageChange::Tag("2".into());
        let ask = crate::workload::deployment::Ask {
            container: None,
            change: &change,
            version: None,
            version_label: "v",
            origin: "ci",
            now: "now",
        };
        let p = plan(&s, &ask).unwrap();
        assert_eq!(p.new_image, "example/db:2");
        let mut s = s;
        s["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        assert!(
            plan(&s, &ask)
                .unwrap_err()
                .0
                .starts_with("statefulset/db uses")
        );
    }
}
