//! `bench`: rollguard against `kubectl set image` + `kubectl rollout status`
//! and `helm upgrade --install --wait --rollback-on-failure`, on the same
//! scenarios: each run on a fresh in-process kubesim (TLS on, one time
//! factor for every tool), or on any cluster (`--kubeconfig`). Writes
//! BENCHMARKS.md.
//!
//! (Over 500 lines: the command line, one run of a scenario per tool with
//! its measurements, and the smoke run's checks, in one place.)
//!
//! ```sh
//! cargo build --release --bin rollguard
//! cargo run -p rollguard-bench --release -- --runs 3 --out BENCHMARKS.md
//! cargo run -p rollguard-bench -- --smoke      # CI: the small scenarios, a request-count ceiling
//! cargo run -p rollguard-bench --release -- --kubeconfig ~/.kube/config --namespace bench \
//!     --images images.txt                      # any cluster, images from a registry
//! ```

mod autoscaler;
mod cluster;
mod observe;
mod proc;
mod prometheus;
mod report;
mod scenario;
mod tools;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use cluster::{Cluster, External};
use observe::{FirstRequest, Marks, Observer};
use scenario::{Images, Scenario};
use tools::{RunCtx, RunDirs, Setup, Tool};

/// The most API requests a good rollout of one 3-replica Deployment may
/// cost rollguard; `--smoke` fails above it, so a regression fails CI.
pub const GOOD_ROLLOUT_REQUEST_CEILING: u64 = 12;
/// The most API requests a failed rollout (the missing tag: diagnosis and
/// confirmed rollback included) may cost rollguard; `--smoke` fails above it.
pub const FAILED_ROLLOUT_REQUEST_CEILING: u64 = 18;

/// Benchmarks rollguard against kubectl and Helm on the same scenarios.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Args {
    /// Runs per scenario and tool (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the Markdown report here (it is printed to stdout too).
    #[arg(long)]
    out: Option<PathBuf>,
    /// One run of the small scenarios (good-3, missing) with rollguard and
    /// kubectl; fails if rollguard's good rollout costs more than
    /// GOOD_ROLLOUT_REQUEST_CEILING requests, the failed one more than
    /// FAILED_ROLLOUT_REQUEST_CEILING, or a verdict is wrong.
    #[arg(long)]
    smoke: bool,
    /// The cluster's time factor (simulated seconds per real second), the
    /// same for every tool; real-speed scenarios (`*-1x`) keep 1. Against
    /// `--kubeconfig`: the cluster's own factor (1 for a real cluster).
    #[arg(long)]
    speed: Option<f64>,
    /// Run against this cluster instead of an in-process kubesim. The
    /// bench creates its Deployments (`web`, `web-NNN`) in `--namespace`
    /// and deletes them after each run.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The namespace for `--kubeconfig` (it must exist).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// With `--kubeconfig` pointing at a kubesim binary: its admin API
    /// (`http://127.0.0.1:PORT`, `kubesim --admin-addr`), for request counts.
    #[arg(long)]
    admin_url: Option<String>,
    /// An image for a scenario: `KEY=IMAGE`, KEY `old` (the previous
    /// version), a scenario key (`crash-1x`) or a behaviour (`crash`, `oom`,
    /// `late-crash`, `slow`, `missing`, `v2` for the good ones). Repeatable.
    #[arg(long = "image")]
    image: Vec<String>,
    /// A file of `KEY=IMAGE` lines (as `--image`; `#` comments).
    #[arg(long)]
    images: Option<PathBuf>,
    /// The rollguard binary [default: target/release/rollguard].
    #[arg(long, env = "ROLLGUARD_BENCH_BIN")]
    rollguard: Option<PathBuf>,
    /// The kubectl binary.
    #[arg(long = "kubectl", default_value = ".tools/bin/kubectl")]
    kubectl_bin: PathBuf,
    /// The helm binary.
    #[arg(long = "helm", default_value = ".tools/bin/helm")]
    helm_bin: PathBuf,
    /// helm's --server-side (auto, true, false).
    #[arg(long, default_value = "auto")]
    helm_server_side: String,
    /// Only these scenarios (comma-separated keys; `--list` shows them).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Only these tools (rollguard, kubectl, helm).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

