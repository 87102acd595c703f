//! The ReplicationController, StatefulSet, DaemonSet and Endpoints
//! controllers, with the real scheduler and simulated kubelet, driven
//! through the library API at 50× speed.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{fast_cluster, pod_ready, set_image_of};
use kubesim::Handle;
use kubesim::api::{self, DeleteOptions};
use kubesim::fixtures::{database, two_container_rc};
use kubesim::resources::res;
use serde_json::{Value, json};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn pods_with(h: &Handle, key: &str, value: &str) -> Vec<Arc<Value>> {
    h.list("v1", "Pod", "default")
        .into_iter()
        .filter(|p| p["metadata"]["labels"][key] == value)
        .collect()
}

pub(crate) fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
}

pub(crate) fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

pub(crate) fn events_of(h: &Handle, kind: &str, name: &str) -> Vec<(String, String, String)> {
    h.list("v1", "Event", "default")
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
                e["source"]["component"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub(crate) fn modify(h: &Handle, key: &str, ns: &str, name: &str, f: impl Fn(&mut Value)) {
    h.store()
        .modify(res(key), ns, name, |o| {
            f(o);
            Ok(true)
        })
        .unwrap();
}

pub(crate) fn delete_pod(h: &Handle, name: &str) {
    api::delete_object(
        &h.sim,
        res("pods"),
        "default",
        name,
        &DeleteOptions::default(),
    )
    .unwrap();
}

// ---------------------------------------------------------------- ReplicationController

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_creates_scales_and_replaces_pods() {
    let h = fast_cluster(2).await;
    h.create(two_container_rc()).unwrap();
    let rc = |h: &Handle| {
        h.get("v1", "ReplicationController", "default", "api-rc")
            .unwrap()
    };
    assert!(
        h.wait_for(WAIT, |h| rc(h)["status"]
            == json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                      "availableReplicas": 3, "observedGeneration": 1}))
            .await,
        "{}",
        rc(&h)["status"]
    );
    let pods = pods_with(&h, "name", "api-pods");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("api-rc-")
        );
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicationController");
        assert_eq!(owner["apiVersion"], "v1");
        assert_eq!(owner["controller"], true);
    }
    let evs = events_of(&h, "ReplicationController", "api-rc");
    assert_eq!(
        evs.iter()
            .filter(|(r, m, c)| r == "SuccessfulCreate"
                && m.starts_with("Created pod: api-rc-")
                && c == "replication-controller")
            .count(),
        3,
        "{evs:?}"
    );

    // Scale up.
    modify(&h, "replicationcontrollers", "default", "api-rc", |o| {
        o["spec"]["replicas"] = json!(5)
    });
    assert!(
        h.wait_for(WAIT, |h| rc(h)["status"]["readyReplicas"] == 5
            && rc(h)["status"]["observedGeneration"] == 2)
            .await
    );

    // A deleted pod is replaced.
    let victim = pods_with(&h, "name", "api-pods")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    delete_pod(&h, &victim);
    assert!(
        h.wait_for(WAIT, |h| {
            let pods = pods_with(h, "name", "api-pods");
            pods.iter()
                .all(|p| p["metadata"]["name"] != victim.as_str())
                && pods.iter().filter(|p| pod_ready(p)).count() == 5
        })
        .await
    );

    // Scale down.
    modify(&h, "replicationcontrollers", "default", "api-rc", |o| {
        o["spec"]["replicas"] = json!(2)
    });
    assert!(
        h.wait_for(WAIT, |h| pods_with(h, "name", "api-pods").len() == 2
            && rc(h)["status"]["replicas"] == 2)
            .await
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------- StatefulSet

fn sts(h: &Handle, name: &str) -> Arc<Value> {
    h.get("apps/v1", "StatefulSet", "default", name).unwrap()
}

fn sts_pod(h: &Handle, name: &str) -> Option<Arc<Value>> {
    h.get("v1", "Pod", "default", name)
}

pub(crate) fn revisions(h: &Handle, owner: &str) -> Vec<Arc<Value>> {
    let mut r: Vec<Arc<Value>> = h
        .list("apps/v1", "ControllerRevision", "default")
        .into_iter()
        .filter(|r| r["metadata"]["ownerReferences"][0]["name"] == owner)
        .collect();
    r.sort_by_key(|r| r["revision"].as_i64());
    r
}

/// The status of `obj` is of its latest generation and every one of its
/// `counters` is `n`.
pub(crate) fn counted(obj: &Value, counters: &[&str], n: i64) -> bool {
    let st = &obj["status"];
    st["observedGeneration"] == obj["metadata"]["generation"]
        && counters.iter().all(|c| st[*c] == n)
}

fn settled(h: &Handle, name: &str, n: i64) -> bool {
    let s = sts(h, name);
    counted(&s, &["readyReplicas", "updatedReplicas", "replicas"], n)
        && s["status"]["currentRevision"] == s["status"]["updateRevision"]
}

/// A 3-node cluster with StatefulSet `name` of 3 pods on `image`, settled;
/// and its current revision.
async fn settled_statefulset(name: &str, image: &str) -> (Handle, Value) {
    let h = fast_cluster(3).await;
    h.create(database(name, image, 3)).unwrap();
    assert!(h.wait_for(WAIT, |h| settled(h, name, 3)).await);
    let rev = sts(&h, name)["status"]["currentRevision"].clone();
    (h, rev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_ordered_creation_and_revisions() {
    let h = fast_cluster(3).await;
    h.create(database("db", "example/db:1", 3)).unwrap();
    // Ordered: while db-0 is not Ready there is no db-1.
    assert!(
        h.wait_for(WAIT, |h| {
            let p0 = sts_pod(h, "db-0");
            let p1 = sts_pod(h, "db-1");
            assert!(
                p1.is_none() || p0.as_deref().is_some_and(pod_ready),
                "db-1 created before db-0 was ready"
            );
            let p2 = sts_pod(h, "db-2");
            assert!(p2.is_none() || p1.as_deref().is_some_and(pod_ready));
            settled(h, "db", 3)
        })
        .await,
        "{}",
        sts(&h, "db")["status"]
    );
    let s = sts(&h, "db");
    let revs = revisions(&h, "db");
    assert_eq!(revs.len(), 1);
    let rev = &revs[0];
    assert_eq!(rev["revision"], 1);
    assert_eq!(s["status"]["updateRevision"], rev["metadata"]["name"]);
    assert_eq!(s["status"]["collisionCount"], 0);
    assert_eq!(s["status"]["availableReplicas"], 3);
    let rev_name = rev["metadata"]["name"].as_str().unwrap();
    let hash = rev_name.strip_prefix("db-").unwrap();
    assert_eq!(
        rev["metadata"]["labels"]["controller.kubernetes.io/hash"],
        hash
    );
    assert_eq!(rev["metadata"]["labels"]["app"], "db");
    assert_eq!(rev["data"]["spec"]["template"]["$patch"], "replace");
    assert_eq!(
        rev["data"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/db:1"
    );
    let p = sts_pod(&h, "db-1").unwrap();
    let labels = &p["metadata"]["labels"];
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(labels["controller-revision-hash"], rev_name);
    assert_eq!(p["spec"]["hostname"], "db-1");
    assert_eq!(p["spec"]["subdomain"], "db");
    assert_eq!(p["metadata"]["generateName"], "db-");
    let evs = events_of(&h, "StatefulSet", "db");
    assert!(
        evs.iter().any(|(r, m, c)| r == "SuccessfulCreate"
            && m == "Create Pod db-0 in StatefulSet db successful"
            && c == "statefulset-controller"),
        "{evs:?}"
    );

    // Scale down: highest ordinal first.
    modify(&h, "statefulsets.apps", "default", "db", |o| {
        o["spec"]["replicas"] = json!(1)
    });
    assert!(
        h.wait_for(WAIT, |h| {
            assert!(
                sts_pod(h, "db-1").is_none_or(|p| live(&p)) || sts_pod(h, "db-2").is_none(),
                "db-1 deleted before db-2 was gone"
            );
            sts_pod(h, "db-1").is_none() && sts_pod(h, "db-2").is_none() && settled(h, "db", 1)
        })
        .await
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_rolling_update_with_partition() {
    let (h, first_rev) = settled_statefulset("web", "example/web:1").await;

    modify(&h, "statefulsets.apps", "default", "web", |o| {
        o["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("example/web:2");
    });
    assert!(
        h.wait_for(WAIT, |h| {
            let s = sts(h, "web");
            s["status"]["updatedReplicas"] == 1
                && s["status"]["readyReplicas"] == 3
                && sts_pod(h, "web-2")
                    .is_some_and(|p| image(&p) == "example/web:2" && pod_ready(&p))
        })
        .await,
        "{}",
        sts(&h, "web")["status"]
    );
    let s = sts(&h, "web");
    assert_eq!(
        s["status"]["currentRevision"], first_rev,
        "partitioned: not complete"
    );
    assert_ne!(s["status"]["updateRevision"], first_rev);
    assert_eq!(s["status"]["currentReplicas"], 2);
    assert_eq!(image(&sts_pod(&h, "web-0").unwrap()), "example/web:1");
    assert_eq!(image(&sts_pod(&h, "web-1").unwrap()), "example/web:1");
    assert_eq!(revisions(&h, "web").len(), 2);

    // Lower the partition: the rest is updated from the top down.
    modify(&h, "statefulsets.apps", "default", "web", |o| {
        o["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(0);
    });
    assert!(h.wait_for(WAIT, |h| settled(h, "web", 3)).await);
    for i in 0..3 {
        assert_eq!(
            image(&sts_pod(&h, &format!("web-{i}")).unwrap()),
            "example/web:2"
        );
    }
    let s = sts(&h, "web");
    assert_ne!(s["status"]["currentRevision"], first_rev);
    assert_eq!(s["status"]["currentReplicas"], 3);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_stuck_after_revert_until_pod_deleted() {
    let (h, good_rev) = settled_statefulset("db", "example/db:1").await;
    let good_rev = good_rev.as_str().unwrap().to_string();

    // A crashing build: db-2 is replaced and crash-loops; db-1 and db-0 wait.
    set_image_of(&h, "statefulsets.apps", "db", "example/db:2-crash");
    let crash_pod = |h: &Handle| {
        sts_pod(h, "db-2").is_some_and(|p| {
            image(&p) == "example/db:2-crash"
                && p["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(0)
                    >= 1
        })
    };
    assert!(h.wait_for(WAIT, crash_pod).await);
    let s = sts(&h, "db");
    let bad_rev = s["status"]["updateRevision"].as_str().unwrap().to_string();
    assert_ne!(bad_rev, good_rev);
    assert_eq!(s["status"]["currentRevision"], good_rev.as_str());
    assert_eq!(s["status"]["updatedReplicas"], 1);
    assert_eq!(image(&sts_pod(&h, "db-1").unwrap()), "example/db:1");

    // Revert (what `rollout undo` does): the old revision is renumbered and
    // becomes the update revision, but db-2 is not replaced.
    set_image_of(&h, "statefulsets.apps", "db", "example/db:1");
    assert!(
        h.wait_for(WAIT, |h| {
            let s = sts(h, "db");
            s["status"]["updateRevision"] == good_rev.as_str()
                && s["status"]["observedGeneration"] == s["metadata"]["generation"]
        })
        .await
    );
    let db2_uid = sts_pod(&h, "db-2").unwrap()["metadata"]["uid"].clone();
    let restarts = |h: &Handle| {
        sts_pod(h, "db-2")
            .map(|p| {
                p["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let before = restarts(&h);
    // Let it crash twice more on the simulated clock: still the same pod.
    assert!(
        h.wait_for(WAIT, |h| restarts(h) >= before + 2).await,
        "{before} {:#}",
        sts_pod(&h, "db-2")
            .map(|p| p["status"].clone())
            .unwrap_or_default()
    );
    let p = sts_pod(&h, "db-2").unwrap();
    assert_eq!(p["metadata"]["uid"], db2_uid, "db-2 must not be replaced");
    assert_eq!(
        p["metadata"]["labels"]["controller-revision-hash"],
        bad_rev.as_str()
    );
    let s = sts(&h, "db");
    assert_eq!(s["status"]["currentRevision"], good_rev.as_str());
    assert_eq!(s["status"]["updatedReplicas"], 2);
    assert_eq!(s["status"]["readyReplicas"], 2);
    let revs = revisions(&h, "db");
    assert_eq!(revs.len(), 2);
    assert_eq!(revs[1]["metadata"]["name"], good_rev.as_str());
    assert_eq!(
        revs[1]["revision"], 3,
        "the reverted-to revision is renumbered"
    );

    // Deleting the stuck pod lets it come back at the update revision.
    delete_pod(&h, "db-2");
    assert!(
        h.wait_for(WAIT, |h| settled(h, "db", 3)).await,
        "{}",
        sts(&h, "db")["status"]
    );
    let p = sts_pod(&h, "db-2").unwrap();
    assert_ne!(p["metadata"]["uid"], db2_uid);
    assert_eq!(image(&p), "example/db:1");
    h.shutdown().await;
}
