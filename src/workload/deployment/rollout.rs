//! A Deployment's rollout: one JSON Patch of the pod template (with the
//! in-progress marker), followed on watches of the Deployment, its
//! ReplicaSets, pods and events; undone by restoring the exact template it
//! replaced.

use std::io::Write;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Canary;
use crate::diagnose::collect;
use crate::exit::ExitCode;
use crate::k8s::objects::{selector_of, uid_generation};
use crate::model::Finding;
use crate::model::Sample;
use crate::preflight::capacity;
use crate::report;
use crate::track::Ended;
use crate::workload::WorkloadRef;
use crate::workload::deployment::hub::Selector;
use crate::workload::deployment::tracker::{self as tracking, Tracker};
use crate::workload::deployment::{self as dep, Expectations};
use crate::workload::patch;
use crate::workload::prepare::{self, Checks};
use crate::workload::rollout::{
    Applied, CanaryEnd, Ctx, Failure, Rollout, Step, Watched, follow_guarded,
};
use crate::{Stop, cluster_error, stop};

pub(crate) struct DeploymentRollout {
    plan: dep::Plan,
    /// The Deployment's label selector (its ReplicaSets' and pods').
    selector: String,
    /// When the plan was made (the in-progress marker's start).
    planned_at: String,
    /// The Deployment as read: its uid and generation (what the marker binds to).
    read_as: (String, i64),
    tracker: Option<Tracker>,
    patched: Option<Value>,
    exp: Option<Expectations>,
}

impl Rollout for DeploymentRollout {
    async fn prepare(ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Self, Stop> {
        let w = s.w;
        let now = crate::now_rfc3339();
        let raw = prepare::read(ctx, w).await?;
        let read_as = uid_generation(&raw);
        let typed: Deployment = serde_json::from_value(raw.clone()).map_err(|e| {
            stop(
                ExitCode::ClusterConfig,
                format!("{w} could not be read: {e}"),
            )
        })?;
        let selector = typed
            .spec
            .as_ref()
            .map(|s| selector_of(&s.selector))
            .unwrap_or_default();
        let replica_sets = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ctx.ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| cluster_error(&e, "listing replica sets"))?
            .items
            .into_iter()
            .map(Arc::new)
            .collect::<Vec<_>>();
        let (spec, label_selector, strategy) = crate::preflight::inputs(&typed);
        let checks = Checks {
            spec: &spec,
            selector: &label_selector,
            strategy: Some(strategy),
        };
        let plan = prepare::plan_checked(ctx, s, &checks, &now, |ask| {
            dep::plan(&raw, &replica_sets, ask)
        })
        .await?;
        // A canary's selector changes before the apply: no sharing then.
        if ctx.settings.canary.is_none() {
            ctx.deployments.join(&w.name, &selector);
        }
        Ok(DeploymentRollout {
            plan,
            selector,
            planned_at: now,
            read_as,
            tracker: None,
            patched: None,
            exp: None,
        })
    }

    fn still_waiting_for(obj: &Value, generation: i64) -> Option<String> {
        match serde_json::from_value(obj.clone()) {
            Ok(d) => dep::still_waiting_for(&d, generation),
            Err(e) => Some(format!("a readable Deployment ({e})")),
        }
    }

    fn dry_run_text(&self, w: &WorkloadRef, ns: &str) -> String {
        self.plan.dry_run_text(w, ns)
    }

    /// A temporary `<name>-canary` Deployment, judged and held before the
    /// stable Deployment is touched (whose tracking leaves its pods out).
    async fn canary(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>, canary: Canary) -> CanaryEnd {
        let Step { w, rep, out } = s;
        self.selector = crate::canary::without_canary(&self.selector);
        super::canary::run(ctx, canary, w, &self.plan, &self.planned_at, rep, out).await
    }

