//! The per-workload pipeline for every kind, and the group.
//!
//! A run names one or more workloads. The classic single-Deployment run
//! keeps its own pipeline in `lib.rs` (`deploy`); everything else comes
//! here: each workload is a [`Unit`] that goes through the same phases —
//! `prepare` (read, plan; nothing changes), `apply` (the one patch, or the
//! new RC), `follow` (until success, a fail-fast cause or the deadline),
//! `roll_back`, and `commit` (the ReplicationController's last step:
//! deleting the old RC, deferred until the whole group succeeded).
//!
//! A group is all-or-nothing: every workload is rolled out concurrently;
//! when one fails, the others stop being followed and every workload is
//! rolled back. The exit code is the worst of the workloads' codes:
//! 3 (rollback failed) > 70 (timed out) > 1 (failed, rolled back) > 0.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::Settings;
use crate::diagnose::{self, Cause, Finding, Signal};
use crate::exit::ExitCode;
use crate::report::{self, Conclusion, Report, WorkloadReport};
use crate::track::{self, Ended, Judged, Tracker, Watch, WatchSnapshot};
use crate::workload::deployment::{self as dep, Expectations, Progress};
use crate::workload::replicationcontroller::{self as rc, Interrupted, RcPlan, Step};
use crate::workload::{self, Kind, Limits, WorkloadRef, daemonset as ds, statefulset as sts};
use crate::{Stop, cluster_error, stop};

// ------------------------------------------------------------ output

/// A line-buffered writer that prefixes each line with its workload, so
/// concurrent rollouts never interleave within a line.
struct Prefixed<'a> {
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
    prefix: String,
    buf: Vec<u8>,
}

impl Write for Prefixed<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
            sink.write_all(self.prefix.as_bytes())?;
            sink.write_all(&line)?;
            sink.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------ the cluster

fn collection_path(kind: Kind, ns: &str) -> String {
    match kind {
        Kind::ReplicationController => format!("/api/v1/namespaces/{ns}/replicationcontrollers"),
        k => format!("/apis/apps/v1/namespaces/{ns}/{}", k.resource()),
    }
}

async fn get_obj(client: &Client, kind: Kind, ns: &str, name: &str) -> Result<Value, kube::Error> {
    let req = kube::core::Request::new(collection_path(kind, ns))
        .get(name, &Default::default())
        .map_err(kube::Error::BuildRequest)?;
    client.request::<Value>(req).await
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some("rollguard".into()),
        ..Default::default()
    }
}

async fn json_patch_obj(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    patch: &Value,
) -> Result<Value, kube::Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(kube::Error::SerdeError)?;
    let req = kube::core::Request::new(collection_path(kind, ns))
        .patch(name, &params(), &Patch::<()>::Json(patch))
        .map_err(kube::Error::BuildRequest)?;
    client.request::<Value>(req).await
}

async fn merge_patch_obj(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    patch: &Value,
) -> Result<Value, kube::Error> {
    let req = kube::core::Request::new(collection_path(kind, ns))
        .patch(name, &params(), &Patch::Merge(patch))
        .map_err(kube::Error::BuildRequest)?;
    client.request::<Value>(req).await
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// SelfSubjectAccessReview of every permission `kind` needs.
async fn check_permissions(client: &Client, ns: &str, w: &WorkloadRef) -> Result<(), Stop> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for (verb, group, resource) in w.kind.needed_permissions() {
        let named = *resource == w.kind.resource() && matches!(*verb, "get" | "patch");
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_string()),
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    name: named.then(|| w.name.clone()),
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
                "missing permission in namespace {ns} for {w}: {} (grant them with a Role bound to this identity)",
                missing.join(", ")
            ),
        ))
    }
}

fn not_found(w: &WorkloadRef, ns: &str) -> Stop {
    stop(
        ExitCode::BadInput,
        format!("{w} not found in namespace {ns}: check the workload and namespace inputs"),
    )
}

fn match_labels_selector(raw: &Value) -> String {
    raw.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The previous log tail of crashed containers, for the diagnosis.
async fn crash_logs(
    client: &Client,
    ns: &str,
    signals: &[Signal],
) -> BTreeMap<(String, String), Vec<String>> {
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
    logs
}

/// Findings from signals of pods outside a Deployment.
#[allow(clippy::too_many_arguments)]
async fn pod_findings(
    client: &Client,
    ns: &str,
    template: &Value,
    new_image: &str,
    total: usize,
    cause: Cause,
    signals: &[Signal],
    progress: &Progress,
) -> Vec<Finding> {
    let logs = crash_logs(client, ns, signals).await;
    let template = serde_json::from_value(template.clone()).ok();
    let mut findings = diagnose::findings(signals, total, template.as_ref(), new_image, &logs);
    if findings.is_empty() || cause == Cause::Timeout {
        let evidence = format!(
            "desired {}  current {}  up-to-date {}  available {}  (new {}/{} ready){}",
            progress.desired,
            progress.current,
            progress.up_to_date,
            progress.available,
            progress.new_ready,
            progress.desired,
            if progress.waiting_for.is_empty() {
                String::new()
            } else {
                format!("; waiting for {}", progress.waiting_for)
            }
        );
        let primary = !findings.is_empty();
        findings.push(Finding {
            cause,
            summary: if primary {
                format!("{} ({evidence})", cause.title())
            } else {
                format!("{}: no pod-level cause found; {evidence}", cause.title())
            },
            container: None,
            pods: format!("{}/{} new pods ready", progress.new_ready, progress.desired),
            evidence: vec![evidence],
            per_pod: Vec::new(),
            logs: Vec::new(),
            fix: "Look at the workload's events (kubectl describe); raise the timeout if the rollout is only slow.".into(),
        });
    }
    findings
}

// ------------------------------------------------------------ units

/// What the pipeline shares.
pub(crate) struct Ctx<'a> {
    client: Client,
    ns: String,
    settings: &'a Settings,
    limits: Limits,
}

/// A Deployment in a group (the single-Deployment run uses `lib.rs`).
struct DepUnit {
    raw: Value,
    plan: dep::Plan,
    selector: String,
    tracker: Option<Tracker>,
    patched: Option<Value>,
    exp: Option<Expectations>,
}

/// A StatefulSet or DaemonSet: one patch of the pod template.
struct TplUnit {
    raw: Value,
    plan: dep::Plan,
    watch: Option<Watch>,
    patched: Option<Value>,
    generation: i64,
    /// The StatefulSet's update revision of our patch (the bad one on failure).
    revision: Option<String>,
}

/// A ReplicationController rolling update.
struct RcUnit {
    old: Value,
    plan: RcPlan,
    interrupted: Interrupted,
    watch: Option<Watch>,
    /// The old RC's selector once it tells it apart.
    old_selector: BTreeMap<String, String>,
    new_selector: BTreeMap<String, String>,
    /// The last replicas we set (we are the only writer during the update).
    set_old: Option<i32>,
    set_new: Option<i32>,
}

enum State {
    Deployment(Box<DepUnit>),
    Template(Box<TplUnit>),
    Rc(Box<RcUnit>),
}

/// One workload's pipeline.
pub(crate) struct Unit {
    wref: WorkloadRef,
    rep: WorkloadReport,
    state: State,
    /// How following ended (None when stopped because another workload failed).
    ended: Option<Ended>,
    applied: bool,
}

