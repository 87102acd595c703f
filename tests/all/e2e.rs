//! End-to-end: rollguard's library entry point against an in-process
//! kubesim over HTTPS, checking the cluster's state afterwards.
//! Each test has its own simulated cluster, so they run concurrently.
//!
//! (Over 500 lines: one suite of end-to-end tests of one concern; each
//! test is a story of its own, set up by `support`.)

use crate::support;

use std::time::Duration;

use crate::support::{DeploymentSpec, Fixture, live_pods, rolled_out as healthy, run as rollguard};
use kubesim::Handle;
use rollguard::diagnose::Cause;
use rollguard::{Env, Outcome};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn deployment(name: &str, containers: Value, replicas: i64) -> Value {
    DeploymentSpec {
        name,
        containers: Some(containers),
        replicas,
        labelled: true,
        ..Default::default()
    }
    .into()
}

fn web(image: &str) -> Value {
    support::web(image, 3)
}

fn get(h: &Handle, name: &str) -> Value {
    support::deployment_named(h, name)
}

fn env(h: &Handle, pairs: &[(&str, &str)]) -> Env {
    // kubesim simulates images by name; no registry holds them.
    support::env_with(h, &[("ROLLGUARD_VERIFY_IMAGE", "false")], pairs)
}

fn template_image(h: &Handle, name: &str, container: &str) -> String {
    get(h, name)["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == container)
        .unwrap()["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sim_elapsed(h: &Handle, since: jiff::Timestamp) -> f64 {
    (h.clock().now() - since).total(jiff::Unit::Second).unwrap()
}

/// A failed rollout ended with `code`, with the previous template restored
/// and healthy, within `max_sim` simulated seconds.
async fn assert_caught(
    h: &Handle,
    outcome: &Outcome,
    code: i32,
    cause: Cause,
    old_image: &str,
    started: jiff::Timestamp,
    max_sim: f64,
) {
    let elapsed = sim_elapsed(h, started);
    support::assert_rolled_back(outcome, "", code, cause);
    assert!(elapsed < max_sim, "took {elapsed} simulated seconds");
    assert_eq!(template_image(h, "web", "web"), old_image);
    assert!(h.wait_for(WAIT, |h| healthy(h, "web")).await);
    assert!(
        h.wait_for(WAIT, |h| live_pods(h)
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == old_image))
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_sets_image_and_version_label_on_pods_not_selector() {
    let h = support::web_cluster(25.0, 3).await;
    let (o, out) = rollguard(&env(
        &h,
        &[("INPUT_WORKLOAD", "deployment/web"), ("INPUT_TAG", "v2")],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(out.contains("web: 1 of 3 new replicas updated, "), "{out}");
    let d = get(&h, "web");
    assert_eq!(template_image(&h, "web", "web"), "example/web:v2");
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
        "v2"
    );
    assert!(
        d["spec"]["selector"]["matchLabels"]
            .get("app.kubernetes.io/version")
            .is_none()
    );
    assert_eq!(
        d["metadata"]["annotations"]["rollguard.dev/previous-image"],
        "example/web:v1"
    );
    assert!(
        d["metadata"]["annotations"]["kubernetes.io/change-cause"]
            .as_str()
            .unwrap()
            .starts_with("rollguard: web=example/web:v2")
    );
    assert!(d["metadata"]["annotations"]["rollguard.dev/previous-template-hash"].is_string());
    assert!(h.wait_for(WAIT, |h| live_pods(h).len() == 3).await);
    for p in live_pods(&h) {
        assert_eq!(p["spec"]["containers"][0]["image"], "example/web:v2");
        assert_eq!(p["metadata"]["labels"]["app.kubernetes.io/version"], "v2");
    }
    let revision = d["metadata"]["annotations"]["deployment.kubernetes.io/revision"].clone();
    assert_eq!(revision, "2");
    assert_eq!(o.report.revision.as_deref(), Some("2"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_named_container_changes() {
    let h = Fixture::new()
        .deployment(deployment(
            "api",
            json!([{"name": "node-api-container", "image": "example/node-api:v1"},
                   {"name": "fluentd-container", "image": "example/fluentd:1"}]),
            3,
        ))
        .start()
        .await;
    // Without a container name it refuses, naming the containers.
    let (o, out) = rollguard(&env(
        &h,
        &[("ROLLGUARD_WORKLOAD", "api"), ("ROLLGUARD_TAG", "v2")],
    ))
    .await;
    assert_eq!(o.exit_code, 2);
    assert!(
        out.contains("node-api-container, fluentd-container"),
        "{out}"
    );
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("ROLLGUARD_WORKLOAD", "deploy/api"),
            ("ROLLGUARD_CONTAINER", "node-api-container"),
            ("ROLLGUARD_TAG", "v2"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(
        template_image(&h, "api", "node-api-container"),
        "example/node-api:v2"
    );
    assert_eq!(
        template_image(&h, "api", "fluentd-container"),
        "example/fluentd:1"
    );
    h.shutdown().await;
}

async fn failure_case(tag: &str, cause: Cause, code: i32, extra: &[(&str, &str)]) {
    let mut obj = web("example/web:v1");
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"memory": "128Mi"}});
    let h = Fixture::new().deployment(obj).start().await;
    let started = h.clock().now();
    let mut pairs = vec![("INPUT_WORKLOAD", "web"), ("INPUT_TAG", tag)];
    pairs.extend_from_slice(extra);
    let (o, out) = rollguard(&env(&h, &pairs)).await;
    assert!(out.contains("fix:"), "{out}");
    assert_caught(&h, &o, code, cause, "example/web:v1", started, 200.0).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_caught_and_rolled_back() {
    failure_case("v2-missing", Cause::ImageNotFound, 1, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_image_is_caught_and_rolled_back() {
    failure_case("v2-denied", Cause::ImageUnauthorized, 1, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_image_is_caught_and_rolled_back() {
    failure_case("v2-invalid", Cause::InvalidImage, 1, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_is_caught_and_rolled_back() {
    failure_case("v2-crash", Cause::CrashLoop, 1, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_is_caught_and_rolled_back() {
    failure_case("v2-oom", Cause::OomKilled, 1, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_surge_is_caught_and_rolled_back() {
    let obj = deployment(
        "web",
        json!([{"name": "web", "image": "example/web:v1", "resources": {"requests": {"cpu": "1200m"}}}]),
        2,
    );
    let h = Fixture::new()
        .nodes(2)
        .node_cpu("2")
        .deployment(obj)
        .start()
        .await;
    let started = h.clock().now();
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2"),
            ("INPUT_UNSCHEDULABLE-GRACE", "1s"),
            // The pre-flight capacity check would stop this before the patch.
            ("INPUT_CAPACITY-CHECK", "off"),
        ],
    ))
    .await;
    assert!(out.contains("Insufficient cpu"), "{out}");
    assert_caught(
        &h,
        &o,
        1,
        Cause::Unschedulable,
        "example/web:v1",
        started,
        200.0,
    )
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unready_times_out_and_rolls_back() {
    let mut obj = web("example/web:v1");
    obj["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5});
    let h = Fixture::new().deployment(obj).start().await;
    let started = h.clock().now();
    let (o, _) = rollguard(&env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2-unready"),
            ("INPUT_TIMEOUT", "4s"),
        ],
    ))
    .await;
    assert_caught(
        &h,
        &o,
        70,
        Cause::ReadinessFailing,
        "example/web:v1",
        started,
        300.0,
    )
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_pull_is_not_failed_early() {
    let h = support::web_cluster(25.0, 3).await;
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2-flaky"),
            ("INPUT_TIMEOUT", "60s"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(template_image(&h, "web", "web"), "example/web:v2-flaky");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_progress_deadline_does_not_fail_a_good_deploy() {
    let mut obj = web("example/web:v1");
    obj["spec"]["progressDeadlineSeconds"] = json!(5);
    let h = Fixture::new().deployment(obj).start().await;
    let (o, _) = rollguard(&env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2-missing"),
            ("INPUT_ROLLBACK", "false"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 1);
    assert_eq!(template_image(&h, "web", "web"), "example/web:v2-missing");
    let exceeded = |h: &Handle| {
        get(h, "web")["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["reason"] == "ProgressDeadlineExceeded"))
    };
    assert!(
        h.wait_for(WAIT, exceeded).await,
        "kubesim never set ProgressDeadlineExceeded"
    );
    let (o, out) = rollguard(&env(&h, &[("INPUT_WORKLOAD", "web"), ("INPUT_TAG", "v3")])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(template_image(&h, "web", "web"), "example/web:v3");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_failed_deploys_end_on_the_last_good_version() {
    let h = support::web_cluster(25.0, 3).await;
    let (o, _) = rollguard(&env(&h, &[("INPUT_WORKLOAD", "web"), ("INPUT_TAG", "v2")])).await;
    assert_eq!(o.exit_code, 0);
    let (o, _) = rollguard(&env(
        &h,
        &[("INPUT_WORKLOAD", "web"), ("INPUT_TAG", "v3-missing")],
    ))
    .await;
    assert_eq!(o.exit_code, 1);
    let (o, _) = rollguard(&env(
        &h,
        &[("INPUT_WORKLOAD", "web"), ("INPUT_TAG", "v4-crash")],
    ))
    .await;
    assert_eq!(o.exit_code, 1);
    assert_eq!(template_image(&h, "web", "web"), "example/web:v2");
    assert_eq!(
        get(&h, "web")["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
        "v2"
    );
    assert!(h.wait_for(WAIT, |h| healthy(h, "web")).await);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_crash_during_bake_is_rolled_back() {
    let h = support::web_cluster(25.0, 3).await;
    let started = h.clock().now();
    // Crashes 10 simulated seconds after becoming ready: 0.4 s real at speed 25.
    let (o, _) = rollguard(&env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2-late-crash"),
            ("INPUT_BAKE", "3s"),
        ],
    ))
    .await;
    assert_caught(
        &h,
        &o,
        1,
        Cause::CrashLoop,
        "example/web:v1",
        started,
        300.0,
    )
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_exit_2_and_change_nothing() {
    let h = support::web_cluster(25.0, 3).await;
    let mut paused = deployment(
        "paused",
        json!([{"name": "app", "image": "example/app:1"}]),
        1,
    );
    paused["spec"]["paused"] = json!(true);
    h.create(paused).unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("INPUT_TAG", "v2")], "\"workload\""),
        (&[("INPUT_WORKLOAD", "web")], "\"image\""),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_IMAGE", "example/web:v2"),
            ],
            "not both",
        ),
        (
            &[("INPUT_WORKLOAD", "web"), ("INPUT_TAG", "-bad")],
            "\"tag\"",
        ),
        (
            &[("INPUT_WORKLOAD", "web"), ("INPUT_IMAGE", "Example/Web:v2")],
            "\"image\"",
        ),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_TIMEOUT", "5x"),
            ],
            "is not a duration",
        ),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_ROLLBACK", "maybe"),
            ],
            "\"rollback\"",
        ),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_RESTART-THRESHOLD", "0"),
            ],
            "\"restart-threshold\"",
        ),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_VERSION", "not valid!"),
            ],
            "\"version\"",
        ),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_VERSION-LABEL", "bad key/"),
            ],
            "\"version-label\"",
        ),
        (
            &[("INPUT_WORKLOAD", "statefulset/web"), ("INPUT_TAG", "v2")],
            "statefulset/web not found",
        ),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_CONTAINER", "nope"),
            ],
            "its containers are: web",
        ),
        (
            &[("INPUT_WORKLOAD", "deployment/nope"), ("INPUT_TAG", "v2")],
            "deployment/nope not found",
        ),
        (
            &[("INPUT_WORKLOAD", "paused"), ("INPUT_TAG", "v2")],
            "is paused",
        ),
        (
            &[
                ("INPUT_WORKLOAD", "web"),
                ("INPUT_TAG", "v2"),
                ("INPUT_VERSION-LABEL", "name"),
            ],
            "selector",
        ),
    ];
    let before = get(&h, "web")["metadata"]["resourceVersion"].clone();
    for (pairs, expect) in cases {
        let (o, out) = rollguard(&env(&h, pairs)).await;
        assert_eq!(o.exit_code, 2, "{pairs:?}: {out}");
        assert!(
            out.contains(expect),
            "{pairs:?}: expected {expect:?} in {out}"
        );
        assert!(out.lines().any(|l| l.starts_with("rollguard: ")), "{out}");
        assert_eq!(
            get(&h, "web")["metadata"]["resourceVersion"],
            before,
            "{pairs:?} changed the deployment"
        );
    }
    // A dry run passes pre-flight, prints the patch and changes nothing.
    let (o, out) = rollguard(&env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2"),
            ("INPUT_DRY-RUN", "true"),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(out.contains("\"op\": \"test\""), "{out}");
    assert_eq!(get(&h, "web")["metadata"]["resourceVersion"], before);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permission_exits_78() {
    let h = support::web_cluster(25.0, 3).await;
    h.add_identity(
        "ci-readonly",
        "readonly-token",
        vec![
            kubesim::Rule::new(&["get", "list", "watch"], &["*"], &["*"], &["default"]),
            // What system:basic-user grants every authenticated user on a real cluster.
            kubesim::Rule::new(
                &["create"],
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews"],
                &["*"],
            ),
        ],
    );
    let mut e = env(&h, &[("INPUT_WORKLOAD", "web"), ("INPUT_TAG", "v2")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("readonly-token", "ci-readonly"),
    );
    let before = get(&h, "web")["metadata"]["resourceVersion"].clone();
    let (o, out) = rollguard(&e).await;
    assert_eq!(o.exit_code, 78, "{out}");
    assert!(out.contains("patch deployments.apps"), "{out}");
    assert_eq!(get(&h, "web")["metadata"]["resourceVersion"], before);
    // A wrong token is an authentication error: 78 too.
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("wrong-token", "nobody"),
    );
    let (o, out) = rollguard(&e).await;
    assert_eq!(o.exit_code, 78, "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_has_findings_and_no_secrets() {
    let h = support::web_cluster(25.0, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let path_s = path.to_str().unwrap().to_string();
    let (o, _) = rollguard(&env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2-missing"),
            ("INPUT_REPORT-FILE", &path_s),
            (
                "INPUT_SLACK-WEBHOOK",
                "https://hooks.example/very-secret-hook",
            ),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("very-secret-hook"));
    assert!(!text.contains(&h.token));
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["result"], "rolled-back");
    assert_eq!(report["findings"][0]["cause"], "image-not-found");
    assert_eq!(report["rollback"]["confirmed"], true);
    assert_eq!(report["inputs"]["tag"], "v2-missing");
    h.shutdown().await;
}

/// Someone else changes the template while our rollout is failing: the
/// rollback's `test` op refuses to overwrite their change, exit 3, and their
/// change is still there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_change_is_not_overwritten_by_the_rollback() {
    let obj = deployment(
        "web",
        json!([{"name": "web", "image": "example/web:v1", "resources": {"requests": {"cpu": "1200m"}}}]),
        2,
    );
    let h = Fixture::new()
        .nodes(2)
        .node_cpu("2")
        .deployment(obj)
        .start()
        .await;
    let e = env(
        &h,
        &[
            ("INPUT_WORKLOAD", "web"),
            ("INPUT_TAG", "v2"),
            ("INPUT_UNSCHEDULABLE-GRACE", "3s"),
            // Let the surge pod be created and stay Pending: that is the
            // window in which the other writer acts.
            ("INPUT_CAPACITY-CHECK", "off"),
        ],
    );
    let run = tokio::spawn(async move {
        let mut out = Vec::new();
        let o = rollguard::run(&e, &mut out).await;
        (o, String::from_utf8_lossy(&out).to_string())
    });
    // Our patch lands (the surge pod stays unschedulable); then another
    // writer edits the template.
    assert!(
        h.wait_for(WAIT, |h| template_image(h, "web", "web")
            == "example/web:v2")
            .await
    );
    let deployments = kubesim::resources::res("deployments.apps");
    h.store()
        .modify(deployments, "default", "web", |d| {
            d["spec"]["template"]["metadata"]["annotations"]["team/other-writer"] = json!("yes");
            Ok(true)
        })
        .expect("concurrent edit");
    let (o, out) = run.await.expect("rollguard task");
    println!("{out}");
    assert_eq!(o.exit_code, 3, "{:#?}", o.report);
    let rb = o.report.rollback.as_ref().expect("rollback reported");
    assert!(!rb.confirmed, "{rb:?}");
    let d = get(&h, "web");
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["team/other-writer"], "yes",
        "the other writer's change survives"
    );
    h.shutdown().await;
}

/// A kubeconfig whose server does not answer: exit 78, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_cluster_exits_78() {
    let h = Fixture::new().start().await;
    let kubeconfig = h.kubeconfig_yaml();
    h.shutdown().await;
    let e: Env = [
        ("ROLLGUARD_KUBECONFIG".to_string(), kubeconfig),
        (
            "ROLLGUARD_WORKLOAD".to_string(),
            "deployment/web".to_string(),
        ),
        ("ROLLGUARD_TAG".to_string(), "v2".to_string()),
    ]
    .into();
    let (o, out) = rollguard(&e).await;
    assert_eq!(o.exit_code, 78, "{out}");
}
