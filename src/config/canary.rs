//! `canary` and `canary-hold`: how many pods of the new version run first,
//! and how long they are held.

use std::time::Duration;

use super::values::{IntOrPercent, parse_duration};
use super::{InputError, bad};
use crate::k8s::kind::{Kind, WorkloadRef};

/// The canary step: how many pods of the new version, and how long they are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canary {
    pub pods: IntOrPercent,
    pub hold: Duration,
}

/// Only for one Deployment or StatefulSet (a ReplicationController's update
/// and a DaemonSet's per-node pods have no way to run a few new pods beside
/// the stable ones; a group would need one verdict over several canaries).
pub(super) fn settings(
    canary: Option<&str>,
    hold: Option<&str>,
    workloads: &[WorkloadRef],
) -> Result<Option<Canary>, InputError> {
    let Some(v) = canary else {
        if hold.is_some() {
            return Err(bad("canary-hold", "needs the canary input"));
        }
        return Ok(None);
    };
    let pods = IntOrPercent::parse("canary", Some(v), 0)?;
    if pods.is_zero() {
        return Err(bad(
            "canary",
            format!("\"{v}\" must be at least 1 pod or 1%"),
        ));
    }
    if workloads.len() > 1 {
        return Err(bad(
            "canary",
            "runs one workload at a time: name a single workload",
        ));
    }
    if let Some(w) = workloads.first()
        && !matches!(w.kind, Kind::Deployment | Kind::StatefulSet)
    {
        return Err(bad(
            "canary",
            format!(
                "is for a Deployment or StatefulSet, not {w}: a {} has no way to run a few new pods beside the stable ones",
                w.kind.as_str()
            ),
        ));
    }
    let hold = parse_duration("canary-hold", hold, "2m")?;
    Ok(Some(Canary { pods, hold }))
}
