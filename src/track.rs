//! Watches → snapshots → progress lines and verdicts.
//!
//! Four reflectors (the Deployment, its ReplicaSets, its pods, the
//! namespace's events) keep caches that resume and relist by themselves.
//! The loop judges a snapshot after every change and on a short tick (for
//! the grace and timeout clocks), and prints one line per change.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::diagnose::{Cause, Signal};
use crate::guards::Guards;
use crate::report::timeline::{Mark, Phase, Sample};
use crate::stability::Check;
use crate::workload::deployment::{self as dep, Expectations, Progress, Snapshot, Timers, Verdict};

/// How long after a restart a pod must stay up before success is declared.
const RESTART_SETTLE: Duration = Duration::from_secs(10);
/// Re-judge at least this often (grace periods and deadlines run on our clock).
const TICK: Duration = Duration::from_millis(200);

/// Live caches of everything one Deployment's rollout touches.
pub struct Tracker {
    deployment: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    events: Store<Event>,
    stream: SelectAll<BoxStream<'static, Option<&'static str>>>,
    ready: std::collections::BTreeSet<&'static str>,
    name: String,
    /// Old vs new ready pods over the run, for the report's chart.
    pub timeline: Vec<Sample>,
    started: Instant,
    /// (container, image) that marks a pod as the new version.
    new_version: Option<(String, String)>,
    /// What the run is doing, for the timeline's samples.
    phase: Phase,
}

fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
) -> (Store<K>, BoxStream<'static, Option<&'static str>>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .map(move |item| match item {
            Ok(watcher::Event::InitDone) => Some(what),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("watch of {what} interrupted (resuming): {e}");
                None
            }
        })
        .boxed();
    (reader, stream)
}

/// Poll the merged watch streams without waiting, up to a bound.
fn drain_ready(
    stream: &mut SelectAll<BoxStream<'static, Option<&'static str>>>,
    ready: &mut std::collections::BTreeSet<&'static str>,
) {
    use futures::FutureExt;
    for _ in 0..10_000 {
        match stream.next().now_or_never() {
            Some(Some(Some(what))) => {
                ready.insert(what);
            }
            Some(Some(None)) => {}
            Some(None) | None => break,
        }
    }
}

impl Tracker {
    /// Start the watches. `selector` is the Deployment's label selector.
    pub fn start(client: &Client, namespace: &str, name: &str, selector: &str) -> Tracker {
        let (deployment, s1) = reflect(
            Api::<Deployment>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
            "deployment",
        );
        let (replica_sets, s2) = reflect(
            Api::<ReplicaSet>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(selector),
            "replicasets",
        );
        let (pods, s3) = reflect(
            Api::<Pod>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(selector),
            "pods",
        );
        let (events, s4) = reflect(
            Api::<Event>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            "events",
        );
        let stream = futures::stream::select_all([s1, s2, s3, s4]);
        Tracker {
            deployment,
            replica_sets,
            pods,
            events,
            stream,
            ready: Default::default(),
            name: name.to_string(),
            timeline: Vec::new(),
            started: Instant::now(),
            new_version: None,
            phase: Phase::Rollout,
        }
    }

    /// From now on, pods whose `container` runs `image` count as the new
    /// version in the timeline.
    pub fn set_new_version(&mut self, container: &str, image: &str) {
        self.new_version = Some((container.to_string(), image.to_string()));
    }

