//! The benchmark's scenarios: the same Deployment(s), the same cluster
//! configuration and the same new image for every tool.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::autoscaler::Autoscale;
use crate::observe::Decide;
use crate::tools::Tool;

/// The repository of the default images: kubesim's kubelet reads the
/// behaviour from the tag (`crash`, `oom`, `late-crash`, `slow`, `missing`).
pub const REPO: &str = "example/web";
pub const OLD_TAG: &str = "v1";

#[derive(Debug, Clone)]
pub struct Scenario {
    pub key: &'static str,
    pub title: &'static str,
    pub deployments: usize,
    pub replicas: i64,
    /// The new tag of the default image; also the key an `--image` entry
    /// may use for every scenario of that behaviour (`crash=…`).
    pub new_tag: &'static str,
    pub nodes: usize,
    pub node_cpu: &'static str,
    pub node_pods: u32,
    pub cpu_request: Option<&'static str>,
    /// The rollout should succeed (else: fail and be rolled back).
    pub succeeds: bool,
    pub decide: Decide,
    /// Part of `--smoke`.
    pub smoke: bool,
    /// What decides, in words (for the report).
    pub decided_by: &'static str,
    /// This scenario's own time factor (real-speed rows), else `--speed`.
    pub speed: Option<f64>,
    /// kubesim's cluster-autoscaler simulation for this scenario.
    pub autoscaler: Option<Autoscale>,
    /// Only these tools (the others would just wait for their deadline).
    pub only: Option<&'static [Tool]>,
    /// Why the other tools are not run, for the report.
    pub only_why: &'static str,
    /// Run by default against an external cluster (`--kubeconfig`).
    pub external: bool,
    /// rollguard's `canary` input (the peers have no canary step).
    pub canary: Option<&'static str>,
    /// rollguard's metric gate ([`GATE_QUERY`]) against a real Prometheus
    /// scraping kubesim's pod metrics (src/prometheus.rs); the row is
    /// skipped without one.
    pub gate: bool,
}

/// The metric gate of the `gate` rows: the new version's share of 5xx
/// responses (the README's and the tests' query), which must stay below
/// [`GATE_CONDITION`]. kubesim serves 20 % 500s from an image whose tag
/// contains `errors`, 0.1 % otherwise.
pub const GATE_QUERY: &str = r#"sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}",code=~"5.."}[5s])) / sum(rate(http_requests_total{namespace="{{ namespace }}",{{ version_label }}="{{ version }}"}[5s]))"#;
pub const GATE_CONDITION: &str = "< 0.05";

/// The images of one run: the previous version and the new one, from the
/// defaults or `--image KEY=REF` / `--images FILE`.
#[derive(Debug, Clone, Default)]
pub struct Images {
    by_key: BTreeMap<String, String>,
}

