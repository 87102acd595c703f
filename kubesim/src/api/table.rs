// Slightly over 500 lines only with its unit tests: the columns of every resource type side by side.
//! Server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`),
//! the columns `kubectl get` shows, computed on the simulated clock.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::http::Req;
use crate::resources::ResourceType;
use crate::sim::Sim;

pub fn wants_table(req: &Req) -> bool {
    let accept = req.header(::http::header::ACCEPT).replace(' ', "");
    accept
        .split(',')
        .next()
        .is_some_and(|m| m.contains("as=Table") && m.contains("g=meta.k8s.io"))
}

/// `duration.HumanDuration` from apimachinery.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else if h < 24 * 365 * 8 {
        let d = (h / 24) % 365;
        if d == 0 {
            format!("{}y", h / 24 / 365)
        } else {
            format!("{}y{}d", h / 24 / 365, d)
        }
    } else {
        format!("{}y", h / 24 / 365)
    }
}

fn age(now: Timestamp, t: &Value) -> String {
    match t.as_str().and_then(|s| s.parse::<Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, ty: &str, priority: i32) -> Value {
    let mut c =
        json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn none_if_empty(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

fn containers_images(tpl_spec: &Value) -> (String, String) {
    let cs = tpl_spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<String> = cs.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector(sel: &Value) -> String {
    none_if_empty(super::selectors::LabelSelector::from_json(sel).to_string())
}

fn pod_status(p: &Value) -> String {
    let mut reason = s(&p["status"]["phase"]);
    if let Some(r) = p["status"]["reason"].as_str() {
        reason = r.to_string();
    }
    let mut initializing = false;
    for (i, c) in p["status"]["initContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let st = &c["state"];
        if st["terminated"]["exitCode"].as_i64() == Some(0) {
            continue;
        }
        initializing = true;
        reason = if let Some(r) = st["terminated"]["reason"].as_str() {
            format!("Init:{r}")
        } else if let Some(r) = st["waiting"]["reason"]
            .as_str()
            .filter(|r| *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            let total = p["spec"]["initContainers"]
                .as_array()
                .map_or(0, |a| a.len());
            format!("Init:{i}/{total}")
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
        {
            let st = &c["state"];
            if let Some(r) = st["waiting"]["reason"].as_str() {
                reason = r.to_string();
            } else if let Some(r) = st["terminated"]["reason"].as_str() {
                reason = r.to_string();
            } else if !st["terminated"].is_null() {
                reason = match st["terminated"]["signal"].as_i64() {
                    Some(sig) if sig != 0 => format!("Signal:{sig}"),
                    _ => format!("ExitCode:{}", int(&st["terminated"]["exitCode"])),
                };
            } else if !st["running"].is_null() && c["ready"].as_bool() == Some(true) {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if !p["metadata"]["deletionTimestamp"].is_null() {
        reason = if p["status"]["reason"] == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

fn restarts(now: Timestamp, p: &Value) -> String {
    let mut n = 0;
    let mut last: Option<Timestamp> = None;
    for c in p["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        n += int(&c["restartCount"]);
        if let Some(t) = c["lastState"]["terminated"]["finishedAt"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
        {
            last = Some(last.map_or(t, |l: Timestamp| l.max(t)));
        }
    }
    match (n, last) {
        (n, Some(t)) if n > 0 => format!(
            "{n} ({} ago)",
            human_duration(now.as_second() - t.as_second())
        ),
        (n, _) => n.to_string(),
    }
}

/// Column definitions and the cells of one object.
fn columns(rt: &ResourceType) -> Vec<Value> {
    match (rt.group, rt.plural) {
        ("", "pods") => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
            col("Nominated Node", "string", 1),
            col("Readiness Gates", "string", 1),
        ],
        ("apps", "deployments") => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Up-to-date", "string", 0),
            col("Available", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("apps", "replicasets") | ("", "replicationcontrollers") => vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("apps", "statefulsets") => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
        ],
        ("apps", "daemonsets") => vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Node Selector", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("", "namespaces") => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Age", "string", 0),
        ],
        ("", "nodes") => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
        ],
        ("", "configmaps") => vec![
            col("Name", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ],
        ("", "secrets") => vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ],
        ("", "services") => vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            col("Age", "string", 0),
        ],
        ("", "events") => vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Message", "string", 0),
        ],
        _ => vec![col("Name", "string", 0), col("Age", "string", 0)],
    }
}

fn cells(rt: &ResourceType, now: Timestamp, o: &Value) -> Vec<Value> {
    let name = json!(s(&o["metadata"]["name"]));
    let a = json!(age(now, &o["metadata"]["creationTimestamp"]));
    let st = &o["status"];
    let spec = &o["spec"];
    match (rt.group, rt.plural) {
        ("", "pods") => {
            let total = spec["containers"].as_array().map_or(0, |c| c.len());
            let ready = st["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts(now, o)),
                a,
                json!(none_if_empty(s(&st["podIP"]))),
                json!(none_if_empty(s(&spec["nodeName"]))),
                json!(none_if_empty(s(&st["nominatedNodeName"]))),
                json!("<none>"),
            ]
        }
        ("apps", "deployments") => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&st["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                json!(int(&st["updatedReplicas"])),
                json!(int(&st["availableReplicas"])),
                a,
                json!(c),
                json!(i),
                json!(selector(&spec["selector"])),
            ]
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(int(&spec["replicas"])),
                json!(int(&st["replicas"])),
                json!(int(&st["readyReplicas"])),
                a,
                json!(c),
                json!(i),
                json!(selector(&spec["selector"])),
            ]
        }
        ("apps", "statefulsets") => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&st["readyReplicas"]),
                    int(&spec["replicas"])
                )),
                a,
                json!(c),
                json!(i),
            ]
        }
        ("apps", "daemonsets") => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            let ns = spec["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(int(&st["desiredNumberScheduled"])),
                json!(int(&st["currentNumberScheduled"])),
                json!(int(&st["numberReady"])),
                json!(int(&st["updatedNumberScheduled"])),
                json!(int(&st["numberAvailable"])),
                json!(none_if_empty(ns)),
                a,
                json!(c),
                json!(i),
                json!(selector(&spec["selector"])),
            ]
        }
        ("", "namespaces") => vec![name, json!(s(&st["phase"])), a],
        ("", "nodes") => {
            let ready = st["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .map_or("Unknown", |c| {
                    if c["status"] == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                });
            let status = if spec["unschedulable"].as_bool() == Some(true) {
                format!("{ready},SchedulingDisabled")
            } else {
                ready.to_string()
            };
            vec![
                name,
                json!(status),
                json!("<none>"),
                a,
                json!(s(&st["nodeInfo"]["kubeletVersion"])),
            ]
        }
        ("", "configmaps") => {
            let n = o["data"].as_object().map_or(0, |m| m.len())
                + o["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, json!(n), a]
        }
        ("", "secrets") => vec![
            name,
            json!(s(&o["type"])),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            a,
        ],
        ("", "services") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        int(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            vec![
                name,
                json!(s(&spec["type"])),
                json!(none_if_empty(s(&spec["clusterIP"]))),
                json!("<none>"),
                json!(none_if_empty(ports.join(","))),
                a,
            ]
        }
        ("", "events") => {
            let last = [
                &o["lastTimestamp"],
                &o["eventTime"],
                &o["metadata"]["creationTimestamp"],
            ]
            .into_iter()
            .find(|t| t.is_string())
            .cloned()
            .unwrap_or(Value::Null);
            let io = &o["involvedObject"];
            vec![
                json!(age(now, &last)),
                json!(s(&o["type"])),
                json!(s(&o["reason"])),
                json!(format!(
                    "{}/{}",
                    s(&io["kind"]).to_lowercase(),
                    s(&io["name"])
                )),
                json!(s(&o["message"])),
            ]
        }
        _ => vec![name, a],
    }
}

/// A list (as served) rendered as a `meta.k8s.io/v1` Table.
pub fn list_table(sim: &Sim, rt: &ResourceType, list: &Value, include_object: bool) -> Value {
    let now = sim.clock.now();
    let rows: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let object = if include_object {
                let mut full = o.clone();
                full["apiVersion"] = json!(rt.api_version());
                full["kind"] = json!(rt.kind);
                full
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
            };
            json!({"cells": cells(rt, now, o), "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list["metadata"],
        "columnDefinitions": columns(rt),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
