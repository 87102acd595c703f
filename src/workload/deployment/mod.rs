//! Deployments: plan the patch ([`plan`]), judge a snapshot ([`status`]),
//! roll out and back ([`rollout`], on the watches of [`tracker`]).

pub use crate::k8s::objects::pod_is_ready;
pub use crate::model::progress::{Progress, Timers, Verdict};

pub mod canary;
pub mod hub;
pub mod plan;
pub mod rollout;
pub mod status;
pub mod subject;
pub mod tracker;

pub use plan::*;
pub use status::*;

#[cfg(test)]
mod tests {
    use super::status::progressing;
    use super::*;

    use crate::model::Cause;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
    use k8s_openapi::api::core::v1::Event;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::Value;
    use std::sync::Arc;
    use std::time::Duration;

    fn items<T: serde::de::DeserializeOwned>(v: Value) -> Vec<T> {
        serde_json::from_value(v["items"].clone()).unwrap()
    }

    fn read(dir: &str, file: &str) -> Value {
        crate::k8s::objects::real_fixture(dir, file)
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
        let limits = crate::workload::Limits {
            restart_threshold: 2,
            unschedulable_grace: Duration::from_secs(30),
        };
        Expectations::of(raw, baseline, limits)
    }

    /// The verdict once `pod` has been unschedulable past the grace (it
    /// must be waiting before).
    fn past_the_grace(snap: &Snapshot, exp: &Expectations, pod: &str) -> Verdict {
        assert!(matches!(
            judge(snap, exp, &Timers::default()),
            Verdict::Waiting(_)
        ));
        let mut timers = Timers::default();
        timers
            .unschedulable_for
            .insert(pod.to_string(), Duration::from_secs(31));
        judge(snap, exp, &timers)
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
        match past_the_grace(&snap, &exp, &name) {
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
            past_the_grace(&snap, &exp, "hog-6f5b579d8-lh2dx"),
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
            &crate::workload::deployment::Ask {
                container: None,
                change: &crate::image::ImageChange::Tag("v2".into()),
                version: None,
                version_label: "app.kubernetes.io/version",
                origin: "ci",
                now: "2026-01-01T00:00:00Z",
            },
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
