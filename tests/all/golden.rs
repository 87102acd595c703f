//! Golden tests of the diagnosis: for each catalogued cause, a
//! real rollout on an in-process kubesim, and the text a person reads at
//! 2 a.m. in every sink — the console summary, the GitHub step summary
//! (Markdown) and the Slack message — compared with the snapshots in
//! `tests/all/snapshots/`. Run-specific parts (pod name suffixes, template
//! hashes, uids, timestamps, addresses, durations) are normalised first.
//!
//! Update the snapshots with
//! `INSTA_UPDATE=always cargo test -p rollguard --test all golden::`, then read
//! every changed `.snap` file before committing it.
//!
//! (Over 500 lines: one suite of end-to-end tests of one concern; each
//! test is a story of its own, set up by `support`.)

use crate::support;
use crate::support::{DeploymentSpec, Fixture, PodLabel};

use std::time::Duration;

use kubesim::Handle;
use kubesim::scenario::ImageBehaviour;
use rollguard::Outcome;
use rollguard::diagnose::Cause;
use rollguard::report::{Report, console, github, slack};
use serde_json::{Value, json};

const JOB_URL: &str = "https://github.com/acme/shop/actions/runs/1";

/// A Deployment; `minReadySeconds: 5` so a container that dies a second
/// after start is seen before its pod counts as available.
fn deployment(name: &str, containers: Value, replicas: i64) -> Value {
    DeploymentSpec {
        name,
        containers: Some(containers),
        replicas,
        label: PodLabel::App,
        labelled: true,
        min_ready_seconds: Some(5),
        ..Default::default()
    }
    .into()
}

/// `name`: `replicas` pods of one container `name` on `image`.
fn app(name: &str, image: &str, replicas: i64) -> Value {
    deployment(name, json!([{"name": name, "image": image}]), replicas)
}

/// Change a node in place (labels, taints), as `kubectl label/taint` would.
fn edit_node(h: &Handle, node: &str, f: impl FnOnce(&mut Value)) {
    h.store()
        .modify(kubesim::resources::res("nodes"), "", node, |v| {
            f(v);
            Ok(true)
        })
        .expect("node edited");
}

/// Run rollguard on `workload` with these inputs; the pre-flight checks are
/// off so the rollout itself fails and is diagnosed.
async fn rollguard(h: &Handle, workload: &str, pairs: &[(&str, &str)]) -> Outcome {
    let env = support::env_with(
        h,
        &[
            ("INPUT_WORKLOAD", workload),
            ("INPUT_VERIFY-IMAGE", "false"),
            ("INPUT_CAPACITY-CHECK", "off"),
        ],
        pairs,
    );
    support::run(&env).await.0
}

/// Replace what differs between runs with stable placeholders.
fn normalise(s: &str, names: &[&str]) -> String {
    use regex::Regex;
    let mut s = s.to_string();
    let mut sub = |re: &str, with: &str| {
        s = Regex::new(re).unwrap().replace_all(&s, with).into_owned();
    };
    sub(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "<time>",
    );
    sub(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "<uid>",
    );
    sub(r"(containerd|docker)://[0-9a-f]{64}", "$1://<id>");
    sub(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+\b", "<ip>:<port>");
    for name in names {
        let n = regex::escape(name);
        // After a line start, a non-name character, or an escaped "\n" in JSON.
        sub(
            &format!(r"(?m)(^|\\n|[^a-z0-9-]){n}-[a-z0-9]{{6,10}}-[a-z0-9]{{5}}\b"),
            &format!("${{1}}{name}-<hash>-<pod>"),
        );
        sub(
            &format!(r"\b{n}-[a-z0-9]{{8,10}}\b"),
            &format!("{name}-<hash>"),
        );
    }
    // The progress counts at the moment of failure race with the kubelet.
    sub(
        r"\d+ of (\d+) new replicas updated, \d+ available( \(\d+ old still running\))?",
        "<n> of $1 new replicas updated, <n> available",
    );
    // Durations measured in real time (the configured ones stay).
    sub(r"\(\d+(\.\d+)?m?s\)", "(<duration>)");
    sub(
        r"took (`?)\d+(\.\d+)? (ms|s|min \d+ s)`?",
        "took $1<duration>$1",
    );
    s
}

/// The three renderings of the report, normalised, as snapshots.
fn assert_golden(story: &str, outcome: &Outcome, names: &[&str]) {
    let mut r: Report = outcome.report.clone();
    // The chart's points are real-time seconds: only their presence is stable.
    assert!(!r.timeline.is_empty(), "{story}: no timeline was recorded");
    r.timeline.clear();
    // Which events have arrived by the verdict races with the kubelet too
    // (the rendering tests check the excerpt).
    r.events.clear();
    let console = normalise(&console::render(&r), names);
    let markdown = normalise(&github::summary_text(&r), names);
    let slack = normalise(
        &serde_json::to_string_pretty(&slack::message(&r, Some(JOB_URL))).unwrap(),
        names,
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        insta::assert_snapshot!(format!("{story}__console"), console);
        insta::assert_snapshot!(format!("{story}__summary_md"), markdown);
        insta::assert_snapshot!(format!("{story}__slack"), slack);
    });
}

