//! The change of a ReplicationController rolling update: find the RC (also
//! by its base name after an earlier update), mark the old one, tell it
//! apart from the new one, create the new RC — or resume or undo what an
//! interrupted run left.

use std::io::Write;

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PostParams};
use serde_json::{Value, json};

use super::*;
use crate::exit::ExitCode;
use crate::k8s::objects::{
    ObjPatch, get_obj, is_status, name_of, params, patch_obj, selector_string,
};
use crate::report::WorkloadReport;
use crate::workload::WorkloadRef;
use crate::workload::prepare::not_found;
use crate::workload::rollout::Ctx;
use crate::{Stop, cluster_error, stop};

use super::rollout::{KIND, RcRollout};

pub(super) async fn find_rc(ctx: &Ctx<'_>, w: &WorkloadRef) -> Result<Value, Stop> {
    match get_obj(&ctx.client, KIND, &ctx.ns, &w.name).await {
        Ok(v) => return Ok(v),
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(cluster_error(&e, &format!("reading {w}"))),
    }
    // After a successful update the RC is `<base>-<version>`: find it by its base name.
    let api: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|e| cluster_error(&e, "listing replication controllers"))?;
    let mut found: Vec<Value> = all
        .items
        .iter()
        .filter(|r| {
            let a = r.metadata.annotations.clone().unwrap_or_default();
            a.get(BASE_NAME) == Some(&w.name) && !a.contains_key(ROLLING_UPDATE_FROM)
        })
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    match found.len() {
        0 => Err(not_found(w, &ctx.ns)),
        1 => {
            let v = found.remove(0);
            // Re-read raw (the typed round trip may drop fields).
            let name = name_of(&v).to_string();
            get_obj(&ctx.client, KIND, &ctx.ns, &name)
                .await
                .map_err(|e| cluster_error(&e, &format!("reading replicationcontroller/{name}")))
        }
        n => Err(stop(
            ExitCode::BadInput,
            format!(
                "{n} replication controllers carry {}={}: name the one to roll",
                BASE_NAME, w.name
            ),
        )),
    }
}

