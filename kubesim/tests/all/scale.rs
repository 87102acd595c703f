//! Scale: many Deployments rolled out at once with many open watches.
//! Prints time to all available, watch-event latency (p50/p99), request
//! throughput of a GET/LIST burst and the process RSS. The numbers are
//! recorded in the crate README.
//!
//! Both run in the normal suite (the 1 000-pod one takes a few seconds on
//! 2 cores); see the numbers with
//! `cargo test -p kubesim --test all scale:: -- --nocapture --test-threads 1`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kubesim::{Config, Handle};
use serde_json::json;

struct Numbers {
    pods: usize,
    watchers: usize,
    to_available: Duration,
    latency_p50: Duration,
    latency_p99: Duration,
    latency_samples: usize,
    requests: usize,
    burst: Duration,
    rss_kib: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The first `"resourceVersion":"N"` of a watch event line: the object's own
/// (a pod has no other resourceVersion before its metadata's).
fn rv_of(line: &[u8]) -> Option<u64> {
    const NEEDLE: &[u8] = b"\"resourceVersion\":\"";
    let i = line.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let end = line[i..].iter().position(|b| *b == b'"')? + i;
    std::str::from_utf8(&line[i..end]).ok()?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(deployments: usize, replicas: usize, watchers: usize) -> Numbers {
    let pods = deployments * replicas;
    let nodes = pods.div_ceil(100).max(3);
    let h: Handle = kubesim::start(Config {
        tls: false,
        nodes,
        node_pods: 110,
        node_cpu: "64".into(),
        node_memory: "256Gi".into(),
        speed: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .http1_only()
        .user_agent("scale-test/1.0")
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let base = h.base_url.clone();
    let token = h.token.clone();

    // When each pod change left the store (in-process broadcast receipt).
    let stamps: Arc<Mutex<HashMap<u64, Instant>>> = Default::default();
    let mut store_rx = h.sim.store.subscribe();
    let rec = {
        let stamps = stamps.clone();
        tokio::spawn(async move {
            while let Ok(ch) = store_rx.recv().await {
                if ch.res.plural == "pods" {
                    stamps.lock().unwrap().insert(ch.rv, Instant::now());
                }
            }
        })
    };

    // The watchers: all pods in all namespaces, from now.
    let start_rv = h.sim.store.current_rv();
    let received: Arc<Mutex<Vec<(u64, Instant)>>> = Default::default();
    let seen_max: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new(
        (0..watchers)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
    );
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut watch_tasks = Vec::new();
    for w in 0..watchers {
        let resp = c
            .get(format!(
                "{base}/api/v1/pods?watch=true&resourceVersion={start_rv}&allowWatchBookmarks=false"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let received = received.clone();
        let seen_max = seen_max.clone();
        let progress = progress.clone();
        watch_tasks.push(tokio::spawn(async move {
            let mut s = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut local = Vec::new();
            while let Some(Ok(chunk)) = s.next().await {
                let now = Instant::now();
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    if let Some(rv) = rv_of(&buf[..nl]) {
                        local.push((rv, now));
                        seen_max[w].fetch_max(rv, std::sync::atomic::Ordering::Relaxed);
                    }
                    buf.drain(..=nl);
                }
                progress.notify_waiters();
                if local.len() > 256 {
                    received.lock().unwrap().append(&mut local);
                }
            }
            received.lock().unwrap().append(&mut local);
        }));
    }

    // Create the Deployments over HTTP, 8 at a time.
    let t0 = Instant::now();
    let bodies: Vec<_> = (0..deployments)
        .map(|i| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("app-{i}")},
                "spec": {"replicas": replicas,
                    "selector": {"matchLabels": {"app": format!("app-{i}")}},
                    "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                        "spec": {"containers": [{"name": "web", "image": "example/web:1.0"}]}}}})
        })
        .collect();
    futures::stream::iter(bodies)
        .for_each_concurrent(8, |b| {
            let c = c.clone();
            let url = format!("{base}/apis/apps/v1/namespaces/default/deployments");
            let token = token.clone();
            async move {
                let r = c
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(b.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        })
        .await;
    let all_available = h
        .wait_for(Duration::from_secs(300), |h| {
            let ds = h.list("apps/v1", "Deployment", "default");
            ds.len() == deployments
                && ds.iter().all(|d| {
                    d["status"]["availableReplicas"].as_u64() == Some(replicas as u64)
                        && d["status"]["updatedReplicas"].as_u64() == Some(replicas as u64)
                })
        })
        .await;
    assert!(all_available, "not all deployments became available");
    let to_available = t0.elapsed();

    // Every watcher has caught up with the last pod change.
    let last_pod_rv = stamps.lock().unwrap().keys().copied().max().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let notified = progress.notified();
        let behind = seen_max
            .iter()
            .filter(|m| m.load(std::sync::atomic::Ordering::Relaxed) < last_pod_rv)
            .count();
        if behind == 0 {
            break;
        }
        assert!(
            tokio::time::timeout_at(deadline, notified).await.is_ok(),
            "{behind} watchers behind"
        );
    }

    // Burst: GETs of single Deployments and LISTs of one app's pods.
    let n_req = 4 * deployments.max(50);
    let t1 = Instant::now();
    futures::stream::iter(0..n_req)
        .for_each_concurrent(16, |i| {
            let c = c.clone();
            let token = token.clone();
            let d = i % deployments;
            let url = if i % 4 == 3 {
                format!("{base}/api/v1/namespaces/default/pods?labelSelector=app%3Dapp-{d}")
            } else {
                format!("{base}/apis/apps/v1/namespaces/default/deployments/app-{d}")
            };
            async move {
                let r = c.get(url).bearer_auth(token).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let _ = r.bytes().await.unwrap();
            }
        })
        .await;
    let burst = t1.elapsed();
    let rss = rss_kib();

    h.faults().drop_watches();
    for t in watch_tasks {
        t.await.unwrap();
    }
    rec.abort();
    let mut lat: Vec<Duration> = {
        let stamps = stamps.lock().unwrap();
        received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(rv, at)| stamps.get(rv).map(|s| at.saturating_duration_since(*s)))
            .collect()
    };
    lat.sort();
    let m = h.metrics();
    assert!(m["scale-test/1.0"].watch_events as usize >= pods * watchers);
    h.shutdown().await;
    Numbers {
        pods,
        watchers,
        to_available,
        latency_p50: percentile(&lat, 0.5),
        latency_p99: percentile(&lat, 0.99),
        latency_samples: lat.len(),
        requests: n_req,
        burst,
        rss_kib: rss,
    }
}

fn print(n: &Numbers) {
    eprintln!(
        "scale: {} pods, {} watches: all available in {:.2?}; watch latency p50 {:.2?} p99 {:.2?} ({} events); \
         burst {} GET/LIST in {:.2?} = {:.0} req/s; RSS {} MiB",
        n.pods,
        n.watchers,
        n.to_available,
        n.latency_p50,
        n.latency_p99,
        n.latency_samples,
        n.requests,
        n.burst,
        n.requests as f64 / n.burst.as_secs_f64(),
        n.rss_kib / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_light() {
    let n = run(20, 5, 10).await;
    print(&n);
    assert!(n.latency_samples > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_1000_pods_50_watches() {
    let n = run(100, 10, 50).await;
    print(&n);
    assert!(n.latency_samples > 0);
}
