// Slightly over 500 lines: one suite whose tests share the watch and timeline helpers.
//! Where timing and container state decide a deploy tool's verdict, kubesim
//! behaves as a real node and control plane do: start-up order and timing,
//! crash exits published before the restart, termination-message policies
//! (the control plane's side is in `control_plane_fidelity`). Transitions are read
//! from watches over HTTPS (the order a client sees) and from the store's
//! change stream stamped with the simulated clock (the timing).

use std::sync::Arc;
use std::time::Duration;

use crate::common::{api_client, pod_ready};
use jiff::Timestamp;
use kubesim::store::{Change, EventType};
use kubesim::{Config, Handle, ImageBehaviour};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

pub(crate) const WAIT: Duration = Duration::from_secs(20);

pub(crate) async fn start(config: Config) -> Handle {
    kubesim::start(Config {
        tls: true,
        ..config
    })
    .await
    .expect("start kubesim")
}

/// A cluster of `nodes` nodes at `speed`, over HTTPS.
pub(crate) async fn cluster(speed: f64, nodes: usize) -> Handle {
    start(Config {
        speed,
        nodes,
        ..Config::default()
    })
    .await
}

/// A GET of `path` over HTTPS as the admin, answered 200 (`what` names
/// the request when it is not).
async fn admin_get(h: &Handle, path: &str, what: &str) -> reqwest::Response {
    let c = api_client(Some(h.ca_pem.as_deref().unwrap()), false);
    let r = c
        .get(format!("{}{path}", h.base_url))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{what} {path}");
    r
}

/// GET over HTTPS as the admin.
pub(crate) async fn get(h: &Handle, path: &str) -> Value {
    admin_get(h, path, "GET").await.json().await.unwrap()
}

/// The events in `default`, listed over HTTPS.
pub(crate) async fn events(h: &Handle) -> Vec<Value> {
    let list = get(h, "/api/v1/namespaces/default/events").await;
    list["items"].as_array().unwrap().clone()
}

/// A watch over HTTPS whose events (type, object) arrive on a channel.
pub(crate) async fn watch(h: &Handle, path: &str) -> mpsc::UnboundedReceiver<(String, Value)> {
    let mut resp = admin_get(h, path, "watch").await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.extend_from_slice(&chunk);
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let ev: Value = serde_json::from_slice(&line).unwrap();
                let t = ev["type"].as_str().unwrap_or("").to_string();
                if tx.send((t, ev["object"].clone())).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Receive watch events until `f` has seen what it wants (true).
pub(crate) async fn watch_until(
    rx: &mut mpsc::UnboundedReceiver<(String, Value)>,
    what: &str,
    mut f: impl FnMut(&str, &Value) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((t, o))) => {
                if f(&t, &o) {
                    return;
                }
            }
            _ => panic!("watch ended before {what}"),
        }
    }
}

pub(crate) fn pod(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "web", "image": image}]},
    })
}

pub(crate) fn condition(o: &Value, type_: &str) -> Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// Every store change, stamped with the simulated time it was made at
/// (received in-process as the store broadcasts it).
pub(crate) struct Timeline(Arc<std::sync::Mutex<Vec<(Timestamp, Change)>>>);

impl Timeline {
    pub(crate) fn start(h: &Handle) -> Self {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut rx: broadcast::Receiver<Change> = h.store().subscribe();
        let clock = h.clock().clone();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(c) = rx.recv().await {
                sink.lock().unwrap().push((clock.now(), c));
            }
        });
        Self(log)
    }

    /// (time, pod) for every change to pod `name`.
    pub(crate) fn pod(&self, name: &str) -> Vec<(Timestamp, Arc<Value>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c)| {
                c.res.plural == "pods" && c.name == name && c.kind != EventType::Deleted
            })
            .map(|(t, c)| (*t, c.object.clone()))
            .collect()
    }
}

