//! The DaemonSet RollingUpdate, after upstream `pkg/controller/daemon/update.go`:
//! bounded by maxUnavailable (delete old, then create new) or maxSurge
//! (create new next to old, delete old once the new one is available), and
//! which pods are updated (the revision labels).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use crate::controllers::history::REVISION_HASH_LABEL;
use crate::controllers::meta::{is_deleting, scaled_value};
use crate::controllers::pods::is_available;

/// The label of the template generation a pod was created from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// The updated and the old pod of one node.
pub(super) type NewAndOld = (Option<Arc<Value>>, Option<Arc<Value>>);

/// Upstream `IsPodUpdated`.
pub(super) fn is_updated(pod: &Value, hash: &str, generation: i64) -> bool {
    let labels = &pod["metadata"]["labels"];
    (!hash.is_empty() && labels[REVISION_HASH_LABEL].as_str() == Some(hash))
        || labels[TEMPLATE_GENERATION_LABEL].as_str() == Some(generation.to_string().as_str())
}

pub(super) fn min_ready_seconds(ds: &Value) -> i64 {
    ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0)
}

pub(super) fn rolling(ds: &Value) -> bool {
    ds["spec"]["updateStrategy"]["type"].as_str() != Some("OnDelete")
}

pub(super) fn max_surge_value(ds: &Value) -> i32 {
    let v = &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"];
    if v.is_null() {
        return 0;
    }
    scaled_value(v, 100, true).unwrap_or(0)
}

/// Upstream `updatedDesiredNodeCounts`: (maxSurge, maxUnavailable), both
/// rounded up; when both are 0 maxUnavailable becomes 1.
pub(super) fn surge_and_unavailable(ds: &Value, desired: i32) -> (i32, i32) {
    let ru = &ds["spec"]["updateStrategy"]["rollingUpdate"];
    let get = |v: &Value, default: i32| {
        if v.is_null() {
            default
        } else {
            scaled_value(v, desired, true).unwrap_or(default)
        }
    };
    let surge = get(&ru["maxSurge"], 0);
    let mut unavailable = get(&ru["maxUnavailable"], 1);
    if desired > 0 && surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// Upstream `rollingUpdate`: which nodes get a new pod and which old pods go.
pub(super) fn rolling_update(
    ds: &Value,
    eligibility: &[(&str, bool, bool)],
    by_node: &BTreeMap<String, Vec<Arc<Value>>>,
    hash: &str,
    generation: i64,
    desired: i32,
    now: Timestamp,
) -> (Vec<String>, Vec<Arc<Value>>) {
    let (max_surge, max_unavailable) = surge_and_unavailable(ds, desired);
    let min_ready = min_ready_seconds(ds);
    let avail = |p: &Value| is_available(p, min_ready, now);
    let mut creates = Vec::new();
    let mut deletes = Vec::new();
    let eligible = |n: &str| eligibility.iter().any(|(e, run, _)| *e == n && *run);
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut allowed: Vec<Arc<Value>> = Vec::new();
        let mut candidates: Vec<Arc<Value>> = Vec::new();
        for (node, pods) in by_node {
            if !eligible(node) {
                continue;
            }
            let Some((new, old)) = updated_and_old(pods, hash, generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(n), None) => {
                    if !avail(&n) {
                        unavailable += 1;
                    }
                }
                (None, Some(o)) => {
                    if !avail(&o) {
                        allowed.push(o);
                    } else if unavailable < max_unavailable {
                        candidates.push(o);
                    }
                }
            }
        }
        let remaining = (max_unavailable - unavailable).max(0) as usize;
        deletes.extend(allowed);
        deletes.extend(candidates.into_iter().take(remaining));
    } else {
        let mut surging = 0;
        let mut allowed_nodes: Vec<String> = Vec::new();
        let mut candidate_nodes: Vec<String> = Vec::new();
        for (node, pods) in by_node {
            if !eligible(node) {
                continue;
            }
            let Some((new, old)) = updated_and_old(pods, hash, generation) else {
                continue;
            };
            match (new, old) {
                (None, Some(o)) => {
                    if !avail(&o) {
                        allowed_nodes.push(node.clone());
                    } else {
                        candidate_nodes.push(node.clone());
                    }
                }
                (Some(n), Some(o)) => {
                    if avail(&n) {
                        deletes.push(o);
                    } else {
                        surging += 1;
                    }
                }
                _ => {}
            }
        }
        let remaining = (max_surge - surging).max(0) as usize;
        creates.extend(allowed_nodes);
        creates.extend(candidate_nodes.into_iter().take(remaining));
    }
    (creates, deletes)
}

/// Upstream `findUpdatedPodsOnNode`: the live new and old pod of a node;
/// None when there is more than one of either.
pub(super) fn updated_and_old(
    pods: &[Arc<Value>],
    hash: &str,
    generation: i64,
) -> Option<NewAndOld> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().filter(|p| !is_deleting(p)) {
        let slot = if is_updated(p, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p.clone());
    }
    Some((new, old))
}