fn rc_labels(v: &Value, p: &str) -> BTreeMap<String, String> {
    v.pointer(p)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn matches_selector(pod: &Pod, selector: &BTreeMap<String, String>) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    pod.metadata.deletion_timestamp.is_none()
        && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Unit {
    /// Read and plan; nothing changes.
    async fn prepare(
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        out: &mut (dyn Write + Send),
    ) -> Result<Unit, Stop> {
        let s = ctx.settings;
        let now = crate::now_rfc3339();
        check_permissions(&ctx.client, &ctx.ns, w).await?;
        let mut rep = WorkloadReport::new(w.to_string());
        let state = match w.kind {
            Kind::Deployment => {
                let raw = match crate::get_raw(&ctx.client, &ctx.ns, &w.name).await {
                    Ok(v) => v,
                    Err(e) if is_status(&e, 404) => return Err(not_found(w, &ctx.ns)),
                    Err(e) => return Err(cluster_error(&e, &format!("reading {w}"))),
                };
                let typed: Deployment = serde_json::from_value(raw.clone()).map_err(|e| {
                    stop(
                        ExitCode::ClusterConfig,
                        format!("{w} could not be read: {e}"),
                    )
                })?;
                let selector = crate::selector_string(&typed);
                let replica_sets = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ctx.ns)
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| cluster_error(&e, "listing replica sets"))?
                    .items
                    .into_iter()
                    .map(Arc::new)
                    .collect::<Vec<_>>();
                let mut plan = dep::plan(
                    &raw,
                    &replica_sets,
                    s.container.as_deref(),
                    &s.change,
                    s.version.as_deref(),
                    &s.version_label,
                    &s.run_origin,
                    &now,
                )
                .map_err(|e| stop(ExitCode::BadInput, e.0))?;
                let passed = crate::preflight::run(
                    &ctx.client,
                    &ctx.ns,
                    &typed,
                    &plan.container,
                    &plan.new_image,
                    &s.preflight,
                    out,
                )
                .await
                .map_err(|f| {
                    stop(
                        ExitCode::BadInput,
                        format!("pre-flight of {w}: {}; nothing changed", f.summary),
                    )
                })?;
                if let Some(pinned) = passed.pinned_image {
                    plan = dep::plan(
                        &raw,
                        &replica_sets,
                        Some(&plan.container),
                        &crate::config::ImageChange::Image(pinned),
                        Some(&plan.version),
                        &s.version_label,
                        &s.run_origin,
                        &now,
                    )
                    .map_err(|e| stop(ExitCode::BadInput, e.0))?;
                }
                rep.container = Some(plan.container.clone());
                rep.previous_image = Some(plan.old_image.clone());
                rep.image = Some(plan.new_image.clone());
                rep.version = Some(plan.version.clone());
                rep.previous_template = Some(plan.previous_template.clone());
                rep.patch = Some(plan.patch.clone());
                State::Deployment(Box::new(DepUnit {
                    raw,
                    plan,
                    selector,
                    tracker: None,
                    patched: None,
                    exp: None,
                }))
            }
            Kind::StatefulSet | Kind::DaemonSet => {
                let raw = match get_obj(&ctx.client, w.kind, &ctx.ns, &w.name).await {
                    Ok(v) => v,
                    Err(e) if is_status(&e, 404) => return Err(not_found(w, &ctx.ns)),
                    Err(e) => return Err(cluster_error(&e, &format!("reading {w}"))),
                };
                let planner = if w.kind == Kind::StatefulSet {
                    sts::plan
                } else {
                    ds::plan
                };
                let plan = planner(
                    &raw,
                    s.container.as_deref(),
                    &s.change,
                    s.version.as_deref(),
                    &s.version_label,
                    &s.run_origin,
                    &now,
                )
                .map_err(|e| stop(ExitCode::BadInput, e.0))?;
                rep.container = Some(plan.container.clone());
                rep.previous_image = Some(plan.old_image.clone());
                rep.image = Some(plan.new_image.clone());
                rep.version = Some(plan.version.clone());
                rep.previous_template = Some(plan.previous_template.clone());
                rep.patch = Some(plan.patch.clone());
                State::Template(Box::new(TplUnit {
                    raw,
                    plan,
                    watch: None,
                    patched: None,
                    generation: 0,
                    revision: None,
                }))
            }
            Kind::ReplicationController => {
                let mut old = find_rc(ctx, w).await?;
                // An interrupted update reduced the old RC: plan with its original replicas.
                if let Some(r) = old
                    .pointer(&format!(
                        "/metadata/annotations/{}",
                        dep::pointer_segment(rc::ORIGINAL_REPLICAS)
                    ))
                    .and_then(Value::as_str)
                    .and_then(|r| r.parse::<i64>().ok())
                {
                    old["spec"]["replicas"] = json!(r);
                }
                let plan = rc::plan(
                    &old,
                    s.container.as_deref(),
                    &s.change,
                    s.version.as_deref(),
                    &s.version_label,
                    &s.run_origin,
                    &now,
                )
                .map_err(|e| stop(ExitCode::BadInput, e.0))?;
                let to = old
                    .pointer(&format!(
                        "/metadata/annotations/{}",
                        dep::pointer_segment(rc::ROLLING_UPDATE_TO)
                    ))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let named_new = match &to {
                    Some(n) => {
                        match get_obj(&ctx.client, Kind::ReplicationController, &ctx.ns, n).await {
                            Ok(v) => Some(v),
                            Err(e) if is_status(&e, 404) => None,
                            Err(e) => {
                                return Err(cluster_error(
                                    &e,
                                    &format!("reading replicationcontroller/{n}"),
                                ));
                            }
                        }
                    }
                    None => None,
                };
                let interrupted = rc::interrupted(&old, named_new.as_ref(), &plan);
                if named_new.is_none()
                    && let Ok(existing) = get_obj(
                        &ctx.client,
                        Kind::ReplicationController,
                        &ctx.ns,
                        &plan.new_name,
                    )
                    .await
                    && !matches!(interrupted, Interrupted::Resume { .. })
                {
                    let from = existing
                        .pointer(&format!(
                            "/metadata/annotations/{}",
                            dep::pointer_segment(rc::ROLLING_UPDATE_FROM)
                        ))
                        .and_then(Value::as_str);
                    if from != Some(plan.old_name.as_str()) {
                        return Err(stop(
                            ExitCode::BadInput,
                            format!(
                                "replicationcontroller/{} already exists and is not ours: delete it or set another version",
                                plan.new_name
                            ),
                        ));
                    }
                }
                let mut old_selector = plan.old_selector.clone();
                if let Some((k, v)) = &plan.adopt {
                    old_selector.insert(k.clone(), v.clone());
                }
                let new_selector = rc_labels(&plan.new_rc, "/spec/selector");
                rep.container = Some(plan.container.clone());
                rep.previous_image = Some(plan.old_image.clone());
                rep.image = Some(plan.new_image.clone());
                rep.version = Some(plan.version.clone());
                rep.previous_template = Some(plan.previous_template.clone());
                rep.patch = Some(plan.new_rc.clone());
                State::Rc(Box::new(RcUnit {
                    old,
                    plan,
                    interrupted,
                    watch: None,
                    old_selector,
                    new_selector,
                    set_old: None,
                    set_new: None,
                }))
            }
        };
        Ok(Unit {
            wref: w.clone(),
            rep,
            state,
            ended: None,
            applied: false,
        })
    }

    /// What the dry run would do.
    fn dry_run_text(&self) -> String {
        match &self.state {
            State::Deployment(d) => format!(
                "this JSON Patch would be sent to {}:\n{}",
                self.wref,
                serde_json::to_string_pretty(&d.plan.patch).unwrap_or_default()
            ),
            State::Template(t) => format!(
                "this JSON Patch would be sent to {}:\n{}",
                self.wref,
                serde_json::to_string_pretty(&t.plan.patch).unwrap_or_default()
            ),
            State::Rc(r) => {
                let mut s = String::new();
                if let Some((k, v)) = &r.plan.adopt {
                    s.push_str(&format!(
                        "replicationcontroller/{} and its pods would get the label {k}={v} (selector and template)\n",
                        r.plan.old_name
                    ));
                }
                s.push_str(&format!(
                    "this ReplicationController would be created and scaled up to {} while {} is scaled down:\n{}",
                    r.plan.replicas,
                    r.plan.old_name,
                    serde_json::to_string_pretty(&r.plan.new_rc).unwrap_or_default()
                ));
                s
            }
        }
    }

    /// Make the change (the patch, or the new RC). Watches start first.
    async fn apply(&mut self, ctx: &Ctx<'_>, out: &mut (dyn Write + Send)) -> Result<(), Stop> {
        let w = self.wref.clone();
        let s = ctx.settings;
        match &mut self.state {
            State::Deployment(d) => {
                let mut tracker = Tracker::start(&ctx.client, &ctx.ns, &w.name, &d.selector);
                let _ = writeln!(
                    out,
                    "rolling {w} in {}: container {} {} → {} (version {}={})",
                    ctx.ns,
                    d.plan.container,
                    d.plan.old_image,
                    d.plan.new_image,
                    s.version_label,
                    d.plan.version
                );
                refresh_resource_version(ctx, &w, &d.raw, &mut d.plan.patch).await?;
                let patched = match crate::json_patch_raw(
                    &ctx.client,
                    &ctx.ns,
                    &w.name,
                    &d.plan.patch,
                )
                .await
                {
                    Ok(v) => v,
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => {
                        return Err(stop(
                            ExitCode::BadInput,
                            format!(
                                "{w} changed between our read and our patch ({}); nothing changed: run again",
                                e.message
                            ),
                        ));
                    }
                    Err(e) => return Err(cluster_error(&e, &format!("patching {w}"))),
                };
                tracker.set_new_version(&d.plan.container, &d.plan.new_image);
                let typed: Deployment = serde_json::from_value(patched.clone()).map_err(|e| {
                    stop(
                        ExitCode::RollbackFailed,
                        format!("the patch response could not be read: {e}"),
                    )
                })?;
                d.exp = Some(Expectations {
                    deployment_uid: typed.metadata.uid.clone().unwrap_or_default(),
                    generation: typed.metadata.generation.unwrap_or(0),
                    template: patched
                        .pointer("/spec/template")
                        .cloned()
                        .unwrap_or(Value::Null),
                    baseline_progressing: typed
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing").cloned()),
                    restart_threshold: s.restart_threshold,
                    unschedulable_grace: s.unschedulable_grace,
                });
                d.tracker = Some(tracker);
                d.patched = Some(patched);
            }
            State::Template(t) => {
                let selector = match_labels_selector(&t.raw);
                t.watch = Some(if w.kind == Kind::StatefulSet {
                    Watch::start::<StatefulSet>(&ctx.client, &ctx.ns, Some(&w.name), &selector)
                } else {
                    Watch::start::<DaemonSet>(&ctx.client, &ctx.ns, Some(&w.name), &selector)
                });
                let _ = writeln!(
                    out,
                    "rolling {w} in {}: container {} {} → {} (version {}={})",
                    ctx.ns,
                    t.plan.container,
                    t.plan.old_image,
                    t.plan.new_image,
                    s.version_label,
                    t.plan.version
                );
                refresh_resource_version(ctx, &w, &t.raw, &mut t.plan.patch).await?;
                let patched = match json_patch_obj(
                    &ctx.client,
                    w.kind,
                    &ctx.ns,
                    &w.name,
                    &t.plan.patch,
                )
                .await
                {
                    Ok(v) => v,
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => {
                        return Err(stop(
                            ExitCode::BadInput,
                            format!(
                                "{w} changed between our read and our patch ({}); nothing changed: run again",
                                e.message
                            ),
                        ));
                    }
                    Err(e) => return Err(cluster_error(&e, &format!("patching {w}"))),
                };
                t.generation = patched
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                t.patched = Some(patched);
            }
            State::Rc(r) => {
                let shared = r.plan.shared_selector(&s.version_label);
                r.watch = Some(Watch::start::<ReplicationController>(
                    &ctx.client,
                    &ctx.ns,
                    None,
                    &shared,
                ));
                apply_rc(ctx, r, &mut self.rep, out).await?;
            }
        }
        self.applied = true;
        Ok(())
    }

    /// Follow until success, a fail-fast cause, or the deadline.
    async fn follow(
        &mut self,
        ctx: &Ctx<'_>,
        deadline: Instant,
        out: &mut (dyn Write + Send),
    ) -> Ended {
        let s = ctx.settings;
        let name = self.wref.name.clone();
        match &mut self.state {
            State::Deployment(d) => {
                let (Some(tracker), Some(exp)) = (d.tracker.as_mut(), d.exp.as_ref()) else {
                    return Ended::TimedOut {
                        progress: Progress::default(),
                        signals: Vec::new(),
                    };
                };
                let mut ended = track::follow_rollout(tracker, exp, deadline, out).await;
                if let Ended::Succeeded(_) = &ended
                    && !s.bake.is_zero()
                {
                    let _ = writeln!(
                        out,
                        "rollout complete; baking for {}",
                        humantime::format_duration(s.bake)
                    );
                    ended = track::follow_bake(tracker, exp, s.bake, out).await;
                }
                let snap = tracker.snapshot();
                self.rep.revision = dep::new_replica_set(&snap, exp)
                    .and_then(|rs| rs.metadata.annotations.as_ref())
                    .and_then(|a| a.get(dep::REVISION).cloned());
                ended
            }
            State::Template(t) => {
                let Some(watch) = t.watch.as_mut() else {
                    return Ended::TimedOut {
                        progress: Progress::default(),
                        signals: Vec::new(),
                    };
                };
                let generation = t.generation;
                let is_sts = self.wref.kind == Kind::StatefulSet;
                let judge = |snap: &WatchSnapshot| judge_template(snap, &name, generation, is_sts);
                let ended =
                    track::follow_pods(watch, &ctx.limits, deadline, s.bake, out, judge).await;
                if is_sts {
                    let snap = watch.snapshot();
                    t.revision = snap
                        .object(&name)
                        .and_then(|o| sts::update_revision(o, generation));
                    self.rep.revision = t.revision.clone();
                }
                ended
            }
            State::Rc(r) => follow_rc(ctx, r, &mut self.rep, deadline, out).await,
        }
    }

    /// Findings for a failure of this unit.
    async fn diagnose(
        &mut self,
        ctx: &Ctx<'_>,
        cause: Cause,
        signals: &[Signal],
        progress: &Progress,
        timed_out: bool,
    ) -> Vec<Finding> {
        match &mut self.state {
            State::Deployment(d) => {
                let (Some(tracker), Some(exp)) = (d.tracker.as_ref(), d.exp.as_ref()) else {
                    return Vec::new();
                };
                let snap = tracker.snapshot();
                crate::diagnose_failure(
                    &ctx.client,
                    &ctx.ns,
                    &snap,
                    exp,
                    &d.plan,
                    cause,
                    signals,
                    progress,
                    timed_out,
                )
                .await
            }
            State::Template(t) => {
                let template = t
                    .patched
                    .as_ref()
                    .and_then(|p| p.pointer("/spec/template"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let total = progress.up_to_date.max(0) as usize;
                pod_findings(
                    &ctx.client,
                    &ctx.ns,
                    &template,
                    &t.plan.new_image,
                    total,
                    cause,
                    signals,
                    progress,
                )
                .await
            }
            State::Rc(r) => {
                let template = r
                    .plan
                    .new_rc
                    .pointer("/spec/template")
                    .cloned()
                    .unwrap_or(Value::Null);
                let total = r.set_new.unwrap_or(0).max(0) as usize;
                pod_findings(
                    &ctx.client,
                    &ctx.ns,
                    &template,
                    &r.plan.new_image,
                    total,
                    cause,
                    signals,
                    progress,
                )
                .await
            }
        }
    }

    /// Undo our change and watch the previous version become healthy.
    async fn roll_back(&mut self, ctx: &Ctx<'_>, out: &mut (dyn Write + Send)) -> (bool, String) {
        let s = ctx.settings;
        let w = self.wref.clone();
        match &mut self.state {
            State::Deployment(d) => {
                let (Some(tracker), Some(patched)) = (d.tracker.as_mut(), d.patched.as_ref())
                else {
                    return (true, "nothing was changed".into());
                };
                let _ = writeln!(out, "rolling back {w} to {}", d.plan.old_image);
                crate::roll_back(
                    &ctx.client,
                    &ctx.ns,
                    &w.name,
                    patched,
                    &d.plan,
                    s,
                    tracker,
                    out,
                )
                .await
            }
            State::Template(t) => {
                let _ = writeln!(out, "rolling back {w} to {}", t.plan.old_image);
                roll_back_template(ctx, &w, t, &mut self.rep.notes, out).await
            }
            State::Rc(r) => roll_back_rc(ctx, r, &mut self.rep.notes, out).await,
        }
    }

    /// After the whole group succeeded: the RC's last step.
    async fn commit(&mut self, ctx: &Ctx<'_>, out: &mut (dyn Write + Send)) -> Result<(), String> {
        let State::Rc(r) = &mut self.state else {
            return Ok(());
        };
        let _ = writeln!(
            out,
            "Update succeeded. Deleting old controller: {}",
            r.plan.old_name
        );
        let api: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
        match api
            .delete(&r.plan.old_name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                return Err(format!(
                    "could not delete the old controller {}: {e}",
                    r.plan.old_name
                ));
            }
        }
        let clear = json!({"metadata": {"annotations": {rc::ROLLING_UPDATE_FROM: null, rc::DESIRED_REPLICAS: null}}});
        if let Err(e) = merge_patch_obj(
            &ctx.client,
            Kind::ReplicationController,
            &ctx.ns,
            &r.plan.new_name,
            &clear,
        )
        .await
        {
            tracing::warn!(
                "could not clear the bookkeeping annotations of {}: {e}",
                r.plan.new_name
            );
        }
        self.rep.notes.push(format!(
            "deleted the old controller {}; the workload is now replicationcontroller/{} (a later run given {} finds it by its {} annotation)",
            r.plan.old_name, r.plan.new_name, r.plan.base, rc::BASE_NAME
        ));
        Ok(())
    }
}

