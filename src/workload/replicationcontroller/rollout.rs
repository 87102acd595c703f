//! A ReplicationController's rollout: a client-side rolling update (a new
//! RC `<base>-<version>` scaled up step by step while the old one is scaled
//! down), its bookkeeping annotations letting an interrupted update be
//! resumed or undone; the old RC is deleted only once the whole group
//! succeeded.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PostParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::config::Settings;
use crate::diagnose::collect;
use crate::exit::ExitCode;
use crate::guards::Guards;
use crate::image::ImageChange;
use crate::k8s::objects::{
    get_obj, is_status, json_patch_obj, labels_at, matches_selector, merge_patch_obj, name_of,
    params, pod_spec, selector_string,
};
use crate::model::Finding;
use crate::model::{Progress, Timers, Verdict};
use crate::preflight::capacity;
use crate::recovery::Marker;
use crate::report::{self, WorkloadReport};
use crate::stability::Stability;
use crate::track::{self, Ended, Poll, Reading, Subject, Watch, WatchSnapshot};
use crate::workload::deployment as dep;
use crate::workload::prepare::{self, Checks, not_found};
use crate::workload::rollout::{Ctx, Failure, Rollout};
use crate::workload::{self, Kind, Limits, WorkloadRef};
use crate::{Stop, cluster_error, stop};

const KIND: Kind = Kind::ReplicationController;

pub(crate) struct RcRollout {
    old: Value,
    plan: RcPlan,
    interrupted: Interrupted,
    watch: Option<Watch>,
    /// The old RC's selector once it tells it apart.
    old_selector: BTreeMap<String, String>,
    new_selector: BTreeMap<String, String>,
    /// The last replicas we set (we are the only writer during the update).
    set_old: Option<i32>,
    set_new: Option<i32>,
}

/// The rolling update's (surge, unavailable): the inputs, at least one of
/// them non-zero (kubectl's default: surge 1).
fn surge(s: &Settings, desired: i32) -> (i32, i32) {
    let mut surge = s.max_surge.resolve(desired, true);
    let unavailable = s.max_unavailable.resolve(desired, false).min(desired);
    if surge == 0 && unavailable == 0 {
        surge = 1;
    }
    (surge, unavailable)
}