#[tokio::test]
async fn created_started_and_ready_are_separate_instants_in_order() {
    let h = cluster(10.0, 1).await;
    let mut pods = watch(&h, "/api/v1/namespaces/default/pods?watch=true").await;
    let changes = Timeline::start(&h);
    h.create(pod("web", "example/web:1")).unwrap();
    // What a client watching sees: creating, running-unready, then Ready.
    let mut seen: Vec<&'static str> = Vec::new();
    watch_until(&mut pods, "web Ready", |_, p| {
        let cs = &p["status"]["containerStatuses"][0];
        let step = if cs["state"]["waiting"]["reason"] == "ContainerCreating" {
            "creating"
        } else if cs["state"]["running"].is_object() && cs["ready"] == false {
            assert_eq!(condition(p, "Ready")["reason"], "ContainersNotReady");
            "running"
        } else if cs["ready"] == true && pod_ready(p) {
            "ready"
        } else {
            "other"
        };
        if seen.last() != Some(&step) {
            seen.push(step);
        }
        step == "ready"
    })
    .await;
    assert_eq!(
        seen.iter()
            .filter(|s| **s != "other")
            .copied()
            .collect::<Vec<_>>(),
        ["creating", "running", "ready"]
    );
    let timeline = changes.pod("web");
    let at = |f: &dyn Fn(&Value) -> bool| {
        timeline
            .iter()
            .find(|(_, p)| f(p))
            .map(|(t, _)| *t)
            .unwrap()
    };
    let scheduled = at(&|p| p["spec"]["nodeName"].is_string());
    let running = at(&|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object());
    let is_ready = at(&|p| pod_ready(p));
    let startup = running.duration_since(scheduled).as_secs_f64();
    let sync = is_ready.duration_since(running).as_secs_f64();
    assert!(
        (0.5..3.5).contains(&startup),
        "bind to running: {startup} s"
    );
    assert!((0.1..1.0).contains(&sync), "running to Ready: {sync} s");
    // The kubelet's events, by name (time order): pull, create, start.
    let reasons: Vec<String> = events(&h)
        .await
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "web")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons,
        ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    );
    // PodReadyToStartContainers turns True after scheduling (the sandbox).
    let p = h.get("v1", "Pod", "default", "web").unwrap();
    assert_eq!(condition(&p, "PodReadyToStartContainers")["status"], "True");
    h.shutdown().await;
}

/// Bind-to-Ready of two pods created together, one per node.
async fn startup_order(seed: u64) -> (bool, f64) {
    let h = start(Config {
        speed: 10.0,
        nodes: 2,
        startup_seed: seed,
        ..Config::default()
    })
    .await;
    let mut a = pod("a", "example/web:1");
    a["spec"]["nodeName"] = json!("node-1");
    let mut b = pod("b", "example/web:1");
    b["spec"]["nodeName"] = json!("node-2");
    let t0 = h.clock().now();
    h.create(a).unwrap();
    h.create(b).unwrap();
    let mut a_first = None;
    assert!(
        h.wait_for(WAIT, |h| {
            let r = |n: &str| {
                h.get("v1", "Pod", "default", n)
                    .is_some_and(|p| pod_ready(&p))
            };
            if a_first.is_none() && (r("a") || r("b")) {
                a_first = Some(r("a"));
            }
            r("a") && r("b")
        })
        .await
    );
    let took = h.clock().now().duration_since(t0).as_secs_f64();
    h.shutdown().await;
    (a_first.unwrap(), took)
}

#[tokio::test]
async fn seeded_start_up_variation_meets_both_orders() {
    let mut orders = Vec::new();
    let mut took = Vec::new();
    for seed in 1..=8 {
        let (a_first, t) = startup_order(seed).await;
        orders.push(a_first);
        took.push(t);
    }
    assert!(
        orders.contains(&true) && orders.contains(&false),
        "orders {orders:?}"
    );
    assert!(
        took.iter().all(|t| (0.6..4.0).contains(t)),
        "start-up times {took:?}"
    );
}

/// Statuses of the `web` container of one pod as a watch over HTTPS
/// delivers them, reduced to the transitions.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Running {
        restarts: i64,
        ready: bool,
    },
    Terminated {
        restarts: i64,
        reason: String,
        code: i64,
    },
    BackOff {
        restarts: i64,
        message: String,
    },
    Other,
}

