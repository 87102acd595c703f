//! URL paths → what is asked: discovery, OpenAPI, or a resource request.

use http::Method;

use super::http::Req;
use crate::error::{ApiError, ApiResult};
use crate::resources::{self, ResourceType};

#[derive(Debug)]
pub enum Route {
    Version,
    Health(String),
    ApiVersions,
    ApiGroups,
    ApiGroup(String),
    ResourceList(String, String),
    OpenApiRoot,
    /// "api/v1" or "apis/apps/v1".
    OpenApiGv(String),
    Resource(ResourceReq),
    NotFound,
}

/// A request on a REST resource.
#[derive(Debug, Clone)]
pub struct ResourceReq {
    pub rt: &'static ResourceType,
    /// None: cluster-scoped, or a namespaced list across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    /// `/watch/` path form.
    pub watch_path: bool,
}

pub fn parse(path: &str) -> Route {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        [h, ..] if matches!(*h, "healthz" | "readyz" | "livez") => Route::Health(h.to_string()),
        ["api"] => Route::ApiVersions,
        ["apis"] => Route::ApiGroups,
        ["api", "v1"] => Route::ResourceList(String::new(), "v1".into()),
        ["apis", g] => Route::ApiGroup(g.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", rest @ ..] => Route::OpenApiGv(rest.join("/")),
        ["api", "v1", rest @ ..] => resource("", "v1", rest),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_path, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let namespaced_rt = match rest {
        ["namespaces", _, plural, ..] => {
            resources::lookup(group, version, plural).filter(|r| r.namespaced)
        }
        _ => None,
    };
    let (rt, namespace, tail) = match namespaced_rt {
        Some(rt) => (rt, Some(rest[1].to_string()), &rest[3..]),
        None => {
            let Some(plural) = rest.first() else {
                return Route::NotFound;
            };
            let Some(rt) = resources::lookup(group, version, plural) else {
                return Route::NotFound;
            };
            if rt.namespaced && rest.len() > 1 {
                return Route::NotFound;
            }
            (rt, None, &rest[1..])
        }
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [n] => (Some(n.to_string()), None),
        [n, s] => {
            if !rt.has_subresource(s) {
                return Route::NotFound;
            }
            (Some(n.to_string()), Some(s.to_string()))
        }
        _ => return Route::NotFound,
    };
    Route::Resource(ResourceReq {
        rt,
        namespace,
        name,
        sub,
        watch_path,
    })
}

/// The RBAC verb of a resource request.
pub fn verb(req: &Req, r: &ResourceReq) -> ApiResult<&'static str> {
    let m = &req.method;
    let v = if *m == Method::GET {
        if r.name.is_some() && !r.watch_path {
            "get"
        } else if r.watch_path || req.q_bool("watch") {
            "watch"
        } else {
            "list"
        }
    } else if *m == Method::POST {
        "create"
    } else if *m == Method::PUT {
        "update"
    } else if *m == Method::PATCH {
        "patch"
    } else if *m == Method::DELETE {
        if r.name.is_some() {
            "delete"
        } else {
            "deletecollection"
        }
    } else {
        return Err(ApiError::method_not_allowed());
    };
    // Which verbs each shape of path supports.
    let ok = match (v, r.name.is_some(), r.sub.as_deref()) {
        ("get" | "update" | "patch" | "delete", true, None) => true,
        ("list" | "watch" | "deletecollection", false, None) => true,
        ("watch", true, None) => true,
        ("create", false, None) => r.namespace.is_some() || !r.rt.namespaced,
        ("get", true, Some("log")) => true,
        ("get" | "update" | "patch", true, Some("status" | "scale")) => true,
        ("create", true, Some("eviction")) => true,
        _ => false,
    };
    if !ok || !r.rt.verbs.contains(&v) && r.sub.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let Route::Resource(r) = parse("/apis/apps/v1/namespaces/prod/deployments/web/scale")
        else {
            panic!()
        };
        assert_eq!(r.rt.plural, "deployments");
        assert_eq!(r.namespace.as_deref(), Some("prod"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.sub.as_deref(), Some("scale"));
        let Route::Resource(r) = parse("/api/v1/namespaces/prod") else {
            panic!()
        };
        assert_eq!(r.rt.plural, "namespaces");
        assert_eq!(r.name.as_deref(), Some("prod"));
        let Route::Resource(r) = parse("/api/v1/pods") else {
            panic!()
        };
        assert!(r.namespace.is_none() && r.name.is_none());
        let Route::Resource(r) = parse("/api/v1/watch/namespaces/a/pods/x") else {
            panic!()
        };
        assert!(r.watch_path);
        assert!(matches!(parse("/api/v1/pods/x"), Route::NotFound));
        assert!(matches!(
            parse("/apis/apps/v1/namespaces/a/deployments/x/log"),
            Route::NotFound
        ));
        assert!(matches!(
            parse("/openapi/v3/apis/apps/v1"),
            Route::OpenApiGv(_)
        ));
    }
}
