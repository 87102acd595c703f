//! Every kind and every group get the same reliability features from the
//! one pipeline: the deploy lock, the in-progress marker, and cancellation
//! with rollback of every workload.

use crate::support::*;
use serde_json::{Value, json};

fn sts(h: &kubesim::Handle, name: &str) -> Option<Value> {
    h.get("apps/v1", "StatefulSet", "default", name)
        .map(|o| (*o).clone())
}

fn sts_image(h: &kubesim::Handle, name: &str) -> String {
    sts(h, name).map_or(String::new(), |s| {
        s["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
}

/// A Deployment like `web` under another name.
fn deployment<'a>(name: &'a str, image: &'a str) -> DeploymentSpec<'a> {
    DeploymentSpec {
        name,
        image,
        replicas: 2,
        labelled: true,
        ..Default::default()
    }
}

fn deployment_image(h: &kubesim::Handle, name: &str) -> String {
    deployment_named(h, name)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn in_progress(obj: &Value) -> Option<&Value> {
    obj["metadata"]["annotations"]
        .get(rollguard::recovery::IN_PROGRESS)
        .filter(|v| !v.is_null())
}

fn run_env(h: &kubesim::Handle, run_id: &str, pairs: &[(&str, &str)]) -> rollguard::Env {
    let mut base = vec![
        ("ROLLGUARD_CAPACITY_CHECK", "off"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_RUN_ID", run_id),
    ];
    base.extend_from_slice(pairs);
    env(h, &base)
}

/// Two concurrent runs on one StatefulSet: one waits for the other's
/// deploy lock; both succeed, and their changes never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_rollouts_take_the_deploy_lock() {
    let h = Fixture::new().start().await;
    h.create(statefulset("db", "example/db:1", 2)).unwrap();
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 2)).await);
    let a = run_env(
        &h,
        "1",
        &[
            ("ROLLGUARD_WORKLOAD", "statefulset/db"),
            ("ROLLGUARD_TAG", "2"),
        ],
    );
    let b = run_env(
        &h,
        "2",
        &[
            ("ROLLGUARD_WORKLOAD", "statefulset/db"),
            ("ROLLGUARD_TAG", "3"),
        ],
    );
    let ((oa, out_a), (ob, out_b)) = tokio::join!(run(&a), run(&b));
    assert_eq!(oa.exit_code, 0, "{out_a}");
    assert_eq!(ob.exit_code, 0, "{out_b}");
    let waited = [&out_a, &out_b]
        .iter()
        .filter(|o| {
            o.contains(
                "waiting for the deploy lock lease/rollguard-statefulset-db held by https://github.com/o/r/actions/runs/",
            )
        })
        .count();
    assert_eq!(waited, 1, "exactly one run waited:\n{out_a}\n{out_b}");
    // The run that waited deployed last.
    let last = if out_a.contains("waiting for the deploy lock") {
        "example/db:2"
    } else {
        "example/db:3"
    };
    assert_eq!(sts_image(&h, "db"), last);
    assert!(statefulset_settled(&h, "db", 2));
    // Each run's in-progress marker was set with its patch and cleared at its end.
    assert!(in_progress(&sts(&h, "db").unwrap()).is_none());
    h.shutdown().await;
}

/// SIGTERM to the binary during a group rollout: every workload of the
/// group is rolled back, and the run exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rolls_back_every_workload_of_a_group() {
    let h = Fixture::new()
        .speed(1.0)
        .deployment(deployment("web", "example/web:v1"))
        .deployment(deployment("api", "example/api:v1"))
        .start()
        .await;
    slow_image(&h, "example/web:v2", 600);
    slow_image(&h, "example/api:v2", 600);
    let child = spawn(&run_env(
        &h,
        "7",
        &[
            ("ROLLGUARD_WORKLOAD", "deployment/web, deployment/api"),
            ("ROLLGUARD_TAG", "v2"),
            ("ROLLGUARD_TIMEOUT", "10m"),
        ],
    ));
    assert!(
        h.wait_for(WAIT, |h| {
            deployment_image(h, "web") == "example/web:v2"
                && deployment_image(h, "api") == "example/api:v2"
        })
        .await,
        "never patched"
    );
    // Both patches carry the in-progress marker while the rollout runs.
    assert!(in_progress(&deployment_named(&h, "web")).is_some());
    assert!(in_progress(&deployment_named(&h, "api")).is_some());
    let stdout = terminated(child).await;
    assert!(
        stdout.contains("[deployment/web] cancelled (SIGTERM)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[deployment/api] cancelled (SIGTERM)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 workloads cancelled (SIGTERM)"),
        "{stdout}"
    );
    assert_eq!(deployment_image(&h, "web"), "example/web:v1");
    assert_eq!(deployment_image(&h, "api"), "example/api:v1");
    assert!(in_progress(&deployment_named(&h, "web")).is_none());
    assert!(in_progress(&deployment_named(&h, "api")).is_none());
    h.shutdown().await;
}

/// The capacity pre-flight runs for a StatefulSet with its own update
/// strategy (one pod replaced at a time, no surge): pods of 1500m on two
/// nodes of 2 CPU fit (a surge pod would not), and the rollout proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_capacity_preflight_uses_its_strategy() {
    let h = Fixture::new().nodes(2).start().await;
    let mut s = statefulset("db", "example/db:1", 2);
    s["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "1500m"}});
    h.create(s).unwrap();
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 2)).await);
    let (o, out) = run(&run_env(
        &h,
        "3",
        &[
            ("ROLLGUARD_WORKLOAD", "statefulset/db"),
            ("ROLLGUARD_TAG", "2"),
            ("ROLLGUARD_CAPACITY_CHECK", "fail"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(out.contains("pre-flight: capacity:"), "{out}");
    assert_eq!(sts_image(&h, "db"), "example/db:2");
    h.shutdown().await;
}
