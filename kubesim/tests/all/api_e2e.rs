// Slightly over 500 lines: the client helpers of the API suites and the write tests on them.
//! End-to-end tests of the API server over HTTPS against `kubesim::start`:
//! authentication and RBAC, discovery, writes (CRUD, patch, graceful
//! deletion, quota); the reads are in `api_reads`.

use std::time::Duration;

use crate::common;
use kubesim::{Config, Handle, Rule};
use serde_json::{Value, json};

pub(crate) struct Api {
    pub(crate) h: Handle,
    pub(crate) c: reqwest::Client,
}

pub(crate) async fn start() -> Api {
    start_with(Config::default()).await
}

/// A cluster of this configuration (HTTPS) and a client of it.
pub(crate) async fn start_with(config: Config) -> Api {
    let h = kubesim::start(config).await.unwrap();
    let c = common::api_client(h.ca_pem.as_deref(), true);
    Api { h, c }
}

impl Api {
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(&self.h.token.clone(), method, path, ct, body)
            .await
    }

    pub(crate) async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.c.request(m, format!("{}{}", self.h.base_url, path));
        if !token.is_empty() {
            r = r.bearer_auth(token);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", ct.unwrap_or("application/json"))
                .body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, None, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", path, None, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, ct: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", path, Some(ct), Some(body)).await
    }

    /// Open a watch and return a reader of its events.
    pub(crate) async fn watch(&self, path: &str) -> Watch {
        let resp = self
            .c
            .get(format!("{}{}", self.h.base_url, path))
            .bearer_auth(&self.h.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        Watch {
            resp,
            buf: Vec::new(),
        }
    }
}

pub(crate) struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event, or None when the stream ends or 10 s pass.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(c))) => self.buf.extend_from_slice(&c),
                _ => return None,
            }
        }
    }
}

pub(crate) fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": name}}, "data": {"k": "v"}})
}

pub(crate) fn deployment(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}}})
}

pub(crate) const CMS: &str = "/api/v1/namespaces/default/configmaps";
pub(crate) const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn auth_401_403_and_self_subject_access_review() {
    let api = start().await;
    let (code, body) = api
        .call_as("", "GET", "/api/v1/namespaces", None, None)
        .await;
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")));
    let (code, _) = api.call_as("wrong", "GET", "/version", None, None).await;
    assert_eq!(code, 401);
    let (code, v) = api.call_as("", "GET", "/version", None, None).await;
    assert_eq!((code, v["major"].as_str()), (200, Some("1")));

    api.h.add_identity(
        "ci",
        "ci-token",
        vec![Rule::new(
            &["get", "list"],
            &["apps"],
            &["deployments"],
            &["default"],
        )],
    );
    let (code, _) = api.call_as("ci-token", "GET", DEPLOYS, None, None).await;
    assert_eq!(code, 200);
    let (code, s) = api
        .call_as(
            "ci-token",
            "PATCH",
            &format!("{DEPLOYS}/web"),
            Some("application/merge-patch+json"),
            Some(json!({})),
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(s["reason"], "Forbidden");
    assert_eq!(
        s["message"],
        "deployments.apps \"web\" is forbidden: User \"ci\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"default\""
    );
    assert_eq!(s["details"]["group"], "apps");
    // Discovery is open to any authenticated user.
    let (code, _) = api
        .call_as("ci-token", "GET", "/apis/apps/v1", None, None)
        .await;
    assert_eq!(code, 200);

    let review = |verb: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"verb": verb, "group": "apps", "resource": "deployments", "namespace": ns}}})
    };
    // What the restricted identity is told about itself.
    let ci_post =
        |path: &'static str, body: Value| api.call_as("ci-token", "POST", path, None, Some(body));
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, r) = ci_post(path, review("get", "default")).await;
    assert_eq!((code, r["status"]["allowed"].as_bool()), (201, Some(true)));
    let (_, r) = ci_post(path, review("patch", "default")).await;
    assert_eq!(r["status"]["allowed"], false);
    let (_, r) = ci_post(path, review("get", "prod")).await;
    assert_eq!(r["status"]["allowed"], false);
    let (_, r) = ci_post(
        path,
        json!({"spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}),
    )
    .await;
    assert_eq!(r["status"]["allowed"], true);
    let (code, r) = ci_post(
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"spec": {"namespace": "default"}}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        r["status"]["resourceRules"][0]["resources"],
        json!(["deployments"])
    );
    api.h.shutdown().await;
}

