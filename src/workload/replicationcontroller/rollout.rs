//! A ReplicationController's rollout: a client-side rolling update (a new
//! RC `<base>-<version>` scaled up step by step while the old one is scaled
//! down), its bookkeeping annotations letting an interrupted update be
//! resumed or undone; the old RC is deleted only once the whole group
//! succeeded.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::config::Settings;
use crate::exit::ExitCode;
use crate::image::ImageChange;
use crate::k8s::objects::{ObjPatch, get_obj, is_status, labels_at, patch_obj, pod_spec};
use crate::model::Finding;
use crate::preflight::capacity;
use crate::track::{Ended, Watch};
use crate::workload::deployment as dep;
use crate::workload::prepare::{self, Checks};
use crate::workload::rollout::{
    Applied, Ctx, Failure, Rollout, Step, Watched, follow_guarded, watch_excerpt,
};
use crate::workload::{Kind, WorkloadRef};
use crate::{Stop, cluster_error, stop};

pub(super) const KIND: Kind = Kind::ReplicationController;

pub(crate) struct RcRollout {
    pub(super) old: Value,
    pub(super) plan: RcPlan,
    pub(super) interrupted: Interrupted,
    pub(super) watch: Option<Watch>,
    /// The old RC's selector once it tells it apart.
    pub(super) old_selector: BTreeMap<String, String>,
    pub(super) new_selector: BTreeMap<String, String>,
    /// The last replicas we set (we are the only writer during the update).
    pub(super) set_old: Option<i32>,
    pub(super) set_new: Option<i32>,
}

/// The rolling update's (surge, unavailable): the inputs, at least one of
/// them non-zero (kubectl's default: surge 1).
pub(super) fn surge(s: &Settings, desired: i32) -> (i32, i32) {
    let mut surge = s.max_surge.resolve(desired, true);
    let unavailable = s.max_unavailable.resolve(desired, false).min(desired);
    if surge == 0 && unavailable == 0 {
        surge = 1;
    }
    (surge, unavailable)
}

