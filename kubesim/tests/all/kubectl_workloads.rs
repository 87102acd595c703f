//! Fidelity suite additions for the workload controllers: real kubectl
//! v1.35 against kubesim for ReplicationControllers, StatefulSet
//! and DaemonSet rollouts and undo (including the StatefulSet that stays
//! stuck after undo until its broken pod is deleted, as on a real cluster),
//! and Endpoints / EndpointSlices following readiness.

use crate::common::{self, pod_ready};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::Client;
use kubesim::{Config, Handle};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

async fn cluster() -> Handle {
    kubesim::start(Config {
        speed: 50.0,
        ..Config::default()
    })
    .await
    .expect("start kubesim")
}

fn write(k: &Client, file: &str, body: &str) -> String {
    let path = k.home.path().join(file);
    std::fs::write(&path, body).expect("write manifest");
    path.to_string_lossy().into_owned()
}

/// A cluster and a `kubectl` on it that has applied `body` (written as
/// `file`), which must succeed.
async fn applied(kubectl: PathBuf, file: &str, body: &str) -> (Handle, Client) {
    let h = cluster().await;
    let k = Client::new(kubectl, &h.kubeconfig_yaml());
    let f = write(&k, file, body);
    k.arun(&["apply", "-f", &f]).await.ok();
    (h, k)
}