fn seen(p: &Value) -> Seen {
    let cs = &p["status"]["containerStatuses"][0];
    let restarts = cs["restartCount"].as_i64().unwrap_or(0);
    let st = &cs["state"];
    if st["running"].is_object() {
        Seen::Running {
            restarts,
            ready: cs["ready"] == true,
        }
    } else if st["terminated"].is_object() {
        let t = &st["terminated"];
        assert_eq!(cs["ready"], false);
        assert_eq!(cs["started"], false);
        assert!(t["startedAt"].is_string() && t["finishedAt"].is_string());
        assert_eq!(t["containerID"], cs["containerID"]);
        assert_eq!(condition(p, "Ready")["status"], "False");
        assert_eq!(condition(p, "Ready")["reason"], "ContainersNotReady");
        assert_eq!(condition(p, "ContainersReady")["status"], "False");
        assert_eq!(p["status"]["phase"], "Running");
        Seen::Terminated {
            restarts,
            reason: t["reason"].as_str().unwrap().to_string(),
            code: t["exitCode"].as_i64().unwrap(),
        }
    } else if st["waiting"]["reason"] == "CrashLoopBackOff" {
        assert!(cs["lastState"]["terminated"].is_object());
        assert_eq!(cs["ready"], false);
        Seen::BackOff {
            restarts,
            message: st["waiting"]["message"].as_str().unwrap().to_string(),
        }
    } else {
        Seen::Other
    }
}

async fn crash_sequence(image: &str, reason: &str, code: i64) {
    let h = cluster(50.0, 1).await;
    let mut pods = watch(
        &h,
        "/api/v1/namespaces/default/pods?watch=true&fieldSelector=metadata.name%3Dcrash",
    )
    .await;
    let changes = Timeline::start(&h);
    h.create(pod("crash", image)).unwrap();
    let mut steps: Vec<Seen> = Vec::new();
    let mut uid = String::new();
    watch_until(&mut pods, "the second back-off", |_, p| {
        uid = p["metadata"]["uid"].as_str().unwrap().to_string();
        let s = seen(p);
        if s != Seen::Other && steps.last() != Some(&s) {
            steps.push(s.clone());
        }
        matches!(&s, Seen::BackOff { restarts: 2, .. })
    })
    .await;
    let t = |restarts: i64| Seen::Terminated {
        restarts,
        reason: reason.to_string(),
        code,
    };
    let backoff = |restarts: i64, secs: &str| Seen::BackOff {
        restarts,
        message: format!(
            "back-off {secs} restarting failed container=web pod=crash_default({uid})"
        ),
    };
    let running = |restarts: i64, ready: bool| Seen::Running { restarts, ready };
    assert_eq!(
        steps,
        [
            running(0, false),
            running(0, true),
            t(0),
            running(1, false),
            running(1, true),
            t(1),
            backoff(1, "10s"),
            running(2, false),
            running(2, true),
            t(2),
            backoff(2, "20s"),
        ]
    );
    // Back-off counts from the exit; the restart waits it out.
    let timeline = changes.pod("crash");
    let first = |f: &dyn Fn(&Seen) -> bool| {
        timeline
            .iter()
            .find(|(_, p)| f(&seen(p)))
            .map(|(t, p)| (*t, p.clone()))
            .unwrap()
    };
    let (exited_1, p) = first(&|s| *s == t(1));
    let finished: Timestamp =
        p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let (restarted_2, _) = first(&|s| matches!(s, Seen::Running { restarts: 2, .. }));
    let waited = restarted_2.duration_since(finished).as_secs_f64();
    assert!(
        (10.0..13.5).contains(&waited),
        "restart {waited} s after the exit"
    );
    let (restarted_1, _) = first(&|s| matches!(s, Seen::Running { restarts: 1, .. }));
    let (exited_0, _) = first(&|s| *s == t(0));
    let gap = restarted_1.duration_since(exited_0).as_secs_f64();
    assert!(
        (0.9..3.5).contains(&gap),
        "first restart {gap} s after the exit"
    );
    assert!(exited_1 > restarted_1);
    let p = h.get("v1", "Pod", "default", "crash").unwrap();
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["reason"], reason);
    assert_eq!(last["exitCode"], code);
    // One BackOff event, counted per back-off, in upstream's words.
    let all = events(&h).await;
    let backoffs: Vec<&Value> = all.iter().filter(|e| e["reason"] == "BackOff").collect();
    assert_eq!(backoffs.len(), 1);
    assert_eq!(backoffs[0]["type"], "Warning");
    assert_eq!(
        backoffs[0]["message"],
        format!("Back-off restarting failed container web in pod crash_default({uid})")
    );
    assert!(backoffs[0]["count"].as_i64() >= Some(2), "{}", backoffs[0]);
    h.shutdown().await;
}

#[tokio::test]
async fn crash_exit_is_published_terminated_before_each_restart() {
    crash_sequence("example/web:crash", "Error", 1).await;
}