/// Tag v2 on `workload` with a 2 s unschedulable grace: the surge pod's
/// scheduling verdict comes quickly.
async fn surge_v2(h: &Handle, workload: &str) -> Outcome {
    rollguard(
        h,
        workload,
        &[("INPUT_TAG", "v2"), ("INPUT_UNSCHEDULABLE-GRACE", "2s")],
    )
    .await
}

fn first_cause(o: &Outcome) -> Option<Cause> {
    o.report.findings.first().map(|f| f.cause)
}

// -------------------------------------------- failures as users report them

/// One 1-cpu node, 970m of it requested; the surge pod asks for
/// 100m: "requested: 100, used: 970, capacity: 1000".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_cpu() {
    let cpu = |m: &str| json!({"requests": {"cpu": m}});
    let h = Fixture::new()
        .nodes(1)
        .node_cpu("1")
        .deployment(deployment(
            "batch",
            json!([{"name": "batch", "image": "example/batch:v1", "resources": cpu("870m")}]),
            1,
        ))
        .deployment(deployment(
            "web",
            json!([{"name": "web", "image": "example/web:v1", "resources": cpu("100m")}]),
            1,
        ))
        .start()
        .await;
    let o = surge_v2(&h, "web").await;
    assert_eq!(first_cause(&o), Some(Cause::Unschedulable));
    let evidence = o.report.findings[0].evidence.join("\n");
    assert!(evidence.contains("Insufficient cpu"), "{evidence}");
    assert!(
        o.report.findings[0]
            .summary
            .contains("requested 100m, best node has 30m free (970m of 1000m used on node-1)"),
        "{:#?}",
        o.report.findings
    );
    assert_golden("insufficient_cpu", &o, &["web", "batch"]);
    h.shutdown().await;
}

/// `kubectl set image … kubernetes-bootcamp:v10`, a tag that does
/// not exist, on four replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_v10() {
    // One new pod at a time (maxSurge 1, maxUnavailable 0): with two, how
    // many reach the pull error before the verdict is a race.
    let mut d = app("kubernetes-bootcamp", "jocatalin/kubernetes-bootcamp:v2", 4);
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let h = Fixture::new()
        .image("jocatalin/kubernetes-bootcamp:v10", ImageBehaviour::Missing)
        .deployment(d)
        .start()
        .await;
    let o = rollguard(&h, "kubernetes-bootcamp", &[("INPUT_TAG", "v10")]).await;
    assert_eq!(o.exit_code, 1);
    assert_eq!(first_cause(&o), Some(Cause::ImageNotFound));
    assert_golden("missing_tag_v10", &o, &["kubernetes-bootcamp"]);
    h.shutdown().await;
}

/// PullImageError: `gcr.io/my-prj/app:v0` is not in the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_image_error() {
    let h = Fixture::new()
        .image("gcr.io/my-prj/app:v0", ImageBehaviour::Missing)
        .deployment(app("app", "gcr.io/my-prj/app:v1", 2))
        .start()
        .await;
    let o = rollguard(&h, "app", &[("INPUT_TAG", "v0")]).await;
    assert_eq!(first_cause(&o), Some(Cause::ImageNotFound));
    assert_golden("pull_image_error", &o, &["app"]);
    h.shutdown().await;
}

/// CrashLoopBackOff of a process that ends normally (exit 0):
/// "meant to exit? use a Job or restartPolicy: OnFailure".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_exit_0() {
    let h = Fixture::new()
        .image(
            "gcr.io/my-prj/client:v0",
            ImageBehaviour::Crash {
                after: Duration::from_secs(1),
                exit_code: 0,
            },
        )
        .deployment(app("client", "gcr.io/my-prj/client:v1", 2))
        .start()
        .await;
    let o = rollguard(&h, "client", &[("INPUT_TAG", "v0")]).await;
    assert_eq!(first_cause(&o), Some(Cause::CrashLoop));
    let f = &o.report.findings[0];
    assert!(f.fix.contains("restartPolicy: OnFailure"), "{f:#?}");
    support::assert_evidence(f, "Completed");
    assert_golden("crash_loop_exit_0", &o, &["client"]);
    h.shutdown().await;
}

