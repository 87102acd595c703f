//! `bench`: rollguard against `kubectl set image` + `kubectl rollout status`
//! and `helm upgrade --install --wait --rollback-on-failure`, on the same
//! scenarios, each run on a fresh in-process kubesim (TLS on, one speed
//! factor for every tool). Writes BENCHMARKS.md.
//!
//! ```sh
//! cargo build --release --bin rollguard
//! cargo run -p rollguard-bench --release -- --runs 3 --out BENCHMARKS.md
//! cargo run -p rollguard-bench -- --smoke      # CI: one run of the small scenarios
//! ```

mod observe;
mod proc;
mod report;
mod scenario;
mod tools;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use observe::{FirstRequest, Marks, Observer};
use scenario::Scenario;
use tools::{RunDirs, Setup, Tool};

/// Benchmarks rollguard against kubectl and Helm on the same kubesim scenarios.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Args {
    /// Runs per scenario and tool (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the Markdown report here (it is printed to stdout too).
    #[arg(long)]
    out: Option<PathBuf>,
    /// One run of the small scenarios (good-3, missing) with rollguard and kubectl.
    #[arg(long)]
    smoke: bool,
    /// kubesim's time factor (simulated seconds per real second), the same for every tool.
    #[arg(long, default_value_t = 30.0)]
    speed: f64,
    /// The rollguard binary [default: target/release/rollguard].
    #[arg(long, env = "ROLLGUARD_BENCH_BIN")]
    rollguard: Option<PathBuf>,
    /// The kubectl binary.
    #[arg(long, default_value = ".tools/bin/kubectl")]
    kubectl: PathBuf,
    /// The helm binary.
    #[arg(long, default_value = ".tools/bin/helm")]
    helm: PathBuf,
    /// helm's --server-side (auto, true, false).
    #[arg(long, default_value = "auto")]
    helm_server_side: String,
    /// Only these scenarios (comma-separated keys: good-3, good-100, missing,
    /// crash, oom, unschedulable, slow, many).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Only these tools (rollguard, kubectl, helm).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
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
    pub requests: u64,
    pub bytes: u64,
    pub watch_events: u64,
    pub rss_kib: u64,
    pub cpu_ms: f64,
    pub startup_ms: Option<f64>,
    pub wall_ms: f64,
    pub processes: usize,
    pub agents: Vec<String>,
    pub lagged: u64,
}

fn ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64() * 1e3
    } else {
        -((earlier - later).as_secs_f64() * 1e3)
    }
}

async fn all_complete(h: &kubesim::Handle, names: &[String], limit: Duration) -> bool {
    h.wait_for(limit, |h| {
        names.iter().all(|n| {
            h.get("apps/v1", "Deployment", "default", n)
                .is_some_and(|d| observe::complete(&d))
        })
    })
    .await
}

