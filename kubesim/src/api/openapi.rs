//! OpenAPI v3: the root index and one document per group version, with the
//! paths, operations, `x-kubernetes-group-version-kind` and query parameters
//! (`fieldValidation`, `dryRun`, `fieldManager`) kubectl checks before it
//! sends `fieldValidation=Strict`. Schemas are deliberately absent: kubectl
//! then computes client-side apply patches from its built-in types.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::resources::{self, ResourceType};

fn gv_path(g: &str, v: &str) -> String {
    if g.is_empty() {
        format!("api/{v}")
    } else {
        format!("apis/{g}/{v}")
    }
}

fn hash_of(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    let a = h.finish();
    a.hash(&mut h);
    format!("{:016X}{:016X}", a, h.finish())
}

/// `GET /openapi/v3`.
pub fn root() -> Value {
    let mut paths = Map::new();
    for (g, v) in resources::groups() {
        let p = gv_path(g, v);
        let doc = build(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash_of(&doc))}),
        );
    }
    json!({ "paths": paths })
}

/// `GET /openapi/v3/<api/v1|apis/g/v>`.
pub fn document(gv: &str) -> ApiResult<Value> {
    for (g, v) in resources::groups() {
        if gv_path(g, v) == gv {
            return Ok(build(g, v));
        }
    }
    Err(ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

fn param(name: &str, location: &str) -> Value {
    let mut p =
        json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}});
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn op(
    rt: &ResourceType,
    action: &str,
    kind: &str,
    group: &str,
    version: &str,
    params: &[&str],
) -> Value {
    let mut o = json!({
        "operationId": format!("{action}{}", rt.kind),
        "parameters": params.iter().map(|p| param(p, "query")).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
    });
    if matches!(action, "post" | "put" | "patch") {
        o["requestBody"] =
            json!({"content": {"*/*": {"schema": {"type": "object"}}}, "required": true});
    }
    o
}

const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "pretty"];
const PATCH: &[&str] = &[
    "dryRun",
    "fieldManager",
    "fieldValidation",
    "force",
    "pretty",
];
const LIST: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
    "pretty",
];
const DELETE: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "propagationPolicy",
    "pretty",
];

fn build(g: &str, v: &str) -> Value {
    let mut paths = Map::new();
    for rt in resources::in_group(g, v) {
        let base = if g.is_empty() {
            format!("/api/{v}")
        } else {
            format!("/apis/{g}/{v}")
        };
        let coll = if rt.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{base}/{}", rt.plural)
        };
        let mut path_params = vec![param("name", "path")];
        if rt.namespaced {
            path_params.push(param("namespace", "path"));
        }
        let coll_params: Vec<Value> = path_params.iter().skip(1).cloned().collect();
        let creatable_only = rt.verbs == ["create"];
        let mut c = json!({"parameters": coll_params});
        if rt.verbs.contains(&"create") {
            c["post"] = op(rt, "post", rt.kind, rt.group, rt.version, WRITE);
        }
        if !creatable_only {
            c["get"] = op(rt, "list", rt.kind, rt.group, rt.version, LIST);
            c["delete"] = op(rt, "deletecollection", rt.kind, rt.group, rt.version, LIST);
            let item = json!({
                "parameters": path_params,
                "get": op(rt, "get", rt.kind, rt.group, rt.version, &["pretty"]),
                "put": op(rt, "put", rt.kind, rt.group, rt.version, WRITE),
                "patch": op(rt, "patch", rt.kind, rt.group, rt.version, PATCH),
                "delete": op(rt, "delete", rt.kind, rt.group, rt.version, DELETE),
            });
            paths.insert(format!("{coll}/{{name}}"), item);
            if rt.namespaced {
                paths.insert(
                    format!("{base}/{}", rt.plural),
                    json!({"get": op(rt, "list", rt.kind, rt.group, rt.version, LIST)}),
                );
            }
            for (sub, kind) in rt.subresources {
                let (sg, sv, sk) = match *sub {
                    "scale" => ("autoscaling", "v1", "Scale"),
                    "eviction" => ("policy", "v1", "Eviction"),
                    _ => (rt.group, rt.version, *kind),
                };
                let mut s = json!({"parameters": path_params});
                match *sub {
                    "log" => {
                        s["get"] = op(
                            rt,
                            "connect",
                            sk,
                            sg,
                            sv,
                            &["container", "previous", "tailLines"],
                        )
                    }
                    "eviction" => s["post"] = op(rt, "post", sk, sg, sv, WRITE),
                    _ => {
                        s["get"] = op(rt, "get", sk, sg, sv, &["pretty"]);
                        s["put"] = op(rt, "put", sk, sg, sv, WRITE);
                        s["patch"] = op(rt, "patch", sk, sg, sv, PATCH);
                    }
                }
                paths.insert(format!("{coll}/{{name}}/{sub}"), s);
            }
        }
        paths.insert(coll, c);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.36.2-kubesim"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}
