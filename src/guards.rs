//! Rules every kind's follow loop applies to its new pods, beside the kind's
//! own rollout rule: the stability window, unschedulable pods decided the
//! moment it is known they can never be placed (or followed through the
//! cluster autoscaler), and a heartbeat line while nothing changes.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::time::Instant;

use crate::model::Timers;
use crate::model::{Cause, Signal};
use crate::preflight::capacity;
use crate::stability::{Broken, Stability};

/// How long a wait may stay silent before a heartbeat line.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// What was learnt about one unschedulable new pod.
#[derive(Debug, Clone, PartialEq)]
enum Placement {
    /// No node can take it, even after the rollout frees what it can.
    Never,
    /// It could fit later, or we cannot tell (no permission to see nodes).
    Maybe,
}

/// The cluster autoscaler's word on a pod, from its events.
#[derive(Debug, Clone, PartialEq)]
enum ScaleUp {
    Triggered(String),
    NotTriggered(String),
}

/// The guards of one workload's follow loop.
pub struct Guards {
    pub stability: Stability,
    client: Client,
    namespace: String,
    scale_up_grace: Duration,
    /// Old pods the strategy removes before any new pod is available.
    max_unavailable: usize,
    placement: BTreeMap<String, Placement>,
    /// Whether the cluster runs an autoscaler (its status ConfigMap); None
    /// when it could not be read.
    autoscaler: Option<bool>,
    autoscaler_checked: bool,
    first_unschedulable: BTreeMap<String, Instant>,
    /// The waiting sentence of the last heartbeat-worthy state and when it
    /// last changed or was said.
    quiet_since: Instant,
    last_state: String,
    /// Said on the progress line while the autoscaler adds a node.
    pub scale_up_note: Option<String>,
    /// How long the new pods were observed stable, once they were.
    pub stable_note: Option<String>,
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn scale_up_of(events: &[Arc<Event>], pod: &str) -> Option<ScaleUp> {
    events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Pod")
                && e.involved_object.name.as_deref() == Some(pod)
        })
        .filter_map(|e| {
            let msg = e.message.clone().unwrap_or_default();
            let t = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0));
            match e.reason.as_deref() {
                Some("TriggeredScaleUp") => Some((t, ScaleUp::Triggered(msg))),
                Some("NotTriggerScaleUp") => Some((t, ScaleUp::NotTriggered(msg))),
                _ => None,
            }
        })
        .max_by_key(|(t, _)| *t)
        .map(|(_, s)| s)
}

impl Guards {
    pub fn new(
        client: Client,
        namespace: &str,
        stable_window: Duration,
        scale_up_grace: Duration,
        max_unavailable: usize,
    ) -> Guards {
        Guards {
            max_unavailable,
            stability: Stability::new(stable_window),
            client,
            namespace: namespace.to_string(),
            scale_up_grace,
            placement: BTreeMap::new(),
            autoscaler: None,
            autoscaler_checked: false,
            first_unschedulable: BTreeMap::new(),
            quiet_since: Instant::now(),
            last_state: String::new(),
            scale_up_note: None,
            stable_note: None,
        }
    }