async fn run_once(setup: &Setup, scn: &Scenario, tool: Tool) -> anyhow::Result<Sample> {
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home)?;
    let kubeconfig = tmp.path().join("kubeconfig");
    let chart = tmp.path().join("chart");
    scenario::write_chart(&chart)?;
    let dirs = RunDirs {
        home: &home,
        kubeconfig: &kubeconfig,
        chart: &chart,
    };
    let h = kubesim::start(kubesim::Config {
        nodes: scn.nodes,
        node_cpu: scn.node_cpu.into(),
        speed: setup.speed,
        tls: true,
        ..Default::default()
    })
    .await?;
    h.write_kubeconfig(&kubeconfig)?;
    let names = scn.names();

    // The previous version, installed and healthy (not measured).
    if tool == Tool::Helm {
        let c = tools::helm_cmd(setup, scn, &dirs, &scn.old_image(), false);
        let p = proc::run_async(c, Duration::from_secs(180)).await?;
        if !p.ok() {
            anyhow::bail!("helm install of the previous version failed:\n{}", p.text());
        }
    } else {
        for n in &names {
            h.create(scn.deployment(n))?;
        }
    }
    if !all_complete(&h, &names, Duration::from_secs(120)).await {
        anyhow::bail!("set-up: the previous version never became ready");
    }

    h.sim.metrics.reset();
    let obs = Observer::start(&h, &names, &scn.old_image(), &scn.new_image(), scn.decide);
    let first = FirstRequest::start(&h);
    let run = tools::run(setup, tool, scn, &dirs).await?;
    // The end state: all new complete, or the old version complete again.
    let end_limit = Duration::from_secs(60);
    // (Not waited for when the tool's verdict rules it out: a tool that
    // reported success on a bad image will not roll back.)
    if scn.succeeds && !run.reported_failure {
        obs.wait_for(&h, end_limit, |m| Marks::all(&m.completed).is_some())
            .await;
    } else if !scn.succeeds && run.reported_failure {
        obs.wait_for(&h, end_limit, |m| Marks::all(&m.healthy_again).is_some())
            .await;
    }
    let first_request = first.stop();
    let marks = obs.stop();
    let metrics = h.metrics();
    h.shutdown().await;

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
        let ok = run.reported_failure && Marks::all(&marks.healthy_again).is_some();
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
    let decided = marks.decided;
    let done = if scn.succeeds {
        Marks::all(&marks.completed)
    } else {
        Marks::all(&marks.healthy_again)
    };
    Ok(Sample {
        correct,
        note,
        verdict_ms: decided.map(|d| ms(run.verdict, d)),
        rollback_ms: match (decided, Marks::first(&marks.rolled_back)) {
            (Some(d), Some(r)) if !scn.succeeds => Some(ms(r, d)),
            _ => None,
        },
        done_ms: done.map(|d| ms(d, start)),
        requests: metrics.values().map(|s| s.requests).sum(),
        bytes: metrics.values().map(|s| s.response_bytes).sum(),
        watch_events: metrics.values().map(|s| s.watch_events).sum(),
        rss_kib: run.procs.iter().map(|p| p.maxrss_kib).max().unwrap_or(0),
        cpu_ms: run.procs.iter().map(|p| p.cpu.as_secs_f64() * 1e3).sum(),
        startup_ms: first_request.map(|f| ms(f, start)),
        wall_ms: ms(last_exit, start),
        processes: run.procs.len(),
        agents: metrics.keys().cloned().collect(),
        lagged: marks.lagged,
    })
}

fn default_rollguard() -> PathBuf {
    PathBuf::from("target/release/rollguard")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.runs = 1;
        if args.scenarios.is_empty() {
            args.scenarios = scenario::all()
                .iter()
                .filter(|s| s.smoke)
                .map(|s| s.key.to_string())
                .collect();
        }
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
            .map(|t| Tool::parse(t).ok_or_else(|| anyhow::anyhow!("unknown tool {t}")))
            .collect::<anyhow::Result<_>>()?
    };
    for (t, p) in [(Tool::Kubectl, &args.kubectl), (Tool::Helm, &args.helm)] {
        if tools.contains(&t) && !p.is_file() {
            anyhow::bail!(
                "{} not found: run bash .ci/install-tools.sh or pass --{}",
                p.display(),
                t.name()
            );
        }
    }
    let scenarios: Vec<Scenario> = scenario::all()
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|k| k == s.key))
        .collect();
    if scenarios.is_empty() {
        anyhow::bail!("no scenario matches {:?}", args.scenarios);
    }
    let setup = Setup {
        rollguard: rollguard.clone(),
        kubectl: args.kubectl.clone(),
        helm: args.helm.clone(),
        speed: args.speed,
        helm_server_side: args.helm_server_side.clone(),
    };

    let started = Instant::now();
    let mut results = report::Results::default();
    let mut crashed = Vec::new();
    for scn in &scenarios {
        for &tool in &tools {
            for run in 1..=args.runs {
                let t0 = Instant::now();
                match run_once(&setup, scn, tool).await {
                    Ok(s) => {
                        eprintln!(
                            "{:>13} {:>9} run {run}: {} in {:.1}s{}",
                            scn.key,
                            tool.name(),
                            if s.correct { "correct" } else { "WRONG" },
                            t0.elapsed().as_secs_f64(),
                            if s.note.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", s.note.trim())
                            }
                        );
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
    let md = report::render(&meta, &scenarios, &tools, &results, &crashed);
    println!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md)?;
        eprintln!("wrote {}", out.display());
    }
    if !crashed.is_empty() {
        anyhow::bail!("{} run(s) could not be measured", crashed.len());
    }
    Ok(())
}

fn args_summary(a: &Args) -> String {
    let mut s = String::from("cargo run -p rollguard-bench --release --");
    if a.smoke {
        s.push_str(" --smoke");
    } else {
        s.push_str(&format!(" --runs {}", a.runs));
    }
    if a.speed != 30.0 {
        s.push_str(&format!(" --speed {}", a.speed));
    }
    if a.helm_server_side != "auto" {
        s.push_str(&format!(" --helm-server-side {}", a.helm_server_side));
    }
    if !a.scenarios.is_empty() && !a.smoke {
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
