//! DaemonSets: the same one-patch plan as Deployments, judged on the pods
//! of the new template generation; rollback restores the exact pre-patch
//! template (the controller then replaces the bad pods itself). Pure.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::deployment::{Ask, NotRollable, Plan, Progress};

pub mod rollout;

/// The label the DaemonSet controller puts on its pods: the generation of
/// the template they were made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

fn n(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// Plan the one patch (see [`super::deployment::plan`]).
pub fn plan(raw: &Value, ask: &Ask<'_>) -> Result<Plan, NotRollable> {
    super::statefulset::template_plan("daemonset", raw, ask)
}

/// kubectl's DaemonSet rule: what is still awaited, or None when done.
pub fn still_waiting_for(ds: &Value, min_generation: i64) -> Option<String> {
    let generation = n(ds, "/metadata/generation");
    if n(ds, "/status/observedGeneration") < generation.max(min_generation) {
        return Some("the DaemonSet controller to observe the change".into());
    }
    let desired = n(ds, "/status/desiredNumberScheduled");
    let updated = n(ds, "/status/updatedNumberScheduled");
    if updated < desired {
        return Some(format!("{} more to be updated", desired - updated));
    }
    let available = n(ds, "/status/numberAvailable");
    if available < desired {
        return Some(format!("{} more to become available", desired - available));
    }
    None
}

/// The pods made from the template of `generation`.
pub fn pods_of_generation(pods: &[Arc<Pod>], generation: i64) -> Vec<Arc<Pod>> {
    super::pods_labelled(pods, TEMPLATE_GENERATION_LABEL, &generation.to_string())
}

/// The counts for progress lines.
pub fn progress(ds: &Value, new_ready: i32) -> Progress {
    Progress {
        name: ds
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        desired: n(ds, "/status/desiredNumberScheduled") as i32,
        current: n(ds, "/status/currentNumberScheduled") as i32,
        up_to_date: n(ds, "/status/updatedNumberScheduled") as i32,
        available: n(ds, "/status/numberAvailable") as i32,
        new_ready,
        waiting_for: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn done_when_updated_and_available() {
        let mut d = json!({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
            "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert!(still_waiting_for(&d, 2).unwrap().contains("available"));
        d["status"]["numberAvailable"] = json!(3);
        assert_eq!(still_waiting_for(&d, 2), None);
        d["status"]["observedGeneration"] = json!(1);
        assert!(still_waiting_for(&d, 2).is_some());
    }
}