    async fn apply(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Applied, Stop> {
        let Step { w, out, .. } = s;
        let s = ctx.settings;
        let shared = ctx.deployments.hub(&ctx.client, &ctx.ns).and_then(|hub| {
            let selector = Selector::parse(&self.selector)?;
            Some(Tracker::shared(hub, &w.name, selector))
        });
        let mut tracker =
            shared.unwrap_or_else(|| Tracker::start(&ctx.client, &ctx.ns, &w.name, &self.selector));
        let _ = writeln!(
            out,
            "{}",
            self.plan.rolling_line(w, &ctx.ns, &s.version_label)
        );
        let _ = out.flush();
        let (patched, applied) =
            patch::send_marked(ctx, w, &mut self.plan, &self.planned_at, &self.read_as).await?;
        tracing::info!("patched {w} to {}", self.plan.new_image);
        tracker.set_new_version(&self.plan.container, &self.plan.new_image);
        let typed: Deployment = serde_json::from_value(patched.clone()).map_err(|e| {
            stop(
                ExitCode::RollbackFailed,
                format!("the patch response could not be read: {e}"),
            )
        })?;
        let progressing = typed
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing").cloned());
        self.exp = Some(Expectations::of(&patched, progressing, ctx.limits));
        self.tracker = Some(tracker);
        self.patched = Some(patched);
        Ok(applied)
    }

    async fn follow(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>, deadline: Instant) -> Ended {
        let Step { w, rep, out } = s;
        let (Some(tracker), Some(exp)) = (self.tracker.as_mut(), self.exp.as_ref()) else {
            return Ended::not_started();
        };
        let deployment = tracker.snapshot().deployment;
        let min_ready = deployment
            .as_ref()
            .and_then(|d| d.spec.as_ref().and_then(|s| s.min_ready_seconds))
            .map(i64::from);
        let max_unavailable = deployment
            .as_ref()
            .map(|d| capacity::strategy(d).max_unavailable.max(0) as usize)
            .unwrap_or(0);
        let mut subject = super::subject::DeploymentSubject {
            tracker,
            exp,
            container: &self.plan.container,
            canary: false,
        };
        let watched = Watched::of(ctx, &self.plan, min_ready, max_unavailable, deadline);
        let ended = follow_guarded(ctx, w, &mut subject, watched, rep, out).await;
        let snap = tracker.snapshot();
        rep.revision = dep::new_replica_set(&snap, exp)
            .and_then(|rs| rs.metadata.annotations.as_ref())
            .and_then(|a| a.get(dep::REVISION).cloned());
        ended
    }

    async fn diagnose(&mut self, ctx: &Ctx<'_>, f: &Failure<'_>) -> Vec<Finding> {
        let (Some(tracker), Some(exp)) = (self.tracker.as_ref(), self.exp.as_ref()) else {
            return Vec::new();
        };
        let snap = tracker.snapshot();
        collect::deployment_findings(
            &ctx.client,
            &ctx.ns,
            &snap,
            exp,
            &self.plan.new_image,
            f.cause,
            f.signals,
            f.progress,
            f.timed_out,
        )
        .await
    }

    fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String> {
        self.tracker
            .as_ref()
            .map(|t| report::events::excerpt(&t.snapshot().events, &w.name))
            .unwrap_or_default()
    }

    async fn roll_back(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> (bool, String) {
        let Step { w, rep, out } = s;
        let (Some(tracker), Some(patched)) = (self.tracker.as_mut(), self.patched.as_ref()) else {
            return (true, "nothing was changed".into());
        };
        let timeout = ctx.settings.rollback_timeout;
        let generation = match patch::restore_template(ctx, w, patched, &self.plan).await {
            Ok(g) => g,
            Err(why) => return (false, why),
        };
        let deadline = Instant::now() + timeout;
        let (confirmed, detail) =
            tracking::follow_rollback(tracker, generation, deadline, out).await;
        // The revision that serves now (the controller gives the restored
        // ReplicaSet a new revision number).
        rep.serving_revision = tracker
            .snapshot()
            .deployment
            .and_then(|d| d.metadata.annotations.clone())
            .and_then(|a| a.get(dep::REVISION).cloned());
        let detail = if confirmed {
            format!("{} is serving again ({detail})", self.plan.old_image)
        } else {
            format!(
                "restored the previous template ({}), but it was not healthy within {}: {detail}",
                self.plan.old_image,
                humantime::format_duration(timeout)
            )
        };
        (confirmed, detail)
    }

    fn has_timeline(&self) -> bool {
        true
    }

    fn take_timeline(&mut self) -> Vec<Sample> {
        self.tracker
            .as_mut()
            .map(|t| std::mem::take(&mut t.timeline))
            .unwrap_or_default()
    }
}
