//! Where a scenario runs: a fresh in-process kubesim per run, or any cluster
//! given by `--kubeconfig` (and `--namespace`). Both give the observer the
//! same stream of changes: kubesim's store subscriber in-process, a watch of
//! the cluster (`kubectl get -w` on Deployments, pods and events of the
//! namespace) otherwise. Request counters come from kubesim's metrics: the
//! in-process ones, or a kubesim binary's admin API (`--admin-url`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::observe::Seen;
use crate::scenario::Scenario;

/// An external cluster.
#[derive(Debug, Clone)]
pub struct External {
    pub kubeconfig: PathBuf,
    pub namespace: String,
    /// A kubesim binary's admin API (`http://127.0.0.1:PORT`), for request counts.
    pub admin_url: Option<String>,
}

/// Requests of one tool run.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub requests: u64,
    pub bytes: u64,
    pub watch_events: u64,
    pub agents: Vec<String>,
    /// Requests per shape (verb + path pattern), summed over the tool's User-Agents.
    pub breakdown: BTreeMap<String, u64>,
}

pub enum Cluster {
    Sim(kubesim::Handle),
    External {
        ext: External,
        kubectl: PathBuf,
        home: PathBuf,
        watchers: Vec<Child>,
    },
}

impl Cluster {
    /// A fresh kubesim for `scn`, or the external cluster; the kubeconfig
    /// the tools use is at `kubeconfig` either way.
    pub async fn start(
        scn: &Scenario,
        speed: f64,
        ext: Option<&External>,
        kubectl: &Path,
        home: &Path,
        kubeconfig: &Path,
    ) -> anyhow::Result<Cluster> {
        if let Some(ext) = ext {
            // The bench's own kubectl, under a User-Agent of its own.
            let link = home.join(BENCH_AGENT);
            let target = std::fs::canonicalize(kubectl)
                .map_err(|e| anyhow::anyhow!("{}: {e}", kubectl.display()))?;
            std::os::unix::fs::symlink(target, &link)?;
            let kubectl = link.as_path();
            std::fs::copy(&ext.kubeconfig, kubeconfig)
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", ext.kubeconfig.display()))?;
            return Ok(Cluster::External {
                ext: ext.clone(),
                kubectl: kubectl.to_path_buf(),
                home: home.to_path_buf(),
                watchers: Vec::new(),
            });
        }
        let mut cfg = kubesim::Config {
            nodes: scn.nodes,
            node_cpu: scn.node_cpu.into(),
            node_pods: scn.node_pods,
            speed,
            tls: true,
            metrics_listen: scn.gate.then(|| ([127, 0, 0, 1], 0).into()),
            ..Default::default()
        };
        if let Some(a) = scn.autoscaler {
            crate::autoscaler::apply(&mut cfg, a)?;
        }
        let h = kubesim::start(cfg).await?;
        h.write_kubeconfig(kubeconfig)?;
        Ok(Cluster::Sim(h))
    }

    pub fn namespace(&self) -> &str {
        match self {
            Cluster::Sim(_) => "default",
            Cluster::External { ext, .. } => &ext.namespace,
        }
    }

    pub fn sim(&self) -> Option<&kubesim::Handle> {
        match self {
            Cluster::Sim(h) => Some(h),
            Cluster::External { .. } => None,
        }
    }

    fn kubectl(&self, kubeconfig: &Path) -> Option<Command> {
        match self {
            Cluster::Sim(_) => None,
            Cluster::External {
                ext, kubectl, home, ..
            } => {
                let mut c = Command::new(kubectl);
                c.env("KUBECONFIG", kubeconfig)
                    .env("HOME", home)
                    .args(["--namespace", &ext.namespace]);
                Some(c)
            }
        }
    }