/// The measurements of one tool on one scenario run. Durations in ms.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub correct: bool,
    pub note: String,
    /// Deciding change → the tool's verdict.
    pub verdict_ms: Option<f64>,
    /// Deciding change → the Deployment's template back on the old image.
    pub rollback_ms: Option<f64>,
    /// Tool start → every Deployment complete (success) or the old version
    /// complete again (failure).
    pub done_ms: Option<f64>,
    /// None when the cluster does not count requests.
    pub requests: Option<u64>,
    pub bytes: Option<u64>,
    pub watch_events: Option<u64>,
    pub breakdown: BTreeMap<String, u64>,
    pub rss_kib: u64,
    pub cpu_ms: f64,
    pub startup_ms: Option<f64>,
    pub wall_ms: f64,
    /// The slowest Deployment's patch → complete, in this run.
    pub slowest_rollout_ms: Option<f64>,
    pub processes: usize,
    pub agents: Vec<String>,
    pub lagged: u64,
    /// The last output lines of the tool's last process (shown for wrong verdicts).
    pub tail: String,
}

fn ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64() * 1e3
    } else {
        -((earlier - later).as_secs_f64() * 1e3)
    }
}

async fn run_once(setup: &Setup, scn: &Scenario, tool: Tool) -> anyhow::Result<Sample> {
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("home");
    let bench_home = tmp.path().join("bench-home");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&bench_home)?;
    let kubeconfig = tmp.path().join("kubeconfig");
    let chart = tmp.path().join("chart");
    scenario::write_chart(&chart)?;
    let dirs = RunDirs {
        home: &home,
        kubeconfig: &kubeconfig,
        chart: &chart,
    };
    let speed = match &setup.external {
        Some(_) => setup.speed,
        None => scn.speed(setup.speed),
    };
    let mut cluster = Cluster::start(
        scn,
        speed,
        setup.external.as_ref(),
        &setup.kubectl,
        &bench_home,
        &kubeconfig,
    )
    .await?;
    // The metric gate's Prometheus, scraping this cluster's pod metrics.
    let prom = match (scn.gate, cluster.sim()) {
        (false, _) => None,
        (true, Some(h)) => {
            let target = h
                .metrics_addr
                .ok_or_else(|| anyhow::anyhow!("kubesim serves no pod metrics"))?;
            Some(prometheus::Prometheus::start(target).await?)
        }
        (true, None) => anyhow::bail!(
            "{}: the metric gate needs the in-process kubesim's pod metrics",
            scn.key
        ),
    };
    let rc = RunCtx {
        speed,
        namespace: cluster.namespace().to_string(),
        old_image: setup.images.old(),
        new_image: setup.images.new_for(scn),
        prometheus_url: prom.as_ref().map(prometheus::Prometheus::url),
    };
    let names = scn.names();
    let (changes, lagged) = cluster.changes(&kubeconfig).await?;
    let obs = Observer::start(
        changes,
        lagged,
        &names,
        &rc.old_image,
        &rc.new_image,
        scn.decide,
    );
    let result = measure(setup, scn, tool, &rc, &dirs, &cluster, &obs).await;
    let marks = obs.stop();
    let helm_uninstall = (tool == Tool::Helm && setup.external.is_some())
        .then(|| tools::helm_uninstall(setup, &rc, &dirs));
    let cleanup = cluster.teardown(&kubeconfig, &names, helm_uninstall).await;
    let (run, first_request, counts) = result?;
    cleanup?;
    Ok(sample(scn, run, first_request, counts, &marks))
}

type Measured = (tools::ToolRun, Option<Instant>, Option<cluster::Counts>);

async fn measure(
    setup: &Setup,
    scn: &Scenario,
    tool: Tool,
    rc: &RunCtx,
    dirs: &RunDirs<'_>,
    cluster: &Cluster,
    obs: &Observer,
) -> anyhow::Result<Measured> {
    let names = scn.names();
    // The previous version, installed and healthy (not measured).
    if tool == Tool::Helm {
        let c = tools::helm_cmd(setup, scn, rc, dirs, &rc.old_image, false);
        let p = proc::run_async(c, Duration::from_secs(600)).await?;
        if !p.ok() {
            anyhow::bail!("helm install of the previous version failed:\n{}", p.text());
        }
    } else {
        let objects = names
            .iter()
            .map(|n| scn.deployment(n, &rc.namespace, &rc.old_image))
            .collect();
        cluster.create(dirs.kubeconfig, objects).await?;
    }
    let setup_limit = Duration::from_secs(if scn.replicas >= 1000 { 600 } else { 180 });
    if !obs
        .wait_for(setup_limit, |m| m.old_complete.iter().all(|c| *c))
        .await
    {
        anyhow::bail!("set-up: the previous version never became ready");
    }
    obs.rearm();
    cluster.reset_counts()?;
    let first = cluster.sim().map(|h| FirstRequest::start(h.sim.clone()));
    let run = tools::run(setup, tool, scn, rc, dirs).await?;
    // The end state: all new complete, or the old version complete again.
    // (Not waited for when the tool's verdict rules it out: a tool that
    // reported success on a bad image will not roll back.)
    let end_limit = Duration::from_secs(if rc.speed < 2.0 { 300 } else { 60 });
    if scn.succeeds && !run.reported_failure {
        obs.wait_for(end_limit, |m| Marks::all(&m.completed).is_some())
            .await;
    } else if !scn.succeeds && run.reported_failure {
        // A failed canary never patched the stable Deployment: its end is
        // the canary's deletion.
        obs.wait_for(end_limit, |m| {
            Marks::all(&m.healthy_again).is_some() || canary_held(scn, m)
        })
        .await;
    }
    let first_request = first.and_then(FirstRequest::stop);
    let counts = cluster.counts()?;
    Ok((run, first_request, counts))
}

