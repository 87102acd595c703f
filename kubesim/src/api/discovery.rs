//! `/version` and API discovery: aggregated (apidiscovery.k8s.io/v2) and
//! legacy (APIVersions, APIGroupList, APIGroup, APIResourceList).

use serde_json::{Value, json};

use super::http::{self, Req, Resp};
use crate::error::{ApiError, ApiResult};
use crate::resources::{self, ResourceType};

pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "36",
        "emulationMajor": "1",
        "emulationMinor": "36",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "35",
        "gitVersion": "v1.36.2-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Which aggregated discovery version the client accepts, if any.
fn wants_aggregated(req: &Req) -> Option<(&'static str, &'static str)> {
    let accept = req.header(::http::header::ACCEPT).replace(' ', "");
    for m in accept.split(',') {
        if m.contains("g=apidiscovery.k8s.io") && m.contains("as=APIGroupDiscoveryList") {
            if m.contains("v=v2beta1") {
                return Some(("v2beta1", AGGREGATED_V2BETA1));
            }
            if m.contains("v=v2") {
                return Some(("v2", AGGREGATED_V2));
            }
        }
    }
    None
}

/// `GET /api`.
pub fn api(req: &Req) -> Resp {
    if let Some((v, ct)) = wants_aggregated(req) {
        return http::json_ct(200, ct, &aggregated(v, true));
    }
    http::json(
        200,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
        }),
    )
}

/// `GET /apis`.
pub fn apis(req: &Req) -> Resp {
    if let Some((v, ct)) = wants_aggregated(req) {
        return http::json_ct(200, ct, &aggregated(v, false));
    }
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| api_group(g, v))
        .collect();
    http::json(
        200,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

fn api_group(g: &str, v: &str) -> Value {
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis/<group>`.
pub fn group(g: &str) -> ApiResult<Value> {
    let (g, v) = resources::groups()
        .into_iter()
        .find(|(name, _)| *name == g && !g.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
    let mut out = api_group(g, v);
    out["kind"] = json!("APIGroup");
    out["apiVersion"] = json!("v1");
    Ok(out)
}

/// The verbs and response kind of a subresource.
fn sub_info(
    rt: &ResourceType,
    sub: &str,
    kind: &str,
) -> (Vec<&'static str>, &'static str, &'static str, String) {
    match sub {
        "scale" => (
            vec!["get", "patch", "update"],
            "autoscaling",
            "v1",
            "Scale".into(),
        ),
        "log" => (vec!["get"], "", "v1", "Pod".into()),
        "eviction" => (vec!["create"], "policy", "v1", "Eviction".into()),
        _ => (
            vec!["get", "patch", "update"],
            rt.group,
            rt.version,
            kind.to_string(),
        ),
    }
}

/// A resource's discovery entry with its short names and categories, when
/// it has any (both discovery forms list them under the same keys).
fn with_aliases(mut entry: Value, rt: &ResourceType) -> Value {
    if !rt.short_names.is_empty() {
        entry["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        entry["categories"] = json!(rt.categories);
    }
    entry
}

/// `GET /api/v1`, `GET /apis/<group>/<version>`.
pub fn resource_list(g: &str, v: &str) -> ApiResult<Value> {
    let mut items = Vec::new();
    for rt in resources::in_group(g, v) {
        let r = with_aliases(
            json!({
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": rt.verbs,
            }),
            rt,
        );
        items.push(r);
        for (sub, kind) in rt.subresources {
            let (verbs, sg, sv, skind) = sub_info(rt, sub, kind);
            let mut s = json!({
                "name": format!("{}/{}", rt.plural, sub),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": skind,
                "verbs": verbs,
            });
            if sg != rt.group || sv != rt.version {
                s["group"] = json!(sg);
                s["version"] = json!(sv);
            }
            items.push(s);
        }
    }
    if items.is_empty() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}),
    )
}

/// The aggregated discovery document for `/api` (core) or `/apis`.
fn aggregated(version: &str, core: bool) -> Value {
    let mut items = Vec::new();
    for (g, v) in resources::groups() {
        if g.is_empty() != core {
            continue;
        }
        let mut res = Vec::new();
        for rt in resources::in_group(g, v) {
            let mut r = with_aliases(
                json!({
                    "resource": rt.plural,
                    "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                    "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": rt.singular,
                    "verbs": rt.verbs,
                }),
                rt,
            );
            let subs: Vec<Value> = rt
                .subresources
                .iter()
                .map(|(sub, kind)| {
                    let (verbs, sg, sv, skind) = sub_info(rt, sub, kind);
                    json!({
                        "subresource": sub,
                        "responseKind": {"group": sg, "version": sv, "kind": skind},
                        "verbs": verbs,
                    })
                })
                .collect();
            if !subs.is_empty() {
                r["subresources"] = json!(subs);
            }
            res.push(r);
        }
        items.push(json!({
            "metadata": {"name": g, "creationTimestamp": null},
            "versions": [{"version": v, "resources": res, "freshness": "Current"}],
        }));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}
