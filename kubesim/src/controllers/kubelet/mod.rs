//! The kubelet of every simulated node, as one level-triggered loop.
//!
//! For each pod bound to an existing node it drives every container through
//! what a real kubelet and containerd do (image pull with back-off, config
//! errors, create/start, readiness, exits with crash-loop back-off,
//! graceful termination) on the simulated clock, keeping the runtime state
//! in [`KubeletState`] keyed by pod uid. The pod's status is rendered from
//! that state and written only when it changed; the next wake-up is the
//! earliest pending transition.
//!
//! Timing, as a node shows it: the pod sandbox first
//! (PodReadyToStartContainers), then the pull when the image is not on the
//! node, `Created`, `Started` a moment later, and Ready one status sync
//! after the running state was published. Each delay is drawn from one RNG
//! seeded by `Config::startup_seed`, all in simulated time. An exit is
//! published as `state.terminated` (ready=false, pod Ready=False) before the
//! kubelet acts on it one relist later: an immediate restart, or
//! `waiting CrashLoopBackOff` until the back-off from `finishedAt` passes.
//!
//! Readiness (documented deviations): without a readinessProbe a container
//! is Ready one status sync after it starts, except that an `Ok { ready_after }`
//! image slower than 1 s (the `slow` tag) is Ready only after `ready_after`,
//! as a captured real node shows; `Unready` without a probe is Ready (a real
//! kubelet has nothing to fail). With a readinessProbe a container is Ready
//! after `max(initialDelaySeconds, ready_after)`, and `Unready` never is,
//! with an `Unhealthy` event every `periodSeconds`. Liveness and startup
//! probes are not simulated.

mod config;
mod containers;
mod ctx;
mod images;
mod pull;
pub mod state;
mod status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use self::containers::step_containers;
use self::ctx::Ctx;
pub use self::images::{go_duration, normalize_image};
use self::state::{CState, Ctr, EXIT_ON_SIGTERM, KubeletState, PodRt, Term, add, draw};
use self::status::render_status;
use super::events::{self, Source};
use super::next::Next;
use crate::clock::parse_time;
use crate::resources::res;
use crate::sim::Sim;