/// Mark the old RC, tell it apart (label its pods), create the new RC —
/// or resume / undo what an interrupted run left.
pub(super) async fn apply_rc(
    ctx: &Ctx<'_>,
    r: &mut RcRollout,
    rep: &mut WorkloadReport,
    out: &mut (dyn Write + Send),
) -> Result<(), Stop> {
    let ns = &ctx.ns;
    let client = &ctx.client;
    let old_name = r.plan.old_name.clone();
    let new_name = r.plan.new_name.clone();
    match r.interrupted.clone() {
        Interrupted::Resume { .. } => {
            let m = format!(
                "resuming the interrupted rolling update {old_name} → {new_name} (found its bookkeeping annotations)"
            );
            let _ = writeln!(out, "{m}");
            rep.notes.push(m);
            return Ok(());
        }
        Interrupted::RollBackFirst {
            new_name: other,
            original_replicas,
        } => {
            let m = format!(
                "a previous run was interrupted rolling {old_name} → {other}: rolling that back first ({old_name} back to {original_replicas} replicas, {other} deleted)"
            );
            let _ = writeln!(out, "{m}");
            rep.notes.push(m);
            let back = json!({"metadata": {"annotations": {ROLLING_UPDATE_TO: null, ORIGINAL_REPLICAS: null}},
                              "spec": {"replicas": original_replicas}});
            patch_obj(client, KIND, ns, &old_name, ObjPatch::Merge(&back))
                .await
                .map_err(|e| {
                    cluster_error(&e, &format!("restoring replicationcontroller/{old_name}"))
                })?;
            let api: Api<ReplicationController> = Api::namespaced(client.clone(), ns);
            match api.delete(&other, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => {
                    return Err(cluster_error(
                        &e,
                        &format!("deleting replicationcontroller/{other}"),
                    ));
                }
            }
            r.old = get_obj(client, KIND, ns, &old_name).await.map_err(|e| {
                cluster_error(&e, &format!("reading replicationcontroller/{old_name}"))
            })?;
        }
        Interrupted::No => {}
    }
    let _ = writeln!(
        out,
        "rolling replicationcontroller/{old_name} in {ns} to {new_name}: container {} {} → {} ({}={})",
        r.plan.container,
        r.plan.old_image,
        r.plan.new_image,
        ctx.settings.version_label,
        r.plan.version
    );
    let mark = mark_old_patch(&r.old, &r.plan);
    match patch_obj(client, KIND, ns, &old_name, ObjPatch::Json(&mark)).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => {
            return Err(stop(
                ExitCode::BadInput,
                format!(
                    "replicationcontroller/{old_name} changed between our read and our patch ({}); nothing changed: run again",
                    e.message
                ),
            ));
        }
        Err(e) => {
            return Err(cluster_error(
                &e,
                &format!("patching replicationcontroller/{old_name}"),
            ));
        }
    }
    if let Some((k, v)) = r.plan.adopt.clone() {
        // Label the running pods, then narrow the selector: no pod is orphaned
        // and the Service (which selects the shared labels) keeps them all.
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let list = pods
            .list(&ListParams::default().labels(&selector_string(&r.plan.old_selector)))
            .await
            .map_err(|e| cluster_error(&e, "listing pods"))?;
        let mut n = 0;
        for p in list.items {
            let Some(pname) = p.metadata.name.clone() else {
                continue;
            };
            let has = p.metadata.labels.as_ref().and_then(|l| l.get(&k)) == Some(&v);
            if has || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match pods
                .patch(
                    &pname,
                    &params(),
                    &Patch::Merge(json!({"metadata": {"labels": {k.clone(): v.clone()}}})),
                )
                .await
            {
                Ok(_) => n += 1,
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(cluster_error(&e, &format!("labelling pod {pname}"))),
            }
        }
        if let Some(patch) = adopt_selector_patch(&r.plan) {
            patch_obj(client, KIND, ns, &old_name, ObjPatch::Json(&patch))
                .await
                .map_err(|e| {
                    cluster_error(
                        &e,
                        &format!("narrowing the selector of replicationcontroller/{old_name}"),
                    )
                })?;
        }
        let m = format!(
            "the selector of {old_name} did not tell it apart from the new RC: added {k}={v} to its selector and template and to its {n} pod(s)"
        );
        let _ = writeln!(out, "{m}");
        rep.notes.push(m);
    }
    let api: Api<ReplicationController> = Api::namespaced(client.clone(), ns);
    let new_rc: ReplicationController =
        serde_json::from_value(r.plan.new_rc.clone()).map_err(|e| {
            stop(
                ExitCode::BadInput,
                format!("internal: the new RC does not parse: {e}"),
            )
        })?;
    match api
        .create(
            &PostParams {
                field_manager: Some("rollguard".into()),
                ..Default::default()
            },
            &new_rc,
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => {
            let m = format!(
                "{new_name} already exists (left by an interrupted run of this update): resuming it"
            );
            let _ = writeln!(out, "{m}");
            rep.notes.push(m);
        }
        Err(e) => {
            return Err(cluster_error(
                &e,
                &format!("creating replicationcontroller/{new_name}"),
            ));
        }
    }
    let _ = writeln!(
        out,
        "Created {new_name}; scaling up {new_name} from 0 to {}, scaling down {old_name} from {} to 0 (keep {} pods ready, don't exceed {} pods)",
        r.plan.replicas,
        r.plan.replicas,
        r.plan.replicas - ctx.settings.max_unavailable.resolve(r.plan.replicas, false),
        r.plan.replicas + ctx.settings.max_surge.resolve(r.plan.replicas, true),
    );
    Ok(())
}
