//! Workloads rolled by one patch of their pod template whose controller
//! replaces the pods itself (StatefulSet, DaemonSet): the same rollout for
//! each, the differences a [`TemplateKind`] says.

mod canary;
mod subject;

pub(crate) use canary::plan as canary_partition;
pub(crate) use subject::TemplateSubject;

use std::io::Write;
use std::marker::PhantomData;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Canary;
use crate::exit::ExitCode;
use crate::k8s::objects::{is_status, match_labels_selector, name_of, pod_spec, uid_generation};
use crate::model::Finding;
use crate::model::Progress;
use crate::preflight::capacity;
use crate::track::{self, Ended, Poll, Watch};
use crate::workload::deployment::{Ask, NotRollable, Plan};
use crate::workload::prepare::{self, Checks};
use crate::workload::rollout::{
    Applied, CanaryEnd, Ctx, Failure, Rollout, Step, Watched, follow_guarded, watch_excerpt,
};
use crate::workload::{WorkloadRef, patch};
use crate::{Stop, stop};

/// What tells one template kind from another.
pub trait TemplateKind {
    type Object: crate::track::reflect::Namespaced;
    fn plan(raw: &Value, ask: &Ask<'_>) -> Result<Plan, NotRollable>;
    /// How many pods the rollout adds and removes at once, for the capacity
    /// check; None when there is none to make (pods per node).
    fn strategy(raw: &Value) -> Option<capacity::Strategy>;
    /// The controller's rollout rule: what is still awaited, or None.
    fn still_waiting_for(obj: &Value, generation: i64) -> Option<String>;
    /// The pods of our change.
    fn new_pods(obj: &Value, pods: &[Arc<Pod>], generation: i64) -> Vec<Arc<Pod>>;
    fn progress(obj: &Value, new_ready: i32) -> Progress;
    /// The controller's name for our change (a StatefulSet's update revision).
    fn revision(_obj: &Value, _generation: i64) -> Option<String> {
        None
    }
    /// Put a canary's partition into the template patch (the kinds whose
    /// rolling update has one).
    fn canary_partition(
        _raw: &Value,
        _canary: Canary,
        w: &WorkloadRef,
        _patch: &mut Value,
    ) -> Result<(), Stop> {
        Err(stop(
            ExitCode::BadInput,
            format!("canary: {w} has no partition to run a canary with"),
        ))
    }
    /// Of the pods of the bad revision: how many are left, and which are
    /// stuck in a state the controller will not replace by itself.
    fn stuck(_pods: &[Arc<Pod>], _bad_revision: &str) -> (usize, Vec<String>) {
        (0, Vec::new())
    }
}

pub(crate) struct TemplateRollout<K: TemplateKind> {
    raw: Value,
    plan: Plan,
    planned_at: String,
    read_as: (String, i64),
    watch: Option<Watch>,
    patched: Option<Value>,
    generation: i64,
    /// The controller's revision of our patch (the bad one on failure).
    revision: Option<String>,
    /// The canary to hold before the full rollout (its partition is in the patch).
    canary: Option<Canary>,
    kind: PhantomData<K>,
}

impl<K: TemplateKind> TemplateRollout<K> {
    /// The pod template as our patch stored it.
    fn our_template(&self) -> Value {
        self.patched
            .as_ref()
            .and_then(|p| p.pointer("/spec/template"))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

impl<K: TemplateKind> Rollout for TemplateRollout<K> {
    async fn prepare(ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Self, Stop> {
        let w = s.w;
        let now = crate::now_rfc3339();
        let raw = prepare::read(ctx, w).await?;
        let read_as = uid_generation(&raw);
        let spec = pod_spec(&raw, "/spec/template/spec");
        let selector: LabelSelector = raw
            .pointer("/spec/selector")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let checks = Checks {
            spec: &spec,
            selector: &selector,
            strategy: K::strategy(&raw),
        };
        let plan = prepare::plan_checked(ctx, s, &checks, &now, |ask| K::plan(&raw, ask)).await?;
        Ok(TemplateRollout {
            raw,
            plan,
            planned_at: now,
            read_as,
            watch: None,
            patched: None,
            generation: 0,
            revision: None,
            canary: None,
            kind: PhantomData,
        })
    }

    fn still_waiting_for(obj: &Value, generation: i64) -> Option<String> {
        K::still_waiting_for(obj, generation)
    }

    fn dry_run_text(&self, w: &WorkloadRef, ns: &str) -> String {
        self.plan.dry_run_text(w, ns)
    }

    /// The partition of the rolling update: only the highest ordinals take
    /// the patch until the canary passed (kinds with a partition).
    async fn canary(&mut self, _ctx: &Ctx<'_>, s: &mut Step<'_>, canary: Canary) -> CanaryEnd {
        let Step { w, .. } = s;
        K::canary_partition(&self.raw, canary, w, &mut self.plan.patch)?;
        self.canary = Some(canary);
        Ok(None)
    }

    async fn apply(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Applied, Stop> {
        let Step { w, out, .. } = s;
        let selector = match_labels_selector(&self.raw);
        self.watch = Some(Watch::start::<K::Object>(
            &ctx.client,
            &ctx.ns,
            Some(&w.name),
            &selector,
        ));
        let _ = writeln!(
            out,
            "{}",
            self.plan
                .rolling_line(w, &ctx.ns, &ctx.settings.version_label)
        );
        if let Some(generation) =
            patch::refresh_resource_version(ctx, w, &self.raw, &mut self.plan.patch).await?
        {
            self.read_as.1 = generation;
        }
        let (patched, applied) =
            patch::send_marked(ctx, w, &mut self.plan, &self.planned_at, &self.read_as).await?;
        self.generation = patched
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        self.patched = Some(patched);
        Ok(applied)
    }

    async fn follow(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>, deadline: Instant) -> Ended {
        let Step { w, rep, out } = s;
        let ours = self.our_template();
        let Some(watch) = self.watch.as_mut() else {
            return Ended::not_started();
        };
        let min_ready = self
            .raw
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64);
        // A StatefulSet replaces one pod at a time; a DaemonSet's
        // maxUnavailable defaults to 1.
        let max_unavailable = self
            .raw
            .pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        if let Some(c) = self.canary.take() {
            let held = canary::hold::<K>(
                ctx,
                c,
                w,
                &self.raw,
                self.generation,
                &ours,
                &self.plan,
                rep,
                out,
            )
            .await;
            if let canary::Hold::Failed { ended, revision } = held {
                self.revision = revision.clone();
                if revision.is_some() {
                    rep.revision = revision;
                }
                return ended;
            }
        }
        let mut subject =
            TemplateSubject::<K>::new(watch, &w.name, self.generation, &ours, &self.plan.container);
        let watched = Watched::of(ctx, &self.plan, min_ready, max_unavailable, deadline);
        let ended = follow_guarded(ctx, w, &mut subject, watched, rep, out).await;
        self.revision = watch
            .snapshot()
            .object(&w.name)
            .and_then(|o| K::revision(o, self.generation));
        if self.revision.is_some() {
            rep.revision = self.revision.clone();
        }
        ended
    }

    async fn diagnose(&mut self, ctx: &Ctx<'_>, f: &Failure<'_>) -> Vec<Finding> {
        let template = self.our_template();
        let total = f.progress.up_to_date.max(0) as usize;
        f.pod_findings(ctx, &template, &self.plan.new_image, total)
            .await
    }

    fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String> {
        watch_excerpt(self.watch.as_ref(), &w.name)
    }

    async fn roll_back(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> (bool, String) {
        let Step { w, rep, out } = s;
        let timeout = ctx.settings.rollback_timeout;
        let Some(patched) = &self.patched else {
            return (true, "nothing was changed".into());
        };
        let generation = match patch::restore_template(ctx, w, patched, &self.plan).await {
            Ok(g) => g,
            Err(why) => return (false, why),
        };
        let Some(watch) = self.watch.as_mut() else {
            return (false, "not watched".into());
        };
        let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
        let deadline = Instant::now() + timeout;
        let name = w.name.clone();
        let bad = self.revision.clone();
        let mut deleted: Vec<String> = Vec::new();
        loop {
            let looked = track::wait_until(watch, deadline, out, |watch: &Watch| {
                let snap = watch.snapshot();
                let Some(obj) = snap.object(&name) else {
                    return Poll::Pending {
                        line: String::new(),
                        waiting_for: format!("{name} to be seen"),
                    };
                };
                // Forced rollback: pods of the bad revision stuck in a crash
                // or pull failure that the controller does not replace.
                let (bad_left, stuck) = bad
                    .as_deref()
                    .map(|bad| K::stuck(&snap.pods, bad))
                    .unwrap_or_default();
                let stuck: Vec<String> =
                    stuck.into_iter().filter(|p| !deleted.contains(p)).collect();
                let waiting = K::still_waiting_for(obj, generation);
                let line = match &waiting {
                    Some(w) => format!("{}  (rollback) waiting for {w}", name_of(obj)),
                    None => format!("{}  (rollback) done", name_of(obj)),
                };
                match waiting {
                    _ if !stuck.is_empty() => Poll::Done { line, found: stuck },
                    None if bad_left == 0 => Poll::Done {
                        line,
                        found: Vec::new(),
                    },
                    None => Poll::Pending {
                        line,
                        waiting_for: format!("{bad_left} pod(s) of the bad revision to go"),
                    },
                    Some(waiting_for) => Poll::Pending { line, waiting_for },
                }
            })
            .await;
            let stuck = match looked {
                Ok(stuck) if stuck.is_empty() => break,
                Ok(stuck) => stuck,
                Err(wait) => {
                    return (
                        false,
                        format!(
                            "restored the previous template ({}), but it was not healthy within {}: still waiting for {wait}",
                            self.plan.old_image,
                            humantime::format_duration(timeout)
                        ),
                    );
                }
            };
            let bad = bad.as_deref().unwrap_or_default();
            for pod in stuck {
                let _ = writeln!(
                    out,
                    "forced rollback: deleting pod {pod} (stuck on the bad revision {bad})"
                );
                match pods_api.delete(&pod, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => {
                        return (
                            false,
                            format!("forced rollback: could not delete the stuck pod {pod}: {e}"),
                        );
                    }
                }
                rep.notes.push(format!(
                    "forced rollback: deleted pod {pod}, stuck on the bad revision {bad} (the StatefulSet controller does not replace it by itself)"
                ));
                deleted.push(pod);
            }
        }
        let forced = if deleted.is_empty() {
            String::new()
        } else {
            format!(
                "; forced rollback: deleted stuck pod(s) {}",
                deleted.join(", ")
            )
        };
        (
            true,
            format!(
                "{} is serving again (every pod updated and ready{forced})",
                self.plan.old_image
            ),
        )
    }
}
