//! The kubelet of every simulated node, as one level-triggered loop.
//!
//! For each pod bound to an existing node it drives every container through
//! what a real kubelet and containerd do (image pull with back-off, config
//! errors, create/start, readiness, exits with crash-loop back-off,
//! graceful termination) on the simulated clock, keeping the runtime state
//! in [`KubeletState`] keyed by pod uid. The pod's status is rendered from
//! that state and written only when it changed; the next wake-up is the
//! earliest pending transition.
//!
//! Timing, as a node shows it: the pod sandbox first
//! (PodReadyToStartContainers), then the pull when the image is not on the
//! node, `Created`, `Started` a moment later, and Ready one status sync
//! after the running state was published. Each delay is drawn from one RNG
//! seeded by `Config::startup_seed`, all in simulated time. An exit is
//! published as `state.terminated` (ready=false, pod Ready=False) before the
//! kubelet acts on it one relist later: an immediate restart, or
//! `waiting CrashLoopBackOff` until the back-off from `finishedAt` passes.
//!
//! Readiness (documented deviations): without a readinessProbe a container
//! is Ready one status sync after it starts, except that an `Ok { ready_after }`
//! image slower than 1 s (the `slow` tag) is Ready only after `ready_after`,
//! as the captured fixture shows; `Unready` without a probe is Ready (a real
//! kubelet has nothing to fail). With a readinessProbe a container is Ready
//! after `max(initialDelaySeconds, ready_after)`, and `Unready` never is,
//! with an `Unhealthy` event every `periodSeconds`. Liveness and startup
//! probes are not simulated.

mod containers;
mod images;
mod status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use self::containers::step_containers;
pub use self::images::{go_duration, normalize_image};
use self::status::render_status;
use super::Next;
use super::events::{self, Source};
use super::scheduler;
use crate::Sim;
use crate::clock::parse_time;
use crate::resources::res;

/// How long a CreateContainerConfigError waits before the kubelet retries
/// (and repeats its events); a ConfigMap/Secret change retries at once.
const CONFIG_RETRY: Duration = Duration::from_secs(10);
/// Image pull and crash-loop back-off: 10 s doubling to 300 s.
const BACKOFF_INITIAL: u64 = 10;
const BACKOFF_MAX: u64 = 300;
/// A container that ran this long resets its crash back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How long after SIGTERM the simulated apps exit.
const EXIT_ON_SIGTERM: Duration = Duration::from_secs(1);
/// From a container's exit to the kubelet acting on it (the PLEG relist
/// that notices the exit, then the pod sync that restarts or backs off).
const RELIST: Duration = Duration::from_secs(1);

/// Per-pod runtime state the kubelet keeps outside the API objects.
#[derive(Debug)]
pub struct KubeletState {
    pods: HashMap<String, PodRt>,
    /// Images each node has pulled.
    images: HashMap<String, HashSet<String>>,
    /// The last pod IP host number handed out per node.
    ips: HashMap<String, u32>,
    /// The start-up variation: sandbox, pull, start and status-sync delays.
    rng: StdRng,
}

impl Default for KubeletState {
    fn default() -> Self {
        Self::new(crate::Config::default().startup_seed)
    }
}

/// A delay in milliseconds: `base..base+spread`, plus `tail..tail+spread`
/// one time in `tail_one_in` (a slow registry, a busy node).
fn draw(rng: &mut StdRng, base: u64, spread: u64, tail: u64, tail_one_in: u32) -> Duration {
    let mut ms = base + rng.random_range(0..spread.max(1));
    if tail > 0 && rng.random_ratio(1, tail_one_in.max(1)) {
        ms += tail + rng.random_range(0..spread.max(1));
    }
    Duration::from_millis(ms)
}