/// CrashLoopBackOff of a process that fails: exit code, the
/// termination message and the previous instance's log tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_exit_1() {
    let h = Fixture::new()
        .deployment(app("app", "example/app:v1", 2))
        .start()
        .await;
    let o = rollguard(&h, "app", &[("INPUT_TAG", "v2-crash")]).await;
    assert_eq!(first_cause(&o), Some(Cause::CrashLoop));
    let f = &o.report.findings[0];
    assert!(
        f.logs.iter().any(|l| l.contains("cannot connect")),
        "{f:#?}"
    );
    assert_golden("crash_loop_exit_1", &o, &["app"]);
    h.shutdown().await;
}

/// PodExceedsFreeCPU: a 2-cpu node with four 400m pods (80 %
/// requested); the surge pod's 500m does not fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_exceeds_free_cpu() {
    let res = |cpu: &str| json!({"requests": {"cpu": cpu, "memory": "512Mi"}, "limits": {"cpu": cpu, "memory": "512Mi"}});
    let h = Fixture::new()
        .nodes(1)
        .deployment(deployment(
            "my-pod",
            json!([{"name": "app", "image": "example/app:v1", "resources": res("400m")}]),
            3,
        ))
        .deployment(deployment(
            "app",
            json!([{"name": "app", "image": "gcr.io/my-prj/app:v1", "resources": res("500m")}]),
            1,
        ))
        .start()
        .await;
    let o = surge_v2(&h, "app").await;
    assert_eq!(first_cause(&o), Some(Cause::Unschedulable));
    assert_golden("pod_exceeds_free_cpu", &o, &["app", "my-pod"]);
    h.shutdown().await;
}

/// OOMKilled: the container's memory limit and the field to raise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_killed() {
    let h = Fixture::new().deployment(deployment(
            "app",
            json!([{"name": "app", "image": "example/app:v1", "resources": {"limits": {"memory": "128Mi"}}}]),
            2,
        )).start().await;
    let o = rollguard(&h, "app", &[("INPUT_TAG", "v2-oom")]).await;
    assert_eq!(first_cause(&o), Some(Cause::OomKilled));
    assert!(o.report.findings[0].fix.contains("resources.limits.memory"));
    assert!(o.report.findings[0].summary.contains("128Mi"));
    assert_golden("oom_killed", &o, &["app"]);
    h.shutdown().await;
}

// ------------------------------------------------------ rest of catalogue