    /// A crash inside a stability window.
    pub fn crashed<'a>(
        &mut self,
        new_pods: impl IntoIterator<Item = &'a Pod>,
        now: Instant,
    ) -> Option<Broken> {
        self.stability.observe(new_pods, now)
    }

    /// Decide unschedulable new pods: fail now when no node can ever take one
    /// (and no autoscaler could add one), or when the autoscaler said it will
    /// not scale up; hold the grace clock while it is adding a node. Edits
    /// `timers` so the kind's rule sees the autoscaler's budget.
    pub async fn unschedulable(
        &mut self,
        new_pods: &[&Pod],
        old_pods: &[&Pod],
        signals: &[Signal],
        events: &[Arc<Event>],
        timers: &mut Timers,
        now: Instant,
    ) -> Option<(Cause, Vec<Signal>)> {
        let stuck: Vec<&Signal> = signals
            .iter()
            .filter(|s| s.cause == Cause::Unschedulable)
            .collect();
        self.first_unschedulable
            .retain(|p, _| stuck.iter().any(|s| &s.pod == p));
        self.scale_up_note = None;
        if stuck.is_empty() {
            return None;
        }
        for s in &stuck {
            self.first_unschedulable.entry(s.pod.clone()).or_insert(now);
        }
        if !self.autoscaler_checked {
            self.autoscaler_checked = true;
            self.autoscaler = self.autoscaler_present().await;
        }
        let autoscaler_events = stuck.iter().any(|s| scale_up_of(events, &s.pod).is_some());
        // Unknown (its status cannot be read) counts as present: its word
        // comes as events, and unschedulable-grace bounds the wait.
        let autoscaled = self.autoscaler != Some(false) || autoscaler_events;
        for s in &stuck {
            // The scheduler's words stay exact; ours follow as more evidence.
            let fail = |extra: String| {
                let mut ours = (*s).clone();
                ours.message = extra;
                Some((Cause::Unschedulable, vec![(*s).clone(), ours]))
            };
            match scale_up_of(events, &s.pod) {
                Some(ScaleUp::NotTriggered(why)) => {
                    // No node will be added; the rollout itself may still
                    // free the room (an old pod terminating, maxUnavailable):
                    // at once only when even that cannot place the pod.
                    if self.placement_of(&s.pod, new_pods, old_pods).await == Placement::Never {
                        return fail(format!("the cluster autoscaler will not add a node: {why}"));
                    }
                    continue;
                }
                Some(ScaleUp::Triggered(what)) => {
                    let since = self.first_unschedulable[&s.pod];
                    let waited = now.saturating_duration_since(since);
                    if waited >= self.scale_up_grace {
                        return fail(format!(
                            "the cluster autoscaler triggered a scale-up ({what}) but no node took the pod within scale-up-grace ({})",
                            humantime::format_duration(self.scale_up_grace)
                        ));
                    }
                    // The kind's grace clock waits for the autoscaler.
                    timers.unschedulable_for.remove(&s.pod);
                    self.scale_up_note = Some(format!(
                        "the cluster autoscaler to add a node ({what}); giving up in {}s",
                        (self.scale_up_grace - waited).as_secs()
                    ));
                    continue;
                }
                None => {}
            }
            if autoscaled {
                // Its verdict (TriggeredScaleUp / NotTriggerScaleUp) is on its way.
                continue;
            }
            if self.placement_of(&s.pod, new_pods, old_pods).await == Placement::Never {
                return fail(
                    "no node can take it even after the rollout frees the capacity it can free, and the cluster has no autoscaler".into(),
                );
            }
        }
        None
    }

    /// Whether the pending pod `name` could be placed once the rollout
    /// frees what it can (assessed once per pod).
    async fn placement_of(
        &mut self,
        name: &str,
        new_pods: &[&Pod],
        old_pods: &[&Pod],
    ) -> Placement {
        if let Some(p) = self.placement.get(name) {
            return p.clone();
        }
        let placement = match new_pods.iter().find(|p| pod_name(p) == name) {
            Some(pod) => self.assess(pod, new_pods, old_pods).await,
            None => Placement::Maybe,
        };
        self.placement.insert(name.to_string(), placement.clone());
        placement
    }

    /// The cluster autoscaler's status ConfigMap in kube-system: Some(true)
    /// when present, Some(false) when absent, None when it cannot be read.
    async fn autoscaler_present(&self) -> Option<bool> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "kube-system");
        match api.get_opt("cluster-autoscaler-status").await {
            Ok(found) => Some(found.is_some()),
            Err(e) => {
                tracing::debug!("cannot read the cluster autoscaler's status: {e}");
                None
            }
        }
    }

    async fn assess(&self, pending: &Pod, new_pods: &[&Pod], old_pods: &[&Pod]) -> Placement {
        let Some(spec) = pending.spec.as_ref() else {
            return Placement::Maybe;
        };
        let nodes: Vec<Node> = match Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(l) => l.items,
            Err(e) => {
                tracing::debug!("cannot list nodes to judge an unschedulable pod: {e}");
                return Placement::Maybe;
            }
        };
        let pods: Vec<Pod> = match Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(l) => l.items,
            Err(_) => match Api::<Pod>::namespaced(self.client.clone(), &self.namespace)
                .list(&ListParams::default())
                .await
            {
                // Other namespaces' pods unseen: the fit is optimistic.
                Ok(l) => l.items,
                Err(_) => return Placement::Maybe,
            },
        };
        let terminating: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .collect();
        let old: Vec<&Pod> = old_pods
            .iter()
            .copied()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        // The strategy removes up to maxUnavailable old pods at once, and
        // one more per new pod that is placed and becomes available.
        let placed_not_ready = new_pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .filter(|p| !crate::k8s::objects::pod_is_ready(p))
            .count();
        let more = placed_not_ready + self.max_unavailable;
        if capacity::could_fit(&nodes, &pods, spec, &terminating, &old, more) {
            Placement::Maybe
        } else {
            Placement::Never
        }
    }

    /// One line when a wait has been silent for [`HEARTBEAT`]: what we wait
    /// for and when we give up. `state` is the waiting sentence now.
    pub fn heartbeat(
        &mut self,
        state: &str,
        signals: &[Signal],
        deadline: Instant,
        grace: Duration,
        now: Instant,
        out: &mut (dyn Write + Send),
    ) {
        if state != self.last_state {
            self.last_state = state.to_string();
            self.quiet_since = now;
            return;
        }
        if now.saturating_duration_since(self.quiet_since) < HEARTBEAT || state.is_empty() {
            return;
        }
        self.quiet_since = now;
        let to_deadline = deadline.saturating_duration_since(now).as_secs();
        let pending: Vec<&Signal> = signals
            .iter()
            .filter(|s| s.cause == Cause::Unschedulable)
            .collect();
        let line = if let Some(note) = &self.scale_up_note {
            format!("still waiting for {note}")
        } else if let Some(first) = pending.first() {
            let waited = self
                .first_unschedulable
                .values()
                .min()
                .map(|t| now.saturating_duration_since(*t))
                .unwrap_or_default();
            let left = grace.saturating_sub(waited).as_secs().min(to_deadline);
            format!(
                "{} new pod{} Pending: {} — giving up in {left}s unless it is scheduled",
                pending.len(),
                if pending.len() == 1 { "" } else { "s" },
                first.message
            )
        } else {
            format!("still waiting for {state} — giving up in {to_deadline}s (timeout)")
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
