//! Cluster-side timestamps: an observer, in the bench process, of every
//! change to the Deployments, pods and events of the scenario, recording the
//! real `Instant` at which each deciding change reached it (the patch to the
//! new image, the deciding event, the Deployment becoming complete, the
//! template going back to the old image, the old version complete again).
//! The changes come from kubesim's store (in-process) or from a watch of
//! the cluster ([`crate::cluster`]). And a poller of kubesim's per-User-Agent
//! request counters that records when the first request was counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, mpsc};

/// What decides a scenario's outcome in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decide {
    /// Every Deployment complete on the new image (the last one decides).
    Complete,
    /// The first event with this reason (`Failed`: the pull error;
    /// `FailedScheduling`; `NotTriggerScaleUp`).
    Event(&'static str),
    /// A new pod's container exits for the first time (terminated state, or
    /// a restart already counted).
    FirstExit,
    /// A new pod becomes Ready (it serves traffic from then on: a build
    /// that is up but answers with errors).
    FirstReady,
}

/// One change as the observer sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub kind: String,
    pub name: String,
    pub object: Arc<Value>,
    /// The object was deleted (a DELETED watch event).
    pub deleted: bool,
}

/// Instants recorded by the observer. Vectors are per Deployment.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    pub patched: Vec<Option<Instant>>,
    pub completed: Vec<Option<Instant>>,
    pub rolled_back: Vec<Option<Instant>>,
    pub healthy_again: Vec<Option<Instant>>,
    pub decided: Option<Instant>,
    /// rollguard's `<name>-canary` seen on the new image, and marked for deletion.
    pub canary: Vec<Option<Instant>>,
    pub canary_removed: Vec<Option<Instant>>,
    /// The most pods of the new version live at once (the exposure).
    pub peak_new_pods: usize,
    /// Each Deployment is complete on the old image right now (set-up).
    pub old_complete: Vec<bool>,
    /// Changes the source missed (broadcast lag); should stay 0.
    pub lagged: u64,
}

impl Marks {
    fn new(n: usize) -> Self {
        Self {
            patched: vec![None; n],
            completed: vec![None; n],
            rolled_back: vec![None; n],
            healthy_again: vec![None; n],
            canary: vec![None; n],
            canary_removed: vec![None; n],
            old_complete: vec![false; n],
            ..Default::default()
        }
    }

    /// The last of all instants, once every one is set.
    pub fn all(v: &[Option<Instant>]) -> Option<Instant> {
        if v.iter().all(Option::is_some) {
            v.iter().flatten().max().copied()
        } else {
            None
        }
    }

    pub fn first(v: &[Option<Instant>]) -> Option<Instant> {
        v.iter().flatten().min().copied()
    }

