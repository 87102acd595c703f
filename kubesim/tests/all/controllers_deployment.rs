// Over 500 lines: one suite on one set-up (a fake kubelet), a test per rollout rule of the Deployment controller.
//! The Deployment and ReplicaSet controllers and the garbage collector,
//! driven through the store of a simulated cluster at 50× speed.
//!
//! The cluster has no nodes, so the real scheduler and kubelet stay out of
//! the way; a test-only fake kubelet binds every pod to `fake-node`, marks it
//! Running and Ready (or, for images containing "broken", Running and never
//! Ready), and finishes graceful deletions at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{deployment, pod_ready, rollout_complete, set_image};
use kubesim::clock::fmt_time;
use kubesim::resources::res;
use kubesim::store::{Change, EventType};
use kubesim::{Config, Handle, Sim};
use serde_json::{Value, json};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(10);

async fn cluster() -> (Handle, tokio::task::JoinHandle<()>) {
    let h = kubesim::start(Config {
        speed: 50.0,
        tls: false,
        nodes: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let kubelet = tokio::spawn(fake_kubelet(h.sim.clone()));
    (h, kubelet)
}

/// `created_web` of `example/web:1`, rolled out.
async fn rolled_out_web(replicas: i64, spec: Value) -> (Handle, tokio::task::JoinHandle<()>) {
    let (h, kubelet) = created_web("example/web:1", replicas, spec).await;
    wait_rolled_out(&h, "web").await;
    (h, kubelet)
}

/// A cluster with Deployment `web` of `image` × `replicas`, `spec`'s fields
/// set on its spec, just created.
async fn created_web(
    image: &str,
    replicas: i64,
    spec: Value,
) -> (Handle, tokio::task::JoinHandle<()>) {
    let (h, kubelet) = cluster().await;
    let mut d = deployment("web", image, replicas);
    for (k, v) in spec.as_object().into_iter().flatten() {
        d["spec"][k] = v.clone();
    }
    h.create(d).unwrap();
    (h, kubelet)
}

async fn fake_kubelet(sim: Arc<Sim>) {
    loop {
        let changed = sim.store.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        for pod in sim.store.list(res("pods"), None).0 {
            let ns = pod["metadata"]["namespace"].as_str().unwrap().to_string();
            let name = pod["metadata"]["name"].as_str().unwrap().to_string();
            if !pod["metadata"]["deletionTimestamp"].is_null() {
                let _ = sim.store.delete(res("pods"), &ns, &name);
                continue;
            }
            if pod["spec"]["nodeName"].is_string() {
                continue;
            }
            let ready = !pod["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .contains("broken");
            let now = fmt_time(sim.clock.now());
            let _ = sim.store.modify(res("pods"), &ns, &name, |p| {
                p["spec"]["nodeName"] = json!("fake-node");
                p["status"]["phase"] = json!("Running");
                p["status"]["conditions"] = json!([
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
                ]);
                p["status"]["containerStatuses"] = json!([{"name": "web", "ready": ready, "restartCount": 0,
                    "image": p["spec"]["containers"][0]["image"], "started": true}]);
                Ok(true)
            });
        }
        changed.await;
    }
}

fn get_deploy(h: &Handle, name: &str) -> Arc<Value> {
    h.get("apps/v1", "Deployment", "default", name).unwrap()
}

fn modify_deploy(h: &Handle, name: &str, f: impl FnOnce(&mut Value)) {
    h.store()
        .modify(res("deployments.apps"), "default", name, |d| {
            f(d);
            Ok(true)
        })
        .unwrap();
}

/// The Deployment's ReplicaSets, oldest first.
fn replica_sets(h: &Handle, name: &str) -> Vec<Arc<Value>> {
    let Some(d) = h.get("apps/v1", "Deployment", "default", name) else {
        return Vec::new();
    };
    let mut v: Vec<Arc<Value>> = h
        .list("apps/v1", "ReplicaSet", "default")
        .into_iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"])
        .collect();
    v.sort_by_key(|rs| {
        rs["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .to_string()
    });
    v
}

fn condition<'a>(d: &'a Value, type_: &str) -> Option<&'a Value> {
    d["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn reason(d: &Value, type_: &str) -> String {
    condition(d, type_)
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The `deployment.kubernetes.io/<key>` annotation the controller writes.
fn annotation(o: &Value, key: &str) -> String {
    o["metadata"]["annotations"][format!("deployment.kubernetes.io/{key}")]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// kubectl's rollout-status rule plus a settled Progressing condition.
fn rolled_out(h: &Handle, name: &str) -> bool {
    h.get("apps/v1", "Deployment", "default", name)
        .is_some_and(|d| {
            rollout_complete(&d) && reason(&d, "Progressing") == "NewReplicaSetAvailable"
        })
}

async fn wait_rolled_out(h: &Handle, name: &str) {
    assert!(
        h.wait_for(WAIT, |h| rolled_out(h, name)).await,
        "{name} did not roll out: {:#}",
        get_deploy(h, name)
    );
}

fn active_pods(h: &Handle) -> Vec<Arc<Value>> {
    h.list("v1", "Pod", "default")
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

/// Live pods by name, with a receiver of every later change (taken while
/// the cluster is idle, so the two agree).
fn subscribe_pods(h: &Handle) -> (broadcast::Receiver<Change>, BTreeMap<String, Arc<Value>>) {
    let rx = h.store().subscribe();
    let pods = active_pods(h)
        .into_iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p))
        .collect();
    (rx, pods)
}

/// Replay every change to pods into the model, calling `check` after each,
/// until `done` holds on the store and every change so far was replayed.
async fn watch_pods_until(
    h: &Handle,
    (mut rx, mut pods): (broadcast::Receiver<Change>, BTreeMap<String, Arc<Value>>),
    mut check: impl FnMut(&BTreeMap<String, Arc<Value>>),
    done: impl Fn(&Handle) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let change = match rx.try_recv() {
            Ok(c) => c,
            Err(broadcast::error::TryRecvError::Empty) if done(h) => return,
            Err(broadcast::error::TryRecvError::Empty) => {
                tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .expect("rollout did not finish in time")
                    .unwrap()
            }
            Err(e) => panic!("change stream: {e}"),
        };
        if change.res.plural != "pods" {
            continue;
        }
        let live = change.kind != EventType::Deleted
            && change.object["metadata"]["deletionTimestamp"].is_null();
        if live {
            pods.insert(change.name.clone(), change.object.clone());
        } else {
            pods.remove(&change.name);
        }
        check(&pods);
    }
}

#[tokio::test]
async fn rolling_update_respects_surge_and_unavailability_and_revert_reuses_the_old_replica_set() {
    let (h, kubelet) = rolled_out_web(3, json!({})).await;

    let d = get_deploy(&h, "web");
    let rss = replica_sets(&h, "web");
    assert_eq!(rss.len(), 1);
    let first = rss[0].clone();
    let first_name = first["metadata"]["name"].as_str().unwrap().to_string();
    let hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(first_name, format!("web-{hash}"));
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    );
    assert_eq!(
        first["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        first["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash
    );
    assert_eq!(first["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(annotation(&first, "revision"), "1");
    assert_eq!(annotation(&first, "desired-replicas"), "3");
    assert_eq!(annotation(&first, "max-replicas"), "4");
    assert_eq!(first["status"]["availableReplicas"], 3);
    assert_eq!(first["status"]["fullyLabeledReplicas"], 3);
    assert_eq!(annotation(&d, "revision"), "1");
    let types: Vec<&str> = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Available", "Progressing"],
        "condition order as upstream"
    );
    assert_eq!(reason(&d, "Available"), "MinimumReplicasAvailable");
    assert_eq!(
        condition(&d, "Available").unwrap()["message"],
        "Deployment has minimum availability."
    );
    assert_eq!(
        condition(&d, "Progressing").unwrap()["message"],
        format!("ReplicaSet \"{first_name}\" has successfully progressed.")
    );
    assert_eq!(d["status"]["terminatingReplicas"], 0);
    assert_eq!(active_pods(&h).len(), 3);
    let pod = &active_pods(&h)[0];
    assert!(
        pod["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{first_name}-"))
    );
    assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], hash);

    // Update: 25 % of 3 is a surge of 1 and no unavailability.
    let sub = subscribe_pods(&h);
    set_image(&h, "web", "example/web:2");
    let mut max_seen = 0;
    watch_pods_until(
        &h,
        sub,
        |pods| {
            let ready = pods.values().filter(|p| pod_ready(p)).count();
            max_seen = max_seen.max(pods.len());
            assert!(
                pods.len() <= 4,
                "more than replicas + maxSurge pods: {}",
                pods.len()
            );
            assert!(
                ready >= 3 || pods.len() < 3,
                "fewer than replicas - maxUnavailable ready: {ready}"
            );
        },
        |h| rolled_out(h, "web"),
    )
    .await;
    assert_eq!(max_seen, 4, "the surge was used");
    let rss = replica_sets(&h, "web");
    assert_eq!(rss.len(), 2);
    assert_eq!(rss[0]["spec"]["replicas"], 0);
    assert_eq!(annotation(&rss[1], "revision"), "2");
    assert_eq!(annotation(&get_deploy(&h, "web"), "revision"), "2");
    let events = h.list("v1", "Event", "default");
    let msgs: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    let new_name = rss[1]["metadata"]["name"].as_str().unwrap();
    assert!(
        msgs.contains(&format!("Scaled up replica set {new_name} from 0 to 1").as_str()),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&format!("Scaled down replica set {first_name} from 3 to 2").as_str()),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with(&format!("Created pod: {new_name}-")))
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with(&format!("Deleted pod: {first_name}-")))
    );

    // Revert: the first ReplicaSet is reused and renumbered.
    set_image(&h, "web", "example/web:1");
    wait_rolled_out(&h, "web").await;
    let rss = replica_sets(&h, "web");
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    assert_eq!(rss[0]["metadata"]["name"], first_name.as_str());
    assert_eq!(rss[0]["spec"]["replicas"], 3);
    assert_eq!(annotation(&rss[0], "revision"), "3");
    assert_eq!(annotation(&rss[0], "revision-history"), "1");
    assert_eq!(rss[1]["spec"]["replicas"], 0);
    assert_eq!(annotation(&get_deploy(&h, "web"), "revision"), "3");
    kubelet.abort();
    h.shutdown().await;
}

