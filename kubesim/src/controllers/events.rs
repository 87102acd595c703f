//! The event recorder, in the two shapes a real control plane writes:
//! core/v1 style (controllers, kubelet: `count`, `firstTimestamp`,
//! `lastTimestamp`, `source`; repeats of the same reason and message on the
//! same object bump `count`) and events.k8s.io style (the scheduler:
//! `eventTime`, `action`, `reportingComponent`, no timestamps).

use serde_json::{Value, json};

use crate::Sim;
use crate::clock::{fmt_micro_time, fmt_time};
use crate::resources::res;

/// Who reports an event.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A controller: `deployment-controller`, `replicaset-controller`, ...
    Controller(&'a str),
    /// The kubelet of a node.
    Kubelet(&'a str),
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

/// The event name for a dedupe key: `NAME.<16 hex digits>`, the shape of
/// client-go's `NAME.<hex unix nanos>`, derived from the key so that a
/// repeat is one store lookup instead of a scan of the namespace's events.
fn keyed_name(obj: &Value, key: &[&str]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in key {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!(
        "{}.{h:016x}",
        obj["metadata"]["name"].as_str().unwrap_or("unknown")
    )
}

/// Record a core/v1-style event; a repeat (same object, fieldPath, reason,
/// message, source) bumps `count` and `lastTimestamp` of the existing one.
pub fn record(
    sim: &Sim,
    obj: &Value,
    field_path: Option<&str>,
    type_: &str,
    reason: &str,
    message: &str,
    source: Source<'_>,
) {
    let events = res("events");
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let now = fmt_time(sim.clock.now());
    let (src, component, instance) = match source {
        Source::Controller(c) => (json!({"component": c}), c, ""),
        Source::Kubelet(node) => (
            json!({"component": "kubelet", "host": node}),
            "kubelet",
            node,
        ),
    };
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
    // The repeat is found by its key-derived name: one lookup, not a scan.
    let name = keyed_name(
        obj,
        &[
            uid,
            field_path.unwrap_or(""),
            reason,
            message,
            component,
            instance,
        ],
    );
    if let Ok(prev) = sim.store.get(events, &ns, &name)
        && prev["involvedObject"]["uid"].as_str() == Some(uid)
    {
        let _ = sim.store.modify(events, &ns, &name, |e| {
            let c = e["count"].as_i64().unwrap_or(1);
            e["count"] = json!(c + 1);
            e["lastTimestamp"] = json!(now);
            e["involvedObject"] = reference(obj, field_path);
            Ok(true)
        });
        return;
    }
    let ev = json!({
        "metadata": {"name": name, "namespace": ns},
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
    let _ = sim.store.create(events, &ns, ev);
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
    let events = res("events");
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let now = fmt_micro_time(sim.clock.now());
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
    let name = keyed_name(obj, &[uid, reason, reporter, "events.k8s.io"]);
    if let Ok(prev) = sim.store.get(events, &ns, &name)
        && prev["involvedObject"]["uid"].as_str() == Some(uid)
    {
        let _ = sim.store.modify(events, &ns, &name, |e| {
            if e["message"].as_str() == Some(message) {
                let count = e["series"]["count"].as_i64().unwrap_or(1) + 1;
                e["series"] = json!({"count": count, "lastObservedTime": now});
            } else {
                e["message"] = json!(message);
                e["eventTime"] = json!(now);
            }
            e["involvedObject"] = reference(obj, None);
            Ok(true)
        });
        return;
    }
    let ev = json!({
        "metadata": {"name": name, "namespace": ns},
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
    let _ = sim.store.create(events, &ns, ev);
}
