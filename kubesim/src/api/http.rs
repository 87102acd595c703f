//! Transport: hyper 1 (HTTP/1.1 and HTTP/2) over TLS or plain TCP, one task
//! per connection, graceful stop on shutdown; request/response helpers.

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::ApiError;

pub type Body = BoxBody<Bytes, Infallible>;
pub type Resp = Response<Body>;

/// A request as a verb and a path pattern, the way the API server's audit
/// log groups them: the verb (`GET`/`LIST`/`WATCH` for reads, else the
/// HTTP method), the path with the namespace and object name replaced by
/// `{ns}` and `{name}`, and which selectors the query carried.
pub fn request_shape(method: &str, path: &str, query: &BTreeMap<String, String>) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // The resource part follows `/api/v1` or `/apis/GROUP/VERSION`.
    let prefix = match segs.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => segs.len(),
    }
    .min(segs.len());
    let mut out: Vec<String> = segs[..prefix].iter().map(|s| s.to_string()).collect();
    let mut rest = &segs[prefix..];
    if rest.len() >= 3 && rest[0] == "namespaces" {
        out.push("namespaces".into());
        out.push("{ns}".into());
        rest = &rest[2..];
    }
    let named = rest.len() >= 2;
    if let Some(r) = rest.first() {
        out.push(r.to_string());
    }
    if named {
        out.push("{name}".into());
        out.extend(rest[2..].iter().map(|s| s.to_string()));
    }
    let watch = matches!(
        query.get("watch").map(String::as_str),
        Some("true") | Some("1")
    );
    let verb = match method {
        "GET" if watch => "WATCH",
        "GET" if prefix < segs.len() && !named => "LIST",
        m => m,
    };
    let mut shape = format!("{verb} /{}", out.join("/"));
    let sel: Vec<&str> = ["labelSelector", "fieldSelector"]
        .into_iter()
        .filter(|k| query.get(*k).is_some_and(|v| !v.is_empty()))
        .collect();
    if !sel.is_empty() {
        shape.push('?');
        shape.push_str(&sel.join("&"));
    }
    shape
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}

/// Serve plain HTTP on `listener` until `shutdown` turns true, every request
/// answered by `handle` (the admin and metrics side servers); `what` names
/// the server in accept warnings.
pub async fn serve_plain<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    handle: F,
) where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let builder = Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "{what} accept failed");
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let (handle, builder) = (handle.clone(), builder.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = handle(req);
                async move { Ok::<_, Infallible>(resp.await) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// One request as the handlers see it.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub user_agent: String,
}

impl Req {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(|s| s.as_str())
    }

    pub fn q_bool(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true") | Some("1"))
    }

    pub fn header(&self, k: header::HeaderName) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }
}

pub fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let body: Bytes = body.into();
    let len = body.len();
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

pub fn json(status: u16, v: &Value) -> Resp {
    json_ct(status, "application/json", v)
}

pub fn json_ct(status: u16, content_type: &str, v: &Value) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_default();
    full(status, content_type, body)
}

pub fn error(e: &ApiError) -> Resp {
    let mut r = json(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::request_shape;
    use std::collections::BTreeMap;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shapes_group_requests_by_verb_and_pattern() {
        let none = q(&[]);
        assert_eq!(
            request_shape(
                "GET",
                "/apis/apps/v1/namespaces/prod/deployments/web",
                &none
            ),
            "GET /apis/apps/v1/namespaces/{ns}/deployments/{name}"
        );
        assert_eq!(
            request_shape(
                "GET",
                "/api/v1/namespaces/prod/pods",
                &q(&[("watch", "true"), ("labelSelector", "app=web")])
            ),
            "WATCH /api/v1/namespaces/{ns}/pods?labelSelector"
        );
        assert_eq!(
            request_shape(
                "GET",
                "/api/v1/namespaces/prod/events",
                &q(&[("fieldSelector", "involvedObject.name=web-1")])
            ),
            "LIST /api/v1/namespaces/{ns}/events?fieldSelector"
        );
        assert_eq!(
            request_shape("GET", "/api/v1/namespaces/prod/pods/web-1/log", &none),
            "GET /api/v1/namespaces/{ns}/pods/{name}/log"
        );
        assert_eq!(
            request_shape("GET", "/api/v1/namespaces/prod", &none),
            "GET /api/v1/namespaces/{name}"
        );
        assert_eq!(
            request_shape(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                &none
            ),
            "POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
        );
        assert_eq!(request_shape("GET", "/version", &none), "GET /version");
        assert_eq!(request_shape("GET", "/apis", &none), "GET /apis");
    }
}
