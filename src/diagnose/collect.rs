//! The I/O behind a diagnosis: the log tails of crashed containers, and the
//! nodes and pods that say how much room there is for an unschedulable pod.
//! The findings themselves are made from what is gathered here by the pure
//! rules of this module's parent.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::diagnose;

use crate::model::Progress;
use crate::model::{Cause, Finding, Signal};
use crate::workload::deployment::{self as dep, Expectations};

/// The previous log tail of crashed containers, for the diagnosis.
pub async fn crash_logs(
    client: &Client,
    ns: &str,
    signals: &[Signal],
) -> BTreeMap<(String, String), Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut logs = BTreeMap::new();
    let mut fetched = std::collections::BTreeSet::new();
    for s in signals
        .iter()
        .filter(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
    {
        let Some(c) = &s.container else { continue };
        if !fetched.insert(c.clone()) {
            continue;
        }
        // Caught at its first exit (no restart yet), the exited instance is
        // still the current one; after a restart it is the previous one. The
        // kubelet may restart it meanwhile: then the previous one has them.
        let order: &[bool] = if s.restarts > 0 {
            &[true]
        } else {
            &[false, true]
        };
        for &previous in order {
            let params = LogParams {
                container: Some(c.clone()),
                previous,
                // A longer tail than a screen: the reports show the last lines
                // and fold the rest.
                tail_lines: Some(40),
                ..Default::default()
            };
            match pods.logs(&s.pod, &params).await {
                Ok(text) if !text.trim().is_empty() => {
                    logs.insert(
                        (s.pod.clone(), c.clone()),
                        text.lines().map(str::to_string).collect(),
                    );
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("could not read the logs of {}/{c}: {e}", s.pod)
                }
            }
        }
    }
    logs
}

/// The room on the nodes, listed only when a pod could not be scheduled.
pub async fn cluster_for(client: &Client, ns: &str, signals: &[Signal]) -> diagnose::Cluster {
    if signals.iter().any(|s| s.cause == Cause::Unschedulable) {
        node_room(client, ns).await
    } else {
        diagnose::Cluster {
            namespace: ns.to_string(),
            ..Default::default()
        }
    }
}

/// Findings from signals of pods outside a Deployment (StatefulSet,
/// DaemonSet, ReplicationController).
#[allow(clippy::too_many_arguments)]
pub async fn pod_findings(
    client: &Client,
    ns: &str,
    template: &Value,
    new_image: &str,
    total: usize,
    cause: Cause,
    signals: &[Signal],
    progress: &Progress,
) -> Vec<Finding> {
    let mut findings = pod_level(client, ns, signals, total, template, new_image).await;
    if findings.is_empty() || cause == Cause::Timeout {
        let evidence = format!(
            "desired {}  current {}  up-to-date {}  available {}  (new {}/{} ready){}",
            progress.desired,
            progress.current,
            progress.up_to_date,
            progress.available,
            progress.new_ready,
            progress.desired,
            if progress.waiting_for.is_empty() {
                String::new()
            } else {
                format!("; waiting for {}", progress.waiting_for)
            }
        );
        let primary = !findings.is_empty();
        findings.push(Finding {
            cause,
            summary: if primary {
                format!("{} ({evidence})", cause.title())
            } else {
                format!("{}: no pod-level cause found; {evidence}", cause.title())
            },
            container: None,
            pods: format!("{}/{} new pods ready", progress.new_ready, progress.desired),
            evidence: vec![evidence],
            per_pod: Vec::new(),
            logs: Vec::new(),
            fix: "Look at the workload's events (kubectl describe); raise the timeout if the rollout is only slow.".into(),
        });
    }
    findings
}

/// The pod-level findings of `signals` (with the crashed containers' logs
/// and the cluster's room for unschedulable pods): `total` new pods of
/// `template`, meant to run `image`.
async fn pod_level(
    client: &Client,
    ns: &str,
    signals: &[Signal],
    total: usize,
    template: &Value,
    image: &str,
) -> Vec<Finding> {
    let logs = crash_logs(client, ns, signals).await;
    let template = serde_json::from_value(template.clone()).ok();
    let cluster = cluster_for(client, ns, signals).await;
    diagnose::diagnose(&diagnose::Inputs {
        signals,
        total_new_pods: total,
        template: template.as_ref(),
        image,
        logs: &logs,
        cluster: &cluster,
    })
}

// ------------------------------------------------------------ units

#[allow(clippy::too_many_arguments)]
pub async fn deployment_findings(
    client: &Client,
    ns: &str,
    snap: &dep::Snapshot,
    exp: &Expectations,
    new_image: &str,
    cause: Cause,
    signals: &[Signal],
    progress: &Progress,
    timed_out: bool,
) -> Vec<Finding> {
    let (total, _) = dep::new_pod_signals(snap, exp);
    let mut findings = pod_level(client, ns, signals, total, &exp.template, new_image).await;
    if timed_out || cause == Cause::ProgressDeadline {
        let deadline = signals
            .iter()
            .find(|s| s.cause == Cause::ProgressDeadline)
            .map(|s| s.message.clone());
        findings.retain(|f| f.cause != Cause::ProgressDeadline);
        let primary = !findings.is_empty();
        findings.push(diagnose::deadline::finding(
            cause,
            if timed_out {
                "timed out"
            } else {
                "progress deadline exceeded"
            },
            progress,
            deadline.as_deref(),
            primary,
        ));
    }
    findings
}

/// Nodes and the pods bound to them, for the scheduling findings. Listing
/// nodes (cluster-scoped) or pods in all namespaces may be forbidden: then
/// the finding says so and keeps to the scheduler's message.
pub async fn node_room(client: &Client, ns: &str) -> diagnose::Cluster {
    use k8s_openapi::api::core::v1::Node;
    let mut cluster = diagnose::Cluster {
        namespace: ns.to_string(),
        ..Default::default()
    };
    let why = |e: &kube::Error, what: &str| match e {
        kube::Error::Api(s) if s.code == 403 => {
            format!("node room unknown: listing {what} is forbidden for this identity")
        }
        other => format!("node room unknown: listing {what} failed: {other}"),
    };
    match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => cluster.nodes = Some(l.items),
        Err(e) => {
            cluster.unavailable = Some(why(&e, "nodes"));
            return cluster;
        }
    }
    match Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => cluster.pods = Some(l.items),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            match Api::<Pod>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
            {
                Ok(l) => {
                    cluster.pods = Some(l.items);
                    cluster.pods_namespace_only = true;
                }
                Err(e) => cluster.unavailable = Some(why(&e, "pods")),
            }
        }
        Err(e) => cluster.unavailable = Some(why(&e, "pods")),
    }
    cluster
}

// ------------------------------------------------------------ ReplicationControllers
