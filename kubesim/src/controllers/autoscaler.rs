//! A simulated cluster autoscaler (upstream kubernetes/autoscaler
//! `cluster-autoscaler/`), on when `Config::autoscaler` is set.
//!
//! One node group, `kubesim-nodes`, of the configured node shape (the
//! first node is its template), from the initial nodes up to `max_nodes`.
//! Every scan interval (10 s simulated) it writes its status ConfigMap
//! `cluster-autoscaler-status` in `kube-system` and looks at the pods the
//! scheduler marked `PodScheduled=False reason Unschedulable`:
//!
//! - a pod a node of the cluster would take now (one that registered
//!   since the scheduler last tried the pod), or a node being provisioned
//!   will take, is left alone;
//! - a pod an empty template node would fit, while the group is under its
//!   maximum, triggers a scale-up (`TriggeredScaleUp` "pod triggered
//!   scale-up: [{kubesim-nodes 3->4 (max: 5)}]"); the new Ready node
//!   `node-N` appears `scale_up_delay` later and the scheduler places it;
//! - otherwise `NotTriggerScaleUp`, once per pod and loop ("pod didn't
//!   trigger scale-up: 1 max node group size reached", or the template
//!   node's predicate failures, "1 Insufficient cpu"); the recorder's
//!   correlator turns the repeats into one event with a growing count.
//!
//! Not simulated: scale-down, several node groups, expanders, back-off
//! after failed scale-ups, the cloud provider's instance states.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::events::{self, Source};
use super::next::Next;
use super::scheduler::WhatIfNode;
use super::state::AutoscalerState;
use crate::clock::fmt_time;
use crate::resources::res;
use crate::sim::Sim;

/// Upstream `--scan-interval` default.
const SCAN_INTERVAL: Duration = Duration::from_secs(10);
/// The simulated node group's id.
pub const NODE_GROUP: &str = "kubesim-nodes";
pub const STATUS_CONFIGMAP: &str = "cluster-autoscaler-status";
const COMPONENT: &str = "cluster-autoscaler";
const LAST_UPDATED: &str = "cluster-autoscaler.kubernetes.io/last-updated";

pub fn reconcile(sim: &Sim) -> Next {
    let mut next = Next::default();
    let Some(cfg) = sim.config.autoscaler.clone() else {
        return next;
    };
    let now = sim.clock.now();
    let mut st = sim.autoscaler.lock().expect("autoscaler lock");
    // Provisioned nodes register and are Ready.
    let (due, waiting): (Vec<_>, Vec<_>) =
        st.provisioning.drain(..).partition(|(at, _)| *at <= now);
    st.provisioning = waiting;
    for (_, name) in due {
        let _ = sim
            .store
            .create(res("nodes"), "", super::nodes::node_object(sim, &name));
    }
    let started = *st.started.get_or_insert(now);
    if st.next_loop.is_none_or(|t| t <= now) {
        run_once(sim, &mut st, &cfg, now, started);
        st.next_loop = Some(now + SCAN_INTERVAL);
    }
    if let Some(t) = st.next_loop {
        next.at(t);
    }
    for (t, _) in &st.provisioning {
        next.at(*t);
    }
    next
}

fn unschedulable(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == "PodScheduled"
                    && c["status"] == "False"
                    && c["reason"] == "Unschedulable"
            })
        })
}

/// Upstream `ReasonsMessage`: "N reason" per distinct reason, sorted.
fn reasons_message(reasons: &[String]) -> String {
    let mut counted: Vec<String> = reasons
        .iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|r| format!("1 {r}"))
        .collect();
    counted.sort();
    counted.join(", ")
}

fn run_once(
    sim: &Sim,
    st: &mut AutoscalerState,
    cfg: &crate::config::AutoscalerConfig,
    now: Timestamp,
    started: Timestamp,
) {
    let (nodes, _) = sim.store.list(res("nodes"), None);
    let (pods, _) = sim.store.list(res("pods"), None);
    let registered = nodes.len();
    let mut target = registered + st.provisioning.len();
    let template = nodes
        .iter()
        .find(|n| n["metadata"]["name"] == "node-1")
        .or_else(|| nodes.first())
        .cloned();
    let pending: Vec<&std::sync::Arc<Value>> = pods.iter().filter(|p| unschedulable(p)).collect();
    if let Some(template) = template
        && !pending.is_empty()
    {
        // Pods the nodes already coming up will take are not acted on.
        // Nor are the pods a node already there would take (a node that
        // registered since the scheduler last tried them): upstream's
        // filter-out-schedulable step, before any scale-up decision.
        let mut existing = WhatIfNode::existing(&nodes, &pods);
        let mut upcoming: Vec<WhatIfNode> = st
            .provisioning
            .iter()
            .map(|_| WhatIfNode::empty(&template))
            .collect();
        let mut new_nodes: Vec<WhatIfNode> = Vec::new();
        let mut triggered: Vec<&std::sync::Arc<Value>> = Vec::new();
        let room = cfg.max_nodes.saturating_sub(target);
        for pod in pending {
            if let Some(n) = existing.iter_mut().find(|n| n.fits(pod).is_ok()) {
                n.place(pod);
                continue;
            }
            if let Some(n) = upcoming.iter_mut().find(|n| n.fits(pod).is_ok()) {
                n.place(pod);
                continue;
            }
            if target >= cfg.max_nodes {
                not_triggered(sim, pod, "1 max node group size reached");
                continue;
            }
            let empty = WhatIfNode::empty(&template);
            if let Err(reasons) = empty.fits(pod) {
                not_triggered(sim, pod, &reasons_message(&reasons));
                continue;
            }
            if let Some(n) = new_nodes.iter_mut().find(|n| n.fits(pod).is_ok()) {
                n.place(pod);
                triggered.push(pod);
            } else if new_nodes.len() < room {
                let mut n = empty;
                n.place(pod);
                new_nodes.push(n);
                triggered.push(pod);
            }
        }
        if !new_nodes.is_empty() {
            let new_size = target + new_nodes.len();
            let info = format!(
                "pod triggered scale-up: [{{{NODE_GROUP} {target}->{new_size} (max: {})}}]",
                cfg.max_nodes
            );
            for pod in triggered {
                events::record(
                    sim,
                    pod,
                    None,
                    "Normal",
                    "TriggeredScaleUp",
                    &info,
                    Source::Component(COMPONENT),
                );
            }
            let mut taken: HashSet<String> = nodes
                .iter()
                .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
                .chain(st.provisioning.iter().map(|(_, n)| n.clone()))
                .collect();
            let mut i = 1;
            for _ in 0..new_nodes.len() {
                while taken.contains(&format!("node-{i}")) {
                    i += 1;
                }
                let name = format!("node-{i}");
                taken.insert(name.clone());
                st.provisioning.push((now + cfg.scale_up_delay, name));
            }
            target = new_size;
        }
    }
    let scale_up = if st.provisioning.is_empty() {
        "NoActivity"
    } else {
        "InProgress"
    };
    let since = match st.scale_up {
        Some((s, t)) if s == scale_up => t,
        _ => now,
    };
    st.scale_up = Some((scale_up, since));
    write_status(sim, cfg, now, started, registered, target, scale_up, since);
}