/// A canary that failed: the stable Deployment was never patched, the
/// canary was deleted, and no more pods of the new version were live than
/// the canary's count (when it is a count, not a percentage).
fn canary_held(scn: &Scenario, marks: &Marks) -> bool {
    scn.canary.is_some()
        && scn
            .canary
            .and_then(|c| c.parse::<usize>().ok())
            .is_none_or(|n| marks.peak_new_pods <= n * scn.deployments)
        && marks.patched.iter().all(Option::is_none)
        && Marks::all(&marks.canary_removed).is_some()
}

fn sample(
    scn: &Scenario,
    run: tools::ToolRun,
    first_request: Option<Instant>,
    counts: Option<cluster::Counts>,
    marks: &Marks,
) -> Sample {
    let start = run
        .procs
        .first()
        .map(|p| p.spawned)
        .unwrap_or_else(Instant::now);
    let last_exit = run.procs.iter().map(|p| p.exited).max().unwrap_or(start);
    let mut note = String::new();
    let correct = if scn.succeeds {
        let ok = run.all_ok && Marks::all(&marks.completed).is_some();
        if !ok {
            note = if run.reported_failure {
                "failed a good rollout".into()
            } else {
                "did not complete".into()
            };
        }
        ok
    } else {
        // A canary that failed: the stable Deployment was never patched,
        // the canary was deleted.
        let ok = run.reported_failure
            && (Marks::all(&marks.healthy_again).is_some() || canary_held(scn, marks));
        if !ok {
            note = if !run.reported_failure {
                "reported success".into()
            } else {
                "previous version not restored".into()
            };
        }
        ok
    };
    if run.procs.iter().any(|p| p.killed) {
        note.push_str(" (killed by the bench's time limit)");
    }
    if scn.canary.is_some() {
        let exposed = format!(
            "new version on at most {} of {} pods",
            marks.peak_new_pods,
            scn.replicas * scn.deployments as i64
        );
        note = if note.is_empty() {
            exposed
        } else {
            format!("{note}; {exposed}")
        };
    }
    let decided = marks.decided;
    let done = if scn.succeeds {
        Marks::all(&marks.completed)
    } else {
        Marks::all(&marks.healthy_again).or_else(|| Marks::all(&marks.canary_removed))
    };
    let counts = counts.as_ref();
    let tail = run
        .procs
        .last()
        .map(|p| {
            let lines: Vec<&str> = p
                .stdout
                .iter()
                .chain(p.stderr.iter())
                .map(|(_, l)| l.as_str())
                .collect();
            lines[lines.len().saturating_sub(12)..].join("\n    ")
        })
        .unwrap_or_default();
    Sample {
        tail,
        correct,
        note,
        verdict_ms: decided.map(|d| ms(run.verdict, d)),
        rollback_ms: match (
            decided,
            Marks::first(&marks.rolled_back).or_else(|| Marks::first(&marks.canary_removed)),
        ) {
            (Some(d), Some(r)) if !scn.succeeds => Some(ms(r, d)),
            _ => None,
        },
        done_ms: done.map(|d| ms(d, start)),
        requests: counts.map(|c| c.requests),
        bytes: counts.map(|c| c.bytes),
        watch_events: counts.map(|c| c.watch_events),
        breakdown: counts.map(|c| c.breakdown.clone()).unwrap_or_default(),
        rss_kib: run.procs.iter().map(|p| p.maxrss_kib).max().unwrap_or(0),
        cpu_ms: run.procs.iter().map(|p| p.cpu.as_secs_f64() * 1e3).sum(),
        startup_ms: first_request.map(|f| ms(f, start)),
        wall_ms: ms(last_exit, start),
        slowest_rollout_ms: marks.slowest_rollout().map(|d| d.as_secs_f64() * 1e3),
        processes: run.procs.len(),
        agents: counts.map(|c| c.agents.clone()).unwrap_or_default(),
        lagged: marks.lagged,
    }
}

