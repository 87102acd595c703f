//! What rollguard's integration tests share: a kubesim cluster with its
//! workloads (`Fixture`, `DeploymentSpec`), kubectl's rollout rule,
//! rollguard's inputs, library and child-process runs. The short names
//! (`web`, `get`, `healthy`, `image`, `env`, …) are about the `web`
//! Deployment most suites roll out.
#![allow(dead_code)]

mod canary;
mod fixture;

use std::time::Duration;

use kubesim::Handle;
use rollguard::diagnose::Cause;
use rollguard::{Env, Outcome};
use serde_json::{Value, json};

pub use canary::{
    CANARY_LABEL, assert_db_restored, assert_no_canary_left, assert_untouched, canary_deployment,
    canary_pods, stable_state, web_of_4,
};
pub use fixture::{DeploymentSpec, Fixture, PodLabel, rolled_out_in};
pub use kubesim::fixtures::{database, statefulset};

pub const WAIT: Duration = Duration::from_secs(60);

/// `web`: `replicas` pods of one container `web` on `image`, labelled
/// `name: web-pods`.
pub fn web(image: &str, replicas: i64) -> Value {
    DeploymentSpec {
        image,
        replicas,
        labelled: true,
        ..Default::default()
    }
    .into()
}

/// A cluster at `speed`, nothing deployed.
pub async fn cluster(speed: f64) -> Handle {
    Fixture::new().speed(speed).start().await
}

/// A cluster at `speed` with `web` ready on `example/web:v1`.
pub async fn web_cluster(speed: f64, replicas: i64) -> Handle {
    Fixture::new()
        .speed(speed)
        .deployment(web("example/web:v1", replicas))
        .start()
        .await
}

/// The stored Deployment `name` in `default`.
pub fn deployment_named(h: &Handle, name: &str) -> Value {
    h.get("apps/v1", "Deployment", "default", name)
        .map(|d| (*d).clone())
        .expect("deployment exists")
}

/// kubectl's rollout rule on the stored Deployment `name` in `default`.
pub fn rolled_out(h: &Handle, name: &str) -> bool {
    rolled_out_in(h, "default", name)
}

/// Create the Deployment `obj` and wait until it is rolled out (when the
/// cluster must change first; else `Fixture::deployment`).
pub async fn create_ready(h: &Handle, obj: Value) {
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    h.create(obj).expect("create deployment");
    assert!(
        h.wait_for(WAIT, |h| rolled_out(h, &name)).await,
        "deployment {name} never became ready"
    );
}

/// The StatefulSet `name` in `default` has `n` ready pods, all of its
/// current revision.
pub fn statefulset_settled(h: &Handle, name: &str, n: i64) -> bool {
    let Some(s) = h.get("apps/v1", "StatefulSet", "default", name) else {
        return false;
    };
    let st = &s["status"];
    st["readyReplicas"] == n
        && st["updatedReplicas"] == n
        && st["currentRevision"] == st["updateRevision"]
        && st["observedGeneration"] == s["metadata"]["generation"]
}

/// The stored StatefulSet `name` in `default`.
pub fn statefulset_named(h: &Handle, name: &str) -> Value {
    h.get("apps/v1", "StatefulSet", "default", name)
        .map(|s| (*s).clone())
        .expect("statefulset exists")
}

/// (name, uid, image, revision) of each live pod, by name: a StatefulSet's
/// stable ordinals must be the very same pods after a failed canary.
pub fn statefulset_pods(h: &Handle) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = live_pods(h)
        .iter()
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&p["metadata"]["name"]),
                s(&p["metadata"]["uid"]),
                s(&p["spec"]["containers"][0]["image"]),
                s(&p["metadata"]["labels"]["controller-revision-hash"]),
            )
        })
        .collect();
    v.sort();
    v
}

/// Pods in `default` not being deleted.
pub fn live_pods(h: &Handle) -> Vec<Value> {
    h.list("v1", "Pod", "default")
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| (*p).clone())
        .collect()
}

