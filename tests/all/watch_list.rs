//! How rollguard's watches take their initial state: from one streaming
//! watch per resource (`sendInitialEvents`) where the API server serves
//! streaming lists, from a LIST and then a WATCH where it refuses them (the
//! WatchList feature gate off: 1.33, or a server before 1.32). The verdicts
//! are the same either way.

use std::collections::BTreeMap;

use kubesim::Handle;
use kubesim::scenario::ImageBehaviour;
use rollguard::diagnose::Cause;

use crate::support::*;

async fn web_on(watch_list: bool) -> Handle {
    Fixture::with_config(kubesim::Config {
        speed: 25.0,
        watch_list,
        ..Default::default()
    })
    .image(
        "example/web:v2",
        ImageBehaviour::Ok {
            ready_after: std::time::Duration::from_secs(1),
        },
    )
    .deployment(web("example/web:v1", 3))
    .start()
    .await
}

/// Roll `web` out to v2 (it must succeed); rollguard's requests by shape.
async fn rolled_out_to_v2(h: &Handle) -> BTreeMap<String, u64> {
    let (o, out) = run(&env(h, &[("ROLLGUARD_TAG", "v2")])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(image(h), "example/web:v2");
    assert!(healthy(h));
    rollguard_requests(h)
}

/// rollguard's requests by shape (every rollguard User-Agent).
fn rollguard_requests(h: &Handle) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for (agent, shapes) in h.requests() {
        if agent.starts_with("rollguard/") {
            for (shape, n) in shapes {
                *all.entry(shape).or_insert(0) += n;
            }
        }
    }
    all
}

/// The collections rollguard listed (`LIST …` shapes), without the query.
fn listed(requests: &BTreeMap<String, u64>) -> Vec<String> {
    requests
        .keys()
        .filter_map(|shape| shape.strip_prefix("LIST "))
        .map(|s| s.split('?').next().unwrap_or(s).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_initial_state_lists_nothing_it_watches() {
    let h = web_on(true).await;
    let requests = rolled_out_to_v2(&h).await;
    let watched: Vec<&String> = requests
        .keys()
        .filter(|k| k.starts_with("WATCH "))
        .collect();
    for what in ["/deployments", "/replicasets", "/pods", "/events"] {
        assert!(
            watched.iter().any(|w| w.contains(what)),
            "no watch of {what}: {requests:#?}"
        );
    }
    // Nothing it watches is listed, but for the plan's one read of the
    // ReplicaSets (their revisions) before anything is watched. (The
    // capacity check's nodes and pods of the whole cluster are not watched.)
    let lists = listed(&requests);
    for what in ["deployments", "pods", "events"] {
        let shape = format!("/namespaces/{{ns}}/{what}");
        assert!(
            !lists.iter().any(|l| l.ends_with(&shape)),
            "{what} listed: {requests:#?}"
        );
    }
    let replica_set_lists: u64 = requests
        .iter()
        .filter(|(shape, _)| shape.starts_with("LIST /apis/apps/v1/namespaces/{ns}/replicasets"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(replica_set_lists, 1, "{requests:#?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_streaming_lists_it_lists_then_watches_with_the_same_verdicts() {
    let h = web_on(false).await;
    let requests = rolled_out_to_v2(&h).await;
    let lists = listed(&requests);
    for what in ["/deployments", "/pods", "/events"] {
        assert!(
            lists.iter().any(|l| l.ends_with(what)),
            "no fallback LIST of {what}: {requests:#?}"
        );
    }

    // A failure is caught and rolled back just the same.
    let (o, out) = run(&env(&h, &[("ROLLGUARD_TAG", "missing")])).await;
    assert_rolled_back(&o, &out, 1, Cause::ImageNotFound);
    assert_eq!(image(&h), "example/web:v2");
    assert!(
        h.wait_for(WAIT, healthy).await,
        "not healthy after the rollback"
    );
    h.shutdown().await;
}
