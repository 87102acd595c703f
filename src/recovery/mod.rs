//! Interrupted-run recovery.
//!
//! rollguard keeps no release state, so the workload carries it: the patch
//! that starts a rollout also sets [`IN_PROGRESS`] (the run's identity, when
//! it started, the images and the exact pre-patch template — gzip + base64
//! when large), and every run that finishes clears it ([`clear`]). A run
//! killed with SIGKILL (or a runner that vanished) leaves it behind; the next
//! run on that workload finds it ([`recover_if_needed`]), says so, and rolls
//! the orphaned change back to the template it replaced before going on
//! (when the template is already back, it only clears the marker).

use std::time::Duration;

use serde_json::{Value, json};

use crate::k8s::kind::{Kind, StatusRule};
use crate::track::{Poll, Watch, wait_until};
use crate::workload::deployment as dep;

mod marker;
mod rechecked;

pub use marker::*;
pub use rechecked::{patch_rechecked, rollback_rechecked};

/// What [`recover_if_needed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No interrupted run.
    Clean,
    /// The interrupted run's template was already gone; the marker was cleared.
    Cleared(String),
    /// The orphaned change was rolled back (and became healthy when `healthy`).
    RolledBack { message: String, healthy: bool },
}

/// The workload a recovery looks at, and its kind's rollout rule.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub client: &'a kube::Client,
    pub rule: StatusRule,
    pub ns: &'a str,
    /// The kind's name (`deployment`).
    pub kind: &'a str,
    pub name: &'a str,
}

