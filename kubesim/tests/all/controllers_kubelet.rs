// Over 500 lines: one suite on one set-up, a test per container state the kubelet reproduces.
//! The scheduler and the simulated kubelet, driven through the library API
//! with bare pods (no owners), on a fast simulated clock.

use std::sync::Arc;
use std::time::Duration;

use crate::common::fast_cluster;
use kubesim::resources::res;
use kubesim::{Config, Handle};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn pod(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "web", "image": image}]},
    })
}

fn pod_with_cpu(name: &str, cpu: &str) -> Value {
    let mut p = pod(name, "example/web:1");
    p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
    p
}

fn get(h: &Handle, name: &str) -> Option<Arc<Value>> {
    h.get("v1", "Pod", "default", name)
}

fn cstatus(h: &Handle, name: &str) -> Value {
    get(h, name)
        .map(|p| p["status"]["containerStatuses"][0].clone())
        .unwrap_or(Value::Null)
}

fn condition(p: &Value, type_: &str) -> Value {
    p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// (type, reason, message, count) of the events about one pod.
fn events(h: &Handle, name: &str) -> Vec<(String, String, String, i64)> {
    h.list("v1", "Event", "default")
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
                e["count"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

fn has_event(h: &Handle, name: &str, type_: &str, reason: &str, msg_part: &str) -> bool {
    events(h, name)
        .iter()
        .any(|(t, r, m, _)| t == type_ && r == reason && m.contains(msg_part))
}

/// A copy of the kubelet's log lines of the `web` container of a pod.
fn logs(h: &Handle, pod: &str) -> kubesim::ContainerLogs {
    let all = h.sim.logs.lock().unwrap();
    all[&("default".to_string(), pod.to_string(), "web".to_string())].clone()
}

async fn wait(h: &Handle, what: &str, f: impl FnMut(&Handle) -> bool) {
    assert!(h.wait_for(WAIT, f).await, "timed out waiting for {what}");
}

fn running_ready(h: &Handle, name: &str) -> bool {
    get(h, name).is_some_and(|p| {
        p["status"]["phase"] == "Running" && condition(&p, "Ready")["status"] == "True"
    })
}

#[tokio::test]
async fn schedules_pulls_starts_and_reports_ready() {
    let h = fast_cluster(3).await;
    h.create(pod("web", "example/web:1")).unwrap();
    wait(&h, "web running and ready", |h| running_ready(h, "web")).await;
    let p = get(&h, "web").unwrap();
    let node = p["spec"]["nodeName"].as_str().unwrap().to_string();
    assert!(node.starts_with("node-"));
    assert_eq!(condition(&p, "PodScheduled")["status"], "True");
    for c in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
    ] {
        assert_eq!(condition(&p, c)["status"], "True", "{c}");
    }
    let s = &p["status"];
    assert!(s["podIP"].as_str().unwrap().starts_with("10.244."));
    assert_eq!(s["podIPs"][0]["ip"], s["podIP"]);
    assert!(s["hostIP"].is_string());
    assert!(s["startTime"].is_string());
    assert_eq!(s["qosClass"], "BestEffort");
    let cs = &s["containerStatuses"][0];
    assert_eq!(cs["image"], "docker.io/example/web:1");
    assert!(
        cs["imageID"]
            .as_str()
            .unwrap()
            .starts_with("docker.io/example/web@sha256:")
    );
    assert!(
        cs["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://")
    );
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["started"], true);
    assert_eq!(cs["restartCount"], 0);
    assert!(cs["state"]["running"]["startedAt"].is_string());

    let sched = h
        .list("v1", "Event", "default")
        .into_iter()
        .find(|e| e["reason"] == "Scheduled")
        .unwrap();
    assert_eq!(
        sched["message"],
        format!("Successfully assigned default/web to {node}")
    );
    assert_eq!(sched["action"], "Binding");
    assert_eq!(sched["reportingComponent"], "default-scheduler");
    assert!(has_event(
        &h,
        "web",
        "Normal",
        "Pulling",
        "Pulling image \"example/web:1\""
    ));
    assert!(has_event(
        &h,
        "web",
        "Normal",
        "Pulled",
        "Successfully pulled image \"example/web:1\" in "
    ));
    assert!(has_event(
        &h,
        "web",
        "Normal",
        "Created",
        "Container created"
    ));
    assert!(has_event(
        &h,
        "web",
        "Normal",
        "Started",
        "Container started"
    ));
    assert!(!logs(&h, "web").current.is_empty());

    // A second pod with the same image on the same node: already present.
    let mut p2 = pod("web2", "example/web:1");
    p2["spec"]["nodeName"] = json!(node);
    h.create(p2).unwrap();
    wait(&h, "web2 ready", |h| running_ready(h, "web2")).await;
    assert!(has_event(
        &h,
        "web2",
        "Normal",
        "Pulled",
        "already present on machine"
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn insufficient_cpu_then_fits_after_a_pod_is_deleted() {
    let h = fast_cluster(2).await;
    h.create(pod_with_cpu("hog-1", "1200m")).unwrap();
    h.create(pod_with_cpu("hog-2", "1200m")).unwrap();
    wait(&h, "both hogs bound", |h| {
        ["hog-1", "hog-2"]
            .iter()
            .all(|n| get(h, n).is_some_and(|p| p["spec"]["nodeName"].is_string()))
    })
    .await;
    let n1 = get(&h, "hog-1").unwrap()["spec"]["nodeName"].clone();
    let n2 = get(&h, "hog-2").unwrap()["spec"]["nodeName"].clone();
    assert_ne!(n1, n2, "least-allocated spreads the hogs");
    h.create(pod_with_cpu("hog-3", "1200m")).unwrap();
    let msg = "0/2 nodes are available: 2 Insufficient cpu. no new claims to deallocate, preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.";
    wait(&h, "hog-3 unschedulable", |h| {
        get(h, "hog-3").is_some_and(|p| condition(&p, "PodScheduled")["message"] == msg)
    })
    .await;
    let p = get(&h, "hog-3").unwrap();
    let c = condition(&p, "PodScheduled");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "Unschedulable");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "Burstable");
    wait(&h, "FailedScheduling event", |h| {
        has_event(h, "hog-3", "Warning", "FailedScheduling", msg)
    })
    .await;
    let ev = h
        .list("v1", "Event", "default")
        .into_iter()
        .find(|e| e["reason"] == "FailedScheduling")
        .unwrap();
    assert_eq!(ev["action"], "Scheduling");
    assert_eq!(ev["reportingComponent"], "default-scheduler");

    // The unschedulable pod is not rewritten while nothing changes.
    let rv = get(&h, "hog-3").unwrap()["metadata"]["resourceVersion"].clone();
    h.create(pod("bystander", "example/web:1")).unwrap();
    wait(&h, "bystander ready", |h| running_ready(h, "bystander")).await;
    assert_eq!(get(&h, "hog-3").unwrap()["metadata"]["resourceVersion"], rv);

    h.store().delete(res("pods"), "default", "hog-1").unwrap();
    wait(&h, "hog-3 bound after hog-1 is gone", |h| {
        get(h, "hog-3").is_some_and(|p| p["spec"]["nodeName"] == n1)
    })
    .await;
    wait(&h, "hog-3 ready", |h| running_ready(h, "hog-3")).await;
    h.shutdown().await;
}

#[tokio::test]
async fn node_selector_and_taints() {
    let h = fast_cluster(2).await;
    h.store()
        .modify(res("nodes"), "", "node-1", |n| {
            n["spec"]["taints"] =
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
            Ok(true)
        })
        .unwrap();
    let mut p = pod("picky", "example/web:1");
    p["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    h.create(p).unwrap();
    let msg = "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}. no new claims to deallocate, preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    wait(&h, "picky unschedulable", |h| {
        get(h, "picky").is_some_and(|p| condition(&p, "PodScheduled")["message"] == msg)
    })
    .await;
    h.store()
        .modify(res("nodes"), "", "node-2", |n| {
            n["metadata"]["labels"]["disk"] = json!("ssd");
            Ok(true)
        })
        .unwrap();
    wait(&h, "picky bound to node-2", |h| {
        get(h, "picky").is_some_and(|p| p["spec"]["nodeName"] == "node-2")
    })
    .await;

    let mut p = pod("tolerant", "example/web:1");
    p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "node-1"});
    p["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
    h.create(p).unwrap();
    wait(&h, "tolerant bound to node-1", |h| {
        get(h, "tolerant").is_some_and(|p| p["spec"]["nodeName"] == "node-1")
    })
    .await;
    h.shutdown().await;
}