    /// Append a timeline sample when the ready counts changed (or always,
    /// with a mark). Nothing is sampled before every cache has listed, so
    /// the first sample has the real counts (not an empty cache's zeros).
    fn sample(&mut self, mark: Option<Mark>) {
        let Some((container, image)) = &self.new_version else {
            return;
        };
        if !self.is_ready() {
            return;
        }
        let (mut old_ready, mut new_ready) = (0, 0);
        for pod in self.pods.state() {
            if pod.metadata.deletion_timestamp.is_some() || !dep::pod_is_ready(&pod) {
                continue;
            }
            let is_new = pod.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| &c.name == container && c.image.as_deref() == Some(image.as_str()))
            });
            if is_new {
                new_ready += 1;
            } else {
                old_ready += 1;
            }
        }
        let available = self
            .deployment
            .state()
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(self.name.as_str()))
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            .unwrap_or(old_ready + new_ready);
        if mark.is_none()
            && self.timeline.last().is_some_and(|l| {
                l.old_ready == old_ready
                    && l.new_ready == new_ready
                    && l.available == available
                    && l.phase == self.phase
            })
        {
            return;
        }
        self.timeline.push(Sample {
            phase: self.phase,
            mark,
            ..Sample::new(
                self.started.elapsed().as_millis() as u64,
                old_ready,
                new_ready,
                available,
            )
        });
    }

    /// Mark a moment of the run in the timeline (a sample of its own), and
    /// from then on sample as `phase`.
    pub fn mark(&mut self, mark: Option<Mark>, phase: Phase) {
        if mark.is_some() {
            self.sample(mark);
        }
        self.phase = phase;
        self.sample(None);
    }

    /// Every cache has finished its first list.
    pub fn is_ready(&self) -> bool {
        self.ready.len() == 4
    }

    /// Take in every watch event already waiting, so a burst (hundreds of
    /// pod updates) is judged once, not once per event.
    fn drain(&mut self) {
        drain_ready(&mut self.stream, &mut self.ready);
    }

    /// Wait for a change or the tick, whichever comes first.
    pub async fn next_change(&mut self) {
        let tick = tokio::time::sleep(TICK);
        tokio::select! {
            item = self.stream.next() => {
                if let Some(Some(what)) = item {
                    self.ready.insert(what);
                }
                self.drain();
                self.sample(None);
            }
            _ = tick => {}
        }
    }

    /// The current state of the caches, events narrowed to our objects.
    pub fn snapshot(&self) -> Snapshot {
        let deployment = self
            .deployment
            .state()
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some(self.name.as_str()));
        let replica_sets = self.replica_sets.state();
        let pods = self.pods.state();
        let mut names: std::collections::BTreeSet<String> = [self.name.clone()].into();
        names.extend(replica_sets.iter().filter_map(|r| r.metadata.name.clone()));
        names.extend(pods.iter().filter_map(|p| p.metadata.name.clone()));
        let events = self
            .events
            .state()
            .into_iter()
            .filter(|e| {
                e.involved_object
                    .name
                    .as_ref()
                    .is_some_and(|n| names.contains(n))
            })
            .collect();
        Snapshot {
            deployment,
            replica_sets,
            pods,
            events,
        }
    }
}

/// How a followed phase ended.
#[derive(Debug, Clone)]
pub enum Ended {
    Succeeded(Progress),
    Failed {
        progress: Progress,
        cause: Cause,
        signals: Vec<Signal>,
    },
    TimedOut {
        progress: Progress,
        signals: Vec<Signal>,
    },
}

/// Prints a progress line whenever it changes.
struct Lines<'a> {
    out: &'a mut (dyn Write + Send),
    last: String,
}

impl Lines<'_> {
    fn show(&mut self, p: &Progress) {
        if p.name.is_empty() {
            return;
        }
        let mut line = p.line();
        // The verdict's line has nothing to wait for: the counts alone are
        // not news when they did not change.
        if p.waiting_for.is_empty() && self.last.starts_with(&format!("{line}  waiting for ")) {
            return;
        }
        if !p.waiting_for.is_empty() {
            line.push_str(&format!(
                "  waiting for {}",
                crate::text::one_line(&p.waiting_for)
            ));
        }
        if line != self.last {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
            self.last = line;
        }
    }
}

