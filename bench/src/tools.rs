//! How each tool is run on a scenario, as a CI job would run it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proc::{self, ProcOut};
use crate::scenario::Scenario;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    Rollguard,
    Kubectl,
    Helm,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Rollguard => "rollguard",
            Tool::Kubectl => "kubectl",
            Tool::Helm => "helm",
        }
    }

    pub fn parse(s: &str) -> Option<Tool> {
        match s {
            "rollguard" => Some(Tool::Rollguard),
            "kubectl" => Some(Tool::Kubectl),
            "helm" => Some(Tool::Helm),
            _ => None,
        }
    }
}

/// Paths and the cluster-time scaling shared by every run.
#[derive(Debug, Clone)]
pub struct Setup {
    pub rollguard: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    /// The default time factor (a scenario may have its own).
    pub speed: f64,
    /// `--server-side` for helm (`auto`, `true` or `false`).
    pub helm_server_side: String,
    pub images: crate::scenario::Images,
    /// Run against this cluster instead of an in-process kubesim.
    pub external: Option<crate::cluster::External>,
}

/// One run's view of a scenario: its time factor, namespace and images.
#[derive(Debug, Clone)]
pub struct RunCtx {
    pub speed: f64,
    pub namespace: String,
    pub old_image: String,
    pub new_image: String,
    /// The Prometheus of a metric-gate scenario.
    pub prometheus_url: Option<String>,
}

impl RunCtx {
    /// A tool-side duration that stands for `sim_secs` of cluster time.
    pub fn scaled(&self, sim_secs: f64) -> String {
        format!("{}ms", ((sim_secs / self.speed) * 1000.0).round() as u64)
    }
}

/// What one tool did on one scenario run.
#[derive(Debug)]
pub struct ToolRun {
    pub procs: Vec<ProcOut>,
    /// When the tool said what happened (its verdict line, else its exit).
    pub verdict: Instant,
    /// The tool said the rollout failed.
    pub reported_failure: bool,
    /// Every process the tool ran for the rollout exited 0 (in the end).
    pub all_ok: bool,
}

impl ToolRun {
    /// A tool that did the rollout in one process, whose exit status says
    /// whether it failed; its verdict at `verdict`.
    fn single(p: ProcOut, verdict: Instant) -> Self {
        ToolRun {
            verdict,
            reported_failure: !p.ok(),
            all_ok: p.ok(),
            procs: vec![p],
        }
    }
}

/// Per-run paths: a fresh HOME (no discovery or Helm cache from a previous
/// run), the kubeconfig, the chart.
pub struct RunDirs<'a> {
    pub home: &'a Path,
    pub kubeconfig: &'a Path,
    pub chart: &'a Path,
}

const LIMIT: Duration = Duration::from_secs(240);

fn base(program: &Path, dirs: &RunDirs) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dirs.home)
        .env("KUBECONFIG", dirs.kubeconfig)
        .env("NO_COLOR", "1");
    c
}

/// `helm uninstall` of the release (clean-up on an external cluster).
pub fn helm_uninstall(setup: &Setup, rc: &RunCtx, dirs: &RunDirs) -> Command {
    let mut c = base(&setup.helm, dirs);
    c.args(["uninstall", "web", "--wait", "--namespace", &rc.namespace]);
    c
}

/// `helm upgrade --install` of the chart with `image`.
pub fn helm_cmd(
    setup: &Setup,
    scn: &Scenario,
    rc: &RunCtx,
    dirs: &RunDirs,
    image: &str,
    measured: bool,
) -> Command {
    let mut c = base(&setup.helm, dirs);
    c.args(["upgrade", "--install", "web"])
        .arg(dirs.chart)
        .args(["--namespace", &rc.namespace])
        .arg(format!("--set=image={image}"))
        .arg(format!("--set=replicas={}", scn.replicas))
        .arg(format!("--set=count={}", scn.deployments))
        .arg(format!("--server-side={}", setup.helm_server_side));
    if let Some(cpu) = scn.cpu_request {
        c.arg(format!("--set=cpu={cpu}"));
    }
    if measured {
        // helm's default --timeout is 5m; in cluster time.
        c.args(["--wait", "--rollback-on-failure", "--timeout"])
            .arg(rc.scaled(300.0));
    } else {
        c.args(["--wait", "--timeout", "120s"]);
    }
    c
}

pub async fn run(
    setup: &Setup,
    tool: Tool,
    scn: &Scenario,
    rc: &RunCtx,
    dirs: &RunDirs<'_>,
) -> anyhow::Result<ToolRun> {
    match tool {
        Tool::Rollguard => rollguard(setup, scn, rc, dirs).await,
        Tool::Kubectl => kubectl(setup, scn, rc, dirs).await,
        Tool::Helm => helm(setup, scn, rc, dirs).await,
    }
}

