//! rollguard: a Kubernetes deploy step for CI. Sets a new image on a
//! workload, follows the rolling update, fails fast on the real cause, rolls
//! back automatically (verified) and says why.
//!
//! The pipeline: [`config`] (env → settings) → pre-flight → [`workload`]
//! (plan one patch) → [`track`] (watch, judge) → [`diagnose`] → rollback →
//! [`report`]. [`run`] is the entry point shared by the binary and tests.

pub mod config;
pub mod diagnose;
pub mod exit;
pub mod image;
pub mod kube_client;
pub mod orchestrate;
pub mod preflight;
pub mod report;
pub mod track;
pub mod workload;
// Issue #8 (reliability): retries, deploy lock, cancellation, interrupted-run recovery.
pub mod cancel;
pub mod lock;
pub mod recovery;
pub mod retry;

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::Value;
use tokio::time::Instant;

pub use config::Env;
use config::Settings;
use diagnose::{Cause, Finding, Signal};
pub use exit::ExitCode;
use report::{Conclusion, Report};
use track::{Ended, Tracker};
use workload::deployment::{self as dep, Expectations, Plan};

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit_code: i32,
    pub report: Report,
}

/// The environment of this process as an [`Env`] (non-UTF-8 values dropped).
pub fn process_env() -> Env {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// A failure that ends the run before anything changed (or at the patch).
pub(crate) struct Stop {
    pub(crate) code: ExitCode,
    pub(crate) message: String,
}

pub(crate) fn stop(code: ExitCode, message: impl Into<String>) -> Stop {
    Stop {
        code,
        message: message.into(),
    }
}

/// Map a Kubernetes client error while doing `doing` to an exit code.
pub(crate) fn cluster_error(e: &kube::Error, doing: &str) -> Stop {
    match e {
        kube::Error::Api(s) if s.code == 401 => stop(
            ExitCode::ClusterConfig,
            format!(
                "{doing}: the cluster rejected our credentials (401 Unauthorized): check the kubeconfig's user/token"
            ),
        ),
        kube::Error::Api(s) if s.code == 403 => stop(
            ExitCode::ClusterConfig,
            format!("{doing}: permission denied: {}", s.message),
        ),
        kube::Error::Api(s) => stop(
            ExitCode::ClusterConfig,
            format!("{doing}: {} ({})", s.message, s.code),
        ),
        other => stop(
            ExitCode::ClusterConfig,
            // Issue #8: the whole source chain (names a TLS/certificate failure).
            format!(
                "{doing}: cannot reach the cluster: {}",
                retry::error_chain(other)
            ),
        ),
    }
}

/// Inputs worth recording (never secrets).
fn recorded_inputs(env: &Env) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in env {
        let name = k
            .strip_prefix("INPUT_")
            .or_else(|| k.strip_prefix("ROLLGUARD_"))
            .map(|n| n.to_ascii_lowercase().replace('_', "-"));
        if let Some(name) = name
            && let Some(spec) = config::INPUTS.iter().find(|i| i.name == name)
            && !spec.secret
            && !v.is_empty()
        {
            // A kubeconfig given inline (YAML or base64) holds credentials: record only paths.
            let value = if name == "kubeconfig" && !std::path::Path::new(v).is_file() {
                "(inline)".to_string()
            } else {
                v.clone()
            };
            out.insert(name, value);
        }
    }
    out
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Run rollguard with this environment; the human summary and progress
/// lines go to `out`, logs to tracing. Never panics on cluster data.
pub async fn run(env: &Env, out: &mut (dyn Write + Send)) -> Outcome {
    kube_client::install_crypto_provider();
    let mut report = Report::new(now_rfc3339());
    report.inputs = recorded_inputs(env);
    let settings = match config::from_env(env) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(out, "rollguard: {e}");
            tracing::error!("{e}");
            report.headline = format!("invalid input: {e}");
            // No secret input could be read: the outputs, summary and
            // annotation still say `invalid`; no comment or Slack post.
            let sinks = report::publish::SinkConfig::default();
            return finish(
                report,
                ExitCode::BadInput,
                Conclusion::Invalid,
                None,
                Some(&sinks),
                env,
                out,
            )
            .await;
        }
    };
    let sinks = report::publish::SinkConfig::from_settings(&settings);
    // Masks first, before anything could echo a secret (GitHub only).
    let _ = write!(out, "{}", report::publish::start(&sinks, env));
    for u in &settings.unknown {
        tracing::warn!("ignoring unknown input {u}");
    }
    report.workload = settings
        .workloads
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    report.version_label = Some(settings.version_label.clone());
    let report_file = settings.report_file.clone();
    let _ = write!(out, "{}", report::publish::group_start(env, GROUP));
    // One Deployment: the classic pipeline below. Other kinds and groups:
    // the per-workload pipeline of `orchestrate` (all-or-nothing).
    let deployed =
        if settings.workloads.len() == 1 && settings.workload.kind == workload::Kind::Deployment {
            deploy(&settings, &mut report, out).await
        } else {
            orchestrate::deploy_group(&settings, &mut report, out).await
        };
    let _ = write!(out, "{}", report::publish::group_end(env, GROUP));
    let code = match deployed {
        Ok(code) => code,
        Err(s) => {
            let _ = writeln!(out, "rollguard: {}", s.message);
            tracing::error!("{}", s.message);
            report.headline = s.message;
            report.result = Conclusion::Invalid;
            s.code
        }
    };
    let result = report.result;
    finish(report, code, result, report_file, Some(&sinks), env, out).await
}

