//! Cluster-side timestamps: a subscriber to kubesim's store changes, in the
//! bench process, that records the real `Instant` at which each deciding
//! change reached it (the patch to the new image, the deciding event, the
//! Deployment becoming complete, the template going back to the old image,
//! the old version complete again), and a poller of kubesim's per-User-Agent
//! request counters that records when the first request was counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

/// What decides a scenario's outcome in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decide {
    /// Every Deployment complete on the new image (the last one decides).
    Complete,
    /// The kubelet's first `Failed` event (the pull error).
    PullFailed,
    /// A new pod's container reaches this restart count.
    Restarts(i64),
    /// The scheduler's first `FailedScheduling` event.
    FailedScheduling,
}

/// Instants recorded by the observer. Vectors are per Deployment.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    pub patched: Vec<Option<Instant>>,
    pub completed: Vec<Option<Instant>>,
    pub rolled_back: Vec<Option<Instant>>,
    pub healthy_again: Vec<Option<Instant>>,
    pub decided: Option<Instant>,
    /// Changes the subscriber missed (broadcast lag); should stay 0.
    pub lagged: u64,
}

impl Marks {
    fn new(n: usize) -> Self {
        Self {
            patched: vec![None; n],
            completed: vec![None; n],
            rolled_back: vec![None; n],
            healthy_again: vec![None; n],
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
}

/// kubectl's rollout-status rule on a stored Deployment.
pub fn complete(d: &Value) -> bool {
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

fn image(d: &Value) -> &str {
    d.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub struct Observer {
    pub marks: Arc<Mutex<Marks>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Subscribe now (before the tool starts) and record from then on.
    pub fn start(
        h: &kubesim::Handle,
        names: &[String],
        old_image: &str,
        new_image: &str,
        decide: Decide,
    ) -> Self {
        let mut rx = h.store().subscribe();
        let marks = Arc::new(Mutex::new(Marks::new(names.len())));
        let idx: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let (old, new) = (old_image.to_string(), new_image.to_string());
        let m = marks.clone();
        let task = tokio::spawn(async move {
            loop {
                let c = match rx.recv().await {
                    Ok(c) => c,
                    Err(RecvError::Lagged(n)) => {
                        m.lock().expect("marks").lagged += n;
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let now = Instant::now();
                let obj = &c.object;
                let mut mk = m.lock().expect("marks");
                let any_patched = mk.patched.iter().any(Option::is_some);
                match c.res.kind {
                    "Deployment" => {
                        let Some(&i) = idx.get(&c.name) else { continue };
                        let img = image(obj);
                        if img == new {
                            mk.patched[i].get_or_insert(now);
                            if complete(obj) && mk.completed[i].is_none() {
                                mk.completed[i] = Some(now);
                                if decide == Decide::Complete
                                    && mk.completed.iter().all(Option::is_some)
                                {
                                    mk.decided.get_or_insert(now);
                                }
                            }
                        } else if img == old && mk.patched[i].is_some() {
                            mk.rolled_back[i].get_or_insert(now);
                            if complete(obj) && mk.healthy_again[i].is_none() {
                                mk.healthy_again[i] = Some(now);
                            }
                        }
                    }
                    "Event" if any_patched => {
                        let reason = obj["reason"].as_str().unwrap_or("");
                        let hit = match decide {
                            Decide::PullFailed => reason == "Failed",
                            Decide::FailedScheduling => reason == "FailedScheduling",
                            _ => false,
                        };
                        if hit {
                            mk.decided.get_or_insert(now);
                        }
                    }
                    "Pod" if any_patched => {
                        if let Decide::Restarts(n) = decide
                            && obj
                                .pointer("/spec/containers/0/image")
                                .and_then(Value::as_str)
                                == Some(new.as_str())
                        {
                            let reached = obj
                                .pointer("/status/containerStatuses")
                                .and_then(Value::as_array)
                                .is_some_and(|cs| {
                                    cs.iter()
                                        .any(|s| s["restartCount"].as_i64().unwrap_or(0) >= n)
                                });
                            if reached {
                                mk.decided.get_or_insert(now);
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        Self { marks, task }
    }

    pub fn marks(&self) -> Marks {
        self.marks.lock().expect("marks").clone()
    }

    /// Wait (bounded) until `f` holds on the marks.
    pub async fn wait_for(&self, h: &kubesim::Handle, limit: Duration, f: impl Fn(&Marks) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = h.store().changed.notified();
            if f(&self.marks()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
            // The observer task may not have seen the change yet.
            tokio::task::yield_now().await;
        }
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
    pub fn start(h: &kubesim::Handle) -> Self {
        let sim = h.sim.clone();
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