    /// The slowest Deployment's patch → complete.
    pub fn slowest_rollout(&self) -> Option<Duration> {
        self.patched
            .iter()
            .zip(&self.completed)
            .map(|(p, c)| match (p, c) {
                (Some(p), Some(c)) if c >= p => Some(*c - *p),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }
}

fn image(d: &Value) -> &str {
    d.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn exited(s: &Value) -> bool {
    s["restartCount"].as_i64().unwrap_or(0) > 0
        || s.pointer("/state/terminated").is_some_and(Value::is_object)
        || s.pointer("/lastState/terminated")
            .is_some_and(Value::is_object)
}

/// The pod's Ready condition is True.
fn ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

pub struct Observer {
    pub marks: Arc<Mutex<Marks>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Record from `rx` on (start it before the tool does).
    pub fn start(
        mut rx: mpsc::UnboundedReceiver<Seen>,
        lagged: Arc<std::sync::atomic::AtomicU64>,
        names: &[String],
        old_image: &str,
        new_image: &str,
        decide: Decide,
    ) -> Self {
        let marks = Arc::new(Mutex::new(Marks::new(names.len())));
        let changed = Arc::new(Notify::new());
        let idx: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let (old, new) = (old_image.to_string(), new_image.to_string());
        let m = marks.clone();
        let ch = changed.clone();
        let task = tokio::spawn(async move {
            // Pod name → a live pod of the new version.
            let mut live_new: HashMap<String, bool> = HashMap::new();
            while let Some(c) = rx.recv().await {
                let now = c.at;
                let obj = &c.object;
                let mut mk = m.lock().expect("marks");
                mk.lagged = lagged.load(std::sync::atomic::Ordering::Relaxed);
                let any_patched =
                    mk.patched.iter().any(Option::is_some) || mk.canary.iter().any(Option::is_some);
                match c.kind.as_str() {
                    "Deployment"
                        if let Some(&i) =
                            c.name.strip_suffix("-canary").and_then(|n| idx.get(n))
                            && image(obj) == new =>
                    {
                        mk.canary[i].get_or_insert(now);
                        if c.deleted
                            || obj
                                .pointer("/metadata/deletionTimestamp")
                                .is_some_and(Value::is_string)
                        {
                            mk.canary_removed[i].get_or_insert(now);
                        }
                    }
                    "Deployment" => {
                        let Some(&i) = idx.get(&c.name) else { continue };
                        let img = image(obj);
                        let done = kubesim::rollout_complete(obj);
                        mk.old_complete[i] = img == old && done;
                        if img == new {
                            mk.patched[i].get_or_insert(now);
                            if done && mk.completed[i].is_none() {
                                mk.completed[i] = Some(now);
                                if decide == Decide::Complete
                                    && mk.completed.iter().all(Option::is_some)
                                {
                                    mk.decided.get_or_insert(now);
                                }
                            }
                        } else if img == old && mk.patched[i].is_some() {
                            mk.rolled_back[i].get_or_insert(now);
                            if done && mk.healthy_again[i].is_none() {
                                mk.healthy_again[i] = Some(now);
                            }
                        }
                    }
                    "Event" if any_patched => {
                        if let Decide::Event(r) = decide
                            && obj["reason"].as_str() == Some(r)
                        {
                            mk.decided.get_or_insert(now);
                        }
                    }
                    "Pod" if any_patched => {
                        let new_pod = obj
                            .pointer("/spec/containers/0/image")
                            .and_then(Value::as_str)
                            == Some(new.as_str());
                        let statuses = obj
                            .pointer("/status/containerStatuses")
                            .and_then(Value::as_array);
                        let hit = new_pod
                            && (statuses.is_some_and(|cs| {
                                decide == Decide::FirstExit && cs.iter().any(exited)
                            }) || (decide == Decide::FirstReady && ready(obj)));
                        if hit {
                            mk.decided.get_or_insert(now);
                        }
                        let live = !c.deleted
                            && obj
                                .pointer("/metadata/deletionTimestamp")
                                .is_none_or(Value::is_null);
                        live_new.insert(c.name.clone(), new_pod && live);
                        let n = live_new.values().filter(|v| **v).count();
                        mk.peak_new_pods = mk.peak_new_pods.max(n);
                    }
                    _ => {}
                }
                drop(mk);
                ch.notify_waiters();
            }
        });
        Self {
            marks,
            changed,
            task,
        }
    }

    pub fn marks(&self) -> Marks {
        self.marks.lock().expect("marks").clone()
    }

    /// Wait (bounded) until `f` holds on the marks; whether it does.
    pub async fn wait_for(&self, limit: Duration, f: impl Fn(&Marks) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if f(&self.marks()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return f(&self.marks());
            }
        }
    }

    /// Forget the marks of the set-up (keeps the current state).
    pub fn rearm(&self) {
        let mut mk = self.marks.lock().expect("marks");
        let old_complete = std::mem::take(&mut mk.old_complete);
        let n = old_complete.len();
        *mk = Marks::new(n);
        mk.old_complete = old_complete;
    }

    pub fn stop(self) -> Marks {
        self.task.abort();
        self.marks()
    }
}

/// Records the first instant at which kubesim has counted a request from
/// any User-Agent (metrics are reset before the tool starts, and the bench
/// itself talks to the store directly, so it is the tool's). kubesim counts
/// a request when its response is ready, and this polls every millisecond:
/// the value is the time to the first answered request, ±1 ms.
pub struct FirstRequest {
    pub at: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FirstRequest {
    pub fn start(sim: Arc<kubesim::Sim>) -> Self {
        let at = Arc::new(Mutex::new(None));
        let a = at.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                if sim.metrics.snapshot().values().any(|s| s.requests > 0) {
                    *a.lock().expect("first request") = Some(Instant::now());
                    return;
                }
            }
        });
        Self { at, task }
    }

    pub fn stop(self) -> Option<Instant> {
        self.task.abort();
        *self.at.lock().expect("first request")
    }
}
