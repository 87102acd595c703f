//! The one patch of a pod template (Deployment, StatefulSet, DaemonSet):
//! sent with the in-progress marker that lets an interrupted run be undone,
//! re-checked on a conflict instead of clobbering, and undone by restoring
//! the exact template it replaced.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::exit::ExitCode;
use crate::k8s::objects::get_obj;
use crate::workload::WorkloadRef;
use crate::workload::deployment as dep;
use crate::workload::rollout::{Applied, Ctx};
use crate::{Stop, cancel, cluster_error, recovery, stop};

/// Send the plan's patch carrying the in-progress marker; the patched
/// object and the marker. A 409/422 is re-read and re-checked, never
/// clobbered: another writer's change means nothing changed, run again.
pub(crate) async fn send_marked(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    plan: &mut dep::Plan,
    started: &str,
    read_as: &(String, i64),
) -> Result<(Value, Applied), Stop> {
    let mut marker = mark_patch(ctx, plan, started, read_as);
    // From the patch on, a second signal marks this workload's state.
    let target = cancel::register(
        &ctx.client,
        recovery::path_of(w.kind.as_str(), &ctx.ns, &w.name),
        format!(
            "rolling out {} (previously {})",
            plan.new_image, plan.old_image
        ),
    );
    let previous = plan.previous_template.clone();
    match recovery::patch_rechecked(
        &ctx.client,
        w.kind.as_str(),
        &ctx.ns,
        &w.name,
        &mut plan.patch,
        &previous,
        &mut marker,
    )
    .await
    {
        Ok(v) => Ok((
            v,
            Applied {
                marker: Some(marker),
                cancel_target: Some(target),
            },
        )),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => Err(stop(
            ExitCode::BadInput,
            format!(
                "{w} changed between our read and our patch ({}); nothing changed: run again",
                e.message
            ),
        )),
        Err(e) => Err(cluster_error(&e, &format!("patching {w}"))),
    }
}

/// The in-progress marker added to the plan's patch, bound to the object at
/// the generation our patch gives it.
fn mark_patch(
    ctx: &Ctx<'_>,
    plan: &mut dep::Plan,
    started: &str,
    read_as: &(String, i64),
) -> recovery::Marker {
    let marker = recovery::Marker::new(
        &ctx.settings.reliability.identity,
        started,
        &plan.new_image,
        &plan.old_image,
        &plan.previous_template,
    )
    .bound_to(&read_as.0, read_as.1 + 1);
    recovery::mark(&mut plan.patch, &marker);
    marker
}

/// In a group, time passes between a workload's read and its patch (the
/// other workloads' pre-flight): controllers' status writes move the
/// resourceVersion. Re-read just before patching; when the template,
/// selector and annotations are still the ones planned against, the plan
/// holds and only its `test` of the resourceVersion is updated. A real
/// change still makes the patch fail (nothing changed: run again).
pub(crate) async fn refresh_resource_version(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    planned: &Value,
    patch: &mut Value,
) -> Result<Option<i64>, Stop> {
    let fresh = get_obj(&ctx.client, w.kind, &ctx.ns, &w.name)
        .await
        .map_err(|e| cluster_error(&e, &format!("reading {w}")))?;
    let same = [
        "/spec/template",
        "/spec/selector",
        "/metadata/annotations",
        "/metadata/uid",
    ]
    .iter()
    .all(|p| fresh.pointer(p) == planned.pointer(p));
    if same
        && let Some(op) = patch.get_mut(0)
        && op["path"] == "/metadata/resourceVersion"
    {
        op["value"] = fresh
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        // The patch lands on the fresh object: its generation is the one
        // the in-progress marker binds to.
        return Ok(fresh
            .pointer("/metadata/generation")
            .and_then(Value::as_i64));
    }
    Ok(None)
}

/// Send the patch that restores the exact pre-patch template (and our
/// annotations) over what our patch wrote; the rollback's generation, or
/// why it was not sent. A lost response of a landed rollback is
/// re-checked, not failed; another writer's change is never overwritten.
pub(crate) async fn restore_template(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    patched: &Value,
    plan: &dep::Plan,
) -> Result<i64, String> {
    let written_template = patched
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let written_annotations: BTreeMap<String, String> = patched
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let patch = dep::rollback_patch(
        &written_template,
        &written_annotations,
        &plan.previous_template,
        &plan.previous_annotations,
    );
    let response = match recovery::rollback_rechecked(
        &ctx.client,
        w.kind.as_str(),
        &ctx.ns,
        &w.name,
        &patch,
        &plan.previous_template,
    )
    .await
    {
        Ok(v) => v,
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => {
            return Err(format!(
                "someone else changed the pod template of {w} after our patch; not overwriting their change ({})",
                e.message
            ));
        }
        Err(e) => return Err(format!("the rollback patch failed: {e}")),
    };
    Ok(response
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0))
}
