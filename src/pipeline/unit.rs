//! One workload of the run as the pipeline carries it: its rollout (of
//! whatever kind), its report, and how far it got.

use std::io::Write;

use tokio::time::Instant;

use crate::config::Canary;
use crate::model::Progress;
use crate::model::{Cause, Finding, Signal};
use crate::recovery::Marker;
use crate::report::WorkloadReport;
use crate::track::Ended;
use crate::workload::WorkloadRef;
use crate::workload::kinds::AnyRollout;
use crate::workload::rollout::{CanaryEnd, Ctx, Failure, Step};
use crate::{Stop, cancel};

pub(crate) struct Unit {
    pub wref: WorkloadRef,
    pub rep: WorkloadReport,
    pub rollout: AnyRollout,
    /// The in-progress marker our change set (cleared when the run ends).
    pub marker: Option<Marker>,
    /// This workload as a second signal's target, from its change on.
    pub cancel_target: Option<cancel::Handle>,
    /// How following ended (None when stopped because another workload failed).
    pub ended: Option<Ended>,
    pub applied: bool,
}

impl Unit {
    /// The rollout and the step it takes on this workload (its report, `out`).
    fn step<'s>(&'s mut self, out: &'s mut (dyn Write + Send)) -> (&'s mut AnyRollout, Step<'s>) {
        let step = Step {
            w: &self.wref,
            rep: &mut self.rep,
            out,
        };
        (&mut self.rollout, step)
    }

    /// Read, plan and pre-flight; nothing changes. On failure the report
    /// keeps what was planned (and the pre-flight finding).
    pub async fn prepare(
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        out: &mut (dyn Write + Send),
    ) -> Result<Unit, (Stop, WorkloadReport)> {
        let mut rep = WorkloadReport::new(w.to_string());
        let mut s = Step {
            w,
            rep: &mut rep,
            out,
        };
        match AnyRollout::prepare(ctx, &mut s).await {
            Ok(rollout) => Ok(Unit {
                wref: w.clone(),
                rep,
                rollout,
                marker: None,
                cancel_target: None,
                ended: None,
                applied: false,
            }),
            Err(e) => Err((e, rep)),
        }
    }

    pub fn dry_run_text(&self, ns: &str) -> String {
        self.rollout.dry_run_text(&self.wref, ns)
    }

    /// The canary step before the change: `Some` ends the run.
    pub async fn canary(
        &mut self,
        ctx: &Ctx<'_>,
        canary: Canary,
        out: &mut (dyn Write + Send),
    ) -> CanaryEnd {
        let (rollout, mut s) = self.step(out);
        rollout.canary(ctx, &mut s, canary).await
    }

    /// Make the change (watches start first).
    pub async fn apply(&mut self, ctx: &Ctx<'_>, out: &mut (dyn Write + Send)) -> Result<(), Stop> {
        let (rollout, mut s) = self.step(out);
        let applied = rollout.apply(ctx, &mut s).await?;
        self.marker = applied.marker;
        self.cancel_target = applied.cancel_target;
        self.applied = true;
        Ok(())
    }

    /// Follow until success, a fail-fast cause, or the deadline.
    pub async fn follow(
        &mut self,
        ctx: &Ctx<'_>,
        deadline: Instant,
        out: &mut (dyn Write + Send),
    ) -> Ended {
        let (rollout, mut s) = self.step(out);
        rollout.follow(ctx, &mut s, deadline).await
    }

    /// Findings for a failure of this workload.
    pub async fn diagnose(
        &mut self,
        ctx: &Ctx<'_>,
        cause: Cause,
        signals: &[Signal],
        progress: &Progress,
        timed_out: bool,
    ) -> Vec<Finding> {
        if cause == Cause::MetricGate
            && let Some(a) = &self.rep.analysis
        {
            return crate::analysis::finding(a, self.rep.container.clone())
                .into_iter()
                .collect();
        }
        let failure = Failure {
            cause,
            signals,
            progress,
            timed_out,
        };
        self.rollout.diagnose(ctx, &failure).await
    }

    pub fn events_excerpt(&self) -> Vec<String> {
        self.rollout.events_excerpt(&self.wref)
    }

    /// Another writer changed the template during the rollout.
    pub fn superseded(&self) -> bool {
        matches!(
            self.ended,
            Some(Ended::Failed {
                cause: Cause::Superseded,
                ..
            })
        )
    }

    /// Undo our change and watch the previous version become healthy —
    /// unless another writer changed it meanwhile: rolling back would
    /// overwrite their change.
    pub async fn roll_back(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut (dyn Write + Send),
    ) -> (bool, String) {
        if self.superseded() {
            let m = format!(
                "not rolled back: another writer changed {} during the rollout; their change is left in place",
                self.wref
            );
            let _ = writeln!(out, "{m}");
            return (false, m);
        }
        let (rollout, mut s) = self.step(out);
        rollout.roll_back(ctx, &mut s).await
    }

    /// "rolling back X to v1", for the kinds that do not say it themselves.
    pub fn announce_rollback(&self, out: &mut (dyn Write + Send)) {
        if self.rollout.announces_rollback() && !self.superseded() {
            let old = self.rep.previous_image.as_deref().unwrap_or("?");
            let _ = writeln!(out, "rolling back {} to {old}", self.wref);
        }
    }

    /// After the whole group succeeded: the kind's last step.
    pub async fn commit(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut (dyn Write + Send),
    ) -> Result<(), String> {
        let (rollout, mut s) = self.step(out);
        rollout.commit(ctx, &mut s).await
    }
}
