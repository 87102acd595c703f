//! The DaemonSet and Endpoints controllers, with the real scheduler and
//! simulated kubelet, driven through the library API at 50× speed. The
//! set-up helpers are the workload controllers suite's.

use std::sync::Arc;

use crate::common::{fast_cluster, pod_ready, set_image_of};
use crate::controllers_workloads::{
    WAIT, counted, delete_pod, image, live, modify, pods_with, revisions,
};
use kubesim::Handle;
use kubesim::api::{self, DeleteOptions};
use kubesim::fixtures::daemonset;
use kubesim::resources::res;
use serde_json::{Value, json};

// ---------------------------------------------------------------- DaemonSet

fn ds(h: &Handle, name: &str) -> Arc<Value> {
    h.get("apps/v1", "DaemonSet", "default", name).unwrap()
}

fn ds_done(h: &Handle, name: &str, n: i64) -> bool {
    let counters = [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "updatedNumberScheduled",
        "numberAvailable",
        "numberReady",
    ];
    counted(&ds(h, name), &counters, n) && pods_with(h, "app", name).len() == n as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_one_pod_per_node_rolling_update_and_taints() {
    let h = fast_cluster(3).await;
    modify(&h, "nodes", "", "node-3", |n| {
        n["spec"]["taints"] = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    });
    h.create(daemonset("agent", "example/agent:1")).unwrap();
    assert!(
        h.wait_for(WAIT, |h| ds_done(h, "agent", 2)).await,
        "{}",
        ds(&h, "agent")["status"]
    );
    let pods = pods_with(&h, "app", "agent");
    let mut nodes: Vec<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2"], "tainted node-3 skipped");
    let p = &pods[0];
    assert!(
        p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("agent-")
    );
    assert_eq!(p["metadata"]["labels"]["pod-template-generation"], "1");
    let node = p["spec"]["nodeName"].as_str().unwrap();
    assert_eq!(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchFields"][0],
        json!({"key": "metadata.name", "operator": "In", "values": [node]})
    );
    let revs = revisions(&h, "agent");
    assert_eq!(revs.len(), 1);
    let hash = revs[0]["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap();
    assert_eq!(revs[0]["metadata"]["name"], format!("agent-{hash}"));
    assert_eq!(p["metadata"]["labels"]["controller-revision-hash"], hash);
    assert_eq!(ds(&h, "agent")["status"]["numberMisscheduled"], 0);

    // Untainting node-3 adds a pod there.
    modify(&h, "nodes", "", "node-3", |n| {
        n["spec"]["taints"] = json!([]);
    });
    assert!(h.wait_for(WAIT, |h| ds_done(h, "agent", 3)).await);

    // Rolling update, maxUnavailable 1: never fewer than 2 available pods.
    set_image_of(&h, "daemonsets.apps", "agent", "example/agent:2");
    let mut min_ready = 3;
    assert!(
        h.wait_for(WAIT, |h| {
            let up = pods_with(h, "app", "agent")
                .iter()
                .filter(|p| pod_ready(p) && live(p))
                .count();
            min_ready = min_ready.min(up);
            ds_done(h, "agent", 3)
                && pods_with(h, "app", "agent")
                    .iter()
                    .all(|p| image(p) == "example/agent:2")
        })
        .await,
        "{}",
        ds(&h, "agent")["status"]
    );
    assert!(min_ready >= 2, "maxUnavailable 1 exceeded: {min_ready}");
    assert_eq!(revisions(&h, "agent").len(), 2);

    // A missing image: one node stuck, the rest stays on the old revision.
    set_image_of(&h, "daemonsets.apps", "agent", "example/agent:3-missing");
    assert!(
        h.wait_for(WAIT, |h| {
            let d = ds(h, "agent");
            d["status"]["updatedNumberScheduled"] == 1
                && d["status"]["numberUnavailable"] == 1
                && d["status"]["observedGeneration"] == d["metadata"]["generation"]
                && pods_with(h, "app", "agent").iter().any(|p| {
                    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                        == "ImagePullBackOff"
                })
        })
        .await,
        "{}",
        ds(&h, "agent")["status"]
    );
    assert_eq!(
        pods_with(&h, "app", "agent")
            .iter()
            .filter(|p| image(p) == "example/agent:2" && pod_ready(p))
            .count(),
        2
    );
    // Revert: the broken pod is replaced at once and the set recovers.
    set_image_of(&h, "daemonsets.apps", "agent", "example/agent:2");
    assert!(
        h.wait_for(WAIT, |h| ds_done(h, "agent", 3)
            && pods_with(h, "app", "agent")
                .iter()
                .all(|p| image(p) == "example/agent:2"))
            .await,
        "{}",
        ds(&h, "agent")["status"]
    );
    let revs = revisions(&h, "agent");
    assert_eq!(revs.len(), 3);
    assert_eq!(revs[2]["revision"], 4, "reverted-to revision renumbered");
    h.shutdown().await;
}

// ---------------------------------------------------------------- Endpoints

fn bare_pod(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image,
                                 "ports": [{"name": "http", "containerPort": 8080}],
                                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080}}}]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_readiness() {
    let h = fast_cluster(2).await;
    h.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    let ep = |h: &Handle| h.get("v1", "Endpoints", "default", "web");
    let slice = |h: &Handle| {
        h.list("discovery.k8s.io/v1", "EndpointSlice", "default")
            .into_iter()
            .find(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
    };
    assert!(
        h.wait_for(WAIT, |h| ep(h).is_some() && slice(h).is_some())
            .await
    );
    assert!(ep(&h).unwrap().get("subsets").is_none());

    h.create(bare_pod("ready", "example/web:1")).unwrap();
    h.create(bare_pod("unready", "example/web:unready"))
        .unwrap();
    let ip = |h: &Handle, n: &str| {
        h.get("v1", "Pod", "default", n)
            .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
    };
    assert!(
        h.wait_for(WAIT, |h| {
            let (Some(e), Some(r), Some(u)) = (ep(h), ip(h, "ready"), ip(h, "unready")) else {
                return false;
            };
            e["subsets"][0]["addresses"][0]["ip"] == r.as_str()
                && e["subsets"][0]["notReadyAddresses"][0]["ip"] == u.as_str()
        })
        .await,
        "{:?}",
        ep(&h)
    );
    let e = ep(&h).unwrap();
    assert_eq!(
        e["subsets"][0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        e["subsets"][0]["addresses"][0]["targetRef"]["name"],
        "ready"
    );
    assert_eq!(e["metadata"]["labels"]["team"], "a");
    assert!(
        h.wait_for(WAIT, |h| slice(h).is_some_and(|s| s["endpoints"]
            .as_array()
            .is_some_and(
                |e| e.len() == 2 && e.iter().any(|e| e["conditions"]["ready"] == true)
            )))
        .await
    );
    let s = slice(&h).unwrap();
    assert_eq!(s["addressType"], "IPv4");
    assert_eq!(
        s["ports"],
        json!([{"name": "", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(
        s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let cond = |s: &Value, pod: &str| {
        s["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["targetRef"]["name"] == pod)
            .map(|e| e["conditions"].clone())
    };
    assert_eq!(
        cond(&s, "ready"),
        Some(json!({"ready": true, "serving": true, "terminating": false}))
    );
    assert_eq!(
        cond(&s, "unready"),
        Some(json!({"ready": false, "serving": false, "terminating": false}))
    );

    // Deleting the ready pod: terminating in the slice, gone from Endpoints.
    delete_pod(&h, "ready");
    assert!(
        h.wait_for(WAIT, |h| ep(h)
            .is_some_and(|e| e["subsets"][0]["addresses"].is_null()))
            .await
    );
    assert!(
        h.wait_for(WAIT, |h| h.get("v1", "Pod", "default", "ready").is_none()
            && slice(h).is_some_and(|s| s["endpoints"]
                .as_array()
                .is_some_and(|e| e.len() == 1)))
            .await
    );

    // Deleting the Service removes our Endpoints.
    api::delete_object(
        &h.sim,
        res("services"),
        "default",
        "web",
        &DeleteOptions::default(),
    )
    .unwrap();
    assert!(
        h.wait_for(WAIT, |h| ep(h).is_none() && slice(h).is_none())
            .await
    );
    h.shutdown().await;
}