/// The JSON a successful `kubectl <args>` prints.
async fn get_json(k: &Client, args: &[&str]) -> Value {
    let out = k.arun(args).await;
    serde_json::from_str(&out.ok().stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn pod(h: &Handle, name: &str) -> Option<Arc<Value>> {
    h.get("v1", "Pod", "default", name)
}

/// A two-container ReplicationController, as captured from a real cluster.
const TWO_CONTAINER_RC: &str = r#"{
  "kind": "ReplicationController",
  "apiVersion": "v1",
  "metadata": {"name": "api-rc", "labels": {"name": "api-rc"}},
  "spec": {
    "replicas": 3,
    "selector": {"name": "api-pods"},
    "template": {
      "metadata": {"labels": {"name": "api-pods"}},
      "spec": {
        "containers": [
          {"name": "node-api-container", "image": "asia.gcr.io/xxxxx/node-api:1.0.0",
           "ports": [{"containerPort": 3000, "protocol": "TCP"}]},
          {"name": "fluentd-container", "image": "asia.gcr.io/xxxxx/fluentd:1.0.0",
           "ports": [{"containerPort": 24224, "protocol": "TCP"}]}
        ]
      }
    }
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_create_and_scale() {
    let kubectl = require_tool!("kubectl");
    let h = cluster().await;
    let k = Client::new(kubectl, &h.kubeconfig_yaml());
    let f = write(&k, "rc.json", TWO_CONTAINER_RC);
    k.arun_expecting(
        &["create", "-f", &f],
        "replicationcontroller/api-rc created",
    )
    .await;
    let rc = |h: &Handle| {
        h.get("v1", "ReplicationController", "default", "api-rc")
            .unwrap()
    };
    assert!(
        h.wait_for(WAIT, |h| rc(h)["status"]["readyReplicas"] == 3)
            .await
    );

    k.arun_expecting(
        &["scale", "rc", "api-rc", "--replicas=4"],
        "replicationcontroller/api-rc scaled",
    )
    .await;
    assert!(
        h.wait_for(WAIT, |h| rc(h)["status"]["availableReplicas"] == 4)
            .await
    );

    let v = get_json(&k, &["get", "rc", "api-rc", "-o", "json"]).await;
    assert_eq!(v["spec"]["replicas"], 4);
    assert_eq!(v["spec"]["selector"]["name"], "api-pods");
    assert_eq!(v["status"]["replicas"], 4);
    assert_eq!(v["status"]["fullyLabeledReplicas"], 4);
    assert_eq!(v["status"]["readyReplicas"], 4);
    assert_eq!(v["status"]["observedGeneration"], 2);
    let pods = get_json(&k, &["get", "pods", "-l", "name=api-pods", "-o", "json"]).await;
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(
        items
            .iter()
            .all(|p| p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController")
    );
    h.shutdown().await;
}

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 3
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: example/db:1
        readinessProbe:
          tcpSocket: {port: 5432}
          initialDelaySeconds: 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_rollout_undo_stays_stuck_until_pod_deleted() {
    let kubectl = require_tool!("kubectl");
    let (h, k) = applied(kubectl, "sts.yaml", STATEFULSET).await;
    // The API defaults `rollingUpdate.partition: 0` (as upstream), so kubectl
    // takes its "partitioned roll out" branch, as against a real cluster.
    k.arun_expecting(
        &["rollout", "status", "statefulset/db", "--timeout=30s"],
        "partitioned roll out complete: 3 new pods have been updated",
    )
    .await;
    let sts = |h: &Handle| h.get("apps/v1", "StatefulSet", "default", "db").unwrap();
    let good = sts(&h)["status"]["currentRevision"]
        .as_str()
        .unwrap()
        .to_string();

    k.arun(&["set", "image", "statefulset/db", "db=example/db:2-crash"])
        .await
        .ok();
    assert!(
        h.wait_for(WAIT, |h| pod(h, "db-2").is_some_and(|p| {
            p["spec"]["containers"][0]["image"] == "example/db:2-crash"
                && p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff"
        }))
        .await
    );
    k.arun_expecting(
        &["rollout", "status", "statefulset/db", "--watch=false"],
        "Waiting for 1 pods to be ready",
    )
    .await;

    k.arun_expecting(
        &["rollout", "undo", "statefulset/db"],
        "statefulset.apps/db rolled back",
    )
    .await;
    assert!(
        h.wait_for(WAIT, |h| {
            let s = sts(h);
            s["status"]["updateRevision"] == good.as_str()
                && s["status"]["observedGeneration"] == s["metadata"]["generation"]
        })
        .await
    );
    // Stuck: db-2 keeps crash-looping on the bad revision.
    let restarts = |h: &Handle| {
        pod(h, "db-2")
            .and_then(|p| p["status"]["containerStatuses"][0]["restartCount"].as_i64())
            .unwrap_or(0)
    };
    let before = restarts(&h);
    assert!(h.wait_for(WAIT, |h| restarts(h) > before).await);
    let v = get_json(&k, &["get", "pod", "db-2", "-o", "json"]).await;
    assert_eq!(v["spec"]["containers"][0]["image"], "example/db:2-crash");
    k.arun_expecting(
        &["rollout", "status", "statefulset/db", "--watch=false"],
        "Waiting for 1 pods to be ready",
    )
    .await;
    let v = get_json(&k, &["get", "statefulset", "db", "-o", "json"]).await;
    assert_eq!(v["status"]["updateRevision"], good.as_str());
    assert_eq!(v["status"]["currentRevision"], good.as_str());
    assert_eq!(v["status"]["updatedReplicas"], 2);
    assert_eq!(v["status"]["readyReplicas"], 2);

    // Deleting the stuck pod unsticks the rollout.
    k.arun(&["delete", "pod", "db-2", "--wait=false"])
        .await
        .ok();
    k.arun_expecting(
        &["rollout", "status", "statefulset/db", "--timeout=30s"],
        "partitioned roll out complete: 3 new pods have been updated",
    )
    .await;
    let v = get_json(&k, &["get", "pod", "db-2", "-o", "json"]).await;
    assert_eq!(v["spec"]["containers"][0]["image"], "example/db:1");
    assert!(pod_ready(&v));

    k.arun_expecting(&["rollout", "history", "statefulset/db"], "REVISION")
        .await;
    h.shutdown().await;
}

const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: example/agent:1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_rollout_undo_recovers() {
    let kubectl = require_tool!("kubectl");
    let (h, k) = applied(kubectl, "ds.yaml", DAEMONSET).await;
    k.arun_expecting(
        &["rollout", "status", "daemonset/agent", "--timeout=30s"],
        "daemon set \"agent\" successfully rolled out",
    )
    .await;
    let v = get_json(&k, &["get", "ds", "agent", "-o", "json"]).await;
    assert_eq!(v["status"]["desiredNumberScheduled"], 3);
    assert_eq!(v["status"]["numberAvailable"], 3);

    k.arun(&[
        "set",
        "image",
        "daemonset/agent",
        "agent=example/agent:2-missing",
    ])
    .await
    .ok();
    let ds = |h: &Handle| h.get("apps/v1", "DaemonSet", "default", "agent").unwrap();
    assert!(
        h.wait_for(WAIT, |h| {
            let d = ds(h);
            d["status"]["updatedNumberScheduled"] == 1 && d["status"]["numberUnavailable"] == 1
        })
        .await
    );
    k.arun_expecting(
        &["rollout", "status", "daemonset/agent", "--watch=false"],
        "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated",
    )
    .await;

    k.arun_expecting(
        &["rollout", "undo", "daemonset/agent"],
        "daemonset.apps/agent rolled back",
    )
    .await;
    k.arun_expecting(
        &["rollout", "status", "daemonset/agent", "--timeout=30s"],
        "successfully rolled out",
    )
    .await;
    let pods = get_json(&k, &["get", "pods", "-l", "app=agent", "-o", "json"]).await;
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "example/agent:1")
    );
    let revs = get_json(&k, &["get", "controllerrevisions", "-o", "json"]).await;
    let mut numbers: Vec<i64> = revs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["revision"].as_i64())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [2, 3], "the reverted-to revision is renumbered");
    h.shutdown().await;
}

