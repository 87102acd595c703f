//! Label and field selectors, as list/watch/deletecollection take them.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

/// Split on commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '(' => {
                depth += 1;
                cur.push(ch)
            }
            ')' => {
                depth -= 1;
                cur.push(ch)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn set_values(rest: &str, sel: &str) -> ApiResult<Vec<String>> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad_label(sel, "found '', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn bad_label(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} (selector {sel:?})"
    ))
}

impl LabelSelector {
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let r = if let Some(k) = part.strip_prefix('!') {
                Requirement {
                    key: k.trim().to_string(),
                    op: Op::NotExists,
                    values: vec![],
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotEq,
                    values: vec![v.trim().into()],
                }
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq,
                    values: vec![v.trim().into()],
                }
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq,
                    values: vec![v.trim().into()],
                }
            } else if let Some(idx) = part.find(" notin ") {
                Requirement {
                    key: part[..idx].trim().into(),
                    op: Op::NotIn,
                    values: set_values(&part[idx + 7..], s)?,
                }
            } else if let Some(idx) = part.find(" in ") {
                Requirement {
                    key: part[..idx].trim().into(),
                    op: Op::In,
                    values: set_values(&part[idx + 4..], s)?,
                }
            } else {
                Requirement {
                    key: part.trim().into(),
                    op: Op::Exists,
                    values: vec![],
                }
            };
            if r.key.is_empty() || r.key.contains(' ') || r.key.contains('(') {
                return Err(bad_label(s, "invalid label key"));
            }
            reqs.push(r);
        }
        Ok(Self { reqs })
    }

    /// From a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`) or a
    /// plain map (ReplicationController `spec.selector`).
    pub fn from_json(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        let plain = sel.get("matchLabels").is_none() && sel.get("matchExpressions").is_none();
        let labels = if plain {
            Some(sel)
        } else {
            sel.get("matchLabels")
        };
        if let Some(m) = labels.and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement {
                    key: k.clone(),
                    op: Op::Eq,
                    values: vec![v.as_str().unwrap_or("").to_string()],
                });
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let op = match e["operator"].as_str().unwrap_or("") {
                    "In" => Op::In,
                    "NotIn" => Op::NotIn,
                    "Exists" => Op::Exists,
                    _ => Op::NotExists,
                };
                let values = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(Requirement {
                    key: e["key"].as_str().unwrap_or("").to_string(),
                    op,
                    values,
                });
            }
        }
        Self { reqs }
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches(&self, labels: &Value) -> bool {
        self.reqs.iter().all(|r| {
            let v = labels.get(&r.key).and_then(Value::as_str);
            match r.op {
                Op::Eq => v == Some(r.values[0].as_str()),
                Op::NotEq => v != Some(r.values[0].as_str()),
                Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

impl std::fmt::Display for LabelSelector {
    /// The canonical string form (`app=web,tier in (a,b)`), as Scale's
    /// `status.selector` carries it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut reqs = self.reqs.clone();
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        let parts: Vec<String> = reqs
            .iter()
            .map(|r| match r.op {
                Op::Eq => format!("{}={}", r.key, r.values[0]),
                Op::NotEq => format!("{}!={}", r.key, r.values[0]),
                Op::In => format!("{} in ({})", r.key, sorted(&r.values)),
                Op::NotIn => format!("{} notin ({})", r.key, sorted(&r.values)),
                Op::Exists => r.key.clone(),
                Op::NotExists => format!("!{}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn sorted(v: &[String]) -> String {
    let mut v = v.to_vec();
    v.sort();
    v.join(",")
}

/// A parsed field selector.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

/// The fields each kind can be selected by (besides metadata.name/namespace).
fn fields_of(rt: &ResourceType) -> &'static [&'static str] {
    match (rt.group, rt.plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "secrets") => &["type"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        _ => &[],
    }
}

impl FieldSelector {
    pub fn parse(rt: &ResourceType, s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (k, neg, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            if !matches!(k, "metadata.name" | "metadata.namespace") && !fields_of(rt).contains(&k) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            reqs.push((k.to_string(), neg, v.trim().to_string()));
        }
        Ok(Self { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether this selector pins `metadata.name` to one value.
    pub fn name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(k, neg, _)| k == "metadata.name" && !neg)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(k, neg, want)| {
            let have = field_value(obj, k);
            (have == *want) != *neg
        })
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    let v = if path == "source" {
        &obj["source"]["component"]
    } else {
        let mut cur = obj;
        for seg in path.split('.') {
            cur = &cur[seg];
        }
        cur
    };
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => {
            if path == "spec.hostNetwork" || path == "spec.unschedulable" {
                "false".into()
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::res;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let l = json!({"app": "web", "tier": "fe"});
        for (s, want) in [
            ("app=web", true),
            ("app==web,tier=fe", true),
            ("app!=web", false),
            ("app in (api, web)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app in (web),tier notin (be)", true),
        ] {
            assert_eq!(LabelSelector::parse(s).unwrap().matches(&l), want, "{s}");
        }
        let sel = LabelSelector::from_json(&json!({"matchLabels": {"b": "2", "a": "1"}}));
        assert_eq!(sel.to_string(), "a=1,b=2");
    }

    #[test]
    fn field_selectors() {
        let ev = json!({"involvedObject": {"name": "p", "uid": "u"}, "reason": "Failed", "source": {"component": "kubelet"}});
        let f = FieldSelector::parse(
            res("events"),
            "involvedObject.name=p,involvedObject.uid=u,source=kubelet",
        )
        .unwrap();
        assert!(f.matches(&ev));
        let f = FieldSelector::parse(res("events"), "reason!=Failed").unwrap();
        assert!(!f.matches(&ev));
        let e = FieldSelector::parse(res("pods"), "spec.foo=x").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "field label not supported: spec.foo");
    }
}