/// Follow the rollout until success, a fail-fast cause, someone else's
/// change of the template, or the deadline. Success needs kubectl's rule,
/// every new pod Ready in our own view, and the stability window.
pub async fn follow_rollout(
    tracker: &mut Tracker,
    exp: &Expectations,
    deadline: Instant,
    guards: &mut Guards,
    container: &str,
    out: &mut (dyn Write + Send),
) -> Ended {
    let mut lines = Lines {
        out,
        last: String::new(),
    };
    let mut first_unschedulable: BTreeMap<String, Instant> = BTreeMap::new();
    let mut restarts_seen: BTreeMap<(String, String), (i32, Instant)> = BTreeMap::new();
    loop {
        tracker.next_change().await;
        let now = Instant::now();
        let snap = tracker.snapshot();
        // Someone else's template: stop at once, theirs stays.
        if let Some(d) = &snap.deployment
            && let Ok(raw) = serde_json::to_value(&**d)
            && let Some(sig) =
                crate::superseded::superseded(&raw, exp.generation, &exp.template, container)
        {
            let progress = dep_progress(&snap, exp);
            return Ended::Failed {
                progress,
                cause: Cause::Superseded,
                signals: vec![sig],
            };
        }
        let new_pods: Vec<&Pod> = dep::new_replica_set(&snap, exp)
            .map(|rs| dep::pods_of(&snap, rs).into_iter().map(|p| &**p).collect())
            .unwrap_or_default();
        if tracker.is_ready()
            && let Some(b) = guards.crashed(new_pods.iter().copied(), now)
        {
            let progress = dep_progress(&snap, exp);
            lines.show(&progress);
            return Ended::Failed {
                progress,
                cause: b.cause,
                signals: b.signals,
            };
        }
        // Our clock for the grace periods: from when we first saw a state.
        let (_, signals) = dep::new_pod_signals(&snap, exp);
        let unschedulable: Vec<&str> = signals
            .iter()
            .filter(|s| matches!(s.cause, Cause::Unschedulable | Cause::ReplicaFailure))
            .map(|s| s.pod.as_str())
            .collect();
        first_unschedulable.retain(|p, _| unschedulable.contains(&p.as_str()));
        for p in &unschedulable {
            first_unschedulable.entry(p.to_string()).or_insert(now);
        }
        for (k, n) in dep::restart_counts(&snap, exp) {
            let e = restarts_seen.entry(k).or_insert((0, now));
            if e.0 != n {
                *e = (n, now);
            }
        }
        let mut timers = Timers {
            unschedulable_for: first_unschedulable
                .iter()
                .map(|(p, t)| (p.clone(), now - *t))
                .collect(),
            recently_restarted: restarts_seen
                .iter()
                .filter(|(_, (n, t))| *n > 0 && now - *t < RESTART_SETTLE)
                .map(|((p, _), _)| p.clone())
                .collect(),
        };
        if tracker.is_ready() {
            let new_uid = dep::new_replica_set(&snap, exp).and_then(|rs| rs.metadata.uid.clone());
            let old_pods: Vec<&Pod> = snap
                .pods
                .iter()
                .filter(|p| {
                    !p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| Some(&o.uid) == new_uid.as_ref())
                })
                .map(|p| &**p)
                .collect();
            if let Some((cause, signals)) = guards
                .unschedulable(
                    &new_pods,
                    &old_pods,
                    &signals,
                    &snap.events,
                    &mut timers,
                    now,
                )
                .await
            {
                let progress = dep_progress(&snap, exp);
                lines.show(&progress);
                return Ended::Failed {
                    progress,
                    cause,
                    signals,
                };
            }
            match dep::judge(&snap, exp, &timers) {
                Verdict::Waiting(mut p) => {
                    if let Some(note) = &guards.scale_up_note {
                        p.waiting_for = note.clone();
                    }
                    lines.show(&p);
                    guards.heartbeat(
                        &p.waiting_for,
                        &signals,
                        deadline,
                        exp.unschedulable_grace,
                        now,
                        lines.out,
                    );
                }
                Verdict::Succeeded(mut p) => {
                    match guards.stability.check(new_pods.iter().copied(), now) {
                        Check::Stable { shortest } => {
                            lines.show(&p);
                            let note = guards.stability.stable_note(shortest);
                            let _ = writeln!(lines.out, "{note}");
                            guards.stable_note = Some(note);
                            tracker.mark(Some(Mark::Complete), Phase::Bake);
                            return Ended::Succeeded(p);
                        }
                        Check::Waiting { pending, next } => {
                            p.waiting_for = guards.stability.waiting_for(pending, next);
                            lines.show(&p);
                            guards.heartbeat(
                                "the stability window",
                                &signals,
                                deadline,
                                exp.unschedulable_grace,
                                now,
                                lines.out,
                            );
                        }
                    }
                }
                Verdict::Failed {
                    progress,
                    cause,
                    signals,
                } => {
                    lines.show(&progress);
                    tracker.mark(Some(Mark::Verdict), Phase::Rollout);
                    return Ended::Failed {
                        progress,
                        cause,
                        signals,
                    };
                }
            }
        }
        if now >= deadline {
            let progress = match dep::judge(&snap, exp, &timers) {
                Verdict::Waiting(p)
                | Verdict::Succeeded(p)
                | Verdict::Failed { progress: p, .. } => p,
            };
            tracker.mark(Some(Mark::Verdict), Phase::Rollout);
            return Ended::TimedOut { progress, signals };
        }
    }
}

