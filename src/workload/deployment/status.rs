//! A Deployment's rules on one snapshot of its watches: kubectl's rollout
//! rule, the new ReplicaSet and its pods, fail fast on their signals, the
//! unready-during-bake finding. Pure.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::Value;

use crate::diagnose;
use crate::k8s::objects::pod_is_ready;
use crate::model::{Cause, Progress, Signal, Timers, Verdict};

use super::plan::replica_set_for_template;

/// What we know from our own patch (the response), to judge against.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub deployment_uid: String,
    /// `metadata.generation` our patch produced.
    pub generation: i64,
    /// `spec.template` as stored after our patch.
    pub template: Value,
    /// The Progressing condition as it was in the patch response: a
    /// ProgressDeadlineExceeded equal to it is stale.
    pub baseline_progressing: Option<DeploymentCondition>,
    pub restart_threshold: i32,
    pub unschedulable_grace: Duration,
}

impl Expectations {
    /// What to expect of the Deployment `raw` as our write returned it,
    /// judged within `limits`.
    pub fn of(
        raw: &Value,
        baseline_progressing: Option<DeploymentCondition>,
        limits: crate::workload::Limits,
    ) -> Self {
        let meta = |key: &str| raw.pointer(&format!("/metadata/{key}"));
        Expectations {
            deployment_uid: meta("uid").and_then(Value::as_str).unwrap_or("").into(),
            generation: meta("generation").and_then(Value::as_i64).unwrap_or(0),
            template: raw
                .pointer("/spec/template")
                .cloned()
                .unwrap_or(Value::Null),
            baseline_progressing,
            restart_threshold: limits.restart_threshold,
            unschedulable_grace: limits.unschedulable_grace,
        }
    }
}

/// What the watches have seen, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub deployment: Option<Arc<Deployment>>,
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    pub pods: Vec<Arc<Pod>>,
    pub events: Vec<Arc<Event>>,
}

/// The new ReplicaSet and its pods.
pub fn new_replica_set<'a>(snap: &'a Snapshot, exp: &Expectations) -> Option<&'a Arc<ReplicaSet>> {
    replica_set_for_template(&exp.deployment_uid, &snap.replica_sets, &exp.template)
}

pub fn pods_of<'a>(snap: &'a Snapshot, rs: &ReplicaSet) -> Vec<&'a Arc<Pod>> {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let mut pods: Vec<&Arc<Pod>> = snap
        .pods
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

/// Signals of the new ReplicaSet's pods.
pub fn new_pod_signals(snap: &Snapshot, exp: &Expectations) -> (usize, Vec<Signal>) {
    match new_replica_set(snap, exp) {
        None => (0, Vec::new()),
        Some(rs) => {
            let pods = pods_of(snap, rs);
            let mut signals = diagnose::pods_signals(pods.iter().map(|p| &***p), &snap.events);
            // The ReplicaSet cannot create pods (quota, admission): FailedCreate.
            signals.extend(diagnose::replica_set_signals(rs, &snap.events));
            (pods.len(), signals)
        }
    }
}

/// The counts kubectl shows for the Deployment, and the new ReplicaSet's readiness.
pub fn progress(snap: &Snapshot, exp: &Expectations) -> Progress {
    let Some(d) = &snap.deployment else {
        return Progress {
            waiting_for: "the Deployment to be seen".into(),
            ..Default::default()
        };
    };
    let status = d.status.clone().unwrap_or_default();
    let new_ready = new_replica_set(snap, exp)
        .and_then(|rs| rs.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    Progress {
        name: d.metadata.name.clone().unwrap_or_default(),
        desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        current: status.replicas.unwrap_or(0),
        up_to_date: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        new_ready,
        waiting_for: String::new(),
    }
}

pub(super) fn progressing(d: &Deployment) -> Option<&DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
}

fn same_condition(a: &DeploymentCondition, b: &DeploymentCondition) -> bool {
    a.reason == b.reason
        && a.status == b.status
        && a.message == b.message
        && a.last_update_time == b.last_update_time
        && a.last_transition_time == b.last_transition_time
}

/// kubectl's rollout rule (with observedGeneration ≥ our generation):
/// what is still awaited, or None when the rollout is complete.
pub fn still_waiting_for(d: &Deployment, min_generation: i64) -> Option<String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if observed < generation.max(min_generation) {
        return Some("the Deployment controller to observe the change".into());
    }
    if updated < desired {
        return Some(format!("{} more to be updated", desired - updated));
    }
    if replicas > updated {
        let old = replicas - updated;
        return Some(format!(
            "{old} old replica{} to terminate",
            if old == 1 { "" } else { "s" }
        ));
    }
    if available < updated {
        return Some(format!("{} more to become available", updated - available));
    }
    None
}

