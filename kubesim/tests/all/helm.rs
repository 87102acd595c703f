//! helm v4 as a second real client: install/upgrade with `--wait` (the
//! kstatus watcher) and server-side apply, and `--rollback-on-failure`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use kubesim::{Config, Handle};

const CHART_YAML: &str = "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.0\"\n";

const VALUES_YAML: &str = "image: example/web:1.0\nreplicas: 2\nprogressDeadlineSeconds: 600\n";

const DEPLOYMENT_YAML: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    app: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  progressDeadlineSeconds: {{ .Values.progressDeadlineSeconds }}
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
        ports:
        - containerPort: 8080
"#;

const SERVICE_YAML: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    app: {{ .Release.Name }}
  ports:
  - port: 80
    targetPort: 8080
"#;

struct Helm {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Helm {
    fn new(bin: PathBuf, h: &Handle) -> Self {
        let dir = tempfile::tempdir().unwrap();
        h.write_kubeconfig(dir.path().join("kubeconfig")).unwrap();
        let chart = dir.path().join("chart");
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        std::fs::write(chart.join("Chart.yaml"), CHART_YAML).unwrap();
        std::fs::write(chart.join("values.yaml"), VALUES_YAML).unwrap();
        std::fs::write(chart.join("templates/deployment.yaml"), DEPLOYMENT_YAML).unwrap();
        std::fs::write(chart.join("templates/service.yaml"), SERVICE_YAML).unwrap();
        Self { bin, dir }
    }

    fn chart(&self) -> String {
        self.dir.path().join("chart").display().to_string()
    }

