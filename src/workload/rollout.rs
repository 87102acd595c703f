//! One workload's rollout, whatever its kind: the questions the pipeline
//! asks (prepare, apply, follow, diagnose, roll back, commit) and the one
//! place that says which implementation answers them for which kind.
//!
//! Adding a kind is a file set of its own implementing [`Rollout`], one
//! variant of [`AnyRollout`] and its arm in `each!` and `prepare`.

use std::io::Write;

use kube::Client;
use tokio::time::Instant;

use crate::Stop;
use crate::config::Settings;
use crate::diagnose::{Cause, Finding, Signal};
use crate::recovery::Marker;
use crate::report::WorkloadReport;
use crate::report::timeline::Sample;
use crate::track::Ended;
use crate::workload::deployment::Progress;
use crate::workload::deployment::rollout::DeploymentRollout;
use crate::workload::replicationcontroller::rollout::RcRollout;
use crate::workload::template::TemplateRollout;
use crate::workload::{Kind, Limits, WorkloadRef, daemonset, statefulset};

/// What every rollout of a run shares: the cluster, the namespace, the
/// settings.
pub(crate) struct Ctx<'a> {
    pub client: Client,
    pub ns: String,
    pub settings: &'a Settings,
    pub limits: Limits,
    /// A run of one workload: its messages and report are the classic ones.
    pub single: bool,
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
        }
    }
}

/// How a rollout failed, for its diagnosis.
pub(crate) struct Failure<'a> {
    pub cause: Cause,
    pub signals: &'a [Signal],
    pub progress: &'a Progress,
    pub timed_out: bool,
}

/// A rollout of one kind. `prepare` changes nothing; `apply` makes the one
/// change (returning the in-progress marker it carries, if the kind uses
/// one); `follow` watches until a verdict; `roll_back` undoes the change and
/// confirms the previous version is healthy; `commit` finishes a rollout
/// once the whole group succeeded.
pub(crate) trait Rollout: Sized {
    async fn prepare(
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<Self, Stop>;

    /// What a dry run says it would do.
    fn dry_run_text(&self, w: &WorkloadRef, ns: &str) -> String;

    async fn apply(
        &mut self,
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<Option<Marker>, Stop>;

    async fn follow(
        &mut self,
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        deadline: Instant,
        out: &mut (dyn Write + Send),
    ) -> Ended;

    async fn diagnose(&mut self, ctx: &Ctx<'_>, failure: &Failure<'_>) -> Vec<Finding>;

    /// A short excerpt of the workload's events (success events left out).
    fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String>;

    /// Whether the pipeline announces the rollback ("rolling back X to
    /// v1") before calling [`Rollout::roll_back`], or the kind says it.
    fn announces_rollback(&self) -> bool {
        true
    }

    async fn roll_back(
        &mut self,
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> (bool, String);

    async fn commit(
        &mut self,
        _ctx: &Ctx<'_>,
        _rep: &mut WorkloadReport,
        _out: &mut (dyn Write + Send),
    ) -> Result<(), String> {
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

/// Every kind's rollout (static dispatch).
pub(crate) enum AnyRollout {
    Deployment(Box<DeploymentRollout>),
    StatefulSet(Box<TemplateRollout<statefulset::StatefulSetKind>>),
    DaemonSet(Box<TemplateRollout<daemonset::DaemonSetKind>>),
    ReplicationController(Box<RcRollout>),
}

/// `$body` with `$r` bound to the kind's rollout.
macro_rules! each {
    ($self:expr, $r:ident => $body:expr) => {
        match $self {
            AnyRollout::Deployment($r) => $body,
            AnyRollout::StatefulSet($r) => $body,
            AnyRollout::DaemonSet($r) => $body,
            AnyRollout::ReplicationController($r) => $body,
        }
    };
}

impl AnyRollout {
    /// The registration: which implementation rolls which kind.
    pub async fn prepare(
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<AnyRollout, Stop> {
        Ok(match w.kind {
            Kind::Deployment => AnyRollout::Deployment(Box::new(
                DeploymentRollout::prepare(ctx, w, rep, out).await?,
            )),
            Kind::StatefulSet => {
                AnyRollout::StatefulSet(Box::new(TemplateRollout::prepare(ctx, w, rep, out).await?))
            }
            Kind::DaemonSet => {
                AnyRollout::DaemonSet(Box::new(TemplateRollout::prepare(ctx, w, rep, out).await?))
            }
            Kind::ReplicationController => AnyRollout::ReplicationController(Box::new(
                RcRollout::prepare(ctx, w, rep, out).await?,
            )),
        })
    }

    pub fn dry_run_text(&self, w: &WorkloadRef, ns: &str) -> String {
        each!(self, r => r.dry_run_text(w, ns))
    }

    pub async fn apply(
        &mut self,
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<Option<Marker>, Stop> {
        each!(self, r => r.apply(ctx, w, rep, out).await)
    }

    pub async fn follow(
        &mut self,
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        deadline: Instant,
        out: &mut (dyn Write + Send),
    ) -> Ended {
        each!(self, r => r.follow(ctx, w, rep, deadline, out).await)
    }

    pub async fn diagnose(&mut self, ctx: &Ctx<'_>, failure: &Failure<'_>) -> Vec<Finding> {
        each!(self, r => r.diagnose(ctx, failure).await)
    }

    pub fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String> {
        each!(self, r => r.events_excerpt(w))
    }

    pub fn announces_rollback(&self) -> bool {
        each!(self, r => r.announces_rollback())
    }

    pub async fn roll_back(
        &mut self,
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> (bool, String) {
        each!(self, r => r.roll_back(ctx, w, rep, out).await)
    }

    pub async fn commit(
        &mut self,
        ctx: &Ctx<'_>,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<(), String> {
        each!(self, r => r.commit(ctx, rep, out).await)
    }

    pub fn has_timeline(&self) -> bool {
        each!(self, r => r.has_timeline())
    }

    pub fn take_timeline(&mut self) -> Vec<Sample> {
        each!(self, r => r.take_timeline())
    }
}