/// Wait until `web` reports ProgressDeadlineExceeded; the Deployment then.
async fn progress_deadline_exceeded(h: &Handle) -> Arc<Value> {
    let timed_out =
        |h: &Handle| reason(&get_deploy(h, "web"), "Progressing") == "ProgressDeadlineExceeded";
    assert!(
        h.wait_for(WAIT, timed_out).await,
        "{:#}",
        get_deploy(h, "web")
    );
    get_deploy(h, "web")
}

#[tokio::test]
async fn progress_deadline_fires_on_simulated_time() {
    let (h, kubelet) = rolled_out_web(3, json!({"progressDeadlineSeconds": 10})).await;
    set_image(&h, "web", "example/web:broken");
    let d = progress_deadline_exceeded(&h).await;
    let new_rs = replica_sets(&h, "web")[1].clone();
    let c = condition(&d, "Progressing").unwrap();
    assert_eq!(c["status"], "False");
    assert_eq!(
        c["message"],
        format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            new_rs["metadata"]["name"].as_str().unwrap()
        )
    );
    assert_eq!(
        reason(&d, "Available"),
        "MinimumReplicasAvailable",
        "the old pods still serve"
    );
    assert_eq!(d["status"]["updatedReplicas"], 1);
    assert_eq!(d["status"]["unavailableReplicas"], 1);
    assert_eq!(d["status"]["replicas"], 4);
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn new_deployment_that_never_becomes_ready_is_unavailable() {
    let (h, kubelet) = created_web(
        "example/web:broken",
        2,
        json!({"progressDeadlineSeconds": 5}),
    )
    .await;
    let d = progress_deadline_exceeded(&h).await;
    assert_eq!(reason(&d, "Available"), "MinimumReplicasUnavailable");
    assert_eq!(
        condition(&d, "Available").unwrap()["message"],
        "Deployment does not have minimum availability."
    );
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn paused_deployment_scales_but_does_not_roll_out() {
    let (h, kubelet) = rolled_out_web(2, json!({})).await;
    modify_deploy(&h, "web", |d| d["spec"]["paused"] = json!(true));
    let paused = |h: &Handle| reason(&get_deploy(h, "web"), "Progressing") == "DeploymentPaused";
    assert!(h.wait_for(WAIT, paused).await);
    set_image(&h, "web", "example/web:2");
    modify_deploy(&h, "web", |d| d["spec"]["replicas"] = json!(4));
    let scaled = |h: &Handle| {
        active_pods(h).len() == 4 && get_deploy(h, "web")["status"]["availableReplicas"] == 4
    };
    assert!(h.wait_for(WAIT, scaled).await);
    assert_eq!(replica_sets(&h, "web").len(), 1, "no rollout while paused");
    let d = get_deploy(&h, "web");
    assert_eq!(condition(&d, "Progressing").unwrap()["status"], "Unknown");
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );

    modify_deploy(&h, "web", |d| d["spec"]["paused"] = json!(false));
    wait_rolled_out(&h, "web").await;
    let rss = replica_sets(&h, "web");
    assert_eq!(rss.len(), 2);
    assert_eq!(rss[1]["spec"]["replicas"], 4);
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn recreate_removes_old_pods_before_creating_new_ones() {
    let (h, kubelet) = rolled_out_web(3, json!({"strategy": {"type": "Recreate"}})).await;
    let sub = subscribe_pods(&h);
    set_image(&h, "web", "example/web:2");
    watch_pods_until(
        &h,
        sub,
        |pods| {
            let images: std::collections::BTreeSet<&str> = pods
                .values()
                .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap())
                .collect();
            assert!(images.len() <= 1, "old and new pods at once: {images:?}");
        },
        |h| rolled_out(h, "web"),
    )
    .await;
    let rss = replica_sets(&h, "web");
    assert_eq!(
        (
            rss[0]["spec"]["replicas"].as_i64(),
            rss[1]["spec"]["replicas"].as_i64()
        ),
        (Some(0), Some(3))
    );
    let d = get_deploy(&h, "web");
    assert!(d["spec"]["strategy"].get("rollingUpdate").is_none());
    assert_eq!(annotation(&rss[1], "max-replicas"), "3");
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn revision_history_limit_deletes_the_oldest_replica_sets() {
    let (h, kubelet) = rolled_out_web(1, json!({"revisionHistoryLimit": 1})).await;
    let first = replica_sets(&h, "web")[0]["metadata"]["name"].clone();
    for image in ["example/web:2", "example/web:3"] {
        set_image(&h, "web", image);
        wait_rolled_out(&h, "web").await;
    }
    assert!(
        h.wait_for(WAIT, |h| replica_sets(h, "web").len() == 2)
            .await
    );
    let names: Vec<Value> = replica_sets(&h, "web")
        .iter()
        .map(|rs| rs["metadata"]["name"].clone())
        .collect();
    assert!(!names.contains(&first), "the oldest went first: {names:?}");
    let revisions: Vec<String> = replica_sets(&h, "web")
        .iter()
        .map(|rs| annotation(rs, "revision"))
        .collect();
    assert_eq!(revisions, ["2", "3"]);
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn deleting_a_deployment_collects_its_replica_sets_and_pods() {
    let (h, kubelet) = rolled_out_web(3, json!({})).await;
    kubesim::api::delete_object(
        &h.sim,
        res("deployments.apps"),
        "default",
        "web",
        &kubesim::api::DeleteOptions::default(),
    )
    .unwrap();
    let gone = |h: &Handle| {
        h.list("apps/v1", "ReplicaSet", "default").is_empty()
            && h.list("v1", "Pod", "default").is_empty()
    };
    assert!(h.wait_for(WAIT, gone).await);
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn scaling_resizes_the_replica_set() {
    let (h, kubelet) = rolled_out_web(3, json!({})).await;
    let rs_name = replica_sets(&h, "web")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    for n in [5, 2] {
        modify_deploy(&h, "web", |d| d["spec"]["replicas"] = json!(n));
        let settled = |h: &Handle| rolled_out(h, "web") && active_pods(h).len() == n;
        assert!(h.wait_for(WAIT, settled).await, "not scaled to {n}");
        let rs = &replica_sets(&h, "web")[0];
        assert_eq!(annotation(rs, "desired-replicas"), n.to_string());
    }
    let msgs: Vec<String> = h
        .list("v1", "Event", "default")
        .iter()
        .filter(|e| e["reason"] == "ScalingReplicaSet")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        msgs.contains(&format!("Scaled up replica set {rs_name} from 3 to 5")),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&format!("Scaled down replica set {rs_name} from 5 to 2")),
        "{msgs:?}"
    );
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn orphaned_pods_are_adopted_and_dangling_pods_collected() {
    let (h, kubelet) = cluster().await;
    // A pod whose owner never existed is collected.
    h.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "no-such-uid", "controller": true}]},
        "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}))
    .unwrap();
    // A pod matching a future ReplicaSet's selector is adopted.
    h.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "namespace": "default", "labels": {"app": "solo"}},
        "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}))
        .unwrap();
    h.create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "solo", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "solo"}},
                 "template": {"metadata": {"labels": {"app": "solo"}},
                              "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}}}))
    .unwrap();
    let settled = |h: &Handle| {
        let rs = h.get("apps/v1", "ReplicaSet", "default", "solo").unwrap();
        h.get("v1", "Pod", "default", "stray").is_none()
            && rs["status"]["readyReplicas"] == 2
            && active_pods(h).len() == 2
    };
    assert!(h.wait_for(WAIT, settled).await);
    let orphan = h.get("v1", "Pod", "default", "orphan").unwrap();
    assert_eq!(orphan["metadata"]["ownerReferences"][0]["name"], "solo");
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn min_ready_seconds_delays_availability_on_simulated_time() {
    let (h, kubelet) = created_web("example/web:1", 2, json!({"minReadySeconds": 5})).await;
    let rs_of = |h: &Handle| replica_sets(h, "web").first().cloned();
    let ready_not_available = |h: &Handle| {
        rs_of(h).is_some_and(|rs| {
            rs["status"]["readyReplicas"] == 2 && rs["status"].get("availableReplicas").is_none()
        })
    };
    assert!(h.wait_for(WAIT, ready_not_available).await);
    let start = h.clock().now();
    wait_rolled_out(&h, "web").await;
    assert!(
        h.clock().now().duration_since(start).as_secs_f64() >= 4.0,
        "available only after minReadySeconds"
    );
    assert_eq!(rs_of(&h).unwrap()["spec"]["minReadySeconds"], 5);
    kubelet.abort();
    h.shutdown().await;
}

#[tokio::test]
async fn an_idle_cluster_writes_nothing() {
    let (h, kubelet) = rolled_out_web(3, json!({})).await;
    // Let the last status writes land, then expect silence from the controllers.
    h.wait_for(Duration::from_millis(200), |_| false).await;
    let mut rx = h.store().subscribe();
    let watched = ["deployments", "replicasets", "pods", "events"];
    let write = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            let c = rx.recv().await.unwrap();
            if watched.contains(&c.res.plural) {
                return c;
            }
        }
    })
    .await;
    let changed = write.map(|c| format!("{} {}", c.res.plural, c.name)).ok();
    assert_eq!(changed, None, "controllers keep writing on an idle cluster");
    kubelet.abort();
    h.shutdown().await;
}