    /// `helm upgrade --install web <chart>` in `default`, waiting up to 60s,
    /// with `extra` flags.
    async fn upgrade(&self, extra: &[&str]) -> common::Out {
        let chart = self.chart();
        let mut args = vec![
            "upgrade",
            "--install",
            "web",
            &chart,
            "--namespace",
            "default",
            "--wait",
            "--timeout",
            "60s",
        ];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    async fn run(&self, args: &[&str]) -> common::Out {
        let bin = self.bin.clone();
        let home: PathBuf = self.dir.path().to_path_buf();
        let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        full.push("--kubeconfig".into());
        full.push(home.join("kubeconfig").display().to_string());
        tokio::task::spawn_blocking(move || {
            let p = |s: &str| -> PathBuf { Path::new(&home).join(s) };
            let out = Command::new(&bin)
                .args(&full)
                .env("HOME", &home)
                .env("HELM_CACHE_HOME", p("helm-cache"))
                .env("HELM_CONFIG_HOME", p("helm-config"))
                .env("HELM_DATA_HOME", p("helm-data"))
                .env_remove("KUBECONFIG")
                .output()
                .expect("run helm");
            common::Out {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }
}

fn image_of(h: &Handle, name: &str) -> String {
    let d = h.get("apps/v1", "Deployment", "default", name).unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_and_rollback_on_failure() {
    let bin = require_tool!("helm");
    let h = kubesim::start(Config {
        speed: 10.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let helm = Helm::new(bin, &h);

    // 1. Install (server-side apply is helm v4's default) and wait.
    let out = helm.upgrade(&[]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    let d = h.get("apps/v1", "Deployment", "default", "web").unwrap();
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
    let mf = d["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        mf.iter()
            .any(|e| e["manager"] == "helm" && e["operation"] == "Apply"),
        "{mf:?}"
    );
    assert!(h.get("v1", "Service", "default", "web").is_some());
    let secrets = h.list("v1", "Secret", "default");
    assert!(
        secrets.iter().any(|s| s["type"] == "helm.sh/release.v1"
            && s["metadata"]["name"] == "sh.helm.release.v1.web.v1"),
        "{secrets:?}"
    );

    // 2. A good upgrade.
    let out = helm.upgrade(&["--set", "image=example/web:2.0"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(image_of(&h, "web"), "example/web:2.0");

    // 3. A bad upgrade (image missing) fails and rolls back to revision 2:
    // the Deployment exceeds its progress deadline (30 simulated seconds),
    // kstatus reports it Failed and helm stops waiting before the timeout.
    let started = std::time::Instant::now();
    let out = helm
        .upgrade(&[
            "--rollback-on-failure",
            "--set",
            "image=example/web:missing",
            "--set",
            "progressDeadlineSeconds=30",
        ])
        .await;
    assert_ne!(out.code, 0, "{out:#?}");
    assert!(
        out.contains("rolled back") || out.contains("rollback"),
        "{out:#?}"
    );
    assert_eq!(image_of(&h, "web"), "example/web:2.0");
    eprintln!("failed upgrade + rollback took {:?}", started.elapsed());

    let hist = helm
        .run(&["history", "web", "--namespace", "default", "-o", "json"])
        .await;
    assert_eq!(hist.code, 0, "{hist:#?}");
    let revs: serde_json::Value = serde_json::from_str(&hist.stdout).unwrap();
    let statuses: Vec<(i64, String)> = revs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (1, "superseded".to_string()),
            (2, "superseded".to_string()),
            (3, "failed".to_string()),
            (4, "deployed".to_string()),
        ],
        "{}",
        hist.stdout
    );

    let list = helm
        .run(&["list", "--namespace", "default", "-o", "json"])
        .await;
    assert_eq!(list.code, 0, "{list:#?}");
    let rel: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(rel[0]["name"], "web");
    assert_eq!(rel[0]["revision"], "4");
    assert_eq!(rel[0]["status"], "deployed");
    h.shutdown().await;
}

/// Server-side apply with kubectl: two field managers, a conflict with the
/// upstream message, `--force-conflicts`, and removal of a field the same
/// manager no longer applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_ownership() {
    let kubectl = require_tool!("kubectl");
    let h = kubesim::start(Config::default()).await.unwrap();
    let k = common::Client::new(kubectl, &h.kubeconfig_yaml());
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n    team: a\ndata:\n{data}"
            ),
        )
        .unwrap();
        p.display().to_string()
    };
    let a1 = write("a1.yaml", "  a: \"1\"\n  b: \"2\"\n");
    let b1 = write("b1.yaml", "  a: \"9\"\n");
    let a2 = write("a2.yaml", "  c: \"3\"\n");

    let out = k.arun(&server_side(&["--field-manager=team-a"], &a1)).await;
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout.contains("configmap/cfg serverside-applied"),
        "{out:#?}"
    );

    let out = k.arun(&server_side(&["--field-manager=team-b"], &b1)).await;
    assert_ne!(out.code, 0, "{out:#?}");
    assert!(
        out.stderr
            .contains("Apply failed with 1 conflict: conflict with \"team-a\" using v1: .data.a"),
        "{out:#?}"
    );

    let out = k
        .arun(&server_side(
            &["--field-manager=team-b", "--force-conflicts"],
            &b1,
        ))
        .await;
    assert_eq!(out.code, 0, "{out:#?}");
    let cm = h.get("v1", "ConfigMap", "default", "cfg").unwrap();
    assert_eq!(cm["data"], serde_json::json!({"a": "9", "b": "2"}));

    // team-a stops applying a and b, adds c: b goes, a stays (team-b owns it).
    let out = k.arun(&server_side(&["--field-manager=team-a"], &a2)).await;
    assert_eq!(out.code, 0, "{out:#?}");
    let cm = h.get("v1", "ConfigMap", "default", "cfg").unwrap();
    assert_eq!(cm["data"], serde_json::json!({"a": "9", "c": "3"}));
    assert_eq!(cm["metadata"]["labels"]["team"], "a");
    let mf = cm["metadata"]["managedFields"].as_array().unwrap();
    let of = |m: &str| {
        mf.iter()
            .find(|e| e["manager"] == m)
            .map(|e| e["fieldsV1"].clone())
            .unwrap()
    };
    assert_eq!(of("team-a")["f:data"], serde_json::json!({"f:c": {}}));
    assert_eq!(of("team-b")["f:data"], serde_json::json!({"f:a": {}}));
    assert!(
        mf.iter()
            .all(|e| e["operation"] == "Apply" && e["fieldsType"] == "FieldsV1")
    );
    h.shutdown().await;
}

/// `kubectl apply --server-side` with these flags, on `file`.
fn server_side<'a>(flags: &[&'a str], file: &'a str) -> Vec<&'a str> {
    let mut args = vec!["apply", "--server-side"];
    args.extend(flags);
    args.extend(["-f", file]);
    args
}