/// The CI log group (GitHub) / collapsible section (GitLab) around the
/// rollout's progress lines.
const GROUP: &str = "rollguard-rollout";

/// Publish the report to every sink; no sink changes the outcome.
async fn finish(
    mut report: Report,
    code: ExitCode,
    result: Conclusion,
    report_file: Option<String>,
    sinks: Option<&report::publish::SinkConfig>,
    env: &Env,
    out: &mut (dyn Write + Send),
) -> Outcome {
    lock::flush().await; // Issue #8: the deploy lock's release finishes before we exit.
    report.exit_code = code.code();
    report.result = result;
    report.finished_at = now_rfc3339();
    let mut console = report::console::Console { out };
    let mut json = report_file.map(|path| report::json::JsonFile { path });
    match &mut json {
        Some(j) => report::publish(&report, &mut [&mut console, j]),
        None => report::publish(&report, &mut [&mut console]),
    }
    if let Some(sinks) = sinks {
        let published = report::publish::publish_with(&report, sinks, env, None).await;
        let _ = write!(out, "{}", published.stdout);
        let _ = out.flush();
        for w in published.warnings {
            tracing::warn!("{w}");
        }
    }
    Outcome {
        exit_code: code.code(),
        report,
    }
}

/// The permissions rollguard needs, as (verb, group, resource).
const NEEDED: &[(&str, &str, &str)] = &[
    ("get", "apps", "deployments"),
    ("patch", "apps", "deployments"),
    ("list", "apps", "replicasets"),
    ("watch", "apps", "replicasets"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("list", "", "events"),
    ("watch", "", "events"),
];

async fn check_permissions(client: &Client, ns: &str, name: &str) -> Result<(), Stop> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for (verb, group, resource) in NEEDED {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_string()),
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    name: (*resource == "deployments").then(|| name.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| cluster_error(&e, "checking permissions (SelfSubjectAccessReview)"))?;
        if !answer.status.is_some_and(|s| s.allowed) {
            let g = if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            };
            missing.push(format!("{verb} {resource}{g}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(stop(
            ExitCode::ClusterConfig,
            format!(
                "missing permission in namespace {ns}: {} (grant them with a Role bound to this identity)",
                missing.join(", ")
            ),
        ))
    }
}

fn deployments_path(ns: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments")
}

pub(crate) async fn get_raw(client: &Client, ns: &str, name: &str) -> Result<Value, kube::Error> {
    let req = kube::core::Request::new(deployments_path(ns))
        .get(name, &Default::default())
        .map_err(kube::Error::BuildRequest)?;
    client.request::<Value>(req).await
}

#[allow(dead_code)] // Issue #8: our patches go through src/recovery.rs (re-checked on 409/422).
pub(crate) async fn json_patch_raw(
    client: &Client,
    ns: &str,
    name: &str,
    patch: &Value,
) -> Result<Value, kube::Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(kube::Error::SerdeError)?;
    let params = PatchParams {
        field_manager: Some("rollguard".into()),
        ..Default::default()
    };
    let req = kube::core::Request::new(deployments_path(ns))
        .patch(name, &params, &Patch::<()>::Json(patch))
        .map_err(kube::Error::BuildRequest)?;
    client.request::<Value>(req).await
}