/// In a group, time passes between a workload's read and its patch (the
/// other workloads' pre-flight): controllers' status writes move the
/// resourceVersion. Re-read just before patching; when the template,
/// selector and annotations are still the ones planned against, the plan
/// holds and only its `test` of the resourceVersion is updated. A real
/// change still makes the patch fail (nothing changed: run again).
async fn refresh_resource_version(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    planned: &Value,
    patch: &mut Value,
) -> Result<(), Stop> {
    let fresh = get_obj(&ctx.client, w.kind, &ctx.ns, &w.name)
        .await
        .map_err(|e| cluster_error(&e, &format!("reading {w}")))?;
    let same = [
        "/spec/template",
        "/spec/selector",
        "/metadata/annotations",
        "/metadata/uid",
    ]
    .iter()
    .all(|p| fresh.pointer(p) == planned.pointer(p));
    if same
        && let Some(op) = patch.get_mut(0)
        && op["path"] == "/metadata/resourceVersion"
    {
        op["value"] = fresh
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
    }
    Ok(())
}

/// The StatefulSet / DaemonSet judge input of one snapshot.
fn judge_template(snap: &WatchSnapshot, name: &str, generation: i64, is_sts: bool) -> Judged {
    let Some(obj) = snap.object(name) else {
        return Judged {
            progress: Progress::default(),
            waiting_for: Some("the workload to be seen".into()),
            new_pods: Vec::new(),
        };
    };
    let (waiting_for, new_pods) = if is_sts {
        let pods = sts::update_revision(obj, generation)
            .map(|r| sts::pods_of_revision(&snap.pods, &r))
            .unwrap_or_default();
        (sts::still_waiting_for(obj, generation), pods)
    } else {
        (
            ds::still_waiting_for(obj, generation),
            ds::pods_of_generation(&snap.pods, generation),
        )
    };
    let new_ready = new_pods.iter().filter(|p| dep::pod_is_ready(p)).count() as i32;
    let progress = if is_sts {
        sts::progress(obj, new_ready)
    } else {
        ds::progress(obj, new_ready)
    };
    Judged {
        progress,
        waiting_for,
        new_pods,
    }
}