impl Images {
    /// `KEY=REF` entries; KEY is `old`, a scenario key (`crash-1x`) or a
    /// behaviour tag (`crash`, covering `crash` and `crash-1x`).
    pub fn parse(entries: &[String], file: Option<&std::path::Path>) -> anyhow::Result<Images> {
        let mut lines: Vec<(String, String)> = Vec::new();
        if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("--images {}: {e}", f.display()))?;
            for (i, l) in text.lines().enumerate() {
                let l = l.trim();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                lines.push((format!("--images {}:{}", f.display(), i + 1), l.to_string()));
            }
        }
        lines.extend(entries.iter().map(|e| ("--image".to_string(), e.clone())));
        let mut by_key = BTreeMap::new();
        for (origin, l) in lines {
            let Some((k, v)) = l.split_once('=') else {
                anyhow::bail!("{origin}: {l:?} is not KEY=IMAGE");
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() || v.contains(char::is_whitespace) {
                anyhow::bail!("{origin}: {l:?} is not KEY=IMAGE");
            }
            by_key.insert(k.to_string(), v.to_string());
        }
        Ok(Images { by_key })
    }

    pub fn old(&self) -> String {
        self.by_key
            .get("old")
            .cloned()
            .unwrap_or_else(|| format!("{REPO}:{OLD_TAG}"))
    }

    pub fn new_for(&self, scn: &Scenario) -> String {
        self.by_key
            .get(scn.key)
            .or_else(|| self.by_key.get(scn.new_tag))
            .cloned()
            .unwrap_or_else(|| format!("{REPO}:{}", scn.new_tag))
    }

    /// Keys that name no scenario, tag or `old` (a typo would silently run
    /// the default image).
    pub fn unknown_keys(&self, all: &[Scenario]) -> Vec<String> {
        self.by_key
            .keys()
            .filter(|k| *k != "old" && !all.iter().any(|s| s.key == *k || s.new_tag == *k))
            .cloned()
            .collect()
    }
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

    /// The time factor of this scenario's cluster.
    pub fn speed(&self, default: f64) -> f64 {
        self.speed.unwrap_or(default)
    }

    pub fn runs_tool(&self, t: Tool) -> bool {
        self.only.is_none_or(|o| o.contains(&t))
    }

    /// The Deployment as created directly (rollguard, kubectl). The Helm
    /// chart renders the same spec.
    pub fn deployment(&self, name: &str, namespace: &str, image: &str) -> Value {
        let mut c = json!({"name": "web", "image": image});
        if let Some(cpu) = self.cpu_request {
            c["resources"] = json!({"requests": {"cpu": cpu}});
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {"name": format!("{name}-pods")}},
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

const ROLLGUARD_ONLY: &[Tool] = &[Tool::Rollguard];

/// The scale rows' time factor: at 30× the simulated cluster itself cannot
/// keep up with 1 000 pods or 100 Deployments on 2 cores, and every tool's
/// deadline (a scaled 5 minutes) would be spent waiting for it.
const SCALE_SPEED: f64 = 10.0;

pub fn all() -> Vec<Scenario> {
    let base = Scenario {
        key: "good-3",
        title: "good rollout, 3 replicas",
        deployments: 1,
        replicas: 3,
        new_tag: "v2",
        nodes: 3,
        node_cpu: "2",
        node_pods: 110,
        cpu_request: None,
        succeeds: true,
        decide: Decide::Complete,
        smoke: true,
        decided_by: "Deployment complete",
        speed: None,
        autoscaler: None,
        only: None,
        only_why: "",
        external: true,
        canary: None,
        gate: false,
    };
    let unschedulable = Scenario {
        key: "unschedulable",
        title: "unschedulable (Insufficient cpu)",
        replicas: 2,
        nodes: 2,
        node_cpu: "2",
        cpu_request: Some("1200m"),
        succeeds: false,
        decide: Decide::Event("FailedScheduling"),
        smoke: false,
        decided_by: "first `FailedScheduling` event",
        external: false,
        ..base.clone()
    };
    let real = |s: Scenario| Scenario {
        speed: Some(1.0),
        ..s
    };
    let crash = Scenario {
        key: "crash",
        title: "crash loop (exits 1 a second after start)",
        new_tag: "crash",
        succeeds: false,
        // rollguard fails a crash at the first exit inside its stability
        // window; the peers never decide on it.
        decide: Decide::FirstExit,
        smoke: false,
        decided_by: "first exit of a new container",
        external: false,
        ..base.clone()
    };
    let oom = Scenario {
        key: "oom",
        title: "OOM kill (a second after start)",
        new_tag: "oom",
        ..crash.clone()
    };
    vec![
        base.clone(),
        Scenario {
            key: "good-100",
            title: "good rollout, 100 replicas",
            replicas: 100,
            smoke: false,
            external: false,
            ..base.clone()
        },
        Scenario {
            key: "missing",
            title: "missing tag",
            new_tag: "missing",
            succeeds: false,
            decide: Decide::Event("Failed"),
            decided_by: "first `Failed` (ErrImagePull) event",
            ..base.clone()
        },
        crash.clone(),
        oom.clone(),
        // Pods up, traffic failing: only a metric gate sees it.
        Scenario {
            key: "canary-errors",
            title: "errors-serving build (Ready, 20 % of responses 500), 4 replicas, rollguard with `canary: 1` and the metric gate",
            replicas: 4,
            new_tag: "v2-errors",
            canary: Some("1"),
            gate: true,
            smoke: true,
            decide: Decide::FirstReady,
            decided_by: "first new pod Ready (serving errors from then on)",
            ..crash.clone()
        },
        unschedulable.clone(),
        Scenario {
            key: "slow",
            title: "slow but good (Ready after 20 s)",
            new_tag: "slow",
            smoke: false,
            ..base.clone()
        },
        // Real speed: the order of cluster events a real cluster has.
        real(Scenario {
            key: "crash-1x",
            external: true,
            title: "crash after Ready (exits 1 a second after start), 1×",
            decide: Decide::FirstExit,
            decided_by: "first exit of a new container",
            ..crash.clone()
        }),
        real(Scenario {
            key: "oom-1x",
            external: true,
            title: "OOM kill after Ready (a second after start), 1×",
            decide: Decide::FirstExit,
            decided_by: "first exit of a new container",
            ..oom.clone()
        }),
        real(Scenario {
            key: "late-crash-1x",
            external: true,
            title: "late crash (exits 1 ten seconds after start), 1×",
            new_tag: "late-crash",
            decide: Decide::FirstExit,
            decided_by: "first exit of a new container",
            ..crash.clone()
        }),
        real(Scenario {
            key: "canary-late-crash-1x",
            external: false,
            title: "late crash (exits 1 ten seconds after start), 4 replicas, rollguard with `canary: 1`, 1×",
            replicas: 4,
            new_tag: "late-crash",
            canary: Some("1"),
            decide: Decide::FirstExit,
            decided_by: "first exit of a new container",
            ..crash.clone()
        }),
        real(Scenario {
            key: "unschedulable-1x",
            external: true,
            title: "unschedulable, no autoscaler, 1×",
            only: Some(ROLLGUARD_ONLY),
            only_why: "kubectl waits for the progress deadline (600 s) and helm for its timeout (300 s) on this story, as the 30× row shows",
            ..unschedulable.clone()
        }),
        real(Scenario {
            key: "unschedulable-autoscaler-1x",
            title: "unschedulable, autoscaler adds a node (10 s), 1×",
            succeeds: true,
            decide: Decide::Complete,
            decided_by: "Deployment complete (on the added node)",
            autoscaler: Some(Autoscale {
                max_nodes: 3,
                scale_up_delay: Duration::from_secs(10),
            }),
            external: false,
            ..unschedulable.clone()
        }),
        real(Scenario {
            key: "unschedulable-autoscaler-max-1x",
            title: "unschedulable, autoscaler at its max node count, 1×",
            decide: Decide::Event("NotTriggerScaleUp"),
            decided_by: "first `NotTriggerScaleUp` event",
            autoscaler: Some(Autoscale {
                max_nodes: 2,
                scale_up_delay: Duration::from_secs(10),
            }),
            only: Some(ROLLGUARD_ONLY),
            only_why: "kubectl and helm do not read the autoscaler: they wait for their deadline (600 s / 300 s)",
            external: false,
            ..unschedulable
        }),
        // Scale.
        Scenario {
            key: "good-1",
            title: "good rollout, 1 replica (one member of the group below, alone)",
            replicas: 1,
            smoke: false,
            speed: Some(SCALE_SPEED),
            external: false,
            ..base.clone()
        },
        Scenario {
            key: "many",
            title: "100 Deployments × 1 replica",
            deployments: 100,
            replicas: 1,
            smoke: false,
            speed: Some(SCALE_SPEED),
            decided_by: "last Deployment complete",
            external: false,
            ..base.clone()
        },
        Scenario {
            key: "good-1000",
            title: "good rollout, 1 000 replicas",
            replicas: 1000,
            nodes: 4,
            node_pods: 400,
            smoke: false,
            speed: Some(SCALE_SPEED),
            external: false,
            ..base.clone()
        },
        Scenario {
            key: "missing-1000",
            title: "missing tag, 1 000 replicas",
            replicas: 1000,
            nodes: 4,
            node_pods: 400,
            new_tag: "missing",
            succeeds: false,
            decide: Decide::Event("Failed"),
            decided_by: "first `Failed` (ErrImagePull) event",
            smoke: false,
            speed: Some(SCALE_SPEED),
            external: false,
            ..base.clone()
        },
        Scenario {
            key: "crash-1000",
            title: "crash loop, 1 000 replicas",
            replicas: 1000,
            nodes: 4,
            node_pods: 400,
            speed: Some(SCALE_SPEED),
            ..crash
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
  namespace: {{ $.Release.Namespace }}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scn(key: &str) -> Scenario {
        all().into_iter().find(|s| s.key == key).expect(key)
    }

    #[test]
    fn images_by_scenario_then_behaviour_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("images.txt");
        std::fs::write(
            &f,
            "# registry images\nold=reg.example/web:v1\ncrash=reg.example/crash:1\n\n",
        )
        .unwrap();
        let im = Images::parse(&["crash-1x=reg.example/crash:real".into()], Some(&f)).unwrap();
        assert_eq!(im.old(), "reg.example/web:v1");
        assert_eq!(im.new_for(&scn("crash-1x")), "reg.example/crash:real");
        assert_eq!(im.new_for(&scn("crash")), "reg.example/crash:1");
        assert_eq!(im.new_for(&scn("good-3")), "example/web:v2");
        assert!(im.unknown_keys(&all()).is_empty());
    }

    #[test]
    fn bad_image_entries_name_where_they_come_from() {
        let e = Images::parse(&["crash".into()], None).unwrap_err();
        assert_eq!(e.to_string(), "--image: \"crash\" is not KEY=IMAGE");
        let im = Images::parse(&["carsh=x:1".into()], None).unwrap();
        assert_eq!(im.unknown_keys(&all()), vec!["carsh".to_string()]);
    }

    #[test]
    fn external_defaults_are_the_real_speed_stories() {
        let keys: Vec<&str> = all().iter().filter(|s| s.external).map(|s| s.key).collect();
        assert_eq!(
            keys,
            [
                "good-3",
                "missing",
                "slow",
                "crash-1x",
                "oom-1x",
                "late-crash-1x",
                "unschedulable-1x"
            ]
        );
    }
}
