//! Where the control plane's timing decides a deploy tool's verdict, kubesim
//! behaves as a real one does: the Deployment controller's two status
//! writes, event names and aggregation, and the cluster-autoscaler
//! simulation. The set-up helpers are the node fidelity suite's.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, deployment, rolled_out, set_image};
use crate::node_fidelity::{WAIT, cluster, condition, events, get, pod, start, watch, watch_until};
use jiff::Timestamp;
use kubesim::{AutoscalerConfig, Config, Handle};
use serde_json::{Value, json};

#[tokio::test]
async fn template_change_status_comes_in_two_writes() {
    let h = cluster(50.0, 3).await;
    h.create(deployment("web", "example/web:1", 3)).unwrap();
    assert!(h.wait_for(WAIT, |h| rolled_out(h, "web")).await);
    let d = h.get("apps/v1", "Deployment", "default", "web").unwrap();
    let rv = common::resource_version(&d);
    let mut watch = watch(
        &h,
        &format!("/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion={rv}"),
    )
    .await;
    set_image(&h, "web", "example/web:2");
    let mut writes: Vec<Value> = Vec::new();
    let mut last_status = d["status"].clone();
    watch_until(&mut watch, "the rollout's end", |_, d| {
        if d["status"] != last_status {
            last_status = d["status"].clone();
            writes.push(d.clone());
        }
        condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
            && d["status"]["observedGeneration"] == 2
            && d["status"]["updatedReplicas"] == 3
    })
    .await;
    // First: Progressing=NewReplicaSetCreated, the old observedGeneration
    // and counts, the new revision.
    let first = &writes[0];
    assert_eq!(first["metadata"]["generation"], 2);
    assert_eq!(first["status"]["observedGeneration"], 1);
    assert_eq!(first["status"]["updatedReplicas"], 3);
    assert_eq!(
        first["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let p = condition(first, "Progressing");
    assert_eq!(p["status"], "True");
    assert_eq!(p["reason"], "NewReplicaSetCreated");
    let rs = p["message"].as_str().unwrap();
    assert!(
        rs.starts_with("Created new replica set \"web-") && rs.ends_with('"'),
        "{rs}"
    );
    // Then: the generation observed, with the counts of the new ReplicaSet.
    let second = &writes[1];
    assert_eq!(second["status"]["observedGeneration"], 2);
    assert_eq!(
        condition(second, "Progressing")["reason"],
        "NewReplicaSetCreated"
    );
    // And the rollout goes on through ReplicaSetUpdated.
    assert!(
        writes
            .iter()
            .any(|d| condition(d, "Progressing")["reason"] == "ReplicaSetUpdated")
    );
    h.shutdown().await;
}

fn name_nanos(e: &Value) -> (String, i128) {
    let name = e["metadata"]["name"].as_str().unwrap();
    let (obj, hex) = name.rsplit_once('.').unwrap();
    assert_eq!(obj, e["involvedObject"]["name"].as_str().unwrap(), "{name}");
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    (obj.to_string(), i128::from_str_radix(hex, 16).unwrap())
}

#[tokio::test]
async fn event_names_are_time_ordered_and_repeats_are_counted() {
    let h = cluster(50.0, 1).await;
    let t0 = h.clock().now();
    h.create(pod("crash", "example/web:crash")).unwrap();
    assert!(
        h.wait_for(WAIT, |h| h
            .get("v1", "Pod", "default", "crash")
            .is_some_and(|p| {
                p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(3)
            }))
        .await
    );
    let items = events(&h).await;
    let mine: Vec<&Value> = items
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "crash")
        .collect();
    // Names carry the first occurrence's unix nanos: the list is in time order.
    let nanos: Vec<i128> = mine.iter().map(|e| name_nanos(e).1).collect();
    assert!(nanos.windows(2).all(|w| w[0] < w[1]), "{nanos:?}");
    assert!(nanos[0] >= t0.as_nanosecond() && nanos[0] <= h.clock().now().as_nanosecond());
    let reasons: Vec<&str> = mine.iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons,
        [
            "Scheduled",
            "Pulling",
            "Pulled",
            "Created",
            "Started",
            "Pulled",
            "BackOff"
        ]
    );
    // Repeats: one event each, counted, first and last timestamps apart.
    let by = |reason: &str, msg: &str| -> Vec<&Value> {
        mine.iter()
            .copied()
            .filter(|e| e["reason"] == reason && e["message"].as_str().unwrap().contains(msg))
            .collect()
    };
    for (reason, msg) in [
        ("Created", ""),
        ("Started", ""),
        ("Pulled", "already present"),
    ] {
        let e = by(reason, msg);
        assert_eq!(e.len(), 1, "{reason}");
        assert!(e[0]["count"].as_i64().unwrap() >= 3, "{reason}: {}", e[0]);
        assert!(e[0]["firstTimestamp"].as_str() < e[0]["lastTimestamp"].as_str());
        assert_eq!(e[0]["source"]["component"], "kubelet");
        assert_eq!(e[0]["source"]["host"], "node-1");
    }
    // A controller's events use the same form.
    h.create(deployment("web", "example/web:1", 1)).unwrap();
    assert!(h.wait_for(WAIT, |h| rolled_out(h, "web")).await);
    let scaled = events(&h)
        .await
        .into_iter()
        .find(|e| e["reason"] == "ScalingReplicaSet")
        .unwrap();
    assert_eq!(name_nanos(&scaled).0, "web");
    h.shutdown().await;
}

