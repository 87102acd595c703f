//! Fault injection, observed over HTTP with real clients (reqwest, kubectl),
//! per-User-Agent metrics, the admin API, and Leases (optimistic concurrency).

use crate::common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use kubesim::{Config, Handle};
use serde_json::{Value, json};

struct Api {
    h: Handle,
    c: reqwest::Client,
}

async fn start() -> Api {
    let h = kubesim::start(Config {
        tls: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .user_agent("faults-test/1.0")
        .build()
        .unwrap();
    Api { h, c }
}

impl Api {
    fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.c
            .request(m, format!("{}{}", self.h.base_url, path))
            .bearer_auth(&self.h.token)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = rb.send().await.unwrap();
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            code,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn call(&self, method: &str, path: &str, body: Option<(&str, Value)>) -> (u16, Value) {
        let mut rb = self.req(method, path);
        if let Some((ct, b)) = body {
            rb = rb.header("content-type", ct).body(b.to_string());
        }
        let (c, _, v) = self.send(rb).await;
        (c, v)
    }

    /// The status code of a GET of `path`.
    async fn code_of_get(&self, path: &str) -> u16 {
        self.call("GET", path, None).await.0
    }

    async fn create_cm(&self, name: &str) -> Value {
        let (c, v) = self
            .call(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                Some((
                    "application/json",
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}),
                )),
            )
            .await;
        assert_eq!(c, 201, "{v}");
        v
    }
}

#[tokio::test]
async fn fail_next_with_retry_after_matches_method_and_glob() {
    let a = start().await;
    a.h.faults()
        .fail_next(2, "GET", "/api/v1/namespaces/*/pods", 429, Some(1));
    // Other methods and paths are not affected.
    assert_eq!(
        a.code_of_get("/api/v1/namespaces/default/configmaps").await,
        200
    );
    for _ in 0..2 {
        let (c, h, v) = a
            .send(a.req("GET", "/api/v1/namespaces/default/pods"))
            .await;
        assert_eq!(c, 429, "{v}");
        assert_eq!(h.get("retry-after").unwrap(), "1");
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["details"]["retryAfterSeconds"], 1);
        assert_eq!(v["kind"], "Status");
    }
    assert_eq!(a.code_of_get("/api/v1/namespaces/default/pods").await, 200);

    // A prefix pattern (no glob characters) and a 503.
    a.h.faults().fail_next(1, "*", "/apis/apps", 503, None);
    let (c, v) = a
        .call("GET", "/apis/apps/v1/namespaces/default/deployments", None)
        .await;
    assert_eq!(c, 503);
    assert_eq!(v["reason"], "ServiceUnavailable");
    assert_eq!(
        a.code_of_get("/apis/apps/v1/namespaces/default/deployments")
            .await,
        200
    );
    a.h.shutdown().await;
}