/// Each pod's name and first container's image, sorted: what a failed
/// rollout must leave as it was.
pub fn names_and_images<'a>(pods: impl IntoIterator<Item = &'a Value>) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut v: Vec<(String, String)> = pods
        .into_iter()
        .map(|p| {
            (
                text(&p["metadata"]["name"]),
                text(&p["spec"]["containers"][0]["image"]),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn get(h: &Handle) -> Value {
    deployment_named(h, "web")
}

pub fn healthy(h: &Handle) -> bool {
    h.get("apps/v1", "Deployment", "default", "web")
        .is_some_and(|d| rollguard::recovery::rolled_out(&d, 0))
}

pub fn image(h: &Handle) -> String {
    get(h)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn annotation(h: &Handle, key: &str) -> Option<String> {
    get(h)["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_string)
}

/// ReplicaSets of web (live ones), with their revision annotations.
pub fn revisions(h: &Handle) -> Vec<String> {
    let mut r: Vec<String> = h
        .list("apps/v1", "ReplicaSet", "default")
        .iter()
        .filter(|rs| rs["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|rs| {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    r.sort();
    r
}

pub fn replica_set_count(h: &Handle) -> usize {
    h.list("apps/v1", "ReplicaSet", "default").len()
}

pub fn env(h: &Handle, pairs: &[(&str, &str)]) -> Env {
    env_with(
        h,
        &[
            ("ROLLGUARD_VERIFY_IMAGE", "false"),
            ("ROLLGUARD_WORKLOAD", "deployment/web"),
        ],
        pairs,
    )
}

/// rollguard's inputs: the cluster's kubeconfig, then `base`, then `pairs`
/// (a later pair wins).
pub fn env_with(h: &Handle, base: &[(&str, &str)], pairs: &[(&str, &str)]) -> Env {
    // The clusters of these suites run compressed (speed 20-30): a window of
    // 1 real second spans 20 s or more of the cluster's time, the default
    // stability window. Suites at speed 1 set their own.
    let mut e: Env = [
        ("ROLLGUARD_KUBECONFIG".to_string(), h.kubeconfig_yaml()),
        ("ROLLGUARD_STABLE_FOR".to_string(), "1s".to_string()),
    ]
    .into();
    for (k, v) in base.iter().chain(pairs) {
        e.insert(k.to_string(), v.to_string());
    }
    e
}

/// rollguard's library entry point; its outcome and what it printed
/// (echoed to the test's output).
pub async fn run(env: &Env) -> (Outcome, String) {
    let mut out = Vec::new();
    let outcome = rollguard::run(env, &mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    println!("{text}");
    (outcome, text)
}

/// The real binary against the cluster, stdout/stderr piped.
pub fn spawn(env: &Env) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rollguard"))
        .env_clear()
        .envs(env)
        .env("NO_COLOR", "1")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rollguard starts")
}

pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("child running");
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// The child's output once it has exited, and how long that took; fails
/// the test when it is still running after `deadline`.
pub async fn exited_within(
    child: tokio::process::Child,
    deadline: Duration,
) -> (std::process::Output, Duration) {
    let t0 = std::time::Instant::now();
    let out = tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("still running after {deadline:?}"))
        .expect("the child's output");
    (out, t0.elapsed())
}

/// The run failed with `code`, `cause` first among its findings, and its
/// rollback was attempted and confirmed healthy.
pub fn assert_rolled_back(o: &Outcome, out: &str, code: i32, cause: Cause) {
    assert_eq!(o.exit_code, code, "{out}\n{:#?}", o.report);
    assert_eq!(
        o.report.findings.first().map(|f| f.cause),
        Some(cause),
        "{:#?}",
        o.report.findings
    );
    let rb = o.report.rollback.as_ref().expect("rollback reported");
    assert!(rb.attempted && rb.confirmed, "{rb:?}");
}

/// Delete the ConfigMap `name` in `default` behind the API's back (as an
/// operator's `kubectl delete` would, after the pods started).
pub fn delete_configmap(h: &Handle, name: &str) {
    h.store()
        .delete(kubesim::resources::res("configmaps"), "default", name)
        .expect("configmap deleted");
}

/// Set a new image that becomes ready only after `secs` (real seconds at speed 1).
pub fn slow_image(h: &Handle, image: &str, secs: u64) {
    h.set_image_behaviour(
        image,
        kubesim::scenario::ImageBehaviour::Ok {
            ready_after: Duration::from_secs(secs),
        },
    );
}

/// The rules of a Role document, as kubesim rules in namespace `ns`.
pub fn role_rules(role: &Value, ns: &str) -> Vec<kubesim::Rule> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| kubesim::Rule {
            verbs: strings(&r["verbs"]),
            groups: strings(&r["apiGroups"]),
            resources: strings(&r["resources"]),
            namespaces: vec![ns.to_string()],
        })
        .collect()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A finished process's stdout and stderr as text, once it exited 0 (both
/// are in the failure message otherwise).
pub fn succeeded(out: &std::process::Output) -> (String, String) {
    let (stdout, stderr) = texts(out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// A finished process's stdout and stderr, as text.
pub fn texts(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The inputs of a canary run: the tag, the canary's size and its hold.
pub fn canary_inputs<'a>(
    tag: &'a str,
    size: &'a str,
    hold: &'a str,
) -> [(&'static str, &'a str); 3] {
    [
        ("ROLLGUARD_TAG", tag),
        ("ROLLGUARD_CANARY", size),
        ("ROLLGUARD_CANARY_HOLD", hold),
    ]
}

/// How long, in the cluster's seconds, pod `p` has been Ready at `now`;
/// `None` while it is not Ready.
pub fn ready_secs(p: &Value, now: jiff::Timestamp) -> Option<f64> {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| (now - t).total(jiff::Unit::Second).unwrap_or(0.0))
}

/// SIGTERM to a running rollguard: it must exit 1 (cancelled, rolled back)
/// within 10 s. Its stdout.
pub async fn terminated(child: tokio::process::Child) -> String {
    signal(&child, "TERM");
    let (out, took) = exited_within(child, Duration::from_secs(15)).await;
    let (stdout, stderr) = texts(&out);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    stdout
}

/// The lines of `text` that `keep` holds for.
pub fn lines_where(text: &str, keep: impl Fn(&str) -> bool) -> Vec<&str> {
    text.lines().filter(|l| keep(l)).collect()
}

/// The strings of a JSON array (every element must be one).
pub fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// A mock answering `verb` on `route` with `status` and a JSON `body`;
/// the caller adds its expectations and mounts it.
pub fn json_at(verb: &str, route: &str, status: u16, body: Value) -> wiremock::Mock {
    wiremock::Mock::given(wiremock::matchers::method(verb))
        .and(wiremock::matchers::path(route))
        .respond_with(wiremock::ResponseTemplate::new(status).set_body_json(body))
}

/// `json_at`, mounted on `server` with no expectation.
pub async fn serve(
    server: &wiremock::MockServer,
    verb: &str,
    route: &str,
    status: u16,
    body: Value,
) {
    json_at(verb, route, status, body).mount(server).await;
}

/// A pull request with no comment yet: GitHub lists none on issue `issue`
/// of `repo` (`owner/name`).
pub async fn no_comments(server: &wiremock::MockServer, repo: &str, issue: u32) {
    let route = format!("/repos/{repo}/issues/{issue}/comments");
    serve(server, "GET", &route, 200, json!([])).await;
}

/// A pull request with no comment yet that takes rollguard's sticky
/// comment, answering it with the comment's `id`.
pub async fn takes_comment(server: &wiremock::MockServer, repo: &str, issue: u32, id: u64) {
    no_comments(server, repo, issue).await;
    let route = format!("/repos/{repo}/issues/{issue}/comments");
    serve(server, "POST", &route, 201, json!({ "id": id })).await;
}

/// GitHub's answer to a token that lacks the permission (a fork's, say).
pub fn github_forbidden() -> Value {
    serde_json::json!({"message": "Resource not accessible by integration"})
}

/// Exactly these inputs, nothing added.
pub fn env_of(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The metric gate passed on the good build: no failure, the query as sent
/// contains `sent`, at least two evaluations passed and none failed or
/// read 5 % or more. The number that passed.
pub fn assert_gate_passed(a: &rollguard::analysis::Summary, sent: &str) -> usize {
    use rollguard::analysis::Outcome;
    assert!(a.failure.is_none(), "{a:?}");
    assert!(a.query.contains(sent), "{}", a.query);
    let passes = a
        .evaluations
        .iter()
        .filter(|e| e.outcome == Outcome::Pass)
        .count();
    assert!(passes >= 2, "{:?}", a.evaluations);
    assert!(
        a.evaluations
            .iter()
            .all(|e| e.outcome != Outcome::Fail && e.value.is_none_or(|v| v < 0.05)),
        "{:?}",
        a.evaluations
    );
    passes
}

/// The finding cites `needle` in one of its lines of evidence.
pub fn assert_evidence(f: &rollguard::model::finding::Finding, needle: &str) {
    assert!(
        f.evidence.iter().any(|e| e.contains(needle)),
        "no evidence with {needle:?}: {f:#?}"
    );
}
