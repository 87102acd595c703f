//! Every permission a run needs, checked before anything changes: one
//! SelfSubjectRulesReview for the namespace, and a SelfSubjectAccessReview
//! only for what an incomplete rules answer did not grant.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::exit::ExitCode;
use crate::lock;
use crate::workload::{Kind, WorkloadRef};
use crate::{Stop, cluster_error, stop};

/// Whose a needed permission is, for the message naming a missing one.
#[derive(Clone, Copy)]
enum For<'a> {
    Workload(&'a WorkloadRef),
    Lock,
    Canary(&'a WorkloadRef),
}

/// Every permission a run needs in `ns`: each workload's (its kind's list,
/// including list/watch on the workload itself), the deploy lock's Lease
/// verbs unless the lock is off, and a Deployment canary's create/delete.
fn needed_permissions(
    workloads: &[WorkloadRef],
    lock: bool,
    canary: bool,
) -> Vec<(For<'_>, &'static str, &'static str, &'static str)> {
    let mut needed = Vec::new();
    for w in workloads {
        for (verb, group, resource) in w.kind.needed_permissions() {
            needed.push((For::Workload(w), *verb, *group, *resource));
        }
        // A Deployment's canary is a Deployment of its own, created and
        // deleted: never made when this identity could not remove it.
        if canary && w.kind == Kind::Deployment {
            for verb in ["create", "delete"] {
                needed.push((For::Canary(w), verb, "apps", "deployments"));
            }
        }
    }
    if lock {
        for verb in lock::LEASE_VERBS {
            needed.push((For::Lock, *verb, "coordination.k8s.io", "leases"));
        }
    }
    needed
}

/// Does a rules-review rule grant `verb` on `group/resource` (named `name`)?
fn rule_grants(
    rule: &ResourceRule,
    verb: &str,
    group: &str,
    resource: &str,
    name: Option<&str>,
) -> bool {
    let has = |xs: &[String], x: &str| xs.iter().any(|s| s == "*" || s == x);
    let resources_ok = rule.resources.as_deref().is_some_and(|rs| {
        has(rs, resource)
            || resource
                .split_once('/')
                .is_some_and(|(r, _)| rs.iter().any(|x| *x == format!("{r}/*")))
    });
    let names_ok = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
    };
    has(&rule.verbs, verb)
        && rule.api_groups.as_deref().is_some_and(|g| has(g, group))
        && resources_ok
        && names_ok
}

/// Check every permission the run needs before anything changes: one
/// SelfSubjectRulesReview for the namespace; when the server says its
/// answer is incomplete (an authorizer that cannot list rules), a
/// SelfSubjectAccessReview for each permission the rules did not grant.
/// Missing permissions are exit 78, naming them all.
pub(crate) async fn check_permissions(
    client: &Client,
    ns: &str,
    workloads: &[WorkloadRef],
    lock: bool,
    canary: bool,
) -> Result<(), Stop> {
    let single = workloads.len() == 1;
    let rules_api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(ns.to_string()),
        },
        ..Default::default()
    };
    let answer = rules_api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| cluster_error(&e, "checking permissions (SelfSubjectRulesReview)"))?;
    let status = answer.status.unwrap_or_default();
    let rules = status.resource_rules;
    let needed = needed_permissions(workloads, lock, canary);
    let named = |w: For<'_>, verb: &str, resource: &str| match w {
        For::Workload(w) if resource == w.kind.resource() && matches!(verb, "get" | "patch") => {
            Some(w.name.clone())
        }
        _ => None,
    };
    let mut missing: Vec<(String, Vec<&str>)> = Vec::new();
    let access_api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for (w, verb, group, resource) in needed {
        let name = named(w, verb, resource);
        if rules
            .iter()
            .any(|r| rule_grants(r, verb, group, resource, name.as_deref()))
        {
            continue;
        }
        let allowed = if status.incomplete {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(ns.to_string()),
                        verb: Some(verb.to_string()),
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        name: name.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            access_api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| cluster_error(&e, "checking permissions (SelfSubjectAccessReview)"))?
                .status
                .is_some_and(|s| s.allowed)
        } else {
            false
        };
        if allowed {
            continue;
        }
        let g = if group.is_empty() {
            String::new()
        } else {
            format!(".{group}")
        };
        let whose = match w {
            For::Workload(w) if !single => format!(" (for {w})"),
            For::Workload(_) => String::new(),
            For::Lock => " (the deploy lock; or set lock=false)".to_string(),
            For::Canary(w) => format!(
                " (the canary deployment/{}; or deploy without canary)",
                crate::canary::name_of(&w.name)
            ),
        };
        // One entry per resource: "list, watch deployments.apps".
        let what = format!("{resource}{g}{whose}");
        match missing.iter_mut().find(|(w, _)| *w == what) {
            Some((_, verbs)) if !verbs.contains(&verb) => verbs.push(verb),
            Some(_) => {}
            None => missing.push((what, vec![verb])),
        }
    }
    let missing: Vec<String> = missing
        .into_iter()
        .map(|(what, verbs)| format!("{} {what}", verbs.join(", ")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(stop(
            ExitCode::ClusterConfig,
            format!(
                "missing permission in namespace {ns}: {} (grant them with a Role bound to this identity; nothing changed)",
                missing.join(", ")
            ),
        ))
    }
}
