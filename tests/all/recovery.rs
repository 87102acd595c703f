//! Interrupted-run recovery: the real binary is SIGKILLed
//! mid-rollout; the next run finds the in-progress marker, says so, rolls
//! the orphaned change back first, then deploys.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_rollout_then_next_run_rolls_back_the_orphan_first() {
    let h = web_cluster(1.0, 2).await;
    slow_image(&h, "example/web:v2", 600);
    let e = env(&h, &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_TIMEOUT", "10m")]);
    let mut child = spawn(&e);
    assert!(
        h.wait_for(WAIT, |h| image(h) == "example/web:v2").await,
        "the first run never patched"
    );
    signal(&child, "KILL");
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    let marker = annotation(&h, rollguard::recovery::IN_PROGRESS).expect("marker left behind");
    assert!(marker.contains("example/web:v1"), "{marker}");

    // The next run (its deploy lock waits for the dead run's lease to expire).
    let (o, out) = run(&env(&h, &[("ROLLGUARD_TAG", "v3")])).await;
    assert!(out.contains("found an interrupted rollguard run"), "{out}");
    assert!(
        out.contains("rolling it back to the template it replaced (example/web:v1) first"),
        "{out}"
    );
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(image(&h), "example/web:v3");
    assert!(annotation(&h, rollguard::recovery::IN_PROGRESS).is_none());
    // The rollout the next run made went from v1 (the recovered state).
    assert_eq!(
        annotation(&h, "rollguard.dev/previous-image").as_deref(),
        Some("example/web:v1")
    );
    assert!(h.wait_for(WAIT, healthy).await);
    h.shutdown().await;
}