fn default_rollguard() -> PathBuf {
    PathBuf::from("target/release/rollguard")
}

/// The scenarios of this invocation.
fn select(args: &Args, all: Vec<Scenario>) -> anyhow::Result<Vec<Scenario>> {
    for k in &args.scenarios {
        if !all.iter().any(|s| s.key == k) {
            anyhow::bail!(
                "--scenarios: no scenario {k:?} (known: {})",
                all.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(all
        .into_iter()
        .filter(|s| {
            if !args.scenarios.is_empty() {
                args.scenarios.iter().any(|k| k == s.key)
            } else if args.smoke {
                s.smoke
            } else if args.kubeconfig.is_some() {
                s.external
            } else {
                true
            }
        })
        .collect())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.list {
        for s in scenario::all() {
            println!(
                "{:<32} {}{}",
                s.key,
                s.title,
                if s.external {
                    " (default with --kubeconfig)"
                } else {
                    ""
                }
            );
        }
        return Ok(());
    }
    if args.smoke {
        args.runs = 1;
        if args.tools.is_empty() {
            args.tools = vec!["rollguard".into(), "kubectl".into()];
        }
    }
    let rollguard = args.rollguard.clone().unwrap_or_else(default_rollguard);
    if !rollguard.is_file() {
        anyhow::bail!(
            "{} not found: build it first (cargo build --release --bin rollguard) or pass --rollguard PATH",
            rollguard.display()
        );
    }
    let tools: Vec<Tool> = if args.tools.is_empty() {
        vec![Tool::Rollguard, Tool::Kubectl, Tool::Helm]
    } else {
        args.tools
            .iter()
            .map(|t| Tool::parse(t).ok_or_else(|| anyhow::anyhow!("--tools: unknown tool {t:?}")))
            .collect::<anyhow::Result<_>>()?
    };
    let external = args.kubeconfig.as_ref().map(|k| External {
        kubeconfig: k.clone(),
        namespace: args.namespace.clone(),
        admin_url: args.admin_url.clone(),
    });
    // The bench's own watches on an external cluster run kubectl.
    for (t, p) in [
        (Tool::Kubectl, &args.kubectl_bin),
        (Tool::Helm, &args.helm_bin),
    ] {
        let needed = tools.contains(&t) || (t == Tool::Kubectl && external.is_some());
        if needed && !p.is_file() {
            anyhow::bail!(
                "{} not found: run bash .ci/install-tools.sh or pass --{}",
                p.display(),
                t.name()
            );
        }
    }
    let all = scenario::all();
    let images = Images::parse(&args.image, args.images.as_deref())?;
    let unknown = images.unknown_keys(&all);
    if !unknown.is_empty() {
        anyhow::bail!(
            "--image: no scenario or behaviour named {}",
            unknown.join(", ")
        );
    }
    let scenarios = select(&args, all)?;
    if scenarios.is_empty() {
        anyhow::bail!("no scenario matches {:?}", args.scenarios);
    }
    let default_speed = args
        .speed
        .unwrap_or(if external.is_some() { 1.0 } else { 30.0 });
    if default_speed.is_nan() || default_speed <= 0.0 {
        anyhow::bail!("--speed {default_speed}: must be above 0");
    }
    let setup = Setup {
        rollguard: rollguard.clone(),
        kubectl: args.kubectl_bin.clone(),
        helm: args.helm_bin.clone(),
        speed: default_speed,
        helm_server_side: args.helm_server_side.clone(),
        images,
        external,
    };

    let started = Instant::now();
    let mut results = report::Results::default();
    let mut crashed = Vec::new();
    let mut skipped = Vec::new();
    for scn in &scenarios {
        if scn.autoscaler.is_some() && setup.external.is_none() && !autoscaler::AVAILABLE {
            eprintln!("{:>13} skipped: {}", scn.key, autoscaler::MISSING);
            skipped.push((scn.key, autoscaler::MISSING.to_string()));
            continue;
        }
        if scn.gate && !prometheus::available() {
            eprintln!("{:>13} skipped: {}", scn.key, prometheus::MISSING);
            skipped.push((scn.key, prometheus::MISSING.to_string()));
            continue;
        }
        for &tool in tools.iter().filter(|t| scn.runs_tool(**t)) {
            for run in 1..=args.runs {
                let t0 = Instant::now();
                match run_once(&setup, scn, tool).await {
                    Ok(s) => {
                        eprintln!(
                            "{:>13} {:>9} run {run}: {} in {:.1}s{}{}",
                            scn.key,
                            tool.name(),
                            if s.correct { "correct" } else { "WRONG" },
                            t0.elapsed().as_secs_f64(),
                            s.requests
                                .map(|r| format!(", {r} requests"))
                                .unwrap_or_default(),
                            if s.note.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", s.note.trim())
                            }
                        );
                        if !s.correct {
                            eprintln!("    {}", s.tail);
                        }
                        results.push(scn.key, tool, s);
                    }
                    Err(e) => {
                        eprintln!("{:>13} {:>9} run {run}: ERROR {e:#}", scn.key, tool.name());
                        crashed.push(format!("{} {} run {run}: {e:#}", scn.key, tool.name()));
                    }
                }
            }
        }
    }
    let meta = report::Meta::collect(&setup, &args_summary(&args), args.runs, started.elapsed());
    let md = report::render(&meta, &scenarios, &tools, &results, &crashed, &skipped);
    println!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md)?;
        eprintln!("wrote {}", out.display());
    }
    if !crashed.is_empty() {
        anyhow::bail!("{} run(s) could not be measured", crashed.len());
    }
    if args.smoke {
        smoke_checks(&results)?;
    }
    Ok(())
}