/// The progress numbers of a snapshot, whatever the verdict.
fn dep_progress(snap: &Snapshot, exp: &Expectations) -> Progress {
    match dep::judge(snap, exp, &Timers::default()) {
        Verdict::Waiting(p) | Verdict::Succeeded(p) | Verdict::Failed { progress: p, .. } => p,
    }
}

/// Keep watching the new pods for the bake period, evaluating the metric
/// gate (when given) every interval meanwhile and once at the end.
pub async fn follow_bake(
    tracker: &mut Tracker,
    exp: &Expectations,
    bake: Duration,
    mut gate: Option<&mut crate::analysis::Gate>,
    out: &mut (dyn Write + Send),
) -> Ended {
    let snap = tracker.snapshot();
    let baseline = dep::restart_counts(&snap, exp);
    let until = Instant::now() + bake;
    if let Some(g) = gate.as_deref_mut() {
        g.begin(Instant::now(), out);
    }
    loop {
        tracker.next_change().await;
        let snap = tracker.snapshot();
        let last = match dep::judge_bake(&snap, exp, &baseline) {
            Verdict::Failed {
                progress,
                cause,
                signals,
            } => {
                tracker.mark(Some(Mark::Verdict), Phase::Bake);
                return Ended::Failed {
                    progress,
                    cause,
                    signals,
                };
            }
            Verdict::Waiting(p) | Verdict::Succeeded(p) => p,
        };
        let ended = Instant::now() >= until;
        if let Some(g) = gate.as_deref_mut() {
            let failed = if ended {
                g.finish(out).await.is_some()
            } else {
                g.tick(Instant::now(), out).await.is_some()
            };
            if failed {
                tracker.mark(Some(Mark::Verdict), Phase::Bake);
                return Ended::Failed {
                    progress: last,
                    cause: Cause::MetricGate,
                    signals: vec![g.signal()],
                };
            }
        }
        if ended {
            let _ = writeln!(
                out,
                "baked for {}: no restarts, every new pod ready{}",
                humantime::format_duration(bake),
                if gate.is_some() {
                    ", metric gate passed"
                } else {
                    ""
                }
            );
            tracker.mark(Some(Mark::Verdict), Phase::Bake);
            return Ended::Succeeded(last);
        }
    }
}

/// Follow the rollback until kubectl's rule holds for the rollback's
/// generation, or the deadline passes. Returns the last progress and
/// whether it was confirmed.
pub async fn follow_rollback(
    tracker: &mut Tracker,
    generation: i64,
    deadline: Instant,
    out: &mut (dyn Write + Send),
) -> (bool, String) {
    let mut last = String::new();
    tracker.mark(None, Phase::Rollback);
    let ended = follow_rollback_until(tracker, generation, deadline, out, &mut last).await;
    tracker.mark(Some(Mark::RollbackEnd), Phase::Rollback);
    ended
}

