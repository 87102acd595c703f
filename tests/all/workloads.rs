//! End-to-end on kubesim: ReplicationController rolling updates (an API of
//! two containers behind a LoadBalancer Service), StatefulSets (with the
//! forced rollback), DaemonSets, and several workloads in one run
//! (all-or-nothing).

use crate::support;

use std::time::Duration;

use crate::support::{
    DeploymentSpec, Fixture, PodLabel, live_pods, rolled_out, run as rollguard, statefulset_settled,
};
use kubesim::Handle;
use kubesim::fixtures::{daemonset, two_container_rc};
use rollguard::Env;
use rollguard::diagnose::Cause;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn env(h: &Handle, pairs: &[(&str, &str)]) -> Env {
    support::env_with(
        h,
        &[
            ("ROLLGUARD_VERIFY_IMAGE", "false"),
            ("ROLLGUARD_CAPACITY_CHECK", "off"),
        ],
        pairs,
    )
}

fn obj(h: &Handle, api: &str, kind: &str, name: &str) -> Option<Value> {
    h.get(api, kind, "default", name).map(|o| (*o).clone())
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn image_of(p: &Value, container: &str) -> String {
    p["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .and_then(|c| c["image"].as_str())
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------- RC

fn api_service() -> Value {
    json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "api-srv", "namespace": "default", "labels": {"name": "api-srv"}},
        "spec": {"type": "LoadBalancer",
                 "ports": [{"port": 3000, "targetPort": 3000, "protocol": "TCP"}],
                 "selector": {"name": "api-pods"}}
    })
}

