//! The metric gate end to end: rollguard (library entry point, and the
//! binary for the secrets check) against kubesim over HTTPS, judged by a
//! real Prometheus scraping kubesim's pod metrics. Cluster state is checked
//! afterwards: a failing gate leaves the old template and old pods serving.

use crate::support;
use std::time::Duration;

use crate::prometheus::Prometheus;
use crate::support::{live_pods, run as rollguard};
use kubesim::Handle;
use rollguard::Env;
use rollguard::analysis::Outcome as Eval;
use rollguard::diagnose::Cause;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// The error ratio of the new version's requests (the README's query).
const ERROR_RATIO: &str = r#"sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}",code=~"5.."}[5s])) / sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}"}[5s]))"#;

/// A kubesim at `speed` serving its pods' metrics on a loopback port.
async fn metrics_cluster(speed: f64) -> Handle {
    support::Fixture::with_config(kubesim::Config {
        speed,
        tls: true,
        metrics_listen: Some(([127, 0, 0, 1], 0).into()),
        ..Default::default()
    })
    .start()
    .await
}

/// A cluster serving pod metrics, a ready `web` (3 × v1), and a Prometheus
/// that has scraped it once.
async fn setup(speed: f64) -> (Handle, Prometheus) {
    let h = metrics_cluster(speed).await;
    support::create_ready(&h, support::web("example/web:v1", 3)).await;
    let p = Prometheus::start(h.metrics_addr.expect("metrics listener")).await;
    println!("prometheus ready in {:?}", p.started_in);
    assert!(
        p.wait_for_series(r#"http_requests_total{namespace="default"}"#, WAIT)
            .await,
        "prometheus never scraped kubesim:\n{}",
        p.log()
    );
    (h, p)
}

fn gate_env(h: &Handle, p: &Prometheus, tag: &str, query: &str, bake: &str) -> Env {
    support::env(
        h,
        &[
            ("ROLLGUARD_TAG", tag),
            ("ROLLGUARD_BAKE", bake),
            ("ROLLGUARD_PROMETHEUS_URL", &p.url()),
            ("ROLLGUARD_ANALYSIS_QUERY", query),
            ("ROLLGUARD_ANALYSIS_CONDITION", "< 0.05"),
            ("ROLLGUARD_ANALYSIS_INTERVAL", "2s"),
        ],
    )
}

/// The images of the live pods of `web`.
fn pod_images(h: &Handle) -> Vec<String> {
    live_pods(h)
        .iter()
        .filter_map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// The template is v1 again and, once the old pods are back, only v1 serves.
async fn assert_rolled_back(h: &Handle) {
    assert_eq!(support::image(h), "example/web:v1");
    assert!(
        h.wait_for(WAIT, |h| support::healthy(h)
            && pod_images(h).iter().all(|i| i == "example/web:v1"))
            .await,
        "old pods not back: {:?}",
        pod_images(h)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_build_passes_the_gate_and_every_sink_shows_the_evaluations() {
    let (h, p) = setup(25.0).await;
    let files = tempfile::tempdir().unwrap();
    let summary = files.path().join("summary.md");
    let json = files.path().join("report.json");
    let mut env = gate_env(&h, &p, "v2", ERROR_RATIO, "8s");
    env.insert("GITHUB_ACTIONS".into(), "true".into());
    env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
    env.insert("ROLLGUARD_REPORT_FILE".into(), json.display().to_string());
    let (outcome, out) = rollguard(&env).await;
    assert_eq!(outcome.exit_code, 0, "{out}");
    assert_eq!(support::image(&h), "example/web:v2");
    let a = outcome
        .report
        .analysis
        .as_ref()
        .expect("gate in the report");
    let passes = support::assert_gate_passed(a, r#"app_kubernetes_io_version="v2",code=~"5..""#);
    // Console: a line per evaluation while baking, and the summary.
    assert!(out.contains("metric gate at "), "{out}");
    assert!(out.contains("metric gate: passed"), "{out}");
    // Markdown summary: the table.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| time | value | result |"), "{md}");
    assert_eq!(md.matches("✅ pass").count(), passes, "{md}");
    // JSON report: the evaluations as data.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        report["analysis"]["evaluations"].as_array().map(Vec::len),
        Some(a.evaluations.len())
    );
    assert_eq!(report["analysis"]["condition"], "< 0.05");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_build_fails_on_the_gate_and_is_rolled_back() {
    let (h, p) = setup(25.0).await;
    // The step summary and a Slack webhook (a local receiver) as sinks too.
    let slack = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let files = tempfile::tempdir().unwrap();
    let summary = files.path().join("summary.md");
    let mut env = gate_env(&h, &p, "v2-errors", ERROR_RATIO, "20s");
    env.insert("GITHUB_ACTIONS".into(), "true".into());
    env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
    env.insert(
        "ROLLGUARD_SLACK_WEBHOOK".into(),
        format!("{}/hook", slack.uri()),
    );
    let (outcome, out) = rollguard(&env).await;
    assert_eq!(outcome.exit_code, 1, "{out}");
    assert_rolled_back(&h).await;
    let md = std::fs::read_to_string(&summary).unwrap();
    println!("{md}");
    assert!(md.contains("metric gate failed"), "{md}");
    assert!(md.contains("| ❌ fail |"), "{md}");
    assert!(md.contains("```promql\n"), "{md}");
    let posted = slack.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&posted.last().expect("slack posted").body).to_string();
    assert!(
        body.contains("Metric gate") && body.contains("fail"),
        "{body}"
    );
    let r = &outcome.report;
    let f = &r.findings[0];
    assert_eq!(f.cause, Cause::MetricGate, "{f:?}");
    // The diagnosis: the query as sent, the value, the condition, the time.
    let sent = r#"app_kubernetes_io_version="v2-errors",code=~"5..""#;
    support::assert_evidence(f, sent);
    let failure = r
        .analysis
        .as_ref()
        .and_then(|a| a.failure.as_ref())
        .unwrap();
    let v = failure.value.expect("a failing value");
    assert!((0.1..0.3).contains(&v), "error ratio {v}");
    assert!(f.summary.contains("is not < 0.05"), "{}", f.summary);
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("condition < 0.05") && e.contains(&failure.time)),
        "{f:?}"
    );
    // Caught within a few evaluations, long before the 20 s bake was over.
    assert!(r.analysis.as_ref().unwrap().evaluations.len() <= 6);
    assert!(out.contains("metric gate failed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_waits_then_fails_at_the_end_of_the_bake() {
    let (h, p) = setup(25.0).await;
    // No pod has this label value: the vector is empty at every evaluation.
    let nothing = r#"sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}-absent"}[5s]))"#;
    let (outcome, out) = rollguard(&gate_env(&h, &p, "v2", nothing, "5s")).await;
    assert_eq!(outcome.exit_code, 1, "{out}");
    assert_rolled_back(&h).await;
    let a = outcome.report.analysis.as_ref().unwrap();
    assert!(a.evaluations.len() >= 2, "{a:?}");
    assert!(a.evaluations.iter().all(|e| e.outcome == Eval::NoData));
    let f = &outcome.report.findings[0];
    assert_eq!(f.cause, Cause::MetricGate);
    assert!(f.summary.contains("no data"), "{}", f.summary);
    assert!(out.contains("inconclusive, waiting"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gate_inputs_exit_2_with_the_cluster_untouched() {
    let h = support::Fixture::with_config(kubesim::Config {
        speed: 25.0,
        tls: true,
        ..Default::default()
    })
    .start()
    .await;
    support::create_ready(&h, support::web("example/web:v1", 2)).await;
    let generation = support::get(&h)["metadata"]["generation"].clone();
    let url = ("ROLLGUARD_PROMETHEUS_URL", "http://127.0.0.1:9");
    let query = ("ROLLGUARD_ANALYSIS_QUERY", "sum(up)");
    let cond = ("ROLLGUARD_ANALYSIS_CONDITION", "< 1");
    let bake = ("ROLLGUARD_BAKE", "10s");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![query, cond, bake], "prometheus-url"),
        (vec![url, cond, bake], "analysis-query"),
        (vec![url, query, bake], "analysis-condition"),
        (
            vec![
                url,
                query,
                bake,
                ("ROLLGUARD_ANALYSIS_CONDITION", "below 1"),
            ],
            "analysis-condition",
        ),
        (vec![url, query, cond], "bake"),
        (
            vec![
                url,
                cond,
                bake,
                ("ROLLGUARD_ANALYSIS_QUERY", "up{v=\"{{ versoin }}\"}"),
            ],
            "analysis-query",
        ),
        (
            vec![
                url,
                query,
                cond,
                bake,
                ("ROLLGUARD_ANALYSIS_INTERVAL", "soon"),
            ],
            "analysis-interval",
        ),
        (
            vec![
                url,
                query,
                cond,
                bake,
                ("ROLLGUARD_ANALYSIS_FAILURE_LIMIT", "0"),
            ],
            "analysis-failure-limit",
        ),
    ];
    for (pairs, named) in cases {
        let mut pairs = pairs;
        pairs.push(("ROLLGUARD_TAG", "v2"));
        let (outcome, out) = rollguard(&support::env(&h, &pairs)).await;
        assert_eq!(outcome.exit_code, 2, "{pairs:?}: {out}");
        let line = out
            .lines()
            .find(|l| l.contains("invalid input"))
            .unwrap_or_default();
        assert!(line.contains(named), "{pairs:?} should name {named}: {out}");
    }
    assert_eq!(support::image(&h), "example/web:v1");
    assert_eq!(support::get(&h)["metadata"]["generation"], generation);
}

/// The credentials never show: a bearer token the (basic-auth) Prometheus
/// refuses fails the gate with the HTTP status only; the right basic-auth
/// password passes. Checked on the binary's stdout and stderr, the JSON
/// report and the step summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_any_output() {
    let h = metrics_cluster(25.0).await;
    support::create_ready(&h, support::web("example/web:v1", 2)).await;
    let password = "pr0m-pass-5ecret-9f3c";
    let token = "pr0m-t0ken-5ecret-77ab";
    let p = Prometheus::start_with(h.metrics_addr.unwrap(), Some(("rollguard", password))).await;
    assert!(
        p.wait_for_series("up == 1", WAIT).await,
        "no scrape:\n{}",
        p.log()
    );
    for (tag, creds, code) in [
        ("v2", vec![("ROLLGUARD_PROMETHEUS_TOKEN", token)], 1),
        (
            "v3",
            vec![
                ("ROLLGUARD_PROMETHEUS_USERNAME", "rollguard"),
                ("ROLLGUARD_PROMETHEUS_PASSWORD", password),
            ],
            0,
        ),
    ] {
        let files = tempfile::tempdir().unwrap();
        let summary = files.path().join("summary.md");
        let json = files.path().join("report.json");
        let mut env = gate_env(&h, &p, tag, ERROR_RATIO, "5s");
        env.insert("ROLLGUARD_ANALYSIS_INTERVAL".into(), "1s".into());
        env.insert("GITHUB_ACTIONS".into(), "true".into());
        env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
        env.insert("ROLLGUARD_REPORT_FILE".into(), json.display().to_string());
        for (k, v) in &creds {
            env.insert(k.to_string(), v.to_string());
        }
        let child = support::spawn(&env);
        let output = child.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!("{stdout}\n{stderr}");
        assert_eq!(output.status.code(), Some(code), "{tag}");
        // GitHub's `::add-mask::` line is the one place a secret may be named.
        let mask = format!("::add-mask::{}\n", creds[creds.len() - 1].1);
        assert!(stdout.contains(&mask), "{stdout}");
        let unmasked: String = stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n");
        let written = [
            unmasked,
            stderr.to_string(),
            std::fs::read_to_string(&json).unwrap(),
            std::fs::read_to_string(&summary).unwrap(),
        ];
        for text in &written {
            assert!(!text.contains(token) && !text.contains(password), "{text}");
        }
        if code == 1 {
            assert!(stdout.contains("HTTP 401"), "{stdout}");
            assert_rolled_back(&h).await;
        } else {
            assert_eq!(support::image(&h), "example/web:v3");
        }
    }
}

/// At kubesim's real speed, as timing-dependent verdicts must also be
/// shown: the errors build is caught during a short bake and rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_build_is_caught_at_real_speed() {
    let (h, p) = setup(1.0).await;
    let mut env = gate_env(&h, &p, "v2-errors", ERROR_RATIO, "12s");
    env.insert("ROLLGUARD_STABLE_FOR".into(), "1s".into());
    let (outcome, out) = rollguard(&env).await;
    assert_eq!(outcome.exit_code, 1, "{out}");
    assert_eq!(outcome.report.findings[0].cause, Cause::MetricGate);
    let v = outcome
        .report
        .analysis
        .as_ref()
        .and_then(|a| a.failure.as_ref())
        .and_then(|f| f.value)
        .expect("a failing value");
    assert!((0.1..0.3).contains(&v), "error ratio {v}");
    assert_rolled_back(&h).await;
}

/// StatefulSets bake in their own loop: the gate runs there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_errors_build_fails_on_the_gate_and_is_rolled_back() {
    let h = metrics_cluster(25.0).await;
    h.create(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"replicas": 2, "serviceName": "db",
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "db", "image": "example/db:1"}]}}}
    }))
    .unwrap();
    let images = |h: &Handle| -> Vec<String> {
        h.list("v1", "Pod", "default")
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .filter_map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    };
    let all_at = |h: &Handle, image: &str| {
        let i = images(h);
        i.len() == 2 && i.iter().all(|x| x == image)
    };
    assert!(h.wait_for(WAIT, |h| all_at(h, "example/db:1")).await);
    let p = Prometheus::start(h.metrics_addr.unwrap()).await;
    assert!(p.wait_for_series("up == 1", WAIT).await, "{}", p.log());
    let mut env = gate_env(&h, &p, "2-errors", ERROR_RATIO, "20s");
    env.insert("ROLLGUARD_WORKLOAD".into(), "statefulset/db".into());
    env.insert("ROLLGUARD_CAPACITY_CHECK".into(), "off".into());
    let (outcome, out) = rollguard(&env).await;
    assert_eq!(outcome.exit_code, 1, "{out}");
    let w = &outcome.report.workloads[0];
    assert_eq!(w.findings[0].cause, Cause::MetricGate, "{out}");
    assert!(w.analysis.as_ref().is_some_and(|a| a.failure.is_some()));
    let sts = h.get("apps/v1", "StatefulSet", "default", "db").unwrap();
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/db:1"
    );
    assert!(
        h.wait_for(WAIT, |h| all_at(h, "example/db:1")).await,
        "old pods not back: {:?}",
        images(&h)
    );
}

/// The gate's counting and retry rules, without a cluster.
#[path = "analysis/gate_rules.rs"]
mod gate_rules;
