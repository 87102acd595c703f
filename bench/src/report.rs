//! Medians, ratios, targets: the Markdown of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::Sample;
use crate::scenario::Scenario;
use crate::tools::{Setup, Tool};

#[derive(Default)]
pub struct Results {
    by: BTreeMap<(&'static str, Tool), Vec<Sample>>,
}

impl Results {
    pub fn push(&mut self, scn: &'static str, tool: Tool, s: Sample) {
        self.by.entry((scn, tool)).or_default().push(s);
    }

    fn get(&self, scn: &str, tool: Tool) -> Option<&Vec<Sample>> {
        self.by
            .iter()
            .find(|((k, t), _)| *k == scn && *t == tool)
            .map(|(_, v)| v)
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Medians of one (scenario, tool) cell.
#[derive(Debug, Clone, Default)]
struct Row {
    runs: usize,
    correct: usize,
    notes: Vec<String>,
    verdict_ms: Option<f64>,
    rollback_ms: Option<f64>,
    done_ms: Option<f64>,
    requests: Option<f64>,
    bytes: Option<f64>,
    watch_events: Option<f64>,
    rss_kib: Option<f64>,
    cpu_ms: Option<f64>,
    startup_ms: Option<f64>,
    wall_ms: Option<f64>,
    processes: Option<f64>,
    agents: Vec<String>,
    lagged: u64,
}

fn row(samples: &[Sample]) -> Row {
    let m = |f: &dyn Fn(&Sample) -> Option<f64>| median(samples.iter().filter_map(f).collect());
    // Latencies of a wrong verdict mean nothing: only correct runs count.
    let mc = |f: &dyn Fn(&Sample) -> Option<f64>| {
        median(samples.iter().filter(|s| s.correct).filter_map(f).collect())
    };
    let mut notes: Vec<String> = samples
        .iter()
        .filter(|s| !s.note.is_empty())
        .map(|s| s.note.trim().to_string())
        .collect();
    notes.dedup();
    let mut agents: Vec<String> = samples.iter().flat_map(|s| s.agents.clone()).collect();
    agents.sort();
    agents.dedup();
    Row {
        runs: samples.len(),
        correct: samples.iter().filter(|s| s.correct).count(),
        notes,
        verdict_ms: mc(&|s| s.verdict_ms),
        rollback_ms: mc(&|s| s.rollback_ms),
        done_ms: mc(&|s| s.done_ms),
        requests: m(&|s| Some(s.requests as f64)),
        bytes: m(&|s| Some(s.bytes as f64)),
        watch_events: m(&|s| Some(s.watch_events as f64)),
        rss_kib: m(&|s| Some(s.rss_kib as f64)),
        cpu_ms: m(&|s| Some(s.cpu_ms)),
        startup_ms: m(&|s| s.startup_ms),
        wall_ms: m(&|s| Some(s.wall_ms)),
        processes: m(&|s| Some(s.processes as f64)),
        agents,
        lagged: samples.iter().map(|s| s.lagged).sum(),
    }
}

/// Everything about the environment the report states.
pub struct Meta {
    pub command: String,
    pub runs: usize,
    pub speed: f64,
    pub cores: usize,
    pub date: String,
    pub rollguard_path: PathBuf,
    pub rollguard_version: String,
    pub rollguard_size: Option<u64>,
    pub static_path: Option<PathBuf>,
    pub static_size: Option<u64>,
    pub kubectl_version: String,
    pub helm_version: String,
    pub helm_server_side: String,
    pub elapsed: Duration,
}

fn first_line(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn static_binary() -> Option<PathBuf> {
    let dir = std::fs::read_dir("target/static").ok()?;
    dir.flatten()
        .map(|e| e.path().join("release/rollguard"))
        .find(|p| p.is_file())
}

impl Meta {
    pub fn collect(setup: &Setup, command: &str, runs: usize, elapsed: Duration) -> Meta {
        let static_path = static_binary();
        Meta {
            command: command.to_string(),
            runs,
            speed: setup.speed,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            date: first_line(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]),
            rollguard_path: setup.rollguard.clone(),
            rollguard_version: first_line(&setup.rollguard, &["--version"]),
            rollguard_size: std::fs::metadata(&setup.rollguard).ok().map(|m| m.len()),
            static_size: static_path
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len()),
            static_path,
            kubectl_version: first_line(&setup.kubectl, &["version", "--client"]),
            helm_version: first_line(&setup.helm, &["version", "--short"]),
            helm_server_side: setup.helm_server_side.clone(),
            elapsed,
        }
    }
}

fn dur(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(v) if v.abs() < 1000.0 => format!("{v:.0} ms"),
        Some(v) => format!("{:.1} s", v / 1000.0),
    }
}

/// Real milliseconds as simulated (cluster) seconds.
fn sim(ms: Option<f64>, speed: f64) -> String {
    ms.map_or("—".into(), |v| format!("{:.0} s", v * speed / 1000.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}"))
}

fn kib(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{:.1}", v / 1024.0))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.abs() > f64::EPSILON => {
            let r = a / b;
            if r < 0.01 {
                format!("{r:.4}")
            } else {
                format!("{r:.2}")
            }
        }
        _ => "—".into(),
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn render(
    meta: &Meta,
    scenarios: &[Scenario],
    tools: &[Tool],
    results: &Results,
    crashed: &[String],
) -> String {
    let s = meta.speed;
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks: rollguard vs kubectl vs Helm\n");
    let _ = writeln!(
        md,
        "Generated by `{}` ({} run(s) per scenario and tool, medians shown; {} on {} cores, took {:.0} s). \
         Re-run it to regenerate this file (build the release binary first: `cargo build --release --bin rollguard`).\n",
        meta.command,
        meta.runs,
        meta.date,
        meta.cores,
        meta.elapsed.as_secs_f64()
    );
    let _ = writeln!(md, "## Set-up\n");
    let _ = writeln!(
        md,
        "- **Cluster**: a fresh in-process kubesim per run (TLS on), same build for every tool; \
         **time factor {s}×** (kubesim runs {s} simulated seconds per real second) for every tool and scenario. \
         `progressDeadlineSeconds` is the default **600** ({:.0} s real).",
        600.0 / s
    );
    let _ = writeln!(
        md,
        "- **Tools**: `{}` ({}); `{}`; `{}`. Each run has a fresh `HOME` (no kubectl discovery cache or Helm cache from a previous run).",
        meta.rollguard_path.display(),
        meta.rollguard_version,
        meta.kubectl_version,
        meta.helm_version
    );
    let _ = writeln!(
        md,
        "- **rollguard**: one process per Deployment, env vars only, its defaults except: tool-side durations that stand for cluster time are divided by the time factor \
         (`timeout` 5m → {}, `rollback-timeout` → {}, `unschedulable-grace` 30s → {}), and the pre-flight checks are off \
         (`verify-image=false`, `capacity-check=off`): the peers have none, and with them on the missing tag and the unschedulable surge never reach the cluster (exit 2 before the patch).",
        dur(Some(300_000.0 / s)),
        dur(Some(300_000.0 / s)),
        dur(Some(30_000.0 / s))
    );
    let _ = writeln!(
        md,
        "- **kubectl**: `kubectl set image deployment/web web=IMAGE` then `kubectl rollout status deployment/web` (no `--timeout`: it ends at the progress deadline); \
         on failure `kubectl rollout undo deployment/web` + `kubectl rollout status deployment/web`. 100 Deployments: the same, 100 times in sequence."
    );
    let _ = writeln!(
        md,
        "- **Helm**: the previous version installed by `helm upgrade --install` (not measured), then `helm upgrade --install web CHART --set image=IMAGE --wait --rollback-on-failure --timeout {:.0}ms` \
         (the default 5m in cluster time; `--server-side={}`). The chart renders the same Deployment spec. 100 Deployments: one release holding all 100 (one helm process).",
        300_000.0 / s,
        meta.helm_server_side
    );

    let _ = writeln!(md, "\n## Results (medians)\n");
    let _ = writeln!(
        md,
        "Latencies and *done* are medians of the correct runs only (a wrong verdict has none). Times after the *deciding event* are real time, from the instant the bench process (subscribed to kubesim's store) saw the deciding change. \
         *Done* is cluster time (real × {s}) from the tool's start until every Deployment is complete on the new image (success) \
         or on the old image again (failure): on a real cluster, expect about these numbers of seconds.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | decided by | tool | correct | verdict after deciding event | rollback requested after deciding event | done (cluster time) | API requests | API KiB | watch events | peak RSS MiB | CPU ms | start-up → 1st request | processes | tool wall time |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut rows: BTreeMap<(&str, Tool), Row> = BTreeMap::new();
    for scn in scenarios {
        for &t in tools {
            let Some(samples) = results.get(scn.key, t) else {
                continue;
            };
            let r = row(samples);
            let mut correct = format!("{}/{}", r.correct, r.runs);
            if !r.notes.is_empty() {
                correct.push_str(&format!(" ({})", r.notes.join("; ")));
            }
            let mut title = scn.title.to_string();
            if scn.deployments > 1 && t == Tool::Rollguard {
                title.push_str(" (sequential; multi-workload pending, #6)");
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                title,
                scn.decided_by,
                t.name(),
                correct,
                dur(r.verdict_ms),
                if scn.succeeds {
                    "n/a".into()
                } else {
                    dur(r.rollback_ms)
                },
                sim(r.done_ms, s),
                num(r.requests),
                kib(r.bytes),
                num(r.watch_events),
                kib(r.rss_kib),
                num(r.cpu_ms),
                dur(r.startup_ms),
                num(r.processes),
                dur(r.wall_ms),
            );
            rows.insert((scn.key, t), r);
        }
    }

    if tools.contains(&Tool::Rollguard) && tools.len() > 1 {
        let _ = writeln!(
            md,
            "\n## rollguard ÷ peer (per row; below 1 is better for rollguard)\n"
        );
        let _ = writeln!(
            md,
            "| scenario | peer | verdict latency | rollback latency | done | API requests | API bytes | peak RSS | CPU | start-up |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for scn in scenarios {
            let Some(rg) = rows.get(&(scn.key, Tool::Rollguard)) else {
                continue;
            };
            for &t in tools.iter().filter(|t| **t != Tool::Rollguard) {
                let Some(p) = rows.get(&(scn.key, t)) else {
                    continue;
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    scn.title,
                    t.name(),
                    ratio(rg.verdict_ms, p.verdict_ms),
                    if scn.succeeds {
                        "n/a".into()
                    } else {
                        ratio(rg.rollback_ms, p.rollback_ms)
                    },
                    ratio(rg.done_ms, p.done_ms),
                    ratio(rg.requests, p.requests),
                    ratio(rg.bytes, p.bytes),
                    ratio(rg.rss_kib, p.rss_kib),
                    ratio(rg.cpu_ms, p.cpu_ms),
                    ratio(rg.startup_ms, p.startup_ms),
                );
            }
        }
    }

    let _ = writeln!(md, "\n## Binary size\n");
    let _ = writeln!(
        md,
        "- release (`{}`): {}",
        meta.rollguard_path.display(),
        meta.rollguard_size.map_or("—".into(), mb)
    );
    match (&meta.static_path, meta.static_size) {
        (Some(p), Some(n)) => {
            let _ = writeln!(
                md,
                "- static (`{}`, built by `.ci/run`): {}",
                p.display(),
                mb(n)
            );
        }
        _ => {
            let _ = writeln!(
                md,
                "- static: not built here (`.ci/run` builds it into `target/static/`)"
            );
        }
    }

    render_targets(&mut md, meta, &rows);

    let _ = writeln!(md, "\n## How it is measured\n");
    let _ = writeln!(
        md,
        "- **Deciding event**: the bench subscribes to kubesim's store before the tool starts and records the real `Instant` at which it sees \
         the change that decides the outcome: the kubelet's first `Failed` event (ErrImagePull), a new pod's `restartCount` reaching 2 (rollguard's default `restart-threshold`), \
         the scheduler's first `FailedScheduling` event, or the Deployment becoming complete (`observedGeneration` caught up, updated = replicas = available = desired; for 100 Deployments the last one)."
    );
    let _ = writeln!(
        md,
        "- **Verdict**: rollguard's `rollout of … failed/timed out` stdout line (read through a pipe, timestamped on arrival), else its exit; kubectl's first `rollout status` exit; helm's exit \
         (helm says nothing before it exits; on failure it exits after its rollback). For sequential runs (100 Deployments), the last process's verdict after the last completion."
    );
    let _ = writeln!(
        md,
        "- **Rollback requested**: the store change that puts the Deployment's pod template back on the old image (the tool's PATCH/PUT as the API server applied it)."
    );
    let _ = writeln!(
        md,
        "- **API requests, bytes, watch events**: kubesim's per-User-Agent counters, reset after the set-up, summed over the tool's processes (User-Agents seen: {}).",
        {
            let mut a: Vec<String> = rows.values().flat_map(|r| r.agents.clone()).collect();
            a.sort();
            a.dedup();
            a.iter()
                .map(|x| {
                    if x.is_empty() {
                        "none (rollguard sends no User-Agent header: kube-rs sets none by default)"
                            .to_string()
                    } else {
                        format!("`{x}`")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        md,
        "- **Peak RSS, CPU**: each tool process's `VmHWM` (its own peak RSS, read from `/proc/PID/status` every 2 ms while it runs; `wait4`'s `ru_maxrss` would include the bench process's size, which Linux carries across `fork`+`exec`) and `wait4(2)`'s user + system CPU time; the max RSS and the sum of CPU over the processes of a run."
    );
    let _ = writeln!(
        md,
        "- **Start-up → 1st request**: from just before `spawn` of the tool's first process to the instant kubesim's counters first show a request \
         (kubesim counts a request when its response is ready; the bench polls the counters every millisecond, so ±1 ms; it includes the TLS handshake and the first response)."
    );
    let _ = writeln!(
        md,
        "- **What skews**: the {}-core machine is shared with the simulated cluster (same process as the bench) and other work, so latencies of a few ms are noisy; \
         the tool-side durations that stand for cluster time are scaled by 1/{s}, but the tools' own polling intervals are not (Helm's and kubectl's reaction times are real); \
         *done* in cluster time multiplies tool reaction time by {s} too, so it overstates the tools' own share.",
        meta.cores
    );
    if rows
        .get(&("many", Tool::Helm))
        .is_some_and(|r| r.correct < r.runs)
    {
        let _ = writeln!(
            md,
            "- **Helm on 100 Deployments**: its `--timeout` ({}, the default 5m in cluster time) also has to cover Helm's own work on 100 objects (rendering, apply, 100 watches),              which the time factor does not speed up; so it times out and rolls back a good rollout here. That is an artefact of the time factor: on a real cluster Helm has the full 5 minutes.",
            dur(Some(300_000.0 / s))
        );
    }
    let lagged: u64 = rows.values().map(|r| r.lagged).sum();
    if lagged > 0 {
        let _ = writeln!(
            md,
            "- The store subscriber lagged and missed {lagged} changes: some marks may be late."
        );
    }
    if !crashed.is_empty() {
        let _ = writeln!(md, "\n## Runs that could not be measured\n");
        for c in crashed {
            let _ = writeln!(md, "- {}", c.replace('\n', " "));
        }
    }
    md
}

fn render_targets(md: &mut String, meta: &Meta, rows: &BTreeMap<(&str, Tool), Row>) {
    let rg = |k: &str| {
        rows.iter()
            .find(|((key, t), _)| *key == k && *t == Tool::Rollguard)
            .map(|(_, r)| r)
    };
    let max_of = |keys: &[&str], f: &dyn Fn(&Row) -> Option<f64>| -> Option<(f64, String)> {
        keys.iter()
            .filter_map(|k| rg(k).and_then(|r| f(r).map(|v| (v, k.to_string()))))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let _ = writeln!(md, "\n## Targets\n");
    let _ = writeln!(
        md,
        "| target | where we stand | status | why / what would fix it |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    let status = |ok: bool| if ok { "met" } else { "**missed**" };

    // Success reported ≤ 50 ms after completion.
    if let Some((v, k)) = max_of(&["good-3", "good-100", "slow"], &|r| r.verdict_ms) {
        let _ = writeln!(
            md,
            "| success reported ≤ 50 ms after completion | worst median {} ({k}) | {} | {} |",
            dur(Some(v)),
            status(v <= 50.0),
            if v <= 50.0 {
                "rollguard watches the Deployment and exits on the event that completes it"
                    .to_string()
            } else {
                "with 100 replicas rollguard reads every pod change (≈ 560 watch events, 2.2 MB here) and re-judges the rollout on each, so the Deployment's completing event waits behind that backlog (CPU ≈ 200 ms); judging completion from the Deployment watch first, or watching pods with only the fields it needs, would cut it".to_string()
            }
        );
    }
    // Rollback requested ≤ 100 ms after the deciding event.
    if let Some((v, k)) = max_of(&["missing", "crash", "oom"], &|r| r.rollback_ms) {
        let _ = writeln!(
            md,
            "| rollback requested ≤ 100 ms after the deciding event | worst median {} ({k}) | {} | {} |",
            dur(Some(v)),
            status(v <= 100.0),
            if v <= 100.0 {
                "decided on the watch event itself; the diagnosis reads logs and events before the rollback PATCH".to_string()
            } else {
                "the diagnosis (events, logs --previous) runs before the rollback PATCH; sending the rollback first and diagnosing while it rolls would cut it".to_string()
            }
        );
    }
    if let Some(r) = rg("unschedulable").and_then(|r| r.rollback_ms) {
        let grace = 30_000.0 / meta.speed;
        let _ = writeln!(
            md,
            "| (unschedulable) rollback requested after the first FailedScheduling | {} | {} | by design: `unschedulable-grace` (30 s cluster time = {} here) must pass first, so a pod that is scheduled once a node frees up is not failed; {} beyond the grace |",
            dur(Some(r)),
            if r - grace <= 100.0 {
                "met beyond the grace"
            } else {
                "**missed**"
            },
            dur(Some(grace)),
            dur(Some(r - grace)),
        );
    }
    // API requests constant in replicas and duration (≤ 20).
    let reqs: Vec<(String, f64)> = ["good-3", "good-100", "slow"]
        .iter()
        .filter_map(|k| rg(k).and_then(|r| r.requests.map(|v| (k.to_string(), v))))
        .collect();
    if !reqs.is_empty() {
        let max = reqs.iter().map(|x| x.1).fold(0.0, f64::max);
        let min = reqs.iter().map(|x| x.1).fold(f64::MAX, f64::min);
        let all = reqs
            .iter()
            .map(|(k, v)| format!("{k}: {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let fails = ["missing", "crash", "oom", "unschedulable"]
            .iter()
            .filter_map(|k| rg(k).and_then(|r| r.requests.map(|v| format!("{k}: {v:.0}"))))
            .collect::<Vec<_>>()
            .join(", ");
        let ok = max <= 20.0 && (max - min) <= 2.0;
        let _ = writeln!(
            md,
            "| API requests per rollout constant in replicas and duration, ≤ 20 | {all} (failed rollouts incl. diagnosis and rollback: {fails}) | {} | {} |",
            status(ok),
            if ok {
                "one list+watch per resource kind, whatever the replica count or duration"
                    .to_string()
            } else if max > 20.0 {
                "over 20: see the per-request breakdown with RUST_LOG=debug; fewer start-up GETs (discovery, namespace) and one watch per kind would cut it".to_string()
            } else {
                "the count grows with replicas or duration (watch re-establishment or per-pod requests); watching with bookmarks and no per-pod GETs would fix it".to_string()
            }
        );
    }
    // Peak RSS.
    if let Some((v, k)) = max_of(
        &[
            "good-3",
            "good-100",
            "missing",
            "crash",
            "oom",
            "unschedulable",
            "slow",
        ],
        &|r| r.rss_kib,
    ) {
        let mib = v / 1024.0;
        let _ = writeln!(
            md,
            "| peak RSS ≤ 20 MB, one workload | worst median {mib:.1} MiB ({k}) | {} | {} |",
            status(mib * 1.048_576 <= 20.0),
            if mib * 1.048_576 <= 20.0 {
                "".to_string()
            } else {
                "the watch caches hold full objects (managedFields included); caching only the fields used, and the current-thread runtime, would cut it".to_string()
            }
        );
    }
    if let Some(r) = rg("many").and_then(|r| r.rss_kib) {
        let _ = writeln!(
            md,
            "| peak RSS ≤ 60 MB, 100 workloads | {:.1} MiB per process (100 sequential processes) | not measurable yet | one run per workload until multi-workload runs land (issue #6); re-run then |",
            r / 1024.0
        );
    }
    // Start-up.
    if let Some((v, k)) = max_of(&["good-3", "missing"], &|r| r.startup_ms) {
        let _ = writeln!(
            md,
            "| start-up to first request ≤ 20 ms | worst median {} ({k}) | {} | {} |",
            dur(Some(v)),
            status(v <= 20.0),
            if v <= 20.0 {
                "includes exec, kubeconfig parsing, the TLS handshake and the first response"
                    .to_string()
            } else {
                "includes exec, the runtime, kubeconfig parsing, rustls set-up and the TLS handshake; measure with `perf`/`strace -r` to find the share".to_string()
            }
        );
    }
    // Binary size.
    let (size, which) = match (meta.static_size, meta.rollguard_size) {
        (Some(n), _) => (Some(n), "static"),
        (None, Some(n)) => (Some(n), "release (dynamic; static not built here)"),
        _ => (None, ""),
    };
    if let Some(n) = size {
        let ok = n <= 10_000_000;
        let _ = writeln!(
            md,
            "| release binary ≤ 10 MB static | {} {which} | {} | {} |",
            mb(n),
            status(ok),
            if ok {
                "opt-level z, LTO, one codegen unit, stripped, panic=abort".to_string()
            } else {
                "kube + k8s-openapi + oci-client + reqwest + rustls; fewer k8s-openapi types and one HTTP stack would cut it".to_string()
            }
        );
    }
}
