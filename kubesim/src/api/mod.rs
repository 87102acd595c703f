//! The API server: HTTP(S) transport, authentication and RBAC, discovery,
//! OpenAPI, and the REST verbs over the store.

pub mod admin;
pub mod apply;
pub mod defaults;
pub mod discovery;
pub mod http;
pub mod listener;
pub mod listener_ctl;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rest;
pub mod routes;
pub mod selectors;
pub mod ssar;
pub mod table;
pub mod validate;
pub mod watch;

pub use metrics::{AgentStats, Metrics};

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch as wch;

use crate::sim::Sim;
use crate::clock::fmt_time;
use crate::error::{ApiError, ApiResult};
use crate::resources::{self, ResourceType};

/// Options of a DELETE (body `DeleteOptions` or query parameters).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub preconditions_uid: Option<String>,
}

/// Serve until `shutdown` turns true.
pub async fn serve(
    sim: Arc<Sim>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: wch::Receiver<bool>,
) {
    http::serve(sim, listener, tls, shutdown).await
}

/// Authenticate, authorize and route one request.
pub(crate) async fn dispatch(
    sim: &Arc<Sim>,
    req: &http::Req,
    shutdown: wch::Receiver<bool>,
) -> http::Resp {
    match dispatch_inner(sim, req, shutdown).await {
        Ok(r) => r,
        Err(e) => http::error(&e),
    }
}

async fn dispatch_inner(
    sim: &Arc<Sim>,
    req: &http::Req,
    shutdown: wch::Receiver<bool>,
) -> ApiResult<http::Resp> {
    use routes::Route;
    let route = routes::parse(&req.path);
    // Authentication: a bearer token from the identities; the public
    // health and version endpoints are open to anonymous callers.
    let auth = req.header(::http::header::AUTHORIZATION);
    let token = auth.strip_prefix("Bearer ").map(str::trim);
    let identity = match token {
        Some(t) => Some(
            sim.identities
                .read()
                .expect("identities lock")
                .authenticate(t)
                .cloned()
                .ok_or_else(ApiError::unauthorized)?,
        ),
        None => None,
    };
    let public = matches!(route, Route::Version | Route::Health(_));
    let identity = match identity {
        Some(i) => i,
        None if public => crate::auth::Identity {
            user: "system:anonymous".into(),
            rules: Vec::new(),
        },
        None => return Err(ApiError::unauthorized()),
    };
    if !acceptable(req) {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {:?}",
                req.header(::http::header::ACCEPT)
            ),
        ));
    }
    match route {
        Route::Version => Ok(http::json(200, &discovery::version())),
        Route::Health(_) => Ok(http::full(200, "text/plain; charset=utf-8", "ok")),
        Route::ApiVersions => Ok(discovery::api(req)),
        Route::ApiGroups => Ok(discovery::apis(req)),
        Route::ApiGroup(g) => discovery::group(&g).map(|v| http::json(200, &v)),
        Route::ResourceList(g, v) => discovery::resource_list(&g, &v).map(|v| http::json(200, &v)),
        Route::OpenApiRoot => Ok(http::json(200, &openapi::root())),
        Route::OpenApiGv(gv) => openapi::document(&gv).map(|v| http::json(200, &v)),
        Route::NotFound => Err(not_found_path()),
        Route::Resource(r) => {
            let verb = routes::verb(req, &r)?;
            let attrs = crate::auth::Attributes {
                verb: verb.to_string(),
                group: r.rt.group.to_string(),
                resource: r.rt.plural.to_string(),
                subresource: r.sub.clone().unwrap_or_default(),
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
            };
            // Self-reviews are open to every authenticated user (system:basic-user).
            let self_review = r.rt.group == "authorization.k8s.io";
            if !self_review && !identity.allowed(&attrs) {
                let mut e =
                    ApiError::new(403, "Forbidden", attrs.forbidden_message(&identity.user));
                let mut d = json!({"kind": r.rt.plural});
                if !attrs.name.is_empty() {
                    d["name"] = json!(attrs.name);
                }
                if !r.rt.group.is_empty() {
                    d["group"] = json!(r.rt.group);
                }
                e.details = Some(d);
                return Err(e);
            }
            rest::handle(sim, req, &r, verb, &identity, shutdown).await
        }
    }
}

