//! Per-pod application metrics in the Prometheus text exposition format, so
//! a real Prometheus can scrape the simulated pods' traffic
//! (`Config::metrics_listen`, `kubesim --metrics-listen ADDR`, path `/metrics`).
//!
//! Every Running and Ready pod serves [`REQUESTS_PER_SECOND`] requests per
//! second of simulated time. A pod whose container image (its last path
//! component, as in the kubelet's vocabulary) contains `errors` answers
//! [`ERROR_RATIO_BAD`] of them with `code="500"`, any other pod
//! [`ERROR_RATIO_GOOD`]. One counter per pod and code:
//!
//! ```text
//! http_requests_total{namespace="default",pod="web-6dff8f7968-d2r8g",code="500",app="web",app_kubernetes_io_version="v2"} 12
//! ```
//!
//! The pod's own labels follow, with keys made Prometheus label names as
//! Kubernetes service discovery's `labelmap` makes them (every character
//! outside `[a-zA-Z0-9_]` becomes `_`), so `{{ version_label }}` queries work
//! unchanged against a real cluster scraped that way. A label whose name
//! would clash with `namespace`, `pod` or `code` is left out.
//!
//! Counters only grow while the pod is Ready (accumulated between scrapes on
//! the simulated clock, from the pod's Ready transition the first time) and
//! vanish with the pod, as a restarted target's series do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use http::Method;
use jiff::Timestamp;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::sim::Sim;

/// Requests per second of simulated time each Ready pod serves.
pub const REQUESTS_PER_SECOND: f64 = 10.0;
/// Share of 500 answers of a pod whose image contains `errors`.
pub const ERROR_RATIO_BAD: f64 = 0.2;
/// Share of 500 answers of any other pod.
pub const ERROR_RATIO_GOOD: f64 = 0.001;

/// Does this image serve errors (its `name:tag` contains `errors`)?
pub fn serves_errors(image: &str) -> bool {
    image.rsplit('/').next().unwrap_or(image).contains("errors")
}

/// A Kubernetes label key as a Prometheus label name (`labelmap`'s rule).
pub fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// One pod's counters, as accumulated so far.
#[derive(Debug, Clone, Default)]
struct Counters {
    ok: f64,
    errors: f64,
    /// Simulated time up to which the counters are accumulated.
    until: Option<Timestamp>,
}

/// The counters of every pod seen, by UID.
#[derive(Debug, Default)]
pub struct PodMetrics {
    pods: Mutex<BTreeMap<String, Counters>>,
}

fn is_serving(pod: &Value) -> bool {
    pod["status"]["phase"].as_str() == Some("Running")
        && crate::controllers::pods::is_ready(pod)
        && pod["metadata"]["deletionTimestamp"].is_null()
}

fn ready_since(pod: &Value) -> Option<Timestamp> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some("Ready"))?["lastTransitionTime"]
        .as_str()?
        .parse()
        .ok()
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl PodMetrics {
    /// The exposition for these pods at simulated time `now`: counters
    /// advance for the pods serving now; pods no longer listed are forgotten.
    pub fn render(&self, pods: &[Arc<Value>], now: Timestamp) -> String {
        let mut state = self.pods.lock().expect("pod metrics lock");
        let listed: BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str())
            .collect();
        state.retain(|uid, _| listed.contains(uid.as_str()));
        let mut out = String::from(
            "# HELP http_requests_total Requests served by the simulated pod, by status code.\n# TYPE http_requests_total counter\n",
        );
        for pod in pods.iter().filter(|p| is_serving(p)) {
            let Some(uid) = pod["metadata"]["uid"].as_str() else {
                continue;
            };
            let bad = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["image"].as_str())
                .any(serves_errors);
            let ratio = if bad {
                ERROR_RATIO_BAD
            } else {
                ERROR_RATIO_GOOD
            };
            let c = state.entry(uid.to_string()).or_default();
            let from = match (c.until, ready_since(pod)) {
                (Some(u), Some(r)) => u.max(r),
                (Some(u), None) => u,
                (None, r) => r.unwrap_or(now),
            };
            let secs = now.duration_since(from).as_secs_f64().max(0.0);
            c.ok += secs * REQUESTS_PER_SECOND * (1.0 - ratio);
            c.errors += secs * REQUESTS_PER_SECOND * ratio;
            c.until = Some(now.max(from));
            let mut labels = format!(
                "namespace=\"{}\",pod=\"{}\"",
                escape_value(pod["metadata"]["namespace"].as_str().unwrap_or_default()),
                escape_value(pod["metadata"]["name"].as_str().unwrap_or_default()),
            );
            let mut seen: BTreeSet<String> = ["namespace", "pod", "code"]
                .into_iter()
                .map(String::from)
                .collect();
            for (k, v) in pod["metadata"]["labels"].as_object().into_iter().flatten() {
                let name = label_name(k);
                if seen.insert(name.clone()) {
                    let _ = write!(
                        labels,
                        ",{name}=\"{}\"",
                        escape_value(v.as_str().unwrap_or_default())
                    );
                }
            }
            for (code, n) in [("200", c.ok), ("500", c.errors)] {
                let _ = writeln!(
                    out,
                    "http_requests_total{{{labels},code=\"{code}\"}} {}",
                    (n + 1e-9).floor()
                );
            }
        }
        out
    }
}

