//! Workloads rollguard can roll. Each kind has its pure rules (plan the
//! patch, judge a snapshot, plan the rollback) and its [`rollout::Rollout`]
//! (the I/O of prepare, apply, follow, diagnose, roll back, commit); the
//! rules every kind shares are here.

pub mod daemonset;
pub mod deployment;
pub(crate) mod kinds;
pub(crate) mod patch;
pub(crate) mod prepare;
pub mod replicationcontroller;
pub(crate) mod rollout;
pub mod statefulset;
pub(crate) mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};

use crate::diagnose;

use crate::model::{Cause, Signal};
use deployment::{Progress, Verdict, pod_is_ready};

pub use crate::k8s::kind::{Kind, WorkloadRef, parse_list};

/// The fail-fast limits of a rollout (same for every kind).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub restart_threshold: i32,
    pub unschedulable_grace: Duration,
}

/// Every signal the given (new) pods show.
pub fn signals_of(pods: &[Arc<Pod>], events: &[Arc<Event>]) -> Vec<Signal> {
    diagnose::pods_signals(pods.iter().map(|p| &**p), events)
}

/// The pods rollguard's fail-fast rule fails on, as for Deployments: a
/// permanent cause at first sight, crash loops and OOM kills at the restart
/// threshold, unschedulable pods after the grace period. Returns the cause
/// and every signal of that cause.
pub fn fail_fast(
    signals: &[Signal],
    limits: &Limits,
    unschedulable_for: &BTreeMap<String, Duration>,
) -> Option<(Cause, Vec<Signal>)> {
    let first = signals
        .iter()
        .filter(|s| match s.cause {
            c if c.is_permanent() => true,
            Cause::CrashLoop | Cause::OomKilled => s.restarts >= limits.restart_threshold,
            Cause::Unschedulable => unschedulable_for
                .get(&s.pod)
                .is_some_and(|t| *t >= limits.unschedulable_grace),
            _ => false,
        })
        .min_by_key(|s| s.cause)?;
    let cause = first.cause;
    Some((
        cause,
        signals
            .iter()
            .filter(|s| s.cause == cause)
            .cloned()
            .collect(),
    ))
}

/// Judge a template-patched workload (StatefulSet, DaemonSet): fail fast on
/// the new pods, else wait for `waiting_for`, else for restarts to settle.
pub fn judge_pods(
    mut progress: deployment::Progress,
    waiting_for: Option<String>,
    signals: Vec<Signal>,
    limits: &Limits,
    timers: &deployment::Timers,
) -> deployment::Verdict {
    use deployment::Verdict;
    if let Some((cause, signals)) = fail_fast(&signals, limits, &timers.unschedulable_for) {
        return Verdict::Failed {
            progress,
            cause,
            signals,
        };
    }
    if let Some(w) = waiting_for {
        progress.waiting_for = w;
        return Verdict::Waiting(progress);
    }
    if let Some(pod) = timers.recently_restarted.first() {
        progress.waiting_for = format!("pod {pod} to stay up after a restart");
        return Verdict::Waiting(progress);
    }
    if let Some(s) = signals
        .iter()
        .find(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
    {
        progress.waiting_for = format!("pod {} to stop restarting", s.pod);
        return Verdict::Waiting(progress);
    }
    Verdict::Succeeded(progress)
}

/// Judge the new pods during the bake (every kind): any restart since
/// `baseline`, a settled failure signal, or an unready new pod fails;
/// otherwise it keeps waiting.
pub fn judge_bake(
    p: Progress,
    new_pods: &[Arc<Pod>],
    signals: &[Signal],
    counts: &BTreeMap<(String, String), i32>,
    baseline: &BTreeMap<(String, String), i32>,
) -> Verdict {
    let restarted: Vec<&(String, String)> = counts
        .iter()
        .filter(|(k, v)| baseline.get(*k).is_some_and(|b| *v > b))
        .map(|(k, _)| k)
        .collect();
    if !restarted.is_empty() {
        let sigs: Vec<Signal> = signals
            .iter()
            .filter(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
            .cloned()
            .collect();
        let cause = sigs
            .iter()
            .map(|s| s.cause)
            .min()
            .unwrap_or(Cause::CrashLoop);
        let sigs = if sigs.is_empty() {
            restarted
                .iter()
                .map(|(pod, c)| Signal {
                    cause: Cause::CrashLoop,
                    pod: pod.clone(),
                    container: Some(c.clone()),
                    message: "container restarted during the bake".into(),
                    restarts: counts.get(&(pod.clone(), c.clone())).copied().unwrap_or(0),
                    exit_code: None,
                })
                .collect()
        } else {
            sigs
        };
        return Verdict::Failed {
            progress: p,
            cause,
            signals: sigs,
        };
    }
    // Restarts are judged against the baseline above; other signals fail now.
    let settled = |s: &&Signal| {
        !matches!(
            s.cause,
            Cause::ImagePullTransient | Cause::CrashLoop | Cause::OomKilled
        )
    };
    if let Some(s) = signals.iter().find(settled) {
        return Verdict::Failed {
            progress: p,
            cause: s.cause,
            signals: signals
                .iter()
                .filter(|x| x.cause == s.cause)
                .cloned()
                .collect(),
        };
    }
    for pod in new_pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if !pod_is_ready(pod)
            && baseline
                .keys()
                .any(|(n, _)| Some(n) == pod.metadata.name.as_ref())
        {
            return deployment::unready_during_bake(p, pod);
        }
    }
    Verdict::Waiting(p)
}

/// Restart counts of `pods`: (pod, container) → restarts.
pub fn restart_counts(pods: &[Arc<Pod>]) -> BTreeMap<(String, String), i32> {
    let mut out = BTreeMap::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        for cs in p
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            out.insert((name.clone(), cs.name.clone()), cs.restart_count);
        }
    }
    out
}

/// Live (not terminating) pods carrying `label=value`.
pub fn pods_labelled(pods: &[Arc<Pod>], label: &str, value: &str) -> Vec<Arc<Pod>> {
    let mut out: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(label))
                .is_some_and(|v| v == value)
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// A pod stuck in a state its controller will not replace by itself:
/// waiting in CrashLoopBackOff / ImagePullBackOff / ErrImagePull, or
/// restarted and not Ready.
pub fn pod_is_stuck(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.container_statuses.iter().flatten().any(|cs| {
        let waiting = cs
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref());
        matches!(
            waiting,
            Some(
                "CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "InvalidImageName"
                    | "CreateContainerConfigError"
            )
        ) || (cs.restart_count > 0 && !cs.ready)
    })
}
