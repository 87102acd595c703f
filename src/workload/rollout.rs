//! One workload's rollout, whatever its kind: the questions the pipeline
//! asks (prepare, apply, follow, diagnose, roll back, commit), answered by
//! each kind's implementation (registered in [`super::kinds`]).

use std::io::Write;

use kube::Client;
use std::time::Duration;

use tokio::time::Instant;

use crate::guards::Guards;
use crate::stability::Stability;
use crate::track::{self, Subject};

use crate::Stop;
use crate::cancel;
use crate::config::{Canary, Settings};
use crate::exit::ExitCode;
use crate::model::Progress;
use crate::model::Sample;
use crate::model::{Cause, Finding, Signal};
use crate::recovery::Marker;
use crate::report::Conclusion;
use crate::report::WorkloadReport;
use crate::track::Ended;
use crate::workload::{Limits, WorkloadRef};

/// What every rollout of a run shares: the cluster, the namespace, the
/// settings.
pub(crate) struct Ctx<'a> {
    pub client: Client,
    pub ns: String,
    pub settings: &'a Settings,
    pub limits: Limits,
    /// A run of one workload: its messages and report are the classic ones.
    pub single: bool,
    /// Workloads already read (by the recovery, under the deploy lock) and
    /// not changed since, by object path: taken by the first read instead of
    /// a second GET.
    pub seen: std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>,
    /// The run's Deployments, which share their watches.
    pub deployments: std::sync::Arc<crate::workload::deployment::hub::Group>,
}

impl Ctx<'_> {
    /// The same run with other settings (the rollback budget of a cancel).
    pub fn with_settings<'b>(&self, settings: &'b Settings) -> Ctx<'b> {
        Ctx {
            client: self.client.clone(),
            ns: self.ns.clone(),
            settings,
            limits: self.limits,
            single: self.single,
            seen: Default::default(),
            deployments: self.deployments.clone(),
        }
    }
}

/// How a canary step ended: `Some` is the run's end (the canary failed or
/// was cancelled; the stable workload never changed), `None` lets the full
/// rollout go on.
pub(crate) type CanaryEnd = Result<Option<(ExitCode, Conclusion)>, Stop>;

/// What a step of a workload's rollout is about and writes to: the
/// workload, its report, the run's output (prefixed in a group).
pub(crate) struct Step<'s> {
    pub w: &'s WorkloadRef,
    pub rep: &'s mut WorkloadReport,
    pub out: &'s mut (dyn Write + Send),
}

/// What a change leaves for the pipeline to look after until the run ends.
#[derive(Default)]
pub(crate) struct Applied {
    /// The in-progress marker the change carries (cleared at the end).
    pub marker: Option<Marker>,
    /// The workload as a second signal's target.
    pub cancel_target: Option<cancel::Handle>,
}

/// What the run's guards and gate need to know of one workload's rollout.
pub(crate) struct Watched<'a> {
    /// The new version (label value) and the container we changed.
    pub version: &'a str,
    pub container: &'a str,
    /// The workload's `minReadySeconds`: the stability window is at least this.
    pub min_ready_seconds: Option<i64>,
    /// How many old pods the rollout may take down (freed room for pods
    /// that cannot be scheduled).
    pub max_unavailable: usize,
    /// How long to bake (or hold a canary) after success.
    pub bake: Duration,
    pub deadline: Instant,
}

impl<'a> Watched<'a> {
    /// The rollout of `plan`, baked as the run says, until `deadline`.
    pub fn of(
        ctx: &Ctx<'_>,
        plan: &'a crate::workload::deployment::Plan,
        min_ready_seconds: Option<i64>,
        max_unavailable: usize,
        deadline: Instant,
    ) -> Self {
        Watched {
            version: &plan.version,
            container: &plan.container,
            min_ready_seconds,
            max_unavailable,
            bake: ctx.settings.bake,
            deadline,
        }
    }
}

/// Follow `subject` in the one follow loop with the run's guards (the
/// stability window, unschedulable permanence, the heartbeat) and the metric
/// gate during the bake; the stability note and the gate's evaluations go
/// into `rep`.
pub(crate) async fn follow_guarded<S: Subject>(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    subject: &mut S,
    watched: Watched<'_>,
    rep: &mut WorkloadReport,
    out: &mut (dyn Write + Send),
) -> Ended {
    let s = ctx.settings;
    let mut guards = Guards::new(
        ctx.client.clone(),
        &ctx.ns,
        Stability::window_for(s.stable_for, watched.min_ready_seconds),
        s.scale_up_grace,
        watched.max_unavailable,
    );
    let mut gate = gate_for(ctx, w, watched.version, watched.container, out);
    let ended = track::follow(
        subject,
        &ctx.limits,
        watched.deadline,
        watched.bake,
        &mut guards,
        gate.as_mut(),
        out,
    )
    .await;
    rep.analysis = gate_summary(rep.analysis.take(), gate);
    if let Some(n) = guards.stable_note.take() {
        rep.stability = Some(n);
    }
    ended
}

