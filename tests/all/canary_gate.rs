//! The canary step and the metric gate together, end to end: rollguard's
//! library entry point against kubesim over HTTPS, the gate judged by a real
//! Prometheus scraping kubesim's pod metrics during the canary's hold. A
//! failing gate must fail on the canary alone: the stable workload's
//! template, resourceVersion and pods are compared before and after, and no
//! canary object or pod may be left.

use std::time::{Duration, Instant};

use crate::prometheus::Prometheus;
use crate::support::{self, WAIT, env_with, live_pods, run};
use kubesim::Handle;
use rollguard::Env;
use rollguard::analysis::Outcome as Eval;
use rollguard::diagnose::Cause;
use serde_json::{Value, json};

const SPEED: f64 = 25.0;
const CANARY_LABEL: &str = "rollguard.dev/canary";

/// The new version's share of 5xx responses (the README's query).
const ERROR_RATIO: &str = r#"sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}",code=~"5.."}[5s])) / sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}"}[5s]))"#;

/// A cluster serving pod metrics, and a Prometheus scraping it.
async fn metered_cluster(speed: f64) -> (Handle, Prometheus) {
    let h = support::Fixture::with_config(kubesim::Config {
        speed,
        tls: true,
        metrics_listen: Some(([127, 0, 0, 1], 0).into()),
        ..Default::default()
    })
    .start()
    .await;
    let p = Prometheus::start(h.metrics_addr.expect("metrics listener")).await;
    (h, p)
}

/// Wait until Prometheus has scraped the ready stable pods.
async fn scraped(p: &Prometheus, app: &str) {
    let q = format!(r#"http_requests_total{{namespace="default",app="{app}"}}"#);
    assert!(
        p.wait_for_series(&q, WAIT).await,
        "prometheus never scraped kubesim:\n{}",
        p.log()
    );
}

/// A Deployment `web` of 4 ready v1 pods (label `app: web`, as the metrics carry it).
async fn web_of_4(h: &Handle) {
    h.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "example/web:v1"}]}}
        }
    }))
    .unwrap();
    assert!(
        h.wait_for(Duration::from_secs(120), |h| support::rolled_out(h, "web"))
            .await,
        "web never became ready"
    );
}

fn gate_env(h: &Handle, p: &Prometheus, pairs: &[(&str, &str)]) -> Env {
    let url = p.url();
    let mut e = env_with(
        h,
        &[
            ("ROLLGUARD_VERIFY_IMAGE", "false"),
            ("ROLLGUARD_WORKLOAD", "deployment/web"),
            ("ROLLGUARD_CANARY", "1"),
            ("ROLLGUARD_ANALYSIS_QUERY", ERROR_RATIO),
            ("ROLLGUARD_ANALYSIS_CONDITION", "< 0.05"),
            ("ROLLGUARD_ANALYSIS_INTERVAL", "2s"),
        ],
        pairs,
    );
    e.insert("ROLLGUARD_PROMETHEUS_URL".into(), url);
    e
}

fn canary_deployment(h: &Handle) -> Option<Value> {
    h.get("apps/v1", "Deployment", "default", "web-canary")
        .map(|d| (*d).clone())
}

/// Every pod carrying the canary label, terminating or not.
fn canary_pods(h: &Handle) -> Vec<String> {
    h.list("v1", "Pod", "default")
        .into_iter()
        .filter(|p| !p["metadata"]["labels"][CANARY_LABEL].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn assert_no_canary_left(h: &Handle) {
    assert!(canary_deployment(h).is_none(), "web-canary is left");
    assert!(
        canary_pods(h).is_empty(),
        "canary pods are left: {:?}",
        canary_pods(h)
    );
}

/// What a failing canary must not change: the stable Deployment's template,
/// resourceVersion and generation, and its pods (name, image).
fn stable_state(h: &Handle) -> (Value, Value, Value, Vec<(String, String)>) {
    let d = support::deployment_named(h, "web");
    let mut pods: Vec<(String, String)> = live_pods(h)
        .iter()
        .filter(|p| p["metadata"]["labels"][CANARY_LABEL].is_null())
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&p["metadata"]["name"]),
                s(&p["spec"]["containers"][0]["image"]),
            )
        })
        .collect();
    pods.sort();
    (
        d["spec"]["template"].clone(),
        d["metadata"]["resourceVersion"].clone(),
        d["metadata"]["generation"].clone(),
        pods,
    )
}

