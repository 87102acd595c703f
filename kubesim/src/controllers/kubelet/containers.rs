//! Containers: config checks, create/start, readiness, exits and restarts.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::config::config_error;
use super::ctx::Ctx;
use super::images::{go_duration, new_container_id};
use super::pull::{begin_image_at, pull_done, start_pull};
use super::state::{
    BACKOFF_INITIAL, BACKOFF_MAX, BACKOFF_RESET, CONFIG_RETRY, CState, Ctr, PodRt, RELIST, Term,
    add, draw, ms,
};
use crate::scenario::ImageBehaviour;

/// FallbackToLogsOnError reads at most this many lines and bytes of the
/// log tail (upstream `MaxContainerTerminationMessageLogLines`/`...Length`).
const FALLBACK_LOG_LINES: usize = 80;
const FALLBACK_LOG_BYTES: usize = 2048;

pub(super) fn step_containers(
    ctx: &mut Ctx<'_>,
    rt: &mut PodRt,
    images: &mut HashSet<String>,
    now: Timestamp,
) {
    // A changed image in the spec restarts the container (as a real kubelet
    // does when the container's hash changes).
    for c in rt.init.iter_mut().chain(rt.app.iter_mut()) {
        let spec_image = ctx.spec_of(c)["image"].as_str().unwrap_or("").to_string();
        if !spec_image.is_empty() && spec_image != c.image {
            if matches!(c.state, CState::Running { .. }) {
                ctx.event(
                    c,
                    "Normal",
                    "Killing",
                    format!("Container {} definition changed, will be restarted", c.name),
                );
                if let Some(term) = end_instance(ctx, c, now, 0, "Completed") {
                    c.last = Some(term);
                }
            }
            c.image = spec_image;
            c.state = CState::New;
            c.pull_backoff = 0;
            c.pull_failures = 0;
        }
    }
    let mut init_done = true;
    for i in 0..rt.init.len() {
        if !init_done {
            break;
        }
        if matches!(rt.init[i].state, CState::Blocked) {
            rt.init[i].state = CState::New;
        }
        step(ctx, &mut rt.init[i], images, now);
        init_done = rt.init[i].done();
    }
    if init_done {
        for c in rt.app.iter_mut() {
            step(ctx, c, images, now);
        }
    }
}

/// Advance one container through every transition due by `now`.
fn step(ctx: &mut Ctx<'_>, c: &mut Ctr, images: &mut HashSet<String>, now: Timestamp) {
    for _ in 0..64 {
        let state = c.state.clone();
        match state {
            CState::New => {
                if begin_image_at(ctx, c, images, now) {
                    create(ctx, c, now);
                }
            }
            CState::Pulling { until, millis } if until <= now => {
                if pull_done(ctx, c, images, until, millis) {
                    create(ctx, c, until);
                }
            }
            CState::PullErr {
                shown: false,
                show_at,
                until,
                msg,
            } if show_at <= now && show_at < until => {
                ctx.event(
                    c,
                    "Normal",
                    "BackOff",
                    format!("Back-off pulling image \"{}\"", c.image),
                );
                ctx.event(c, "Warning", "Failed", "Error: ImagePullBackOff".into());
                c.waiting = (
                    "ImagePullBackOff".into(),
                    Some(format!(
                        "Back-off pulling image \"{}\": ErrImagePull: {msg}",
                        c.image
                    )),
                );
                c.state = CState::PullErr {
                    msg,
                    show_at,
                    shown: true,
                    until,
                };
            }
            CState::PullErr { until, .. } if until <= now => start_pull(ctx, c, until),
            CState::ConfigErr { retry_at } => {
                if config_error(ctx.sim, &ctx.ns, ctx.spec_of(c)).is_none() {
                    create(ctx, c, now);
                } else if retry_at <= now {
                    ctx.event(
                        c,
                        "Normal",
                        "Pulled",
                        format!("Container image \"{}\" already present on machine", c.image),
                    );
                    create(ctx, c, now);
                } else {
                    return;
                }
            }
            // Each published state gets its own status write, in order, even
            // when the pass runs late: stop after starting, exiting, acting.
            CState::Starting { at } if at <= now => {
                start(ctx, c, at);
                return;
            }
            CState::Running {
                started,
                ready_at,
                exit,
                next_probe,
            } => {
                if let Some((t, code, reason)) = exit
                    && t <= now
                {
                    exited(ctx, c, t, code, reason);
                    return;
                }
                let mut changed = false;
                let mut ready_at = ready_at;
                if ready_at.is_some_and(|r| r <= now) {
                    // Ready: rendered from `started`; nothing more to wait for.
                    ready_at = None;
                    changed = true;
                }
                let mut next_probe = next_probe;
                if let Some(p) = next_probe
                    && p <= now
                {
                    let probe = ctx.spec_of(c)["readinessProbe"].clone();
                    let period = probe["periodSeconds"].as_u64().unwrap_or(10).max(1);
                    ctx.event(c, "Warning", "Unhealthy", probe_failure(&probe));
                    let mut n = add(p, Duration::from_secs(period));
                    while n <= now {
                        n = add(n, Duration::from_secs(period));
                    }
                    next_probe = Some(n);
                    changed = true;
                }
                if changed {
                    c.state = CState::Running {
                        started,
                        ready_at,
                        exit,
                        next_probe,
                    };
                }
                return;
            }
            CState::Exited { term, act_at } if act_at <= now => {
                after_exit(ctx, c, term, act_at);
                if !matches!(c.state, CState::New) {
                    return;
                }
            }
            CState::CrashBackOff { until, .. } if until <= now => {
                c.state = CState::New;
                if begin_image_at(ctx, c, images, until) {
                    create(ctx, c, until);
                }
            }
            _ => return,
        }
    }
}

