//! The canary step of a StatefulSet end to end against kubesim over
//! HTTPS: the `partition` of its rolling update, passing, failing,
//! cancelled and killed (restored by the next run). Every case checks the
//! stable ordinals are the very same pods afterwards, and the partition.

use std::time::Duration;

use crate::support::*;
use kubesim::Handle;
use rollguard::diagnose::Cause;
use serde_json::Value;

const SPEED: f64 = 25.0;

fn sts_env(h: &Handle, pairs: &[(&str, &str)]) -> rollguard::Env {
    env_with(
        h,
        &[
            ("ROLLGUARD_VERIFY_IMAGE", "false"),
            ("ROLLGUARD_CAPACITY_CHECK", "off"),
            ("ROLLGUARD_WORKLOAD", "statefulset/db"),
        ],
        pairs,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_canary_on_the_partition_passes_then_every_pod_updates() {
    let h = cluster(SPEED).await;
    h.create(database("db", "example/db:1", 4)).unwrap();
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 4)).await);
    let (o, out) = run(&sts_env(&h, &canary_inputs("2", "1", "2s"))).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(
        out.contains("ordinals 3..3 take the new version (partition 3)"),
        "{out}"
    );
    assert!(out.contains("canary passed"), "{out}");
    assert!(statefulset_settled(&h, "db", 4));
    let s = statefulset_named(&h, "db");
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    assert!(s["metadata"]["annotations"]["rollguard.dev/canary-partition"].is_null());
    for (_, _, image, _) in statefulset_pods(&h) {
        assert_eq!(image, "example/db:2");
    }
    assert!(
        o.report
            .canary
            .as_deref()
            .unwrap_or("")
            .starts_with("canary: 1 of 4 pods")
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_statefulset_canary_touches_only_its_ordinal() {
    let h = cluster(SPEED).await;
    h.create(database("db", "example/db:1", 4)).unwrap();
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 4)).await);
    let good = statefulset_named(&h, "db")["status"]["currentRevision"].clone();
    let template = statefulset_named(&h, "db")["spec"]["template"].clone();
    let before = statefulset_pods(&h);
    let (o, out) = run(&sts_env(&h, &canary_inputs("2-crash", "1", "1m"))).await;
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(
        o.report.findings.first().map(|f| f.cause),
        Some(Cause::CrashLoop),
        "{out}"
    );
    assert!(
        out.contains("the ordinals below 3 were never changed"),
        "{out}"
    );
    assert_db_restored(&h, &template, good.as_str().unwrap(), &before).await;
    let canary = o.report.canary.clone().unwrap_or_default();
    assert!(canary.starts_with("canary: 1 of 4 pods"), "{canary}");
    assert!(canary.contains("partition restored to 0"), "{canary}");
    h.shutdown().await;
}

/// db-3 runs the update revision and has been Ready for `secs` of real time.
fn sts_canary_ready_for(h: &Handle, secs: f64) -> bool {
    let s = statefulset_named(h, "db");
    let Some(update) = s["status"]["updateRevision"].as_str() else {
        return false;
    };
    if s["status"]["currentRevision"].as_str() == Some(update) {
        return false;
    }
    let now = h.clock().now();
    live_pods(h).iter().any(|p| {
        p["metadata"]["name"] == "db-3"
            && p["metadata"]["labels"]["controller-revision-hash"] == update
            && ready_secs(p, now).is_some_and(|s| s >= secs * SPEED)
    })
}

/// A StatefulSet of 4 holding its canary (db-3) in the real binary.
async fn sts_holding() -> (
    Handle,
    tokio::process::Child,
    Value,
    Vec<(String, String, String, String)>,
) {
    let h = cluster(SPEED).await;
    h.create(database("db", "example/db:1", 4)).unwrap();
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 4)).await);
    let template = statefulset_named(&h, "db")["spec"]["template"].clone();
    let before = statefulset_pods(&h);
    let child = spawn(&sts_env(&h, &canary_inputs("2", "1", "10m")));
    assert!(
        h.wait_for(WAIT, |h| sts_canary_ready_for(h, 3.0)).await,
        "the canary ordinal never became ready"
    );
    (h, child, template, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_statefulset_hold_rolls_the_canary_ordinal_back() {
    let (h, child, template, before) = sts_holding().await;
    signal(&child, "TERM");
    let (out, _) = exited_within(child, Duration::from_secs(15)).await;
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cancelled (SIGTERM)"), "{stdout}");
    assert_db_restored(&h, &template, &before[3].3, &before).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_run_restores_the_partition_of_a_killed_statefulset_canary() {
    let (h, mut child, _, _) = sts_holding().await;
    signal(&child, "KILL");
    assert_eq!(
        child.wait().await.unwrap().code(),
        None,
        "killed by a signal"
    );
    assert_eq!(
        statefulset_named(&h, "db")["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        3
    );

    // The next run rolls the orphaned template back, restores the
    // partition, then rolls out its own image everywhere.
    let (o, out) = run(&sts_env(
        &h,
        &[("ROLLGUARD_TAG", "3"), ("ROLLGUARD_LOCK", "false")],
    ))
    .await;
    assert!(out.contains("found an interrupted rollguard run"), "{out}");
    assert!(
        out.contains("found the canary partition of an interrupted rollguard run on statefulset/db: restored the partition to 0"),
        "{out}"
    );
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(h.wait_for(WAIT, |h| statefulset_settled(h, "db", 4)).await);
    let s = statefulset_named(&h, "db");
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    assert!(s["metadata"]["annotations"]["rollguard.dev/canary-partition"].is_null());
    let pods = statefulset_pods(&h);
    assert_eq!(pods.len(), 4);
    for (name, _, image, _) in pods {
        assert_eq!(image, "example/db:3", "{name}");
    }
    h.shutdown().await;
}