async fn follow_rollback_until(
    tracker: &mut Tracker,
    generation: i64,
    deadline: Instant,
    out: &mut (dyn Write + Send),
    last: &mut String,
) -> (bool, String) {
    loop {
        tracker.next_change().await;
        let snap = tracker.snapshot();
        if let Some(d) = &snap.deployment {
            let status = d.status.clone().unwrap_or_default();
            let line = format!(
                "{}: rolling back: {} of {} replicas restored, {} available",
                d.metadata.name.as_deref().unwrap_or(""),
                status.updated_replicas.unwrap_or(0),
                d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                status.available_replicas.unwrap_or(0)
            );
            if line != *last {
                let _ = writeln!(out, "{line}");
                *last = line;
            }
            match dep::still_waiting_for(d, generation) {
                None => return (true, "every replica updated and available".into()),
                Some(w) if Instant::now() >= deadline => {
                    return (false, format!("still waiting for {w}"));
                }
                Some(_) => {}
            }
        } else if Instant::now() >= deadline {
            return (false, "the Deployment was not seen".into());
        }
    }
}

// ------------------------------------------------------------ other kinds

/// Live caches for a workload of any kind: its object(s) (as JSON), the
/// pods of a label selector, and the namespace's events. Used for
/// StatefulSets, DaemonSets and ReplicationControllers.
pub struct Watch {
    objects: Box<dyn Fn() -> Vec<serde_json::Value> + Send + Sync>,
    pods: Store<Pod>,
    events: Store<Event>,
    stream: SelectAll<BoxStream<'static, Option<&'static str>>>,
    ready: std::collections::BTreeSet<&'static str>,
}

/// One moment of a [`Watch`].
#[derive(Debug, Clone, Default)]
pub struct WatchSnapshot {
    pub objects: Vec<serde_json::Value>,
    pub pods: Vec<std::sync::Arc<Pod>>,
    pub events: Vec<std::sync::Arc<Event>>,
}

impl WatchSnapshot {
    /// The object named `name`.
    pub fn object(&self, name: &str) -> Option<&serde_json::Value> {
        self.objects.iter().find(|o| {
            o.pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                == Some(name)
        })
    }
}

impl Watch {
    /// Watch objects of kind `K` (the one named `name`, or all of the
    /// namespace when None), the pods of `pod_selector`, and events.
    pub fn start<K>(
        client: &Client,
        namespace: &str,
        name: Option<&str>,
        pod_selector: &str,
    ) -> Watch
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let config = match name {
            Some(n) => watcher::Config::default().fields(&format!("metadata.name={n}")),
            None => watcher::Config::default(),
        };
        let (objects, s1) = reflect(
            Api::<K>::namespaced(client.clone(), namespace),
            config,
            "objects",
        );
        let (pods, s2) = reflect(
            Api::<Pod>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(pod_selector),
            "pods",
        );
        let (events, s3) = reflect(
            Api::<Event>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            "events",
        );
        Watch {
            objects: Box::new(move || {
                objects
                    .state()
                    .iter()
                    .filter_map(|o| serde_json::to_value(&**o).ok())
                    .collect()
            }),
            pods,
            events,
            stream: futures::stream::select_all([s1, s2, s3]),
            ready: Default::default(),
        }
    }

    /// Every cache has finished its first list.
    pub fn is_ready(&self) -> bool {
        self.ready.len() == 3
    }

    fn drain(&mut self) {
        drain_ready(&mut self.stream, &mut self.ready);
    }

    /// Wait for a change or the tick, whichever comes first.
    pub async fn next_change(&mut self) {
        let tick = tokio::time::sleep(TICK);
        tokio::select! {
            item = self.stream.next() => {
                if let Some(Some(what)) = item {
                    self.ready.insert(what);
                }
                self.drain();
            }
            _ = tick => {}
        }
    }

    /// Wait until every cache has listed (or the deadline passed).
    pub async fn wait_ready(&mut self, deadline: Instant) -> bool {
        while !self.is_ready() {
            if Instant::now() >= deadline {
                return false;
            }
            self.next_change().await;
        }
        true
    }

    pub fn snapshot(&self) -> WatchSnapshot {
        WatchSnapshot {
            objects: (self.objects)(),
            pods: self.pods.state(),
            events: self.events.state(),
        }
    }
}

