//! A Deployment's canary: a temporary, ownerless `<name>-canary`
//! Deployment running the new version on a few pods, followed by the same
//! loop as the full rollout ([`track::follow`]), its hold being that loop's
//! bake (with the metric gate), before the stable Deployment is touched.

use std::io::Write;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::canary::{ANNOTATION, LABEL, cleanup};
use crate::config::Canary;
use crate::diagnose::collect;
use crate::exit::ExitCode;
use crate::model::Cause;
use crate::report::{self, Conclusion, Rollback, WorkloadReport};
use crate::track::Ended;
use crate::workload::WorkloadRef;
use crate::workload::deployment::subject::DeploymentSubject;
use crate::workload::deployment::tracker::Tracker;
use crate::workload::deployment::{self as dep, Expectations};
use crate::workload::rollout::{CanaryEnd, Ctx, Watched, follow_guarded};
use crate::{cancel, cluster_error, stop};

/// The canary Deployment for `stable` and its plan: the stable pod template
/// with the new image on the planned container, the version label and
/// [`LABEL`]; a selector of the stable one's plus [`LABEL`] (so neither
/// Deployment's ReplicaSets can claim the other's pods); no owner; the run
/// identity in [`ANNOTATION`].
pub fn manifest(
    stable: &Value,
    plan: &dep::Plan,
    version_label: &str,
    pods: i32,
    marker: &str,
) -> Value {
    let name = stable
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut template = plan.previous_template.clone();
    for key in ["containers", "initContainers"] {
        if let Some(cs) = template
            .pointer_mut(&format!("/spec/{key}"))
            .and_then(Value::as_array_mut)
        {
            for c in cs
                .iter_mut()
                .filter(|c| c["name"] == plan.container.as_str())
            {
                c["image"] = json!(plan.new_image);
            }
        }
    }
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(dep::TEMPLATE_HASH_LABEL);
    }
    template["metadata"]["labels"][version_label] = json!(plan.version);
    template["metadata"]["labels"][LABEL] = json!("true");
    let mut selector = stable
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"][LABEL] = json!("true");
    let mut labels = stable
        .pointer("/metadata/labels")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    labels[LABEL] = json!("true");
    let mut spec = json!({
        "replicas": pods,
        "selector": selector,
        "template": template,
    });
    for field in ["minReadySeconds", "progressDeadlineSeconds"] {
        if let Some(v) = stable.pointer(&format!("/spec/{field}")) {
            spec[field] = v.clone();
        }
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": crate::canary::name_of(name),
            "labels": labels,
            "annotations": {ANNOTATION: marker},
        },
        "spec": spec,
    })
}