#[tokio::test]
async fn similar_events_are_combined_after_ten_distinct_messages() {
    let h = cluster(50.0, 0).await;
    let cm = h
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "target", "namespace": "default"}}))
        .unwrap();
    for i in 0..12 {
        kubesim::controllers::events::record(
            &h.sim,
            &cm,
            None,
            "Normal",
            "Synced",
            &format!("synced step {i}"),
            kubesim::controllers::events::Source::Controller("test-controller"),
        );
    }
    let all = events(&h).await;
    let items: Vec<&Value> = all.iter().filter(|e| e["reason"] == "Synced").collect();
    // Nine distinct events, then one combined event counting the rest.
    assert_eq!(items.len(), 10, "{items:#?}");
    let combined: Vec<&&Value> = items
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("(combined from similar events): ")
        })
        .collect();
    assert_eq!(combined.len(), 1);
    assert_eq!(
        combined[0]["message"],
        "(combined from similar events): synced step 11"
    );
    assert_eq!(combined[0]["count"], 3);
    h.shutdown().await;
}

fn cpu_pod(name: &str, cpu: &str) -> Value {
    let mut p = pod(name, "example/web:1");
    p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
    p
}

fn pod_events(h: &Handle, name: &str, reason: &str) -> Vec<Arc<Value>> {
    h.list("v1", "Event", "default")
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
        .collect()
}

fn status_text(h: &Handle) -> String {
    h.get(
        "v1",
        "ConfigMap",
        "kube-system",
        "cluster-autoscaler-status",
    )
    .map(|c| c["data"]["status"].as_str().unwrap_or("").to_string())
    .unwrap_or_default()
}