/// The grace and restart-settle clocks, kept on our own clock from when a
/// state was first seen (as [`follow_rollout`] does for Deployments).
#[derive(Default)]
pub struct Clocks {
    first_unschedulable: BTreeMap<String, Instant>,
    restarts_seen: BTreeMap<(String, String), (i32, Instant)>,
}

impl Clocks {
    /// Update from the new pods' signals and restart counts; the timers now.
    pub fn update(
        &mut self,
        signals: &[Signal],
        restarts: BTreeMap<(String, String), i32>,
    ) -> Timers {
        let now = Instant::now();
        let unschedulable: Vec<&str> = signals
            .iter()
            .filter(|s| s.cause == Cause::Unschedulable)
            .map(|s| s.pod.as_str())
            .collect();
        self.first_unschedulable
            .retain(|p, _| unschedulable.contains(&p.as_str()));
        for p in &unschedulable {
            self.first_unschedulable.entry(p.to_string()).or_insert(now);
        }
        for (k, n) in restarts {
            let e = self.restarts_seen.entry(k).or_insert((0, now));
            if e.0 != n {
                *e = (n, now);
            }
        }
        Timers {
            unschedulable_for: self
                .first_unschedulable
                .iter()
                .map(|(p, t)| (p.clone(), now - *t))
                .collect(),
            recently_restarted: self
                .restarts_seen
                .iter()
                .filter(|(_, (n, t))| *n > 0 && now - *t < RESTART_SETTLE)
                .map(|((p, _), _)| p.clone())
                .collect(),
        }
    }
}

type RestartCounts = BTreeMap<(String, String), i32>;

/// What a kind-specific judge sees of one snapshot: the new pods and how
/// far the controller is.
pub struct Judged {
    pub progress: Progress,
    /// None when the controller's rollout rule holds.
    pub waiting_for: Option<String>,
    pub new_pods: Vec<std::sync::Arc<Pod>>,
}

