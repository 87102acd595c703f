//! Will the new pods fit? From the nodes' allocatable, the pods already
//! bound to them, the template's cpu/memory requests, its nodeSelector,
//! required node affinity and tolerations (against taints and cordoned
//! nodes), and the surge the Deployment's strategy allows.
//!
//! The rule, for the rollout's first step (upstream's rolling updater):
//! the controller scales the new ReplicaSet up by `maxSurge` (capped at
//! `replicas`) while every old pod still runs, and scales the old one down
//! by `maxUnavailable` in the same pass. A deleted old pod frees its
//! requests only once it has terminated, but new pods that wait for that
//! are merely Pending for a while, not stuck: so the old pods that
//! `maxUnavailable` lets go count as freed, and we free the ones with the
//! *smallest* requests (the conservative choice: we cannot know which the
//! controller picks). With `maxSurge` 0 the first step is `maxUnavailable`
//! new pods in the room of as many old ones. That first step must fit, and
//! so must the end state (all `replicas` new pods, no old pod left).
//! Pods are placed greedily, each on the eligible node with the most free
//! cpu, as the scheduler's LeastAllocated scoring roughly does; pending
//! pods that are not bound yet are not counted.
//! ReplicationControllers (client-side rolling update) will use surge 1.
//!
//! (Over 500 lines with its unit tests: one placement rule and the cases
//! that pin it down.)

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::k8s::placement::ineligible;
use crate::k8s::quantity::{Requests, bytes, cpu_millis, fmt_bytes, fmt_cpu, pod_requests};
use crate::model::{Cause, Finding};

/// The surge and unavailability a Deployment's strategy allows, resolved as
/// upstream's `ResolveFenceposts`: maxSurge rounds up, maxUnavailable down,
/// both 0 → unavailable 1. Recreate: no surge, every old pod goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strategy {
    pub replicas: i32,
    pub max_surge: i32,
    pub max_unavailable: i32,
}

fn resolve(v: Option<&IntOrString>, default_pct: i32, replicas: i32, round_up: bool) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .unwrap_or(0);
            let scaled = pct * i64::from(replicas);
            let v = if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            };
            i32::try_from(v).unwrap_or(i32::MAX)
        }
        None => resolve(
            Some(&IntOrString::String(format!("{default_pct}%"))),
            0,
            replicas,
            round_up,
        ),
    }
}

