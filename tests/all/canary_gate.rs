//! The canary step and the metric gate together, end to end: rollguard's
//! library entry point against kubesim over HTTPS, the gate judged by a real
//! Prometheus scraping kubesim's pod metrics during the canary's hold. A
//! failing gate must fail on the canary alone: the stable workload's
//! template, resourceVersion and pods are compared before and after, and no
//! canary object or pod may be left.

use std::time::{Duration, Instant};

use crate::prometheus::Prometheus;
use crate::support::{
    self, WAIT, assert_no_canary_left, assert_untouched, env_with, live_pods, run, stable_state,
    statefulset_named, statefulset_pods, statefulset_settled, web_of_4,
};
use kubesim::Handle;
use rollguard::Env;
use rollguard::analysis::Outcome as Eval;
use rollguard::diagnose::Cause;
use serde_json::Value;

const SPEED: f64 = 25.0;

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

/// A metered cluster at `SPEED` whose Deployment `web` of 4 Prometheus
/// has scraped.
async fn metered_web() -> (Handle, Prometheus) {
    let (h, p) = metered_cluster(SPEED).await;
    web_of_4(&h).await;
    scraped(&p, "web").await;
    (h, p)
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

/// The gate failed on the errors build: the finding names the query as
/// sent, the value and the condition; the value is kubesim's 20 %.
fn assert_gate_failed(o: &rollguard::Outcome, version: &str) {
    let f = o.report.findings.first().expect("a finding");
    assert_eq!(f.cause, Cause::MetricGate, "{f:?}");
    let sent = format!(r#"app_kubernetes_io_version="{version}",code=~"5..""#);
    support::assert_evidence(f, &sent);
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
    let (h, p) = metered_web().await;
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
    support::assert_gate_passed(a, r#"app_kubernetes_io_version="v2""#);
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
    let (h, p) = metered_web().await;
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
    assert_untouched(&h, &before);
    let canary = o.report.canary.clone().expect("the canary's exposure");
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    assert!(canary.ends_with("failed"), "{canary}");
    assert!(out.contains(&format!("exposure: {canary}")), "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_during_the_hold_fails_at_its_end_and_the_stable_never_changes() {
    let (h, p) = metered_web().await;
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
    assert_untouched(&h, &before);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errors_statefulset_canary_fails_on_the_gate_and_the_partition_is_restored() {
    let (h, p) = metered_cluster(SPEED).await;
    h.create(support::statefulset("db", "example/db:1", 4))
        .unwrap();
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 4)).await);
    scraped(&p, "db").await;
    let good = statefulset_named(&h, "db")["status"]["currentRevision"].clone();
    let template = statefulset_named(&h, "db")["spec"]["template"].clone();
    let before = statefulset_pods(&h);
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
    support::assert_db_restored(&h, &template, good.as_str().unwrap(), &before).await;
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
    assert_untouched(&h, &before);
    let canary = o.report.canary.clone().unwrap_or_default();
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    h.shutdown().await;
}