async fn roll_back_template(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    t: &mut TplUnit,
    notes: &mut Vec<String>,
    out: &mut (dyn Write + Send),
) -> (bool, String) {
    let s = ctx.settings;
    let Some(patched) = &t.patched else {
        return (true, "nothing was changed".into());
    };
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
        &t.plan.previous_template,
        &t.plan.previous_annotations,
    );
    let response = match json_patch_obj(&ctx.client, w.kind, &ctx.ns, &w.name, &patch).await {
        Ok(v) => v,
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => {
            return (
                false,
                format!(
                    "someone else changed the pod template of {w} after our patch; not overwriting their change ({})",
                    e.message
                ),
            );
        }
        Err(e) => return (false, format!("the rollback patch failed: {e}")),
    };
    let generation = response
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let Some(watch) = t.watch.as_mut() else {
        return (false, "not watched".into());
    };
    let is_sts = w.kind == Kind::StatefulSet;
    let deadline = Instant::now() + s.rollback_timeout;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let mut deleted: Vec<String> = Vec::new();
    let mut last = String::new();
    loop {
        watch.next_change().await;
        let snap = watch.snapshot();
        let Some(obj) = snap.object(&w.name) else {
            if Instant::now() >= deadline {
                return (false, format!("{w} was not seen"));
            }
            continue;
        };
        // Forced rollback: the pods of the bad revision stuck in a crash or
        // pull failure are not replaced by an OrderedReady StatefulSet.
        let mut bad_left = 0;
        if is_sts && let Some(bad) = &t.revision {
            bad_left = sts::pods_of_revision(&snap.pods, bad).len();
            for pod in sts::stuck_pods(&snap.pods, bad) {
                if deleted.contains(&pod) {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "forced rollback: deleting pod {pod} (stuck on the bad revision {bad})"
                );
                match pods_api.delete(&pod, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => {
                        return (
                            false,
                            format!("forced rollback: could not delete the stuck pod {pod}: {e}"),
                        );
                    }
                }
                notes.push(format!(
                    "forced rollback: deleted pod {pod}, stuck on the bad revision {bad} (the StatefulSet controller does not replace it by itself)"
                ));
                deleted.push(pod);
            }
        }
        let waiting = if is_sts {
            sts::still_waiting_for(obj, generation)
        } else {
            ds::still_waiting_for(obj, generation)
        };
        let line = match &waiting {
            Some(w) => format!("{}  (rollback) waiting for {w}", w_name(obj)),
            None => format!("{}  (rollback) done", w_name(obj)),
        };
        if line != last {
            let _ = writeln!(out, "{line}");
            last = line;
        }
        match waiting {
            None if bad_left == 0 => {
                let forced = if deleted.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; forced rollback: deleted stuck pod(s) {}",
                        deleted.join(", ")
                    )
                };
                return (
                    true,
                    format!(
                        "{} is serving again (every pod updated and ready{forced})",
                        t.plan.old_image
                    ),
                );
            }
            Some(wait) if Instant::now() >= deadline => {
                return (
                    false,
                    format!(
                        "restored the previous template ({}), but it was not healthy within {}: still waiting for {wait}",
                        t.plan.old_image,
                        humantime::format_duration(s.rollback_timeout)
                    ),
                );
            }
            None if Instant::now() >= deadline => {
                return (
                    false,
                    format!("{bad_left} pod(s) of the bad revision remain"),
                );
            }
            _ => {}
        }
    }
}

