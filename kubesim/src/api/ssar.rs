//! SelfSubjectAccessReview and SelfSubjectRulesReview: answered from the
//! caller's own rules, without storing anything.

use serde_json::{Value, json};

use crate::auth::{Attributes, Identity};
use crate::error::{ApiError, ApiResult};

/// Non-resource URLs every authenticated user may GET.
const PUBLIC_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

fn is_admin(id: &Identity) -> bool {
    id.rules.iter().any(|r| {
        r.verbs.iter().any(|v| v == "*")
            && r.resources.iter().any(|x| x == "*")
            && r.namespaces.iter().any(|n| n == "*")
    })
}

fn url_allowed(path: &str) -> bool {
    PUBLIC_URLS.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => *p == path,
    })
}

/// `POST selfsubjectaccessreviews`.
pub fn access_review(id: &Identity, body: &Value) -> ApiResult<Value> {
    let spec = &body["spec"];
    let allowed = if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let s = |k: &str| ra[k].as_str().unwrap_or("").to_string();
        let mut resource = s("resource");
        let mut subresource = s("subresource");
        if subresource.is_empty()
            && let Some((r, sub)) = resource.clone().split_once('/')
        {
            resource = r.to_string();
            subresource = sub.to_string();
        }
        id.allowed(&Attributes {
            verb: s("verb"),
            group: s("group"),
            resource,
            subresource,
            namespace: s("namespace"),
            name: s("name"),
        })
    } else if let Some(na) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        let path = na["path"].as_str().unwrap_or("");
        let verb = na["verb"].as_str().unwrap_or("");
        is_admin(id) || (verb == "get" && url_allowed(path))
    } else {
        return Err(ApiError::new(
            422,
            "Invalid",
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let mut out = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {"allowed": allowed},
    });
    if allowed {
        out["status"]["reason"] = json!(format!(
            "RBAC: allowed by kubesim rules of User {:?}",
            id.user
        ));
    }
    Ok(out)
}

/// `POST selfsubjectrulesreviews`.
pub fn rules_review(id: &Identity, body: &Value) -> ApiResult<Value> {
    let ns = body["spec"]["namespace"].as_str().unwrap_or("");
    let rules: Vec<Value> = id
        .rules
        .iter()
        .filter(|r| r.namespaces.iter().any(|n| n == "*" || n == ns))
        .map(|r| json!({"verbs": r.verbs, "apiGroups": r.groups, "resources": r.resources}))
        .collect();
    let non_resource = if is_admin(id) {
        json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}])
    } else {
        json!([{"verbs": ["get"], "nonResourceURLs": PUBLIC_URLS}])
    };
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": body["spec"],
        "status": {"resourceRules": rules, "nonResourceRules": non_resource, "incomplete": false},
    }))
}
