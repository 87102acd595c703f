//! A second signal during a group rollout: every workload of the group
//! that was patched carries the state annotation, not only the last one.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

fn field(h: &kubesim::Handle, name: &str, pointer: &str) -> Option<String> {
    deployment_named(h, name)
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn image_of(h: &kubesim::Handle, name: &str) -> String {
    field(h, name, "/spec/template/spec/containers/0/image").unwrap_or_default()
}

fn state_of(h: &kubesim::Handle, name: &str) -> Option<String> {
    // The annotation key has a '/': escaped as '~1' in a JSON pointer.
    let key = rollguard::cancel::STATE.replace('/', "~1");
    field(h, name, &format!("/metadata/annotations/{key}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_annotates_every_workload_of_the_group() {
    let h = cluster(1.0).await;
    for name in ["web", "api"] {
        create_ready(&h, deployment(name, &format!("example/{name}:v1"))).await;
        // The new pods take long to become ready: the run is still following.
        slow_image(&h, &format!("example/{name}:v2"), 600);
    }
    let child = spawn(&env(
        &h,
        &[
            ("ROLLGUARD_WORKLOAD", "deployment/web, deployment/api"),
            ("ROLLGUARD_TAG", "v2"),
            ("ROLLGUARD_TIMEOUT", "10m"),
        ],
    ));
    assert!(
        h.wait_for(WAIT, |h| image_of(h, "web") == "example/web:v2"
            && image_of(h, "api") == "example/api:v2")
            .await,
        "the group was never patched"
    );
    assert!(state_of(&h, "web").is_none() && state_of(&h, "api").is_none());
    signal(&child, "TERM");
    signal(&child, "INT");
    let (out, took) = exited_within(child, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for name in ["web", "api"] {
        let state = state_of(&h, name).unwrap_or_else(|| panic!("no state annotation on {name}"));
        assert!(state.contains("second signal"), "{name}: {state}");
        // Each says what was being done to that workload.
        assert!(
            state.contains(&format!("example/{name}:")),
            "{name}: {state}"
        );
    }
    h.shutdown().await;
}
