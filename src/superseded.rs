//! Someone else's change of the pod template during our rollout: another
//! writer (`kubectl set image`, `kubectl rollout undo`, another pipeline)
//! moved the workload past the generation our patch produced, to a template
//! that is not ours. Following on would judge their rollout as ours, and
//! rolling back would overwrite their change; rollguard stops and says who
//! changed what. A scale (replicas only) bumps the generation too, but leaves
//! the template alone, and is followed as usual.

use serde_json::Value;

use crate::model::{Cause, Signal};
use crate::workload::deployment::normalised_template;

/// The field managers rollguard itself writes as.
const OURS: &[&str] = &["rollguard"];

/// The other writer's change of `workload` (raw JSON), or None while the
/// stored template is still the one our patch produced (`our_template`, at
/// `our_generation`). `container` names the container whose image we set.
pub fn superseded(
    workload: &Value,
    our_generation: i64,
    our_template: &Value,
    container: &str,
) -> Option<Signal> {
    let generation = workload
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if generation <= our_generation {
        return None;
    }
    let theirs = workload.pointer("/spec/template")?;
    if normalised_template(theirs) == normalised_template(our_template) {
        return None;
    }
    let image = |t: &Value| {
        ["containers", "initContainers"]
            .iter()
            .flat_map(|k| t.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
            .flatten()
            .find(|c| c["name"] == container)
            .and_then(|c| c["image"].as_str())
            .map(str::to_string)
    };
    let what = match (image(our_template), image(theirs)) {
        (Some(a), Some(b)) if a != b => format!("container {container} image {a} → {b}"),
        _ => "the pod template (not the image we set)".to_string(),
    };
    let who = last_writer(workload);
    Some(Signal {
        cause: Cause::Superseded,
        pod: String::new(),
        container: Some(container.to_string()),
        message: format!(
            "the pod template was changed by {who} during the rollout (generation {our_generation} → {generation}): {what}"
        ),
        restarts: 0,
        exit_code: None,
    })
}

/// The manager of the newest managedFields entry that is not ours, quoted,
/// or "another writer" when the server records none.
fn last_writer(workload: &Value) -> String {
    workload
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m["manager"].as_str().is_some_and(|n| !OURS.contains(&n)))
        .max_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()))
        .and_then(|m| m["manager"].as_str())
        .map(|m| format!("\"{m}\""))
        .unwrap_or_else(|| "another writer".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(generation: i64, image: &str, managers: Value) -> Value {
        json!({
            "metadata": {"generation": generation, "managedFields": managers},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}
        })
    }

    #[test]
    fn our_own_generation_is_not_a_change() {
        let ours = obj(2, "web:v2", json!([]));
        assert!(superseded(&ours, 2, &ours["spec"]["template"], "web").is_none());
    }

    #[test]
    fn a_scale_is_not_a_change() {
        let ours = obj(2, "web:v2", json!([]));
        let scaled = obj(3, "web:v2", json!([]));
        assert!(superseded(&scaled, 2, &ours["spec"]["template"], "web").is_none());
    }

    #[test]
    fn another_image_names_the_writer() {
        let ours = obj(2, "web:v2", json!([]));
        let theirs = obj(
            3,
            "web:v3",
            json!([
                {"manager": "rollguard", "operation": "Update", "time": "2026-01-01T00:00:09Z"},
                {"manager": "kubectl-set", "operation": "Update", "time": "2026-01-01T00:00:05Z"}
            ]),
        );
        let s = superseded(&theirs, 2, &ours["spec"]["template"], "web").expect("changed");
        assert!(s.message.contains("\"kubectl-set\""), "{}", s.message);
        assert!(s.message.contains("web:v2 → web:v3"), "{}", s.message);
    }
}
