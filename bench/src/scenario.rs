//! The benchmark's scenarios: the same Deployment(s), the same kubesim
//! configuration and the same new image for every tool.

use serde_json::{Value, json};

use crate::observe::Decide;

pub const REPO: &str = "example/web";
pub const OLD_TAG: &str = "v1";

#[derive(Debug, Clone)]
pub struct Scenario {
    pub key: &'static str,
    pub title: &'static str,
    pub deployments: usize,
    pub replicas: i64,
    pub new_tag: &'static str,
    pub nodes: usize,
    pub node_cpu: &'static str,
    pub cpu_request: Option<&'static str>,
    /// The rollout should succeed (else: fail and be rolled back).
    pub succeeds: bool,
    pub decide: Decide,
    /// Part of `--smoke`.
    pub smoke: bool,
    /// What decides, in words (for the report).
    pub decided_by: &'static str,
}

impl Scenario {
    pub fn names(&self) -> Vec<String> {
        if self.deployments == 1 {
            vec!["web".into()]
        } else {
            (0..self.deployments)
                .map(|i| format!("web-{i:03}"))
                .collect()
        }
    }

    pub fn old_image(&self) -> String {
        format!("{REPO}:{OLD_TAG}")
    }

    pub fn new_image(&self) -> String {
        format!("{REPO}:{}", self.new_tag)
    }

    /// The Deployment as created directly (rollguard, kubectl). The Helm
    /// chart renders the same spec.
    pub fn deployment(&self, name: &str) -> Value {
        let mut c = json!({"name": "web", "image": self.old_image()});
        if let Some(cpu) = self.cpu_request {
            c["resources"] = json!({"requests": {"cpu": cpu}});
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": {"name": format!("{name}-pods")}},
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"name": format!("{name}-pods")}},
                "template": {
                    "metadata": {"labels": {"name": format!("{name}-pods")}},
                    "spec": {"containers": [c]}
                }
            }
        })
    }
}

pub fn all() -> Vec<Scenario> {
    let base = Scenario {
        key: "good-3",
        title: "good rollout, 3 replicas",
        deployments: 1,
        replicas: 3,
        new_tag: "v2",
        nodes: 3,
        node_cpu: "2",
        cpu_request: None,
        succeeds: true,
        decide: Decide::Complete,
        smoke: true,
        decided_by: "Deployment complete",
    };
    vec![
        base.clone(),
        Scenario {
            key: "good-100",
            title: "good rollout, 100 replicas",
            replicas: 100,
            smoke: false,
            ..base.clone()
        },
        Scenario {
            key: "missing",
            title: "missing tag",
            new_tag: "missing",
            succeeds: false,
            decide: Decide::PullFailed,
            decided_by: "first `Failed` (ErrImagePull) event",
            ..base.clone()
        },
        Scenario {
            key: "crash",
            title: "crash loop",
            new_tag: "crash",
            succeeds: false,
            decide: Decide::Restarts(2),
            smoke: false,
            decided_by: "restartCount reaches 2",
            ..base.clone()
        },
        Scenario {
            key: "oom",
            title: "OOM kill",
            new_tag: "oom",
            succeeds: false,
            decide: Decide::Restarts(2),
            smoke: false,
            decided_by: "restartCount reaches 2",
            ..base.clone()
        },
        Scenario {
            key: "unschedulable",
            title: "unschedulable (Insufficient cpu)",
            replicas: 2,
            nodes: 2,
            node_cpu: "2",
            cpu_request: Some("1200m"),
            succeeds: false,
            decide: Decide::FailedScheduling,
            smoke: false,
            decided_by: "first `FailedScheduling` event",
            ..base.clone()
        },
        Scenario {
            key: "slow",
            title: "slow but good (Ready after 20 s)",
            new_tag: "slow",
            smoke: false,
            ..base.clone()
        },
        Scenario {
            key: "many",
            title: "100 Deployments × 1 replica",
            deployments: 100,
            replicas: 1,
            smoke: false,
            decided_by: "last Deployment complete",
            ..base
        },
    ]
}

/// The Helm chart: `count` Deployments with the spec of [`Scenario::deployment`].
pub fn write_chart(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("templates"))?;
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1\"\n",
    )?;
    std::fs::write(
        dir.join("values.yaml"),
        "image: example/web:v1\nreplicas: 3\ncount: 1\ncpu: \"\"\n",
    )?;
    std::fs::write(
        dir.join("templates/deployment.yaml"),
        r#"{{- range $i, $e := until (int .Values.count) }}
{{- $name := ternary "web" (printf "web-%03d" $i) (eq (int $.Values.count) 1) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: default
  labels:
    name: {{ $name }}-pods
spec:
  replicas: {{ $.Values.replicas }}
  selector:
    matchLabels:
      name: {{ $name }}-pods
  template:
    metadata:
      labels:
        name: {{ $name }}-pods
    spec:
      containers:
        - name: web
          image: {{ $.Values.image }}
          {{- with $.Values.cpu }}
          resources:
            requests:
              cpu: {{ . }}
          {{- end }}
{{- end }}
"#,
    )
}
