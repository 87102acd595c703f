//! Cancellation: SIGTERM to the real binary mid-rollout.

use std::time::Duration;

use crate::support::*;

async fn started_rollout(
    replicas: i64,
    extra: &[(&str, &str)],
) -> (kubesim::Handle, tokio::process::Child) {
    let h = web_cluster(1.0, replicas).await;
    slow_image(&h, "example/web:v2", 600);
    let mut pairs = vec![("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_TIMEOUT", "10m")];
    pairs.extend_from_slice(extra);
    let child = spawn(&env(&h, &pairs));
    assert!(
        h.wait_for(WAIT, |h| image(h) == "example/web:v2").await,
        "never patched"
    );
    (h, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rolls_back_and_exits_1_within_10s() {
    let (h, child) = started_rollout(2, &[]).await;
    let stdout = terminated(child).await;
    assert!(stdout.contains("cancelled (SIGTERM)"), "{stdout}");
    assert!(stdout.contains("rolled back to example/web:v1"), "{stdout}");
    assert_eq!(image(&h), "example/web:v1");
    assert!(annotation(&h, rollguard::recovery::IN_PROGRESS).is_none());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_exits_at_once_leaving_the_state_annotation() {
    let (h, child) = started_rollout(2, &[]).await;
    signal(&child, "TERM");
    signal(&child, "INT");
    let (out, took) = exited_within(child, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let state = annotation(&h, rollguard::cancel::STATE)
        .unwrap_or_else(|| panic!("no state annotation; stderr: {stderr}"));
    assert!(state.contains("second signal"), "{state}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cancel_leave_keeps_the_change() {
    let (h, child) = started_rollout(2, &[("ROLLGUARD_ON_CANCEL", "leave")]).await;
    signal(&child, "TERM");
    let (out, _) = exited_within(child, Duration::from_secs(10)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("on-cancel=leave"), "{stdout}");
    assert_eq!(image(&h), "example/web:v2");
    h.shutdown().await;
}
