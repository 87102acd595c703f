//! kubesim: a simulated Kubernetes control plane for tests.
//!
//! It serves the real Kubernetes REST API over HTTP(S) on 127.0.0.1, with the
//! controllers (Deployment, ReplicaSet, garbage collection), a scheduler and
//! a kubelet for simulated nodes, on one simulated clock.
//!
//! This file is the wiring (start, the handle). Data flows one way: the
//! shared state (`sim`, `store`, `config`) sits below the API server and the
//! controllers, and the controllers write objects through `api::objects`
//! (never the other way round); `tests/all/layering.rs` keeps the module
//! graph free of cycles.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = kubesim::start(kubesim::Config::default()).await?;
//! sim.write_kubeconfig("/tmp/kubeconfig")?;
//! // ... run kubectl or a client against sim.base_url ...
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admission;
pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod controllers;
pub mod error;
pub mod faults;
pub mod fixtures;
pub mod inject;
pub mod metrics;
pub mod quantity;
pub mod resources;
pub mod scenario;
pub mod sim;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

pub use auth::Rule;
pub use clock::Clock;
pub use config::{AutoscalerConfig, Config};
pub use scenario::{ImageBehaviour, Scenarios};
pub use sim::{ContainerLogs, Sim};
pub use store::Store;

/// A running cluster. Dropping it without `shutdown` leaves the tasks to die
/// with the runtime.
pub struct Handle {
    /// `https://127.0.0.1:PORT` (or `http://` with `tls: false`).
    pub base_url: String,
    pub addr: SocketAddr,
    /// The CA certificate (PEM) that signed the serving certificate; None for HTTP.
    pub ca_pem: Option<String>,
    /// The cluster-admin bearer token.
    pub token: String,
    /// Where the pods' metrics are served (`Config::metrics_listen`).
    pub metrics_addr: Option<SocketAddr>,
    pub sim: Arc<Sim>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start a simulated cluster: bind, create nodes and namespaces, start the
/// controllers, serve. Ready when this returns.
pub async fn start(config: Config) -> anyhow::Result<Handle> {
    let clock = Arc::new(Clock::new(config.speed));
    let store = Store::new(clock.clone());
    let token = format!("kubesim-admin-{}", uuid::Uuid::new_v4().simple());
    let mut ids = auth::Identities::default();
    ids.by_token.insert(
        token.clone(),
        auth::Identity {
            user: "kubesim-admin".into(),
            rules: vec![Rule::admin()],
        },
    );
    let sim = Arc::new(Sim {
        store,
        clock,
        identities: RwLock::new(ids),
        scenarios: RwLock::new(config.scenarios.clone()),
        logs: Default::default(),
        kubelet: std::sync::Mutex::new(controllers::kubelet::state::KubeletState::new(
            config.startup_seed,
        )),
        event_cache: Default::default(),
        autoscaler: Default::default(),
        config: config.clone(),
        metrics: Default::default(),
        faults: Default::default(),
        listener: Default::default(),
    });
    seed_cluster(&sim)?;

    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let (tls_config, ca_pem) = if config.tls {
        let (server, ca) = tls::generate()?;
        (Some(server), Some(ca))
    } else {
        (None, None)
    };
    let scheme = if config.tls { "https" } else { "http" };
    let (tx, rx) = watch::channel(false);
    let mut tasks = controllers::spawn(sim.clone(), rx.clone());
    let metrics_addr = match config.metrics_listen {
        Some(bind) => {
            let l = tokio::net::TcpListener::bind(bind).await?;
            let bound = l.local_addr()?;
            tasks.push(tokio::spawn(metrics::serve(sim.clone(), l, rx.clone())));
            Some(bound)
        }
        None => None,
    };
    api::listener::install(&sim, listener, tls_config, rx)?;
    Ok(Handle {
        base_url: format!("{scheme}://{addr}"),
        addr,
        ca_pem,
        token,
        metrics_addr,
        sim,
        shutdown: tx,
        tasks,
    })
}

/// Nodes and the standard namespaces.
fn seed_cluster(sim: &Sim) -> anyhow::Result<()> {
    let ns = resources::res("namespaces");
    let mut names: Vec<String> = ["default", "kube-system", "kube-public", "kube-node-lease"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend(sim.config.namespaces.iter().cloned());
    for n in names {
        if sim.store.get(ns, "", &n).is_err() {
            sim.store.create(
                ns,
                "",
                json!({"metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
                       "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            )?;
        }
    }
    for i in 1..=sim.config.nodes {
        sim.store.create(
            resources::res("nodes"),
            "",
            controllers::node_object(sim, &format!("node-{i}")),
        )?;
    }
    Ok(())
}

/// kubectl's rollout-status rule on a stored Deployment: the controller
/// has seen the latest spec and every desired replica is updated, exists
/// and is available (what a client of the simulator waits on).
pub fn rollout_complete(d: &Value) -> bool {
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    n("/status/observedGeneration") >= n("/metadata/generation")
        && n("/status/updatedReplicas") == desired
        && n("/status/replicas") == desired
        && n("/status/availableReplicas") == desired
}

impl Handle {
    pub fn store(&self) -> &Arc<Store> {
        &self.sim.store
    }

    pub fn clock(&self) -> &Arc<Clock> {
        &self.sim.clock
    }

    /// A kubeconfig (YAML) for the admin identity, context `kubesim`.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_for(&self.token, "kubesim-admin")
    }

    /// A kubeconfig for any token (e.g. a restricted identity).
    pub fn kubeconfig_for(&self, token: &str, user: &str) -> String {
        use base64::Engine as _;
        let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let cluster = match &self.ca_pem {
            Some(ca) => format!(
                "    certificate-authority-data: {}\n    server: {}\n",
                encode(ca.as_bytes()),
                self.base_url
            ),
            None => format!("    server: {}\n", self.base_url),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n{cluster}  name: kubesim\ncontexts:\n- context:\n    cluster: kubesim\n    namespace: default\n    user: {user}\n  name: kubesim\ncurrent-context: kubesim\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    token: {token}\n"
        )
    }

    /// Write the admin kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Add an identity with its own token and RBAC rules.
    pub fn add_identity(&self, user: &str, token: &str, rules: Vec<Rule>) {
        self.sim
            .identities
            .write()
            .expect("identities lock")
            .by_token
            .insert(
                token.to_string(),
                auth::Identity {
                    user: user.to_string(),
                    rules,
                },
            );
    }

    /// Override what the kubelet does with one exact image reference.
    pub fn set_image_behaviour(&self, image: &str, b: ImageBehaviour) {
        self.sim
            .scenarios
            .write()
            .expect("scenarios lock")
            .overrides
            .insert(image.to_string(), b);
    }

    /// Make the app of one exact image reference write `message` to its
    /// terminationMessagePath when it exits with an error (by default an
    /// app writes nothing there).
    pub fn set_termination_message(&self, image: &str, message: &str) {
        self.sim
            .scenarios
            .write()
            .expect("scenarios lock")
            .termination_messages
            .insert(image.to_string(), message.to_string());
    }

    /// Declare a repository in the simulated registry with its existing tags.
    pub fn declare_registry(&self, repository: &str, tags: &[&str]) {
        self.sim
            .scenarios
            .write()
            .expect("scenarios lock")
            .registry
            .insert(
                repository.to_string(),
                tags.iter().map(|t| t.to_string()).collect(),
            );
    }

    /// Create an object directly in the store, with the API server's
    /// defaulting (as `kubectl create -f` would), bypassing HTTP.
    pub fn create(&self, obj: Value) -> anyhow::Result<Arc<Value>> {
        api::create_object(&self.sim, obj).map_err(|e| anyhow::anyhow!("{}", e.message))
    }

    /// Get an object from the store (`kind` as in `apiVersion`/`kind`).
    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let rt = resources::by_kind(group, kind)?;
        self.sim.store.get(rt, ns, name).ok()
    }

    /// List objects of a kind in a namespace.
    pub fn list(&self, api_version: &str, kind: &str, ns: &str) -> Vec<Arc<Value>> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        match resources::by_kind(group, kind) {
            Some(rt) => self.sim.store.list(rt, Some(ns)).0,
            None => Vec::new(),
        }
    }

    /// Wait (bounded) until `f` holds on the store, re-checking on every change.
    pub async fn wait_for<F>(&self, timeout: Duration, mut f: F) -> bool
    where
        F: FnMut(&Handle) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.sim.store.changed.notified();
            if f(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return f(self);
            }
        }
    }

    /// Fault injection: drop watches, fail requests, add latency, force
    /// conflicts, compact history, stop and restart the listener.
    pub fn faults(&self) -> inject::FaultHandle {
        inject::FaultHandle::new(self.sim.clone())
    }

    /// Requests, response bytes and watch events per User-Agent.
    pub fn metrics(&self) -> std::collections::BTreeMap<String, api::AgentStats> {
        self.sim.metrics.snapshot()
    }

    /// Requests by User-Agent, then by request shape
    /// (`WATCH /api/v1/namespaces/{ns}/pods?labelSelector`).
    pub fn requests(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
        self.sim.metrics.breakdown()
    }

    /// Stop serving and stop the controllers.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        api::listener::stop(&self.sim).await;
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}
