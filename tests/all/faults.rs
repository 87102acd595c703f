//! rollguard's fault suite on kubesim's fault injection: a good
//! (v2) and a bad (v2-missing: image not found) rollout under each fault.
//! Each must end with the right verdict, exit code and cluster state, and no
//! duplicate rollout: a good run makes exactly one new ReplicaSet revision;
//! a bad run's rollback reuses the old ReplicaSet (2 ReplicaSets in all).
//! The README's "Reliability" table is filled from these assertions.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

#[derive(Clone, Copy, Debug)]
enum Fault {
    WatchDrops,
    Fail20Percent,
    TooManyRequests,
    ListenerRestart,
    ConflictOnFirstPatch,
    Latency500ms,
}

/// Arm the fault; returns a background task (load, not a wait) if it needs one.
fn arm(h: &Arc<kubesim::Handle>, fault: Fault) -> Option<tokio::task::JoinHandle<()>> {
    let f = h.faults();
    match fault {
        Fault::WatchDrops => Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            loop {
                every.tick().await;
                f.drop_watches();
            }
        })),
        Fault::Fail20Percent => {
            f.fail_fraction(0.2, &[500, 503]);
            None
        }
        Fault::TooManyRequests => Some(tokio::spawn(async move {
            // A burst of 3 × 429 (Retry-After: 1) every 5 s.
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                f.fail_next(3, "*", "", 429, Some(1));
            }
        })),
        Fault::ListenerRestart => {
            let h = h.clone();
            Some(tokio::spawn(async move {
                // Once the rollout started, take the API down for 3 simulated seconds.
                if h.wait_for(WAIT, |h| image(h) != "example/web:v1").await {
                    let f = h.faults();
                    f.stop_listener().await;
                    let t0 = h.clock().now();
                    let back = t0 + jiff::SignedDuration::from_secs(3);
                    h.wait_for(WAIT, |h| h.clock().now() >= back).await;
                    f.start_listener().await.expect("listener restarts");
                }
            }))
        }
        Fault::ConflictOnFirstPatch => {
            f.conflict_next_write("deployments", "default", "web");
            None
        }
        Fault::Latency500ms => {
            f.latency(500);
            None
        }
    }
}

async fn case(fault: Fault, good: bool) {
    let h = Arc::new(web_cluster(10.0, 3).await);
    let tag = if good { "v2" } else { "v2-missing" };
    let load = arm(&h, fault);
    let (o, out) = run(&env(
        &h,
        &[("ROLLGUARD_TAG", tag), ("ROLLGUARD_TIMEOUT", "3m")],
    ))
    .await;
    if let Some(t) = load {
        t.abort();
        let _ = t.await;
    }
    h.faults().clear();
    let ctx = format!("{fault:?} good={good}\n{out}\n{:#?}", o.report.headline);
    if good {
        assert_eq!(o.exit_code, 0, "{ctx}");
        assert_eq!(image(&h), "example/web:v2", "{ctx}");
        assert_eq!(revisions(&h), vec!["1", "2"], "{ctx}");
    } else {
        assert_eq!(o.exit_code, 1, "{ctx}");
        let rb = o.report.rollback.as_ref().expect("rollback reported");
        assert!(rb.attempted && rb.confirmed, "{ctx}");
        assert_eq!(image(&h), "example/web:v1", "{ctx}");
        // The rollback reused the old ReplicaSet: no third one.
        assert_eq!(replica_set_count(&h), 2, "{ctx}");
    }
    assert!(h.wait_for(WAIT, healthy).await, "{ctx}");
    assert!(
        annotation(&h, rollguard::recovery::IN_PROGRESS).is_none(),
        "{ctx}"
    );
    if let Ok(h) = Arc::try_unwrap(h) {
        h.shutdown().await;
    }
}

macro_rules! fault_tests {
    ($($good:ident, $bad:ident: $fault:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $good() {
            case($fault, true).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $bad() {
            case($fault, false).await;
        }
    )*};
}

fault_tests! {
    watch_drops_good, watch_drops_bad: Fault::WatchDrops;
    fail_20_percent_good, fail_20_percent_bad: Fault::Fail20Percent;
    too_many_requests_good, too_many_requests_bad: Fault::TooManyRequests;
    listener_restart_good, listener_restart_bad: Fault::ListenerRestart;
    conflict_on_first_patch_good, conflict_on_first_patch_bad: Fault::ConflictOnFirstPatch;
    latency_500ms_good, latency_500ms_bad: Fault::Latency500ms;
}

/// The real binary's stdout, stderr and exit code.
async fn run_binary(env: &rollguard::Env) -> (Option<i32>, String, String) {
    let out = spawn(env).wait_with_output().await.expect("rollguard ran");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    (out.status.code(), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_then_served_503s_log_no_error() {
    let h = web_cluster(10.0, 2).await;
    // The first requests (the permission check, the lock, the read) and the
    // first patch answer 503; every one is retried and then served.
    h.faults().fail_next(4, "*", "", 503, None);
    h.faults().fail_next(2, "PATCH", "", 503, None);
    let (code, stdout, stderr) = run_binary(&env(&h, &[("ROLLGUARD_TAG", "v2")])).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(image(&h), "example/web:v2");
    assert_eq!(revisions(&h), vec!["1", "2"], "one new revision");
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert!(annotation(&h, rollguard::recovery::IN_PROGRESS).is_none());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_rollback_of_a_timed_out_run_keeps_exit_70_and_its_cause() {
    use tokio::io::AsyncReadExt;
    let mut web = web("example/web:v1", 2);
    web["spec"]["strategy"] = serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}});
    let h = Fixture::new().speed(1.0).deployment(web).start().await;
    // The new version never gets ready; the old one takes 6 s to come back,
    // so the signal lands in the middle of the rollback.
    slow_image(&h, "example/web:v2", 600);
    slow_image(&h, "example/web:v1", 6);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_TIMEOUT", "4s")]);
    e.insert("ROLLGUARD_REPORT_FILE".into(), report.display().to_string());
    let mut child = spawn(&e);
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("rolling back") {
        let n = tokio::time::timeout(Duration::from_secs(60), stdout.read(&mut buf))
            .await
            .expect("rollguard times out and rolls back")
            .unwrap();
        assert!(n > 0, "ended before the rollback: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    signal(&child, "TERM");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    let status = child.wait().await.unwrap();
    let all = format!("{seen}{rest}");
    println!("{all}");
    assert_eq!(status.code(), Some(70), "the timeout verdict stands: {all}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["exit_code"], 70);
    let cause = r["cause"].as_str().unwrap_or_default();
    assert!(
        !cause.is_empty() && !cause.starts_with("cancelled"),
        "the rollout's cause: {cause}"
    );
    assert_eq!(image(&h), "example/web:v1");
    assert!(annotation(&h, rollguard::recovery::IN_PROGRESS).is_none());
    h.shutdown().await;
}