impl Rollout for RcRollout {
    async fn prepare(ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Self, Stop> {
        let Step { w, rep, out } = s;
        let s = ctx.settings;
        let now = crate::now_rfc3339();
        let mut old = apply::find_rc(ctx, w).await?;
        // An interrupted update reduced the old RC: plan with its original replicas.
        if let Some(r) = old
            .pointer(&format!(
                "/metadata/annotations/{}",
                dep::pointer_segment(ORIGINAL_REPLICAS)
            ))
            .and_then(Value::as_str)
            .and_then(|r| r.parse::<i64>().ok())
        {
            old["spec"]["replicas"] = json!(r);
        }
        let planner = |change: &ImageChange, container: Option<&str>, version: Option<&str>| {
            plan(
                &old,
                &dep::Ask {
                    container,
                    change,
                    version,
                    version_label: &s.version_label,
                    origin: &s.run_origin,
                    now: &now,
                },
            )
            .map_err(|e| stop(ExitCode::BadInput, e.0))
        };
        let mut plan = planner(&s.change, s.container.as_deref(), s.version.as_deref())?;
        rep.container = Some(plan.container.clone());
        rep.previous_image = Some(plan.old_image.clone());
        rep.image = Some(plan.new_image.clone());
        rep.version = Some(plan.version.clone());
        rep.previous_template = Some(plan.previous_template.clone());
        rep.patch = Some(plan.new_rc.clone());
        let spec = pod_spec(&old, "/spec/template/spec");
        let selector = LabelSelector {
            match_labels: Some(plan.old_selector.clone()),
            ..Default::default()
        };
        let (max_surge, max_unavailable) = surge(s, plan.replicas);
        let checks = Checks {
            spec: &spec,
            selector: &selector,
            strategy: Some(capacity::Strategy {
                replicas: plan.replicas,
                max_surge,
                max_unavailable,
            }),
        };
        if let Some(pinned) =
            prepare::preflight(ctx, w, rep, &checks, &plan.container, &plan.new_image, out).await?
        {
            plan = planner(
                &ImageChange::Image(pinned),
                Some(&plan.container),
                Some(&plan.version),
            )?;
            rep.image = Some(plan.new_image.clone());
            rep.patch = Some(plan.new_rc.clone());
        }
        let to = old
            .pointer(&format!(
                "/metadata/annotations/{}",
                dep::pointer_segment(ROLLING_UPDATE_TO)
            ))
            .and_then(Value::as_str)
            .map(str::to_string);
        let named_new = match &to {
            Some(n) => match get_obj(&ctx.client, KIND, &ctx.ns, n).await {
                Ok(v) => Some(v),
                Err(e) if is_status(&e, 404) => None,
                Err(e) => {
                    return Err(cluster_error(
                        &e,
                        &format!("reading replicationcontroller/{n}"),
                    ));
                }
            },
            None => None,
        };
        let interrupted = interrupted(&old, named_new.as_ref(), &plan);
        if named_new.is_none()
            && let Ok(existing) = get_obj(&ctx.client, KIND, &ctx.ns, &plan.new_name).await
            && !matches!(interrupted, Interrupted::Resume { .. })
        {
            let from = existing
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    dep::pointer_segment(ROLLING_UPDATE_FROM)
                ))
                .and_then(Value::as_str);
            if from != Some(plan.old_name.as_str()) {
                return Err(stop(
                    ExitCode::BadInput,
                    format!(
                        "replicationcontroller/{} already exists and is not ours: delete it or set another version",
                        plan.new_name
                    ),
                ));
            }
        }
        let mut old_selector = plan.old_selector.clone();
        if let Some((k, v)) = &plan.adopt {
            old_selector.insert(k.clone(), v.clone());
        }
        let new_selector = labels_at(&plan.new_rc, "/spec/selector");
        Ok(RcRollout {
            old,
            plan,
            interrupted,
            watch: None,
            old_selector,
            new_selector,
            set_old: None,
            set_new: None,
        })
    }

    /// An RC rollout is done when the RC itself is (its generation is
    /// not part of the rule).
    fn still_waiting_for(obj: &Value, _generation: i64) -> Option<String> {
        super::still_waiting_for(obj)
    }

    fn dry_run_text(&self, _w: &WorkloadRef, _ns: &str) -> String {
        let r = self;
        let mut s = String::new();
        if let Some((k, v)) = &r.plan.adopt {
            s.push_str(&format!(
                "replicationcontroller/{} and its pods would get the label {k}={v} (selector and template)\n",
                r.plan.old_name
            ));
        }
        s.push_str(&format!(
            "this ReplicationController would be created and scaled up to {} while {} is scaled down:\n{}",
            r.plan.replicas,
            r.plan.old_name,
            serde_json::to_string_pretty(&r.plan.new_rc).unwrap_or_default()
        ));
        s
    }

    async fn apply(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Applied, Stop> {
        let Step { rep, out, .. } = s;
        let shared = self.plan.shared_selector(&ctx.settings.version_label);
        self.watch = Some(Watch::start::<ReplicationController>(
            &ctx.client,
            &ctx.ns,
            None,
            &shared,
        ));
        apply::apply_rc(ctx, self, rep, out).await?;
        // The RC keeps its own bookkeeping annotations, no marker.
        Ok(Applied::default())
    }

    async fn follow(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>, deadline: Instant) -> Ended {
        let Step { w, rep, out } = s;
        let desired = self.plan.replicas;
        let (surge, unavailable) = surge(ctx.settings, desired);
        let min_ready = self
            .old
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64);
        let Some(watch) = self.watch.as_mut() else {
            return Ended::not_started();
        };
        // The scaling steps, said in the report after the follow.
        let mut notes = Vec::new();
        let mut subject = follow::RcSubject {
            ctx,
            watch,
            plan: &self.plan,
            old_selector: &self.old_selector,
            new_selector: &self.new_selector,
            set_old: &mut self.set_old,
            set_new: &mut self.set_new,
            notes: &mut notes,
            surge,
            unavailable,
        };
        let watched = Watched {
            version: &self.plan.version,
            container: &self.plan.container,
            min_ready_seconds: min_ready,
            max_unavailable: unavailable.max(0) as usize,
            bake: ctx.settings.bake,
            deadline,
        };
        let ended = follow_guarded(ctx, w, &mut subject, watched, rep, out).await;
        rep.notes.append(&mut notes);
        ended
    }

    async fn diagnose(&mut self, ctx: &Ctx<'_>, f: &Failure<'_>) -> Vec<Finding> {
        let template = self
            .plan
            .new_rc
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let total = self.set_new.unwrap_or(0).max(0) as usize;
        f.pod_findings(ctx, &template, &self.plan.new_image, total)
            .await
    }

    fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String> {
        watch_excerpt(self.watch.as_ref(), &w.name)
    }

    /// Says its own rollback line (which RC goes back to what).
    fn announces_rollback(&self) -> bool {
        false
    }

    async fn roll_back(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> (bool, String) {
        let Step { rep, out, .. } = s;
        follow::roll_back_rc(ctx, self, &mut rep.notes, out).await
    }

    async fn commit(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<(), String> {
        let Step { rep, out, .. } = s;
        let r = self;
        let _ = writeln!(
            out,
            "Update succeeded. Deleting old controller: {}",
            r.plan.old_name
        );
        let api: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
        match api
            .delete(&r.plan.old_name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                return Err(format!(
                    "could not delete the old controller {}: {e}",
                    r.plan.old_name
                ));
            }
        }
        let clear = json!({"metadata": {"annotations": {ROLLING_UPDATE_FROM: null, DESIRED_REPLICAS: null}}});
        if let Err(e) = patch_obj(
            &ctx.client,
            KIND,
            &ctx.ns,
            &r.plan.new_name,
            ObjPatch::Merge(&clear),
        )
        .await
        {
            tracing::warn!(
                "could not clear the bookkeeping annotations of {}: {e}",
                r.plan.new_name
            );
        }
        rep.notes.push(format!(
            "deleted the old controller {}; the workload is now replicationcontroller/{} (a later run given {} finds it by its {} annotation)",
            r.plan.old_name, r.plan.new_name, r.plan.base, BASE_NAME
        ));
        Ok(())
    }
}