/// Before planning: find a marker left by an interrupted run and roll its
/// change back (within `timeout`). Messages go to `out` and are returned for
/// the report, with the workload as read when nothing was changed (what the
/// run then plans against, without reading it again). An error is a
/// message for exit 3 (could not recover).
pub async fn recover_if_needed(
    t: &Target<'_>,
    timeout: Duration,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(Recovered, Option<Value>), String> {
    let (recovered, untouched) = recover_marker(t, timeout, out).await?;
    // A canary of the interrupted run: deleted (Deployment) or its saved
    // partition restored once the template is back (StatefulSet).
    let leftover = crate::canary::cleanup::remove_leftover(t.client, t.ns, t.kind, t.name, out);
    let Some(canary) = leftover.await else {
        return Ok((recovered, untouched));
    };
    // The canary's clean-up may have changed the workload (a partition).
    let recovered = match recovered {
        Recovered::Clean => Recovered::Cleared(canary),
        Recovered::Cleared(m) => Recovered::Cleared(format!("{m}; {canary}")),
        Recovered::RolledBack { message, healthy } => Recovered::RolledBack {
            message: format!("{message}; {canary}"),
            healthy,
        },
    };
    Ok((recovered, None))
}

async fn recover_marker(
    t: &Target<'_>,
    timeout: Duration,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(Recovered, Option<Value>), String> {
    let Target {
        client,
        rule,
        ns,
        kind,
        name,
    } = *t;
    // A ReplicationController keeps its own bookkeeping annotations.
    let Some(workload_kind) = Kind::from_name(kind).filter(|k| *k != Kind::ReplicationController)
    else {
        return Ok((Recovered::Clean, None));
    };
    let path = path_of(kind, ns, name);
    let raw = match get(client, &path).await {
        Ok(v) => v,
        // The pipeline reports a missing workload itself.
        Err(_) => return Ok((Recovered::Clean, None)),
    };
    let ann = format!(
        "/metadata/annotations/{}",
        dep::pointer_segment(IN_PROGRESS)
    );
    let rv = raw
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    let present = raw.pointer(&ann).is_some();
    // The marker removed from the object as read (never over a newer write).
    let remove_marker = || async {
        let ops = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "remove", "path": ann},
        ]);
        let _ = json_patch(client, &path, &ops).await;
    };
    let Some(marker) = marker_of(&raw) else {
        if present {
            // Unreadable: not ours to act on; it only confuses later runs.
            remove_marker().await;
            return Ok((Recovered::Clean, None));
        }
        // Nothing to recover: the workload as read is what the run plans on.
        return Ok((Recovered::Clean, Some(raw)));
    };
    if !marker.applies_to(&raw) {
        // A copy (kubectl rollout undo brings a ReplicaSet's annotations
        // back) or a leftover of an older generation: it does not describe
        // the template there now. Removed, and the run goes on from what is
        // there.
        let msg = format!(
            "ignoring a stale rollguard marker on {kind}/{name} (from run {}, for generation {}; the workload is now at generation {}): removed",
            crate::text::one_line(&marker.run),
            marker.generation,
            raw.pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        );
        tracing::info!("{msg}");
        remove_marker().await;
        return Ok((Recovered::Clean, None));
    }
    let found = format!(
        "found an interrupted rollguard run on {kind}/{name} (run {}, started {}): its change to {} was never finished",
        crate::text::one_line(&marker.run),
        crate::text::one_line(&marker.started),
        crate::text::one_line(&marker.image)
    );
    let Some(previous) = marker.previous_template() else {
        let _ = writeln!(
            out,
            "{found}, but the template it replaced cannot be read; clearing its marker and going on"
        );
        let _ = json_patch(client, &path, &json!([{"op": "remove", "path": ann}])).await;
        return Ok((Recovered::Cleared(found), None));
    };
    let current = raw
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if dep::normalised_template(&current) == dep::normalised_template(&previous) {
        let msg = format!(
            "{found}; the template is already back to {}",
            marker.previous_image
        );
        let _ = writeln!(out, "{msg}: clearing its marker");
        remove_marker().await;
        return Ok((Recovered::Cleared(msg), None));
    }
    let _ = writeln!(
        out,
        "{found}: rolling it back to the template it replaced ({}) first, then deploying",
        marker.previous_image
    );
    let _ = out.flush();
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
        json!({"op": "replace", "path": "/spec/template", "value": previous}),
        json!({"op": "remove", "path": ann}),
    ];
    let anns = raw
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    if anns.is_some_and(|a| a.contains_key(crate::cancel::STATE)) {
        ops.push(json!({"op": "remove", "path": format!("/metadata/annotations/{}", dep::pointer_segment(crate::cancel::STATE))}));
    }
    let patched = json_patch(client, &path, &Value::Array(ops))
        .await
        .map_err(|e| {
            format!("{found}; rolling it back failed ({e}): nothing else changed, run again")
        })?;
    let generation = patched
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let pods = crate::k8s::objects::match_labels_selector(&raw);
    let healthy = wait_healthy(
        client,
        rule,
        workload_kind,
        ns,
        name,
        &pods,
        generation,
        timeout,
    )
    .await;
    let message = if healthy {
        format!(
            "{found}; rolled it back to {} (healthy again) before deploying",
            marker.previous_image
        )
    } else {
        format!(
            "{found}; rolled it back to {} (not healthy within {}) before deploying",
            marker.previous_image,
            humantime::format_duration(timeout)
        )
    };
    let _ = writeln!(out, "{message}");
    Ok((Recovered::RolledBack { message, healthy }, None))
}

/// kubectl's rollout-status rule on a raw Deployment.
pub fn rolled_out(d: &Value, generation: i64) -> bool {
    serde_json::from_value(d.clone())
        .is_ok_and(|d| dep::still_waiting_for(&d, generation).is_none())
}

/// Watch the workload until its kind's rollout rule holds for
/// `generation` (or `timeout`).
#[allow(clippy::too_many_arguments)]
async fn wait_healthy(
    client: &kube::Client,
    rule: StatusRule,
    kind: Kind,
    ns: &str,
    name: &str,
    pod_selector: &str,
    generation: i64,
    timeout: Duration,
) -> bool {
    let mut watch = Watch::start_kind(client, ns, kind, name, pod_selector);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet = std::io::sink();
    wait_until(&mut watch, deadline, &mut quiet, |w: &Watch| {
        let waiting = w
            .snapshot()
            .object(name)
            .map(|o| rule(kind, o, generation))
            .unwrap_or_else(|| Some(format!("{name} to be seen")));
        match waiting {
            None => Poll::Done {
                line: String::new(),
                found: (),
            },
            Some(waiting_for) => Poll::Pending {
                line: String::new(),
                waiting_for,
            },
        }
    })
    .await
    .is_ok()
}
