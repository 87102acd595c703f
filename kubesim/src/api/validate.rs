//! Validation of written objects, with upstream field paths and messages.

use serde_json::Value;

use super::selectors::LabelSelector;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        })
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn label_key_error(k: &str) -> Option<String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Some(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 bytes".into());
    }
    if !is_label_value(name) {
        return Some(QUALIFIED_NAME_MSG.into());
    }
    None
}

fn go_map(v: &Value) -> String {
    let parts: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    format!("map[string]string{{{}}}", parts.join(", "))
}

fn labels(field: &str, v: &Value, causes: &mut Vec<(String, String)>) {
    let Some(m) = v.as_object() else { return };
    for (k, val) in m {
        if let Some(msg) = label_key_error(k) {
            causes.push((field.into(), format!("Invalid value: {k:?}: {msg}")));
        }
        let s = val.as_str().unwrap_or("");
        if !is_label_value(s) {
            causes.push((
                field.into(),
                format!("Invalid value: {s:?}: {LABEL_VALUE_MSG}"),
            ));
        }
    }
}

fn pod_spec(field: &str, spec: &Value, causes: &mut Vec<(String, String)>) {
    let cs = spec["containers"].as_array();
    if cs.is_none_or(|c| c.is_empty()) {
        causes.push((format!("{field}.containers"), "Required value".into()));
        return;
    }
    for (i, c) in cs.into_iter().flatten().enumerate() {
        if c["name"].as_str().is_none_or(str::is_empty) {
            causes.push((
                format!("{field}.containers[{i}].name"),
                "Required value".into(),
            ));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            causes.push((
                format!("{field}.containers[{i}].image"),
                "Required value".into(),
            ));
        }
    }
}

fn err(rt: &ResourceType, name: &str, causes: Vec<(String, String)>) -> ApiResult<()> {
    if causes.is_empty() {
        return Ok(());
    }
    let c: Vec<(&str, String)> = causes
        .iter()
        .map(|(f, m)| (f.as_str(), m.clone()))
        .collect();
    Err(ApiError::invalid(rt, name, &c))
}

/// Validate an object about to be stored (`old` on update).
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    if !name.is_empty() && !is_dns_subdomain(name) && rt.plural != "events" {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: {DNS1123_SUBDOMAIN_MSG}"),
        ));
    }
    labels("metadata.labels", &obj["metadata"]["labels"], &mut causes);
    let spec = &obj["spec"];
    let workload = matches!(
        (rt.group, rt.plural),
        (
            "apps",
            "deployments" | "replicasets" | "statefulsets" | "daemonsets"
        ) | ("", "replicationcontrollers")
    );
    if workload {
        if let Some(r) = spec["replicas"].as_i64()
            && r < 0
        {
            causes.push((
                "spec.replicas".into(),
                format!("Invalid value: {r}: must be greater than or equal to 0"),
            ));
        }
        let tlabels = &spec["template"]["metadata"]["labels"];
        labels("spec.template.labels", tlabels, &mut causes);
        let sel = &spec["selector"];
        let empty_sel = sel.as_object().is_none_or(|m| m.is_empty())
            || (rt.group == "apps"
                && sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
                && sel["matchExpressions"]
                    .as_array()
                    .is_none_or(|a| a.is_empty()));
        if empty_sel {
            if rt.group == "apps" {
                causes.push(("spec.selector".into(), "Required value".into()));
            }
        } else if !LabelSelector::from_json(sel).matches(tlabels) {
            causes.push((
                "spec.template.metadata.labels".into(),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    go_map(tlabels)
                ),
            ));
        }
        if spec["template"].is_object() {
            pod_spec("spec.template.spec", &spec["template"]["spec"], &mut causes);
        } else {
            causes.push(("spec.template".into(), "Required value".into()));
        }
        if rt.group == "apps"
            && let Some(old) = old
            && old["spec"]["selector"] != spec["selector"]
        {
            causes.push((
                "spec.selector".into(),
                format!("Invalid value: {}: field is immutable", spec["selector"]),
            ));
        }
    }
    if rt.group.is_empty() && rt.plural == "pods" {
        pod_spec("spec", spec, &mut causes);
    }
    err(rt, name, causes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::res;
    use serde_json::json;

    #[test]
    fn deployment_selector_must_match() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "w", "image": "i"}]}}}});
        let e = validate(res("deployments.apps"), &d, None).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("`selector` does not match template `labels`"),
            "{}",
            e.message
        );
        assert!(
            e.message.starts_with("Deployment.apps \"web\" is invalid"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_label_value() {
        let p = json!({"metadata": {"name": "p", "labels": {"a": "bad value"}}, "spec": {"containers": [{"name": "w", "image": "i"}]}});
        assert_eq!(validate(res("pods"), &p, None).unwrap_err().code, 422);
    }
}