const SERVICE_AND_PODS: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-ready
  labels: {app: web}
spec:
  containers:
  - name: web
    image: example/web:1
---
apiVersion: v1
kind: Pod
metadata:
  name: web-unready
  labels: {app: web}
spec:
  containers:
  - name: web
    image: example/web:unready
    readinessProbe:
      httpGet: {path: /, port: 8080}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_readiness() {
    let kubectl = require_tool!("kubectl");
    let (h, k) = applied(kubectl, "svc.yaml", SERVICE_AND_PODS).await;
    k.arun(&[
        "wait",
        "--for=condition=Ready",
        "pod/web-ready",
        "--timeout=30s",
    ])
    .await
    .ok();
    let ip = |h: &Handle, n: &str| {
        pod(h, n).and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
    };
    assert!(
        h.wait_for(WAIT, |h| {
            let Some(e) = h.get("v1", "Endpoints", "default", "web") else {
                return false;
            };
            ip(h, "web-unready").is_some()
                && e["subsets"][0]["notReadyAddresses"][0]["ip"].as_str()
                    == ip(h, "web-unready").as_deref()
                && e["subsets"][0]["addresses"][0]["ip"].as_str() == ip(h, "web-ready").as_deref()
        })
        .await
    );
    let ep = get_json(&k, &["get", "endpoints", "web", "-o", "json"]).await;
    let subset = &ep["subsets"][0];
    assert_eq!(subset["addresses"][0]["targetRef"]["name"], "web-ready");
    assert_eq!(
        subset["notReadyAddresses"][0]["targetRef"]["name"],
        "web-unready"
    );
    assert_eq!(subset["ports"][0]["port"], 8080);

    let slices = get_json(
        &k,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        ],
    )
    .await;
    let items = slices["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{slices}");
    let eps = items[0]["endpoints"].as_array().unwrap();
    let by_pod = |n: &str| {
        eps.iter()
            .find(|e| e["targetRef"]["name"] == n)
            .map(|e| e["conditions"]["ready"].clone())
    };
    assert_eq!(by_pod("web-ready"), Some(Value::Bool(true)));
    assert_eq!(by_pod("web-unready"), Some(Value::Bool(false)));
    assert_eq!(items[0]["ports"][0]["port"], 8080);

    // The ready pod goes away: nothing ready is left.
    k.arun(&["delete", "pod", "web-ready"]).await.ok();
    let ep = get_json(&k, &["get", "endpoints", "web", "-o", "json"]).await;
    assert!(ep["subsets"][0]["addresses"].is_null(), "{ep}");
    let slices = get_json(
        &k,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        ],
    )
    .await;
    let eps = slices["items"][0]["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0]["targetRef"]["name"], "web-unready");

    // The table printers work for both (server-side printing permitting).
    k.arun_expecting(&["get", "endpoints", "web"], "web").await;
    h.shutdown().await;
}