fn w_name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

// ------------------------------------------------------------ ReplicationControllers

async fn find_rc(ctx: &Ctx<'_>, w: &WorkloadRef) -> Result<Value, Stop> {
    match get_obj(&ctx.client, Kind::ReplicationController, &ctx.ns, &w.name).await {
        Ok(v) => return Ok(v),
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(cluster_error(&e, &format!("reading {w}"))),
    }
    // After a successful update the RC is `<base>-<version>`: find it by its base name.
    let api: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|e| cluster_error(&e, "listing replication controllers"))?;
    let mut found: Vec<Value> = all
        .items
        .iter()
        .filter(|r| {
            let a = r.metadata.annotations.clone().unwrap_or_default();
            a.get(rc::BASE_NAME) == Some(&w.name) && !a.contains_key(rc::ROLLING_UPDATE_FROM)
        })
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    match found.len() {
        0 => Err(not_found(w, &ctx.ns)),
        1 => {
            let v = found.remove(0);
            // Re-read raw (the typed round trip may drop fields).
            let name = w_name(&v).to_string();
            get_obj(&ctx.client, Kind::ReplicationController, &ctx.ns, &name)
                .await
                .map_err(|e| cluster_error(&e, &format!("reading replicationcontroller/{name}")))
        }
        n => Err(stop(
            ExitCode::BadInput,
            format!(
                "{n} replication controllers carry {}={}: name the one to roll",
                rc::BASE_NAME,
                w.name
            ),
        )),
    }
}

/// Mark the old RC, tell it apart (label its pods), create the new RC —
/// or resume / undo what an interrupted run left.
async fn apply_rc(
    ctx: &Ctx<'_>,
    r: &mut RcUnit,
    rep: &mut WorkloadReport,
    out: &mut (dyn Write + Send),
) -> Result<(), Stop> {
    let ns = &ctx.ns;
    let client = &ctx.client;
    let old_name = r.plan.old_name.clone();
    let new_name = r.plan.new_name.clone();
    match r.interrupted.clone() {
        Interrupted::Resume { .. } => {
            let m = format!(
                "resuming the interrupted rolling update {old_name} → {new_name} (found its bookkeeping annotations)"
            );
            let _ = writeln!(out, "{m}");
            rep.notes.push(m);
            return Ok(());
        }
        Interrupted::RollBackFirst {
            new_name: other,
            original_replicas,
        } => {
            let m = format!(
                "a previous run was interrupted rolling {old_name} → {other}: rolling that back first ({old_name} back to {original_replicas} replicas, {other} deleted)"
            );
            let _ = writeln!(out, "{m}");
            rep.notes.push(m);
            let back = json!({"metadata": {"annotations": {rc::ROLLING_UPDATE_TO: null, rc::ORIGINAL_REPLICAS: null}},
                              "spec": {"replicas": original_replicas}});
            merge_patch_obj(client, Kind::ReplicationController, ns, &old_name, &back)
                .await
                .map_err(|e| {
                    cluster_error(&e, &format!("restoring replicationcontroller/{old_name}"))
                })?;
            let api: Api<ReplicationController> = Api::namespaced(client.clone(), ns);
            match api.delete(&other, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => {
                    return Err(cluster_error(
                        &e,
                        &format!("deleting replicationcontroller/{other}"),
                    ));
                }
            }
            r.old = get_obj(client, Kind::ReplicationController, ns, &old_name)
                .await
                .map_err(|e| {
                    cluster_error(&e, &format!("reading replicationcontroller/{old_name}"))
                })?;
        }
        Interrupted::No => {}
    }
    let _ = writeln!(
        out,
        "rolling replicationcontroller/{old_name} in {ns} to {new_name}: container {} {} → {} ({}={})",
        r.plan.container,
        r.plan.old_image,
        r.plan.new_image,
        ctx.settings.version_label,
        r.plan.version
    );
    let mark = rc::mark_old_patch(&r.old, &r.plan);
    match json_patch_obj(client, Kind::ReplicationController, ns, &old_name, &mark).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => {
            return Err(stop(
                ExitCode::BadInput,
                format!(
                    "replicationcontroller/{old_name} changed between our read and our patch ({}); nothing changed: run again",
                    e.message
                ),
            ));
        }
        Err(e) => {
            return Err(cluster_error(
                &e,
                &format!("patching replicationcontroller/{old_name}"),
            ));
        }
    }
    if let Some((k, v)) = r.plan.adopt.clone() {
        // Label the running pods, then narrow the selector: no pod is orphaned
        // and the Service (which selects the shared labels) keeps them all.
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let list = pods
            .list(&ListParams::default().labels(&selector_string(&r.plan.old_selector)))
            .await
            .map_err(|e| cluster_error(&e, "listing pods"))?;
        let mut n = 0;
        for p in list.items {
            let Some(pname) = p.metadata.name.clone() else {
                continue;
            };
            let has = p.metadata.labels.as_ref().and_then(|l| l.get(&k)) == Some(&v);
            if has || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match pods
                .patch(
                    &pname,
                    &params(),
                    &Patch::Merge(json!({"metadata": {"labels": {k.clone(): v.clone()}}})),
                )
                .await
            {
                Ok(_) => n += 1,
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(cluster_error(&e, &format!("labelling pod {pname}"))),
            }
        }
        if let Some(patch) = rc::adopt_selector_patch(&r.plan) {
            json_patch_obj(client, Kind::ReplicationController, ns, &old_name, &patch)
                .await
                .map_err(|e| {
                    cluster_error(
                        &e,
                        &format!("narrowing the selector of replicationcontroller/{old_name}"),
                    )
                })?;
        }
        let m = format!(
            "the selector of {old_name} did not tell it apart from the new RC: added {k}={v} to its selector and template and to its {n} pod(s)"
        );
        let _ = writeln!(out, "{m}");
        rep.notes.push(m);
    }
    let api: Api<ReplicationController> = Api::namespaced(client.clone(), ns);
    let new_rc: ReplicationController =
        serde_json::from_value(r.plan.new_rc.clone()).map_err(|e| {
            stop(
                ExitCode::BadInput,
                format!("internal: the new RC does not parse: {e}"),
            )
        })?;
    match api
        .create(
            &PostParams {
                field_manager: Some("rollguard".into()),
                ..Default::default()
            },
            &new_rc,
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => {
            let m = format!(
                "{new_name} already exists (left by an interrupted run of this update): resuming it"
            );
            let _ = writeln!(out, "{m}");
            rep.notes.push(m);
        }
        Err(e) => {
            return Err(cluster_error(
                &e,
                &format!("creating replicationcontroller/{new_name}"),
            ));
        }
    }
    let _ = writeln!(
        out,
        "Created {new_name}; scaling up {new_name} from 0 to {}, scaling down {old_name} from {} to 0 (keep {} pods ready, don't exceed {} pods)",
        r.plan.replicas,
        r.plan.replicas,
        r.plan.replicas - ctx.settings.max_unavailable.resolve(r.plan.replicas, false),
        r.plan.replicas + ctx.settings.max_surge.resolve(r.plan.replicas, true),
    );
    Ok(())
}