/// The gate failed on the errors build: the finding names the query as
/// sent, the value and the condition; the value is kubesim's 20 %.
fn assert_gate_failed(o: &rollguard::Outcome, version: &str) {
    let f = o.report.findings.first().expect("a finding");
    assert_eq!(f.cause, Cause::MetricGate, "{f:?}");
    let sent = format!(r#"app_kubernetes_io_version="{version}",code=~"5..""#);
    assert!(f.evidence.iter().any(|e| e.contains(&sent)), "{f:?}");
    assert!(f.summary.contains("is not < 0.05"), "{}", f.summary);
    let a = o.report.analysis.as_ref().expect("the gate in the report");
    let failure = a.failure.as_ref().expect("a failing evaluation");
    let v = failure.value.expect("a failing value");
    assert!((0.1..0.3).contains(&v), "error ratio {v}");
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("condition < 0.05") && e.contains(&failure.time)),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_passes_the_gate_then_the_full_rollout_follows() {
    let (h, p) = metered_cluster(SPEED).await;
    web_of_4(&h).await;
    scraped(&p, "web").await;
    let files = tempfile::tempdir().unwrap();
    let json_path = files.path().join("report.json");
    let report_file = json_path.display().to_string();
    let (o, out) = run(&gate_env(
        &h,
        &p,
        &[
            ("ROLLGUARD_TAG", "v2"),
            ("ROLLGUARD_CANARY_HOLD", "8s"),
            ("ROLLGUARD_REPORT_FILE", &report_file),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    // The gate judged the canary before the stable Deployment was touched.
    let gate = out.find("metric gate at ").expect("an evaluation logged");
    let passed = out.find("canary passed").expect("the canary passed");
    let full = out
        .find("rolling deployment/web")
        .expect("the full rollout");
    assert!(gate < passed && passed < full, "{out}");
    assert_eq!(support::image(&h), "example/web:v2");
    assert!(h.wait_for(WAIT, |h| support::rolled_out(h, "web")).await);
    let pods = live_pods(&h);
    assert_eq!(pods.len(), 4, "{pods:?}");
    assert!(
        pods.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "example/web:v2")
    );
    assert_no_canary_left(&h);
    // The hold's evaluations survive the full rollout (which has no bake)
    // in the report and the console summary.
    assert!(out[full..].contains("metric gate: passed"), "{out}");
    let a = o.report.analysis.as_ref().expect("the gate in the report");
    assert!(a.failure.is_none(), "{a:?}");
    assert!(
        a.query.contains(r#"app_kubernetes_io_version="v2""#),
        "{}",
        a.query
    );
    let passes = a
        .evaluations
        .iter()
        .filter(|e| e.outcome == Eval::Pass)
        .count();
    assert!(passes >= 2, "{:?}", a.evaluations);
    assert!(
        a.evaluations
            .iter()
            .all(|e| e.outcome != Eval::Fail && e.value.is_none_or(|v| v < 0.05)),
        "{:?}",
        a.evaluations
    );
    let canary = o.report.canary.clone().expect("the canary's exposure");
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    assert!(canary.contains("passed"), "{canary}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["canary"], canary.as_str());
    assert_eq!(
        json["analysis"]["evaluations"].as_array().map(Vec::len),
        Some(a.evaluations.len())
    );
    assert_eq!(json["analysis"]["condition"], "< 0.05");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errors_canary_fails_on_the_gate_during_its_hold_and_the_stable_never_changes() {
    let (h, p) = metered_cluster(SPEED).await;
    web_of_4(&h).await;
    scraped(&p, "web").await;
    let before = stable_state(&h);
    let t0 = Instant::now();
    let (o, out) = run(&gate_env(
        &h,
        &p,
        &[
            ("ROLLGUARD_TAG", "v2-errors"),
            ("ROLLGUARD_CANARY_HOLD", "40s"),
        ],
    ))
    .await;
    let took = t0.elapsed();
    assert_eq!(o.exit_code, 1, "{out}");
    assert_gate_failed(&o, "v2-errors");
    // Caught within a few evaluations, long before the hold was over.
    assert!(took < Duration::from_secs(30), "took {took:?}\n{out}");
    assert!(!out.contains("rolling deployment/web"), "{out}");
    assert_eq!(stable_state(&h), before, "the stable Deployment changed");
    assert_no_canary_left(&h);
    let canary = o.report.canary.clone().expect("the canary's exposure");
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    assert!(canary.ends_with("failed"), "{canary}");
    assert!(out.contains(&format!("exposure: {canary}")), "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_during_the_hold_fails_at_its_end_and_the_stable_never_changes() {
    let (h, p) = metered_cluster(SPEED).await;
    web_of_4(&h).await;
    scraped(&p, "web").await;
    let before = stable_state(&h);
    // No pod has this label value: the vector is empty at every evaluation.
    let nothing = r#"sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}-absent"}[5s]))"#;
    let t0 = Instant::now();
    let (o, out) = run(&gate_env(
        &h,
        &p,
        &[
            ("ROLLGUARD_TAG", "v2"),
            ("ROLLGUARD_CANARY_HOLD", "5s"),
            ("ROLLGUARD_ANALYSIS_QUERY", nothing),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 1, "{out}");
    // Not before the hold was over.
    assert!(t0.elapsed() >= Duration::from_secs(5), "{out}");
    let a = o.report.analysis.as_ref().expect("the gate in the report");
    assert!(a.evaluations.len() >= 2, "{a:?}");
    assert!(a.evaluations.iter().all(|e| e.outcome == Eval::NoData));
    let f = o.report.findings.first().expect("a finding");
    assert_eq!(f.cause, Cause::MetricGate, "{f:?}");
    assert!(f.summary.contains("no data"), "{}", f.summary);
    assert!(out.contains("inconclusive, waiting"), "{out}");
    assert_eq!(stable_state(&h), before, "the stable Deployment changed");
    assert_no_canary_left(&h);
    h.shutdown().await;
}

fn statefulset(image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "db", "image": image}]}},
        }
    })
}

fn sts(h: &Handle) -> Value {
    h.get("apps/v1", "StatefulSet", "default", "db")
        .map(|s| (*s).clone())
        .expect("statefulset")
}

fn sts_settled(h: &Handle, n: i64) -> bool {
    let s = sts(h);
    let st = &s["status"];
    st["readyReplicas"] == n
        && st["updatedReplicas"] == n
        && st["currentRevision"] == st["updateRevision"]
        && st["observedGeneration"] == s["metadata"]["generation"]
}

/// (name, uid, image, revision) of each live pod, by name.
fn sts_pods(h: &Handle) -> Vec<(String, String, String, String)> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errors_statefulset_canary_fails_on_the_gate_and_the_partition_is_restored() {
    let (h, p) = metered_cluster(SPEED).await;
    h.create(statefulset("example/db:1", 4)).unwrap();
    assert!(h.wait_for(WAIT, |h| sts_settled(h, 4)).await);
    scraped(&p, "db").await;
    let good = sts(&h)["status"]["currentRevision"].clone();
    let template = sts(&h)["spec"]["template"].clone();
    let before = sts_pods(&h);
    let t0 = Instant::now();
    let (o, out) = run(&gate_env(
        &h,
        &p,
        &[
            ("ROLLGUARD_WORKLOAD", "statefulset/db"),
            ("ROLLGUARD_CAPACITY_CHECK", "off"),
            ("ROLLGUARD_TAG", "2-errors"),
            ("ROLLGUARD_CANARY_HOLD", "40s"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 1, "{out}");
    assert_gate_failed(&o, "2-errors");
    assert!(t0.elapsed() < Duration::from_secs(30), "{out}");
    assert!(
        out.contains("the ordinals below 3 were never changed"),
        "{out}"
    );
    assert!(h.wait_for(WAIT, |h| sts_settled(h, 4)).await);
    let s = sts(&h);
    assert_eq!(s["spec"]["template"], template, "the template is not back");
    assert_eq!(s["status"]["currentRevision"], good);
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    assert!(s["metadata"]["annotations"]["rollguard.dev/canary-partition"].is_null());
    let after = sts_pods(&h);
    // db-0..db-2 are the very same pods; db-3 is back on the stable revision.
    assert_eq!(after[..3], before[..3], "a stable ordinal was touched");
    assert_eq!(after[3].0, "db-3");
    assert_eq!(after[3].2, "example/db:1");
    assert_eq!(after[3].3, good.as_str().unwrap());
    let canary = o.report.canary.clone().unwrap_or_default();
    assert!(canary.starts_with("canary: 1 of 4 pods"), "{canary}");
    assert!(canary.contains("partition restored to 0"), "{canary}");
    h.shutdown().await;
}

/// At real speed: the canary's pod serves real-time traffic, Prometheus
/// scrapes it every second, the gate's window is 10 s and its interval 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_real_speed_an_errors_canary_fails_on_the_gate_within_its_hold() {
    let (h, p) = metered_cluster(1.0).await;
    web_of_4(&h).await;
    scraped(&p, "web").await;
    let before = stable_state(&h);
    let query = ERROR_RATIO.replace("[5s]", "[10s]");
    let t0 = Instant::now();
    let (o, out) = run(&gate_env(
        &h,
        &p,
        &[
            ("ROLLGUARD_TAG", "v2-errors"),
            ("ROLLGUARD_CANARY_HOLD", "2m"),
            ("ROLLGUARD_STABLE_FOR", "10s"),
            ("ROLLGUARD_ANALYSIS_INTERVAL", "5s"),
            ("ROLLGUARD_ANALYSIS_QUERY", &query),
        ],
    ))
    .await;
    let took = t0.elapsed();
    assert_eq!(o.exit_code, 1, "{out}");
    assert_gate_failed(&o, "v2-errors");
    assert!(took < Duration::from_secs(60), "took {took:?}\n{out}");
    assert_eq!(stable_state(&h), before, "the stable Deployment changed");
    assert_no_canary_left(&h);
    let canary = o.report.canary.clone().unwrap_or_default();
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    h.shutdown().await;
}