/// The metric gate of one workload's bake, its query filled in with the
/// workload's values (None without a gate; a client that cannot be built is
/// one line and no gate).
fn gate_for(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    version: &str,
    container: &str,
    out: &mut (dyn Write + Send),
) -> Option<crate::analysis::Gate> {
    let a = ctx.settings.analysis.as_ref()?;
    let vars = crate::analysis::template::Vars {
        version: version.to_string(),
        version_label: ctx.settings.version_label.clone(),
        namespace: ctx.ns.clone(),
        workload: w.name.clone(),
        container: container.to_string(),
    };
    match crate::analysis::Gate::new(a, &vars) {
        Ok(g) => Some(g),
        Err(e) => {
            let _ = writeln!(
                out,
                "metric gate not started: {}",
                crate::text::quote(&e, 200)
            );
            None
        }
    }
}

/// The gate's evaluations for the report, when it evaluated anything.
///
/// `earlier` is what a canary's hold already recorded: the full rollout
/// after a passing canary keeps it (a rollout without a bake evaluates
/// nothing more), and a bake's evaluations follow the hold's.
fn gate_summary(
    earlier: Option<crate::analysis::Summary>,
    gate: Option<crate::analysis::Gate>,
) -> Option<crate::analysis::Summary> {
    let now = gate
        .map(crate::analysis::Gate::into_summary)
        .filter(|a| !a.evaluations.is_empty() || a.failure.is_some());
    match (earlier, now) {
        (Some(mut e), Some(n)) => {
            e.evaluations.extend(n.evaluations);
            e.failure = n.failure;
            Some(e)
        }
        (e, n) => n.or(e),
    }
}

/// How a rollout failed, for its diagnosis.
pub(crate) struct Failure<'a> {
    pub cause: Cause,
    pub signals: &'a [Signal],
    pub progress: &'a Progress,
    pub timed_out: bool,
}

impl Failure<'_> {
    /// The findings of a failure of a kind that owns its pods directly (a
    /// StatefulSet, DaemonSet, ReplicationController): the pods of the new
    /// `template`, `total` of them meant to run `new_image`.
    pub async fn pod_findings(
        &self,
        ctx: &Ctx<'_>,
        template: &serde_json::Value,
        new_image: &str,
        total: usize,
    ) -> Vec<Finding> {
        crate::diagnose::collect::pod_findings(
            &ctx.client,
            &ctx.ns,
            template,
            new_image,
            total,
            self.cause,
            self.signals,
            self.progress,
        )
        .await
    }
}

/// A short excerpt of the events a [`track::Watch`] holds about `name`.
pub(crate) fn watch_excerpt(watch: Option<&track::Watch>, name: &str) -> Vec<String> {
    watch
        .map(|watch| crate::report::events::excerpt(&watch.snapshot().events, name))
        .unwrap_or_default()
}

/// A rollout of one kind. `prepare` changes nothing; `apply` makes the one
/// change (returning what the pipeline looks after until the end: the
/// in-progress marker, the second signal's target); `follow` watches until a verdict; `roll_back` undoes the change and
/// confirms the previous version is healthy; `commit` finishes a rollout
/// once the whole group succeeded.
pub(crate) trait Rollout: Sized {
    async fn prepare(ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Self, Stop>;

    /// The kind's rollout rule on a raw object of it (kubectl's rollout
    /// status, with observedGeneration ≥ `generation`): what is still
    /// awaited, or None when rolled out. The recovery asks it too.
    fn still_waiting_for(obj: &serde_json::Value, generation: i64) -> Option<String>;

    /// What a dry run says it would do.
    fn dry_run_text(&self, w: &WorkloadRef, ns: &str) -> String;

    /// The canary step before the change, for the kinds that have one:
    /// `Some` is the run's end (the canary failed or was cancelled; the
    /// stable workload never changed), `None` lets the full rollout go on.
    async fn canary(&mut self, _ctx: &Ctx<'_>, s: &mut Step<'_>, _canary: Canary) -> CanaryEnd {
        Err(crate::stop(
            ExitCode::BadInput,
            format!("canary: {} has no canary step", s.w),
        ))
    }

    async fn apply(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Applied, Stop>;

    async fn follow(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>, deadline: Instant) -> Ended;

    async fn diagnose(&mut self, ctx: &Ctx<'_>, failure: &Failure<'_>) -> Vec<Finding>;

    /// A short excerpt of the workload's events (success events left out).
    fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String>;

    /// Whether the pipeline announces the rollback ("rolling back X to
    /// v1") before calling [`Rollout::roll_back`], or the kind says it.
    fn announces_rollback(&self) -> bool {
        true
    }

    async fn roll_back(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> (bool, String);

    async fn commit(&mut self, _ctx: &Ctx<'_>, _s: &mut Step<'_>) -> Result<(), String> {
        Ok(())
    }

    /// The old-vs-new timeline, for the kinds that keep one.
    fn has_timeline(&self) -> bool {
        false
    }
    fn take_timeline(&mut self) -> Vec<Sample> {
        Vec::new()
    }
}
