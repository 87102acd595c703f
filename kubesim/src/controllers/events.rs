//! The event recorder, in the two shapes a real control plane writes:
//! core/v1 style (controllers, kubelet: `count`, `firstTimestamp`,
//! `lastTimestamp`, `source`; repeats of the same reason and message on the
//! same object bump `count`) and events.k8s.io style (the scheduler:
//! `eventTime`, `action`, `reportingComponent`, no timestamps). Names are
//! client-go's `<involvedObject name>.<hex unix nanos>` of the first
//! occurrence, so a list comes back in time order per object.

use std::collections::HashSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::state::EventCache;
use crate::clock::{fmt_micro_time, fmt_time};
use crate::resources::res;
use crate::sim::Sim;

/// Who reports an event.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A controller: `deployment-controller`, `replicaset-controller`, ...
    Controller(&'a str),
    /// The kubelet of a node.
    Kubelet(&'a str),
    /// Another component reporting under its own name (`cluster-autoscaler`).
    Component(&'a str),
}

/// The `involvedObject` reference for an object (optionally a container's fieldPath).
pub fn reference(obj: &Value, field_path: Option<&str>) -> Value {
    let mut r = json!({
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"]["namespace"],
        "resourceVersion": obj["metadata"]["resourceVersion"],
        "uid": obj["metadata"]["uid"],
    });
    if let Some(fp) = field_path {
        r["fieldPath"] = json!(fp);
    }
    r
}

/// How many distinct messages of one reason on one object the correlator
/// keeps apart before it combines them (upstream `maxEvents`), and over how
/// long (upstream `maxIntervalInSeconds`).
const AGGREGATE_MAX_EVENTS: usize = 10;
const AGGREGATE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
/// Bound on the remembered keys (upstream's LRU caches hold 4096).
const CACHE_SIZE: usize = 4096;

/// `<involvedObject name>.<hex unix nanos>`, as client-go names events, so
/// a list (sorted by name) of one object's events is in time order.
fn event_name(obj: &Value, t: Timestamp) -> String {
    format!(
        "{}.{:x}",
        obj["metadata"]["name"].as_str().unwrap_or("unknown"),
        t.as_nanosecond().max(0)
    )
}

/// Create `ev` under a fresh time-based name (one nanosecond later on a
/// same-instant collision); returns the name used.
fn create_named(sim: &Sim, ns: &str, obj: &Value, mut ev: Value) -> Option<String> {
    let mut t = sim.clock.now();
    for _ in 0..16 {
        let name = event_name(obj, t);
        ev["metadata"]["name"] = json!(name);
        match sim.store.create(res("events"), ns, ev.clone()) {
            Ok(_) => return Some(name),
            Err(e) if e.reason == "AlreadyExists" => {
                t = t
                    .checked_add(jiff::SignedDuration::from_nanos(1))
                    .unwrap_or(t);
            }
            Err(_) => return None,
        }
    }
    None
}

/// Apply `update` (given the cached count) to the event `key` names in the
/// cache, if that event still exists and is still about the object `uid`
/// (the store may have dropped it, or a recreated object may share its key);
/// true when it was updated, with the cached count bumped.
fn update_cached(
    sim: &Sim,
    cache: &mut EventCache,
    key: &str,
    uid: &str,
    update: impl FnOnce(&mut Value, i64),
) -> bool {
    let Some((ns, name, count)) = cache.by_key.get(key).cloned() else {
        return false;
    };
    let updated = sim.store.modify(res("events"), &ns, &name, |e| {
        if e["involvedObject"]["uid"].as_str() != Some(uid) {
            return Ok(false);
        }
        update(e, count);
        Ok(true)
    });
    if !updated.is_ok_and(|e| e["involvedObject"]["uid"].as_str() == Some(uid)) {
        return false;
    }
    cache.by_key.insert(key.to_string(), (ns, name, count + 1));
    true
}

fn remember(cache: &mut EventCache, key: String, ns: &str, name: String, count: i64) {
    if cache.by_key.len() >= CACHE_SIZE {
        cache.by_key.clear();
    }
    cache.by_key.insert(key, (ns.to_string(), name, count));
}

/// Record a core/v1-style event through upstream's correlator: an exact
/// repeat (same source, object, fieldPath, type, reason, message) bumps
/// `count` and `lastTimestamp` of the existing event; the tenth distinct
/// message of one reason on one object within ten minutes becomes a
/// "(combined from similar events): ..." event that later ones update.
pub fn record(
    sim: &Sim,
    obj: &Value,
    field_path: Option<&str>,
    type_: &str,
    reason: &str,
    message: &str,
    source: Source<'_>,
) {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let now_ts = sim.clock.now();
    let now = fmt_time(now_ts);
    let (src, component, instance) = match source {
        Source::Controller(c) => (json!({"component": c}), c, ""),
        Source::Kubelet(node) => (
            json!({"component": "kubelet", "host": node}),
            "kubelet",
            node,
        ),
        Source::Component(c) => (json!({"component": c}), c, ""),
    };
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
    let m = &obj["metadata"];
    let aggregate_key = [
        component,
        instance,
        obj["kind"].as_str().unwrap_or(""),
        &ns,
        m["name"].as_str().unwrap_or(""),
        uid,
        obj["apiVersion"].as_str().unwrap_or(""),
        type_,
        reason,
    ]
    .join("\u{1f}");
    let mut cache = sim.event_cache.lock().expect("event cache lock");
    let entry = cache
        .similar
        .entry(aggregate_key.clone())
        .or_insert_with(|| (HashSet::new(), now_ts));
    if now_ts.duration_since(entry.1)
        > jiff::SignedDuration::try_from(AGGREGATE_INTERVAL).unwrap_or_default()
    {
        entry.0.clear();
    }
    entry.0.insert(message.to_string());
    entry.1 = now_ts;
    let (key, message) = if entry.0.len() < AGGREGATE_MAX_EVENTS {
        (
            format!(
                "{aggregate_key}\u{1f}{}\u{1f}{message}",
                field_path.unwrap_or("")
            ),
            message.to_string(),
        )
    } else {
        if let Some(any) = entry.0.iter().find(|x| *x != message).cloned() {
            entry.0.remove(&any);
        }
        (
            aggregate_key,
            format!("(combined from similar events): {message}"),
        )
    };
    if cache.similar.len() > CACHE_SIZE {
        cache.similar.clear();
    }
    if update_cached(sim, &mut cache, &key, uid, |e, count| {
        e["count"] = json!(count + 1);
        e["lastTimestamp"] = json!(now);
        e["message"] = json!(message);
    }) {
        return;
    }
    let ev = json!({
        "metadata": {"name": "", "namespace": ns},
        "involvedObject": reference(obj, field_path),
        "reason": reason,
        "message": message,
        "source": src,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": instance,
    });
    if let Some(name) = create_named(sim, &ns, obj, ev) {
        remember(&mut cache, key, &ns, name, 1);
    }
}

/// Record an events.k8s.io-style event as the scheduler does (`Scheduled`
/// with action `Binding`, `FailedScheduling` with action `Scheduling`).
/// A repeat of the same reason on the same object updates the message and
/// `eventTime` of the existing one (the series), as a real scheduler's does.
pub fn record_new(
    sim: &Sim,
    obj: &Value,
    type_: &str,
    reason: &str,
    action: &str,
    message: &str,
    reporter: &str,
) {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let now = fmt_micro_time(sim.clock.now());
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
    let key = format!("events.k8s.io\u{1f}{uid}\u{1f}{reason}\u{1f}{action}\u{1f}{reporter}");
    let mut cache = sim.event_cache.lock().expect("event cache lock");
    if update_cached(sim, &mut cache, &key, uid, |e, _| {
        if e["message"].as_str() == Some(message) {
            let count = e["series"]["count"].as_i64().unwrap_or(1) + 1;
            e["series"] = json!({"count": count, "lastObservedTime": now});
        } else {
            e["message"] = json!(message);
            e["eventTime"] = json!(now);
        }
        e["involvedObject"] = reference(obj, None);
    }) {
        return;
    }
    let ev = json!({
        "metadata": {"name": "", "namespace": ns},
        "involvedObject": reference(obj, None),
        "reason": reason,
        "message": message,
        "source": {},
        "firstTimestamp": null,
        "lastTimestamp": null,
        "type": type_,
        "eventTime": now,
        "action": action,
        "reportingComponent": reporter,
        "reportingInstance": format!("{reporter}-kubesim"),
    });
    if let Some(name) = create_named(sim, &ns, obj, ev) {
        remember(&mut cache, key, &ns, name, 1);
    }
}
