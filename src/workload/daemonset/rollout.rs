//! The DaemonSet's part in the template kinds' rollout.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::*;
use crate::model::Progress;
use crate::workload::deployment::{Ask, NotRollable, Plan};

/// The DaemonSet as a template kind: judged on the pods of the new
/// template generation; its pods are per node (no capacity check).
pub struct DaemonSetKind;

impl crate::workload::template::TemplateKind for DaemonSetKind {
    type Object = k8s_openapi::api::apps::v1::DaemonSet;

    fn plan(raw: &Value, ask: &Ask<'_>) -> Result<Plan, NotRollable> {
        plan(raw, ask)
    }

    fn strategy(_raw: &Value) -> Option<crate::preflight::capacity::Strategy> {
        None
    }

    fn still_waiting_for(obj: &Value, generation: i64) -> Option<String> {
        still_waiting_for(obj, generation)
    }

    fn new_pods(_obj: &Value, pods: &[Arc<Pod>], generation: i64) -> Vec<Arc<Pod>> {
        pods_of_generation(pods, generation)
    }

    fn progress(obj: &Value, new_ready: i32) -> Progress {
        progress(obj, new_ready)
    }
}
