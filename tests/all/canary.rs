//! The canary step of a Deployment end to end against kubesim over HTTPS:
//! its `<name>-canary` passing, failing, cancelled, killed (and cleaned up
//! by the next run), and refused inputs. Every failing case checks that the
//! stable Deployment never changed and that no canary object or pod is left
//! (the StatefulSet's partition canary: tests/canary_statefulset.rs).

use crate::support;
use std::time::{Duration, Instant};

use crate::support::*;
use kubesim::Handle;
use rollguard::diagnose::Cause;
use serde_json::{Value, json};

const SPEED: f64 = 25.0;

/// A cluster at `SPEED` whose Deployment `web` has `replicas` ready v1 pods.
/// A run of `tag` with a canary of one pod (the default hold).
async fn canary_of_one(h: &Handle, tag: &str) -> (rollguard::Outcome, String) {
    run(&env(
        h,
        &[("ROLLGUARD_TAG", tag), ("ROLLGUARD_CANARY", "1")],
    ))
    .await
}

async fn web_ready(replicas: i64) -> Handle {
    let h = cluster(SPEED).await;
    create_ready(&h, support::web("example/web:v1", replicas)).await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_passes_and_the_full_rollout_follows() {
    let h = web_ready(4).await;
    let (o, out) = run(&env(&h, &canary_inputs("v2", "25%", "2s"))).await;
    assert_eq!(o.exit_code, 0, "{out}");
    let passed = out.find("canary passed").expect("the canary passed");
    let full = out
        .find("rolling deployment/web")
        .expect("the full rollout ran");
    assert!(
        passed < full,
        "the stable Deployment was patched before the canary passed:\n{out}"
    );
    assert!(out.contains("holding it for 2s"), "{out}");
    assert_eq!(image(&h), "example/web:v2");
    assert!(h.wait_for(WAIT, healthy).await);
    let pods = live_pods(&h);
    assert_eq!(pods.len(), 4, "{pods:?}");
    for p in &pods {
        assert_eq!(p["spec"]["containers"][0]["image"], "example/web:v2");
        assert_eq!(p["metadata"]["labels"]["app.kubernetes.io/version"], "v2");
    }
    assert_no_canary_left(&h);
    // The stable Deployment's tracking leaves the canary's pod out: never
    // more than its 4 replicas of the new version.
    assert!(!o.report.timeline.is_empty());
    let most_new = o.report.timeline.iter().map(|s| s.new_ready).max();
    assert_eq!(most_new, Some(4), "{:?}", o.report.timeline);
    let canary = o
        .report
        .canary
        .clone()
        .expect("the report names the canary");
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    assert!(
        canary.contains("passed; deleted after the full rollout"),
        "{canary}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_canary_fails_and_the_stable_deployment_never_changes() {
    let h = web_ready(4).await;
    let before = stable_state(&h);
    let files = tempfile::tempdir().unwrap();
    let summary = files.path().join("summary").to_string_lossy().into_owned();
    let report = files
        .path()
        .join("report.json")
        .to_string_lossy()
        .into_owned();
    let (o, out) = run(&env(
        &h,
        &[
            ("ROLLGUARD_TAG", "v2-crash"),
            ("ROLLGUARD_CANARY", "1"),
            ("ROLLGUARD_CANARY_HOLD", "1m"),
            ("ROLLGUARD_REPORT_FILE", &report),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", &summary),
        ],
    ))
    .await;
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(
        o.report.findings.first().map(|f| f.cause),
        Some(Cause::CrashLoop),
        "{out}"
    );
    assert_untouched(&h, &before);
    assert_eq!(image(&h), "example/web:v1");
    assert!(
        o.report
            .headline
            .contains("deployment/web was never changed"),
        "{}",
        o.report.headline
    );
    let rb = o.report.rollback.clone().expect("rollback");
    assert!(
        rb.confirmed && rb.detail.contains("deleted the canary"),
        "{rb:?}"
    );
    // The exposure in every sink: the report, the console, the job summary, the JSON file.
    let canary = o.report.canary.clone().expect("canary exposure");
    assert!(canary.starts_with("canary: 1 of 4 pods for"), "{canary}");
    assert!(canary.ends_with("failed"), "{canary}");
    assert!(out.contains(&format!("exposure: {canary}")), "{out}");
    let md = std::fs::read_to_string(&summary).expect("job summary written");
    assert!(md.contains(&canary), "{md}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["canary"], canary.as_str());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_image_does_not_exist_fails_at_first_sight() {
    let h = web_ready(3).await;
    let before = stable_state(&h);
    let t0 = Instant::now();
    let (o, out) = canary_of_one(&h, "v2-missing").await;
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(
        o.report.findings.first().map(|f| f.cause),
        Some(Cause::ImageNotFound),
        "{out}"
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert_untouched(&h, &before);
    assert!(
        o.report
            .canary
            .as_deref()
            .unwrap_or("")
            .starts_with("canary: 1 of 3 pods")
    );
    h.shutdown().await;
}

/// The canary pod has been Ready for `secs` of real time (so the stability
/// window passed and the hold is running).
fn canary_ready_for(h: &Handle, secs: f64) -> bool {
    let now = h.clock().now();
    canary_pods(h)
        .iter()
        .any(|p| ready_secs(p, now).is_some_and(|s| s >= secs * SPEED))
}

async fn holding(
    extra: &[(&str, &str)],
) -> (
    Handle,
    tokio::process::Child,
    (Value, Value, Value, Vec<(String, String)>),
) {
    let h = web_ready(3).await;
    let before = stable_state(&h);
    let mut pairs: Vec<(&str, &str)> = canary_inputs("v2", "1", "10m").to_vec();
    pairs.extend_from_slice(extra);
    let child = spawn(&env(&h, &pairs));
    assert!(
        h.wait_for(WAIT, |h| canary_ready_for(h, 3.0)).await,
        "the canary never became ready"
    );
    (h, child, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_hold_removes_the_canary() {
    let (h, child, before) = holding(&[]).await;
    let stdout = terminated(child).await;
    assert!(stdout.contains("holding it for 10m"), "{stdout}");
    assert!(
        stdout.contains("cancelled (SIGTERM) during the canary"),
        "{stdout}"
    );
    assert_untouched(&h, &before);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_deletes_the_canary_before_exiting() {
    let (h, child, before) = holding(&[]).await;
    signal(&child, "TERM");
    signal(&child, "INT");
    let (out, _) = exited_within(child, Duration::from_secs(10)).await;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        h.wait_for(WAIT, |h| canary_deployment(h).is_none()
            && canary_pods(h).is_empty())
            .await,
        "the canary was not deleted: {stderr}"
    );
    assert_eq!(stable_state(&h).0, before.0, "the stable template changed");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_run_removes_the_canary_of_a_killed_run() {
    let (h, mut child, _) = holding(&[]).await;
    signal(&child, "KILL");
    assert_eq!(
        child.wait().await.unwrap().code(),
        None,
        "killed by a signal"
    );
    let left = canary_deployment(&h).expect("the killed run left its canary");
    assert!(!left["metadata"]["annotations"][CANARY_LABEL].is_null());
    assert_eq!(
        image(&h),
        "example/web:v1",
        "the killed run never reached the stable one"
    );

    let (o, out) = run(&env(&h, &[("ROLLGUARD_TAG", "v3")])).await;
    assert!(
        out.contains("found a canary deployment/web-canary left by an interrupted rollguard run"),
        "{out}"
    );
    assert_eq!(o.exit_code, 0, "{out}");
    assert_no_canary_left(&h);
    assert_eq!(image(&h), "example/web:v3");
    h.shutdown().await;
}

// ---------------------------------------------------------------- refused

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_canary_inputs_exit_2_with_the_cluster_untouched() {
    let h = web_ready(4).await;
    let before = stable_state(&h);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("ROLLGUARD_CANARY", "4")],
            "not fewer than the 4 replicas of deployment/web",
        ),
        (
            &[("ROLLGUARD_CANARY", "100%")],
            "not fewer than the 4 replicas",
        ),
        (&[("ROLLGUARD_CANARY", "0")], "at least 1 pod"),
        (&[("ROLLGUARD_CANARY", "one")], "canary"),
        (
            &[
                ("ROLLGUARD_CANARY", "1"),
                ("ROLLGUARD_WORKLOAD", "daemonset/agent"),
            ],
            "not daemonset/agent",
        ),
        (
            &[
                ("ROLLGUARD_CANARY", "1"),
                ("ROLLGUARD_WORKLOAD", "rc/legacy"),
            ],
            "not replicationcontroller/legacy",
        ),
        (
            &[
                ("ROLLGUARD_CANARY", "1"),
                ("ROLLGUARD_WORKLOAD", "deployment/web,deployment/api"),
            ],
            "a single workload",
        ),
        (&[("ROLLGUARD_CANARY_HOLD", "1m")], "needs the canary input"),
    ];
    for (pairs, says) in cases {
        let mut all = vec![("ROLLGUARD_TAG", "v2")];
        all.extend_from_slice(pairs);
        let (o, out) = run(&env(&h, &all)).await;
        assert_eq!(o.exit_code, 2, "{pairs:?}: {out}");
        assert!(
            o.report.headline.contains(says) || out.contains(says),
            "{pairs:?}: {out}"
        );
        assert_eq!(stable_state(&h), before, "{pairs:?} changed the cluster");
        assert_no_canary_left(&h);
    }
    // A `web-canary` that is not ours is never touched.
    let mut theirs = web("example/other:1", 1);
    theirs["metadata"]["name"] = json!("web-canary");
    theirs["spec"]["selector"]["matchLabels"] = json!({"name": "other"});
    theirs["spec"]["template"]["metadata"]["labels"] = json!({"name": "other"});
    h.create(theirs).unwrap();
    let (o, out) = canary_of_one(&h, "v2").await;
    assert_eq!(o.exit_code, 2, "{out}");
    assert!(
        out.contains("deployment/web-canary already exists and is not a rollguard canary"),
        "{out}"
    );
    let kept = canary_deployment(&h).expect("theirs is kept");
    assert_eq!(
        kept["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/other:1"
    );
    assert_eq!(stable_state(&h).0, before.0);
    h.shutdown().await;
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> kubesim::Rule {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    kubesim::Rule {
        verbs: v(verbs),
        groups: v(groups),
        resources: v(resources),
        namespaces: vec!["default".into()],
    }
}

/// The README's minimal Role, plus `extra` verbs on Deployments.
fn role(extra: &[&str]) -> Vec<kubesim::Rule> {
    let mut deployments = vec!["get", "patch", "list", "watch"];
    deployments.extend_from_slice(extra);
    vec![
        rule(&["apps"], &["deployments"], &deployments),
        rule(&["apps"], &["replicasets"], &["list", "watch"]),
        rule(&[""], &["pods"], &["list", "watch"]),
        rule(&[""], &["pods/log"], &["get"]),
        rule(&[""], &["events"], &["list", "watch"]),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "create", "update", "watch", "delete"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_needs_create_and_delete_on_deployments_asked_before_it_is_made() {
    let h = web_ready(3).await;
    let before = stable_state(&h);
    h.add_identity("ci", "minimal-token", role(&["create"]));
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_CANARY", "1")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("minimal-token", "ci"),
    );
    let (o, out) = run(&e).await;
    assert_eq!(o.exit_code, 78, "{out}");
    assert!(
        out.contains("missing permission in namespace default: delete deployments.apps (the canary deployment/web-canary"),
        "{out}"
    );
    assert_untouched(&h, &before);
    // With both verbs the same identity runs the canary and the rollout.
    h.add_identity("ci2", "canary-token", role(&["create", "delete"]));
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("canary-token", "ci2"),
    );
    e.insert("ROLLGUARD_CANARY_HOLD".into(), "1s".into());
    let (o, out) = run(&e).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(image(&h), "example/web:v2");
    assert_no_canary_left(&h);
    h.shutdown().await;
}
