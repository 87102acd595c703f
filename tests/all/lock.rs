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

/// A client of the cluster as rollguard builds it.
async fn client(h: &kubesim::Handle) -> kube::Client {
    let source = rollguard::config::KubeconfigSource::Inline(h.kubeconfig_yaml());
    rollguard::kube_client::connect(&source, None)
        .await
        .expect("connects")
        .0
}

async fn held(client: &kube::Client, identity: &str) -> rollguard::lock::Held {
    let acquired = rollguard::lock::acquire(
        client,
        "default",
        "deployment",
        "web",
        identity,
        Duration::from_secs(5),
        |_, _| {},
    )
    .await
    .expect("acquired");
    match acquired {
        rollguard::lock::Acquired::Held(h) => *h,
        rollguard::lock::Acquired::Unlocked(why) => panic!("{why}"),
    }
}

const LEASE: &str = "rollguard-deployment-web";

/// How many `verb` requests rollguard made of one Lease so far.
fn lease_requests(h: &kubesim::Handle, verb: &str) -> u64 {
    let shape = format!("{verb} /apis/coordination.k8s.io/v1/namespaces/{{ns}}/leases/{{name}}");
    h.requests()
        .iter()
        .filter(|(agent, _)| agent.starts_with("rollguard/"))
        .filter_map(|(_, shapes)| shapes.get(&shape))
        .sum()
}

fn stored_lease(h: &kubesim::Handle) -> Option<serde_json::Value> {
    h.get("coordination.k8s.io/v1", "Lease", "default", LEASE)
        .map(|l| (*l).clone())
}

fn write_lease(h: &kubesim::Handle, lease: serde_json::Value) {
    h.store()
        .update(
            kubesim::resources::res("leases.coordination.k8s.io"),
            "default",
            LEASE,
            lease,
            None,
        )
        .expect("lease written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_deletes_our_lease_changed_since_and_leaves_a_taken_over_one() {
    let h = web_cluster(25.0, 1).await;
    let client = client(&h).await;

    // Changed after we wrote it (a label, our nonce kept): the delete's
    // preconditions no longer match; read again, it is still ours: deleted.
    let ours = held(&client, "run-a").await;
    let mut touched = stored_lease(&h).expect("created");
    touched["metadata"]["labels"]["touched"] = json!("yes");
    write_lease(&h, touched);
    ours.release().await;
    assert!(stored_lease(&h).is_none(), "our lease was left behind");

    // Taken over by another run (its holder and nonce): left in place.
    let ours = held(&client, "run-a").await;
    let mut theirs = stored_lease(&h).expect("created");
    theirs["spec"]["holderIdentity"] = json!("run-b");
    theirs["metadata"]["annotations"][rollguard::lock::NONCE] = json!("0123456789abcdef");
    write_lease(&h, theirs);
    ours.release().await;
    let left = stored_lease(&h).expect("their lease was deleted");
    assert_eq!(left["spec"]["holderIdentity"], "run-b");

    // Free and untouched since we wrote it: created without a read, and
    // deleted without one.
    h.store()
        .delete(
            kubesim::resources::res("leases.coordination.k8s.io"),
            "default",
            LEASE,
        )
        .expect("cleared");
    let reads = || lease_requests(&h, "GET");
    let before = reads();
    let ours = held(&client, "run-a").await;
    ours.release().await;
    assert!(stored_lease(&h).is_none());
    assert_eq!(reads(), before, "the Lease was read");
    h.shutdown().await;
}