    /// Create the objects (the previous version of the scenario).
    pub async fn create(&self, kubeconfig: &Path, objects: Vec<Value>) -> anyhow::Result<()> {
        match self.kubectl(kubeconfig) {
            None => {
                let h = self.sim().expect("sim");
                for o in objects {
                    h.create(o)?;
                }
                Ok(())
            }
            Some(mut c) => {
                let list =
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
                // No client-side schema validation: the API server validates.
                c.args(["apply", "--validate=false", "-f", "-"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let out = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let mut child = c.spawn()?;
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(list.to_string().as_bytes())?;
                    Ok(child.wait_with_output()?)
                })
                .await??;
                if !out.status.success() {
                    anyhow::bail!(
                        "kubectl apply of the previous version failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Ok(())
            }
        }
    }

    /// Start observing: every change to Deployments, pods and events from
    /// now on (and, for a watch, the current objects first).
    pub async fn changes(
        &mut self,
        kubeconfig: &Path,
    ) -> anyhow::Result<(mpsc::UnboundedReceiver<Seen>, Arc<AtomicU64>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let lagged = Arc::new(AtomicU64::new(0));
        match self {
            Cluster::Sim(h) => {
                let mut sub = h.store().subscribe();
                let l = lagged.clone();
                tokio::spawn(async move {
                    loop {
                        match sub.recv().await {
                            Ok(c) => {
                                let seen = Seen {
                                    at: Instant::now(),
                                    kind: c.res.kind.to_string(),
                                    name: c.name,
                                    object: c.object,
                                    deleted: c.kind == kubesim::store::EventType::Deleted,
                                };
                                if tx.send(seen).is_err() {
                                    return;
                                }
                            }
                            Err(RecvError::Lagged(n)) => {
                                l.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(RecvError::Closed) => return,
                        }
                    }
                });
            }
            Cluster::External { .. } => {
                let mut children = Vec::new();
                for (resource, kind) in [
                    ("deployments", "Deployment"),
                    ("pods", "Pod"),
                    ("events", "Event"),
                ] {
                    let mut c = self.kubectl(kubeconfig).expect("external");
                    c.args([
                        "get",
                        resource,
                        "--watch",
                        "--output-watch-events",
                        "-o",
                        "json",
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null());
                    let mut child = c
                        .spawn()
                        .map_err(|e| anyhow::anyhow!("kubectl get {resource} --watch: {e}"))?;
                    let stdout = child.stdout.take().expect("stdout");
                    let tx = tx.clone();
                    std::thread::spawn(move || watch_reader(stdout, kind, tx));
                    children.push(child);
                }
                // No wait for the watches to be established: the set-up
                // (creating the previous version and waiting, through these
                // watches, until it is complete) happens after this, and a
                // watch that starts late lists what exists first.
                if let Cluster::External { watchers, .. } = self {
                    watchers.extend(children);
                }
            }
        }
        Ok((rx, lagged))
    }

    /// Zero the request counters (after the set-up).
    pub fn reset_counts(&self) -> anyhow::Result<()> {
        match self {
            Cluster::Sim(h) => {
                h.sim.metrics.reset();
                Ok(())
            }
            Cluster::External { ext, .. } => match &ext.admin_url {
                Some(u) => admin_request(u, "DELETE", "/metrics").map(|_| ()),
                None => Ok(()),
            },
        }
    }

    /// The tool's requests since [`Cluster::reset_counts`]; None when the
    /// cluster does not count them.
    pub fn counts(&self) -> anyhow::Result<Option<Counts>> {
        let (agents, breakdown): (Value, Value) = match self {
            Cluster::Sim(h) => (
                serde_json::to_value(h.sim.metrics.snapshot())?,
                serde_json::to_value(h.sim.metrics.breakdown())?,
            ),
            Cluster::External { ext, .. } => match &ext.admin_url {
                Some(u) => {
                    let v: Value = serde_json::from_str(&admin_request(u, "GET", "/metrics")?)?;
                    (v["byUserAgent"].clone(), v["byRequest"].clone())
                }
                None => return Ok(None),
            },
        };
        let mut c = Counts::default();
        for (agent, s) in agents.as_object().into_iter().flatten() {
            // The bench's own kubectl watches are not the tool's.
            if agent.starts_with(BENCH_AGENT) {
                continue;
            }
            c.agents.push(agent.clone());
            c.requests += s["requests"].as_u64().unwrap_or(0);
            c.bytes += s["responseBytes"].as_u64().unwrap_or(0);
            c.watch_events += s["watchEvents"].as_u64().unwrap_or(0);
        }
        for (agent, shapes) in breakdown.as_object().into_iter().flatten() {
            if agent.starts_with(BENCH_AGENT) {
                continue;
            }
            for (shape, n) in shapes.as_object().into_iter().flatten() {
                *c.breakdown.entry(shape.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
        Ok(Some(c))
    }

    /// Stop the simulator, or stop watching and delete what the run made
    /// (`helm_uninstall`: the release, when helm installed it).
    pub async fn teardown(
        self,
        kubeconfig: &Path,
        names: &[String],
        helm_uninstall: Option<Command>,
    ) -> anyhow::Result<()> {
        let delete = self.kubectl(kubeconfig);
        let kubectl_cmd = self.kubectl(kubeconfig);
        match self {
            Cluster::Sim(h) => {
                h.shutdown().await;
                Ok(())
            }
            Cluster::External { mut watchers, .. } => {
                for w in &mut watchers {
                    let _ = w.kill();
                    let _ = w.wait();
                }
                // helm's own uninstall first; if it cannot purge the release
                // (a cluster that rejects its DeleteOptions), its release
                // secrets go by label, so the next run installs afresh.
                let mut cmds: Vec<(Command, bool)> = Vec::new();
                if let Some(c) = helm_uninstall {
                    cmds.push((c, false));
                    if let Some(mut s) = self_kubectl(&kubectl_cmd) {
                        s.args([
                            "delete",
                            "secret",
                            "--ignore-not-found",
                            "-l",
                            "owner=helm,name=web",
                        ]);
                        cmds.push((s, true));
                    }
                }
                if let Some(mut c) = delete {
                    c.args(["delete", "deployment", "--ignore-not-found"])
                        .args(["--cascade=foreground", "--wait", "--timeout=300s"])
                        .args(names);
                    cmds.push((c, true));
                }
                for (mut c, must) in cmds {
                    c.stdin(Stdio::null());
                    let out = tokio::task::spawn_blocking(move || c.output()).await??;
                    if must && !out.status.success() {
                        anyhow::bail!(
                            "clean-up failed: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        );
                    }
                }
                Ok(())
            }
        }
    }
}

/// A second kubectl command like `c` (same program, environment and namespace).
fn self_kubectl(c: &Option<Command>) -> Option<Command> {
    let c = c.as_ref()?;
    let mut n = Command::new(c.get_program());
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            n.env(k, v);
        }
    }
    n.args(c.get_args());
    Some(n)
}

/// kubectl's User-Agent starts with the name it was run as: the bench runs
/// its own watches and set-up through a symlink of that name, so the
/// request counts leave them out.
pub const BENCH_AGENT: &str = "rollguard-bench-watch";

/// Parse a `kubectl get -w --output-watch-events -o json` stream.
fn watch_reader(stdout: impl Read, kind: &'static str, tx: mpsc::UnboundedSender<Seen>) {
    let stream = serde_json::Deserializer::from_reader(stdout).into_iter::<Value>();
    for v in stream {
        let Ok(mut v) = v else { return };
        let obj = v["object"].take();
        let deleted = v["type"] == "DELETED";
        let seen = Seen {
            at: Instant::now(),
            kind: obj["kind"].as_str().unwrap_or(kind).to_string(),
            name: obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
            object: Arc::new(obj),
            deleted,
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

/// A plain-HTTP request to kubesim's admin API; the body.
fn admin_request(base: &str, method: &str, path: &str) -> anyhow::Result<String> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--admin-url {base}: not http://HOST:PORT"))?
        .trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport)
        .map_err(|e| anyhow::anyhow!("--admin-url {base}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("--admin-url {base}: no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "--admin-url {base}{path}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_string())
}