fn probe_failure(probe: &Value) -> String {
    if probe["tcpSocket"].is_object() {
        let port = &probe["tcpSocket"]["port"];
        let port = port.as_i64().map_or_else(
            || port.as_str().unwrap_or("8080").to_string(),
            |p| p.to_string(),
        );
        format!("Readiness probe failed: dial tcp 10.244.0.1:{port}: connect: connection refused")
    } else if probe["exec"].is_object() {
        "Readiness probe failed: not ready".to_string()
    } else if probe["grpc"].is_object() {
        "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")".to_string()
    } else {
        "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string()
    }
}

/// Config check, then `Created`; the runtime starts the container a moment
/// later (`start`).
fn create(ctx: &mut Ctx<'_>, c: &mut Ctr, t: Timestamp) {
    let spec = ctx.spec_of(c).clone();
    if let Some(msg) = config_error(ctx.sim, &ctx.ns, &spec) {
        ctx.event(c, "Warning", "Failed", format!("Error: {msg}"));
        c.waiting = ("CreateContainerConfigError".into(), Some(msg));
        c.state = CState::ConfigErr {
            retry_at: add(t, CONFIG_RETRY),
        };
        return;
    }
    ctx.event(c, "Normal", "Created", "Container created".into());
    if !c.init {
        c.waiting = ("ContainerCreating".into(), None);
    }
    // containerd's create-to-running: 30-150 ms, one in twenty busy by ~1 s.
    let delay = draw(ctx.rng, 30, 120, 700, 20);
    c.state = CState::Starting { at: add(t, delay) };
}