async fn web_story(story: &str, tag: &str, cause: Cause, extra: &[(&str, &str)]) -> Outcome {
    let mut pairs = vec![("INPUT_TAG", tag)];
    pairs.extend_from_slice(extra);
    let h = Fixture::new()
        .deployment(app("web", "example/web:v1", 3))
        .start()
        .await;
    let o = rollguard(&h, "web", &pairs).await;
    assert_eq!(first_cause(&o), Some(cause), "{:#?}", o.report.findings);
    assert_golden(story, &o, &["web"]);
    h.shutdown().await;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_unauthorized() {
    let o = web_story(
        "image_unauthorized",
        "v2-denied",
        Cause::ImageUnauthorized,
        &[],
    )
    .await;
    assert!(o.report.findings[0].fix.contains("imagePullSecrets"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_invalid_reference() {
    web_story(
        "image_invalid_reference",
        "v2-invalid",
        Cause::InvalidImage,
        &[],
    )
    .await;
}

/// Transient pull errors are not failed early: only reported on timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_transient_on_timeout() {
    let h = Fixture::new()
        .image(
            "example/web:v2-registry-down",
            ImageBehaviour::Flaky { failures: 1000 },
        )
        .deployment(app("web", "example/web:v1", 3))
        .start()
        .await;
    let o = rollguard(
        &h,
        "web",
        &[("INPUT_TAG", "v2-registry-down"), ("INPUT_TIMEOUT", "3s")],
    )
    .await;
    assert_eq!(o.exit_code, 70);
    assert_eq!(first_cause(&o), Some(Cause::ImagePullTransient));
    assert_golden("image_pull_transient_on_timeout", &o, &["web"]);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probe_failing() {
    let h = Fixture::new().deployment(deployment(
            "web",
            json!([{"name": "web", "image": "example/web:v1",
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}}]),
            3,
        )).start().await;
    let o = rollguard(
        &h,
        "web",
        &[("INPUT_TAG", "v2-unready"), ("INPUT_TIMEOUT", "4s")],
    )
    .await;
    assert_eq!(first_cause(&o), Some(Cause::ReadinessFailing));
    assert!(o.report.findings[0].fix.contains("/healthz"));
    assert_golden("readiness_probe_failing", &o, &["web"]);
    h.shutdown().await;
}

/// A ConfigMap the pod template refers to (envFrom) was deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_configmap() {
    let h = Fixture::new()
        .object(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-config", "namespace": "default"}, "data": {"MODE": "prod"}}))
        .deployment(deployment(
            "web",
            json!([{"name": "web", "image": "example/web:v1",
                "envFrom": [{"configMapRef": {"name": "web-config"}}]}]),
            2,
        ))
        .start()
        .await;
    support::delete_configmap(&h, "web-config");
    let o = rollguard(&h, "web", &[("INPUT_TAG", "v2")]).await;
    assert_eq!(first_cause(&o), Some(Cause::ContainerConfig));
    assert!(o.report.findings[0].fix.contains("envFrom"));
    assert_golden("missing_configmap", &o, &["web"]);
    h.shutdown().await;
}

/// A key of a Secret the pod template refers to (env[].valueFrom) is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_key() {
    let h = Fixture::new().object(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"}, "data": {"password": "aHVudGVyMg=="}})).deployment(deployment(
            "web",
            json!([{"name": "web", "image": "example/web:v1",
                "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]),
            2,
        )).start().await;
    h.store()
        .modify(kubesim::resources::res("secrets"), "default", "db", |v| {
            v["data"] = json!({"pass": "aHVudGVyMg=="});
            Ok(true)
        })
        .unwrap();
    let o = rollguard(&h, "web", &[("INPUT_TAG", "v2")]).await;
    assert_eq!(first_cause(&o), Some(Cause::ContainerConfig));
    assert!(o.report.findings[0].fix.contains("valueFrom"));
    assert_golden("missing_secret_key", &o, &["web"]);
    h.shutdown().await;
}

/// Every node got a NoSchedule taint the pods do not tolerate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untolerated_taint() {
    let h = Fixture::new()
        .nodes(2)
        .deployment(app("web", "example/web:v1", 2))
        .start()
        .await;
    for n in ["node-1", "node-2"] {
        edit_node(&h, n, |v| {
            v["spec"]["taints"] =
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        });
    }
    let o = surge_v2(&h, "web").await;
    assert_eq!(first_cause(&o), Some(Cause::Unschedulable));
    assert!(o.report.findings[0].fix.contains("tolerations"));
    assert_golden("untolerated_taint", &o, &["web"]);
    h.shutdown().await;
}

/// The template's nodeSelector matches no node (the label was removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selector_mismatch() {
    let h = Fixture::new().nodes(2).start().await;
    for n in ["node-1", "node-2"] {
        edit_node(&h, n, |v| {
            v["metadata"]["labels"]["disktype"] = json!("ssd");
        });
    }
    let mut obj = app("web", "example/web:v1", 2);
    obj["spec"]["template"]["spec"]["nodeSelector"] = json!({"disktype": "ssd"});
    support::create_ready(&h, obj).await;
    for n in ["node-1", "node-2"] {
        edit_node(&h, n, |v| {
            if let Some(l) = v["metadata"]["labels"].as_object_mut() {
                l.remove("disktype");
            }
        });
    }
    let o = surge_v2(&h, "web").await;
    assert_eq!(first_cause(&o), Some(Cause::Unschedulable));
    assert!(o.report.findings[0].fix.contains("disktype=ssd"));
    assert_golden("node_selector_mismatch", &o, &["web"]);
    h.shutdown().await;
}

/// A ResourceQuota leaves no room for the surge pod: the new ReplicaSet
/// cannot create it (FailedCreate), and rollguard fails fast on that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exceeded() {
    let h = Fixture::new()
        .deployment(deployment(
            "web",
            json!([{"name": "web", "image": "example/web:v1",
                "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}}]),
            3,
        ))
        .object(json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "compute", "namespace": "default"},
        "spec": {"hard": {"requests.cpu": "1500m", "pods": "10"}}}))
        .start()
        .await;
    let o = surge_v2(&h, "web").await;
    assert_eq!(o.exit_code, 1);
    assert_eq!(first_cause(&o), Some(Cause::ReplicaFailure));
    let evidence = o.report.findings[0].evidence.join("\n");
    assert!(evidence.contains("exceeded quota: compute"), "{evidence}");
    assert_golden("quota_exceeded", &o, &["web"]);
    h.shutdown().await;
}

/// The new pods are just slow: no pod-level cause, the timeout says what
/// was still awaited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_without_pod_cause() {
    let h = Fixture::new()
        .image(
            "example/web:v2-warming-up",
            ImageBehaviour::Ok {
                ready_after: Duration::from_secs(3600),
            },
        )
        .deployment(app("web", "example/web:v1", 3))
        .start()
        .await;
    let o = rollguard(
        &h,
        "web",
        &[("INPUT_TAG", "v2-warming-up"), ("INPUT_TIMEOUT", "3s")],
    )
    .await;
    assert_eq!(o.exit_code, 70);
    assert_eq!(
        first_cause(&o),
        Some(Cause::Timeout),
        "{:#?}",
        o.report.findings
    );
    assert_golden("timeout_without_pod_cause", &o, &["web"]);
    h.shutdown().await;
}