/// The scaling loop: one step at a time, each waiting (on the watches)
/// for the pods it needs; fail fast on the new RC's pods.
async fn follow_rc(
    ctx: &Ctx<'_>,
    r: &mut RcUnit,
    rep: &mut WorkloadReport,
    deadline: Instant,
    out: &mut (dyn Write + Send),
) -> Ended {
    let s = ctx.settings;
    let desired = r.plan.replicas;
    let mut surge = s.max_surge.resolve(desired, true);
    let unavailable = s.max_unavailable.resolve(desired, false).min(desired);
    if surge == 0 && unavailable == 0 {
        surge = 1;
    }
    let (old_name, new_name) = (r.plan.old_name.clone(), r.plan.new_name.clone());
    let Some(watch) = r.watch.as_mut() else {
        return Ended::TimedOut {
            progress: Progress::default(),
            signals: Vec::new(),
        };
    };
    let mut clocks = track::Clocks::default();
    let mut last_line = String::new();
    loop {
        watch.next_change().await;
        let snap = watch.snapshot();
        let old = snap.object(&old_name).cloned();
        let new = snap.object(&new_name).cloned();
        let new_pods: Vec<Arc<Pod>> = snap
            .pods
            .iter()
            .filter(|p| matches_selector(p, &r.new_selector))
            .cloned()
            .collect();
        let old_pods: Vec<&Arc<Pod>> = snap
            .pods
            .iter()
            .filter(|p| matches_selector(p, &r.old_selector))
            .collect();
        let signals = workload::signals_of(&new_pods, &snap.events);
        let timers = clocks.update(&signals, workload::restart_counts(&new_pods));
        let spec = |o: &Option<Value>| {
            o.as_ref()
                .and_then(|o| o.pointer("/spec/replicas"))
                .and_then(Value::as_i64)
                .unwrap_or(0) as i32
        };
        let counts = rc::Counts {
            desired,
            old_spec: r.set_old.unwrap_or_else(|| spec(&old)),
            new_spec: r.set_new.unwrap_or_else(|| spec(&new)),
            old_live: old_pods.len() as i32,
            old_ready: old_pods.iter().filter(|p| dep::pod_is_ready(p)).count() as i32,
            new_live: new_pods.len() as i32,
            new_ready: new_pods.iter().filter(|p| dep::pod_is_ready(p)).count() as i32,
        };
        let mut progress = Progress {
            name: new_name.clone(),
            desired,
            current: counts.old_live + counts.new_live,
            up_to_date: counts.new_live,
            available: counts.old_ready + counts.new_ready,
            new_ready: counts.new_ready,
            waiting_for: String::new(),
        };
        if let Some((cause, signals)) =
            workload::fail_fast(&signals, &ctx.limits, &timers.unschedulable_for)
        {
            return Ended::Failed {
                progress,
                cause,
                signals,
            };
        }
        let ready = watch.is_ready() && old.is_some() && new.is_some();
        if ready {
            let step = rc::next_step(&counts, surge, unavailable);
            let (kind_name, target) = match &step {
                Step::ScaleNew(n) => (Some((&new_name, "up")), *n),
                Step::ScaleOld(n) => (Some((&old_name, "down")), *n),
                _ => (None, 0),
            };
            if let Some((rc_name, dir)) = kind_name {
                let m = format!("Scaling {rc_name} {dir} to {target}");
                let _ = writeln!(out, "{m}");
                rep.notes.push(m);
                if let Err(e) = merge_patch_obj(
                    &ctx.client,
                    Kind::ReplicationController,
                    &ctx.ns,
                    rc_name,
                    &json!({"spec": {"replicas": target}}),
                )
                .await
                {
                    tracing::warn!("scaling {rc_name} failed (retrying): {e}");
                } else if matches!(step, Step::ScaleNew(_)) {
                    r.set_new = Some(target);
                } else {
                    r.set_old = Some(target);
                }
                continue;
            }
            match step {
                Step::Done if timers.recently_restarted.is_empty() => {
                    let line = progress.line();
                    if line != last_line {
                        let _ = writeln!(out, "{line}");
                    }
                    return Ended::Succeeded(progress);
                }
                Step::Wait(w) => progress.waiting_for = w,
                _ => progress.waiting_for = "the new pods to stay up after a restart".into(),
            }
            let mut line = progress.line();
            if !progress.waiting_for.is_empty() {
                line.push_str(&format!("  waiting for {}", progress.waiting_for));
            }
            if line != last_line {
                let _ = writeln!(out, "{line}");
                last_line = line;
            }
        }
        if Instant::now() >= deadline {
            return Ended::TimedOut { progress, signals };
        }
    }
}