#[tokio::test]
async fn kubectl_retries_429_and_503_with_retry_after() {
    let kubectl = require_tool!("kubectl");
    // kubectl sends bearer tokens over TLS only: serve HTTPS here.
    let h = kubesim::start(Config::default()).await.unwrap();
    let k = common::Client::new(kubectl, &h.kubeconfig_yaml());
    h.faults()
        .fail_next(1, "GET", "/api/v1/namespaces/default/pods", 429, Some(1));
    h.faults()
        .fail_next(1, "GET", "/api/v1/namespaces/default/pods", 503, Some(1));
    let t = Instant::now();
    let out = k.arun(&["get", "pods", "-o", "name"]).await;
    assert_eq!(out.code, 0, "{out:#?}");
    // Both failures were honoured (Retry-After: 1 twice).
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    assert!(h.faults().view().fail_next.is_empty());

    // Without Retry-After a 500 is not retried: kubectl reports the error.
    h.faults()
        .fail_next(1, "GET", "/api/v1/namespaces/default/pods", 500, None);
    let out = k.arun(&["get", "pods"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("injected fault"), "{out:#?}");
    h.shutdown().await;
}

#[tokio::test]
async fn fail_fraction_is_seeded_and_cleared() {
    let a = start().await;
    let mut outcomes = Vec::new();
    for round in 0..2 {
        a.h.faults().fail_fraction_seeded(0.2, &[500, 503], 42);
        let mut codes = Vec::new();
        for _ in 0..200 {
            codes.push(a.code_of_get("/api/v1/namespaces/default/configmaps").await);
        }
        let failed = codes.iter().filter(|c| **c != 200).count();
        assert!(
            (20..=60).contains(&failed),
            "round {round}: {failed} failures"
        );
        assert!(codes.iter().all(|c| matches!(c, 200 | 500 | 503)));
        assert!(codes.contains(&500) && codes.contains(&503));
        outcomes.push(codes);
    }
    // Same seed, same sequence.
    assert_eq!(outcomes[0], outcomes[1]);
    a.h.faults().clear();
    for _ in 0..50 {
        assert_eq!(
            a.code_of_get("/api/v1/namespaces/default/configmaps").await,
            200
        );
    }
    a.h.shutdown().await;
}

#[tokio::test]
async fn latency_delays_every_response() {
    let a = start().await;
    a.h.faults().latency(300);
    for path in ["/version", "/api/v1/namespaces/default/configmaps"] {
        let t = Instant::now();
        assert_eq!(a.code_of_get(path).await, 200);
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }
    a.h.faults().latency(0);
    let t = Instant::now();
    a.call("GET", "/version", None).await;
    assert!(t.elapsed() < Duration::from_millis(250));
    a.h.shutdown().await;
}

#[tokio::test]
async fn conflict_next_write_of_a_named_object() {
    let a = start().await;
    a.create_cm("cm").await;
    a.create_cm("other").await;
    a.h.faults()
        .conflict_next_write("configmaps", "default", "cm");
    let patch = Some(("application/merge-patch+json", json!({"data": {"k": "2"}})));
    // Reads and writes of other objects are untouched.
    assert_eq!(
        a.code_of_get("/api/v1/namespaces/default/configmaps/cm")
            .await,
        200
    );
    let patch_cm = |name: &str| {
        let (a, path) = (&a, format!("/api/v1/namespaces/default/configmaps/{name}"));
        let body = patch.clone();
        async move { a.call("PATCH", &path, body).await }
    };
    let (c, _) = patch_cm("other").await;
    assert_eq!(c, 200);
    // The named object's next write conflicts, once.
    let (c, v) = patch_cm("cm").await;
    assert_eq!(c, 409, "{v}");
    assert_eq!(v["reason"], "Conflict");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("Operation cannot be fulfilled on configmaps \"cm\""),
        "{message}"
    );
    let (c, v) = patch_cm("cm").await;
    assert_eq!(c, 200);
    assert_eq!(v["data"]["k"], "2");
    a.h.shutdown().await;
}

#[tokio::test]
async fn compact_makes_old_resource_versions_gone() {
    let a = start().await;
    let cm = a.create_cm("cm").await;
    let old_rv = common::resource_version(&cm);
    a.create_cm("cm2").await;
    a.h.faults().compact();
    let (c, v) = a
        .call(
            "GET",
            &format!(
                "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old_rv}&timeoutSeconds=5"
            ),
            None,
        )
        .await;
    assert_eq!(c, 200);
    let first: Value = match &v {
        Value::String(s) => serde_json::from_str(s.lines().next().unwrap()).unwrap(),
        other => other.clone(),
    };
    assert_eq!(first["type"], "ERROR", "{v}");
    assert_eq!(first["object"]["code"], 410);
    assert_eq!(first["object"]["reason"], "Expired");
    a.h.shutdown().await;
}

#[tokio::test]
async fn drop_watches_ends_streams_cleanly() {
    let a = start().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let resp = a
            .req("GET", "/api/v1/namespaces/default/configmaps?watch=true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        streams.push(resp.bytes_stream());
    }
    // The streams are live: a change reaches them.
    a.create_cm("cm").await;
    for s in streams.iter_mut() {
        let chunk = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&chunk).contains("\"ADDED\""));
    }
    a.h.faults().drop_watches();
    for s in streams.iter_mut() {
        // Ends with no error (a clean end of the chunked body).
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(c) = s.next().await {
                c.unwrap();
            }
        })
        .await;
        assert!(end.is_ok(), "watch did not end");
    }
    // New watches work.
    let resp = a
        .req(
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    a.h.shutdown().await;
}