/// rollguard's verdict line on a failure (`rollout of IMAGE failed: …`,
/// prefixed by the workload in a group).
fn verdict_line(l: &str) -> bool {
    (l.contains("rollout of ") || l.contains("canary of "))
        && (l.contains(" failed") || l.contains(" timed out"))
}

/// rollguard with its defaults, the cluster-time durations scaled, and the
/// pre-flight checks off (the peers have none; with them on, the missing tag
/// and the unschedulable surge are stopped before the patch). Every
/// Deployment of the scenario in one process (a workload group).
async fn rollguard(
    setup: &Setup,
    scn: &Scenario,
    rc: &RunCtx,
    dirs: &RunDirs<'_>,
) -> anyhow::Result<ToolRun> {
    let workloads: Vec<String> = scn
        .names()
        .iter()
        .map(|n| format!("deployment/{n}"))
        .collect();
    let mut c = base(&setup.rollguard, dirs);
    c.env("ROLLGUARD_KUBECONFIG", dirs.kubeconfig)
        .env("ROLLGUARD_NAMESPACE", &rc.namespace)
        .env("ROLLGUARD_WORKLOAD", workloads.join(","))
        .env("ROLLGUARD_IMAGE", &rc.new_image)
        .env("ROLLGUARD_TIMEOUT", rc.scaled(300.0))
        .env("ROLLGUARD_ROLLBACK_TIMEOUT", rc.scaled(300.0))
        .env("ROLLGUARD_UNSCHEDULABLE_GRACE", rc.scaled(30.0))
        .env("ROLLGUARD_STABLE_FOR", rc.scaled(20.0))
        .env("ROLLGUARD_SCALE_UP_GRACE", rc.scaled(600.0))
        .env("ROLLGUARD_VERIFY_IMAGE", "false")
        .env("ROLLGUARD_CAPACITY_CHECK", "off");
    if let Some(n) = scn.canary {
        c.env("ROLLGUARD_CANARY", n)
            .env("ROLLGUARD_CANARY_HOLD", rc.scaled(120.0));
    }
    if let Some(url) = &rc.prometheus_url {
        // Prometheus scrapes every real second: an evaluation every second
        // of real time, over a 5 s window.
        c.env("ROLLGUARD_PROMETHEUS_URL", url)
            .env("ROLLGUARD_ANALYSIS_QUERY", crate::scenario::GATE_QUERY)
            .env(
                "ROLLGUARD_ANALYSIS_CONDITION",
                crate::scenario::GATE_CONDITION,
            )
            .env("ROLLGUARD_ANALYSIS_INTERVAL", "1s");
    }
    let p = proc::run_async(c, LIMIT).await?;
    let line = p
        .stdout
        .iter()
        .find(|(_, l)| verdict_line(l))
        .map(|(t, _)| *t);
    let verdict = line.unwrap_or(p.exited);
    Ok(ToolRun::single(p, verdict))
}

/// `kubectl set image` + `kubectl rollout status` (no --timeout: it ends at
/// the progress deadline), and on failure `rollout undo` + `rollout status`.
async fn kubectl(
    setup: &Setup,
    scn: &Scenario,
    rc: &RunCtx,
    dirs: &RunDirs<'_>,
) -> anyhow::Result<ToolRun> {
    let mut procs = Vec::new();
    let mut verdict = None;
    let mut reported_failure = false;
    let mut all_ok = true;
    // `kubectl --namespace <the run's> <args>`, run to its end.
    let in_namespace = async |args: &[&str]| {
        let mut c = base(&setup.kubectl, dirs);
        c.args(["--namespace", &rc.namespace]).args(args);
        proc::run_async(c, LIMIT).await
    };
    let image = format!("web={}", rc.new_image);
    for name in scn.names() {
        let dep = format!("deployment/{name}");
        let p = in_namespace(&["set", "image", &dep, &image]).await?;
        if !p.ok() {
            anyhow::bail!("kubectl set image failed: {}", p.text());
        }
        procs.push(p);
        let p = in_namespace(&["rollout", "status", &dep]).await?;
        verdict = Some(p.exited);
        let failed = !p.ok();
        procs.push(p);
        if failed {
            reported_failure = true;
            for step in ["undo", "status"] {
                let p = in_namespace(&["rollout", step, &dep]).await?;
                all_ok &= p.ok();
                procs.push(p);
            }
        }
    }
    Ok(ToolRun {
        verdict: verdict.unwrap_or_else(Instant::now),
        procs,
        reported_failure,
        all_ok,
    })
}

/// One `helm upgrade --install --wait --rollback-on-failure` of the release
/// that holds every Deployment of the scenario.
async fn helm(
    setup: &Setup,
    scn: &Scenario,
    rc: &RunCtx,
    dirs: &RunDirs<'_>,
) -> anyhow::Result<ToolRun> {
    let c = helm_cmd(setup, scn, rc, dirs, &rc.new_image, true);
    let p = proc::run_async(c, LIMIT).await?;
    let verdict = p.exited;
    Ok(ToolRun::single(p, verdict))
}