/// `matchLabels` and `matchExpressions` as a label selector string.
pub(crate) fn selector_string(d: &Deployment) -> String {
    let Some(sel) = d.spec.as_ref().map(|s| &s.selector) else {
        return String::new();
    };
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The whole deploy after the inputs are valid. Returns the exit code; the
/// report is filled in as we go.
async fn deploy(
    settings: &Settings,
    report: &mut Report,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, Stop> {
    let (client, context_ns) =
        kube_client::connect(&settings.kubeconfig, settings.context.as_deref())
            .await
            .map_err(|e| stop(ExitCode::ClusterConfig, e.0))?;
    let ns = settings.namespace.clone().unwrap_or(context_ns);
    let name = settings.workload.name.clone();
    report.namespace = Some(ns.clone());

    // Pre-flight: nothing changes until all of this passed.
    check_permissions(&client, &ns, &name).await?;
    // Issue #8: take the deploy lock (released when `_lock` drops), then roll
    // back an interrupted run's orphaned change (src/lock.rs, src/recovery.rs).
    let _lock = if settings.dry_run {
        None
    } else {
        let kind = settings.workload.kind.as_str();
        let timeout = settings.rollback_timeout;
        let begun = lock::begin(
            &client,
            &ns,
            kind,
            &name,
            &settings.reliability,
            timeout,
            out,
        )
        .await
        .map_err(|(code, message)| stop(code, message))?;
        Some(begun.guard)
    };
    let raw = match get_raw(&client, &ns, &name).await {
        Ok(v) => v,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(stop(
                ExitCode::BadInput,
                format!(
                    "deployment/{name} not found in namespace {ns}: check the workload and namespace inputs"
                ),
            ));
        }
        Err(e) => return Err(cluster_error(&e, &format!("reading deployment/{name}"))),
    };
    let typed: Deployment = serde_json::from_value(raw.clone()).map_err(|e| {
        stop(
            ExitCode::ClusterConfig,
            format!("deployment/{name} could not be read: {e}"),
        )
    })?;
    let selector = selector_string(&typed);
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let replica_sets = rs_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| cluster_error(&e, "listing replica sets"))?
        .items
        .into_iter()
        .map(std::sync::Arc::new)
        .collect::<Vec<_>>();
    let now = now_rfc3339();
    let mut plan = dep::plan(
        &raw,
        &replica_sets,
        settings.container.as_deref(),
        &settings.change,
        settings.version.as_deref(),
        &settings.version_label,
        &settings.run_origin,
        &now,
    )
    .map_err(|e| stop(ExitCode::BadInput, e.0))?;
    report.container = Some(plan.container.clone());
    report.previous_image = Some(plan.old_image.clone());
    report.image = Some(plan.new_image.clone());
    report.version = Some(plan.version.clone());
    report.previous_template = Some(plan.previous_template.clone());
    report.patch = Some(plan.patch.clone());

    // Pre-flight checks of issue #9: the image exists, the new pods fit.
    let passed = match preflight::run(
        &client,
        &ns,
        &typed,
        &plan.container,
        &plan.new_image,
        &settings.preflight,
        out,
    )
    .await
    {
        Ok(p) => p,
        Err(finding) => {
            let message = format!("pre-flight: {}; nothing changed", finding.summary);
            report.cause = Some(finding.summary.clone());
            report.findings = vec![*finding];
            return Err(stop(ExitCode::BadInput, message));
        }
    };
    if let Some(pinned) = passed.pinned_image {
        // pin-digest: the same plan for `repo:tag@sha256:…` (the version still comes from the tag).
        plan = dep::plan(
            &raw,
            &replica_sets,
            Some(&plan.container),
            &config::ImageChange::Image(pinned),
            Some(&plan.version),
            &settings.version_label,
            &settings.run_origin,
            &now,
        )
        .map_err(|e| stop(ExitCode::BadInput, e.0))?;
        report.image = Some(plan.new_image.clone());
        report.patch = Some(plan.patch.clone());
    }

    if settings.dry_run {
        let _ = writeln!(
            out,
            "dry run: pre-flight passed; this JSON Patch would be sent to deployment/{name} in {ns}:"
        );
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&plan.patch).unwrap_or_default()
        );
        report.headline = format!(
            "dry run of deployment/{name}: {} → {} (nothing changed)",
            plan.old_image, plan.new_image
        );
        report.result = Conclusion::DryRun;
        return Ok(ExitCode::Success);
    }

    // Watch before patching so nothing is missed.
    let mut tracker = Tracker::start(&client, &ns, &name, &selector);
    let _ = writeln!(
        out,
        "rolling deployment/{name} in {ns}: container {} {} → {} (version {}={})",
        plan.container, plan.old_image, plan.new_image, settings.version_label, plan.version
    );
    let _ = out.flush();
    // Issue #8: the same patch marks the rollout in progress (for recovery
    // after a SIGKILL); a 409/422 is re-read and re-checked, never clobbered.
    let marker = recovery::Marker::new(
        &settings.reliability.identity,
        &now,
        &plan.new_image,
        &plan.old_image,
        &plan.previous_template,
    );
    recovery::mark(&mut plan.patch, &marker);
    cancel::set_target(&client, recovery::object_path(&ns, &name));
    cancel::set_phase(format!(
        "rolling out {} (previously {})",
        plan.new_image, plan.old_image
    ));
    let previous = plan.previous_template.clone();
    let patched = match recovery::patch_rechecked(
        &client,
        &ns,
        &name,
        &mut plan.patch,
        &previous,
        &marker,
    )
    .await
    {
        Ok(v) => v,
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => {
            return Err(stop(
                ExitCode::BadInput,
                format!(
                    "deployment/{name} changed between our read and our patch ({}); nothing changed: run again",
                    s.message
                ),
            ));
        }
        Err(e) => return Err(cluster_error(&e, &format!("patching deployment/{name}"))),
    };
    tracing::info!("patched deployment/{name} to {}", plan.new_image);
    tracker.set_new_version(&plan.container, &plan.new_image);
    // Issue #8: a SIGTERM/SIGINT (CI cancel) ends the tracking (src/cancel.rs).
    let cancel = cancel::current();
    let followed = tokio::select! {
        code = follow_and_settle(
            &client,
            &ns,
            &name,
            &patched,
            &plan,
            settings,
            &mut tracker,
            report,
            out,
        ) => Some(code),
        _ = cancel.cancelled() => None,
    };
    let code = match followed {
        Some(code) => code,
        None => {
            let why = cancel.reason().unwrap_or("a signal");
            let on_cancel = settings.reliability.on_cancel;
            let _ = writeln!(out, "{}", cancel::announce(why, on_cancel, &plan.old_image));
            cancel::set_phase(format!("rolling back to {} after a cancel", plan.old_image));
            let rolled = match on_cancel {
                cancel::OnCancel::Rollback => {
                    let mut within_grace = settings.clone();
                    within_grace.rollback_timeout =
                        within_grace.rollback_timeout.min(cancel::ROLLBACK_BUDGET);
                    Some(
                        roll_back(
                            &client,
                            &ns,
                            &name,
                            &patched,
                            &plan,
                            &within_grace,
                            &mut tracker,
                            out,
                        )
                        .await,
                    )
                }
                cancel::OnCancel::Leave => None,
            };
            Ok(cancel::conclude(
                why,
                &settings.workload.to_string(),
                &plan.new_image,
                &plan.old_image,
                rolled,
                report,
            ))
        }
    };
    // Issue #8: the run finished (whatever the outcome): clear the in-progress marker.
    recovery::clear(&client, &ns, &name, &marker).await;
    report.timeline = std::mem::take(&mut tracker.timeline);
    code
}