#[tokio::test]
async fn discovery_aggregated_legacy_and_openapi() {
    let api = start().await;
    let agg =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    for (path, group) in [("/api", ""), ("/apis", "apps")] {
        let resp = api
            .c
            .get(format!("{}{path}", api.h.base_url))
            .bearer_auth(&api.h.token)
            .header("accept", agg)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN h2");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["kind"], "APIGroupDiscoveryList");
        let g = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == group)
            .unwrap();
        assert_eq!(g["versions"][0]["version"], "v1");
    }
    let (_, v) = api.get("/api").await;
    assert_eq!(v["kind"], "APIVersions");
    let (_, v) = api.get("/apis").await;
    assert_eq!(v["kind"], "APIGroupList");
    let (_, v) = api.get("/apis/apps/v1").await;
    assert_eq!(v["kind"], "APIResourceList");
    let res = v["resources"].as_array().unwrap();
    let d = res.iter().find(|r| r["name"] == "deployments").unwrap();
    assert_eq!(d["shortNames"], json!(["deploy"]));
    assert_eq!(d["singularName"], "deployment");
    assert!(d["verbs"].as_array().unwrap().contains(&json!("patch")));
    let scale = res
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .unwrap();
    assert_eq!(
        (scale["group"].as_str(), scale["kind"].as_str()),
        (Some("autoscaling"), Some("Scale"))
    );
    let (_, v) = api.get("/openapi/v3").await;
    let url = v["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
    let (code, doc) = api.get(&url).await;
    assert_eq!(code, 200);
    let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    assert!(
        p["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "fieldValidation")
    );
    api.h.shutdown().await;
}

#[tokio::test]
async fn crud_conflict_generation_and_status_subresource() {
    let api = start().await;
    let (code, created) = api.post(CMS, cm("a")).await;
    assert_eq!(code, 201);
    let (code, e) = api.post(CMS, cm("a")).await;
    assert_eq!((code, e["reason"].as_str()), (409, Some("AlreadyExists")));
    let rv = common::resource_version(&created);
    let mut next = created.clone();
    next["data"]["k"] = json!("v2");
    let (code, updated) = api.put(&format!("{CMS}/a"), next.clone()).await;
    assert_eq!(code, 200);
    assert_ne!(updated["metadata"]["resourceVersion"], json!(rv));
    next["data"]["k"] = json!("v3");
    let (code, e) = api.put(&format!("{CMS}/a"), next.clone()).await;
    assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")));
    next["metadata"]["resourceVersion"] = json!("");
    let (code, _) = api.put(&format!("{CMS}/a"), next).await;
    assert_eq!(code, 200, "empty resourceVersion is unconditional");
    let (code, e) = api.get(&format!("{CMS}/nope")).await;
    assert_eq!(
        (code, e["message"].as_str()),
        (404, Some("configmaps \"nope\" not found"))
    );

    // generateName, defaulting, validation.
    let (code, d) = api
        .post(
            DEPLOYS,
            deployment("web", json!([{"name": "web", "image": "example/web:1"}])),
        )
        .await;
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    let mut bad = deployment("bad", json!([{"name": "web", "image": "x"}]));
    bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
    let (code, e) = api.post(DEPLOYS, bad).await;
    assert_eq!(code, 422);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("`selector` does not match template `labels`")
    );
    let (code, p) = api
        .post("/api/v1/namespaces/default/pods", json!({"metadata": {"generateName": "p-"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .await;
    assert_eq!(code, 201);
    assert!(p["metadata"]["name"].as_str().unwrap().starts_with("p-"));
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "BestEffort");

    // Spec change bumps generation; a status written through the main
    // resource is ignored, and /status keeps the spec.
    let (_, cur) = api.get(&format!("{DEPLOYS}/web")).await;
    let mut next = cur.clone();
    next["metadata"]["resourceVersion"] = json!(null);
    next["spec"]["replicas"] = json!(0);
    next["spec"]["paused"] = json!(true);
    next["status"] = json!({"replicas": 42});
    let (code, out) = api.put(&format!("{DEPLOYS}/web"), next).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["metadata"]["generation"], 2);
    assert_ne!(out["status"]["replicas"], 42);
    let mut st = out.clone();
    st["metadata"]["resourceVersion"] = json!(null);
    st["spec"]["replicas"] = json!(7);
    st["status"]["observedGeneration"] = json!(99);
    let (code, out) = api.put(&format!("{DEPLOYS}/web/status"), st).await;
    assert_eq!(code, 200);
    assert_eq!(out["spec"]["replicas"], 0);
    assert_eq!(out["status"]["observedGeneration"], 99);
    assert_eq!(out["metadata"]["generation"], 2);
    // Selector is immutable.
    let mut sel = out.clone();
    sel["metadata"]["resourceVersion"] = json!(null);
    sel["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
    sel["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    let (code, e) = api.put(&format!("{DEPLOYS}/web"), sel).await;
    assert_eq!(code, 422, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable")
    );

    // Scale subresource.
    let (code, s) = api.get(&format!("{DEPLOYS}/web/scale")).await;
    assert_eq!(
        (code, s["kind"].as_str(), s["status"]["selector"].as_str()),
        (200, Some("Scale"), Some("app=web"))
    );
    let (code, s) = api
        .patch(
            &format!("{DEPLOYS}/web/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 0}}),
        )
        .await;
    assert_eq!((code, s["spec"]["replicas"].as_i64()), (200, Some(0)));

    // Deletion: a Status for most kinds; grace 0 removes a pod at once.
    let (code, s) = api.call("DELETE", &format!("{CMS}/a"), None, None).await;
    assert_eq!((code, s["status"].as_str()), (200, Some("Success")));
    let pod = p["metadata"]["name"].as_str().unwrap().to_string();
    let (code, _) = api
        .call(
            "DELETE",
            &format!("/api/v1/namespaces/default/pods/{pod}?gracePeriodSeconds=0"),
            None,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert!(api.h.get("v1", "Pod", "default", &pod).is_none());
    api.h.shutdown().await;
}

#[tokio::test]
async fn graceful_pod_deletion_marks_bound_pods() {
    let api = start().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound", "namespace": "default"},
        "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 45, "containers": [{"name": "c", "image": "i"}]}});
    api.h.create(pod).unwrap();
    let (code, p) = api
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/bound",
            None,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 45);
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = api
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/bound?gracePeriodSeconds=0",
            None,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert!(api.h.get("v1", "Pod", "default", "bound").is_none());
    api.h.shutdown().await;
}

/// Merge-patch the `team` label of the object at `path` to `team`; the
/// answer must be a 200 showing it.
async fn label_team(api: &Api, path: &str, team: &str) -> Value {
    let (code, d) = api
        .patch(
            path,
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"team": team}}}),
        )
        .await;
    assert_eq!(
        (code, d["metadata"]["labels"]["team"].as_str()),
        (200, Some(team))
    );
    d
}

#[tokio::test]
async fn patch_types() {
    let api = start().await;
    let (code, _) = api
        .post(
            DEPLOYS,
            deployment("two", json!([{"name": "web", "image": "example/web:1"}, {"name": "side", "image": "example/side:1"}])),
        )
        .await;
    assert_eq!(code, 201);
    let path = format!("{DEPLOYS}/two");
    let smp = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
        "containers": [{"image": "example/web:9", "name": "web"}]}}}});
    let (code, d) = api
        .patch(&path, "application/strategic-merge-patch+json", smp)
        .await;
    assert_eq!(code, 200, "{d}");
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(
        (cs[0]["name"].as_str(), cs[0]["image"].as_str()),
        (Some("web"), Some("example/web:9"))
    );
    assert_eq!(cs[1]["image"], "example/side:1");
    assert_eq!(d["metadata"]["generation"], 2);

    let d = label_team(&api, &path, "a").await;
    assert_eq!(
        d["metadata"]["generation"], 2,
        "metadata-only change keeps generation"
    );

    let (code, d) = api
        .patch(
            &path,
            "application/json-patch+json",
            json!([{"op": "test", "path": "/metadata/labels/team", "value": "a"},
                   {"op": "replace", "path": "/spec/replicas", "value": 0}]),
        )
        .await;
    assert_eq!(code, 200, "{d}");
    let (code, e) = api
        .patch(
            &path,
            "application/json-patch+json",
            json!([{"op": "test", "path": "/metadata/labels/team", "value": "b"}]),
        )
        .await;
    assert_eq!((code, e["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        e["message"],
        "the server rejected our request due to an error in our request"
    );

    let (code, e) = api
        .patch(
            &format!("{DEPLOYS}/absent"),
            "application/merge-patch+json",
            json!({}),
        )
        .await;
    assert_eq!(code, 404, "{e}");
    // Server-side apply is served (tests/helm.rs); without a fieldManager it is a 400.
    let (code, e) = api
        .patch(&path, "application/apply-patch+yaml", json!({}))
        .await;
    assert_eq!((code, e["reason"].as_str()), (400, Some("BadRequest")));

    // dryRun computes without storing.
    label_team(&api, &format!("{path}?dryRun=All"), "z").await;
    let (_, d) = api.get(&path).await;
    assert_eq!(d["metadata"]["labels"]["team"], "a");
    api.h.shutdown().await;
}

/// ResourceQuota admission through the library entry point.
#[tokio::test]
async fn quota_forbids_the_pod_that_does_not_fit() {
    let h = common::plain_http_cluster().await;
    h.create(json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "compute", "namespace": "default"},
        "spec": {"hard": {"requests.cpu": "1", "pods": "10"}}}))
        .unwrap();
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "example/web:v1",
                "resources": {"requests": {"cpu": "600m"}}}]}})
    };
    h.create(pod("a")).unwrap();
    let err = h.create(pod("b")).unwrap_err().to_string();
    assert_eq!(
        err,
        "pods \"b\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
    );
    let q = h.get("v1", "ResourceQuota", "default", "compute").unwrap();
    assert_eq!(q["status"]["used"]["requests.cpu"], "600m");
    assert_eq!(q["status"]["used"]["pods"], "1");
    h.shutdown().await;
}