/// Serve `/metrics` on `listener` until `shutdown` turns true.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let metrics = Arc::new(PodMetrics::default());
    crate::api::http::serve_plain(listener, shutdown, "metrics", move |req| {
        let (sim, metrics) = (sim.clone(), metrics.clone());
        async move {
            if req.method() == Method::GET && req.uri().path() == "/metrics" {
                let (pods, _) = sim.store.list(crate::resources::res("pods"), None);
                let body = metrics.render(&pods, sim.clock.now());
                crate::api::http::full(200, "text/plain; version=0.0.4", body)
            } else {
                crate::api::http::full(404, "text/plain", "not found\n")
            }
        }
    })
    .await;
}

/// A Prometheus configuration that scrapes these metrics at `target` (a
/// `Handle::metrics_addr`) every second, keeping the pods' own labels.
pub fn prometheus_config(target: std::net::SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kubesim\n    honor_labels: true\n    static_configs:\n      - targets: ['{target}']\n"
    )
}

/// The Prometheus `bin` on the configuration file `config`, its data
/// under `dir`, serving 127.0.0.1:`port`, logging warnings only, no input.
pub fn prometheus_command(
    bin: &str,
    config: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(std::process::Stdio::null());
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn pod(uid: &str, image: &str, ready_at: Timestamp, ready: bool) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": format!("web-{uid}"), "namespace": "default", "uid": uid,
                         "labels": {"app": "web", "app.kubernetes.io/version": "v2", "pod": "clash"}},
            "spec": {"containers": [{"name": "web", "image": image}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" },
                 "lastTransitionTime": ready_at.to_string()}]}
        }))
    }

    /// (code → value) of one pod's series in an exposition.
    fn series(text: &str, pod: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| l.contains(&format!("pod=\"{pod}\"")))
            .map(|l| {
                let code = l.split("code=\"").nth(1).unwrap()[..3].to_string();
                let v = l.rsplit(' ').next().unwrap().parse().unwrap();
                (code, v)
            })
            .collect()
    }

    #[test]
    fn counts_ten_per_second_with_the_error_share_of_the_image() {
        let m = PodMetrics::default();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let pods = [
            pod("a", "example/web:v2", t0, true),
            pod("b", "example/web:v2-errors", t0, true),
        ];
        let text = m.render(&pods, t0 + Duration::from_secs(100));
        assert_eq!(series(&text, "web-a")["200"], 999.0);
        assert_eq!(series(&text, "web-a")["500"], 1.0);
        assert_eq!(series(&text, "web-b")["200"], 800.0);
        assert_eq!(series(&text, "web-b")["500"], 200.0);
        // Labels: the pod's own, as Prometheus label names; clashes left out.
        let line = text.lines().find(|l| l.contains("web-b")).unwrap();
        assert!(line.contains("app_kubernetes_io_version=\"v2\""), "{line}");
        assert!(line.contains("app=\"web\""), "{line}");
        assert_eq!(line.matches("pod=").count(), 1, "{line}");
    }

    #[test]
    fn counters_only_grow_while_ready_and_vanish_with_the_pod() {
        let m = PodMetrics::default();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s| t0 + Duration::from_secs(s);
        let first = series(
            &m.render(&[pod("a", "example/web:errors", t0, true)], at(10)),
            "web-a",
        );
        assert_eq!(first["200"] + first["500"], 100.0);
        // Unready: no series; the counter does not move meanwhile.
        let text = m.render(&[pod("a", "example/web:errors", at(15), false)], at(20));
        assert!(series(&text, "web-a").is_empty(), "{text}");
        // Ready again from 25 s: counts resume from there, never go down.
        let again = series(
            &m.render(&[pod("a", "example/web:errors", at(25), true)], at(30)),
            "web-a",
        );
        assert!(again["200"] >= first["200"] && again["500"] >= first["500"]);
        assert_eq!(again["200"] + again["500"], 150.0);
        // Gone from the store: forgotten (a new pod of the same name starts at 0).
        assert!(!m.render(&[], at(31)).contains("web-a"));
        let fresh = series(
            &m.render(&[pod("a", "example/web:errors", at(31), true)], at(32)),
            "web-a",
        );
        assert_eq!(fresh["200"] + fresh["500"], 10.0);
    }

    #[test]
    fn label_names_follow_labelmap() {
        assert_eq!(
            label_name("app.kubernetes.io/version"),
            "app_kubernetes_io_version"
        );
        assert_eq!(label_name("9lives"), "_9lives");
        assert!(serves_errors("registry:5000/org/web:v2-errors"));
        assert!(!serves_errors("errors.example.com/web:v2"));
    }
}
