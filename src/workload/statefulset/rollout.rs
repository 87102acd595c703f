//! The StatefulSet's part in the template kinds' rollout.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::*;
use crate::model::Progress;
use crate::workload::deployment::{Ask, NotRollable, Plan};

/// The StatefulSet as a template kind: judged on the pods of the update
/// revision; one pod at a time (surge 0, unavailable 1); its rollback
/// deletes the pods of the bad revision that an `OrderedReady` controller
/// would leave stuck.
pub struct StatefulSetKind;

impl crate::workload::template::TemplateKind for StatefulSetKind {
    type Object = k8s_openapi::api::apps::v1::StatefulSet;

    fn plan(raw: &Value, ask: &Ask<'_>) -> Result<Plan, NotRollable> {
        plan(raw, ask)
    }

    fn strategy(raw: &Value) -> Option<crate::preflight::capacity::Strategy> {
        Some(crate::preflight::capacity::Strategy {
            replicas: replicas(raw).max(0) as i32,
            max_surge: 0,
            max_unavailable: 1,
        })
    }

    fn still_waiting_for(obj: &Value, generation: i64) -> Option<String> {
        still_waiting_for(obj, generation)
    }

    fn new_pods(obj: &Value, pods: &[Arc<Pod>], generation: i64) -> Vec<Arc<Pod>> {
        update_revision(obj, generation)
            .map(|r| pods_of_revision(pods, &r))
            .unwrap_or_default()
    }

    fn progress(obj: &Value, new_ready: i32) -> Progress {
        progress(obj, new_ready)
    }

    fn revision(obj: &Value, generation: i64) -> Option<String> {
        update_revision(obj, generation)
    }

    fn canary_partition(
        raw: &Value,
        canary: crate::config::Canary,
        w: &crate::workload::WorkloadRef,
        patch: &mut Value,
    ) -> Result<(), crate::Stop> {
        crate::workload::template::canary_partition(raw, canary, w, patch).map(|_| ())
    }

    fn stuck(pods: &[Arc<Pod>], bad_revision: &str) -> (usize, Vec<String>) {
        (
            pods_of_revision(pods, bad_revision).len(),
            stuck_pods(pods, bad_revision),
        )
    }
}