/// Old RC back to its replicas, new RC deleted (its pods are collected).
async fn roll_back_rc(
    ctx: &Ctx<'_>,
    r: &mut RcUnit,
    notes: &mut Vec<String>,
    out: &mut (dyn Write + Send),
) -> (bool, String) {
    let (old_name, new_name, replicas) = (
        r.plan.old_name.clone(),
        r.plan.new_name.clone(),
        r.plan.replicas,
    );
    let _ = writeln!(
        out,
        "rolling back: {old_name} back to {replicas} replicas, deleting {new_name}"
    );
    let back = json!({"metadata": {"annotations": {rc::ROLLING_UPDATE_TO: null, rc::ORIGINAL_REPLICAS: null}},
                      "spec": {"replicas": replicas}});
    if let Err(e) = merge_patch_obj(
        &ctx.client,
        Kind::ReplicationController,
        &ctx.ns,
        &old_name,
        &back,
    )
    .await
    {
        return (
            false,
            format!("could not scale {old_name} back to {replicas}: {e}"),
        );
    }
    let api: Api<ReplicationController> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    match api.delete(&new_name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return (false, format!("could not delete {new_name}: {e}")),
    }
    notes.push(format!(
        "rollback: {old_name} scaled back to {replicas}; {new_name} deleted"
    ));
    let Some(watch) = r.watch.as_mut() else {
        return (false, "not watched".into());
    };
    let deadline = Instant::now() + ctx.settings.rollback_timeout;
    let mut last = String::new();
    loop {
        watch.next_change().await;
        let snap = watch.snapshot();
        let old_ready = snap
            .pods
            .iter()
            .filter(|p| matches_selector(p, &r.old_selector) && dep::pod_is_ready(p))
            .count() as i32;
        let new_left = snap
            .pods
            .iter()
            .filter(|p| matches_selector(p, &r.new_selector))
            .count();
        let line = format!(
            "{old_name}  desired {replicas}  ready {old_ready}  (rollback; {new_left} new pod(s) left)"
        );
        if line != last {
            let _ = writeln!(out, "{line}");
            last = line;
        }
        if old_ready >= replicas && new_left == 0 {
            return (
                true,
                format!(
                    "{} is serving again ({old_name}: {old_ready}/{replicas} ready; {new_name} deleted)",
                    r.plan.old_image
                ),
            );
        }
        if Instant::now() >= deadline {
            return (
                false,
                format!(
                    "{old_name} scaled back to {replicas} and {new_name} deleted, but only {old_ready}/{replicas} ready and {new_left} new pod(s) left within {}",
                    humantime::format_duration(ctx.settings.rollback_timeout)
                ),
            );
        }
    }
}

// ------------------------------------------------------------ the group

/// The worse of two exit codes: 3 > 70 > 1 > 0 (2 and 78 stop before
/// anything changes and never reach here).
fn worse(a: ExitCode, b: ExitCode) -> ExitCode {
    let rank = |c: ExitCode| match c {
        ExitCode::Success => 0,
        ExitCode::RolledBack => 1,
        ExitCode::TimedOut => 2,
        ExitCode::BadInput => 3,
        ExitCode::ClusterConfig => 4,
        ExitCode::RollbackFailed => 5,
    };
    if rank(b) > rank(a) { b } else { a }
}

