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
//! Readiness (documented deviations): without a readinessProbe a container
//! is Ready when it starts, as upstream, except that an `Ok { ready_after }`
//! image slower than 1 s (the `slow` tag) is Ready only after `ready_after`,
//! as the captured fixture shows; `Unready` without a probe is Ready (a real
//! kubelet has nothing to fail). With a readinessProbe a container is Ready
//! after `max(initialDelaySeconds, ready_after)`, and `Unready` never is,
//! with an `Unhealthy` event every `periodSeconds`. Liveness and startup
//! probes are not simulated.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Next;
use super::events::{self, Source};
use super::scheduler;
use crate::Sim;
use crate::clock::{fmt_time, parse_time};
use crate::resources::res;
use crate::scenario::ImageBehaviour;

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

/// Per-pod runtime state the kubelet keeps outside the API objects.
#[derive(Debug, Default)]
pub struct KubeletState {
    pods: HashMap<String, PodRt>,
    /// Images each node has pulled.
    images: HashMap<String, HashSet<String>>,
    /// The last pod IP host number handed out per node.
    ips: HashMap<String, u32>,
}

impl KubeletState {
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
    Running {
        started: Timestamp,
        ready_at: Option<Timestamp>,
        exit: Option<(Timestamp, i32, &'static str)>,
        next_probe: Option<Timestamp>,
    },
    CrashBackOff {
        until: Timestamp,
        secs: u64,
        shown: bool,
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

/// `docker.io/library/nginx:latest` for `nginx`, `docker.io/example/web:1`
/// for `example/web:1`; references with a registry host are kept.
pub fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_host {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

/// The repository part of a normalised reference (no tag, no digest).
fn repository(normalized: &str) -> &str {
    let name = normalized.split('@').next().unwrap_or(normalized);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => &name[..slash + i],
        None => name,
    }
}

fn fnv(data: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x1000_0000_01b3);
    for b in data.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h
}

/// A stable pseudo digest for an image reference.
fn digest(image: &str) -> String {
    (0..4).map(|i| format!("{:016x}", fnv(image, i))).collect()
}

fn image_id(image: &str) -> String {
    let n = normalize_image(image);
    if let Some((repo, d)) = n.split_once('@') {
        return format!("{repo}@{d}");
    }
    format!("{}@sha256:{}", repository(&n), digest(&n))
}

fn new_container_id() -> String {
    format!(
        "containerd://{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Go's `time.Duration` string for whole seconds: `10s`, `1m20s`, `5m0s`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The registry host and path of a normalised reference, for messages.
fn registry_url(normalized: &str) -> String {
    let repo = repository(normalized);
    let tag = normalized
        .split('@')
        .next()
        .and_then(|n| n.rsplit('/').next())
        .and_then(|l| l.split_once(':'))
        .map_or("latest", |(_, t)| t);
    match repo.split_once('/') {
        Some(("docker.io", path)) => {
            format!("https://registry-1.docker.io/v2/{path}/manifests/{tag}")
        }
        Some((host, path)) => format!("https://{host}/v2/{path}/manifests/{tag}"),
        None => format!("https://{repo}/manifests/{tag}"),
    }
}

/// containerd's error for a failed pull.
fn pull_error(image: &str, b: &ImageBehaviour) -> String {
    let n = normalize_image(image);
    match b {
        ImageBehaviour::Denied => format!(
            "rpc error: code = Unknown desc = failed to pull and unpack image \"{n}\": failed to resolve reference \"{n}\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"
        ),
        ImageBehaviour::Flaky { .. } => format!(
            "rpc error: code = Unknown desc = failed to pull and unpack image \"{n}\": failed to resolve reference \"{n}\": failed to do request: Head \"{}\": dial tcp 104.16.98.215:443: i/o timeout",
            registry_url(&n)
        ),
        _ => format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{n}\": failed to resolve reference \"{n}\": {n}: not found"
        ),
    }
}

/// The missing ConfigMap/Secret/key a container's environment refers to.
fn config_error(sim: &Sim, ns: &str, c: &Value) -> Option<String> {
    let cms = res("configmaps");
    let secrets = res("secrets");
    let lookup = |secret: bool, name: &str| {
        let rt = if secret { secrets } else { cms };
        sim.store.get(rt, ns, name).ok()
    };
    let not_found = |secret: bool, name: &str| {
        format!(
            "{} \"{name}\" not found",
            if secret { "secret" } else { "configmap" }
        )
    };
    for e in c["envFrom"].as_array().into_iter().flatten() {
        for (key, secret) in [("configMapRef", false), ("secretRef", true)] {
            let r = &e[key];
            if !r.is_object() {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            if r["optional"].as_bool() != Some(true) && lookup(secret, name).is_none() {
                return Some(not_found(secret, name));
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        for (key, secret) in [("configMapKeyRef", false), ("secretKeyRef", true)] {
            let r = &e["valueFrom"][key];
            if !r.is_object() {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            let k = r["key"].as_str().unwrap_or("");
            let optional = r["optional"].as_bool() == Some(true);
            match lookup(secret, name) {
                None if !optional => return Some(not_found(secret, name)),
                Some(obj)
                    if !optional
                        && obj["data"].get(k).is_none()
                        && obj["binaryData"].get(k).is_none()
                        && obj["stringData"].get(k).is_none() =>
                {
                    return Some(format!(
                        "couldn't find key {k} in {} {ns}/{name}",
                        if secret { "Secret" } else { "ConfigMap" }
                    ));
                }
                _ => {}
            }
        }
    }
    None
}

/// What a pass needs about one pod.
struct Ctx<'a> {
    sim: &'a Sim,
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
    let KubeletState { pods, images, ips } = state;
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
    } else {
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
    rt.wake = wake_time(rt);
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

fn wake_time(rt: &PodRt) -> Option<Timestamp> {
    if let Some((_, done)) = rt.kill {
        return Some(done);
    }
    let mut w: Option<Timestamp> = None;
    let mut at = |t: Timestamp| {
        w = Some(w.map_or(t, |c: Timestamp| c.min(t)));
    };
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
            _ => {}
        }
    }
    w
}

fn step_containers(
    ctx: &mut Ctx<'_>,
    rt: &mut PodRt,
    images: &mut HashSet<String>,
    now: Timestamp,
) {
    // A changed image in the spec restarts the container (as a real kubelet
    // does when the container's hash changes).
    for c in rt.init.iter_mut().chain(rt.app.iter_mut()) {
        let spec_image = ctx.spec_of(c)["image"].as_str().unwrap_or("").to_string();
        if !spec_image.is_empty() && spec_image != c.image {
            if matches!(c.state, CState::Running { .. }) {
                ctx.event(
                    c,
                    "Normal",
                    "Killing",
                    format!("Container {} definition changed, will be restarted", c.name),
                );
                terminate(ctx, c, now, 0, "Completed", false);
            }
            c.image = spec_image;
            c.state = CState::New;
            c.pull_backoff = 0;
            c.pull_failures = 0;
        }
    }
    let mut init_done = true;
    for i in 0..rt.init.len() {
        if !init_done {
            break;
        }
        if matches!(rt.init[i].state, CState::Blocked) {
            rt.init[i].state = CState::New;
        }
        step(ctx, &mut rt.init[i], images, now);
        init_done = rt.init[i].done();
    }
    if init_done {
        for c in rt.app.iter_mut() {
            step(ctx, c, images, now);
        }
    }
}

/// Advance one container through every transition due by `now`.
fn step(ctx: &mut Ctx<'_>, c: &mut Ctr, images: &mut HashSet<String>, now: Timestamp) {
    for _ in 0..64 {
        let state = c.state.clone();
        match state {
            CState::New => begin_image_at(ctx, c, images, now),
            CState::Pulling { until, millis } if until <= now => {
                pull_done(ctx, c, images, until, millis)
            }
            CState::PullErr {
                shown: false,
                show_at,
                until,
                msg,
            } if show_at <= now && show_at < until => {
                ctx.event(
                    c,
                    "Normal",
                    "BackOff",
                    format!("Back-off pulling image \"{}\"", c.image),
                );
                ctx.event(c, "Warning", "Failed", "Error: ImagePullBackOff".into());
                c.waiting = (
                    "ImagePullBackOff".into(),
                    Some(format!(
                        "Back-off pulling image \"{}\": ErrImagePull: {msg}",
                        c.image
                    )),
                );
                c.state = CState::PullErr {
                    msg,
                    show_at,
                    shown: true,
                    until,
                };
            }
            CState::PullErr { until, .. } if until <= now => start_pull(ctx, c, until),
            CState::ConfigErr { retry_at } => {
                if config_error(ctx.sim, &ctx.ns, ctx.spec_of(c)).is_none() {
                    create_start(ctx, c, now);
                } else if retry_at <= now {
                    ctx.event(
                        c,
                        "Normal",
                        "Pulled",
                        format!("Container image \"{}\" already present on machine", c.image),
                    );
                    create_start(ctx, c, now);
                } else {
                    return;
                }
            }
            CState::Running {
                started,
                ready_at,
                exit,
                next_probe,
            } => {
                if let Some((t, code, reason)) = exit
                    && t <= now
                {
                    terminate(ctx, c, t, code, reason, true);
                    continue;
                }
                let mut changed = false;
                let mut ready_at = ready_at;
                if ready_at.is_some_and(|r| r <= now) {
                    // Ready: rendered from `started`; nothing more to wait for.
                    ready_at = None;
                    changed = true;
                }
                let mut next_probe = next_probe;
                if let Some(p) = next_probe
                    && p <= now
                {
                    let probe = ctx.spec_of(c)["readinessProbe"].clone();
                    let period = probe["periodSeconds"].as_u64().unwrap_or(10).max(1);
                    ctx.event(c, "Warning", "Unhealthy", probe_failure(&probe));
                    let mut n = add(p, Duration::from_secs(period));
                    while n <= now {
                        n = add(n, Duration::from_secs(period));
                    }
                    next_probe = Some(n);
                    changed = true;
                }
                if changed {
                    c.state = CState::Running {
                        started,
                        ready_at,
                        exit,
                        next_probe,
                    };
                }
                return;
            }
            CState::CrashBackOff {
                until,
                secs,
                shown: false,
            } => {
                ctx.event(
                    c,
                    "Warning",
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}_{}({})",
                        c.name, ctx.pod_name, ctx.ns, ctx.uid
                    ),
                );
                c.state = CState::CrashBackOff {
                    until,
                    secs,
                    shown: true,
                };
            }
            CState::CrashBackOff { until, .. } if until <= now => {
                c.state = CState::New;
                begin_image_at(ctx, c, images, until);
            }
            _ => return,
        }
    }
}

fn probe_failure(probe: &Value) -> String {
    if probe["tcpSocket"].is_object() {
        let port = &probe["tcpSocket"]["port"];
        let port = port.as_i64().map_or_else(
            || port.as_str().unwrap_or("8080").to_string(),
            |p| p.to_string(),
        );
        format!("Readiness probe failed: dial tcp 10.244.0.1:{port}: connect: connection refused")
    } else if probe["exec"].is_object() {
        "Readiness probe failed: not ready".to_string()
    } else if probe["grpc"].is_object() {
        "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")".to_string()
    } else {
        "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string()
    }
}

/// EnsureImageExists: invalid name, pull policy, presence on the node.
fn begin_image_at(ctx: &mut Ctx<'_>, c: &mut Ctr, images: &mut HashSet<String>, t: Timestamp) {
    let behaviour = ctx.sim.behaviour(&c.image);
    if behaviour == ImageBehaviour::Invalid {
        let msg = format!(
            "Failed to apply default image tag \"{0}\": couldn't parse image name \"{0}\": invalid reference format",
            c.image
        );
        ctx.event(c, "Warning", "InspectFailed", msg.clone());
        ctx.event(c, "Warning", "Failed", "Error: InvalidImageName".into());
        c.waiting = ("InvalidImageName".into(), Some(msg));
        c.state = CState::Stuck;
        return;
    }
    let policy = ctx.spec_of(c)["imagePullPolicy"]
        .as_str()
        .unwrap_or("IfNotPresent")
        .to_string();
    let present = images.contains(&c.image);
    match policy.as_str() {
        "Never" if !present => {
            let msg = format!(
                "Container image \"{}\" is not present with pull policy of Never",
                c.image
            );
            ctx.event(c, "Warning", "ErrImageNeverPull", msg.clone());
            ctx.event(c, "Warning", "Failed", "Error: ErrImageNeverPull".into());
            c.waiting = ("ErrImageNeverPull".into(), Some(msg));
            c.state = CState::Stuck;
        }
        "Never" | "IfNotPresent" if present => {
            ctx.event(
                c,
                "Normal",
                "Pulled",
                format!("Container image \"{}\" already present on machine", c.image),
            );
            create_start(ctx, c, t);
        }
        _ => start_pull(ctx, c, t),
    }
}

fn start_pull(ctx: &mut Ctx<'_>, c: &mut Ctr, t: Timestamp) {
    use rand::Rng;
    let millis = rand::rng().random_range(500..1000u64);
    ctx.event(
        c,
        "Normal",
        "Pulling",
        format!("Pulling image \"{}\"", c.image),
    );
    c.state = CState::Pulling {
        until: add(t, Duration::from_millis(millis)),
        millis,
    };
}

fn pull_done(
    ctx: &mut Ctx<'_>,
    c: &mut Ctr,
    images: &mut HashSet<String>,
    t: Timestamp,
    millis: u64,
) {
    let behaviour = ctx.sim.behaviour(&c.image);
    let fails = match &behaviour {
        ImageBehaviour::Missing | ImageBehaviour::Denied => true,
        ImageBehaviour::Flaky { failures } => c.pull_failures < *failures,
        _ => false,
    };
    if fails {
        c.pull_failures += 1;
        let msg = pull_error(&c.image, &behaviour);
        ctx.event(
            c,
            "Warning",
            "Failed",
            format!("Failed to pull image \"{}\": {msg}", c.image),
        );
        ctx.event(c, "Warning", "Failed", "Error: ErrImagePull".into());
        c.pull_backoff = if c.pull_backoff == 0 {
            BACKOFF_INITIAL
        } else {
            (c.pull_backoff * 2).min(BACKOFF_MAX)
        };
        c.waiting = ("ErrImagePull".into(), Some(msg.clone()));
        c.state = CState::PullErr {
            msg,
            show_at: add(t, Duration::from_secs(1)),
            shown: false,
            until: add(t, Duration::from_secs(c.pull_backoff)),
        };
        return;
    }
    let size = 20_000_000 + fnv(&c.image, 9) % 60_000_000;
    ctx.event(
        c,
        "Normal",
        "Pulled",
        format!(
            "Successfully pulled image \"{}\" in {millis}ms ({millis}ms including waiting). Image size: {size} bytes.",
            c.image
        ),
    );
    images.insert(c.image.clone());
    c.pull_backoff = 0;
    create_start(ctx, c, t);
}

/// Config check, then Created/Started and a running instance.
fn create_start(ctx: &mut Ctx<'_>, c: &mut Ctr, t: Timestamp) {
    let spec = ctx.spec_of(c).clone();
    if let Some(msg) = config_error(ctx.sim, &ctx.ns, &spec) {
        ctx.event(c, "Warning", "Failed", format!("Error: {msg}"));
        c.waiting = ("CreateContainerConfigError".into(), Some(msg));
        c.state = CState::ConfigErr {
            retry_at: add(t, CONFIG_RETRY),
        };
        return;
    }
    if c.container_id.is_some() {
        c.restarts += 1;
    }
    c.container_id = Some(new_container_id());
    ctx.event(c, "Normal", "Created", "Container created".into());
    ctx.event(c, "Normal", "Started", "Container started".into());
    let behaviour = ctx.sim.behaviour(&c.image);
    let probe = &spec["readinessProbe"];
    let has_probe = probe.is_object();
    let one = Duration::from_secs(1);
    let (app_ready, exit): (Option<Duration>, Option<(Duration, i32, &'static str)>) =
        match &behaviour {
            ImageBehaviour::Ok { ready_after } => (Some(*ready_after), None),
            ImageBehaviour::Crash { after, exit_code } => (
                Some(one),
                Some((
                    *after,
                    *exit_code,
                    if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    },
                )),
            ),
            ImageBehaviour::LateCrash { after } => (Some(one), Some((*after, 1, "Error"))),
            ImageBehaviour::Oom { after } => (Some(one), Some((*after, 137, "OOMKilled"))),
            ImageBehaviour::Unready => (None, None),
            _ => (Some(one), None),
        };
    // Init containers run to completion: Ok images exit 0 after ready_after.
    let exit = if c.init && exit.is_none() {
        Some((app_ready.unwrap_or(one), 0, "Completed"))
    } else {
        exit
    };
    let ready_at = if c.init {
        None
    } else if has_probe {
        let delay = Duration::from_secs(probe["initialDelaySeconds"].as_u64().unwrap_or(0));
        app_ready.map(|r| add(t, r.max(delay)))
    } else {
        match (&behaviour, app_ready) {
            (ImageBehaviour::Ok { .. }, Some(r)) if r > one => Some(add(t, r)),
            _ => Some(t),
        }
    };
    let next_probe = (!c.init && has_probe && behaviour == ImageBehaviour::Unready).then(|| {
        add(
            t,
            Duration::from_secs(probe["initialDelaySeconds"].as_u64().unwrap_or(0)).max(one),
        )
    });
    c.state = CState::Running {
        started: t,
        ready_at,
        exit: exit.map(|(d, code, reason)| (add(t, d), code, reason)),
        next_probe,
    };
    // Logs: the running instance's lines; the previous instance's become `previous`.
    let mut lines = vec![format!("starting {} ({})", c.name, c.image)];
    match &behaviour {
        ImageBehaviour::Oom { .. } => lines.push("loading cache into memory".into()),
        ImageBehaviour::Crash { .. } | ImageBehaviour::LateCrash { .. } => {
            lines.push("connecting to database at db:5432".into())
        }
        _ => lines.push("listening on :8080".into()),
    }
    let mut logs = ctx.sim.logs.lock().expect("logs lock");
    let entry = logs.entry(ctx.log_key(c)).or_default();
    if c.restarts > 0 {
        entry.previous = Some(std::mem::take(&mut entry.current));
    }
    entry.current = lines;
}

/// A running instance exits at `t`; restart per policy with back-off.
fn terminate(
    ctx: &mut Ctx<'_>,
    c: &mut Ctr,
    t: Timestamp,
    code: i32,
    reason: &'static str,
    restart: bool,
) {
    let CState::Running { started, .. } = c.state else {
        return;
    };
    let spec = ctx.spec_of(c).clone();
    let mut message = None;
    if code != 0 && reason == "Error" {
        let line = "Error: cannot connect to database at db:5432".to_string();
        let mut logs = ctx.sim.logs.lock().expect("logs lock");
        let entry = logs.entry(ctx.log_key(c)).or_default();
        entry.current.push(line.clone());
        // The app writes its fatal error to the termination-log file (what
        // FallbackToLogsOnError would also find in the log tail).
        if spec["terminationMessagePath"].as_str() != Some("") {
            message = Some(line.clone());
        }
    }
    let term = Term {
        exit_code: code,
        reason,
        started,
        finished: t,
        container_id: c.container_id.clone().unwrap_or_default(),
        message,
    };
    if !restart {
        c.last = Some(term);
        return;
    }
    let policy = ctx.restart_policy.as_str();
    let again = if c.init {
        code != 0 && policy != "Never"
    } else {
        policy == "Always" || (policy == "OnFailure" && code != 0)
    };
    if !again {
        c.state = CState::Terminated(term);
        return;
    }
    if t.duration_since(started) >= ms(BACKOFF_RESET) {
        c.crash_backoff = 0;
    }
    c.last = Some(term);
    if c.crash_backoff == 0 {
        // The first restart is immediate; back-off starts with the next exit.
        c.crash_backoff = BACKOFF_INITIAL;
        c.state = CState::New;
        return;
    }
    let secs = c.crash_backoff;
    c.crash_backoff = (secs * 2).min(BACKOFF_MAX);
    c.waiting = (
        "CrashLoopBackOff".into(),
        Some(format!(
            "back-off {} restarting failed container={} pod={}_{}({})",
            go_duration(secs),
            c.name,
            ctx.pod_name,
            ctx.ns,
            ctx.uid
        )),
    );
    c.state = CState::CrashBackOff {
        until: add(t, Duration::from_secs(secs)),
        secs,
        shown: false,
    };
}

fn term_json(t: &Term) -> Value {
    let mut v = json!({
        "containerID": t.container_id,
        "exitCode": t.exit_code,
        "finishedAt": fmt_time(t.finished),
        "reason": t.reason,
        "startedAt": fmt_time(t.started),
    });
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    v
}

fn container_status(c: &Ctr, now: Timestamp) -> (Value, bool) {
    let mut ready = false;
    let mut started_flag = false;
    let state = match &c.state {
        CState::Running {
            started, ready_at, ..
        } => {
            started_flag = true;
            ready = !c.init && ready_at.is_none_or(|r| r <= now) && !never_ready(c, ready_at);
            json!({"running": {"startedAt": fmt_time(*started)}})
        }
        CState::Terminated(t) => json!({"terminated": term_json(t)}),
        _ => {
            let mut w = json!({"reason": c.waiting.0});
            if let Some(m) = &c.waiting.1 {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
    };
    let instance = c.container_id.is_some();
    let mut v = json!({
        "image": if instance { normalize_image(&c.image) } else { c.image.clone() },
        "imageID": if instance { image_id(&c.image) } else { String::new() },
        "lastState": match &c.last {
            Some(t) => json!({"terminated": term_json(t)}),
            None => json!({}),
        },
        "name": c.name,
        "ready": ready,
        "restartCount": c.restarts,
        "started": started_flag,
        "state": state,
    });
    if let Some(id) = &c.container_id {
        v["containerID"] = json!(id);
    }
    (v, ready)
}

/// A running container with no ready time and a failing probe is never Ready.
fn never_ready(c: &Ctr, ready_at: &Option<Timestamp>) -> bool {
    ready_at.is_none()
        && matches!(
            c.state,
            CState::Running {
                next_probe: Some(_),
                ..
            }
        )
}

fn render_status(ctx: &Ctx<'_>, rt: &mut PodRt, now: Timestamp, terminal: bool) -> Value {
    let pod = ctx.pod;
    let mut status = pod["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let app: Vec<(Value, bool)> = rt.app.iter().map(|c| container_status(c, now)).collect();
    let init: Vec<(Value, bool)> = rt.init.iter().map(|c| container_status(c, now)).collect();
    let initialized = rt.init.iter().all(Ctr::done);
    let unready: Vec<&str> = rt
        .app
        .iter()
        .zip(&app)
        .filter(|(_, (_, r))| !r)
        .map(|(c, _)| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && !terminal;

    let all_succeeded = || {
        rt.app
            .iter()
            .all(|c| matches!(&c.state, CState::Terminated(t) if t.exit_code == 0))
    };
    let never_ran = |c: &Ctr| {
        !matches!(c.state, CState::Running { .. } | CState::Terminated(_)) && c.last.is_none()
    };
    let phase = if terminal
        || rt
            .app
            .iter()
            .all(|c| matches!(c.state, CState::Terminated(_)))
    {
        if all_succeeded() {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if !initialized || rt.app.iter().any(never_ran) {
        "Pending"
    } else {
        "Running"
    };

    let mut cond = |type_: &'static str, ok: bool, reason: &str, message: String| {
        let entry = rt.conds.entry(type_).or_insert((ok, now));
        if entry.0 != ok {
            *entry = (ok, now);
        }
        let mut v = json!({
            "lastProbeTime": null,
            "lastTransitionTime": fmt_time(entry.1),
            "status": if ok { "True" } else { "False" },
            "type": type_,
        });
        if !ok {
            v["reason"] = json!(reason);
            v["message"] = json!(message);
        }
        v
    };
    let incomplete: Vec<&str> = rt
        .init
        .iter()
        .filter(|c| !c.done())
        .map(|c| c.name.as_str())
        .collect();
    let sandbox_ready = !terminal;
    let mut conditions = vec![
        cond(
            "PodReadyToStartContainers",
            sandbox_ready,
            "",
            String::new(),
        ),
        cond(
            "Initialized",
            initialized,
            "ContainersNotInitialized",
            format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            ),
        ),
        cond(
            "Ready",
            all_ready,
            if terminal {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            },
            format!("containers with unready status: [{}]", unready.join(" ")),
        ),
        cond(
            "ContainersReady",
            all_ready,
            if terminal {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            },
            format!("containers with unready status: [{}]", unready.join(" ")),
        ),
    ];
    if terminal {
        for c in conditions.iter_mut().skip(2) {
            c["message"] = json!("");
        }
        if let Some(o) = conditions[0].as_object_mut() {
            o.remove("reason");
            o.remove("message");
        }
    }
    let scheduled = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        .cloned()
        .unwrap_or_else(|| {
            json!({"lastProbeTime": null, "lastTransitionTime": fmt_time(rt.scheduled_at), "status": "True", "type": "PodScheduled"})
        });
    conditions.push(scheduled);
    let host_ip = scheduler::node_ip(&rt.node);
    status["conditions"] = json!(conditions);
    status["containerStatuses"] = json!(app.into_iter().map(|(v, _)| v).collect::<Vec<_>>());
    if init.is_empty() {
        if let Some(o) = status.as_object_mut() {
            o.remove("initContainerStatuses");
        }
    } else {
        status["initContainerStatuses"] =
            json!(init.into_iter().map(|(v, _)| v).collect::<Vec<_>>());
    }
    status["hostIP"] = json!(host_ip);
    status["hostIPs"] = json!([{"ip": host_ip}]);
    status["observedGeneration"] = pod["metadata"]["generation"].clone();
    status["phase"] = json!(phase);
    status["podIP"] = json!(rt.ip);
    status["podIPs"] = json!([{"ip": rt.ip}]);
    status["qosClass"] = json!(crate::api::defaults::qos_class(&pod["spec"]));
    status["startTime"] = json!(fmt_time(rt.start));
    if status["observedGeneration"].is_null()
        && let Some(o) = status.as_object_mut()
    {
        o.remove("observedGeneration");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_normalisation() {
        assert_eq!(normalize_image("example/web:1"), "docker.io/example/web:1");
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(normalize_image("ghcr.io/o/app:2"), "ghcr.io/o/app:2");
        assert!(image_id("example/web:1").starts_with("docker.io/example/web@sha256:"));
        assert_eq!(
            image_id("example/web:1").len(),
            "docker.io/example/web@sha256:".len() + 64
        );
    }

    #[test]
    fn messages() {
        assert_eq!(go_duration(10), "10s");
        assert_eq!(go_duration(80), "1m20s");
        assert_eq!(go_duration(300), "5m0s");
        assert_eq!(
            pull_error("example/web:3-missing", &ImageBehaviour::Missing),
            "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/example/web:3-missing\": failed to resolve reference \"docker.io/example/web:3-missing\": docker.io/example/web:3-missing: not found"
        );
        assert!(
            pull_error("example/web:flaky", &ImageBehaviour::Flaky { failures: 2 })
                .contains("i/o timeout")
        );
    }
}