/// After our patch: follow the rollout (and the bake), then settle the
/// outcome: success, or diagnosis and rollback.
#[allow(clippy::too_many_arguments)]
async fn follow_and_settle(
    client: &Client,
    ns: &str,
    name: &str,
    patched: &Value,
    plan: &dep::Plan,
    settings: &Settings,
    tracker: &mut Tracker,
    report: &mut Report,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, Stop> {
    let patched_typed: Deployment = serde_json::from_value(patched.clone()).map_err(|e| {
        stop(
            ExitCode::RollbackFailed,
            format!("the patch response could not be read: {e}"),
        )
    })?;
    let exp = Expectations {
        deployment_uid: patched_typed.metadata.uid.clone().unwrap_or_default(),
        generation: patched_typed.metadata.generation.unwrap_or(0),
        template: patched
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null),
        baseline_progressing: patched_typed
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing").cloned()),
        restart_threshold: settings.restart_threshold,
        unschedulable_grace: settings.unschedulable_grace,
    };

    let deadline = Instant::now() + settings.timeout;
    let mut ended = track::follow_rollout(tracker, &exp, deadline, out).await;
    if let Ended::Succeeded(_) = &ended
        && !settings.bake.is_zero()
    {
        let _ = writeln!(
            out,
            "rollout complete; baking for {}",
            humantime::format_duration(settings.bake)
        );
        ended = track::follow_bake(tracker, &exp, settings.bake, out).await;
    }
    let snap = tracker.snapshot();
    report.revision = dep::new_replica_set(&snap, &exp)
        .and_then(|rs| rs.metadata.annotations.as_ref())
        .and_then(|a| a.get(dep::REVISION).cloned());

    let (progress, cause, signals, timed_out) = match ended {
        Ended::Succeeded(p) => {
            report.progress = Some(p);
            report.headline = format!(
                "deployment/{name} rolled out {} ({}={})",
                plan.new_image, settings.version_label, plan.version
            );
            report.result = Conclusion::Succeeded;
            return Ok(ExitCode::Success);
        }
        Ended::Failed {
            progress,
            cause,
            signals,
        } => (progress, cause, signals, false),
        Ended::TimedOut { progress, signals } => (progress, Cause::Timeout, signals, true),
    };
    report.progress = Some(progress.clone());
    report.findings = diagnose_failure(
        client, ns, &snap, &exp, plan, cause, &signals, &progress, timed_out,
    )
    .await;
    report.cause = report.findings.first().map(|f| f.summary.clone());
    let what = if timed_out {
        format!(
            "timed out after {}",
            humantime::format_duration(settings.timeout)
        )
    } else {
        "failed".into()
    };
    let _ = writeln!(
        out,
        "rollout of {} {what}: {}",
        plan.new_image,
        report.cause.as_deref().unwrap_or(cause.title())
    );

    if !settings.rollback {
        report.rollback = Some(report::Rollback {
            attempted: false,
            confirmed: false,
            detail: "rollback=false: the failed rollout was left in place".into(),
        });
        report.headline = format!(
            "deployment/{name}: rollout of {} {what} (left in place)",
            plan.new_image
        );
        report.result = Conclusion::Failed;
        return Ok(if timed_out {
            ExitCode::TimedOut
        } else {
            ExitCode::RolledBack
        });
    }

    let _ = writeln!(out, "rolling back deployment/{name} to {}", plan.old_image);
    let (confirmed, detail) =
        roll_back(client, ns, name, patched, plan, settings, tracker, out).await;
    report.rollback = Some(report::Rollback {
        attempted: true,
        confirmed,
        detail: detail.clone(),
    });
    if confirmed {
        report.headline = format!(
            "deployment/{name}: rollout of {} {what}; rolled back to {}",
            plan.new_image, plan.old_image
        );
        report.result = Conclusion::RolledBack;
        Ok(if timed_out {
            ExitCode::TimedOut
        } else {
            ExitCode::RolledBack
        })
    } else {
        report.headline = format!(
            "deployment/{name}: rollout of {} {what}, and the rollback was not confirmed",
            plan.new_image
        );
        report.result = Conclusion::Failed;
        Ok(ExitCode::RollbackFailed)
    }
}

