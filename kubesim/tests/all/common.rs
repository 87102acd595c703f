//! Helpers the suites share: real clients (kubectl, helm), an HTTPS client
//! trusting the cluster's CA, and Deployment and pod helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kubesim::Handle;
use serde_json::{Value, json};

/// A client for the cluster's API (HTTPS trusting `ca_pem`, or plain HTTP
/// when None); `h2` offers HTTP/2 by ALPN, else HTTP/1.1 only.
pub fn api_client(ca_pem: Option<&str>, h2: bool) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder();
    if let Some(pem) = ca_pem {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        if h2 {
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        b = b.tls_backend_preconfigured(cfg);
    }
    b.build().unwrap()
}

/// A cluster of the default configuration, on plain HTTP.
pub async fn plain_http_cluster() -> Handle {
    kubesim::start(kubesim::Config {
        tls: false,
        ..kubesim::Config::default()
    })
    .await
    .expect("start kubesim")
}

/// A cluster of `nodes` nodes on plain HTTP at 50× speed.
pub async fn fast_cluster(nodes: usize) -> Handle {
    kubesim::start(kubesim::Config {
        nodes,
        speed: 50.0,
        tls: false,
        ..kubesim::Config::default()
    })
    .await
    .expect("start kubesim")
}

/// A Deployment `name` of `replicas` pods running `image` in `default`.
pub fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "web", "image": image}]}},
        },
    })
}

/// Set the first container's image of Deployment `name` in the store.
pub fn set_image(h: &Handle, name: &str, image: &str) {
    set_image_of(h, "deployments.apps", name, image);
}

/// Set the first container's image in the pod template of the `resource`
/// object `name` in `default`, in the store.
pub fn set_image_of(h: &Handle, resource: &str, name: &str, image: &str) {
    h.store()
        .modify(kubesim::resources::res(resource), "default", name, |o| {
            o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            Ok(true)
        })
        .unwrap();
}

/// An object's resourceVersion.
pub fn resource_version(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion")
        .to_string()
}

/// kubectl's rollout-complete rule on one Deployment object.
pub fn rollout_complete(d: &Value) -> bool {
    let st = &d["status"];
    let n = |k: &str| st[k].as_i64().unwrap_or(0);
    st["observedGeneration"] == d["metadata"]["generation"]
        && n("updatedReplicas") == d["spec"]["replicas"].as_i64().unwrap()
        && n("replicas") == n("updatedReplicas")
        && n("availableReplicas") == n("updatedReplicas")
}

/// kubectl's rollout-complete rule on Deployment `name` in `default`.
pub fn rolled_out(h: &Handle, name: &str) -> bool {
    h.get("apps/v1", "Deployment", "default", name)
        .is_some_and(|d| rollout_complete(&d))
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Where `.ci/install-tools.sh` puts kubectl and helm.
pub fn tool(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".tools")
        .join("bin")
        .join(name);
    p.exists().then_some(p)
}

/// The output of one client command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.stdout.contains(needle) || self.stderr.contains(needle)
    }
}

/// A real client bound to one kubeconfig.
pub struct Client {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub home: tempfile::TempDir,
}

impl Client {
    pub fn new(bin: PathBuf, kubeconfig_yaml: &str) -> Self {
        let home = tempfile::tempdir().expect("tempdir");
        let kubeconfig = home.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml).expect("write kubeconfig");
        Self {
            bin,
            kubeconfig,
            home,
        }
    }

    /// Run the client (blocking) with a private HOME so its discovery cache is fresh.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = command(&self.bin, &self.kubeconfig, self.home.path(), args)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .output()
            .expect("run client");
        out_of(out)
    }

    /// Run off the async runtime so the in-process cluster keeps serving.
    pub async fn arun(&self, args: &[&str]) -> Out {
        let bin = self.bin.clone();
        let kubeconfig = self.kubeconfig.clone();
        let home = self.home.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = command(&bin, &kubeconfig, &home, &args)
                .output()
                .expect("run client");
            out_of(out)
        })
        .await
        .expect("join client")
    }

    /// `arun`, which must succeed and print `wanted` on stdout.
    pub async fn arun_expecting(&self, args: &[&str], wanted: &str) -> Out {
        let out = self.arun(args).await;
        out.ok();
        assert!(out.stdout.contains(wanted), "{out:?}");
        out
    }
}

fn command<S: AsRef<std::ffi::OsStr>>(
    bin: &Path,
    kubeconfig: &Path,
    home: &Path,
    args: &[S],
) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"));
    c
}

fn out_of(out: std::process::Output) -> Out {
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Skip (with a note) when the real client is not installed.
#[macro_export]
macro_rules! require_tool {
    ($name:expr) => {
        match $crate::common::tool($name) {
            Some(p) => p,
            None => {
                eprintln!("SKIP: {} not installed (run .ci/install-tools.sh)", $name);
                return;
            }
        }
    };
}
