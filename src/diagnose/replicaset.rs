//! The new ReplicaSet cannot create pods (`FailedCreate`, the
//! `ReplicaFailure` condition): quota exceeded, admission denied.

use std::borrow::Borrow;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;

use super::{Cause, Signal, Words, event_time};

/// A signal when the ReplicaSet shows `ReplicaFailure=True`; the evidence
/// is its latest `FailedCreate` event ("Error creating: …"), else the
/// condition's message.
pub fn replica_set_signals<E: Borrow<Event>>(rs: &ReplicaSet, events: &[E]) -> Vec<Signal> {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let Some(cond) = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "ReplicaFailure"))
        .filter(|c| c.status == "True")
    else {
        return Vec::new();
    };
    let event = events
        .iter()
        .map(Borrow::borrow)
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("ReplicaSet")
                && e.involved_object.name.as_deref() == Some(name.as_str())
                && e.reason.as_deref() == Some("FailedCreate")
        })
        .max_by_key(|e| event_time(e))
        .and_then(|e| e.message.clone())
        // The event correlator's prefix for similar messages says nothing here.
        .map(|m| {
            m.strip_prefix("(combined from similar events): ")
                .map(str::to_string)
                .unwrap_or(m)
        });
    let message = event
        .or_else(|| cond.message.clone())
        .unwrap_or_else(|| cond.reason.clone().unwrap_or_else(|| "FailedCreate".into()));
    vec![Signal {
        cause: Cause::ReplicaFailure,
        pod: name,
        container: None,
        message,
        restarts: 0,
        exit_code: None,
    }]
}

/// The text after `marker`, up to the next `, ` key or the end.
fn field<'a>(m: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &m[m.find(marker)? + marker.len()..];
    Some(rest.split(", ").next().unwrap_or(rest).trim())
}

pub(crate) fn words(evidence: &str, ns: &str) -> Words {
    let ns_text = if ns.is_empty() {
        String::new()
    } else {
        format!(" of namespace {ns}")
    };
    if let Some(quota) = field(evidence, "exceeded quota: ") {
        let requested = field(evidence, "requested: ").unwrap_or("?");
        let used = field(evidence, "used: ").unwrap_or("?");
        let limited = field(evidence, "limited: ").unwrap_or("?");
        return Words {
            summary: format!(
                "the ResourceQuota {quota}{ns_text} has no room for the new pods: requested {requested}, used {used}, limited {limited}"
            ),
            fix: format!(
                "Raise spec.hard of ResourceQuota {quota}, lower the pods' resources.requests/limits, or roll with less surge (spec.strategy.rollingUpdate.maxSurge: 0, maxUnavailable: 1) so old pods make room first."
            ),
        };
    }
    if let Some(rest) = evidence.split_once("failed quota: ").map(|(_, r)| r) {
        let (quota, what) = rest.split_once(": ").unwrap_or((rest, ""));
        return Words {
            summary: format!("the ResourceQuota {quota}{ns_text} rejects the new pods: {what}"),
            fix: format!(
                "Quota {quota} tracks resources the pod template does not state: set them in spec.template.spec.containers[].resources ({what})."
            ),
        };
    }
    if let Some(rest) = evidence.split_once("admission webhook \"").map(|(_, r)| r) {
        let (hook, tail) = rest.split_once('"').unwrap_or((rest, ""));
        let why = tail
            .trim_start()
            .strip_prefix("denied the request:")
            .unwrap_or(tail)
            .trim();
        return Words {
            summary: format!("the admission webhook {hook} denied the new pods: {why}"),
            fix: format!(
                "Change the pod template so it passes the webhook's policy ({why}), or ask the owners of {hook} for an exception."
            ),
        };
    }
    if let Some(rest) = evidence.split_once("violates PodSecurity ").map(|(_, r)| r) {
        return Words {
            summary: format!("the new pods violate the namespace's Pod Security level: {rest}"),
            fix: "Make spec.template.spec (securityContext, capabilities, volumes, host namespaces) meet the namespace's pod-security.kubernetes.io/enforce level.".to_string(),
        };
    }
    let msg = evidence.trim_start_matches("Error creating: ");
    Words {
        summary: format!("the new ReplicaSet cannot create its pods: {msg}"),
        fix: "Fix what the API server's message names (quota, admission policy, or the pod template), then deploy again.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_message_is_explained() {
        let w = words(
            "Error creating: pods \"web-abc-xyz\" is forbidden: exceeded quota: compute, requested: cpu=500m, used: cpu=1500m, limited: cpu=2",
            "default",
        );
        assert_eq!(
            w.summary,
            "the ResourceQuota compute of namespace default has no room for the new pods: requested cpu=500m, used cpu=1500m, limited cpu=2"
        );
        assert!(w.fix.contains("spec.hard of ResourceQuota compute"));
        assert!(w.fix.contains("maxSurge"));
    }

    #[test]
    fn webhook_denial_is_explained() {
        let w = words(
            "Error creating: admission webhook \"validate.kyverno.svc-fail\" denied the request: resource Pod/default/web-abc-xyz was blocked due to the following policies require-labels: label 'team' is required",
            "default",
        );
        assert!(w.summary.starts_with(
            "the admission webhook validate.kyverno.svc-fail denied the new pods: resource Pod"
        ));
        assert!(w.fix.contains("validate.kyverno.svc-fail"));
    }

    #[test]
    fn quota_needing_limits_is_explained() {
        let w = words(
            "Error creating: pods \"web-abc-xyz\" is forbidden: failed quota: compute: must specify limits.cpu for: web",
            "default",
        );
        assert!(w.summary.contains("must specify limits.cpu for: web"));
        assert!(w.fix.contains("resources"));
    }
}