#[tokio::test]
async fn missing_image_err_image_pull_then_back_off() {
    let h = fast_cluster(1).await;
    h.create(pod("miss", "example/web:3-missing")).unwrap();
    let err = "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/example/web:3-missing\": failed to resolve reference \"docker.io/example/web:3-missing\": docker.io/example/web:3-missing: not found";
    wait(&h, "ErrImagePull", |h| {
        cstatus(h, "miss")["state"]["waiting"]["reason"] == "ErrImagePull"
    })
    .await;
    assert_eq!(cstatus(&h, "miss")["state"]["waiting"]["message"], err);
    assert_eq!(cstatus(&h, "miss")["image"], "example/web:3-missing");
    assert_eq!(cstatus(&h, "miss")["imageID"], "");
    wait(&h, "ImagePullBackOff", |h| {
        cstatus(h, "miss")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    assert_eq!(
        cstatus(&h, "miss")["state"]["waiting"]["message"],
        format!("Back-off pulling image \"example/web:3-missing\": ErrImagePull: {err}")
    );
    let p = get(&h, "miss").unwrap();
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(condition(&p, "Ready")["reason"], "ContainersNotReady");
    assert_eq!(
        condition(&p, "Ready")["message"],
        "containers with unready status: [web]"
    );
    assert!(has_event(
        &h,
        "miss",
        "Warning",
        "Failed",
        &format!("Failed to pull image \"example/web:3-missing\": {err}")
    ));
    assert!(has_event(
        &h,
        "miss",
        "Warning",
        "Failed",
        "Error: ErrImagePull"
    ));
    assert!(has_event(
        &h,
        "miss",
        "Normal",
        "BackOff",
        "Back-off pulling image \"example/web:3-missing\""
    ));
    assert!(has_event(
        &h,
        "miss",
        "Warning",
        "Failed",
        "Error: ImagePullBackOff"
    ));
    // After the 10 s back-off the kubelet pulls again.
    wait(&h, "a second pull", |h| {
        events(h, "miss")
            .iter()
            .any(|(_, r, _, c)| r == "Pulling" && *c >= 2)
    })
    .await;
    h.shutdown().await;
}

#[tokio::test]
async fn denied_and_invalid_images() {
    let h = fast_cluster(1).await;
    h.create(pod("denied", "example/web:v10-denied")).unwrap();
    h.create(pod("bad", "example/web:invalid")).unwrap();
    wait(&h, "denied ErrImagePull", |h| {
        cstatus(h, "denied")["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("pull access denied"))
    })
    .await;
    wait(&h, "InvalidImageName", |h| {
        cstatus(h, "bad")["state"]["waiting"]["reason"] == "InvalidImageName"
    })
    .await;
    let msg = "Failed to apply default image tag \"example/web:invalid\": couldn't parse image name \"example/web:invalid\": invalid reference format";
    assert_eq!(cstatus(&h, "bad")["state"]["waiting"]["message"], msg);
    wait(&h, "InvalidImageName events", |h| {
        has_event(h, "bad", "Warning", "InspectFailed", msg)
            && has_event(h, "bad", "Warning", "Failed", "Error: InvalidImageName")
    })
    .await;
    h.shutdown().await;
}

#[tokio::test]
async fn flaky_image_eventually_runs() {
    let h = fast_cluster(1).await;
    h.create(pod("flaky", "example/web:flaky")).unwrap();
    wait(&h, "flaky running", |h| running_ready(h, "flaky")).await;
    let failures: Vec<_> = events(&h, "flaky")
        .into_iter()
        .filter(|(_, r, m, _)| r == "Failed" && m.starts_with("Failed to pull image"))
        .collect();
    assert_eq!(failures.len(), 1, "one event, counted");
    assert_eq!(failures[0].3, 2, "two transient failures");
    assert!(failures[0].2.contains("i/o timeout"));
    h.shutdown().await;
}

#[tokio::test]
async fn crash_loop_back_off_with_restarts_and_previous_logs() {
    let h = fast_cluster(1).await;
    h.create(pod("crash", "example/web:4-crash")).unwrap();
    wait(&h, "restartCount 2 in CrashLoopBackOff", |h| {
        let c = cstatus(h, "crash");
        c["restartCount"].as_i64() >= Some(2)
            && c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    let p = get(&h, "crash").unwrap();
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let c = &p["status"]["containerStatuses"][0];
    let secs = if c["restartCount"] == 2 { "20s" } else { "40s" };
    assert_eq!(
        c["state"]["waiting"]["message"],
        format!("back-off {secs} restarting failed container=web pod=crash_default({uid})")
    );
    let last = &c["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 1);
    assert_eq!(last["reason"], "Error");
    assert_eq!(last["containerID"], c["containerID"]);
    assert!(last["startedAt"].is_string() && last["finishedAt"].is_string());
    assert_eq!(c["ready"], false);
    assert_eq!(c["started"], false);
    assert_eq!(p["status"]["phase"], "Running");
    assert!(has_event(
        &h,
        "crash",
        "Warning",
        "BackOff",
        &format!("Back-off restarting failed container web in pod crash_default({uid})")
    ));
    assert!(has_event(
        &h,
        "crash",
        "Normal",
        "Pulled",
        "already present on machine"
    ));
    let l = logs(&h, "crash");
    assert!(
        l.previous
            .as_ref()
            .unwrap()
            .iter()
            .any(|x| x.contains("Error: cannot connect to database"))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn oom_killed_exit_137() {
    let h = fast_cluster(1).await;
    h.create(pod("oom", "example/web:5-oom")).unwrap();
    wait(&h, "OOMKilled", |h| {
        cstatus(h, "oom")["lastState"]["terminated"]["reason"] == "OOMKilled"
    })
    .await;
    assert_eq!(
        cstatus(&h, "oom")["lastState"]["terminated"]["exitCode"],
        137
    );
    h.shutdown().await;
}

#[tokio::test]
async fn unready_with_probe_is_never_ready_and_reports_unhealthy() {
    let h = fast_cluster(1).await;
    let mut p = pod("unready", "example/web:unready");
    p["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2});
    h.create(p).unwrap();
    // Without a probe the same image is Ready, as with a real kubelet.
    h.create(pod("noprobe", "example/web:unready")).unwrap();
    wait(&h, "Unhealthy events", |h| {
        events(h, "unready").iter().any(|(t, r, m, c)| {
            t == "Warning"
                && r == "Unhealthy"
                && m == "Readiness probe failed: HTTP probe failed with statuscode: 503"
                && *c >= 3
        })
    })
    .await;
    let p = get(&h, "unready").unwrap();
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(condition(&p, "Ready")["status"], "False");
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(p["status"]["containerStatuses"][0]["started"], true);
    wait(&h, "noprobe ready", |h| running_ready(h, "noprobe")).await;
    h.shutdown().await;
}

#[tokio::test]
async fn slow_image_ready_only_after_20s() {
    let h = fast_cluster(1).await;
    h.create(pod("slow", "example/web:2-slow")).unwrap();
    wait(&h, "slow running", |h| {
        cstatus(h, "slow")["state"]["running"].is_object()
    })
    .await;
    assert_eq!(cstatus(&h, "slow")["ready"], false);
    wait(&h, "slow ready", |h| running_ready(h, "slow")).await;
    let p = get(&h, "slow").unwrap();
    let started: jiff::Timestamp =
        p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let ready: jiff::Timestamp = condition(&p, "Ready")["lastTransitionTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let secs = ready.duration_since(started).as_secs();
    assert!((19..=22).contains(&secs), "ready {secs}s after start");
    h.shutdown().await;
}

#[tokio::test]
async fn missing_configmap_blocks_until_created() {
    let h = fast_cluster(1).await;
    let mut p = pod("cfg", "example/cfg:2");
    p["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "app-config"}}]);
    p["spec"]["containers"][0]["env"] = json!([
        {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}}
    ]);
    h.create(p).unwrap();
    wait(&h, "CreateContainerConfigError", |h| {
        cstatus(h, "cfg")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    assert_eq!(
        cstatus(&h, "cfg")["state"]["waiting"]["message"],
        "configmap \"app-config\" not found"
    );
    wait(&h, "config error event", |h| {
        has_event(
            h,
            "cfg",
            "Warning",
            "Failed",
            "Error: configmap \"app-config\" not found",
        )
    })
    .await;
    // A ConfigMap without the key a second container needs.
    h.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": "default"}, "data": {"A": "1"}}))
        .unwrap();
    wait(&h, "cfg running", |h| running_ready(h, "cfg")).await;

    let mut p = pod("keyed", "example/cfg:2");
    p["spec"]["containers"][0]["env"] = json!([
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "B"}}}
    ]);
    h.create(p).unwrap();
    wait(&h, "missing key", |h| {
        cstatus(h, "keyed")["state"]["waiting"]["message"]
            == "couldn't find key B in ConfigMap default/app-config"
    })
    .await;
    h.shutdown().await;
}

#[tokio::test]
async fn graceful_termination_removes_the_pod() {
    let h = fast_cluster(1).await;
    h.create(pod("bye", "example/web:1")).unwrap();
    wait(&h, "bye ready", |h| running_ready(h, "bye")).await;
    let deadline = h.clock().now() + Duration::from_secs(30);
    h.store()
        .modify(res("pods"), "default", "bye", |p| {
            p["metadata"]["deletionTimestamp"] = json!(kubesim::clock::fmt_time(deadline));
            p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
            Ok(true)
        })
        .unwrap();
    wait(&h, "pod removed", |h| get(h, "bye").is_none()).await;
    assert!(has_event(
        &h,
        "bye",
        "Normal",
        "Killing",
        "Stopping container web"
    ));
    assert!(!h.sim.logs.lock().unwrap().contains_key(&(
        "default".into(),
        "bye".into(),
        "web".into()
    )));
    assert_eq!(h.sim.kubelet.lock().unwrap().pod_count(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn init_containers_then_app_and_restart_policy_never() {
    let h = fast_cluster(1).await;
    let mut p = pod("init", "example/web:1");
    p["spec"]["initContainers"] = json!([{"name": "setup", "image": "example/setup:1"}]);
    h.create(p).unwrap();
    wait(&h, "init pod ready", |h| running_ready(h, "init")).await;
    let p = get(&h, "init").unwrap();
    let ics = &p["status"]["initContainerStatuses"][0];
    assert_eq!(ics["state"]["terminated"]["reason"], "Completed");
    assert_eq!(ics["state"]["terminated"]["exitCode"], 0);

    let mut p = pod("once", "example/web:crash");
    p["spec"]["restartPolicy"] = json!("Never");
    h.create(p).unwrap();
    wait(&h, "once failed", |h| {
        get(h, "once").is_some_and(|p| p["status"]["phase"] == "Failed")
    })
    .await;
    let c = cstatus(&h, "once");
    assert_eq!(c["state"]["terminated"]["exitCode"], 1);
    assert_eq!(c["restartCount"], 0);
    h.shutdown().await;
}

#[tokio::test]
async fn a_thousand_pods_schedule_and_run() {
    let h = kubesim::start(Config {
        nodes: 10,
        speed: 50.0,
        tls: false,
        ..Config::default()
    })
    .await
    .unwrap();
    for i in 0..1000 {
        h.create(pod(&format!("p-{i}"), "example/web:1")).unwrap();
    }
    let ok = h
        .wait_for(Duration::from_secs(15), |h| {
            h.list("v1", "Pod", "default")
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count()
                == 1000
        })
        .await;
    assert!(ok, "1000 pods running");
    h.shutdown().await;
}