impl KubeletState {
    pub fn new(seed: u64) -> Self {
        Self {
            pods: HashMap::new(),
            images: HashMap::new(),
            ips: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Number of pods the kubelets are running (for tests and debugging).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Whether `node` has already pulled `image`.
    pub fn has_image(&self, node: &str, image: &str) -> bool {
        self.images.get(node).is_some_and(|s| s.contains(image))
    }
}

#[derive(Debug)]
struct PodRt {
    node: String,
    ip: String,
    start: Timestamp,
    /// When the pod sandbox is ready and containers may be created.
    sandbox_at: Timestamp,
    /// resourceVersion of the pod as last processed or written.
    seen_rv: String,
    wake: Option<Timestamp>,
    init: Vec<Ctr>,
    app: Vec<Ctr>,
    /// Condition type → (status, lastTransitionTime).
    conds: HashMap<&'static str, (bool, Timestamp)>,
    /// Kill started at, containers exit at.
    kill: Option<(Timestamp, Timestamp)>,
    scheduled_at: Timestamp,
}

#[derive(Debug, Clone)]
struct Term {
    exit_code: i32,
    reason: &'static str,
    started: Timestamp,
    finished: Timestamp,
    container_id: String,
    message: Option<String>,
}

#[derive(Debug, Clone)]
enum CState {
    /// Not yet looked at.
    New,
    /// Waiting for the previous init container.
    Blocked,
    Pulling {
        until: Timestamp,
        millis: u64,
    },
    /// ErrImagePull; ImagePullBackOff from `show_at`; retry at `until`.
    PullErr {
        msg: String,
        show_at: Timestamp,
        shown: bool,
        until: Timestamp,
    },
    /// Permanent until the spec changes (InvalidImageName, ErrImageNeverPull).
    Stuck,
    ConfigErr {
        retry_at: Timestamp,
    },
    /// Created; the runtime starts it at `at` (then `Started`).
    Starting {
        at: Timestamp,
    },
    Running {
        started: Timestamp,
        ready_at: Option<Timestamp>,
        exit: Option<(Timestamp, i32, &'static str)>,
        next_probe: Option<Timestamp>,
    },
    /// Exited and published as terminated; the kubelet restarts it or backs
    /// off at `act_at`.
    Exited {
        term: Term,
        act_at: Timestamp,
    },
    CrashBackOff {
        until: Timestamp,
    },
    Terminated(Term),
}

#[derive(Debug)]
struct Ctr {
    name: String,
    image: String,
    init: bool,
    state: CState,
    /// Waiting reason and message shown while not running.
    waiting: (String, Option<String>),
    restarts: u32,
    /// The last terminated instance of a restarted container.
    last: Option<Term>,
    /// The current (or last) instance's container id.
    container_id: Option<String>,
    pull_backoff: u64,
    pull_failures: u32,
    crash_backoff: u64,
}

impl Ctr {
    fn new(c: &Value, init: bool, pod_has_init: bool) -> Self {
        Ctr {
            name: c["name"].as_str().unwrap_or("").to_string(),
            image: c["image"].as_str().unwrap_or("").to_string(),
            init,
            state: if init { CState::Blocked } else { CState::New },
            waiting: (
                if init || pod_has_init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                }
                .to_string(),
                None,
            ),
            restarts: 0,
            last: None,
            container_id: None,
            pull_backoff: 0,
            pull_failures: 0,
            crash_backoff: 0,
        }
    }

    fn field_path(&self) -> String {
        if self.init {
            format!("spec.initContainers{{{}}}", self.name)
        } else {
            format!("spec.containers{{{}}}", self.name)
        }
    }

    fn done(&self) -> bool {
        matches!(&self.state, CState::Terminated(t) if t.exit_code == 0)
    }
}

/// What a pass needs about one pod.
struct Ctx<'a> {
    sim: &'a Sim,
    rng: &'a mut StdRng,
    pod: &'a Value,
    ns: String,
    pod_name: String,
    uid: String,
    node: String,
    restart_policy: String,
    events: Vec<(String, &'static str, &'static str, String)>,
}

impl Ctx<'_> {
    fn event(&mut self, c: &Ctr, type_: &'static str, reason: &'static str, msg: String) {
        self.events.push((c.field_path(), type_, reason, msg));
    }

