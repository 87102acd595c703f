//! The Deployment canary's objects as the canary suites check them: the
//! `web-canary` Deployment, the pods carrying the canary label, and what a
//! failing canary must leave as it was.

use std::time::Duration;

use kubesim::Handle;
use serde_json::{Value, json};

use super::{
    WAIT, deployment_named, live_pods, names_and_images, rolled_out, statefulset_named,
    statefulset_pods, statefulset_settled,
};

pub const CANARY_LABEL: &str = "rollguard.dev/canary";

pub fn canary_deployment(h: &Handle) -> Option<Value> {
    h.get("apps/v1", "Deployment", "default", "web-canary")
        .map(|d| (*d).clone())
}

/// Every pod carrying the canary label, terminating or not.
pub fn canary_pods(h: &Handle) -> Vec<Value> {
    h.list("v1", "Pod", "default")
        .into_iter()
        .filter(|p| !p["metadata"]["labels"][CANARY_LABEL].is_null())
        .map(|p| (*p).clone())
        .collect()
}

/// No canary Deployment and no canary pod, terminating or not.
pub fn assert_no_canary_left(h: &Handle) {
    assert!(
        canary_deployment(h).is_none(),
        "the canary Deployment web-canary is left"
    );
    let pods = canary_pods(h);
    assert!(
        pods.is_empty(),
        "canary pods are left: {:?}",
        pods.iter()
            .map(|p| p["metadata"]["name"].clone())
            .collect::<Vec<_>>()
    );
}

/// What `stable_state` reads.
pub type StableState = (Value, Value, Value, Vec<(String, String)>);

/// A failed, cancelled or refused canary changed nothing: the stable
/// Deployment is as `before`, and no canary object or pod is left.
pub fn assert_untouched(h: &Handle, before: &StableState) {
    assert_eq!(stable_state(h), *before, "the stable Deployment changed");
    assert_no_canary_left(h);
}

/// What must not change when the canary fails: the stable Deployment's
/// template, resourceVersion and generation, and its pods (name, image).
pub fn stable_state(h: &Handle) -> StableState {
    let d = deployment_named(h, "web");
    let pods = names_and_images(
        live_pods(h)
            .iter()
            .filter(|p| p["metadata"]["labels"][CANARY_LABEL].is_null()),
    );
    (
        d["spec"]["template"].clone(),
        d["metadata"]["resourceVersion"].clone(),
        d["metadata"]["generation"].clone(),
        pods,
    )
}

/// A Deployment `web` of 4 ready v1 pods (label `app: web`, as the
/// metrics carry it).
pub async fn web_of_4(h: &Handle) {
    h.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "example/web:v1"}]}}
        }
    }))
    .unwrap();
    assert!(
        h.wait_for(Duration::from_secs(120), |h| rolled_out(h, "web"))
            .await,
        "web never became ready"
    );
}

/// Wait for the StatefulSet `db` of 4 to settle after its canary failed or
/// was cancelled, then check it is back: the stable `template`, `good` (the
/// stable revision) current, partition 0 and no saved partition, db-0..db-2
/// the very same pods as `before`, db-3 on the stable image and revision.
pub async fn assert_db_restored(
    h: &Handle,
    template: &Value,
    good: &str,
    before: &[(String, String, String, String)],
) {
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 4)).await);
    let s = statefulset_named(h, "db");
    assert_eq!(
        &s["spec"]["template"], template,
        "the template is the stable one again"
    );
    assert_eq!(s["status"]["currentRevision"], good);
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    assert!(s["metadata"]["annotations"]["rollguard.dev/canary-partition"].is_null());
    let after = statefulset_pods(h);
    assert_eq!(after[..3], before[..3], "a stable ordinal was touched");
    assert_eq!(after[3].0, "db-3");
    assert_eq!(after[3].2, "example/db:1");
    assert_eq!(after[3].3, good, "db-3 is not on the stable revision");
}