/// Judge a snapshot during the rollout: fail fast on the new pods, else
/// kubectl's rule, else waiting.
pub fn judge(snap: &Snapshot, exp: &Expectations, timers: &Timers) -> Verdict {
    let (_, signals) = new_pod_signals(snap, exp);
    judge_seen(snap, exp, timers, progress(snap, exp), &signals)
}

/// [`judge`] with the snapshot's progress and new-pod signals already
/// read (the follow loop reads them once per turn).
pub fn judge_seen(
    snap: &Snapshot,
    exp: &Expectations,
    timers: &Timers,
    mut p: Progress,
    signals: &[Signal],
) -> Verdict {
    let Some(d) = &snap.deployment else {
        return Verdict::Waiting(p);
    };
    let fatal: Vec<Signal> = signals
        .iter()
        .filter(|s| match s.cause {
            c if c.is_permanent() => true,
            Cause::CrashLoop | Cause::OomKilled => s.restarts >= exp.restart_threshold,
            // Keyed by pod, or by the ReplicaSet for FailedCreate.
            Cause::Unschedulable | Cause::ReplicaFailure => timers
                .unschedulable_for
                .get(&s.pod)
                .is_some_and(|t| *t >= exp.unschedulable_grace),
            _ => false,
        })
        .cloned()
        .collect();
    if let Some(first) = fatal.iter().min_by_key(|s| s.cause) {
        let cause = first.cause;
        let related = signals
            .iter()
            .filter(|s| s.cause == cause)
            .cloned()
            .collect();
        return Verdict::Failed {
            progress: p,
            cause,
            signals: related,
        };
    }
    let observed = d
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    if let Some(c) = progressing(d)
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        && observed >= exp.generation
        && exp
            .baseline_progressing
            .as_ref()
            .is_none_or(|b| !same_condition(b, c))
    {
        let mut sigs = signals.to_vec();
        sigs.push(Signal {
            cause: Cause::ProgressDeadline,
            pod: String::new(),
            container: None,
            message: c
                .message
                .clone()
                .unwrap_or_else(|| "ProgressDeadlineExceeded".into()),
            restarts: 0,
            exit_code: None,
        });
        return Verdict::Failed {
            progress: p,
            cause: Cause::ProgressDeadline,
            signals: sigs,
        };
    }
    if let Some(w) = still_waiting_for(d, exp.generation) {
        p.waiting_for = w;
        return Verdict::Waiting(p);
    }
    if new_replica_set(snap, exp).is_none() {
        p.waiting_for = "the new ReplicaSet to be seen".into();
        return Verdict::Waiting(p);
    }
    // The Deployment's counts can run ahead of what the pods show: a new pod
    // of a build that crashes right after start may already be down again
    // while the status still counts it available. Every new pod must be
    // Ready in our own view too before the rollout counts as done.
    let ready_now = new_replica_set(snap, exp).map_or(0, |rs| {
        // pods_of already leaves out terminating pods.
        pods_of(snap, rs)
            .into_iter()
            .filter(|pod| pod_is_ready(pod))
            .count() as i32
    });
    let ready = p.new_ready.min(ready_now);
    if ready < p.desired {
        let n = p.desired - ready;
        p.waiting_for = format!(
            "{n} more new pod{} to report Ready",
            if n == 1 { "" } else { "s" }
        );
        return Verdict::Waiting(p);
    }
    if let Some(pod) = timers.recently_restarted.first() {
        p.waiting_for = format!("pod {pod} to stay up after a restart");
        return Verdict::Waiting(p);
    }
    if let Some(s) = signals
        .iter()
        .find(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
    {
        p.waiting_for = format!("pod {} to stop restarting", s.pod);
        return Verdict::Waiting(p);
    }
    Verdict::Succeeded(p)
}

/// A new pod turned unready during the bake: a container that exited is a
/// crash (judged before the Ready condition, as the kubelet reports the exit
/// with Ready=False); otherwise the unready container's readiness.
pub fn unready_during_bake(p: Progress, pod: &Pod) -> Verdict {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let crashed: Vec<Signal> = diagnose::pod_signals::<Event>(pod, &[])
        .into_iter()
        .filter(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
        .collect();
    if let Some(cause) = crashed.iter().map(|s| s.cause).min() {
        return Verdict::Failed {
            progress: p,
            cause,
            signals: crashed,
        };
    }
    let container = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| !c.ready)
        .map(|c| c.name.clone());
    Verdict::Failed {
        progress: p,
        cause: Cause::ReadinessFailing,
        signals: vec![Signal {
            cause: Cause::ReadinessFailing,
            pod: name,
            container,
            message: "pod turned unready during the bake".into(),
            restarts: 0,
            exit_code: None,
        }],
    }
}
