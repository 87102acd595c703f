//! Workloads rollguard can roll. One file per kind; each answers the same
//! questions: plan the patch, judge a snapshot, plan the rollback.

pub mod daemonset;
pub mod deployment;
pub mod replicationcontroller;
pub mod statefulset;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};

use crate::diagnose::{self, Cause, Signal};

/// The kinds rollguard knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicationController,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
            Kind::ReplicationController => "replicationcontroller",
        }
    }

    /// The permissions a rollout of this kind needs, as (verb, group,
    /// resource); the workload's own resource is checked by name.
    pub fn needed_permissions(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Kind::Deployment => &[
                ("get", "apps", "deployments"),
                ("patch", "apps", "deployments"),
                ("list", "apps", "deployments"),
                ("watch", "apps", "deployments"),
                ("list", "apps", "replicasets"),
                ("watch", "apps", "replicasets"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
            Kind::StatefulSet => &[
                ("get", "apps", "statefulsets"),
                ("patch", "apps", "statefulsets"),
                ("list", "apps", "statefulsets"),
                ("watch", "apps", "statefulsets"),
                ("list", "apps", "controllerrevisions"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("delete", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
            Kind::DaemonSet => &[
                ("get", "apps", "daemonsets"),
                ("patch", "apps", "daemonsets"),
                ("list", "apps", "daemonsets"),
                ("watch", "apps", "daemonsets"),
                ("list", "apps", "controllerrevisions"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
            Kind::ReplicationController => &[
                ("get", "", "replicationcontrollers"),
                ("patch", "", "replicationcontrollers"),
                ("create", "", "replicationcontrollers"),
                ("delete", "", "replicationcontrollers"),
                ("list", "", "replicationcontrollers"),
                ("watch", "", "replicationcontrollers"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("patch", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
        }
    }

    /// The resource (plural) of the workload itself.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::ReplicationController => "replicationcontrollers",
        }
    }
}

/// `deployment/api`, `deploy/api` or `api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    pub kind: Kind,
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

impl WorkloadRef {
    /// Parse the `workload` input; the error says what was wrong.
    pub fn parse(s: &str) -> Result<WorkloadRef, String> {
        let (kind, name) = match s.split_once('/') {
            Some((k, n)) => (k.to_ascii_lowercase(), n),
            None => ("deployment".to_string(), s),
        };
        let kind = match kind.as_str() {
            "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps" => {
                Kind::Deployment
            }
            "statefulset" | "statefulsets" | "sts" | "statefulset.apps" | "statefulsets.apps" => {
                Kind::StatefulSet
            }
            "daemonset" | "daemonsets" | "ds" | "daemonset.apps" | "daemonsets.apps" => {
                Kind::DaemonSet
            }
            "replicationcontroller" | "replicationcontrollers" | "rc" => {
                Kind::ReplicationController
            }
            other => {
                return Err(format!(
                    "\"{other}\" is not a workload kind (use deployment/NAME, statefulset/NAME, daemonset/NAME or replicationcontroller/NAME)"
                ));
            }
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(crate::k8s::names::is_dns_label);
        if !valid {
            return Err(format!(
                "\"{name}\" is not a valid workload name (lower-case letters, digits, '-' and '.')"
            ));
        }
        Ok(WorkloadRef {
            kind,
            name: name.to_string(),
        })
    }
}

/// Parse a `workload` input that may list several workloads, separated
/// by commas or newlines (`deployment/web, deployment/worker`).
pub fn parse_list(s: &str) -> Result<Vec<WorkloadRef>, String> {
    let mut out: Vec<WorkloadRef> = Vec::new();
    for item in s
        .split([',', '\n'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        let w = WorkloadRef::parse(item)?;
        if out.contains(&w) {
            return Err(format!("{w} is listed twice"));
        }
        out.push(w);
    }
    if out.is_empty() {
        return Err("is required (e.g. deployment/api)".into());
    }
    Ok(out)
}

/// The fail-fast limits of a rollout (same for every kind).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub restart_threshold: i32,
    pub unschedulable_grace: Duration,
}

/// Every signal the given (new) pods show.
pub fn signals_of(pods: &[Arc<Pod>], events: &[Arc<Event>]) -> Vec<Signal> {
    let events: Vec<Event> = events.iter().map(|e| (**e).clone()).collect();
    pods.iter()
        .flat_map(|p| diagnose::pod_signals(p, &events))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workloads() {
        assert_eq!(WorkloadRef::parse("deploy/api").unwrap().name, "api");
        assert_eq!(WorkloadRef::parse("api").unwrap().kind, Kind::Deployment);
        assert_eq!(
            WorkloadRef::parse("sts/db").unwrap().kind,
            Kind::StatefulSet
        );
        assert_eq!(
            WorkloadRef::parse("rc/api-rc").unwrap().kind,
            Kind::ReplicationController
        );
        assert_eq!(
            WorkloadRef::parse("ds/agent").unwrap().kind,
            Kind::DaemonSet
        );
        assert!(WorkloadRef::parse("pod/x").is_err());
        assert!(WorkloadRef::parse("deployment/API").is_err());
    }

    #[test]
    fn parses_lists() {
        let l = parse_list("deployment/web, deployment/worker\nrc/api-rc\n").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[2].kind, Kind::ReplicationController);
        assert!(parse_list("web, deploy/web").unwrap_err().contains("twice"));
        assert!(parse_list(" , ").is_err());
    }
}
