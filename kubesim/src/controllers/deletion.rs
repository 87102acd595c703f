//! Which pods a controller deletes first when it has too many, after
//! upstream `getPodsToDelete` and `ActivePodsWithRanks` (ReplicaSet and
//! ReplicationController share it).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use super::meta::uid;
use super::pods::{is_active, is_ready, phase, ready_since};
use crate::clock::parse_time;

/// Upstream `getPodsToDelete`: the `n` lowest-ranked pods.
pub fn pods_to_delete(
    active: &[Arc<Value>],
    related: &[Arc<Value>],
    n: usize,
    now: Timestamp,
) -> Vec<Arc<Value>> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node
            .entry(p["spec"]["nodeName"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    let rank = |p: &Value| {
        on_node
            .get(p["spec"]["nodeName"].as_str().unwrap_or(""))
            .copied()
            .unwrap_or(0)
    };
    let mut ranked: Vec<(usize, Arc<Value>)> =
        active.iter().map(|p| (rank(p), p.clone())).collect();
    if n < ranked.len() {
        ranked.sort_by(|(ra, a), (rb, b)| compare_for_deletion(a, *ra, b, *rb, now));
    }
    ranked.into_iter().take(n).map(|(_, p)| p).collect()
}

/// Upstream `ActivePodsWithRanks.Less` as an ordering (smaller = deleted
/// first): unassigned, pending < unknown < running, not ready, lower
/// deletion cost, more pods of the family on the node, ready more
/// recently, more restarts, created more recently (both times compared on
/// the logarithmic scale of `LogarithmicScaleDown`).
pub fn compare_for_deletion(
    a: &Value,
    rank_a: usize,
    b: &Value,
    rank_b: usize,
    now: Timestamp,
) -> Ordering {
    let node = |p: &Value| p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let phase_ord = |p: &Value| match phase(p) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    let by_phase = phase_ord(a).cmp(&phase_ord(b));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    if is_ready(a) != is_ready(b) {
        return if is_ready(a) {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let cost = |p: &Value| {
        p["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"]
            .as_str()
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0)
    };
    let by_cost = cost(a).cmp(&cost(b));
    if by_cost != Ordering::Equal {
        return by_cost;
    }
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // The remaining criteria compare per-pod keys, so the order is total
    // (sort_by panics on an inconsistent one): ready more recently, more
    // restarts, created more recently (log scale), then the uid.
    let ready = |p: &Value| ready_since(p).map(|t| log_rank(t, now));
    let by_ready = ready(a).cmp(&ready(b));
    if by_ready != Ordering::Equal {
        return by_ready;
    }
    let by_restarts = restarts(b).cmp(&restarts(a));
    if by_restarts != Ordering::Equal {
        return by_restarts;
    }
    let created = |p: &Value| {
        p["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(parse_time)
            .map(|t| log_rank(t, now))
    };
    created(a).cmp(&created(b)).then_with(|| uid(a).cmp(uid(b)))
}

/// `floor(log2(age in ns))`, -1 for no age: upstream `logarithmicRankDiff`'s
/// terms. A younger time has a smaller rank.
pub fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let age = now.as_nanosecond() - t.as_nanosecond();
    if age <= 0 {
        -1
    } else {
        (age as f64).log2() as i64
    }
}

/// Upstream `maxContainerRestarts` (regular containers, then restartable
/// init containers) as a comparable pair.
pub fn restarts(pod: &Value) -> (i64, i64) {
    let max_of = |key: &str| {
        pod["status"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["restartCount"].as_i64())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    (max_of("containerStatuses"), max_of("initContainerStatuses"))
}