#[tokio::test]
async fn listener_stop_and_restart_keeps_the_store() {
    let a = start().await;
    a.create_cm("kept").await;
    let f = a.h.faults();
    f.stop_listener().await;
    assert!(!f.listening());
    let fresh = reqwest::Client::builder().build().unwrap();
    let err = fresh
        .get(format!("{}/version", a.h.base_url))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // The controllers and store keep running meanwhile.
    assert!(a.h.get("v1", "ConfigMap", "default", "kept").is_some());
    f.start_listener().await.unwrap();
    assert!(f.listening());
    let (c, v) = a
        .call("GET", "/api/v1/namespaces/default/configmaps/kept", None)
        .await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["data"]["k"], "v");
    // Stop/start twice more: idempotent start, same port.
    f.start_listener().await.unwrap();
    f.stop_listener().await;
    f.start_listener().await.unwrap();
    assert_eq!(a.code_of_get("/version").await, 200);
    a.h.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_and_bytes_per_user_agent() {
    let a = start().await;
    a.h.sim.metrics.reset();
    for _ in 0..3 {
        let (c, _, _) = a
            .send(
                a.req("GET", "/api/v1/namespaces")
                    .header("user-agent", "bench-a/1.0"),
            )
            .await;
        assert_eq!(c, 200);
    }
    a.send(a.req("GET", "/version").header("user-agent", "bench-b/1.0"))
        .await;
    // Failed (injected) requests count too.
    a.h.faults().fail_next(1, "GET", "/version", 500, None);
    a.send(a.req("GET", "/version").header("user-agent", "bench-b/1.0"))
        .await;
    let m = a.h.metrics();
    assert_eq!(m["bench-a/1.0"].requests, 3);
    assert!(m["bench-a/1.0"].response_bytes > 300);
    assert_eq!(m["bench-b/1.0"].requests, 2);
    assert!(!m.contains_key("faults-test/1.0"));
    a.h.shutdown().await;
}

#[tokio::test]
async fn admin_api_drives_faults_and_reports_metrics() {
    let a = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(kubesim::api::admin::serve(a.h.sim.clone(), listener, rx));
    let post = |path: &str, body: Value| {
        a.c.post(format!("{admin}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let get_json = |path: &str| {
        let rb = a.c.get(format!("{admin}{path}"));
        async move { rb.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let r = post(
        "/faults/fail-next",
        json!({"count": 1, "method": "GET", "path": "/api/*", "code": 429, "retryAfter": 2}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (c, h, _) = a.send(a.req("GET", "/api/v1/namespaces")).await;
    assert_eq!(c, 429);
    assert_eq!(h.get("retry-after").unwrap(), "2");
    post(
        "/faults/conflict-next-write",
        json!({"resource": "configmaps", "namespace": "default", "name": "x"}),
    )
    .await
    .unwrap();
    let v = get_json("/faults").await;
    assert_eq!(v["conflicts"][0]["name"], "x");
    let r = a.c.delete(format!("{admin}/faults")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    post("/listener/stop", json!({})).await.unwrap();
    assert!(!a.h.faults().listening());
    post("/listener/start", json!({})).await.unwrap();
    assert_eq!(a.code_of_get("/version").await, 200);
    let v = get_json("/metrics").await;
    assert!(
        v["byUserAgent"]["faults-test/1.0"]["requests"]
            .as_u64()
            .unwrap()
            >= 2
    );
    let _ = stop.send(true);
    task.await.unwrap();
    a.h.shutdown().await;
}

#[tokio::test]
async fn lease_optimistic_concurrency() {
    let a = start().await;
    let base = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    let (c, lease) = a
        .call(
            "POST",
            base,
            Some((
                "application/json",
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "rollguard-lock"},
                       "spec": {"holderIdentity": "ci-1", "leaseDurationSeconds": 30}}),
            )),
        )
        .await;
    assert_eq!(c, 201, "{lease}");
    let rv1 = common::resource_version(&lease);
    // An update carrying the current resourceVersion wins.
    let mut next = lease.clone();
    next["spec"]["holderIdentity"] = json!("ci-2");
    let (c, updated) = a
        .call(
            "PUT",
            &format!("{base}/rollguard-lock"),
            Some(("application/json", next.clone())),
        )
        .await;
    assert_eq!(c, 200, "{updated}");
    assert_ne!(
        updated["metadata"]["resourceVersion"].as_str().unwrap(),
        rv1
    );
    // A stale one (still rv1) loses with 409 Conflict.
    next["spec"]["holderIdentity"] = json!("ci-3");
    let (c, v) = a
        .call(
            "PUT",
            &format!("{base}/rollguard-lock"),
            Some(("application/json", next)),
        )
        .await;
    assert_eq!(c, 409, "{v}");
    assert_eq!(v["reason"], "Conflict");
    assert_eq!(
        v["message"],
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"rollguard-lock\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let (c, list) = a.call("GET", base, None).await;
    assert_eq!(c, 200);
    assert_eq!(list["kind"], "LeaseList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["spec"]["holderIdentity"], "ci-2");
    a.h.shutdown().await;
}
