//! The pod status the kubelet publishes, rendered from its runtime state
//! (upstream `convertToAPIContainerStatuses`, `getPhase`, the pod conditions).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::ctx::Ctx;
use super::images::{image_id, normalize_image};
use super::state::{CState, Ctr, PodRt, Term};
use crate::clock::fmt_time;
use crate::controllers::nodes;

fn term_json(t: &Term) -> Value {
    let mut v = json!({
        "containerID": t.container_id,
        "exitCode": t.exit_code,
        "finishedAt": fmt_time(t.finished),
        "reason": t.reason,
        "startedAt": fmt_time(t.started),
    });
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    v
}

fn container_status(c: &Ctr) -> (Value, bool) {
    let mut ready = false;
    let mut started_flag = false;
    let state = match &c.state {
        CState::Running {
            started, ready_at, ..
        } => {
            started_flag = true;
            // Ready once the kubelet applied it (a later pass), never in the
            // pass that published the running state.
            ready = !c.init && ready_at.is_none() && !never_ready(c, ready_at);
            json!({"running": {"startedAt": fmt_time(*started)}})
        }
        // An exit the kubelet has not acted on yet: terminated, not ready.
        CState::Terminated(t) | CState::Exited { term: t, .. } => {
            json!({"terminated": term_json(t)})
        }
        _ => {
            let mut w = json!({"reason": c.waiting.0});
            if let Some(m) = &c.waiting.1 {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
    };
    let instance = c.container_id.is_some();
    let mut v = json!({
        "image": if instance { normalize_image(&c.image) } else { c.image.clone() },
        "imageID": if instance { image_id(&c.image) } else { String::new() },
        "lastState": match &c.last {
            Some(t) => json!({"terminated": term_json(t)}),
            None => json!({}),
        },
        "name": c.name,
        "ready": ready,
        "restartCount": c.restarts,
        "started": started_flag,
        "state": state,
    });
    if let Some(id) = &c.container_id {
        v["containerID"] = json!(id);
    }
    (v, ready)
}

/// A running container with no ready time and a failing probe is never Ready.
fn never_ready(c: &Ctr, ready_at: &Option<Timestamp>) -> bool {
    ready_at.is_none()
        && matches!(
            c.state,
            CState::Running {
                next_probe: Some(_),
                ..
            }
        )
}

pub(super) fn render_status(
    ctx: &Ctx<'_>,
    rt: &mut PodRt,
    now: Timestamp,
    terminal: bool,
) -> Value {
    let pod = ctx.pod;
    let mut status = pod["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let app: Vec<(Value, bool)> = rt.app.iter().map(container_status).collect();
    let init: Vec<(Value, bool)> = rt.init.iter().map(container_status).collect();
    let initialized = rt.init.iter().all(Ctr::done);
    let unready: Vec<&str> = rt
        .app
        .iter()
        .zip(&app)
        .filter(|(_, (_, r))| !r)
        .map(|(c, _)| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && !terminal;

    let all_succeeded = || {
        rt.app
            .iter()
            .all(|c| matches!(&c.state, CState::Terminated(t) if t.exit_code == 0))
    };
    let never_ran = |c: &Ctr| {
        !matches!(
            c.state,
            CState::Running { .. } | CState::Terminated(_) | CState::Exited { .. }
        ) && c.last.is_none()
    };
    let phase = if terminal
        || rt
            .app
            .iter()
            .all(|c| matches!(c.state, CState::Terminated(_)))
    {
        if all_succeeded() {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if !initialized || rt.app.iter().any(never_ran) {
        "Pending"
    } else {
        "Running"
    };

    let mut cond = |type_: &'static str, ok: bool, reason: &str, message: String| {
        let entry = rt.conds.entry(type_).or_insert((ok, now));
        if entry.0 != ok {
            *entry = (ok, now);
        }
        let mut v = json!({
            "lastProbeTime": null,
            "lastTransitionTime": fmt_time(entry.1),
            "status": if ok { "True" } else { "False" },
            "type": type_,
        });
        if !ok {
            v["reason"] = json!(reason);
            v["message"] = json!(message);
        }
        v
    };
    let incomplete: Vec<&str> = rt
        .init
        .iter()
        .filter(|c| !c.done())
        .map(|c| c.name.as_str())
        .collect();
    let sandbox_ready = !terminal && now >= rt.sandbox_at;
    // Ready and ContainersReady say the same when false.
    let unready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
    let mut conditions = vec![
        cond(
            "PodReadyToStartContainers",
            sandbox_ready,
            "",
            String::new(),
        ),
        cond(
            "Initialized",
            initialized,
            "ContainersNotInitialized",
            format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            ),
        ),
        cond("Ready", all_ready, unready_reason, unready_msg.clone()),
        cond("ContainersReady", all_ready, unready_reason, unready_msg),
    ];
    if terminal {
        for c in conditions.iter_mut().skip(2) {
            c["message"] = json!("");
        }
        if let Some(o) = conditions[0].as_object_mut() {
            o.remove("reason");
            o.remove("message");
        }
    }
    let scheduled = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        .cloned()
        .unwrap_or_else(|| {
            json!({"lastProbeTime": null, "lastTransitionTime": fmt_time(rt.scheduled_at), "status": "True", "type": "PodScheduled"})
        });
    conditions.push(scheduled);
    let host_ip = nodes::node_ip(&rt.node);
    status["conditions"] = json!(conditions);
    status["containerStatuses"] = json!(app.into_iter().map(|(v, _)| v).collect::<Vec<_>>());
    if init.is_empty() {
        if let Some(o) = status.as_object_mut() {
            o.remove("initContainerStatuses");
        }
    } else {
        status["initContainerStatuses"] =
            json!(init.into_iter().map(|(v, _)| v).collect::<Vec<_>>());
    }
    status["hostIP"] = json!(host_ip);
    status["hostIPs"] = json!([{"ip": host_ip}]);
    status["observedGeneration"] = pod["metadata"]["generation"].clone();
    status["phase"] = json!(phase);
    status["podIP"] = json!(rt.ip);
    status["podIPs"] = json!([{"ip": rt.ip}]);
    status["qosClass"] = json!(crate::api::defaults::qos_class(&pod["spec"]));
    status["startTime"] = json!(fmt_time(rt.start));
    if status["observedGeneration"].is_null()
        && let Some(o) = status.as_object_mut()
    {
        o.remove("observedGeneration");
    }
    status
}