#[tokio::test]
async fn autoscaler_adds_a_node_then_stops_at_the_max() {
    let h = start(Config {
        speed: 50.0,
        nodes: 2,
        autoscaler: Some(AutoscalerConfig {
            max_nodes: 3,
            scale_up_delay: Duration::from_secs(30),
        }),
        ..Config::default()
    })
    .await;
    assert!(h.wait_for(WAIT, |h| !status_text(h).is_empty()).await);
    let cm = get(
        &h,
        "/api/v1/namespaces/kube-system/configmaps/cluster-autoscaler-status",
    )
    .await;
    let status = cm["data"]["status"].as_str().unwrap();
    assert!(status.starts_with("time: \""), "{status}");
    for line in [
        "autoscalerStatus: Running",
        "- name: kubesim-nodes",
        "    cloudProviderTarget: 2",
        "    maxSize: 3",
        "        total: 2",
    ] {
        assert!(status.contains(line), "{line:?} in {status}");
    }
    assert!(
        cm["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/last-updated"]
            .as_str()
            .unwrap()
            .ends_with(" +0000 UTC")
    );

    h.create(cpu_pod("hog-1", "1200m")).unwrap();
    h.create(cpu_pod("hog-2", "1200m")).unwrap();
    h.create(cpu_pod("hog-3", "1200m")).unwrap();
    assert!(
        h.wait_for(WAIT, |h| !pod_events(h, "hog-3", "TriggeredScaleUp")
            .is_empty())
            .await
    );
    let triggered_at = h.clock().now();
    let e = &pod_events(&h, "hog-3", "TriggeredScaleUp")[0];
    assert_eq!(
        e["message"],
        "pod triggered scale-up: [{kubesim-nodes 2->3 (max: 3)}]"
    );
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["source"]["component"], "cluster-autoscaler");
    assert!(status_text(&h).contains("status: InProgress"));
    assert!(h.get("v1", "Node", "", "node-3").is_none());
    // The node comes after the delay, Ready, and the scheduler uses it.
    assert!(
        h.wait_for(WAIT, |h| h
            .get("v1", "Pod", "default", "hog-3")
            .is_some_and(|p| p["spec"]["nodeName"] == "node-3"))
            .await
    );
    let node = h.get("v1", "Node", "", "node-3").unwrap();
    assert_eq!(condition(&node, "Ready")["status"], "True");
    let created: Timestamp = node["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let waited = created.duration_since(triggered_at).as_secs_f64();
    assert!((27.0..31.5).contains(&waited), "node after {waited} s");

    // At the max: NotTriggerScaleUp, repeated every loop as one counted event.
    h.create(cpu_pod("hog-4", "1200m")).unwrap();
    assert!(
        h.wait_for(WAIT, |h| pod_events(h, "hog-4", "NotTriggerScaleUp")
            .first()
            .is_some_and(|e| e["count"].as_i64() >= Some(2)))
            .await
    );
    let e = pod_events(&h, "hog-4", "NotTriggerScaleUp");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0]["message"],
        "pod didn't trigger scale-up: 1 max node group size reached"
    );
    assert!(pod_events(&h, "hog-4", "TriggeredScaleUp").is_empty());
    assert!(h.get("v1", "Node", "", "node-4").is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn autoscaler_does_not_scale_for_a_pod_no_node_could_fit() {
    let h = start(Config {
        speed: 50.0,
        nodes: 2,
        autoscaler: Some(AutoscalerConfig::default()),
        ..Config::default()
    })
    .await;
    h.create(cpu_pod("huge", "3")).unwrap();
    assert!(
        h.wait_for(WAIT, |h| !pod_events(h, "huge", "NotTriggerScaleUp")
            .is_empty())
            .await
    );
    assert_eq!(
        pod_events(&h, "huge", "NotTriggerScaleUp")[0]["message"],
        "pod didn't trigger scale-up: 1 Insufficient cpu"
    );
    assert_eq!(AutoscalerConfig::default().max_nodes, 5);
    assert!(status_text(&h).contains("    maxSize: 5"));
    assert_eq!(h.list("v1", "Node", "").len(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn autoscaler_is_off_by_default_and_on_with_the_cli_flags() {
    let h = cluster(50.0, 3).await;
    h.create(cpu_pod("huge", "3")).unwrap();
    assert!(
        h.wait_for(WAIT, |h| h.get("v1", "Pod", "default", "huge").is_some_and(
            |p| condition(&p, "PodScheduled")["reason"] == "Unschedulable"
        ))
        .await
    );
    h.clock().advance(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        h.get(
            "v1",
            "ConfigMap",
            "kube-system",
            "cluster-autoscaler-status"
        )
        .is_none()
    );
    assert!(pod_events(&h, "huge", "NotTriggerScaleUp").is_empty());
    h.shutdown().await;

    // The binary: the flags turn it on.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args([
            "--http",
            "--nodes",
            "1",
            "--speed",
            "20",
            "--autoscaler-max-nodes",
            "4",
        ])
        .args(["--autoscaler-delay", "1m30s", "--kubeconfig"])
        .arg(&kc)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(WAIT, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let token = std::fs::read_to_string(&kc)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: ").map(str::to_string))
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::new();
    let mut status = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while status.is_empty() && tokio::time::Instant::now() < deadline {
        let r = c
            .get(format!(
                "{base}/api/v1/namespaces/kube-system/configmaps/cluster-autoscaler-status"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            let v: Value = r.json().await.unwrap();
            status = v["data"]["status"].as_str().unwrap_or("").to_string();
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(status.contains("    maxSize: 4"), "{status}");
    child.kill().await.unwrap();
    // A malformed delay is refused by the flag parser.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args(["--autoscaler-delay", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid duration \"soon\""));
}
