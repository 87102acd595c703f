//! How stored objects are shown: the served view of a resource (events.k8s.io
//! Events are stored as core Events), the scale subresource, and the view a
//! write is read back from.

use serde_json::{Map, Value, json};

use super::selectors::LabelSelector;
use crate::resources::ResourceType;

/// How an object is served for a resource type: the events.k8s.io/v1 view
/// of a stored core Event, or the object itself.
pub fn render(rt: &ResourceType, obj: &Value) -> Value {
    if rt.group == "events.k8s.io" {
        return core_to_events_v1(obj);
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(rt.api_version());
    o["kind"] = json!(rt.kind);
    o
}

/// A written object in the resource's own view back to its stored form.
pub(crate) fn from_view(rt: &ResourceType, obj: Value) -> Value {
    if rt.group == "events.k8s.io" {
        events_v1_to_core(&obj)
    } else {
        obj
    }
}

pub(crate) fn respond_view(rt: &ResourceType, sub: Option<&str>, obj: &Value) -> Value {
    match sub {
        Some("scale") => scale_view(rt, obj),
        _ => render(rt, obj),
    }
}

fn copy(dst: &mut Map<String, Value>, to: &str, src: &Value, from: &str) {
    if let Some(v) = src.get(from).filter(|v| !v.is_null()) {
        dst.insert(to.to_string(), v.clone());
    }
}

pub fn core_to_events_v1(e: &Value) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Event"));
    m.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    copy(&mut m, "metadata", e, "metadata");
    m.insert(
        "eventTime".into(),
        e.get("eventTime").cloned().unwrap_or(Value::Null),
    );
    copy(&mut m, "series", e, "series");
    // The reporter: the core event's own field, else its legacy source.
    for (to, from, source) in [
        ("reportingController", "reportingComponent", "component"),
        ("reportingInstance", "reportingInstance", "host"),
    ] {
        let reporter = e[from]
            .as_str()
            .filter(|s| !s.is_empty())
            .or_else(|| e["source"][source].as_str());
        if let Some(r) = reporter {
            m.insert(to.into(), json!(r));
        }
    }
    copy(&mut m, "action", e, "action");
    copy(&mut m, "reason", e, "reason");
    copy(&mut m, "regarding", e, "involvedObject");
    copy(&mut m, "related", e, "related");
    copy(&mut m, "note", e, "message");
    copy(&mut m, "type", e, "type");
    if e["source"].as_object().is_some_and(|s| !s.is_empty()) {
        copy(&mut m, "deprecatedSource", e, "source");
    }
    copy(&mut m, "deprecatedFirstTimestamp", e, "firstTimestamp");
    copy(&mut m, "deprecatedLastTimestamp", e, "lastTimestamp");
    if let Some(c) = e["count"].as_i64().filter(|c| *c > 0) {
        m.insert("deprecatedCount".into(), json!(c));
    }
    Value::Object(m)
}

pub fn events_v1_to_core(e: &Value) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Event"));
    m.insert("apiVersion".into(), json!("v1"));
    copy(&mut m, "metadata", e, "metadata");
    copy(&mut m, "involvedObject", e, "regarding");
    copy(&mut m, "reason", e, "reason");
    copy(&mut m, "message", e, "note");
    m.insert(
        "source".into(),
        e.get("deprecatedSource").cloned().unwrap_or(json!({})),
    );
    m.insert(
        "firstTimestamp".into(),
        e.get("deprecatedFirstTimestamp")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert(
        "lastTimestamp".into(),
        e.get("deprecatedLastTimestamp")
            .cloned()
            .unwrap_or(Value::Null),
    );
    copy(&mut m, "count", e, "deprecatedCount");
    copy(&mut m, "type", e, "type");
    m.insert(
        "eventTime".into(),
        e.get("eventTime").cloned().unwrap_or(Value::Null),
    );
    copy(&mut m, "series", e, "series");
    copy(&mut m, "action", e, "action");
    copy(&mut m, "related", e, "related");
    copy(&mut m, "reportingComponent", e, "reportingController");
    copy(&mut m, "reportingInstance", e, "reportingInstance");
    Value::Object(m)
}

/// The label selector of a workload, as Scale's `status.selector` string.
fn selector_string(obj: &Value) -> String {
    LabelSelector::from_json(&obj["spec"]["selector"]).to_string()
}

/// The autoscaling/v1 Scale view of a workload.
pub fn scale_view(_rt: &ResourceType, obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(obj),
        },
    })
}

pub(crate) fn has_status(rt: &ResourceType) -> bool {
    rt.has_subresource("status")
}