/// Restore the exact pre-patch template; watch it become healthy.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn roll_back(
    client: &Client,
    ns: &str,
    name: &str,
    patched: &Value,
    plan: &Plan,
    settings: &Settings,
    tracker: &mut Tracker,
    out: &mut (dyn Write + Send),
) -> (bool, String) {
    let written_template = patched
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let written_annotations: BTreeMap<String, String> = patched
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let patch = dep::rollback_patch(
        &written_template,
        &written_annotations,
        &plan.previous_template,
        &plan.previous_annotations,
    );
    // Issue #8: a lost response of a landed rollback is re-checked, not failed.
    let response = match recovery::rollback_rechecked(
        client,
        ns,
        name,
        &patch,
        &plan.previous_template,
    )
    .await
    {
        Ok(v) => v,
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => {
            return (
                false,
                format!(
                    "someone else changed the pod template of deployment/{name} after our patch; not overwriting their change ({})",
                    s.message
                ),
            );
        }
        Err(e) => return (false, format!("the rollback patch failed: {e}")),
    };
    let generation = response
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let deadline = Instant::now() + settings.rollback_timeout;
    let (confirmed, detail) = track::follow_rollback(tracker, generation, deadline, out).await;
    let detail = if confirmed {
        format!("{} is serving again ({detail})", plan.old_image)
    } else {
        format!(
            "restored the previous template ({}), but it was not healthy within {}: {detail}",
            plan.old_image,
            humantime::format_duration(settings.rollback_timeout)
        )
    };
    (confirmed, detail)
}