    fn spec_of(&self, c: &Ctr) -> &Value {
        let key = if c.init {
            "initContainers"
        } else {
            "containers"
        };
        self.pod["spec"][key]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|s| s["name"].as_str() == Some(c.name.as_str()))
            })
            .unwrap_or(&Value::Null)
    }

    fn log_key(&self, c: &Ctr) -> (String, String, String) {
        (self.ns.clone(), self.pod_name.clone(), c.name.clone())
    }
}

fn ms(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::ZERO)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(ms(d)).unwrap_or(t)
}

pub fn reconcile(sim: &Sim) -> Next {
    let mut next = Next::default();
    let now = sim.clock.now();
    let (pods, _) = sim.store.list(res("pods"), None);
    let (nodes, _) = sim.store.list(res("nodes"), None);
    let node_names: HashSet<&str> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    let mut state = sim.kubelet.lock().expect("kubelet lock");
    let mut seen: HashSet<String> = HashSet::with_capacity(pods.len());
    for pod in &pods {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        if !node_names.contains(node) {
            continue;
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        seen.insert(uid.clone());
        sync_pod(sim, &mut state, pod, node, &uid, now, &mut next);
    }
    // Forget pods that are gone from the store (deleted by anyone).
    let gone: Vec<String> = state
        .pods
        .keys()
        .filter(|u| !seen.contains(*u))
        .cloned()
        .collect();
    for uid in gone {
        state.pods.remove(&uid);
    }
    next
}

fn needs_config_recheck(rt: &PodRt) -> bool {
    rt.init
        .iter()
        .chain(rt.app.iter())
        .any(|c| matches!(c.state, CState::ConfigErr { .. }))
}

fn sync_pod(
    sim: &Sim,
    state: &mut KubeletState,
    pod: &Arc<Value>,
    node: &str,
    uid: &str,
    now: Timestamp,
    next: &mut Next,
) {
    let rv = pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(rt) = state.pods.get(uid) {
        let due = rt.wake.is_some_and(|w| w <= now);
        if rt.seen_rv == rv && !due && !needs_config_recheck(rt) {
            if let Some(w) = rt.wake {
                next.at(w);
            }
            return;
        }
    }
    let KubeletState {
        pods,
        images,
        ips,
        rng,
    } = state;
    let has_init = pod["spec"]["initContainers"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let rt = pods.entry(uid.to_string()).or_insert_with(|| {
        let n = ips.entry(node.to_string()).or_insert(1);
        *n = if *n >= 254 { 2 } else { *n + 1 };
        let scheduled_at = pod["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .and_then(parse_time)
            .unwrap_or(now);
        PodRt {
            node: node.to_string(),
            ip: format!("10.244.{}.{}", scheduler::node_index(node), n),
            start: now,
            sandbox_at: add(now, draw(rng, 150, 200, 0, 1)),
            seen_rv: String::new(),
            wake: None,
            init: pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Ctr::new(c, true, true))
                .collect(),
            app: pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Ctr::new(c, false, has_init))
                .collect(),
            conds: HashMap::new(),
            kill: None,
            scheduled_at,
        }
    });
    let node_images = images.entry(node.to_string()).or_default();
    let mut ctx = Ctx {
        sim,
        rng,
        pod,
        ns: pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        pod_name: pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
        uid: uid.to_string(),
        node: node.to_string(),
        restart_policy: pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string(),
        events: Vec::new(),
    };

    let deleting = pod["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(parse_time);
    let mut remove = false;
    if let Some(deadline) = deleting {
        if rt.kill.is_none() {
            let done = add(now, EXIT_ON_SIGTERM).min(deadline.max(now));
            rt.kill = Some((now, done));
            for c in rt.init.iter().chain(rt.app.iter()) {
                if matches!(c.state, CState::Running { .. }) {
                    ctx.events.push((
                        c.field_path(),
                        "Normal",
                        "Killing",
                        format!("Stopping container {}", c.name),
                    ));
                }
            }
        }
        if let Some((_, done)) = rt.kill
            && now >= done
        {
            for c in rt.init.iter_mut().chain(rt.app.iter_mut()) {
                if let CState::Exited { term, .. } = &c.state {
                    c.state = CState::Terminated(term.clone());
                }
                if let CState::Running { started, .. } = c.state {
                    let (code, reason) = if done < deadline {
                        (0, "Completed")
                    } else {
                        (137, "Error")
                    };
                    c.state = CState::Terminated(Term {
                        exit_code: code,
                        reason,
                        started,
                        finished: done,
                        container_id: c.container_id.clone().unwrap_or_default(),
                        message: None,
                    });
                }
            }
            remove = true;
        }
    } else if now >= rt.sandbox_at {
        step_containers(&mut ctx, rt, node_images, now);
    }

    let status = render_status(&ctx, rt, now, remove);
    flush_events(&ctx);
    let mut written = None;
    if pod.get("status") != Some(&status) {
        let ns = ctx.ns.clone();
        let name = ctx.pod_name.clone();
        match sim.store.modify(res("pods"), &ns, &name, |p| {
            if p["metadata"]["uid"].as_str() != Some(uid) {
                return Ok(false);
            }
            p["status"] = status.clone();
            Ok(true)
        }) {
            Ok(p) => {
                written = Some(
                    p["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            }
            Err(_) => {
                // Retry on the next pass (a concurrent write woke us anyway).
                rt.seen_rv = String::new();
                next.at(add(now, Duration::from_millis(100)));
                return;
            }
        }
    }
    rt.seen_rv = written.unwrap_or(rv);
    if remove {
        let finalizers = pod["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if !finalizers {
            let _ = sim.store.delete(res("pods"), &ctx.ns, &ctx.pod_name);
            let mut logs = sim.logs.lock().expect("logs lock");
            for c in rt.init.iter().chain(rt.app.iter()) {
                logs.remove(&ctx.log_key(c));
            }
        }
        rt.wake = None;
        return;
    }
    rt.wake = wake_time(rt, now);
    if let Some(w) = rt.wake {
        next.at(w);
    }
}

fn flush_events(ctx: &Ctx<'_>) {
    for (fp, type_, reason, msg) in &ctx.events {
        events::record(
            ctx.sim,
            ctx.pod,
            Some(fp),
            type_,
            reason,
            msg,
            Source::Kubelet(&ctx.node),
        );
    }
}

fn wake_time(rt: &PodRt, now: Timestamp) -> Option<Timestamp> {
    if let Some((_, done)) = rt.kill {
        return Some(done);
    }
    let mut w: Option<Timestamp> = None;
    let mut at = |t: Timestamp| {
        w = Some(w.map_or(t, |c: Timestamp| c.min(t)));
    };
    if rt.sandbox_at > now {
        at(rt.sandbox_at);
    }
    for c in rt.init.iter().chain(rt.app.iter()) {
        match &c.state {
            CState::Pulling { until, .. } => at(*until),
            CState::PullErr {
                show_at,
                shown,
                until,
                ..
            } => at(if *shown { *until } else { *show_at }),
            CState::ConfigErr { retry_at } => at(*retry_at),
            CState::Running {
                ready_at,
                exit,
                next_probe,
                started: _,
            } => {
                if let Some(r) = ready_at {
                    at(*r);
                }
                if let Some((t, _, _)) = exit {
                    at(*t);
                }
                if let Some(p) = next_probe {
                    at(*p);
                }
            }
            CState::CrashBackOff { until, .. } => at(*until),
            CState::Starting { at: t } => at(*t),
            CState::Exited { act_at, .. } => at(*act_at),
            _ => {}
        }
    }
    w
}
