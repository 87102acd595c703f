//! Reads of the API server over HTTPS against `kubesim::start`: list paging
//! and selectors, watches (resourceVersion, bookmarks, initial events,
//! expiry), pod logs, plain HTTP and the events.k8s.io view. The client
//! helpers are the API suite's.

use crate::api_e2e::{Api, CMS, cm, start, start_with};
use crate::common;
use kubesim::Config;
use serde_json::{Value, json};

#[tokio::test]
async fn list_limit_continue_and_selectors() {
    let api = start().await;
    for i in 0..5 {
        let mut c = cm(&format!("c{i}"));
        c["metadata"]["labels"]["tier"] = json!(if i % 2 == 0 { "even" } else { "odd" });
        api.post(CMS, c).await;
    }
    let (_, l) = api.get(&format!("{CMS}?limit=2")).await;
    assert_eq!(l["kind"], "ConfigMapList");
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    assert_eq!(l["metadata"]["remainingItemCount"], 3);
    let mut names: Vec<String> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let mut tok = l["metadata"]["continue"].as_str().unwrap().to_string();
    loop {
        let (_, l) = api.get(&format!("{CMS}?limit=2&continue={tok}")).await;
        names.extend(
            l["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match l["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => tok = t.to_string(),
            _ => break,
        }
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    // Each selector and how many of the five ConfigMaps it lists.
    for (query, want) in [
        ("labelSelector=tier%3Deven", 3),
        ("labelSelector=tier%20notin%20(even),app", 2),
        ("labelSelector=!tier", 0),
        ("fieldSelector=metadata.name!%3Dc0", 4),
    ] {
        let (_, l) = api.get(&format!("{CMS}?{query}")).await;
        assert_eq!(count(&l), want, "{query}");
    }
    let (code, e) = api.get(&format!("{CMS}?fieldSelector=spec.foo%3Dx")).await;
    assert_eq!((code, e["reason"].as_str()), (400, Some("BadRequest")));
    let (code, l) = api.get("/api/v1/configmaps").await;
    assert_eq!((code, count(&l)), (200, 5));
    let (code, l) = api
        .get("/api/v1/nodes?fieldSelector=metadata.name%3Dnode-2")
        .await;
    assert_eq!((code, count(&l)), (200, 1));
    api.h.shutdown().await;
}

#[tokio::test]
async fn watch_from_rv_bookmarks_initial_events_and_expired() {
    let api = start().await;
    let (_, a) = api.post(CMS, cm("w1")).await;
    let rv = common::resource_version(&a);
    api.post(CMS, cm("w2")).await;
    // Exact resourceVersion: only later changes.
    let mut w = api
        .watch(&format!("{CMS}?watch=true&resourceVersion={rv}"))
        .await;
    let e = w.next().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("w2"))
    );
    api.call("DELETE", &format!("{CMS}/w1"), None, None).await;
    let e = w.next().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("w1"))
    );

    // Streaming list as `kubectl rollout status` asks for it, with bookmarks.
    let mut w = api
        .watch(&format!(
            "{CMS}?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Dw2&timeoutSeconds=5"
        ))
        .await;
    let e = w.next().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("w2"))
    );
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "BOOKMARK");
    assert_eq!(
        e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // A label change that makes it stop matching a label selector → DELETED.
    let mut lw = api
        .watch(&format!("{CMS}?watch=true&labelSelector=app%3Dw2"))
        .await;
    let e = lw.next().await.unwrap();
    assert_eq!(e["type"], "ADDED");
    api.patch(
        &format!("{CMS}/w2"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"app": "gone"}}}),
    )
    .await;
    let e = lw.next().await.unwrap();
    assert_eq!(e["type"], "DELETED");
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "BOOKMARK", "periodic bookmark");
    assert!(e["object"]["metadata"]["annotations"].is_null());

    // Compacted history → an ERROR event with 410 Expired.
    api.h.store().compact();
    let mut w = api
        .watch(&format!("{CMS}?watch=true&resourceVersion={rv}"))
        .await;
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(
        (e["object"]["code"].as_i64(), e["object"]["reason"].as_str()),
        (Some(410), Some("Expired"))
    );
    assert!(w.next().await.is_none());
    api.h.shutdown().await;
}