/// 404 for a path nothing serves (upstream's plain "404 page not found" is
/// a Status with reason NotFound for API clients).
fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// Whether the Accept header admits JSON.
fn acceptable(req: &http::Req) -> bool {
    let accept = req.header(::http::header::ACCEPT);
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|m| {
        let base = m.split(';').next().unwrap_or("").trim();
        matches!(
            base,
            "application/json"
                | "*/*"
                | "application/*"
                | "application/yaml"
                | "text/plain"
                | "text/*"
        )
    })
}

/// The resource type of an object from its `apiVersion`/`kind`.
pub fn resource_of(obj: &Value) -> ApiResult<&'static ResourceType> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    resources::by_kind(group, kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no resource for apiVersion {api_version:?} kind {kind:?}"
        ))
    })
}

/// Create an object as `POST` would (defaulting, validation), bypassing HTTP.
pub fn create_object(sim: &Sim, obj: Value) -> ApiResult<Arc<Value>> {
    let rt = resource_of(&obj)?;
    let ns = if rt.namespaced {
        obj["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    rest::create_in(sim, rt, &ns, obj, false)
}

/// Delete an object as `DELETE` would: graceful for bound pods, immediate
/// otherwise; `Orphan` strips the dependents' ownerReferences first.
pub fn delete_object(
    sim: &Sim,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Arc<Value>> {
    let cur = sim.store.get(rt, ns, name)?;
    if let Some(uid) = &opts.preconditions_uid
        && cur["metadata"]["uid"].as_str() != Some(uid.as_str())
    {
        return Err(ApiError::conflict_precondition(
            rt,
            name,
            uid,
            cur["metadata"]["uid"].as_str().unwrap_or(""),
        ));
    }
    if rt.group.is_empty() && rt.plural == "pods" {
        let bound = cur["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let terminating = !cur["metadata"]["deletionTimestamp"].is_null();
        let grace = opts
            .grace_period_seconds
            .or_else(|| cur["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0);
        if bound && grace > 0 {
            if terminating {
                // Shortening an ongoing graceful deletion is allowed; otherwise a no-op.
                let cur_grace = cur["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(i64::MAX);
                if grace >= cur_grace {
                    return Ok(cur);
                }
            }
            let at = sim.clock.now() + Duration::from_secs(grace as u64);
            return sim.store.modify(rt, ns, name, |o| {
                o["metadata"]["deletionTimestamp"] = json!(fmt_time(at));
                o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                Ok(true)
            });
        }
    }
    if opts.propagation_policy.as_deref() == Some("Orphan")
        && let Some(uid) = cur["metadata"]["uid"].as_str()
    {
        orphan_dependents(sim, uid);
    }
    sim.store.delete(rt, ns, name)
}

/// Remove ownerReferences pointing at `uid` from every object.
fn orphan_dependents(sim: &Sim, uid: &str) {
    for rt in resources::RESOURCES {
        if rt.group == "events.k8s.io" {
            continue;
        }
        let (items, _) = sim.store.list(rt, None);
        for it in items {
            let refs = it["metadata"]["ownerReferences"].as_array();
            if !refs.is_some_and(|r| r.iter().any(|o| o["uid"].as_str() == Some(uid))) {
                continue;
            }
            let ns = it["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = it["metadata"]["name"].as_str().unwrap_or("").to_string();
            let _ = sim.store.modify(rt, &ns, &name, |o| {
                if let Some(m) = o["metadata"].as_object_mut() {
                    let keep: Vec<Value> = m
                        .get("ownerReferences")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter(|r| r["uid"].as_str() != Some(uid))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    if keep.is_empty() {
                        m.remove("ownerReferences");
                    } else {
                        m.insert("ownerReferences".into(), Value::Array(keep));
                    }
                }
                Ok(true)
            });
        }
    }
}