fn ready_addresses(endpoints: &Value) -> usize {
    endpoints["subsets"]
        .as_array()
        .map(|ss| {
            ss.iter()
                .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

fn rc_ready(h: &Handle, name: &str, n: i64) -> bool {
    obj(h, "v1", "ReplicationController", name)
        .is_some_and(|r| r["status"]["readyReplicas"] == n && r["status"]["replicas"] == n)
}

/// `api-rc` (3 pods) and its Service, every pod a ready address.
async fn api_rc_serving(h: &Handle) {
    h.create(two_container_rc()).unwrap();
    h.create(api_service()).unwrap();
    assert!(
        h.wait_for(WAIT, |h| rc_ready(h, "api-rc", 3)
            && obj(h, "v1", "Endpoints", "api-srv")
                .is_some_and(|e| ready_addresses(&e) == 3))
            .await
    );
}

fn rc_env(h: &Handle, tag: &str) -> Env {
    env(
        h,
        &[
            ("ROLLGUARD_WORKLOAD", "rc/api-rc"),
            ("ROLLGUARD_CONTAINER", "node-api-container"),
            ("ROLLGUARD_TAG", tag),
            ("ROLLGUARD_VERSION_LABEL", "version"),
        ],
    )
}

/// The API behind its Service: the Service never has fewer than 3 ready addresses — checked
/// on every change of its Endpoints — and only node-api-container changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_rolling_update_keeps_the_service_serving() {
    let h = Fixture::new().start().await;
    api_rc_serving(&h).await;
    let mut changes = h.store().subscribe();
    let env = rc_env(&h, "1.0.1");
    let run = rollguard(&env);
    tokio::pin!(run);
    let mut min_ready = usize::MAX;
    let mut endpoint_changes = 0;
    let (o, out) = loop {
        tokio::select! {
            r = &mut run => break r,
            c = changes.recv() => match c {
                Ok(c) if c.res.kind == "Endpoints" && c.name == "api-srv" => {
                    endpoint_changes += 1;
                    min_ready = min_ready.min(ready_addresses(&c.object));
                }
                Ok(_) => {}
                Err(e) => panic!("missed store changes: {e}"),
            }
        }
    };
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(endpoint_changes > 0);
    assert!(
        min_ready >= 3,
        "the Service dropped to {min_ready} ready endpoints"
    );
    assert!(out.contains("Scaling api-rc-1.0.1 up to 1"), "{out}");
    assert!(out.contains("Scaling api-rc down to 2"), "{out}");
    assert!(out.contains("Deleting old controller: api-rc"), "{out}");
    // The old RC is gone; the new one serves with a disjoint selector.
    assert!(
        h.wait_for(WAIT, |h| obj(h, "v1", "ReplicationController", "api-rc")
            .is_none())
            .await
    );
    let new = obj(&h, "v1", "ReplicationController", "api-rc-1.0.1").unwrap();
    assert_eq!(
        new["spec"]["selector"],
        json!({"name": "api-pods", "version": "1.0.1"})
    );
    assert_eq!(new["spec"]["replicas"], 3);
    assert!(h.wait_for(WAIT, |h| live_pods(h).len() == 3).await);
    for p in live_pods(&h) {
        assert_eq!(
            image_of(&p, "node-api-container"),
            "asia.gcr.io/xxxxx/node-api:1.0.1"
        );
        assert_eq!(
            image_of(&p, "fluentd-container"),
            "asia.gcr.io/xxxxx/fluentd:1.0.0"
        );
        assert_eq!(p["metadata"]["labels"]["name"], "api-pods");
    }
    let e = obj(&h, "v1", "Endpoints", "api-srv").unwrap();
    assert_eq!(ready_addresses(&e), 3);
    assert_eq!(o.report.workloads.len(), 1);
    assert!(
        o.report.workloads[0]
            .notes
            .iter()
            .any(|n| n.contains("version=1.0.0"))
    );

    // The next release names the original RC again: found by its base name.
    let (o, out) = rollguard(&rc_env(&h, "1.0.2")).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(h.wait_for(WAIT, |h| rc_ready(h, "api-rc-1.0.2", 3)).await);
    assert!(obj(&h, "v1", "ReplicationController", "api-rc-1.0.1").is_none());
    h.shutdown().await;
}

async fn rc_failure(tag: &str, cause: Cause) {
    let h = Fixture::new().start().await;
    api_rc_serving(&h).await;
    let (o, out) = rollguard(&rc_env(&h, tag)).await;
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(
        o.report.findings.first().map(|f| f.cause),
        Some(cause),
        "{out}"
    );
    let rb = o.report.rollback.clone().expect("rollback reported");
    assert!(rb.attempted && rb.confirmed, "{rb:?}");
    assert!(obj(&h, "v1", "ReplicationController", &format!("api-rc-{tag}")).is_none());
    let old = obj(&h, "v1", "ReplicationController", "api-rc").unwrap();
    assert_eq!(old["spec"]["replicas"], 3);
    assert!(old["metadata"]["annotations"]["rollguard.dev/rolling-update-to"].is_null());
    assert!(
        h.wait_for(WAIT, |h| {
            let pods = live_pods(h);
            pods.len() == 3
                && pods.iter().all(|p| {
                    ready(p)
                        && image_of(p, "node-api-container") == "asia.gcr.io/xxxxx/node-api:1.0.0"
                })
        })
        .await
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_missing_image_is_caught_and_rolled_back() {
    rc_failure("1.0.1-missing", Cause::ImageNotFound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_crash_is_caught_and_rolled_back() {
    rc_failure("1.0.1-crash", Cause::CrashLoop).await;
}

// ---------------------------------------------------------------- StatefulSet

/// A cluster with the StatefulSet `db` of `replicas` on `example/db:1`, settled.
async fn database_settled(replicas: i64) -> Handle {
    let h = Fixture::new().start().await;
    h.create(support::database("db", "example/db:1", replicas))
        .unwrap();
    assert!(
        h.wait_for(WAIT, |h| statefulset_settled(h, "db", replicas))
            .await
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_success() {
    let h = database_settled(3).await;
    let (o, out) = rollguard(&env(
        &h,
        &[("ROLLGUARD_WORKLOAD", "sts/db"), ("ROLLGUARD_TAG", "2")],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(statefulset_settled(&h, "db", 3));
    for p in live_pods(&h) {
        assert_eq!(image_of(&p, "db"), "example/db:2");
        assert_eq!(p["metadata"]["labels"]["app.kubernetes.io/version"], "2");
    }
    assert!(o.report.revision.is_some());
    h.shutdown().await;
}

/// A crashing build with a readiness probe leaves db-2 stuck on the bad
/// revision after the revert: rollguard deletes it (forced rollback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_crash_forced_rollback() {
    let h = database_settled(3).await;
    let good =
        obj(&h, "apps/v1", "StatefulSet", "db").unwrap()["status"]["currentRevision"].clone();
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("ROLLGUARD_WORKLOAD", "statefulset/db"),
            ("ROLLGUARD_TAG", "2-crash"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(
        o.report.findings.first().map(|f| f.cause),
        Some(Cause::CrashLoop)
    );
    let rb = o.report.rollback.clone().unwrap();
    assert!(rb.confirmed, "{rb:?}");
    assert!(rb.detail.contains("forced rollback"), "{rb:?}");
    assert!(out.contains("forced rollback: deleting pod db-2"), "{out}");
    assert!(
        o.report.workloads[0]
            .notes
            .iter()
            .any(|n| n.contains("db-2"))
    );
    assert!(statefulset_settled(&h, "db", 3));
    let s = obj(&h, "apps/v1", "StatefulSet", "db").unwrap();
    assert_eq!(s["status"]["currentRevision"], good);
    assert_eq!(
        s["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/db:1"
    );
    for p in live_pods(&h) {
        assert_eq!(image_of(&p, "db"), "example/db:1");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_missing_image_rolled_back() {
    let h = database_settled(2).await;
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("ROLLGUARD_WORKLOAD", "sts/db"),
            ("ROLLGUARD_TAG", "2-missing"),
        ],
    ))
    .await;
    support::assert_rolled_back(&o, &out, 1, Cause::ImageNotFound);
    assert!(statefulset_settled(&h, "db", 2));
    h.shutdown().await;
}

// ---------------------------------------------------------------- DaemonSet

fn ds_done(h: &Handle, name: &str, n: i64) -> bool {
    let Some(d) = obj(h, "apps/v1", "DaemonSet", name) else {
        return false;
    };
    let st = &d["status"];
    st["desiredNumberScheduled"] == n
        && st["updatedNumberScheduled"] == n
        && st["numberAvailable"] == n
        && st["observedGeneration"] == d["metadata"]["generation"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_success_then_missing_image_rolled_back() {
    let h = Fixture::new().start().await;
    h.create(daemonset("agent", "example/agent:1")).unwrap();
    assert!(h.wait_for(WAIT, |h| ds_done(h, "agent", 3)).await);
    let (o, out) = rollguard(&env(
        &h,
        &[("ROLLGUARD_WORKLOAD", "ds/agent"), ("ROLLGUARD_TAG", "2")],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(h.wait_for(WAIT, |h| live_pods(h).len() == 3).await);
    assert!(
        live_pods(&h)
            .iter()
            .all(|p| image_of(p, "agent") == "example/agent:2")
    );

    let (o, out) = rollguard(&env(
        &h,
        &[
            ("ROLLGUARD_WORKLOAD", "daemonset/agent"),
            ("ROLLGUARD_TAG", "3-missing"),
        ],
    ))
    .await;
    support::assert_rolled_back(&o, &out, 1, Cause::ImageNotFound);
    let d = obj(&h, "apps/v1", "DaemonSet", "agent").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/agent:2"
    );
    assert!(
        h.wait_for(WAIT, |h| ds_done(h, "agent", 3)
            && live_pods(h)
                .iter()
                .all(|p| image_of(p, "agent") == "example/agent:2"))
            .await
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------- groups

fn deployment<'a>(name: &'a str, image: &str) -> DeploymentSpec<'a> {
    DeploymentSpec {
        name,
        containers: Some(json!([{"name": "app", "image": image}])),
        replicas: 2,
        label: PodLabel::App,
        ..Default::default()
    }
}

fn dep_image(h: &Handle, name: &str) -> String {
    obj(h, "apps/v1", "Deployment", name).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// web's new image is fine, worker's is missing: both end on their old images, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_is_all_or_nothing() {
    // worker's v1 is a good image, its v2 tag is missing:
    let h = Fixture::new()
        .image(
            "example/worker-missing:v1",
            kubesim::ImageBehaviour::Ok {
                ready_after: Duration::from_secs(1),
            },
        )
        .deployment(deployment("web", "example/web:v1"))
        .deployment(deployment("worker", "example/worker-missing:v1"))
        .start()
        .await;
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("ROLLGUARD_WORKLOAD", "deployment/web,\ndeployment/worker"),
            ("ROLLGUARD_TAG", "v2"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(o.report.workloads.len(), 2);
    assert!(out.contains("[deployment/web]"), "{out}");
    let worker = &o.report.workloads[1];
    assert_eq!(
        worker.findings.first().map(|f| f.cause),
        Some(Cause::ImageNotFound)
    );
    let web = &o.report.workloads[0];
    assert!(
        web.headline.contains("because deployment/worker failed"),
        "{}",
        web.headline
    );
    assert!(web.rollback.as_ref().unwrap().confirmed);
    assert!(
        o.report
            .cause
            .as_deref()
            .unwrap_or("")
            .starts_with("deployment/worker: ")
    );
    assert_eq!(dep_image(&h, "web"), "example/web:v1");
    assert_eq!(dep_image(&h, "worker"), "example/worker-missing:v1");
    // The summary / PR comment has one row per workload.
    let md = rollguard::report::markdown::render(
        &o.report,
        &rollguard::report::markdown::Options {
            marker: None,
            max_len: 65_000,
            job_url: None,
        },
    );
    for row in [
        "| `deployment/web` | `rolled-back`",
        "| `deployment/worker` | `rolled-back`",
    ] {
        assert!(md.contains(row), "no row {row:?} in:\n{md}");
    }
    assert!(
        h.wait_for(WAIT, |h| rolled_out(h, "web") && rolled_out(h, "worker"))
            .await
    );

    // The same group with good images: both roll out.
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("ROLLGUARD_WORKLOAD", "deployment/web, deployment/worker"),
            ("ROLLGUARD_IMAGE", "example/web:v3"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(dep_image(&h, "web"), "example/web:v3");
    assert_eq!(dep_image(&h, "worker"), "example/web:v3");
    h.shutdown().await;
}
