//! A deadline or timeout with no pod-level cause: what was still awaited,
//! in kubectl's DESIRED/CURRENT/UP-TO-DATE/AVAILABLE terms.

use super::{Cause, Finding};
use crate::model::Progress;

pub(crate) const FIX: &str = "No new pod failed: they were still starting or not yet ready. If the new version only starts slowly, raise this step's timeout input (and spec.progressDeadlineSeconds); otherwise look at kubectl describe deployment and its new pods.";

/// `DESIRED 3  CURRENT 4  UP-TO-DATE 1  AVAILABLE 3  (new pods ready 0/3)`
pub fn counts(p: &Progress) -> String {
    format!(
        "DESIRED {}  CURRENT {}  UP-TO-DATE {}  AVAILABLE {}  (new pods ready {}/{})",
        p.desired, p.current, p.up_to_date, p.available, p.new_ready, p.desired
    )
}

/// The finding for a timeout (`cause` Timeout, `what` e.g. "timed out
/// after 5m") or a ProgressDeadlineExceeded (`deadline_message` the
/// condition's message). `primary`: other findings name a pod-level cause.
pub fn finding(
    cause: Cause,
    what: &str,
    progress: &Progress,
    deadline_message: Option<&str>,
    primary: bool,
) -> Finding {
    let counts = counts(progress);
    // What was awaited is in the summary; the evidence is kubectl's counts.
    let mut evidence = vec![counts.clone()];
    if let Some(m) = deadline_message {
        evidence.push(m.to_string());
    }
    Finding {
        cause,
        // The counts are the evidence; the summary says what was awaited.
        summary: {
            let awaited = if progress.waiting_for.is_empty() {
                format!(
                    "{} of {} new pods ready",
                    progress.new_ready, progress.desired
                )
            } else {
                format!("still waiting for {}", progress.waiting_for)
            };
            if primary {
                format!("{what}, {awaited}")
            } else {
                format!("{what} with no failing pod, {awaited}")
            }
        },
        container: None,
        pods: format!("{}/{} new pods ready", progress.new_ready, progress.desired),
        evidence,
        per_pod: Vec::new(),
        logs: Vec::new(),
        fix: if primary {
            "See the findings above; the rollout could not finish because of them.".to_string()
        } else {
            FIX.to_string()
        },
    }
}
