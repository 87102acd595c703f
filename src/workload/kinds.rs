//! The registration of every kind: which [`Rollout`] implementation rolls
//! which kind. The only match on the kind outside the kinds' own tables.
//!
//! Adding a kind is a file set of its own (its pure rules and its
//! `Rollout`), one variant here with its arm in `each!` and `prepare`, and
//! its entry in [`Kind`](crate::k8s::kind::Kind).

use tokio::time::Instant;

use crate::Stop;
use crate::config::Canary;
use crate::exit::ExitCode;
use crate::model::Finding;
use crate::model::Sample;
use crate::report::Conclusion;
use crate::track::Ended;
use crate::workload::daemonset::rollout::DaemonSetKind;
use crate::workload::deployment::rollout::DeploymentRollout;
use crate::workload::replicationcontroller::rollout::RcRollout;
use crate::workload::rollout::{Applied, Ctx, Failure, Rollout, Step};
use crate::workload::statefulset::rollout::StatefulSetKind;
use crate::workload::template::TemplateRollout;
use crate::workload::{Kind, WorkloadRef};

/// Every kind's rollout (static dispatch).
pub(crate) enum AnyRollout {
    Deployment(Box<DeploymentRollout>),
    StatefulSet(Box<TemplateRollout<StatefulSetKind>>),
    DaemonSet(Box<TemplateRollout<DaemonSetKind>>),
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
    pub async fn prepare(ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<AnyRollout, Stop> {
        Ok(match s.w.kind {
            Kind::Deployment => {
                AnyRollout::Deployment(Box::new(DeploymentRollout::prepare(ctx, s).await?))
            }
            Kind::StatefulSet => {
                AnyRollout::StatefulSet(Box::new(TemplateRollout::prepare(ctx, s).await?))
            }
            Kind::DaemonSet => {
                AnyRollout::DaemonSet(Box::new(TemplateRollout::prepare(ctx, s).await?))
            }
            Kind::ReplicationController => {
                AnyRollout::ReplicationController(Box::new(RcRollout::prepare(ctx, s).await?))
            }
        })
    }

    pub fn dry_run_text(&self, w: &WorkloadRef, ns: &str) -> String {
        each!(self, r => r.dry_run_text(w, ns))
    }

    pub async fn canary(
        &mut self,
        ctx: &Ctx<'_>,
        s: &mut Step<'_>,
        canary: Canary,
    ) -> Result<Option<(ExitCode, Conclusion)>, Stop> {
        each!(self, r => r.canary(ctx, s, canary).await)
    }

    pub async fn apply(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Applied, Stop> {
        each!(self, r => r.apply(ctx, s).await)
    }

    pub async fn follow(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>, deadline: Instant) -> Ended {
        each!(self, r => r.follow(ctx, s, deadline).await)
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

    pub async fn roll_back(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> (bool, String) {
        each!(self, r => r.roll_back(ctx, s).await)
    }

    pub async fn commit(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<(), String> {
        each!(self, r => r.commit(ctx, s).await)
    }

    pub fn has_timeline(&self) -> bool {
        each!(self, r => r.has_timeline())
    }

    pub fn take_timeline(&mut self) -> Vec<Sample> {
        each!(self, r => r.take_timeline())
    }
}