#[tokio::test]
async fn oom_exit_is_published_terminated_before_each_restart() {
    crash_sequence("example/web:oom", "OOMKilled", 137).await;
}

#[tokio::test]
async fn crash_back_off_resets_after_ten_minutes_of_running() {
    let h = cluster(20.0, 1).await;
    h.set_image_behaviour(
        "example/web:long",
        ImageBehaviour::LateCrash {
            after: Duration::from_secs(620),
        },
    );
    h.create(pod("long", "example/web:long")).unwrap();
    let restarts = |h: &Handle| {
        h.get("v1", "Pod", "default", "long").map_or(-1, |p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(-1)
        })
    };
    let mut backoff_seen = false;
    for want in 1..=2 {
        assert!(
            h.wait_for(WAIT, |h| {
                let p = h.get("v1", "Pod", "default", "long").unwrap();
                backoff_seen |= p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff";
                restarts(h) >= 0
                    && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
            })
            .await
        );
        // Jump to just before the exit, then let it happen.
        h.clock().advance(Duration::from_secs(610));
        assert!(
            h.wait_for(WAIT, |h| {
                let p = h.get("v1", "Pod", "default", "long").unwrap();
                backoff_seen |= p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff";
                restarts(h) >= want
            })
            .await,
            "restart {want}"
        );
    }
    // Both exits came after more than ten minutes of running: no back-off.
    assert!(!backoff_seen);
    h.shutdown().await;
}

/// The terminated record of the first exit of pod `name`.
async fn first_termination(h: &Handle, name: &str) -> Value {
    let mut out = Value::Null;
    assert!(
        h.wait_for(WAIT, |h| {
            let Some(p) = h.get("v1", "Pod", "default", name) else {
                return false;
            };
            let cs = &p["status"]["containerStatuses"][0];
            for t in [&cs["state"]["terminated"], &cs["lastState"]["terminated"]] {
                if t.is_object() {
                    out = t.clone();
                    return true;
                }
            }
            false
        })
        .await,
        "{name} never exited"
    );
    out
}

#[tokio::test]
async fn termination_messages_follow_the_policy() {
    let h = cluster(50.0, 2).await;
    h.create(pod("silent", "example/web:crash")).unwrap();
    h.create(pod("writer", "example/web:crash-termlog"))
        .unwrap();
    let mut fallback = pod("fallback", "example/web:crash");
    fallback["spec"]["containers"][0]["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
    h.create(fallback).unwrap();
    let mut fallback_writer = pod("fallback-writer", "example/web:crash-termlog");
    fallback_writer["spec"]["containers"][0]["terminationMessagePolicy"] =
        json!("FallbackToLogsOnError");
    h.create(fallback_writer).unwrap();
    h.set_image_behaviour(
        "example/web:job",
        ImageBehaviour::Crash {
            after: Duration::from_secs(1),
            exit_code: 0,
        },
    );
    let mut ok = pod("ok", "example/web:job");
    ok["spec"]["containers"][0]["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
    ok["spec"]["restartPolicy"] = json!("Never");
    h.create(ok).unwrap();
    h.set_termination_message("example/web:custom-crash", "panic: config missing");
    h.create(pod("custom", "example/web:custom-crash")).unwrap();

    // File (the default) and an app that writes nothing: no message.
    let t = first_termination(&h, "silent").await;
    assert_eq!(t["reason"], "Error");
    assert!(t.get("message").is_none(), "{t}");
    // File and an app that writes its fatal error there.
    let t = first_termination(&h, "writer").await;
    assert_eq!(t["message"], "Error: cannot connect to database at db:5432");
    let t = first_termination(&h, "custom").await;
    assert_eq!(t["message"], "panic: config missing");
    // FallbackToLogsOnError with an empty file: the log tail.
    let t = first_termination(&h, "fallback").await;
    assert_eq!(
        t["message"],
        "starting web (example/web:crash)\nconnecting to database at db:5432\nError: cannot connect to database at db:5432\n"
    );
    // FallbackToLogsOnError never overrides what the app wrote.
    let t = first_termination(&h, "fallback-writer").await;
    assert_eq!(t["message"], "Error: cannot connect to database at db:5432");
    // A success is never read from the logs.
    let t = first_termination(&h, "ok").await;
    assert_eq!(t["exitCode"], 0);
    assert_eq!(t["reason"], "Completed");
    assert!(t.get("message").is_none(), "{t}");
    h.shutdown().await;
}