fn not_triggered(sim: &Sim, pod: &Value, why: &str) {
    events::record(
        sim,
        pod,
        None,
        "Normal",
        "NotTriggerScaleUp",
        &format!("pod didn't trigger scale-up: {why}"),
        Source::Component(COMPONENT),
    );
}

/// Go's `time.Time.String()` in UTC, the form of the status `time` field
/// and the last-updated annotation: `2026-12-01 10:00:00.123456789 +0000 UTC`.
pub fn go_time(t: Timestamp) -> String {
    let base = jiff::fmt::strtime::format("%Y-%m-%d %H:%M:%S", t).unwrap_or_default();
    let nanos = t.subsec_nanosecond();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!("{base}{frac} +0000 UTC")
}

#[allow(clippy::too_many_arguments)]
fn write_status(
    sim: &Sim,
    cfg: &crate::config::AutoscalerConfig,
    now: Timestamp,
    started: Timestamp,
    registered: usize,
    target: usize,
    scale_up: &str,
    scale_up_since: Timestamp,
) {
    let probe = fmt_time(now);
    let since = fmt_time(started);
    let up_since = fmt_time(scale_up_since);
    let min = sim.config.nodes.min(cfg.max_nodes);
    let counts = format!(
        "nodeCounts:\n      registered:\n        total: {registered}\n        ready: {registered}\n        notStarted: 0\n      longUnregistered: 0\n      unregistered: 0"
    );
    let status = format!(
        "time: \"{time}\"\nautoscalerStatus: Running\nclusterWide:\n  health:\n    status: Healthy\n    {cw_counts}\n    lastProbeTime: \"{probe}\"\n    lastTransitionTime: \"{since}\"\n  scaleUp:\n    status: {scale_up}\n    lastProbeTime: \"{probe}\"\n    lastTransitionTime: \"{up_since}\"\n  scaleDown:\n    status: NoCandidates\n    lastProbeTime: \"{probe}\"\n    lastTransitionTime: \"{since}\"\nnodeGroups:\n- name: {NODE_GROUP}\n  health:\n    status: Healthy\n    {ng_counts}\n    cloudProviderTarget: {target}\n    minSize: {min}\n    maxSize: {max}\n    lastProbeTime: \"{probe}\"\n    lastTransitionTime: \"{since}\"\n  scaleUp:\n    status: {scale_up}\n    lastProbeTime: \"{probe}\"\n    lastTransitionTime: \"{up_since}\"\n  scaleDown:\n    status: NoCandidates\n    lastProbeTime: \"{probe}\"\n    lastTransitionTime: \"{since}\"\n",
        time = go_time(now),
        cw_counts = counts,
        ng_counts = counts,
        max = cfg.max_nodes,
    );
    let cms = res("configmaps");
    let updated = go_time(now);
    let done = sim
        .store
        .modify(cms, "kube-system", STATUS_CONFIGMAP, |cm| {
            cm["data"]["status"] = json!(status);
            cm["metadata"]["annotations"][LAST_UPDATED] = json!(updated);
            Ok(true)
        })
        .is_ok();
    if !done {
        let _ = sim.store.create(
            cms,
            "kube-system",
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": STATUS_CONFIGMAP,
                    "namespace": "kube-system",
                    "annotations": {LAST_UPDATED: updated},
                },
                "data": {"status": status},
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_trims_like_go() {
        let t: Timestamp = "2026-12-01T10:00:00.120Z".parse().unwrap();
        assert_eq!(go_time(t), "2026-12-01 10:00:00.12 +0000 UTC");
        let t: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        assert_eq!(go_time(t), "2026-12-01 10:00:00 +0000 UTC");
    }

    #[test]
    fn reasons_are_counted_and_sorted() {
        assert_eq!(
            reasons_message(&["Insufficient memory".into(), "Insufficient cpu".into()]),
            "1 Insufficient cpu, 1 Insufficient memory"
        );
    }
}