/// Follow a StatefulSet/DaemonSet rollout until success, a fail-fast
/// cause, or the deadline; then bake for `bake` (restarts or a permanent
/// cause of the new pods fail it).
#[allow(clippy::too_many_arguments)] // the loop's inputs; each is one rule's
pub async fn follow_pods<F, S>(
    watch: &mut Watch,
    limits: &crate::workload::Limits,
    deadline: Instant,
    bake: Duration,
    guards: &mut Guards,
    mut gate: Option<&mut crate::analysis::Gate>,
    out: &mut (dyn Write + Send),
    judge: F,
    superseded: S,
) -> Ended
where
    F: Fn(&WatchSnapshot) -> Judged,
    S: Fn(&WatchSnapshot) -> Option<Signal>,
{
    let mut lines = Lines {
        out,
        last: String::new(),
    };
    let mut clocks = Clocks::default();
    // When the bake started, and the restart counts then.
    let mut baked_from: Option<(Instant, RestartCounts)> = None;
    loop {
        watch.next_change().await;
        let now = Instant::now();
        let snap = watch.snapshot();
        let j = judge(&snap);
        if let Some(sig) = superseded(&snap) {
            return Ended::Failed {
                progress: j.progress,
                cause: Cause::Superseded,
                signals: vec![sig],
            };
        }
        let signals = crate::workload::signals_of(&j.new_pods, &snap.events);
        let restarts = crate::workload::restart_counts(&j.new_pods);
        let mut timers = clocks.update(&signals, restarts.clone());
        if watch.is_ready()
            && baked_from.is_none()
            && let Some(b) = guards.crashed(j.new_pods.iter().map(|p| &**p), now)
        {
            lines.show(&j.progress);
            return Ended::Failed {
                progress: j.progress,
                cause: b.cause,
                signals: b.signals,
            };
        }
        if watch.is_ready() && baked_from.is_none() {
            let new_names: Vec<&str> = j
                .new_pods
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .collect();
            let old_pods: Vec<&Pod> = snap
                .pods
                .iter()
                .filter(|p| !new_names.contains(&p.metadata.name.as_deref().unwrap_or_default()))
                .map(|p| &**p)
                .collect();
            let new_pods: Vec<&Pod> = j.new_pods.iter().map(|p| &**p).collect();
            if let Some((cause, signals)) = guards
                .unschedulable(
                    &new_pods,
                    &old_pods,
                    &signals,
                    &snap.events,
                    &mut timers,
                    now,
                )
                .await
            {
                lines.show(&j.progress);
                return Ended::Failed {
                    progress: j.progress,
                    cause,
                    signals,
                };
            }
        }
        if let Some((since, baseline)) = &baked_from {
            let restarted = restarts
                .iter()
                .any(|(k, v)| baseline.get(k).is_some_and(|b| v > b));
            let permanent = signals.iter().find(|s| s.cause.is_permanent());
            if restarted || permanent.is_some() {
                let cause = permanent.map(|s| s.cause).unwrap_or(Cause::CrashLoop);
                let sigs: Vec<Signal> = signals
                    .iter()
                    .filter(|s| {
                        s.cause == cause
                            || (restarted && matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
                    })
                    .cloned()
                    .collect();
                return Ended::Failed {
                    progress: j.progress,
                    cause,
                    signals: sigs,
                };
            }
            let ended = since.elapsed() >= bake;
            if let Some(g) = gate.as_deref_mut() {
                let failed = if ended {
                    g.finish(lines.out).await.is_some()
                } else {
                    g.tick(Instant::now(), lines.out).await.is_some()
                };
                if failed {
                    return Ended::Failed {
                        progress: j.progress,
                        cause: Cause::MetricGate,
                        signals: vec![g.signal()],
                    };
                }
            }
            if ended {
                let _ = writeln!(
                    lines.out,
                    "baked for {}: no restarts, every new pod ready{}",
                    humantime::format_duration(bake),
                    if gate.is_some() {
                        ", metric gate passed"
                    } else {
                        ""
                    }
                );
                return Ended::Succeeded(j.progress);
            }
            continue;
        }
        if watch.is_ready() {
            match crate::workload::judge_pods(
                j.progress,
                j.waiting_for,
                signals.clone(),
                limits,
                &timers,
            ) {
                Verdict::Waiting(mut p) => {
                    if let Some(note) = &guards.scale_up_note {
                        p.waiting_for = note.clone();
                    }
                    lines.show(&p);
                    guards.heartbeat(
                        &p.waiting_for,
                        &signals,
                        deadline,
                        limits.unschedulable_grace,
                        now,
                        lines.out,
                    );
                }
                Verdict::Succeeded(mut p) => {
                    let new_pods = j.new_pods.iter().map(|p| &**p);
                    match guards.stability.check(new_pods, now) {
                        Check::Stable { shortest } => {
                            lines.show(&p);
                            let note = guards.stability.stable_note(shortest);
                            let _ = writeln!(lines.out, "{note}");
                            guards.stable_note = Some(note);
                        }
                        Check::Waiting { pending, next } => {
                            p.waiting_for = guards.stability.waiting_for(pending, next);
                            lines.show(&p);
                            guards.heartbeat(
                                "the stability window",
                                &signals,
                                deadline,
                                limits.unschedulable_grace,
                                now,
                                lines.out,
                            );
                            if now >= deadline {
                                return Ended::TimedOut {
                                    progress: p,
                                    signals,
                                };
                            }
                            continue;
                        }
                    }
                    if bake.is_zero() {
                        return Ended::Succeeded(p);
                    }
                    let _ = writeln!(
                        lines.out,
                        "rollout complete; baking for {}",
                        humantime::format_duration(bake)
                    );
                    baked_from = Some((Instant::now(), restarts));
                    if let Some(g) = gate.as_deref_mut() {
                        g.begin(Instant::now(), lines.out);
                    }
                    continue;
                }
                Verdict::Failed {
                    progress,
                    cause,
                    signals,
                } => {
                    lines.show(&progress);
                    return Ended::Failed {
                        progress,
                        cause,
                        signals,
                    };
                }
            }
        }
        if Instant::now() >= deadline {
            let j = judge(&snap);
            let mut progress = j.progress;
            progress.waiting_for = j.waiting_for.unwrap_or_default();
            return Ended::TimedOut { progress, signals };
        }
    }
}
