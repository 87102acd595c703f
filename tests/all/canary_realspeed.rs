//! The canary story at real speed (kubesim `--speed 1`, the default
//! stability window): a build that becomes Ready and crashes 10 s later is
//! caught on the canary's one pod; the stable Deployment never changes and
//! the canary is gone.

use crate::support;
use std::time::{Duration, Instant};

use crate::support::{cluster, live_pods, run};
use rollguard::Env;
use rollguard::diagnose::Cause;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_ready_is_caught_on_the_canary_and_the_stable_pods_never_change() {
    let h = cluster(1.0).await;
    support::web_of_4(&h).await;
    let stable = |h: &kubesim::Handle| -> (Value, Value, Vec<(String, String)>) {
        let d = support::deployment_named(h, "web");
        let pods = support::names_and_images(&live_pods(h));
        (
            d["spec"]["template"].clone(),
            d["metadata"]["resourceVersion"].clone(),
            pods,
        )
    };
    let before = stable(&h);
    // Default inputs but the canary's (no stable-for, no bake).
    let env: Env = [
        ("ROLLGUARD_KUBECONFIG", h.kubeconfig_yaml().as_str()),
        ("ROLLGUARD_VERIFY_IMAGE", "false"),
        ("ROLLGUARD_WORKLOAD", "deployment/web"),
        ("ROLLGUARD_TAG", "v2-late-crash"),
        ("ROLLGUARD_CANARY", "1"),
        ("ROLLGUARD_CANARY_HOLD", "2m"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let t0 = Instant::now();
    let (o, out) = run(&env).await;
    let took = t0.elapsed();
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(
        o.report.findings.first().map(|f| f.cause),
        Some(Cause::CrashLoop),
        "{out}"
    );
    // Caught inside the stability window (the crash comes ~10 s after Ready),
    // not at the end of the hold.
    assert!(took < Duration::from_secs(60), "took {took:?}\n{out}");
    assert_eq!(
        stable(&h),
        before,
        "the stable Deployment or its pods changed"
    );
    assert!(
        h.get("apps/v1", "Deployment", "default", "web-canary")
            .is_none()
    );
    assert!(
        h.list("v1", "Pod", "default")
            .iter()
            .all(|p| p["metadata"]["labels"]["rollguard.dev/canary"].is_null()),
        "canary pods left"
    );
    let canary = o.report.canary.clone().unwrap_or_default();
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    h.shutdown().await;
}
