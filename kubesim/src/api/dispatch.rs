//! Authenticate, authorize and route one request to discovery, OpenAPI or
//! the REST verbs.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::watch as wch;

use super::{discovery, http, openapi, rest, routes};
use crate::error::{ApiError, ApiResult};
use crate::sim::Sim;

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
