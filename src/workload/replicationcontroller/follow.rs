//! Following a ReplicationController rolling update: the scaling steps it
//! takes itself between the follow loop's judgements, and its rollback (the
//! old RC back to its replicas, the new one deleted).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::k8s::objects::{ObjPatch, is_status, matches_selector, patch_obj};
use crate::model::{Progress, Timers, Verdict};
use crate::track::{self, Poll, Reading, Subject, Watch, WatchSnapshot};
use crate::workload::deployment as dep;
use crate::workload::rollout::Ctx;
use crate::workload::{self, Limits};

use super::rollout::{KIND, RcRollout};

/// Old RC back to its replicas, new RC deleted (its pods are collected).
pub(super) async fn roll_back_rc(
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
    if let Err(e) = patch_obj(
        &ctx.client,
        KIND,
        &ctx.ns,
        &old_name,
        ObjPatch::Merge(&back),
    )
    .await
    {
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
pub(super) struct RcSnap {
    counts: Counts,
    both_seen: bool,
}

/// A ReplicationController rolling update as the follow loop sees it: the
/// loop's judgement, and the scaling steps this kind takes itself.
pub(super) struct RcSubject<'a> {
    pub(super) ctx: &'a Ctx<'a>,
    pub(super) watch: &'a mut Watch,
    pub(super) plan: &'a RcPlan,
    pub(super) old_selector: &'a BTreeMap<String, String>,
    pub(super) new_selector: &'a BTreeMap<String, String>,
    pub(super) set_old: &'a mut Option<i32>,
    pub(super) set_new: &'a mut Option<i32>,
    pub(super) notes: &'a mut Vec<String>,
    pub(super) surge: i32,
    pub(super) unavailable: i32,
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
        match patch_obj(
            &ctx.client,
            KIND,
            &ctx.ns,
            rc_name,
            ObjPatch::Merge(&json!({"spec": {"replicas": target}})),
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