/// Findings for a failed rollout, with the previous log tail of crashed containers.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn diagnose_failure(
    client: &Client,
    ns: &str,
    snap: &dep::Snapshot,
    exp: &Expectations,
    plan: &Plan,
    cause: Cause,
    signals: &[Signal],
    progress: &dep::Progress,
    timed_out: bool,
) -> Vec<Finding> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut logs = BTreeMap::new();
    let mut fetched = std::collections::BTreeSet::new();
    for s in signals
        .iter()
        .filter(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
    {
        let Some(c) = &s.container else { continue };
        if !fetched.insert(c.clone()) {
            continue;
        }
        let params = LogParams {
            container: Some(c.clone()),
            previous: true,
            tail_lines: Some(20),
            ..Default::default()
        };
        match pods.logs(&s.pod, &params).await {
            Ok(text) => {
                logs.insert(
                    (s.pod.clone(), c.clone()),
                    text.lines().map(str::to_string).collect(),
                );
            }
            Err(e) => tracing::warn!("could not read the previous logs of {}/{c}: {e}", s.pod),
        }
    }
    let (total, _) = dep::new_pod_signals(snap, exp);
    let template = serde_json::from_value(exp.template.clone()).ok();
    let cluster = if signals.iter().any(|s| s.cause == Cause::Unschedulable) {
        diagnose_cluster(client, ns).await
    } else {
        diagnose::Cluster {
            namespace: ns.to_string(),
            ..Default::default()
        }
    };
    let mut findings = diagnose::diagnose(&diagnose::Inputs {
        signals,
        total_new_pods: total,
        template: template.as_ref(),
        image: &plan.new_image,
        logs: &logs,
        cluster: &cluster,
    });
    if timed_out || cause == Cause::ProgressDeadline {
        let deadline = signals
            .iter()
            .find(|s| s.cause == Cause::ProgressDeadline)
            .map(|s| s.message.clone());
        findings.retain(|f| f.cause != Cause::ProgressDeadline);
        let primary = !findings.is_empty();
        findings.push(diagnose::deadline::finding(
            cause,
            if timed_out {
                "timed out"
            } else {
                "progress deadline exceeded"
            },
            progress,
            deadline.as_deref(),
            primary,
        ));
    }
    findings
}

/// Nodes and the pods bound to them, for the scheduling findings. Listing
/// nodes (cluster-scoped) or pods in all namespaces may be forbidden: then
/// the finding says so and keeps to the scheduler's message.
async fn diagnose_cluster(client: &Client, ns: &str) -> diagnose::Cluster {
    use k8s_openapi::api::core::v1::Node;
    let mut cluster = diagnose::Cluster {
        namespace: ns.to_string(),
        ..Default::default()
    };
    let why = |e: &kube::Error, what: &str| match e {
        kube::Error::Api(s) if s.code == 403 => {
            format!("node room unknown: listing {what} is forbidden for this identity")
        }
        other => format!("node room unknown: listing {what} failed: {other}"),
    };
    match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => cluster.nodes = Some(l.items),
        Err(e) => {
            cluster.unavailable = Some(why(&e, "nodes"));
            return cluster;
        }
    }
    match Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => cluster.pods = Some(l.items),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            match Api::<Pod>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
            {
                Ok(l) => {
                    cluster.pods = Some(l.items);
                    cluster.pods_namespace_only = true;
                }
                Err(e) => cluster.unavailable = Some(why(&e, "pods")),
            }
        }
        Err(e) => cluster.unavailable = Some(why(&e, "pods")),
    }
    cluster
}
