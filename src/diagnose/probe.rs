//! Containers that run but never become ready: the readiness probe and
//! the last `Unhealthy` message.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Words, container_path};

fn port(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The probe in words: `httpGet /healthz on port 8080`.
pub fn describe(p: &Probe) -> String {
    if let Some(h) = &p.http_get {
        format!(
            "{}Get {} on port {}",
            h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase(),
            h.path.as_deref().unwrap_or("/"),
            port(&h.port)
        )
    } else if let Some(t) = &p.tcp_socket {
        format!("tcpSocket on port {}", port(&t.port))
    } else if let Some(e) = &p.exec {
        format!("exec `{}`", e.command.clone().unwrap_or_default().join(" "))
    } else if let Some(g) = &p.grpc {
        format!("grpc on port {}", g.port)
    } else {
        "probe".to_string()
    }
}

pub(crate) fn words(container: &str, evidence: &str, spec: Option<&Container>) -> Words {
    if container.is_empty() {
        return Words {
            summary: format!("a new pod runs but is not ready: {evidence}"),
            fix: "Check the pod's readiness gates and its containers' readiness probes (kubectl describe pod).".into(),
        };
    }
    let path = container_path(container);
    let probe = spec.and_then(|c| c.readiness_probe.as_ref());
    let what = probe.map(describe);
    let summary = match &what {
        Some(w) => format!(
            "container {container} runs but its readiness probe ({w}) keeps failing: {evidence}"
        ),
        None => format!("container {container} runs but never becomes ready: {evidence}"),
    };
    let fix = match &what {
        Some(w) => format!(
            "Make the new version answer its readiness probe ({w}), or fix {path}.readinessProbe (path, port; initialDelaySeconds/failureThreshold if it only starts slowly)."
        ),
        None => format!(
            "Check why {container} does not report ready (its readiness gates and {path}.readinessProbe)."
        ),
    };
    Words { summary, fix }
}
