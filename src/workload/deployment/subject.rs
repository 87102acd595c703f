//! A Deployment's rollout as the follow loop sees it: the new ReplicaSet's
//! pods, the others, their signals, someone else's template, and the
//! Deployment's own rule to judge them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::model::{Mark, Phase, Timers, Verdict};
use crate::track::{Reading, Subject};
use crate::workload::Limits;
use crate::workload::deployment::tracker::Tracker;
use crate::workload::deployment::{self as dep, Expectations, Snapshot};

/// A Deployment's rollout as the follow loop sees it.
pub(crate) struct DeploymentSubject<'a> {
    pub tracker: &'a mut Tracker,
    pub exp: &'a Expectations,
    /// The container we changed (another writer's change is told by it).
    pub container: &'a str,
    /// Following a canary: its bake is the hold.
    pub canary: bool,
}

impl Subject for DeploymentSubject<'_> {
    type Snap = Snapshot;

    async fn next_change(&mut self) {
        self.tracker.next_change().await;
    }

    fn is_ready(&self) -> bool {
        self.tracker.is_ready()
    }

    fn read(&self) -> (Snapshot, Reading) {
        let snap = self.tracker.snapshot();
        let exp = self.exp;
        let new_rs = dep::new_replica_set(&snap, exp);
        let new_pods: Vec<Arc<Pod>> = new_rs
            .map(|rs| dep::pods_of(&snap, rs).into_iter().cloned().collect())
            .unwrap_or_default();
        let new_uid = new_rs.and_then(|rs| rs.metadata.uid.clone());
        let old_pods = snap
            .pods
            .iter()
            .filter(|p| {
                !p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| Some(&o.uid) == new_uid.as_ref())
            })
            .cloned()
            .collect();
        let superseded = snap.deployment.as_ref().and_then(|d| {
            // Our own generation (or older) is never another writer's: no
            // need to read the object as JSON.
            if d.metadata.generation.unwrap_or(0) <= exp.generation {
                return None;
            }
            let raw = serde_json::to_value(&**d).ok()?;
            crate::superseded::superseded(&raw, exp.generation, &exp.template, self.container)
        });
        let (_, signals) = dep::new_pod_signals(&snap, exp);
        let reading = Reading {
            progress: dep::progress(&snap, exp),
            new_pods,
            old_pods,
            signals,
            events: snap.events.clone(),
            superseded,
        };
        (snap, reading)
    }

    fn judge(&self, snap: &Snapshot, r: &Reading, _limits: &Limits, timers: &Timers) -> Verdict {
        dep::judge_seen(snap, self.exp, timers, r.progress.clone(), &r.signals)
    }

    fn is_canary(&self) -> bool {
        self.canary
    }

    fn mark(&mut self, mark: Option<Mark>, phase: Phase) {
        self.tracker.mark(mark, phase);
    }
}