/// `Started` and a running instance; without a probe it is Ready one
/// status sync later.
fn start(ctx: &mut Ctx<'_>, c: &mut Ctr, t: Timestamp) {
    let spec = ctx.spec_of(c).clone();
    if c.container_id.is_some() {
        c.restarts += 1;
    }
    c.container_id = Some(new_container_id());
    ctx.event(c, "Normal", "Started", "Container started".into());
    let behaviour = ctx.sim.behaviour(&c.image);
    let probe = &spec["readinessProbe"];
    let has_probe = probe.is_object();
    let one = Duration::from_secs(1);
    let (app_ready, exit): (Option<Duration>, Option<(Duration, i32, &'static str)>) =
        match &behaviour {
            ImageBehaviour::Ok { ready_after } => (Some(*ready_after), None),
            ImageBehaviour::Crash { after, exit_code } => (
                Some(one),
                Some((
                    *after,
                    *exit_code,
                    if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    },
                )),
            ),
            ImageBehaviour::LateCrash { after } => (Some(one), Some((*after, 1, "Error"))),
            ImageBehaviour::Oom { after } => (Some(one), Some((*after, 137, "OOMKilled"))),
            ImageBehaviour::Unready => (None, None),
            _ => (Some(one), None),
        };
    // Init containers run to completion: Ok images exit 0 after ready_after.
    let exit = if c.init && exit.is_none() {
        Some((app_ready.unwrap_or(one), 0, "Completed"))
    } else {
        exit
    };
    // The status sync after the one that published the running state.
    let sync = draw(ctx.rng, 150, 200, 0, 1);
    let ready_at = if c.init {
        None
    } else if has_probe {
        let delay = Duration::from_secs(probe["initialDelaySeconds"].as_u64().unwrap_or(0));
        app_ready.map(|r| add(t, r.max(delay)))
    } else {
        match (&behaviour, app_ready) {
            (ImageBehaviour::Ok { .. }, Some(r)) if r > one => Some(add(t, r)),
            _ => Some(add(t, sync)),
        }
    };
    let next_probe = (!c.init && has_probe && behaviour == ImageBehaviour::Unready).then(|| {
        add(
            t,
            Duration::from_secs(probe["initialDelaySeconds"].as_u64().unwrap_or(0)).max(one),
        )
    });
    c.state = CState::Running {
        started: t,
        ready_at,
        exit: exit.map(|(d, code, reason)| (add(t, d), code, reason)),
        next_probe,
    };
    // Logs: the running instance's lines; the previous instance's become `previous`.
    let mut lines = vec![format!("starting {} ({})", c.name, c.image)];
    match &behaviour {
        ImageBehaviour::Oom { .. } => lines.push("loading cache into memory".into()),
        ImageBehaviour::Crash { .. } | ImageBehaviour::LateCrash { .. } => {
            lines.push("connecting to database at db:5432".into())
        }
        _ => lines.push("listening on :8080".into()),
    }
    let mut logs = ctx.sim.logs.lock().expect("logs lock");
    let entry = logs.entry(ctx.log_key(c)).or_default();
    if c.restarts > 0 {
        entry.previous = Some(std::mem::take(&mut entry.current));
    }
    entry.current = lines;
}

/// The log tail FallbackToLogsOnError turns into a termination message:
/// the last 80 lines, at most the last 2048 bytes.
fn log_tail(lines: &[String]) -> String {
    let from = lines.len().saturating_sub(FALLBACK_LOG_LINES);
    let mut tail = String::new();
    for l in &lines[from..] {
        tail.push_str(l);
        tail.push('\n');
    }
    if tail.len() > FALLBACK_LOG_BYTES {
        let mut cut = tail.len() - FALLBACK_LOG_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = tail[cut..].to_string();
    }
    tail
}

/// The running instance ends at `t` with `code`: its last log line, the
/// termination message its policy gives, the terminated record.
fn end_instance(
    ctx: &mut Ctx<'_>,
    c: &mut Ctr,
    t: Timestamp,
    code: i32,
    reason: &'static str,
) -> Option<Term> {
    let CState::Running { started, .. } = c.state else {
        return None;
    };
    let spec = ctx.spec_of(c).clone();
    let mut logs = ctx.sim.logs.lock().expect("logs lock");
    let entry = logs.entry(ctx.log_key(c)).or_default();
    if code != 0 && reason == "Error" {
        entry
            .current
            .push(crate::scenario::TERMINATION_LOG_LINE.to_string());
    }
    // File (the default): only what the app wrote to terminationMessagePath.
    // FallbackToLogsOnError: the log tail when that file is empty and the
    // container failed.
    let written = if code != 0 && reason == "Error" {
        ctx.sim
            .scenarios
            .read()
            .expect("scenarios lock")
            .termination_message(&c.image)
            .filter(|m| !m.is_empty())
    } else {
        None
    };
    let fallback =
        spec["terminationMessagePolicy"].as_str() == Some("FallbackToLogsOnError") && code != 0;
    let message = written
        .or_else(|| (fallback && !entry.current.is_empty()).then(|| log_tail(&entry.current)));
    Some(Term {
        exit_code: code,
        reason,
        started,
        finished: t,
        container_id: c.container_id.clone().unwrap_or_default(),
        message,
    })
}

/// A running instance exits at `t`: published as terminated at once;
/// the kubelet acts on it one relist later, or never when the restart
/// policy keeps it down.
fn exited(ctx: &mut Ctx<'_>, c: &mut Ctr, t: Timestamp, code: i32, reason: &'static str) {
    let Some(term) = end_instance(ctx, c, t, code, reason) else {
        return;
    };
    let policy = ctx.restart_policy.as_str();
    let again = if c.init {
        code != 0 && policy != "Never"
    } else {
        policy == "Always" || (policy == "OnFailure" && code != 0)
    };
    if !again {
        c.state = CState::Terminated(term);
        return;
    }
    c.state = CState::Exited {
        term,
        act_at: add(t, RELIST),
    };
}

/// The pod sync after an exit (upstream `doBackOff`): restart at once when
/// not in back-off, else `CrashLoopBackOff` until `finishedAt` + back-off.
fn after_exit(ctx: &mut Ctx<'_>, c: &mut Ctr, term: Term, now: Timestamp) {
    if term.finished.duration_since(term.started) >= ms(BACKOFF_RESET) {
        c.crash_backoff = 0;
    }
    let finished = term.finished;
    c.last = Some(term);
    if c.crash_backoff == 0 {
        // Not in back-off: restart now; the next exit backs off 10 s.
        c.crash_backoff = BACKOFF_INITIAL;
        c.state = CState::New;
        return;
    }
    let secs = c.crash_backoff;
    let until = add(finished, Duration::from_secs(secs));
    if until <= now {
        c.crash_backoff = (secs * 2).min(BACKOFF_MAX);
        c.state = CState::New;
        return;
    }
    c.crash_backoff = (secs * 2).min(BACKOFF_MAX);
    ctx.event(
        c,
        "Warning",
        "BackOff",
        format!(
            "Back-off restarting failed container {} in pod {}_{}({})",
            c.name, ctx.pod_name, ctx.ns, ctx.uid
        ),
    );
    c.waiting = (
        "CrashLoopBackOff".into(),
        Some(format!(
            "back-off {} restarting failed container={} pod={}_{}({})",
            go_duration(secs),
            c.name,
            ctx.pod_name,
            ctx.ns,
            ctx.uid
        )),
    );
    c.state = CState::CrashBackOff { until };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_80_lines_and_2048_bytes() {
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let tail = log_tail(&lines);
        assert!(tail.starts_with("line 20\n"), "{tail}");
        assert!(tail.ends_with("line 99\n"));
        assert_eq!(tail.lines().count(), 80);
        let long: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(499))).collect();
        let tail = log_tail(&long);
        assert_eq!(tail.len(), 2048);
        assert!(tail.ends_with(&format!("9{}\n", "x".repeat(499))));
    }
}
