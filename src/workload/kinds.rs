//! The registration of every kind: which [`Rollout`] implementation rolls
//! which kind, one line each in [`kinds!`]. The only match on the kind
//! outside the kinds' own tables.
//!
//! Adding a kind is a file set of its own (its pure rules and its
//! `Rollout`), its line here, and its entry in [`Kind`](crate::k8s::kind::Kind)
//! (the name, aliases and resource the inputs and permissions use).

use serde_json::Value;
use tokio::time::Instant;

use crate::Stop;
use crate::config::Canary;
use crate::model::Finding;
use crate::model::Sample;
use crate::track::Ended;
use crate::workload::daemonset::rollout::DaemonSetKind;
use crate::workload::deployment::rollout::DeploymentRollout;
use crate::workload::replicationcontroller::rollout::RcRollout;
use crate::workload::rollout::{Applied, CanaryEnd, Ctx, Failure, Rollout, Step};
use crate::workload::statefulset::rollout::StatefulSetKind;
use crate::workload::template::TemplateRollout;
use crate::workload::{Kind, WorkloadRef};

/// `AnyRollout`, one variant per kind, and its dispatch of every
/// [`Rollout`] step to the kind's implementation (static dispatch).
macro_rules! kinds {
    ($($kind:ident => $rollout:ty),+ $(,)?) => {
        /// Every kind's rollout.
        pub(crate) enum AnyRollout {
            $($kind(Box<$rollout>),)+
        }

        impl AnyRollout {
            pub async fn prepare(ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<AnyRollout, Stop> {
                Ok(match s.w.kind {
                    $(Kind::$kind => AnyRollout::$kind(Box::new(<$rollout>::prepare(ctx, s).await?)),)+
                })
            }

            /// The rollout rule of `kind` (see [`Rollout::still_waiting_for`]).
            pub fn still_waiting_for(kind: Kind, obj: &Value, generation: i64) -> Option<String> {
                match kind {
                    $(Kind::$kind => <$rollout>::still_waiting_for(obj, generation),)+
                }
            }

            pub fn dry_run_text(&self, w: &WorkloadRef, ns: &str) -> String {
                match self { $(AnyRollout::$kind(r) => r.dry_run_text(w, ns),)+ }
            }

            pub async fn canary(
                &mut self,
                ctx: &Ctx<'_>,
                s: &mut Step<'_>,
                canary: Canary,
            ) -> CanaryEnd {
                match self { $(AnyRollout::$kind(r) => r.canary(ctx, s, canary).await,)+ }
            }

            pub async fn apply(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<Applied, Stop> {
                match self { $(AnyRollout::$kind(r) => r.apply(ctx, s).await,)+ }
            }

            pub async fn follow(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>, deadline: Instant) -> Ended {
                match self { $(AnyRollout::$kind(r) => r.follow(ctx, s, deadline).await,)+ }
            }

            pub async fn diagnose(&mut self, ctx: &Ctx<'_>, failure: &Failure<'_>) -> Vec<Finding> {
                match self { $(AnyRollout::$kind(r) => r.diagnose(ctx, failure).await,)+ }
            }

            pub fn events_excerpt(&self, w: &WorkloadRef) -> Vec<String> {
                match self { $(AnyRollout::$kind(r) => r.events_excerpt(w),)+ }
            }

            pub fn announces_rollback(&self) -> bool {
                match self { $(AnyRollout::$kind(r) => r.announces_rollback(),)+ }
            }

            pub async fn roll_back(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> (bool, String) {
                match self { $(AnyRollout::$kind(r) => r.roll_back(ctx, s).await,)+ }
            }

            pub async fn commit(&mut self, ctx: &Ctx<'_>, s: &mut Step<'_>) -> Result<(), String> {
                match self { $(AnyRollout::$kind(r) => r.commit(ctx, s).await,)+ }
            }

            pub fn has_timeline(&self) -> bool {
                match self { $(AnyRollout::$kind(r) => r.has_timeline(),)+ }
            }

            pub fn take_timeline(&mut self) -> Vec<Sample> {
                match self { $(AnyRollout::$kind(r) => r.take_timeline(),)+ }
            }
        }
    };
}

kinds! {
    Deployment => DeploymentRollout,
    StatefulSet => TemplateRollout<StatefulSetKind>,
    DaemonSet => TemplateRollout<DaemonSetKind>,
    ReplicationController => RcRollout,
}