/// The label selector (as a string) of the canary's pods.
fn pod_selector(canary: &Value) -> String {
    canary
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// How the canary ended, before its removal.
enum Verdict {
    Ended(Ended),
    Cancelled(&'static str),
}

/// Run the canary of `w` before its full rollout. `Ok(None)`: it passed, the
/// full rollout may proceed (the canary stays until [`cleanup::after_run`]).
/// `Ok(Some(..))`: it failed or was cancelled, it is deleted, `rep` says
/// why; the stable Deployment was never changed. `Err`: bad input or the
/// cluster refused, nothing changed.
#[allow(clippy::too_many_arguments)] // the run's context, one per argument
pub(crate) async fn run(
    ctx: &Ctx<'_>,
    c: Canary,
    w: &WorkloadRef,
    plan: &dep::Plan,
    started: &str,
    rep: &mut WorkloadReport,
    out: &mut (dyn Write + Send),
) -> CanaryEnd {
    let (client, ns, s) = (&ctx.client, ctx.ns.as_str(), ctx.settings);
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let stable = api
        .get(&w.name)
        .await
        .map_err(|e| cluster_error(&e, &format!("reading {w}")))?;
    let replicas = stable.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let pods = crate::canary::pods_for(c.pods, replicas, &w.to_string())
        .map_err(|e| stop(ExitCode::BadInput, e))?;
    let name = crate::canary::name_of(&w.name);
    let stable_raw = serde_json::to_value(&stable).unwrap_or(Value::Null);
    let want = manifest(
        &stable_raw,
        plan,
        &s.version_label,
        pods,
        &crate::canary::marker(&s.reliability.identity, started, &w.to_string()),
    );
    let selector = pod_selector(&want);
    let within = s.rollback_timeout;
    match api.get_opt(&name).await {
        Ok(Some(existing)) => {
            let ours = existing
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ANNOTATION));
            if !ours {
                return Err(stop(
                    ExitCode::BadInput,
                    format!(
                        "canary: deployment/{name} already exists and is not a rollguard canary (no {ANNOTATION} annotation); nothing changed: rename or delete it, or deploy without canary"
                    ),
                ));
            }
            let _ = writeln!(out, "deleting a leftover canary deployment/{name} first");
            cleanup::delete_and_wait(client, ns, &name, &selector, within)
                .await
                .map_err(|e| stop(ExitCode::RollbackFailed, e))?;
        }
        Ok(None) => {}
        Err(e) => return Err(cluster_error(&e, &format!("reading deployment/{name}"))),
    }
    let typed: Deployment = serde_json::from_value(want).map_err(|e| {
        stop(
            ExitCode::BadInput,
            format!("canary: the canary of {w} could not be built: {e}"),
        )
    })?;
    let mut tracker = Tracker::start(client, ns, &name, &selector);
    let _ = writeln!(
        out,
        "canary of {w} in {ns}: {pods} of {replicas} pods of {} as deployment/{name} (version {}={}), then held for {}",
        plan.new_image,
        s.version_label,
        plan.version,
        humantime::format_duration(c.hold)
    );
    let _ = out.flush();
    cancel::set_canary(client, cleanup::deployment_path(ns, &name));
    let created = match api.create(&PostParams::default(), &typed).await {
        Ok(d) => d,
        Err(e) => {
            cancel::clear_canary();
            return Err(match &e {
                kube::Error::Api(s) if s.code == 409 => stop(
                    ExitCode::BadInput,
                    format!(
                        "canary: deployment/{name} was created by someone else meanwhile; nothing changed: run again"
                    ),
                ),
                _ => cluster_error(&e, &format!("creating deployment/{name}")),
            });
        }
    };
    let exposed_from = Instant::now();
    tracker.set_new_version(&plan.container, &plan.new_image);
    let created_raw = serde_json::to_value(&created).unwrap_or(Value::Null);
    let exp = Expectations::of(&created_raw, None, ctx.limits);
    let min_ready = created
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .map(i64::from);
    let token = cancel::current();
    let verdict = {
        let mut subject = DeploymentSubject {
            tracker: &mut tracker,
            exp: &exp,
            container: &plan.container,
            canary: true,
        };
        let watched = Watched {
            version: &plan.version,
            container: &plan.container,
            min_ready_seconds: min_ready,
            // The stable pods stay: the canary's pending pods free no room.
            max_unavailable: 0,
            bake: c.hold,
            deadline: Instant::now() + s.timeout,
        };
        let follow = follow_guarded(ctx, w, &mut subject, watched, rep, &mut *out);
        tokio::select! {
            ended = follow => Verdict::Ended(ended),
            why = token.cancelled() => Verdict::Cancelled(why),
        }
    };
    let exposure = crate::canary::exposure(pods, replicas, exposed_from.elapsed());
    if let Verdict::Ended(Ended::Succeeded(_)) = &verdict {
        let _ = writeln!(out, "canary passed ({exposure}); rolling out {w}");
        rep.canary = Some(format!("{exposure}, passed"));
        return Ok(None);
    }
    let old = plan.old_image.as_str();
    let new = plan.new_image.as_str();
    let mut code = ExitCode::RolledBack;
    match &verdict {
        Verdict::Ended(Ended::Succeeded(_)) => {}
        Verdict::Ended(ended) => {
            let Ok((progress, cause, signals, timed_out)) = ended.clone().failure() else {
                unreachable!("handled above")
            };
            let snap = tracker.snapshot();
            rep.findings = if cause == Cause::MetricGate
                && let Some(a) = &rep.analysis
            {
                crate::analysis::finding(a, Some(plan.container.clone()))
                    .into_iter()
                    .collect()
            } else {
                collect::deployment_findings(
                    client,
                    ns,
                    &snap,
                    &exp,
                    &plan.new_image,
                    cause,
                    &signals,
                    &progress,
                    timed_out,
                )
                .await
            };
            rep.events = report::events::excerpt(&snap.events, &name);
            rep.cause = rep.findings.first().map(|f| f.summary.clone());
            rep.progress = Some(progress);
            let title = rep
                .findings
                .first()
                .map_or(cause.title(), |f| f.cause.title());
            let what = if timed_out {
                code = ExitCode::TimedOut;
                format!("timed out after {}", humantime::format_duration(s.timeout))
            } else {
                "failed".to_string()
            };
            let _ = writeln!(
                out,
                "canary of {new} {what} ({title}; {exposure}): deleting deployment/{name}; {w} was never changed"
            );
            rep.headline = format!(
                "{w}: canary of {new} {what} ({exposure}); the canary was deleted, {w} was never changed (still {old})"
            );
            rep.canary = Some(format!("{exposure}, {what}"));
        }
        Verdict::Cancelled(why) => {
            let _ = writeln!(
                out,
                "cancelled ({why}) during the canary: deleting deployment/{name}; {w} was never changed"
            );
            rep.canary = Some(format!("{exposure}, cancelled by {why}"));
        }
    }
    let budget = match verdict {
        Verdict::Cancelled(_) => within.min(cancel::ROLLBACK_BUDGET),
        _ => within,
    };
    let deleted = cleanup::delete_and_wait(client, ns, &name, &selector, budget).await;
    cancel::clear_canary();
    let (confirmed, detail) = match deleted {
        Ok(()) => (
            true,
            format!(
                "deleted the canary deployment/{name} and its pods; {w} was never changed (still {old})"
            ),
        ),
        Err(e) => (false, e),
    };
    if let Verdict::Cancelled(why) = verdict {
        let mut concluded = report::Report::new(String::new());
        code = cancel::conclude(
            why,
            &w.to_string(),
            new,
            old,
            Some((confirmed, detail)),
            &mut concluded,
        );
        rep.headline = format!(
            "{w}: cancelled ({why}) during the canary of {new}; {}",
            if confirmed {
                format!("the canary was deleted, {w} was never changed (still {old})")
            } else {
                "the canary's removal was not confirmed".to_string()
            }
        );
        rep.cause = concluded.cause;
        rep.rollback = concluded.rollback;
        rep.result = concluded.result;
        rep.exit_code = code.code();
        return Ok(Some((code, rep.result)));
    }
    rep.rollback = Some(Rollback {
        attempted: true,
        confirmed,
        detail,
    });
    if confirmed {
        rep.result = Conclusion::RolledBack;
    } else {
        rep.result = Conclusion::Failed;
        code = ExitCode::RollbackFailed;
        rep.headline
            .push_str(", and the canary's removal was not confirmed");
    }
    rep.exit_code = code.code();
    Ok(Some((code, rep.result)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stable() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": {
                "replicas": 4, "minReadySeconds": 5,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                    "spec": {"containers": [{"name": "web", "image": "example/web:v1"}, {"name": "side", "image": "side:1"}]}
                }
            }
        })
    }

    #[test]
    fn the_canary_runs_the_new_image_under_its_own_selector() {
        let p = dep::plan(
            &stable(),
            &[],
            &crate::workload::deployment::Ask {
                container: Some("web"),
                change: &crate::image::ImageChange::Tag("v2".into()),
                version: None,
                version_label: "app.kubernetes.io/version",
                origin: "ci",
                now: "now",
            },
        )
        .expect("plannable");
        let m = manifest(&stable(), &p, "app.kubernetes.io/version", 1, "{}");
        assert_eq!(m["metadata"]["name"], "web-canary");
        assert!(m["metadata"]["ownerReferences"].is_null());
        assert_eq!(m["metadata"]["annotations"][ANNOTATION], "{}");
        assert_eq!(m["spec"]["replicas"], 1);
        assert_eq!(m["spec"]["minReadySeconds"], 5);
        assert_eq!(
            m["spec"]["selector"]["matchLabels"],
            json!({"app": "web", LABEL: "true"})
        );
        let labels = &m["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[LABEL], "true");
        assert_eq!(labels["app.kubernetes.io/version"], "v2");
        assert!(labels["pod-template-hash"].is_null());
        let cs = &m["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "example/web:v2");
        assert_eq!(
            cs[1]["image"], "side:1",
            "other containers keep their image"
        );
        assert_eq!(pod_selector(&m), "app=web,rollguard.dev/canary=true");
    }
}