impl Rollout for RcRollout {
    async fn prepare(
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<Self, Stop> {
        let s = ctx.settings;
        let now = crate::now_rfc3339();
        let mut old = find_rc(ctx, w).await?;
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
                container,
                change,
                version,
                &s.version_label,
                &s.run_origin,
                &now,
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

    async fn apply(
        &mut self,
        ctx: &Ctx<'_>,
        _w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<Option<Marker>, Stop> {
        let shared = self.plan.shared_selector(&ctx.settings.version_label);
        self.watch = Some(Watch::start::<ReplicationController>(
            &ctx.client,
            &ctx.ns,
            None,
            &shared,
        ));
        apply_rc(ctx, self, rep, out).await?;
        // The RC keeps its own bookkeeping annotations, no marker.
        Ok(None)
    }

    async fn follow(
        &mut self,
        ctx: &Ctx<'_>,
        _w: &WorkloadRef,
        rep: &mut WorkloadReport,
        deadline: Instant,
        out: &mut (dyn Write + Send),
    ) -> Ended {
        let desired = self.plan.replicas;
        let (surge, unavailable) = surge(ctx.settings, desired);
        let min_ready = self
            .old
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64);
        let mut guards = Guards::new(
            ctx.client.clone(),
            &ctx.ns,
            Stability::window_for(ctx.settings.stable_for, min_ready),
            ctx.settings.scale_up_grace,
            unavailable.max(0) as usize,
        );
        let Some(watch) = self.watch.as_mut() else {
            return Ended::not_started();
        };
        let mut subject = RcSubject {
            ctx,
            watch,
            plan: &self.plan,
            old_selector: &self.old_selector,
            new_selector: &self.new_selector,
            set_old: &mut self.set_old,
            set_new: &mut self.set_new,
            notes: &mut rep.notes,
            surge,
            unavailable,
        };
        let ended = track::follow(
            &mut subject,
            &ctx.limits,
            deadline,
            ctx.settings.bake,
            &mut guards,
            out,
        )
        .await;
        if let Some(n) = guards.stable_note.take() {
            rep.stability = Some(n);
        }
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
        collect::pod_findings(
            &ctx.client,
            &ctx.ns,
            &template,
            &self.plan.new_image,
            total,
            f.cause,
            f.signals,
            f.progress,
        )
        .await
    }

    fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String> {
        self.watch
            .as_ref()
            .map(|watch| report::events::excerpt(&watch.snapshot().events, &w.name))
            .unwrap_or_default()
    }

    /// Says its own rollback line (which RC goes back to what).
    fn announces_rollback(&self) -> bool {
        false
    }

    async fn roll_back(
        &mut self,
        ctx: &Ctx<'_>,
        _w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> (bool, String) {
        roll_back_rc(ctx, self, &mut rep.notes, out).await
    }

    async fn commit(
        &mut self,
        ctx: &Ctx<'_>,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<(), String> {
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
        if let Err(e) = merge_patch_obj(&ctx.client, KIND, &ctx.ns, &r.plan.new_name, &clear).await
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

async fn find_rc(ctx: &Ctx<'_>, w: &WorkloadRef) -> Result<Value, Stop> {
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
async fn apply_rc(
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
            merge_patch_obj(client, KIND, ns, &old_name, &back)
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
    match json_patch_obj(client, KIND, ns, &old_name, &mark).await {
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
            json_patch_obj(client, KIND, ns, &old_name, &patch)
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

/// Old RC back to its replicas, new RC deleted (its pods are collected).
async fn roll_back_rc(
    ctx: &Ctx<'_>,
    r: &mut RcRollout,
    notes: &mut Vec<String>,
    out: &mut (dyn Write + Send),
) -> (bool, String) {
    let (old_name, new_name, replicas) = (
        r.plan.old_name.clone(),
        r.plan.new_name.clone(),
        r.plan.replicas,
    );
    let _ = writeln!(
        out,
        "rolling back: {old_name} back to {replicas} replicas, deleting {new_name}"
    );
    let back = json!({"metadata": {"annotations": {ROLLING_UPDATE_TO: null, ORIGINAL_REPLICAS: null}},
                      "spec": {"replicas": replicas}});
    if let Err(e) = merge_patch_obj(&ctx.client, KIND, &ctx.ns, &old_name, &back).await {
        return (
            false,
            format!("could not scale {old_name} back to {replicas}: {e}"),
        );
    }
    let api: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    match api.delete(&new_name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return (false, format!("could not delete {new_name}: {e}")),
    }
    notes.push(format!(
        "rollback: {old_name} scaled back to {replicas}; {new_name} deleted"
    ));
    let Some(watch) = r.watch.as_mut() else {
        return (false, "not watched".into());
    };
    let deadline = Instant::now() + ctx.settings.rollback_timeout;
    let (old_selector, new_selector) = (&r.old_selector, &r.new_selector);
    let mut state = (0, 0);
    let confirmed = track::wait_until(watch, deadline, out, |watch: &Watch| {
        let snap = watch.snapshot();
        let old_ready = snap
            .pods
            .iter()
            .filter(|p| matches_selector(p, old_selector) && dep::pod_is_ready(p))
            .count() as i32;
        let new_left = snap
            .pods
            .iter()
            .filter(|p| matches_selector(p, new_selector))
            .count();
        state = (old_ready, new_left);
        let line = format!(
            "{old_name}  desired {replicas}  ready {old_ready}  (rollback; {new_left} new pod(s) left)"
        );
        if old_ready >= replicas && new_left == 0 {
            Poll::Done { line, found: () }
        } else {
            Poll::Pending {
                line,
                waiting_for: String::new(),
            }
        }
    })
    .await;
    let (old_ready, new_left) = state;
    match confirmed {
        Ok(_) => (
            true,
            format!(
                "{} is serving again ({old_name}: {old_ready}/{replicas} ready; {new_name} deleted)",
                r.plan.old_image
            ),
        ),
        Err(_) => (
            false,
            format!(
                "{old_name} scaled back to {replicas} and {new_name} deleted, but only {old_ready}/{replicas} ready and {new_left} new pod(s) left within {}",
                humantime::format_duration(ctx.settings.rollback_timeout)
            ),
        ),
    }
}

/// What the follow loop judges of one moment: the scaling arithmetic's
/// counts, once both controllers were seen.
struct RcSnap {
    counts: Counts,
    both_seen: bool,
}

/// A ReplicationController rolling update as the follow loop sees it: the
/// loop's judgement, and the scaling steps this kind takes itself.
struct RcSubject<'a> {
    ctx: &'a Ctx<'a>,
    watch: &'a mut Watch,
    plan: &'a RcPlan,
    old_selector: &'a BTreeMap<String, String>,
    new_selector: &'a BTreeMap<String, String>,
    set_old: &'a mut Option<i32>,
    set_new: &'a mut Option<i32>,
    notes: &'a mut Vec<String>,
    surge: i32,
    unavailable: i32,
}

impl Subject for RcSubject<'_> {
    type Snap = RcSnap;

    async fn next_change(&mut self) {
        self.watch.next_change().await;
    }

    fn is_ready(&self) -> bool {
        self.watch.is_ready()
    }

    fn read(&self) -> (RcSnap, Reading) {
        let snap: WatchSnapshot = self.watch.snapshot();
        let old = snap.object(&self.plan.old_name);
        let new = snap.object(&self.plan.new_name);
        let (new_pods, old_pods): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) = (
            snap.pods
                .iter()
                .filter(|p| matches_selector(p, self.new_selector))
                .cloned()
                .collect(),
            snap.pods
                .iter()
                .filter(|p| matches_selector(p, self.old_selector))
                .cloned()
                .collect(),
        );
        let spec = |o: Option<&Value>| {
            o.and_then(|o| o.pointer("/spec/replicas"))
                .and_then(Value::as_i64)
                .unwrap_or(0) as i32
        };
        let ready = |pods: &[Arc<Pod>]| pods.iter().filter(|p| dep::pod_is_ready(p)).count() as i32;
        let desired = self.plan.replicas;
        let counts = Counts {
            desired,
            old_spec: self.set_old.unwrap_or_else(|| spec(old)),
            new_spec: self.set_new.unwrap_or_else(|| spec(new)),
            old_live: old_pods.len() as i32,
            old_ready: ready(&old_pods),
            new_live: new_pods.len() as i32,
            new_ready: ready(&new_pods),
        };
        let progress = Progress {
            name: self.plan.new_name.clone(),
            desired,
            current: counts.old_live + counts.new_live,
            up_to_date: counts.new_live,
            available: counts.old_ready + counts.new_ready,
            new_ready: counts.new_ready,
            waiting_for: String::new(),
        };
        let signals = workload::signals_of(&new_pods, &snap.events);
        let both_seen = old.is_some() && new.is_some();
        let reading = Reading {
            progress,
            new_pods,
            old_pods,
            signals,
            events: snap.events,
            superseded: None,
        };
        (RcSnap { counts, both_seen }, reading)
    }

    fn judge(&self, snap: &RcSnap, r: &Reading, limits: &Limits, timers: &Timers) -> Verdict {
        let mut progress = r.progress.clone();
        if let Some((cause, signals)) =
            workload::fail_fast(&r.signals, limits, &timers.unschedulable_for)
        {
            return Verdict::Failed {
                progress,
                cause,
                signals,
            };
        }
        if !snap.both_seen {
            progress.waiting_for = "both replication controllers to be seen".into();
            return Verdict::Waiting(progress);
        }
        match next_step(&snap.counts, self.surge, self.unavailable) {
            Step::Done => workload::judge_pods(progress, None, r.signals.clone(), limits, timers),
            Step::Wait(w) => {
                progress.waiting_for = w;
                Verdict::Waiting(progress)
            }
            Step::ScaleNew(_) | Step::ScaleOld(_) => {
                progress.waiting_for = "the next scaling step".into();
                Verdict::Waiting(progress)
            }
        }
    }

    /// One scaling step, when the arithmetic says one is due.
    async fn act(&mut self, snap: &RcSnap, out: &mut (dyn Write + Send)) -> bool {
        if !snap.both_seen {
            return false;
        }
        let step = next_step(&snap.counts, self.surge, self.unavailable);
        let (rc_name, dir, target) = match &step {
            Step::ScaleNew(n) => (&self.plan.new_name, "up", *n),
            Step::ScaleOld(n) => (&self.plan.old_name, "down", *n),
            _ => return false,
        };
        let m = format!("Scaling {rc_name} {dir} to {target}");
        let _ = writeln!(out, "{m}");
        self.notes.push(m);
        let ctx = self.ctx;
        match merge_patch_obj(
            &ctx.client,
            KIND,
            &ctx.ns,
            rc_name,
            &json!({"spec": {"replicas": target}}),
        )
        .await
        {
            Err(e) => tracing::warn!("scaling {rc_name} failed (retrying): {e}"),
            Ok(_) if matches!(step, Step::ScaleNew(_)) => *self.set_new = Some(target),
            Ok(_) => *self.set_old = Some(target),
        }
        true
    }
}
