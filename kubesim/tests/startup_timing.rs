//! The start-up timing of a rollout, in its own test binary (alone in its
//! process, on a multi-threaded runtime) so that other tests' clusters do
//! not add their latency, which the speed factor multiplies.

use std::time::Duration;

#[path = "all/common.rs"]
mod common;

use common::{deployment, rolled_out, set_image};
use kubesim::{Config, Handle};

const WAIT: Duration = Duration::from_secs(20);

/// Simulated seconds from a template change to kubectl's rollout-complete rule.
async fn time_rollout(h: &Handle, name: &str, image: &str) -> f64 {
    let t0 = h.clock().now();
    set_image(h, name, image);
    assert!(
        h.wait_for(WAIT, |h| rolled_out(h, name)).await,
        "{name} did not roll out to {image}"
    );
    h.clock().now().duration_since(t0).as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_takes_node_like_time_cached_and_fresh_at_speed_25() {
    // The real cluster these times were taken on: 2 nodes of 2 cpu.
    let h = kubesim::start(Config {
        speed: 25.0,
        nodes: 2,
        ..Config::default()
    })
    .await
    .expect("start kubesim");
    h.create(deployment("web", "example/web:1", 3)).unwrap();
    assert!(h.wait_for(WAIT, |h| rolled_out(h, "web")).await);
    // A tag no node has: a pull per new pod.
    let fresh = time_rollout(&h, "web", "example/web:2").await;
    // Back to the first tag, present on every node that ran it.
    let cached = time_rollout(&h, "web", "example/web:1").await;
    eprintln!("3-replica rollout: fresh pull {fresh:.2} s, cached {cached:.2} s (simulated)");
    assert!(
        (1.2..4.0).contains(&cached),
        "cached rollout took {cached} s"
    );
    assert!(
        (2.4..6.5).contains(&fresh),
        "fresh-pull rollout took {fresh} s"
    );
    assert!(fresh > cached + 0.3, "fresh {fresh} s vs cached {cached} s");
    h.shutdown().await;
}