pub fn strategy(d: &Deployment) -> Strategy {
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
    let strategy = spec.and_then(|s| s.strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Strategy {
            replicas,
            max_surge: 0,
            max_unavailable: replicas,
        };
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let max_surge = resolve(ru.and_then(|r| r.max_surge.as_ref()), 25, replicas, true).max(0);
    let mut max_unavailable = resolve(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        25,
        replicas,
        false,
    )
    .max(0);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Strategy {
        replicas,
        max_surge,
        max_unavailable,
    }
}

/// Does this label selector select these labels?
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|e| {
        let have = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => have.is_none_or(|h| !values.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// One node as the check sees it.
#[derive(Debug, Clone)]
struct NodeRoom {
    name: String,
    alloc: Requests,
    alloc_pods: i64,
    used: Requests,
    pods: i64,
    ineligible: Option<String>,
}

impl NodeRoom {
    fn fits(&self, r: Requests) -> bool {
        self.ineligible.is_none()
            && self.pods < self.alloc_pods
            && (r.cpu == 0 || self.used.cpu + r.cpu <= self.alloc.cpu)
            && (r.memory == 0 || self.used.memory + r.memory <= self.alloc.memory)
    }

    fn add(&mut self, r: Requests, sign: i64) {
        self.used.cpu += sign * r.cpu;
        self.used.memory += sign * r.memory;
        self.pods += sign;
    }
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The cluster's nodes with the requests of the pods bound to them.
fn rooms(nodes: &[Node], pods: &[Pod], spec: &PodSpec) -> Vec<NodeRoom> {
    let mut rooms: Vec<NodeRoom> = nodes
        .iter()
        .map(|n| {
            let alloc = n.status.as_ref().and_then(|s| s.allocatable.as_ref());
            let get = |k: &str| alloc.and_then(|a| a.get(k));
            NodeRoom {
                name: n.metadata.name.clone().unwrap_or_default(),
                alloc: Requests {
                    cpu: get("cpu").and_then(cpu_millis).unwrap_or(0),
                    memory: get("memory").and_then(bytes).unwrap_or(0),
                },
                alloc_pods: get("pods").and_then(bytes).unwrap_or(110),
                used: Requests::default(),
                pods: 0,
                ineligible: ineligible(spec, n),
            }
        })
        .collect();
    for p in pods.iter().filter(|p| !is_terminal(p)) {
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if let Some(room) = rooms.iter_mut().find(|r| r.name == node)
            && let Some(spec) = &p.spec
        {
            room.add(pod_requests(spec), 1);
        }
    }
    rooms
}

/// Free the requests of these (bound) pods; then place `count` new pods;
/// how many were placed.
fn place(rooms: &[NodeRoom], freed: &[(&str, Requests)], count: i32, r: Requests) -> i32 {
    let mut rooms = rooms.to_vec();
    for (node, req) in freed {
        if let Some(room) = rooms.iter_mut().find(|x| x.name == *node) {
            room.add(*req, -1);
        }
    }
    for placed in 0..count {
        let best = rooms
            .iter_mut()
            .filter(|x| x.fits(r))
            .max_by_key(|x| (x.alloc.cpu - x.used.cpu, x.alloc.memory - x.used.memory));
        match best {
            Some(room) => room.add(r, 1),
            None => return placed,
        }
    }
    count
}

/// At run time, for a new pod the scheduler could not place: could it fit
/// once the rollout frees what it will free without this pod? `freeable` old
/// pods (bound) may go: those already terminating always, and as many more
/// as `more` (one per new pod that is placed but not available yet, which the
/// controller answers by removing an old pod). Optimistic on purpose — each
/// node is tried with its own largest old pods freed — so "no" means no
/// node could ever take it during this rollout.
pub fn could_fit(
    nodes: &[Node],
    pods: &[Pod],
    pending: &PodSpec,
    terminating: &[&Pod],
    old: &[&Pod],
    more: usize,
) -> bool {
    let req = pod_requests(pending);
    let rooms = rooms(nodes, pods, pending);
    let bound = |p: &&Pod| -> Option<(String, Requests)> {
        let spec = p.spec.as_ref()?;
        Some((spec.node_name.clone()?, pod_requests(spec)))
    };
    let gone: Vec<(String, Requests)> = terminating.iter().filter_map(bound).collect();
    rooms.iter().any(|room| {
        let mut room = room.clone();
        for (n, r) in &gone {
            if *n == room.name {
                room.add(*r, -1);
            }
        }
        let mut mine: Vec<Requests> = old
            .iter()
            .filter_map(bound)
            .filter(|(n, _)| *n == room.name)
            .map(|(_, r)| r)
            .collect();
        mine.sort_by_key(|r| std::cmp::Reverse((r.cpu, r.memory)));
        for r in mine.into_iter().take(more) {
            room.add(r, -1);
        }
        room.fits(req)
    })
}

/// The decision, with the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    Fits { new_pods: i32 },
    DoesNotFit(Box<Finding>),
}

/// Decide whether the rollout's new pods can be scheduled. `old_pods` are the
/// workload's current pods (among `pods`, every pod of the cluster).
pub fn assess(
    nodes: &[Node],
    pods: &[Pod],
    old_pods: &[&Pod],
    template: &PodSpec,
    s: Strategy,
    container: &str,
) -> Assessment {
    let req = pod_requests(template);
    let rooms = rooms(nodes, pods, template);
    // Old pods bound to a node, the ones freeing the least first.
    let mut old: Vec<(&str, Requests)> = old_pods
        .iter()
        .filter(|p| !is_terminal(p))
        .filter_map(|p| {
            let spec = p.spec.as_ref()?;
            Some((spec.node_name.as_deref()?, pod_requests(spec)))
        })
        .collect();
    old.sort_by_key(|(_, r)| (r.cpu, r.memory));
    let first_new = if s.max_surge > 0 {
        s.max_surge.min(s.replicas)
    } else {
        s.max_unavailable.min(s.replicas)
    };
    let first_freed = usize::try_from(s.max_unavailable)
        .unwrap_or(0)
        .min(old.len());
    let first_ok = place(&rooms, &old[..first_freed], first_new, req) == first_new;
    let final_placed = place(&rooms, &old, s.replicas, req);
    let final_ok = final_placed == s.replicas;
    if first_ok && final_ok {
        return Assessment::Fits {
            new_pods: first_new,
        };
    }
    // Would it go without surge (maxSurge 0, maxUnavailable 1)?
    let unsurged_ok =
        s.max_surge > 0 && s.replicas > 0 && place(&rooms, &old[..1.min(old.len())], 1, req) == 1;

    let mut evidence = Vec::new();
    let eligible: Vec<&NodeRoom> = rooms.iter().filter(|r| r.ineligible.is_none()).collect();
    for r in &rooms {
        match &r.ineligible {
            Some(why) => evidence.push(format!("{}: not eligible: {why}", r.name)),
            None => {
                let mut parts = Vec::new();
                if req.cpu > 0 || r.used.cpu > r.alloc.cpu {
                    parts.push(format!(
                        "cpu requested: {}, used: {} of {} on {} (free {})",
                        fmt_cpu(req.cpu),
                        fmt_cpu(r.used.cpu),
                        fmt_cpu(r.alloc.cpu),
                        r.name,
                        fmt_cpu((r.alloc.cpu - r.used.cpu).max(0))
                    ));
                }
                if req.memory > 0 {
                    parts.push(format!(
                        "memory requested: {}, used: {} of {} (free {})",
                        fmt_bytes(req.memory),
                        fmt_bytes(r.used.memory),
                        fmt_bytes(r.alloc.memory),
                        fmt_bytes((r.alloc.memory - r.used.memory).max(0))
                    ));
                }
                if r.pods >= r.alloc_pods {
                    parts.push(format!("{} of {} pods", r.pods, r.alloc_pods));
                }
                if parts.is_empty() {
                    parts.push(format!("{}: no requests to check", r.name));
                }
                evidence.push(parts.join("; "));
            }
        }
    }
    let what = match (req.cpu, req.memory) {
        (0, 0) => "no cpu/memory requests".to_string(),
        (c, 0) => format!("{} cpu", fmt_cpu(c)),
        (0, m) => format!("{} memory", fmt_bytes(m)),
        (c, m) => format!("{} cpu and {} memory", fmt_cpu(c), fmt_bytes(m)),
    };
    let surge_words = format!(
        "maxSurge {} and maxUnavailable {} of {} replicas",
        s.max_surge, s.max_unavailable, s.replicas
    );
    use crate::diagnose::scheduling::capacity_fix;
    let requests =
        format!("resources.requests of container {container} in spec.template.spec.containers");
    let (summary, fix) = if eligible.is_empty() {
        (
            format!(
                "the new pods cannot be scheduled: no node is eligible for the pod template ({} nodes)",
                rooms.len()
            ),
            "Fix the pod template's nodeSelector, node affinity or tolerations, uncordon nodes, or add nodes that match.".to_string(),
        )
    } else if !final_ok {
        (
            format!(
                "the new pods do not fit on the nodes: {} of {} pods requesting {what} each can be placed even after every old pod is gone",
                final_placed, s.replicas
            ),
            capacity_fix(&requests, false),
        )
    } else if unsurged_ok {
        (
            format!(
                "the surge pods do not fit: the rollout starts {first_new} new pod(s) requesting {what} beside the running ones ({surge_words}), and the nodes lack the room"
            ),
            capacity_fix(&requests, true),
        )
    } else {
        (
            format!(
                "the first step of the rollout does not fit: {first_new} new pod(s) requesting {what} ({surge_words})"
            ),
            capacity_fix(&requests, false),
        )
    };
    Assessment::DoesNotFit(Box::new(Finding {
        cause: Cause::Unschedulable,
        summary,
        container: Some(container.to_string()),
        pods: format!(
            "{first_new} new pod(s) at the first step, {} in all",
            s.replicas
        ),
        evidence,
        per_pod: Vec::new(),
        logs: Vec::new(),
        fix,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Toleration;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis(&q("100m")), Some(100));
        assert_eq!(cpu_millis(&q("1.5")), Some(1500));
        assert_eq!(cpu_millis(&q("2")), Some(2000));
        assert_eq!(cpu_millis(&q("0.0001")), Some(1));
        assert_eq!(cpu_millis(&q("1e3")), Some(1_000_000));
        assert_eq!(bytes(&q("128Mi")), Some(128 << 20));
        assert_eq!(bytes(&q("1G")), Some(1_000_000_000));
        assert_eq!(bytes(&q("1.5Gi")), Some(3 << 29));
        assert_eq!(bytes(&q("x")), None);
        assert_eq!(fmt_cpu(970), "970m");
        assert_eq!(fmt_cpu(2000), "2000m");
        assert_eq!(fmt_bytes(4 << 30), "4Gi");
    }

    fn node(name: &str, cpu: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"}}
        }))
        .unwrap()
    }

    fn pod(node: &str, cpu: &str, app: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{app}-{node}"), "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn template(cpu: &str) -> PodSpec {
        serde_json::from_value(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": cpu}}}]}))
        .unwrap()
    }

    fn strat(replicas: i32, surge: i32, unavailable: i32) -> Strategy {
        Strategy {
            replicas,
            max_surge: surge,
            max_unavailable: unavailable,
        }
    }

    #[test]
    fn one_more_pod_does_not_fit_on_a_full_node() {
        let nodes = [node("node-1", "1")];
        let pods = [pod("node-1", "870m", "other"), pod("node-1", "100m", "web")];
        let old = [&pods[1]];
        let a = assess(
            &nodes,
            &pods,
            &old,
            &template("100m"),
            strat(1, 1, 0),
            "web",
        );
        let Assessment::DoesNotFit(f) = a else {
            panic!("{a:?}")
        };
        assert!(
            f.evidence[0].contains("requested: 100m, used: 970m of 1000m on node-1"),
            "{f:?}"
        );
        assert!(f.fix.contains("Reduce surge"), "{}", f.fix);
        // With maxUnavailable 1 the old pod's room counts.
        let a = assess(
            &nodes,
            &pods,
            &old,
            &template("100m"),
            strat(1, 1, 1),
            "web",
        );
        assert_eq!(a, Assessment::Fits { new_pods: 1 });
    }

    #[test]
    fn too_big_for_any_node() {
        let nodes = [node("node-1", "2"), node("node-2", "2")];
        let pods = [pod("node-1", "500m", "web"), pod("node-2", "500m", "web")];
        let old: Vec<&Pod> = pods.iter().collect();
        let Assessment::DoesNotFit(f) = assess(
            &nodes,
            &pods,
            &old,
            &template("2500m"),
            strat(2, 1, 0),
            "web",
        ) else {
            panic!()
        };
        assert!(f.summary.contains("0 of 2 pods"), "{}", f.summary);
        assert!(f.fix.contains("add nodes"), "{}", f.fix);
    }

    #[test]
    fn taints_and_selectors() {
        let mut tainted = node("node-1", "4");
        tainted.spec = Some(
            serde_json::from_value(
                json!({"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}),
            )
            .unwrap(),
        );
        let nodes = [tainted, node("node-2", "1")];
        let t = template("800m");
        assert!(
            ineligible(&t, &nodes[0])
                .unwrap()
                .contains("gpu=yes:NoSchedule")
        );
        let pods = [pod("node-2", "800m", "web")];
        let old = [&pods[0]];
        assert!(matches!(
            assess(&nodes, &pods, &old, &t, strat(1, 1, 0), "web"),
            Assessment::DoesNotFit(_)
        ));
        let mut tolerant = t.clone();
        tolerant.tolerations = Some(vec![Toleration {
            key: Some("gpu".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]);
        assert!(matches!(
            assess(&nodes, &pods, &old, &tolerant, strat(1, 1, 0), "web"),
            Assessment::Fits { .. }
        ));
    }

    #[test]
    fn strategy_fenceposts() {
        let d: Deployment = serde_json::from_value(json!({"spec": {"replicas": 10,
            "selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}))
        .unwrap();
        assert_eq!(strategy(&d), strat(10, 3, 2));
        let d: Deployment = serde_json::from_value(json!({"spec": {"replicas": 3,
            "selector": {}, "template": {}}}))
        .unwrap();
        assert_eq!(strategy(&d), strat(3, 1, 0));
    }
}
