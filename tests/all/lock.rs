//! The deploy lock: a Lease per workload, so two runs never change it at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

fn lease(holder: &str, renewed_secs_ago: i64, duration: i64) -> serde_json::Value {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago);
    let t = t.strftime("%Y-%m-%dT%H:%M:%S.000000Z").to_string();
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "rollguard-deployment-web", "namespace": "default"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "acquireTime": t, "renewTime": t}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_never_overlap() {
    let h = Arc::new(web_cluster(25.0, 3).await);
    // Record every template change with when it happened.
    let changes: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let recorder = {
        let h = h.clone();
        let changes = changes.clone();
        tokio::spawn(async move {
            let mut last = image(&h);
            loop {
                if !h
                    .wait_for(Duration::from_secs(120), |h| image(h) != last)
                    .await
                {
                    return;
                }
                last = image(&h);
                changes.lock().unwrap().push((last.clone(), Instant::now()));
            }
        })
    };
    let a = env(
        &h,
        &[
            ("ROLLGUARD_TAG", "v2"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "1"),
        ],
    );
    let b = env(
        &h,
        &[
            ("ROLLGUARD_TAG", "v3"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "2"),
        ],
    );
    let run_a = async {
        let r = run(&a).await;
        (r, Instant::now())
    };
    let run_b = async {
        let r = run(&b).await;
        (r, Instant::now())
    };
    let (((oa, out_a), end_a), ((ob, out_b), end_b)) = tokio::join!(run_a, run_b);
    recorder.abort();
    let _ = recorder.await;
    assert_eq!(oa.exit_code, 0, "{out_a}");
    assert_eq!(ob.exit_code, 0, "{out_b}");
    let waited = [&out_a, &out_b]
        .iter()
        .filter(|o| o.contains("waiting for the deploy lock lease/rollguard-deployment-web held by https://github.com/o/r/actions/runs/"))
        .count();
    assert_eq!(waited, 1, "exactly one run waited:\n{out_a}\n{out_b}");
    let changes = changes.lock().unwrap().clone();
    assert_eq!(changes.len(), 2, "{changes:?}");
    let (first_end, second_image) = if end_a < end_b {
        (end_a, "example/web:v3")
    } else {
        (end_b, "example/web:v2")
    };
    assert_eq!(changes[1].0, second_image, "{changes:?}");
    assert!(
        changes[1].1 >= first_end,
        "the second patch came before the first run finished"
    );
    assert_eq!(image(&h), second_image);
    assert!(
        h.get(
            "coordination.k8s.io/v1",
            "Lease",
            "default",
            "rollguard-deployment-web"
        )
        .is_none()
    );
    if let Ok(h) = Arc::try_unwrap(h) {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over() {
    let h = web_cluster(25.0, 2).await;
    h.create(lease("https://ci.example/jobs/dead", 600, 30))
        .unwrap();
    let (o, out) = run(&env(&h, &[("ROLLGUARD_TAG", "v2")])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(!out.contains("waiting for the deploy lock"), "{out}");
    assert_eq!(image(&h), "example/web:v2");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeout_exits_3_naming_the_holder() {
    let h = web_cluster(25.0, 2).await;
    let holder = "https://github.com/o/r/actions/runs/77";
    h.create(lease(holder, 0, 3600)).unwrap();
    let (o, out) = run(&env(
        &h,
        &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_LOCK_TIMEOUT", "2s")],
    ))
    .await;
    assert_eq!(o.exit_code, 3, "{out}");
    assert!(out.contains(&format!("held by {holder}")), "{out}");
    assert!(o.report.headline.contains(holder), "{}", o.report.headline);
    assert_eq!(image(&h), "example/web:v1");
    // lock=false ignores it.
    let (o, out) = run(&env(
        &h,
        &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_LOCK", "false")],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    h.shutdown().await;
}