async fn wait_abort(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Roll out every workload of the run together (all-or-nothing). Fills the
/// report: `report.workloads` per workload, and the top-level fields.
pub(crate) async fn deploy_group(
    settings: &Settings,
    report: &mut Report,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, Stop> {
    let (client, context_ns) =
        crate::kube_client::connect(&settings.kubeconfig, settings.context.as_deref())
            .await
            .map_err(|e| stop(ExitCode::ClusterConfig, e.0))?;
    let ns = settings.namespace.clone().unwrap_or(context_ns);
    report.namespace = Some(ns.clone());
    let ctx = Ctx {
        client,
        ns,
        settings,
        limits: Limits {
            restart_threshold: settings.restart_threshold,
            unschedulable_grace: settings.unschedulable_grace,
        },
    };
    let single = settings.workloads.len() == 1;

    // Pre-flight and plans: nothing changes until every workload passed.
    let mut units = Vec::new();
    for w in &settings.workloads {
        units.push(Unit::prepare(&ctx, w, out).await?);
    }
    if settings.dry_run {
        for u in &units {
            let _ = writeln!(out, "dry run: {}", u.dry_run_text());
        }
        for u in &mut units {
            u.rep.result = Conclusion::DryRun;
            u.rep.exit_code = 0;
            u.rep.headline = format!(
                "dry run of {}: {} → {} (nothing changed)",
                u.wref,
                u.rep.previous_image.as_deref().unwrap_or("?"),
                u.rep.image.as_deref().unwrap_or("?")
            );
        }
        summarise(report, units, single, ExitCode::Success, Conclusion::DryRun);
        return Ok(ExitCode::Success);
    }

    let sink: Mutex<&mut (dyn Write + Send)> = Mutex::new(out);
    let writer = |u: &Unit| Prefixed {
        sink: &sink,
        prefix: if single {
            String::new()
        } else {
            format!("[{}] ", u.wref)
        },
        buf: Vec::new(),
    };

    // Apply, one workload after the other; a failure undoes the earlier ones.
    let mut failed_apply: Option<Stop> = None;
    for unit in units.iter_mut() {
        let mut w = writer(unit);
        if let Err(e) = unit.apply(&ctx, &mut w).await {
            let _ = writeln!(w, "{}", e.message);
            unit.rep.headline = e.message.clone();
            unit.rep.result = Conclusion::Invalid;
            unit.rep.exit_code = e.code.code();
            failed_apply = Some(e);
            break;
        }
    }
    let deadline = Instant::now() + settings.timeout;
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
    if let Some(e) = &failed_apply {
        let _ = abort_tx.send(true);
        if units.iter().all(|u| !u.applied) {
            return Err(stop(e.code, e.message.clone()));
        }
    } else {
        // Follow every workload concurrently; the first failure stops the others.
        let abort_tx = &abort_tx;
        let ctx = &ctx;
        let follows = units.iter_mut().map(|u| {
            let rx = abort_rx.clone();
            let mut w = writer(u);
            async move {
                let ended = tokio::select! {
                    e = u.follow(ctx, deadline, &mut w) => Some(e),
                    _ = wait_abort(rx) => None,
                };
                if !matches!(ended, Some(Ended::Succeeded(_))) {
                    let _ = abort_tx.send(true);
                }
                u.ended = ended;
            }
        });
        futures::future::join_all(follows).await;
    }

    let all_ok = failed_apply.is_none()
        && units
            .iter()
            .all(|u| matches!(u.ended, Some(Ended::Succeeded(_))));
    if all_ok {
        let mut code = ExitCode::Success;
        for u in &mut units {
            let mut w = writer(u);
            if let Err(e) = u.commit(&ctx, &mut w).await {
                let _ = writeln!(w, "{e}");
                u.rep.notes.push(e);
            }
            if let Some(Ended::Succeeded(p)) = &u.ended {
                u.rep.progress = Some(p.clone());
            }
            u.rep.result = Conclusion::Succeeded;
            u.rep.exit_code = 0;
            u.rep.headline = format!(
                "{} rolled out {} ({}={})",
                u.wref,
                u.rep.image.as_deref().unwrap_or("?"),
                settings.version_label,
                u.rep.version.as_deref().unwrap_or("?")
            );
            code = worse(code, ExitCode::Success);
        }
        summarise(report, units, single, code, Conclusion::Succeeded);
        return Ok(code);
    }

    // Something failed: diagnose the failures, then roll every applied workload back.
    let culprits: Vec<String> = units
        .iter()
        .filter(|u| matches!(u.ended, Some(Ended::Failed { .. } | Ended::TimedOut { .. })))
        .map(|u| u.wref.to_string())
        .chain(failed_apply.as_ref().map(|_| "the apply step".to_string()))
        .collect();
    for u in &mut units {
        let Some(ended) = u.ended.clone() else {
            continue;
        };
        let (progress, cause, signals, timed_out) = match ended {
            Ended::Succeeded(p) => {
                u.rep.progress = Some(p);
                continue;
            }
            Ended::Failed {
                progress,
                cause,
                signals,
            } => (progress, cause, signals, false),
            Ended::TimedOut { progress, signals } => (progress, Cause::Timeout, signals, true),
        };
        u.rep.progress = Some(progress.clone());
        u.rep.findings = u
            .diagnose(&ctx, cause, &signals, &progress, timed_out)
            .await;
        u.rep.cause = u.rep.findings.first().map(|f| f.summary.clone());
        let what = if timed_out {
            format!(
                "timed out after {}",
                humantime::format_duration(settings.timeout)
            )
        } else {
            "failed".into()
        };
        let mut w = writer(u);
        let _ = writeln!(
            w,
            "rollout of {} {what}: {}",
            u.rep.image.as_deref().unwrap_or("?"),
            u.rep.cause.as_deref().unwrap_or(cause.title())
        );
        u.rep.exit_code = if timed_out {
            ExitCode::TimedOut.code()
        } else {
            ExitCode::RolledBack.code()
        };
        u.rep.headline = format!(
            "{}: rollout of {} {what}",
            u.wref,
            u.rep.image.as_deref().unwrap_or("?")
        );
    }
    let others = |me: &str| {
        culprits
            .iter()
            .filter(|c| c.as_str() != me)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !settings.rollback {
        for u in &mut units {
            u.rep.rollback = Some(report::Rollback {
                attempted: false,
                confirmed: false,
                detail: "rollback=false: left in place".into(),
            });
            if u.rep.exit_code == 0 || u.rep.result == Conclusion::Invalid && u.applied {
                u.rep.exit_code = ExitCode::RolledBack.code();
            }
            u.rep.result = Conclusion::Failed;
            if u.rep.headline.is_empty() {
                u.rep.headline = format!(
                    "{}: left in place ({} failed)",
                    u.wref,
                    others(&u.wref.to_string())
                );
            }
        }
    } else {
        let ctx = &ctx;
        let rollbacks = units.iter_mut().filter(|u| u.applied).map(|u| {
            let mut w = writer(u);
            async move {
                let (confirmed, detail) = u.roll_back(ctx, &mut w).await;
                (u, confirmed, detail)
            }
        });
        for (u, confirmed, detail) in futures::future::join_all(rollbacks).await {
            let me = u.wref.to_string();
            let own_failure = culprits.contains(&me);
            u.rep.rollback = Some(report::Rollback {
                attempted: true,
                confirmed,
                detail: detail.clone(),
            });
            let previous = u.rep.previous_image.clone().unwrap_or_default();
            if !own_failure {
                u.rep.headline = format!(
                    "{me}: rolled back to {previous} because {} failed (all-or-nothing)",
                    others(&me)
                );
                u.rep.exit_code = ExitCode::RolledBack.code();
            } else if confirmed {
                u.rep.headline = format!("{}; rolled back to {previous}", u.rep.headline);
            } else {
                u.rep.headline = format!("{}, and the rollback was not confirmed", u.rep.headline);
            }
            if confirmed {
                u.rep.result = Conclusion::RolledBack;
            } else {
                u.rep.result = Conclusion::Failed;
                u.rep.exit_code = ExitCode::RollbackFailed.code();
            }
        }
    }
    for u in &mut units {
        if !u.applied && u.rep.headline.is_empty() {
            u.rep.headline = format!(
                "{}: not changed ({} failed)",
                u.wref,
                others(&u.wref.to_string())
            );
            u.rep.result = Conclusion::RolledBack;
            u.rep.exit_code = ExitCode::RolledBack.code();
        }
    }
    let mut code = failed_apply
        .as_ref()
        .map(|e| e.code)
        .unwrap_or(ExitCode::RolledBack);
    if failed_apply.is_some() && code != ExitCode::RollbackFailed {
        // The apply failure itself changed nothing: the earlier workloads were rolled back.
        code = ExitCode::RolledBack;
    }
    for u in &units {
        let c = match u.rep.exit_code {
            0 => ExitCode::Success,
            1 => ExitCode::RolledBack,
            70 => ExitCode::TimedOut,
            3 => ExitCode::RollbackFailed,
            _ => ExitCode::RolledBack,
        };
        code = worse(code, c);
    }
    let result = if code == ExitCode::RollbackFailed || !settings.rollback {
        Conclusion::Failed
    } else {
        Conclusion::RolledBack
    };
    summarise(report, units, single, code, result);
    Ok(code)
}

/// Fill the top-level report from the workloads' reports.
fn summarise(
    report: &mut Report,
    units: Vec<Unit>,
    single: bool,
    code: ExitCode,
    result: Conclusion,
) {
    let reps: Vec<WorkloadReport> = units.into_iter().map(|u| u.rep).collect();
    report.result = result;
    if single && let Some(r) = reps.first() {
        report.headline = r.headline.clone();
        report.container = r.container.clone();
        report.previous_image = r.previous_image.clone();
        report.image = r.image.clone();
        report.version = r.version.clone();
        report.cause = r.cause.clone();
        report.findings = r.findings.clone();
        report.rollback = r.rollback.clone();
        report.progress = r.progress.clone();
        report.revision = r.revision.clone();
        report.patch = r.patch.clone();
        report.previous_template = r.previous_template.clone();
    } else {
        let word = match code {
            ExitCode::Success => "rolled out",
            ExitCode::RollbackFailed => "failed, and a rollback was not confirmed",
            _ if result == Conclusion::DryRun => "dry run",
            _ => "failed; all rolled back",
        };
        let failed: Vec<&WorkloadReport> = reps.iter().filter(|r| !r.findings.is_empty()).collect();
        report.headline = format!(
            "{} workloads {word}{}",
            reps.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    failed
                        .iter()
                        .map(|r| r.headline.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
        let same = |f: fn(&WorkloadReport) -> Option<String>| {
            let vals: Vec<Option<String>> = reps.iter().map(f).collect();
            if vals.windows(2).all(|w| w[0] == w[1]) {
                vals.into_iter().next().flatten()
            } else {
                None
            }
        };
        report.image = same(|r| r.image.clone());
        report.version = same(|r| r.version.clone());
        report.container = same(|r| r.container.clone());
        report.previous_image = same(|r| r.previous_image.clone());
        report.findings = failed
            .iter()
            .flat_map(|r| {
                r.findings.iter().map(|f| {
                    let mut f = f.clone();
                    f.summary = format!("{}: {}", r.workload, f.summary);
                    f
                })
            })
            .collect();
        report.cause = report.findings.first().map(|f| f.summary.clone());
        let attempted: Vec<&report::Rollback> =
            reps.iter().filter_map(|r| r.rollback.as_ref()).collect();
        if !attempted.is_empty() {
            report.rollback = Some(report::Rollback {
                attempted: attempted.iter().any(|r| r.attempted),
                confirmed: attempted.iter().all(|r| r.confirmed || !r.attempted),
                detail: reps
                    .iter()
                    .filter_map(|r| {
                        r.rollback
                            .as_ref()
                            .map(|b| format!("{}: {}", r.workload, b.detail))
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
    }
    report.workloads = reps;
}