pub fn reconcile(sim: &Sim) -> Next {
    let mut next = Next::default();
    let now = sim.clock.now();
    let (pods, _) = sim.store.list(res("pods"), None);
    let (nodes, _) = sim.store.list(res("nodes"), None);
    let node_names: HashSet<&str> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    let mut state = sim.kubelet.lock().expect("kubelet lock");
    let mut seen: HashSet<String> = HashSet::with_capacity(pods.len());
    for pod in &pods {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        if !node_names.contains(node) {
            continue;
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        seen.insert(uid.clone());
        sync_pod(sim, &mut state, pod, node, &uid, now, &mut next);
    }
    // Forget pods that are gone from the store (deleted by anyone).
    let gone: Vec<String> = state
        .pods
        .keys()
        .filter(|u| !seen.contains(*u))
        .cloned()
        .collect();
    for uid in gone {
        state.pods.remove(&uid);
    }
    next
}

fn needs_config_recheck(rt: &PodRt) -> bool {
    rt.init
        .iter()
        .chain(rt.app.iter())
        .any(|c| matches!(c.state, CState::ConfigErr { .. }))
}

fn sync_pod(
    sim: &Sim,
    state: &mut KubeletState,
    pod: &Arc<Value>,
    node: &str,
    uid: &str,
    now: Timestamp,
    next: &mut Next,
) {
    let rv = pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(rt) = state.pods.get(uid) {
        let due = rt.wake.is_some_and(|w| w <= now);
        if rt.seen_rv == rv && !due && !needs_config_recheck(rt) {
            if let Some(w) = rt.wake {
                next.at(w);
            }
            return;
        }
    }
    let KubeletState {
        pods,
        images,
        ips,
        rng,
    } = state;
    let has_init = pod["spec"]["initContainers"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let rt = pods.entry(uid.to_string()).or_insert_with(|| {
        let n = ips.entry(node.to_string()).or_insert(1);
        *n = if *n >= 254 { 2 } else { *n + 1 };
        let scheduled_at = pod["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .and_then(parse_time)
            .unwrap_or(now);
        PodRt {
            node: node.to_string(),
            ip: format!("10.244.{}.{}", super::nodes::node_index(node), n),
            start: now,
            sandbox_at: add(now, draw(rng, 150, 200, 0, 1)),
            seen_rv: String::new(),
            wake: None,
            init: Ctr::list(&pod["spec"]["initContainers"], true, true),
            app: Ctr::list(&pod["spec"]["containers"], false, has_init),
            conds: HashMap::new(),
            kill: None,
            scheduled_at,
        }
    });
    let node_images = images.entry(node.to_string()).or_default();
    let mut ctx = Ctx {
        sim,
        rng,
        pod,
        ns: pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        pod_name: pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
        uid: uid.to_string(),
        node: node.to_string(),
        restart_policy: pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string(),
        events: Vec::new(),
    };

    let deleting = pod["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(parse_time);
    let mut remove = false;
    if let Some(deadline) = deleting {
        if rt.kill.is_none() {
            let done = add(now, EXIT_ON_SIGTERM).min(deadline.max(now));
            rt.kill = Some((now, done));
            for c in rt.init.iter().chain(rt.app.iter()) {
                if matches!(c.state, CState::Running { .. }) {
                    ctx.events.push((
                        c.field_path(),
                        "Normal",
                        "Killing",
                        format!("Stopping container {}", c.name),
                    ));
                }
            }
        }
        if let Some((_, done)) = rt.kill
            && now >= done
        {
            for c in rt.init.iter_mut().chain(rt.app.iter_mut()) {
                if let CState::Exited { term, .. } = &c.state {
                    c.state = CState::Terminated(term.clone());
                }
                if let CState::Running { started, .. } = c.state {
                    let (code, reason) = if done < deadline {
                        (0, "Completed")
                    } else {
                        (137, "Error")
                    };
                    c.state = CState::Terminated(Term {
                        exit_code: code,
                        reason,
                        started,
                        finished: done,
                        container_id: c.container_id.clone().unwrap_or_default(),
                        message: None,
                    });
                }
            }
            remove = true;
        }
    } else if now >= rt.sandbox_at {
        step_containers(&mut ctx, rt, node_images, now);
    }

    let status = render_status(&ctx, rt, now, remove);
    flush_events(&ctx);
    let mut written = None;
    if pod.get("status") != Some(&status) {
        let ns = ctx.ns.clone();
        let name = ctx.pod_name.clone();
        match sim.store.modify(res("pods"), &ns, &name, |p| {
            if p["metadata"]["uid"].as_str() != Some(uid) {
                return Ok(false);
            }
            p["status"] = status.clone();
            Ok(true)
        }) {
            Ok(p) => {
                written = Some(
                    p["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            }
            Err(_) => {
                // Retry on the next pass (a concurrent write woke us anyway).
                rt.seen_rv = String::new();
                next.at(add(now, Duration::from_millis(100)));
                return;
            }
        }
    }
    rt.seen_rv = written.unwrap_or(rv);
    if remove {
        let finalizers = pod["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if !finalizers {
            let _ = sim.store.delete(res("pods"), &ctx.ns, &ctx.pod_name);
            let mut logs = sim.logs.lock().expect("logs lock");
            for c in rt.init.iter().chain(rt.app.iter()) {
                logs.remove(&ctx.log_key(c));
            }
        }
        rt.wake = None;
        return;
    }
    rt.wake = wake_time(rt, now);
    if let Some(w) = rt.wake {
        next.at(w);
    }
}

fn flush_events(ctx: &Ctx<'_>) {
    for (fp, type_, reason, msg) in &ctx.events {
        events::record(
            ctx.sim,
            ctx.pod,
            Some(fp),
            type_,
            reason,
            msg,
            Source::Kubelet(&ctx.node),
        );
    }
}

fn wake_time(rt: &PodRt, now: Timestamp) -> Option<Timestamp> {
    if let Some((_, done)) = rt.kill {
        return Some(done);
    }
    let mut w: Option<Timestamp> = None;
    let mut at = |t: Timestamp| {
        w = Some(w.map_or(t, |c: Timestamp| c.min(t)));
    };
    if rt.sandbox_at > now {
        at(rt.sandbox_at);
    }
    for c in rt.init.iter().chain(rt.app.iter()) {
        match &c.state {
            CState::Pulling { until, .. } => at(*until),
            CState::PullErr {
                show_at,
                shown,
                until,
                ..
            } => at(if *shown { *until } else { *show_at }),
            CState::ConfigErr { retry_at } => at(*retry_at),
            CState::Running {
                ready_at,
                exit,
                next_probe,
                started: _,
            } => {
                if let Some(r) = ready_at {
                    at(*r);
                }
                if let Some((t, _, _)) = exit {
                    at(*t);
                }
                if let Some(p) = next_probe {
                    at(*p);
                }
            }
            CState::CrashBackOff { until, .. } => at(*until),
            CState::Starting { at: t } => at(*t),
            CState::Exited { act_at, .. } => at(*act_at),
            _ => {}
        }
    }
    w
}