#[tokio::test]
async fn pod_logs_and_errors() {
    let api = start().await;
    let pod = |name: &str, containers: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": {"containers": containers}});
    api.h
        .create(pod("one", json!([{"name": "web", "image": "i"}])))
        .unwrap();
    api.h
        .create(pod(
            "two",
            json!([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]),
        ))
        .unwrap();
    api.h.sim.logs.lock().unwrap().insert(
        ("default".into(), "one".into(), "web".into()),
        kubesim::ContainerLogs {
            current: vec!["l1".into(), "l2".into(), "l3".into()],
            previous: None,
        },
    );
    let (code, text) = api
        .get("/api/v1/namespaces/default/pods/one/log?tailLines=2")
        .await;
    assert_eq!((code, text), (200, Value::String("l2\nl3\n".into())));
    let (code, e) = api
        .get("/api/v1/namespaces/default/pods/one/log?previous=true")
        .await;
    assert_eq!(code, 400);
    assert_eq!(
        e["message"],
        "previous terminated container \"web\" in pod \"one\" not found"
    );
    let (code, e) = api.get("/api/v1/namespaces/default/pods/two/log").await;
    assert_eq!(code, 400);
    assert_eq!(
        e["message"],
        "a container name must be specified for pod two, choose one of: [a b]"
    );
    api.h.shutdown().await;
}

#[tokio::test]
async fn plain_http_and_events_v1_view() {
    let h = common::plain_http_cluster().await;
    assert!(h.base_url.starts_with("http://"));
    let api = Api {
        c: common::api_client(None, true),
        h,
    };
    let ev = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Failed", "message": "boom", "type": "Warning", "source": {"component": "kubelet"}, "count": 2});
    let (code, _) = api.post("/api/v1/namespaces/default/events", ev).await;
    assert_eq!(code, 201);
    let (code, e) = api
        .get("/apis/events.k8s.io/v1/namespaces/default/events/e1")
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        (e["note"].as_str(), e["regarding"]["name"].as_str()),
        (Some("boom"), Some("p"))
    );
    assert_eq!(
        (
            e["reportingController"].as_str(),
            e["deprecatedCount"].as_i64()
        ),
        (Some("kubelet"), Some(2))
    );
    let (_, l) = api.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dp,reason%3DFailed").await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    api.h.shutdown().await;
}

#[tokio::test]
async fn watch_options_are_validated_as_kube_apiserver_does() {
    let api = start().await;
    // resourceVersionMatch without sendInitialEvents, and the reverse.
    for (query, field, message) in [
        (
            "resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ),
        (
            "sendInitialEvents=true",
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ),
    ] {
        let (code, e) = api.get(&format!("{CMS}?watch=true&{query}")).await;
        assert_eq!(
            (code, e["reason"].as_str()),
            (422, Some("Invalid")),
            "{query}: {e}"
        );
        assert_eq!(
            e["message"],
            format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: Forbidden: {message}"),
            "{query}"
        );
        assert_eq!(e["details"]["causes"][0]["reason"], "FieldValueForbidden");
        assert_eq!(e["details"]["causes"][0]["field"], field);
    }
}

#[tokio::test]
async fn without_the_watch_list_gate_a_streaming_list_is_refused() {
    let gate_off = Config {
        watch_list: false,
        ..Default::default()
    };
    let api = start_with(gate_off).await;
    let (code, e) = api
        .get(&format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(
        e["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
    );
    assert_eq!(e["details"]["group"], "meta.k8s.io");
    assert_eq!(e["details"]["kind"], "ListOptions");
    // A plain watch is served as before.
    let mut w = api.watch(&format!("{CMS}?watch=true")).await;
    api.post(CMS, cm("after")).await;
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "ADDED");
}

#[tokio::test]
async fn delete_checks_the_resource_version_precondition() {
    let api = start().await;
    let (_, c) = api.post(CMS, cm("pre")).await;
    let rv = c["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let uid = c["metadata"]["uid"].as_str().unwrap().to_string();
    let delete = |rv: String| json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": rv, "uid": uid}});
    let (code, e) = api
        .call(
            "DELETE",
            &format!("{CMS}/pre"),
            None,
            Some(delete("1".into())),
        )
        .await;
    assert_eq!((code, e["reason"].as_str()), (409, Some("Conflict")), "{e}");
    assert_eq!(
        e["message"],
        format!(
            "Operation cannot be fulfilled on configmaps \"pre\": Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: {rv}"
        )
    );
    let (code, _) = api.get(&format!("{CMS}/pre")).await;
    assert_eq!(code, 200, "still there");
    let (code, e) = api
        .call("DELETE", &format!("{CMS}/pre"), None, Some(delete(rv)))
        .await;
    assert_eq!(code, 200, "{e}");
}