/// What `--smoke` fails on: rollguard's verdicts, and the request counts of
/// its good and failed rollouts against [`GOOD_ROLLOUT_REQUEST_CEILING`] and
/// [`FAILED_ROLLOUT_REQUEST_CEILING`] (counts, not timings: they do not
/// depend on the machine's load).
fn smoke_checks(results: &report::Results) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for (key, samples) in results.of(Tool::Rollguard) {
        for s in samples.iter().filter(|s| !s.correct) {
            failures.push(format!("rollguard got {key} wrong: {}", s.note.trim()));
        }
    }
    let ceilings = [
        (
            "good-3",
            "good rollout",
            "GOOD_ROLLOUT_REQUEST_CEILING",
            GOOD_ROLLOUT_REQUEST_CEILING,
        ),
        (
            "missing",
            "failed rollout",
            "FAILED_ROLLOUT_REQUEST_CEILING",
            FAILED_ROLLOUT_REQUEST_CEILING,
        ),
    ];
    for (key, what, name, ceiling) in ceilings {
        let Some(samples) = results.get(key, Tool::Rollguard) else {
            failures.push(format!("{key} was not run with rollguard"));
            continue;
        };
        for s in samples {
            match s.requests {
                Some(n) if n > ceiling => failures.push(format!(
                    "rollguard's {what} ({key}) cost {n} API requests, over the ceiling of {ceiling} (bench/src/main.rs {name}); per request: {}",
                    report::breakdown_line(&s.breakdown)
                )),
                Some(n) => {
                    eprintln!("smoke: rollguard's {what} cost {n} API requests (ceiling {ceiling})")
                }
                None => failures.push(format!("{key}: no request count")),
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("smoke failed:\n  {}", failures.join("\n  "))
    }
}

fn args_summary(a: &Args) -> String {
    let mut s = String::from("cargo run -p rollguard-bench --release --");
    if a.smoke {
        s.push_str(" --smoke");
    } else {
        s.push_str(&format!(" --runs {}", a.runs));
    }
    if let Some(sp) = a.speed {
        s.push_str(&format!(" --speed {sp}"));
    }
    if a.kubeconfig.is_some() {
        s.push_str(&format!(
            " --kubeconfig KUBECONFIG --namespace {}",
            a.namespace
        ));
    }
    if a.helm_server_side != "auto" {
        s.push_str(&format!(" --helm-server-side {}", a.helm_server_side));
    }
    if !a.scenarios.is_empty() {
        s.push_str(&format!(" --scenarios {}", a.scenarios.join(",")));
    }
    if !a.tools.is_empty() && !a.smoke {
        s.push_str(&format!(" --tools {}", a.tools.join(",")));
    }
    if let Some(o) = &a.out {
        s.push_str(&format!(" --out {}", o.display()));
    }
    s
}
